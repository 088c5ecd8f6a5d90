//! Concurrent write load for tests that copy, release or snapshot while writes go on, and the
//! check that a copy holds every write acknowledged before it was taken.

use crate::data::doc;
use ctxd_client::Client;
use ctxd_proto::{Field, Get, Upsert};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Writers upserting one document per request (text and a vector) until stopped. They wait
/// through releases (`wait_ms`) instead of failing.
pub struct WriteLoad {
    acked: Arc<Mutex<BTreeSet<String>>>,
    stop: watch::Sender<bool>,
    writers: Vec<JoinHandle<()>>,
}

impl WriteLoad {
    /// Starts `writers` writers on `collection` (of `dimension`) through `socket`.
    pub fn start(socket: &Path, collection: &str, dimension: usize, writers: u32) -> WriteLoad {
        let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let writers = (0..writers)
            .map(|w| {
                let socket = socket.to_owned();
                let collection = collection.to_owned();
                let acked = Arc::clone(&acked);
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let client = Client::connect_to(&socket).await.expect("connect");
                    for n in 0u32.. {
                        if *stopped.borrow() {
                            break;
                        }
                        let id = format!("w{w}n{n}");
                        let mut vector = vec![0.5; dimension];
                        vector[0] = w as f32;
                        vector[dimension.min(2) - 1] = n as f32 + 1.0;
                        let upsert = Upsert {
                            collection: collection.clone(),
                            documents: vec![doc(&id, Some("load text"), Some(vector), json!(null))],
                        };
                        client
                            .call_waiting(upsert, Some(Duration::from_secs(60)))
                            .await
                            .expect("a write under load");
                        acked.lock().expect("lock").insert(id);
                    }
                })
            })
            .collect();
        WriteLoad {
            acked,
            stop,
            writers,
        }
    }

    /// The ids acknowledged so far.
    pub fn acked(&self) -> BTreeSet<String> {
        self.acked.lock().expect("lock").clone()
    }

    /// Stops the writers and returns every acknowledged id.
    pub async fn stop(self) -> BTreeSet<String> {
        let _ = self.stop.send(true);
        for writer in self.writers {
            writer.await.expect("writer");
        }
        self.acked.lock().expect("lock").clone()
    }
}

/// Asserts that `collection` holds every id of `ids`, each with its vector.
pub async fn assert_holds(client: &Client, collection: &str, ids: &BTreeSet<String>, what: &str) {
    let ids: Vec<String> = ids.iter().cloned().collect();
    for chunk in ids.chunks(1000) {
        let got = client
            .get(Get {
                collection: collection.to_owned(),
                ids: Some(chunk.to_vec()),
                filter: None,
                limit: Some(10_000),
                offset: None,
                include: Some(vec![Field::Vector]),
                vector_encoding: None,
                text_filter: None,
            })
            .await
            .expect("get");
        assert_eq!(
            got.documents.len(),
            chunk.len(),
            "{what}: acknowledged writes lost"
        );
        assert!(
            got.documents.iter().all(|d| d.vector.is_some()),
            "{what}: documents without their vectors"
        );
    }
}
