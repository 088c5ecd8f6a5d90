//! The BERT encoder of a sentence-transformers model, on candle's CPU tensors: token ids in,
//! one vector per token out, as Hugging Face's `BertModel` computes it in inference (no
//! dropout), for the weights `model.safetensors` holds under its usual names.
//!
//! Why not `candle_transformers::models::bert::BertModel`: it computes the same thing, but an
//! embedding batch spends most of its time outside the matrix products there (measured on
//! SciFact abstracts, 2 cores: 47 % of it), in passes over the attention scores, which for 32
//! texts of 256 tokens are 100 MB per layer: a division by √d, the mask, and a softmax of four
//! passes; and in GELU's `erf`, one libm call per element. Here the scale is folded into the
//! query weights, batches are packed so there is no padding and no mask (see
//! [`Bert::forward`]), attention is one pass per text and head that keeps its scores in the
//! cache, GELU one vectorized pass (both `kernels.rs`), and the three projections are one
//! matrix product.

use crate::kernels;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

/// A loaded encoder.
pub struct Bert {
    word: Embedding,
    position: Tensor,
    token_type: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    activation: HiddenAct,
    heads: usize,
}

struct Layer {
    /// Query (pre-scaled by 1/√head_size), key and value, stacked: one product for all three.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Bert {
    /// The encoder whose weights `vb` holds (at the root, or under `bert.` or `<model_type>.`
    /// as some checkpoints store them).
    pub fn load(vb: VarBuilder<'_>, config: &Config) -> Result<Bert> {
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            candle_core::bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let root = ["", "bert"]
            .into_iter()
            .map(str::to_owned)
            .chain(config.model_type.clone())
            .find(|prefix| {
                let name = "embeddings.word_embeddings.weight";
                vb.contains_tensor(&if prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{prefix}.{name}")
                })
            })
            .unwrap_or_default();
        let vb = if root.is_empty() { vb } else { vb.pp(root) };

        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let head_size = hidden / heads;
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let word = candle_nn::embedding(config.vocab_size, hidden, e.pp("word_embeddings"))?;
        let position = e
            .pp("position_embeddings")
            .get((config.max_position_embeddings, hidden), "weight")?;
        let token_type = candle_nn::embedding(
            config.type_vocab_size,
            hidden,
            e.pp("token_type_embeddings"),
        )?;
        let norm = candle_nn::layer_norm(hidden, eps, e.pp("LayerNorm"))?;

        let scale = 1.0 / (head_size as f64).sqrt();
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let s = a.pp("self");
                let part = |name: &str| -> Result<(Tensor, Tensor)> {
                    let p = s.pp(name);
                    Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
                };
                let (qw, qb) = part("query")?;
                let (kw, kb) = part("key")?;
                let (vw, vbias) = part("value")?;
                let qkv = Linear::new(
                    Tensor::cat(&[(qw * scale)?, kw, vw], 0)?,
                    Some(Tensor::cat(&[(qb * scale)?, kb, vbias], 0)?),
                );
                Ok(Layer {
                    qkv,
                    attention_out: candle_nn::linear(hidden, hidden, a.pp("output.dense"))?,
                    attention_norm: candle_nn::layer_norm(hidden, eps, a.pp("output.LayerNorm"))?,
                    intermediate: candle_nn::linear(
                        hidden,
                        config.intermediate_size,
                        l.pp("intermediate.dense"),
                    )?,
                    output: candle_nn::linear(
                        config.intermediate_size,
                        hidden,
                        l.pp("output.dense"),
                    )?,
                    output_norm: candle_nn::layer_norm(hidden, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word,
            position,
            token_type,
            norm,
            layers,
            activation: config.hidden_act,
            heads,
        })
    }

    /// The last hidden states, `(tokens, hidden)`, of a packed batch: the texts' tokens one
    /// after another with no padding, `ids`, `type_ids` and `positions` one value per token,
    /// and `lens` each text's token count, in order.
    ///
    /// Packing is why a batch of texts of different lengths costs what its tokens cost: the
    /// projections, feed-forward layers and norms — nearly all of the work — run once over
    /// every token, and attention, which must not look across texts, runs per text
    /// ([`kernels::attention`]). Padded batches (Hugging Face's, sentence-transformers') also
    /// spend the projections on every padding position.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        positions: &Tensor,
        lens: &[usize],
    ) -> Result<Tensor> {
        let x = (self.word.forward(ids)? + self.token_type.forward(type_ids)?)?;
        let x = (x + self.position.index_select(positions, 0)?)?;
        let mut x = self.norm.forward(&x)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, lens)?;
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: &Tensor, lens: &[usize]) -> Result<Tensor> {
        let qkv = dense(&layer.qkv, x)?;
        let context = kernels::attention(&qkv, lens, self.heads)?;
        let x = layer
            .attention_norm
            .forward(&(dense(&layer.attention_out, &context)? + x)?)?;
        let inner = dense(&layer.intermediate, &x)?;
        let inner = match self.activation {
            HiddenAct::Gelu => kernels::gelu_erf(&inner)?,
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        layer
            .output_norm
            .forward(&(dense(&layer.output, &inner)? + &x)?)
    }
}

/// Rows up to which a dense layer reads its weights directly rather than through gemm (measured:
/// a one-line query of ~20 tokens spent half its time packing weights there).
const FEW_ROWS: usize = 64;

/// `linear.forward(x)`, for few rows without gemm's packing.
fn dense(linear: &Linear, x: &Tensor) -> Result<Tensor> {
    let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1);
    match linear.bias() {
        Some(bias) if rows <= FEW_ROWS && x.is_contiguous() => {
            kernels::linear_few_rows(x, linear.weight(), bias)
        }
        _ => linear.forward(x),
    }
}
