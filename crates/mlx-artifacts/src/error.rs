//! One error type for the store, and the one place that says which failures a retry can cure.

use std::path::PathBuf;

/// What went wrong, with the file, key or setting it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("artifact store url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("aws profile {profile:?} ({files}): {reason}")]
    Profile {
        profile: String,
        files: String,
        reason: String,
    },
    #[error("{what} {name:?} is not allowed: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("{path}: a symbolic link; artifacts must be regular files")]
    Symlink { path: String },
    #[error("{path}: not a regular file or a directory")]
    NotRegular { path: String },
    #[error(
        "run {run:?} holds {total} bytes of artifacts, more than this worker's limit of {max} bytes"
    )]
    TooLarge { run: String, total: u64, max: u64 },
    #[error("blob {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("commit manifest {key}: {reason}")]
    BadManifest { key: String, reason: String },
    #[error("{op} {key}: {source}")]
    Remote {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// A multipart upload whose completion failed and whose blob is not (yet) whole in the
    /// store; see `sync::completed_anyway`.
    #[error("completing upload {key}: {source}")]
    Completing {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Local {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether another attempt (of the activity, perhaps on another worker) can succeed.
    /// Unreachable or failing servers, throttling and timeouts pass; what is wrong with the
    /// request, the credentials, the bucket or the stored data does not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Remote { source, .. } => remote_is_retryable(source),
            // A full disk or a failing one is this worker's trouble, and it may be gone by
            // the next attempt or that may run elsewhere.
            Self::Local { .. } => true,
            // The parts were accepted: what failed is the last request, or the report of it.
            Self::Completing { .. } => true,
            Self::Url { .. }
            | Self::Profile { .. }
            | Self::InvalidName { .. }
            | Self::Symlink { .. }
            | Self::NotRegular { .. }
            | Self::TooLarge { .. }
            | Self::Corrupt { .. }
            | Self::BadManifest { .. } => false,
        }
    }

    pub(crate) fn remote(
        op: &'static str,
        key: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Self::Remote {
            op,
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn local(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Local {
            op,
            path: path.into(),
            source,
        }
    }
}

fn remote_is_retryable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        // object_store maps 404, 409, 412, 304, 403 and 401 to these: the bucket or object is
        // missing, or the credentials are refused; neither changes by trying again.
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        E::Generic { source, .. } => generic_is_retryable(source.as_ref()),
        _ => true,
    }
}

/// object_store's retry error (the one carrying the status) is not a public type, so the
/// status is read from the chain: a transport error is retryable, a status by its class.
fn generic_is_retryable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<object_store::client::HttpError>() {
            return true;
        }
        cause = c.source();
    }
    match status_in(&e.to_string()) {
        Some(status) => status >= 500 || status == 429 || status == 408,
        // Unknown: after object_store's own retries, leave the decision to the retry policy.
        None => true,
    }
}

/// The HTTP status in object_store's "...status code: 503 Service Unavailable..." text.
fn status_in(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    let digits = rest.get(..3)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_object_stores_text() {
        assert_eq!(
            status_in(
                "Error performing PUT x: Server returned non-2xx status code: 503 Service Unavailable: "
            ),
            Some(503)
        );
        assert_eq!(status_in("status code: 4x"), None);
        assert_eq!(status_in("no status here"), None);
    }

    #[test]
    fn classification_by_status_class() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        assert!(remote_is_retryable(&generic(
            "non-2xx status code: 500 Internal"
        )));
        assert!(remote_is_retryable(&generic(
            "non-2xx status code: 429 Too Many"
        )));
        assert!(!remote_is_retryable(&generic(
            "non-2xx status code: 400 Bad Request"
        )));
        let missing = object_store::Error::NotFound {
            path: "x".into(),
            source: "no such bucket".into(),
        };
        assert!(!remote_is_retryable(&missing));
        // Refused at completion, after the parts went up: the next attempt finds the blob whole
        // or sends it again (sync::completed_anyway).
        let refused = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "AccessDenied".into(),
        };
        assert!(
            StoreError::Completing {
                key: "k".into(),
                source: refused,
            }
            .is_retryable()
        );
        assert!(
            !StoreError::TooLarge {
                run: "r".into(),
                total: 2,
                max: 1
            }
            .is_retryable()
        );
    }
}
