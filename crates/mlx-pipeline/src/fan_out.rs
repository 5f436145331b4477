//! Fan-out steps: one run per item of a list (`for_each`) or per combination of lists
//! (`matrix`), at most `concurrency` at once; the step succeeds when `min_success_ratio` of
//! them did, and its output lists every item's result and, with `best`, names the winner.
//!
//! Items live inside their step's [`StepState`], so everything else (dependencies, skips,
//! `on_failure`, the status) sees one step: it starts when its dependencies end and finishes
//! when its last item does.

use serde_json::{Value, json};

use super::{ItemState, PipelineState, StartStep, StepResult, StepStatus};
use crate::expr::{Root, Scope, template};
use crate::spec::{MAX_ITEMS, Order, StepSpec};

/// Most bytes of item outputs one fan-out step keeps. Every output is also an activity result
/// in the workflow's history, and the step's output goes into the run's result: past this,
/// no more items start, so a sweep cannot push the history toward Temporal's limits.
pub const MAX_ITEM_OUTPUT_BYTES: usize = 2 << 20;
/// Most fan-out items running at once in one run, over all its steps. Temporal refuses a
/// workflow more than 2,000 pending activities (`limit.numPendingActivities.error`), and a
/// refused schedule fails the workflow task over and over: with at most 500 plain steps
/// beside them, this keeps a run below that whatever its specs ask.
pub const MAX_RUNNING_ITEMS: usize = 1000;
/// Most bytes of item inputs one fan-out step starts: each is an activity input kept in the
/// history, like the outputs [`MAX_ITEM_OUTPUT_BYTES`] bounds.
pub const MAX_ITEM_INPUT_BYTES: usize = 2 << 20;

impl PipelineState {
    /// Resolves the step's items and starts the first of them.
    pub(super) fn start_fan_out(
        &mut self,
        spec: &StepSpec,
        now_ms: u64,
        starts: &mut Vec<StartStep>,
    ) {
        let items = match self.items_of(spec) {
            Ok(items) => items,
            Err(error) => {
                let field = if spec.for_each.is_some() {
                    "for_each"
                } else {
                    "matrix"
                };
                let error = format!("{field}: {error}");
                return self.finish(
                    &spec.id,
                    StepResult::Failed {
                        error,
                        attempt: None,
                    },
                    now_ms,
                );
            }
        };
        let step = self.steps.get_mut(&spec.id).expect("known step");
        step.status = StepStatus::Running;
        step.started_at_ms = Some(now_ms);
        step.items = Some(items.into_iter().map(pending).collect());
        self.start_items(spec, now_ms, starts);
    }

    /// The list `for_each` names, or every combination of `matrix`'s lists (the last key
    /// varying fastest), each an object of one value per key.
    fn items_of(&self, spec: &StepSpec) -> Result<Vec<Value>, String> {
        let list = |value: &Value| match template::resolve(value, self)? {
            Value::Array(items) if items.len() > MAX_ITEMS => {
                Err(format!("{} items; at most {MAX_ITEMS}", items.len()))
            }
            Value::Array(items) => Ok(items),
            other => Err(format!("{other} is not a list")),
        };
        if let Some(for_each) = &spec.for_each {
            return list(for_each);
        }
        let mut combos = vec![serde_json::Map::new()];
        for (key, axis) in spec.matrix.iter().flatten() {
            let values = list(axis).map_err(|e| format!("`{key}`: {e}"))?;
            if combos.len().saturating_mul(values.len()) > MAX_ITEMS {
                return Err(format!("more than {MAX_ITEMS} combinations"));
            }
            combos = combos
                .into_iter()
                .flat_map(|combo| {
                    values.iter().map(move |v| {
                        let mut next = combo.clone();
                        next.insert(key.clone(), v.clone());
                        next
                    })
                })
                .collect();
        }
        Ok(combos.into_iter().map(Value::Object).collect())
    }

    /// Starts pending items, in order, while fewer than `concurrency` run.
    fn start_items(&mut self, spec: &StepSpec, now_ms: u64, starts: &mut Vec<StartStep>) {
        let limit = spec.concurrency.map_or(usize::MAX, |c| c as usize);
        let cache = self.spec.caches(spec);
        let items = self.steps[&spec.id].items.clone().unwrap_or_default();
        let mut running = items
            .iter()
            .filter(|i| i.status == StepStatus::Running)
            .count();
        let mut room = MAX_RUNNING_ITEMS.saturating_sub(self.running_items());
        for (index, item) in items.iter().enumerate() {
            if running >= limit || room == 0 {
                break;
            }
            if item.status != StepStatus::Pending {
                continue;
            }
            let scope = ItemScope {
                run: self,
                item: &item.item,
            };
            let spent = self.fan_out_inputs.get(&spec.id).copied().unwrap_or(0);
            let resolved = template::resolve(&spec.input, &scope).and_then(|input| {
                let size = input.to_string().len();
                if spent + size > MAX_ITEM_INPUT_BYTES {
                    return Err(format!(
                        "{size} bytes would bring the step's item inputs past \
                         {MAX_ITEM_INPUT_BYTES}: pass artifact paths, not data"
                    ));
                }
                Ok((input, size))
            });
            let over_budget = matches!(&resolved, Err(e) if e.contains("item inputs past"));
            let state = &mut self.item_mut(&spec.id, index);
            state.started_at_ms = Some(now_ms);
            match resolved {
                Ok((input, size)) => {
                    state.status = StepStatus::Running;
                    running += 1;
                    room -= 1;
                    starts.push(StartStep {
                        id: spec.id.clone(),
                        plugin: spec.plugin.clone().unwrap_or_default(),
                        operation: spec.operation.clone().unwrap_or_default(),
                        input,
                        cache,
                        item: Some(index),
                    });
                    *self.fan_out_inputs.entry(spec.id.clone()).or_default() += size;
                }
                Err(e) => {
                    state.status = StepStatus::Failed;
                    state.ended_at_ms = Some(now_ms);
                    state.note = Some(format!("input: {e}"));
                    if over_budget {
                        let why = "not started: the step's item inputs reached their budget";
                        self.stop_items(&spec.id, StepStatus::Cancelled, why, now_ms);
                        break;
                    }
                }
            }
        }
        self.settle(spec, now_ms);
    }

    fn running_fan_outs(&self) -> Vec<StepSpec> {
        let steps = self.spec.steps.iter();
        steps
            .filter(|s| s.fans_out() && self.steps[&s.id].status == StepStatus::Running)
            .cloned()
            .collect()
    }

    /// Items running in the whole run.
    fn running_items(&self) -> usize {
        let items = self
            .steps
            .values()
            .filter_map(|s| s.items.as_ref())
            .flatten();
        items.filter(|i| i.status == StepStatus::Running).count()
    }

    fn item_mut(&mut self, id: &str, index: usize) -> &mut ItemState {
        let items = self.steps.get_mut(id).and_then(|s| s.items.as_mut());
        &mut items.expect("a started fan-out step")[index]
    }

    /// Records how one item ended, and finishes the step if it was the last.
    pub fn finish_item(&mut self, id: &str, index: usize, result: StepResult, now_ms: u64) {
        let spec = self.step_spec(id).clone();
        let spent: usize = self.steps[id]
            .items
            .iter()
            .flatten()
            .filter_map(|i| i.output.as_ref())
            .map(|o| o.to_string().len())
            .sum();
        let item = self.item_mut(id, index);
        item.ended_at_ms = Some(now_ms);
        let mut stop = None;
        match result {
            StepResult::Succeeded {
                output,
                attempt,
                cached_from,
            } => {
                item.attempt = attempt;
                let size = output.to_string().len();
                if spent + size > MAX_ITEM_OUTPUT_BYTES {
                    item.status = StepStatus::Failed;
                    item.note = Some(format!(
                        "its output ({size} bytes) would bring the step's item outputs past \
                         {MAX_ITEM_OUTPUT_BYTES} bytes: return artifact paths, not data"
                    ));
                    stop = Some(format!(
                        "not started: the step's item outputs reached {MAX_ITEM_OUTPUT_BYTES} bytes"
                    ));
                } else {
                    item.status = StepStatus::Succeeded;
                    item.note = cached_from.as_ref().map(|from| {
                        format!(
                            "cached: the result of `{}` in {}",
                            from.step, from.workflow_id
                        )
                    });
                    item.cached_from = cached_from;
                    item.output = Some(output);
                }
            }
            StepResult::Failed { error, attempt } => {
                item.status = StepStatus::Failed;
                item.attempt = attempt;
                item.note = Some(error);
            }
            StepResult::Cancelled { reason } => {
                item.status = StepStatus::Cancelled;
                item.note = Some(reason);
                stop = Some("not started: the step was cancelled".to_string());
            }
        }
        if let Some(why) = stop {
            self.stop_items(id, StepStatus::Cancelled, &why, now_ms);
        }
        // Freed slots are filled by the next `advance`, which knows whether the run is paused.
        self.settle(&spec, now_ms);
    }

    /// Starts items freed by finished ones, or, once the run is stopping, ends those that
    /// never will start.
    pub(super) fn advance_fan_outs(&mut self, now_ms: u64, starts: &mut Vec<StartStep>) {
        for spec in self.running_fan_outs() {
            match &self.failure {
                Some(why) => {
                    let why = format!("not started: {why}");
                    self.stop_items(&spec.id, StepStatus::Cancelled, &why, now_ms);
                    self.settle(&spec, now_ms);
                }
                None => self.start_items(&spec, now_ms, starts),
            }
        }
    }

    /// The run is being cancelled: items not yet started never will.
    pub(super) fn stop_fan_outs(&mut self, why: &str, now_ms: u64) {
        for spec in self.running_fan_outs() {
            self.stop_items(
                &spec.id,
                StepStatus::Cancelled,
                &format!("not started: {why}"),
                now_ms,
            );
            self.settle(&spec, now_ms);
        }
    }

    fn stop_items(&mut self, id: &str, status: StepStatus, why: &str, now_ms: u64) {
        let items = self.steps.get_mut(id).and_then(|s| s.items.as_mut());
        for item in items.into_iter().flatten() {
            if item.status == StepStatus::Pending {
                item.status = status;
                item.ended_at_ms = Some(now_ms);
                item.note = Some(why.to_string());
            }
        }
    }

    /// Once no item is pending or running, finishes the step: succeeded if enough items did,
    /// with every item's result (and the best one) as its output. Stops early, leaving
    /// pending items unstarted, once too many failed for the ratio to be met.
    fn settle(&mut self, spec: &StepSpec, now_ms: u64) {
        let id = spec.id.as_str();
        if self.steps[id].status != StepStatus::Running {
            return;
        }
        let items = self.steps[id].items.clone().unwrap_or_default();
        let total = items.len();
        let ratio = spec.min_success_ratio.unwrap_or(1.0);
        // The fewest successes that meet the ratio; the epsilon keeps 0.9 * 10 from asking 10.
        let needed = ((ratio * total as f64) - 1e-9).ceil().max(0.0) as usize;
        let failed = items
            .iter()
            .filter(|i| matches!(i.status, StepStatus::Failed | StepStatus::Cancelled))
            .count();
        if total - failed < needed {
            let why = format!("not started: {failed} items failed; the step cannot succeed");
            self.stop_items(id, StepStatus::Skipped, &why, now_ms);
        }
        let items = self.steps[id].items.clone().unwrap_or_default();
        if items
            .iter()
            .any(|i| matches!(i.status, StepStatus::Pending | StepStatus::Running))
        {
            return;
        }
        let succeeded = items
            .iter()
            .filter(|i| i.status == StepStatus::Succeeded)
            .count();
        let describe = |(n, item): (usize, &ItemState)| {
            format!(
                "item {n} ({}): {}",
                item.item,
                item.note.as_deref().unwrap_or("?")
            )
        };
        let mut result = if let Some(cancelled) = items
            .iter()
            .find(|i| i.status == StepStatus::Cancelled && !is_unstarted(i))
        {
            StepResult::Cancelled {
                reason: cancelled.note.clone().unwrap_or_default(),
            }
        } else if succeeded < needed {
            let first = items
                .iter()
                .enumerate()
                .find(|(_, i)| i.status != StepStatus::Succeeded)
                .map(describe)
                .unwrap_or_default();
            StepResult::Failed {
                error: format!(
                    "{succeeded} of {total} items succeeded; min_success_ratio {ratio} needs \
                     {needed}. First failure: {first}"
                ),
                attempt: None,
            }
        } else {
            StepResult::Succeeded {
                output: output(&items, succeeded),
                attempt: None,
                cached_from: None,
            }
        };
        // The counts are the items' own (`items_summary`); the note adds what they cannot say.
        let mut note = None;
        if let (StepResult::Succeeded { output, .. }, Some(best)) = (&mut result, &spec.best) {
            match pick(&items, &best.by, best.order) {
                Some(index) => {
                    let chosen = &items[index];
                    output["best"] = json!({
                        "index": index, "item": chosen.item, "output": chosen.output,
                    });
                    let value = lookup(chosen.output.as_ref(), &best.by);
                    note = Some(format!(
                        "best: item {index} ({}), {} = {value}",
                        chosen.item, best.by
                    ));
                }
                None => {
                    result = StepResult::Failed {
                        error: format!(
                            "best: no succeeded item has a number at output.{}",
                            best.by
                        ),
                        attempt: None,
                    };
                }
            }
        }
        let succeeded_step = matches!(result, StepResult::Succeeded { .. });
        self.finish(id, result, now_ms);
        if succeeded_step {
            self.steps.get_mut(id).expect("known step").note = note;
        }
    }
}

/// An item that was stopped before it ran (its note says why).
fn is_unstarted(item: &ItemState) -> bool {
    item.note
        .as_deref()
        .is_some_and(|n| n.starts_with("not started"))
}

fn pending(item: Value) -> ItemState {
    ItemState {
        item,
        status: StepStatus::Pending,
        attempt: None,
        started_at_ms: None,
        ended_at_ms: None,
        note: None,
        cached_from: None,
        output: None,
    }
}

/// A fan-out step's output: `items` (each with its item, status, and output or error) and
/// the counts.
fn output(items: &[ItemState], succeeded: usize) -> Value {
    let list: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut entry = json!({"item": i.item, "status": i.status});
            match (&i.output, &i.note) {
                (Some(output), _) => entry["output"] = output.clone(),
                (None, Some(note)) => entry["error"] = Value::String(note.clone()),
                (None, None) => {}
            }
            if let Some(from) = &i.cached_from {
                entry["cached_from"] = json!(from);
            }
            entry
        })
        .collect();
    json!({"items": list, "succeeded": succeeded, "failed": items.len() - succeeded})
}

/// The succeeded item with the highest (or lowest) number at `by`; the first of equals.
fn pick(items: &[ItemState], by: &str, order: Order) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (index, item) in items.iter().enumerate() {
        if item.status != StepStatus::Succeeded {
            continue;
        }
        let Some(value) = lookup(item.output.as_ref(), by).as_f64() else {
            continue;
        };
        let better = match best {
            None => true,
            Some((_, b)) => match order {
                Order::Max => value > b,
                Order::Min => value < b,
            },
        };
        if better && !value.is_nan() {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index)
}

fn lookup(output: Option<&Value>, by: &str) -> Value {
    crate::expr::descend(output.cloned().unwrap_or(Value::Null), by.split('.'))
}

/// The output as the run's result carries it: items without their outputs (the result is
/// one payload, at most 2 MiB in Temporal; `step_output` has them all), `best` kept whole.
pub(super) fn without_item_outputs(output: &Value) -> Value {
    let mut trimmed = output.clone();
    if let Some(items) = trimmed.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(entry) = item.as_object_mut() {
                entry.remove("output");
            }
        }
    }
    trimmed
}

/// Paths as a fan-out item's input sees them: `item` is this item, the rest the run's.
struct ItemScope<'a> {
    run: &'a PipelineState,
    item: &'a Value,
}

impl Scope for ItemScope<'_> {
    fn root(&self, root: &Root) -> Option<Value> {
        match root {
            Root::Item => Some(self.item.clone()),
            other => self.run.root(other),
        }
    }
}

impl super::StepState {
    /// A fan-out step's items in one line, e.g. `items: 12 succeeded, 3 running, 35 pending
    /// (of 50)`, for views that cannot show a row per item.
    pub fn items_summary(&self) -> Option<String> {
        let items = self.items.as_ref()?;
        let order = [
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Cancelled,
            StepStatus::Skipped,
            StepStatus::Running,
            StepStatus::Pending,
        ];
        let counts: Vec<String> = order
            .iter()
            .filter_map(|status| {
                let n = items.iter().filter(|i| i.status == *status).count();
                (n > 0).then(|| format!("{n} {}", status.as_str()))
            })
            .collect();
        let cached = items.iter().filter(|i| i.cached_from.is_some()).count();
        let cached = if cached > 0 {
            format!(", {cached} from the cache")
        } else {
            String::new()
        };
        Some(format!(
            "items: {} (of {}){cached}",
            counts.join(", "),
            items.len()
        ))
    }
}
