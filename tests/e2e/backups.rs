//! Backups that stream: `ctxd snapshot -` and `FILE.tar`, `ctxd restore` and `ctxd snapshot
//! verify` of a tar, retention (`--keep`) and the daemon's schedule (`--snapshot-every`).

use crate::data::{create, doc, put};
use crate::support::{CTXD, Daemon, Scratch, Start, ctxd, eventually};
use crate::writers::{WriteLoad, assert_holds};
use ctxd_proto::{Count, SnapshotStream};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count(collection: &str) -> Count {
    Count {
        collection: collection.to_owned(),
        filter: None,
        text_filter: None,
    }
}

/// `ctxd --socket S ARGS...`.
fn cli(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--socket", daemon.socket.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    ctxd(&all)
}

/// `ctxd ARGS...` with `input` on stdin.
fn cli_with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(CTXD)
        .args(args)
        .env_remove("CTXD_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ctxd");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A refusal may come before all of it is read: a write error then is expected.
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

/// A daemon holding `c` (dimension 4) with `n` documents of about 1 KB of text each.
async fn filled(scratch: &Scratch, n: usize) -> (Daemon, ctxd_client::Client) {
    let daemon = Daemon::start(scratch);
    let client = daemon.client().await;
    create(&client, "c", 4).await;
    let text = "otters hold hands while they sleep in the kelp forest ".repeat(20);
    for start in (0..n).step_by(1000) {
        let documents = (start..n.min(start + 1000))
            .map(|i| {
                doc(
                    &format!("d{i}"),
                    Some(&format!("{text} {i}")),
                    Some(vec![i as f32, 1.0, 0.5, 0.25]),
                    json!({"n": i}),
                )
            })
            .collect();
        put(&client, "c", documents).await;
    }
    (daemon, client)
}

/// The members of a tar, in order, with their sizes.
fn members(archive: &[u8]) -> Vec<(String, u64)> {
    let mut archive = tar::Archive::new(archive);
    archive
        .entries()
        .expect("a tar")
        .map(|entry| {
            let entry = entry.expect("an entry");
            let path = entry.path().expect("a path").display().to_string();
            (path, entry.header().size().expect("a size"))
        })
        .collect()
}

/// Where the data of member `name` begins in `archive`.
fn data_offset(archive: &[u8], name: &str) -> usize {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().expect("a tar") {
        let entry = entry.expect("an entry");
        if entry.path().expect("a path") == Path::new(name) {
            return entry.raw_file_position() as usize;
        }
    }
    panic!("no member {name}");
}

/// Names in `dir` that are kept snapshots (`ctxd-...`), sorted.
fn kept(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the snapshot directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ctxd-"))
        .collect();
    names.sort();
    names
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_streamed_snapshot_is_a_tar_of_the_documented_members_that_verifies() {
    let scratch = Scratch::new();
    let (daemon, client) = filled(&scratch, 300).await;
    let generation = client.status().await.expect("status").generation;

    // `ctxd snapshot - | tar -t`
    let mut producer = Command::new(CTXD)
        .args([
            "--socket",
            daemon.socket.to_str().expect("utf-8"),
            "snapshot",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctxd snapshot -");
    let listing = Command::new("tar")
        .arg("-t")
        .stdin(producer.stdout.take().expect("stdout"))
        .output()
        .expect("tar -t");
    let produced = producer.wait_with_output().expect("wait");
    assert!(produced.status.success(), "{produced:?}");
    assert!(listing.status.success(), "{listing:?}");
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "manifest.json",
            "ctxd.json",
            "text.sqlite3",
            "vectors/data.mdb"
        ]
    );
    let said = String::from_utf8_lossy(&produced.stderr);
    assert!(said.contains(&format!("generation {generation}")), "{said}");

    // The client's stream, and `ctxd snapshot FILE.tar`, hold the same: sizes and checksums
    // as the reply and the manifest say.
    let mut streamed: Vec<u8> = Vec::new();
    let header = client
        .snapshot_to(SnapshotStream::default(), &mut streamed)
        .await
        .expect("snapshot_to");
    assert_eq!(header.bytes, streamed.len() as u64);
    assert_eq!(header.generation, generation);
    let listed = members(&streamed);
    assert_eq!(listed[0].0, "manifest.json");
    for (file, (path, bytes)) in header.files.iter().zip(&listed[1..]) {
        assert_eq!((&file.path, file.bytes), (path, *bytes));
    }
    let file = scratch.path("snap.tar");
    let out = cli(&daemon, &["snapshot", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(members(&std::fs::read(&file).expect("read")).len(), 4);

    let out = ctxd(&["snapshot", "verify", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("300 documents"));
    let out = cli_with_stdin(&["snapshot", "verify", "-"], &streamed);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A snapshot directory verifies too; nothing is left in the temporary directory.
    let dir = scratch.path("snap-dir");
    assert!(
        cli(&daemon, &["snapshot", dir.to_str().expect("utf-8")])
            .status
            .success()
    );
    let tmp = scratch.path("verify-tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let out = ctxd(&[
        "snapshot",
        "verify",
        dir.to_str().expect("utf-8"),
        "--tmp",
        tmp.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(entries(&tmp).is_empty(), "{:?}", entries(&tmp));
    // Nothing of the streams is left beside the data directory.
    let parent = daemon.data.parent().expect("parent");
    assert!(
        !entries(parent).iter().any(|n| n.contains("partial")),
        "{:?}",
        entries(parent)
    );
}

/// Streamed snapshots taken while four writers write each verify, and each restores to a
/// daemon that then holds every write acknowledged before it was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_snapshots_under_writers_verify_and_restore_every_earlier_write() {
    let scratch = Scratch::new();
    let (daemon, client) = filled(&scratch, 2000).await;
    let load = WriteLoad::start(&daemon.socket, "c", 4, 4);
    let mut taken = Vec::new();
    for i in 0..3 {
        let before = load.acked();
        let mut archive: Vec<u8> = Vec::new();
        client
            .snapshot_to(SnapshotStream::default(), &mut archive)
            .await
            .expect("a streamed snapshot under load");
        let file = scratch.path(&format!("under-load-{i}.tar"));
        std::fs::write(&file, &archive).expect("write");
        taken.push((file, before));
    }
    let all = load.stop().await;
    assert!(
        taken.last().expect("taken").1.len() > taken[0].1.len(),
        "the writers made progress while snapshots were streamed"
    );
    assert!(all.len() > taken.last().expect("taken").1.len());

    let other_scratch = Scratch::new();
    let other = Daemon::start(&other_scratch);
    let other_client = other.client().await;
    for (i, (file, before)) in taken.iter().enumerate() {
        let path = file.to_str().expect("utf-8");
        let out = ctxd(&["snapshot", "verify", path]);
        assert_eq!(out.status.code(), Some(0), "snapshot {i}: {out:?}");
        let out = cli(&other, &["restore", path]);
        assert_eq!(out.status.code(), Some(0), "restore {i}: {out:?}");
        assert_holds(&other_client, "c", before, &format!("restored stream {i}")).await;
    }
    // The source daemon served throughout and holds everything.
    assert_holds(&client, "c", &all, "the source").await;
}

#[tokio::test]
async fn a_damaged_or_truncated_archive_is_refused_and_changes_nothing() {
    let scratch = Scratch::new();
    let (daemon, client) = filled(&scratch, 500).await;
    let mut archive: Vec<u8> = Vec::new();
    client
        .snapshot_to(SnapshotStream::default(), &mut archive)
        .await
        .expect("snapshot");
    // Changed after the snapshot: a restore that went through would lose this.
    put(
        &client,
        "c",
        vec![doc("later", Some("later"), Some(vec![1.0; 4]), json!(null))],
    )
    .await;

    let mut flipped = archive.clone();
    let at = data_offset(&archive, "text.sqlite3") + 5000;
    flipped[at] ^= 0x01;
    let truncated = archive[..archive.len() / 2].to_vec();
    let mut cut_after_member = archive.clone();
    cut_after_member.truncate(data_offset(&archive, "vectors/data.mdb") - 512);
    for (name, bytes, why) in [
        ("flipped.tar", &flipped, "differs from the manifest"),
        ("truncated.tar", &truncated, "truncated"),
        (
            "cut.tar",
            &cut_after_member,
            "ends before `vectors/data.mdb`",
        ),
    ] {
        let file = scratch.path(name);
        std::fs::write(&file, bytes).expect("write");
        let path = file.to_str().expect("utf-8");
        let verified = ctxd(&["snapshot", "verify", path]);
        assert_eq!(verified.status.code(), Some(1), "{name}: {verified:?}");
        let said = String::from_utf8_lossy(&verified.stdout);
        assert!(
            said.contains("NOT a valid snapshot") && said.contains(why),
            "{name}: {said}"
        );
        for restore in [
            cli(&daemon, &["restore", path]),
            cli_with_stdin(
                &[
                    "--socket",
                    daemon.socket.to_str().expect("utf-8"),
                    "restore",
                    "-",
                ],
                bytes,
            ),
        ] {
            assert_eq!(restore.status.code(), Some(1), "{name}: {restore:?}");
            let said = String::from_utf8_lossy(&restore.stderr);
            assert!(
                said.contains("nothing changed") && said.contains(why),
                "{name}: {said}"
            );
        }
        assert_eq!(client.count(count("c")).await.expect("count").count, 501);
    }
    let parent = daemon.data.parent().expect("parent");
    assert!(
        !entries(parent).iter().any(|n| n.contains(".restore-")),
        "{:?}",
        entries(parent)
    );
    let status = client.status().await.expect("status");
    assert!(
        status.leases.is_empty() && status.problem.is_none(),
        "{status:?}"
    );
}

/// A reader that closes the pipe after 1 MiB: `ctxd snapshot -` fails cleanly (exit 1, a
/// message), and the daemon removes its temporary copy and serves on.
#[tokio::test]
async fn a_reader_that_closes_the_pipe_early_leaves_no_temporary_files() {
    let scratch = Scratch::new();
    let (daemon, client) = filled(&scratch, 4000).await;
    let tmp = scratch.path("stream-tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let mut producer = Command::new(CTXD)
        .args([
            "--socket",
            daemon.socket.to_str().expect("utf-8"),
            "snapshot",
            "-",
            "--tmp",
            tmp.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctxd snapshot -");
    let mut pipe = producer.stdout.take().expect("stdout");
    let mut first = vec![0u8; 1 << 20];
    pipe.read_exact(&mut first).expect("the first MiB");
    drop(pipe);
    let out = producer.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("closed the pipe"), "{said}");
    // The daemon notices when its next chunk cannot be written.
    assert!(
        eventually(Duration::from_secs(30), || entries(&tmp).is_empty()),
        "left behind: {:?}",
        entries(&tmp)
    );
    assert_eq!(client.count(count("c")).await.expect("count").count, 4000);
}

#[tokio::test]
async fn keep_writes_named_snapshots_and_removes_the_oldest() {
    let scratch = Scratch::new();
    let (daemon, client) = filled(&scratch, 50).await;
    let dir = scratch.path("kept");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "mine").expect("write");
    let mut written = Vec::new();
    for i in 0..4 {
        put(
            &client,
            "c",
            vec![doc(
                &format!("k{i}"),
                Some("k"),
                Some(vec![1.0; 4]),
                json!(null),
            )],
        )
        .await;
        let format = if i % 2 == 0 { "tar" } else { "dir" };
        let out = cli(
            &daemon,
            &[
                "--json",
                "snapshot",
                dir.to_str().expect("utf-8"),
                "--keep",
                "2",
                "--format",
                format,
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let path = PathBuf::from(result["path"].as_str().expect("path"));
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let generation = result["generation"].as_u64().expect("generation");
        assert!(
            name.starts_with("ctxd-") && name.contains(&format!("-g{generation}")),
            "{name}"
        );
        assert_eq!(name.ends_with(".tar"), format == "tar", "{name}");
        written.push(name);
    }
    assert_eq!(kept(&dir), written[2..].to_vec());
    assert!(dir.join("notes.txt").exists(), "not ours: never removed");
    for name in &written[2..] {
        let out = ctxd(&[
            "snapshot",
            "verify",
            dir.join(name).to_str().expect("utf-8"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
    }
}

/// `--snapshot-every` under writes: every snapshot it keeps is valid, exactly `keep` are
/// kept, a quiet store is not copied again, and `status` shows the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_snapshots_under_writes_are_valid_and_exactly_keep_are_kept() {
    let scratch = Scratch::new();
    let dir = scratch.path("scheduled");
    std::fs::create_dir(&dir).expect("mkdir");
    let daemon = Start::new(&scratch)
        .arg("--snapshot-every")
        .arg("300ms")
        .arg("--snapshot-dir")
        .arg(dir.to_str().expect("utf-8"))
        .arg("--snapshot-keep")
        .arg("3")
        .arg("--snapshot-format")
        .arg("tar")
        .spawn();
    let client = daemon.client().await;
    create(&client, "c", 4).await;
    let load = WriteLoad::start(&daemon.socket, "c", 4, 2);
    // Rounds while the writes go on: the generations of the last snapshot move.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} rounds: {seen:?}",
            seen.len()
        );
        if let Some(last) = client.status().await.expect("status").last_snapshot {
            assert!(last.error.is_none(), "{last:?}");
            seen.insert(last.generation);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = load.stop().await;
    // Once a round has copied the final generation, later rounds are skipped.
    let generation = client.status().await.expect("status").generation;
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let last = client.status().await.expect("status").last_snapshot;
        if let Some(last) = last
            && last.generation == generation
        {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "no round took generation {generation}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let newest = PathBuf::from(last.path.expect("a path"));
    assert!(last.bytes > 0);
    assert_eq!(
        std::fs::metadata(&newest).expect("the newest").len(),
        last.bytes
    );
    let names = kept(&dir);
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        newest.file_name().and_then(|n| n.to_str())
    );
    for name in &names {
        let out = ctxd(&[
            "snapshot",
            "verify",
            dir.join(name).to_str().expect("utf-8"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
    }
    // Nothing more is written while nothing changes (three more rounds' time).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(kept(&dir), names);
    // The newest holds every acknowledged write.
    let other_scratch = Scratch::new();
    let other = Daemon::start(&other_scratch);
    let out = cli(&other, &["restore", newest.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_holds(
        &other.client().await,
        "c",
        &all,
        "the newest scheduled snapshot",
    )
    .await;
}
