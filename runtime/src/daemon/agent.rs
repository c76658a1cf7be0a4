//! What the daemon does for updates, when `<data-dir>/update/config.json`
//! exists: it runs `husk update apply` as a child process every poll
//! interval (±10 % jitter; after a failure sooner, backing off from 30 s up
//! to the interval), so a slow download never stalls supervision; and it
//! judges a release on probation from its own view of the containers,
//! committing it or rolling it back ([`crate::update::judge`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::unistd::Pid;

use crate::update::{self, Config, Layout, Verdict};

use super::supervisor::Time;

/// The first poll after the daemon starts (the containers come first).
pub const FIRST_POLL: Duration = Duration::from_secs(5);
/// The first retry after a failed poll; doubled up to the interval.
pub const RETRY: Duration = Duration::from_secs(30);

/// The agent's side of the daemon loop.
pub struct Agent {
    layout: Layout,
    config: Config,
    /// `--root`, passed on to the child.
    root: Option<std::path::PathBuf>,
    next_poll: Time,
    failures: u32,
    child: Option<Pid>,
    /// When the daemon saw the current release's probation begin.
    probation: Option<Time>,
}

/// What the loop must do after the agent acted.
#[derive(Debug, PartialEq, Eq)]
pub enum AgentAction {
    /// Nothing.
    None,
    /// The desired state changed: read it again.
    Reload,
}

impl Agent {
    /// The agent of `data_dir`, if updates are configured there; an
    /// unreadable config is said and updates stay off.
    pub fn new(data_dir: &Path, root: Option<&Path>, now: Time) -> Option<Self> {
        let layout = Layout::new(data_dir);
        if !layout.config().exists() {
            return None;
        }
        let config = match Config::load(&layout.config()) {
            Ok(config) => config,
            Err(e) => {
                super::say(&format!("updates off: {e}"));
                return None;
            }
        };
        let mut agent = Self {
            layout,
            root: root.map(Path::to_owned),
            next_poll: now + FIRST_POLL,
            failures: 0,
            child: None,
            probation: None,
            config,
        };
        agent.notice_probation(now);
        Some(agent)
    }

    /// Starts the probation clock if the state says a release is on
    /// probation (switched by the child, by hand, or before a reboot).
    pub fn notice_probation(&mut self, now: Time) {
        match update::load_state(&self.layout, update::wall_now()) {
            Ok(state) if state.probation_since.is_some() => {
                if self.probation.is_none() {
                    super::say(&format!(
                        "release {} on probation for {} s",
                        state.current,
                        self.config.grace.as_secs()
                    ));
                    self.probation = Some(now);
                }
            }
            Ok(_) => self.probation = None,
            Err(e) => super::say(&format!("update state: {e}")),
        }
    }

    /// The next time the agent wants the loop to wake.
    pub fn deadline(&self) -> Option<Time> {
        let poll = match (self.child, &self.config.server) {
            (None, Some(_)) => Some(self.next_poll),
            _ => None,
        };
        let probation = self.probation.map(|at| at + self.config.grace);
        poll.into_iter().chain(probation).min()
    }

    /// Starts a poll if it is time.
    pub fn poll_if_due(&mut self, now: Time, data_dir: &Path) {
        if self.child.is_some() || self.config.server.is_none() || now < self.next_poll {
            return;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                super::say(&format!("update check: cannot find husk itself: {e}"));
                self.failed(now);
                return;
            }
        };
        let mut command = Command::new(exe);
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["update", "apply", "--poll"]);
        crate::sys::unblock_signals_in(&mut command);
        match command.spawn() {
            // Reaped by the loop's reap_any, which hands the status to `ended`.
            Ok(child) => self.child = Some(Pid::from_raw(child.id() as i32)),
            Err(e) => {
                super::say(&format!("update check: cannot run husk update: {e}"));
                self.failed(now);
            }
        }
    }

    /// The daemon is stopping: a poll still running is ended (SIGTERM).
    /// An apply cut anywhere leaves a whole release (the switch is one
    /// rename), and the next daemon polls again; an orphan left running
    /// would switch the device with nobody to judge the release.
    pub fn stop(&mut self) {
        if let Some(pid) = self.child {
            let _ = crate::sys::forward_signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Whether a release is on probation.
    pub fn on_probation(&self) -> bool {
        self.probation.is_some()
    }

    /// Whether `pid` is the agent's child.
    pub fn is_child(&self, pid: Pid) -> bool {
        self.child == Some(pid)
    }

    /// The child ended with `code`.
    pub fn ended(&mut self, code: Option<u8>, now: Time) -> AgentAction {
        self.child = None;
        match code {
            Some(0) => {
                self.failures = 0;
                self.next_poll = now + jitter(self.config.interval);
                self.probation = None;
                self.notice_probation(now);
                AgentAction::Reload
            }
            Some(update::EXIT_NOTHING_NEW) => {
                self.failures = 0;
                self.next_poll = now + jitter(self.config.interval);
                AgentAction::None
            }
            _ => {
                self.failed(now);
                AgentAction::None
            }
        }
    }

    fn failed(&mut self, now: Time) {
        self.failures = self.failures.saturating_add(1);
        self.next_poll = now + jitter(retry_delay(self.failures, self.config.interval));
    }

    /// Judges the release on probation, if one is, from the containers the
    /// daemon runs for the current desired state.
    pub fn judge(
        &mut self,
        now: Time,
        desired: &super::desired::DesiredState,
        containers: &[super::status::ContainerStatus],
    ) -> AgentAction {
        let Some(since) = self.probation else {
            return AgentAction::None;
        };
        let verdict = update::judge(
            desired,
            containers,
            now.saturating_sub(since),
            self.config.grace,
        );
        let wall = update::wall_now();
        match verdict {
            Verdict::Wait => AgentAction::None,
            Verdict::Commit => {
                self.probation = None;
                match update::commit(&self.layout, wall) {
                    Ok(state) => super::say(&format!("release {} committed", state.current)),
                    Err(e) => super::say(&format!("committing the release: {e}")),
                }
                AgentAction::None
            }
            Verdict::RollBack(reason) => {
                self.probation = None;
                match update::roll_back(&self.layout, wall, &reason, false) {
                    Ok(state) => {
                        super::say(&format!(
                            "rolled back to release {}: {reason}",
                            state.current
                        ));
                        AgentAction::Reload
                    }
                    Err(e) => {
                        super::say(&format!("rolling back ({reason}): {e}"));
                        AgentAction::None
                    }
                }
            }
        }
    }
}

/// How long after the `failures`-th failure in a row to try again: 30 s,
/// doubling, at most `interval`.
pub fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let doubled = RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(interval)
}

/// `delay` ±10 %, from the process's random hash keys (the kernel's randomness).
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tenth = delay.as_millis() as u64 / 10;
    let offset = if tenth == 0 {
        0
    } else {
        random % (2 * tenth + 1)
    };
    Duration::from_millis(delay.as_millis() as u64 - tenth + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n, hour).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay(u32::MAX, hour), hour);
        assert_eq!(retry_delay(1, Duration::from_secs(10)).as_secs(), 10);
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        let base = Duration::from_secs(100);
        let samples: Vec<Duration> = (0..200).map(|_| jitter(base)).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= Duration::from_secs(90) && *d <= Duration::from_secs(110)));
        // Not the same every time.
        assert!(samples.iter().any(|d| *d != samples[0]));
    }
}
