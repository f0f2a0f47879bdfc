//! The one path from signed bytes to a verdict, for every source: gossip and sync batches from the mesh,
//! bundles carried offline, and the node's own edits.
//!
//! [`Node::ingest`] takes a batch of [`SignedItem`]s and returns one [`Outcome`] per item, in input order:
//!
//! 1. Roster operations go first, in the order they came. One whose parents are not known yet is *parked*
//!    under a parent it lacks and tried again the moment that parent is applied, here or in a later batch,
//!    so a batch in any order costs no retries and no second sort (this is the only causal ordering of
//!    roster operations in the node).
//! 2. Listing changes and seat beacons are verified and authorised against the roster. One that names
//!    roster operations not known yet, from an author the roster does not know yet, may be an admission
//!    still on its way: from the mesh it *waits* in memory (bounded) and is tried again whenever the roster
//!    grows; from a bundle or a local edit there is nobody to wait for, so it is refused.
//! 3. Everything refused goes to one sink, [`Node::refuse`], which logs it for the audit; refused bytes are
//!    never stored, so a stranger cannot make a node keep anything.
//!
//! Checking signatures is pure and the costliest step, so it is a phase of its own: [`check`] decodes an
//! item and verifies its signature without the node (a caller can run it on other threads, on every core),
//! and [`Node::ingest_checked`] judges checked items against the roster and the store; [`Node::ingest`]
//! does both in turn. A change is then applied to its space's document incrementally (the document stays
//! warm in memory, or is loaded from the state saved beside the index), never rebuilt from its history.
//!
//! A batch of more than one item is flushed once at its end. Items a bundle or a local edit added are kept
//! for [`Node::take_made`], so whoever runs the node (the daemon) can announce them without scanning the
//! store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{self, SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::change::{Authority, ChangeError, SignedChange, VerifiedChange};
use deskmesh_crdt_model::checkpoint::{Checkpoint, CheckpointError, Loaded, SignedCheckpoint};
use deskmesh_crdt_model::verify::{self, SignedVerification, Verification};
use deskmesh_keys::roster::{Inserted, RosterError, SignedOp, VerifiedOp};
use deskmesh_keys::{Hash, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::api::Bytes;
use crate::node::{Node, RosterAuthority};

/// Label of the content hash that names a seat beacon item (a beacon has no hash of its own).
pub const BEACON_ITEM: &str = "seat-beacon-item";
/// Label of the content hash that names a proposal item: its bytes with every signature gathered, so a
/// proposal with one more signature is a new item that replaces the old one.
pub const PROPOSAL_ITEM: &str = "roster-proposal-item";
/// Roster operations kept while their parents are missing.
const MAX_PARKED_OPS: usize = 1024;
/// How long a parked roster operation is kept; a later reconciliation fetches it again.
const MAX_PARKED_FOR: Duration = Duration::from_secs(600);
/// Bytes of changes and beacons kept in memory while they wait for roster operations.
const MAX_WAITING_BYTES: usize = 32 * 1024 * 1024;
/// How long an item may wait for the roster operations it names before it is refused (and logged for the
/// audit) as coming from outside the alliance.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// What a signed item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    RosterOp,
    Checkpoint,
    ListingChange,
    SeatBeacon,
    /// A coordinator's countersignature of facts of a listing.
    Verification,
    /// A coordinator change still collecting co-signatures.
    Proposal,
}

impl ItemKind {
    /// How the audit and the logs name this kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::RosterOp => "roster operation",
            Self::Checkpoint => "checkpoint",
            Self::ListingChange => "listing change",
            Self::SeatBeacon => "seat beacon",
            Self::Verification => "verification",
            Self::Proposal => "proposed coordinator change",
        }
    }
}

/// One signed item as exact bytes, the unit every source hands to [`Node::ingest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedItem {
    pub kind: ItemKind,
    pub bytes: Bytes,
}

impl SignedItem {
    pub fn new(kind: ItemKind, bytes: Vec<u8>) -> Self {
        Self {
            kind,
            bytes: Bytes(bytes),
        }
    }

    pub fn op(op: &SignedOp) -> Self {
        Self::new(ItemKind::RosterOp, op.to_bytes())
    }

    pub fn change(change: &SignedChange) -> Self {
        Self::new(ItemKind::ListingChange, change.to_bytes())
    }

    pub fn beacon(beacon: &SignedBeacon) -> Self {
        Self::new(ItemKind::SeatBeacon, beacon.to_bytes())
    }

    pub fn verification(v: &SignedVerification) -> Self {
        Self::new(ItemKind::Verification, v.to_bytes())
    }

    pub fn proposal(op: &SignedOp) -> Self {
        Self::new(ItemKind::Proposal, op.to_bytes())
    }

    pub fn checkpoint(checkpoint: &SignedCheckpoint) -> Self {
        Self::new(ItemKind::Checkpoint, checkpoint.to_bytes())
    }

    /// The item's content id: a roster operation's hash, a change's hash, or the hash of a beacon's bytes.
    /// `None` when the bytes do not decode far enough to tell.
    pub fn id(&self) -> Option<Hash> {
        match self.kind {
            ItemKind::RosterOp => SignedOp::from_bytes(&self.bytes.0).ok().map(|op| op.hash()),
            ItemKind::ListingChange => SignedChange::from_bytes(&self.bytes.0)
                .and_then(|c| c.envelope())
                .ok()
                .map(|e| Hash(e.change_hash)),
            ItemKind::SeatBeacon => Some(Hash::of(BEACON_ITEM, &self.bytes.0)),
            ItemKind::Verification => Some(Hash::of(verify::ITEM_LABEL, &self.bytes.0)),
            ItemKind::Proposal => Some(Hash::of(PROPOSAL_ITEM, &self.bytes.0)),
            ItemKind::Checkpoint => SignedCheckpoint::from_bytes(&self.bytes.0)
                .ok()
                .map(|c| c.id()),
        }
    }
}

/// Where a batch comes from, which decides what happens to items that wait for roster operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Gossip or a sync batch: waiting items stay in memory and are retried as the roster grows.
    Mesh,
    /// A bundle file: nothing more will come, so waiting items are refused; added items are announced.
    Bundle,
    /// Signed by this node: announced once added.
    Local,
}

impl Source {
    /// How the audit names where a refused item came from.
    pub fn label(self) -> &'static str {
        match self {
            Source::Mesh => "mesh",
            Source::Bundle => "bundle",
            Source::Local => "this node",
        }
    }
}

/// The clock readings an ingest needs: monotonic for waiting, wall time for beacon expiry.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub mono: Instant,
    pub wall: DateTime<Utc>,
}

impl At {
    pub fn now() -> Self {
        Self {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// An item that was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub id: Hash,
    pub kind: ItemKind,
    /// The space a listing change or beacon is about, or a roster operation names.
    pub space: Option<SpaceId>,
    /// A beacon's pool.
    pub pool: Option<String>,
    /// A beacon's last moment of saying anything ([`beacon::says_nothing_after_ms`]): past it, a node
    /// stops offering it to sync.
    pub says_until_ms: Option<i64>,
    /// Items this one takes out of what the node offers to sync: the beacon it replaced as its pool's
    /// newest; for a checkpoint the checkpoints it covers entirely and the stored changes it covers; for a
    /// roster operation the beacons of a space just revoked (or of a device just removed) and the proposal
    /// it settles; for a proposal the one it supersedes with more signatures.
    pub leaves: Vec<(ItemKind, Hash)>,
    /// Stored but not offered to sync: a listing change a kept checkpoint already covers.
    pub hidden: bool,
}

/// An item this node signed or imported, with what became of it, for the caller to announce.
#[derive(Clone, Debug)]
pub struct Made {
    pub item: SignedItem,
    pub accepted: Accepted,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (and the index brought up to date).
    Added(Accepted),
    /// Already held.
    Known,
    /// Valid, but an equal or newer beacon is kept for its pool: not stored, and not the sender's fault
    /// (two beacons of one pool can cross on the way).
    Superseded,
    /// Invalid: logged for the audit, never stored. The sentence says why.
    Refused(String),
    /// Held in memory until the roster operations it needs arrive (mesh only).
    Waiting,
    /// The store failed; the item may come again.
    Failed(String),
}

/// The verdict on one item with what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub kind: ItemKind,
    /// `None` when the bytes do not decode far enough to name the item.
    pub id: Option<Hash>,
    pub verdict: Verdict,
}

/// What one [`Node::ingest`] call did.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// One outcome per input item, in input order.
    pub outcomes: Vec<Outcome>,
    /// Items from earlier batches that this one settled: parked roster operations and waiting items
    /// that could now be applied (or, once their wait was over, were refused).
    pub woken: Vec<Outcome>,
    /// The flush at the end of the batch failed: nothing in it may be durable.
    pub flush_error: Option<String>,
}

/// Items held between batches.
#[derive(Debug, Default)]
pub(crate) struct IngestState {
    /// Roster operations whose parents are missing, keyed by one parent they lack.
    parked: HashMap<Hash, Vec<(OpIn, Instant)>>,
    parked_count: usize,
    /// Changes and beacons naming roster operations not known yet, oldest first (already checked), with
    /// the peer each came from.
    waiting: VecDeque<(Checked, Instant, Option<String>)>,
    waiting_bytes: usize,
    /// A roster operation was applied since the waiting items were last tried.
    roster_grew: bool,
    /// Where the items being judged come from, for the audit: the source and the peer.
    pub(crate) from: Option<(Source, Option<String>)>,
}

impl IngestState {
    /// Items held in memory now: parked roster operations and waiting changes or beacons.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.parked_count, self.waiting.len())
    }
}

/// An item decoded and, for changes and beacons, signature-checked by [`check`]: what
/// [`Node::ingest_checked`] judges.
#[derive(Debug, Clone)]
pub struct Checked {
    item: SignedItem,
    id: Option<Hash>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// A roster operation, its signatures checked here (the roster judges the rest as it applies it).
    Op(OpIn),
    Change(Box<VerifiedChange>),
    Beacon(SignedBeacon, SeatBeacon),
    /// A verification whose signature checked out (its bytes are the item's).
    Verification(Verification),
    /// A proposed coordinator change (the roster checks its signatures as it merges them).
    Proposal(SignedOp),
    /// A checkpoint whose signature checked out, its document loaded and checked against its header.
    Checkpoint(Box<CheckedCheckpoint>),
    /// Refused whatever the roster says: the sentence, and the author and space when they could be read.
    Bad {
        why: String,
        author: Option<PublicKey>,
        space: Option<SpaceId>,
        /// No honest node relays it: its bytes do not decode, or its signature does not verify (not, say,
        /// a beacon dated ahead of this node's clock, which a peer with a fast clock sends in good faith).
        forged: bool,
    },
}

/// What [`check`] learns of a checkpoint: all but whether the roster lets its signer and the authors of
/// its changes write the space, which [`Node::ingest_checked`] asks.
#[derive(Debug, Clone)]
struct CheckedCheckpoint {
    signed: SignedCheckpoint,
    header: Checkpoint,
    /// Taken when the checkpoint is merged (a space with no document yet keeps the loaded one).
    loaded: Option<Loaded>,
}

impl Checked {
    /// Refused for proof of bad faith: the bytes do not decode, or a signature does not verify. A node
    /// relays only items that passed these checks, so a peer that sends many such items is not an honest
    /// node relaying what it holds. Other refusals (a beacon dated ahead of this node's clock, a checkpoint
    /// this build cannot load, a check that panicked here) do not count.
    pub fn is_bad(&self) -> bool {
        matches!(self.body, Body::Bad { forged: true, .. })
    }

    fn bytes_len(&self) -> usize {
        self.item.bytes.0.len()
    }

    /// Where the item goes in a batch: changes grouped by space, each space's in the order they were
    /// made (the order of authoring is a causal order for each author); everything else after.
    fn order_key(&self) -> (u8, Option<&SpaceId>, i64) {
        match &self.body {
            Body::Checkpoint(c) => (0, Some(&c.header.space), c.header.created_at_ms),
            Body::Change(v) => (1, Some(&v.envelope().space), v.envelope().created_at_ms),
            _ => (2, None, 0),
        }
    }
}

/// A roster operation on its way into the roster.
#[derive(Debug, Clone)]
pub(crate) enum OpIn {
    /// Its shape and signatures checked in the check phase ([`SignedOp::verified`]).
    Verified(VerifiedOp),
    /// Its signatures still to check as the roster takes it (a proposal whose quorum just completed).
    Unverified(SignedOp),
    /// It failed the check phase, and the sentence why (told unless the roster holds it already).
    Forged(SignedOp, String),
}

impl OpIn {
    fn signed(&self) -> &SignedOp {
        match self {
            OpIn::Verified(v) => v.signed(),
            OpIn::Unverified(op) | OpIn::Forged(op, _) => op,
        }
    }
}

/// Decodes `item` and verifies what can be verified without the node: signatures, sizes, hashes and, for
/// beacons, that they are not dated in the future (`wall`). Pure, so it can run on any thread.
pub fn check(item: SignedItem, wall: DateTime<Utc>) -> Checked {
    let id = item.id();
    let body = match item.kind {
        ItemKind::RosterOp => match SignedOp::from_bytes(&item.bytes.0) {
            // Its signatures are verified here, on the check threads; whether the operation is new,
            // forged or not is still told where the roster is (a known operation stays known).
            Ok(op) => Body::Op(match op.verified() {
                Ok(v) => OpIn::Verified(v),
                Err((op, e)) => OpIn::Forged(op, plain_roster_error(&e)),
            }),
            Err(e) => undecodable(e.to_string()),
        },
        ItemKind::ListingChange => match SignedChange::from_bytes(&item.bytes.0) {
            Err(e) => undecodable(e.to_string()),
            Ok(change) => {
                let env = change.envelope().ok();
                match change.into_verified() {
                    Ok(mut v) => {
                        // A space's first change: what it makes of an empty document, worked out here.
                        v.prepare();
                        Body::Change(Box::new(v))
                    }
                    Err(e) => bad_if(
                        matches!(e, ChangeError::BadSignature { .. }),
                        e.to_string(),
                        env.as_ref().map(|e| e.author),
                        env.map(|e| e.space),
                    ),
                }
            }
        },
        ItemKind::Checkpoint => match SignedCheckpoint::from_bytes(&item.bytes.0) {
            Err(e) => undecodable(e.to_string()),
            // The signature, then the document: loading it, reading its changes and their authors and
            // validating its listing is the costly part, and needs no roster.
            Ok(signed) => match signed.verify().and_then(|h| Ok((signed.load(&h)?, h))) {
                Ok((loaded, header)) => Body::Checkpoint(Box::new(CheckedCheckpoint {
                    signed,
                    header,
                    loaded: Some(loaded),
                })),
                Err(e) => {
                    let header = signed.decode().ok();
                    bad_if(
                        matches!(e, CheckpointError::BadSignature(_)),
                        e.to_string(),
                        header.as_ref().map(|h| h.author),
                        header.map(|h| h.space),
                    )
                }
            },
        },
        ItemKind::SeatBeacon => match SignedBeacon::from_bytes(&item.bytes.0) {
            Err(e) => undecodable(e.to_string()),
            Ok(signed) => match signed.verify(wall.timestamp_millis()) {
                Ok(b) => Body::Beacon(signed, b),
                Err(e) => {
                    let decoded = signed.decode().ok();
                    bad_if(
                        matches!(e, beacon::BeaconError::BadSignature { .. }),
                        e.to_string(),
                        decoded.as_ref().map(|b| b.author),
                        decoded.map(|b| b.space),
                    )
                }
            },
        },
        ItemKind::Verification => match SignedVerification::from_bytes(&item.bytes.0) {
            Err(e) => undecodable(e.to_string()),
            Ok(signed) => match signed.verify() {
                Ok(v) => Body::Verification(v),
                Err(e) => {
                    let decoded = signed.decode().ok();
                    bad_if(
                        matches!(e, verify::VerificationError::BadSignature { .. }),
                        e.to_string(),
                        decoded.as_ref().map(|v| v.author),
                        decoded.map(|v| v.space),
                    )
                }
            },
        },
        ItemKind::Proposal => match SignedOp::from_bytes(&item.bytes.0) {
            Ok(op) => Body::Proposal(op),
            Err(e) => undecodable(e.to_string()),
        },
    };
    Checked { item, id, body }
}

/// Refused whatever the roster says, not for proof of bad faith.
fn bad(why: String, author: Option<PublicKey>, space: Option<SpaceId>) -> Body {
    Body::Bad {
        why,
        author,
        space,
        forged: false,
    }
}

/// [`bad`], `forged` when no honest node relays the item ([`Checked::is_bad`]).
fn bad_if(forged: bool, why: String, author: Option<PublicKey>, space: Option<SpaceId>) -> Body {
    Body::Bad {
        why,
        author,
        space,
        forged,
    }
}

/// The bytes do not decode: no honest node relays them.
fn undecodable(why: String) -> Body {
    bad_if(true, why, None, None)
}

/// [`check`] for a batch, spread over up to `threads` threads; one result per item, in input order. An
/// item whose checking thread panicked (a fault of this node) is refused with a sentence that says so,
/// never dropped.
///
/// Then, for each space with a checkpoint and changes in the batch (or several changes), the listing as
/// of each change is worked out on a copy of the checkpoint's document ([`prepare_runs`]), so the node
/// applies them after the checkpoint without reading and validating the listing again.
pub fn check_all(items: Vec<SignedItem>, wall: DateTime<Utc>, threads: usize) -> Vec<Checked> {
    // Each thread checks its items in runs, the signatures of a run as one batch
    // (`deskmesh_keys::batch`: the verdicts are those of one check each, at about half the cost).
    let parallel = threads >= 2 && items.len() >= PARALLEL_FROM;
    let run = if parallel {
        items
            .len()
            .div_ceil(threads)
            .clamp(CHECK_RUN_MIN, CHECK_RUN)
    } else {
        CHECK_RUN
    };
    let runs: Vec<&[SignedItem]> = items.chunks(run).collect();
    let check_run =
        |run: &&[SignedItem]| deskmesh_keys::batch::check_together(run, |i| check(i.clone(), wall));
    let mut checked: Vec<Checked> = if !parallel || runs.len() < 2 {
        runs.iter().flat_map(check_run).collect()
    } else {
        deskmesh_keys::par::map_in_order(&runs, threads, 2, check_run, |run| {
            run.iter()
                .map(|i| Checked {
                    item: i.clone(),
                    id: None,
                    body: bad(CHECK_FAILED.into(), None, None),
                })
                .collect()
        })
        .into_iter()
        .flatten()
        .collect()
    };
    prepare_runs(&mut checked, threads);
    checked
}

/// Items whose signatures [`check_all`] checks as one batch at most: past about 64 signatures a batch
/// gains little more, and a forged item costs its run a second, one-by-one pass.
const CHECK_RUN: usize = 64;

/// The fewest items a run holds when a batch is split across threads (batches of 16 to 32 signatures
/// already cost within 10 % of batches of 64 per signature: `deskmesh-bench crypto`).
const CHECK_RUN_MIN: usize = 32;

/// From this many items [`check_all`] spreads its runs over threads; below, starting threads costs
/// more than the second core saves.
const PARALLEL_FROM: usize = 64;

/// For every space of the batch with a loaded checkpoint and listing changes, or with several changes:
/// the listing as of each change, worked out on a copy of the checkpoint's document (the one holding the
/// most changes), or from an empty document when the batch holds the space's first change, in the order
/// the changes were made ([`deskmesh_crdt_model::doc::prepare_run`]), the spaces spread over up to
/// `threads` threads. Pure: it only adds to what each change carries; a space whose thread panicked
/// keeps its items as [`check`] left them (every item stays in its place).
pub fn prepare_runs(checked: &mut Vec<Checked>, threads: usize) {
    // Per space: its changes' positions, and whether a loaded checkpoint is among the items.
    let mut spaces: HashMap<&SpaceId, (bool, Vec<usize>)> = HashMap::new();
    for (i, c) in checked.iter().enumerate() {
        match &c.body {
            Body::Checkpoint(cp) if cp.loaded.is_some() => {
                let e = spaces.entry(&cp.header.space).or_default();
                e.0 = true;
                e.1.push(i);
            }
            Body::Change(v) => spaces.entry(&v.envelope().space).or_default().1.push(i),
            _ => {}
        }
    }
    let runs: Vec<Vec<usize>> = spaces
        .into_values()
        .filter(|(cp, at)| at.len() >= 2 || (*cp && !at.is_empty()))
        .map(|(_, at)| at)
        .collect();
    if runs.is_empty() {
        return;
    }
    let mut slots: Vec<Option<Checked>> = std::mem::take(checked).into_iter().map(Some).collect();
    let runs: Vec<std::sync::Mutex<Vec<(usize, Checked)>>> = runs
        .into_iter()
        .map(|at| {
            std::sync::Mutex::new(
                at.into_iter()
                    .filter_map(|i| slots[i].take().map(|c| (i, c)))
                    .collect(),
            )
        })
        .collect();
    deskmesh_keys::par::map_in_order(
        &runs,
        threads,
        2,
        |run| {
            let mut run = run
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            prepare_run(&mut run);
        },
        |_| (),
    );
    for run in runs {
        let run = run
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, c) in run {
            slots[i] = Some(c);
        }
    }
    *checked = slots.into_iter().flatten().collect();
}

/// [`prepare_runs`] for one space's items.
fn prepare_run(run: &mut [(usize, Checked)]) {
    let mut base: Option<(&SpaceId, &deskmesh_crdt_model::checkpoint::Loaded)> = None;
    let mut changes = Vec::new();
    for (_, c) in run.iter_mut() {
        match &mut c.body {
            Body::Checkpoint(cp) => {
                if let Some(loaded) = &cp.loaded {
                    if base.is_none_or(|(_, b)| b.changes().len() < loaded.changes().len()) {
                        base = Some((&cp.header.space, loaded));
                    }
                }
            }
            Body::Change(v) => changes.push(v.as_mut()),
            _ => {}
        }
    }
    let Some(space) = base
        .map(|(s, _)| s.clone())
        .or_else(|| changes.first().map(|v| v.envelope().space.clone()))
    else {
        return;
    };
    changes.sort_by_key(|v| v.envelope().created_at_ms);
    deskmesh_crdt_model::doc::prepare_run(&space, base.map(|(_, l)| l.doc()), &mut changes);
}

/// Why an item is refused when checking it panicked.
const CHECK_FAILED: &str =
    "checking it failed inside this node (a fault of the node, not proof against the item)";

impl Node {
    /// Takes a batch of signed items through the checks every source shares (see the module doc).
    pub fn ingest(&mut self, items: Vec<SignedItem>, source: Source, at: At) -> IngestReport {
        self.ingest_from(items, source, at, None)
    }

    /// [`Node::ingest`] of items that came from `peer` (a libp2p peer id, for the audit: every refusal
    /// names the peer its item came from).
    pub fn ingest_from(
        &mut self,
        items: Vec<SignedItem>,
        source: Source,
        at: At,
        peer: Option<String>,
    ) -> IngestReport {
        // A bundle or an audit file is thousands of items: checked on every core, signatures in batches.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let checked = check_all(items, at.wall, threads);
        self.ingest_checked_from(checked, source, at, peer)
    }

    /// Judges items [`check`] already decoded and verified (see the module doc).
    pub fn ingest_checked(&mut self, items: Vec<Checked>, source: Source, at: At) -> IngestReport {
        self.ingest_checked_from(items, source, at, None)
    }

    /// [`Node::ingest_checked`] of items that came from `peer`.
    pub fn ingest_checked_from(
        &mut self,
        items: Vec<Checked>,
        source: Source,
        at: At,
        peer: Option<String>,
    ) -> IngestReport {
        let outer = self.ingest.from.replace((source, peer));
        let report = self.judge_batch(items, source, at);
        self.ingest.from = outer;
        report
    }

    fn judge_batch(&mut self, items: Vec<Checked>, source: Source, at: At) -> IngestReport {
        if self.roster_stale {
            self.reload_roster();
        }
        let batch = items.len() > 1;
        if batch {
            if let Err(e) = self.store.defer_flush(true) {
                tracing::error!(error = %e, "cannot defer store flushes");
            }
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut woken = Vec::new();
        // Roster operations of this batch still parked, by hash -> input position.
        let mut batch_ops: HashMap<Hash, usize> = HashMap::new();
        for (i, c) in items.iter().enumerate() {
            if c.item.kind != ItemKind::RosterOp {
                continue;
            }
            let op = match &c.body {
                Body::Op(op) => op.clone(),
                Body::Bad { why, .. } => {
                    let why = self.refuse(ItemKind::RosterOp, None, None, None, why.clone());
                    outcomes[i] = Some(outcome(c.item.kind, None, Verdict::Refused(why)));
                    continue;
                }
                _ => continue,
            };
            let hash = op.signed().hash();
            let mut settled = Vec::new();
            let verdict = self.take_op(op, at, &mut settled);
            if verdict == Verdict::Waiting {
                batch_ops.insert(hash, i);
            }
            outcomes[i] = Some(outcome(c.item.kind, Some(hash), verdict));
            for (h, v) in settled {
                match batch_ops.remove(&h) {
                    Some(j) => outcomes[j] = Some(outcome(ItemKind::RosterOp, Some(h), v)),
                    None => woken.push(outcome(ItemKind::RosterOp, Some(h), v)),
                }
            }
        }
        if source != Source::Mesh && !batch_ops.is_empty() {
            // Nothing more will come from a bundle or this node: operations still missing parents are
            // refused (and unparked), as the audit will say.
            for (hash, i) in std::mem::take(&mut batch_ops) {
                if let Some(op) = self.unpark(&hash) {
                    let op = op.signed();
                    let author = op.op().ok().map(|o| o.author);
                    let space = op.op().ok().and_then(|o| o.body.space().cloned());
                    let why = self.refuse(
                        ItemKind::RosterOp,
                        Some(hash),
                        author,
                        space,
                        "it builds on roster operations this node has never seen (its parents), and the bundle does not carry them".into(),
                    );
                    outcomes[i] = Some(outcome(
                        ItemKind::RosterOp,
                        Some(hash),
                        Verdict::Refused(why),
                    ));
                }
            }
        }
        let kinds: Vec<ItemKind> = items.iter().map(|c| c.item.kind).collect();
        let mut made_items: Vec<Option<SignedItem>> = Vec::with_capacity(items.len());
        // Changes of one space are applied oldest first, so few wait for their dependencies.
        let mut rest: Vec<(usize, Checked)> = Vec::with_capacity(items.len());
        for (i, c) in items.into_iter().enumerate() {
            made_items.push((source != Source::Mesh).then(|| c.item.clone()));
            if c.item.kind != ItemKind::RosterOp {
                rest.push((i, c));
            }
        }
        rest.sort_by(|(a, ca), (b, cb)| ca.order_key().cmp(&cb.order_key()).then(a.cmp(b)));
        for (i, c) in rest {
            outcomes[i] = Some(self.take_other(c, source, at, None));
        }
        if std::mem::take(&mut self.ingest.roster_grew) {
            self.retry_waiting(at, &mut woken);
        }
        let mut report = IngestReport {
            outcomes: outcomes
                .into_iter()
                .zip(kinds)
                .map(|(o, kind)| {
                    o.unwrap_or_else(|| outcome(kind, None, Verdict::Failed("not judged".into())))
                })
                .collect(),
            woken,
            flush_error: None,
        };
        if let Err(e) = self.write_touched() {
            // The items are stored (their own writes succeeded); only the derived index lags, and its
            // spaces stay marked dirty, so it is rebuilt later. Reporting them failed would be untrue.
            tracing::error!(error = %format!("{e:#}"), "cannot write the index of the spaces just changed; it is rebuilt later");
        }
        if batch {
            if let Err(e) = self.store.defer_flush(false) {
                tracing::error!(error = %e, "cannot flush the items just received");
                report.flush_error = Some(e.to_string());
            }
        }
        if source != Source::Mesh {
            for (o, item) in report.outcomes.iter().zip(made_items) {
                if let (Verdict::Added(a), Some(item)) = (&o.verdict, item) {
                    self.made.push(Made {
                        item,
                        accepted: a.clone(),
                    });
                }
            }
        }
        report
    }

    /// Refuses, for the audit, items that waited [`MAX_WAIT`] for roster operations that never came (they
    /// name another alliance's roster or a key this alliance never admitted), and forgets roster
    /// operations parked longer than ten minutes (a later reconciliation fetches them again).
    pub fn expire_waiting(&mut self, at: At) -> Vec<Outcome> {
        let mut out = Vec::new();
        while self
            .ingest
            .waiting
            .front()
            .is_some_and(|(_, since, _)| at.mono.saturating_duration_since(*since) >= MAX_WAIT)
        {
            let Some((item, since, peer)) = self.ingest.waiting.pop_front() else {
                break;
            };
            self.ingest.waiting_bytes = self.ingest.waiting_bytes.saturating_sub(item.bytes_len());
            // One last try (its roster operations may have come after all), refusing if it still waits.
            let outer = self.ingest.from.replace((Source::Mesh, peer));
            out.push(self.take_other(item, Source::Bundle, at, Some(since)));
            self.ingest.from = outer;
        }
        if let Err(e) = self.write_touched() {
            tracing::error!(error = %e, "cannot write the index of the spaces just changed");
        }
        let before = self.ingest.parked_count;
        for list in self.ingest.parked.values_mut() {
            list.retain(|(_, since)| at.mono.saturating_duration_since(*since) < MAX_PARKED_FOR);
        }
        self.ingest.parked.retain(|_, list| !list.is_empty());
        self.ingest.parked_count = self.ingest.parked.values().map(Vec::len).sum();
        if self.ingest.parked_count < before {
            tracing::debug!(
                dropped = before - self.ingest.parked_count,
                "forgot roster operations whose parents never came"
            );
        }
        out
    }

    /// Parked roster operations and waiting items held in memory now.
    pub fn held_for_roster(&self) -> (usize, usize) {
        self.ingest.held()
    }

    /// Applies one roster operation; every parked operation it (transitively) unblocks is applied too and
    /// reported in `settled` with its verdict.
    pub(crate) fn take_op(
        &mut self,
        op: OpIn,
        at: At,
        settled: &mut Vec<(Hash, Verdict)>,
    ) -> Verdict {
        let first = self.apply_op(op, at);
        let mut ready: Vec<Hash> = match &first {
            Verdict::Added(a) => vec![a.id],
            _ => Vec::new(),
        };
        while let Some(parent) = ready.pop() {
            let Some(children) = self.ingest.parked.remove(&parent) else {
                continue;
            };
            self.ingest.parked_count = self.ingest.parked_count.saturating_sub(children.len());
            for (child, _) in children {
                let hash = child.signed().hash();
                let v = self.apply_op(child, at);
                match &v {
                    Verdict::Added(_) => {
                        ready.push(hash);
                        settled.push((hash, v));
                    }
                    // Parked again under another parent it lacks: not settled yet.
                    Verdict::Waiting => {}
                    _ => settled.push((hash, v)),
                }
            }
        }
        first
    }

    fn apply_op(&mut self, incoming: OpIn, at: At) -> Verdict {
        let hash = incoming.signed().hash();
        let decoded = incoming.signed().op().ok();
        let author = decoded.as_ref().map(|o| o.author);
        let space = decoded.and_then(|o| o.body.space().cloned());
        let Some(roster) = self.roster_mut() else {
            let why = self.refuse(
                ItemKind::RosterOp,
                Some(hash),
                author,
                space,
                "this node is not in an alliance yet".into(),
            );
            return Verdict::Refused(why);
        };
        if roster.contains(&hash) {
            return Verdict::Known;
        }
        let inserted = match &incoming {
            OpIn::Verified(v) => roster.insert_verified(v.clone()),
            OpIn::Unverified(op) => roster.insert(op.clone()),
            OpIn::Forged(_, why) => {
                let why = self.refuse(ItemKind::RosterOp, Some(hash), author, space, why.clone());
                return Verdict::Refused(why);
            }
        };
        match inserted {
            Ok(Inserted::Duplicate) => Verdict::Known,
            Ok(Inserted::New) => {
                let op = incoming.signed();
                if let Err(e) = self.store.put_op(&hash, &op.to_bytes()) {
                    // The roster took it before the store refused it: take it back out, or the node would
                    // call it known when it comes again and never store it.
                    self.reload_roster();
                    return Verdict::Failed(e.to_string());
                }
                self.ingest.roster_grew = true;
                if let Err(e) = self.reindex_for(op) {
                    // Stored: the index is derived and catches up at the space's next rebuild.
                    tracing::warn!(op = %hash.short(), error = %format!("{e:#}"), "roster operation stored but the index not rebuilt");
                }
                // What the operation ends: a revoked space's or a removed key's beacons, the proposal it
                // settles.
                let removed = match self.after_roster_op(&hash, op) {
                    Ok(r) => r,
                    Err(e) => return Verdict::Failed(format!("{e:#}")),
                };
                tracing::debug!(op = %hash.short(), "roster operation applied");
                Verdict::Added(Accepted {
                    id: hash,
                    kind: ItemKind::RosterOp,
                    space,
                    pool: None,
                    says_until_ms: None,
                    leaves: removed,
                    hidden: false,
                })
            }
            Err(RosterError::MissingParents(missing)) => {
                if self.ingest.parked_count >= MAX_PARKED_OPS {
                    // Dropped, not refused: a later reconciliation offers it again.
                    return Verdict::Waiting;
                }
                let key = missing.first().copied().unwrap_or(hash);
                self.ingest
                    .parked
                    .entry(key)
                    .or_default()
                    .push((incoming, at.mono));
                self.ingest.parked_count += 1;
                Verdict::Waiting
            }
            Err(e) => {
                let why = self.refuse(
                    ItemKind::RosterOp,
                    Some(hash),
                    author,
                    space,
                    plain_roster_error(&e),
                );
                Verdict::Refused(why)
            }
        }
    }

    /// Takes a parked roster operation back out (a one-shot source gives up on it).
    fn unpark(&mut self, hash: &Hash) -> Option<OpIn> {
        let mut found = None;
        for list in self.ingest.parked.values_mut() {
            if let Some(pos) = list.iter().position(|(op, _)| op.signed().hash() == *hash) {
                found = Some(list.remove(pos).0);
                break;
            }
        }
        if found.is_some() {
            self.ingest.parked.retain(|_, list| !list.is_empty());
            self.ingest.parked_count = self.ingest.parked_count.saturating_sub(1);
        }
        found
    }

    /// Judges a change or a beacon. `waited_since` is set when the item comes back from the waiting queue:
    /// if it must still wait, it keeps its first arrival time so it does not wait for ever.
    fn take_other(
        &mut self,
        mut c: Checked,
        source: Source,
        at: At,
        waited_since: Option<Instant>,
    ) -> Outcome {
        let (kind, id) = (c.item.kind, c.id);
        let judged = match &mut c.body {
            Body::Change(v) => self.judge_change(v),
            Body::Beacon(signed, b) => self.judge_beacon(signed, b, &c.item.bytes.0),
            Body::Verification(v) => self.judge_verification(v, &c.item.bytes.0),
            Body::Proposal(op) => self.judge_proposal(op, at),
            Body::Checkpoint(c) => self.judge_checkpoint(c),
            Body::Bad {
                why, author, space, ..
            } => {
                let why = self.refuse(kind, id, *author, space.clone(), why.clone());
                return outcome(kind, id, Verdict::Refused(why));
            }
            Body::Op(_) => Judged::Verdict(Verdict::Failed(
                "a roster operation is not a change or a beacon".into(),
            )),
        };
        let verdict = match judged {
            Judged::Verdict(v) => v,
            Judged::Wait { author, space, why } => {
                if source == Source::Mesh {
                    let peer = self.ingest.from.as_ref().and_then(|(_, p)| p.clone());
                    self.wait(c, waited_since.unwrap_or(at.mono), peer);
                    Verdict::Waiting
                } else {
                    Verdict::Refused(self.refuse(kind, id, Some(author), space, why))
                }
            }
        };
        outcome(kind, id, verdict)
    }

    fn wait(&mut self, item: Checked, since: Instant, peer: Option<String>) {
        self.ingest.waiting_bytes += item.bytes_len();
        self.ingest.waiting.push_back((item, since, peer));
        while self.ingest.waiting_bytes > MAX_WAITING_BYTES {
            let Some((old, _, _)) = self.ingest.waiting.pop_front() else {
                break;
            };
            self.ingest.waiting_bytes = self.ingest.waiting_bytes.saturating_sub(old.bytes_len());
        }
    }

    /// Tries the waiting items again after the roster grew.
    fn retry_waiting(&mut self, at: At, woken: &mut Vec<Outcome>) {
        if self.ingest.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.ingest.waiting);
        self.ingest.waiting_bytes = 0;
        let total = waiting.len();
        for (item, since, peer) in waiting {
            let outer = self.ingest.from.replace((Source::Mesh, peer));
            let o = self.take_other(item, Source::Mesh, at, Some(since));
            self.ingest.from = outer;
            if o.verdict != Verdict::Waiting {
                woken.push(o);
            }
        }
        tracing::debug!(
            tried = total,
            still_waiting = self.ingest.waiting.len(),
            "items waiting for roster operations tried again"
        );
    }

    /// A verified listing change: an author the roster refuses for good is refused; anything else is
    /// stored and applied to its space's document, whose index is written at the end of the batch.
    fn judge_change(&mut self, v: &mut VerifiedChange) -> Judged {
        // What the check phase worked out goes with the change applied below, not with a copy of it (an
        // item that waits for the roster is placed the ordinary way later).
        let prepared = v.take_prepared();
        let env = v.envelope();
        let kind = ItemKind::ListingChange;
        let id = Hash(env.change_hash);
        match self.store.has_change(&env.space, &env.change_hash) {
            Ok(true) => return Judged::Verdict(Verdict::Known),
            Ok(false) => {}
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        }
        if let Err(d) =
            RosterAuthority(self.roster()).authorise(&env.roster_heads, &env.author, &env.space)
        {
            if !d.pending {
                let why = self.refuse(
                    kind,
                    Some(id),
                    Some(env.author),
                    Some(env.space.clone()),
                    d.reason,
                );
                return Judged::Verdict(Verdict::Refused(why));
            }
            // Unknown roster heads may be an admission still on its way. A change by a device this node
            // already knows is stored (the document keeps it pending); one by an unknown author waits in
            // memory, or anyone could fill the store.
            let known_author = self
                .roster()
                .is_some_and(|r| !r.state().spaces_of(&env.author).is_empty());
            if !known_author {
                return Judged::Wait {
                    author: env.author,
                    space: Some(env.space.clone()),
                    why: d.reason,
                };
            }
        }
        // Strong removal: a removed key's change that its removal does not keep is refused at the door.
        if let Some(why) = self.unkept(env) {
            let why = self.refuse(
                kind,
                Some(id),
                Some(env.author),
                Some(env.space.clone()),
                why,
            );
            return Judged::Verdict(Verdict::Refused(why));
        }
        // The document is loaded before the change is stored: storing marks the space dirty, and a dirty
        // space's saved state is not trusted.
        if let Err(e) = self.warm(&env.space) {
            return Judged::Verdict(Verdict::Failed(format!("{e:#}")));
        }
        match self
            .store
            .put_change(&env.space, &env.change_hash, &v.signed().to_bytes())
        {
            Ok(true) => {}
            Ok(false) => return Judged::Verdict(Verdict::Known),
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        }
        let mut applied = v.clone();
        applied.put_prepared(prepared);
        match self.apply_to_doc(applied) {
            // Stored but excluded (an invalid listing, built on an excluded change): kept as evidence,
            // and noted with where it came from so the audit can name the peer.
            Ok(applied) => self.note_if_rejected(env, applied.as_ref()),
            // Stored but not indexed: the space stays dirty and is rebuilt at the next open.
            Err(e) => {
                tracing::error!(space = %env.space, error = %e, "cannot apply a stored change to its document");
            }
        }
        // A change a kept checkpoint covers is kept for auditors but not offered to sync.
        let hidden = self
            .store
            .is_covered(&env.space, &env.change_hash)
            .unwrap_or(false);
        Judged::Verdict(Verdict::Added(Accepted {
            id,
            kind: ItemKind::ListingChange,
            space: Some(env.space.clone()),
            pool: None,
            says_until_ms: None,
            leaves: Vec::new(),
            hidden,
        }))
    }

    /// A checkpoint [`check`] verified and loaded: its signer authorised for the space, every change in it
    /// by a key ever granted to the space, its listing valid. One whose changes the node's kept
    /// checkpoints already cover adds nothing and is not stored; otherwise its changes are merged into the
    /// space's document (a space with no document yet takes the loaded one), it is stored with the
    /// changes it covers, and the checkpoints it covers entirely are dropped.
    fn judge_checkpoint(&mut self, cp: &mut CheckedCheckpoint) -> Judged {
        let kind = ItemKind::Checkpoint;
        let (signed, c) = (&cp.signed, &cp.header);
        let id = signed.id();
        match self.store.checkpoint(&c.space, &id) {
            Ok(Some(_)) => return Judged::Verdict(Verdict::Known),
            Ok(None) => {}
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        }
        let auth_op =
            match RosterAuthority(self.roster()).authorise(&c.roster_heads, &c.author, &c.space) {
                Ok(op) => op,
                Err(d) if d.pending => {
                    return Judged::Wait {
                        author: c.author,
                        space: Some(c.space.clone()),
                        why: d.reason,
                    }
                }
                Err(d) => {
                    let why = self.refuse(
                        kind,
                        Some(id),
                        Some(c.author),
                        Some(c.space.clone()),
                        d.reason,
                    );
                    return Judged::Verdict(Verdict::Refused(why));
                }
            };
        let Some(loaded) = cp.loaded.take() else {
            return Judged::Verdict(Verdict::Failed("the checkpoint was judged twice".into()));
        };
        let roster = self.roster();
        if let Err(e) = loaded.authorise(|k| roster.is_some_and(|r| r.ever_granted(k, &c.space))) {
            let why = self.refuse(
                kind,
                Some(id),
                Some(c.author),
                Some(c.space.clone()),
                e.to_string(),
            );
            return Judged::Verdict(Verdict::Refused(why));
        }
        // Strong removal: a removed key's checkpoint is taken only if its removal keeps all it holds.
        if let Some(why) = self.unkept_checkpoint(c, loaded.changes()) {
            let why = self.refuse(kind, Some(id), Some(c.author), Some(c.space.clone()), why);
            return Judged::Verdict(Verdict::Refused(why));
        }
        // One scan of the space's marks, not one lookup per change of a long history.
        let held_marks: HashSet<[u8; 32]> = match self.store.space_covered(&c.space) {
            Ok(marks) => marks.into_iter().map(|(h, _)| h).collect(),
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        };
        let ids = loaded.change_ids();
        let newly_covered: Vec<[u8; 32]> = ids
            .iter()
            .filter(|h| !held_marks.contains(*h))
            .copied()
            .collect();
        if newly_covered.is_empty() {
            // Every change in it is covered by a checkpoint kept here already.
            return Judged::Verdict(Verdict::Superseded);
        }
        if let Err(e) = self.warm(&c.space) {
            return Judged::Verdict(Verdict::Failed(format!("{e:#}")));
        }
        if let Err(e) = self.merge_into_doc(&c.space, id, loaded, auth_op) {
            let why = self.refuse(
                kind,
                Some(id),
                Some(c.author),
                Some(c.space.clone()),
                format!("{e:#}"),
            );
            return Judged::Verdict(Verdict::Refused(why));
        }
        let before = self.store.space_checkpoints(&c.space).unwrap_or_default();
        // Only the changes no kept checkpoint covered get a mark: a checkpoint's cost does not grow
        // with the space's history.
        match self
            .store
            .put_checkpoint(&c.space, &id, &signed.to_bytes(), &newly_covered)
        {
            Ok(_) => {}
            Err(e) => {
                self.forget_doc(&c.space);
                return Judged::Verdict(Verdict::Failed(e.to_string()));
            }
        }
        let mut leaves = Vec::new();
        // A kept checkpoint whose heads are all in this one's document is covered by it entirely.
        let ids: HashSet<[u8; 32]> = ids.into_iter().collect();
        for (old, bytes) in before {
            let contained = SignedCheckpoint::from_bytes(&bytes)
                .and_then(|o| o.decode())
                .is_ok_and(|o| o.heads.iter().all(|h| ids.contains(h)));
            if contained
                && self
                    .store
                    .remove_checkpoint(&c.space, &old)
                    .unwrap_or(false)
            {
                leaves.push((ItemKind::Checkpoint, old));
            }
        }
        for h in newly_covered {
            if self.store.has_change(&c.space, &h).unwrap_or(false) {
                leaves.push((ItemKind::ListingChange, Hash(h)));
            }
        }
        Judged::Verdict(Verdict::Added(Accepted {
            id,
            kind: ItemKind::Checkpoint,
            space: Some(c.space.clone()),
            pool: None,
            says_until_ms: None,
            leaves,
            hidden: false,
        }))
    }

    /// A verified seat beacon: authorised, not constrained by a strong removal, and kept if it is the
    /// newest for its pool.
    fn judge_beacon(&mut self, signed: &SignedBeacon, b: &SeatBeacon, bytes: &[u8]) -> Judged {
        let item = Some(Hash::of(BEACON_ITEM, bytes));
        let held = match self.store.beacon(&b.space, &b.pool) {
            Ok(h) => h,
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        };
        // A beacon older than the one kept says nothing new whoever signed it: superseded, not refused
        // (two beacons of one pool cross on the way all the time), even while its roster heads are
        // unknown here.
        let replaced = match &held {
            Some(held) if held.as_slice() == bytes => return Judged::Verdict(Verdict::Known),
            Some(held) => match SignedBeacon::from_bytes(held) {
                Ok(h) if !beacon::newer(signed, &h) => return Judged::Verdict(Verdict::Superseded),
                _ => Some(Hash::of(BEACON_ITEM, held)),
            },
            None => None,
        };
        let authority = RosterAuthority(self.roster());
        if let Err(d) = authority.authorise(&b.roster_heads, &b.author, &b.space) {
            let why = format!("pool {}: {}", b.pool, d.reason);
            if d.pending {
                return Judged::Wait {
                    author: b.author,
                    space: Some(b.space.clone()),
                    why,
                };
            }
            let why = self.refuse(
                ItemKind::SeatBeacon,
                item,
                Some(b.author),
                Some(b.space.clone()),
                why,
            );
            return Judged::Verdict(Verdict::Refused(why));
        }
        if let Some(why) = beacon::removed(&authority, b) {
            let why = self.refuse(
                ItemKind::SeatBeacon,
                item,
                Some(b.author),
                Some(b.space.clone()),
                why,
            );
            return Judged::Verdict(Verdict::Refused(why));
        }
        if let Err(e) = self.store.put_beacon(&b.space, &b.pool, bytes) {
            // The store may or may not hold it now: the directory in memory reads it again.
            self.drop_catalog();
            return Judged::Verdict(Verdict::Failed(e.to_string()));
        }
        self.catalog_put_beacon(b);
        Judged::Verdict(Verdict::Added(Accepted {
            id: Hash::of(BEACON_ITEM, bytes),
            kind: ItemKind::SeatBeacon,
            space: Some(b.space.clone()),
            pool: Some(b.pool.clone()),
            says_until_ms: Some(beacon::says_nothing_after_ms(b)),
            leaves: replaced
                .map(|h| (ItemKind::SeatBeacon, h))
                .into_iter()
                .collect(),
            hidden: false,
        }))
    }

    /// Ingests one item this node made and says what became of it: `Ok(Some)` stored, `Ok(None)` already
    /// held, an error with the refusal's sentence otherwise.
    pub(crate) fn ingest_local(&mut self, item: SignedItem) -> anyhow::Result<Option<Accepted>> {
        let report = self.ingest(vec![item], Source::Local, At::now());
        let verdict = report
            .outcomes
            .into_iter()
            .next()
            .map(|o| o.verdict)
            .unwrap_or(Verdict::Failed("nothing was judged".into()));
        match verdict {
            Verdict::Added(a) => Ok(Some(a)),
            Verdict::Known | Verdict::Superseded => Ok(None),
            Verdict::Refused(why) => anyhow::bail!("{why}"),
            Verdict::Waiting => anyhow::bail!("it names roster operations this node does not know"),
            Verdict::Failed(e) => anyhow::bail!("{e}"),
        }
    }
}

/// A judgement before the source decides what waiting means.
pub(crate) enum Judged {
    Verdict(Verdict),
    Wait {
        author: PublicKey,
        space: Option<SpaceId>,
        why: String,
    },
}

/// A roster error in the words the audit uses.
fn plain_roster_error(e: &RosterError) -> String {
    match e {
        RosterError::Unauthorised { reason, .. } => {
            format!("it is not authorised: {reason}")
        }
        RosterError::WrongAlliance { .. } => {
            format!("it belongs to another alliance ({e})")
        }
        other => other.to_string(),
    }
}

pub(crate) fn outcome(kind: ItemKind, id: Option<Hash>, verdict: Verdict) -> Outcome {
    Outcome { kind, id, verdict }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use deskmesh_crdt_model::beacon::{Availability, SeatBeacon};
    use deskmesh_keys::roster::{OpBody, Roster};
    use deskmesh_keys::{DeviceKey, Domain, Signer};

    use super::*;
    use crate::testkit;

    /// A coordinator's roster with `n` admissions, as signed operations in causal order (create first).
    fn chain(n: u8) -> (DeviceKey, Vec<SignedOp>) {
        let coordinator = DeviceKey::from_seed(&[1; 32]);
        let (mut roster, create) =
            Roster::create(&coordinator, "North", vec![], 1, 1_700_000_000_000).unwrap();
        let mut ops = vec![create];
        for i in 0..n {
            let device = DeviceKey::from_seed(&[10 + i; 32]).public_key();
            let op = roster.propose(
                &coordinator,
                OpBody::AdmitSpace {
                    space: SpaceId::derive(&device),
                    name: format!("Space {i}"),
                    devices: vec![device],
                },
                1_700_000_000_000 + i64::from(i),
            );
            roster.insert(op.clone()).unwrap();
            ops.push(op);
        }
        (coordinator, ops)
    }

    /// A node that joined the roster whose create operation is `create` (and nothing else yet).
    fn joiner(create: &SignedOp) -> Node {
        let mut node = testkit::node("joiner");
        node.adopt_roster(std::slice::from_ref(create), &[])
            .unwrap();
        node
    }

    fn added(o: &Outcome) -> bool {
        matches!(o.verdict, Verdict::Added(_))
    }

    /// A roster operation's signatures are verified in the check phase: a forged one is refused with the
    /// roster's sentence and the roster stays as it was; once the real operation is in, the same
    /// operation with a forged signature is known, not refused.
    #[test]
    fn a_forged_roster_operation_is_refused_from_the_check_phase_and_a_known_one_stays_known() {
        let (_, ops) = chain(2);
        let mut node = joiner(&ops[0]);
        let mut bytes = ops[1].to_bytes();
        // The last byte is in the last signature.
        *bytes.last_mut().unwrap() ^= 1;
        let forged = SignedItem::new(ItemKind::RosterOp, bytes);
        let checked = check(forged.clone(), Utc::now());
        assert!(
            matches!(checked.body, Body::Op(OpIn::Forged(..))),
            "{:?}",
            checked.body
        );
        let real = check(SignedItem::op(&ops[1]), Utc::now());
        assert!(matches!(real.body, Body::Op(OpIn::Verified(_))));
        let report = node.ingest(vec![forged.clone()], Source::Mesh, At::now());
        match &report.outcomes[0].verdict {
            Verdict::Refused(why) => assert!(
                why.starts_with("the roster operation has a bad signature"),
                "{why}"
            ),
            other => panic!("a forged operation was not refused: {other:?}"),
        }
        assert_eq!(node.roster().unwrap().len(), 1);
        let report = node.ingest(
            vec![SignedItem::op(&ops[2]), SignedItem::op(&ops[1])],
            Source::Mesh,
            At::now(),
        );
        assert!(report.outcomes.iter().all(added), "{:?}", report.outcomes);
        let report = node.ingest(vec![forged], Source::Mesh, At::now());
        assert_eq!(report.outcomes[0].verdict, Verdict::Known);
    }

    #[test]
    fn roster_operations_in_any_order_are_applied_parents_first_within_and_across_batches() {
        let (_, ops) = chain(5);
        let mut node = joiner(&ops[0]);
        // Children first, with garbage in the middle: every valid one is applied, in one pass.
        let mut batch: Vec<SignedItem> = ops[1..].iter().rev().map(SignedItem::op).collect();
        batch.insert(2, SignedItem::new(ItemKind::RosterOp, vec![0xff; 8]));
        let report = node.ingest(batch, Source::Mesh, At::now());
        assert_eq!(report.outcomes.iter().filter(|o| added(o)).count(), 5);
        assert!(matches!(report.outcomes[2].verdict, Verdict::Refused(_)));
        assert_eq!(node.roster().unwrap().len(), 6);

        // Across batches: a child alone waits, parked; its parent in a later batch wakes it.
        let (_, ops) = chain(2);
        let mut node = joiner(&ops[0]);
        let first = node.ingest(vec![SignedItem::op(&ops[2])], Source::Mesh, At::now());
        assert_eq!(first.outcomes[0].verdict, Verdict::Waiting);
        assert_eq!(node.held_for_roster(), (1, 0));
        let second = node.ingest(vec![SignedItem::op(&ops[1])], Source::Mesh, At::now());
        assert!(added(&second.outcomes[0]));
        assert_eq!(second.woken.len(), 1);
        assert!(added(&second.woken[0]));
        assert_eq!(node.held_for_roster(), (0, 0));
    }

    #[test]
    fn an_operation_missing_its_parents_in_a_bundle_is_refused_not_kept() {
        let (_, ops) = chain(2);
        let mut node = joiner(&ops[0]);
        let report = node.ingest(vec![SignedItem::op(&ops[2])], Source::Bundle, At::now());
        assert!(matches!(report.outcomes[0].verdict, Verdict::Refused(_)));
        assert_eq!(node.held_for_roster(), (0, 0));
        assert_eq!(node.refusals().unwrap().len(), 1);
    }

    /// A space admitted by a coordinator, and its first listing change signed by the space's own key.
    fn space_and_change(coordinator: &mut Node) -> (DeviceKey, SignedChange) {
        let key = DeviceKey::generate();
        let invite = coordinator
            .alliance_invite(key.public_key(), "Riverside", Vec::new(), testkit::now())
            .unwrap();
        let roster = coordinator.roster().unwrap();
        let listing = testkit::listing(&invite.space, "Riverside");
        let mut doc = deskmesh_crdt_model::doc::SpaceDoc::new(invite.space.clone());
        let change = doc
            .edit(
                &listing,
                &key,
                &RosterAuthority(Some(roster)),
                roster.heads(),
                testkit::now().timestamp_millis(),
            )
            .unwrap()
            .unwrap();
        (key, change)
    }

    /// What decides an item's judgement, in a form two runs can compare.
    fn verdict_of(c: &Checked) -> String {
        match &c.body {
            Body::Bad { why, .. } => format!("refused: {why}"),
            Body::Change(v) => format!("change {:?} {}", c.id, v.has_verdict()),
            other => format!("{:?} {:?}", std::mem::discriminant(other), c.id),
        }
    }

    #[test]
    fn checks_in_batches_on_any_number_of_threads_give_each_item_its_verdict_alone() {
        let mut coordinator = testkit::coordinator();
        let outsider = DeviceKey::generate();
        let mut items = Vec::new();
        for n in 0..150 {
            let (_, mut change) = space_and_change(&mut coordinator);
            if n % 37 == 5 {
                // Signed, but by a key that is not the envelope's author.
                change.signature = outsider.sign(Domain::ListingChange, &change.envelope_bytes);
            }
            items.push(SignedItem::change(&change));
            if n == 90 {
                items.push(SignedItem::new(ItemKind::ListingChange, vec![7; 40]));
            }
        }
        let wall = testkit::now();
        let alone: Vec<String> = items
            .iter()
            .map(|i| verdict_of(&check(i.clone(), wall)))
            .collect();
        assert_eq!(
            alone.iter().filter(|v| v.starts_with("refused")).count(),
            5,
            "four forged, one garbage: {alone:?}"
        );
        // 151 items: one run on one thread, and runs of 64 or of 38-40 over two and four threads;
        // also a batch too small to be split.
        for threads in [1, 2, 4] {
            let together: Vec<String> = check_all(items.clone(), wall, threads)
                .iter()
                .map(verdict_of)
                .collect();
            assert_eq!(together, alone, "{threads} threads");
        }
        let few = items[..40].to_vec();
        let together: Vec<String> = check_all(few, wall, 2).iter().map(verdict_of).collect();
        assert_eq!(together, alone[..40]);
    }

    #[test]
    fn a_change_waits_for_its_admission_from_the_mesh_and_is_refused_from_a_bundle() {
        let mut coordinator = testkit::coordinator();
        let (_, change) = space_and_change(&mut coordinator);
        let create = SignedOp::from_bytes(&coordinator.bundle().unwrap().roster_ops[0]).unwrap();
        let admission = SignedOp::from_bytes(&coordinator.bundle().unwrap().roster_ops[1]).unwrap();

        // From a bundle there is nobody to wait for: refused, logged, not stored.
        let mut offline = joiner(&create);
        let report = offline.ingest(vec![SignedItem::change(&change)], Source::Bundle, At::now());
        assert!(matches!(report.outcomes[0].verdict, Verdict::Refused(_)));
        assert!(offline.store.spaces().unwrap().is_empty());

        // From the mesh it waits, and the admission arriving later stores it.
        let mut online = joiner(&create);
        let report = online.ingest(vec![SignedItem::change(&change)], Source::Mesh, At::now());
        assert_eq!(report.outcomes[0].verdict, Verdict::Waiting);
        assert_eq!(online.held_for_roster(), (0, 1));
        let report = online.ingest(vec![SignedItem::op(&admission)], Source::Mesh, At::now());
        assert!(added(&report.outcomes[0]));
        assert_eq!(report.woken.len(), 1, "{report:?}");
        assert!(added(&report.woken[0]));
        assert_eq!(online.entries().unwrap().len(), 1);
        assert!(online.refusals().unwrap().is_empty());
    }

    #[test]
    fn a_waiting_item_whose_roster_never_comes_is_refused_after_the_wait() {
        let mut coordinator = testkit::coordinator();
        let (_, change) = space_and_change(&mut coordinator);
        let create = SignedOp::from_bytes(&coordinator.bundle().unwrap().roster_ops[0]).unwrap();
        let mut node = joiner(&create);
        let start = At::now();
        node.ingest(vec![SignedItem::change(&change)], Source::Mesh, start);
        assert!(node.expire_waiting(start).is_empty(), "not yet");
        let later = At {
            mono: start.mono + MAX_WAIT + Duration::from_secs(1),
            wall: start.wall,
        };
        let expired = node.expire_waiting(later);
        assert_eq!(expired.len(), 1);
        assert!(matches!(expired[0].verdict, Verdict::Refused(_)));
        assert_eq!(node.held_for_roster(), (0, 0));
        let refusals = node.refusals().unwrap();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].kind, "listing change");
    }

    #[test]
    fn forged_items_are_refused_logged_and_never_stored() {
        let mut coordinator = testkit::coordinator();
        let (_, change) = space_and_change(&mut coordinator);
        let mut forged = change.to_bytes();
        let last = forged.len() - 1;
        forged[last] ^= 0x55;
        let report = coordinator.ingest(
            vec![
                SignedItem::new(ItemKind::ListingChange, forged),
                SignedItem::new(ItemKind::SeatBeacon, b"not a beacon".to_vec()),
            ],
            Source::Mesh,
            At::now(),
        );
        for o in &report.outcomes {
            assert!(matches!(o.verdict, Verdict::Refused(_)), "{o:?}");
        }
        assert!(coordinator.store.spaces().unwrap().is_empty());
        assert!(coordinator.store.beacons().unwrap().is_empty());
        assert_eq!(coordinator.refusals().unwrap().len(), 2);
    }

    #[test]
    fn a_newer_beacon_replaces_the_kept_one_and_an_older_one_is_superseded() {
        let mut coordinator = testkit::coordinator();
        let (key, change) = space_and_change(&mut coordinator);
        coordinator.ingest(vec![SignedItem::change(&change)], Source::Mesh, At::now());
        let space = SpaceId::derive(&key.public_key());
        let beacon = |seq: u64, n: u32| {
            SeatBeacon {
                space: space.clone(),
                pool: "hot".into(),
                availability: Availability::Count(n),
                is_open: true,
                published_at_ms: chrono::Utc::now().timestamp_millis(),
                ttl_s: 900,
                seq,
                author: key.public_key(),
                roster_heads: coordinator.roster().unwrap().heads(),
            }
            .sign(&key)
            .unwrap()
        };
        let (old, new) = (beacon(0, 3), beacon(1, 2));
        let first = coordinator.ingest(vec![SignedItem::beacon(&old)], Source::Mesh, At::now());
        assert!(added(&first.outcomes[0]));
        let second = coordinator.ingest(vec![SignedItem::beacon(&new)], Source::Mesh, At::now());
        match &second.outcomes[0].verdict {
            Verdict::Added(a) => {
                let old_id = SignedItem::beacon(&old).id().unwrap();
                assert_eq!(a.leaves, vec![(ItemKind::SeatBeacon, old_id)]);
                assert_eq!(a.pool.as_deref(), Some("hot"));
            }
            other => panic!("the newer beacon was not kept: {other:?}"),
        }
        let again = coordinator.ingest(
            vec![SignedItem::beacon(&old), SignedItem::beacon(&new)],
            Source::Mesh,
            At::now(),
        );
        assert_eq!(again.outcomes[0].verdict, Verdict::Superseded);
        assert_eq!(again.outcomes[1].verdict, Verdict::Known);
    }

    #[test]
    fn a_joiner_takes_a_space_from_its_checkpoint_and_the_changes_after_it() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let mut listing = testkit::listing(&id, "Riverside");
        let mut made = Vec::new();
        for n in 0..70 {
            listing.name = format!("Riverside {n}");
            space.publish_listing(&listing, testkit::now()).unwrap();
            made.extend(space.take_made());
        }
        // The space checkpointed itself after 32 and 64 changes; only the second is kept.
        let kept = space.store.space_checkpoints(&id).unwrap();
        assert_eq!(kept.len(), 1, "the larger checkpoint replaced the smaller");
        assert_eq!(space.store.space_covered(&id).unwrap().len(), 64);
        let checkpoints: Vec<&Made> = made
            .iter()
            .filter(|m| m.accepted.kind == ItemKind::Checkpoint)
            .collect();
        assert_eq!(checkpoints.len(), 2);
        assert_eq!(
            checkpoints[1].accepted.leaves.len(),
            1 + 32,
            "{:?}",
            checkpoints[1].accepted.leaves
        );

        // A member gets the roster, the newest checkpoint and the 6 changes after it: no history.
        let mut member = testkit::node("member");
        member
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        let roster: Vec<SignedItem> = coordinator
            .bundle()
            .unwrap()
            .roster_ops
            .into_iter()
            .map(|b| SignedItem::new(ItemKind::RosterOp, b))
            .collect();
        member.ingest(roster, Source::Mesh, At::now());
        let covered: std::collections::HashSet<[u8; 32]> = space
            .store
            .space_covered(&id)
            .unwrap()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        let mut items = vec![SignedItem::new(ItemKind::Checkpoint, kept[0].1.clone())];
        items.extend(
            made.iter()
                .filter(|m| m.accepted.kind == ItemKind::ListingChange)
                .filter(|m| !covered.contains(&m.accepted.id.0))
                .map(|m| m.item.clone()),
        );
        assert_eq!(items.len(), 1 + 6);
        let report = member.ingest(items.clone(), Source::Mesh, At::now());
        assert!(report.outcomes.iter().all(added), "{report:?}");
        let got = member.current_listing(&id).unwrap().unwrap();
        assert_eq!(got, space.current_listing(&id).unwrap().unwrap());
        let audit = member.audit(testkit::now()).unwrap();
        assert!(audit.ok, "{audit:?}");
        let l = &audit.listings[0];
        assert_eq!(
            (l.changes_accepted, l.changes_vouched, l.changes_stored),
            (70, 64, 6)
        );
        assert_eq!(l.checkpoints.len(), 1);

        // Through the daemon's check phase, in any order within the batch: the listing as of each of
        // the 6 changes is worked out on the checkpoint's document there, and the node ends the same.
        let mut second = testkit::node("member-2");
        second
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        second.ingest(
            coordinator
                .bundle()
                .unwrap()
                .roster_ops
                .into_iter()
                .map(|b| SignedItem::new(ItemKind::RosterOp, b))
                .collect(),
            Source::Mesh,
            At::now(),
        );
        let mut shuffled = items.clone();
        shuffled.reverse();
        let checked = check_all(shuffled, testkit::now(), 2);
        assert_eq!(
            checked
                .iter()
                .filter(|c| matches!(&c.body, Body::Change(v) if v.has_verdict()))
                .count(),
            6
        );
        let kinds: Vec<ItemKind> = checked.iter().map(|c| c.item.kind).collect();
        assert_eq!(
            kinds.last(),
            Some(&ItemKind::Checkpoint),
            "input order kept"
        );
        let report = second.ingest_checked(checked, Source::Mesh, At::now());
        assert!(report.outcomes.iter().all(added), "{report:?}");
        assert_eq!(second.current_listing(&id).unwrap().unwrap(), got);
        let again = second.audit(testkit::now()).unwrap();
        assert!(again.ok, "{again:?}");
        assert_eq!(
            (
                again.listings[0].changes_accepted,
                again.listings[0].changes_vouched,
                again.listings[0].changes_stored
            ),
            (70, 64, 6)
        );

        // A covered change arriving later is kept for auditors but stays out of sync.
        let first = made
            .iter()
            .find(|m| m.accepted.kind == ItemKind::ListingChange)
            .unwrap();
        let late = member.ingest(vec![first.item.clone()], Source::Mesh, At::now());
        match &late.outcomes[0].verdict {
            Verdict::Added(a) => assert!(a.hidden),
            other => panic!("{other:?}"),
        }
        // The same checkpoint again is known; an older one covers nothing new.
        let again = member.ingest(
            vec![checkpoints[0].item.clone(), checkpoints[1].item.clone()],
            Source::Mesh,
            At::now(),
        );
        assert_eq!(again.outcomes[0].verdict, Verdict::Superseded);
        assert_eq!(again.outcomes[1].verdict, Verdict::Known);
    }

    #[test]
    fn a_checkpoint_by_a_key_outside_the_space_is_refused() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), testkit::now())
            .unwrap();
        let (doc, _) = space.space_doc(&id).unwrap();
        let outsider = DeviceKey::generate();
        let forged = SignedCheckpoint::sign(
            id.clone(),
            doc.doc(),
            &outsider,
            coordinator.roster().unwrap().heads(),
            1,
        )
        .unwrap();
        let report = coordinator.ingest(
            vec![SignedItem::checkpoint(&forged)],
            Source::Mesh,
            At::now(),
        );
        assert!(
            matches!(
                report.outcomes[0].verdict,
                Verdict::Refused(_) | Verdict::Waiting
            ),
            "{report:?}"
        );
        assert!(coordinator.store.checkpoints().unwrap().is_empty());
    }

    /// A space's document with one more change written into it by `outsider` (a key the roster never
    /// granted the space), checkpointed by the space's own device: the change is forged into it.
    fn checkpoint_with_a_change_by(
        space: &Node,
        id: &SpaceId,
        outsider: &DeviceKey,
        heads: Vec<Hash>,
    ) -> SignedCheckpoint {
        use automerge::transaction::Transactable;
        let (doc, _) = space.space_doc(id).unwrap();
        let mut doc = doc.doc().clone();
        doc.set_actor(automerge::ActorId::from(outsider.public_key().as_bytes()));
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "name", "Taken over").unwrap();
        tx.commit();
        SignedCheckpoint::sign(id.clone(), &doc, space.signer(), heads, 2).unwrap()
    }

    /// The items a node announces, checked on `threads` threads with enough company (other spaces'
    /// changes) that `check_all` spreads them, then judged.
    fn check_and_judge(node: &mut Node, items: Vec<SignedItem>, threads: usize) -> IngestReport {
        let checked = check_all(items, chrono::Utc::now(), threads);
        node.ingest_checked(checked, Source::Mesh, At::now())
    }

    #[test]
    fn a_checkpoint_with_a_forged_change_inside_is_refused_from_the_parallel_check_with_the_same_sentence(
    ) {
        let mut coordinator = testkit::coordinator();
        let (space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        let outsider = DeviceKey::generate();
        let forged = checkpoint_with_a_change_by(
            &space,
            &id,
            &outsider,
            coordinator.roster().unwrap().heads(),
        );
        // What opening it on one thread, the way it was judged before, says.
        let header = forged.verify().unwrap();
        let roster = coordinator.roster().unwrap();
        let expected = forged
            .open(&header, |k| roster.ever_granted(k, &id))
            .unwrap_err()
            .to_string();
        assert!(expected.contains("never a device of"), "{expected}");

        // Checked with 99 other items on two threads, then judged: refused with that sentence, and
        // every other item judged in its place.
        let mut items: Vec<SignedItem> = Vec::new();
        for n in 0..99 {
            let (_, change) = space_and_change(&mut coordinator);
            items.push(if n == 50 {
                SignedItem::checkpoint(&forged)
            } else {
                SignedItem::change(&change)
            });
        }
        let report = check_and_judge(&mut coordinator, items, 2);
        assert_eq!(report.outcomes.len(), 99);
        assert_eq!(report.outcomes[50].kind, ItemKind::Checkpoint);
        assert_eq!(
            report.outcomes[50].verdict,
            Verdict::Refused(expected.clone())
        );
        assert!(report
            .outcomes
            .iter()
            .enumerate()
            .all(|(i, o)| i == 50 || added(o)));
        assert!(coordinator.store.checkpoints().unwrap().is_empty());
        let refusals = coordinator.refusals().unwrap();
        assert!(
            refusals.iter().any(|r| r.reason == expected),
            "{refusals:?}"
        );
    }

    #[test]
    fn a_checkpoint_signed_by_a_key_never_granted_the_space_is_refused() {
        let mut coordinator = testkit::coordinator();
        let (space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        // Another space's device: the roster knows it, and it was never a device of Riverside.
        let (other, _) = testkit::listed_space(&mut coordinator, "Elsewhere");
        let (doc, _) = space.space_doc(&id).unwrap();
        let by_other = SignedCheckpoint::sign(
            id.clone(),
            doc.doc(),
            other.signer(),
            coordinator.roster().unwrap().heads(),
            2,
        )
        .unwrap();
        for threads in [1, 2] {
            let report = check_and_judge(
                &mut coordinator,
                vec![SignedItem::checkpoint(&by_other)],
                threads,
            );
            assert_eq!(
                report.outcomes[0].verdict,
                Verdict::Refused(
                    "the key that signed it is not one of the space's devices in the roster it names"
                        .into()
                )
            );
        }
        assert!(coordinator.store.checkpoints().unwrap().is_empty());
        assert_eq!(coordinator.held_for_roster(), (0, 0));
    }

    #[test]
    fn a_checkpoint_whose_document_is_not_what_its_header_signs_is_refused_whoever_signed_it() {
        let mut coordinator = testkit::coordinator();
        let (space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        // Signed by a key nobody knows, under roster heads nobody knows: it would wait for the roster if
        // only the signature were checked, but its document holds one change more than its header says.
        let stranger = DeviceKey::generate();
        let mut lying = checkpoint_with_a_change_by(&space, &id, &stranger, vec![Hash([9; 32])]);
        let mut header = lying.decode().unwrap();
        header.changes -= 1;
        header.author = stranger.public_key();
        lying.header = postcard::to_stdvec(&header).unwrap();
        lying.signature = stranger.sign(deskmesh_keys::Domain::Checkpoint, &lying.header);
        let checked = check(SignedItem::checkpoint(&lying), chrono::Utc::now());
        let report = coordinator.ingest_checked(vec![checked], Source::Mesh, At::now());
        match &report.outcomes[0].verdict {
            Verdict::Refused(why) => assert!(why.contains("not the 1 its header names"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(coordinator.held_for_roster(), (0, 0));
    }

    #[test]
    fn a_batch_touching_more_spaces_than_the_cache_holds_indexes_every_one() {
        let mut coordinator = testkit::coordinator();
        for n in 0..90 {
            let mut space = testkit::space(&mut coordinator, &format!("Space {n}"));
            let id = space.my_space().unwrap();
            space
                .publish_listing(
                    &testkit::listing(&id, &format!("Space {n}")),
                    testkit::now(),
                )
                .unwrap();
            let items: Vec<SignedItem> = space.take_made().into_iter().map(|m| m.item).collect();
            coordinator.ingest(items, Source::Bundle, At::now());
        }
        assert_eq!(coordinator.entries().unwrap().len(), 90);
        let mut member = testkit::node("member");
        member
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        let all: Vec<SignedItem> = coordinator
            .bundle()
            .unwrap()
            .batches(usize::MAX)
            .into_iter()
            .flatten()
            .collect();
        let report = member.ingest(all, Source::Mesh, At::now());
        assert!(report.flush_error.is_none(), "{:?}", report.flush_error);
        assert_eq!(member.entries().unwrap().len(), 90);
    }

    #[test]
    fn changes_applied_one_by_one_index_exactly_what_a_rebuild_does() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let mut listing = testkit::listing(&id, "Riverside");
        let mut member = testkit::node("member");
        member
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        for batch in space.bundle().unwrap().batches(usize::MAX) {
            member.ingest(batch, Source::Mesh, At::now());
        }
        for n in 0..30 {
            listing.name = format!("Riverside {n}");
            listing.seat_pools[0].capacity = 10 + n;
            space.publish_listing(&listing, testkit::now()).unwrap();
            let made = space.take_made();
            let items = made.into_iter().map(|m| m.item).collect();
            member.ingest(items, Source::Mesh, At::now());
            let incremental = member.entry(&id).unwrap().unwrap();
            assert_eq!(incremental.listing.name, format!("Riverside {n}"));
        }
        let incremental = member.entry(&id).unwrap().unwrap();
        // A node opened over the same store loads the saved document and goes on from it.
        let store = member.store.clone();
        let key = DeviceKey::generate();
        let mut reopened = Node::with_store(key, member.config.clone(), store).unwrap();
        listing.name = "After reopen".into();
        space.publish_listing(&listing, testkit::now()).unwrap();
        let items = space.take_made().into_iter().map(|m| m.item).collect();
        reopened.ingest(items, Source::Mesh, At::now());
        let after = reopened.entry(&id).unwrap().unwrap();
        assert_eq!(after.listing.name, "After reopen");
        // A full rebuild from the stored changes says exactly the same.
        let accepted = reopened.reindex(&id).unwrap();
        assert_eq!(accepted, 31);
        let rebuilt = reopened.entry(&id).unwrap().unwrap();
        assert_eq!(rebuilt.listing, after.listing);
        assert_eq!(rebuilt.heads, after.heads);
        assert_eq!(rebuilt.signers, after.signers);
        assert_ne!(incremental.heads, after.heads);
    }

    /// A beacon of `key`'s space's pool "hot" (one seat), published at `at` under `heads`, signed by `key`.
    fn hot_beacon(key: &DeviceKey, at: i64, heads: Vec<Hash>) -> SignedBeacon {
        SeatBeacon {
            space: SpaceId::derive(&key.public_key()),
            pool: "hot".into(),
            availability: Availability::Count(1),
            is_open: true,
            published_at_ms: at,
            ttl_s: 900,
            seq: 0,
            author: key.public_key(),
            roster_heads: heads,
        }
        .sign(key)
        .unwrap()
    }

    /// Only proof of bad faith marks an item as one no honest node relays: bytes that do not decode or a
    /// signature that does not verify; a beacon dated ahead of this node's clock (a peer's fast clock) is
    /// refused without it.
    #[test]
    fn only_undecodable_bytes_and_bad_signatures_count_as_forged() {
        let key = DeviceKey::generate();
        let now = chrono::Utc::now();
        let good = hot_beacon(&key, now.timestamp_millis(), vec![Hash([1; 32])]);
        let mut forged = good.clone();
        forged.signature = DeviceKey::generate().sign(Domain::SeatBeacon, &forged.bytes);
        let future = hot_beacon(
            &key,
            now.timestamp_millis() + 3_600_000,
            vec![Hash([1; 32])],
        );
        let verdicts: Vec<(bool, bool)> = [
            SignedItem::beacon(&good),
            SignedItem::beacon(&forged),
            SignedItem::beacon(&future),
            SignedItem::new(ItemKind::SeatBeacon, vec![9; 20]),
            SignedItem::new(ItemKind::ListingChange, vec![9; 20]),
        ]
        .into_iter()
        .map(|item| {
            let c = check(item, now);
            (matches!(c.body, Body::Bad { .. }), c.is_bad())
        })
        .collect();
        assert_eq!(
            verdicts,
            vec![
                (false, false),
                (true, true),
                (true, false),
                (true, true),
                (true, true)
            ]
        );
    }

    /// An old beacon naming roster heads this node never saw, behind a newer one already kept, is
    /// superseded: not waited for, not refused, not in the audit.
    #[test]
    fn an_older_beacon_with_unknown_roster_heads_is_superseded_not_refused() {
        let mut coordinator = testkit::coordinator();
        let (key, change) = space_and_change(&mut coordinator);
        coordinator.ingest(vec![SignedItem::change(&change)], Source::Mesh, At::now());
        let now = chrono::Utc::now().timestamp_millis();
        let beacon = |at: i64, heads: Vec<Hash>| hot_beacon(&key, at, heads);
        let newer = beacon(now, coordinator.roster().unwrap().heads());
        let older = beacon(now - 60_000, vec![Hash([7; 32])]);
        assert!(added(
            &coordinator
                .ingest(vec![SignedItem::beacon(&newer)], Source::Mesh, At::now())
                .outcomes[0]
        ));
        let report = coordinator.ingest(vec![SignedItem::beacon(&older)], Source::Mesh, At::now());
        assert_eq!(report.outcomes[0].verdict, Verdict::Superseded);
        assert_eq!(coordinator.held_for_roster(), (0, 0));
        let later = At {
            mono: Instant::now() + MAX_WAIT * 2,
            wall: chrono::Utc::now(),
        };
        assert!(coordinator.expire_waiting(later).is_empty());
        assert!(coordinator.refusals().unwrap().is_empty());
        assert!(coordinator.audit(chrono::Utc::now()).unwrap().ok);
    }

    /// A change by an admitted device that names roster operations not held yet is stored and waits; the
    /// audit lists it apart and still passes, and shows it applied once the operation arrives.
    #[test]
    fn the_audit_tells_a_change_waiting_for_the_roster_from_a_refused_one() {
        let mut coordinator = testkit::coordinator();
        let key = DeviceKey::generate();
        let invite = coordinator
            .alliance_invite(key.public_key(), "Riverside", Vec::new(), testkit::now())
            .unwrap();
        let admission = coordinator.take_made().remove(0).item;
        // A later operation the member's node does not get at first.
        coordinator
            .alliance_invite(
                DeviceKey::generate().public_key(),
                "Later",
                Vec::new(),
                testkit::now(),
            )
            .unwrap();
        let later_op = coordinator.take_made().remove(0).item;
        // The space signs under heads that include the later operation.
        let roster = coordinator.roster().unwrap();
        let mut doc = deskmesh_crdt_model::doc::SpaceDoc::new(invite.space.clone());
        let change = doc
            .edit(
                &testkit::listing(&invite.space, "Riverside"),
                &key,
                &RosterAuthority(Some(roster)),
                roster.heads(),
                testkit::now().timestamp_millis(),
            )
            .unwrap()
            .unwrap();
        let create = SignedOp::from_bytes(&coordinator.bundle().unwrap().roster_ops[0]).unwrap();
        let mut member = joiner(&create);
        member.ingest(vec![admission], Source::Mesh, At::now());
        let report = member.ingest(vec![SignedItem::change(&change)], Source::Mesh, At::now());
        assert!(added(&report.outcomes[0]), "{:?}", report.outcomes);

        let audit = member.audit(chrono::Utc::now()).unwrap();
        assert!(audit.ok, "{audit:?}");
        assert_eq!(audit.waiting, 1);
        let pending: Vec<_> = audit
            .findings
            .iter()
            .filter(|f| f.status == crate::audit::FindingStatus::Pending)
            .collect();
        assert_eq!(pending.len(), 1, "{:?}", audit.findings);
        assert_eq!(
            audit.findings.len(),
            1,
            "nothing else: {:?}",
            audit.findings
        );

        member.ingest(vec![later_op], Source::Mesh, At::now());
        let audit = member.audit(chrono::Utc::now()).unwrap();
        assert!(audit.ok && audit.waiting == 0, "{audit:?}");
        assert_eq!(audit.listings[0].changes_accepted, 1);
    }

    #[test]
    fn local_and_bundle_items_are_kept_for_announcing_and_mesh_items_are_not() {
        let mut coordinator = testkit::coordinator();
        let (_, change) = space_and_change(&mut coordinator);
        // The invite above signed an admission here.
        let made = coordinator.take_made();
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].accepted.kind, ItemKind::RosterOp);
        coordinator.ingest(vec![SignedItem::change(&change)], Source::Mesh, At::now());
        assert!(coordinator.take_made().is_empty());
    }
}
