//! `husk-publish serve` and `push`, end to end with the device's transport:
//! a repository published with the `Repo` API, served on an ephemeral port,
//! fetched and verified through `HttpSource` as a device would, over HTTP
//! and over HTTPS (`serve --tls-cert/--tls-key`, certificates made at run
//! time by a test CA).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use delta_updater::delta::Algorithm;
use delta_updater::fetch::{download_blob, FetchError, Fetched, HttpSource, Source, Timeouts};
use delta_updater::metadata::{MAX_RELEASE_LEN, MAX_ROOT_LEN, MAX_TIMESTAMP_LEN};
use delta_updater::repo::{ReleaseInput, Repo};
use delta_updater::verify::{Device, Seen};
use delta_updater::{push, serve, Digest, Verifier};

mod pki;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("husk-serve-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A repository DIR/r with one release of gateway/aarch64 (two layers).
fn published(dir: &Path) -> PathBuf {
    let repo = dir.join("r");
    Repo::new(&repo).init(now()).unwrap();
    let state = dir.join("state.json");
    fs::write(
        &state,
        r#"{"containers": [{"name": "app", "image": "app:1"}]}"#,
    )
    .unwrap();
    let mut layers = Vec::new();
    for (i, size) in [(0u32, 3000usize), (1, 200_000)] {
        let data: Vec<u8> = (0..size as u32).map(|j| (j * 7 + i) as u8).collect();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, format!("file{i}"), &data[..])
            .unwrap();
        let path = dir.join(format!("l{i}.tar"));
        fs::write(&path, builder.into_inner().unwrap()).unwrap();
        layers.push(path);
    }
    let input = ReleaseInput {
        class: "gateway",
        arch: "aarch64",
        hardware: &["rpi4".to_owned()],
        desired_state: &state,
        layers: &layers,
        images: &[],
        expires_in: 86_400,
        history: 3,
        algorithms: &Algorithm::ALL,
    };
    Repo::new(&repo).release(&input, now()).unwrap();
    repo
}

fn serving(root: &Path) -> String {
    serving_with(root, None)
}

fn serving_with(root: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    let root = root.to_owned();
    // The thread ends with the test process.
    thread::spawn(move || serve::serve(listener, &root, tls));
    url
}

/// A test CA's certificate, and a server certificate and key it signed for
/// 127.0.0.1, as files in `dir`: (ca, cert, key).
fn pki_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pki = pki::Pki::new("husk serve test CA");
    let id = pki.server(&["127.0.0.1"]);
    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    fs::write(&files.0, pki.ca_pem()).unwrap();
    fs::write(&files.1, id.cert_pem).unwrap();
    fs::write(&files.2, id.key_pem).unwrap();
    files
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: std::time::Duration::from_secs(5),
        stall: std::time::Duration::from_secs(5),
    }
}

fn body(f: Fetched) -> (Vec<u8>, Option<String>) {
    match f {
        Fetched::Body { bytes, etag } => (bytes, etag),
        Fetched::NotModified => panic!("not modified"),
    }
}

#[test]
fn a_device_fetches_and_verifies_a_served_repository() {
    fetches_and_verifies("e2e", false);
}

#[test]
fn a_device_fetches_and_verifies_a_repository_served_over_tls() {
    fetches_and_verifies("e2e-tls", true);
}

fn fetches_and_verifies(name: &str, tls: bool) {
    let dir = Dir::new(name);
    let repo = published(&dir.0);
    let mut src = if tls {
        let (ca, cert, key) = pki_files(&dir.0);
        let config = serve::tls_config(&cert, &key).unwrap();
        let url = serving_with(&repo.join("repo"), Some(config));
        HttpSource::new(&url, timeouts()).unwrap().ca_file(&ca)
    } else {
        HttpSource::new(&serving(&repo.join("repo")), timeouts()).unwrap()
    };

    let device = Device {
        class: "gateway".into(),
        arch: "aarch64".into(),
        hardware: "rpi4".into(),
    };
    let (root, _) = body(src.get("root/1.json", MAX_ROOT_LEN as u64, None).unwrap());
    assert_eq!(root, fs::read(repo.join("repo/root/1.json")).unwrap());
    let mut v = Verifier::new(&root, device, Seen::default()).unwrap();
    let (ts, etag) = body(
        src.get("timestamp.json", MAX_TIMESTAMP_LEN as u64, None)
            .unwrap(),
    );
    let etag = etag.expect("serve sends an ETag");
    assert_eq!(
        src.get("timestamp.json", MAX_TIMESTAMP_LEN as u64, Some(&etag))
            .unwrap(),
        Fetched::NotModified
    );
    // Another tag: the body again.
    let (again, _) = body(
        src.get(
            "timestamp.json",
            MAX_TIMESTAMP_LEN as u64,
            Some("\"other\""),
        )
        .unwrap(),
    );
    assert_eq!(again, ts);
    let entry = v.timestamp(&ts, now()).unwrap();
    let path = format!("releases/gateway/aarch64/{}.json", entry.version);
    let (release, _) = body(src.get(&path, MAX_RELEASE_LEN as u64, None).unwrap());
    let release = v.release(&release, now()).unwrap();
    let store = dir.0.join("store");
    fs::create_dir_all(&store).unwrap();
    for layer in &release.layers {
        let got = download_blob(
            &mut src,
            &layer.blob.digest,
            layer.blob.size,
            &store,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(Digest::of(&fs::read(got).unwrap()), layer.blob.digest);
    }
    // A cut download resumes from the server with a 206.
    let big = release
        .layers
        .iter()
        .max_by_key(|l| l.blob.size)
        .unwrap()
        .blob;
    let hex = big.digest.to_string()["sha256:".len()..].to_owned();
    let done = store.join(&hex);
    let whole = fs::read(&done).unwrap();
    fs::remove_file(&done).unwrap();
    fs::write(store.join(format!("{hex}.part")), &whole[..whole.len() / 3]).unwrap();
    download_blob(&mut src, &big.digest, big.size, &store, &mut |_| {}).unwrap();
    assert_eq!(fs::read(&done).unwrap(), whole);

    let e = src
        .get("releases/gateway/aarch64/99.json", 100, None)
        .unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 404, .. }), "{e}");
}

/// Sends `request` raw and returns the whole answer.
fn raw(url: &str, request: &str) -> String {
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_answers_head_ranges_and_refuses_escapes() {
    let dir = Dir::new("raw");
    let root = dir.0.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub/f"), b"0123456789").unwrap();
    fs::write(dir.0.join("secret"), b"key").unwrap();
    std::os::unix::fs::symlink(dir.0.join("secret"), root.join("out")).unwrap();
    std::os::unix::fs::symlink("f", root.join("sub/in")).unwrap();
    let url = serving(&root);
    let get = |target: &str, extra: &str| {
        raw(
            &url,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
        )
    };
    let head = raw(&url, "HEAD /sub/f HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: 10\r\n"));
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
    let part = get("/sub/f", "Range: bytes=4-\r\n");
    assert!(part.starts_with("HTTP/1.1 206 "));
    assert!(part.contains("Content-Range: bytes 4-9/10\r\n"));
    assert!(part.ends_with("\r\n\r\n456789"));
    let part = get("/sub/f", "Range: bytes=2-3\r\n");
    assert!(part.ends_with("\r\n\r\n23"), "{part}");
    let past = get("/sub/f", "Range: bytes=10-\r\n");
    assert!(past.starts_with("HTTP/1.1 416 ") && past.contains("bytes */10"));
    assert!(
        get("/sub/in", "").ends_with("0123456789"),
        "a link inside is fine"
    );
    for target in [
        "/out",
        "/../secret",
        "/sub/../../secret",
        "/sub",
        "/nothing",
        "/%2e%2e/secret",
    ] {
        assert!(get(target, "").starts_with("HTTP/1.1 404 "), "{target}");
    }
    assert!(raw(&url, "PUT /sub/f HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(raw(&url, "GET sub/f HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(raw(&url, "garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = push::files_in_order(dir)
        .unwrap()
        .into_iter()
        .map(|f| {
            let data = fs::read(dir.join(&f)).unwrap();
            (f, data)
        })
        .collect();
    out.sort();
    out
}

fn assert_push_order(sent: &[String]) {
    let last_blob = sent.iter().rposition(|f| f.starts_with("blobs/")).unwrap();
    let first_release = sent
        .iter()
        .position(|f| f.starts_with("releases/"))
        .unwrap();
    let first_root = sent.iter().position(|f| f.starts_with("root")).unwrap();
    assert!(
        last_blob < first_release && first_release < first_root,
        "{sent:?}"
    );
    assert_eq!(sent.last().map(String::as_str), Some("timestamp.json"));
    assert_eq!(sent[sent.len() - 2], "root.json");
}

#[test]
fn push_to_a_directory_copies_in_order_then_only_what_changed() {
    let dir = Dir::new("pushdir");
    let repo = published(&dir.0);
    let dest = dir.0.join("mirror");
    let pushed = push::push(&repo.join("repo"), dest.to_str().unwrap(), None).unwrap();
    assert_push_order(&pushed.sent);
    assert_eq!(pushed.skipped, 0);
    assert_eq!(tree(&dest), tree(&repo.join("repo")));
    Repo::new(&repo).timestamp(now() + 1, 3600).unwrap();
    let again = push::push(&repo.join("repo"), dest.to_str().unwrap(), None).unwrap();
    assert_eq!(again.sent, ["timestamp.json"]);
    assert_eq!(tree(&dest), tree(&repo.join("repo")));
    assert!(
        fs::read_dir(&dest).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "no temporary files left"
    );
}

#[test]
fn push_over_http_puts_each_file_in_order() {
    let dir = Dir::new("pushhttp");
    let repo = published(&dir.0);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/fleet", listener.local_addr().unwrap());
    // (path, body) of each PUT, in order.
    type Files = Vec<(String, Vec<u8>)>;
    let stored: Arc<Mutex<Files>> = Arc::default();
    let log = stored.clone();
    // A WebDAV-like server: HEAD is 404 for anything not yet PUT.
    thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            let mut r = BufReader::new(&stream);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut words = line.split(' ');
            let (method, target) = (words.next().unwrap().to_owned(), words.next().unwrap());
            let path = target.strip_prefix("/fleet/").unwrap().to_owned();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h == "\r\n" {
                    break;
                }
                if let Some(v) = h.strip_prefix("Content-Length: ") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut out = &stream;
            let known = log
                .lock()
                .unwrap()
                .iter()
                .rfind(|(p, _)| *p == path)
                .map(|(_, d)| d.len());
            if method == "PUT" {
                let mut data = vec![0; length];
                r.read_exact(&mut data).unwrap();
                log.lock().unwrap().push((path, data));
                out.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            } else if let Some(n) = known {
                write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").unwrap();
            } else {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            }
        }
    });
    let pushed = push::push(&repo.join("repo"), &url, None).unwrap();
    assert_push_order(&pushed.sent);
    let mut got = stored.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        pushed.sent
    );
    got.sort();
    assert_eq!(got, tree(&repo.join("repo")));
    // Blobs the server has (HEAD with their size) are not sent again.
    let again = push::push(&repo.join("repo"), &url, None).unwrap();
    assert!(
        again.sent.iter().all(|f| !f.starts_with("blobs/")),
        "{:?}",
        again.sent
    );
    assert!(again.skipped > 0);
    assert_eq!(
        again.sent.last().map(String::as_str),
        Some("timestamp.json")
    );
}

#[test]
fn serve_tls_files_that_cannot_be_used_are_named() {
    let dir = Dir::new("tls-files");
    let (ca, cert, key) = pki_files(&dir.0);
    let missing = dir.0.join("missing.pem");
    let e = serve::tls_config(&missing, &key).unwrap_err();
    assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
    // A CA certificate is no private key; a certificate file with none in it.
    let e = serve::tls_config(&cert, &ca).unwrap_err();
    assert!(e.starts_with(&format!("{}: ", ca.display())), "{e}");
    let e = serve::tls_config(&key, &key).unwrap_err();
    assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    // Another key than the certificate's.
    let other = pki::Pki::new("x").server(&["127.0.0.1"]);
    let other_key = dir.0.join("other.key");
    fs::write(&other_key, other.key_pem).unwrap();
    let e = serve::tls_config(&cert, &other_key).unwrap_err();
    assert!(e.contains(" and "), "{e}");
}
