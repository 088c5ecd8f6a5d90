//! The `ctxd` binary: `ctxd serve` runs the daemon, every other subcommand is a client.

use clap::Parser;
use ctxd::cli::{self, Cli, Command};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a forward pass of the embedder allocates and frees
/// tensors of tens of megabytes per layer, which glibc's malloc hands back to the kernel each
/// time (mmap, munmap, then page faults zeroing the same memory again): a third of an
/// embedding batch's time was spent in the kernel. mimalloc reuses them (measured: 8 → 13
/// SciFact abstracts/s, and a lower RSS than glibc tuned to keep them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_level.as_deref());
            cli::serve(cli.global.socket, args)
        }
        Command::Mcp(args) => {
            // stdout is the protocol's; logs go to stderr, warnings only unless RUST_LOG says.
            init_logging(Some(
                &std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            ));
            ctxd::mcp::run(cli.global.socket, args)
        }
        Command::Completions(args) => cli::docs::completions(&args),
        Command::Man(args) => cli::docs::man(&args),
        #[cfg(windows)]
        Command::Service(args) => ctxd::service::command(cli.global.socket, args),
        command => cli::client(cli.global, command),
    }
}

/// Logs go to stderr; `--log-level` wins over `RUST_LOG`, and the default is `info`.
fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|e| {
        eprintln!("ctxd: invalid log level ({e}); using info");
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
