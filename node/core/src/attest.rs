//! The ingest of what coordinators sign beside the roster: verifications of listing facts, and proposed
//! coordinator changes still collecting co-signatures. Both come through [`Node::ingest`] like every
//! other item (gossip, sync, bundles, this node's own), end in [`Node::refuse`] when refused, and are
//! kept in trees of their own.
//!
//! - A verification is kept when its signature verifies, its author is a coordinator at the roster heads
//!   it names, and its space is in the roster. Like a listing change, whether it *counts* is decided
//!   again whenever it is shown: only while its author is still a coordinator (strong removal: a
//!   coordinator removed since no longer vouches for anything) and its space is not revoked. A space
//!   keeps at most [`MAX_VERIFICATIONS_PER_SPACE`].
//! - A proposal is a quorum change (adding or removing a coordinator, changing the threshold) signed by
//!   fewer coordinators than the threshold. Its signatures are merged with those already kept for the
//!   same operation; once they reach the threshold, the operation goes into the roster (on every node
//!   that has them all, whoever completed it) and the proposal is dropped. At most [`MAX_PROPOSALS`]
//!   wait at once.

use deskmesh_crdt_model::verify::{self, Verification};
use deskmesh_keys::roster::{Denied, RosterError, SignedOp};
use deskmesh_keys::Hash;

use crate::ingest::{Accepted, At, ItemKind, Judged, Verdict, PROPOSAL_ITEM};
use crate::node::Node;

/// Verifications one space may have at once; coordinators verify rarely, so this is generous.
pub const MAX_VERIFICATIONS_PER_SPACE: usize = 256;
/// Proposals waiting for co-signatures at once.
pub const MAX_PROPOSALS: usize = 64;

impl Node {
    /// A coordinator's verification of listing facts (see the module doc); `v` is what
    /// [`crate::ingest::check`] decoded and whose signature it verified.
    pub(crate) fn judge_verification(&mut self, v: &Verification, bytes: &[u8]) -> Judged {
        let kind = ItemKind::Verification;
        let id = Hash::of(verify::ITEM_LABEL, bytes);
        let refuse = |node: &Node, v: Option<&Verification>, why: String| {
            Judged::Verdict(Verdict::Refused(node.refuse(
                kind,
                Some(id),
                v.map(|v| v.author),
                v.map(|v| v.space.clone()),
                why,
            )))
        };
        let Some(roster) = self.roster() else {
            return refuse(self, Some(v), "this node is not in an alliance yet".into());
        };
        match roster.coordinator_at(&v.roster_heads, &v.author) {
            // Removed since: kept as history, but it no longer counts wherever it is shown.
            Ok(()) | Err(Denied::CoordinatorRemoved) => {}
            Err(Denied::UnknownHeads(_)) => {
                return Judged::Wait {
                    author: v.author,
                    space: Some(v.space.clone()),
                    why: "it names roster operations this node does not know".into(),
                }
            }
            Err(Denied::NotACoordinator) => {
                let why = format!(
                    "only a coordinator may verify a listing's facts, and {} is not one in the roster it names",
                    v.author
                );
                return refuse(self, Some(v), why);
            }
            Err(other) => return refuse(self, Some(v), other.to_string()),
        }
        if !roster.state().spaces.contains_key(&v.space) {
            let why = format!("space {} is not in the alliance", v.space);
            return refuse(self, Some(v), why);
        }
        match self.store.space_verifications(&v.space) {
            Ok(kept) if kept.iter().any(|(h, _)| *h == id) => {
                return Judged::Verdict(Verdict::Known)
            }
            Ok(kept) if kept.len() >= MAX_VERIFICATIONS_PER_SPACE => {
                let why = format!(
                    "space {} already has the limit of {MAX_VERIFICATIONS_PER_SPACE} verifications",
                    v.space
                );
                return refuse(self, Some(v), why);
            }
            Ok(_) => {}
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        }
        match self.store.put_verification(&v.space, &id, bytes) {
            Ok(true) => Judged::Verdict(Verdict::Added(Accepted {
                id,
                kind,
                space: Some(v.space.clone()),
                pool: None,
                says_until_ms: None,
                leaves: Vec::new(),
                hidden: false,
            })),
            Ok(false) => Judged::Verdict(Verdict::Known),
            Err(e) => Judged::Verdict(Verdict::Failed(e.to_string())),
        }
    }

    /// A proposed coordinator change with some of its co-signatures (see the module doc).
    pub(crate) fn judge_proposal(&mut self, incoming: &SignedOp, at: At) -> Judged {
        let kind = ItemKind::Proposal;
        let item = Some(Hash::of(PROPOSAL_ITEM, &incoming.to_bytes()));
        let author = incoming.op().ok().map(|o| o.author);
        let hash = incoming.hash();
        let refuse = |node: &Node, why: String| {
            Judged::Verdict(Verdict::Refused(node.refuse(kind, item, author, None, why)))
        };
        if self.roster().is_none() {
            return refuse(self, "this node is not in an alliance yet".into());
        }
        let kept = match self.store.proposal(&hash) {
            Ok(kept) => kept.and_then(|b| SignedOp::from_bytes(&b).ok()),
            Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
        };
        let kept_id = kept
            .as_ref()
            .map(|k| Hash::of(PROPOSAL_ITEM, &k.to_bytes()));
        let candidate = match kept {
            Some(mut k) => match k.merge(incoming) {
                Ok(0) => return Judged::Verdict(Verdict::Known),
                Ok(_) => k,
                Err(e) => return refuse(self, e.to_string()),
            },
            None => incoming.clone(),
        };
        let Some(roster) = self.roster() else {
            return refuse(self, "this node is not in an alliance yet".into());
        };
        let state = match roster.check_proposal(&candidate) {
            Ok(state) => state,
            Err(RosterError::MissingParents(_)) => {
                return match author {
                    Some(author) => Judged::Wait {
                        author,
                        space: None,
                        why: "it builds on roster operations this node does not know".into(),
                    },
                    None => refuse(self, "it cannot be read".into()),
                }
            }
            Err(RosterError::Unauthorised { reason, .. }) => {
                return refuse(self, format!("it is not authorised: {reason}"))
            }
            Err(e) => return refuse(self, e.to_string()),
        };
        if state.applied {
            return Judged::Verdict(Verdict::Known);
        }
        if state.ready() {
            // The quorum is complete: the operation enters the roster (which drops the kept proposal).
            let mut settled = Vec::new();
            return Judged::Verdict(self.take_op(
                crate::ingest::OpIn::Unverified(candidate),
                at,
                &mut settled,
            ));
        }
        if kept_id.is_none() {
            match self.store.proposals() {
                Ok(all) if all.len() >= MAX_PROPOSALS => {
                    return refuse(
                        self,
                        format!("{MAX_PROPOSALS} proposals already wait for co-signatures here"),
                    )
                }
                Ok(_) => {}
                Err(e) => return Judged::Verdict(Verdict::Failed(e.to_string())),
            }
        }
        let bytes = candidate.to_bytes();
        if let Err(e) = self.store.put_proposal(&hash, &bytes) {
            return Judged::Verdict(Verdict::Failed(e.to_string()));
        }
        Judged::Verdict(Verdict::Added(Accepted {
            id: Hash::of(PROPOSAL_ITEM, &bytes),
            kind,
            space: None,
            pool: None,
            says_until_ms: None,
            leaves: kept_id
                .map(|h| vec![(ItemKind::Proposal, h)])
                .unwrap_or_default(),
            hidden: false,
        }))
    }
}
