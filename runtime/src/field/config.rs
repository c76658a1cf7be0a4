//! `husk config show|check`: the configuration in effect, as the daemon and
//! the update agent would read it, read with their own parsers (the desired
//! state's, each bundle's `config.json`'s, the update config's, the
//! [`Verifier`]'s for the trusted root's self-signature, and
//! [`check::string_line`] for the board file). Nothing is written.
//!
//! Files, in order: `<data-dir>/desired.json` (a link to the release it
//! comes from, once updates ran), each bundle entry's `config.json`, the
//! update config (`<data-dir>/update/config.json`, else
//! `/etc/husk/update.json`), the trusted root (`<data-dir>/update/root.json`,
//! else `/etc/husk/root.json`), and `/etc/husk/board.toml` if present.

use std::path::{Path, PathBuf};

use delta_updater::verify::{Device, Seen};
use delta_updater::Verifier;
use serde::Serialize;

use super::{cut, health_name, restart_name, shorten, size, source_name, to_json, WIDTH};
use crate::cgroup::Limit;
use crate::check;
use crate::daemon::desired::{self, DesiredError, Entry, Source};
use crate::update::{self, Config, Layout};

/// `husk config check`: a file is bad or missing.
pub const EXIT_BAD: u8 = 2;
/// The schema version of `husk config show --json`.
pub const SCHEMA_VERSION: u32 = 1;
/// The board file an image installs, in the image's settings directory.
pub const BOARD_FILE: &str = "board.toml";

/// Where a file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The data directory's copy (written on the device).
    Data,
    /// The image's, in `/etc/husk`.
    Image,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Image => "image",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Data => "the data directory's copy",
            Self::Image => "the image's copy (the data directory has none)",
        }
    }
}

/// A file read, and what it said or what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read<T> {
    /// The file.
    pub path: PathBuf,
    /// Its contents, validated, or what is wrong (one line).
    pub value: Result<T, String>,
}

/// The limits a bundle's `config.json` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `memory.max` in bytes.
    pub memory: Option<u64>,
    /// `pids.max`.
    pub pids: Option<u64>,
    /// `cpu.max`: quota and period, in microseconds.
    pub cpu: Option<(u64, u64)>,
}

/// One container of the desired state, with its bundle's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The entry.
    pub entry: Entry,
    /// Its bundle's `config.json` and limits; `None` for an image entry
    /// (husk's image defaults: no limits).
    pub bundle: Option<Read<Limits>>,
}

/// The desired state in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The release it comes from (the link's target), if one.
    pub release: Option<u64>,
    /// The file exists (absent: nothing is supervised).
    pub present: bool,
    /// Its containers.
    pub containers: Vec<Container>,
}

/// The trusted root's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    /// Its version.
    pub version: u64,
    /// When it stops being trusted, seconds since the epoch.
    pub expires: u64,
}

/// The board file's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// `name`.
    pub name: Option<String>,
    /// `arch`.
    pub arch: Option<String>,
    /// `kernel_fragment`.
    pub kernel_fragment: Option<String>,
}

/// The configuration in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--root`.
    pub state_root: PathBuf,
    /// The desired state.
    pub desired: Read<Desired>,
    /// The update config, and which copy; `None`: neither exists.
    pub update: Option<(Origin, Read<Config>)>,
    /// The trusted root, and which copy; `None`: neither exists.
    pub root: Option<(Origin, Read<Root>)>,
    /// The board file, if present.
    pub board: Option<Read<Board>>,
    /// When it was read, seconds since the epoch.
    pub now: u64,
}

/// Reads everything `husk config` reports: the data directory's files, the
/// image's in `etc` (`/etc/husk`), at `now`.
pub fn gather(data_dir: &Path, state_root: &Path, etc: &Path, now: u64) -> Settings {
    let layout = Layout::with_etc(data_dir, etc);
    let desired_path = layout.desired();
    let desired = Read {
        value: read_desired(&desired_path, &layout),
        path: desired_path,
    };
    let update = which(&layout.dir().join("config.json"), &layout.config()).map(|(from, path)| {
        let value = read(&path, update::config::MAX_CONFIG_BYTES).and_then(|b| Config::parse(&b));
        (from, Read { path, value })
    });
    let root = which(&layout.root(), &layout.trusted_root()).map(|(from, path)| {
        let device = match &update {
            Some((_, Read { value: Ok(c), .. })) => update::device(c),
            _ => Device {
                class: String::new(),
                arch: String::new(),
                hardware: String::new(),
            },
        };
        let value = read(&path, delta_updater::metadata::MAX_ROOT_LEN).and_then(|bytes| {
            let verifier =
                Verifier::new(&bytes, device, Seen::default()).map_err(|e| e.to_string())?;
            let root = verifier.root();
            if root.expires <= now {
                return Err(format!(
                    "expired {} (by this device's clock)",
                    crate::lifecycle::rfc3339(root.expires)
                ));
            }
            Ok(Root {
                version: root.version,
                expires: root.expires,
            })
        });
        (from, Read { path, value })
    });
    let board_path = etc.join(BOARD_FILE);
    let board = board_path.exists().then(|| Read {
        value: read(&board_path, check::MAX_BOARD_BYTES).and_then(|b| read_board(&b)),
        path: board_path,
    });
    Settings {
        data_dir: data_dir.to_owned(),
        state_root: state_root.to_owned(),
        desired,
        update,
        root,
        board,
        now,
    }
}

/// Which of the data directory's file `own` and what the layout resolved
/// (`used`: `own`, else the image's) is in use, if either exists.
fn which(own: &Path, used: &Path) -> Option<(Origin, PathBuf)> {
    match (used == own, used.exists()) {
        (true, true) => Some((Origin::Data, own.to_owned())),
        (false, true) => Some((Origin::Image, used.to_owned())),
        (_, false) => None,
    }
}

fn read(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    std::fs::File::open(path)
        .and_then(|f| crate::file::read_capped(f, max))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("larger than {max} bytes"))
}

fn read_desired(path: &Path, layout: &Layout) -> Result<Desired, String> {
    let present = path.exists();
    let state = desired::load(path).map_err(|e| match e {
        DesiredError::Read { source, .. } => source.to_string(),
        e => {
            let text = e.to_string();
            text.strip_prefix("desired state: ")
                .map_or_else(|| text.clone(), str::to_owned)
        }
    })?;
    let containers = state
        .containers
        .into_iter()
        .map(|entry| {
            let bundle = match &entry.source {
                Source::Bundle(dir) => Some(Read {
                    path: dir.join("config.json"),
                    value: crate::spec::load(dir)
                        .map(|spec| limits(&spec.resources))
                        .map_err(|e| crate::error_chain(&e)),
                }),
                Source::Image(_) | Source::Pinned(_) => None,
            };
            Container { entry, bundle }
        })
        .collect();
    Ok(Desired {
        release: update::linked(layout),
        present,
        containers,
    })
}

fn limits(resources: &crate::cgroup::Resources) -> Limits {
    let value = |limit: Option<Limit>| match limit {
        Some(Limit::Value(v)) => Some(v),
        _ => None,
    };
    Limits {
        memory: value(resources.memory.max),
        pids: value(resources.pids_max),
        cpu: resources.cpu.max.and_then(|max| {
            let quota = value(Some(max.quota))?;
            Some((quota, max.period.unwrap_or(crate::template::CPU_PERIOD)))
        }),
    }
}

fn read_board(bytes: &[u8]) -> Result<Board, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let value = |key: &str| check::string_line(text, key).map(|v| v.map(str::to_owned));
    let kernel_fragment = value("kernel_fragment")?;
    Ok(Board {
        name: value("name")?,
        arch: value("arch")?,
        kernel_fragment,
    })
}

impl Limits {
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(memory) = self.memory {
            parts.push(format!("memory {}", size(memory)));
        }
        if let Some((quota, period)) = self.cpu {
            let hundredths = quota * 100 / period.max(1);
            parts.push(format!("cpu {}.{:02}", hundredths / 100, hundredths % 100));
        }
        if let Some(pids) = self.pids {
            parts.push(format!("pids {pids}"));
        }
        match parts.is_empty() {
            true => "none".to_owned(),
            false => parts.join(", "),
        }
    }
}

impl Settings {
    /// One line per file: `ok  PATH` or `bad PATH: what is wrong`; whether
    /// all are good.
    pub fn check(&self) -> (String, bool) {
        let mut out = String::new();
        let mut ok = true;
        let mut line = |path: &Path, problem: Option<&str>, note: &str| match problem {
            None => out.push_str(&format!("ok  {}{note}\n", path.display())),
            Some(problem) => {
                ok = false;
                out.push_str(&format!("bad {}: {problem}\n", path.display()));
            }
        };
        match &self.desired.value {
            Ok(d) if !d.present => line(&self.desired.path, None, " (absent: nothing runs)"),
            Ok(d) => {
                line(&self.desired.path, None, "");
                for bundle in d.containers.iter().filter_map(|c| c.bundle.as_ref()) {
                    line(
                        &bundle.path,
                        bundle.value.as_ref().err().map(|e| e.as_str()),
                        "",
                    );
                }
            }
            Err(e) => line(&self.desired.path, Some(e), ""),
        }
        let layout = Layout::new(&self.data_dir);
        match &self.update {
            Some((_, read)) => line(
                &read.path,
                read.value.as_ref().err().map(|e| e.as_str()),
                "",
            ),
            None => line(
                &layout.dir().join("config.json"),
                None,
                " (absent, and no /etc/husk/update.json: no updates)",
            ),
        }
        match (&self.root, &self.update) {
            (Some((_, read)), _) => line(
                &read.path,
                read.value.as_ref().err().map(|e| e.as_str()),
                "",
            ),
            (None, Some((_, config))) => line(
                &layout.root(),
                Some(&format!(
                    "missing (nor in /etc/husk), and {} needs it",
                    config.path.display()
                )),
                "",
            ),
            (None, None) => {}
        }
        if let Some(board) = &self.board {
            line(
                &board.path,
                board.value.as_ref().err().map(|e| e.as_str()),
                "",
            );
        }
        (out, ok)
    }

    /// The text of `husk config show`, within 80 columns.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, text: &str| {
            let line = format!("{label:<13} {text}");
            out.push_str(cut(&line, WIDTH - 1).trim_end());
            out.push('\n');
        };
        line("data dir", &self.data_dir.display().to_string());
        line("state root", &self.state_root.display().to_string());
        let desired = &self.desired;
        let mut containers = Vec::new();
        match &desired.value {
            Err(e) => line("desired", &format!("{}: BAD: {e}", desired.path.display())),
            Ok(d) => {
                let from = match (d.present, d.release) {
                    (false, _) => " (absent: nothing runs)".to_owned(),
                    (true, Some(0)) => " (release 0: the device's own)".to_owned(),
                    (true, Some(n)) => format!(" (release {n})"),
                    (true, None) => String::new(),
                };
                line("desired", &format!("{}{from}", desired.path.display()));
                containers = d.containers.iter().collect();
            }
        }
        for c in containers {
            let limits = match &c.bundle {
                None => "none (image)".to_owned(),
                Some(Read { value: Ok(l), .. }) => l.text(),
                Some(Read { value: Err(e), .. }) => format!("BAD: {e}"),
            };
            let name = format!("  {}", c.entry.name.as_str());
            let source = shorten(&source_name(&c.entry.source), WIDTH - 16);
            if name.len() > 13 {
                line(&name, "");
                line("", &source);
            } else {
                line(&name, &source);
            }
            line(
                "",
                &format!(
                    "restart {}, stop {}s",
                    restart_name(c.entry.restart),
                    c.entry.stop_timeout.as_secs()
                ),
            );
            line("", &format!("health {}", health_name(&c.entry)));
            line("", &format!("limits {limits}"));
        }
        match &self.update {
            None => line("update", "none (no config.json, no /etc/husk/update.json)"),
            Some((from, read)) => {
                line("update", &read.path.display().to_string());
                line("", from.text());
                match &read.value {
                    Err(e) => line("", &format!("BAD: {e}")),
                    Ok(c) => {
                        line(
                            "  server",
                            c.server.as_deref().unwrap_or("none (--from only)"),
                        );
                        if c.server
                            .as_deref()
                            .is_some_and(|s| s.starts_with("https://"))
                        {
                            let ca = c.ca_file.as_ref().map(|p| p.display().to_string());
                            line(
                                "  CA file",
                                ca.as_deref()
                                    .unwrap_or("/etc/ssl/certs/ca-certificates.crt (default)"),
                            );
                        }
                        line("  device", &format!("{}, hardware {}", c.class, c.hardware));
                        line(
                            "  polls",
                            &format!(
                                "every {}s, grace {}s",
                                c.interval.as_secs(),
                                c.grace.as_secs()
                            ),
                        );
                    }
                }
            }
        }
        match &self.root {
            None => line("trusted root", "none"),
            Some((from, read)) => {
                line("trusted root", &read.path.display().to_string());
                line("", from.text());
                match &read.value {
                    Err(e) => line("", &format!("BAD: {e}")),
                    Ok(r) => line(
                        "",
                        &format!(
                            "version {}, expires {}",
                            r.version,
                            crate::lifecycle::rfc3339(r.expires)
                        ),
                    ),
                }
            }
        }
        match &self.board {
            None => line("board", "none"),
            Some(read) => {
                line("board", &read.path.display().to_string());
                match &read.value {
                    Err(e) => line("", &format!("BAD: {e}")),
                    Ok(b) => line(
                        "",
                        &format!(
                            "{}, {}",
                            b.name.as_deref().unwrap_or("-"),
                            b.arch.as_deref().unwrap_or("-")
                        ),
                    ),
                }
            }
        }
        out
    }

    /// `husk config show --json` (schema: the module docs of `field`).
    pub fn json(&self) -> String {
        fn err<T>(value: &Result<T, String>) -> Option<&str> {
            value.as_ref().err().map(String::as_str)
        }
        let paths =
            [&self.data_dir, &self.state_root, &self.desired.path].map(|p| p.display().to_string());
        let empty = Vec::new();
        let (release, entries) = match &self.desired.value {
            Ok(d) => (d.release, &d.containers),
            Err(_) => (None, &empty),
        };
        // The strings made for the output, then borrowed by it.
        let made: Vec<[Option<String>; 4]> = (entries.iter())
            .map(|c| {
                [
                    Some(source_name(&c.entry.source)),
                    Some(restart_name(c.entry.restart)),
                    c.entry.health.as_ref().map(|_| health_name(&c.entry)),
                    c.bundle.as_ref().map(|b| b.path.display().to_string()),
                ]
            })
            .collect();
        let containers: Vec<ContainerOut<'_>> = (entries.iter().zip(&made))
            .map(|(c, [source, restart, health, bundle])| {
                let limits = match &c.bundle {
                    Some(Read { value: Ok(l), .. }) => *l,
                    _ => Limits::default(),
                };
                ContainerOut {
                    name: c.entry.name.as_str(),
                    source: source.as_deref().unwrap_or_default(),
                    restart: restart.as_deref().unwrap_or_default(),
                    stop_timeout_secs: c.entry.stop_timeout.as_secs(),
                    health: health.as_deref(),
                    bundle_config: bundle.as_deref(),
                    error: c.bundle.as_ref().and_then(|b| err(&b.value)),
                    memory_max_bytes: limits.memory,
                    pids_max: limits.pids,
                    cpu_quota_usec: limits.cpu.map(|c| c.0),
                    cpu_period_usec: limits.cpu.map(|c| c.1),
                }
            })
            .collect();
        let update_path = (self.update.as_ref()).map(|(_, r)| r.path.display().to_string());
        let update = self.update.as_ref().map(|(from, read)| {
            let config = read.value.as_ref().ok();
            UpdateOut {
                path: update_path.as_deref().unwrap_or_default(),
                from: from.name(),
                error: err(&read.value),
                server: config.and_then(|c| c.server.as_deref()),
                ca_file: config.and_then(|c| c.ca_file.as_deref()?.to_str()),
                device_class: config.map(|c| c.class.as_str()),
                hardware: config.map(|c| c.hardware.as_str()),
                interval_secs: config.map(|c| c.interval.as_secs()),
                grace_secs: config.map(|c| c.grace.as_secs()),
            }
        });
        let root_path = (self.root.as_ref()).map(|(_, r)| r.path.display().to_string());
        let root = self.root.as_ref().map(|(from, read)| RootOut {
            path: root_path.as_deref().unwrap_or_default(),
            from: from.name(),
            error: err(&read.value),
            version: read.value.as_ref().ok().map(|r| r.version),
            expires: read.value.as_ref().ok().map(|r| r.expires),
        });
        let board_path = (self.board.as_ref()).map(|r| r.path.display().to_string());
        let board = self.board.as_ref().map(|read| {
            let board = read.value.as_ref().ok();
            BoardOut {
                path: board_path.as_deref().unwrap_or_default(),
                error: err(&read.value),
                name: board.and_then(|b| b.name.as_deref()),
                arch: board.and_then(|b| b.arch.as_deref()),
                kernel_fragment: board.and_then(|b| b.kernel_fragment.as_deref()),
            }
        });
        let out = SettingsOut {
            schema_version: SCHEMA_VERSION,
            data_dir: &paths[0],
            state_root: &paths[1],
            desired: DesiredOut {
                path: &paths[2],
                present: self.desired.value.as_ref().is_ok_and(|d| d.present),
                release,
                error: err(&self.desired.value),
                containers: &containers,
            },
            update,
            trusted_root: root,
            board,
            ok: self.check().1,
        };
        // Every string of the output, counted once.
        let len = |s: Option<&str>| s.map_or(0, str::len);
        let strings: usize = paths.iter().map(String::len).sum::<usize>()
            + len(out.desired.error)
            + (made.iter().flatten())
                .map(|s| len(s.as_deref()))
                .sum::<usize>()
            + (containers.iter())
                .map(|c| c.name.len() + len(c.error))
                .sum::<usize>()
            + out.update.as_ref().map_or(0, |u| {
                u.path.len() + len(u.error) + len(u.server) + len(u.device_class) + len(u.hardware)
            })
            + (out.trusted_root.as_ref()).map_or(0, |r| r.path.len() + len(r.error))
            + out.board.as_ref().map_or(0, |b| {
                b.path.len() + len(b.error) + len(b.name) + len(b.arch) + len(b.kernel_fragment)
            });
        to_json(&out, strings, containers.len() + 8)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsOut<'a> {
    schema_version: u32,
    data_dir: &'a str,
    state_root: &'a str,
    desired: DesiredOut<'a>,
    update: Option<UpdateOut<'a>>,
    trusted_root: Option<RootOut<'a>>,
    board: Option<BoardOut<'a>>,
    ok: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DesiredOut<'a> {
    path: &'a str,
    present: bool,
    release: Option<u64>,
    error: Option<&'a str>,
    containers: &'a [ContainerOut<'a>],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerOut<'a> {
    name: &'a str,
    source: &'a str,
    restart: &'a str,
    stop_timeout_secs: u64,
    health: Option<&'a str>,
    bundle_config: Option<&'a str>,
    error: Option<&'a str>,
    memory_max_bytes: Option<u64>,
    pids_max: Option<u64>,
    cpu_quota_usec: Option<u64>,
    cpu_period_usec: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateOut<'a> {
    path: &'a str,
    from: &'static str,
    error: Option<&'a str>,
    server: Option<&'a str>,
    ca_file: Option<&'a str>,
    device_class: Option<&'a str>,
    hardware: Option<&'a str>,
    interval_secs: Option<u64>,
    grace_secs: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RootOut<'a> {
    path: &'a str,
    from: &'static str,
    error: Option<&'a str>,
    version: Option<u64>,
    expires: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BoardOut<'a> {
    path: &'a str,
    error: Option<&'a str>,
    name: Option<&'a str>,
    arch: Option<&'a str>,
    kernel_fragment: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::testutil::TempDir;

    const NOW: u64 = 1_800_000_000;

    /// A data directory with a desired state of a bundle and an image
    /// entry, an update config, a trusted root, and an `etc` with a board.
    struct Device {
        _tmp: TempDir,
        data: PathBuf,
        etc: PathBuf,
        bundle: PathBuf,
        root_json: Vec<u8>,
    }

    impl Device {
        fn new(name: &str) -> Self {
            let tmp = TempDir::new(name);
            let data = tmp.path().join("data");
            let etc = tmp.path().join("etc");
            let bundle = tmp.path().join("bundle");
            fs::create_dir_all(data.join("update")).unwrap();
            fs::create_dir_all(&etc).unwrap();
            fs::create_dir_all(bundle.join("rootfs")).unwrap();
            // Limits to show: 64 MiB, half a CPU, 32 pids.
            let config = r#"{"ociVersion": "1.0.2",
                "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"},
                "root": {"path": "rootfs"},
                "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                  "resources": {"memory": {"limit": 67108864},
                    "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 32}}}}"#;
            fs::write(bundle.join("config.json"), config).unwrap();
            fs::write(
                data.join("desired.json"),
                format!(
                    r#"{{"containers": [
                    {{"name": "web", "bundle": "{}", "restart": "always",
                      "health": {{"http": {{"port": 80, "path": "/"}}}}}},
                    {{"name": "batch", "image": "tools:1", "restart": "no"}}]}}"#,
                    bundle.display()
                ),
            )
            .unwrap();
            fs::write(
                data.join("update/config.json"),
                r#"{"server": "http://updates.example:8080/fleet", "deviceClass": "gw",
                    "hardware": "board", "interval": "30m"}"#,
            )
            .unwrap();
            let repo = delta_updater::repo::Repo::new(&tmp.path().join("repo"));
            repo.init(NOW).unwrap();
            let root_json = fs::read(tmp.path().join("repo/repo/root.json")).unwrap();
            fs::write(data.join("update/root.json"), &root_json).unwrap();
            fs::write(
                etc.join(BOARD_FILE),
                "[board]\nname = \"QEMU virt (armv7)\" # the lab's\narch = \"armv7\"\n\
                 kernel_fragment = \"qemu-armv7.config\"\n",
            )
            .unwrap();
            Self {
                _tmp: tmp,
                data,
                etc,
                bundle,
                root_json,
            }
        }

        fn gather(&self, now: u64) -> Settings {
            gather(&self.data, Path::new("/run/husk"), &self.etc, now)
        }
    }

    #[test]
    fn a_good_device_checks_ok_and_shows_where_each_part_comes_from() {
        let d = Device::new("config-good");
        let settings = d.gather(NOW + 10);
        let (text, ok) = settings.check();
        assert!(ok, "{text}");
        let expected = format!(
            "ok  {data}/desired.json\nok  {bundle}/config.json\n\
             ok  {data}/update/config.json\nok  {data}/update/root.json\n\
             ok  {etc}/board.toml\n",
            data = d.data.display(),
            bundle = d.bundle.display(),
            etc = d.etc.display()
        );
        assert_eq!(text, expected);
        let text = settings.text();
        for line in text.lines() {
            assert!(line.len() < 80, "{line:?}");
        }
        for part in [
            "state root    /run/husk",
            "restart always, stop 10s\n",
            "health http 80/, every 30 s, 3 retries\n",
            "limits memory 64M, cpu 0.50, pids 32",
            "  batch       tools:1",
            "limits none (image)",
            "\n              the data directory's copy\n",
            "server      http://updates.example:8080/fleet",
            "every 1800s, grace 120s",
            "version 1, expires ",
            "QEMU virt (armv7), armv7",
        ] {
            assert!(text.contains(part), "{part:?} not in\n{text}");
        }
        let json = settings.json();
        for part in [
            r#"{"schemaVersion":1,"dataDir":""#,
            r#""stateRoot":"/run/husk","desired":{"path":""#,
            r#""present":true,"release":null,"error":null,"containers":[{"name":"web","#,
            r#""restart":"always","stopTimeoutSecs":10,"#,
            r#""memoryMaxBytes":67108864,"pidsMax":32,"cpuQuotaUsec":50000,"cpuPeriodUsec":100000}"#,
            r#"{"name":"batch","source":"tools:1","restart":"no","stopTimeoutSecs":10,"health":null,"bundleConfig":null,"error":null,"memoryMaxBytes":null"#,
            r#""from":"data","error":null,"server":"http://updates.example:8080/fleet","caFile":null,"deviceClass":"gw","hardware":"board","intervalSecs":1800,"graceSecs":120}"#,
            r#""trustedRoot":{"path":""#,
            r#""kernelFragment":"qemu-armv7.config"},"ok":true}"#,
        ] {
            assert!(json.contains(part), "{part:?} not in\n{json}");
        }
    }

    #[test]
    fn the_images_copies_are_used_when_the_data_directory_has_none() {
        let d = Device::new("config-etc");
        fs::rename(d.data.join("update/root.json"), d.etc.join("root.json")).unwrap();
        fs::rename(d.data.join("update/config.json"), d.etc.join("update.json")).unwrap();
        let settings = d.gather(NOW + 10);
        assert!(settings
            .check()
            .0
            .contains(&format!("ok  {}/update.json\n", d.etc.display())));
        assert!(settings
            .check()
            .0
            .contains(&format!("ok  {}/root.json\n", d.etc.display())));
        assert!(settings.text().contains(&format!(
            "{}/update.json\n              the image's copy",
            d.etc.display()
        )));
        assert!(settings.json().contains(r#""from":"image""#));
        // Nothing of updates at all, and no board: fine.
        fs::remove_file(d.etc.join("root.json")).unwrap();
        fs::remove_file(d.etc.join("update.json")).unwrap();
        fs::remove_file(d.etc.join(BOARD_FILE)).unwrap();
        fs::remove_file(d.data.join("desired.json")).unwrap();
        let (text, ok) = d.gather(NOW + 10).check();
        assert!(ok, "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("(absent: nothing runs)"), "{text}");
        assert!(text.contains("(absent, and no /etc/husk/update.json: no updates)"));
    }

    #[test]
    fn each_bad_file_is_one_line_saying_what_is_wrong() {
        let d = Device::new("config-bad");
        let check = |d: &Device| {
            let (text, ok) = d.gather(NOW + 10).check();
            assert!(!ok, "{text}");
            text
        };
        let bad_line = |text: &str, path: &Path, why: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("bad {}: ", path.display())))
                .unwrap_or_else(|| panic!("no bad line for {}:\n{text}", path.display()));
            assert!(line.contains(why), "{line:?} does not say {why:?}");
        };
        // The bundle's config.json, through the runtime's parser.
        fs::write(d.bundle.join("config.json"), "{}").unwrap();
        bad_line(&check(&d), &d.bundle.join("config.json"), "ociVersion");
        // The desired state, through the daemon's.
        let desired = d.data.join("desired.json");
        fs::write(
            &desired,
            r#"{"containers": [{"name": "../x", "image": "a"}]}"#,
        )
        .unwrap();
        let text = check(&d);
        bad_line(&text, &desired, "containers[0].name");
        // The update config, through the agent's.
        let config = d.data.join("update/config.json");
        fs::write(
            &config,
            r#"{"deviceClass": "gw", "hardware": "b", "colour": 1}"#,
        )
        .unwrap();
        bad_line(&check(&d), &config, "");
        fs::write(
            &config,
            r#"{"deviceClass": "gw", "hardware": "b", "interval": "1s"}"#,
        )
        .unwrap();
        bad_line(&check(&d), &config, "interval");
        fs::write(&config, r#"{"deviceClass": "gw", "hardware": "b"}"#).unwrap();
        // The trusted root: its own signature, then its expiry.
        let root = d.data.join("update/root.json");
        let text = String::from_utf8(d.root_json.clone()).unwrap();
        let tampered = text.replacen("\"version\":1", "\"version\":2", 1);
        assert_ne!(tampered, text);
        fs::write(&root, tampered).unwrap();
        bad_line(&check(&d), &root, "");
        fs::write(&root, &d.root_json).unwrap();
        let far = d.gather(NOW + 100 * 365 * 86_400).check().0;
        bad_line(&far, &root, "expired");
        fs::remove_file(&root).unwrap();
        bad_line(&check(&d), &root, "missing (nor in /etc/husk)");
        // The board file, with husk's one reader of it.
        fs::write(d.etc.join(BOARD_FILE), "kernel_fragment = qemu.config\n").unwrap();
        bad_line(
            &check(&d),
            &d.etc.join(BOARD_FILE),
            "kernel_fragment must be",
        );
        // Every line is one: ok or bad.
        for line in check(&d).lines() {
            assert!(
                line.starts_with("ok  /") || line.starts_with("bad /"),
                "{line:?}"
            );
        }
        // show reports the same without failing.
        let settings = d.gather(NOW + 10);
        assert!(settings.text().contains("BAD: "), "{}", settings.text());
        assert!(settings.json().contains(r#","ok":false}"#));
    }
}
