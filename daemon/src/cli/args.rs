//! The command line, as clap definitions. One name per operation: the wire `op`, the client
//! method and the subcommand agree.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// ctxd: a local store for documents, full-text and vectors, owned by one daemon.
///
/// `ctxd serve` runs the daemon; every other subcommand talks to it over its socket.
#[derive(Debug, Parser)]
#[command(name = "ctxd", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every client subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The daemon's socket [default: $CTXD_SOCKET, else $XDG_RUNTIME_DIR/ctxd/ctxd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up on the daemon after this long (e.g. 500ms, 10s, 2m).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd and the Windows service run this).
    Serve(ServeArgs),
    /// Show the daemon's state, paths, counts, leases and open files; exit 0 when serving.
    Status,
    /// Exit 0 when the daemon is serving, 1 when it is not, 3 when it is unreachable.
    Health,
    /// Stop the daemon and wait until it has closed every file.
    Stop,
}

/// Options of `ctxd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data directory [default: $XDG_DATA_HOME/ctxd, i.e. ~/.local/share/ctxd].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The longest request line accepted, in bytes; longer lines get `frame_too_large`.
    #[arg(long, value_name = "BYTES", default_value_t = ctxd_proto::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// How long stopping waits for in-flight requests.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
}

/// Parses `30s`, `10m`, `1h 30m`, `500ms`, or plain seconds (`30`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); try 30s, 10m or 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
