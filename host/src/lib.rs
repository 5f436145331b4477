//! MLX Plugin Worker: a Temporal worker that runs every activity in a sandboxed
//! WebAssembly component. This crate is the Temporal side; plugins, the sandbox and loading
//! are in `mlx-runtime`, pipelines as data in `mlx-pipeline`.
//!
//! - [`temporal`]: the `plugin_activity` activity, the workflows, and the worker loop.
//! - [`config`]: the daemon's configuration (file, environment, flags), defined once.
//! - [`daemon`]: the long-running worker (health, metrics, telemetry, drain) and `dev`.
//! - [`step_cache`]: results reused by identical later steps (`cache: true` in a pipeline).
//! - [`lineage`]: provenance records of what each step read and wrote, and the run's graph.
//! - [`cli`]: the commands other than `run`: plugin tools, and the `pipeline` and `schedule`
//!   clients that start, watch and steer runs.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod http_client;
pub mod lineage;
pub mod oci;
pub mod openlineage;
pub mod run_files;
pub mod step_cache;
pub mod temporal;
