//! A pipeline run as a pure state machine: which steps may start, what a finished step does to
//! the run, what a person may change. No Temporal here, so every rule is unit-tested and the
//! workflow (`PipelineWorkflow` in mlx-worker) only moves events in and commands out; being pure
//! and ordered (BTreeMap), it is deterministic under replay.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::{Expr, Root, Scope, template};
use crate::spec::{OnFailure, PipelineSpec, StepKind, StepSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    WaitingApproval,
    Succeeded,
    Failed,
    /// Stopped by a person (`cancel-step`) or by the pipeline's cancellation; counts as a
    /// failure for `on_failure`.
    Cancelled,
    Skipped,
}

impl StepStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::WaitingApproval => "waiting_approval",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }
}

/// One step as the status query shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub id: String,
    /// `plugin.operation`, `approval`, or `compensation: plugin.operation`.
    pub kind: String,
    /// The steps this one waits for (the spec's `depends_on`): the DAG's edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    pub status: StepStatus,
    /// The attempt that produced the result, where Temporal tells the workflow (successes; a
    /// failure after its last allowed attempt). A running step's attempt is in the activity's
    /// pending info (`describe`), keyed by activity id = step id.
    pub attempt: Option<u32>,
    /// Milliseconds since the Unix epoch, workflow time.
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    /// Where the output is: the `step_output` query with this step's id (outputs can be large,
    /// so the status leaves them out).
    pub output_ref: Option<String>,
    /// Why it failed, was skipped, or who decided an approval.
    pub note: Option<String>,
    /// The earlier run whose result this step reused (step caching), instead of running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<CacheSource>,
    /// A fan-out step's items, in order, once it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemState>>,
    #[serde(skip)]
    pub output: Option<Value>,
}

/// One run of a fan-out step, for one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemState {
    pub item: Value,
    pub status: StepStatus,
    pub attempt: Option<u32>,
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    /// Why it failed or did not start.
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<CacheSource>,
    #[serde(skip)]
    pub output: Option<Value>,
}

/// Where a cached result came from: the step run that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSource {
    pub workflow_id: String,
    pub run_id: Option<String>,
    pub step: String,
}

/// Where a whole run is. Serialised in snake_case, as the status query has always shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Paused,
    /// A step failed; steps already running finish (and compensations run) before it fails.
    Failing,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Failing => "failing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the status query returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    pub pipeline: String,
    pub state: RunState,
    pub params: BTreeMap<String, Value>,
    pub failure: Option<String>,
    pub steps: Vec<StepState>,
}

/// A plugin step the workflow must start now, input resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StartStep {
    pub id: String,
    pub plugin: String,
    pub operation: String,
    pub input: Value,
    /// Look the result up in the step cache first ([`PipelineSpec::caches`]).
    pub cache: bool,
    /// Which item of a fan-out step this run is for.
    pub item: Option<usize>,
}

impl StartStep {
    /// The activity id: the step id, and `.N` for item N of a fan-out step (step ids have no
    /// dots, so the two never collide).
    pub fn activity_id(&self) -> String {
        match self.item {
            Some(i) => format!("{}.{i}", self.id),
            None => self.id.clone(),
        }
    }
}

/// How a step run ended, as the workflow saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    Succeeded {
        output: Value,
        attempt: Option<u32>,
        /// Set when the result came from the step cache.
        cached_from: Option<CacheSource>,
    },
    Failed {
        error: String,
        attempt: Option<u32>,
    },
    Cancelled {
        reason: String,
    },
}

/// A person's decision on an approval step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub step: String,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A change of one param, asked for while the pipeline runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamChange {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, Default)]
pub struct PipelineState {
    spec: PipelineSpec,
    pub params: BTreeMap<String, Value>,
    steps: BTreeMap<String, StepState>,
    pub paused: bool,
    /// The failure that will fail the pipeline once running steps end; no new step starts.
    failure: Option<String>,
    /// Compensation steps asked for by failed steps, not yet started.
    compensate: Vec<String>,
    pub cancelled: bool,
    /// Bytes of item inputs each fan-out step has started (they stay in the history).
    fan_out_inputs: BTreeMap<String, usize>,
}

impl PipelineState {
    /// A run of a spec that already passed [`PipelineSpec::validate`].
    pub fn new(spec: PipelineSpec) -> Self {
        let mut steps = BTreeMap::new();
        for step in &spec.steps {
            steps.insert(step.id.clone(), fresh(step, false));
        }
        for step in &spec.compensations {
            steps.insert(step.id.clone(), fresh(step, true));
        }
        Self {
            params: spec.params.clone(),
            spec,
            steps,
            ..Default::default()
        }
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.get(id)
    }

    fn step_spec(&self, id: &str) -> &StepSpec {
        self.spec
            .steps
            .iter()
            .chain(&self.spec.compensations)
            .find(|s| s.id == id)
            .expect("step ids come from the spec")
    }

    /// Decides every step that can be decided now (skips cascade, approvals start waiting) and
    /// returns the plugin steps to start, marked running from `now_ms`.
    pub fn advance(&mut self, now_ms: u64) -> Vec<StartStep> {
        let mut starts = Vec::new();
        if self.paused || self.cancelled {
            return starts;
        }
        if let Some(why) = self.failure.clone() {
            // Nobody need decide on a step of a run that is failing anyway.
            for id in self.waiting_approval() {
                let step = self.steps.get_mut(&id).expect("known step");
                step.status = StepStatus::Cancelled;
                step.ended_at_ms = Some(now_ms);
                step.note = Some(format!("not decided: {why}"));
            }
        }
        // Compensations wait until nothing else runs, so they see every step's final output
        // (a step running beside the one that failed may be what they undo).
        self.advance_fan_outs(now_ms, &mut starts);
        let busy = self.steps.values().any(|s| s.status == StepStatus::Running);
        if !busy {
            for id in std::mem::take(&mut self.compensate) {
                self.start(&id, now_ms, &mut starts);
            }
        }
        loop {
            let mut changed = false;
            let ids: Vec<String> = self.spec.steps.iter().map(|s| s.id.clone()).collect();
            for id in ids {
                if self.failure.is_some() {
                    break;
                }
                if self.steps[&id].status != StepStatus::Pending || !self.deps_finished(&id) {
                    continue;
                }
                changed = true;
                match self.gate(&id) {
                    Ok(true) => self.start(&id, now_ms, &mut starts),
                    Ok(false) => {}
                    Err(error) => self.finish(
                        &id,
                        StepResult::Failed {
                            error,
                            attempt: None,
                        },
                        now_ms,
                    ),
                }
            }
            if !changed {
                return starts;
            }
        }
    }

    fn deps_finished(&self, id: &str) -> bool {
        self.step_spec(id)
            .depends_on
            .iter()
            .all(|d| self.steps[d].status.is_finished())
    }

    /// Whether a step whose dependencies are finished runs; skips it (with the reason) if not.
    /// Without a `when`, a step runs only if every dependency succeeded; a `when` decides for
    /// itself (it may read `steps.ID.status`).
    fn gate(&mut self, id: &str) -> Result<bool, String> {
        let spec = self.step_spec(id).clone();
        let reason = match &spec.when {
            Some(when) => {
                let expr = Expr::parse(when).map_err(|e| format!("when: {e}"))?;
                match expr.condition(self) {
                    Ok(true) => None,
                    Ok(false) => Some(format!("`{when}` is false")),
                    Err(e) => return Err(format!("when `{when}`: {e}")),
                }
            }
            None => spec
                .depends_on
                .iter()
                .find(|d| self.steps[*d].status != StepStatus::Succeeded)
                .map(|d| format!("`{d}` {}", self.steps[d].status.as_str())),
        };
        match reason {
            Some(reason) => {
                let step = self.steps.get_mut(id).expect("known step");
                step.status = StepStatus::Skipped;
                step.note = Some(reason);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    fn start(&mut self, id: &str, now_ms: u64, starts: &mut Vec<StartStep>) {
        let spec = self.step_spec(id).clone();
        if spec.kind == StepKind::Approval {
            let step = self.steps.get_mut(id).expect("known step");
            step.status = StepStatus::WaitingApproval;
            step.started_at_ms = Some(now_ms);
            return;
        }
        if spec.fans_out() {
            self.start_fan_out(&spec, now_ms, starts);
            return;
        }
        match template::resolve(&spec.input, self) {
            Ok(input) => {
                let step = self.steps.get_mut(id).expect("known step");
                step.status = StepStatus::Running;
                step.started_at_ms = Some(now_ms);
                starts.push(StartStep {
                    id: id.to_string(),
                    cache: self.spec.caches(&spec),
                    plugin: spec.plugin.unwrap_or_default(),
                    operation: spec.operation.unwrap_or_default(),
                    input,
                    item: None,
                });
            }
            Err(e) => self.finish(
                id,
                StepResult::Failed {
                    error: format!("input: {e}"),
                    attempt: None,
                },
                now_ms,
            ),
        }
    }

    /// Records how a step ended and applies its `on_failure`.
    pub fn finish(&mut self, id: &str, result: StepResult, now_ms: u64) {
        let on_failure = self.step_spec(id).on_failure.clone();
        let is_compensation = self.spec.compensations.iter().any(|s| s.id == id);
        let step = self.steps.get_mut(id).expect("known step");
        step.ended_at_ms = Some(now_ms);
        let error = match result {
            StepResult::Succeeded {
                output,
                attempt,
                cached_from,
            } => {
                step.status = StepStatus::Succeeded;
                step.attempt = attempt;
                // Every view of the status (CLI, query) shows the note: say where it came from.
                step.note = cached_from.as_ref().map(|from| {
                    let run = from.run_id.as_deref().unwrap_or("?");
                    format!(
                        "cached: the result of step `{}` in {} (run {run})",
                        from.step, from.workflow_id
                    )
                });
                step.cached_from = cached_from;
                step.output = Some(output);
                step.output_ref = Some(format!("step_output:{id}"));
                return;
            }
            StepResult::Failed { error, attempt } => {
                step.status = StepStatus::Failed;
                step.attempt = attempt;
                error
            }
            StepResult::Cancelled { reason } => {
                step.status = StepStatus::Cancelled;
                reason
            }
        };
        step.note = Some(error.clone());
        let message = format!("step `{id}` {}: {error}", step.status.as_str());
        if is_compensation || self.cancelled {
            self.fail(message);
            return;
        }
        match on_failure {
            OnFailure::Continue => {}
            OnFailure::Fail => self.fail(message),
            OnFailure::Compensate(target) => {
                self.compensate.push(target);
                self.fail(message);
            }
        }
    }

    fn fail(&mut self, message: String) {
        self.failure.get_or_insert(message);
    }

    /// Nothing is running or waiting for a person, and nothing more will start.
    pub fn is_done(&self) -> bool {
        let active = self
            .steps
            .values()
            .any(|s| matches!(s.status, StepStatus::Running | StepStatus::WaitingApproval));
        if active || !self.compensate.is_empty() {
            return false;
        }
        let dag_pending = self
            .spec
            .steps
            .iter()
            .any(|s| self.steps[&s.id].status == StepStatus::Pending);
        !dag_pending || self.failure.is_some() || self.cancelled
    }

    /// Steps that are waiting on a person and must end because the pipeline is stopping.
    pub fn waiting_approval(&self) -> Vec<String> {
        self.steps
            .values()
            .filter(|s| s.status == StepStatus::WaitingApproval)
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The run's result: every step's status and output.
    pub fn result(&self) -> Value {
        let steps: serde_json::Map<String, Value> = self
            .ordered()
            .map(|s| {
                let mut entry = serde_json::json!({"status": s.status});
                if let Some(output) = &s.output {
                    entry["output"] = match &s.items {
                        Some(_) => fan_out::without_item_outputs(output),
                        None => output.clone(),
                    };
                }
                if let Some(note) = &s.note {
                    entry["note"] = Value::String(note.clone());
                }
                if let Some(from) = &s.cached_from {
                    entry["cached_from"] = serde_json::json!(from);
                }
                (s.id.clone(), entry)
            })
            .collect();
        serde_json::json!({"pipeline": self.spec.name, "params": self.params, "steps": steps})
    }

    fn ordered(&self) -> impl Iterator<Item = &StepState> {
        self.spec
            .steps
            .iter()
            .chain(&self.spec.compensations)
            .map(|s| &self.steps[&s.id])
    }

    pub fn status(&self) -> PipelineStatus {
        let state = if self.cancelled && self.is_done() {
            RunState::Cancelled
        } else if self.is_done() {
            if self.failure.is_some() {
                RunState::Failed
            } else {
                RunState::Succeeded
            }
        } else if self.failure.is_some() {
            RunState::Failing
        } else if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        };
        PipelineStatus {
            pipeline: self.spec.name.clone(),
            state,
            params: self.params.clone(),
            failure: self.failure.clone(),
            steps: self.ordered().cloned().collect(),
        }
    }

    /// Checks an approve/reject before it is accepted.
    pub fn check_decision(&self, decision: &Decision) -> Result<(), String> {
        match self.steps.get(&decision.step) {
            None => Err(format!("no step `{}`", decision.step)),
            Some(s) if s.status != StepStatus::WaitingApproval => Err(format!(
                "step `{}` is {}, not waiting for approval",
                decision.step,
                s.status.as_str()
            )),
            Some(_) => Ok(()),
        }
    }

    pub fn decide(&mut self, decision: &Decision, approved: bool, now_ms: u64) {
        let who = decision.by.as_deref().unwrap_or("someone");
        let comment = decision
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        let result = if approved {
            StepResult::Succeeded {
                output: serde_json::json!({
                    "approved": true, "by": decision.by, "comment": decision.comment,
                }),
                attempt: None,
                cached_from: None,
            }
        } else {
            StepResult::Failed {
                error: format!("rejected by {who}{comment}"),
                attempt: None,
            }
        };
        self.finish(&decision.step, result, now_ms);
        if approved {
            self.steps.get_mut(&decision.step).expect("checked").note =
                Some(format!("approved by {who}{comment}"));
        }
    }

    /// Checks a `cancel-step` request: only a running or waiting step can be cancelled.
    pub fn check_cancel(&self, id: &str) -> Result<(), String> {
        match self.steps.get(id) {
            None => Err(format!("no step `{id}`")),
            Some(s) if matches!(s.status, StepStatus::Running | StepStatus::WaitingApproval) => {
                Ok(())
            }
            Some(s) => Err(format!(
                "step `{id}` is {}; only a running or waiting step can be cancelled",
                s.status.as_str()
            )),
        }
    }

    /// Checks a param change: the param exists, keeps its JSON type, and no step that reads it
    /// has started (a change must not make the run inconsistent with what already ran).
    pub fn check_param(&self, change: &ParamChange) -> Result<(), String> {
        let Some(current) = self.params.get(&change.name) else {
            let names: Vec<&str> = self.params.keys().map(String::as_str).collect();
            return Err(format!(
                "no param `{}` (params: {})",
                change.name,
                names.join(", ")
            ));
        };
        if json_type(current) != json_type(&change.value) {
            return Err(format!(
                "param `{}` is a {}; {} is a {}",
                change.name,
                json_type(current),
                change.value,
                json_type(&change.value)
            ));
        }
        let started: Vec<&str> = self
            .spec
            .steps
            .iter()
            .chain(&self.spec.compensations)
            .filter(|s| reads_param(s, &change.name))
            .filter(|s| self.steps[&s.id].status != StepStatus::Pending)
            .map(|s| s.id.as_str())
            .collect();
        if !started.is_empty() {
            return Err(format!(
                "param `{}` is read by steps that already started: {}",
                change.name,
                started.join(", ")
            ));
        }
        Ok(())
    }

    /// Applies a checked change; returns the old value.
    pub fn set_param(&mut self, change: ParamChange) -> Value {
        self.params
            .insert(change.name, change.value)
            .unwrap_or(Value::Null)
    }

    /// Every step id the spec names, for `step_output`.
    pub fn output(&self, id: &str) -> Result<Value, String> {
        match self.steps.get(id) {
            None => Err(format!("no step `{id}`")),
            Some(s) => Ok(s.output.clone().unwrap_or(Value::Null)),
        }
    }

    /// The pipeline is being cancelled: nothing new starts; running steps are cancelled by the
    /// workflow, and waiting approvals end here.
    pub fn cancel(&mut self, now_ms: u64) {
        self.cancelled = true;
        self.stop_fan_outs("the pipeline was cancelled", now_ms);
        for id in self.waiting_approval() {
            self.finish(
                &id,
                StepResult::Cancelled {
                    reason: "the pipeline was cancelled".into(),
                },
                now_ms,
            );
        }
    }
}

fn fresh(step: &StepSpec, compensation: bool) -> StepState {
    let what = match step.kind {
        StepKind::Approval => "approval".to_string(),
        StepKind::Plugin => format!(
            "{}.{}",
            step.plugin.as_deref().unwrap_or_default(),
            step.operation.as_deref().unwrap_or_default()
        ),
    };
    StepState {
        id: step.id.clone(),
        kind: if compensation {
            format!("compensation: {what}")
        } else {
            what
        },
        depends_on: step.depends_on.clone(),
        status: StepStatus::Pending,
        attempt: None,
        started_at_ms: None,
        ended_at_ms: None,
        output_ref: None,
        note: None,
        cached_from: None,
        items: None,
        output: None,
    }
}

fn reads_param(step: &StepSpec, name: &str) -> bool {
    let is_it = |root: &Root| matches!(root, Root::Param(p) if p == name);
    let in_when = step
        .when
        .as_deref()
        .and_then(|w| Expr::parse(w).ok())
        .is_some_and(|e| e.paths().iter().any(|p| is_it(&p.root)));
    let lists = step
        .for_each
        .iter()
        .chain(step.matrix.iter().flat_map(|m| m.values()));
    let in_input = std::iter::once(&step.input)
        .chain(lists)
        .filter_map(|v| template::paths(v).ok())
        .any(|paths| paths.iter().any(|p| is_it(&p.root)));
    in_when || in_input
}

/// A JSON value's type name, for messages and the rule that a param keeps its type.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Scope for PipelineState {
    fn root(&self, root: &Root) -> Option<Value> {
        match root {
            Root::Param(name) => self.params.get(name).cloned(),
            Root::Output(id) => self.steps.get(id)?.output.clone(),
            Root::Status(id) => Some(Value::String(
                self.steps.get(id)?.status.as_str().to_string(),
            )),
            Root::Item => None,
        }
    }
}

#[path = "fan_out.rs"]
mod fan_out;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
