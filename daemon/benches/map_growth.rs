//! What growing the LMDB maps costs, measured against real `ctxd serve` processes (release
//! build): `cargo bench -p ctxd --bench map_growth`.
//!
//! Four fresh daemons in one run (fixed, growing, growing, fixed, so the order favours
//! neither), each ingesting the same 100,000 384-dimensional vectors in requests of 1,000
//! while a second connection searches without pause:
//!
//! - maps at the platform's initial size (1 TiB on Linux: they never grow here);
//! - maps starting at 64 KiB (`CTXD_INITIAL_MAP_SIZE`): the vector map doubles about twelve
//!   times to hold the ~200 MiB the vectors take, each time pausing reads
//!   (`storage::map_size`).
//!
//! Printed: ingest time and the ratio of the two, the search latency during ingest (p50, p99,
//! max), and each growth's pause from the daemon's log (`paused_us`: how long new reads were
//! held back, the wait for reads in progress included).

#[cfg(unix)]
mod common;

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the map growth benchmark needs Unix sockets; skipped");
}

#[cfg(unix)]
mod bench {
    use crate::common::{Daemon, nanos, percentile};
    use ctxd_client::Client;
    use ctxd_client::proto::{CreateCollection, Document, Search, SearchMode, Upsert};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    use tokio::runtime::Runtime;

    const DIM: usize = 384;
    const DOCUMENTS: usize = 100_000;
    const BATCH: usize = 1_000;

    /// A deterministic vector for document `n`.
    fn vector(n: usize) -> Vec<f32> {
        (0..DIM)
            .map(|d| ((n * 31 + d * 7) as f32 * 0.013).sin())
            .collect()
    }

    struct Run {
        ingest_s: f64,
        /// Search latencies during ingest, in nanoseconds, sorted.
        searches: Vec<u64>,
        /// `paused_us` of each growth of the vector map.
        pauses_us: Vec<u64>,
        map_bytes: u64,
    }

    pub fn main() {
        println!(
            "map growth: ingest {DOCUMENTS} × {DIM}-d in requests of {BATCH} while searching \
             (ctxd release build, this machine)"
        );
        let runtime = Runtime::new().expect("tokio");
        let small = [("CTXD_INITIAL_MAP_SIZE", (64u64 << 10).to_string())];
        // Fixed, growing, growing, fixed: whatever the order favours (a warmer page cache, a
        // busier machine) falls on both alike.
        let fixed_1 = runtime.block_on(run(&[]));
        let growing_1 = runtime.block_on(run(&small));
        let growing_2 = runtime.block_on(run(&small));
        let fixed_2 = runtime.block_on(run(&[]));
        println!(
            "  ingest s, in run order: fixed {:.2}, growing {:.2}, growing {:.2}, fixed {:.2}",
            fixed_1.ingest_s, growing_1.ingest_s, growing_2.ingest_s, fixed_2.ingest_s
        );
        let (fixed, growing) = (merge(fixed_1, fixed_2), merge(growing_1, growing_2));
        println!();
        println!(
            "  {:<34} {:>9} {:>10} {:>10} {:>10} {:>9} {:>8}",
            "maps", "ingest s", "search p50", "p99", "max", "searches", "growths"
        );
        for (what, run) in [
            ("at the initial size (1 TiB)", &fixed),
            ("from 64 KiB, growing", &growing),
        ] {
            let ms = |p: f64| percentile(&run.searches, p) as f64 / 1e6;
            let searches = run.searches.len();
            println!(
                "  {what:<34} {:>9.2} {:>8.2}ms {:>8.2}ms {:>8.2}ms {searches:>9} {:>8}",
                run.ingest_s,
                ms(0.5),
                ms(0.99),
                run.searches.last().copied().unwrap_or(0) as f64 / 1e6,
                run.pauses_us.len()
            );
        }
        println!(
            "  growing / fixed ingest time (means of two runs): {:.3}×; vector map at the end {} MiB",
            growing.ingest_s / fixed.ingest_s,
            growing.map_bytes >> 20
        );
        let mut pauses = growing.pauses_us.clone();
        pauses.sort_unstable();
        println!(
            "  pauses (reads held back) per growth, both runs: p50 {} µs, max {} µs, all: {:?}",
            percentile(&pauses, 0.5),
            pauses.last().copied().unwrap_or(0),
            growing.pauses_us
        );
    }

    /// Two runs of one configuration as one: mean ingest time, all searches, all pauses.
    fn merge(a: Run, b: Run) -> Run {
        let mut searches = [a.searches, b.searches].concat();
        searches.sort_unstable();
        Run {
            ingest_s: (a.ingest_s + b.ingest_s) / 2.0,
            searches,
            pauses_us: [a.pauses_us, b.pauses_us].concat(),
            map_bytes: a.map_bytes.max(b.map_bytes),
        }
    }

    async fn run(env: &[(&str, String)]) -> Run {
        let daemon = Daemon::start_with_env(&[], env);
        let client = Client::connect_to(daemon.socket()).await.expect("connect");
        client
            .create_collection(CreateCollection {
                name: "g".into(),
                dimension: Some(DIM as u32),
                embedder: None,
                distance: None,
                tokenizer: None,
                if_not_exists: false,
            })
            .await
            .expect("create");
        let done = Arc::new(AtomicBool::new(false));
        let searcher = {
            let socket = daemon.socket().to_owned();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let client = Client::connect_to(&socket).await.expect("connect");
                let mut latencies = Vec::new();
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    client
                        .search(Search {
                            collection: "g".into(),
                            text: None,
                            vector: Some(vector(n).into()),
                            k: Some(10),
                            filter: None,
                            mode: Some(SearchMode::Vector),
                            include: None,
                            rrf_k: None,
                            weights: None,
                            exact: false,
                            effort: None,
                            vector_encoding: None,
                            text_filter: None,
                        })
                        .await
                        .expect("search");
                    latencies.push(nanos(started.elapsed()));
                    n += 7919;
                }
                latencies
            })
        };
        let started = Instant::now();
        for batch in 0..DOCUMENTS / BATCH {
            let documents = (batch * BATCH..(batch + 1) * BATCH)
                .map(|n| Document {
                    id: format!("d{n}"),
                    text: None,
                    vector: Some(vector(n).into()),
                    metadata: None,
                })
                .collect();
            client
                .upsert(Upsert {
                    collection: "g".into(),
                    documents,
                })
                .await
                .expect("upsert");
        }
        let ingest_s = started.elapsed().as_secs_f64();
        done.store(true, Ordering::SeqCst);
        let mut searches = searcher.await.expect("searcher");
        searches.sort_unstable();
        let log = daemon.stderr_so_far();
        let field = |line: &str, name: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
        };
        let grown: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("memory map grown") && l.contains("the vector store"))
            .collect();
        let pauses_us = grown
            .iter()
            .filter_map(|l| field(l, "paused_us="))
            .collect();
        let map_bytes = grown.last().and_then(|l| field(l, "to=")).unwrap_or(0);
        drop(client);
        daemon.stop();
        Run {
            ingest_s,
            searches,
            pauses_us,
            map_bytes,
        }
    }
}
