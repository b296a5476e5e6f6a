//! Logging: to a bounded file with `--log-file` (the busybox image), to journald when the
//! journal socket exists (an appliance under systemd), to stderr otherwise; the filter
//! (overall and per role) changes at runtime.

use std::sync::Mutex;

use edged_admin_api::LogLevels;
use edged_config::{parse_level, LoggingConfig};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Libraries whose info-level chatter is noise to an operator; their warnings still show.
const QUIET: &str = "rustls=warn,quinn=warn,quinn_proto=warn,quinn_udp=warn,hyper=warn,hyper_util=warn,h2=warn,hickory_proto=warn,hickory_resolver=warn,hickory_server=warn,axum=warn,tower=warn";

pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    levels: Mutex<LogLevels>,
}

fn filter_for(levels: &LogLevels) -> EnvFilter {
    let mut s = format!("{},{QUIET}", levels.default);
    for (role, level) in &levels.roles {
        s.push_str(&format!(",{role}={level}"));
    }
    EnvFilter::try_new(&s).unwrap_or_else(|_| EnvFilter::new("info"))
}

fn levels_from(cfg: &LoggingConfig) -> LogLevels {
    LogLevels {
        default: parse_level(&cfg.level).unwrap_or("info").to_owned(),
        roles: cfg
            .roles
            .iter()
            .filter_map(|(r, l)| parse_level(l).map(|l| (r.clone(), l.to_owned())))
            .collect(),
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured default
/// level at start (handy on a development machine).
/// With `file`, the log goes there (bounded, see [`crate::log_file`]) and nowhere else.
pub fn init(cfg: &LoggingConfig, file: Option<crate::log_file::BoundedFile>) -> LogControl {
    let mut levels = levels_from(cfg);
    if let Ok(env) = std::env::var("RUST_LOG") {
        if let Some(l) = parse_level(&env) {
            levels.default = l.to_owned();
        }
    }
    let (filter, handle) = reload::Layer::new(filter_for(&levels));
    let to_file = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(f)
            .with_ansi(false)
            .with_target(true)
    });
    let journald = if to_file.is_some() {
        None
    } else if std::path::Path::new(JOURNAL_SOCKET).exists() {
        tracing_journald::layer()
            .ok()
            .map(|l| l.with_syslog_identifier("edged".into()))
    } else {
        None
    };
    let stderr = (journald.is_none() && to_file.is_none()).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(true)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(to_file)
        .with(stderr)
        .try_init();
    LogControl {
        handle,
        levels: Mutex::new(levels),
    }
}

impl LogControl {
    pub fn levels(&self) -> LogLevels {
        self.levels
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sets the default level (`role` None) or one role's level.
    pub fn set(&self, role: Option<&str>, level: &str) -> Result<LogLevels, String> {
        let level = parse_level(level).ok_or_else(|| {
            format!("\"{level}\" is not one of error, warn, info, debug, trace, off")
        })?;
        let mut guard = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        match role {
            None | Some("") => guard.default = level.to_owned(),
            Some(r) => {
                if !edged_config::LOG_TARGETS.contains(&r) {
                    return Err(format!(
                        "unknown role \"{r}\"; expected one of {}",
                        edged_config::LOG_TARGETS.join(", ")
                    ));
                }
                guard.roles.insert(r.to_owned(), level.to_owned());
            }
        }
        self.handle
            .reload(filter_for(&guard))
            .map_err(|e| format!("cannot change the log filter: {e}"))?;
        Ok(guard.clone())
    }

    /// Takes the levels of a newly applied configuration.
    pub fn apply_config(&self, cfg: &LoggingConfig) {
        let levels = levels_from(cfg);
        let _ = self.handle.reload(filter_for(&levels));
        if let Ok(mut g) = self.levels.lock() {
            *g = levels;
        }
    }
}
