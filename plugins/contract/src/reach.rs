//! `connect` and `read_file`: reaching out of the sandbox, as far as the manifest lets it.

use std::net::TcpStream;

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Connect;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    #[serde(default = "localhost")]
    host: String,
    #[schemars(range(min = 1))]
    port: u16,
}

fn localhost() -> String {
    "127.0.0.1".into()
}

#[derive(Serialize, JsonSchema)]
pub struct ConnectOutput {
    connected: bool,
}

impl Operation for Connect {
    const NAME: &str = "connect";
    const DOC: &str = "Opens a TCP connection to host:port. Without a grant the worker refuses \
                       it (CapabilityDenied); the plugin reports the failure it sees as \
                       ConnectFailed.";
    const ERRORS: &[ErrorDecl] = &[ErrorDecl::permanent(
        "ConnectFailed",
        "the connection could not be opened",
    )];
    type Input = ConnectInput;
    type Output = ConnectOutput;

    fn run(input: ConnectInput, _ctx: &Context) -> Result<ConnectOutput, PluginError> {
        let (host, port) = (input.host.as_str(), input.port);
        match TcpStream::connect((host, port)) {
            Ok(_) => Ok(ConnectOutput { connected: true }),
            Err(e) => Err(PluginError::permanent(
                "ConnectFailed",
                format!("cannot connect to {host}:{port}: {e}"),
            )
            .with_details(json!({"host": host, "port": port, "error": e.to_string()}))),
        }
    }
}

pub struct ReadFile;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileInput {
    path: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ReadFileOutput {
    bytes: u64,
}

impl Operation for ReadFile {
    const NAME: &str = "read_file";
    const DOC: &str = "Reads the whole file at `path` and returns its size; ReadFailed names the \
                       OS error.";
    const ERRORS: &[ErrorDecl] = &[ErrorDecl::permanent(
        "ReadFailed",
        "the file cannot be read",
    )];
    type Input = ReadFileInput;
    type Output = ReadFileOutput;

    fn run(input: ReadFileInput, _ctx: &Context) -> Result<ReadFileOutput, PluginError> {
        let path = input.path;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(ReadFileOutput {
                bytes: bytes.len() as u64,
            }),
            Err(e) => Err(
                PluginError::permanent("ReadFailed", format!("cannot read {path}: {e}"))
                    .with_details(
                        json!({"path": path, "errno": e.raw_os_error(), "error": e.to_string()}),
                    ),
            ),
        }
    }
}
