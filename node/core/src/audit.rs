//! `deskmesh audit`: verify every stored signature again and explain who signed what.
//!
//! The audit re-reads the source of truth (signed roster operations, signed listing changes, signed seat
//! beacons), verifies every signature, rebuilds each listing from scratch, and reports per listing its
//! signers with the roster operation that authorised each, and every rejected change or beacon with its
//! reason. It changes nothing but the rebuildable index.

use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_keys::roster::SignedOp;
use deskmesh_keys::{AllianceId, Hash, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::node::{hex, IndexEntry, Node, RefusalRecord, RejectionRecord, SignerInfo};

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
    pub signers: Vec<SignerInfo>,
    pub rejected: Vec<RejectedChangeAudit>,
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
        let mut spaces = self.store.spaces()?;
        for (space, _, _) in self.store.rejected_changes()? {
            if !spaces.contains(&space) {
                spaces.push(space);
            }
        }
        spaces.sort();
        for space in spaces {
            let changes_accepted = self.reindex(&space)?;
            let entry = self.store.entry(&space)?;
            let (name, signers) = match entry {
                Some(bytes) => {
                    let e: IndexEntry = serde_json::from_slice(&bytes)?;
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
            for (hash, reason) in self.store.space_rejections(&space)? {
                let r: RejectionRecord = serde_json::from_slice(&reason)?;
                rejected.push(RejectedChangeAudit {
                    change: hex(&hash),
                    author: r.author,
                    reason: r.reason,
                });
            }
            ok &= rejected.is_empty();
            listings.push(ListingAudit {
                space: space.clone(),
                name,
                changes_stored: self.store.change_hashes(&space)?.len(),
                changes_accepted,
                signers,
                rejected,
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
