//! Vectors travel as bytes: the client writes every vector it sends as base64 of little-endian
//! `f32` and asks for the vectors it reads in the same form ([`ctxd_proto::vector`]). A float
//! then costs 5⅓ characters and no decimal formatting or parsing, and arrives bit for bit.
//!
//! The results look as if nothing had changed: vectors the client asked for in base64 on its
//! own are handed back marked as JSON, so serializing a result (as `ctxd get --json` does)
//! still prints arrays. A caller that sets `vector_encoding` itself gets what it asked for.

use ctxd_proto::{Document, Get, GetResult, Search, SearchResult, VectorEncoding};

/// Marks every vector of `documents` to be sent as base64.
pub(crate) fn send_documents(documents: &mut [Document]) {
    for document in documents {
        if let Some(vector) = document.vector.take() {
            document.vector = Some(vector.encoded(VectorEncoding::Base64));
        }
    }
}

/// Sends the query vector as base64 and asks for the hits' vectors in base64; returns whether
/// the caller left the reply encoding to the client.
pub(crate) fn send_search(params: &mut Search) -> bool {
    if let Some(vector) = params.vector.take() {
        params.vector = Some(vector.encoded(VectorEncoding::Base64));
    }
    ask_base64(&mut params.vector_encoding)
}

/// Asks for the documents' vectors in base64; returns whether the caller left the reply
/// encoding to the client.
pub(crate) fn send_get(params: &mut Get) -> bool {
    ask_base64(&mut params.vector_encoding)
}

fn ask_base64(encoding: &mut Option<VectorEncoding>) -> bool {
    let chosen_here = encoding.is_none();
    if chosen_here {
        *encoding = Some(VectorEncoding::Base64);
    }
    chosen_here
}

/// Marks the hits' vectors as JSON again when the client chose base64 on its own.
pub(crate) fn received_search(mut result: SearchResult, chosen_here: bool) -> SearchResult {
    if chosen_here {
        for hit in &mut result.hits {
            if let Some(vector) = hit.vector.take() {
                hit.vector = Some(vector.encoded(VectorEncoding::Json));
            }
        }
    }
    result
}

/// Marks the documents' vectors as JSON again when the client chose base64 on its own.
pub(crate) fn received_get(mut result: GetResult, chosen_here: bool) -> GetResult {
    if chosen_here {
        for document in &mut result.documents {
            if let Some(vector) = document.vector.take() {
                document.vector = Some(vector.encoded(VectorEncoding::Json));
            }
        }
    }
    result
}
