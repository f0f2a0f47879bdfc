//! deskmesh-node: the running node and the `deskmesh` command.
//!
//! The layers, bottom to top (each imports only those below it; `tests::layering` checks it):
//!
//! - [`control`]: the control socket's protocol, its server (run by the daemon) and [`control::Remote`],
//!   the client-side [`deskmesh_core::api::Handle`] over it.
//! - [`mesh`]: `deskmesh run`, the libp2p daemon: one task owns the swarm, the opened node and the sans-I/O
//!   sync engine; it serves the control socket and can run embedded in another program.
//! - [`tui_client`]: the terminal UI's `NodeApi` over any handle.
//! - [`demo`]: the sample alliance and the live five-node demo.
//! - [`cli`]: argument parsing, file reading and text rendering; nothing imports it.
//!
//! The node's core — its home, store, ingest path, operations and typed API — is `deskmesh-core`; the store
//! and the sync engine are `deskmesh-store` and `deskmesh-sync`.

pub mod cli;
pub mod control;
pub mod demo;
pub mod mesh;
pub mod tui_client;

#[cfg(test)]
mod tests;
