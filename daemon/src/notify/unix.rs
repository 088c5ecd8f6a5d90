//! `sd_notify` through the sd-notify crate, from a thread of its own.
//!
//! A datagram `send` blocks while the receiver's queue is full, so a service manager (or a test)
//! that stops reading must never stall the daemon: messages go through a bounded queue to one
//! notifier thread, and a message that does not fit is dropped (a later status replaces it).

use sd_notify::NotifyState;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Messages waiting for the notifier thread.
const QUEUE: usize = 32;

/// What the daemon tells the service manager.
enum Note {
    Ready(String),
    Stopping,
    Status(String),
    /// Answered once everything queued before it was sent.
    Flush(SyncSender<()>),
}

/// The notifier's queue, or `None` when no service manager listens (`NOTIFY_SOCKET` unset).
fn queue() -> Option<&'static SyncSender<Note>> {
    static QUEUE_SENDER: OnceLock<Option<SyncSender<Note>>> = OnceLock::new();
    QUEUE_SENDER
        .get_or_init(|| {
            std::env::var_os("NOTIFY_SOCKET")?;
            let (sender, receiver) = sync_channel::<Note>(QUEUE);
            std::thread::Builder::new()
                .name("ctxd-notify".to_owned())
                .spawn(move || {
                    for note in receiver {
                        let result = match &note {
                            Note::Ready(status) => sd_notify::notify(&[
                                NotifyState::Ready,
                                NotifyState::Status(status),
                            ]),
                            Note::Stopping => sd_notify::notify(&[
                                NotifyState::Stopping,
                                NotifyState::Status("stopping"),
                            ]),
                            Note::Status(status) => {
                                sd_notify::notify(&[NotifyState::Status(status)])
                            }
                            Note::Flush(done) => {
                                let _ = done.try_send(());
                                Ok(())
                            }
                        };
                        if let Err(e) = result {
                            tracing::warn!("cannot notify the service manager: {e}");
                        }
                    }
                })
                .ok()?;
            Some(sender)
        })
        .as_ref()
}

fn send(note: Note) {
    if let Some(queue) = queue()
        && let Err(TrySendError::Full(_)) = queue.try_send(note)
    {
        tracing::debug!("the service manager is not reading notifications; one dropped");
    }
}

/// Storage is open and the socket accepts connections.
pub fn ready(status: &str) {
    send(Note::Ready(status.to_owned()));
}

/// Shutdown has started.
pub fn stopping() {
    send(Note::Stopping);
}

/// The state in words, for `systemctl status`.
pub fn status(status: &str) {
    send(Note::Status(status.to_owned()));
}

/// Waits (briefly) until every queued message was sent: the last thing before exiting.
pub fn flush() {
    let Some(queue) = queue() else { return };
    let (done, sent) = sync_channel(1);
    if queue.try_send(Note::Flush(done)).is_ok() {
        let _ = sent.recv_timeout(std::time::Duration::from_secs(1));
    }
}
