//! The edge's side. A conferencing server has connected and passed the mutual-TLS
//! handshake; the edge runs HTTP/2 over it as the client, since it opens the streams.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    keepalive, LinkError, Pieces, SessionRecv, SessionSend, LINK_WINDOW, MAX_FRAME, STREAM_WINDOW,
};

/// Opens streams on one link. Clones share the link.
#[derive(Clone)]
pub struct EdgeLink {
    requests: h2::client::SendRequest<Pieces>,
}

/// Runs HTTP/2 on `io`. Returns the link and its driver: the future that moves the link's
/// bytes and answers for its keep-alive. The caller spawns the driver; it ends, with the
/// reason, when the link is gone, and dropping it closes the connection.
pub async fn handshake<T>(
    io: T,
) -> Result<(EdgeLink, impl Future<Output = LinkError> + Send), LinkError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (requests, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(LINK_WINDOW)
        .max_frame_size(MAX_FRAME)
        .enable_push(false)
        .handshake::<T, Pieces>(io)
        .await?;
    let pings = connection
        .ping_pong()
        .ok_or_else(|| LinkError::Protocol("keep-alive handle already taken".into()))?;
    let driver = async move {
        tokio::select! {
            r = connection => match r {
                Ok(()) => LinkError::Closed,
                Err(e) => e.into(),
            },
            e = keepalive::run(pings) => e,
        }
    };
    Ok((EdgeLink { requests }, driver))
}

impl EdgeLink {
    /// Opens a stream at `path` and waits until the conferencing server has taken it.
    pub async fn open(&self, path: &str) -> Result<(SessionSend, SessionRecv), LinkError> {
        // Waits here while the server's stream limit is reached.
        let mut requests = self.requests.clone().ready().await?;
        let request = http::Request::post(format!("https://edge{path}"))
            .body(())
            .map_err(|e| LinkError::Protocol(e.to_string()))?;
        let (response, send) = requests.send_request(request, false)?;
        let response = response.await?;
        if response.status() != http::StatusCode::OK {
            return Err(LinkError::Protocol(format!(
                "the conferencing server refused the stream: {}",
                response.status()
            )));
        }
        Ok((
            SessionSend::new(send),
            SessionRecv::new(response.into_body()),
        ))
    }
}
