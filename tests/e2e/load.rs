//! Many clients at once: no errors, and every connection's handle is given back.

use crate::support::{Daemon, Scratch, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_times_a_thousand_pings_then_fds_return_to_baseline() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    // Measured with one connection open and answered, after `READY=1`: from then on the daemon
    // holds a constant set of handles besides its connections (the notifier keeps one socket
    // for its life rather than opening one per message).
    let mut probe = daemon.raw();
    assert_eq!(probe.call(r#"{"op":"ping"}"#)["ok"], true);
    let baseline = daemon.fd_count();

    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(daemon.client().await);
    }
    // Every client has completed its handshake, so the daemon holds all 32 connections.
    assert!(
        daemon.fd_count() >= baseline + 32,
        "each client holds a connection: {} fds, baseline {baseline}",
        daemon.fd_count()
    );
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                for _ in 0..1000 {
                    client.ping().await?;
                }
                Ok::<_, ctxd_client::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("client task")
            .expect("every ping succeeds");
    }
    // The clients are gone; the daemon closes their connections as it reads end of stream.
    let settled = eventually(Duration::from_secs(10), || daemon.fd_count() == baseline);
    assert!(
        settled,
        "fd count {} did not return to the baseline {baseline}",
        daemon.fd_count()
    );
    let status = probe.call(r#"{"op":"status"}"#);
    assert_eq!(status["connections"], 1, "only the probe is connected");
}
