//! `worker.plugin_refs` while the worker runs. Each time the configuration is re-read (SIGHUP:
//! `systemctl reload`, `kill -HUP`), a changed list is pulled into the plugins directory and
//! the plugins it no longer names are removed; the directory watcher then loads the change as
//! it loads any other (calls in flight finish on the bytes they started with). Only the list
//! applies on a reload: every other key takes effect at the next start, and the worker says so.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    oci::{self, Access, Installed, PluginRef},
};

/// The pinned plugins a worker pulled, and the directories they go to.
pub(crate) struct PinnedPlugins {
    pub refs: Vec<PluginRef>,
    pub installed: Vec<Installed>,
    pub plugins_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl PinnedPlugins {
    /// At start: every reference pulled before any plugin loads (an error stops the start).
    pub async fn pull(
        refs: Vec<PluginRef>,
        plugins_dir: PathBuf,
        cache_dir: PathBuf,
    ) -> Result<Self, oci::OciError> {
        let installed = if refs.is_empty() {
            Vec::new()
        } else {
            oci::pull_pinned(&refs, &plugins_dir, &cache_dir, &Access::default()).await?
        };
        Ok(Self {
            refs,
            installed,
            plugins_dir,
            cache_dir,
        })
    }

    /// One re-read configuration. An error (registry unreachable, digest mismatch) keeps the
    /// plugins being served and the list they came from, so the next reload retries it.
    async fn apply(&mut self, refs: Vec<PluginRef>) -> Result<(), oci::OciError> {
        let installed = oci::pull_pinned(
            &refs,
            &self.plugins_dir,
            &self.cache_dir,
            &Access::default(),
        )
        .await?;
        let removed = oci::remove_dropped(&self.plugins_dir, &self.installed, &installed)?;
        tracing::info!(
            refs = refs.len(),
            removed = removed.len(),
            "worker.plugin_refs reloaded: the plugins directory holds the new list"
        );
        self.refs = refs;
        self.installed = installed;
        Ok(())
    }
}

/// Applies each configuration `reloads` delivers until `stop`. `current` is the configuration
/// the worker started with (for saying which other keys changed); `versioned` workers refuse a
/// new list, because a deployment version is its plugin set.
pub(crate) async fn follow(
    mut pinned: PinnedPlugins,
    mut current: Settings,
    mut reloads: mpsc::Receiver<Settings>,
    versioned: bool,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = reloads.recv() => match next {
                Some(next) => next,
                None => return,
            },
        };
        let others: Vec<String> = changed_keys(&current, &next)
            .into_iter()
            .filter(|k| k != "worker.plugin_refs")
            .collect();
        if !others.is_empty() {
            tracing::warn!(
                keys = %others.join(", "),
                "configuration re-read: only worker.plugin_refs applies while the worker runs; \
                 these changed keys take effect when it is restarted"
            );
        }
        if next.plugin_refs == pinned.refs {
            tracing::info!("configuration re-read: worker.plugin_refs unchanged");
        } else if versioned {
            tracing::warn!(
                "configuration re-read: worker.plugin_refs changed, but this worker is a \
                 deployment version, whose plugin set is fixed; start workers of a new version \
                 with the new list (docs/fleet.md)"
            );
        } else if let Err(e) = pinned.apply(next.plugin_refs.clone()).await {
            tracing::error!(
                "configuration re-read: worker.plugin_refs not applied, the plugins served \
                 are unchanged; fix it and reload again: {e}"
            );
        }
        current = next;
    }
}

/// The `section.key`s whose values differ between two configurations (as `--print-config`
/// shows them: secrets redacted, so no secret is compared into a log line).
fn changed_keys(a: &Settings, b: &Settings) -> Vec<String> {
    let table = |s: &Settings| s.to_toml().parse::<toml::Table>().unwrap_or_default();
    let (a, b) = (table(a), table(b));
    let empty = toml::Table::new();
    let sections: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut changed = Vec::new();
    for section in sections {
        let of = |t: &'_ toml::Table| -> toml::Table {
            match t.get(section) {
                Some(toml::Value::Table(inner)) => inner.clone(),
                Some(other) => toml::Table::from_iter([(String::new(), other.clone())]),
                None => empty.clone(),
            }
        };
        let (x, y) = (of(&a), of(&b));
        let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for key in keys {
            if x.get(key) != y.get(key) {
                changed.push(match key.is_empty() {
                    true => section.clone(),
                    false => format!("{section}.{key}"),
                });
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_list_that_cannot_be_pulled_changes_nothing() {
        let plugins = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(plugins.path().join("served.wasm"), b"served").unwrap();
        // A port nobody listens on: the registry is down.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pinned = PinnedPlugins::pull(
            Vec::new(),
            plugins.path().to_path_buf(),
            cache.path().to_path_buf(),
        )
        .await
        .unwrap();
        let unreachable: PluginRef =
            format!("oci://127.0.0.1:{port}/team/new@sha256:{}", "ab".repeat(32))
                .parse()
                .unwrap();
        let e = pinned.apply(vec![unreachable]).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(pinned.refs.is_empty() && pinned.installed.is_empty());
        let files: Vec<_> = std::fs::read_dir(plugins.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["served.wasm"]);
    }

    fn settings(text: &str) -> Settings {
        toml::from_str::<crate::config::ConfigFile>(text)
            .unwrap()
            .resolve()
            .unwrap()
    }

    #[test]
    fn a_reload_names_the_keys_that_changed_and_never_their_secret_values() {
        let before = settings(
            "[worker]\nplugins_dir = \"p\"\nmax_concurrent_activities = 4\n\
             [temporal]\napi_key = \"one-secret\"\n",
        );
        let after = settings(
            &"[worker]\nplugins_dir = \"p\"\nmax_concurrent_activities = 8\n\
             plugin_refs = [\"oci://127.0.0.1:5000/t/p@sha256:{}\"]\n\
             [temporal]\napi_key = \"another-secret\"\n"
                .replace("{}", &"ab".repeat(32)),
        );
        assert_eq!(
            changed_keys(&before, &after),
            ["worker.max_concurrent_activities", "worker.plugin_refs"]
        );
        assert!(changed_keys(&before, &before).is_empty());
    }
}
