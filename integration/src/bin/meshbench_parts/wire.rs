//! `meshbench wire-parts`: where a cold join's wire bytes go, measured, not estimated.
//!
//! It takes every item the fixture's server would serve a new node (its bundle, less the listing changes a
//! kept checkpoint covers and the beacons too old to say anything, which a node no longer offers), puts them in the order the server queues them
//! (roster operations first, then space by space: checkpoint, changes by time, beacons, verifications),
//! and packs them in batches exactly as the wire does (`behaviour::pack`, about `ITEM_BATCH_BYTES` of items
//! a batch, roster batches on their own). Then it packs the same stream again with one part taken out or
//! zeroed (every signature, the change hashes a receiver could compute, one kind of item) and prints what
//! each part costs *in the packed stream*: what zstd could not squeeze out of it. Sync messages (id sets,
//! fingerprints) and libp2p framing are not in these figures; the cold join measures them on the wire.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use deskmesh_core::bundle::Bundle;
use deskmesh_crdt_model::beacon::{self, SignedBeacon};
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_crdt_model::checkpoint::SignedCheckpoint;
use deskmesh_crdt_model::verify::SignedVerification;
use deskmesh_keys::roster::SignedOp;
use deskmesh_node::mesh::behaviour::{self, WireItem};
use deskmesh_sync::ItemKind;

/// One item of the stream with what the variants need to find inside its bytes.
struct Part {
    kind: ItemKind,
    bytes: Vec<u8>,
    /// Every 64-byte signature the item carries.
    signatures: Vec<[u8; 64]>,
    /// The Automerge change hash a listing change's envelope names (a receiver computes it from the change).
    change_hash: Option<[u8; 32]>,
    /// A checkpoint's bytes with its document saved without Automerge's DEFLATE (`save_nocompress`).
    undeflated: Option<Vec<u8>>,
    /// Where the server's queue puts it: space, rank within the space, time.
    key: (Option<String>, u8, i64),
}

impl Part {
    fn new(
        kind: ItemKind,
        bytes: Vec<u8>,
        signatures: Vec<[u8; 64]>,
        key: (Option<String>, u8, i64),
    ) -> Self {
        Self {
            kind,
            bytes,
            signatures,
            change_hash: None,
            undeflated: None,
            key,
        }
    }

    /// The space it belongs to, if any.
    fn space(&self) -> Option<&String> {
        self.key.0.as_ref()
    }
}

/// The signatures a roster operation (or proposal) carries.
fn op_signatures(bytes: &[u8], what: &str) -> anyhow::Result<Vec<[u8; 64]>> {
    let op = SignedOp::from_bytes(bytes).with_context(|| format!("a {what} does not decode"))?;
    Ok(op.signatures().iter().map(|(_, s)| *s.as_bytes()).collect())
}

/// The figures `wire-parts` prints, in bytes of packed batches.
pub struct Figures {
    pub items: HashMap<&'static str, usize>,
    pub signatures: usize,
    /// Bytes of every checkpoint as stored, and with its document saved without DEFLATE.
    pub checkpoint_bytes: (usize, usize),
    pub rows: Vec<(String, usize)>,
}

fn kind_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::RosterOp => "roster operations",
        ItemKind::Checkpoint => "checkpoints",
        ItemKind::ListingChange => "listing changes",
        ItemKind::SeatBeacon => "seat beacons",
        ItemKind::Verification => "verifications",
        ItemKind::Proposal => "proposals",
    }
}

/// Reads a bundle's items into the order the server queues them, without the changes a kept checkpoint
/// covers and the beacons that say nothing at `now_ms`.
fn parts(bundle: Bundle, now_ms: i64) -> anyhow::Result<Vec<Part>> {
    let mut out = Vec::new();
    for bytes in bundle.roster_ops {
        let signatures = op_signatures(&bytes, "roster operation")?;
        out.push(Part::new(
            ItemKind::RosterOp,
            bytes,
            signatures,
            (None, 0, 0),
        ));
    }
    let mut covered: HashSet<[u8; 32]> = HashSet::new();
    let mut rest = Vec::new();
    for bytes in bundle.checkpoints {
        let cp = SignedCheckpoint::from_bytes(&bytes).context("a checkpoint does not decode")?;
        let header = cp.decode().context("a checkpoint header does not decode")?;
        let loaded = cp.load(&header).context("a checkpoint does not load")?;
        covered.extend(loaded.change_ids());
        let space = header.space.to_string();
        let undeflated = SignedCheckpoint {
            doc: loaded.doc().save_nocompress(),
            ..cp.clone()
        }
        .to_bytes();
        rest.push(Part {
            undeflated: Some(undeflated),
            ..Part::new(
                ItemKind::Checkpoint,
                bytes,
                vec![*cp.signature.as_bytes()],
                (Some(space), 0, i64::MIN),
            )
        });
    }
    for bytes in bundle.changes {
        let change =
            SignedChange::from_bytes(&bytes).context("a listing change does not decode")?;
        let env = change
            .envelope()
            .context("a listing change's envelope does not decode")?;
        if covered.contains(&env.change_hash) {
            continue;
        }
        let space = env.space.to_string();
        rest.push(Part {
            change_hash: Some(env.change_hash),
            ..Part::new(
                ItemKind::ListingChange,
                bytes,
                vec![*change.signature.as_bytes()],
                (Some(space), 0, env.created_at_ms),
            )
        });
    }
    for bytes in bundle.beacons {
        let beacon = SignedBeacon::from_bytes(&bytes).context("a beacon does not decode")?;
        let decoded = beacon.decode().context("a beacon does not decode")?;
        if beacon::says_nothing_after_ms(&decoded) < now_ms {
            // Too old to say anything: a node does not serve it.
            continue;
        }
        let space = decoded.space.to_string();
        rest.push(Part::new(
            ItemKind::SeatBeacon,
            bytes,
            vec![*beacon.signature.as_bytes()],
            (Some(space), 1, 0),
        ));
    }
    for bytes in bundle.verifications {
        let v = SignedVerification::from_bytes(&bytes).context("a verification does not decode")?;
        let space = v
            .decode()
            .context("a verification does not decode")?
            .space
            .to_string();
        rest.push(Part::new(
            ItemKind::Verification,
            bytes,
            vec![*v.signature.as_bytes()],
            (Some(space), 2, 0),
        ));
    }
    for bytes in bundle.proposals {
        let signatures = op_signatures(&bytes, "proposal")?;
        rest.push(Part::new(
            ItemKind::Proposal,
            bytes,
            signatures,
            (None, 3, 0),
        ));
    }
    rest.sort_by(|a, b| a.key.cmp(&b.key));
    out.extend(rest);
    Ok(out)
}

/// Zeroes every occurrence of `needle` in `bytes`.
fn zero(bytes: &mut [u8], needle: &[u8]) {
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i..i + needle.len()].fill(0);
            i += needle.len();
        } else {
            i += 1;
        }
    }
}

/// Packs a stream as the server sends it: roster batches on their own, each batch closed once its items
/// reach `ITEM_BATCH_BYTES`. Returns the packed bytes.
fn packed(stream: &[(ItemKind, Vec<u8>)]) -> anyhow::Result<usize> {
    let mut total = 0;
    let mut batch: Vec<WireItem> = Vec::new();
    let mut size = 0;
    let mut roster = true;
    for (kind, bytes) in stream {
        let is_roster = *kind == ItemKind::RosterOp;
        if !batch.is_empty() && (size >= behaviour::ITEM_BATCH_BYTES || is_roster != roster) {
            total += behaviour::pack(&batch)?.len();
            batch.clear();
            size = 0;
        }
        roster = is_roster;
        size += bytes.len();
        batch.push(WireItem {
            kind: *kind,
            bytes: bytes.clone(),
        });
    }
    if !batch.is_empty() {
        total += behaviour::pack(&batch)?.len();
    }
    Ok(total)
}

/// Measures the stream whole, then with each part out. `listings` maps a space id to its listing as the
/// JSON export writes it (compact), for the variants that send a listing's state instead of its history.
pub fn measure(bundle: Bundle, listings: &HashMap<String, Vec<u8>>) -> anyhow::Result<Figures> {
    let parts = parts(bundle, chrono::Utc::now().timestamp_millis())?;
    let mut items: HashMap<&'static str, usize> = HashMap::new();
    for p in &parts {
        *items.entry(kind_name(p.kind)).or_default() += 1;
    }
    let signatures = parts.iter().map(|p| p.signatures.len()).sum();
    let stream = |f: &dyn Fn(&Part) -> Option<Vec<u8>>| -> Vec<(ItemKind, Vec<u8>)> {
        parts
            .iter()
            .filter_map(|p| f(p).map(|b| (p.kind, b)))
            .collect()
    };
    let mut rows = Vec::new();
    let whole = packed(&stream(&|p| Some(p.bytes.clone())))?;
    rows.push(("every item, as served".to_string(), whole));
    let no_sigs = packed(&stream(&|p| {
        let mut b = p.bytes.clone();
        for s in &p.signatures {
            zero(&mut b, s);
        }
        Some(b)
    }))?;
    rows.push(("signatures zeroed".to_string(), no_sigs));
    let no_hash = packed(&stream(&|p| {
        let mut b = p.bytes.clone();
        if let Some(h) = &p.change_hash {
            zero(&mut b, h);
        }
        Some(b)
    }))?;
    rows.push((
        "change hashes zeroed (a receiver computes them)".to_string(),
        no_hash,
    ));
    if parts.iter().any(|p| p.undeflated.is_some()) {
        let undeflated = packed(&stream(&|p| {
            Some(p.undeflated.clone().unwrap_or_else(|| p.bytes.clone()))
        }))?;
        rows.push((
            "checkpoint documents saved without DEFLATE".to_string(),
            undeflated,
        ));
    }
    for kind in ItemKind::ALL {
        if !parts.iter().any(|p| p.kind == kind) {
            continue;
        }
        let without = packed(&stream(&|p| (p.kind != kind).then(|| p.bytes.clone())))?;
        rows.push((format!("without {}", kind_name(kind)), without));
    }
    // One beacon per space: the first of each space's beacons kept (a lower bound for a beacon carrying
    // every pool of its space, whose body would be a little larger).
    let mut seen = HashSet::new();
    let one_beacon: Vec<(ItemKind, Vec<u8>)> = parts
        .iter()
        .filter(|p| p.kind != ItemKind::SeatBeacon || seen.insert(p.space()))
        .map(|p| (p.kind, p.bytes.clone()))
        .collect();
    rows.push((
        "one seat beacon per space (the first kept)".to_string(),
        packed(&one_beacon)?,
    ));
    // Each space's listing as its export JSON followed by one signature (the space's first item's), in
    // place of its checkpoint and changes: content as dense as the export, still signed once.
    let as_json = |one_beacon: bool, roster: bool| {
        let mut listed = HashSet::new();
        let mut beacons = HashSet::new();
        let mut out = Vec::new();
        for p in &parts {
            match p.kind {
                ItemKind::Checkpoint | ItemKind::ListingChange => {
                    let Some(space) = p.space() else { continue };
                    if !listed.insert(space.clone()) {
                        continue;
                    }
                    let mut b = listings.get(space).cloned().unwrap_or_default();
                    b.extend_from_slice(&p.signatures[0]);
                    out.push((p.kind, b));
                }
                ItemKind::SeatBeacon if one_beacon && !beacons.insert(p.space()) => {}
                ItemKind::RosterOp if !roster => {}
                _ => out.push((p.kind, p.bytes.clone())),
            }
        }
        out
    };
    rows.push((
        "each listing as its export JSON + one signature, not its changes".to_string(),
        packed(&as_json(false, true))?,
    ));
    rows.push((
        "that, one beacon per space and no roster operations".to_string(),
        packed(&as_json(true, false))?,
    ));
    let checkpoint_bytes = parts
        .iter()
        .filter_map(|p| Some((p.bytes.len(), p.undeflated.as_ref()?.len())))
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    Ok(Figures {
        items,
        signatures,
        checkpoint_bytes,
        rows,
    })
}
