//! Signed update metadata as the device sees it: the envelope of every role
//! (canonical JSON check, signatures) and the parsers of the signed bytes,
//! which the device reaches only after a threshold of signatures, fuzzed
//! here directly so that a key holder's mistake cannot crash a device.
#![no_main]

use delta_updater::metadata::{self, Release, Role, Root, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for role in [Role::Root, Role::Timestamp, Role::Release] {
        if let Ok(envelope) = metadata::open(role, data) {
            let signed = envelope.signed_bytes();
            let _ = Root::parse(signed);
            let _ = Timestamp::parse(signed);
            let _ = Release::parse(signed);
        }
    }
    let _ = Root::parse(data);
    let _ = Timestamp::parse(data);
    if let Ok(release) = Release::parse(data) {
        // What the agent does next with a release: its desired state.
        let _ = husk::daemon::desired::parse(release.desired_state.as_bytes());
    }
});
