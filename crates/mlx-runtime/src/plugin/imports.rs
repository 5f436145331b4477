//! Load-time policy over a component's imports: everything a plugin imports must be something
//! the worker offers and its manifest grants, so an ungranted capability is a clear error when
//! the file is dropped in, naming the import and what would grant it.

use wasmtime::{Engine, component::Component};

/// How the worker treats one family of imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Always offered (possibly empty: e.g. filesystem preopens exist only when granted).
    Offered,
    /// Never offered, with the reason and what to use instead.
    Refused(&'static str),
    /// Offered only to a plugin whose manifest has an `[http]` grant.
    NeedsHttpGrant,
}

/// Import name prefixes and their rule; the first match wins.
const RULES: &[(&str, Rule)] = &[
    ("mlx:plugin/", Rule::Offered),
    ("wasi:io/", Rule::Offered),
    ("wasi:cli/", Rule::Offered),
    ("wasi:clocks/", Rule::Offered),
    ("wasi:random/", Rule::Offered),
    ("wasi:filesystem/", Rule::Offered),
    (
        "wasi:sockets/",
        Rule::Refused(
            "raw network sockets are not grantable to plugins; read data from granted \
             directories (manifest [[filesystem]])",
        ),
    ),
    ("wasi:http/", Rule::NeedsHttpGrant),
];

/// One import of a component, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub name: String,
    /// None: offered; Some(reason): refused.
    pub refused: Option<String>,
}

/// Every import of `component` with the worker's verdict.
pub fn review(engine: &Engine, component: &Component, http_granted: bool) -> Vec<ImportReport> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| ImportReport {
            name: name.to_string(),
            refused: verdict(name, http_granted),
        })
        .collect()
}

fn verdict(name: &str, http_granted: bool) -> Option<String> {
    match RULES.iter().find(|(prefix, _)| name.starts_with(prefix)) {
        Some((_, Rule::Offered)) => None,
        Some((_, Rule::NeedsHttpGrant)) if http_granted => None,
        Some((_, Rule::NeedsHttpGrant)) => Some(
            "outbound HTTP is not granted: add [http] allow = [\"https://host[:port]\"] to the \
             plugin's manifest"
                .to_string(),
        ),
        Some((_, Rule::Refused(why))) => Some((*why).to_string()),
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

    #[test]
    fn contract_and_basic_wasi_are_offered() {
        for name in [
            "mlx:plugin/log@0.1.0",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:cli/environment@0.2.0",
        ] {
            assert_eq!(verdict(name, false), None, "{name}");
        }
    }

    #[test]
    fn sockets_http_and_unknown_imports_are_refused_with_a_reason() {
        assert!(
            verdict("wasi:sockets/tcp@0.2.6", true)
                .unwrap()
                .contains("filesystem")
        );
        assert!(verdict("acme:vault/open@1.0.0", true).is_some());
    }

    #[test]
    fn http_needs_a_grant_and_the_refusal_names_the_manifest_key() {
        let refusal = verdict("wasi:http/outgoing-handler@0.2.6", false).unwrap();
        assert!(refusal.contains("[http] allow"), "{refusal}");
        assert_eq!(verdict("wasi:http/outgoing-handler@0.2.6", true), None);
    }
}
