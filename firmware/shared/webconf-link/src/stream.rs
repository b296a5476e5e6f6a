//! The two halves of one stream, with the same shape on both sides of the link.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::{LinkError, Pieces};

/// The sending half. Sends wait for flow-control credit, so a peer that does not read
/// holds the sender back instead of growing a buffer.
pub struct SessionSend {
    inner: h2::SendStream<Pieces>,
}

impl SessionSend {
    pub(crate) fn new(inner: h2::SendStream<Pieces>) -> Self {
        Self { inner }
    }

    /// Sends `data`, in pieces as the peer's window allows.
    pub async fn send(&mut self, data: Bytes) -> Result<(), LinkError> {
        self.send_pieces(data.into()).await
    }

    /// Sends several pieces as if they were one buffer, without joining them.
    pub async fn send_pieces(&mut self, mut data: Pieces) -> Result<(), LinkError> {
        while !data.is_empty() {
            self.inner.reserve_capacity(data.len());
            let mut credit = self.inner.capacity();
            while credit == 0 {
                credit = match poll_fn(|cx| self.inner.poll_capacity(cx)).await {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(LinkError::Closed),
                };
            }
            let piece = data.split_to(credit.min(data.len()));
            self.inner.send_data(piece, false)?;
        }
        Ok(())
    }

    /// Copies `data` and sends it.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        self.send(Bytes::copy_from_slice(data)).await
    }

    /// Ends this direction normally (the peer reads the end of the stream).
    pub fn finish(&mut self) -> Result<(), LinkError> {
        self.inner.send_data(Pieces::new(), true)?;
        Ok(())
    }

    /// Ends the whole stream, both directions, with `code` (the peer's reads and sends
    /// fail with [`LinkError::Reset`]).
    pub fn reset(&mut self, code: u32) {
        self.inner.send_reset(h2::Reason::from(code));
    }
}

/// The receiving half.
pub struct SessionRecv {
    inner: h2::RecvStream,
    /// Received but not yet read by the owner.
    pending: Bytes,
}

impl SessionRecv {
    pub(crate) fn new(inner: h2::RecvStream) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
        }
    }

    /// The next received bytes as they arrived (no copy); `None` at the end of the stream.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, LinkError> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The next received piece if there is one, registering `cx` for wake-up if not.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, LinkError>> {
        loop {
            return match self.inner.poll_data(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Ok(None)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e.into())),
                // An empty DATA frame (the end-of-stream marker) carries nothing to read.
                Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
                Poll::Ready(Some(Ok(b))) => {
                    // The bytes are ours now: give the peer its credit back.
                    let _ = self.inner.flow_control().release_capacity(b.len());
                    Poll::Ready(Ok(Some(b)))
                }
            };
        }
    }

    /// Reads into `buf`; `None` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads into `buf` if bytes are there, registering `cx` for wake-up if not.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<Option<usize>, LinkError>> {
        if self.pending.is_empty() {
            match self.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(b))) => self.pending = b,
                Poll::Ready(other) => return Poll::Ready(other.map(|_| None)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Poll::Ready(Ok(Some(n)))
    }
}
