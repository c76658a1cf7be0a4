//! Content addresses: `sha256:<64 lowercase hex>`, the OCI digest form.

use core::fmt;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// Length in bytes of a sha256 digest.
pub const SHA256_LEN: usize = 32;

/// A sha256 content address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; SHA256_LEN]);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// The algorithm prefix is missing or is not `sha256:`.
    Algorithm,
    /// The hex part does not have 64 characters.
    Length(usize),
    /// The hex part has a character outside `0-9a-f`.
    Hex,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Algorithm => f.write_str("digest must start with \"sha256:\""),
            Self::Length(n) => write!(f, "sha256 digest must have 64 hex digits, found {n}"),
            Self::Hex => f.write_str("sha256 digest must be lowercase hex"),
        }
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The digest of everything `reader` yields, read in bounded chunks.
    pub fn of_reader(mut reader: impl Read) -> io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(Self(hasher.finalize().into())),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let hex = s.strip_prefix("sha256:").ok_or(DigestError::Algorithm)?;
        if hex.len() != 2 * SHA256_LEN {
            return Err(DigestError::Length(hex.len()));
        }
        let mut out = [0u8; SHA256_LEN];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self(out))
    }

    /// The digest whose raw bytes are `bytes`.
    pub fn from_bytes(bytes: [u8; SHA256_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> &[u8; SHA256_LEN] {
        &self.0
    }
}

fn nibble(c: u8) -> Result<u8, DigestError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(DigestError::Hex),
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_known_value() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
    }

    #[test]
    fn reader_and_slice_agree_across_chunk_boundaries() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(Digest::of_reader(&data[..]).unwrap(), Digest::of(&data));
    }

    #[test]
    fn parse_round_trips() {
        assert_eq!(Digest::parse(EMPTY).unwrap().to_string(), EMPTY);
    }

    #[test]
    fn parse_rejects_malformed_digests() {
        assert_eq!(Digest::parse("md5:00"), Err(DigestError::Algorithm));
        assert_eq!(Digest::parse("sha256:abc"), Err(DigestError::Length(3)));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(Digest::parse(&upper), Err(DigestError::Hex));
    }
}
