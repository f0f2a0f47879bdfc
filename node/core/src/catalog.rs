//! The directory held in memory: every listed space's index entry (its listing, signers and heads), its
//! parsed listing, the newest beacon of each of its pools, and the search index over the listings.
//!
//! It is built from the store the first time something reads the directory (one pass over the index
//! rows and the beacons), then kept current by the node's own writes: writing a space's
//! index replaces that space's row ([`Catalog::put`]), storing a beacon replaces its pool's
//! ([`Catalog::put_beacon`]). Roster operations reach it the same way, through the index writes of the
//! spaces they reindex. A running node (the daemon, or the node inside `deskmesh tui`) therefore answers
//! every directory query and snapshot from memory, and its memory stays flat however many it answers; a
//! command that opens the store builds it once.
//!
//! Rows are kept in space id order, the order the store returns them in, so a query breaks ties the
//! same way whether it runs in a daemon that has held the catalog for a week or in a command that just
//! built it.

use std::collections::HashMap;

use anyhow::Context;
use deskmesh_crdt_model::beacon::{SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::query::SearchIndex;
use deskmesh_keys::SpaceId;
use deskmesh_store::Store;

use crate::node::IndexEntry;
use crate::ops::directory::Shown;
use crate::rows::StoredRow;

/// The directory in memory; see the module documentation.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Row `i`'s space, ascending.
    spaces: Vec<SpaceId>,
    /// Row `i`'s entry, its listing parsed.
    /// Boxed: a row inserted in id order moves the rows after it, and a listing is kilobytes inline
    /// (a first sync of 10,000 spaces with the catalog built moved gigabytes).
    #[allow(clippy::vec_box)] // on purpose: see above
    entries: Vec<Box<IndexEntry>>,
    /// What row `i`'s directory row shows that does not change with the clock, made when its entry
    /// changes rather than at every query (boxed like the entries).
    #[allow(clippy::vec_box)] // on purpose: see `entries`
    shown: Vec<Box<Shown>>,
    /// Row `i`'s listing, prepared for queries.
    search: SearchIndex,
    /// The newest beacon of each pool, by space, pools by name.
    beacons: HashMap<SpaceId, Vec<SeatBeacon>>,
}

impl Catalog {
    /// The catalog of what `store` holds: one pass over its index rows, rejections and beacons. A corrupt
    /// index row is an error (as reading it from the store is); an entry whose listing does not read
    /// back is left out of the directory with a warning, as queries always left it out.
    ///
    /// The work is spread over the machine's cores: the beacons are read while the index rows are, and
    /// the rows are parsed in parallel (a command without a daemon builds the catalog once per call).
    pub(crate) fn load(store: &dyn Store) -> anyhow::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (rows, beacons) = std::thread::scope(|scope| {
            let beacons = (threads > 1).then(|| scope.spawn(|| store.beacons()));
            let rows = store
                .entries()
                .map_err(anyhow::Error::from)
                .and_then(|raw| read_entries(raw, threads));
            let beacons = match beacons {
                Some(thread) => match thread.join() {
                    Ok(read) => read.map_err(anyhow::Error::from),
                    Err(_) => Err(anyhow::anyhow!(
                        "reading the seat beacons failed (a thread panicked)"
                    )),
                },
                None => store.beacons().map_err(anyhow::Error::from),
            };
            (rows, beacons)
        });
        let mut rows = rows?;
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut catalog = Self::default();
        for (space, entry) in rows {
            catalog.spaces.push(space);
            catalog.shown.push(Box::new(Shown::of(&entry)));
            catalog.entries.push(Box::new(entry));
        }
        catalog.search = SearchIndex::build(catalog.entries.iter().map(|e| &e.listing));
        catalog.beacons = newest_beacons(beacons?);
        Ok(catalog)
    }

    /// Every entry's [`StoredRow`] in space order, encoded: what the store keeps beside the listings so
    /// a command can query without this catalog.
    pub(crate) fn stored_rows(&self) -> Vec<(SpaceId, Vec<u8>)> {
        self.spaces
            .iter()
            .zip(self.entries.iter().zip(&self.shown))
            .map(|(space, (e, shown))| {
                let row = StoredRow {
                    search: deskmesh_crdt_model::query::SearchRow::of(&e.listing),
                    shown: (**shown).clone(),
                };
                (space.clone(), row.to_bytes())
            })
            .collect()
    }

    /// Listed spaces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in space id order; row `i` of [`Catalog::search`].
    pub fn entries(&self) -> &[Box<IndexEntry>] {
        &self.entries
    }

    /// Every listing, row `i` of [`Catalog::search`] (indexed like a slice, or iterated).
    pub fn listings(&self) -> Listings<'_> {
        Listings(&self.entries)
    }

    /// Row `i`'s shown part ([`Shown`]), row `i` of [`Catalog::entries`].
    pub(crate) fn shown(&self) -> &[Box<Shown>] {
        &self.shown
    }

    /// The search index over [`Catalog::listings`].
    pub fn search(&self) -> &SearchIndex {
        &self.search
    }

    /// One space's entry and listing, if it is listed.
    pub fn entry(&self, space: &SpaceId) -> Option<(&IndexEntry, &Listing)> {
        self.spaces
            .binary_search(space)
            .ok()
            .map(|i| (&*self.entries[i], &self.entries[i].listing))
    }

    /// The newest beacon of each pool of `space`, pools by name.
    pub fn beacons(&self, space: &SpaceId) -> &[SeatBeacon] {
        self.beacons.get(space).map_or(&[], Vec::as_slice)
    }

    /// Every space's beacons.
    pub fn all_beacons(&self) -> &HashMap<SpaceId, Vec<SeatBeacon>> {
        &self.beacons
    }

    /// What the store now holds of `space`'s index, just written: its entry (`None` when it has no valid
    /// listing any more). Rejected changes are not kept here: front ends read them as findings from the
    /// store, one space at a time.
    pub(crate) fn put(&mut self, space: &SpaceId, entry: Option<IndexEntry>) {
        match (self.spaces.binary_search(space), entry) {
            (Ok(i), Some(e)) => {
                self.search.set(i, &e.listing);
                *self.shown[i] = Shown::of(&e);
                *self.entries[i] = e;
            }
            (Err(i), Some(e)) => {
                self.search.insert(i, &e.listing);
                self.spaces.insert(i, space.clone());
                self.shown.insert(i, Box::new(Shown::of(&e)));
                self.entries.insert(i, Box::new(e));
            }
            (Ok(i), None) => {
                self.search.remove(i);
                self.spaces.remove(i);
                self.shown.remove(i);
                self.entries.remove(i);
            }
            (Err(_), None) => {}
        }
    }

    /// A beacon just removed from the store (its space revoked, or its author removed).
    pub(crate) fn remove_beacon(&mut self, space: &SpaceId, pool: &str) {
        if let Some(pools) = self.beacons.get_mut(space) {
            pools.retain(|b| b.pool != pool);
            if pools.is_empty() {
                self.beacons.remove(space);
            }
        }
    }

    /// A beacon just stored: it replaces the one its pool had.
    pub(crate) fn put_beacon(&mut self, beacon: SeatBeacon) {
        let pools = self.beacons.entry(beacon.space.clone()).or_default();
        match pools.binary_search_by(|b| b.pool.cmp(&beacon.pool)) {
            Ok(i) => pools[i] = beacon,
            Err(i) => pools.insert(i, beacon),
        }
    }
}

/// The newest beacon of each pool, by space, pools by name, of the beacons the store holds (`raw`, as
/// [`deskmesh_store::BeaconStore::beacons`] gives them); a beacon that does not read back is left out.
pub(crate) fn newest_beacons(
    raw: Vec<(SpaceId, String, Vec<u8>)>,
) -> HashMap<SpaceId, Vec<SeatBeacon>> {
    let mut catalog = Catalog::default();
    for (_, _, bytes) in raw {
        if let Ok(b) = SignedBeacon::from_bytes(&bytes).and_then(|b| b.decode()) {
            catalog.put_beacon(b);
        }
    }
    catalog.beacons
}

/// The listings of a catalog's entries, row by row: `listings[i]` is row `i`'s.
#[derive(Debug, Clone, Copy)]
pub struct Listings<'a>(&'a [Box<IndexEntry>]);

impl<'a> Listings<'a> {
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a Listing> + Clone + 'a {
        self.0.iter().map(|e| &e.listing)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<usize> for Listings<'_> {
    type Output = Listing;

    fn index(&self, i: usize) -> &Listing {
        &self.0[i].listing
    }
}

impl<'a> IntoIterator for Listings<'a> {
    type Item = &'a Listing;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, Box<IndexEntry>>,
        fn(&'a Box<IndexEntry>) -> &'a Listing,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|e| &e.listing)
    }
}

/// An index row read back: the entry with its listing parsed in one pass. A row whose listing does not
/// read back (it was validated when the row was written, so only a row written by another version can
/// do that) is left out of the directory with a warning, as queries always left it out; a row that is not
/// an entry at all is corrupt.
/// Index rows parsed on up to `threads` threads (in their order; unreadable listings left out as
/// [`read_entry`] leaves them).
fn read_entries(
    raw: Vec<(SpaceId, Vec<u8>)>,
    threads: usize,
) -> anyhow::Result<Vec<(SpaceId, IndexEntry)>> {
    let parsed = deskmesh_keys::par::map_in_order(
        &raw,
        threads,
        256,
        |(space, bytes)| read_entry(space, bytes),
        |(space, _)| {
            Err(anyhow::anyhow!(
                "reading the index entry of {space} failed (its thread panicked)"
            ))
        },
    );
    let mut rows = Vec::with_capacity(raw.len());
    for ((space, _), entry) in raw.iter().zip(parsed) {
        if let Some(entry) = entry? {
            rows.push((space.clone(), entry));
        }
    }
    Ok(rows)
}

pub(crate) fn read_entry(space: &SpaceId, bytes: &[u8]) -> anyhow::Result<Option<IndexEntry>> {
    /// An entry whose listing is any JSON, to tell an unreadable listing from a corrupt row.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // Only whether it parses matters.
    struct Loose {
        space: SpaceId,
        listing: serde_json::Value,
        heads: Vec<String>,
    }
    match serde_json::from_slice::<IndexEntry>(bytes) {
        Ok(entry) => Ok(Some(entry)),
        Err(e) => {
            serde_json::from_slice::<Loose>(bytes).with_context(|| {
                format!("the index entry of {space} is corrupt; it will be rebuilt")
            })?;
            tracing::warn!(
                "not listing {space}: its index entry is unreadable: {e}; it will be rebuilt"
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every write path keeps the directory in memory equal to what a node opened afresh on the same store
    //! reads: each test builds the catalog first, writes, then compares.

    use deskmesh_crdt_model::beacon::Availability;
    use deskmesh_crdt_model::query::Query;
    use deskmesh_keys::DeviceKey;

    use crate::home::NodeConfig;
    use crate::ingest::{At, SignedItem, Source};
    use crate::node::{Node, Opening};
    use crate::testkit::{self, now};

    /// Builds `node`'s catalog (as the first query of a daemon does; a query alone may answer from the
    /// rows the store keeps instead).
    fn warm(node: &Node) {
        drop(node.catalog().unwrap());
        assert!(node.catalog_built());
    }

    /// What queries and snapshots say, as JSON: directory, snapshot spaces, entries, beacons, status count.
    fn seen(node: &Node) -> serde_json::Value {
        let status = node.status().unwrap();
        serde_json::json!({
            "directory": node.directory(&Query::default(), now()).unwrap(),
            "snapshot": node.snapshot(status.clone()).unwrap().spaces,
            "entries": node.entries().unwrap(),
            "beacons": node.beacons().unwrap(),
            "listings": status.listings,
        })
    }

    /// `node`'s catalog answers as a node opened afresh on its store does; returns what both see.
    fn agrees_with_fresh(node: &Node) -> serde_json::Value {
        assert!(node.catalog_built(), "the catalog was dropped, not kept");
        let (held, read) = (seen(node), seen(&fresh(node)));
        assert_eq!(held, read);
        held
    }

    /// A node opened afresh on `node`'s store (another key), for `opening`.
    fn opened_on(node: &Node, opening: Opening) -> Node {
        let config = NodeConfig {
            name: "fresh".into(),
            listen_port: 0,
            location: None,
        };
        Node::open_store(DeviceKey::generate(), config, node.store.clone(), opening).unwrap()
    }

    fn fresh(node: &Node) -> Node {
        opened_on(node, Opening::Everything)
    }

    fn items(node: &mut Node) -> Vec<SignedItem> {
        node.take_made().into_iter().map(|m| m.item).collect()
    }

    /// A coordinator holding a space's first listing, and the space.
    fn alliance() -> (Node, Node) {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), now())
            .unwrap();
        let made = items(&mut space);
        coordinator.ingest(made, Source::Mesh, At::now());
        (coordinator, space)
    }

    #[test]
    fn an_index_row_is_read_in_one_pass_and_a_bad_one_is_told_apart() {
        let (_, space) = alliance();
        let id = space.my_space().unwrap();
        let bytes = space.store.entry(&id).unwrap().expect("an index row");
        let entry = super::read_entry(&id, &bytes)
            .unwrap()
            .expect("a readable row");
        assert_eq!(entry.listing, testkit::listing(&id, "Riverside"));
        // Written back, the row is what the store held: the typed listing serialises as the JSON did.
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&serde_json::to_vec(&entry).unwrap())
                .unwrap(),
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        );
        // An entry whose listing does not read back is left out; a row that is no entry is corrupt.
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["listing"]["location"] = serde_json::json!("nowhere");
        let unreadable = serde_json::to_vec(&value).unwrap();
        assert!(super::read_entry(&id, &unreadable).unwrap().is_none());
        let err = super::read_entry(&id, b"{\"not\": \"an entry\"}").unwrap_err();
        assert!(format!("{err:#}").contains("is corrupt"), "{err:#}");
    }

    #[test]
    fn an_edit_updates_the_catalog() {
        let (_, mut space) = alliance();
        let id = space.my_space().unwrap();
        warm(&space);
        space
            .publish_listing(&testkit::listing(&id, "Riverside Two"), now())
            .unwrap();
        let seen = agrees_with_fresh(&space);
        assert_eq!(seen["directory"]["spaces"][0]["name"], "Riverside Two");
    }

    #[test]
    fn a_remote_change_and_a_new_space_update_the_catalog() {
        let (mut coordinator, mut space) = alliance();
        let id = space.my_space().unwrap();
        warm(&coordinator);
        space
            .publish_listing(&testkit::listing(&id, "Riverside Two"), now())
            .unwrap();
        let mut other = testkit::space(&mut coordinator, "Harbour");
        let other_id = other.my_space().unwrap();
        other
            .publish_listing(&testkit::listing(&other_id, "Harbour"), now())
            .unwrap();
        let mut made = items(&mut space);
        made.extend(items(&mut other));
        coordinator.ingest(made, Source::Mesh, At::now());
        let seen = agrees_with_fresh(&coordinator);
        assert_eq!(seen["directory"]["total"], 2);
        let names: Vec<&str> = seen["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["listing"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"Riverside Two"), "{names:?}");
    }

    #[test]
    fn beacons_local_and_remote_update_the_catalog() {
        let (mut coordinator, mut space) = alliance();
        warm(&space);
        warm(&coordinator);
        space
            .seats_set(None, Availability::Count(4), 3600, now())
            .unwrap();
        let seen = agrees_with_fresh(&space);
        assert_eq!(seen["beacons"].as_array().unwrap().len(), 1);
        let made = items(&mut space);
        coordinator.ingest(made, Source::Mesh, At::now());
        let seen = agrees_with_fresh(&coordinator);
        assert_eq!(seen["directory"]["spaces"][0]["seats_free"], true);
        // A newer figure replaces the pool's.
        space
            .seats_set(None, Availability::Full, 3600, now())
            .unwrap();
        let made = items(&mut space);
        coordinator.ingest(made, Source::Mesh, At::now());
        let seen = agrees_with_fresh(&coordinator);
        assert_eq!(seen["directory"]["spaces"][0]["seats_free"], false);
        assert_eq!(seen["beacons"].as_array().unwrap().len(), 1);
    }

    /// A directory read ahead while the node opens ([`Node::open_to_query`]) is used when nothing was
    /// written first, and thrown away when a write could have come after its read.
    #[test]
    fn a_catalog_read_ahead_is_dropped_by_a_write_that_comes_first() {
        let (coordinator, mut space) = alliance();
        let open_ahead = || opened_on(&coordinator, Opening::ReadAhead);
        let ahead = open_ahead();
        warm(&ahead);
        agrees_with_fresh(&ahead);
        space
            .seats_set(None, Availability::Count(4), 3600, now())
            .unwrap();
        let made = items(&mut space);
        let mut ahead = open_ahead();
        ahead.ingest(made, Source::Mesh, At::now());
        warm(&ahead);
        let seen = agrees_with_fresh(&ahead);
        assert_eq!(seen["beacons"].as_array().unwrap().len(), 1);
        assert_eq!(seen["directory"]["spaces"][0]["seats_free"], true);
    }

    /// A node without the directory in memory answers every query from the rows the store keeps
    /// (narrow ones reading only their hits' beacons, whole lists every beacon), exactly as the directory
    /// in memory does; the rows stay complete through later writes, and a list of verified facts only,
    /// or rows that are not complete, fall back to reading the directory.
    #[test]
    fn queries_without_the_catalog_read_the_kept_rows() {
        use crate::rows::StoredRow;
        use deskmesh_crdt_model::query::{AccessNeed, Sort};
        let (mut coordinator, mut space) = alliance();
        let mut others = Vec::new();
        for (name, city, lat) in [("Harbour", "Porto", 41.15), ("Attic", "Lisbon", 38.71)] {
            let mut node = testkit::space(&mut coordinator, name);
            let id = node.my_space().unwrap();
            let mut l = testkit::listing(&id, name);
            l.location.address.city = city.into();
            l.location.lat = lat;
            if name == "Attic" {
                l.accessibility.wheelchair = None;
            }
            node.publish_listing(&l, now()).unwrap();
            let made = items(&mut node);
            coordinator.ingest(made, Source::Mesh, At::now());
            others.push(node);
        }
        space
            .seats_set(None, Availability::Count(4), 3600, now())
            .unwrap();
        let made = items(&mut space);
        coordinator.ingest(made, Source::Mesh, At::now());
        let queries = [
            Query {
                city: Some("lisbon".into()),
                ..Query::default()
            },
            Query {
                access: vec![AccessNeed::Wheelchair],
                seats_free_now: true,
                ..Query::default()
            },
            Query {
                text: Some("har".into()),
                ..Query::default()
            },
            Query {
                limit: Some(2),
                near_city: Some("Porto".into()),
                sort: Sort::Name,
                ..Query::default()
            },
            // Whole lists: every space, by name, by distance, open now with seats free.
            Query::default(),
            Query {
                sort: Sort::Distance {
                    lat: 38.70,
                    lon: -9.14,
                },
                ..Query::default()
            },
            Query {
                open_now: true,
                seats_free_now: true,
                ..Query::default()
            },
        ];
        // Never read whole, the store's rows are not complete yet: the directory is read, and there is
        // no first screen without it.
        let before = fresh(&coordinator);
        assert!(before
            .store
            .search_rows(StoredRow::FORMAT)
            .unwrap()
            .is_none());
        let status = before.status().unwrap();
        assert_eq!(before.first_screen(status, 10).unwrap(), None);
        before.directory(&queries[0], now()).unwrap();
        assert!(before.catalog_built());
        // That first whole read kept them.
        let rows = coordinator.store.search_rows(StoredRow::FORMAT).unwrap();
        assert_eq!(rows.map(|r| r.len()), Some(3));
        // A verified fact, so the answers name its verifier from the roster.
        let harbour = others[0].my_space().unwrap();
        coordinator
            .verify_facts(&harbour, &["accessibility".into()], None, "", now())
            .unwrap();

        warm(&coordinator);
        let answers = |node: &Node| -> Vec<serde_json::Value> {
            queries
                .iter()
                .map(|q| serde_json::to_value(node.directory(q, now()).unwrap()).unwrap())
                .collect()
        };
        let check = |coordinator: &Node| {
            let cold = fresh(coordinator);
            let (held, kept) = (answers(coordinator), answers(&cold));
            assert!(!cold.catalog_built(), "the queries read the directory");
            assert_eq!(held, kept);
            // Each answer reads back from CBOR (the control socket's binary answer) as it was.
            for q in &queries {
                let directory = cold.directory(q, now()).unwrap();
                let bytes = cbor4ii::serde::to_vec(Vec::new(), &directory).unwrap();
                let back: crate::ops::directory::Directory =
                    cbor4ii::serde::from_slice(&bytes).unwrap();
                assert_eq!(back, directory);
            }
            // A city no space is in is refused with the same sentence.
            let nowhere = Query {
                near_city: Some("Atlantis".into()),
                ..Query::default()
            };
            let refused = |node: &Node| node.directory(&nowhere, now()).unwrap_err().to_string();
            assert_eq!(refused(&cold), refused(coordinator));
            assert!(!cold.catalog_built(), "an unknown city read the directory");
            // Opened to read, the node answers the same without loading the roster: it names the
            // verifier from the saved roster state alone.
            let lazy = opened_on(coordinator, Opening::Lazily);
            assert_eq!(answers(&lazy), held);
            assert!(!lazy.roster_loaded(), "the queries loaded the roster");
            // A TUI's first screen from the rows is the attach's first page, space for space (the
            // verified fact and its verifier's name included); the findings come with the attach.
            for first in [0, 2, 10] {
                let status = lazy.status().unwrap();
                let head = coordinator.snapshot_head(status.clone(), first).unwrap();
                let screen = lazy.first_screen(status, first).unwrap().unwrap();
                assert_eq!(screen.spaces, head.snapshot.spaces, "first {first}");
                assert_eq!(screen.following, head.snapshot.following, "first {first}");
                assert!(screen.findings.is_empty() && screen.roster.is_empty());
            }
            assert!(
                !lazy.roster_loaded() && !lazy.catalog_built(),
                "the first screen loaded the roster or the directory"
            );
            held
        };
        let held = check(&coordinator);
        let verified = held[2]["spaces"][0]["facts"].to_string();
        assert!(
            verified.contains("\"verified\"") && verified.contains("coordinator"),
            "the verified fact and its verifier are missing: {verified}"
        );
        assert_eq!(held[0]["matched"], 2);
        assert_eq!(held[1]["matched"], 1, "{}", held[1]);
        assert_eq!(held[2]["spaces"][0]["name"], "Harbour");
        assert_eq!(held[3]["spaces"][0]["name"], "Harbour");
        // An edit arrives: the rows stay complete and current.
        let id = others[0].my_space().unwrap();
        let mut l = testkit::listing(&id, "Harbour Loft");
        l.location.address.city = "Porto".into();
        l.location.lat = 41.15;
        l.amenities = Default::default();
        others[0].publish_listing(&l, now()).unwrap();
        let made = items(&mut others[0]);
        coordinator.ingest(made, Source::Mesh, At::now());
        let held = check(&coordinator);
        assert_eq!(held[2]["spaces"][0]["name"], "Harbour Loft");
        assert_eq!(held[2]["spaces"][0]["amenities"], serde_json::json!([]));
        assert_eq!(held[4]["matched"], 3);
        assert_eq!(held[5]["spaces"][0]["name"], "Attic", "{}", held[5]);
        assert_eq!(held[6]["matched"], 1, "{}", held[6]);
        // A list of verified facts only masks every listing: it reads the directory.
        let cold = fresh(&coordinator);
        let verified_only = Query {
            verified_only: true,
            ..Query::default()
        };
        cold.directory(&verified_only, now()).unwrap();
        assert!(cold.catalog_built());
    }

    #[test]
    fn a_roster_operation_that_reindexes_updates_the_catalog() {
        let (mut coordinator, mut space) = alliance();
        let id = space.my_space().unwrap();
        warm(&coordinator);
        warm(&space);
        let before = seen(&coordinator);
        coordinator
            .revoke(id, "left the alliance", false, now())
            .unwrap();
        let after = agrees_with_fresh(&coordinator);
        assert_ne!(before, after, "the revocation changed nothing shown");
        // The space hears of it from the mesh.
        let made = items(&mut coordinator);
        space.ingest(made, Source::Mesh, At::now());
        agrees_with_fresh(&space);
    }

    #[test]
    fn a_dirty_mark_rebuild_updates_the_catalog() {
        let (coordinator, mut space) = alliance();
        let id = space.my_space().unwrap();
        warm(&coordinator);
        space
            .publish_listing(&testkit::listing(&id, "Riverside Two"), now())
            .unwrap();
        // The change reaches the store without the ingest path (as a crash between storing it and
        // indexing it leaves things): only the dirty mark says the index is behind.
        for made in space.take_made() {
            let bytes = &made.item.bytes.0;
            coordinator
                .store
                .put_change(&id, &made.accepted.id.0, bytes)
                .unwrap();
        }
        assert_eq!(coordinator.store.dirty_spaces().unwrap(), vec![id.clone()]);
        coordinator.reindex_dirty().unwrap();
        let seen = agrees_with_fresh(&coordinator);
        assert_eq!(seen["directory"]["spaces"][0]["name"], "Riverside Two");
    }

    #[test]
    fn changes_waiting_for_earlier_ones_are_shown_then_cleared() {
        let (mut coordinator, mut space) = alliance();
        let id = space.my_space().unwrap();
        warm(&coordinator);
        for name in ["Riverside Two", "Riverside Three"] {
            space
                .publish_listing(&testkit::listing(&id, name), now())
                .unwrap();
        }
        let made = items(&mut space);
        assert_eq!(made.len(), 2);
        // The later change first: it waits for the earlier one, and the space shows it waiting.
        coordinator.ingest(vec![made[1].clone()], Source::Mesh, At::now());
        let seen = agrees_with_fresh(&coordinator);
        assert_eq!(
            seen["snapshot"][0]["rejected"].as_array().unwrap().len(),
            1,
            "{seen}"
        );
        coordinator.ingest(vec![made[0].clone()], Source::Mesh, At::now());
        let seen = agrees_with_fresh(&coordinator);
        assert!(seen["snapshot"][0]["rejected"]
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(seen["directory"]["spaces"][0]["name"], "Riverside Three");
    }
}
