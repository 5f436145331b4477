//! JSON Schemas of `download`, as `describe()` declares them.

use mlx_plugin_sdk::schema::object;
use serde_json::{Value, json};

use crate::input::DEFAULT_MAX_BYTES;

const SHA256_PATTERN: &str = "^[0-9a-fA-F]{64}$";

pub fn input() -> Value {
    object(
        json!({
            "url": {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://",
                    "description": "http:// or https:// URL; its origin must be granted under \
                                    [http] allow in the plugin's manifest. Redirects are not \
                                    followed."},
            "dest": {"type": "string", "minLength": 1,
                     "description": "Relative file path inside /artifacts, e.g. \
                                     raw/breast_cancer.csv; parent directories are created. No \
                                     leading /, no . or .. components, no empty components."},
            "auth_secret": {"type": "string", "minLength": 1,
                            "description": "Name of a secret granted under [secrets] in the \
                                            manifest, sent as `Authorization: Bearer <value>`."},
            "max_bytes": {"type": "integer", "minimum": 0, "default": DEFAULT_MAX_BYTES,
                          "description": "Largest body accepted (also bounded by the \
                                          manifest's [http] max_response_kb)."},
            "sha256": {"type": "string", "pattern": SHA256_PATTERN,
                       "description": "Expected SHA-256 of the body, hex; on mismatch nothing \
                                       is written."},
        }),
        &["url", "dest"],
    )
}

pub fn output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "/artifacts/<dest>"},
            "bytes": {"type": "integer", "minimum": 0},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "status": {"type": "integer", "minimum": 200, "maximum": 299},
            "content_type": {"type": ["string", "null"]},
        },
        "required": ["path", "bytes", "sha256", "status", "content_type"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FetchPlugin;
    use mlx_plugin_sdk::Plugin;

    #[test]
    fn describe_declares_one_operation_with_closed_input() {
        let info = FetchPlugin::info();
        assert_eq!(info.name, "fetch");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        let [op] = info.operations.as_slice() else {
            panic!("one operation expected");
        };
        assert_eq!(op.name, "download");
        assert_eq!(op.input_schema["additionalProperties"], false);
        assert_eq!(op.input_schema["required"], json!(["url", "dest"]));
        assert_eq!(
            op.input_schema["properties"]["max_bytes"]["default"],
            256 << 20
        );
    }
}
