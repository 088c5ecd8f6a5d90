//! Holds on the daemon: a connection that sends `attach` holds it until it sends `detach` or
//! closes. A daemon started with `--stop-when-unused` (the one a client library starts on
//! demand for a data directory) stops when the last hold ends, or when nobody attached within a
//! grace period after the start; others only count holds.
//!
//! A hold belongs to a connection, not to a client's promise to let go: a client process that
//! is killed (SIGKILL, an OOM kill, a Lambda frozen and discarded) has its socket closed by the
//! kernel, and that ends its hold like a `detach`. So a daemon started on demand never outlives
//! the last process that used it by more than its shutdown takes.
//!
//! Attaching and the last letting go are ordered by one mutex, which also covers the shutdown
//! trigger: once the last hold has ended and the stop has begun, no `attach` succeeds (a request
//! that is still read gets `shutting_down`; usually the session reads nothing more), and the
//! client starts or finds the next daemon. Whatever stops the daemon, a holding connection is
//! kept open until every file is closed (`session.rs`), so its end tells the client so.

use crate::shutdown::{Reason, Shutdown};
use std::sync::Mutex;
use std::time::Duration;

/// The holds of one daemon.
pub struct Holders {
    state: Mutex<Count>,
    stop_when_unused: Option<Duration>,
    shutdown: Shutdown,
}

#[derive(Default)]
struct Count {
    now: u64,
    ever: bool,
}

/// Why a hold could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("the daemon is stopping; start or find the next one")]
pub struct Stopping;

/// One connection's hold; dropping it lets go (as when the connection closes).
pub struct Hold<'a> {
    holders: &'a Holders,
}

/// What letting go did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LetGo {
    /// Holds left.
    pub holders: u64,
    /// Whether the daemon stops because this was the last hold.
    pub stopping: bool,
}

impl Holders {
    /// Holds for a daemon that stops when unused (`Some(grace)`) or only counts them (`None`).
    pub fn new(stop_when_unused: Option<Duration>, shutdown: Shutdown) -> Holders {
        Holders {
            state: Mutex::new(Count::default()),
            stop_when_unused,
            shutdown,
        }
    }

    /// Whether the daemon stops when the last hold ends.
    pub fn stop_when_unused(&self) -> bool {
        self.stop_when_unused.is_some()
    }

    /// Holds now.
    pub fn count(&self) -> u64 {
        self.lock().now
    }

    /// Takes a hold, unless the daemon is already stopping.
    pub fn attach(&self) -> Result<(Hold<'_>, u64), Stopping> {
        let mut count = self.lock();
        if self.shutdown.is_triggered() {
            return Err(Stopping);
        }
        count.now += 1;
        count.ever = true;
        Ok((Hold { holders: self }, count.now))
    }

    /// With `--stop-when-unused`: waits out the grace after the start and stops the daemon if
    /// nobody attached meanwhile (a client that started it and died before attaching). Returns
    /// at once otherwise, and when shutdown begins.
    pub async fn stop_if_never_held(&self) {
        let Some(grace) = self.stop_when_unused else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            _ = self.shutdown.triggered() => return,
        }
        let count = self.lock();
        if !count.ever {
            tracing::info!(
                "no client attached within {} of the start (--unused-grace)",
                humantime::format_duration(grace)
            );
            self.shutdown.trigger(Reason::Unused);
        }
    }

    fn let_go(&self) -> LetGo {
        let mut count = self.lock();
        count.now -= 1;
        let stopping = count.now == 0 && self.stop_when_unused.is_some();
        if stopping {
            self.shutdown.trigger(Reason::Unused);
        }
        LetGo {
            holders: count.now,
            stopping,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Count> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Hold<'_> {
    /// Lets go (`detach`).
    pub fn detach(self) -> LetGo {
        let holders = self.holders;
        std::mem::forget(self);
        holders.let_go()
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let LetGo { stopping, .. } = self.holders.let_go();
        if stopping {
            tracing::debug!("the last holding connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hold_stops_a_daemon_that_stops_when_unused() {
        let shutdown = Shutdown::new();
        let holders = Holders::new(Some(Duration::from_secs(30)), shutdown.clone());
        let (first, n) = holders.attach().expect("attach");
        assert_eq!(n, 1);
        let (second, n) = holders.attach().expect("attach");
        assert_eq!(n, 2);
        assert_eq!(
            first.detach(),
            LetGo {
                holders: 1,
                stopping: false
            }
        );
        assert!(!shutdown.is_triggered());
        // A connection that closes without `detach` lets go all the same.
        drop(second);
        assert!(shutdown.is_triggered());
        assert!(holders.attach().is_err(), "no hold once stopping");
    }

    #[test]
    fn holds_only_count_on_other_daemons() {
        let shutdown = Shutdown::new();
        let holders = Holders::new(None, shutdown.clone());
        let (hold, _) = holders.attach().expect("attach");
        assert!(!hold.detach().stopping);
        assert_eq!(holders.count(), 0);
        assert!(!shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_nobody_attaches_to_stops_after_the_grace() {
        let shutdown = Shutdown::new();
        let holders = Holders::new(Some(Duration::from_secs(30)), shutdown.clone());
        holders.stop_if_never_held().await;
        assert!(shutdown.is_triggered());

        let shutdown = Shutdown::new();
        let holders = Holders::new(Some(Duration::from_secs(30)), shutdown.clone());
        let (hold, _) = holders.attach().expect("attach");
        holders.stop_if_never_held().await;
        assert!(!shutdown.is_triggered(), "held: the grace does not apply");
        drop(hold);
        assert!(shutdown.is_triggered());
    }
}
