//! Load-time policy over a component's imports: everything a plugin imports must be something
//! the worker offers and its manifest grants, so an ungranted capability is a clear error when
//! the file is dropped in, naming the import and what would grant it.

use wasmtime::{Engine, component::Component};

use crate::sandbox::capabilities::{OFFERS, Policy};

/// One import of a component, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub name: String,
    /// None: offered; Some(reason): refused.
    pub refused: Option<String>,
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
            refused: verdict(name, granted),
        })
        .collect()
}

/// None: offered; Some(reason): refused. `granted` says whether the manifest has a section.
fn verdict(name: &str, granted: &dyn Fn(&str) -> bool) -> Option<String> {
    match OFFERS.iter().find(|offer| name.starts_with(offer.prefix)) {
        Some(offer) => match offer.policy {
            Policy::Always => None,
            Policy::Grant { section, .. } if granted(section) => None,
            Policy::Grant { how, .. } => Some(how.to_string()),
            Policy::Refused(why) => Some(why.to_string()),
        },
        None => Some("not an interface this worker provides".to_string()),
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
    fn contract_and_basic_wasi_are_offered() {
        for name in [
            "mlx:plugin/log@0.1.0",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:cli/environment@0.2.0",
        ] {
            assert_eq!(verdict(name, &none), None, "{name}");
        }
    }

    #[test]
    fn sockets_http_and_unknown_imports_are_refused_with_a_reason() {
        assert!(
            verdict("wasi:sockets/tcp@0.2.6", &all)
                .unwrap()
                .contains("filesystem")
        );
        assert!(verdict("acme:vault/open@1.0.0", &all).is_some());
    }

    #[test]
    fn http_needs_a_grant_and_the_refusal_names_the_manifest_key() {
        let refusal = verdict("wasi:http/outgoing-handler@0.2.6", &none).unwrap();
        assert!(refusal.contains("[http] allow"), "{refusal}");
        assert_eq!(verdict("wasi:http/outgoing-handler@0.2.6", &all), None);
    }
}
