//! edgectl: administer a running edged through its local admin API.
//!
//! Every error is one line on stderr and a non-zero exit; a refused change leaves the
//! running configuration untouched (edged validates the whole document before committing).

mod answer;
mod client;
mod clock;
mod render;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edged_admin_api::{
    Alive, CommitResult, ConfigDocument, ConfigUpload, LogLevelRequest, LogLevels, SetRequest,
    Status, ValidateResult,
};

use crate::client::{Client, ClientError};

#[derive(Debug, Parser)]
#[command(
    name = "edgectl",
    version,
    about = "Administer a running edged appliance daemon"
)]
struct Cli {
    /// The admin socket of edged.
    #[arg(
        long,
        env = "EDGED_ADMIN_SOCKET",
        default_value = "/run/edged/admin.sock",
        global = true
    )]
    socket: PathBuf,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Roles, listeners, health and counters.
    Status,
    /// Whether edged answers at all (its roles are not asked): what the watchdog probes.
    Alive,
    /// Read, change, check, export or import the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Re-read the configuration file (if edged runs from one) and certificates, and apply.
    Reload,
    /// Show the log levels, or set the default level or one role's level.
    LogLevel {
        /// A role (access_edge, webconf_edge, av_edge, av_auth, media_relay, edged, store) or a level.
        first: Option<String>,
        /// The level when a role was given: error, warn, info, debug, trace, off.
        second: Option<String>,
    },
    /// The newest entries of the audit log.
    Audit {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A role-specific query (a plural noun, e.g. `edgectl role access_edge domains`), or
    /// with --action an action (verb-noun, e.g. `block-domain`).
    Role {
        role: String,
        what: String,
        /// Run it as an action with this JSON argument (e.g. '{"domain":"partner.example"}').
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The whole configuration as TOML, or one key's value.
    Get { key: Option<String> },
    /// Set one key (dotted path) to a value written as TOML; a bare word is a string.
    Set { key: String, value: String },
    /// Check a TOML file without applying it.
    Validate { file: PathBuf },
    /// Write the running configuration as TOML (to a file, or stdout).
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Replace the whole configuration with a TOML file.
    Import { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: what was asked for, on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("edgectl: {}", usage_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgectl: {}", one_line(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

/// clap's usage errors span several paragraphs (the error, usage, a hint); the first says
/// what was wrong, and `--help` is one word away.
fn usage_error(rendered: &str) -> String {
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let what = match first.join(" ") {
        s if s.is_empty() => "invalid arguments".to_owned(),
        s => s.trim_start_matches("error: ").to_owned(),
    };
    format!("{what} (edgectl --help shows the usage)")
}

/// An error message as one line, however edged phrased it.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_file(path: &PathBuf) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", path.display())))
}

fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    let client = Client::new(cli.socket.clone());
    let json = cli.json;
    match cli.command {
        Command::Status => {
            let s: Status = client.get("/api/v1/status")?;
            print_out(json, &s, render::status)
        }
        Command::Alive => {
            let a: Alive = client.get("/api/v1/alive")?;
            print_out(json, &a, |a| format!("alive, up {} s\n", a.uptime_seconds))
        }
        Command::Config(ConfigCommand::Get { key: None }) => {
            let d: ConfigDocument = client.get("/api/v1/config")?;
            if json {
                println!("{}", pretty(&d));
            } else {
                print!("{}", d.toml);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Get { key: Some(key) }) => {
            let v: serde_json::Value = client.get(&format!(
                "/api/v1/config/value?key={}",
                client::encode(&key)
            ))?;
            if json {
                println!("{}", pretty(&v));
            } else {
                println!("{}", v["value"].as_str().unwrap_or_default().trim_end());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Set { key, value }) => {
            let r: CommitResult =
                client.send("PATCH", "/api/v1/config", &SetRequest { key, value })?;
            print_out(json, &r, render::commit)
        }
        Command::Config(ConfigCommand::Validate { file }) => {
            let toml = read_file(&file)?;
            let r: ValidateResult =
                client.send("POST", "/api/v1/config/validate", &ConfigUpload { toml })?;
            if json {
                println!("{}", pretty(&r));
            } else if r.valid {
                println!("{}: valid", file.display());
            } else {
                for p in &r.problems {
                    eprintln!("edgectl: {}: {p}", file.display());
                }
            }
            Ok(if r.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Config(ConfigCommand::Export { output }) => {
            let d: ConfigDocument = client.get("/api/v1/config")?;
            match output {
                Some(path) => std::fs::write(&path, &d.toml).map_err(|e| {
                    ClientError::Local(format!("cannot write {}: {e}", path.display()))
                })?,
                None => print!("{}", d.toml),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Import { file }) => {
            let toml = read_file(&file)?;
            let r: CommitResult = client.send("PUT", "/api/v1/config", &ConfigUpload { toml })?;
            print_out(json, &r, render::commit)
        }
        Command::Reload => {
            let r: CommitResult =
                client.send("POST", "/api/v1/reload", &serde_json::Value::Null)?;
            print_out(json, &r, render::commit)
        }
        Command::LogLevel { first: None, .. } => {
            let l: LogLevels = client.get("/api/v1/log-level")?;
            print_out(json, &l, render::levels)
        }
        Command::LogLevel {
            first: Some(first),
            second,
        } => {
            let req = match second {
                Some(level) => LogLevelRequest {
                    role: Some(first),
                    level,
                },
                None => LogLevelRequest {
                    role: None,
                    level: first,
                },
            };
            let l: LogLevels = client.send("PUT", "/api/v1/log-level", &req)?;
            print_out(json, &l, render::levels)
        }
        Command::Audit { limit } => {
            let entries: Vec<edged_admin_api::AuditEntry> =
                client.get(&format!("/api/v1/audit?limit={limit}"))?;
            print_out(json, &entries, |e| render::audit(e))
        }
        Command::Role { role, what, action } => {
            let path = format!(
                "/api/v1/roles/{}/{}",
                client::encode(&role),
                client::encode(&what)
            );
            let v: serde_json::Value = match action {
                None => client.get(&path)?,
                Some(arg) => {
                    let arg: serde_json::Value = serde_json::from_str(&arg)
                        .map_err(|e| ClientError::Local(format!("--action is not JSON: {e}")))?;
                    client.send("POST", &path, &arg)?
                }
            };
            if json {
                println!("{}", pretty(&v));
            } else {
                print!("{}", answer::render(&role, &what, &v));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn print_out<T: serde::Serialize>(
    json: bool,
    v: &T,
    text: fn(&T) -> String,
) -> Result<ExitCode, ClientError> {
    if json {
        println!("{}", pretty(v));
    } else {
        print!("{}", text(v));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_one_line() {
        let e = Cli::try_parse_from(["edgectl", "config", "set", "only-a-key"]).unwrap_err();
        let line = usage_error(&e.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("required"), "{line}");
        assert!(line.contains("<VALUE>"), "{line}");
        assert!(line.ends_with("(edgectl --help shows the usage)"), "{line}");
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a: x\nb: y\n"), "a: x; b: y");
    }
}
