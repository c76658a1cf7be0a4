//! The daemon's control socket, `<root>/daemon.sock` (root: the state
//! directory, `/run/husk`): `husk stop|start|restart NAME` ask the running
//! daemon to act on one of its containers.
//!
//! A Unix stream socket, owned by root, mode 0660, its group the one of
//! `husk daemon --group NAME` (root's otherwise): the file's permissions are
//! the access rule, so only root and that group can connect. Read-only
//! views need none of it: they read `status.json`.
//!
//! The protocol is one request line and one reply line per connection, both
//! JSON, after which the daemon closes it:
//!
//! ```text
//! → {"op":"stop","name":"web"}      (op: stop, start, restart, status)
//! ← {"ok":true,"message":"web: stopping"}
//! ← {"ok":false,"error":"no container web is supervised"}
//! → {"op":"status"}
//! ← {"ok":true,"status":{...the status.json object...}}
//! ```
//!
//! The daemon serves it from its one loop and never blocks on a client: the
//! listener and every connection are non-blocking; a request is at most
//! [`MAX_REQUEST_BYTES`] (a longer one gets an error reply); a connection
//! must finish within [`CLIENT_TIMEOUT`] (request read, reply written) or is
//! dropped; at most [`MAX_CLIENTS`] are served at once (more are closed at
//! once). A lock next to the socket keeps a second daemon with the same
//! state directory from taking it over.
//!
//! `stop` holds a container stopped (SIGTERM, SIGKILL after its
//! stopTimeout) until `start`, `restart`, a changed desired entry or a new
//! daemon; `start` starts a container that is not running; `restart` stops
//! it if it runs, then starts it. While a release is on probation, a
//! container stopped by hand counts as not running, so the release is
//! rolled back at the end of its grace period.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json_core::str::EscapedStr;

use super::supervisor::Time;
use crate::container::ContainerId;
use crate::wire::{unescape, Field};

/// The socket, in the state directory.
pub const SOCKET_FILE: &str = "daemon.sock";
/// The lock the daemon serving the socket holds.
pub const LOCK_FILE: &str = "daemon.sock.lock";
/// The longest request line, newline included.
pub const MAX_REQUEST_BYTES: usize = 512;
/// The longest reply line a client reads: a status and its envelope.
pub const MAX_REPLY_BYTES: usize = super::status::MAX_STATUS_BYTES + 1024;
/// Connections served at once; more are closed when accepted.
pub const MAX_CLIENTS: usize = 8;
/// Connections accepted per loop turn, so that a flood cannot hold the loop.
pub const MAX_ACCEPTS: usize = 32;
/// How long a connection may take, from accept to the reply written.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `husk stop|start|restart` waits for the reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon the loop looks again at a reply it could not write whole.
pub const WRITE_RETRY: Duration = Duration::from_millis(20);
/// The socket's mode.
pub const SOCKET_MODE: u32 = 0o660;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Stop the container and keep it stopped.
    Stop(ContainerId),
    /// Start the container if it does not run.
    Start(ContainerId),
    /// Stop the container if it runs, then start it.
    Restart(ContainerId),
    /// The daemon's view, as `status.json` holds it.
    Status,
}

/// Why a request failed, on either side of the socket.
#[derive(Debug)]
pub enum ControlError {
    /// The request line is not a request.
    BadRequest(String),
    /// Making or serving the socket failed.
    Socket {
        /// What was done.
        op: &'static str,
        /// The socket.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Another daemon serves this state directory's socket.
    Taken {
        /// The lock it holds.
        lock: PathBuf,
    },
    /// `husk daemon --group` names no group.
    NoGroup(String),
    /// No daemon listens on the socket.
    NoDaemon {
        /// The socket.
        path: PathBuf,
    },
    /// The socket's permissions refuse this user.
    Denied {
        /// The request, e.g. `stop web`.
        request: String,
        /// The socket.
        path: PathBuf,
        /// Its group's name (or number).
        group: String,
    },
    /// The daemon refused the request.
    Refused(String),
    /// The daemon's reply is not a reply.
    BadReply(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest<'a> {
    #[serde(borrow)]
    op: EscapedStr<'a>,
    #[serde(borrow)]
    name: Option<EscapedStr<'a>>,
}

#[derive(Serialize)]
struct WireRequestOut<'a> {
    op: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireReply<'a> {
    ok: bool,
    #[serde(borrow)]
    message: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    error: Option<EscapedStr<'a>>,
}

#[derive(Serialize)]
struct WireReplyOut<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Parses one request line (its newline, if any, included): the pure
/// function the daemon and the fuzz target call.
pub fn parse_request(line: &[u8]) -> Result<Request, ControlError> {
    let bad = |reason: String| ControlError::BadRequest(reason);
    if line.len() > MAX_REQUEST_BYTES {
        return Err(bad(format!("longer than {MAX_REQUEST_BYTES} bytes")));
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    // serde-json-core refuses anything but whitespace after the object.
    let (wire, _) = serde_json_core::from_slice::<WireRequest<'_>>(line)
        .map_err(|e| bad(format!("invalid JSON ({e})")))?;
    let word = |field, text| unescape(Field::new(field), text, 16).map_err(|e| bad(e.to_string()));
    let op = word("op", wire.op)?;
    let name = match wire.name {
        None => None,
        Some(name) => {
            let name = unescape(Field::new("name"), name, 64).map_err(|e| bad(e.to_string()))?;
            Some(
                name.parse::<ContainerId>()
                    .map_err(|e| bad(format!("name: {e}")))?,
            )
        }
    };
    match (op.as_str(), name) {
        ("status", None) => Ok(Request::Status),
        ("status", Some(_)) => Err(bad("status takes no name".to_owned())),
        ("stop" | "start" | "restart", None) => Err(bad(format!("{op} needs a name"))),
        ("stop", Some(name)) => Ok(Request::Stop(name)),
        ("start", Some(name)) => Ok(Request::Start(name)),
        ("restart", Some(name)) => Ok(Request::Restart(name)),
        (other, _) => Err(bad(format!(
            "op {other:?} is not stop, start, restart or status"
        ))),
    }
}

impl Request {
    /// The request as its line, newline included.
    pub fn to_line(&self) -> String {
        let (op, name) = match self {
            Self::Stop(name) => ("stop", Some(name.as_str())),
            Self::Start(name) => ("start", Some(name.as_str())),
            Self::Restart(name) => ("restart", Some(name.as_str())),
            Self::Status => ("status", None),
        };
        let mut buf = [0; 128];
        let len = serde_json_core::to_slice(&WireRequestOut { op, name }, &mut buf).unwrap_or(0);
        format!("{}\n", String::from_utf8_lossy(&buf[..len]))
    }

    /// `stop web`, as messages name it.
    fn describe(&self) -> String {
        match self {
            Self::Stop(name) => format!("stop {}", name.as_str()),
            Self::Start(name) => format!("start {}", name.as_str()),
            Self::Restart(name) => format!("restart {}", name.as_str()),
            Self::Status => "status".to_owned(),
        }
    }
}

/// A reply line: success with a message, or the error.
pub fn reply_line(result: Result<&str, &str>) -> String {
    let (ok, message, error) = match result {
        Ok(message) => (true, Some(message), None),
        Err(error) => (false, None, Some(error)),
    };
    let text = message.or(error).unwrap_or("");
    let mut buf = vec![0; 6 * text.len() + 64];
    let len =
        serde_json_core::to_slice(&WireReplyOut { ok, message, error }, &mut buf).unwrap_or(0);
    buf.truncate(len);
    buf.push(b'\n');
    String::from_utf8(buf).unwrap_or_default()
}

/// The reply to `status`: the status object in the envelope.
pub fn status_reply(status_json: &str) -> String {
    format!("{{\"ok\":true,\"status\":{status_json}}}\n")
}

/// Parses a reply line: the daemon's message, or its refusal.
pub fn parse_reply(line: &[u8]) -> Result<String, ControlError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.starts_with(br#"{"ok":true,"status":"#) {
        return Ok(String::from_utf8_lossy(line).into_owned());
    }
    let bad = |reason: String| ControlError::BadReply(reason);
    let (wire, _) = serde_json_core::from_slice::<WireReply<'_>>(line)
        .map_err(|e| bad(format!("invalid JSON ({e})")))?;
    let text = |field, s| unescape(Field::new(field), s, 4096).map_err(|e| bad(e.to_string()));
    match (wire.ok, wire.message, wire.error) {
        (true, Some(message), _) => text("message", message),
        (true, None, _) => Ok(String::new()),
        (false, _, Some(error)) => Err(ControlError::Refused(text("error", error)?)),
        (false, _, None) => Err(ControlError::Refused("refused".to_owned())),
    }
}

// ---------------------------------------------------------------- the daemon's side

/// The listening socket and the connections being served.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    _lock: crate::sys::FileLock,
    clients: Vec<Client>,
    next_id: u64,
}

/// One connection.
struct Client {
    id: u64,
    stream: UnixStream,
    input: Vec<u8>,
    /// The reply, once there is one, and how much of it is written.
    output: Option<(Vec<u8>, usize)>,
    deadline: Time,
}

impl Server {
    /// Makes `<root>/daemon.sock` (root's, [`SOCKET_MODE`], group `gid` if
    /// given), replacing one a dead daemon left.
    pub fn bind(root: &Path, gid: Option<u32>) -> Result<Self, ControlError> {
        let path = root.join(SOCKET_FILE);
        let socket_error = |op| {
            let path = path.clone();
            move |source| ControlError::Socket { op, path, source }
        };
        fs::create_dir_all(root).map_err(socket_error("create the directory of"))?;
        let lock_path = root.join(LOCK_FILE);
        let lock_file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(socket_error("open the lock of"))?;
        let lock = crate::sys::try_lock(lock_file, &lock_path)
            .map_err(|e| socket_error("lock")(io::Error::other(e.to_string())))?
            .ok_or(ControlError::Taken { lock: lock_path })?;
        // We hold the lock: a socket there is a dead daemon's.
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                fs::remove_file(&path).map_err(socket_error("remove the old"))?;
            }
            Ok(_) => {
                return Err(socket_error("replace")(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "not a socket",
                )))
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(&path).map_err(socket_error("bind"))?;
        // Until the chmod the umask's mode applies, which gives no one
        // beyond root (and, at most, its group) write permission.
        fs::set_permissions(&path, fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(socket_error("chmod"))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(socket_error("chown"))?;
        }
        listener
            .set_nonblocking(true)
            .map_err(socket_error("make non-blocking"))?;
        Ok(Self {
            listener,
            path,
            _lock: lock,
            clients: Vec::new(),
            next_id: 0,
        })
    }

    /// The descriptors whose readiness wakes the loop: the listener and the
    /// connections still reading.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(
                self.clients
                    .iter()
                    .filter(|c| c.output.is_none())
                    .map(|c| c.stream.as_fd()),
            )
            .collect()
    }

    /// When the loop must look again without an event: a connection's
    /// deadline, or soon if a reply is half written.
    pub fn deadline(&self, now: Time) -> Option<Time> {
        let pending = self
            .clients
            .iter()
            .any(|c| c.output.is_some())
            .then_some(now + WRITE_RETRY);
        self.clients.iter().map(|c| c.deadline).chain(pending).min()
    }

    /// Accepts, reads and writes what is ready without blocking, drops
    /// connections past their deadline, and returns the complete requests
    /// (by connection id) for [`Server::reply`].
    pub fn service(&mut self, now: Time) -> Vec<(u64, Request)> {
        for _ in 0..MAX_ACCEPTS {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => break,
            };
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                // Closed at once: the loop serves what it has first.
                continue;
            }
            self.next_id += 1;
            self.clients.push(Client {
                id: self.next_id,
                stream,
                input: Vec::new(),
                output: None,
                deadline: now + CLIENT_TIMEOUT,
            });
        }
        let mut requests = Vec::new();
        for client in &mut self.clients {
            if client.output.is_none() {
                match client.read() {
                    Reading::More => {}
                    Reading::Line(line) => match parse_request(&line) {
                        Ok(request) => requests.push((client.id, request)),
                        Err(e) => client.answer(reply_line(Err(&e.to_string()))),
                    },
                    Reading::Failed(why) => client.answer(reply_line(Err(&why))),
                    Reading::Closed => client.deadline = Time::ZERO,
                }
            }
        }
        self.flush(now);
        requests
    }

    /// Answers connection `id` with `line` (a reply line), written as the
    /// client reads it; most go out at once.
    pub fn reply(&mut self, id: u64, line: String, now: Time) {
        if let Some(client) = self.clients.iter_mut().find(|c| c.id == id) {
            client.answer(line);
        }
        self.flush(now);
    }

    /// Writes what replies it can; drops connections that are answered or
    /// past their deadline (a timed-out reader gets a last error line, if
    /// the socket takes it).
    fn flush(&mut self, now: Time) {
        self.clients.retain_mut(|client| {
            if now >= client.deadline {
                if client.output.is_none() {
                    let line = reply_line(Err("timed out waiting for a request line"));
                    let _ = client.stream.write(line.as_bytes());
                }
                return false;
            }
            let Some((output, written)) = &mut client.output else {
                return true;
            };
            while *written < output.len() {
                match client.stream.write(&output[*written..]) {
                    Ok(0) => return false,
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            false
        });
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

enum Reading {
    /// No whole line yet.
    More,
    /// A whole line.
    Line(Vec<u8>),
    /// Too long, or not readable.
    Failed(String),
    /// The client went away before a whole line.
    Closed,
}

impl Client {
    fn read(&mut self) -> Reading {
        let mut buf = [0; MAX_REQUEST_BYTES + 1];
        loop {
            // At most one byte beyond the cap, to tell a line too long.
            let room = MAX_REQUEST_BYTES + 1 - self.input.len();
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => return Reading::Closed,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Reading::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Reading::Failed(e.to_string()),
            }
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                self.input.truncate(end + 1);
                return Reading::Line(std::mem::take(&mut self.input));
            }
            if self.input.len() > MAX_REQUEST_BYTES {
                return Reading::Failed(format!("request longer than {MAX_REQUEST_BYTES} bytes"));
            }
        }
    }

    fn answer(&mut self, line: String) {
        self.output = Some((line.into_bytes(), 0));
    }
}

// ---------------------------------------------------------------- the client's side

/// Sends `request` to the daemon whose state directory is `root` and
/// returns its message (for `status`, the whole reply line).
pub fn send(root: &Path, request: &Request) -> Result<String, ControlError> {
    let path = root.join(SOCKET_FILE);
    let socket_error = |op| {
        let path = path.clone();
        move |source| ControlError::Socket { op, path, source }
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let group = fs::metadata(&path).map_or_else(
                |_| "?".to_owned(),
                |m| crate::sys::group_name(m.gid()).unwrap_or_else(|| m.gid().to_string()),
            );
            return Err(ControlError::Denied {
                request: request.describe(),
                path,
                group,
            });
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NoDaemon { path });
        }
        Err(e) => return Err(socket_error("connect to")(e)),
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(socket_error("set timeouts on"))?;
    stream
        .write_all(request.to_line().as_bytes())
        .map_err(socket_error("write to"))?;
    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY_BYTES as u64)
        .read_to_end(&mut reply)
        .map_err(socket_error("read the reply from"))?;
    parse_reply(&reply)
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(why) => write!(f, "bad request: {why}"),
            Self::Socket { op, path, .. } => {
                write!(f, "cannot {op} the control socket {}", path.display())
            }
            Self::Taken { lock } => write!(
                f,
                "another husk daemon serves this state directory's control socket (it holds {})",
                lock.display()
            ),
            Self::NoGroup(name) => write!(f, "daemon: --group {name:?}: no such group"),
            Self::NoDaemon { path } => write!(
                f,
                "no husk daemon is listening on {} (is it running with this --root?)",
                path.display()
            ),
            Self::Denied {
                request,
                path,
                group,
            } => write!(
                f,
                "{request} needs root or group {group} (the group of {})",
                path.display()
            ),
            Self::Refused(why) => f.write_str(why),
            Self::BadReply(why) => write!(f, "the daemon's reply: {why}"),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Socket { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
