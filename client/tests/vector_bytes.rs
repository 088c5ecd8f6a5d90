//! The client sends vectors as base64 of little-endian `f32` and asks for them so, and hands
//! results back as if they had come as JSON arrays; a caller's own `vector_encoding` is kept.
//! Checked against a scripted peer that records each request line.
#![cfg(unix)]

use ctxd_client::Client;
use ctxd_client::proto::{Document, Field, Get, Search, Upsert, VectorEncoding};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// `[1, 2, 3, 4]`, computed outside the project.
const ONE_TO_FOUR: &str = "AACAPwAAAEAAAEBAAACAQA==";

/// A peer that records every request and answers each with a vector in the encoding asked for.
async fn peer() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<Mutex<Vec<Value>>>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let request: Value = serde_json::from_str(&line).expect("a JSON request");
            record.lock().expect("lock").push(request.clone());
            let id = &request["id"];
            let vector = match request["vector_encoding"].as_str() {
                Some("base64") => json!(ONE_TO_FOUR),
                _ => json!([1.0, 2.0, 3.0, 4.0]),
            };
            let reply = match request["op"].as_str() {
                Some("hello") => json!({
                    "id": id, "ok": true, "protocol": 1, "version": "9.9.9", "pid": 42,
                    "state": "serving"
                }),
                Some("upsert") => json!({"id": id, "ok": true, "upserted": 1, "generation": 1}),
                Some("get") => json!({"id": id, "ok": true, "documents": [
                    {"id": "a", "vector": vector}
                ]}),
                Some("search") => json!({"id": id, "ok": true, "hits": [
                    {"id": "a", "score": 1.0, "ranks": {"lexical": null, "vector": 1},
                     "vector": vector}
                ]}),
                other => panic!("unexpected op {other:?}"),
            };
            let mut line = serde_json::to_vec(&reply).expect("encode");
            line.push(b'\n');
            write.write_all(&line).await.expect("write");
        }
    });
    (dir, path, seen)
}

fn search(vector_encoding: Option<VectorEncoding>) -> Search {
    Search {
        collection: "v".into(),
        text: None,
        vector: Some(vec![1.0, 2.0, 3.0, 4.0].into()),
        k: None,
        filter: None,
        mode: None,
        include: Some(vec![Field::Vector]),
        rrf_k: None,
        weights: None,
        exact: false,
        effort: None,
        vector_encoding,
        text_filter: None,
    }
}

#[tokio::test]
async fn vectors_go_and_come_as_bytes_and_read_as_before() {
    let (_dir, path, seen) = peer().await;
    let client = Client::connect_to(&path).await.expect("connect");
    client
        .upsert(Upsert {
            collection: "v".into(),
            documents: vec![Document {
                id: "a".into(),
                vector: Some(vec![1.0, 2.0, 3.0, 4.0].into()),
                ..Document::default()
            }],
        })
        .await
        .expect("upsert");
    let got = client
        .get(Get {
            collection: "v".into(),
            ids: Some(vec!["a".into()]),
            filter: None,
            limit: None,
            offset: None,
            include: Some(vec![Field::Vector]),
            vector_encoding: None,
            text_filter: None,
        })
        .await
        .expect("get");
    let found = client.search(search(None)).await.expect("search");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen[1]["documents"][0]["vector"], ONE_TO_FOUR,
        "{}",
        seen[1]
    );
    assert_eq!(seen[2]["vector_encoding"], "base64", "{}", seen[2]);
    assert_eq!(seen[3]["vector"], ONE_TO_FOUR, "{}", seen[3]);
    assert_eq!(seen[3]["vector_encoding"], "base64", "{}", seen[3]);

    for vector in [
        got.documents[0].vector.as_ref().expect("a vector"),
        found.hits[0].vector.as_ref().expect("a vector"),
    ] {
        assert_eq!(&vector[..], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(vector.encoding(), VectorEncoding::Json, "reads as before");
    }
    assert_eq!(
        serde_json::to_value(&got.documents[0]).expect("json")["vector"],
        json!([1.0, 2.0, 3.0, 4.0]),
        "and prints as an array"
    );
}

#[tokio::test]
async fn a_callers_own_encoding_is_kept() {
    let (_dir, path, seen) = peer().await;
    let client = Client::connect_to(&path).await.expect("connect");
    let json = client
        .search(search(Some(VectorEncoding::Json)))
        .await
        .expect("search");
    let bytes = client
        .search(search(Some(VectorEncoding::Base64)))
        .await
        .expect("search");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen[1]["vector_encoding"], "json");
    assert_eq!(seen[2]["vector_encoding"], "base64");
    let encoding = |r: &ctxd_client::proto::SearchResult| {
        r.hits[0].vector.as_ref().expect("a vector").encoding()
    };
    assert_eq!(encoding(&json), VectorEncoding::Json);
    assert_eq!(encoding(&bytes), VectorEncoding::Base64);
}
