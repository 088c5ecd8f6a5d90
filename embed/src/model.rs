//! One sentence-transformers model of the BERT family, loaded from its directory and run on the
//! CPU with candle: text in, one vector per text out, as `SentenceTransformer.encode` computes
//! it (tokenize, truncate to `max_seq_length`, BERT forward pass, pooling, optional L2
//! normalisation).
//!
//! The directory is the one a sentence-transformers model is published as (the Hugging Face
//! repository, or a PyPI package that carries it): `config.json`, `tokenizer.json`,
//! `model.safetensors`, and, where the model has them, `modules.json`,
//! `sentence_bert_config.json` and the pooling module's `config.json`. Every file is read once
//! into memory and closed: the daemon holds no handle into a model directory.

use crate::ModelError;
use crate::bert::Bert;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// A loaded model.
pub struct Model {
    bert: Bert,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    dimension: usize,
    max_tokens: usize,
    sha256: String,
    dir: PathBuf,
}

/// How token vectors become one text vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of the text's token vectors.
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
    /// The component-wise maximum over the text's tokens.
    Max,
}

/// `modules.json`: the pipeline of a sentence-transformers model.
#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The pooling module's `config.json`.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// `sentence_bert_config.json`.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Model {
    /// Loads the model in `dir`; every problem names the file it is about.
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        let dir = dir.to_owned();
        let file = |name: &str| dir.join(name);
        let config_text = read_text(&file("config.json"))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| {
            ModelError::file(
                &file("config.json"),
                format!("is not a BERT model configuration: {e}"),
            )
        })?;
        if let Some(kind) = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| {
                v.get("model_type")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            })
            && kind != "bert"
        {
            return Err(ModelError::file(
                &file("config.json"),
                format!(
                    "describes a `{kind}` model; ctxd runs BERT models (`model_type` \"bert\")"
                ),
            ));
        }

        let modules: Vec<Module> = match read_optional(&file("modules.json"))? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                ModelError::file(&file("modules.json"), format!("is not a module list: {e}"))
            })?,
            None => Vec::new(),
        };
        let pooling_dir = modules
            .iter()
            .find(|m| m.kind.ends_with("models.Pooling"))
            .map(|m| dir.join(&m.path));
        let pooling = match pooling_dir {
            Some(pooling_dir) => pooling(&pooling_dir.join("config.json"))?,
            // A plain Hugging Face model: sentence-transformers wraps it with mean pooling.
            None => Pooling::Mean,
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with("models.Normalize"));

        // sentence-transformers truncates to `max_seq_length`; without one, to what the
        // position embeddings allow.
        let max_tokens = match read_optional(&file("sentence_bert_config.json"))? {
            Some(text) => serde_json::from_str::<SentenceBertConfig>(&text)
                .map_err(|e| ModelError::file(&file("sentence_bert_config.json"), e.to_string()))?
                .max_seq_length
                .unwrap_or(config.max_position_embeddings),
            None => config.max_position_embeddings,
        }
        .min(config.max_position_embeddings);

        let tokenizer = tokenizer(&file("tokenizer.json"), max_tokens)?;

        let weights_path = file("model.safetensors");
        let weights = std::fs::read(&weights_path)
            .map_err(|e| ModelError::file(&weights_path, format!("cannot be read: {e}")))?;
        let sha256 = hex(&Sha256::digest(&weights));
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| ModelError::file(&weights_path, format!("is not safetensors: {e}")))?;
        let bert = Bert::load(vb, &config).map_err(|e| {
            ModelError::file(
                &weights_path,
                format!("does not hold the weights config.json describes: {e}"),
            )
        })?;
        Ok(Model {
            bert,
            tokenizer,
            pooling,
            normalize,
            dimension: config.hidden_size,
            max_tokens,
            sha256,
            dir,
        })
    }

    /// The length of every vector it computes.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The most tokens of a text it reads (including `[CLS]` and `[SEP]`); the rest of a longer
    /// text is cut off, as sentence-transformers does.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// SHA-256 of `model.safetensors`, lowercase hex: which weights these are.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokens of each of `texts`, truncated to [`Model::max_tokens`].
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Tokens>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Run(format!("tokenizing failed: {e}")))?;
        let tokens: Vec<Tokens> = encodings
            .into_iter()
            .map(|e| Tokens {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            })
            .collect();
        // Refused here rather than in a pass, where it would fail the other texts sharing it.
        if tokens.iter().any(Tokens::is_empty) {
            return Err(ModelError::Run(
                "a text has no tokens (the tokenizer adds no [CLS]/[SEP])".to_owned(),
            ));
        }
        Ok(tokens)
    }

    /// The vectors of `texts`, in order, computed in one forward pass (for texts already
    /// tokenized, [`Model::embed_tokens`]).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let tokens = self.tokenize(texts)?;
        self.embed_tokens(&tokens.iter().collect::<Vec<_>>())
    }

    /// The vectors of `texts`, in order, computed in one forward pass over all their tokens
    /// packed together (no padding: the pass costs what the tokens cost, whatever the mix of
    /// lengths). Callers bound the tokens of one pass: its activations grow with them (the
    /// daemon's pool takes 8,192 tokens per pass, `PASS_TOKENS` in `daemon/src/embed/pool.rs`).
    pub fn embed_tokens(&self, texts: &[&Tokens]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut type_ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut lens = Vec::with_capacity(texts.len());
        for text in texts {
            if text.is_empty() {
                return Err(ModelError::Run("a text has no tokens".to_owned()));
            }
            ids.extend_from_slice(&text.ids);
            type_ids.extend_from_slice(&text.type_ids);
            positions.extend(0..text.len() as u32);
            lens.push(text.len());
        }
        let run = |e: candle_core::Error| ModelError::Run(format!("the forward pass failed: {e}"));
        let device = Device::Cpu;
        let hidden: Vec<f32> = device.with_context(|| -> Result<Vec<f32>, ModelError> {
            let tensor = |values: &[u32]| Tensor::from_slice(values, total, &device);
            let output = self
                .bert
                .forward(
                    &tensor(&ids).map_err(run)?,
                    &tensor(&type_ids).map_err(run)?,
                    &tensor(&positions).map_err(run)?,
                    &lens,
                )
                .map_err(run)?;
            output
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(run)
        })?;
        let width = self.dimension;
        if hidden.len() != total * width {
            return Err(ModelError::Run(format!(
                "the model returned {} values for {total} tokens of {width} dimensions",
                hidden.len()
            )));
        }
        let mut vectors = Vec::with_capacity(texts.len());
        let mut start = 0;
        for len in lens {
            let end = start + len * width;
            let mut vector = pool(self.pooling, &hidden[start..end], width);
            if self.normalize {
                normalize(&mut vector);
            }
            vectors.push(vector);
            start = end;
        }
        Ok(vectors)
    }
}

/// A text's token ids (and token type ids), as the tokenizer gave them: `[CLS] … [SEP]`, cut
/// at the model's window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
}

impl Tokens {
    /// How many tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No tokens at all (a tokenizer without `[CLS]`/`[SEP]`, given an empty text).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One text's vector from its token vectors (`tokens`: rows of `width`, padding-free).
fn pool(pooling: Pooling, tokens: &[f32], width: usize) -> Vec<f32> {
    match pooling {
        Pooling::Cls => tokens[..width].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; width];
            let mut count = 0f32;
            for row in tokens.chunks_exact(width) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += v;
                }
                count += 1.0;
            }
            // As sentence-transformers: the sum over at least 1e-9 tokens.
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        }
        Pooling::Max => {
            let mut max = vec![f32::MIN; width];
            for row in tokens.chunks_exact(width) {
                for (m, v) in max.iter_mut().zip(row) {
                    *m = m.max(*v);
                }
            }
            max
        }
    }
}

/// Scales to length 1 (as `torch.nn.functional.normalize`: a zero vector stays zero).
fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|v| *v /= norm);
}

fn pooling(path: &Path) -> Result<Pooling, ModelError> {
    let text = read_text(path)?;
    let config: PoolingConfig = serde_json::from_str(&text)
        .map_err(|e| ModelError::file(path, format!("is not a pooling configuration: {e}")))?;
    match (
        config.pooling_mode_mean_tokens,
        config.pooling_mode_cls_token,
        config.pooling_mode_max_tokens,
        config.pooling_mode_mean_sqrt_len_tokens,
    ) {
        (true, false, false, false) => Ok(Pooling::Mean),
        (false, true, false, false) => Ok(Pooling::Cls),
        (false, false, true, false) => Ok(Pooling::Max),
        _ => Err(ModelError::file(
            path,
            "asks for a pooling ctxd does not compute (one of mean, cls or max tokens)",
        )),
    }
}

/// The tokenizer, truncating to `max_tokens` and never padding (batches are packed).
///
/// A published `tokenizer.json` may carry the fixed padding and truncation it was exported with
/// (all-MiniLM-L6-v2's pads every text to 128 tokens and cuts it there); sentence-transformers
/// ignores those, so they are replaced.
fn tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer, ModelError> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| ModelError::file(path, format!("is not a tokenizer: {e}")))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| ModelError::file(path, format!("cannot truncate to {max_tokens}: {e}")))?;
    Ok(tokenizer)
}

fn read_text(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path)
        .map_err(|e| ModelError::file(path, format!("cannot be read: {e}")))
}

fn read_optional(path: &Path) -> Result<Option<String>, ModelError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::file(path, format!("cannot be read: {e}"))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_and_normalize_give_what_sentence_transformers_does() {
        // Two tokens of width 2.
        let tokens = [1.0, 2.0, 3.0, 4.0];
        let mut mean = pool(Pooling::Mean, &tokens, 2);
        assert_eq!(mean, vec![2.0, 3.0]);
        assert_eq!(pool(Pooling::Max, &tokens, 2), vec![3.0, 4.0]);
        assert_eq!(pool(Pooling::Cls, &tokens, 2), vec![1.0, 2.0]);
        normalize(&mut mean);
        let length: f32 = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((length - 1.0).abs() < 1e-6);
        let mut zero = vec![0.0; 3];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
    }
}
