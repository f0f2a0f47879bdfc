//! deskmesh-node: one space's (or member's) node.
//!
//! It owns the home directory layout ([`home`]), the sled store behind small traits ([`store`]), the
//! operations every front end uses ([`ops`], [`commands`], [`audit`], [`export`], [`demo`], [`demo_live`]), the sans-I/O
//! sync core ([`sync`]), the libp2p mesh with its daemon and control socket ([`mesh`], [`control`]) and the
//! `deskmesh` command line ([`cli`], [`output`]), and the node side of the terminal UI, on a store opened
//! here ([`tui_local`]) or attached to a running daemon ([`tui_remote`]). It is the only crate that does file and network I/O.

pub mod audit;
pub mod bundle;
pub mod cli;
pub mod commands;
pub mod control;
pub mod demo;
pub mod demo_live;
pub mod export;
pub mod home;
pub mod mesh;
pub mod ops;
pub mod output;
pub mod store;
pub mod sync;
pub mod tui_local;
pub mod tui_remote;
