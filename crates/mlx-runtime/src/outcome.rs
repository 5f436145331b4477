//! How a finished call becomes an outcome: the output checked against its limit, or a trap
//! (wasmtime error) classified into an [`InvocationError`] using what the store observed.

use serde_json::Value;
use wasmtime::{Trap, WasmBacktrace};

use crate::{
    failure::InvocationError,
    sandbox::{
        GuestState,
        capabilities::{ContractViolation, host_memory::HostMemoryExceeded},
    },
};

pub(crate) fn parse_output(text: &str, limit: usize) -> Result<Value, InvocationError> {
    if text.len() > limit {
        return Err(InvocationError::OutputTooLarge {
            size: text.len(),
            limit,
        });
    }
    serde_json::from_str(text)
        .map_err(|e| InvocationError::InvalidOutput(format!("output is not JSON: {e}")))
}

/// An instantiation that failed. A trap (the component's start, its initialisers) or a limit
/// the guest asked past is the plugin's, classified as any trap; anything else (no free pool
/// slot, the host out of memory or mappings) is the worker's, and may succeed later or on
/// another worker: retryable `SandboxUnavailable`, never `PluginTrapped`.
pub(crate) fn classify_instantiation(state: &GuestState, err: wasmtime::Error) -> InvocationError {
    let the_plugins = state.memory.hit
        || state.open_files.hit
        || state.disk.hit()
        || state.host_memory.hit()
        || err.downcast_ref::<Trap>().is_some()
        || err.downcast_ref::<ContractViolation>().is_some()
        || err.downcast_ref::<wasmtime_wasi::I32Exit>().is_some();
    if the_plugins {
        return classify_trap(state, err);
    }
    let text = format!("{err:#}");
    if text.contains("concurrent limit") {
        return InvocationError::Sandbox(format!(
            "cannot instantiate the plugin: the worker's instance pool is full ({text}); its \
             slots are twice worker.max_concurrent_activities, and the activity is retried"
        ));
    }
    InvocationError::Sandbox(format!("cannot instantiate the plugin: {text}"))
}

/// How wasmtime says a host call's arguments passed the store's hostcall fuel.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";
/// How wasmtime-wasi refuses random bytes over `max_random_size` (set to the same budget).
const RANDOM_OVER_LIMIT: [&str; 2] = ["requested len", "exceeds limit"];

pub(crate) fn classify_trap(state: &GuestState, err: wasmtime::Error) -> InvocationError {
    if state.memory.hit {
        return InvocationError::MemoryLimit {
            limit_mb: state.manifest.limits.memory_bytes >> 20,
        };
    }
    if state.open_files.hit {
        return InvocationError::TooManyOpenFiles {
            limit: state.open_files.limit(),
        };
    }
    if state.disk.hit() {
        return InvocationError::DiskQuotaExceeded {
            limit_mb: state.disk.limit_bytes() >> 20,
        };
    }
    // wasmtime's bound on what one host call copies out (set to the same budget, see
    // `new_store`) is an error type of its own that it does not export: known by its message.
    let over_call_budget = err.chain().find_map(|cause| {
        let cause = cause.to_string();
        if cause.contains(HOSTCALL_FUEL_EXHAUSTED) {
            Some("what one call copied out of it: arguments or result")
        } else if RANDOM_OVER_LIMIT.iter().all(|part| cause.contains(part)) {
            Some("random bytes asked for in one call")
        } else {
            None
        }
    });
    if state.host_memory.hit() || over_call_budget.is_some() {
        let what = err
            .downcast_ref::<HostMemoryExceeded>()
            .map(|e| e.what)
            .or(over_call_budget)
            .unwrap_or("file streams or directory listings");
        return InvocationError::HostMemoryExceeded {
            limit_mb: state.host_memory.limit_bytes() >> 20,
            what: what.to_string(),
        };
    }
    if let Some(violation) = err.downcast_ref::<ContractViolation>() {
        return InvocationError::ContractViolation(violation.to_string());
    }
    // `exit` ends the component without a result: whatever its status, the contract (return
    // output or an error) was broken, and it would break again on retry.
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return InvocationError::ContractViolation(format!(
            "plugin called exit (status {}) instead of returning from invoke",
            exit.0
        ));
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    let trap = err.downcast_ref::<Trap>();
    match trap {
        Some(Trap::StackOverflow) => return InvocationError::StackOverflow { backtrace },
        Some(Trap::OutOfFuel) => {
            return InvocationError::FuelExhausted {
                fuel: state.manifest.limits.fuel.unwrap_or(u64::MAX),
            };
        }
        _ => {}
    }
    let stderr_tail = state.log.stderr().tail();
    let message = match (panic_message(&stderr_tail), trap) {
        (Some(panic), _) => format!("plugin panicked: {panic}"),
        (None, Some(trap)) => format!("plugin trapped: {trap}"),
        (None, None) => format!("plugin trapped: {err:#}"),
    };
    InvocationError::Trap {
        message,
        backtrace,
        stderr_tail,
    }
}

/// Rust guests print `thread '..' panicked at FILE:LINE:COL:` then the message to stderr
/// before aborting; the failure should say what the panic said.
fn panic_message(stderr_tail: &[String]) -> Option<String> {
    let at = stderr_tail
        .iter()
        .rposition(|l| l.contains("panicked at"))?;
    let location = stderr_tail[at]
        .split("panicked at")
        .nth(1)?
        .trim()
        .trim_end_matches(':');
    let message: Vec<&str> = stderr_tail[at + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| !l.starts_with("note:"))
        .collect();
    Some(format!("{} (at {location})", message.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_taken_from_stderr() {
        let tail = [
            String::new(),
            "thread '<unnamed>' (1) panicked at src/ops.rs:7:5:".to_string(),
            "boom".to_string(),
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
                .to_string(),
        ];
        assert_eq!(
            panic_message(&tail).as_deref(),
            Some("boom (at src/ops.rs:7:5)")
        );
        assert_eq!(panic_message(&["plain line".to_string()]), None);
    }

    #[test]
    fn oversized_output_is_refused_before_parsing() {
        let err = parse_output("\"0123456789\"", 4).unwrap_err();
        assert!(matches!(
            err,
            InvocationError::OutputTooLarge { size: 12, limit: 4 }
        ));
        assert!(matches!(
            parse_output("{", 100),
            Err(InvocationError::InvalidOutput(_))
        ));
    }
}
