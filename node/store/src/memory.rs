//! [`MemoryStore`]: the in-memory twin of the sled store, for unit tests elsewhere in the workspace.
//!
//! It keeps typed `BTreeMap`s behind one `Mutex`, so every method is atomic and orders its results exactly
//! as the sled store does (space ids all have the same length, so ordering by `(space, hash)` equals
//! ordering by the sled key bytes). Nothing survives a drop; it is never used for real data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use deskmesh_keys::{Hash, SpaceId};

use super::{
    check_meta_key, BeaconStore, ChangeStore, CheckpointStore, IndexStore, MetaStore,
    ProposalStore, RefusedLog, RejectedChange, RosterStore, SpaceRejection, SpaceRows, Store,
    StoreError, VerificationStore, FORMAT_VERSION, FORMAT_VERSION_KEY,
};

#[derive(Debug, Default)]
struct Inner {
    ops: BTreeMap<Hash, Vec<u8>>,
    rejected_ops: BTreeMap<Hash, (Vec<u8>, String)>,
    changes: BTreeMap<(SpaceId, [u8; 32]), Vec<u8>>,
    beacons: BTreeMap<(SpaceId, String), Vec<u8>>,
    listings: BTreeMap<SpaceId, Vec<u8>>,
    search_rows: BTreeMap<SpaceId, Vec<u8>>,
    /// The search rows' format while they are complete.
    search_format: Option<Vec<u8>>,
    rejected_changes: BTreeMap<(SpaceId, [u8; 32]), Vec<u8>>,
    doc_states: BTreeMap<SpaceId, Vec<u8>>,
    checkpoints: BTreeMap<(SpaceId, Hash), Vec<u8>>,
    covered: BTreeMap<(SpaceId, [u8; 32]), Hash>,
    dirty: BTreeSet<SpaceId>,
    meta: BTreeMap<String, Vec<u8>>,
    refused: VecDeque<Vec<u8>>,
    verifications: BTreeMap<(SpaceId, Hash), Vec<u8>>,
    proposals: BTreeMap<Hash, Vec<u8>>,
    roster_state: Option<Vec<u8>>,
}

impl Inner {
    /// Keeps a change unless already kept, marking its space dirty when it is new.
    fn insert_change(&mut self, space: &SpaceId, hash: &[u8; 32], bytes: &[u8]) -> bool {
        let key = (space.clone(), *hash);
        if self.changes.contains_key(&key) {
            return false;
        }
        self.changes.insert(key, bytes.to_vec());
        self.dirty.insert(space.clone());
        true
    }
}

/// A [`Store`] in memory: same behaviour as [`super::SledStore`], no durability.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store, stamped with the current format version like a fresh sled store.
    pub fn new() -> Self {
        let mut inner = Inner::default();
        inner.meta.insert(
            FORMAT_VERSION_KEY.to_string(),
            FORMAT_VERSION.to_string().into_bytes(),
        );
        Self {
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (in a test) cannot leave a half-done write: every method changes
        // the maps only after all its checks, with operations that do not panic. So the data behind a
        // poisoned lock is consistent and safe to keep using.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The entries of a `(space, x)`-keyed map that belong to one space.
fn in_space<'a, K: MinKey + Ord + 'a, V: 'a>(
    map: &'a BTreeMap<(SpaceId, K), V>,
    space: &'a SpaceId,
) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
    map.range((space.clone(), K::min_key())..)
        .take_while(move |((s, _), _)| s == space)
        .map(|((_, k), v)| (k, v))
}

/// The smallest value of a key type, so a range can start at the first entry of a space.
trait MinKey {
    fn min_key() -> Self;
}

impl MinKey for [u8; 32] {
    fn min_key() -> Self {
        [0; 32]
    }
}

impl MinKey for String {
    fn min_key() -> Self {
        String::new()
    }
}

impl RosterStore for MemoryStore {
    fn put_op(&self, hash: &Hash, bytes: &[u8]) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.ops.contains_key(hash) {
            return Ok(false);
        }
        inner.ops.insert(*hash, bytes.to_vec());
        inner.rejected_ops.remove(hash);
        inner.roster_state = None;
        Ok(true)
    }

    fn op(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().ops.get(hash).cloned())
    }

    fn has_op(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.lock().ops.contains_key(hash))
    }

    fn ops(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .ops
            .iter()
            .map(|(h, b)| (*h, b.clone()))
            .collect())
    }

    fn put_rejected_op(&self, hash: &Hash, bytes: &[u8], reason: &str) -> Result<(), StoreError> {
        self.lock()
            .rejected_ops
            .insert(*hash, (bytes.to_vec(), reason.to_string()));
        Ok(())
    }

    fn rejected_ops(&self) -> Result<Vec<(Hash, Vec<u8>, String)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .rejected_ops
            .iter()
            .filter(|(h, _)| !inner.ops.contains_key(*h))
            .map(|(h, (b, r))| (*h, b.clone(), r.clone()))
            .collect())
    }

    fn op_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().ops.len() as u64)
    }

    fn roster_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().roster_state.clone())
    }

    fn put_roster_state(&self, state: &[u8]) -> Result<(), StoreError> {
        self.lock().roster_state = Some(state.to_vec());
        Ok(())
    }
}

impl ChangeStore for MemoryStore {
    fn put_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        Ok(self.lock().insert_change(space, change_hash, bytes))
    }

    fn put_many_changes(
        &self,
        space: &SpaceId,
        changes: &[([u8; 32], &[u8])],
    ) -> Result<Vec<bool>, StoreError> {
        let mut inner = self.lock();
        Ok(changes
            .iter()
            .map(|(hash, bytes)| inner.insert_change(space, hash, bytes))
            .collect())
    }

    fn change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .changes
            .get(&(space.clone(), *change_hash))
            .cloned())
    }

    fn changes(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, StoreError> {
        let inner = self.lock();
        Ok(in_space(&inner.changes, space)
            .map(|(_, b)| b.clone())
            .collect())
    }

    fn has_change(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .changes
            .contains_key(&(space.clone(), *change_hash)))
    }

    fn change_hashes(&self, space: &SpaceId) -> Result<Vec<[u8; 32]>, StoreError> {
        let inner = self.lock();
        Ok(in_space(&inner.changes, space).map(|(h, _)| *h).collect())
    }

    fn change_count(&self, space: &SpaceId) -> Result<usize, StoreError> {
        Ok(in_space(&self.lock().changes, space).count())
    }

    fn spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        let inner = self.lock();
        let set: BTreeSet<&SpaceId> = inner.changes.keys().map(|(s, _)| s).collect();
        Ok(set.into_iter().cloned().collect())
    }
}

impl VerificationStore for MemoryStore {
    fn put_verification(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let key = (space.clone(), *id);
        if inner.verifications.contains_key(&key) {
            return Ok(false);
        }
        inner.verifications.insert(key, bytes.to_vec());
        Ok(true)
    }

    fn space_verifications(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .verifications
            .iter()
            .filter(|((s, _), _)| s == space)
            .map(|((_, id), v)| (*id, v.clone()))
            .collect())
    }

    fn verifications(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .verifications
            .iter()
            .map(|((s, id), v)| (s.clone(), *id, v.clone()))
            .collect())
    }

    fn remove_verification(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .verifications
            .remove(&(space.clone(), *id))
            .is_some())
    }
}

impl ProposalStore for MemoryStore {
    fn put_proposal(&self, op: &Hash, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock().proposals.insert(*op, bytes.to_vec());
        Ok(())
    }

    fn proposal(&self, op: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().proposals.get(op).cloned())
    }

    fn proposals(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .proposals
            .iter()
            .map(|(h, v)| (*h, v.clone()))
            .collect())
    }

    fn remove_proposal(&self, op: &Hash) -> Result<bool, StoreError> {
        Ok(self.lock().proposals.remove(op).is_some())
    }
}

impl CheckpointStore for MemoryStore {
    fn put_checkpoint(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
        covered: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let key = (space.clone(), *id);
        if inner.checkpoints.contains_key(&key) {
            return Ok(false);
        }
        inner.checkpoints.insert(key, bytes.to_vec());
        for c in covered {
            inner.covered.insert((space.clone(), *c), *id);
        }
        inner.dirty.insert(space.clone());
        Ok(true)
    }

    fn remove_checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .remove(&(space.clone(), *id))
            .is_some())
    }

    fn checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().checkpoints.get(&(space.clone(), *id)).cloned())
    }

    fn space_checkpoints(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .filter(|((s, _), _)| s == space)
            .map(|((_, id), b)| (*id, b.clone()))
            .collect())
    }

    fn checkpoints(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .map(|((s, id), b)| (s.clone(), *id, b.clone()))
            .collect())
    }

    fn is_covered(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .covered
            .contains_key(&(space.clone(), *change_hash)))
    }

    fn covered(&self) -> Result<Vec<(SpaceId, [u8; 32])>, StoreError> {
        Ok(self.lock().covered.keys().cloned().collect())
    }

    fn space_covered(&self, space: &SpaceId) -> Result<Vec<([u8; 32], Hash)>, StoreError> {
        Ok(self
            .lock()
            .covered
            .iter()
            .filter(|((s, _), _)| s == space)
            .map(|((_, h), by)| (*h, *by))
            .collect())
    }
}

impl BeaconStore for MemoryStore {
    fn put_beacon(&self, space: &SpaceId, pool: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock()
            .beacons
            .insert((space.clone(), pool.to_string()), bytes.to_vec());
        Ok(())
    }

    fn remove_beacon(&self, space: &SpaceId, pool: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .beacons
            .remove(&(space.clone(), pool.to_string()))
            .is_some())
    }

    fn beacon(&self, space: &SpaceId, pool: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .beacons
            .get(&(space.clone(), pool.to_string()))
            .cloned())
    }

    fn space_beacons(&self, space: &SpaceId) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let inner = self.lock();
        Ok(in_space(&inner.beacons, space)
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect())
    }

    fn beacons(&self) -> Result<Vec<(SpaceId, String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .beacons
            .iter()
            .map(|((s, p), b)| (s.clone(), p.clone(), b.clone()))
            .collect())
    }
}

impl IndexStore for MemoryStore {
    fn put_entry(&self, space: &SpaceId, json: &[u8]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.listings.insert(space.clone(), json.to_vec());
        inner.dirty.remove(space);
        inner.search_rows.remove(space);
        inner.search_format = None;
        Ok(())
    }

    fn entry(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().listings.get(space).cloned())
    }

    fn entry_count(&self) -> Result<usize, StoreError> {
        Ok(self.lock().listings.len())
    }

    fn entries(&self) -> Result<Vec<(SpaceId, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .listings
            .iter()
            .map(|(s, j)| (s.clone(), j.clone()))
            .collect())
    }

    fn search_rows(&self, format: &[u8]) -> Result<Option<SpaceRows>, StoreError> {
        let inner = self.lock();
        if inner.search_format.as_deref() != Some(format) {
            return Ok(None);
        }
        Ok(Some(
            inner
                .search_rows
                .iter()
                .map(|(s, r)| (s.clone(), r.clone()))
                .collect(),
        ))
    }

    fn search_rows_format(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().search_format.clone())
    }

    fn put_search_rows(
        &self,
        format: &[u8],
        rows: &[(SpaceId, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.search_rows = rows.iter().cloned().collect();
        inner.search_format = Some(format.to_vec());
        Ok(())
    }

    fn put_rejected_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        reason_json: &[u8],
    ) -> Result<(), StoreError> {
        self.lock()
            .rejected_changes
            .insert((space.clone(), *change_hash), reason_json.to_vec());
        Ok(())
    }

    fn space_rejections(&self, space: &SpaceId) -> Result<Vec<SpaceRejection>, StoreError> {
        let inner = self.lock();
        Ok(in_space(&inner.rejected_changes, space)
            .map(|(h, r)| (*h, r.clone()))
            .collect())
    }

    fn rejected_changes(&self) -> Result<Vec<RejectedChange>, StoreError> {
        Ok(self
            .lock()
            .rejected_changes
            .iter()
            .map(|((s, h), r)| (s.clone(), *h, r.clone()))
            .collect())
    }

    fn replace_space_state(
        &self,
        space: &SpaceId,
        listing: Option<&[u8]>,
        rejected: &[([u8; 32], &[u8])],
        doc_state: Option<&[u8]>,
        search_row: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match listing {
            Some(json) => inner.listings.insert(space.clone(), json.to_vec()),
            None => inner.listings.remove(space),
        };
        match (listing, search_row) {
            (Some(_), Some(row)) => {
                inner.search_rows.insert(space.clone(), row.to_vec());
            }
            (None, _) => {
                inner.search_rows.remove(space);
            }
            (Some(_), None) => {
                inner.search_rows.remove(space);
                inner.search_format = None;
            }
        }
        match doc_state {
            Some(bytes) => inner.doc_states.insert(space.clone(), bytes.to_vec()),
            None => inner.doc_states.remove(space),
        };
        inner.rejected_changes.retain(|(s, _), _| s != space);
        for (hash, reason) in rejected {
            inner
                .rejected_changes
                .insert((space.clone(), *hash), reason.to_vec());
        }
        inner.dirty.remove(space);
        Ok(())
    }

    fn dirty_spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        Ok(self.lock().dirty.iter().cloned().collect())
    }

    fn doc_state(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().doc_states.get(space).cloned())
    }

    fn is_dirty(&self, space: &SpaceId) -> Result<bool, StoreError> {
        Ok(self.lock().dirty.contains(space))
    }

    fn clear_index(&self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Inner {
            changes,
            listings,
            rejected_changes,
            doc_states,
            dirty,
            search_rows,
            search_format,
            ..
        } = &mut *inner;
        search_rows.clear();
        *search_format = None;
        doc_states.clear();
        dirty.extend(changes.keys().map(|(s, _)| s.clone()));
        dirty.extend(listings.keys().cloned());
        dirty.extend(rejected_changes.keys().map(|(s, _)| s.clone()));
        listings.clear();
        rejected_changes.clear();
        Ok(())
    }
}

impl MetaStore for MemoryStore {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_meta_key(key)?;
        self.lock().meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }
}

impl RefusedLog for MemoryStore {
    fn log_refused(&self, record_json: &[u8]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.refused.push_back(record_json.to_vec());
        while inner.refused.len() > super::REFUSED_LOG_LIMIT {
            inner.refused.pop_front();
        }
        Ok(())
    }

    fn refused(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.lock().refused.iter().cloned().collect())
    }
}

impl Store for MemoryStore {
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn defer_flush(&self, _deferred: bool) -> Result<(), StoreError> {
        Ok(())
    }
}
