//! A newcomer's first plugin: `mlx-worker plugin new NAME --lang L` writes a project, its one
//! build command makes a component and its tests pass, the file dropped into a running
//! worker's plugins directory is loaded without a restart, and a workflow started from the
//! `temporal` CLI calls it.
//!
//! The builds use the toolchains `make test` installed into `tools/` (pinned), passed to the
//! project's Makefile the way its README says another one can be.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use mlx_e2e::{WorkerProcess, eventually, shared_server, unique, worker_binary, workspace_root};
use serde_json::Value;

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// `make -C dir`, without the variables `cargo test` gives this process: they are about the
/// test package, and cargo in a Rust project would take them for its own.
fn make(dir: &Path) -> Command {
    let mut command = Command::new("make");
    command.arg("-C").arg(dir);
    mlx_e2e::components::without_cargo_test_env(&mut command);
    command
}

/// `plugin new`, then the project's `make` and `make test` with `make_vars`; returns the
/// built component.
fn new_project(
    root: &Path,
    name: &str,
    lang: &str,
    make_vars: &[(&str, PathBuf)],
) -> (PathBuf, String) {
    let dir = root.join(name);
    let said = run(Command::new(worker_binary())
        .args(["plugin", "new", name, "--lang", lang, "--dir"])
        .arg(&dir));
    assert!(said.contains("make"), "{said}");
    let vars: Vec<String> = make_vars
        .iter()
        .map(|(k, v)| format!("{k}={}", v.display()))
        .collect();
    run(make(&dir).args(&vars));
    let tests = run(make(&dir).arg("test").args(&vars));
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "`make` did not write {}", wasm.display());
    (wasm, tests)
}

/// Copies the project's component and manifest into a running worker's plugins directory,
/// as an operator would, and calls its first operation through a workflow.
async fn deploy_and_call(project: &Path, name: &str) -> anyhow::Result<Value> {
    let server = shared_server().await?;
    let plugins = tempfile::tempdir()?;
    let worker = WorkerProcess::start(worker_binary(), server, plugins.path(), &[])?;
    std::fs::copy(
        project.join(format!("{name}.toml")),
        plugins.path().join(format!("{name}.toml")),
    )?;
    std::fs::copy(
        project.join(format!("{name}.wasm")),
        plugins.path().join(format!("{name}.wasm")),
    )?;
    let request =
        format!(r#"{{"plugin": "{name}", "operation": "greet", "input": {{"name": "Ada"}}}}"#);
    // Until the worker has loaded the file, the workflow fails as UnknownPlugin: try again.
    let mut last = String::new();
    let output = eventually(Duration::from_secs(300), "the new plugin answers", || {
        let out = server.cli(&[
            "workflow",
            "execute",
            "--type",
            "RunPluginWorkflow",
            "--workflow-id",
            &unique("scaffold"),
            "--task-queue",
            &worker.task_queue,
            "--input",
            &request,
            "-o",
            "json",
        ]);
        last = mlx_e2e::printed(&out);
        let found = out
            .status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).ok())
            .flatten();
        async move { found }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; the last attempt said: {last}"))?;
    Ok(output)
}

/// The workflow's result, wherever `temporal workflow execute -o json` puts it.
fn greeting(output: &Value) -> Option<&str> {
    mlx_e2e::find(output, "greeting").and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_python_plugin_builds_tests_deploys_and_answers_a_workflow() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let componentize_py = workspace_root().join("tools/venv/bin/componentize-py");
    assert!(
        componentize_py.is_file(),
        "{} is missing: run `make python-tools`",
        componentize_py.display()
    );
    let (wasm, tests) = new_project(
        root.path(),
        "hello-py",
        "python",
        &[("COMPONENTIZE_PY", componentize_py)],
    );
    assert!(
        tests.contains("Ran 2 tests") && tests.contains("OK"),
        "{tests}"
    );
    let project = wasm.parent().unwrap();
    let output = deploy_and_call(project, "hello-py").await?;
    assert_eq!(greeting(&output), Some("Hello, Ada!"), "{output:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_rust_plugin_builds_tests_deploys_and_answers_a_workflow() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    // Kept between runs, so only the first one compiles the dependencies; not plugins/target,
    // whose lock the plugin workspace's own builds hold.
    let target_dir = workspace_root().join("target/scaffold-rust");
    let (wasm, tests) = new_project(
        root.path(),
        "hello-rs",
        "rust",
        &[("CARGO_TARGET_DIR", target_dir)],
    );
    assert!(tests.contains("test result: ok. 2 passed"), "{tests}");
    let project = wasm.parent().unwrap();
    // The lock file written into the project pins what this repository's plugins were tested
    // with; cargo only dropped what the project does not use.
    // Compared by name, version and checksum: a package's dependency list in the project's
    // lock lists only what the project's features pull in (and names a crate without its
    // version once only one version of it is left), so its text may differ.
    let lock = std::fs::read_to_string(project.join("Cargo.lock"))?;
    let tested = std::fs::read_to_string(workspace_root().join("plugins/Cargo.lock"))?;
    let pins = |package: &str| -> String {
        package
            .lines()
            .filter(|l| {
                ["name =", "version =", "checksum ="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let tested: Vec<String> = tested.split("[[package]]").skip(1).map(pins).collect();
    for package in lock.split("[[package]]").skip(1) {
        assert!(
            package.contains("name = \"hello-rs\"") || tested.contains(&pins(package)),
            "not from plugins/Cargo.lock: {package}"
        );
    }
    let output = deploy_and_call(project, "hello-rs").await?;
    assert_eq!(greeting(&output), Some("Hello, Ada!"), "{output:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_js_plugin_builds_tests_deploys_and_answers_a_workflow() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let componentize_js = workspace_root().join("tools/node/node_modules/.bin/componentize-js");
    assert!(
        componentize_js.is_file(),
        "{} is missing: run `make js-tools`",
        componentize_js.display()
    );
    let (wasm, tests) = new_project(
        root.path(),
        "hello-js",
        "js",
        &[("COMPONENTIZE_JS", componentize_js)],
    );
    // The TAP reporter says `# pass 2`, the spec reporter `ℹ pass 2`.
    assert!(
        tests.contains("pass 2") && tests.contains("fail 0"),
        "{tests}"
    );
    let project = wasm.parent().unwrap();
    let output = deploy_and_call(project, "hello-js").await?;
    assert_eq!(greeting(&output), Some("Hello, Ada!"), "{output:#}");
    Ok(())
}
