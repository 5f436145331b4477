//! `GET /api/file?id=RUN&path=/artifacts/...`: a picture a step wrote (the evaluate step's SVG
//! plots, the trainer's loss curve), read from the workers' artifacts root when the page was
//! given one (`--artifacts-dir`). Plugins write these files, so they are untrusted: only
//! pictures under the run's own directory, no `..` and no symlink out of it, at most 16 MiB,
//! and served with a policy under which an SVG's script cannot run even when opened directly.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use super::{
    Ui,
    http::{Answer, text},
};
use mlx_runtime::sandbox::workflow_dir_name;

const MAX_FILE_BYTES: u64 = 16 << 20;

fn content_type(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "svg" => Some("image/svg+xml"),
        "png" => Some("image/png"),
        _ => None,
    }
}

/// The host file `/artifacts/...` of run `id` names, if it is a picture inside the run's
/// directory (checked after symlinks are resolved).
pub(super) fn resolve(root: &Path, id: &str, guest: &str) -> Result<PathBuf, &'static str> {
    resolve_if(root, id, guest, |rest| {
        content_type(rest)
            .map(|_| ())
            .ok_or("only .svg and .png files are served")
    })
}

/// [`resolve`] for any file `allowed` accepts (by its path under `/artifacts/`).
fn resolve_if(
    root: &Path,
    id: &str,
    guest: &str,
    allowed: impl Fn(&Path) -> Result<(), &'static str>,
) -> Result<PathBuf, &'static str> {
    let rest = guest
        .strip_prefix("/artifacts/")
        .ok_or("only files under /artifacts/ are served")?;
    let rest = Path::new(rest);
    if !rest.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("a plain path under /artifacts/, without `..`");
    }
    allowed(rest)?;
    let run = root.join(workflow_dir_name(id));
    let real_run = run.canonicalize().map_err(|_| "no such run directory")?;
    let real = run.join(rest).canonicalize().map_err(|_| "no such file")?;
    if !real.starts_with(&real_run) {
        return Err("the file leads out of the run's directory");
    }
    Ok(real)
}

/// Most of a checkpoint journal read: its rounds carry whole trees, so a long training's journal
/// is large; the losses are a few bytes a round.
const MAX_JOURNAL_BYTES: u64 = 256 << 20;

/// The `(round, loss)` pairs of a trainer's checkpoint journal: one JSON line per round after
/// a header; lines without both (the header, a torn last line) are skipped.
pub(super) fn journal_losses(text: impl std::io::BufRead) -> Vec<(u64, f64)> {
    text.lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(&line).ok()?;
            Some((value["round"].as_u64()?, value["loss"].as_f64()?))
        })
        .collect()
}

/// `GET /api/journal?id=RUN&path=/artifacts/.../checkpoint.jsonl`: the losses by round a
/// training step has checkpointed so far, for the page's curve (the rounds before it opened).
pub(super) fn journal(ui: &Ui, id: &str, guest: &str) -> Answer {
    let Some(root) = &ui.artifacts_dir else {
        return text(
            StatusCode::NOT_FOUND,
            "this page was started without --artifacts-dir\n",
        );
    };
    let only_journals = |rest: &Path| match rest.file_name().and_then(|n| n.to_str()) {
        Some("checkpoint.jsonl") => Ok(()),
        _ => Err("only checkpoint.jsonl journals are read"),
    };
    let path = match resolve_if(root, id, guest, only_journals) {
        Ok(path) => path,
        Err(why) => return text(StatusCode::NOT_FOUND, &format!("{why}\n")),
    };
    let Ok(file) = std::fs::File::open(&path) else {
        return text(StatusCode::NOT_FOUND, "unreadable\n");
    };
    use std::io::Read;
    let reader = std::io::BufReader::new(file.take(MAX_JOURNAL_BYTES));
    let rounds: Vec<serde_json::Value> = journal_losses(reader)
        .into_iter()
        .map(|(round, loss)| serde_json::json!({"round": round, "loss": loss}))
        .collect();
    super::http::json(StatusCode::OK, &serde_json::json!({ "rounds": rounds }))
}

pub(super) fn serve(ui: &Ui, id: &str, guest: &str) -> Answer {
    let Some(root) = &ui.artifacts_dir else {
        return text(
            StatusCode::NOT_FOUND,
            "this page was started without --artifacts-dir\n",
        );
    };
    let path = match resolve(root, id, guest) {
        Ok(path) => path,
        Err(why) => return text(StatusCode::NOT_FOUND, &format!("{why}\n")),
    };
    let too_big = std::fs::metadata(&path).map_or(true, |m| m.len() > MAX_FILE_BYTES);
    if too_big {
        return text(StatusCode::NOT_FOUND, "not a file of at most 16 MiB\n");
    }
    let Ok(bytes) = std::fs::read(&path) else {
        return text(StatusCode::NOT_FOUND, "unreadable\n");
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    let headers = response.headers_mut();
    if let Some(kind) = content_type(&path) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    // A finished step's files do not change; the page redraws every second.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pictures_inside_the_runs_directory_are_served() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run-1");
        std::fs::create_dir_all(run.join("eval")).unwrap();
        std::fs::write(run.join("eval/roc.svg"), "<svg/>").unwrap();
        std::fs::write(run.join("model.json"), "{}").unwrap();
        std::fs::write(root.path().join("secret.svg"), "<svg/>").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.svg"), run.join("link.svg")).unwrap();
        let ok = resolve(root.path(), "run-1", "/artifacts/eval/roc.svg").unwrap();
        assert!(ok.ends_with("eval/roc.svg"));
        for bad in [
            "/artifacts/model.json",
            "/artifacts/../secret.svg",
            "/artifacts/link.svg",
            "/etc/passwd",
            "/artifacts/missing.svg",
        ] {
            assert!(resolve(root.path(), "run-1", bad).is_err(), "{bad}");
        }
        // Another run's id cannot reach this run's files.
        assert!(resolve(root.path(), "../run-1", "/artifacts/eval/roc.svg").is_err());
    }

    #[test]
    fn a_journals_losses_are_read_and_its_header_and_torn_line_skipped() {
        let text = "{\"header\": {\"family\": \"gradient_boosting\"}}\n\
                    {\"round\": 1, \"loss\": 0.5, \"record\": {\"trees\": []}}\n\
                    {\"round\": 2, \"loss\": 0.25, \"record\": {}}\n\
                    {\"round\": 3, \"lo";
        assert_eq!(journal_losses(text.as_bytes()), [(1, 0.5), (2, 0.25)]);
    }
}
