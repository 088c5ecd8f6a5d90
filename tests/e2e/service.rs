//! Running under a service manager: the `sd_notify` readiness protocol, systemd's socket
//! activation, and the directories a unit's `StateDirectory=` / `RuntimeDirectory=` provide.

use crate::support::{Daemon, EXIT_TIMEOUT, Raw, Scratch, Start};
use rustix::process::Signal;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

/// The next notification that contains `wanted`, skipping others (a `STATUS=draining` may come
/// before `STATUS=released`); panics naming what did come.
fn expect_notification(daemon: &mut Daemon, wanted: &str) -> String {
    let mut seen = Vec::new();
    while let Some(message) = daemon.next_notification(Duration::from_secs(10)) {
        if message.contains(wanted) {
            return message;
        }
        seen.push(message);
    }
    panic!("no notification with {wanted:?}; got {seen:?}");
}

#[test]
fn the_service_manager_hears_ready_status_and_stopping() {
    let scratch = Scratch::new();
    // `spawn` returns once READY=1 arrived: the socket must already accept and answer.
    let mut daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    assert_eq!(raw.call(r#"{"op":"ping"}"#)["ok"], true);

    let released = raw.call(r#"{"op":"release","holder":"nightly-backup","ttl_s":600}"#);
    assert_eq!(released["ok"], true, "{released}");
    let status = expect_notification(&mut daemon, "STATUS=released");
    // "STATUS=released (nightly-backup until 2026-11-22T10:30:00Z)"
    let until = status
        .split("nightly-backup until ")
        .nth(1)
        .unwrap_or_else(|| panic!("the status names the holder and the lease's end: {status:?}"));
    assert!(
        until.starts_with("20") && until.contains('T') && until.trim_end().ends_with("Z)"),
        "the lease's end is a UTC time: {status:?}"
    );
    let lease = released["lease_id"].as_str().expect("lease id");
    let resumed = raw.call(&format!(r#"{{"op":"resume","lease_id":"{lease}"}}"#));
    assert_eq!(resumed["ok"], true, "{resumed}");
    expect_notification(&mut daemon, "STATUS=serving");

    daemon.signal(Signal::TERM);
    expect_notification(&mut daemon, "STOPPING=1");
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{log}");
}

/// A socket bound the way a `.socket` unit binds it: before any daemon runs.
fn bind_like_systemd(path: &Path) -> UnixListener {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path.parent().expect("socket dir"))
        .expect("create the socket dir");
    UnixListener::bind(path).expect("bind the socket")
}

#[test]
fn a_socket_passed_by_systemd_is_adopted_and_left_for_the_next_start() {
    let scratch = Scratch::new();
    let socket = scratch.socket();
    let listener = bind_like_systemd(&socket);

    // A client that connects before the daemon runs waits in the socket's backlog, as it
    // does when systemd starts the service on the first connection.
    let mut early = Raw::connect(&socket);
    early.send(r#"{"op":"ping","id":"early"}"#);

    let start = |listener: &UnixListener| {
        Start::new(&scratch)
            .socket(Some(socket.clone()))
            .without_socket_flag()
            .env("RUNTIME_DIRECTORY", socket.parent().expect("socket dir"))
            .activated_by(listener.try_clone().expect("clone the listener"))
            .spawn()
    };
    let mut daemon = start(&listener);
    let reply = early.recv();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["id"], "early");

    let status = Raw::connect(&socket).call(r#"{"op":"status"}"#);
    assert_eq!(status["socket"], socket.to_str().expect("utf-8"));
    assert!(
        daemon.stderr_so_far().contains("socket_activated=true"),
        "{}",
        daemon.stderr_so_far()
    );

    daemon.signal(Signal::TERM);
    let (exit, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(
        socket.exists(),
        "the socket file is systemd's: a socket-activated daemon must not remove it"
    );

    // systemd starts the service again on the next connection, with the same socket.
    let mut again = start(&listener);
    let pong = Raw::connect(&socket).call(r#"{"op":"ping"}"#);
    assert_eq!(pong["ok"], true, "{pong}");
    again.signal(Signal::TERM);
    assert_eq!(again.wait_exit(EXIT_TIMEOUT).0.code(), Some(0));
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_socket_is_refused_clearly() {
    let scratch = Scratch::new();
    let file = std::fs::File::create(scratch.path("not-a-socket")).expect("create a file");
    let (status, log) = Start::new(&scratch).activated_by(file).run_to_exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("socket activation: the passed descriptor is not a socket"),
        "{log}"
    );
}

#[test]
fn a_units_state_and_runtime_directories_are_the_defaults() {
    let scratch = Scratch::new();
    let state = scratch.path("var/lib/ctxd");
    let runtime = scratch.path("run/ctxd");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&runtime)
        .expect("create the runtime dir");
    let daemon = Start::new(&scratch)
        .data(&state)
        .without_data_flag()
        .socket(Some(runtime.join("ctxd.sock")))
        .without_socket_flag()
        .env("STATE_DIRECTORY", &state)
        .env("RUNTIME_DIRECTORY", &runtime)
        .spawn();
    let status = daemon.raw().call(r#"{"op":"status"}"#);
    assert_eq!(status["data_dir"], state.to_str().expect("utf-8"));
    assert_eq!(
        status["socket"],
        runtime.join("ctxd.sock").to_str().expect("utf-8")
    );
    assert!(state.join("ctxd.json").is_file());
}
