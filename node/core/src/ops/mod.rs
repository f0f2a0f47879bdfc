//! What a node does, typed in and typed out: alliance administration ([`alliance`]), this space's listing
//! and imports of listings ([`listing`]), open seats ([`seats`]) and the directory members browse
//! ([`directory`]). Each operation validates before it writes, signs with the device key, and takes what it
//! signed through [`crate::ingest`]; each returns a serde report that front ends render as they like.

pub mod alliance;
pub mod directory;
pub mod listing;
pub mod seats;
