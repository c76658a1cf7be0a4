//! Signed update metadata, binary deltas and the update client of husk.
//!
//! Today this crate holds the content address every blob in a repository is
//! named by ([`Digest`]); the metadata, delta and client modules grow here.

#![deny(unsafe_code)]

pub mod digest;

pub use digest::{Digest, DigestError};
