//! The files in `packaging/` are checked by the tools that will read them: every systemd unit
//! passes `systemd-analyze verify` (as a system or a user unit), with its `ExecStart=` pointing
//! at the binary under test and `man:ctxd(1)` found among the pages `ctxd man` generates.

use crate::support::CTXD;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `packaging/systemd`.
fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd")
}

/// Whether `systemd-analyze` can run here; says so loudly when it cannot (CI shows it).
fn systemd_analyze_available() -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            eprintln!(
                "SKIPPED: systemd-analyze is not installed, the unit files were not verified \
                 (Debian: apt-get install systemd)"
            );
            false
        }
    }
}

/// Copies the unit files of `source` into `dest` with every installed binary path (`from`)
/// replaced by the binary under test: verify checks that `ExecStart=` is executable.
fn stage_units(source: &Path, dest: &Path, from: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dest).expect("create the staging dir");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(source)
        .expect("read the units dir")
        .flatten()
    {
        let path = entry.path();
        let is_unit = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("service" | "socket")
        );
        if !is_unit {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a unit");
        let is_service = path.extension().is_some_and(|e| e == "service");
        assert!(
            !is_service || text.contains(from),
            "{} no longer runs {from}; update this test",
            path.display()
        );
        let staged = dest.join(entry.file_name());
        std::fs::write(&staged, text.replace(from, CTXD)).expect("stage a unit");
        units.push(staged);
    }
    units.sort();
    units
}

/// Runs `systemd-analyze [--user] verify` on `units`; every complaint fails (verify exits 0
/// on unknown keys and only warns, so its stderr must be empty too).
fn verify(units: &[PathBuf], user: bool, scratch: &Path) {
    let man = scratch.join("man");
    let generated = Command::new(CTXD)
        .arg("man")
        .arg("--dir")
        .arg(man.join("man1"))
        .status()
        .expect("run ctxd man");
    assert!(generated.success(), "ctxd man --dir failed");
    let runtime = scratch.join("xdg-runtime");
    std::fs::create_dir_all(&runtime).expect("create a runtime dir");

    let mut command = Command::new("systemd-analyze");
    if user {
        command.arg("--user");
    }
    let output = command
        .arg("verify")
        .args(units)
        .env("MANPATH", &man)
        // The user manager wants a runtime directory to resolve %t.
        .env("XDG_RUNTIME_DIR", &runtime)
        .current_dir(scratch)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {units:?}: {}\n{stderr}",
        output.status
    );
}

/// Stages the units of `packaging/systemd/<subdir>` (installed binary `from`) and verifies them.
fn verify_units(subdir: &str, from: &str, user: bool) {
    if !systemd_analyze_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let units = stage_units(
        &units_dir().join(subdir),
        &scratch.path().join("units"),
        from,
    );
    assert_eq!(units.len(), 2, "ctxd.service and ctxd.socket: {units:?}");
    verify(&units, user, scratch.path());
}

#[test]
fn the_system_units_pass_systemd_analyze_verify() {
    verify_units("", "/usr/local/bin/ctxd", false);
}

#[test]
fn the_user_units_pass_systemd_analyze_verify() {
    verify_units("user", "%h/.cargo/bin/ctxd", true);
}

/// Each connection is one open file: both services raise `RLIMIT_NOFILE` (a user unit's soft
/// limit is 1024).
#[test]
fn both_services_set_the_open_file_limit() {
    for unit in ["ctxd.service", "user/ctxd.service"] {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read the unit");
        let limit = text
            .lines()
            .find_map(|line| line.strip_prefix("LimitNOFILE="))
            .unwrap_or_else(|| panic!("{unit} sets no LimitNOFILE="));
        let limit: u64 = limit.trim().parse().expect("a number");
        assert!(limit >= 4096, "{unit}: LimitNOFILE={limit}");
    }
}

#[test]
fn a_broken_unit_is_caught() {
    // The check above must be able to fail: a misspelt key in a copy of the real unit.
    if !systemd_analyze_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let units = stage_units(
        &units_dir(),
        &scratch.path().join("system"),
        "/usr/local/bin/ctxd",
    );
    let service = units
        .iter()
        .find(|u| u.extension().is_some_and(|e| e == "service"))
        .expect("the service unit");
    let text = std::fs::read_to_string(service).expect("read");
    std::fs::write(service, text.replace("ProtectHome=", "ProtectHomes=")).expect("write");
    let result = std::panic::catch_unwind(|| verify(&units, false, scratch.path()));
    assert!(result.is_err(), "a misspelt key passed verification");
}

#[test]
fn completions_and_man_pages_are_generated_from_the_command_line() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = Command::new(CTXD)
            .args(["completions", shell])
            .output()
            .expect("run ctxd completions");
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8_lossy(&output.stdout);
        for subcommand in ["serve", "snapshot", "release"] {
            assert!(
                script.contains(subcommand),
                "{shell} completion lacks {subcommand}"
            );
        }
    }
    let page = Command::new(CTXD)
        .arg("man")
        .output()
        .expect("run ctxd man");
    assert!(page.status.success());
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains(".TH ctxd 1"), "{page}");
    assert!(
        page.contains("CTXD_SOCKET"),
        "the man page documents the environment"
    );

    let scratch = tempfile::tempdir().expect("temp dir");
    let status = Command::new(CTXD)
        .args(["man", "--dir"])
        .arg(scratch.path())
        .status()
        .expect("run ctxd man --dir");
    assert!(status.success());
    for page in [
        "ctxd.1",
        "ctxd-serve.1",
        "ctxd-release.1",
        "ctxd-snapshot.1",
    ] {
        let text = std::fs::read_to_string(scratch.path().join(page)).expect(page);
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
}
