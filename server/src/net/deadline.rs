//! A socket whose writes may not stall for longer than a deadline.
//!
//! hyper writes a response for as long as the client reads it; a client that stops reading
//! would hold its connection (and its place under the connection cap) for ever. Wrapped in
//! [`DeadlineIo`], a write that makes no progress for the deadline fails with `TimedOut`, and
//! the connection is closed. Once a connection is upgraded to a WebSocket its own writer
//! enforces the same deadline with a close code and a reason, so the wrapper stands down
//! ([`WriteDeadline::disarm`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Switches a [`DeadlineIo`]'s deadline off (after a WebSocket upgrade).
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteDeadline(Arc<AtomicBool>);

impl WriteDeadline {
    pub(crate) fn disarm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn disarmed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// An I/O stream whose writes fail with `TimedOut` after stalling for `deadline`.
#[derive(Debug)]
pub(crate) struct DeadlineIo<T> {
    inner: T,
    deadline: Duration,
    switch: WriteDeadline,
    /// Running while a write is stalled.
    stall: Option<Pin<Box<Sleep>>>,
}

impl<T> DeadlineIo<T> {
    pub(crate) fn new(inner: T, deadline: Duration, switch: WriteDeadline) -> DeadlineIo<T> {
        DeadlineIo {
            inner,
            deadline,
            switch,
            stall: None,
        }
    }

    /// Pass on what a write, flush or shutdown of the inner stream returned; while it returns
    /// `Pending`, run the stall timer, and fail with `TimedOut` once it fires.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let Poll::Ready(result) = polled {
            self.stall = None;
            return Poll::Ready(result);
        }
        if self.switch.disarmed() {
            self.stall = None;
            return Poll::Pending;
        }
        let deadline = self.deadline;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        ready!(stall.as_mut().poll(cx));
        self.stall = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for {} s",
                self.deadline.as_secs_f64()
            ),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}
