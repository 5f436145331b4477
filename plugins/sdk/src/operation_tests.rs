use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Context, ErrorDecl, ErrorKind, JsonSchema, Operation, PluginError};

/// Input of `add`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddInput {
    /// The first term,
    /// on two lines.
    #[serde(default)]
    a: i64,
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 9))]
    b: i64,
}

fn two() -> i64 {
    2
}

#[derive(Serialize, JsonSchema)]
struct Sum {
    sum: i64,
}

struct Add;

impl Operation for Add {
    const NAME: &str = "add";
    const DOC: &str = "Adds.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("Negative", "a is negative"),
        ErrorDecl::CANCELLED,
    ];
    type Input = AddInput;
    type Output = Sum;

    fn run(input: AddInput, ctx: &Context) -> Result<Sum, PluginError> {
        match input.a {
            -1 => Err(PluginError::invalid_input("Negative", "a < 0")),
            -2 => Err(PluginError::permanent("Undeclared", "oops")),
            _ if ctx.is_cancelled() => Err(PluginError::cancelled("stop")),
            a => Ok(Sum { sum: a + input.b }),
        }
    }
}

#[test]
fn info_derives_schemas_and_lists_declared_errors() {
    let info = crate::operation::info::<Add>();
    assert_eq!(info.name, "add");
    assert_eq!(
        info.description,
        "Adds. Errors: InvalidInput InvalidInput (the input does not fit the input schema), \
         Negative (a is negative); Retryable Cancelled (cancellation was requested)."
    );
    let input = &info.input_schema;
    assert_eq!(
        input["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(input["additionalProperties"], false);
    assert_eq!(
        input["properties"]["a"]["description"],
        "The first term, on two lines."
    );
    assert_eq!(input["properties"]["b"]["default"], 2);
    assert_eq!(
        (
            &input["properties"]["b"]["minimum"],
            &input["properties"]["b"]["maximum"]
        ),
        (&json!(0), &json!(9))
    );
    assert_eq!(info.output_schema["required"], json!(["sum"]));
}

#[test]
fn call_checks_the_schema_reads_null_as_defaults_and_allows_declared_errors() {
    let ctx = Context::detached(1, None);
    assert_eq!(ctx.call::<Add>(Value::Null).unwrap(), json!({"sum": 2}));
    assert_eq!(
        ctx.call::<Add>(json!({"a": 1, "b": 3})).unwrap(),
        json!({"sum": 4})
    );
    for bad in [json!({"b": 10}), json!({"c": 1}), json!([])] {
        let err = ctx.call::<Add>(bad.clone()).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "InvalidInput"),
            "{bad}"
        );
    }
    assert_eq!(
        ctx.call::<Add>(json!({"a": -1})).unwrap_err().type_name,
        "Negative"
    );
    ctx.cancel();
    assert_eq!(
        ctx.call::<Add>(Value::Null).unwrap_err().type_name,
        "Cancelled"
    );
}

#[test]
#[should_panic(expected = "does not declare")]
fn call_fails_the_test_on_an_undeclared_error() {
    let _ = Context::detached(1, None).call::<Add>(json!({"a": -2}));
}

#[test]
fn declares_matches_kind_and_type_and_any() {
    assert!(crate::declares::<Add>(&PluginError::invalid_input(
        "Negative", ""
    )));
    assert!(!crate::declares::<Add>(&PluginError::permanent(
        "Negative", ""
    )));
    let any = ErrorDecl::any(ErrorKind::Permanent, "");
    assert!(any.matches(&PluginError::permanent("Whatever", "")));
    assert!(!any.matches(&PluginError::retryable("Whatever", "")));
}

#[test]
fn detached_contexts_grant_the_config_and_secrets_they_are_given() {
    let ctx = Context::detached(1, None)
        .with_config("k", "v")
        .with_secret("s", "hidden");
    assert_eq!(
        (ctx.config("k").as_deref(), ctx.config("x")),
        (Some("v"), None)
    );
    assert_eq!(ctx.secret("s").as_deref(), Some("hidden"));
    assert!(!format!("{ctx:?}").contains("hidden"));
}

crate::plugin!(Adder {
    name: "adder",
    version: "1.0.0",
    description: "Adds.",
    operations: [Add],
});

#[test]
fn plugin_macro_describes_and_dispatches() {
    use crate::Plugin;
    let info = Adder::info();
    assert_eq!((info.name.as_str(), info.operations.len()), ("adder", 1));
    let ctx = Context::detached(1, None);
    assert_eq!(
        Adder::invoke("add", json!({"a": 1}), &ctx).unwrap(),
        json!({"sum": 3})
    );
    let err = Adder::invoke("sub", Value::Null, &ctx).unwrap_err();
    assert_eq!(err.type_name, "UnknownOperation");
}
