//! The `register_model` operation: copy a model into `<registry_dir>/<name>/v<N>/` with an
//! entry recording its digest, metrics, lineage and approval.
//!
//! The registry is plain files, shared by every run when operators grant one directory at
//! `/registry` (docs/configuration.md, "A shared model registry"):
//!
//! ```text
//! <registry>/<name>/v<N>/model.json     the registered bytes
//! <registry>/<name>/v<N>/entry.json     written last: its presence makes v<N> complete
//! <registry>/<name>/.digests/<sha256>   a hard link to the entry of the version holding it
//! ```
//!
//! The digest link is what makes registration idempotent: creating a link fails when one
//! exists, so of all registrations of the same bytes under one name (a retry after a lost
//! result, or two runs at once) exactly one commits a version; the others remove the version
//! directory they had claimed and return the winner's entry with `already_registered`.

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

/// The registry root operators grant to every run (the trainer's manifest); without that
/// grant, [`PER_RUN_REGISTRY`].
pub const SHARED_REGISTRY: &str = "/registry";
/// The fallback: a registry inside the run's own artifacts, seen by that run only.
pub const PER_RUN_REGISTRY: &str = "/artifacts/registry";

/// Directory beside the versions holding one link per registered digest.
const DIGESTS: &str = ".digests";

/// `register_model`.
pub struct RegisterModel;

impl Operation for RegisterModel {
    const NAME: &str = "register_model";
    const DOC: &str = "Copies a model.json into <registry_dir>/<name>/v<N>/model.json, N one \
                       above the highest existing version (never overwriting one, also under \
                       concurrent registrations), and writes entry.json beside it (written \
                       last: a version with an entry.json is complete) with the metrics, the \
                       lineage and the approval. Idempotent: the same bytes registered again \
                       under the same name (a retry) return the existing version with \
                       already_registered. registry_dir defaults to /registry when granted \
                       (one registry shared by all runs), else /artifacts/registry.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("InvalidName", "name is not 1 to 64 of a-z, 0-9, _ and -"),
        ErrorDecl::invalid_input("ArtifactNotFound", "model is missing or not granted"),
        ErrorDecl::invalid_input("InvalidModel", "model is not a trainer model.json"),
        ErrorDecl::invalid_input("UnsupportedModelFormat", "model is of a newer format"),
        ErrorDecl::invalid_input(
            "OutputNotWritable",
            "registry_dir is not granted read-write",
        ),
        ErrorDecl::invalid_input(
            "RegistryCorrupt",
            "an entry in the registry is not an entry",
        ),
        ErrorDecl::retryable("ArtifactReadFailed", ""),
        ErrorDecl::retryable("ArtifactWriteFailed", ""),
        ErrorDecl::retryable(
            "RegistryBusy",
            "concurrent registrations took many versions",
        ),
        ErrorDecl::retryable(
            "RegistryInconsistent",
            "a digest link names a version that is gone",
        ),
    ];
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn run(input: RegisterInput, ctx: &Context) -> Result<RegisterOutput, PluginError> {
        let by = Lineage {
            workflow_id: ctx.workflow_id().to_string(),
            activity_id: ctx.activity_id().to_string(),
            attempt: ctx.attempt(),
            details: None,
        };
        register_model(input, by)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// Path of model.json.
    pub model: String,
    #[schemars(regex(pattern = "^[a-z0-9_-]{1,64}$"))]
    pub name: String,
    /// Default: /registry when the trainer is granted it (shared by all runs), else
    /// /artifacts/registry (this run's own).
    #[serde(default)]
    pub registry_dir: Option<String>,
    /// Recorded in the entry as given.
    #[serde(default)]
    pub metrics: Option<Map<String, Value>>,
    #[serde(default)]
    pub note: Option<String>,
    /// Recorded in the entry as given: who approved it, e.g. an approval step's output
    /// (`{approved, by, comment}`).
    #[serde(default)]
    pub approval: Option<Map<String, Value>>,
    /// Recorded in the entry's lineage beside the workflow and step: anything else worth
    /// tracing the version back to (a dataset, the run's params, ...).
    #[serde(default)]
    pub lineage: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RegisterOutput {
    pub entry: Entry,
    /// Path of entry.json.
    pub path: String,
    /// Path of the registered copy.
    pub model_path: String,
    /// The same bytes were already registered under this name (by an earlier attempt or
    /// another run): `entry` is that version's, unchanged, and nothing was written.
    pub already_registered: bool,
}

/// entry.json: what was registered, from where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    /// Entries written before lineage was recorded have none.
    #[serde(default)]
    pub lineage: Option<Lineage>,
    #[serde(default)]
    pub approval: Option<Map<String, Value>>,
    /// Seconds since the Unix epoch, by the worker's clock.
    #[serde(default)]
    pub registered_at: Option<u64>,
}

/// Where a version came from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Lineage {
    /// The workflow that registered it: a pipeline run's workflow id.
    pub workflow_id: String,
    /// The activity: in a pipeline, the step id.
    pub activity_id: String,
    /// The attempt of that activity that committed the version.
    pub attempt: u32,
    /// The `lineage` input, as given.
    pub details: Option<Map<String, Value>>,
}

/// The registry root a registration without `registry_dir` uses.
fn default_registry_dir() -> String {
    let shared = Path::new(SHARED_REGISTRY);
    let root = if shared.is_dir() {
        shared
    } else {
        Path::new(PER_RUN_REGISTRY)
    };
    root.display().to_string()
}

pub fn register_model(
    input: RegisterInput,
    mut by: Lineage,
) -> Result<RegisterOutput, PluginError> {
    check_name(&input.name)?;
    let bytes = model_file::read(&input.model)?;
    // A registry is where deployments look; refusing a file that cannot be loaded here keeps
    // the failure at registration instead of at whoever pulls it later.
    let model = model_file::parse(&bytes, &input.model)?;
    let registry = input.registry_dir.unwrap_or_else(default_registry_dir);
    let base = Path::new(&registry).join(&input.name);
    let sha256 = sha256_hex(&bytes);
    if let Some(found) = registered(&base, &sha256)? {
        return Ok(found);
    }
    let digests = base.join(DIGESTS);
    fs::create_dir_all(&digests).map_err(|e| files::write_error(&digests, e))?;
    let (version, dir) = claim_version(&base, highest_version(&base)?.saturating_add(1))?;
    by.details = input.lineage;
    let entry = Entry {
        name: input.name,
        version,
        sha256,
        source: input.model,
        model: model.spec_json(),
        task: json!(model.model.task()),
        metrics: input.metrics,
        note: input.note,
        lineage: Some(by),
        approval: input.approval,
        registered_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
    };
    match commit_version(&base, &dir, &bytes, &entry) {
        Ok(true) => {}
        Ok(false) => {
            // Another registration of the same bytes committed first: its version is the
            // one, ours was never complete.
            let _ = fs::remove_dir_all(&dir);
            return registered(&base, &entry.sha256)?
                .ok_or_else(|| inconsistent(&base, &entry.sha256));
        }
        Err(e) => {
            // Best effort: the directory is ours alone since create_dir made it, and without
            // its digest link nothing refers to it.
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
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
        already_registered: false,
    })
}

/// A digest link without its version: retryable, since a registration that lost the race for
/// the link may be between its check and its removal; one that stays is an operator's to fix
/// (remove the link, `<name>/.digests/<sha256>`).
fn inconsistent(base: &Path, sha256: &str) -> PluginError {
    PluginError::retryable(
        "RegistryInconsistent",
        format!(
            "{} has a link for sha256 {sha256} but no complete version holding it",
            base.display()
        ),
    )
    .with_details(json!({"link": base.join(DIGESTS).join(sha256)}))
}

/// The version of `base` holding the model with digest `sha256`, if one is complete: by its
/// digest link, else (versions registered before the links existed) by scanning the entries.
/// A link whose version's entry.json was not yet renamed into place (its registration stopped
/// in between) is completed here: the entry was written in full before the link was made.
fn registered(base: &Path, sha256: &str) -> Result<Option<RegisterOutput>, PluginError> {
    let link = base.join(DIGESTS).join(sha256);
    let found = match fs::read(&link) {
        Ok(bytes) => {
            let entry = parse_entry(&bytes, &link)?;
            let dir = base.join(format!("v{}", entry.version));
            let path = dir.join("entry.json");
            if !path.is_file() {
                match fs::rename(dir.join("entry.json.tmp"), &path) {
                    Ok(()) => {}
                    // Renamed by the registration that made the link, meanwhile.
                    Err(e) if e.kind() == ErrorKind::NotFound && path.is_file() => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        return Err(inconsistent(base, sha256));
                    }
                    Err(e) => return Err(files::write_error(&path, e)),
                }
            }
            Some((entry, dir))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => scan(base, sha256)?,
        Err(e) => return Err(files::read_error(&link.display().to_string(), e, "")),
    };
    Ok(found.map(|(entry, dir)| RegisterOutput {
        entry,
        path: dir.join("entry.json").display().to_string(),
        model_path: dir.join("model.json").display().to_string(),
        already_registered: true,
    }))
}

/// The complete version (one with an entry.json) holding `sha256`, by reading every entry.
fn scan(base: &Path, sha256: &str) -> Result<Option<(Entry, PathBuf)>, PluginError> {
    let listing = match fs::read_dir(base) {
        Ok(listing) => listing,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(files::write_error(base, e)),
    };
    let mut versions = Vec::new();
    for item in listing {
        let item = item.map_err(|e| files::write_error(base, e))?;
        if let Some(v) = item.file_name().to_str().and_then(parse_version) {
            versions.push(v);
        }
    }
    versions.sort_unstable();
    for v in versions {
        let dir = base.join(format!("v{v}"));
        let path = dir.join("entry.json");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            // A version whose registration never finished: not in the registry.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(files::read_error(&path.display().to_string(), e, "")),
        };
        let entry = parse_entry(&bytes, &path)?;
        if entry.sha256 == sha256 {
            return Ok(Some((entry, dir)));
        }
    }
    Ok(None)
}

fn parse_entry(bytes: &[u8], path: &Path) -> Result<Entry, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PluginError::invalid_input(
            "RegistryCorrupt",
            format!("{} is not a registry entry: {e}", path.display()),
        )
        .with_details(json!({"path": path}))
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

/// Writes the version and commits it: `Ok(false)` when another registration of the same bytes
/// committed first (the version here is then left for the caller to remove).
fn commit_version(
    base: &Path,
    dir: &Path,
    model: &[u8],
    entry: &Entry,
) -> Result<bool, PluginError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(|e| files::write_error(&path, e))
    };
    write("model.json", model)?;
    let tmp = dir.join("entry.json.tmp");
    write(
        "entry.json.tmp",
        // Through a Value, whose keys are sorted, as entry.json has always been written.
        &serde_json::to_vec_pretty(&json!(entry)).unwrap_or_default(),
    )?;
    // The link is the commit: it fails if the digest has one, and it names a complete entry
    // from the moment it exists, so a registration that stops after it is completed by the
    // next one (see `registered`).
    let link = base.join(DIGESTS).join(&entry.sha256);
    match fs::hard_link(&tmp, &link) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(files::write_error(&link, e)),
    }
    // entry.json last and by rename, so a reader that finds it finds a complete version.
    let path = dir.join("entry.json");
    match fs::rename(&tmp, &path) {
        Ok(()) => Ok(true),
        // Completed by a concurrent retry that found the link first.
        Err(e) if e.kind() == ErrorKind::NotFound && path.is_file() => Ok(true),
        Err(e) => Err(files::write_error(&path, e)),
    }
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

    /// The same model in other bytes (one more trailing newline): another digest.
    fn variant(model: &Path, n: usize) -> PathBuf {
        let mut bytes = fs::read(model).unwrap();
        bytes.extend(std::iter::repeat_n(b'\n', n));
        let path = model.with_file_name(format!("model-{n}.json"));
        fs::write(&path, bytes).unwrap();
        path
    }

    fn register(model: &Path, registry: &Path, extra: Value) -> Result<Value, PluginError> {
        let mut v = json!({"model": model, "name": "iris", "registry_dir": registry});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Context::detached(1, None).call::<RegisterModel>(v)
    }

    /// The complete versions of `iris` (those with an entry.json).
    fn complete(registry: &Path) -> Vec<u64> {
        let mut versions: Vec<u64> = fs::read_dir(registry.join("iris"))
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let v = parse_version(e.file_name().to_str()?)?;
                e.path().join("entry.json").is_file().then_some(v)
            })
            .collect();
        versions.sort_unstable();
        versions
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn registers_successive_versions_with_digest_entry_lineage_and_approval() {
        let (dir, model) = trained("reg-versions");
        let registry = dir.join("registry");
        let bytes = fs::read(&model).unwrap();
        let extra = json!({
            "metrics": {"accuracy": 0.9},
            "note": "first",
            "approval": {"approved": true, "by": "ana", "comment": "ok"},
            "lineage": {"dataset": "/data/iris.csv"},
        });
        let first = register(&model, &registry, extra).unwrap();
        let other = variant(&model, 1);
        let second = register(&other, &registry, json!({})).unwrap();

        let v1 = registry.join("iris/v1");
        assert_eq!(fs::read(v1.join("model.json")).unwrap(), bytes);
        assert_eq!(first["path"], v1.join("entry.json").display().to_string());
        assert_eq!(
            first["model_path"],
            v1.join("model.json").display().to_string()
        );
        assert_eq!(first["already_registered"], false);
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
            (&entry["metrics"], &entry["note"], &entry["approval"]),
            (
                &json!({"accuracy": 0.9}),
                &json!("first"),
                &json!({"approved": true, "by": "ana", "comment": "ok"})
            )
        );
        assert_eq!(
            entry["lineage"],
            json!({"workflow_id": "detached-workflow", "activity_id": "detached-activity",
                   "attempt": 1, "details": {"dataset": "/data/iris.csv"}})
        );
        assert!(entry["registered_at"].as_u64().unwrap() > 1_700_000_000);
        // The digest link is the entry, by another name.
        assert_eq!(
            fs::read(registry.join("iris/.digests").join(sha256_hex(&bytes))).unwrap(),
            fs::read(v1.join("entry.json")).unwrap()
        );

        assert_eq!(second["entry"]["version"], 2);
        assert_eq!(
            (&second["entry"]["metrics"], &second["entry"]["approval"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(
            fs::read(registry.join("iris/v2/model.json")).unwrap(),
            fs::read(&other).unwrap()
        );
        assert!(!registry.join("iris/v2/entry.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_same_bytes_again_return_the_existing_version() {
        let (dir, model) = trained("reg-retry");
        let registry = dir.join("registry");
        let first = register(&model, &registry, json!({"note": "first"})).unwrap();
        // A retry after a lost result; other metadata does not make it another model.
        let again = register(&model, &registry, json!({"note": "retry"})).unwrap();
        assert_eq!(again["already_registered"], true);
        assert_eq!(again["entry"], first["entry"]);
        assert_eq!(
            (&again["path"], &again["model_path"]),
            (&first["path"], &first["model_path"])
        );
        assert_eq!(complete(&registry), [1]);
        // Another name is another registry: the same bytes are its v1.
        let other = Context::detached(1, None)
            .call::<RegisterModel>(
                json!({"model": model, "name": "iris-b", "registry_dir": registry}),
            )
            .unwrap();
        assert_eq!(
            (&other["entry"]["version"], &other["already_registered"]),
            (&json!(1), &json!(false))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn versions_registered_before_digest_links_are_found_by_their_entries() {
        let (dir, model) = trained("reg-legacy");
        let registry = dir.join("registry");
        register(&model, &registry, json!({})).unwrap();
        fs::remove_dir_all(registry.join("iris/.digests")).unwrap();
        let again = register(&model, &registry, json!({})).unwrap();
        assert_eq!(
            (&again["entry"]["version"], &again["already_registered"]),
            (&json!(1), &json!(true))
        );
        assert_eq!(complete(&registry), [1]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_half_written_version_is_not_registered_and_its_number_is_skipped() {
        let (dir, model) = trained("reg-half");
        let registry = dir.join("registry");
        // A registration that stopped before its link: model.json, no entry.
        fs::create_dir_all(registry.join("iris/v1")).unwrap();
        fs::copy(&model, registry.join("iris/v1/model.json")).unwrap();
        let out = register(&model, &registry, json!({})).unwrap();
        assert_eq!(
            (&out["entry"]["version"], &out["already_registered"]),
            (&json!(2), &json!(false))
        );
        assert_eq!(complete(&registry), [2]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_registration_stopped_after_its_link_is_completed_by_the_retry() {
        let (dir, model) = trained("reg-stopped");
        let registry = dir.join("registry");
        let first = register(&model, &registry, json!({})).unwrap();
        // As if it had stopped between the link and the rename.
        let v1 = registry.join("iris/v1");
        fs::rename(v1.join("entry.json"), v1.join("entry.json.tmp")).unwrap();
        assert_eq!(complete(&registry), Vec::<u64>::new());
        let again = register(&model, &registry, json!({})).unwrap();
        assert_eq!(again["already_registered"], true);
        assert_eq!(again["entry"], first["entry"]);
        assert_eq!(complete(&registry), [1]);

        // A link whose version is gone is an error that names it, not a second version.
        fs::remove_dir_all(&v1).unwrap();
        let err = register(&model, &registry, json!({})).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Retryable, "RegistryInconsistent")
        );
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
    fn concurrent_registrations_of_other_models_get_distinct_versions() {
        let (dir, model) = trained("reg-concurrent");
        let registry = dir.join("registry");
        let threads: Vec<_> = (1..=8)
            .map(|n| {
                let (model, registry) = (variant(&model, n), registry.clone());
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
    fn concurrent_registrations_of_one_model_make_one_version() {
        let (dir, model) = trained("reg-concurrent-same");
        let registry = dir.join("registry");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (model, registry) = (model.clone(), registry.clone());
                std::thread::spawn(move || register(&model, &registry, json!({})).unwrap())
            })
            .collect();
        let outputs: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let version = &outputs[0]["entry"]["version"];
        assert!(
            outputs.iter().all(|o| &o["entry"]["version"] == version),
            "{outputs:#?}"
        );
        let committed = outputs
            .iter()
            .filter(|o| o["already_registered"] == false)
            .count();
        assert_eq!(committed, 1, "{outputs:#?}");
        assert_eq!(complete(&registry), [version.as_u64().unwrap()]);
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

        // An entry that is not one is named, not taken for another model.
        register(&model, &registry, json!({})).unwrap();
        fs::remove_dir_all(registry.join("iris/.digests")).unwrap();
        fs::write(registry.join("iris/v1/entry.json"), b"{").unwrap();
        let err = register(&model, &registry, json!({})).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "RegistryCorrupt")
        );

        let bad_input = json!({"model": model, "name": "iris", "metrics": [1]});
        let err = mlx_plugin_sdk::parse_input::<RegisterInput>(bad_input).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput");
        let bad_input = json!({"model": model, "name": "iris", "approval": "yes"});
        let err = mlx_plugin_sdk::parse_input::<RegisterInput>(bad_input).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput");
        fs::remove_dir_all(dir).unwrap();
    }
}
