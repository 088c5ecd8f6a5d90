//! The client's typed errors, against scripted peers that misbehave in ways a real daemon does
//! not (the real daemon's errors are covered by the end-to-end suite).
#![cfg(unix)]

use ctxd_client::{Client, Error};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// A peer that answers each request line with the next scripted reply (`None`: stay silent).
async fn scripted_peer(
    replies: Vec<Option<&'static str>>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        for reply in replies {
            if lines.next_line().await.ok().flatten().is_none() {
                return;
            }
            match reply {
                Some(reply) => write
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .expect("write"),
                None => std::future::pending::<()>().await,
            }
        }
    });
    (dir, path)
}

const HELLO_OK: &str =
    r#"{"id":1,"ok":true,"protocol":1,"version":"9.9.9","pid":42,"state":"serving"}"#;

#[tokio::test]
async fn nothing_listening_is_not_running_and_names_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.sock");
    match Client::connect_to(&path).await {
        Err(Error::NotRunning { socket, .. }) => assert_eq!(socket, path),
        other => panic!("expected NotRunning, got {other:?}"),
    }
}

#[tokio::test]
async fn a_daemon_of_another_protocol_is_a_version_mismatch() {
    let (_dir, path) = scripted_peer(vec![Some(
        r#"{"id":1,"ok":false,"error":{"code":"unsupported_protocol","message":"protocol 1 is not supported (this ctxd speaks protocol 2)","supported":[2]}}"#,
    )])
    .await;
    match Client::connect_to(&path).await {
        Err(Error::VersionMismatch { client, daemon, .. }) => {
            assert_eq!(client, 1);
            assert_eq!(daemon, "[2]");
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_daemon_times_out_and_the_next_call_reconnects() {
    let (_dir, path) = scripted_peer(vec![Some(HELLO_OK), None]).await;
    let client = Client::builder()
        .socket(&path)
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .expect("connect");
    assert_eq!(client.server().pid, 42);
    let started = Instant::now();
    match client.ping().await {
        Err(Error::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(200)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The timed-out connection was dropped; the scripted peer accepts only once, so the next
    // call has to open a new connection and finds nobody.
    assert!(client.ping().await.is_err());
}

#[tokio::test]
async fn garbage_and_mismatched_ids_are_protocol_errors() {
    let (_dir, path) = scripted_peer(vec![Some(HELLO_OK), Some("this is not json")]).await;
    let client = Client::connect_to(&path).await.expect("connect");
    assert!(matches!(client.ping().await, Err(Error::Protocol(_))));

    let (_dir, path) = scripted_peer(vec![Some(HELLO_OK), Some(r#"{"id":77,"ok":true}"#)]).await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.ping().await {
        Err(Error::Protocol(message)) => assert!(message.contains("77"), "{message}"),
        other => panic!("expected a Protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn daemon_errors_keep_code_message_and_details() {
    let (_dir, path) = scripted_peer(vec![
        Some(HELLO_OK),
        Some(
            r#"{"id":2,"ok":false,"error":{"code":"released","message":"the data directory is released","lease_expires_at":1790000000000}}"#,
        ),
    ])
    .await;
    let client = Client::connect_to(&path).await.expect("connect");
    match client.status().await {
        Err(Error::Daemon {
            code,
            message,
            details,
        }) => {
            assert_eq!(code.as_str(), "released");
            assert_eq!(message, "the data directory is released");
            assert_eq!(details["lease_expires_at"], 1_790_000_000_000u64);
        }
        other => panic!("expected a daemon error, got {other:?}"),
    }
}

/// A call abandoned half way (its future dropped by a `select!` or a caller's own timeout) once
/// left its reply unread on the connection, and the next call read that reply instead of its
/// own (an id mismatch). Now the abandoned connection is dropped and the next call reconnects.
#[tokio::test]
async fn a_call_abandoned_half_way_does_not_leave_its_reply_for_the_next_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("echo.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        // Every connection: answer each request with its own id; on the first connection the
        // first ping's reply comes only once the test says so.
        for first in [true, false] {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut released = released.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut held = first;
                while let Ok(Some(line)) = lines.next_line().await {
                    let request: serde_json::Value = serde_json::from_str(&line).expect("json");
                    let id = &request["id"];
                    let reply = if request["op"] == "hello" {
                        format!(
                            r#"{{"id":{id},"ok":true,"protocol":1,"version":"9","pid":7,"state":"serving"}}"#
                        )
                    } else {
                        if held {
                            held = false;
                            let _ = released.wait_for(|r| *r).await;
                        }
                        format!(r#"{{"id":{id},"ok":true}}"#)
                    };
                    if write
                        .write_all(format!("{reply}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let client = Client::connect_to(&path).await.expect("connect");
    let abandoned = tokio::time::timeout(Duration::from_millis(100), client.ping()).await;
    assert!(abandoned.is_err(), "the first ping is held by the peer");
    release.send(true).expect("release the held reply");
    client
        .ping()
        .await
        .expect("the next call gets its own reply, on a new connection");
}
