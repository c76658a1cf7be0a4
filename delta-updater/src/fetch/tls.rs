//! TLS for [`HttpSource`](super::HttpSource) (feature `tls`): rustls with
//! ring's primitives, TLS 1.2 and 1.3, the server's certificate checked
//! against the CA certificates of one PEM file (the system bundle,
//! [`DEFAULT_CA_FILE`], unless the device's config names another, such as
//! the fleet's own CA). No client certificates.
//!
//! TLS adds confidentiality and hides which releases a device fetches; it is
//! not what makes updates safe. Metadata is signed and every blob is
//! hash-checked whatever the transport, so a device with an expired or wrong
//! CA bundle fails closed (no update), never open.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Where the CA certificates are read from unless configured: the bundle of
/// Debian, Alpine, Yocto's and Buildroot's `ca-certificates` packages.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The largest CA file read (Debian's bundle of ~150 certificates is ~220 KB).
pub const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// The client settings for servers whose certificate chains to a CA of the
/// PEM file `ca_file`; the error says what is wrong with the file.
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut pem = Vec::new();
    File::open(ca_file)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .map_err(|e| e.to_string())?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("larger than {MAX_CA_FILE} bytes"));
    }
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file: {e}"))?;
    let mut roots = RootCertStore::empty();
    // Bundles carry the odd certificate webpki cannot use (an old signature
    // algorithm): skipped, as every TLS library does, but not all of them.
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("has no usable CA certificate (PEM \"CERTIFICATE\" blocks)".into());
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS connection over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Runs the TLS handshake with `host` (a DNS name or an IP literal, which
/// the certificate must name) over `sock`, whose read and write timeouts
/// bound each step; no read starts after `deadline` (`TimedOut`), so a
/// server trickling its handshake is dropped too. A certificate that does
/// not verify is an `InvalidData` error saying why.
pub fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    sock: TcpStream,
    deadline: Instant,
) -> io::Result<TlsStream> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut bounded = Bounded { sock, deadline };
    while conn.is_handshaking() {
        conn.complete_io(&mut bounded)?;
    }
    Ok(StreamOwned::new(conn, bounded.sock))
}

/// A socket that refuses to read past a deadline.
struct Bounded {
    sock: TcpStream,
    deadline: Instant,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// Reads from a TLS connection. A server that closes without TLS's
/// close_notify reads as the end of the data, as it does over plain TCP:
/// every response is length-checked and hash-checked above this layer, so a
/// truncation is caught there and named (`Truncated`).
pub fn read(stream: &mut TlsStream, buf: &mut [u8]) -> io::Result<usize> {
    match stream.read(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// Writes all of `buf` and flushes it to the socket.
pub fn write(stream: &mut TlsStream, buf: &[u8]) -> io::Result<usize> {
    stream.write_all(buf)?;
    stream.flush()?;
    Ok(buf.len())
}

#[cfg(test)]
mod tests;
