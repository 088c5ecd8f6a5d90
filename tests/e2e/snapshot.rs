//! Online snapshots: consistent, verified, and complete for everything acknowledged before.

use crate::data::{create, doc, numbered, put};
use crate::support::{Daemon, Scratch, Start, ctxd};
use crate::writers::{WriteLoad, assert_holds};
use ctxd_proto::{Count, ErrorCode, Upsert};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

fn count(collection: &str) -> Count {
    Count {
        collection: collection.to_owned(),
        filter: None,
    }
}

/// Serves a snapshot directory with a second daemon and returns it.
fn serve(scratch: &Scratch, dir: &Path, name: &str) -> Daemon {
    Start::new(scratch)
        .data(dir)
        .socket(Some(scratch.path(&format!("{name}/ctxd.sock"))))
        .spawn()
}

#[tokio::test]
async fn a_snapshot_is_a_verified_data_directory_of_its_own() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    put(&client, "c", numbered(30, "text")).await;
    let generation = client.status().await.expect("status").generation;

    let dest = scratch.path("snap-1");
    let snapshot = client
        .snapshot(dest.display().to_string())
        .await
        .expect("snapshot");
    assert_eq!(snapshot.generation, generation);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["generation"], generation);
    for file in &snapshot.files {
        let bytes = std::fs::read(dest.join(&file.path)).expect("snapshot file");
        assert_eq!(bytes.len() as u64, file.bytes, "{}", file.path);
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, file.sha256, "{}", file.path);
    }
    assert!(!dest.join("vectors/lock.mdb").exists());
    assert!(!dest.join("text.sqlite3-wal").exists());

    let copy = serve(&scratch, &dest, "snap-run");
    let other = copy.client().await;
    assert_eq!(other.count(count("c")).await.expect("count").count, 30);
    assert_eq!(other.status().await.expect("status").generation, generation);
    // The original keeps serving.
    assert_eq!(client.count(count("c")).await.expect("count").count, 30);
}

#[tokio::test]
async fn bad_destinations_are_refused_and_nothing_is_left_behind() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    let existing = scratch.path("exists");
    std::fs::create_dir_all(&existing).expect("mkdir");
    let data = std::fs::canonicalize(&daemon.data).expect("canonical");
    for (dest, why) in [
        (existing.display().to_string(), "already exists"),
        (
            data.join("inside").display().to_string(),
            "inside the data directory",
        ),
        ("relative/path".to_owned(), "absolute"),
        (
            scratch.path("no/such/parent").display().to_string(),
            "parent",
        ),
    ] {
        let err = client.snapshot(dest.clone()).await.expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::SnapshotFailed), "{dest}: {err}");
        assert!(err.to_string().contains(why), "{dest}: {err}");
    }
    assert!(!data.join("inside").exists());
    // The CLI resolves a relative destination against its own working directory.
    let out = std::process::Command::new(crate::support::CTXD)
        .args([
            "--socket",
            daemon.socket.to_str().expect("utf-8"),
            "snapshot",
            "rel-snap",
        ])
        .current_dir(scratch.dir.path())
        .output()
        .expect("run ctxd snapshot");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(scratch.path("rel-snap/manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_snapshots_under_write_load_each_hold_every_earlier_acknowledged_write() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "load", 4).await;
    let load = WriteLoad::start(&daemon.socket, "load", 4, 4);
    let mut snapshots = Vec::new();
    for i in 0..20 {
        let before = load.acked();
        let dest = scratch.path(&format!("snap-{i}"));
        let snapshot = client
            .snapshot(dest.display().to_string())
            .await
            .expect("snapshot under load");
        snapshots.push((dest, snapshot.generation, before));
    }
    load.stop().await;
    let first_before = snapshots.first().map_or(0, |s| s.2.len());
    let last_before = snapshots.last().map_or(0, |s| s.2.len());
    eprintln!(
        "writes acknowledged before the first snapshot: {first_before}, before the last: {last_before}"
    );
    assert!(
        last_before > first_before,
        "the writers made progress while snapshots were taken"
    );
    for (i, (dest, generation, before)) in snapshots.into_iter().enumerate() {
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["generation"], generation, "snapshot {i}");
        let checked = ctxd(&["check", "--data", dest.to_str().expect("utf-8")]);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "snapshot {i} fails check: {checked:?}"
        );
        let copy = serve(&scratch, &dest, &format!("run-{i}"));
        let other = copy.client().await;
        assert_eq!(
            other.status().await.expect("status").generation,
            generation,
            "snapshot {i}"
        );
        assert_holds(&other, "load", &before, &format!("snapshot {i}")).await;
    }
}

#[tokio::test]
async fn restore_puts_an_older_snapshot_in_place_and_serves_exactly_it() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    let write = |ids: std::ops::Range<u32>| Upsert {
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
    };
    client.upsert(write(0..10)).await.expect("upsert");
    let dest = scratch.path("older");
    let older = client
        .snapshot(dest.display().to_string())
        .await
        .expect("snapshot");
    client.upsert(write(10..25)).await.expect("newer writes");
    assert_eq!(client.count(count("c")).await.expect("count").count, 25);

    let socket = daemon.socket.to_str().expect("utf-8");
    // A damaged snapshot is refused before anything is touched.
    let damaged = scratch.path("damaged");
    std::fs::create_dir_all(damaged.join("vectors")).expect("mkdir");
    for file in &older.files {
        std::fs::copy(dest.join(&file.path), damaged.join(&file.path)).expect("copy");
    }
    std::fs::copy(dest.join("manifest.json"), damaged.join("manifest.json")).expect("copy");
    std::fs::write(damaged.join("text.sqlite3"), b"not a database").expect("damage");
    let out = ctxd(&[
        "--socket",
        socket,
        "restore",
        damaged.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("differs from the manifest"));
    assert_eq!(
        client.count(count("c")).await.expect("count").count,
        25,
        "untouched"
    );

    let out = ctxd(&["--socket", socket, "restore", dest.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(client.count(count("c")).await.expect("count").count, 10);
    let status = client.status().await.expect("status");
    assert_eq!(status.generation, older.generation);
    assert!(status.leases.is_empty() && status.problem.is_none());
    // Nothing is left beside the data directory.
    let parent = daemon.data.parent().expect("parent");
    let leftovers: Vec<String> = std::fs::read_dir(parent)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = ctxd(&["--socket", socket, "check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Two snapshots racing for one destination (they once shared a temporary directory, so one
/// could delete the other's copy in progress): exactly one wins, nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_snapshots_to_one_destination_leave_exactly_one_valid_snapshot() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    put(
        &client,
        "c",
        vec![doc("a", Some("text"), Some(vec![1.0, 2.0]), json!(null))],
    )
    .await;
    let dest = scratch.path("same");
    let other = daemon.client().await;
    let (first, second) = tokio::join!(
        client.snapshot(dest.display().to_string()),
        other.snapshot(dest.display().to_string())
    );
    let succeeded = [first.is_ok(), second.is_ok()]
        .iter()
        .filter(|ok| **ok)
        .count();
    assert_eq!(succeeded, 1, "{first:?} / {second:?}");
    let failure = first.err().or(second.err()).expect("one failed");
    assert!(
        failure.code() == Some(ErrorCode::SnapshotFailed),
        "{failure}"
    );
    let checked = ctxd(&["check", "--data", dest.to_str().expect("utf-8")]);
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    let leftovers = std::fs::read_dir(scratch.dir.path())
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .count();
    assert_eq!(leftovers, 0, "no temporary directory is left behind");
}
