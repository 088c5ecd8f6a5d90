//! `sd_notify` from a thread of its own, through one socket kept for the daemon's life.
//!
//! A datagram `send` blocks while the receiver's queue is full, so a service manager (or a test)
//! that stops reading must never stall the daemon: messages go through a bounded queue to one
//! notifier thread, and a message that does not fit is dropped (a later status replaces it).
//!
//! The socket is opened once, before the first message, rather than per message (as
//! `sd_notify::notify` does): the daemon's handle count then stays constant while it serves, so
//! a `READY=1` being sent cannot show up as a handle that comes and goes.

use sd_notify::NotifyState;
use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;
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
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            let socket = match connect(&path) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!(
                        "cannot reach the service manager at NOTIFY_SOCKET={}: {e}",
                        path.to_string_lossy()
                    );
                    return None;
                }
            };
            let (sender, receiver) = sync_channel::<Note>(QUEUE);
            std::thread::Builder::new()
                .name("ctxd-notify".to_owned())
                .spawn(move || {
                    for note in receiver {
                        let result = match &note {
                            Note::Ready(status) => send_states(
                                &socket,
                                &[NotifyState::Ready, NotifyState::Status(status)],
                            ),
                            Note::Stopping => send_states(
                                &socket,
                                &[NotifyState::Stopping, NotifyState::Status("stopping")],
                            ),
                            Note::Status(status) => {
                                send_states(&socket, &[NotifyState::Status(status)])
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

/// A datagram socket connected to `NOTIFY_SOCKET`: a path, or (Linux) `@name` for the abstract
/// namespace, as systemd documents.
fn connect(path: &OsStr) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    #[cfg(target_os = "linux")]
    if let Some(name) = path.as_encoded_bytes().strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.connect_addr(&address)?;
        return Ok(socket);
    }
    socket.connect(path)?;
    Ok(socket)
}

/// One notification datagram: one `KEY=value` line per state. A value can never add a line:
/// labels that reach a status are checked at the protocol's edge, and any control character
/// that got this far anyway is replaced here.
fn send_states(socket: &UnixDatagram, states: &[NotifyState<'_>]) -> io::Result<()> {
    let message: String = states
        .iter()
        .map(|state| {
            let line: String = state
                .to_string()
                .chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect();
            line + "\n"
        })
        .collect();
    let sent = socket.send(message.as_bytes())?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ))
    }
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
