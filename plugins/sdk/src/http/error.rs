use std::fmt;

use crate::PluginError;

/// What kind of failure an [`HttpError`] is, so a plugin can decide what a retry would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpErrorKind {
    /// The host refused the request: its origin is not on the manifest's `[http] allow` list,
    /// or the name resolves to an address the host refuses. Nothing was sent.
    Denied,
    /// The host refused a request header (`host` and hop-by-hop headers are forbidden).
    HeaderRefused,
    /// The URL could not be handed to the host.
    InvalidUrl,
    /// The response body grew past the host's `[http] max_response_kb`.
    BodyTooLarge,
    /// DNS, connection, timeout or a connection cut mid-response: may work later.
    Transient,
    /// Anything else (TLS, protocol errors, misuse of the bindings): a retry is unlikely to help.
    Failed,
}

/// A failed request or body read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub kind: HttpErrorKind,
    /// For a person; never contains header values (they may be credentials).
    pub message: String,
}

impl HttpError {
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

/// The SDK's default mapping, type names shared by every plugin doing HTTP: `Denied` →
/// permanent `CapabilityDenied`, `HeaderRefused` → permanent `HeaderRefused`, `InvalidUrl` →
/// invalid-input `InvalidUrl`, `Transient` → retryable `HttpFailed`, others → permanent
/// `HttpFailed`.
impl From<HttpError> for PluginError {
    fn from(e: HttpError) -> Self {
        let HttpError { kind, message } = e;
        match kind {
            HttpErrorKind::Denied => PluginError::permanent("CapabilityDenied", message),
            HttpErrorKind::HeaderRefused => PluginError::permanent("HeaderRefused", message),
            HttpErrorKind::InvalidUrl => PluginError::invalid_input("InvalidUrl", message),
            HttpErrorKind::Transient => PluginError::retryable("HttpFailed", message),
            HttpErrorKind::BodyTooLarge | HttpErrorKind::Failed => {
                PluginError::permanent("HttpFailed", message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn default_mapping_keeps_the_shared_type_names() {
        let cases = [
            (
                HttpErrorKind::Denied,
                ErrorKind::Permanent,
                "CapabilityDenied",
            ),
            (
                HttpErrorKind::HeaderRefused,
                ErrorKind::Permanent,
                "HeaderRefused",
            ),
            (
                HttpErrorKind::InvalidUrl,
                ErrorKind::InvalidInput,
                "InvalidUrl",
            ),
            (HttpErrorKind::Transient, ErrorKind::Retryable, "HttpFailed"),
            (
                HttpErrorKind::BodyTooLarge,
                ErrorKind::Permanent,
                "HttpFailed",
            ),
            (HttpErrorKind::Failed, ErrorKind::Permanent, "HttpFailed"),
        ];
        for (kind, expected_kind, type_name) in cases {
            let e = PluginError::from(HttpError::new(kind, "m"));
            assert_eq!((e.kind, e.type_name.as_str()), (expected_kind, type_name));
            assert_eq!(e.message, "m");
        }
    }
}
