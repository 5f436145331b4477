//! Host capabilities offered to guests, one module each. A module owns everything about its
//! capability: its state (one field of the store), its WIT host trait implemented on that
//! state (wasmtime's `HasData` view pattern, as wasmtime-wasi does), its manifest section,
//! its limits and budget, its linker line, and its entry in [`OFFERS`].
//!
//! [`OFFERS`] is the one list of what the worker offers: the import policy
//! ([`crate::plugin::imports`]), load errors and `inspect` all read it. Adding a capability
//! takes its WIT, one module here, one field (and view impl) in `GuestState`, one line in
//! [`add_to_linker`] and one entry in [`OFFERS`].

pub mod activity;
pub mod config;
pub mod denials;
pub mod disk;
pub mod host_memory;
pub mod http;
pub mod http_policy;
pub mod log;
pub mod open_files;
pub mod rate;
pub mod sockets;
pub mod stdio;
pub mod tls;
pub mod wasi;

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

/// One family of imports (by name prefix) and how the worker treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub prefix: &'static str,
    pub policy: Policy,
}

impl Offer {
    /// Linked for every plugin.
    pub const fn always(prefix: &'static str) -> Self {
        Self {
            prefix,
            policy: Policy::Always,
        }
    }
}

/// Every family is linked for every plugin, so that what a toolchain imports by default but a
/// plugin never calls does not keep it from loading; what the plugin may do is decided when it
/// calls. An import of anything not in [`OFFERS`] is refused at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Usable by every plugin (possibly empty: filesystem preopens exist only when granted).
    Always,
    /// Usable by a plugin whose manifest has this section; without it every call is denied
    /// (`CapabilityDenied`), and `how` says how to grant it.
    Grant {
        section: &'static str,
        how: &'static str,
    },
    /// Never usable: every call is denied (`CapabilityDenied`); why, and what to use instead.
    DeniedAtCall(&'static str),
}

/// Everything the worker offers or refuses, by import name prefix; the first match wins.
pub const OFFERS: &[Offer] = &[
    log::OFFER,
    activity::OFFER,
    config::OFFER,
    // Types shared by the interfaces above and the plugin's export; no functions.
    Offer::always("mlx:plugin/types"),
    wasi::IO,
    wasi::CLI,
    wasi::CLOCKS,
    wasi::RANDOM,
    wasi::FILESYSTEM,
    sockets::OFFER,
    http::OFFER,
];

/// The offered families, for an error that must say what the worker provides.
pub fn offered() -> String {
    OFFERS
        .iter()
        .filter_map(|offer| match offer.policy {
            Policy::Always => Some(offer.prefix.trim_end_matches('/').to_string()),
            Policy::Grant { section, .. } => Some(format!(
                "{} (with a [{section}] grant)",
                offer.prefix.trim_end_matches('/')
            )),
            Policy::DeniedAtCall(_) => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Links WASI and every capability. Each is linked for every plugin; the import policy and
/// each capability's grant decide what a plugin may actually use.
pub fn add_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiView
        + WasiHttpView
        + log::LogView
        + activity::ActivityView
        + config::ConfigView
        + open_files::OpenFilesView
        + sockets::SocketsView
        + 'static,
{
    wasi::add_to_linker(linker)?;
    open_files::add_to_linker(linker)?;
    sockets::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    activity::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    crate::bindings::mlx::plugin::types::add_to_linker::<T, TypesOnly>(linker, |_| TypesOnly)?;
    Ok(())
}

/// `mlx:plugin/types` has no functions, but a component imports it (the plugin export uses
/// its types), so it is linked, with no state behind it.
struct TypesOnly;

impl HasData for TypesOnly {
    type Data<'a> = TypesOnly;
}

impl crate::bindings::mlx::plugin::types::Host for TypesOnly {}

/// The `[limits]` keys of a stream budget (log lines, heartbeats): a size in KiB and a rate,
/// each with its ceiling.
struct BudgetKeys {
    kib: &'static str,
    max_kib: u64,
    rate: &'static str,
    max_rate: u32,
}

impl BudgetKeys {
    /// The manifest's values over `defaults` (bytes, rate), each checked against its ceiling.
    fn resolve(
        &self,
        defaults: (usize, u32),
        kb: Option<u64>,
        rate: Option<u32>,
    ) -> Result<(usize, u32), String> {
        let bytes = kb.map(|kb| kib_in(self.kib, kb, self.max_kib));
        let rate = rate.map(|n| rate_in(self.rate, n, self.max_rate));
        Ok((
            bytes.transpose()?.unwrap_or(defaults.0),
            rate.transpose()?.unwrap_or(defaults.1),
        ))
    }
}

/// A KiB count in `1..=max_kb`, as bytes. The ceilings keep one plugin's budget from
/// becoming the worker's memory problem.
fn kib_in(key: &str, kb: u64, max_kb: u64) -> Result<usize, String> {
    if kb == 0 || kb > max_kb {
        return Err(format!("{key} = {kb} is out of range: use 1..={max_kb}"));
    }
    Ok((kb as usize) << 10)
}

/// A rate in `1..=max`.
fn rate_in(key: &str, n: u32, max: u32) -> Result<u32, String> {
    if n == 0 || n > max {
        return Err(format!("{key} = {n} is out of range: use 1..={max}"));
    }
    Ok(n)
}

/// Ways a guest can break the contract that make the host stop it. Raised as traps, classified
/// by [`crate::failure`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractViolation {
    #[error("heartbeat details of {size} bytes exceed the plugin's limit of {limit} bytes")]
    HeartbeatTooLarge { size: usize, limit: usize },
    #[error("heartbeat details are not valid JSON: {0}")]
    HeartbeatNotJson(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_budgets_take_the_manifest_over_the_defaults_within_their_ceilings() {
        use super::{activity::HeartbeatLimits, log::LogLimits};
        let log = LogLimits::resolve(Some(8), None).unwrap();
        assert_eq!(log.max_bytes, 8 << 10);
        assert_eq!(log.lines_per_sec, LogLimits::default().lines_per_sec);
        let beat = HeartbeatLimits::resolve(None, Some(3)).unwrap();
        assert_eq!((beat.max_bytes, beat.per_sec), (256 << 10, 3));
        for (err, key) in [
            (
                LogLimits::resolve(Some(0), None).map(|_| ()),
                "limits.max_log_kb = 0",
            ),
            (
                LogLimits::resolve(None, Some(100_001)).map(|_| ()),
                "limits.log_lines_per_sec = 100001",
            ),
            (
                HeartbeatLimits::resolve(Some(2049), None).map(|_| ()),
                "limits.max_heartbeat_kb = 2049",
            ),
            (
                HeartbeatLimits::resolve(None, Some(0)).map(|_| ()),
                "limits.heartbeats_per_sec = 0",
            ),
        ] {
            let err = err.unwrap_err();
            assert!(
                err.starts_with(key) && err.contains("out of range"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_offer_list_names_what_is_offered_and_how_to_get_what_needs_a_grant() {
        let offered = offered();
        for family in ["mlx:plugin/log", "mlx:plugin/config", "wasi:filesystem"] {
            assert!(offered.contains(family), "{offered}");
        }
        assert!(
            offered.contains("wasi:http (with a [http] grant)"),
            "{offered}"
        );
        assert!(!offered.contains("sockets"), "{offered}");
    }

    #[test]
    fn no_offer_hides_another() {
        // The first match wins, so a prefix of another offer would shadow it.
        for (i, a) in OFFERS.iter().enumerate() {
            for b in &OFFERS[i + 1..] {
                assert!(
                    !b.prefix.starts_with(a.prefix) && !a.prefix.starts_with(b.prefix),
                    "{} and {} overlap",
                    a.prefix,
                    b.prefix
                );
            }
        }
    }
}
