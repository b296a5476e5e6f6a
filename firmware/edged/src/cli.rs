//! Command-line arguments of the daemon.

use std::path::PathBuf;

use clap::Parser;

/// The edge-server appliance daemon.
#[derive(Debug, Parser)]
#[command(name = "edged", version, about)]
pub struct Args {
    /// Directory of the store (edged.redb); created if missing.
    #[arg(long, env = "EDGED_DATA_DIR", default_value = "/var/lib/edged")]
    pub data_dir: PathBuf,

    /// A configuration file (TOML). When given it is the source of truth: it is validated
    /// and committed to the store at start and on every reload. Without it the store's
    /// configuration is used, or the embedded default on first start.
    #[arg(long, env = "EDGED_CONFIG")]
    pub config: Option<PathBuf>,

    /// Unix socket of the local admin API (edgectl, web page).
    #[arg(
        long,
        env = "EDGED_ADMIN_SOCKET",
        default_value = "/run/edged/admin.sock"
    )]
    pub admin_socket: PathBuf,

    /// Validate the configuration (file, or store) and exit: 0 when valid, 2 with one line
    /// per problem otherwise.
    #[arg(long)]
    pub check: bool,

    /// Print the embedded default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,

    /// Write the log to this file instead of stderr (not to journald either), rotated to
    /// `<file>.1` when it reaches --log-file-max-bytes: at most twice that on disk.
    #[arg(long, env = "EDGED_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// The size at which --log-file is rotated.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub log_file_max_bytes: u64,

    /// Print where each role listens and how to try it, once all roles are up.
    #[arg(long)]
    pub banner: bool,
}

pub fn parse() -> Args {
    Args::parse()
}
