//! Attempts to reach files beyond the directories the manifest grants, or to modify a
//! read-only grant. Defaults assume the usual grants: `/data` read-only, `/artifacts`
//! read-write.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use mlx_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report::{Attempt, verdict};

/// Evidence stays small: it proves the escape, it does not exfiltrate the file.
const HEAD_BYTES: usize = 256;
const MAX_NAMES: usize = 32;

fn show(path: &Path) -> String {
    path.display().to_string()
}

fn read_evidence(path: &Path) -> io::Result<Value> {
    let bytes = fs::read(path)?;
    Ok(json!({
        "path": show(path),
        "bytes": bytes.len(),
        "head": String::from_utf8_lossy(&bytes[..bytes.len().min(HEAD_BYTES)]),
    }))
}

fn list_evidence(path: &Path) -> io::Result<Value> {
    let mut names = Vec::new();
    let mut entries = 0usize;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        entries += 1;
        if names.len() < MAX_NAMES {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(json!({"path": show(path), "entries": entries, "names": names}))
}

fn read_attempt(path: &Path) -> Attempt {
    Attempt::io(format!("read {}", show(path)), read_evidence(path))
}

fn list_attempt(path: &Path) -> Attempt {
    Attempt::io(format!("list {}", show(path)), list_evidence(path))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DotdotEscape {
    base: String,
    target: String,
}

impl Default for DotdotEscape {
    fn default() -> Self {
        Self {
            base: "/data".into(),
            target: "../../../etc/passwd".into(),
        }
    }
}

pub fn dotdot_escape(input: DotdotEscape) -> Result<Value, PluginError> {
    let path = Path::new(&input.base).join(&input.target);
    verdict("dotdot_escape", vec![read_attempt(&path)])
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbsoluteEscape {
    path: String,
}

impl Default for AbsoluteEscape {
    fn default() -> Self {
        Self {
            path: "/etc/passwd".into(),
        }
    }
}

pub fn absolute_escape(input: AbsoluteEscape) -> Result<Value, PluginError> {
    verdict(
        "absolute_escape",
        vec![read_attempt(Path::new(&input.path))],
    )
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SymlinkEscape {
    dir: String,
    link: String,
}

impl Default for SymlinkEscape {
    fn default() -> Self {
        Self {
            dir: "/data".into(),
            link: "escape".into(),
        }
    }
}

/// Follows a symlink the host test planted inside a grant, pointing outside it (e.g. to /etc).
pub fn symlink_escape(input: SymlinkEscape) -> Result<Value, PluginError> {
    let link = Path::new(&input.dir).join(&input.link);
    verdict(
        "symlink_escape",
        vec![read_attempt(&link.join("passwd")), list_attempt(&link)],
    )
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateSymlinkEscape {
    dir: String,
    name: String,
    /// Absolute and relative: a sandbox may refuse one at creation and the other only when
    /// followed.
    targets: Vec<String>,
}

impl Default for CreateSymlinkEscape {
    fn default() -> Self {
        Self {
            dir: "/artifacts".into(),
            name: "ln".into(),
            targets: vec!["/etc".into(), "../../../../../../../../etc".into()],
        }
    }
}

/// Plants its own symlink to outside the grant in a writable grant, then follows it.
pub fn create_symlink_escape(input: CreateSymlinkEscape) -> Result<Value, PluginError> {
    let mut attempts = Vec::new();
    for (i, target) in input.targets.iter().enumerate() {
        let name = match i {
            0 => input.name.clone(),
            _ => format!("{}.{i}", input.name),
        };
        let link = Path::new(&input.dir).join(name);
        // A link left by an earlier run would make creation fail with "exists", which is not
        // containment.
        let _ = fs::remove_file(&link);
        let what = format!("create symlink {} -> {target}", show(&link));
        // `soft_link` is the only stable way to make a symlink on WASI (`std::os::wasi::fs::
        // symlink_path` is nightly-only); its deprecation is about Windows, not WASI.
        #[allow(deprecated)]
        let created = fs::soft_link(target, &link);
        match created {
            Err(e) => attempts.push(Attempt::blocked(what, e)),
            Ok(()) => {
                attempts.push(Attempt::allowed(what, "created"));
                attempts.push(read_attempt(&link.join("passwd")));
                attempts.push(list_attempt(&link));
            }
        }
    }
    verdict("create_symlink_escape", attempts)
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrailingSlashEscape {
    /// One path to try instead of `paths`.
    path: Option<String>,
    paths: Vec<String>,
    /// A listing is an escape unless its path normalizes inside one of these.
    grants: Vec<String>,
}

impl Default for TrailingSlashEscape {
    fn default() -> Self {
        Self {
            path: None,
            paths: [
                "/data/..",
                "/data/../",
                "/data/./../",
                "//etc",
                "/data//../etc",
            ]
            .map(String::from)
            .to_vec(),
            grants: vec!["/data".into(), "/artifacts".into()],
        }
    }
}

/// Resolves `.`, `..` and repeated slashes lexically, as a sandbox that checked path strings
/// would have to. Relative paths are taken from `/`, WASI's default working directory.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

fn within(path: &str, grant: &str) -> bool {
    let grant = normalize(grant);
    grant == "/" || path == grant || path.starts_with(&format!("{grant}/"))
}

pub fn trailing_slash_escape(input: TrailingSlashEscape) -> Result<Value, PluginError> {
    let paths = match input.path {
        Some(path) => vec![path],
        None => input.paths,
    };
    let attempts = paths
        .iter()
        .map(|path| {
            let what = format!("list {path}");
            let normalized = normalize(path);
            match list_evidence(Path::new(path)) {
                Err(e) => Attempt::blocked(what, e),
                Ok(_) if input.grants.iter().any(|g| within(&normalized, g)) => {
                    Attempt::allowed(what, format!("{normalized} is inside a grant"))
                }
                Ok(mut evidence) => {
                    evidence["normalized"] = json!(normalized);
                    Attempt::escaped(what, evidence)
                }
            }
        })
        .collect();
    verdict("trailing_slash_escape", attempts)
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardlinkEscape {
    from: String,
    to: String,
    /// A second link, from a file outside every grant.
    outside_from: String,
    outside_to: String,
}

impl Default for HardlinkEscape {
    fn default() -> Self {
        Self {
            from: "/data/breast_cancer.csv".into(),
            to: "/artifacts/stolen.csv".into(),
            outside_from: "/etc/passwd".into(),
            outside_to: "/artifacts/pw".into(),
        }
    }
}

/// A hard link would give a read-only (or unreachable) file a writable name: any that is made
/// is an escape.
pub fn hardlink_escape(input: HardlinkEscape) -> Result<Value, PluginError> {
    let attempts = [
        (&input.from, &input.to),
        (&input.outside_from, &input.outside_to),
    ]
    .into_iter()
    .map(|(from, to)| {
        // An earlier run's link would make this one fail with "exists", which is not
        // containment.
        let _ = fs::remove_file(to);
        let result = fs::hard_link(from, to).and_then(|()| {
            Ok(json!({"link": to, "original": from, "bytes": fs::metadata(to)?.len()}))
        });
        Attempt::io(format!("hard link {to} -> {from}"), result)
    })
    .collect();
    verdict("hardlink_escape", attempts)
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TruncateReadonly {
    path: String,
}

impl Default for TruncateReadonly {
    fn default() -> Self {
        Self {
            path: "/data/breast_cancer.csv".into(),
        }
    }
}

/// Destructive if the sandbox fails: point it at a copy.
pub fn truncate_readonly(input: TruncateReadonly) -> Result<Value, PluginError> {
    let path = PathBuf::from(&input.path);
    let len = || fs::metadata(&path).map(|m| m.len());
    let before = len();
    let mut attempts = vec![Attempt::io(
        format!("open {} for write+truncate", input.path),
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map(|_| json!({"opened": input.path})),
    )];
    match File::open(&path) {
        Err(e) => attempts.push(Attempt::blocked(format!("open {} to read", input.path), e)),
        Ok(mut file) => {
            attempts.push(Attempt::io(
                format!("set_len(0) on read-only handle to {}", input.path),
                file.set_len(0).map(|()| json!({"set_len": 0})),
            ));
            attempts.push(Attempt::io(
                format!("write on read-only handle to {}", input.path),
                file.write(b"pwned").map(|n| json!({"written": n})),
            ));
        }
    }
    // Catches a write that reported failure yet landed.
    let after = len();
    let what = format!("compare length of {} before and after", input.path);
    attempts.push(match (before, after) {
        (Ok(b), Ok(a)) if a != b => Attempt::escaped(what, json!({"before": b, "after": a})),
        (Ok(b), Ok(_)) => Attempt::allowed(what, format!("unchanged at {b} bytes")),
        (Err(e), _) | (_, Err(e)) => Attempt::blocked(what, e),
    });
    verdict("truncate_readonly", attempts)
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteReadonly {
    path: String,
}

impl Default for WriteReadonly {
    fn default() -> Self {
        Self {
            path: "/data/new.txt".into(),
        }
    }
}

pub fn write_readonly(input: WriteReadonly) -> Result<Value, PluginError> {
    let result = File::create(&input.path)
        .and_then(|mut file| file.write_all(b"pwned"))
        .map(|()| json!({"created": input.path}));
    verdict(
        "write_readonly",
        vec![Attempt::io(format!("create {}", input.path), result)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_slashes() {
        assert_eq!(normalize("/data/.."), "/");
        assert_eq!(normalize("/data/../"), "/");
        assert_eq!(normalize("/data/./../"), "/");
        assert_eq!(normalize("//etc"), "/etc");
        assert_eq!(normalize("/data//../etc"), "/etc");
        assert_eq!(normalize("/../../etc/"), "/etc");
        assert_eq!(normalize("data/./x"), "/data/x");
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(within("/data", "/data"));
        assert!(within("/data/x", "/data/"));
        assert!(!within("/database", "/data"));
        assert!(!within("/", "/data"));
        assert!(within("/etc", "/"));
    }
}
