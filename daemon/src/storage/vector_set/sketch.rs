//! The two-bit sketch of a cosine collection, scanned at memory speed.
//!
//! Each vector is normalized and the set's *center* is subtracted: `r = x/|x| − c`. Kept per
//! vector: the signs of `r` (bit i = `rᵢ > 0`), a magnitude bit per component (`|rᵢ|` above
//! 0.98 × the root mean square of `r`, the two-level Lloyd–Max threshold of a gaussian), two
//! levels (the mean `|rᵢ|` of each class, scaled by `|r|²/|r̂|²` so the estimate is unbiased, as
//! RaBitQ does) and the bias `⟨c, r⟩`. With `r̂ᵢ = sᵢ·level(mᵢ)`:
//! `cos(q, x) = ⟨q̂, c⟩ + ⟨c, r⟩ + ⟨q̂ − c, r⟩ ≈ ⟨q̂, c⟩ + bias + ⟨q̂ − c, r̂⟩`. Estimating with
//! the query's own residual `q̂ − c` matters for data far from the origin, where `|r| ≪ 1`: the
//! quantization error then scales with `|q̂ − c|`, not with `|q̂| = 1`. A scan has two stages:
//!
//! 1. **Hamming**: the sign bits of `q̂ − c` against every row's (XOR and `popcnt`, 48 bytes per
//!    384-d vector, 4.6 MiB for 100k), counted into a histogram of distances; the rows up to
//!    the distance that admits [`PRESELECT`] × n (at least [`MIN_PRESELECT`]) form a shortlist.
//!    A filter is consulted only for rows under the bound, and the bound is raised until
//!    enough allowed rows are found.
//! 2. **Estimate**: `⟨q̂ − c, r̂⟩` for the shortlist, from both bit planes, through a table of the
//!    query's partial sums per byte of code (256 sums for each 8 components: three lookups per
//!    byte, 144 per 384-d row); the best `n` are returned.
//!
//! The caller re-scores those exactly (`storage::search`: `effort` × k of them).
//!
//! **The center** makes the signs informative for vectors that are not centred at the origin
//! (every component positive, say): it is the mean of the set's first [`CENTER_SAMPLE`] unit
//! vectors. Until it has that many, the set keeps their unit vectors and scans them exactly
//! (1.5 MiB at 384-d); at the 1,024th it fixes the center, encodes them and drops the floats.
//! The center stays until the set is rebuilt (at open, from the first vectors in key order).
//! Measured on the 100k real MiniLM chunks (numpy, 300 SciFact queries, one-bit signs; recall@10
//! after exact re-scoring of the best 200 of a 1,000-row Hamming shortlist): 0.9987 without a
//! center, 0.9983 with it — the center costs embeddings next to nothing, and the unit test with
//! all-positive data goes from recall 0.91 without the residual query to 1.0 with it.

use super::{norm2, select};
use ctxd_proto::limits::MAX_DIMENSION;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Unit vectors a set holds exactly before it fixes its center (see the module documentation).
pub(super) const CENTER_SAMPLE: usize = 1024;

/// Rows the Hamming stage keeps per hit the estimate returns (n = 50 for k = 10 at the default
/// effort 5, so the shortlist is [`MIN_PRESELECT`] up to effort 5 and grows from there).
pub(super) const PRESELECT: usize = 20;

/// The smallest Hamming shortlist. Measured at 100k real embeddings (numpy, two-bit estimate,
/// the best 50 re-scored): recall@10 0.9903 / 0.995 / 0.9967 / 0.9983 for shortlists of
/// 400 / 600 / 800 / 1,000 rows; the estimate costs ~0.1 µs per row.
pub(super) const MIN_PRESELECT: usize = 1000;

/// Words after a row's magnitude bits in `details`: its levels, and its bias `⟨c, r⟩`.
const EXTRA: usize = 2;

/// How many shortlist candidates ahead the scan prefetches details (a judgement: enough to
/// cover a memory latency with the ~60 ns of sums per candidate).
const PREFETCH_AHEAD: usize = 4;

/// Rows from which one scan's Hamming pass is split between two threads when no other scan is
/// running. Measured on this project's 2-core machine (`vector_scan`, default effort): at 100k
/// two threads made the scan slower (0.33 → 0.54 ms p50: starting a thread costs more than half
/// a pass), at 1M 1.6 times faster (4.67 → 2.97 ms); the threshold sits between.
const PARALLEL_ROWS: usize = 500_000;

// Each thread's buffer of Hamming distances, one per row, reused by its scans: a fresh 200 KB
// (100k rows) allocation per scan is a fresh mapping, faulted in page by page and unmapped
// again. A read thread keeps the largest it needed (2 bytes per row).
thread_local! {
    #[allow(
        clippy::missing_const_for_thread_local,
        reason = "it is const; clippy says otherwise for the windows-gnu target's expansion"
    )]
    static DISTANCES: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Hamming passes running now, in this process: a pass splits only when it is the only one, so
/// concurrent searches each keep one core instead of fighting over both.
static SCANS: AtomicUsize = AtomicUsize::new(0);

/// The cores this process may use (asked once).
static CORES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// Counts a scan in [`SCANS`] for as long as it lives.
struct ScanCount;

impl ScanCount {
    fn enter() -> ScanCount {
        SCANS.fetch_add(1, Ordering::Relaxed);
        ScanCount
    }
}

impl Drop for ScanCount {
    fn drop(&mut self) {
        SCANS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sign sketch of one cosine collection; see the module documentation.
#[derive(Debug, Clone)]
pub struct SketchSet {
    dimension: usize,
    /// 64-bit words per row: `dimension` rounded up to 64 bits (padding bits are 0).
    words: usize,
    /// The key of each row.
    keys: Vec<u32>,
    /// Key → slot (row index).
    slots: HashMap<u32, u32>,
    /// Before the center is fixed: `len × dimension` unit vectors, row `slot` for `keys[slot]`.
    /// Empty afterwards.
    warm: Vec<f32>,
    /// The center subtracted before taking signs; empty until fixed.
    center: Vec<f32>,
    /// After the center is fixed: `len × words` sign bits (bit i of a row is component i).
    bits: Vec<u64>,
    /// After the center is fixed: `len × (words + EXTRA)`, per row its magnitude bits (bit i:
    /// |rᵢ| is at the upper level), its two levels (lower, upper) packed in one word, and its
    /// bias `⟨c, r⟩`. Read
    /// only for the Hamming shortlist, one row at random per candidate: kept together so that
    /// a candidate's details are one cache miss (its sign bits, in `bits`, are the other).
    details: Vec<u64>,
    /// Whether a large scan may use two threads (always, but in the bench that compares).
    parallel: bool,
}

impl SketchSet {
    /// An empty set of `dimension`-value vectors.
    ///
    /// # Panics
    /// If `dimension` is 0 or above the protocol's `MAX_DIMENSION`.
    pub fn new(dimension: usize) -> SketchSet {
        assert!(
            (1..=MAX_DIMENSION as usize).contains(&dimension),
            "vector dimension {dimension} out of range 1..={MAX_DIMENSION}"
        );
        SketchSet {
            dimension,
            words: dimension.div_ceil(64),
            keys: Vec::new(),
            slots: HashMap::new(),
            warm: Vec::new(),
            center: Vec::new(),
            bits: Vec::new(),
            details: Vec::new(),
            parallel: true,
        }
    }

    /// Allows or forbids splitting a large scan between two threads.
    pub fn set_parallel(&mut self, parallel: bool) {
        self.parallel = parallel;
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The number of values per vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Bytes per row of sign bits.
    pub fn row_bytes(&self) -> usize {
        self.words * 8
    }

    /// Whether the center is fixed (rows are bits, not unit vectors).
    fn centered(&self) -> bool {
        !self.center.is_empty()
    }

    /// Reserves room for `additional` more vectors (the bits, and unit vectors only up to the
    /// sample: a million-vector load must not reserve 1.5 GB of floats it never holds).
    pub fn reserve(&mut self, additional: usize) {
        self.keys.reserve(additional);
        self.slots.reserve(additional);
        self.bits.reserve(additional * self.words);
        self.details.reserve(additional * (self.words + EXTRA));
        if !self.centered() {
            let room = CENTER_SAMPLE.saturating_sub(self.len()).min(additional);
            self.warm.reserve(room * self.dimension);
        }
    }

    /// Inserts or replaces the vector of `key`.
    ///
    /// # Panics
    /// If `vector.len()` differs from the dimension.
    pub fn upsert(&mut self, key: u32, vector: &[f32]) {
        assert_eq!(
            vector.len(),
            self.dimension,
            "vector length differs from the set's dimension"
        );
        let (dim, words) = (self.dimension, self.words);
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot as usize,
            None => {
                let slot = self.keys.len();
                // Slots index rows of a set of distinct u32 keys, so they fit in u32.
                let slot32 = u32::try_from(slot).expect("more vectors than u32 keys");
                self.keys.push(key);
                self.slots.insert(key, slot32);
                if self.centered() {
                    self.bits.resize(self.bits.len() + words, 0);
                    self.details.resize(self.details.len() + words + EXTRA, 0);
                } else {
                    self.warm.resize(self.warm.len() + dim, 0.0);
                }
                slot
            }
        };
        let unit = unit(vector);
        if self.centered() {
            self.encode_row(slot, &unit);
        } else {
            self.warm[slot * dim..(slot + 1) * dim].copy_from_slice(&unit);
            if self.len() >= CENTER_SAMPLE {
                self.fix_center();
            }
        }
    }

    /// Fixes the center as the mean of the unit vectors held so far and encodes them.
    fn fix_center(&mut self) {
        let (dim, words) = (self.dimension, self.words);
        let mut sum = vec![0.0f64; dim];
        for row in self.warm.chunks_exact(dim) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        let count = self.len() as f64;
        self.center = sum.iter().map(|s| (s / count) as f32).collect();
        self.bits.resize(self.len() * words, 0);
        self.details.resize(self.len() * (words + EXTRA), 0);
        let warm = std::mem::take(&mut self.warm);
        for (slot, unit) in warm.chunks_exact(dim).enumerate() {
            self.encode_row(slot, unit);
        }
    }

    /// Encodes the unit vector `unit` into row `slot` (the center is fixed).
    fn encode_row(&mut self, slot: usize, unit: &[f32]) {
        let words = self.words;
        let signs = &mut self.bits[slot * words..(slot + 1) * words];
        let detail = &mut self.details[slot * (words + EXTRA)..(slot + 1) * (words + EXTRA)];
        let (magnitudes, extra) = detail.split_at_mut(words);
        let (levels, bias) = encode(unit, &self.center, signs, magnitudes);
        extra[0] = pack(levels);
        extra[1] = u64::from(bias.to_bits());
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u32) -> bool {
        let Some(slot) = self.slots.remove(&key) else {
            return false;
        };
        let slot = slot as usize;
        let last = self.keys.len() - 1;
        // Keep rows dense: the last row fills the hole and its key learns its new slot.
        let width = if self.centered() {
            self.words
        } else {
            self.dimension
        };
        if slot != last {
            let (from, to) = (last * width..(last + 1) * width, slot * width);
            if self.centered() {
                self.bits.copy_within(from, to);
                let detail = self.words + EXTRA;
                self.details
                    .copy_within(last * detail..(last + 1) * detail, slot * detail);
            } else {
                self.warm.copy_within(from, to);
            }
            self.slots.insert(self.keys[last], slot as u32);
        }
        if self.centered() {
            self.bits.truncate(last * width);
            self.details.truncate(last * (width + EXTRA));
        } else {
            self.warm.truncate(last * width);
        }
        self.keys.swap_remove(slot);
        true
    }

    /// Whether `key` has a vector.
    pub fn contains(&self, key: u32) -> bool {
        self.slots.contains_key(&key)
    }

    /// The `n` best keys by estimated cosine similarity, best first, optionally only keys
    /// `allow` accepts; see the module documentation.
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
        let q = unit(query);
        if q.iter().all(|&v| v == 0.0) {
            // The cosine of a zero query is 0 with everything: the lowest keys win the tie.
            return select(
                n,
                &self.keys,
                allow,
                (0..self.len()).map(|slot| (slot, 0.0)),
            );
        }
        if !self.centered() {
            let rows = self.warm.chunks_exact(self.dimension).enumerate();
            let scored = rows.map(|(slot, row)| (slot, dot(&q, row)));
            return select(n, &self.keys, allow, scored);
        }
        let mut query_bits = vec![0u64; self.words];
        let mut offset = 0.0f64;
        for (i, (&v, &c)) in q.iter().zip(&self.center).enumerate() {
            if v - c > 0.0 {
                query_bits[i / 64] |= 1 << (i % 64);
            }
            offset += f64::from(v) * f64::from(c);
        }
        let wanted = n
            .saturating_mul(PRESELECT)
            .max(MIN_PRESELECT)
            .min(self.len());
        let shortlist = DISTANCES.with_borrow_mut(|distances| {
            // Every entry is overwritten by the pass: the buffer is only resized.
            distances.resize(self.len(), 0);
            let histogram = self.distances(query_bits.as_slice(), distances);
            self.shortlist(distances, &histogram, wanted, allow)
        });
        // The query's own residual: its quantization error then scales with |q̂ − c|, not
        // with |q̂| (for data far from the origin, |r| ≪ 1 and the difference is everything).
        let residual: Vec<f32> = q.iter().zip(&self.center).map(|(v, c)| v - c).collect();
        let table = Table::new(&residual, self.words);
        let sum: f32 = residual.iter().sum();
        let words = self.words;
        let detail =
            |slot: usize| &self.details[slot * (words + EXTRA)..(slot + 1) * (words + EXTRA)];
        let scored = shortlist.iter().enumerate().map(|(i, &slot)| {
            // The rows of the shortlist are scattered: ask for a later candidate's details
            // now, so that its cache miss overlaps this candidate's sums.
            if let Some(&ahead) = shortlist.get(i + PREFETCH_AHEAD) {
                prefetch(detail(ahead));
                prefetch(&self.bits[ahead * words..]);
            }
            let signs = &self.bits[slot * words..(slot + 1) * words];
            let (magnitudes, extra) = detail(slot).split_at(words);
            // r̂ᵢ = sᵢ·(lower + (upper − lower)·mᵢ), so ⟨q, r̂⟩ = lower·⟨q, s⟩ +
            // (upper − lower)·Σ_{mᵢ} qᵢsᵢ, and Σ_{mᵢ} qᵢsᵢ = 2·Σ_{mᵢ∧bᵢ} qᵢ − Σ_{mᵢ} qᵢ.
            let [set, both, upper_bits] = table.sums(signs, magnitudes);
            let along = 2.0 * set - sum;
            let upper_part = 2.0 * both - upper_bits;
            let [lower, upper] = unpack(extra[0]);
            let bias = f32::from_bits(extra[1] as u32);
            let estimate = f64::from(lower * along + (upper - lower) * upper_part);
            (slot, offset + f64::from(bias) + estimate)
        });
        // `allow` was applied to the shortlist.
        select(n, &self.keys, None, scored)
    }

    /// Every row's Hamming distance to `query_bits` and their histogram. A large set scanned
    /// while no other scan runs is split between two threads (see [`PARALLEL_ROWS`]).
    fn distances(&self, query_bits: &[u64], distances: &mut [u16]) -> Vec<u32> {
        let mut histogram = vec![0u32; self.dimension + 1];
        let _scan = ScanCount::enter();
        let alone = SCANS.load(Ordering::Relaxed) == 1;
        if self.parallel && self.len() >= PARALLEL_ROWS && alone && *CORES >= 2 {
            let half = self.len() / 2;
            let (bits_a, bits_b) = self.bits.split_at(half * self.words);
            let (distances_a, distances_b) = distances.split_at_mut(half);
            let mut histogram_b = vec![0u32; self.dimension + 1];
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    hamming(
                        bits_b,
                        query_bits,
                        distances_b,
                        &mut histogram_b,
                        self.words,
                    )
                });
                hamming(bits_a, query_bits, distances_a, &mut histogram, self.words);
            });
            for (total, b) in histogram.iter_mut().zip(histogram_b) {
                *total += b;
            }
        } else {
            hamming(
                &self.bits,
                query_bits,
                distances,
                &mut histogram,
                self.words,
            );
        }
        histogram
    }

    /// The slots nearest by Hamming distance that `allow` accepts: every allowed row up to a
    /// distance that admits at least `wanted` of them (or every allowed row). Ties at that
    /// distance all come along, and with a filter the bound may go further than needed.
    fn shortlist(
        &self,
        distances: &[u16],
        histogram: &[u32],
        wanted: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<usize> {
        let mut found = Vec::with_capacity(wanted + wanted / 2);
        // Rows at distances below `from` were collected by an earlier round.
        let (mut from, mut target) = (0usize, wanted);
        loop {
            // The smallest bound whose rows (allowed or not) number at least `target`.
            let mut rows = 0usize;
            let mut bound = histogram.len() - 1;
            for (distance, &count) in histogram.iter().enumerate() {
                rows += count as usize;
                if rows >= target {
                    bound = distance;
                    break;
                }
            }
            // Chunks of 16 with no distance at or under the bound (most of them: the bound
            // admits a percent or so of the rows) are skipped on one vectorized minimum.
            let (chunks, _) = distances.as_chunks::<16>();
            let tail_start = chunks.len() * 16;
            let mut admit = |slot: usize| {
                let distance = usize::from(distances[slot]);
                if (from..=bound).contains(&distance)
                    && allow.is_none_or(|allow| allow(self.keys[slot]))
                {
                    found.push(slot);
                }
            };
            for (index, chunk) in chunks.iter().enumerate() {
                let least = chunk.iter().fold(u16::MAX, |m, &d| m.min(d));
                if usize::from(least) <= bound {
                    (index * 16..index * 16 + 16).for_each(&mut admit);
                }
            }
            (tail_start..distances.len()).for_each(&mut admit);
            if found.len() >= wanted || bound == histogram.len() - 1 {
                return found;
            }
            // A filter rejected too many: look at least twice as deep.
            from = bound + 1;
            target = rows.saturating_mul(2);
        }
    }

    /// Approximate memory use in bytes.
    pub fn memory_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the entry; capacity() is ~7/8 of buckets.
        let map = self.slots.capacity() * 8 / 7 * (size_of::<(u32, u32)>() + 1);
        size_of::<Self>()
            + self.keys.capacity() * size_of::<u32>()
            + self.warm.capacity() * size_of::<f32>()
            + self.center.capacity() * size_of::<f32>()
            + self.bits.capacity() * size_of::<u64>()
            + self.details.capacity() * size_of::<u64>()
            + map
    }
}

/// `vector / |vector|` (zeros for a zero vector), the norm in f64 so that neither tiny nor huge
/// values lose the direction.
fn unit(vector: &[f32]) -> Vec<f32> {
    let length = norm2(vector).sqrt();
    if !(length > 0.0 && length.is_finite()) {
        return vec![0.0; vector.len()];
    }
    vector
        .iter()
        .map(|&v| (f64::from(v) / length) as f32)
        .collect()
}

/// Encodes `r = unit − center` in two bits per component: the sign (`signs`) and whether
/// `|rᵢ|` is above `0.98 σ` (`magnitudes`; σ is the root mean square of r: the 2-level
/// Lloyd–Max threshold of a gaussian). Returns the two levels: the mean `|rᵢ|` below and above
/// the threshold (least squares given the bits), scaled so the estimate is unbiased; and
/// `⟨c, r⟩` exactly, the part of `⟨q̂, r⟩ = ⟨c, r⟩ + ⟨q̂ − c, r⟩` that does not depend on q.
fn encode(
    unit: &[f32],
    center: &[f32],
    signs: &mut [u64],
    magnitudes: &mut [u64],
) -> ([f32; 2], f32) {
    signs.fill(0);
    magnitudes.fill(0);
    let residual = || unit.iter().zip(center).map(|(&v, &c)| v - c);
    let rms =
        (residual().map(|r| f64::from(r) * f64::from(r)).sum::<f64>() / unit.len() as f64).sqrt();
    let threshold = 0.98 * rms;
    let (mut sums, mut counts) = ([0.0f64; 2], [0usize; 2]);
    for (i, r) in residual().enumerate() {
        if r > 0.0 {
            signs[i / 64] |= 1 << (i % 64);
        }
        let magnitude = f64::from(r.abs());
        let upper = usize::from(magnitude > threshold);
        if upper == 1 {
            magnitudes[i / 64] |= 1 << (i % 64);
        }
        sums[upper] += magnitude;
        counts[upper] += 1;
    }
    let levels = [0, 1].map(|level| sums[level] / counts[level].max(1) as f64);
    // Scaled by |r|² / |r̂|² (RaBitQ's correction; |r̂|² = ⟨r̂, r⟩ for least-squares levels), so
    // that ⟨q, r̂⟩ estimates ⟨q, r⟩ without the shrinkage of quantization: rows quantized
    // less well are otherwise ranked too low.
    let kept: f64 = (0..2)
        .map(|level| counts[level] as f64 * levels[level] * levels[level])
        .sum();
    let scale = if kept > 0.0 {
        rms * rms * unit.len() as f64 / kept
    } else {
        1.0
    };
    let bias: f64 = residual()
        .zip(center)
        .map(|(r, &c)| f64::from(r) * f64::from(c))
        .sum();
    (levels.map(|level| (level * scale) as f32), bias as f32)
}

/// Two levels in one word (their `f32` bits, lower first).
fn pack([lower, upper]: [f32; 2]) -> u64 {
    u64::from(lower.to_bits()) | (u64::from(upper.to_bits()) << 32)
}

/// The levels [`pack`] stored.
fn unpack(word: u64) -> [f32; 2] {
    [
        f32::from_bits(word as u32),
        f32::from_bits((word >> 32) as u32),
    ]
}

/// Hints the CPU to bring the start of `row` into cache (a no-op elsewhere than x86-64).
#[inline(always)]
fn prefetch(row: &[u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults and reads nothing the program sees; the address is
        // that of a live slice. SSE (which `_mm_prefetch` needs) is part of x86-64 itself.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Σ a·b of two unit vectors (the warm rows' exact cosine).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    super::reduce(a, b, |x, y| x * y).into()
}

/// The query's partial sums: for byte `b` of a row (components 8b..8b+8) and each of its 256
/// values, the sum of the query's components whose bits are set. `Σ` over a row's bytes is
/// `Σ_{bit i set} qᵢ`, so `⟨q, s⟩ = 2·Σ − Σ qᵢ`.
struct Table {
    sums: Vec<f32>,
}

impl Table {
    fn new(query: &[f32], words: usize) -> Table {
        let bytes = words * 8;
        let mut sums = vec![0.0f32; bytes * 256];
        for (byte, table) in sums.chunks_exact_mut(256).enumerate() {
            for mask in 1..256usize {
                // The sum for `mask` is the sum without its lowest bit plus that bit's value.
                let low = mask.trailing_zeros() as usize;
                let value = query.get(byte * 8 + low).copied().unwrap_or(0.0);
                table[mask] = table[mask & (mask - 1)] + value;
            }
        }
        Table { sums }
    }

    /// For one row: `Σ qᵢ` over its set sign bits, over its set sign-and-magnitude bits, and
    /// over its set magnitude bits, in one pass over the words.
    #[inline]
    fn sums(&self, signs: &[u64], magnitudes: &[u64]) -> [f32; 3] {
        // Four partial sums of each, one per pair of bytes: one running sum would chain all
        // 48 additions of a 384-d row through the add latency.
        let mut partial = [[0.0f32; 4]; 3];
        for ((tables, &s), &m) in self.sums.chunks_exact(8 * 256).zip(signs).zip(magnitudes) {
            for byte in 0..8 {
                let table = &tables[byte * 256..(byte + 1) * 256];
                let shift = 8 * byte;
                let lane = byte % 4;
                partial[0][lane] += table[((s >> shift) & 0xff) as usize];
                partial[1][lane] += table[(((s & m) >> shift) & 0xff) as usize];
                partial[2][lane] += table[((m >> shift) & 0xff) as usize];
            }
        }
        partial.map(|p| p.iter().sum())
    }
}

/// Writes each row's Hamming distance to `query` into `distances` and counts them into
/// `histogram` (indexed by distance).
fn hamming(
    bits: &[u64],
    query: &[u64],
    distances: &mut [u16],
    histogram: &mut [u32],
    words: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: `hamming_popcnt` only requires the `popcnt` instruction, which the CPU has
        // (checked just above). Without it `count_ones` compiles to a dozen shifts and masks
        // per word: the default x86-64 target predates `popcnt`.
        #[allow(unsafe_code)]
        unsafe {
            hamming_popcnt(bits, query, distances, histogram, words)
        };
        return;
    }
    hamming_rows(bits, query, distances, histogram, words);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn hamming_popcnt(
    bits: &[u64],
    query: &[u64],
    distances: &mut [u16],
    histogram: &mut [u32],
    words: usize,
) {
    hamming_rows(bits, query, distances, histogram, words);
}

/// The kernel, with the row width a constant for the common dimensions (LLVM then keeps the
/// query in registers and unrolls the row).
#[inline(always)]
fn hamming_rows(
    bits: &[u64],
    query: &[u64],
    distances: &mut [u16],
    histogram: &mut [u32],
    words: usize,
) {
    match words {
        6 => fixed::<6>(bits, query, distances, histogram),
        8 => fixed::<8>(bits, query, distances, histogram),
        12 => fixed::<12>(bits, query, distances, histogram),
        16 => fixed::<16>(bits, query, distances, histogram),
        24 => fixed::<24>(bits, query, distances, histogram),
        48 => fixed::<48>(bits, query, distances, histogram),
        _ => {
            for (row, distance) in bits.chunks_exact(words).zip(distances.iter_mut()) {
                let d: u32 = row
                    .iter()
                    .zip(query)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                *distance = d as u16;
                histogram[d as usize] += 1;
            }
        }
    }
}

#[inline(always)]
fn fixed<const W: usize>(
    bits: &[u64],
    query: &[u64],
    distances: &mut [u16],
    histogram: &mut [u32],
) {
    let query: &[u64; W] = query.try_into().expect("query width");
    let distance = |row: &[u64; W]| {
        let mut d = 0u32;
        for j in 0..W {
            d += (row[j] ^ query[j]).count_ones();
        }
        d
    };
    // Four histograms, one per row of each group of four: consecutive rows often fall in the
    // same bucket, and one histogram chains every increment to the previous one through
    // memory (at 100k × 384 that chain was 40 % of the scan).
    let buckets = histogram.len();
    let mut partial = vec![0u32; 4 * buckets];
    let (partial_a, rest) = partial.split_at_mut(buckets);
    let (partial_b, rest) = rest.split_at_mut(buckets);
    let (partial_c, partial_d) = rest.split_at_mut(buckets);
    let rows = bits.as_chunks::<W>().0;
    let (groups, tail) = rows.as_chunks::<4>();
    let (distance_groups, distance_tail) = distances.as_chunks_mut::<4>();
    for (group, out) in groups.iter().zip(distance_groups) {
        // d ≤ the dimension ≤ 4096: fits u16, and each histogram has dimension + 1 entries.
        let d = [
            distance(&group[0]),
            distance(&group[1]),
            distance(&group[2]),
            distance(&group[3]),
        ];
        partial_a[d[0] as usize] += 1;
        partial_b[d[1] as usize] += 1;
        partial_c[d[2] as usize] += 1;
        partial_d[d[3] as usize] += 1;
        *out = d.map(|d| d as u16);
    }
    for (row, out) in tail.iter().zip(distance_tail) {
        let d = distance(row);
        partial_a[d as usize] += 1;
        *out = d as u16;
    }
    for (i, total) in histogram.iter_mut().enumerate() {
        *total += partial_a[i] + partial_b[i] + partial_c[i] + partial_d[i];
    }
}

#[cfg(test)]
mod tests {
    use super::super::exact_score;
    use super::*;
    use ctxd_proto::Distance;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
        fn gauss(&mut self) -> f32 {
            (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
        }
    }

    /// Vectors in `clusters` groups around random centres, shifted by `offset` in every
    /// component (an offset far from 0 is data whose signs, uncentred, are all alike).
    fn clustered(
        rng: &mut Rng,
        count: usize,
        dim: usize,
        clusters: usize,
        offset: f32,
    ) -> Vec<Vec<f32>> {
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| rng.gauss()).collect())
            .collect();
        (0..count)
            .map(|i| {
                centres[i % clusters]
                    .iter()
                    .map(|&c| offset + c + 0.6 * rng.gauss())
                    .collect()
            })
            .collect()
    }

    /// recall@10 of `scan(q, 200)` re-scored exactly, over `queries` queries near the data.
    fn recall(vectors: &[Vec<f32>], rng: &mut Rng, queries: usize) -> f64 {
        let mut set = SketchSet::new(vectors[0].len());
        for (key, v) in vectors.iter().enumerate() {
            set.upsert(key as u32, v);
        }
        assert!(set.centered());
        let mut found = 0;
        for _ in 0..queries {
            let base = &vectors[(rng.next() % vectors.len() as u64) as usize];
            let q: Vec<f32> = base.iter().map(|&v| v + 0.3 * rng.gauss()).collect();
            let mut exact: Vec<(f64, u32)> = vectors
                .iter()
                .enumerate()
                .map(|(key, v)| (exact_score(Distance::Cosine, &q, v), key as u32))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut rescored: Vec<(f64, u32)> = set
                .scan(&q, 200, None)
                .iter()
                .map(|&(key, _)| {
                    (
                        exact_score(Distance::Cosine, &q, &vectors[key as usize]),
                        key,
                    )
                })
                .collect();
            rescored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let top: Vec<u32> = rescored.iter().take(10).map(|h| h.1).collect();
            found += exact[..10]
                .iter()
                .filter(|(_, key)| top.contains(key))
                .count();
        }
        found as f64 / (10 * queries) as f64
    }

    #[test]
    fn recall_holds_for_centred_and_offset_data() {
        let mut rng = Rng(0x5EED);
        for offset in [0.0, 5.0] {
            let vectors = clustered(&mut rng, 4000, 128, 40, offset);
            let got = recall(&vectors, &mut rng, 40);
            // Without the center, the offset data's signs are all 1: recall would be ~200/4000.
            assert!(got >= 0.95, "offset {offset}: recall@10 {got}");
        }
    }

    #[test]
    fn warm_rows_are_exact_and_survive_the_switch() {
        let mut rng = Rng(3);
        let dim = 70; // two words, the second padded
        let mut set = SketchSet::new(dim);
        let vectors: Vec<Vec<f32>> = (0..CENTER_SAMPLE + 300)
            .map(|_| (0..dim).map(|_| rng.gauss()).collect())
            .collect();
        let q: Vec<f32> = (0..dim).map(|_| rng.gauss()).collect();
        for (key, v) in vectors.iter().enumerate().take(CENTER_SAMPLE - 1) {
            set.upsert(key as u32, v);
        }
        assert!(!set.centered());
        // Exact while warm: the scores are the cosines.
        for (key, score) in set.scan(&q, 20, None) {
            let exact = exact_score(Distance::Cosine, &q, &vectors[key as usize]);
            assert!((score - exact).abs() < 1e-5, "{score} vs {exact}");
        }
        // Remove a few, replace a few, then cross the sample size.
        for key in [0u32, 5, 500] {
            assert!(set.remove(key));
        }
        set.upsert(7, &vectors[CENTER_SAMPLE + 299]);
        for (key, v) in vectors.iter().enumerate().skip(CENTER_SAMPLE - 1) {
            set.upsert(key as u32, v);
        }
        assert!(set.centered() && set.warm.is_empty());
        assert_eq!(set.len(), CENTER_SAMPLE + 300 - 3);
        assert_eq!(set.bits.len(), set.len() * set.words);
        assert!(!set.contains(5) && set.contains(7));
        // Every row still encodes its key's vector (key 7 its replacement).
        for (slot, &key) in set.keys.iter().enumerate() {
            assert_eq!(set.slots[&key] as usize, slot);
            let v = if key == 7 {
                &vectors[CENTER_SAMPLE + 299]
            } else {
                &vectors[key as usize]
            };
            let (mut signs, mut magnitudes) = (vec![0u64; set.words], vec![0u64; set.words]);
            let (levels, bias) = encode(&unit(v), &set.center, &mut signs, &mut magnitudes);
            assert_eq!(signs, set.bits[slot * set.words..(slot + 1) * set.words]);
            let detail = &set.details[slot * (set.words + EXTRA)..(slot + 1) * (set.words + EXTRA)];
            assert_eq!(magnitudes, detail[..set.words]);
            assert_eq!(levels, unpack(detail[set.words]));
            assert_eq!(bias.to_bits(), detail[set.words + 1] as u32);
        }
        // Removal keeps the bits dense.
        assert!(set.remove(1200));
        assert_eq!(set.bits.len(), set.len() * set.words);
        assert_eq!(set.details.len(), set.len() * (set.words + EXTRA));
    }

    #[test]
    fn estimates_track_cosines_and_filters_hold() {
        let mut rng = Rng(17);
        let vectors = clustered(&mut rng, 3000, 384, 30, 0.0);
        let mut set = SketchSet::new(384);
        for (key, v) in vectors.iter().enumerate() {
            set.upsert(key as u32, v);
        }
        let q = &vectors[42];
        let hits = set.scan(q, 100, None);
        assert_eq!(hits.len(), 100);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
        for &(key, estimate) in &hits {
            let exact = exact_score(Distance::Cosine, q, &vectors[key as usize]);
            assert!((estimate - exact).abs() < 0.1, "{estimate} vs {exact}");
        }
        // A filter that allows 1 row in 50 still fills n from allowed rows only.
        let rare = |key: u32| key.is_multiple_of(50);
        let hits = set.scan(q, 30, Some(&rare));
        assert_eq!(hits.len(), 30);
        assert!(hits.iter().all(|&(key, _)| key.is_multiple_of(50)));
        let none = |_: u32| false;
        assert!(set.scan(q, 5, Some(&none)).is_empty());
        // A zero query ties everything at 0: the lowest keys.
        let zero = vec![0.0; 384];
        let keys: Vec<u32> = set.scan(&zero, 3, None).iter().map(|h| h.0).collect();
        assert_eq!(keys, [0, 1, 2]);
    }

    #[test]
    fn every_kernel_width_counts_the_same() {
        let mut rng = Rng(99);
        for words in [1, 6, 8, 12, 16, 24, 48] {
            let rows = 37;
            let bits: Vec<u64> = (0..rows * words).map(|_| rng.next()).collect();
            let query: Vec<u64> = (0..words).map(|_| rng.next()).collect();
            let mut distances = vec![0u16; rows];
            let mut histogram = vec![0u32; words * 64 + 1];
            hamming(&bits, &query, &mut distances, &mut histogram, words);
            for (row, &d) in bits.chunks_exact(words).zip(&distances) {
                let want: u32 = row
                    .iter()
                    .zip(&query)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                assert_eq!(u32::from(d), want);
            }
            assert_eq!(histogram.iter().sum::<u32>() as usize, rows);
        }
    }
}
