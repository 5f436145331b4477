//! Precompiled components on disk, so a restart (or a reload of an unchanged file) does not
//! compile again. Loading native code from disk is `unsafe` in wasmtime: the bytes are trusted
//! to be what wasmtime itself wrote. So the worker trusts an entry only when
//!
//! - the cache directory belongs to the worker's user and nobody else can write to it (checked
//!   when the cache is opened; the worker creates it `0700`),
//! - the entry's name carries the SHA-256 of the `.wasm` and a digest of the engine's
//!   compatibility hash (wasmtime version, compiler settings, target): another engine never
//!   picks it up,
//! - a sidecar written *after* the artifact holds the SHA-256 of the artifact and the identity
//!   of the file as written (size, modification and change times, inode). If the file is still
//!   that one, it is mapped as it is; otherwise its bytes must hash to the SHA-256 (a torn
//!   write, a truncated file or a flipped bit is caught either way: each changes the file).
//!
//! Hashing a 60 MB artifact on every load cost more than the rest of a warm load of an
//! interpreter component, and reading it copied it once more than mapping does; the file's
//! identity is the cheaper proof, as only this user can change the directory. Entries are
//! replaced by rename, never rewritten in place, so a mapped artifact never changes under a
//! loaded component.
//!
//! Anything else is recompiled and overwritten, with one warning; the cache never fails a load.

use std::{
    hash::{Hash, Hasher},
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, component::Component};

use super::compile_cache_evict as evict;

#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    /// Most bytes of artifacts kept ([`super::compile_cache_evict`]).
    max_bytes: u64,
    /// Hex digest of the engine's compatibility hash.
    engine_key: String,
}

/// Why the cache directory cannot be used: an I/O failure, or a directory someone else
/// could plant native code in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("compile cache {}: {doing}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("compile cache {}: {problem}", dir.display())]
    Unsafe { dir: PathBuf, problem: String },
}

/// What a lookup found.
pub enum Lookup {
    Hit(Component),
    /// Nothing usable; the reason is logged when it is worth an operator's attention.
    Miss,
}

impl CompileCache {
    /// Opens (creating, `0700`) the cache directory and checks that only this user can write
    /// to it: an entry planted by someone else would run as native code in the worker.
    pub fn open(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<Self, CacheError> {
        let io = |doing: &'static str| {
            move |source| CacheError::Io {
                dir: dir.to_path_buf(),
                doing,
                source,
            }
        };
        let fail = |problem: String| CacheError::Unsafe {
            dir: dir.to_path_buf(),
            problem,
        };
        std::fs::create_dir_all(dir).map_err(io("cannot create"))?;
        let meta = std::fs::metadata(dir).map_err(io("cannot read its metadata"))?;
        // A file created here is owned by the effective uid, and proves the directory writable.
        let uid = tempfile::tempfile_in(dir)
            .and_then(|f| f.metadata())
            .map(|m| m.uid())
            .map_err(io("not writable"))?;
        if meta.uid() != uid {
            return Err(fail(format!(
                "owned by uid {}, not by the worker's uid {uid}; use a directory of the worker's own",
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(fail(format!(
                "is writable by group or others (mode {:o}); run `chmod go-w` on it",
                meta.permissions().mode() & 0o777
            )));
        }
        sweep_abandoned(dir);
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:x}", hasher.0.finalize());
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            engine_key: engine_key[..16].to_string(),
        })
    }

    fn entry(&self, wasm_sha256_hex: &str) -> (PathBuf, PathBuf) {
        let stem = format!("{wasm_sha256_hex}-{}", self.engine_key);
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.sha256")),
        )
    }

    /// The precompiled component for a `.wasm` with this digest, if a trustworthy one exists.
    pub fn lookup(&self, engine: &Engine, wasm_sha256_hex: &str) -> Lookup {
        let (artifact, sidecar_path) = self.entry(wasm_sha256_hex);
        let Ok(sidecar) = std::fs::read_to_string(&sidecar_path) else {
            return Lookup::Miss;
        };
        let mut lines = sidecar.lines();
        let expected = lines.next().unwrap_or_default().trim();
        let unchanged = match (lines.next(), std::fs::metadata(&artifact)) {
            (Some(written), Ok(now)) => written.trim() == identity(&now),
            _ => false,
        };
        if !unchanged {
            match std::fs::read(&artifact) {
                Ok(bytes) if format!("{:x}", Sha256::digest(&bytes)) == expected => {}
                Ok(_) => {
                    tracing::warn!(entry = %artifact.display(), "compile cache entry does not match its checksum, recompiling");
                    return Lookup::Miss;
                }
                Err(e) => {
                    tracing::warn!(entry = %artifact.display(), "compile cache entry unreadable, recompiling: {e}");
                    return Lookup::Miss;
                }
            }
        }
        // SAFETY: the file is the one `store` wrote with `Component::serialize` (unchanged
        // since, or hashing to what was written, in a directory only this user can write, where
        // entries are replaced by rename and never modified in place); wasmtime itself rejects
        // artifacts of another version or configuration.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => {
                evict::mark_used(&sidecar_path);
                Lookup::Hit(component)
            }
            Err(e) => {
                tracing::warn!(entry = %artifact.display(), "compile cache entry rejected by wasmtime, recompiling: {e:#}");
                Lookup::Miss
            }
        }
    }

    /// Where the entries are: a compiler process writes its artifact here, so that
    /// [`Self::adopt`] is a rename.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `artifact` (written by the compiler process, in [`Self::dir`]) and makes it the
    /// entry for this `.wasm`. Only a failure to load is returned, and such an artifact is not
    /// kept; a cache that cannot keep a good one is logged.
    pub fn adopt(
        &self,
        engine: &Engine,
        wasm_sha256_hex: &str,
        artifact: tempfile::NamedTempFile,
    ) -> wasmtime::Result<Component> {
        // SAFETY: the compiler process (this executable, see `compiler`) wrote the file with
        // `Engine::precompile_component`, in a directory only this user can write; wasmtime
        // rejects artifacts of another version or configuration. The mapping outlives the
        // rename below: it follows the file, not its name.
        let component = unsafe { Component::deserialize_file(engine, artifact.path()) }?;
        let (path, sidecar) = self.entry(wasm_sha256_hex);
        let kept = artifact
            .as_file()
            .sync_all()
            .and_then(|()| sha256_of(artifact.path()))
            .map_err(|e| e.to_string())
            .and_then(|digest| {
                // Sidecar last, as in `store`: an entry without one is a miss.
                let _ = std::fs::remove_file(&sidecar);
                artifact.persist(&path).map_err(|e| e.error.to_string())?;
                self.seal(&path, &sidecar, &digest)
            });
        self.stored(&path, kept);
        Ok(component)
    }

    /// Stores a freshly compiled component. Failures are logged, never returned: the cache is
    /// an optimisation.
    pub fn store(&self, wasm_sha256_hex: &str, component: &Component) {
        let (artifact, sidecar) = self.entry(wasm_sha256_hex);
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|bytes| {
                let digest = format!("{:x}", Sha256::digest(&bytes));
                // Sidecar last: an entry without one (a crash in between) is a miss.
                let _ = std::fs::remove_file(&sidecar);
                write_atomically(&self.dir, &artifact, &bytes)?;
                self.seal(&artifact, &sidecar, &digest)
            });
        self.stored(&artifact, result);
    }

    /// Writes the sidecar of the artifact now at `artifact`: its SHA-256 and its identity
    /// after the rename, which is what a lookup will see.
    fn seal(&self, artifact: &Path, sidecar: &Path, digest: &str) -> Result<(), String> {
        let written = std::fs::metadata(artifact).map_err(|e| e.to_string())?;
        let text = format!("{digest}\n{}\n", identity(&written));
        write_atomically(&self.dir, sidecar, text.as_bytes())
    }

    /// What storing the entry at `artifact` came to: a kept entry may push older ones out; a
    /// failure is logged, never returned (the cache never fails a load).
    fn stored(&self, artifact: &Path, result: Result<(), String>) {
        match result {
            Ok(()) => evict::evict(&self.dir, self.max_bytes, artifact),
            Err(e) => {
                tracing::warn!(entry = %artifact.display(), "could not store a compile cache entry: {e}")
            }
        }
    }
}

/// A file's identity as the sidecar records it: any write or replacement changes one of these
/// (the change time cannot be set by a user).
fn identity(meta: &std::fs::Metadata) -> String {
    format!(
        "{} {}.{} {}.{} {} {}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
        meta.dev()
    )
}

/// Temporary files older than this in the cache directory were left by a worker that died
/// writing them (kill -9 mid-compile); younger ones may be another worker's, mid-write, when
/// workers share the directory.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary files (`.tmp*`, tempfile's prefix) of writes that never finished.
fn sweep_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(".tmp")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > ABANDONED_AFTER));
        if abandoned && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed an abandoned compile cache file");
        }
    }
}

/// The SHA-256 of a file in hex, read in blocks: an artifact can be tens of MiB, which the
/// worker's heap need not hold.
fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0; 64 << 10];
    loop {
        match file.read(&mut block)? {
            0 => return Ok(format!("{:x}", hasher.finalize())),
            n => hasher.update(&block[..n]),
        }
    }
}

/// Writes to a temporary file in `dir`, syncs it and renames it over `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    tmp.write_all(bytes).map_err(|e| e.to_string())?;
    tmp.as_file().sync_all().map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.to_string())?;
    Ok(())
}

/// Feeds `Hash` output into SHA-256, for a digest that is stable across processes (std's
/// `DefaultHasher` promises no such thing).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the full digest is used.
        0
    }
}
