//! PING on an idle or busy link alike: a peer that stops answering is gone.

use crate::{LinkError, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};

/// Returns when the peer failed to answer a PING in time (or the link failed).
pub(crate) async fn run(mut pings: h2::PingPong) -> LinkError {
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return e.into(),
            Err(_) => return LinkError::KeepaliveTimeout(KEEPALIVE_TIMEOUT),
        }
    }
}
