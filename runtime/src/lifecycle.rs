//! The OCI lifecycle, as runc and crun speak it: `create`, `start`, `state`,
//! `kill`, `delete`, `run`, `exec` and `list`.
//!
//! Between commands a container is a directory in the [`StateDir`] plus its
//! init process. Status is never stored; it is read off the world each time:
//!
//! | record        | init process (pid and start time match) | exec fifo | status   |
//! |---------------|-----------------------------------------|-----------|----------|
//! | no pid yet    | -                                       | -         | creating |
//! | pid           | alive                                   | present   | created  |
//! | pid           | alive                                   | gone      | running  |
//! | pid           | gone, zombie, or another process        | -         | stopped  |
//!
//! `create` claims the directory, records the container without a pid, makes
//! the exec fifo, spawns the init (which sets everything up, reports ready and
//! blocks reading the fifo) and records the pid. `start` writes one byte to the
//! fifo and removes it: the init reads the byte and executes the container
//! process. A `create` that fails removes what it made, the init included.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use crate::cgroup::{self, Cgroup, CgroupError, CgroupPath, HostFs, FREEZE_POLL, REMOVE_POLL};
use crate::container::{self, ContainerId};
use crate::hooks::{self, HookError};
use crate::spec;
use crate::state::{Record, StateDir, StateError};
use crate::sys;
use crate::Error;

/// The OCI runtime spec version whose state format `state` prints.
pub const OCI_VERSION: &str = "1.2.0";
/// How long `delete` waits for a killed container to be gone.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where cgroup v2 may be mounted, in the order husk looks: a pure cgroup v2
/// system, then the v2 part of a v1/v2 hybrid (which has no controllers, so
/// limits cannot be set there, but freezing and killing work).
pub const CGROUP_ROOTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
/// The cgroup below which containers get theirs unless `linux.cgroupsPath` says otherwise.
pub const DEFAULT_CGROUP_PARENT: &str = "husk";

/// The places the lifecycle works in: the state directory, procfs and cgroupfs.
#[derive(Debug, Clone)]
pub struct Host {
    /// Where containers are recorded (`--root`).
    pub state: StateDir,
    /// Where procfs is mounted, normally `/proc`.
    pub proc_root: PathBuf,
    /// The cgroup v2 mount, if there is one.
    pub cgroup_root: Option<PathBuf>,
    /// The default parent of container cgroups, relative to `cgroup_root`.
    pub cgroup_parent: String,
    /// husk's effective uid: other than 0, containers are rootless.
    pub euid: u32,
}

/// The status of a container, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Recorded, but its init does not exist yet (or `create` was interrupted).
    Creating,
    /// Set up and waiting for `start`.
    Created,
    /// The container process runs.
    Running,
    /// The container's processes are frozen (`pause`).
    Paused,
    /// The container process has ended.
    Stopped,
}

/// Why a lifecycle command refused to act.
#[derive(Debug)]
pub enum LifecycleError {
    /// The command needs another status.
    WrongStatus {
        /// The container.
        id: ContainerId,
        /// What the command was.
        command: &'static str,
        /// The status the container has.
        status: Status,
    },
    /// The container's init ended before it could be recorded.
    InitVanished(ContainerId),
    /// Writing the pid file failed.
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Talking to the exec fifo failed.
    ExecFifo {
        /// The fifo.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A killed container did not go away.
    StillAlive {
        /// The container.
        id: ContainerId,
        /// Its init.
        pid: i32,
    },
    /// A signal name or number is not one husk knows.
    BadSignal(String),
    /// A hook failed.
    Hook(HookError),
    /// The container has no cgroup, which the command needs.
    NoCgroup(ContainerId),
    /// No cgroup v2 hierarchy is mounted, but the config sets limits.
    NoCgroupRoot,
    /// husk is not root, and the config has no user namespace to be root in.
    RootlessWithoutUserns {
        /// husk's effective uid.
        uid: u32,
    },
    /// husk is not root, the config sets limits, and the cgroup parent is not
    /// delegated to husk's user.
    RootlessCgroup {
        /// husk's effective uid.
        uid: u32,
        /// The directory husk would have to create the cgroup in.
        dir: PathBuf,
    },
    /// A cgroup operation failed.
    Cgroup(CgroupError),
    /// `process.terminal` is true, but no `--console-socket` was given.
    TerminalWithoutSocket,
    /// `--console-socket` was given, but `process.terminal` is not true.
    SocketWithoutTerminal,
    /// The reaper of `run -d --rm` could not run the container.
    Reaper {
        /// The container.
        id: ContainerId,
        /// The reaper's error line; `None` if it died without one.
        message: Option<String>,
    },
    /// Writing a default `config.json` failed (or one exists).
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The container.
    pub record: Record,
    /// Its status now.
    pub status: Status,
    /// How often the kernel's OOM killer has killed a process in its cgroup
    /// (`memory.events`), where the memory controller is there to count.
    pub oom_kills: Option<u64>,
}

impl Host {
    /// The host whose state directory is `root`, with procfs at `/proc` and
    /// the first of [`CGROUP_ROOTS`] that is a cgroup v2 mount.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            state: StateDir::new(root),
            proc_root: PathBuf::from("/proc"),
            cgroup_root: CGROUP_ROOTS
                .iter()
                .map(PathBuf::from)
                .find(|dir| dir.join("cgroup.controllers").exists()),
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_owned(),
            euid: sys::effective_uid(),
        }
    }

    /// The cgroup of the container `record` describes, if it has one.
    fn cgroup(&self, record: &Record) -> Result<Option<Cgroup<HostFs>>, Error> {
        let (Some(root), Some(relative)) = (&self.cgroup_root, &record.cgroup) else {
            return Ok(None);
        };
        let path = recorded_cgroup_path(relative)?;
        match Cgroup::open(HostFs, root, &path) {
            Ok(cgroup) => Ok(Some(cgroup)),
            Err(CgroupError::NotFound { .. }) => Ok(None),
            Err(e) => Err(LifecycleError::Cgroup(e).into()),
        }
    }

    /// The status of the container `record` describes.
    pub fn status(&self, record: &Record) -> Status {
        let Some(pid) = record.pid else {
            return Status::Creating;
        };
        if !self.is_alive(pid, record.start_time) {
            Status::Stopped
        } else if self.state.exec_fifo(&record.id).exists() {
            Status::Created
        } else if matches!(self.cgroup(record), Ok(Some(c)) if c.frozen().unwrap_or(false)) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    fn is_alive(&self, pid: i32, start_time: u64) -> bool {
        matches!(process_start(&self.proc_root, pid), Some((state, start))
            if start == start_time && state != 'Z' && state != 'X')
    }
}

/// `create`: sets the container up and leaves it waiting for `start`.
pub fn create(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
    init: bool,
) -> Result<(), Error> {
    let none = spec::ProcessOverrides::default();
    create_overridden(host, id, bundle, pid_file, console_socket, init, &none)
}

/// `create` of the bundle's process changed by `overrides`, as the
/// supervisor's desired state changes it.
pub fn create_overridden(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
    init: bool,
    overrides: &spec::ProcessOverrides,
) -> Result<(), Error> {
    let (bundle, mut spec) = load_bundle(bundle)?;
    spec.reaper = init;
    spec.process = spec.process.overridden(overrides);
    let console = console(&spec.process, console_socket)?;
    let (mut record, cgroup) = claim(host, id, &bundle, &spec, None)?;
    let fifo = host.state.exec_fifo(id);
    let claimed = record.clone();
    let state = in_container_state(&claimed);
    let result = sys::mkfifo(&fifo)
        .map_err(container::ContainerError::from)
        .and_then(|()| {
            let dir = cgroup_dir(&cgroup);
            container::spawn(&spec, &state, dir, Some(&fifo), console.as_ref())
        })
        .map_err(Error::from)
        .and_then(|spawned| {
            prepared_or_killed(host, &mut record, spawned.pid, pid_file, &spec, None)
        });
    if result.is_err() {
        let _ = remove(host, &record, cgroup);
    }
    result
}

/// `start`: lets a created container execute its process.
pub fn start(host: &Host, id: &ContainerId) -> Result<(), Error> {
    let record = host.state.load(id)?;
    let status = host.status(&record);
    if status != Status::Created {
        return Err(wrong_status(id, "start", status));
    }
    release(id, &host.state.exec_fifo(id))?;
    run_hooks_warning(&record, Status::Running, |h| &h.poststart, "poststart");
    Ok(())
}

/// Lets the init waiting on `fifo` execute the container process.
fn release(id: &ContainerId, fifo: &Path) -> Result<(), Error> {
    let fifo_error = |source| LifecycleError::ExecFifo {
        path: fifo.to_owned(),
        source,
    };
    // Non-blocking: if the init is gone there is no reader and this fails at
    // once (ENXIO) instead of waiting for one.
    let mut writer = File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => wrong_status(id, "start", Status::Stopped),
            _ => fifo_error(e).into(),
        })?;
    writer.write_all(&[0]).map_err(fifo_error)?;
    fs::remove_file(fifo).map_err(fifo_error)?;
    Ok(())
}

/// The container's state as hooks get it, with the status of their moment.
fn hook_state(record: &Record, status: Status) -> String {
    state_json(&Summary {
        record: record.clone(),
        status,
        oom_kills: None,
    })
}

/// The state `createContainer` and `startContainer` hooks get, rendered in
/// the container's init: `record` with the status the init names and the pid
/// it has in the container's PID namespace (as runc gives them).
fn in_container_state(record: &Record) -> impl Fn(&'static str, i32) -> String + '_ {
    move |status, pid| {
        let status = match status {
            "creating" => Status::Creating,
            _ => Status::Created,
        };
        let record = Record {
            pid: Some(pid),
            ..record.clone()
        };
        hook_state(&record, status)
    }
}

/// Runs the `poststart` or `poststop` hooks of the container's config (read
/// again from its bundle, only if it had such hooks at create); failures are
/// warnings, as the OCI spec asks.
fn run_hooks_warning(
    record: &Record,
    status: Status,
    kind: impl FnOnce(&spec::Hooks) -> &Vec<spec::Hook>,
    name: &'static str,
) {
    if !record.hooks {
        return;
    }
    match spec::load(&record.bundle) {
        Ok(spec) => hooks::run_all_warning(name, kind(&spec.hooks), &hook_state(record, status)),
        Err(e) => eprintln!(
            "husk: warning: {name} hooks not run: {}",
            crate::error_chain(&e)
        ),
    }
}

/// `state`: the OCI state of a container, as one line of JSON.
pub fn state(host: &Host, id: &ContainerId) -> Result<String, Error> {
    let record = host.state.load(id)?;
    Ok(state_json(&summary(host, record)))
}

/// A record with what is known of it now.
fn summary(host: &Host, record: Record) -> Summary {
    let oom_kills = match host.cgroup(&record) {
        Ok(Some(cgroup)) => cgroup.stats().ok().and_then(|stats| stats.oom_kill),
        _ => None,
    };
    Summary {
        status: host.status(&record),
        record,
        oom_kills,
    }
}

/// `kill`: sends `signal` to the container's init.
pub fn kill(host: &Host, id: &ContainerId, signal: Signal) -> Result<(), Error> {
    let record = host.state.load(id)?;
    match (host.status(&record), record.pid) {
        (Status::Created | Status::Running | Status::Paused, Some(pid)) => {
            sys::forward_signal(Pid::from_raw(pid), signal)
                .map_err(container::ContainerError::from)?;
            Ok(())
        }
        (status, _) => Err(wrong_status(id, "kill", status)),
    }
}

/// `kill --all`: sends `signal` to every process in the container's cgroup.
pub fn kill_all(host: &Host, id: &ContainerId, signal: Signal) -> Result<(), Error> {
    let record = host.state.load(id)?;
    let status = host.status(&record);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_status(id, "kill", status));
    }
    let cgroup = host
        .cgroup(&record)?
        .ok_or_else(|| LifecycleError::NoCgroup(id.clone()))?;
    let send = |pid| sys::forward_signal(pid, signal);
    let result = if signal == Signal::SIGKILL {
        cgroup.kill_all(send)
    } else {
        cgroup.pids().and_then(|pids| {
            pids.into_iter()
                .try_for_each(|pid| send(pid).map_err(|source| CgroupError::Kill { pid, source }))
        })
    };
    result.map_err(|e| LifecycleError::Cgroup(e).into())
}

/// `pause`: freezes every process of a running container.
pub fn pause(host: &Host, id: &ContainerId) -> Result<(), Error> {
    freeze(host, id, true)
}

/// `resume`: thaws a paused container.
pub fn resume(host: &Host, id: &ContainerId) -> Result<(), Error> {
    freeze(host, id, false)
}

/// The most bytes of `linux.resources` JSON `update` reads.
pub const MAX_RESOURCES_BYTES: usize = 64 * 1024;

/// `update`: applies the limits in `json` (a `linux.resources` object) to a
/// container's cgroup; limits it leaves out stay as they are.
pub fn update(host: &Host, id: &ContainerId, json: &[u8]) -> Result<(), Error> {
    let record = host.state.load(id)?;
    let status = host.status(&record);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_status(id, "update", status));
    }
    let resources = cgroup::parse_resources(json).map_err(LifecycleError::Cgroup)?;
    let (Some(root), Some(relative), Some(cgroup)) =
        (&host.cgroup_root, &record.cgroup, host.cgroup(&record)?)
    else {
        return Err(LifecycleError::NoCgroup(id.clone()).into());
    };
    let path = recorded_cgroup_path(relative)?;
    cgroup
        .update(root, &path, &resources)
        .map_err(|e| LifecycleError::Cgroup(e).into())
}

/// The usage counters of a container's cgroup (memory, pids, CPU time), or
/// `None` if it has none (no cgroup v2, or the cgroup is gone).
pub fn cgroup_stats(host: &Host, id: &ContainerId) -> Result<Option<cgroup::Stats>, Error> {
    let record = host.state.load(id)?;
    match host.cgroup(&record)? {
        Some(cgroup) => Ok(Some(cgroup.stats().map_err(LifecycleError::Cgroup)?)),
        None => Ok(None),
    }
}

/// `ps`: the pids of the container's processes, in husk's PID namespace.
pub fn ps(host: &Host, id: &ContainerId) -> Result<Vec<i32>, Error> {
    let record = host.state.load(id)?;
    let cgroup = host
        .cgroup(&record)?
        .ok_or_else(|| LifecycleError::NoCgroup(id.clone()))?;
    let pids = cgroup.pids().map_err(LifecycleError::Cgroup)?;
    Ok(pids.into_iter().map(Pid::as_raw).collect())
}

fn freeze(host: &Host, id: &ContainerId, frozen: bool) -> Result<(), Error> {
    let (command, from) = if frozen {
        ("pause", Status::Running)
    } else {
        ("resume", Status::Paused)
    };
    let record = host.state.load(id)?;
    let status = host.status(&record);
    if status != from {
        return Err(wrong_status(id, command, status));
    }
    let cgroup = host
        .cgroup(&record)?
        .ok_or_else(|| LifecycleError::NoCgroup(id.clone()))?;
    let result = if frozen {
        cgroup.freeze(FREEZE_POLL)
    } else {
        cgroup.thaw(FREEZE_POLL)
    };
    result.map_err(|e| LifecycleError::Cgroup(e).into())
}

/// `delete`: removes a stopped (or, with `force`, any) container.
pub fn delete(host: &Host, id: &ContainerId, force: bool) -> Result<(), Error> {
    let record = match host.state.load(id) {
        Ok(record) => Some(record),
        Err(StateError::Incomplete(_)) if force => None,
        Err(e) => return Err(e.into()),
    };
    let Some(record) = record else {
        host.state.remove(id)?;
        return Ok(());
    };
    let status = host.status(&record);
    match (status, record.pid) {
        (Status::Stopped, _) => {}
        // A created container never ran anything: runc deletes it too.
        (Status::Created, Some(pid)) => stop(host, &record, pid)?,
        (_, Some(pid)) if force => stop(host, &record, pid)?,
        (Status::Creating, None) if force => {}
        _ => return Err(wrong_status(id, "delete", status)),
    }
    let cgroup = host.cgroup(&record)?;
    remove(host, &record, cgroup)?;
    run_hooks_warning(&record, Status::Stopped, |h| &h.poststop, "poststop");
    Ok(())
}

/// Kills whatever is left in the container's cgroup, removes the cgroup, the
/// image root it owns (unmounted) and then the state: the state goes last,
/// so a failure leaves enough behind for another `delete --force`.
fn remove(host: &Host, record: &Record, cgroup: Option<Cgroup<HostFs>>) -> Result<(), Error> {
    if let Some(cgroup) = cgroup {
        cgroup
            .kill_all(|pid| sys::forward_signal(pid, Signal::SIGKILL))
            .and_then(|()| cgroup.remove(REMOVE_POLL))
            .map_err(LifecycleError::Cgroup)?;
    }
    if let Some(dir) = &record.image_root {
        crate::image::run::remove_root(dir)?;
    }
    host.state.remove(&record.id)?;
    Ok(())
}

/// How `run` runs a container, besides its bundle.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSettings<'a> {
    /// Where to write the init's pid.
    pub pid_file: Option<&'a Path>,
    /// Return once the container runs, leaving it running.
    pub detach: bool,
    /// The unix socket to send the terminal's master to.
    pub console_socket: Option<&'a Path>,
    /// A small init as PID 1 that reaps and forwards signals.
    pub init: bool,
    /// The image container directory the container owns (`husk run
    /// --image`): recorded, and removed with the container.
    pub image_root: Option<&'a Path>,
}

/// `run`: creates and starts a container. In the foreground, waits for it,
/// removes it and returns its exit status; with `detach`, returns 0 once it runs.
pub fn run(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    settings: &RunSettings<'_>,
) -> Result<u8, Error> {
    let RunSettings {
        pid_file,
        detach,
        console_socket,
        init,
        image_root,
    } = *settings;
    let (bundle, mut spec) = load_bundle(bundle)?;
    spec.reaper = init;
    let console = console(&spec.process, console_socket)?;
    let (mut record, cgroup) = claim(host, id, &bundle, &spec, image_root)?;
    let dir = cgroup_dir(&cgroup);
    // createRuntime hooks run between setup and start: only then does the
    // init wait on the exec fifo, as for create.
    let fifo = (!spec.hooks.create_runtime.is_empty()).then(|| host.state.exec_fifo(id));
    let made: Result<(), Error> = match &fifo {
        Some(fifo) => sys::mkfifo(fifo).map_err(|e| container::ContainerError::from(e).into()),
        None => Ok(()),
    };
    let claimed = record.clone();
    let state = in_container_state(&claimed);
    let spawn = || -> Result<container::Spawned, Error> {
        made?;
        let spawned = container::spawn(&spec, &state, dir, fifo.as_deref(), console.as_ref())?;
        prepared_or_killed(
            host,
            &mut record,
            spawned.pid,
            pid_file,
            &spec,
            fifo.as_deref(),
        )?;
        Ok(spawned)
    };
    let poststart = |pid: Pid| {
        let mut running = claimed.clone();
        running.pid = Some(pid.as_raw());
        let state = hook_state(&running, Status::Running);
        hooks::run_all_warning("poststart", &spec.hooks.poststart, &state);
        Ok::<(), Error>(())
    };
    let result = if detach {
        spawn()
            .and_then(|spawned| Ok(spawned.exec_result()?))
            .and_then(poststart)
            .map(|()| 0)
    } else {
        container::run(spawn, poststart)
    };
    if result.is_err() || !detach {
        remove(host, &record, cgroup)?;
    }
    if !detach && result.is_ok() {
        hooks::run_all_warning(
            "poststop",
            &spec.hooks.poststop,
            &hook_state(&record, Status::Stopped),
        );
    }
    result
}

/// Longest error line the reaper of `run -d --rm` reports.
pub const MAX_REAPER_REPORT: u64 = 4096;

/// `run -d --rm`: runs the container detached from a reaper process that
/// removes it when it exits, and returns 0 once it runs.
///
/// husk forks the reaper before anything else, so that the container's
/// init is the reaper's child (it is a child subreaper, as the foreground
/// `run` is) and can be waited for with `waitpid` on any kernel. The reaper
/// starts a session of its own (a terminal closing sends it no SIGHUP),
/// runs the container as `run -d` does and reports on a pipe: a zero byte
/// once the container runs, else its error line, which this process returns.
/// It then points its standard descriptors at /dev/null, waits for the init
/// and deletes the container, if the record still names that init (it may
/// have been deleted, and its id reused, meanwhile). A reaper killed
/// before that leaves a stopped container that `husk delete` removes.
pub fn run_reaped(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    settings: &RunSettings<'_>,
) -> Result<u8, Error> {
    use std::io::Read;
    let (read, write) = sys::pipe().map_err(container::ContainerError::from)?;
    io::stdout().flush().ok();
    match sys::fork().map_err(container::ContainerError::from)? {
        nix::unistd::ForkResult::Child => {
            drop(read);
            reaper(host, id, bundle, settings, write)
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write);
            // The container holds no copy of the pipe once it runs (close on
            // exec), but an --init stays husk: read the first byte, and a
            // failure's line, never to the end of the file.
            let mut report = read.take(MAX_REAPER_REPORT);
            let mut first = [0; 1];
            let got = report.read(&mut first).unwrap_or(0);
            if got == 1 && first[0] == 0 {
                return Ok(0);
            }
            let mut line = Vec::new();
            let mut chunk = [0; 256];
            while !line.contains(&b'\n') {
                match report.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => line.extend_from_slice(&chunk[..n]),
                }
            }
            let line = String::from_utf8_lossy(&line);
            Err(LifecycleError::Reaper {
                id: id.clone(),
                message: (got == 1).then(|| line.lines().next().unwrap_or_default().to_owned()),
            }
            .into())
        }
    }
}

/// The reaper of [`run_reaped`], in the forked child: never returns.
fn reaper(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    settings: &RunSettings<'_>,
    mut report: File,
) -> ! {
    let detached = RunSettings {
        detach: true,
        ..*settings
    };
    // It leaves the caller's directory once the container runs: a relative
    // --root must still name the same place.
    let mut host = host.clone();
    if let Ok(root) = std::path::absolute(host.state.root()) {
        host.state = StateDir::new(root);
    }
    let host = &host;
    let ran = sys::new_session()
        .and_then(|()| sys::set_child_subreaper())
        .map_err(|e| Error::from(container::ContainerError::from(e)))
        .and_then(|()| run(host, id, bundle, &detached))
        .and_then(|_| Ok(host.state.load(id)?));
    let record = match ran {
        Ok(record) => {
            let _ = report.write_all(&[0]);
            record
        }
        Err(error) => {
            let _ = writeln!(report, "\x01{}", crate::error_chain(&error));
            sys::exit_now(1)
        }
    };
    drop(report);
    let _ = sys::stdio_to_null();
    let _ = std::env::set_current_dir("/");
    if let Some(pid) = record.pid {
        let _ = sys::wait_reaping(Pid::from_raw(pid));
    }
    if let Ok(now) = host.state.load(id) {
        if (now.pid, now.start_time) == (record.pid, record.start_time) {
            // Nothing to tell anyone: a failure leaves it for `husk delete`.
            let _ = delete(host, id, false);
        }
    }
    sys::exit_now(0)
}

/// `exec`: runs a process in a created or running container (runc's
/// contract): the process of `process_file`, else the container's
/// `config.json` process (from the bundle in its record), changed by
/// `overrides`, with the container's seccomp filter, in its cgroup and in the
/// namespaces of its init that are not husk's own. In the foreground, waits for
/// it and returns its exit status; with `detach`, returns 0 once it runs. The
/// pid file gets its pid in husk's PID namespace.
pub fn exec(
    host: &Host,
    id: &ContainerId,
    process_file: Option<&Path>,
    overrides: &spec::ProcessOverrides,
    pid_file: Option<&Path>,
    detach: bool,
    console_socket: Option<&Path>,
) -> Result<u8, Error> {
    let prepared = exec_prepare(host, id, process_file, overrides, console_socket)?;
    let (seccomp, dir) = (prepared.spec.seccomp.as_ref(), cgroup_dir(&prepared.cgroup));
    let (target, process, console) = (&prepared.target, &prepared.process, &prepared.console);
    let write_pid = |pid: Pid| match pid_file {
        Some(path) => write_pid_file(path, pid.as_raw()).map_err(Error::from),
        None => Ok(()),
    };
    if !detach {
        return container::exec(target, process, seccomp, dir, console.as_ref(), write_pid);
    }
    let pid = container::spawn_exec(target, process, seccomp, dir, console.as_ref())
        .and_then(container::Spawned::exec_result)?;
    if let Err(error) = write_pid(pid) {
        // Nobody would know of the process otherwise.
        let _ = sys::forward_signal(pid, Signal::SIGKILL);
        return Err(error);
    }
    Ok(0)
}

/// `exec --detach` of the container's process changed by `overrides`,
/// returning the process's pid once its `execve` worked: the supervisor's
/// health probes. The caller must be single-threaded and, to reap the
/// process, a child subreaper.
pub fn exec_detached(
    host: &Host,
    id: &ContainerId,
    overrides: &spec::ProcessOverrides,
) -> Result<Pid, Error> {
    let prepared = exec_prepare(host, id, None, overrides, None)?;
    let seccomp = prepared.spec.seccomp.as_ref();
    let dir = cgroup_dir(&prepared.cgroup);
    let spawned = container::spawn_exec(&prepared.target, &prepared.process, seccomp, dir, None)?;
    Ok(spawned.exec_result()?)
}

/// What `exec` has opened and read before it forks.
struct ExecPrepared {
    spec: spec::ContainerSpec,
    process: spec::Process,
    console: Option<container::ConsoleSocket>,
    cgroup: Option<Cgroup<HostFs>>,
    target: container::ExecTarget,
}

/// `exec` up to the fork: the checks, the process, and the init's namespaces.
fn exec_prepare(
    host: &Host,
    id: &ContainerId,
    process_file: Option<&Path>,
    overrides: &spec::ProcessOverrides,
    console_socket: Option<&Path>,
) -> Result<ExecPrepared, Error> {
    const COMMAND: &str = "exec in";
    let record = host.state.load(id)?;
    let status = host.status(&record);
    let (Status::Created | Status::Running, Some(init)) = (status, record.pid) else {
        return Err(wrong_status(id, COMMAND, status));
    };
    let spec = spec::load(&record.bundle)?;
    let process = match process_file {
        Some(path) => spec::load_process(path)?,
        None => spec.process.clone(),
    }
    .overridden(overrides);
    let console = console(&process, console_socket)?;
    let cgroup = host.cgroup(&record)?;
    let target =
        container::ExecTarget::open(&host.proc_root, Pid::from_raw(init)).map_err(|error| {
            match error {
                // The init is ending: its namespaces are gone before it is.
                container::ContainerError::OpenNamespace { source, .. }
                | container::ContainerError::OpenRoot { source, .. }
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    wrong_status(id, COMMAND, Status::Stopped)
                }
                error => error.into(),
            }
        })?;
    // The files opened must be the init's, not those of a process that got its
    // pid after it ended.
    if !host.is_alive(init, record.start_time) {
        return Err(wrong_status(id, COMMAND, Status::Stopped));
    }
    Ok(ExecPrepared {
        spec,
        process,
        console,
        cgroup,
        target,
    })
}

/// How often the OOM killer has killed a process in the container's cgroup,
/// where the memory controller counts it.
pub fn oom_kills(host: &Host, id: &ContainerId) -> Option<u64> {
    let record = host.state.load(id).ok()?;
    summary(host, record).oom_kills
}

/// `spec`: writes the default `config.json` into `bundle`, never over one.
pub fn write_default_config(
    bundle: &Path,
    rootless: Option<crate::template::Rootless>,
) -> Result<(), Error> {
    let path = bundle.join("config.json");
    let error = |source| LifecycleError::WriteConfig {
        path: path.clone(),
        source,
    };
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(error)?;
    file.write_all(crate::template::default_config(rootless).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = fs::remove_file(&path);
            error(e)
        })?;
    Ok(())
}

/// `list`: every container in the state directory, by id.
pub fn list(host: &Host) -> Result<Vec<Summary>, Error> {
    let mut rows = Vec::new();
    for id in host.state.ids()? {
        match host.state.load(&id) {
            Ok(record) => rows.push(summary(host, record)),
            // Interrupted creates and containers deleted meanwhile are not listed.
            Err(StateError::Incomplete(_) | StateError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rows)
}

/// `list` as a table that fits 80 columns for ids of ordinary length.
pub fn list_table(rows: &[Summary]) -> String {
    let id_width = rows
        .iter()
        .map(|r| r.record.id.as_str().len())
        .max()
        .unwrap_or(0)
        .max(2);
    let mut out = format!(
        "{:<id_width$}  {:>7}  {:<8}  {:>3}  {:<20}  BUNDLE\n",
        "ID", "PID", "STATUS", "OOM", "CREATED"
    );
    for row in rows {
        let pid = match row.status {
            Status::Stopped | Status::Creating => 0,
            _ => row.record.pid.unwrap_or(0),
        };
        let oom = row.oom_kills.map_or("-".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "{:<id_width$}  {pid:>7}  {:<8}  {oom:>3}  {:<20}  {}\n",
            row.record.id.as_str(),
            row.status,
            rfc3339(row.record.created),
            row.record.bundle.display()
        ));
    }
    out
}

/// `list --format json`: an array of OCI states.
pub fn list_json(rows: &[Summary]) -> String {
    let states: Vec<String> = rows.iter().map(state_json).collect();
    format!("[{}]", states.join(","))
}

/// Parses a signal as `kill` takes it: `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, LifecycleError> {
    let bad = || LifecycleError::BadSignal(text.to_owned());
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().map_err(|_| bad())
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// runc's rule: `process.terminal` and `--console-socket` go together.
fn check_terminal(process: &spec::Process, console_socket: Option<&Path>) -> Result<(), Error> {
    match (process.terminal, console_socket) {
        (true, None) => Err(LifecycleError::TerminalWithoutSocket.into()),
        (false, Some(_)) => Err(LifecycleError::SocketWithoutTerminal.into()),
        _ => Ok(()),
    }
}

/// The console socket `process` needs, connected before anything is made, so
/// that a bad one leaves nothing behind.
fn console(
    process: &spec::Process,
    console_socket: Option<&Path>,
) -> Result<Option<container::ConsoleSocket>, Error> {
    check_terminal(process, console_socket)?;
    Ok(console_socket
        .map(container::ConsoleSocket::connect)
        .transpose()?)
}

fn load_bundle(bundle: &Path) -> Result<(PathBuf, spec::ContainerSpec), Error> {
    let bundle = fs::canonicalize(bundle).map_err(|source| Error::Bundle {
        path: bundle.to_owned(),
        source,
    })?;
    let spec = spec::load(&bundle)?;
    Ok((bundle, spec))
}

/// Claims the container's directory, records it without a pid (so that an
/// interrupted create is visible and `delete --force` can clean it up, cgroup
/// included) and creates its cgroup with the configured limits and device
/// filter. Without a cgroup v2 hierarchy a config that asks for limits or
/// device rules is refused; one that asks for neither runs without a cgroup.
fn claim(
    host: &Host,
    id: &ContainerId,
    bundle: &Path,
    spec: &spec::ContainerSpec,
    image_root: Option<&Path>,
) -> Result<(Record, Option<Cgroup<HostFs>>), Error> {
    let rootless = host.euid != 0;
    if rootless && !spec.namespaces.contains(spec::NamespaceKind::User) {
        return Err(LifecycleError::RootlessWithoutUserns { uid: host.euid }.into());
    }
    let path = match &host.cgroup_root {
        Some(root) => {
            let path = cgroup::resolve_path(
                spec.cgroups_path.as_deref(),
                &host.cgroup_parent,
                id.as_str(),
            )
            .map_err(spec::SpecError::Cgroup)?;
            rootless_cgroup(host, root, path, &spec.resources)?
        }
        None if spec.resources.asks_for_anything() => {
            return Err(LifecycleError::NoCgroupRoot.into())
        }
        None => None,
    };
    host.state.claim(id)?;
    let record = Record {
        id: id.clone(),
        bundle: bundle.to_owned(),
        rootfs: spec.root.clone(),
        pid: None,
        start_time: 0,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cgroup: path
            .as_ref()
            .map(|p| p.relative().to_string_lossy().into_owned()),
        hooks: !(spec.hooks.poststart.is_empty() && spec.hooks.poststop.is_empty()),
        image_root: image_root.map(Path::to_owned),
    };
    let made = host
        .state
        .save(&record)
        .map_err(Error::from)
        .and_then(|()| match (&host.cgroup_root, &path) {
            (Some(root), Some(path)) => Cgroup::create(HostFs, root, path, &spec.resources)
                .map(Some)
                .map_err(|e| LifecycleError::Cgroup(e).into()),
            _ => Ok(None),
        });
    match made {
        Ok(cgroup) => Ok((record, cgroup)),
        Err(e) => {
            let _ = host.state.remove(id);
            Err(e)
        }
    }
}

/// The cgroup `path` a container gets. Where husk is not root, as runc does
/// rootless: the cgroup where its user may create it (a parent delegated by
/// `chown`, as systemd's `Delegate=yes` does); elsewhere, none at all if the
/// config sets no limits, and an error naming the directory if it does.
fn rootless_cgroup(
    host: &Host,
    root: &Path,
    path: CgroupPath,
    resources: &cgroup::Resources,
) -> Result<Option<CgroupPath>, Error> {
    if host.euid == 0 {
        return Ok(Some(path));
    }
    let full = root.join(path.relative());
    // The directory husk would create the first missing cgroup in.
    let dir = full
        .ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(root))
        .find(|dir| dir.is_dir())
        .unwrap_or(root);
    if sys::writable(dir) {
        Ok(Some(path))
    } else if !resources.asks_for_anything() {
        Ok(None)
    } else {
        Err(LifecycleError::RootlessCgroup {
            uid: host.euid,
            dir: dir.to_owned(),
        }
        .into())
    }
}

fn cgroup_dir(cgroup: &Option<Cgroup<HostFs>>) -> Option<&Path> {
    cgroup.as_ref().map(Cgroup::dir)
}

/// The [`CgroupPath`] of a recorded relative cgroup path.
fn recorded_cgroup_path(relative: &str) -> Result<CgroupPath, Error> {
    cgroup::resolve_path(
        Some(&format!("/{relative}")),
        DEFAULT_CGROUP_PARENT,
        "unused",
    )
    .map_err(|e| LifecycleError::Cgroup(e).into())
}

/// Records the init's pid, runs the createRuntime hooks and, with `release`,
/// lets the init waiting on that fifo start the process. If any of it fails,
/// kills the init, which nothing would know of otherwise.
fn prepared_or_killed(
    host: &Host,
    record: &mut Record,
    pid: Pid,
    pid_file: Option<&Path>,
    spec: &spec::ContainerSpec,
    release_fifo: Option<&Path>,
) -> Result<(), Error> {
    let prepared = record_pid(host, record, pid, pid_file).and_then(|()| {
        let state = hook_state(record, Status::Creating);
        hooks::run_all("createRuntime", &spec.hooks.create_runtime, &state)
            .map_err(LifecycleError::Hook)?;
        match release_fifo {
            Some(fifo) => release(&record.id, fifo),
            None => Ok(()),
        }
    });
    if prepared.is_err() {
        let _ = sys::forward_signal(pid, Signal::SIGKILL);
    }
    prepared
}

fn record_pid(
    host: &Host,
    record: &mut Record,
    pid: Pid,
    pid_file: Option<&Path>,
) -> Result<(), Error> {
    let (_, start_time) = process_start(&host.proc_root, pid.as_raw())
        .ok_or_else(|| LifecycleError::InitVanished(record.id.clone()))?;
    record.pid = Some(pid.as_raw());
    record.start_time = start_time;
    host.state.save(record)?;
    if let Some(path) = pid_file {
        write_pid_file(path, pid.as_raw())?;
    }
    Ok(())
}

/// Writes the pid file atomically, as runc does: the pid, no newline.
fn write_pid_file(path: &Path, pid: i32) -> Result<(), LifecycleError> {
    let error = |source| LifecycleError::PidFile {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| error(Errno::EISDIR.into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    fs::write(&tmp, pid.to_string()).map_err(error)?;
    fs::rename(&tmp, path).map_err(error)
}

/// Kills a container's init and waits until it is gone.
fn stop(host: &Host, record: &Record, pid: i32) -> Result<(), Error> {
    sys::forward_signal(Pid::from_raw(pid), Signal::SIGKILL)
        .map_err(container::ContainerError::from)?;
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while host.is_alive(pid, record.start_time) {
        if waited >= KILL_WAIT {
            return Err(LifecycleError::StillAlive {
                id: record.id.clone(),
                pid,
            }
            .into());
        }
        std::thread::sleep(step);
        waited += step;
    }
    Ok(())
}

/// The state letter and start time (field 22, clock ticks after boot) of a
/// process, from `<proc_root>/<pid>/stat`; `None` if there is no such process.
pub fn process_start(proc_root: &Path, pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 to 21 lie between the state (field 3) and the start time (22).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn wrong_status(id: &ContainerId, command: &'static str, status: Status) -> Error {
    LifecycleError::WrongStatus {
        id: id.clone(),
        command,
        status,
    }
    .into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireState<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    pid: i32,
    bundle: &'a str,
    rootfs: &'a str,
    created: &'a str,
    /// Not in the OCI state: OOM kills in the container's cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    oom_kills: Option<u64>,
}

fn state_json(summary: &Summary) -> String {
    let (record, status) = (&summary.record, summary.status);
    let pid = match status {
        // Creating with a pid: the state createRuntime hooks get.
        Status::Creating | Status::Created | Status::Running | Status::Paused => {
            record.pid.unwrap_or(0)
        }
        Status::Stopped => 0,
    };
    let created = rfc3339(record.created);
    let wire = WireState {
        oci_version: OCI_VERSION,
        id: record.id.as_str(),
        status: status.name(),
        pid,
        bundle: record.bundle.to_str().unwrap_or(""),
        rootfs: record.rootfs.to_str().unwrap_or(""),
        created: &created,
        oom_kills: summary.oom_kills,
    };
    // The record's paths were checked against the state file limit when it was
    // saved, so twice that always holds the state.
    let mut buf = vec![0; 2 * crate::state::MAX_STATE_BYTES];
    let len = serde_json_core::to_slice(&wire, &mut buf).unwrap_or(0);
    buf.truncate(len);
    String::from_utf8(buf).unwrap_or_default()
}

impl Status {
    /// The name the OCI runtime spec gives this status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongStatus {
                id,
                command,
                status,
            } => {
                let hint = match (*command, status) {
                    ("delete", _) => " (use --force to kill it first)",
                    _ => "",
                };
                write!(
                    f,
                    "cannot {command} container {}: it is {status}{hint}",
                    id.as_str()
                )
            }
            Self::InitVanished(id) => write!(
                f,
                "container {}: its init ended before it could be recorded",
                id.as_str()
            ),
            Self::PidFile { path, .. } => write!(f, "writing pid file {}", path.display()),
            Self::ExecFifo { path, .. } => write!(f, "exec fifo {}", path.display()),
            Self::StillAlive { id, pid } => write!(
                f,
                "container {}: init {pid} still alive {} s after SIGKILL",
                id.as_str(),
                KILL_WAIT.as_secs()
            ),
            Self::BadSignal(text) => write!(f, "unknown signal {text:?}"),
            Self::Hook(e) => e.fmt(f),
            Self::NoCgroup(id) => write!(f, "container {} has no cgroup", id.as_str()),
            Self::NoCgroupRoot => write!(
                f,
                "config.json sets linux.resources, but no cgroup v2 hierarchy is mounted \
                 (looked at {})",
                CGROUP_ROOTS.join(", ")
            ),
            Self::RootlessWithoutUserns { uid } => write!(
                f,
                "running as uid {uid}, not root: config.json needs a new user namespace \
                 with uid and gid maps ('husk spec --rootless' writes one)"
            ),
            Self::RootlessCgroup { uid, dir } => write!(
                f,
                "running as uid {uid}, not root: config.json sets linux.resources, but \
                 {} is not writable; delegate it to this user (chown) or remove the limits",
                dir.display()
            ),
            Self::TerminalWithoutSocket => f.write_str(
                "process.terminal is true: give --console-socket to receive the terminal",
            ),
            Self::SocketWithoutTerminal => {
                f.write_str("--console-socket given, but process.terminal is false")
            }
            Self::Cgroup(e) => e.fmt(f),
            Self::WriteConfig { path, source } if source.kind() == io::ErrorKind::AlreadyExists => {
                write!(f, "{} exists already: remove it first", path.display())
            }
            Self::WriteConfig { path, .. } => write!(f, "writing {}", path.display()),
            // The reaper ran what this process would have: its error is the one to show.
            Self::Reaper {
                message: Some(message),
                ..
            } => f.write_str(message),
            Self::Reaper { id, message: None } => write!(
                f,
                "container {}: its reaper ended before the container ran",
                id.as_str()
            ),
        }
    }
}

impl std::error::Error for LifecycleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::PidFile { source, .. } | Self::ExecFifo { source, .. } => Some(source),
            Self::WriteConfig { source, .. } if source.kind() != io::ErrorKind::AlreadyExists => {
                Some(source)
            }
            Self::Cgroup(e) => e.source(),
            Self::Hook(e) => e.source(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn host(tmp: &TempDir) -> Host {
        Host {
            state: StateDir::new(tmp.path().join("run")),
            proc_root: tmp.path().join("proc"),
            cgroup_root: None,
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_owned(),
            euid: 0,
        }
    }

    #[test]
    fn rootless_needs_a_user_namespace_and_leaves_nothing_behind() {
        let tmp = TempDir::new("rootless");
        let host = Host {
            euid: 1000,
            ..host(&tmp)
        };
        let bundle = tmp.path().join("bundle");
        fs::create_dir_all(bundle.join("rootfs")).unwrap();
        let json = r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}"#;
        fs::write(bundle.join("config.json"), json).unwrap();
        let id: ContainerId = "c".parse().unwrap();
        let error = create(&host, &id, &bundle, None, None, false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "running as uid 1000, not root: config.json needs a new user namespace \
             with uid and gid maps ('husk spec --rootless' writes one)"
        );
        assert!(!host.state.dir(&id).exists());
    }

    /// A fake /proc/<pid>/stat with the given state letter and start time.
    fn fake_process(tmp: &TempDir, pid: i32, state: char, start: u64) {
        let dir = tmp.path().join("proc").join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        let middle = ["0"; 18].join(" ");
        let stat = format!("{pid} (a (weird) name) {state} {middle} {start} 0 0\n");
        fs::write(dir.join("stat"), stat).unwrap();
    }

    fn record(id: &str, pid: Option<i32>, start_time: u64) -> Record {
        Record {
            id: id.parse().unwrap(),
            bundle: PathBuf::from("/b"),
            rootfs: PathBuf::from("/b/rootfs"),
            pid,
            start_time,
            created: 0,
            cgroup: None,
            hooks: false,
            image_root: None,
        }
    }

    #[test]
    fn process_start_reads_past_the_command_name() {
        let tmp = TempDir::new("stat");
        fake_process(&tmp, 42, 'S', 123_456);
        assert_eq!(
            process_start(&tmp.path().join("proc"), 42),
            Some(('S', 123_456))
        );
        assert_eq!(process_start(&tmp.path().join("proc"), 43), None);
    }

    #[test]
    fn status_is_read_off_the_process_and_the_fifo() {
        let tmp = TempDir::new("status");
        let host = host(&tmp);
        let rec = record("c", Some(42), 100);
        host.state.claim(&rec.id).unwrap();
        assert_eq!(host.status(&record("c", None, 0)), Status::Creating);
        assert_eq!(host.status(&rec), Status::Stopped);
        fake_process(&tmp, 42, 'S', 100);
        assert_eq!(host.status(&rec), Status::Running);
        fs::write(host.state.exec_fifo(&rec.id), "").unwrap();
        assert_eq!(host.status(&rec), Status::Created);
        // A recycled pid is another process; a zombie has ended.
        fake_process(&tmp, 42, 'S', 999);
        assert_eq!(host.status(&rec), Status::Stopped);
        fake_process(&tmp, 42, 'Z', 100);
        assert_eq!(host.status(&rec), Status::Stopped);
    }

    #[test]
    fn commands_refuse_the_wrong_status() {
        let tmp = TempDir::new("wrong");
        let host = host(&tmp);
        let rec = record("c", Some(42), 100);
        host.state.claim(&rec.id).unwrap();
        host.state.save(&rec).unwrap();
        fake_process(&tmp, 42, 'S', 100);
        let err = delete(&host, &rec.id, false).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot delete container c: it is running (use --force to kill it first)"
        );
        let err = start(&host, &rec.id).unwrap_err().to_string();
        assert_eq!(err, "cannot start container c: it is running");
        // exec reads the config of the bundle the record names.
        let none = spec::ProcessOverrides::default();
        let err = exec(&host, &rec.id, None, &none, None, false, None).unwrap_err();
        assert_eq!(err.to_string(), "reading /b/config.json");
        fake_process(&tmp, 42, 'Z', 100);
        let err = kill(&host, &rec.id, Signal::SIGTERM).unwrap_err();
        assert_eq!(err.to_string(), "cannot kill container c: it is stopped");
        let none = spec::ProcessOverrides::default();
        let err = exec(&host, &rec.id, None, &none, None, false, None).unwrap_err();
        assert_eq!(err.to_string(), "cannot exec in container c: it is stopped");
        let creating = record("c", None, 0);
        host.state.save(&creating).unwrap();
        let err = exec(&host, &rec.id, None, &none, None, false, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot exec in container c: it is creating"
        );
        host.state.save(&rec).unwrap();
        delete(&host, &rec.id, false).unwrap();
        assert!(!host.state.dir(&rec.id).exists());
    }

    #[test]
    fn terminal_and_console_socket_go_together() {
        let bundle = TempDir::new("terminal");
        let process = |terminal: bool| {
            let json = format!(r#"{{"args": ["sh"], "cwd": "/", "terminal": {terminal}}}"#);
            spec::parse_process(json.as_bytes(), Path::new("/p.json")).unwrap()
        };
        let socket = bundle.path().join("console.sock");
        let error = |terminal, socket: Option<&Path>| {
            crate::error_chain(&console(&process(terminal), socket).unwrap_err())
        };
        assert_eq!(
            error(true, None),
            "process.terminal is true: give --console-socket to receive the terminal"
        );
        assert_eq!(
            error(false, Some(&socket)),
            "--console-socket given, but process.terminal is false"
        );
        assert!(console(&process(false), None).unwrap().is_none());
        assert!(error(true, Some(&socket)).starts_with(&format!(
            "connecting to console socket {}: ",
            socket.display()
        )));
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(console(&process(true), Some(&socket)).unwrap().is_some());
    }

    #[test]
    fn delete_force_removes_an_interrupted_create() {
        let tmp = TempDir::new("interrupted");
        let host = host(&tmp);
        let id: ContainerId = "c".parse().unwrap();
        host.state.claim(&id).unwrap();
        let err = delete(&host, &id, false).unwrap_err().to_string();
        assert!(err.contains("husk delete --force c"), "{err}");
        delete(&host, &id, true).unwrap();
        assert!(!host.state.dir(&id).exists());
        let err = delete(&host, &id, true).unwrap_err().to_string();
        assert_eq!(err, "container c does not exist");
    }

    #[test]
    fn state_json_follows_the_oci_state_format() {
        let mut rec = record("web", Some(42), 7);
        rec.created = 1_795_800_000;
        let summary = |status, oom_kills| Summary {
            record: rec.clone(),
            status,
            oom_kills,
        };
        assert_eq!(
            state_json(&summary(Status::Running, None)),
            r#"{"ociVersion":"1.2.0","id":"web","status":"running","pid":42,"bundle":"/b","rootfs":"/b/rootfs","created":"2026-11-27T17:20:00Z"}"#
        );
        assert!(state_json(&summary(Status::Stopped, None)).contains(r#""pid":0"#));
        assert!(state_json(&summary(Status::Running, Some(2))).ends_with(r#","oomKills":2}"#));
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn signals_parse_like_runc() {
        for text in ["TERM", "SIGTERM", "term", "15"] {
            assert_eq!(parse_signal(text).unwrap(), Signal::SIGTERM, "{text}");
        }
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        for text in ["", "NOPE", "99", "-1"] {
            assert!(parse_signal(text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_table_fits_80_columns() {
        let rows = vec![Summary {
            record: record("a-typical-container-id", Some(1234), 1),
            status: Status::Running,
            oom_kills: Some(0),
        }];
        let table = list_table(&rows);
        assert!(table.starts_with("ID                          PID  STATUS    OOM"));
        for line in table.lines() {
            assert!(line.len() <= 80, "{line}");
        }
        assert!(table.contains("     1234  running     0  1970-01-01T00:00:00Z  /b"));
    }
}
