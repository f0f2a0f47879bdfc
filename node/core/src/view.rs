//! What a live front end shows of a node: its status, each space's state (listing, seat pools, signers,
//! rejected changes), a whole [`Snapshot`], and the [`Event`]s that keep a snapshot current. The daemon and
//! the in-process [`crate::api::Local`] handle build them with the same functions, so a front end sees the
//! same thing whether or not a daemon runs.

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::{AllianceId, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::audit::{Finding, FindingStatus, RosterOpAudit};
use crate::home::SavedPlace;
use crate::ingest::{Accepted, ItemKind};
use crate::names::KeyName;
use crate::node::{hex, Node, RejectionRecord, RevokedNote, SignerInfo, Standing, PENDING_PREFIX};
use crate::ops::trust::FactView;

/// The node and its place in the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Whether a mesh node answers for this home: a `deskmesh run` daemon, or one running inside
    /// `deskmesh tui`.
    pub running: bool,
    pub node_name: String,
    pub public_key: PublicKey,
    /// The libp2p peer id peers see (derived from the device key).
    pub peer_id: String,
    pub alliance: Option<AllianceId>,
    pub alliance_name: Option<String>,
    /// The space this node signs for, if it is a space's device.
    pub my_space: Option<SpaceId>,
    /// The name the roster admitted that space under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_space_name: Option<String>,
    /// Full multiaddrs ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    pub peers: Vec<PeerInfo>,
    pub listings: usize,
    /// When a sync session with any peer last completed.
    pub last_sync: Option<DateTime<Utc>>,
    /// While a large transfer from peers runs (a first sync).
    #[serde(default)]
    pub catching_up: Option<CatchingUp>,
    /// The location saved in `node.toml`, distances are measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SavedPlace>,
    /// Set when this node's key lost its place: its space revoked (with the reason) or the key removed.
    #[serde(default)]
    pub standing: Option<Standing>,
    /// How peers can reach this node: AutoNAT's verdict, the addresses confirmed reachable, and the
    /// relay circuits it holds a reservation on. All empty without a running mesh node.
    #[serde(default)]
    pub reachability: Reachability,
}

/// AutoNAT's verdict on whether peers can dial this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatStatus {
    /// No verdict yet (no peer has probed this node, or no mesh is running).
    #[default]
    Unknown,
    /// A peer dialed one of this node's addresses back.
    Public,
    /// Peers could not dial it back: it is behind a NAT or firewall and needs a relay.
    Private,
}

/// How peers can reach this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    pub nat: NatStatus,
    /// Addresses confirmed reachable from outside (declared with `--listen` on a specific IP, or
    /// confirmed by AutoNAT), ending in `/p2p/<peer id>`.
    #[serde(default)]
    pub external: Vec<String>,
    /// Relay circuits the node holds an accepted reservation on, ending in
    /// `/p2p-circuit/p2p/<peer id>`: peers that cannot dial it directly dial these.
    #[serde(default)]
    pub relayed: Vec<String>,
}

/// A large transfer from peers in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchingUp {
    pub received: usize,
    /// How many items the node's own sync sessions found missing, when they did (a peer may be the one
    /// that found them).
    pub expected: Option<usize>,
}

/// One connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addresses: Vec<String>,
    /// Whether every connection to the peer goes through a relay.
    pub relayed: bool,
}

/// The newest verified beacon of one seat pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub pool: String,
    pub availability: Availability,
    pub is_open: bool,
    pub published_at_ms: i64,
    pub ttl_s: u32,
}

impl From<&SeatBeacon> for PoolState {
    fn from(b: &SeatBeacon) -> Self {
        Self {
            pool: b.pool.clone(),
            availability: b.availability,
            is_open: b.is_open,
            published_at_ms: b.published_at_ms,
            ttl_s: b.ttl_s,
        }
    }
}

/// One space: its listing, its pools' newest beacons, who signed it, what a coordinator verified and
/// what was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceState {
    pub listing: Listing,
    pub pools: Vec<PoolState>,
    pub signers: Vec<SignerInfo>,
    /// The listing's changes that were rejected or still wait.
    pub rejected: Vec<Finding>,
    /// Set for a revoked space kept listed at its coordinator's request.
    #[serde(default)]
    pub revoked: Option<RevokedNote>,
    /// Claimed versus verified: every fact a coordinator verified, and whether it still holds.
    #[serde(default)]
    pub facts: Vec<FactView>,
}

/// Everything a live front end shows, read at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub status: NodeStatus,
    pub spaces: Vec<SpaceState>,
    /// Roster operations in causal order, oldest first; empty in an attach's first snapshot, which
    /// gets them as [`Event::Roster`] after the pages.
    pub roster: Vec<RosterOpAudit>,
    /// What did not count: the audit's own list ([`Node::findings`]).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Spaces not in `spaces` that follow as [`Event::Spaces`] pages: 0 for a whole snapshot; for an
    /// attach ([`crate::api::Handle::attach`]), the rest of the directory after the first screenful.
    #[serde(default)]
    pub following: usize,
}

/// Where a paged read of the directory stands: the last space sent, in the name order front ends
/// show first ([`Node::spaces_page`]). A key, not a position, so spaces added or removed between two
/// pages neither repeat nor skip one that stayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor {
    /// The space's folded name, as the search index sorts it.
    pub name: String,
    pub space: SpaceId,
}

/// One page of the directory in name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpacesPage {
    pub spaces: Vec<SpaceState>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<PageCursor>,
    /// How many spaces come after this page.
    pub left: usize,
}

/// The first screenful of a snapshot: everything a front end shows, with only the first spaces in name
/// order; [`Snapshot::following`] says how many more there are, and `next` where they start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHead {
    pub snapshot: Snapshot,
    pub next: Option<PageCursor>,
}

/// A live change, in the order the node stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A space's listing, signers or rejections changed (or it appeared).
    Space(Box<SpaceState>),
    /// New beacons for some pools of a space; pools not named keep theirs.
    Seats {
        space: SpaceId,
        pools: Vec<PoolState>,
    },
    /// The node's status changed (peers, last sync, listen addresses).
    Status(Box<NodeStatus>),
    /// The next page of the directory after an attach, in name order: `left` more spaces follow. Pages
    /// come in the same stream as every other event, so a page never undoes a later change.
    Spaces {
        spaces: Vec<SpaceState>,
        left: usize,
    },
    /// The whole roster log, oldest first: the end of an attach, after its pages.
    Roster(Vec<RosterOpAudit>),
    /// Something changed that can touch every space (a roster operation), or the subscriber fell behind:
    /// fetch a fresh snapshot.
    Reload,
    /// The audit's findings changed (something was refused): the whole list, as [`Node::findings`].
    Findings(Vec<Finding>),
    /// An audit running on the node got this far (sent while one runs, at most a few times a second).
    AuditProgress(crate::audit::AuditProgress),
    /// Made by a client, never sent: the daemon stopped answering. When one answers again the client
    /// gets a [`Event::Reload`].
    Disconnected,
}

impl Node {
    /// This node's status with no mesh running here.
    pub fn status(&self) -> anyhow::Result<NodeStatus> {
        Ok(NodeStatus {
            running: false,
            node_name: self.config.name.clone(),
            public_key: self.public_key(),
            peer_id: crate::peer_id::peer_id(&self.public_key()),
            alliance: self.alliance_id(),
            alliance_name: self.roster_state().map(|state| state.name.clone()),
            my_space: self.my_space(),
            my_space_name: self.my_space().and_then(|id| {
                self.roster_state()
                    .and_then(|state| state.spaces.get(&id).map(|s| s.name.clone()))
            }),
            listen: Vec::new(),
            peers: Vec::new(),
            listings: self.listed_count()?,
            last_sync: None,
            catching_up: None,
            location: self.config.location.clone(),
            reachability: Reachability::default(),
            standing: self.standing(),
        })
    }

    /// Everything a front end shows, with `status` as the caller knows it.
    pub fn snapshot(&self, status: NodeStatus) -> anyhow::Result<Snapshot> {
        let mut whole = self.snapshot_head(status, usize::MAX)?.snapshot;
        whole.roster = self.roster_log();
        Ok(whole)
    }

    /// What a front end shows first: the node's status and findings and the first `first` spaces in
    /// name order (the order the TUI opens in), with where the rest start. The roster log is left out
    /// (10,000 admissions are megabytes): an attach sends it after the pages, as [`Event::Roster`].
    pub fn snapshot_head(&self, status: NodeStatus, first: usize) -> anyhow::Result<SnapshotHead> {
        let page = self.spaces_page(None, first)?;
        Ok(SnapshotHead {
            snapshot: Snapshot {
                status,
                spaces: page.spaces,
                roster: Vec::new(),
                findings: self.findings()?,
                following: page.left,
            },
            next: page.next,
        })
    }

    /// Up to `take` spaces in name order (folded name, then space id), starting after `after` (from the
    /// first when `None`). Costs a sort of the directory's names and `take` space states, whatever the
    /// directory's size otherwise.
    pub fn spaces_page(
        &self,
        after: Option<&PageCursor>,
        take: usize,
    ) -> anyhow::Result<SpacesPage> {
        let catalog = self.catalog()?;
        let search = catalog.search();
        let entries = catalog.entries();
        // Rows are in space id order, so the row breaks ties between equal names by space id.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_unstable_by(|&a, &b| search.name_key(a).cmp(search.name_key(b)).then(a.cmp(&b)));
        let start = after.map_or(0, |c| {
            order.partition_point(|&i| {
                (search.name_key(i), &entries[i].space) <= (c.name.as_str(), &c.space)
            })
        });
        let end = start.saturating_add(take).min(order.len());
        let rows = &order[start..end];
        let verifications = if rows.len() > 64 {
            Some(self.verifications()?)
        } else {
            None
        };
        let mut spaces = Vec::with_capacity(rows.len());
        let names = crate::names::KeyNames::new(self.roster_state());
        for &i in rows {
            let entry = &entries[i];
            let facts = match &verifications {
                Some(all) => all
                    .get(&entry.space)
                    .map(|v| deskmesh_crdt_model::verify::fact_states(&entry.listing, v))
                    .unwrap_or_default(),
                None => self.fact_states(&entry.listing)?,
            };
            spaces.push(self.state_of(&catalog, entry, facts, &|k| names.of(k))?);
        }
        let next = (end < order.len())
            .then(|| rows.last())
            .flatten()
            .map(|&i| PageCursor {
                name: search.name_key(i).to_string(),
                space: entries[i].space.clone(),
            });
        Ok(SpacesPage {
            spaces,
            next,
            left: order.len() - end,
        })
    }

    /// [`Node::snapshot_head`] without the directory in memory, for a front end starting its own node:
    /// the first `first` spaces in name order found from the search rows the store keeps, reading only
    /// their entries and beacons, so a TUI draws its first screen while the node starts. The findings are
    /// left out (they need the roster's stored signatures checked) and so is the roster log: the live
    /// attach that follows brings both. `None` when the rows are not complete (the first whole read of
    /// the directory writes them) or the directory is already in memory.
    pub fn first_screen(
        &self,
        status: NodeStatus,
        first: usize,
    ) -> anyhow::Result<Option<Snapshot>> {
        if self.catalog_in_memory() {
            return Ok(None);
        }
        let Some(stored) = self.store.search_rows(crate::rows::StoredRow::FORMAT)? else {
            return Ok(None);
        };
        let mut order = Vec::with_capacity(stored.len());
        for (space, bytes) in stored {
            let Ok((row, _)) = crate::rows::StoredRow::search_of(&bytes) else {
                tracing::warn!(space = %space, "a stored directory row does not read back; no first screen from the rows");
                return Ok(None);
            };
            order.push((row.name_key().to_string(), space));
        }
        // The order of `spaces_page`: the folded name, then the space id.
        let total = order.len();
        let take = first.min(total);
        if take < total {
            order.select_nth_unstable(take);
            order.truncate(take);
        }
        order.sort_unstable();
        let names = std::cell::OnceCell::new();
        let names = || names.get_or_init(|| crate::names::KeyNames::new(self.roster_state()));
        let mut spaces = Vec::with_capacity(take);
        for (_, space) in &order {
            let Some(hit) = self.read_hit(space)? else {
                continue;
            };
            let facts = self.fact_states(&hit.entry.listing)?;
            spaces.push(self.state_with(&hit.entry, &hit.beacons, facts, &|k| names().of(k))?);
        }
        Ok(Some(Snapshot {
            status,
            spaces,
            roster: Vec::new(),
            findings: Vec::new(),
            following: total - take,
        }))
    }

    /// One space as a front end shows it; `None` while it has no valid listing.
    pub fn space_state(&self, space: &SpaceId) -> anyhow::Result<Option<SpaceState>> {
        let catalog = self.catalog()?;
        let Some((entry, listing)) = catalog.entry(space) else {
            return Ok(None);
        };
        let facts = self.fact_states(listing)?;
        // One space: a search of the roster per named key costs less than indexing it.
        self.state_of(&catalog, entry, facts, &|k| KeyName::of(self.roster(), k))
            .map(Some)
    }

    /// `entry` as a front end shows it, its verified facts' keys named by `name`.
    fn state_of(
        &self,
        catalog: &crate::catalog::Catalog,
        entry: &crate::node::IndexEntry,
        facts: Vec<deskmesh_crdt_model::verify::FactState>,
        name: &dyn Fn(&PublicKey) -> KeyName,
    ) -> anyhow::Result<SpaceState> {
        self.state_with(entry, catalog.beacons(&entry.space), facts, name)
    }

    /// `entry` with `beacons` (the newest of each of its pools) as a front end shows it.
    fn state_with(
        &self,
        entry: &crate::node::IndexEntry,
        beacons: &[SeatBeacon],
        facts: Vec<deskmesh_crdt_model::verify::FactState>,
        name: &dyn Fn(&PublicKey) -> KeyName,
    ) -> anyhow::Result<SpaceState> {
        let listing = &entry.listing;
        let pools = beacons
            .iter()
            .filter(|b| listing.seat_pools.iter().any(|p| p.id == b.pool))
            .map(PoolState::from)
            .collect();
        Ok(SpaceState {
            facts: FactView::all_named(&facts, name),
            listing: listing.clone(),
            pools,
            signers: entry.signers.clone(),
            rejected: self.rejections(&entry.space)?,
            revoked: entry.revoked.clone(),
        })
    }

    /// The rejected or waiting changes of one space, from its index alone (cheap enough for every event).
    fn rejections(&self, space: &SpaceId) -> anyhow::Result<Vec<Finding>> {
        let mut out = Vec::new();
        let rejections = self.store.space_rejections(space)?;
        if rejections.is_empty() {
            return Ok(out);
        }
        // The state at the heads names them: a node opened to read has it without loading the roster.
        let state = self.roster_state();
        let space_name = state
            .and_then(|s| s.spaces.get(space))
            .map(|e| e.name.clone());
        for (hash, reason) in rejections {
            let r: RejectionRecord = serde_json::from_slice(&reason)?;
            let (status, reason) = match r.reason.strip_prefix(PENDING_PREFIX) {
                Some(rest) => (FindingStatus::Pending, rest.to_string()),
                None => (FindingStatus::Rejected, r.reason),
            };
            out.push(Finding {
                status,
                kind: ItemKind::ListingChange.label().into(),
                space: Some(space.clone()),
                space_name: space_name.clone(),
                item: Some(hex(&hash)),
                author: r.author.as_ref().map(|k| KeyName::in_state(state, k)),
                peer: None,
                source: None,
                reason,
                at_ms: None,
            });
        }
        Ok(out)
    }

    /// What a subscriber should be told about an item just stored.
    pub fn event_for(&self, accepted: &Accepted) -> anyhow::Result<Option<Event>> {
        Ok(match (accepted.kind, &accepted.space) {
            // A roster operation can change which listings and signers count anywhere.
            (ItemKind::RosterOp, _) => Some(Event::Reload),
            (ItemKind::ListingChange | ItemKind::Checkpoint, Some(space)) => {
                match self.space_state(space)? {
                    Some(state) => Some(Event::Space(Box::new(state))),
                    // Its listing stopped being valid: only a full reload can take it away.
                    None => Some(Event::Reload),
                }
            }
            (ItemKind::Verification, Some(space)) => self
                .space_state(space)?
                .map(|state| Event::Space(Box::new(state))),
            (ItemKind::SeatBeacon, Some(space)) => {
                let pools = self
                    .space_beacons(space)?
                    .iter()
                    .filter(|b| Some(&b.pool) == accepted.pool.as_ref())
                    .map(PoolState::from)
                    .collect();
                Some(Event::Seats {
                    space: space.clone(),
                    pools,
                })
            }
            _ => None,
        })
    }
}
