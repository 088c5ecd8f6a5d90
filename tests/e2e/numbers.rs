//! Numbers stay numbers: every score is a finite number for any finite input, weights that
//! would overflow are refused, and request ids come back byte for byte.

use crate::support::{Daemon, Scratch, error_code};
use ctxd_proto::Search;
use serde_json::Value;

/// Finite vectors near `f32::MAX` made every score `null` in all four distances, scan and
/// exact, and the Rust client then failed on every search returning such a document.
#[tokio::test]
async fn scores_of_vectors_near_the_float_limit_are_finite_numbers_in_every_distance() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    let mut raw = daemon.raw();
    for distance in ["cosine", "euclidean", "dot", "manhattan"] {
        let created = raw.call(&format!(
            r#"{{"op":"create_collection","name":"{distance}","dimension":4,"distance":"{distance}"}}"#
        ));
        assert_eq!(created["ok"], true, "{created}");
        let upserted = raw.call(
            &format!(
                r#"{{"op":"upsert","collection":"{distance}","documents":[
                {{"id":"huge","text":"huge","vector":[3e38,3e38,3e38,3e38]}},
                {{"id":"negative","text":"negative","vector":[-3e38,3e38,-3e38,3e38]}},
                {{"id":"small","text":"small","vector":[1e-38,0,0,1e-38]}},
                {{"id":"zero","text":"zero","vector":[0,0,0,0]}}]}}"#
            )
            .replace('\n', ""),
        );
        assert_eq!(upserted["ok"], true, "{upserted}");
        for query in ["[3e38,3e38,3e38,3e38]", "[-3e38,-3e38,3e38,1]", "[0,0,0,0]"] {
            for exact in [false, true] {
                for mode in ["vector", "hybrid"] {
                    let reply = raw.call(&format!(
                        r#"{{"op":"search","collection":"{distance}","text":"huge small","vector":{query},"mode":"{mode}","exact":{exact},"k":4}}"#
                    ));
                    assert_eq!(reply["ok"], true, "{reply}");
                    let hits = reply["hits"].as_array().expect("hits");
                    assert!(!hits.is_empty(), "{reply}");
                    for hit in hits {
                        assert!(
                            hit["score"].as_f64().is_some_and(f64::is_finite),
                            "{distance}, {mode}, exact {exact}, query {query}: {hit}"
                        );
                    }
                }
            }
        }
        // The typed client reads every one of them.
        let hits = client
            .search(Search {
                collection: distance.to_owned(),
                text: None,
                vector: Some(vec![3e38; 4].into()),
                k: Some(4),
                filter: None,
                mode: None,
                include: None,
                rrf_k: None,
                weights: None,
                exact: false,
                effort: None,
                vector_encoding: None,
                text_filter: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{distance}: {e}"))
            .hits;
        assert_eq!(hits.len(), 4, "{distance}");
        if distance == "cosine" {
            assert_eq!(hits[0].id, "huge", "the same direction is the nearest");
            assert!((hits[0].score - 1.0).abs() < 1e-6, "{}", hits[0].score);
        }
    }
}

/// Weights near `f64::MAX` with `rrf_k` 0 overflowed the fused score to `null`.
#[test]
fn hybrid_weights_that_would_overflow_are_refused() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    assert_eq!(
        raw.call(r#"{"op":"create_collection","name":"c","dimension":2}"#)["ok"],
        true
    );
    assert_eq!(
        raw.call(r#"{"op":"upsert","collection":"c","documents":[{"id":"a","text":"otter","vector":[1,0]}]}"#)["ok"],
        true
    );
    let reply = raw.call(
        r#"{"op":"search","collection":"c","text":"otter","vector":[1,0],"rrf_k":0,"weights":{"lexical":1.7e308,"vector":1.7e308}}"#,
    );
    assert_eq!(error_code(&reply), "bad_request", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("weight"))
    );
    // The largest weights allowed still give finite scores.
    let reply = raw.call(
        r#"{"op":"search","collection":"c","text":"otter","vector":[1,0],"rrf_k":0,"weights":{"lexical":1e6,"vector":1e6}}"#,
    );
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(
        reply["hits"][0]["score"]
            .as_f64()
            .is_some_and(f64::is_finite),
        "{reply}"
    );
}

/// A large integer id came back as `1.2345678901234568e+29`, `-0` as `-0.0`.
#[test]
fn request_ids_are_echoed_byte_for_byte() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    for id in [
        "123456789012345678901234567890",
        "-0",
        "1.50",
        "1e3",
        "-12345678901234567890.000000001",
        r#""plain""#,
        r#""\u00e9t\u00e9 \"quoted\"""#,
        r#""été""#,
        "0",
    ] {
        for request in [
            format!(r#"{{"id":{id},"op":"ping"}}"#),
            // Rejected requests echo the id too.
            format!(r#"{{"op":"ping","id":{id},"extra":1}}"#),
            format!(r#"{{"op":"no_such_op","id":  {id}}}"#),
        ] {
            raw.send(&request);
            let line = raw.recv_line();
            let expected = format!(r#"{{"id":{id},"ok":"#);
            assert!(line.starts_with(&expected), "{request} → {line}");
            let _: Value = serde_json::from_str(&line).expect("a JSON reply");
        }
    }
}
