//! `deskmesh audit`: verify every stored signature again and explain who signed what.
//!
//! The audit re-reads the source of truth (signed roster operations, signed listing changes, signed seat
//! beacons), verifies every signature, rebuilds each listing from scratch, and reports per listing its
//! signers with the roster operation that authorised each, and every rejected change or beacon with its
//! reason. It changes nothing but the rebuildable index, and only when the store takes the write: on a
//! full disk it still reports.
//!
//! It tells apart what is wrong from what is merely incomplete: a change that names roster operations
//! or earlier changes this node does not hold yet is *waiting* (listed, but the audit still passes: a
//! sync brings what it needs), while a change or item that is invalid or unauthorised is *refused* and
//! fails the audit.

use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_keys::roster::SignedOp;
use deskmesh_keys::{AllianceId, Hash, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::node::{hex, IndexEntry, Node, RefusalRecord, SignerInfo};

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub alliance: Option<AllianceId>,
    pub roster: Vec<RosterOpAudit>,
    pub rejected_roster_ops: Vec<RejectedOp>,
    pub listings: Vec<ListingAudit>,
    pub beacons_verified: usize,
    pub beacons_failed: Vec<String>,
    /// Signed items refused at the door (bad signature, not authorised): never stored, only logged.
    pub refused: Vec<RefusalRecord>,
    /// Stored changes that wait for roster operations or earlier changes not held yet (all listings).
    #[serde(default)]
    pub waiting: usize,
    /// Nothing refused, rejected or unverifiable (items that only wait do not count).
    pub ok: bool,
}

/// One roster operation, in causal order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterOpAudit {
    pub op: Hash,
    pub kind: String,
    pub summary: String,
    pub author: PublicKey,
    pub signed_by: Vec<PublicKey>,
    pub parents: Vec<Hash>,
    pub created_at_ms: i64,
}

/// A roster operation that was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedOp {
    pub op: Hash,
    pub reason: String,
}

/// One listing: who signed it under which roster operation, and what was excluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingAudit {
    pub space: SpaceId,
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
    pub signers: Vec<SignerInfo>,
    pub rejected: Vec<RejectedChangeAudit>,
    /// Changes not applied yet because they wait for something this node does not hold yet.
    #[serde(default)]
    pub waiting: Vec<RejectedChangeAudit>,
}

/// A kept checkpoint: who signed it, when, and how many changes it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointAudit {
    pub id: Hash,
    pub author: PublicKey,
    pub changes: u32,
    pub created_at_ms: i64,
}

/// A stored change (or beacon) that does not count, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedChangeAudit {
    pub change: String,
    pub author: Option<PublicKey>,
    pub reason: String,
}

impl Node {
    /// Every roster operation in causal order, with a one-line summary and its signers.
    pub fn roster_log(&self) -> Vec<RosterOpAudit> {
        let mut out = Vec::new();
        if let Some(roster) = self.roster() {
            for (hash, op, signed) in roster.ops_in_order() {
                out.push(RosterOpAudit {
                    op: hash,
                    kind: op.body.kind().to_string(),
                    summary: summarise(&op.body, roster),
                    author: op.author,
                    signed_by: signed.signers(),
                    parents: op.parents.clone(),
                    created_at_ms: op.created_at_ms,
                });
            }
        }
        out
    }

    /// Verifies everything stored and reports signers and rejections.
    pub fn audit(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<AuditReport> {
        let roster_ops = self.roster_log();
        let mut rejected_roster_ops: Vec<RejectedOp> = self
            .store
            .rejected_ops()?
            .into_iter()
            .map(|(op, _, reason)| RejectedOp { op, reason })
            .collect();
        // Stored ops the roster could not take (e.g. missing parents) are rejections too.
        if let Some(roster) = self.roster() {
            // The roster was loaded without checking signatures (they were checked before each
            // operation was stored); the audit checks every one again.
            for (op, why) in roster.unverified_signatures() {
                rejected_roster_ops.push(RejectedOp {
                    op,
                    reason: format!("its stored signatures do not verify ({why}); the store was altered outside deskmesh"),
                });
            }
            for (hash, bytes) in self.store.ops()? {
                if !roster.contains(&hash) {
                    let reason = match SignedOp::from_bytes(&bytes) {
                        Ok(_) => {
                            "stored but not applicable (missing parents or unauthorised)".into()
                        }
                        Err(e) => e.to_string(),
                    };
                    rejected_roster_ops.push(RejectedOp { op: hash, reason });
                }
            }
        }

        let mut listings = Vec::new();
        let mut ok = rejected_roster_ops.is_empty();
        let mut spaces = self.listed_spaces()?;
        for (space, _, _) in self.store.rejected_changes()? {
            if !spaces.contains(&space) {
                spaces.push(space);
            }
        }

        spaces.sort();
        let mut waiting_total = 0;
        for space in spaces {
            // Every change verified again from the store; the index is rewritten when the store takes it.
            let changes_accepted = self.rebuild(&space)?;
            self.try_write_index(&space);
            let Some(rows) = self.index_rows(&space)? else {
                continue;
            };
            let (name, signers) = match &rows.listing {
                Some(bytes) => {
                    let e: IndexEntry = serde_json::from_slice(bytes)?;
                    let name = e
                        .listing
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(String::from);
                    (name, e.signers)
                }
                None => (None, Vec::new()),
            };
            let mut rejected = Vec::new();
            let mut waiting = Vec::new();
            for (hash, r) in &rows.rejected {
                let item = RejectedChangeAudit {
                    change: hex(hash),
                    author: r.author,
                    reason: r.reason.clone(),
                };
                if r.is_waiting() {
                    waiting.push(item);
                } else {
                    rejected.push(item);
                }
            }
            let mut checkpoints = Vec::new();
            for (id, bytes) in self.store.space_checkpoints(&space)? {
                let header = deskmesh_crdt_model::checkpoint::SignedCheckpoint::from_bytes(&bytes)
                    .and_then(|c| c.verify());
                match header {
                    Ok(h) => checkpoints.push(CheckpointAudit {
                        id,
                        author: h.author,
                        changes: h.changes,
                        created_at_ms: h.created_at_ms,
                    }),
                    Err(e) => rejected.push(RejectedChangeAudit {
                        change: id.to_string(),
                        author: None,
                        reason: format!("stored checkpoint: {e}"),
                    }),
                }
            }
            ok &= rejected.is_empty();
            waiting_total += waiting.len();
            listings.push(ListingAudit {
                space: space.clone(),
                name,
                changes_stored: self.store.change_hashes(&space)?.len(),
                changes_accepted,
                changes_vouched: self.vouched(&space),
                checkpoints,
                signers,
                rejected,
                waiting,
            });
        }

        let mut beacons_verified = 0;
        let mut beacons_failed = Vec::new();
        for (space, pool, bytes) in self.store.beacons()? {
            // Expired beacons still verify: `verify` checks the signature and refuses only the future.
            match SignedBeacon::from_bytes(&bytes).and_then(|b| b.verify(now.timestamp_millis())) {
                Ok(_) => beacons_verified += 1,
                Err(e) => beacons_failed.push(format!("{space} pool {pool}: {e}")),
            }
        }
        ok &= beacons_failed.is_empty();
        let refused = self.refusals()?;
        ok &= refused.is_empty();
        Ok(AuditReport {
            refused,
            alliance: self.alliance_id(),
            roster: roster_ops,
            rejected_roster_ops,
            listings,
            beacons_verified,
            beacons_failed,
            waiting: waiting_total,
            ok,
        })
    }
}

fn summarise(body: &deskmesh_keys::roster::OpBody, roster: &deskmesh_keys::Roster) -> String {
    use deskmesh_keys::roster::OpBody::*;
    let space_name = |s: &SpaceId| {
        roster
            .state()
            .spaces
            .get(s)
            .map(|e| format!("{:?} ({s})", e.name))
            .unwrap_or_else(|| s.to_string())
    };
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
        RemoveDevice { space, device } => {
            format!("removed device {device} from {}", space_name(space))
        }
        RevokeSpace { space, reason } => format!("revoked {}: {reason}", space_name(space)),
        AddCoordinator { key } => format!("added coordinator {key}"),
        RemoveCoordinator { key } => format!("removed coordinator {key}"),
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
    use crate::ingest::{At, ItemKind, SignedItem, Source};
    use crate::testkit::{self, now};

    #[test]
    fn a_clean_store_passes_and_a_refused_item_fails_the_audit() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), now())
            .unwrap();
        let audit = space.audit(now()).unwrap();
        assert!(audit.ok, "{audit:?}");
        assert_eq!(audit.roster.len(), 2);
        assert_eq!(audit.listings.len(), 1);
        assert_eq!(audit.listings[0].signers[0].key, testkit::key_of(&space));
        assert_eq!(audit.listings[0].name.as_deref(), Some("Riverside"));

        space.ingest(
            vec![SignedItem::new(ItemKind::SeatBeacon, vec![9; 20])],
            Source::Mesh,
            At::now(),
        );
        let audit = space.audit(now()).unwrap();
        assert!(!audit.ok);
        assert_eq!(audit.refused.len(), 1);
        assert_eq!(audit.refused[0].kind, "seat beacon");
    }
}
