//! `mlflow` plugin: logs a pipeline step's training run to an MLflow tracking server over
//! MLflow's REST API: params, metrics, a trainer model's loss history and file, and more
//! files, tagged with the pipeline run and step. Why a plugin and not the worker: README.md.

mod batch;
mod errors;
mod log_run;
mod model;
mod rest;

pub use log_run::LogRun;

mlx_plugin_sdk::plugin!(Mlflow {
    name: "mlflow",
    version: env!("CARGO_PKG_VERSION"),
    description: "Logs training runs (params, metrics, loss history, model and files) to an MLflow tracking server.",
    operations: [LogRun],
});

#[cfg(test)]
mod tests {
    use mlx_plugin_sdk::{Context, Plugin};
    use serde_json::json;

    use super::*;

    #[test]
    fn log_run_is_described_and_refuses_bad_input_before_any_request() {
        let info = Mlflow::info();
        assert_eq!(info.operations.len(), 1);
        let op = &info.operations[0];
        assert_eq!(op.name, "log_run");
        let required = op.input_schema["required"].as_array().unwrap();
        assert!(required.contains(&json!("tracking_uri")));
        assert!(required.contains(&json!("experiment")));
        let ctx = Context::detached(1, None);
        let err = Mlflow::invoke(
            "log_run",
            json!({"tracking_uri": "not a url", "experiment": "e"}),
            &ctx,
        )
        .unwrap_err();
        assert_eq!(err.type_name, "InvalidTrackingUri");
        let err = Mlflow::invoke(
            "log_run",
            json!({"tracking_uri": "http://127.0.0.1:1", "experiment": "e",
                   "params": {"notes": "x".repeat(6001)}}),
            &ctx,
        )
        .unwrap_err();
        assert_eq!(err.type_name, "ParamTooLong");
    }
}
