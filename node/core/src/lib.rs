//! deskmesh-core: one node's home opened, the one path every signed item takes into it, the operations a
//! node performs, and the typed API through which every front end asks for them.
//!
//! - [`home`]: the home directory layout and the lock that says which process holds the store.
//! - [`node`]: [`Node`], one opened home over any [`deskmesh_store::Store`]: key, settings, roster, the
//!   derived directory index and the refusal log.
//! - [`ingest`]: the one path from signed bytes to a verdict, whatever their source (gossip, sync batches,
//!   bundles, local edits): roster operations in causal order, items that wait for roster operations,
//!   and one refusal sink.
//! - [`ops`]: what a node does (alliance administration, its listing, seats, the directory, imports),
//!   typed in and typed out; [`audit`], [`export`] and [`bundle`] beside them; [`formats`] reads and
//!   writes listings as OSM, GeoJSON, CSV and JSON-LD; [`report`] computes the alliance report's figures;
//!   [`view`] maps what the node holds into the states and events a live front end shows; `rows` is the
//!   row the store keeps beside each listing so a command without a daemon lists spaces without reading
//!   listings.
//! - [`attest`]: the ingest of what coordinators sign beside the roster (verifications of listing facts,
//!   coordinator changes collecting co-signatures); [`names`]: keys named by the role the roster gives
//!   them, for every report.
//! - [`api`]: the versioned [`api::Request`]/[`api::Response`] pair, the [`api::Handle`] trait every front
//!   end calls, [`api::serve`] (the one dispatcher, used in process and by the daemon) and
//!   [`api::Local`], the handle over a node opened in this process.
//!
//! **Architecture invariant:** the core knows nothing of clap, sockets, libp2p, tokio or terminals, and
//! renders no text for people: results are serde structs, errors are one sentence.

pub mod api;
pub mod attest;
pub mod audit;
pub mod bundle;
pub mod catalog;
mod docs;
pub mod export;
pub mod formats;
pub mod home;
pub mod ingest;
pub mod names;
pub mod node;
pub mod ops;
pub mod peer_id;
pub mod report;
mod rows;
pub mod view;

#[cfg(test)]
mod testkit;

pub use node::Node;
