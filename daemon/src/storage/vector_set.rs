//! The in-memory quantized copy of a collection's vectors, scanned for vector search.
