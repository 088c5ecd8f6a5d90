//! Collections and documents: CRUD semantics, validation, filters, paging, `include`.

use crate::support::{Daemon, Scratch};
use ctxd_client::{Client, Error};
use ctxd_proto::{
    Count, CreateCollection, Delete, Distance, Document, ErrorCode, Field, Filter, Get, Tokenizer,
    Upsert,
};
use serde_json::{Value, json};

pub fn doc(id: &str, text: Option<&str>, vector: Option<Vec<f32>>, metadata: Value) -> Document {
    Document {
        id: id.to_owned(),
        text: text.map(str::to_owned),
        vector: vector.map(Into::into),
        metadata: metadata.as_object().cloned().map(Into::into),
    }
}

pub async fn create(client: &Client, name: &str, dimension: u32) {
    client
        .create_collection(CreateCollection {
            name: name.to_owned(),
            dimension: Some(dimension),
            embedder: None,
            distance: None,
            tokenizer: None,
            if_not_exists: false,
        })
        .await
        .expect("create collection");
}

/// Upserts `documents` into `collection` in one request, which must succeed.
pub async fn put(client: &Client, collection: &str, documents: Vec<Document>) {
    client
        .upsert(Upsert {
            collection: collection.to_owned(),
            documents,
        })
        .await
        .expect("upsert");
}

/// `n` documents `d0`, `d1`, … with `text`, the vector `[i, 1]` and metadata `{"i": i}`.
pub fn numbered(n: usize, text: &str) -> Vec<Document> {
    (0..n)
        .map(|i| {
            doc(
                &format!("d{i}"),
                Some(text),
                Some(vec![i as f32, 1.0]),
                json!({"i": i}),
            )
        })
        .collect()
}

pub fn filter(value: Value) -> Filter {
    Filter::from_value(&value).expect("a valid filter")
}

fn code(err: Error) -> ErrorCode {
    err.code()
        .unwrap_or_else(|| panic!("expected a daemon error, got {err:?}"))
}

async fn ids(client: &Client, get: Get) -> Vec<String> {
    client
        .get(get)
        .await
        .expect("get")
        .documents
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn get_all(collection: &str) -> Get {
    Get {
        collection: collection.to_owned(),
        ids: None,
        filter: None,
        limit: None,
        offset: None,
        include: None,
        vector_encoding: None,
        text_filter: None,
    }
}

#[tokio::test]
async fn collections_are_created_listed_described_and_dropped() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;

    let created = client
        .create_collection(CreateCollection {
            name: "notes".into(),
            dimension: Some(3),
            embedder: None,
            distance: Some(Distance::Euclidean),
            tokenizer: Some(Tokenizer::Trigram),
            if_not_exists: false,
        })
        .await
        .expect("create");
    assert_eq!(created.collection.name, "notes");
    assert_eq!(created.collection.distance, Distance::Euclidean);
    assert_eq!(created.collection.tokenizer, Tokenizer::Trigram);
    assert_eq!(created.collection.count, 0);
    create(&client, "books", 2).await;

    let listed = client.list_collections().await.expect("list");
    let names: Vec<_> = listed.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["books", "notes"]);
    assert_eq!(
        client
            .get_collection("books")
            .await
            .expect("get")
            .collection
            .dimension,
        2
    );

    // Same name again: collection_exists, unless if_not_exists with the same settings.
    let again = CreateCollection {
        name: "books".into(),
        dimension: Some(2),
        embedder: None,
        distance: None,
        tokenizer: None,
        if_not_exists: false,
    };
    assert_eq!(
        code(client.create_collection(again.clone()).await.unwrap_err()),
        ErrorCode::CollectionExists
    );
    let idempotent = CreateCollection {
        if_not_exists: true,
        ..again.clone()
    };
    client
        .create_collection(idempotent)
        .await
        .expect("if_not_exists");
    let different = CreateCollection {
        dimension: Some(5),
        if_not_exists: true,
        ..again.clone()
    };
    let err = client.create_collection(different).await.unwrap_err();
    assert_eq!(code(err), ErrorCode::CollectionExists);
    // A setting left out matches what exists; a setting given must match.
    client
        .create_collection(CreateCollection {
            name: "dots".into(),
            dimension: Some(2),
            embedder: None,
            distance: Some(Distance::Dot),
            tokenizer: Some(Tokenizer::Trigram),
            if_not_exists: false,
        })
        .await
        .expect("create dots");
    let existing = client
        .create_collection(CreateCollection {
            name: "dots".into(),
            if_not_exists: true,
            ..again.clone()
        })
        .await
        .expect("settings left out match");
    assert_eq!(existing.collection.distance, Distance::Dot);
    assert_eq!(existing.collection.tokenizer, Tokenizer::Trigram);
    let err = client
        .create_collection(CreateCollection {
            name: "dots".into(),
            distance: Some(Distance::Cosine),
            if_not_exists: true,
            ..again
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), ErrorCode::CollectionExists);
    assert!(client.drop_collection("dots").await.expect("drop").dropped);

    assert!(client.drop_collection("books").await.expect("drop").dropped);
    assert!(
        !client
            .drop_collection("books")
            .await
            .expect("drop again")
            .dropped
    );
    assert_eq!(
        code(client.get_collection("books").await.unwrap_err()),
        ErrorCode::CollectionNotFound
    );
    let status = client.status().await.expect("status");
    assert_eq!(status.collections, 1);
}

#[tokio::test]
async fn invalid_collections_are_refused_with_clear_messages() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    for (name, dimension, mention) in [
        (".hidden", 3, "\".hidden\""),
        ("has space", 3, "\"has space\""),
        ("", 3, "\"\""),
        (&"x".repeat(65), 3, "1–64"),
        ("ok", 0, "dimension 0"),
        ("ok", 4097, "dimension 4097"),
    ] {
        let err = client
            .create_collection(CreateCollection {
                name: name.to_owned(),
                dimension: Some(dimension),
                embedder: None,
                distance: None,
                tokenizer: None,
                if_not_exists: false,
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains(mention), "{err}");
        assert_eq!(code(err), ErrorCode::BadRequest);
    }
}

#[tokio::test]
async fn upsert_inserts_then_replaces_whole_documents() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    let before = client.status().await.expect("status").generation;

    let first = client
        .upsert(Upsert {
            collection: "c".into(),
            documents: vec![
                doc(
                    "a",
                    Some("alpha text"),
                    Some(vec![1.0, 0.0]),
                    json!({"n": 1}),
                ),
                doc("b", Some("beta text"), None, json!({"n": 2})),
            ],
        })
        .await
        .expect("upsert");
    assert_eq!(first.upserted, 2);
    assert_eq!(
        first.generation,
        before + 1,
        "one generation per committed write"
    );

    // Replacing `a` entirely: its metadata and vector go, only the new text stays.
    client
        .upsert(Upsert {
            collection: "c".into(),
            documents: vec![doc("a", Some("alpha again"), None, json!(null))],
        })
        .await
        .expect("replace");
    let got = client
        .get(Get {
            include: Some(vec![Field::Text, Field::Metadata, Field::Vector]),
            ids: Some(vec!["a".into(), "b".into(), "missing".into()]),
            ..get_all("c")
        })
        .await
        .expect("get");
    assert_eq!(got.documents.len(), 2, "missing ids are skipped");
    assert_eq!(got.documents[0].id, "a");
    assert_eq!(got.documents[0].text.as_deref(), Some("alpha again"));
    assert_eq!(got.documents[0].metadata, None);
    assert_eq!(got.documents[0].vector, None);
    assert_eq!(
        got.documents[1].metadata,
        json!({"n": 2}).as_object().cloned().map(Into::into)
    );
    assert_eq!(
        client
            .count(Count {
                collection: "c".into(),
                filter: None,
                text_filter: None,
            })
            .await
            .expect("count")
            .count,
        2
    );
    assert_eq!(client.status().await.expect("status").documents, 2);
}

#[tokio::test]
async fn bad_documents_are_refused_and_nothing_of_the_batch_is_written() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 3).await;
    let good = doc("good", Some("fine"), None, json!({}));
    let cases: Vec<(Document, ErrorCode, &str)> = vec![
        (
            doc("short", None, Some(vec![1.0, 2.0]), json!(null)),
            ErrorCode::DimensionMismatch,
            "has 2 dimensions, collection `c` expects 3",
        ),
        (
            doc("", Some("x"), None, json!(null)),
            ErrorCode::BadRequest,
            "empty",
        ),
        (
            doc(&"i".repeat(513), Some("x"), None, json!(null)),
            ErrorCode::BadRequest,
            "513 bytes",
        ),
        (
            doc("neither", None, None, json!(null)),
            ErrorCode::BadRequest,
            "neither",
        ),
        (
            doc("good", Some("again"), None, json!(null)),
            ErrorCode::BadRequest,
            "appears twice in one upsert (documents[0] and documents[1])",
        ),
        (
            doc("nested", Some("x"), None, json!({"deep": {"a": 1}})),
            ErrorCode::BadRequest,
            "`deep`",
        ),
        (
            doc("big", Some("x"), None, json!({"blob": "b".repeat(70_000)})),
            ErrorCode::BadRequest,
            "65536",
        ),
    ];
    for (bad, expected, mention) in cases {
        let result = client
            .upsert(Upsert {
                collection: "c".into(),
                documents: vec![good.clone(), bad],
            })
            .await;
        let err = result.expect_err("refused");
        assert!(err.to_string().contains(mention), "{err}");
        assert_eq!(code(err), expected);
    }
    assert!(
        ids(&client, get_all("c")).await.is_empty(),
        "no partial batch"
    );
    // A NaN cannot be written as JSON; a client sending `null` gets a bad request.
    let mut raw = daemon.raw();
    let reply = raw
        .call(r#"{"op":"upsert","collection":"c","documents":[{"id":"n","vector":[1,null,2]}]}"#);
    assert_eq!(reply["error"]["code"], "bad_request");
    // 1e39 is valid JSON but overflows f32 to infinity.
    let reply = raw
        .call(r#"{"op":"upsert","collection":"c","documents":[{"id":"n","vector":[1,1e39,2]}]}"#);
    assert_eq!(reply["error"]["code"], "invalid_vector", "{reply}");
    assert_eq!(reply["error"]["position"], 1);
    let reply =
        raw.call(r#"{"op":"upsert","collection":"nope","documents":[{"id":"n","text":"t"}]}"#);
    assert_eq!(reply["error"]["code"], "collection_not_found");
    let reply =
        raw.call(r#"{"op":"upsert","collection":"c","documents":[{"id":"n","vector":[1,2]}]}"#);
    assert_eq!(reply["error"]["expected"], 3);
    assert_eq!(reply["error"]["received"], 2);
}

#[tokio::test]
async fn delete_by_ids_by_filter_and_both() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    let documents = (0..10)
        .map(|i| {
            doc(
                &format!("d{i}"),
                Some("text"),
                Some(vec![i as f32, 1.0]),
                json!({"i": i, "even": i % 2 == 0}),
            )
        })
        .collect();
    put(&client, "c", documents).await;

    let deleted = client
        .delete(Delete {
            collection: "c".into(),
            ids: Some(vec!["d0".into(), "d1".into(), "nope".into()]),
            filter: None,
            text_filter: None,
        })
        .await
        .expect("delete ids");
    assert_eq!(deleted.deleted, 2);
    let deleted = client
        .delete(Delete {
            collection: "c".into(),
            ids: None,
            filter: Some(filter(json!({"i": {"$gte": 8}}))),
            text_filter: None,
        })
        .await
        .expect("delete filter");
    assert_eq!(deleted.deleted, 2);
    // Both: only documents that are listed AND match.
    let deleted = client
        .delete(Delete {
            collection: "c".into(),
            ids: Some(vec!["d2".into(), "d3".into()]),
            filter: Some(filter(json!({"even": true}))),
            text_filter: None,
        })
        .await
        .expect("delete both");
    assert_eq!(deleted.deleted, 1);
    assert_eq!(
        ids(&client, get_all("c")).await,
        ["d3", "d4", "d5", "d6", "d7"]
    );
    let status_generation = client.status().await.expect("status").generation;
    // Deleting nothing is not a write.
    let none = client
        .delete(Delete {
            collection: "c".into(),
            ids: Some(vec!["zzz".into()]),
            filter: None,
            text_filter: None,
        })
        .await
        .expect("delete nothing");
    assert_eq!(none.deleted, 0);
    assert_eq!(none.generation, status_generation);
    let err = client
        .delete(Delete {
            collection: "c".into(),
            ids: None,
            filter: None,
            text_filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), ErrorCode::BadRequest);
}

#[tokio::test]
async fn get_pages_in_insertion_order_and_honours_include() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    let documents = (0..25)
        .map(|i| {
            doc(
                &format!("{i:02}"),
                Some("t"),
                Some(vec![i as f32, 0.5]),
                json!({"i": i}),
            )
        })
        .collect();
    put(&client, "c", documents).await;
    let mut seen = Vec::new();
    for page in 0..3 {
        let got = ids(
            &client,
            Get {
                limit: Some(10),
                offset: Some(page * 10),
                ..get_all("c")
            },
        )
        .await;
        seen.extend(got);
    }
    let expected: Vec<String> = (0..25).map(|i| format!("{i:02}")).collect();
    assert_eq!(seen, expected);

    let only_vectors = client
        .get(Get {
            ids: Some(vec!["03".into()]),
            include: Some(vec![Field::Vector]),
            ..get_all("c")
        })
        .await
        .expect("get");
    let d = &only_vectors.documents[0];
    assert_eq!((d.text.as_ref(), d.metadata.as_ref()), (None, None));
    assert_eq!(d.vector.as_deref(), Some(&[3.0, 0.5][..]));
    // Ids come back in the order asked.
    let ordered = ids(
        &client,
        Get {
            ids: Some(vec!["20".into(), "02".into(), "11".into()]),
            ..get_all("c")
        },
    )
    .await;
    assert_eq!(ordered, ["20", "02", "11"]);
}

/// `get` by ids keeps the order asked, skips missing ids and later repeats, pages through that
/// order, and combines with a filter; 40,000 ids with 4,000 hits (once 2.5–3.8 s: the id list
/// was parsed again for every row) come back in order.
#[tokio::test]
async fn get_by_ids_keeps_their_order_skips_missing_and_repeated_ids_and_pages() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 2).await;
    put(&client, "c", numbered(1000, "t")).await;
    let by_ids = |list: &[&str]| Get {
        ids: Some(list.iter().map(|s| (*s).to_owned()).collect()),
        ..get_all("c")
    };
    let asked = ["d7", "d3", "missing", "d7", "d42", "d0", "d3"];
    assert_eq!(
        ids(&client, by_ids(&asked)).await,
        ["d7", "d3", "d42", "d0"]
    );
    let paged = Get {
        offset: Some(1),
        limit: Some(2),
        ..by_ids(&asked)
    };
    assert_eq!(ids(&client, paged).await, ["d3", "d42"]);
    let filtered = Get {
        filter: Some(filter(json!({"i": {"$gte": 5}}))),
        ..by_ids(&asked)
    };
    assert_eq!(ids(&client, filtered).await, ["d7", "d42"]);
    assert_eq!(ids(&client, by_ids(&[])).await, Vec::<String>::new());

    for batch in 1..4 {
        let documents = (batch * 1000..(batch + 1) * 1000)
            .map(|i| doc(&format!("d{i}"), Some("t"), None, json!({"i": i})))
            .collect();
        put(&client, "c", documents).await;
    }
    // 40,000 ids, newest first; every tenth exists.
    let many: Vec<String> = (0..40_000)
        .rev()
        .map(|i| {
            if i % 10 == 0 {
                format!("d{}", i / 10)
            } else {
                format!("missing-{i}")
            }
        })
        .collect();
    let expected: Vec<String> = (0..4000).rev().map(|i| format!("d{i}")).collect();
    let got = ids(
        &client,
        Get {
            ids: Some(many),
            limit: Some(10_000),
            ..get_all("c")
        },
    )
    .await;
    assert_eq!(got, expected);
}

#[tokio::test]
async fn every_filter_operator_including_missing_fields_and_type_mismatches() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 1).await;
    let rows = [
        (
            "a",
            json!({"year": 2020, "genre": "poetry", "tags": ["x", "y"], "ok": true}),
        ),
        (
            "b",
            json!({"year": 2021, "genre": "prose", "tags": ["y"], "ok": false}),
        ),
        ("c", json!({"year": "2020", "genre": "poetry"})),
        ("d", json!({"year": 2019.5})),
        ("e", json!(null)),
    ];
    let documents = rows
        .iter()
        .map(|(id, m)| doc(id, Some("text"), Some(vec![1.0]), m.clone()))
        .collect();
    put(&client, "c", documents).await;
    let cases = [
        (json!({"year": 2020}), vec!["a"]),
        (json!({"year": {"$eq": "2020"}}), vec!["c"]),
        (json!({"year": {"$ne": 2020}}), vec!["b", "c", "d", "e"]),
        (json!({"year": {"$gt": 2019.5}}), vec!["a", "b"]),
        (json!({"year": {"$gte": 2019.5}}), vec!["a", "b", "d"]),
        (json!({"year": {"$lt": 2021}}), vec!["a", "d"]),
        (json!({"year": {"$lte": 2021}}), vec!["a", "b", "d"]),
        (
            json!({"genre": {"$in": ["poetry", "drama"]}}),
            vec!["a", "c"],
        ),
        (json!({"genre": {"$nin": ["poetry"]}}), vec!["b", "d", "e"]),
        (json!({"tags": "y"}), vec!["a", "b"]),
        (json!({"ok": true}), vec!["a"]),
        (json!({"ok": {"$ne": true}}), vec!["b", "c", "d", "e"]),
        (
            json!({"$and": [{"genre": "poetry"}, {"year": 2020}]}),
            vec!["a"],
        ),
        (
            json!({"$or": [{"genre": "prose"}, {"year": {"$lt": 2020}}]}),
            vec!["b", "d"],
        ),
        (json!({"genre": "poetry", "year": "2020"}), vec!["c"]),
        (json!({"missing": {"$in": []}}), vec![]),
    ];
    for (f, expected) in cases {
        let got = ids(
            &client,
            Get {
                filter: Some(filter(f.clone())),
                ..get_all("c")
            },
        )
        .await;
        assert_eq!(got, expected, "filter {f}");
        let counted = client
            .count(Count {
                collection: "c".into(),
                filter: Some(filter(f.clone())),
                text_filter: None,
            })
            .await
            .expect("count")
            .count;
        assert_eq!(counted as usize, expected.len(), "count with filter {f}");
    }
    let err = client
        .get(Get {
            filter: Some(filter(json!({"ok": {"$gt": true}}))),
            ..get_all("c")
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), ErrorCode::BadRequest);
}
