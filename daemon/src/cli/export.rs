//! `ctxd export`: every document of a collection as JSON lines on stdout, in the shape `ctxd
//! import` reads, so `export | import` round-trips.
//!
//! Documents are read with `get` in pages of [`PAGE`] by `limit`/`offset`. The daemon has to
//! skip `offset` rows for each page, so a full export costs about n²/(2·PAGE) row visits: fine
//! for the collections ctxd is for (up to a few hundred thousand documents), quadratic beyond.
//! A keyset cursor in `get` (continue after an id) would make it linear; protocol 1 has none.
//! The export is not a snapshot: writes made meanwhile may shift pages (use `ctxd snapshot` for
//! a consistent copy).

use super::args::ExportArgs;
use super::output::{error_code, exit};
use ctxd_client::Client;
use ctxd_proto::{Field, Get};
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

/// Documents per `get`: large enough that per-request overhead vanishes, small enough that a
/// page of 384-dimension vectors stays a few MiB.
const PAGE: u32 = 1000;

/// Runs `ctxd export`.
pub async fn run(client: &Client, args: ExportArgs, out: super::output::Output) -> ExitCode {
    let mut include = vec![Field::Text, Field::Metadata];
    if args.include_vectors {
        include.push(Field::Vector);
    }
    let mut stdout = io::BufWriter::with_capacity(1 << 20, io::stdout());
    let mut offset = 0_u64;
    // Documents exported without text or vector cannot be imported again.
    let mut bare = 0_u64;
    loop {
        let params = Get {
            collection: args.collection.clone(),
            ids: None,
            filter: args.filter.clone(),
            limit: Some(PAGE),
            offset: Some(offset),
            include: Some(include.clone()),
            vector_encoding: None,
            text_filter: None,
        };
        let page = match client.get(params).await {
            Ok(page) => page.documents,
            Err(e) => {
                // Keep what was exported so far: it is valid JSON lines.
                let _ = stdout.flush();
                eprintln!("ctxd: export stopped after {offset} documents: {e}");
                return error_code(&e);
            }
        };
        for document in &page {
            bare += u64::from(document.text.is_none() && document.vector.is_none());
            let written = serde_json::to_writer(&mut stdout, document)
                .map_err(io::Error::from)
                .and_then(|()| stdout.write_all(b"\n"));
            if let Err(e) = written {
                return write_failed(&e);
            }
        }
        offset += page.len() as u64;
        if page.len() < PAGE as usize {
            break;
        }
    }
    if let Err(e) = stdout.flush() {
        return write_failed(&e);
    }
    if bare > 0 {
        eprintln!(
            "ctxd: warning: {bare} exported documents have neither text nor vector and cannot be \
             imported again; export with --include-vectors"
        );
    }
    // Stdout is the data; a count on a terminal's stderr helps a person and bothers no pipe.
    if !out.json && io::stderr().is_terminal() {
        eprintln!("exported {offset} documents from `{}`", args.collection);
    }
    ExitCode::from(exit::OK)
}

/// A reader that went away (`ctxd export … | head`) is a normal end; other write errors fail.
fn write_failed(error: &io::Error) -> ExitCode {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::from(exit::OK);
    }
    eprintln!("ctxd: cannot write the export to stdout: {error}");
    ExitCode::from(exit::FAILED)
}
