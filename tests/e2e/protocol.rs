//! The wire: envelope, framing, error codes, and that a bad message never costs the connection.

use crate::support::{Daemon, Scratch, Start, error_code};
use ctxd_client::Error;
use ctxd_proto::{ErrorCode, State};
use serde_json::json;

#[tokio::test]
async fn hello_ping_health_status_through_the_client() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;

    assert_eq!(client.server().protocol, 1);
    assert_eq!(client.server().pid, daemon.pid());
    assert_eq!(client.server().state, State::Serving);
    let hello = client.hello().await.expect("hello");
    assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));

    client.ping().await.expect("ping");

    let health = client.health().await.expect("health");
    assert_eq!(health.state, State::Serving);
    assert!(health.ready);

    let status = client.status().await.expect("status");
    assert_eq!(status.pid, daemon.pid());
    assert_eq!(status.state, State::Serving);
    let data_dir = std::fs::canonicalize(&daemon.data).expect("canonical data dir");
    assert_eq!(status.data_dir, data_dir.display().to_string());
    assert_eq!(status.socket, daemon.socket.display().to_string());
    assert_eq!(
        (status.generation, status.collections, status.documents),
        (0, 0, 0)
    );
    assert!(status.leases.is_empty());
    assert_eq!(status.connections, 1, "only this client is connected");
    // SQLite (database + WAL + shm) and LMDB (data.mdb + lock.mdb) are open while serving.
    let open = status.open_files.expect("open_files is counted on Linux");
    assert!(
        open >= 4,
        "expected the stores' files to be open, got {open}"
    );
}

#[test]
fn hello_ping_health_status_through_raw_json_lines() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();

    let hello = raw.call(r#"{"id":1,"op":"hello","protocol":1,"client":"raw-test"}"#);
    assert_eq!(hello["id"], 1);
    assert_eq!(hello["ok"], true);
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["pid"], daemon.pid());
    assert_eq!(hello["state"], "serving");

    assert_eq!(
        raw.call(r#"{"id":"p","op":"ping"}"#),
        json!({"id": "p", "ok": true})
    );
    // A request without an id is answered with `"id": null`.
    assert_eq!(
        raw.call(r#"{"op":"ping"}"#),
        json!({"id": null, "ok": true})
    );

    let health = raw.call(r#"{"id":2,"op":"health"}"#);
    assert_eq!(
        health,
        json!({"id": 2, "ok": true, "state": "serving", "ready": true})
    );

    let status = raw.call(r#"{"id":3,"op":"status"}"#);
    assert_eq!(status["ok"], true);
    for field in [
        "version",
        "pid",
        "uptime_s",
        "state",
        "data_dir",
        "socket",
        "generation",
        "collections",
        "documents",
        "leases",
        "open_files",
        "connections",
    ] {
        assert!(
            status.get(field).is_some(),
            "status lacks `{field}`: {status}"
        );
    }
}

#[test]
fn bad_messages_get_the_right_code_and_the_connection_keeps_working() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();

    let cases: [(&str, &str, serde_json::Value); 9] = [
        (r#"{"id":1,"op":"ping""#, "bad_request", json!(null)),
        ("not json at all", "bad_request", json!(null)),
        (r#"[1,2,3]"#, "bad_request", json!(null)),
        (r#"{"id":2,"op":"teleport"}"#, "unknown_op", json!(2)),
        (
            r#"{"id":3,"op":"ping","verbose":true}"#,
            "bad_request",
            json!(3),
        ),
        (
            r#"{"id":4,"op":"create_collection","name":"x","dimension":"many"}"#,
            "bad_request",
            json!(4),
        ),
        (r#"{"id":5,"op":7}"#, "bad_request", json!(5)),
        (r#"{"id":6}"#, "bad_request", json!(6)),
        (
            r#"{"id":7,"op":"hello","protocol":2}"#,
            "unsupported_protocol",
            json!(7),
        ),
    ];
    for (line, code, id) in cases {
        let reply = raw.call(line);
        assert_eq!(error_code(&reply), code, "for {line}: {reply}");
        assert_eq!(reply["id"], id, "for {line}: {reply}");
        let message = reply["error"]["message"].as_str().expect("a message");
        assert!(!message.is_empty() && !message.ends_with('.'), "{message}");
        // The same connection still answers.
        assert_eq!(
            raw.call(r#"{"id":99,"op":"ping"}"#)["ok"],
            true,
            "after {line}"
        );
    }

    let wrong_version = raw.call(r#"{"id":8,"op":"hello","protocol":2}"#);
    assert_eq!(wrong_version["error"]["supported"], json!([1]));
    let mistyped = raw.call(r#"{"id":9,"op":"create_collection","name":"x","dimension":"many"}"#);
    let message = mistyped["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("`dimension`"),
        "names the field: {message}"
    );
}

#[test]
fn an_oversized_line_gets_frame_too_large_then_the_connection_closes() {
    let scratch = Scratch::new();
    let daemon = Start::new(&scratch).arg("--max-frame").arg("4096").spawn();

    // A line exactly at the limit is fine.
    let mut raw = daemon.raw();
    let padding = " ".repeat(4096 - r#"{"op":"ping"}"#.len());
    let at_limit = format!(r#"{{"op":"ping"{padding}}}"#);
    assert_eq!(at_limit.len(), 4096);
    assert_eq!(raw.call(&at_limit)["ok"], true);

    // One byte more is refused, and the connection is closed.
    let over = format!(r#"{{"op":"ping"{padding} }}"#);
    let reply = raw.call(&over);
    assert_eq!(error_code(&reply), "frame_too_large");
    assert_eq!(reply["error"]["max_frame"], 4096);
    raw.expect_closed();

    // A line that never ends is refused without being buffered whole.
    let mut raw = daemon.raw();
    raw.send_bytes(&vec![b'{'; 64 * 1024]);
    assert_eq!(error_code(&raw.recv()), "frame_too_large");
    raw.expect_closed();

    // Other connections are unaffected.
    assert_eq!(daemon.raw().call(r#"{"op":"ping"}"#)["ok"], true);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    let batch: String = (0..200)
        .map(|i| match i % 3 {
            0 => format!("{{\"id\":{i},\"op\":\"ping\"}}\n"),
            1 => format!("{{\"id\":{i},\"op\":\"health\"}}\n"),
            _ => format!("{{\"id\":{i},\"op\":\"nope\"}}\n"),
        })
        .collect();
    raw.send_bytes(batch.as_bytes());
    for i in 0..200 {
        let reply = raw.recv();
        assert_eq!(reply["id"], i, "replies come back in request order");
        assert_eq!(reply["ok"], i % 3 != 2);
    }
}

#[tokio::test]
async fn the_client_maps_daemon_errors_to_codes() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    let err = client
        .get_collection("absent")
        .await
        .expect_err("no such collection");
    assert_eq!(err.code(), Some(ErrorCode::CollectionNotFound));
    assert!(matches!(err, Error::Daemon { .. }));
    // The client stays usable after a daemon error.
    client.ping().await.expect("ping after an error");
}
