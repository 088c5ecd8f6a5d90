//! Ping round-trip latency against a real `ctxd serve` process, over its real Unix socket.
//!
//! Run it with `cargo bench -p ctxd --bench ping` (a release build; no harness, it prints a
//! table). It starts the `ctxd` binary of this package in a fresh temporary directory with its
//! own `--data` and `--socket`, learns that it is ready through systemd's `NOTIFY_SOCKET`
//! (`READY=1`, no sleeping or polling), and then measures `ping` two ways:
//!
//! - `via=client`: through the `ctxd-client` crate (`Client::ping` on a multi-threaded tokio
//!   runtime, one task per client), which is what applications see;
//! - `via=raw`: `{"op":"ping"}\n` written to a blocking `std` `UnixStream` and one reply line read
//!   back (one thread per client), which isolates the daemon's own cost.
//!
//! Each is run with 1 client (20,000 pings) and with 8 concurrent clients (8 × 10,000), every
//! client on its own connection sending its pings one after another and waiting for each reply,
//! after 2,000 warm-up pings per client. Each round trip is timed with `Instant`; the table gives
//! p50, p90, p99, p99.9, the mean and the requests per second over the measured phase. For
//! reference it also times a bare socket echo (two threads of this process, no daemon), and
//! prints the target beside the single-client figures: p50 ≤ 40 µs.
//!
//! At the end the daemon is stopped with the `shutdown` operation and waited for. Starting and
//! stopping the daemon is shared with the other benchmarks (`common/mod.rs`).

#[cfg(unix)]
mod common;

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the ping benchmark needs Unix sockets and NOTIFY_SOCKET; skipped");
}

#[cfg(unix)]
mod bench {
    use crate::common::{Daemon, contains, nanos, percentile};
    use ctxd_client::Client;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::Path;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    /// Unmeasured pings each client sends first.
    const WARMUP: usize = 2_000;
    /// Measured pings of the single client.
    const SINGLE: usize = 20_000;
    /// Concurrent clients in the second round.
    const CLIENTS: usize = 8;
    /// Measured pings of each of the concurrent clients.
    const PER_CLIENT: usize = 10_000;
    /// The single-client p50 to compare with, in microseconds.
    const TARGET_P50_US: f64 = 40.0;
    /// A bare socket round trip on the reference machine, in microseconds.
    const BARE_REFERENCE_US: f64 = 17.0;
    /// The raw request line.
    const PING: &[u8] = b"{\"op\":\"ping\"}\n";

    pub(crate) fn main() {
        let daemon = Daemon::start();
        println!(
            "ctxd ping benchmark: {} (pid {}), socket {}",
            env!("CARGO_BIN_EXE_ctxd"),
            daemon.pid(),
            daemon.socket().display()
        );
        println!(
            "target: p50 <= {TARGET_P50_US} µs with 1 client \
             (a bare socket round trip on the reference machine is about {BARE_REFERENCE_US} µs)"
        );
        println!();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot build the tokio runtime");

        let bare = bare_echo(daemon.dir());
        report("echo", 1, "bare", &bare, None);

        let one_client = via_client(&runtime, daemon.socket(), 1, SINGLE);
        report("ping", 1, "client", &one_client, Some(TARGET_P50_US));
        let one_raw = via_raw(daemon.socket(), 1, SINGLE);
        report("ping", 1, "raw", &one_raw, Some(TARGET_P50_US));
        let many_client = via_client(&runtime, daemon.socket(), CLIENTS, PER_CLIENT);
        report("ping", CLIENTS, "client", &many_client, None);
        let many_raw = via_raw(daemon.socket(), CLIENTS, PER_CLIENT);
        report("ping", CLIENTS, "raw", &many_raw, None);

        println!();
        let p50_client = Summary::of(&one_client).p50;
        let p50_raw = Summary::of(&one_raw).p50;
        println!(
            "target p50 <= {TARGET_P50_US} µs (1 client): via=client {} ({}), via=raw {} ({}); \
             bare socket echo here {}",
            us(p50_client),
            verdict(p50_client, TARGET_P50_US),
            us(p50_raw),
            verdict(p50_raw, TARGET_P50_US),
            us(Summary::of(&bare).p50),
        );

        drop(runtime);
        let status = daemon.stop();
        println!("daemon stopped: {status}");
    }

    /// The samples of one round: every client's round trips and the measured phase's span.
    struct Round {
        /// Round trips in nanoseconds, all clients together.
        samples: Vec<u64>,
        /// From the first client's first measured ping to the last client's last reply.
        wall: Duration,
    }

    /// One client's measured phase.
    struct ClientRun {
        samples: Vec<u64>,
        start: Instant,
        end: Instant,
    }

    impl Round {
        fn of(runs: Vec<ClientRun>) -> Round {
            let start = runs
                .iter()
                .map(|r| r.start)
                .min()
                .expect("a round has at least one client");
            let end = runs
                .iter()
                .map(|r| r.end)
                .max()
                .expect("a round has at least one client");
            Round {
                samples: runs.into_iter().flat_map(|r| r.samples).collect(),
                wall: end - start,
            }
        }
    }

    /// `clients` connections through `ctxd_client::Client`, one tokio task each.
    fn via_client(
        runtime: &tokio::runtime::Runtime,
        socket: &Path,
        clients: usize,
        pings: usize,
    ) -> Round {
        let barrier = Arc::new(tokio::sync::Barrier::new(clients));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let socket = socket.to_owned();
                let barrier = Arc::clone(&barrier);
                runtime.spawn(async move {
                    let client = Client::connect_to(socket)
                        .await
                        .expect("cannot connect to the daemon through ctxd-client");
                    for _ in 0..WARMUP {
                        client.ping().await.expect("warm-up ping failed");
                    }
                    barrier.wait().await;
                    let mut samples = Vec::with_capacity(pings);
                    let start = Instant::now();
                    for _ in 0..pings {
                        let sent = Instant::now();
                        client.ping().await.expect("ping failed");
                        samples.push(nanos(sent.elapsed()));
                    }
                    let end = Instant::now();
                    ClientRun {
                        samples,
                        start,
                        end,
                    }
                })
            })
            .collect();
        let runs = runtime.block_on(async {
            let mut runs = Vec::with_capacity(tasks.len());
            for task in tasks {
                runs.push(task.await.expect("a client task panicked"));
            }
            runs
        });
        Round::of(runs)
    }

    /// `clients` blocking connections speaking JSON lines directly, one thread each.
    fn via_raw(socket: &Path, clients: usize, pings: usize) -> Round {
        let barrier = Arc::new(Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let socket = socket.to_owned();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let stream =
                        UnixStream::connect(&socket).expect("cannot connect to the daemon");
                    let mut raw = RawConnection::new(stream);
                    for _ in 0..WARMUP {
                        raw.ping();
                    }
                    barrier.wait();
                    let mut samples = Vec::with_capacity(pings);
                    let start = Instant::now();
                    for _ in 0..pings {
                        samples.push(raw.ping());
                    }
                    let end = Instant::now();
                    ClientRun {
                        samples,
                        start,
                        end,
                    }
                })
            })
            .collect();
        Round::of(
            threads
                .into_iter()
                .map(|t| t.join().expect("a raw client thread panicked"))
                .collect(),
        )
    }

    /// A blocking JSON-lines connection.
    struct RawConnection {
        writer: UnixStream,
        reader: BufReader<UnixStream>,
        line: Vec<u8>,
    }

    impl RawConnection {
        fn new(stream: UnixStream) -> RawConnection {
            let reader = BufReader::new(stream.try_clone().expect("cannot clone the socket"));
            RawConnection {
                writer: stream,
                reader,
                line: Vec::with_capacity(256),
            }
        }

        /// Sends one ping, reads its reply line and returns the round trip in nanoseconds.
        fn ping(&mut self) -> u64 {
            self.line.clear();
            let sent = Instant::now();
            self.writer.write_all(PING).expect("cannot send a ping");
            self.reader
                .read_until(b'\n', &mut self.line)
                .expect("cannot read a ping reply");
            let elapsed = nanos(sent.elapsed());
            assert!(
                self.line.ends_with(b"\n") && contains(&self.line, b"\"ok\":true"),
                "unexpected reply to ping: {:?}",
                String::from_utf8_lossy(&self.line)
            );
            elapsed
        }
    }

    /// The floor: a line echoed by another thread of this process over a socket pair, with the
    /// same blocking reads and writes as `via=raw` but no daemon.
    fn bare_echo(dir: &Path) -> Round {
        let path = dir.join("echo.sock");
        let listener = UnixListener::bind(&path).expect("cannot bind the echo socket");
        let echo = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("cannot accept the echo client");
            let mut writer = stream.try_clone().expect("cannot clone the echo socket");
            let mut reader = BufReader::new(stream);
            let mut line = Vec::with_capacity(256);
            loop {
                line.clear();
                if reader
                    .read_until(b'\n', &mut line)
                    .expect("echo read failed")
                    == 0
                {
                    return;
                }
                writer
                    .write_all(b"{\"ok\":true,\"result\":{}}\n")
                    .expect("echo write failed");
            }
        });
        let stream = UnixStream::connect(&path).expect("cannot connect to the echo socket");
        let mut raw = RawConnection::new(stream);
        for _ in 0..WARMUP {
            raw.ping();
        }
        let mut samples = Vec::with_capacity(SINGLE);
        let start = Instant::now();
        for _ in 0..SINGLE {
            samples.push(raw.ping());
        }
        let end = Instant::now();
        drop(raw);
        echo.join().expect("the echo thread panicked");
        Round::of(vec![ClientRun {
            samples,
            start,
            end,
        }])
    }

    /// Percentiles and throughput of one round.
    struct Summary {
        n: usize,
        p50: u64,
        p90: u64,
        p99: u64,
        p999: u64,
        mean: f64,
        rps: f64,
    }

    impl Summary {
        fn of(round: &Round) -> Summary {
            let mut sorted = round.samples.clone();
            sorted.sort_unstable();
            let n = sorted.len();
            let rank = |p: f64| percentile(&sorted, p);
            Summary {
                n,
                p50: rank(0.50),
                p90: rank(0.90),
                p99: rank(0.99),
                p999: rank(0.999),
                mean: sorted.iter().map(|&s| s as f64).sum::<f64>() / n as f64,
                rps: n as f64 / round.wall.as_secs_f64(),
            }
        }
    }

    fn report(what: &str, clients: usize, via: &str, round: &Round, target_us: Option<f64>) {
        let s = Summary::of(round);
        let target = target_us.map_or_else(String::new, |t| {
            format!("  [target p50 <= {t} µs: {}]", verdict(s.p50, t))
        });
        println!(
            "{what}  clients={clients}  via={via:<6}  n={:<6}  p50={:>9}  p90={:>9}  p99={:>9}  \
             p999={:>9}  mean={:>9}  rps={:>7.0}{target}",
            s.n,
            us(s.p50),
            us(s.p90),
            us(s.p99),
            us(s.p999),
            format!("{:.1}µs", s.mean / 1_000.0),
            s.rps,
        );
    }

    fn verdict(p50_nanos: u64, target_us: f64) -> &'static str {
        if p50_nanos as f64 / 1_000.0 <= target_us {
            "met"
        } else {
            "MISSED"
        }
    }

    fn us(nanos: u64) -> String {
        format!("{:.1}µs", nanos as f64 / 1_000.0)
    }
}
