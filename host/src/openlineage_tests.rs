use super::*;

fn step(input: &Value) -> Step<'_> {
    Step {
        plugin: "trainer",
        version: "0.1.0",
        digest: "sha256:abc",
        grants: &[],
        operation: "train_model",
        input,
        workflow_id: "sweep-1",
        run_id: Some("0196f6a4-6b5e-7d3c-9f1e-2a3b4c5d6e7f".into()),
        step: "sweep.2",
        attempt: 1,
    }
}

#[test]
fn start_and_complete_of_one_attempt_share_a_run_and_datasets_are_host_files() {
    let input = json!({"lr": 0.1});
    let s = step(&input);
    let grants = [DirGrant {
        host: "/srv/data".into(),
        guest: "/data".into(),
        access: mlx_runtime::plugin::manifest::Access::ReadOnly,
    }];
    let files = Files {
        run_dir: Path::new("/var/mlx/artifacts/sweep-1"),
        grants: &grants,
        store: None,
    };
    let reads = [
        FileDigest {
            path: "/artifacts/dataset/train.parquet".into(),
            sha256: "11".repeat(32),
        },
        FileDigest {
            path: "/data/iris.csv".into(),
            sha256: "22".repeat(32),
        },
    ];
    let start = event("mlx", "START", &s, None, &[], &[], None);
    let done = event(
        "mlx",
        "COMPLETE",
        &s,
        None,
        &datasets(&reads, &files),
        &[],
        None,
    );
    assert_eq!(start["run"]["runId"], done["run"]["runId"]);
    let run_id = done["run"]["runId"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(run_id).unwrap().get_version_num(), 8);
    let retry = Step {
        attempt: 2,
        ..step(&input)
    };
    let again = event("mlx", "START", &retry, None, &[], &[], None);
    assert_ne!(
        again["run"]["runId"], start["run"]["runId"],
        "an attempt is a run"
    );
    assert_eq!(
        done["job"],
        json!({"namespace": "mlx", "name": "trainer.train_model",
        "facets": done["job"]["facets"].clone()})
    );
    let parent = &done["run"]["facets"]["parent"];
    assert_eq!(
        parent["run"]["runId"],
        "0196f6a4-6b5e-7d3c-9f1e-2a3b4c5d6e7f"
    );
    assert_eq!(parent["job"]["name"], "sweep-1");
    let names: Vec<&str> = done["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "/var/mlx/artifacts/sweep-1/dataset/train.parquet",
            "/srv/data/iris.csv"
        ]
    );
    assert_eq!(
        done["inputs"][0]["facets"]["version"]["datasetVersion"],
        "11".repeat(32)
    );
    assert_eq!(done["run"]["facets"]["mlx"]["digest"], "sha256:abc");
}

#[test]
fn a_failure_carries_its_message_and_bad_urls_are_refused() {
    let input = json!({});
    let fail = event(
        "mlx",
        "FAIL",
        &step(&input),
        Some("Trap: out of fuel"),
        &[],
        &[],
        None,
    );
    assert_eq!(fail["eventType"], "FAIL");
    assert_eq!(
        fail["run"]["facets"]["errorMessage"]["message"],
        "Trap: out of fuel"
    );
    assert_eq!(
        "file:///tmp/ol.jsonl".parse::<Sink>(),
        Ok(Sink::File("/tmp/ol.jsonl".into()))
    );
    assert!(matches!(
        "http://127.0.0.1:5000".parse::<Sink>(),
        Ok(Sink::Http(_))
    ));
    let err = "https://lineage.example".parse::<Sink>().unwrap_err();
    assert!(err.contains("scheme https is not supported"), "{err}");
    assert!("events.jsonl".parse::<Sink>().is_err());
}

#[tokio::test]
async fn events_are_appended_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let emitter = Emitter::start(Sink::File(path.clone()), "mlx".into());
    let input = json!({});
    emitter.start_event(&step(&input));
    emitter.fail(&step(&input), "boom");
    // Delivery is asynchronous: poll for both lines, with a generous deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= 2 || tokio::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["eventType"].to_string())
        .collect();
    assert_eq!(kinds, ["\"START\"", "\"FAIL\""]);
}

#[test]
fn with_a_store_the_runs_files_are_named_by_the_store_and_grants_by_host_path() {
    let grants = [DirGrant {
        host: "/srv/data".into(),
        guest: "/data".into(),
        access: mlx_runtime::plugin::manifest::Access::ReadOnly,
    }];
    let files = Files {
        run_dir: Path::new("/var/mlx/artifacts/.work/4242/sweep-1-abc"),
        grants: &grants,
        store: Some(("s3://ml".into(), "prefix/runs/sweep-1".into())),
    };
    let read = |path: &str| FileDigest {
        path: path.into(),
        sha256: "33".repeat(32),
    };
    let sets = datasets(
        &[read("/artifacts/train.csv"), read("/data/iris.csv")],
        &files,
    );
    assert_eq!(sets[0]["namespace"], "s3://ml");
    assert_eq!(sets[0]["name"], "prefix/runs/sweep-1/train.csv");
    assert_eq!(sets[1]["namespace"], "file");
    assert_eq!(sets[1]["name"], "/srv/data/iris.csv");
}
