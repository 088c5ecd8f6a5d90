//! The bounds of a busy or hostile client, measured against a real `ctxd serve` (release build)
//! over its socket: `cargo bench -p ctxd --bench bounds`.
//!
//! - **Memory per request.** Peak resident memory of the daemon (`VmHWM`, reset before each
//!   measurement) above what it held before, for one and for eight concurrent upserts of about
//!   30 MiB each, in three shapes: text-heavy (1,000 documents with a 384-dimensional vector
//!   and ~30 KB of text), number-heavy (1,000 documents with a 2,048-dimensional vector: numbers
//!   are what a JSON tree inflates most) and hostile (one 31 MiB vector of zeros, refused),
//!   each case on a fresh daemon. The rise includes what the first writes allocate for good
//!   (SQLite's page cache, FTS5's buffers). Printed as MiB and as a multiple of one line.
//! - **`get` by ids.** p50 of `get` with 1,000, 10,000 and 40,000 ids, every one of them
//!   existing, and 10,000 and 40,000 ids of which a tenth exist (the reported case: 4,000 hits
//!   among 40,000 ids), with the ratio of the last two (4 is linear).

#[cfg(unix)]
mod common;

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the bounds benchmark needs Unix sockets and procfs; skipped");
}

#[cfg(unix)]
mod bench {
    use crate::common::{Daemon, nanos, percentile};
    use std::fmt::Write as _;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    const MIB: f64 = (1 << 20) as f64;
    /// The size of each large upsert line.
    const LINE: usize = 30 << 20;
    /// Concurrent upserts in the second round.
    const CONCURRENT: usize = 8;
    /// Timed `get`s per size.
    const GETS: usize = 15;

    /// One JSON-lines connection.
    struct Raw {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
    }

    impl Raw {
        fn connect(daemon: &Daemon) -> Raw {
            let stream = UnixStream::connect(daemon.socket()).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(300)))
                .expect("timeout");
            Raw {
                reader: BufReader::new(stream.try_clone().expect("clone")),
                writer: stream,
            }
        }

        fn call(&mut self, line: &str) -> String {
            self.writer.write_all(line.as_bytes()).expect("write");
            self.writer.write_all(b"\n").expect("write");
            let mut reply = String::new();
            self.reader.read_line(&mut reply).expect("read");
            reply
        }
    }

    fn ok(reply: &str) -> bool {
        reply.contains("\"ok\":true")
    }

    /// An upsert line of `documents` documents into `collection`, each with a vector of
    /// `dimension` numbers of 14 characters and text filling it up to about `LINE` bytes.
    fn upsert_line(collection: &str, prefix: &str, documents: usize, dimension: usize) -> String {
        let vector: Vec<String> = (0..dimension)
            .map(|d| format!("{:.11}", (d as f64 * 0.37).sin() / 20.0))
            .collect();
        let vector = vector.join(",");
        let per_doc = LINE / documents;
        let text_len = per_doc.saturating_sub(vector.len() + 80).max(16);
        let text: String = "otters hold hands while they sleep "
            .chars()
            .cycle()
            .take(text_len)
            .collect();
        let mut line = String::with_capacity(LINE + 4096);
        let _ = write!(
            line,
            r#"{{"op":"upsert","collection":"{collection}","documents":["#
        );
        for i in 0..documents {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(
                line,
                r#"{{"id":"{prefix}{i}","text":"{text}","vector":[{vector}],"metadata":{{"i":{i}}}}}"#
            );
        }
        line.push_str("]}");
        line
    }

    fn hostile_line() -> String {
        let zeros = (31 << 20) / 2;
        let mut line = String::with_capacity(32 << 20);
        line.push_str(r#"{"op":"upsert","collection":"numbers","documents":[{"id":"a","vector":["#);
        line.push_str(&"0,".repeat(zeros));
        line.push_str("0]}]}");
        line
    }

    /// Peak memory above the memory before, while `send` runs.
    fn peak_rise(daemon: &Daemon, send: impl FnOnce()) -> f64 {
        let before = daemon.memory().expect("procfs").rss;
        assert!(daemon.reset_peak_memory(), "cannot reset the peak memory");
        send();
        let peak = daemon.peak_memory().expect("procfs");
        peak.saturating_sub(before) as f64
    }

    pub fn main() {
        println!("bounds: memory per request and get by ids (ctxd release build, this machine)");
        memory();
        let daemon = Daemon::start();
        get(&daemon);
        daemon.stop();
    }

    /// Each case on a fresh daemon, so one case's freed memory (which the allocator keeps) does
    /// not hide the next one's.
    fn memory() {
        println!();
        println!("peak resident memory above a fresh daemon's, during ~30 MiB upsert lines:");
        println!("  {:<44} {:>10} {:>12}", "", "+MiB", "× one line");
        let shapes: [(&str, usize, &str); 3] = [
            ("text", 384, "text-heavy (384-d, ~30 KB text)"),
            ("numbers", 2048, "number-heavy (2048-d vectors)"),
            ("numbers", 0, "hostile (31 MiB of zeros, refused)"),
        ];
        for (collection, dimension, shape) in shapes {
            for concurrent in [1, CONCURRENT] {
                let daemon = Daemon::start();
                let mut raw = Raw::connect(&daemon);
                let reply = raw.call(&format!(
                    r#"{{"op":"create_collection","name":"{collection}","dimension":{}}}"#,
                    if dimension == 0 { 2048 } else { dimension }
                ));
                assert!(ok(&reply), "{reply}");
                let lines: Vec<String> = (0..concurrent)
                    .map(|c| match dimension {
                        0 => hostile_line(),
                        d => upsert_line(collection, &format!("c{c}-"), 1000, d),
                    })
                    .collect();
                let mut connections: Vec<Raw> =
                    (0..concurrent).map(|_| Raw::connect(&daemon)).collect();
                let started = Instant::now();
                let rise = peak_rise(&daemon, || {
                    std::thread::scope(|scope| {
                        for (raw, line) in connections.iter_mut().zip(&lines) {
                            scope.spawn(move || {
                                let reply = raw.call(line);
                                assert!(
                                    ok(&reply) || (dimension == 0 && reply.contains("bad_request")),
                                    "{}",
                                    &reply[..reply.len().min(300)]
                                );
                            });
                        }
                    });
                });
                println!(
                    "  {concurrent} × {shape:<40} {:>10.1} {:>12.2}   ({:.2} s)",
                    rise / MIB,
                    rise / lines[0].len() as f64,
                    started.elapsed().as_secs_f64()
                );
                drop(connections);
                drop(raw);
                daemon.stop();
            }
        }
    }

    fn get(daemon: &Daemon) {
        let mut raw = Raw::connect(daemon);
        let reply = raw.call(r#"{"op":"create_collection","name":"ids","dimension":2}"#);
        assert!(ok(&reply), "{reply}");
        for batch in 0..40 {
            let documents: Vec<String> = (batch * 1000..(batch + 1) * 1000)
                .map(|i| format!(r#"{{"id":"d{i}","text":"document {i}"}}"#))
                .collect();
            let reply = raw.call(&format!(
                r#"{{"op":"upsert","collection":"ids","documents":[{}]}}"#,
                documents.join(",")
            ));
            assert!(ok(&reply), "{reply}");
        }
        println!();
        println!("get by ids, 40,000 documents ({GETS} gets each, p50):");
        let mut p50 = Vec::new();
        // Every tenth of `n` ids exists, newest first (the reported shape).
        let sparse = |n: usize| -> Vec<String> {
            (0..n)
                .rev()
                .map(|i| {
                    if i % 10 == 0 {
                        format!("d{}", i / 10)
                    } else {
                        format!("none-{i}")
                    }
                })
                .collect()
        };
        let cases: [(&str, Vec<String>); 5] = [
            (
                "1,000 ids, all found",
                (0..1000).map(|i| format!("d{i}")).collect(),
            ),
            (
                "10,000 ids, all found",
                (0..10_000).map(|i| format!("d{i}")).collect(),
            ),
            (
                "40,000 ids, all found (10,000 returned)",
                (0..40_000).map(|i| format!("d{i}")).collect(),
            ),
            ("10,000 ids, 1,000 found", sparse(10_000)),
            ("40,000 ids, 4,000 found", sparse(40_000)),
        ];
        for (what, ids) in cases {
            let line = format!(
                r#"{{"op":"get","collection":"ids","ids":{},"limit":10000}}"#,
                serde_json::to_string(&ids).expect("json")
            );
            let mut samples: Vec<u64> = (0..GETS)
                .map(|_| {
                    let started = Instant::now();
                    let reply = raw.call(&line);
                    let took = nanos(started.elapsed());
                    assert!(ok(&reply), "{}", &reply[..reply.len().min(200)]);
                    took
                })
                .collect();
            samples.sort_unstable();
            let median = percentile(&samples, 0.5) as f64 / 1e6;
            p50.push(median);
            println!("  {what:<42} {median:>9.2} ms");
        }
        println!(
            "  4× the ids and hits (40k/4k against 10k/1k): {:.2}× the time (linear is 4; it was \
             12–25×)",
            p50[4] / p50[3]
        );
    }
}
