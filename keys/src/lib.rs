//! deskmesh-keys: who may sign what.
//!
//! This crate owns every ed25519 secret in deskmesh and the rules of trust built on them: device identities
//! and their key file ([`keyfile`]), domain-separated signatures ([`domain`]), content hashes and ids
//! ([`id`]), the alliance roster, a signed append-only graph of operations whose state at any heads is a
//! deterministic fold with "removal wins" for concurrent operations, the pure authorisation function
//! [`Roster::may_sign`] and strong removal ([`Roster::removals`]: a removal names the listing heads it
//! keeps) ([`roster`]), and the one-line `dmi1…` invite tokens, checksummed and verifiable
//! offline, that a coordinator hands to a new space or device ([`invite`]). [`par`] spreads pure checks over
//! every core, results in input order, [`b58`] writes base58 text, and [`batch`] checks the signatures of many items as one batch
//! with the verdict each would get alone.
//! It does no networking and knows nothing of listings, Automerge, sled or libp2p.

pub mod b58;
pub mod batch;
pub mod domain;
pub mod id;
pub mod invite;
pub mod key;
pub mod keyfile;
pub mod par;
pub mod roster;

pub use domain::Domain;
pub use id::{AllianceId, Hash, SpaceId};
pub use invite::{Invite, InviteError, MemberInvite};
pub use key::{BadSignature, DeviceKey, ParseError, PublicKey, Signature, Signer};
pub use roster::{
    Authorisation, Denied, Inserted, ListingHead, Op, OpBody, ProposalState, Removal, Roster,
    RosterError, RosterState, SignedOp, SpaceEntry,
};
