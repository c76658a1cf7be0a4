//! The files of the device's update agent and supervisor that a release or
//! an operator writes: the desired state (a release's, signed, or the
//! device's own), the update settings, and the agent's state file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = husk::daemon::desired::parse(data);
    let _ = husk::update::Config::parse(data);
    if let Ok(state) = husk::update::UpdateState::parse(data) {
        // What the agent writes back parses to the same.
        let again = husk::update::UpdateState::parse(state.to_json().as_bytes()).unwrap();
        assert_eq!(again, state);
    }
});
