//! How long a connection may stay quiet: a client that sends nothing (not even the first
//! byte of a request) while no request of its is being answered is closed after
//! `limits.header_timeout`. hyper's own header timeout starts only with a request's first
//! byte, so without this a connection that never speaks, or a keep-alive connection left
//! idle, would hold one of the `max_connections` places for ever: enough of them lock every
//! client out.
//!
//! A client that takes none of its answer for as long (writes cannot go on) is closed too.
//!
//! **Invariant:** a connection is never cut while one of its requests is being handled (a
//! long poll waits as long as it asks) or while its answer is still being taken by the
//! client: only reading with nothing in flight, or a write that cannot go on, for the whole
//! timeout, ends it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Requests of one connection being handled now; [`Handling`] counts one while it lives.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// One request being handled (from its head to its answer's head).
pub struct Handling(Arc<AtomicUsize>);

impl InFlight {
    pub fn start(&self) -> Handling {
        self.0.fetch_add(1, Ordering::AcqRel);
        Handling(self.0.clone())
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection that ends itself (a read error, `TimedOut`) after `limit` of quiet.
pub struct Quiet<S> {
    inner: S,
    in_flight: InFlight,
    limit: Duration,
    /// Running while the connection is quiet with nothing in flight.
    timer: Option<Pin<Box<Sleep>>>,
    /// Running while an answer waits for a client that does not take it.
    stalled: Option<Pin<Box<Sleep>>>,
}

/// Starts `timer` (`limit`) if it is not running, and ends the connection (`TimedOut`,
/// `why`) once it has run out; pending until then, woken when it does.
fn expire<T>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    cx: &mut Context<'_>,
    why: &str,
) -> Poll<io::Result<T>> {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why.to_owned()))),
        Poll::Pending => Poll::Pending,
    }
}

impl<S> Quiet<S> {
    pub fn new(inner: S, in_flight: InFlight, limit: Duration) -> Self {
        Quiet { inner, in_flight, limit, timer: None, stalled: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Quiet<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(done) => {
                this.timer = None;
                Poll::Ready(done)
            }
            Poll::Pending if this.in_flight.any() => {
                this.timer = None;
                Poll::Pending
            }
            Poll::Pending => {
                expire(&mut this.timer, this.limit, cx, "the client sent no request within header_timeout")
            }
        }
    }
}

impl<S> Quiet<S> {
    /// After a write: progress clears both timers; a write that cannot go on (the client
    /// takes nothing) ends the connection once it has waited `limit`.
    fn wrote<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
        progress: bool,
    ) -> Poll<io::Result<T>> {
        match written {
            Poll::Ready(done) => {
                if progress {
                    self.timer = None;
                }
                self.stalled = None;
                Poll::Ready(done)
            }
            Poll::Pending => {
                let limit = self.limit;
                expire(
                    &mut self.stalled,
                    limit,
                    cx,
                    "the client took none of its answer within header_timeout",
                )
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Quiet<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        let progress = matches!(written, Poll::Ready(Ok(n)) if n > 0);
        self.wrote(cx, written, progress)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let progress = matches!(written, Poll::Ready(Ok(n)) if n > 0);
        self.wrote(cx, written, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
