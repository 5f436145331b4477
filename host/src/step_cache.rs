//! The step cache: a successful invocation's result, reused by a later identical one.
//!
//! Identical means the same component bytes (the plugin's digest), operation and input
//! (canonical JSON), and the same content of every file the input names: `/artifacts/...`
//! paths in the run's artifacts directory and paths under the plugin's `[[filesystem]]`
//! grants. Changing any of them is a miss. The files a result names under `/artifacts/` are
//! kept too (content-addressed), and copied into a later run's artifacts directory on a hit,
//! so the steps after a cached one read them as if it had run.
//!
//! Everything lives under `<artifacts>/.step-cache/` (`workflow_dir_name` never starts with a
//! dot): `entries/<key>.json` and `blobs/<sha256>`, each written under a temporary name and
//! renamed, so a reader sees a whole file or none and two workers storing the same step at
//! once both leave a valid entry. Workers that share the artifacts root (docs/pipelines.md, "Step caching") share
//! the cache. It is kept within `worker.step_cache_max_mb`, least recently used entries first
//! ([`evict`]).

use std::{
    fs,
    io::{self, Read, Write},
    path::{Component, Path, PathBuf},
};

use mlx_pipeline::CacheSource;
use mlx_runtime::plugin::{loader::LoadedPlugin, manifest::DirGrant};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped when what goes into a key or an entry changes, so old entries are misses.
const FORMAT: u32 = 1;
/// Files hashed for one key: a step naming a directory of more is not cached.
pub(crate) const MAX_FILES: usize = 10_000;
/// Bytes of files one entry may keep: the cache's copies are disk the worker spends on a
/// plugin's behalf, so a result naming more is not cached. The default per-call write quota.
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;
pub(crate) const ARTIFACTS: &str = "/artifacts";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("not cacheable: {0}")]
    NotCacheable(String),
    #[error("cache entry {path}: {source}")]
    Entry {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One cached result.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: u32,
    output: Value,
    from: CacheSource,
    /// Files under the run's artifacts directory the output names, relative to it.
    files: Vec<StoredFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredFile {
    path: String,
    sha256: String,
}

/// What a hit gives back: the output, and the run that computed it.
#[derive(Debug)]
pub struct Hit {
    pub output: Value,
    pub from: CacheSource,
}

#[derive(Debug, Clone)]
pub struct StepCache {
    /// `<artifacts>/.step-cache`.
    root: PathBuf,
    max_entry_bytes: u64,
}

impl StepCache {
    pub fn new(artifacts_dir: &Path) -> Self {
        Self {
            root: artifacts_dir.join(".step-cache"),
            max_entry_bytes: MAX_ENTRY_BYTES,
        }
    }

    /// The same cache keeping at most `bytes` of files per entry.
    pub fn with_max_entry_bytes(mut self, bytes: u64) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The key of invoking `operation` of `plugin` on `input` in the run whose artifacts are in
    /// `run_dir`.
    pub fn key(
        &self,
        plugin: &LoadedPlugin,
        operation: &str,
        input: &Value,
        run_dir: &Path,
    ) -> Result<String, CacheError> {
        key(
            &plugin.digest,
            &plugin.manifest.dirs,
            operation,
            input,
            run_dir,
        )
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(format!("{key}.json"))
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    /// The cached result of `key`, with its files copied into `run_dir`; None on a miss. An
    /// entry whose files are gone or altered is a miss, never a half-restored step.
    pub fn get(&self, key: &str, run_dir: &Path) -> Result<Option<Hit>, CacheError> {
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|source| CacheError::Entry {
            path: path.clone(),
            source,
        })?;
        if entry.format != FORMAT {
            return Ok(None);
        }
        for file in &entry.files {
            let blob = self.blob_path(&file.sha256);
            if !blob.is_file() {
                tracing::warn!(blob = %blob.display(), "step cache blob missing; running the step");
                return Ok(None);
            }
        }
        for file in &entry.files {
            let rel = relative(&file.path)?;
            no_symlinks(run_dir, &rel)?;
            let target = run_dir.join(&rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            // A file already there (say, from an earlier attempt) is replaced, never written
            // through.
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {
                    return Err(CacheError::NotCacheable(format!(
                        "{} is a directory",
                        target.display()
                    )));
                }
                Ok(_) => fs::remove_file(&target).map_err(io_error(&target))?,
                Err(_) => {}
            }
            let blob = self.blob_path(&file.sha256);
            let copied = copy_hashing(&blob, &target)?;
            if copied != file.sha256 {
                let _ = fs::remove_file(&target);
                tracing::warn!(blob = %blob.display(), "step cache blob altered; running the step");
                return Ok(None);
            }
        }
        Self::touch(&path);
        Ok(Some(Hit {
            output: entry.output,
            from: entry.from,
        }))
    }

    /// Stores a successful result and the files its output names under `/artifacts/`.
    pub fn put(
        &self,
        key: &str,
        output: &Value,
        from: CacheSource,
        run_dir: &Path,
    ) -> Result<(), CacheError> {
        let named = named_paths(output);
        let mut found = Vec::new();
        let mut budget = MAX_FILES;
        for guest in named {
            let Some(rel) = guest.strip_prefix(ARTIFACTS) else {
                continue;
            };
            let rel = relative(rel)?;
            no_symlinks(run_dir, &rel)?;
            found.extend(walk(&run_dir.join(&rel), &rel, &mut budget)?);
        }
        let mut bytes = 0u64;
        for (_, file) in &found {
            bytes += fs::metadata(file).map_err(io_error(file))?.len();
        }
        if bytes > self.max_entry_bytes {
            return Err(CacheError::NotCacheable(format!(
                "the files its result names hold {bytes} bytes, more than the {} an entry keeps",
                self.max_entry_bytes
            )));
        }
        let mut files = Vec::new();
        for (file_rel, file_host) in found {
            let sha256 = self.store_blob(&file_host)?;
            files.push(StoredFile {
                path: file_rel.display().to_string(),
                sha256,
            });
        }
        let entry = Entry {
            format: FORMAT,
            output: output.clone(),
            from,
            files,
        };
        let path = self.entry_path(key);
        let bytes = serde_json::to_vec(&entry).map_err(|source| CacheError::Entry {
            path: path.clone(),
            source,
        })?;
        write_atomically(&path, &bytes)
    }

    /// Copies `file` into the blob store under its digest (kept if already there).
    fn store_blob(&self, file: &Path) -> Result<String, CacheError> {
        let dir = self.root.join("blobs");
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_error(&dir))?;
        let tmp_path = tmp.path().to_path_buf();
        let sha256 = copy_into(file, tmp.as_file_mut(), &tmp_path)?;
        let blob = self.blob_path(&sha256);
        if !blob.exists() {
            tmp.persist(&blob).map_err(|e| io_error(&blob)(e.error))?;
        }
        Ok(sha256)
    }
}

/// [`StepCache::key`], for a plugin of `digest` with `grants`.
fn key(
    digest: &str,
    grants: &[DirGrant],
    operation: &str,
    input: &Value,
    run_dir: &Path,
) -> Result<String, CacheError> {
    let paths = named_paths(input);
    let mut files = Vec::new();
    let mut budget = MAX_FILES;
    for guest in paths {
        let Some(host) = resolve(grants, guest, run_dir)? else {
            continue;
        };
        files.push((guest.to_string(), content_digest(&host, &mut budget)?));
    }
    let material = serde_json::json!({
        "format": FORMAT,
        "plugin": digest,
        "operation": operation,
        "input": canonical(input),
        "files": files,
    });
    Ok(hex(&Sha256::digest(material.to_string())))
}

/// Every string in `value` that looks like an absolute path, sorted, each once: the order a
/// key or a record lists them in, whatever order the JSON had.
pub(crate) fn named_paths(value: &Value) -> Vec<&str> {
    let mut paths = Vec::new();
    strings(value, &mut paths);
    paths.sort();
    paths.dedup();
    paths
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) if s.starts_with('/') => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The host path of a guest path the plugin can read: under `/artifacts` (the run's
/// directory) or a `[[filesystem]]` grant. None for any other string.
pub(crate) fn resolve(
    grants: &[DirGrant],
    guest: &str,
    run_dir: &Path,
) -> Result<Option<PathBuf>, CacheError> {
    let under = |prefix: &str| -> Option<String> {
        let prefix = prefix.trim_end_matches('/');
        match guest.strip_prefix(prefix)? {
            "" => Some(String::new()),
            rest if rest.starts_with('/') => Some(rest.to_string()),
            _ => None,
        }
    };
    if let Some(rest) = under(ARTIFACTS) {
        return Ok(Some(run_dir.join(relative(&rest)?)));
    }
    let mut grants: Vec<_> = grants.iter().collect();
    grants.sort_by_key(|g| std::cmp::Reverse(g.guest.len()));
    for grant in grants {
        if let Some(rest) = under(&grant.guest) {
            return Ok(Some(grant.host.join(relative(&rest)?)));
        }
    }
    Ok(None)
}

/// `path` as a relative path of plain components: `..` could name files outside the run.
pub(crate) fn relative(path: &str) -> Result<PathBuf, CacheError> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(rel.to_path_buf())
    } else {
        Err(CacheError::NotCacheable(format!(
            "{path:?} is not a plain path"
        )))
    }
}

/// Refuses a path through a symbolic link: a plugin may make links in its artifacts
/// directory, and the worker must not read or write through them outside the run.
pub(crate) fn no_symlinks(base: &Path, rel: &Path) -> Result<(), CacheError> {
    let mut path = base.to_path_buf();
    for component in rel.components() {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_symlink() => {
                return Err(CacheError::NotCacheable(format!(
                    "{} is a symbolic link",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// The digest of what is at `path`: a file's content, a directory's files (names and
/// contents), a symbolic link's target, or that nothing is there (so creating it is a miss).
fn content_digest(path: &Path, budget: &mut usize) -> Result<String, CacheError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok("absent".into()),
        Err(e) => return Err(io_error(path)(e)),
    };
    if meta.is_file() {
        take(budget, path)?;
        return hash_file(path);
    }
    if meta.is_symlink() {
        let target = fs::read_link(path).map_err(io_error(path))?;
        return Ok(format!("symlink:{}", target.display()));
    }
    let mut hasher = Sha256::new();
    for (rel, file) in walk(path, Path::new(""), budget)? {
        hasher.update(rel.display().to_string());
        hasher.update([0]);
        hasher.update(hash_file(&file)?);
        hasher.update([0]);
    }
    Ok(format!("dir:{}", hex(&hasher.finalize())))
}

fn take(budget: &mut usize, path: &Path) -> Result<(), CacheError> {
    *budget = budget.checked_sub(1).ok_or_else(|| {
        CacheError::NotCacheable(format!(
            "more than {MAX_FILES} files under {}",
            path.display()
        ))
    })?;
    Ok(())
}

/// The regular files at `path` (itself, or under it in name order) as (`rel`/…, host path).
/// Symbolic links are not followed.
pub(crate) fn walk(
    path: &Path,
    rel: &Path,
    budget: &mut usize,
) -> Result<Vec<(PathBuf, PathBuf)>, CacheError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path)(e)),
    };
    if meta.is_file() {
        take(budget, path)?;
        return Ok(vec![(rel.to_path_buf(), path.to_path_buf())]);
    }
    if !meta.is_dir() {
        return Ok(Vec::new());
    }
    let mut names: Vec<_> = fs::read_dir(path)
        .map_err(io_error(path))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_error(path))?;
    names.sort();
    let mut files = Vec::new();
    for name in names {
        files.extend(walk(&path.join(&name), &rel.join(&name), budget)?);
    }
    Ok(files)
}

pub(crate) fn hash_file(path: &Path) -> Result<String, CacheError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_error(path))?;
    Ok(hex(&hasher.finalize()))
}

/// Copies `from` into a new file `to`, returning the digest of what was copied.
fn copy_hashing(from: &Path, to: &Path) -> Result<String, CacheError> {
    // create_new: never through a link someone made at `to` meanwhile.
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_error(to))?;
    copy_into(from, &mut dst, to)
}

fn copy_into(from: &Path, dst: &mut impl Write, to: &Path) -> Result<String, CacheError> {
    let mut src = fs::File::open(from).map_err(io_error(from))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = src.read(&mut buf).map_err(io_error(from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io_error(to))?;
    }
    Ok(hex(&hasher.finalize()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().expect("entries live in a directory");
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_error(dir))?;
    tmp.write_all(bytes).map_err(io_error(tmp.path()))?;
    tmp.persist(path).map_err(|e| io_error(path)(e.error))?;
    Ok(())
}

/// `value` with every object's keys in order, so equal inputs give equal keys whatever order
/// their fields were written in.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<_, _> =
                map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "step_cache_tests.rs"]
mod tests;

#[path = "step_cache_evict.rs"]
pub mod evict;
