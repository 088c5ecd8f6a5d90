//! `sd_notify` through the sd-notify crate.

use sd_notify::NotifyState;

/// Storage is open and the socket accepts connections.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutdown has started.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The state in words, for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}
