//! Client commands ride out a server they briefly cannot reach (a restart, a failover, a network
//! blip): a call that fails because the server is unreachable is made again with backoff for
//! [`RETRY_WINDOW`], saying so on stderr. Past the window the command gives up with
//! [`UNREACHABLE`], so a script can tell "the server is gone" from "the run failed" (1).
//! Anything else the server answers (not found, refused, a failed run) is not retried.

use std::{
    error::Error,
    future::Future,
    time::{Duration, Instant},
};

use temporalio_client::{
    errors::{
        ClientConnectError, ClientError, WorkflowGetResultError, WorkflowInteractionError,
        WorkflowQueryError, WorkflowStartError, WorkflowUpdateError,
    },
    schedules::ScheduleError,
    tonic::{self, Code},
};

use super::CliError;

/// How long a command keeps trying a server it cannot reach. A dev server restarts in
/// seconds, a production frontend rolls or fails over in well under a minute; two minutes
/// covers those with margin, while an operator or CI job still learns soon enough that the
/// server is really gone.
pub const RETRY_WINDOW: Duration = Duration::from_secs(120);

/// Exit status of a command that gave up on an unreachable server: sysexits' EX_UNAVAILABLE,
/// apart from 1 (the run failed, or the server refused), 2 (a wrong request) and 130.
pub const UNREACHABLE: u8 = 69;

/// The SDK retries each call quietly on its own (10 s by default) before an error reaches
/// us; kept short so that [`patiently`] says on stderr, within seconds, why nothing happens.
pub const SDK_RETRY_WINDOW: Duration = Duration::from_secs(2);

/// How long to keep trying, and the pauses between tries.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    window: Duration,
    first: Duration,
    longest: Duration,
}

/// Half a second doubling up to five: a restart is noticed within seconds of its end, and a
/// server that is coming back is not hammered. One person's command, not a fleet: no jitter.
const BACKOFF: Backoff = Backoff {
    window: RETRY_WINDOW,
    first: Duration::from_millis(500),
    longest: Duration::from_secs(5),
};

/// Runs `call` until it succeeds, fails for a reason other than an unreachable server, or the
/// server stays unreachable for [`RETRY_WINDOW`]. Each try is announced on stderr; `call` must
/// be safe to repeat (reads, or requests the server deduplicates by id).
pub async fn patiently<T, F, Fut>(call: F) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CliError>>,
{
    patiently_with(BACKOFF, call).await
}

async fn patiently_with<T, F, Fut>(backoff: Backoff, mut call: F) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CliError>>,
{
    let window = backoff.window;
    let mut since: Option<Instant> = None;
    let mut pause = backoff.first;
    loop {
        match call().await {
            Err(e @ CliError::Unreachable { .. }) => {
                let told = since.is_some();
                let first = *since.get_or_insert_with(Instant::now);
                let waited = first.elapsed();
                if waited >= window {
                    eprintln!(
                        "server still unreachable after {} s; giving up",
                        waited.as_secs()
                    );
                    return Err(e);
                }
                let notice = format!(
                    "server unreachable, retrying ({} s of {} s)…",
                    waited.as_secs(),
                    window.as_secs()
                );
                // The cause once; then only the time, one line per try.
                if !told {
                    eprintln!("{notice}: {e}");
                } else {
                    eprintln!("{notice}");
                }
                tokio::time::sleep(pause.min(window - waited)).await;
                pause = (pause * 2).min(backoff.longest);
            }
            done => {
                if let (Some(first), Ok(_)) = (since, &done) {
                    eprintln!(
                        "server reachable again after {} s",
                        first.elapsed().as_secs()
                    );
                }
                return done;
            }
        }
    }
}

/// Whether `error` (or anything in its chain) says the server could not be reached, as opposed
/// to an answer from it. The SDK's error enums keep their gRPC status out of `source()`, so
/// each is looked into by name.
pub fn is_unreachable(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(status) = rpc_status(e) {
            // Tonic maps a refused or reset connection to Unavailable, and so does a server
            // that is up but cannot serve yet. Any other code is the server's answer, unless the
            // status carries a lost connection as its cause.
            if status.code() == Code::Unavailable {
                return true;
            }
            next = status.source();
            continue;
        }
        let lost = match e.downcast_ref::<ClientConnectError>() {
            Some(ClientConnectError::SystemInfoCallError(status)) => {
                status.code() == Code::Unavailable
            }
            _ => false,
        } || e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| is_connection_loss(io.kind()))
            // The server went away in the middle of a call.
            || e
                .downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_closed() || h.is_incomplete_message());
        if lost {
            return true;
        }
        next = e.source();
    }
    false
}

/// A refused connection or one lost on the way; not DNS or TLS failures, which a retry would
/// only repeat.
fn is_connection_loss(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// The gRPC status an SDK error carries, if it is one of the SDK's errors that wrap one.
fn rpc_status<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a tonic::Status> {
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        return Some(status);
    }
    if let Some(WorkflowInteractionError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(WorkflowQueryError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(WorkflowUpdateError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(WorkflowStartError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(WorkflowGetResultError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(ScheduleError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(ClientError::Rpc(s)) = e.downcast_ref() {
        return Some(s);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::temporal::worker::{self, WorkerError};

    fn unavailable() -> tonic::Status {
        tonic::Status::unavailable("tcp connect error")
    }

    #[test]
    fn an_unavailable_server_is_retried_and_its_answers_are_not() {
        let boxed = |e: Box<dyn Error + Send + Sync>| is_unreachable(&*e);
        assert!(boxed(Box::new(unavailable())));
        assert!(boxed(Box::new(
            WorkflowInteractionError::Rpc(unavailable())
        )));
        assert!(boxed(Box::new(WorkflowQueryError::Rpc(unavailable()))));
        assert!(boxed(Box::new(WorkflowUpdateError::Rpc(unavailable()))));
        assert!(boxed(Box::new(WorkflowStartError::Rpc(unavailable()))));
        assert!(boxed(Box::new(WorkflowGetResultError::Rpc(unavailable()))));
        assert!(boxed(Box::new(ScheduleError::Rpc(unavailable()))));
        assert!(boxed(Box::new(ClientError::Rpc(unavailable()))));
        assert!(boxed(Box::new(ClientConnectError::SystemInfoCallError(
            unavailable()
        ))));
        // A connection lost mid-call comes back as Unknown, with the cause kept.
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = tonic::Status::from_error(Box::new(reset));
        assert_eq!(status.code(), Code::Unknown);
        assert!(boxed(Box::new(WorkflowInteractionError::Rpc(status))));

        // The server's answers, and local failures a retry would only repeat.
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::DeadlineExceeded,
            Code::Unknown,
        ] {
            let status = tonic::Status::new(code, "no");
            assert!(
                !boxed(Box::new(WorkflowInteractionError::Rpc(status))),
                "{code:?}"
            );
        }
        assert!(!boxed("workflow `x` not found".into()));
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad certificate");
        assert!(!boxed(Box::new(tls)));
    }

    #[test]
    fn an_unreachable_server_has_its_own_exit_status() {
        let e = CliError::temporal(
            "describing `x`",
            WorkflowInteractionError::Rpc(unavailable()),
        );
        assert!(matches!(e, CliError::Unreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), UNREACHABLE);
        assert!(e.to_string().contains("server unreachable"), "{e}");
        let e = CliError::temporal("describing `x`", "the server said no");
        assert_eq!(e.exit_code(), 1);
        // The numbers the --help of the client commands gives.
        for status in [
            format!(
                "{UNREACHABLE} the server stayed unreachable for {} s",
                RETRY_WINDOW.as_secs()
            ),
            "1 a followed run failed".into(),
            "2 a wrong request".into(),
        ] {
            assert!(super::super::EXIT_STATUS.contains(&status), "{status}");
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = crate::config::TemporalConfig {
            address: Some(format!("127.0.0.1:{port}")),
            ..Default::default()
        };
        match worker::connect(&settings).await {
            Err(WorkerError::Connect { source, .. }) => {
                assert!(is_unreachable(&*source), "{source:?}")
            }
            other => panic!("connected to a closed port: {:?}", other.map(|_| ())),
        }
    }

    const NOW: Backoff = Backoff {
        window: Duration::from_secs(60),
        first: Duration::ZERO,
        longest: Duration::ZERO,
    };

    fn unreachable() -> CliError {
        CliError::temporal("describing `x`", unavailable())
    }

    #[tokio::test]
    async fn calls_are_repeated_while_the_server_is_unreachable() {
        let calls = Cell::new(0);
        let answer = patiently_with(NOW, || async {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(unreachable())
            } else {
                Ok("up")
            }
        })
        .await;
        assert_eq!(answer.unwrap(), "up");
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn other_failures_are_not_repeated() {
        let calls = Cell::new(0);
        let answer: Result<(), _> = patiently_with(NOW, || async {
            calls.set(calls.get() + 1);
            Err(CliError::NotFound("workflow `x`".into()))
        })
        .await;
        assert!(matches!(answer, Err(CliError::NotFound(_))));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn past_the_window_the_command_gives_up() {
        let calls = Cell::new(0);
        let gone = Backoff {
            window: Duration::ZERO,
            ..NOW
        };
        let answer: Result<(), _> = patiently_with(gone, || async {
            calls.set(calls.get() + 1);
            Err(unreachable())
        })
        .await;
        assert_eq!(answer.unwrap_err().exit_code(), UNREACHABLE);
        assert_eq!(calls.get(), 1);
    }
}
