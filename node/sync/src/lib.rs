//! The sans-I/O sync core of the mesh: it decides which signed items two nodes exchange when they meet,
//! and owns no socket, clock, store or libp2p type. The I/O layer feeds it events (`connected`,
//! `received`, `tick`, `item_added`) with the current monotonic time and executes the [`Intent`]s it
//! returns; [`sim`] drives many engines through a lossy, partitioned network to test exactly that.
//!
//! # Design: range-based set reconciliation
//!
//! Every signed item a node stores (roster op, listing change, seat beacon, verification, proposal) is a key `(kind, id)` where
//! `id` is a 32-byte content hash. Two nodes reconcile these key sets the way negentropy does: the
//! initiator splits the key space into [`Config::buckets`] ranges of equal item count and sends one
//! 16-byte fingerprint per range; the other side answers each range whose fingerprint differs from its
//! own by splitting it again, until a range holds at most [`Config::id_list_threshold`] items, which is
//! then sent as an explicit list of keys. Equal ranges cost a few bytes (a `Skip`) and are not revisited,
//! so the bytes grow with the number of differences times log(set size), not with the set size: 10 new
//! items on one side of 30,000 cost about 8 KB in 3 round trips, 10 on each side about 16 KB, equal sets
//! one 360-byte round (see the table printed by `sim::tests::figures`).
//!
//! A fixed-fanout hash-prefix trie was the alternative. It is simpler, but its split points are fixed by
//! id bytes rather than by item counts, so sparse regions cost rounds and dense ones cost bytes, and a
//! node with an empty set still walks the whole trie. Splitting by count adapts to any distribution, and
//! a side whose range is (nearly) empty answers at once with its short key list: in a cold join no id
//! crosses the wire and the whole exchange is under 500 bytes besides the items.
//!
//! A fingerprint is SHA-256 of (the sum mod 2^256 of the ids in the range, the count), truncated to 16
//! bytes, as in negentropy. Sums (unlike XOR) do not cancel paired items, and a collision cannot be
//! solved for as a linear system; ids are content hashes, so nobody picks them freely (structured test
//! ids do collide: `sim::tests::replaced_beacons_leave_the_set` explains). Prefix sums make any range's
//! fingerprint cost two binary searches in [`MemorySet`].
//!
//! # Transfer: push what the peer provably lacks, roster first
//!
//! A side that receives the peer's full key list for a range knows exactly what each side lacks there.
//! It remembers the items the peer lacks and names the ones it lacks itself in its next message
//! (`lacking`), so the peer learns them too. When the session ends, each side emits one
//! [`Intent::Serve`] with every item the peer lacks, sorted by key, so roster ops go before listing
//! changes and listing changes before seat beacons. All items flowing in one direction are thus one
//! ordered stream (unless a `lacking` list overflows, below), and no id crosses the wire twice.
//! [`Intent::Fetch`] (the I/O layer sends [`Msg::Want`]) is used for explicit requests by the I/O
//! layer (a missing dependency) and for a `lacking` list too long for one message, with timeouts,
//! retries and a per-peer window that never starts a later kind while an earlier one is outstanding.
//! The store must still tolerate out-of-order arrival (a lost roster op is only found again by the next
//! reconciliation); the order is a strong hint, not a guarantee.
//!
//! Sessions re-run on every connection and every [`Config::resync_interval`] (jittered, and postponed by
//! any session with that peer that completed in between), which also repairs pushes lost in transit.
//!
//! # Relay: what arrives by sync moves on in seconds
//!
//! Gossip carries what is published while peers are connected; an item made offline, or missed during a
//! partition, reaches a node only by sync, and gossip never sees it. So when a sync brings new items (the
//! mesh leaves out batches of seat beacons alone), the I/O layer calls [`SyncEngine::relay_soon`]: every
//! other connected peer is reconciled again [`Config::relay_delay`] (2 s) after the last such call
//! instead of at its next resync, and the items cross a mesh hop by hop in seconds rather than a minute
//! per hop. The delay restarts with each call, so the batches of a first sync bring one session per peer,
//! after the last batch. A relayed session never opens sooner than `session_timeout` (20 s) after our
//! last one with that peer ended, so that whatever was lost on the way, relays never stack sessions beyond
//! the peer's limit: a relay takes 2 s, or up to 22 s when a session with that peer had just ended.

mod engine;
mod reconcile;
mod set;
pub mod sim;
mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use engine::{Config, ConfigError, Intent, SessionStats, SyncEngine};
pub use set::{Bound, Fingerprint, ItemSet, KeyRange, MemorySet};
pub use wire::{Mode, Msg, Range, MAX_MESSAGE_BYTES, MAX_WANT_IDS, VERSION};

/// What kind of signed thing an item is. The declaration order is the transfer order: roster ops are
/// sent before the checkpoints and listing changes they authorise (checkpoints first, so a joiner needs
/// few changes), then beacons, then coordinators' verifications and proposed coordinator changes (both
/// need only roster ops). The declaration order is also the wire tag (the variant's position in serde's
/// encoding) and [`ItemKind::byte`]: 0 to 5, the same in `docs/PROTOCOL.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    RosterOp,
    Checkpoint,
    ListingChange,
    SeatBeacon,
    Verification,
    Proposal,
}

impl ItemKind {
    /// Every kind, in transfer order.
    pub const ALL: [ItemKind; 6] = [
        ItemKind::RosterOp,
        ItemKind::Checkpoint,
        ItemKind::ListingChange,
        ItemKind::SeatBeacon,
        ItemKind::Verification,
        ItemKind::Proposal,
    ];

    /// The byte that leads this kind's keys, so byte order and transfer order agree.
    pub fn byte(self) -> u8 {
        match self {
            ItemKind::RosterOp => 0,
            ItemKind::Checkpoint => 1,
            ItemKind::ListingChange => 2,
            ItemKind::SeatBeacon => 3,
            ItemKind::Verification => 4,
            ItemKind::Proposal => 5,
        }
    }
}

/// The 32-byte content hash that names a signed item.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemId(pub [u8; 32]);

impl From<deskmesh_keys::Hash> for ItemId {
    fn from(hash: deskmesh_keys::Hash) -> Self {
        Self(hash.0)
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits tell items apart in logs and test failures without flooding them.
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

/// A reconciliation key: an item's kind and id. Keys sort by kind first, then id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Item {
    pub kind: ItemKind,
    pub id: ItemId,
}

impl Item {
    pub fn new(kind: ItemKind, id: ItemId) -> Self {
        Self { kind, id }
    }

    /// The 33 key bytes (kind byte, then id) that range bounds are compared with.
    pub fn key(&self) -> [u8; 33] {
        let mut key = [0u8; 33];
        key[0] = self.kind.byte();
        key[1..].copy_from_slice(&self.id.0);
        key
    }
}

/// Why a peer's message was refused. Every variant is the peer's fault (a correct peer never causes
/// one), so the I/O layer may turn any of them into a peer-score penalty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("sync message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("sync message has protocol version {0} but this node speaks version {VERSION}")]
    Version(u8),
    #[error("sync message could not be decoded: {0}")]
    Malformed(String),
    #[error("sync message has invalid ranges: {0}")]
    BadRanges(&'static str),
    #[error("peer asked for {count} items in one request but the limit is {max}")]
    WantTooLarge { count: usize, max: usize },
    #[error("peer opened a sync session while {max} of its sessions were already open")]
    TooManySessions { max: usize },
    #[error("peer kept a sync session going past {max} rounds")]
    TooManyRounds { max: u32 },
}
