//! The space documents a node keeps warm in memory, so accepting a change costs the same at any history
//! length: a change is applied to its space's document where it is (here, or loaded from the state saved
//! beside the index), never by rebuilding the document from every change the space ever had.
//!
//! The cache is small and least-recently-used, trimmed when a batch's indexes are written. A document
//! with a change applied and its index not yet written is *pinned* until then, so eviction never loses
//! work.

use std::collections::{HashMap, HashSet, VecDeque};

use deskmesh_crdt_model::doc::SpaceDoc;
use deskmesh_keys::SpaceId;

use crate::node::Undecodable;

/// Documents kept in memory at most (more only while pinned).
const CAPACITY: usize = 64;

/// One space's document and the stored changes that do not even decode (kept for its index).
#[derive(Debug)]
pub(crate) struct Warm {
    pub doc: SpaceDoc,
    pub undecodable: Undecodable,
}

/// Warm documents by space, least recently used first in `order`.
#[derive(Debug, Default)]
pub(crate) struct DocCache {
    map: HashMap<SpaceId, Warm>,
    order: VecDeque<SpaceId>,
    pinned: HashSet<SpaceId>,
}

impl DocCache {
    pub fn contains(&self, space: &SpaceId) -> bool {
        self.map.contains_key(space)
    }

    pub fn get(&self, space: &SpaceId) -> Option<&Warm> {
        self.map.get(space)
    }

    /// The document, marked most recently used.
    pub fn get_mut(&mut self, space: &SpaceId) -> Option<&mut Warm> {
        if self.map.contains_key(space) {
            self.touch(space);
        }
        self.map.get_mut(space)
    }

    /// Keeps a document. The cache is trimmed only by [`DocCache::release`], so a document just put is
    /// never evicted before the change it was loaded for is applied and written.
    pub fn put(&mut self, space: SpaceId, warm: Warm) {
        self.touch(&space);
        self.map.insert(space, warm);
    }

    pub fn remove(&mut self, space: &SpaceId) {
        self.map.remove(space);
        self.order.retain(|s| s != space);
        self.pinned.remove(space);
    }

    /// Keeps `space` until [`DocCache::release`].
    pub fn pin(&mut self, space: &SpaceId) {
        self.pinned.insert(space.clone());
    }

    /// The pinned spaces, still pinned: the caller writes them, then calls [`DocCache::release`].
    pub fn pinned(&self) -> Vec<SpaceId> {
        self.pinned.iter().cloned().collect()
    }

    /// Unpins every space and trims the cache back to its capacity.
    pub fn release(&mut self) {
        self.pinned.clear();
        self.trim();
    }

    fn touch(&mut self, space: &SpaceId) {
        self.order.retain(|s| s != space);
        self.order.push_back(space.clone());
    }

    /// Evicts the least recently used unpinned documents down to [`CAPACITY`].
    fn trim(&mut self) {
        let excess = self.map.len().saturating_sub(CAPACITY);
        if excess == 0 {
            return;
        }
        let victims: Vec<SpaceId> = self
            .order
            .iter()
            .filter(|s| !self.pinned.contains(*s))
            .take(excess)
            .cloned()
            .collect();
        for v in &victims {
            self.map.remove(v);
        }
        self.order.retain(|s| !victims.contains(s));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use deskmesh_keys::{DeviceKey, Signer};

    /// A batch touching more spaces than the cache holds keeps every touched document until its index
    /// is written (a mesh node once indexed only 64 of a 204-space first sync).
    #[test]
    fn pinned_documents_outlive_the_batch_until_released() {
        let mut cache = DocCache::default();
        let spaces: Vec<SpaceId> = (0..CAPACITY + 10)
            .map(|_| SpaceId::derive(&DeviceKey::generate().public_key()))
            .collect();
        for s in &spaces {
            cache.put(
                s.clone(),
                Warm {
                    doc: SpaceDoc::new(s.clone()),
                    undecodable: Vec::new(),
                },
            );
            cache.pin(s);
        }
        assert_eq!(
            cache.map.len(),
            CAPACITY + 10,
            "pinned ones are never evicted"
        );
        let touched = cache.pinned();
        assert_eq!(touched.len(), CAPACITY + 10);
        assert!(
            touched.iter().all(|s| cache.contains(s)),
            "still there to be written"
        );
        cache.release();
        assert_eq!(cache.map.len(), CAPACITY);
    }
}
