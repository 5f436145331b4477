//! A pipeline as data: named params and steps, each a plugin operation (or an approval gate),
//! checked whole before any step runs. JSON on the wire; the CLI also reads YAML or TOML into
//! the same shape.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::{Expr, Path, Root, template};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    /// Values steps refer to as `params.NAME`; a person may change them before the steps that
    /// read them start.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub steps: Vec<StepSpec>,
    /// Steps run only as another step's `on_failure = {compensate = ID}`, never in the DAG.
    #[serde(default)]
    pub compensations: Vec<StepSpec>,
    /// Whether plugin steps reuse an earlier identical run's result (docs/pipelines.md, "Step
    /// caching"); a step's own `cache` overrides it. Off unless asked for: a step whose
    /// plugin reads the clock or the network is not a function of its input.
    #[serde(default)]
    pub cache: bool,
    /// Set by `pipeline run --no-cache`: no step uses the cache, whatever it asks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
}

impl PipelineSpec {
    /// Whether `step` is looked up in (and stored to) the step cache.
    pub fn caches(&self, step: &StepSpec) -> bool {
        step.kind == StepKind::Plugin && !self.no_cache && step.cache.unwrap_or(self.cache)
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Runs `plugin.operation` through `plugin_activity`.
    #[default]
    Plugin,
    /// Waits for a person to approve or reject; no plugin.
    Approval,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: StepKind,
    pub plugin: Option<String>,
    pub operation: Option<String>,
    /// May hold `${params.X}` and `${steps.ID.output...}` references.
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Run only when this holds ([`crate::expr`]); otherwise the step is skipped.
    pub when: Option<String>,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Reuse the result of an earlier run of the same plugin build, operation, input and
    /// input files (default: the pipeline's `cache`).
    #[serde(default)]
    pub cache: Option<bool>,
    /// Runs the step once per item of this list (a list, or one `${...}` reference to a
    /// list), `${item}` in its input being that item ([`FanOut`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<Value>,
    /// Runs the step once per combination of these lists, `${item.KEY}` being one value of
    /// each ([`FanOut`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<BTreeMap<String, Value>>,
    /// Most items of a fan-out step running at once (default: all, as worker slots allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Share of items that must succeed for the step to succeed (default 1: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_success_ratio: Option<f64>,
    /// Which succeeded item a fan-out step names `best` in its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
}

impl StepSpec {
    /// Whether the step runs once per item.
    pub fn fans_out(&self) -> bool {
        self.for_each.is_some() || self.matrix.is_some()
    }
}

/// Picks one item of a fan-out step by a number in its output: the highest (`max`, default)
/// or lowest; ties go to the first item.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Best {
    /// Dotted keys into an item's output, e.g. `metrics.accuracy`.
    pub by: String,
    #[serde(default)]
    pub order: Order,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Max,
    Min,
}

/// Most items one fan-out step may run: each is an activity whose result stays in the
/// workflow's history (docs/pipelines.md, "Fan-out").
pub const MAX_ITEMS: usize = 1000;

/// Temporal's retry policy, spelled out. Defaults: 1 s, ×2, at most 60 s apart, 3 attempts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    pub initial_interval_secs: f64,
    pub backoff_coefficient: f64,
    pub max_interval_secs: f64,
    /// 0: unlimited (as in Temporal).
    pub max_attempts: u32,
    /// Failure types (e.g. `InvalidInput`) never retried.
    pub non_retryable: Vec<String>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            initial_interval_secs: 1.0,
            backoff_coefficient: 2.0,
            max_interval_secs: 60.0,
            max_attempts: 3,
            non_retryable: Vec::new(),
        }
    }
}

/// Defaults: 1 h start-to-close, no heartbeat timeout.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSpec {
    pub start_to_close_secs: u64,
    pub heartbeat_secs: Option<u64>,
}

impl Default for TimeoutSpec {
    fn default() -> Self {
        Self {
            start_to_close_secs: 3600,
            heartbeat_secs: None,
        }
    }
}

/// What a failed step (after its retries) does to the pipeline.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Fail the pipeline (steps already running finish first).
    #[default]
    Fail,
    /// Record the failure and go on; dependants see `steps.ID.status == 'failed'`.
    Continue,
    /// Run the named compensation step, then fail the pipeline.
    Compensate(String),
}

/// One problem with a spec, naming the step and field.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub step: Option<String>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}`, {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Most steps (compensations included) one pipeline may have.
pub const MAX_STEPS: usize = 500;

/// What the worker knows about a plugin, when it can tell (its registry): operation names.
pub type PluginLookup<'a> = &'a dyn Fn(&str) -> Option<Vec<String>>;

impl PipelineSpec {
    /// Every problem at once, so one edit fixes them all. `plugins` checks plugin and
    /// operation names where the caller has a registry.
    pub fn validate(&self, plugins: Option<PluginLookup<'_>>) -> Result<(), Vec<SpecError>> {
        let count = self.steps.len() + self.compensations.len();
        if count > MAX_STEPS {
            // The checks below walk the graph recursively, inside the worker running the
            // workflow: a generated giant spec must be refused, not overflow its stack.
            return Err(vec![SpecError {
                step: None,
                field: "steps".into(),
                message: format!("{count} steps and compensations; at most {MAX_STEPS}"),
            }]);
        }
        let mut errors = Vec::new();
        let mut err = |step: Option<&str>, field: String, message: String| {
            errors.push(SpecError {
                step: step.map(str::to_string),
                field,
                message,
            })
        };
        if self.steps.is_empty() {
            err(
                None,
                "steps".into(),
                "a pipeline needs at least one step".into(),
            );
        }
        let mut ids = BTreeSet::new();
        for (i, step) in self.steps.iter().chain(&self.compensations).enumerate() {
            if !valid_id(&step.id) {
                err(
                    None,
                    format!("steps[{i}].id"),
                    format!("{:?} must be 1-64 letters, digits, `_` or `-`", step.id),
                );
            } else if !ids.insert(step.id.as_str()) {
                err(Some(&step.id), "id".into(), "is used twice".into());
            }
        }
        let known: Vec<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
        let compensations: BTreeSet<&str> =
            self.compensations.iter().map(|s| s.id.as_str()).collect();
        let ancestors = self.ancestors();
        for step in self.steps.iter().chain(&self.compensations) {
            let id = Some(step.id.as_str());
            let in_dag = !compensations.contains(step.id.as_str());
            for (j, dep) in step.depends_on.iter().enumerate() {
                if !in_dag {
                    err(
                        id,
                        "depends_on".into(),
                        "a compensation step runs when asked; it has no dependencies".into(),
                    );
                    break;
                }
                if !known.contains(&dep.as_str()) {
                    err(
                        id,
                        format!("depends_on[{j}]"),
                        format!("unknown step `{dep}` (steps: {})", known.join(", ")),
                    );
                }
            }
            step.check_kind(plugins, &mut |f, m| err(id, f, m));
            step.check_policies(&mut |f, m| err(id, f, m));
            step.check_fan_out(in_dag, &mut |f, m| err(id, f, m));
            // A step may read params and the steps it (transitively) depends on: those are
            // finished when it starts. A compensation may read any DAG step.
            let readable = |target: &str| match ancestors.get(step.id.as_str()) {
                Some(up) if in_dag => up.contains(target),
                _ => known.contains(&target),
            };
            let mut refs: Vec<(&str, Path)> = Vec::new();
            let mut problems: Vec<(String, String)> = Vec::new();
            if let Some(when) = &step.when {
                match Expr::parse(when) {
                    Ok(expr) => refs.extend(expr.paths().into_iter().map(|p| ("when", p.clone()))),
                    Err(e) => problems.push(("when".into(), e)),
                }
            }
            match template::paths(&step.input) {
                Ok(paths) => refs.extend(paths.into_iter().map(|p| ("input", p))),
                Err(e) => problems.push(("input".into(), e)),
            }
            let lists = step.for_each.iter().map(|v| ("for_each", v));
            let axes = step.matrix.iter().flatten().map(|(_, v)| ("matrix", v));
            for (field, list) in lists.chain(axes) {
                match template::paths(list) {
                    Ok(paths) => refs.extend(paths.into_iter().map(|p| (field, p))),
                    Err(e) => problems.push((field.into(), e)),
                }
            }
            for (field, path) in refs {
                if path.root == Root::Item && (field != "input" || !step.fans_out()) {
                    let why = format!(
                        "`{path}`: `item` is defined only in the input of a step with \
                         `for_each` or `matrix`"
                    );
                    problems.push((field.into(), why));
                } else if let Root::Param(name) = &path.root
                    && !self.params.contains_key(name)
                {
                    let declared: Vec<&str> = self.params.keys().map(String::as_str).collect();
                    let why = format!(
                        "`{path}`: no param `{name}` (params: {})",
                        declared.join(", ")
                    );
                    problems.push((field.into(), why));
                } else if let Some(target) = path.step()
                    && !readable(target)
                {
                    let why = format!("`{path}`: `{target}` is not a step this one depends on");
                    problems.push((field.into(), why));
                }
            }
            for (field, message) in problems {
                err(id, field, message);
            }
            if let OnFailure::Compensate(target) = &step.on_failure
                && !compensations.contains(target.as_str())
            {
                err(
                    id,
                    "on_failure.compensate".into(),
                    format!(
                        "no compensation step `{target}` (compensations: {})",
                        compensations.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if let Some(cycle) = self.cycle() {
            err(
                Some(&cycle[0]),
                "depends_on".into(),
                format!("cycle: {}", cycle.join(" -> ")),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// For each DAG step, every step it depends on, directly or not.
    fn ancestors(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let deps: BTreeMap<&str, Vec<&str>> = self
            .steps
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.depends_on.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        deps.keys()
            .map(|&id| {
                let mut seen = BTreeSet::new();
                let mut stack = deps[id].clone();
                while let Some(next) = stack.pop() {
                    if seen.insert(next) {
                        stack.extend(deps.get(next).into_iter().flatten());
                    }
                }
                (id, seen)
            })
            .collect()
    }

    /// A dependency cycle among DAG steps, as the ids around it, if there is one.
    fn cycle(&self) -> Option<Vec<String>> {
        let deps: BTreeMap<&str, &[String]> = self
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.depends_on.as_slice()))
            .collect();
        // Depth-first search with the current path: an edge back into it closes a cycle.
        fn visit<'a>(
            id: &'a str,
            deps: &BTreeMap<&'a str, &'a [String]>,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|p| *p == id) {
                let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(id.to_string());
                return Some(cycle);
            }
            if !done.insert(id) {
                return None;
            }
            path.push(id);
            for dep in deps.get(id).copied().unwrap_or_default() {
                if let Some(cycle) = visit(dep, deps, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        deps.keys()
            .find_map(|id| visit(id, &deps, &mut Vec::new(), &mut done))
    }
}

impl StepSpec {
    fn check_kind(&self, plugins: Option<PluginLookup<'_>>, err: &mut dyn FnMut(String, String)) {
        match self.kind {
            StepKind::Approval => {
                if self.plugin.is_some() || self.operation.is_some() || !self.input.is_null() {
                    err(
                        "type".into(),
                        "an approval step has no plugin, operation or input".into(),
                    );
                }
                if self.cache == Some(true) {
                    err(
                        "cache".into(),
                        "an approval step is a person's decision: it is never cached".into(),
                    );
                }
            }
            StepKind::Plugin => {
                let (Some(plugin), Some(operation)) = (&self.plugin, &self.operation) else {
                    err(
                        "plugin".into(),
                        "a plugin step needs `plugin` and `operation` (or `type = \"approval\"`)"
                            .into(),
                    );
                    return;
                };
                let Some(lookup) = plugins else { return };
                match lookup(plugin) {
                    None => err(
                        "plugin".into(),
                        format!("no plugin `{plugin}` on this worker"),
                    ),
                    Some(ops) if !ops.contains(operation) => err(
                        "operation".into(),
                        format!(
                            "`{plugin}` has no operation `{operation}` (it has: {})",
                            ops.join(", ")
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    fn check_fan_out(&self, in_dag: bool, err: &mut dyn FnMut(String, String)) {
        if !self.fans_out() {
            let options = [
                ("concurrency", self.concurrency.is_some()),
                ("min_success_ratio", self.min_success_ratio.is_some()),
                ("best", self.best.is_some()),
            ];
            for (field, set) in options {
                if set {
                    err(
                        field.into(),
                        "applies only to a step with `for_each` or `matrix`".into(),
                    );
                }
            }
            return;
        }
        if self.for_each.is_some() && self.matrix.is_some() {
            err(
                "for_each".into(),
                "a step has `for_each` or `matrix`, not both".into(),
            );
        }
        if self.kind == StepKind::Approval || !in_dag {
            err(
                "for_each".into(),
                "only a plugin step in the DAG can fan out (not an approval or a compensation)"
                    .into(),
            );
        }
        if self.matrix.as_ref().is_some_and(BTreeMap::is_empty) {
            err("matrix".into(), "needs at least one list".into());
        }
        let lists = self.for_each.iter().map(|v| ("for_each".to_string(), v));
        let axes = self
            .matrix
            .iter()
            .flatten()
            .map(|(k, v)| (format!("matrix.{k}"), v));
        for (field, list) in lists.chain(axes) {
            match list {
                Value::Array(items) if items.len() > MAX_ITEMS => {
                    err(field, format!("{} items; at most {MAX_ITEMS}", items.len()))
                }
                Value::Array(_) => {}
                Value::String(text) if is_one_reference(text) => {}
                _ => err(
                    field,
                    "must be a list, or one `${...}` reference to a list".into(),
                ),
            }
        }
        if self.concurrency == Some(0) {
            err("concurrency".into(), "must be at least 1".into());
        }
        if let Some(ratio) = self.min_success_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            err("min_success_ratio".into(), "must be from 0 to 1".into());
        }
        if let Some(best) = &self.best
            && (best.by.is_empty() || best.by.split('.').any(str::is_empty))
        {
            err(
                "best.by".into(),
                format!(
                    "{:?} must be dotted keys into an item's output, e.g. metrics.accuracy",
                    best.by
                ),
            );
        }
    }

    fn check_policies(&self, err: &mut dyn FnMut(String, String)) {
        let r = &self.retry;
        if !(r.initial_interval_secs.is_finite() && r.initial_interval_secs > 0.0) {
            err(
                "retry.initial_interval_secs".into(),
                "must be more than 0".into(),
            );
        }
        if !(r.backoff_coefficient.is_finite() && r.backoff_coefficient >= 1.0) {
            err(
                "retry.backoff_coefficient".into(),
                "must be at least 1".into(),
            );
        }
        if !(r.max_interval_secs.is_finite() && r.max_interval_secs >= r.initial_interval_secs) {
            err(
                "retry.max_interval_secs".into(),
                "must be at least initial_interval_secs".into(),
            );
        }
        if self.timeouts.start_to_close_secs == 0 {
            err(
                "timeouts.start_to_close_secs".into(),
                "must be at least 1".into(),
            );
        }
        if self.timeouts.heartbeat_secs == Some(0) {
            err(
                "timeouts.heartbeat_secs".into(),
                "must be at least 1, or left out".into(),
            );
        }
    }
}

/// `${...}` alone: a reference that stands for a whole value, such as a list.
pub(crate) fn is_one_reference(text: &str) -> bool {
    let text = text.trim();
    text.starts_with("${") && text.ends_with('}') && text.matches("${").count() == 1
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> PipelineSpec {
        serde_json::from_value(value).unwrap()
    }

    fn training() -> Value {
        json!({
            "name": "train",
            "params": {"threshold": 0.9},
            "steps": [
                {"id": "extract", "plugin": "csv", "operation": "extract_data",
                 "input": {"source": "/data/iris.csv"}},
                {"id": "train", "plugin": "trainer", "operation": "train_model",
                 "depends_on": ["extract"],
                 "input": {"train": "${steps.extract.output.train.path}"},
                 "retry": {"max_attempts": 5, "non_retryable": ["InvalidInput"]},
                 "on_failure": {"compensate": "cleanup"}},
                {"id": "approve", "type": "approval", "depends_on": ["train"],
                 "when": "steps.train.output.metrics.accuracy >= params.threshold"},
                {"id": "register", "plugin": "csv", "operation": "extract_data",
                 "depends_on": ["approve"], "on_failure": "continue"}
            ],
            "compensations": [
                {"id": "cleanup", "plugin": "csv", "operation": "extract_data",
                 "input": {"model": "${steps.train.output.model}"}}
            ]
        })
    }

    fn messages(errors: Vec<SpecError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_spec_passes_with_and_without_a_registry() {
        let spec = spec(training());
        assert_eq!(spec.validate(None), Ok(()));
        let lookup = |name: &str| match name {
            "csv" => Some(vec!["extract_data".to_string()]),
            "trainer" => Some(vec!["train_model".to_string()]),
            _ => None,
        };
        assert_eq!(spec.validate(Some(&lookup)), Ok(()));
        assert_eq!(
            spec.steps[1].retry.backoff_coefficient, 2.0,
            "defaults fill in"
        );
        assert_eq!(spec.steps[3].on_failure, OnFailure::Continue);
    }

    #[test]
    fn errors_name_the_step_and_field() {
        let mut v = training();
        v["steps"][1]["depends_on"] = json!(["extrct"]);
        v["steps"][2]["when"] = json!("steps.register.output.x > params.thresh");
        v["steps"][3]["operation"] = Value::Null;
        v["steps"][1]["retry"]["backoff_coefficient"] = json!(0.5);
        v["steps"][1]["on_failure"] = json!({"compensate": "undo"});
        let errors = messages(spec(v).validate(None).unwrap_err());
        let expect = [
            "step `train`, depends_on[0]: unknown step `extrct`",
            "step `approve`, when: `steps.register.output.x`: `register` is not a step this one depends on",
            "step `approve`, when: `params.thresh`: no param `thresh`",
            "step `register`, plugin: a plugin step needs `plugin` and `operation`",
            "step `train`, retry.backoff_coefficient: must be at least 1",
            "step `train`, on_failure.compensate: no compensation step `undo`",
        ];
        for e in expect {
            assert!(
                errors.iter().any(|m| m.starts_with(e)),
                "missing {e:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn cycles_duplicates_and_unknown_plugins_are_refused() {
        let mut v = training();
        v["steps"][0]["depends_on"] = json!(["register"]);
        v["steps"][3]["id"] = json!("train");
        let errors = messages(spec(v).validate(None).unwrap_err());
        assert!(
            errors.iter().any(|m| m.contains("is used twice")),
            "{errors:#?}"
        );

        let mut v = training();
        v["steps"][0]["depends_on"] = json!(["register"]);
        let errors = messages(spec(v).validate(None).unwrap_err());
        assert!(
            errors
                .iter()
                .any(|m| m.contains("cycle: ") && m.contains("extract")),
            "{errors:#?}"
        );

        let lookup = |name: &str| (name == "csv").then(|| vec!["extract_data".to_string()]);
        let errors = messages(spec(training()).validate(Some(&lookup)).unwrap_err());
        assert_eq!(
            errors,
            ["step `train`, plugin: no plugin `trainer` on this worker"]
        );
    }

    #[test]
    fn a_giant_chain_is_refused_before_any_graph_walk() {
        let steps: Vec<Value> = (0..=MAX_STEPS)
            .map(|i| {
                json!({"id": format!("s{i}"), "plugin": "p", "operation": "o",
                       "depends_on": if i == 0 { json!([]) } else { json!([format!("s{}", i - 1)]) }})
            })
            .collect();
        let errors = messages(
            spec(json!({"name": "big", "steps": steps}))
                .validate(None)
                .unwrap_err(),
        );
        assert_eq!(errors, ["steps: 501 steps and compensations; at most 500"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let mut v = training();
        v["steps"][0]["retries"] = json!(3);
        let err = serde_json::from_value::<PipelineSpec>(v)
            .unwrap_err()
            .to_string();
        assert!(err.contains("retries"), "{err}");
    }
}
