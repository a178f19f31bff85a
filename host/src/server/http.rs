//! Accepting and serving connections, with the limits a service exposed to hostile clients
//! needs: at most `limits.max_connections` at once (one more is answered 503 at once and
//! closed, so it holds no descriptor), a request head must arrive whole within
//! `limits.header_timeout` of its first byte (hyper's timer), and a connection that says
//! nothing for that long with no request in flight (a silent client, an idle keep-alive) is
//! closed (`quiet`). A flood of silent or half-open connections therefore holds the cap for
//! at most the timeout, and `GET /v1/health` answers again after it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::quiet::{InFlight, Quiet};
use crate::config::Limits;

/// The body a connection over the cap gets before it is closed.
const OVER_CAPACITY: &str = r#"{"error":{"code":"unavailable","message":"the server has as many connections as it takes; try again"}}"#;

/// The whole answer to a connection over the cap, its length counted.
fn over_capacity() -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OVER_CAPACITY}",
        OVER_CAPACITY.len()
    )
    .into_bytes()
}

/// Resolves once `stop` turns true (the guard `wait_for` returns is not `Send`: it is
/// dropped here, not held by the accept loop).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `app` on `listener` until `stop` turns true, then lets open requests finish for up
/// to `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(super::head::HYPER_MAX_HEADERS);
    // HTTP/2 connections are ended by their keep-alive: a ping every header_timeout, and no
    // answer within hyper's ping timeout closes it (`quiet` alone does not end one that has
    // sent only its preface).
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(limits.header_timeout));
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let service = TowerToHyperService::new(app);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept: the
                    // listener is fine; pause a moment rather than spin.
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        if open.load(Ordering::Acquire) >= limits.max_connections.get() {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(&over_capacity())).await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight::default();
        let counting = in_flight.clone();
        let app = service.clone();
        let counted = hyper::service::service_fn(move |request| {
            let handling = counting.start();
            let answer = hyper::service::Service::call(&app, request);
            async move {
                let answer = answer.await;
                drop(handling);
                answer
            }
        });
        let io = TokioIo::new(Quiet::new(stream, in_flight, limits.header_timeout));
        let connection = builder.serve_connection_with_upgrades(io, counted);
        let watched = graceful.watch(connection.into_owned());
        let open = open.clone();
        tokio::spawn(async move {
            // A client that goes away mid-request is not the server's error.
            let _ = watched.await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_over_capacity_answer_says_its_true_length() {
        let answer = String::from_utf8(super::over_capacity()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{answer}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["error"]["code"], "unavailable");
    }
}
