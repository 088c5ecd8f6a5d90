//! Metadata filters compiled to SQL, and evaluated in Rust.
