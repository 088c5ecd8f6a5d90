//! Windows: handles have no per-process limit like `RLIMIT_NOFILE`.

/// Nothing to raise; no limit to report.
pub fn raise() -> Option<u64> {
    None
}
