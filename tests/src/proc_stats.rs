//! What the OS says a process has used (Linux `/proc`), for the benchmarks: CPU time as the
//! kernel accounts it, so nothing inside the measured process has to cooperate. Also which
//! processes are alive and whose children they are, for tests of the worker's children.

use std::{process::Command, sync::OnceLock};

use anyhow::{Context, bail};

/// Clock ticks per second, the unit of the CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> anyhow::Result<f64> {
    static TICKS: OnceLock<Option<f64>> = OnceLock::new();
    let ticks = TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    });
    ticks.context("`getconf CLK_TCK` gave no number")
}

/// User plus system CPU seconds `pid` has used so far (its own threads, not its children).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the full line; this slice starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("{path}: field {i} missing"))
    };
    Ok((ticks(14)? + ticks(15)?) / clock_ticks()?)
}

/// A `/proc/<pid>/status` memory line in bytes, e.g. `VmHWM` (peak resident set size) or
/// `VmRSS` (current).
pub fn status_bytes(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in status.lines() {
        if let Some(value) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let kib: u64 = value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{path}: {line:?}"))?;
            return Ok(kib * 1024);
        }
    }
    bail!("{path} has no {key}")
}

/// The executable name the kernel records for `pid` (`/proc/<pid>/comm`), to check that a
/// pid is the program meant and not a wrapper shell.
pub fn command_name(pid: u32) -> anyhow::Result<String> {
    let path = format!("/proc/{pid}/comm");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path}"))?
        .trim()
        .to_string())
}

/// Whether `pid` runs: it exists and is not a zombie (a killed process its new parent has not
/// reaped yet is gone for every purpose of a test).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|status| !status.lines().any(|l| l.starts_with("State:\tZ")))
}

/// The live children of `parent` with `arg` among their command-line arguments (e.g. the
/// worker's `run-invocation` children).
pub fn children_with_arg(parent: u32, arg: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent pid is the field after the state, which follows the `(name)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent)
                && alive(pid)
                && cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes())
        })
        .collect()
}
