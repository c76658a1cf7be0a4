//! A small HTTP/1.1 client: one `GET` per connection (`Connection: close`),
//! no redirects, no compression; `https://` with the `tls` feature (see
//! [`super::tls`]). The response is parsed by pure
//! functions over `BufRead` ([`read_head`], [`Body`]; [`parse_response`] for
//! fuzzing) with every size bounded: the header section at [`MAX_HEAD_LEN`]
//! bytes and [`MAX_HEADERS`] lines, a chunk-size line at [`MAX_CHUNK_LINE`],
//! bodies at what the caller asked for.

use core::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
#[cfg(feature = "dns")]
use std::net::ToSocketAddrs;
use std::net::{IpAddr, Ipv6Addr, TcpStream};
use std::path::Path;
#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{check_path, FetchError, Fetched, Source, Timeouts, COPY_BUF, MIN_RATE};

/// The most bytes of a response's status line and headers.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most header lines in a response (and trailer lines after a chunked body).
pub const MAX_HEADERS: usize = 64;
/// The longest chunk-size line of a chunked body, extensions included.
pub const MAX_CHUNK_LINE: usize = 256;
/// The longest entity tag kept (a longer one is ignored: the file is fetched every time).
pub const MAX_ETAG_LEN: usize = 256;

/// What is wrong with a response, as the parser sees it.
#[derive(Debug)]
pub enum ResponseError {
    /// Reading failed (including the read timeouts, which the client maps to stalls).
    Io(io::Error),
    /// The connection closed before the end of the head or of the body.
    Truncated,
    /// The status line is not `HTTP/1.x NNN ...`.
    StatusLine,
    /// The header section is longer than [`MAX_HEAD_LEN`].
    HeadTooLong,
    /// More than [`MAX_HEADERS`] header (or trailer) lines.
    TooManyHeaders,
    /// A header line is not `name: value`.
    Header,
    /// `Content-Length` is not one decimal number (or two disagree).
    ContentLength,
    /// `Transfer-Encoding` other than `chunked`, or with `Content-Length`.
    TransferEncoding,
    /// `Content-Range` is not `bytes A-B/T`, `bytes A-B/*` or `bytes */T`.
    ContentRange,
    /// A chunk-size line is not hex digits (or is longer than [`MAX_CHUNK_LINE`]).
    ChunkSize,
    /// A chunk is not followed by CRLF.
    ChunkEnd,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read: {e}"),
            Self::Truncated => f.write_str("connection closed early"),
            Self::StatusLine => f.write_str("status line is not HTTP/1.x"),
            Self::HeadTooLong => write!(f, "headers longer than {MAX_HEAD_LEN} bytes"),
            Self::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            Self::Header => f.write_str("malformed header line"),
            Self::ContentLength => f.write_str("malformed Content-Length"),
            Self::TransferEncoding => f.write_str("unsupported Transfer-Encoding"),
            Self::ContentRange => f.write_str("malformed Content-Range"),
            Self::ChunkSize => f.write_str("malformed chunk size"),
            Self::ChunkEnd => f.write_str("chunk not followed by CRLF"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// A `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes START-END/TOTAL` (END inclusive; TOTAL `None` for `*`).
    Bytes {
        /// The first byte.
        start: u64,
        /// The last byte.
        end: u64,
        /// The length of the whole file, if known.
        total: Option<u64>,
    },
    /// `bytes */TOTAL`, with a 416 answer.
    Unsatisfied(u64),
}

/// The status line and the headers of a response that matter to husk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Content-Length`.
    pub length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `ETag`, if at most [`MAX_ETAG_LEN`] bytes.
    pub etag: Option<String>,
    /// `Content-Range`.
    pub range: Option<ContentRange>,
}

/// Reads and parses the status line and headers (`Content-Type` and other
/// headers are ignored; an interim `1xx` answer is skipped).
pub fn read_head(r: &mut impl BufRead) -> Result<Head, ResponseError> {
    let mut budget = MAX_HEAD_LEN;
    let mut line = Vec::new();
    loop {
        read_line(r, &mut budget, &mut line, ResponseError::HeadTooLong)?;
        let status = status_line(&line)?;
        let mut head = Head {
            status,
            length: None,
            chunked: false,
            etag: None,
            range: None,
        };
        let mut count = 0;
        loop {
            read_line(r, &mut budget, &mut line, ResponseError::HeadTooLong)?;
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(ResponseError::TooManyHeaders);
            }
            header(&line, &mut head)?;
        }
        if head.chunked && head.length.is_some() {
            return Err(ResponseError::TransferEncoding);
        }
        if !(100..200).contains(&status) {
            return Ok(head);
        }
    }
}

/// Reads one line ending in LF into `line`, without the CRLF (or LF),
/// charging its bytes to `budget`.
pub(crate) fn read_line(
    r: &mut impl BufRead,
    budget: &mut usize,
    line: &mut Vec<u8>,
    too_long: ResponseError,
) -> Result<(), ResponseError> {
    line.clear();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ResponseError::Io(e)),
        };
        if avail.is_empty() {
            return Err(ResponseError::Truncated);
        }
        let (n, end) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if n > *budget {
            return Err(too_long);
        }
        *budget -= n;
        line.extend_from_slice(&avail[..n]);
        r.consume(n);
        if end {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(());
        }
    }
}

fn status_line(line: &[u8]) -> Result<u16, ResponseError> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or(ResponseError::StatusLine)?;
    match rest {
        [a, b, c] | [a, b, c, b' ', ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(ResponseError::StatusLine),
    }
}

fn header(line: &[u8], head: &mut Head) -> Result<(), ResponseError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ResponseError::Header)?;
    let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.is_empty() || !name.iter().all(token) {
        return Err(ResponseError::Header);
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ResponseError::Header);
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        let n = decimal(value).ok_or(ResponseError::ContentLength)?;
        if head.length.is_some_and(|m| m != n) {
            return Err(ResponseError::ContentLength);
        }
        head.length = Some(n);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        if !value.eq_ignore_ascii_case(b"chunked") || head.chunked {
            return Err(ResponseError::TransferEncoding);
        }
        head.chunked = true;
    } else if name.eq_ignore_ascii_case(b"etag") {
        head.etag = (value.len() <= MAX_ETAG_LEN && value.is_ascii() && !value.is_empty())
            .then(|| String::from_utf8_lossy(value).into_owned());
    } else if name.eq_ignore_ascii_case(b"content-range") {
        head.range = Some(content_range(value).ok_or(ResponseError::ContentRange)?);
    }
    Ok(())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of 1 to 19 digits (no sign, no spaces).
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn content_range(value: &[u8]) -> Option<ContentRange> {
    let spec = value.strip_prefix(b"bytes ")?;
    let slash = spec.iter().position(|&b| b == b'/')?;
    let (range, total) = (&spec[..slash], &spec[slash + 1..]);
    if range == b"*" {
        return decimal(total).map(ContentRange::Unsatisfied);
    }
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (decimal(&range[..dash])?, decimal(&range[dash + 1..])?);
    let total = if total == b"*" {
        None
    } else {
        Some(decimal(total)?)
    };
    (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange::Bytes {
        start,
        end,
        total,
    })
}

/// The body of a response, read through its framing: `Content-Length`,
/// chunked, or until the connection closes.
#[derive(Debug)]
pub struct Body {
    state: BodyState,
}

#[derive(Debug, Clone, Copy)]
enum BodyState {
    Length(u64),
    ChunkStart,
    Chunk(u64),
    Close,
    Done,
}

impl Body {
    /// The body that follows `head`, the answer to a request with `method`.
    pub fn new(head: &Head, method: &str) -> Self {
        let state = if method == "HEAD" || matches!(head.status, 204 | 304) {
            BodyState::Done
        } else if head.chunked {
            BodyState::ChunkStart
        } else if let Some(n) = head.length {
            BodyState::Length(n)
        } else {
            BodyState::Close
        };
        Self { state }
    }

    /// Reads some of the body into `buf`; 0 at its end.
    pub fn read(&mut self, r: &mut impl BufRead, buf: &mut [u8]) -> Result<usize, ResponseError> {
        loop {
            let n = match self.state {
                BodyState::Done => return Ok(0),
                BodyState::ChunkStart => {
                    let mut budget = MAX_CHUNK_LINE;
                    let mut line = Vec::new();
                    read_line(r, &mut budget, &mut line, ResponseError::ChunkSize)?;
                    let size = chunk_size(&line).ok_or(ResponseError::ChunkSize)?;
                    if size == 0 {
                        self.trailers(r)?;
                        self.state = BodyState::Done;
                    } else {
                        self.state = BodyState::Chunk(size);
                    }
                    continue;
                }
                BodyState::Length(0) => {
                    self.state = BodyState::Done;
                    return Ok(0);
                }
                BodyState::Length(left) | BodyState::Chunk(left) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = read_some(r, &mut buf[..want])?;
                    if n == 0 {
                        return Err(ResponseError::Truncated);
                    }
                    n
                }
                BodyState::Close => {
                    let n = read_some(r, buf)?;
                    if n == 0 {
                        self.state = BodyState::Done;
                    }
                    return Ok(n);
                }
            };
            self.state = match self.state {
                BodyState::Length(left) => BodyState::Length(left - n as u64),
                BodyState::Chunk(left) if left == n as u64 => {
                    let mut budget = 2;
                    let mut line = Vec::new();
                    read_line(r, &mut budget, &mut line, ResponseError::ChunkEnd)?;
                    if !line.is_empty() {
                        return Err(ResponseError::ChunkEnd);
                    }
                    BodyState::ChunkStart
                }
                BodyState::Chunk(left) => BodyState::Chunk(left - n as u64),
                other => other,
            };
            return Ok(n);
        }
    }

    fn trailers(&mut self, r: &mut impl BufRead) -> Result<(), ResponseError> {
        let mut budget = MAX_HEAD_LEN;
        let mut line = Vec::new();
        for _ in 0..=MAX_HEADERS {
            read_line(r, &mut budget, &mut line, ResponseError::HeadTooLong)?;
            if line.is_empty() {
                return Ok(());
            }
        }
        Err(ResponseError::TooManyHeaders)
    }

    /// Reads the rest of the body into `out`, up to `max` bytes in all;
    /// `Ok(false)` if the body is longer (then `out` holds `max + 1` bytes).
    pub fn read_to_vec(
        &mut self,
        r: &mut impl BufRead,
        max: u64,
        out: &mut Vec<u8>,
    ) -> Result<bool, ResponseError> {
        let mut buf = [0u8; 4096];
        loop {
            let room = (max + 1).saturating_sub(out.len() as u64);
            if room == 0 {
                return Ok(false);
            }
            let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            match self.read(r, &mut buf[..want])? {
                0 => return Ok(true),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, ResponseError> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other.map_err(ResponseError::Io),
        }
    }
}

/// A chunk-size line: 1 to 15 hex digits, then optionally `;` extensions or blanks.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    if !matches!(line.get(digits), None | Some(b';' | b' ' | b'\t')) {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n * 16 + u64::from(v))
    })
}

/// Parses a whole response to a `GET` (head, then body up to `max` bytes):
/// the parser alone, for fuzzing and tests. `Ok((head, body, fits))`, `fits`
/// false when the body is longer than `max`.
pub fn parse_response(mut data: &[u8], max: u64) -> Result<(Head, Vec<u8>, bool), ResponseError> {
    let head = read_head(&mut data)?;
    let mut body = Vec::new();
    let fits = Body::new(&head, "GET").read_to_vec(&mut data, max, &mut body)?;
    Ok((head, body, fits))
}

/// A repository served over HTTP: `http://host[:port][/prefix]`, or with
/// the `tls` feature `https://host[:port][/prefix]`.
#[derive(Debug, Clone)]
pub struct HttpSource {
    /// TLS settings when the URL is `https://`.
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    /// `host[:port]` as in the URL, for `Host` and messages.
    authority: String,
    /// The host to resolve (an IPv6 literal without brackets).
    host: String,
    port: u16,
    /// Empty, or `/a/b` without a trailing slash.
    prefix: String,
    timeouts: Timeouts,
    min_rate: u64,
}

/// The connection a response is read from.
type Conn = BufReader<Timed>;

/// What writes a request's body to the connection.
type SendBody<'a> = dyn FnMut(&mut dyn Write) -> io::Result<()> + 'a;

/// An `https://` source's CA file and the client settings made from it at
/// the first request (so a source can be made before the file is read).
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
struct Tls {
    ca_file: PathBuf,
    config: OnceLock<Arc<rustls::ClientConfig>>,
}

/// A connection: plain TCP, or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsStream>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "tls")]
            Self::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => super::tls::read(s, buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => super::tls::write(s, buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.flush(),
        }
    }
}

impl HttpSource {
    /// The repository at `url`: `http://host[:port][/prefix]`, host an IPv4
    /// literal, `[IPv6]` literal or a name (resolved at each request by the C
    /// library's resolver; only with the `dns` feature, which costs ~25 KB on
    /// armv7 musl: without it a name is refused here). `https://` needs the
    /// `tls` feature; the server's certificate is checked against
    /// [`DEFAULT_CA_FILE`](super::tls::DEFAULT_CA_FILE) unless
    /// [`ca_file`](Self::ca_file) names another.
    pub fn new(url: &str, timeouts: Timeouts) -> Result<Self, FetchError> {
        let bad = |reason| FetchError::Url {
            url: url.to_owned(),
            reason,
        };
        let (rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            if !cfg!(feature = "tls") {
                return Err(bad(
                    "https needs a build with the tls feature (plain http is safe: everything is signed)",
                ));
            }
            (rest, 443)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if rest.contains(['@', '?', '#', '%']) {
            return Err(bad("no user, query, fragment or %-escapes allowed"));
        }
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, port) = v6.split_once(']').ok_or(bad("unclosed ["))?;
            addr.parse::<Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address in [ ]"))?;
            (addr, port)
        } else {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
            if host.is_empty() || !host.bytes().all(name) {
                return Err(bad("no host name"));
            }
            if !cfg!(feature = "dns") && host.parse::<IpAddr>().is_err() {
                return Err(bad(
                    "a host name needs delta-updater's dns feature (give an IP address)",
                ));
            }
            (host, port)
        };
        let port = match port {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or(bad("port must be 1 to 65535"))?,
        };
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            check_path(&prefix[1..])
                .map_err(|_| bad("path has characters other than A-Z a-z 0-9 . _ + - /"))?;
        }
        Ok(Self {
            #[cfg(feature = "tls")]
            tls: (default_port == 443).then(|| Tls {
                ca_file: super::tls::DEFAULT_CA_FILE.into(),
                config: OnceLock::new(),
            }),
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            prefix: prefix.to_owned(),
            timeouts,
            min_rate: MIN_RATE,
        })
    }

    /// Sets the slowest average rate (bytes per second, default [`MIN_RATE`])
    /// a response may arrive at: each request's deadline is twice the stall
    /// timeout plus the header and body bytes at this rate.
    pub fn min_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_rate = bytes_per_second.max(1);
        self
    }

    /// For an `https://` source: checks the server's certificate against the
    /// CA certificates of the PEM file `path` instead of the system bundle
    /// (a fleet's own CA, say). Ignored for `http://`.
    #[cfg(feature = "tls")]
    pub fn ca_file(mut self, path: &Path) -> Self {
        if let Some(tls) = &mut self.tls {
            *tls = Tls {
                ca_file: path.to_owned(),
                config: OnceLock::new(),
            };
        }
        self
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        #[cfg(feature = "tls")]
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        #[cfg(not(feature = "tls"))]
        let scheme = "http";
        format!("{scheme}://{}{}/{path}", self.authority, self.prefix)
    }

    /// A connection to the server, with the TLS handshake done for
    /// `https://` (each of its reads and writes bounded by the stall timeout).
    fn connect(&self, url: &str) -> Result<Stream, FetchError> {
        let sock = self.connect_tcp(url)?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let config = match tls.config.get() {
                Some(config) => config,
                None => {
                    let config = super::tls::client_config(&tls.ca_file).map_err(|reason| {
                        FetchError::CaFile {
                            path: tls.ca_file.clone(),
                            reason,
                        }
                    })?;
                    tls.config.get_or_init(|| config)
                }
            };
            // The handshake's deadline: twice the stall timeout plus 64 KiB
            // (rustls's largest handshake message) at the slowest rate.
            let limit = self.timeouts.stall * 2 + Duration::from_secs(65_536 / self.min_rate);
            let deadline = Instant::now() + limit;
            let timeouts = sock
                .set_read_timeout(Some(self.timeouts.stall))
                .and_then(|()| sock.set_write_timeout(Some(self.timeouts.stall)));
            let stream = timeouts
                .and_then(|()| super::tls::handshake(config, &self.host, sock, deadline))
                .map_err(|error| match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        if Instant::now() >= deadline =>
                    {
                        FetchError::Deadline {
                            url: url.to_owned(),
                            after: limit,
                        }
                    }
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FetchError::Stall {
                        url: url.to_owned(),
                        after: self.timeouts.stall,
                    },
                    _ => FetchError::Tls {
                        url: url.to_owned(),
                        error,
                    },
                })?;
            return Ok(Stream::Tls(Box::new(stream)));
        }
        Ok(Stream::Plain(sock))
    }

    fn connect_tcp(&self, url: &str) -> Result<TcpStream, FetchError> {
        let fail = |error| FetchError::Connect {
            url: url.to_owned(),
            error,
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        #[cfg(feature = "dns")]
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(fail)?;
        // Without dns, `new` admitted IP literals only.
        #[cfg(not(feature = "dns"))]
        let addrs = [self
            .host
            .parse()
            .map(|ip| std::net::SocketAddr::new(ip, self.port))
            .map_err(|_| fail(io::ErrorKind::InvalidInput.into()))?];
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeouts.connect) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }

    /// Sends `method path` with `headers` (each ending in CRLF), then has
    /// `body` write the request body if there is one (`PUT`; a closure, so
    /// the device's binary has no body-sending code), and reads the head of
    /// the answer, with a deadline for `expect` more bytes after it.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: Option<&mut SendBody<'_>>,
        expect: u64,
    ) -> Result<(String, Head, Conn), FetchError> {
        check_path(path)?;
        let url = self.url(path);
        let mut stream = self.connect(&url)?;
        let send = |error| FetchError::Send {
            url: url.clone(),
            error,
        };
        stream
            .tcp()
            .set_write_timeout(Some(self.timeouts.stall))
            .map_err(send)?;
        let request = format!(
            "{method} {}/{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: husk/{}\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n{headers}\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION"),
        );
        stream.write_all(request.as_bytes()).map_err(send)?;
        if let Some(body) = body {
            body(&mut stream).map_err(send)?;
        }
        stream.flush().map_err(send)?;
        let budget = (MAX_HEAD_LEN as u64).saturating_add(expect) / self.min_rate;
        let deadline = self.timeouts.stall * 2 + Duration::from_secs(budget);
        let mut conn = BufReader::with_capacity(
            COPY_BUF,
            Timed {
                stream,
                stall: self.timeouts.stall,
                limit: deadline,
                deadline: Instant::now() + deadline,
                current: None,
                expired: false,
            },
        );
        let head = read_head(&mut conn).map_err(|e| self.fail(&url, &conn, e))?;
        Ok((url, head, conn))
    }

    fn fail(&self, url: &str, conn: &Conn, error: ResponseError) -> FetchError {
        let url = url.to_owned();
        match error {
            ResponseError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if conn.get_ref().expired {
                    FetchError::Deadline {
                        url,
                        after: conn.get_ref().limit,
                    }
                } else {
                    FetchError::Stall {
                        url,
                        after: self.timeouts.stall,
                    }
                }
            }
            ResponseError::Io(error) => FetchError::Receive { url, error },
            ResponseError::Truncated => FetchError::Truncated { url },
            error => FetchError::BadResponse { url, error },
        }
    }

    fn unexpected(url: String, status: u16) -> FetchError {
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            FetchError::Redirect { url, status }
        } else {
            FetchError::Status { url, status }
        }
    }

    /// `HEAD path`: the status and `Content-Length` (feature `publish`, for
    /// `husk-publish push`).
    #[cfg(feature = "publish")]
    pub fn head(&mut self, path: &str) -> Result<(u16, Option<u64>), FetchError> {
        let (_, head, _) = self.exchange("HEAD", path, "", None, 0)?;
        Ok((head.status, head.length))
    }

    /// `PUT path` with the `len` bytes of `body` (feature `publish`, for
    /// `husk-publish push` to a WebDAV server): any 2xx answer is success.
    #[cfg(feature = "publish")]
    pub fn put(&mut self, path: &str, body: &mut dyn Read, len: u64) -> Result<(), FetchError> {
        let header = format!("Content-Length: {len}\r\n");
        let mut send = |out: &mut dyn Write| {
            if io::copy(&mut body.take(len), out)? == len {
                Ok(())
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            }
        };
        let (url, head, _) = self.exchange("PUT", path, &header, Some(&mut send), 0)?;
        match head.status {
            200..=299 => Ok(()),
            status => Err(Self::unexpected(url, status)),
        }
    }
}

impl Source for HttpSource {
    fn get(&mut self, path: &str, max: u64, etag: Option<&str>) -> Result<Fetched, FetchError> {
        // An entity tag is sent back only if it is one header value.
        let etag = etag.filter(|t| t.bytes().all(|b| (0x20..0x7f).contains(&b)));
        let header = etag.map_or(String::new(), |t| format!("If-None-Match: {t}\r\n"));
        let (url, head, mut conn) = self.exchange("GET", path, &header, None, max)?;
        match head.status {
            200 => {}
            304 if etag.is_some() => return Ok(Fetched::NotModified),
            status => return Err(Self::unexpected(url, status)),
        }
        if head.length.is_some_and(|n| n > max) {
            return Err(FetchError::TooLong { url, max });
        }
        let mut bytes = Vec::new();
        let fits = Body::new(&head, "GET")
            .read_to_vec(&mut conn, max, &mut bytes)
            .map_err(|e| self.fail(&url, &conn, e))?;
        if !fits {
            return Err(FetchError::TooLong { url, max });
        }
        Ok(Fetched::Body {
            bytes,
            etag: head.etag,
        })
    }

    /// Sends `Range: bytes=FROM-` when `from` is not 0. A `206` must start at
    /// `from` (and name `size` as the total, if it names one); a `200` (the
    /// server ignored the range) truncates `out` and writes from the start; a
    /// `416` with `from == size` means already complete.
    fn fetch_range(
        &mut self,
        path: &str,
        from: u64,
        size: u64,
        out: &mut File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchError> {
        if from > size {
            return Err(FetchError::WrongLength {
                url: self.url(path),
                expected: size,
                found: from,
            });
        }
        let header = if from > 0 {
            format!("Range: bytes={from}-\r\n")
        } else {
            String::new()
        };
        let (url, head, mut conn) = self.exchange("GET", path, &header, None, size - from)?;
        let wrong = |found| FetchError::WrongLength {
            url: url.clone(),
            expected: size,
            found,
        };
        let start = match (head.status, head.range) {
            (206, Some(ContentRange::Bytes { start, total, .. })) if from > 0 => {
                if start != from {
                    return Err(FetchError::WrongRange { url, from, start });
                }
                match total {
                    Some(t) if t != size => return Err(wrong(t)),
                    _ => from,
                }
            }
            (206, _) => {
                return Err(FetchError::BadResponse {
                    url,
                    error: ResponseError::ContentRange,
                })
            }
            (200, _) => {
                if let Some(n) = head.length.filter(|&n| n != size) {
                    return Err(wrong(n));
                }
                if from > 0 {
                    out.set_len(0)
                        .map_err(super::io_err("truncate", Path::new(path)))?;
                    progress(0);
                }
                0
            }
            (416, range) if from == size => match range {
                Some(ContentRange::Unsatisfied(t)) if t != size => return Err(wrong(t)),
                _ => return Ok(()),
            },
            (status, _) => return Err(Self::unexpected(url, status)),
        };
        let mut body = Body::new(&head, "GET");
        let mut buf = vec![0u8; COPY_BUF];
        let mut done = start;
        loop {
            // One byte more than asked is read to tell "longer than asked" from the end.
            let want = (size - done + 1).min(COPY_BUF as u64) as usize;
            let n = body
                .read(&mut conn, &mut buf[..want])
                .map_err(|e| self.fail(&url, &conn, e))?;
            if n == 0 {
                break;
            }
            let keep = n.min((size - done) as usize);
            out.write_all(&buf[..keep])
                .map_err(super::io_err("write", Path::new(path)))?;
            done += keep as u64;
            progress(done);
            if keep < n {
                return Err(FetchError::TooLong { url, max: size });
            }
        }
        if done < size {
            return Err(FetchError::Truncated { url });
        }
        Ok(())
    }
}

/// A connection whose every read waits at most the stall timeout, and
/// never past the request's deadline.
#[derive(Debug)]
struct Timed {
    stream: Stream,
    stall: Duration,
    limit: Duration,
    deadline: Instant,
    current: Option<Duration>,
    expired: bool,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.expired = true;
            return Err(io::ErrorKind::TimedOut.into());
        }
        let wait = left.min(self.stall);
        if self.current != Some(wait) {
            self.stream.tcp().set_read_timeout(Some(wait))?;
            self.current = Some(wait);
        }
        let result = self.stream.read(buf);
        if result.is_err() && wait < self.stall {
            self.expired = Instant::now() >= self.deadline;
        }
        result
    }
}
