//! A full disk: writes are refused with `disk_full` (nothing of the request written, everything
//! acknowledged kept), reads go on, writes work again once space is freed, and a stop on the
//! full disk says what happened and exits with its documented status. Runs on a small tmpfs;
//! skipped, visibly, where mounting one is not permitted.

use crate::support::{EXIT_TIMEOUT, Raw, Scratch, Start, ctxd};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, bytes: usize) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs {
                path: path.to_owned(),
            }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here ({}); the disk-full test needs one",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}); the disk-full test needs a tmpfs");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Upserts documents of about 8 KiB of text into `c` one request at a time until one is
/// refused; records the ids acknowledged and returns the refusal.
fn fill(raw: &mut Raw, prefix: &str, acked: &mut BTreeSet<String>) -> Value {
    let text = "otters hold hands while they sleep ".repeat(230);
    fill_with(raw, prefix, acked, |id, n| {
        format!(
            r#"{{"op":"upsert","collection":"c","documents":[{{"id":"{id}","text":"{text}","vector":[{n},1,0.5,0.25]}}]}}"#
        )
    })
}

/// Upserts documents with a 1024-dimensional vector and no text into `v` until one is refused:
/// here the vector store grows as fast as the text store.
fn fill_vectors(raw: &mut Raw, prefix: &str, acked: &mut BTreeSet<String>) -> Value {
    let vector = vec!["0.125"; 1023].join(",");
    fill_with(raw, prefix, acked, |id, n| {
        format!(
            r#"{{"op":"upsert","collection":"v","documents":[{{"id":"{id}","vector":[{n},{vector}]}}]}}"#
        )
    })
}

fn fill_with(
    raw: &mut Raw,
    prefix: &str,
    acked: &mut BTreeSet<String>,
    request: impl Fn(&str, usize) -> String,
) -> Value {
    for n in 0.. {
        let id = format!("{prefix}{n}");
        let reply = raw.call(&request(&id, n));
        if reply["ok"] == true {
            acked.insert(id);
        } else {
            return reply;
        }
        assert!(n < 100_000, "the disk never filled");
    }
    unreachable!()
}

fn assert_disk_full(reply: &Value) {
    assert_eq!(reply["error"]["code"], "disk_full", "{reply}");
    let message = reply["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("nothing of this request was written"),
        "{message}"
    );
    assert!(message.contains("acknowledged"), "{message}");
}

fn count(raw: &mut Raw, collection: &str) -> u64 {
    let reply = raw.call(&format!(r#"{{"op":"count","collection":"{collection}"}}"#));
    reply["count"].as_u64().unwrap_or_else(|| panic!("{reply}"))
}

#[test]
fn a_full_disk_refuses_writes_with_disk_full_keeps_everything_and_recovers() {
    let scratch = Scratch::new();
    let Some(disk) = Tmpfs::mount(&scratch.path("disk"), 12 << 20) else {
        return;
    };
    // Ballast to free later: the daemon's files can only be freed by the daemon.
    let ballast = disk.path.join("ballast");
    std::fs::write(&ballast, vec![0u8; 3 << 20]).expect("ballast");
    let data = disk.path.join("data");
    let mut daemon = Start::new(&scratch).data(&data).spawn();
    let mut raw = daemon.raw();
    for (name, dimension) in [("c", 4), ("v", 1024)] {
        let created = raw.call(&format!(
            r#"{{"op":"create_collection","name":"{name}","dimension":{dimension}}}"#
        ));
        assert_eq!(created["ok"], true, "{created}");
    }

    let mut acked = BTreeSet::new();
    let refused = fill(&mut raw, "a", &mut acked);
    eprintln!("{} writes acknowledged, then: {refused}", acked.len());
    assert_disk_full(&refused);
    assert!(acked.len() > 100, "{} writes fit", acked.len());
    // Still full: refused the same way, nothing half written.
    for _ in 0..5 {
        assert_disk_full(&fill(&mut raw, "b", &mut acked));
    }
    // Reads keep working and see exactly what was acknowledged.
    assert_eq!(count(&mut raw, "c"), acked.len() as u64);
    let search = raw
        .call(r#"{"op":"search","collection":"c","text":"otters","vector":[1,1,0.5,0.25],"k":3}"#);
    assert_eq!(search["ok"], true, "{search}");

    // Space freed: writes work again.
    std::fs::remove_file(&ballast).expect("free the ballast");
    let again = raw.call(
        r#"{"op":"upsert","collection":"c","documents":[{"id":"after","text":"space again","vector":[1,2,3,4]}]}"#,
    );
    assert_eq!(again["ok"], true, "{again}");
    acked.insert("after".to_owned());

    // Full again, this time with vectors; then stopped on the full disk.
    let mut vectors = BTreeSet::new();
    let refused = fill_vectors(&mut raw, "v", &mut vectors);
    eprintln!("{} vectors acknowledged, then: {refused}", vectors.len());
    assert_disk_full(&refused);
    assert!(vectors.len() > 10, "{} vectors fit", vectors.len());
    assert_eq!(count(&mut raw, "v"), vectors.len() as u64);
    let out = ctxd(&["--socket", daemon.socket.to_str().expect("utf-8"), "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (status, log) = daemon.wait_exit(EXIT_TIMEOUT);
    eprintln!("stopped on the full disk with {status}");
    match status.code() {
        Some(0) => {}
        Some(4) => assert!(
            log.contains("no space left") && log.contains("nothing acknowledged is lost"),
            "exit 4 says what happened:\n{log}"
        ),
        other => panic!("stopping on a full disk exited with {other:?}:\n{log}"),
    }
    drop(raw);

    // Every acknowledged write is there after a restart.
    let daemon = Start::new(&scratch).data(&data).spawn();
    let mut raw = daemon.raw();
    assert_eq!(count(&mut raw, "c"), acked.len() as u64);
    assert_eq!(count(&mut raw, "v"), vectors.len() as u64);
    let check = raw.call(r#"{"op":"check"}"#);
    assert_eq!(check["passed"], true, "{check}");
    for (collection, ids) in [("c", &acked), ("v", &vectors)] {
        let ids: Vec<&String> = ids.iter().collect();
        let list = serde_json::to_string(&ids).expect("json");
        let got = raw.call(&format!(
            r#"{{"op":"get","collection":"{collection}","ids":{list},"limit":10000,"include":["vector"]}}"#
        ));
        let documents = got["documents"].as_array().expect("documents");
        assert_eq!(
            documents.len(),
            ids.len(),
            "{collection}: acknowledged writes lost"
        );
        assert!(documents.iter().all(|d| d["vector"].is_array()));
    }
}
