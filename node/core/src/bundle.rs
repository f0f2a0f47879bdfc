//! Bundles: every signed item a node holds, in one file, for offline exchange (a USB stick, an email) and
//! for tests that feed a node items it did not sign itself.
//!
//! A bundle is `DMBUNDLE2\n` followed by the postcard encoding of [`Bundle`]: the exact signed bytes of
//! roster operations (in causal order), checkpoints, listing changes, seat beacons, then coordinators'
//! verifications and proposed coordinator changes. A `DMBUNDLE2` body that ends after the beacons (as
//! bundles were written before verifications and proposals) reads as having none of those; bundles of the
//! first format (`DMBUNDLE1\n`: roster operations, changes, beacons) are still read. Importing one takes
//! every item
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
/// The first bytes of a bundle of the first format, which had no checkpoints, verifications or proposals.
pub const MAGIC_V1: &[u8] = b"DMBUNDLE1\n";
/// The most bytes a bundle file may have.
pub const MAX_BUNDLE_FILE: u64 = 512 * 1024 * 1024;

/// The signed items of a bundle, as exact bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Bundle {
    pub roster_ops: Vec<Vec<u8>>,
    pub checkpoints: Vec<Vec<u8>>,
    pub changes: Vec<Vec<u8>>,
    pub beacons: Vec<Vec<u8>>,
    pub verifications: Vec<Vec<u8>>,
    pub proposals: Vec<Vec<u8>>,
}

impl Bundle {
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).context("cannot encode the bundle")?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let items = BundleRef::decode(bytes)?;
        let own = |v: Vec<&[u8]>| v.into_iter().map(<[u8]>::to_vec).collect();
        Ok(Self {
            roster_ops: own(items.roster_ops),
            checkpoints: own(items.checkpoints),
            changes: own(items.changes),
            beacons: own(items.beacons),
            verifications: own(items.verifications),
            proposals: own(items.proposals),
        })
    }

    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V1)
    }

    /// How many items the bundle holds.
    pub fn len(&self) -> usize {
        self.roster_ops.len()
            + self.checkpoints.len()
            + self.changes.len()
            + self.beacons.len()
            + self.verifications.len()
            + self.proposals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items in batches of about `max_bytes`: every roster operation before any checkpoint, change or
    /// beacon, so each batch finds the operations that authorise it already applied, and checkpoints
    /// before the changes that come after them.
    pub fn batches(&self, max_bytes: usize) -> Vec<Vec<SignedItem>> {
        self.borrowed().batches(max_bytes).collect()
    }

    /// The same items, borrowed, in the same order.
    fn borrowed(&self) -> BundleRef<'_> {
        fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
            v.iter().map(Vec::as_slice).collect()
        }
        BundleRef {
            roster_ops: refs(&self.roster_ops),
            checkpoints: refs(&self.checkpoints),
            changes: refs(&self.changes),
            beacons: refs(&self.beacons),
            verifications: refs(&self.verifications),
            proposals: refs(&self.proposals),
        }
    }
}

/// A bundle's items borrowed from the file's bytes, so a large bundle is not held twice in memory: a
/// client copies one batch at a time out of it ([`BundleRef::batches`]).
#[derive(Debug, Default, Deserialize)]
pub struct BundleRef<'a> {
    #[serde(borrow)]
    pub roster_ops: Vec<&'a [u8]>,
    #[serde(borrow)]
    pub checkpoints: Vec<&'a [u8]>,
    #[serde(borrow)]
    pub changes: Vec<&'a [u8]>,
    #[serde(borrow)]
    pub beacons: Vec<&'a [u8]>,
    #[serde(borrow)]
    pub verifications: Vec<&'a [u8]>,
    #[serde(borrow)]
    pub proposals: Vec<&'a [u8]>,
}

/// The items every `DMBUNDLE2` body starts with, borrowed.
#[derive(Deserialize)]
struct BundleRefHead<'a> {
    #[serde(borrow)]
    roster_ops: Vec<&'a [u8]>,
    #[serde(borrow)]
    checkpoints: Vec<&'a [u8]>,
    #[serde(borrow)]
    changes: Vec<&'a [u8]>,
    #[serde(borrow)]
    beacons: Vec<&'a [u8]>,
}

/// What follows the beacons in a `DMBUNDLE2` body, when anything does, borrowed.
#[derive(Deserialize)]
struct BundleRefTail<'a> {
    #[serde(borrow)]
    verifications: Vec<&'a [u8]>,
    #[serde(borrow)]
    proposals: Vec<&'a [u8]>,
}

/// The first format's items, borrowed.
#[derive(Deserialize)]
struct BundleRefV1<'a> {
    #[serde(borrow)]
    roster_ops: Vec<&'a [u8]>,
    #[serde(borrow)]
    changes: Vec<&'a [u8]>,
    #[serde(borrow)]
    beacons: Vec<&'a [u8]>,
}

/// Reads one postcard value that must fill `body` exactly.
fn take_all<'a, T: Deserialize<'a>>(body: &'a [u8]) -> anyhow::Result<T> {
    let (items, rest): (T, &[u8]) =
        postcard::take_from_bytes(body).context("the bundle is damaged or cut short")?;
    if !rest.is_empty() {
        bail!(
            "the bundle is damaged: {} bytes follow its last item",
            rest.len()
        );
    }
    Ok(items)
}

impl<'a> BundleRef<'a> {
    /// Reads a bundle file's bytes (either format), refusing anything after the items.
    pub fn decode(bytes: &'a [u8]) -> anyhow::Result<Self> {
        if let Some(body) = bytes.strip_prefix(MAGIC_V1) {
            let v1: BundleRefV1 = take_all(body)?;
            return Ok(Self {
                roster_ops: v1.roster_ops,
                changes: v1.changes,
                beacons: v1.beacons,
                ..Self::default()
            });
        }
        let body = bytes
            .strip_prefix(MAGIC)
            .context("this is not a deskmesh bundle (it does not start with DMBUNDLE2)")?;
        let (head, rest): (BundleRefHead, &[u8]) =
            postcard::take_from_bytes(body).context("the bundle is damaged or cut short")?;
        // A body that ends after the beacons was written before verifications and proposals.
        let tail = if rest.is_empty() {
            BundleRefTail {
                verifications: Vec::new(),
                proposals: Vec::new(),
            }
        } else {
            take_all(rest)?
        };
        Ok(Self {
            roster_ops: head.roster_ops,
            checkpoints: head.checkpoints,
            changes: head.changes,
            beacons: head.beacons,
            verifications: tail.verifications,
            proposals: tail.proposals,
        })
    }

    /// How many items the bundle holds.
    pub fn len(&self) -> usize {
        self.roster_ops.len()
            + self.checkpoints.len()
            + self.changes.len()
            + self.beacons.len()
            + self.verifications.len()
            + self.proposals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items in batches of about `max_bytes`, each copied out when it is reached, roster operations
    /// first (as [`Bundle::batches`]).
    pub fn batches(&self, max_bytes: usize) -> impl Iterator<Item = Vec<SignedItem>> + '_ {
        let mut items = self
            .roster_ops
            .iter()
            .map(|b| (ItemKind::RosterOp, *b))
            .chain(self.checkpoints.iter().map(|b| (ItemKind::Checkpoint, *b)))
            .chain(self.changes.iter().map(|b| (ItemKind::ListingChange, *b)))
            .chain(self.beacons.iter().map(|b| (ItemKind::SeatBeacon, *b)))
            .chain(
                self.verifications
                    .iter()
                    .map(|b| (ItemKind::Verification, *b)),
            )
            .chain(self.proposals.iter().map(|b| (ItemKind::Proposal, *b)))
            .peekable();
        std::iter::from_fn(move || {
            let mut batch = Vec::new();
            let mut size = 0usize;
            while let Some((_, bytes)) = items.peek() {
                if !batch.is_empty() && size + bytes.len() > max_bytes {
                    break;
                }
                let (kind, bytes) = items.next()?;
                size += bytes.len();
                batch.push(SignedItem::new(kind, bytes.to_vec()));
            }
            (!batch.is_empty()).then_some(batch)
        })
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
    #[serde(default)]
    pub checkpoints_new: usize,
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
        self.checkpoints_new += other.checkpoints_new;
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
        b.checkpoints = self
            .store
            .checkpoints()?
            .into_iter()
            .map(|(_, _, bytes)| bytes)
            .collect();
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
                    ItemKind::Checkpoint => report.checkpoints_new += 1,
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

    /// A `DMBUNDLE2` body that ends after the beacons (written before verifications and proposals) reads
    /// as having none; one with them reads them back, and bytes after them are refused.
    #[test]
    fn a_second_format_bundle_without_verifications_is_still_read() {
        #[derive(Serialize)]
        struct Head {
            roster_ops: Vec<Vec<u8>>,
            checkpoints: Vec<Vec<u8>>,
            changes: Vec<Vec<u8>>,
            beacons: Vec<Vec<u8>>,
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend(
            postcard::to_allocvec(&Head {
                roster_ops: vec![vec![1]],
                checkpoints: vec![vec![4]],
                changes: vec![vec![2], vec![3]],
                beacons: vec![],
            })
            .unwrap(),
        );
        let b = Bundle::decode(&bytes).unwrap();
        assert_eq!(
            (b.checkpoints.len(), b.verifications.len(), b.len()),
            (1, 0, 4)
        );

        let full = Bundle {
            roster_ops: vec![vec![1]],
            verifications: vec![vec![5]],
            proposals: vec![vec![6], vec![7]],
            ..Bundle::default()
        }
        .encode()
        .unwrap();
        let b = Bundle::decode(&full).unwrap();
        assert_eq!((b.verifications, b.proposals.len()), (vec![vec![5]], 2));
        let mut trailing = full.clone();
        trailing.push(0);
        assert!(Bundle::decode(&trailing).is_err());
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
