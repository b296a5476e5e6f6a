//! The reference meeting client: joins a conference through the edge (TLS or QUIC), sends
//! messages and prints what comes back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use webconf_connector::bundle::Bundle;
use webconf_connector::client::{Client, ClientError};

#[derive(Parser)]
#[command(about = "Reference meeting client for the edged Web Conferencing Edge")]
struct Cli {
    /// Demo bundle directory (supplies --edge, --server-name and --ca).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The edge's external address.
    #[arg(long)]
    edge: Option<SocketAddr>,
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA that issued the edge's certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Use QUIC instead of TLS over TCP.
    #[arg(long)]
    quic: bool,
    #[arg(long)]
    conference: String,
    /// The session key from the conferencing server (`webconf-connector mint`).
    #[arg(long)]
    token: String,
    #[arg(long, default_value = "hello from a meeting client")]
    message: String,
    #[arg(long, default_value_t = 1)]
    count: u32,
}

async fn run(cli: Cli) -> Result<Result<(), ClientError>> {
    let (edge, name, ca) = match &cli.bundle {
        Some(dir) => {
            let b = Bundle::load(dir)?;
            (b.external, b.server_name, b.ca_pem)
        }
        None => {
            let ca = cli.ca.as_ref().context("--ca (or --bundle) is required")?;
            (
                cli.edge.context("--edge (or --bundle) is required")?,
                cli.server_name.clone(),
                std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?,
            )
        }
    };
    let tls = webconf_connector::pem::client_config(&ca, None, &[])?;
    let client = Client::new(&tls, &name)?;
    let session = if cli.quic {
        client.connect_quic(edge, &cli.conference, &cli.token).await
    } else {
        client.connect_tls(edge, &cli.conference, &cli.token).await
    };
    let mut s = match session {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    println!("admitted as {}", s.role.as_str());
    for _ in 0..cli.count {
        s.send(cli.message.as_bytes()).await?;
        let back = s.recv_exact(cli.message.len()).await?;
        println!("{}", String::from_utf8_lossy(&back));
    }
    let code = s.close().await?;
    println!("closed: {code}");
    Ok(Ok(()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match run(Cli::parse()).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("refused: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
