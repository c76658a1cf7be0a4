//! The field engineer's commands, read-only views for a serial console or an
//! SSH session: `husk status` ("is this device healthy?"), `husk ps` without
//! an id (the supervised containers, like `docker ps`), `husk inspect NAME`
//! and `husk stats [--watch]`.
//!
//! Everything is gathered from what the rest of husk leaves on disk, with
//! its roots as parameters ([`Sources`]): the daemon's `status.json` and its
//! lock in the data directory, `update/config.json` and `update/state.json`,
//! `desired.json`, the runtime's state directory and, through the
//! lifecycle, each container's cgroup. A part that cannot be read is shown
//! as a problem; the rest is still shown.
//!
//! Text is plain, fits 80 columns (for names of up to 20 bytes) and uses
//! no colour or cursor movement, except `stats --watch` on a terminal whose
//! `TERM` is set and not `dumb`, which redraws in place.
//!
//! # Exit status of `husk status`
//!
//! The most serious finding wins: [`EXIT_DAEMON_DOWN`] (5) the daemon does
//! not run, or its status cannot be read; [`EXIT_ATTENTION`] (6) a
//! container is unhealthy, given up or backing off, the desired state was
//! refused, an update file cannot be read, or the data partition has less
//! than [`LOW_DISK_PERCENT`] % free; [`EXIT_PROBATION`] (7) the running
//! release is on probation; 0 all is well. 1 is husk's own failure.
//!
//! # JSON (stable; members are only ever added)
//!
//! Numbers are integers; times are seconds since the epoch; absent values
//! are `null`.
//!
//! `husk status --json`: one object
//! `{"schemaVersion":1, "husk":"0.1.0", "arch":"x86_64",
//! "device":{"class","hardware"}|null, "daemon":{"running":bool,"pid"|null},
//! "release":{"current","committed":bool,"probationSince"|null,"installedAt"|null}|null,
//! "lastCheck":{"at","ok":bool,"message"}|null, "containers":[CONTAINER],
//! "disk":{"path","freeBytes","totalBytes"}|null, "problems":["..."],
//! "exitCode"}`, where CONTAINER is
//! `{"name","state","health"|null,"restarts","pid"|null,"startedAt"|null,
//! "memoryBytes"|null,"memoryLimitBytes"|null,"cpuUsec"|null,"pids"|null}`
//! (`memoryLimitBytes` null: no limit; `cpuUsec` the CPU time used since it
//! started).
//!
//! `husk ps --json`: an array of
//! `{"name","image","state","health"|null,"restarts","pid"|null,"startedAt"|null}`
//! (`image`: the image name, or the bundle directory).
//!
//! `husk stats --json`: per sample one line, an array of
//! `{"name","cpuPercent"|null,"memoryBytes"|null,"memoryLimitBytes"|null,"pids"|null}`
//! (`cpuPercent`: hundredths of a percent of one CPU over the sample).
//!
//! `husk inspect NAME --json`: `{"name","desired":{"source","restart",
//! "stopTimeoutSecs","health"|null}|null,"status":CONTAINER-of-status.json|null,
//! "oci":OCI-state|null,"cgroup":{"memoryBytes","memoryLimitBytes","pids",
//! "cpuUsec","oomKills"}|null}`.
//!
//! `husk config show --json`: `{"schemaVersion":1,"dataDir","stateRoot",
//! "desired":{"path","present":bool,"release"|null,"error"|null,
//! "containers":[{"name","source","restart","stopTimeoutSecs","health"|null,
//! "bundleConfig"|null,"error"|null,"memoryMaxBytes"|null,"pidsMax"|null,
//! "cpuQuotaUsec"|null,"cpuPeriodUsec"|null}]},
//! "update":{"path","from":"data"|"image","error"|null,"server"|null,
//! "deviceClass"|null,"hardware"|null,"intervalSecs"|null,"graceSecs"|null}|null,
//! "trustedRoot":{"path","from","error"|null,"version"|null,"expires"|null}|null,
//! "board":{"path","error"|null,"name"|null,"arch"|null,"kernelFragment"|null}|null,
//! "ok":bool}` (`release`: the update release the desired state links to;
//! `error`: what `husk config check` says of that file; `ok`: whether it
//! would exit 0).

pub mod config;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cgroup::{Limit, Stats};
use crate::container::ContainerId;
use crate::daemon::desired::{self, Entry, Probe, RestartPolicy, Source};
use crate::daemon::status::{ContainerStatus, DaemonStatus, STATUS_FILE};
use crate::daemon::{DESIRED_FILE, LOCK_FILE};
use crate::lifecycle::{self, Host};
use crate::update::config::Config;
use crate::update::state::UpdateState;
use crate::update::Layout;

/// `husk status`: the daemon does not run, or its status cannot be read.
pub const EXIT_DAEMON_DOWN: u8 = 5;
/// `husk status`: something needs attention (a container unhealthy, given
/// up or backing off; a refused desired state; an unreadable update file;
/// a nearly full data partition).
pub const EXIT_ATTENTION: u8 = 6;
/// `husk status`: the running release is on probation.
pub const EXIT_PROBATION: u8 = 7;
/// Below this share of free space the data partition is a problem.
pub const LOW_DISK_PERCENT: u64 = 5;
/// How long `husk stats` samples CPU time for its one-shot answer.
pub const STATS_SAMPLE: Duration = Duration::from_secs(1);
/// How often `husk stats --watch` redraws.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The JSON schema version of `husk status --json`.
pub const SCHEMA_VERSION: u32 = 1;
/// Width of the text views.
const WIDTH: usize = 80;

/// Where the views read from.
pub struct Sources<'a> {
    /// The data directory (`--data-dir`).
    pub data_dir: &'a Path,
    /// The runtime's state directory, procfs and cgroupfs.
    pub host: &'a Host,
}

/// Why a view could not be given.
#[derive(Debug)]
pub enum FieldError {
    /// The daemon's status cannot be read (`ps`, `inspect`, `stats`).
    Status(crate::daemon::status::StatusError),
    /// No supervised container has this name.
    NoSuchContainer {
        /// The name asked for.
        name: String,
        /// The status file looked in.
        path: PathBuf,
    },
}

/// One supervised container and its cgroup's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// As the daemon published it.
    pub status: ContainerStatus,
    /// Its cgroup's counters, while it has one.
    pub usage: Option<Stats>,
}

/// The daemon, as its lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// It holds its lock; the pid its status gives.
    Running(Option<i32>),
    /// Nobody holds the lock.
    Down,
}

/// The running release, from `update/state.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Its version (0: the device's own desired state).
    pub current: u64,
    /// When it was switched to, while on probation.
    pub probation_since: Option<u64>,
    /// When it was installed (its last `installed` history entry).
    pub installed_at: Option<u64>,
}

/// Everything `husk status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Seconds since the epoch when it was gathered.
    pub now: u64,
    /// The device class and hardware of `update/config.json`.
    pub device: Option<(String, String)>,
    /// The running release, when updates are configured or ever ran.
    pub release: Option<Release>,
    /// The last check of the update server.
    pub last_check: Option<crate::update::state::LastCheck>,
    /// The daemon.
    pub daemon: Daemon,
    /// The desired state the daemon refused, if it did.
    pub desired_error: Option<String>,
    /// The supervised containers.
    pub containers: Vec<Row>,
    /// The data directory, and its free and total bytes.
    pub disk: Option<(PathBuf, u64, u64)>,
    /// Parts that could not be read, each one line.
    pub errors: Vec<(u8, String)>,
}

/// Gathers `husk status` at `now` (seconds since the epoch).
pub fn gather(sources: &Sources<'_>, now: u64) -> Report {
    let data_dir = sources.data_dir;
    let layout = Layout::new(data_dir);
    let mut errors = Vec::new();
    let device = match layout.config().exists() {
        false => None,
        true => match Config::load(&layout.config()) {
            Ok(config) => Some((config.class, config.hardware)),
            Err(e) => {
                errors.push((EXIT_ATTENTION, crate::error_chain(&e)));
                None
            }
        },
    };
    let (release, last_check) = match UpdateState::load(&layout.state()) {
        Ok(state) if layout.state().exists() || device.is_some() => {
            let installed_at = state
                .history
                .iter()
                .rev()
                .find(|h| h.release == state.current && h.event == "installed")
                .map(|h| h.at);
            let release = Release {
                current: state.current,
                probation_since: state.probation_since,
                installed_at,
            };
            (Some(release), state.last_check)
        }
        Ok(_) => (None, None),
        Err(e) => {
            errors.push((EXIT_ATTENTION, crate::error_chain(&e)));
            (None, None)
        }
    };
    let running = daemon_running(data_dir);
    let status = match DaemonStatus::read(&data_dir.join(STATUS_FILE)) {
        Ok(status) => Some(status),
        Err(e) => {
            if running {
                errors.push((EXIT_DAEMON_DOWN, crate::error_chain(&e)));
            }
            None
        }
    };
    let daemon = match running {
        true => Daemon::Running(status.as_ref().map(|s| s.pid)),
        false => Daemon::Down,
    };
    let (containers, desired_error) = match status {
        Some(status) => (rows(sources.host, status.containers), status.desired_error),
        None => (Vec::new(), None),
    };
    let disk = match crate::sys::disk_space(data_dir) {
        Ok((free, total)) => Some((data_dir.to_owned(), free, total)),
        Err(e) => {
            errors.push((EXIT_ATTENTION, crate::error_chain(&e)));
            None
        }
    };
    Report {
        now,
        device,
        release,
        last_check,
        daemon,
        desired_error,
        containers,
        disk,
        errors,
    }
}

/// Whether a daemon holds the lock of `data_dir`. The lock is taken for a
/// moment if it is free (read-only, so any user who can read it may ask).
pub fn daemon_running(data_dir: &Path) -> bool {
    let path = data_dir.join(LOCK_FILE);
    let Ok(file) = File::open(&path) else {
        return false;
    };
    matches!(crate::sys::try_lock(file, &path), Ok(None))
}

/// The containers with their cgroups' counters, where they have them.
fn rows(host: &Host, containers: Vec<ContainerStatus>) -> Vec<Row> {
    containers
        .into_iter()
        .map(|status| {
            let usage = match (&status.pid, status.name.parse::<ContainerId>()) {
                (Some(_), Ok(id)) => lifecycle::cgroup_stats(host, &id).ok().flatten(),
                _ => None,
            };
            Row { status, usage }
        })
        .collect()
}

/// Whether a container needs attention, and why.
fn unwell(c: &ContainerStatus) -> Option<&'static str> {
    match (c.state.as_str(), c.health.as_deref()) {
        (_, Some("unhealthy")) => Some("is unhealthy"),
        ("given-up", _) => Some("was given up"),
        ("backing-off", _) => Some("keeps failing (backing off)"),
        _ => None,
    }
}

impl Report {
    /// The problems found, each with the exit status it calls for, most
    /// serious first.
    pub fn problems(&self) -> Vec<(u8, String)> {
        let mut problems = Vec::new();
        if self.daemon == Daemon::Down {
            problems.push((EXIT_DAEMON_DOWN, "the daemon is not running".to_owned()));
        }
        problems.extend(self.errors.iter().cloned());
        if let Some(error) = &self.desired_error {
            problems.push((
                EXIT_ATTENTION,
                format!("desired state not applied: {error}"),
            ));
        }
        for c in &self.containers {
            if let Some(why) = unwell(&c.status) {
                problems.push((EXIT_ATTENTION, format!("{} {why}", c.status.name)));
            }
        }
        if let Some((path, free, total)) = &self.disk {
            if *total > 0 && free * 100 < total * LOW_DISK_PERCENT {
                problems.push((
                    EXIT_ATTENTION,
                    format!("{} is {}% full", path.display(), 100 - free * 100 / total),
                ));
            }
        }
        if let Some(Release {
            current,
            probation_since: Some(_),
            ..
        }) = &self.release
        {
            problems.push((EXIT_PROBATION, format!("release {current} is on probation")));
        }
        problems.sort_by_key(|(code, _)| *code);
        problems
    }

    /// The exit status: the most serious problem's, or 0.
    pub fn exit_code(&self) -> u8 {
        self.problems().first().map_or(0, |(code, _)| *code)
    }

    /// The report as text that fits 80 columns.
    pub fn text(&self) -> String {
        let mut out = crate::cli::version();
        if let Some((class, hardware)) = &self.device {
            out.push_str(&format!(", device {class} on {hardware}"));
        }
        out.push('\n');
        let mut line = |label: &str, text: String| {
            let line = format!("{label:<9} {text}");
            out.push_str(cut(&line, WIDTH - 1));
            out.push('\n');
        };
        line(
            "daemon",
            match self.daemon {
                Daemon::Running(Some(pid)) => format!("running, pid {pid}"),
                Daemon::Running(None) => "running".to_owned(),
                Daemon::Down => "NOT RUNNING".to_owned(),
            },
        );
        if let Some(release) = &self.release {
            let name = match release.current {
                0 => "none (the device's own desired state)".to_owned(),
                v => v.to_string(),
            };
            let phase = match release.probation_since {
                Some(since) => format!("on probation for {}", ago(self.now, since)),
                None => "committed".to_owned(),
            };
            let installed = release
                .installed_at
                .map(|at| format!(", installed {} ago", ago(self.now, at)))
                .unwrap_or_default();
            line("release", format!("{name}, {phase}{installed}"));
            line(
                "checked",
                match &self.last_check {
                    Some(c) => format!(
                        "{} ago, {}: {}",
                        ago(self.now, c.at),
                        if c.ok { "ok" } else { "failed" },
                        c.message
                    ),
                    None => "never".to_owned(),
                },
            );
        }
        if let Some((path, free, total)) = &self.disk {
            let percent = (free * 100).checked_div(*total).unwrap_or(0);
            line(
                "disk",
                format!(
                    "{}: {} free of {} ({percent}%)",
                    path.display(),
                    size(*free),
                    size(*total)
                ),
            );
        }
        if !self.containers.is_empty() {
            out.push('\n');
            out.push_str(&self.container_table());
        }
        out.push('\n');
        let problems = self.problems();
        let verdict = match problems.len() {
            0 => "ok".to_owned(),
            n => format!("{n} problem(s)"),
        };
        out.push_str(&format!("{:<9} {verdict}\n", "health"));
        for (_, problem) in problems {
            out.push_str(cut(&format!("  - {problem}"), WIDTH - 1));
            out.push('\n');
        }
        out
    }

    fn container_table(&self) -> String {
        let width = name_width(self.containers.iter().map(|c| &c.status));
        let mut out = format!(
            "{:<width$}  {:<11}  {:<9}  {:>3}  {:>4}  {:>15}  {:>5}\n",
            "NAME", "STATE", "HEALTH", "RST", "UP", "MEMORY/LIMIT", "CPU"
        );
        for row in &self.containers {
            let c = &row.status;
            let memory = match &row.usage {
                Some(Stats {
                    memory_current: Some(used),
                    memory_max,
                    ..
                }) => format!("{}/{}", size(*used), limit(memory_max.as_ref())),
                _ => "-".to_owned(),
            };
            let cpu = match (&row.usage, c.started_at) {
                (
                    Some(Stats {
                        cpu_usage_usec: Some(usec),
                        ..
                    }),
                    Some(at),
                ) => percent(cpu_hundredths(
                    *usec,
                    self.now.saturating_sub(at) * 1_000_000,
                )),
                _ => "-".to_owned(),
            };
            out.push_str(&format!(
                "{:<width$}  {:<11}  {:<9}  {:>3}  {:>4}  {memory:>15}  {cpu:>5}\n",
                c.name,
                c.state,
                c.health.as_deref().unwrap_or("-"),
                c.restarts,
                up(c, self.now),
            ));
        }
        out
    }

    /// The report as one line of JSON (the schema in the module docs).
    pub fn json(&self) -> String {
        let containers: Vec<ContainerOut<'_>> =
            self.containers.iter().map(ContainerOut::new).collect();
        let problems = self.problems();
        let problem_texts: Vec<&str> = problems.iter().map(|(_, p)| p.as_str()).collect();
        let out = ReportOut {
            schema_version: SCHEMA_VERSION,
            husk: env!("CARGO_PKG_VERSION"),
            arch: std::env::consts::ARCH,
            device: self
                .device
                .as_ref()
                .map(|(class, hardware)| DeviceOut { class, hardware }),
            daemon: DaemonOut {
                running: self.daemon != Daemon::Down,
                pid: match self.daemon {
                    Daemon::Running(pid) => pid,
                    Daemon::Down => None,
                },
            },
            release: self.release.as_ref().map(|r| ReleaseOut {
                current: r.current,
                committed: r.probation_since.is_none(),
                probation_since: r.probation_since,
                installed_at: r.installed_at,
            }),
            last_check: self.last_check.as_ref().map(|c| CheckOut {
                at: c.at,
                ok: c.ok,
                message: &c.message,
            }),
            containers: &containers,
            disk: self.disk.as_ref().map(|(path, free, total)| DiskOut {
                path: path.to_str().unwrap_or("?"),
                free_bytes: *free,
                total_bytes: *total,
            }),
            problems: &problem_texts,
            exit_code: self.exit_code(),
        };
        let strings = problem_texts.iter().map(|p| p.len()).sum::<usize>()
            + self.last_check.as_ref().map_or(0, |c| c.message.len())
            + self.device.as_ref().map_or(0, |(c, h)| c.len() + h.len())
            + self.disk.as_ref().map_or(0, |d| d.0.as_os_str().len());
        to_json(&out, strings, containers.len())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportOut<'a> {
    schema_version: u32,
    husk: &'a str,
    arch: &'a str,
    device: Option<DeviceOut<'a>>,
    daemon: DaemonOut,
    release: Option<ReleaseOut>,
    last_check: Option<CheckOut<'a>>,
    containers: &'a [ContainerOut<'a>],
    disk: Option<DiskOut<'a>>,
    problems: &'a [&'a str],
    exit_code: u8,
}

#[derive(Serialize)]
struct DeviceOut<'a> {
    class: &'a str,
    hardware: &'a str,
}

#[derive(Serialize)]
struct DaemonOut {
    running: bool,
    pid: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseOut {
    current: u64,
    committed: bool,
    probation_since: Option<u64>,
    installed_at: Option<u64>,
}

#[derive(Serialize)]
struct CheckOut<'a> {
    at: u64,
    ok: bool,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskOut<'a> {
    path: &'a str,
    free_bytes: u64,
    total_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerOut<'a> {
    name: &'a str,
    state: &'a str,
    health: Option<&'a str>,
    restarts: u32,
    pid: Option<i32>,
    started_at: Option<u64>,
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    cpu_usec: Option<u64>,
    pids: Option<u64>,
}

impl<'a> ContainerOut<'a> {
    fn new(row: &'a Row) -> Self {
        let c = &row.status;
        let usage = row.usage.as_ref();
        Self {
            name: &c.name,
            state: &c.state,
            health: c.health.as_deref(),
            restarts: c.restarts,
            pid: c.pid,
            started_at: c.started_at,
            memory_bytes: usage.and_then(|u| u.memory_current),
            memory_limit_bytes: usage.and_then(|u| limit_bytes(u.memory_max.as_ref())),
            cpu_usec: usage.and_then(|u| u.cpu_usage_usec),
            pids: usage.and_then(|u| u.pids_current),
        }
    }
}

/// `value` as JSON, in a buffer big enough for `strings` bytes of strings
/// (each character escapes to at most six) and `items` objects of numbers.
fn to_json(value: &impl Serialize, strings: usize, items: usize) -> String {
    let mut buf = vec![0; 6 * strings + 512 * (items + 2)];
    let len = serde_json_core::to_slice(value, &mut buf).unwrap_or(0);
    buf.truncate(len);
    String::from_utf8(buf).unwrap_or_default()
}

// ---------------------------------------------------------------- husk ps

/// `husk ps` without an id: the supervised containers, with the image (or
/// bundle) each runs as the desired state says.
pub fn ps(sources: &Sources<'_>) -> Result<(DaemonStatus, Vec<String>), FieldError> {
    let status = read_status(sources.data_dir)?;
    let desired = desired::load(&sources.data_dir.join(DESIRED_FILE)).ok();
    let images = status
        .containers
        .iter()
        .map(|c| {
            desired
                .as_ref()
                .and_then(|d| d.containers.iter().find(|e| e.name.as_str() == c.name))
                .map_or_else(|| "-".to_owned(), |e| source_name(&e.source))
        })
        .collect();
    Ok((status, images))
}

/// `husk ps` as a table: NAME IMAGE STATE HEALTH RESTARTS UPTIME.
pub fn ps_table(status: &DaemonStatus, images: &[String], now: u64) -> String {
    let width = name_width(status.containers.iter());
    let mut out = format!(
        "{:<width$}  {:<24}  {:<11}  {:<9}  {:>3}  UP\n",
        "NAME", "IMAGE", "STATE", "HEALTH", "RST"
    );
    for (c, image) in status.containers.iter().zip(images) {
        let image = shorten(image, 24);
        out.push_str(&format!(
            "{:<width$}  {image:<24}  {:<11}  {:<9}  {:>3}  {}\n",
            c.name,
            c.state,
            c.health.as_deref().unwrap_or("-"),
            c.restarts,
            up(c, now)
        ));
    }
    out
}

/// `husk ps --json` (schema in the module docs).
pub fn ps_json(status: &DaemonStatus, images: &[String]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PsOut<'a> {
        name: &'a str,
        image: &'a str,
        state: &'a str,
        health: Option<&'a str>,
        restarts: u32,
        pid: Option<i32>,
        started_at: Option<u64>,
    }
    let rows: Vec<PsOut<'_>> = status
        .containers
        .iter()
        .zip(images)
        .map(|(c, image)| PsOut {
            name: &c.name,
            image,
            state: &c.state,
            health: c.health.as_deref(),
            restarts: c.restarts,
            pid: c.pid,
            started_at: c.started_at,
        })
        .collect();
    let strings = images.iter().map(String::len).sum();
    to_json(&rows.as_slice(), strings, rows.len())
}

// ---------------------------------------------------------------- husk inspect

/// `husk inspect NAME`: everything known of one supervised container.
#[derive(Debug)]
pub struct Inspection {
    /// Its name.
    pub name: ContainerId,
    /// Its entry of the desired state, if that can be read and has it.
    pub desired: Option<Entry>,
    /// What the daemon published of it.
    pub status: Option<ContainerStatus>,
    /// Its OCI state (`husk state`), if the runtime has it.
    pub oci: Option<String>,
    /// Its cgroup's counters and memory limit.
    pub cgroup: Option<Stats>,
}

/// Gathers `husk inspect NAME`; refuses a name neither the status nor the
/// desired state knows.
pub fn inspect(sources: &Sources<'_>, name: &ContainerId) -> Result<Inspection, FieldError> {
    let status_path = sources.data_dir.join(STATUS_FILE);
    let status = DaemonStatus::read(&status_path)
        .ok()
        .and_then(|s| s.containers.into_iter().find(|c| c.name == name.as_str()));
    let desired = desired::load(&sources.data_dir.join(DESIRED_FILE))
        .ok()
        .and_then(|d| d.containers.into_iter().find(|e| &e.name == name));
    if status.is_none() && desired.is_none() {
        return Err(FieldError::NoSuchContainer {
            name: name.as_str().to_owned(),
            path: status_path,
        });
    }
    Ok(Inspection {
        name: name.clone(),
        desired,
        status,
        oci: lifecycle::state(sources.host, name).ok(),
        cgroup: lifecycle::cgroup_stats(sources.host, name).ok().flatten(),
    })
}

impl Inspection {
    /// As `key value` lines at 80 columns.
    pub fn text(&self, now: u64) -> String {
        let mut out = String::new();
        let mut line = |label: &str, text: String| {
            out.push_str(cut(&format!("{label:<12} {text}"), WIDTH - 1));
            out.push('\n');
        };
        line("name", self.name.as_str().to_owned());
        match &self.desired {
            Some(entry) => {
                line("source", source_name(&entry.source));
                line("restart", restart_name(entry.restart));
                line("stop after", format!("{} s", entry.stop_timeout.as_secs()));
                line("check", health_name(entry));
            }
            None => line(
                "desired",
                "not in the desired state (being removed?)".to_owned(),
            ),
        }
        match &self.status {
            Some(c) => {
                line("state", c.state.clone());
                line("health", c.health.clone().unwrap_or_else(|| "-".to_owned()));
                line(
                    "pid",
                    c.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                );
                line("up", up(c, now));
                line("restarts", c.restarts.to_string());
                let exit = match (c.exit_code, c.exit_signal) {
                    (Some(code), _) => format!("code {code}"),
                    (None, Some(signal)) => format!("signal {signal}"),
                    _ => "-".to_owned(),
                };
                line("last exit", exit);
                line("oom kills", c.oom_kills.to_string());
                if let Some(error) = &c.error {
                    line("error", error.clone());
                }
            }
            None => line("state", "not published by the daemon".to_owned()),
        }
        match &self.cgroup {
            Some(stats) => {
                let memory = stats.memory_current.map_or("-".to_owned(), size);
                line(
                    "memory",
                    format!("{memory} of {}", limit(stats.memory_max.as_ref())),
                );
                line("pids", opt(stats.pids_current));
                line(
                    "cpu time",
                    stats.cpu_usage_usec.map_or("-".to_owned(), |u| {
                        format!("{}.{:02} s", u / 1_000_000, u % 1_000_000 / 10_000)
                    }),
                );
            }
            None => line("cgroup", "none".to_owned()),
        }
        if let Some(oci) = &self.oci {
            out.push_str("oci state\n");
            out.push_str(oci);
            out.push('\n');
        }
        out
    }

    /// As one line of JSON (schema in the module docs).
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct DesiredOut<'a> {
            source: &'a str,
            restart: &'a str,
            stop_timeout_secs: u64,
            health: Option<&'a str>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct CgroupOut {
            memory_bytes: Option<u64>,
            memory_limit_bytes: Option<u64>,
            pids: Option<u64>,
            cpu_usec: Option<u64>,
            oom_kills: Option<u64>,
        }
        let desired_strings = self.desired.as_ref().map(|e| {
            (
                source_name(&e.source),
                restart_name(e.restart),
                e.health.as_ref().map(|_| health_name(e)),
            )
        });
        let desired = self.desired.as_ref().zip(desired_strings.as_ref()).map(
            |(e, (source, restart, health))| DesiredOut {
                source,
                restart,
                stop_timeout_secs: e.stop_timeout.as_secs(),
                health: health.as_deref(),
            },
        );
        let cgroup = self.cgroup.as_ref().map(|s| CgroupOut {
            memory_bytes: s.memory_current,
            memory_limit_bytes: limit_bytes(s.memory_max.as_ref()),
            pids: s.pids_current,
            cpu_usec: s.cpu_usage_usec,
            oom_kills: s.oom_kill,
        });
        let strings = desired_strings.as_ref().map_or(0, |(s, r, h)| {
            s.len() + r.len() + h.as_ref().map_or(0, String::len)
        });
        let status = self.status.as_ref().map(|c| {
            let whole = DaemonStatus {
                containers: vec![c.clone()],
                ..DaemonStatus::default()
            }
            .to_json();
            // The one container of `{"pid":0,"containers":[...]}`.
            whole
                .strip_prefix(r#"{"pid":0,"containers":["#)
                .and_then(|rest| rest.strip_suffix("]}"))
                .unwrap_or("null")
                .to_owned()
        });
        format!(
            r#"{{"name":{},"desired":{},"status":{},"oci":{},"cgroup":{}}}"#,
            to_json(&self.name.as_str(), self.name.as_str().len(), 0),
            to_json(&desired, strings, 1),
            status.as_deref().unwrap_or("null"),
            self.oci.as_deref().unwrap_or("null"),
            to_json(&cgroup, 0, 1),
        )
    }
}

// ---------------------------------------------------------------- husk stats

/// One sample of a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The container.
    pub name: String,
    /// Its counters, if it has a cgroup.
    pub stats: Option<Stats>,
}

/// Samples the cgroups of the containers the daemon published as running.
pub fn sample(sources: &Sources<'_>) -> Result<Vec<Sample>, FieldError> {
    let status = read_status(sources.data_dir)?;
    Ok(status
        .containers
        .into_iter()
        .map(|c| {
            let stats = match (c.pid, c.name.parse::<ContainerId>()) {
                (Some(_), Ok(id)) => lifecycle::cgroup_stats(sources.host, &id).ok().flatten(),
                _ => None,
            };
            Sample {
                name: c.name,
                stats,
            }
        })
        .collect())
}

/// One line per container of `now`, with CPU use since `before` (taken
/// `elapsed` earlier): NAME CPU% MEMORY LIMIT MEM% PIDS.
pub fn stats_table(before: &[Sample], now: &[Sample], elapsed: Duration) -> String {
    let width = now.iter().map(|s| s.name.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:<width$}  {:>6}  {:>8}  {:>8}  {:>5}  {:>5}\n",
        "NAME", "CPU", "MEMORY", "LIMIT", "MEM", "PIDS"
    );
    for s in now {
        let cpu = cpu_over(before, s, elapsed).map_or("-".to_owned(), percent);
        let stats = s.stats.as_ref();
        let memory = stats.and_then(|s| s.memory_current);
        let max = stats.and_then(|s| s.memory_max);
        let share = match (memory, limit_bytes(max.as_ref())) {
            (Some(used), Some(max)) if max > 0 => percent(used.saturating_mul(10_000) / max),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {cpu:>6}  {:>8}  {:>8}  {share:>5}  {:>5}\n",
            s.name,
            memory.map_or("-".to_owned(), size),
            match stats {
                Some(_) => limit(max.as_ref()),
                None => "-".to_owned(),
            },
            opt(stats.and_then(|s| s.pids_current)),
        ));
    }
    out
}

/// One sample as a line of JSON (schema in the module docs).
pub fn stats_json(before: &[Sample], now: &[Sample], elapsed: Duration) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct StatsOut<'a> {
        name: &'a str,
        cpu_percent: Option<u64>,
        memory_bytes: Option<u64>,
        memory_limit_bytes: Option<u64>,
        pids: Option<u64>,
    }
    let rows: Vec<StatsOut<'_>> = now
        .iter()
        .map(|s| {
            let stats = s.stats.as_ref();
            StatsOut {
                name: &s.name,
                cpu_percent: cpu_over(before, s, elapsed),
                memory_bytes: stats.and_then(|s| s.memory_current),
                memory_limit_bytes: stats.and_then(|s| limit_bytes(s.memory_max.as_ref())),
                pids: stats.and_then(|s| s.pids_current),
            }
        })
        .collect();
    to_json(&rows.as_slice(), 0, rows.len())
}

/// CPU use of `now` since the same container's sample in `before`, in
/// hundredths of a percent of one CPU.
fn cpu_over(before: &[Sample], now: &Sample, elapsed: Duration) -> Option<u64> {
    let then = before.iter().find(|b| b.name == now.name)?;
    let used = now.stats.as_ref()?.cpu_usage_usec?;
    let was = then.stats.as_ref()?.cpu_usage_usec?;
    Some(cpu_hundredths(
        used.saturating_sub(was),
        elapsed.as_micros() as u64,
    ))
}

/// `husk stats`: one sample over [`STATS_SAMPLE`]; with `watch`, again
/// every [`WATCH_INTERVAL`] until interrupted (redrawn in place when
/// `redraw`, else blocks one after another).
pub fn stats(
    sources: &Sources<'_>,
    watch: bool,
    json: bool,
    redraw: bool,
) -> Result<(), crate::Error> {
    use std::io::Write;
    let mut before = sample(sources)?;
    let mut taken = std::time::Instant::now();
    std::thread::sleep(STATS_SAMPLE);
    let mut stdout = std::io::stdout().lock();
    loop {
        let now = sample(sources)?;
        let elapsed = taken.elapsed();
        taken = std::time::Instant::now();
        let text = match json {
            true => stats_json(&before, &now, elapsed) + "\n",
            false => stats_table(&before, &now, elapsed),
        };
        let written = match (watch, redraw && !json) {
            // Home, clear the screen.
            (true, true) => write!(stdout, "\x1b[H\x1b[2J{text}"),
            (true, false) if !json => writeln!(stdout, "{text}"),
            _ => write!(stdout, "{text}"),
        };
        if written.and_then(|()| stdout.flush()).is_err() || !watch {
            // The reader went away (`husk stats --watch | head`): done.
            return Ok(());
        }
        before = now;
        std::thread::sleep(WATCH_INTERVAL);
    }
}

// ---------------------------------------------------------------- helpers

fn read_status(data_dir: &Path) -> Result<DaemonStatus, FieldError> {
    DaemonStatus::read(&data_dir.join(STATUS_FILE)).map_err(FieldError::Status)
}

/// `used` microseconds of CPU over `over` microseconds, in hundredths of a
/// percent of one CPU.
fn cpu_hundredths(used: u64, over: u64) -> u64 {
    match over {
        0 => 0,
        over => u64::try_from(u128::from(used) * 10_000 / u128::from(over)).unwrap_or(u64::MAX),
    }
}

/// Hundredths of a percent as `12.3%`, `0.4%`, `150%`.
fn percent(hundredths: u64) -> String {
    match hundredths {
        0..=9_999 => format!("{}.{}%", hundredths / 100, hundredths % 100 / 10),
        _ => format!("{}%", hundredths / 100),
    }
}

/// Bytes as `512B`, `12K`, `3.4M`, `1.2G` (1024-based).
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes;
    let mut tenths = 0;
    let mut unit = 0;
    while value >= 1024 && unit < UNITS.len() - 1 {
        tenths = value % 1024 * 10 / 1024;
        value /= 1024;
        unit += 1;
    }
    match (unit, value) {
        (0, _) => format!("{value}B"),
        (_, 0..=9) => format!("{value}.{tenths}{}", UNITS[unit]),
        _ => format!("{value}{}", UNITS[unit]),
    }
}

fn limit(limit: Option<&Limit>) -> String {
    match limit {
        Some(Limit::Value(bytes)) => size(*bytes),
        Some(Limit::Max) => "none".to_owned(),
        None => "-".to_owned(),
    }
}

fn limit_bytes(limit: Option<&Limit>) -> Option<u64> {
    match limit {
        Some(Limit::Value(bytes)) => Some(*bytes),
        _ => None,
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

/// How long it has run, while it runs.
fn up(c: &ContainerStatus, now: u64) -> String {
    match (c.pid, c.started_at) {
        (Some(_), Some(at)) => ago(now, at),
        _ => "-".to_owned(),
    }
}

/// `45s`, `12m`, `3h`, `5d`: the largest whole unit.
fn ago(now: u64, at: u64) -> String {
    match now.saturating_sub(at) {
        s @ 0..=59 => format!("{s}s"),
        s @ 60..=3599 => format!("{}m", s / 60),
        s @ 3600..=86_399 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn name_width<'a>(containers: impl Iterator<Item = &'a ContainerStatus>) -> usize {
    containers.map(|c| c.name.len()).max().unwrap_or(0).max(4)
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Bundle(path) => path.display().to_string(),
        Source::Image(name) => name.to_string(),
        Source::Pinned(pinned) => pinned.name.clone(),
    }
}

fn restart_name(policy: RestartPolicy) -> String {
    match policy {
        RestartPolicy::No => "no".to_owned(),
        RestartPolicy::Always => "always".to_owned(),
        RestartPolicy::OnFailure { max: None } => "on-failure".to_owned(),
        RestartPolicy::OnFailure { max: Some(max) } => format!("on-failure:{max}"),
    }
}

fn health_name(entry: &Entry) -> String {
    let Some(check) = &entry.health else {
        return "none".to_owned();
    };
    let probe = match &check.probe {
        Probe::Exec(args) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            format!("exec {}", args.join(" "))
        }
        Probe::Tcp { port } => format!("tcp {port}"),
        Probe::Http { port, path } => format!("http {port}{path}"),
    };
    format!(
        "{probe}, every {} s, {} retries",
        check.interval.as_secs(),
        check.retries
    )
}

/// `text` cut to `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    crate::update::state::truncate(text, max)
}

/// `text` cut to `max` characters, its end replaced by `...` if cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep: String = text.chars().take(max - 3).collect();
    format!("{keep}...")
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(e) => e.fmt(f),
            Self::NoSuchContainer { name, path } => write!(
                f,
                "no supervised container {name} (neither in {} nor in the desired state)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FieldError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Status(e) => e.source(),
            Self::NoSuchContainer { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
