//! The transport against real nginx on loopback, the reference server of
//! update repositories: ETag and 304, and a blob download cut by stopping
//! nginx mid-body, resumed with a range once it is back. Each test runs its
//! own nginx (ephemeral ports, its own prefix and configuration, one
//! process: `master_process off`) and kills it at the end. Every nginx also
//! serves TLS (OpenSSL's side, a certificate made at run time by a test CA):
//! with the `tls` feature the same stories run over `https://`. Without nginx
//! the tests print `SKIP <name>: ...` and pass.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use delta_updater::fetch::{download_blob, FetchError, Fetched, HttpSource, Source, Timeouts};
use delta_updater::Digest;

mod pki;

const NGINX: &str = "/usr/sbin/nginx";

/// One nginx serving `root` on 127.0.0.1:`port`, from `prefix`.
struct Nginx {
    prefix: PathBuf,
    port: u16,
    /// The TLS listener's port; its CA's certificate is `prefix/ca.pem`.
    tls_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// `None` (after printing the SKIP line) when nginx is not installed.
    fn new(test: &str, root: &Path, rate: &str) -> Option<Self> {
        if !Path::new(NGINX).exists() {
            eprintln!("SKIP {test}: nginx not installed (qemu-tests/host-deps.sh installs it)");
            return None;
        }
        let prefix = std::env::temp_dir().join(format!("husk-nginx-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&prefix);
        fs::create_dir_all(prefix.join("tmp")).unwrap();
        fs::create_dir_all(prefix.join("dav")).unwrap();
        let (port, tls_port) = (free_port(), free_port());
        let pki = pki::Pki::new("husk nginx test CA");
        let id = pki.server(&["127.0.0.1"]);
        fs::write(prefix.join("ca.pem"), pki.ca_pem()).unwrap();
        fs::write(prefix.join("server.pem"), id.cert_pem).unwrap();
        fs::write(prefix.join("server.key"), id.key_pem).unwrap();
        let p = prefix.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nerror_log {p}/error.log;\npid {p}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  default_type application/octet-stream;\n\
               client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n\
               scgi_temp_path {p}/tmp/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
                 listen 127.0.0.1:{tls_port} ssl;\n\
                 ssl_certificate {p}/server.pem;\n    ssl_certificate_key {p}/server.key;\n\
                 location /blobs/ {{ limit_rate {rate}; }}\n\
                 location /dav/ {{ root {p}; dav_methods PUT; create_full_put_path on; }}\n  }}\n}}\n",
            root = root.display(),
        );
        fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let mut nginx = Self {
            prefix,
            port,
            tls_port,
            child: None,
        };
        nginx.start();
        Some(nginx)
    }

    fn start(&mut self) {
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-e")
            .arg(self.prefix.join("error.log"))
            .arg("-c")
            .arg(self.prefix.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.tls_port)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {}",
                fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TLS listener's URL.
    #[cfg(feature = "tls")]
    fn tls_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    /// A source for `url`, checking TLS against this nginx's CA.
    fn source(&self, url: &str) -> HttpSource {
        let src = HttpSource::new(url, timeouts()).unwrap();
        #[cfg(feature = "tls")]
        let src = src.ca_file(&self.prefix.join("ca.pem"));
        src
    }

    /// The plain URL, and the TLS one where the tls feature is built.
    fn urls(&self) -> Vec<String> {
        #[cfg(feature = "tls")]
        return vec![self.url(), self.tls_url()];
        #[cfg(not(feature = "tls"))]
        vec![self.url()]
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.prefix);
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("husk-nginx-{}-{name}-data", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        stall: Duration::from_secs(5),
    }
}

#[test]
fn nginx_etag_then_not_modified() {
    let root = temp("etag");
    fs::write(root.join("timestamp.json"), b"{\"signed\":{}}").unwrap();
    let Some(nginx) = Nginx::new("nginx_etag_then_not_modified", &root, "0") else {
        return;
    };
    for url in nginx.urls() {
        let mut src = nginx.source(&url);
        let Fetched::Body { bytes, etag } = src.get("timestamp.json", 1000, None).unwrap() else {
            panic!("a body first");
        };
        assert_eq!(bytes, b"{\"signed\":{}}");
        let etag = etag.expect("nginx sends an ETag");
        assert_eq!(
            src.get("timestamp.json", 1000, Some(&etag)).unwrap(),
            Fetched::NotModified
        );
        let e = src.get("timestamp.json", 5, None).unwrap_err();
        assert!(matches!(e, FetchError::TooLong { max: 5, .. }), "{e}");
        let e = src.get("releases/x/y/1.json", 1000, None).unwrap_err();
        assert!(matches!(e, FetchError::Status { status: 404, .. }), "{e}");
    }
    drop(nginx);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn nginx_stopped_mid_download_then_resumed() {
    stopped_mid_download_then_resumed("nginx_stopped_mid_download_then_resumed", false);
}

/// The same story over TLS: the cut also breaks the TLS session, and the
/// resumed download is a new handshake.
#[cfg(feature = "tls")]
#[test]
fn nginx_stopped_mid_download_then_resumed_over_tls() {
    stopped_mid_download_then_resumed("nginx_stopped_mid_download_then_resumed_over_tls", true);
}

fn stopped_mid_download_then_resumed(test: &str, tls: bool) {
    const SIZE: usize = 4 << 20;
    let root = temp(test);
    let store = root.join("store");
    let blobs = root.join("repo/blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::create_dir_all(&store).unwrap();
    // Incompressible-looking data (xorshift), 4 MiB.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let digest = Digest::of(&data);
    let hex = digest.to_string()["sha256:".len()..].to_owned();
    fs::write(blobs.join(&hex), &data).unwrap();
    let Some(mut nginx) = Nginx::new(test, &root.join("repo"), "1m") else {
        return;
    };
    let url = nginx.urls()[usize::from(tls)].clone();
    let part = store.join(format!("{hex}.part"));
    let (s, d) = (store.clone(), digest);
    let mut src = nginx.source(&url);
    let first = thread::spawn(move || download_blob(&mut src, &d, SIZE as u64, &s, &mut |_| {}));
    let start = Instant::now();
    while fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(start.elapsed() < Duration::from_secs(20), "no progress");
        thread::sleep(Duration::from_millis(20));
    }
    nginx.stop();
    let e = first.join().unwrap().unwrap_err();
    assert!(
        matches!(e, FetchError::Truncated { .. } | FetchError::Receive { .. }),
        "{e}"
    );
    let cut = fs::metadata(&part).unwrap().len();
    assert!(cut > 0 && cut < SIZE as u64, "{cut}");

    nginx.start();
    let mut src = nginx.source(&url);
    let mut first_progress = None;
    let path = download_blob(&mut src, &digest, SIZE as u64, &store, &mut |n| {
        first_progress.get_or_insert(n);
    })
    .unwrap();
    assert!(
        first_progress.unwrap() > cut,
        "resumed with a range, not from 0"
    );
    assert_eq!(Digest::of(&fs::read(&path).unwrap()), digest);
    assert!(!part.exists());
    drop(nginx);
    fs::remove_dir_all(&root).unwrap();
}

/// `husk-publish push` to nginx's WebDAV, then read back as a device.
#[cfg(feature = "publish")]
#[test]
fn nginx_webdav_accepts_a_push() {
    use delta_updater::push;
    let root = temp("dav");
    let served = root.join("served");
    fs::create_dir_all(served.join("blobs/sha256")).unwrap();
    fs::create_dir_all(served.join("releases/gw/arm")).unwrap();
    fs::write(
        served.join("blobs/sha256").join("ab".repeat(32)),
        vec![7u8; 100_000],
    )
    .unwrap();
    fs::write(served.join("releases/gw/arm/1.json"), b"{}").unwrap();
    fs::write(served.join("timestamp.json"), b"{\"t\":1}").unwrap();
    let Some(nginx) = Nginx::new("nginx_webdav_accepts_a_push", &root, "0") else {
        return;
    };
    let ca = nginx.prefix.join("ca.pem");
    for url in nginx.urls() {
        let _ = fs::remove_dir_all(nginx.prefix.join("dav"));
        let dest = format!("{url}/dav");
        let pushed = push::push(&served, &dest, Some(&ca)).unwrap();
        assert_eq!(
            pushed.sent.last().map(String::as_str),
            Some("timestamp.json")
        );
        assert_eq!(pushed.sent.len(), 3);
        let again = push::push(&served, &dest, Some(&ca)).unwrap();
        assert_eq!(again.skipped, 1, "the blob is already there");
        let mut src = nginx.source(&dest);
        let Fetched::Body { bytes, .. } = src.get("timestamp.json", 100, None).unwrap() else {
            panic!("a body");
        };
        assert_eq!(bytes, b"{\"t\":1}");
    }
    // Over TLS, a CA the server's certificate does not chain to is refused
    // before anything is sent.
    #[cfg(feature = "tls")]
    {
        let other = root.join("other-ca.pem");
        fs::write(&other, pki::Pki::new("another CA").ca_pem()).unwrap();
        let dest = format!("{}/dav2", nginx.tls_url());
        let e = push::push(&served, &dest, Some(&other)).unwrap_err();
        assert!(e.to_string().contains("TLS handshake failed"), "{e}");
        assert!(!nginx.prefix.join("dav2").exists());
    }
    drop(nginx);
    fs::remove_dir_all(&root).unwrap();
}
