//! `ctxd service install | uninstall | run`: ctxd as a Windows service.
//!
//! - `install` registers the service with the Service Control Manager (SCM): it runs
//!   `ctxd service run` with the data directory and pipe fixed at install time, starts
//!   automatically, and accepts stop, shutdown, pause and continue.
//! - `run` is what the SCM starts: it hosts the same daemon as `ctxd serve` ([`host`]).
//!   Stop and system shutdown go through the daemon's one shutdown sequence while the SCM is
//!   told `STOP_PENDING` with a rising checkpoint. Pause releases the data directory under a
//!   lease held by `scm` and continue ends that lease, so a backup job can run
//!   `sc pause ctxd`, copy the files and `sc continue ctxd`.
//! - `uninstall` stops the service if it runs and removes it.
//!
//! Defaults for the service: data in `%ProgramData%\ctxd\data`, the log in
//! `%ProgramData%\ctxd\ctxd.log` (outside the data directory, so a released data directory
//! holds no open file), and the machine-wide pipe `\\.\pipe\ctxd`, whose DACL admits the
//! service account, SYSTEM and Administrators.

mod host;
mod install;

use crate::config::parse_duration;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The service's name for the SCM (`sc query ctxd`, `sc pause ctxd`).
pub const SERVICE_NAME: &str = "ctxd";

/// The service's pipe unless `--socket` says otherwise.
pub const SERVICE_PIPE: &str = r"\\.\pipe\ctxd";

/// Options of `ctxd service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ServiceAction,
}

/// The `ctxd service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Register ctxd as a Windows service (from an elevated prompt).
    Install(InstallArgs),
    /// Stop the service if it runs, and remove it (from an elevated prompt).
    Uninstall,
    /// Run as the service: what the Service Control Manager starts, not for interactive use.
    Run(RunArgs),
}

/// When the service starts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StartType {
    /// At boot.
    Auto,
    /// When started (`sc start ctxd`).
    Manual,
}

/// Options of `ctxd service install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The data directory [default: %ProgramData%\ctxd\data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The account the service runs as [default: LocalSystem]. Programs running as this account
    /// (or as an administrator) can reach the pipe; a password, if the account needs one, is
    /// read from the CTXD_SERVICE_PASSWORD environment variable, never from the command line.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// When the service starts.
    #[arg(long, value_enum, default_value = "auto")]
    pub start: StartType,
    /// Log filter of the service (error, warn, info, debug, trace).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Options of `ctxd service run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The data directory [default: %ProgramData%\ctxd\data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Append the log to this file [default: %ProgramData%\ctxd\ctxd.log].
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How long stopping waits for in-flight requests.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
}

/// Runs `ctxd service ...`.
pub fn command(socket: Option<PathBuf>, args: ServiceArgs) -> ExitCode {
    match args.action {
        ServiceAction::Install(install) => install::install(socket, install),
        ServiceAction::Uninstall => install::uninstall(),
        ServiceAction::Run(run) => host::run(socket, run),
    }
}

/// `%ProgramData%\ctxd`: the service's home (data directory, log).
fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("ctxd")
}

/// The service's data directory unless `--data` says otherwise.
fn default_data_dir() -> PathBuf {
    program_data().join("data")
}
