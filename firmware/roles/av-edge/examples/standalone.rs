//! The A/V Edge alone, for benchmarks and manual tests: one UDP/TCP listener pair on a
//! loopback address, one long-term user, everything else at its defaults.
//!
//! `standalone <udp addr> <user> <password> <realm> <relay threads> [allowed range...]`
//!
//! `EDGED_RELAY_PACING_US` and `EDGED_RELAY_PACING_MAX_US` override
//! `av_edge.relay_pacing_us` and `av_edge.relay_pacing_max_us`.

use std::net::SocketAddr;

use av_edge::credentials::Credentials;
use edged_config::Config;
use edged_role::RoleContext;

fn usage() -> ! {
    eprintln!(
        "usage: standalone <udp addr> <user> <password> <realm> <relay threads> [allowed range...]"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        usage();
    }
    let Ok(udp) = args[0].parse::<SocketAddr>() else {
        usage()
    };
    let Ok(threads) = args[4].parse::<usize>() else {
        usage()
    };
    edged_tls::install_crypto_provider();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("standalone: {e}");
            std::process::exit(1)
        }
    };
    let run = async {
        let store =
            edged_store::Store::open(&dir.path().join("store.redb")).map_err(|e| e.to_string())?;
        let mut config = Config::embedded_default();
        config.access_edge.enabled = false;
        config.webconf_edge.enabled = false;
        config.av_auth.enabled = false;
        config.metrics.enabled = false;
        config.network.external.address = udp.ip();
        let av = &mut config.av_edge;
        av.udp_port = udp.port();
        av.tcp_port = udp.port();
        av.tls_port = 0;
        av.realm = args[3].clone();
        av.relay_threads = threads;
        av.demo_user = false;
        av.max_allocations = 200_000;
        av.max_allocations_per_user = 200_000;
        av.unauthenticated_rate_per_sec = 1_000_000;
        av.allowed_peer_ranges = args[5..].to_vec();
        // Benchmarks compare pacing settings without a config file.
        if let Some(us) = std::env::var("EDGED_RELAY_PACING_US")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            av.relay_pacing_us = us;
            av.relay_pacing_max_us = av.relay_pacing_max_us.max(us);
        }
        if let Some(us) = std::env::var("EDGED_RELAY_PACING_MAX_US")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            av.relay_pacing_max_us = us;
        }
        config.validate().map_err(|e| e.to_string())?;
        Credentials::open(store.clone())
            .and_then(|c| c.put_user(&args[1], &args[3], &args[2], edged_role::Actor::Edged))
            .map_err(|e| e.to_string())?;
        let role = av_edge::start(RoleContext::for_test_on(&store, config))
            .await
            .map_err(|e| e.to_string())?;
        for l in role.status().listeners {
            println!("listening {} {} {}", l.side, l.transport, l.address);
        }
        let _ = tokio::signal::ctrl_c().await;
        role.drain(std::time::Duration::from_millis(100)).await;
        Ok::<(), String>(())
    };
    if let Err(e) = run.await {
        eprintln!("standalone: {e}");
        std::process::exit(1);
    }
}
