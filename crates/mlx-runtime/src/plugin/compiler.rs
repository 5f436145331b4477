//! Compiling a component in a child process, so that compiling never costs the worker itself.
//!
//! Cranelift's work on a component is tens of MiB of short-lived allocations (hundreds for an
//! interpreter component) made on whatever threads compile it. Freed, they stay in glibc's
//! arenas as fragments that `malloc_trim` cannot hand back: issue 18's soak saw the worker's
//! free heap grow by 9 MiB over its first 30 hot reloads before it settled, and one compile
//! of a large plugin raises the daemon's peak RSS by its whole working set. A child's heap is
//! the kernel's again when it exits, and a compile that runs out of memory or crashes (a
//! hostile component, a compiler bug) kills the child, not the worker and its neighbours.
//!
//! The child is the worker's own executable run with [`ChildProgram::args`]: it reads the
//! component on stdin, builds an engine from the same [`EngineSettings`] (passed as JSON),
//! and writes `Engine::precompile_component`'s artifact to its stdout, which is a private
//! temporary file beside the compile cache's entries. The parent maps that file as the
//! cache maps its entries ([`super::compile_cache::CompileCache::adopt`]); wasmtime rejects an
//! artifact made for another engine configuration or version.

use std::{io::Read as _, process::Stdio};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    child::{ChildProgram, signal},
    engine::{BoxError, EngineSettings, build_engine},
};

/// What the parent reads of a failed child's stderr: its error message, never a flood.
const MAX_MESSAGE: u64 = 64 << 10;

/// The child's exit code when it compiled but could not write the artifact (a full disk):
/// not the component's fault, so the worker compiles it itself.
pub const EXIT_NO_ROOM: u8 = 3;

/// Why a compile in a child gave no component.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    /// The component's own error, or the child died compiling it: the load fails.
    Compile(BoxError),
    /// No child could run or write its artifact: the worker compiles in-process instead.
    NoChild(String),
}

/// The parent's half: a [`ChildProgram`] and the engine settings it is given.
#[derive(Debug)]
pub(crate) struct ChildCompiler {
    process: ChildProgram,
    engine: String,
}

impl ChildCompiler {
    pub(crate) fn new(process: ChildProgram, settings: &EngineSettings) -> Self {
        Self {
            process,
            engine: serde_json::to_string(settings).expect("engine settings serialize"),
        }
    }

    /// Compiles `wasm` in a child whose stdout is `artifact`. The error is the child's own
    /// message (wasmtime's, naming what is wrong with the component), or how it died.
    pub(crate) async fn compile(
        &self,
        wasm: &[u8],
        artifact: std::fs::File,
    ) -> Result<(), ChildFailure> {
        let program = self.process.program.display();
        // A load abandoned (the worker shutting down) takes its compile with it (kill on drop).
        let mut child = self
            .process
            .command()
            .arg(&self.engine)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(artifact))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ChildFailure::NoChild(format!("cannot start the compiler process {program}: {e}"))
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let feed = async move {
            // A child that failed early stops reading; its message says why, not EPIPE.
            let _ = stdin.write_all(wasm).await;
        };
        let mut message = Vec::new();
        let read = async {
            let _ = stderr.take(MAX_MESSAGE).read_to_end(&mut message).await;
        };
        tokio::join!(feed, read);
        let status = child.wait().await.map_err(|e| {
            let message = format!("waiting for the compiler process {program}: {e}");
            ChildFailure::Compile(message.into())
        })?;
        if status.success() {
            return Ok(());
        }
        let message = String::from_utf8_lossy(&message);
        let message = message.trim();
        if status.code() == Some(i32::from(EXIT_NO_ROOM)) {
            return Err(ChildFailure::NoChild(message.to_string()));
        }
        Err(ChildFailure::Compile(
            match (status.code(), signal(&status)) {
                (Some(_), _) if !message.is_empty() => message.to_string(),
                (Some(code), _) => format!("the compiler process exited with code {code}"),
                (None, Some(9)) => "the compiler process was killed (SIGKILL): out of memory? \
                                 The kernel's OOM killer sends SIGKILL; the worker was not hurt"
                    .to_string(),
                (None, Some(sig)) => format!(
                    "the compiler process died of signal {sig} compiling this component{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
                (None, None) => format!("the compiler process ended with {status}"),
            }
            .into(),
        ))
    }
}

/// The child's half (`mlx-worker compile-component <engine settings>`): the component on
/// stdin, the artifact on stdout. The error is for stderr, with the code to exit with.
pub fn serve(engine: &str) -> Result<(), (String, u8)> {
    let fail = |message: String| (message, 1);
    crate::child::die_with_parent();
    let settings: EngineSettings = serde_json::from_str(engine)
        .map_err(|e| fail(format!("engine settings {engine:?}: {e}")))?;
    let mut wasm = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut wasm)
        .map_err(|e| fail(format!("reading the component from stdin: {e}")))?;
    let engine = build_engine(&settings).map_err(|e| fail(format!("{e:#}")))?;
    let artifact = engine
        .precompile_component(&wasm)
        .map_err(|e| fail(format!("{e:#}")))?;
    drop(wasm);
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, &artifact)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| (format!("writing the compiled artifact: {e}"), EXIT_NO_ROOM))
}
