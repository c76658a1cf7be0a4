//! The client against rustls servers on 127.0.0.1, with certificates made
//! at run time: the right CA, another CA, another name, a server that speaks
//! no TLS, one that stalls or trickles in the handshake, and CA files that
//! cannot be used.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::fetch::tests::quick;
use crate::fetch::{FetchError, Fetched, HttpSource, Source};

#[path = "../../../tests/pki/mod.rs"]
mod pki;
use pki::{Identity, Pki};

type Tls = StreamOwned<ServerConnection, TcpStream>;
type Handler = Box<dyn FnOnce(&mut Tls) + Send>;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("husk-tls-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn server_config(id: &Identity) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(config)
}

/// A TLS server on 127.0.0.1 with identity `id` that answers one connection
/// with each handler in turn, after reading the request head; joining it
/// yields the heads (empty where the handshake failed).
fn tls_server(id: &Identity, handlers: Vec<Handler>) -> (String, JoinHandle<Vec<String>>) {
    let config = server_config(id);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/repo", listener.local_addr().unwrap());
    let thread = thread::spawn(move || {
        handlers
            .into_iter()
            .map(|handler| {
                let (sock, _) = listener.accept().unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut tls = StreamOwned::new(conn, sock);
                let mut request = String::new();
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return String::new();
                    }
                    request.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                handler(&mut tls);
                tls.conn.send_close_notify();
                let _ = tls.flush();
                request
            })
            .collect()
    });
    (url, thread)
}

fn reply(bytes: &[u8]) -> Handler {
    let bytes = bytes.to_vec();
    Box::new(move |s: &mut Tls| {
        let _ = s.write_all(&bytes);
    })
}

/// A CA, a CA file for it in `dir`, and a server identity for 127.0.0.1.
fn setup(dir: &Path) -> (PathBuf, Identity) {
    let pki = Pki::new("husk test CA");
    let ca = dir.join("ca.pem");
    fs::write(&ca, pki.ca_pem()).unwrap();
    (ca, pki.server(&["127.0.0.1", "localhost"]))
}

fn source(url: &str, ca: &Path) -> HttpSource {
    HttpSource::new(url, quick()).unwrap().ca_file(ca)
}

#[test]
fn https_get_and_range_resume_against_the_ca_file() {
    let dir = temp_dir("get");
    let (ca, id) = setup(&dir);
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let full = [
        format!(
            "HTTP/1.1 200 OK\r\nETag: \"t1\"\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        &body,
    ]
    .concat();
    let tail = [
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1000-{}/{}\r\nContent-Length: {}\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - 1000
        )
        .as_bytes(),
        &body[1000..],
    ]
    .concat();
    let (url, server) = tls_server(&id, vec![reply(&full), reply(&tail)]);
    let mut src = source(&url, &ca);
    assert_eq!(src.url("a"), format!("{url}/a"));
    assert_eq!(
        src.get("timestamp.json", 100_000, None).unwrap(),
        Fetched::Body {
            bytes: body.clone(),
            etag: Some("\"t1\"".into())
        }
    );
    let part = dir.join("part");
    fs::write(&part, &body[..1000]).unwrap();
    let mut out = fs::OpenOptions::new().append(true).open(&part).unwrap();
    src.fetch_range("blobs/x", 1000, body.len() as u64, &mut out, &mut |_| {})
        .unwrap();
    assert_eq!(fs::read(&part).unwrap(), body);
    let heads = server.join().unwrap();
    assert!(
        heads[0].starts_with("GET /repo/timestamp.json HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[1].contains("Range: bytes=1000-\r\n"), "{heads:?}");
}

#[test]
fn a_close_without_close_notify_is_the_end_and_a_short_body_is_truncated() {
    let dir = temp_dir("eof");
    let (ca, id) = setup(&dir);
    let cut = |bytes: &'static [u8]| -> Handler {
        Box::new(move |s: &mut Tls| {
            let _ = s.write_all(bytes);
            let _ = s.flush();
            // Closes the TCP connection with no close_notify.
            let _ = s.sock.shutdown(std::net::Shutdown::Both);
        })
    };
    let (url, server) = tls_server(
        &id,
        vec![
            cut(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
            cut(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
        ],
    );
    let mut src = source(&url, &ca);
    assert!(matches!(
        src.get("a", 10, None).unwrap(),
        Fetched::Body { .. }
    ));
    let e = src.get("a", 100, None).unwrap_err();
    assert!(matches!(e, FetchError::Truncated { .. }), "{e}");
    server.join().unwrap();
}

fn handshake_error(url: &str, ca: &Path) -> String {
    let e = source(url, ca).get("timestamp.json", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Tls { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{url}/timestamp.json: TLS handshake failed: ")),
        "{message}"
    );
    message
}

#[test]
fn a_certificate_of_another_ca_or_for_another_name_is_refused() {
    let dir = temp_dir("refused");
    let (ca, id) = setup(&dir);
    let (url, server) = tls_server(&id, vec![reply(b"")]);
    // Another CA's file: the server's chain does not verify.
    let other = dir.join("other.pem");
    fs::write(&other, Pki::new("another CA").ca_pem()).unwrap();
    let message = handshake_error(&url, &other);
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert_eq!(server.join().unwrap(), vec![String::new()]);

    // The right CA, but a certificate for another host.
    let pki = Pki::new("husk test CA 2");
    fs::write(&ca, pki.ca_pem()).unwrap();
    let (url, server) = tls_server(&pki.server(&["updates.example.com"]), vec![reply(b"")]);
    let message = handshake_error(&url, &ca);
    assert!(
        message.contains("not valid for name \"127.0.0.1\""),
        "{message}"
    );
    server.join().unwrap();
}

#[test]
fn a_plain_http_server_at_an_https_url_is_a_handshake_error() {
    let dir = temp_dir("plain");
    let (ca, _) = setup(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    handshake_error(&url, &ca);
    server.join().unwrap();
}

/// A listener on 127.0.0.1 whose one connection gets `behave` after the
/// ClientHello is read; the `https://` URL and the thread.
fn raw_server(behave: fn(&mut TcpStream)) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let thread = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.read(&mut [0u8; 4096]);
        behave(&mut s);
    });
    (url, thread)
}

#[test]
fn a_server_silent_or_trickling_in_the_handshake_is_dropped() {
    let dir = temp_dir("stall");
    let (ca, _) = setup(&dir);
    // Silent: reads the ClientHello, answers nothing.
    let (url, server) = raw_server(|_| thread::sleep(Duration::from_millis(1500)));
    let start = Instant::now();
    let e = source(&url, &ca).get("a", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Stall { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_millis(1400));
    server.join().unwrap();

    // Trickling: a byte every 400 ms of a never-ending handshake record,
    // under the 500 ms stall timeout each time.
    let (url, server) = raw_server(|s| {
        let _ = s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
        while s.write_all(b"x").is_ok() {
            thread::sleep(Duration::from_millis(400));
        }
    });
    // Deadline: 2 x 0.5 s + 64 KiB at 64 KiB/s = 2 s.
    let mut src = source(&url, &ca).min_rate(64 * 1024);
    let start = Instant::now();
    let e = src.get("a", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Deadline { .. }), "{e}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3000),
        "{took:?}"
    );
    drop(src);
    server.join().unwrap();
}

#[test]
fn ca_files_that_cannot_be_used_are_named() {
    let dir = temp_dir("cafile");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let missing = dir.join("missing.pem");
    let empty = dir.join("empty.pem");
    fs::write(&empty, "# no certificates here\n").unwrap();
    let garbage = dir.join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let big = dir.join("big.pem");
    fs::write(&big, vec![b'\n'; (super::MAX_CA_FILE + 1) as usize]).unwrap();
    for (file, reason) in [
        (&missing, "No such file"),
        (&empty, "has no usable CA certificate"),
        (&garbage, "not a PEM file"),
        (&big, "larger than"),
    ] {
        let e = source(&url, file).get("a", 10, None).unwrap_err();
        assert!(matches!(e, FetchError::CaFile { .. }), "{e}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("CA file {}: ", file.display()))
                && message.contains(reason),
            "{message}"
        );
    }
}

#[test]
fn https_urls_default_to_port_443() {
    let src = HttpSource::new("https://updates.example.com/fleet", quick()).unwrap();
    assert_eq!(
        src.url("a.json"),
        "https://updates.example.com/fleet/a.json"
    );
    let e = HttpSource::new("ftp://x/", quick()).unwrap_err();
    assert!(
        e.to_string()
            .contains("must start with http:// or https://"),
        "{e}"
    );
}
