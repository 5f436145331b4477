//! The trainer's `train_model` as a native program: the same source and inputs as the
//! component, so the ML compute benchmark (`tests/benches/ml.rs`) can put a price on running
//! it as Wasm.
//!
//! The modules are compiled in by path rather than linked from the library: the library is a
//! `cdylib` only, and a native cdylib of a component cannot link (the export names wit-bindgen
//! gives it, `mlx:plugin/plugin@0.1.0#invoke`, are not valid in a linker version script).
//!
//! Usage: `train_native RUNS INPUT_JSON` (the `train_model` input, with host paths).
//! Prints one JSON line per run: `{"secs": …, "output": …}`.
//!
//! Build: `cd plugins && cargo build --release --target x86_64-unknown-linux-gnu
//! --example train_native`.

// The modules are the component's; this program only trains, so what evaluate_model and
// register_model use of them is dead here.
#![allow(dead_code)]

use std::time::Instant;

use mlx_plugin_sdk::Context;
use serde_json::json;

#[path = "../src/checkpoint.rs"]
mod checkpoint;
#[path = "../src/data.rs"]
mod data;
#[path = "../src/errors.rs"]
mod errors;
#[path = "../src/evaluation.rs"]
mod evaluation;
#[path = "../src/families/mod.rs"]
mod families;
#[path = "../src/files.rs"]
mod files;
#[path = "../src/model_file.rs"]
mod model_file;
#[path = "../src/report/mod.rs"]
mod report;
#[path = "../src/train.rs"]
mod train;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runs, input] = args.as_slice() else {
        eprintln!("usage: train_native RUNS INPUT_JSON");
        std::process::exit(2);
    };
    let runs: u32 = runs.parse().expect("RUNS is a number");
    let input: train::TrainInput =
        serde_json::from_str(input).expect("INPUT_JSON is a train_model input");
    for _ in 0..runs {
        // A fresh context per run, as the component gets a fresh instance per invocation.
        let ctx = Context::detached(1, None);
        let start = Instant::now();
        let output = train::train(input.clone(), &ctx);
        let secs = start.elapsed().as_secs_f64();
        match output {
            Ok(output) => println!("{}", json!({"secs": secs, "output": output})),
            Err(e) => {
                eprintln!("train_model failed: {e:?}");
                std::process::exit(1);
            }
        }
    }
}
