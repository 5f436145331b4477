//! `pipeline run --wait`: the run as it goes. On a terminal, one live line per step (symbol,
//! id, kind, status, elapsed, attempt, note); anywhere else (a pipe, CI, a log) plain lines, one
//! each time a step's status or attempt changes, with no escape codes.

use std::{collections::BTreeMap, io::IsTerminal, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{
    format::{clock, now_ms},
    view::step_elapsed,
};
use mlx_pipeline::{PipelineStatus, RunState, StepState, StepStatus};

pub enum Progress {
    Live(Live),
    Plain(Plain),
}

impl Progress {
    /// Live when stdout is a terminal, plain lines otherwise.
    pub fn for_stdout() -> Self {
        if std::io::stdout().is_terminal() {
            Progress::Live(Live::default())
        } else {
            Progress::Plain(Plain::default())
        }
    }

    pub fn show(&mut self, status: &PipelineStatus, now_ms: u64) {
        match self {
            Progress::Live(live) => live.show(status, now_ms),
            Progress::Plain(plain) => {
                for line in plain.changes(status, now_ms) {
                    println!("{line}");
                }
            }
        }
    }

    /// The run could not be looked at this time; said once (plain) or in the header (live).
    pub fn unanswered(&mut self, why: &str) {
        match self {
            Progress::Live(live) => live.unanswered(why),
            Progress::Plain(plain) if !plain.told => {
                plain.told = true;
                println!("{} {why}", clock(now_ms()));
            }
            Progress::Plain(_) => {}
        }
    }

    /// Leaves the last state on screen; what follows prints below it.
    pub fn finish(&mut self) {
        if let Progress::Live(live) = self {
            live.finish();
        }
    }
}

/// A step's attempt and note, after its status on a plain line.
fn tail(step: &StepState) -> String {
    let mut out = String::new();
    if let Some(attempt) = step.attempt {
        out.push_str(&format!(" (attempt {attempt})"));
    }
    if let Some(note) = super::view::step_note(step) {
        out.push_str(&format!(": {note}"));
    }
    out
}

/// Lines for what changed since the last call: the pipeline's state, and each step whose
/// status changed or that went on to a retry (a note alone, e.g. a retry's countdown, is not a
/// change).
#[derive(Default)]
pub struct Plain {
    /// Whether a look that got no status was reported already.
    told: bool,
    state: Option<RunState>,
    /// Per step: status, retry attempt, and how many of its items ended.
    steps: BTreeMap<String, (StepStatus, Option<u32>, usize)>,
}

impl Plain {
    pub fn changes(&mut self, status: &PipelineStatus, now_ms: u64) -> Vec<String> {
        let at = clock(now_ms);
        let mut lines = Vec::new();
        let state = (self.state != Some(status.state))
            .then(|| format!("{at} pipeline `{}` {}", status.pipeline, status.state));
        // The run's start heads its steps; its end (or pause) follows the steps that led to it.
        let first = self.state.is_none();
        self.state = Some(status.state);
        if first {
            lines.extend(state.clone());
        }
        for step in &status.steps {
            // A first attempt becoming known is no news; a retry is.
            // So is each fan-out item that ends: `--wait` shows a sweep's progress.
            let ended = step.items.iter().flatten();
            let ended = ended.filter(|i| i.status.is_finished()).count();
            let key = (step.status, step.attempt.filter(|a| *a > 1), ended);
            if self.steps.get(&step.id) != Some(&key) {
                self.steps.insert(step.id.clone(), key);
                lines.push(format!(
                    "{at} {} {}{}",
                    step.id,
                    step.status.as_str(),
                    tail(step)
                ));
            }
        }
        if !first {
            lines.extend(state);
        }
        lines
    }
}

/// indicatif lines: a header with the pipeline's state, then one line per step; a running
/// step's line spins.
#[derive(Default)]
pub struct Live {
    multi: Option<MultiProgress>,
    header: Option<ProgressBar>,
    /// Each step's line and the status it shows (None: not styled yet).
    bars: BTreeMap<String, (ProgressBar, Option<StepStatus>)>,
}

impl Live {
    /// The header line, first of all lines, made on first use.
    fn header(&mut self) -> &ProgressBar {
        let multi = self
            .multi
            .get_or_insert_with(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        self.header.get_or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{wide_msg:.bold}").expect("template"));
            bar
        })
    }

    fn show(&mut self, status: &PipelineStatus, now_ms: u64) {
        self.header()
            .set_message(format!("pipeline `{}` {}", status.pipeline, status.state));
        let multi = self.multi.clone().expect("made with the header");
        let id_width = status.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
        let kind_width = status.steps.iter().map(|s| s.kind.len()).max().unwrap_or(0);
        for step in &status.steps {
            let (bar, shown) = self
                .bars
                .entry(step.id.clone())
                .or_insert_with(|| (multi.add(ProgressBar::new_spinner()), None));
            if *shown != Some(step.status) {
                bar.set_style(style(step.status));
                bar.set_prefix(symbol(step.status));
                // Only a running step spins; the ticker redraws between polls.
                if step.status == StepStatus::Running {
                    bar.enable_steady_tick(Duration::from_millis(120));
                } else {
                    bar.disable_steady_tick();
                }
                *shown = Some(step.status);
            }
            let attempt = step.attempt.map(|a| format!("attempt {a}"));
            bar.set_message(format!(
                "{:<id_width$}  {:<kind_width$}  {:<16} {:>7}  {:<10} {}",
                step.id,
                step.kind,
                step.status.as_str(),
                step_elapsed(step, now_ms).unwrap_or_default(),
                attempt.unwrap_or_default(),
                super::view::step_note(step).unwrap_or_default(),
            ));
        }
    }

    fn unanswered(&mut self, why: &str) {
        self.header().set_message(why.to_string());
    }

    fn finish(&mut self) {
        for (bar, _) in self.bars.values() {
            bar.disable_steady_tick();
            bar.finish();
        }
        if let Some(header) = &self.header {
            header.finish();
        }
    }
}

fn symbol(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "·",
        StepStatus::Running => "",
        StepStatus::WaitingApproval => "?",
        StepStatus::Succeeded => "✔",
        StepStatus::Failed => "✘",
        StepStatus::Cancelled => "⊘",
        StepStatus::Skipped => "↷",
    }
}

fn style(status: StepStatus) -> ProgressStyle {
    let template = match status {
        StepStatus::Running => "{spinner:.cyan} {wide_msg}",
        StepStatus::Succeeded => "{prefix:.green} {wide_msg}",
        StepStatus::Failed | StepStatus::Cancelled => "{prefix:.red} {wide_msg}",
        StepStatus::WaitingApproval => "{prefix:.yellow} {wide_msg}",
        StepStatus::Pending | StepStatus::Skipped => "{prefix:.dim} {wide_msg}",
    };
    ProgressStyle::with_template(template).expect("a valid template")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: RunState, steps: &[(&str, StepStatus, Option<u32>)]) -> PipelineStatus {
        PipelineStatus {
            pipeline: "demo".into(),
            state,
            params: Default::default(),
            failure: None,
            steps: steps
                .iter()
                .map(|(id, status, attempt)| StepState {
                    id: id.to_string(),
                    kind: "testkit.echo".into(),
                    depends_on: Vec::new(),
                    status: *status,
                    attempt: *attempt,
                    started_at_ms: None,
                    ended_at_ms: None,
                    output_ref: None,
                    note: None,
                    cached_from: None,
                    items: None,
                    output: None,
                })
                .collect(),
        }
    }

    fn strip_clock(lines: Vec<String>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn plain_lines_come_once_per_status_or_attempt_change() {
        use StepStatus::*;
        let mut plain = Plain::default();
        let first = status(
            RunState::Running,
            &[("a", Running, None), ("b", Pending, None)],
        );
        assert_eq!(
            strip_clock(plain.changes(&first, now_ms())),
            ["pipeline `demo` running", "a running", "b pending"]
        );
        assert!(
            plain.changes(&first, now_ms()).is_empty(),
            "nothing changed"
        );
        let known = status(
            RunState::Running,
            &[("a", Running, Some(1)), ("b", Pending, None)],
        );
        assert!(
            plain.changes(&known, now_ms()).is_empty(),
            "a first attempt is no news"
        );
        let retry = status(
            RunState::Running,
            &[("a", Running, Some(2)), ("b", Pending, None)],
        );
        assert_eq!(
            strip_clock(plain.changes(&retry, now_ms())),
            ["a running (attempt 2)"]
        );
        let mut done = status(
            RunState::Succeeded,
            &[("a", Succeeded, Some(2)), ("b", Skipped, None)],
        );
        done.steps[1].note = Some("`a` is false".into());
        assert_eq!(
            strip_clock(plain.changes(&done, now_ms())),
            [
                "a succeeded (attempt 2)",
                "b skipped: `a` is false",
                "pipeline `demo` succeeded"
            ]
        );
    }
}
