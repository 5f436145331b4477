//! A run's files on the shared artifact store (`worker.artifacts_store`), as one invocation
//! sees them: a private local copy of what the run has committed, mounted at `/artifacts`,
//! and, when the invocation succeeds, one commit of what it changed.
//!
//! A copy per invocation (not one directory per run, as without a store) because fan-out
//! items of one run write at once on one worker, and a commit must carry only its own
//! invocation's files, whole; and because a retry must see the inputs of its first attempt,
//! not what that attempt left half-written.

use std::path::{Path, PathBuf};

use mlx_artifacts::{ArtifactStore, Commit, Snapshot, StoreError};
use mlx_runtime::{
    contract::InvocationContext, failure::InvocationError, sandbox::workflow_dir_name,
};

/// The worker's side of the store: where copies are made and how much one may fetch.
#[derive(Debug)]
pub struct RunFiles {
    store: ArtifactStore,
    /// `worker.artifacts_store` as configured, for naming the run's files in lineage.
    url: String,
    /// `<artifacts_dir>/.work`: one directory per invocation in flight.
    work_root: PathBuf,
    fetch_max_bytes: u64,
}

/// One invocation's copy of its run's files; removed (in the background) when dropped.
pub struct WorkCopy {
    pub dir: PathBuf,
    run: String,
    commit_id: String,
    before: Snapshot,
}

impl Drop for WorkCopy {
    fn drop(&mut self) {
        let dir = self.dir.clone();
        // Off the activity's path: a model directory can take a while to delete.
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), "removing a work copy failed: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

impl RunFiles {
    pub fn open(
        url: &str,
        artifacts_dir: &Path,
        fetch_max_bytes: u64,
        cache_max_bytes: u64,
    ) -> Result<Self, StoreError> {
        // Per process: workers may share an artifacts directory (the step cache allows it),
        // and one starting must not delete another's copies in flight.
        let work_root = artifacts_dir
            .join(".work")
            .join(std::process::id().to_string());
        clear_dead_copies(&artifacts_dir.join(".work"));
        let store = ArtifactStore::open(url, &artifacts_dir.join(".blob-cache"), cache_max_bytes)?;
        Ok(Self {
            store,
            url: url.to_string(),
            work_root,
            fetch_max_bytes,
        })
    }

    /// Where a run's files are, for OpenLineage: `(namespace, name prefix)`, the namespace
    /// being the store's scheme and bucket (`s3://bucket`) and the names logical places under
    /// `PREFIX/runs/RUN/` (the bytes are content-addressed; the version facet is their digest).
    /// A store on a local path is namespace `file`, as the worker's own files are.
    pub fn dataset_root(&self, workflow_id: &str) -> (String, String) {
        dataset_root(&self.url, workflow_id)
    }

    /// A fresh copy of the run's committed files for this invocation. `run_id` (Temporal's)
    /// keeps commit ids of a reused workflow id apart.
    pub async fn checkout(
        &self,
        invocation: &InvocationContext,
        run_id: Option<&str>,
    ) -> Result<WorkCopy, InvocationError> {
        let run = workflow_dir_name(&invocation.workflow_id);
        let step = workflow_dir_name(&invocation.activity_id);
        let commit_id = workflow_dir_name(&format!(
            "{step}.{}.{}",
            invocation.attempt,
            run_id.unwrap_or("-")
        ));
        let dir = self
            .work_root
            .join(&run)
            .join(format!("{commit_id}.{}", uuid::Uuid::new_v4().simple()));
        let before = self
            .store
            .materialise(&run, &dir, self.fetch_max_bytes)
            .await;
        // Built before the error check, so a half-made copy is removed too.
        let mut copy = WorkCopy {
            dir,
            run,
            commit_id,
            before: Snapshot::default(),
        };
        copy.before = before.map_err(|e| classified("fetching the run's files", &e))?;
        Ok(copy)
    }

    /// Uploads what the invocation changed in `copy` and commits it: from now on every
    /// worker's copies of the run have it.
    pub async fn commit(&self, copy: &WorkCopy) -> Result<Commit, InvocationError> {
        self.store
            .commit(&copy.run, &copy.dir, &copy.before, &copy.commit_id)
            .await
            .map_err(|e| classified("committing the step's files", &e))
    }
}

/// Removes the copies of worker processes that are gone (killed before they could), and any
/// of an earlier process with this one's id. Where `/proc` does not say, nothing is removed.
fn clear_dead_copies(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_pid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
        let dead = name == own
            || (Path::new("/proc/self").exists() && !Path::new("/proc").join(&name).exists());
        if is_pid
            && dead
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(dir = %entry.path().display(), "clearing old work copies failed: {e}");
        }
    }
}

fn classified(doing: &str, e: &StoreError) -> InvocationError {
    InvocationError::Artifacts {
        message: format!("{doing}: {e}"),
        retryable: e.is_retryable(),
    }
}

fn dataset_root(url: &str, workflow_id: &str) -> (String, String) {
    let run = workflow_dir_name(workflow_id);
    let url = url.trim_end_matches('/');
    let (namespace, path) = match url.split_once("://") {
        Some(("file", path)) => ("file".to_string(), path.to_string()),
        Some((scheme, rest)) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("{scheme}://{bucket}"), prefix.to_string())
        }
        None => ("file".to_string(), url.to_string()),
    };
    let name = match path.trim_matches('/') {
        "" if namespace != "file" => format!("runs/{run}"),
        _ => format!("{}/runs/{run}", path.trim_end_matches('/')),
    };
    (namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_copies_of_processes_that_are_gone_are_cleared() {
        let root = tempfile::tempdir().unwrap();
        let own = std::process::id().to_string();
        // pid 1 is alive on any Linux; a pid above the kernel's maximum never is.
        for name in [own.as_str(), "1", "4194305", "not-a-pid"] {
            std::fs::create_dir_all(root.path().join(name).join("run")).unwrap();
        }
        clear_dead_copies(root.path());
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["1", "not-a-pid"].map(String::from).into());
    }

    #[test]
    fn lineage_names_a_runs_files_by_the_store_not_the_worker() {
        let of = |url: &str| dataset_root(url, "sweep-1");
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            of("s3://ml/runs-store/"),
            pair("s3://ml", "runs-store/runs/sweep-1")
        );
        assert_eq!(of("gs://ml"), pair("gs://ml", "runs/sweep-1"));
        assert_eq!(
            of("file:///srv/store"),
            pair("file", "/srv/store/runs/sweep-1")
        );
        assert_eq!(of("/srv/store"), pair("file", "/srv/store/runs/sweep-1"));
    }
}
