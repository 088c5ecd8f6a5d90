//! The million-vector set of the `1m` bench parts: each real chunk followed by noisy copies.
//!
//! A copy is the chunk's (unit) vector plus gaussian noise of expected norm `noise` (each
//! component with deviation `noise / sqrt(dim)`), renormalized. The noise of row r, copy j
//! comes from a generator seeded with (r, j) alone, so the set is the same however it is cut
//! into pieces, on every run and in every bench.

/// Copy `copy` (≥ 1) of row `row`'s vector `source`.
pub fn noisy_copy(source: &[f32], row: usize, copy: usize, noise: f64) -> Vec<f32> {
    let deviation = noise / (source.len() as f64).sqrt();
    let mut random = SplitMix64(((row as u64) << 8) | copy as u64);
    let mut noisy: Vec<f64> = Vec::with_capacity(source.len() + 1);
    while noisy.len() < source.len() {
        let (a, b) = random.gaussian_pair();
        noisy.extend([a, b]);
    }
    noisy.truncate(source.len());
    for (value, &x) in noisy.iter_mut().zip(source) {
        *value = f64::from(x) + deviation * *value;
    }
    let norm = noisy.iter().map(|v| v * v).sum::<f64>().sqrt();
    noisy.iter().map(|v| (v / norm) as f32).collect()
}

/// Steele, Lea and Flood's SplitMix64: a tiny deterministic generator, enough for noise.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Two independent standard normal values (Box–Muller).
    fn gaussian_pair(&mut self) -> (f64, f64) {
        let radius = (-2.0 * self.unit().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        (radius * angle.cos(), radius * angle.sin())
    }
}
