//! Signed update metadata, binary deltas and the update client of husk.
//!
//! Always: [`digest`] (sha256 content addresses, which husk's image store
//! shares) and [`canonical`] (the check that signed bytes are canonical JSON).
//! The device side, behind the `device` feature (the update agent of `husk`
//! will link it): `metadata` (the roles, their signatures and bounded
//! parsing), `verify` (the device's `Verifier` state machine) and `delta`
//! (applying a delta in bounded memory) and `fetch` (the transport: HTTP and
//! directory sources, resumable blob downloads) and `archive` (image archives
//! indexed and read in place, shared with husk's image import). The operator side, behind `publish`
//! (which implies `device`): the canonical writer, signing, delta computation
//! the images of a release (`image`) and the repository (`repo`) that
//! `husk-publish` drives.

#![deny(unsafe_code)]

#[cfg(feature = "device")]
pub mod archive;
pub mod canonical;
#[cfg(feature = "device")]
pub mod delta;
pub mod digest;
#[cfg(feature = "device")]
pub mod fetch;
#[cfg(feature = "publish")]
pub mod image;
#[cfg(feature = "device")]
pub mod metadata;
#[cfg(feature = "publish")]
pub mod push;
#[cfg(feature = "publish")]
pub mod repo;
#[cfg(feature = "publish")]
pub mod serve;
#[cfg(feature = "publish")]
pub mod sign;
#[cfg(feature = "device")]
pub mod verify;

/// The JSON wire helpers of `husk` (bounded arrays, property paths in errors),
/// compiled here from the one source until they move to a crate both use.
#[allow(dead_code)]
#[path = "../../runtime/src/wire.rs"]
mod wire;

pub use digest::{Digest, DigestError};
#[cfg(feature = "device")]
pub use verify::Verifier;
