//! deskmesh-crdt-model: what a space's listing is, and how the directory is read.
//!
//! The listing model with its vocabularies, accessibility block, seat pools and validation ([`listing`]);
//! one Automerge document per space whose changes travel in signed envelopes ([`change`], [`doc`]) and
//! whose whole state can travel as a signed checkpoint ([`checkpoint`]); signed,
//! expiring seat beacons and their freshness ([`beacon`]); the one rule for "seats free now" and the
//! wording of every seat state ([`seats`]); opening hours evaluated in the space's time zone
//! ([`hours`]); directory queries over many listings ([`query`]); and coordinators' countersignatures of
//! listing facts, claimed versus verified ([`verify`]).
//!
//! This crate does no I/O: no files, no sockets and no clock (callers pass `now`). It knows nothing of
//! libp2p or sled; it depends on `deskmesh-keys` for ids, keys, signatures and the roster.

pub mod beacon;
pub mod change;
pub mod checkpoint;
pub mod doc;
pub mod hours;
pub mod kept;
pub mod listing;
pub mod query;
pub mod seats;
pub mod verify;

pub use hours::{Hours, HoursError, OpenState};
pub use listing::{Amenity, Listing, ListingError};
pub use query::{AccessNeed, Entry, Query, SearchIndex, Sort};
pub use seats::{SeatState, SeatsNow};
