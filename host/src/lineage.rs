//! Lineage: for every step that read or wrote files, a provenance record of what ran (plugin
//! name, version and component digest, operation, input digest), where (workflow, run, step,
//! attempt) and the digests of the files it read and wrote. A later step that read a file by
//! the digest an earlier step wrote is that step's descendant: `mlx-worker pipeline lineage`
//! draws the graph from the records.
//!
//! Records live at `<artifacts>/.lineage/<run dir>/<step>.json`, outside every run's
//! `/artifacts` (plugins cannot forge them), one per step (a retry's success replaces the
//! failed attempt's nothing). Workers sharing the artifacts root share them.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use mlx_pipeline::CacheSource;
use mlx_runtime::plugin::manifest::DirGrant;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::step_cache::{
    ARTIFACTS, CacheError, MAX_FILES, hash_file, hex, named_paths, no_symlinks, relative, resolve,
    walk,
};

/// Bumped when the record's shape changes.
const FORMAT: u32 = 1;

/// A file a step read or wrote, by the path the plugin used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub format: u32,
    pub plugin: String,
    pub version: String,
    /// `sha256:<hex>` of the component that ran (or, when cached, that would have run).
    pub digest: String,
    pub operation: String,
    /// SHA-256 of the input JSON as sent.
    pub input_sha256: String,
    pub workflow_id: String,
    pub run_id: Option<String>,
    pub step: String,
    pub attempt: u32,
    /// Set when the result was served from the step cache.
    pub cached_from: Option<CacheSource>,
    pub reads: Vec<FileDigest>,
    pub writes: Vec<FileDigest>,
    /// Milliseconds since the Unix epoch, when the record was made.
    pub at_ms: u64,
}

/// What a plugin invocation was, for its record.
pub struct Invocation<'a> {
    pub plugin: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    pub grants: &'a [DirGrant],
    pub operation: &'a str,
    pub input: &'a Value,
    pub workflow_id: &'a str,
    pub run_id: Option<String>,
    pub step: &'a str,
    pub attempt: u32,
}

fn dir(artifacts: &Path, run_dir_name: &str) -> PathBuf {
    artifacts.join(".lineage").join(run_dir_name)
}

/// Writes the record of a successful invocation whose result is `output`, for the run whose
/// records are under `<artifacts>/.lineage/<run_dir_name>`; its files were in `run_dir` (the
/// run's directory, or the invocation's copy of it with a shared store). A step that touched
/// no file gets none.
pub fn record(
    artifacts: &Path,
    run_dir_name: &str,
    run_dir: &Path,
    call: &Invocation<'_>,
    output: &Value,
    cached_from: Option<CacheSource>,
) -> Result<Option<Provenance>, CacheError> {
    let reads = named_files(call.input, call.grants, run_dir, false)?;
    let writes = named_files(output, &[], run_dir, true)?;
    if reads.is_empty() && writes.is_empty() {
        return Ok(None);
    }
    let provenance = Provenance {
        format: FORMAT,
        plugin: call.plugin.into(),
        version: call.version.into(),
        digest: call.digest.into(),
        operation: call.operation.into(),
        input_sha256: hex(&Sha256::digest(call.input.to_string())),
        workflow_id: call.workflow_id.into(),
        run_id: call.run_id.clone(),
        step: call.step.into(),
        attempt: call.attempt,
        cached_from,
        reads,
        writes,
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let dir = dir(artifacts, run_dir_name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    // Step ids are free text in a spec: named as workflow ids are, for the same reasons.
    let path = dir.join(format!(
        "{}.json",
        mlx_runtime::sandbox::workflow_dir_name(call.step)
    ));
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
    serde_json::to_writer_pretty(&mut tmp, &provenance).map_err(|source| CacheError::Entry {
        path: path.clone(),
        source,
    })?;
    tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    Ok(Some(provenance))
}

/// The regular files `value` names (each file of a named directory), with their digests.
/// `artifacts_only`: only paths under `/artifacts` (what a step wrote).
fn named_files(
    value: &Value,
    grants: &[DirGrant],
    run_dir: &Path,
    artifacts_only: bool,
) -> Result<Vec<FileDigest>, CacheError> {
    let paths = named_paths(value);
    let mut budget = MAX_FILES;
    let mut files = Vec::new();
    for guest in paths {
        if artifacts_only && !guest.starts_with(ARTIFACTS) {
            continue;
        }
        // Never through a plugin's link out of its run; grants are the operator's own.
        if let Some(rel) = guest.strip_prefix(ARTIFACTS)
            && no_symlinks(run_dir, &relative(rel)?).is_err()
        {
            continue;
        }
        let Some(host) = resolve(grants, guest, run_dir)? else {
            continue;
        };
        for (rel, file) in walk(&host, Path::new(""), &mut budget)? {
            let path = if rel.as_os_str().is_empty() {
                guest.to_string()
            } else {
                format!("{}/{}", guest.trim_end_matches('/'), rel.display())
            };
            files.push(FileDigest {
                path,
                sha256: hash_file(&file)?,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    Ok(files)
}

/// One edge of the graph: `to` read a file by the digest `from` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub path: String,
    pub sha256: String,
}

/// A run's lineage: its steps' records and the edges between them.
#[derive(Debug, Serialize)]
pub struct Graph {
    pub workflow_id: String,
    pub steps: Vec<Provenance>,
    pub edges: Vec<Edge>,
}

/// The lineage of the run `workflow_id` from the records under `artifacts`.
pub fn graph(artifacts: &Path, workflow_id: &str) -> Result<Graph, CacheError> {
    let dir = dir(
        artifacts,
        &mlx_runtime::sandbox::workflow_dir_name(workflow_id),
    );
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { path, source }
    };
    let mut steps = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io(&dir))? {
        let path = entry.map_err(io(&dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = fs::read(&path).map_err(io(&path))?;
        let record: Provenance =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Entry { path, source })?;
        steps.push(record);
    }
    steps.sort_by(|a, b| (a.at_ms, &a.step).cmp(&(b.at_ms, &b.step)));
    let mut writers: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for step in &steps {
        for file in &step.writes {
            writers.insert((&file.path, &file.sha256), &step.step);
        }
    }
    let mut edges = Vec::new();
    for step in &steps {
        for file in &step.reads {
            if let Some(from) = writers.get(&(file.path.as_str(), file.sha256.as_str()))
                && *from != step.step
            {
                edges.push(Edge {
                    from: from.to_string(),
                    to: step.step.clone(),
                    path: file.path.clone(),
                    sha256: file.sha256.clone(),
                });
            }
        }
    }
    Ok(Graph {
        workflow_id: workflow_id.into(),
        steps,
        edges,
    })
}

/// The graph as text, for people: each step with what ran, what it read (and from which step)
/// and what it wrote.
pub fn render(graph: &Graph) -> String {
    let short = |d: &str| {
        d.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    let mut out = format!("lineage of {}\n", graph.workflow_id);
    for step in &graph.steps {
        out.push_str(&format!(
            "\n{}  {}.{}  {}@{} ({})  attempt {}{}\n",
            step.step,
            step.plugin,
            step.operation,
            step.plugin,
            step.version,
            short(&step.digest),
            step.attempt,
            step.cached_from
                .as_ref()
                .map(|c| format!("  cached from {} ({})", c.workflow_id, c.step))
                .unwrap_or_default(),
        ));
        for file in &step.reads {
            let from = graph
                .edges
                .iter()
                .find(|e| e.to == step.step && e.path == file.path && e.sha256 == file.sha256)
                .map(|e| format!("  <- {}", e.from))
                .unwrap_or_default();
            out.push_str(&format!(
                "  reads  {}  {}{from}\n",
                file.path,
                short(&file.sha256)
            ));
        }
        for file in &step.writes {
            out.push_str(&format!(
                "  writes {}  {}\n",
                file.path,
                short(&file.sha256)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call<'a>(step: &'a str, input: &'a Value, operation: &'a str) -> Invocation<'a> {
        Invocation {
            plugin: "p",
            version: "1.0.0",
            digest: "sha256:abc",
            grants: &[],
            operation,
            input,
            workflow_id: "wf/1",
            run_id: Some("r1".into()),
            step,
            attempt: 1,
        }
    }

    #[test]
    fn records_link_a_reader_to_the_step_that_wrote_the_same_bytes() {
        let root = tempfile::tempdir().unwrap();
        let artifacts = root.path();
        let run = mlx_runtime::sandbox::workflow_dir_name("wf/1");
        let run_dir = artifacts.join(&run);
        fs::create_dir_all(run_dir.join("model")).unwrap();
        fs::write(run_dir.join("train.csv"), "x\n1\n").unwrap();

        let none = json!({"n": 1});
        let quiet = record(
            artifacts,
            &run,
            &run_dir,
            &call("echo", &none, "echo"),
            &json!({}),
            None,
        );
        assert!(quiet.unwrap().is_none(), "no file, no record");

        let extract_out = json!({"train": {"path": "/artifacts/train.csv"}});
        record(
            artifacts,
            &run,
            &run_dir,
            &call("extract", &none, "extract_data"),
            &extract_out,
            None,
        )
        .unwrap()
        .unwrap();
        fs::write(run_dir.join("model/model.json"), "{}").unwrap();
        let train_in = json!({"train": "/artifacts/train.csv"});
        let train_out = json!({"model": "/artifacts/model"});
        let train = record(
            artifacts,
            &run,
            &run_dir,
            &call("train", &train_in, "train_model"),
            &train_out,
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(train.writes[0].path, "/artifacts/model/model.json");
        assert_eq!(train.input_sha256.len(), 64);

        let graph = graph(artifacts, "wf/1").unwrap();
        assert_eq!(graph.steps.len(), 2);
        assert_eq!(
            graph.edges,
            [Edge {
                from: "extract".into(),
                to: "train".into(),
                path: "/artifacts/train.csv".into(),
                sha256: hex(&Sha256::digest(b"x\n1\n")),
            }]
        );
        let text = render(&graph);
        assert!(text.contains("reads  /artifacts/train.csv"), "{text}");
        assert!(text.contains("<- extract"), "{text}");

        // A reader of other bytes at the same path is no descendant.
        fs::write(run_dir.join("train.csv"), "x\n2\n").unwrap();
        record(
            artifacts,
            &run,
            &run_dir,
            &call("other", &train_in, "train_model"),
            &json!({}),
            None,
        )
        .unwrap();
        let graph = super::graph(artifacts, "wf/1").unwrap();
        assert!(
            graph.edges.iter().all(|e| e.to != "other"),
            "{:?}",
            graph.edges
        );
    }

    #[test]
    fn a_link_out_of_the_run_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let artifacts = root.path().join("artifacts");
        let outside = root.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        let run_dir = artifacts.join("wf");
        fs::create_dir_all(&run_dir).unwrap();
        std::os::unix::fs::symlink(&outside, run_dir.join("out")).unwrap();
        let input = json!({});
        let out = json!({"f": "/artifacts/out/secret"});
        let made = record(
            &artifacts,
            "wf",
            &run_dir,
            &call("s", &input, "op"),
            &out,
            None,
        )
        .unwrap();
        assert!(made.is_none(), "{made:?}");
    }
}
