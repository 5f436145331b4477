//! `wasi:sockets`: never granted, but linked. Toolchains import it by default (Python's and
//! JavaScript's libc do, for code the plugin never calls), so refusing the import at load
//! refused plugins that would never open a socket. Instead every way to a socket (creating a
//! TCP or UDP socket, resolving a name) is denied when called, before any host socket or
//! lookup exists, and recorded so that the plugin's failure is reported as `CapabilityDenied`.
//! The interfaces' other functions need a socket or a lookup, so there is nothing else to reach.
//!
//! wasmtime-wasi's own implementation is linked too (with TCP, UDP and name lookup disabled in
//! the WASI context, `crate::sandbox::new_store`); the three entry points are linked again over
//! it (shadowing), so the refusal is the host's decision twice over.

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::{
    DynPollable, SocketError, SocketResult, TcpSocket, UdpSocket,
    bindings::sockets::{
        ip_name_lookup::{self, HostResolveAddressStream, ResolveAddressStream},
        network::{self, ErrorCode, IpAddress, IpAddressFamily, Network},
        tcp_create_socket, udp_create_socket,
    },
};

use super::{Offer, Policy, denials::Denials};

/// Why, and what to use instead: in `inspect`, and in the failure of a plugin that tried.
const WHY: &str = "raw network sockets are not grantable to plugins; fetch data over HTTP \
                   with an [http] allow grant, or read it from a granted directory \
                   (manifest [[filesystem]])";

pub const OFFER: Offer = Offer {
    prefix: "wasi:sockets/",
    policy: Policy::DeniedAtCall(WHY),
};

/// How a store exposes where refusals are recorded.
pub trait SocketsView: Send {
    fn denials(&self) -> &Denials;
}

struct Refusal<'a>(&'a Denials);

impl Refusal<'_> {
    fn deny<T>(&self, what: &str) -> SocketResult<T> {
        // The reason once (refusals are kept once each), then each thing refused.
        self.0.record(format!("wasi:sockets: {WHY}"));
        self.0.record(what.to_string());
        Err(ErrorCode::AccessDenied.into())
    }
}

struct DeniedSockets;

impl HasData for DeniedSockets {
    type Data<'a> = Refusal<'a>;
}

/// Links the denying entry points over wasmtime-wasi's: call it after
/// [`super::wasi::add_to_linker`].
pub fn add_to_linker<T: SocketsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn refusal<T: SocketsView>(state: &mut T) -> Refusal<'_> {
        Refusal(state.denials())
    }
    linker.allow_shadowing(true);
    let linked = tcp_create_socket::add_to_linker::<T, DeniedSockets>(linker, refusal)
        .and_then(|()| udp_create_socket::add_to_linker::<T, DeniedSockets>(linker, refusal))
        .and_then(|()| ip_name_lookup::add_to_linker::<T, DeniedSockets>(linker, refusal));
    linker.allow_shadowing(false);
    linked
}

/// How the generated bindings turn the refusals above into the guest's error code.
impl network::Host for Refusal<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    // Not linked through this shadow (`wasi:sockets/network` stays wasmtime-wasi's).
    fn network_error_code(
        &mut self,
        _: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl network::HostNetwork for Refusal<'_> {
    // As above: dropping a network goes to wasmtime-wasi's own `wasi:sockets/network`.
    fn drop(&mut self, _: Resource<Network>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl tcp_create_socket::Host for Refusal<'_> {
    fn create_tcp_socket(&mut self, _: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        self.deny("a TCP socket")
    }
}

impl udp_create_socket::Host for Refusal<'_> {
    async fn create_udp_socket(&mut self, _: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        self.deny("a UDP socket")
    }
}

impl ip_name_lookup::Host for Refusal<'_> {
    fn resolve_addresses(
        &mut self,
        _: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        self.deny(&format!("resolving {:?}", super::log::one_line(&name, 256)))
    }
}

/// No lookup is ever made, so no handle of this type can exist: a guest naming one names
/// nothing.
impl HostResolveAddressStream for Refusal<'_> {
    fn resolve_next_address(
        &mut self,
        _: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        Err(ErrorCode::InvalidState.into())
    }

    fn subscribe(
        &mut self,
        _: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime::bail!("no name lookup exists")
    }

    fn drop(&mut self, _: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        Ok(())
    }
}
