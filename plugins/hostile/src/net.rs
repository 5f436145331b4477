//! Attempts to reach the network without HTTP: a TCP connection, a UDP socket, a name lookup.
//! Rust's standard library imports `wasi:sockets` for these, as Python's and JavaScript's
//! runtimes do whether or not a plugin uses them, so the component must load and every call
//! must fail.

use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

use mlx_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report::{Attempt, verdict};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sockets {
    /// Where to connect: the test listens there, so a connection would be seen.
    connect: String,
    /// A name to resolve.
    lookup: String,
}

impl Default for Sockets {
    fn default() -> Self {
        Self {
            connect: "127.0.0.1:9".into(),
            lookup: "localhost".into(),
        }
    }
}

pub fn sockets(input: Sockets) -> Result<Value, PluginError> {
    let attempts = vec![
        Attempt::io(
            format!("TCP connect to {}", input.connect),
            TcpStream::connect(&input.connect)
                .map(|s| json!({"peer": format!("{:?}", s.peer_addr())})),
        ),
        Attempt::io(
            "bind a UDP socket",
            UdpSocket::bind("0.0.0.0:0").map(|s| json!({"local": format!("{:?}", s.local_addr())})),
        ),
        Attempt::io(
            format!("resolve {}", input.lookup),
            (input.lookup.as_str(), 80).to_socket_addrs().map(
                |addrs| json!({"addresses": addrs.map(|a| a.to_string()).collect::<Vec<_>>()}),
            ),
        ),
    ];
    verdict("sockets", attempts)
}
