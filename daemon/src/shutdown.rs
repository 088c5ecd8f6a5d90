//! The one shutdown signal: SIGTERM, SIGINT, the `shutdown` operation and a Windows service
//! stop all trigger the same [`Shutdown`], and every task that must stop watches it.

use std::fmt;
use tokio::sync::watch;

/// What asked the daemon to stop (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// SIGTERM, or a service manager's stop.
    Terminate,
    /// SIGINT or Ctrl-C.
    Interrupt,
    /// A client's `shutdown` request.
    Request,
    /// `--stop-when-unused`: the last client holding the daemon let go, or none came.
    Unused,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Terminate => "termination signal",
            Reason::Interrupt => "interrupt",
            Reason::Request => "shutdown request",
            Reason::Unused => "no client holds it (--stop-when-unused)",
        })
    }
}

/// A cloneable trigger and watcher of the daemon's shutdown.
#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<Option<Reason>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            sender: watch::Sender::new(None),
        }
    }
}

impl Shutdown {
    /// A shutdown not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; the first reason wins, later triggers change nothing.
    pub fn trigger(&self, reason: Reason) {
        self.sender.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.sender.borrow().is_some()
    }

    /// Resolves when shutdown starts (at once if it already has).
    pub async fn triggered(&self) -> Reason {
        let mut receiver = self.sender.subscribe();
        let reason = receiver
            .wait_for(Option::is_some)
            .await
            .map(|r| *r)
            .ok()
            .flatten();
        // The sender lives in `self`, so the channel cannot close while we wait.
        reason.unwrap_or(Reason::Terminate)
    }
}
