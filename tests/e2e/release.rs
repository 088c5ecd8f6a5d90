//! Release leases: every handle closed (checked from outside the process), requests during a
//! release, several holders, expiry, and copies that a second daemon serves.

use crate::data::{create, doc, numbered, put};
use crate::support::{Daemon, Scratch, Start, handles_into};
use ctxd_proto::{Count, ErrorCode, Release, Renew, Resume, State, Upsert};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn release(holder: &str, ttl_s: u64) -> Release {
    Release {
        holder: Some(holder.to_owned()),
        ttl_s: Some(ttl_s),
        drain_ms: None,
    }
}

async fn seed(client: &ctxd_client::Client, n: usize) {
    create(client, "c", 2).await;
    put(client, "c", numbered(n, "some text")).await;
}

/// Ends every lease; `what` names the step if it fails.
async fn resume_all(client: &ctxd_client::Client, what: &str) -> ctxd_proto::ResumeResult {
    client
        .resume(Resume {
            lease_id: None,
            all: true,
        })
        .await
        .expect(what)
}

fn count(collection: &str) -> Count {
    Count {
        collection: collection.to_owned(),
        filter: None,
        text_filter: None,
    }
}

#[tokio::test]
async fn release_closes_every_handle_and_lists_the_files() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 20).await;
    let data = std::fs::canonicalize(&daemon.data).expect("canonical");
    assert!(
        !handles_into(daemon.pid(), &data).is_empty(),
        "open while serving"
    );

    let lease = client
        .release(release("backup", 60))
        .await
        .expect("release");
    // The reply came after every handle was closed: check from outside the process.
    assert_eq!(handles_into(daemon.pid(), &data), Vec::<PathBuf>::new());
    let status = client.status().await.expect("status while released");
    assert_eq!(status.state, State::Released);
    assert_eq!(status.open_files, Some(0));
    assert_eq!(status.documents, 20, "counts as the store was closed");
    assert_eq!(status.leases.len(), 1);
    assert_eq!(status.leases[0].holder.as_deref(), Some("backup"));
    assert!(!data.join("text.sqlite3-wal").exists() && !data.join("text.sqlite3-shm").exists());
    let paths: Vec<&str> = lease.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["ctxd.json", "text.sqlite3", "vectors/data.mdb"]);
    for file in &lease.files {
        assert_eq!(
            std::fs::metadata(data.join(&file.path))
                .expect("stat")
                .len(),
            file.bytes
        );
    }
    assert_eq!(lease.exclude, ["vectors/lock.mdb", "vectors/ann/lock.mdb"]);
    assert_eq!(lease.generation, status.generation);

    let resumed = client
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect("resume");
    assert_eq!(resumed.state, State::Serving);
    assert_eq!(client.count(count("c")).await.expect("count").count, 20);
}

#[tokio::test]
async fn requests_fail_fast_while_released_or_wait_for_the_resume() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 3).await;
    let lease = client.release(release("t", 60)).await.expect("release");

    let err = client.count(count("c")).await.expect_err("released");
    assert_eq!(err.code(), Some(ErrorCode::Released));
    match &err {
        ctxd_client::Error::Daemon { details, .. } => {
            assert_eq!(details["lease_expires_at"], lease.expires_at)
        }
        other => panic!("{other:?}"),
    }
    // Lifecycle operations still work.
    client.ping().await.expect("ping");
    assert_eq!(
        client.health().await.expect("health").state,
        State::Released
    );

    // A request with wait_ms waits, and succeeds once another client resumes.
    let waiter = {
        let socket = daemon.socket.clone();
        tokio::spawn(async move {
            let client = ctxd_client::Client::connect_to(&socket)
                .await
                .expect("connect");
            client
                .call_waiting(count("c"), Some(Duration::from_secs(30)))
                .await
        })
    };
    let resumer = daemon.client().await;
    resumer
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect("resume");
    assert_eq!(waiter.await.expect("task").expect("waited").count, 3);
}

#[tokio::test]
async fn the_daemon_reopens_only_when_the_last_lease_ends() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 1).await;
    let first = client.release(release("a", 60)).await.expect("release a");
    let second = client.release(release("b", 60)).await.expect("release b");
    assert_ne!(first.lease_id, second.lease_id);

    let after_one = client
        .resume(Resume {
            lease_id: Some(first.lease_id.clone()),
            all: false,
        })
        .await
        .expect("resume a");
    assert_eq!(after_one.state, State::Released);
    assert_eq!(after_one.leases.len(), 1);
    let err = client
        .resume(Resume {
            lease_id: Some(first.lease_id),
            all: false,
        })
        .await
        .expect_err("already ended");
    assert_eq!(err.code(), Some(ErrorCode::LeaseNotFound));
    let err = client
        .renew(Renew {
            lease_id: "lease-nope".into(),
            ttl_s: 10,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Some(ErrorCode::LeaseNotFound));
    let renewed = client
        .renew(Renew {
            lease_id: second.lease_id.clone(),
            ttl_s: 3600,
        })
        .await
        .expect("renew");
    assert!(renewed.expires_at > second.expires_at);

    let after_two = client
        .resume(Resume {
            lease_id: Some(second.lease_id),
            all: false,
        })
        .await
        .expect("resume b");
    assert_eq!(after_two.state, State::Serving);
    // Resuming while serving is a no-op.
    let again = resume_all(&client, "resume all").await;
    assert_eq!(again.state, State::Serving);
}

#[tokio::test]
async fn an_expired_lease_resumes_by_itself_with_a_warning() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 2).await;
    client
        .release(release("forgetful", 1))
        .await
        .expect("release");
    // Waits for the resume the expiry brings (no sleep: the request itself waits).
    let counted = client
        .call_waiting(count("c"), Some(Duration::from_secs(20)))
        .await
        .expect("served again after expiry");
    assert_eq!(counted.count, 2);
    assert!(
        daemon
            .stderr_so_far()
            .contains("lease expired without a resume"),
        "{}",
        daemon.stderr_so_far()
    );
}

/// Copies `from` to `to` the way a backup tool would: every listed file, skipping `exclude`.
fn copy_released(from: &Path, to: &Path, files: &[ctxd_proto::FileEntry]) {
    for file in files {
        let target = to.join(&file.path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&file.path), &target).expect("copy");
    }
}

#[tokio::test]
async fn a_copy_taken_while_released_is_served_by_a_second_daemon() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 50).await;
    let lease = client.release(release("copy", 60)).await.expect("release");
    let copy = scratch.path("copy");
    copy_released(&daemon.data, &copy, &lease.files);
    resume_all(&client, "resume").await;
    // The original keeps serving; the copy is a valid data directory of its own.
    let second = Start::new(&scratch)
        .data(&copy)
        .socket(Some(scratch.path("run2/ctxd.sock")))
        .spawn();
    let other = second.client().await;
    assert_eq!(other.count(count("c")).await.expect("count").count, 50);
    assert_eq!(
        other.status().await.expect("status").generation,
        lease.generation
    );
    assert_eq!(client.count(count("c")).await.expect("count").count, 50);
}

mod cli {
    use crate::support::{CTXD, Daemon, Scratch, ctxd};
    use serde_json::Value;
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    fn health(daemon: &Daemon) -> String {
        let out = ctxd(&["--socket", daemon.socket.to_str().expect("utf-8"), "health"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn release_prints_the_lease_and_resume_ends_it() {
        let scratch = Scratch::new();
        let daemon = Daemon::start(&scratch);
        let socket = daemon.socket.to_str().expect("utf-8");
        let out = ctxd(&[
            "--socket", socket, "--json", "release", "--ttl", "5m", "--holder", "me",
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let lease: Value = serde_json::from_slice(&out.stdout).expect("json");
        let id = lease["lease_id"].as_str().expect("lease id").to_owned();
        assert_eq!(lease["exclude"][0], "vectors/lock.mdb");
        assert_eq!(health(&daemon), "released");
        let status = ctxd(&["--socket", socket, "status"]);
        assert_eq!(
            status.status.code(),
            Some(1),
            "status exits 1 while released"
        );
        assert!(String::from_utf8_lossy(&status.stdout).contains("held by me"));

        let out = ctxd(&["--socket", socket, "resume", &id]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "serving");
        let out = ctxd(&["--socket", socket, "resume", &id]);
        assert_eq!(out.status.code(), Some(1), "unknown lease: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("lease_not_found"));
    }

    #[test]
    fn release_with_a_command_runs_it_released_and_always_resumes() {
        let scratch = Scratch::new();
        let daemon = Daemon::start(&scratch);
        let socket = daemon.socket.to_str().expect("utf-8");
        let data = daemon.data.to_str().expect("utf-8");
        // The command sees the files closed (no WAL) and the daemon released.
        let script =
            format!("test ! -e {data}/text.sqlite3-wal && {CTXD} --socket {socket} health; exit 7");
        let out = ctxd(&["--socket", socket, "release", "--", "sh", "-c", &script]);
        assert_eq!(out.status.code(), Some(7), "the command's status: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "released");
        assert_eq!(health(&daemon), "serving", "resumed after the command");

        let out = ctxd(&["--socket", socket, "release", "--", "false"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            health(&daemon),
            "serving",
            "resumed after a failing command"
        );
    }

    /// A backup that outlives `--ttl` must not have the files reopened under it: while the
    /// command runs, `ctxd release` renews the lease.
    #[test]
    fn a_command_that_outlives_the_ttl_keeps_the_files_released() {
        let scratch = Scratch::new();
        let daemon = Daemon::start(&scratch);
        let socket = daemon.socket.to_str().expect("utf-8");
        // Three seconds is three lease lengths: the command's last look is long past the TTL.
        let script = format!("sleep 3; {CTXD} --socket {socket} health; exit 0");
        let out = ctxd(&[
            "--socket", socket, "release", "--ttl", "1s", "--", "sh", "-c", &script,
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "released",
            "still released after three lease lengths"
        );
        assert_eq!(health(&daemon), "serving", "resumed after the command");
        assert!(
            !daemon.stderr_so_far().contains("expired"),
            "the lease was renewed, not expired:\n{}",
            daemon.stderr_so_far()
        );
    }

    #[test]
    fn ctrl_c_during_the_command_still_resumes() {
        let scratch = Scratch::new();
        let daemon = Daemon::start(&scratch);
        let socket = daemon.socket.to_str().expect("utf-8");
        let fifo = scratch.path("started");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        let script = format!("echo started > {}; exec sleep 60", fifo.display());
        // Its own process group, like a terminal's foreground job: Ctrl-C reaches every
        // process of the group.
        let release = Command::new(CTXD)
            .args(["--socket", socket, "release", "--", "sh", "-c", &script])
            .env_remove("CTXD_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn ctxd release");
        // Blocks until the command runs (the daemon is released by then).
        let mut started = String::new();
        std::fs::File::open(&fifo)
            .expect("open fifo")
            .read_to_string(&mut started)
            .expect("read fifo");
        assert_eq!(started.trim(), "started");
        assert_eq!(health(&daemon), "released");
        let group = rustix::process::Pid::from_raw(release.id() as i32).expect("pid");
        rustix::process::kill_process_group(group, rustix::process::Signal::INT)
            .expect("interrupt the group");
        let out = release.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(130), "128 + SIGINT: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("resumed"),
            "{out:?}"
        );
        assert_eq!(health(&daemon), "serving");
    }
}

#[tokio::test]
async fn changed_files_are_verified_before_serving_again() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    seed(&client, 10).await;
    // An older copy, taken while released.
    let first = client
        .release(release("backup", 60))
        .await
        .expect("release");
    let older = scratch.path("older");
    copy_released(&daemon.data, &older, &first.files);
    resume_all(&client, "resume").await;
    client
        .upsert(Upsert {
            collection: "c".into(),
            documents: vec![doc(
                "newer",
                Some("after the backup"),
                Some(vec![9.0, 9.0]),
                json!(null),
            )],
        })
        .await
        .expect("upsert");
    assert_eq!(client.count(count("c")).await.expect("count").count, 11);

    // Damage the vector store while released: resume refuses, the daemon stays up and says why.
    let lease = client
        .release(release("vandal", 60))
        .await
        .expect("release");
    let mdb = daemon.data.join("vectors/data.mdb");
    std::fs::write(&mdb, vec![0u8; 8192]).expect("overwrite");
    let err = client
        .resume(Resume {
            lease_id: Some(lease.lease_id),
            all: false,
        })
        .await
        .expect_err("damaged files are not served");
    assert_eq!(err.code(), Some(ErrorCode::Storage), "{err}");
    let status = client.status().await.expect("status still answers");
    assert_eq!(status.state, State::Released);
    assert!(status.leases.is_empty());
    let problem = status.problem.expect("status says why");
    assert!(problem.contains("cannot resume"), "{problem}");
    let err = client.count(count("c")).await.expect_err("not served");
    assert_eq!(err.code(), Some(ErrorCode::Released));

    // Restore the older copy over it: resume verifies it and serves exactly that.
    for file in &first.files {
        std::fs::copy(older.join(&file.path), daemon.data.join(&file.path)).expect("restore");
    }
    let resumed = resume_all(&client, "resume the restored copy").await;
    assert_eq!(resumed.state, State::Serving);
    assert_eq!(client.count(count("c")).await.expect("count").count, 10);
    assert_eq!(client.status().await.expect("status").problem, None);
    assert!(daemon.stderr_so_far().contains("changed while released"));
}

/// The acceptance test of releasing: copies taken under write load are all valid and complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_release_copy_resume_cycles_under_four_writers() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let client = daemon.client().await;
    create(&client, "load", 2).await;
    let load = crate::writers::WriteLoad::start(&daemon.socket, "load", 2, 4);
    let mut copies = Vec::new();
    for cycle in 0..50 {
        let before = load.acked();
        let lease = client.release(release("cycle", 60)).await.expect("release");
        let copy = scratch.path(&format!("copy-{cycle}"));
        copy_released(&daemon.data, &copy, &lease.files);
        client
            .resume(Resume {
                lease_id: Some(lease.lease_id),
                all: false,
            })
            .await
            .expect("resume");
        copies.push((copy, before));
    }
    let total = load.stop().await.len();
    assert!(
        total > copies.last().map_or(0, |c| c.1.len()),
        "writes continued throughout"
    );
    for (cycle, (copy, before)) in copies.into_iter().enumerate() {
        let out = crate::support::ctxd(&["check", "--data", copy.to_str().expect("utf-8")]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "copy {cycle} fails check: {out:?}"
        );
        let second = Start::new(&scratch)
            .data(&copy)
            .socket(Some(scratch.path(&format!("run-{cycle}/ctxd.sock"))))
            .spawn();
        let other = second.client().await;
        crate::writers::assert_holds(&other, "load", &before, &format!("copy {cycle}")).await;
    }
}
