//! `ctxd snapshot DEST` (a consistent, verified copy of the data directory, taken while the
//! daemon serves: a directory, a tar file, a tar stream on stdout, or an entry of a directory
//! of kept snapshots), `ctxd snapshot verify` (a snapshot checked offline) and `ctxd check`
//! (both stores verified, online or on the files).

use super::args::{SnapshotArgs, VerifyArgs};
use super::output::{Output, exit, fail};
use crate::storage::snapshot::manifest::Manifest;
use crate::storage::snapshot::stage::{self, Staged};
use ctxd_client::{Client, Error};
use ctxd_proto::{Snapshot, SnapshotFile, SnapshotFormat, SnapshotStream};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--format`'s value (validated by clap) as the protocol's.
pub fn format(value: Option<&str>) -> SnapshotFormat {
    match value {
        Some("tar") => SnapshotFormat::Tar,
        _ => SnapshotFormat::Dir,
    }
}

/// `ctxd snapshot`: a relative DEST (or `--tmp`) is taken from the caller's working directory
/// (the daemon's would mean nothing to the user).
pub async fn run(client: &Client, args: SnapshotArgs, out: Output) -> ExitCode {
    let Some(dest) = args.dest else {
        return ExitCode::from(exit::USAGE);
    };
    let tmp_dir = match args.tmp_dir.as_deref().map(absolute).transpose() {
        Ok(tmp) => tmp,
        Err(code) => return code,
    };
    if dest == Path::new("-") {
        if args.keep.is_some() || args.format.as_deref() == Some("dir") {
            eprintln!(
                "ctxd: `-` is a tar stream on stdout: it takes neither --keep nor --format dir"
            );
            return ExitCode::from(exit::USAGE);
        }
        return stream(client, tmp_dir).await;
    }
    let dest = match absolute(&dest) {
        Ok(dest) => dest,
        Err(code) => return code,
    };
    let format = match args.format.as_deref() {
        Some(value) => format(Some(value)),
        None if args.keep.is_none() && Path::new(&dest).extension().is_some_and(|e| e == "tar") => {
            SnapshotFormat::Tar
        }
        None => SnapshotFormat::Dir,
    };
    let params = Snapshot {
        dest,
        format: Some(format),
        keep: args.keep,
        tmp_dir,
    };
    match client.call(params).await {
        Ok(snapshot) => {
            out.print(&snapshot, |s| {
                let mut text = format!("snapshot at generation {} in {}\n", s.generation, s.path);
                text.push_str(&files_table(&s.files));
                text
            });
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// `ctxd snapshot -`: the tar stream to stdout; what it was to stderr.
async fn stream(client: &Client, tmp_dir: Option<String>) -> ExitCode {
    let mut stdout = tokio::io::stdout();
    match client
        .snapshot_to(SnapshotStream { tmp_dir }, &mut stdout)
        .await
    {
        Ok(streamed) => {
            eprintln!(
                "ctxd: snapshot at generation {} written to stdout ({} bytes of tar)",
                streamed.generation, streamed.bytes
            );
            ExitCode::from(exit::OK)
        }
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            eprintln!(
                "ctxd: the reader closed the pipe before the snapshot's end; what it received \
                 is not a snapshot (the daemon removed its temporary copy)"
            );
            ExitCode::from(exit::FAILED)
        }
        Err(e) => fail(&e),
    }
}

fn absolute(path: &Path) -> Result<String, ExitCode> {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .map_err(|e| {
            eprintln!("ctxd: cannot resolve {}: {e}", path.display());
            ExitCode::from(exit::USAGE)
        })
}

fn files_table(files: &[SnapshotFile]) -> String {
    let mut text = String::new();
    for file in files {
        let _ = writeln!(
            text,
            "  {:<18} {:>12} bytes  sha256 {}",
            file.path, file.bytes, file.sha256
        );
    }
    text
}

/// Where a snapshot to restore or verify comes from.
pub enum Source {
    /// A snapshot directory.
    Dir(PathBuf),
    /// A tar file.
    Tar(PathBuf),
    /// A tar stream on stdin.
    Stdin,
}

impl Source {
    /// `-`, a file (a tar), or a directory.
    pub fn of(path: &Path) -> Source {
        if path == Path::new("-") {
            Source::Stdin
        } else if path.is_file() {
            Source::Tar(path.to_owned())
        } else {
            Source::Dir(path.to_owned())
        }
    }

    /// Copies the snapshot into the new directory `staged`, verifying it (blocking).
    pub fn stage(&self, staged: &Path) -> Result<(Manifest, Staged), String> {
        match self {
            Source::Dir(dir) => {
                let manifest = Manifest::read(dir)?;
                let held = stage::stage(dir, &manifest, staged)?;
                Ok((manifest, held))
            }
            Source::Tar(file) => {
                let archive = std::fs::File::open(file)
                    .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
                stage::stage_archive(std::io::BufReader::with_capacity(1 << 20, archive), staged)
            }
            Source::Stdin => stage::stage_archive(std::io::stdin().lock(), staged),
        }
    }
}

/// What `ctxd snapshot verify --json` prints.
#[derive(Debug, Serialize)]
struct Verified {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    documents: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// `ctxd snapshot verify`: staged into a temporary directory, checked, removed.
pub async fn verify(args: VerifyArgs, out: Output) -> ExitCode {
    let source = Source::of(&args.snapshot);
    let tmp = args.tmp_dir.unwrap_or_else(std::env::temp_dir);
    let staged = tmp.join(format!(
        ".ctxd-verify-{}-{}",
        std::process::id(),
        crate::clock::unix_millis()
    ));
    let checked = {
        let staged = staged.clone();
        tokio::task::spawn_blocking(move || {
            let result = source.stage(&staged);
            // Staging removes its directory when it fails; a valid copy goes too.
            if result.is_ok() {
                let _ = std::fs::remove_dir_all(&staged);
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(format!("the verification task failed: {e}")))
    };
    let verified = match &checked {
        Ok((_, held)) => Verified {
            valid: true,
            generation: Some(held.generation),
            collections: Some(held.collections),
            documents: Some(held.documents),
            problem: None,
        },
        Err(why) => Verified {
            valid: false,
            generation: None,
            collections: None,
            documents: None,
            problem: Some(why.clone()),
        },
    };
    let name = args.snapshot.display().to_string();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.print(&verified, |v| match &v.problem {
        None => format!(
            "{name} is a valid snapshot: generation {}, {}, {}; every file matches its \
             manifest and the data directory passes every check\n",
            v.generation.unwrap_or(0),
            plural(v.collections.unwrap_or(0), "collection", "collections"),
            plural(v.documents.unwrap_or(0), "document", "documents"),
        ),
        Some(why) => format!("{name} is NOT a valid snapshot: {why}\n"),
    });
    ExitCode::from(if verified.valid {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// `ctxd check`: through the daemon, or with `--data` directly on the files.
pub async fn check(client: Option<&Client>, args: super::args::CheckArgs, out: Output) -> ExitCode {
    let result = match (&args.data, client) {
        (Some(dir), _) => match crate::storage::check_offline(dir) {
            Ok(result) => result,
            Err(e) => {
                eprintln!("ctxd: cannot check {}: {e}", dir.display());
                return ExitCode::from(exit::FAILED);
            }
        },
        (None, Some(client)) => match client.check().await {
            Ok(result) => result,
            Err(e) => return fail(&e),
        },
        (None, None) => return ExitCode::from(exit::FAILED),
    };
    out.print(&result, |r| {
        let mut text = String::from(if r.passed { "passed\n" } else { "FAILED\n" });
        for (part, report) in [
            ("text", &r.details.text),
            ("vectors", &r.details.vectors),
            ("consistency", &r.details.consistency),
        ] {
            let _ = writeln!(
                text,
                "  {part:<12} {}",
                if report.ok { "ok" } else { "problems:" }
            );
            for problem in &report.problems {
                let _ = writeln!(text, "    - {problem}");
            }
        }
        text
    });
    ExitCode::from(if result.passed {
        exit::OK
    } else {
        exit::FAILED
    })
}
