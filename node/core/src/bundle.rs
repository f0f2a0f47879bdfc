//! Bundles: every signed item a node holds, in one file, for offline exchange (a USB stick, an email) and
//! for tests that feed a node items it did not sign itself.
//!
//! A bundle is `DMBUNDLE2\n` followed by the postcard encoding of [`Bundle`]: the exact signed bytes of
//! roster operations (in causal order), listing changes, seat beacons, coordinators' verifications and
//! proposed coordinator changes. Bundles of the first format (`DMBUNDLE1\n`, without the last two) are
//! still read. Importing one takes every item
//! through [`Node::ingest`], exactly as items from the mesh: whatever does not verify, or whose author the
//! roster does not authorise, is refused, logged for the audit and not stored. A client that reads a
//! bundle file hands it to the node in [`Bundle::batches`], so a large bundle crosses a control socket in
//! bounded requests and its progress can be shown.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::ingest::{At, ItemKind, SignedItem, Source, Verdict};
use crate::node::Node;

/// The first bytes of every bundle file this build writes.
pub const MAGIC: &[u8] = b"DMBUNDLE2\n";
/// The first bytes of a bundle of the first format (roster operations, changes and beacons only).
pub const MAGIC_V1: &[u8] = b"DMBUNDLE1\n";
/// The most bytes a bundle file may have.
pub const MAX_BUNDLE_FILE: u64 = 512 * 1024 * 1024;

/// The signed items of a bundle, as exact bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Bundle {
    pub roster_ops: Vec<Vec<u8>>,
    pub changes: Vec<Vec<u8>>,
    pub beacons: Vec<Vec<u8>>,
    pub verifications: Vec<Vec<u8>>,
    pub proposals: Vec<Vec<u8>>,
}

/// The first bundle format.
#[derive(Debug, Deserialize)]
struct BundleV1 {
    roster_ops: Vec<Vec<u8>>,
    changes: Vec<Vec<u8>>,
    beacons: Vec<Vec<u8>>,
}

impl Bundle {
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).context("cannot encode the bundle")?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        if let Some(body) = bytes.strip_prefix(MAGIC_V1) {
            let v1: BundleV1 =
                postcard::from_bytes(body).context("the bundle is damaged or cut short")?;
            return Ok(Bundle {
                roster_ops: v1.roster_ops,
                changes: v1.changes,
                beacons: v1.beacons,
                ..Bundle::default()
            });
        }
        let body = bytes
            .strip_prefix(MAGIC)
            .context("this is not a deskmesh bundle (it does not start with DMBUNDLE2)")?;
        postcard::from_bytes(body).context("the bundle is damaged or cut short")
    }

    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V1)
    }

    /// How many items the bundle holds.
    pub fn len(&self) -> usize {
        self.roster_ops.len()
            + self.changes.len()
            + self.beacons.len()
            + self.verifications.len()
            + self.proposals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items in batches of about `max_bytes`: every roster operation before any change or beacon, so
    /// each batch finds the operations that authorise it already applied.
    pub fn batches(self, max_bytes: usize) -> Vec<Vec<SignedItem>> {
        let items = self
            .roster_ops
            .into_iter()
            .map(|b| SignedItem::new(ItemKind::RosterOp, b))
            .chain(
                self.changes
                    .into_iter()
                    .map(|b| SignedItem::new(ItemKind::ListingChange, b)),
            )
            .chain(
                self.beacons
                    .into_iter()
                    .map(|b| SignedItem::new(ItemKind::SeatBeacon, b)),
            )
            .chain(
                self.verifications
                    .into_iter()
                    .map(|b| SignedItem::new(ItemKind::Verification, b)),
            )
            .chain(
                self.proposals
                    .into_iter()
                    .map(|b| SignedItem::new(ItemKind::Proposal, b)),
            );
        let mut out: Vec<Vec<SignedItem>> = Vec::new();
        let mut size = 0usize;
        for item in items {
            let len = item.bytes.0.len();
            match out.last_mut() {
                Some(batch) if size + len <= max_bytes || batch.is_empty() => {
                    size += len;
                    batch.push(item);
                }
                _ => {
                    size = len;
                    out.push(vec![item]);
                }
            }
        }
        out
    }
}

/// One space's changes in the order they were made (by their envelopes' times, then bytes), so whoever
/// applies them in turn rarely meets a change before its dependencies.
pub fn in_authoring_order(mut changes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let at = |bytes: &[u8]| {
        deskmesh_crdt_model::change::SignedChange::from_bytes(bytes)
            .and_then(|c| c.envelope())
            .map_or(i64::MAX, |e| e.created_at_ms)
    };
    // Stable: changes made in the same millisecond keep the store's (hash) order.
    changes.sort_by_cached_key(|b| at(b));
    changes
}

/// What importing (part of) a bundle did.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleReport {
    pub roster_ops_new: usize,
    pub changes_new: usize,
    pub beacons_taken: usize,
    #[serde(default)]
    pub verifications_new: usize,
    /// Proposals kept or completed (a completed one counts as a new roster operation instead).
    #[serde(default)]
    pub proposals_new: usize,
    /// Items already held (or, for beacons, older than the one held).
    pub known: usize,
    /// One sentence per refused item.
    pub refused: Vec<String>,
}

impl BundleReport {
    /// Adds another batch's report to this one.
    pub fn merge(&mut self, other: BundleReport) {
        self.roster_ops_new += other.roster_ops_new;
        self.changes_new += other.changes_new;
        self.beacons_taken += other.beacons_taken;
        self.verifications_new += other.verifications_new;
        self.proposals_new += other.proposals_new;
        self.known += other.known;
        self.refused.extend(other.refused);
    }
}

impl Node {
    /// Every signed item in the store.
    pub fn bundle(&self) -> anyhow::Result<Bundle> {
        let mut b = Bundle::default();
        if let Some(roster) = self.roster() {
            for (_, _, op) in roster.ops_in_order() {
                b.roster_ops.push(op.to_bytes());
            }
        }
        for space in self.store.spaces()? {
            b.changes
                .extend(in_authoring_order(self.store.changes(&space)?));
        }
        b.beacons = self
            .store
            .beacons()?
            .into_iter()
            .map(|(_, _, bytes)| bytes)
            .collect();
        b.verifications = self
            .store
            .verifications()?
            .into_iter()
            .map(|(_, _, bytes)| bytes)
            .collect();
        b.proposals = self
            .store
            .proposals()?
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        Ok(b)
    }

    /// Takes items from a bundle through the ingest path every source shares.
    pub fn import_items(&mut self, items: Vec<SignedItem>) -> anyhow::Result<BundleReport> {
        if self.roster().is_none() {
            bail!("join an alliance (`deskmesh alliance join TOKEN`) before importing a bundle");
        }
        let ingested = self.ingest(items, Source::Bundle, At::now());
        if let Some(e) = ingested.flush_error {
            bail!("{e}");
        }
        let mut report = BundleReport::default();
        for o in ingested.outcomes {
            match o.verdict {
                // A proposal completed by this bundle is counted as the roster operation it became.
                Verdict::Added(a) => match a.kind {
                    ItemKind::RosterOp => report.roster_ops_new += 1,
                    ItemKind::ListingChange => report.changes_new += 1,
                    ItemKind::SeatBeacon => report.beacons_taken += 1,
                    ItemKind::Verification => report.verifications_new += 1,
                    ItemKind::Proposal => report.proposals_new += 1,
                },
                Verdict::Known | Verdict::Superseded => report.known += 1,
                Verdict::Refused(why) => report.refused.push(format!("{}: {why}", o.kind.label())),
                Verdict::Waiting => report.refused.push(format!(
                    "{}: still waiting for its roster operations",
                    o.kind.label()
                )),
                Verdict::Failed(e) => bail!("{e}"),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use deskmesh_crdt_model::beacon::Availability;

    use super::*;
    use crate::testkit;

    #[test]
    fn a_bundle_carries_a_space_to_a_member_and_importing_it_twice_adds_nothing() {
        let mut coordinator = testkit::coordinator();
        let (mut space, _) = testkit::listed_space(&mut coordinator, "Riverside");
        space
            .seats_set(None, Availability::Count(3), 900, chrono::Utc::now())
            .unwrap();

        let bytes = space.bundle().unwrap().encode().unwrap();
        assert!(Bundle::is_bundle(&bytes));
        let bundle = Bundle::decode(&bytes).unwrap();
        assert_eq!(bundle.len(), 4, "create, admission, change, beacon");

        let mut member = testkit::node("member");
        member
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        let mut report = BundleReport::default();
        // Tiny batches: every roster operation comes before what it authorises, batch after batch.
        for batch in Bundle::decode(&bytes).unwrap().batches(1) {
            report.merge(member.import_items(batch).unwrap());
        }
        assert_eq!(
            (
                report.roster_ops_new,
                report.changes_new,
                report.beacons_taken
            ),
            (1, 1, 1),
            "{report:?}"
        );
        assert!(report.refused.is_empty(), "{report:?}");
        assert_eq!(member.entries().unwrap().len(), 1);
        assert_eq!(member.take_made().len(), 3, "imported items are announced");

        let again = member
            .import_items(bundle.batches(usize::MAX).remove(0))
            .unwrap();
        assert_eq!(again.known, 4);
        assert_eq!(again.changes_new, 0);
    }

    #[test]
    fn a_first_format_bundle_is_still_read() {
        #[derive(Serialize)]
        struct V1 {
            roster_ops: Vec<Vec<u8>>,
            changes: Vec<Vec<u8>>,
            beacons: Vec<Vec<u8>>,
        }
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend(
            postcard::to_allocvec(&V1 {
                roster_ops: vec![vec![1]],
                changes: vec![vec![2], vec![3]],
                beacons: vec![],
            })
            .unwrap(),
        );
        assert!(Bundle::is_bundle(&bytes));
        let b = Bundle::decode(&bytes).unwrap();
        assert_eq!((b.roster_ops.len(), b.changes.len(), b.len()), (1, 2, 3));
    }

    #[test]
    fn damaged_bundles_and_items_are_refused_with_a_reason() {
        assert!(Bundle::decode(b"not a bundle").is_err());
        let mut cut = Bundle {
            roster_ops: vec![vec![1; 40]],
            ..Bundle::default()
        }
        .encode()
        .unwrap();
        cut.truncate(cut.len() - 5);
        let err = Bundle::decode(&cut).unwrap_err();
        assert!(err.to_string().contains("damaged or cut short"), "{err}");

        let mut coordinator = testkit::coordinator();
        let report = coordinator
            .import_items(vec![
                SignedItem::new(ItemKind::ListingChange, vec![7; 30]),
                SignedItem::new(ItemKind::SeatBeacon, vec![8; 30]),
            ])
            .unwrap();
        assert_eq!(report.refused.len(), 2, "{report:?}");
        assert!(report.refused[0].starts_with("listing change: "));
        assert_eq!(coordinator.refusals().unwrap().len(), 2);

        let mut stranger = testkit::node("stranger");
        let err = stranger.import_items(Vec::new()).unwrap_err();
        assert!(err.to_string().contains("join an alliance"), "{err}");
    }
}
