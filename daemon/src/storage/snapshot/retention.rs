//! Snapshot retention: the names of the snapshots kept in a directory, and removing the oldest
//! beyond a count.
//!
//! A kept snapshot is named `ctxd-<UTC time>-g<generation>` (a directory) or the same with
//! `.tar`, the time as `20261204T061500Z`, so names sort by time. Only names of exactly that
//! form count: anything else in the directory — a snapshot being written (its temporary name
//! begins with a dot), a file of the user's — is never counted or removed. The snapshot just
//! written is never removed, and pruning runs only after it was written, so a directory that
//! held a valid snapshot always holds one.

use ctxd_proto::SnapshotFormat;
use std::fs;
use std::io;
use std::path::Path;

/// The UTC time of `unix_millis` as the name's stamp: `20261204T061500Z`.
pub fn stamp(unix_millis: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_millis);
    // `2026-12-04T06:15:00Z` without the separators a file name on Windows cannot hold.
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace(['-', ':'], "")
}

/// The name of a kept snapshot.
pub fn name(stamp: &str, generation: u64, format: SnapshotFormat) -> String {
    match format {
        SnapshotFormat::Dir => format!("ctxd-{stamp}-g{generation}"),
        SnapshotFormat::Tar => format!("ctxd-{stamp}-g{generation}.tar"),
    }
}

/// The stamp of a kept snapshot's name, if `name` is one.
fn stamp_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("ctxd-")?;
    let rest = rest.strip_suffix(".tar").unwrap_or(rest);
    let (stamp, generation) = rest.split_once("-g")?;
    let well_formed = stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp[..8].bytes().all(|b| b.is_ascii_digit())
        && stamp[9..15].bytes().all(|b| b.is_ascii_digit())
        && !generation.is_empty()
        && generation.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(stamp)
}

/// Removes the oldest kept snapshots of `dir` beyond the newest `keep`, never `written` (the
/// one just taken); returns the names removed, oldest first.
pub fn prune(dir: &Path, keep: usize, written: &str) -> io::Result<Vec<String>> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stamp) = stamp_of(&name) {
            kept.push((stamp.to_owned(), name));
        }
    }
    // Newest first: by time, then by name (a later generation of the same second).
    kept.sort_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for (_, name) in kept.into_iter().skip(keep.max(1)) {
        if name == written {
            continue;
        }
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed.push(name);
    }
    removed.reverse();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_only_kept_names_count() {
        assert_eq!(stamp(1_796_364_900_000), "20261204T061500Z");
        let name = name("20261204T061500Z", 42, SnapshotFormat::Tar);
        assert_eq!(name, "ctxd-20261204T061500Z-g42.tar");
        assert_eq!(stamp_of(&name), Some("20261204T061500Z"));
        for other in [
            ".ctxd-20261204T061500Z.partial-1-0",
            "ctxd-2026-g4",
            "ctxd-20261204T061500Z-g",
            "notes.txt",
        ] {
            assert_eq!(stamp_of(other), None, "{other}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_never_the_one_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = [
            "ctxd-20261201T000000Z-g1",
            "ctxd-20261202T000000Z-g2.tar",
            "ctxd-20261203T000000Z-g3",
            "ctxd-20261204T000000Z-g4.tar",
        ];
        for (i, name) in names.iter().enumerate() {
            if i % 2 == 0 {
                fs::create_dir(dir.path().join(name)).expect("mkdir");
                fs::write(dir.path().join(name).join("f"), b"x").expect("write");
            } else {
                fs::write(dir.path().join(name), b"x").expect("write");
            }
        }
        fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
        fs::create_dir(dir.path().join(".ctxd-20261205T000000Z.partial-1-0")).expect("mkdir");
        let removed = prune(dir.path(), 2, names[3]).expect("prune");
        assert_eq!(removed, [names[0], names[1]]);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".ctxd-20261205T000000Z.partial-1-0",
                names[2],
                names[3],
                "notes.txt"
            ]
        );
        // A clock set back: the one just written sorts older than one kept, and stays.
        let removed = prune(dir.path(), 1, names[2]).expect("prune");
        assert!(removed.is_empty(), "{removed:?}");
    }
}
