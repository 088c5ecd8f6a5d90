//! Crash recovery: the redo journal replayed into LMDB when SQLite committed writes LMDB never
//! got (the process died between the two commits; see `writer.rs`).

use super::StorageError;
use super::text::{self, TextStore};
use super::vectors::VectorStore;

/// Brings LMDB up to SQLite's generation by replaying the redo journal (after a crash between
/// the two commits); returns the generation both stores now hold.
pub(super) fn replay(text: &TextStore, vectors: &VectorStore) -> Result<u64, StorageError> {
    let text_generation = text::generation(text.conn())?;
    let vector_generation = vectors.generation()?;
    if vector_generation > text_generation {
        return Err(StorageError::Corrupt(format!(
            "the vector store is at generation {vector_generation} but the text store only at \
             {text_generation}: the two were restored from different backups"
        )));
    }
    if vector_generation < text_generation {
        let changes = text::journal_since(text.conn(), vector_generation)?;
        tracing::warn!(
            from = vector_generation,
            to = text_generation,
            changes = changes.len(),
            "replaying the redo journal into the vector store (the last run stopped between commits)"
        );
        vectors.commit(&changes, text_generation)?;
    }
    Ok(text_generation)
}
