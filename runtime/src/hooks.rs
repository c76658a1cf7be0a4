//! Running OCI hooks: each is a program run in husk's namespaces with the
//! container's state JSON on its standard input, its `env` as the whole
//! environment, and killed when its `timeout` passes.
//!
//! Where the lifecycle runs them (`lifecycle.rs`): `prestart` and
//! `createRuntime` after the container is set up and recorded, before its
//! process starts (a failure there fails `create`/`run` and removes the
//! container); `poststart` after the process started, and `poststop` after the
//! container is deleted (failures there are warnings, as the spec asks). husk
//! runs `createRuntime` after its init has pivoted into the new root rather
//! than just before: the container's namespaces exist either way, which is what
//! such hooks (network setup) need.
//!
//! `createContainer` and `startContainer` are run by the container's init
//! (`container::init`, through its `Syscalls`), in the container's
//! namespaces: the first after the mounts and before `pivot_root`, so its path
//! is the host's; the second after `start`, as the process's user, just
//! before the process, so its path is the container's. Their state has the
//! pid the init has in the container (1 in a new PID namespace), as runc's.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::spec::Hook;

/// How often a running hook is checked for its end and its timeout.
const POLL: Duration = Duration::from_millis(5);

/// Why a hook failed.
#[derive(Debug)]
pub enum HookError {
    /// The program could not be started.
    Spawn {
        /// The hook's kind, e.g. `createRuntime`.
        kind: &'static str,
        /// The program.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The program failed.
    Failed {
        /// The hook's kind.
        kind: &'static str,
        /// The program.
        path: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
    /// The program outlived its timeout and was killed.
    Timeout {
        /// The hook's kind.
        kind: &'static str,
        /// The program.
        path: PathBuf,
        /// The timeout.
        timeout: Duration,
    },
}

/// Runs `hooks` of `kind` in order with `state` on their standard input;
/// stops at the first that fails.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &str) -> Result<(), HookError> {
    hooks.iter().try_for_each(|hook| run_one(kind, hook, state))
}

/// Runs `hooks` of `kind` for their side effects only: a failure is printed
/// as a warning on stderr and the rest still run.
pub fn run_all_warning(kind: &'static str, hooks: &[Hook], state: &str) {
    for hook in hooks {
        if let Err(error) = run_one(kind, hook, state) {
            eprintln!("husk: warning: {}", crate::error_chain(&error));
        }
    }
}

fn run_one(kind: &'static str, hook: &Hook, state: &str) -> Result<(), HookError> {
    let path = || hook.path.clone();
    let mut command = Command::new(&hook.path);
    crate::sys::unblock_signals_in(&mut command);
    if let Some((first, rest)) = hook.args.split_first() {
        command.arg0(first).args(rest);
    }
    command.env_clear();
    for entry in &hook.env {
        if let Some((name, value)) = entry.split_once('=') {
            command.env(name, value);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|source| HookError::Spawn {
            kind,
            path: path(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state closes the pipe: not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let started = Instant::now();
    let status = loop {
        let polled = child.try_wait().map_err(|source| HookError::Spawn {
            kind,
            path: path(),
            source,
        })?;
        if let Some(status) = polled {
            break status;
        }
        if let Some(timeout) = hook.timeout.filter(|&t| started.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind,
                path: path(),
                timeout,
            });
        }
        std::thread::sleep(POLL);
    };
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            kind,
            path: path(),
            status,
        })
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { kind, path, .. } => {
                write!(f, "{kind} hook {}: cannot run it", path.display())
            }
            Self::Failed { kind, path, status } => {
                write!(f, "{kind} hook {} failed ({status})", path.display())
            }
            Self::Timeout {
                kind,
                path,
                timeout,
            } => write!(
                f,
                "{kind} hook {} killed after its timeout of {} s",
                path.display(),
                timeout.as_secs()
            ),
        }
    }
}

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn hook(script: &str, timeout: Option<u64>) -> Hook {
        Hook {
            path: PathBuf::from("/bin/sh"),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["GREETING=hi".into()],
            timeout: timeout.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_and_only_its_env() {
        let tmp = TempDir::new("hook");
        let out = tmp.path().join("out");
        let script = format!(
            "cat > {0}; echo \" $GREETING ${{HOME:-nohome}}\" >> {0}",
            out.display()
        );
        run_all("poststart", &[hook(&script, None)], "{\"id\":\"c\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "{\"id\":\"c\"} hi nohome\n"
        );
    }

    #[test]
    fn a_failing_hook_stops_the_rest_and_names_itself() {
        let tmp = TempDir::new("hook-fail");
        let marker = tmp.path().join("ran");
        let hooks = [
            hook("exit 4", None),
            hook(&format!("touch {}", marker.display()), None),
        ];
        let error = run_all("createRuntime", &hooks, "{}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "createRuntime hook /bin/sh failed (exit status: 4)"
        );
        assert!(!marker.exists());
        // As warnings, every hook runs.
        run_all_warning("poststop", &hooks, "{}");
        assert!(marker.exists());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let started = Instant::now();
        let error = run_all("poststart", &[hook("sleep 30", Some(1))], "{}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "poststart hook /bin/sh killed after its timeout of 1 s"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let missing = Hook {
            path: PathBuf::from("/nonexistent/hook"),
            args: Vec::new(),
            env: Vec::new(),
            timeout: None,
        };
        let error = run_all("poststart", &[missing], "{}").unwrap_err();
        assert!(crate::error_chain(&error)
            .starts_with("poststart hook /nonexistent/hook: cannot run it: "));
    }
}
