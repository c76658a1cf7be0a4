//! The device's [`Verifier`]: from a trusted root to one release it may install.
//!
//! ```text
//! trusted root ──rotate_root(N+1)*──▶ timestamp ──▶ release
//! ```
//!
//! - **root**: the device's trusted root is checked against its own root keys;
//!   root N+1 must be signed by a threshold of root N's root keys *and* of
//!   its own, and have version N+1. Intermediate roots may have expired; the
//!   last one may not when a timestamp is checked.
//! - **timestamp**: a threshold of the timestamp role's keys; not expired;
//!   version not lower than the last one accepted (rollback); it must name
//!   this device's class and architecture, with a release version not lower
//!   than the installed one.
//! - **release**: its length and sha256 exactly what the timestamp says
//!   (mix-and-match); a threshold of the release role's keys (so the online
//!   timestamp key alone can install nothing); the version the timestamp
//!   named; not lower than the installed one, and if equal, the same bytes
//!   (rollback); not expired (freeze); this device's class, architecture and
//!   hardware.
//!
//! Time is passed in; it never goes below [`Seen::time_floor`], the latest
//! time the device has accepted metadata at, so a device without a real-time
//! clock that boots in 1970 is not fooled into accepting expired metadata.
//! What the verifier has seen ([`Seen`]) is for the caller to persist.

use core::fmt;

use crate::digest::Digest;
use crate::metadata::{self, Envelope, MetadataError, Release, ReleaseRef, Role, Root, Timestamp};

/// Who the device is: what a release must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its device class.
    pub class: String,
    /// Its architecture.
    pub arch: String,
    /// Its hardware name, which a release must list.
    pub hardware: String,
}

/// What a device has accepted, persisted across updates and boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// The highest timestamp version accepted.
    pub timestamp_version: u64,
    /// The installed release's version (0: none).
    pub release_version: u64,
    /// The sha256 of the installed release's metadata file.
    pub release_sha256: Option<Digest>,
    /// The latest time metadata was accepted at; time never goes below it.
    pub time_floor: u64,
}

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The file itself was refused: size, encoding, signatures or content.
    Metadata(MetadataError),
    /// A new root's version is not the current one plus one.
    RootVersion {
        /// The current root's version.
        current: u64,
        /// The new root's version.
        found: u64,
    },
    /// Metadata expired.
    Expired {
        /// Which role.
        role: Role,
        /// Its expiry.
        expires: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// A version is lower than one already accepted.
    Rollback {
        /// Which role.
        role: Role,
        /// The version offered.
        found: u64,
        /// The version accepted before.
        seen: u64,
    },
    /// A release with the installed version but other bytes.
    SameVersionOtherContent {
        /// The version.
        version: u64,
    },
    /// The timestamp names no release for this device class and architecture.
    NoReleaseForDevice {
        /// The device class.
        class: String,
        /// The architecture.
        arch: String,
    },
    /// A release was offered before a timestamp was accepted.
    NoTimestamp,
    /// The release file is not the one the timestamp names.
    ReleaseMismatch {
        /// What differs: `length` or `sha256`.
        what: &'static str,
    },
    /// The release's version is not the one the timestamp names.
    ReleaseVersion {
        /// The version the timestamp names.
        expected: u64,
        /// The release's own version.
        found: u64,
    },
    /// The release is for another device.
    WrongDevice {
        /// `device_class`, `arch` or `hardware`.
        what: &'static str,
        /// The device's value.
        device: String,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Metadata(e) => e.fmt(f),
            Self::RootVersion { current, found } => write!(
                f,
                "root metadata: version {found} does not follow the trusted version {current}"
            ),
            Self::Expired { role, expires, now } => {
                write!(f, "{role} metadata: expired at {expires}, now is {now}")
            }
            Self::Rollback { role, found, seen } => write!(
                f,
                "{role} metadata: version {found} is lower than version {seen} already accepted"
            ),
            Self::SameVersionOtherContent { version } => write!(
                f,
                "release metadata: version {version} is installed with other content"
            ),
            Self::NoReleaseForDevice { class, arch } => write!(
                f,
                "timestamp metadata: no release for device class {class} on {arch}"
            ),
            Self::NoTimestamp => f.write_str("release metadata: no timestamp accepted before it"),
            Self::ReleaseMismatch { what } => write!(
                f,
                "release metadata: its {what} is not the one the timestamp names"
            ),
            Self::ReleaseVersion { expected, found } => write!(
                f,
                "release metadata: version {found}, the timestamp names version {expected}"
            ),
            Self::WrongDevice { what, device } => write!(
                f,
                "release metadata: {what} does not match this device's {device}"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<MetadataError> for VerifyError {
    fn from(e: MetadataError) -> Self {
        Self::Metadata(e)
    }
}

/// The state machine that takes a device from its trusted root to a release.
#[derive(Debug)]
pub struct Verifier {
    root: Root,
    device: Device,
    seen: Seen,
    pending: Option<ReleaseRef>,
}

impl Verifier {
    /// Starts from the device's trusted root file (which must be signed by a
    /// threshold of its own root keys) and what the device has seen.
    pub fn new(root: &[u8], device: Device, seen: Seen) -> Result<Self, VerifyError> {
        let envelope = metadata::open(Role::Root, root)?;
        // The trusted root's keys are not known before it is parsed: it was
        // installed by the device's maker. Check it against itself all the same.
        let parsed = Root::parse(envelope.signed_bytes())?;
        envelope.check(&parsed.keys, &parsed.root, "root")?;
        Ok(Self {
            root: parsed,
            device,
            seen,
            pending: None,
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// What has been accepted, to persist.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// Replaces the trusted root with root N+1 (`bytes`).
    pub fn rotate_root(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        let envelope = metadata::open(Role::Root, bytes)?;
        // The old keys first: nothing of the new root is parsed before they signed it.
        envelope.check(&self.root.keys, &self.root.root, "trusted root")?;
        let next = Root::parse(envelope.signed_bytes())?;
        envelope.check(&next.keys, &next.root, "new root")?;
        if Some(next.version) != self.root.version.checked_add(1) {
            return Err(VerifyError::RootVersion {
                current: self.root.version,
                found: next.version,
            });
        }
        self.root = next;
        self.pending = None;
        Ok(())
    }

    /// Checks a timestamp file at time `now` and returns what it says of this
    /// device's release. The next [`Verifier::release`] must be that file.
    pub fn timestamp(&mut self, bytes: &[u8], now: u64) -> Result<ReleaseRef, VerifyError> {
        let now = now.max(self.seen.time_floor);
        fresh(Role::Root, self.root.expires, now)?;
        let envelope = metadata::open(Role::Timestamp, bytes)?;
        envelope.check(&self.root.keys, &self.root.timestamp, "timestamp")?;
        let ts = Timestamp::parse(envelope.signed_bytes())?;
        fresh(Role::Timestamp, ts.expires, now)?;
        not_lower(Role::Timestamp, ts.version, self.seen.timestamp_version)?;
        let entry = ts
            .releases
            .into_iter()
            .find(|r| r.device_class == self.device.class && r.arch == self.device.arch)
            .ok_or_else(|| VerifyError::NoReleaseForDevice {
                class: self.device.class.clone(),
                arch: self.device.arch.clone(),
            })?;
        not_lower(Role::Release, entry.version, self.seen.release_version)?;
        self.seen.timestamp_version = ts.version;
        self.seen.time_floor = now;
        self.pending = Some(entry.clone());
        Ok(entry)
    }

    /// Checks the release file the last timestamp named, at time `now`.
    /// On success the release counts as seen: the caller installs it, or
    /// keeps the previous [`Seen`] if it does not.
    pub fn release(&mut self, bytes: &[u8], now: u64) -> Result<Release, VerifyError> {
        let now = now.max(self.seen.time_floor);
        let expected = self.pending.as_ref().ok_or(VerifyError::NoTimestamp)?;
        if bytes.len() as u64 != expected.length {
            return Err(VerifyError::ReleaseMismatch { what: "length" });
        }
        let sha256 = Digest::of(bytes);
        if sha256 != expected.sha256 {
            return Err(VerifyError::ReleaseMismatch { what: "sha256" });
        }
        let envelope: Envelope<'_> = metadata::open(Role::Release, bytes)?;
        envelope.check(&self.root.keys, &self.root.release, "release")?;
        let release = Release::parse(envelope.signed_bytes())?;
        if release.version != expected.version {
            return Err(VerifyError::ReleaseVersion {
                expected: expected.version,
                found: release.version,
            });
        }
        not_lower(Role::Release, release.version, self.seen.release_version)?;
        if release.version == self.seen.release_version
            && self.seen.release_sha256.is_some_and(|seen| seen != sha256)
        {
            return Err(VerifyError::SameVersionOtherContent {
                version: release.version,
            });
        }
        fresh(Role::Release, release.expires, now)?;
        let device = &self.device;
        if release.device_class != device.class {
            return Err(wrong("device_class", &device.class));
        }
        if release.arch != device.arch {
            return Err(wrong("arch", &device.arch));
        }
        if !release.hardware.contains(&device.hardware) {
            return Err(wrong("hardware", &device.hardware));
        }
        self.seen.release_version = release.version;
        self.seen.release_sha256 = Some(sha256);
        self.seen.time_floor = now;
        self.pending = None;
        Ok(release)
    }
}

fn wrong(what: &'static str, device: &str) -> VerifyError {
    VerifyError::WrongDevice {
        what,
        device: device.to_owned(),
    }
}

fn fresh(role: Role, expires: u64, now: u64) -> Result<(), VerifyError> {
    if now >= expires {
        return Err(VerifyError::Expired { role, expires, now });
    }
    Ok(())
}

fn not_lower(role: Role, found: u64, seen: u64) -> Result<(), VerifyError> {
    if found < seen {
        return Err(VerifyError::Rollback { role, found, seen });
    }
    Ok(())
}

#[cfg(all(test, feature = "publish"))]
mod tests {
    use super::*;
    use crate::canonical::Value;
    use crate::delta::Algorithm;
    use crate::metadata::{Blob, Delta, Layer, MetadataError};
    use crate::sign::{self, RoleSpec};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn spec(keys: &[&SigningKey], threshold: u32) -> RoleSpec {
        RoleSpec {
            keys: keys.iter().map(|k| k.verifying_key()).collect(),
            threshold,
        }
    }

    /// Root keys 1 and 2 (threshold 2), timestamp key 10, release keys 20, 21 (threshold 1).
    fn root_v(version: u64, root_keys: &[&SigningKey], signers: &[&SigningKey]) -> Vec<u8> {
        let value = sign::root(
            version,
            NOW + 365 * DAY,
            &spec(root_keys, 2.min(root_keys.len() as u32)),
            &spec(&[&key(10)], 1),
            &spec(&[&key(20), &key(21)], 1),
        );
        sign::envelope(&value, signers)
    }

    fn root1() -> Vec<u8> {
        root_v(1, &[&key(1), &key(2)], &[&key(1), &key(2)])
    }

    fn device() -> Device {
        Device {
            class: "gateway".into(),
            arch: "aarch64".into(),
            hardware: "rpi4".into(),
        }
    }

    fn release_struct(version: u64) -> Release {
        let digest = |n: u8| Digest::of(&[n]);
        Release {
            version,
            expires: NOW + 30 * DAY,
            device_class: "gateway".into(),
            arch: "aarch64".into(),
            hardware: vec!["rpi4".into(), "cm4".into()],
            desired_state: r#"{"containers":[{"image":"x","name":"app"}]}"#.into(),
            layers: vec![Layer {
                diff_id: digest(1),
                size: 1000,
                blob: Blob {
                    digest: digest(2),
                    size: 400,
                },
                deltas: vec![Delta {
                    from: digest(3),
                    algorithm: Algorithm::TarFiles,
                    blob: Blob {
                        digest: digest(4),
                        size: 40,
                    },
                    memory: 5_000_000,
                }],
            }],
        }
    }

    fn release_bytes(r: &Release, signers: &[&SigningKey]) -> Vec<u8> {
        sign::envelope(&sign::release(r).unwrap(), signers)
    }

    fn timestamp_bytes(version: u64, expires: u64, release: &Release, bytes: &[u8]) -> Vec<u8> {
        sign::envelope(
            &sign::timestamp(version, expires, &[(release, bytes)]),
            &[&key(10)],
        )
    }

    fn verifier() -> Verifier {
        Verifier::new(&root1(), device(), Seen::default()).unwrap()
    }

    /// A verifier that accepted timestamp 5 and release 3.
    fn updated() -> (Verifier, Release, Vec<u8>) {
        let mut v = verifier();
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(20)]);
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        v.release(&bytes, NOW).unwrap();
        (v, r, bytes)
    }

    fn below_threshold(e: VerifyError) -> (usize, usize) {
        match e {
            VerifyError::Metadata(MetadataError::BelowThreshold {
                valid, threshold, ..
            }) => (valid, threshold),
            other => panic!("expected a threshold error, got {other}"),
        }
    }

    #[test]
    fn a_good_chain_gives_the_release_and_records_what_was_seen() {
        let (v, r, bytes) = updated();
        let seen = v.seen();
        assert_eq!(seen.timestamp_version, 5);
        assert_eq!(seen.release_version, 3);
        assert_eq!(seen.release_sha256, Some(Digest::of(&bytes)));
        assert_eq!(seen.time_floor, NOW);
        let mut v = verifier();
        let entry = v
            .timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        assert_eq!((entry.version, entry.length), (3, bytes.len() as u64));
        let got = v.release(&bytes, NOW).unwrap();
        assert_eq!(got, r);
        // A desired state as an operator writes it comes back canonical.
        let mut loose = release_struct(3);
        loose.desired_state = r#"{ "containers": [ {"name": "app", "image": "x"} ] }"#.into();
        let loose_bytes = release_bytes(&loose, &[&key(20)]);
        let mut v = verifier();
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &loose, &loose_bytes), NOW)
            .unwrap();
        assert_eq!(
            v.release(&loose_bytes, NOW).unwrap().desired_state,
            r.desired_state
        );
    }

    /// A release that offers a delta of an algorithm newer than the
    /// device is still installable: the device skips that delta.
    #[test]
    fn a_delta_of_an_unknown_algorithm_is_skipped_not_fatal() {
        let r = release_struct(3);
        let mut value = sign::release(&r).unwrap();
        let mut renamed = 0;
        rename_algorithms(&mut value, "tar-files-v9", &mut renamed);
        assert_eq!(renamed, 1);
        let bytes = sign::envelope(&value, &[&key(20)]);
        let mut v = verifier();
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        let got = v.release(&bytes, NOW).unwrap();
        let mut expected = r.clone();
        expected.layers[0].deltas.clear();
        assert_eq!(got, expected);
    }

    fn rename_algorithms(value: &mut Value, name: &str, count: &mut usize) {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    if key == "algorithm" {
                        *member = Value::str(name);
                        *count += 1;
                    } else {
                        rename_algorithms(member, name, count);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    rename_algorithms(item, name, count);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn a_release_signed_by_a_wrong_key_is_refused() {
        let mut v = verifier();
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(99)]);
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        assert_eq!(below_threshold(v.release(&bytes, NOW).unwrap_err()), (0, 1));
    }

    #[test]
    fn the_timestamp_key_alone_cannot_install_a_release() {
        let mut v = verifier();
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(10)]);
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        let e = v.release(&bytes, NOW).unwrap_err();
        assert_eq!(
            e.to_string(),
            "release metadata: signed by 0 valid release key(s), 1 needed"
        );
    }

    #[test]
    fn a_release_file_passed_off_as_a_timestamp_is_refused_by_its_type() {
        // A key that signs for both roles cannot turn one role's file into the other.
        let both = sign::root(
            1,
            NOW + DAY,
            &spec(&[&key(1)], 1),
            &spec(&[&key(10)], 1),
            &spec(&[&key(10)], 1),
        );
        let mut v = Verifier::new(
            &sign::envelope(&both, &[&key(1)]),
            device(),
            Seen::default(),
        )
        .unwrap();
        let bytes = release_bytes(&release_struct(3), &[&key(10)]);
        let e = v.timestamp(&bytes, NOW).unwrap_err();
        assert!(e.to_string().contains("type is not \"timestamp\""), "{e}");
    }

    #[test]
    fn root_signatures_below_threshold_are_refused_and_a_duplicate_counts_once() {
        let one = root_v(1, &[&key(1), &key(2)], &[&key(1)]);
        let e = Verifier::new(&one, device(), Seen::default()).unwrap_err();
        assert_eq!(below_threshold(e), (1, 2));
        let twice = root_v(1, &[&key(1), &key(2)], &[&key(1), &key(1)]);
        let e = Verifier::new(&twice, device(), Seen::default()).unwrap_err();
        assert_eq!(below_threshold(e), (1, 2));
    }

    #[test]
    fn a_signature_over_other_bytes_does_not_count() {
        let good = root1();
        // Keep the signatures, change one byte of the signed part (expires).
        let text = String::from_utf8(good).unwrap();
        let pos = text.find("\"expires\":").unwrap() + 10;
        let mut bytes = text.into_bytes();
        bytes[pos] = if bytes[pos] == b'9' { b'8' } else { b'9' };
        let e = Verifier::new(&bytes, device(), Seen::default()).unwrap_err();
        assert_eq!(below_threshold(e), (0, 2));
    }

    #[test]
    fn root_rotation_needs_both_the_old_and_the_new_keys() {
        let new_keys = [&key(3), &key(4)];
        // Valid: both old keys and both new keys.
        let mut v = verifier();
        let rotated = root_v(2, &new_keys, &[&key(1), &key(2), &key(3), &key(4)]);
        v.rotate_root(&rotated).unwrap();
        assert_eq!(v.root().version, 2);
        // Root 3 signed by the keys of root 1 only is refused now.
        let stale = root_v(3, &new_keys, &[&key(1), &key(2)]);
        assert_eq!(below_threshold(v.rotate_root(&stale).unwrap_err()), (0, 2));

        // Only the new keys: the old root's threshold is not met.
        let mut v = verifier();
        let e = v
            .rotate_root(&root_v(2, &new_keys, &[&key(3), &key(4)]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "root metadata: signed by 0 valid trusted root key(s), 2 needed"
        );
        // Only the old keys: the new root's own threshold is not met.
        let e = v
            .rotate_root(&root_v(2, &new_keys, &[&key(1), &key(2)]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "root metadata: signed by 0 valid new root key(s), 2 needed"
        );
        // Skipping a version, or replaying the same one, is refused.
        for version in [1, 3] {
            let e = v
                .rotate_root(&root_v(
                    version,
                    &new_keys,
                    &[&key(1), &key(2), &key(3), &key(4)],
                ))
                .unwrap_err();
            assert_eq!(
                e,
                VerifyError::RootVersion {
                    current: 1,
                    found: version
                }
            );
        }
        assert_eq!(v.root().version, 1);
    }

    #[test]
    fn expired_metadata_is_refused_and_time_never_goes_back() {
        let mut v = verifier();
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(20)]);
        let ts = timestamp_bytes(5, NOW + DAY, &r, &bytes);
        let e = v.timestamp(&ts, NOW + DAY).unwrap_err();
        assert_eq!(
            e,
            VerifyError::Expired {
                role: Role::Timestamp,
                expires: NOW + DAY,
                now: NOW + DAY
            }
        );
        // An expired release behind a fresh timestamp.
        let mut old = release_struct(3);
        old.expires = NOW - 1;
        let old_bytes = release_bytes(&old, &[&key(20)]);
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &old, &old_bytes), NOW)
            .unwrap();
        assert!(matches!(
            v.release(&old_bytes, NOW).unwrap_err(),
            VerifyError::Expired {
                role: Role::Release,
                ..
            }
        ));
        // A device whose clock went back to 1970 keeps its floor.
        let seen = Seen {
            time_floor: NOW + DAY,
            ..Seen::default()
        };
        let mut v = Verifier::new(&root1(), device(), seen).unwrap();
        assert!(matches!(
            v.timestamp(&ts, 0).unwrap_err(),
            VerifyError::Expired { now, .. } if now == NOW + DAY
        ));
    }

    #[test]
    fn rollback_of_timestamp_or_release_versions_is_refused() {
        let (mut v, _, _) = updated();
        // An older timestamp.
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(20)]);
        let e = v
            .timestamp(&timestamp_bytes(4, NOW + DAY, &r, &bytes), NOW)
            .unwrap_err();
        assert_eq!(
            e,
            VerifyError::Rollback {
                role: Role::Timestamp,
                found: 4,
                seen: 5
            }
        );
        // A new timestamp naming an older release.
        let r2 = release_struct(2);
        let bytes2 = release_bytes(&r2, &[&key(20)]);
        let e = v
            .timestamp(&timestamp_bytes(6, NOW + DAY, &r2, &bytes2), NOW)
            .unwrap_err();
        assert_eq!(
            e,
            VerifyError::Rollback {
                role: Role::Release,
                found: 2,
                seen: 3
            }
        );
        // The same release version with other content.
        let mut other = release_struct(3);
        other.hardware.push("x86".into());
        let other_bytes = release_bytes(&other, &[&key(20)]);
        v.timestamp(&timestamp_bytes(6, NOW + DAY, &other, &other_bytes), NOW)
            .unwrap();
        assert_eq!(
            v.release(&other_bytes, NOW).unwrap_err(),
            VerifyError::SameVersionOtherContent { version: 3 }
        );
        // The same release again is accepted (nothing changed).
        v.timestamp(&timestamp_bytes(7, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        v.release(&bytes, NOW).unwrap();
    }

    #[test]
    fn a_release_other_than_the_timestamp_names_is_refused() {
        let mut v = verifier();
        let r = release_struct(3);
        let bytes = release_bytes(&r, &[&key(20)]);
        let r4 = release_struct(4);
        let bytes4 = release_bytes(&r4, &[&key(20)]);
        assert_eq!(
            v.release(&bytes4, NOW).unwrap_err(),
            VerifyError::NoTimestamp
        );
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        // Same length, other bytes: the sha256 differs.
        assert_eq!(bytes4.len(), bytes.len());
        assert_eq!(
            v.release(&bytes4, NOW).unwrap_err(),
            VerifyError::ReleaseMismatch { what: "sha256" }
        );
        let mut longer = r.clone();
        longer.hardware.push("x".into());
        let longer_bytes = release_bytes(&longer, &[&key(20)]);
        assert_eq!(
            v.release(&longer_bytes, NOW).unwrap_err(),
            VerifyError::ReleaseMismatch { what: "length" }
        );
        // A timestamp that lies about the version of the release it names.
        let lying = sign::envelope(
            &sign::timestamp(6, NOW + DAY, &[(&r4, &bytes)]),
            &[&key(10)],
        );
        v.timestamp(&lying, NOW).unwrap();
        assert_eq!(
            v.release(&bytes, NOW).unwrap_err(),
            VerifyError::ReleaseVersion {
                expected: 4,
                found: 3
            }
        );
    }

    #[test]
    fn a_release_for_another_device_is_refused() {
        type Change = fn(&mut Release);
        let cases: [(&str, Change); 3] = [
            ("arch", |r| r.arch = "armv7".into()),
            ("device_class", |r| r.device_class = "camera".into()),
            ("hardware", |r| r.hardware = vec!["cm4".into()]),
        ];
        for (what, change) in cases {
            let mut r = release_struct(3);
            change(&mut r);
            let bytes = release_bytes(&r, &[&key(20)]);
            let mut v = verifier();
            let ts = sign::envelope(
                &sign::timestamp(5, NOW + DAY, &[(&release_struct(3), &bytes[..])]),
                &[&key(10)],
            );
            v.timestamp(&ts, NOW).unwrap();
            let e = v.release(&bytes, NOW).unwrap_err();
            assert!(
                matches!(e, VerifyError::WrongDevice { what: w, .. } if w == what),
                "{e}"
            );
        }
        // A timestamp without this device's class and architecture.
        let mut other = release_struct(3);
        other.arch = "riscv64".into();
        let bytes = release_bytes(&other, &[&key(20)]);
        let e = verifier()
            .timestamp(&timestamp_bytes(5, NOW + DAY, &other, &bytes), NOW)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timestamp metadata: no release for device class gateway on aarch64"
        );
    }

    #[test]
    fn non_canonical_bytes_are_refused_before_any_signature_check() {
        let good = root1();
        let text = String::from_utf8(good).unwrap();
        let spaced = text.replacen("\"signed\":{", "\"signed\": {", 1);
        let e = Verifier::new(spaced.as_bytes(), device(), Seen::default()).unwrap_err();
        assert!(
            matches!(e, VerifyError::Metadata(MetadataError::NotCanonical { .. })),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("root metadata: not canonical JSON at byte "));
        // An extra member in the envelope.
        let extra = text.replacen("{\"signatures\"", "{\"a\":1,\"signatures\"", 1);
        assert_eq!(
            Verifier::new(extra.as_bytes(), device(), Seen::default()).unwrap_err(),
            VerifyError::Metadata(MetadataError::Envelope { role: Role::Root })
        );
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let big = vec![b' '; metadata::MAX_TIMESTAMP_LEN + 1];
        assert_eq!(
            verifier().timestamp(&big, NOW).unwrap_err().to_string(),
            format!(
                "timestamp metadata: {} bytes, more than {}",
                metadata::MAX_TIMESTAMP_LEN + 1,
                metadata::MAX_TIMESTAMP_LEN
            )
        );
        // More layers than the wire struct holds, signed and all.
        let mut r = release_struct(3);
        r.layers = vec![r.layers[0].clone(); metadata::MAX_LAYERS + 1];
        let bytes = release_bytes(&r, &[&key(20)]);
        let mut v = verifier();
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        assert_eq!(
            v.release(&bytes, NOW).unwrap_err().to_string(),
            format!(
                "release metadata: layers has more than {} entries",
                metadata::MAX_LAYERS
            )
        );
        // More signatures than the envelope holds.
        let signers: Vec<SigningKey> = (0..=metadata::MAX_SIGNATURES as u8).map(key).collect();
        let refs: Vec<&SigningKey> = signers.iter().collect();
        let many = root_v(1, &[&key(1), &key(2)], &refs);
        assert_eq!(
            Verifier::new(&many, device(), Seen::default())
                .unwrap_err()
                .to_string(),
            format!(
                "root metadata: signatures has more than {} entries",
                metadata::MAX_SIGNATURES
            )
        );
        // A desired state larger than its maximum.
        let mut r = release_struct(3);
        r.desired_state = format!(
            "{{\"a\":\"{}\"}}",
            "x".repeat(metadata::MAX_DESIRED_STATE_LEN)
        );
        let bytes = release_bytes(&r, &[&key(20)]);
        let mut v = verifier();
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        assert_eq!(
            v.release(&bytes, NOW).unwrap_err().to_string(),
            format!(
                "release metadata: desired_state is longer than {} bytes",
                metadata::MAX_DESIRED_STATE_LEN
            )
        );
    }

    #[test]
    fn malformed_values_name_their_property() {
        let mut r = release_struct(3);
        r.hardware = vec!["../etc".into()];
        let bytes = release_bytes(&r, &[&key(20)]);
        let mut v = verifier();
        v.timestamp(&timestamp_bytes(5, NOW + DAY, &r, &bytes), NOW)
            .unwrap();
        let e = v.release(&bytes, NOW).unwrap_err().to_string();
        assert!(
            e.starts_with("release metadata: hardware[0] is not a name"),
            "{e}"
        );
        // An unknown member in the signed part is refused, not ignored.
        let value = sign::release(&release_struct(3)).unwrap();
        let Value::Object(mut members) = value else {
            unreachable!()
        };
        members.push(("zzz".into(), Value::Null));
        let bytes = sign::envelope(&Value::Object(members), &[&key(20)]);
        let mut v = verifier();
        v.timestamp(
            &timestamp_bytes(5, NOW + DAY, &release_struct(3), &bytes),
            NOW,
        )
        .unwrap();
        let e = v.release(&bytes, NOW).unwrap_err().to_string();
        assert!(e.starts_with("release metadata: signed: "), "{e}");
    }
}
