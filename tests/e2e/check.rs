//! `check`: online, offline on stopped and released directories and snapshots, and that it
//! notices when the stores disagree.

use crate::data::{create, doc, put};
use crate::support::{Daemon, EXIT_TIMEOUT, Scratch, ctxd};
use ctxd_proto::Release;
use rustix::process::Signal;
use serde_json::{Value, json};

async fn populated(scratch: &Scratch) -> Daemon {
    let daemon = Daemon::start(scratch);
    let client = daemon.client().await;
    create(&client, "c", 3).await;
    let documents = (0..40)
        .map(|i| {
            let vector = (i % 2 == 0).then(|| vec![i as f32, 1.0, 0.0]);
            doc(
                &format!("d{i}"),
                Some("words for the index"),
                vector,
                json!({"i": i}),
            )
        })
        .collect();
    put(&client, "c", documents).await;
    daemon
}

fn offline(dir: &std::path::Path) -> (Option<i32>, Value) {
    let out = ctxd(&["--json", "check", "--data", dir.to_str().expect("utf-8")]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report)
}

#[tokio::test]
async fn a_healthy_store_passes_online_and_offline() {
    let scratch = Scratch::new();
    let mut daemon = populated(&scratch).await;
    let client = daemon.client().await;
    let online = client.check().await.expect("check");
    assert!(online.passed, "{online:?}");
    assert!(online.details.text.ok && online.details.vectors.ok && online.details.consistency.ok);

    // Released: the files are closed; an offline check reads them directly.
    let lease = client
        .release(Release {
            holder: Some("check".into()),
            ttl_s: Some(60),
            drain_ms: None,
        })
        .await
        .expect("release");
    let (code, report) = offline(&daemon.data);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["passed"], true);
    let _ = lease;

    // A snapshot passes too.
    let socket = daemon.socket.to_str().expect("utf-8").to_owned();
    ctxd(&["--socket", &socket, "resume", "--all"]);
    let dest = scratch.path("snap");
    client
        .snapshot(dest.display().to_string())
        .await
        .expect("snapshot");
    assert_eq!(offline(&dest).0, Some(0));

    // Stopped: likewise.
    daemon.signal(Signal::TERM);
    daemon.wait_exit(EXIT_TIMEOUT);
    assert_eq!(offline(&daemon.data).0, Some(0));
}

#[tokio::test]
async fn a_document_without_its_vector_is_reported() {
    let scratch = Scratch::new();
    let mut daemon = populated(&scratch).await;
    daemon.signal(Signal::TERM);
    daemon.wait_exit(EXIT_TIMEOUT);
    // Tamper behind ctxd's back: a document claims a vector LMDB does not have.
    let sqlite = rusqlite::Connection::open(daemon.data.join("text.sqlite3")).expect("open");
    sqlite
        .execute("UPDATE documents SET has_vector = 1 WHERE id = 'd1'", [])
        .expect("tamper");
    drop(sqlite);
    let (code, report) = offline(&daemon.data);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["details"]["consistency"]["ok"], false);
    let problems = report["details"]["consistency"]["problems"].to_string();
    assert!(
        problems.contains("1 documents lack their vector"),
        "{problems}"
    );
    // Not a data directory at all.
    let (code, _) = offline(&scratch.path("nowhere"));
    assert_eq!(code, Some(1));
}
