//! The device's desired state, `<data-dir>/desired.json`: the containers
//! `husk daemon` keeps running, each with its restart policy, backoff and
//! health check.
//!
//! ```json
//! {"containers": [{
//!   "name": "web", "bundle": "/opt/web",
//!   "args": ["httpd", "-f"], "env": ["PORT=80"],
//!   "restart": "on-failure:5",
//!   "backoff": {"initial": "1s", "max": "1m", "resetAfter": "10s"},
//!   "health": {"http": {"port": 80, "path": "/"}, "interval": "30s",
//!              "timeout": "5s", "retries": 3, "startPeriod": "10s"},
//!   "stopTimeout": "10s"
//! }]}
//! ```
//!
//! A release of the update agent adds the images its containers run, each
//! pinned by content (an entry's `image` names one of them; the store holds
//! their configs and layers, put there by the agent before the release was
//! switched to):
//!
//! ```json
//! {"containers": [{"name": "web", "image": "web"}],
//!  "images": [{"name": "web",
//!              "config": {"digest": "sha256:…", "size": 1234},
//!              "layers": ["sha256:…", "sha256:…"]}]}
//! ```
//!
//! Parsed into bounded wire structs, then converted once into
//! [`DesiredState`]; every error names the property (`containers[0].restart`).
//! Durations are strings: a whole number followed by `ms`, `s`, `m` or `h`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use crate::container::ContainerId;
use crate::spec::ProcessOverrides;
use crate::wire::{unescape, Capped, Field, HeapCapped, WireError};

/// The largest desired-state file read.
pub const MAX_DESIRED_BYTES: usize = 256 * 1024;
/// Most containers in the desired state.
pub const MAX_CONTAINERS: usize = 64;
/// Most entries of `args`, of `env` and of a `health.exec` command.
pub const MAX_ARGS: usize = 64;
/// Longest argument or environment entry, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// Longest bundle path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most images a desired state pins.
pub const MAX_IMAGES: usize = 16;
/// Most layers of a pinned image (the store's own limit).
pub const MAX_IMAGE_LAYERS: usize = crate::image::store::MAX_LAYERS;
/// Longest short string: a name, a policy, a duration, an HTTP path.
pub const MAX_WORD_BYTES: usize = 256;
/// The longest a backoff, interval or timeout may be (a day).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The backoff of an entry that sets none (Docker's reset period, a longer start).
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
    reset_after: Duration::from_secs(10),
};
/// Docker's health check defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How long a probe may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Failures in a row that make a container unhealthy, by default.
pub const DEFAULT_RETRIES: u32 = 3;
/// How long a container gets to exit after SIGTERM before SIGKILL, by default.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon keeps running, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// The containers, with distinct names.
    pub containers: Vec<Entry>,
    /// The images pinned by content (a release's), with distinct names.
    pub images: Vec<PinnedImage>,
}

/// An image the desired state pins by content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    /// The image, as the runtime takes it.
    pub image: crate::image::Pinned,
    /// The size of its config blob.
    pub config_size: u64,
}

/// One container of the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its container id, unique in the desired state.
    pub name: ContainerId,
    /// Where its OCI bundle comes from.
    pub source: Source,
    /// What `args` and `env` change in the bundle's `process`.
    pub overrides: ProcessOverrides,
    /// When it is restarted after it exits.
    pub restart: RestartPolicy,
    /// How long it waits before each restart.
    pub backoff: Backoff,
    /// How its health is checked, if at all.
    pub health: Option<HealthCheck>,
    /// How long it gets to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

/// What an entry runs: `bundle` or `image`, exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI bundle directory (absolute).
    Bundle(PathBuf),
    /// An image of the store (`husk image import`), run as `husk run
    /// --image` runs it: a bundle under `<data-dir>/containers/<name>`, its
    /// root an overlay of the image's layers.
    Image(crate::image::ImageName),
    /// An image of the desired state's `images`, run the same way.
    Pinned(crate::image::Pinned),
}

/// When a container is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never.
    No,
    /// When it exits with another status than 0 (or cannot start), at most
    /// `max` times in a row (a run of `reset_after` clears the count).
    OnFailure {
        /// Restarts in a row allowed; `None`: no limit.
        max: Option<u32>,
    },
    /// Whatever its status.
    Always,
}

/// Exponential backoff between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart; it doubles with each next one.
    pub initial: Duration,
    /// The cap on the delay.
    pub max: Duration,
    /// A container up this long has run stably: delay and count start over.
    pub reset_after: Duration,
}

/// A health check, with Docker's semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is checked.
    pub probe: Probe,
    /// The time from a container's start to its first probe, and between probes.
    pub interval: Duration,
    /// A probe that takes longer fails.
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
    /// Failures in this time after the start do not count.
    pub start_period: Duration,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Runs this command in the container (as `husk exec`); exit 0 is healthy.
    Exec(Vec<CString>),
    /// Connects to this TCP port on 127.0.0.1 in the container's network namespace.
    Tcp {
        /// The port.
        port: u16,
    },
    /// `GET path` on 127.0.0.1:port in the container's network namespace; a
    /// status of 200 to 399 is healthy.
    Http {
        /// The port.
        port: u16,
        /// The path, starting with `/`.
        path: String,
    },
}

/// Why a desired-state file was refused.
#[derive(Debug)]
pub enum DesiredError {
    /// Reading the file failed.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_DESIRED_BYTES`].
    TooBig {
        /// The file.
        path: PathBuf,
    },
    /// The file is not JSON of the desired-state shape.
    Json(serde_json_core::de::Error),
    /// A required property is absent.
    Missing(Field),
    /// A property has an invalid value.
    Invalid {
        /// The property.
        field: Field,
        /// What is wrong, as a predicate: "must be an absolute path".
        reason: &'static str,
    },
    /// Two entries have the same name.
    Duplicate {
        /// The second entry's `name`.
        field: Field,
        /// The name.
        name: String,
    },
    /// `image` is not an image name.
    ImageName {
        /// The `image` property.
        field: Field,
        /// Why.
        reason: &'static str,
    },
    /// An array or string is over its capacity, or a string is malformed.
    Wire(WireError),
}

// The wire layer.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDesired<'a> {
    /// On the heap: an entry is about 3.5 KiB inline (its arrays).
    #[serde(borrow, default)]
    containers: HeapCapped<WireEntry<'a>, MAX_CONTAINERS>,
    #[serde(borrow, default)]
    images: HeapCapped<WireImage<'a>, MAX_IMAGES>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireImage<'a> {
    #[serde(borrow)]
    name: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    config: Option<WireBlob<'a>>,
    #[serde(borrow, default)]
    layers: Capped<&'a str, MAX_IMAGE_LAYERS>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBlob<'a> {
    digest: &'a str,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireEntry<'a> {
    #[serde(borrow)]
    name: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    bundle: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    image: Option<EscapedStr<'a>>,
    #[serde(borrow, default)]
    args: Capped<EscapedStr<'a>, MAX_ARGS>,
    #[serde(borrow, default)]
    env: Capped<EscapedStr<'a>, MAX_ARGS>,
    #[serde(borrow)]
    restart: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    backoff: Option<WireBackoff<'a>>,
    #[serde(borrow)]
    health: Option<WireHealth<'a>>,
    #[serde(borrow)]
    stop_timeout: Option<EscapedStr<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireBackoff<'a> {
    #[serde(borrow)]
    initial: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    max: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    reset_after: Option<EscapedStr<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireHealth<'a> {
    #[serde(borrow)]
    exec: Option<Capped<EscapedStr<'a>, MAX_ARGS>>,
    tcp: Option<WirePort>,
    #[serde(borrow)]
    http: Option<WireHttp<'a>>,
    #[serde(borrow)]
    interval: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    timeout: Option<EscapedStr<'a>>,
    retries: Option<u32>,
    #[serde(borrow)]
    start_period: Option<EscapedStr<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePort {
    port: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHttp<'a> {
    port: Option<u32>,
    #[serde(borrow)]
    path: Option<EscapedStr<'a>>,
}

const CONTAINERS: Field = Field::new("containers");

/// Reads and validates the desired-state file `path`. A missing file is an
/// empty desired state: a device fresh from its image runs nothing until the
/// update agent (or an operator) writes one and the daemon reads it (SIGHUP).
pub fn load(path: &Path) -> Result<DesiredState, DesiredError> {
    let read_error = |source| DesiredError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DesiredState::default()),
        opened => opened.map_err(read_error)?,
    };
    let json = crate::file::read_capped(file, MAX_DESIRED_BYTES)
        .map_err(read_error)?
        .ok_or_else(|| DesiredError::TooBig {
            path: path.to_owned(),
        })?;
    parse(&json)
}

/// Validates the JSON text of a desired-state file.
pub fn parse(json: &[u8]) -> Result<DesiredState, DesiredError> {
    let (wire, _) = serde_json_core::from_slice::<WireDesired<'_>>(json)?;
    let images = convert_images(wire.images)?;
    let mut names = BTreeSet::new();
    let mut containers = Vec::new();
    for (i, entry) in wire
        .containers
        .into_items(CONTAINERS)?
        .into_iter()
        .enumerate()
    {
        let entry = convert_entry(entry, CONTAINERS.at(i), &images)?;
        if !names.insert(entry.name.as_str().to_owned()) {
            return Err(DesiredError::Duplicate {
                field: CONTAINERS.at(i).member("name"),
                name: entry.name.as_str().to_owned(),
            });
        }
        containers.push(entry);
    }
    Ok(DesiredState { containers, images })
}

const IMAGES: Field = Field::new("images");

fn convert_images(
    wire: HeapCapped<WireImage<'_>, MAX_IMAGES>,
) -> Result<Vec<PinnedImage>, DesiredError> {
    let mut images: Vec<PinnedImage> = Vec::new();
    for (i, image) in wire.into_items(IMAGES)?.into_iter().enumerate() {
        let at = IMAGES.at(i);
        let field = at.member("name");
        let name = unescape(
            field,
            image.name.ok_or(DesiredError::Missing(field))?,
            MAX_WORD_BYTES,
        )?;
        if crate::image::ImageName::parse(&name).is_err() || name.contains(':') {
            return Err(invalid(
                field,
                "must be an image name without a tag: A-Z a-z 0-9 . _ - /",
            ));
        }
        if images.iter().any(|p| p.image.name == name) {
            return Err(DesiredError::Duplicate { field, name });
        }
        let field = at.member("config");
        let config = image.config.ok_or(DesiredError::Missing(field))?;
        let config_digest = digest(field.member("digest"), config.digest)?;
        let field = at.member("layers");
        let mut layers = Vec::new();
        for (j, layer) in image.layers.into_items(field)?.into_iter().enumerate() {
            layers.push(digest(field.at(j), layer)?);
        }
        if layers.is_empty() {
            return Err(invalid(field, "must name at least one layer"));
        }
        images.push(PinnedImage {
            image: crate::image::Pinned {
                name,
                config: config_digest,
                layers,
            },
            config_size: config.size,
        });
    }
    Ok(images)
}

fn digest(field: Field, text: &str) -> Result<delta_updater::Digest, DesiredError> {
    delta_updater::Digest::parse(text).map_err(|_| {
        invalid(
            field,
            "must be a digest: sha256: and 64 lowercase hex digits",
        )
    })
}

fn convert_entry(
    wire: WireEntry<'_>,
    at: Field,
    images: &[PinnedImage],
) -> Result<Entry, DesiredError> {
    let field = at.member("name");
    let name = wire.name.ok_or(DesiredError::Missing(field))?;
    let name = unescape(field, name, MAX_WORD_BYTES)?
        .parse()
        .map_err(|_| {
            invalid(
                field,
                "must be a container id: 1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.'",
            )
        })?;
    let source = match (wire.image, wire.bundle) {
        (Some(_), Some(_)) => return Err(invalid(at, "gives both bundle and image: give one")),
        (Some(image), None) => {
            let field = at.member("image");
            let name = unescape(field, image, MAX_WORD_BYTES)?;
            match images.iter().find(|p| p.image.name == name) {
                Some(pinned) => Source::Pinned(pinned.image.clone()),
                None => Source::Image(
                    crate::image::ImageName::parse(&name)
                        .map_err(|reason| DesiredError::ImageName { field, reason })?,
                ),
            }
        }
        (None, None) => return Err(invalid(at, "needs a bundle or an image")),
        (None, Some(bundle)) => {
            let field = at.member("bundle");
            let path = PathBuf::from(unescape(field, bundle, MAX_PATH_BYTES)?);
            if !path.is_absolute() {
                return Err(invalid(field, "must be an absolute path"));
            }
            Source::Bundle(path)
        }
    };
    let args = c_strings(wire.args, at.member("args"))?;
    let field = at.member("env");
    let env = c_strings(wire.env, field)?;
    for (i, entry) in env.iter().enumerate() {
        if !matches!(entry.to_bytes().iter().position(|&b| b == b'='), Some(1..)) {
            return Err(invalid(field.at(i), "must be NAME=VALUE"));
        }
    }
    let restart = match wire.restart {
        None => RestartPolicy::Always,
        Some(text) => {
            let field = at.member("restart");
            parse_policy(&unescape(field, text, MAX_WORD_BYTES)?).ok_or_else(|| {
                invalid(
                    field,
                    "must be \"no\", \"on-failure\", \"on-failure:MAX\" or \"always\"",
                )
            })?
        }
    };
    let backoff = match wire.backoff {
        None => DEFAULT_BACKOFF,
        Some(wire) => convert_backoff(wire, at.member("backoff"))?,
    };
    let health = wire
        .health
        .map(|wire| convert_health(wire, at))
        .transpose()?;
    let stop_timeout = duration_or(
        wire.stop_timeout,
        at.member("stopTimeout"),
        DEFAULT_STOP_TIMEOUT,
    )?;
    Ok(Entry {
        name,
        source,
        overrides: ProcessOverrides {
            args,
            env,
            ..ProcessOverrides::default()
        },
        restart,
        backoff,
        health,
        stop_timeout,
    })
}

fn convert_backoff(wire: WireBackoff<'_>, at: Field) -> Result<Backoff, DesiredError> {
    let backoff = Backoff {
        initial: duration_or(wire.initial, at.member("initial"), DEFAULT_BACKOFF.initial)?,
        max: duration_or(wire.max, at.member("max"), DEFAULT_BACKOFF.max)?,
        reset_after: duration_or(
            wire.reset_after,
            at.member("resetAfter"),
            DEFAULT_BACKOFF.reset_after,
        )?,
    };
    if backoff.max < backoff.initial {
        return Err(invalid(at.member("max"), "must not be less than initial"));
    }
    Ok(backoff)
}

/// `entry` is the container's field: a probe's members are three deep below it.
fn convert_health(wire: WireHealth<'_>, entry: Field) -> Result<HealthCheck, DesiredError> {
    let at = entry.member("health");
    const ONE_PROBE: &str = "must have exactly one of exec, tcp and http";
    let probe = match (wire.exec, wire.tcp, wire.http) {
        (Some(exec), None, None) => {
            let field = entry.member("health.exec");
            let command = c_strings(exec, field)?;
            if command.is_empty() {
                return Err(invalid(field, "must name a command"));
            }
            Probe::Exec(command)
        }
        (None, Some(tcp), None) => Probe::Tcp {
            port: port(tcp.port, entry.member("health.tcp").member("port"))?,
        },
        (None, None, Some(http)) => {
            let field = entry.member("health.http").member("path");
            let path = match http.path {
                None => "/".to_owned(),
                Some(path) => unescape(field, path, MAX_WORD_BYTES)?,
            };
            if !path.starts_with('/')
                || path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(invalid(
                    field,
                    "must start with '/' and hold no spaces or control characters",
                ));
            }
            Probe::Http {
                port: port(http.port, entry.member("health.http").member("port"))?,
                path,
            }
        }
        _ => return Err(invalid(at, ONE_PROBE)),
    };
    let check = HealthCheck {
        probe,
        interval: duration_or(wire.interval, at.member("interval"), DEFAULT_INTERVAL)?,
        timeout: duration_or(wire.timeout, at.member("timeout"), DEFAULT_TIMEOUT)?,
        retries: wire.retries.unwrap_or(DEFAULT_RETRIES),
        start_period: duration_or(wire.start_period, at.member("startPeriod"), Duration::ZERO)?,
    };
    if check.interval.is_zero() {
        return Err(invalid(at.member("interval"), "must be more than 0"));
    }
    if check.timeout.is_zero() {
        return Err(invalid(at.member("timeout"), "must be more than 0"));
    }
    if check.retries == 0 {
        return Err(invalid(at.member("retries"), "must be at least 1"));
    }
    Ok(check)
}

fn port(port: Option<u32>, field: Field) -> Result<u16, DesiredError> {
    let port = port.ok_or(DesiredError::Missing(field))?;
    u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| invalid(field, "must be a port number, 1 to 65535"))
}

fn c_strings<const N: usize>(
    wire: Capped<EscapedStr<'_>, N>,
    field: Field,
) -> Result<Vec<CString>, DesiredError> {
    let mut out = Vec::new();
    for (i, text) in wire.into_items(field)?.into_iter().enumerate() {
        let text = unescape(field.at(i), text, MAX_ARG_BYTES)?;
        // unescape refused NUL, so this cannot fail.
        out.push(CString::new(text).map_err(|_| invalid(field.at(i), crate::wire::HAS_NUL))?);
    }
    Ok(out)
}

/// `no`, `on-failure`, `on-failure:MAX` (MAX at least 1) or `always`.
pub fn parse_policy(text: &str) -> Option<RestartPolicy> {
    match text {
        "no" => Some(RestartPolicy::No),
        "always" => Some(RestartPolicy::Always),
        "on-failure" => Some(RestartPolicy::OnFailure { max: None }),
        _ => {
            let max = text.strip_prefix("on-failure:")?;
            if !max.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Docker reads 0 as "no limit"; here it is refused, not guessed.
            Some(RestartPolicy::OnFailure {
                max: Some(max.parse().ok().filter(|&max| max > 0)?),
            })
        }
    }
}

/// A whole number followed by `ms`, `s`, `m` or `h`, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let duration = match &text[digits..] {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => return None,
    };
    (duration <= MAX_DURATION).then_some(duration)
}

fn duration_or(
    text: Option<EscapedStr<'_>>,
    field: Field,
    default: Duration,
) -> Result<Duration, DesiredError> {
    let Some(text) = text else {
        return Ok(default);
    };
    parse_duration(&unescape(field, text, MAX_WORD_BYTES)?).ok_or_else(|| {
        invalid(
            field,
            "must be a duration such as \"500ms\", \"10s\", \"5m\" or \"1h\", at most 24h",
        )
    })
}

fn invalid(field: Field, reason: &'static str) -> DesiredError {
    DesiredError::Invalid { field, reason }
}

impl From<WireError> for DesiredError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<serde_json_core::de::Error> for DesiredError {
    fn from(e: serde_json_core::de::Error) -> Self {
        Self::Json(e)
    }
}

impl fmt::Display for DesiredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, .. } => write!(f, "reading desired state {}", path.display()),
            Self::TooBig { path } => write!(
                f,
                "desired state {} is larger than {MAX_DESIRED_BYTES} bytes",
                path.display()
            ),
            Self::Json(e) => write!(
                f,
                "desired state: invalid JSON ({e}; a misspelt property or a value of the wrong type?)"
            ),
            Self::Missing(field) => write!(f, "desired state: {field} is required"),
            Self::Invalid { field, reason } => write!(f, "desired state: {field} {reason}"),
            Self::Duplicate { field, name } => {
                write!(f, "desired state: {field}: {name:?} names another container already")
            }
            Self::ImageName { field, reason } => write!(f, "desired state: {field}: {reason}"),
            Self::Wire(e) => write!(f, "desired state: {e}"),
        }
    }
}

impl std::error::Error for DesiredError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        crate::error_chain(&parse(json.as_bytes()).unwrap_err())
    }

    #[test]
    fn a_full_entry_parses_into_validated_types() {
        let json = r#"{"containers": [{
            "name": "web", "bundle": "/opt/web", "args": ["httpd", "-f"], "env": ["A=1"],
            "restart": "on-failure:5",
            "backoff": {"initial": "500ms", "max": "2m", "resetAfter": "1h"},
            "health": {"http": {"port": 8080, "path": "/healthz"}, "interval": "5s",
                       "timeout": "1s", "retries": 2, "startPeriod": "20s"},
            "stopTimeout": "3s"}, {"name": "db", "bundle": "/opt/db"}]}"#;
        let state = parse(json.as_bytes()).unwrap();
        let web = &state.containers[0];
        assert_eq!(web.name.as_str(), "web");
        assert_eq!(web.source, Source::Bundle(PathBuf::from("/opt/web")));
        assert_eq!(web.overrides.args, [c"httpd", c"-f"]);
        assert_eq!(web.overrides.env, [c"A=1"]);
        assert_eq!(web.restart, RestartPolicy::OnFailure { max: Some(5) });
        assert_eq!(
            web.backoff,
            Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(120),
                reset_after: Duration::from_secs(3600),
            }
        );
        assert_eq!(
            web.health,
            Some(HealthCheck {
                probe: Probe::Http {
                    port: 8080,
                    path: "/healthz".to_owned()
                },
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(1),
                retries: 2,
                start_period: Duration::from_secs(20),
            })
        );
        assert_eq!(web.stop_timeout, Duration::from_secs(3));
        let db = &state.containers[1];
        assert_eq!(db.restart, RestartPolicy::Always);
        assert_eq!(db.backoff, DEFAULT_BACKOFF);
        assert_eq!(db.health, None);
        assert_eq!(db.stop_timeout, DEFAULT_STOP_TIMEOUT);
        assert!(db.overrides.args.is_empty());
        assert_eq!(parse(b"{}").unwrap(), DesiredState::default());
    }

    #[test]
    fn probes_of_each_kind() {
        let probe = |health: &str| {
            let json = format!(
                r#"{{"containers": [{{"name": "a", "bundle": "/b", "health": {health}}}]}}"#
            );
            let state = parse(json.as_bytes()).unwrap();
            state.containers[0].health.clone().unwrap()
        };
        let exec = probe(r#"{"exec": ["cat", "/ok"]}"#);
        assert_eq!(exec.probe, Probe::Exec(vec![c"cat".into(), c"/ok".into()]));
        assert_eq!(
            (exec.interval, exec.timeout, exec.retries, exec.start_period),
            (
                DEFAULT_INTERVAL,
                DEFAULT_TIMEOUT,
                DEFAULT_RETRIES,
                Duration::ZERO
            )
        );
        assert_eq!(
            probe(r#"{"tcp": {"port": 22}}"#).probe,
            Probe::Tcp { port: 22 }
        );
        assert_eq!(
            probe(r#"{"http": {"port": 80}}"#).probe,
            Probe::Http {
                port: 80,
                path: "/".to_owned()
            }
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let entry = |members: &str| {
            error(&format!(
                r#"{{"containers": [{{"name": "a", "bundle": "/b"{members}}}]}}"#
            ))
        };
        let image = parse(br#"{"containers": [{"name": "a", "image": "busybox"}]}"#).unwrap();
        assert_eq!(
            image.containers[0].source,
            Source::Image(crate::image::ImageName::parse("busybox:latest").unwrap())
        );
        assert_eq!(
            error(r#"{"containers": [{"name": "a", "image": "-x"}]}"#),
            "desired state: containers[0].image: an image name starts with a letter or a digit"
        );
        assert_eq!(
            error(r#"{"containers": [{"name": "a", "image": "b", "bundle": "/b"}]}"#),
            "desired state: containers[0] gives both bundle and image: give one"
        );
        assert_eq!(
            error(r#"{"containers": [{"name": "a"}]}"#),
            "desired state: containers[0] needs a bundle or an image"
        );
        assert_eq!(
            error(r#"{"containers": [{"bundle": "/b"}]}"#),
            "desired state: containers[0].name is required"
        );
        assert_eq!(
            error(r#"{"containers": [{"name": "../x", "bundle": "/b"}]}"#),
            "desired state: containers[0].name must be a container id: 1 to 64 of \
             A-Z a-z 0-9 _ . -, not starting with '.'"
        );
        assert_eq!(
            error(r#"{"containers": [{"name": "a", "bundle": "b"}]}"#),
            "desired state: containers[0].bundle must be an absolute path"
        );
        assert_eq!(
            error(
                r#"{"containers": [{"name": "a", "bundle": "/b"}, {"name": "a", "bundle": "/c"}]}"#
            ),
            "desired state: containers[1].name: \"a\" names another container already"
        );
        assert_eq!(
            entry(r#", "restart": "sometimes""#),
            "desired state: containers[0].restart must be \"no\", \"on-failure\", \
             \"on-failure:MAX\" or \"always\""
        );
        assert_eq!(
            entry(r#", "restart": "on-failure:-1""#),
            "desired state: containers[0].restart must be \"no\", \"on-failure\", \
             \"on-failure:MAX\" or \"always\""
        );
        assert!(entry(r#", "backoff": {"initial": "10"}"#)
            .starts_with("desired state: containers[0].backoff.initial must be a duration"));
        assert_eq!(
            entry(r#", "backoff": {"initial": "1m", "max": "1s"}"#),
            "desired state: containers[0].backoff.max must not be less than initial"
        );
        assert_eq!(
            entry(r#", "health": {"tcp": {"port": 1}, "http": {"port": 2}}"#),
            "desired state: containers[0].health must have exactly one of exec, tcp and http"
        );
        assert_eq!(
            entry(r#", "health": {"tcp": {"port": 70000}}"#),
            "desired state: containers[0].health.tcp.port must be a port number, 1 to 65535"
        );
        assert_eq!(
            entry(r#", "health": {"http": {"port": 80, "path": "x y"}}"#),
            "desired state: containers[0].health.http.path must start with '/' and hold no \
             spaces or control characters"
        );
        assert_eq!(
            entry(r#", "health": {"exec": []}"#),
            "desired state: containers[0].health.exec must name a command"
        );
        assert_eq!(
            entry(r#", "health": {"exec": ["true"], "retries": 0}"#),
            "desired state: containers[0].health.retries must be at least 1"
        );
        assert_eq!(
            entry(r#", "env": ["NOVALUE"]"#),
            "desired state: containers[0].env[0] must be NAME=VALUE"
        );
        assert_eq!(
            entry(r#", "args": ["a\u0000b"]"#),
            "desired state: containers[0].args[0] contains a NUL byte"
        );
        let many = vec![r#""x""#; MAX_ARGS + 1].join(",");
        assert_eq!(
            entry(&format!(r#", "args": [{many}]"#)),
            format!("desired state: containers[0].args has more than {MAX_ARGS} entries")
        );
        assert!(entry(r#", "restrat": "no""#).starts_with("desired state: invalid JSON ("));
        assert!(error("[").starts_with("desired state: invalid JSON ("));
    }

    #[test]
    fn durations_and_policies() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("25h"), None);
        for bad in ["", "s", "1", "1.5s", "-1s", "1 s", "1d", "9999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(
            parse_policy("on-failure"),
            Some(RestartPolicy::OnFailure { max: None })
        );
        assert_eq!(
            parse_policy("on-failure:3"),
            Some(RestartPolicy::OnFailure { max: Some(3) })
        );
        assert_eq!(parse_policy("on-failure:0"), None);
        assert_eq!(parse_policy("on-failure:"), None);
        assert_eq!(parse_policy("on-failure:+3"), None);
        assert_eq!(parse_policy("No"), None);
    }

    #[test]
    fn load_refuses_big_and_unreadable_files_and_takes_none_as_empty() {
        let tmp = crate::testutil::TempDir::new("desired");
        let path = tmp.path().join("desired.json");
        assert!(load(&path).unwrap().containers.is_empty());
        let message = crate::error_chain(&load(tmp.path()).unwrap_err());
        assert!(message.starts_with(&format!("reading desired state {}: ", tmp.path().display())));
        std::fs::write(&path, vec![b' '; MAX_DESIRED_BYTES + 1]).unwrap();
        assert_eq!(
            load(&path).unwrap_err().to_string(),
            format!(
                "desired state {} is larger than {MAX_DESIRED_BYTES} bytes",
                path.display()
            )
        );
    }
}
