//! One daemon per data directory, one per socket; a live socket is never stolen, a stale one is
//! replaced.

use crate::support::{Daemon, EXIT_TIMEOUT, Scratch, Start};
use rustix::process::Signal;
use std::os::unix::net::UnixListener;

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused_and_names_the_owner() {
    let scratch = Scratch::new();
    let first = Daemon::start(&scratch);
    // Another socket, another runtime directory, another spelling of the same data directory.
    let same_data = scratch.path("data/../data");
    let (status, log) = Start::new(&scratch)
        .data(same_data)
        .socket(Some(scratch.path("elsewhere/other.sock")))
        .env("XDG_RUNTIME_DIR", scratch.path("other-runtime"))
        .run_to_exit();
    assert_eq!(status.code(), Some(i32::from(ctxd::exit::IN_USE)), "{log}");
    assert!(
        log.contains(&format!("pid {}", first.pid())),
        "the refusal names the owner's pid:\n{log}"
    );
    assert!(log.contains("data directory"), "{log}");
    // The first daemon is untouched.
    assert_eq!(first.raw().call(r#"{"op":"ping"}"#)["ok"], true);
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let scratch = Scratch::new();
    let first = Daemon::start(&scratch);
    let (status, log) = Start::new(&scratch)
        .data(scratch.path("other-data"))
        .run_to_exit();
    assert_eq!(status.code(), Some(i32::from(ctxd::exit::IN_USE)), "{log}");
    assert!(log.contains("socket"), "{log}");
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    // The first daemon still owns the socket and answers on it.
    assert_eq!(first.raw().call(r#"{"op":"ping"}"#)["ok"], true);
}

#[test]
fn a_live_socket_of_another_program_is_never_stolen() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("run")).expect("mkdir");
    let other = UnixListener::bind(scratch.socket()).expect("bind a foreign listener");
    let (status, log) = Start::new(&scratch).run_to_exit();
    assert_eq!(status.code(), Some(i32::from(ctxd::exit::IN_USE)), "{log}");
    assert!(log.contains("in use by another process"), "{log}");
    // The foreign listener still has its socket.
    let _client = std::os::unix::net::UnixStream::connect(scratch.socket()).expect("still live");
    other.accept().expect("the foreign listener still accepts");
}

#[test]
fn after_kill_9_the_next_start_replaces_the_stale_socket() {
    let scratch = Scratch::new();
    let mut first = Daemon::start(&scratch);
    first.signal(Signal::KILL);
    let (status, _) = first.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(
        scratch.socket().exists(),
        "kill -9 leaves the socket file behind"
    );

    let second = Daemon::start(&scratch);
    assert_eq!(second.raw().call(r#"{"op":"ping"}"#)["ok"], true);
    assert!(
        second.stderr_so_far().contains("replacing a stale socket"),
        "{}",
        second.stderr_so_far()
    );
}

#[test]
fn a_path_that_is_not_a_socket_is_not_replaced() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("run")).expect("mkdir");
    std::fs::write(scratch.socket(), b"not a socket").expect("write");
    let (status, log) = Start::new(&scratch).run_to_exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("is not a socket"), "{log}");
    assert_eq!(
        std::fs::read(scratch.socket()).expect("read"),
        b"not a socket"
    );
}
