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

/// Accepts connections until shutdown is triggered, then waits up to `drain_timeout` for every
/// session's current request to finish (sessions read no new request once shutdown starts).
/// Storage is still open when this returns; closing it is the caller's next step.
pub async fn serve(listener: &Listener, shared: Arc<Shared>, drain_timeout: Duration) {
    let mut sessions = JoinSet::new();
    let reason = loop {
        tokio::select! {
            reason = shared.shutdown.triggered() => break reason,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    sessions.spawn(session::run(stream, Arc::clone(&shared)));
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
