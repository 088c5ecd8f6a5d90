//! Vectors as bytes on the wire (protocol 1, additive): a vector may be sent as base64 of its
//! little-endian `f32` wherever a JSON array is accepted, and `get` / `search` return vectors
//! in the `vector_encoding` asked for. Bytes are exact, bit for bit; bad ones are refused with a
//! message that says what is wrong, and nothing is written.
//!
//! The base64 strings here were computed outside the project (Python's `struct` and `base64`).

use crate::support::{Daemon, Scratch, error_code};
use serde_json::Value;

/// `[1, 2, 3, 4]`.
const ONE_TO_FOUR: &str = "AACAPwAAAEAAAEBAAACAQA==";
/// `[0.5, -0.0, the smallest subnormal, f32::MAX]`: values a decimal round trip can get wrong.
const EDGES: &str = "AAAAPwAAAIABAAAA//9/fw==";
const EDGE_BITS: [u32; 4] = [0x3f00_0000, 0x8000_0000, 0x0000_0001, 0x7f7f_ffff];

fn bits(vector: &Value) -> Vec<u32> {
    vector
        .as_array()
        .unwrap_or_else(|| panic!("an array: {vector}"))
        .iter()
        .map(|v| (v.as_f64().expect("a number") as f32).to_bits())
        .collect()
}

#[test]
fn vectors_travel_as_base64_both_ways_bit_for_bit() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    let created = raw.call(r#"{"op":"create_collection","name":"v","dimension":4}"#);
    assert_eq!(created["ok"], true, "{created}");
    let upserted = raw.call(&format!(
        r#"{{"op":"upsert","collection":"v","documents":[{{"id":"bytes","vector":"{ONE_TO_FOUR}"}},{{"id":"edges","vector":"{EDGES}"}},{{"id":"json","vector":[4,3,2,1]}}]}}"#
    ));
    assert_eq!(upserted["ok"], true, "{upserted}");

    // Read back as JSON arrays (the default): the same numbers.
    let got = raw.call(
        r#"{"op":"get","collection":"v","ids":["bytes","edges","json"],"include":["vector"]}"#,
    );
    let documents = got["documents"].as_array().expect("documents");
    assert_eq!(
        bits(&documents[0]["vector"]),
        [1.0f32, 2.0, 3.0, 4.0].map(f32::to_bits)
    );
    assert_eq!(
        bits(&documents[1]["vector"]),
        EDGE_BITS,
        "-0 and a subnormal survive"
    );
    assert_eq!(
        bits(&documents[2]["vector"]),
        [4.0f32, 3.0, 2.0, 1.0].map(f32::to_bits)
    );

    // Read back as base64: the very bytes sent, and the JSON-sent vector as bytes too.
    let got = raw.call(
        r#"{"op":"get","collection":"v","ids":["bytes","edges","json"],"include":["vector"],"vector_encoding":"base64"}"#,
    );
    let documents = got["documents"].as_array().expect("documents");
    assert_eq!(documents[0]["vector"], ONE_TO_FOUR);
    assert_eq!(documents[1]["vector"], EDGES);
    assert_eq!(documents[2]["vector"], "AACAQAAAQEAAAABAAACAPw==");

    // A base64 query vector; hits' vectors in base64.
    let found = raw.call(&format!(
        r#"{{"op":"search","collection":"v","vector":"{ONE_TO_FOUR}","k":1,"include":["vector"],"vector_encoding":"base64"}}"#
    ));
    assert_eq!(found["hits"][0]["id"], "bytes", "{found}");
    assert_eq!(found["hits"][0]["vector"], ONE_TO_FOUR);
    // Unpadded base64 is accepted as well.
    let found = raw.call(
        r#"{"op":"search","collection":"v","vector":"AACAPwAAAEAAAEBAAACAQA","k":1,"mode":"vector"}"#,
    );
    assert_eq!(found["hits"][0]["id"], "bytes", "{found}");
}

#[test]
fn bad_base64_vectors_are_refused_and_nothing_is_written() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    let created = raw.call(r#"{"op":"create_collection","name":"v","dimension":4}"#);
    assert_eq!(created["ok"], true, "{created}");
    let nan = "AADAfwAAAAAAAAAAAAAAAA==";
    let too_long = "A".repeat(4 * 4097 * 4 / 3 + 4);
    for (vector, code, says) in [
        ("not base64!", "bad_request", "not valid base64"),
        ("AACAPwAA", "bad_request", "holds 6 bytes"),
        (too_long.as_str(), "bad_request", "more than 4096 values"),
        ("AACAPwAAAEAAAEBA", "dimension_mismatch", "3 dimensions"),
        (nan, "invalid_vector", "non-finite"),
    ] {
        let reply = raw.call(&format!(
            r#"{{"op":"upsert","collection":"v","documents":[{{"id":"ok","vector":[1,1,1,1]}},{{"id":"bad","vector":"{vector}"}}]}}"#
        ));
        assert_eq!(error_code(&reply), code, "{reply}");
        let message = reply["error"]["message"].as_str().expect("a message");
        assert!(message.contains(says), "{message}");
        let search = raw.call(&format!(
            r#"{{"op":"search","collection":"v","vector":"{vector}","mode":"vector"}}"#
        ));
        assert_eq!(error_code(&search), code, "{search}");
    }
    let count = raw.call(r#"{"op":"count","collection":"v"}"#);
    assert_eq!(count["count"], 0, "nothing of a refused upsert is written");
    let wrong = raw.call(r#"{"op":"get","collection":"v","ids":["ok"],"vector_encoding":"hex"}"#);
    assert_eq!(error_code(&wrong), "bad_request", "{wrong}");
}
