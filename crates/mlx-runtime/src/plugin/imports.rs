//! Load-time review of a component's imports: each is usable (offered, and granted where the
//! manifest must grant it), denied at call (linked, so the plugin loads, but every call is
//! refused with `CapabilityDenied`) or refused at load (nothing this worker provides). Denying
//! at call fits real toolchains, whose runtimes import interfaces the plugin never uses.

use wasmtime::{Engine, component::Component};

use crate::sandbox::capabilities::{OFFERS, Policy};

/// What the worker does with one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    /// Linked, every call refused: why, and how to get it where it can be granted.
    DeniedAtCall(String),
    /// Not linked: the component does not load.
    Refused(String),
}

/// One import of a component, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub name: String,
    pub verdict: Verdict,
}

/// Every import of `component` with the worker's verdict; `granted` says whether the
/// plugin's manifest has a given section (e.g. `http`).
pub fn review(
    engine: &Engine,
    component: &Component,
    granted: &dyn Fn(&str) -> bool,
) -> Vec<ImportReport> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| ImportReport {
            name: name.to_string(),
            verdict: verdict(name, granted),
        })
        .collect()
}

fn verdict(name: &str, granted: &dyn Fn(&str) -> bool) -> Verdict {
    match OFFERS.iter().find(|offer| name.starts_with(offer.prefix)) {
        Some(offer) => match offer.policy {
            Policy::Always => Verdict::Granted,
            Policy::Grant { section, .. } if granted(section) => Verdict::Granted,
            Policy::Grant { how, .. } => Verdict::DeniedAtCall(how.to_string()),
            Policy::DeniedAtCall(why) => Verdict::DeniedAtCall(why.to_string()),
        },
        None => Verdict::Refused(format!(
            "not an interface this worker provides (it offers {})",
            crate::sandbox::capabilities::offered()
        )),
    }
}

/// The component's export names, for `inspect`.
pub fn exports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn contract_and_basic_wasi_are_granted() {
        for name in [
            "mlx:plugin/log@0.1.0",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:cli/environment@0.2.0",
        ] {
            assert_eq!(verdict(name, &none), Verdict::Granted, "{name}");
        }
    }

    #[test]
    fn sockets_are_denied_at_call_even_with_every_section_saying_what_to_use_instead() {
        let Verdict::DeniedAtCall(why) = verdict("wasi:sockets/tcp@0.2.6", &all) else {
            panic!("sockets must load and be denied at call");
        };
        assert!(
            why.contains("[http]") && why.contains("[[filesystem]]"),
            "{why}"
        );
    }

    #[test]
    fn http_is_denied_at_call_without_a_grant_naming_the_manifest_key() {
        let Verdict::DeniedAtCall(how) = verdict("wasi:http/outgoing-handler@0.2.6", &none) else {
            panic!("http without a grant must load and be denied at call");
        };
        assert!(how.contains("[http] allow"), "{how}");
        assert_eq!(
            verdict("wasi:http/outgoing-handler@0.2.6", &all),
            Verdict::Granted
        );
    }

    #[test]
    fn unknown_interfaces_are_refused_at_load_listing_what_is_offered() {
        let Verdict::Refused(why) = verdict("acme:vault/open@1.0.0", &all) else {
            panic!("an unknown import cannot be linked");
        };
        assert!(why.contains("wasi:filesystem"), "{why}");
    }
}
