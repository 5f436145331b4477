//! The artifact a push writes: the CNCF Wasm OCI format (config
//! `application/vnd.wasm.config.v0+json`, the component as the first layer) with the plugin's
//! manifest as a second layer.

use std::collections::BTreeMap;

use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};

use super::{
    CONFIG_MEDIA_TYPE, MANIFEST_LAYER_MEDIA_TYPE, OciError, TITLE_ANNOTATION, VERSION_ANNOTATION,
    WASM_LAYER_MEDIA_TYPE, digest_of,
};

/// What a push sends: the component, its manifest if it has one, and what to annotate.
pub struct Artifact {
    pub name: String,
    pub version: Option<String>,
    pub wasm: Vec<u8>,
    pub manifest: Option<Vec<u8>>,
}

/// The config blob of the CNCF Wasm OCI format, as `wkg` writes it. `component` lists the
/// component's top-level imports and exports (cheap: read from the binary, nothing compiled).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WasmConfig {
    created: String,
    architecture: String,
    os: String,
    layer_digests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentWorld>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
    target: Option<String>,
}

/// The component's own import and export names (not those of the modules inside it); `None`
/// when `wasm` is not a component.
pub(super) fn component_world(wasm: &[u8]) -> Option<ComponentWorld> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut world = ComponentWorld {
        exports: Vec::new(),
        imports: Vec::new(),
        target: None,
    };
    // Nested modules and components each begin with a Version and end with an End.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return None;
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    world.imports.push(import.ok()?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    world.exports.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(world)
}

/// The blobs and manifest of `artifact`, in push order: layers (the component first, then the
/// plugin manifest), config, and the OCI image manifest's bytes last.
pub(super) fn artifact_manifest(
    artifact: &Artifact,
) -> Result<(Vec<Blob>, Blob, Vec<u8>), OciError> {
    let mut layers = vec![Blob::new(WASM_LAYER_MEDIA_TYPE, artifact.wasm.clone())];
    if let Some(manifest) = &artifact.manifest {
        layers.push(Blob::new(MANIFEST_LAYER_MEDIA_TYPE, manifest.clone()));
    }
    let config = WasmConfig {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: layers.iter().map(|l| l.digest.clone()).collect(),
        component: component_world(&artifact.wasm),
    };
    let config = Blob::new(
        CONFIG_MEDIA_TYPE,
        serde_json::to_vec(&config).expect("a config serializes"),
    );
    let mut annotations = BTreeMap::from([(TITLE_ANNOTATION.to_string(), artifact.name.clone())]);
    if let Some(version) = &artifact.version {
        annotations.insert(VERSION_ANNOTATION.into(), version.clone());
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        config: config.descriptor(),
        layers: layers.iter().map(Blob::descriptor).collect(),
        subject: None,
        artifact_type: None,
        annotations: Some(annotations),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    Ok((layers, config, bytes))
}

pub(super) struct Blob {
    pub(super) media_type: &'static str,
    pub(super) digest: String,
    pub(super) data: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: digest_of(&data),
            data,
        }
    }

    pub(super) fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.into(),
            digest: self.digest.clone(),
            size: self.data.len() as i64,
            ..Default::default()
        }
    }
}
