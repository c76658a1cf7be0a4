//! One container's supervision as a pure state machine: events in (the
//! container started or exited, a probe answered, a timer fired, the desired
//! state changed), actions out (start it, probe it, stop it). Time is a
//! parameter, so every rule is unit-tested without processes or clocks.
//!
//! ```text
//!            Start                 exit, policy restarts
//!  Pending ─────────▶ Running ───────────────────────────▶ BackingOff ──timer──▶ (Start)
//!     ▲                 │ │  exit, policy does not restart
//!     │ replaced        │ └────────────────────────────────▶ Exited / GivenUp
//!     └──── Stopping ◀──┘ stop (SIGTERM; SIGKILL after stopTimeout)
//! ```
//!
//! Health (Docker's rules): `starting` from each start; the first probe one
//! interval after the start, the next one interval after each answer; a
//! success makes the container `healthy`; a failure inside the start period
//! does not count; `retries` failures in a row make it `unhealthy`.

use std::time::Duration;

use super::desired::{Entry, RestartPolicy};

/// Time since an arbitrary monotonic origin (the daemon's start).
pub type Time = Duration;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// It should start now.
    Pending,
    /// Being started (between [`Action::Start`] and the answer).
    Starting,
    /// Its process runs, since this time.
    Running {
        /// When it started.
        since: Time,
    },
    /// Asked to exit; killed at `kill_at` if it has not.
    Stopping {
        /// When SIGKILL follows the SIGTERM.
        kill_at: Time,
        /// Whether SIGKILL was sent.
        killed: bool,
    },
    /// Waiting to be restarted.
    BackingOff {
        /// When it is restarted.
        until: Time,
    },
    /// Ended, and its policy does not restart it.
    Exited,
    /// Ended too often in a row for `on-failure:MAX`.
    GivenUp,
    /// Stopped on request (shutdown, or removed from the desired state).
    Stopped,
}

/// A container's health, where it has a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not yet known since the start.
    Starting,
    /// The last probe succeeded.
    Healthy,
    /// `retries` probes in a row failed.
    Unhealthy,
}

/// How a container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(u8),
    /// A signal killed it.
    Signal(i32),
    /// It never ran: starting it failed.
    StartFailed,
}

/// What happened, as the loop reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Time passed: the reply is whatever a timer made due.
    Timer,
    /// The container runs: its init's pid, and the wall-clock seconds.
    Started {
        /// The init's pid.
        pid: i32,
        /// Seconds since the epoch, for the status.
        wall: u64,
    },
    /// Its init ended (or could not be started).
    Exited {
        /// How.
        exit: Exit,
        /// Whether the OOM killer killed a process of it meanwhile.
        oom: bool,
    },
    /// A health probe answered (a timeout is a failure).
    Probed {
        /// Whether it succeeded.
        ok: bool,
    },
    /// Stop it for good (shutdown, or no longer desired).
    Stop,
    /// The desired state has a new entry for it: stop it, then start that.
    Replace(Box<Entry>),
}

/// What the loop must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start the container, then report [`Event::Started`] or [`Event::Exited`]
    /// with [`Exit::StartFailed`].
    Start,
    /// Run its health probe, then report [`Event::Probed`].
    Probe,
    /// Send SIGTERM to its init.
    Terminate,
    /// Kill every process of it (SIGKILL).
    Kill,
}

/// What a previous daemon counted for a container, to go on from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// Its restarts.
    pub restarts: u32,
    /// Its runs ended by the OOM killer.
    pub oom_kills: u32,
    /// How its last run ended.
    pub last_exit: Option<Exit>,
}

/// One supervised container.
#[derive(Debug, Clone)]
pub struct Unit {
    entry: Entry,
    /// The entry to start once this one has stopped.
    replacement: Option<Box<Entry>>,
    state: State,
    health: Option<Health>,
    /// Probe failures in a row (after the start period).
    failing: u32,
    /// When the next probe is due, unless one is running (`None`).
    next_probe: Option<Time>,
    /// Restarts in a row since the last stable run, for `on-failure:MAX`.
    streak: u32,
    /// The next backoff delay.
    delay: Duration,
    /// Restarts since the daemon started supervising this entry.
    restarts: u32,
    last_exit: Option<Exit>,
    oom_kills: u32,
    pid: Option<i32>,
    started_wall: Option<u64>,
}

impl Unit {
    /// A container to be started at once.
    pub fn new(entry: Entry) -> Self {
        let delay = entry.backoff.initial;
        Self {
            entry,
            replacement: None,
            state: State::Pending,
            health: None,
            failing: 0,
            next_probe: None,
            streak: 0,
            delay,
            restarts: 0,
            last_exit: None,
            oom_kills: 0,
            pid: None,
            started_wall: None,
        }
    }

    /// Goes on counting from `history` (a daemon started again): the counts
    /// only; the container itself starts afresh.
    pub fn restore(&mut self, history: &History) {
        self.restarts = history.restarts;
        self.oom_kills = history.oom_kills;
        self.last_exit = history.last_exit;
    }

    /// Takes `event` at `now` and says what to do about it, if anything.
    pub fn handle(&mut self, event: Event, now: Time) -> Option<Action> {
        match event {
            Event::Timer => self.timer(now),
            Event::Started { pid, wall } => {
                self.state = State::Running { since: now };
                self.pid = Some(pid);
                self.started_wall = Some(wall);
                self.failing = 0;
                self.health = self.entry.health.as_ref().map(|_| Health::Starting);
                self.next_probe = self.entry.health.as_ref().map(|h| now + h.interval);
                None
            }
            Event::Exited { exit, oom } => {
                self.ended(exit, oom, now);
                None
            }
            Event::Probed { ok } => {
                self.probed(ok, now);
                None
            }
            Event::Stop => self.stop(now),
            Event::Replace(entry) => {
                if self.is_active() {
                    self.replacement = Some(entry);
                    self.stop(now)
                } else {
                    *self = Self {
                        restarts: self.restarts,
                        ..Self::new(*entry)
                    };
                    None
                }
            }
        }
    }

    /// When [`Event::Timer`] next has something to do, if ever.
    pub fn deadline(&self) -> Option<Time> {
        match self.state {
            State::Pending => Some(Duration::ZERO),
            State::BackingOff { until } => Some(until),
            State::Running { .. } => self.next_probe,
            State::Stopping {
                kill_at,
                killed: false,
            } => Some(kill_at),
            _ => None,
        }
    }

    fn timer(&mut self, now: Time) -> Option<Action> {
        match self.state {
            State::Pending => {
                self.state = State::Starting;
                Some(Action::Start)
            }
            State::BackingOff { until } if now >= until => {
                self.restarts += 1;
                self.state = State::Starting;
                Some(Action::Start)
            }
            State::Running { .. } if self.next_probe.is_some_and(|at| now >= at) => {
                self.next_probe = None;
                Some(Action::Probe)
            }
            State::Stopping {
                kill_at,
                killed: false,
            } if now >= kill_at => {
                self.state = State::Stopping {
                    kill_at,
                    killed: true,
                };
                Some(Action::Kill)
            }
            _ => None,
        }
    }

    fn ended(&mut self, exit: Exit, oom: bool, now: Time) {
        let ran = match self.state {
            State::Running { since } => now.saturating_sub(since),
            _ => Duration::ZERO,
        };
        let stopping = matches!(self.state, State::Stopping { .. });
        self.last_exit = Some(exit);
        self.oom_kills += u32::from(oom);
        self.pid = None;
        self.health = None;
        self.next_probe = None;
        if stopping {
            self.state = State::Stopped;
            if let Some(entry) = self.replacement.take() {
                *self = Self {
                    restarts: self.restarts,
                    last_exit: self.last_exit,
                    oom_kills: self.oom_kills,
                    ..Self::new(*entry)
                };
            }
            return;
        }
        let backoff = self.entry.backoff;
        if ran >= backoff.reset_after {
            self.streak = 0;
            self.delay = backoff.initial;
        }
        let failed = exit != Exit::Code(0);
        self.state = match self.entry.restart {
            RestartPolicy::No => State::Exited,
            RestartPolicy::OnFailure { .. } if !failed => State::Exited,
            RestartPolicy::OnFailure { max: Some(max) } if self.streak >= max => State::GivenUp,
            RestartPolicy::OnFailure { .. } | RestartPolicy::Always => {
                let until = now + self.delay;
                self.streak += 1;
                self.delay = (self.delay * 2).min(backoff.max);
                State::BackingOff { until }
            }
        };
    }

    fn probed(&mut self, ok: bool, now: Time) {
        let (State::Running { since }, Some(check)) = (self.state, &self.entry.health) else {
            return;
        };
        if ok {
            self.failing = 0;
            self.health = Some(Health::Healthy);
        } else if now >= since + check.start_period {
            self.failing += 1;
            if self.failing >= check.retries {
                self.health = Some(Health::Unhealthy);
            }
        }
        self.next_probe = Some(now + check.interval);
    }

    fn stop(&mut self, now: Time) -> Option<Action> {
        match self.state {
            State::Running { .. } => {
                self.state = State::Stopping {
                    kill_at: now + self.entry.stop_timeout,
                    killed: false,
                };
                self.next_probe = None;
                Some(Action::Terminate)
            }
            State::Stopping { .. } => None,
            _ => {
                self.state = State::Stopped;
                if let Some(entry) = self.replacement.take() {
                    *self = Self::new(*entry);
                }
                None
            }
        }
    }

    /// Whether a process of it may be alive (it has to be waited for).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            State::Starting | State::Running { .. } | State::Stopping { .. }
        )
    }

    /// The entry it runs.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Where it is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Its health, while it runs with a check.
    pub fn health(&self) -> Option<Health> {
        self.health
    }

    /// How often it was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// How it last ended.
    pub fn last_exit(&self) -> Option<Exit> {
        self.last_exit
    }

    /// How many of its runs the OOM killer ended into.
    pub fn oom_kills(&self) -> u32 {
        self.oom_kills
    }

    /// Its init's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// When it last started, in seconds since the epoch.
    pub fn started_wall(&self) -> Option<u64> {
        self.started_wall
    }
}

impl State {
    /// The name `husk daemon status` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending | Self::Starting => "starting",
            Self::Running { .. } => "running",
            Self::Stopping { .. } => "stopping",
            Self::BackingOff { .. } => "backing-off",
            Self::Exited => "exited",
            Self::GivenUp => "given-up",
            Self::Stopped => "stopped",
        }
    }
}

impl Health {
    /// Docker's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::desired::{self, Backoff, HealthCheck, Probe};

    fn s(secs: u64) -> Time {
        Duration::from_secs(secs)
    }

    fn entry(restart: RestartPolicy) -> Entry {
        let json = br#"{"containers": [{"name": "c", "bundle": "/b"}]}"#;
        let mut entry = desired::parse(json).unwrap().containers.remove(0);
        entry.restart = restart;
        entry.backoff = Backoff {
            initial: s(1),
            max: s(8),
            reset_after: s(60),
        };
        entry.stop_timeout = s(5);
        entry
    }

    fn healthy_entry(retries: u32, start_period: u64) -> Entry {
        Entry {
            health: Some(HealthCheck {
                probe: Probe::Tcp { port: 1 },
                interval: s(10),
                timeout: s(2),
                retries,
                start_period: s(start_period),
            }),
            ..entry(RestartPolicy::Always)
        }
    }

    /// Starts the unit at `now`, checking it asked to be started.
    fn start(unit: &mut Unit, now: Time) {
        assert_eq!(unit.handle(Event::Timer, now), Some(Action::Start));
        assert_eq!(unit.state(), State::Starting);
        assert_eq!(unit.handle(Event::Started { pid: 7, wall: 1 }, now), None);
        assert_eq!(unit.state(), State::Running { since: now });
    }

    fn exit(unit: &mut Unit, code: u8, now: Time) {
        let event = Event::Exited {
            exit: Exit::Code(code),
            oom: false,
        };
        assert_eq!(unit.handle(event, now), None);
    }

    /// The delays of the restarts after each of `runs` exits with `code`,
    /// each run lasting `ran`.
    fn delays(unit: &mut Unit, code: u8, ran: Time, runs: usize) -> Vec<u64> {
        let mut now = unit.deadline().unwrap();
        let mut delays = Vec::new();
        for _ in 0..runs {
            start(unit, now);
            now += ran;
            exit(unit, code, now);
            let State::BackingOff { until } = unit.state() else {
                break;
            };
            // Nothing happens before the delay is over.
            assert_eq!(
                unit.handle(Event::Timer, until - Duration::from_millis(1)),
                None
            );
            assert_eq!(unit.deadline(), Some(until));
            delays.push((until - now).as_secs());
            now = until;
        }
        delays
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        assert_eq!(unit.deadline(), Some(Duration::ZERO));
        assert_eq!(delays(&mut unit, 1, s(1), 6), [1, 2, 4, 8, 8, 8]);
        assert_eq!(unit.restarts(), 5);
        assert_eq!(unit.last_exit(), Some(Exit::Code(1)));
    }

    #[test]
    fn backoff_resets_after_a_stable_run() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        assert_eq!(delays(&mut unit, 1, s(1), 4), [1, 2, 4, 8]);
        // A run as long as resetAfter starts the delays over.
        assert_eq!(delays(&mut unit, 1, s(60), 2), [1, 1]);
        assert_eq!(delays(&mut unit, 1, s(59), 3), [2, 4, 8]);
    }

    #[test]
    fn on_failure_max_gives_up_after_max_restarts_in_a_row() {
        let policy = RestartPolicy::OnFailure { max: Some(3) };
        let mut unit = Unit::new(entry(policy));
        assert_eq!(delays(&mut unit, 2, s(1), 10), [1, 2, 4]);
        assert_eq!(unit.state(), State::GivenUp);
        assert_eq!(unit.restarts(), 3);
        assert_eq!(unit.deadline(), None);
        assert_eq!(unit.handle(Event::Timer, s(1000)), None);
        // A stable run between failures clears the count.
        let mut unit = Unit::new(entry(policy));
        assert_eq!(delays(&mut unit, 2, s(1), 2), [1, 2]);
        assert_eq!(delays(&mut unit, 2, s(60), 1), [1]);
        assert_eq!(delays(&mut unit, 2, s(1), 10), [2, 4]);
        assert_eq!(unit.state(), State::GivenUp);
    }

    #[test]
    fn on_failure_does_not_restart_after_exit_0() {
        let mut unit = Unit::new(entry(RestartPolicy::OnFailure { max: None }));
        assert_eq!(delays(&mut unit, 0, s(1), 3), Vec::<u64>::new());
        assert_eq!(unit.state(), State::Exited);
        assert_eq!(unit.deadline(), None);
        // A signal is a failure.
        let mut unit = Unit::new(entry(RestartPolicy::OnFailure { max: None }));
        start(&mut unit, s(0));
        let killed = Event::Exited {
            exit: Exit::Signal(9),
            oom: true,
        };
        unit.handle(killed, s(1));
        assert_eq!(unit.state(), State::BackingOff { until: s(2) });
        assert_eq!(unit.oom_kills(), 1);
        assert_eq!(unit.last_exit(), Some(Exit::Signal(9)));
    }

    #[test]
    fn no_never_restarts() {
        for code in [0, 1] {
            let mut unit = Unit::new(entry(RestartPolicy::No));
            start(&mut unit, s(0));
            exit(&mut unit, code, s(100));
            assert_eq!(unit.state(), State::Exited);
            assert_eq!(unit.pid(), None);
            assert_eq!(unit.deadline(), None);
        }
    }

    #[test]
    fn always_restarts_after_exit_0_and_failed_starts() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        assert_eq!(delays(&mut unit, 0, s(1), 2), [1, 2]);
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        unit.handle(Event::Timer, s(0));
        let failed = Event::Exited {
            exit: Exit::StartFailed,
            oom: false,
        };
        unit.handle(failed, s(0));
        assert_eq!(unit.state(), State::BackingOff { until: s(1) });
    }

    #[test]
    fn stop_terminates_then_kills_after_the_timeout() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        start(&mut unit, s(0));
        assert_eq!(unit.handle(Event::Stop, s(10)), Some(Action::Terminate));
        assert_eq!(unit.deadline(), Some(s(15)));
        assert_eq!(unit.handle(Event::Timer, s(14)), None);
        assert_eq!(unit.handle(Event::Timer, s(15)), Some(Action::Kill));
        assert_eq!(unit.handle(Event::Timer, s(16)), None);
        assert_eq!(unit.deadline(), None);
        assert!(unit.is_active());
        exit(&mut unit, 137, s(16));
        // Stopped on request: no restart, whatever the policy.
        assert_eq!(unit.state(), State::Stopped);
        assert!(!unit.is_active());
        // A unit waiting to restart just stops.
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        start(&mut unit, s(0));
        exit(&mut unit, 1, s(1));
        assert_eq!(unit.handle(Event::Stop, s(1)), None);
        assert_eq!(unit.state(), State::Stopped);
        assert_eq!(unit.deadline(), None);
    }

    #[test]
    fn a_replaced_entry_starts_once_the_old_one_stopped() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        start(&mut unit, s(0));
        let new = Box::new(entry(RestartPolicy::No));
        assert_eq!(
            unit.handle(Event::Replace(new), s(1)),
            Some(Action::Terminate)
        );
        exit(&mut unit, 143, s(2));
        assert_eq!(unit.state(), State::Pending);
        assert_eq!(unit.entry().restart, RestartPolicy::No);
        assert_eq!(unit.last_exit(), Some(Exit::Code(143)));
        // One that does not run is replaced at once.
        let mut unit = Unit::new(entry(RestartPolicy::No));
        start(&mut unit, s(0));
        exit(&mut unit, 0, s(1));
        let new = Box::new(entry(RestartPolicy::Always));
        assert_eq!(unit.handle(Event::Replace(new), s(2)), None);
        assert_eq!(unit.state(), State::Pending);
        assert_eq!(unit.entry().restart, RestartPolicy::Always);
    }

    /// Runs the probe due at `at` with result `ok`, answering at `at + 1s`.
    fn probe(unit: &mut Unit, at: u64, ok: bool) {
        assert_eq!(unit.deadline(), Some(s(at)));
        assert_eq!(
            unit.handle(Event::Timer, s(at) - Duration::from_millis(1)),
            None
        );
        assert_eq!(unit.handle(Event::Timer, s(at)), Some(Action::Probe));
        // No second probe while one runs.
        assert_eq!(unit.deadline(), None);
        assert_eq!(unit.handle(Event::Timer, s(at + 1)), None);
        unit.handle(Event::Probed { ok }, s(at + 1));
    }

    #[test]
    fn health_retries_make_it_unhealthy_and_a_success_healthy() {
        let mut unit = Unit::new(healthy_entry(3, 0));
        start(&mut unit, s(0));
        assert_eq!(unit.health(), Some(Health::Starting));
        probe(&mut unit, 10, false);
        probe(&mut unit, 21, false);
        assert_eq!(unit.health(), Some(Health::Starting));
        probe(&mut unit, 32, false);
        assert_eq!(unit.health(), Some(Health::Unhealthy));
        probe(&mut unit, 43, true);
        assert_eq!(unit.health(), Some(Health::Healthy));
        probe(&mut unit, 54, false);
        probe(&mut unit, 65, false);
        assert_eq!(unit.health(), Some(Health::Healthy));
        probe(&mut unit, 76, false);
        assert_eq!(unit.health(), Some(Health::Unhealthy));
        // A restart starts over, and the status has no health while it is down.
        exit(&mut unit, 1, s(80));
        assert_eq!(unit.health(), None);
        start(&mut unit, s(81));
        assert_eq!(unit.health(), Some(Health::Starting));
        assert_eq!(unit.deadline(), Some(s(91)));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let mut unit = Unit::new(healthy_entry(1, 25));
        start(&mut unit, s(0));
        probe(&mut unit, 10, false);
        probe(&mut unit, 21, false);
        assert_eq!(unit.health(), Some(Health::Starting));
        probe(&mut unit, 32, false);
        assert_eq!(unit.health(), Some(Health::Unhealthy));
        // A success in the start period counts.
        let mut unit = Unit::new(healthy_entry(1, 25));
        start(&mut unit, s(0));
        probe(&mut unit, 10, true);
        assert_eq!(unit.health(), Some(Health::Healthy));
    }

    #[test]
    fn restored_counts_go_on() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        unit.restore(&History {
            restarts: 5,
            oom_kills: 1,
            last_exit: Some(Exit::Code(2)),
        });
        assert_eq!(unit.last_exit(), Some(Exit::Code(2)));
        // The backoff and the on-failure count start over: only totals carry on.
        assert_eq!(delays(&mut unit, 1, s(1), 2), [1, 2]);
        assert_eq!((unit.restarts(), unit.oom_kills()), (6, 1));
    }

    #[test]
    fn no_health_check_no_probes() {
        let mut unit = Unit::new(entry(RestartPolicy::Always));
        start(&mut unit, s(0));
        assert_eq!(unit.health(), None);
        assert_eq!(unit.deadline(), None);
        assert_eq!(unit.handle(Event::Timer, s(1000)), None);
    }
}
