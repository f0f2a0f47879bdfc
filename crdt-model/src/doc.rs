//! One Automerge document per space, built only from signed changes that verify and are authorised.
//!
//! The listing lives in the document as nested Automerge maps mirroring its JSON ([`reconcile`] writes a
//! target JSON value field by field, [`hydrate`] reads it back), so two devices editing different fields
//! merge field by field. Lists and scalars are replaced whole when they differ, which keeps a list such as
//! `seat_pools` from interleaving two concurrent versions into an invalid one.
//!
//! A [`SpaceDoc`] decides, for every [`SignedChange`] it is offered, one of four things: accepted (applied
//! to the document), duplicate, pending (its roster heads or Automerge dependencies are not known yet, so
//! it is kept and retried) or rejected (with one sentence for the audit, lesson 5). A change is accepted
//! when its envelope verifies for this space, its author is authorised, all its dependencies are accepted,
//! and the listing as of that change (the change plus its causal past) is valid with this space's id
//! (lesson 12). That rule depends only on the change's causal past, never on the order changes arrive in,
//! so replicas that hold the same changes agree, and [`SpaceDoc::apply`] reaches exactly what
//! [`SpaceDoc::rebuild`] does. A change whose dependency was rejected for what it contains is rejected too.
//!
//! Memory: the node keeps materialised listings in its index and loads a `SpaceDoc` only to edit or merge,
//! so construction is cheap ([`SpaceDoc::new`] allocates almost nothing) and nothing else is cached here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    hydrate, ActorId, Automerge, AutomergeError, Change, ChangeHash, ObjId, ObjType, ReadDoc,
    ScalarValue, Value, ROOT,
};
use deskmesh_keys::batch::check_together;
use deskmesh_keys::{Hash, PublicKey, Signer, SpaceId};
use serde_json::{Map as JsonMap, Number, Value as Json};

use crate::change::{
    short_id, Authority, ChangeError, ChangeId, Envelope, SignedChange, VerifiedChange,
    MAX_CHANGE_BYTES,
};
use crate::kept::{ChangeGraph, Kept};
use crate::listing::{limits, Listing, ListingError};

/// How many changes one space may keep waiting (lesson 10). Past it, further changes offered by
/// [`SpaceDoc::apply`] and [`SpaceDoc::apply_verified`] are turned away without entering the audit, since
/// the limit is this node's and the same change may be offered again. Changes the document already
/// considers (the stored changes of a rebuild, pending ones retried) are never turned away: nothing
/// offers them again, and a rebuild of a space known partly through a checkpoint parks every stored
/// change after the first one the store lacks until the checkpoint is merged.
pub const MAX_PENDING: usize = 1024;

/// Why [`SpaceDoc::edit`] refused to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("the listing is for space {listing}, not {space}")]
    WrongSpace { listing: SpaceId, space: SpaceId },
    #[error("the listing is not valid: {0}")]
    Invalid(#[from] ListingError),
    #[error("the listing is {size} bytes as JSON, over the {limit}-byte limit")]
    ListingTooLarge { size: usize, limit: usize },
    #[error("key {key} may not sign for space {space}: {reason}")]
    Unauthorised {
        key: PublicKey,
        space: SpaceId,
        reason: String,
        /// The roster heads are unknown yet; the same edit may be allowed later.
        pending: bool,
    },
    #[error("the edit makes an automerge change of {size} bytes, over the {limit}-byte limit")]
    ChangeTooLarge { size: usize, limit: usize },
    #[error("automerge refused the edit: {0}")]
    Automerge(String),
    #[error("the edit could not be signed: {0}")]
    Sign(#[from] ChangeError),
}

/// What became of one change offered to [`SpaceDoc::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// Already accepted; nothing changed.
    Duplicate,
    /// Kept to retry later, with the reason.
    Pending(String),
    /// Refused for good, with the reason (also recorded in [`SpaceDoc::rejected`]).
    Rejected(String),
}

/// An accepted change, for the audit: who signed it and which roster op allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedChange {
    pub author: PublicKey,
    /// The roster operation that authorised the author at the envelope's roster heads (for a change
    /// taken from a checkpoint: the one that authorised the checkpoint's signer).
    pub auth_op: Hash,
    pub created_at_ms: i64,
    /// The checkpoint this change came in, without its own envelope: its signer vouches for it.
    pub vouched_by: Option<Hash>,
}

/// A refused change and why. `hash` is the change hash the envelope claims, or, when not even that could
/// be read, the hash of the change as received (labelled `unreadable-change`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectedChange {
    pub hash: ChangeId,
    pub author: Option<PublicKey>,
    pub reason: String,
}

/// A change kept until what it waits for arrives. Its signature was checked before it was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub change: SignedChange,
    pub hash: ChangeId,
    pub reason: String,
}

/// One space's listing document with the audit of every change offered to it.
#[derive(Debug)]
pub struct SpaceDoc {
    space: SpaceId,
    doc: Automerge,
    accepted: BTreeMap<ChangeId, AcceptedChange>,
    /// Sorted by (hash, author, reason) and free of repeats, so replicas can compare them.
    rejected: Vec<RejectedChange>,
    /// Sorted by hash then bytes, free of repeats.
    pending: Vec<PendingChange>,
    /// Changes refused for what they contain (invalid listing, refused by Automerge, or built on such a
    /// change). Unlike a bad envelope, this verdict carries over to any other envelope of the same change
    /// and to every change that depends on it.
    excluded: BTreeMap<ChangeId, String>,
    /// The listing last found valid with the heads it was read at: when those are still the document's
    /// heads, `listing()` returns it instead of reading and validating the document again (a rebuild then
    /// costs one read per change, not two).
    valid_at: Option<(Vec<ChangeHash>, Listing)>,
    /// The dependencies of every change seen, for strong removal: which changes a removal keeps.
    graph: ChangeGraph,
    /// A change is pending until a change some removal keeps arrives: retry the pending ones whenever a
    /// new change is seen.
    waiting_on_kept: bool,
}

/// What [`SignedChange::verify_decoded`] says of a change.
type Verified = Result<(Envelope, Change), ChangeError>;

/// How many stored changes a rebuild checks the signatures of as one batch (batches of 32 to 64 cost
/// about half of checking one by one: `deskmesh-bench crypto`).
const REBUILD_BATCH: usize = 64;

/// How a pending change's reason starts while it waits for a change some removal keeps.
const WAITING_ON_KEPT: &str = "waiting for listing change";

/// The format version of [`SpaceDoc::save_state`] bytes.
const STATE_VERSION: u8 = 2;

/// What [`SpaceDoc::save_state`] keeps: the Automerge bytes, and the verdicts with authors and authorising
/// roster operations listed once each.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    doc: Vec<u8>,
    authors: Vec<PublicKey>,
    auth_ops: Vec<Hash>,
    /// (change, author index, authorising operation index, created at ms, vouching checkpoint index)
    accepted: Vec<(ChangeId, u32, u32, i64, Option<u32>)>,
    checkpoints: Vec<Hash>,
    rejected: Vec<(ChangeId, Option<PublicKey>, String)>,
    pending: Vec<(SignedChange, ChangeId, String)>,
    excluded: Vec<(ChangeId, String)>,
}

/// The position of `x` in `list`, appending it when absent (for tables of repeated values).
fn index_in<T: PartialEq + Copy>(list: &mut Vec<T>, x: T) -> u32 {
    match list.iter().position(|y| *y == x) {
        Some(i) => i as u32,
        None => {
            list.push(x);
            (list.len() - 1) as u32
        }
    }
}

/// What a change with no dependencies makes of an empty document, worked out apart from any document
/// ([`crate::change::VerifiedChange::prepare`]): the document holding it alone, and the listing as of it
/// or why that is not a valid listing of the space.
#[derive(Debug, Clone)]
pub struct Alone {
    hash: ChangeId,
    doc: Automerge,
    verdict: Result<Listing, String>,
}

impl Alone {
    /// `None` when the change has dependencies or Automerge does not simply take it (then it is placed
    /// the ordinary way, which says why).
    pub(crate) fn of(space: &SpaceId, change: &Change) -> Option<Alone> {
        if !change.deps().is_empty() {
            return None;
        }
        let mut sd = SpaceDoc::new(space.clone());
        let hash = change.hash();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sd.doc.apply_changes([change.clone()])
        }));
        if !matches!(applied, Ok(Ok(()))) || sd.doc.get_heads() != [hash] {
            return None;
        }
        let verdict = sd.check_state(None);
        Some(Alone {
            hash: hash.0,
            doc: sd.doc,
            verdict,
        })
    }
}

/// What the check phase worked out for one change ahead of any node's document. Both parts depend on the
/// change alone (its hash fixes its causal past, and the listing as of it is read at that past), so a
/// document placing the change takes them instead of working them out again.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// For a change with no dependencies: the document holding it alone, and its verdict.
    pub(crate) alone: Option<Box<Alone>>,
    /// The listing as of the change, or why it is not a valid listing of the space
    /// ([`prepare_run`]).
    pub(crate) as_of: Option<Box<AsOf>>,
}

impl Prepared {
    /// What of this belongs to the change `hash` (a copy of another change's takes nothing).
    pub(crate) fn for_change(self, hash: &ChangeId) -> Prepared {
        Prepared {
            alone: self.alone.filter(|a| a.hash == *hash),
            as_of: self.as_of.filter(|a| a.hash == *hash),
        }
    }
}

/// The listing as of one change, read on a document holding the change's causal past.
#[derive(Debug, Clone)]
pub(crate) struct AsOf {
    hash: ChangeId,
    verdict: Result<Listing, String>,
}

/// Works out, off any node's document (the check phase runs it on any thread), the listing as of each of
/// `changes`, one space's, oldest first (a change is taken once its dependencies are in): on a copy of
/// `base` (a checkpoint's loaded document that was checked against its header; an empty document when
/// `None`), each change whose dependencies the copy holds is applied and the listing as of it read and
/// validated, as [`SpaceDoc::apply`] would. A change whose listing is not valid is taken back out of the
/// copy (so the changes built on it get no verdict and are judged the ordinary way); a change the copy
/// already holds, or lacks a dependency for, is skipped. Placing such a change later applies it and takes
/// the verdict instead of reading the listing again ([`SpaceDoc::apply_verified`]). Returns how many
/// verdicts were worked out.
pub fn prepare_run(
    space: &SpaceId,
    base: Option<&Automerge>,
    changes: &mut [&mut VerifiedChange],
) -> usize {
    let mut sd = SpaceDoc::new(space.clone());
    if let Some(base) = base {
        sd.doc = base.clone();
    }
    let mut count = 0;
    // Oldest first as given, and again while a pass placed something: a change whose dependency came
    // later in the list (made in the same millisecond) gets its turn once the dependency is in.
    let mut done = vec![false; changes.len()];
    let mut progress = true;
    while progress {
        progress = false;
        for (v, done) in changes.iter_mut().zip(done.iter_mut()) {
            if *done {
                continue;
            }
            let change = v.change().clone();
            let hash = change.hash();
            if sd.doc.get_change_meta_by_hash(&hash).is_some() {
                *done = true;
                continue;
            }
            if let Some(alone) = &v.prepared_mut().alone {
                // A first change already worked out alone: its document is the copy's start.
                if sd.doc.get_heads().is_empty() && alone.hash == hash.0 && alone.verdict.is_ok() {
                    sd.doc = alone.doc.clone();
                    progress = true;
                }
                *done = true;
                continue;
            }
            if !change
                .deps()
                .iter()
                .all(|d| sd.doc.get_change_meta_by_hash(d).is_some())
            {
                continue;
            }
            *done = true;
            let before = sd.doc.get_heads();
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sd.doc.apply_changes([change])
            }));
            match applied {
                Ok(Ok(())) if sd.doc.get_change_meta_by_hash(&hash).is_some() => {}
                Ok(_) => {
                    sd.restore(&before);
                    continue;
                }
                // Automerge panicked: the copy may be half-changed; the rest is judged the ordinary way.
                Err(_) => return count,
            }
            let verdict = if sd.doc.get_heads() == [hash] {
                sd.check_state(None)
            } else {
                sd.check_state(Some(&[hash][..]))
            };
            if verdict.is_err() {
                sd.restore(&before);
            } else {
                progress = true;
            }
            v.prepared_mut().as_of = Some(Box::new(AsOf {
                hash: hash.0,
                verdict,
            }));
            count += 1;
        }
    }
    count
}

/// A change that passed the envelope, space and authority checks and now waits for its place.
struct Candidate {
    signed: SignedChange,
    change: Change,
    /// What the check phase worked out for the change, if anything.
    prepared: Prepared,
    hash: ChangeId,
    author: PublicKey,
    auth_op: Hash,
    created_at_ms: i64,
}

/// A change offered to [`SpaceDoc::apply`] or [`SpaceDoc::apply_verified`], as the cap on waiting
/// changes needs it.
#[derive(Clone, Copy)]
struct Offer {
    hash: ChangeId,
    /// It was waiting already before this offer.
    held: bool,
}

impl SpaceDoc {
    /// An empty document for `space`.
    pub fn new(space: SpaceId) -> Self {
        Self {
            space,
            doc: Automerge::new(),
            accepted: BTreeMap::new(),
            rejected: Vec::new(),
            pending: Vec::new(),
            excluded: BTreeMap::new(),
            valid_at: None,
            graph: ChangeGraph::default(),
            waiting_on_kept: false,
        }
    }

    /// Builds the document from every stored change of the space, in any order, duplicates allowed.
    /// Changes are considered in an order fixed by their bytes, so the audit is the same on every node.
    pub fn rebuild(
        space: SpaceId,
        changes: impl IntoIterator<Item = SignedChange>,
        authority: &impl Authority,
    ) -> SpaceDoc {
        let mut sd = SpaceDoc::new(space);
        let mut all: Vec<SignedChange> = changes.into_iter().collect();
        all.sort_by(signed_order);
        all.dedup();
        // Every verified change enters the graph first, so strong removal can see what a removal keeps
        // whatever order the changes are considered in.
        // Signatures checked in batches of up to REBUILD_BATCH, each change still getting the verdict it
        // would get alone (`deskmesh_keys::batch::check_together`).
        let checks: Vec<Verified> = all
            .chunks(REBUILD_BATCH)
            .flat_map(|run| check_together(run, SignedChange::verify_decoded))
            .collect();
        let verified: Vec<(SignedChange, Verified)> = all.into_iter().zip(checks).collect();
        for (env, _) in verified.iter().filter_map(|(_, v)| v.as_ref().ok()) {
            sd.graph.add(env.change_hash, env.deps.clone());
        }
        let mut candidates = Vec::new();
        for (sc, v) in verified {
            let admitted = match v {
                Ok((env, change)) => sd.admit_verified(sc, env, change, authority),
                Err(e) => Err(sd.reject_unverified(&sc, e)),
            };
            if let Ok(c) = admitted {
                candidates.push(c);
            }
        }
        sd.settle(candidates);
        sd
    }

    /// Offers one change (from the mesh or the store). After a change is applied or excluded for its
    /// content, pending changes are retried, since they may have been waiting for it.
    pub fn apply(&mut self, change: SignedChange, authority: &impl Authority) -> ApplyOutcome {
        let offered = change
            .envelope()
            .ok()
            .map(|env| self.offer(env.change_hash));
        let outcome = match self.admit(change, authority) {
            Ok(c) => self.place_candidate(c, authority),
            Err(outcome) => outcome,
        };
        match offered {
            Some(offer) => self.within_cap(offer, outcome),
            None => outcome,
        }
    }

    /// Like [`SpaceDoc::apply`] for a change whose signature was already checked.
    pub fn apply_verified(
        &mut self,
        change: VerifiedChange,
        authority: &impl Authority,
    ) -> ApplyOutcome {
        let mut change = change;
        let prepared = change.take_prepared();
        let (signed, env, decoded) = change.into_parts();
        let offer = self.offer(env.change_hash);
        self.graph.add(env.change_hash, env.deps.clone());
        let outcome = match self.admit_verified(signed, env, decoded, authority) {
            Ok(mut c) => {
                c.prepared = prepared;
                self.place_candidate(c, authority)
            }
            Err(outcome) => outcome,
        };
        self.within_cap(offer, outcome)
    }

    /// Notes a change being offered, for [`SpaceDoc::within_cap`]: its hash and whether it waits already.
    fn offer(&self, hash: ChangeId) -> Offer {
        Offer {
            hash,
            held: self.pending.iter().any(|p| p.hash == hash),
        }
    }

    /// The cap on waiting changes ([`MAX_PENDING`]), applied to the one change just offered: if it is left
    /// waiting, was not waiting before, and more than `MAX_PENDING` changes wait now, it is turned away.
    /// Changes parked while it was placed (pending ones retried) are kept whatever their number.
    fn within_cap(&mut self, offer: Offer, outcome: ApplyOutcome) -> ApplyOutcome {
        let ApplyOutcome::Pending(reason) = &outcome else {
            return outcome;
        };
        if offer.held || self.pending.len() <= MAX_PENDING {
            return outcome;
        }
        let reason =
            format!("not kept: {MAX_PENDING} changes already wait for this space ({reason})");
        self.pending.retain(|p| p.hash != offer.hash);
        ApplyOutcome::Rejected(reason)
    }

    fn place_candidate(
        &mut self,
        candidate: Candidate,
        authority: &impl Authority,
    ) -> ApplyOutcome {
        let hash = candidate.hash;
        let outcomes = self.settle(vec![candidate]);
        let outcome = outcomes
            .get(&hash)
            .cloned()
            .unwrap_or_else(|| ApplyOutcome::Pending("waiting".into()));
        // Reaching `settle` and not staying pending means the change was placed or excluded; either way
        // changes waiting on it can now move (to applied, or to rejected as its dependents). A change
        // waiting for what a removal keeps may move as soon as a new change is seen.
        if (matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::Rejected(_))
            || self.waiting_on_kept)
            && !self.pending.is_empty()
        {
            self.retry_pending(authority);
            return self.outcome_of(&hash).unwrap_or(outcome);
        }
        outcome
    }

    /// What became of a change this document has seen, if it is settled (applied or rejected).
    pub fn outcome_of(&self, hash: &ChangeId) -> Option<ApplyOutcome> {
        if self.accepted.contains_key(hash) {
            return Some(ApplyOutcome::Applied);
        }
        if let Some(p) = self.pending.iter().find(|p| p.hash == *hash) {
            return Some(ApplyOutcome::Pending(p.reason.clone()));
        }
        self.rejected
            .iter()
            .find(|r| r.hash == *hash)
            .map(|r| ApplyOutcome::Rejected(r.reason.clone()))
    }

    /// Offers every pending change again, e.g. after the roster advanced. Returns how many were applied.
    pub fn retry_pending(&mut self, authority: &impl Authority) -> usize {
        self.waiting_on_kept = false;
        let before = self.accepted.len();
        let waiting = std::mem::take(&mut self.pending);
        let mut candidates = Vec::new();
        for p in waiting {
            // A pending change's signature was checked before it was kept (and a saved document's pending
            // changes were, before it was saved): not again on every retry.
            let admitted = match p.change.decode_verified() {
                Ok((env, change)) => {
                    self.graph.add(env.change_hash, env.deps.clone());
                    self.admit_verified(p.change, env, change, authority)
                }
                Err(e) => Err(self.reject_unverified(&p.change, e)),
            };
            if let Ok(c) = admitted {
                candidates.push(c);
            }
        }
        self.settle(candidates);
        self.accepted.len() - before
    }

    /// Writes `listing` into the document as one change signed by `signer`, or returns `None` when the
    /// document already says exactly this. Refuses an invalid listing, one for another space, and a signer
    /// that `authority` does not allow at `roster_heads` (every other node would refuse the change).
    pub fn edit(
        &mut self,
        listing: &Listing,
        signer: &impl Signer,
        authority: &impl Authority,
        roster_heads: Vec<Hash>,
        now_ms: i64,
    ) -> Result<Option<SignedChange>, DocError> {
        if listing.id != self.space {
            return Err(DocError::WrongSpace {
                listing: listing.id.clone(),
                space: self.space.clone(),
            });
        }
        // Parse the canonical form back so the document holds exactly what every reader will validate.
        let canonical = Listing::from_value(listing.to_value())?.to_value();
        let size = json_len(&canonical);
        if size > limits::MAX_LISTING_BYTES {
            return Err(DocError::ListingTooLarge {
                size,
                limit: limits::MAX_LISTING_BYTES,
            });
        }
        let Json::Object(target) = canonical else {
            return Err(DocError::Automerge(
                "a listing must be a JSON object".to_string(),
            ));
        };
        let key = signer.public_key();
        let auth_op = authority
            .authorise(&roster_heads, &key, &self.space)
            .map_err(|d| DocError::Unauthorised {
                key,
                space: self.space.clone(),
                reason: d.reason,
                pending: d.pending,
            })?;

        let before = self.doc.get_heads();
        self.doc.set_actor(ActorId::from(key.as_bytes()));
        let mut tx = self.doc.transaction();
        if let Err(e) = reconcile(&mut tx, &target) {
            tx.rollback();
            return Err(DocError::Automerge(e.to_string()));
        }
        if tx.pending_ops() == 0 {
            tx.rollback();
            return Ok(None);
        }
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now_ms.div_euclid(1000)));
        let Some(hash) = hash else {
            return Ok(None);
        };
        let result = self.wrap_own(hash, signer, roster_heads, now_ms, auth_op);
        if result.is_err() {
            self.restore(&before);
        }
        result.map(Some)
    }

    /// Signs the change just committed, and records it as accepted after the same check every reader makes.
    fn wrap_own(
        &mut self,
        hash: ChangeHash,
        signer: &impl Signer,
        roster_heads: Vec<Hash>,
        now_ms: i64,
        auth_op: Hash,
    ) -> Result<SignedChange, DocError> {
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .ok_or_else(|| DocError::Automerge("the new change is missing".to_string()))?;
        let deps: Vec<ChangeId> = change.deps().iter().map(|d| d.0).collect();
        let bytes = change.raw_bytes().to_vec();
        if bytes.len() > MAX_CHANGE_BYTES {
            return Err(DocError::ChangeTooLarge {
                size: bytes.len(),
                limit: MAX_CHANGE_BYTES,
            });
        }
        let signed = SignedChange::sign(self.space.clone(), bytes, signer, roster_heads, now_ms)?;
        // The new change depends on every head, so the listing as of it is the whole document.
        self.check_state(None)
            .map_err(|why| DocError::Automerge(format!("the edit reads back wrong: {why}")))?;
        self.graph.add(hash.0, deps);
        self.accepted.insert(
            hash.0,
            AcceptedChange {
                author: signer.public_key(),
                auth_op,
                created_at_ms: now_ms,
                vouched_by: None,
            },
        );
        Ok(signed)
    }

    /// The listing as the document has it, or `None` when the document is empty.
    ///
    /// Every accepted change leaves a valid listing as of itself, but two such branches can in principle
    /// merge into an invalid one (only rules that span several fields can break that way). Then the listing
    /// as of the greatest head is shown, which every node picks alike, until an edit on top merges them.
    pub fn listing(&self) -> Option<Listing> {
        let mut heads = self.doc.get_heads();
        if heads.is_empty() {
            return None;
        }
        if let Some((at, listing)) = &self.valid_at {
            if *at == heads {
                return Some(listing.clone());
            }
        }
        if let Ok(l) = self.check_state(None) {
            return Some(l);
        }
        heads.sort_by_key(|h| std::cmp::Reverse(h.0));
        heads
            .iter()
            .find_map(|h| self.check_state(Some(&[*h])).ok())
    }

    /// The document's content as JSON, valid or not (for the audit and debugging).
    pub fn value(&self) -> Json {
        hydrate(&self.doc, None)
    }

    /// The document heads, sorted.
    pub fn heads(&self) -> Vec<ChangeId> {
        let mut h: Vec<ChangeId> = self.doc.get_heads().iter().map(|h| h.0).collect();
        h.sort();
        h
    }

    /// Per author, the changes they signed and the roster op that allowed each, for the audit.
    pub fn signers(&self) -> BTreeMap<PublicKey, Vec<(ChangeId, Hash)>> {
        let mut out: BTreeMap<PublicKey, Vec<(ChangeId, Hash)>> = BTreeMap::new();
        for (id, a) in &self.accepted {
            out.entry(a.author).or_default().push((*id, a.auth_op));
        }
        out
    }

    pub fn space(&self) -> &SpaceId {
        &self.space
    }

    /// The Automerge document itself, read-only (for saving and sync).
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn accepted(&self) -> &BTreeMap<ChangeId, AcceptedChange> {
        &self.accepted
    }

    pub fn rejected(&self) -> &[RejectedChange] {
        &self.rejected
    }

    pub fn pending(&self) -> &[PendingChange] {
        &self.pending
    }

    /// Takes every change of a checkpoint's document (`changes`, all of them, dependencies first, as
    /// [`crate::checkpoint::Loaded::changes`] lists them once the checkpoint is opened and checked) that
    /// this document lacks. They come without envelopes: each is recorded as accepted, authored by its
    /// actor, with the checkpoint `id` as its warrant and `auth_op` (what authorised the checkpoint's
    /// signer) as its authorisation. A checkpoint holding a change this document refused for what it
    /// contains is refused whole. Returns how many changes were new.
    pub fn merge_checkpoint(
        &mut self,
        id: Hash,
        changes: &[Change],
        auth_op: Hash,
        authority: &impl Authority,
    ) -> Result<usize, DocError> {
        let new = self.lacking(changes)?;
        if new.is_empty() {
            return Ok(0);
        }
        let new: Vec<Change> = new.into_iter().cloned().collect();
        let before = self.doc.get_heads();
        let metas: Vec<(ChangeId, Vec<u8>, i64)> = new
            .iter()
            .map(|c| (c.hash().0, c.actor_id().to_bytes().to_vec(), c.timestamp()))
            .collect();
        if let Err(e) = self.doc.apply_changes(new) {
            self.restore(&before);
            return Err(DocError::Automerge(format!(
                "the checkpoint's changes do not apply: {e}"
            )));
        }
        let count = self.vouch(id, auth_op, metas);
        self.valid_at = None;
        self.settle_after_checkpoint(authority);
        Ok(count)
    }

    /// Records changes taken from checkpoint `id` as accepted, each `(hash, actor, timestamp in s)`
    /// authored by its actor (each actor read once: a key is a curve point to decompress, and a document
    /// has few authors) and authorised by `auth_op`; returns how many were recorded.
    fn vouch(
        &mut self,
        id: Hash,
        auth_op: Hash,
        metas: impl IntoIterator<Item = (ChangeId, Vec<u8>, i64)>,
    ) -> usize {
        let mut count = 0;
        let mut authors: BTreeMap<Vec<u8>, Option<PublicKey>> = BTreeMap::new();
        for (hash, actor, at_s) in metas {
            let Some(author) = *authors
                .entry(actor)
                .or_insert_with_key(|a| PublicKey::from_bytes(a).ok())
            else {
                continue;
            };
            self.accepted.insert(
                hash,
                AcceptedChange {
                    author,
                    auth_op,
                    created_at_ms: at_s.saturating_mul(1000),
                    vouched_by: Some(id),
                },
            );
            count += 1;
        }
        count
    }

    /// After a checkpoint's changes were taken: pending and rejected changes it holds are no longer
    /// either, and the pending rest is tried again.
    fn settle_after_checkpoint(&mut self, authority: &impl Authority) {
        let accepted = &self.accepted;
        self.pending.retain(|p| !accepted.contains_key(&p.hash));
        self.rejected.retain(|r| !accepted.contains_key(&r.hash));
        if !self.pending.is_empty() {
            self.retry_pending(authority);
        }
    }

    /// The changes of a checkpoint this document lacks, or why the checkpoint must be refused: it holds a
    /// change this document refused for what it contains.
    fn lacking<'a>(&self, changes: &'a [Change]) -> Result<Vec<&'a Change>, DocError> {
        let mut new = Vec::new();
        for c in changes {
            let hash = c.hash();
            if self.accepted.contains_key(&hash.0) {
                continue;
            }
            if let Some(why) = self.excluded.get(&hash.0) {
                return Err(DocError::Automerge(format!(
                    "the checkpoint holds change {}, refused here: {why}",
                    short_id(&hash.0)
                )));
            }
            new.push(c);
        }
        Ok(new)
    }

    /// [`SpaceDoc::merge_checkpoint`] for a document that holds no change yet (pending and refused ones
    /// aside): takes the checkpoint's loaded document `doc` itself, with its `changes` and the `listing`
    /// [`crate::checkpoint::SignedCheckpoint::load`] read at its heads (with its size as JSON), instead of
    /// applying every change again into an empty document. The result is the same; a document that
    /// already holds changes merges instead.
    pub fn adopt_checkpoint(
        &mut self,
        id: Hash,
        doc: Automerge,
        changes: &[Change],
        listing: Option<(Listing, usize)>,
        auth_op: Hash,
        authority: &impl Authority,
    ) -> Result<usize, DocError> {
        if !self.accepted.is_empty() || !self.doc.get_heads().is_empty() {
            return self.merge_checkpoint(id, changes, auth_op, authority);
        }
        if self.lacking(changes)?.is_empty() {
            return Ok(0);
        }
        self.doc = doc;
        let count = self.vouch(
            id,
            auth_op,
            changes
                .iter()
                .map(|c| (c.hash().0, c.actor_id().to_bytes().to_vec(), c.timestamp())),
        );
        // The listing was read and validated at these heads when the checkpoint was loaded; what
        // `listing()` would compute again, unless it is over the size limit (then it looks further).
        self.valid_at = listing
            .filter(|(_, size)| *size <= limits::MAX_LISTING_BYTES)
            .map(|(l, _)| (self.doc.get_heads(), l));
        self.settle_after_checkpoint(authority);
        Ok(count)
    }

    /// The document and its verdicts as bytes, so a node can keep them beside its index and apply the
    /// next change without rebuilding the document from every change it holds. [`SpaceDoc::load_state`]
    /// reads them back; the bytes carry their own format version.
    pub fn save_state(&self) -> Vec<u8> {
        let mut authors: Vec<PublicKey> = Vec::new();
        let mut auth_ops: Vec<Hash> = Vec::new();
        let mut checkpoints: Vec<Hash> = Vec::new();
        let accepted = self
            .accepted
            .iter()
            .map(|(id, a)| {
                (
                    *id,
                    index_in(&mut authors, a.author),
                    index_in(&mut auth_ops, a.auth_op),
                    a.created_at_ms,
                    a.vouched_by.map(|c| index_in(&mut checkpoints, c)),
                )
            })
            .collect();
        let state = State {
            // Not deflated: these bytes stay on this node, are written after every batch that touches the
            // space, and setting up deflate for each column cost more than the write (the bytes load
            // the same either way).
            doc: self.doc.save_nocompress(),
            authors,
            auth_ops,
            accepted,
            checkpoints,
            rejected: self
                .rejected
                .iter()
                .map(|r| (r.hash, r.author, r.reason.clone()))
                .collect(),
            pending: self
                .pending
                .iter()
                .map(|p| (p.change.clone(), p.hash, p.reason.clone()))
                .collect(),
            excluded: self
                .excluded
                .iter()
                .map(|(h, why)| (*h, why.clone()))
                .collect(),
        };
        let mut out = vec![STATE_VERSION];
        // Serialising plain vectors of bytes, ids and strings cannot fail.
        out.extend(postcard::to_stdvec(&state).unwrap_or_default());
        out
    }

    /// The document [`SpaceDoc::save_state`] wrote. Fails for bytes of another format version or that do
    /// not decode; the caller then rebuilds the document from its changes.
    pub fn load_state(space: SpaceId, bytes: &[u8]) -> Result<SpaceDoc, DocError> {
        let body = match bytes.split_first() {
            Some((&STATE_VERSION, body)) => body,
            Some((v, _)) => {
                return Err(DocError::Automerge(format!(
                    "saved document state version {v} is not {STATE_VERSION}"
                )))
            }
            None => return Err(DocError::Automerge("empty saved document state".into())),
        };
        let state: State = postcard::from_bytes(body)
            .map_err(|e| DocError::Automerge(format!("saved document state: {e}")))?;
        let doc = Automerge::load(&state.doc).map_err(|e| DocError::Automerge(e.to_string()))?;
        let mut accepted = BTreeMap::new();
        for (id, author, op, at, vouched) in state.accepted {
            let (Some(author), Some(op)) = (
                state.authors.get(author as usize),
                state.auth_ops.get(op as usize),
            ) else {
                return Err(DocError::Automerge(
                    "saved document state names an unknown author".into(),
                ));
            };
            let vouched_by = match vouched {
                Some(i) => Some(*state.checkpoints.get(i as usize).ok_or_else(|| {
                    DocError::Automerge("saved document state names an unknown checkpoint".into())
                })?),
                None => None,
            };
            accepted.insert(
                id,
                AcceptedChange {
                    author: *author,
                    auth_op: *op,
                    created_at_ms: at,
                    vouched_by,
                },
            );
        }
        if accepted.len() != doc.get_changes(&[]).len() {
            return Err(DocError::Automerge(
                "saved document state does not match its document".into(),
            ));
        }
        // The graph strong removal reads: the document's changes and the pending ones.
        let mut graph = ChangeGraph::default();
        for c in doc.get_changes(&[]) {
            graph.add(c.hash().0, c.deps().iter().map(|d| d.0).collect());
        }
        let mut waiting_on_kept = false;
        for (change, _, reason) in &state.pending {
            if let Ok(env) = change.envelope() {
                graph.add(env.change_hash, env.deps);
            }
            waiting_on_kept |= reason.starts_with(WAITING_ON_KEPT);
        }
        Ok(SpaceDoc {
            space,
            doc,
            accepted,
            rejected: state
                .rejected
                .into_iter()
                .map(|(hash, author, reason)| RejectedChange {
                    hash,
                    author,
                    reason,
                })
                .collect(),
            pending: state
                .pending
                .into_iter()
                .map(|(change, hash, reason)| PendingChange {
                    change,
                    hash,
                    reason,
                })
                .collect(),
            excluded: state.excluded.into_iter().collect(),
            valid_at: None,
            graph,
            waiting_on_kept,
        })
    }

    /// Verifies the envelope, the space and the author. A change that fails is recorded (rejected or
    /// pending) and its outcome returned as the error.
    fn admit(
        &mut self,
        sc: SignedChange,
        authority: &impl Authority,
    ) -> Result<Candidate, ApplyOutcome> {
        let (env, change) = match sc.verify_decoded() {
            Ok(v) => v,
            Err(e) => return Err(self.reject_unverified(&sc, e)),
        };
        self.graph.add(env.change_hash, env.deps.clone());
        self.admit_verified(sc, env, change, authority)
    }

    /// Records a change whose envelope does not verify.
    fn reject_unverified(&mut self, sc: &SignedChange, e: ChangeError) -> ApplyOutcome {
        let (hash, author) = match sc.envelope() {
            Ok(env) => (env.change_hash, Some(env.author)),
            Err(_) => (Hash::of("unreadable-change", &sc.to_bytes()).0, None),
        };
        self.reject(hash, author, e.to_string())
    }

    /// The checks after the signature: the space, the author's authority, and earlier verdicts.
    fn admit_verified(
        &mut self,
        sc: SignedChange,
        env: Envelope,
        change: Change,
        authority: &impl Authority,
    ) -> Result<Candidate, ApplyOutcome> {
        let hash = env.change_hash;
        if self.accepted.contains_key(&hash) {
            return Err(ApplyOutcome::Duplicate);
        }
        if env.space != self.space {
            let why = format!(
                "the change is signed for space {}, not {}",
                env.space, self.space
            );
            return Err(self.reject(hash, Some(env.author), why));
        }
        let auth_op = match authority.authorise(&env.roster_heads, &env.author, &self.space) {
            Ok(op) => op,
            Err(d) if d.pending => {
                let why = format!("authorisation pending: {}", d.reason);
                return Err(self.park(sc, hash, why));
            }
            Err(d) => {
                let why = format!("author {} is not authorised: {}", env.author, d.reason);
                return Err(self.reject(hash, Some(env.author), why));
            }
        };
        if let Some(why) = self.excluded.get(&hash) {
            let why = why.clone();
            return Err(self.reject(hash, Some(env.author), why));
        }
        self.check_kept(&sc, &env, authority)?;
        Ok(Candidate {
            signed: sc,
            change,
            prepared: Prepared::default(),
            hash,
            author: env.author,
            auth_op,
            created_at_ms: env.created_at_ms,
        })
    }

    /// Strong removal: a change by a key that a removal (not in the change's roster past) took away from
    /// the space counts only if that removal keeps it. One it does not keep is excluded like an invalid
    /// change, so changes built on it are rejected too; one whose fate depends on a change not seen yet
    /// waits.
    fn check_kept(
        &mut self,
        sc: &SignedChange,
        env: &Envelope,
        authority: &impl Authority,
    ) -> Result<(), ApplyOutcome> {
        let removals = authority.removals(&env.roster_heads, &env.author, &self.space);
        if removals.is_empty() {
            return Ok(());
        }
        let hash = env.change_hash;
        match self.graph.kept(&hash, &removals) {
            Kept::Yes => Ok(()),
            Kept::No { by, revocation } => {
                let why = ChangeGraph::unkept_reason(&env.author, &by, revocation);
                self.excluded.insert(hash, why.clone());
                Err(self.reject(hash, Some(env.author), why))
            }
            Kept::Unknown { by, missing } => {
                self.waiting_on_kept = true;
                let why = format!(
                    "{WAITING_ON_KEPT} {} to learn whether roster operation {} keeps it",
                    short_id(&missing),
                    by.short()
                );
                Err(self.park(sc.clone(), hash, why))
            }
        }
    }

    /// Places admitted changes in causal order (ties broken by hash): each is applied once all its
    /// dependencies are, rejected if one of them was excluded, and left pending if one is missing.
    fn settle(&mut self, candidates: Vec<Candidate>) -> BTreeMap<ChangeId, ApplyOutcome> {
        let mut outcomes = BTreeMap::new();
        let mut waiting: BTreeMap<ChangeId, Candidate> = BTreeMap::new();
        for c in candidates {
            if self.accepted.contains_key(&c.hash) {
                outcomes.insert(c.hash, ApplyOutcome::Duplicate);
            } else {
                // Several envelopes of one change: the first in byte order stands for all.
                waiting.entry(c.hash).or_insert(c);
            }
        }
        // Children waiting on each missing dependency, and how many dependencies each still lacks.
        let mut children: HashMap<ChangeId, Vec<ChangeId>> = HashMap::new();
        let mut lacking: HashMap<ChangeId, usize> = HashMap::new();
        let mut ready: BTreeSet<ChangeId> = BTreeSet::new();
        let mut doomed: Vec<(ChangeId, ChangeId)> = Vec::new();
        for (hash, c) in &waiting {
            let mut missing = 0;
            for dep in c.change.deps() {
                if self.accepted.contains_key(&dep.0) {
                    continue;
                }
                if self.excluded.contains_key(&dep.0) {
                    doomed.push((*hash, dep.0));
                }
                missing += 1;
                children.entry(dep.0).or_default().push(*hash);
            }
            if missing == 0 {
                ready.insert(*hash);
            } else {
                lacking.insert(*hash, missing);
            }
        }
        loop {
            // Rejections cascade first so a doomed change never waits in `ready`.
            while let Some((hash, dep)) = doomed.pop() {
                let Some(c) = waiting.remove(&hash) else {
                    continue;
                };
                let why = format!("depends on rejected change {}", short_id(&dep));
                self.excluded.insert(hash, why.clone());
                outcomes.insert(hash, self.reject(hash, Some(c.author), why));
                for child in children.remove(&hash).unwrap_or_default() {
                    doomed.push((child, hash));
                }
            }
            let Some(hash) = ready.pop_first() else {
                break;
            };
            let Some(c) = waiting.remove(&hash) else {
                continue;
            };
            let outcome = self.place(c);
            let applied = outcome == ApplyOutcome::Applied;
            outcomes.insert(hash, outcome);
            for child in children.remove(&hash).unwrap_or_default() {
                if !applied {
                    doomed.push((child, hash));
                } else if let Some(n) = lacking.get_mut(&child) {
                    *n -= 1;
                    if *n == 0 {
                        lacking.remove(&child);
                        ready.insert(child);
                    }
                }
            }
        }
        for (hash, c) in waiting {
            let missing = c
                .change
                .deps()
                .iter()
                .find(|d| !self.accepted.contains_key(&d.0))
                .map(|d| short_id(&d.0))
                .unwrap_or_default();
            let why = format!("waiting for change {missing}");
            outcomes.insert(hash, self.park(c.signed, hash, why));
        }
        let accepted = &self.accepted;
        self.pending.retain(|p| !accepted.contains_key(&p.hash));
        outcomes
    }

    /// Applies one change whose dependencies are all in the document, keeping it only if the listing as of
    /// the change is valid for this space.
    fn place(&mut self, mut c: Candidate) -> ApplyOutcome {
        let before = self.doc.get_heads();
        // A first change into an empty document, worked out already: the same result without applying and
        // validating it again.
        let Prepared { alone, as_of } = std::mem::take(&mut c.prepared);
        if let Some(alone) = alone {
            if before.is_empty() && alone.hash == c.hash {
                let Alone { doc, verdict, .. } = *alone;
                return match verdict {
                    Ok(listing) => {
                        self.doc = doc;
                        self.valid_at = Some((self.doc.get_heads(), listing));
                        self.accept(c.hash, c.author, c.auth_op, c.created_at_ms);
                        ApplyOutcome::Applied
                    }
                    Err(why) => {
                        self.excluded.insert(c.hash, why.clone());
                        self.reject(c.hash, Some(c.author), why)
                    }
                };
            }
        }
        let hash = c.change.hash();
        // A panic inside automerge on a change that decoded (see `change::decode_change`) must not stop the
        // node: it counts as a refusal, and the document is rebuilt from what it held before.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.doc.apply_changes([c.change])
        }));
        let applied = match applied {
            Ok(r) => r,
            Err(_) => {
                self.recover(&before);
                self.excluded
                    .insert(c.hash, "automerge failed on the change".into());
                return self.reject(
                    c.hash,
                    Some(c.author),
                    "automerge failed on the change".into(),
                );
            }
        };
        let checked = match applied {
            Err(e) => Err(format!("automerge refused the change: {e}")),
            Ok(()) if self.doc.get_change_meta_by_hash(&hash).is_none() => {
                Err("automerge did not apply the change".to_string())
            }
            Ok(()) => {
                let heads = self.doc.get_heads();
                // The listing as of the change, when the check phase read it already (it depends on the
                // change's causal past alone).
                let known = as_of.filter(|a| a.hash == c.hash).map(|a| a.verdict);
                if heads == [hash] {
                    // The change is the only head: the listing as of it is the document's listing.
                    known
                        .unwrap_or_else(|| self.check_state(None))
                        .map(|listing| {
                            self.valid_at = Some((heads, listing));
                        })
                } else {
                    known
                        .unwrap_or_else(|| self.check_state(Some(&[hash][..])))
                        .map(|_| ())
                }
            }
        };
        match checked {
            Ok(()) => {
                self.accept(c.hash, c.author, c.auth_op, c.created_at_ms);
                ApplyOutcome::Applied
            }
            Err(why) => {
                // Automerge cannot remove a change, so go back to the document as it was (lesson 5).
                self.restore(&before);
                self.excluded.insert(c.hash, why.clone());
                self.reject(c.hash, Some(c.author), why)
            }
        }
    }

    fn accept(&mut self, hash: ChangeId, author: PublicKey, auth_op: Hash, created_at_ms: i64) {
        self.accepted.insert(
            hash,
            AcceptedChange {
                author,
                auth_op,
                created_at_ms,
                vouched_by: None,
            },
        );
    }

    /// The listing as of `heads` (or now), if it is valid for this space.
    fn check_state(&self, heads: Option<&[ChangeHash]>) -> Result<Listing, String> {
        let value = hydrate(&self.doc, heads);
        let size = json_len(&value);
        if size > limits::MAX_LISTING_BYTES {
            return Err(format!(
                "the listing would be {size} bytes as JSON, over the {}-byte limit",
                limits::MAX_LISTING_BYTES
            ));
        }
        let listing = Listing::from_value(value).map_err(|e| format!("invalid listing: {e}"))?;
        if listing.id != self.space {
            return Err(format!(
                "the listing id {} is not this space {}",
                listing.id, self.space
            ));
        }
        Ok(listing)
    }

    /// Resets the document to `heads`, dropping whatever was applied after them.
    /// Goes back to `heads` after automerge panicked: its document may be half-changed, so when forking
    /// it fails too, the document is rebuilt from the changes accepted so far.
    fn recover(&mut self, heads: &[ChangeHash]) {
        let forked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.doc.fork_at(heads)));
        if let Ok(Ok(doc)) = forked {
            self.doc = doc;
            return;
        }
        let changes: Vec<Change> = {
            let doc = &self.doc;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.get_changes(&[])))
                .unwrap_or_default()
        };
        let mut fresh = Automerge::new();
        let accepted: Vec<Change> = changes
            .into_iter()
            .filter(|c| self.accepted.contains_key(&c.hash().0))
            .collect();
        if fresh.apply_changes(accepted).is_ok() {
            self.doc = fresh;
        }
    }

    fn restore(&mut self, heads: &[ChangeHash]) {
        // `fork_at` only fails for heads the document does not have; these were its own heads a moment ago.
        if let Ok(doc) = self.doc.fork_at(heads) {
            self.doc = doc;
        }
    }

    fn reject(
        &mut self,
        hash: ChangeId,
        author: Option<PublicKey>,
        reason: String,
    ) -> ApplyOutcome {
        let r = RejectedChange {
            hash,
            author,
            reason: reason.clone(),
        };
        if let Err(at) = self.rejected.binary_search(&r) {
            self.rejected.insert(at, r);
        }
        ApplyOutcome::Rejected(reason)
    }

    fn park(&mut self, change: SignedChange, hash: ChangeId, reason: String) -> ApplyOutcome {
        let p = PendingChange {
            change,
            hash,
            reason: reason.clone(),
        };
        // No cap here: a change parked may be one the store holds (a rebuild) or one already waiting (a
        // retry), which nothing would offer again; the cap applies to offered changes (`within_cap`).
        match self.pending.binary_search_by(|q| pending_order(q, &p)) {
            Ok(at) => self.pending[at].reason = p.reason,
            Err(at) => self.pending.insert(at, p),
        }
        ApplyOutcome::Pending(reason)
    }
}

fn signed_key(s: &SignedChange) -> (&[u8], &[u8], &[u8]) {
    (&s.envelope_bytes, s.signature.as_bytes(), &s.change)
}

fn pending_order(a: &PendingChange, b: &PendingChange) -> std::cmp::Ordering {
    (a.hash, signed_key(&a.change)).cmp(&(b.hash, signed_key(&b.change)))
}

fn signed_order(a: &SignedChange, b: &SignedChange) -> std::cmp::Ordering {
    signed_key(a).cmp(&signed_key(b))
}

/// Makes the map `obj` say exactly `target`, touching only what differs: changed keys are put, removed keys
/// deleted, nested maps recursed into; lists and scalars are replaced whole when they differ.
pub fn reconcile(
    tx: &mut impl Transactable,
    target: &JsonMap<String, Json>,
) -> Result<(), AutomergeError> {
    reconcile_map(tx, &ROOT, target)
}

fn reconcile_map(
    tx: &mut impl Transactable,
    obj: &ObjId,
    target: &JsonMap<String, Json>,
) -> Result<(), AutomergeError> {
    let gone: Vec<String> = tx.keys(obj).filter(|k| !target.contains_key(k)).collect();
    for k in gone {
        tx.delete(obj, k.as_str())?;
    }
    for (k, want) in target {
        let current = tx.get(obj, k.as_str())?.map(|(v, id)| (v.to_owned(), id));
        match (want, current) {
            (Json::Object(m), Some((Value::Object(ObjType::Map | ObjType::Table), id))) => {
                reconcile_map(tx, &id, m)?;
            }
            (_, Some((Value::Object(_), id))) => {
                if to_json(&tx.hydrate(&id, None)?) != *want {
                    put(tx, obj, k, want)?;
                }
            }
            (_, Some((Value::Scalar(s), _))) => {
                if scalar_to_json(&s) != *want {
                    put(tx, obj, k, want)?;
                }
            }
            (_, None) => put(tx, obj, k, want)?,
        }
    }
    Ok(())
}

/// Puts `value` at map key `key` of `obj`, creating nested objects for maps and lists.
fn put(
    tx: &mut impl Transactable,
    obj: &ObjId,
    key: &str,
    value: &Json,
) -> Result<(), AutomergeError> {
    match value {
        Json::Object(m) => {
            let id = tx.put_object(obj, key, ObjType::Map)?;
            fill_map(tx, &id, m)
        }
        Json::Array(items) => {
            let id = tx.put_object(obj, key, ObjType::List)?;
            fill_list(tx, &id, items)
        }
        scalar => tx.put(obj, key, json_to_scalar(scalar)),
    }
}

fn fill_map(
    tx: &mut impl Transactable,
    obj: &ObjId,
    m: &JsonMap<String, Json>,
) -> Result<(), AutomergeError> {
    for (k, v) in m {
        put(tx, obj, k, v)?;
    }
    Ok(())
}

fn fill_list(
    tx: &mut impl Transactable,
    list: &ObjId,
    items: &[Json],
) -> Result<(), AutomergeError> {
    for (i, v) in items.iter().enumerate() {
        match v {
            Json::Object(m) => {
                let id = tx.insert_object(list, i, ObjType::Map)?;
                fill_map(tx, &id, m)?;
            }
            Json::Array(inner) => {
                let id = tx.insert_object(list, i, ObjType::List)?;
                fill_list(tx, &id, inner)?;
            }
            scalar => tx.insert(list, i, json_to_scalar(scalar))?,
        }
    }
    Ok(())
}

/// Integers stay integers (signed when they fit, else unsigned) and floats stay floats, so a value read
/// back with [`hydrate`] equals the one written.
fn json_to_scalar(v: &Json) -> ScalarValue {
    match v {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                ScalarValue::Uint(u)
            } else {
                ScalarValue::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        // Objects and arrays never reach here: `put` and `fill_list` create them as Automerge objects.
        Json::Array(_) | Json::Object(_) => ScalarValue::Null,
    }
}

fn scalar_to_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Null => Json::Null,
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Int(i) => Json::Number((*i).into()),
        ScalarValue::Uint(u) => Json::Number((*u).into()),
        ScalarValue::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Counter(c) => Json::Number(i64::from(c).into()),
        ScalarValue::Timestamp(t) => Json::Number((*t).into()),
        ScalarValue::Bytes(b) => Json::Array(b.iter().map(|x| Json::Number((*x).into())).collect()),
        ScalarValue::Unknown { .. } => Json::Null,
    }
}

fn to_json(v: &hydrate::Value) -> Json {
    match v {
        hydrate::Value::Scalar(s) => scalar_to_json(s),
        hydrate::Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, mv)| (k.clone(), to_json(&mv.value)))
                .collect(),
        ),
        hydrate::Value::List(l) => Json::Array(l.iter().map(|lv| to_json(&lv.value)).collect()),
        hydrate::Value::Text(t) => Json::String(t.to_string()),
    }
}

/// How many bytes `value` takes as compact JSON (what `value.to_string().len()` says), counted without
/// building the string: the size limit is checked on every change a replay places.
pub fn json_len(value: &Json) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The document (as of `heads`, or now) as JSON: the inverse of [`reconcile`].
pub fn hydrate(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Json {
    to_json(&doc.hydrate(heads))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::change::{Denial, Envelope};
    use crate::listing::{Noise, PoolAccess, PoolKind, SeatPool};
    use automerge::transaction::Transactable;
    use deskmesh_keys::roster::Removal;
    use deskmesh_keys::{DeviceKey, Domain, Signature};
    use proptest::prelude::*;
    use std::cell::RefCell;

    /// A roster stand-in: per space, the keys allowed; roster heads listed in `unknown` are not known yet.
    #[derive(Default)]
    struct FakeAuthority {
        allowed: BTreeMap<SpaceId, BTreeSet<PublicKey>>,
        unknown: RefCell<BTreeSet<Hash>>,
        /// Strong removals per key, constraining changes whatever heads they name.
        removed: RefCell<BTreeMap<PublicKey, Removal>>,
    }

    impl FakeAuthority {
        fn allowing(space: &SpaceId, keys: &[&DeviceKey]) -> Self {
            let mut allowed = BTreeMap::new();
            allowed.insert(
                space.clone(),
                keys.iter().map(|k| k.public_key()).collect::<BTreeSet<_>>(),
            );
            Self {
                allowed,
                unknown: RefCell::default(),
                removed: RefCell::default(),
            }
        }
    }

    impl Authority for FakeAuthority {
        fn authorise(
            &self,
            heads: &[Hash],
            key: &PublicKey,
            space: &SpaceId,
        ) -> Result<Hash, Denial> {
            if heads.iter().any(|h| self.unknown.borrow().contains(h)) {
                return Err(Denial::pending("roster heads not known yet"));
            }
            if self.allowed.get(space).is_some_and(|ks| ks.contains(key)) {
                Ok(Hash::of("fake-auth", key.as_bytes()))
            } else {
                Err(Denial::denied("key is not a device of this space"))
            }
        }

        fn removals(&self, _: &[Hash], key: &PublicKey, _: &SpaceId) -> Vec<Removal> {
            self.removed
                .borrow()
                .get(key)
                .cloned()
                .into_iter()
                .collect()
        }
    }

    fn remove(auth: &FakeAuthority, key: &DeviceKey, keep: Vec<ChangeId>) -> Hash {
        let by = Hash::of("removal", key.public_key().as_bytes());
        auth.removed.borrow_mut().insert(
            key.public_key(),
            Removal {
                by,
                revocation: false,
                keep,
            },
        );
        by
    }

    #[test]
    fn a_removed_key_keeps_what_the_removal_names_and_nothing_it_signs_later() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        let c1 = edited(&mut sd, &w, &w.a, |_| {});
        let c2 = edited(&mut sd, &w, &w.b, |l| l.name = "By B".into());
        // b is removed, keeping the listing as it stood; the stolen key then edits on top.
        remove(&w.auth, &w.b, sd.heads());
        let mut thief = SpaceDoc::rebuild(w.space.clone(), [c1.clone(), c2.clone()], &w.auth);
        assert_eq!(thief.accepted().len(), 2, "what b signed before stays");
        let c3 = edited(&mut thief, &w, &w.b, |l| l.name = "Stolen".into());
        // a builds on the stolen change, unaware.
        let c4 = edited(&mut thief, &w, &w.a, |l| l.noise = Some(Noise::Quiet));
        match sd.apply(c3.clone(), &w.auth) {
            ApplyOutcome::Rejected(why) => assert!(why.contains("removed that key"), "{why}"),
            other => panic!("the stolen change was not refused: {other:?}"),
        }
        assert!(
            matches!(sd.apply(c4.clone(), &w.auth), ApplyOutcome::Rejected(why) if why.contains("depends on rejected"))
        );
        assert_eq!(sd.listing().unwrap().name, "By B");
        // Any order, any node: the same verdicts.
        for order in [
            vec![c4.clone(), c3.clone(), c2.clone(), c1.clone()],
            vec![c1.clone(), c3.clone(), c2.clone(), c4.clone()],
        ] {
            let again = SpaceDoc::rebuild(w.space.clone(), order, &w.auth);
            assert_eq!(again.listing(), sd.listing());
            assert_eq!(again.accepted(), sd.accepted());
            assert_eq!(again.rejected().len(), 2);
        }
    }

    #[test]
    fn a_change_waits_for_the_kept_heads_it_may_belong_to() {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let c1 = edited(&mut origin, &w, &w.a, |_| {});
        let c2 = edited(&mut origin, &w, &w.b, |l| l.name = "By B".into());
        let c3 = edited(&mut origin, &w, &w.a, |l| l.noise = Some(Noise::Lively));
        // The removal keeps c3, which builds on b's c2.
        remove(&w.auth, &w.b, vec![c3.id().unwrap()]);
        let mut sd = SpaceDoc::rebuild(w.space.clone(), [c1.clone()], &w.auth);
        assert!(
            matches!(sd.apply(c2.clone(), &w.auth), ApplyOutcome::Pending(why) if why.contains("waiting for listing change"))
        );
        assert_eq!(sd.apply(c3.clone(), &w.auth), ApplyOutcome::Applied);
        assert_eq!(
            sd.accepted().len(),
            3,
            "c2 came in with the head that keeps it"
        );
        assert!(sd.pending().is_empty());
        assert_eq!(sd.listing(), origin.listing());
        let again = SpaceDoc::rebuild(w.space.clone(), [c3, c2, c1], &w.auth);
        assert_eq!(again.accepted(), sd.accepted());
    }

    /// Says yes to everyone: what a rogue node runs for its own edits.
    struct Permissive;
    impl Authority for Permissive {
        fn authorise(&self, _: &[Hash], key: &PublicKey, _: &SpaceId) -> Result<Hash, Denial> {
            Ok(Hash::of("anything-goes", key.as_bytes()))
        }
    }

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn base(space: &SpaceId) -> Listing {
        Listing::new_minimal(
            space.clone(),
            "Desk One",
            38.7223,
            -9.1393,
            "Lisbon",
            "PT",
            "Europe/Lisbon",
        )
    }

    struct World {
        a: DeviceKey,
        b: DeviceKey,
        rogue: DeviceKey,
        space: SpaceId,
        auth: FakeAuthority,
    }

    fn world() -> World {
        let a = key(1);
        let b = key(2);
        let rogue = key(9);
        let space = SpaceId::derive(&a.public_key());
        let auth = FakeAuthority::allowing(&space, &[&a, &b]);
        World {
            a,
            b,
            rogue,
            space,
            auth,
        }
    }

    /// A raw change on a copy of `sd`'s document, made by `signer` with whatever `f` does, then signed.
    fn crafted(
        sd: &SpaceDoc,
        signer: &DeviceKey,
        space: &SpaceId,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> SignedChange {
        let mut fork = sd.doc().fork();
        fork.set_actor(ActorId::from(signer.public_key().as_bytes()));
        let mut tx = fork.transaction();
        f(&mut tx);
        let (hash, _) = tx.commit();
        let change = fork.get_change_by_hash(&hash.unwrap()).unwrap();
        SignedChange::sign(
            space.clone(),
            change.raw_bytes().to_vec(),
            signer,
            vec![],
            5,
        )
        .unwrap()
    }

    fn edited(
        sd: &mut SpaceDoc,
        w: &World,
        signer: &DeviceKey,
        f: impl FnOnce(&mut Listing),
    ) -> SignedChange {
        let mut l = sd.listing().unwrap_or_else(|| base(&w.space));
        f(&mut l);
        sd.edit(&l, signer, &w.auth, vec![], 1_000)
            .unwrap()
            .unwrap()
    }

    fn reject_reason(sd: &SpaceDoc, sc: &SignedChange) -> String {
        let id = sc.id().unwrap();
        sd.rejected()
            .iter()
            .find(|r| r.hash == id)
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn an_edit_reads_back_and_an_unchanged_edit_makes_nothing() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        assert_eq!(sd.listing(), None);
        let l = base(&w.space);
        let sc = sd.edit(&l, &w.a, &w.auth, vec![], 1_000).unwrap().unwrap();
        assert_eq!(sd.listing().as_ref(), Some(&l));
        assert_eq!(sd.heads(), vec![sc.id().unwrap()]);
        assert_eq!(sd.edit(&l, &w.a, &w.auth, vec![], 2_000).unwrap(), None);
        let env = sc.verify().unwrap();
        assert_eq!(env.author, w.a.public_key());
        // Stored as nested maps, not one JSON string.
        let (v, _) = sd.doc().get(ROOT, "location").unwrap().unwrap();
        assert_eq!(v, Value::Object(ObjType::Map));
        let signers = sd.signers();
        assert_eq!(signers[&w.a.public_key()].len(), 1);
    }

    #[test]
    fn edit_refuses_invalid_foreign_and_unauthorised_listings() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        let mut bad = base(&w.space);
        bad.name = String::new();
        assert!(matches!(
            sd.edit(&bad, &w.a, &w.auth, vec![], 0),
            Err(DocError::Invalid(_))
        ));
        let other = SpaceId::derive(&w.b.public_key());
        assert!(matches!(
            sd.edit(&base(&other), &w.a, &w.auth, vec![], 0),
            Err(DocError::WrongSpace { .. })
        ));
        let err = sd
            .edit(&base(&w.space), &w.rogue, &w.auth, vec![], 0)
            .unwrap_err();
        assert!(
            matches!(err, DocError::Unauthorised { pending: false, .. }),
            "{err}"
        );
        assert!(sd.heads().is_empty(), "nothing was written");
    }

    #[test]
    fn json_len_is_the_length_of_the_compact_json() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        edited(&mut sd, &w, &w.a, |l| {
            l.name = "Caf\u{e9} \"Desk\" \u{1F600} \\ back".into();
        });
        let values = [
            hydrate(sd.doc(), None),
            serde_json::json!({"a": [1, -2.5, 1e300, null, true], "b": {"c": "\u{7f}\u{2028}\n\t\u{1}"}}),
            serde_json::json!("x"),
            serde_json::json!([]),
        ];
        for v in values {
            assert_eq!(json_len(&v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn rebuild_reproduces_the_listing_and_the_audit() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        let c1 = edited(&mut sd, &w, &w.a, |_| {});
        let c2 = edited(&mut sd, &w, &w.b, |l| l.name = "Desk Two".into());
        let again = SpaceDoc::rebuild(w.space.clone(), [c2.clone(), c1.clone(), c2], &w.auth);
        assert_eq!(again.listing(), sd.listing());
        assert_eq!(again.heads(), sd.heads());
        assert_eq!(again.accepted(), sd.accepted());
        assert!(again.rejected().is_empty() && again.pending().is_empty());
        assert_eq!(again.signers().len(), 2);
    }

    #[test]
    fn concurrent_edits_of_two_fields_both_survive_merge() {
        let w = world();
        let mut one = SpaceDoc::new(w.space.clone());
        let c0 = edited(&mut one, &w, &w.a, |_| {});
        let mut two = SpaceDoc::rebuild(w.space.clone(), [c0], &w.auth);
        let ca = edited(&mut one, &w, &w.a, |l| l.name = "Renamed".into());
        let cb = edited(&mut two, &w, &w.b, |l| {
            l.location.address.city = "Porto".into();
            l.noise = Some(Noise::Quiet);
        });
        assert_eq!(one.apply(cb, &w.auth), ApplyOutcome::Applied);
        assert_eq!(two.apply(ca.clone(), &w.auth), ApplyOutcome::Applied);
        assert_eq!(two.apply(ca, &w.auth), ApplyOutcome::Duplicate);
        let l = one.listing().unwrap();
        assert_eq!(l.name, "Renamed");
        assert_eq!(l.location.address.city, "Porto");
        assert_eq!(l.noise, Some(Noise::Quiet));
        assert_eq!(two.listing(), Some(l));
        assert_eq!(one.heads(), two.heads());
        assert_eq!(one.heads().len(), 2);
    }

    #[test]
    fn forged_tampered_foreign_actor_and_wrong_space_changes_are_rejected() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        edited(&mut sd, &w, &w.a, |_| {});

        let good = crafted(&sd, &w.a, &w.space, |tx| {
            tx.put(ROOT, "name", "Good").unwrap()
        });

        let mut forged = good.clone();
        let mut sig = *forged.signature.as_bytes();
        sig[0] ^= 1;
        forged.signature = Signature::from_bytes(&sig).unwrap();
        assert!(
            matches!(sd.apply(forged.clone(), &w.auth), ApplyOutcome::Rejected(r) if r.contains("signature"))
        );

        let mut tampered = good.clone();
        let n = tampered.change.len();
        tampered.change[n - 2] ^= 0x10;
        assert!(matches!(
            sd.apply(tampered, &w.auth),
            ApplyOutcome::Rejected(_)
        ));

        // A change made under B's actor id but wrapped and signed by A.
        let foreign = crafted(&sd, &w.b, &w.space, |tx| {
            tx.put(ROOT, "name", "Foreign").unwrap()
        });
        let c = Change::try_from(&foreign.change[..]).unwrap();
        let env = Envelope {
            space: w.space.clone(),
            change_hash: c.hash().0,
            deps: c.deps().iter().map(|d| d.0).collect(),
            author: w.a.public_key(),
            roster_heads: vec![],
            created_at_ms: 0,
        };
        let envelope_bytes = env.to_bytes().unwrap();
        let relabelled = SignedChange {
            signature: w.a.sign(Domain::ListingChange, &envelope_bytes),
            envelope_bytes,
            change: foreign.change.clone(),
        };
        assert!(
            matches!(sd.apply(relabelled, &w.auth), ApplyOutcome::Rejected(r) if r.contains("actor"))
        );

        let elsewhere = SpaceId::derive(&w.b.public_key());
        let misplaced = crafted(&sd, &w.a, &elsewhere, |tx| {
            tx.put(ROOT, "name", "Moved").unwrap()
        });
        assert!(
            matches!(sd.apply(misplaced, &w.auth), ApplyOutcome::Rejected(r) if r.contains("signed for space"))
        );

        assert_eq!(sd.listing().unwrap().name, "Desk One");
        assert_eq!(sd.rejected().len(), 4);
        assert_eq!(sd.apply(good, &w.auth), ApplyOutcome::Applied);
        assert_eq!(sd.listing().unwrap().name, "Good");
        assert!(
            !reject_reason(&sd, &forged).is_empty(),
            "the forgery stays in the audit"
        );
    }

    #[test]
    fn an_unauthorised_author_never_reaches_the_listing() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        edited(&mut sd, &w, &w.a, |_| {});
        let evil = crafted(&sd, &w.rogue, &w.space, |tx| {
            tx.put(ROOT, "name", "Evil").unwrap()
        });
        let out = sd.apply(evil.clone(), &w.auth);
        assert!(
            matches!(&out, ApplyOutcome::Rejected(r) if r.contains("not a device of this space")),
            "{out:?}"
        );
        assert_eq!(sd.listing().unwrap().name, "Desk One");
        let r = &sd.rejected()[0];
        assert_eq!(r.author, Some(w.rogue.public_key()));
        assert_eq!(r.hash, evil.id().unwrap());
    }

    #[test]
    fn a_change_that_makes_the_listing_invalid_is_excluded_with_its_dependents() {
        let w = world();
        let mut sd = SpaceDoc::new(w.space.clone());
        let c0 = edited(&mut sd, &w, &w.a, |_| {});
        let bad = crafted(&sd, &w.a, &w.space, |tx| tx.put(ROOT, "name", "").unwrap());
        // Build a fix on top of the bad change, as a misbehaving node would.
        let mut forked = SpaceDoc::new(w.space.clone());
        forked.doc = sd.doc().fork();
        forked
            .doc
            .apply_changes([Change::try_from(&bad.change[..]).unwrap()])
            .unwrap();
        let on_top = crafted(&forked, &w.a, &w.space, |tx| {
            tx.put(ROOT, "name", "Fixed").unwrap()
        });
        let renamed_id = crafted(&sd, &w.b, &w.space, |tx| {
            tx.put(ROOT, "id", "sp-aaaaaaaaaaaaaaaa").unwrap()
        });

        let out = sd.apply(bad.clone(), &w.auth);
        assert!(
            matches!(&out, ApplyOutcome::Rejected(r) if r.contains("name")),
            "{out:?}"
        );
        let out = sd.apply(on_top.clone(), &w.auth);
        assert!(
            matches!(&out, ApplyOutcome::Rejected(r) if r.contains("depends on rejected change")),
            "{out:?}"
        );
        let out = sd.apply(renamed_id.clone(), &w.auth);
        assert!(
            matches!(&out, ApplyOutcome::Rejected(r) if r.contains("not this space")),
            "{out:?}"
        );
        assert_eq!(sd.listing().unwrap().name, "Desk One");
        assert_eq!(sd.heads(), vec![c0.id().unwrap()]);

        // The same verdicts whatever the order, including the dependent arriving first.
        for order in [
            vec![on_top.clone(), renamed_id.clone(), bad.clone(), c0.clone()],
            vec![c0.clone(), on_top.clone(), bad.clone(), renamed_id.clone()],
        ] {
            let rebuilt = SpaceDoc::rebuild(w.space.clone(), order.clone(), &w.auth);
            assert_eq!(rebuilt.rejected(), sd.rejected());
            assert_eq!(rebuilt.heads(), sd.heads());
            let mut inc = SpaceDoc::new(w.space.clone());
            for c in order {
                inc.apply(c, &w.auth);
            }
            assert_eq!(inc.rejected(), sd.rejected());
            assert!(inc.pending().is_empty());
        }
    }

    #[test]
    fn branches_valid_alone_but_invalid_merged_show_the_greatest_head_until_an_edit_merges_them() {
        let w = world();
        let mut one = SpaceDoc::new(w.space.clone());
        let translate = |l: &mut Listing, langs: &[&str]| {
            for lang in langs {
                l.translations.insert(
                    (*lang).to_string(),
                    crate::listing::Translation {
                        name: None,
                        description: Some("x".repeat(8000)),
                    },
                );
            }
        };
        // The translations map must exist before the branches: two concurrent creations of one key
        // conflict as wholes (Automerge keeps one), they do not merge.
        let c0 = edited(&mut one, &w, &w.a, |l| translate(l, &["en"]));
        let mut two = SpaceDoc::rebuild(w.space.clone(), [c0], &w.auth);
        // Each side adds about 40 KiB of translations; together they pass the 64 KiB listing limit.
        let ca = edited(&mut one, &w, &w.a, |l| {
            translate(l, &["fr", "de", "es", "it", "nl"])
        });
        let cb = edited(&mut two, &w, &w.b, |l| {
            translate(l, &["pt", "pl", "sv", "da", "fi"])
        });
        assert_eq!(one.apply(cb.clone(), &w.auth), ApplyOutcome::Applied);
        assert_eq!(two.apply(ca.clone(), &w.auth), ApplyOutcome::Applied);
        assert!(one.value().to_string().len() > limits::MAX_LISTING_BYTES);
        let shown = one.listing().unwrap();
        assert_eq!(shown.translations.len(), 6);
        let greatest = ca.id().unwrap().max(cb.id().unwrap());
        let expect_fr = greatest == ca.id().unwrap();
        assert_eq!(shown.translations.contains_key("fr"), expect_fr);
        assert_eq!(two.listing(), Some(shown.clone()));

        // An edit of the shown listing merges the branches into a valid whole again.
        let mut fixed = shown;
        fixed.name = "Merged".into();
        let c = one
            .edit(&fixed, &w.a, &w.auth, vec![], 9_000)
            .unwrap()
            .unwrap();
        assert_eq!(two.apply(c, &w.auth), ApplyOutcome::Applied);
        assert_eq!(two.listing(), Some(fixed.clone()));
        assert_eq!(one.listing(), Some(fixed));
        assert_eq!(one.heads().len(), 1);
    }

    #[test]
    fn changes_wait_for_missing_dependencies_and_unknown_roster_heads() {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let c0 = edited(&mut origin, &w, &w.a, |_| {});
        let c1 = edited(&mut origin, &w, &w.a, |l| l.name = "Second".into());
        let mut sd = SpaceDoc::new(w.space.clone());
        assert!(
            matches!(sd.apply(c1.clone(), &w.auth), ApplyOutcome::Pending(r) if r.contains("waiting for change"))
        );
        assert_eq!(sd.pending().len(), 1);
        assert_eq!(sd.apply(c0, &w.auth), ApplyOutcome::Applied);
        assert!(sd.pending().is_empty());
        assert_eq!(sd.listing().unwrap().name, "Second");

        // Signed under roster heads this node has not seen yet.
        let later = Hash::of("roster-op", b"later");
        let mut l = origin.listing().unwrap();
        l.name = "Third".into();
        let c2 = origin
            .edit(&l, &w.a, &w.auth, vec![later], 3_000)
            .unwrap()
            .unwrap();
        w.auth.unknown.borrow_mut().insert(later);
        assert!(matches!(sd.apply(c2, &w.auth), ApplyOutcome::Pending(r) if r.contains("pending")));
        assert_eq!(sd.retry_pending(&w.auth), 0);
        w.auth.unknown.borrow_mut().clear();
        assert_eq!(sd.retry_pending(&w.auth), 1);
        assert_eq!(sd.listing().unwrap().name, "Third");
        assert_eq!(sd.heads(), origin.heads());
    }

    #[test]
    fn a_saved_state_loads_back_and_goes_on_exactly_like_the_original() {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let c0 = edited(&mut origin, &w, &w.a, |_| {});
        let c1 = edited(&mut origin, &w, &w.b, |l| l.name = "Second".into());
        let c2 = edited(&mut origin, &w, &w.a, |l| l.name = "Third".into());
        let rogue = crafted(&origin, &w.rogue, &w.space, |tx| {
            tx.put(ROOT, "name", "Hijacked").unwrap();
        });
        // Accepted, rejected and pending verdicts all survive the round trip.
        let mut sd = SpaceDoc::new(w.space.clone());
        assert_eq!(sd.apply(c0, &w.auth), ApplyOutcome::Applied);
        assert!(matches!(
            sd.apply(rogue, &w.auth),
            ApplyOutcome::Rejected(_)
        ));
        assert!(matches!(
            sd.apply(c2.clone(), &w.auth),
            ApplyOutcome::Pending(_)
        ));
        let bytes = sd.save_state();
        let mut loaded = SpaceDoc::load_state(w.space.clone(), &bytes).unwrap();
        assert_eq!(loaded.listing(), sd.listing());
        assert_eq!(loaded.accepted(), sd.accepted());
        assert_eq!(loaded.rejected(), sd.rejected());
        assert_eq!(loaded.pending(), sd.pending());
        // The next change settles the pending one in both, with the same result.
        let verified = c1.clone().into_verified().unwrap();
        assert_eq!(
            loaded.apply_verified(verified, &w.auth),
            ApplyOutcome::Applied
        );
        assert_eq!(sd.apply(c1, &w.auth), ApplyOutcome::Applied);
        assert_eq!(loaded.listing().unwrap().name, "Third");
        assert_eq!(loaded.heads(), sd.heads());
        assert_eq!(loaded.accepted(), sd.accepted());
        assert!(loaded.pending().is_empty());
        // Bytes of another version or damaged bytes are refused, never half loaded.
        let mut other = bytes.clone();
        other[0] = 99;
        assert!(SpaceDoc::load_state(w.space.clone(), &other).is_err());
        assert!(SpaceDoc::load_state(w.space.clone(), &bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn adopting_a_checkpoints_document_gives_what_merging_it_into_an_empty_one_gives() {
        use crate::checkpoint::SignedCheckpoint;
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let mut made = Vec::new();
        for n in 0..6 {
            let by = if n % 2 == 0 { &w.a } else { &w.b };
            made.push(edited(&mut origin, &w, by, |l| {
                l.name = format!("Desk {n}")
            }));
        }
        let signed =
            SignedCheckpoint::sign(w.space.clone(), origin.doc(), &w.a, vec![], 9).unwrap();
        let header = signed.verify().unwrap();
        let id = signed.id();
        let auth_op = Hash::of("fake-auth", w.a.public_key().as_bytes());
        // Two changes after the checkpoint arrive first and wait for it, as on a joiner.
        let after: Vec<SignedChange> = (6..8)
            .map(|n| edited(&mut origin, &w, &w.b, |l| l.name = format!("Desk {n}")))
            .collect();
        let joiner = || {
            let mut sd = SpaceDoc::new(w.space.clone());
            for c in &after {
                assert!(matches!(
                    sd.apply(c.clone(), &w.auth),
                    ApplyOutcome::Pending(_)
                ));
            }
            sd
        };
        let allowed = |k: &PublicKey| *k == w.a.public_key() || *k == w.b.public_key();

        let mut merged = joiner();
        let loaded = signed.load(&header).unwrap();
        loaded.authorise(allowed).unwrap();
        let n_merged = merged
            .merge_checkpoint(id, loaded.changes(), auth_op, &w.auth)
            .unwrap();

        let mut adopted = joiner();
        let loaded = signed.load(&header).unwrap();
        loaded.authorise(allowed).unwrap();
        let (doc, changes, listing) = loaded.into_parts();
        let n_adopted = adopted
            .adopt_checkpoint(id, doc, &changes, listing, auth_op, &w.auth)
            .unwrap();

        assert_eq!((n_merged, n_adopted), (6, 6));
        for sd in [&merged, &adopted] {
            assert_eq!(sd.heads(), origin.heads());
            assert_eq!(sd.listing().unwrap().name, "Desk 7");
            assert!(sd.pending().is_empty() && sd.rejected().is_empty());
        }
        assert_eq!(adopted.accepted(), merged.accepted());
        assert_eq!(adopted.value(), merged.value());
        assert_eq!(adopted.signers(), merged.signers());
        let (a, m) = (adopted.save_state(), merged.save_state());
        assert_eq!(a, m, "the same saved state, byte for byte");
        let reloaded = SpaceDoc::load_state(w.space.clone(), &a).unwrap();
        assert_eq!(reloaded.accepted(), merged.accepted());
        assert_eq!(reloaded.listing(), merged.listing());
        assert_eq!(
            SpaceDoc::load_state(w.space.clone(), &m).unwrap().value(),
            reloaded.value()
        );

        // A document that already holds changes merges instead, with the same result as a merge.
        let mut started = SpaceDoc::new(w.space.clone());
        assert_eq!(
            started.apply(made[0].clone(), &w.auth),
            ApplyOutcome::Applied
        );
        let mut started_too = SpaceDoc::new(w.space.clone());
        started_too.apply(made[0].clone(), &w.auth);
        let (doc, changes, listing) = signed.load(&header).unwrap().into_parts();
        assert_eq!(
            started
                .adopt_checkpoint(id, doc, &changes, listing, auth_op, &w.auth)
                .unwrap(),
            5
        );
        started_too
            .merge_checkpoint(id, &changes, auth_op, &w.auth)
            .unwrap();
        assert_eq!(started.accepted(), started_too.accepted());
        assert_eq!(started.heads(), started_too.heads());
        // The same checkpoint again adds nothing.
        let (doc, changes, listing) = signed.load(&header).unwrap().into_parts();
        assert_eq!(
            started
                .adopt_checkpoint(id, doc, &changes, listing, auth_op, &w.auth)
                .unwrap(),
            0
        );
    }

    #[test]
    fn a_rebuild_keeps_every_stored_change_that_waits_for_a_checkpoint_however_many() {
        use crate::checkpoint::SignedCheckpoint;
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let first = edited(&mut origin, &w, &w.a, |_| {});
        let second = edited(&mut origin, &w, &w.a, |l| l.name = "Desk 1".into());
        let signed =
            SignedCheckpoint::sign(w.space.clone(), origin.doc(), &w.a, vec![], 9).unwrap();
        let header = signed.verify().unwrap();
        let auth_op = Hash::of("fake-auth", w.a.public_key().as_bytes());
        // More changes after the checkpoint than may wait for a node's document.
        let last = MAX_PENDING + 40;
        let after: Vec<SignedChange> = (2..last)
            .map(|n| edited(&mut origin, &w, &w.a, |l| l.name = format!("Desk {n}")))
            .collect();
        // A node that holds the first change only inside the checkpoint (it joined from it, or took it
        // over the mesh's rate limit) stores every other change: they all wait for the first one until
        // the checkpoint is merged, as `Node::space_doc` does after the rebuild.
        let stored = std::iter::once(second).chain(after.iter().cloned());
        let mut sd = SpaceDoc::rebuild(w.space.clone(), stored, &w.auth);
        assert_eq!(sd.pending().len(), last - 1, "every stored change waits");
        assert!(sd.rejected().is_empty());

        // The cap still turns away a change offered while more than MAX_PENDING wait, and only it.
        let offered = edited(&mut origin, &w, &w.a, |l| l.name = format!("Desk {last}"));
        assert!(matches!(
            sd.apply(offered.clone(), &w.auth),
            ApplyOutcome::Rejected(r) if r.starts_with("not kept")
        ));
        assert_eq!(sd.pending().len(), last - 1);
        // A change offered again while it waits is not turned away.
        assert!(matches!(
            sd.apply(after[7].clone(), &w.auth),
            ApplyOutcome::Pending(_)
        ));
        assert_eq!(sd.pending().len(), last - 1);

        let loaded = signed.load(&header).unwrap();
        assert_eq!(
            sd.merge_checkpoint(signed.id(), loaded.changes(), auth_op, &w.auth)
                .unwrap(),
            2
        );
        assert!(sd.pending().is_empty() && sd.rejected().is_empty());
        assert_eq!(sd.accepted().len(), last);
        assert_eq!(sd.apply(offered, &w.auth), ApplyOutcome::Applied);
        assert_eq!(sd.heads(), origin.heads());
        assert_eq!(sd.listing().unwrap().name, format!("Desk {last}"));
        assert_eq!(
            sd.accepted()[&first.id().unwrap()].vouched_by,
            Some(signed.id())
        );
    }

    #[test]
    fn a_pending_change_is_retried_without_checking_its_signature_again_but_with_every_other_check()
    {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let c0 = edited(&mut origin, &w, &w.a, |_| {});
        let c1 = edited(&mut origin, &w, &w.a, |l| l.name = "Second".into());
        let mut sd = SpaceDoc::new(w.space.clone());
        assert!(matches!(
            sd.apply(c1.clone(), &w.auth),
            ApplyOutcome::Pending(_)
        ));
        assert_eq!(sd.apply(c0, &w.auth), ApplyOutcome::Applied);
        assert_eq!(
            sd.outcome_of(&c1.id().unwrap()),
            Some(ApplyOutcome::Applied)
        );
        // What the retry still checks: the envelope against the change it carries.
        assert_eq!(c1.decode_verified().unwrap().0, c1.verify().unwrap());
        let mut tampered = c1.clone();
        tampered.change[20] ^= 1;
        assert!(tampered.decode_verified().is_err());
    }

    #[test]
    fn a_first_change_worked_out_in_the_check_phase_places_exactly_like_one_applied_here() {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let first = edited(&mut origin, &w, &w.a, |_| {});
        let second = edited(&mut origin, &w, &w.a, |l| l.name = "Second".into());
        // A first change whose listing is not valid (no name at all).
        let invalid = crafted(&SpaceDoc::new(w.space.clone()), &w.a, &w.space, |tx| {
            tx.put(ROOT, "id", w.space.to_string()).unwrap();
        });
        for c in [&first, &invalid] {
            let mut prepared = c.clone().into_verified().unwrap();
            prepared.prepare();
            let mut plain = SpaceDoc::new(w.space.clone());
            let mut fast = SpaceDoc::new(w.space.clone());
            let a = plain.apply_verified(c.clone().into_verified().unwrap(), &w.auth);
            let b = fast.apply_verified(prepared, &w.auth);
            assert_eq!(a, b);
            assert_eq!(plain.save_state(), fast.save_state());
            assert_eq!(plain.listing(), fast.listing());
            assert_eq!(plain.rejected(), fast.rejected());
        }
        // Into a document that holds changes already, the worked-out state is not used.
        let mut sd = SpaceDoc::new(w.space.clone());
        assert_eq!(sd.apply(first.clone(), &w.auth), ApplyOutcome::Applied);
        let mut again = invalid.clone().into_verified().unwrap();
        again.prepare();
        assert!(matches!(
            sd.apply_verified(again, &w.auth),
            ApplyOutcome::Rejected(_)
        ));
        assert_eq!(sd.listing().unwrap().name, "Desk One");
        let mut later = second.into_verified().unwrap();
        later.prepare();
        assert!(later.take_prepared().alone.is_none(), "it has dependencies");
    }

    #[test]
    fn listings_worked_out_ahead_give_the_document_plain_applying_gives() {
        let w = world();
        let mut origin = SpaceDoc::new(w.space.clone());
        let c1 = edited(&mut origin, &w, &w.a, |_| {});
        let c2 = edited(&mut origin, &w, &w.a, |l| l.name = "Second".into());
        // What a checkpoint after c2 hands over.
        let base_doc = origin.doc().clone();
        let c3 = edited(&mut origin, &w, &w.a, |l| l.name = "Third".into());
        // A change on c3 that leaves no valid listing, and a valid one on c3 beside it.
        let invalid = crafted(&origin, &w.a, &w.space, |tx| {
            tx.delete(ROOT, "name").unwrap();
        });
        let c4 = edited(&mut origin, &w, &w.b, |l| l.name = "Fourth".into());
        let run = [c3, invalid.clone(), c4];
        let mut prepared: Vec<VerifiedChange> = run
            .iter()
            .map(|c| c.clone().into_verified().unwrap())
            .collect();
        let mut refs: Vec<&mut VerifiedChange> = prepared.iter_mut().collect();
        assert_eq!(prepare_run(&w.space, Some(&base_doc), &mut refs), 3);
        assert!(prepared.iter().all(VerifiedChange::has_verdict));

        let mut plain = SpaceDoc::rebuild(w.space.clone(), [c1.clone(), c2.clone()], &w.auth);
        let mut fast = SpaceDoc::rebuild(w.space.clone(), [c1.clone(), c2.clone()], &w.auth);
        for (c, v) in run.iter().zip(prepared) {
            let a = plain.apply(c.clone(), &w.auth);
            let b = fast.apply_verified(v, &w.auth);
            assert_eq!(a, b);
        }
        assert!(reject_reason(&fast, &invalid).starts_with("invalid listing"));
        assert_eq!(plain.save_state(), fast.save_state());
        assert_eq!(plain.listing(), fast.listing());
        assert_eq!(fast.listing().unwrap().name, "Fourth");
        assert_eq!(plain.rejected(), fast.rejected());

        // The verdict is what placing takes (it is not worked out again): one saying otherwise wins.
        let mut odd = c2.clone().into_verified().unwrap();
        odd.prepared_mut().as_of = Some(Box::new(AsOf {
            hash: c2.id().unwrap(),
            verdict: Err("worked out ahead".into()),
        }));
        let mut sd = SpaceDoc::rebuild(w.space.clone(), [c1.clone()], &w.auth);
        assert_eq!(
            sd.apply_verified(odd, &w.auth),
            ApplyOutcome::Rejected("worked out ahead".into())
        );
        // A copy of another change takes nothing of it.
        let mut other = c1.into_verified().unwrap();
        let mut from_c2 = c2.into_verified().unwrap();
        let mut refs = vec![&mut from_c2];
        prepare_run(&w.space, Some(&base_doc), &mut refs);
        assert!(!from_c2.has_verdict(), "the base holds it already");
        other.put_prepared(Prepared {
            alone: None,
            as_of: Some(Box::new(AsOf {
                hash: [7; 32],
                verdict: Err("not mine".into()),
            })),
        });
        assert!(!other.has_verdict());
    }

    #[test]
    fn reconcile_touches_only_what_differs_and_numbers_round_trip_exactly() {
        let mut doc = Automerge::new();
        let first = serde_json::json!({
            "i": -3, "u": u64::MAX, "f": 2.0, "g": 0.1, "s": "x", "b": true, "n": null,
            "m": {"keep": 1, "drop": 2, "deep": {"x": [1, {"y": 2}]}},
            "l": [1, 2.5, "three"]
        });
        let Json::Object(target) = first.clone() else {
            unreachable!()
        };
        let mut tx = doc.transaction();
        reconcile(&mut tx, &target).unwrap();
        tx.commit();
        assert_eq!(hydrate(&doc, None), first);
        assert_eq!(doc.get(ROOT, "f").unwrap().unwrap().0, Value::f64(2.0));
        assert_eq!(
            doc.get(ROOT, "u").unwrap().unwrap().0,
            Value::uint(u64::MAX)
        );

        let second = serde_json::json!({
            "i": -3, "u": u64::MAX, "f": 2, "g": 0.1, "s": "x", "b": true, "n": null,
            "m": {"keep": 1, "deep": {"x": [1, {"y": 3}]}},
            "l": [1, 2.5, "three"]
        });
        let Json::Object(target) = second.clone() else {
            unreachable!()
        };
        let mut tx = doc.transaction();
        reconcile(&mut tx, &target).unwrap();
        // f: float -> int (1 put), m.drop deleted (1), m.deep.x replaced (1 list + 1 item + 1 map + 1 key).
        assert_eq!(tx.pending_ops(), 6);
        tx.commit();
        assert_eq!(hydrate(&doc, None), second);

        let mut tx = doc.transaction();
        reconcile(&mut tx, &target).unwrap();
        assert_eq!(tx.pending_ops(), 0, "nothing differs");
        tx.rollback();
    }

    fn shuffle<T>(items: &mut [T], mut seed: u64) {
        for i in (1..items.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            items.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }

    /// One step of the simulation: device `dev` edits field `field` to `val`, or (field 4) syncs
    /// everything published so far.
    fn step(
        w: &World,
        replicas: &mut [SpaceDoc; 3],
        log: &mut Vec<SignedChange>,
        dev: usize,
        field: u8,
        val: u16,
    ) {
        let keys = [&w.a, &w.b, &w.rogue];
        if field == 4 {
            for sc in log.iter() {
                if dev == 2 {
                    replicas[dev].apply(sc.clone(), &Permissive);
                } else {
                    replicas[dev].apply(sc.clone(), &w.auth);
                }
            }
            return;
        }
        let Some(mut l) = replicas[dev].listing() else {
            return;
        };
        let tag = if dev == 2 { "Rogue" } else { "Space" };
        match field {
            0 => l.name = format!("{tag} {val}"),
            1 => l.location.address.city = format!("{tag} City {val}"),
            2 => l.description = format!("{tag} description {val}"),
            _ => {
                l.seat_pools = vec![SeatPool {
                    id: "hot".into(),
                    kind: PoolKind::HotDesk,
                    // A pool has at least one seat.
                    capacity: u32::from(val) + 1,
                    accessible_capacity: None,
                    access: PoolAccess::WalkIn,
                }]
            }
        }
        let made = if dev == 2 {
            replicas[dev].edit(&l, keys[dev], &Permissive, vec![], i64::from(val))
        } else {
            replicas[dev].edit(&l, keys[dev], &w.auth, vec![], i64::from(val))
        };
        if let Some(sc) = made.unwrap() {
            log.push(sc);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn replicas_converge_whatever_the_order(
            ops in proptest::collection::vec((0usize..3, 0u8..5, 0u16..500), 1..14),
            seed_a in 1u64..u64::MAX,
            seed_b in 1u64..u64::MAX,
            dups in 0usize..4,
        ) {
            let w = world();
            let mut replicas = [
                SpaceDoc::new(w.space.clone()),
                SpaceDoc::new(w.space.clone()),
                SpaceDoc::new(w.space.clone()),
            ];
            let first = replicas[0].edit(&base(&w.space), &w.a, &w.auth, vec![], 0).unwrap().unwrap();
            replicas[1].apply(first.clone(), &w.auth);
            replicas[2].apply(first.clone(), &Permissive);
            let mut log = vec![first];
            for (dev, field, val) in ops {
                step(&w, &mut replicas, &mut log, dev, field, val);
            }

            let reference = SpaceDoc::rebuild(w.space.clone(), log.clone(), &w.auth);
            let mut shuffled = log.clone();
            shuffled.extend(log.iter().take(dups).cloned());
            shuffle(&mut shuffled, seed_a);
            let rebuilt = SpaceDoc::rebuild(w.space.clone(), shuffled.clone(), &w.auth);
            shuffle(&mut shuffled, seed_b);
            let mut incremental = SpaceDoc::new(w.space.clone());
            for sc in shuffled {
                incremental.apply(sc, &w.auth);
            }
            for other in [&rebuilt, &incremental] {
                prop_assert_eq!(other.heads(), reference.heads());
                prop_assert_eq!(other.listing(), reference.listing());
                prop_assert_eq!(other.accepted(), reference.accepted());
                prop_assert_eq!(other.rejected(), reference.rejected());
                prop_assert!(other.pending().is_empty());
            }

            let listing = reference.listing().unwrap();
            prop_assert!(!listing.name.starts_with("Rogue"));
            prop_assert!(!listing.location.address.city.starts_with("Rogue"));
            prop_assert!(!listing.description.starts_with("Rogue"));
            let rogue = w.rogue.public_key();
            for sc in &log {
                let env = sc.verify().unwrap();
                let id = env.change_hash;
                if env.author == rogue {
                    prop_assert!(!reference.accepted().contains_key(&id));
                    prop_assert!(reference.rejected().iter().any(|r| r.hash == id && r.author == Some(rogue)));
                } else {
                    prop_assert!(reference.accepted().contains_key(&id));
                }
            }
            // Honest replicas that have seen everything agree with the reference too.
            for dev in 0..2 {
                step(&w, &mut replicas, &mut log, dev, 4, 0);
                prop_assert_eq!(replicas[dev].listing(), reference.listing());
                prop_assert_eq!(replicas[dev].heads(), reference.heads());
            }
        }
    }
}
