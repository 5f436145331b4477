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
