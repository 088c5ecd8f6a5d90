//! Snapshot retention: the names of the snapshots kept in a directory, and removing the oldest
//! beyond a count.
//!
//! A kept snapshot is named `ctxd-<UTC time>-g<generation>` (a directory) or the same with
//! `.tar`, the time as `20261204T061500Z`; they are ordered by time, then generation. Only
//! names of exactly that form count: anything else in the directory — a snapshot being written
//! (its temporary name begins with a dot), a file of the user's — is never counted or removed.
//! The snapshot just written is never removed, and pruning runs only after it was written, so
//! a directory that held a valid snapshot always holds one. Every `ctxd-…` entry counts,
//! whoever wrote it: a directory of kept snapshots belongs to one schedule or job.

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

/// The stamp and generation of a kept snapshot's name, if `name` is one.
pub fn parse(name: &str) -> Option<(&str, u64)> {
    let stamp = stamp_of(name)?;
    let rest = name.strip_suffix(".tar").unwrap_or(name);
    let generation = rest.rsplit_once("-g")?.1.parse().ok()?;
    Some((stamp, generation))
}

/// The newest kept snapshot of `dir`: its name, when it was taken (Unix milliseconds) and its
/// generation.
pub fn newest(dir: &Path) -> Option<(String, u64, u64)> {
    let mut best: Option<(String, u64, u64)> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stamp, generation)) = parse(&name) else {
            continue;
        };
        let Some(at) = unix_millis(stamp) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| (at, generation) > (b.1, b.2)) {
            best = Some((name.clone(), at, generation));
        }
    }
    best
}

/// The time of a stamp, Unix milliseconds.
fn unix_millis(stamp: &str) -> Option<u64> {
    let (s, b) = (stamp, stamp.as_bytes());
    if b.len() != 16 {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    let time = humantime::parse_rfc3339(&text).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
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
    let mut kept: Vec<(String, u64, String)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((stamp, generation)) = parse(&name) {
            kept.push((stamp.to_owned(), generation, name));
        }
    }
    // Newest first: by time, then by generation (numerically: g10 after g9).
    kept.sort_by(|a, b| (&b.0, b.1, &b.2).cmp(&(&a.0, a.1, &a.2)));
    let mut removed = Vec::new();
    for (_, _, name) in kept.into_iter().skip(keep.max(1)) {
        if name == written {
            continue;
        }
        let path = dir.join(&name);
        let gone = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match gone {
            Ok(()) => removed.push(name),
            // Removed meanwhile by someone else: one fewer to remove.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
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
        assert_eq!(parse(&name), Some(("20261204T061500Z", 42)));
        assert_eq!(unix_millis("20261204T061500Z"), Some(1_796_364_900_000));
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
        // Generations of one second order as numbers.
        let same_second = dir.path().join("same");
        fs::create_dir(&same_second).expect("mkdir");
        for generation in [9, 10] {
            fs::write(
                same_second.join(format!("ctxd-20261205T000000Z-g{generation}.tar")),
                b"x",
            )
            .expect("write");
        }
        let removed = prune(&same_second, 1, "ctxd-20261205T000000Z-g10.tar").expect("prune");
        assert_eq!(removed, ["ctxd-20261205T000000Z-g9.tar"]);
        assert_eq!(
            newest(&same_second).map(|n| n.2),
            Some(10),
            "the newest is found by time and generation"
        );
        // A clock set back: the one just written sorts older than one kept, and stays.
        let removed = prune(dir.path(), 1, names[2]).expect("prune");
        assert!(removed.is_empty(), "{removed:?}");
    }
}
