//! Compute: the trainer's `train_model` on the digits dataset as the Wasm
//! component in the worker's runtime vs a native build of the same source
//! (`plugins/trainer/examples/train_native.rs`), on the same split and parameters: a random
//! forest and a gradient boosting run ([`CASES`]).
//!
//! `cargo bench -p mlx-e2e --bench compute`. Not a test: nothing is asserted about time. Each
//! side runs once to warm up, then RUNS times, alternating, so drift in machine load hits both
//! alike; medians are compared. Both must produce the same model (same test accuracy and
//! confusion matrix), else the bench fails: a ratio of different work means nothing.
//! Markdown goes to stdout and `target/bench-report/compute.md`.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context, bail, ensure};
use mlx_e2e::{PluginsDir, bench::write_report, invoke_once, workspace_root};
use mlx_runtime::{HostSettings, PluginHost};
use serde_json::{Value, json};

const RUNS: usize = 5;
const WORKFLOW: &str = "compute";

/// What is trained, each case on its own: (name, train_model's `model`). One checkpoint file
/// per run (`checkpoint_every` is half the rounds), as an interrupted run would rely on.
const CASES: [(&str, &str); 2] = [
    (
        "random_forest, 100 trees",
        r#"{"family": "random_forest", "hyperparameters": {"n_estimators": 100, "seed": 42}}"#,
    ),
    (
        "gradient_boosting, 100 rounds of 10 depth-3 trees",
        r#"{"family": "gradient_boosting", "hyperparameters": {"n_estimators": 100, "seed": 42}}"#,
    ),
];
const CHECKPOINT_EVERY: u32 = 50;

/// Builds the native trainer (release, host target) and returns its path.
fn native_trainer() -> anyhow::Result<std::path::PathBuf> {
    let plugins = workspace_root().join("plugins");
    let target = "x86_64-unknown-linux-gnu";
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--target", target])
        .args(["--example", "train_native"])
        .current_dir(&plugins)
        .status()?;
    ensure!(status.success(), "building train_native failed");
    Ok(plugins.join(format!("target/{target}/release/examples/train_native")))
}

/// One native run in its own process; the time is measured inside it, around the training
/// call, so process start is not counted.
fn run_native(binary: &Path, input: &Value) -> anyhow::Result<(f64, Value)> {
    let out = Command::new(binary)
        .args(["1", &input.to_string()])
        .stderr(std::process::Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "train_native failed: {:?}",
        out.status
    );
    let line: Value = serde_json::from_slice(&out.stdout)?;
    let secs = line["secs"].as_f64().context("secs")?;
    Ok((secs, line["output"].clone()))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The same model: same predictions on test (accuracy, confusion matrix), and a log loss
/// equal up to rounding (exp and ln come from different libms natively and in Wasm).
fn same_model(wasm: &Value, native: &Value) -> anyhow::Result<()> {
    let (w, n) = (&wasm["metrics"], &native["metrics"]);
    let close = |k: &str| {
        let (a, b) = (
            w[k].as_f64().unwrap_or(f64::NAN),
            n[k].as_f64().unwrap_or(0.0),
        );
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    };
    if w["confusion_matrix"] != n["confusion_matrix"] || !close("accuracy") || !close("log_loss") {
        bail!("the two builds trained different models:\nwasm   {w}\nnative {n}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let native = native_trainer()?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    let data = workspace_root().join("data");
    plugins.write_manifest(
        "csv",
        &format!("[[filesystem]]\nhost = {data:?}\nguest = \"/data\"\n"),
    );
    let artifacts = tempfile::tempdir()?;
    let runtime = PluginHost::new(HostSettings {
        artifacts_dir: Some(artifacts.path().to_path_buf()),
        ..Default::default()
    })?;
    // The manifest next to csv.wasm grants it the datasets at /data.
    let csv = runtime.load(&plugins.path().join("csv.wasm")).await?;
    let trainer = runtime.load(&plugins.path().join("trainer.wasm")).await?;

    // One split, made by the real csv plugin, read by both sides.
    let split = json!({"source": "/data/digits.csv", "target": "target", "test_fraction": 0.2,
                       "seed": 42});
    let extracted = invoke_once(&runtime, &csv, "extract_data", &split, WORKFLOW).await?;
    let (train_rows, test_rows) = (
        &extracted.output["train"]["rows"],
        &extracted.output["test"]["rows"],
    );
    let mut report = format!(
        "# Compute: trainer, Wasm component vs native\n\n\
         `train_model` on data/digits.csv (split by the csv plugin, seed 42: {train_rows} train / \
         {test_rows} test rows, 64 features, 10 classes), one checkpoint file per run. Wall \
         time of the whole operation (read CSVs, train, evaluate, write model.json); Wasm \
         through `Runtime::invoke` (fresh instance included), native in-process. Median of \
         {RUNS} alternating runs after one warm-up each.\n\n\
         | model | build | median (s) | runs (s) |\n| --- | --- | --- | --- |\n"
    );
    let mut summary = String::new();
    for (i, (name, model)) in CASES.iter().enumerate() {
        let model: Value = serde_json::from_str(model)?;
        let params = json!({"target": "target", "model": model,
                            "checkpoint_every": CHECKPOINT_EVERY});
        let with = |train: String, test: String, out: String| {
            let mut input = params.clone();
            input["train"] = json!(train);
            input["test"] = json!(test);
            input["output_dir"] = json!(out);
            input
        };
        let wasm_input = with(
            "/artifacts/dataset/train.csv".into(),
            "/artifacts/dataset/test.csv".into(),
            format!("/artifacts/model-wasm-{i}"),
        );
        let host = artifacts.path().join(WORKFLOW);
        let path = |p: &str| host.join(p).display().to_string();
        let native_input = with(
            path("dataset/train.csv"),
            path("dataset/test.csv"),
            path(&format!("model-native-{i}")),
        );

        let (mut wasm_secs, mut native_secs) = (Vec::new(), Vec::new());
        let (mut wasm_out, mut native_out) = (Value::Null, Value::Null);
        for run in 0..=RUNS {
            let start = Instant::now();
            wasm_out = invoke_once(&runtime, &trainer, "train_model", &wasm_input, WORKFLOW)
                .await?
                .output;
            let wasm = start.elapsed().as_secs_f64();
            let (native, out) = run_native(&native, &native_input)?;
            native_out = out;
            eprintln!("{name}, run {run}: wasm {wasm:.3} s, native {native:.3} s");
            // Run 0 warms caches and the pool slot up; it is not counted.
            if run > 0 {
                wasm_secs.push(wasm);
                native_secs.push(native);
            }
        }
        same_model(&wasm_out, &native_out)?;

        let (w, n) = (median(wasm_secs.clone()), median(native_secs.clone()));
        let list = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        report += &format!(
            "| {name} | Wasm (trainer.wasm in the worker runtime) | {w:.3} | {} |\n\
             | {name} | native (x86_64, release) | {n:.3} | {} |\n",
            list(&wasm_secs),
            list(&native_secs),
        );
        summary += &format!(
            "**{name}: Wasm / native {:.3}** (target ≤ 1.25). Same model on both: test \
             accuracy {} (native {}), log loss {} (native {}).\n\n",
            w / n,
            wasm_out["metrics"]["accuracy"],
            native_out["metrics"]["accuracy"],
            wasm_out["metrics"]["log_loss"],
            native_out["metrics"]["log_loss"],
        );
    }
    report += "\n";
    report += &summary;
    write_report("compute", &report)?;
    Ok(())
}
