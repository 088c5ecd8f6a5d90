//! `ctxd status`, `ctxd health`, `ctxd stop`.

use super::output::{Output, exit, fail};
use ctxd_client::Client;
use ctxd_proto::{State, StatusResult};
use std::fmt::Write;
use std::process::ExitCode;

/// `ctxd status`: exit 0 when serving.
pub async fn status(client: &Client, out: Output) -> ExitCode {
    match client.status().await {
        Ok(status) => {
            out.print(&status, render_status);
            serving_code(status.state)
        }
        Err(e) => fail(&e),
    }
}

/// `ctxd health`: exit 0 when serving, 1 otherwise.
pub async fn health(client: &Client, out: Output) -> ExitCode {
    match client.health().await {
        Ok(health) => {
            out.print(&health, |h| h.state.to_string());
            serving_code(health.state)
        }
        Err(e) => fail(&e),
    }
}

/// `ctxd stop`: returns once the daemon has closed every file and removed its socket.
pub async fn stop(client: &Client, out: Output) -> ExitCode {
    let pid = client.server().pid;
    match client.shutdown().await {
        Ok(()) => {
            out.print(&serde_json::json!({ "stopped": true, "pid": pid }), |_| {
                format!("ctxd (pid {pid}) stopped")
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

fn serving_code(state: State) -> ExitCode {
    ExitCode::from(if state == State::Serving {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn render_status(s: &StatusResult) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "ctxd {} (pid {}): {}, up {}",
        s.version,
        s.pid,
        s.state,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_s))
    );
    let open_files = s
        .open_files
        .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let rows = [
        ("data dir", s.data_dir.clone()),
        ("socket", s.socket.clone()),
        ("generation", s.generation.to_string()),
        ("collections", s.collections.to_string()),
        ("documents", s.documents.to_string()),
        ("open files", open_files),
        ("connections", s.connections.to_string()),
    ];
    for (key, value) in rows {
        let _ = writeln!(text, "  {key:<12} {value}");
    }
    if s.leases.is_empty() {
        let _ = writeln!(text, "  {:<12} none", "leases");
    }
    for lease in &s.leases {
        let _ = writeln!(
            text,
            "  {:<12} {} held by {} until {}",
            "lease",
            lease.lease_id,
            lease.holder.as_deref().unwrap_or("(unnamed)"),
            lease.expires_at
        );
    }
    for model in &s.models {
        let _ = writeln!(
            text,
            "  {:<12} {}: {} dimensions, {} tokens, weights sha256 {}",
            "model",
            model.name,
            model.dimension,
            model.max_tokens,
            model.sha256.get(..12).unwrap_or(&model.sha256)
        );
    }
    if let Some(problem) = &s.problem {
        let _ = writeln!(text, "  {:<12} {problem}", "problem");
    }
    if let Some(last) = &s.last_snapshot {
        let at = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(last.at),
        );
        let what = match (&last.path, &last.error) {
            (_, Some(error)) => format!("FAILED: {error}"),
            (Some(path), None) => format!("{} bytes, {path}", last.bytes),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            text,
            "  {:<12} {at}, generation {}, {what}",
            "snapshot", last.generation
        );
    }
    text
}
