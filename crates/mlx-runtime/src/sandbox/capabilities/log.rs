//! `mlx:plugin/log`: structured guest logs into the worker's `tracing` output. Lines land in
//! the invocation's span, so they carry workflow id, activity id, attempt, plugin and operation.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use wasmtime::{
    StoreContextMut,
    component::{ComponentType, Lift, Linker, WasmList, WasmStr},
};

use super::{Offer, rate::RateLimit, stdio::GuestOutput};
use crate::bindings::WitLevel;

pub const OFFER: Offer = Offer::always("mlx:plugin/log");

/// The `[limits]` keys of this capability, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of log lines and stdout/stderr a single invocation may emit before the host drops
    /// the rest (with one warning). `limits.max_log_kb`, default 4 MiB, at most 1 GiB.
    pub max_bytes: usize,
    /// Log lines (log calls and stdout/stderr lines) a second; lines beyond it are dropped
    /// (with one warning). `limits.log_lines_per_sec`, default 1000 in bursts of up to 1000,
    /// at most 100,000.
    pub lines_per_sec: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            lines_per_sec: 1000,
        }
    }
}

const KEYS: super::BudgetKeys = super::BudgetKeys {
    kib: "limits.max_log_kb",
    max_kib: 1 << 20,
    rate: "limits.log_lines_per_sec",
    max_rate: 100_000,
};

impl LogLimits {
    /// The manifest's values over the defaults, each checked against its ceiling.
    pub fn resolve(max_log_kb: Option<u64>, lines_per_sec: Option<u32>) -> Result<Self, String> {
        let d = Self::default();
        let (max_bytes, lines_per_sec) =
            KEYS.resolve((d.max_bytes, d.lines_per_sec), max_log_kb, lines_per_sec)?;
        Ok(Self {
            max_bytes,
            lines_per_sec,
        })
    }
}

/// The log capability's part of a store: the invocation's budget, shared with the guest's
/// stdout and stderr, which are also log lines.
pub struct LogState {
    budget: Arc<LogBudget>,
    stdout: GuestOutput,
    stderr: GuestOutput,
}

impl LogState {
    pub fn new(limits: &LogLimits) -> Self {
        let budget = LogBudget::new(limits.max_bytes, limits.lines_per_sec);
        Self {
            stdout: GuestOutput::new("stdout", tracing::Level::INFO, budget.clone()),
            stderr: GuestOutput::new("stderr", tracing::Level::WARN, budget.clone()),
            budget,
        }
    }

    pub fn stdout(&self) -> GuestOutput {
        self.stdout.clone()
    }

    /// The guest's stderr; its tail explains a crash.
    pub fn stderr(&self) -> &GuestOutput {
        &self.stderr
    }
}

/// How a store exposes its [`LogState`].
pub trait LogView: Send {
    fn log(&mut self) -> &mut LogState;
}

/// The interface as the components import it (the WIT package's version).
const INSTANCE: &str = "mlx:plugin/log@0.1.0";

/// A `field` of a log call, read in place in guest memory. The generated binding would copy
/// the whole list out before the host sees it: a call with millions of empty fields cost the
/// worker three times the guest's memory (+333 MiB), all of it to be thrown away.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawField {
    key: WasmStr,
    value: WasmStr,
}

/// Links `mlx:plugin/log` by hand rather than through the generated binding, so the host
/// copies out only what it writes: the message and the first [`MAX_FIELDS`] fields, each cut
/// at [`MAX_LINE`].
pub fn add_to_linker<T: LogView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.instance(INSTANCE)?.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, T>,
         (level, message, fields): (WitLevel, WasmStr, WasmList<RawField>)| {
            let budget = store.data_mut().log().budget.clone();
            let left = budget.remaining();
            let mut cost = message.to_str(&store)?.len();
            let mut shown = Vec::new();
            for at in 0..fields.len() {
                if cost > left {
                    // Refused whatever follows: read no further.
                    break;
                }
                let Some(field) = fields.get(&mut store, at) else {
                    break;
                };
                let field = field?;
                let (key, value) = (field.key.to_str(&store)?, field.value.to_str(&store)?);
                cost = cost.saturating_add(key.len() + value.len() + FIELD_COST);
                if at < MAX_FIELDS {
                    shown.push((one_line(&key, MAX_LINE), cut(&value, MAX_LINE).to_string()));
                }
            }
            if !budget.take(cost) || !budget.allow_line() {
                return Ok(());
            }
            let message = one_line(&message.to_str(&store)?, MAX_LINE);
            emit(
                level.into(),
                "log",
                &message,
                &render_fields(&shown, fields.len()),
            );
            Ok(())
        },
    )
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// Log bytes an invocation may still emit, and lines a second. Shared by the log import and
/// guest stdout/stderr: a guest must not be able to make the worker write (or buffer) without
/// bound, nor drown its neighbours' lines in the worker's log.
#[derive(Debug)]
pub struct LogBudget {
    remaining: AtomicUsize,
    exhausted: AtomicBool,
    rate: Mutex<RateLimit>,
    rate_exceeded: AtomicBool,
}

impl LogBudget {
    pub fn new(bytes: usize, lines_per_sec: u32) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(bytes),
            exhausted: AtomicBool::new(false),
            rate: Mutex::new(RateLimit::per_second(lines_per_sec)),
            rate_exceeded: AtomicBool::new(false),
        })
    }

    /// Whether one more line may be written now; false (and one warning per invocation) over
    /// the rate.
    pub fn allow_line(&self) -> bool {
        let allowed = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_take();
        if !allowed && !self.rate_exceeded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "mlx_worker::guest",
                "plugin exceeded its log rate (limits.log_lines_per_sec); lines over the rate \
                 are dropped"
            );
        }
        allowed
    }

    /// Bytes still to spend.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes from the budget; false (and one warning) once it is spent.
    pub fn take(&self, n: usize) -> bool {
        let taken = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok();
        if !taken && !self.exhausted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "mlx_worker::guest",
                "plugin exceeded its log budget; further log lines of this invocation are dropped"
            );
        }
        taken
    }
}

/// Longest message, and longest field list, of one guest log line (stdout/stderr lines too);
/// the rest is cut, saying how much.
pub const MAX_LINE: usize = 8 << 10;

/// Fields of one log call that are written; the rest are counted, not shown.
pub const MAX_FIELDS: usize = 64;

/// What a field costs the budget beyond its text: the ` k=""` it prints as. Without it a
/// guest could send millions of empty fields for free.
const FIELD_COST: usize = 4;

/// Guest text made safe for one line of the worker's log: control characters (newline,
/// carriage return, terminal escapes) are shown escaped, so a guest cannot start a line that
/// looks like the worker's own or rewrite the operator's terminal; cut at `max` bytes.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (at, c) in text.char_indices() {
        if out.len() >= max {
            out.push_str(&format!("… ({} bytes cut)", text.len() - at));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first fields of a log call (key made safe, value cut) as ` key="value"` text, within
/// [`MAX_LINE`], saying how many of `total` were left out.
fn render_fields(shown: &[(String, String)], total: usize) -> String {
    let mut out = shown
        .iter()
        .take(MAX_FIELDS)
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    if total > shown.len() {
        out.push_str(&format!(" …({} more fields)", total - shown.len()));
    }
    one_line(&out, MAX_LINE)
}

/// Emits one guest log line at a level chosen at run time.
pub fn emit(level: tracing::Level, stream: &str, message: &str, fields: &str) {
    // Lines from stdout/stderr have no fields; leave the field out rather than log it empty.
    macro_rules! at {
        ($lvl:ident) => {
            if fields.is_empty() {
                tracing::$lvl!(target: "mlx_worker::guest", stream, "{message}")
            } else {
                tracing::$lvl!(target: "mlx_worker::guest", stream, fields, "{message}")
            }
        };
    }
    match level {
        tracing::Level::ERROR => at!(error),
        tracing::Level::WARN => at!(warn),
        tracing::Level::INFO => at!(info),
        tracing::Level::DEBUG => at!(debug),
        tracing::Level::TRACE => at!(trace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_cannot_start_a_line_of_its_own_or_drive_the_terminal() {
        let forged = "done\n2026-11-29T00:00:00Z ERROR mlx_worker::daemon: forged\r\x1b[2K";
        let line = one_line(forged, MAX_LINE);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.contains("\\n2026") && line.contains("\\r\\u{1b}[2K"),
            "{line}"
        );
    }

    #[test]
    fn long_text_is_cut_saying_how_much() {
        let line = one_line(&"é".repeat(MAX_LINE), MAX_LINE);
        assert!(line.len() < MAX_LINE + 32, "{}", line.len());
        assert!(
            line.ends_with(&format!("({} bytes cut)", MAX_LINE)),
            "{line}"
        );
    }

    #[test]
    fn a_line_shows_a_bounded_number_of_fields_saying_how_many_are_left_out() {
        let shown = vec![(String::new(), String::new()); MAX_FIELDS];
        let line = render_fields(&shown, 1000);
        assert!(line.ends_with(&format!("…({} more fields)", 1000 - MAX_FIELDS)));
        assert!(line.len() <= MAX_LINE + 32);
        let keys = render_fields(&[(one_line("a\nb", MAX_LINE), "c\"d".into())], 1);
        assert_eq!(keys, r#"a\nb="c\"d""#);
    }

    #[test]
    fn a_value_is_cut_at_a_character_boundary() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 8), "abc");
    }
}
