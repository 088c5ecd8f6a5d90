//! The limits of protocol 1: what the daemon validates and what clients plan for.

/// The most documents one `upsert` may carry. Larger imports are split into several requests
/// (the Rust client does this itself); each request is atomic on its own.
pub const MAX_BATCH_DOCUMENTS: usize = 1000;

/// The longest document id, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 512;

/// The largest metadata object, serialized as compact JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The largest vector dimension a collection may have.
pub const MAX_DIMENSION: u32 = 4096;

/// The longest collection name.
pub const MAX_COLLECTION_NAME: usize = 64;

/// The most ids one `get` or `delete` may name.
pub const MAX_IDS: usize = 100_000;

/// The largest `filter`, as JSON text: enough for an `$in` of thousands of values.
pub const MAX_FILTER_BYTES: usize = 1 << 20;

/// The largest hybrid-search weight: the fused score, at most the sum of the weights, then
/// stays a finite number for any `rrf_k`.
pub const MAX_WEIGHT: f64 = 1e6;

/// The most documents one reply may carry, in bytes of JSON: a `get` of 10,000 documents with
/// their 384-dimensional vectors is about 80 MiB, so this is far above any page a program
/// reads, and below what a daemon should hold for one connection.
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// The longest label a client chooses for people to read (a lease's `holder`, a client's name
/// in `hello`): enough for a tool's name and purpose, short enough for one status line.
pub const MAX_LABEL_BYTES: usize = 128;

/// Hits a search returns when `k` is not given.
pub const DEFAULT_K: u32 = 10;

/// The most hits one search may ask for.
pub const MAX_K: u32 = 1000;

/// Documents a `get` returns when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;

/// The most documents one `get` may return.
pub const MAX_LIMIT: u32 = 10_000;

/// The reciprocal rank fusion constant when `rrf_k` is not given.
pub const DEFAULT_RRF_K: u32 = 60;

/// Whether `name` is a valid collection name: 1–64 characters of `[A-Za-z0-9_.-]`, not
/// starting with `.`.
pub fn is_valid_collection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COLLECTION_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_follow_the_design() {
        for good in ["notes", "a", "A-b_c.d", "x".repeat(64).as_str(), "0.9"] {
            assert!(is_valid_collection_name(good), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "with space",
            "slash/y",
            "é",
            "x".repeat(65).as_str(),
        ] {
            assert!(!is_valid_collection_name(bad), "{bad}");
        }
    }
}
