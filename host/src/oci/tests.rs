use base64::Engine;
use oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;

use super::{artifact::*, pinned::*, registry::*, *};

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn references_parse_and_print_back() {
    let text = format!("oci://127.0.0.1:5000/team/testkit:1.0@sha256:{HEX}");
    let r: PluginRef = text.parse().unwrap();
    assert_eq!(r.registry, "127.0.0.1:5000");
    assert_eq!(r.repository, "team/testkit");
    assert_eq!(r.tag.as_deref(), Some("1.0"));
    assert_eq!(r.digest, Some(format!("sha256:{HEX}")));
    assert_eq!(r.to_string(), text);
    assert_eq!(r.last_segment(), "testkit");
    let tagged: PluginRef = "oci://ghcr.io/acme/plugins/csv:v2".parse().unwrap();
    assert_eq!(tagged.registry, "ghcr.io");
    assert_eq!(tagged.repository, "acme/plugins/csv");
    assert_eq!(
        tagged.pinned(&format!("sha256:{HEX}")).to_string(),
        format!("oci://ghcr.io/acme/plugins/csv@sha256:{HEX}")
    );
}

#[test]
fn malformed_references_are_refused_saying_the_shape() {
    for bad in [
        "ghcr.io/acme/csv:v1",
        "oci://ghcr.io",
        "oci:///csv:v1",
        "oci://ghcr.io/Acme/csv:v1",
        "oci://ghcr.io/acme/csv",
        "oci://ghcr.io/acme/csv@sha256:abc",
        "oci://ghcr.io/acme/csv@md5:0123",
        "oci://ghcr.io/acme/csv:.bad",
    ] {
        let err = bad.parse::<PluginRef>().unwrap_err();
        assert!(
            err.to_string().contains("oci://HOST/REPOSITORY"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_worker_reference_must_be_pinned_by_digest() {
    let err = PluginRef::parse_pinned("oci://localhost:5000/testkit:latest").unwrap_err();
    assert!(matches!(err, RefError::NotPinned(_)));
    assert!(err.to_string().contains("pin it"), "{err}");
    PluginRef::parse_pinned(&format!("oci://localhost:5000/testkit@sha256:{HEX}")).unwrap();
}

#[test]
fn a_tag_in_the_worker_configuration_is_refused_naming_the_key() {
    let file: crate::config::ConfigFile = toml::from_str(
        "[worker]\nplugins_dir = \"p\"\nplugin_refs = [\"oci://localhost:5000/testkit:v1\"]\n",
    )
    .unwrap();
    let err = file.resolve().unwrap_err().to_string();
    assert!(
        err.contains("worker.plugin_refs") && err.contains("pin it"),
        "{err}"
    );
    let pinned = format!("oci://localhost:5000/testkit@sha256:{HEX}");
    let file: crate::config::ConfigFile = toml::from_str(&format!(
        "[worker]\nplugins_dir = \"p\"\nplugin_refs = [\"{pinned}\"]\n"
    ))
    .unwrap();
    let settings = file.resolve().unwrap();
    assert_eq!(settings.plugin_refs.len(), 1);
    assert_eq!(settings.plugin_refs[0].to_string(), pinned);
}

#[test]
fn only_loopback_registries_are_plain_http_by_default() {
    let r = |host: &str| format!("oci://{host}/p:1").parse::<PluginRef>().unwrap();
    assert!(r("localhost:5000").is_loopback());
    assert!(r("127.0.0.1:5000").is_loopback());
    assert!(r("127.8.9.10").is_loopback());
    assert!(r("[::1]:5000").is_loopback());
    assert!(!r("ghcr.io").is_loopback());
    assert!(!r("10.0.0.1:5000").is_loopback());
    assert!(!r("localhost.example.com").is_loopback());
}

#[test]
fn the_artifact_is_the_wasm_format_with_the_manifest_as_a_second_layer() {
    // The smallest component: the preamble of the component encoding.
    let wasm = b"\0asm\x0d\0\x01\0".to_vec();
    let artifact = Artifact {
        name: "testkit".into(),
        version: Some("0.3.0".into()),
        wasm: wasm.clone(),
        manifest: Some(b"[limits]\n".to_vec()),
    };
    let (layers, config, bytes) = artifact_manifest(&artifact).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manifest["mediaType"], OCI_IMAGE_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["digest"], digest_of(&wasm));
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        MANIFEST_LAYER_MEDIA_TYPE
    );
    assert_eq!(manifest["annotations"][TITLE_ANNOTATION], "testkit");
    assert_eq!(manifest["annotations"][VERSION_ANNOTATION], "0.3.0");
    let config: serde_json::Value = serde_json::from_slice(&config.data).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(
        config["layerDigests"],
        serde_json::json!([layers[0].digest, layers[1].digest])
    );
    assert_eq!(config["component"]["imports"], serde_json::json!([]));
    // And it reads back as a plugin.
    let r: PluginRef = "oci://localhost/testkit:1".parse().unwrap();
    let read = plugin_layers(&r, &bytes).unwrap();
    assert_eq!(read.title.as_deref(), Some("testkit"));
    assert_eq!(read.wasm.digest, digest_of(&wasm));
    assert!(read.manifest.is_some());
}

#[test]
fn a_core_module_is_not_a_component() {
    assert!(component_world(b"\0asm\x01\0\0\0").is_none());
    assert!(component_world(b"not wasm").is_none());
}

#[test]
fn an_artifact_without_exactly_one_wasm_layer_is_not_a_plugin() {
    let r: PluginRef = "oci://localhost/x:1".parse().unwrap();
    let manifest = |layers: serde_json::Value| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": format!("sha256:{HEX}"), "size": 2},
            "layers": layers,
        }))
        .unwrap()
    };
    let layer =
        |t: &str| serde_json::json!({"mediaType": t, "digest": format!("sha256:{HEX}"), "size": 1});
    assert!(matches!(
        plugin_layers(
            &r,
            &manifest(serde_json::json!([layer("application/x-tar")]))
        ),
        Err(OciError::NotAPlugin { .. })
    ));
    assert!(matches!(
        plugin_layers(
            &r,
            &manifest(serde_json::json!([
                layer(WASM_LAYER_MEDIA_TYPE),
                layer(WASM_LAYER_MEDIA_TYPE)
            ]))
        ),
        Err(OciError::NotAPlugin { .. })
    ));
    let only_wasm = plugin_layers(
        &r,
        &manifest(serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE)])),
    )
    .unwrap();
    assert!(only_wasm.manifest.is_none() && only_wasm.title.is_none());
}

#[test]
fn the_name_is_the_flag_else_the_title_else_the_last_segment() {
    let r: PluginRef = "oci://localhost/team/scorer:1".parse().unwrap();
    let fetched = |title: Option<&str>| Fetched {
        digest: String::new(),
        title: title.map(Into::into),
        wasm: Vec::new(),
        manifest: None,
    };
    assert_eq!(fetched(Some("csv")).name(&r, Some("mine")).unwrap(), "mine");
    assert_eq!(fetched(Some("csv")).name(&r, None).unwrap(), "csv");
    assert_eq!(fetched(None).name(&r, None).unwrap(), "scorer");
    // A title is the registry's word, and becomes a file name: no paths, no hidden files.
    for evil in ["../../etc/x", ".hidden", "a/b", "", "x.wasm"] {
        assert!(matches!(
            fetched(Some(evil)).name(&r, None),
            Err(OciError::Name(_))
        ));
    }
}

#[test]
fn docker_config_credentials_are_found_by_host() {
    let auth = base64::engine::general_purpose::STANDARD.encode("ann:s3cret");
    let config = format!(
        r#"{{"auths": {{"https://registry.example:5000/v1/": {{"auth": "{auth}"}},
            "other.example": {{}}}}}}"#
    );
    assert_eq!(
        docker_config_auth(&config, "registry.example:5000").unwrap(),
        Some(("ann".into(), "s3cret".into()))
    );
    assert_eq!(docker_config_auth(&config, "other.example").unwrap(), None);
    assert_eq!(docker_config_auth(&config, "nowhere").unwrap(), None);
    assert!(docker_config_auth(r#"{"auths": {"h": {"auth": "!!"}}}"#, "h").is_err());
}

#[test]
fn install_writes_whole_files_and_leaves_no_temporary_ones() {
    let dir = tempfile::tempdir().unwrap();
    let fetched = Fetched {
        digest: String::new(),
        title: None,
        wasm: b"wasm bytes".to_vec(),
        manifest: Some(b"[limits]\n".to_vec()),
    };
    install(dir.path(), "p", &fetched).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("p.wasm")).unwrap(),
        b"wasm bytes"
    );
    assert_eq!(
        std::fs::read(dir.path().join("p.toml")).unwrap(),
        b"[limits]\n"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    assert!(holds(&dir.path().join("p.wasm"), &digest_of(b"wasm bytes")));
    assert!(!holds(&dir.path().join("p.wasm"), &digest_of(b"other")));
}

#[test]
fn which_failures_a_retry_cannot_fix() {
    assert!(
        OciError::NotFound {
            reference: "r".into()
        }
        .is_permanent()
    );
    assert!(
        OciError::DigestMismatch {
            what: "w".into(),
            expected: "a".into(),
            actual: "b".into()
        }
        .is_permanent()
    );
    let unreachable = OciError::Unreachable {
        registry: "h".into(),
        source: OciDistributionError::GenericError(None),
    };
    assert!(unreachable.is_unreachable() && !unreachable.is_permanent());
}

fn installed(name: &str, wasm: &[u8], manifest: Option<&[u8]>) -> Installed {
    Installed {
        name: name.into(),
        reference: format!("oci://127.0.0.1:5000/team/{name}@sha256:{HEX}")
            .parse()
            .unwrap(),
        wasm_digest: digest_of(wasm),
        manifest_digest: manifest.map(digest_of),
    }
}

#[test]
fn a_plugin_the_new_list_drops_is_removed_only_while_it_is_the_pulled_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let put = |file: &str, bytes: &[u8]| std::fs::write(dir.path().join(file), bytes).unwrap();
    put("kept.wasm", b"kept");
    put("dropped.wasm", b"dropped");
    put("dropped.toml", b"[limits]");
    // Its artifact had no manifest: the .toml beside it is the operator's.
    put("bare.wasm", b"bare");
    put("bare.toml", b"# mine");
    // Replaced by hand after the pull: not ours any more.
    put("edited.wasm", b"edited by hand");
    let before = [
        installed("kept", b"kept", None),
        installed("dropped", b"dropped", Some(b"[limits]")),
        installed("bare", b"bare", None),
        installed("edited", b"as pulled", None),
    ];
    let now = [installed("kept", b"kept", None)];
    let removed = remove_dropped(dir.path(), &before, &now).unwrap();
    assert_eq!(removed, ["dropped", "bare"]);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["bare.toml", "edited.wasm", "kept.wasm"]);
}
