//! LMDB maps that grow (`storage::map_size`): a daemon whose maps start at 256 KiB
//! (`CTXD_INITIAL_MAP_SIZE`) takes many times that under concurrent writers, searches and a
//! snapshot. Every acknowledged write is kept, the snapshot and the store check clean, the ANN
//! index grows its own map, a release closes the grown maps, and after a resume or a restart
//! (maps open at what the files hold) writing grows them again.

use crate::data::{create, doc};
use crate::support::{Daemon, EXIT_TIMEOUT, Rng, Scratch, Start, ctxd, eventually, handles_into};
use crate::writers::assert_holds;
use ctxd_client::Client;
use ctxd_proto::{Search, SearchMode, Upsert};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where both maps start: the least `CTXD_INITIAL_MAP_SIZE` allows, far below the data.
const INITIAL: u64 = 64 << 10;
const DIM: usize = 32;
/// Writers, and the batches of [`BATCH`] documents each sends: 4,000 vectors of 128 bytes, about
/// 1 MiB of LMDB pages, sixteen times the initial map.
const WRITERS: usize = 2;
const BATCHES: usize = 40;
const BATCH: usize = 50;
/// The collection enters the ANN tier half way, so the index is built (and its map grows)
/// while the writes go on.
const ANN_THRESHOLD: u64 = 2_000;
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

fn start(scratch: &Scratch, data: &Path) -> Daemon {
    Start::new(scratch)
        .data(data)
        .env("CTXD_INITIAL_MAP_SIZE", INITIAL.to_string())
        .arg("--ann-threshold")
        .arg(&ANN_THRESHOLD.to_string())
        .spawn()
}

/// A document's vector, shaped like an embedding (near one of 16 directions, with noise), its
/// number in the first component (scaled small), so a read can tell it is whole and its own.
fn vector(n: u64, rng: &mut Rng) -> Vec<f32> {
    let mut axis = Rng(0x6178_6500 + rng.next() % 16);
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| axis.unit() + 0.5 * (rng.unit() + rng.unit()))
        .collect();
    v[0] = n as f32 * 1e-6;
    v
}

/// The number [`vector`] put in `v`.
fn number(v: &[f32]) -> u64 {
    (f64::from(v[0]) * 1e6).round() as u64
}

fn search(vector: Vec<f32>) -> Search {
    Search {
        collection: "v".into(),
        text: None,
        vector: Some(vector.into()),
        k: Some(10),
        filter: None,
        mode: Some(SearchMode::Vector),
        include: None,
        rrf_k: None,
        weights: None,
        exact: false,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    }
}

/// Upserts one batch of [`BATCH`] documents numbered from `first`; returns their ids.
async fn write_batch(client: &Client, first: u64, rng: &mut Rng) -> Vec<String> {
    let ids: Vec<String> = (first..first + BATCH as u64)
        .map(|n| format!("d{n}"))
        .collect();
    let documents = ids
        .iter()
        .zip(first..)
        .map(|(id, n)| doc(id, None, Some(vector(n, rng)), json!({"n": n})))
        .collect();
    client
        .upsert(Upsert {
            collection: "v".into(),
            documents,
        })
        .await
        .expect("a write while maps grow");
    ids
}

/// Upserts `batches` batches numbered from `first`; returns their ids.
async fn write_more(client: &Client, first: u64, batches: u64) -> BTreeSet<String> {
    let mut rng = Rng(first);
    let mut ids = BTreeSet::new();
    for b in 0..batches {
        ids.extend(write_batch(client, first + b * BATCH as u64, &mut rng).await);
    }
    ids
}

/// Log lines saying a map grew, of the environment `what`.
fn growths(daemon: &Daemon, what: &str) -> usize {
    daemon
        .stderr_so_far()
        .lines()
        .filter(|line| line.contains("memory map grown") && line.contains(what))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_grow_under_writes_searches_and_a_snapshot() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let mut daemon = start(&scratch, &data);
    let client = daemon.client().await;
    create(&client, "v", DIM as u32).await;

    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (socket, acked, written) = (
                daemon.socket.clone(),
                Arc::clone(&acked),
                Arc::clone(&written),
            );
            tokio::spawn(async move {
                let client = Client::connect_to(&socket).await.expect("connect");
                let mut rng = Rng(0x6d61_7000 + w as u64);
                for b in 0..BATCHES {
                    let first = ((w * BATCHES + b) * BATCH) as u64;
                    let ids = write_batch(&client, first, &mut rng).await;
                    acked.lock().expect("lock").extend(ids);
                    written.fetch_add(BATCH as u64, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Searches all along: each answers, and each hit's vector is whole.
    let done = Arc::new(AtomicBool::new(false));
    let searchers: Vec<_> = (0..2)
        .map(|r| {
            let (socket, done) = (daemon.socket.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let client = Client::connect_to(&socket).await.expect("connect");
                let mut rng = Rng(0x7365_6100 + r);
                let mut searches = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let mut params = search(vector(0, &mut rng));
                    params.include = Some(vec![ctxd_proto::Field::Vector]);
                    let result = client
                        .search(params)
                        .await
                        .expect("a search while maps grow");
                    assert!(result.hits.len() <= 10);
                    for hit in &result.hits {
                        let v = hit.vector.as_ref().expect("the hit's vector");
                        assert_eq!(v.len(), DIM);
                        assert_eq!(format!("d{}", number(v)), hit.id, "a vector not its own");
                    }
                    searches += 1;
                }
                searches
            })
        })
        .collect();

    // A snapshot once a third is written: it holds everything acknowledged before it.
    assert!(
        eventually(Duration::from_secs(120), || written.load(Ordering::SeqCst)
            >= (WRITERS * BATCHES * BATCH / 3) as u64),
        "the writers stalled"
    );
    let before = acked.lock().expect("lock").clone();
    let snap = scratch.path("snap");
    client
        .snapshot(snap.display().to_string())
        .await
        .expect("a snapshot while the maps grow");

    for writer in writers {
        writer.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    for searcher in searchers {
        assert!(searcher.await.expect("searcher") > 0, "no search ran");
    }
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), WRITERS * BATCHES * BATCH);
    assert_holds(&client, "v", &acked, "after growing").await;
    let check = client.check().await.expect("check");
    assert!(check.passed, "{check:?}");

    let vector_growths = growths(&daemon, "the vector store");
    assert!(
        vector_growths >= 3,
        "the vector map grew {vector_growths} times; stderr:\n{}",
        daemon.stderr_so_far()
    );
    let file = std::fs::metadata(data.join("vectors/data.mdb"))
        .expect("data.mdb")
        .len();
    assert!(file > 8 * INITIAL, "data.mdb is {file} bytes");
    // The ANN index grew its map as well, and its builds finish.
    assert!(
        eventually(BUILD_TIMEOUT, || daemon.stderr_so_far().lines().any(|l| l
            .contains("ann build finished")
            && l.contains(" pending=0 "))),
        "no completed ANN build; stderr:\n{}",
        daemon.stderr_so_far()
    );
    eprintln!(
        "the vector map grew {vector_growths} times, the ANN map {} times; data.mdb {file} bytes",
        growths(&daemon, "the ANN index")
    );
    assert!(
        growths(&daemon, "the ANN index") >= 1,
        "the ANN map never grew; stderr:\n{}",
        daemon.stderr_so_far()
    );

    // A release closes the grown maps like any other; after the resume they open at what the
    // files hold, and grow again (opening makes room for a first write).
    let grown_before = growths(&daemon, "the vector store");
    let lease = client
        .release(ctxd_proto::Release {
            holder: Some("map-growth".into()),
            ttl_s: Some(60),
            drain_ms: None,
        })
        .await
        .expect("release");
    let canonical = std::fs::canonicalize(&data).expect("canonical");
    assert_eq!(
        handles_into(daemon.pid(), &canonical),
        Vec::<PathBuf>::new()
    );
    client
        .resume(ctxd_proto::Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect("resume");
    let resumed = write_more(&client, 2_000_000, 5).await;
    assert!(
        growths(&daemon, "the vector store") > grown_before,
        "no growth after the resume"
    );
    assert_holds(&client, "v", &resumed, "written after the resume").await;

    // The snapshot checks clean and holds what was acknowledged before it.
    let out = ctxd(&["check", "--data", snap.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    {
        let other = Scratch::new();
        let copy = Start::new(&other).data(&snap).spawn();
        let copied = copy.client().await;
        assert_holds(&copied, "v", &before, "in the snapshot").await;
    }

    // A restart opens the maps at what the files hold; the next writes grow them again.
    let out = ctxd(&["--socket", daemon.socket.to_str().expect("utf-8"), "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (status, _) = daemon.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{status}");
    let daemon = start(&scratch, &data);
    let client = daemon.client().await;
    let more = write_more(&client, 1_000_000, 10).await;
    assert!(
        growths(&daemon, "the vector store") >= 1,
        "no growth after the restart"
    );
    assert_holds(&client, "v", &acked, "after the restart").await;
    assert_holds(&client, "v", &resumed, "after the restart").await;
    assert_holds(&client, "v", &more, "written after the restart").await;
    let check = client.check().await.expect("check");
    assert!(check.passed, "{check:?}");
}

/// Under a limit on virtual memory far below the 1 TiB a map starts at (`ulimit -v`, as some
/// shared hosts set), the daemon still opens the store, with maps that fit, and serves writes.
/// (It used to fail at start with "Cannot allocate memory".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_on_virtual_memory_starts_the_maps_smaller() {
    let scratch = Scratch::new();
    let daemon = Start::new(&scratch).address_space(8 << 30).spawn();
    let log = daemon.stderr_so_far();
    assert!(
        log.contains("the memory maps start smaller"),
        "the maps were not made to fit; stderr:\n{log}"
    );
    let client = daemon.client().await;
    create(&client, "v", DIM as u32).await;
    let ids = write_more(&client, 0, 20).await;
    assert_holds(&client, "v", &ids, "under the limit").await;
}
