//! Invocations in a child process, for plugins whose manifest says `isolation = "process"`
//! ([`crate::plugin::manifest::Isolation`]).
//!
//! Why: the worker stops a guest that runs in its own process by epoch checks, a load and a
//! compare at every loop head and function entry whose slow path is a call; Cranelift then
//! keeps a hot loop's floats in stack slots, and compute-bound code (training) runs at half
//! its speed or less (BENCHMARKS.md section 3). A child runs the plugin compiled without
//! those checks, and the worker stops it the way an operating system stops anything: it kills
//! the process, at the deadline or when `limits.cancel_grace` has passed after a cancellation.
//!
//! The child is the worker's own executable ([`ChildProgram`], the daemon's `run-invocation`
//! subcommand, which calls [`crate::host::serve`]): it is given the component's bytes and the
//! manifest's text the worker loaded (a hot reload may have replaced both files since, and a
//! pipeline pinned to this version must still run it), compiles them through the compile
//! cache for its own engine settings, runs the one invocation through its
//! own [`crate::PluginHost`] (the same sandbox, capabilities, grants and limits), reports
//! heartbeats as they happen and then the outcome ([`wire`]), before it tears anything
//! down: the worker kills it once it has read the outcome. A child is started
//! and given the plugin before its call is known: each call leaves a spare ([`Spare`]) that
//! has loaded the plugin by the time the next call comes. Its logs go to the
//! stderr it shares with the worker. The worker keeps what is the worker's: the plugin's
//! concurrency slot, the descriptor budget, the call's scratch directory (made before the
//! call, removed once the child is gone, however it ended), the deadline, cancellation,
//! metrics.

pub(crate) mod wire;

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{ChildStdin, ChildStdout},
};

use crate::{
    child::{ChildProgram, signal},
    contract::JsonText,
    failure::InvocationError,
    sandbox::capabilities::activity::ActivitySignals,
};

/// Longest report line the worker reads: a heartbeat (at most 2 MiB, `limits.max_heartbeat_kb`)
/// or the outcome (output at most `limits.max_output_kb`, 64 MiB), as JSON text with escapes.
const MAX_LINE: usize = 160 << 20;

/// A child that was started and given the plugin to load, ready for its one call. The next
/// call of a plugin takes the spare its previous call left ([`crate::host`]), so it pays
/// neither the process start nor the load (tens of milliseconds), only the call.
pub(crate) struct Spare {
    /// Killed when dropped: a spare of a plugin version that is unloaded goes with it.
    child: tokio::process::Child,
    /// Writes the load (its bytes take a moment) and gives stdin back for the call.
    fed: tokio::task::JoinHandle<std::io::Result<ChildStdin>>,
    stdout: ChildStdout,
}

impl Spare {
    /// Starts a child of `program` and sends it `load` and the component's bytes.
    pub(crate) fn start(
        program: &ChildProgram,
        load: &wire::Load,
        component: Arc<[u8]>,
    ) -> Result<Self, InvocationError> {
        let mut child = program
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                InvocationError::Sandbox(format!(
                    "cannot start the plugin's process ({}): {e}",
                    program.program.display()
                ))
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = serde_json::to_vec(load).expect("loads serialize");
        line.push(b'\n');
        let fed = tokio::spawn(async move {
            stdin.write_all(&line).await?;
            stdin.write_all(&component).await?;
            Ok(stdin)
        });
        Ok(Self { child, fed, stdout })
    }

    /// Whether the child still runs: a spare that died while it waited (the OOM killer, a
    /// crash) is not worth a call. One whose load failed waits and reports that to its call.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Makes `call` in this child and follows it to its end; see the module docs.
    pub(crate) async fn run(
        self,
        call: &wire::Call,
        signals: &ActivitySignals,
        deadline: Instant,
        grace: Duration,
    ) -> Result<wire::Done, InvocationError> {
        let start = Instant::now();
        let Self {
            mut child,
            fed,
            stdout,
        } = self;
        // A child that died before or while it was fed shows in its reports (none) and its
        // exit status, not here. One that stopped reading is still bound by the deadline.
        let mut stdin = match tokio::time::timeout_at(deadline.into(), fed).await {
            Ok(fed) => fed.ok().and_then(Result::ok),
            Err(_) => {
                let _ = child.start_kill();
                return Err(InvocationError::Deadline {
                    after: start.elapsed(),
                });
            }
        };
        if let Some(pipe) = &mut stdin {
            let mut line = serde_json::to_vec(call).expect("calls serialize");
            line.push(b'\n');
            let _ = pipe.write_all(&line).await;
        }
        let mut reports = BufReader::new(stdout);
        let mut text = Vec::new();
        let cancel = signals.cancel_token().clone();
        let mut grace_ends: Option<Instant> = None;
        let ended = loop {
            let grace_over = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Cancel-safe: a line read in part stays in `text` for the next turn.
                read = read_line(&mut reports, &mut text) => match read {
                    Ok(true) => match serde_json::from_slice::<wire::Report>(&std::mem::take(&mut text)) {
                        Ok(wire::Report::Heartbeat(details)) => match JsonText::parse(details) {
                            Ok(details) => signals.record(details),
                            Err(e) => break Err(broken(format!("a heartbeat that is not JSON: {e}"))),
                        },
                        Ok(wire::Report::Done(outcome)) => break outcome,
                        Err(e) => break Err(broken(format!("a report the worker cannot read: {e}"))),
                    },
                    Ok(false) => break Err(died(child.wait().await)),
                    Err(e) => break Err(broken(format!("reading its reports: {e}"))),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    break Err(InvocationError::Deadline { after: start.elapsed() });
                }
                _ = cancel.cancelled(), if grace_ends.is_none() => {
                    grace_ends = Some(Instant::now() + grace);
                    if let Some(pipe) = &mut stdin {
                        let _ = pipe.write_all(format!("{}\n", wire::CANCEL).as_bytes()).await;
                    }
                }
                _ = grace_over => {
                    break Err(InvocationError::Cancelled { acknowledged_by_plugin: false });
                }
            }
        };
        // Killed whatever it was doing: after its outcome there is nothing left for it to do,
        // and a deadline or an expired grace ends it here. SIGKILL runs nothing more of it;
        // the kernel's teardown of its memory (milliseconds for a large one) and the reaping,
        // so that no zombie remains, happen after the call has returned.
        let _ = child.start_kill();
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        ended
    }
}

/// Reads one line into `text` (without its newline); false at the end of the stream. A line
/// longer than [`MAX_LINE`] is an error, never a worker holding gigabytes for a child.
async fn read_line(
    reader: &mut BufReader<ChildStdout>,
    text: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(!text.is_empty());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        text.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if text.len() > MAX_LINE {
            return Err(std::io::Error::other(format!(
                "a report of more than {MAX_LINE} bytes"
            )));
        }
        if done {
            text.pop();
            return Ok(true);
        }
    }
}

fn broken(what: String) -> InvocationError {
    InvocationError::Sandbox(format!("the plugin's process broke off: {what}"))
}

/// The failure of a child that ended without reporting an outcome.
fn died(status: std::io::Result<std::process::ExitStatus>) -> InvocationError {
    let status = match status {
        Ok(status) => status,
        Err(e) => return broken(format!("waiting for it: {e}")),
    };
    InvocationError::Sandbox(match (status.code(), signal(&status)) {
        (None, Some(9)) => "the plugin's process was killed (SIGKILL) before it reported: out \
                            of memory? The kernel's OOM killer sends SIGKILL; the worker was \
                            not hurt, and a retry runs in a new process"
            .to_string(),
        (None, Some(sig)) => format!(
            "the plugin's process died of signal {sig} before it reported; the worker was not \
             hurt (its log lines above say more)"
        ),
        (Some(code), _) => format!(
            "the plugin's process exited with code {code} before it reported (its log lines \
             above say why)"
        ),
        (None, None) => format!("the plugin's process ended with {status}"),
    })
}
