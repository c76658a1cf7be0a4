//! Images: OCI layers extracted safely into a content-addressed store.

pub mod extract;
