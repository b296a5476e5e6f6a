//! The control side of the UDP listeners: STUN requests handed over by the relay threads,
//! answered from the listener shard they arrived on.

use std::net::SocketAddr;
use std::sync::Arc;

use edged_role::DrainToken;
use media_relay::ControlPacket;
use tokio::sync::mpsc::Receiver;

use crate::allocation::{ClientTransport, FiveTuple, Origin};
use crate::server::Server;

pub async fn run(
    server: Arc<Server>,
    mut rx: Receiver<ControlPacket>,
    listeners: Vec<SocketAddr>,
    stop: DrainToken,
) {
    loop {
        let packet = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = stop.cancelled() => break,
        };
        let Some(&server_addr) = listeners.get(packet.listener) else {
            continue;
        };
        let tuple = FiveTuple {
            transport: ClientTransport::Udp,
            client: packet.from,
            server: server_addr,
        };
        let origin = Origin::Plane {
            shard: packet.shard,
            listener: packet.listener,
        };
        let outcome = server.handle(&packet.bytes, tuple, origin);
        if let Some(reply) = outcome.reply {
            if let Err(e) =
                server
                    .plane
                    .send_from_listener(packet.shard, packet.listener, &reply, packet.from)
            {
                tracing::debug!(target: "av_edge", client = %packet.from, "cannot answer: {e}");
            }
        }
    }
}
