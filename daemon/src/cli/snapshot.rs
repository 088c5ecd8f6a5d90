//! `ctxd snapshot DEST`: a consistent, verified copy of the data directory, taken while the
//! daemon serves.

use super::args::SnapshotArgs;
use super::output::{Output, exit, fail};
use ctxd_client::Client;
use std::fmt::Write;
use std::process::ExitCode;

/// `ctxd snapshot`: a relative DEST is taken from the caller's working directory (the
/// daemon's would mean nothing to the user).
pub async fn run(client: &Client, args: SnapshotArgs, out: Output) -> ExitCode {
    let dest = match std::path::absolute(&args.dest) {
        Ok(dest) => dest,
        Err(e) => {
            eprintln!("ctxd: cannot resolve {}: {e}", args.dest.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    match client.snapshot(dest.display().to_string()).await {
        Ok(snapshot) => {
            out.print(&snapshot, |s| {
                let mut text = format!("snapshot at generation {} in {}\n", s.generation, s.path);
                for file in &s.files {
                    let _ = writeln!(
                        text,
                        "  {:<18} {:>12} bytes  sha256 {}",
                        file.path, file.bytes, file.sha256
                    );
                }
                text
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}
