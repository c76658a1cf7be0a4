//! `husk-publish serve` (feature `publish`, for development): the served
//! directory of a repository over HTTP/1.1, read-only, one thread per
//! connection, one request per connection (`Connection: close`).
//!
//! `GET` and `HEAD` of regular files under the root, with an `ETag` (size
//! and modification time) and `If-None-Match` → 304, `Range: bytes=A-` or
//! `bytes=A-B` → 206 (416 past the end); anything else is 400, 404 or 405.
//! Nothing outside the root is served: targets are plain relative names (no
//! `..`, `.`, empty or absolute parts, no `%`-escapes) and a target whose
//! real path (symbolic links resolved) leaves the root is 404.
//!
//! With `--tls-cert` and `--tls-key` it serves HTTPS instead (rustls), to
//! develop against devices built with TLS.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::fetch::check_path;
use crate::fetch::http::{read_line, ResponseError, MAX_HEADERS, MAX_HEAD_LEN};

/// How long the server waits for a client's next byte.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `root` on `listener` until accepting fails; over TLS with `tls`.
pub fn serve(
    listener: TcpListener,
    root: &Path,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    let root = root.canonicalize()?;
    loop {
        let (stream, _) = listener.accept()?;
        let root = root.clone();
        let tls = tls.clone();
        thread::spawn(move || {
            // A client that goes away mid-answer is not the server's problem.
            let _ = handle(stream, &root, tls);
        });
    }
}

/// Server settings for TLS with the certificate chain of the PEM file
/// `cert` and the private key of the PEM file `key`; the error names the
/// file and what is wrong.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM CERTIFICATE in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(config))
}

/// A parsed request: what is served depends on these only.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD` (others are refused while parsing).
    pub head_only: bool,
    /// The target without its leading `/`.
    pub path: String,
    /// `Range: bytes=A-` or `bytes=A-B` (B inclusive); other forms are ignored.
    pub range: Option<(u64, Option<u64>)>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
}

/// Reads a request head; `Err(status)` for the answer to a bad one.
pub fn read_request(r: &mut impl io::BufRead) -> Result<Request, u16> {
    let mut budget = MAX_HEAD_LEN;
    let mut line = Vec::new();
    read_line(r, &mut budget, &mut line, ResponseError::HeadTooLong).map_err(|_| 400u16)?;
    let text = String::from_utf8(line.clone()).map_err(|_| 400u16)?;
    let mut parts = text.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(400),
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(400);
    }
    let mut request = Request {
        head_only: match method {
            "GET" => false,
            "HEAD" => true,
            _ => return Err(405),
        },
        path: target.strip_prefix('/').ok_or(400u16)?.to_owned(),
        range: None,
        if_none_match: None,
    };
    for _ in 0..=MAX_HEADERS {
        read_line(r, &mut budget, &mut line, ResponseError::HeadTooLong).map_err(|_| 400u16)?;
        if line.is_empty() {
            return Ok(request);
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(400);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("range") {
            request.range = range(value);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            request.if_none_match = Some(value.to_owned());
        }
    }
    Err(431)
}

fn range(value: &str) -> Option<(u64, Option<u64>)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.parse().ok()?;
    let end = match end {
        "" => None,
        e => Some(e.parse().ok().filter(|&e| e >= start)?),
    };
    Some((start, end))
}

/// The regular file `path` names under `root` (already canonical), if any.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    check_path(path).ok()?;
    let real = root.join(path).canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn handle(
    stream: TcpStream,
    root: &Path,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let Some(tls) = tls else {
        return respond(&mut &stream, root);
    };
    let conn = rustls::ServerConnection::new(tls).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, stream);
    respond(&mut stream, root)?;
    stream.conn.send_close_notify();
    stream.flush()
}

/// Reads one request from `out` and answers it.
fn respond(out: &mut (impl Read + Write), root: &Path) -> io::Result<()> {
    // A GET or HEAD has no body: what the reader buffered past the head is
    // nothing anybody needs.
    let request = read_request(&mut BufReader::new(&mut *out));
    let request = match request {
        Ok(r) => r,
        Err(status) => return answer(out, status, "", None),
    };
    let Some(path) = resolve(root, &request.path) else {
        return answer(out, 404, "", None);
    };
    let mut file = File::open(&path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let etag = format!("\"{:x}-{:x}{:08x}\"", len, meta.mtime(), meta.mtime_nsec());
    let tag = format!("ETag: {etag}\r\nAccept-Ranges: bytes\r\n");
    if let Some(tags) = &request.if_none_match {
        if tags.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            return answer(out, 304, &tag, None);
        }
    }
    let (status, start, count, extra) = match request.range {
        Some((start, _)) if start >= len => {
            let extra = format!("Content-Range: bytes */{len}\r\n");
            return answer(out, 416, &extra, None);
        }
        Some((start, end)) => {
            let end = end.unwrap_or(len - 1).min(len - 1);
            let extra = format!("{tag}Content-Range: bytes {start}-{end}/{len}\r\n");
            (206, start, end - start + 1, extra)
        }
        None => (200, 0, len, tag),
    };
    let body = if request.head_only {
        None
    } else {
        io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
        Some((&mut file as &mut dyn Read, count))
    };
    answer_with(out, status, &extra, count, body)
}

fn answer(out: &mut impl Write, status: u16, extra: &str, body: Option<&[u8]>) -> io::Result<()> {
    let body = body.unwrap_or(b"");
    answer_with(
        out,
        status,
        extra,
        body.len() as u64,
        Some((&mut &body[..], body.len() as u64)),
    )
}

fn answer_with(
    out: &mut impl Write,
    status: u16,
    extra: &str,
    length: u64,
    body: Option<(&mut dyn Read, u64)>,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        _ => "",
    };
    let length = if status == 304 {
        String::new()
    } else {
        format!("Content-Length: {length}\r\n")
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nServer: husk-publish\r\nConnection: close\r\n{length}{extra}\r\n"
    )?;
    if let Some((body, n)) = body {
        io::copy(&mut body.take(n), out)?;
    }
    out.flush()
}
