//! Who may connect: a private runtime directory, a 0600 socket, other users refused.

use crate::support::{CTXD, Daemon, Scratch, Start};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").mode() & 0o7777
}

#[test]
fn the_default_runtime_dir_is_0700_and_the_socket_0600() {
    let scratch = Scratch::new();
    let xdg = scratch.path("xdg");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    let mut daemon = Start::new(&scratch)
        .socket(None)
        .env("XDG_RUNTIME_DIR", &xdg)
        .spawn();
    daemon.socket = xdg.join("ctxd/ctxd.sock");
    assert!(
        daemon.socket.exists(),
        "socket at $XDG_RUNTIME_DIR/ctxd/ctxd.sock"
    );
    assert_eq!(mode(&xdg.join("ctxd")), 0o700);
    assert_eq!(mode(&daemon.socket), 0o600);
    // Clients find it the same way.
    let out = Command::new(CTXD)
        .arg("health")
        .env_remove("CTXD_SOCKET")
        .env("XDG_RUNTIME_DIR", &xdg)
        .output()
        .expect("run ctxd health");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn an_explicit_socket_is_0600_in_a_new_0700_directory() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    assert_eq!(mode(&daemon.socket), 0o600);
    assert_eq!(mode(daemon.socket.parent().expect("parent")), 0o700);
}

#[test]
fn a_loose_default_runtime_dir_is_made_private() {
    let scratch = Scratch::new();
    let xdg = scratch.path("xdg");
    std::fs::create_dir_all(xdg.join("ctxd")).expect("mkdir");
    std::fs::set_permissions(xdg.join("ctxd"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let _daemon = Start::new(&scratch)
        .socket(None)
        .env("XDG_RUNTIME_DIR", &xdg)
        .spawn();
    assert_eq!(mode(&xdg.join("ctxd")), 0o700);
}

/// Another uid is refused by the daemon itself (SO_PEERCRED), even where file permissions
/// would let it connect. Needs root to run a client as another user.
#[test]
fn a_peer_of_another_uid_is_refused_with_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: running a client as another uid needs root");
        return;
    }
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    // Open every door the file system has, so only the daemon's own check remains.
    for dir in [scratch.dir.path(), daemon.socket.parent().expect("parent")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod");
    let nobody = 65534;
    let out = Command::new(CTXD)
        .args(["--json", "--socket"])
        .arg(&daemon.socket)
        .arg("status")
        .env_remove("CTXD_SOCKET")
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("run ctxd as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Permission denied (os error 13)") && !stderr.contains("refused") {
        eprintln!("SKIPPED: uid {nobody} cannot reach the binary or socket here: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("permission_denied"), "{stderr}");
    assert!(stderr.contains(&format!("uid {nobody}")), "{stderr}");
    // The socket's owner is still served.
    assert_eq!(daemon.raw().call(r#"{"op":"ping"}"#)["ok"], true);
    assert_eq!(std::fs::metadata(&daemon.socket).expect("stat").uid(), 0);
}
