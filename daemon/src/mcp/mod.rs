//! `ctxd mcp`: a Model Context Protocol server on stdio that is one more client of the daemon.
//!
//! An AI agent's host starts `ctxd mcp` per session; each session attaches to the daemon that
//! owns the data directory (or starts one that stops when unused, as Python's
//! `PersistentClient` does: [`ctxd_client::owner`]), so any number of sessions share one
//! daemon, one set of open files and one model. When the host closes the session's stdin the
//! server lets go of the daemon and exits; the last session to go stops a daemon started this
//! way, every file closed. The tools are in `mcp/tools.rs`.

mod tools;

use crate::cli::args::McpArgs;
use ctxd_client::Client;
use ctxd_client::owner::{self, Holding};
use ctxd_proto::CreateCollection;
use rmcp::ServiceExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long finding or starting the daemon may take (a model may be loading).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `ctxd mcp` until the host closes stdin.
pub fn run(socket: Option<PathBuf>, args: McpArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ctxd-mcp")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ctxd mcp: cannot start the async runtime: {e}");
            return ExitCode::from(crate::exit::FAILED);
        }
    };
    let code = match runtime.block_on(serve(socket, args)) {
        Ok(()) => ExitCode::from(crate::exit::OK),
        Err(message) => {
            eprintln!("ctxd mcp: {message}");
            ExitCode::from(crate::exit::FAILED)
        }
    };
    // stdin is read by a blocking thread that a closed session has already seen end; nothing
    // else may keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn serve(socket: Option<PathBuf>, args: McpArgs) -> Result<(), String> {
    let (client, holding) = connect(socket, &args).await?;
    let client = Arc::new(client);
    ensure_collection(&client, &args).await?;
    let server = tools::Tools::new(Arc::clone(&client), args.collection.clone());
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP session did not start: {e}"))?;
    let quit = running.waiting().await;
    tracing::debug!("MCP session ended: {quit:?}");
    if let Some(holding) = holding {
        holding
            .detach()
            .await
            .map_err(|e| format!("letting go of the daemon: {e}"))?;
    }
    Ok(())
}

/// The daemon at `--socket`, or the one that owns `--data` (found or started).
async fn connect(
    socket: Option<PathBuf>,
    args: &McpArgs,
) -> Result<(Client, Option<Holding>), String> {
    if let Some(socket) = socket {
        let client = Client::connect_to(&socket)
            .await
            .map_err(|e| e.to_string())?;
        return Ok((client, None));
    }
    let data = args
        .data
        .clone()
        .unwrap_or_else(crate::config::default_data_dir);
    let start = owner::Start {
        binary: std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
        serve_args: args
            .models
            .iter()
            .flat_map(|model| ["--model".to_owned(), model.clone()])
            .collect(),
        timeout: START_TIMEOUT,
    };
    let holding = owner::hold(&data, &start)
        .await
        .map_err(|e| format!("cannot reach a daemon for {}: {e}", data.display()))?;
    let client = Client::connect_to(holding.socket())
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, Some(holding)))
}

/// The default collection exists (created with `--embedder` if given).
async fn ensure_collection(client: &Client, args: &McpArgs) -> Result<(), String> {
    client
        .create_collection(CreateCollection {
            name: args.collection.clone(),
            embedder: args.embedder.clone(),
            if_not_exists: true,
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| format!("collection `{}`: {e}", args.collection))
}
