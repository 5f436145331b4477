//! The `register_model` operation: copy a model into `<registry_dir>/<name>/v<N>/` with an
//! entry recording its digest and where it came from.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{files, model_file};

/// Version numbers one registration tries. Each miss means another registration of the same
/// name won a race in the same instant; this many in a row means contention worth backing
/// off from (the error is retryable), not a reason to loop.
pub const MAX_CLAIM_ATTEMPTS: u32 = 16;

/// `register_model`.
pub struct RegisterModel;

impl Operation for RegisterModel {
    const NAME: &str = "register_model";
    const DOC: &str = "Copies a model.json into <registry_dir>/<name>/v<N>/model.json, N one \
                       above the highest existing version (never overwriting one, also under \
                       concurrent registrations), and writes entry.json beside it (written \
                       last: a version with an entry.json is complete).";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("InvalidName", "name is not 1 to 64 of a-z, 0-9, _ and -"),
        ErrorDecl::invalid_input("ArtifactNotFound", "model is missing or not granted"),
        ErrorDecl::invalid_input("InvalidModel", "model is not a trainer model.json"),
        ErrorDecl::invalid_input("UnsupportedModelFormat", "model is of a newer format"),
        ErrorDecl::invalid_input(
            "OutputNotWritable",
            "registry_dir is not granted read-write",
        ),
        ErrorDecl::retryable("ArtifactReadFailed", ""),
        ErrorDecl::retryable("ArtifactWriteFailed", ""),
        ErrorDecl::retryable(
            "RegistryBusy",
            "concurrent registrations took many versions",
        ),
    ];
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn run(input: RegisterInput, _ctx: &Context) -> Result<RegisterOutput, PluginError> {
        register_model(input)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// Path of model.json.
    pub model: String,
    #[schemars(regex(pattern = "^[a-z0-9_-]{1,64}$"))]
    pub name: String,
    #[serde(default = "default_registry_dir")]
    pub registry_dir: String,
    /// Recorded in the entry as given.
    #[serde(default)]
    pub metrics: Option<Map<String, Value>>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RegisterOutput {
    pub entry: Entry,
    /// Path of entry.json.
    pub path: String,
    /// Path of the registered copy.
    pub model_path: String,
}

/// entry.json: what was registered, from where.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    pub name: String,
    #[schemars(range(min = 1))]
    pub version: u64,
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// The model path registered from.
    pub source: String,
    /// What was trained: `{family, hyperparameters}` as train_model's `model` input names it
    /// (every hyperparameter, defaults included), and the task.
    pub model: Value,
    pub task: Value,
    pub metrics: Option<Map<String, Value>>,
    pub note: Option<String>,
}

fn default_registry_dir() -> String {
    "/artifacts/registry".into()
}

pub fn register_model(input: RegisterInput) -> Result<RegisterOutput, PluginError> {
    check_name(&input.name)?;
    let bytes = model_file::read(&input.model)?;
    // A registry is where deployments look; refusing a file that cannot be loaded here keeps
    // the failure at registration instead of at whoever pulls it later.
    let model = model_file::parse(&bytes, &input.model)?;
    let base = Path::new(&input.registry_dir).join(&input.name);
    fs::create_dir_all(&base).map_err(|e| files::write_error(&base, e))?;
    let (version, dir) = claim_version(&base, highest_version(&base)?.saturating_add(1))?;
    let entry = Entry {
        name: input.name,
        version,
        sha256: sha256_hex(&bytes),
        source: input.model,
        model: model.spec_json(),
        task: json!(model.model.task()),
        metrics: input.metrics,
        note: input.note,
    };
    if let Err(e) = write_version(&dir, &bytes, &entry) {
        // Best effort: a version left half-written would stay in the registry for good, and
        // the directory is ours alone since create_dir made it.
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    let path = dir.join("entry.json").display().to_string();
    log::info(
        "model registered",
        &[
            ("name", &entry.name),
            ("version", &version),
            ("path", &path),
        ],
    );
    Ok(RegisterOutput {
        entry,
        path,
        model_path: dir.join("model.json").display().to_string(),
    })
}

/// The name becomes a directory, so only characters that cannot climb out of the registry or
/// collide on case-insensitive filesystems.
fn check_name(name: &str) -> Result<(), PluginError> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    if (1..=64).contains(&name.len()) && name.bytes().all(allowed) {
        return Ok(());
    }
    Err(PluginError::invalid_input(
        "InvalidName",
        format!("name {name:?} must be 1 to 64 characters of a-z, 0-9, '_' and '-'"),
    )
    .with_details(json!({"name": name})))
}

/// `v<digits>` without leading zeros, so `v01` cannot pass for `v1`.
fn parse_version(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?;
    let canonical = !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit());
    if canonical { digits.parse().ok() } else { None }
}

fn highest_version(base: &Path) -> Result<u64, PluginError> {
    let mut highest = 0;
    for entry in fs::read_dir(base).map_err(|e| files::write_error(base, e))? {
        let entry = entry.map_err(|e| files::write_error(base, e))?;
        if let Some(v) = entry.file_name().to_str().and_then(parse_version) {
            highest = highest.max(v);
        }
    }
    Ok(highest)
}

/// Creates the version directory `first` or, if taken, the next free one. `create_dir` fails
/// if the directory exists, so of two concurrent registrations that computed the same number
/// only one gets it; the other moves on.
fn claim_version(base: &Path, first: u64) -> Result<(u64, PathBuf), PluginError> {
    let mut version = first;
    for _ in 0..MAX_CLAIM_ATTEMPTS {
        let dir = base.join(format!("v{version}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((version, dir)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => version = version.saturating_add(1),
            Err(e) => return Err(files::write_error(&dir, e)),
        }
    }
    Err(PluginError::retryable(
        "RegistryBusy",
        format!(
            "{MAX_CLAIM_ATTEMPTS} versions in a row were taken by concurrent registrations \
             under {}",
            base.display()
        ),
    ))
}

fn write_version(dir: &Path, model: &[u8], entry: &Entry) -> Result<(), PluginError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(|e| files::write_error(&path, e))
    };
    write("model.json", model)?;
    // entry.json last and by rename, so a reader that finds it finds a complete version.
    write(
        "entry.json.tmp",
        // Through a Value, whose keys are sorted, as entry.json has always been written.
        &serde_json::to_vec_pretty(&json!(entry)).unwrap_or_default(),
    )?;
    let path = dir.join("entry.json");
    fs::rename(dir.join("entry.json.tmp"), &path).map_err(|e| files::write_error(&path, e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            s.push_str(&format!("{b:02x}"));
            s
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use mlx_plugin_sdk::{Context, ErrorKind};

    use super::*;
    use crate::pipeline_tests::{extract, input, train, workdir};

    /// A real model, trained on iris in `dir`.
    fn trained(name: &str) -> (PathBuf, PathBuf) {
        let dir = workdir(name);
        extract("iris.csv", &dir);
        train(input(&dir, json!({})), &Context::detached(1, None)).unwrap();
        let model = dir.join("model/model.json");
        (dir, model)
    }

    fn register(model: &Path, registry: &Path, extra: Value) -> Result<Value, PluginError> {
        let mut v = json!({"model": model, "name": "iris", "registry_dir": registry});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Context::detached(1, None).call::<RegisterModel>(v)
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn registers_successive_versions_with_digest_and_entry() {
        let (dir, model) = trained("reg-versions");
        let registry = dir.join("registry");
        let bytes = fs::read(&model).unwrap();
        let extra = json!({"metrics": {"accuracy": 0.9}, "note": "first"});
        let first = register(&model, &registry, extra).unwrap();
        let second = register(&model, &registry, json!({})).unwrap();

        let v1 = registry.join("iris/v1");
        assert_eq!(fs::read(v1.join("model.json")).unwrap(), bytes);
        assert_eq!(first["path"], v1.join("entry.json").display().to_string());
        assert_eq!(
            first["model_path"],
            v1.join("model.json").display().to_string()
        );
        let entry: Value =
            serde_json::from_slice(&fs::read(v1.join("entry.json")).unwrap()).unwrap();
        assert_eq!(entry, first["entry"]);
        assert_eq!(entry["sha256"], sha256_hex(&bytes));
        assert_eq!(
            (&entry["name"], &entry["version"], &entry["source"]),
            (
                &json!("iris"),
                &json!(1),
                &json!(model.display().to_string())
            )
        );
        assert_eq!(
            (&entry["metrics"], &entry["note"]),
            (&json!({"accuracy": 0.9}), &json!("first"))
        );

        assert_eq!(second["entry"]["version"], 2);
        assert_eq!(
            (&second["entry"]["metrics"], &second["entry"]["note"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(
            fs::read(registry.join("iris/v2/model.json")).unwrap(),
            bytes
        );
        assert!(!registry.join("iris/v2/entry.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn next_version_is_above_the_highest_and_never_a_taken_one() {
        let base = workdir("reg-claim");
        for name in ["v1", "v2", "v7", "v010", "vx", "notes"] {
            fs::create_dir_all(base.join(name)).unwrap();
        }
        assert_eq!(highest_version(&base).unwrap(), 7);
        assert_eq!(parse_version("v0"), None);
        // As if another registration had taken v1 and v2 after this one scanned.
        assert_eq!(claim_version(&base, 1).unwrap().0, 3);
        assert!(base.join("v3").is_dir());
        for v in 4..=MAX_CLAIM_ATTEMPTS as u64 + 3 {
            fs::create_dir_all(base.join(format!("v{v}"))).unwrap();
        }
        let err = claim_version(&base, 1).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Retryable, "RegistryBusy")
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn concurrent_registrations_get_distinct_versions() {
        let (dir, model) = trained("reg-concurrent");
        let registry = dir.join("registry");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (model, registry) = (model.clone(), registry.clone());
                std::thread::spawn(move || register(&model, &registry, json!({})).unwrap())
            })
            .collect();
        let mut versions: Vec<u64> = threads
            .into_iter()
            .map(|t| t.join().unwrap()["entry"]["version"].as_u64().unwrap())
            .collect();
        versions.sort_unstable();
        assert_eq!(versions, (1..=8).collect::<Vec<_>>());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_bad_names_missing_and_invalid_models() {
        let (dir, model) = trained("reg-errors");
        let registry = dir.join("registry");
        let long = "a".repeat(65);
        for bad in ["", "Iris", "../up", "a/b", "a.b", "a b", long.as_str()] {
            // The host refuses it by the schema's pattern; check_name is the backstop.
            let err = register(&model, &registry, json!({"name": bad})).unwrap_err();
            assert_eq!(err.type_name, "InvalidInput", "{bad:?}");
            let err = check_name(bad).unwrap_err();
            assert_eq!(
                (err.kind, err.type_name.as_str()),
                (ErrorKind::InvalidInput, "InvalidName"),
                "{bad:?}"
            );
        }
        assert!(check_name(&"a".repeat(64)).is_ok());
        assert!(check_name("model_2-b").is_ok());

        let err = register(&dir.join("nope.json"), &registry, json!({})).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "ArtifactNotFound")
        );
        let err = register(&dir.join("test.csv"), &registry, json!({})).unwrap_err();
        assert_eq!(err.type_name, "InvalidModel");
        assert!(!registry.exists(), "a refused registration creates nothing");

        let bad_input = json!({"model": model, "name": "iris", "metrics": [1]});
        let err = mlx_plugin_sdk::parse_input::<RegisterInput>(bad_input).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput");
        fs::remove_dir_all(dir).unwrap();
    }
}
