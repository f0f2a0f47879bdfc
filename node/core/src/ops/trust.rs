//! What coordinators sign beside the roster: coordinator changes collected by quorum (propose, approve,
//! the pending list) and verifications of listing facts (verify, and the claimed-versus-verified state
//! the directory shows).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::verify::{self, FactState, SignedVerification, Verification};
use deskmesh_keys::invite::{parse_proposal_token, proposal_token, PROPOSAL_PREFIX};
use deskmesh_keys::roster::{OpBody, RosterState, SignedOp};
use deskmesh_keys::{Hash, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::audit::summarise;
use crate::ingest::SignedItem;
use crate::names::KeyName;
use crate::node::Node;

/// A coordinator change, as `alliance propose` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorChange {
    Add(PublicKey),
    Remove(PublicKey),
    Threshold(u8),
}

/// A proposed coordinator change and how far it is from taking effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalReport {
    /// The roster operation's hash: what `alliance approve` takes (or a prefix of it).
    pub id: Hash,
    /// The proposal with every signature gathered here, to carry to other coordinators offline.
    pub token: String,
    pub kind: String,
    pub summary: String,
    pub proposed_by: KeyName,
    pub approved_by: Vec<KeyName>,
    /// Coordinators at the proposal's roster heads who have not signed yet.
    pub waiting_for: Vec<KeyName>,
    pub threshold: u8,
    /// Signatures still missing; 0 once the roster took it.
    pub missing: usize,
    /// The roster took it: the change is in effect.
    pub applied: bool,
}

/// What `alliance verify` signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub id: Hash,
    pub space: SpaceId,
    pub name: String,
    pub facts: Vec<String>,
    pub checked_on: String,
}

/// One fact a coordinator verified, as the directory, the exports and the TUI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactView {
    /// `accessibility`, `internet.down_mbps`, …
    pub fact: String,
    /// "verified", or "changed since verified" (so only claimed again).
    pub status: String,
    pub by: KeyName,
    /// `YYYY-MM-DD`.
    pub checked_on: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl FactView {
    /// The facts of `states` for people, keys named by `roster`.
    pub fn all(states: &[FactState], roster: Option<&deskmesh_keys::Roster>) -> Vec<FactView> {
        Self::all_named(states, |k| KeyName::of(roster, k))
    }

    /// [`FactView::all`] with keys named by `name`: callers that describe many spaces pass
    /// [`crate::names::KeyNames`], which does not search every space for every key.
    pub fn all_named(states: &[FactState], name: impl Fn(&PublicKey) -> KeyName) -> Vec<FactView> {
        states
            .iter()
            .filter_map(|s| {
                let (status, a) = match (&s.verified, &s.changed_since) {
                    (Some(a), _) => ("verified", a),
                    (None, Some(a)) => ("changed since verified", a),
                    (None, None) => return None,
                };
                Some(FactView {
                    fact: s.fact.clone(),
                    status: status.into(),
                    by: name(&a.by),
                    checked_on: a.checked_on.clone(),
                    note: a.note.clone(),
                })
            })
            .collect()
    }

    pub fn is_verified(&self) -> bool {
        self.status == "verified"
    }
}

fn ms(now: DateTime<Utc>) -> i64 {
    now.timestamp_millis()
}

impl Node {
    /// Proposes a coordinator change signed by this node (a coordinator). With a threshold of one it
    /// takes effect at once; otherwise it waits for co-signatures, travels to the other coordinators over
    /// the mesh, and its token can be carried by hand.
    pub fn propose(
        &mut self,
        change: CoordinatorChange,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ProposalReport> {
        let roster = self.require_roster()?;
        if !roster.state().is_coordinator(&self.public_key()) {
            bail!("only a coordinator can propose a coordinator change, and this node's key is not one (see `deskmesh alliance show`)");
        }
        let body = match change {
            CoordinatorChange::Add(key) => OpBody::AddCoordinator { key },
            CoordinatorChange::Remove(key) => OpBody::RemoveCoordinator { key },
            CoordinatorChange::Threshold(threshold) => OpBody::SetThreshold { threshold },
        };
        let op = roster.propose(self.signer(), body, ms(now));
        // Refused here, with the roster's reason, rather than sent around to be refused everywhere.
        roster
            .check_proposal(&op)
            .map_err(|e| anyhow!("this change cannot be made: {e}"))?;
        self.submit(op)
    }

    /// Adds this node's signature to a proposal: a `dmp1…` token, or the id (or an unambiguous prefix)
    /// of one this node holds.
    pub fn approve(&mut self, proposal: &str) -> anyhow::Result<ProposalReport> {
        let roster = self.require_roster()?;
        if !roster.state().is_coordinator(&self.public_key()) {
            bail!("only a coordinator can approve a coordinator change, and this node's key is not one");
        }
        let mut op = self.find_proposal(proposal)?;
        let state = roster
            .check_proposal(&op)
            .map_err(|e| anyhow!("this proposal cannot be approved: {e}"))?;
        if state.applied {
            bail!(
                "proposal {} is already in effect: {}",
                state.hash.short(),
                summarise(&state.op.body, roster)
            );
        }
        if !state.coordinators.contains(&self.public_key()) {
            bail!("this node was not a coordinator at the roster the proposal names, so its signature would not count");
        }
        op.cosign(self.signer());
        self.submit(op)
    }

    /// Every proposal waiting for co-signatures here.
    pub fn proposals(&self) -> anyhow::Result<Vec<ProposalReport>> {
        let mut out = Vec::new();
        for (_, bytes) in self.store.proposals()? {
            let op = SignedOp::from_bytes(&bytes)?;
            out.push(self.proposal_report(&op)?);
        }
        Ok(out)
    }

    /// Takes a proposal through the ingest path every item takes and reports where it stands.
    fn submit(&mut self, op: SignedOp) -> anyhow::Result<ProposalReport> {
        let hash = op.hash();
        self.ingest_local(SignedItem::proposal(&op))?;
        let current = match self.roster().and_then(|r| r.get(&hash)) {
            Some(applied) => applied.clone(),
            None => match self.store.proposal(&hash)? {
                Some(bytes) => SignedOp::from_bytes(&bytes)?,
                None => op,
            },
        };
        self.proposal_report(&current)
    }

    fn find_proposal(&self, proposal: &str) -> anyhow::Result<SignedOp> {
        let text = proposal.trim();
        if text
            .to_ascii_lowercase()
            .starts_with(&PROPOSAL_PREFIX.to_ascii_lowercase())
        {
            let op = parse_proposal_token(text)?;
            // Signatures gathered here already join the ones the token carries.
            if let Some(bytes) = self.store.proposal(&op.hash())? {
                let mut kept = SignedOp::from_bytes(&bytes)?;
                kept.merge(&op)?;
                return Ok(kept);
            }
            return Ok(op);
        }
        let wanted = text.to_ascii_lowercase();
        let matches: Vec<(Hash, Vec<u8>)> = self
            .store
            .proposals()?
            .into_iter()
            .filter(|(h, _)| h.to_string().starts_with(&wanted))
            .collect();
        match matches.as_slice() {
            [(_, bytes)] => Ok(SignedOp::from_bytes(bytes)?),
            [] if wanted.is_empty() => bail!("name the proposal to approve: its id (see `deskmesh alliance proposals`) or its dmp1 token"),
            [] => bail!("no proposal {text:?} is waiting here; `deskmesh alliance proposals` lists them, or pass the dmp1 token a coordinator sent you"),
            _ => bail!("{text:?} matches {} proposals; give more of its id", matches.len()),
        }
    }

    fn proposal_report(&self, op: &SignedOp) -> anyhow::Result<ProposalReport> {
        let roster = self.require_roster()?;
        let state = roster.check_proposal(op)?;
        let name = |k: &PublicKey| KeyName::of(Some(roster), k);
        Ok(ProposalReport {
            id: state.hash,
            token: proposal_token(op),
            kind: state.op.body.kind().to_string(),
            summary: summarise(&state.op.body, roster),
            proposed_by: name(&state.op.author),
            approved_by: state.approved_by.iter().map(name).collect(),
            waiting_for: state
                .coordinators
                .iter()
                .filter(|c| !state.approved_by.contains(c))
                .map(name)
                .collect(),
            threshold: state.threshold,
            missing: if state.applied { 0 } else { state.missing() },
            applied: state.applied,
        })
    }

    /// Signs a verification of `facts` of a space's listing as it stands here, checked on `checked_on`
    /// (default: today). Coordinators only.
    pub fn verify_facts(
        &mut self,
        space: &SpaceId,
        facts: &[String],
        checked_on: Option<NaiveDate>,
        note: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<VerifyReport> {
        let roster = self.require_roster()?;
        if !roster.state().is_coordinator(&self.public_key()) {
            bail!(
                "only a coordinator can verify a listing's facts, and this node's key is not one"
            );
        }
        if facts.is_empty() {
            bail!(
                "name at least one fact to verify with --fact ({}, or one key inside them such as accessibility.entrance)",
                verify::FACTS.join(", ")
            );
        }
        let day = checked_on.unwrap_or_else(|| now.date_naive());
        if day > now.date_naive() + chrono::Days::new(1) {
            bail!("{day} is in the future; facts can only be verified as checked on a past day or today");
        }
        let listing = self.current_listing(space)?.ok_or_else(|| {
            anyhow!("no listing of {space} is known here; wait until it has synced, or check the id with `deskmesh spaces list`")
        })?;
        let v = Verification::of(
            &listing,
            facts,
            day,
            note,
            self.public_key(),
            roster.heads(),
            ms(now),
        )?;
        let signed = v.sign(self.signer())?;
        let id = signed.id();
        self.ingest_local(SignedItem::verification(&signed))
            .context("the verification was not stored")?;
        Ok(VerifyReport {
            id,
            space: space.clone(),
            name: listing.name,
            facts: facts.to_vec(),
            checked_on: v.checked_on,
        })
    }

    /// The verifications of every space that still count: stored (so verified when they arrived) and
    /// signed by a key that is a coordinator now.
    pub fn verifications(&self) -> anyhow::Result<BTreeMap<SpaceId, Vec<(Hash, Verification)>>> {
        let mut out: BTreeMap<SpaceId, Vec<(Hash, Verification)>> = BTreeMap::new();
        let stored = self.store.verifications()?;
        // No verification at all needs no roster.
        if stored.is_empty() {
            return Ok(out);
        }
        let Some(state) = self.roster_state() else {
            return Ok(out);
        };
        for (space, id, bytes) in stored {
            if let Some(v) = counting(state, &bytes) {
                out.entry(space).or_default().push((id, v));
            }
        }
        Ok(out)
    }

    /// Claimed versus verified, for one listing.
    pub fn fact_states(&self, listing: &Listing) -> anyhow::Result<Vec<FactState>> {
        let verified = self.space_verifications(&listing.id)?;
        // No verification, no fact states: spares the listing's JSON form, which `fact_states` reads.
        if verified.is_empty() {
            return Ok(Vec::new());
        }
        Ok(verify::fact_states(listing, &verified))
    }

    /// [`Node::verifications`] of one space: what a query that keeps a few spaces reads, instead of
    /// every space's.
    pub(crate) fn space_verifications(
        &self,
        space: &SpaceId,
    ) -> anyhow::Result<Vec<(Hash, Verification)>> {
        let stored = self.store.space_verifications(space)?;
        // No verification of the space needs no roster.
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let Some(state) = self.roster_state() else {
            return Ok(Vec::new());
        };
        Ok(stored
            .into_iter()
            .filter_map(|(id, bytes)| counting(state, &bytes).map(|v| (id, v)))
            .collect())
    }
}

/// The verification stored as `bytes` when it still counts under the roster's `state`: it reads back and
/// its author is a coordinator now.
fn counting(state: &RosterState, bytes: &[u8]) -> Option<Verification> {
    SignedVerification::from_bytes(bytes)
        .and_then(|s| s.decode())
        .ok()
        .filter(|v| state.is_coordinator(&v.author))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{self, now};
    use deskmesh_keys::{DeviceKey, Signer};

    #[test]
    fn a_coordinator_change_waits_for_the_threshold_then_takes_effect_everywhere() {
        let mut first = testkit::node("first");
        first.alliance_create("Quorum", 1, now()).unwrap();
        let mut second = testkit::node_with_key("second", DeviceKey::generate());
        second
            .alliance_join(&first.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        // Threshold 1: adding the second coordinator takes effect at once.
        let added = first
            .propose(CoordinatorChange::Add(second.public_key()), now())
            .unwrap();
        assert!(added.applied, "{added:?}");
        let raised = first
            .propose(CoordinatorChange::Threshold(2), now())
            .unwrap();
        assert!(raised.applied);
        // Bring the second node up to date offline.
        let bundle = first.bundle().unwrap();
        let items: Vec<SignedItem> = bundle.batches(usize::MAX).remove(0);
        second.import_items(items).unwrap();
        assert_eq!(second.roster().unwrap().state().threshold, 2);

        // Now a change needs both: proposed by the first, pending, carried as a token, approved.
        let third = DeviceKey::generate().public_key();
        let proposed = first.propose(CoordinatorChange::Add(third), now()).unwrap();
        assert!(!proposed.applied);
        assert_eq!(proposed.missing, 1);
        assert_eq!(proposed.waiting_for.len(), 1);
        assert_eq!(first.proposals().unwrap().len(), 1);
        assert!(!first.roster().unwrap().state().is_coordinator(&third));
        let approved = second.approve(&proposed.token).unwrap();
        assert!(approved.applied, "{approved:?}");
        assert!(second.roster().unwrap().state().is_coordinator(&third));
        assert!(second.proposals().unwrap().is_empty());
        // The first node learns it from the approval's token: the same change, now complete.
        let done = first.approve(&approved.token).unwrap();
        assert!(done.applied);
        assert!(first.roster().unwrap().state().is_coordinator(&third));
        assert!(first.proposals().unwrap().is_empty());
        let again = first.approve(&approved.token).unwrap_err();
        assert!(again.to_string().contains("already in effect"), "{again}");
        // A node that never saw the proposal takes the complete operation, as over the mesh.
        let mut late = testkit::node("late");
        late.alliance_join(&first.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        let mut items = first.bundle().unwrap().batches(usize::MAX).remove(0);
        items.retain(|i| i.id() != Some(approved.id));
        late.import_items(items).unwrap();
        let op = second.roster().unwrap().get(&approved.id).unwrap().clone();
        let report = late.import_items(vec![SignedItem::proposal(&op)]).unwrap();
        assert_eq!(report.roster_ops_new, 1, "{report:?}");
        assert!(late.roster().unwrap().state().is_coordinator(&third));

        // A member cannot propose, and nonsense is refused before it travels.
        let mut member = testkit::node("member");
        member
            .alliance_join(&first.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        let err = member
            .propose(CoordinatorChange::Threshold(1), now())
            .unwrap_err();
        assert!(err.to_string().contains("only a coordinator"), "{err}");
        let err = first
            .propose(CoordinatorChange::Threshold(9), now())
            .unwrap_err();
        assert!(
            err.to_string().contains("more than the 3 coordinators"),
            "{err}"
        );
        let err = first.approve("zzzz").unwrap_err();
        assert!(err.to_string().contains("no proposal"), "{err}");
    }

    #[test]
    fn a_too_thin_coordinator_change_is_refused_with_the_count() {
        let mut first = testkit::node("first");
        let other = DeviceKey::generate();
        first.alliance_create("Quorum", 1, now()).unwrap();
        first
            .propose(CoordinatorChange::Add(other.public_key()), now())
            .unwrap();
        first
            .propose(CoordinatorChange::Threshold(2), now())
            .unwrap();
        let roster = first.roster().unwrap();
        let thin = roster.propose(
            first.signer(),
            OpBody::AddCoordinator {
                key: DeviceKey::generate().public_key(),
            },
            0,
        );
        let report = first.import_items(vec![SignedItem::op(&thin)]).unwrap();
        assert_eq!(report.refused.len(), 1, "{report:?}");
        assert!(
            report.refused[0].contains("needs the signatures of 2 coordinators and carries 1"),
            "{report:?}"
        );
        let refusals = first.refusals().unwrap();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].item, Some(thin.hash()));
    }

    #[test]
    fn verified_facts_drop_back_to_claimed_when_the_listing_changes() {
        let mut coordinator = testkit::coordinator();
        let (mut space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        // The coordinator learns the listing, then verifies its accessibility.
        let items = space.bundle().unwrap().batches(usize::MAX).remove(0);
        coordinator.import_items(items).unwrap();
        let report = coordinator
            .verify_facts(&id, &["accessibility".into()], None, "visited", now())
            .unwrap();
        assert_eq!(report.checked_on, "2026-11-03");
        let listing = coordinator.current_listing(&id).unwrap().unwrap();
        let states = coordinator.fact_states(&listing).unwrap();
        assert!(states[0].is_verified(), "{states:?}");
        // The space changes the fact: it is only claimed again.
        let mut changed = listing.clone();
        changed.accessibility.wheelchair = Some(deskmesh_crdt_model::listing::Wheelchair::Limited);
        let items = {
            let mut v = coordinator.bundle().unwrap().batches(usize::MAX).remove(0);
            v.retain(|i| i.kind == crate::ingest::ItemKind::Verification);
            v
        };
        space.import_items(items).unwrap();
        space.publish_listing(&changed, now()).unwrap();
        let states = space.fact_states(&changed).unwrap();
        assert!(!states[0].is_verified());
        assert_eq!(states[0].changed_since.as_ref().unwrap().note, "visited");
        // Only coordinators verify; a space cannot vouch for itself.
        let err = space
            .verify_facts(&id, &["accessibility".into()], None, "", now())
            .unwrap_err();
        assert!(err.to_string().contains("only a coordinator"), "{err}");
        // A verification signed by a non-coordinator key is refused at the door.
        let forged = Verification::of(
            &changed,
            &["accessibility".into()],
            now().date_naive(),
            "",
            space.public_key(),
            space.roster().unwrap().heads(),
            0,
        )
        .unwrap()
        .sign(space.signer())
        .unwrap();
        let report = coordinator
            .import_items(vec![SignedItem::verification(&forged)])
            .unwrap();
        assert!(
            report.refused[0].contains("only a coordinator"),
            "{report:?}"
        );
    }
}
