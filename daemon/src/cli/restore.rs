//! `ctxd restore SNAPSHOT`: put a snapshot in place of the data directory.
//!
//! 1. the snapshot's files are checked against its `manifest.json` (nothing is touched if one
//!    is missing or differs);
//! 2. the daemon releases the data directory (every file closed);
//! 3. the snapshot is copied beside the data directory and fsynced, then the two directories
//!    are exchanged in one atomic step — there is never a half-replaced data directory;
//! 4. the daemon resumes, and since the files changed it verifies them before serving; if they
//!    fail, the directories are exchanged back and the daemon serves the old data again;
//! 5. the previous data directory is removed.

use super::args::RestoreArgs;
use super::output::{Output, exit, fail};
use ctxd_client::Client;
use ctxd_proto::{Release, Resume, SnapshotFile};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `ctxd restore`.
pub async fn run(client: &Client, args: RestoreArgs, out: Output) -> ExitCode {
    let snapshot = &args.snapshot;
    let files = match verify(snapshot) {
        Ok(files) => files,
        Err(why) => {
            eprintln!(
                "ctxd: {} is not a usable snapshot: {why}",
                snapshot.display()
            );
            return ExitCode::from(exit::FAILED);
        }
    };
    let data_dir = match client.status().await {
        Ok(status) => PathBuf::from(status.data_dir),
        Err(e) => return fail(&e),
    };
    let lease = match client
        .release(Release {
            holder: Some("ctxd restore".to_owned()),
            ttl_s: Some(600),
            drain_ms: None,
        })
        .await
    {
        Ok(lease) => lease,
        Err(e) => return fail(&e),
    };
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    let staged = data_dir.with_file_name(format!(".{name}.restore-{}", std::process::id()));
    let swapped = stage(snapshot, &files, &staged).and_then(|()| {
        crate::swap::exchange(&data_dir, &staged)
            .map_err(|e| format!("cannot put the snapshot in place: {e}"))
    });
    if let Err(why) = swapped {
        let _ = fs::remove_dir_all(&staged);
        eprintln!("ctxd: restore failed, the data directory is unchanged: {why}");
        resume(client, lease.lease_id).await;
        return ExitCode::from(exit::FAILED);
    }
    // `staged` now holds the previous data directory.
    let resumed = client
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await;
    match resumed {
        Ok(_) => {
            if let Err(e) = fs::remove_dir_all(&staged) {
                eprintln!(
                    "ctxd: restored, but the previous data is still at {}: {e}",
                    staged.display()
                );
            }
            let result = serde_json::json!({
                "restored": snapshot.display().to_string(),
                "data_dir": data_dir.display().to_string(),
            });
            out.print(&result, |_| {
                format!(
                    "restored {} into {}; the daemon verified it and serves it",
                    snapshot.display(),
                    data_dir.display()
                )
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("ctxd: the daemon refused the restored files: {e}");
            match crate::swap::exchange(&data_dir, &staged) {
                Ok(()) => {
                    let _ = fs::remove_dir_all(&staged);
                    eprintln!("ctxd: the previous data is back in place");
                    let _ = client
                        .resume(Resume {
                            lease_id: None,
                            all: true,
                        })
                        .await;
                }
                Err(swap) => eprintln!(
                    "ctxd: cannot put the previous data back ({swap}); it is at {}",
                    staged.display()
                ),
            }
            ExitCode::from(exit::FAILED)
        }
    }
}

/// The snapshot's files per its manifest, each present with the recorded size and SHA-256.
fn verify(snapshot: &Path) -> Result<Vec<SnapshotFile>, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        files: Vec<SnapshotFile>,
    }
    let path = snapshot.join("manifest.json");
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    for file in &manifest.files {
        let path = snapshot.join(&file.path);
        let (bytes, sha256) = digest(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes != file.bytes || sha256 != file.sha256 {
            return Err(format!("{} differs from the manifest", file.path));
        }
    }
    Ok(manifest.files)
}

fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        total,
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// Copies the snapshot's data files into `staged` and makes them durable.
fn stage(snapshot: &Path, files: &[SnapshotFile], staged: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(staged);
    for file in files {
        let target = staged.join(&file.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::copy(snapshot.join(&file.path), &target)
            .and_then(|_| fs::File::open(&target)?.sync_all())
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(())
}

async fn resume(client: &Client, lease_id: String) {
    if let Err(e) = client
        .resume(Resume {
            lease_id: Some(lease_id),
            all: false,
        })
        .await
    {
        eprintln!("ctxd: resuming failed: {e}; run `ctxd resume --all`");
    }
}
