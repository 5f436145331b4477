//! The `download` input and the checks that need no network.

use std::path::PathBuf;

use mlx_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::json;

/// Where downloads land: the workflow's artifacts, the only directory every plugin may write
/// and later steps can read.
pub const ARTIFACTS: &str = "/artifacts";

/// 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadInput {
    pub url: String,
    pub dest: String,
    #[serde(default)]
    pub auth_secret: Option<String>,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default)]
    pub sha256: Option<String>,
}

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

/// `/artifacts/<dest>` for a `dest` that stays inside the artifacts directory by construction:
/// WASI would refuse an escape anyway, but then the error would be an opaque write failure
/// instead of a bad request.
pub fn dest_path(dest: &str) -> Result<PathBuf, PluginError> {
    let invalid = |why: &str| {
        PluginError::invalid_input(
            "InvalidDestination",
            format!(
                "dest {dest:?} {why}: it must be a relative file path inside {ARTIFACTS}, \
                 such as \"raw/data.csv\""
            ),
        )
        .with_details(json!({"dest": dest}))
    };
    if dest.is_empty() {
        return Err(invalid("is empty"));
    }
    if dest.starts_with('/') {
        return Err(invalid("is absolute"));
    }
    if dest.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    for component in dest.split('/') {
        match component {
            "" => return Err(invalid("has an empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(invalid("has a `.` or `..` component")),
            _ => {}
        }
    }
    Ok(PathBuf::from(ARTIFACTS).join(dest))
}

/// The expected digest in lower case, so comparing with ours is plain string equality.
pub fn expected_sha256(sha256: Option<&str>) -> Result<Option<String>, PluginError> {
    let Some(hex) = sha256 else {
        return Ok(None);
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PluginError::invalid_input(
            "InvalidChecksum",
            format!("sha256 {hex:?} is not 64 hexadecimal digits"),
        ));
    }
    Ok(Some(hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_plugin_sdk::ErrorKind;

    #[test]
    fn relative_paths_land_under_artifacts() {
        assert_eq!(
            dest_path("raw/breast_cancer.csv").unwrap(),
            PathBuf::from("/artifacts/raw/breast_cancer.csv")
        );
        assert_eq!(
            dest_path("a.bin").unwrap(),
            PathBuf::from("/artifacts/a.bin")
        );
        assert_eq!(
            dest_path("..a/b..").unwrap(),
            PathBuf::from("/artifacts/..a/b..")
        );
    }

    #[test]
    fn escapes_and_odd_paths_are_invalid_destinations() {
        for bad in [
            "",
            "/etc/passwd",
            "/artifacts/x",
            "..",
            "../x",
            "raw/../../x",
            "raw//x",
            "raw/",
            "./x",
            "raw/./x",
            "a\nb",
        ] {
            let e = dest_path(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(e.type_name, "InvalidDestination", "{bad:?}");
        }
    }

    #[test]
    fn checksums_are_normalised_or_rejected() {
        let upper = "AB".repeat(32);
        assert_eq!(
            expected_sha256(Some(&upper)).unwrap(),
            Some("ab".repeat(32))
        );
        assert_eq!(expected_sha256(None).unwrap(), None);
        for bad in ["abc", &"g".repeat(64), &"a".repeat(65)] {
            let e = expected_sha256(Some(bad)).unwrap_err();
            assert_eq!(e.type_name, "InvalidChecksum");
        }
    }

    #[test]
    fn only_url_and_dest_are_required_and_unknown_keys_fail() {
        let input: DownloadInput =
            mlx_plugin_sdk::parse_input(json!({"url": "https://h/x", "dest": "x"})).unwrap();
        assert_eq!(input.max_bytes, DEFAULT_MAX_BYTES);
        assert!(input.auth_secret.is_none() && input.sha256.is_none());
        let e = mlx_plugin_sdk::parse_input::<DownloadInput>(
            json!({"url": "https://h/x", "dest": "x", "token": "t"}),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
    }
}
