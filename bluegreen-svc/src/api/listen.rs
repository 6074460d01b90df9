//! The HTTP server loop: what `axum::serve` does, plus the bounds it lacks — a
//! header-read timeout (a client that never finishes its headers is disconnected) and a
//! cap on open connections (one more is answered 503 at once and closed, instead of
//! exhausting the process's descriptors). HTTP/1.1 only, like the API's clients.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::telemetry;

/// The server's connection bounds.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub connections_max: usize,
    /// On shutdown, how long open connections may finish their requests.
    pub drain: Duration,
}

/// Over-cap connections answered at once (each within [`REFUSE_WITHIN`]); beyond that
/// they are closed without an answer.
const REFUSING_MAX: usize = 64;
const REFUSE_WITHIN: Duration = Duration::from_secs(1);
/// Most bytes read from a refused connection before it is closed.
const REFUSE_READ_MAX: usize = 64 * 1024;
/// Pause after a failed accept (e.g. EMFILE), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

const REFUSAL_BODY: &str = "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the server is at its connection cap\",\"field\":null}}";

/// The whole answer to a connection over the cap.
fn refusal() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
}

/// Serve `router` on `listener` until `shutdown` resolves, then let open connections
/// finish (up to `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.connections_max));
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            telemetry::connection_refused();
            if let Ok(slot) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(slot);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!("connections still open after the drain time; closing them");
        }
    }
    Ok(())
}

/// Answer 503 to a connection over the cap: read the request's head first (an HTTP
/// client treats an answer that comes before its request as a broken connection), then
/// answer and close, reading what else the client sends until it closes (closing with
/// unread data would reset the connection). All bounded by [`REFUSE_WITHIN`] and
/// [`REFUSE_READ_MAX`].
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSE_WITHIN, async {
        let mut buf = vec![0u8; 4096];
        let mut head: Vec<u8> = Vec::new();
        while head.len() < REFUSE_READ_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await? {
                0 => return Ok(()),
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        stream.write_all(refusal().as_bytes()).await?;
        stream.shutdown().await?;
        let mut read = head.len();
        while read < REFUSE_READ_MAX {
            match stream.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_answer() {
        let text = refusal();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections");
    }
}
