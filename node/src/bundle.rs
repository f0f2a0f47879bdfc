//! Bundles: every signed item a node holds, in one file, for offline exchange (a USB stick, an email) and
//! for tests that feed a node items it did not sign itself.
//!
//! A bundle is `DMBUNDLE1\n` followed by the postcard encoding of [`Bundle`]: the exact signed bytes of
//! roster operations, listing changes and seat beacons. Importing one runs every item through the same
//! checks as items from the mesh: roster operations must verify against the roster, changes and beacons
//! must be signed by a key the roster authorises, and anything else is refused, logged for the audit and
//! not stored.

use std::fmt;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_keys::roster::SignedOp;
use serde::{Deserialize, Serialize};

use crate::ops::{Node, Refused};

/// The first bytes of every bundle file.
pub const MAGIC: &[u8] = b"DMBUNDLE1\n";

/// The signed items of a bundle, as exact bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Bundle {
    pub roster_ops: Vec<Vec<u8>>,
    pub changes: Vec<Vec<u8>>,
    pub beacons: Vec<Vec<u8>>,
}

impl Bundle {
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).context("cannot encode the bundle")?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let body = bytes
            .strip_prefix(MAGIC)
            .context("this is not a deskmesh bundle (it does not start with DMBUNDLE1)")?;
        postcard::from_bytes(body).context("the bundle is damaged or cut short")
    }

    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }
}

/// What importing a bundle did.
#[derive(Debug, Default, Serialize)]
pub struct BundleReport {
    pub roster_ops_new: usize,
    pub changes_new: usize,
    pub beacons_taken: usize,
    pub refused: Vec<String>,
}

impl fmt::Display for BundleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bundle imported: {} new roster operation(s), {} new listing change(s), {} seat beacon(s); {} refused",
            self.roster_ops_new,
            self.changes_new,
            self.beacons_taken,
            self.refused.len()
        )?;
        for r in &self.refused {
            write!(f, "\n  refused: {r}")?;
        }
        Ok(())
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
            b.changes.extend(self.store.changes(&space)?);
        }
        b.beacons = self
            .store
            .beacons()?
            .into_iter()
            .map(|(_, _, bytes)| bytes)
            .collect();
        Ok(b)
    }

    /// Takes every item of a bundle through the same checks as items from the mesh.
    pub fn import_bundle(
        &mut self,
        bundle: &Bundle,
        now: DateTime<Utc>,
    ) -> anyhow::Result<BundleReport> {
        if self.roster().is_none() {
            bail!("join an alliance (`deskmesh alliance join TOKEN`) before importing a bundle");
        }
        let mut report = BundleReport::default();
        let mut pending: Vec<SignedOp> = Vec::new();
        for bytes in &bundle.roster_ops {
            match SignedOp::from_bytes(bytes) {
                Ok(op) => pending.push(op),
                Err(e) => report.refused.push(format!("roster operation: {e}")),
            }
        }
        // Parents may come after children in a hand-made bundle: retry until nothing more fits.
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for op in pending {
                let known = self.roster().is_some_and(|r| r.contains(&op.hash()));
                if known {
                    continue;
                }
                match self.accept_op(op.clone()) {
                    Ok(true) => report.roster_ops_new += 1,
                    Ok(false) => {}
                    Err(e) => still.push((op, e.to_string())),
                }
            }
            if still.len() == before || still.is_empty() {
                for (op, why) in still {
                    let hash = op.hash();
                    self.store.put_rejected_op(&hash, &op.to_bytes(), &why)?;
                    report
                        .refused
                        .push(format!("roster operation {}: {why}", hash.short()));
                }
                break;
            }
            pending = still.into_iter().map(|(op, _)| op).collect();
        }
        for bytes in &bundle.changes {
            let change = match SignedChange::from_bytes(bytes) {
                Ok(c) => c,
                Err(e) => {
                    let Refused::Invalid(why) =
                        self.refuse("listing change", None, None, e.to_string())
                    else {
                        bail!("cannot record a refused change");
                    };
                    report.refused.push(format!("listing change: {why}"));
                    continue;
                }
            };
            match self.accept_change(&change) {
                Ok(true) => report.changes_new += 1,
                Ok(false) => {}
                Err(Refused::Invalid(why)) => report.refused.push(format!("listing change: {why}")),
                Err(Refused::Waiting(why)) => {
                    let author = change.envelope().ok().map(|e| e.author);
                    self.refuse("listing change", author, None, why.clone());
                    report.refused.push(format!("listing change: {why}"));
                }
                Err(Refused::Store(e)) => return Err(e),
            }
        }
        for bytes in &bundle.beacons {
            let beacon = match SignedBeacon::from_bytes(bytes) {
                Ok(b) => b,
                Err(e) => {
                    report.refused.push(format!("seat beacon: {e}"));
                    continue;
                }
            };
            match self.accept_beacon(&beacon, now) {
                Ok(_) => report.beacons_taken += 1,
                Err(Refused::Invalid(why)) => report.refused.push(format!("seat beacon: {why}")),
                Err(Refused::Waiting(why)) => {
                    let author = beacon.decode().ok().map(|b| b.author);
                    self.refuse("seat beacon", author, None, why.clone());
                    report.refused.push(format!("seat beacon: {why}"));
                }
                Err(Refused::Store(e)) => return Err(e),
            }
        }
        Ok(report)
    }
}
