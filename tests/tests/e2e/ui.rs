//! `mlx-worker ui` in a real headless Chromium against a real dev server and worker: the run's
//! DAG updates as steps finish, the approval is given with a click, a plugin's note with HTML
//! in it shows as text, and the page refuses requests without the token or the CSRF header.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::Locator;
use mlx_e2e::{
    DevServer, TestWorker, browser::Browser, eventually, free_port, http_get, shared_server,
    spawn_tied, unique,
};
use serde_json::{Value, json};

use crate::pipeline::{echo, setup, start};

const TOKEN: &str = "e2e-ui-token-0123456789abcdef";
/// A step note as a hostile plugin could write it: markup that would run if the page used it.
const HOSTILE: &str = r#"<img src=x onerror="document.title='pwned'"><b id=injected>bold</b>"#;
const LIMIT: Duration = Duration::from_secs(120);

/// The page's server, `mlx-worker ui`, as a child process; killed on drop.
struct UiProcess {
    address: String,
    child: Child,
}

impl UiProcess {
    async fn start(server: &DevServer) -> anyhow::Result<Self> {
        Self::start_with(server, &[]).await
    }

    /// With more `ui` flags, e.g. `--artifacts-dir` or `--worker`.
    async fn start_with(server: &DevServer, extra: &[&str]) -> anyhow::Result<Self> {
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(mlx_e2e::worker_binary());
        command
            .args(["ui", "--listen", &address, "--address", &server.address])
            .args(["--temporal-ui", "http://127.0.0.1:8233"])
            .args(extra)
            .env("MLX_UI_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stdin(Stdio::null());
        let child = spawn_tied(command, libc::SIGKILL)?;
        let ui = Self { address, child };
        // Up once it answers at all: without the token, 401.
        eventually(LIMIT, "the UI to listen", || async {
            http_get(&ui.address, "/")
                .await
                .ok()
                .filter(|(s, _)| *s == 401)
        })
        .await?;
        Ok(ui)
    }
}

impl UiProcess {
    /// Opens `hash` (`#/run/ID`, `#/plugins`…) in `browser`, through the address with the token
    /// first, as a person following the printed address would.
    async fn open(&self, browser: &Browser, hash: &str) -> anyhow::Result<()> {
        let page = &browser.client;
        page.goto(&format!("http://{}/?token={TOKEN}", self.address))
            .await?;
        page.goto(&format!("http://{}/{hash}", self.address))
            .await?;
        Ok(())
    }
}

/// A gradient-boosting run of the example training pipeline on a worker with the real csv and
/// trainer plugins, and the page (with the worker's artifacts) open on it in a browser.
struct TrainingPage {
    id: String,
    browser: Browser,
    ui: UiProcess,
    _worker: TestWorker,
    _plugins: mlx_e2e::PluginsDir,
}

impl TrainingPage {
    async fn open(prefix: &str, hyperparameters: Value) -> anyhow::Result<Self> {
        let (worker, client, plugins) = crate::pipeline::training_worker().await?;
        let server = shared_server().await?;
        let id = unique(prefix);
        let mut spec = crate::pipeline::training(0.9)?;
        spec["params"]["model"] =
            json!({"family": "gradient_boosting", "hyperparameters": hyperparameters});
        start(&client, &worker, &id, spec).await?;
        let artifacts = worker.artifacts.path().to_str().unwrap();
        let ui = UiProcess::start_with(server, &["--artifacts-dir", artifacts]).await?;
        let browser = Browser::start().await?;
        ui.open(&browser, &format!("#/run/{id}")).await?;
        Ok(Self {
            id,
            browser,
            ui,
            _worker: worker,
            _plugins: plugins,
        })
    }
}

impl TrainingPage {
    async fn close(self) -> anyhow::Result<()> {
        self.browser.close().await
    }
}

impl Drop for UiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec() -> Value {
    json!({
        "name": "ui-demo",
        "steps": [
            echo("extract", &[], json!({"rows": 150})),
            {"id": "noisy", "plugin": "testkit", "operation": "fail", "depends_on": ["extract"],
             "input": {"kind": "permanent", "message": HOSTILE}, "on_failure": "continue"},
            {"id": "gate", "type": "approval", "depends_on": ["extract"]},
            echo("register", &["gate"], json!({"label": "v1"}))
        ]
    })
}

/// What `fetch` from the page answers, as `[status, body]`: requests made with the page's own
/// cookie, as a script on another origin could not.
async fn fetch_from_page(
    browser: &Browser,
    body: Value,
    csrf: bool,
) -> anyhow::Result<(u64, String)> {
    let answer = browser
        .client
        .execute_async(
            r#"const [body, csrf, done] = arguments;
               const headers = {"content-type": "application/json"};
               if (csrf) headers["x-mlx-csrf"] = document.querySelector('meta[name="mlx-csrf"]').content;
               fetch("/api/action", {method: "POST", headers, body: JSON.stringify(body)})
                 .then(async (r) => done([r.status, await r.text()]));"#,
            vec![body, json!(csrf)],
        )
        .await?;
    Ok((
        answer[0].as_u64().unwrap_or_default(),
        answer[1].as_str().unwrap_or_default().to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_watches_the_dag_and_approves_the_gate_in_a_real_browser() -> anyhow::Result<()> {
    let (worker, client, _plugins): (TestWorker, _, _) = setup().await?;
    let server = shared_server().await?;
    let id = unique("ui-demo");
    let run = start(&client, &worker, &id, spec()).await?;
    // A run that fails at its second step, for the runs list's failing step.
    let failing_id = unique("ui-fails");
    let failing = start(
        &client,
        &worker,
        &failing_id,
        json!({"name": "ui-fails", "steps": [
            echo("first", &[], json!({})),
            {"id": "breaks", "plugin": "testkit", "operation": "fail", "depends_on": ["first"],
             "input": {"kind": "permanent", "message": "boom"}}
        ]}),
    )
    .await?;
    let ended = failing
        .get_result(temporalio_client::WorkflowGetResultOptions::default())
        .await;
    assert!(ended.is_err(), "the run fails");
    let ui = UiProcess::start(server).await?;
    let browser = Browser::start().await?;
    let page = &browser.client;

    // The printed address carries the token once; the page then lives on its cookie.
    page.goto(&format!("http://{}/?token={TOKEN}", ui.address))
        .await?;
    browser
        .text_with(&format!("tr[data-run=\"{id}\"]"), "ui-demo", LIMIT)
        .await?;
    browser
        .text_with(
            &format!("tr[data-run=\"{failing_id}\"] td.failing"),
            "breaks",
            LIMIT,
        )
        .await?;
    browser.screenshot("runs").await?;

    page.goto(&format!("http://{}/#/run/{id}", ui.address))
        .await?;
    browser
        .wait_for(
            "g.node[data-step=\"extract\"][data-state=\"succeeded\"]",
            LIMIT,
        )
        .await?;
    browser
        .wait_for(
            "g.node[data-step=\"gate\"][data-state=\"waiting_approval\"]",
            LIMIT,
        )
        .await?;
    let noisy = "g.node[data-step=\"noisy\"][data-state=\"failed\"] rect";
    browser.wait_for(noisy, LIMIT).await?;
    // Edges: extract feeds the three others.
    let edges = page.find_all(Locator::Css("svg.dag path.edge")).await?;
    assert_eq!(edges.len(), 3);

    // The hostile note is text: no element was made from it, and its handler never ran.
    browser.click(noisy, LIMIT).await?;
    browser.text_with("#note", HOSTILE, LIMIT).await?;
    assert!(page.find(Locator::Css("#injected")).await.is_err());
    assert!(page.find(Locator::Css("#note img")).await.is_err());
    assert_ne!(page.title().await?, "pwned");
    // The step as the run's history has it: its resolved input and the attempt that ended it.
    let attempts = browser.text_with("#attempts", "failed", LIMIT).await?;
    assert!(attempts.contains("noisy"), "{attempts}");
    let input = browser.text_with("#input", "permanent", LIMIT).await?;
    assert!(input.contains("onerror"), "shown as text: {input}");
    assert!(page.find(Locator::Css("#injected")).await.is_err());

    // Without the page's CSRF value an action is refused, whatever the cookie.
    let approve = json!({"id": id, "action": "approve", "step": "gate"});
    let (status, _) = fetch_from_page(&browser, approve, false).await?;
    assert_eq!(status, 403);
    // An update the workflow refuses answers with the workflow's own reason.
    let wrong = json!({"id": id, "action": "approve", "step": "extract"});
    let (status, body) = fetch_from_page(&browser, wrong, true).await?;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not waiting for approval"), "{body}");

    // The approval, with a click.
    browser
        .click("g.node[data-step=\"gate\"] rect", LIMIT)
        .await?;
    browser.type_into("#comment", "looks good", LIMIT).await?;
    browser.screenshot("run-waiting-approval").await?;
    browser.click("#approve", LIMIT).await?;
    browser
        .wait_for(
            "g.node[data-step=\"register\"][data-state=\"succeeded\"]",
            LIMIT,
        )
        .await?;
    browser
        .wait_for("h1 .state[data-state=\"succeeded\"]", LIMIT)
        .await?;
    browser.screenshot("run-succeeded").await?;
    let decided = crate::pipeline::status(&run).await?;
    let gate = crate::pipeline::step(&decided, "gate");
    assert!(
        gate.note
            .as_deref()
            .unwrap_or_default()
            .contains("looks good"),
        "{gate:?}"
    );

    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_token_nothing_is_served() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let ui = UiProcess::start(server).await?;
    for path in [
        "/",
        "/app.js",
        "/api/runs",
        "/?token=wrong-token-of-some-length",
    ] {
        let (status, _) = http_get(&ui.address, path).await?;
        assert_eq!(status, 401, "{path}");
    }
    // Off loopback, a token must be set: refused at start, before anything listens.
    let out = Command::new(mlx_e2e::worker_binary())
        .args(["ui", "--listen", "0.0.0.0:0", "--address", &server.address])
        .env_remove("MLX_UI_TOKEN")
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{}", mlx_e2e::printed(&out));
    assert!(mlx_e2e::printed(&out).contains("MLX_UI_TOKEN"));
    Ok(())
}

/// Whether every `img.plot` on the page has loaded as a picture; how many there are.
async fn plots_loaded(browser: &Browser) -> anyhow::Result<(bool, usize)> {
    let answer = browser
        .client
        .execute(
            "const imgs = [...document.querySelectorAll('img.plot')];
             return [imgs.every((i) => i.complete && i.naturalWidth > 0), imgs.length];",
            vec![],
        )
        .await?;
    Ok((
        answer[0].as_bool().unwrap_or(false),
        answer[1].as_u64().unwrap_or(0) as usize,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_training_run_shows_its_loss_curve_and_evaluation_plots_inline()
-> anyhow::Result<()> {
    // Gradient boosting: a loss by round, so a loss curve (the forest has none).
    let run = TrainingPage::open(
        "ui-training",
        json!({"n_estimators": 40, "learning_rate": 0.2, "max_depth": 3, "seed": 7}),
    )
    .await?;
    let (browser, id) = (&run.browser, &run.id);
    let page = &browser.client;
    let training = Duration::from_secs(600);
    let evaluate = "g.node[data-step=\"evaluate\"][data-state=\"succeeded\"] rect";
    browser.wait_for(evaluate, training).await?;
    browser.click(evaluate, LIMIT).await?;
    browser.wait_for("#output img.plot", LIMIT).await?;
    let (loaded, count) = eventually(LIMIT, "the plots to load", || async {
        plots_loaded(browser).await.ok().filter(|(ok, _)| *ok)
    })
    .await?;
    assert!(loaded);
    assert!(
        count >= 2,
        "confusion matrix and ROC curve at least: {count}"
    );
    browser.screenshot("run-evaluate-plots").await?;

    // The training step's loss curve, drawn by the trainer, inline too.
    browser
        .click("g.node[data-step=\"train\"] rect", LIMIT)
        .await?;
    browser
        .wait_for("#output img.plot[alt*=\"loss\"]", LIMIT)
        .await?;
    eventually(LIMIT, "the loss curve to load", || async {
        plots_loaded(browser)
            .await
            .ok()
            .filter(|(ok, n)| *ok && *n >= 1)
    })
    .await?;
    browser.screenshot("run-loss-curve").await?;

    // Served only as pictures of this run: the model itself is not, nor a way out.
    let (status, _) = http_get(
        &run.ui.address,
        &format!("/api/file?id={id}&path=/artifacts/../../etc/passwd"),
    )
    .await?;
    assert_eq!(status, 401, "no token, no file");
    let fetched = page
        .execute_async(
            "const [id, done] = arguments;
             Promise.all(['/artifacts/model/model.json', '/artifacts/../x.svg'].map((p) =>
               fetch(`/api/file?id=${encodeURIComponent(id)}&path=${encodeURIComponent(p)}`)
                 .then((r) => r.status))).then(done);",
            vec![json!(id)],
        )
        .await?;
    assert_eq!(fetched, json!([404, 404]));

    // The gate, approved from the page, lets the run finish.
    browser
        .click("g.node[data-step=\"approve\"] rect", LIMIT)
        .await?;
    browser.click("#approve", LIMIT).await?;
    browser
        .wait_for("h1 .state[data-state=\"succeeded\"]", training)
        .await?;
    run.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_the_plugins_workers_serve_are_listed() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = mlx_e2e::PluginsDir::with(&["testkit"]);
    let health = format!("127.0.0.1:{}", free_port());
    let worker = mlx_e2e::WorkerProcess::start_with(
        mlx_e2e::worker_binary(),
        server,
        plugins.path(),
        &[],
        &["--health-address", &health],
    )?;
    let schedule = unique("ui-hourly");
    let spec = mlx_e2e::workspace_root().join("pipelines/training.yaml");
    let created = Command::new(mlx_e2e::worker_binary())
        .args(["schedule", "create", &schedule])
        .arg(&spec)
        .args(["--every", "1h", "--task-queue", &worker.task_queue])
        .args(["--address", &server.address])
        .output()?;
    assert!(created.status.success(), "{}", mlx_e2e::printed(&created));

    let ui = UiProcess::start_with(server, &["--worker", &format!("http://{health}")]).await?;
    let browser = Browser::start().await?;
    let page = &browser.client;
    ui.open(&browser, "#/schedules").await?;
    let row = format!("tr[data-schedule=\"{schedule}\"]");
    let text = browser.text_with(&row, "1h", LIMIT).await?;
    assert!(text.contains("no"), "not paused: {text}");

    page.goto(&format!("http://{}/#/plugins", ui.address))
        .await?;
    let text = browser
        .text_with("tr[data-plugin=\"testkit\"]", "sha256:", LIMIT)
        .await?;
    assert!(text.contains("echo"), "its operations: {text}");
    browser.screenshot("plugins").await?;
    browser.close().await?;

    let deleted = Command::new(mlx_e2e::worker_binary())
        .args([
            "schedule",
            "delete",
            &schedule,
            "--address",
            &server.address,
        ])
        .output()?;
    assert!(deleted.status.success(), "{}", mlx_e2e::printed(&deleted));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_opened_mid_training_draws_the_rounds_before_it_from_the_journal()
-> anyhow::Result<()> {
    // Many cheap rounds, a checkpoint every 10: long enough to open the page while it trains.
    let run = TrainingPage::open(
        "ui-journal",
        json!({"n_estimators": 3000, "learning_rate": 0.01, "max_depth": 2, "seed": 7}),
    )
    .await?;
    let browser = &run.browser;
    let page = &browser.client;
    let running = "g.node[data-step=\"train\"][data-state=\"running\"] rect";
    browser.wait_for(running, Duration::from_secs(300)).await?;
    browser.click(running, LIMIT).await?;
    // Heartbeats reach the server about once per 48 s here (0.8 x heartbeat_secs 60), so
    // twenty points within seconds come from the checkpoint journal.
    let points = eventually(LIMIT, "the journal's rounds drawn", || async {
        let curve = page.find(Locator::Css("svg.curve")).await.ok()?;
        let n: usize = curve.attr("data-points").await.ok()??.parse().ok()?;
        (n >= 20).then_some(n)
    })
    .await?;
    assert!(points >= 20);
    browser.screenshot("run-training-live").await?;
    run.close().await?;
    Ok(())
}
