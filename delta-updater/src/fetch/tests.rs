//! The response parser on bytes, and the client against a server on
//! 127.0.0.1 that misbehaves on purpose.

use super::http::{parse_response, ContentRange, ResponseError, MAX_HEADERS, MAX_HEAD_LEN};
use super::*;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Instant;

// ---- the parser ----

fn parse(data: &[u8]) -> Result<(http::Head, Vec<u8>, bool), ResponseError> {
    parse_response(data, 1000)
}

#[test]
fn content_length_body_with_etag_and_any_content_type() {
    let (head, body, fits) = parse(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nETag: \"5-abc\"\r\ncontent-length: 5\r\n\r\nhelloEXTRA",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.etag.as_deref(), Some("\"5-abc\""));
    assert_eq!(head.length, Some(5));
    assert_eq!((body.as_slice(), fits), (&b"hello"[..], true));
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let (_, body, _) = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(body, b"hello!");
}

#[test]
fn interim_100_continue_is_skipped_and_http_1_0_accepted() {
    let (head, body, _) =
        parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\ngone").unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(body, b"gone");
}

#[test]
fn body_longer_than_max_is_cut_at_max_plus_one() {
    let (_, body, fits) = parse_response(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 4).unwrap();
    assert_eq!((body.as_slice(), fits), (&b"01234"[..], false));
}

fn parse_err(data: &[u8]) -> ResponseError {
    parse(data).expect_err("must be refused")
}

#[test]
fn malformed_responses_are_refused() {
    use ResponseError as E;
    type Case = (&'static [u8], fn(&E) -> bool);
    let cases: &[Case] = &[
        (b"HTTP/2 200 OK\r\n\r\n", |e| matches!(e, E::StatusLine)),
        (b"HTTP/1.1 20 OK\r\n\r\n", |e| matches!(e, E::StatusLine)),
        (b"HTTP/1.1 2000 OK\r\n\r\n", |e| matches!(e, E::StatusLine)),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", |e| {
            matches!(e, E::Header)
        }),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", |e| {
            matches!(e, E::Header)
        }),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", |e| {
            matches!(e, E::ContentLength)
        }),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            |e| matches!(e, E::ContentLength),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            |e| matches!(e, E::ContentLength),
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", |e| {
            matches!(e, E::TransferEncoding)
        }),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            |e| matches!(e, E::TransferEncoding),
        ),
        (
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 5-4/10\r\n\r\n",
            |e| matches!(e, E::ContentRange),
        ),
        (
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-10/10\r\n\r\n",
            |e| matches!(e, E::ContentRange),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            |e| matches!(e, E::ChunkSize),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
            |e| matches!(e, E::ChunkSize),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
            |e| matches!(e, E::ChunkSize),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            |e| matches!(e, E::ChunkEnd),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", |e| {
            matches!(e, E::Truncated)
        }),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
            |e| matches!(e, E::Truncated),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", |e| {
            matches!(e, E::Truncated)
        }),
    ];
    for (data, ok) in cases {
        let e = parse_err(data);
        assert!(ok(&e), "{:?}: {e:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn endless_chunk_size_line_is_cut_at_its_cap() {
    let mut data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1".to_vec();
    data.extend(std::iter::repeat_n(b';', 10_000));
    assert!(matches!(parse_err(&data), ResponseError::ChunkSize));
}

#[test]
fn head_too_big_or_too_many_headers_is_refused() {
    let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN));
    big.extend(b"\r\n\r\n");
    assert!(matches!(parse_err(&big), ResponseError::HeadTooLong));
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..=MAX_HEADERS {
        many.extend(b"X: y\r\n");
    }
    many.extend(b"\r\n");
    assert!(matches!(parse_err(&many), ResponseError::TooManyHeaders));
}

#[test]
fn content_range_forms() {
    let (head, _, _) =
        parse(b"HTTP/1.1 206 OK\r\nContent-Range: bytes 3-9/10\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    assert_eq!(
        head.range,
        Some(ContentRange::Bytes {
            start: 3,
            end: 9,
            total: Some(10)
        })
    );
    let (head, _, _) =
        parse(b"HTTP/1.1 416 No\r\nContent-Range: bytes */10\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    assert_eq!(head.range, Some(ContentRange::Unsatisfied(10)));
}

// ---- the client against a misbehaving server ----

type Handler = Box<dyn FnOnce(&mut TcpStream) + Send>;

/// A server on 127.0.0.1 that answers one connection with each handler in
/// turn; joining it yields the request heads it received.
fn server(handlers: Vec<Handler>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/repo", listener.local_addr().unwrap());
    let thread = thread::spawn(move || {
        handlers
            .into_iter()
            .map(|handler| {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    request.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                handler(&mut stream);
                request
            })
            .collect()
    });
    (url, thread)
}

fn reply(bytes: &[u8]) -> Handler {
    let bytes = bytes.to_vec();
    Box::new(move |s: &mut TcpStream| {
        let _ = s.write_all(&bytes);
    })
}

/// Short timeouts for servers that misbehave on purpose (also the TLS tests').
pub(super) fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        stall: Duration::from_millis(500),
    }
}

fn source(url: &str) -> HttpSource {
    HttpSource::new(url, quick()).unwrap()
}

#[test]
fn get_sends_the_request_husk_promises_then_304_with_the_etag() {
    let (url, server) = server(vec![
        reply(b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 2\r\n\r\n{}"),
        reply(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
    ]);
    let mut src = source(&url);
    let first = src.get("timestamp.json", 100, None).unwrap();
    assert_eq!(
        first,
        Fetched::Body {
            bytes: b"{}".to_vec(),
            etag: Some("\"v1\"".into())
        }
    );
    assert_eq!(
        src.get("timestamp.json", 100, Some("\"v1\"")).unwrap(),
        Fetched::NotModified
    );
    let requests = server.join().unwrap();
    let host = url.trim_start_matches("http://").trim_end_matches("/repo");
    assert!(requests[0].starts_with("GET /repo/timestamp.json HTTP/1.1\r\n"));
    for h in [
        format!("Host: {host}\r\n"),
        format!("User-Agent: husk/{}\r\n", env!("CARGO_PKG_VERSION")),
        "Connection: close\r\n".into(),
    ] {
        assert!(requests[0].contains(&h), "{h} in {}", requests[0]);
    }
    assert!(!requests[0].contains("If-None-Match"));
    assert!(requests[1].contains("If-None-Match: \"v1\"\r\n"));
}

#[test]
fn error_statuses_and_redirects_name_the_url() {
    let (url, server) = server(vec![
        reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        reply(b"HTTP/1.1 500 Oops\r\n\r\n"),
        reply(b"HTTP/1.1 301 Moved\r\nLocation: http://evil/\r\n\r\n"),
        reply(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    ]);
    let mut src = source(&url);
    let e = src.get("root/2.json", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 404, .. }));
    assert_eq!(e.to_string(), format!("{url}/root/2.json: HTTP status 404"));
    let e = src.get("a", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 500, .. }), "{e}");
    let e = src.get("a", 10, None).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("HTTP status 301 redirect (not followed)"),
        "{e}"
    );
    // 304 without an ETag sent is not an answer to this request.
    let e = src.get("a", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 304, .. }), "{e}");
    server.join().unwrap();
}

#[test]
fn truncated_long_and_endless_bodies_are_errors() {
    let (url, server) = server(vec![
        reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"),
        // Announces more than max: refused before reading the body.
        reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nxxxx"),
        Box::new(|s: &mut TcpStream| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
            let chunk = [b'x'; 4096];
            while s.write_all(&chunk).is_ok() {}
        }),
        Box::new(|s: &mut TcpStream| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            while s.write_all(b"1000\r\n").is_ok() && s.write_all(&[b'y'; 4096]).is_ok() {
                let _ = s.write_all(b"\r\n");
            }
        }),
    ]);
    let mut src = source(&url);
    let e = src.get("a", 1000, None).unwrap_err();
    assert!(matches!(e, FetchError::Truncated { .. }), "{e}");
    let e = src.get("a", 1000, None).unwrap_err();
    assert!(matches!(e, FetchError::TooLong { max: 1000, .. }), "{e}");
    let e = src.get("a", 100_000, None).unwrap_err();
    assert!(matches!(e, FetchError::TooLong { .. }), "{e}");
    let e = src.get("a", 100_000, None).unwrap_err();
    assert!(matches!(e, FetchError::TooLong { .. }), "{e}");
    server.join().unwrap();
}

#[test]
fn a_server_that_stalls_is_dropped_after_the_stall_timeout() {
    let (url, server) = server(vec![Box::new(|s: &mut TcpStream| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab");
        thread::sleep(Duration::from_millis(1500));
    })]);
    let start = Instant::now();
    let e = source(&url).get("a", 100, None).unwrap_err();
    assert!(matches!(e, FetchError::Stall { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_millis(1400));
    server.join().unwrap();
}

#[test]
fn a_server_that_trickles_hits_the_deadline() {
    let (url, server) = server(vec![Box::new(|s: &mut TcpStream| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        // A byte every 400 ms never trips the 500 ms stall timeout.
        while s.write_all(b"x").is_ok() {
            thread::sleep(Duration::from_millis(400));
        }
    })]);
    // Deadline: 2 x 0.5 s + (16 KiB + 10 bytes) / 1 MiB/s, rounded down = 1 s.
    let mut src = source(&url).min_rate(1 << 20);
    let start = Instant::now();
    let e = src.get("a", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Deadline { .. }), "{e}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1600),
        "{took:?}"
    );
    drop(src);
    server.join().unwrap();
}

#[test]
fn connection_refused_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut src = source(&format!("http://127.0.0.1:{port}"));
    let e = src.get("timestamp.json", 10, None).unwrap_err();
    assert!(matches!(e, FetchError::Connect { .. }), "{e}");
    assert!(e.to_string().starts_with(&format!(
        "http://127.0.0.1:{port}/timestamp.json: cannot connect: "
    )));
}

#[test]
fn urls_and_paths() {
    for good in ["http://10.0.2.2:8080/", "http://[::1]:8080/updates/fleet-a"] {
        assert!(HttpSource::new(good, quick()).is_ok(), "{good}");
    }
    for name in ["http://example.com", "http://repo.local/x/"] {
        assert_eq!(
            HttpSource::new(name, quick()).is_ok(),
            cfg!(feature = "dns")
        );
    }
    let src = HttpSource::new("http://[::1]:8080/a/b/", quick()).unwrap();
    assert_eq!(src.url("root.json"), "http://[::1]:8080/a/b/root.json");
    // https:// needs the tls feature, and says so without it.
    let https = HttpSource::new("https://10.0.2.2/", quick());
    assert_eq!(https.is_ok(), cfg!(feature = "tls"));
    if let Err(e) = https {
        assert!(e.to_string().contains("tls feature"), "{e}");
    }
    for bad in [
        "https://x:0",
        "ftp://x",
        "http://",
        "http://:80",
        "http://x:0",
        "http://x:99999",
        "http://u@x",
        "http://x/?q",
        "http://x/a/../b",
        "http://[::1",
        "http://[nope]",
        "http://x y",
    ] {
        let e = HttpSource::new(bad, quick()).unwrap_err();
        assert!(matches!(e, FetchError::Url { .. }), "{bad}");
    }
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../b",
        "a//b",
        "a/./b",
        "a b",
        "a%2e",
    ] {
        assert!(check_path(bad).is_err(), "{bad:?}");
    }
    check_path("releases/cam_1/aarch64/7.json").unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("husk-fetch-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
}

#[test]
fn ranges_right_wrong_ignored_and_overlong() {
    let dir = temp_dir("ranges");
    let part = dir.join("p");
    fs::write(&part, b"01234").unwrap();
    let (url, server) = server(vec![
        reply(b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n56789"),
        reply(b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 6\r\n\r\n456789"),
        reply(b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 5-9/11\r\nContent-Length: 5\r\n\r\n56789"),
        reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nABCDEFGHIJ"),
        reply(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nABCDEFGHIJKL"),
        reply(b"HTTP/1.1 200 OK\r\n\r\nABCDEFGHIJKL"),
        reply(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */10\r\n\r\n"),
    ]);
    let mut src = source(&url);
    let mut seen = Vec::new();
    src.fetch_range("blobs/b", 5, 10, &mut append(&part), &mut |n| seen.push(n))
        .unwrap();
    assert_eq!(fs::read(&part).unwrap(), b"0123456789");
    assert_eq!(seen.last(), Some(&10));

    fs::write(&part, b"01234").unwrap();
    let e = src
        .fetch_range("blobs/b", 5, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::WrongRange {
                from: 5,
                start: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = src
        .fetch_range("blobs/b", 5, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(e, FetchError::WrongLength { found: 11, .. }),
        "{e}"
    );
    assert_eq!(fs::read(&part).unwrap(), b"01234", "nothing written");

    // The server ignores the range: the file restarts from 0.
    let mut seen = Vec::new();
    src.fetch_range("blobs/b", 5, 10, &mut append(&part), &mut |n| seen.push(n))
        .unwrap();
    assert_eq!(fs::read(&part).unwrap(), b"ABCDEFGHIJ");
    assert_eq!(seen[0], 0);

    // A Content-Length other than the size: refused before writing.
    fs::write(&part, b"").unwrap();
    let e = src
        .fetch_range("blobs/b", 0, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(e, FetchError::WrongLength { found: 12, .. }),
        "{e}"
    );
    // A body without a length that runs past the size: cut at the size.
    let e = src
        .fetch_range("blobs/b", 0, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, FetchError::TooLong { max: 10, .. }), "{e}");
    assert_eq!(fs::read(&part).unwrap(), b"ABCDEFGHIJ");
    // Already complete.
    src.fetch_range("blobs/b", 10, 10, &mut append(&part), &mut |_| {})
        .unwrap();
    let requests = server.join().unwrap();
    assert!(
        requests[0].contains("Range: bytes=5-\r\n"),
        "{}",
        requests[0]
    );
    assert!(!requests[4].contains("Range"), "{}", requests[4]);
    assert!(requests[6].contains("Range: bytes=10-\r\n"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_content_length_shorter_than_the_size_is_truncated() {
    let dir = temp_dir("short");
    let part = dir.join("p");
    let (url, srv) = server(vec![reply(
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/*\r\nContent-Length: 3\r\n\r\n0123456789",
    )]);
    // from 0 sends no Range, so a 206 is as unasked-for as a wrong one.
    let e = source(&url)
        .fetch_range("b", 0, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, FetchError::BadResponse { .. }), "{e}");
    srv.join().unwrap();

    fs::write(&part, b"0").unwrap();
    let (url, srv) = server(vec![reply(
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 1-9/10\r\nContent-Length: 3\r\n\r\n123456789",
    )]);
    let e = source(&url)
        .fetch_range("b", 1, 10, &mut append(&part), &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, FetchError::Truncated { .. }), "{e}");
    assert_eq!(fs::read(&part).unwrap(), b"0123");
    srv.join().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

// ---- download_blob ----

fn blob(n: usize) -> (Vec<u8>, Digest) {
    let data: Vec<u8> = (0..n as u32).map(|i| (i * 31 % 251) as u8).collect();
    let d = Digest::of(&data);
    (data, d)
}

fn hex(d: &Digest) -> String {
    d.to_string()["sha256:".len()..].to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_cut_download_resumes_with_range_to_the_right_file() {
    let dir = temp_dir("resume");
    let (data, digest) = blob(100_000);
    let mut first =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", data.len()).into_bytes();
    first.extend_from_slice(&data[..40_000]);
    let mut second = format!(
        "HTTP/1.1 206 Partial\r\nContent-Range: bytes 40000-99999/100000\r\nContent-Length: {}\r\n\r\n",
        data.len() - 40_000
    )
    .into_bytes();
    second.extend_from_slice(&data[40_000..]);
    let (url, server) = server(vec![reply(&first), reply(&second)]);
    let mut src = source(&url);
    let e = download_blob(&mut src, &digest, data.len() as u64, &dir, &mut |_| {}).unwrap_err();
    assert!(matches!(e, FetchError::Truncated { .. }), "{e}");
    assert_eq!(entries(&dir), [format!("{}.part", hex(&digest))]);
    let mut last = 0;
    let path = download_blob(&mut src, &digest, data.len() as u64, &dir, &mut |n| {
        last = n
    })
    .unwrap();
    assert_eq!(path, dir.join(hex(&digest)));
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(last, data.len() as u64);
    assert_eq!(entries(&dir), [hex(&digest)], "nothing but the final file");
    let requests = server.join().unwrap();
    let get = format!("GET /repo/blobs/sha256/{} HTTP/1.1\r\n", hex(&digest));
    assert!(requests[0].starts_with(&get) && !requests[0].contains("Range"));
    assert!(requests[1].contains("Range: bytes=40000-\r\n"));

    // Present and correct: no request at all (the server is gone).
    let again = download_blob(&mut src, &digest, data.len() as u64, &dir, &mut |_| {}).unwrap();
    assert_eq!(again, path);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupted_partial_is_detected_and_the_download_restarted() {
    let dir = temp_dir("corrupt");
    let (data, digest) = blob(50_000);
    let mut bad = data[..20_000].to_vec();
    bad[100] ^= 1;
    fs::write(dir.join(format!("{}.part", hex(&digest))), &bad).unwrap();
    let mut tail =
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 20000-49999/50000\r\n\r\n".to_vec();
    tail.extend_from_slice(&data[20_000..]);
    let mut whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in data.chunks(7000) {
        whole.extend(format!("{:x}\r\n", c.len()).bytes());
        whole.extend_from_slice(c);
        whole.extend(b"\r\n");
    }
    whole.extend(b"0\r\n\r\n");
    let (url, server) = server(vec![reply(&tail), reply(&whole)]);
    let path = download_blob(&mut source(&url), &digest, 50_000, &dir, &mut |_| {}).unwrap();
    assert_eq!(fs::read(path).unwrap(), data);
    assert_eq!(entries(&dir), [hex(&digest)]);
    let requests = server.join().unwrap();
    assert!(requests[0].contains("Range: bytes=20000-"));
    assert!(!requests[1].contains("Range"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_blob_that_is_not_the_digest_is_deleted_and_named() {
    let dir = temp_dir("mismatch");
    let (data, _) = blob(1000);
    let (_, other) = blob(999);
    let mut whole = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    whole.extend_from_slice(&data);
    let (url, server) = server(vec![reply(&whole)]);
    let e = download_blob(&mut source(&url), &other, 1000, &dir, &mut |_| {}).unwrap_err();
    assert!(matches!(e, FetchError::HashMismatch { digest, .. } if digest == other));
    assert!(e.to_string().starts_with(&format!("blob {other}: ")), "{e}");
    assert!(entries(&dir).is_empty());
    server.join().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dir_source_has_the_same_contract() {
    let dir = temp_dir("dirsource");
    let repo = dir.join("repo");
    let store = dir.join("store");
    fs::create_dir_all(repo.join("blobs/sha256")).unwrap();
    fs::create_dir_all(&store).unwrap();
    fs::write(repo.join("timestamp.json"), b"{\"x\":1}").unwrap();
    let (data, digest) = blob(70_000);
    fs::write(repo.join("blobs/sha256").join(hex(&digest)), &data).unwrap();
    let mut src = DirSource::new(&repo);
    assert_eq!(
        src.get("timestamp.json", 7, Some("\"e\"")).unwrap(),
        Fetched::Body {
            bytes: b"{\"x\":1}".to_vec(),
            etag: None
        }
    );
    let e = src.get("timestamp.json", 6, None).unwrap_err();
    assert!(matches!(e, FetchError::TooLong { max: 6, .. }), "{e}");
    assert!(matches!(
        src.get("../repo/timestamp.json", 100, None),
        Err(FetchError::Path(_))
    ));
    let e = src.get("missing.json", 100, None).unwrap_err();
    assert!(matches!(e, FetchError::Io { op: "open", .. }), "{e}");
    // Resume from a partial.
    fs::write(store.join(format!("{}.part", hex(&digest))), &data[..3000]).unwrap();
    let path = download_blob(&mut src, &digest, 70_000, &store, &mut |_| {}).unwrap();
    assert_eq!(fs::read(path).unwrap(), data);
    // A file of another length than the signed size.
    let e = download_blob(&mut src, &Digest::of(b"x"), 5, &store, &mut |_| {}).unwrap_err();
    assert!(matches!(e, FetchError::Io { .. }), "{e}");
    fs::write(repo.join("blobs/sha256").join(hex(&Digest::of(b"x"))), b"x").unwrap();
    let e = download_blob(&mut src, &Digest::of(b"x"), 5, &store, &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::WrongLength {
                expected: 5,
                found: 1,
                ..
            }
        ),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "dns")]
#[test]
fn a_host_name_is_resolved() {
    let (url, server) = server(vec![reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    )]);
    let url = url.replace("127.0.0.1", "localhost");
    let got = source(&url).get("a", 10, None).unwrap();
    assert!(matches!(got, Fetched::Body { bytes, .. } if bytes == b"x"));
    let requests = server.join().unwrap();
    assert!(requests[0].contains("Host: localhost:"), "{}", requests[0]);
}

#[test]
fn oversized_heads_and_bad_chunks_from_a_server_are_bad_responses() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..10 {
        big.extend(format!("X-Filler-{i}: {}\r\n", "a".repeat(2000)).bytes());
    }
    big.extend(b"\r\n");
    let (url, server) = server(vec![
        reply(&big),
        reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nffffffffffffffff\r\n"),
        reply(b"garbage\r\n\r\n"),
    ]);
    let mut src = source(&url);
    for expected in ["headers longer than", "malformed chunk size", "status line"] {
        let e = src.get("a", 1 << 20, None).unwrap_err();
        assert!(matches!(e, FetchError::BadResponse { .. }), "{e}");
        assert!(e.to_string().contains(expected), "{e}");
    }
    server.join().unwrap();
}
