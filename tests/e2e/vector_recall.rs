//! Recall of the default vector search against `exact: true`, through the daemon, on sets
//! large enough to be served by the in-memory sketch (more than its 1,024-vector warm-up):
//! real embeddings (the shared SciFact vectors), data whose components are all positive (what
//! the sketch's center is for), filters, deletes, and a restart (which rebuilds the sketch from
//! the stored vectors).

use crate::data::{doc, filter, put};
use crate::support::{Daemon, Rng, Scratch, ctxd, hit_ids};
use ctxd_client::Client;
use ctxd_proto::{CreateCollection, Delete, Distance, Search};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const K: usize = 10;

fn search(collection: &str, vector: &[f32], exact: bool) -> Search {
    Search {
        collection: collection.to_owned(),
        text: None,
        vector: Some(vector.to_vec().into()),
        k: Some(K as u32),
        filter: None,
        mode: None,
        include: Some(Vec::new()),
        rrf_k: None,
        weights: None,
        exact,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    }
}

async fn create(client: &Client, name: &str, dimension: u32, distance: Distance) {
    client
        .create_collection(CreateCollection {
            name: name.to_owned(),
            dimension: Some(dimension),
            embedder: None,
            distance: Some(distance),
            tokenizer: None,
            if_not_exists: false,
        })
        .await
        .expect("create collection");
}

/// recall@10 of the default search against `exact: true` over `queries`, and the worst query.
async fn recall(client: &Client, collection: &str, queries: &[Vec<f32>]) -> (f64, usize) {
    let (mut found, mut worst) = (0, K);
    for query in queries {
        let exact = hit_ids(client, search(collection, query, true)).await;
        let got = hit_ids(client, search(collection, query, false)).await;
        assert_eq!(got.len(), exact.len(), "fewer hits than the exact search");
        let hits = exact.iter().filter(|id| got.contains(id)).count();
        found += hits;
        worst = worst.min(hits);
    }
    (found as f64 / (K * queries.len()) as f64, worst)
}

fn shared(path: &str) -> Vec<f32> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(path);
    let bytes = std::fs::read(&file)
        .unwrap_or_else(|e| panic!("the shared data {} is missing: {e}", file.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[tokio::test]
async fn default_search_finds_the_exact_top_10_of_real_embeddings() {
    let docs = shared("scifact/doc_vectors.f32");
    let queries = shared("scifact/query_vectors.f32");
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "scifact", 384, Distance::Cosine).await;
    let rows: Vec<Vec<f32>> = docs.chunks_exact(384).map(<[f32]>::to_vec).collect();
    for (start, chunk) in rows.chunks(1000).enumerate() {
        let documents = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let n = start * 1000 + i;
                doc(&format!("d{n}"), None, Some(v.clone()), json!({"n": n}))
            })
            .collect();
        put(&client, "scifact", documents).await;
    }
    let queries: Vec<Vec<f32>> = queries
        .chunks_exact(384)
        .step_by(4)
        .map(<[f32]>::to_vec)
        .collect();
    // Measured 0.999 at the default effort (`cargo bench -p ctxd --bench vector_scan`).
    let (got, worst) = recall(&client, "scifact", &queries).await;
    assert!(
        got >= 0.99,
        "recall@10 {got} over {} queries",
        queries.len()
    );
    assert!(worst >= 7, "a query found only {worst} of its exact top 10");

    // A filter keeps its meaning: only allowed documents, and the filtered exact top 10
    // (3,000 allowed: too many to score one by one, so the sketch's shortlist serves it).
    let allowed = json!({"n": {"$lt": 3000}});
    let mut found = 0;
    for query in &queries[..50] {
        let mut params = search("scifact", query, true);
        params.filter = Some(filter(allowed.clone()));
        let exact = hit_ids(&client, params.clone()).await;
        params.exact = false;
        let got = hit_ids(&client, params).await;
        assert!(
            got.iter()
                .all(|id| id[1..].parse::<usize>().expect("n") < 3000)
        );
        found += exact.iter().filter(|id| got.contains(id)).count();
    }
    assert!(
        found * 100 >= 99 * 50 * K,
        "filtered recall {found}/{}",
        50 * K
    );
}

#[tokio::test]
async fn data_away_from_the_origin_deletes_and_restarts_keep_recall() {
    // Clustered vectors whose components are all positive: every sign of an uncentred vector
    // would be +, and a sketch of signs alone would rank at random.
    let (dim, count, clusters) = (64, 4000, 50);
    let mut rng = Rng(0x0ff5_e7da_7a00_0001);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| 3.0 + rng.unit()).collect())
        .collect();
    let vectors: Vec<Vec<f32>> = (0..count)
        .map(|i| {
            centres[i % clusters]
                .iter()
                .map(|c| c + 0.3 * rng.unit())
                .collect()
        })
        .collect();
    assert!(vectors.iter().flatten().all(|&v| v > 0.0));
    let queries: Vec<Vec<f32>> = (0..60)
        .map(|i| {
            vectors[(i * 67) % count]
                .iter()
                .map(|v| v + 0.2 * rng.unit())
                .collect()
        })
        .collect();

    let scratch = Scratch::new();
    let mut daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "positive", dim as u32, Distance::Cosine).await;
    for (start, chunk) in vectors.chunks(500).enumerate() {
        let documents = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                doc(
                    &format!("p{}", start * 500 + i),
                    None,
                    Some(v.clone()),
                    json!({}),
                )
            })
            .collect();
        put(&client, "positive", documents).await;
    }
    let (got, _) = recall(&client, "positive", &queries).await;
    assert!(got >= 0.95, "recall@10 {got} on positive data");

    // Deleted documents are never returned, and recall holds over what is left.
    let deleted: Vec<String> = (0..count).step_by(3).map(|i| format!("p{i}")).collect();
    client
        .delete(Delete {
            collection: "positive".into(),
            ids: Some(deleted.clone()),
            filter: None,
            text_filter: None,
        })
        .await
        .expect("delete");
    for query in &queries {
        let got = hit_ids(&client, search("positive", query, false)).await;
        assert!(
            got.iter().all(|id| !deleted.contains(id)),
            "a deleted id came back"
        );
    }
    let (got, _) = recall(&client, "positive", &queries).await;
    assert!(got >= 0.95, "recall@10 {got} after deletes");

    // A restart rebuilds the sketch from the stored vectors (its center from other vectors).
    let out = ctxd(&["--socket", daemon.socket.to_str().expect("utf-8"), "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (status, _) = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    let (got, _) = recall(&client, "positive", &queries).await;
    assert!(got >= 0.95, "recall@10 {got} after a restart");
}
