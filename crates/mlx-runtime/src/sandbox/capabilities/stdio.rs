//! Guest stdout/stderr, line by line into the worker's logs (never the worker's own stdout,
//! which belongs to the operator). Bytes count against the invocation's log budget and a
//! partial line is capped, so a guest cannot make the host buffer without bound.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamResult},
};

use super::log::{LogBudget, MAX_LINE, emit, one_line};

/// One of the guest's output streams.
#[derive(Clone)]
pub struct GuestOutput {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    name: &'static str,
    level: tracing::Level,
    budget: Arc<LogBudget>,
    line: Vec<u8>,
    /// The last few lines, for failure details: a panic message is usually here.
    recent: VecDeque<String>,
    span: tracing::Span,
}

/// Lines kept for [`GuestOutput::tail`].
const TAIL_LINES: usize = 10;

impl GuestOutput {
    pub fn new(name: &'static str, level: tracing::Level, budget: Arc<LogBudget>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LineBuffer {
                name,
                level,
                budget,
                line: Vec::new(),
                recent: VecDeque::new(),
                // Streams outlive the call that created them; remember the invocation span so
                // lines flushed late are still tagged.
                span: tracing::Span::current(),
            })),
        }
    }

    /// The last lines written, including a trailing partial line.
    pub fn tail(&self) -> Vec<String> {
        let buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines: Vec<String> = buf.recent.iter().cloned().collect();
        if !buf.line.is_empty() {
            lines.push(String::from_utf8_lossy(&buf.line).into_owned());
        }
        lines
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        buf.write(bytes);
    }
}

impl LineBuffer {
    fn write(&mut self, mut bytes: &[u8]) {
        if !self.budget.take(bytes.len()) {
            return;
        }
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.push(&bytes[..pos]);
            self.flush_line();
            bytes = &bytes[pos + 1..];
        }
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn flush_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = one_line(text.trim_end_matches('\r'), MAX_LINE);
        let _entered = self.span.enter();
        // Over the rate the line is not written, but it still counts for the tail that
        // explains a crash.
        if self.budget.allow_line() {
            emit(self.level, self.name, &text, "");
        }
        if self.recent.len() == TAIL_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(text);
        self.line.clear();
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.flush_line();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Writes are consumed synchronously, so any permit is fine; a modest one bounds the
        // size of each guest-to-host copy.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(64 << 10);
        self.write_bytes(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
