//! The node's local store: opaque signed bytes keyed by ids, behind one small trait per concern.
//!
//! The store never decodes what it keeps; `deskmesh-keys` and `deskmesh-crdt-model` own the formats. Signed
//! roster operations ([`RosterStore`]), signed listing changes ([`ChangeStore`]), signed seat beacons
//! ([`BeaconStore`]), coordinators' signed verifications of listing facts ([`VerificationStore`]) and
//! quorum changes still collecting co-signatures ([`ProposalStore`]) are the source of truth. The directory index ([`IndexStore`]: materialised listings and
//! the reasons changes were rejected) is derived and can be rebuilt from them at any time. [`MetaStore`]
//! holds small settings and the on-disk format version.
//!
//! Every write method is durable when it returns, and a write that touches several keys is applied
//! atomically, so a crash at any instant leaves either all or none of it. [`SledStore`] is the real
//! implementation; [`MemoryStore`] is its in-memory twin for unit tests elsewhere. Both run the same
//! behaviour suite below. The on-disk layout is documented in `docs/STORAGE.md`.

use std::io;
use std::path::PathBuf;

use deskmesh_keys::{Hash, SpaceId};

mod memory;
mod sled_store;
mod snapshot;

pub use memory::MemoryStore;
pub use sled_store::{close_in_background, SledStore};
pub use snapshot::DirectorySnapshot;

/// The store format this build writes and reads. A store stamped with a higher number is refused; one
/// stamped 1 (before verifications and proposals had trees of their own) is upgraded when opened.
pub const FORMAT_VERSION: u32 = 2;

/// The meta key that holds [`FORMAT_VERSION`] as ASCII decimal; reserved, [`MetaStore::put_meta`] refuses it.
pub const FORMAT_VERSION_KEY: &str = "format_version";

/// One rejection within a space: the change hash and the reason JSON.
pub type SpaceRejection = ([u8; 32], Vec<u8>);

/// One rejection anywhere: the space, the change hash and the reason JSON.
pub type RejectedChange = (SpaceId, [u8; 32], Vec<u8>);

/// Why a store operation failed. Each message is one sentence that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {} is not writable: {source}; fix the directory's permissions or use another --home",
        path.display()
    )]
    NotWritable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "another deskmesh process is using the store at {}; stop it or use its control socket",
        path.display()
    )]
    Locked { path: PathBuf },

    /// `source` says what was found (the OS error, or how much room was left); the sentence is the same.
    #[error("the disk holding the store at {} is full; free some space and try again", path.display())]
    DiskFull { path: PathBuf, source: io::Error },

    #[error(
        "the store at {} failed a write and takes no more until it is opened again; a running node restarts itself, or run the command again",
        path.display()
    )]
    NeedsReopen { path: PathBuf },

    #[error(
        "the store at {} is corrupt ({detail}); move it aside and let the node resync from its peers",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the store at {} was written by a newer deskmesh (store format {found}, this build reads up to {supported}); upgrade deskmesh",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    #[error("cannot read or write the store at {}: {source}; check the disk and try again", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the database under the store at {} failed ({detail}); restart deskmesh and report it if it happens again",
        path.display()
    )]
    Backend { path: PathBuf, detail: String },

    #[error("the meta key {key:?} is reserved for the store itself; use another key")]
    ReservedMetaKey { key: String },
}

/// Signed roster operations, keyed by their hash. Source of truth.
pub trait RosterStore {
    /// Keeps an accepted roster operation. Returns `true` if it was new; an operation already kept is left
    /// untouched (the first bytes win). Storing it drops any earlier rejection of the same hash first,
    /// since an accepted operation is no longer rejected (a rejection a crash left beside its stored
    /// operation is not listed by [`RosterStore::rejected_ops`]).
    fn put_op(&self, hash: &Hash, bytes: &[u8]) -> Result<bool, StoreError>;
    /// The bytes of one operation, if kept.
    fn op(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether an operation is kept, without copying its bytes.
    fn has_op(&self, hash: &Hash) -> Result<bool, StoreError>;
    /// Every kept operation, ordered by hash (not causally: the roster orders them).
    fn ops(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError>;
    /// Keeps a rejected operation and why, for the audit; a later call for the same hash replaces the
    /// reason. It does not touch the accepted operations.
    fn put_rejected_op(&self, hash: &Hash, bytes: &[u8], reason: &str) -> Result<(), StoreError>;
    /// Every rejected operation with its reason, ordered by hash, but for those kept since.
    fn rejected_ops(&self) -> Result<Vec<(Hash, Vec<u8>, String)>, StoreError>;
    /// How many operations are kept.
    fn op_count(&self) -> Result<u64, StoreError>;
    /// The caller's saved state of the roster the kept operations make (derived, opaque), if any.
    /// [`RosterStore::put_op`] drops it just before it keeps a new operation, and taking back an operation
    /// drops it too, so a saved state never misses an operation kept after it (one a crash left beside a
    /// new operation was saved with fewer operations than [`RosterStore::op_count`] says).
    fn roster_state(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves the roster's state, replacing the one saved before.
    fn put_roster_state(&self, state: &[u8]) -> Result<(), StoreError>;
}

/// Signed listing changes per space, keyed by change hash. Source of truth.
///
/// Every received change is kept here, valid or not (p2p lesson 5): whether a change is valid depends on
/// the roster, which can still change, so validity is recomputed on every rebuild and only the reasons
/// live in the derived [`IndexStore`]. Keeping a new change also marks its space dirty in the index.
pub trait ChangeStore {
    /// Keeps one change. Returns `true` if it was new; a change already kept is left untouched.
    fn put_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        bytes: &[u8],
    ) -> Result<bool, StoreError>;
    /// Keeps many changes of one space with one flush (for sync). Returns, for each input in order,
    /// whether it was new; a hash repeated in the input is new only the first time. Each change is kept
    /// whole or not at all, and never without its space's dirty mark; a crash before the flush may keep
    /// some of them and not others.
    fn put_many_changes(
        &self,
        space: &SpaceId,
        changes: &[([u8; 32], &[u8])],
    ) -> Result<Vec<bool>, StoreError>;
    /// The bytes of one change, if kept.
    fn change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every change of a space, ordered by change hash (not causally).
    fn changes(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Whether a change is kept, without copying its bytes.
    fn has_change(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// The hashes of every change of a space, ordered.
    fn change_hashes(&self, space: &SpaceId) -> Result<Vec<[u8; 32]>, StoreError>;
    /// How many changes of a space are kept, without copying them.
    fn change_count(&self, space: &SpaceId) -> Result<usize, StoreError>;
    /// Every space with at least one kept change, ordered.
    fn spaces(&self) -> Result<Vec<SpaceId>, StoreError>;
}

/// Signed checkpoints of space documents, keyed by space and checkpoint id, and which stored or unstored
/// changes each covers. Source of truth (the signed bytes); the cover marks follow from them.
///
/// A checkpoint carries a space's whole document, so the changes it covers need not travel one by one:
/// the node leaves covered changes out of what it offers to sync, while keeping any it holds for auditors.
pub trait CheckpointStore {
    /// Keeps a checkpoint and marks the changes it covers (pointing each at it), in one atomic write that
    /// also marks the space dirty. Returns `true` if the checkpoint was new.
    fn put_checkpoint(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
        covered: &[[u8; 32]],
    ) -> Result<bool, StoreError>;
    /// Forgets a checkpoint another one covers entirely (its cover marks were moved to that one).
    fn remove_checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError>;
    /// The bytes of one checkpoint, if kept.
    fn checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<Option<Vec<u8>>, StoreError>;
    /// The checkpoints of one space as (id, bytes), ordered by id.
    fn space_checkpoints(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError>;
    /// Every checkpoint as (space, id, bytes), ordered by space then id.
    fn checkpoints(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError>;
    /// Whether a kept checkpoint covers this change.
    fn is_covered(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// Every covered change as (space, change hash), ordered.
    fn covered(&self) -> Result<Vec<(SpaceId, [u8; 32])>, StoreError>;
    /// The covered changes of one space with the checkpoint each mark points at, ordered by change.
    fn space_covered(&self, space: &SpaceId) -> Result<Vec<([u8; 32], Hash)>, StoreError>;
}

/// The newest signed seat beacon per (space, pool). The caller decides which beacon is newest and when one
/// has expired; the store only keeps the last one it was given.
pub trait BeaconStore {
    /// Keeps `bytes` as the beacon of this pool, replacing any earlier one.
    fn put_beacon(&self, space: &SpaceId, pool: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Forgets the beacon of a pool (expired, or the pool left the listing). Returns whether one was kept.
    fn remove_beacon(&self, space: &SpaceId, pool: &str) -> Result<bool, StoreError>;
    /// The beacon of one pool, if kept.
    fn beacon(&self, space: &SpaceId, pool: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The beacons of one space as (pool, bytes), ordered by pool.
    fn space_beacons(&self, space: &SpaceId) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every beacon, ordered by space then pool.
    fn beacons(&self) -> Result<Vec<(SpaceId, String, Vec<u8>)>, StoreError>;
}

/// Coordinators' signed verifications of listing facts, per space, keyed by the verification's item id.
/// Source of truth.
pub trait VerificationStore {
    /// Keeps one verification. Returns `true` if it was new; one already kept is left untouched.
    fn put_verification(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
    ) -> Result<bool, StoreError>;
    /// The verifications of one space as (id, bytes), ordered by id.
    fn space_verifications(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError>;
    /// Every verification as (space, id, bytes), ordered by space then id.
    fn verifications(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError>;
    /// Forgets a verification (its space was revoked). Returns whether one was kept.
    fn remove_verification(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError>;
}

/// Proposed quorum changes of the roster (coordinator changes) still collecting co-signatures, keyed by
/// the roster operation's hash. The value is the signed operation with every signature gathered so far;
/// the caller merges signatures and removes a proposal once the roster has taken it.
pub trait ProposalStore {
    /// Keeps `bytes` as the proposal for operation `op`, replacing what was kept for it.
    fn put_proposal(&self, op: &Hash, bytes: &[u8]) -> Result<(), StoreError>;
    /// The proposal for operation `op`, if kept.
    fn proposal(&self, op: &Hash) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every proposal as (operation hash, bytes), ordered by hash.
    fn proposals(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError>;
    /// Forgets a proposal. Returns whether one was kept.
    fn remove_proposal(&self, op: &Hash) -> Result<bool, StoreError>;
}

/// Rows of a tree keyed by space: each space with its value.
pub type SpaceRows = Vec<(SpaceId, Vec<u8>)>;

/// What [`IndexStore::replace_space_states`] writes for one space: the arguments of
/// [`IndexStore::replace_space_state`].
#[derive(Debug, Clone, Copy)]
pub struct SpaceState<'a> {
    pub space: &'a SpaceId,
    pub listing: Option<&'a [u8]>,
    pub rejected: &'a [([u8; 32], &'a [u8])],
    pub doc_state: Option<&'a [u8]>,
    pub search_row: Option<&'a [u8]>,
}

/// The derived directory index: one materialised listing (JSON with its summary) per space, the reasons
/// changes were rejected, and which spaces need rebuilding. All of it can be rebuilt from the source of
/// truth, so [`IndexStore::clear_index`] is always safe.
///
/// A space is *dirty* when its index may lag behind its changes: [`ChangeStore`] marks a space dirty
/// before it keeps a new change, [`IndexStore::clear_index`] marks every space dirty, and
/// [`IndexStore::put_entry`] or [`IndexStore::replace_space_index`] clear the mark. After a crash,
/// [`IndexStore::dirty_spaces`] holds every space to rebuild (and perhaps one whose new change was lost
/// with the crash, which rebuilds to what it was).
pub trait IndexStore {
    /// Sets the materialised listing of a space and clears its dirty mark, atomically. Its rejections are
    /// left as they are.
    fn put_entry(&self, space: &SpaceId, json: &[u8]) -> Result<(), StoreError>;
    /// The materialised listing of a space, if any.
    fn entry(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every materialised listing, ordered by space.
    fn entries(&self) -> Result<Vec<(SpaceId, Vec<u8>)>, StoreError>;
    /// How many spaces have a materialised listing, without copying them out.
    fn entry_count(&self) -> Result<usize, StoreError>;
    /// Every listed space's search row (opaque bytes the node wrote with its listing), ordered by
    /// space, when the rows are complete and of `format`; `None` otherwise. The rows are complete from
    /// [`IndexStore::put_search_rows`] on for as long as every listing written comes with its row
    /// ([`IndexStore::replace_space_state`]); a listing written without one ([`IndexStore::put_entry`],
    /// or no row given) and [`IndexStore::clear_index`] end that.
    fn search_rows(&self, format: &[u8]) -> Result<Option<SpaceRows>, StoreError>;
    /// The format of the search rows while they are complete, `None` when they are not.
    fn search_rows_format(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces every search row with `rows` (one per listed space) and marks them complete, of
    /// `format`, atomically.
    fn put_search_rows(&self, format: &[u8], rows: &[(SpaceId, Vec<u8>)])
        -> Result<(), StoreError>;
    /// Records why one change was rejected (the change's bytes stay in [`ChangeStore`]); replaces any
    /// earlier reason for the same change.
    fn put_rejected_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        reason_json: &[u8],
    ) -> Result<(), StoreError>;
    /// The rejected changes of one space as (change hash, reason JSON), ordered by hash.
    fn space_rejections(&self, space: &SpaceId) -> Result<Vec<SpaceRejection>, StoreError>;
    /// Every rejected change as (space, change hash, reason JSON), ordered by space then hash.
    fn rejected_changes(&self) -> Result<Vec<RejectedChange>, StoreError>;
    /// Replaces everything derived about one space in one atomic write: its listing (`None` removes it,
    /// for a space none of whose changes are valid) with its search row (a listing without one leaves
    /// the search rows incomplete, see [`IndexStore::search_rows`]), its full set of rejections and its
    /// saved document state (`None` removes it); clears its dirty mark.
    fn replace_space_state(
        &self,
        space: &SpaceId,
        listing: Option<&[u8]>,
        rejected: &[([u8; 32], &[u8])],
        doc_state: Option<&[u8]>,
        search_row: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// [`IndexStore::replace_space_state`] for many spaces in one atomic write (a batch of received
    /// items touches hundreds; on sled each atomic write costs two synchronous log writes, so one for
    /// the batch instead of one per space). All are written or none.
    fn replace_space_states(&self, states: &[SpaceState<'_>]) -> Result<(), StoreError> {
        for s in states {
            self.replace_space_state(s.space, s.listing, s.rejected, s.doc_state, s.search_row)?;
        }
        Ok(())
    }
    /// [`IndexStore::replace_space_state`] without a saved document state.
    fn replace_space_index(
        &self,
        space: &SpaceId,
        listing: Option<&[u8]>,
        rejected: &[([u8; 32], &[u8])],
    ) -> Result<(), StoreError> {
        self.replace_space_state(space, listing, rejected, None, None)
    }
    /// The saved state of a space's document (opaque bytes the node wrote with its index), if any.
    fn doc_state(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether a space's index may lag behind its changes.
    fn is_dirty(&self, space: &SpaceId) -> Result<bool, StoreError>;
    /// The spaces whose index may lag behind their changes, ordered.
    fn dirty_spaces(&self) -> Result<Vec<SpaceId>, StoreError>;
    /// Drops every listing, rejection and saved document state and marks every known space dirty,
    /// atomically, for a full rebuild.
    fn clear_index(&self) -> Result<(), StoreError>;
}

/// Small named settings of the node.
pub trait MetaStore {
    /// The value of a meta key, if set.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets a meta key. [`FORMAT_VERSION_KEY`] is reserved and refused.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// A bounded log of signed items refused at the door: bad signatures and authors the roster does not
/// authorise. Such items are never stored (a non-member cannot make a node keep its bytes), but the audit
/// must still say what was refused and why. Oldest entries are dropped beyond [`REFUSED_LOG_LIMIT`].
pub trait RefusedLog {
    /// Appends one record (JSON) under a sequence number; durable when it returns.
    fn log_refused(&self, record_json: &[u8]) -> Result<(), StoreError>;
    /// Every record kept, oldest first.
    fn refused(&self) -> Result<Vec<Vec<u8>>, StoreError>;
}

/// How many refusal records the log keeps.
pub const REFUSED_LOG_LIMIT: usize = 10_000;

/// Everything the node keeps locally. Object safe, so callers can hold an `Arc<dyn Store>`.
pub trait Store:
    RosterStore
    + ChangeStore
    + CheckpointStore
    + BeaconStore
    + VerificationStore
    + ProposalStore
    + IndexStore
    + MetaStore
    + RefusedLog
    + Send
    + Sync
{
    /// Makes every earlier write durable. Write methods already flush; this is for callers that want an
    /// explicit barrier (before exiting, say).
    fn flush(&self) -> Result<(), StoreError>;

    /// While `true`, write methods skip their own flush; setting it back to `false` flushes once. For a
    /// caller applying a batch of items received together (a sync transfer), which reports none of them
    /// stored before the batch is flushed: one fsync per batch instead of two per item.
    fn defer_flush(&self, deferred: bool) -> Result<(), StoreError>;
    /// Whether the database failed a write and must be opened again (by a new process) before it takes
    /// any other; reads still work meanwhile.
    fn needs_reopen(&self) -> bool {
        false
    }
    /// Notes on disk which writes the next opening must take back (every write since the last successful
    /// flush); once this succeeds, the process may end and open the store again. Fails while the disk has
    /// no room for the note.
    fn prepare_reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Where the store stands: a value that every write moves on and nothing else does (sled's log
    /// position), for telling whether anything was written between two instants; `None` for a store that
    /// cannot say (in memory). A write moves it when it reserves its place in the log, a moment before
    /// readers see it: a caller comparing positions around a read must not have another thread writing
    /// meanwhile (the directory snapshot is read and kept by a command without a daemon, which has none).
    fn position(&self) -> Option<i64> {
        None
    }

    /// The directory snapshot beside the store (every search row in `format` and every beacon, see
    /// [`DirectorySnapshot`]) when it was taken where the store stands now; `None` when there is none, it
    /// is older, or it does not read back. A cache: never an error.
    fn directory_snapshot(&self, format: &[u8]) -> Option<DirectorySnapshot> {
        let _ = format;
        None
    }

    /// Keeps `rows` (in `format`) and `beacons`, read from the store since it stood at `read_at`, as the
    /// directory snapshot, after making every write durable; only when nothing was written since
    /// `read_at`. Whether it was kept: failing to keep it is not an error.
    fn keep_directory_snapshot(
        &self,
        read_at: i64,
        format: &[u8],
        rows: &SpaceRows,
        beacons: &[(SpaceId, String, Vec<u8>)],
    ) -> bool {
        let _ = (read_at, format, rows, beacons);
        false
    }
}

/// Refuses writes to keys the store manages itself.
fn check_meta_key(key: &str) -> Result<(), StoreError> {
    if key == FORMAT_VERSION_KEY {
        return Err(StoreError::ReservedMetaKey {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// The same behaviour suite, run against every implementation.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;

    fn space(n: u8) -> SpaceId {
        // Distinct valid ids that sort in `n` order: sixteen equal base32 characters after `sp-`.
        let body: String = std::iter::repeat_n(char::from(b'a' + n), 16).collect();
        format!("sp-{body}")
            .parse()
            .expect("test space id is valid")
    }

    fn h(n: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0] = n;
        b[31] = n.wrapping_mul(7);
        b
    }

    pub(super) fn roster_put_op_reports_new_and_keeps_first(s: &dyn Store) {
        assert!(s.put_op(&Hash(h(1)), b"op-one").unwrap());
        assert!(!s.put_op(&Hash(h(1)), b"other").unwrap());
        assert!(s.put_op(&Hash(h(0)), b"op-zero").unwrap());
        assert_eq!(s.op(&Hash(h(1))).unwrap().as_deref(), Some(&b"op-one"[..]));
        assert_eq!(s.op(&Hash(h(9))).unwrap(), None);
        assert!(s.has_op(&Hash(h(0))).unwrap());
        assert!(!s.has_op(&Hash(h(9))).unwrap());
        assert_eq!(
            s.ops().unwrap(),
            vec![
                (Hash(h(0)), b"op-zero".to_vec()),
                (Hash(h(1)), b"op-one".to_vec())
            ]
        );
    }

    pub(super) fn roster_rejected_ops_are_kept_apart(s: &dyn Store) {
        s.put_rejected_op(&Hash(h(2)), b"bad", "signature does not verify")
            .unwrap();
        s.put_rejected_op(&Hash(h(3)), b"", "").unwrap();
        s.put_rejected_op(&Hash(h(2)), b"bad", "unknown parent")
            .unwrap();
        assert!(s.ops().unwrap().is_empty());
        assert!(!s.has_op(&Hash(h(2))).unwrap());
        assert_eq!(
            s.rejected_ops().unwrap(),
            vec![
                (Hash(h(2)), b"bad".to_vec(), "unknown parent".to_string()),
                (Hash(h(3)), Vec::new(), String::new()),
            ]
        );
        // Accepting the operation later drops its rejection.
        assert!(s.put_op(&Hash(h(2)), b"bad").unwrap());
        assert_eq!(
            s.rejected_ops().unwrap(),
            vec![(Hash(h(3)), Vec::new(), String::new())]
        );
        // A rejection beside its stored operation (what a crash between `put_op`'s writes could leave)
        // is not listed.
        s.put_rejected_op(&Hash(h(2)), b"bad", "left behind")
            .unwrap();
        assert_eq!(
            s.rejected_ops().unwrap(),
            vec![(Hash(h(3)), Vec::new(), String::new())]
        );
    }

    pub(super) fn changes_are_per_space(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        assert!(s.put_change(&a, &h(2), b"a2").unwrap());
        assert!(s.put_change(&a, &h(1), b"a1").unwrap());
        assert!(!s.put_change(&a, &h(1), b"changed").unwrap());
        assert!(s.put_change(&b, &h(1), b"b1").unwrap());
        assert_eq!(s.changes(&a).unwrap(), vec![b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(s.changes(&b).unwrap(), vec![b"b1".to_vec()]);
        assert!(s.changes(&space(2)).unwrap().is_empty());
        assert_eq!(s.change_hashes(&a).unwrap(), vec![h(1), h(2)]);
        assert!(s.has_change(&b, &h(1)).unwrap());
        assert!(!s.has_change(&b, &h(2)).unwrap());
        assert_eq!(s.change(&a, &h(1)).unwrap().as_deref(), Some(&b"a1"[..]));
        assert_eq!(s.change(&b, &h(2)).unwrap(), None);
        assert_eq!(s.spaces().unwrap(), vec![a, b]);
    }

    pub(super) fn put_many_changes_reports_each(s: &dyn Store) {
        let a = space(3);
        assert!(s.put_change(&a, &h(1), b"one").unwrap());
        let batch: [([u8; 32], &[u8]); 4] =
            [(h(1), b"x"), (h(2), b"two"), (h(3), b"three"), (h(2), b"y")];
        assert_eq!(
            s.put_many_changes(&a, &batch).unwrap(),
            vec![false, true, true, false]
        );
        assert_eq!(
            s.changes(&a).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert!(s.put_many_changes(&a, &[]).unwrap().is_empty());
    }

    pub(super) fn spaces_skip_many_changes(s: &dyn Store) {
        let spaces: Vec<SpaceId> = (0..5).map(space).collect();
        for sp in &spaces {
            let batch: Vec<([u8; 32], &[u8])> = (0..20).map(|i| (h(i), &b"c"[..])).collect();
            s.put_many_changes(sp, &batch).unwrap();
        }
        assert_eq!(s.spaces().unwrap(), spaces);
        assert_eq!(s.change_hashes(&spaces[2]).unwrap().len(), 20);
    }

    pub(super) fn beacons_keep_the_last(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        s.put_beacon(&a, "hot-desks", b"old").unwrap();
        s.put_beacon(&a, "hot-desks", b"new").unwrap();
        s.put_beacon(&a, "booths", b"booth").unwrap();
        s.put_beacon(&b, "", b"unnamed").unwrap();
        s.put_beacon(&b, "caf\u{e9} \u{0}x", b"odd").unwrap();
        assert_eq!(
            s.beacon(&a, "hot-desks").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(s.beacon(&a, "missing").unwrap(), None);
        assert_eq!(
            s.beacon(&b, "caf\u{e9} \u{0}x").unwrap().as_deref(),
            Some(&b"odd"[..])
        );
        assert_eq!(
            s.space_beacons(&a).unwrap(),
            vec![
                ("booths".to_string(), b"booth".to_vec()),
                ("hot-desks".to_string(), b"new".to_vec())
            ]
        );
        assert_eq!(
            s.beacons().unwrap(),
            vec![
                (a.clone(), "booths".to_string(), b"booth".to_vec()),
                (a.clone(), "hot-desks".to_string(), b"new".to_vec()),
                (b.clone(), String::new(), b"unnamed".to_vec()),
                (b.clone(), "caf\u{e9} \u{0}x".to_string(), b"odd".to_vec()),
            ]
        );
        assert!(s.remove_beacon(&a, "booths").unwrap());
        assert!(!s.remove_beacon(&a, "booths").unwrap());
        assert_eq!(s.space_beacons(&a).unwrap().len(), 1);
    }

    pub(super) fn verifications_are_per_space_and_first_write_wins(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        assert!(s.put_verification(&a, &Hash(h(2)), b"v2").unwrap());
        assert!(s.put_verification(&a, &Hash(h(1)), b"v1").unwrap());
        assert!(!s.put_verification(&a, &Hash(h(1)), b"other").unwrap());
        assert!(s.put_verification(&b, &Hash(h(1)), b"b1").unwrap());
        assert_eq!(
            s.space_verifications(&a).unwrap(),
            vec![(Hash(h(1)), b"v1".to_vec()), (Hash(h(2)), b"v2".to_vec())]
        );
        assert_eq!(s.verifications().unwrap().len(), 3);
        assert_eq!(s.verifications().unwrap()[2].0, b);
        assert!(s.remove_verification(&a, &Hash(h(1))).unwrap());
        assert!(!s.remove_verification(&a, &Hash(h(1))).unwrap());
        assert_eq!(s.space_verifications(&a).unwrap().len(), 1);
        assert!(s.space_verifications(&space(3)).unwrap().is_empty());
    }

    pub(super) fn proposals_keep_the_last_bytes(s: &dyn Store) {
        s.put_proposal(&Hash(h(2)), b"one signature").unwrap();
        s.put_proposal(&Hash(h(2)), b"two signatures").unwrap();
        s.put_proposal(&Hash(h(1)), b"other").unwrap();
        assert_eq!(
            s.proposal(&Hash(h(2))).unwrap().as_deref(),
            Some(&b"two signatures"[..])
        );
        assert_eq!(s.proposal(&Hash(h(9))).unwrap(), None);
        assert_eq!(
            s.proposals().unwrap(),
            vec![
                (Hash(h(1)), b"other".to_vec()),
                (Hash(h(2)), b"two signatures".to_vec())
            ]
        );
        assert!(s.remove_proposal(&Hash(h(1))).unwrap());
        assert!(!s.remove_proposal(&Hash(h(1))).unwrap());
        assert_eq!(s.proposals().unwrap().len(), 1);
    }

    pub(super) fn index_entries_and_rejections(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        s.put_entry(&b, b"{\"name\":\"b\"}").unwrap();
        s.put_entry(&a, b"{\"name\":\"a0\"}").unwrap();
        s.put_entry(&a, b"{\"name\":\"a\"}").unwrap();
        assert_eq!(
            s.entry(&a).unwrap().as_deref(),
            Some(&b"{\"name\":\"a\"}"[..])
        );
        assert_eq!(s.entry(&space(2)).unwrap(), None);
        assert_eq!(
            s.entry_count().unwrap(),
            2,
            "a replaced listing counts once"
        );
        assert_eq!(
            s.entries().unwrap(),
            vec![
                (a.clone(), b"{\"name\":\"a\"}".to_vec()),
                (b.clone(), b"{\"name\":\"b\"}".to_vec())
            ]
        );
        s.put_rejected_change(&b, &h(5), b"{\"why\":\"revoked\"}")
            .unwrap();
        s.put_rejected_change(&a, &h(6), b"{\"why\":\"x\"}")
            .unwrap();
        s.put_rejected_change(&a, &h(6), b"{\"why\":\"unauthorised\"}")
            .unwrap();
        assert_eq!(
            s.rejected_changes().unwrap(),
            vec![
                (a.clone(), h(6), b"{\"why\":\"unauthorised\"}".to_vec()),
                (b.clone(), h(5), b"{\"why\":\"revoked\"}".to_vec()),
            ]
        );
        assert_eq!(
            s.space_rejections(&b).unwrap(),
            vec![(h(5), b"{\"why\":\"revoked\"}".to_vec())]
        );
    }

    pub(super) fn replace_space_index_replaces_everything(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        s.put_entry(&a, b"old").unwrap();
        s.put_rejected_change(&a, &h(1), b"r1").unwrap();
        s.put_rejected_change(&a, &h(2), b"r2").unwrap();
        s.put_rejected_change(&b, &h(1), b"other space").unwrap();
        s.replace_space_index(&a, Some(b"new"), &[(h(3), b"r3"), (h(2), b"r2'")])
            .unwrap();
        assert_eq!(s.entry(&a).unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(
            s.space_rejections(&a).unwrap(),
            vec![(h(2), b"r2'".to_vec()), (h(3), b"r3".to_vec())]
        );
        assert_eq!(
            s.space_rejections(&b).unwrap(),
            vec![(h(1), b"other space".to_vec())]
        );
        s.replace_space_index(&a, None, &[]).unwrap();
        assert_eq!(s.entry(&a).unwrap(), None);
        assert!(s.space_rejections(&a).unwrap().is_empty());
        assert_eq!(s.entries().unwrap(), Vec::new());
    }

    pub(super) fn doc_states_travel_with_the_index(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        assert_eq!(s.doc_state(&a).unwrap(), None);
        s.put_change(&a, &h(1), b"a1").unwrap();
        s.put_change(&a, &h(2), b"a2").unwrap();
        assert_eq!(s.change_count(&a).unwrap(), 2);
        assert_eq!(s.change_count(&b).unwrap(), 0);
        assert!(s.is_dirty(&a).unwrap());
        s.replace_space_state(&a, Some(b"{}"), &[], Some(b"state"), None)
            .unwrap();
        assert!(!s.is_dirty(&a).unwrap());
        assert_eq!(s.doc_state(&a).unwrap().as_deref(), Some(&b"state"[..]));
        // Writing the index without a state drops the old one: it no longer describes the index.
        s.replace_space_index(&a, Some(b"{}"), &[]).unwrap();
        assert_eq!(s.doc_state(&a).unwrap(), None);
        s.replace_space_state(&a, Some(b"{}"), &[], Some(b"again"), None)
            .unwrap();
        s.clear_index().unwrap();
        assert_eq!(s.doc_state(&a).unwrap(), None);
        assert!(s.is_dirty(&a).unwrap());
    }

    pub(super) fn many_spaces_are_replaced_in_one_write(s: &dyn Store) {
        let (a, b, c) = (space(0), space(1), space(2));
        for x in [&a, &b, &c] {
            s.put_change(x, &h(1), b"change").unwrap();
        }
        s.put_rejected_change(&a, &h(1), b"\"old reason\"").unwrap();
        let reasons: [([u8; 32], &[u8]); 1] = [(h(2), b"\"new reason\"")];
        let state = |space, listing, doc_state| SpaceState {
            space,
            listing,
            rejected: &[],
            doc_state,
            search_row: None,
        };
        s.replace_space_states(&[
            SpaceState {
                rejected: &reasons,
                ..state(&a, Some(&b"{\"a\":1}"[..]), Some(&b"sa"[..]))
            },
            state(&b, Some(&b"{\"b\":1}"[..]), None),
        ])
        .unwrap();
        assert_eq!(s.entry(&a).unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(s.entry(&b).unwrap().as_deref(), Some(&b"{\"b\":1}"[..]));
        assert_eq!(s.doc_state(&a).unwrap().as_deref(), Some(&b"sa"[..]));
        assert_eq!(s.doc_state(&b).unwrap(), None);
        assert_eq!(
            s.space_rejections(&a).unwrap(),
            vec![(h(2), b"\"new reason\"".to_vec())],
            "each space's rejections replaced"
        );
        assert_eq!(
            s.dirty_spaces().unwrap(),
            vec![c.clone()],
            "only c is left dirty"
        );
        s.replace_space_states(&[]).unwrap();
        s.replace_space_states(&[state(&a, None, None)]).unwrap();
        assert_eq!(s.entry(&a).unwrap(), None);
        assert!(s.space_rejections(&a).unwrap().is_empty());
    }

    pub(super) fn search_rows_stay_complete_only_while_every_listing_brings_its_row(s: &dyn Store) {
        let (a, b, c) = (space(0), space(1), space(2));
        let rows = |s: &dyn Store, f: &[u8]| s.search_rows(f).unwrap();
        assert_eq!(rows(s, b"v1"), None, "never written: not complete");
        assert_eq!(s.search_rows_format().unwrap(), None);
        s.put_entry(&a, b"{}").unwrap();
        s.put_search_rows(b"v1", &[(a.clone(), b"ra".to_vec())])
            .unwrap();
        assert_eq!(rows(s, b"v1"), Some(vec![(a.clone(), b"ra".to_vec())]));
        assert_eq!(rows(s, b"v2"), None, "another format is not complete");
        assert_eq!(s.search_rows_format().unwrap().as_deref(), Some(&b"v1"[..]));
        // Listings written with their rows keep them complete; a removed listing takes its row along.
        s.replace_space_state(&b, Some(b"{}"), &[], None, Some(b"rb"))
            .unwrap();
        s.replace_space_state(&c, Some(b"{}"), &[], None, Some(b"rc"))
            .unwrap();
        s.replace_space_state(&a, Some(b"{}"), &[], None, Some(b"ra2"))
            .unwrap();
        s.replace_space_state(&c, None, &[], None, None).unwrap();
        assert_eq!(
            rows(s, b"v1"),
            Some(vec![
                (a.clone(), b"ra2".to_vec()),
                (b.clone(), b"rb".to_vec())
            ])
        );
        // A listing without its row ends completeness, whichever way it is written.
        s.replace_space_index(&a, Some(b"{}"), &[]).unwrap();
        assert_eq!(rows(s, b"v1"), None);
        s.put_search_rows(
            b"v1",
            &[(a.clone(), b"ra".to_vec()), (b.clone(), b"rb".to_vec())],
        )
        .unwrap();
        s.put_entry(&b, b"{}").unwrap();
        assert_eq!(rows(s, b"v1"), None);
        s.put_search_rows(b"v1", &[(a.clone(), b"ra".to_vec())])
            .unwrap();
        assert_eq!(
            rows(s, b"v1"),
            Some(vec![(a.clone(), b"ra".to_vec())]),
            "replaced whole"
        );
        s.clear_index().unwrap();
        assert_eq!(rows(s, b"v1"), None);
    }

    pub(super) fn checkpoints_and_their_cover_marks(s: &dyn Store) {
        let (a, b) = (space(0), space(1));
        assert!(s
            .put_checkpoint(&a, &Hash(h(7)), b"cp7", &[h(1), h(2)])
            .unwrap());
        assert!(!s
            .put_checkpoint(&a, &Hash(h(7)), b"other", &[h(1), h(2)])
            .unwrap());
        assert!(s.is_dirty(&a).unwrap());
        assert!(s.put_checkpoint(&b, &Hash(h(8)), b"cp8", &[h(5)]).unwrap());
        assert_eq!(
            s.checkpoint(&a, &Hash(h(7))).unwrap().as_deref(),
            Some(&b"cp7"[..])
        );
        assert!(s.is_covered(&a, &h(1)).unwrap());
        assert!(!s.is_covered(&a, &h(5)).unwrap());
        assert!(s.is_covered(&b, &h(5)).unwrap());
        assert_eq!(
            s.covered().unwrap(),
            vec![(a.clone(), h(1)), (a.clone(), h(2)), (b.clone(), h(5))]
        );
        // A larger checkpoint takes the marks over; the old one can go.
        assert!(s
            .put_checkpoint(&a, &Hash(h(9)), b"cp9", &[h(1), h(2), h(3)])
            .unwrap());
        assert!(s.remove_checkpoint(&a, &Hash(h(7))).unwrap());
        assert!(!s.remove_checkpoint(&a, &Hash(h(7))).unwrap());
        assert_eq!(
            s.space_checkpoints(&a).unwrap(),
            vec![(Hash(h(9)), b"cp9".to_vec())]
        );
        assert!(s.is_covered(&a, &h(3)).unwrap());
        assert_eq!(
            s.space_covered(&a).unwrap(),
            vec![(h(1), Hash(h(9))), (h(2), Hash(h(9))), (h(3), Hash(h(9)))]
        );
        assert_eq!(s.checkpoints().unwrap().len(), 2);
        // Checkpoints are truth, not index: clearing the index keeps them.
        s.clear_index().unwrap();
        assert_eq!(s.checkpoints().unwrap().len(), 2);
    }

    pub(super) fn dirty_marks_follow_new_changes(s: &dyn Store) {
        let (a, b, c) = (space(0), space(1), space(2));
        assert!(s.dirty_spaces().unwrap().is_empty());
        s.put_change(&a, &h(1), b"a1").unwrap();
        s.put_many_changes(&b, &[(h(1), b"b1")]).unwrap();
        assert_eq!(s.dirty_spaces().unwrap(), vec![a.clone(), b.clone()]);
        s.put_entry(&a, b"a").unwrap();
        s.replace_space_index(&b, None, &[(h(1), b"bad")]).unwrap();
        assert!(s.dirty_spaces().unwrap().is_empty());
        // A change already kept is no news: the index does not lag.
        assert!(!s.put_change(&a, &h(1), b"a1").unwrap());
        assert_eq!(
            s.put_many_changes(&b, &[(h(1), b"b1")]).unwrap(),
            vec![false]
        );
        assert!(s.dirty_spaces().unwrap().is_empty());
        // Rejections alone do not clear a mark: the listing has not been rewritten.
        s.put_change(&c, &h(1), b"c1").unwrap();
        s.put_rejected_change(&c, &h(1), b"bad").unwrap();
        assert_eq!(s.dirty_spaces().unwrap(), vec![c]);
    }

    pub(super) fn clear_index_keeps_the_truth(s: &dyn Store) {
        let (a, b, orphan) = (space(0), space(1), space(4));
        s.put_op(&Hash(h(1)), b"op").unwrap();
        s.put_rejected_op(&Hash(h(2)), b"bad op", "why").unwrap();
        s.put_change(&a, &h(1), b"a1").unwrap();
        s.put_change(&b, &h(1), b"b1").unwrap();
        s.put_beacon(&a, "desks", b"beacon").unwrap();
        s.put_meta("name", b"node").unwrap();
        s.put_entry(&a, b"a").unwrap();
        s.put_entry(&b, b"b").unwrap();
        // An index row with no change behind it is still dropped and its space marked for a rebuild.
        s.put_rejected_change(&orphan, &h(1), b"r").unwrap();
        assert!(s.dirty_spaces().unwrap().is_empty());

        s.clear_index().unwrap();
        assert!(s.entries().unwrap().is_empty());
        assert!(s.rejected_changes().unwrap().is_empty());
        assert_eq!(
            s.dirty_spaces().unwrap(),
            vec![a.clone(), b.clone(), orphan]
        );
        assert_eq!(s.ops().unwrap().len(), 1);
        assert_eq!(s.rejected_ops().unwrap().len(), 1);
        assert_eq!(s.changes(&a).unwrap(), vec![b"a1".to_vec()]);
        assert_eq!(s.spaces().unwrap(), vec![a.clone(), b]);
        assert_eq!(
            s.beacon(&a, "desks").unwrap().as_deref(),
            Some(&b"beacon"[..])
        );
        assert_eq!(s.get_meta("name").unwrap().as_deref(), Some(&b"node"[..]));
    }

    pub(super) fn meta_is_stamped_and_reserved(s: &dyn Store) {
        assert_eq!(
            s.get_meta(FORMAT_VERSION_KEY).unwrap(),
            Some(FORMAT_VERSION.to_string().into_bytes())
        );
        let err = s.put_meta(FORMAT_VERSION_KEY, b"7").unwrap_err();
        assert!(matches!(err, StoreError::ReservedMetaKey { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the meta key \"format_version\" is reserved for the store itself; use another key"
        );
        assert_eq!(s.get_meta("peer-count").unwrap(), None);
        s.put_meta("peer-count", b"3").unwrap();
        s.put_meta("peer-count", b"4").unwrap();
        s.put_meta("", b"empty key").unwrap();
        assert_eq!(
            s.get_meta("peer-count").unwrap().as_deref(),
            Some(&b"4"[..])
        );
        assert_eq!(s.get_meta("").unwrap().as_deref(), Some(&b"empty key"[..]));
        s.flush().unwrap();
    }

    pub(super) fn store_is_shared_across_threads(s: &dyn Store) {
        let a = space(0);
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let a = &a;
                scope.spawn(move || {
                    for i in 0..25u8 {
                        let hash = h(t * 25 + i);
                        // Every thread also offers the first hash, so exactly one must win it.
                        s.put_change(a, &h(200), b"contended").unwrap();
                        assert!(s.put_change(a, &hash, &[t, i]).unwrap());
                    }
                });
            }
        });
        assert_eq!(s.change_hashes(&a).unwrap().len(), 101);
    }

    /// Runs every behaviour above against one implementation; `$open` yields the store and whatever must
    /// stay alive beside it (a temporary directory).
    macro_rules! suite {
        ($name:ident, $open:expr) => {
            mod $name {
                use super::*;
                suite!(@tests $open;
                    roster_put_op_reports_new_and_keeps_first,
                    roster_rejected_ops_are_kept_apart,
                    changes_are_per_space,
                    put_many_changes_reports_each,
                    spaces_skip_many_changes,
                    beacons_keep_the_last,
                    verifications_are_per_space_and_first_write_wins,
                    proposals_keep_the_last_bytes,
                    index_entries_and_rejections,
                    replace_space_index_replaces_everything,
                    doc_states_travel_with_the_index,
                    many_spaces_are_replaced_in_one_write,
                    search_rows_stay_complete_only_while_every_listing_brings_its_row,
                    checkpoints_and_their_cover_marks,
                    dirty_marks_follow_new_changes,
                    clear_index_keeps_the_truth,
                    meta_is_stamped_and_reserved,
                    store_is_shared_across_threads
                );
            }
        };
        (@tests $open:expr; $($test:ident),*) => {
            $(
                #[test]
                fn $test() {
                    let (store, _keep) = $open;
                    super::$test(&store);
                }
            )*
        };
    }

    suite!(memory, (MemoryStore::new(), ()));
    suite!(sled, {
        let dir = tempfile::tempdir().unwrap();
        (SledStore::open(dir.path()).unwrap(), dir)
    });
}
