//! Pipeline spec files: YAML, TOML or JSON, by extension, into one [`PipelineSpec`], and
//! `NAME=VALUE` param overrides. The spec's own serde attributes refuse unknown keys in every
//! format; errors name the file and, where the parser knows it, the line and column.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde_json::Value;

use crate::{PipelineSpec, state::json_type};

/// Why a spec file or a `--param` override could not be used; each names the file or param.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a spec file name: use .yaml, .yml, .toml or .json", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Parse {
        path: PathBuf,
        /// The parser's message, rendered on one line; it says where too, when it knows.
        message: String,
        line: Option<u64>,
        column: Option<u64>,
        /// The parser's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("--param {name}: no such param (params: {})", declared.join(", "))]
    UnknownParam { name: String, declared: Vec<String> },
    /// As with a change while running: a typo (`0.9x`) must not turn a number into text that
    /// a condition then cannot compare.
    #[error(
        "--param {name}: the spec declares a {declared}; {given} is a {given_type}{}",
        if *declared == "string" { " (to pass text that reads as JSON, quote it: '\"2\"')" } else { "" }
    )]
    ParamType {
        name: String,
        declared: &'static str,
        given: String,
        given_type: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Reads and parses a spec file; no validation (see [`PipelineSpec::validate`]).
pub fn load(path: &Path) -> Result<PipelineSpec, SpecFileError> {
    let format = Format::of(path).ok_or_else(|| SpecFileError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| SpecFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, format, path)
}

/// Parses spec text; `path` only names it in errors.
pub fn parse(text: &str, format: Format, path: &Path) -> Result<PipelineSpec, SpecFileError> {
    let fail =
        |message: String,
         at: Option<(u64, u64)>,
         source: Box<dyn std::error::Error + Send + Sync>| SpecFileError::Parse {
            path: path.to_path_buf(),
            message,
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            source,
        };
    match format {
        Format::Yaml => {
            // Strict booleans: `no`, `on` or `y` in a param or an input stay strings, as they
            // would be in JSON (YAML 1.1's booleans are the "Norway problem").
            let options = serde_saphyr::options! { strict_booleans: true };
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                // The plain message ends with the location; the snippet form is multi-line.
                let plain = serde_saphyr::render_options! {
                    snippets: serde_saphyr::SnippetMode::Off,
                };
                let at = e.location().map(|l| (l.line(), l.column()));
                fail(e.render_with_options(plain), at, e.into())
            })
        }
        Format::Toml => toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| line_column(text, span.start));
            let message = match at {
                Some((line, column)) => {
                    format!("{} at line {line}, column {column}", e.message().trim_end())
                }
                None => e.message().trim_end().to_string(),
            };
            fail(message, at, e.into())
        }),
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let at = (e.line() > 0).then(|| (e.line() as u64, e.column() as u64));
            fail(e.to_string(), at, e.into())
        }),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[start..].chars().count() as u64 + 1;
    (line, column)
}

/// `NAME=VALUE` from the command line: the value is JSON if it parses as JSON (numbers,
/// booleans, quoted strings, arrays, objects), otherwise the text itself, so `label=v2` needs
/// no quoting.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamOverride {
    pub name: String,
    pub value: Value,
}

impl FromStr for ParamOverride {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        match arg.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok(Self {
                name: name.trim().to_string(),
                value: parse_value(value),
            }),
            _ => Err(format!("{arg:?} is not NAME=VALUE")),
        }
    }
}

impl fmt::Display for ParamOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// A value typed by a person: JSON if it is JSON, else the text as a string.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Replaces declared params' values; a name the spec does not declare is refused, since a
/// typo would otherwise be silently ignored.
pub fn apply_params(
    spec: &mut PipelineSpec,
    overrides: &[ParamOverride],
) -> Result<(), SpecFileError> {
    for o in overrides {
        match spec.params.get_mut(&o.name) {
            Some(slot) if !slot.is_null() && json_type(slot) != json_type(&o.value) => {
                return Err(SpecFileError::ParamType {
                    name: o.name.clone(),
                    declared: json_type(slot),
                    given: o.value.to_string(),
                    given_type: json_type(&o.value),
                });
            }
            Some(slot) => *slot = o.value.clone(),
            None => {
                return Err(SpecFileError::UnknownParam {
                    name: o.name.clone(),
                    declared: spec.params.keys().cloned().collect(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OnFailure, StepKind};
    use serde_json::json;

    const YAML: &str = r#"
name: train
params:
  threshold: 0.9
  label: v1
  strict: no
steps:
  - id: extract
    plugin: csv
    operation: extract_data
    input: {source: /data/iris.csv, header: yes}
  - id: approve
    type: approval
    depends_on: [extract]
    when: params.threshold > 0.5
    on_failure: continue
  - id: register
    plugin: csv
    operation: extract_data
    depends_on: [approve]
    retry: {max_attempts: 5, non_retryable: [InvalidInput]}
    on_failure: {compensate: undo}
compensations:
  - id: undo
    plugin: csv
    operation: extract_data
"#;

    const TOML: &str = r#"
name = "train"

[params]
threshold = 0.9
label = "v1"
strict = "no"

[[steps]]
id = "extract"
plugin = "csv"
operation = "extract_data"
input = { source = "/data/iris.csv", header = "yes" }

[[steps]]
id = "approve"
type = "approval"
depends_on = ["extract"]
when = "params.threshold > 0.5"
on_failure = "continue"

[[steps]]
id = "register"
plugin = "csv"
operation = "extract_data"
depends_on = ["approve"]
retry = { max_attempts = 5, non_retryable = ["InvalidInput"] }
on_failure = { compensate = "undo" }

[[compensations]]
id = "undo"
plugin = "csv"
operation = "extract_data"
"#;

    fn json_text() -> String {
        json!({
            "name": "train",
            "params": {"threshold": 0.9, "label": "v1", "strict": "no"},
            "steps": [
                {"id": "extract", "plugin": "csv", "operation": "extract_data",
                 "input": {"source": "/data/iris.csv", "header": "yes"}},
                {"id": "approve", "type": "approval", "depends_on": ["extract"],
                 "when": "params.threshold > 0.5", "on_failure": "continue"},
                {"id": "register", "plugin": "csv", "operation": "extract_data",
                 "depends_on": ["approve"],
                 "retry": {"max_attempts": 5, "non_retryable": ["InvalidInput"]},
                 "on_failure": {"compensate": "undo"}}
            ],
            "compensations": [{"id": "undo", "plugin": "csv", "operation": "extract_data"}]
        })
        .to_string()
    }

    fn parsed(text: &str, name: &str) -> Result<PipelineSpec, SpecFileError> {
        let path = Path::new(name);
        parse(text, Format::of(path).unwrap(), path)
    }

    #[test]
    fn the_three_formats_read_into_the_same_spec() {
        let yaml = parsed(YAML, "p.yaml").unwrap();
        let toml = parsed(TOML, "p.toml").unwrap();
        let json = parsed(&json_text(), "p.json").unwrap();
        assert_eq!(yaml, json);
        assert_eq!(toml, json);
        assert_eq!(yaml.params["threshold"], json!(0.9));
        // YAML 1.1 booleans stay strings: the spec means what JSON would.
        assert_eq!(yaml.params["strict"], json!("no"));
        assert_eq!(yaml.steps[0].input["header"], json!("yes"));
        assert_eq!(yaml.steps[1].kind, StepKind::Approval);
        assert_eq!(
            yaml.steps[2].on_failure,
            OnFailure::Compensate("undo".into())
        );
        assert_eq!(yaml.steps[2].retry.max_attempts, 5);
        assert_eq!(
            yaml.steps[2].retry.backoff_coefficient, 2.0,
            "defaults fill in"
        );
        assert_eq!(yaml.validate(None), Ok(()));
    }

    #[test]
    fn formats_go_by_extension() {
        assert_eq!(Format::of(Path::new("a/p.YML")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("p.toml")), Some(Format::Toml));
        assert_eq!(Format::of(Path::new("p.json")), Some(Format::Json));
        assert_eq!(Format::of(Path::new("p.txt")), None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec.txt");
        std::fs::write(&file, "{}").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("spec.txt") && err.contains(".yaml"), "{err}");
        let missing = load(&dir.path().join("none.yaml")).unwrap_err().to_string();
        assert!(missing.contains("none.yaml: cannot read"), "{missing}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name_with_file_line_and_column() {
        let yaml = YAML.replace("    retry: {", "    retries: 3\n    retry: {");
        let toml = TOML.replace("retry = {", "retries = 3\nretry = {");
        let json = json_text().replace("\"retry\":", "\"retries\":3,\"retry\":");
        for (text, file) in [
            (yaml.as_str(), "bad.yaml"),
            (toml.as_str(), "bad.toml"),
            (json.as_str(), "bad.json"),
        ] {
            let line = text
                .lines()
                .position(|l| l.contains("retries"))
                .map(|i| i as u64 + 1);
            let err = parsed(text, file).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with(&format!("{file}: ")), "{message}");
            assert!(message.contains("unknown field `retries`"), "{message}");
            assert!(message.contains("line"), "{message}");
            let SpecFileError::Parse {
                line: at, column, ..
            } = err
            else {
                panic!("{message}")
            };
            assert_eq!(at, line, "{message}");
            assert!(column.is_some(), "{message}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parsed("name: x\nsteps: [\n  - id: a\n", "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s.yaml: ") && err.contains("line 3"),
            "{err}"
        );
        let err = parsed("name = \"x\"\nsteps = [\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.toml: ") && err.contains("line"), "{err}");
    }

    #[test]
    fn param_values_are_json_when_they_parse_else_text() {
        let p = |arg: &str| arg.parse::<ParamOverride>().unwrap().value;
        assert_eq!(p("n=3"), json!(3));
        assert_eq!(p("t=0.5"), json!(0.5));
        assert_eq!(p("on=true"), json!(true));
        assert_eq!(p("s=\"3\""), json!("3"));
        assert_eq!(p("label=v2"), json!("v2"));
        assert_eq!(p("o={\"a\": [1]}"), json!({"a": [1]}));
        assert_eq!(p("eq=a=b"), json!("a=b"), "only the first = splits");
        assert_eq!(p("empty="), json!(""));
        assert!("novalue".parse::<ParamOverride>().is_err());
        assert!("=3".parse::<ParamOverride>().is_err());
    }

    #[test]
    fn overrides_replace_declared_params_and_refuse_others_naming_them() {
        let mut spec = parsed(YAML, "p.yaml").unwrap();
        let overrides: Vec<ParamOverride> = ["threshold=0.5", "label=v2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        apply_params(&mut spec, &overrides).unwrap();
        assert_eq!(spec.params["threshold"], json!(0.5));
        assert_eq!(spec.params["label"], json!("v2"));
        let err = apply_params(&mut spec, &["treshold=1".parse().unwrap()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--param treshold: no such param (params: label, strict, threshold)"
        );
        let err = apply_params(&mut spec, &["threshold=0.9x".parse().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--param threshold: the spec declares a number; \"0.9x\" is a string"),
            "{err}"
        );
        assert_eq!(spec.params["threshold"], json!(0.5), "left as it was");
    }

    #[test]
    fn a_parse_error_keeps_the_parsers_error_as_its_source() {
        let err = parse("{\"name\": ", Format::Json, Path::new("p.json")).unwrap_err();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(
            source.downcast_ref::<serde_json::Error>().is_some(),
            "{source:?}"
        );
        assert!(err.to_string().starts_with("p.json: "), "{err}");
    }
}
