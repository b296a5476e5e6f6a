//! One Access Edge for `bench/run.sh`: loopback listeners, one next hop, and the certificate
//! files the load tools need (the appliance CA, the edge's own pair, a Director's pair).
//!
//! `sip_bench_edge DIR NEXT_HOP` prints `READY <remote-users address> <pid>` once listening
//! and runs until its standard input closes.

use edged_config::Config;
use edged_role::RoleContext;
use edged_store::Store;
use tokio::io::AsyncReadExt;

fn write(dir: &std::path::Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(next_hop)) = (args.next(), args.next()) else {
        return Err("usage: sip_bench_edge DIR NEXT_HOP".into());
    };
    let dir = std::path::PathBuf::from(dir);
    let store = Store::open(&dir.join("store.redb")).map_err(|e| e.to_string())?;
    let mut config = Config::embedded_default();
    config.webconf_edge.enabled = false;
    config.av_edge.enabled = false;
    config.av_auth.enabled = false;
    let ae = &mut config.access_edge;
    ae.remote_users_port = 0;
    ae.federation_port = 0;
    ae.internal_port = 0;
    ae.next_hops = vec![next_hop];
    // The load comes from one address: per-address limits would measure themselves.
    ae.connection_rate_per_ip = 1_000_000;
    ae.handshake_rate_per_ip = 1_000_000;
    ae.max_connections_per_ip = 1_000_000;
    ae.max_connections = 1_000_000;
    // sipp runs every call of a scenario over one connection.
    ae.remote_user_requests_per_sec = 1_000_000;
    ae.idle_timeout_secs = 3600;
    ae.health_check_interval_secs = 3600;
    let ctx = RoleContext::for_test_on(&store, config);
    write(&dir, "ca.pem", ctx.tls.ca_pem().unwrap_or_default())?;
    let cert: Option<String> = store
        .get_json("tls", "default.cert")
        .map_err(|e| e.to_string())?;
    let key: Option<String> = store
        .get_json("tls", "default.key")
        .map_err(|e| e.to_string())?;
    write(&dir, "edge.pem", &cert.unwrap_or_default())?;
    write(&dir, "edge.key", &key.unwrap_or_default())?;
    let director = edged_tls::issue_client_certificate(&store, "director", &["127.0.0.2".into()])
        .map_err(|e| e.to_string())?;
    write(&dir, "director.pem", &director.chain_pem)?;
    write(&dir, "director.key", &director.key_pem)?;
    let role = access_edge::start(ctx).await.map_err(|e| e.to_string())?;
    let addr = role
        .status()
        .listeners
        .iter()
        .find(|l| l.purpose.contains("remote users"))
        .map(|l| l.address.clone())
        .unwrap_or_default();
    println!("READY {addr} {}", std::process::id());
    let mut sink = [0u8; 64];
    while !matches!(tokio::io::stdin().read(&mut sink).await, Ok(0) | Err(_)) {}
    eprintln!("{:?}", role.status().counters);
    Ok(())
}
