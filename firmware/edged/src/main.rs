//! edged: the edge-server appliance daemon.
//!
//! It wires and holds no protocol logic: load the configuration from the store (or a file,
//! or the embedded default), build the TLS material, start the enabled roles, drop root
//! privileges, serve the local admin API and the metrics endpoint, and react to signals
//! (SIGHUP reloads, SIGTERM drains).

mod admin;
mod cli;
mod daemon;
mod data_dir;
mod handover;
mod log_file;
mod logging;
mod metrics_http;
mod privileges;
mod process_hardening;
mod roles;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything else: no thread may exist yet (see process_hardening).
    let open_files = match process_hardening::apply() {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("edged: {e:#}");
            return ExitCode::from(1);
        }
    };
    // Still before the first thread, so every thread inherits it (edged_sandbox).
    if let Err(e) = edged_sandbox::ThreadClass::Process.install() {
        eprintln!("edged: {e}");
        return ExitCode::from(1);
    }
    let args = cli::parse();
    match daemon::run(args, open_files) {
        Ok(()) => ExitCode::SUCCESS,
        Err(daemon::RunError::Config(problems)) => {
            // One line per problem, each naming the key, then a summary: what an operator
            // needs to fix the document in one pass.
            for p in &problems.0 {
                eprintln!("edged: config: {p}");
            }
            eprintln!(
                "edged: refusing to start: {} configuration problem(s)",
                problems.0.len()
            );
            ExitCode::from(2)
        }
        Err(daemon::RunError::Other(e)) => {
            eprintln!("edged: {e:#}");
            ExitCode::from(1)
        }
    }
}
