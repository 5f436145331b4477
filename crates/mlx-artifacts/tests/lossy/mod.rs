//! A TCP proxy in front of the S3 server that loses one answer: the first multipart completion
//! (`POST …?uploadId=`) reaches the server and is carried out, and the client's connection is
//! closed as the answer comes back, as a dropped connection or a timed-out answer would.
//! object_store then sends the completion again, to a server that already completed it.
//!
//! HTTP/1.1 without pipelining: a request starts at the start of a read, since the client
//! sends it only once the previous answer has arrived, so the request line is found there.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

pub struct LossyProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl LossyProxy {
    /// Relays every connection to `upstream` (host:port).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let accept = tokio::spawn({
            let armed = armed.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream.clone(), armed.clone()));
                }
            }
        });
        Self {
            port,
            armed,
            accept,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether a completion has had its answer dropped.
    pub fn lost_an_answer(&self) -> bool {
        !self.armed.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: String, armed: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let doomed = Arc::new(AtomicBool::new(false));
    let up = {
        let doomed = doomed.clone();
        async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or_default();
                let completion =
                    line.starts_with(b"POST ") && line.windows(9).any(|w| w == b"uploadId=");
                if completion && armed.swap(false, Ordering::SeqCst) {
                    doomed.store(true, Ordering::SeqCst);
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // The server has done the work; the client never hears of it (both halves of its
            // connection are dropped on return).
            if doomed.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
