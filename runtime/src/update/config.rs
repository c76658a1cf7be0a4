//! The device's update settings, `<data-dir>/update/config.json`, written by
//! whoever builds the device's image (the board files give the values):
//!
//! ```json
//! {"server": "http://updates.example:8080/fleet", "deviceClass": "gateway",
//!  "hardware": "rpi4", "interval": "1h", "grace": "2m"}
//! ```
//!
//! `server` may be absent (a device updated only from a USB stick with
//! `husk update apply --from DIR`). An `https://` server needs husk built
//! with the `tls` feature; its certificate is checked against the PEM file
//! `caFile` (an absolute path; default
//! [`DEFAULT_CA_FILE`](delta_updater::fetch::tls::DEFAULT_CA_FILE) where TLS
//! is built in, `/etc/ssl/certs/ca-certificates.crt`). `interval` (default 1h) is how often the
//! daemon polls, with ±10 % jitter; `grace` (default 2m) how long a new
//! release has to become healthy before it is rolled back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use crate::daemon::desired::parse_duration;
use crate::wire::{unescape, Field};

use super::UpdateError;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: usize = 4096;
/// Longest server URL, device class or hardware name.
pub const MAX_VALUE_BYTES: usize = 512;
/// The poll interval of a config that sets none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// The probation of a config that sets none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);
/// The shortest poll interval (a fleet must not be able to hammer its server).
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// The device's update settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The repository's base URL (`http://host[:port][/prefix]`, or
    /// `https://` with the `tls` feature), if polled.
    pub server: Option<String>,
    /// The CA certificates an `https://` server's certificate must chain to
    /// (PEM); `None`: the system bundle.
    pub ca_file: Option<PathBuf>,
    /// The device class, which releases are published for.
    pub class: String,
    /// The hardware name a release must list.
    pub hardware: String,
    /// How often the daemon polls.
    pub interval: Duration,
    /// How long a new release has to become healthy.
    pub grace: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(borrow)]
    server: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    ca_file: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    device_class: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    hardware: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    interval: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    grace: Option<EscapedStr<'a>>,
}

impl Config {
    /// Reads the config file `path`.
    pub fn load(path: &Path) -> Result<Self, UpdateError> {
        let bytes = super::read_file(path, MAX_CONFIG_BYTES)?;
        Self::parse(&bytes).map_err(|reason| UpdateError::Config {
            path: path.to_owned(),
            reason,
        })
    }

    /// Validates the JSON text of a config file; the error names the property.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let (wire, _) = serde_json_core::from_slice::<Wire<'_>>(json)
            .map_err(|e| format!("not the JSON expected: {e}"))?;
        let text = |name: &'static str, value: Option<EscapedStr<'_>>| {
            value
                .map(|v| unescape(Field::new(name), v, MAX_VALUE_BYTES))
                .transpose()
                .map_err(|e| e.to_string())
        };
        let required = |name: &'static str, value| {
            text(name, value)?
                .filter(|v| delta_updater::metadata::is_name(v))
                .ok_or_else(|| format!("{name} must be given: 1 to 64 of a-z A-Z 0-9 . _ -"))
        };
        let duration = |name: &'static str, value, default: Duration| match text(name, value)? {
            None => Ok(default),
            Some(v) => parse_duration(&v)
                .ok_or_else(|| format!("{name} must be a duration such as 30s, 10m or 1h")),
        };
        let server = text("server", wire.server)?;
        if let Some(url) = &server {
            if url.starts_with("https://") && !cfg!(feature = "tls") {
                return Err(
                    "server is https://, but this husk is built without TLS (cargo feature tls); \
                     use http:// (everything is signed) or a husk built with tls"
                        .into(),
                );
            }
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err("server must be an http:// or https:// URL".into());
            }
        }
        let ca_file = text("caFile", wire.ca_file)?.map(PathBuf::from);
        if ca_file.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err("caFile must be an absolute path".into());
        }
        let interval = duration("interval", wire.interval, DEFAULT_INTERVAL)?;
        if interval < MIN_INTERVAL {
            return Err(format!(
                "interval must be at least {} s",
                MIN_INTERVAL.as_secs()
            ));
        }
        Ok(Self {
            server,
            ca_file,
            class: required("deviceClass", wire.device_class)?,
            hardware: required("hardware", wire.hardware)?,
            interval,
            grace: duration("grace", wire.grace, DEFAULT_GRACE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config = Config::parse(
            br#"{"server": "http://10.0.2.2:8080/r", "deviceClass": "gw", "hardware": "rpi4",
                 "interval": "5m", "grace": "30s"}"#,
        )
        .unwrap();
        assert_eq!(config.server.as_deref(), Some("http://10.0.2.2:8080/r"));
        assert_eq!(config.class, "gw");
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.grace, Duration::from_secs(30));
    }

    #[test]
    fn defaults_apply_and_the_server_is_optional() {
        let config = Config::parse(br#"{"deviceClass": "gw", "hardware": "x"}"#).unwrap();
        assert_eq!(config.server, None);
        assert_eq!(config.interval, DEFAULT_INTERVAL);
        assert_eq!(config.grace, DEFAULT_GRACE);
    }

    #[test]
    fn bad_configs_name_the_property() {
        let error = |json: &str| Config::parse(json.as_bytes()).unwrap_err();
        assert!(error(r#"{"hardware": "x"}"#).starts_with("deviceClass must be given"));
        assert!(error(r#"{"deviceClass": "a b", "hardware": "x"}"#).starts_with("deviceClass"));
        assert!(
            error(r#"{"deviceClass": "a", "hardware": "x", "interval": "1s"}"#)
                .starts_with("interval must be at least")
        );
        assert!(
            error(r#"{"deviceClass": "a", "hardware": "x", "grace": "soon"}"#)
                .starts_with("grace must be a duration")
        );
        assert!(
            error(r#"{"deviceClass": "a", "hardware": "x", "server": "ftp://h"}"#)
                .starts_with("server must be")
        );
        assert!(error(r#"{"deviceClass": "a", "hardware": "x", "port": 1}"#)
            .starts_with("not the JSON expected"));
        assert!(
            error(r#"{"deviceClass": "a", "hardware": "x", "caFile": "certs/ca.pem"}"#)
                .starts_with("caFile must be an absolute path")
        );
    }

    #[test]
    fn an_https_server_needs_the_tls_feature_and_takes_a_ca_file() {
        let json = br#"{"server": "https://updates.example/fleet", "deviceClass": "gw",
                        "hardware": "x", "caFile": "/etc/husk/fleet-ca.pem"}"#;
        let config = Config::parse(json);
        assert_eq!(config.is_ok(), cfg!(feature = "tls"));
        match config {
            Ok(config) => assert_eq!(
                config.ca_file.as_deref(),
                Some(Path::new("/etc/husk/fleet-ca.pem"))
            ),
            Err(e) => assert!(e.starts_with("server is https://, but this husk"), "{e}"),
        }
    }
}
