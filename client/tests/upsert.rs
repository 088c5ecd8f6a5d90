//! `Client::upsert` splits large calls into requests of at most 1000 documents, sends them in
//! order, and reports how much was committed when a later request fails. Checked against a
//! scripted peer that records every request (the real daemon is covered by the end-to-end
//! suite).
#![cfg(unix)]

use ctxd_client::proto::{Document, ErrorCode, Upsert};
use ctxd_client::{Client, Error};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// What the peer saw of one `upsert` request: its document ids, in order.
type Seen = Arc<Mutex<Vec<Vec<String>>>>;

/// A peer that answers `hello`, then acknowledges `upsert` requests until the `fail_at`-th
/// (counted from 0), which it refuses with a `storage` error.
async fn recording_peer(fail_at: Option<usize>) -> (tempfile::TempDir, std::path::PathBuf, Seen) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut generation = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            let request: Value = serde_json::from_str(&line).expect("a JSON request");
            let id = &request["id"];
            let reply = match request["op"].as_str() {
                Some("hello") => serde_json::json!({
                    "id": id, "ok": true, "protocol": 1, "version": "9.9.9", "pid": 42,
                    "state": "serving"
                }),
                Some("upsert") => {
                    let ids: Vec<String> = request["documents"]
                        .as_array()
                        .expect("documents")
                        .iter()
                        .map(|d| d["id"].as_str().expect("an id").to_owned())
                        .collect();
                    let n = ids.len();
                    let index = {
                        let mut seen = record.lock().expect("lock");
                        seen.push(ids);
                        seen.len() - 1
                    };
                    if Some(index) == fail_at {
                        serde_json::json!({
                            "id": id, "ok": false,
                            "error": {"code": "storage", "message": "disk full"}
                        })
                    } else {
                        generation += 1;
                        serde_json::json!({
                            "id": id, "ok": true, "upserted": n, "generation": generation
                        })
                    }
                }
                other => panic!("unexpected op {other:?}"),
            };
            let mut line = serde_json::to_vec(&reply).expect("encode");
            line.push(b'\n');
            write.write_all(&line).await.expect("write");
        }
    });
    (dir, path, seen)
}

fn documents(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| Document {
            id: format!("doc-{i}"),
            text: Some(format!("text {i}")),
            ..Document::default()
        })
        .collect()
}

fn upsert(n: usize) -> Upsert {
    Upsert {
        collection: "notes".to_owned(),
        documents: documents(n),
    }
}

#[tokio::test]
async fn a_large_upsert_is_sent_in_order_in_requests_of_at_most_1000() {
    let (_dir, path, seen) = recording_peer(None).await;
    let client = Client::connect_to(&path).await.expect("connect");
    let result = client.upsert(upsert(2500)).await.expect("upsert");
    assert_eq!(result.upserted, 2500, "summed over the requests");
    assert_eq!(result.generation, 3, "the highest generation");

    let seen = seen.lock().expect("lock");
    let sizes: Vec<usize> = seen.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    let order: Vec<String> = seen.iter().flatten().cloned().collect();
    let expected: Vec<String> = (0..2500).map(|i| format!("doc-{i}")).collect();
    assert_eq!(order, expected, "every document once, in the order given");
}

#[tokio::test]
async fn a_later_request_failing_reports_what_was_committed() {
    let (_dir, path, seen) = recording_peer(Some(2)).await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.upsert(upsert(3500)).await {
        Err(Error::PartialUpsert {
            committed,
            failed,
            source,
        }) => {
            // Requests 0 and 1 were acknowledged; request 2 (documents 2000–2999) was refused;
            // request 3 was already in flight behind it and was committed too.
            assert_eq!(failed, 2000..3000);
            assert_eq!(
                committed, 2500,
                "1000 + 1000 before, 500 after the failed request"
            );
            assert_eq!(source.code(), Some(ErrorCode::Storage));
        }
        other => panic!("expected PartialUpsert, got {other:?}"),
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        4,
        "only the request in flight follows the failing one"
    );
}

#[tokio::test]
async fn nothing_is_sent_after_a_refusal_beyond_the_one_in_flight() {
    let (_dir, path, seen) = recording_peer(Some(1)).await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.upsert(upsert(5000)).await {
        Err(Error::PartialUpsert {
            committed, failed, ..
        }) => {
            assert_eq!(failed, 1000..2000);
            assert_eq!(
                committed, 2000,
                "request 0, and request 2 that was in flight"
            );
        }
        other => panic!("expected PartialUpsert, got {other:?}"),
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        3,
        "requests 3 and 4 were never sent"
    );
}

#[tokio::test]
async fn a_refused_single_request_is_its_own_error() {
    let (_dir, path, _seen) = recording_peer(Some(0)).await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.upsert(upsert(800)).await {
        Err(error @ Error::Daemon { .. }) => {
            assert_eq!(error.code(), Some(ErrorCode::Storage));
        }
        other => panic!("expected the daemon's error, nothing committed; got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_first_request_still_reports_the_one_in_flight() {
    let (_dir, path, _seen) = recording_peer(Some(0)).await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.upsert(upsert(1500)).await {
        Err(Error::PartialUpsert {
            committed, failed, ..
        }) => {
            assert_eq!(failed, 0..1000);
            assert_eq!(
                committed, 500,
                "the second request was already sent and committed"
            );
        }
        other => panic!("expected PartialUpsert, got {other:?}"),
    }
}
