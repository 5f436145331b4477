//! `scorer` plugin: batch predictions of ONNX models (scikit-learn exports through skl2onnx,
//! among others) over CSV or Parquet files, with tract inside the sandbox. It returns
//! references and counts, never the predictions themselves.

mod model;
mod predict;

pub use predict::Predict;

mlx_plugin_sdk::plugin!(ScorerPlugin {
    name: "scorer",
    version: env!("CARGO_PKG_VERSION"),
    description: "Scores tabular files with ONNX models (tract): labels, probabilities, values.",
    operations: [Predict],
});
