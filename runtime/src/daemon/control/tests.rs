//! The request parser (every way a line can be wrong), replies both ways,
//! and the server over a real socket in a temporary directory: garbage, a
//! line too long, half a line then silence, too many connections.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::*;

fn id(name: &str) -> ContainerId {
    name.parse().unwrap()
}

fn refused(line: &str) -> String {
    parse_request(line.as_bytes()).unwrap_err().to_string()
}

#[test]
fn requests_parse() {
    assert_eq!(
        parse_request(br#"{"op":"stop","name":"web"}"#).unwrap(),
        Request::Stop(id("web"))
    );
    assert_eq!(
        parse_request(b"{\"op\": \"start\", \"name\": \"a.b-c_1\"}\n").unwrap(),
        Request::Start(id("a.b-c_1"))
    );
    assert_eq!(
        parse_request(br#" {"name":"w","op":"restart"} "#).unwrap(),
        Request::Restart(id("w"))
    );
    assert_eq!(
        parse_request(br#"{"op":"status"}"#).unwrap(),
        Request::Status
    );
    // Escapes are read as JSON reads them.
    assert_eq!(
        parse_request(br#"{"op":"st\u006fp","name":"web"}"#).unwrap(),
        Request::Stop(id("web"))
    );
    for request in [
        Request::Stop(id("web")),
        Request::Start(id("x")),
        Request::Restart(id("y")),
        Request::Status,
    ] {
        assert_eq!(
            parse_request(request.to_line().as_bytes()).unwrap(),
            request
        );
    }
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    assert!(refused("").starts_with("bad request: invalid JSON"));
    assert!(refused("stop web").starts_with("bad request: invalid JSON"));
    assert!(refused("\u{0}\u{ff}").starts_with("bad request: invalid JSON"));
    assert_eq!(
        refused(r#"{"op":"kill","name":"web"}"#),
        r#"bad request: op "kill" is not stop, start, restart or status"#
    );
    assert_eq!(
        refused(r#"{"op":"stop"}"#),
        "bad request: stop needs a name"
    );
    assert_eq!(
        refused(r#"{"op":"status","name":"web"}"#),
        "bad request: status takes no name"
    );
    assert!(refused(r#"{"op":"stop","name":"../etc"}"#).contains("name: a container id"));
    assert!(refused(r#"{"op":"stop","name":"a\u0000b"}"#).contains("name"));
    assert!(refused(r#"{"op":"stop","name":"web","force":true}"#).contains("invalid JSON"));
    assert!(refused(r#"{"op":"stop","name":"web"} {"op":"start"}"#).contains("trailing"));
    let long = format!(
        r#"{{"op":"stop","name":"{}"}}"#,
        "a".repeat(MAX_REQUEST_BYTES)
    );
    assert_eq!(
        refused(&long),
        format!("bad request: longer than {MAX_REQUEST_BYTES} bytes")
    );
    assert!(refused(&format!(r#"{{"op":"{}"}}"#, "s".repeat(100))).contains("op"));
    assert!(refused(r#"{"op":"stop","name":"web","name":"x"}"#).starts_with("bad request"));
}

#[test]
fn replies_round_trip() {
    assert_eq!(
        reply_line(Ok("web: stopping")),
        "{\"ok\":true,\"message\":\"web: stopping\"}\n"
    );
    assert_eq!(
        parse_reply(reply_line(Ok("web: stopping")).as_bytes()).unwrap(),
        "web: stopping"
    );
    let error = parse_reply(reply_line(Err("no container \"x\"\n")).as_bytes()).unwrap_err();
    assert_eq!(error.to_string(), "no container \"x\"\n");
    assert!(matches!(
        parse_reply(b"garbage").unwrap_err(),
        ControlError::BadReply(_)
    ));
    let status = status_reply(r#"{"pid":1,"containers":[]}"#);
    assert_eq!(parse_reply(status.as_bytes()).unwrap(), status.trim_end());
}

/// A server in a temporary directory, and a client connected to it.
fn server(test: &str) -> (crate::testutil::TempDir, Server) {
    let tmp = crate::testutil::TempDir::new(test);
    let server = Server::bind(tmp.path(), None).unwrap();
    (tmp, server)
}

fn connect(server: &Server) -> UnixStream {
    let stream = UnixStream::connect(server.path()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn reply_of(stream: &mut UnixStream) -> String {
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

const T0: Time = Duration::from_secs(100);

#[test]
fn the_socket_is_made_with_its_mode_and_removed() {
    let (tmp, server) = server("control-bind");
    let path = tmp.path().join(SOCKET_FILE);
    let meta = fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, SOCKET_MODE);
    // A second daemon of the same state directory does not take it over.
    assert!(matches!(
        Server::bind(tmp.path(), None),
        Err(ControlError::Taken { .. })
    ));
    drop(server);
    assert!(!path.exists());
    // A socket a dead daemon left is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let server = Server::bind(tmp.path(), None).unwrap();
    drop(server);
    // A client finds no daemon.
    let error = send(tmp.path(), &Request::Status).unwrap_err();
    assert!(matches!(error, ControlError::NoDaemon { .. }), "{error}");
    // --group: the socket's group (giving it away takes root).
    if crate::sys::is_root() {
        let server = Server::bind(tmp.path(), Some(65534)).unwrap();
        assert_eq!(fs::metadata(server.path()).unwrap().gid(), 65534);
    }
}

#[test]
fn a_request_is_served_and_answered() {
    let (_tmp, mut server) = server("control-serve");
    let mut client = connect(&server);
    client.write_all(b"{\"op\":\"stop\",").unwrap();
    assert!(server.service(T0).is_empty());
    client.write_all(b"\"name\":\"web\"}\n").unwrap();
    let requests = server.service(T0);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].1, Request::Stop(id("web")));
    server.reply(requests[0].0, reply_line(Ok("web: stopping")), T0);
    assert_eq!(
        reply_of(&mut client),
        "{\"ok\":true,\"message\":\"web: stopping\"}\n"
    );
    assert!(server.clients.is_empty());
}

#[test]
fn garbage_and_long_lines_get_an_error_and_are_closed() {
    let (_tmp, mut server) = server("control-garbage");
    let mut garbage = connect(&server);
    garbage.write_all(b"\x00\xff garbage\n").unwrap();
    let mut long = connect(&server);
    // No newline in the first MAX_REQUEST_BYTES + 1: never read further.
    long.write_all(&[b'{'; MAX_REQUEST_BYTES + 1]).unwrap();
    let mut huge = connect(&server);
    huge.write_all(&vec![b'{'; 64 * 1024]).unwrap();
    assert!(server.service(T0).is_empty());
    assert!(
        reply_of(&mut garbage).starts_with("{\"ok\":false,\"error\":\"bad request: invalid JSON")
    );
    assert_eq!(
        reply_of(&mut long),
        format!("{{\"ok\":false,\"error\":\"request longer than {MAX_REQUEST_BYTES} bytes\"}}\n")
    );
    // What it sent beyond is never read: the kernel resets the connection
    // when it closes, or the client reads the reply first.
    let mut rest = String::new();
    let _ = huge.read_to_string(&mut rest);
    assert!(rest.is_empty() || rest.contains("longer than"), "{rest}");
    assert!(server.clients.is_empty());
}

#[test]
fn a_silent_client_is_dropped_at_its_deadline() {
    let (_tmp, mut server) = server("control-silent");
    let mut silent = connect(&server);
    silent.write_all(b"{\"op\":").unwrap();
    assert!(server.service(T0).is_empty());
    assert_eq!(server.deadline(T0), Some(T0 + CLIENT_TIMEOUT));
    assert!(server.service(T0 + CLIENT_TIMEOUT / 2).is_empty());
    assert_eq!(server.clients.len(), 1);
    assert!(server.service(T0 + CLIENT_TIMEOUT).is_empty());
    assert!(server.clients.is_empty());
    assert_eq!(
        reply_of(&mut silent),
        "{\"ok\":false,\"error\":\"timed out waiting for a request line\"}\n"
    );
    // One that goes away before a whole line is dropped too.
    let gone = connect(&server);
    drop(gone);
    server.service(T0);
    server.service(T0);
    assert!(server.clients.is_empty());
}

#[test]
fn too_many_connections_are_closed_and_the_rest_served() {
    let (_tmp, mut server) = server("control-many");
    let held: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| connect(&server)).collect();
    let mut extra = connect(&server);
    assert!(server.service(T0).is_empty());
    assert_eq!(server.clients.len(), MAX_CLIENTS);
    // The extra one is closed without a word.
    assert_eq!(reply_of(&mut extra), "");
    let mut first = held.into_iter().next().unwrap();
    first.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let requests = server.service(T0);
    assert_eq!(requests.len(), 1);
    server.reply(requests[0].0, status_reply("{}"), T0);
    assert_eq!(reply_of(&mut first), "{\"ok\":true,\"status\":{}}\n");
}

#[test]
fn a_reply_larger_than_the_socket_buffer_is_written_as_read() {
    let (_tmp, mut server) = server("control-large");
    let mut client = connect(&server);
    client.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let requests = server.service(T0);
    let big = status_reply(&format!(
        "\"{}\"",
        "x".repeat(super::super::status::MAX_STATUS_BYTES - 2)
    ));
    server.reply(requests[0].0, big.clone(), T0);
    // Not all of it fits the socket's buffer: the rest waits for the reader.
    assert_eq!(server.clients.len(), 1);
    assert_eq!(server.deadline(T0), Some(T0 + WRITE_RETRY));
    let reader = std::thread::spawn(move || reply_of(&mut client));
    let mut now = T0;
    while !server.clients.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
        now += Duration::from_millis(1);
        server.service(now);
    }
    assert_eq!(reader.join().unwrap(), big);
}
