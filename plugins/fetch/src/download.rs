//! The `download` operation: one GET, streamed into `/artifacts/<dest>`.

use mlx_plugin_sdk::http::{self, HttpError, HttpErrorKind};
use mlx_plugin_sdk::{Context, PluginError, config, log};
use serde_json::{Value, json};

use crate::input::{DownloadInput, dest_path, expected_sha256};
use crate::sink::{self, Limits};
use crate::status;

/// Bytes asked of the host per read.
const CHUNK: usize = 256 << 10;

pub fn download(input: DownloadInput, ctx: &Context) -> Result<Value, PluginError> {
    // The raw URL is never echoed: its query may hold a token.
    let url = http::parse(&input.url)
        .map_err(|e| PluginError::invalid_input("InvalidUrl", format!("url: {e}")))?;
    let shown = url.without_query();
    let dest = dest_path(&input.dest)?;
    let sha256 = expected_sha256(input.sha256.as_deref())?;

    let mut headers = vec![(
        "user-agent",
        concat!("mlx-plugin-fetch/", env!("CARGO_PKG_VERSION")).to_string(),
    )];
    if let Some(name) = &input.auth_secret {
        headers.push(("authorization", format!("Bearer {}", bearer_token(name)?)));
    }
    let mut response = http::get(&url, &headers).map_err(http_error)?;
    // Only as long as needed: nothing below may carry the token.
    drop(headers);

    let status = response.status();
    status::check(
        status,
        &shown,
        input.auth_secret.is_some(),
        response.header("location"),
    )?;
    if let Some(length) = response.content_length()
        && length > input.max_bytes
    {
        return Err(sink::too_large(input.max_bytes));
    }
    let content_type = response.content_type().map(str::to_owned);
    let body = response.body();
    let limits = Limits {
        max_bytes: input.max_bytes,
        sha256: sha256.as_deref(),
    };
    let written = sink::stream_to_file(
        &dest,
        || body.chunk(CHUNK).map_err(http_error),
        &limits,
        ctx,
    )?;

    let path = dest.display().to_string();
    log::info(
        "downloaded",
        &[
            ("url", &shown),
            ("path", &path),
            ("bytes", &written.bytes),
            ("sha256", &written.sha256),
        ],
    );
    Ok(json!({
        "path": path,
        "bytes": written.bytes,
        "sha256": written.sha256,
        "status": status,
        "content_type": content_type,
    }))
}

/// The secret granted as `name`. Errors name the secret and where to grant it, never a value.
fn bearer_token(name: &str) -> Result<String, PluginError> {
    match config::secret(name) {
        Some(token) if !token.trim().is_empty() => Ok(token),
        found => Err(secret_unavailable(name, found.is_some())),
    }
}

fn secret_unavailable(name: &str, empty: bool) -> PluginError {
    let why = if empty {
        "is granted but empty"
    } else {
        "is not granted to this plugin"
    };
    PluginError::permanent(
        "SecretUnavailable",
        format!(
            "auth_secret {name:?} {why}: add it to the fetch plugin's manifest under [secrets] \
             (e.g. {name} = {{ env = \"MLX_SECRET_...\" }}) and give it a value"
        ),
    )
    .with_details(json!({"secret": name}))
}

/// The SDK's mapping, except that the host's body cap is a size problem like max_bytes.
fn http_error(e: HttpError) -> PluginError {
    match e.kind {
        HttpErrorKind::BodyTooLarge => PluginError::permanent(
            "DownloadTooLarge",
            format!(
                "{e}: the body is larger than the host lets this plugin read; raise \
                 max_response_kb under [http] in the plugin's manifest"
            ),
        ),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_plugin_sdk::ErrorKind;

    fn run(input: Value) -> PluginError {
        download(
            mlx_plugin_sdk::parse_input(input).unwrap(),
            &Context::detached(1, None),
        )
        .unwrap_err()
    }

    #[test]
    fn bad_requests_fail_before_any_network() {
        for (input, type_name) in [
            (json!({"url": "ftp://h/x", "dest": "x"}), "InvalidUrl"),
            (
                json!({"url": "https://h/x", "dest": "../x"}),
                "InvalidDestination",
            ),
            (
                json!({"url": "https://h/x", "dest": "x", "sha256": "beef"}),
                "InvalidChecksum",
            ),
        ] {
            let e = run(input);
            assert_eq!(
                (e.kind, e.type_name.as_str()),
                (ErrorKind::InvalidInput, type_name)
            );
        }
    }

    #[test]
    fn an_ungranted_secret_is_named_with_the_manifest_key() {
        // Off wasm no secret is ever granted, so this stops before the request.
        let e = run(json!({"url": "https://h/x", "dest": "x", "auth_secret": "data_token"}));
        assert_eq!(
            (e.kind, e.type_name.as_str()),
            (ErrorKind::Permanent, "SecretUnavailable")
        );
        assert!(e.message.contains("\"data_token\""), "{}", e.message);
        assert!(e.message.contains("[secrets]"), "{}", e.message);
    }

    #[test]
    fn an_empty_secret_is_reported_without_a_value() {
        let e = secret_unavailable("data_token", true);
        assert!(e.message.contains("empty") && e.message.contains("[secrets]"));
    }

    #[test]
    fn the_host_body_cap_is_a_download_too_large() {
        let cap = HttpError::new(
            HttpErrorKind::BodyTooLarge,
            "HttpResponseBodySize(Some(1024))",
        );
        let e = http_error(cap);
        assert_eq!(
            (e.kind, e.type_name.as_str()),
            (ErrorKind::Permanent, "DownloadTooLarge")
        );
        assert!(e.message.contains("max_response_kb"));
        let refused = http_error(HttpError::new(HttpErrorKind::Transient, "refused"));
        assert_eq!(
            (refused.kind, refused.type_name.as_str()),
            (ErrorKind::Retryable, "HttpFailed")
        );
        let denied = http_error(HttpError::new(HttpErrorKind::Denied, "denied"));
        assert_eq!(denied.type_name, "CapabilityDenied");
    }
}
