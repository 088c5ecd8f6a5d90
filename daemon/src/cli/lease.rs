//! `ctxd release`, `ctxd resume`, and `ctxd release -- COMMAND`: hand the data directory to a
//! backup tool and take it back.

use super::args::{ReleaseArgs, ResumeArgs};
use super::output::{Output, exit, fail};
use ctxd_client::Client;
use ctxd_proto::{Release, ReleaseResult, Renew, Resume, ResumeResult, UnixMillis};
use std::convert::Infallible;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

/// `ctxd release`: prints the lease and the files; with a command, runs it and always resumes.
pub async fn release(client: &Client, args: ReleaseArgs, out: Output) -> ExitCode {
    // Listen for Ctrl-C before the release, so an interrupt at any point still resumes.
    let interrupted = interrupts();
    let holder = args
        .holder
        .clone()
        .or_else(|| args.command.first().map(|program| default_holder(program)));
    let params = Release {
        holder,
        ttl_s: Some(args.ttl.as_secs().max(1)),
        drain_ms: None,
    };
    let lease = match client.release(params).await {
        Ok(lease) => lease,
        Err(e) => return fail(&e),
    };
    if args.command.is_empty() {
        out.print(&lease, |l| render(l, client));
        return ExitCode::from(exit::OK);
    }
    eprintln!(
        "ctxd: released (lease {}); running {}",
        lease.lease_id,
        args.command.join(" ")
    );
    // Renewed while the command runs: a backup that takes longer than `--ttl` must not have the
    // files reopened under it. If this process dies, the renewals stop and the lease ends
    // `--ttl` after the last one.
    let ttl_s = args.ttl.as_secs().max(1);
    let status = tokio::select! {
        status = run(&args.command, interrupted) => status,
        never = keep_renewed(client, &lease.lease_id, ttl_s) => match never {},
    };
    let resumed = client
        .resume(Resume {
            lease_id: Some(lease.lease_id.clone()),
            all: false,
        })
        .await;
    match resumed {
        Ok(resumed) => eprintln!("ctxd: resumed ({})", resumed.state),
        Err(e) => {
            eprintln!(
                "ctxd: the command finished but resuming failed: {e}; run `ctxd resume {}`",
                lease.lease_id
            );
            return ExitCode::from(exit::FAILED);
        }
    }
    status
}

/// `ctxd release -- PROGRAM` as a holder label: the program's file name, cut to the label limit
/// and without control characters (the daemon refuses labels that have them).
fn default_holder(program: &str) -> String {
    let name = std::path::Path::new(program)
        .file_name()
        .map_or_else(|| program.to_owned(), |n| n.to_string_lossy().into_owned());
    let mut holder = String::from("ctxd release -- ");
    for c in name.chars().filter(|c| !c.is_control()) {
        if holder.len() + c.len_utf8() > ctxd_proto::limits::MAX_LABEL_BYTES {
            break;
        }
        holder.push(c);
    }
    holder
}

/// Renews the lease every third of its length, for as long as it is polled.
async fn keep_renewed(client: &Client, lease_id: &str, ttl_s: u64) -> Infallible {
    let period = Duration::from_millis(ttl_s * 1000 / 3);
    loop {
        tokio::time::sleep(period).await;
        let renew = Renew {
            lease_id: lease_id.to_owned(),
            ttl_s,
        };
        if let Err(e) = client.renew(renew).await {
            eprintln!("ctxd: warning: cannot renew lease {lease_id}: {e}");
        }
    }
}

/// `ctxd resume`.
pub async fn resume(client: &Client, args: ResumeArgs, out: Output) -> ExitCode {
    let params = Resume {
        lease_id: args.lease,
        all: args.all,
    };
    match client.resume(params).await {
        Ok(result) => {
            out.print(&result, render_resume);
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// Runs the command to its end; its exit status becomes ours (128 + signal if it was killed).
/// A first Ctrl-C is left to the command (it gets it too, from the terminal); a second one
/// kills it. Either way the caller resumes afterwards.
async fn run(command: &[String], mut interrupted: tokio::sync::mpsc::Receiver<()>) -> ExitCode {
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("ctxd: cannot run {}: {e}", command[0]);
            return ExitCode::from(127);
        }
    };
    let mut interrupts = 0;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(()) = interrupted.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    eprintln!("ctxd: interrupted again; stopping {}", command[0]);
                    let _ = child.start_kill();
                } else {
                    eprintln!("ctxd: interrupted; waiting for {} to exit, then resuming", command[0]);
                }
            }
        }
    };
    match status {
        Ok(status) => ExitCode::from(exit_code(&status)),
        Err(e) => {
            eprintln!("ctxd: waiting for {} failed: {e}", command[0]);
            ExitCode::from(exit::FAILED)
        }
    }
}

fn exit_code(status: &std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}

/// Ctrl-C (SIGINT) notifications, registered now.
fn interrupts() -> tokio::sync::mpsc::Receiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if sender.send(()).await.is_err() {
                return;
            }
        }
    });
    receiver
}

fn render(lease: &ReleaseResult, client: &Client) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "released: lease {} until {} (generation {})",
        lease.lease_id,
        when(lease.expires_at),
        lease.generation
    );
    let _ = writeln!(text, "files to copy (relative to the data directory):");
    for file in &lease.files {
        let _ = writeln!(text, "  {:<24} {} bytes", file.path, file.bytes);
    }
    for skip in &lease.exclude {
        let _ = writeln!(text, "skip: {skip}");
    }
    let socket = client.socket().display();
    let _ = writeln!(
        text,
        "resume with: ctxd --socket {socket} resume {}",
        lease.lease_id
    );
    text
}

fn render_resume(result: &ResumeResult) -> String {
    if result.leases.is_empty() {
        return result.state.to_string();
    }
    let held: Vec<String> = result
        .leases
        .iter()
        .map(|l| format!("{} until {}", l.lease_id, when(l.expires_at)))
        .collect();
    format!("{} (still held: {})", result.state, held.join(", "))
}

fn when(at: UnixMillis) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_holder_is_a_valid_label() {
        assert_eq!(default_holder("/usr/bin/restic"), "ctxd release -- restic");
        for program in ["/x/".to_owned() + &"y".repeat(300), "bad\nname".to_owned()] {
            let holder = default_holder(&program);
            assert_eq!(
                ctxd_proto::validate::label("holder", &holder),
                Ok(()),
                "{holder:?}"
            );
        }
    }
}
