//! Vector search on the in-memory quantized copy (`storage::vector_set`), on real embeddings.
//!
//! Run it with `cargo bench -p ctxd --bench vector_scan` (a release build; no harness, it prints
//! lines; scans run on one thread unless a line says otherwise). It loads the 100,000 × 384 MiniLM chunk vectors of `../shared/data/big` (f16,
//! widened to f32) and the SciFact query vectors, builds a cosine `VectorSet`, and reports the
//! build time, the memory and the bytes a scan reads, then for each `effort` the candidates the
//! storage layer re-scores for k = 10 (`effort` × 10), the scan's latency (p50/p99 over
//! 300 queries), the bytes it reads per second against this machine's read
//! bandwidth (measured first), and recall@10 against exact brute force (`exact_score` over
//! every vector) after exact re-scoring, as the storage layer does. Then the `u8` tier on the
//! same cosine set, the 5,183 SciFact document vectors, filtered scans, and the other
//! distances. Without the data files it prints a skip message and exits 0.
//!
//! `cargo bench -p ctxd --bench vector_scan -- 1m` runs only the million-vector part instead
//! (the 100k chunks with nine noisy copies each, as the scifact bench's `1m`; about 3 GB of
//! memory and ten minutes): the sketch with two threads and with one, and the `u8` tier.
//!
//! The module is compiled into this benchmark from its source file: the daemon's `storage`
//! module is private to the crate.

#[path = "../src/storage/vector_set/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "the benchmark uses only part of the module"
)]
mod vector_set;

#[path = "common/noise.rs"]
mod noise;

use ctxd_proto::Distance;
use noise::noisy_copy;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vector_set::{VectorSet, exact_score};

/// Dimension of the all-MiniLM-L6-v2 embeddings of the shared data (its README).
const DIM: usize = 384;
/// Measured queries (of the 809 SciFact queries); exact brute force at 100k costs a few ms each.
const QUERIES: usize = 300;
/// The storage layer's default `effort` (`storage::search`).
const DEFAULT_EFFORT: usize = 5;
/// The efforts of the curve printed for the 100k set.
const EFFORTS: &[usize] = &[1, 2, 3, 5, 10, 20];
/// Copies per chunk, noise and measured queries of the `1m` part (as the scifact bench's).
const COPIES_1M: usize = 10;
const NOISE_1M: f64 = 0.5;
const QUERIES_1M: usize = 100;
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

    println!(
        "  read bandwidth of this machine, one thread: {:.1} GB/s over 256 MiB (memory), \
         {:.1} GB/s over 4 MiB (cache)",
        read_bandwidth(256 << 20),
        read_bandwidth(4 << 20)
    );
    println!(
        "  (* the default effort; `re-scored` is what the storage layer re-scores for k = {K})"
    );

    let big_rows: Vec<&[f32]> = big.chunks_exact(DIM).collect();
    if std::env::args().any(|a| a == "1m") {
        million(&big_rows, &queries);
        return;
    }
    let doc_rows: Vec<&[f32]> = docs.chunks_exact(DIM).collect();
    let big_set = report(
        "big/chunk_vectors.f16",
        Distance::Cosine,
        false,
        &big_rows,
        &queries,
        EFFORTS,
    );
    report(
        "big/chunk_vectors.f16",
        Distance::Cosine,
        true,
        &big_rows,
        &queries,
        &[1, DEFAULT_EFFORT],
    );
    report(
        "scifact/doc_vectors.f32",
        Distance::Cosine,
        false,
        &doc_rows,
        &queries,
        &[DEFAULT_EFFORT],
    );

    let n = K * DEFAULT_EFFORT;
    println!("\n100k, filters (cosine, default tier, n = {n}, p50 / p99 of the scan):");
    for (label, modulus) in [
        ("unfiltered", 1),
        ("allow 50%", 2),
        ("allow 10%", 10),
        ("allow 1%", 100),
    ] {
        let allow = move |key: u32| key.is_multiple_of(modulus);
        let (p50, p99) = latencies(&queries, |q| big_set.scan(q, n, Some(&allow)).len());
        println!("  {label:<12} p50 {} p99 {}", ms(p50), ms(p99));
    }
    drop(big_set);

    println!("\n100k, other distances (same vectors and queries):");
    for distance in [Distance::Euclidean, Distance::Dot, Distance::Manhattan] {
        report(
            "big/chunk_vectors.f16",
            distance,
            false,
            &big_rows,
            &queries,
            &[DEFAULT_EFFORT],
        );
    }
    println!(
        "\nvector_scan: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Builds a set of `rows` under `distance` (the `u8` tier whatever the distance if `codes`) and
/// prints its figures; returns the set.
fn report(
    name: &str,
    distance: Distance,
    codes: bool,
    rows: &[&[f32]],
    queries: &[&[f32]],
    efforts: &[usize],
) -> VectorSet {
    let tier = if codes { "u8 codes" } else { "default tier" };
    println!("\n{name}: {} × {DIM}, {distance:?}, {tier}", rows.len());
    let t = Instant::now();
    let mut set = if codes {
        VectorSet::with_codes(DIM, distance)
    } else {
        VectorSet::new(DIM, distance)
    };
    set.reserve(rows.len());
    for (key, row) in rows.iter().enumerate() {
        set.upsert(key as u32, row);
    }
    let build = t.elapsed();
    let bytes = set.scan_bytes_per_vector() * rows.len();
    println!(
        "  build {} ({:.2} µs/vector), memory {:.1} MiB ({:.0} B/vector), a scan reads {:.1} MiB \
         ({} B/vector)",
        ms(build),
        build.as_secs_f64() * 1e6 / rows.len() as f64,
        set.memory_bytes() as f64 / (1 << 20) as f64,
        set.memory_bytes() as f64 / rows.len() as f64,
        bytes as f64 / (1 << 20) as f64,
        set.scan_bytes_per_vector()
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
    println!("  exact f32 brute force {} per query", ms(exact));
    println!("  effort  re-scored   scan p50     scan p99   GB/s (p50)  recall@{K}  re-score µs");
    for &effort in efforts {
        let n = (K * effort).min(rows.len());
        let (p50, p99) = latencies(queries, |q| set.scan(q, n, None).len());
        let mut rescore_time = Duration::ZERO;
        let rescored: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| {
                let hits = set.scan(q, n, None);
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
        let mark = if effort == DEFAULT_EFFORT { "*" } else { " " };
        println!(
            "  {effort:>5}{mark} {n:>9} {} {} {:>11.1} {:>10.4} {:>12.1}",
            ms(p50),
            ms(p99),
            bytes as f64 / p50.as_secs_f64() / 1e9,
            recall(&truth, &rescored),
            rescore_time.as_secs_f64() * 1e6 / queries.len() as f64
        );
    }
    set
}

/// The `1m` part: the 100k chunks each followed by nine noisy copies (`common/noise.rs`, as the
/// scifact bench's `1m` part), the default tier with one and with two threads, recall against
/// exact brute force over the first [`QUERIES_1M`] queries.
fn million(chunks: &[&[f32]], queries: &[&[f32]]) {
    let t = Instant::now();
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(chunks.len() * COPIES_1M);
    for (row, chunk) in chunks.iter().enumerate() {
        rows.push(chunk.to_vec());
        for copy in 1..COPIES_1M {
            rows.push(noisy_copy(chunk, row, copy, NOISE_1M));
        }
    }
    println!(
        "\n1m: {} vectors ({} copies of each chunk, noise {NOISE_1M}) made in {:.1} s",
        rows.len(),
        COPIES_1M,
        t.elapsed().as_secs_f64()
    );
    let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let queries = &queries[..QUERIES_1M.min(queries.len())];
    let mut set = report(
        "1m",
        Distance::Cosine,
        false,
        &rows,
        queries,
        &[1, 2, 5, 10],
    );
    set.set_parallel(false);
    let n = K * DEFAULT_EFFORT;
    let (p50, p99) = latencies(queries, |q| set.scan(q, n, None).len());
    println!(
        "  one thread, default effort: p50 {} p99 {}",
        ms(p50),
        ms(p99)
    );
    let codes = report(
        "1m",
        Distance::Cosine,
        true,
        &rows,
        queries,
        &[DEFAULT_EFFORT],
    );
    drop(codes);
}

/// Single-thread read bandwidth over `bytes` (summing u64 words, best of five passes), in GB/s.
fn read_bandwidth(bytes: usize) -> f64 {
    let words: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let passes = ((1usize << 30) / bytes).clamp(1, 200);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..passes {
            let mut acc = [0u64; 8];
            for chunk in words.as_chunks::<8>().0 {
                for j in 0..8 {
                    acc[j] = acc[j].wrapping_add(chunk[j]);
                }
            }
            black_box(acc);
        }
        best = best.min(t.elapsed().as_secs_f64() / passes as f64);
    }
    bytes as f64 / best / 1e9
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
