//! Every end-to-end test in one binary: linked once (wasmtime, Cranelift, the Temporal SDK), one
//! Temporal dev server per run shared by all tests (`mlx_e2e::shared_server`; each test on task
//! queues and workflow ids of its own), and one compile cache per run, so each component is
//! compiled once. Tests that stop or restart a server start a private one.
//!
//! One module per area; run one with e.g. `cargo test -p mlx-e2e --test e2e pipeline::`.

/// The compile cache: warm restarts, corrupt, foreign and stale entries.
mod cache;
/// `mlx-worker plugin ...`: the plugin author's inner loop, no server.
mod cli;
/// Components compiled in a child process, as the daemon compiles them.
mod compiler;
/// The contract plugins in Rust, Python and JavaScript through the same cases.
mod contract;
/// The daemon (`mlx-worker run` and `dev`) as a child process against a real server.
mod daemon;
/// Fan-out steps: items within their concurrency, the best one, success ratios, history.
mod fan_out;
/// A fleet sharing only Temporal and an S3 store: a pipeline across two workers, kill -9 mid-upload.
mod fleet;
/// Hostile plugins as real activities next to a healthy neighbour.
mod hostile;
/// Outbound HTTP through `wasi:http` against loopback servers.
mod http;
/// Plugins with `isolation = "process"`: each invocation in a child the worker kills.
mod isolated;
/// A JavaScript plugin (componentize-js, the mlx_plugin SDK): `make js-plugins` builds it.
mod js;
/// Rust, JavaScript and Python plugins in one pipeline (`pipelines/features.yaml`).
mod languages;
/// The mlflow plugin logging a pipeline's training run to a real `mlflow server`.
mod mlflow;
/// Plugins from an OCI registry: `plugin push|pull` and a worker's pinned `plugin_refs`.
mod oci;
/// OpenLineage run events to a file and an HTTP endpoint, checked by openlineage-python.
mod openlineage;
/// Every trainer family next to scikit-learn on the bundled datasets (the README's table).
mod parity;
/// `PipelineWorkflow` on a real server: ordering, retries, failures, human steering.
mod pipeline;
/// `mlx-worker pipeline ...` and `schedule ...` as an operator types them.
mod pipeline_cli;
/// A Python plugin (componentize-py, the mlx_plugin SDK): `make python-plugins` builds it.
mod python;
mod registry;
/// Hot reload of plugin files and manifests.
mod reload;
/// Recorded pipeline histories replay against the current workflow code.
mod replay;
/// Plugin rollouts as Worker Deployment versions: a run finishes on the plugin set it began with.
mod rollout;
/// The sandbox without Temporal: every way an invocation ends, classified.
mod sandbox;
/// `mlx-worker plugin new`: a newcomer's project, built, deployed and called by a workflow.
mod scaffold;
/// The scorer plugin on scikit-learn models exported with skl2onnx (`make ml-tools`).
mod scorer;
/// Step caching: hits, misses on a changed plugin, input or file, `--no-cache`, replay.
mod step_cache;
/// `RunPluginWorkflow` and `plugin_activity` end to end, from Rust, the CLI and Python.
mod temporal;
/// `mlx-worker ui` in headless Chromium: the DAG live, the approval clicked, notes as text.
mod ui;
