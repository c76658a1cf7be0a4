//! Host tests of seccomp filters: a filter compiled by husk is installed in a
//! child process, which checks what it denies and what still works.
//!
//! Installing a filter cannot be undone, so it never happens in the test
//! harness's own process: each test runs this test binary again with
//! `HUSK_SECCOMP_CHILD` set and only its `child_*` test selected, and checks
//! that the child printed its marker and exited 0. Without that variable the
//! `child_*` tests do nothing. No root needed: with no_new_privs any process
//! may install a filter.

use std::io::Write as _;
use std::process::{Command, Output};

use husk::seccomp::{self, Arch};
use nix::errno::Errno;
use nix::sched::CloneFlags;

const CHILD: &str = "HUSK_SECCOMP_CHILD";
const MARKER: &str = "HUSK-SECCOMP-CHILD-OK";

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `test` of this binary in a child process and checks it passed.
fn run_child(test: &str) {
    let Some(native) = Arch::native() else {
        #[expect(
            clippy::explicit_write,
            reason = "the harness hides eprintln! of passing tests"
        )]
        writeln!(
            std::io::stderr(),
            "SKIP {test}: no seccomp tables for this architecture"
        )
        .unwrap();
        return;
    };
    let output: Output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{MARKER} {test}")),
        "child {test} on {native:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// Installs the filter `json` compiles to for this architecture.
fn install(json: &str) {
    let profile = seccomp::parse(json.as_bytes()).unwrap();
    let filter = profile.compile(Arch::native().unwrap()).unwrap();
    husk::sys::set_no_new_privs().unwrap();
    husk::sys::install_seccomp(filter.program(), filter.flags()).unwrap();
}

#[test]
fn mkdir_fails_with_the_profiles_errno() {
    if !in_child() {
        run_child("child_mkdir_denied");
    }
}

#[test]
fn child_mkdir_denied() {
    if !in_child() {
        return;
    }
    install(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    );
    let dir = std::env::temp_dir().join(format!("husk-seccomp-{}", std::process::id()));
    let error = std::fs::create_dir(&dir).expect_err("mkdir is denied");
    assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(error.raw_os_error(), Some(13));
    assert!(!dir.exists());
    assert!(
        std::fs::read("/proc/self/status").is_ok(),
        "read is allowed"
    );
    println!("{MARKER} child_mkdir_denied");
}

#[test]
fn default_profile_denies_namespaces_and_keeps_processes_working() {
    if !in_child() {
        run_child("child_default_profile");
    }
}

#[test]
fn child_default_profile() {
    if !in_child() {
        return;
    }
    install(seccomp::default_profile());
    // Threads and child processes still start: clone3 fails with ENOSYS and
    // the C library falls back to clone, whose flags the filter checks.
    assert_eq!(std::thread::spawn(|| 7).join().unwrap(), 7);
    let status = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        nix::sched::unshare(CloneFlags::CLONE_NEWUTS),
        Err(Errno::EPERM)
    );
    assert!(std::fs::read("/proc/self/status").is_ok());
    println!("{MARKER} child_default_profile");
}
