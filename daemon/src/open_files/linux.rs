//! Linux: file descriptors from `/proc/self/fd`, memory maps from `/proc/self/maps`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The number of distinct open files under `dir`: every file descriptor whose target is in
/// `dir`, plus every mapped file in `dir` that no descriptor already counts (LMDB keeps its
/// map after closing nothing else). `None` if `/proc` cannot be read.
pub fn count(dir: &Path) -> Option<u64> {
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    let mut descriptors = 0u64;
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && target.starts_with(dir)
        {
            descriptors += 1;
            files.insert(target);
        }
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mapped: BTreeSet<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(PathBuf::from)
        .filter(|path| path.starts_with(dir) && !files.contains(path))
        .collect();
    Some(descriptors + mapped.len() as u64)
}
