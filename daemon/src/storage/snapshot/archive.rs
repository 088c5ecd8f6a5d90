//! A snapshot as one tar stream: what `ctxd snapshot -`, `ctxd snapshot FILE.tar`,
//! `snapshot_stream` and tar retention write, and what `ctxd restore` and `ctxd snapshot verify`
//! read ([`stage::stage_archive`](super::stage::stage_archive)).
//!
//! The layout (ustar, uncompressed, no directory entries):
//!
//! ```text
//! manifest.json       the manifest (generation, versions, every file's size and SHA-256)
//! ctxd.json           then the store files, in the manifest's order
//! text.sqlite3
//! vectors/data.mdb
//! ```
//!
//! The manifest comes first, so a reader knows every size and checksum before the first byte
//! of data and verifies each file while it streams past; `mkdir snap && tar -xf x.tar -C snap`
//! gives a snapshot directory. Every member is a regular file, mode 0600, owned by uid/gid 0,
//! with the snapshot's time as its modification time, so the stream's length is known before
//! it is written ([`archive_len`]).

use super::manifest::{FILE_NAME as MANIFEST, Manifest};
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

/// A tar block.
const BLOCK: u64 = 512;

/// The bytes of the tar of the snapshot in `dir` whose manifest file is `manifest_len` bytes:
/// a header block per member, each member's data padded to a block, and the two zero blocks
/// that end an archive.
pub fn archive_len(manifest_len: u64, manifest: &Manifest) -> u64 {
    let member = |bytes: u64| BLOCK + bytes.div_ceil(BLOCK) * BLOCK;
    member(manifest_len) + manifest.files.iter().map(|f| member(f.bytes)).sum::<u64>() + 2 * BLOCK
}

/// Writes the snapshot directory `dir` (already sealed: its manifest written) to `out` as the
/// tar of this module's layout; returns the bytes written, which are
/// [`archive_len`]`(manifest.json's size, manifest)`. A file whose size differs from the
/// manifest's is an error (nothing else writes into a snapshot being streamed, so that is a
/// bug or a failing disk, and the stream must not claim a snapshot it does not hold).
pub fn write(dir: &Path, manifest: &Manifest, out: impl Write) -> io::Result<u64> {
    let mut out = Counting {
        inner: out,
        bytes: 0,
    };
    let mtime = manifest.created_at / 1000;
    {
        let mut builder = tar::Builder::new(&mut out);
        let manifest_bytes = fs::read(dir.join(MANIFEST))?;
        append(
            &mut builder,
            MANIFEST,
            manifest_bytes.len() as u64,
            mtime,
            &manifest_bytes[..],
        )?;
        for file in &manifest.files {
            let path = dir.join(&file.path);
            let source = fs::File::open(&path)?;
            let len = source.metadata()?.len();
            if len != file.bytes {
                return Err(io::Error::other(format!(
                    "{} is {len} bytes, the manifest says {}",
                    path.display(),
                    file.bytes
                )));
            }
            append(&mut builder, &file.path, len, mtime, source.take(len))?;
        }
        builder.finish()?;
    }
    out.inner.flush()?;
    Ok(out.bytes)
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    len: u64,
    mtime: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    builder.append_data(&mut header, path, data)
}

/// Passes at most `left` bytes to `inner`: a stream never carries more than its reply
/// announced, which the client would read as its next reply.
pub struct Limited<W> {
    /// Where the bytes go.
    pub inner: W,
    /// How many more may.
    pub left: u64,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(
                "the tar is longer than announced; the stream is cut short",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts what passes through to `inner`.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxd_proto::SnapshotFile;

    /// The announced length is what `write` writes, for sizes on and off block boundaries.
    #[test]
    fn the_announced_length_is_the_written_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("vectors")).expect("mkdir");
        let sizes = [
            ("ctxd.json", 79),
            ("text.sqlite3", 4096),
            ("vectors/data.mdb", 1),
        ];
        let mut files = Vec::new();
        for (path, bytes) in sizes {
            fs::write(dir.path().join(path), vec![7u8; bytes]).expect("write");
            files.push(SnapshotFile {
                path: path.to_owned(),
                bytes: bytes as u64,
                sha256: "ab".repeat(32),
            });
        }
        let manifest = Manifest {
            format: 1,
            generation: 3,
            created_at: 1_796_364_900_000,
            ctxd_version: "0".into(),
            sqlite_version: "3".into(),
            files,
        };
        manifest.write(dir.path()).expect("manifest");
        let manifest_len = fs::metadata(dir.path().join(MANIFEST)).expect("meta").len();
        let mut out = Vec::new();
        let written = write(dir.path(), &manifest, &mut out).expect("write");
        assert_eq!(written, out.len() as u64);
        assert_eq!(written, archive_len(manifest_len, &manifest));
        // A file that differs from the manifest is an error, not a wrong stream.
        fs::write(dir.path().join("ctxd.json"), b"short").expect("write");
        assert!(write(dir.path(), &manifest, io::sink()).is_err());
    }
}
