//! Search: each mode, pre-filtering against brute force, fusion arithmetic, hostile queries,
//! read-your-writes.

use crate::data::{create, doc, filter, put};
use crate::support::{Daemon, Rng, Scratch, hit_ids};
use ctxd_client::Client;
use ctxd_proto::{ErrorCode, Field, Search, SearchMode, Upsert, Weights};
use serde_json::json;

fn search(collection: &str) -> Search {
    Search {
        collection: collection.to_owned(),
        text: None,
        vector: None,
        k: None,
        filter: None,
        mode: None,
        include: None,
        rrf_k: None,
        weights: None,
        exact: false,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

async fn animals(client: &Client) {
    create(client, "animals", 3).await;
    client
        .upsert(Upsert {
            collection: "animals".into(),
            documents: vec![
                doc(
                    "otter",
                    Some("Otters hold hands while sleeping in the river"),
                    Some(vec![1.0, 0.1, 0.0]),
                    json!({"class": "mammal", "legs": 4}),
                ),
                doc(
                    "eagle",
                    Some("The eagle soars above the mountains"),
                    Some(vec![0.0, 1.0, 0.1]),
                    json!({"class": "bird", "legs": 2}),
                ),
                doc(
                    "salmon",
                    Some("Salmon swim up the river to spawn"),
                    Some(vec![0.2, 0.0, 1.0]),
                    json!({"class": "fish", "legs": 0}),
                ),
                doc(
                    "beaver",
                    Some("A beaver builds dams in the river"),
                    Some(vec![0.9, 0.2, 0.1]),
                    json!({"class": "mammal", "legs": 4}),
                ),
                doc(
                    "note",
                    Some("no vector here, just the river"),
                    None,
                    json!({"class": "text"}),
                ),
            ],
        })
        .await
        .expect("upsert");
}

#[tokio::test]
async fn lexical_search_stems_ranks_and_reports_ranks() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    animals(&client).await;

    let result = client
        .search(Search {
            text: Some("otter sleeps".into()),
            ..search("animals")
        })
        .await
        .expect("search");
    assert_eq!(
        result.hits[0].id, "otter",
        "porter stemming: otter ~ Otters"
    );
    assert_eq!(result.hits[0].ranks.lexical, Some(1));
    assert_eq!(result.hits[0].ranks.vector, None);
    assert!(
        result.hits[0].score > 0.0,
        "bm25 relevance, higher is better"
    );
    assert_eq!(
        result.hits[0].text.as_deref(),
        Some("Otters hold hands while sleeping in the river")
    );
    assert_eq!(
        result.hits[0].metadata,
        json!({"class": "mammal", "legs": 4})
            .as_object()
            .cloned()
            .map(Into::into)
    );

    let river = hit_ids(
        &client,
        Search {
            text: Some("river".into()),
            k: Some(10),
            ..search("animals")
        },
    )
    .await;
    assert_eq!(river.len(), 4);
    let river_mammals = hit_ids(
        &client,
        Search {
            text: Some("river".into()),
            filter: Some(filter(json!({"class": "mammal"}))),
            ..search("animals")
        },
    )
    .await;
    let mut sorted = river_mammals.clone();
    sorted.sort();
    assert_eq!(sorted, ["beaver", "otter"]);
}

#[tokio::test]
async fn vector_search_finds_nearest_and_includes_vectors() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    animals(&client).await;
    let result = client
        .search(Search {
            vector: Some(vec![1.0, 0.0, 0.0].into()),
            k: Some(2),
            include: Some(vec![Field::Vector]),
            ..search("animals")
        })
        .await
        .expect("search");
    let ids: Vec<_> = result.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["otter", "beaver"]);
    assert_eq!(result.hits[0].ranks.vector, Some(1));
    assert_eq!(result.hits[0].vector.as_deref(), Some(&[1.0, 0.1, 0.0][..]));
    assert!(result.hits[0].text.is_none());
    assert!(
        (result.hits[0].score - f64::from(cosine(&[1.0, 0.0, 0.0], &[1.0, 0.1, 0.0]))).abs() < 1e-4
    );
}

#[tokio::test]
async fn hybrid_fuses_by_reciprocal_rank_with_weights() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    animals(&client).await;
    let params = Search {
        text: Some("river".into()),
        vector: Some(vec![0.0, 0.0, 1.0].into()),
        k: Some(5),
        rrf_k: Some(10),
        ..search("animals")
    };
    let result = client.search(params.clone()).await.expect("hybrid");
    assert!(!result.hits.is_empty());
    let mut previous = f64::INFINITY;
    for hit in &result.hits {
        let expected: f64 = [hit.ranks.lexical, hit.ranks.vector]
            .iter()
            .flatten()
            .map(|r| 1.0 / (10.0 + f64::from(*r)))
            .sum();
        assert!((hit.score - expected).abs() < 1e-9, "{hit:?}");
        assert!(hit.score <= previous, "sorted by fused score");
        previous = hit.score;
    }
    // salmon is first in the vector list and in the lexical list: it wins.
    assert_eq!(result.hits[0].id, "salmon");
    assert_eq!(result.hits[0].ranks.vector, Some(1));
    // A zero lexical weight leaves the vector order.
    let vector_only = hit_ids(
        &client,
        Search {
            weights: Some(Weights {
                lexical: 0.0,
                vector: 1.0,
            }),
            mode: Some(SearchMode::Hybrid),
            ..params
        },
    )
    .await;
    let plain_vector = hit_ids(
        &client,
        Search {
            vector: Some(vec![0.0, 0.0, 1.0].into()),
            k: Some(4),
            ..search("animals")
        },
    )
    .await;
    assert_eq!(vector_only[..4], plain_vector[..]);
}

#[tokio::test]
async fn filtered_search_equals_brute_force_filtered_search() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "points", 16).await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let points: Vec<(String, Vec<f32>, u64)> = (0..600)
        .map(|i| {
            (
                format!("p{i}"),
                (0..16).map(|_| rng.unit()).collect(),
                rng.next() % 10,
            )
        })
        .collect();
    for chunk in points.chunks(200) {
        let documents = chunk
            .iter()
            .map(|(id, v, bucket)| doc(id, None, Some(v.clone()), json!({"bucket": bucket})))
            .collect();
        put(&client, "points", documents).await;
    }
    let filters = [
        (json!({"bucket": 3}), &[3u64][..]),
        (json!({"bucket": {"$in": [1, 2, 7]}}), &[1, 2, 7][..]),
        (json!({"bucket": {"$lt": 8}}), &[0, 1, 2, 3, 4, 5, 6, 7][..]),
    ];
    for query_no in 0..8 {
        let query: Vec<f32> = (0..16).map(|_| rng.unit()).collect();
        for (f, buckets) in &filters {
            let mut expected: Vec<(f32, &str)> = points
                .iter()
                .filter(|(_, _, b)| buckets.contains(b))
                .map(|(id, v, _)| (cosine(&query, v), id.as_str()))
                .collect();
            expected.sort_by(|a, b| b.0.total_cmp(&a.0));
            let expected: Vec<&str> = expected.iter().take(10).map(|(_, id)| *id).collect();
            for exact in [false, true] {
                let got = hit_ids(
                    &client,
                    Search {
                        vector: Some(query.clone().into()),
                        filter: Some(filter(f.clone())),
                        exact,
                        ..search("points")
                    },
                )
                .await;
                assert_eq!(got, expected, "query {query_no}, filter {f}, exact {exact}");
            }
        }
    }
}

#[tokio::test]
async fn hostile_query_strings_never_error_out_of_fts5() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    animals(&client).await;
    let long = "river ".repeat(20_000);
    let hostile = [
        "\"",
        "\"\"\"",
        "'",
        "a AND",
        "OR",
        "NOT river",
        "river NOT",
        "NEAR(river otter, 2)",
        "NEAR(",
        "*",
        "riv*",
        "text:river",
        "^river",
        "-river",
        "(",
        ")",
        "{river}",
        "[x]",
        ":",
        "AND OR NOT",
        "🦦🦦",
        "川 河流",
        "Ünïcödé river",
        "\u{0}",
        "col:\"x",
        "river\"; DROP TABLE documents; --",
        "",
        "   ",
        &long,
    ];
    for text in hostile {
        let result = client
            .search(Search {
                text: Some(text.to_owned()),
                ..search("animals")
            })
            .await;
        assert!(
            result.is_ok(),
            "query {:?} failed: {result:?}",
            &text[..text.len().min(40)]
        );
    }
    let hits = hit_ids(
        &client,
        Search {
            text: Some("NOT river".into()),
            ..search("animals")
        },
    )
    .await;
    assert!(
        hits.contains(&"salmon".to_owned()),
        "NOT is a word, not an operator"
    );
}

#[tokio::test]
async fn a_search_right_after_an_upsert_sees_it() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "c", 4).await;
    for i in 0..50u32 {
        let id = format!("doc{i}");
        let vector = vec![i as f32, 1.0, (i % 7) as f32, 0.5];
        client
            .upsert(Upsert {
                collection: "c".into(),
                documents: vec![doc(
                    &id,
                    Some(&format!("unique{i}word")),
                    Some(vector.clone()),
                    json!(null),
                )],
            })
            .await
            .expect("upsert");
        let lexical = hit_ids(
            &client,
            Search {
                text: Some(format!("unique{i}word")),
                k: Some(1),
                ..search("c")
            },
        )
        .await;
        assert_eq!(
            lexical,
            std::slice::from_ref(&id),
            "lexical read-your-writes"
        );
        let vector = hit_ids(
            &client,
            Search {
                vector: Some(vector.into()),
                k: Some(1),
                mode: Some(SearchMode::Vector),
                ..search("c")
            },
        )
        .await;
        assert_eq!(vector, [id], "vector read-your-writes");
    }
}

#[tokio::test]
async fn search_parameters_are_validated() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    animals(&client).await;
    let cases = [
        Search {
            ..search("animals")
        },
        Search {
            mode: Some(SearchMode::Lexical),
            vector: Some(vec![1.0, 0.0, 0.0].into()),
            ..search("animals")
        },
        Search {
            mode: Some(SearchMode::Hybrid),
            text: Some("x".into()),
            ..search("animals")
        },
        Search {
            text: Some("x".into()),
            k: Some(0),
            ..search("animals")
        },
        Search {
            text: Some("x".into()),
            k: Some(1001),
            ..search("animals")
        },
        Search {
            vector: Some(vec![1.0].into()),
            ..search("animals")
        },
    ];
    let expected = [
        ErrorCode::BadRequest,
        ErrorCode::BadRequest,
        ErrorCode::BadRequest,
        ErrorCode::BadRequest,
        ErrorCode::BadRequest,
        ErrorCode::DimensionMismatch,
    ];
    for (params, code) in cases.into_iter().zip(expected) {
        let err = client.search(params.clone()).await.expect_err("refused");
        assert_eq!(err.code(), Some(code), "{params:?}: {err}");
    }
    let err = client
        .search(Search {
            text: Some("x".into()),
            ..search("nope")
        })
        .await
        .expect_err("no collection");
    assert_eq!(err.code(), Some(ErrorCode::CollectionNotFound));
}
