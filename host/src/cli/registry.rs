//! `mlx-worker registry list|show`: the model registry the trainer's `register_model` writes,
//! read straight from its directory (no server, no plugin): `<root>/<name>/v<N>/entry.json`,
//! a version being complete once its entry.json exists. Layout and operator setup:
//! docs/configuration.md, "A shared model registry".

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::{CliError, format};

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The registry root: the host directory the trainer's manifest grants at `/registry`.
    #[arg(
        long,
        env = "MLX_REGISTRY_DIR",
        default_value = "registry",
        global = true
    )]
    pub registry_dir: PathBuf,
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Every model name with its latest version; with NAME, every version of that model.
    List {
        name: Option<String>,
        /// The entries as a JSON array (every version; of NAME only when given).
        #[arg(long)]
        json: bool,
    },
    /// One version: digest, family and hyperparameters, metrics, approval and lineage.
    Show {
        /// NAME or NAME@VERSION (`iris@3`, `iris@v3`); the latest version without one.
        model: String,
        /// The entry.json as written.
        #[arg(long)]
        json: bool,
    },
}

/// `NAME[@VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub version: Option<u64>,
}

/// The rule `register_model` enforces on names; anything else cannot be in a registry.
fn valid_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    (1..=64).contains(&name.len()) && name.bytes().all(allowed)
}

/// `v<digits>` or `<digits>`, from 1, without leading zeros (as the directories are named).
fn parse_version(text: &str) -> Option<u64> {
    parse_number(text.strip_prefix('v').unwrap_or(text))
}

/// Digits from 1 without leading zeros, so `v01` cannot pass for `v1`.
fn parse_number(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if canonical { digits.parse().ok() } else { None }
}

pub fn parse_reference(text: &str) -> Result<Reference, String> {
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (text, None),
    };
    if !valid_name(name) {
        return Err(format!(
            "{name:?} is not a model name (1 to 64 of a-z, 0-9, '_' and '-')"
        ));
    }
    let version = version
        .map(|v| {
            parse_version(v).ok_or_else(|| {
                format!("{v:?} is not a version: a number from 1, e.g. {name}@3 or {name}@v3")
            })
        })
        .transpose()?;
    Ok(Reference {
        name: name.to_string(),
        version,
    })
}

/// A complete version of a model.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: u64,
    pub dir: PathBuf,
    /// entry.json, as written.
    pub entry: Value,
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Local(format!("cannot read {}: {e}", path.display()))
}

/// The complete versions of `name`, oldest first. A version directory without entry.json
/// is a registration that never finished and is not listed; an entry that is not JSON is an
/// error naming it.
pub fn versions(root: &Path, name: &str) -> Result<Vec<Version>, CliError> {
    let base = root.join(name);
    let listing = match fs::read_dir(&base) {
        Ok(listing) => listing,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(CliError::NotFound(format!(
                "model {name:?} in the registry at {}",
                root.display()
            )));
        }
        Err(e) => return Err(unreadable(&base, e)),
    };
    let mut found = Vec::new();
    for item in listing {
        let item = item.map_err(|e| unreadable(&base, e))?;
        let Some(version) = item
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix('v'))
            .and_then(parse_number)
        else {
            continue;
        };
        let path = item.path().join("entry.json");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(unreadable(&path, e)),
        };
        let entry: Value = serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(&path, format!("not a registry entry: {e}")))?;
        if !entry.is_object() {
            return Err(unreadable(&path, "not a registry entry: not a JSON object"));
        }
        found.push(Version {
            version,
            dir: item.path(),
            entry,
        });
    }
    found.sort_by_key(|v| v.version);
    Ok(found)
}

/// The model names under `root` with at least one complete version, sorted.
pub fn names(root: &Path) -> Result<Vec<String>, CliError> {
    let listing = fs::read_dir(root).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CliError::NotFound(format!(
            "registry {} (set --registry-dir or MLX_REGISTRY_DIR to the directory the \
             trainer's manifest grants at /registry)",
            root.display()
        )),
        _ => unreadable(root, e),
    })?;
    let mut names = Vec::new();
    for item in listing {
        let item = item.map_err(|e| unreadable(root, e))?;
        if let Some(name) = item.file_name().to_str().filter(|n| valid_name(n))
            && item.path().is_dir()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The version `reference` names: the given one, or the latest.
pub fn resolve(root: &Path, reference: &Reference) -> Result<Version, CliError> {
    let mut all = versions(root, &reference.name)?;
    let missing = |what: String| CliError::NotFound(format!("{what} in {}", root.display()));
    match reference.version {
        Some(v) => match all.iter().position(|x| x.version == v) {
            Some(i) => Ok(all.swap_remove(i)),
            None => Err(missing(format!(
                "version {v} of {:?} (versions: {})",
                reference.name,
                listing(&all)
            ))),
        },
        None => all
            .pop()
            .ok_or_else(|| missing(format!("a complete version of {:?}", reference.name))),
    }
}

fn listing(all: &[Version]) -> String {
    if all.is_empty() {
        return "none complete".into();
    }
    all.iter()
        .map(|v| v.version.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The headline metrics a list shows, in this order of preference, when present.
const HEADLINE: [&str; 8] = [
    "accuracy",
    "f1_macro",
    "roc_auc",
    "r2",
    "rmse",
    "mae",
    "silhouette",
    "inertia",
];

fn number(v: &Value) -> Option<String> {
    v.as_f64().map(|n| {
        if v.is_u64() || v.is_i64() {
            n.to_string()
        } else {
            format!("{n:.4}")
        }
    })
}

fn metrics_summary(entry: &Value) -> String {
    let Some(metrics) = entry["metrics"].as_object() else {
        return "-".into();
    };
    let shown: Vec<String> = HEADLINE
        .iter()
        .filter_map(|k| Some(format!("{k}={}", number(metrics.get(*k)?)?)))
        .take(3)
        .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join(" ")
    }
}

fn approval_summary(entry: &Value) -> String {
    let approval = &entry["approval"];
    match approval["approved"].as_bool() {
        None if approval.is_null() => "-".into(),
        None => "recorded".into(),
        Some(approved) => {
            let word = if approved { "yes" } else { "no" };
            match approval["by"].as_str() {
                Some(by) => format!("{word} ({by})"),
                None => word.into(),
            }
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

fn registered(entry: &Value) -> String {
    entry["registered_at"]
        .as_u64()
        .map_or("-".into(), |secs| format::clock(secs.saturating_mul(1000)))
}

fn short_digest(entry: &Value) -> String {
    text(entry, "sha256").chars().take(12).collect()
}

/// `registry list NAME`: one row per version.
pub fn render_versions(all: &[Version]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|v| {
            let e = &v.entry;
            vec![
                v.version.to_string(),
                short_digest(e),
                text(&e["model"], "family").to_string(),
                registered(e),
                approval_summary(e),
                text(&e["lineage"], "workflow_id").to_string(),
                metrics_summary(e),
            ]
        })
        .collect();
    format::table(
        &[
            "VERSION",
            "SHA256",
            "FAMILY",
            "REGISTERED",
            "APPROVED",
            "WORKFLOW",
            "METRICS",
        ],
        &rows,
    )
}

/// `registry list`: one row per model, with its latest version.
pub fn render_models(models: &[(String, Vec<Version>)]) -> String {
    let rows: Vec<Vec<String>> = models
        .iter()
        .filter_map(|(name, all)| {
            let latest = all.last()?;
            let e = &latest.entry;
            Some(vec![
                name.clone(),
                all.len().to_string(),
                latest.version.to_string(),
                text(&e["model"], "family").to_string(),
                registered(e),
                metrics_summary(e),
            ])
        })
        .collect();
    format::table(
        &[
            "NAME",
            "VERSIONS",
            "LATEST",
            "FAMILY",
            "REGISTERED",
            "METRICS",
        ],
        &rows,
    )
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `registry show`: every field of one version, nested values as compact JSON.
pub fn render_version(v: &Version) -> String {
    let e = &v.entry;
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<16}{value}\n"));
    line("name", text(e, "name").to_string());
    line("version", v.version.to_string());
    line("sha256", text(e, "sha256").to_string());
    line("family", text(&e["model"], "family").to_string());
    line("hyperparameters", compact(&e["model"]["hyperparameters"]));
    line("task", compact(&e["task"]));
    line("registered", registered(e));
    line("model", v.dir.join("model.json").display().to_string());
    line("source", text(e, "source").to_string());
    if let Some(note) = e["note"].as_str() {
        line("note", note.to_string());
    }
    let approval = match e["approval"].as_object() {
        None => "none recorded".to_string(),
        Some(a) => {
            let mut s = approval_summary(e);
            if let Some(comment) = a.get("comment").and_then(Value::as_str) {
                s.push_str(&format!(": {comment}"));
            }
            s
        }
    };
    line("approval", approval);
    let lineage = &e["lineage"];
    if lineage.is_object() {
        line(
            "lineage",
            format!(
                "workflow {}, activity {}, attempt {}",
                text(lineage, "workflow_id"),
                text(lineage, "activity_id"),
                number(&lineage["attempt"]).unwrap_or("-".into())
            ),
        );
        if let Some(details) = lineage["details"].as_object() {
            line("", compact(&Value::Object(details.clone())));
        }
    } else {
        line("lineage", "none recorded".into());
    }
    let empty = Map::new();
    let metrics = e["metrics"].as_object().unwrap_or(&empty);
    if metrics.is_empty() {
        line("metrics", "none recorded".into());
    }
    for (i, (key, value)) in metrics.iter().enumerate() {
        let heading = if i == 0 { "metrics" } else { "" };
        match number(value).or_else(|| value.as_str().map(String::from)) {
            Some(shown) => line(heading, format!("{key} = {shown}")),
            None if value.is_null() => line(heading, format!("{key} = -")),
            None => line(heading, format!("{key} = (see --json)")),
        }
    }
    out
}

fn print(text: &str) {
    // Piped into `head` or a closed pipe: not an error worth a panic.
    let _ = write!(std::io::stdout(), "{text}");
}

fn json(value: &Value) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Local(format!("cannot print JSON: {e}")))
}

pub fn run(args: RegistryArgs) -> Result<ExitCode, CliError> {
    let root = &args.registry_dir;
    match args.command {
        RegistryCommand::List {
            name,
            json: as_json,
        } => {
            let named = name.is_some();
            let models: Vec<(String, Vec<Version>)> = match name {
                Some(name) => {
                    let reference = parse_reference(&name).map_err(CliError::Usage)?;
                    if reference.version.is_some() {
                        return Err(CliError::Usage(format!(
                            "list takes a NAME, not NAME@VERSION ({name}); use `registry show \
                             {name}`"
                        )));
                    }
                    vec![(name.clone(), versions(root, &name)?)]
                }
                None => names(root)?
                    .into_iter()
                    .map(|n| Ok((n.clone(), versions(root, &n)?)))
                    .collect::<Result<_, CliError>>()?,
            };
            if as_json {
                let entries: Vec<Value> = models
                    .iter()
                    .flat_map(|(_, all)| all.iter().map(|v| v.entry.clone()))
                    .collect();
                print(&json(&Value::Array(entries))?);
            } else if let (true, [(_, all)]) = (named, &models[..]) {
                print(&render_versions(all));
            } else {
                print(&render_models(&models));
            }
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Show {
            model,
            json: as_json,
        } => {
            let reference = parse_reference(&model).map_err(CliError::Usage)?;
            let version = resolve(root, &reference)?;
            if as_json {
                print(&json(&version.entry)?);
            } else {
                print(&render_version(&version));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reference(name: &str, version: Option<u64>) -> Reference {
        Reference {
            name: name.into(),
            version,
        }
    }

    #[test]
    fn references_are_a_name_and_an_optional_version() {
        assert_eq!(parse_reference("iris"), Ok(reference("iris", None)));
        assert_eq!(parse_reference("iris@3"), Ok(reference("iris", Some(3))));
        assert_eq!(
            parse_reference("cancer-v2_b@v12"),
            Ok(reference("cancer-v2_b", Some(12)))
        );
        for bad in [
            "",
            "Iris",
            "a/b",
            "../x",
            "@3",
            "iris@",
            "iris@0",
            "iris@03",
            "iris@v",
            "iris@vv3",
            "iris@3@4",
            "iris@-1",
            "iris@latest",
        ] {
            let err = parse_reference(bad).unwrap_err();
            assert!(err.contains("is not a"), "{bad:?}: {err}");
        }
    }

    /// A registry as register_model leaves it: two complete versions, one never finished, and
    /// a directory that is not a version.
    fn registry() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("iris");
        let entry = |v: u64, approval: Value| {
            json!({
                "name": "iris", "version": v, "sha256": format!("{v}").repeat(64),
                "source": "/artifacts/model/model.json",
                "model": {"family": "random_forest", "hyperparameters": {"n_estimators": 5}},
                "task": {"classification": {"classes": 3}},
                "metrics": {"accuracy": 0.9666666666666667, "f1_macro": 0.96, "n": 30,
                            "confusion_matrix": [[10, 0], [0, 20]], "roc_auc": null},
                "note": null,
                "approval": approval,
                "lineage": {"workflow_id": "training-1", "activity_id": "register",
                            "attempt": 2, "details": {"dataset": "/data/iris.csv"}},
                "registered_at": 1_780_000_000u64,
            })
        };
        for (v, approval) in [
            (1, Value::Null),
            (
                2,
                json!({"approved": true, "by": "ana", "comment": "metrics checked"}),
            ),
        ] {
            let dir = base.join(format!("v{v}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("entry.json"), entry(v, approval).to_string()).unwrap();
        }
        fs::create_dir_all(base.join("v3")).unwrap();
        fs::create_dir_all(base.join(".digests")).unwrap();
        fs::create_dir_all(root.path().join("empty")).unwrap();
        root
    }

    #[test]
    fn versions_are_the_complete_ones_and_the_latest_is_the_highest() {
        let root = registry();
        let all = versions(root.path(), "iris").unwrap();
        assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(names(root.path()).unwrap(), ["empty", "iris"]);
        let latest = resolve(root.path(), &reference("iris", None)).unwrap();
        assert_eq!(latest.version, 2);
        assert_eq!(
            resolve(root.path(), &reference("iris", Some(1)))
                .unwrap()
                .version,
            1
        );

        let err = resolve(root.path(), &reference("iris", Some(3))).unwrap_err();
        assert!(
            err.to_string()
                .contains("version 3 of \"iris\" (versions: 1, 2)"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        let err = resolve(root.path(), &reference("nope", None)).unwrap_err();
        assert!(err.to_string().contains("model \"nope\""), "{err}");
        let err = resolve(root.path(), &reference("empty", None)).unwrap_err();
        assert!(
            err.to_string().contains("a complete version of \"empty\""),
            "{err}"
        );
        let err = names(&root.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("MLX_REGISTRY_DIR"), "{err}");
    }

    #[test]
    fn an_unreadable_entry_is_an_error_naming_it() {
        let root = registry();
        let path = root.path().join("iris/v1/entry.json");
        fs::write(&path, "{").unwrap();
        let err = versions(root.path(), "iris").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        fs::write(&path, "[1]").unwrap();
        let err = versions(root.path(), "iris").unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
    }

    #[test]
    fn lists_show_versions_and_models_with_their_headline_metrics() {
        let root = registry();
        let all = versions(root.path(), "iris").unwrap();
        let when = format::clock(1_780_000_000_000);
        let table = render_versions(&all);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("VERSION  SHA256"), "{table}");
        assert!(
            lines[1].starts_with("1        111111111111  random_forest"),
            "{table}"
        );
        assert!(lines[1].contains(&when), "{table}");
        assert!(lines[1].contains("  -  "), "no approval: {table}");
        assert!(lines[2].contains("yes (ana)  training-1"), "{table}");
        assert!(
            lines[2].ends_with("accuracy=0.9667 f1_macro=0.9600"),
            "{table}"
        );

        let models = render_models(&[("iris".into(), all), ("empty".into(), vec![])]);
        let lines: Vec<&str> = models.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "a model without versions is not a row: {models}"
        );
        assert!(
            lines[1].starts_with("iris  2         2       random_forest"),
            "{models}"
        );
    }

    #[test]
    fn show_prints_every_field_and_points_nested_metrics_to_json() {
        let root = registry();
        let v = resolve(root.path(), &reference("iris", None)).unwrap();
        let text = render_version(&v);
        for expected in [
            "name            iris\n",
            "version         2\n",
            &format!("sha256          {}\n", "2".repeat(64)),
            "family          random_forest\n",
            "hyperparameters {\"n_estimators\":5}\n",
            "approval        yes (ana): metrics checked\n",
            "lineage         workflow training-1, activity register, attempt 2\n",
            "                {\"dataset\":\"/data/iris.csv\"}\n",
            "metrics         accuracy = 0.9667\n",
            "                confusion_matrix = (see --json)\n",
            "                n = 30\n",
            "                roc_auc = -\n",
            &format!("model           {}\n", v.dir.join("model.json").display()),
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        let v1 = resolve(root.path(), &reference("iris", Some(1))).unwrap();
        assert!(render_version(&v1).contains("approval        none recorded\n"));
    }
}
