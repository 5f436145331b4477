//! From a store URL to an object_store client and the key prefix under which this project's
//! objects live. Credentials come from the environment, as each provider's own tools read
//! them (`from_env`), plus the AWS CLI's shared files (`aws_profile`).

use std::{sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ObjectStore, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::MicrosoftAzureBuilder,
    gcp::GoogleCloudStorageBuilder,
    local::LocalFileSystem,
    memory::InMemory,
    path::Path as Key,
};

use crate::{StoreError, aws_profile};

pub(crate) struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Key,
}

/// object_store's default retries a refused connection for three minutes; a worker's activity
/// has its own retry policy (with backoff and a limit the operator chose), so a few quick
/// retries ride out a blip and the rest is left to that policy.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

pub(crate) fn open(url: &str) -> Result<Location, StoreError> {
    let bad = |reason: String| StoreError::Url {
        url: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let path_prefix = || {
        Key::parse(parsed.path().trim_matches('/'))
            .map_err(|e| bad(format!("the prefix is not a valid object key: {e}")))
    };
    let built = |r: object_store::Result<Arc<dyn ObjectStore>>| r.map_err(|e| bad(e.to_string()));
    match parsed.scheme() {
        "s3" | "s3a" => {
            install_tls_provider();
            let builder = with_aws_profile(AmazonS3Builder::from_env())?;
            let store = builder.with_url(url).with_retry(retry()).build();
            Ok(Location {
                store: built(store.map(|s| Arc::new(s) as _))?,
                prefix: path_prefix()?,
            })
        }
        "gs" => {
            install_tls_provider();
            let store = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry())
                .build();
            Ok(Location {
                store: built(store.map(|s| Arc::new(s) as _))?,
                prefix: path_prefix()?,
            })
        }
        "az" | "azure" | "abfs" | "abfss" => {
            install_tls_provider();
            let store = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry())
                .build();
            Ok(Location {
                store: built(store.map(|s| Arc::new(s) as _))?,
                prefix: path_prefix()?,
            })
        }
        "file" => {
            let root = parsed
                .to_file_path()
                .map_err(|()| bad("not an absolute local path".into()))?;
            std::fs::create_dir_all(&root).map_err(|e| bad(format!("creating it: {e}")))?;
            let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| bad(e.to_string()))?;
            Ok(Location {
                store: Arc::new(store),
                prefix: Key::default(),
            })
        }
        // One process's memory: for tests, and a worker that shares nothing.
        "memory" => Ok(Location {
            store: Arc::new(InMemory::new()),
            prefix: path_prefix()?,
        }),
        other => Err(bad(format!(
            "scheme {other:?} is not one of s3, gs, az, azure, abfs, abfss, file, memory"
        ))),
    }
}

/// reqwest is built without a provider of its own (see Cargo.toml): it takes the process
/// default, which this sets to ring unless the process already chose one.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Fills in from `~/.aws` only what the environment left unset: the environment wins, as with
/// the AWS CLI.
fn with_aws_profile(mut builder: AmazonS3Builder) -> Result<AmazonS3Builder, StoreError> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let env = |k: &str| std::env::var(k).ok();
    let Some(profile) = aws_profile::resolve(&env, home.as_deref())? else {
        return Ok(builder);
    };
    if let (Some(id), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = profile.session_token {
            builder = builder.with_token(token);
        }
    }
    if let Some(region) = profile.region
        && builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .is_none()
    {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = profile.endpoint_url
        && builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_none()
    {
        // A plain http endpoint (a local MinIO or s3s) is what the profile asked for.
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_and_remote_files_are_refused() {
        for url in ["ftp://x/y", "file://otherhost/x", "not a url"] {
            let err = open(url).err().expect(url);
            assert!(matches!(err, StoreError::Url { .. }), "{url}: {err}");
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn prefix_comes_from_the_path() {
        let loc = open("memory:///team/artifacts/").unwrap();
        assert_eq!(loc.prefix.as_ref(), "team/artifacts");
    }
}
