//! Labels that reach people (a lease's `holder` in `status`, the service manager's status line
//! and the log; a client's name in the log) are printable and bounded.

use crate::support::{Daemon, Scratch, error_code};
use std::time::Duration;

/// A `holder` with newlines injected lines into the systemd notify datagram (`X_INJECTED=1`,
/// a spoofed `STATUS=`).
#[test]
fn a_holder_with_control_characters_is_refused_and_never_reaches_the_service_manager() {
    let scratch = Scratch::new();
    let mut daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    for holder in [
        r#""nightly\nX_INJECTED=1\nSTATUS=pwned""#,
        r#""carriage\rreturn""#,
        r#""nul\u0000""#,
        r#""bell\u0007""#,
        r#""line\u2028separator""#,
        r#""\u202Eoverride""#,
        r#""""#,
    ] {
        let reply = raw.call(&format!(
            r#"{{"op":"release","holder":{holder},"ttl_s":60}}"#
        ));
        assert_eq!(error_code(&reply), "bad_request", "{holder}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("holder")),
            "{reply}"
        );
    }
    let too_long = "x".repeat(129);
    let reply = raw.call(&format!(
        r#"{{"op":"release","holder":"{too_long}","ttl_s":60}}"#
    ));
    assert_eq!(error_code(&reply), "bad_request", "{reply}");
    let status = raw.call(r#"{"op":"status"}"#);
    assert_eq!(status["state"], "serving", "{status}");
    assert_eq!(status["leases"], serde_json::json!([]), "{status}");
    // Nothing was released, so nothing was told to the service manager.
    while let Some(message) = daemon.next_notification(Duration::from_millis(200)) {
        assert!(!message.contains("X_INJECTED"), "{message}");
        assert!(!message.contains("pwned"), "{message}");
    }

    // A printable label of the longest length, in any script, is fine and shown as given.
    let holder = format!("Sicherung über Nacht {}", "x".repeat(128 - 22));
    assert_eq!(holder.len(), 128);
    let reply = raw.call(&format!(
        r#"{{"op":"release","holder":"{holder}","ttl_s":60}}"#
    ));
    assert_eq!(reply["ok"], true, "{reply}");
    let message = loop {
        let message = daemon
            .next_notification(Duration::from_secs(10))
            .expect("the release is reported");
        assert_eq!(message.lines().count(), 1, "one STATUS line: {message}");
        if message.contains("released") {
            break message;
        }
    };
    assert!(message.contains("Sicherung über Nacht"), "{message}");
    assert_eq!(raw.call(r#"{"op":"resume","all":true}"#)["ok"], true);
}

#[test]
fn a_client_name_with_control_characters_is_refused() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let mut raw = daemon.raw();
    let reply = raw
        .call(r#"{"op":"hello","protocol":1,"client":"tool\n2026-12-03T00:00:00Z ERROR forged"}"#);
    assert_eq!(error_code(&reply), "bad_request", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("client"))
    );
    let reply = raw.call(r#"{"op":"hello","protocol":1,"client":"my-tool/1.0"}"#);
    assert_eq!(reply["ok"], true, "{reply}");
}
