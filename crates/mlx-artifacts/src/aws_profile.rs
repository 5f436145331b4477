//! Static keys, region and endpoint from the AWS CLI's shared files, which object_store does
//! not read: a developer's `aws configure` (or a mounted credentials file) then works as it
//! does for the AWS CLI. Only what a worker needs: no SSO, no `credential_process`, no role
//! chaining (those need the AWS SDK; use environment variables or instance roles instead).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::StoreError;

/// What a profile says, each item only where it says it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AwsProfile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

type Ini = HashMap<String, HashMap<String, String>>;

/// The profile to use when the environment holds no access key: `AWS_PROFILE`'s (an error if
/// neither file has it: a named profile that is missing is a mistake), else `default` if it
/// exists, else none.
pub(crate) fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Option<AwsProfile>, StoreError> {
    if env("AWS_ACCESS_KEY_ID").is_some() {
        return Ok(None);
    }
    let named = env("AWS_PROFILE").filter(|p| !p.is_empty());
    let file = |var: &str, name: &str| -> Option<PathBuf> {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join(name)))
    };
    let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = file("AWS_CONFIG_FILE", "config");
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    let files = [&credentials_file, &config_file]
        .iter()
        .filter_map(|f| f.as_ref().map(|f| f.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let credentials = read_ini(credentials_file.as_deref(), &profile, &files)?;
    let config = read_ini(config_file.as_deref(), &profile, &files)?;

    // The credentials file names sections `[name]`; the config file `[profile name]`, except
    // `[default]`.
    let from_credentials = credentials.get(&profile);
    let from_config = config.get(&format!("profile {profile}")).or_else(|| {
        (profile == "default")
            .then(|| config.get("default"))
            .flatten()
    });
    if from_credentials.is_none() && from_config.is_none() {
        return match named {
            Some(_) => Err(StoreError::Profile {
                profile,
                files,
                reason: "no such profile in either file".into(),
            }),
            None => Ok(None),
        };
    }
    let get = |key: &str| {
        from_credentials
            .and_then(|s| s.get(key))
            .or_else(|| from_config.and_then(|s| s.get(key)))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let found = AwsProfile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    };
    if found.access_key_id.is_some() != found.secret_access_key.is_some() {
        return Err(StoreError::Profile {
            profile,
            files,
            reason: "aws_access_key_id and aws_secret_access_key must be set together".into(),
        });
    }
    Ok(Some(found))
}

fn read_ini(path: Option<&Path>, profile: &str, files: &str) -> Result<Ini, StoreError> {
    let Some(path) = path else {
        return Ok(Ini::new());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_ini(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ini::new()),
        Err(e) => Err(StoreError::Profile {
            profile: profile.to_string(),
            files: files.to_string(),
            reason: format!("{}: {e}", path.display()),
        }),
    }
}

/// The AWS CLI's INI dialect: `[section]`, `key = value`, `#` and `;` comment lines. An
/// indented line belongs to a nested block (`s3 =` then `  endpoint_url = ...`), which sets
/// a service's own option, not the profile's, so it is skipped.
pub(crate) fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            ini.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let (Some(section), Some((key, value))) = (&section, line.split_once('=')) else {
            continue;
        };
        ini.entry(section.clone())
            .or_default()
            .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    ini
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "\
# comment
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = secret/with=equals

[minio]
aws_access_key_id=AKMINIO
aws_secret_access_key=SKMINIO
";
    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile  minio]
region = us-east-1
endpoint_url = http://127.0.0.1:9000
s3 =
  endpoint_url = http://nested.invalid
; comment
[profile other]
region = ap-south-1
";

    fn home() -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws/credentials"), CREDENTIALS).unwrap();
        std::fs::write(home.path().join(".aws/config"), CONFIG).unwrap();
        home
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_sections_keys_and_skips_comments_and_nested_blocks() {
        let ini = parse_ini(CONFIG);
        assert_eq!(
            ini["profile minio"]["endpoint_url"],
            "http://127.0.0.1:9000"
        );
        assert_eq!(ini["profile minio"].get("s3").map(String::as_str), Some(""));
        assert_eq!(ini["profile other"]["region"], "ap-south-1");
        assert_eq!(
            parse_ini(CREDENTIALS)["default"]["aws_secret_access_key"],
            "secret/with=equals"
        );
    }

    #[test]
    fn named_profile_merges_both_files() {
        let home = home();
        let p = resolve(&env(&[("AWS_PROFILE", "minio")]), Some(home.path()))
            .unwrap()
            .unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKMINIO"));
        assert_eq!(p.secret_access_key.as_deref(), Some("SKMINIO"));
        assert_eq!(p.region.as_deref(), Some("us-east-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn default_profile_without_aws_profile() {
        let home = home();
        let p = resolve(&env(&[]), Some(home.path())).unwrap().unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKDEFAULT"));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn environment_keys_win_and_missing_files_are_no_profile() {
        let home = home();
        let keys = env(&[("AWS_ACCESS_KEY_ID", "x"), ("AWS_PROFILE", "minio")]);
        assert_eq!(resolve(&keys, Some(home.path())).unwrap(), None);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve(&env(&[]), Some(empty.path())).unwrap(), None);
    }

    #[test]
    fn explicit_files_and_a_missing_named_profile() {
        let home = home();
        let creds = home.path().join(".aws/credentials");
        let creds = creds.to_str().unwrap();
        let p = resolve(
            &env(&[
                ("AWS_SHARED_CREDENTIALS_FILE", creds),
                ("AWS_CONFIG_FILE", "/nonexistent/config"),
                ("AWS_PROFILE", "minio"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKMINIO"));
        assert_eq!(p.region, None);
        let err = resolve(&env(&[("AWS_PROFILE", "nope")]), Some(home.path())).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(!err.is_retryable());
    }
}
