//! Online snapshots: consistent, verified, and complete for everything acknowledged before.

use crate::data::{create, doc, numbered, put};
use crate::support::{Daemon, Scratch, Start, ctxd};
use crate::writers::{WriteLoad, assert_holds};
use ctxd_proto::{Count, ErrorCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

fn count(collection: &str) -> Count {
    Count {
        collection: collection.to_owned(),
        filter: None,
        text_filter: None,
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

/// The ids of `documents` in a data directory that also record a vector, read straight from its
/// SQLite file (the caller has checked the directory, so each of those has its vector in LMDB).
fn ids_with_vectors(dir: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(dir.join("text.sqlite3")).expect("open the copy");
    let mut select = conn
        .prepare("SELECT id FROM documents WHERE has_vector = 1")
        .expect("prepare");
    select
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("read ids")
}

/// Overlapping snapshots once shared one journal hold: the first to finish cleared it for all,
/// the others' journal rows were pruned under them, and they were published without their
/// vectors (publishing compared generations only). Every round starts two to four snapshots at
/// once under four writers; every snapshot must be published, pass `check --data`, and hold
/// every write acknowledged before it was asked for, with its vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_snapshots_under_writers_each_pass_check_and_hold_every_earlier_write() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "load", 4).await;
    // Enough data that copies take a while, so the snapshots of a round really overlap.
    let text = "otters hold hands while they sleep in the kelp ".repeat(10);
    for batch in 0..20 {
        let documents = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                doc(
                    &format!("seed{n}"),
                    Some(&text),
                    Some(vec![n as f32, 1.0, 0.5, 0.25]),
                    json!({"n": n}),
                )
            })
            .collect();
        put(&client, "load", documents).await;
    }
    let load = WriteLoad::start(&daemon.socket, "load", 4, 4);
    let mut taken = Vec::new();
    for round in 0..20 {
        let before = load.acked();
        let snapshots = 2 + round % 3;
        let requests = (0..snapshots).map(|i| {
            let socket = daemon.socket.clone();
            let dest = scratch.path(&format!("round-{round}-snap-{i}"));
            tokio::spawn(async move {
                let client = ctxd_client::Client::connect_to(&socket)
                    .await
                    .expect("connect");
                let result = client.snapshot(dest.display().to_string()).await;
                (dest, result)
            })
        });
        for request in requests.collect::<Vec<_>>() {
            let (dest, result) = request.await.expect("snapshot task");
            let snapshot = result.unwrap_or_else(|e| panic!("round {round}: {e}"));
            taken.push((dest, snapshot.generation, before.clone()));
        }
    }
    let acked = load.stop().await;
    assert!(
        acked.len() > taken.first().map_or(0, |t| t.2.len()),
        "the writers progressed"
    );
    for (dest, generation, before) in taken {
        let name = dest.display().to_string();
        let checked = ctxd(&["check", "--data", &name]);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "{name} fails check: {checked:?}"
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["generation"], generation, "{name}");
        let held = ids_with_vectors(&dest);
        let lost: Vec<&String> = before.difference(&held).collect();
        assert!(
            lost.is_empty(),
            "{name} lacks acknowledged writes: {lost:?}"
        );
    }
    assert_no_partial_snapshots(&scratch);
}

/// No temporary snapshot directory is left in the scratch directory.
fn assert_no_partial_snapshots(scratch: &Scratch) {
    let leftovers: Vec<String> = std::fs::read_dir(scratch.dir.path())
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
