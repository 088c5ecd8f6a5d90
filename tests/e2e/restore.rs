//! `ctxd restore`: a snapshot replaces the data only when its manifest, its files and the data
//! directory they form all check out; otherwise nothing changes.

use crate::data::{create, doc, put};
use crate::support::{Daemon, Scratch, ctxd};
use ctxd_client::Client;
use ctxd_proto::{Count, Upsert};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn count(collection: &str) -> Count {
    Count {
        collection: collection.to_owned(),
        filter: None,
        text_filter: None,
    }
}

fn write(ids: std::ops::Range<u32>) -> Upsert {
    Upsert {
        collection: "c".into(),
        documents: ids
            .map(|i| {
                doc(
                    &format!("d{i}"),
                    Some("text"),
                    Some(vec![i as f32, 1.0]),
                    json!({"i": i}),
                )
            })
            .collect(),
    }
}

/// A daemon holding `c` with 25 documents, and a snapshot of it taken at 10.
struct Fixture {
    scratch: Scratch,
    daemon: Daemon,
    client: Client,
    older: PathBuf,
}

async fn fixture() -> Fixture {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    client.upsert(write(0..10)).await.expect("upsert");
    let older = scratch.path("snaps/older");
    std::fs::create_dir_all(older.parent().expect("parent")).expect("mkdir");
    client
        .snapshot(older.display().to_string())
        .await
        .expect("snapshot");
    client.upsert(write(10..25)).await.expect("newer writes");
    Fixture {
        scratch,
        daemon,
        client,
        older,
    }
}

impl Fixture {
    fn restore(&self, snapshot: &Path) -> std::process::Output {
        ctxd(&[
            "--socket",
            self.daemon.socket.to_str().expect("utf-8"),
            "restore",
            snapshot.to_str().expect("utf-8"),
        ])
    }

    /// A copy of the older snapshot at `snaps/NAME`, to tamper with.
    fn copy_of_snapshot(&self, name: &str) -> PathBuf {
        let copy = self.scratch.path(&format!("snaps/{name}"));
        std::fs::create_dir_all(copy.join("vectors")).expect("mkdir");
        for file in [
            "manifest.json",
            "ctxd.json",
            "text.sqlite3",
            "vectors/data.mdb",
        ] {
            std::fs::copy(self.older.join(file), copy.join(file)).expect("copy");
        }
        copy
    }

    /// Asserts the restore was refused with a message containing `why`, and that nothing
    /// changed: the daemon serves the same 25 documents, holds no lease, was never released,
    /// and no staging directory is left beside the data directory.
    async fn assert_refused(&self, out: &std::process::Output, why: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
        assert_eq!(
            self.client.count(count("c")).await.expect("count").count,
            25
        );
        let status = self.client.status().await.expect("status");
        assert!(
            status.leases.is_empty() && status.problem.is_none(),
            "{status:?}"
        );
        assert!(
            !self.daemon.stderr_so_far().contains("released"),
            "the daemon was released for a snapshot that was refused first:\n{}",
            self.daemon.stderr_so_far()
        );
        let parent = self.daemon.data.parent().expect("parent");
        let leftovers: Vec<String> = std::fs::read_dir(parent)
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".restore-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

fn read_manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("json")
}

fn write_manifest(dir: &Path, manifest: &Value) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(manifest).expect("json"),
    )
    .expect("write the manifest");
}

/// The manifest entry a file would have.
fn entry(path: &str, file: &Path) -> Value {
    let bytes = std::fs::read(file).expect("read");
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"path": path, "bytes": bytes.len(), "sha256": sha256})
}

#[tokio::test]
async fn restore_puts_an_older_snapshot_in_place_reports_it_and_serves_exactly_it() {
    let f = fixture().await;
    let generation = read_manifest(&f.older)["generation"]
        .as_u64()
        .expect("generation");
    // Files beside the store files are not the snapshot's: they are not copied.
    std::fs::write(f.older.join("notes.txt"), "not part of the snapshot").expect("write");
    let out = f.restore(&f.older);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for what in [
        format!("generation {generation}"),
        "1 collection".to_owned(),
        "10 documents".to_owned(),
    ] {
        assert!(stdout.contains(&what), "expected {what:?} in: {stdout}");
    }
    assert_eq!(f.client.count(count("c")).await.expect("count").count, 10);
    let status = f.client.status().await.expect("status");
    assert_eq!(status.generation, generation);
    assert!(status.leases.is_empty() && status.problem.is_none());
    assert!(!f.daemon.data.join("notes.txt").exists());
    let out = ctxd(&[
        "--socket",
        f.daemon.socket.to_str().expect("utf-8"),
        "check",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Nothing is left beside the data directory.
    let parent = f.daemon.data.parent().expect("parent");
    let leftovers = std::fs::read_dir(parent)
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn a_file_that_differs_from_the_manifest_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let damaged = f.copy_of_snapshot("damaged");
    std::fs::write(damaged.join("text.sqlite3"), b"not a database").expect("damage");
    f.assert_refused(&f.restore(&damaged), "text.sqlite3").await;
}

/// A manifest that lists only `ctxd.json` was "restored" with exit 0: every collection gone,
/// and the previous data deleted.
#[tokio::test]
async fn a_manifest_without_the_store_files_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let partial = f.copy_of_snapshot("partial");
    let mut manifest = read_manifest(&partial);
    manifest["files"] = json!([entry("ctxd.json", &partial.join("ctxd.json"))]);
    write_manifest(&partial, &manifest);
    f.assert_refused(&f.restore(&partial), "text.sqlite3").await;
}

/// A manifest entry `../escaped.txt` (with its correct checksum) was copied to a path outside
/// the staging directory.
#[tokio::test]
async fn a_manifest_entry_outside_the_snapshot_is_refused_and_nothing_is_written_outside() {
    let f = fixture().await;
    let escaping = f.copy_of_snapshot("escaping");
    let outside = f.scratch.path("snaps/escaped.txt");
    std::fs::write(&outside, "written by the snapshot").expect("write");
    let mut manifest = read_manifest(&escaping);
    manifest["files"]
        .as_array_mut()
        .expect("files")
        .push(entry("../escaped.txt", &outside));
    write_manifest(&escaping, &manifest);
    f.assert_refused(&f.restore(&escaping), "../escaped.txt")
        .await;
    assert!(
        !f.scratch.path("escaped.txt").exists(),
        "a file was written outside the staging directory"
    );
}

#[tokio::test]
async fn a_snapshot_file_that_is_a_symlink_is_refused() {
    let f = fixture().await;
    let linked = f.copy_of_snapshot("linked");
    let real = f.scratch.path("elsewhere.sqlite3");
    std::fs::rename(linked.join("text.sqlite3"), &real).expect("move");
    std::os::unix::fs::symlink(&real, linked.join("text.sqlite3")).expect("symlink");
    f.assert_refused(&f.restore(&linked), "symbolic link").await;
}

#[tokio::test]
async fn a_manifest_of_another_format_is_refused() {
    let f = fixture().await;
    let future = f.copy_of_snapshot("future");
    let mut manifest = read_manifest(&future);
    manifest["format"] = json!(99);
    write_manifest(&future, &manifest);
    f.assert_refused(&f.restore(&future), "format 99").await;
}

/// Files that each match the manifest but do not form one data directory (the text store of
/// one snapshot, the vector store of another) are found out before anything is released or
/// swapped.
#[tokio::test]
async fn files_that_do_not_form_a_data_directory_are_refused_before_the_swap() {
    let f = fixture().await;
    let newer = f.scratch.path("snaps/newer");
    f.client
        .snapshot(newer.display().to_string())
        .await
        .expect("snapshot");
    let mixed = f.copy_of_snapshot("mixed");
    std::fs::copy(
        newer.join("vectors/data.mdb"),
        mixed.join("vectors/data.mdb"),
    )
    .expect("copy");
    let mut manifest = read_manifest(&mixed);
    manifest["files"] = json!([
        entry("ctxd.json", &mixed.join("ctxd.json")),
        entry("text.sqlite3", &mixed.join("text.sqlite3")),
        entry("vectors/data.mdb", &mixed.join("vectors/data.mdb")),
    ]);
    write_manifest(&mixed, &manifest);
    f.assert_refused(&f.restore(&mixed), "not a valid data directory")
        .await;
}

/// A restore while a backup holds the daemon released would exchange the directory under the
/// backup's copy: it is refused, and the backup's lease is left alone.
#[tokio::test]
async fn a_restore_while_another_lease_holds_the_files_is_refused() {
    let f = fixture().await;
    let lease = f
        .client
        .release(ctxd_proto::Release {
            holder: Some("nightly backup".into()),
            ttl_s: Some(60),
            drain_ms: None,
        })
        .await
        .expect("release");
    let out = f.restore(&f.older);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("nightly backup"),
        "names the lease: {stderr}"
    );
    let status = f.client.status().await.expect("status");
    assert_eq!(status.leases.len(), 1, "the backup's lease is untouched");
    f.client
        .resume(ctxd_proto::Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect("resume");
    assert_eq!(
        f.client.count(count("c")).await.expect("count").count,
        25,
        "unchanged"
    );
}

/// A snapshot restores into a daemon whose data is empty, too.
#[tokio::test]
async fn a_snapshot_restores_into_an_empty_daemon() {
    let f = fixture().await;
    let other_scratch = Scratch::new();
    let empty = Daemon::start(&other_scratch);
    let out = ctxd(&[
        "--socket",
        empty.socket.to_str().expect("utf-8"),
        "restore",
        f.older.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let client = empty.client().await;
    assert_eq!(client.count(count("c")).await.expect("count").count, 10);
    put(
        &client,
        "c",
        vec![doc("new", Some("after"), Some(vec![1.0, 1.0]), json!(null))],
    )
    .await;
    assert_eq!(client.count(count("c")).await.expect("count").count, 11);
}
