//! The project's load generator through the relay: every packet of every flow arrives,
//! both ways, with its measurement stamp intact.

mod common;

use std::time::Duration;

use common::*;
use turn_load::client::Credentials as LoadCredentials;
use turn_load::run::{run, LoadConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_load_flows_arrive_without_loss() {
    let h = start(|av| av.max_allocations_per_user = 100).await;
    let cfg = LoadConfig {
        server: h.udp,
        credentials: LoadCredentials::LongTerm {
            user: USER.into(),
            password: PASSWORD.into(),
        },
        allocations: 20,
        rate_pps: 50,
        size: 172,
        duration: Duration::from_secs(1),
        client_ip: "127.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
        peer_ip: "127.0.0.3".parse().unwrap_or_else(|_| unreachable!()),
        sender_threads: 1,
        one_way: false,
    };
    let mut report = tokio::task::spawn_blocking(move || run(&cfg))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("turn-load: {e}"));
    assert_eq!(report.allocations, 20);
    for d in [&mut report.to_peer, &mut report.to_client] {
        assert!(d.sent >= 20 * 40, "too few packets sent: {}", d.sent);
        assert_eq!(d.received, d.sent, "loss through the relay");
        assert!(d.percentile(50.0).is_some());
    }
    h.role.drain(Duration::from_millis(10)).await;
}
