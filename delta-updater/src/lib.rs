//! Signed update metadata, binary deltas and the update client of husk.
//!
//! The device side (linked into `husk`): [`canonical`] (the check that signed
//! bytes are canonical JSON), [`metadata`] (the roles, their signatures and
//! bounded parsing), [`verify`] (the device's [`Verifier`] state machine) and
//! [`delta`] (applying a delta in bounded memory). The operator side, behind
//! the `publish` feature: the canonical writer, signing, delta computation and
//! the repository ([`repo`]) that `husk-publish` drives.

#![deny(unsafe_code)]

pub mod canonical;
pub mod delta;
pub mod digest;
pub mod metadata;
#[cfg(feature = "publish")]
pub mod repo;
#[cfg(feature = "publish")]
pub mod sign;
pub mod verify;

/// The JSON wire helpers of `husk` (bounded arrays, property paths in errors),
/// compiled here from the one source until they move to a crate both use.
#[allow(dead_code)]
#[path = "../../runtime/src/wire.rs"]
mod wire;

pub use digest::{Digest, DigestError};
pub use verify::Verifier;
