//! `model.json`: what `train_model` writes and `evaluate_model` / `register_model` read. One
//! type serves both directions, so the reader cannot drift from the writer.

use std::fs;

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::files;
use crate::model::{Softmax, Standardizer};

pub const FORMAT: &str = "mlx-softmax-regression";
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub format_version: u64,
    /// Optional on read: a hand-made file may omit it, and then callers must name the target.
    #[serde(default)]
    pub target: Option<String>,
    pub features: Vec<String>,
    pub classes: Vec<String>,
    pub standardization: Standardizer,
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
    // Provenance for people; prediction does not need them, so their absence is no error.
    #[serde(default)]
    pub hyperparameters: Value,
    #[serde(default)]
    pub training: Value,
    #[serde(default)]
    pub metrics: Value,
}

impl ModelFile {
    /// Pretty JSON with keys sorted (through `Value`), as the file has always been written.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_value(self)
            .and_then(|v| serde_json::to_vec_pretty(&v))
            .unwrap_or_default()
    }

    pub fn softmax(&self) -> Softmax {
        Softmax {
            weights: self.weights.clone(),
            bias: self.bias.clone(),
        }
    }

    /// Probabilities for raw (unstandardized) feature rows in `features` order.
    pub fn predict(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        self.softmax().predict(&self.standardization.transform(x))
    }
}

/// The bytes of the model file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>, PluginError> {
    fs::read(path).map_err(|e| {
        files::read_error(
            path,
            e,
            "Pass the model path train_model returned; it must be inside a directory granted \
             to the trainer (usually /artifacts)",
        )
    })
}

/// Parses and checks a model file. Its shapes are checked here because a model that
/// deserializes but does not fit together would otherwise panic (index out of range) or
/// predict garbage far from the cause.
pub fn parse(bytes: &[u8], path: &str) -> Result<ModelFile, PluginError> {
    let invalid = |problem: String| {
        PluginError::invalid_input(
            "InvalidModel",
            format!("{path} is not a usable model: {problem}"),
        )
        .with_details(json!({"path": path}))
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    // Checked before the full shape, so a future format gets this message, not a field error.
    let (format, version) = (&value["format"], &value["format_version"]);
    if format != FORMAT || version != FORMAT_VERSION {
        return Err(PluginError::invalid_input(
            "UnsupportedModelFormat",
            format!(
                "{path} has format {format} version {version}; this trainer reads {FORMAT:?} \
                 version {FORMAT_VERSION}"
            ),
        )
        .with_details(json!({"path": path, "format": format, "format_version": version})));
    }
    let model: ModelFile = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    check_shapes(&model).map_err(invalid)?;
    Ok(model)
}

fn check_shapes(m: &ModelFile) -> Result<(), String> {
    let (k, d) = (m.classes.len(), m.features.len());
    let mut distinct = m.classes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if k < 2 || distinct.len() != k {
        return Err(format!(
            "needs at least 2 distinct classes, has {:?}",
            m.classes
        ));
    }
    if d == 0 {
        return Err("has no features".into());
    }
    let s = &m.standardization;
    if m.bias.len() != k || m.weights.len() != k || m.weights.iter().any(|w| w.len() != d) {
        return Err(format!(
            "weights and bias must be {k}×{d} and {k} (classes × features)"
        ));
    }
    if s.mean.len() != d || s.std.len() != d {
        return Err(format!("standardization must have {d} means and stds"));
    }
    let finite = m.weights.iter().flatten().chain(&m.bias).chain(&s.mean);
    if !finite.chain(&s.std).all(|v| v.is_finite()) || s.std.iter().any(|v| *v <= 0.0) {
        return Err("parameters must be finite numbers and stds positive".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelFile {
        // Many full-precision values: without serde_json's float_roundtrip some of them parse
        // back one unit in the last place off.
        let d = 200;
        let value = |i: usize| (i as f64 * 0.7).sin() * 10f64.powi(i as i32 % 9 - 4);
        ModelFile {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            target: Some("t".into()),
            features: (0..d).map(|i| format!("f{i}")).collect(),
            classes: vec!["x".into(), "y".into()],
            standardization: Standardizer {
                mean: (0..d).map(value).collect(),
                std: (0..d).map(|i| value(i).abs() + 0.1).collect(),
            },
            weights: vec![(0..d).map(value).collect(), (d..2 * d).map(value).collect()],
            bias: vec![std::f64::consts::PI, -0.0],
            hyperparameters: json!({"epochs": 3}),
            training: Value::Null,
            metrics: Value::Null,
        }
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let m = sample();
        let back = parse(&m.to_bytes(), "m.json").unwrap();
        assert_eq!(back, m);
        let bits = |m: &ModelFile| -> Vec<u64> {
            m.weights
                .iter()
                .flatten()
                .chain(&m.bias)
                .chain(&m.standardization.mean)
                .chain(&m.standardization.std)
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&back), bits(&m));
    }

    #[test]
    fn rejects_other_formats_and_inconsistent_shapes() {
        let err = parse(b"{\"format\": \"onnx\"}", "m.json").unwrap_err();
        assert_eq!(err.type_name, "UnsupportedModelFormat");
        assert_eq!(
            parse(b"not json", "m.json").unwrap_err().type_name,
            "InvalidModel"
        );
        let mut bad = sample();
        bad.weights[1].pop();
        assert_eq!(
            parse(&bad.to_bytes(), "m.json").unwrap_err().type_name,
            "InvalidModel"
        );
        let mut bad = sample();
        bad.classes[1] = "x".into();
        assert_eq!(
            parse(&bad.to_bytes(), "m.json").unwrap_err().type_name,
            "InvalidModel"
        );
        let mut bad = sample();
        bad.standardization.std[0] = 0.0;
        assert_eq!(
            parse(&bad.to_bytes(), "m.json").unwrap_err().type_name,
            "InvalidModel"
        );
        let mut bare = serde_json::to_value(sample()).unwrap();
        bare.as_object_mut().unwrap().remove("target");
        let bytes = serde_json::to_vec(&bare).unwrap();
        assert_eq!(parse(&bytes, "m.json").unwrap().target, None);
    }
}
