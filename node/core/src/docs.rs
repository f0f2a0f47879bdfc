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

    /// The pinned spaces, unpinned, and the cache trimmed back to its capacity.
    pub fn unpin_all(&mut self) -> Vec<SpaceId> {
        let pinned: Vec<SpaceId> = self.pinned.drain().collect();
        self.trim();
        pinned
    }

    fn touch(&mut self, space: &SpaceId) {
        self.order.retain(|s| s != space);
        self.order.push_back(space.clone());
    }

    fn trim(&mut self) {
        let mut skipped = 0;
        while self.map.len() > CAPACITY && skipped < self.order.len() {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.pinned.contains(&oldest) {
                self.order.push_back(oldest);
                skipped += 1;
            } else {
                self.map.remove(&oldest);
            }
        }
    }
}
