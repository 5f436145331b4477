//! Typed operations: one `impl` per operation holds its name, doc, input and output types
//! (their JSON Schemas derive from them) and the errors it may return.

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{Context, ErrorKind, OperationInfo, PluginError, schema};

/// One operation of a plugin. List it in [`crate::plugin!`]; the SDK decodes the input,
/// publishes the schemas and declared errors in `describe()`, and encodes the output.
///
/// ```
/// use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError};
/// use serde::{Deserialize, Serialize};
///
/// /// Input of `greet`.
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct GreetInput {
///     /// Who to greet.
///     name: String,
///     /// How many exclamation marks.
///     #[serde(default)]
///     #[schemars(range(max = 3))]
///     excitement: u8,
/// }
///
/// #[derive(Serialize, JsonSchema)]
/// struct GreetOutput {
///     greeting: String,
/// }
///
/// struct Greet;
///
/// impl Operation for Greet {
///     const NAME: &str = "greet";
///     const DOC: &str = "Returns a greeting.";
///     const ERRORS: &[ErrorDecl] = &[ErrorDecl::invalid_input("EmptyName", "name is empty")];
///     type Input = GreetInput;
///     type Output = GreetOutput;
///
///     fn run(input: GreetInput, _ctx: &Context) -> Result<GreetOutput, PluginError> {
///         if input.name.is_empty() {
///             return Err(PluginError::invalid_input("EmptyName", "name is empty"));
///         }
///         let bangs = "!".repeat(input.excitement.into());
///         Ok(GreetOutput { greeting: format!("Hello, {}{bangs}", input.name) })
///     }
/// }
/// ```
pub trait Operation: 'static {
    /// What workflows put in the request's `operation`.
    const NAME: &'static str;
    /// What it does, for people reading `plugin inspect`. The declared errors are appended.
    const DOC: &'static str;
    /// The errors [`Operation::run`] may return, beside the SDK's own `InvalidInput` for an
    /// input that does not decode. Tests through [`Context::call`] fail on any other.
    const ERRORS: &'static [ErrorDecl] = &[];
    /// Use `#[serde(deny_unknown_fields)]` so a misspelt option is refused, in the schema too.
    /// Defaults (`#[serde(default)]`), doc comments and `#[schemars(range(..))]` show in the
    /// schema, which the host checks every input against before it runs the plugin.
    type Input: DeserializeOwned + JsonSchema;
    type Output: Serialize + JsonSchema;

    /// Runs the operation. Panics are not errors: they trap, and the host reports a trap.
    fn run(input: Self::Input, ctx: &Context) -> Result<Self::Output, PluginError>;
}

/// An error type an operation declares: its kind, its stable name and when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDecl {
    pub kind: ErrorKind,
    pub type_name: &'static str,
    /// When it happens, for the description (may be empty).
    pub when: &'static str,
}

impl ErrorDecl {
    pub const fn invalid_input(type_name: &'static str, when: &'static str) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            type_name,
            when,
        }
    }

    pub const fn retryable(type_name: &'static str, when: &'static str) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            type_name,
            when,
        }
    }

    pub const fn permanent(type_name: &'static str, when: &'static str) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            type_name,
            when,
        }
    }

    /// Any error type of `kind`, for an operation whose types come from its input or from
    /// other code (a proxy, an interpreter). Prefer naming each type: callers match on them.
    pub const fn any(kind: ErrorKind, when: &'static str) -> Self {
        Self {
            kind,
            type_name: ANY,
            when,
        }
    }

    /// The retryable `Cancelled` of [`PluginError::cancelled`].
    pub const CANCELLED: Self = Self::retryable("Cancelled", "cancellation was requested");

    /// Whether `error` is of this kind and type.
    pub fn matches(&self, error: &PluginError) -> bool {
        self.kind == error.kind && (self.type_name == ANY || self.type_name == error.type_name)
    }
}

/// The type name of [`ErrorDecl::any`].
const ANY: &str = "*";

/// The output of an operation that never succeeds: `run` can only return an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Never {}

impl JsonSchema for Never {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Never".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Never returned: the operation always fails.",
            "not": {},
        })
    }
}

/// What the SDK itself returns from every typed operation.
pub(crate) const SDK_ERRORS: &[ErrorDecl] = &[ErrorDecl::invalid_input(
    "InvalidInput",
    "the input does not fit the input schema",
)];

/// All errors `O` may return: the SDK's, then its own.
fn declared<O: Operation>() -> impl Iterator<Item = &'static ErrorDecl> {
    SDK_ERRORS.iter().chain(O::ERRORS)
}

/// Whether `O` declares `error` (kind and type name).
pub fn declares<O: Operation>(error: &PluginError) -> bool {
    declared::<O>().any(|d| d.matches(error))
}

/// `O` as `describe()` reports it.
pub fn info<O: Operation>() -> OperationInfo {
    OperationInfo::new(
        O::NAME,
        describe::<O>(),
        schema::input::<O::Input>(),
        schema::output::<O::Output>(),
    )
}

/// `DOC` and an `Errors:` line grouped by kind, like the other SDKs write it:
/// `Errors: InvalidInput A (when), B; Retryable Cancelled (when).`
fn describe<O: Operation>() -> String {
    let groups: Vec<String> = [
        ErrorKind::InvalidInput,
        ErrorKind::Retryable,
        ErrorKind::Permanent,
    ]
    .into_iter()
    .filter_map(|kind| {
        let names: Vec<String> = declared::<O>()
            .filter(|d| d.kind == kind)
            .map(|d| {
                let name = if d.type_name == ANY {
                    "any type"
                } else {
                    d.type_name
                };
                match d.when {
                    "" => name.to_owned(),
                    when => format!("{name} ({when})"),
                }
            })
            .collect();
        (!names.is_empty()).then(|| format!("{kind:?} {}", names.join(", ")))
    })
    .collect();
    format!("{} Errors: {}.", O::DOC.trim_end(), groups.join("; "))
}

/// Runs `O` on a JSON input as the `invoke` export does: `null` reads as `{}`.
pub fn invoke<O: Operation>(input: Value, ctx: &Context) -> Result<Value, PluginError> {
    let output = O::run(crate::parse_input(input)?, ctx)?;
    serde_json::to_value(output).map_err(|e| {
        PluginError::permanent(
            "InvalidOutput",
            format!("the output of {} is not JSON: {e}", O::NAME),
        )
    })
}

/// Compile-time checks of a plugin's operations, run by [`crate::plugin!`]: names are
/// non-empty and unique, and so are the error types each operation declares.
pub const fn check(operations: &[(&str, &[ErrorDecl])]) {
    let mut i = 0;
    while i < operations.len() {
        let (name, errors) = operations[i];
        assert!(!name.is_empty(), "an operation has an empty NAME");
        let mut j = i + 1;
        while j < operations.len() {
            assert!(
                !str_eq(name, operations[j].0),
                "two operations have the same NAME"
            );
            j += 1;
        }
        check_errors(errors);
        i += 1;
    }
}

const fn check_errors(errors: &[ErrorDecl]) {
    let mut i = 0;
    while i < errors.len() {
        let name = errors[i].type_name;
        assert!(!name.is_empty(), "an ErrorDecl has an empty type name");
        let mut k = 0;
        while k < SDK_ERRORS.len() {
            assert!(
                !str_eq(name, SDK_ERRORS[k].type_name),
                "InvalidInput is the SDK's own error: every operation declares it already"
            );
            k += 1;
        }
        let mut j = i + 1;
        while j < errors.len() {
            // `any` is per kind: one of each kind may stand side by side.
            let same_kind = errors[i].kind as u8 == errors[j].kind as u8;
            assert!(
                !str_eq(name, errors[j].type_name) || (str_eq(name, ANY) && !same_kind),
                "an operation declares the same error type twice"
            );
            j += 1;
        }
        i += 1;
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
#[path = "operation_tests.rs"]
mod tests;
