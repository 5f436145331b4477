//! An ONNX model read, checked and made runnable by tract, with what the scorer needs to know
//! about its input and outputs.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};

use mlx_plugin_sdk::{JsonSchema, PluginError};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::*;

/// The largest model file the scorer loads. While loading, the file is held about three times
/// (its bytes, the decoded protobuf, tract's graph and the optimised plan built from it), so 64
/// MiB keeps a model under about 200 MiB of the default 512 MiB `memory_mb`, leaving room for
/// the batches. A scikit-learn forest of a few hundred deep trees reaches this; raise it with
/// the manifest's `memory_mb` in mind.
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

/// ONNX `TensorProto.DataType` codes the scorer reads.
const FLOAT: i32 = 1;
const DOUBLE: i32 = 11;

/// One tensor of the model's signature, as the ONNX file declares it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TensorInfo {
    pub name: String,
    /// ONNX element type (`float`, `double`, `int64`, `string`, …); `none` for a value that is
    /// not a tensor (ZipMap's sequence of maps).
    #[serde(rename = "type")]
    pub elem_type: String,
    /// Dimensions: a number, or the name of a symbolic one (`"N"`, `"?"` when unnamed).
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
}

/// What the scorer found in a model file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModelInfo {
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub bytes: u64,
    /// `producer_name producer_version` from the file, e.g. `skl2onnx 1.20.0`.
    pub producer: String,
    /// The default-domain and `ai.onnx.ml` operator sets the file imports.
    pub opsets: Vec<String>,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// How the model's outputs become prediction columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// A label tensor `[N]` (strings or integers) at `label`, class scores `[N, C]` at `scores`
    /// when the model has them, with the class names in the scores' column order.
    Classifier {
        label: usize,
        scores: Option<usize>,
        classes: Vec<String>,
        /// The names of the label output's values when the scorer replaced string class
        /// labels by their indices (see [`index_string_labels`]).
        label_names: Option<Vec<String>>,
    },
    /// One float tensor `[N]` or `[N, T]`: the predicted values.
    Regressor { values: usize },
}

pub struct Model {
    pub info: ModelInfo,
    /// Number of features of the input `[N, features]`.
    pub features: usize,
    /// The input is `double`: features are passed as f64 instead of f32.
    pub double_input: bool,
    pub outputs: Outputs,
    pub plan: Arc<TypedRunnableModel>,
}

fn malformed(path: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(
        "MalformedModel",
        format!("{path} is not a readable ONNX model: {message}"),
    )
    .with_details(json!({"path": path}))
}

fn unsupported(path: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input("UnsupportedModel", format!("{path}: {message}"))
        .with_details(json!({"path": path}))
}

/// tract's error with its causes, outermost first (its Display shows only the outermost).
fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The file's bytes and their SHA-256, refusing files over [`MAX_MODEL_BYTES`] before reading.
fn read(path: &str) -> Result<(Vec<u8>, String), PluginError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        // Outside every preopened directory WASI reports the path as missing or not permitted.
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => PluginError::invalid_input(
            "ModelNotFound",
            format!(
                "cannot open {path}: {e}. The model must be a file in a directory granted to the \
                 scorer plugin in its manifest"
            ),
        )
        .with_details(json!({"path": path})),
        _ => PluginError::retryable("ModelReadFailed", format!("cannot open {path}: {e}")),
    })?;
    let too_large = |size: u64| {
        PluginError::invalid_input(
            "ModelTooLarge",
            format!(
                "{path} is {size} bytes; the scorer loads models of at most {MAX_MODEL_BYTES} \
                 bytes"
            ),
        )
        .with_details(json!({"path": path, "bytes": size, "max_bytes": MAX_MODEL_BYTES}))
    };
    let failed = |e: io::Error| match e.kind() {
        // A directory, for one: reading it fails the same way every time.
        io::ErrorKind::IsADirectory | io::ErrorKind::InvalidInput => {
            malformed(path, format!("cannot read it: {e}"))
        }
        _ => PluginError::retryable("ModelReadFailed", format!("reading {path}: {e}")),
    };
    let size = file.metadata().map_err(failed)?.len();
    if size > MAX_MODEL_BYTES {
        return Err(too_large(size));
    }
    // The cap holds even if the file grows while it is read.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

fn elem_type_name(code: i32) -> String {
    pb::tensor_proto::DataType::try_from(code)
        .map(|t| t.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("type {code}"))
}

fn tensor_info(value: &pb::ValueInfoProto) -> TensorInfo {
    // tract's protobuf knows tensor types only: a sequence or a map decodes as no type at all.
    let tensor = value
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|type_proto::Value::TensorType(tensor)| tensor);
    let shape = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(n)) => Dim::Fixed(*n),
                    Some(dimension::Value::DimParam(name)) if !name.is_empty() => {
                        Dim::Symbolic(name.clone())
                    }
                    _ => Dim::Symbolic("?".into()),
                })
                .collect()
        })
        .unwrap_or_default();
    TensorInfo {
        name: value.name.clone(),
        elem_type: tensor.map_or_else(|| "none".into(), |t| elem_type_name(t.elem_type)),
        shape,
    }
}

/// Class names of the model's classifier node, in the order of its score columns: the last
/// node declaring class labels (skl2onnx ends a classifier with it).
fn class_labels(graph: &pb::GraphProto) -> Option<Vec<String>> {
    graph.node.iter().rev().find_map(|node| {
        node.attribute.iter().find_map(|a| match a.name.as_str() {
            "classlabels_strings" => Some(
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            "classlabels_ints" | "classlabels_int64s" => {
                Some(a.ints.iter().map(i64::to_string).collect())
            }
            _ => None,
        })
    })
}

/// tract 0.23.9 builds a classifier's label lookup around a zero of the labels' type, which
/// text has not ("String doesn't implement num_traits::Zero"), so a classifier trained on class
/// names cannot be typed. Each such classifier gets the indices of its classes as integer
/// labels instead, and its label output (directly or through Identity nodes, as skl2onnx
/// wires it) is declared int64; returns, per rewritten graph output, the names the indices
/// stand for. A label used by any other node is left alone (tract then says what fails).
fn index_string_labels(graph: &mut pb::GraphProto) -> Vec<(String, Vec<String>)> {
    const INT64: i32 = 7;
    let mut rewritten = Vec::new();
    for n in 0..graph.node.len() {
        let node = &graph.node[n];
        let ints_name = match node.op_type.as_str() {
            "LinearClassifier" => "classlabels_ints",
            "TreeEnsembleClassifier" => "classlabels_int64s",
            _ => continue,
        };
        let Some(at) = node
            .attribute
            .iter()
            .position(|a| a.name == "classlabels_strings")
        else {
            continue;
        };
        let Some(mut label) = node.output.first().cloned() else {
            continue;
        };
        // Follow the label to a graph output through Identity nodes only.
        let output = loop {
            if let Some(o) = graph.output.iter().position(|o| o.name == label) {
                let consumers = graph.node.iter().filter(|c| c.input.contains(&label));
                if consumers.count() == 0 {
                    break Some(o);
                }
            }
            let mut consumers = graph.node.iter().filter(|c| c.input.contains(&label));
            match (consumers.next(), consumers.next()) {
                (Some(c), None) if c.op_type == "Identity" && c.output.len() == 1 => {
                    label = c.output[0].clone();
                }
                _ => break None,
            }
        };
        let Some(output) = output else { continue };
        let Some(type_proto::Value::TensorType(tensor)) = graph.output[output]
            .r#type
            .as_mut()
            .and_then(|t| t.value.as_mut())
        else {
            continue;
        };
        tensor.elem_type = INT64;
        let attribute = &mut graph.node[n].attribute[at];
        let names: Vec<String> = attribute
            .strings
            .drain(..)
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .collect();
        attribute.name = ints_name.into();
        attribute.r#type = pb::attribute_proto::AttributeType::Ints as i32;
        attribute.ints = (0..names.len() as i64).collect();
        rewritten.push((label, names));
    }
    rewritten
}

/// A binary tree classifier may keep one score, the second class's, with all its leaves on
/// class 0 (skl2onnx's binary RandomForestClassifier and GradientBoostingClassifier). ONNX
/// makes that [1 - p, p]; tract 0.23.9 does too, but names the class by the argmax of [p, 0]
/// (or of [p, 0.5] after LOGISTIC), so the first class whenever p > 0, and refuses a single
/// base value ("expected length 1, got 2"). The model is rewritten into the two-score form
/// tract gets right: every leaf also counted negated on class 0 and moved to class 1, with
/// base values [1 - b, b] without a transform (1 - (s + b)) and [-b, b] with LOGISTIC
/// (1 - sigmoid(s + b) = sigmoid(-s - b)). Other transforms are left alone.
fn split_binary_scores(graph: &mut pb::GraphProto) {
    for node in &mut graph.node {
        if node.op_type != "TreeEnsembleClassifier" {
            continue;
        }
        let attribute = |name: &str| node.attribute.iter().position(|a| a.name == name);
        let labels = node
            .attribute
            .iter()
            .find(|a| a.name.starts_with("classlabels_"))
            .map_or(0, |a| a.ints.len().max(a.strings.len()));
        let transform = attribute("post_transform").map_or(&b"NONE"[..], |i| &node.attribute[i].s);
        let logistic = match transform {
            b"NONE" => false,
            b"LOGISTIC" => true,
            _ => continue,
        };
        let (Some(ids), Some(nodes), Some(trees), Some(weights)) = (
            attribute("class_ids"),
            attribute("class_nodeids"),
            attribute("class_treeids"),
            attribute("class_weights"),
        ) else {
            continue;
        };
        let base = attribute("base_values");
        let single_score = node.attribute[ids].ints.iter().all(|&id| id == 0)
            && base.is_none_or(|b| node.attribute[b].floats.len() == 1);
        if labels != 2 || !single_score {
            continue;
        }
        // Each leaf becomes two entries side by side (tract wants a leaf's entries together
        // and tree ids never decreasing): -w on class 0, w on class 1.
        node.attribute[ids].ints = node.attribute[ids]
            .ints
            .iter()
            .flat_map(|_| [0, 1])
            .collect();
        for at in [nodes, trees] {
            let doubled = node.attribute[at]
                .ints
                .iter()
                .flat_map(|&x| [x, x])
                .collect();
            node.attribute[at].ints = doubled;
        }
        let split = node.attribute[weights]
            .floats
            .iter()
            .flat_map(|&w| [-w, w])
            .collect();
        node.attribute[weights].floats = split;
        let b = base
            .and_then(|i| node.attribute[i].floats.first().copied())
            .unwrap_or(0.0);
        let complement = if logistic { -b } else { 1.0 - b };
        match base {
            Some(i) => node.attribute[i].floats = vec![complement, b],
            None => node.attribute.push(pb::AttributeProto {
                name: "base_values".into(),
                r#type: pb::attribute_proto::AttributeType::Floats as i32,
                floats: vec![complement, b],
                ..Default::default()
            }),
        }
    }
}

/// Operators of `graph` (and of the graphs inside its nodes) that `onnx` cannot build.
fn unknown_operators(
    onnx: &tract_onnx::Onnx,
    graph: &pb::GraphProto,
    found: &mut BTreeSet<String>,
) {
    for node in &graph.node {
        if !onnx.op_register.0.contains_key(&node.op_type) {
            let domain = if node.domain.is_empty() {
                String::new()
            } else {
                format!(" ({})", node.domain)
            };
            found.insert(format!("{}{domain}", node.op_type));
        }
        for attribute in &node.attribute {
            for g in attribute.g.iter().chain(&attribute.graphs) {
                unknown_operators(onnx, g, found);
            }
        }
    }
}

/// Reads the model at `path` and makes it runnable for any number of rows.
pub fn load(path: &str) -> Result<Model, PluginError> {
    let (bytes, sha256) = read(path)?;
    let size = bytes.len() as u64;
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| malformed(path, chain(&e)))?;
    drop(bytes);
    let Some(graph) = proto.graph.as_mut() else {
        return Err(malformed(path, "the file has no graph"));
    };
    // Read before the labels are indexed: the probability columns are named after them.
    let classes = class_labels(graph);
    let label_names = index_string_labels(graph);
    split_binary_scores(graph);
    let graph = &*graph;
    if graph.node.is_empty() || graph.output.is_empty() {
        return Err(malformed(path, "the graph has no nodes or no outputs"));
    }
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Before IR version 4 inputs listed the initializers too: those are weights, not inputs.
    let inputs: Vec<TensorInfo> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(tensor_info)
        .collect();
    let outputs: Vec<TensorInfo> = graph.output.iter().map(tensor_info).collect();
    let mut opsets: Vec<String> = proto
        .opset_import
        .iter()
        .map(|o| {
            let domain = if o.domain.is_empty() {
                "ai.onnx"
            } else {
                &o.domain
            };
            format!("{domain} {}", o.version)
        })
        .collect();
    opsets.sort();
    let info = ModelInfo {
        sha256,
        bytes: size,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string(),
        opsets,
        inputs,
        outputs,
    };

    let mut unknown = BTreeSet::new();
    unknown_operators(&onnx, graph, &mut unknown);
    if unknown.iter().any(|op| op.starts_with("ZipMap ")) {
        return Err(unsupported(
            path,
            "its probabilities go through ZipMap (a sequence of maps), which tract does not \
             compute. Export the classifier with skl2onnx's options={'zipmap': False} (or \
             options={id(model): {'zipmap': False}}) to get a probabilities tensor",
        ));
    }
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(String::as_str).collect();
        return Err(unsupported(
            path,
            format!(
                "operators not implemented by tract {}: {}",
                tract_version(),
                list.join(", ")
            ),
        )
        .with_details(json!({"path": path, "operators": list})));
    }

    let [input] = info.inputs.as_slice() else {
        return Err(unsupported(
            path,
            format!(
                "the scorer feeds one tensor [rows, features]; the model has {} inputs ({}). \
                 Export it with a single FloatTensorType([None, features]) initial type",
                info.inputs.len(),
                info.inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let input_proto = graph
        .input
        .iter()
        .find(|i| i.name == input.name)
        .and_then(|i| i.r#type.as_ref())
        .and_then(|t| t.value.as_ref())
        .map(|type_proto::Value::TensorType(tensor)| tensor.elem_type);
    let double_input = match input_proto {
        Some(FLOAT) => false,
        Some(DOUBLE) => true,
        _ => {
            return Err(unsupported(
                path,
                format!(
                    "its input {} is {}; the scorer feeds float or double features",
                    input.name, input.elem_type
                ),
            ));
        }
    };
    let features = match input.shape.as_slice() {
        [_, Dim::Fixed(n)] if *n > 0 => *n as usize,
        _ => {
            return Err(unsupported(
                path,
                format!(
                    "its input {} has shape {}; the scorer needs [rows, features] with a fixed \
                     number of features",
                    input.name,
                    shape_text(&input.shape)
                ),
            ));
        }
    };

    let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| unsupported(path, format!("tract cannot build it: {}", chain(&e))))?;
    drop(proto);
    // One plan for every batch size: the number of rows stays a symbol.
    let rows = model.symbols.sym("rows");
    let datum = if double_input {
        f64::datum_type()
    } else {
        f32::datum_type()
    };
    let typed = model
        .with_input_fact(
            0,
            InferenceFact::dt_shape(datum, [rows.to_dim(), features.to_dim()]),
        )
        .and_then(|m| m.into_optimized())
        .map_err(|e| unsupported(path, format!("tract cannot type it: {}", chain(&e))))?;
    let mut outputs = classify_outputs(path, &typed, classes)?;
    if let Outputs::Classifier {
        label,
        label_names: names,
        ..
    } = &mut outputs
    {
        *names = output_names
            .get(*label)
            .and_then(|name| label_names.iter().find(|(n, _)| n == name))
            .map(|(_, names)| names.clone());
    }
    let plan = typed
        .into_runnable()
        .map_err(|e| unsupported(path, format!("tract cannot plan it: {}", chain(&e))))?;
    Ok(Model {
        info,
        features,
        double_input,
        outputs,
        plan,
    })
}

/// Which output holds what: a classifier has a label tensor (strings or integers) and usually
/// float scores beside it; a regressor has float values only.
fn classify_outputs(
    path: &str,
    typed: &TypedModel,
    classes: Option<Vec<String>>,
) -> Result<Outputs, PluginError> {
    let mut facts = Vec::new();
    for i in 0..typed.outputs.len() {
        let fact = typed
            .output_fact(i)
            .map_err(|e| unsupported(path, chain(&e)))?;
        facts.push((fact.datum_type, fact.rank()));
    }
    let is_float = |dt: DatumType| dt.is_float();
    let label = facts
        .iter()
        .position(|&(dt, rank)| (dt == DatumType::String || dt.is_integer()) && rank == 1);
    let float_output = |rank_ok: &dyn Fn(usize) -> bool| {
        facts
            .iter()
            .position(|&(dt, rank)| is_float(dt) && rank_ok(rank))
    };
    match label {
        Some(label) => {
            let scores = float_output(&|rank| rank == 2);
            Ok(Outputs::Classifier {
                label,
                scores,
                classes: classes.unwrap_or_default(),
                label_names: None,
            })
        }
        None => match float_output(&|rank| rank == 1 || rank == 2) {
            Some(values) => Ok(Outputs::Regressor { values }),
            None => Err(unsupported(
                path,
                format!(
                    "no output is a label tensor [rows] or float values [rows] / [rows, targets] \
                     (outputs: {facts:?})"
                ),
            )),
        },
    }
}

/// The tract version the scorer was built with, for messages.
pub fn tract_version() -> &'static str {
    "0.23.9"
}

pub fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(s) => s.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    fn floats(name: &str, values: &[f32]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Floats as i32,
            floats: values.to_vec(),
            ..Default::default()
        }
    }

    fn text(name: &str, values: &[&str]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Strings as i32,
            strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    fn output(name: &str, elem_type: i32) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> &'a pb::AttributeProto {
        node.attribute.iter().find(|a| a.name == name).unwrap()
    }

    /// skl2onnx's binary GradientBoostingClassifier: two class names, one score on class 0.
    fn binary_booster(transform: &str) -> pb::GraphProto {
        let mut node = pb::NodeProto {
            op_type: "TreeEnsembleClassifier".into(),
            input: vec!["X".into()],
            output: vec!["label".into(), "proba".into()],
            attribute: vec![
                text("classlabels_strings", &["benign", "malignant"]),
                ints("class_ids", &[0, 0]),
                ints("class_nodeids", &[1, 2]),
                ints("class_treeids", &[0, 0]),
                floats("class_weights", &[-0.25, 0.5]),
                floats("base_values", &[0.125]),
            ],
            ..Default::default()
        };
        node.attribute.push(pb::AttributeProto {
            name: "post_transform".into(),
            s: transform.as_bytes().to_vec(),
            ..Default::default()
        });
        let identity = pb::NodeProto {
            op_type: "Identity".into(),
            input: vec!["proba".into()],
            output: vec!["probabilities".into()],
            ..Default::default()
        };
        pb::GraphProto {
            node: vec![node, identity],
            output: vec![output("label", 8), output("probabilities", FLOAT)],
            ..Default::default()
        }
    }

    #[test]
    fn string_labels_become_indices_and_the_label_output_int64() {
        let mut graph = binary_booster("LOGISTIC");
        assert_eq!(
            class_labels(&graph),
            Some(vec!["benign".to_string(), "malignant".to_string()])
        );
        let names = index_string_labels(&mut graph);
        assert_eq!(
            names,
            [(
                "label".to_string(),
                vec!["benign".to_string(), "malignant".to_string()]
            )]
        );
        let node = &graph.node[0];
        assert_eq!(attr(node, "classlabels_int64s").ints, [0, 1]);
        assert!(
            node.attribute
                .iter()
                .all(|a| a.name != "classlabels_strings")
        );
        assert_eq!(tensor_info(&graph.output[0]).elem_type, "int64");
    }

    #[test]
    fn a_single_binary_score_is_split_into_two() {
        let mut graph = binary_booster("LOGISTIC");
        split_binary_scores(&mut graph);
        let node = &graph.node[0];
        assert_eq!(attr(node, "class_ids").ints, [0, 1, 0, 1]);
        assert_eq!(attr(node, "class_nodeids").ints, [1, 1, 2, 2]);
        assert_eq!(attr(node, "class_treeids").ints, [0, 0, 0, 0]);
        assert_eq!(attr(node, "class_weights").floats, [0.25, -0.25, -0.5, 0.5]);
        // sigmoid(-s - b) = 1 - sigmoid(s + b)
        assert_eq!(attr(node, "base_values").floats, [-0.125, 0.125]);

        // Without a transform the first score is 1 - (s + b).
        let mut graph = binary_booster("NONE");
        split_binary_scores(&mut graph);
        assert_eq!(attr(&graph.node[0], "base_values").floats, [0.875, 0.125]);

        // Transforms whose complement is not a negation are left as they are.
        let mut graph = binary_booster("SOFTMAX");
        let before = graph.clone();
        split_binary_scores(&mut graph);
        assert_eq!(graph, before);
    }

    #[test]
    fn missing_and_garbage_files_are_told_apart() {
        let err = load("/nonexistent/model.onnx").err().unwrap();
        assert_eq!(err.type_name, "ModelNotFound", "{err:?}");
        let path = std::env::temp_dir().join(format!("scorer-garbage-{}.onnx", std::process::id()));
        std::fs::write(&path, b"\xff\xff\xff\xff not protobuf").unwrap();
        let err = load(path.to_str().unwrap()).err().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(err.type_name, "MalformedModel", "{err:?}");
    }

    #[test]
    fn the_named_tract_version_is_the_locked_one() {
        let lock = include_str!("../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"tract-onnx\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"'));
        assert_eq!(locked, Some(tract_version()));
    }
}
