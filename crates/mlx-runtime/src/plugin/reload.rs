//! Hot reload: watches the plugins directory and keeps the registry in line with it, without
//! a restart. A new `NAME.wasm` is loaded, a changed one (or a changed `NAME.toml`) replaces
//! the registered version for new calls, a removed one is unregistered; in-flight calls finish
//! on the version they started with ([`crate::plugin::registry`]).
//!
//! Files being written must not be loaded half-way. The convention is write-then-rename
//! (write `.NAME.wasm.tmp`, hidden and ignored, then rename it to `NAME.wasm`), which makes the
//! change atomic. Plain copies are tolerated too: changes are collected until the directory
//! has been quiet for [`QUIET`], and a file modified more recently than that is looked at again
//! later. A file that still does not load (corrupt, incompatible, bad manifest) is refused
//! with one log line and counted; the version already registered keeps serving.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use notify::{
    EventKind, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode, ModifyKind},
};
use tokio::sync::mpsc;

use crate::{
    host::PluginHost,
    observer::ReloadResult,
    plugin::registry::{self, Change, PluginRegistry},
};

/// How long the directory must be still before changed files are loaded.
pub const QUIET: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
#[error("cannot watch plugins directory {}: {source}", dir.display())]
pub struct WatchError {
    pub dir: PathBuf,
    #[source]
    pub source: notify::Error,
}

/// A watch on the plugins directory. Created before the initial load, so no change made
/// while loading is missed; [`PluginWatcher::run`] then applies changes until shutdown.
pub struct PluginWatcher {
    dir: PathBuf,
    rx: mpsc::UnboundedReceiver<PathBuf>,
    _watcher: notify::RecommendedWatcher,
}

impl PluginWatcher {
    pub fn start(dir: &Path) -> Result<Self, WatchError> {
        let fail = |source: notify::Error| WatchError {
            dir: dir.to_path_buf(),
            source,
        };
        let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                // Reads (ours included: loading a file opens it) and metadata changes are not
                // changes of content; counting them would make every load trigger another.
                Ok(event) if is_content_change(&event.kind) => {
                    event.paths.into_iter().for_each(|p| {
                        let _ = tx.send(p);
                    })
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("plugins directory watch error: {e}"),
            })
            .map_err(fail)?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(fail)?;
        tracing::info!(dir = %dir.display(), "watching for plugin changes");
        Ok(Self {
            dir: dir.to_path_buf(),
            rx,
            _watcher: watcher,
        })
    }

    /// Applies changes to `registry` until `shutdown` resolves.
    pub async fn run(
        self,
        runtime: Arc<PluginHost>,
        registry: Arc<PluginRegistry>,
        shutdown: impl Future<Output = ()>,
    ) {
        let Self {
            dir,
            mut rx,
            _watcher,
        } = self;
        watch_loop(&runtime, &registry, &dir, &mut rx, shutdown).await;
    }
}

async fn watch_loop(
    runtime: &PluginHost,
    registry: &PluginRegistry,
    dir: &Path,
    rx: &mut mpsc::UnboundedReceiver<PathBuf>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let quiet = async {
            if pending.is_empty() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(QUIET).await;
        };
        tokio::select! {
            () = &mut shutdown => return,
            changed = rx.recv() => match changed {
                Some(path) => {
                    if let Some(wasm) = component_for(dir, &path) {
                        pending.insert(wasm);
                    }
                }
                None => return,
            },
            () = quiet => {
                for wasm in std::mem::take(&mut pending) {
                    if modified_within(&wasm, QUIET) {
                        // Still being written: wait for the next quiet period.
                        pending.insert(wasm);
                        continue;
                    }
                    apply(runtime, registry, &wasm).await;
                }
            }
        }
    }
}

/// The component a changed path concerns: `NAME.wasm` itself or the one its `NAME.toml`
/// manifest belongs to. Hidden files (copies in progress) and anything else are ignored.
fn component_for(dir: &Path, path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') || path.parent() != Some(dir) {
        return None;
    }
    let wasm = match path.extension()?.to_str()? {
        "wasm" => path.to_path_buf(),
        "toml" => path.with_extension("wasm"),
        _ => return None,
    };
    registry::is_component_file(&wasm).then_some(wasm)
}

/// Whether a watch event may have changed a file's content (not a read, not metadata).
pub fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

fn modified_within(path: &Path, window: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age < window)
}

async fn apply(runtime: &PluginHost, registry: &PluginRegistry, wasm: &Path) {
    let change = registry.sync_file(runtime, wasm).await;
    if let Some(observer) = runtime.observer() {
        observer.reload(match &change {
            Change::Added(_) => ReloadResult::Added,
            Change::Replaced { .. } => ReloadResult::Replaced,
            Change::Removed(_) => ReloadResult::Removed,
            Change::Refused(_) => ReloadResult::Refused,
            Change::Unchanged => ReloadResult::Unchanged,
        });
    }
    match change {
        Change::Added(plugin) => registry::log_loaded(&plugin, "plugin added"),
        Change::Replaced { old, new } => {
            tracing::info!(
                previous_version = %old.info.version,
                previous_digest = %old.digest,
                in_flight_on_previous = Arc::strong_count(&old) - 1,
                "plugin {} replaced; calls in flight finish on the previous version",
                new.info.name
            );
            registry::log_loaded(&new, "plugin replaced");
        }
        Change::Removed(old) => tracing::info!(
            plugin = %old.info.name,
            version = %old.info.version,
            digest = %old.digest,
            in_flight = Arc::strong_count(&old) - 1,
            "plugin removed; calls in flight finish, new calls fail with UnknownPlugin"
        ),
        Change::Refused(e) => tracing::error!(
            path = %wasm.display(),
            "plugin file refused; the version already loaded (if any) keeps serving: {e}"
        ),
        Change::Unchanged => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_components_and_their_manifests_count() {
        let dir = Path::new("/plugins");
        let wasm = Some(PathBuf::from("/plugins/csv.wasm"));
        assert_eq!(component_for(dir, Path::new("/plugins/csv.wasm")), wasm);
        assert_eq!(component_for(dir, Path::new("/plugins/csv.toml")), wasm);
        for ignored in [
            "/plugins/.csv.wasm.tmp",
            "/plugins/.csv.wasm",
            "/plugins/README.md",
            "/plugins/sub/csv.wasm",
            "/plugins/csv.wasm.part",
        ] {
            assert_eq!(component_for(dir, Path::new(ignored)), None, "{ignored}");
        }
    }
}
