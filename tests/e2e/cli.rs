//! The `ctxd` binary as a client: output formats and exit codes (exit codes: `daemon/src/exit.rs`).

use crate::support::{Daemon, Scratch, ctxd};
use serde_json::Value;

#[test]
fn status_prints_text_by_default_and_json_on_request() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let socket = daemon.socket.to_str().expect("utf-8 path");

    let out = ctxd(&["--socket", socket, "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serving"), "{text}");
    assert!(text.contains(&format!("pid {}", daemon.pid())), "{text}");
    assert!(text.contains("open files"), "{text}");

    let out = ctxd(&["--socket", socket, "--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(json["pid"], daemon.pid());
    assert_eq!(json["state"], "serving");

    let out = ctxd(&["--socket", socket, "health"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "serving");
}

#[test]
fn an_unreachable_daemon_exits_3_with_a_hint() {
    let scratch = Scratch::new();
    let socket = scratch.socket();
    for command in ["status", "health", "stop"] {
        let out = ctxd(&["--socket", socket.to_str().expect("utf-8"), command]);
        assert_eq!(out.status.code(), Some(3), "{command}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not running"), "{stderr}");
        assert!(
            stderr.contains(&socket.display().to_string()),
            "names the socket: {stderr}"
        );
        assert!(
            stderr.contains("ctxd serve"),
            "says how to start it: {stderr}"
        );
        assert_eq!(
            stderr.matches("not running").count(),
            1,
            "printed once: {stderr}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["status", "--no-such-flag"],
        &["--timeout", "soon", "status"],
    ] {
        let out = ctxd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
