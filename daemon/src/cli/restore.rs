//! `ctxd restore SNAPSHOT`: put a snapshot (a directory, a tar file, or a tar stream on stdin)
//! in place of the data directory.
//!
//! 1. the snapshot's `manifest.json` is checked against its rules (format; exactly the store
//!    files of a data directory, as relative paths inside the snapshot; size and SHA-256 of
//!    each): a manifest that fails one is refused before anything is read (in a tar the
//!    manifest is the first member, so this holds for a stream too);
//! 2. while the daemon keeps serving, the listed files are copied beside the data directory,
//!    each refused if it is not a regular file or differs from the manifest, and the copy is
//!    opened and checked as a data directory (every check of `ctxd check`, and the manifest's
//!    generation): a snapshot that fails is refused, and nothing has changed;
//! 3. the daemon releases the data directory (every file closed), and the two directories are
//!    exchanged in one atomic step — there is never a half-replaced data directory;
//! 4. the daemon resumes, and since the files changed it verifies them before serving; if they
//!    fail, the directories are exchanged back and the daemon serves the old data again;
//! 5. only then is the previous data directory removed.
//!
//! The staging copy is the long part, and it runs before the release: the daemon serves
//! throughout it, and the lease covers only the exchange and the verified resume.

use super::args::RestoreArgs;
use super::output::{Output, exit, fail};
use super::snapshot::Source;
use crate::storage::snapshot::manifest::Manifest;
use crate::storage::snapshot::stage::Staged;
use ctxd_client::Client;
use ctxd_proto::{Release, Resume, State};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The lease a restore holds for the exchange and the resume: short, since nothing long runs
/// under it; it ends by itself if this process dies in between.
const LEASE_TTL_S: u64 = 120;

/// What `--json` prints on success.
#[derive(Debug, Serialize)]
struct Restored {
    /// The snapshot restored.
    restored: String,
    /// The data directory it now is.
    data_dir: String,
    /// Its generation.
    generation: u64,
    /// Its collections.
    collections: u64,
    /// Its documents.
    documents: u64,
}

/// `ctxd restore`.
pub async fn run(client: &Client, args: RestoreArgs, out: Output) -> ExitCode {
    let snapshot = &args.snapshot;
    let refuse = |why: &str| {
        eprintln!(
            "ctxd: {} is not restored, and nothing changed: {why}",
            snapshot.display()
        );
        ExitCode::from(exit::FAILED)
    };
    let source = Source::of(snapshot);
    // A directory's manifest is checked before anything else; a stream's as it arrives.
    if let Source::Dir(dir) = &source
        && let Err(why) = Manifest::read(dir)
    {
        return refuse(&why);
    }
    let data_dir = match client.status().await {
        // Another lease means someone is copying the files: exchanging them under it would
        // hand that copy a directory that changed half way.
        Ok(status) if !status.leases.is_empty() => {
            return refuse(&format!(
                "the daemon is released ({}); restore once that lease has ended",
                holders(&status.leases)
            ));
        }
        Ok(status) => PathBuf::from(status.data_dir),
        Err(e) => return fail(&e),
    };
    let staged_dir = staging_dir(&data_dir);
    let staging = {
        let staged_dir = staged_dir.clone();
        tokio::task::spawn_blocking(move || source.stage(&staged_dir)).await
    };
    let staged = match staging {
        Ok(Ok((_, staged))) => staged,
        Ok(Err(why)) => return refuse(&why),
        Err(e) => return refuse(&format!("the staging task failed: {e}")),
    };
    match swap_in(client, &data_dir, &staged_dir).await {
        Ok(()) => {
            if let Err(e) = fs::remove_dir_all(&staged_dir) {
                eprintln!(
                    "ctxd: restored, but the previous data is still at {}: {e}",
                    staged_dir.display()
                );
            }
            report(out, snapshot, &data_dir, staged);
            ExitCode::from(exit::OK)
        }
        Err(code) => code,
    }
}

/// Releases, exchanges the staged copy with the data directory, and resumes (the daemon
/// verifies the new files); puts the old data back if the daemon refuses them. `staged` then
/// holds the previous data directory on success.
async fn swap_in(client: &Client, data_dir: &Path, staged: &Path) -> Result<(), ExitCode> {
    let lease = match client
        .release(Release {
            holder: Some("ctxd restore".to_owned()),
            ttl_s: Some(LEASE_TTL_S),
            drain_ms: None,
        })
        .await
    {
        Ok(lease) => lease,
        Err(e) => {
            let _ = fs::remove_dir_all(staged);
            return Err(fail(&e));
        }
    };
    // A lease taken by someone else meanwhile: the files are theirs to copy now.
    let others = match client.status().await {
        Ok(status) => status
            .leases
            .into_iter()
            .filter(|l| l.lease_id != lease.lease_id)
            .collect::<Vec<_>>(),
        Err(e) => {
            let _ = fs::remove_dir_all(staged);
            resume(client, Some(lease.lease_id)).await;
            return Err(fail(&e));
        }
    };
    if !others.is_empty() {
        let _ = fs::remove_dir_all(staged);
        resume(client, Some(lease.lease_id)).await;
        eprintln!(
            "ctxd: restore refused, and nothing changed: the daemon was released meanwhile ({}); \
             restore once that lease has ended",
            holders(&others)
        );
        return Err(ExitCode::from(exit::FAILED));
    }
    if let Err(e) = crate::swap::exchange(data_dir, staged) {
        let _ = fs::remove_dir_all(staged);
        eprintln!("ctxd: cannot put the snapshot in place, the data directory is unchanged: {e}");
        resume(client, Some(lease.lease_id)).await;
        return Err(ExitCode::from(exit::FAILED));
    }
    let resumed = client
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await;
    match resumed {
        Ok(result) if result.state == State::Serving => return Ok(()),
        // Not served yet, so not verified: the previous data must stay until it is.
        Ok(result) => {
            eprintln!(
                "ctxd: the snapshot is in place, but the daemon stays released ({}) and verifies \
                 it only when that ends; the previous data is kept at {}",
                holders(&result.leases),
                staged.display()
            );
            return Err(ExitCode::from(exit::FAILED));
        }
        Err(e) => {
            eprintln!("ctxd: the daemon refused the restored files: {e}");
        }
    }
    match crate::swap::exchange(data_dir, staged) {
        Ok(()) => {
            let _ = fs::remove_dir_all(staged);
            eprintln!("ctxd: the previous data is back in place");
            resume(client, None).await;
        }
        Err(swap) => eprintln!(
            "ctxd: cannot put the previous data back ({swap}); it is at {}",
            staged.display()
        ),
    }
    Err(ExitCode::from(exit::FAILED))
}

/// Where the snapshot is staged: beside the data directory (the same file system, so the
/// exchange is one rename), under a name no earlier restore used (one that failed may have
/// left the previous data under its name, and says so).
fn staging_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    data_dir.with_file_name(format!(
        ".{name}.restore-{}-{}",
        std::process::id(),
        crate::clock::unix_millis()
    ))
}

/// Leases in words: `nightly (lease-ab12…)`.
fn holders(leases: &[ctxd_proto::Lease]) -> String {
    leases
        .iter()
        .map(|l| match &l.holder {
            Some(holder) => format!("{holder} ({})", l.lease_id),
            None => l.lease_id.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(out: Output, snapshot: &Path, data_dir: &Path, staged: Staged) {
    let restored = Restored {
        restored: snapshot.display().to_string(),
        data_dir: data_dir.display().to_string(),
        generation: staged.generation,
        collections: staged.collections,
        documents: staged.documents,
    };
    out.print(&restored, |r| {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "restored {} into {}: generation {}, {}, {}; the daemon verified it and serves it",
            r.restored,
            r.data_dir,
            r.generation,
            plural(r.collections, "collection", "collections"),
            plural(r.documents, "document", "documents"),
        )
    });
}

/// Ends the lease (`None`: every lease), or says how to.
async fn resume(client: &Client, lease_id: Option<String>) {
    let all = lease_id.is_none();
    if let Err(e) = client.resume(Resume { lease_id, all }).await {
        eprintln!("ctxd: resuming failed: {e}; run `ctxd resume --all`");
    }
}
