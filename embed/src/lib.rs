//! ctxd's text encoder: a sentence-transformers model directory (BERT family: MiniLM, BGE,
//! E5, …) loaded once and run on the CPU, with no network and no daemon knowledge. The
//! daemon (`daemon/src/embed/`) decides when texts are embedded and batches them; this crate
//! turns texts into the vectors sentence-transformers gives for them.
//!
//! | concern | file |
//! |---|---|
//! | loading a model directory, tokenizing, pooling | `model.rs` |
//! | the BERT encoder's forward pass over packed texts | `bert.rs` |
//! | GELU, softmax, attention and few-row dense layers, vectorized | `kernels.rs` |
//!
//! It is its own crate so that it is optimised even in the dev profile (see the workspace's
//! `Cargo.toml`): the tests embed thousands of texts through a debug daemon, and unoptimised
//! kernels made one request of 85 abstracts outlast the Python client's 30 s timeout.

mod bert;
mod kernels;
mod model;

pub use model::{Model, Tokens};

use std::path::{Path, PathBuf};

/// A model could not be loaded or run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// A file of the model's directory is missing or wrong.
    #[error("`{path}` {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Tokenizing or the forward pass failed.
    #[error("{0}")]
    Run(String),
}

impl ModelError {
    fn file(path: &Path, message: impl Into<String>) -> ModelError {
        ModelError::File {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
