//! Crash safety: `kill -9` at random moments under concurrent writers loses nothing that was
//! acknowledged, and the two stores agree after every restart.

use crate::data::{create, doc};
use crate::support::{Daemon, EXIT_TIMEOUT, Rng, Scratch, Start};
use ctxd_proto::{Get, Search, SearchMode, Upsert};
use rustix::process::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const CYCLES: u64 = 30;
const WRITERS: u64 = 4;
const DIMENSION: usize = 8;

fn vector_for(seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..DIMENSION).map(|_| rng.unit()).collect()
}

/// One acknowledged document: its unique word and vector.
#[derive(Clone)]
struct Acked {
    word: String,
    vector: Vec<f32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_concurrent_writers_loses_no_acknowledged_write() {
    let scratch = Scratch::new();
    let mut rng = Rng(0xc4a5_4e57_0000_0001);
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    let mut replays = 0;

    for cycle in 0..CYCLES {
        let daemon = Start::new(&scratch).spawn();
        if daemon
            .stderr_so_far()
            .contains("replaying the redo journal")
        {
            replays += 1;
        }
        let client = Arc::new(daemon.client().await);
        if cycle == 0 {
            create(&client, "crash", DIMENSION as u32).await;
        }
        verify(&client, &acked, cycle).await;

        // Kill after a random number of acknowledgements, while writes are in flight.
        let kill_after = 3 + (rng.next() % 40) as usize;
        let (acks, mut acked_so_far) = tokio::sync::watch::channel(0usize);
        let acks = Arc::new(acks);
        let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let socket = daemon.socket.clone();
            let acks = Arc::clone(&acks);
            let mut killed = killed_rx.clone();
            writers.push(tokio::spawn(async move {
                let Ok(client) = ctxd_client::Client::connect_to(&socket).await else {
                    return Vec::new();
                };
                let mut mine = Vec::new();
                for n in 0.. {
                    if *killed.borrow_and_update() {
                        break;
                    }
                    let id = format!("c{cycle}w{writer}n{n}");
                    let word = format!("uniq{cycle}x{writer}x{n}");
                    let seed = cycle * 1_000_000 + writer * 100_000 + n;
                    let vector = vector_for(seed * 10);
                    // Batches of 1–3 documents, so multi-document atomicity is exercised too.
                    let extra = (seed % 3) as usize;
                    let mut documents = vec![doc(
                        &id,
                        Some(&format!("{word} text")),
                        Some(vector.clone()),
                        json!({"n": n}),
                    )];
                    let mut batch = vec![(
                        id.clone(),
                        Acked {
                            word: word.clone(),
                            vector: vector.clone(),
                        },
                    )];
                    for e in 0..extra {
                        let id = format!("{id}e{e}");
                        let word = format!("{word}y{e}");
                        let vector = vector_for(seed * 10 + 1 + e as u64);
                        documents.push(doc(&id, Some(&word), Some(vector.clone()), json!(null)));
                        batch.push((id, Acked { word, vector }));
                    }
                    let upsert = client.upsert(Upsert {
                        collection: "crash".into(),
                        documents,
                    });
                    match upsert.await {
                        Ok(_) => {
                            mine.extend(batch);
                            acks.send_modify(|n| *n += 1);
                        }
                        Err(_) => break,
                    }
                }
                mine
            }));
        }
        // Kill once enough writes were acknowledged, while the writers are mid-request.
        acked_so_far
            .wait_for(|n| *n >= kill_after)
            .await
            .expect("writers report acknowledgements");
        daemon.signal(Signal::KILL);
        let _ = killed_tx.send(true);
        for writer in writers {
            for (id, doc) in writer.await.expect("writer task") {
                acked.insert(id, doc);
            }
        }
        let mut daemon = daemon;
        let (status, _) = daemon.wait_exit(EXIT_TIMEOUT);
        assert_eq!(status.code(), None, "cycle {cycle}: killed by SIGKILL");
        drop(client);
    }

    // Every acknowledged write, after the last crash, by every route.
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    eprintln!(
        "{} acknowledged documents over {CYCLES} crashes; {replays} restarts replayed the journal",
        acked.len()
    );
    verify_fully(&client, &acked).await;
    let mut daemon = daemon;
    daemon.signal(Signal::TERM);
    daemon.wait_exit(EXIT_TIMEOUT);
    assert_stores_agree(&scratch.data());
}

/// Every acknowledged id is there (cheap check, each cycle).
async fn verify(client: &ctxd_client::Client, acked: &BTreeMap<String, Acked>, cycle: u64) {
    let ids = acked.keys().cloned().collect();
    crate::writers::assert_holds(client, "crash", &ids, &format!("cycle {cycle}")).await;
}

/// Every acknowledged document by get (with its vector), by lexical search of its unique word
/// and by vector search of its vector.
async fn verify_fully(client: &ctxd_client::Client, acked: &BTreeMap<String, Acked>) {
    assert!(
        acked.len() >= CYCLES as usize * 3,
        "the test wrote too little: {}",
        acked.len()
    );
    for (id, doc) in acked {
        let got = client
            .get(Get {
                collection: "crash".into(),
                ids: Some(vec![id.clone()]),
                filter: None,
                limit: None,
                offset: None,
                include: Some(vec![ctxd_proto::Field::Vector]),
                vector_encoding: None,
                text_filter: None,
            })
            .await
            .expect("get");
        assert_eq!(got.documents.len(), 1, "{id} lost");
        assert_eq!(
            got.documents[0].vector.as_ref(),
            Some(&doc.vector.clone().into()),
            "{id}: vector differs"
        );
        let by_text = client
            .search(search_for(Some(doc.word.clone()), None))
            .await
            .expect("lexical");
        assert_eq!(
            by_text.hits.first().map(|h| h.id.as_str()),
            Some(id.as_str()),
            "{id} by text"
        );
        let by_vector = client
            .search(search_for(None, Some(doc.vector.clone())))
            .await
            .expect("vector");
        assert_eq!(
            by_vector.hits.first().map(|h| h.id.as_str()),
            Some(id.as_str()),
            "{id} by vector"
        );
    }
}

fn search_for(text: Option<String>, vector: Option<Vec<f32>>) -> Search {
    Search {
        collection: "crash".into(),
        mode: Some(if text.is_some() {
            SearchMode::Lexical
        } else {
            SearchMode::Vector
        }),
        text,
        vector: vector.map(Into::into),
        k: Some(1),
        filter: None,
        include: Some(vec![]),
        rrf_k: None,
        weights: None,
        exact: false,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    }
}

/// Reads both stores' files directly (the daemon is stopped): the same documents have vectors
/// in SQLite's view and in LMDB, and both record the same generation.
fn assert_stores_agree(data: &Path) {
    let sqlite = rusqlite::Connection::open_with_flags(
        data.join("text.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open sqlite");
    let mut keys: Vec<u32> = sqlite
        .prepare("SELECT key FROM documents WHERE has_vector = 1 ORDER BY key")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("keys");
    let sqlite_generation: i64 = sqlite
        .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
            r.get(0)
        })
        .expect("generation");
    let pending: i64 = sqlite
        .query_row(
            "SELECT count(*) FROM redo WHERE generation > ?1",
            [sqlite_generation],
            |r| r.get(0),
        )
        .expect("redo");
    assert_eq!(pending, 0);

    let env = {
        let mut options = heed::EnvOpenOptions::new();
        options.max_dbs(16).map_size(1 << 40);
        // SAFETY: the daemon is stopped; this test is the environment's only user.
        #[allow(unsafe_code)]
        unsafe { options.open(data.join("vectors")) }.expect("open lmdb")
    };
    type Vectors = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;
    type Meta =
        heed::Database<'static, heed::types::Str, heed::types::U64<heed::byteorder::BigEndian>>;
    let (vectors, meta): (Vectors, Meta) = env
        .open_databases_and_commit(env.read_txn().expect("rtxn"), |opener, rtxn| {
            let vectors = opener
                .open_database(rtxn, Some("vectors"))?
                .expect("vectors db");
            let meta = opener.open_database(rtxn, Some("meta"))?.expect("meta db");
            Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit((vectors, meta)))
        })
        .expect("open databases")
        .unwrap_commit();
    let rtxn = env.read_txn().expect("rtxn");
    let mut lmdb_keys: Vec<u32> = vectors
        .iter(&rtxn)
        .expect("iter")
        .map(|entry| {
            let (key, _) = entry.expect("entry");
            u32::from_be_bytes([key[2], key[3], key[4], key[5]])
        })
        .collect();
    keys.sort_unstable();
    lmdb_keys.sort_unstable();
    assert_eq!(
        keys, lmdb_keys,
        "documents with vectors differ between SQLite and LMDB"
    );
    assert_eq!(
        meta.get(&rtxn, "generation")
            .expect("get")
            .map(|g| g as i64),
        Some(sqlite_generation),
        "generations differ"
    );
}
