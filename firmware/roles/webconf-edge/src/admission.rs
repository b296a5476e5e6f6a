//! The first frame: conference id and session key, checked before anything goes inside.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use session_key::wire::{self, ClientTransport, Hello, SessionHeader};
use session_key::{Claims, CloseCode};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::keys::unix_now;
use crate::limits::SlotGuard;
use crate::shared::Shared;

/// A session that passed admission: its stream to the conferencing server is open.
pub(crate) struct Admitted {
    pub claims: Claims,
    pub session_id: u64,
    pub to_server: webconf_link::SessionSend,
    pub from_server: webconf_link::SessionRecv,
    /// Bytes the client sent after its first frame (pipelined DATA frames).
    pub leftover: Vec<u8>,
    pub _conference_slot: SlotGuard<String>,
}

/// A refusal: the close code and the reason, as counted and logged inside the edge; what a
/// client is sent is [`CloseCode::for_client`] and [`CloseCode::client_reason`].
pub(crate) type Refusal = (CloseCode, String);

/// Reads the first frame from `client`, verifies the key, takes a conference slot, picks
/// the conferencing server and opens the session's stream to it. The caller bounds the
/// whole call with the first-frame deadline.
pub(crate) async fn admit<R: AsyncRead + Unpin>(
    shared: &Shared,
    client: &mut R,
    peer: SocketAddr,
    transport: ClientTransport,
) -> Result<Admitted, Refusal> {
    let (hello, leftover) = read_hello(client).await?;
    let keys = shared.keys.load();
    let settings = shared.settings.load();
    // The reason (key id, times) is for the debug log; the client is sent only
    // `CloseCode::for_client` of the code.
    let claims = keys
        .verify(
            &hello.token,
            &hello.conference_id,
            unix_now(),
            &settings.token_limits,
        )
        .map_err(|e| (CloseCode::for_verify_error(&e), e.to_string()))?;
    let slot = shared
        .limits
        .by_conference
        .try_take(
            claims.conference_id.clone(),
            settings.max_sessions_per_conference,
        )
        .ok_or_else(|| {
            (
                CloseCode::ConferenceLimit,
                format!(
                    "conference has {} sessions already",
                    settings.max_sessions_per_conference
                ),
            )
        })?;
    let server = shared.pool.pick(&claims.conference_id).ok_or_else(|| {
        (
            CloseCode::NoServer,
            "no conferencing server is connected".to_string(),
        )
    })?;
    let session_id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let header = SessionHeader {
        session_id,
        role: claims.role,
        transport,
        conference_id: claims.conference_id.clone(),
        peer: peer.to_string(),
    }
    .encode()
    .map_err(|e| (CloseCode::Internal, e.to_string()))?;
    let gone =
        |e: &dyn std::fmt::Display| (CloseCode::ServerGone, format!("conferencing server: {e}"));
    let (mut to_server, from_server) = server
        .link
        .open(webconf_link::SESSION_PATH)
        .await
        .map_err(|e| gone(&e))?;
    to_server.write_all(&header).await.map_err(|e| gone(&e))?;
    tracing::debug!(target: "webconf_edge", session_id, %peer, conference = %claims.conference_id,
        role = claims.role.as_str(), server = %server.peer, "session admitted");
    Ok(Admitted {
        claims,
        session_id,
        to_server,
        from_server,
        leftover,
        _conference_slot: slot,
    })
}

/// Reads until one whole HELLO is buffered; refuses garbage and oversize frames as soon as
/// their first bytes show it, without waiting for the rest.
async fn read_hello<R: AsyncRead + Unpin>(client: &mut R) -> Result<(Hello, Vec<u8>), Refusal> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        match wire::decode_hello(&buf) {
            Ok(Some((hello, used))) => {
                buf.drain(..used);
                return Ok((hello, buf));
            }
            Ok(None) => {}
            Err(e) => return Err((e.close_code(), e.to_string())),
        }
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|e| (CloseCode::MalformedFrame, format!("read: {e}")))?;
        if n == 0 {
            return Err((
                CloseCode::MalformedFrame,
                "client closed before its first frame".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
