use serde_json::{Value, json};

use super::*;

fn state(v: Value) -> PipelineState {
    let spec: PipelineSpec = serde_json::from_value(v).unwrap();
    spec.validate(None).unwrap();
    PipelineState::new(spec)
}

fn ids(starts: &[StartStep]) -> Vec<&str> {
    starts.iter().map(|s| s.id.as_str()).collect()
}

fn ok(output: Value) -> StepResult {
    StepResult::Succeeded {
        output,
        attempt: Some(1),
        cached_from: None,
    }
}

fn failed(error: &str) -> StepResult {
    StepResult::Failed {
        error: error.into(),
        attempt: Some(3),
    }
}

fn status(s: &PipelineState, id: &str) -> StepStatus {
    s.step(id).unwrap().status
}

/// a -> (b, c) -> d: b and c are independent, so they start together.
fn diamond() -> Value {
    json!({
        "name": "diamond",
        "params": {"n": 2},
        "steps": [
            {"id": "a", "plugin": "p", "operation": "op", "input": {"n": "${params.n}"}},
            {"id": "b", "plugin": "p", "operation": "op", "depends_on": ["a"],
             "input": {"x": "${steps.a.output.x}", "label": "x=${steps.a.output.x}"}},
            {"id": "c", "plugin": "p", "operation": "op", "depends_on": ["a"]},
            {"id": "d", "plugin": "p", "operation": "op", "depends_on": ["b", "c"]}
        ]
    })
}

#[test]
fn independent_steps_start_together_and_inputs_resolve() {
    let mut s = state(diamond());
    let first = s.advance(1);
    assert_eq!(ids(&first), ["a"]);
    assert_eq!(first[0].input, json!({"n": 2}), "numbers stay numbers");
    assert!(s.advance(2).is_empty(), "nothing else is ready");
    s.finish("a", ok(json!({"x": 7})), 3);
    let next = s.advance(4);
    assert_eq!(ids(&next), ["b", "c"]);
    assert_eq!(next[0].input, json!({"x": 7, "label": "x=7"}));
    s.finish("c", ok(json!({})), 5);
    assert!(s.advance(6).is_empty(), "d waits for b");
    s.finish("b", ok(json!({})), 7);
    assert_eq!(ids(&s.advance(8)), ["d"]);
    assert!(!s.is_done());
    s.finish("d", ok(json!({"done": true})), 9);
    assert!(s.is_done());
    let status = s.status();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(status.steps[0].started_at_ms, Some(1));
    assert_eq!(status.steps[0].ended_at_ms, Some(3));
    assert_eq!(status.steps[3].output_ref.as_deref(), Some("step_output:d"));
    assert_eq!(s.result()["steps"]["d"]["output"], json!({"done": true}));
}

#[test]
fn a_false_condition_skips_and_the_skip_cascades() {
    let mut s = state(json!({
        "name": "gate",
        "params": {"threshold": 0.9},
        "steps": [
            {"id": "train", "plugin": "p", "operation": "op"},
            {"id": "register", "plugin": "p", "operation": "op", "depends_on": ["train"],
             "when": "steps.train.output.accuracy >= params.threshold"},
            {"id": "announce", "plugin": "p", "operation": "op", "depends_on": ["register"]},
            {"id": "report", "plugin": "p", "operation": "op", "depends_on": ["register"],
             "when": "steps.register.status == 'skipped'"}
        ]
    }));
    s.advance(0);
    s.finish("train", ok(json!({"accuracy": 0.8})), 1);
    let starts = s.advance(2);
    assert_eq!(ids(&starts), ["report"]);
    assert_eq!(status(&s, "register"), StepStatus::Skipped);
    assert_eq!(status(&s, "announce"), StepStatus::Skipped);
    let note = s.step("announce").unwrap().note.clone().unwrap();
    assert_eq!(note, "`register` skipped");
    assert!(
        s.step("register")
            .unwrap()
            .note
            .as_ref()
            .unwrap()
            .contains("is false")
    );
}

#[test]
fn a_condition_that_is_not_boolean_fails_the_step_instead_of_skipping() {
    let mut s = state(json!({
        "name": "typo",
        "steps": [
            {"id": "a", "plugin": "p", "operation": "op"},
            {"id": "b", "plugin": "p", "operation": "op", "depends_on": ["a"],
             "when": "steps.a.output.accuracy > 'high'"}
        ]
    }));
    s.advance(0);
    s.finish("a", ok(json!({"accuracy": 0.5})), 1);
    assert!(s.advance(2).is_empty());
    assert_eq!(status(&s, "b"), StepStatus::Failed);
    assert!(s.is_done());
    assert!(
        s.failure().unwrap().contains("cannot order"),
        "{:?}",
        s.failure()
    );
}

#[test]
fn failure_stops_new_steps_but_lets_running_ones_finish() {
    let mut s = state(diamond());
    s.advance(0);
    s.finish("a", ok(json!({})), 1);
    assert_eq!(ids(&s.advance(2)), ["b", "c"]);
    s.finish("b", failed("boom"), 3);
    assert!(!s.is_done(), "c is still running");
    assert_eq!(s.status().state, RunState::Failing);
    assert!(s.advance(4).is_empty());
    s.finish("c", ok(json!({})), 5);
    assert!(s.advance(6).is_empty(), "d never starts");
    assert!(s.is_done());
    assert_eq!(s.status().state, RunState::Failed);
    assert_eq!(s.failure(), Some("step `b` failed: boom"));
    assert_eq!(s.step("b").unwrap().attempt, Some(3));
    assert_eq!(status(&s, "d"), StepStatus::Pending);
}

#[test]
fn continue_goes_on_and_compensation_runs_before_the_pipeline_fails() {
    let mut v = diamond();
    v["steps"][1]["on_failure"] = json!("continue");
    v["steps"][3]["when"] = json!("steps.b.status == 'failed'");
    v["steps"][3]["on_failure"] = json!({"compensate": "undo"});
    v["compensations"] = json!([
        {"id": "undo", "plugin": "p", "operation": "cleanup",
         "input": {"from": "${steps.a.output.path}"}}
    ]);
    let mut s = state(v);
    s.advance(0);
    s.finish("a", ok(json!({"path": "/artifacts/a"})), 1);
    s.advance(2);
    s.finish("b", failed("flaky"), 3);
    s.finish("c", ok(json!({})), 4);
    assert_eq!(
        ids(&s.advance(5)),
        ["d"],
        "continue: d runs, its when sees the failure"
    );
    assert!(s.failure().is_none());
    s.finish("d", failed("broke"), 6);
    let undo = s.advance(7);
    assert_eq!(ids(&undo), ["undo"]);
    assert_eq!(undo[0].input, json!({"from": "/artifacts/a"}));
    assert!(!s.is_done(), "the compensation is running");
    s.finish("undo", ok(json!({})), 8);
    assert!(s.is_done());
    assert_eq!(s.status().state, RunState::Failed);
    assert_eq!(s.failure(), Some("step `d` failed: broke"));
}

#[test]
fn pause_holds_new_steps_until_resume() {
    let mut s = state(diamond());
    s.advance(0);
    s.paused = true;
    s.finish("a", ok(json!({})), 1);
    assert!(s.advance(2).is_empty());
    assert!(!s.is_done(), "paused with work left is not done");
    assert_eq!(s.status().state, RunState::Paused);
    s.paused = false;
    assert_eq!(ids(&s.advance(3)), ["b", "c"]);
}

#[test]
fn approvals_wait_for_a_person_and_rejection_is_a_failure() {
    let spec = json!({
        "name": "gate",
        "steps": [
            {"id": "approve", "type": "approval"},
            {"id": "register", "plugin": "p", "operation": "op", "depends_on": ["approve"]}
        ]
    });
    let mut s = state(spec.clone());
    assert!(s.advance(0).is_empty());
    assert_eq!(status(&s, "approve"), StepStatus::WaitingApproval);
    assert!(!s.is_done());
    let wrong = Decision {
        step: "register".into(),
        by: None,
        comment: None,
    };
    let err = s.check_decision(&wrong).unwrap_err();
    assert!(err.contains("not waiting for approval"), "{err}");
    let yes = Decision {
        step: "approve".into(),
        by: Some("ana".into()),
        comment: Some("metrics look right".into()),
    };
    s.check_decision(&yes).unwrap();
    s.decide(&yes, true, 1);
    assert_eq!(
        s.step("approve").unwrap().note.as_deref(),
        Some("approved by ana: metrics look right")
    );
    assert_eq!(ids(&s.advance(2)), ["register"]);

    let mut s = state(spec);
    s.advance(0);
    s.decide(&yes, false, 1);
    assert_eq!(status(&s, "approve"), StepStatus::Failed);
    assert!(s.advance(2).is_empty());
    assert!(s.is_done());
    assert_eq!(
        s.failure(),
        Some("step `approve` failed: rejected by ana: metrics look right")
    );
}

#[test]
fn params_change_only_before_their_readers_start_and_keep_their_type() {
    let mut s = state(diamond());
    let change = |name: &str, value: Value| ParamChange {
        name: name.into(),
        value,
    };
    let err = s.check_param(&change("m", json!(1))).unwrap_err();
    assert!(err.contains("no param `m` (params: n)"), "{err}");
    let err = s.check_param(&change("n", json!("two"))).unwrap_err();
    assert!(err.contains("is a number"), "{err}");
    s.check_param(&change("n", json!(5))).unwrap();
    assert_eq!(s.set_param(change("n", json!(5))), json!(2));
    assert_eq!(
        s.advance(0)[0].input,
        json!({"n": 5}),
        "the new value is used"
    );
    let err = s.check_param(&change("n", json!(6))).unwrap_err();
    assert!(err.contains("already started: a"), "{err}");
}

#[test]
fn cancelling_a_step_counts_as_its_failure_and_cancelling_the_run_ends_approvals() {
    let mut v = diamond();
    v["steps"][1]["on_failure"] = json!("continue");
    let mut s = state(v);
    s.advance(0);
    assert!(s.check_cancel("b").unwrap_err().contains("pending"));
    s.finish("a", ok(json!({})), 1);
    s.advance(2);
    s.check_cancel("b").unwrap();
    s.finish(
        "b",
        StepResult::Cancelled {
            reason: "cancelled by ana".into(),
        },
        3,
    );
    assert_eq!(status(&s, "b"), StepStatus::Cancelled);
    assert!(s.failure().is_none(), "b continues on failure");
    s.finish("c", ok(json!({})), 4);
    assert!(s.advance(5).is_empty());
    assert_eq!(
        status(&s, "d"),
        StepStatus::Skipped,
        "a dependency was cancelled"
    );

    let mut s = state(json!({"name": "x", "steps": [{"id": "ok", "type": "approval"}]}));
    s.advance(0);
    s.cancel(1);
    assert!(s.is_done());
    assert_eq!(status(&s, "ok"), StepStatus::Cancelled);
    assert_eq!(s.status().state, RunState::Cancelled);
}

#[test]
fn compensation_waits_for_running_steps_and_a_failing_run_ends_its_approvals() {
    let v = json!({
        "name": "parallel",
        "steps": [
            {"id": "made", "plugin": "p", "operation": "op"},
            {"id": "publish", "plugin": "p", "operation": "op",
             "on_failure": {"compensate": "undo"}},
            {"id": "gate", "type": "approval"}
        ],
        "compensations": [
            {"id": "undo", "plugin": "p", "operation": "op",
             "input": {"remove": "${steps.made.output.path}"}}
        ]
    });
    let mut s = state(v);
    assert_eq!(ids(&s.advance(0)), ["made", "publish"]);
    assert_eq!(status(&s, "gate"), StepStatus::WaitingApproval);
    s.finish("publish", failed("broke"), 1);
    assert!(s.advance(2).is_empty(), "made is still running");
    assert_eq!(status(&s, "gate"), StepStatus::Cancelled);
    assert!(
        s.step("gate")
            .unwrap()
            .note
            .as_ref()
            .unwrap()
            .starts_with("not decided: step `publish` failed")
    );
    assert!(!s.is_done());
    s.finish("made", ok(json!({"path": "/artifacts/x"})), 3);
    let undo = s.advance(4);
    assert_eq!(ids(&undo), ["undo"]);
    assert_eq!(undo[0].input, json!({"remove": "/artifacts/x"}));
    s.finish("undo", ok(json!({})), 5);
    assert!(s.is_done());
    assert_eq!(s.status().state, RunState::Failed);
}

/// `cache` is the pipeline's default, a step's own `cache` overrides it, and `no_cache`
/// (`pipeline run --no-cache`) turns it off for every step.
#[test]
fn cache_is_asked_for_by_the_pipeline_or_the_step_and_no_cache_wins() {
    let spec = |pipeline_cache: bool, no_cache: bool| {
        json!({
            "name": "c", "cache": pipeline_cache, "no_cache": no_cache,
            "steps": [
                {"id": "default", "plugin": "p", "operation": "op"},
                {"id": "on", "plugin": "p", "operation": "op", "cache": true},
                {"id": "off", "plugin": "p", "operation": "op", "cache": false},
            ]
        })
    };
    let asked = |v: Value| -> Vec<(String, bool)> {
        state(v)
            .advance(1)
            .into_iter()
            .map(|s| (s.id, s.cache))
            .collect()
    };
    let pairs = |d, on, off| {
        vec![
            ("default".to_string(), d),
            ("on".to_string(), on),
            ("off".to_string(), off),
        ]
    };
    assert_eq!(asked(spec(false, false)), pairs(false, true, false));
    assert_eq!(asked(spec(true, false)), pairs(true, true, false));
    assert_eq!(asked(spec(true, true)), pairs(false, false, false));

    let approval =
        json!({"name": "a", "steps": [{"id": "gate", "type": "approval", "cache": true}]});
    let spec: PipelineSpec = serde_json::from_value(approval).unwrap();
    let errors = spec.validate(None).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("never cached")),
        "{errors:?}"
    );
}

/// A cached result counts as a success (later steps and conditions see `succeeded`), and the
/// status and result say which run it came from.
#[test]
fn a_cached_result_succeeds_and_names_its_source() {
    let mut s = state(diamond());
    s.advance(1);
    let from = CacheSource {
        workflow_id: "earlier".into(),
        run_id: Some("r1".into()),
        step: "a".into(),
    };
    s.finish(
        "a",
        StepResult::Succeeded {
            output: json!({"x": 7}),
            attempt: Some(1),
            cached_from: Some(from.clone()),
        },
        2,
    );
    assert_eq!(ids(&s.advance(3)), ["b", "c"]);
    let a = s.step("a").unwrap();
    assert_eq!(a.status, StepStatus::Succeeded);
    assert_eq!(a.cached_from, Some(from));
    assert!(
        a.note.as_deref().unwrap().contains("earlier"),
        "{:?}",
        a.note
    );
    let result = s.result();
    assert_eq!(
        result["steps"]["a"]["cached_from"]["workflow_id"],
        "earlier"
    );
    assert!(result["steps"]["b"].get("cached_from").is_none());
}

/// A sweep: `train` once per learning rate, two at a time, the best by accuracy.
fn sweep(extra: Value) -> Value {
    let mut train = json!({
        "id": "train", "plugin": "trainer", "operation": "train_model",
        "depends_on": ["extract"],
        "for_each": "${params.rates}",
        "concurrency": 2,
        "best": {"by": "metrics.accuracy"},
        "input": {"data": "${steps.extract.output.path}", "lr": "${item}",
                  "label": "lr=${item}"}
    });
    train
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({
        "name": "sweep",
        "params": {"rates": [0.1, 0.2, 0.3, 0.4]},
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data"},
            train,
            {"id": "evaluate", "plugin": "trainer", "operation": "evaluate_model",
             "depends_on": ["train"],
             "input": {"model": "${steps.train.output.best.output.model}"}}
        ]
    })
}

fn items(starts: &[StartStep]) -> Vec<String> {
    starts.iter().map(StartStep::activity_id).collect()
}

#[test]
fn a_fan_out_runs_each_item_within_its_concurrency_and_names_the_best() {
    let mut s = state(sweep(json!({})));
    s.advance(1);
    s.finish("extract", ok(json!({"path": "/artifacts/d.csv"})), 2);
    let first = s.advance(3);
    assert_eq!(items(&first), ["train.0", "train.1"], "two at a time");
    assert_eq!(
        first[1].input,
        json!({"data": "/artifacts/d.csv", "lr": 0.2, "label": "lr=0.2"})
    );
    assert_eq!(status(&s, "train"), StepStatus::Running);
    s.finish_item(
        "train",
        1,
        ok(json!({"metrics": {"accuracy": 0.9}, "model": "m1"})),
        4,
    );
    assert_eq!(
        items(&s.advance(5)),
        ["train.2"],
        "a freed slot takes the next item"
    );
    s.finish_item(
        "train",
        0,
        ok(json!({"metrics": {"accuracy": 0.8}, "model": "m0"})),
        6,
    );
    s.finish_item(
        "train",
        2,
        ok(json!({"metrics": {"accuracy": 0.95}, "model": "m2"})),
        7,
    );
    assert_eq!(items(&s.advance(8)), ["train.3"]);
    assert_eq!(
        status(&s, "train"),
        StepStatus::Running,
        "until its last item ends"
    );
    s.finish_item(
        "train",
        3,
        ok(json!({"metrics": {"accuracy": 0.95}, "model": "m3"})),
        9,
    );
    assert_eq!(status(&s, "train"), StepStatus::Succeeded);
    let output = s.output("train").unwrap();
    assert_eq!(output["succeeded"], 4);
    assert_eq!(output["items"][2]["output"]["model"], "m2");
    assert_eq!(output["best"]["index"], 2, "the first of equals: {output}");
    assert_eq!(output["best"]["item"], 0.3);
    let note = s.step("train").unwrap().note.clone().unwrap();
    assert_eq!(note, "best: item 2 (0.3), metrics.accuracy = 0.95");
    let next = s.advance(10);
    assert_eq!(
        next[0].input,
        json!({"model": "m2"}),
        "later steps read the best"
    );
    let result = s.result();
    assert!(
        result["steps"]["train"]["output"]["items"][0]
            .get("output")
            .is_none()
    );
    assert_eq!(
        result["steps"]["train"]["output"]["best"]["output"]["model"],
        "m2"
    );
}

#[test]
fn a_matrix_runs_every_combination_in_key_order() {
    let mut s = state(json!({
        "name": "grid",
        "params": {"depths": [3, 5]},
        "steps": [{"id": "t", "plugin": "p", "operation": "o",
                   "matrix": {"depth": "${params.depths}", "family": ["rf", "gb", "lr"]},
                   "best": {"by": "loss", "order": "min"},
                   "input": {"d": "${item.depth}", "f": "${item.family}"}}]
    }));
    let starts = s.advance(1);
    let inputs: Vec<Value> = starts.iter().map(|s| s.input.clone()).collect();
    assert_eq!(inputs.len(), 6);
    assert_eq!(inputs[0], json!({"d": 3, "f": "rf"}));
    assert_eq!(inputs[1], json!({"d": 3, "f": "gb"}));
    assert_eq!(inputs[5], json!({"d": 5, "f": "lr"}));
    for (i, loss) in [0.5, 0.2, 0.9, 0.1, 0.3, 0.4].into_iter().enumerate() {
        s.finish_item("t", i, ok(json!({"loss": loss})), 2);
    }
    let output = s.output("t").unwrap();
    assert_eq!(output["best"]["item"], json!({"depth": 5, "family": "rf"}));
    assert!(s.is_done());
}

#[test]
fn min_success_ratio_decides_and_stops_early_when_it_cannot_be_met() {
    let mut s = state(sweep(json!({"min_success_ratio": 0.5})));
    s.advance(1);
    s.finish("extract", ok(json!({"path": "p"})), 2);
    s.advance(3);
    s.finish_item("train", 0, failed("Trap: out of memory"), 4);
    s.finish_item("train", 1, ok(json!({"metrics": {"accuracy": 0.7}})), 5);
    s.advance(6);
    s.finish_item("train", 2, ok(json!({"metrics": {"accuracy": 0.6}})), 7);
    s.advance(8);
    s.finish_item("train", 3, failed("InvalidParameter: lr"), 9);
    assert_eq!(
        status(&s, "train"),
        StepStatus::Succeeded,
        "2 of 4 meet 0.5"
    );
    let output = s.output("train").unwrap();
    assert_eq!(
        (output["succeeded"].clone(), output["failed"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(output["items"][0]["error"], "Trap: out of memory");
    assert_eq!(output["best"]["index"], 1);

    // All must succeed (the default): the first failure leaves nothing worth starting.
    let mut s = state(sweep(json!({})));
    s.advance(1);
    s.finish("extract", ok(json!({"path": "p"})), 2);
    s.advance(3);
    s.finish_item("train", 0, failed("Trap: boom"), 4);
    assert_eq!(
        status(&s, "train"),
        StepStatus::Running,
        "item 1 still runs"
    );
    assert!(
        s.advance(5).is_empty(),
        "no new item starts once the step cannot succeed"
    );
    s.finish_item("train", 1, ok(json!({"metrics": {"accuracy": 0.7}})), 6);
    assert_eq!(status(&s, "train"), StepStatus::Failed);
    let note = s.step("train").unwrap().note.clone().unwrap();
    assert!(note.starts_with("1 of 4 items succeeded; min_success_ratio 1 needs 4. First failure: item 0 (0.1): Trap: boom"), "{note}");
    let items = s.step("train").unwrap().items.clone().unwrap();
    assert_eq!(items[3].status, StepStatus::Skipped);
    assert_eq!(s.status().state, RunState::Failed);
}

#[test]
fn a_list_from_an_earlier_step_and_a_value_that_is_not_a_list() {
    let v = |list: &str| {
        json!({
            "name": "x",
            "steps": [
                {"id": "a", "plugin": "p", "operation": "o"},
                {"id": "b", "plugin": "p", "operation": "o", "depends_on": ["a"],
                 "for_each": list, "input": {"shard": "${item}"}}
            ]
        })
    };
    let mut s = state(v("${steps.a.output.shards}"));
    s.advance(1);
    s.finish("a", ok(json!({"shards": ["s0", "s1"]})), 2);
    assert_eq!(items(&s.advance(3)), ["b.0", "b.1"]);

    let mut s = state(v("${steps.a.output.shards}"));
    s.advance(1);
    s.finish("a", ok(json!({"shards": "s0"})), 2);
    assert!(s.advance(3).is_empty());
    assert_eq!(status(&s, "b"), StepStatus::Failed);
    assert_eq!(
        s.step("b").unwrap().note.as_deref(),
        Some("for_each: \"s0\" is not a list")
    );

    // An empty list is a step with nothing to do: it succeeds.
    let mut s = state(v("${steps.a.output.shards}"));
    s.advance(1);
    s.finish("a", ok(json!({"shards": []})), 2);
    assert!(s.advance(3).is_empty());
    assert_eq!(status(&s, "b"), StepStatus::Succeeded);
    assert!(s.is_done());
}

#[test]
fn cancelling_a_fan_out_stops_its_items_and_pauses_hold_the_rest() {
    let mut s = state(sweep(json!({})));
    s.advance(1);
    s.finish("extract", ok(json!({"path": "p"})), 2);
    s.advance(3);
    s.paused = true;
    s.finish_item("train", 0, ok(json!({"metrics": {"accuracy": 0.7}})), 4);
    assert!(s.advance(5).is_empty(), "paused: no new item");
    s.paused = false;
    assert_eq!(items(&s.advance(6)), ["train.2"]);
    s.check_cancel("train").unwrap();
    s.finish_item(
        "train",
        1,
        StepResult::Cancelled {
            reason: "cancelled by ada".into(),
        },
        7,
    );
    s.finish_item(
        "train",
        2,
        StepResult::Cancelled {
            reason: "cancelled by ada".into(),
        },
        8,
    );
    assert_eq!(status(&s, "train"), StepStatus::Cancelled);
    assert_eq!(
        s.step("train").unwrap().note.as_deref(),
        Some("cancelled by ada")
    );
    let items = s.step("train").unwrap().items.clone().unwrap();
    assert_eq!(
        items[3].note.as_deref(),
        Some("not started: the step was cancelled")
    );
    assert!(s.is_done());
}

#[test]
fn item_outputs_past_the_budget_fail_the_item_and_stop_the_rest() {
    let mut s = state(sweep(json!({"concurrency": 1})));
    s.advance(1);
    s.finish("extract", ok(json!({"path": "p"})), 2);
    s.advance(3);
    let big = "x".repeat(fan_out::MAX_ITEM_OUTPUT_BYTES - 1000);
    s.finish_item(
        "train",
        0,
        ok(json!({"metrics": {"accuracy": 0.7}, "blob": big})),
        4,
    );
    s.advance(5);
    s.finish_item(
        "train",
        1,
        ok(json!({"metrics": {"accuracy": 0.8}, "blob": "y".repeat(2000)})),
        6,
    );
    assert_eq!(status(&s, "train"), StepStatus::Failed);
    let items = s.step("train").unwrap().items.clone().unwrap();
    assert!(
        items[1]
            .note
            .as_deref()
            .unwrap()
            .contains("return artifact paths")
    );
    assert_eq!(items[2].status, StepStatus::Cancelled);
}

#[test]
fn fan_out_mistakes_are_named_before_anything_runs() {
    let check = |extra: Value| {
        let spec: PipelineSpec = serde_json::from_value(sweep(extra)).unwrap();
        spec.validate(None)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let errors = check(json!({"matrix": {"a": [1]}, "concurrency": 0, "min_success_ratio": 1.5}));
    for e in [
        "step `train`, for_each: a step has `for_each` or `matrix`, not both",
        "step `train`, concurrency: must be at least 1",
        "step `train`, min_success_ratio: must be from 0 to 1",
    ] {
        assert!(
            errors.iter().any(|m| m == e),
            "missing {e:?} in {errors:#?}"
        );
    }
    let errors = check(json!({"for_each": 3}));
    assert!(
        errors
            .iter()
            .any(|m| m.contains("for_each: must be a list")),
        "{errors:#?}"
    );
    let errors = check(json!({"for_each": "${params.nope}"}));
    assert!(
        errors.iter().any(|m| m.contains("no param `nope`")),
        "{errors:#?}"
    );

    let mut v = sweep(json!({}));
    v["steps"][2]["input"]["lr"] = json!("${item}");
    v["steps"][2]["best"] = json!({"by": "a"});
    let spec: PipelineSpec = serde_json::from_value(v).unwrap();
    let errors: Vec<String> = spec
        .validate(None)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors
            .iter()
            .any(|m| m.contains("step `evaluate`, input: `item`: `item` is defined only")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|m| m
                == "step `evaluate`, best: applies only to a step with `for_each` or `matrix`"),
        "{errors:#?}"
    );
}

#[test]
fn a_param_a_fan_out_lists_from_is_locked_once_it_starts() {
    let mut s = state(sweep(json!({})));
    let change = ParamChange {
        name: "rates".into(),
        value: json!([0.5]),
    };
    s.check_param(&change).unwrap();
    s.advance(1);
    s.finish("extract", ok(json!({"path": "p"})), 2);
    s.advance(3);
    let err = s.check_param(&change).unwrap_err();
    assert!(err.contains("already started: train"), "{err}");
}

#[test]
fn a_run_never_has_more_than_max_running_items_pending_in_temporal() {
    let list: Vec<u32> = (0..700).collect();
    let fan = |id: &str| {
        json!({"id": id, "plugin": "p", "operation": "o",
               "for_each": list.clone(), "input": {"n": "${item}"}})
    };
    let mut s = state(json!({"name": "wide", "steps": [fan("a"), fan("b")]}));
    let first = s.advance(1);
    assert_eq!(
        first.len(),
        fan_out::MAX_RUNNING_ITEMS,
        "700 of a, 300 of b"
    );
    assert_eq!(first.iter().filter(|s| s.id == "b").count(), 300);
    s.finish_item("a", 0, ok(json!({})), 2);
    let next = s.advance(3);
    assert_eq!(items(&next), ["b.300"], "one slot freed, one item started");
}

#[test]
fn item_inputs_past_their_budget_fail_the_item_and_start_no_more() {
    let big = "x".repeat(fan_out::MAX_ITEM_INPUT_BYTES / 3);
    let mut s = state(json!({
        "name": "heavy",
        "params": {"blob": big},
        "steps": [{"id": "t", "plugin": "p", "operation": "o", "for_each": [1, 2, 3, 4, 5],
                   "min_success_ratio": 0.0,
                   "input": {"n": "${item}", "data": "${params.blob}"}}]
    }));
    let started = s.advance(1);
    assert_eq!(items(&started), ["t.0", "t.1"], "a third would pass 2 MiB");
    let list = s.step("t").unwrap().items.clone().unwrap();
    assert!(
        list[2]
            .note
            .as_deref()
            .unwrap()
            .contains("pass artifact paths"),
        "{:?}",
        list[2]
    );
    assert_eq!(list[4].status, StepStatus::Cancelled);
    s.finish_item("t", 0, ok(json!({})), 2);
    s.finish_item("t", 1, ok(json!({})), 3);
    assert!(s.advance(4).is_empty());
    assert_eq!(
        status(&s, "t"),
        StepStatus::Succeeded,
        "min_success_ratio 0"
    );
}
