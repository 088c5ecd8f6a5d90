//! The daemon's embedder (`ctxd serve --model NAME=DIR`): vectors computed from text match
//! sentence-transformers' (the shared SciFact vectors were made by it from the same weights, so
//! they are the oracle), text searches by meaning, and every way a request or a model directory
//! can be refused, with nothing written.

use crate::support::{Daemon, Scratch, Start, ctxd};
use ctxd_client::{Client, Error};
use ctxd_proto::{
    Count, CreateCollection, Document, ErrorCode, Field, Get, Search, SearchMode, Upsert,
};
use rustix::process::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODEL_FILES: &[&str] = &[
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
    "1_Pooling/config.json",
];

fn shared(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(path)
}

fn model_dir() -> PathBuf {
    shared("models/all-MiniLM-L6-v2")
}

fn with_model(start: Start, dir: &Path) -> Start {
    start
        .arg("--model")
        .arg(&format!("minilm={}", dir.display()))
}

fn start(scratch: &Scratch) -> Daemon {
    with_model(Start::new(scratch), &model_dir()).spawn()
}

/// Rows of a shared `.f32` file of 384-dimension vectors.
fn vectors(path: &str) -> Vec<Vec<f32>> {
    let file = shared(path);
    let bytes = std::fs::read(&file)
        .unwrap_or_else(|e| panic!("the shared data {} is missing: {e}", file.display()));
    bytes
        .chunks_exact(4 * 384)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

/// `(id, text)` of each line of a shared JSON-lines file; a document's text is
/// `title + " " + text`, as the shared vectors were computed.
fn texts(path: &str) -> Vec<(String, String)> {
    let file = shared(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("the shared data {} is missing: {e}", file.display()))
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a JSON line");
            let text = value["text"].as_str().expect("text");
            let text = match value["title"].as_str() {
                Some(title) => format!("{title} {text}"),
                None => text.to_owned(),
            };
            (value["id"].as_str().expect("id").to_owned(), text)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn text_doc(id: &str, text: &str) -> Document {
    Document {
        id: id.to_owned(),
        text: Some(text.to_owned()),
        ..Default::default()
    }
}

async fn create_embedding(client: &Client, name: &str) {
    client
        .create_collection(CreateCollection {
            name: name.to_owned(),
            embedder: Some("minilm".to_owned()),
            ..Default::default()
        })
        .await
        .expect("create a collection with an embedder");
}

async fn upsert(client: &Client, collection: &str, documents: Vec<Document>) -> Result<(), Error> {
    client
        .upsert(Upsert {
            collection: collection.to_owned(),
            documents,
        })
        .await
        .map(|_| ())
}

async fn count(client: &Client, collection: &str) -> u64 {
    client
        .count(Count {
            collection: collection.to_owned(),
            filter: None,
            text_filter: None,
        })
        .await
        .expect("count")
        .count
}

async fn stored_vectors(client: &Client, collection: &str, ids: &[String]) -> Vec<Vec<f32>> {
    let documents = client
        .get(Get {
            collection: collection.to_owned(),
            ids: Some(ids.to_vec()),
            include: Some(vec![Field::Vector]),
            ..Default::default()
        })
        .await
        .expect("get")
        .documents;
    ids.iter()
        .map(|id| {
            let doc = documents.iter().find(|d| &d.id == id).expect("every id");
            doc.vector.clone().expect("a vector").into()
        })
        .collect()
}

fn search(collection: &str, text: Option<&str>, vector: Option<&[f32]>) -> Search {
    Search {
        collection: collection.to_owned(),
        text: text.map(str::to_owned),
        vector: vector.map(|v| v.to_vec().into()),
        k: Some(5),
        exact: true,
        ..Default::default()
    }
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String, Option<Value>) {
    match result {
        Err(Error::Daemon {
            code,
            message,
            details,
        }) => (code, message, details.get("embedder").cloned()),
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

#[tokio::test]
async fn computed_vectors_match_sentence_transformers_and_text_searches_by_meaning() {
    let scratch = Scratch::new();
    let daemon = start(&scratch);
    let client = daemon.client().await;
    create_embedding(&client, "scifact").await;

    // A sample across the corpus, plus its longest document (far past the model's window of
    // 256 tokens) with more words appended: truncated as sentence-transformers truncates, it
    // must still get that document's vector.
    let docs = texts("scifact/docs.jsonl");
    let doc_vectors = vectors("scifact/doc_vectors.f32");
    let sample: Vec<usize> = (0..docs.len()).step_by(173).collect();
    let longest = (0..docs.len())
        .max_by_key(|&i| docs[i].1.len())
        .expect("documents");
    let mut documents: Vec<Document> = sample
        .iter()
        .map(|&i| text_doc(&docs[i].0, &docs[i].1))
        .collect();
    let tail = " Astronomers catalogued distant galaxies".repeat(40);
    documents.push(text_doc(
        "longest+tail",
        &format!("{}{tail}", docs[longest].1),
    ));
    upsert(&client, "scifact", documents)
        .await
        .expect("a text-only upsert");

    let mut ids: Vec<String> = sample.iter().map(|&i| docs[i].0.clone()).collect();
    ids.push("longest+tail".to_owned());
    let got = stored_vectors(&client, "scifact", &ids).await;
    let expected = sample.iter().chain([&longest]).map(|&i| &doc_vectors[i]);
    for ((id, got), expected) in ids.iter().zip(&got).zip(expected) {
        let similarity = cosine(got, expected);
        assert!(similarity >= 0.9999, "document {id}: cosine {similarity}");
    }

    // A query's text, embedded by the daemon, ranks exactly as its shared vector does.
    let queries = texts("scifact/queries.jsonl");
    let query_vectors = vectors("scifact/query_vectors.f32");
    for i in (0..queries.len()).step_by(61) {
        let mut by_text = search("scifact", Some(&queries[i].1), None);
        by_text.mode = Some(SearchMode::Vector);
        let by_text = client.search(by_text).await.expect("search by text").hits;
        let by_vector = client
            .search(search("scifact", None, Some(&query_vectors[i])))
            .await
            .expect("search by vector")
            .hits;
        assert_eq!(
            by_text.iter().map(|h| &h.id).collect::<Vec<_>>(),
            by_vector.iter().map(|h| &h.id).collect::<Vec<_>>(),
            "query {}",
            queries[i].0
        );
        for (a, b) in by_text.iter().zip(&by_vector) {
            assert!(
                (a.score - b.score).abs() < 1e-4,
                "query {}: {a:?} {b:?}",
                queries[i].0
            );
            assert_eq!(a.ranks.lexical, None);
        }
    }

    // Text alone is hybrid here (both lists ranked and fused); `lexical` never embeds.
    let words = &queries[0].1;
    let hybrid = client
        .search(search("scifact", Some(words), None))
        .await
        .expect("hybrid")
        .hits;
    assert!(
        hybrid.iter().all(|h| h.ranks.vector.is_some()),
        "{hybrid:?}"
    );
    assert!(
        hybrid.iter().any(|h| h.ranks.lexical.is_some()),
        "{hybrid:?}"
    );
    let mut lexical = search("scifact", Some(words), None);
    lexical.mode = Some(SearchMode::Lexical);
    let lexical = client.search(lexical).await.expect("lexical").hits;
    assert!(
        lexical.iter().all(|h| h.ranks.vector.is_none()),
        "{lexical:?}"
    );

    // Explicit vectors are stored as sent, even beside text.
    let own = vec![0.5f32; 384];
    let mut explicit = text_doc("explicit", "some words");
    explicit.vector = Some(own.clone().into());
    upsert(&client, "scifact", vec![explicit])
        .await
        .expect("an explicit vector");
    let stored = stored_vectors(&client, "scifact", &["explicit".to_owned()]).await;
    assert_eq!(stored[0], own);

    let status = client.status().await.expect("status");
    assert_eq!(status.models.len(), 1);
    assert_eq!(status.models[0].name, "minilm");
    assert_eq!(status.models[0].dimension, 384);
    assert_eq!(status.models[0].max_tokens, 256);
    let info = client
        .get_collection("scifact")
        .await
        .expect("describe")
        .collection;
    assert_eq!(info.dimension, 384);
    let embedder = info.embedder.expect("the collection records its embedder");
    assert_eq!(embedder.name, "minilm");
    assert_eq!(embedder.sha256, status.models[0].sha256);
}

/// Requests waiting at once share packed forward passes (no padding, texts of every length one
/// after another): long abstracts from one client, more tokens than one pass holds, and short
/// queries from three others, all at once; each text still gets its own vector.
#[tokio::test]
async fn concurrent_requests_of_mixed_lengths_each_get_their_own_vector() {
    let scratch = Scratch::new();
    let daemon = start(&scratch);
    let client = daemon.client().await;
    create_embedding(&client, "mixed").await;

    let docs = texts("scifact/docs.jsonl");
    let doc_vectors = vectors("scifact/doc_vectors.f32");
    let queries = texts("scifact/queries.jsonl");
    let query_vectors = vectors("scifact/query_vectors.f32");
    // The 36 longest abstracts: each cut at the 256-token window, 9,216 tokens in all, past
    // one pass's 8,192.
    let mut longest: Vec<usize> = (0..docs.len()).collect();
    longest.sort_by_key(|&i| std::cmp::Reverse(docs[i].1.len()));
    let mut requests: Vec<Vec<(String, String, &[f32])>> = vec![
        longest[..36]
            .iter()
            .map(|&i| (docs[i].0.clone(), docs[i].1.clone(), &doc_vectors[i][..]))
            .collect(),
    ];
    for part in 0..3 {
        requests.push(
            (part * 20..part * 20 + 20)
                .map(|i| {
                    (
                        format!("q{}", queries[i].0),
                        queries[i].1.clone(),
                        &query_vectors[i][..],
                    )
                })
                .collect(),
        );
    }

    let mut tasks = Vec::new();
    for request in &requests {
        let writer = daemon.client().await;
        let documents: Vec<Document> = request
            .iter()
            .map(|(id, text, _)| text_doc(id, text))
            .collect();
        tasks.push(tokio::spawn(async move {
            upsert(&writer, "mixed", documents).await
        }));
    }
    for task in tasks {
        task.await
            .expect("the task")
            .expect("a concurrent text-only upsert");
    }
    for request in &requests {
        let ids: Vec<String> = request.iter().map(|(id, _, _)| id.clone()).collect();
        let got = stored_vectors(&client, "mixed", &ids).await;
        for ((id, _, expected), got) in request.iter().zip(&got) {
            let similarity = cosine(got, expected);
            assert!(similarity >= 0.9999, "{id}: cosine {similarity}");
        }
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_nothing_is_written() {
    let scratch = Scratch::new();
    let daemon = start(&scratch);
    let client = daemon.client().await;

    let unknown = client
        .create_collection(CreateCollection {
            name: "notes".to_owned(),
            embedder: Some("mpnet".to_owned()),
            ..Default::default()
        })
        .await;
    let (code_, message, embedder) = code(unknown);
    assert_eq!(code_, ErrorCode::EmbedderUnavailable);
    assert_eq!(embedder, Some(Value::from("mpnet")));
    assert!(
        message.contains("--model mpnet=DIR") && message.contains("minilm"),
        "{message}"
    );

    let wrong_dimension = client
        .create_collection(CreateCollection {
            name: "notes".to_owned(),
            dimension: Some(768),
            embedder: Some("minilm".to_owned()),
            ..Default::default()
        })
        .await;
    let (code_, message, _) = code(wrong_dimension);
    assert_eq!(code_, ErrorCode::DimensionMismatch);
    assert!(
        message.contains("384") && message.contains("768"),
        "{message}"
    );
    assert_eq!(
        client
            .list_collections()
            .await
            .expect("list")
            .collections
            .len(),
        0,
        "nothing was created by the refused requests"
    );

    // The model's own dimension, given, is accepted.
    client
        .create_collection(CreateCollection {
            name: "notes".to_owned(),
            dimension: Some(384),
            embedder: Some("minilm".to_owned()),
            ..Default::default()
        })
        .await
        .expect("the model's dimension");

    // One document without anything to embed fails the whole request.
    for empty in ["", "  \n\t"] {
        let batch = vec![text_doc("good", "sea otters"), text_doc("empty", empty)];
        let (code_, message, _) = code(upsert(&client, "notes", batch).await);
        assert_eq!(code_, ErrorCode::BadRequest);
        assert!(
            message.contains("\"empty\"") && message.contains("no text to embed"),
            "{message}"
        );
    }
    let bare = Document {
        id: "bare".to_owned(),
        ..Default::default()
    };
    let (code_, _, _) = code(upsert(&client, "notes", vec![bare]).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert_eq!(count(&client, "notes").await, 0);

    let (code_, message, _) = code(client.search(search("notes", Some(" "), None)).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert!(message.contains("empty"), "{message}");

    // Without an embedder, text cannot stand in for the vector, and the error says why.
    crate::data::create(&client, "plain", 384).await;
    let mut by_meaning = search("plain", Some("sea otters"), None);
    by_meaning.mode = Some(SearchMode::Vector);
    let (code_, message, _) = code(client.search(by_meaning).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert!(message.contains("embedder"), "{message}");
}

#[tokio::test]
async fn without_the_model_or_with_other_weights_only_embedding_is_refused() {
    let scratch = Scratch::new();
    let mut daemon = start(&scratch);
    let client = daemon.client().await;
    create_embedding(&client, "notes").await;
    let ids = ["otters", "markets"].map(str::to_owned);
    upsert(
        &client,
        "notes",
        vec![
            text_doc("otters", "Sea otters hold hands while they sleep."),
            text_doc("markets", "The stock market fell sharply on Monday."),
        ],
    )
    .await
    .expect("upsert");
    let stored = stored_vectors(&client, "notes", &ids).await;
    drop(client);
    daemon.signal(Signal::TERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).0.success());

    // Weights that differ in one byte of one tensor: a different model to the collection.
    let other = scratch.path("other-model");
    for file in MODEL_FILES {
        let target = other.join(file);
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        if *file == "model.safetensors" {
            let mut bytes = std::fs::read(model_dir().join(file)).expect("read the weights");
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            std::fs::write(&target, bytes).expect("write the weights");
        } else {
            std::os::unix::fs::symlink(model_dir().join(file), &target).expect("symlink");
        }
    }

    for (start, reason) in [
        (Start::new(&scratch), "did not load"),
        (with_model(Start::new(&scratch), &other), "other weights"),
    ] {
        let mut daemon = start.spawn();
        let client = daemon.client().await;
        let refused = upsert(&client, "notes", vec![text_doc("new", "Penguins huddle.")]).await;
        let (code_, message, embedder) = code(refused);
        assert_eq!(code_, ErrorCode::EmbedderUnavailable);
        assert_eq!(embedder, Some(Value::from("minilm")));
        assert!(
            message.contains(reason) && message.contains("`notes`"),
            "{message}"
        );
        let (code_, _, _) = code(client.search(search("notes", Some("otters"), None)).await);
        assert_eq!(code_, ErrorCode::EmbedderUnavailable);
        assert_eq!(count(&client, "notes").await, 2);

        // What is stored stays searchable: by vector, and by words.
        let hits = client
            .search(search("notes", None, Some(&stored[0])))
            .await
            .expect("vector search")
            .hits;
        assert_eq!(hits[0].id, "otters");
        let mut words = search("notes", Some("stock market"), None);
        words.mode = Some(SearchMode::Lexical);
        let hits = client.search(words).await.expect("lexical search").hits;
        assert_eq!(hits[0].id, "markets");
        // A document that brings its vector needs no model.
        let mut brought = text_doc("brought", "Penguins huddle.");
        brought.vector = Some(stored[1].clone().into());
        upsert(&client, "notes", vec![brought])
            .await
            .expect("an explicit vector");
        assert_eq!(count(&client, "notes").await, 3);
        client
            .delete(ctxd_proto::Delete {
                collection: "notes".to_owned(),
                ids: Some(vec!["brought".to_owned()]),
                filter: None,
                text_filter: None,
            })
            .await
            .expect("delete");
        drop(client);
        daemon.signal(Signal::TERM);
        assert!(daemon.wait_exit(Duration::from_secs(30)).0.success());
    }
}

/// A model directory with one file missing or broken: `ctxd serve` exits at once, naming it.
#[test]
fn a_model_directory_with_a_wrong_file_is_refused_at_start() {
    let scratch = Scratch::new();
    let cases: &[(&str, Option<&[u8]>, &str)] = &[
        ("tokenizer.json", None, "tokenizer.json"),
        (
            "model.safetensors",
            Some(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"),
            "model.safetensors",
        ),
        (
            "config.json",
            Some(b"{\"model_type\": \"bert\""),
            "config.json",
        ),
        ("1_Pooling/config.json", Some(b"[]"), "config.json"),
    ];
    for (i, (file, content, named)) in cases.iter().enumerate() {
        let dir = scratch.path(&format!("model-{i}"));
        for each in MODEL_FILES {
            let target = dir.join(each);
            std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
            if each == file {
                if let Some(content) = content {
                    std::fs::write(&target, content).expect("write the broken file");
                }
            } else {
                std::os::unix::fs::symlink(model_dir().join(each), &target).expect("symlink");
            }
        }
        let (status, stderr) = with_model(Start::new(&scratch), &dir).run_to_exit();
        assert!(!status.success(), "{file}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains("minilm"),
            "{file}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    }

    let missing = scratch.path("no-such-model");
    let (status, stderr) = with_model(Start::new(&scratch), &missing).run_to_exit();
    assert!(!status.success());
    assert!(stderr.contains("no-such-model"), "{stderr}");
    let (status, stderr) = Start::new(&scratch)
        .arg("--model")
        .arg("minilm")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("NAME=DIR"), "{stderr}");
}

/// A release and a shutdown go ahead while a model computes vectors: the upsert waiting for
/// them writes nothing.
#[tokio::test]
async fn release_and_shutdown_do_not_wait_for_embedding() {
    let scratch = Scratch::new();
    let mut daemon = with_model(Start::new(&scratch), &model_dir())
        .arg("--drain-timeout")
        .arg("1s")
        .spawn();
    let client = daemon.client().await;
    create_embedding(&client, "notes").await;
    // A thousand long texts: minutes of work for the model on a small machine.
    let docs = texts("scifact/docs.jsonl");
    let batch: Vec<Document> = (0..1000)
        .map(|i| text_doc(&format!("d{i}"), &docs[i % docs.len()].1))
        .collect();
    let writer = daemon.client().await;
    let pending = tokio::spawn(async move { upsert(&writer, "notes", batch).await });
    // The writer's request is on its way; a round trip on another connection lets the daemon
    // read it (if it has not, the release and the shutdown are tested all the same).
    client.ping().await.expect("ping");

    let released = client
        .release(ctxd_proto::Release {
            holder: Some("backup".to_owned()),
            ttl_s: Some(60),
            drain_ms: Some(500),
        })
        .await
        .expect("release while the model runs");
    assert!(
        !pending.is_finished(),
        "the upsert finished before the release"
    );
    client
        .resume(ctxd_proto::Resume {
            lease_id: Some(released.lease_id),
            all: false,
        })
        .await
        .expect("resume");

    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    match pending.await.expect("the upsert task") {
        // Refused at the release gate (it arrived once the directory was released) or given up
        // while its vectors were computed: either way, nothing written.
        Err(Error::Daemon { code, .. }) => assert!(
            matches!(code, ErrorCode::ShuttingDown | ErrorCode::Released),
            "{code:?}"
        ),
        Err(_) => {} // the connection closed with the daemon
        Ok(()) => panic!("the upsert was written although the daemon stopped first"),
    }

    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    assert_eq!(count(&client, "notes").await, 0);
}

/// The CLI: create with `--embedder`, import text-only lines, search by meaning.
#[test]
fn the_cli_creates_imports_and_searches_by_meaning() {
    let scratch = Scratch::new();
    let _daemon = start(&scratch);
    let socket = scratch.socket();
    let socket = socket.to_str().expect("a UTF-8 path");
    let run = |args: &[&str]| {
        let mut all = vec!["--socket", socket];
        all.extend_from_slice(args);
        let output = ctxd(&all);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "ctxd {args:?}: {stdout}{stderr}");
        stdout
    };
    let created = run(&["collections", "create", "notes", "--embedder", "minilm"]);
    assert!(
        created.contains("dimension 384") && created.contains("embedder minilm"),
        "{created}"
    );
    let lines = scratch.path("notes.jsonl");
    std::fs::write(
        &lines,
        concat!(
            "{\"id\":\"otters\",\"text\":\"Sea otters hold hands while they sleep.\"}\n",
            "{\"id\":\"markets\",\"text\":\"The stock market fell sharply on Monday.\"}\n",
            "{\"id\":\"penguins\",\"text\":\"Penguins huddle together against the cold.\"}\n",
        ),
    )
    .expect("write the import file");
    run(&["import", "notes", lines.to_str().expect("UTF-8")]);
    // No word in common with the best hit: only meaning can find it.
    let found = run(&[
        "--json",
        "search",
        "notes",
        "finance news",
        "--mode",
        "vector",
        "-k",
        "1",
    ]);
    let found: Value = serde_json::from_str(&found).expect("JSON");
    assert_eq!(found["hits"][0]["id"], "markets", "{found}");
    let status = run(&["status"]);
    assert!(
        status.contains("minilm: 384 dimensions, 256 tokens"),
        "{status}"
    );
    let listed = run(&["collections"]);
    assert!(
        listed.contains("EMBEDDER") && listed.contains("minilm"),
        "{listed}"
    );
}
