//! `husk daemon`: the device supervisor. It reads the desired state
//! ([`desired`]), starts each container through the lifecycle
//! (`create`, `start`, `delete`), keeps each one's [`supervisor::Unit`]
//! (restart policy, backoff, health), writes their output to rotated files
//! ([`logs`]) and publishes its view ([`status`]).
//!
//! One thread, one loop: the daemon is a child subreaper, so every container
//! init (and every health probe) ends as its child; it blocks SIGCHLD,
//! SIGTERM, SIGINT and SIGHUP and takes them from a signalfd, and waits in
//! `poll(2)` on that descriptor, on the read ends of its containers' output
//! pipes, and until the next timer of any unit. Forks happen only in this
//! single-threaded process, as the process model requires.
//!
//! The daemon never holds the only copy of anything: a container's state is
//! the runtime's (`<root>/<id>`), its output is on disk, and its status is
//! published on every change. Killed and started again, it removes whatever
//! runtime state its containers left (`delete --force`: the recorded pid is
//! killed only if its start time still matches, and the cgroup is emptied)
//! and starts the desired state afresh.

pub mod agent;
pub mod control;
pub mod desired;
pub mod logs;
pub mod readers;
pub mod status;
pub mod supervisor;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

use crate::container::ContainerId;
use crate::image::{self, store::Store};
use crate::lifecycle::{self, Host};
use crate::spec::ProcessOverrides;
use crate::sys::{self, SysError};
use crate::Error;

use desired::{DesiredState, Entry, Probe, Source};
use logs::{LogLimits, LogWriter};
use status::{ContainerStatus, DaemonStatus, STATUS_FILE};
use supervisor::{Action, Event, Exit, Time, Unit};

/// Where the daemon keeps its files unless `--data-dir` says otherwise: the
/// data directory the image store uses.
pub use crate::image::store::DEFAULT_DATA_DIR;
/// The desired-state file in the data directory.
pub const DESIRED_FILE: &str = "desired.json";
/// The file a running daemon holds an exclusive `flock` on, so that a second
/// daemon with the same data directory refuses to start.
pub const LOCK_FILE: &str = "daemon.lock";
/// The most bytes read from one container's pipe per wake-up, so that one
/// chatty container cannot starve the loop.
pub const PIPE_READ_BYTES: usize = 16 * 1024;
/// How long the daemon waits at most between looks at its timers (a bound,
/// not a tick: it wakes earlier for any event).
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How the daemon was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The data directory: desired state, logs, status.
    pub data_dir: PathBuf,
    /// Sizes of the log files.
    pub log_limits: LogLimits,
    /// The group of the control socket (`--group`), besides root.
    pub group: Option<String>,
    /// The group that may read the device's state (`--read-group`).
    pub read_group: Option<String>,
}

/// Why the daemon stopped or refused to start.
#[derive(Debug)]
pub enum DaemonError {
    /// The desired state at start was refused.
    Desired(desired::DesiredError),
    /// A system call the loop needs failed.
    Sys {
        /// What the daemon was doing.
        op: &'static str,
        /// The failure.
        source: SysError,
    },
    /// The data directory cannot be made.
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Another daemon runs with this data directory.
    Running {
        /// The lock file it holds.
        lock: PathBuf,
    },
    /// The status file cannot be read (`husk daemon status`).
    Status(status::StatusError),
    /// The control socket refused a request, or cannot be made.
    Control(control::ControlError),
    /// `husk exec NAME`: neither --root nor the daemon has the container.
    Unknown {
        /// The container.
        name: String,
        /// The state directory looked in first.
        root: PathBuf,
        /// The data directory of the daemon looked for.
        data_dir: PathBuf,
        /// Why the daemon's status could not be read, if it could not.
        status: Option<Box<status::StatusError>>,
    },
    /// `husk exec NAME`: the daemon supervises it, but it does not run.
    NotRunning {
        /// The container.
        name: String,
        /// Its state, as the daemon published it.
        state: String,
    },
    /// A container's logs cannot be read (`husk logs`).
    Logs {
        /// The container.
        name: String,
        /// Its log directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// `husk daemon`: supervises the desired state until SIGTERM or SIGINT, then
/// stops every container and returns 0.
pub fn run(host: &Host, options: &Options) -> Result<u8, Error> {
    let desired_path = options.data_dir.join(DESIRED_FILE);
    let desired = desired::load(&desired_path).map_err(DaemonError::Desired)?;
    let group = |name: &Option<String>, op| -> Result<Option<u32>, Error> {
        let Some(name) = name else { return Ok(None) };
        let gid = sys::group_id(name)
            .map_err(sys_error(op))?
            .ok_or_else(|| DaemonError::Control(control::ControlError::NoGroup(name.clone())))?;
        Ok(Some(gid))
    };
    let gid = group(&options.group, "look the --group up")?;
    let read_gid = group(&options.read_group, "look the --read-group up")?;
    fs::create_dir_all(&options.data_dir).map_err(|source| DaemonError::DataDir {
        path: options.data_dir.clone(),
        source,
    })?;
    if let Some(gid) = read_gid {
        // Supervision matters more: the containers run even if this fails.
        if let Err(e) = readers::grant(&options.data_dir, gid) {
            say(&format!("--read-group: {}", crate::error_chain(&e)));
        }
    }
    let lock_path = options.data_dir.join(LOCK_FILE);
    let lock_file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| DaemonError::DataDir {
            path: lock_path.clone(),
            source,
        })?;
    let _lock = lock_data_dir(lock_file, &lock_path)?;
    let mut signals = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        signals.add(signal);
    }
    let signals = sys::SignalFd::new(&signals).map_err(sys_error("block signals"))?;
    sys::set_child_subreaper().map_err(sys_error("become a child subreaper"))?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| DaemonError::DataDir {
            path: PathBuf::from("/dev/null"),
            source,
        })?;
    let mut daemon = Daemon {
        host,
        options,
        desired_path,
        origin: Instant::now(),
        slots: Vec::new(),
        probes: Vec::new(),
        desired_error: None,
        shutting_down: false,
        devnull,
        published: None,
        status_failing: false,
        agent: None,
        // Supervision matters more than the socket: without it, the daemon
        // still runs its containers.
        control: match control::Server::bind(host.state.root(), gid) {
            Ok(server) => Some(server),
            Err(e) => {
                say(&format!("no control socket: {}", crate::error_chain(&e)));
                None
            }
        },
    };
    // The last view published: what to clean up, and the counts to go on from.
    let previous = DaemonStatus::read(&options.data_dir.join(STATUS_FILE)).ok();
    daemon.remove_stale(&desired, previous.as_ref());
    daemon.slots = desired
        .containers
        .into_iter()
        .map(|entry| {
            let old = previous
                .as_ref()
                .and_then(|p| p.containers.iter().find(|c| c.name == entry.name.as_str()));
            let mut slot = Slot::new(entry);
            if let Some(old) = old {
                slot.unit.restore(&history(old));
            }
            slot
        })
        .collect();
    say(&format!(
        "supervising {} container(s) from {}",
        daemon.slots.len(),
        daemon.desired_path.display()
    ));
    daemon.agent = agent::Agent::new(&options.data_dir, Some(host.state.root()), daemon.now());
    daemon.serve(&signals)?;
    say("stopped every container; exiting");
    Ok(0)
}

/// The loop's state.
struct Daemon<'a> {
    host: &'a Host,
    options: &'a Options,
    desired_path: PathBuf,
    origin: Instant,
    slots: Vec<Slot>,
    probes: Vec<RunningProbe>,
    desired_error: Option<String>,
    shutting_down: bool,
    devnull: File,
    published: Option<DaemonStatus>,
    /// Writing the status failed last time (said once).
    status_failing: bool,
    /// The update agent's side, when updates are configured.
    agent: Option<agent::Agent>,
    /// The control socket, if it could be made.
    control: Option<control::Server>,
}

/// A container of the desired state, and what the loop holds for it.
struct Slot {
    unit: Unit,
    /// The read end of its output pipe, while a writer may live.
    pipe: Option<File>,
    log: Option<LogWriter>,
    /// The last error about it (a failed start), for the status.
    error: Option<String>,
    /// No longer desired: dropped once stopped.
    removing: bool,
    /// Writing its log failed last time (said once).
    log_failing: bool,
    /// Starting its health probe failed last time (said once).
    probe_failing: bool,
}

/// A health probe under way.
struct RunningProbe {
    name: ContainerId,
    pid: Pid,
    deadline: Time,
    /// Timed out and killed; its end is no news.
    timed_out: bool,
}

impl Slot {
    /// Reports a probe's answer to the unit, and says when the health changes.
    fn probed(&mut self, ok: bool, now: Time) {
        let before = self.unit.health();
        self.unit.handle(Event::Probed { ok }, now);
        match self.unit.health() {
            Some(health) if Some(health) != before => {
                say(&format!("{}: {}", self.id().as_str(), health.name()));
            }
            _ => {}
        }
    }

    fn new(entry: Entry) -> Self {
        Self {
            unit: Unit::new(entry),
            pipe: None,
            log: None,
            error: None,
            removing: false,
            log_failing: false,
            probe_failing: false,
        }
    }

    fn id(&self) -> &ContainerId {
        &self.unit.entry().name
    }
}

impl Daemon<'_> {
    fn serve(&mut self, signals: &sys::SignalFd) -> Result<(), Error> {
        loop {
            let now = self.now();
            self.fire_timers(now);
            self.agent_tick(now);
            self.control_tick(now);
            self.slots
                .retain(|slot| !slot.removing || slot.unit.is_active());
            self.publish();
            if self.shutting_down
                && self.probes.is_empty()
                && self.slots.iter().all(|s| !s.unit.is_active())
            {
                return Ok(());
            }
            let timeout = self.next_deadline().map(|at| at.saturating_sub(self.now()));
            let timeout = Some(timeout.map_or(MAX_SLEEP, |t| t.min(MAX_SLEEP)));
            let piped: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].pipe.is_some())
                .collect();
            let mut fds: Vec<BorrowedFd<'_>> = vec![signals.as_fd()];
            fds.extend(
                piped
                    .iter()
                    .filter_map(|&i| self.slots[i].pipe.as_ref().map(AsFd::as_fd)),
            );
            // Served on the next turn, whichever of them woke the loop.
            if let Some(control) = &self.control {
                fds.extend(control.fds());
            }
            let ready = sys::poll_readable(&fds, timeout).map_err(sys_error("poll"))?;
            drop(fds);
            for (&i, _) in piped.iter().zip(&ready[1..]).filter(|(_, &r)| r) {
                self.read_pipe(i, PIPE_READ_BYTES);
            }
            if ready[0] {
                while let Some(signal) = signals.take().map_err(sys_error("read signals"))? {
                    match signal {
                        Signal::SIGCHLD => self.reap()?,
                        Signal::SIGHUP => self.reload(),
                        _ => self.shut_down(),
                    }
                }
            }
            self.time_out_probes();
        }
    }

    fn now(&self) -> Time {
        self.origin.elapsed()
    }

    fn next_deadline(&self) -> Option<Time> {
        let units = self.slots.iter().filter_map(|s| s.unit.deadline());
        let probes = self
            .probes
            .iter()
            .filter(|p| !p.timed_out)
            .map(|p| p.deadline);
        let agent = self.agent.as_ref().and_then(agent::Agent::deadline);
        let control = self.control.as_ref().and_then(|c| c.deadline(self.now()));
        units.chain(probes).chain(agent).chain(control).min()
    }

    /// Polls for updates when due, and judges a release on probation from
    /// the containers of the current desired state.
    fn agent_tick(&mut self, now: Time) {
        let Some(mut agent) = self.agent.take() else {
            return;
        };
        if !self.shutting_down {
            agent.poll_if_due(now, &self.options.data_dir);
        }
        let mut action = agent::AgentAction::None;
        if agent.on_probation() && !self.shutting_down {
            if let Ok(desired) = desired::load(&self.desired_path) {
                // Only containers already running what the state desires.
                let containers: Vec<ContainerStatus> = self
                    .slots
                    .iter()
                    .filter(|s| !s.removing && desired.containers.contains(s.unit.entry()))
                    .map(slot_status)
                    .collect();
                action = agent.judge(now, &desired, &containers);
            }
        }
        self.agent = Some(agent);
        if action == agent::AgentAction::Reload {
            self.reload();
        }
    }

    /// Serves the control socket: each complete request acted on and
    /// answered (the status as it will be published).
    fn control_tick(&mut self, now: Time) {
        let Some(mut control) = self.control.take() else {
            return;
        };
        for (id, request) in control.service(now) {
            let reply = self.control(&request, now);
            control.reply(id, reply, self.now());
        }
        self.control = Some(control);
    }

    /// Acts on one control request; returns the reply line.
    fn control(&mut self, request: &control::Request, now: Time) -> String {
        use control::Request;
        let name = match request {
            Request::Status => return control::status_reply(&self.view().to_json()),
            Request::Stop(name) | Request::Start(name) | Request::Restart(name) => name,
        };
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.id() == name && !s.removing)
        else {
            let error = format!("no container {} is supervised", name.as_str());
            return control::reply_line(Err(&error));
        };
        if self.shutting_down {
            return control::reply_line(Err("the daemon is shutting down"));
        }
        let active = self.slots[i].unit.is_active();
        let stopping = matches!(
            self.slots[i].unit.state(),
            supervisor::State::Stopping { .. }
        );
        // A stopped unit stays stopped: no timer of its restarts it.
        let (event, message) = match request {
            Request::Stop(_) if active => (Some(Event::Stop), "stopping"),
            Request::Stop(_) => (Some(Event::Stop), "held stopped"),
            Request::Start(_) if active && !stopping => (None, "already running"),
            Request::Restart(_) if active => (Some(self.replace_event(i)), "restarting"),
            _ => (Some(self.replace_event(i)), "starting"),
        };
        say(&format!(
            "{}: {message} (asked on the control socket)",
            name.as_str()
        ));
        if let Some(action) = event.and_then(|e| self.slots[i].unit.handle(e, now)) {
            self.perform(i, action);
        }
        control::reply_line(Ok(&format!("{}: {message}", name.as_str())))
    }

    /// The same entry again: a unit that runs stops and starts anew, one
    /// that does not starts (its counts kept).
    fn replace_event(&self, i: usize) -> Event {
        Event::Replace(Box::new(self.slots[i].unit.entry().clone()))
    }

    /// Lets every unit act on the time, and does what each asks.
    fn fire_timers(&mut self, now: Time) {
        for i in 0..self.slots.len() {
            while let Some(action) = self.slots[i].unit.handle(Event::Timer, now) {
                self.perform(i, action);
            }
        }
    }

    fn perform(&mut self, i: usize, action: Action) {
        let id = self.slots[i].id().clone();
        match action {
            Action::Start => self.start(i),
            Action::Probe => self.probe(i),
            Action::Terminate | Action::Kill => {
                let signal = if action == Action::Kill {
                    Signal::SIGKILL
                } else {
                    Signal::SIGTERM
                };
                if let Some(pid) = self.slots[i].unit.pid() {
                    say(&format!("{}: sending {signal}", id.as_str()));
                    if let Err(e) = sys::forward_signal(Pid::from_raw(pid), signal) {
                        say(&format!("{}: {}", id.as_str(), crate::error_chain(&e)));
                    }
                }
            }
        }
    }

    /// Creates and starts the container of slot `i`, its output on a new pipe.
    fn start(&mut self, i: usize) {
        let now = self.now();
        let slot = &mut self.slots[i];
        let id = slot.unit.entry().name.clone();
        // A container of this name left behind is not ours to trust.
        let _ = delete_container(self.host, &self.options.data_dir, &id);
        let started = (|| -> Result<(i32, File), Error> {
            if slot.log.is_none() {
                let dir = logs::dir(&self.options.data_dir, id.as_str());
                let log = LogWriter::open(&dir, self.options.log_limits).map_err(|source| {
                    DaemonError::Logs {
                        name: id.as_str().to_owned(),
                        dir,
                        source,
                    }
                })?;
                slot.log = Some(log);
            }
            let (read, write) = sys::pipe().map_err(sys_error("make an output pipe"))?;
            sys::set_nonblocking(read.as_fd()).map_err(sys_error("make an output pipe"))?;
            let bundle = bundle_dir(slot.unit.entry(), &self.options.data_dir)?;
            let overrides = &slot.unit.entry().overrides;
            {
                let _stdio =
                    sys::redirect_stdio(self.devnull.as_fd(), write.as_fd(), write.as_fd())
                        .map_err(sys_error("redirect output"))?;
                lifecycle::create_overridden(self.host, &id, &bundle, None, None, false, overrides)
                    .and_then(|()| lifecycle::start(self.host, &id))?;
            }
            let pid = self.host.state.load(&id)?.pid.unwrap_or(0);
            Ok((pid, read))
        })();
        match started {
            Ok((pid, read)) => {
                say(&format!("{}: started, pid {pid}", id.as_str()));
                slot.pipe = Some(read);
                slot.error = None;
                slot.unit.handle(
                    Event::Started {
                        pid,
                        wall: wall_now(),
                    },
                    now,
                );
            }
            Err(error) => {
                let message = crate::error_chain(&error);
                say(&format!("{}: cannot start: {message}", id.as_str()));
                slot.error = Some(message);
                let _ = delete_container(self.host, &self.options.data_dir, &id);
                let exit = Event::Exited {
                    exit: Exit::StartFailed,
                    oom: false,
                };
                slot.unit.handle(exit, now);
                self.after_exit(i);
            }
        }
    }

    /// Starts the health probe of slot `i`.
    fn probe(&mut self, i: usize) {
        let now = self.now();
        let slot = &self.slots[i];
        let id = slot.id().clone();
        let (Some(check), Some(init)) = (&slot.unit.entry().health, slot.unit.pid()) else {
            return;
        };
        let spawned = match &check.probe {
            Probe::Exec(command) => {
                let overrides = ProcessOverrides {
                    args: command.clone(),
                    ..ProcessOverrides::default()
                };
                let null = self.devnull.as_fd();
                sys::redirect_stdio(null, null, null)
                    .map_err(|e| crate::error_chain(&e))
                    .and_then(|_stdio| {
                        lifecycle::exec_detached(self.host, &id, &overrides)
                            .map_err(|e| crate::error_chain(&e))
                    })
            }
            Probe::Tcp { port } => {
                fork_probe(&self.host.proc_root, init, *port, None, check.timeout)
            }
            Probe::Http { port, path } => {
                fork_probe(&self.host.proc_root, init, *port, Some(path), check.timeout)
            }
        };
        match spawned {
            Ok(pid) => {
                let deadline = now + check.timeout;
                self.slots[i].probe_failing = false;
                self.probes.push(RunningProbe {
                    name: id,
                    pid,
                    deadline,
                    timed_out: false,
                });
            }
            Err(message) => {
                // Said once per failing spell, not every interval.
                let slot = &mut self.slots[i];
                if !slot.probe_failing {
                    slot.probe_failing = true;
                    say(&format!(
                        "{}: health probe not started (a failure): {message}",
                        id.as_str()
                    ));
                }
                slot.probed(false, now);
            }
        }
    }

    /// Kills the probes that took too long; each is a failure.
    fn time_out_probes(&mut self) {
        let now = self.now();
        for p in 0..self.probes.len() {
            let probe = &mut self.probes[p];
            if probe.timed_out || now < probe.deadline {
                continue;
            }
            probe.timed_out = true;
            let _ = sys::forward_signal(probe.pid, Signal::SIGKILL);
            let name = probe.name.clone();
            if let Some(slot) = self.slots.iter_mut().find(|s| s.id() == &name) {
                slot.probed(false, now);
            }
        }
    }

    /// Reaps every child that ended: container inits and probes.
    fn reap(&mut self) -> Result<(), Error> {
        while let Some(reaped) = sys::reap_any().map_err(sys_error("reap"))? {
            let now = self.now();
            let pid = reaped.pid.as_raw();
            if let Some(agent) = self.agent.as_mut().filter(|a| a.is_child(reaped.pid)) {
                if agent.ended(reaped.code, now) == agent::AgentAction::Reload {
                    self.reload();
                }
            } else if let Some(i) = self.slots.iter().position(|s| s.unit.pid() == Some(pid)) {
                self.container_ended(i, reaped, now);
            } else if let Some(p) = self.probes.iter().position(|p| p.pid == reaped.pid) {
                let probe = self.probes.swap_remove(p);
                if !probe.timed_out {
                    let ok = reaped.code == Some(0);
                    if let Some(slot) = self.slots.iter_mut().find(|s| s.id() == &probe.name) {
                        slot.probed(ok, now);
                    }
                }
            }
            // Anything else is an orphan some container left: reaped, no news.
        }
        Ok(())
    }

    /// Records how the init of slot `i` ended and removes the container.
    fn container_ended(&mut self, i: usize, reaped: sys::Reaped, now: Time) {
        let id = self.slots[i].id().clone();
        let oom = lifecycle::oom_kills(self.host, &id).unwrap_or(0) > 0;
        if let Err(e) = delete_container(self.host, &self.options.data_dir, &id) {
            say(&format!(
                "{}: removing it: {}",
                id.as_str(),
                crate::error_chain(&e)
            ));
        }
        // Whatever it wrote last, before its pipe goes.
        self.read_pipe(i, usize::MAX);
        let exit = match (reaped.code, reaped.signal) {
            (Some(code), _) => Exit::Code(code),
            (None, signal) => Exit::Signal(signal.unwrap_or(0)),
        };
        let slot = &mut self.slots[i];
        slot.unit.handle(Event::Exited { exit, oom }, now);
        let how = match exit {
            Exit::Code(code) => format!("exited with code {code}"),
            Exit::Signal(signal) => format!("killed by signal {signal}"),
            Exit::StartFailed => "failed to start".to_owned(),
        };
        let oom = if oom { " (OOM kill)" } else { "" };
        say(&format!("{}: {how}{oom}", id.as_str()));
        self.after_exit(i);
    }

    /// Says what the unit of slot `i` does after an exit.
    fn after_exit(&self, i: usize) {
        let slot = &self.slots[i];
        let now = self.now();
        let next = match slot.unit.state() {
            supervisor::State::BackingOff { until } => {
                let delay = until.saturating_sub(now);
                format!("restarting in {} ms", delay.as_millis())
            }
            state => state.name().to_owned(),
        };
        say(&format!("{}: {next}", slot.id().as_str()));
    }

    /// Copies what slot `i`'s pipe holds into its log, at most `limit` bytes;
    /// at end of file the pipe is closed.
    fn read_pipe(&mut self, i: usize, limit: usize) {
        let slot = &mut self.slots[i];
        let Some(pipe) = slot.pipe.as_mut() else {
            return;
        };
        let mut buf = [0; PIPE_READ_BYTES];
        let mut total = 0;
        while total < limit {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    slot.pipe = None;
                    return;
                }
                Ok(n) => {
                    total += n;
                    let wall = wall_now();
                    let written = slot.log.as_mut().map(|log| log.write(&buf[..n], wall));
                    // Said once per failing spell (a full disk), not per read;
                    // the output is dropped meanwhile: a container never waits
                    // for its log.
                    match written {
                        Some(Err(e)) if !slot.log_failing => {
                            slot.log_failing = true;
                            say(&format!(
                                "{}: writing its log (output dropped until it works again): {e}",
                                slot.unit.entry().name.as_str()
                            ));
                        }
                        Some(Ok(())) => slot.log_failing = false,
                        _ => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// SIGTERM or SIGINT: stop every container, then exit.
    fn shut_down(&mut self) {
        if self.shutting_down {
            return;
        }
        say("stopping every container");
        self.shutting_down = true;
        if let Some(agent) = self.agent.as_mut() {
            agent.stop();
        }
        let now = self.now();
        for i in 0..self.slots.len() {
            if let Some(action) = self.slots[i].unit.handle(Event::Stop, now) {
                self.perform(i, action);
            }
        }
        for probe in &mut self.probes {
            probe.timed_out = true;
            let _ = sys::forward_signal(probe.pid, Signal::SIGKILL);
        }
    }

    /// SIGHUP: reads the desired state again; keeps the old one if the new
    /// one is refused.
    fn reload(&mut self) {
        if self.shutting_down {
            return;
        }
        let desired = match desired::load(&self.desired_path) {
            Ok(desired) => desired,
            Err(error) => {
                let message = crate::error_chain(&error);
                say(&format!("keeping the desired state in effect: {message}"));
                self.desired_error = Some(message);
                return;
            }
        };
        self.desired_error = None;
        let now = self.now();
        for i in 0..self.slots.len() {
            let id = self.slots[i].id().clone();
            if !desired.containers.iter().any(|e| e.name == id) && !self.slots[i].removing {
                say(&format!("{}: no longer desired", id.as_str()));
                self.slots[i].removing = true;
                if let Some(action) = self.slots[i].unit.handle(Event::Stop, now) {
                    self.perform(i, action);
                }
            }
        }
        if let Some(agent) = self.agent.as_mut() {
            agent.notice_probation(now);
        }
        for entry in desired.containers {
            match self.slots.iter().position(|s| s.id() == &entry.name) {
                Some(i) if self.slots[i].unit.entry() != &entry || self.slots[i].removing => {
                    say(&format!("{}: changed; replacing it", entry.name.as_str()));
                    self.slots[i].removing = false;
                    if let Some(action) = self.slots[i]
                        .unit
                        .handle(Event::Replace(Box::new(entry)), now)
                    {
                        self.perform(i, action);
                    }
                }
                Some(_) => {}
                None => {
                    say(&format!("{}: newly desired", entry.name.as_str()));
                    self.slots.push(Slot::new(entry));
                }
            }
        }
    }

    /// Removes the runtime state the desired containers, and those of the last
    /// published status, left: their pids are not trusted.
    fn remove_stale(&self, desired: &DesiredState, previous: Option<&DaemonStatus>) {
        let mut names: Vec<ContainerId> =
            desired.containers.iter().map(|e| e.name.clone()).collect();
        if let Some(old) = previous {
            names.extend(old.containers.iter().filter_map(|c| c.name.parse().ok()));
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        let store = Store::new(&self.options.data_dir);
        for id in names {
            let image_dir = image::run::container_dir(&store, &id);
            if !self.host.state.dir(&id).exists() && !image_dir.exists() {
                continue;
            }
            match delete_container(self.host, &self.options.data_dir, &id) {
                Ok(()) => say(&format!(
                    "{}: removed what a previous run left",
                    id.as_str()
                )),
                Err(e) => say(&format!(
                    "{}: cannot remove what a previous run left: {}",
                    id.as_str(),
                    crate::error_chain(&e)
                )),
            }
        }
    }

    /// The daemon's view of itself and its containers.
    fn view(&self) -> DaemonStatus {
        DaemonStatus {
            pid: std::process::id() as i32,
            root: Some(self.host.state.root().to_owned()),
            desired_error: self.desired_error.clone(),
            containers: self.slots.iter().map(slot_status).collect(),
        }
    }

    /// Writes the status file if the view changed.
    fn publish(&mut self) {
        let view = self.view();
        if self.published.as_ref() == Some(&view) {
            return;
        }
        match view.write(&self.options.data_dir.join(STATUS_FILE)) {
            // Said once per failing spell (a full disk), and tried again on
            // the next change.
            Err(e) if !self.status_failing => {
                self.status_failing = true;
                say(&crate::error_chain(&e));
            }
            Err(_) => {}
            Ok(()) => self.status_failing = false,
        }
        self.published = Some(view);
    }
}

/// The counts a previous daemon published for a container.
fn history(old: &ContainerStatus) -> supervisor::History {
    let last_exit = match (old.exit_code, old.exit_signal, &old.error) {
        (Some(code), _, _) => Some(Exit::Code(code)),
        (None, Some(signal), _) => Some(Exit::Signal(signal)),
        (None, None, Some(_)) => Some(Exit::StartFailed),
        (None, None, None) => None,
    };
    supervisor::History {
        restarts: old.restarts,
        oom_kills: old.oom_kills,
        last_exit,
    }
}

fn slot_status(slot: &Slot) -> ContainerStatus {
    let unit = &slot.unit;
    let (exit_code, exit_signal) = match unit.last_exit() {
        Some(Exit::Code(code)) => (Some(code), None),
        Some(Exit::Signal(signal)) => (None, Some(signal)),
        Some(Exit::StartFailed) | None => (None, None),
    };
    ContainerStatus {
        name: unit.entry().name.as_str().to_owned(),
        state: unit.state().name().to_owned(),
        health: unit.health().map(|h| h.name().to_owned()),
        restarts: unit.restarts(),
        exit_code,
        exit_signal,
        error: slot.error.clone(),
        oom_kills: unit.oom_kills(),
        pid: unit.pid(),
        started_at: unit.started_wall(),
    }
}

/// The bundle directory an entry runs: its own, or for an image one made
/// under `<data-dir>/containers/<name>` with the image's layers mounted as
/// its root (`image::run::prepare`; `delete_container` undoes it). An error
/// is a failed start, retried as the restart policy says.
fn bundle_dir(entry: &Entry, data_dir: &Path) -> Result<PathBuf, Error> {
    match &entry.source {
        Source::Bundle(path) => Ok(path.clone()),
        Source::Image(name) => {
            let store = Store::new(data_dir);
            let options = image::run::RunOptions::default();
            Ok(image::run::prepare(
                &store,
                name,
                &entry.name,
                &[],
                &[],
                &options,
            )?)
        }
        Source::Pinned(pinned) => {
            let store = Store::new(data_dir);
            let options = image::run::RunOptions::default();
            Ok(image::run::prepare_pinned(
                &store,
                pinned,
                &entry.name,
                &[],
                &[],
                &options,
            )?)
        }
    }
}

/// `delete --force` of container `id`, and the unmounting and removal of
/// the bundle an image entry had made for it, if there is one.
fn delete_container(host: &Host, data_dir: &Path, id: &ContainerId) -> Result<(), Error> {
    let deleted = match host.state.dir(id).exists() {
        true => lifecycle::delete(host, id, true),
        false => Ok(()),
    };
    let store = Store::new(data_dir);
    if image::run::container_dir(&store, id).exists() {
        image::run::finish(&store, id)?;
    }
    deleted
}

/// Forks a child that joins `init`'s network namespace and connects to
/// 127.0.0.1:`port` (and, with `path`, sends `GET path` and wants a status
/// of 200 to 399); it exits 0 if all went well.
fn fork_probe(
    proc_root: &Path,
    init: i32,
    port: u16,
    path: Option<&str>,
    timeout: Duration,
) -> Result<Pid, String> {
    match sys::fork().map_err(|e| crate::error_chain(&e))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let ok = sys::join_net_namespace(proc_root, Pid::from_raw(init)).is_ok()
                && connect_probe(port, path, timeout).unwrap_or(false);
            sys::exit_now(if ok { 0 } else { 1 })
        }
    }
}

fn connect_probe(port: u16, path: Option<&str>, timeout: Duration) -> io::Result<bool> {
    use std::io::Write;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    let Some(path) = path else {
        return Ok(true);
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: husk\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0; 12];
    stream.read_exact(&mut head)?;
    Ok(http_ok(&head))
}

/// Whether a response starting `HTTP/1.x NNN` has a status of 200 to 399.
fn http_ok(head: &[u8]) -> bool {
    let (Some(version), Some(code)) = (head.get(..7), head.get(9..12)) else {
        return false;
    };
    version == b"HTTP/1."
        && head.get(8) == Some(&b' ')
        && (&b"200"[..]..&b"400"[..]).contains(&code)
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One line on stderr, which the init system keeps.
pub(crate) fn say(message: &str) {
    eprintln!("husk daemon: {message}");
}

fn sys_error(op: &'static str) -> impl Fn(SysError) -> DaemonError {
    move |source| DaemonError::Sys { op, source }
}

/// `husk daemon status`: the published view, as a table or JSON.
pub fn print_status(data_dir: &Path, json: bool) -> Result<(), Error> {
    let status = DaemonStatus::read(&data_dir.join(STATUS_FILE)).map_err(DaemonError::Status)?;
    if json {
        println!("{}", status.to_json());
        return Ok(());
    }
    print!("{}", status.table(wall_now()));
    // A pid that is gone is certain; one that exists may be another process.
    if !Path::new("/proc").join(status.pid.to_string()).exists() {
        println!(
            "husk daemon (pid {}) is not running: this is the last it published",
            status.pid
        );
    }
    Ok(())
}

/// `husk exec NAME` of a container `root` does not hold: the state directory
/// the daemon of `data_dir` runs container `name` in (as its status says;
/// `root` if it does not say); `None` if no daemon ever ran with `data_dir`
/// (then it is runc's exec, and runc's error).
pub fn supervised_root(
    data_dir: &Path,
    root: &Path,
    name: &ContainerId,
) -> Result<Option<PathBuf>, DaemonError> {
    let unknown = |status| DaemonError::Unknown {
        name: name.as_str().to_owned(),
        root: root.to_owned(),
        data_dir: data_dir.to_owned(),
        status,
    };
    let status = match DaemonStatus::read(&data_dir.join(STATUS_FILE)) {
        Err(status::StatusError::Read { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(None)
        }
        read => read.map_err(|e| unknown(Some(Box::new(e))))?,
    };
    let container = (status.containers.iter())
        .find(|c| c.name == name.as_str())
        .ok_or_else(|| unknown(None))?;
    let alive = Path::new("/proc").join(status.pid.to_string()).exists();
    if container.pid.is_none() || !alive {
        let state = match alive {
            true => container.state.clone(),
            false => format!(
                "{} (its daemon, pid {}, is gone)",
                container.state, status.pid
            ),
        };
        return Err(DaemonError::NotRunning {
            name: name.as_str().to_owned(),
            state,
        });
    }
    Ok(Some(status.root.unwrap_or_else(|| root.to_owned())))
}

/// How long the daemon tries for its lock: `husk status` and `husk update
/// apply` ask whether a daemon runs by taking it for a moment when it is
/// free, and a daemon starting in that moment must not take them for
/// another daemon (the power-cut runs met that: the daemon gave up).
const LOCK_TRIES: u32 = 40;
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// The data directory's lock, held for the daemon's life.
fn lock_data_dir(file: File, path: &Path) -> Result<sys::FileLock, Error> {
    let mut file = file;
    for _ in 1..LOCK_TRIES {
        let retry = file.try_clone().map_err(|source| DaemonError::DataDir {
            path: path.to_owned(),
            source,
        })?;
        if let Some(lock) =
            sys::try_lock(file, path).map_err(sys_error("lock the data directory"))?
        {
            return Ok(lock);
        }
        std::thread::sleep(LOCK_RETRY);
        file = retry;
    }
    sys::try_lock(file, path)
        .map_err(sys_error("lock the data directory"))?
        .ok_or_else(|| {
            DaemonError::Running {
                lock: path.to_owned(),
            }
            .into()
        })
}

/// Tells the daemon of `data_dir`, if one runs, to read its desired state
/// again (SIGHUP); says whether one was told.
pub fn reload_running(data_dir: &Path) -> bool {
    let lock_path = data_dir.join(LOCK_FILE);
    let Ok(file) = File::options().write(true).open(&lock_path) else {
        return false;
    };
    // The lock free: no daemon.
    if !matches!(sys::try_lock(file, &lock_path), Ok(None)) {
        return false;
    }
    let Ok(status) = DaemonStatus::read(&data_dir.join(STATUS_FILE)) else {
        return false;
    };
    sys::forward_signal(Pid::from_raw(status.pid), Signal::SIGHUP).is_ok()
}

/// How `husk logs` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogsOptions {
    /// Only the last this many lines (of those since `since`).
    pub tail: Option<usize>,
    /// Only the lines written since then.
    pub since: Option<logs::Since>,
    /// Then what the container writes, until interrupted.
    pub follow: bool,
    /// Each line with the time it was written.
    pub timestamps: bool,
}

/// `husk logs`: a container's logs, as `options` say.
pub fn print_logs(data_dir: &Path, name: &ContainerId, options: LogsOptions) -> Result<(), Error> {
    let LogsOptions {
        tail,
        since,
        follow,
        timestamps,
    } = options;
    let dir = logs::dir(data_dir, name.as_str());
    let error = |source| DaemonError::Logs {
        name: name.as_str().to_owned(),
        dir: dir.clone(),
        source,
    };
    let since = since.map(|since| since.resolve(wall_now()));
    let mut out = logs::Filter::new(io::stdout().lock(), since, timestamps);
    let printed = logs::print(&dir, tail, &mut out).and_then(|current| {
        if !follow {
            return Ok(());
        }
        let mut follower = logs::Follower::new(&dir, current);
        loop {
            follower.poll(&mut out)?;
            std::thread::sleep(logs::FOLLOW_POLL);
        }
    });
    match printed {
        // The reader went away (`husk logs -f | head`): done.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        printed => Ok(printed.map_err(error)?),
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Desired(e) => write!(f, "not starting: {e}"),
            Self::Sys { op, .. } => write!(f, "daemon: cannot {op}"),
            Self::DataDir { path, .. } => write!(f, "daemon: cannot use {}", path.display()),
            Self::Running { lock } => write!(
                f,
                "another husk daemon runs with this data directory (it holds {})",
                lock.display()
            ),
            Self::Status(e) => e.fmt(f),
            Self::Control(e) => e.fmt(f),
            Self::Unknown {
                name,
                root,
                data_dir,
                status,
            } => {
                let root = root.display();
                match status {
                    Some(_) => write!(
                        f,
                        "container {name} does not exist in {root}, and the daemon's status \
                         cannot be read"
                    ),
                    None => write!(
                        f,
                        "container {name} does not exist in {root}, nor in the desired state \
                         of {}",
                        data_dir.display()
                    ),
                }
            }
            Self::NotRunning { name, state } => {
                write!(f, "container {name} is not running ({state})")
            }
            Self::Logs { name, dir, source } if source.kind() == io::ErrorKind::NotFound => write!(
                f,
                "no logs of container {name} (looked in {})",
                dir.display()
            ),
            Self::Logs { name, dir, .. } => {
                write!(f, "logs of container {name} in {}", dir.display())
            }
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Desired(e) => e.source(),
            Self::Sys { source, .. } => Some(source),
            Self::DataDir { source, .. } => Some(source),
            Self::Running { .. } | Self::NotRunning { .. } => None,
            Self::Unknown { status, .. } => status.as_deref().map(|e| e as _),
            Self::Status(e) => e.source(),
            Self::Control(e) => e.source(),
            Self::Logs { source, .. } if source.kind() != io::ErrorKind::NotFound => Some(source),
            Self::Logs { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines() {
        assert!(http_ok(b"HTTP/1.0 200"));
        assert!(http_ok(b"HTTP/1.1 302"));
        assert!(!http_ok(b"HTTP/1.1 404"));
        assert!(!http_ok(b"HTTP/1.1 500"));
        assert!(!http_ok(b"HTTP/2.0 200"));
        assert!(!http_ok(b"SSH-2.0-Open"));
        assert!(!http_ok(b"HTTP/1.1"));
    }

    #[test]
    fn history_is_read_back_from_the_status() {
        let old = ContainerStatus {
            restarts: 4,
            oom_kills: 2,
            exit_signal: Some(9),
            ..ContainerStatus::default()
        };
        let h = history(&old);
        assert_eq!(
            (h.restarts, h.oom_kills, h.last_exit),
            (4, 2, Some(Exit::Signal(9)))
        );
        let old = ContainerStatus {
            error: Some("bundle /x".to_owned()),
            ..ContainerStatus::default()
        };
        assert_eq!(history(&old).last_exit, Some(Exit::StartFailed));
        assert_eq!(history(&ContainerStatus::default()).last_exit, None);
    }

    #[test]
    fn a_bundle_entry_runs_its_bundle() {
        let json = br#"{"containers": [{"name": "c", "bundle": "/srv/c"}]}"#;
        let entry = &desired::parse(json).unwrap().containers[0];
        assert_eq!(
            bundle_dir(entry, Path::new("/var/lib/husk")).unwrap(),
            PathBuf::from("/srv/c")
        );
    }
}
