//! Vector search on the in-memory quantized copy (`storage::vector_set`), on real embeddings.
//!
//! Run it with `cargo bench -p ctxd --bench vector_scan` (a release build; no harness, it prints
//! lines). It loads the 100,000 × 384 MiniLM chunk vectors of `../shared/data/big` (f16,
//! widened to f32) and the SciFact query vectors, builds a cosine `VectorSet`, and reports the
//! build time, the memory, scan latency (p50/p99 over 300 queries, one thread) for n = 10 and
//! n = 50, and recall@10 against exact brute force (`exact_score` over every vector) of
//! (a) the raw scan top 10 and (b) the scan top 50 re-scored exactly, as the storage layer does.
//! The same again for the 5,183 SciFact document vectors, then, at 100k, the other distances,
//! filtered scans and larger n. Without the data files it prints a skip message and exits 0.
//!
//! The module is compiled into this benchmark from its source file: the daemon's `storage`
//! module is private to the crate.

#[path = "../src/storage/vector_set.rs"]
#[allow(dead_code, reason = "the benchmark uses only part of the module")]
mod vector_set;

use ctxd_proto::Distance;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vector_set::{VectorSet, exact_score};

/// Dimension of the all-MiniLM-L6-v2 embeddings of the shared data (its README).
const DIM: usize = 384;
/// Measured queries (of the 809 SciFact queries); exact brute force at 100k costs a few ms each.
const QUERIES: usize = 300;
/// Candidates the storage layer re-scores exactly (re-scoring the top 50 reached 1.0 in this bench).
const RESCORE: usize = 50;
/// The k of recall@k.
const K: usize = 10;

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let big = data.join("big/chunk_vectors.f16");
    let docs = data.join("scifact/doc_vectors.f32");
    let queries = data.join("scifact/query_vectors.f32");
    let (Ok(big), Ok(docs), Ok(queries)) = (
        std::fs::read(&big),
        std::fs::read(&docs),
        std::fs::read(&queries),
    ) else {
        println!(
            "vector_scan: skipped, the shared data is missing under {}",
            data.display()
        );
        return;
    };
    let started = Instant::now();
    let big: Vec<f32> = big
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let docs = f32s(&docs);
    let queries = f32s(&queries);
    let queries: Vec<&[f32]> = queries.chunks_exact(DIM).take(QUERIES).collect();
    println!(
        "vector_scan: {} queries (SciFact), dimension {DIM}, one thread, x86-64 baseline unless \
         RUSTFLAGS say otherwise",
        queries.len()
    );

    let big_rows: Vec<&[f32]> = big.chunks_exact(DIM).collect();
    let doc_rows: Vec<&[f32]> = docs.chunks_exact(DIM).collect();
    let big_set = report(
        "big/chunk_vectors.f16",
        Distance::Cosine,
        &big_rows,
        &queries,
        true,
    );
    report(
        "scifact/doc_vectors.f32",
        Distance::Cosine,
        &doc_rows,
        &queries,
        true,
    );

    println!("\n100k, more n and filters (cosine, p50 / p99 of the scan):");
    for n in [10, 100, 500, 1000] {
        let (p50, p99) = latencies(&queries, |q| big_set.scan(q, n, None).len());
        println!(
            "  n={n:<5} unfiltered         p50 {} p99 {}",
            ms(p50),
            ms(p99)
        );
    }
    for (label, modulus) in [("allow 50%", 2), ("allow 10%", 10), ("allow 1%", 100)] {
        let allow = move |key: u32| key.is_multiple_of(modulus);
        let (p50, p99) = latencies(&queries, |q| big_set.scan(q, RESCORE, Some(&allow)).len());
        println!(
            "  n={RESCORE:<5} {label:<18} p50 {} p99 {}",
            ms(p50),
            ms(p99)
        );
    }
    drop(big_set);

    println!("\n100k, other distances (same vectors and queries):");
    for distance in [Distance::Euclidean, Distance::Dot, Distance::Manhattan] {
        report(
            "big/chunk_vectors.f16",
            distance,
            &big_rows,
            &queries,
            false,
        );
    }
    println!(
        "\nvector_scan: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Builds a set of `rows` under `distance` and prints its figures; returns the set.
fn report(
    name: &str,
    distance: Distance,
    rows: &[&[f32]],
    queries: &[&[f32]],
    detailed: bool,
) -> VectorSet {
    println!("\n{name}: {} × {DIM}, {distance:?}", rows.len());
    let t = Instant::now();
    let mut set = VectorSet::new(DIM, distance);
    set.reserve(rows.len());
    for (key, row) in rows.iter().enumerate() {
        set.upsert(key as u32, row);
    }
    let build = t.elapsed();
    println!(
        "  build            {} ({:.2} µs/vector), memory {:.1} MiB ({:.0} B/vector)",
        ms(build),
        build.as_secs_f64() * 1e6 / rows.len() as f64,
        set.memory_bytes() as f64 / (1 << 20) as f64,
        set.memory_bytes() as f64 / rows.len() as f64
    );

    // The reference: exact scores over every vector.
    let t = Instant::now();
    let truth: Vec<Vec<u32>> = queries
        .iter()
        .map(|q| {
            let mut scored: Vec<(u32, f64)> = rows
                .iter()
                .enumerate()
                .map(|(key, v)| (key as u32, exact_score(distance, q, v)))
                .collect();
            top(&mut scored, K)
        })
        .collect();
    let exact = t.elapsed() / queries.len() as u32;
    println!(
        "  exact f32        {} per query (brute force with exact_score)",
        ms(exact)
    );

    let ns: &[usize] = if detailed { &[K, RESCORE] } else { &[RESCORE] };
    for &n in ns {
        let (p50, p99) = latencies(queries, |q| set.scan(q, n, None).len());
        println!("  scan n={n:<3}       p50 {} p99 {}", ms(p50), ms(p99));
    }
    if detailed {
        let raw: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| set.scan(q, K, None).iter().map(|h| h.0).collect())
            .collect();
        println!(
            "  recall@{K} raw scan top {K}:                 {:.4}",
            recall(&truth, &raw)
        );
    }
    let mut rescore_time = Duration::ZERO;
    let rescored: Vec<Vec<u32>> = queries
        .iter()
        .map(|q| {
            let hits = set.scan(q, RESCORE, None);
            let t = Instant::now();
            let mut scored: Vec<(u32, f64)> = hits
                .iter()
                .map(|&(key, _)| (key, exact_score(distance, q, rows[key as usize])))
                .collect();
            let best = top(&mut scored, K);
            rescore_time += t.elapsed();
            best
        })
        .collect();
    println!(
        "  recall@{K} scan top {RESCORE} re-scored → top {K}: {:.4} (re-scoring {:.1} µs/query)",
        recall(&truth, &rescored),
        rescore_time.as_secs_f64() * 1e6 / queries.len() as f64
    );
    set
}

/// The keys of the `k` best of `scored`, best first (ties by the lower key, as the scan does).
fn top(scored: &mut [(u32, f64)], k: usize) -> Vec<u32> {
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.iter().take(k).map(|s| s.0).collect()
}

/// The mean fraction of each truth list found in the matching result list.
fn recall(truth: &[Vec<u32>], found: &[Vec<u32>]) -> f64 {
    let hits: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| t.iter().filter(|key| f.contains(key)).count())
        .sum();
    hits as f64 / truth.iter().map(Vec::len).sum::<usize>() as f64
}

/// p50 and p99 of `run` over every query, after one unmeasured pass.
fn latencies(queries: &[&[f32]], mut run: impl FnMut(&[f32]) -> usize) -> (Duration, Duration) {
    for q in queries {
        black_box(run(q));
    }
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            black_box(run(q));
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    (
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
    )
}

fn ms(d: Duration) -> String {
    format!("{:>8.3} ms", d.as_secs_f64() * 1e3)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
