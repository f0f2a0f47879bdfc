//! The view model the node hands to the TUI and the interface the TUI calls back through.
//!
//! These are plain values, free of any store or network type, so the node maps its own views into them
//! (`deskmesh-node`'s `tui_client`, the same way for a daemon and for an offline store) and tests build
//! them by hand. The TUI
//! reads a whole [`Snapshot`] once, then applies [`Update`]s as the mesh delivers them; it sends its two
//! commands (publish seats, edit the listing) through [`NodeApi`].

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::Listing;
use deskmesh_keys::{Hash, PublicKey, SpaceId};

pub use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::beacon::SeatBeacon;

/// What the TUI needs from a deskmesh node, embedded or reached through the daemon's control socket.
///
/// Every call is made from the UI loop and should return quickly; `poll` must never block. Errors are one
/// sentence for people, shown as they are (a validation error from `edit_listing` is shown next to the
/// field it names when it starts with that field's path, `opening_hours: ...`).
pub trait NodeApi {
    /// The whole view model, read once at start (and again when the TUI asks for a reload).
    fn snapshot(&mut self) -> Result<Snapshot, String>;
    /// The next live change from the mesh, if one is waiting; never blocks.
    fn poll(&mut self) -> Option<Update>;
    /// Publish a signed seat beacon for one pool of this node's own space.
    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String>;
    /// Validate, sign and store a new version of this node's own listing.
    fn edit_listing(&mut self, listing: Listing) -> Result<(), String>;
    /// One sentence when the node behind this API cannot go on (the node the TUI started failed to
    /// start): the TUI then closes and reports it. Asked after every turn's updates; never blocks.
    fn failed(&mut self) -> Option<String> {
        None
    }
}

impl<T: NodeApi + ?Sized> NodeApi for &mut T {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        (**self).snapshot()
    }
    fn poll(&mut self) -> Option<Update> {
        (**self).poll()
    }
    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        (**self).set_seats(pool, availability)
    }
    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        (**self).edit_listing(listing)
    }
    fn failed(&mut self) -> Option<String> {
        (**self).failed()
    }
}

impl<T: NodeApi + ?Sized> NodeApi for Box<T> {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        (**self).snapshot()
    }
    fn poll(&mut self) -> Option<Update> {
        (**self).poll()
    }
    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        (**self).set_seats(pool, availability)
    }
    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        (**self).edit_listing(listing)
    }
    fn failed(&mut self) -> Option<String> {
        (**self).failed()
    }
}

/// Everything the TUI shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub status: Status,
    pub spaces: Vec<SpaceView>,
    /// Roster operations in causal order, oldest first.
    pub roster: Vec<RosterEntryView>,
    /// Every item that did not count: the list `deskmesh audit` prints, item for item.
    pub findings: Vec<FindingView>,
    /// Spaces still to come as [`Update::Spaces`] pages (an attach sends the first screenful first).
    pub following: usize,
}

/// The node and its connection to the mesh, for the status bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// The alliance's name, `None` before this node joined one.
    pub alliance: Option<String>,
    pub node_name: String,
    /// This node's own space, when it is a space's device; enables operator mode (even before the space
    /// has a listing: the form then writes its first one).
    pub my_space: Option<SpaceId>,
    /// The name the roster admitted this node's space under, for a first listing.
    pub my_space_name: Option<String>,
    /// The location saved in the node's settings (lat, lon): distances are measured from it.
    pub home: Option<(f64, f64)>,
    /// Peers connected now.
    pub peers: usize,
    /// Of those, the ones reached only through a relay (no direct connection, e.g. behind a NAT that
    /// hole punching cannot cross).
    pub relayed_peers: usize,
    /// When the last sync with any peer finished.
    pub last_sync: Option<DateTime<Utc>>,
    /// False when no peer is reachable; the TUI then says it shows the local store.
    pub online: bool,
    /// True when the TUI talks to a running daemon, false when it opened the store itself.
    pub attached_to_daemon: bool,
    /// The daemon the TUI was attached to stopped; what is shown is as it last was, until it is back.
    pub daemon_stopped: bool,
    /// The TUI started a node of its own and shows the store's first screen until that node answers
    /// (then a snapshot replaces everything, and this is false).
    pub starting: bool,
    /// Set when this node lost its place: one sentence saying its space was revoked (and why) or its key
    /// removed.
    pub standing: Option<String>,
}

/// One space: its listing, the live state of its seat pools, and who signed it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceView {
    pub listing: Listing,
    /// The newest beacon per pool, as the beacon layer kept it; pools with no beacon are absent.
    pub pools: Vec<PoolStatus>,
    /// Every key that signed accepted changes to this listing.
    pub signers: Vec<SignerView>,
    /// Changes that were refused, with the reason.
    pub rejected: Vec<RejectedView>,
    /// Set for a revoked space a coordinator kept listed: the reason.
    pub revoked: Option<String>,
    /// Facts a coordinator verified (everything else is claimed by the space).
    pub facts: Vec<FactView>,
}

impl SpaceView {
    /// A space with no beacons, signers or rejections yet.
    pub fn new(listing: Listing) -> Self {
        Self {
            listing,
            pools: Vec::new(),
            signers: Vec::new(),
            rejected: Vec::new(),
            revoked: None,
            facts: Vec::new(),
        }
    }

    /// The newest beacon for `pool`, if any.
    pub fn pool(&self, pool: &str) -> Option<&PoolStatus> {
        self.pools.iter().find(|p| p.pool == pool)
    }
}

/// The newest seat beacon of one pool: the parts of a verified [`SeatBeacon`] the TUI shows.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolStatus {
    /// The pool id, as in the listing's `seat_pools`.
    pub pool: String,
    pub availability: Availability,
    /// False when the beacon says the pool is closed.
    pub is_open: bool,
    pub published_at: DateTime<Utc>,
    /// Seconds the beacon stays fresh after `published_at`.
    pub ttl_s: u32,
}

impl From<&SeatBeacon> for PoolStatus {
    fn from(b: &SeatBeacon) -> Self {
        Self {
            pool: b.pool.clone(),
            availability: b.availability,
            is_open: b.is_open,
            // Out-of-range times (far beyond any real clock) read as the epoch: shown as unknown.
            published_at: DateTime::from_timestamp_millis(b.published_at_ms).unwrap_or_default(),
            ttl_s: b.ttl_s,
        }
    }
}

/// A key that signed changes to a listing, and the roster operations that let it (and stopped it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerView {
    pub key: PublicKey,
    /// Accepted changes signed by this key.
    pub changes: usize,
    /// The roster operation that authorised the key for the space.
    pub authorised_by: Hash,
    /// The roster operation that revoked it, if any.
    pub removed_by: Option<Hash>,
}

/// A listing change that was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedView {
    /// The change, as the node names it (usually a short hash).
    pub change: String,
    /// Who signed it, when the envelope said so.
    pub author: Option<PublicKey>,
    /// One sentence: why it was refused.
    pub reason: String,
}

/// A fact of a listing a coordinator countersigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactView {
    /// `accessibility`, `internet.down_mbps`, …
    pub fact: String,
    /// Still what was checked; false when it changed since (then it is only claimed again).
    pub verified: bool,
    /// Who verified it, as the roster names the key.
    pub by: String,
    /// `YYYY-MM-DD`.
    pub checked_on: String,
    pub note: String,
}

/// One item that did not count, as the audit lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingView {
    /// "refused", "rejected", "pending" or "unverifiable".
    pub status: String,
    /// "listing change", "seat beacon", "roster operation", "gossip message", …
    pub kind: String,
    /// The space, named: `"Riverside" (sp-…)`.
    pub space: Option<String>,
    /// The item's id.
    pub item: Option<String>,
    /// Who signed it, as the roster names the key.
    pub author: Option<String>,
    /// Where it came from: the peer and the source.
    pub from: Option<String>,
    /// Why, in plain words.
    pub reason: String,
}

/// One roster operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntryView {
    pub op: Hash,
    /// What kind of operation: `create`, `admit space`, `add device`, `revoke`, ...
    pub kind: String,
    /// One line for people: which space or key it is about.
    pub summary: String,
    /// The keys whose signatures made it valid.
    pub signed_by: Vec<PublicKey>,
    /// When it was signed, if the operation carries a time.
    pub at: Option<DateTime<Utc>>,
}

/// A live change from the mesh.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Replace everything (after reconnecting to the daemon, say).
    Snapshot(Box<Snapshot>),
    /// A space was added or its listing, signers or rejections changed.
    Space(Box<SpaceView>),
    /// The next page of the directory while it loads: `left` more spaces follow.
    Spaces {
        spaces: Vec<SpaceView>,
        left: usize,
    },
    /// New beacons for some pools of a space; pools not named keep their status.
    Seats {
        space: SpaceId,
        pools: Vec<PoolStatus>,
    },
    Status(Status),
    /// The whole roster, oldest first.
    Roster(Vec<RosterEntryView>),
    /// The audit's findings changed (something was refused).
    Findings(Vec<FindingView>),
    /// An audit running on the node got this far: `done` of `spaces` rebuilt.
    AuditProgress {
        done: usize,
        spaces: usize,
    },
}
