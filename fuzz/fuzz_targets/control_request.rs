//! A request line on the daemon's control socket (`<root>/daemon.sock`),
//! and a reply line as `husk stop|start|restart` read it.
#![no_main]

use husk::daemon::control;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = control::parse_request(data) {
        // What parses is written back as the same request.
        let line = request.to_line();
        assert_eq!(control::parse_request(line.as_bytes()).ok(), Some(request));
    }
    let _ = control::parse_reply(data);
});
