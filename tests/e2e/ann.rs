//! The ANN tier (`--ann-threshold`): recall against exact search, read-your-writes while
//! builds are pending or running, deleted ids never returned, release and restart during a
//! build, and reuse of the index after a clean stop.
//!
//! Background builds are waited for through the daemon's log lines (`ann build started` /
//! `ann build finished`), polled with `eventually`: the builder works after the writes that
//! caused it were acknowledged, so there is nothing a client could wait on instead.

use crate::data::{create, doc, filter, put};
use crate::support::{
    Daemon, EXIT_TIMEOUT, Rng, Scratch, Start, eventually, handles_into, hit_ids,
};
use ctxd_client::Client;
use ctxd_proto::{Delete, Resume, Search, SearchMode, Upsert};
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// How long a background build may take in a debug daemon on a busy 2-core machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

const DIM: usize = 32;

fn start(scratch: &Scratch, threshold: u64) -> Daemon {
    Start::new(scratch)
        .arg("--ann-threshold")
        .arg(&threshold.to_string())
        .spawn()
}

/// A vector shaped like an embedding: near one of 64 fixed directions, with noise. Uniformly
/// random vectors are the worst case for any ANN index (every point is almost equally far from
/// every other); real embeddings cluster, and the default effort is calibrated on real ones
/// (the scifact bench). `uniform_data_needs_more_effort` covers the worst case.
fn random_vector(rng: &mut Rng) -> Vec<f32> {
    let center = rng.next() % 64;
    let mut axis = Rng(0xce47e5 + center);
    (0..DIM)
        .map(|_| axis.unit() + 0.5 * (rng.unit() + rng.unit() + rng.unit()))
        .collect()
}

fn uniform_vector(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.unit()).collect()
}

fn vector_search(collection: &str, vector: &[f32], k: u32, exact: bool) -> Search {
    Search {
        collection: collection.to_owned(),
        text: None,
        vector: Some(vector.to_vec().into()),
        k: Some(k),
        filter: None,
        mode: Some(SearchMode::Vector),
        include: None,
        rrf_k: None,
        weights: None,
        exact,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    }
}

/// Upserts `n` documents `{prefix}{i}` with random vectors and a `half` metadata flag; returns
/// the vectors by id.
async fn fill(
    client: &Client,
    collection: &str,
    prefix: &str,
    n: usize,
    rng: &mut Rng,
) -> Vec<(String, Vec<f32>)> {
    let docs: Vec<(String, Vec<f32>)> = (0..n)
        .map(|i| (format!("{prefix}{i}"), random_vector(rng)))
        .collect();
    for chunk in docs.chunks(1000) {
        client
            .upsert(Upsert {
                collection: collection.to_owned(),
                documents: chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (id, v))| doc(id, None, Some(v.clone()), json!({"half": i % 2 == 0})))
                    .collect(),
            })
            .await
            .expect("upsert");
    }
    docs
}

/// Log lines of builds of `collection` that finished (`pending=0` when nothing was left).
fn finished_builds(daemon: &Daemon, collection: &str) -> Vec<String> {
    daemon
        .stderr_so_far()
        .lines()
        .filter(|line| {
            line.contains("ann build finished")
                && line.contains(&format!("collection={collection} "))
        })
        .map(str::to_owned)
        .collect()
}

/// Waits until a build of `collection` has finished with nothing left pending.
fn wait_until_built(daemon: &Daemon, collection: &str) {
    assert!(
        eventually(BUILD_TIMEOUT, || finished_builds(daemon, collection)
            .iter()
            .any(|line| line.contains(" pending=0 "))),
        "no completed build of `{collection}`; stderr:\n{}",
        daemon.stderr_so_far()
    );
}

/// The id of the nearest vector.
async fn nearest(client: &Client, collection: &str, vector: &[f32]) -> Option<String> {
    hit_ids(client, vector_search(collection, vector, 1, false))
        .await
        .into_iter()
        .next()
}

/// Mean recall@10 of default searches against `exact: true` over `queries`.
async fn recall(client: &Client, collection: &str, queries: &[Vec<f32>]) -> f64 {
    recall_at(client, collection, queries, None).await
}

/// Mean recall@10 of searches with `effort` against `exact: true` over `queries`.
async fn recall_at(
    client: &Client,
    collection: &str,
    queries: &[Vec<f32>],
    effort: Option<u32>,
) -> f64 {
    let mut found = 0usize;
    let mut wanted = 0usize;
    for query in queries {
        let mut params = vector_search(collection, query, 10, false);
        params.effort = effort;
        let approximate: HashSet<String> = hit_ids(client, params).await.into_iter().collect();
        let exact = hit_ids(client, vector_search(collection, query, 10, true)).await;
        wanted += exact.len();
        found += exact.iter().filter(|id| approximate.contains(*id)).count();
    }
    found as f64 / wanted.max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_search_recall_read_your_writes_and_deletes() {
    let scratch = Scratch::new();
    let daemon = start(&scratch, 300);
    let client = daemon.client().await;
    create(&client, "ann", DIM as u32).await;
    let mut rng = Rng(0x05ee_da77);
    let docs = fill(&client, "ann", "d", 5000, &mut rng).await;
    wait_until_built(&daemon, "ann");
    assert!(
        daemon.stderr_so_far().contains("first=true"),
        "the collection entered the tier with a first build"
    );

    // Recall against exact search, unfiltered and with a filter too large for the exact path
    // (2,500 candidates: arroy's candidate filter).
    let queries: Vec<Vec<f32>> = (0..40).map(|_| random_vector(&mut rng)).collect();
    let unfiltered = recall(&client, "ann", &queries).await;
    assert!(unfiltered >= 0.95, "recall@10 {unfiltered}");
    for query in queries.iter().take(10) {
        let mut approximate = vector_search("ann", query, 10, false);
        approximate.filter = Some(filter(json!({"half": true})));
        let mut exact = approximate.clone();
        exact.exact = true;
        let approximate = client.search(approximate).await.expect("filtered");
        let exact = client.search(exact).await.expect("filtered exact");
        assert_eq!(approximate.hits.len(), 10);
        let exact_ids: HashSet<&str> = exact.hits.iter().map(|h| h.id.as_str()).collect();
        let common = approximate
            .hits
            .iter()
            .filter(|h| exact_ids.contains(h.id.as_str()))
            .count();
        assert!(common >= 9, "filtered recall {common}/10");
    }

    // Results have today's shape: ranks, exact scores, best first.
    let query = &queries[0];
    let hits = client
        .search(vector_search("ann", query, 10, false))
        .await
        .expect("search")
        .hits;
    let exact = client
        .search(vector_search("ann", query, 10, true))
        .await
        .expect("exact")
        .hits;
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit.ranks.vector, Some(i as u32 + 1));
        assert_eq!(hit.ranks.lexical, None);
        assert!(hit.text.is_none() && hit.metadata.is_some() && hit.vector.is_none());
        if let Some(same) = exact.iter().find(|e| e.id == hit.id) {
            assert!((same.score - hit.score).abs() < 1e-6, "scores are exact");
        }
    }
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    // Read-your-writes while builds are pending or running: every round's writes trigger a
    // build, and every search right after an acknowledgement must already reflect it.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for round in 0..20 {
        // A new document is its own nearest neighbour at once.
        let fresh = random_vector(&mut rng);
        let id = format!("new{round}");
        put(
            &client,
            "ann",
            vec![doc(&id, None, Some(fresh.clone()), json!({"half": true}))],
        )
        .await;
        let top = hit_ids(&client, vector_search("ann", &fresh, 3, false)).await;
        assert_eq!(
            top.first(),
            Some(&id),
            "round {round}: a new vector is found at once"
        );

        // A replaced vector is found where it is now, not where it was.
        let (moved, old) = &docs[round * 7 + 1];
        let new = random_vector(&mut rng);
        client
            .upsert(Upsert {
                collection: "ann".into(),
                documents: vec![doc(moved, None, Some(new.clone()), json!({"half": false}))],
            })
            .await
            .expect("replace");
        assert_eq!(
            nearest(&client, "ann", &new).await.as_deref(),
            Some(moved.as_str()),
            "round {round}: a replaced vector is found at its new place"
        );
        let near_old = client
            .search(vector_search("ann", old, 10, false))
            .await
            .expect("search")
            .hits;
        if let Some(hit) = near_old.iter().find(|h| &h.id == moved) {
            assert!(
                hit.score < 0.999,
                "round {round}: {moved} scored by its old vector"
            );
        }

        // A deleted document is never returned again.
        let (gone, vector) = &docs[round * 7 + 2];
        client
            .delete(Delete {
                collection: "ann".into(),
                ids: Some(vec![gone.clone()]),
                filter: None,
                text_filter: None,
            })
            .await
            .expect("delete");
        deleted.insert(gone.clone());
        let found = hit_ids(&client, vector_search("ann", vector, 10, false)).await;
        assert!(!found.contains(gone), "round {round}: {gone} was deleted");
        for query in queries.iter().take(3) {
            let found = hit_ids(&client, vector_search("ann", query, 50, false)).await;
            assert!(
                found.iter().all(|id| !deleted.contains(id)),
                "round {round}: a deleted id was returned"
            );
        }
    }
    // Once the builder has caught up, everything still holds, now from the index.
    wait_until_built(&daemon, "ann");
    let top = hit_ids(&client, vector_search("ann", &docs[2].1, 10, false)).await;
    assert!(!top.contains(&docs[2].0));
    for (id, vector) in docs.iter().skip(500).step_by(97) {
        assert_eq!(
            nearest(&client, "ann", vector).await.as_deref(),
            Some(id.as_str())
        );
    }
    let settled = recall(&client, "ann", &queries).await;
    assert!(settled >= 0.95, "recall@10 after the builds {settled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_during_a_build_closes_everything_and_resume_continues() {
    let scratch = Scratch::new();
    let mut rng = Rng(0xb16);
    // Written without the tier, so the next start begins with one long first build.
    let docs = {
        let daemon = start(&scratch, 0);
        let client = daemon.client().await;
        create(&client, "big", DIM as u32).await;
        let docs = fill(&client, "big", "b", 40_000, &mut rng).await;
        client.shutdown().await.expect("stop");
        let mut daemon = daemon;
        assert!(daemon.wait_exit(EXIT_TIMEOUT).0.success());
        docs
    };
    let daemon = start(&scratch, 300);
    let client = daemon.client().await;
    assert!(
        eventually(BUILD_TIMEOUT, || daemon
            .stderr_so_far()
            .contains("ann build started")),
        "no build started; stderr:\n{}",
        daemon.stderr_so_far()
    );
    let lease = client
        .release(ctxd_proto::Release {
            holder: Some("backup".into()),
            ttl_s: Some(60),
            drain_ms: None,
        })
        .await
        .expect("release during a build");
    let data = std::fs::canonicalize(&daemon.data).expect("canonical");
    assert_eq!(handles_into(daemon.pid(), &data), Vec::<PathBuf>::new());
    let log = daemon.stderr_so_far();
    assert!(
        log.contains("ann build cancelled") || !finished_builds(&daemon, "big").is_empty(),
        "the running build was cancelled (unless it had finished first): {log}"
    );
    let paths: Vec<&str> = lease.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        paths.contains(&"vectors/ann/data.mdb") && !paths.iter().any(|p| p.ends_with("lock.mdb")),
        "the ANN index is listed, no reader table: {paths:?}"
    );
    client
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect("resume");

    // Right after the resume (the index may not be built yet) and after the build.
    for (id, vector) in docs.iter().step_by(1499) {
        assert_eq!(
            nearest(&client, "big", vector).await.as_deref(),
            Some(id.as_str())
        );
    }
    wait_until_built(&daemon, "big");
    let queries: Vec<Vec<f32>> = (0..20).map(|_| random_vector(&mut rng)).collect();
    let after = recall(&client, "big", &queries).await;
    assert!(after >= 0.95, "recall@10 after resume {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_a_build_loses_no_acknowledged_write() {
    let scratch = Scratch::new();
    let mut acked: Vec<(String, Vec<f32>)> = Vec::new();
    {
        let daemon = start(&scratch, 300);
        let client = daemon.client().await;
        create(&client, "k", DIM as u32).await;
        let mut rng = Rng(0x4b1);
        acked.extend(fill(&client, "k", "first", 20_000, &mut rng).await);
        assert!(
            eventually(BUILD_TIMEOUT, || daemon
                .stderr_so_far()
                .contains("ann build started")),
            "no build started"
        );
        // More writes while the build runs, then kill -9.
        acked.extend(fill(&client, "k", "during", 2000, &mut rng).await);
        daemon.signal(rustix::process::Signal::KILL);
        let mut daemon = daemon;
        let _ = daemon.wait_exit(EXIT_TIMEOUT);
    }
    let daemon = start(&scratch, 300);
    let client = daemon.client().await;
    for (id, vector) in &acked {
        assert_eq!(
            nearest(&client, "k", vector).await.as_deref(),
            Some(id.as_str()),
            "an acknowledged write is found after the crash"
        );
    }
    // The index is rebuilt from the main store, and serves correctly once built.
    wait_until_built(&daemon, "k");
    for (id, vector) in acked.iter().step_by(211) {
        assert_eq!(
            nearest(&client, "k", vector).await.as_deref(),
            Some(id.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_reuses_the_index_and_its_pending_changes() {
    let scratch = Scratch::new();
    let mut rng = Rng(0xc1ea);
    let (docs, changed, gone) = {
        let daemon = start(&scratch, 300);
        let client = daemon.client().await;
        create(&client, "r", DIM as u32).await;
        let docs = fill(&client, "r", "r", 3000, &mut rng).await;
        wait_until_built(&daemon, "r");
        // Changes that may still be pending at the stop.
        let changed = fill(&client, "r", "late", 50, &mut rng).await;
        client
            .delete(Delete {
                collection: "r".into(),
                ids: Some(vec![docs[0].0.clone()]),
                filter: None,
                text_filter: None,
            })
            .await
            .expect("delete");
        client.shutdown().await.expect("stop");
        let mut daemon = daemon;
        let (status, _) = daemon.wait_exit(EXIT_TIMEOUT);
        assert!(status.success());
        let gone = docs[0].0.clone();
        (docs, changed, gone)
    };
    let daemon = start(&scratch, 300);
    let client = daemon.client().await;
    let log = daemon.stderr_so_far();
    assert!(
        log.contains("collection in the ANN tier") && log.contains("reused=true"),
        "the index is reused, not rebuilt: {log}"
    );
    for (id, vector) in changed.iter().chain(docs.iter().skip(1).step_by(101)) {
        assert_eq!(
            nearest(&client, "r", vector).await.as_deref(),
            Some(id.as_str())
        );
    }
    let found = hit_ids(&client, vector_search("r", &docs[0].1, 10, false)).await;
    assert!(!found.contains(&gone));
    let queries: Vec<Vec<f32>> = (0..20).map(|_| random_vector(&mut rng)).collect();
    let reused = recall(&client, "r", &queries).await;
    assert!(reused >= 0.95, "recall@10 after the restart {reused}");
    assert!(
        !daemon.stderr_so_far().contains("first=true"),
        "no first build after a clean restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniform_data_needs_more_effort() {
    let scratch = Scratch::new();
    let daemon = start(&scratch, 300);
    let client = daemon.client().await;
    create(&client, "u", DIM as u32).await;
    let mut rng = Rng(0x0417);
    let docs: Vec<_> = (0..3000)
        .map(|i| {
            doc(
                &format!("u{i}"),
                None,
                Some(uniform_vector(&mut rng)),
                json!(null),
            )
        })
        .collect();
    for chunk in docs.chunks(1000) {
        put(&client, "u", chunk.to_vec()).await;
    }
    wait_until_built(&daemon, "u");
    let queries: Vec<Vec<f32>> = (0..30).map(|_| uniform_vector(&mut rng)).collect();
    let default = recall_at(&client, "u", &queries, None).await;
    let more = recall_at(&client, "u", &queries, Some(25)).await;
    assert!(
        more >= 0.95,
        "recall@10 at effort 25: {more} (default: {default})"
    );
    assert!(more >= default);
}
