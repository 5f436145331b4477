//! The child's half of an isolated invocation ([`crate::isolated`], `mlx-worker
//! run-invocation`): one request on stdin, reports on stdout, the invocation run by a
//! [`PluginHost`] of its own.

use std::io::{BufRead as _, Read as _, Write as _};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{HostSettings, PluginHost, Request, held::Held};
use crate::{
    contract::JsonText,
    failure::InvocationError,
    isolated::wire::{self, Call, Done, Load, Report},
    plugin::{LoadedPlugin, manifest},
    sandbox::capabilities::activity::ActivitySignals,
};

/// Runs the invocation on stdin and reports it on stdout. An error is for stderr: the request
/// could not be read or no runtime started (the worker reports the exit code).
pub fn serve() -> Result<(), String> {
    crate::child::die_with_parent();
    let mut line = String::new();
    // Locked only for the load and the call: the thread below reads the rest (std's buffer
    // is shared).
    let mut stdin = std::io::stdin().lock();
    stdin
        .read_line(&mut line)
        .map_err(|e| format!("reading the plugin to load: {e}"))?;
    let load: Load = serde_json::from_str(&line).map_err(|e| format!("the plugin to load: {e}"))?;
    let mut component = vec![0; load.component_bytes];
    stdin
        .read_exact(&mut component)
        .map_err(|e| format!("reading the component's {} bytes: {e}", component.len()))?;
    // Two threads: the guest holds one for its whole call; heartbeats go out on the other.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    // Loaded before the call is known: a spare child waits here, ready.
    let loaded = runtime.block_on(load_plugin(load, component.into()));
    line.clear();
    match stdin.read_line(&mut line) {
        // No call: the worker dropped this spare (the plugin was unloaded, the worker stops).
        Ok(0) => return Ok(()),
        Ok(_) => {}
        Err(e) => return Err(format!("reading the call: {e}")),
    }
    let call: Call = serde_json::from_str(&line).map_err(|e| format!("the call: {e}"))?;
    drop(stdin);
    let cancel = CancellationToken::new();
    // The guest never yields (no epochs), so the worker's cancel line is read on a thread of
    // its own rather than by a task that would wait behind the guest.
    std::thread::spawn({
        let cancel = cancel.clone();
        move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(line) if line == wire::CANCEL => cancel.cancel(),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }
    });
    // Reported before anything is torn down (the guest's memory, the plugin's code): the
    // worker kills this process as soon as it has read the outcome, so that teardown
    // (milliseconds for tens of megabytes) is never on the call's path. What is torn down
    // after the report, if anything, still is in the runtime's context, where it ran.
    let _context = runtime.enter();
    let mut held = Held::default();
    let (outcome, _loaded) = match loaded {
        Ok(loaded) => {
            let (host, plugin) = &loaded;
            let outcome = runtime.block_on(invoke(host, plugin, call, cancel, &mut held));
            (outcome, Some(loaded))
        }
        Err(e) => (Err(e), None),
    };
    report(&Report::Done(outcome));
    Ok(())
}

/// A host of this process's own and the plugin the worker loaded, from what it was given.
async fn load_plugin(
    load: Load,
    component: std::sync::Arc<[u8]>,
) -> Result<(std::sync::Arc<PluginHost>, LoadedPlugin), InvocationError> {
    let unavailable = |what: String| InvocationError::Sandbox(what);
    let max_memory = load.engine.max_memory_bytes;
    let host = PluginHost::new(HostSettings {
        engine: load.engine,
        artifacts_dir: None,
        // The worker makes each call's scratch directory (wire::Call::scratch).
        scratch_root: None,
        cache_dir: load.cache_dir,
        cache_max_bytes: load.cache_max_bytes,
        observer: None,
        compiler: None,
        invoker: None,
    })
    .map_err(|e| unavailable(format!("the plugin's process: {e:#}")))?;
    let loaded = match manifest::from_text(&load.plugin, load.manifest.as_deref(), max_memory) {
        Ok(manifest) => host.load_given(&load.plugin, component, manifest).await,
        Err(e) => Err(e.into()),
    };
    // The worker loaded the same bytes and manifest: what fails here is the machine (a
    // granted directory or secret gone since), not the request.
    let plugin =
        loaded.map_err(|e| unavailable(format!("the plugin's process could not load it: {e}")))?;
    if plugin.digest != load.digest {
        return Err(unavailable(format!(
            "the plugin's process was given other bytes ({}) than the worker loaded ({})",
            plugin.digest, load.digest
        )));
    }
    Ok((host, plugin))
}

async fn invoke(
    host: &PluginHost,
    plugin: &LoadedPlugin,
    call: Call,
    cancel: CancellationToken,
    held: &mut Held,
) -> Result<Done, InvocationError> {
    let context = call.context;
    // Named as the worker names its own invocation spans: this module's target is kept to
    // warnings in the child (`mlx-worker run-invocation`), which would drop the span.
    let span = tracing::info_span!(
        target: "mlx_worker::invocation",
        "invocation",
        plugin = %plugin.info.name,
        operation = %call.operation,
        workflow_id = %context.workflow_id,
        activity_id = %context.activity_id,
        attempt = context.attempt,
        process = std::process::id(),
    );
    let (signals, mut heartbeats) = ActivitySignals::new(cancel);
    let (finished, mut finish) = oneshot::channel::<()>();
    let forward = tokio::spawn(async move {
        let mut sent: Option<JsonText> = None;
        let mut send = |details: Option<JsonText>| {
            if details.is_some() && details != sent {
                if let Some(text) = &details {
                    report(&Report::Heartbeat(text.as_str().to_string()));
                }
                sent = details;
            }
        };
        loop {
            tokio::select! {
                changed = heartbeats.changed() => match changed {
                    Ok(()) => send(heartbeats.borrow_and_update().clone()),
                    // The signals are gone: the invocation ended before it made a store.
                    Err(_) => {
                        let _ = (&mut finish).await;
                        break;
                    }
                },
                _ = &mut finish => break,
            }
        }
        // The last heartbeat, flushed as the invocation ended, goes out before the outcome.
        send(heartbeats.borrow().clone());
    });
    let request = Request {
        artifacts: call.artifacts,
        scratch: call.scratch,
        plugin,
        operation: &call.operation,
        input: &call.input,
        ctx: &context,
        signals,
        deadline: None,
    };
    let invoked = tracing::Instrument::instrument(host.invoke_holding(request, held), span).await;
    let _ = finished.send(());
    let _ = forward.await;
    invoked.map(|done| Done {
        output: done.output,
        duration: done.duration,
        peak_memory_bytes: done.peak_memory_bytes,
    })
}

/// One line on stdout. A worker gone (broken pipe) leaves nothing to do: the parent-death
/// signal ends this process anyway.
fn report(report: &Report) {
    let mut line = serde_json::to_vec(report).expect("reports serialize");
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line).and_then(|()| out.flush());
}
