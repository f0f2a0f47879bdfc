//! The row the store keeps beside each listed space's index entry, so that a command without a daemon
//! answers `spaces list` without reading a single listing: the space's [`SearchRow`] (what filters and
//! sorts read) and its [`Shown`] part (what its directory row shows that does not change with the clock).
//!
//! A row is made from the index entry whenever the entry is written ([`crate::node::IndexRows`]), in the
//! same store write, so it is as current as the entry; the store drops the rows' format mark when an entry
//! comes without its row, and the next whole read of the directory writes them all again
//! (`Node::keep_search_rows`). The encoding is postcard, named by [`StoredRow::FORMAT`]: rows of any other
//! format are not read, only rewritten.

use deskmesh_crdt_model::query::SearchRow;
use serde::{Deserialize, Serialize};

use crate::node::IndexEntry;
use crate::ops::directory::Shown;

/// One space's kept row; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRow {
    pub(crate) search: SearchRow,
    pub(crate) shown: Shown,
}

impl StoredRow {
    /// The encoding [`StoredRow::to_bytes`] writes. Bumped whenever [`SearchRow`] or [`Shown`] changes
    /// shape, or what they are made of does (how a listing or an index entry is read, or which entries
    /// are listed): the rows must say what the directory made from the entries says. A store keeping rows
    /// of another format rebuilds them at the next whole read.
    pub(crate) const FORMAT: &'static [u8] = b"deskmesh-stored-row-2";

    pub(crate) fn of(entry: &IndexEntry) -> Self {
        Self {
            search: SearchRow::of(&entry.listing),
            shown: Shown::of(entry),
        }
    }

    /// The search row's encoding, then the shown part's: a query reads every search row but only its
    /// hits' shown parts ([`StoredRow::search_of`], [`StoredRow::shown_of`]).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = postcard::to_stdvec(&self.search).unwrap_or_default();
        bytes.extend(postcard::to_stdvec(&self.shown).unwrap_or_default());
        bytes
    }

    /// The search row of a row's `bytes`, and where its shown part starts in them.
    pub(crate) fn search_of(bytes: &[u8]) -> Result<(SearchRow, usize), postcard::Error> {
        let (search, rest) = postcard::take_from_bytes::<SearchRow>(bytes)?;
        Ok((search, bytes.len() - rest.len()))
    }

    /// The shown part of a row's `bytes`, starting at `at` (from [`StoredRow::search_of`]).
    pub(crate) fn shown_of(bytes: &[u8], at: usize) -> Result<Shown, postcard::Error> {
        let rest = bytes
            .get(at..)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        match postcard::take_from_bytes::<Shown>(rest)? {
            (shown, []) => Ok(shown),
            _ => Err(postcard::Error::DeserializeBadEncoding),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit;

    /// Index entries are JSON in the store, and the rows are made from the entries as written: JSON must
    /// give every float back exactly (serde_json's `float_roundtrip`; its default parser is off by one
    /// ulp for some coordinates, and the directory read afresh would then differ from the rows).
    #[test]
    fn json_gives_coordinates_back_exactly() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut off = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * 180.0 - 90.0;
            let back: f64 = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
            if back.to_bits() != v.to_bits() {
                off.push((v, back));
            }
        }
        assert!(
            off.is_empty(),
            "{} of 20,000 differ, e.g. {:?}",
            off.len(),
            off.first()
        );
    }

    /// A row reads back whole from its bytes: the search row first, then the shown part where it says;
    /// cut or lengthened bytes do not read as a row; and it is the same made from the entry read back.
    #[test]
    fn a_row_reads_back_part_by_part() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let mut listing = testkit::listing(&id, "Riverside");
        // Full-precision coordinates: JSON must give them back exactly (serde_json's float_roundtrip).
        listing.location.lat = 10.938711676632721;
        listing.location.lon = 9.229113;
        space.publish_listing(&listing, testkit::now()).unwrap();
        let entry = space.entry(&id).unwrap().unwrap();
        let row = StoredRow::of(&entry);
        assert!(
            !entry.listing.seat_pools.is_empty(),
            "the sample listing has seat pools"
        );
        let bytes = row.to_bytes();
        let (search, at) = StoredRow::search_of(&bytes).unwrap();
        assert_eq!(search, row.search);
        assert_eq!(StoredRow::shown_of(&bytes, at).unwrap(), row.shown);
        assert!(StoredRow::shown_of(&bytes[..bytes.len() - 1], at).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StoredRow::shown_of(&longer, at).is_err());
        assert!(StoredRow::shown_of(&bytes, bytes.len() + 1).is_err());
        // The row made when the entry is written equals the one made from the entry read back, as a
        // node opened afresh reads it.
        let json = serde_json::to_vec(&entry).unwrap();
        let back = crate::catalog::read_entry(&id, &json).unwrap().unwrap();
        assert_eq!(StoredRow::of(&back), row);
    }
}
