//! The verdict every filesystem and environment attack returns. Containment is a failure of
//! type `CapabilityDenied`, so a host test can assert on the failure type alone; an escape is a
//! success, so it can never be mistaken for containment by a test that only checks for failure.

use std::io;

use mlx_plugin_sdk::PluginError;
use serde_json::{Value, json};

/// One thing an attack tried, and what the sandbox let it do.
pub struct Attempt {
    what: String,
    outcome: Outcome,
}

enum Outcome {
    /// The sandbox let it through; what it reached.
    Escaped(Value),
    /// The sandbox refused; why, in the OS's words.
    Blocked(String),
    /// It succeeded without leaving what was granted (a step of an attack, or a harmless path).
    Allowed(String),
}

impl Attempt {
    pub fn escaped(what: impl Into<String>, evidence: Value) -> Self {
        Self::new(what, Outcome::Escaped(evidence))
    }

    pub fn blocked(what: impl Into<String>, why: impl ToString) -> Self {
        Self::new(what, Outcome::Blocked(why.to_string()))
    }

    pub fn allowed(what: impl Into<String>, note: impl Into<String>) -> Self {
        Self::new(what, Outcome::Allowed(note.into()))
    }

    /// An attack step whose success is itself the escape.
    pub fn io(what: impl Into<String>, result: io::Result<Value>) -> Self {
        match result {
            Ok(evidence) => Self::escaped(what, evidence),
            Err(e) => Self::blocked(what, e),
        }
    }

    fn new(what: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            what: what.into(),
            outcome,
        }
    }
}

/// `{"escaped": true, "evidence": [...]}` if any attempt escaped, else `CapabilityDenied`
/// naming every attempt and its outcome (also in the details, one entry per attempt).
pub fn verdict(op: &str, attempts: Vec<Attempt>) -> Result<Value, PluginError> {
    let escapes: Vec<Value> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Escaped(evidence) => Some(json!({"attempt": a.what, "evidence": evidence})),
            _ => None,
        })
        .collect();
    if !escapes.is_empty() {
        return Ok(json!({"escaped": true, "evidence": escapes}));
    }
    let summary: Vec<String> = attempts
        .iter()
        .map(|a| match &a.outcome {
            Outcome::Blocked(why) => format!("{}: {why}", a.what),
            Outcome::Allowed(note) => format!("{}: allowed ({note})", a.what),
            Outcome::Escaped(_) => unreachable!("escapes returned above"),
        })
        .collect();
    let details: Vec<Value> = attempts
        .iter()
        .map(|a| match &a.outcome {
            Outcome::Blocked(why) => json!({"attempt": a.what, "blocked": why}),
            Outcome::Allowed(note) => json!({"attempt": a.what, "allowed": note}),
            Outcome::Escaped(_) => unreachable!("escapes returned above"),
        })
        .collect();
    Err(PluginError::permanent(
        "CapabilityDenied",
        format!("{op} was contained: {}", summary.join("; ")),
    )
    .with_details(json!({ "attempts": details })))
}

#[cfg(test)]
mod tests {
    use mlx_plugin_sdk::ErrorKind;

    use super::*;

    #[test]
    fn any_escape_wins() {
        let out = verdict(
            "op",
            vec![
                Attempt::blocked("a", "Permission denied"),
                Attempt::escaped("b", json!(1)),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"escaped": true, "evidence": [{"attempt": "b", "evidence": 1}]})
        );
    }

    #[test]
    fn containment_names_every_attempt() {
        let err = verdict(
            "op",
            vec![
                Attempt::io("read x", Err(io::Error::other("Operation not permitted"))),
                Attempt::allowed("make y", "created"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert_eq!(err.type_name, "CapabilityDenied");
        assert_eq!(
            err.message,
            "op was contained: read x: Operation not permitted; make y: allowed (created)"
        );
        assert_eq!(
            err.details.unwrap()["attempts"][1],
            json!({"attempt": "make y", "allowed": "created"})
        );
    }

    #[test]
    fn no_attempts_is_containment() {
        assert!(verdict("op", Vec::new()).is_err());
    }
}
