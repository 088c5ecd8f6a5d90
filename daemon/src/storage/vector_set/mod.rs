//! The in-memory copy of a collection's vectors that vector search scans, and exact scoring.
//!
//! A vector search scans this copy for a shortlist of candidates and re-scores the shortlist
//! exactly from the f32 vectors in LMDB ([`exact_score`]), so the copy decides only *which*
//! vectors are looked at, never a returned score. Two tiers, chosen by the distance:
//!
//! - **cosine** (the default distance): [`sketch`], two bits per component (the sign and the
//!   magnitude class of the unit vector minus the set's center), two levels and a bias, 112
//!   bytes per 384-d vector (128 with its key and slot). A query reads the sign bits of every vector (48 bytes per 384-d vector, a
//!   Hamming pass) and the rest only for its best thousand or so.
//! - **dot, euclidean, manhattan**: [`codes`], one byte per component (404 bytes per 384-d
//!   vector), whose estimates track lengths and offsets that signs alone do not.
//!
//! Both are dense rows with a key → slot map; removal moves the last row into the hole. Both
//! return estimates good enough that re-scoring the best `effort × k` exactly finds the true
//! top k: at the default effort the sketch's recall@10 is 0.9987 at 100k and 0.998 at 1M
//! (`cargo bench -p ctxd --bench vector_scan [-- 1m]`), 0.994 at 1M over all 809 SciFact
//! queries through the daemon (the scifact bench's `1m`).

mod codes;
mod sketch;

use codes::CodeSet;
use ctxd_proto::Distance;
use sketch::SketchSet;
use std::cmp::Ordering;

/// The in-memory copy of one collection's vectors; see the module documentation.
#[derive(Debug, Clone)]
pub struct VectorSet {
    tier: Tier,
}

#[derive(Debug, Clone)]
enum Tier {
    Codes(CodeSet),
    Sketch(SketchSet),
}

/// Calls the same method on whichever tier the set is.
macro_rules! each {
    ($self:expr, $set:ident => $body:expr) => {
        match $self {
            Tier::Codes($set) => $body,
            Tier::Sketch($set) => $body,
        }
    };
}

impl VectorSet {
    /// An empty set for vectors of `dimension` values compared by `distance`.
    ///
    /// # Panics
    /// If `dimension` is 0 or above the protocol's `MAX_DIMENSION`.
    pub fn new(dimension: usize, distance: Distance) -> VectorSet {
        let tier = match distance {
            Distance::Cosine => Tier::Sketch(SketchSet::new(dimension)),
            _ => Tier::Codes(CodeSet::new(dimension, distance)),
        };
        VectorSet { tier }
    }

    /// An empty set of the `u8` tier whatever the distance (the bench compares the tiers).
    #[allow(
        dead_code,
        reason = "the vector_scan bench compares the tiers on cosine"
    )]
    pub fn with_codes(dimension: usize, distance: Distance) -> VectorSet {
        VectorSet {
            tier: Tier::Codes(CodeSet::new(dimension, distance)),
        }
    }

    /// Allows or forbids splitting one large scan between two threads (the sketch tier only;
    /// on by default).
    #[allow(
        dead_code,
        reason = "the vector_scan bench compares one and two threads"
    )]
    pub fn set_parallel(&mut self, parallel: bool) {
        if let Tier::Sketch(set) = &mut self.tier {
            set.set_parallel(parallel);
        }
    }

    /// Bytes a scan reads per vector (the rows of its first pass).
    #[allow(dead_code, reason = "reported by the vector_scan bench")]
    pub fn scan_bytes_per_vector(&self) -> usize {
        match &self.tier {
            Tier::Codes(set) => set.stride(),
            Tier::Sketch(set) => set.row_bytes(),
        }
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        each!(&self.tier, set => set.len())
    }

    /// The number of values per vector.
    pub fn dimension(&self) -> usize {
        match &self.tier {
            Tier::Codes(set) => set.dimension(),
            Tier::Sketch(set) => set.dimension(),
        }
    }

    /// How vectors are compared.
    pub fn distance(&self) -> Distance {
        match &self.tier {
            Tier::Codes(set) => set.distance(),
            Tier::Sketch(_) => Distance::Cosine,
        }
    }

    /// Whether the set holds no vector.
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves room for `additional` more vectors (loading a collection at open knows its size;
    /// growing by doubling would briefly hold up to twice the rows).
    pub fn reserve(&mut self, additional: usize) {
        each!(&mut self.tier, set => set.reserve(additional))
    }

    /// Inserts or replaces the vector of `key` (vector.len() == dimension, finite values: the
    /// caller validated).
    ///
    /// # Panics
    /// If `vector.len()` differs from the dimension.
    pub fn upsert(&mut self, key: u32, vector: &[f32]) {
        each!(&mut self.tier, set => set.upsert(key, vector))
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u32) -> bool {
        each!(&mut self.tier, set => set.remove(key))
    }

    /// Whether `key` has a vector.
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn contains(&self, key: u32) -> bool {
        each!(&self.tier, set => set.contains(key))
    }

    /// The `n` best keys by approximate score (best first), optionally only keys for which
    /// `allow` returns true. Scores approximate [`exact_score`] (same direction and units);
    /// ties go to the lower key.
    ///
    /// # Panics
    /// If `query.len()` differs from the dimension.
    pub fn scan(
        &self,
        query: &[f32],
        n: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f64)> {
        each!(&self.tier, set => set.scan(query, n, allow))
    }

    /// Approximate memory use in bytes (for status/logging).
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn memory_bytes(&self) -> usize {
        each!(&self.tier, set => set.memory_bytes())
    }
}

/// The smallest candidate buffer of a scan, so that a small n (10) does not compact after
/// every handful of admitted rows; 32 entries are 256 bytes (a judgement, not a measurement).
const MIN_BUFFER: usize = 32;

/// Higher is better for every distance: cosine similarity, dot product, negated euclidean (L2)
/// distance, negated manhattan (L1) distance.
///
/// The cosine similarity of a zero vector with anything is 0. `query` and `vector` have the same
/// length (the shorter one decides otherwise).
///
/// Always a finite number for finite inputs: the sums run in `f32` (the fast path), and when one
/// of them overflows (components near `f32::MAX`: a product of two is far beyond it) the score is
/// computed again in `f64`, where no sum of at most 4096 products of `f32` values can overflow.
pub fn exact_score(distance: Distance, query: &[f32], vector: &[f32]) -> f64 {
    let product = |a: f32, b: f32| a * b;
    let fast = match distance {
        Distance::Cosine => {
            // Three simple passes (the second and third over data already in L1): one loop
            // accumulating all three sums left the dot product scalar (LLVM's SLP vectorizer),
            // 36 ms per brute force over 100k × 384 against 14 ms for the three passes.
            let dot = reduce(query, vector, product);
            let (qq, xx) = (
                reduce(query, query, product),
                reduce(vector, vector, product),
            );
            let norms = qq.sqrt() * xx.sqrt();
            let all_finite =
                dot.is_finite() && qq.is_finite() && xx.is_finite() && norms.is_finite();
            match (all_finite, norms > 0.0) {
                (false, _) => f32::NAN,
                (true, true) => dot / norms,
                (true, false) => 0.0,
            }
        }
        Distance::Dot => reduce(query, vector, product),
        Distance::Euclidean => -reduce(query, vector, |a, b| (a - b) * (a - b)).sqrt(),
        Distance::Manhattan => -reduce(query, vector, |a, b| (a - b).abs()),
    };
    if fast.is_finite() {
        f64::from(fast)
    } else {
        exact_score_f64(distance, query, vector)
    }
}

/// [`exact_score`] with every sum in `f64`.
fn exact_score_f64(distance: Distance, query: &[f32], vector: &[f32]) -> f64 {
    let pairs = || {
        query
            .iter()
            .zip(vector)
            .map(|(&q, &x)| (f64::from(q), f64::from(x)))
    };
    match distance {
        Distance::Cosine => {
            let dot: f64 = pairs().map(|(q, x)| q * x).sum();
            let norms = norm2(query).sqrt() * norm2(vector).sqrt();
            if norms > 0.0 { dot / norms } else { 0.0 }
        }
        Distance::Dot => pairs().map(|(q, x)| q * x).sum(),
        Distance::Euclidean => -pairs().map(|(q, x)| (q - x) * (q - x)).sum::<f64>().sqrt(),
        Distance::Manhattan => -pairs().map(|(q, x)| (q - x).abs()).sum::<f64>(),
    }
}

/// Σ term(qᵢ, xᵢ) over the common length, in 16 independent partial sums: f32 addition is not
/// associative, so LLVM vectorizes a reduction only when the source already splits it, and four
/// SSE registers of partial sums hide the add latency (brute-force cosine over 100k × 384:
/// 19 ms per query with 8 lanes, 14 ms with 16, no better with 32).
#[inline(always)]
fn reduce(query: &[f32], vector: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    const W: usize = 16;
    let len = query.len().min(vector.len());
    let (q_chunks, q_rest) = query[..len].as_chunks::<W>();
    let (x_chunks, x_rest) = vector[..len].as_chunks::<W>();
    let mut acc = [0.0f32; W];
    for (q, x) in q_chunks.iter().zip(x_chunks) {
        for j in 0..W {
            acc[j] += term(q[j], x[j]);
        }
    }
    acc.iter().sum::<f32>()
        + q_rest
            .iter()
            .zip(x_rest)
            .map(|(&q, &x)| term(q, x))
            .sum::<f32>()
}

/// The squared Euclidean norm, accumulated in f64 (used once per upsert or query, not per scan
/// row, so precision is worth more than speed).
fn norm2(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// The best `n` (≥ 1) of `scored` (slot, score: higher is better) whose key `allow` accepts,
/// best first, as (key, score).
fn select(
    n: usize,
    keys: &[u32],
    allow: Option<&dyn Fn(u32) -> bool>,
    scored: impl Iterator<Item = (usize, f64)>,
) -> Vec<(u32, f64)> {
    // Candidates at or above the current floor go into a buffer of 2n; when it is full,
    // `select_nth_unstable_by` keeps the best n and raises the floor to the n-th score.
    // Per row that is one float compare, and only ~n·ln(len/n) rows ever get past it.
    // Measured at 100k × 384 (selection alone, p50): this buffer 0.065 / 0.078 / 0.134 /
    // 0.184 ms for n = 10 / 50 / 500 / 1000, a `BinaryHeap` with the same floor 0.041 /
    // 0.060 / 0.244 / 0.438 ms, scoring everything into a buffer and selecting once
    // ~0.2 ms whatever n. Near-equal for small n, twice as fast as the heap for large n.
    let cap = 2 * n.max(MIN_BUFFER / 2);
    let mut kept: Vec<Candidate> = Vec::with_capacity(cap.min(keys.len()));
    let mut floor = f64::NEG_INFINITY;
    for (slot, score) in scored {
        if score < floor {
            continue;
        }
        let key = keys[slot];
        if let Some(allow) = allow
            && !allow(key)
        {
            continue;
        }
        kept.push(Candidate { score, key });
        if kept.len() == cap {
            kept.select_nth_unstable_by(n - 1, best_first);
            kept.truncate(n);
            floor = kept[n - 1].score;
        }
    }
    if kept.len() > n {
        kept.select_nth_unstable_by(n - 1, best_first);
        kept.truncate(n);
    }
    kept.sort_unstable_by(best_first);
    kept.into_iter().map(|c| (c.key, c.score)).collect()
}

/// One entry of the running top `n`.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f64,
    key: u32,
}

/// Orders candidates best first: higher score, then lower key (so ties are deterministic).
fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.key.cmp(&b.key))
}

#[cfg(test)]
mod tests {
    use super::exact_score;
    use ctxd_proto::Distance;

    fn close(a: impl Into<f64>, b: impl Into<f64>) -> bool {
        let (a, b) = (a.into(), b.into());
        (a - b).abs() <= 1e-5 * (1.0 + b.abs())
    }

    #[test]
    fn exact_scores_by_hand() {
        let q = [1.0, 2.0, 2.0];
        let x = [3.0, 0.0, 4.0];
        // q·x = 3 + 0 + 8 = 11; |q| = 3; |x| = 5.
        assert!(close(exact_score(Distance::Dot, &q, &x), 11.0));
        assert!(close(exact_score(Distance::Cosine, &q, &x), 11.0 / 15.0));
        // q − x = (−2, 2, −2): L2 = √12, L1 = 6.
        assert!(close(
            exact_score(Distance::Euclidean, &q, &x),
            -(12.0f32).sqrt()
        ));
        assert!(close(exact_score(Distance::Manhattan, &q, &x), -6.0));
        assert_eq!(exact_score(Distance::Cosine, &q, &[0.0; 3]), 0.0);
        assert!(close(exact_score(Distance::Cosine, &q, &q), 1.0));
        assert!(close(exact_score(Distance::Euclidean, &q, &q), 0.0));
        // Longer than one lane block, with a remainder: 0..19 against all ones.
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let ones = vec![1.0f32; 19];
        assert!(close(exact_score(Distance::Dot, &a, &ones), 171.0));
        assert!(close(
            exact_score(Distance::Manhattan, &a, &ones),
            -(1.0 + 153.0)
        ));
        let l2 = (a.iter().map(|v| (v - 1.0) * (v - 1.0)).sum::<f32>()).sqrt();
        assert!(close(exact_score(Distance::Euclidean, &a, &ones), -l2));
        let cos = 171.0 / ((a.iter().map(|v| v * v).sum::<f32>()).sqrt() * 19f32.sqrt());
        assert!(close(exact_score(Distance::Cosine, &a, &ones), cos));
    }
}
