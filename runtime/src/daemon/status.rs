//! The daemon's view, published to `<data-dir>/status.json` on every change
//! (written to a temporary file and renamed over, so a reader never sees half
//! of it; not fsynced: it is a view, rebuilt on the next start), and read back
//! by `husk daemon status`.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json_core::str::EscapedStr;

use super::desired::{MAX_CONTAINERS, MAX_PATH_BYTES, MAX_WORD_BYTES};
use crate::wire::{unescape, unescape_with_nul, Capped, Field, WireError};

/// The file in the data directory.
pub const STATUS_FILE: &str = "status.json";
/// The largest status file read: more than the most the daemon writes
/// ([`MAX_CONTAINERS`] containers whose strings all escape to six bytes a
/// character; a unit test writes that).
pub const MAX_STATUS_BYTES: usize = 512 * 1024;
/// Longest error message kept in the status.
pub const MAX_ERROR_BYTES: usize = 1024;

/// The daemon and its containers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonStatus {
    /// The daemon's pid.
    pub pid: i32,
    /// The state directory (`--root`) its containers are in, when its path
    /// is UTF-8 (`husk exec NAME` looks there).
    pub root: Option<PathBuf>,
    /// Why the last desired state read was refused, if it was.
    pub desired_error: Option<String>,
    /// The containers, in desired-state order.
    pub containers: Vec<ContainerStatus>,
}

/// One container as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerStatus {
    /// Its name.
    pub name: String,
    /// `starting`, `running`, `stopping`, `backing-off`, `exited`, `given-up`, `stopped`.
    pub state: String,
    /// `starting`, `healthy` or `unhealthy`, while it runs with a health check.
    pub health: Option<String>,
    /// How often it was restarted.
    pub restarts: u32,
    /// The exit code of its last run.
    pub exit_code: Option<u8>,
    /// The signal that ended its last run.
    pub exit_signal: Option<i32>,
    /// Why its last start failed, or another error about it.
    pub error: Option<String>,
    /// How many of its runs the OOM killer ended.
    pub oom_kills: u32,
    /// Its init's pid, while it runs.
    pub pid: Option<i32>,
    /// When it last started, seconds since the epoch.
    pub started_at: Option<u64>,
}

/// Why the status file could not be read.
#[derive(Debug)]
pub enum StatusError {
    /// Reading it failed (no daemon ever ran with this data directory, perhaps).
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing it failed.
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// It is not a status file.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus<'a> {
    pid: i32,
    #[serde(borrow)]
    root: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    desired_error: Option<EscapedStr<'a>>,
    #[serde(borrow, default)]
    containers: Capped<WireContainer<'a>, MAX_CONTAINERS>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContainer<'a> {
    #[serde(borrow)]
    name: EscapedStr<'a>,
    #[serde(borrow)]
    state: EscapedStr<'a>,
    #[serde(borrow)]
    health: Option<EscapedStr<'a>>,
    restarts: u32,
    exit_code: Option<u8>,
    exit_signal: Option<i32>,
    #[serde(borrow)]
    error: Option<EscapedStr<'a>>,
    oom_kills: u32,
    pid: Option<i32>,
    started_at: Option<u64>,
}

/// [`WireStatus`] as it is written: plain strings, which serde-json-core escapes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireStatusOut<'a> {
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    desired_error: Option<&'a str>,
    containers: &'a [WireContainerOut<'a>],
}

/// [`WireContainer`] as it is written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireContainerOut<'a> {
    name: &'a str,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a str>,
    restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    oom_kills: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<u64>,
}

impl DaemonStatus {
    /// The status as one line of JSON.
    pub fn to_json(&self) -> String {
        let containers: Vec<WireContainerOut<'_>> = self
            .containers
            .iter()
            .map(|c| WireContainerOut {
                name: &c.name,
                state: &c.state,
                health: c.health.as_deref(),
                restarts: c.restarts,
                exit_code: c.exit_code,
                exit_signal: c.exit_signal,
                error: c.error.as_deref().map(|e| truncate(e, MAX_ERROR_BYTES)),
                oom_kills: c.oom_kills,
                pid: c.pid,
                started_at: c.started_at,
            })
            .collect();
        // A root that could not be read back is left out.
        let root = (self.root.as_deref())
            .and_then(Path::to_str)
            .filter(|r| r.len() <= MAX_PATH_BYTES);
        let wire = WireStatusOut {
            pid: self.pid,
            root,
            desired_error: self
                .desired_error
                .as_deref()
                .map(|e| truncate(e, MAX_ERROR_BYTES)),
            containers: &containers,
        };
        // serde-json-core escapes strings, a character into at most six bytes.
        let strings: usize = containers
            .iter()
            .map(|c| c.name.len() + c.state.len() + c.health.map_or(0, str::len))
            .chain(containers.iter().map(|c| c.error.map_or(0, str::len)))
            .chain(wire.desired_error.map(str::len))
            .chain(root.map(str::len))
            .sum();
        let mut buf = vec![0; 6 * strings + 256 * (containers.len() + 1)];
        let len = serde_json_core::to_slice(&wire, &mut buf).unwrap_or(0);
        buf.truncate(len);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Validates the JSON text of a status file.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let (wire, _) = serde_json_core::from_slice::<WireStatus<'_>>(json)
            .map_err(|e| format!("invalid JSON: {e}"))?;
        let text =
            |field, s, max| unescape_with_nul(field, s, max).map_err(|e: WireError| e.to_string());
        let field = Field::new("containers");
        let mut containers = Vec::new();
        for (i, c) in wire
            .containers
            .into_items(field)
            .map_err(|e| e.to_string())?
            .into_iter()
            .enumerate()
        {
            let at = field.at(i);
            containers.push(ContainerStatus {
                name: unescape(at.member("name"), c.name, MAX_WORD_BYTES)
                    .map_err(|e| e.to_string())?,
                state: text(at.member("state"), c.state, MAX_WORD_BYTES)?,
                health: c
                    .health
                    .map(|h| text(at.member("health"), h, MAX_WORD_BYTES))
                    .transpose()?,
                restarts: c.restarts,
                exit_code: c.exit_code,
                exit_signal: c.exit_signal,
                error: c
                    .error
                    .map(|e| text(at.member("error"), e, MAX_ERROR_BYTES))
                    .transpose()?,
                oom_kills: c.oom_kills,
                pid: c.pid,
                started_at: c.started_at,
            });
        }
        let desired_error = wire
            .desired_error
            .map(|e| text(Field::new("desiredError"), e, MAX_ERROR_BYTES))
            .transpose()?;
        let root = wire
            .root
            .map(|r| text(Field::new("root"), r, MAX_PATH_BYTES))
            .transpose()?
            .map(PathBuf::from);
        Ok(Self {
            pid: wire.pid,
            root,
            desired_error,
            containers,
        })
    }

    /// Writes the status to `path` atomically (temporary file, rename).
    pub fn write(&self, path: &Path) -> Result<(), StatusError> {
        let tmp = path.with_extension("json.tmp");
        // No fsync: the status is rewritten on every change (flash wear), and
        // a daemon started again publishes a new one.
        let json = self.to_json();
        crate::file::replace(path, &tmp, json.as_bytes(), crate::file::Durability::None).map_err(
            |source| StatusError::Write {
                path: path.to_owned(),
                source,
            },
        )
    }

    /// Reads the status file `path`.
    pub fn read(path: &Path) -> Result<Self, StatusError> {
        let read_error = |source| StatusError::Read {
            path: path.to_owned(),
            source,
        };
        let corrupt = |reason| StatusError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let json = File::open(path)
            .and_then(|f| crate::file::read_capped(f, MAX_STATUS_BYTES))
            .map_err(read_error)?
            .ok_or_else(|| corrupt(format!("larger than {MAX_STATUS_BYTES} bytes")))?;
        Self::parse(&json).map_err(corrupt)
    }

    /// A table of the containers that fits 80 columns for names of up to 20
    /// bytes; `now` (seconds since the epoch) gives the uptimes.
    pub fn table(&self, now: u64) -> String {
        let width = self
            .containers
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut out = format!(
            "{:<width$}  {:<11}  {:<9}  {:>3}  {:<6}  {:>3}  {:>7}  UP\n",
            "NAME", "STATE", "HEALTH", "RST", "EXIT", "OOM", "PID"
        );
        for c in &self.containers {
            let exit = match (c.exit_code, c.exit_signal, &c.error) {
                (Some(code), _, _) => code.to_string(),
                (None, Some(signal), _) => format!("sig{signal}"),
                (None, None, Some(_)) => "failed".to_owned(),
                _ => "-".to_owned(),
            };
            let pid = c.pid.map_or("-".to_owned(), |p| p.to_string());
            let up = match (c.pid, c.started_at) {
                (Some(_), Some(at)) => uptime(now.saturating_sub(at)),
                _ => "-".to_owned(),
            };
            out.push_str(&format!(
                "{:<width$}  {:<11}  {:<9}  {:>3}  {exit:<6}  {:>3}  {pid:>7}  {up}\n",
                c.name,
                c.state,
                c.health.as_deref().unwrap_or("-"),
                c.restarts,
                c.oom_kills,
            ));
        }
        if let Some(error) = &self.desired_error {
            out.push_str(&format!("desired state not applied: {error}\n"));
        }
        out
    }
}

/// `45s`, `12m`, `3h`, `5d`: the largest whole unit.
fn uptime(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                write!(
                    f,
                    "reading {} (root and husk daemon --read-group only)",
                    path.display()
                )
            }
            Self::Read { path, .. } => write!(
                f,
                "reading {} (is husk daemon running with this --data-dir?)",
                path.display()
            ),
            Self::Write { path, .. } => write!(f, "writing {}", path.display()),
            Self::Corrupt { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for StatusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Write { source, .. } => Some(source),
            Self::Corrupt { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DaemonStatus {
        DaemonStatus {
            pid: 42,
            root: Some(PathBuf::from("/run/hu\"sk")),
            desired_error: Some("desired state: containers[0].name is required".to_owned()),
            containers: vec![
                ContainerStatus {
                    name: "a-typical-name".to_owned(),
                    state: "running".to_owned(),
                    health: Some("healthy".to_owned()),
                    restarts: 3,
                    exit_code: Some(1),
                    oom_kills: 1,
                    pid: Some(1234),
                    started_at: Some(1000),
                    ..ContainerStatus::default()
                },
                ContainerStatus {
                    name: "b".to_owned(),
                    state: "backing-off".to_owned(),
                    error: Some("reading \"/x\"\n".to_owned()),
                    ..ContainerStatus::default()
                },
            ],
        }
    }

    #[test]
    fn json_round_trips() {
        let status = sample();
        let json = status.to_json();
        assert!(json.starts_with(
            r#"{"pid":42,"root":"/run/hu\"sk","desiredError":"desired state: containers[0]"#
        ));
        assert!(json.contains(r#""error":"reading \"/x\"\n""#), "{json}");
        assert_eq!(DaemonStatus::parse(json.as_bytes()).unwrap(), status);
        let tmp = crate::testutil::TempDir::new("status");
        let path = tmp.path().join(STATUS_FILE);
        status.write(&path).unwrap();
        assert_eq!(DaemonStatus::read(&path).unwrap(), status);
        std::fs::write(&path, "{").unwrap();
        assert!(DaemonStatus::read(&path)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("{}: invalid JSON", path.display())));
    }

    #[test]
    fn the_largest_status_is_written_whole_and_read_back() {
        let worst = "\u{1}".repeat(MAX_ERROR_BYTES + 10);
        let container = ContainerStatus {
            name: "n".repeat(64),
            state: "backing-off".to_owned(),
            health: Some("unhealthy".to_owned()),
            restarts: u32::MAX,
            exit_code: Some(255),
            exit_signal: Some(i32::MIN),
            error: Some(worst.clone()),
            oom_kills: u32::MAX,
            pid: Some(i32::MIN),
            started_at: Some(u64::MAX),
        };
        let status = DaemonStatus {
            pid: i32::MAX,
            root: Some(PathBuf::from("\u{1}".repeat(MAX_PATH_BYTES))),
            desired_error: Some(worst),
            containers: vec![container; MAX_CONTAINERS],
        };
        let json = status.to_json();
        assert!(json.len() <= MAX_STATUS_BYTES, "{}", json.len());
        let read = DaemonStatus::parse(json.as_bytes()).unwrap();
        // Errors are cut at their limit; the rest is kept.
        assert_eq!(read.containers.len(), MAX_CONTAINERS);
        assert_eq!(
            read.containers[63].error.as_ref().unwrap().len(),
            MAX_ERROR_BYTES
        );
        assert_eq!(read.desired_error.unwrap().len(), MAX_ERROR_BYTES);
        assert_eq!(read.containers[0].started_at, Some(u64::MAX));
    }

    #[test]
    fn the_table_fits_80_columns() {
        let table = sample().table(1000 + 7300);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "NAME            STATE        HEALTH     RST  EXIT    OOM      PID  UP"
        );
        assert_eq!(
            lines[1],
            "a-typical-name  running      healthy      3  1         1     1234  2h"
        );
        assert_eq!(
            lines[2],
            "b               backing-off  -            0  failed    0        -  -"
        );
        let mut long = sample();
        long.containers[0].name = "x".repeat(20);
        for line in long.table(0).lines().take(3) {
            assert!(line.len() <= 80, "{line}");
        }
    }
}
