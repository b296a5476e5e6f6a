//! The reference conferencing-server connector: connects out to the edge's internal port,
//! registers conferences and echoes every client session; also mints session keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use session_key::{KeyRing, ParticipantRole, SessionSecret};
use webconf_connector::bundle::{read_keys_file, Bundle};
use webconf_connector::connector::Connector;

#[derive(Parser)]
#[command(about = "Reference conferencing-server connector for the edged Web Conferencing Edge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the edge, register conferences, echo every client session.
    Serve(ServeArgs),
    /// Print a session key for a participant.
    Mint(MintArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Directory the edge wrote with `webconf_edge.connector_bundle_dir` (supplies every
    /// other option).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The edge's internal address (TCP, mutual TLS).
    #[arg(long)]
    edge: Option<SocketAddr>,
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA that issued the edge's certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// This server's certificate chain (PEM), issued by a CA the edge trusts internally.
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    /// Conferences hosted here (repeat); none: serve any conference as a pool member.
    #[arg(long = "conference")]
    conferences: Vec<String>,
    /// Keep this key-ring file up to date with the keys the edge pushes (at connect and at
    /// every rotation), for `mint --keys-file`. Written whole and renamed into place, 0600.
    #[arg(long)]
    keys_out: Option<PathBuf>,
}

#[derive(Args)]
struct MintArgs {
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Key-ring file (JSON array of {id, secret_hex, created_at}).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// A single shared secret in hex, with --key-id.
    #[arg(long)]
    key_hex: Option<String>,
    #[arg(long, default_value_t = 1)]
    key_id: u32,
    #[arg(long)]
    conference: String,
    #[arg(long, default_value = "attendee")]
    role: ParticipantRole,
    #[arg(long, default_value_t = 3600)]
    lifetime_secs: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read(p: &Option<PathBuf>, what: &str) -> Result<String> {
    let p = p
        .as_ref()
        .with_context(|| format!("--{what} (or --bundle) is required"))?;
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

async fn serve(a: ServeArgs) -> Result<()> {
    let (edge, name, ca, cert, key) = match &a.bundle {
        Some(dir) => {
            let b = Bundle::load(dir)?;
            (b.internal, b.server_name, b.ca_pem, b.cert_pem, b.key_pem)
        }
        None => (
            a.edge.context("--edge (or --bundle) is required")?,
            a.server_name.clone(),
            read(&a.ca, "ca")?,
            read(&a.cert, "cert")?,
            read(&a.key, "key")?,
        ),
    };
    let tls = webconf_connector::pem::client_config(
        &ca,
        Some((&cert, &key)),
        &[session_key::wire::ALPN_INTERNAL],
    )?;
    let c = Connector::connect(edge, &name, tls, &a.conferences).await?;
    if let Some(path) = a.keys_out.clone() {
        let mut updates = c.key_updates();
        tokio::spawn(async move {
            loop {
                let ring = updates.borrow_and_update().clone();
                if let Some(ring) = ring {
                    match write_keys_file(&path, &ring.records()) {
                        Ok(()) => eprintln!("session keys written to {}", path.display()),
                        Err(e) => eprintln!("webconf-connector: {e:#}"),
                    }
                }
                if updates.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    eprintln!(
        "connected to {} ; hosting {} ; echoing client sessions (Ctrl-C to stop)",
        c.remote_address(),
        if a.conferences.is_empty() {
            "any conference".to_string()
        } else {
            a.conferences.join(", ")
        }
    );
    tokio::select! {
        e = c.serve_echo() => bail!("connection to the edge ended: {e}"),
        _ = tokio::signal::ctrl_c() => { c.close().await; Ok(()) }
    }
}

/// Writes the ring as `mint --keys-file` reads it: a temporary file beside the target,
/// owner-only, renamed over it, so a concurrent `mint` reads the old ring or the new one.
fn write_keys_file(path: &std::path::Path, keys: &[SessionSecret]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(keys)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn mint(a: MintArgs) -> Result<()> {
    let records: Vec<SessionSecret> = if let Some(dir) = &a.bundle {
        Bundle::load(dir)?.keys
    } else if let Some(f) = &a.keys_file {
        read_keys_file(f)?
    } else if let Some(hex) = &a.key_hex {
        let secret = session_key::keyring::from_hex(hex).context("--key-hex is not hex")?;
        vec![SessionSecret::new(a.key_id, &secret, now())?]
    } else {
        bail!("one of --bundle, --keys-file or --key-hex is required");
    };
    let ring = KeyRing::from_records(records)?;
    println!(
        "{}",
        ring.mint(&a.conference, a.role, a.lifetime_secs, now())?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match Cli::parse().command {
        Command::Serve(a) => serve(a).await,
        Command::Mint(a) => mint(a),
    }
}
