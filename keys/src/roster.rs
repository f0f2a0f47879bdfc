//! The alliance roster: a signed, append-only graph of operations that says who coordinates the alliance
//! and which device keys may sign for which space.
//!
//! Every [`Op`] names the roster heads it was issued after (`parents`), is encoded once with postcard and
//! signed as those exact bytes under [`Domain::RosterOp`]; the [`SignedOp`] carries the bytes and the
//! signatures, and its hash covers only the bytes so coordinators can add co-signatures. A [`Roster`] keeps
//! only operations whose signatures verify and whose authors were authorised *at the operation's own
//! parents*, so authorisation is causal: [`Roster::may_sign`] answers "may this key sign for this space at
//! these heads?" as a pure function of the roster graph.
//!
//! The state at some heads is a fold of their causal closure in a deterministic topological order (ties
//! broken by hash), so every node holding the same operations computes the same state. Concurrent
//! operations follow "removal wins" (strong removal):
//! - a removal (device removal, space revocation, coordinator removal) always takes effect once it is in
//!   the closure, whatever was issued concurrently with it;
//! - a grant of a key that was removed by a concurrent removal (one that is not in the grant's causal
//!   past) has no effect, so a concurrent re-add does not undo a removal;
//! - an operation that relied on an authority (a coordinator, a device of a space, a live space) has no
//!   effect if that authority was removed concurrently with it. A stolen key can always name old roster
//!   heads as parents; this rule is what stops it from granting anything after its removal.
//!
//! Strong removal: a `RemoveDevice` or `RevokeSpace` names the listing heads it keeps. A removed key can
//! always name roster heads from before its removal, where it was authorised; [`Roster::removals`] lists
//! the removals such heads do not include, and whoever checks a signature (the listing model) accepts
//! what the key signed there only if it is in the causal past of the heads each removal keeps. So a
//! stolen key cannot add anything to a listing after its removal, whatever heads it names, while what it
//! signed before stays.
//!
//! Proposals: a quorum change (adding or removing a coordinator, changing the threshold) is signed by
//! one coordinator and then co-signed by others ([`SignedOp::cosign`], [`SignedOp::merge`]);
//! [`Roster::check_proposal`] says how many signatures it still needs, and [`Roster::insert`] takes it
//! once it carries the threshold's worth.
//!
//! Two concurrent admissions of the same space, concurrent peer-address updates and a concurrent threshold
//! change racing a coordinator change are settled by the topological order: deterministic, though not
//! meaningful. The fold also never removes the last coordinator and lowers the threshold when concurrent
//! removals leave fewer coordinators than it.
//!
//! Folding is linear in the roster, so the common questions avoid it: an insert after the current heads
//! updates the current state in place, and per-operation compact ancestor sets with per-space indexes of
//! admissions and grants let [`Roster::may_sign`] answer at old heads in microseconds whenever the space
//! has no removals and coordinators were never removed nor changed concurrently; anything else is left
//! to the fold, the reference.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::id::{AllianceId, Hash, SpaceId};
use crate::key::{BadSignature, PublicKey, Signature, Signer};

/// Largest encoded operation (the signed bytes), in bytes.
pub const MAX_OP_BYTES: usize = 16 * 1024;
/// Longest alliance name, space name or revocation reason, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most device keys one space may hold at once.
pub const MAX_DEVICES_PER_SPACE: usize = 64;
/// Most parents one operation may name.
pub const MAX_PARENTS: usize = 32;
/// Most signatures one operation may carry.
pub const MAX_SIGNATURES: usize = 64;
/// Most coordinators an alliance may have (a quorum must fit in [`MAX_SIGNATURES`]).
pub const MAX_COORDINATORS: usize = 64;
/// Most peer addresses a space may list.
pub const MAX_PEER_ADDRS: usize = 16;
/// Most listing heads a removal or revocation may keep.
pub const MAX_KEPT_HEADS: usize = 64;
/// Longest peer address (a multiaddr in text form), in characters.
pub const MAX_ADDR_CHARS: usize = 256;

/// Largest encoded [`SignedOp`]: the op bytes plus [`MAX_SIGNATURES`] (key, signature) pairs of at most
/// 97 bytes each in postcard, with slack for the length prefixes. Checked before decoding so garbage
/// never makes us allocate much.
const MAX_SIGNED_OP_BYTES: usize = MAX_OP_BYTES + MAX_SIGNATURES * 100 + 16;

/// Hash label of roster operations.
const OP_HASH_LABEL: &str = "roster-op";

/// Why a roster operation was refused, or why the roster could not answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RosterError {
    #[error("the {what} could not be decoded: {why}")]
    Decode { what: &'static str, why: String },
    #[error("the {what} is {size} bytes, more than the limit of {max}")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("the roster operation is malformed: {0}")]
    Malformed(String),
    #[error("the roster operation has a bad signature: {0}")]
    BadSignature(#[from] BadSignature),
    #[error("the roster operation is not signed by its author {0}")]
    AuthorDidNotSign(PublicKey),
    #[error("the roster operation carries two signatures by {0}")]
    DuplicateSigner(PublicKey),
    #[error(
        "this operation belongs to alliance {found}, not to this roster's alliance {expected}"
    )]
    WrongAlliance {
        expected: AllianceId,
        found: AllianceId,
    },
    #[error("a create-alliance operation can only start a roster, it cannot be added to one")]
    CreateNotRoot,
    #[error("a roster must start with a create-alliance operation")]
    NotACreate,
    #[error("the roster operation's parents are not known here yet: {}", list(.0))]
    MissingParents(Vec<Hash>),
    #[error("roster operation {} is not authorised: {reason}", .op.short())]
    Unauthorised { op: Hash, reason: String },
    #[error("these roster heads are not known here: {}", list(.0))]
    UnknownHeads(Vec<Hash>),
}

fn list(hashes: &[Hash]) -> String {
    hashes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hash of one change of a space's listing (an Automerge change hash), as a removal names the listing
/// heads it keeps. The roster treats it as opaque bytes; the listing model decides what it reaches.
pub type ListingHead = [u8; 32];

/// What an operation does.
///
/// The variants are encoded by position (postcard), so positions never change: new kinds are appended.
/// `RemoveDeviceV1` and `RevokeSpaceV1` are the removals of stores written before strong removal; they
/// still decode and take effect in the roster, but name no listing heads, so they constrain nothing
/// signed before them (see [`Roster::removals`]). New removals are always [`OpBody::RemoveDevice`] and
/// [`OpBody::RevokeSpace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpBody {
    /// Founds the alliance. The root of every roster; its hash is the [`AllianceId`].
    CreateAlliance {
        name: String,
        coordinators: Vec<PublicKey>,
        threshold: u8,
    },
    /// Admits a space with its first device keys; `space` must be `SpaceId::derive(&devices[0])`.
    AdmitSpace {
        space: SpaceId,
        name: String,
        devices: Vec<PublicKey>,
    },
    AddDevice {
        space: SpaceId,
        device: PublicKey,
    },
    /// A device removal as written before strong removal (weak: it keeps everything signed before it).
    RemoveDeviceV1 {
        space: SpaceId,
        device: PublicKey,
    },
    /// A revocation as written before strong removal (weak, and the space leaves the directory).
    RevokeSpaceV1 {
        space: SpaceId,
        reason: String,
    },
    AddCoordinator {
        key: PublicKey,
    },
    RemoveCoordinator {
        key: PublicKey,
    },
    SetThreshold {
        threshold: u8,
    },
    /// The bootstrap/relay multiaddrs (text) a space offers to the alliance.
    SetPeerAddrs {
        space: SpaceId,
        addrs: Vec<String>,
    },
    /// Removes a device key from a space (strong removal). Of what the key signed for the space without
    /// this operation in its roster past, only the listing changes in the causal past of `keep` (the
    /// listing heads the remover saw) still count; everything else it signed is refused everywhere.
    RemoveDevice {
        space: SpaceId,
        device: PublicKey,
        keep: Vec<ListingHead>,
    },
    /// Revokes a space for good (strong removal for every device of the space, as for `RemoveDevice`).
    /// With `listed` the space stays in the directory, marked revoked with the reason, at the listing
    /// `keep` names; without it the space leaves the directory.
    RevokeSpace {
        space: SpaceId,
        reason: String,
        keep: Vec<ListingHead>,
        listed: bool,
    },
}

impl OpBody {
    /// A stable kebab-case name for audit tables and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            OpBody::CreateAlliance { .. } => "create-alliance",
            OpBody::AdmitSpace { .. } => "admit-space",
            OpBody::AddDevice { .. } => "add-device",
            OpBody::RemoveDevice { .. } | OpBody::RemoveDeviceV1 { .. } => "remove-device",
            OpBody::RevokeSpace { .. } | OpBody::RevokeSpaceV1 { .. } => "revoke-space",
            OpBody::AddCoordinator { .. } => "add-coordinator",
            OpBody::RemoveCoordinator { .. } => "remove-coordinator",
            OpBody::SetThreshold { .. } => "set-threshold",
            OpBody::SetPeerAddrs { .. } => "set-peer-addrs",
        }
    }

    /// The space this operation is about, if any.
    pub fn space(&self) -> Option<&SpaceId> {
        match self {
            OpBody::AdmitSpace { space, .. }
            | OpBody::AddDevice { space, .. }
            | OpBody::RemoveDevice { space, .. }
            | OpBody::RemoveDeviceV1 { space, .. }
            | OpBody::RevokeSpace { space, .. }
            | OpBody::RevokeSpaceV1 { space, .. }
            | OpBody::SetPeerAddrs { space, .. } => Some(space),
            _ => None,
        }
    }

    /// The listing heads a strong removal keeps; `None` for every other operation (legacy removals
    /// included: they keep everything).
    pub fn kept_heads(&self) -> Option<&[ListingHead]> {
        match self {
            OpBody::RemoveDevice { keep, .. } | OpBody::RevokeSpace { keep, .. } => Some(keep),
            _ => None,
        }
    }

    /// Whether this operation needs a quorum of coordinators rather than one authorised signer.
    pub fn needs_quorum(&self) -> bool {
        matches!(
            self,
            OpBody::AddCoordinator { .. }
                | OpBody::RemoveCoordinator { .. }
                | OpBody::SetThreshold { .. }
        )
    }
}

/// One roster operation, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The alliance this operation belongs to; `None` only for `CreateAlliance`, whose hash *is* the id.
    pub alliance: Option<AllianceId>,
    /// The roster heads the author saw when issuing it; empty only for `CreateAlliance`.
    pub parents: Vec<Hash>,
    pub author: PublicKey,
    /// The author's clock; informative only, never used for ordering.
    pub created_at_ms: i64,
    pub body: OpBody,
}

impl Op {
    /// Stateless checks: limits, the alliance/parents shape and the rules that need no roster.
    pub fn check_shape(&self) -> Result<(), RosterError> {
        let bad = |why: String| Err(RosterError::Malformed(why));
        let is_create = matches!(self.body, OpBody::CreateAlliance { .. });
        if is_create {
            if self.alliance.is_some() || !self.parents.is_empty() {
                return bad("a create-alliance operation names no alliance and no parents".into());
            }
        } else {
            if self.alliance.is_none() {
                return bad(format!(
                    "a {} operation must name its alliance",
                    self.body.kind()
                ));
            }
            if self.parents.is_empty() {
                return bad(format!(
                    "a {} operation must name at least one parent",
                    self.body.kind()
                ));
            }
        }
        if self.parents.len() > MAX_PARENTS {
            return bad(format!(
                "it names {} parents, more than the limit of {MAX_PARENTS}",
                self.parents.len()
            ));
        }
        if !distinct(&self.parents) {
            return bad("it names the same parent twice".into());
        }
        match &self.body {
            OpBody::CreateAlliance {
                name,
                coordinators,
                threshold,
            } => {
                check_text("alliance name", name, MAX_NAME_CHARS, false)?;
                if coordinators.is_empty() || coordinators.len() > MAX_COORDINATORS {
                    return bad(format!(
                        "an alliance needs 1 to {MAX_COORDINATORS} coordinators, not {}",
                        coordinators.len()
                    ));
                }
                if !distinct(coordinators) {
                    return bad("a coordinator is listed twice".into());
                }
                if !coordinators.contains(&self.author) {
                    return bad(format!(
                        "the author {} of a create-alliance operation must be one of its coordinators",
                        self.author
                    ));
                }
                if *threshold == 0 || usize::from(*threshold) > coordinators.len() {
                    return bad(format!(
                        "a threshold of {threshold} is not between 1 and the {} coordinators",
                        coordinators.len()
                    ));
                }
            }
            OpBody::AdmitSpace {
                space,
                name,
                devices,
            } => {
                check_text("space name", name, MAX_NAME_CHARS, false)?;
                let Some(first) = devices.first() else {
                    return bad("a space must be admitted with at least one device".into());
                };
                if devices.len() > MAX_DEVICES_PER_SPACE {
                    return bad(format!(
                        "a space may hold at most {MAX_DEVICES_PER_SPACE} devices, not {}",
                        devices.len()
                    ));
                }
                if !distinct(devices) {
                    return bad("a device is listed twice".into());
                }
                let derived = SpaceId::derive(first);
                if *space != derived {
                    return bad(format!(
                        "space id {space} does not match its first device key, which gives {derived}"
                    ));
                }
            }
            OpBody::RevokeSpaceV1 { reason, .. } => {
                check_text("revocation reason", reason, MAX_NAME_CHARS, true)?;
            }
            OpBody::RevokeSpace { reason, keep, .. } => {
                check_text("revocation reason", reason, MAX_NAME_CHARS, true)?;
                check_keep(keep)?;
            }
            OpBody::RemoveDevice { keep, .. } => check_keep(keep)?,
            OpBody::SetThreshold { threshold } => {
                if *threshold == 0 {
                    return bad("a threshold must be at least 1".into());
                }
            }
            OpBody::SetPeerAddrs { addrs, .. } => {
                if addrs.len() > MAX_PEER_ADDRS {
                    return bad(format!(
                        "a space may list at most {MAX_PEER_ADDRS} peer addresses, not {}",
                        addrs.len()
                    ));
                }
                for addr in addrs {
                    check_text("peer address", addr, MAX_ADDR_CHARS, false)?;
                    if addr.chars().any(char::is_whitespace) {
                        return bad(format!("peer address {addr:?} contains whitespace"));
                    }
                }
            }
            OpBody::AddDevice { .. }
            | OpBody::RemoveDeviceV1 { .. }
            | OpBody::AddCoordinator { .. }
            | OpBody::RemoveCoordinator { .. } => {}
        }
        Ok(())
    }
}

fn check_keep(keep: &[ListingHead]) -> Result<(), RosterError> {
    if keep.len() > MAX_KEPT_HEADS {
        return Err(RosterError::Malformed(format!(
            "it keeps {} listing heads, more than the limit of {MAX_KEPT_HEADS}",
            keep.len()
        )));
    }
    if !distinct(keep) {
        return Err(RosterError::Malformed(
            "it keeps the same listing head twice".into(),
        ));
    }
    Ok(())
}

fn distinct<T: Ord>(items: &[T]) -> bool {
    let set: BTreeSet<&T> = items.iter().collect();
    set.len() == items.len()
}

fn check_text(what: &str, text: &str, max: usize, may_be_empty: bool) -> Result<(), RosterError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(RosterError::Malformed(format!(
            "the {what} is {chars} characters, more than the limit of {max}"
        )));
    }
    if !may_be_empty && text.trim().is_empty() {
        return Err(RosterError::Malformed(format!("the {what} is empty")));
    }
    Ok(())
}

/// Encodes with postcard. Serialising our own types cannot fail: postcard only errors on sequences of
/// unknown length and on failing `Display` impls, and these types have neither. Should it ever fail, the
/// empty result is refused as undecodable wherever it arrives, rather than panicking here.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes postcard bytes, refusing trailing bytes.
fn decode<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, RosterError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| RosterError::Decode {
        what,
        why: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(RosterError::Decode {
            what,
            why: format!("{} unexpected trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// An operation's exact signed bytes and the signatures over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOp {
    /// `postcard(Op)`: the exact bytes that were signed and hashed.
    bytes: Vec<u8>,
    signatures: Vec<(PublicKey, Signature)>,
}

impl SignedOp {
    /// Encodes `op` and signs it; the signer should be `op.author` (the roster refuses it otherwise).
    pub fn sign(op: &Op, signer: &impl Signer) -> SignedOp {
        let bytes = encode(op);
        let signature = signer.sign(Domain::RosterOp, &bytes);
        SignedOp {
            bytes,
            signatures: vec![(signer.public_key(), signature)],
        }
    }

    /// Adds `signer`'s co-signature (a coordinator approving a quorum change). Signing twice is a no-op.
    pub fn cosign(&mut self, signer: &impl Signer) {
        let key = signer.public_key();
        if self.signatures.iter().any(|(k, _)| *k == key) {
            return;
        }
        let signature = signer.sign(Domain::RosterOp, &self.bytes);
        self.signatures.push((key, signature));
    }

    /// Adds the signatures of `other` (the same operation, signed by others) that this one lacks, each
    /// verified first. Returns how many were added.
    pub fn merge(&mut self, other: &SignedOp) -> Result<usize, RosterError> {
        if other.bytes != self.bytes {
            return Err(RosterError::Malformed(
                "the two proposals sign different operations".into(),
            ));
        }
        let mut added = 0;
        for (key, signature) in &other.signatures {
            if self.signatures.iter().any(|(k, _)| k == key) {
                continue;
            }
            if self.signatures.len() >= MAX_SIGNATURES {
                return Err(RosterError::Malformed(format!(
                    "it would carry more than the limit of {MAX_SIGNATURES} signatures"
                )));
            }
            key.verify(Domain::RosterOp, &self.bytes, signature)?;
            self.signatures.push((*key, *signature));
            added += 1;
        }
        Ok(added)
    }

    /// The content hash, over the signed bytes only, so co-signing does not change it.
    pub fn hash(&self) -> Hash {
        Hash::of(OP_HASH_LABEL, &self.bytes)
    }

    /// The exact signed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn signatures(&self) -> &[(PublicKey, Signature)] {
        &self.signatures
    }

    /// The keys that signed, in signing order.
    pub fn signers(&self) -> Vec<PublicKey> {
        self.signatures.iter().map(|(k, _)| *k).collect()
    }

    /// Decodes the operation, refusing oversized, trailing or non-canonical bytes (so one operation has
    /// exactly one encoding and one hash).
    pub fn op(&self) -> Result<Op, RosterError> {
        if self.bytes.len() > MAX_OP_BYTES {
            return Err(RosterError::TooLarge {
                what: "roster operation",
                size: self.bytes.len(),
                max: MAX_OP_BYTES,
            });
        }
        let op: Op = decode("roster operation", &self.bytes)?;
        if encode(&op) != self.bytes {
            return Err(RosterError::Decode {
                what: "roster operation",
                why: "its bytes are not in canonical form".into(),
            });
        }
        Ok(op)
    }

    /// Checks that every signature verifies, that no key signed twice and that `author` signed.
    pub fn verify_signatures(&self, author: &PublicKey) -> Result<(), RosterError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(RosterError::Malformed(format!(
                "it carries {} signatures, more than the limit of {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for (key, signature) in &self.signatures {
            if !seen.insert(*key) {
                return Err(RosterError::DuplicateSigner(*key));
            }
            key.verify(Domain::RosterOp, &self.bytes, signature)?;
        }
        if !seen.contains(author) {
            return Err(RosterError::AuthorDidNotSign(*author));
        }
        Ok(())
    }

    /// The whole signed operation (bytes and signatures) for the store and the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads what [`SignedOp::to_bytes`] wrote. Garbage gives an error, never a panic; signatures are
    /// checked later, by [`Roster::insert`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedOp, RosterError> {
        if bytes.len() > MAX_SIGNED_OP_BYTES {
            return Err(RosterError::TooLarge {
                what: "signed roster operation",
                size: bytes.len(),
                max: MAX_SIGNED_OP_BYTES,
            });
        }
        let signed: SignedOp = decode("signed roster operation", bytes)?;
        if signed.bytes.len() > MAX_OP_BYTES {
            return Err(RosterError::TooLarge {
                what: "roster operation",
                size: signed.bytes.len(),
                max: MAX_OP_BYTES,
            });
        }
        if signed.signatures.len() > MAX_SIGNATURES {
            return Err(RosterError::Malformed(format!(
                "it carries {} signatures, more than the limit of {MAX_SIGNATURES}",
                signed.signatures.len()
            )));
        }
        Ok(signed)
    }

    /// Decodes and checks everything that needs no roster: limits, shape and (unless they were checked
    /// before the operation was stored) signatures.
    fn checked(&self, signatures: Signatures) -> Result<(Hash, Op), RosterError> {
        let op = self.op()?;
        op.check_shape()?;
        if signatures == Signatures::Check {
            self.verify_signatures(&op.author)?;
        }
        Ok((self.hash(), op))
    }
}

/// A roster operation whose shape and signatures were checked ([`SignedOp::verified`]), on any thread:
/// [`Roster::insert_verified`] takes it without verifying its signatures again, so a node checks the
/// signatures of a sync batch on every core and only judges the operations where the roster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOp(SignedOp);

impl VerifiedOp {
    /// The signed operation.
    pub fn signed(&self) -> &SignedOp {
        &self.0
    }
}

impl SignedOp {
    /// Checks what can be checked of the operation without a roster: it decodes, has a valid shape and
    /// every signature verifies (its author's among them). Gives the operation back with why not.
    pub fn verified(self) -> Result<VerifiedOp, (SignedOp, RosterError)> {
        match self.checked(Signatures::Check) {
            Ok(_) => Ok(VerifiedOp(self)),
            Err(e) => Err((self, e)),
        }
    }
}

/// Whether an operation's signatures are checked as it enters a roster: always, except for operations
/// read back from the node's own store ([`Roster::load_stored`]) and ones already checked
/// ([`Roster::insert_verified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signatures {
    Check,
    Trusted,
}

/// A space as the roster sees it at some heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceEntry {
    pub name: String,
    /// Current device keys, each with the operation that authorised it.
    pub devices: BTreeMap<PublicKey, Hash>,
    /// The `AdmitSpace` operation.
    pub admitted_by: Hash,
    /// The revoking operation and its reason, once revoked.
    pub revoked: Option<(Hash, String)>,
    /// A revoked space whose revocation asked to keep it in the directory, marked revoked.
    #[serde(default)]
    pub revoked_listed: bool,
    /// Keys removed from this space (and not re-added since), each with the removing operation.
    pub removed_devices: BTreeMap<PublicKey, Hash>,
    pub peer_addrs: Vec<String>,
}

/// The alliance as the roster says it is at some heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterState {
    pub name: String,
    /// Current coordinators, each with the operation that made it one.
    pub coordinators: BTreeMap<PublicKey, Hash>,
    pub threshold: u8,
    pub spaces: BTreeMap<SpaceId, SpaceEntry>,
}

impl RosterState {
    /// May `key` sign for `space` in this state? The pure core of [`Roster::may_sign`], for callers that
    /// check many signatures against the same heads and keep the state.
    pub fn may_sign(&self, key: &PublicKey, space: &SpaceId) -> Result<Authorisation, Denied> {
        let entry = self.spaces.get(space).ok_or(Denied::UnknownSpace)?;
        if let Some((by, _)) = &entry.revoked {
            return Err(Denied::SpaceRevoked { by: *by });
        }
        if let Some(op) = entry.devices.get(key) {
            return Ok(Authorisation { op: *op });
        }
        match entry.removed_devices.get(key) {
            Some(by) => Err(Denied::DeviceRemoved { by: *by }),
            None => Err(Denied::NotADevice),
        }
    }

    pub fn is_coordinator(&self, key: &PublicKey) -> bool {
        self.coordinators.contains_key(key)
    }

    /// The live (not revoked) spaces in which `key` is a current device.
    pub fn spaces_of(&self, key: &PublicKey) -> Vec<SpaceId> {
        self.spaces
            .iter()
            .filter(|(_, e)| e.revoked.is_none() && e.devices.contains_key(key))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A live space, or why it is not one, for authorisation reasons.
    fn live_space(&self, space: &SpaceId) -> Result<&SpaceEntry, String> {
        let entry = self.spaces.get(space).ok_or_else(|| {
            format!("space {space} is not in the roster at the operation's parents")
        })?;
        match &entry.revoked {
            Some((by, _)) => Err(format!(
                "space {space} was revoked by roster operation {}",
                by.short()
            )),
            None => Ok(entry),
        }
    }
}

/// Why a key may sign for a space: the operation that gave it to the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorisation {
    pub op: Hash,
}

/// A strong removal that still constrains what a key signed: see [`Roster::removals`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The `RemoveDevice` or `RevokeSpace` operation.
    pub by: Hash,
    /// Whether it revokes the whole space rather than removing one device.
    pub revocation: bool,
    /// The listing heads it keeps: only changes in their causal past still count.
    pub keep: Vec<ListingHead>,
}

/// How far a proposed quorum change (adding or removing a coordinator, changing the threshold) is from
/// taking effect, judged at the proposal's own parents: see [`Roster::check_proposal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalState {
    pub hash: Hash,
    pub op: Op,
    /// The coordinators (at the proposal's parents) whose signatures it carries.
    pub approved_by: Vec<PublicKey>,
    /// The coordinators at the proposal's parents.
    pub coordinators: Vec<PublicKey>,
    /// Signatures it needs: the threshold at its parents.
    pub threshold: u8,
    /// The roster already holds it.
    pub applied: bool,
}

impl ProposalState {
    /// Whether it carries enough coordinator signatures to be inserted.
    pub fn ready(&self) -> bool {
        self.approved_by.len() >= usize::from(self.threshold)
    }

    /// How many more coordinators must approve it.
    pub fn missing(&self) -> usize {
        usize::from(self.threshold).saturating_sub(self.approved_by.len())
    }
}

/// Why a key may not sign for a space at some roster heads. The messages are what the audit shows a
/// coordinator, so they say what happened in plain words.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller may simply not have these roster operations yet: keep the signed item pending.
    #[error("it names roster operations not known here yet ({})", list(.0))]
    UnknownHeads(Vec<Hash>),
    #[error("the space it is for is not in the roster it names (never admitted, or not yet at that point)")]
    UnknownSpace,
    #[error("the space was revoked by roster operation {}", .by.short())]
    SpaceRevoked { by: Hash },
    #[error("the key that signed it is not one of the space's devices in the roster it names")]
    NotADevice,
    #[error("the key that signed it was removed from the space by roster operation {}", .by.short())]
    DeviceRemoved { by: Hash },
    #[error("the key that signed it is not a coordinator in the roster it names")]
    NotACoordinator,
    #[error("the key that signed it is no longer a coordinator")]
    CoordinatorRemoved,
}

/// What [`Roster::insert`] did with a valid operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// Already held (perhaps with other co-signatures); nothing changed.
    Duplicate,
}

/// What [`Roster::insert_all`] did with a batch.
#[derive(Debug, Default)]
pub struct InsertReport {
    /// Newly inserted operations, in insertion order.
    pub inserted: Vec<Hash>,
    pub duplicates: usize,
    /// Operations whose parents are still missing, with the missing hashes; keep them and retry.
    pub pending: Vec<(SignedOp, Vec<Hash>)>,
    /// Operations refused for good.
    pub rejected: Vec<(SignedOp, RosterError)>,
}

#[derive(Debug, Clone)]
struct Entry {
    signed: SignedOp,
    op: Op,
}

/// The operations of one space that decide who may sign for it, by dense operation index.
#[derive(Debug, Clone, Default)]
struct SpaceIndex {
    admissions: Vec<(usize, Hash)>,
    /// `AddDevice` operations per added key.
    adds: HashMap<PublicKey, Vec<(usize, Hash)>>,
    /// Every key ever granted to the space; past the device limit the fold may drop grants.
    granted: HashSet<PublicKey>,
    /// A device removal or a revocation exists: only the fold can judge it.
    removals: bool,
    /// Strong removals (`RemoveDevice`, `RevokeSpace`) of the space, for [`Roster::removals`].
    strong_removals: Vec<(usize, Hash)>,
}

/// Indexes that answer [`Roster::may_sign`] without folding, kept by `insert`.
///
/// Each operation gets a dense index in insertion order (parents are always inserted first) and the set
/// of its ancestors, itself included, as [`Ancestors`]; so "is this operation in the causal closure of
/// these heads" is a few bit tests.
#[derive(Debug, Clone, Default)]
struct Ancestry {
    index: HashMap<Hash, usize>,
    /// The ancestors of each operation, by dense index.
    sets: Vec<Ancestors>,
    spaces: HashMap<SpaceId, SpaceIndex>,
    /// The last coordinator change (`AddCoordinator`, `SetThreshold`) inserted.
    last_coordinator_change: Option<usize>,
    /// No coordinator was ever removed and the coordinator changes form one causal chain, so in every
    /// fold the coordinators only grow: whoever was a coordinator at an operation's parents still is
    /// where the fold applies it.
    coordinators_monotone: bool,
}

impl Ancestry {
    fn new(create: Hash) -> Self {
        let mut ancestry = Ancestry {
            coordinators_monotone: true,
            ..Ancestry::default()
        };
        ancestry.index.insert(create, 0);
        ancestry.sets.push(Ancestors::of(0, std::iter::empty()));
        ancestry
    }

    /// `a` is `b` or one of its ancestors.
    fn reaches(&self, b: usize, a: usize) -> bool {
        self.sets.get(b).is_some_and(|set| set.contains(a))
    }

    /// Records an operation whose parents are all recorded already.
    fn record(&mut self, hash: Hash, op: &Op) {
        let me = self.sets.len();
        let parents = op
            .parents
            .iter()
            .filter_map(|parent| self.index.get(parent).and_then(|p| self.sets.get(*p)));
        let set = Ancestors::of(me, parents);
        self.sets.push(set);
        self.index.insert(hash, me);
        match &op.body {
            OpBody::AddCoordinator { .. } | OpBody::SetThreshold { .. } => {
                if let Some(last) = self.last_coordinator_change {
                    if !self.reaches(me, last) {
                        self.coordinators_monotone = false;
                    }
                }
                self.last_coordinator_change = Some(me);
            }
            OpBody::RemoveCoordinator { .. } => self.coordinators_monotone = false,
            OpBody::AdmitSpace { space, devices, .. } => {
                let entry = self.spaces.entry(space.clone()).or_default();
                entry.admissions.push((me, hash));
                entry.granted.extend(devices.iter().copied());
            }
            OpBody::AddDevice { space, device } => {
                let entry = self.spaces.entry(space.clone()).or_default();
                entry.adds.entry(*device).or_default().push((me, hash));
                entry.granted.insert(*device);
            }
            OpBody::RemoveDevice { space, .. } | OpBody::RevokeSpace { space, .. } => {
                let entry = self.spaces.entry(space.clone()).or_default();
                entry.removals = true;
                entry.strong_removals.push((me, hash));
            }
            OpBody::RemoveDeviceV1 { space, .. } | OpBody::RevokeSpaceV1 { space, .. } => {
                self.spaces.entry(space.clone()).or_default().removals = true;
            }
            OpBody::CreateAlliance { .. } | OpBody::SetPeerAddrs { .. } => {}
        }
    }

    /// The answer of the fold at `heads` (as indexes), when it follows from the indexes alone; `None`
    /// when only the fold can tell.
    ///
    /// Without removals for the space and with monotone coordinators every operation on the space in
    /// the closure takes effect in the fold (its author's authority is still there when it is applied),
    /// so the space exists iff its one admission is in the closure and a key is a device iff the
    /// admission names it or exactly one `AddDevice` of it is in the closure. Two concurrent adds of the
    /// same key, two admissions or a space at the device limit are settled by the fold order: left to it.
    fn may_sign(
        &self,
        roster: &Roster,
        heads: &[usize],
        key: &PublicKey,
        space: &SpaceId,
    ) -> Option<Result<Authorisation, Denied>> {
        let in_closure = |i: usize| heads.iter().any(|h| self.reaches(*h, i));
        let Some(entry) = self.spaces.get(space) else {
            // Nothing ever named the space, so no fold has it.
            return Some(Err(Denied::UnknownSpace));
        };
        if !self.coordinators_monotone
            || entry.removals
            || entry.admissions.len() != 1
            || entry.granted.len() > MAX_DEVICES_PER_SPACE
        {
            return None;
        }
        let (admission, admitted_by) = *entry.admissions.first()?;
        if !in_closure(admission) {
            return Some(Err(Denied::UnknownSpace));
        }
        match roster.get_op(&admitted_by).map(|op| &op.body) {
            Some(OpBody::AdmitSpace { devices, .. }) if devices.contains(key) => {
                return Some(Ok(Authorisation { op: admitted_by }));
            }
            Some(OpBody::AdmitSpace { .. }) => {}
            _ => return None,
        }
        let mut adds = entry
            .adds
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(i, _)| in_closure(*i));
        match (adds.next(), adds.next()) {
            (None, _) => Some(Err(Denied::NotADevice)),
            (Some((_, op)), None) => Some(Ok(Authorisation { op: *op })),
            (Some(_), Some(_)) => None,
        }
    }
}

/// The ancestors of one operation, itself included, by dense index: every index below `full`, and the set
/// bits of `words` at and above it (`words[0]` holds indexes `64 * (full / 64)` on).
///
/// Most rosters are nearly a chain (one coordinator's admissions, one after the other), where an
/// operation's ancestors are every operation before it: then `full` says it all and `words` is empty, so
/// a roster of `n` operations takes O(n) memory, not the O(n²) of a plain bitset per operation (600 MB at
/// 100,000 operations). Only operations concurrent with others (made offline, or by two coordinators at
/// once) keep words, from the oldest operation they do not reach on.
#[derive(Debug, Clone, Default)]
struct Ancestors {
    full: usize,
    words: Vec<u64>,
}

impl Ancestors {
    /// Operation `me`'s set: the union of its parents' sets, and `me`.
    fn of<'a>(me: usize, parents: impl Iterator<Item = &'a Ancestors> + Clone) -> Ancestors {
        let base = parents
            .clone()
            .map(|p| p.full / 64)
            .min()
            .unwrap_or(me / 64);
        let mut words = vec![0u64; me / 64 + 1 - base];
        for parent in parents {
            // Everything below the parent's `full`, then its own words, all from word `base` on.
            let full_words = parent.full / 64;
            for w in &mut words[..full_words - base] {
                *w = !0;
            }
            if parent.full % 64 != 0 {
                words[full_words - base] |= (1u64 << (parent.full % 64)) - 1;
            }
            for (w, p) in words[full_words - base..].iter_mut().zip(&parent.words) {
                *w |= p;
            }
        }
        words[me / 64 - base] |= 1 << (me % 64);
        // `full` moves up to the first index not in the set.
        let first_gap = words.iter().position(|w| *w != !0).unwrap_or(words.len());
        let full = (base + first_gap) * 64
            + words
                .get(first_gap)
                .map_or(0, |w| w.trailing_ones() as usize);
        let words = if full > me {
            Vec::new()
        } else {
            words.split_off(full / 64 - base)
        };
        Ancestors { full, words }
    }

    fn contains(&self, a: usize) -> bool {
        if a < self.full {
            return true;
        }
        let word = a / 64 - self.full / 64;
        self.words
            .get(word)
            .is_some_and(|w| w & (1 << (a % 64)) != 0)
    }
}

/// The layout of [`Roster::snapshot`]; a change of it is a new version (an older one is replayed).
/// Version 2 puts the state at the heads before the operations, so [`Roster::state_from_snapshot`] reads
/// it without the operations.
const SNAPSHOT_VERSION: u8 = 2;

/// [`Roster::snapshot`] as written (borrowing the roster).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u8,
    alliance: AllianceId,
    heads: &'a BTreeSet<Hash>,
    current: &'a RosterState,
    ops: Vec<&'a SignedOp>,
}

/// [`Roster::snapshot`] as read back.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct Snapshot {
    version: u8,
    alliance: AllianceId,
    heads: BTreeSet<Hash>,
    current: RosterState,
    ops: Vec<SignedOp>,
}

/// A snapshot of this layout and of `alliance`, or why not.
fn check_snapshot(alliance: AllianceId, version: u8, of: AllianceId) -> Result<(), RosterError> {
    let why = if version != SNAPSHOT_VERSION {
        format!("unknown version {version}")
    } else if of != alliance {
        format!("it is of alliance {of}")
    } else {
        return Ok(());
    };
    Err(RosterError::Decode {
        what: "roster snapshot",
        why,
    })
}

/// The start of a [`Snapshot`]: everything but the operations.
#[derive(Deserialize)]
struct SnapshotHead {
    version: u8,
    alliance: AllianceId,
    heads: BTreeSet<Hash>,
    current: RosterState,
}

/// The verified roster operations of one alliance.
#[derive(Debug, Clone)]
pub struct Roster {
    alliance: AllianceId,
    entries: HashMap<Hash, Entry>,
    heads: BTreeSet<Hash>,
    /// The state right after `CreateAlliance`, where every fold starts.
    genesis: RosterState,
    /// The state at `heads`, kept current by `insert`.
    current: RosterState,
    ancestry: Ancestry,
}

impl Roster {
    /// Whether `key` was ever granted to `space` (by its admission or a device addition), removed since
    /// or not: the keys whose changes may appear in the space's history.
    pub fn ever_granted(&self, key: &PublicKey, space: &SpaceId) -> bool {
        self.ancestry
            .spaces
            .get(space)
            .is_some_and(|s| s.granted.contains(key))
    }

    /// Starts a roster from its `CreateAlliance` operation (self-signed by a coordinator it names).
    pub fn new(create: SignedOp) -> Result<Roster, RosterError> {
        Self::start(create, Signatures::Check)
    }

    /// A roster read back from a node's own store: `create`, then `ops` in any order. Every operation
    /// in a node's store was inserted into its roster, signatures checked, before it was stored, so the
    /// signatures are not checked again (at 10,000 spaces that took seconds on every command); everything
    /// else (shape, canonical bytes, parents, authorisation) is. [`Roster::unverified_signatures`]
    /// checks them all again, for the audit.
    pub fn load_stored(
        create: SignedOp,
        ops: impl IntoIterator<Item = SignedOp>,
    ) -> Result<(Roster, InsertReport), RosterError> {
        let mut roster = Self::start(create, Signatures::Trusted)?;
        let report = roster.insert_all_with(ops, Signatures::Trusted);
        Ok((roster, report))
    }

    /// Every operation of the roster whose signatures do not verify (none, unless its store was altered
    /// behind the node's back), with why.
    ///
    /// The checks run on every core (10,000 admissions are half a second on one).
    pub fn unverified_signatures(&self) -> Vec<(Hash, RosterError)> {
        let entries: Vec<(&Hash, &Entry)> = self.entries.iter().collect();
        let check = |(hash, e): &(&Hash, &Entry)| {
            e.signed
                .verify_signatures(&e.op.author)
                .err()
                .map(|err| (**hash, err))
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        // Runs of 64 operations, each run's signatures checked as one batch (`crate::batch`).
        let runs: Vec<&[(&Hash, &Entry)]> = entries.chunks(64).collect();
        let check_run = |run: &&[(&Hash, &Entry)]| crate::batch::check_together(run, check);
        // A part whose worker died proves nothing: it is checked again here.
        let mut out: Vec<(Hash, RosterError)> =
            crate::par::map_in_order(&runs, threads, 8, check_run, check_run)
                .into_iter()
                .flatten()
                .flatten()
                .collect();
        out.sort_by_key(|(h, _)| *h);
        out
    }

    /// The roster as bytes a node keeps beside its store, so that opening it again reads them back
    /// ([`Roster::from_snapshot`]) instead of replaying every operation: every signed operation in the
    /// order this roster took them (parents first) and the state at the heads. The snapshot is derived: a
    /// node rebuilds it by replaying the store whenever it is missing, stale or unreadable.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut order: Vec<(usize, &Entry)> = self
            .entries
            .iter()
            .filter_map(|(h, e)| self.ancestry.index.get(h).map(|i| (*i, e)))
            .collect();
        order.sort_by_key(|(i, _)| *i);
        encode(&SnapshotRef {
            version: SNAPSHOT_VERSION,
            alliance: self.alliance,
            heads: &self.heads,
            current: &self.current,
            ops: order.into_iter().map(|(_, e)| &e.signed).collect(),
        })
    }

    /// The state at the heads and the heads themselves, read from [`Roster::snapshot`] bytes of
    /// `alliance` without decoding a single operation: what a command that only names keys or asks who
    /// is a coordinator needs, at a fraction of [`Roster::from_snapshot`]'s cost. The operations after
    /// them are not looked at, so bytes cut short there still read; [`Roster::from_snapshot`] checks the
    /// whole.
    pub fn state_from_snapshot(
        alliance: AllianceId,
        bytes: &[u8],
    ) -> Result<(RosterState, BTreeSet<Hash>), RosterError> {
        let (head, _ops): (SnapshotHead, _) =
            postcard::take_from_bytes(bytes).map_err(|e| RosterError::Decode {
                what: "roster snapshot",
                why: e.to_string(),
            })?;
        check_snapshot(alliance, head.version, head.alliance)?;
        Ok((head.current, head.heads))
    }

    /// A roster read back from [`Roster::snapshot`] bytes of `alliance`. The operations are decoded
    /// (their signatures were checked before the snapshot's node stored them, like
    /// [`Roster::load_stored`]'s) and their ancestry recomputed; the state at the heads is taken as saved,
    /// not folded again. Bytes that are not such a snapshot, or whose operations do not chain (an
    /// operation before its parents, one of another alliance), are an error: replay the store instead.
    pub fn from_snapshot(alliance: AllianceId, bytes: &[u8]) -> Result<Roster, RosterError> {
        let snapshot: Snapshot = decode("roster snapshot", bytes)?;
        let corrupt = |why: String| RosterError::Decode {
            what: "roster snapshot",
            why,
        };
        check_snapshot(alliance, snapshot.version, snapshot.alliance)?;
        let mut ops = snapshot.ops.into_iter();
        let create = ops
            .next()
            .ok_or_else(|| corrupt("it holds no operation".into()))?;
        let mut roster = Self::start(create, Signatures::Trusted)?;
        if roster.alliance != alliance {
            return Err(corrupt("its first operation is not the alliance's".into()));
        }
        for signed in ops {
            let op: Op = decode("roster operation", signed.bytes())?;
            let hash = signed.hash();
            if op.alliance != Some(alliance)
                || op.parents.is_empty()
                || op.parents.iter().any(|p| !roster.entries.contains_key(p))
                || roster.entries.contains_key(&hash)
            {
                return Err(corrupt(format!(
                    "operation {} does not follow the ones before it",
                    hash.short()
                )));
            }
            for parent in &op.parents {
                roster.heads.remove(parent);
            }
            roster.heads.insert(hash);
            roster.ancestry.record(hash, &op);
            roster.entries.insert(hash, Entry { signed, op });
        }
        if roster.heads != snapshot.heads {
            return Err(corrupt("its heads are not its operations' heads".into()));
        }
        roster.current = snapshot.current;
        Ok(roster)
    }

    fn start(create: SignedOp, signatures: Signatures) -> Result<Roster, RosterError> {
        let (hash, op) = create.checked(signatures)?;
        let OpBody::CreateAlliance {
            name,
            coordinators,
            threshold,
        } = &op.body
        else {
            return Err(RosterError::NotACreate);
        };
        let genesis = RosterState {
            name: name.clone(),
            coordinators: coordinators.iter().map(|k| (*k, hash)).collect(),
            threshold: *threshold,
            spaces: BTreeMap::new(),
        };
        let mut entries = HashMap::new();
        entries.insert(hash, Entry { signed: create, op });
        Ok(Roster {
            alliance: AllianceId(hash),
            entries,
            heads: BTreeSet::from([hash]),
            current: genesis.clone(),
            genesis,
            ancestry: Ancestry::new(hash),
        })
    }

    /// Founds a new alliance coordinated by `signer` and `extra_coordinators`; returns the roster and the
    /// create operation to store and share.
    pub fn create(
        signer: &impl Signer,
        name: &str,
        extra_coordinators: Vec<PublicKey>,
        threshold: u8,
        now_ms: i64,
    ) -> Result<(Roster, SignedOp), RosterError> {
        let author = signer.public_key();
        let mut coordinators = vec![author];
        coordinators.extend(extra_coordinators);
        let op = Op {
            alliance: None,
            parents: Vec::new(),
            author,
            created_at_ms: now_ms,
            body: OpBody::CreateAlliance {
                name: name.to_string(),
                coordinators,
                threshold,
            },
        };
        let signed = SignedOp::sign(&op, signer);
        Ok((Roster::new(signed.clone())?, signed))
    }

    /// Signs `body` as the next operation after the current heads. Quorum changes still need
    /// [`SignedOp::cosign`] by further coordinators before [`Roster::insert`] accepts them.
    pub fn propose(&self, signer: &impl Signer, body: OpBody, now_ms: i64) -> SignedOp {
        let op = Op {
            alliance: Some(self.alliance),
            parents: self.heads(),
            author: signer.public_key(),
            created_at_ms: now_ms,
            body,
        };
        SignedOp::sign(&op, signer)
    }

    /// Verifies `signed` and adds it. A refused operation is not inserted; `MissingParents` means "keep
    /// it and retry once the parents arrive".
    pub fn insert(&mut self, signed: SignedOp) -> Result<Inserted, RosterError> {
        self.insert_with(signed, Signatures::Check)
    }

    /// [`Roster::insert`] for an operation whose signatures were checked already ([`SignedOp::verified`]).
    pub fn insert_verified(&mut self, op: VerifiedOp) -> Result<Inserted, RosterError> {
        self.insert_with(op.0, Signatures::Trusted)
    }

    fn insert_with(
        &mut self,
        signed: SignedOp,
        signatures: Signatures,
    ) -> Result<Inserted, RosterError> {
        let (hash, op) = signed.checked(signatures)?;
        if self.entries.contains_key(&hash) {
            return Ok(Inserted::Duplicate);
        }
        match op.alliance {
            None => return Err(RosterError::CreateNotRoot),
            Some(found) if found != self.alliance => {
                return Err(RosterError::WrongAlliance {
                    expected: self.alliance,
                    found,
                })
            }
            Some(_) => {}
        }
        let missing: Vec<Hash> = op
            .parents
            .iter()
            .filter(|p| !self.entries.contains_key(p))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(RosterError::MissingParents(missing));
        }
        let parents: BTreeSet<Hash> = op.parents.iter().copied().collect();
        // The common case: the operation follows everything we hold.
        let linear = parents == self.heads;
        let signers = signed.signers();
        let verdict = if linear {
            // Judged in place: cloning the whole state per operation made loading a roster quadratic.
            authorise(&self.current, &op, &signers)
        } else {
            authorise(&self.state_at(&op.parents)?, &op, &signers)
        };
        verdict.map_err(|reason| RosterError::Unauthorised { op: hash, reason })?;

        if linear {
            // Every other operation is an ancestor of this one, so it sorts last, nothing concurrent
            // can void it and it voids nothing: the new state is the old one plus this operation. The
            // state is moved out for the call (the placeholder costs nothing: genesis has no spaces).
            let mut state = std::mem::replace(&mut self.current, self.genesis.clone());
            Fold::linear(self).apply(&mut state, &hash, &op, &signers);
            self.current = state;
        }
        for parent in &op.parents {
            self.heads.remove(parent);
        }
        self.heads.insert(hash);
        self.ancestry.record(hash, &op);
        self.entries.insert(hash, Entry { signed, op });
        if !linear {
            // Not `state_at`: its shortcut would return the state we are replacing.
            let heads = self.heads();
            self.current = self.fold_at(&heads)?;
        }
        Ok(Inserted::New)
    }

    /// Inserts a batch in any order, retrying operations whose parents arrive later in the batch.
    pub fn insert_all(&mut self, ops: impl IntoIterator<Item = SignedOp>) -> InsertReport {
        self.insert_all_with(ops, Signatures::Check)
    }

    fn insert_all_with(
        &mut self,
        ops: impl IntoIterator<Item = SignedOp>,
        signatures: Signatures,
    ) -> InsertReport {
        let mut report = InsertReport::default();
        // Operations waiting for a parent, keyed by one parent they still miss.
        let mut waiting: HashMap<Hash, Vec<SignedOp>> = HashMap::new();
        let mut queue: Vec<SignedOp> = ops.into_iter().collect();
        queue.reverse();
        while let Some(signed) = queue.pop() {
            match self.insert_with(signed.clone(), signatures) {
                Ok(Inserted::New) => {
                    let hash = signed.hash();
                    report.inserted.push(hash);
                    if let Some(woken) = waiting.remove(&hash) {
                        queue.extend(woken);
                    }
                }
                Ok(Inserted::Duplicate) => report.duplicates += 1,
                Err(RosterError::MissingParents(missing)) => match missing.first() {
                    Some(first) => waiting.entry(*first).or_default().push(signed),
                    None => report
                        .rejected
                        .push((signed, RosterError::MissingParents(missing))),
                },
                Err(e) => report.rejected.push((signed, e)),
            }
        }
        for signed in waiting.into_values().flatten() {
            let missing = signed
                .op()
                .map(|op| {
                    op.parents
                        .into_iter()
                        .filter(|p| !self.entries.contains_key(p))
                        .collect()
                })
                .unwrap_or_default();
            report.pending.push((signed, missing));
        }
        report.pending.sort_by_key(|(s, _)| s.hash());
        report
    }

    pub fn alliance_id(&self) -> AllianceId {
        self.alliance
    }

    /// The alliance name as it was created.
    pub fn name(&self) -> &str {
        &self.genesis.name
    }

    /// The operations no other operation names as parent, sorted.
    pub fn heads(&self) -> Vec<Hash> {
        self.heads.iter().copied().collect()
    }

    pub fn get(&self, hash: &Hash) -> Option<&SignedOp> {
        self.entries.get(hash).map(|e| &e.signed)
    }

    /// The decoded operation behind `hash`.
    pub fn get_op(&self, hash: &Hash) -> Option<&Op> {
        self.entries.get(hash).map(|e| &e.op)
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.entries.contains_key(hash)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: a roster always holds its create operation.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every operation, parents before children, ties broken by hash: the same order on every node.
    pub fn ops_in_order(&self) -> Vec<(Hash, Op, &SignedOp)> {
        let all: BTreeSet<Hash> = self.entries.keys().copied().collect();
        self.topological(&all)
            .into_iter()
            .filter_map(|h| self.entries.get(&h).map(|e| (h, e.op.clone(), &e.signed)))
            .collect()
    }

    /// The causal closure of `heads` (always including the create operation) in the order of
    /// [`Roster::ops_in_order`]: what a peer at nothing needs to reach these heads.
    pub fn causal_closure(&self, heads: &[Hash]) -> Result<Vec<Hash>, RosterError> {
        let unknown: Vec<Hash> = heads
            .iter()
            .filter(|h| !self.entries.contains_key(h))
            .copied()
            .collect();
        if !unknown.is_empty() {
            return Err(RosterError::UnknownHeads(unknown));
        }
        let mut closure = BTreeSet::from([self.alliance.0]);
        let mut stack: Vec<Hash> = heads.to_vec();
        while let Some(h) = stack.pop() {
            if !closure.insert(h) {
                continue;
            }
            stack.extend(self.parents_of(&h).iter().copied());
        }
        Ok(self.topological(&closure))
    }

    /// The state at `heads`: a fold of their causal closure (see the module docs for concurrency). Empty
    /// heads give the state right after the alliance was created.
    pub fn state_at(&self, heads: &[Hash]) -> Result<RosterState, RosterError> {
        if !heads.is_empty() && heads.iter().copied().collect::<BTreeSet<_>>() == self.heads {
            return Ok(self.current.clone());
        }
        self.fold_at(heads)
    }

    fn fold_at(&self, heads: &[Hash]) -> Result<RosterState, RosterError> {
        let order = self.causal_closure(heads)?;
        Ok(Fold::new(self, order).run())
    }

    /// The state at the current heads.
    pub fn state(&self) -> &RosterState {
        &self.current
    }

    /// May `key` sign for `space` according to the roster at `heads`? A pure function of the roster graph:
    /// the same answer on every node that holds those heads.
    pub fn may_sign(
        &self,
        heads: &[Hash],
        key: &PublicKey,
        space: &SpaceId,
    ) -> Result<Authorisation, Denied> {
        let known: Vec<usize> = heads
            .iter()
            .filter_map(|h| self.ancestry.index.get(h).copied())
            .collect();
        if known.len() == heads.len() {
            let at = if heads.is_empty() { &[0][..] } else { &known };
            if let Some(answer) = self.ancestry.may_sign(self, at, key, space) {
                return answer;
            }
        }
        self.may_sign_by_fold(heads, key, space)
    }

    /// The reference answer of [`Roster::may_sign`]: a fold of the closure of `heads`.
    fn may_sign_by_fold(
        &self,
        heads: &[Hash],
        key: &PublicKey,
        space: &SpaceId,
    ) -> Result<Authorisation, Denied> {
        match self.state_at(heads) {
            Ok(state) => state.may_sign(key, space),
            Err(RosterError::UnknownHeads(unknown)) => Err(Denied::UnknownHeads(unknown)),
            // `state_at` fails only on unknown heads; report anything else the same way rather than
            // inventing an authorisation.
            Err(_) => Err(Denied::UnknownHeads(heads.to_vec())),
        }
    }

    /// The strong removals that constrain what `key` signed for `space` naming roster `heads`: every
    /// `RemoveDevice` of that key from that space and every `RevokeSpace` of that space the roster holds
    /// that is *not* in the causal past of `heads`. Something the key signed naming `heads` still counts
    /// only if, for each of them, it is among the listing changes that removal keeps (a listing change in
    /// the causal past of its kept heads; a seat beacon or anything else never). Empty when nothing
    /// constrains it, which is the case for every key of a space with no strong removal. A pure function
    /// of the roster graph, answered from the ancestor sets without a fold.
    pub fn removals(
        &self,
        heads: &[Hash],
        key: &PublicKey,
        space: &SpaceId,
    ) -> Result<Vec<Removal>, Denied> {
        let Some(index) = self.ancestry.spaces.get(space) else {
            return Ok(Vec::new());
        };
        if index.strong_removals.is_empty() {
            return Ok(Vec::new());
        }
        let mut known = Vec::with_capacity(heads.len());
        let mut unknown = Vec::new();
        for h in heads {
            match self.ancestry.index.get(h) {
                Some(i) => known.push(*i),
                None => unknown.push(*h),
            }
        }
        if !unknown.is_empty() {
            return Err(Denied::UnknownHeads(unknown));
        }
        let mut out = Vec::new();
        for (i, hash) in &index.strong_removals {
            if known.iter().any(|h| self.ancestry.reaches(*h, *i)) {
                continue;
            }
            match self.get_op(hash).map(|op| &op.body) {
                Some(OpBody::RemoveDevice { device, keep, .. }) if device == key => {
                    out.push(Removal {
                        by: *hash,
                        revocation: false,
                        keep: keep.clone(),
                    });
                }
                Some(OpBody::RevokeSpace { keep, .. }) => out.push(Removal {
                    by: *hash,
                    revocation: true,
                    keep: keep.clone(),
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether `key` is a coordinator at `heads` and still one now: what a coordinator's countersignature
    /// (a verification) needs. A coordinator removed since, even one who signed before the removal, no
    /// longer counts (strong removal).
    pub fn coordinator_at(&self, heads: &[Hash], key: &PublicKey) -> Result<(), Denied> {
        let state = match self.state_at(heads) {
            Ok(state) => state,
            Err(RosterError::UnknownHeads(unknown)) => return Err(Denied::UnknownHeads(unknown)),
            Err(_) => return Err(Denied::UnknownHeads(heads.to_vec())),
        };
        if !state.is_coordinator(key) {
            return Err(Denied::NotACoordinator);
        }
        if !self.current.is_coordinator(key) {
            return Err(Denied::CoordinatorRemoved);
        }
        Ok(())
    }

    /// Judges a proposed quorum change with however many co-signatures it carries so far: every
    /// signature must verify, its parents must be known, and it must be authorised at its parents in all
    /// but the count of coordinator signatures, which [`ProposalState::ready`] compares with the
    /// threshold. [`Roster::insert`] takes it once it is ready.
    pub fn check_proposal(&self, signed: &SignedOp) -> Result<ProposalState, RosterError> {
        let (hash, op) = signed.checked(Signatures::Check)?;
        if !op.body.needs_quorum() {
            return Err(RosterError::Malformed(format!(
                "a {} operation needs no co-signatures; sign and publish it directly",
                op.body.kind()
            )));
        }
        match op.alliance {
            Some(found) if found != self.alliance => {
                return Err(RosterError::WrongAlliance {
                    expected: self.alliance,
                    found,
                })
            }
            Some(_) => {}
            None => return Err(RosterError::CreateNotRoot),
        }
        let missing: Vec<Hash> = op
            .parents
            .iter()
            .filter(|p| !self.entries.contains_key(p))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(RosterError::MissingParents(missing));
        }
        let state = self.state_at(&op.parents)?;
        let signers = signed.signers();
        authorise_with(&state, &op, &signers, false)
            .map_err(|reason| RosterError::Unauthorised { op: hash, reason })?;
        Ok(ProposalState {
            hash,
            approved_by: signers
                .into_iter()
                .filter(|k| state.is_coordinator(k))
                .collect(),
            coordinators: state.coordinators.keys().copied().collect(),
            threshold: state.threshold,
            applied: self.entries.contains_key(&hash),
            op,
        })
    }

    /// The operation that has since removed `key` from `space` (or revoked the space), judged at the
    /// current heads, for audit flags such as "signed by a since-removed key".
    pub fn is_revoked_now(&self, key: &PublicKey, space: &SpaceId) -> Option<Hash> {
        let entry = self.current.spaces.get(space)?;
        if let Some((by, _)) = &entry.revoked {
            return Some(*by);
        }
        if entry.devices.contains_key(key) {
            return None;
        }
        entry.removed_devices.get(key).copied()
    }

    fn parents_of(&self, hash: &Hash) -> &[Hash] {
        self.entries
            .get(hash)
            .map(|e| e.op.parents.as_slice())
            .unwrap_or(&[])
    }

    /// Kahn's algorithm over `set` (which must be closed under parents), smallest hash first among the
    /// ready operations, so the order depends only on the set.
    fn topological(&self, set: &BTreeSet<Hash>) -> Vec<Hash> {
        let mut waiting_on: HashMap<Hash, usize> = HashMap::new();
        let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
        let mut ready = BinaryHeap::new();
        for h in set {
            let parents = self.parents_of(h);
            if parents.is_empty() {
                ready.push(Reverse(*h));
            } else {
                waiting_on.insert(*h, parents.len());
                for p in parents {
                    children.entry(*p).or_default().push(*h);
                }
            }
        }
        let mut out = Vec::with_capacity(set.len());
        while let Some(Reverse(h)) = ready.pop() {
            out.push(h);
            for child in children.get(&h).into_iter().flatten() {
                if let Some(n) = waiting_on.get_mut(child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(Reverse(*child));
                    }
                }
            }
        }
        out
    }
}

/// The insert-time check: was `op` authorised in `state`, the state at its own parents? Returns the
/// reason as a sentence fragment when not.
fn authorise(state: &RosterState, op: &Op, signers: &[PublicKey]) -> Result<(), String> {
    authorise_with(state, op, signers, true)
}

/// [`authorise`], optionally without counting the quorum's signatures (for proposals still collecting them).
fn authorise_with(
    state: &RosterState,
    op: &Op,
    signers: &[PublicKey],
    count_quorum: bool,
) -> Result<(), String> {
    let author = &op.author;
    let coordinator = state.is_coordinator(author);
    let single = |space: &SpaceId, entry: &SpaceEntry, what: &str| {
        if coordinator || entry.devices.contains_key(author) {
            Ok(())
        } else {
            Err(format!(
                "only a coordinator or a current device of space {space} may {what}, and {author} is neither"
            ))
        }
    };
    match &op.body {
        OpBody::CreateAlliance { .. } => {
            Err("a create-alliance operation can only start a roster".into())
        }
        OpBody::AdmitSpace { space, .. } => {
            if !coordinator {
                return Err(format!(
                    "only a coordinator may admit a space, and {author} is not one at the operation's parents"
                ));
            }
            if let Some(entry) = state.spaces.get(space) {
                return Err(format!(
                    "space {space} was already admitted by roster operation {}",
                    entry.admitted_by.short()
                ));
            }
            Ok(())
        }
        OpBody::AddDevice { space, device } => {
            let entry = state.live_space(space)?;
            single(space, entry, "add a device to it")?;
            if entry.devices.contains_key(device) {
                return Err(format!("{device} is already a device of space {space}"));
            }
            if entry.devices.len() >= MAX_DEVICES_PER_SPACE {
                return Err(format!(
                    "space {space} already has the limit of {MAX_DEVICES_PER_SPACE} devices"
                ));
            }
            Ok(())
        }
        OpBody::RemoveDevice { space, device, .. } | OpBody::RemoveDeviceV1 { space, device } => {
            let entry = state.live_space(space)?;
            single(space, entry, "remove a device from it")?;
            if !entry.devices.contains_key(device) {
                return Err(format!("{device} is not a current device of space {space}"));
            }
            Ok(())
        }
        OpBody::SetPeerAddrs { space, .. } => {
            let entry = state.live_space(space)?;
            single(space, entry, "set its peer addresses")
        }
        OpBody::RevokeSpace { space, .. } | OpBody::RevokeSpaceV1 { space, .. } => {
            state.live_space(space)?;
            if !coordinator {
                return Err(format!(
                    "only a coordinator may revoke a space, and {author} is not one at the operation's parents"
                ));
            }
            Ok(())
        }
        OpBody::AddCoordinator { key } => {
            quorum(state, author, signers, count_quorum)?;
            if state.is_coordinator(key) {
                return Err(format!("{key} is already a coordinator"));
            }
            if state.coordinators.len() >= MAX_COORDINATORS {
                return Err(format!(
                    "the alliance already has the limit of {MAX_COORDINATORS} coordinators"
                ));
            }
            Ok(())
        }
        OpBody::RemoveCoordinator { key } => {
            quorum(state, author, signers, count_quorum)?;
            let count = state.coordinators.len();
            if !state.is_coordinator(key) {
                return Err(format!("{key} is not a coordinator"));
            }
            if count == 1 {
                return Err("the last coordinator cannot be removed".into());
            }
            if count - 1 < usize::from(state.threshold) {
                return Err(format!(
                    "removing {key} would leave {} coordinators, fewer than the threshold of {}; lower the threshold first",
                    count - 1,
                    state.threshold
                ));
            }
            Ok(())
        }
        OpBody::SetThreshold { threshold } => {
            quorum(state, author, signers, count_quorum)?;
            let count = state.coordinators.len();
            if usize::from(*threshold) > count {
                return Err(format!(
                    "a threshold of {threshold} is more than the {count} coordinators"
                ));
            }
            Ok(())
        }
    }
}

/// A quorum change needs its author and at least `threshold` distinct signers to be coordinators.
fn quorum(
    state: &RosterState,
    author: &PublicKey,
    signers: &[PublicKey],
    count: bool,
) -> Result<(), String> {
    if !state.is_coordinator(author) {
        return Err(format!(
            "{author} is not a coordinator at the operation's parents"
        ));
    }
    if !count {
        return Ok(());
    }
    let count = signers.iter().filter(|k| state.is_coordinator(k)).count();
    if count < usize::from(state.threshold) {
        return Err(format!(
            "this coordinator change needs the signatures of {} coordinators and carries {count}",
            state.threshold
        ));
    }
    Ok(())
}

/// One fold of a causal closure, with the indexes that the concurrency rules need.
struct Fold<'a> {
    roster: &'a Roster,
    order: Vec<Hash>,
    position: HashMap<Hash, usize>,
    device_removals: HashMap<(SpaceId, PublicKey), Vec<Hash>>,
    coordinator_removals: HashMap<PublicKey, Vec<Hash>>,
    revocations: HashMap<SpaceId, Vec<Hash>>,
}

impl<'a> Fold<'a> {
    fn new(roster: &'a Roster, order: Vec<Hash>) -> Self {
        let mut fold = Fold {
            roster,
            position: order.iter().enumerate().map(|(i, h)| (*h, i)).collect(),
            order,
            device_removals: HashMap::new(),
            coordinator_removals: HashMap::new(),
            revocations: HashMap::new(),
        };
        for h in &fold.order {
            let Some(op) = roster.get_op(h) else { continue };
            match &op.body {
                OpBody::RemoveDevice { space, device, .. }
                | OpBody::RemoveDeviceV1 { space, device } => fold
                    .device_removals
                    .entry((space.clone(), *device))
                    .or_default()
                    .push(*h),
                OpBody::RemoveCoordinator { key } => {
                    fold.coordinator_removals.entry(*key).or_default().push(*h)
                }
                OpBody::RevokeSpace { space, .. } | OpBody::RevokeSpaceV1 { space, .. } => {
                    fold.revocations.entry(space.clone()).or_default().push(*h)
                }
                _ => {}
            }
        }
        fold
    }

    /// A fold context for an operation that descends from every other one: no concurrency to judge.
    fn linear(roster: &'a Roster) -> Self {
        Fold {
            roster,
            order: Vec::new(),
            position: HashMap::new(),
            device_removals: HashMap::new(),
            coordinator_removals: HashMap::new(),
            revocations: HashMap::new(),
        }
    }

    fn pos(&self, h: &Hash) -> usize {
        self.position.get(h).copied().unwrap_or(usize::MAX)
    }

    /// Is `a` in the strict causal past of `b`? Ancestors always come earlier in the order, so the search
    /// skips everything placed before `a`.
    fn is_ancestor(&self, a: &Hash, b: &Hash) -> bool {
        let floor = self.pos(a);
        if floor >= self.pos(b) {
            return false;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![*b];
        while let Some(h) = stack.pop() {
            for p in self.roster.parents_of(&h) {
                if p == a {
                    return true;
                }
                if self.pos(p) > floor && seen.insert(*p) {
                    stack.push(*p);
                }
            }
        }
        false
    }

    /// Is one of `removals`, placed after `x`, concurrent with it (not a descendant)? Removals placed
    /// before `x` are already reflected in the state.
    fn removed_after(&self, removals: Option<&Vec<Hash>>, x: &Hash) -> bool {
        let px = self.pos(x);
        removals
            .into_iter()
            .flatten()
            .any(|r| self.pos(r) > px && !self.is_ancestor(x, r))
    }

    /// Is one of `removals`, placed before `x`, concurrent with it (not an ancestor)? Used to keep a
    /// concurrent re-add from undoing a removal.
    fn removed_before(&self, removals: Option<&Vec<Hash>>, x: &Hash) -> bool {
        let px = self.pos(x);
        removals
            .into_iter()
            .flatten()
            .any(|r| self.pos(r) < px && !self.is_ancestor(r, x))
    }

    fn coordinator_ok(&self, state: &RosterState, key: &PublicKey, x: &Hash) -> bool {
        state.is_coordinator(key) && !self.removed_after(self.coordinator_removals.get(key), x)
    }

    fn device_ok(&self, state: &RosterState, space: &SpaceId, key: &PublicKey, x: &Hash) -> bool {
        state
            .spaces
            .get(space)
            .is_some_and(|e| e.devices.contains_key(key))
            && !self.removed_after(self.device_removals.get(&(space.clone(), *key)), x)
    }

    fn space_live(&self, state: &RosterState, space: &SpaceId, x: &Hash) -> bool {
        state.spaces.get(space).is_some_and(|e| e.revoked.is_none())
            && !self.removed_after(self.revocations.get(space), x)
    }

    /// The quorum rule of `authorise`, with coordinators removed concurrently not counting. It is measured
    /// against the threshold at this point of the fold, so a concurrent threshold change can tip it.
    fn quorum_ok(&self, state: &RosterState, op: &Op, signers: &[PublicKey], x: &Hash) -> bool {
        if !self.coordinator_ok(state, &op.author, x) {
            return false;
        }
        let count = signers
            .iter()
            .filter(|k| self.coordinator_ok(state, k, x))
            .count();
        count >= usize::from(state.threshold)
    }

    fn run(&self) -> RosterState {
        let mut state = self.roster.genesis.clone();
        for h in &self.order {
            if let Some(entry) = self.roster.entries.get(h) {
                self.apply(&mut state, h, &entry.op, &entry.signed.signers());
            }
        }
        state
    }

    /// Applies one operation that was valid at its parents, unless a concurrent removal voids it.
    fn apply(&self, state: &mut RosterState, x: &Hash, op: &Op, signers: &[PublicKey]) {
        let author = &op.author;
        match &op.body {
            // The root: already in `genesis`.
            OpBody::CreateAlliance { .. } => {}
            OpBody::AdmitSpace {
                space,
                name,
                devices,
            } => {
                // A concurrent second admission of the same space loses to the first in the order.
                if !self.coordinator_ok(state, author, x) || state.spaces.contains_key(space) {
                    return;
                }
                state.spaces.insert(
                    space.clone(),
                    SpaceEntry {
                        name: name.clone(),
                        devices: devices.iter().map(|k| (*k, *x)).collect(),
                        admitted_by: *x,
                        revoked: None,
                        revoked_listed: false,
                        removed_devices: BTreeMap::new(),
                        peer_addrs: Vec::new(),
                    },
                );
            }
            OpBody::AddDevice { space, device } => {
                let authorised = self.coordinator_ok(state, author, x)
                    || self.device_ok(state, space, author, x);
                if !authorised
                    || !self.space_live(state, space, x)
                    || self.removed_before(self.device_removals.get(&(space.clone(), *device)), x)
                {
                    return;
                }
                if let Some(entry) = state.spaces.get_mut(space) {
                    if !entry.devices.contains_key(device)
                        && entry.devices.len() < MAX_DEVICES_PER_SPACE
                    {
                        entry.devices.insert(*device, *x);
                        entry.removed_devices.remove(device);
                    }
                }
            }
            OpBody::RemoveDevice { space, device, .. }
            | OpBody::RemoveDeviceV1 { space, device } => {
                if let Some(entry) = state.spaces.get_mut(space) {
                    if entry.revoked.is_none() {
                        entry.devices.remove(device);
                        entry.removed_devices.entry(*device).or_insert(*x);
                    }
                }
            }
            OpBody::RevokeSpace {
                space,
                reason,
                listed,
                ..
            } => revoke(state, space, *x, reason, *listed),
            OpBody::RevokeSpaceV1 { space, reason } => revoke(state, space, *x, reason, false),
            OpBody::SetPeerAddrs { space, addrs } => {
                let authorised = self.coordinator_ok(state, author, x)
                    || self.device_ok(state, space, author, x);
                if authorised && self.space_live(state, space, x) {
                    if let Some(entry) = state.spaces.get_mut(space) {
                        entry.peer_addrs = addrs.clone();
                    }
                }
            }
            OpBody::AddCoordinator { key } => {
                if self.quorum_ok(state, op, signers, x)
                    && !state.is_coordinator(key)
                    && state.coordinators.len() < MAX_COORDINATORS
                    && !self.removed_before(self.coordinator_removals.get(key), x)
                {
                    state.coordinators.insert(*key, *x);
                }
            }
            OpBody::RemoveCoordinator { key } => {
                // Concurrent removals can each be valid and together remove everyone; keep the last one.
                if state.is_coordinator(key) && state.coordinators.len() > 1 {
                    state.coordinators.remove(key);
                    let count = u8::try_from(state.coordinators.len()).unwrap_or(u8::MAX);
                    state.threshold = state.threshold.min(count);
                }
            }
            OpBody::SetThreshold { threshold } => {
                if self.quorum_ok(state, op, signers, x)
                    && usize::from(*threshold) <= state.coordinators.len()
                {
                    state.threshold = *threshold;
                }
            }
        }
    }
}

/// The first revocation of a space in the fold order takes effect; later ones change nothing.
fn revoke(state: &mut RosterState, space: &SpaceId, by: Hash, reason: &str, listed: bool) {
    if let Some(entry) = state.spaces.get_mut(space) {
        if entry.revoked.is_none() {
            entry.revoked = Some((by, reason.to_string()));
            entry.revoked_listed = listed;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::key::DeviceKey;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// Compact ancestor sets hold exactly the causal closure, on random graphs that mix chains,
    /// concurrent branches and merges; and a chain keeps no words at all.
    #[test]
    fn compact_ancestor_sets_hold_exactly_the_closure() {
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let n = 300;
            let mut sets: Vec<Ancestors> = vec![Ancestors::of(0, std::iter::empty())];
            let mut closure: Vec<HashSet<usize>> = vec![HashSet::from([0])];
            for me in 1..n {
                // Mostly the previous op (a chain), sometimes one or more older ones (a branch or a merge).
                let parents: BTreeSet<usize> = match rng.gen_range(0..4) {
                    0 | 1 => BTreeSet::from([me - 1]),
                    2 => BTreeSet::from([rng.gen_range(0..me)]),
                    _ => (0..rng.gen_range(1..4))
                        .map(|_| rng.gen_range(0..me))
                        .collect(),
                };
                let set = Ancestors::of(me, parents.iter().map(|p| &sets[*p]));
                let mut naive = HashSet::from([me]);
                for p in &parents {
                    naive.extend(closure[*p].iter().copied());
                }
                for a in 0..n + 70 {
                    assert_eq!(
                        set.contains(a),
                        naive.contains(&a),
                        "seed {seed}: is {a} an ancestor of {me}"
                    );
                }
                sets.push(set);
                closure.push(naive);
            }
        }
        let mut chain = vec![Ancestors::of(0, std::iter::empty())];
        for me in 1..10_000 {
            let set = Ancestors::of(me, std::iter::once(&chain[me - 1]));
            chain.push(set);
        }
        assert!(chain.iter().all(|s| s.words.is_empty()));
        assert!(
            chain[9_999].contains(0)
                && chain[9_999].contains(9_999)
                && !chain[9_998].contains(9_999)
        );
    }

    const T0: i64 = 1_700_000_000_000;

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn pk(n: u8) -> PublicKey {
        key(n).public_key()
    }

    /// An operation of `roster`'s alliance with explicit parents, signed by `signer` as author.
    fn op_at(
        roster: &Roster,
        signer: &DeviceKey,
        parents: &[Hash],
        body: OpBody,
        t: i64,
    ) -> SignedOp {
        let op = Op {
            alliance: Some(roster.alliance_id()),
            parents: parents.to_vec(),
            author: signer.public_key(),
            created_at_ms: t,
            body,
        };
        SignedOp::sign(&op, signer)
    }

    fn alliance(extra: &[u8], threshold: u8) -> Roster {
        let extra = extra.iter().map(|n| pk(*n)).collect();
        Roster::create(&key(1), "North Alliance", extra, threshold, T0)
            .unwrap()
            .0
    }

    fn admit_body(devices: &[u8]) -> OpBody {
        let devices: Vec<PublicKey> = devices.iter().map(|n| pk(*n)).collect();
        OpBody::AdmitSpace {
            space: SpaceId::derive(&devices[0]),
            name: "Desk Co".into(),
            devices,
        }
    }

    fn space(founder: u8) -> SpaceId {
        SpaceId::derive(&pk(founder))
    }

    /// Inserts a freshly proposed operation and returns its hash.
    fn commit(roster: &mut Roster, signer: &DeviceKey, body: OpBody, t: i64) -> Hash {
        let op = roster.propose(signer, body, t);
        assert_eq!(roster.insert(op.clone()), Ok(Inserted::New));
        op.hash()
    }

    fn unauthorised(result: Result<Inserted, RosterError>, needle: &str) {
        match result {
            Err(RosterError::Unauthorised { reason, .. }) => {
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
            }
            other => panic!("expected unauthorised ({needle}), got {other:?}"),
        }
    }

    #[test]
    fn create_alliance_sets_id_name_and_coordinators() {
        let (roster, create) =
            Roster::create(&key(1), "North Alliance", vec![pk(2)], 2, T0).unwrap();
        assert_eq!(roster.alliance_id(), AllianceId(create.hash()));
        assert_eq!(roster.name(), "North Alliance");
        assert_eq!(roster.heads(), vec![create.hash()]);
        assert_eq!(roster.len(), 1);
        let state = roster.state();
        assert_eq!(state.threshold, 2);
        let coordinators: Vec<PublicKey> = state.coordinators.keys().copied().collect();
        let mut expected = vec![pk(1), pk(2)];
        expected.sort();
        assert_eq!(coordinators, expected);
        assert_eq!(roster.get(&create.hash()), Some(&create));
        assert_eq!(roster.state_at(&[]).unwrap(), *state);
    }

    #[test]
    fn create_alliance_is_checked() {
        for (extra, threshold) in [(vec![], 0u8), (vec![pk(2)], 3)] {
            let err = Roster::create(&key(1), "A", extra, threshold, T0).unwrap_err();
            assert!(
                matches!(err, RosterError::Malformed(ref m) if m.contains("threshold")),
                "{err}"
            );
        }
        // The author must be among the coordinators it names.
        let op = Op {
            alliance: None,
            parents: vec![],
            author: pk(1),
            created_at_ms: T0,
            body: OpBody::CreateAlliance {
                name: "A".into(),
                coordinators: vec![pk(2)],
                threshold: 1,
            },
        };
        let err = Roster::new(SignedOp::sign(&op, &key(1))).unwrap_err();
        assert!(
            err.to_string().contains("must be one of its coordinators"),
            "{err}"
        );
        // Signed by someone else than its author.
        let mut op = op;
        op.body = OpBody::CreateAlliance {
            name: "A".into(),
            coordinators: vec![pk(1)],
            threshold: 1,
        };
        let err = Roster::new(SignedOp::sign(&op, &key(2))).unwrap_err();
        assert_eq!(err, RosterError::AuthorDidNotSign(pk(1)));
        // Anything else cannot start a roster.
        let roster = alliance(&[], 1);
        let admit = roster.propose(&key(1), admit_body(&[10]), T0);
        assert_eq!(Roster::new(admit).unwrap_err(), RosterError::NotACreate);
    }

    /// A roster with admissions, a device added and removed, and two concurrent operations (so its
    /// state was folded, not only applied in line).
    fn busy_roster() -> (Roster, Vec<Hash>) {
        let mut r = alliance(&[], 1);
        let c = key(1);
        let start = r.heads();
        commit(&mut r, &c, admit_body(&[10]), T0 + 1);
        commit(&mut r, &c, admit_body(&[20, 21]), T0 + 2);
        commit(
            &mut r,
            &c,
            OpBody::AddDevice {
                space: space(10),
                device: pk(11),
            },
            T0 + 3,
        );
        let middle = r.heads();
        commit(
            &mut r,
            &c,
            OpBody::RemoveDevice {
                space: space(20),
                device: pk(21),
                keep: Vec::new(),
            },
            T0 + 4,
        );
        // Two operations on the same parents: the state is a fold of both branches.
        let parents = r.heads();
        let a = op_at(&r, &c, &parents, admit_body(&[30]), T0 + 5);
        let b = op_at(&r, &c, &parents, admit_body(&[40]), T0 + 6);
        assert_eq!(r.insert(a), Ok(Inserted::New));
        assert_eq!(r.insert(b), Ok(Inserted::New));
        assert_eq!(r.heads().len(), 2);
        (r, vec![start[0], middle[0]])
    }

    /// An operation verified ahead (on another thread) enters the roster as one checked on insert does;
    /// one whose signature does not verify, or that is not a valid operation, is given back with why.
    #[test]
    fn an_operation_verified_ahead_enters_as_one_checked_on_insert() {
        let mut checked = alliance(&[], 1);
        let mut ahead = checked.clone();
        let op = checked.propose(&key(1), admit_body(&[10]), T0 + 1);
        assert_eq!(checked.insert(op.clone()), Ok(Inserted::New));
        let verified = op.clone().verified().unwrap();
        assert_eq!(verified.signed(), &op);
        assert_eq!(ahead.insert_verified(verified.clone()), Ok(Inserted::New));
        assert_eq!(ahead.insert_verified(verified), Ok(Inserted::Duplicate));
        assert_eq!(ahead.state(), checked.state());
        assert_eq!(ahead.heads(), checked.heads());
        // Another key's signature in place of the author's.
        let mut forged = ahead.propose(&key(1), admit_body(&[11]), T0 + 2);
        forged.signatures[0].1 = key(2).sign(Domain::RosterOp, forged.bytes());
        let (back, why) = forged.clone().verified().unwrap_err();
        assert_eq!(back, forged);
        assert!(matches!(why, RosterError::BadSignature(_)), "{why:?}");
        assert_eq!(
            ahead.insert(forged).unwrap_err(),
            why,
            "the same error as on insert"
        );
        // Bytes that are no operation.
        let garbage = SignedOp {
            bytes: vec![0xff; 4],
            signatures: Vec::new(),
        };
        assert!(garbage.verified().is_err());
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_roster() {
        let (r, earlier) = busy_roster();
        let bytes = r.snapshot();
        let back = Roster::from_snapshot(r.alliance_id(), &bytes).unwrap();
        assert_eq!(back.state(), r.state());
        // The state alone reads back the same, without the operations.
        let (state, heads) = Roster::state_from_snapshot(r.alliance_id(), &bytes).unwrap();
        assert_eq!(&state, r.state());
        assert_eq!(heads.into_iter().collect::<Vec<_>>(), r.heads());
        assert_eq!(back.heads(), r.heads());
        assert_eq!(back.len(), r.len());
        assert_eq!(back.name(), r.name());
        assert_eq!(
            back.snapshot(),
            bytes,
            "a snapshot of the read-back roster differs"
        );
        // Answers at earlier heads come from the ancestry, recomputed on reading.
        for heads in [earlier.clone(), r.heads()] {
            assert_eq!(back.state_at(&heads).unwrap(), r.state_at(&heads).unwrap());
            for (k, s) in [(10, 10), (11, 10), (20, 20), (21, 20), (30, 30), (40, 40)] {
                assert_eq!(
                    back.may_sign(&heads, &pk(k), &space(s)),
                    r.may_sign(&heads, &pk(k), &space(s)),
                    "key {k} at {heads:?}"
                );
                assert_eq!(
                    back.removals(&heads, &pk(k), &space(s)),
                    r.removals(&heads, &pk(k), &space(s))
                );
            }
        }
        assert_eq!(
            back.ops_in_order().iter().map(|o| o.0).collect::<Vec<_>>(),
            r.ops_in_order().iter().map(|o| o.0).collect::<Vec<_>>()
        );
        // It goes on taking operations like the original.
        let (mut a, mut b) = (r.clone(), back);
        for roster in [&mut a, &mut b] {
            commit(roster, &key(1), admit_body(&[50]), T0 + 7);
        }
        assert_eq!(a.state(), b.state());
        assert_eq!(a.heads(), b.heads());
    }

    #[test]
    fn a_snapshot_that_does_not_fit_is_refused() {
        let (r, _) = busy_roster();
        let bytes = r.snapshot();
        let decode_error = |res: Result<Roster, RosterError>| match res {
            Err(RosterError::Decode { what, .. }) => assert_eq!(what, "roster snapshot"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a bad snapshot was read back"),
        };
        // Another alliance's.
        let other = alliance(&[2], 1);
        decode_error(Roster::from_snapshot(other.alliance_id(), &bytes));
        decode_error(Roster::state_from_snapshot(other.alliance_id(), &bytes).map(|_| r.clone()));
        // Cut short, or with bytes after it.
        assert!(Roster::from_snapshot(r.alliance_id(), &bytes[..bytes.len() / 2]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Roster::from_snapshot(r.alliance_id(), &longer).is_err());
        // An operation before its parent.
        let mut snapshot: Snapshot = decode("roster snapshot", &bytes).unwrap();
        snapshot.ops.swap(1, 2);
        snapshot.ops.swap(2, 3);
        let swapped = encode(&snapshot);
        decode_error(Roster::from_snapshot(r.alliance_id(), &swapped));
        // Heads that are not the operations' heads.
        let mut snapshot: Snapshot = decode("roster snapshot", &bytes).unwrap();
        snapshot.heads.pop_first();
        decode_error(Roster::from_snapshot(r.alliance_id(), &encode(&snapshot)));
        // An unknown version (version 1 put the operations first).
        let mut snapshot: Snapshot = decode("roster snapshot", &bytes).unwrap();
        snapshot.version = 1;
        decode_error(Roster::from_snapshot(r.alliance_id(), &encode(&snapshot)));
        decode_error(
            Roster::state_from_snapshot(r.alliance_id(), &encode(&snapshot)).map(|_| r.clone()),
        );
    }

    #[test]
    fn admitted_space_devices_may_sign() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        let heads = roster.heads();
        assert_eq!(
            roster.may_sign(&heads, &pk(10), &space(10)),
            Ok(Authorisation { op: admit })
        );
        assert_eq!(
            roster.may_sign(&heads, &pk(11), &space(10)),
            Ok(Authorisation { op: admit })
        );
        assert_eq!(
            roster.may_sign(&heads, &pk(12), &space(10)),
            Err(Denied::NotADevice)
        );
        assert_eq!(
            roster.may_sign(&heads, &pk(10), &space(20)),
            Err(Denied::UnknownSpace)
        );
        assert_eq!(roster.state().spaces_of(&pk(11)), vec![space(10)]);
        assert_eq!(roster.state().spaces[&space(10)].admitted_by, admit);

        // Not twice, not with a space id that does not match, not by a device.
        let again = roster.propose(&key(1), admit_body(&[10]), T0 + 2);
        unauthorised(roster.insert(again), "already admitted");
        let mismatched = roster.propose(
            &key(1),
            OpBody::AdmitSpace {
                space: space(20),
                name: "X".into(),
                devices: vec![pk(21)],
            },
            T0 + 3,
        );
        assert!(matches!(
            roster.insert(mismatched),
            Err(RosterError::Malformed(m)) if m.contains("does not match")
        ));
        let by_device = roster.propose(&key(10), admit_body(&[20]), T0 + 4);
        unauthorised(roster.insert(by_device), "only a coordinator may admit");
        assert_eq!(roster.len(), 2);
    }

    #[test]
    fn devices_are_added_and_removed_by_their_space() {
        let mut roster = alliance(&[], 1);
        commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        commit(&mut roster, &key(1), admit_body(&[20]), T0 + 2);
        let sp = space(10);
        let add = commit(
            &mut roster,
            &key(10),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(12),
            },
            T0 + 3,
        );
        assert_eq!(roster.state().spaces[&sp].devices.get(&pk(12)), Some(&add));
        let remove = commit(
            &mut roster,
            &key(12),
            OpBody::RemoveDevice {
                space: sp.clone(),
                device: pk(11),
                keep: vec![],
            },
            T0 + 4,
        );
        let heads = roster.heads();
        assert_eq!(
            roster.may_sign(&heads, &pk(11), &sp),
            Err(Denied::DeviceRemoved { by: remove })
        );
        assert_eq!(roster.is_revoked_now(&pk(11), &sp), Some(remove));
        assert_eq!(roster.is_revoked_now(&pk(12), &sp), None);

        // A stranger, a device of another space and a removed device may not touch it.
        for (signer, t) in [(13u8, 5), (20, 6), (11, 7)] {
            let op = roster.propose(
                &key(signer),
                OpBody::AddDevice {
                    space: sp.clone(),
                    device: pk(14),
                },
                T0 + t,
            );
            unauthorised(roster.insert(op), "is neither");
        }
        let twice = roster.propose(
            &key(10),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(12),
            },
            T0 + 8,
        );
        unauthorised(roster.insert(twice), "already a device");
        let absent = roster.propose(
            &key(10),
            OpBody::RemoveDevice {
                space: sp.clone(),
                device: pk(14),
                keep: vec![],
            },
            T0 + 9,
        );
        unauthorised(roster.insert(absent), "not a current device");
        let unknown = roster.propose(
            &key(1),
            OpBody::AddDevice {
                space: space(30),
                device: pk(14),
            },
            T0 + 10,
        );
        unauthorised(roster.insert(unknown), "is not in the roster");

        // A device removed earlier can be re-added by an operation that follows the removal.
        let readd = commit(
            &mut roster,
            &key(1),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(11),
            },
            T0 + 11,
        );
        assert_eq!(
            roster.may_sign(&roster.heads(), &pk(11), &sp),
            Ok(Authorisation { op: readd })
        );
        assert_eq!(roster.is_revoked_now(&pk(11), &sp), None);
    }

    #[test]
    fn revoked_space_refuses_everything() {
        let mut roster = alliance(&[], 1);
        commit(&mut roster, &key(1), admit_body(&[10]), T0 + 1);
        let sp = space(10);
        let by_device = roster.propose(
            &key(10),
            OpBody::RevokeSpace {
                space: sp.clone(),
                reason: "bye".into(),
                keep: vec![],
                listed: false,
            },
            T0 + 2,
        );
        unauthorised(roster.insert(by_device), "only a coordinator may revoke");
        let revoke = commit(
            &mut roster,
            &key(1),
            OpBody::RevokeSpace {
                space: sp.clone(),
                reason: "closed".into(),
                keep: vec![],
                listed: false,
            },
            T0 + 3,
        );
        let heads = roster.heads();
        assert_eq!(
            roster.may_sign(&heads, &pk(10), &sp),
            Err(Denied::SpaceRevoked { by: revoke })
        );
        assert_eq!(roster.is_revoked_now(&pk(10), &sp), Some(revoke));
        assert_eq!(
            roster.state().spaces[&sp].revoked,
            Some((revoke, "closed".to_string()))
        );
        assert!(roster.state().spaces_of(&pk(10)).is_empty());
        for (body, t) in [
            (
                OpBody::AddDevice {
                    space: sp.clone(),
                    device: pk(11),
                },
                4,
            ),
            (
                OpBody::SetPeerAddrs {
                    space: sp.clone(),
                    addrs: vec!["/ip4/1.2.3.4/tcp/1".into()],
                },
                5,
            ),
            (
                OpBody::RevokeSpace {
                    space: sp.clone(),
                    reason: "again".into(),
                    keep: vec![],
                    listed: false,
                },
                6,
            ),
        ] {
            let op = roster.propose(&key(1), body, T0 + t);
            unauthorised(roster.insert(op), "was revoked");
        }
        // A revoked space stays taken: it cannot be admitted again.
        let readmit = roster.propose(&key(1), admit_body(&[10]), T0 + 7);
        unauthorised(roster.insert(readmit), "already admitted");
    }

    #[test]
    fn peer_addrs_are_set_by_a_coordinator_or_a_device() {
        let mut roster = alliance(&[], 1);
        commit(&mut roster, &key(1), admit_body(&[10]), T0 + 1);
        let sp = space(10);
        let addrs = vec!["/ip4/203.0.113.5/udp/4001/quic-v1".to_string()];
        commit(
            &mut roster,
            &key(10),
            OpBody::SetPeerAddrs {
                space: sp.clone(),
                addrs: addrs.clone(),
            },
            T0 + 2,
        );
        assert_eq!(roster.state().spaces[&sp].peer_addrs, addrs);
        commit(
            &mut roster,
            &key(1),
            OpBody::SetPeerAddrs {
                space: sp.clone(),
                addrs: vec![],
            },
            T0 + 3,
        );
        assert!(roster.state().spaces[&sp].peer_addrs.is_empty());
        let stranger = roster.propose(
            &key(11),
            OpBody::SetPeerAddrs {
                space: sp.clone(),
                addrs,
            },
            T0 + 4,
        );
        unauthorised(roster.insert(stranger), "is neither");
    }

    #[test]
    fn quorum_changes_need_threshold_signatures() {
        let mut roster = alliance(&[2, 3], 2);
        let mut add = roster.propose(&key(1), OpBody::AddCoordinator { key: pk(4) }, T0 + 1);
        let hash = add.hash();
        unauthorised(
            roster.insert(add.clone()),
            "needs the signatures of 2 coordinators and carries 1",
        );
        // A co-signature by a non-coordinator does not count.
        add.cosign(&key(9));
        unauthorised(roster.insert(add.clone()), "carries 1");
        add.cosign(&key(2));
        add.cosign(&key(2));
        assert_eq!(add.signatures().len(), 3, "signing twice is a no-op");
        assert_eq!(add.hash(), hash, "co-signatures do not change the hash");
        assert_eq!(roster.insert(add), Ok(Inserted::New));
        assert_eq!(roster.state().coordinators.get(&pk(4)), Some(&hash));

        // The author must itself be a coordinator, whoever co-signs.
        let mut by_stranger =
            roster.propose(&key(9), OpBody::SetThreshold { threshold: 1 }, T0 + 2);
        by_stranger.cosign(&key(1));
        by_stranger.cosign(&key(2));
        unauthorised(roster.insert(by_stranger), "is not a coordinator");

        let mut too_high = roster.propose(&key(1), OpBody::SetThreshold { threshold: 5 }, T0 + 3);
        too_high.cosign(&key(2));
        unauthorised(roster.insert(too_high), "more than the 4 coordinators");

        let mut raise = roster.propose(&key(1), OpBody::SetThreshold { threshold: 3 }, T0 + 4);
        raise.cosign(&key(3));
        assert_eq!(roster.insert(raise), Ok(Inserted::New));
        assert_eq!(roster.state().threshold, 3);

        let mut remove = roster.propose(&key(1), OpBody::RemoveCoordinator { key: pk(4) }, T0 + 5);
        remove.cosign(&key(2));
        unauthorised(roster.insert(remove.clone()), "needs the signatures of 3");
        remove.cosign(&key(4));
        assert_eq!(roster.insert(remove), Ok(Inserted::New));
        assert!(!roster.state().is_coordinator(&pk(4)));

        // 3 coordinators with threshold 3: removing one would leave fewer than the threshold.
        let mut below = roster.propose(&key(1), OpBody::RemoveCoordinator { key: pk(3) }, T0 + 6);
        below.cosign(&key(2));
        below.cosign(&key(3));
        unauthorised(roster.insert(below), "lower the threshold first");
    }

    #[test]
    fn strong_removal_names_what_it_keeps_and_constrains_only_the_old_heads() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        let sp = space(10);
        assert_eq!(roster.removals(&[admit], &pk(11), &sp), Ok(vec![]));
        let kept = [[7u8; 32]];
        let remove = commit(
            &mut roster,
            &key(1),
            OpBody::RemoveDevice {
                space: sp.clone(),
                device: pk(11),
                keep: kept.to_vec(),
            },
            T0 + 2,
        );
        // Naming heads before the removal: the removal constrains it, with what it keeps.
        assert_eq!(
            roster.removals(&[admit], &pk(11), &sp),
            Ok(vec![Removal {
                by: remove,
                revocation: false,
                keep: kept.to_vec()
            }])
        );
        // Another device of the space, and heads that include the removal, are not constrained.
        assert_eq!(roster.removals(&[admit], &pk(10), &sp), Ok(vec![]));
        assert_eq!(roster.removals(&[remove], &pk(11), &sp), Ok(vec![]));
        let unknown = Hash::of("test", b"nowhere");
        assert_eq!(
            roster.removals(&[unknown], &pk(11), &sp),
            Err(Denied::UnknownHeads(vec![unknown]))
        );
        // A re-add after the removal: heads naming it are free again.
        let readd = commit(
            &mut roster,
            &key(1),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(11),
            },
            T0 + 3,
        );
        assert_eq!(roster.removals(&[readd], &pk(11), &sp), Ok(vec![]));
        // A revocation constrains every device, and keeps the space listed when it asks to.
        let revoke = commit(
            &mut roster,
            &key(1),
            OpBody::RevokeSpace {
                space: sp.clone(),
                reason: "unpaid dues".into(),
                keep: vec![[8; 32]],
                listed: true,
            },
            T0 + 4,
        );
        let found = roster.removals(&[readd], &pk(10), &sp).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].revocation && found[0].by == revoke);
        let entry = &roster.state().spaces[&sp];
        assert!(entry.revoked_listed);
        assert_eq!(entry.revoked, Some((revoke, "unpaid dues".to_string())));
    }

    #[test]
    fn legacy_removals_still_decode_and_apply_but_constrain_nothing() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        let sp = space(10);
        // Position 3 and 4 of the enum: what stores written before strong removal hold.
        let remove = commit(
            &mut roster,
            &key(1),
            OpBody::RemoveDeviceV1 {
                space: sp.clone(),
                device: pk(11),
            },
            T0 + 2,
        );
        let bytes = roster.get(&remove).unwrap().to_bytes();
        let back = SignedOp::from_bytes(&bytes).unwrap();
        assert_eq!(back.op().unwrap().body.kind(), "remove-device");
        assert_eq!(
            roster.may_sign(&roster.heads(), &pk(11), &sp),
            Err(Denied::DeviceRemoved { by: remove })
        );
        assert_eq!(roster.removals(&[admit], &pk(11), &sp), Ok(vec![]));
        commit(
            &mut roster,
            &key(1),
            OpBody::RevokeSpaceV1 {
                space: sp.clone(),
                reason: "old".into(),
            },
            T0 + 3,
        );
        assert!(roster.state().spaces[&sp].revoked.is_some());
        assert!(!roster.state().spaces[&sp].revoked_listed);
    }

    #[test]
    fn too_many_kept_heads_are_malformed() {
        let roster = alliance(&[], 1);
        let keep: Vec<ListingHead> = (0..=MAX_KEPT_HEADS).map(|i| [i as u8; 32]).collect();
        let op = roster.propose(
            &key(1),
            OpBody::RemoveDevice {
                space: space(10),
                device: pk(11),
                keep,
            },
            T0,
        );
        let mut roster = roster;
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("listing heads"))
        );
    }

    #[test]
    fn proposals_collect_signatures_until_the_threshold() {
        let mut roster = alliance(&[2, 3], 2);
        let proposal = roster.propose(&key(1), OpBody::AddCoordinator { key: pk(4) }, T0 + 1);
        let state = roster.check_proposal(&proposal).unwrap();
        assert_eq!((state.approved_by.len(), state.threshold), (1, 2));
        assert!(!state.ready());
        assert_eq!(state.missing(), 1);
        // Signatures gathered elsewhere merge in, each verified; a stranger's does not count.
        let mut elsewhere = proposal.clone();
        elsewhere.cosign(&key(9));
        elsewhere.cosign(&key(2));
        let mut merged = proposal.clone();
        assert_eq!(merged.merge(&elsewhere).unwrap(), 2);
        assert_eq!(merged.merge(&elsewhere).unwrap(), 0);
        let state = roster.check_proposal(&merged).unwrap();
        assert!(state.ready(), "{state:?}");
        assert_eq!(state.approved_by.len(), 2);
        assert_eq!(roster.insert(merged.clone()), Ok(Inserted::New));
        assert!(roster.check_proposal(&merged).unwrap().applied);
        // A different operation cannot be merged, nor can a forged signature.
        let other = roster.propose(&key(1), OpBody::SetThreshold { threshold: 1 }, T0 + 2);
        assert!(merged.clone().merge(&other).is_err());
        let mut forged = other.clone();
        forged.signatures.push((pk(3), other.signatures[0].1));
        assert!(other.clone().merge(&forged).is_err());
        // Only quorum changes are proposals; an unauthorised author is refused at once.
        let admit = roster.propose(&key(1), admit_body(&[10]), T0 + 3);
        assert!(matches!(
            roster.check_proposal(&admit),
            Err(RosterError::Malformed(_))
        ));
        let by_stranger = roster.propose(&key(9), OpBody::AddCoordinator { key: pk(9) }, T0 + 4);
        assert!(matches!(
            roster.check_proposal(&by_stranger),
            Err(RosterError::Unauthorised { .. })
        ));
    }

    #[test]
    fn a_coordinator_removed_since_no_longer_countersigns() {
        let mut roster = alliance(&[2], 1);
        let before = roster.heads();
        assert_eq!(roster.coordinator_at(&before, &pk(2)), Ok(()));
        assert_eq!(
            roster.coordinator_at(&before, &pk(9)),
            Err(Denied::NotACoordinator)
        );
        commit(
            &mut roster,
            &key(1),
            OpBody::RemoveCoordinator { key: pk(2) },
            T0 + 1,
        );
        assert_eq!(
            roster.coordinator_at(&before, &pk(2)),
            Err(Denied::CoordinatorRemoved)
        );
    }

    #[test]
    fn the_last_coordinator_stays() {
        let mut roster = alliance(&[], 1);
        let op = roster.propose(&key(1), OpBody::RemoveCoordinator { key: pk(1) }, T0 + 1);
        unauthorised(roster.insert(op), "last coordinator");
        let op = roster.propose(&key(1), OpBody::AddCoordinator { key: pk(1) }, T0 + 2);
        unauthorised(roster.insert(op), "already a coordinator");
    }

    #[test]
    fn revocation_is_causal() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        let remove = commit(
            &mut roster,
            &key(1),
            OpBody::RemoveDevice {
                space: space(10),
                device: pk(11),
                keep: vec![],
            },
            T0 + 2,
        );
        // What 11 signed naming the old heads was authorised then; at the new heads it is not.
        assert_eq!(
            roster.may_sign(&[admit], &pk(11), &space(10)),
            Ok(Authorisation { op: admit })
        );
        assert_eq!(
            roster.may_sign(&[remove], &pk(11), &space(10)),
            Err(Denied::DeviceRemoved { by: remove })
        );
        assert_eq!(roster.is_revoked_now(&pk(11), &space(10)), Some(remove));
        let unknown = Hash::of("test", b"not here");
        assert_eq!(
            roster.may_sign(&[admit, unknown], &pk(10), &space(10)),
            Err(Denied::UnknownHeads(vec![unknown]))
        );
        assert_eq!(
            roster.state_at(&[unknown]),
            Err(RosterError::UnknownHeads(vec![unknown]))
        );
    }

    /// Builds: admit [10] -> add 12 -> remove 12, and a re-add of 12 concurrent with the removal.
    fn concurrent_readd(order_removal_first: bool) -> (Roster, Hash, Hash) {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10]), T0 + 1);
        let sp = space(10);
        let add = op_at(
            &roster,
            &key(1),
            &[admit],
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(12),
            },
            T0 + 2,
        );
        let remove = op_at(
            &roster,
            &key(1),
            &[add.hash()],
            OpBody::RemoveDevice {
                space: sp.clone(),
                device: pk(12),
                keep: vec![],
            },
            T0 + 3,
        );
        let readd = op_at(
            &roster,
            &key(10),
            &[admit],
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(12),
            },
            T0 + 4,
        );
        let batch = if order_removal_first {
            vec![add, remove.clone(), readd.clone()]
        } else {
            vec![readd.clone(), add, remove.clone()]
        };
        for op in batch {
            assert_eq!(roster.insert(op), Ok(Inserted::New));
        }
        (roster, remove.hash(), readd.hash())
    }

    #[test]
    fn strong_removal_beats_a_concurrent_readd() {
        let (a, remove, readd) = concurrent_readd(true);
        let (b, _, _) = concurrent_readd(false);
        assert_eq!(a.heads(), b.heads());
        assert_eq!(a.state(), b.state());
        let mut heads = vec![remove, readd];
        heads.sort();
        assert_eq!(a.heads(), heads);
        let sp = space(10);
        assert_eq!(
            a.may_sign(&heads, &pk(12), &sp),
            Err(Denied::DeviceRemoved { by: remove })
        );
        // On its own branch the re-add did authorise the key.
        assert_eq!(
            a.may_sign(&[readd], &pk(12), &sp),
            Ok(Authorisation { op: readd })
        );
        // A re-add that follows the removal does count.
        let mut a = a;
        let after = commit(
            &mut a,
            &key(1),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(12),
            },
            T0 + 9,
        );
        assert_eq!(
            a.may_sign(&a.heads(), &pk(12), &sp),
            Ok(Authorisation { op: after })
        );
    }

    #[test]
    fn a_removed_device_cannot_grant_by_naming_old_heads() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10, 11]), T0 + 1);
        let sp = space(10);
        // 11 adds 13 before its removal: that stays.
        let before = commit(
            &mut roster,
            &key(11),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(13),
            },
            T0 + 2,
        );
        commit(
            &mut roster,
            &key(1),
            OpBody::RemoveDevice {
                space: sp.clone(),
                device: pk(11),
                keep: vec![],
            },
            T0 + 3,
        );
        // The stolen key 11 backdates a grant of 14 and a peer-address change to the admission.
        let backdated = op_at(
            &roster,
            &key(11),
            &[admit],
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(14),
            },
            T0 + 4,
        );
        assert_eq!(
            roster.insert(backdated.clone()),
            Ok(Inserted::New),
            "it was valid at its parents"
        );
        let addrs = op_at(
            &roster,
            &key(11),
            &[admit],
            OpBody::SetPeerAddrs {
                space: sp.clone(),
                addrs: vec!["/dns4/evil/tcp/1".into()],
            },
            T0 + 5,
        );
        assert_eq!(roster.insert(addrs), Ok(Inserted::New));
        let heads = roster.heads();
        assert_eq!(
            roster.may_sign(&heads, &pk(13), &sp),
            Ok(Authorisation { op: before })
        );
        assert_eq!(
            roster.may_sign(&heads, &pk(14), &sp),
            Err(Denied::NotADevice)
        );
        assert!(roster.state().spaces[&sp].peer_addrs.is_empty());
        // 14 cannot build on the void grant either once the removal is in its past.
        let chained = roster.propose(
            &key(14),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(15),
            },
            T0 + 6,
        );
        unauthorised(roster.insert(chained), "is neither");
        // A space revoked concurrently with an addition stays revoked, without the addition.
        let add16 = op_at(
            &roster,
            &key(1),
            &[admit],
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(16),
            },
            T0 + 7,
        );
        roster.insert(add16).unwrap();
        let revoke = commit(
            &mut roster,
            &key(1),
            OpBody::RevokeSpace {
                space: sp.clone(),
                reason: "x".into(),
                keep: vec![],
                listed: false,
            },
            T0 + 8,
        );
        let late = op_at(
            &roster,
            &key(1),
            &[admit],
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(17),
            },
            T0 + 9,
        );
        roster.insert(late).unwrap();
        let state = roster.state();
        assert_eq!(
            state.spaces[&sp].revoked.as_ref().map(|r| r.0),
            Some(revoke)
        );
        assert!(!state.spaces[&sp].devices.contains_key(&pk(17)));
    }

    #[test]
    fn concurrent_coordinator_removals_keep_one_and_lower_the_threshold() {
        let mut roster = alliance(&[2, 3], 2);
        let create = roster.heads();
        let mut r2 = op_at(
            &roster,
            &key(1),
            &create,
            OpBody::RemoveCoordinator { key: pk(2) },
            T0 + 1,
        );
        r2.cosign(&key(3));
        let mut r3 = op_at(
            &roster,
            &key(1),
            &create,
            OpBody::RemoveCoordinator { key: pk(3) },
            T0 + 2,
        );
        r3.cosign(&key(2));
        roster.insert(r2).unwrap();
        roster.insert(r3).unwrap();
        let state = roster.state();
        assert_eq!(
            state.coordinators.keys().copied().collect::<Vec<_>>(),
            vec![pk(1)]
        );
        assert_eq!(state.threshold, 1);
    }

    #[test]
    fn replay_into_another_alliance_is_refused() {
        let mut north = alliance(&[], 1);
        let (mut south, south_create) = Roster::create(&key(1), "South", vec![], 1, T0).unwrap();
        let admit = north.propose(&key(1), admit_body(&[10]), T0 + 1);
        north.insert(admit.clone()).unwrap();
        assert_eq!(
            south.insert(admit),
            Err(RosterError::WrongAlliance {
                expected: south.alliance_id(),
                found: north.alliance_id()
            })
        );
        // Claiming the other alliance does not help: the parents are not there.
        let forged = op_at(&south, &key(1), &north.heads(), admit_body(&[10]), T0 + 1);
        assert_eq!(
            south.insert(forged),
            Err(RosterError::MissingParents(north.heads()))
        );
        assert_eq!(north.insert(south_create), Err(RosterError::CreateNotRoot));
        assert_eq!(south.len(), 1);
    }

    #[test]
    fn forged_and_tampered_signatures_are_refused() {
        let mut roster = alliance(&[2], 1);
        let genuine = roster.propose(&key(1), admit_body(&[10]), T0 + 1);
        let op = genuine.op().unwrap();

        // Same signature over changed bytes.
        let mut changed = op.clone();
        changed.created_at_ms += 1;
        let tampered = SignedOp {
            bytes: encode(&changed),
            signatures: genuine.signatures.clone(),
        };
        assert!(matches!(
            roster.insert(tampered),
            Err(RosterError::BadSignature(_))
        ));

        // Another key's signature filed under the author's key.
        let forged = SignedOp {
            bytes: genuine.bytes.clone(),
            signatures: vec![(pk(1), key(2).sign(Domain::RosterOp, &genuine.bytes))],
        };
        assert!(
            matches!(roster.insert(forged), Err(RosterError::BadSignature(b)) if b.key == pk(1))
        );

        // The author's signature made for another domain.
        let cross = SignedOp {
            bytes: genuine.bytes.clone(),
            signatures: vec![(pk(1), key(1).sign(Domain::ListingChange, &genuine.bytes))],
        };
        assert!(matches!(
            roster.insert(cross),
            Err(RosterError::BadSignature(_))
        ));

        // Signed only by someone else than the author it names.
        let impostor = SignedOp::sign(&op, &key(2));
        assert_eq!(
            roster.insert(impostor),
            Err(RosterError::AuthorDidNotSign(pk(1)))
        );

        // A valid signature plus a bad co-signature is refused as a whole.
        let mut bad_cosign = genuine.clone();
        bad_cosign
            .signatures
            .push((pk(2), key(3).sign(Domain::RosterOp, &genuine.bytes)));
        assert!(
            matches!(roster.insert(bad_cosign), Err(RosterError::BadSignature(b)) if b.key == pk(2))
        );

        let mut doubled = genuine.clone();
        doubled.signatures.push(doubled.signatures[0]);
        assert_eq!(
            roster.insert(doubled),
            Err(RosterError::DuplicateSigner(pk(1)))
        );

        assert_eq!(roster.len(), 1, "nothing rejected was inserted");
        assert_eq!(roster.insert(genuine.clone()), Ok(Inserted::New));
        assert_eq!(roster.insert(genuine), Ok(Inserted::Duplicate));
    }

    #[test]
    fn missing_parents_are_reported_then_retried() {
        let mut source = alliance(&[], 1);
        let create = source.get(&source.heads()[0]).unwrap().clone();
        let admit = source.propose(&key(1), admit_body(&[10]), T0 + 1);
        source.insert(admit.clone()).unwrap();
        let add = source.propose(
            &key(10),
            OpBody::AddDevice {
                space: space(10),
                device: pk(11),
            },
            T0 + 2,
        );
        source.insert(add.clone()).unwrap();

        let mut roster = Roster::new(create.clone()).unwrap();
        assert_eq!(
            roster.insert(add.clone()),
            Err(RosterError::MissingParents(vec![admit.hash()]))
        );
        assert_eq!(roster.len(), 1);
        assert_eq!(roster.insert(admit.clone()), Ok(Inserted::New));
        assert_eq!(roster.insert(add.clone()), Ok(Inserted::New));
        assert_eq!(roster.heads(), source.heads());

        let mut batch = Roster::new(create).unwrap();
        let report = batch.insert_all(vec![add.clone(), add, admit]);
        assert_eq!(report.inserted.len(), 2);
        assert_eq!(report.duplicates, 1);
        assert!(report.pending.is_empty() && report.rejected.is_empty());
        assert_eq!(batch.state(), source.state());
    }

    #[test]
    fn garbage_is_refused_with_an_error() {
        for bytes in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"deskmesh",
        ] {
            let err = SignedOp::from_bytes(bytes).unwrap_err();
            assert!(err.to_string().contains("could not be decoded"), "{err}");
        }
        let huge = vec![0u8; MAX_SIGNED_OP_BYTES + 1];
        assert!(matches!(
            SignedOp::from_bytes(&huge),
            Err(RosterError::TooLarge { .. })
        ));
        let oversized = SignedOp {
            bytes: vec![0; MAX_OP_BYTES + 1],
            signatures: vec![],
        };
        assert!(matches!(
            SignedOp::from_bytes(&oversized.to_bytes()),
            Err(RosterError::TooLarge {
                what: "roster operation",
                ..
            })
        ));
        let mut roster = alliance(&[], 1);
        let junk = SignedOp {
            bytes: vec![7; 40],
            signatures: vec![],
        };
        assert!(matches!(
            roster.insert(junk),
            Err(RosterError::Decode { .. })
        ));
        // Trailing bytes after a valid operation are refused: one operation, one encoding, one hash.
        let genuine = roster.propose(&key(1), admit_body(&[10]), T0);
        let mut padded = genuine.clone();
        padded.bytes.push(0);
        assert!(matches!(padded.op(), Err(RosterError::Decode { .. })));
        let mut wire = genuine.to_bytes();
        wire.push(0);
        assert!(SignedOp::from_bytes(&wire).is_err());
    }

    #[test]
    fn signed_ops_round_trip_through_bytes() {
        let roster = alliance(&[2], 1);
        let mut op = roster.propose(&key(1), OpBody::SetThreshold { threshold: 2 }, T0);
        op.cosign(&key(2));
        let back = SignedOp::from_bytes(&op.to_bytes()).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.hash(), op.hash());
        assert_eq!(back.signers(), vec![pk(1), pk(2)]);
        assert_eq!(
            back.op().unwrap().body,
            OpBody::SetThreshold { threshold: 2 }
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut roster = alliance(&[], 1);
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(Roster::create(&key(1), &long, vec![], 1, T0).is_err());
        let body = OpBody::AdmitSpace {
            space: space(10),
            name: long,
            devices: vec![pk(10)],
        };
        let op = roster.propose(&key(1), body, T0);
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("space name"))
        );

        let devices: Vec<PublicKey> = (0..=MAX_DEVICES_PER_SPACE as u8)
            .map(|n| pk(100 + n))
            .collect();
        let body = OpBody::AdmitSpace {
            space: SpaceId::derive(&devices[0]),
            name: "Big".into(),
            devices: devices.clone(),
        };
        let op = roster.propose(&key(1), body, T0);
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("at most 64 devices"))
        );
        let full = &devices[..MAX_DEVICES_PER_SPACE];
        let sp = SpaceId::derive(&full[0]);
        let body = OpBody::AdmitSpace {
            space: sp.clone(),
            name: "Big".into(),
            devices: full.to_vec(),
        };
        commit(&mut roster, &key(1), body, T0 + 1);
        let op = roster.propose(
            &key(1),
            OpBody::AddDevice {
                space: sp.clone(),
                device: pk(10),
            },
            T0 + 2,
        );
        unauthorised(roster.insert(op), "limit of 64 devices");

        let parents: Vec<Hash> = (0..=MAX_PARENTS as u8)
            .map(|n| Hash::of("p", &[n]))
            .collect();
        let op = op_at(
            &roster,
            &key(1),
            &parents,
            OpBody::SetThreshold { threshold: 1 },
            T0,
        );
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("parents"))
        );

        let addrs = vec!["/ip4/1.1.1.1/tcp/1".to_string(); MAX_PEER_ADDRS + 1];
        let op = roster.propose(
            &key(1),
            OpBody::SetPeerAddrs {
                space: sp.clone(),
                addrs,
            },
            T0,
        );
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("peer addresses"))
        );

        let mut op = roster.propose(&key(1), OpBody::SetThreshold { threshold: 1 }, T0);
        for n in 0..MAX_SIGNATURES as u8 {
            op.cosign(&key(150 + n));
        }
        assert!(
            matches!(roster.insert(op), Err(RosterError::Malformed(m)) if m.contains("signatures"))
        );
    }

    #[test]
    fn ops_in_order_puts_parents_first() {
        let mut roster = alliance(&[], 1);
        let admit = commit(&mut roster, &key(1), admit_body(&[10]), T0 + 1);
        let mut branch = Vec::new();
        for n in 11..15u8 {
            let op = op_at(
                &roster,
                &key(1),
                &[admit],
                OpBody::AddDevice {
                    space: space(10),
                    device: pk(n),
                },
                T0 + i64::from(n),
            );
            roster.insert(op.clone()).unwrap();
            branch.push(op);
        }
        commit(
            &mut roster,
            &key(10),
            OpBody::SetPeerAddrs {
                space: space(10),
                addrs: vec![],
            },
            T0 + 20,
        );
        let order = roster.ops_in_order();
        assert_eq!(order.len(), roster.len());
        let position: HashMap<Hash, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (h, _, _))| (*h, i))
            .collect();
        for (i, (h, op, signed)) in order.iter().enumerate() {
            assert_eq!(signed.hash(), *h);
            for p in &op.parents {
                assert!(position[p] < i, "parent after child");
            }
        }
        // Concurrent siblings come in hash order.
        let mut siblings: Vec<Hash> = branch.iter().map(SignedOp::hash).collect();
        siblings.sort();
        let placed: Vec<Hash> = order[2..6].iter().map(|(h, _, _)| *h).collect();
        assert_eq!(placed, siblings);
        // The same set inserted in another order gives the same order.
        let mut other = Roster::new(order[0].2.clone()).unwrap();
        let mut rest: Vec<SignedOp> = order[1..].iter().map(|(_, _, s)| (*s).clone()).collect();
        rest.reverse();
        let report = other.insert_all(rest);
        assert!(report.pending.is_empty() && report.rejected.is_empty());
        let again: Vec<Hash> = other.ops_in_order().iter().map(|(h, _, _)| *h).collect();
        assert_eq!(again, order.iter().map(|(h, _, _)| *h).collect::<Vec<_>>());
    }

    #[test]
    fn may_sign_at_old_heads_needs_no_fold() {
        let mut roster = alliance(&[], 1);
        let genesis = roster.heads();
        let admit = commit(&mut roster, &key(1), admit_body(&[10]), T0 + 1);
        let add = commit(
            &mut roster,
            &key(10),
            OpBody::AddDevice {
                space: space(10),
                device: pk(11),
            },
            T0 + 2,
        );
        commit(&mut roster, &key(1), admit_body(&[12]), T0 + 3);
        fn fast_at(
            roster: &Roster,
            heads: &[Hash],
            key: u8,
            founder: u8,
        ) -> Option<Result<Authorisation, Denied>> {
            let at: Vec<usize> = heads.iter().map(|h| roster.ancestry.index[h]).collect();
            roster
                .ancestry
                .may_sign(roster, &at, &pk(key), &space(founder))
        }
        let fast = |heads: &[Hash], key: u8, founder: u8| fast_at(&roster, heads, key, founder);
        assert_eq!(
            fast(&[admit], 10, 10),
            Some(Ok(Authorisation { op: admit }))
        );
        assert_eq!(fast(&[admit], 11, 10), Some(Err(Denied::NotADevice)));
        assert_eq!(fast(&[add], 11, 10), Some(Ok(Authorisation { op: add })));
        assert_eq!(fast(&[add], 12, 12), Some(Err(Denied::UnknownSpace)));
        assert_eq!(fast(&genesis, 10, 10), Some(Err(Denied::UnknownSpace)));

        // A removal for the space hands its questions to the fold, with the same answers.
        commit(
            &mut roster,
            &key(1),
            OpBody::RemoveDevice {
                space: space(10),
                device: pk(11),
                keep: vec![],
            },
            T0 + 4,
        );
        let fast = |heads: &[Hash], key: u8, founder: u8| fast_at(&roster, heads, key, founder);
        assert_eq!(fast(&[add], 11, 10), None);
        assert_eq!(
            roster.may_sign(&[add], &pk(11), &space(10)),
            Ok(Authorisation { op: add })
        );
        assert!(matches!(
            roster.may_sign(&roster.heads(), &pk(11), &space(10)),
            Err(Denied::DeviceRemoved { .. })
        ));
        assert_eq!(fast(&[add], 12, 12), Some(Err(Denied::UnknownSpace)));
    }

    /// Large rosters are checked on several threads; the altered operations are found all the same, in
    /// hash order.
    /// `n` spaces admitted into `source` by coordinator `key(1)`, space `i` with the device `device(i)`;
    /// the operations in the order they were made.
    fn admissions(source: &mut Roster, n: u16, device: impl Fn(u16) -> PublicKey) -> Vec<SignedOp> {
        (0..n)
            .map(|i| {
                let device = device(i);
                let body = OpBody::AdmitSpace {
                    space: SpaceId::derive(&device),
                    name: format!("Space {i}"),
                    devices: vec![device],
                };
                let op = source.propose(&key(1), body, T0 + i64::from(i));
                source.insert(op.clone()).unwrap();
                op
            })
            .collect()
    }

    #[test]
    fn the_signature_check_of_a_large_roster_finds_every_altered_operation() {
        let (mut source, create) = Roster::create(&key(1), "Large", vec![], 1, T0).unwrap();
        let mut ops = admissions(&mut source, 600, |_| DeviceKey::generate().public_key());
        let mut altered = Vec::new();
        for i in [3, 299, 598] {
            ops[i].signatures[0].1 = key(2).sign(Domain::RosterOp, b"something else");
            altered.push(ops[i].hash());
        }
        altered.sort();
        let (loaded, _) = Roster::load_stored(create, ops).unwrap();
        let bad: Vec<Hash> = loaded
            .unverified_signatures()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(bad, altered);
    }

    #[test]
    fn a_stored_roster_loads_without_signature_checks_and_the_audit_finds_altered_ones() {
        let (mut source, create) = Roster::create(&key(1), "Stored", vec![], 1, T0).unwrap();
        let ops = admissions(&mut source, 5, |n| {
            key(10 + u8::try_from(n).unwrap()).public_key()
        });
        // In any order, as a store returns them (by hash).
        let mut shuffled = ops.clone();
        shuffled.reverse();
        let (loaded, report) = Roster::load_stored(create.clone(), shuffled).unwrap();
        assert_eq!(report.inserted.len(), 5);
        assert_eq!(loaded.heads(), source.heads());
        assert_eq!(loaded.state(), source.state());
        assert!(loaded.unverified_signatures().is_empty());

        // A signature altered on disk: loading trusts it, the audit's check does not.
        let mut altered = ops[2].clone();
        altered.signatures[0].1 = key(2).sign(Domain::RosterOp, b"something else");
        let mut stored = ops.clone();
        stored[2] = altered.clone();
        let (loaded, _) = Roster::load_stored(create.clone(), stored).unwrap();
        assert_eq!(loaded.state(), source.state());
        let bad = loaded.unverified_signatures();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, altered.hash());
        // Everything but the signatures is still checked: the roster refuses an unauthorised op.
        let outsider = source.propose(
            &key(3),
            OpBody::AdmitSpace {
                space: SpaceId::derive(&key(30).public_key()),
                name: "Outsider".into(),
                devices: vec![key(30).public_key()],
            },
            T0 + 9,
        );
        let mut stored = ops.clone();
        stored.push(outsider);
        let (_, report) = Roster::load_stored(create.clone(), stored).unwrap();
        assert_eq!(report.rejected.len(), 1);
        // And a fresh insert still checks signatures.
        let mut fresh = Roster::new(create).unwrap();
        fresh.insert(ops[0].clone()).unwrap();
        fresh.insert(ops[1].clone()).unwrap();
        assert!(matches!(
            fresh.insert(altered),
            Err(RosterError::BadSignature(_))
        ));
    }

    /// Ten thousand admissions load and answer at old heads; prints the times (`--nocapture`).
    #[test]
    fn ten_thousand_admissions() {
        const SPACES: u16 = 10_000;
        let (mut source, create) = Roster::create(&key(1), "Big", vec![], 1, T0).unwrap();
        let founders: Vec<PublicKey> = (0..SPACES)
            .map(|n| {
                let mut seed = [7u8; 32];
                seed[..2].copy_from_slice(&n.to_le_bytes());
                DeviceKey::from_seed(&seed).public_key()
            })
            .collect();
        let mut ops = Vec::new();
        for (n, founder) in founders.iter().enumerate() {
            let body = OpBody::AdmitSpace {
                space: SpaceId::derive(founder),
                name: format!("Space {n}"),
                devices: vec![*founder],
            };
            let op = source.propose(&key(1), body, T0 + n as i64);
            assert_eq!(source.insert(op.clone()), Ok(Inserted::New));
            ops.push(op);
        }

        let started = std::time::Instant::now();
        let mut roster = Roster::new(create).unwrap();
        let report = roster.insert_all(ops.clone());
        let loaded = started.elapsed();
        assert_eq!(report.inserted.len(), usize::from(SPACES));
        assert!(report.pending.is_empty() && report.rejected.is_empty());
        assert_eq!(roster.heads(), source.heads());
        assert_eq!(roster.state().spaces.len(), usize::from(SPACES));

        // Each space's first change names the heads right after its admission.
        let started = std::time::Instant::now();
        for (n, (founder, op)) in founders.iter().zip(&ops).enumerate() {
            let heads = [op.hash()];
            let sp = SpaceId::derive(founder);
            assert_eq!(
                roster.may_sign(&heads, founder, &sp),
                Ok(Authorisation { op: op.hash() })
            );
            // The next space is admitted later (the last one looks back at the first).
            let other = &founders[(n + 1) % founders.len()];
            let expected = match ops.get(n + 1) {
                Some(_) => Err(Denied::UnknownSpace),
                None => Ok(Authorisation { op: ops[0].hash() }),
            };
            assert_eq!(
                roster.may_sign(&heads, other, &SpaceId::derive(other)),
                expected
            );
            assert_eq!(roster.may_sign(&heads, other, &sp), Err(Denied::NotADevice));
        }
        let asked = started.elapsed();
        // For the report: how much of loading is signature checking alone.
        let started = std::time::Instant::now();
        assert!(ops.iter().all(|op| op.checked(Signatures::Check).is_ok()));
        let verifying = started.elapsed();
        println!(
            "10000 admissions: insert_all {loaded:?} (of which decoding and verifying alone take \
             {verifying:?}), {} may_sign at old heads {asked:?} ({:?} each)",
            3 * SPACES,
            asked / (3 * u32::from(SPACES))
        );
    }

    /// Random valid operations issued at random (often concurrent) parents, by keys authorised there.
    fn random_history(seed: u64, steps: usize) -> (SignedOp, Vec<SignedOp>, Roster) {
        random_history_with(seed, steps, true)
    }

    /// As [`random_history`]; without `churn` no coordinator is ever removed and more spaces are
    /// admitted, so [`Roster::may_sign`] can often answer without a fold.
    fn random_history_with(
        seed: u64,
        steps: usize,
        churn: bool,
    ) -> (SignedOp, Vec<SignedOp>, Roster) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let signers: Vec<DeviceKey> = [1u8, 2, 3, 4, 10, 11, 12, 13, 14, 15]
            .iter()
            .map(|n| key(*n))
            .collect();
        let by_key = |k: &PublicKey| signers.iter().find(|s| s.public_key() == *k);
        let (mut roster, create) = Roster::create(&signers[0], "P", vec![pk(2)], 1, T0).unwrap();
        let mut ops = Vec::new();
        for step in 0..steps {
            let all: Vec<Hash> = roster.ops_in_order().iter().map(|(h, _, _)| *h).collect();
            let n = rng.gen_range(1..=2.min(all.len()));
            let parents: Vec<Hash> = all.choose_multiple(&mut rng, n).copied().collect();
            let Ok(state) = roster.state_at(&parents) else {
                continue;
            };
            let coordinators: Vec<PublicKey> = state.coordinators.keys().copied().collect();
            let spaces: Vec<SpaceId> = state.spaces.keys().cloned().collect();
            let device = pk(*[10u8, 11, 12, 13, 14, 15].choose(&mut rng).unwrap_or(&10));
            let some_space = spaces.choose(&mut rng).cloned();
            let body = match (rng.gen_range(0..10), some_space) {
                (0 | 1 | 8, _) if !churn => {
                    admit_body(&[*[10u8, 12, 14, 15].choose(&mut rng).unwrap_or(&10)])
                }
                (0, _) => admit_body(&[10, 11]),
                (1, _) => admit_body(&[13]),
                (2 | 3, Some(space)) => OpBody::AddDevice { space, device },
                // Without churn removals are rarer, so more spaces keep the indexed answer.
                (4 | 5, Some(space)) if !churn && rng.gen_bool(0.7) => {
                    OpBody::AddDevice { space, device }
                }
                (4 | 5, Some(space)) => {
                    let current: Vec<PublicKey> =
                        state.spaces[&space].devices.keys().copied().collect();
                    let Some(device) = current.choose(&mut rng).copied() else {
                        continue;
                    };
                    OpBody::RemoveDevice {
                        space,
                        device,
                        keep: vec![],
                    }
                }
                (6, Some(space)) if rng.gen_bool(0.3) => OpBody::RevokeSpace {
                    space,
                    reason: "r".into(),
                    keep: vec![],
                    listed: false,
                },
                (6, Some(space)) => OpBody::SetPeerAddrs {
                    space,
                    addrs: vec![format!("/ip4/10.0.0.{step}/tcp/1")],
                },
                // Without churn coordinator changes are rare too: concurrent ones end the indexed path.
                (7 | 9, _) if !churn && rng.gen_bool(0.8) => continue,
                (7, _) => OpBody::AddCoordinator {
                    key: pk(*[2u8, 3, 4].choose(&mut rng).unwrap_or(&3)),
                },
                (8, _) => OpBody::RemoveCoordinator {
                    key: *coordinators.choose(&mut rng).unwrap_or(&pk(1)),
                },
                (9, _) => OpBody::SetThreshold {
                    threshold: rng.gen_range(1..=2),
                },
                _ => continue,
            };
            // Authors: a coordinator, or for device operations sometimes a device of the space.
            let mut candidates = coordinators.clone();
            if let Some(space) = body.space() {
                if let Some(entry) = state.spaces.get(space) {
                    candidates.extend(entry.devices.keys().copied());
                }
            }
            let Some(author) = candidates.choose(&mut rng).and_then(&by_key) else {
                continue;
            };
            let mut signed = op_at(&roster, author, &parents, body, T0 + step as i64);
            if signed.op().map(|o| o.body.needs_quorum()).unwrap_or(false) {
                for c in &coordinators {
                    if let Some(s) = by_key(c) {
                        signed.cosign(s);
                    }
                }
            }
            if roster.insert(signed.clone()) == Ok(Inserted::New) {
                ops.push(signed);
            }
        }
        (create, ops, roster)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_insertion_order_converges(seed in any::<u64>(), shuffle in any::<u64>(), steps in 5usize..40) {
            let (create, ops, reference) = random_history(seed, steps);
            let mut shuffled = ops.clone();
            shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(shuffle));

            // Insert one by one, keeping what misses parents and retrying until nothing moves.
            let mut roster = Roster::new(create.clone()).unwrap();
            let mut pending = shuffled.clone();
            loop {
                let before = pending.len();
                let mut still = Vec::new();
                for op in pending {
                    match roster.insert(op.clone()) {
                        Ok(_) => {}
                        Err(RosterError::MissingParents(_)) => still.push(op),
                        Err(e) => prop_assert!(false, "valid op refused: {e}"),
                    }
                }
                pending = still;
                if pending.is_empty() || pending.len() == before {
                    break;
                }
            }
            prop_assert!(pending.is_empty());
            prop_assert_eq!(roster.heads(), reference.heads());
            prop_assert_eq!(roster.state(), reference.state());
            prop_assert_eq!(roster.state_at(&roster.heads()).unwrap(), reference.state().clone());
            let order = |r: &Roster| r.ops_in_order().iter().map(|(h, _, _)| *h).collect::<Vec<_>>();
            prop_assert_eq!(order(&roster), order(&reference));

            let mut batch = Roster::new(create).unwrap();
            shuffled.reverse();
            let report = batch.insert_all(shuffled);
            prop_assert!(report.pending.is_empty() && report.rejected.is_empty());
            prop_assert_eq!(batch.state(), reference.state());
        }

        /// The indexed answer of `may_sign` is the fold's, at random heads of random histories with
        /// removals, revocations and concurrent branches.
        #[test]
        fn may_sign_matches_the_fold(seed in any::<u64>(), pick in any::<u64>(), steps in 5usize..50, churn in any::<bool>()) {
            let (_, ops, roster) = random_history_with(seed, steps, churn);
            let all: Vec<Hash> = roster.ops_in_order().iter().map(|(h, _, _)| *h).collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(pick);
            let mut head_sets = vec![vec![], roster.heads(), vec![Hash::of("roster-op", b"unknown"), all[0]]];
            for _ in 0..12 {
                let n = rng.gen_range(1..=3.min(all.len()));
                head_sets.push(all.choose_multiple(&mut rng, n).copied().collect());
            }
            let keys: Vec<PublicKey> = [1u8, 2, 3, 10, 11, 12, 13, 14, 15].iter().map(|n| pk(*n)).collect();
            let spaces: Vec<SpaceId> = [10u8, 12, 13, 14, 15].iter().map(|n| space(*n)).collect();
            for heads in &head_sets {
                let reference = roster.state_at(heads);
                for key in &keys {
                    for sp in &spaces {
                        let expected = match &reference {
                            Ok(state) => state.may_sign(key, sp),
                            Err(RosterError::UnknownHeads(u)) => Err(Denied::UnknownHeads(u.clone())),
                            Err(e) => panic!("unexpected {e}"),
                        };
                        prop_assert_eq!(roster.may_sign(heads, key, sp), expected.clone(), "{} ops, heads {:?}", ops.len(), heads);
                        // The indexed path itself, where it answers (the wrapper may have folded).
                        let at: Option<Vec<usize>> = heads.iter().map(|h| roster.ancestry.index.get(h).copied()).collect();
                        if let Some(at) = at.filter(|at| !at.is_empty()) {
                            if let Some(fast) = roster.ancestry.may_sign(&roster, &at, key, sp) {
                                prop_assert_eq!(fast, expected, "indexed answer, heads {:?}", heads);
                            }
                        }
                    }
                }
            }
        }

        /// `removals` (answered from the ancestor sets) names exactly the strong removals of the space
        /// that are outside the causal closure of the heads, as a walk of the closure says.
        #[test]
        fn removals_match_the_causal_closure(seed in any::<u64>(), pick in any::<u64>(), steps in 5usize..50) {
            let (_, _, roster) = random_history_with(seed, steps, true);
            let all: Vec<Hash> = roster.ops_in_order().iter().map(|(h, _, _)| *h).collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(pick);
            let mut head_sets = vec![roster.heads()];
            for _ in 0..10 {
                let n = rng.gen_range(1..=3.min(all.len()));
                head_sets.push(all.choose_multiple(&mut rng, n).copied().collect());
            }
            let keys: Vec<PublicKey> = [10u8, 11, 12, 13, 14, 15].iter().map(|n| pk(*n)).collect();
            let spaces: Vec<SpaceId> = [10u8, 13].iter().map(|n| space(*n)).collect();
            for heads in &head_sets {
                let closure: BTreeSet<Hash> = roster.causal_closure(heads).unwrap().into_iter().collect();
                for key in &keys {
                    for sp in &spaces {
                        let mut expected: Vec<Hash> = all
                            .iter()
                            .filter(|h| !closure.contains(h))
                            .filter(|h| match &roster.get_op(h).unwrap().body {
                                OpBody::RemoveDevice { space, device, .. } => space == sp && device == key,
                                OpBody::RevokeSpace { space, .. } => space == sp,
                                _ => false,
                            })
                            .copied()
                            .collect();
                        expected.sort();
                        let mut got: Vec<Hash> = roster.removals(heads, key, sp).unwrap().into_iter().map(|r| r.by).collect();
                        got.sort();
                        prop_assert_eq!(got, expected, "heads {:?}", heads);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(signed) = SignedOp::from_bytes(&bytes) {
                let mut roster = alliance(&[], 1);
                let _ = roster.insert(signed);
            }
        }
    }
}
