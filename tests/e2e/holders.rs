//! Holds (`attach`/`detach`) and `--stop-when-unused`: the daemon a client library starts on
//! demand stops, through the one shutdown sequence, when its last holder lets go or vanishes.

use crate::support::{Daemon, EXIT_TIMEOUT, Scratch, Start};

fn stop_when_unused(scratch: &Scratch) -> Daemon {
    Start::new(scratch).arg("--stop-when-unused").spawn()
}

#[test]
fn the_last_detach_stops_the_daemon_and_its_connection_closes_when_every_file_is() {
    let scratch = Scratch::new();
    let mut daemon = stop_when_unused(&scratch);
    let mut first = daemon.raw();
    let mut second = daemon.raw();
    assert_eq!(
        first.call(r#"{"op":"attach"}"#),
        serde_json::json!({"id": null, "ok": true, "holders": 1, "stop_when_unused": true})
    );
    assert_eq!(second.call(r#"{"op":"attach"}"#)["holders"], 2);
    // Attaching twice on one connection is one hold.
    assert_eq!(second.call(r#"{"op":"attach"}"#)["holders"], 2);
    assert_eq!(daemon.raw().call(r#"{"op":"status"}"#)["holders"], 2);

    assert_eq!(
        first.call(r#"{"op":"detach"}"#),
        serde_json::json!({"id": null, "ok": true, "holders": 1, "stopping": false})
    );
    // Still serving the other holder.
    assert_eq!(second.call(r#"{"op":"ping"}"#)["ok"], true);

    assert_eq!(
        second.call(r#"{"op":"detach"}"#),
        serde_json::json!({"id": null, "ok": true, "holders": 0, "stopping": true})
    );
    // As after `shutdown`: the connection closes at the very end of the shutdown sequence.
    second.expect_closed();
    assert!(
        crate::support::handles_into(daemon.pid(), &daemon.data).is_empty(),
        "every file of the data directory is closed when the connection closes"
    );
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{log}");
    assert!(log.contains("no client holds it"), "{log}");
    // The directory is free at once.
    let again = Daemon::start(&scratch);
    assert_eq!(again.raw().call(r#"{"op":"ping"}"#)["ok"], true);
}

#[test]
fn a_holder_that_vanishes_lets_go_too() {
    let scratch = Scratch::new();
    let mut daemon = stop_when_unused(&scratch);
    let mut holder = daemon.raw();
    assert_eq!(holder.call(r#"{"op":"attach"}"#)["ok"], true);
    // A client killed with SIGKILL: the kernel closes its socket, nothing is sent.
    drop(holder);
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{log}");
}

#[test]
fn a_daemon_nobody_attaches_to_stops_after_the_grace() {
    let scratch = Scratch::new();
    let mut daemon = Start::new(&scratch)
        .arg("--stop-when-unused")
        .arg("--unused-grace")
        .arg("1s")
        .spawn();
    // Plain connections do not hold it.
    assert_eq!(daemon.raw().call(r#"{"op":"ping"}"#)["ok"], true);
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{log}");
    assert!(log.contains("no client attached within 1s"), "{log}");
}

#[test]
fn other_daemons_count_holds_and_keep_serving() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut holder = daemon.raw();
    assert_eq!(
        holder.call(r#"{"op":"attach"}"#),
        serde_json::json!({"id": null, "ok": true, "holders": 1, "stop_when_unused": false})
    );
    assert_eq!(holder.call(r#"{"op":"detach"}"#)["stopping"], false);
    // Detaching without a hold is harmless.
    assert_eq!(holder.call(r#"{"op":"detach"}"#)["holders"], 0);
    assert_eq!(holder.call(r#"{"op":"ping"}"#)["ok"], true);
}

#[test]
fn connections_open_when_the_stop_begins_are_closed() {
    let scratch = Scratch::new();
    let mut daemon = stop_when_unused(&scratch);
    let mut holder = daemon.raw();
    assert_eq!(holder.call(r#"{"op":"attach"}"#)["ok"], true);
    let mut late = daemon.raw();
    assert_eq!(late.call(r#"{"op":"ping"}"#)["ok"], true);
    assert_eq!(holder.call(r#"{"op":"detach"}"#)["stopping"], true);
    // A connection open when the stop began is closed by it (its client then finds or starts
    // the next daemon), and no new hold can keep the stopping daemon alive.
    late.expect_closed();
    let (status, _) = daemon.wait_exit(EXIT_TIMEOUT);
    assert!(status.success());
}
