//! The `ctxd` command line: `serve` runs the daemon, every other subcommand is a client.

mod admin;
pub mod args;
mod collections;
pub mod docs;
mod documents;
mod export;
mod import;
mod lease;
mod output;
mod restore;
mod search;
mod snapshot;

pub use args::{Cli, Command};

use crate::config::ServeConfig;
use ctxd_client::Client;
use output::Output;
pub(crate) use output::exit;
use std::process::ExitCode;

/// `ctxd serve`: runs the daemon until it is stopped; exit 0 after a clean stop.
pub fn serve(socket: Option<std::path::PathBuf>, args: args::ServeArgs) -> ExitCode {
    let mut config = ServeConfig::resolve(args.data, socket);
    config.max_frame = args.max_frame;
    config.drain_timeout = args.drain_timeout;
    config.ann_threshold = args.ann_threshold;
    config.max_connections = args.max_connections.map(|n| n as usize);
    config.idle_timeout = args.idle_timeout;
    if let Some(threads) = args.read_threads {
        config.read_threads = threads as usize;
    }
    config.read_queue = args.read_queue as usize;
    config.stop_when_unused = args.stop_when_unused.then_some(args.unused_grace);
    config.ready_line = args.ready_line;
    config.models = match models(args.models) {
        Ok(models) => models,
        Err(e) => {
            eprintln!("ctxd: CTXD_MODELS: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if let (Some(every), Some(dir)) = (args.snapshot_every, args.snapshot_dir) {
        let dir = match std::path::absolute(&dir) {
            Ok(dir) if dir.is_dir() => dir,
            Ok(dir) => {
                eprintln!(
                    "ctxd: --snapshot-dir {} is not an existing directory",
                    dir.display()
                );
                return ExitCode::from(exit::USAGE);
            }
            Err(e) => {
                eprintln!("ctxd: cannot resolve --snapshot-dir {}: {e}", dir.display());
                return ExitCode::from(exit::USAGE);
            }
        };
        config.schedule = Some(crate::config::SnapshotSchedule {
            every,
            dir,
            keep: args.snapshot_keep,
            format: snapshot::format(Some(&args.snapshot_format)),
        });
    }
    run_daemon(config)
}

/// `--model` flags, else `CTXD_MODELS` (for units: `NAME=DIR` entries separated like `PATH`'s).
fn models(flags: Vec<crate::embed::ModelSpec>) -> Result<Vec<crate::embed::ModelSpec>, String> {
    if !flags.is_empty() {
        return Ok(flags);
    }
    let Some(list) = std::env::var_os("CTXD_MODELS") else {
        return Ok(Vec::new());
    };
    std::env::split_paths(&list)
        .filter(|entry| !entry.as_os_str().is_empty())
        .map(|entry| {
            entry
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", entry.display()))?
                .parse()
        })
        .collect()
}

fn run_daemon(config: ServeConfig) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ctxd-worker")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(crate::daemon::run(config)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a client subcommand against the daemon.
pub fn client(global: args::GlobalArgs, command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ctxd: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let out = Output { json: global.json };
    if let Err((subcommand, message)) = command.check() {
        return output::usage(subcommand, &message);
    }
    runtime.block_on(async move {
        let mut command = command;
        // An offline check reads the files itself: no daemon to connect to.
        if let Command::Check(args) = &command
            && args.data.is_some()
        {
            let Command::Check(args) = command else {
                unreachable!("matched above")
            };
            return snapshot::check(None, args, out).await;
        }
        // So does `snapshot verify`.
        if let Command::Snapshot(args) = &mut command
            && let Some(args::SnapshotCommand::Verify(verify)) = args.command.take()
        {
            return snapshot::verify(verify, out).await;
        }
        let mut builder = Client::builder()
            .timeout(global.timeout)
            .name(format!("ctxd-cli/{}", env!("CARGO_PKG_VERSION")));
        if let Some(socket) = global.socket {
            builder = builder.socket(socket);
        }
        let client = match builder.connect().await {
            Ok(client) => client,
            Err(e) => return output::fail(&e),
        };
        match command {
            Command::Status => admin::status(&client, out).await,
            Command::Health => admin::health(&client, out).await,
            Command::Stop => admin::stop(&client, out).await,
            Command::Collections(args) => collections::run(&client, args, out).await,
            Command::Import(args) => import::run(&client, args, out).await,
            Command::Export(args) => export::run(&client, args, out).await,
            Command::Search(args) => search::run(&client, args, out).await,
            Command::Get(args) => documents::get(&client, args, out).await,
            Command::Delete(args) => documents::delete(&client, args, out).await,
            Command::Count(args) => documents::count(&client, args, out).await,
            Command::Release(args) => lease::release(&client, args, out).await,
            Command::Resume(args) => lease::resume(&client, args, out).await,
            Command::Snapshot(args) => snapshot::run(&client, args, out).await,
            Command::Check(args) => snapshot::check(Some(&client), args, out).await,
            Command::Restore(args) => restore::run(&client, args, out).await,
            Command::Serve(_) | Command::Mcp(_) | Command::Completions(_) | Command::Man(_) => {
                unreachable!("main runs these without a daemon")
            }
            #[cfg(windows)]
            Command::Service(_) => unreachable!("main runs these without a daemon"),
        }
    })
}

/// An error and its causes on one line: "a: b: c".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
