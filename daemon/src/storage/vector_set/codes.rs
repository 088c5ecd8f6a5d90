//! The `u8` tier: a quantized copy of every vector, one byte per component, for the distances
//! a sign sketch cannot rank (euclidean, manhattan) and for dot (whose ranking depends on the
//! lengths the sketch drops). Scanned exhaustively; the best candidates are then re-scored
//! exactly (see the parent module).
//!
//! Layout: one contiguous buffer of codes, one row of `stride` bytes per vector (the dimension
//! rounded up to [`LANES`], padded with the code of 0), and parallel `keys`, `scales` and (for
//! Euclidean) `norms`; a key → slot map finds a vector's row. Removal moves the last row into
//! the hole, so the rows stay dense and the scan never skips anything.
//!
//! Quantization: each vector (normalized first for cosine) gets its own scale `max|x| / 127` and
//! codes `round(x / scale)` in −127..=127. The codes are stored *offset-binary* (`code + 128`,
//! a `u8`) and the query is quantized much more finely, to `i16`. That pair is what makes the
//! scan fast on the default x86-64 target (SSE2 only, no `unsafe`, no runtime feature
//! detection): widening a `u8` to `i16` is one unpack against a zero register, and LLVM turns
//! the `i16 × u8 → i32` multiply-accumulate into `pmaddwd`. With signed `i8` codes LLVM widens
//! by unpacking into a register it treats as undefined and then shifting, which chains each
//! iteration to the previous one through that register's false dependency: 2.6 ms per
//! 100k × 384 scan against 1.43 ms for the offset-binary form (`-C target-cpu=native` gets
//! 1.19 ms). The offset is removed afterwards with one subtraction per vector:
//! `Σ q·(u − 128) = Σ q·u − 128·Σ q`. The fine query quantization costs nothing (the query is
//! widened to `i16` either way) and leaves the stored codes as the only source of error.
//!
//! Measured by `cargo bench -p ctxd --bench vector_scan` (100k × 384 MiniLM, 300 SciFact
//! queries): 404 B per vector, scan p50 1.5–3 ms for n = 10 depending on the machine's load,
//! recall@10 0.995 raw and 1.000 after re-scoring the top 50 exactly.

use super::{norm2, select};
use ctxd_proto::Distance;
use ctxd_proto::limits::MAX_DIMENSION;
use std::collections::HashMap;

/// Rows are padded to a multiple of this many codes so the kernel has no remainder loop. 32
/// codes widen to four SSE2 registers, four independent accumulators: at 100k × 384 a 16-code
/// step scanned in 1.50 ms, 32 in 1.43 ms, 64 in 5.0 ms (LLVM stops keeping the accumulators
/// in registers). Common embedding dimensions (384, 512, 768, 1024, 1536, 3072) need no padding.
const LANES: usize = 32;

/// The largest code magnitude: symmetric, so that the stored byte is 1..=255.
const CODE_MAX: f64 = 127.0;

/// Stored byte = code + this (offset-binary).
const CODE_OFFSET: u8 = 128;

/// The quantized copy of one collection's vectors; see the module documentation.
#[derive(Debug, Clone)]
pub struct CodeSet {
    dimension: usize,
    distance: Distance,
    /// `dimension` rounded up to a multiple of [`LANES`]: the length of one row of `codes`.
    stride: usize,
    /// `len × stride` offset-binary codes, row `slot` belongs to `keys[slot]`.
    codes: Vec<u8>,
    /// The key of each row.
    keys: Vec<u32>,
    /// Each row's dequantization factor: value = (byte − 128) × scale.
    scales: Vec<f32>,
    /// Each row's exact squared norm (before quantization); Euclidean sets only, else empty.
    /// In `f64`: the squared norm of a vector near `f32::MAX` overflows `f32`.
    norms: Vec<f64>,
    /// Key → slot (row index).
    slots: HashMap<u32, u32>,
}

impl CodeSet {
    /// An empty set for vectors of `dimension` values compared by `distance`.
    ///
    /// # Panics
    /// If `dimension` is 0 or above the protocol's `MAX_DIMENSION`: the scan's `i32`
    /// accumulators are sized for that bound (see `QueryCodes::new`).
    pub fn new(dimension: usize, distance: Distance) -> CodeSet {
        assert!(
            (1..=MAX_DIMENSION as usize).contains(&dimension),
            "vector dimension {dimension} out of range 1..={MAX_DIMENSION}"
        );
        CodeSet {
            dimension,
            distance,
            stride: dimension.next_multiple_of(LANES),
            codes: Vec::new(),
            keys: Vec::new(),
            scales: Vec::new(),
            norms: Vec::new(),
            slots: HashMap::new(),
        }
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no vector.
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of values per vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// How vectors are compared.
    pub fn distance(&self) -> Distance {
        self.distance
    }

    /// Reserves room for `additional` more vectors (loading a collection at open knows its size;
    /// growing by doubling would briefly hold up to twice the codes).
    pub fn reserve(&mut self, additional: usize) {
        self.codes.reserve(additional * self.stride);
        self.keys.reserve(additional);
        self.scales.reserve(additional);
        if self.distance == Distance::Euclidean {
            self.norms.reserve(additional);
        }
        self.slots.reserve(additional);
    }

    /// Inserts or replaces the vector of `key` (vector.len() == dimension, finite values: the
    /// caller validated).
    ///
    /// # Panics
    /// If `vector.len()` differs from the dimension.
    pub fn upsert(&mut self, key: u32, vector: &[f32]) {
        assert_eq!(
            vector.len(),
            self.dimension,
            "vector length differs from the set's dimension"
        );
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot as usize,
            None => {
                let slot = self.keys.len();
                // Slots index rows of a set of distinct u32 keys, so they fit in u32.
                let slot32 = u32::try_from(slot).expect("more vectors than u32 keys");
                self.codes
                    .resize(self.codes.len() + self.stride, CODE_OFFSET);
                self.keys.push(key);
                self.scales.push(0.0);
                if self.distance == Distance::Euclidean {
                    self.norms.push(0.0);
                }
                self.slots.insert(key, slot32);
                slot
            }
        };
        let norm2 = norm2(vector);
        // Cosine ranks by the angle only: the row holds the unit vector (same codes, scale
        // divided by the length), so every row's score is a cosine whatever its length.
        let length = if self.distance == Distance::Cosine {
            norm2.sqrt()
        } else {
            1.0
        };
        let start = slot * self.stride;
        let row = &mut self.codes[start..start + self.dimension];
        self.scales[slot] = encode(vector, length, row);
        if self.distance == Distance::Euclidean {
            self.norms[slot] = norm2;
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u32) -> bool {
        let Some(slot) = self.slots.remove(&key) else {
            return false;
        };
        let slot = slot as usize;
        let last = self.keys.len() - 1;
        if slot != last {
            // Keep rows dense: the last row fills the hole and its key learns its new slot.
            let stride = self.stride;
            self.codes
                .copy_within(last * stride..(last + 1) * stride, slot * stride);
            self.slots.insert(self.keys[last], slot as u32);
        }
        self.codes.truncate(last * self.stride);
        self.keys.swap_remove(slot);
        self.scales.swap_remove(slot);
        if self.distance == Distance::Euclidean {
            self.norms.swap_remove(slot);
        }
        true
    }

    /// Whether `key` has a vector.
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn contains(&self, key: u32) -> bool {
        self.slots.contains_key(&key)
    }

    /// The `n` best keys by approximate score (best first), optionally only keys for which
    /// `allow` returns true.
    ///
    /// Scores approximate [`exact_score`] (same direction and units). Ties are broken by the
    /// lower key. `allow` is consulted after scoring, only for rows that reach the running
    /// top `n`'s floor: scoring a row costs ~15 ns at 384 dimensions, and with a permissive
    /// filter almost no row gets that far (100k × 384, n = 50: unfiltered 1.51 ms, allowing
    /// 50 % / 10 % / 1 % of the keys 1.56 / 1.68 / 1.87 ms).
    ///
    /// # Panics
    /// If `query.len()` differs from the dimension.
    pub fn scan(
        &self,
        query: &[f32],
        n: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f64)> {
        assert_eq!(
            query.len(),
            self.dimension,
            "query length differs from the set's dimension"
        );
        let n = n.min(self.len());
        if n == 0 {
            return Vec::new();
        }
        match self.distance {
            Distance::Cosine | Distance::Dot => {
                let q = QueryCodes::new(query, self.distance == Distance::Cosine, self.stride);
                // Products in f64: code sums times two scales reach ~1e80 for components near
                // f32::MAX, far beyond f32 (one multiply per row either way).
                let top = self.select(n, allow, |slot, row| {
                    f64::from(q.dot(row)) * f64::from(self.scales[slot])
                });
                top.into_iter()
                    .map(|(key, rank)| (key, rank * f64::from(q.scale)))
                    .collect()
            }
            Distance::Euclidean => {
                // |q − x|² = |q|² + |x|² − 2 q·x; |q|² is the same for every row, so rank by
                // 2 q·x − |x|² and add it back for the survivors only.
                let q = QueryCodes::new(query, false, self.stride);
                let twice = 2.0 * f64::from(q.scale);
                let top = self.select(n, allow, |slot, row| {
                    f64::from(q.dot(row)) * (f64::from(self.scales[slot]) * twice)
                        - self.norms[slot]
                });
                let q2 = norm2(query);
                top.into_iter()
                    .map(|(key, rank)| (key, -(q2 - rank).max(0.0).sqrt()))
                    .collect()
            }
            Distance::Manhattan => {
                // L1 has no dot-product form; dequantize on the fly. Rarely used for embeddings,
                // and ~5× slower than the integer kernel at the SSE2 baseline (see the bench).
                let mut padded = query.to_vec();
                padded.resize(self.stride, 0.0);
                self.select(n, allow, |slot, row| -l1(&padded, row, self.scales[slot]))
            }
        }
    }

    /// Scores every row with `rank` (higher is better) and keeps the best `n` (≥ 1) that
    /// `allow` accepts, best first.
    fn select(
        &self,
        n: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
        rank: impl Fn(usize, &[u8]) -> f64,
    ) -> Vec<(u32, f64)> {
        let rows = self.codes.chunks_exact(self.stride).enumerate();
        select(
            n,
            &self.keys,
            allow,
            rows.map(|(slot, row)| (slot, rank(slot, row))),
        )
    }

    /// Approximate memory use in bytes (for status/logging).
    #[allow(
        dead_code,
        reason = "for status reporting and loading; not every caller exists yet"
    )]
    pub fn memory_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the entry; capacity() is ~7/8 of buckets.
        let map = self.slots.capacity() * 8 / 7 * (size_of::<(u32, u32)>() + 1);
        size_of::<Self>()
            + self.codes.capacity()
            + self.keys.capacity() * size_of::<u32>()
            + self.scales.capacity() * size_of::<f32>()
            + self.norms.capacity() * size_of::<f64>()
            + map
    }
}

/// Quantizes `values / length` into `row` (offset-binary) and returns the scale.
///
/// The codes do not depend on `length` (each vector is scaled to its own largest value), only
/// the scale does. In f64 so that tiny or huge values neither overflow nor flush to zero.
fn encode(values: &[f32], length: f64, row: &mut [u8]) -> f32 {
    let max = f64::from(values.iter().fold(0.0f32, |m, v| m.max(v.abs())));
    if max <= 0.0 || length <= 0.0 {
        row.fill(CODE_OFFSET);
        return 0.0;
    }
    let to_code = CODE_MAX / max;
    for (byte, &v) in row.iter_mut().zip(values) {
        // Clamped because rounding in `to_code` can push the largest value a hair past 127.
        let code = (f64::from(v) * to_code).round().clamp(-CODE_MAX, CODE_MAX) as i16;
        *byte = (code + i16::from(CODE_OFFSET)) as u8;
    }
    (max / length / CODE_MAX) as f32
}

/// A query quantized for the integer kernel.
struct QueryCodes {
    /// `stride` codes, zero past the dimension.
    codes: Vec<i16>,
    /// `128 × Σ codes`: what the stored offset adds to every raw product sum.
    offset: i32,
    /// Dequantization factor of the codes.
    scale: f32,
}

impl QueryCodes {
    /// Quantizes `query` (normalized first if `normalize`) to `i16` codes, as finely as the
    /// kernel's `i32` accumulators allow: `Σ |q|·255 ≤ stride × 255 × limit ≤ i32::MAX`. At
    /// 384 that is ±21,931 (15.4 bits); at the 4096 maximum ±2,056 (still 16× finer than the
    /// stored codes).
    fn new(query: &[f32], normalize: bool, stride: usize) -> QueryCodes {
        let limit = (i32::MAX as usize / (255 * stride)).min(i16::MAX as usize) as f64;
        let length = if normalize { norm2(query).sqrt() } else { 1.0 };
        let max = f64::from(query.iter().fold(0.0f32, |m, v| m.max(v.abs())));
        let mut codes = vec![0i16; stride];
        if max <= 0.0 || length <= 0.0 {
            return QueryCodes {
                codes,
                offset: 0,
                scale: 0.0,
            };
        }
        let to_code = limit / max;
        for (code, &v) in codes.iter_mut().zip(query) {
            *code = (f64::from(v) * to_code).round().clamp(-limit, limit) as i16;
        }
        let offset = codes.iter().map(|&c| i32::from(c)).sum::<i32>() * i32::from(CODE_OFFSET);
        QueryCodes {
            codes,
            offset,
            scale: (max / length / limit) as f32,
        }
    }

    /// Σ query code × stored code over one row (both in code units).
    #[inline]
    fn dot(&self, row: &[u8]) -> i32 {
        dot_codes(&self.codes, row) - self.offset
    }
}

/// Σ q·u over whole [`LANES`]-sized chunks. Written as fixed-size array lanes so LLVM keeps
/// [`LANES`] independent `i32` partial sums and vectorizes with `pmaddwd` at plain SSE2.
#[inline]
fn dot_codes(query: &[i16], row: &[u8]) -> i32 {
    let mut acc = [0i32; LANES];
    for (q, u) in query
        .as_chunks::<LANES>()
        .0
        .iter()
        .zip(row.as_chunks::<LANES>().0)
    {
        for j in 0..LANES {
            acc[j] += i32::from(q[j]) * i32::from(u[j]);
        }
    }
    acc.iter().sum()
}

/// Σ |q − x| with x dequantized from the stored row (both padded to the stride: padding is
/// 0 in both, so it adds nothing). In `f32`, and again in `f64` for a row whose sum overflows.
#[inline]
fn l1(query: &[f32], row: &[u8], scale: f32) -> f64 {
    const W: usize = 16;
    let offset = f32::from(CODE_OFFSET) * scale;
    let mut acc = [0.0f32; W];
    for (q, u) in query.as_chunks::<W>().0.iter().zip(row.as_chunks::<W>().0) {
        for j in 0..W {
            acc[j] += (q[j] + offset - f32::from(u[j]) * scale).abs();
        }
    }
    let fast: f32 = acc.iter().sum();
    if fast.is_finite() {
        return f64::from(fast);
    }
    let (scale, offset) = (f64::from(scale), f64::from(CODE_OFFSET));
    query
        .iter()
        .zip(row)
        .map(|(&q, &u)| (f64::from(q) - (f64::from(u) - offset) * scale).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::exact_score;
    use super::*;

    const ALL: [Distance; 4] = [
        Distance::Cosine,
        Distance::Euclidean,
        Distance::Dot,
        Distance::Manhattan,
    ];

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
        /// Roughly normal (sum of four uniforms, centred).
        fn gauss(&mut self) -> f32 {
            (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn vector(&mut self, dim: usize) -> Vec<f32> {
            // Varying lengths make dot and the distances differ from cosine.
            let len = 0.5 + 1.5 * self.unit();
            (0..dim).map(|_| self.gauss() * len).collect()
        }
    }

    fn close(a: impl Into<f64>, b: impl Into<f64>) -> bool {
        let (a, b) = (a.into(), b.into());
        (a - b).abs() <= 1e-5 * (1.0 + b.abs())
    }

    /// Checks every structural invariant, including that each row still encodes its key's
    /// vector after rows were moved.
    fn check(set: &CodeSet, model: &HashMap<u32, Vec<f32>>) {
        assert_eq!(set.len(), model.len());
        assert_eq!(set.is_empty(), model.is_empty());
        assert_eq!(set.codes.len(), set.len() * set.stride);
        assert_eq!(set.scales.len(), set.len());
        for (slot, &key) in set.keys.iter().enumerate() {
            assert_eq!(set.slots[&key] as usize, slot);
            let start = slot * set.stride;
            let decoded: Vec<f32> = set.codes[start..start + set.dimension]
                .iter()
                .map(|&u| (f32::from(u) - 128.0) * set.scales[slot])
                .collect();
            let original = &model[&key];
            let max = original.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (d, o) in decoded.iter().zip(original) {
                assert!(
                    (d - o).abs() <= max / 127.0,
                    "row of key {key} does not match"
                );
            }
        }
        for &key in model.keys() {
            assert!(set.contains(key));
        }
    }

    #[test]
    fn upsert_remove_against_a_model() {
        let dim = 5;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut set = CodeSet::new(dim, Distance::Dot);
        let mut model: HashMap<u32, Vec<f32>> = HashMap::new();
        for step in 0..3000 {
            // Keys from a small range so replaces and removes of present keys are common.
            let key = rng.below(60) as u32;
            if rng.below(3) == 0 {
                assert_eq!(set.remove(key), model.remove(&key).is_some());
            } else {
                let v = rng.vector(dim);
                set.upsert(key, &v);
                model.insert(key, v);
            }
            assert_eq!(set.contains(key), model.contains_key(&key));
            if step % 50 == 0 {
                check(&set, &model);
            }
        }
        check(&set, &model);
        for key in 0..60 {
            assert_eq!(set.remove(key), model.remove(&key).is_some());
        }
        assert!(set.is_empty());
        assert_eq!(set.codes.len(), 0);
        assert!(set.scan(&[1.0; 5], 10, None).is_empty());
    }

    #[test]
    fn scan_is_bounded_best_first_and_filtered() {
        let dim = 40; // not a multiple of LANES: exercises the padding
        for distance in ALL {
            let mut rng = Rng(7);
            let mut set = CodeSet::new(dim, distance);
            for key in 0..300 {
                set.upsert(key * 3, &rng.vector(dim));
            }
            let q = rng.vector(dim);
            for n in [0, 1, 7, 300, 1000] {
                let hits = set.scan(&q, n, None);
                assert_eq!(hits.len(), n.min(300));
                assert!(
                    hits.windows(2).all(|w| w[0].1 >= w[1].1),
                    "{distance:?} not sorted"
                );
            }
            let even = |key: u32| key.is_multiple_of(2);
            let hits = set.scan(&q, 20, Some(&even));
            assert_eq!(hits.len(), 20);
            assert!(hits.iter().all(|&(key, _)| key.is_multiple_of(2)));
            // The filtered top is the unfiltered ranking with the odd keys taken out.
            let all = set.scan(&q, 300, None);
            let expected: Vec<_> = all
                .iter()
                .filter(|h| h.0.is_multiple_of(2))
                .take(20)
                .collect();
            assert_eq!(hits.iter().collect::<Vec<_>>(), expected);
            let none = |_: u32| false;
            assert!(set.scan(&q, 5, Some(&none)).is_empty());
            // Fewer allowed keys than n: all of them.
            let few = |key: u32| key < 30;
            assert_eq!(set.scan(&q, 50, Some(&few)).len(), 10);
        }
    }

    #[test]
    fn approximate_scores_track_exact_ones() {
        let dim = 64;
        for distance in ALL {
            let mut rng = Rng(11);
            let mut set = CodeSet::new(dim, distance);
            let vectors: Vec<Vec<f32>> = (0..100).map(|_| rng.vector(dim)).collect();
            for (key, v) in vectors.iter().enumerate() {
                set.upsert(key as u32, v);
            }
            let q = rng.vector(dim);
            let l2 = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
            let l1 = |v: &[f32]| v.iter().map(|a| a.abs()).sum::<f32>();
            for (key, approx) in set.scan(&q, 100, None) {
                let x = &vectors[key as usize];
                let exact = exact_score(distance, &q, x);
                // 1% of each score's natural scale: far above the quantization error (about
                // 0.2% here), far below a wrong formula, sign or unit.
                let scale = match distance {
                    Distance::Cosine => 1.0,
                    Distance::Dot => l2(&q) * l2(x),
                    Distance::Euclidean => l2(&q) + l2(x),
                    Distance::Manhattan => l1(&q) + l1(x),
                };
                assert!(
                    (approx - exact).abs() <= 0.01 * f64::from(scale),
                    "{distance:?}: approx {approx} vs exact {exact}"
                );
            }
        }
    }

    /// Whether the true top 10 (by [`exact_score`] over all) is inside the scan's top 50 for
    /// ≥ 99 % of 50 queries on 2,000 random 64-dimensional vectors: what re-scoring relies on.
    fn true_top_10_is_within_the_scan_top_50(distance: Distance) {
        let (dim, count, queries) = (64, 2000, 50);
        let mut rng = Rng(0xC0FF_EE00 + distance as u64);
        let mut set = CodeSet::new(dim, distance);
        let vectors: Vec<Vec<f32>> = (0..count).map(|_| rng.vector(dim)).collect();
        for (key, v) in vectors.iter().enumerate() {
            set.upsert(key as u32, v);
        }
        let mut contained = 0;
        for _ in 0..queries {
            let q = rng.vector(dim);
            let mut exact: Vec<(f64, u32)> = vectors
                .iter()
                .enumerate()
                .map(|(key, v)| (exact_score(distance, &q, v), key as u32))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let top50: Vec<u32> = set.scan(&q, 50, None).iter().map(|h| h.0).collect();
            if exact[..10].iter().all(|(_, key)| top50.contains(key)) {
                contained += 1;
            }
        }
        assert!(
            contained * 100 >= 99 * queries,
            "{distance:?}: {contained}/{queries}"
        );
    }

    // One test per distance, so they run in parallel (each ~0.4 s unoptimized).
    #[test]
    fn true_top_10_within_top_50_cosine() {
        true_top_10_is_within_the_scan_top_50(Distance::Cosine);
    }

    #[test]
    fn true_top_10_within_top_50_euclidean() {
        true_top_10_is_within_the_scan_top_50(Distance::Euclidean);
    }

    #[test]
    fn true_top_10_within_top_50_dot() {
        true_top_10_is_within_the_scan_top_50(Distance::Dot);
    }

    #[test]
    fn true_top_10_within_top_50_manhattan() {
        true_top_10_is_within_the_scan_top_50(Distance::Manhattan);
    }

    #[test]
    fn ties_go_to_the_lower_key_across_compactions() {
        // 200 equal vectors: every compaction of the candidate buffer sees only ties.
        let mut set = CodeSet::new(8, Distance::Dot);
        for key in (0..200).rev() {
            set.upsert(key, &[0.5; 8]);
        }
        for n in [1, 5, 40, 199] {
            let keys: Vec<u32> = set.scan(&[1.0; 8], n, None).iter().map(|h| h.0).collect();
            assert_eq!(keys, (0..n as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn cosine_ignores_length_and_zero_vectors_score_zero() {
        let mut set = CodeSet::new(3, Distance::Cosine);
        set.upsert(1, &[1.0, 0.0, 0.0]);
        set.upsert(2, &[100.0, 1.0, 0.0]);
        set.upsert(3, &[0.0, 0.0, 0.0]);
        set.upsert(4, &[-1.0, 0.0, 0.0]);
        let hits = set.scan(&[2.0, 0.0, 0.0], 4, None);
        let keys: Vec<u32> = hits.iter().map(|h| h.0).collect();
        assert_eq!(keys, [1, 2, 3, 4]);
        assert!(close(hits[0].1, 1.0) && hits[2].1 == 0.0 && close(hits[3].1, -1.0));
        // Replacing a vector changes its rank.
        set.upsert(4, &[3.0, 0.0, 0.0]);
        assert_eq!(
            set.scan(&[2.0, 0.0, 0.0], 4, None)[..2],
            [(1, hits[0].1), (4, hits[0].1)]
        );
        assert!(set.memory_bytes() > 4 * 32);
    }

    #[test]
    fn cosine_handles_tiny_and_huge_lengths() {
        let mut set = CodeSet::new(2, Distance::Cosine);
        set.upsert(1, &[1e-30, 0.0]);
        set.upsert(2, &[1e30, 1e30]);
        set.upsert(3, &[0.0, 3e-38]);
        let hits = set.scan(&[1e-35, 0.0], 3, None);
        let keys: Vec<u32> = hits.iter().map(|h| h.0).collect();
        assert_eq!(keys, [1, 2, 3]);
        let expected = [1.0, std::f64::consts::FRAC_1_SQRT_2, 0.0];
        for ((_, got), want) in hits.iter().zip(expected) {
            assert!((got - want).abs() < 0.01, "{got} vs {want}");
        }
    }

    #[test]
    fn scores_stay_finite_near_the_float_limit() {
        let vectors: [[f32; 4]; 4] = [
            [3e38; 4],
            [-3e38, 3e38, -3e38, 3e38],
            [1.0, 0.0, 0.0, 1e-38],
            [0.0; 4],
        ];
        for distance in ALL {
            let mut set = CodeSet::new(4, distance);
            for (key, v) in vectors.iter().enumerate() {
                set.upsert(key as u32, v);
            }
            for q in [[3e38f32; 4], [-3e38, -3e38, 3e38, 1.0], [0.0; 4]] {
                let hits = set.scan(&q, 4, None);
                assert_eq!(hits.len(), 4, "{distance:?}");
                assert!(
                    hits.iter().all(|h| h.1.is_finite()),
                    "{distance:?}: {hits:?}"
                );
                for v in &vectors {
                    let score = exact_score(distance, &q, v);
                    assert!(score.is_finite(), "{distance:?} {q:?} {v:?}: {score}");
                }
            }
        }
        // The same direction is the nearest, exactly.
        assert!(close(
            exact_score(Distance::Cosine, &[3e38; 4], &[3e38; 4]),
            1.0
        ));
        assert!(close(
            exact_score(Distance::Euclidean, &[3e38; 4], &[-3e38; 4]),
            -1.2e39
        ));
    }
}
