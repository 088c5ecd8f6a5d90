//! Embeddings computed by the daemon: the models named at start (`ctxd serve --model
//! NAME=DIR`), the thread each runs on, and the step that gives a request's texts their
//! vectors before storage sees the request.
//!
//! | concern | file |
//! |---|---|
//! | the models themselves: loading, tokenizing, the forward pass | the `ctxd-embed` crate (`embed/`) |
//! | the bounded queue and batching thread of one model | `pool.rs` |
//! | filling in an upsert's or a search's vectors | `prepare.rs` |
//!
//! Storage knows nothing of models: a collection records only the name and weights SHA-256 of
//! its embedder, and an upsert reaches the storage thread with every vector computed, so a
//! write stays one atomic commit, and reads and the storage thread never wait for a model.

mod pool;
pub(crate) mod prepare;

pub use ctxd_embed::{Model, ModelError, Tokens};
pub use pool::{PASS_TOKENS, PoolError};

use ctxd_proto::{CollectionEmbedder, ModelInfo};
use pool::Pool;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `--model NAME=DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// What collections call it.
    pub name: String,
    /// The model's directory.
    pub dir: PathBuf,
}

impl std::str::FromStr for ModelSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<ModelSpec, String> {
        let (name, dir) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected NAME=DIR, e.g. minilm=/opt/models/all-MiniLM-L6-v2")
        })?;
        if !is_valid_name(name) {
            return Err(format!(
                "`{name}`: a model name is 1–64 characters of A–Z, a–z, 0–9, `_`, `.`, `-`"
            ));
        }
        if dir.is_empty() {
            return Err(format!("`{text}`: the model directory is missing"));
        }
        Ok(ModelSpec {
            name: name.to_owned(),
            dir: PathBuf::from(dir),
        })
    }
}

fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A loaded model and the thread it runs on.
#[derive(Clone)]
pub struct Embedder {
    name: String,
    model: Arc<Model>,
    pool: Pool,
}

impl Embedder {
    /// What the data directory records for a collection this model embeds for.
    pub fn identity(&self) -> CollectionEmbedder {
        CollectionEmbedder {
            name: self.name.clone(),
            sha256: self.model.sha256().to_owned(),
        }
    }

    /// The length of its vectors.
    pub fn dimension(&self) -> u32 {
        u32::try_from(self.model.dimension()).unwrap_or(u32::MAX)
    }

    /// The vectors of `texts`, in order, computed on the model's thread.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, PoolError> {
        self.pool.embed(texts).await
    }
}

/// Every model the daemon loaded, by name.
#[derive(Clone, Default)]
pub struct Embedders {
    by_name: BTreeMap<String, Embedder>,
}

/// A model named at start could not be loaded: the daemon does not start.
#[derive(Debug, thiserror::Error)]
#[error("model `{name}` (from {dir}): {source}")]
pub struct LoadError {
    name: String,
    dir: String,
    #[source]
    source: ModelError,
}

impl Embedders {
    /// Loads every model of `specs` and starts its thread (the same name twice is refused).
    pub fn load(specs: &[ModelSpec]) -> Result<Embedders, LoadError> {
        let mut by_name = BTreeMap::new();
        for spec in specs {
            let fail = |source: ModelError| LoadError {
                name: spec.name.clone(),
                dir: spec.dir.display().to_string(),
                source,
            };
            if by_name.contains_key(&spec.name) {
                return Err(fail(ModelError::Run(
                    "the name is given twice (one `--model` per name)".to_owned(),
                )));
            }
            let started = std::time::Instant::now();
            let model = Arc::new(Model::load(&spec.dir).map_err(fail)?);
            let pool = Pool::start(&spec.name, Arc::clone(&model))
                .map_err(|e| fail(ModelError::Run(format!("cannot start its thread: {e}"))))?;
            tracing::info!(
                model = %spec.name,
                dir = %model.dir().display(),
                dimension = model.dimension(),
                max_tokens = model.max_tokens(),
                sha256 = %model.sha256(),
                ms = started.elapsed().as_millis() as u64,
                "model loaded"
            );
            by_name.insert(
                spec.name.clone(),
                Embedder {
                    name: spec.name.clone(),
                    model,
                    pool,
                },
            );
        }
        Ok(Embedders { by_name })
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&Embedder> {
        self.by_name.get(name)
    }

    /// Names of the loaded models, for messages (`none` when there are none).
    pub fn names(&self) -> String {
        if self.by_name.is_empty() {
            "none".to_owned()
        } else {
            self.by_name.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    /// The loaded models, for `status`.
    pub fn infos(&self) -> Vec<ModelInfo> {
        self.by_name
            .values()
            .map(|e| ModelInfo {
                name: e.name.clone(),
                dimension: e.dimension(),
                max_tokens: u32::try_from(e.model.max_tokens()).unwrap_or(u32::MAX),
                sha256: e.model.sha256().to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_parse_name_equals_dir() {
        let spec: ModelSpec = "minilm=/opt/models/all-MiniLM-L6-v2"
            .parse()
            .expect("parses");
        assert_eq!(spec.name, "minilm");
        assert_eq!(spec.dir, PathBuf::from("/opt/models/all-MiniLM-L6-v2"));
        let with_equals: ModelSpec = "m=/a=b".parse().expect("the first `=` splits");
        assert_eq!(with_equals.dir, PathBuf::from("/a=b"));
        assert!("minilm".parse::<ModelSpec>().is_err());
        assert!("=dir".parse::<ModelSpec>().is_err());
        assert!("a b=dir".parse::<ModelSpec>().is_err());
        assert!("minilm=".parse::<ModelSpec>().is_err());
    }
}
