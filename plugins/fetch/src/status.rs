//! What an HTTP status means for the workflow: go on, stop for good, or try again later.

use mlx_plugin_sdk::PluginError;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// 401/403: the credentials (or their absence) are the problem.
    Unauthorized,
    /// The same request will get the same answer.
    Permanent,
    /// Timeouts, rate limits and server errors pass.
    Retryable,
}

pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Ok,
        401 | 403 => Verdict::Unauthorized,
        408 | 429 | 500..=599 => Verdict::Retryable,
        // 3xx too: wasi:http does not follow redirects, and retrying will not either.
        _ => Verdict::Permanent,
    }
}

/// Fails unless `status` is 2xx. `url` is the display form (no query); `authenticated` says
/// whether an auth_secret was sent, which changes what to fix on 401/403; `location` is the
/// redirect target, if any.
pub fn check(
    status: u16,
    url: &str,
    authenticated: bool,
    location: Option<&str>,
) -> Result<(), PluginError> {
    let details = json!({"status": status, "url": url});
    let error = match classify(status) {
        Verdict::Ok => return Ok(()),
        Verdict::Unauthorized => {
            let hint = if authenticated {
                "the server refused the credentials: check that auth_secret names the right \
                 secret in the plugin manifest's [secrets] table and that its value is a valid, \
                 unexpired token"
            } else {
                "the server wants credentials: set auth_secret to a secret granted in the \
                 plugin manifest's [secrets] table"
            };
            PluginError::permanent("Unauthorized", format!("{url} answered {status}; {hint}"))
        }
        Verdict::Retryable => {
            PluginError::retryable("HttpStatus", format!("{url} answered {status}"))
        }
        Verdict::Permanent => {
            let message = match location {
                Some(to) if (300..400).contains(&status) => format!(
                    "{url} answered {status}, a redirect to {}; redirects are not followed, \
                     use the final URL",
                    // Signed redirect targets carry their credentials in the query.
                    to.split('?').next().unwrap_or_default()
                ),
                _ => format!("{url} answered {status}"),
            };
            PluginError::permanent("HttpStatus", message)
        }
    };
    Err(error.with_details(details))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_plugin_sdk::ErrorKind;

    fn outcome(status: u16) -> Option<(ErrorKind, String)> {
        check(status, "https://h/x", true, None)
            .err()
            .map(|e| (e.kind, e.type_name))
    }

    #[test]
    fn success_is_any_2xx() {
        for status in [200, 201, 204, 206, 299] {
            assert_eq!(outcome(status), None, "{status}");
        }
    }

    #[test]
    fn client_errors_are_permanent_except_timeouts_and_rate_limits() {
        let permanent = |t: &str| Some((ErrorKind::Permanent, t.to_string()));
        let retryable = Some((ErrorKind::Retryable, "HttpStatus".to_string()));
        assert_eq!(outcome(401), permanent("Unauthorized"));
        assert_eq!(outcome(403), permanent("Unauthorized"));
        for status in [400, 404, 410, 451, 301, 302, 100] {
            assert_eq!(outcome(status), permanent("HttpStatus"), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(outcome(status), retryable, "{status}");
        }
    }

    #[test]
    fn unauthorized_points_at_the_secret_grant() {
        for authenticated in [true, false] {
            let e = check(403, "https://h/x", authenticated, None).unwrap_err();
            assert!(e.message.contains("[secrets]"), "{}", e.message);
            assert!(e.message.contains("auth_secret"), "{}", e.message);
        }
    }

    #[test]
    fn redirects_name_their_target_without_its_query() {
        let e = check(302, "https://h/x", false, Some("https://cdn/y?sig=s3cr3t")).unwrap_err();
        assert!(e.message.contains("https://cdn/y"), "{}", e.message);
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
        assert_eq!(e.details.unwrap()["status"], 302);
    }
}
