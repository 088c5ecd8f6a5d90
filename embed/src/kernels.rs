//! The encoder's steps that candle computes slowly on the CPU: GELU (`erf` per element of the
//! 1,536-wide intermediate layer, one libm call each), attention (see [`attention`]) with its
//! softmax (`exp` per score), and dense layers of few rows. Measured on SciFact abstracts, 2
//! cores, the element-wise two took a quarter of a batch's time there; written branch-free
//! here, so the loops vectorize, and run on rayon's threads (the pool candle's matrix products
//! already use).
//!
//! Accuracy: `exp` is within 2e-7 relative of the true value and `erf` within 3e-7 absolute
//! (both tested below against f64 libm), below the rounding of the f32 products around them:
//! the vectors still match sentence-transformers' with cosine 1.000000 (tests/e2e/embed.rs, and
//! every SciFact vector in `client/python/bench/embed.py`).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per task: big enough that scheduling costs nothing, small enough to share.
const CHUNK: usize = 1 << 14;

/// `0.5 · x · (1 + erf(x / √2))`, the `gelu` of BERT's configuration (not the tanh estimate).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.apply_op1_no_bwd(&GeluErf)
}

/// `x · weightᵀ + bias` for an `x` of few rows (a query or a few): each weight row is read
/// once and dotted with every row of `x`. gemm instead copies the whole weight matrix into its
/// packed layout on every call, which for a one-line query costs more than the products.
pub fn linear_few_rows(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.apply_op3_no_bwd(weight, bias, &FewRows)
}

/// Attention of a packed batch (`bert.rs`): for each text and head, `softmax(q · kᵀ) · v` over
/// the text's own tokens, read straight from the fused projection `qkv` (`(tokens, 3 · hidden)`:
/// each token's query, key and value, `heads × head_size` each, the query already scaled) and
/// written as `(tokens, hidden)`, the layout the output projection reads. `lens` are the texts'
/// token counts, in the order they are packed.
///
/// One pass per head and block of four query rows, with the head's keys and values copied out
/// once per text: candle's way (permute q, k and v into contiguous copies, a batched product
/// into a `(texts, heads, len, len)` score tensor, softmax over it, a second product, a
/// transposed copy back) wrote and read every score through memory — 100 MB per layer for 32
/// texts of 256 tokens — where here a block's scores stay in the cache.
pub fn attention(qkv: &Tensor, lens: &[usize], heads: usize) -> Result<Tensor> {
    qkv.apply_op1_no_bwd(&Attention {
        lens: lens.to_vec(),
        heads,
    })
}

struct GeluErf;
struct FewRows;
struct Attention {
    lens: Vec<usize>,
    heads: usize,
}

/// Output features per task of [`linear_few_rows`].
const FEATURES_PER_TASK: usize = 32;

/// Calls `kernel(args)` compiled for the widest vector unit the CPU has, found at run time
/// (the default x86-64 target has only 4-wide SSE2): `<kernel>_avx512`, `<kernel>_avx2` (with
/// FMA), else the portable `kernel` itself.
macro_rules! widest {
    ($kernel:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the function only requires AVX-512F, which the CPU has (checked
                // just above).
                #[allow(unsafe_code)]
                return unsafe { wide::$kernel::avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the function only requires AVX2 and FMA, which the CPU has (checked
                // above).
                #[allow(unsafe_code)]
                return unsafe { wide::$kernel::avx2($($arg),*) };
            }
        }
        $kernel($($arg),*)
    }};
}

/// The kernels compiled with wider vector instructions (the same code, inlined).
#[cfg(target_arch = "x86_64")]
mod wide {
    macro_rules! compile_for {
        ($kernel:ident($($arg:ident: $ty:ty),*)) => {
            pub mod $kernel {
                #[target_feature(enable = "avx512f")]
                pub fn avx512($($arg: $ty),*) {
                    super::super::$kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                pub fn avx2($($arg: $ty),*) {
                    super::super::$kernel($($arg),*)
                }
            }
        };
    }
    compile_for!(gelu_block(out: &mut [f32], x: &[f32]));
    compile_for!(dot_rows(out: &mut [f32], x: &[f32], weights: &[f32], bias: &[f32]));
    compile_for!(attend_text(out: &mut [f32], qkv: &[f32], heads: usize, hidden: usize));
}

/// GELU of `x` into `out`.
#[inline(always)]
fn gelu_block(out: &mut [f32], x: &[f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Softmax of each `width`-long row of `rows`, in place.
#[inline(always)]
fn softmax_rows(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width) {
        let max = lanes(row, f32::NEG_INFINITY, f32::max);
        for v in row.iter_mut() {
            *v = exp(*v - max);
        }
        let scale = 1.0 / lanes(row, 0.0, |a, b| a + b);
        for v in row.iter_mut() {
            *v *= scale;
        }
    }
}

/// The f32 elements of a contiguous tensor.
fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 tensors only");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: contiguous tensors only"),
    }
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "ctxd-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = contiguous(storage, layout, self.name())?;
        let mut output = vec![0f32; input.len()];
        output
            .par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .for_each(|(out, x)| widest!(gelu_block(out, x)));
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

/// For each row `w` of `weights` (as many as `bias` has values) and each row `r` of `x` (rows
/// as long as a weight row), `out[w · rows + r] = x_r · w + bias_w`.
#[inline(always)]
fn dot_rows(out: &mut [f32], x: &[f32], weights: &[f32], bias: &[f32]) {
    let rows = out.len() / bias.len().max(1);
    let width = x.len() / rows.max(1);
    for ((w, &b), out) in weights
        .chunks_exact(width)
        .zip(bias)
        .zip(out.chunks_exact_mut(rows))
    {
        for (row, o) in x.chunks_exact(width).zip(out.iter_mut()) {
            let mut acc = [0f32; 16];
            let mut pairs = row.chunks_exact(16).zip(w.chunks_exact(16));
            for (a, c) in &mut pairs {
                for i in 0..16 {
                    acc[i] += a[i] * c[i];
                }
            }
            let tail: f32 = row[row.len() - row.len() % 16..]
                .iter()
                .zip(&w[w.len() - w.len() % 16..])
                .map(|(a, c)| a * c)
                .sum();
            *o = acc.iter().sum::<f32>() + tail + b;
        }
    }
}

impl CustomOp3 for FewRows {
    fn name(&self) -> &'static str {
        "ctxd-linear-few-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let weights = contiguous(s2, l2, self.name())?;
        let bias = contiguous(s3, l3, self.name())?;
        let (features, width) = l2.shape().dims2()?;
        let dims = l1.shape().dims();
        if dims.last() != Some(&width) || bias.len() != features || width == 0 {
            candle_core::bail!(
                "{}: x {:?}, weight {:?}, bias {:?} do not fit",
                self.name(),
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let rows = x.len() / width;
        // Computed feature-major (each task owns whole weight rows), then transposed.
        let mut by_feature = vec![0f32; features * rows];
        by_feature
            .par_chunks_mut(FEATURES_PER_TASK * rows)
            .zip(weights.par_chunks(FEATURES_PER_TASK * width))
            .zip(bias.par_chunks(FEATURES_PER_TASK))
            .for_each(|((out, weights), bias)| widest!(dot_rows(out, x, weights, bias)));
        let mut output = vec![0f32; rows * features];
        for (f, column) in by_feature.chunks_exact(rows).enumerate() {
            for (r, &v) in column.iter().enumerate() {
                output[r * features + f] = v;
            }
        }
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("x has a last dimension") = features;
        Ok((CpuStorage::F32(output), Shape::from(shape)))
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "ctxd-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous(storage, layout, self.name())?;
        let (tokens, width) = layout.shape().dims2()?;
        let hidden = width / 3;
        if width % 3 != 0
            || self.heads == 0
            || hidden % self.heads != 0
            || self.lens.iter().sum::<usize>() != tokens
        {
            candle_core::bail!(
                "{}: {:?} is not q, k and v of {} heads for texts of {:?} tokens",
                self.name(),
                layout.shape(),
                self.heads,
                self.lens
            );
        }
        let mut output = vec![0f32; tokens * hidden];
        // Each text's rows, in and out: texts are independent, so they run in parallel.
        let mut texts = Vec::with_capacity(self.lens.len());
        let (mut input, mut rest) = (qkv, output.as_mut_slice());
        for &len in &self.lens {
            let (text_in, input_tail) = input.split_at(len * width);
            let (text_out, out_tail) = rest.split_at_mut(len * hidden);
            texts.push((text_out, text_in));
            (input, rest) = (input_tail, out_tail);
        }
        let heads = self.heads;
        texts
            .into_par_iter()
            .for_each(|(out, qkv)| widest!(attend_text(out, qkv, heads, hidden)));
        Ok((CpuStorage::F32(output), Shape::from((tokens, hidden))))
    }
}

/// Query rows attended together: their scores against one chunk of keys share each load of the
/// keys, and their weighted sums each load of the values.
const QUERY_ROWS: usize = 4;

/// Keys per chunk of a score row (one AVX-512 register of f32).
const KEY_CHUNK: usize = 16;

/// Attention of one text: `qkv` its `(len, 3 · hidden)` rows, `out` its `(len, hidden)` ones.
#[inline(always)]
fn attend_text(out: &mut [f32], qkv: &[f32], heads: usize, hidden: usize) {
    let width = 3 * hidden;
    let len = out.len() / hidden;
    let size = hidden / heads;
    // Keys transposed (one row per component, padded with zero keys to whole chunks), so a
    // chunk of scores is `KEY_CHUNK` lanes of fused multiply-adds, and values as rows per head.
    // One pass over the text's rows for all heads: a pass per head would read every row's
    // cache lines once per head.
    let padded = len.next_multiple_of(KEY_CHUNK);
    let mut all_keys = vec![0f32; hidden * padded];
    let mut all_values = vec![0f32; heads * len * size];
    for (t, row) in qkv.chunks_exact(width).enumerate() {
        for (c, &k) in row[hidden..2 * hidden].iter().enumerate() {
            all_keys[c * padded + t] = k;
        }
        for (head, value) in row[2 * hidden..].chunks_exact(size).enumerate() {
            all_values[(head * len + t) * size..][..size].copy_from_slice(value);
        }
    }
    let mut queries = vec![0f32; size * QUERY_ROWS];
    let mut scores = vec![0f32; QUERY_ROWS * padded];
    let mut sums = vec![0f32; QUERY_ROWS * size];
    for head in 0..heads {
        let at = head * size;
        let keys = &all_keys[at * padded..][..size * padded];
        let values = &all_values[head * len * size..][..len * size];
        for first in (0..len).step_by(QUERY_ROWS) {
            let rows = QUERY_ROWS.min(len - first);
            // The block's queries transposed (one group of QUERY_ROWS per component); past
            // the text's last row, the block repeats it (computed, never written).
            for r in 0..QUERY_ROWS {
                let t = first + r.min(rows - 1);
                for (d, &q) in qkv[t * width + at..][..size].iter().enumerate() {
                    queries[d * QUERY_ROWS + r] = q;
                }
            }
            for chunk in (0..padded).step_by(KEY_CHUNK) {
                let mut acc = [[0f32; KEY_CHUNK]; QUERY_ROWS];
                for (d, q) in queries.chunks_exact(QUERY_ROWS).enumerate() {
                    let k: &[f32; KEY_CHUNK] = keys[d * padded + chunk..][..KEY_CHUNK]
                        .try_into()
                        .expect("a chunk is KEY_CHUNK keys");
                    for (acc, &q) in acc.iter_mut().zip(q) {
                        for (a, &k) in acc.iter_mut().zip(k) {
                            *a = q.mul_add(k, *a);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    scores[r * padded + chunk..][..KEY_CHUNK].copy_from_slice(acc);
                }
            }
            for r in 0..QUERY_ROWS {
                softmax_rows(&mut scores[r * padded..][..len], len);
            }
            match size {
                32 => weigh::<32>(&mut sums, &scores, padded, values),
                64 => weigh::<64>(&mut sums, &scores, padded, values),
                _ => weigh_any(&mut sums, &scores, padded, values, size),
            }
            for r in 0..rows {
                out[(first + r) * hidden + at..][..size].copy_from_slice(&sums[r * size..][..size]);
            }
        }
    }
}

/// `sums[r] = Σⱼ scores[r][j] · values[j]` for the block's rows, two rows at a time, their
/// `SIZE`-wide sums held in registers across the whole sum (two rows of 32 are eight AVX2
/// registers; four would not fit beside the values).
#[inline(always)]
fn weigh<const SIZE: usize>(sums: &mut [f32], scores: &[f32], padded: usize, values: &[f32]) {
    let len = values.len() / SIZE;
    for pair in 0..QUERY_ROWS / 2 {
        let (first, second) = (2 * pair, 2 * pair + 1);
        let mut a = [0f32; SIZE];
        let mut b = [0f32; SIZE];
        let pa = &scores[first * padded..][..len];
        let pb = &scores[second * padded..][..len];
        for ((value, &pa), &pb) in values.chunks_exact(SIZE).zip(pa).zip(pb) {
            let value: &[f32; SIZE] = value.try_into().expect("a value row is SIZE wide");
            for d in 0..SIZE {
                a[d] = pa.mul_add(value[d], a[d]);
                b[d] = pb.mul_add(value[d], b[d]);
            }
        }
        sums[first * SIZE..][..SIZE].copy_from_slice(&a);
        sums[second * SIZE..][..SIZE].copy_from_slice(&b);
    }
}

/// [`weigh`] for a head size without a specialised copy.
#[inline(always)]
fn weigh_any(sums: &mut [f32], scores: &[f32], padded: usize, values: &[f32], size: usize) {
    sums.fill(0.0);
    for (j, value) in values.chunks_exact(size).enumerate() {
        for (r, sum) in sums.chunks_exact_mut(size).enumerate() {
            let p = scores[r * padded + j];
            for (s, &v) in sum.iter_mut().zip(value) {
                *s = p.mul_add(v, *s);
            }
        }
    }
}

/// `values` folded with `f` from `init`, in eight interleaved partial results: a float fold
/// in order cannot be vectorized (each step waits for the last), eight independent ones can.
#[inline(always)]
fn lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    acc.into_iter().fold(tail, f)
}

/// `e^x`: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (ln 2 split in two, Cody and Waite, so `r` is
/// exact), `e^r` by its Taylor polynomial of degree 7 (error below 2e-8 relative there) in
/// fused multiply-adds (one instruction in the AVX2+FMA and AVX-512 copies; the portable copy,
/// for x86 CPUs without FMA, calls libm's `fmaf`), and `2^n` built in the exponent bits. Below
/// -87.3 (where f32 turns subnormal) it is 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375: few bits, so n · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer, vectorizably.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.3, 88.3);
    let n = (clamped * LOG2_E + ROUND) - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let p = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ]
    .into_iter()
    .fold(1.0 / 5040.0, |p: f32, c| p.mul_add(r, c));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.3 { 0.0 } else { p * scale }
}

/// `erf(x)`: for `|x| < 0.6` its Taylor series to `x¹¹` (error below 2e-7), else Abramowitz and
/// Stegun 7.1.26, `1 - (a1·t + a2·t² + a3·t³ + a4·t⁴ + a5·t⁵)·e^(-x²)` with `t = 1 / (1 + p·|x|)`
/// (error at most 1.5e-7, but near 0 the subtraction from 1 would lose f32 digits). Both are
/// computed and one chosen, which keeps the loop vectorizable.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    const TWO_OVER_SQRT_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let far = (1.0 - poly * exp(-a * a)).copysign(x);
    let x2 = x * x;
    let near = TWO_OVER_SQRT_PI
        * x
        * (1.0
            + x2 * (-1.0 / 3.0
                + x2 * (1.0 / 10.0
                    + x2 * (-1.0 / 42.0 + x2 * (1.0 / 216.0 + x2 * (-1.0 / 1320.0))))));
    if a < 0.6 { near } else { far }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Points over `[lo, hi]`, both ends included.
    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_2e_7_relative() {
        for x in grid(-87.0, 88.0, 200_000) {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 2e-7,
                "exp({x}) = {got}, not {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(100.0).is_finite());
    }

    #[test]
    fn erf_is_within_3e_7_absolute() {
        for x in grid(-6.0, 6.0, 200_000) {
            let want = candle_core::cpu::erf::erf_f64(f64::from(x));
            let got = f64::from(erf(x));
            assert!((got - want).abs() < 3e-7, "erf({x}) = {got}, not {want}");
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(20.0), 1.0);
        assert_eq!(erf(-20.0), -1.0);
    }

    #[test]
    fn few_rows_agree_with_a_matrix_product() {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 37), &device).unwrap();
        let w = Tensor::randn(0f32, 1.0, (70, 37), &device).unwrap();
        let b = Tensor::randn(0f32, 1.0, 70, &device).unwrap();
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let got = linear_few_rows(&x, &w, &b).unwrap();
        assert_eq!(got.dims(), &[2, 3, 70]);
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// Attention as candle's tensor ops compute it, one text at a time.
    fn attention_by_candle(qkv: &Tensor, lens: &[usize], heads: usize) -> Tensor {
        let (_, width) = qkv.dims2().unwrap();
        let hidden = width / 3;
        let size = hidden / heads;
        let mut start = 0;
        let mut parts = Vec::new();
        for &len in lens {
            let part = qkv
                .narrow(0, start, len)
                .unwrap()
                .reshape((len, 3, heads, size))
                .unwrap()
                .permute((1, 2, 0, 3))
                .unwrap();
            let q = part.get(0).unwrap().contiguous().unwrap();
            let k = part.get(1).unwrap().contiguous().unwrap();
            let v = part.get(2).unwrap().contiguous().unwrap();
            let scores = q.matmul(&k.t().unwrap()).unwrap();
            let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            parts.push(
                probs
                    .matmul(&v)
                    .unwrap()
                    .transpose(0, 1)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .reshape((len, hidden))
                    .unwrap(),
            );
            start += len;
        }
        Tensor::cat(&parts, 0).unwrap()
    }

    #[test]
    fn attention_agrees_with_candles_ops_for_every_head_size_and_length() {
        // Head sizes with their own copy (32, 64) and without (20); lengths below, at and
        // across the key chunk (16) and the query block (4); texts packed back to back.
        for (heads, size) in [(12, 32), (4, 64), (3, 20)] {
            let lens = [1, 3, 4, 5, 16, 17, 40, 256];
            let tokens: usize = lens.iter().sum();
            let hidden = heads * size;
            let qkv = Tensor::randn(0f32, 1.0, (tokens, 3 * hidden), &Device::Cpu).unwrap();
            let got = attention(&qkv, &lens, heads).unwrap();
            let want = attention_by_candle(&qkv, &lens, heads);
            assert_eq!(got.dims(), &[tokens, hidden]);
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "heads {heads} × {size}: off by {diff}");
        }
        let qkv = Tensor::zeros((5, 9), DType::F32, &Device::Cpu).unwrap();
        assert!(
            attention(&qkv, &[4], 3).is_err(),
            "lengths must cover the tokens"
        );
    }

    #[test]
    fn the_ops_agree_with_candles_own() {
        let values: Vec<f32> = grid(-8.0, 8.0, 3 * 50_000 - 1).collect();
        let x = Tensor::from_vec(values, (3, 50_000), &Device::Cpu).unwrap();
        let close = |a: &Tensor, b: &Tensor, absolute: f32, relative: f32| {
            let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(a.len(), b.len());
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (a - b).abs() <= absolute + relative * b.abs(),
                    "[{i}] {a} vs {b}"
                );
            }
        };
        close(&gelu_erf(&x).unwrap(), &x.gelu_erf().unwrap(), 2e-6, 1e-6);
        let scores = (&x * 3.0).unwrap().reshape((6, 25_000)).unwrap();
        let mut ours = scores.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        softmax_rows(&mut ours, 25_000);
        close(
            &Tensor::from_vec(ours, (6, 25_000), &Device::Cpu).unwrap(),
            &candle_nn::ops::softmax_last_dim(&scores).unwrap(),
            1e-12,
            1e-5,
        );
    }
}
