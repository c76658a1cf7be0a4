//! Signing metadata (publishing side): keys and the signature envelope.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::canonical::Value;
use crate::digest::Digest;
use crate::metadata::{key_id, Blob, Release};

/// The envelope of `signed`, signed by each of `keys`: the bytes of a metadata file.
pub fn envelope(signed: &Value, keys: &[&SigningKey]) -> Vec<u8> {
    let bytes = signed.encode();
    let signatures = keys
        .iter()
        .map(|key| signature(&bytes, key))
        .collect::<Vec<_>>();
    let mut out = Vec::with_capacity(bytes.len() + 200 * keys.len() + 32);
    out.extend_from_slice(b"{\"signatures\":");
    out.extend_from_slice(&Value::Array(signatures).encode());
    out.extend_from_slice(b",\"signed\":");
    out.extend_from_slice(&bytes);
    out.push(b'}');
    out
}

/// One entry of `signatures`: `key`'s signature of `bytes`.
pub fn signature(bytes: &[u8], key: &SigningKey) -> Value {
    Value::object([
        ("keyid", Value::str(hex(&key_id(&key.verifying_key())))),
        ("sig", Value::str(hex(&key.sign(bytes).to_bytes()))),
    ])
}

/// The entry of root's `keys` for `key`.
pub fn public_key(public: &VerifyingKey) -> Value {
    Value::object([
        ("id", Value::str(hex(&key_id(public)))),
        ("public", Value::str(hex(public.as_bytes()))),
        ("scheme", Value::str("ed25519")),
    ])
}

/// The id of `key`, in hex.
pub fn key_id_hex(key: &SigningKey) -> String {
    hex(&key_id(&key.verifying_key()))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of one role in a root, and how many must sign.
pub struct RoleSpec {
    /// The role's public keys.
    pub keys: Vec<VerifyingKey>,
    /// How many of them must sign.
    pub threshold: u32,
}

/// The signed part of a root.
pub fn root(
    version: u64,
    expires: u64,
    root: &RoleSpec,
    timestamp: &RoleSpec,
    release: &RoleSpec,
) -> Value {
    let mut keys: Vec<VerifyingKey> = Vec::new();
    for key in root.keys.iter().chain(&timestamp.keys).chain(&release.keys) {
        if !keys.contains(key) {
            keys.push(*key);
        }
    }
    let role = |spec: &RoleSpec| {
        Value::object([
            (
                "keyids",
                Value::Array(
                    spec.keys
                        .iter()
                        .map(|k| Value::str(hex(&key_id(k))))
                        .collect(),
                ),
            ),
            ("threshold", Value::uint(spec.threshold.into())),
        ])
    };
    Value::object([
        ("type", Value::str("root")),
        ("version", Value::uint(version)),
        ("expires", Value::uint(expires)),
        ("keys", Value::Array(keys.iter().map(public_key).collect())),
        (
            "roles",
            Value::object([
                ("root", role(root)),
                ("timestamp", role(timestamp)),
                ("release", role(release)),
            ]),
        ),
    ])
}

/// The signed part of a timestamp naming `releases` (their metadata
/// files' bytes, parsed for their class, architecture and version).
pub fn timestamp(version: u64, expires: u64, releases: &[(&Release, &[u8])]) -> Value {
    Value::object([
        ("type", Value::str("timestamp")),
        ("version", Value::uint(version)),
        ("expires", Value::uint(expires)),
        (
            "releases",
            Value::Array(
                releases
                    .iter()
                    .map(|(r, bytes)| {
                        Value::object([
                            ("device_class", Value::str(&r.device_class)),
                            ("arch", Value::str(&r.arch)),
                            ("version", Value::uint(r.version)),
                            ("length", Value::uint(bytes.len() as u64)),
                            ("digest", Value::str(Digest::of(bytes).to_string())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// The signed part of a release; its desired state must be a JSON object.
pub fn release(r: &Release) -> Result<Value, JsonError> {
    let state = desired_state(&r.desired_state)?;
    let blob = |b: &Blob| {
        Value::object([
            ("digest", Value::str(b.digest.to_string())),
            ("size", Value::uint(b.size)),
        ])
    };
    let layers = r
        .layers
        .iter()
        .map(|l| {
            let deltas = l
                .deltas
                .iter()
                .map(|d| {
                    Value::object([
                        ("from", Value::str(d.from.to_string())),
                        ("algorithm", Value::str(d.algorithm.name())),
                        ("digest", Value::str(d.blob.digest.to_string())),
                        ("size", Value::uint(d.blob.size)),
                        ("memory", Value::uint(d.memory)),
                    ])
                })
                .collect();
            Value::object([
                ("diff_id", Value::str(l.diff_id.to_string())),
                ("size", Value::uint(l.size)),
                ("blob", blob(&l.blob)),
                ("deltas", Value::Array(deltas)),
            ])
        })
        .collect();
    Ok(Value::object([
        ("type", Value::str("release")),
        ("version", Value::uint(r.version)),
        ("expires", Value::uint(r.expires)),
        ("device_class", Value::str(&r.device_class)),
        ("arch", Value::str(&r.arch)),
        (
            "hardware",
            Value::Array(r.hardware.iter().map(Value::str).collect()),
        ),
        ("desired_state", state),
        ("layers", Value::Array(layers)),
    ]))
}

/// Why a JSON document (a desired state) cannot become canonical JSON.
#[derive(Debug)]
pub enum JsonError {
    /// It does not parse.
    Parse(serde_json::Error),
    /// It has a number that is not an integer in `i64`.
    NotAnInteger(String),
    /// It is not a JSON object.
    NotAnObject,
}

impl core::fmt::Display for JsonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "not JSON: {e}"),
            Self::NotAnInteger(n) => {
                write!(f, "{n} is not an integer (canonical JSON has no others)")
            }
            Self::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

impl std::error::Error for JsonError {}

/// A desired state: JSON text that must be an object.
pub fn desired_state(text: &str) -> Result<Value, JsonError> {
    let state = from_json(text)?;
    if !matches!(state, Value::Object(_)) {
        return Err(JsonError::NotAnObject);
    }
    Ok(state)
}

/// Any JSON text as a canonical [`Value`].
pub fn from_json(text: &str) -> Result<Value, JsonError> {
    let parsed: serde_json::Value = serde_json::from_str(text).map_err(JsonError::Parse)?;
    convert(parsed)
}

fn convert(v: serde_json::Value) -> Result<Value, JsonError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => Value::Int(
            n.as_i64()
                .ok_or_else(|| JsonError::NotAnInteger(n.to_string()))?,
        ),
        J::String(s) => Value::Str(s),
        J::Array(items) => Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?),
        J::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, convert(v)?)))
                .collect::<Result<_, JsonError>>()?,
        ),
    })
}
