//! Windows has no `sd_notify`; the service host reports state to the SCM itself.

/// Nothing to tell.
pub fn ready(_status: &str) {}

/// Nothing to tell.
pub fn stopping() {}

/// Nothing to tell.
pub fn status(_status: &str) {}

/// Nothing to wait for.
pub fn flush() {}
