//! The conferencing server's side: it has connected to the edge and passed the
//! mutual-TLS handshake; it runs HTTP/2 as the server and takes the streams the edge opens.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::{
    keepalive, LinkError, Pieces, SessionRecv, SessionSend, LINK_WINDOW, MAX_FRAME, MAX_STREAMS,
    STREAM_WINDOW,
};

/// Streams taken but not yet handed to the application. Beyond this the edge is told to
/// retry elsewhere (REFUSED_STREAM) instead of the link buffering without bound.
const BACKLOG: usize = 1024;

/// One stream the edge opened.
pub struct IncomingStream {
    /// [`crate::CONTROL_PATH`] or [`crate::SESSION_PATH`].
    pub path: String,
    pub send: SessionSend,
    pub recv: SessionRecv,
}

/// Runs HTTP/2 on `io`. Returns the streams the edge opens, in order, and the driver that
/// moves the link's bytes and answers for its keep-alive. The caller spawns the driver; it
/// ends, with the reason, when the link is gone, and dropping it closes the connection
/// (every stream then fails on both sides).
pub async fn handshake<T>(
    io: T,
) -> Result<
    (
        mpsc::Receiver<IncomingStream>,
        impl Future<Output = LinkError> + Send,
    ),
    LinkError,
>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(LINK_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(MAX_STREAMS)
        .handshake::<T, Pieces>(io)
        .await?;
    let pings = connection
        .ping_pong()
        .ok_or_else(|| LinkError::Protocol("keep-alive handle already taken".into()))?;
    let (streams, incoming) = mpsc::channel(BACKLOG);
    let driver = async move {
        let keepalive = keepalive::run(pings);
        tokio::pin!(keepalive);
        loop {
            tokio::select! {
                next = connection.accept() => match next {
                    None => return LinkError::Closed,
                    Some(Err(e)) => return e.into(),
                    Some(Ok((request, mut respond))) => {
                        let path = request.uri().path().to_owned();
                        // Taken at once: the edge's open() completes and its bytes flow
                        // while the application gets to the stream.
                        let Ok(send) = respond.send_response(http::Response::new(()), false) else {
                            continue;
                        };
                        let stream = IncomingStream {
                            path,
                            send: SessionSend::new(send),
                            recv: SessionRecv::new(request.into_body()),
                        };
                        if let Err(mpsc::error::TrySendError::Full(mut s)) = streams.try_send(stream) {
                            s.send.reset(u32::from(h2::Reason::REFUSED_STREAM));
                        }
                    }
                },
                e = &mut keepalive => return e,
                // Nobody takes streams any more: close the link.
                _ = streams.closed() => return LinkError::Closed,
            }
        }
    };
    Ok((incoming, driver))
}
