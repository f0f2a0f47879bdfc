//! `deskmesh audit`: verify every stored signature again and explain who signed what, in one model that
//! the command line and the terminal UI both show.
//!
//! The audit re-reads the source of truth (signed roster operations, listing changes, checkpoints, seat
//! beacons, verifications and proposals), verifies every signature, rebuilds each listing from scratch,
//! and reports per listing its signers (named by the role the roster gives them) with the roster operation
//! that authorised each, and the checkpoints kept for it. Everything that did not count is one list of
//! [`Finding`]s, the same list [`Node::findings`] gives a live front end: roster operations that were
//! refused, listing changes stored but excluded or still waiting, signed items refused at the door (with
//! the peer they came from), unverifiable beacons and checkpoints. It changes nothing but the rebuildable
//! index, and only when the store takes the write: on a full disk it still reports. A running daemon
//! audits on a [`Node::reader`] off its event loop, which rewrites no index at all.
//!
//! It tells apart what is wrong from what is merely incomplete: a change that names roster operations
//! or earlier changes this node does not hold yet is *pending* (listed, but the audit still passes: a
//! sync brings what it needs), while anything refused, rejected or unverifiable fails the audit.
//!
//! [`Node::audit_export`] writes all of it to one self-contained file, signed by this node, and
//! [`verify_export`] checks such a file on a machine that never joined the alliance and gives the same
//! report (`docs/AUDIT.md`).

use std::sync::Arc;

use anyhow::{bail, Context};
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::verify::{FactState, SignedVerification};
use deskmesh_keys::roster::{OpBody, SignedOp};
use deskmesh_keys::{
    AllianceId, DeviceKey, Domain, Hash, PublicKey, Roster, Signature, Signer, SpaceId,
};
use deskmesh_store::Store;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleRef;
use crate::home::NodeConfig;
use crate::ingest::{At, ItemKind, Source};
use crate::names::{KeyName, KeyNames};
use crate::node::{hex, IndexEntry, Node, RefusalRecord, RejectionRecord, PENDING_PREFIX};
use crate::ops::trust::ProposalReport;

/// How far a running audit got: its cost is rebuilding every listed space, one after another in name
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProgress {
    pub spaces_done: usize,
    pub spaces: usize,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub alliance: Option<AllianceId>,
    pub alliance_name: Option<String>,
    /// Whose items these are: this node's store, or an exported file checked offline.
    pub source: AuditSource,
    /// Roster operations in causal order, every signature verified.
    pub roster: Vec<RosterOpAudit>,
    pub listings: Vec<ListingAudit>,
    pub beacons_verified: usize,
    /// Coordinators' verifications of listing facts.
    pub verifications: Vec<VerificationAudit>,
    /// Coordinator changes still collecting co-signatures.
    pub proposals: Vec<ProposalReport>,
    /// Everything that did not count: the list the terminal UI shows too.
    pub findings: Vec<Finding>,
    /// Stored changes that wait for roster operations or earlier changes not held yet (the pending
    /// findings).
    #[serde(default)]
    pub waiting: usize,
    /// Nothing refused, rejected or unverifiable (pending items, which only wait, do not count).
    pub ok: bool,
}

/// Where the audited items come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AuditSource {
    /// This node's own store.
    Node { name: String, key: PublicKey },
    /// A file `audit export` wrote, checked on this machine.
    File {
        node_name: String,
        exported_by: PublicKey,
        exported_at_ms: i64,
        /// The exporting node's signature over the file verifies.
        signature_ok: bool,
    },
}

/// One roster operation, in causal order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterOpAudit {
    pub op: Hash,
    pub kind: String,
    pub summary: String,
    pub author: PublicKey,
    /// The author as the roster names it now.
    #[serde(default)]
    pub author_name: String,
    pub signed_by: Vec<PublicKey>,
    pub parents: Vec<Hash>,
    pub created_at_ms: i64,
}

/// One listing: who signed it under which roster operation, what is verified, and how many changes count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingAudit {
    pub space: SpaceId,
    /// The listing's name, or the roster's name of the space when no listing counts.
    pub name: Option<String>,
    pub changes_stored: usize,
    pub changes_accepted: usize,
    /// Accepted changes this node holds only inside checkpoints: their signers vouch for them; each one
    /// can be fetched and checked from a node that received it.
    #[serde(default)]
    pub changes_vouched: usize,
    /// The checkpoints kept for the space, each verified again by this audit.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointAudit>,
    pub signers: Vec<SignerAudit>,
    /// The revocation's reason, when the space was revoked.
    pub revoked: Option<String>,
    /// Facts a coordinator verified, and whether they still hold.
    pub facts: Vec<FactState>,
}

/// A kept checkpoint: who signed it, when, and how many changes it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointAudit {
    pub id: Hash,
    pub author: KeyName,
    pub changes: u32,
    pub created_at_ms: i64,
}

/// A key that signed accepted changes of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignerAudit {
    pub key: KeyName,
    pub changes: usize,
    /// The roster operation that authorised the key (admission or device addition).
    pub authorised_by: Hash,
    /// The roster operation that has since removed the key or revoked its space.
    pub removed_by: Option<Hash>,
}

/// One stored verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationAudit {
    pub id: Hash,
    pub space: SpaceId,
    pub by: KeyName,
    pub facts: Vec<String>,
    pub checked_on: String,
    /// Whether it still counts (its author is still a coordinator).
    pub counts: bool,
}

/// What became of an item that does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Turned away and not stored (only this record of it is kept).
    Refused,
    /// Stored as evidence, excluded from its listing or from the roster.
    Rejected,
    /// Stored, waiting for what it depends on.
    Pending,
    /// Stored, but its signature no longer verifies.
    Unverifiable,
}

impl FindingStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Rejected => "rejected",
            Self::Pending => "pending",
            Self::Unverifiable => "unverifiable",
        }
    }
}

/// One item that did not count, with everything a coordinator needs to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub status: FindingStatus,
    /// "roster operation", "listing change", "seat beacon", "verification", "proposed coordinator
    /// change", "gossip message".
    pub kind: String,
    pub space: Option<SpaceId>,
    /// The space's name in the roster.
    pub space_name: Option<String>,
    /// The item's id (a change hash, an operation hash, an item id), when it could be read.
    pub item: Option<String>,
    /// Who signed it, named by the roster.
    pub author: Option<KeyName>,
    /// The peer it came from, when it came from the mesh.
    pub peer: Option<String>,
    /// "mesh", "gossip", "bundle", "this node", or "file" for an audit file's own items.
    pub source: Option<String>,
    /// Why, in plain words.
    pub reason: String,
    /// When it was refused, if known.
    pub at_ms: Option<i64>,
}

impl Finding {
    /// Where it came from, for one line of text: `peer 12D3… (mesh)`, or the source alone.
    pub fn origin(&self) -> Option<String> {
        match (&self.peer, &self.source) {
            (Some(p), Some(s)) if !p.is_empty() => Some(format!("peer {p} ({s})")),
            (Some(p), None) if !p.is_empty() => Some(format!("peer {p}")),
            (_, Some(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

impl Node {
    /// Every roster operation in causal order, with a one-line summary and its signers.
    pub fn roster_log(&self) -> Vec<RosterOpAudit> {
        let mut out = Vec::new();
        if let Some(roster) = self.roster() {
            let names = KeyNames::new(Some(roster.state()));
            for (hash, op, signed) in roster.ops_in_order() {
                out.push(RosterOpAudit {
                    op: hash,
                    kind: op.body.kind().to_string(),
                    summary: summarise_with(&op.body, roster, &names),
                    author: op.author,
                    author_name: names.of(&op.author).name,
                    signed_by: signed.signers(),
                    parents: op.parents.clone(),
                    created_at_ms: op.created_at_ms,
                });
            }
        }
        out
    }

    /// Everything that did not count, from what the store and its index hold now: the list the audit
    /// reports and a live front end shows. The roster's stored signatures are checked once per roster
    /// state (10,000 admissions take half a second to verify); [`Node::audit`] checks them every time.
    /// While [`Node::check_roster_signatures_in_background`] runs, the findings leave those faults out.
    pub fn findings(&self) -> anyhow::Result<Vec<Finding>> {
        self.findings_checking(false)
    }

    /// Starts checking the roster's stored signatures on another thread, as a daemon starts: its first
    /// answers do not wait for 10,000 verifications. [`Node::findings`] leave the faults out until
    /// [`Node::roster_check_done`] says the check is in.
    pub fn check_roster_signatures_in_background(&self) {
        let Some(roster) = self.roster() else {
            return;
        };
        let heads = roster.heads();
        let roster = roster.clone();
        let thread = std::thread::spawn(move || roster.unverified_signatures());
        *self.roster_check.borrow_mut() = Some((heads, thread));
    }

    /// Takes in the background check's result once it is done: `true` the one time it is, when the
    /// findings may have changed.
    pub fn roster_check_done(&self) -> bool {
        let finished = self
            .roster_check
            .borrow()
            .as_ref()
            .is_some_and(|(_, thread)| thread.is_finished());
        if !finished {
            return false;
        }
        if let Some((heads, thread)) = self.roster_check.borrow_mut().take() {
            // A check that panicked proves nothing: the next findings check again, here.
            if let Ok(faults) = thread.join() {
                *self.roster_faults.borrow_mut() = Some((heads, faults));
            }
        }
        true
    }

    /// The roster operations whose stored signatures do not verify: checked again when `recheck` or
    /// when the roster changed since the last check, else as last checked.
    fn roster_signature_faults(
        &self,
        roster: &deskmesh_keys::Roster,
        recheck: bool,
    ) -> Vec<(Hash, deskmesh_keys::RosterError)> {
        let heads = roster.heads();
        if !recheck {
            self.roster_check_done();
            if let Some((checked, faults)) = &*self.roster_faults.borrow() {
                if *checked == heads {
                    return faults.clone();
                }
            }
            // Not known yet: the check running in the background brings them in a later call.
            if self.roster_check.borrow().is_some() {
                return Vec::new();
            }
        }
        let faults = roster.unverified_signatures();
        *self.roster_faults.borrow_mut() = Some((heads, faults.clone()));
        faults
    }

    fn findings_checking(&self, recheck: bool) -> anyhow::Result<Vec<Finding>> {
        let roster = self.roster();
        let space_name = |s: &SpaceId| {
            roster
                .and_then(|r| r.state().spaces.get(s))
                .map(|e| e.name.clone())
        };
        let names = KeyNames::new(roster.map(Roster::state));
        let name = |k: &PublicKey| names.of(k);
        // A roster operation that does not count: it belongs to no space.
        let rejected_op = |op: &Hash, author: Option<KeyName>, reason: String| Finding {
            status: FindingStatus::Rejected,
            kind: ItemKind::RosterOp.label().into(),
            space: None,
            space_name: None,
            item: Some(op.to_string()),
            author,
            peer: None,
            source: None,
            reason,
            at_ms: None,
        };
        let mut out = Vec::new();

        for (op, bytes, reason) in self.store.rejected_ops()? {
            let author = SignedOp::from_bytes(&bytes)
                .and_then(|s| s.op())
                .ok()
                .map(|o| o.author);
            out.push(rejected_op(&op, author.as_ref().map(name), reason));
        }
        if let Some(roster) = roster {
            // The roster was loaded without checking signatures (they were checked before each
            // operation was stored); the audit checks every one again.
            for (op, why) in self.roster_signature_faults(roster, recheck) {
                out.push(rejected_op(
                    &op,
                    None,
                    format!("its stored signatures do not verify ({why}); the store was altered outside deskmesh"),
                ));
            }
            for (hash, bytes) in self.store.ops()? {
                if roster.contains(&hash) {
                    continue;
                }
                let reason = match SignedOp::from_bytes(&bytes) {
                    Ok(_) => "it is stored but cannot be applied (its parents are missing, or it is not authorised)".into(),
                    Err(e) => e.to_string(),
                };
                out.push(rejected_op(&hash, None, reason));
            }
        }

        let refusals = self.refusals()?;
        // Where stored-but-excluded changes came from: the notes the ingest path left.
        let origin = |space: &SpaceId, hash: &[u8; 32]| {
            refusals.iter().rev().find(|r| {
                r.stored && r.space.as_ref() == Some(space) && r.item == Some(Hash(*hash))
            })
        };
        for (space, hash, reason) in self.store.rejected_changes()? {
            let r: RejectionRecord = serde_json::from_slice(&reason)?;
            let (status, reason) = if r.is_waiting() {
                let reason = r.reason.strip_prefix(PENDING_PREFIX).unwrap_or(&r.reason);
                (FindingStatus::Pending, reason.to_string())
            } else {
                (FindingStatus::Rejected, r.reason)
            };
            let from = origin(&space, &hash);
            out.push(Finding {
                status,
                kind: ItemKind::ListingChange.label().into(),
                space_name: space_name(&space),
                space: Some(space),
                item: Some(hex(&hash)),
                author: r.author.as_ref().map(name),
                peer: from.and_then(|f| f.peer.clone()),
                source: from.and_then(|f| f.source.clone()),
                reason,
                at_ms: from.map(|f| f.at_ms),
            });
        }

        for r in refusals.iter().filter(|r| !r.stored) {
            out.push(Finding {
                status: FindingStatus::Refused,
                kind: r.kind.clone(),
                space_name: r.space.as_ref().and_then(space_name),
                space: r.space.clone(),
                item: r.item.map(|h| item_text(&r.kind, &h)),
                author: r.author.as_ref().map(name),
                peer: r.peer.clone(),
                source: r.source.clone(),
                reason: r.reason.clone(),
                at_ms: Some(r.at_ms),
            });
        }
        Ok(out)
    }

    /// Verifies everything stored and reports signers, verifications and findings.
    pub fn audit(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<AuditReport> {
        self.audit_watched(now, &mut |_| {})
    }

    /// [`Node::audit`], telling `progress` how far it got after each space's listing is checked (the
    /// audit's cost): spaces done and in all, from `(0, n)` before the first to `(n, n)`.
    pub fn audit_watched(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        progress: &mut dyn FnMut(AuditProgress),
    ) -> anyhow::Result<AuditReport> {
        let roster = self.roster();
        let names = KeyNames::new(roster.map(Roster::state));
        let name = |k: &PublicKey| names.of(k);
        let mut spaces = self.listed_spaces()?;
        for (space, _, _) in self.store.rejected_changes()? {
            if !spaces.contains(&space) {
                spaces.push(space);
            }
        }

        spaces.sort();
        spaces.dedup();
        let mut listings = Vec::new();
        // Stored checkpoints that no longer verify, for the findings.
        let mut bad_checkpoints = Vec::new();
        // Every change verified again from the store, so the index (and the findings) are checked, not
        // trusted; the index is rewritten when the store takes it. Rebuilding is the audit's cost (a
        // year of weekly edits is tens of thousands of changes per thousand spaces): the spaces rebuild
        // on every core ([`Node::each_rebuilt`]).
        let mut done = AuditProgress {
            spaces_done: 0,
            spaces: spaces.len(),
        };
        progress(done);
        self.each_rebuilt(&spaces, |space, doc, undecodable| {
            done.spaces_done += 1;
            progress(done);
            let changes_accepted = self.keep_rebuilt(space, doc, undecodable);
            self.try_write_index(space);
            let space = space.clone();
            let rows = self.index_rows(&space)?;
            let entry: Option<IndexEntry> = match rows.as_ref().and_then(|r| r.listing.as_ref()) {
                Some(bytes) => crate::catalog::read_entry(&space, bytes)?,
                None => None,
            };
            let roster_entry = roster.and_then(|r| r.state().spaces.get(&space));
            let listing_name = entry
                .as_ref()
                .map(|e| e.listing.name.clone())
                .or_else(|| roster_entry.map(|e| e.name.clone()));
            let facts = match entry.as_ref() {
                Some(e) => self.fact_states(&e.listing)?,
                None => Vec::new(),
            };
            let mut checkpoints = Vec::new();
            for (id, bytes) in self.store.space_checkpoints(&space)? {
                let signed = deskmesh_crdt_model::checkpoint::SignedCheckpoint::from_bytes(&bytes);
                match signed
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|c| c.verify())
                {
                    Ok(h) => checkpoints.push(CheckpointAudit {
                        id,
                        author: name(&h.author),
                        changes: h.changes,
                        created_at_ms: h.created_at_ms,
                    }),
                    Err(e) => bad_checkpoints.push(Finding {
                        status: FindingStatus::Unverifiable,
                        kind: ItemKind::Checkpoint.label().into(),
                        space_name: roster_entry.map(|e| e.name.clone()),
                        space: Some(space.clone()),
                        item: Some(id.to_string()),
                        author: signed
                            .ok()
                            .and_then(|c| c.decode().ok())
                            .map(|c| name(&c.author)),
                        peer: None,
                        source: None,
                        reason: format!("stored checkpoint: {e}"),
                        at_ms: None,
                    }),
                }
            }
            listings.push(ListingAudit {
                space: space.clone(),
                name: listing_name,
                changes_stored: self.store.change_hashes(&space)?.len(),
                changes_accepted,
                changes_vouched: self.vouched(&space),
                checkpoints,
                signers: entry
                    .map(|e| e.signers)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| SignerAudit {
                        key: name(&s.key),
                        changes: s.changes,
                        authorised_by: s.authorised_by,
                        removed_by: s.removed_by,
                    })
                    .collect(),
                revoked: roster_entry.and_then(|e| e.revoked.as_ref().map(|(_, r)| r.clone())),
                facts,
            });
            Ok(())
        })?;

        let mut findings = self.findings_checking(true)?;
        findings.extend(bad_checkpoints);
        let mut beacons_verified = 0;
        for (space, pool, bytes) in self.store.beacons()? {
            // Expired beacons still verify: `verify` checks the signature and refuses only the future.
            let signed = SignedBeacon::from_bytes(&bytes);
            match signed
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|b| b.verify(now.timestamp_millis()))
            {
                Ok(_) => beacons_verified += 1,
                Err(e) => findings.push(Finding {
                    status: FindingStatus::Unverifiable,
                    kind: ItemKind::SeatBeacon.label().into(),
                    space_name: roster
                        .and_then(|r| r.state().spaces.get(&space))
                        .map(|e| e.name.clone()),
                    space: Some(space),
                    item: Some(Hash::of(crate::ingest::BEACON_ITEM, &bytes).to_string()),
                    author: signed
                        .ok()
                        .and_then(|b| b.decode().ok())
                        .map(|b| name(&b.author)),
                    peer: None,
                    source: None,
                    reason: format!("pool {pool}: {e}"),
                    at_ms: None,
                }),
            }
        }
        let mut verifications = Vec::new();
        for (space, id, bytes) in self.store.verifications()? {
            match SignedVerification::from_bytes(&bytes).and_then(|s| s.verify()) {
                Ok(v) => verifications.push(VerificationAudit {
                    id,
                    space,
                    counts: roster.is_some_and(|r| r.state().is_coordinator(&v.author)),
                    by: name(&v.author),
                    facts: v.facts.into_iter().map(|f| f.fact).collect(),
                    checked_on: v.checked_on,
                }),
                Err(e) => findings.push(Finding {
                    status: FindingStatus::Unverifiable,
                    kind: ItemKind::Verification.label().into(),
                    space: Some(space),
                    space_name: None,
                    item: Some(id.to_string()),
                    author: None,
                    peer: None,
                    source: None,
                    reason: e.to_string(),
                    at_ms: None,
                }),
            }
        }
        Ok(AuditReport {
            alliance: self.alliance_id(),
            alliance_name: roster.map(|r| r.name().to_string()),
            source: AuditSource::Node {
                name: self.config.name.clone(),
                key: self.public_key(),
            },
            roster: self.roster_log(),
            listings,
            beacons_verified,
            verifications,
            proposals: self.proposals()?,
            waiting: findings
                .iter()
                .filter(|f| f.status == FindingStatus::Pending)
                .count(),
            ok: findings.iter().all(|f| f.status == FindingStatus::Pending),
            findings,
        })
    }

    /// Everything an offline auditor needs, in one file signed by this node: every roster operation, signed
    /// change, checkpoint, beacon, verification and proposal the store holds, and the refusal log (the only record of
    /// what was turned away). `docs/AUDIT.md` describes the format.
    pub fn audit_export(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Vec<u8>> {
        let alliance = self
            .alliance_id()
            .context("this node is not in an alliance yet; there is nothing to audit")?;
        let bundle = self.bundle()?;
        let mut refusals = Vec::new();
        for bytes in self.store.refused()? {
            refusals.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        let body = AuditBody {
            alliance,
            node_name: self.config.name.clone(),
            exported_at_ms: now.timestamp_millis(),
            roster_ops: bundle.roster_ops,
            checkpoints: bundle.checkpoints,
            changes: bundle.changes,
            beacons: bundle.beacons,
            verifications: bundle.verifications,
            proposals: bundle.proposals,
            refusals,
        };
        let body = postcard::to_allocvec(&body).context("cannot encode the audit file")?;
        let signature = self.signer().sign(Domain::AuditExport, &body);
        let file = AuditFile {
            body,
            signer: self.public_key(),
            signature,
        };
        let mut out = AUDIT_MAGIC.to_vec();
        out.extend(postcard::to_allocvec(&file).context("cannot encode the audit file")?);
        Ok(out)
    }
}

/// The first bytes of every audit file.
pub const AUDIT_MAGIC: &[u8] = b"DMAUDIT1\n";

/// Bytes of items checked per batch by [`verify_export`], which bounds its memory.
const VERIFY_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// An audit file after its magic: the body's exact bytes and the exporting node's signature over them
/// under the `audit-export` domain.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditFile {
    pub body: Vec<u8>,
    pub signer: PublicKey,
    pub signature: Signature,
}

/// What an audit file holds (postcard).
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditBody {
    pub alliance: AllianceId,
    pub node_name: String,
    pub exported_at_ms: i64,
    /// Signed roster operations, the create operation first, parents before children.
    pub roster_ops: Vec<Vec<u8>>,
    /// Signed checkpoints of listing documents (each space's kept ones).
    pub checkpoints: Vec<Vec<u8>>,
    pub changes: Vec<Vec<u8>>,
    pub beacons: Vec<Vec<u8>>,
    pub verifications: Vec<Vec<u8>>,
    pub proposals: Vec<Vec<u8>>,
    /// The exporting node's refusal log, one JSON record each, oldest first.
    pub refusals: Vec<String>,
}

/// [`AuditFile`] read back without copying its body.
#[derive(Deserialize)]
struct AuditFileRef<'a> {
    #[serde(borrow)]
    body: &'a [u8],
    signer: PublicKey,
    signature: Signature,
}

/// [`AuditBody`] read back with its items borrowed from the file's bytes, so a large file is held once
/// (the items are copied out a batch at a time as they are checked). postcard writes a struct's fields
/// one after the other, so `items` reads the six item lists in place.
#[derive(Deserialize)]
struct AuditBodyRef<'a> {
    alliance: AllianceId,
    node_name: String,
    exported_at_ms: i64,
    #[serde(borrow)]
    items: BundleRef<'a>,
    refusals: Vec<String>,
}

/// How far [`verify_export_watched`] got: first the file's items taken in, then the spaces rebuilt (as
/// [`Node::audit_watched`] reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyProgress {
    Items { done: usize, items: usize },
    Spaces(AuditProgress),
}

/// Checks an audit file on a machine that never joined the alliance: every signature and authorisation
/// of every item is checked again by taking the items through the ingest path of a throwaway node over
/// `store` (which should be empty; the caller owns it), and the report is built exactly as the exporting
/// node builds its own, with the exporter's refusal log added as recorded.
pub fn verify_export(
    bytes: &[u8],
    store: Arc<dyn Store>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<AuditReport> {
    verify_export_watched(bytes, store, now, &mut |_| {})
}

/// [`verify_export`], telling `progress` how far it got.
pub fn verify_export_watched(
    bytes: &[u8],
    store: Arc<dyn Store>,
    now: chrono::DateTime<chrono::Utc>,
    progress: &mut dyn FnMut(VerifyProgress),
) -> anyhow::Result<AuditReport> {
    let Some(rest) = bytes.strip_prefix(AUDIT_MAGIC) else {
        bail!("this is not a deskmesh audit file (it does not start with DMAUDIT1); write one with `deskmesh audit export FILE`");
    };
    let file: AuditFileRef<'_> =
        postcard::from_bytes(rest).context("the audit file is damaged or cut short")?;
    let signature_ok = file
        .signer
        .verify(Domain::AuditExport, file.body, &file.signature)
        .is_ok();
    let body: AuditBodyRef<'_> =
        postcard::from_bytes(file.body).context("the audit file's contents are damaged")?;
    let Some(create) = body.items.roster_ops.first() else {
        bail!("the audit file holds no roster operations");
    };
    let create = SignedOp::from_bytes(create)
        .context("the audit file's first roster operation is unreadable")?;
    let roster = Roster::new(create.clone())
        .context("the audit file's first roster operation does not found an alliance")?;
    if roster.alliance_id() != body.alliance {
        bail!(
            "the audit file names alliance {} but its roster founds alliance {}",
            body.alliance,
            roster.alliance_id()
        );
    }
    let config = NodeConfig {
        name: "offline auditor".into(),
        listen_port: 0,
        location: None,
    };
    let mut node = Node::with_store(DeviceKey::generate(), config, store)?;
    node.adopt_roster(std::slice::from_ref(&create), &[])?;
    // An audit file is evidence: what the exporting node kept is judged by the rebuild, as it was there.
    node.keep_evidence = true;
    // In bounded batches, roster operations first, as a bundle is imported: the documents a batch touches
    // stay in memory until its index is written, and only one batch is copied out of the file at a time.
    let mut items = body.items;
    items.roster_ops.remove(0);
    let all = items.len();
    let mut done = 0;
    progress(VerifyProgress::Items { done, items: all });
    for batch in items.batches(VERIFY_BATCH_BYTES) {
        done += batch.len();
        let report = node.ingest_from(batch, Source::Bundle, At::now(), Some("file".into()));
        if let Some(e) = report.flush_error {
            bail!("{e}");
        }
        progress(VerifyProgress::Items { done, items: all });
    }
    for record in &body.refusals {
        // The exporter's refusals are evidence as recorded; unreadable ones are skipped.
        if serde_json::from_str::<RefusalRecord>(record).is_ok() {
            node.store.log_refused(record.as_bytes())?;
        }
    }
    let mut audit = node.audit_watched(now, &mut |p| progress(VerifyProgress::Spaces(p)))?;
    audit.source = AuditSource::File {
        node_name: body.node_name,
        exported_by: file.signer,
        exported_at_ms: body.exported_at_ms,
        signature_ok,
    };
    if !signature_ok {
        audit.findings.insert(
            0,
            Finding {
                status: FindingStatus::Unverifiable,
                kind: "audit file".into(),
                space: None,
                space_name: None,
                item: None,
                author: Some(KeyName::of(node.roster(), &file.signer)),
                peer: None,
                source: Some("file".into()),
                reason: "the exporting node's signature over the file does not verify; the items were checked one by one, but the refusal log may have been altered".into(),
                at_ms: None,
            },
        );
        audit.ok = false;
    }
    Ok(audit)
}

/// An item's id as people see it elsewhere: a listing change by its hex Automerge hash (as `space edit`
/// prints it), anything else in the base32 form of hashes.
fn item_text(kind: &str, id: &Hash) -> String {
    if kind == ItemKind::ListingChange.label() {
        hex(&id.0)
    } else {
        id.to_string()
    }
}

/// One line for people about a roster operation.
pub(crate) fn summarise(body: &OpBody, roster: &Roster) -> String {
    summarise_with(body, roster, &KeyNames::new(Some(roster.state())))
}

/// [`summarise`] with the keys' names indexed once, for many operations.
fn summarise_with(body: &OpBody, roster: &Roster, names: &KeyNames<'_>) -> String {
    use deskmesh_keys::roster::OpBody::*;
    let space_name = |s: &SpaceId| {
        roster
            .state()
            .spaces
            .get(s)
            .map(|e| format!("{:?} ({s})", e.name))
            .unwrap_or_else(|| s.to_string())
    };
    let key_name = |k: &PublicKey| names.of(k).label();
    match body {
        CreateAlliance {
            name,
            coordinators,
            threshold,
        } => format!(
            "created alliance {name:?} with {} coordinator(s), threshold {threshold}",
            coordinators.len()
        ),
        AdmitSpace {
            space,
            name,
            devices,
        } => {
            format!(
                "admitted space {name:?} ({space}) with device {}",
                devices.first().map(|d| d.to_string()).unwrap_or_default()
            )
        }
        AddDevice { space, device } => format!("added device {device} to {}", space_name(space)),
        RemoveDevice {
            space,
            device,
            keep,
        } => format!(
            "removed device {device} from {}, keeping its listing at {} head(s)",
            space_name(space),
            keep.len()
        ),
        RemoveDeviceV1 { space, device } => {
            format!("removed device {device} from {}", space_name(space))
        }
        RevokeSpace {
            space,
            reason,
            listed,
            ..
        } => format!(
            "revoked {}: {reason}{}",
            space_name(space),
            if *listed {
                " (stays listed, marked revoked)"
            } else {
                ""
            }
        ),
        RevokeSpaceV1 { space, reason } => format!("revoked {}: {reason}", space_name(space)),
        AddCoordinator { key } => format!("added {key} as a coordinator"),
        RemoveCoordinator { key } => format!("removed coordinator {}", key_name(key)),
        SetThreshold { threshold } => format!("set coordinator threshold to {threshold}"),
        SetPeerAddrs { space, addrs } => {
            format!(
                "{} offers {} peer address(es)",
                space_name(space),
                addrs.len()
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ingest::SignedItem;
    use crate::testkit::{self, now};
    use deskmesh_store::MemoryStore;

    /// A roster operation whose stored signature was altered behind the node's back is found by the
    /// check a daemon runs in the background at start: once it is in, the findings name the operation,
    /// as the audit (which checks again) does.
    #[test]
    fn an_altered_roster_signature_is_found_once_the_background_check_is_in() {
        use deskmesh_keys::DeviceKey;
        use deskmesh_store::{MetaStore, RosterStore};
        let mut coordinator = testkit::coordinator();
        testkit::space(&mut coordinator, "Riverside");
        let create = coordinator.alliance_id().unwrap().0;
        let ops = coordinator.store.ops().unwrap();
        let altered = ops.iter().map(|(h, _)| *h).find(|h| *h != create).unwrap();
        let store = Arc::new(MemoryStore::new());
        store
            .put_meta(
                crate::node::META_ALLIANCE,
                coordinator.alliance_id().unwrap().to_string().as_bytes(),
            )
            .unwrap();
        for (hash, mut bytes) in ops {
            if hash == altered {
                // The last byte is in the last signature.
                *bytes.last_mut().unwrap() ^= 1;
            }
            store.put_op(&hash, &bytes).unwrap();
        }
        let config = crate::home::NodeConfig {
            name: "reopened".into(),
            listen_port: 0,
            location: None,
        };
        let node = Node::with_store(DeviceKey::generate(), config, store).unwrap();
        node.check_roster_signatures_in_background();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !node.roster_check_done() {
            assert!(
                std::time::Instant::now() < deadline,
                "the background check never finished"
            );
            std::thread::yield_now();
        }
        // The background check's answer is what the findings use, not a check of their own.
        let (heads, faults) = node.roster_faults.borrow().clone().unwrap();
        assert_eq!(heads, node.roster().unwrap().heads());
        assert_eq!(
            faults.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            vec![altered]
        );
        let is_fault = |f: &Finding| {
            f.item.as_deref() == Some(altered.to_string().as_str())
                && f.reason.contains("altered outside deskmesh")
        };
        let findings = node.findings().unwrap();
        assert_eq!(
            findings.iter().filter(|f| is_fault(f)).count(),
            1,
            "{findings:?}"
        );
        let audit = node.audit(now()).unwrap();
        assert!(!audit.ok);
        assert!(audit.findings.iter().any(is_fault), "{:?}", audit.findings);
    }

    #[test]
    fn a_reader_audits_on_another_thread_as_its_node_does_and_writes_nothing() {
        let mut coordinator = testkit::coordinator();
        let (space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        // The index of the space lost (as if a write never landed): an audit rewrites it, a reader's
        // does not.
        space
            .store
            .replace_space_state(&id, None, &[], None, None)
            .unwrap();
        assert!(space.store.doc_state(&id).unwrap().is_none());
        let at = now();
        let reader = space.reader();
        let by_reader = std::thread::spawn(move || reader.audit(at).unwrap())
            .join()
            .unwrap();
        assert!(
            space.store.doc_state(&id).unwrap().is_none(),
            "the reader wrote"
        );
        let by_node = space.audit(at).unwrap();
        assert!(by_node.ok, "{by_node:?}");
        assert_eq!(by_reader, by_node);
        assert_eq!(by_reader.listings[0].changes_accepted, 1);
        assert!(space.store.doc_state(&id).unwrap().is_some());
    }

    #[test]
    fn an_audit_says_how_far_it_got_space_by_space() {
        let mut coordinator = testkit::coordinator();
        let mut spaces = Vec::new();
        for name in ["Riverside", "Harbour", "Quayside"] {
            let (mut s, _) = testkit::listed_space(&mut coordinator, name);
            spaces.extend(s.take_made().into_iter().map(|m| m.item));
        }
        coordinator.ingest(
            spaces,
            crate::ingest::Source::Mesh,
            crate::ingest::At::now(),
        );
        let mut seen = Vec::new();
        let report = coordinator
            .audit_watched(now(), &mut |p| seen.push((p.spaces_done, p.spaces)))
            .unwrap();
        assert_eq!(report.listings.len(), 3);
        assert_eq!(seen, vec![(0, 3), (1, 3), (2, 3), (3, 3)]);
        assert_eq!(report, coordinator.audit(now()).unwrap());
    }

    #[test]
    fn a_clean_store_passes_and_a_refused_item_fails_the_audit() {
        let mut coordinator = testkit::coordinator();
        let (mut space, _) = testkit::listed_space(&mut coordinator, "Riverside");
        let audit = space.audit(now()).unwrap();
        assert!(audit.ok, "{audit:?}");
        assert_eq!(audit.roster.len(), 2);
        assert_eq!(audit.listings.len(), 1);
        assert_eq!(
            audit.listings[0].signers[0].key.key,
            testkit::key_of(&space)
        );
        assert_eq!(audit.listings[0].signers[0].key.name, "device of Riverside");
        assert_eq!(audit.listings[0].name.as_deref(), Some("Riverside"));

        space.ingest_from(
            vec![SignedItem::new(ItemKind::SeatBeacon, vec![9; 20])],
            Source::Mesh,
            At::now(),
            Some("12D3KooWpeer".into()),
        );
        let audit = space.audit(now()).unwrap();
        assert!(!audit.ok);
        assert_eq!(audit.findings.len(), 1);
        let f = &audit.findings[0];
        assert_eq!(
            (f.status, f.kind.as_str()),
            (FindingStatus::Refused, "seat beacon")
        );
        assert_eq!(f.peer.as_deref(), Some("12D3KooWpeer"));
        assert_eq!(f.source.as_deref(), Some("mesh"));
        assert!(f.item.is_some());
        // The live view's findings are the audit's, item for item.
        assert_eq!(space.findings().unwrap(), audit.findings);
    }

    #[test]
    fn an_exported_audit_verifies_offline_with_the_same_report() {
        let mut coordinator = testkit::coordinator();
        let (space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        coordinator
            .import_items(space.bundle().unwrap().batches(usize::MAX).remove(0))
            .unwrap();
        coordinator
            .verify_facts(&id, &["accessibility".into()], None, "", now())
            .unwrap();
        // Something refused, for the report to carry.
        coordinator
            .import_items(vec![SignedItem::new(ItemKind::ListingChange, vec![1; 40])])
            .unwrap();
        let here = coordinator.audit(now()).unwrap();
        let file = coordinator.audit_export(now()).unwrap();
        let offline = verify_export(&file, Arc::new(MemoryStore::new()), now()).unwrap();
        assert!(matches!(
            offline.source,
            AuditSource::File {
                signature_ok: true,
                ..
            }
        ));
        assert_eq!(offline.roster, here.roster);
        assert_eq!(offline.listings, here.listings);
        assert_eq!(offline.verifications, here.verifications);
        assert_eq!(offline.findings, here.findings);
        assert_eq!(offline.ok, here.ok);

        // A tampered byte is caught: the file's signature, or the item it lands in.
        let mut bad = file.clone();
        let n = bad.len() - 80;
        bad[n] ^= 1;
        match verify_export(&bad, Arc::new(MemoryStore::new()), now()) {
            Ok(report) => assert!(!report.ok, "{report:?}"),
            Err(e) => assert!(e.to_string().contains("damaged"), "{e}"),
        }
        let err = verify_export(b"hello", Arc::new(MemoryStore::new()), now()).unwrap_err();
        assert!(
            err.to_string().contains("not a deskmesh audit file"),
            "{err}"
        );
    }
}
