//! Stopping: every trigger runs the one shutdown sequence, exits 0, and leaves no socket and no
//! SQLite side files behind.

use crate::support::{Daemon, EXIT_TIMEOUT, Scratch, ctxd};
use rustix::process::Signal;
use std::path::Path;

/// What a cleanly stopped daemon leaves: no socket, SQLite checkpointed and closed.
fn assert_closed_cleanly(daemon: &Daemon) {
    assert!(
        !daemon.socket.exists(),
        "socket {} still exists",
        daemon.socket.display()
    );
    for side_file in ["text.sqlite3-wal", "text.sqlite3-shm"] {
        assert!(
            !daemon.data.join(side_file).exists(),
            "{side_file} left behind: SQLite was not checkpointed and closed"
        );
    }
    assert!(daemon.data.join("text.sqlite3").is_file());
    assert!(daemon.data.join("vectors/data.mdb").is_file());
    assert!(daemon.data.join("ctxd.json").is_file());
}

fn stop_with_signal(signal: Signal, reason: &str) {
    let scratch = Scratch::new();
    let mut daemon = Daemon::start(&scratch);
    daemon.signal(signal);
    let stopping = daemon.next_notification(EXIT_TIMEOUT);
    assert!(
        stopping
            .as_deref()
            .is_some_and(|m| m.contains("STOPPING=1")),
        "expected STOPPING=1, got {stopping:?}"
    );
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after {reason}; log:\n{log}"
    );
    assert!(
        log.contains(reason),
        "log names the reason `{reason}`:\n{log}"
    );
    assert!(log.contains("storage closed"), "{log}");
    assert_closed_cleanly(&daemon);
}

#[test]
fn sigterm_stops_cleanly_within_5_seconds() {
    stop_with_signal(Signal::TERM, "termination signal");
}

#[test]
fn sigint_stops_cleanly_within_5_seconds() {
    stop_with_signal(Signal::INT, "interrupt");
}

#[test]
fn ctxd_stop_returns_after_the_daemon_has_closed_everything() {
    let scratch = Scratch::new();
    let mut daemon = Daemon::start(&scratch);
    let socket = daemon.socket.to_str().expect("utf-8 path").to_owned();
    let out = ctxd(&["--socket", &socket, "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("pid {}", daemon.pid())), "{text}");
    // `stop` returned only after the daemon closed its last connection, which it does at the
    // very end of shutdown: the socket is gone already, with no waiting here.
    assert!(
        !Path::new(&socket).exists(),
        "socket still exists after `ctxd stop`"
    );
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutdown request"), "{log}");
    assert_closed_cleanly(&daemon);
}

#[tokio::test]
async fn shutdown_through_the_client_library() {
    let scratch = Scratch::new();
    let mut daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    let bystander = daemon.client().await;
    client.shutdown().await.expect("shutdown");
    assert!(!daemon.socket.exists());
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{log}");
    // Another client's next call fails cleanly instead of hanging.
    assert!(bystander.ping().await.is_err());
    assert_closed_cleanly(&daemon);
}

#[test]
fn a_restarted_daemon_reopens_the_same_data() {
    let scratch = Scratch::new();
    let mut first = Daemon::start(&scratch);
    let created = std::fs::read_to_string(scratch.data().join("ctxd.json")).expect("ctxd.json");
    first.signal(Signal::TERM);
    first.wait_exit(EXIT_TIMEOUT);
    let second = Daemon::start(&scratch);
    assert_eq!(second.raw().call(r#"{"op":"ping"}"#)["ok"], true);
    let again = std::fs::read_to_string(scratch.data().join("ctxd.json")).expect("ctxd.json");
    assert_eq!(created, again, "ctxd.json is written once, never rewritten");
}

#[test]
fn a_non_empty_directory_without_ctxd_json_is_refused() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.data()).expect("mkdir");
    std::fs::write(scratch.data().join("thesis.docx"), b"precious").expect("write");
    let (status, log) = crate::support::Start::new(&scratch).run_to_exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("refusing to use it as a data directory"),
        "{log}"
    );
    let names: Vec<_> = std::fs::read_dir(scratch.data())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["thesis.docx"], "nothing was written into it");
}
