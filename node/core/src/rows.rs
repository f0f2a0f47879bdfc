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
    /// shape; a store keeping rows of another format rebuilds them at the next whole read.
    pub(crate) const FORMAT: &'static [u8] = b"deskmesh-stored-row-1";

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

    /// A row reads back whole from its bytes: the search row first, then the shown part where it says;
    /// cut or lengthened bytes do not read as a row.
    #[test]
    fn a_row_reads_back_part_by_part() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), testkit::now())
            .unwrap();
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
    }
}
