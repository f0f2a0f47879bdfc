//! The node side of the terminal UI: `deskmesh tui` on a store opened in this process.
//!
//! [`snapshot`] maps what a [`Node`] holds (index entries, verified beacons, the roster log, rejections)
//! into the view model `deskmesh-tui` defines, and [`LocalTui`] implements the UI's `NodeApi` on top of
//! it: seat changes and listing edits are signed here with the node's own key and stored before the UI
//! is told. With the store held by this process the UI is offline and says so; attaching to a running
//! daemon goes through the control socket instead.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeZone, Utc};
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::SpaceId;
use deskmesh_tui::{
    NodeApi, PoolStatus, RejectedView, RosterEntryView, SignerView, Snapshot, SpaceView, Status,
    Update,
};

use anyhow::Context;
use deskmesh_crdt_model::beacon::SignedBeacon;

use crate::ops::{IndexEntry, Node, RejectionRecord};

/// The UI's view of everything this node holds.
pub fn snapshot(node: &Node, status: Status) -> anyhow::Result<Snapshot> {
    let mut beacons: BTreeMap<SpaceId, Vec<PoolStatus>> = BTreeMap::new();
    for b in node.beacons()? {
        beacons
            .entry(b.space.clone())
            .or_default()
            .push(PoolStatus::from(&b));
    }
    let mut spaces = Vec::new();
    for entry in node.entries()? {
        let pools = beacons.remove(&entry.space).unwrap_or_default();
        match view_of(node, &entry, pools) {
            Ok(view) => spaces.push(view),
            Err(e) => tracing::warn!("not showing {}: {e:#}", entry.space),
        }
    }
    let roster = node
        .roster_log()
        .into_iter()
        .map(|op| RosterEntryView {
            op: op.op,
            kind: op.kind,
            summary: op.summary,
            signed_by: op.signed_by,
            at: Utc.timestamp_millis_opt(op.created_at_ms).single(),
        })
        .collect();
    Ok(Snapshot {
        status,
        spaces,
        roster,
    })
}

/// One space's view from its index entry, with `pools` its verified beacons.
fn view_of(node: &Node, entry: &IndexEntry, pools: Vec<PoolStatus>) -> anyhow::Result<SpaceView> {
    let mut view = SpaceView::new(entry.listing()?);
    view.pools = pools;
    view.signers = entry
        .signers
        .iter()
        .map(|s| SignerView {
            key: s.key,
            changes: s.changes,
            authorised_by: s.authorised_by,
            removed_by: s.removed_by,
        })
        .collect();
    for (hash, reason) in node.store.space_rejections(&entry.space)? {
        let r: RejectionRecord = serde_json::from_slice(&reason)?;
        view.rejected.push(RejectedView {
            change: crate::ops::hex(&hash),
            author: r.author,
            reason: r.reason,
        });
    }
    Ok(view)
}

/// The newest verified beacon of each pool `listing` declares, read pool by pool (not a full scan).
pub fn pools_of(node: &Node, listing: &Listing) -> Vec<PoolStatus> {
    listing
        .seat_pools
        .iter()
        .filter_map(|p| node.store.beacon(&listing.id, &p.id).ok().flatten())
        .filter_map(|bytes| {
            SignedBeacon::from_bytes(&bytes)
                .and_then(|b| b.decode())
                .ok()
        })
        .map(|b| PoolStatus::from(&b))
        .collect()
}

/// One space as the UI shows it, read from the index; `None` while it has no valid listing.
pub fn space_view(node: &Node, space: &SpaceId) -> anyhow::Result<Option<SpaceView>> {
    let Some(bytes) = node.store.entry(space)? else {
        return Ok(None);
    };
    let entry: IndexEntry = serde_json::from_slice(&bytes)
        .with_context(|| format!("the index entry of {space} is corrupt; it will be rebuilt"))?;
    let listing = entry.listing()?;
    let pools = pools_of(node, &listing);
    view_of(node, &entry, pools).map(Some)
}

/// The status line of a node whose store is open in this process (no mesh running).
pub fn local_status(node: &Node) -> Status {
    Status {
        alliance: node.roster().map(|r| r.name().to_string()),
        node_name: node.config.name.clone(),
        my_space: node.my_space(),
        peers: 0,
        last_sync: None,
        online: false,
        attached_to_daemon: false,
        daemon_stopped: false,
    }
}

/// `NodeApi` over a store opened in this process.
#[derive(Debug)]
pub struct LocalTui {
    node: Node,
    updates: VecDeque<Update>,
}

impl LocalTui {
    pub fn new(node: Node) -> Self {
        Self {
            node,
            updates: VecDeque::new(),
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl NodeApi for LocalTui {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        snapshot(&self.node, local_status(&self.node)).map_err(|e| format!("{e:#}"))
    }

    fn poll(&mut self) -> Option<Update> {
        self.updates.pop_front()
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        let report = self
            .node
            .set_seats(Some(pool), availability, 900, now())
            .map_err(|e| format!("{e:#}"))?;
        let pools = self
            .node
            .beacons()
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .filter(|b| b.space == report.space)
            .map(PoolStatus::from)
            .collect();
        self.updates.push_back(Update::Seats {
            space: report.space,
            pools,
        });
        Ok(())
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        let space = self.node.require_space().map_err(|e| format!("{e:#}"))?;
        if listing.id != space {
            return Err(format!(
                "this node signs for {space}, not for {}",
                listing.id
            ));
        }
        // Validation errors keep their `path: message` form so the form shows them beside the field.
        listing.validate().map_err(|e| e.to_string())?;
        self.node
            .publish_listing(&listing, now())
            .map_err(|e| format!("{e:#}"))?;
        if let Ok(Some(view)) = space_view(&self.node, &space) {
            self.updates.push_back(Update::Space(Box::new(view)));
        }
        Ok(())
    }
}
