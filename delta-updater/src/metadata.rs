//! Signed metadata, TUF-style: the `root`, `timestamp` and `release` roles,
//! their signature envelope and their bounded parsing.
//!
//! Every metadata file is one canonical JSON object (see [`crate::canonical`]):
//!
//! ```text
//! {"signatures":[{"keyid":"<hex sha256 of the public key>","sig":"<hex ed25519>"}],"signed":{...}}
//! ```
//!
//! The signatures cover the exact bytes of the value of `signed`. Nothing of
//! `signed` is parsed before a threshold of its role's keys has signed it:
//! [`open`] checks the size and that the whole file is canonical (a syntax
//! walk that builds nothing) and parses only the signature list;
//! [`Envelope::check`] verifies; only then do [`Root::parse`],
//! [`Timestamp::parse`] and [`Release::parse`] read the signed bytes, with
//! serde-json-core into bounded wire structs (every capacity a `MAX_*`
//! constant), converted once into the validated types here.
//!
//! Times are seconds since the Unix epoch, passed in by the caller.

use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::canonical::{self, CanonicalError};
use crate::digest::{Digest, SHA256_LEN};
use crate::wire::{Capped, Field, WireError};

/// Largest root metadata file.
pub const MAX_ROOT_LEN: usize = 16 * 1024;
/// Largest timestamp metadata file.
pub const MAX_TIMESTAMP_LEN: usize = 16 * 1024;
/// Largest release metadata file.
pub const MAX_RELEASE_LEN: usize = 256 * 1024;
/// Most signatures an envelope may carry.
pub const MAX_SIGNATURES: usize = 16;
/// Most keys a root lists.
pub const MAX_KEYS: usize = 16;
/// Most keys one role may name.
pub const MAX_ROLE_KEYS: usize = 8;
/// Most releases (device class and architecture pairs) one timestamp names.
pub const MAX_TIMESTAMP_RELEASES: usize = 32;
/// Most hardware names a release is compatible with.
pub const MAX_HARDWARE: usize = 16;
/// Most layers a release has.
pub const MAX_LAYERS: usize = 64;
/// Most deltas into one layer.
pub const MAX_DELTAS: usize = 8;
/// Longest device class, architecture or hardware name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest desired state, in bytes of canonical JSON.
pub const MAX_DESIRED_STATE_LEN: usize = 64 * 1024;

/// A key's id: the sha256 of its 32-byte ed25519 public key.
pub type KeyId = [u8; SHA256_LEN];

/// The three roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Keys and thresholds of every role.
    Root,
    /// Freshness: the current release of each device class and architecture.
    Timestamp,
    /// What one device class and architecture runs.
    Release,
}

impl Role {
    /// The name in metadata (`type`) and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Timestamp => "timestamp",
            Self::Release => "release",
        }
    }

    fn max_len(self) -> usize {
        match self {
            Self::Root => MAX_ROOT_LEN,
            Self::Timestamp => MAX_TIMESTAMP_LEN,
            Self::Release => MAX_RELEASE_LEN,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a metadata file was refused. Each variant names the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// The file is larger than the role's maximum.
    TooLarge {
        /// Which role's file.
        role: Role,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The file is not canonical JSON.
    NotCanonical {
        /// Which role's file.
        role: Role,
        /// Where and why.
        error: CanonicalError,
    },
    /// The top-level object is not exactly `signatures` and `signed`.
    Envelope {
        /// Which role's file.
        role: Role,
    },
    /// A part of the file did not parse.
    Parse {
        /// Which role's file.
        role: Role,
        /// `signatures` or `signed`.
        part: &'static str,
        /// The parser's message.
        error: serde_json_core::de::Error,
    },
    /// An array has more entries than its capacity.
    Wire {
        /// Which role's file.
        role: Role,
        /// Which array.
        error: WireError,
    },
    /// A value is malformed.
    Invalid {
        /// Which role's file.
        role: Role,
        /// The property.
        field: Field,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Fewer valid signatures by distinct keys of the role than its threshold.
    BelowThreshold {
        /// Which role's file.
        role: Role,
        /// The role whose keys were counted (for a new root, the old root's or its own).
        signer: &'static str,
        /// Distinct keys of that role with a valid signature.
        valid: usize,
        /// How many are needed.
        threshold: usize,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { role, len, max } => {
                write!(f, "{role} metadata: {len} bytes, more than {max}")
            }
            Self::NotCanonical { role, error } => write!(f, "{role} metadata: {error}"),
            Self::Envelope { role } => write!(
                f,
                "{role} metadata: the object must have exactly \"signatures\" and \"signed\""
            ),
            Self::Parse { role, part, error } => write!(f, "{role} metadata: {part}: {error}"),
            Self::Wire { role, error } => write!(f, "{role} metadata: {error}"),
            Self::Invalid {
                role,
                field,
                reason,
            } => write!(f, "{role} metadata: {field} {reason}"),
            Self::BelowThreshold {
                role,
                signer,
                valid,
                threshold,
            } => write!(
                f,
                "{role} metadata: signed by {valid} valid {signer} key(s), {threshold} needed"
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

/// A metadata file whose envelope was read and whose signatures are not yet checked.
pub struct Envelope<'a> {
    role: Role,
    signed: &'a [u8],
    signatures: heapless::Vec<(KeyId, Signature), MAX_SIGNATURES>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureWire<'a> {
    keyid: &'a str,
    sig: &'a str,
}

/// Reads the envelope of a `role` file: its size, that it is canonical, and its signatures.
pub fn open(role: Role, bytes: &[u8]) -> Result<Envelope<'_>, MetadataError> {
    let max = role.max_len();
    if bytes.len() > max {
        return Err(MetadataError::TooLarge {
            role,
            len: bytes.len(),
            max,
        });
    }
    let members = canonical::top_members(bytes)
        .map_err(|error| MetadataError::NotCanonical { role, error })?;
    let (Some(sigs), Some(signed), 2) = (
        canonical::member(&members, "signatures"),
        canonical::member(&members, "signed"),
        members.len(),
    ) else {
        return Err(MetadataError::Envelope { role });
    };
    let field = Field::new("signatures");
    let wire: Capped<SignatureWire<'_>, MAX_SIGNATURES> = parse(role, "signatures", sigs)?;
    let mut signatures = heapless::Vec::new();
    for (i, s) in wire
        .into_items(field)
        .map_err(|error| MetadataError::Wire { role, error })?
        .iter()
        .enumerate()
    {
        let keyid = hex::<SHA256_LEN>(s.keyid).ok_or(MetadataError::Invalid {
            role,
            field: field.at(i).member("keyid"),
            reason: "is not 64 lowercase hex digits",
        })?;
        let sig = hex::<64>(s.sig).ok_or(MetadataError::Invalid {
            role,
            field: field.at(i).member("sig"),
            reason: "is not 128 lowercase hex digits",
        })?;
        // Cannot fail: the wire array has the same capacity.
        let _ = signatures.push((keyid, Signature::from_bytes(&sig)));
    }
    Ok(Envelope {
        role,
        signed,
        signatures,
    })
}

impl<'a> Envelope<'a> {
    /// The signed bytes, for hashing; parse them only once [`Envelope::check`] passed.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed
    }

    /// Checks that at least `threshold` distinct keys among `keyids` (found
    /// in `keys`) signed the signed bytes; a key that signed twice counts once,
    /// a signature by a key not in `keyids` or that does not verify counts not at all.
    pub fn check(
        &self,
        keys: &Keys,
        role: &RoleKeys,
        signer: &'static str,
    ) -> Result<(), MetadataError> {
        let mut counted: heapless::Vec<KeyId, MAX_SIGNATURES> = heapless::Vec::new();
        for (keyid, sig) in &self.signatures {
            if counted.contains(keyid) || !role.keyids.contains(keyid) {
                continue;
            }
            let Some(key) = keys.get(keyid) else { continue };
            if key.verify_strict(self.signed, sig).is_ok() {
                let _ = counted.push(*keyid);
            }
        }
        if counted.len() < role.threshold {
            return Err(MetadataError::BelowThreshold {
                role: self.role,
                signer,
                valid: counted.len(),
                threshold: role.threshold,
            });
        }
        Ok(())
    }
}

/// The public keys of a root, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys(heapless::Vec<(KeyId, VerifyingKey), MAX_KEYS>);

impl Keys {
    /// The key with id `id`.
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// The id of a public key.
pub fn key_id(public: &VerifyingKey) -> KeyId {
    *Digest::of(public.as_bytes()).bytes()
}

/// Which keys sign for a role, and how many of them must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    keyids: heapless::Vec<KeyId, MAX_ROLE_KEYS>,
    threshold: usize,
}

impl RoleKeys {
    /// The ids of the role's keys.
    pub fn keyids(&self) -> &[KeyId] {
        &self.keyids
    }

    /// How many of them must sign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
}

/// A parsed root: the trusted keys of every role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Its version; root N+1 replaces root N.
    pub version: u64,
    /// When it stops being trusted.
    pub expires: u64,
    /// Every key a role names.
    pub keys: Keys,
    /// The root role.
    pub root: RoleKeys,
    /// The timestamp role.
    pub timestamp: RoleKeys,
    /// The release role.
    pub release: RoleKeys,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootWire<'a> {
    #[allow(dead_code)]
    #[serde(rename = "type")]
    kind: &'a str,
    version: u64,
    expires: u64,
    #[serde(borrow)]
    keys: Capped<KeyWire<'a>, MAX_KEYS>,
    #[serde(borrow)]
    roles: RolesWire<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyWire<'a> {
    id: &'a str,
    public: &'a str,
    scheme: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesWire<'a> {
    #[serde(borrow)]
    release: RoleWire<'a>,
    #[serde(borrow)]
    root: RoleWire<'a>,
    #[serde(borrow)]
    timestamp: RoleWire<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleWire<'a> {
    #[serde(borrow)]
    keyids: Capped<&'a str, MAX_ROLE_KEYS>,
    threshold: u32,
}

impl Root {
    /// Parses the signed bytes of a root whose signatures were checked.
    pub fn parse(signed: &[u8]) -> Result<Self, MetadataError> {
        let role = Role::Root;
        check_type(role, signed)?;
        let w: RootWire<'_> = parse(role, "signed", signed)?;
        let invalid = |field, reason| MetadataError::Invalid {
            role,
            field,
            reason,
        };
        let field = Field::new("keys");
        let mut keys = heapless::Vec::new();
        for (i, k) in wired(role, w.keys.into_items(field))?.iter().enumerate() {
            if k.scheme != "ed25519" {
                return Err(invalid(field.at(i).member("scheme"), "is not \"ed25519\""));
            }
            let public = hex::<32>(k.public)
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or(invalid(
                    field.at(i).member("public"),
                    "is not an ed25519 public key in 64 lowercase hex digits",
                ))?;
            let id = hex::<SHA256_LEN>(k.id).ok_or(invalid(
                field.at(i).member("id"),
                "is not 64 lowercase hex digits",
            ))?;
            if id != key_id(&public) {
                return Err(invalid(
                    field.at(i).member("id"),
                    "is not the sha256 of the public key",
                ));
            }
            if keys.iter().any(|(other, _)| *other == id) {
                return Err(invalid(field.at(i), "lists a key twice"));
            }
            let _ = keys.push((id, public));
        }
        let keys = Keys(keys);
        let role_keys = |w: RoleWire<'_>, name: &'static str| -> Result<RoleKeys, MetadataError> {
            let field = Field::new("roles").member(name).member("keyids");
            let mut keyids = heapless::Vec::new();
            for (i, id) in wired(role, w.keyids.into_items(field))?.iter().enumerate() {
                let id = hex::<SHA256_LEN>(id)
                    .filter(|id| keys.get(id).is_some())
                    .ok_or(invalid(field.at(i), "is not the id of a key in keys"))?;
                if keyids.contains(&id) {
                    return Err(invalid(field.at(i), "names a key twice"));
                }
                let _ = keyids.push(id);
            }
            let threshold = w.threshold as usize;
            if threshold == 0 || threshold > keyids.len() {
                return Err(invalid(
                    Field::new("roles").member(name).member("threshold"),
                    "must be at least 1 and at most the number of keyids",
                ));
            }
            Ok(RoleKeys { keyids, threshold })
        };
        Ok(Self {
            version: w.version,
            expires: w.expires,
            root: role_keys(w.roles.root, "root")?,
            timestamp: role_keys(w.roles.timestamp, "timestamp")?,
            release: role_keys(w.roles.release, "release")?,
            keys,
        })
    }
}

/// A parsed timestamp: the current release of each device class and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// Its version, never lower than the last one a device accepted.
    pub version: u64,
    /// When it stops being fresh.
    pub expires: u64,
    /// One entry per device class and architecture.
    pub releases: Vec<ReleaseRef>,
}

/// What the timestamp says of one release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRef {
    /// The device class.
    pub device_class: String,
    /// The architecture.
    pub arch: String,
    /// The release's version.
    pub version: u64,
    /// The length of the release metadata file.
    pub length: u64,
    /// The sha256 of the release metadata file.
    pub sha256: Digest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampWire<'a> {
    #[allow(dead_code)]
    #[serde(rename = "type")]
    kind: &'a str,
    version: u64,
    expires: u64,
    #[serde(borrow)]
    releases: Capped<ReleaseRefWire<'a>, MAX_TIMESTAMP_RELEASES>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRefWire<'a> {
    arch: &'a str,
    device_class: &'a str,
    digest: &'a str,
    length: u64,
    version: u64,
}

impl Timestamp {
    /// Parses the signed bytes of a timestamp whose signatures were checked.
    pub fn parse(signed: &[u8]) -> Result<Self, MetadataError> {
        let role = Role::Timestamp;
        check_type(role, signed)?;
        let w: TimestampWire<'_> = parse(role, "signed", signed)?;
        let field = Field::new("releases");
        let mut releases = Vec::new();
        for (i, r) in wired(role, w.releases.into_items(field))?
            .iter()
            .enumerate()
        {
            let at = field.at(i);
            releases.push(ReleaseRef {
                device_class: name(role, at.member("device_class"), r.device_class)?,
                arch: name(role, at.member("arch"), r.arch)?,
                version: r.version,
                length: r.length,
                sha256: digest(role, at.member("digest"), r.digest)?,
            });
        }
        Ok(Self {
            version: w.version,
            expires: w.expires,
            releases,
        })
    }
}

/// A parsed release: what one device class and architecture runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Its version, increasing with every release of this class and architecture.
    pub version: u64,
    /// When it stops being trusted.
    pub expires: u64,
    /// The device class.
    pub device_class: String,
    /// The architecture (as Rust's `std::env::consts::ARCH` names it).
    pub arch: String,
    /// The hardware it is compatible with.
    pub hardware: Vec<String>,
    /// The desired state: a canonical JSON object, opaque here (the supervisor defines it).
    pub desired_state: String,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// One layer of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The uncompressed tar's size.
    pub size: u64,
    /// The zstd-compressed tar.
    pub blob: Blob,
    /// Deltas into this layer.
    pub deltas: Vec<Delta>,
}

/// A blob of the repository, named by its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    /// Its content address, `blobs/sha256/<hex>`.
    pub digest: Digest,
    /// Its size: a download stops there.
    pub size: u64,
}

/// A delta into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// The diff_id of the layer it applies to.
    pub from: Digest,
    /// How it was computed.
    pub algorithm: crate::delta::Algorithm,
    /// The delta's blob.
    pub blob: Blob,
    /// Bytes of memory applying it needs.
    pub memory: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseWire<'a> {
    #[allow(dead_code)]
    #[serde(rename = "type")]
    kind: &'a str,
    version: u64,
    expires: u64,
    device_class: &'a str,
    arch: &'a str,
    #[serde(borrow)]
    hardware: Capped<&'a str, MAX_HARDWARE>,
    // Kept as bytes: its span is taken from the canonical check.
    #[allow(dead_code)]
    desired_state: IgnoredAny,
    #[serde(borrow)]
    layers: Capped<LayerWire<'a>, MAX_LAYERS>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerWire<'a> {
    diff_id: &'a str,
    size: u64,
    #[serde(borrow)]
    blob: BlobWire<'a>,
    #[serde(borrow)]
    deltas: Capped<DeltaWire<'a>, MAX_DELTAS>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobWire<'a> {
    digest: &'a str,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaWire<'a> {
    algorithm: &'a str,
    digest: &'a str,
    from: &'a str,
    memory: u64,
    size: u64,
}

impl Release {
    /// Parses the signed bytes of a release whose signatures were checked.
    pub fn parse(signed: &[u8]) -> Result<Self, MetadataError> {
        let role = Role::Release;
        check_type(role, signed)?;
        let w: ReleaseWire<'_> = parse(role, "signed", signed)?;
        let invalid = |field, reason| MetadataError::Invalid {
            role,
            field,
            reason,
        };
        let desired = Field::new("desired_state");
        let members = canonical::top_members(signed)
            .map_err(|error| MetadataError::NotCanonical { role, error })?;
        let state = canonical::member(&members, "desired_state")
            .filter(|s| s.first() == Some(&b'{'))
            .ok_or(invalid(desired, "is not an object"))?;
        if state.len() > MAX_DESIRED_STATE_LEN {
            return Err(MetadataError::Wire {
                role,
                error: WireError::TooLong {
                    field: desired,
                    max: MAX_DESIRED_STATE_LEN,
                },
            });
        }
        // Canonical JSON is UTF-8: the check walked every string.
        let desired_state =
            String::from_utf8(state.to_vec()).map_err(|_| invalid(desired, "is not UTF-8"))?;
        let field = Field::new("hardware");
        let hardware = wired(role, w.hardware.into_items(field))?
            .iter()
            .enumerate()
            .map(|(i, h)| name(role, field.at(i), h))
            .collect::<Result<Vec<_>, _>>()?;
        let field = Field::new("layers");
        let mut layers = Vec::new();
        for (i, l) in wired(role, w.layers.into_items(field))?
            .into_iter()
            .enumerate()
        {
            let at = field.at(i);
            let deltas_field = at.member("deltas");
            let mut deltas = Vec::new();
            for (j, d) in wired(role, l.deltas.into_items(deltas_field))?
                .iter()
                .enumerate()
            {
                let at = deltas_field.at(j);
                let from = digest(role, at.member("from"), d.from)?;
                // A delta of an algorithm this build does not know (one
                // published after it) is not for this device: it takes
                // another delta or the whole layer, as publishers intend.
                let Some(algorithm) = crate::delta::Algorithm::from_name(d.algorithm) else {
                    continue;
                };
                deltas.push(Delta {
                    from,
                    algorithm,
                    blob: Blob {
                        digest: digest(role, at.member("digest"), d.digest)?,
                        size: d.size,
                    },
                    memory: d.memory,
                });
            }
            layers.push(Layer {
                diff_id: digest(role, at.member("diff_id"), l.diff_id)?,
                size: l.size,
                blob: Blob {
                    digest: digest(role, at.member("blob"), l.blob.digest)?,
                    size: l.blob.size,
                },
                deltas,
            });
        }
        Ok(Self {
            version: w.version,
            expires: w.expires,
            device_class: name(role, Field::new("device_class"), w.device_class)?,
            arch: name(role, Field::new("arch"), w.arch)?,
            hardware,
            desired_state,
            layers,
        })
    }
}

fn parse<'a, T: Deserialize<'a>>(
    role: Role,
    part: &'static str,
    bytes: &'a [u8],
) -> Result<T, MetadataError> {
    match serde_json_core::from_slice::<T>(bytes) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(MetadataError::Parse {
            role,
            part,
            error: serde_json_core::de::Error::TrailingCharacters,
        }),
        Err(error) => Err(MetadataError::Parse { role, part, error }),
    }
}

fn wired<T>(role: Role, items: Result<T, WireError>) -> Result<T, MetadataError> {
    items.map_err(|error| MetadataError::Wire { role, error })
}

/// Checks the `type` member before anything else, so a file of one role
/// passed off as another's is refused as such (its wire struct would refuse
/// it too, with a less helpful message).
fn check_type(role: Role, signed: &[u8]) -> Result<(), MetadataError> {
    let members = canonical::top_members(signed)
        .map_err(|error| MetadataError::NotCanonical { role, error })?;
    let kind = canonical::member(&members, "type");
    let expected = role.name().as_bytes();
    let matches = kind.is_some_and(|k| {
        k.len() == expected.len() + 2 && k[0] == b'"' && &k[1..k.len() - 1] == expected
    });
    if !matches {
        return Err(MetadataError::Invalid {
            role,
            field: Field::new("type"),
            reason: match role {
                Role::Root => "is not \"root\"",
                Role::Timestamp => "is not \"timestamp\"",
                Role::Release => "is not \"release\"",
            },
        });
    }
    Ok(())
}

/// A device class, architecture or hardware name: it becomes part of a path,
/// so 1 to [`MAX_NAME_LEN`] of `A-Z a-z 0-9 . _ + -`, not starting with `.`.
fn name(role: Role, field: Field, s: &str) -> Result<String, MetadataError> {
    if is_name(s) {
        Ok(s.to_owned())
    } else {
        Err(MetadataError::Invalid {
            role,
            field,
            reason: "is not a name (1 to 64 of A-Z a-z 0-9 . _ + -, not starting with .)",
        })
    }
}

/// Whether `s` is a valid device class, architecture or hardware name.
pub fn is_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

fn digest(role: Role, field: Field, s: &str) -> Result<Digest, MetadataError> {
    Digest::parse(s).map_err(|_| MetadataError::Invalid {
        role,
        field,
        reason: "is not a sha256:<64 lowercase hex> digest",
    })
}

/// `N` bytes from exactly `2N` lowercase hex digits.
pub fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}
