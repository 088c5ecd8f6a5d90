//! Counting the handles this process holds into a directory: what `status.open_files` reports
//! and what a release must bring to zero.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod platform;
#[cfg(not(target_os = "linux"))]
#[path = "other.rs"]
mod platform;

pub use platform::count;
