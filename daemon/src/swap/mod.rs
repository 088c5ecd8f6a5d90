//! Exchanging two directories: how `ctxd restore` puts a snapshot in place of the data
//! directory without a moment in which neither (or half of one) is there.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod platform;
#[cfg(not(target_os = "linux"))]
#[path = "other.rs"]
mod platform;

pub use platform::exchange;
