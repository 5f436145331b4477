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
    let rest = guest
        .strip_prefix("/artifacts/")
        .ok_or("only files under /artifacts/ are served")?;
    let rest = Path::new(rest);
    if !rest.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("a plain path under /artifacts/, without `..`");
    }
    content_type(rest).ok_or("only .svg and .png files are served")?;
    let run = root.join(workflow_dir_name(id));
    let real_run = run.canonicalize().map_err(|_| "no such run directory")?;
    let real = run.join(rest).canonicalize().map_err(|_| "no such file")?;
    if !real.starts_with(&real_run) {
        return Err("the file leads out of the run's directory");
    }
    Ok(real)
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
}
