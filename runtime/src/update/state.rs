//! What the agent remembers, `<data-dir>/update/state.json`: what the
//! verifier has accepted (the rollback and freeze protection), which release
//! runs and which ran before, whether the running one is on probation, the
//! last check and a short history. Replaced atomically and durably.

use std::path::Path;

use delta_updater::verify::Seen;
use delta_updater::Digest;
use serde::{Deserialize, Serialize};
use serde_json_core::str::EscapedStr;

use crate::wire::{unescape_with_nul, Capped, Field};

use super::UpdateError;

/// The largest state file read.
pub const MAX_STATE_BYTES: usize = 64 * 1024;
/// History entries kept, newest last.
pub const MAX_HISTORY: usize = 32;
/// Longest message kept (a check's result, a rollback's reason).
pub const MAX_MESSAGE_BYTES: usize = 512;

/// The agent's memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateState {
    /// What the verifier accepted.
    pub seen: Seen,
    /// The release that runs (0: the device's own desired state).
    pub current: u64,
    /// The release that ran before, kept for a rollback.
    pub previous: u64,
    /// While the current release is on probation: when it was switched to.
    pub probation_since: Option<u64>,
    /// The highest release rolled back: never installed again.
    pub rejected: u64,
    /// The timestamp's entity tag, for `If-None-Match`.
    pub etag: Option<String>,
    /// The last check of the server.
    pub last_check: Option<LastCheck>,
    /// When a check last succeeded, seconds since the epoch (0: never).
    pub last_ok: u64,
    /// What happened, oldest first, at most [`MAX_HISTORY`].
    pub history: Vec<HistoryEntry>,
}

/// One check of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    /// When, seconds since the epoch.
    pub at: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it found, or why it failed.
    pub message: String,
}

/// One event of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When, seconds since the epoch.
    pub at: u64,
    /// The release it is about.
    pub release: u64,
    /// `installed`, `committed`, `rolled back`, `rollback by hand`.
    pub event: String,
    /// Details: bytes downloaded, the reason of a rollback.
    pub detail: String,
}

impl UpdateState {
    /// Appends `event` to the history, dropping the oldest beyond [`MAX_HISTORY`].
    pub fn record(&mut self, at: u64, release: u64, event: &str, detail: &str) {
        if self.history.len() == MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(HistoryEntry {
            at,
            release,
            event: event.to_owned(),
            detail: truncate(detail, MAX_MESSAGE_BYTES).to_owned(),
        });
    }

    /// Reads `path`; a missing file is a device that never updated.
    pub fn load(path: &Path) -> Result<Self, UpdateError> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let bytes = super::read_file(path, MAX_STATE_BYTES)?;
        Self::parse(&bytes).map_err(|reason| UpdateError::Corrupt {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes the state to `path` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), UpdateError> {
        let tmp = path.with_extension("json.tmp");
        crate::file::replace(
            path,
            &tmp,
            self.to_json().as_bytes(),
            crate::file::Durability::Rename,
        )
        .map_err(super::io_error("write", path))
    }

    /// The state as one line of JSON.
    pub fn to_json(&self) -> String {
        let sha = self.seen.release_sha256.map(|d| d.to_string());
        let history: Vec<WireEntry<'_>> = self
            .history
            .iter()
            .map(|h| WireEntry {
                at: h.at,
                release: h.release,
                event: &h.event,
                detail: &h.detail,
            })
            .collect();
        let wire = WireOut {
            timestamp_version: self.seen.timestamp_version,
            release_version: self.seen.release_version,
            release_sha256: sha.as_deref(),
            time_floor: self.seen.time_floor,
            current: self.current,
            previous: self.previous,
            probation_since: self.probation_since,
            rejected: self.rejected,
            etag: self.etag.as_deref(),
            last_ok: self.last_ok,
            last_check: self.last_check.as_ref().map(|c| WireCheck {
                at: c.at,
                ok: c.ok,
                message: &c.message,
            }),
            history: &history,
        };
        let strings: usize = self
            .history
            .iter()
            .map(|h| h.event.len() + h.detail.len() + 64)
            .chain(self.last_check.as_ref().map(|c| c.message.len()))
            .chain(self.etag.as_ref().map(String::len))
            .sum();
        let mut buf = vec![0; 6 * strings + 1024];
        let len = serde_json_core::to_slice(&wire, &mut buf).unwrap_or(0);
        buf.truncate(len);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Validates the JSON text of a state file.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let (wire, _) = serde_json_core::from_slice::<WireIn<'_>>(json)
            .map_err(|e| format!("invalid JSON: {e}"))?;
        let text = |name: &'static str, s, max| {
            unescape_with_nul(Field::new(name), s, max).map_err(|e| e.to_string())
        };
        let release_sha256 = wire
            .release_sha256
            .map(|s| Digest::parse(s).map_err(|e| format!("releaseSha256: {e}")))
            .transpose()?;
        let mut history = Vec::new();
        for h in wire
            .history
            .into_items(Field::new("history"))
            .map_err(|e| e.to_string())?
        {
            history.push(HistoryEntry {
                at: h.at,
                release: h.release,
                event: text("history.event", h.event, MAX_MESSAGE_BYTES)?,
                detail: text("history.detail", h.detail, MAX_MESSAGE_BYTES)?,
            });
        }
        Ok(Self {
            seen: Seen {
                timestamp_version: wire.timestamp_version,
                release_version: wire.release_version,
                release_sha256,
                time_floor: wire.time_floor,
            },
            current: wire.current,
            previous: wire.previous,
            probation_since: wire.probation_since,
            rejected: wire.rejected,
            etag: wire
                .etag
                .map(|e| text("etag", e, MAX_MESSAGE_BYTES))
                .transpose()?,
            last_ok: wire.last_ok,
            last_check: wire
                .last_check
                .map(|c| {
                    Ok::<_, String>(LastCheck {
                        at: c.at,
                        ok: c.ok,
                        message: text("lastCheck.message", c.message, MAX_MESSAGE_BYTES)?,
                    })
                })
                .transpose()?,
            history,
        })
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
pub fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOut<'a> {
    timestamp_version: u64,
    release_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_sha256: Option<&'a str>,
    time_floor: u64,
    current: u64,
    previous: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    probation_since: Option<u64>,
    rejected: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    last_ok: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_check: Option<WireCheck<'a>>,
    history: &'a [WireEntry<'a>],
}

#[derive(Serialize)]
struct WireCheck<'a> {
    at: u64,
    ok: bool,
    message: &'a str,
}

#[derive(Serialize)]
struct WireEntry<'a> {
    at: u64,
    release: u64,
    event: &'a str,
    detail: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireIn<'a> {
    timestamp_version: u64,
    release_version: u64,
    #[serde(borrow)]
    release_sha256: Option<&'a str>,
    time_floor: u64,
    current: u64,
    previous: u64,
    probation_since: Option<u64>,
    rejected: u64,
    #[serde(borrow)]
    etag: Option<EscapedStr<'a>>,
    last_ok: u64,
    #[serde(borrow)]
    last_check: Option<WireCheckIn<'a>>,
    #[serde(borrow)]
    history: Capped<WireEntryIn<'a>, MAX_HISTORY>,
}

#[derive(Deserialize)]
struct WireCheckIn<'a> {
    at: u64,
    ok: bool,
    #[serde(borrow)]
    message: EscapedStr<'a>,
}

#[derive(Deserialize)]
struct WireEntryIn<'a> {
    at: u64,
    release: u64,
    #[serde(borrow)]
    event: EscapedStr<'a>,
    #[serde(borrow)]
    detail: EscapedStr<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips() {
        let mut state = UpdateState {
            seen: Seen {
                timestamp_version: 7,
                release_version: 3,
                release_sha256: Some(Digest::of(b"r3")),
                time_floor: 1_800_000_000,
            },
            current: 3,
            previous: 2,
            probation_since: Some(1_800_000_100),
            rejected: 1,
            etag: Some("\"abc\"".into()),
            last_ok: 1_799_999_000,
            last_check: Some(LastCheck {
                at: 1_800_000_000,
                ok: false,
                message: "server: connection refused \u{1} \"quoted\"".into(),
            }),
            history: Vec::new(),
        };
        state.record(5, 3, "installed", "downloaded 10 B of 100 B");
        let json = state.to_json();
        assert_eq!(UpdateState::parse(json.as_bytes()).unwrap(), state);
        assert_eq!(
            UpdateState::parse(UpdateState::default().to_json().as_bytes()).unwrap(),
            UpdateState::default()
        );
    }

    #[test]
    fn the_history_keeps_the_newest() {
        let mut state = UpdateState::default();
        for i in 0..(MAX_HISTORY as u64 + 5) {
            state.record(i, i, "installed", &"x".repeat(2 * MAX_MESSAGE_BYTES));
        }
        assert_eq!(state.history.len(), MAX_HISTORY);
        assert_eq!(state.history[0].at, 5);
        assert_eq!(state.history[0].detail.len(), MAX_MESSAGE_BYTES);
        let json = state.to_json();
        assert_eq!(UpdateState::parse(json.as_bytes()).unwrap(), state);
    }

    #[test]
    fn a_corrupt_state_is_refused() {
        assert!(UpdateState::parse(b"{").is_err());
        let json = UpdateState::default()
            .to_json()
            .replace("\"rejected\":0", "\"rejected\":\"x\"");
        assert!(UpdateState::parse(json.as_bytes()).is_err());
    }
}
