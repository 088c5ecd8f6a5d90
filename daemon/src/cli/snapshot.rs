//! `ctxd snapshot DEST` (a consistent, verified copy of the data directory, taken while the
//! daemon serves) and `ctxd check` (both stores verified, online or on the files).

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

/// `ctxd check`: through the daemon, or with `--data` directly on the files.
pub async fn check(client: Option<&Client>, args: super::args::CheckArgs, out: Output) -> ExitCode {
    let result = match (&args.data, client) {
        (Some(dir), _) => match crate::storage::check_offline(dir) {
            Ok(result) => result,
            Err(e) => {
                eprintln!("ctxd: cannot check {}: {e}", dir.display());
                return ExitCode::from(exit::FAILED);
            }
        },
        (None, Some(client)) => match client.check().await {
            Ok(result) => result,
            Err(e) => return fail(&e),
        },
        (None, None) => return ExitCode::from(exit::FAILED),
    };
    out.print(&result, |r| {
        let mut text = String::from(if r.passed { "passed\n" } else { "FAILED\n" });
        for (part, report) in [
            ("text", &r.details.text),
            ("vectors", &r.details.vectors),
            ("consistency", &r.details.consistency),
        ] {
            let _ = writeln!(
                text,
                "  {part:<12} {}",
                if report.ok { "ok" } else { "problems:" }
            );
            for problem in &report.problems {
                let _ = writeln!(text, "    - {problem}");
            }
        }
        text
    });
    ExitCode::from(if result.passed {
        exit::OK
    } else {
        exit::FAILED
    })
}
