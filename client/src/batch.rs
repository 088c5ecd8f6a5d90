//! Splitting one `upsert` of any size into requests the daemon accepts.
//!
//! The daemon takes at most [`MAX_BATCH_DOCUMENTS`] documents per `upsert` and reads lines of at
//! most `--max-frame` bytes (32 MiB by default). [`plan`] cuts a list of documents, in order, into
//! runs that respect the first limit exactly and stay under [`UPSERT_BATCH_BYTES`] of encoded
//! JSON, which keeps each request line well inside the second.
//!
//! Sizes are upper bounds ([`encoded_len_bound`]) rather than measurements: serializing every
//! document once more just to measure it cost about 5% of a SciFact ingest (5,183 documents of
//! 384 floats: 43 ms), while the bound costs a scan of the strings and overestimates vectors
//! by about a third, which only makes batches of very large vectors somewhat smaller.

use ctxd_proto::limits::MAX_BATCH_DOCUMENTS;
use ctxd_proto::{Document, VectorEncoding};
use std::ops::Range;

/// The most encoded JSON the documents of one `upsert` request may add up to: half of the
/// daemon's default frame ([`ctxd_proto::DEFAULT_MAX_FRAME`], 32 MiB). The other half is
/// headroom for the envelope and the separators between documents, so a request never reaches
/// the frame limit, however the documents are shaped. A single document larger than this is
/// still sent, alone.
pub const UPSERT_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The documents of each request, as index ranges into `documents`: consecutive, in order,
/// covering every document once. Each range holds at most `max_documents` documents (at least
/// one) and, unless it is a single oversized document, at most `max_bytes` of encoded JSON
/// (each document's length plus one byte for the separator). No documents, no ranges.
pub(crate) fn plan(
    documents: &[Document],
    max_documents: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    plan_sizes(
        documents.iter().map(encoded_len_bound),
        max_documents,
        max_bytes,
    )
}

/// [`plan`] over the documents' encoded lengths.
fn plan_sizes(
    sizes: impl IntoIterator<Item = usize>,
    max_documents: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    // A batch limit of 0 would never make progress; 1 is the smallest meaningful one.
    let max_documents = max_documents.max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0_usize;
    let mut end = 0;
    for (index, size) in sizes.into_iter().enumerate() {
        // The comma (or bracket) that separates this document from the previous one.
        let added = size.saturating_add(1);
        let full = index - start == max_documents || bytes.saturating_add(added) > max_bytes;
        if index > start && full {
            batches.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes = bytes.saturating_add(added);
        end = index + 1;
    }
    if start < end {
        batches.push(start..end);
    }
    batches
}

/// The most bytes one vector component takes in serde_json's output, with its separator.
/// serde_json writes a finite `f32` with `ryu` in at most 16 characters (`-0.0000010000001`;
/// checked over all 2³² bit patterns) and a non-finite one as `null`; plus one for the comma.
const F32_BOUND: usize = 17;

/// The fixed part of a document's JSON: braces, field names, quotes of the names, colons,
/// commas and the vector's brackets (`{"id":,"text":,"vector":[],"metadata":}` is 40 bytes).
const FIELDS_BOUND: usize = 48;

/// An upper bound of `document`'s length as compact JSON: exact for the strings' escapes and a
/// base64 vector, [`F32_BOUND`] per component of a JSON one, the metadata's own compact text.
pub(crate) fn encoded_len_bound(document: &Document) -> usize {
    let mut bytes = FIELDS_BOUND + string_bound(&document.id);
    if let Some(text) = &document.text {
        bytes += string_bound(text);
    }
    if let Some(vector) = &document.vector {
        bytes += match vector.encoding() {
            VectorEncoding::Json => vector.len() * F32_BOUND,
            // Quotes and 4 characters per 3 bytes, padded.
            VectorEncoding::Base64 => 2 + (vector.len() * 4).div_ceil(3) * 4,
        };
    }
    if let Some(metadata) = &document.metadata {
        bytes += metadata.as_json().len();
    }
    bytes
}

/// A JSON string's length at most: its quotes and bytes, plus 5 for each byte JSON escapes (the
/// longest escape, `\u001f`, is 6 bytes for 1).
fn string_bound(text: &str) -> usize {
    let escaped = text
        .bytes()
        .filter(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .count();
    2 + text.len() + 5 * escaped
}

/// The requests a default client sends for `documents`.
pub(crate) fn plan_default(documents: &[Document]) -> Vec<Range<usize>> {
    plan(documents, MAX_BATCH_DOCUMENTS, UPSERT_BATCH_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str) -> Document {
        Document {
            id: id.to_owned(),
            text: Some(text.to_owned()),
            ..Document::default()
        }
    }

    /// Every index exactly once, in order, and no empty range.
    fn assert_partition(ranges: &[Range<usize>], n: usize) {
        let mut next = 0;
        for range in ranges {
            assert_eq!(range.start, next, "ranges are consecutive: {ranges:?}");
            assert!(range.end > range.start, "no empty range: {ranges:?}");
            next = range.end;
        }
        assert_eq!(next, n, "ranges cover every document: {ranges:?}");
    }

    fn exact_len(document: &Document) -> usize {
        serde_json::to_vec(document).expect("serializes").len()
    }

    #[test]
    fn the_bound_is_never_below_the_encoded_length() {
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Awkward strings: quotes, backslashes, control characters, multi-byte characters.
        let texts = [
            "",
            "plain",
            "\"\\\"",
            "\u{1}\u{1f}\n\t",
            "é漢🦦",
            "a\"b\\c\u{0}d",
        ];
        for round in 0..2000 {
            // Random bit patterns reach every float form: subnormals, huge, tiny, negative.
            let vector: Vec<f32> = (0..(round % 40))
                .map(|_| f32::from_bits(next() as u32))
                .map(|x| if x.is_finite() { x } else { 1.0 })
                .collect();
            let document = Document {
                id: texts[round % texts.len()].repeat(1 + round % 3),
                text: (round % 4 != 0).then(|| texts[(round / 3) % texts.len()].repeat(round % 7)),
                vector: (round % 5 != 0).then(|| {
                    // Both encodings: the bound must hold for each.
                    let encoding = if round % 3 == 0 {
                        VectorEncoding::Base64
                    } else {
                        VectorEncoding::Json
                    };
                    ctxd_proto::Vector::from(vector).encoded(encoding)
                }),
                metadata: (round % 2 == 0).then(|| {
                    serde_json::json!({"k": texts[round % texts.len()], "n": round})
                        .as_object()
                        .cloned()
                        .expect("an object")
                        .into()
                }),
            };
            let exact = exact_len(&document);
            let bound = encoded_len_bound(&document);
            assert!(bound >= exact, "bound {bound} < {exact} for {document:?}");
        }
        // The longest form of an f32 (found by trying every bit pattern), and f32 extremes.
        for x in [
            -0.000_001_000_000_1_f32,
            -0.000_001_234_567_8,
            -1.234_567_8e-38,
            f32::MIN,
            f32::MAX,
            f32::MIN_POSITIVE,
            -f32::from_bits(1),
            -123_456_780_000.0,
        ] {
            let printed = serde_json::to_string(&x).expect("serializes");
            assert!(printed.len() < F32_BOUND, "{printed}");
        }
        assert_eq!(
            serde_json::to_string(&-0.000_001_000_000_1_f32)
                .map(|s| s.len())
                .ok(),
            Some(F32_BOUND - 1),
            "the bound is tight"
        );
    }

    #[test]
    fn the_bound_stays_close_for_typical_documents() {
        // A SciFact-like document: 1.5 KB of text and 384 small floats.
        let document = Document {
            id: "4983".into(),
            text: Some("word ".repeat(300)),
            vector: Some(
                (0..384)
                    .map(|i| ((i as f32) * 0.37).sin() / 7.0)
                    .collect::<Vec<f32>>()
                    .into(),
            ),
            metadata: None,
        };
        let (exact, bound) = (exact_len(&document), encoded_len_bound(&document));
        assert!(
            bound >= exact && bound < exact * 3 / 2,
            "{bound} vs {exact}"
        );
    }

    #[test]
    fn nothing_to_send_is_no_request() {
        assert!(plan(&[], 1000, 1 << 20).is_empty());
    }

    #[test]
    fn a_small_upsert_is_one_request() {
        let documents: Vec<_> = (0..10).map(|i| doc(&i.to_string(), "x")).collect();
        assert_eq!(plan_default(&documents), vec![0..10]);
    }

    #[test]
    fn splits_at_the_document_limit() {
        let documents: Vec<_> = (0..2500).map(|i| doc(&i.to_string(), "x")).collect();
        assert_eq!(
            plan(&documents, MAX_BATCH_DOCUMENTS, UPSERT_BATCH_BYTES),
            vec![0..1000, 1000..2000, 2000..2500]
        );
        let exact: Vec<_> = (0..2000).map(|i| doc(&i.to_string(), "x")).collect();
        assert_eq!(plan_default(&exact), vec![0..1000, 1000..2000]);
    }

    #[test]
    fn splits_by_bytes_before_the_document_limit() {
        // Ten documents of 100 bytes (+1 separator) under a 350-byte budget: three per request.
        let ranges = plan_sizes([100; 10], 1000, 350);
        assert_eq!(ranges, vec![0..3, 3..6, 6..9, 9..10]);
        // Exactly at the budget still fits: 3 × 101 = 303.
        assert_eq!(plan_sizes([100; 6], 1000, 303), vec![0..3, 3..6]);
    }

    #[test]
    fn an_oversized_document_travels_alone() {
        let ranges = plan_sizes([10, 10, 5000, 10, 10], 1000, 100);
        assert_eq!(ranges, vec![0..2, 2..3, 3..5]);
        assert_eq!(plan_sizes([5000], 1000, 100), vec![0..1]);
    }

    #[test]
    fn a_zero_document_limit_still_makes_progress() {
        assert_eq!(plan_sizes([1, 1, 1], 0, 100), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn every_plan_is_a_partition_within_both_limits() {
        // A seeded mix of sizes, limits small enough to force many cuts.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let n = (next() % 300) as usize;
            let sizes: Vec<usize> = (0..n).map(|_| (next() % 400) as usize).collect();
            let max_documents = 1 + (next() % 50) as usize;
            let max_bytes = 1 + (next() % 2000) as usize;
            let ranges = plan_sizes(sizes.iter().copied(), max_documents, max_bytes);
            assert_partition(&ranges, n);
            for range in &ranges {
                assert!(range.len() <= max_documents);
                let bytes: usize = sizes[range.clone()].iter().map(|s| s + 1).sum();
                assert!(
                    bytes <= max_bytes || range.len() == 1,
                    "{range:?} holds {bytes} bytes, budget {max_bytes}"
                );
            }
        }
    }

    #[test]
    fn large_vectors_split_by_bytes_under_the_frame() {
        // 1000 documents of 4096-dimension vectors are about 40 MiB of JSON: more than one
        // frame, so the byte budget must cut before the document limit does.
        let vector: Vec<f32> = (0..4096).map(|i| (i as f32).sin() / 3.0).collect();
        let documents: Vec<_> = (0..1000)
            .map(|i| Document {
                id: format!("doc-{i}"),
                vector: Some(vector.clone().into()),
                ..Document::default()
            })
            .collect();
        let ranges = plan_default(&documents);
        assert!(ranges.len() > 1, "{ranges:?}");
        assert_partition(&ranges, documents.len());
        for range in ranges {
            let bytes: usize = documents[range].iter().map(|d| exact_len(d) + 1).sum();
            assert!(bytes <= UPSERT_BATCH_BYTES);
            assert!(bytes < ctxd_proto::DEFAULT_MAX_FRAME / 2 + 1);
        }
    }
}
