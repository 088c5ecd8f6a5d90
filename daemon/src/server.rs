//! The accept loop and the drain: sessions run until shutdown, then in-flight requests get a
//! bounded time to finish.

use crate::listener::Listener;
use crate::notify;
use crate::session;
use crate::shared::Shared;
use ctxd_proto::State;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// After a failed `accept` (for example "too many open files") the loop pauses this long, so a
/// persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Refusals being written at once; the next waits for one of them to end. Each holds a
/// descriptor until its line is written (at most `session::REFUSAL_TIMEOUT`), counted in the
/// descriptors kept for storage (`fd_limit::reserved`); 64 keeps the wait rare in a burst.
pub const MAX_REFUSING: usize = 64;

/// Accepts connections until shutdown is triggered, then waits up to `drain_timeout` for every
/// session's current request to finish (sessions read no new request once shutdown starts).
/// Storage is still open when this returns; closing it is the caller's next step.
///
/// At most `--max-connections` sessions run at once: a connection beyond them is answered
/// `busy` (saying so) and closed.
pub async fn serve(listener: &Listener, shared: Arc<Shared>, drain_timeout: Duration) {
    let mut sessions = JoinSet::new();
    let mut refusing = JoinSet::new();
    let max = shared.limits.max_connections;
    let reason = loop {
        tokio::select! {
            reason = shared.shutdown.triggered() => break reason,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    while sessions.try_join_next().is_some() {}
                    while refusing.try_join_next().is_some() {}
                    if sessions.len() < max {
                        sessions.spawn(session::run(stream, Arc::clone(&shared)));
                    } else {
                        // Every refused client reads why: with refusals already being written,
                        // the next waits for one to end (a second at most) and the clients
                        // behind it wait in the listen backlog.
                        if refusing.len() >= MAX_REFUSING {
                            refusing.join_next().await;
                        }
                        tracing::debug!("refusing a connection: {max} are open");
                        refusing.spawn(session::refuse(stream, max));
                    }
                }
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
        while sessions.try_join_next().is_some() {}
    };
    tracing::info!("stopping ({reason}); finishing in-flight requests");
    shared.set_state(State::Stopping);
    notify::stopping();
    let drained = tokio::time::timeout(drain_timeout, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still busy after {drain_timeout:?}; stopping without them",
            sessions.len()
        );
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
}
