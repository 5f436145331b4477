//! The configuration file, watched while the worker runs: a change is re-read as SIGHUP is.
//! An orchestrator that updates a mounted file sends no signal (a Kubernetes ConfigMap volume
//! swaps a `..data` symlink beside the file), so the file's directory is watched, not the file.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use mlx_runtime::plugin::reload::{QUIET, is_content_change};

pub struct ConfigWatch {
    rx: mpsc::UnboundedReceiver<()>,
    _watcher: notify::RecommendedWatcher,
}

/// Whether a change at `changed` may change the file `config` (itself, or the `..data`
/// link a ConfigMap volume swaps).
fn concerns(config: &Path, changed: &Path) -> bool {
    let name = changed.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (changed.file_name().is_some() && changed.file_name() == config.file_name())
        || name.starts_with("..data")
}

impl ConfigWatch {
    pub fn start(config: &Path) -> Result<Self, notify::Error> {
        let config: PathBuf = std::path::absolute(config)?;
        let dir = config.parent().unwrap_or(Path::new("/")).to_path_buf();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && is_content_change(&event.kind)
                    && event.paths.iter().any(|p| concerns(&config, p))
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Self {
            rx,
            _watcher: watcher,
        })
    }

    /// Resolves once the file changed and then stayed still for [`QUIET`] (an editor's save is
    /// several events; a half-written file is not read).
    pub async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await?;
        loop {
            match tokio::time::timeout(QUIET, self.rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return None,
                Err(_) => return Some(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_and_a_configmaps_data_link_concern_it_and_nothing_else() {
        let config = Path::new("/etc/mlx/worker.toml");
        assert!(concerns(config, Path::new("/etc/mlx/worker.toml")));
        assert!(concerns(config, Path::new("/etc/mlx/..data")));
        assert!(concerns(config, Path::new("/etc/mlx/..data_tmp")));
        assert!(!concerns(config, Path::new("/etc/mlx/other.toml")));
        assert!(!concerns(config, Path::new("/etc/mlx/.worker.toml.swp")));
    }

    #[tokio::test]
    async fn a_write_to_the_file_is_one_change_once_still() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "[worker]\n").unwrap();
        let mut watch = ConfigWatch::start(&file).unwrap();
        std::fs::write(dir.path().join("unrelated.toml"), "x").unwrap();
        std::fs::write(&file, "[worker]\nplugins_dir = \"p\"\n").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(60), watch.changed())
            .await
            .expect("the change is seen")
            .expect("the watch is alive");
    }
}
