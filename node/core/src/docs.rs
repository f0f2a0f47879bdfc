//! The space documents a node keeps warm in memory, so accepting a change costs the same at any history
//! length: a change is applied to its space's document where it is (here, or loaded from the state saved
//! beside the index), never by rebuilding the document from every change the space ever had.
//!
//! The cache is small and least-recently-used. A document with a change applied and its index not yet
//! written is *pinned* until the ingest batch writes it, so eviction never loses work.

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

    pub fn put(&mut self, space: SpaceId, warm: Warm) {
        self.touch(&space);
        self.map.insert(space, warm);
        self.trim();
    }

    pub fn remove(&mut self, space: &SpaceId) {
        self.map.remove(space);
        self.order.retain(|s| s != space);
        self.pinned.remove(space);
    }

    /// Keeps `space` until [`DocCache::unpin_all`].
    pub fn pin(&mut self, space: &SpaceId) {
        self.pinned.insert(space.clone());
    }

    /// The pinned spaces, unpinned. Their documents stay until [`DocCache::trim_to_capacity`]: the
    /// caller writes their indexes first (trimming here evicted them before they were written, so a
    /// batch of more than [`CAPACITY`] spaces left most of their listings out of the index).
    pub fn unpin_all(&mut self) -> Vec<SpaceId> {
        self.pinned.drain().collect()
    }

    /// Evicts the least recently used unpinned documents beyond the capacity.
    pub fn trim_to_capacity(&mut self) {
        self.trim();
    }

    fn touch(&mut self, space: &SpaceId) {
        self.order.retain(|s| s != space);
        self.order.push_back(space.clone());
    }

    /// Evicts the least recently used documents beyond the capacity, never a pinned one and never the one
    /// touched last (just loaded to take a change: evicting it made the change miss its document once
    /// more than [`CAPACITY`] spaces were pinned in one batch). The order of the rest is kept.
    fn trim(&mut self) {
        if self.map.len() <= CAPACITY {
            return;
        }
        let newest = self.order.back().cloned();
        let mut kept = VecDeque::with_capacity(self.order.len());
        while let Some(space) = self.order.pop_front() {
            let evictable = !self.pinned.contains(&space) && Some(&space) != newest.as_ref();
            if evictable && self.map.len() > CAPACITY {
                self.map.remove(&space);
            } else {
                kept.push_back(space);
            }
        }
        self.order = kept;
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
    fn pinned_documents_outlive_unpinning_until_trimmed() {
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
        let touched = cache.unpin_all();
        assert_eq!(touched.len(), CAPACITY + 10);
        assert!(
            touched.iter().all(|s| cache.contains(s)),
            "still there to be written"
        );
        cache.trim_to_capacity();
        assert_eq!(cache.map.len(), CAPACITY);
    }
}
