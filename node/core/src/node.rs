//! [`Node`]: one home opened. It holds the device key, the settings, a store (sled on disk, or the
//! in-memory twin in unit tests) and the alliance roster loaded from the store, and keeps the derived
//! directory index up to date as signed items arrive through [`crate::ingest`].
//!
//! Every operation in [`crate::ops`] validates its input before it writes anything, signs with the device
//! key through `deskmesh-keys`, and hands what it signed to the same ingest path items from peers take, so
//! local edits and received items are checked and stored alike (flushed before the call returns).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::rows::StoredRow;
use anyhow::{anyhow, Context};
use deskmesh_crdt_model::beacon::{SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::change::{Authority, Denial, Envelope, SignedChange};
use deskmesh_crdt_model::doc::{ApplyOutcome, SpaceDoc};
use deskmesh_crdt_model::kept::{ChangeGraph, Kept};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::roster::{OpBody, Removal, Roster, RosterError, RosterState, SignedOp};
use deskmesh_keys::{keyfile, AllianceId, DeviceKey, Hash, PublicKey, Signer, SpaceId};
use deskmesh_store::{SledStore, SpaceState, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::docs::{DocCache, Warm};
use crate::home::{self, Home, NodeConfig, StoreLock};
use crate::ingest::{IngestState, ItemKind, Made, BEACON_ITEM, PROPOSAL_ITEM};

/// Meta key holding the alliance id this node belongs to.
pub(crate) const META_ALLIANCE: &str = "alliance";
/// Meta key holding the peer addresses an invite named, to dial first.
pub const META_BOOTSTRAP_PEERS: &str = "bootstrap_peers";
/// A space's device checkpoints its document after this many changes not yet covered by one, so a new
/// node joining needs at most this many changes of the space one by one.
pub const CHECKPOINT_EVERY: usize = 32;
/// The default mesh port; `init` stores it in node.toml so peers can save the address.
pub const DEFAULT_PORT: u16 = 4717;

/// The roster heads whose stored signatures were checked, and the operations whose signatures failed.
pub(crate) type RosterFaults = (Vec<Hash>, Vec<(Hash, RosterError)>);

/// One node's home, opened.
pub struct Node {
    key: DeviceKey,
    pub config: NodeConfig,
    pub store: Arc<dyn Store>,
    /// The roster, loaded at open, or at its first use by a node opened to read ([`Node::open_to_read`]).
    roster: std::cell::OnceCell<Option<Roster>>,
    /// Why the roster of a node opened to read could not be loaded at its first use.
    roster_unreadable: std::cell::RefCell<Option<String>>,
    /// The state at the roster's heads read alone from the saved roster, for a node opened to read that
    /// only names keys ([`Node::roster_state`]); unused once the roster is loaded.
    saved_state: std::cell::OnceCell<Option<RosterState>>,
    pub(crate) ingest: IngestState,
    /// Items this node signed or imported since the last [`Node::take_made`], for the caller to announce.
    pub(crate) made: Vec<Made>,
    /// Store what verifies and let the documents judge it, rather than refusing a removed key's change
    /// at the door: for checking an audit file, whose items the exporting node kept as evidence.
    pub(crate) keep_evidence: bool,
    /// Storing a roster operation failed and the roster could not be reloaded yet.
    pub(crate) roster_stale: bool,
    /// Whether reads that rebuild a space may rewrite its index (not on a [`Node::reader`], whose
    /// writes could land after newer ones of the node it was made from).
    writes_index: bool,
    /// Notes this process as the store's holder while the node is open (sled stores only).
    _lock: Option<StoreLock>,
    /// The home it was opened from (none over an in-memory store), where settings are saved.
    pub(crate) home: Option<Home>,
    /// Space documents kept warm, so a change is applied where it is instead of by a rebuild.
    docs: std::cell::RefCell<DocCache>,
    /// Spaces to rebuild from the store at the end of the batch (their changes came too far out of
    /// order to wait in the document).
    rebuild_after: std::cell::RefCell<std::collections::BTreeSet<SpaceId>>,
    /// The directory in memory, built from the store at the first read and kept current by every write
    /// of an index row or a beacon ([`Node::write_index`], the ingest of a beacon); dropped (to be
    /// rebuilt at the next read) when such a write fails.
    catalog: std::cell::RefCell<Option<Catalog>>,
    /// The directory being read on another thread while the node opens ([`Node::open_to_query`]);
    /// taken by the first read of the catalog, dropped by any write to it (which it might have missed).
    catalog_loading: std::cell::RefCell<Option<std::thread::JoinHandle<anyhow::Result<Catalog>>>>,
    /// The roster operations whose stored signatures did not verify, at the roster heads they were
    /// checked at: live front ends ask for findings often, and the roster seldom changes.
    pub(crate) roster_faults: std::cell::RefCell<Option<RosterFaults>>,
    /// The check of the roster's stored signatures running on another thread, with the heads it checks
    /// ([`Node::check_roster_signatures_in_background`]).
    pub(crate) roster_check: std::cell::RefCell<Option<RosterCheck>>,
}

/// A background check of the roster's stored signatures: the heads it checks and its thread.
pub(crate) type RosterCheck = (Vec<Hash>, std::thread::JoinHandle<Vec<(Hash, RosterError)>>);

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .field("key", &self.key.public_key())
            .finish_non_exhaustive()
    }
}

/// The roster as the listing model sees it: who may sign for which space at which roster heads.
#[derive(Debug)]
pub struct RosterAuthority<'a>(pub Option<&'a Roster>);

impl Authority for RosterAuthority<'_> {
    fn authorise(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Result<Hash, Denial> {
        match self.0 {
            Some(roster) => roster.authorise(heads, key, space),
            None => Err(Denial::pending("this node has not joined an alliance yet")),
        }
    }

    fn removals(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Vec<Removal> {
        self.0
            .map(|roster| Authority::removals(roster, heads, key, space))
            .unwrap_or_default()
    }
}

/// What `init` reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitReport {
    pub public_key: PublicKey,
    pub name: String,
    pub home: String,
    pub listen_port: u16,
}

/// Creates the node's identity in `home`. Refuses to replace an existing key.
pub fn init(home: &Home, name: Option<String>) -> anyhow::Result<InitReport> {
    if home.is_initialised() {
        anyhow::bail!(
            "a deskmesh node already exists at {}; use another --home to create a second one",
            home.root().display()
        );
    }
    home.create()?;
    let key = DeviceKey::generate();
    keyfile::write(&home.key_path(), &key)?;
    let name = name.unwrap_or_else(|| format!("node-{}", key.public_key().short()));
    let config = NodeConfig {
        name: name.clone(),
        listen_port: DEFAULT_PORT,
        location: None,
    };
    home.write_config(&config)?;
    // Open the store once so a read-only or full disk is reported now rather than at the first edit.
    SledStore::open(&home.store_path())?;
    Ok(InitReport {
        public_key: key.public_key(),
        name,
        home: home.root().display().to_string(),
        listen_port: config.listen_port,
    })
}

/// Why a home's store could not be opened because another process holds it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Busy {
    pub message: String,
    /// The process holding the store, when its note says so.
    pub holder: Option<home::Holder>,
}

/// What a node is opened for, which decides what it reads at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// The roster at open ([`Node::open`], [`Node::with_store`]).
    Everything,
    /// The directory on another thread from the start, and the roster at its first use
    /// ([`Node::open_to_query`]).
    ReadAhead,
    /// The roster at its first use ([`Node::open_to_read`]).
    Lazily,
}

/// A prefetch still running holds the store: it is waited for, so the store closes (and flushes) with
/// the node.
impl Drop for Node {
    fn drop(&mut self) {
        if let Some(thread) = self.catalog_loading.get_mut().take() {
            let _ = thread.join();
        }
    }
}

impl Node {
    /// Opens an initialised home: key, settings, store, roster. When another process holds the store the
    /// error is a [`Busy`] that names that process.
    pub fn open(home: &Home) -> anyhow::Result<Self> {
        Self::open_for(home, Opening::Everything)
    }

    /// [`Node::open`] for a command that reads the whole directory next and writes nothing (`spaces list`,
    /// exports, reports): the directory is read from the store on other threads from the start, and the
    /// roster is loaded as by [`Node::open_to_read`], at its first use (most such commands only name keys
    /// from the state at its heads).
    pub fn open_to_query(home: &Home) -> anyhow::Result<Self> {
        Self::open_for(home, Opening::ReadAhead)
    }

    /// [`Node::open`] for a daemon, which serves reads of the whole directory from the start: the
    /// directory is read on other threads while the caller goes on (loading the roster, starting the
    /// network), as with [`Node::open_to_query`]. [`Node::require_roster`] right after loads the roster
    /// and says why when it cannot.
    pub fn open_to_serve(home: &Home) -> anyhow::Result<Self> {
        Self::open_for(home, Opening::ReadAhead)
    }

    /// [`Node::open`] for a command that reads a little and writes nothing (a narrow `spaces list`): the
    /// roster is loaded at its first use, not at open, and a command that only names keys reads the
    /// state at the roster's heads alone ([`Node::roster_state`]). Writes work as on any node (they load
    /// the roster first), but a roster that cannot be loaded then shows as none, with the reason in
    /// [`Node::require_roster`]'s error, instead of failing the open.
    pub fn open_to_read(home: &Home) -> anyhow::Result<Self> {
        Self::open_for(home, Opening::Lazily)
    }

    fn open_for(home: &Home, opening: Opening) -> anyhow::Result<Self> {
        home.require_initialised()?;
        let key = keyfile::read(&home.key_path())?;
        let config = home.read_config()?;
        let store = match SledStore::open(&home.store_path()) {
            Ok(s) => s,
            Err(StoreError::Locked { path }) => return Err(busy(home, &path).into()),
            Err(e) => return Err(e.into()),
        };
        let lock = StoreLock::record(home);
        let mut node = Self::open_store(key, config, Arc::new(store), opening)?;
        node._lock = Some(lock);
        node.home = Some(home.clone());
        Ok(node)
    }

    /// A node over any store (the in-memory one in tests): loads the roster and rebuilds what a crash left
    /// dirty.
    pub fn with_store(
        key: DeviceKey,
        config: NodeConfig,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        Self::open_store(key, config, store, Opening::Everything)
    }

    pub(crate) fn open_store(
        key: DeviceKey,
        config: NodeConfig,
        store: Arc<dyn Store>,
        opening: Opening,
    ) -> anyhow::Result<Self> {
        let loading = (opening == Opening::ReadAhead).then(|| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || Catalog::load(store.as_ref()))
        });
        let mut node = Self {
            key,
            config,
            store,
            roster: Default::default(),
            roster_unreadable: Default::default(),
            saved_state: Default::default(),
            ingest: IngestState::default(),
            made: Vec::new(),
            keep_evidence: false,
            roster_stale: false,
            writes_index: true,
            _lock: None,
            home: None,
            docs: Default::default(),
            rebuild_after: Default::default(),
            catalog: Default::default(),
            catalog_loading: std::cell::RefCell::new(loading),
            roster_faults: Default::default(),
            roster_check: Default::default(),
        };
        if opening == Opening::Everything {
            node.roster = std::cell::OnceCell::from(node.load_roster()?);
        }
        // The index is derived: a node that cannot rebuild it now (a full disk) still opens, so read-only
        // commands work; the spaces stay marked and are rebuilt at a later open.
        if let Err(e) = node.reindex_dirty() {
            tracing::warn!(error = %format!("{e:#}"), "cannot rebuild the index of spaces a crash left dirty; it is rebuilt later");
        }
        Ok(node)
    }

    /// A node over this node's store, with a copy of its roster, for a long read on another thread while
    /// this node goes on serving (a running daemon's audit): it shares the store, not the caches, and
    /// writes nothing, not even the rebuildable index, since a rewrite could land after a newer one by
    /// this node. It signs as this node (an audit file is signed by the node that exports it).
    pub fn reader(&self) -> Node {
        Node {
            key: DeviceKey::from_seed(&self.key.seed()),
            config: self.config.clone(),
            store: Arc::clone(&self.store),
            roster: std::cell::OnceCell::from(self.roster().cloned()),
            roster_unreadable: Default::default(),
            saved_state: Default::default(),
            ingest: IngestState::default(),
            made: Vec::new(),
            keep_evidence: self.keep_evidence,
            roster_stale: self.roster_stale,
            writes_index: false,
            _lock: None,
            home: self.home.clone(),
            docs: Default::default(),
            rebuild_after: Default::default(),
            catalog: Default::default(),
            catalog_loading: Default::default(),
            roster_faults: Default::default(),
            roster_check: Default::default(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn signer(&self) -> &DeviceKey {
        &self.key
    }

    /// The alliance's roster (`None` before this node is in one). A node opened to read loads it here, at
    /// its first use.
    pub fn roster(&self) -> Option<&Roster> {
        self.roster
            .get_or_init(|| match self.load_roster() {
                Ok(roster) => roster,
                Err(e) => {
                    let why = format!("{e:#}");
                    tracing::warn!(error = %why, "cannot load the roster");
                    *self.roster_unreadable.borrow_mut() = Some(why);
                    None
                }
            })
            .as_ref()
    }

    /// Whether the roster is in memory (a node opened to read loads it at its first use).
    #[cfg(test)]
    pub(crate) fn roster_loaded(&self) -> bool {
        self.roster.get().is_some()
    }

    pub(crate) fn roster_mut(&mut self) -> Option<&mut Roster> {
        self.roster();
        self.roster.get_mut().and_then(Option::as_mut)
    }

    /// The state at the roster's heads: who coordinates, which spaces there are and their devices. A node
    /// opened to read whose roster is not loaded yet reads it alone from the saved roster, without the
    /// operations (a tenth of the cost at 10,000 spaces); otherwise it is the loaded roster's.
    pub fn roster_state(&self) -> Option<&RosterState> {
        if self.roster.get().is_none() {
            if let Some(state) = self.saved_state.get_or_init(|| self.saved_state_alone()) {
                return Some(state);
            }
        }
        self.roster().map(Roster::state)
    }

    /// [`Node::roster_state`] from the saved roster, when there is one and it is current.
    fn saved_state_alone(&self) -> Option<RosterState> {
        let read = || -> anyhow::Result<Option<RosterState>> {
            let Some(id) = self.stored_alliance()? else {
                return Ok(None);
            };
            let Some(bytes) = self.store.roster_state()? else {
                return Ok(None);
            };
            let saved: SavedRosterRef = postcard::from_bytes(&bytes)?;
            let (state, heads) = Roster::state_from_snapshot(id, saved.snapshot)?;
            Ok(self.missing_head(heads)?.is_none().then_some(state))
        };
        // Whatever keeps it from reading, the whole roster is loaded instead (and says why).
        read().ok().flatten()
    }

    /// The alliance this node is in. A node opened to read whose roster is not loaded yet takes it from
    /// the store, as loading the roster would.
    pub fn alliance_id(&self) -> Option<AllianceId> {
        match self.roster.get() {
            Some(roster) => roster.as_ref().map(Roster::alliance_id),
            None if self.roster_state().is_some() => self.stored_alliance().ok().flatten(),
            None => self.roster().map(Roster::alliance_id),
        }
    }

    pub fn require_roster(&self) -> anyhow::Result<&Roster> {
        self.roster().ok_or_else(|| match self.roster_unreadable.borrow().as_deref() {
            Some(why) => anyhow!("the alliance's roster cannot be read from this node's store: {why}"),
            None => anyhow!("this node is not in an alliance yet; run `deskmesh alliance create NAME` or `deskmesh alliance join TOKEN`"),
        })
    }

    /// Replaces the roster (after creating or joining an alliance).
    pub(crate) fn set_roster(&mut self, roster: Roster) {
        self.roster = std::cell::OnceCell::from(Some(roster));
    }

    /// The items this node signed or imported since the last call, oldest first, for the caller to
    /// announce (the daemon publishes them; a command that exits has nobody to tell).
    pub fn take_made(&mut self) -> Vec<Made> {
        std::mem::take(&mut self.made)
    }

    /// Makes the roster in memory match the store again after storing a roster operation failed (the
    /// roster took it before the store refused it). Until that works, the roster is marked stale.
    pub(crate) fn reload_roster(&mut self) {
        match self.load_roster() {
            Ok(roster) => {
                self.roster = std::cell::OnceCell::from(roster);
                self.roster_stale = false;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot reload the roster from the store; trying again at the next item");
                self.roster_stale = true;
            }
        }
    }

    /// The roster of the signed ops in the store: read back from the state saved beside them when it is
    /// current (it holds as many operations as the store and its heads are stored), else replayed from
    /// the operations and saved again.
    fn load_roster(&self) -> anyhow::Result<Option<Roster>> {
        let Some(id) = self.stored_alliance()? else {
            return Ok(None);
        };
        match self.saved_roster(id) {
            Ok(Some(roster)) => return Ok(Some(roster)),
            Ok(None) => {}
            Err(why) => {
                tracing::info!(reason = %format!("{why:#}"), "the saved roster state is not used; replaying the roster operations")
            }
        }
        let roster = self.replay_roster(id)?;
        let saved = SavedRoster {
            ops: self.store.op_count()?,
            snapshot: roster.snapshot(),
        };
        // Derived: a store that cannot take it now (a full disk) replays again next time.
        if let Err(e) = self.store.put_roster_state(&postcard::to_stdvec(&saved)?) {
            tracing::warn!(error = %e, "cannot save the roster state; the next open replays the roster again");
        }
        Ok(Some(roster))
    }

    /// The alliance the store is of, if any.
    fn stored_alliance(&self) -> anyhow::Result<Option<AllianceId>> {
        let Some(id) = self.store.get_meta(META_ALLIANCE)? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id)
            .parse()
            .context("the store's alliance id is corrupt")?;
        Ok(Some(id))
    }

    /// The roster as saved beside the store's operations, when there is a saved state and it is current;
    /// an error says why a saved state is not used.
    fn saved_roster(&self, id: AllianceId) -> anyhow::Result<Option<Roster>> {
        let Some(bytes) = self.store.roster_state()? else {
            return Ok(None);
        };
        let saved: SavedRosterRef =
            postcard::from_bytes(&bytes).context("the saved roster state is unreadable")?;
        let stored = self.store.op_count()?;
        if saved.ops != stored {
            anyhow::bail!(
                "it was saved with {} roster operations and the store holds {stored}",
                saved.ops
            );
        }
        let roster = Roster::from_snapshot(id, saved.snapshot)?;
        if let Some(head) = self.missing_head(roster.heads())? {
            anyhow::bail!("its head {} is not in the store", head.short());
        }
        Ok(Some(roster))
    }

    /// The first of a saved roster's `heads` the store does not hold, if any (then the saved roster is
    /// not current).
    fn missing_head(&self, heads: impl IntoIterator<Item = Hash>) -> anyhow::Result<Option<Hash>> {
        for head in heads {
            if !self.store.has_op(&head)? {
                return Ok(Some(head));
            }
        }
        Ok(None)
    }

    /// Rebuilds the roster from the signed ops in the store, without checking their signatures again.
    fn replay_roster(&self, id: AllianceId) -> anyhow::Result<Roster> {
        let mut pending = Vec::new();
        let mut create = None;
        for (hash, bytes) in self.store.ops()? {
            let op = SignedOp::from_bytes(&bytes)
                .with_context(|| format!("stored roster op {} is corrupt", hash.short()))?;
            if hash == id.0 {
                create = Some(op);
            } else {
                pending.push(op);
            }
        }
        let create = create.ok_or_else(|| {
            anyhow!("the store names alliance {id} but does not hold its create operation")
        })?;
        // Every stored operation had its signatures checked before it was stored; `audit` checks them
        // again (`Roster::unverified_signatures`).
        let (roster, report) = Roster::load_stored(create, pending)?;
        if !report.pending.is_empty() || !report.rejected.is_empty() {
            tracing::warn!(
                pending = report.pending.len(),
                rejected = report.rejected.len(),
                "some stored roster operations could not be applied"
            );
        }
        Ok(roster)
    }

    /// Whether this node's key lost its place: its space was revoked, or the key removed from it.
    pub fn standing(&self) -> Option<Standing> {
        let state = self.roster_state()?;
        let me = self.public_key();
        if self.my_space().is_some() {
            return None;
        }
        // Only a node that lost its place loads the whole roster, for when that happened.
        let at = |by: &Hash| {
            self.roster()
                .and_then(|r| r.get_op(by))
                .map(|op| op.created_at_ms)
        };
        if let Some((id, s)) = state
            .spaces
            .iter()
            .find(|(_, s)| s.revoked.is_some() && s.devices.contains_key(&me))
        {
            let (by, reason) = s.revoked.clone()?;
            return Some(Standing {
                space: id.clone(),
                space_name: s.name.clone(),
                revoked: true,
                reason: Some(reason),
                by,
                at_ms: at(&by),
            });
        }
        let (id, s, by) = state
            .spaces
            .iter()
            .find_map(|(id, s)| s.removed_devices.get(&me).map(|by| (id, s, *by)))?;
        Some(Standing {
            space: id.clone(),
            space_name: s.name.clone(),
            revoked: false,
            reason: None,
            by,
            at_ms: at(&by),
        })
    }

    /// This node's space: the one whose current devices include this node's key.
    pub fn my_space(&self) -> Option<SpaceId> {
        let me = self.public_key();
        self.roster_state()?
            .spaces
            .iter()
            .find(|(_, s)| s.revoked.is_none() && s.devices.contains_key(&me))
            .map(|(id, _)| id.clone())
    }

    pub fn require_space(&self) -> anyhow::Result<SpaceId> {
        self.require_roster()?;
        if let Some(space) = self.my_space() {
            return Ok(space);
        }
        Err(match self.standing() {
            Some(s) if s.revoked => anyhow!(
                "space {:?} ({}) was revoked by the alliance{}; this node can no longer sign for it",
                s.space_name,
                s.space,
                s.reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Some(s) => anyhow!(
                "this device was removed from space {:?} ({}) by roster operation {}; ask the space or a coordinator to add it again (`deskmesh alliance add-device`)",
                s.space_name,
                s.space,
                s.by.short()
            ),
            None => anyhow!("this node's key is not a device of any space in the roster; ask a coordinator for an invite and run `deskmesh alliance join TOKEN`"),
        })
    }

    // ---- the directory index -------------------------------------------------------------------

    /// Brings the index up to date after a roster operation: an op about one space (admission, device
    /// change, revocation) can only change which of that space's stored changes count; an op about the
    /// coordinators can change which grants take effect, so every space is rebuilt (rare).
    pub(crate) fn reindex_for(&self, op: &SignedOp) -> anyhow::Result<()> {
        match op.op()?.body.space() {
            Some(space) => {
                if self.store.change_count(space)? > 0
                    || !self.store.space_checkpoints(space)?.is_empty()
                {
                    self.reindex(space)?;
                }
                Ok(())
            }
            None => self.reindex_all(),
        }
    }

    /// Every space the node holds changes or checkpoints of, ordered.
    pub fn listed_spaces(&self) -> anyhow::Result<Vec<SpaceId>> {
        let mut spaces: std::collections::BTreeSet<SpaceId> =
            self.store.spaces()?.into_iter().collect();
        spaces.extend(self.store.checkpoints()?.into_iter().map(|(s, _, _)| s));
        Ok(spaces.into_iter().collect())
    }

    /// Rebuilds every space's index, e.g. after a roster change that may authorise or exclude changes.
    pub fn reindex_all(&self) -> anyhow::Result<()> {
        self.reindex_many(&self.listed_spaces()?)
    }

    /// Rebuilds the index of every space the store marks dirty (after a crash, or after new changes).
    pub fn reindex_dirty(&self) -> anyhow::Result<()> {
        self.reindex_many(&self.store.dirty_spaces()?)
    }

    /// [`Node::reindex`] of each of `spaces`, in order, stopping at the first error. The rebuilds, which
    /// read only the store and the roster, run [`REBUILD_GROUP`] spaces at a time on every core (a
    /// coordinator change rebuilds every space: a minute on one core for 1,000 spaces with a year of
    /// weekly edits); the index rows are written here, in order.
    pub(crate) fn reindex_many(&self, spaces: &[SpaceId]) -> anyhow::Result<()> {
        self.each_rebuilt(spaces, |space, doc, undecodable| {
            self.keep_rebuilt(space, doc, undecodable);
            self.write_index(space)
        })
    }

    /// Rebuilds each of `spaces` from the store ([`rebuild_from_store`]), [`REBUILD_GROUP`] at a time
    /// spread over every core, and hands each document to `then` in order, stopping at the first error.
    pub(crate) fn each_rebuilt(
        &self,
        spaces: &[SpaceId],
        mut then: impl FnMut(&SpaceId, SpaceDoc, Undecodable) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if spaces.is_empty() {
            // Nothing to rebuild: a node opened to read does not load its roster for it.
            return Ok(());
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let store: &dyn Store = &*self.store;
        let roster = self.roster();
        for group in spaces.chunks(REBUILD_GROUP) {
            let rebuilt = deskmesh_keys::par::map_in_order(
                group,
                threads,
                2,
                |s| rebuild_from_store(store, roster, s).map_err(|e| format!("{e:#}")),
                |s| Err(format!("rebuilding space {s} failed inside this node")),
            );
            for (space, result) in group.iter().zip(rebuilt) {
                let (doc, undecodable) = result.map_err(|e| anyhow!(e))?;
                then(space, doc, undecodable)?;
            }
        }
        Ok(())
    }

    /// Rebuilds one space's document from its stored signed changes (verifying every one again) and
    /// writes its index entry and saved state; returns how many changes it accepted. Only recovery (dirty
    /// marks), roster operations that change what earlier changes may do, and the audit need this.
    pub fn reindex(&self, space: &SpaceId) -> anyhow::Result<usize> {
        let (doc, undecodable) = self.space_doc(space)?;
        let accepted = self.keep_rebuilt(space, doc, undecodable);
        self.write_index(space)?;
        Ok(accepted)
    }

    /// Puts a document rebuilt from the store ([`rebuild_from_store`]) into the warm cache; returns how
    /// many changes it accepted.
    pub(crate) fn keep_rebuilt(
        &self,
        space: &SpaceId,
        doc: SpaceDoc,
        undecodable: Undecodable,
    ) -> usize {
        let accepted = doc.accepted().len();
        self.docs
            .borrow_mut()
            .put(space.clone(), Warm { doc, undecodable });
        accepted
    }

    /// Makes sure `space`'s document is warm: from the cache, else from the state saved beside its index
    /// when that index is current, else rebuilt from every stored change.
    pub(crate) fn warm(&self, space: &SpaceId) -> anyhow::Result<()> {
        if self.docs.borrow().contains(space) {
            return Ok(());
        }
        let warm = match self.saved_doc(space)? {
            Some(w) => w,
            None => {
                let (doc, undecodable) = self.space_doc(space)?;
                Warm { doc, undecodable }
            }
        };
        self.docs.borrow_mut().put(space.clone(), warm);
        Ok(())
    }

    /// The document as saved with the index, when the index is current and the state describes every
    /// stored change of the space.
    fn saved_doc(&self, space: &SpaceId) -> anyhow::Result<Option<Warm>> {
        if self.store.is_dirty(space)? {
            return Ok(None);
        }
        let Some(bytes) = self.store.doc_state(space)? else {
            return Ok(None);
        };
        let Ok(saved) = postcard::from_bytes::<SavedDoc>(&bytes) else {
            return Ok(None);
        };
        if saved.format != SAVED_DOC_FORMAT
            || saved.changes != self.store.change_count(space)? as u64
        {
            return Ok(None);
        }
        Ok(SpaceDoc::load_state(space.clone(), &saved.state)
            .ok()
            .map(|doc| Warm {
                doc,
                undecodable: saved.undecodable,
            }))
    }

    /// Applies a verified change to its space's warm document (see [`Node::warm`]) and pins the document
    /// until its index is written.
    pub(crate) fn apply_to_doc(
        &self,
        change: deskmesh_crdt_model::change::VerifiedChange,
    ) -> anyhow::Result<Option<ApplyOutcome>> {
        let space = change.envelope().space.clone();
        let hash = change.envelope().change_hash;
        let outcome = if !self.docs.borrow().contains(&space) {
            // Not warm after all: the store already holds the change, so a rebuild includes it.
            self.warm(&space)?;
            self.docs
                .borrow()
                .get(&space)
                .and_then(|w| w.doc.outcome_of(&hash))
        } else {
            let authority = RosterAuthority(self.roster());
            let outcome = self
                .docs
                .borrow_mut()
                .get_mut(&space)
                .map(|w| w.doc.apply_verified(change, &authority));
            if let Some(ApplyOutcome::Rejected(why)) = &outcome {
                if why.starts_with("not kept") {
                    // Too many changes wait for their dependencies (they came far out of order): the
                    // document refuses to hold more, so rebuild it from the store once the batch is in.
                    self.docs.borrow_mut().remove(&space);
                    self.rebuild_after.borrow_mut().insert(space.clone());
                    return Ok(None);
                }
            }
            outcome
        };
        self.docs.borrow_mut().pin(&space);
        Ok(outcome)
    }

    /// The heads of a space's listing as this node holds it: what a removal keeps.
    pub(crate) fn listing_heads(&self, space: &SpaceId) -> anyhow::Result<Vec<[u8; 32]>> {
        self.warm(space)?;
        Ok(self
            .docs
            .borrow()
            .get(space)
            .map(|w| w.doc.heads())
            .unwrap_or_default())
    }

    /// Writes the index of every space whose document changed since the last call.
    pub(crate) fn write_touched(&self) -> anyhow::Result<()> {
        let touched = self.docs.borrow().pinned();
        let mut first_error = None;
        let rebuild: Vec<SpaceId> = std::mem::take(&mut *self.rebuild_after.borrow_mut())
            .into_iter()
            .collect();
        for space in rebuild {
            if let Err(e) = self.reindex(&space) {
                first_error.get_or_insert(e);
            }
        }
        // The touched spaces' index rows go to the store in atomic writes of up to INDEX_WRITE spaces:
        // on sled each atomic write costs two synchronous log writes, which one per space made most of
        // a cold join's disk traffic.
        let mut states = Vec::new();
        for space in touched {
            match self.index_state(&space) {
                Ok(Some(state)) => states.push(state),
                Ok(None) => {}
                Err(e) => {
                    // The space stays dirty, so the next open rebuilds it.
                    self.docs.borrow_mut().remove(&space);
                    first_error.get_or_insert(e);
                }
            }
        }
        for chunk in states.chunks(INDEX_WRITE) {
            if let Err(e) = self.store_index(chunk) {
                // The spaces stay dirty, so the next open rebuilds them.
                let mut docs = self.docs.borrow_mut();
                for s in chunk {
                    docs.remove(&s.space);
                }
                first_error.get_or_insert(e.into());
            }
        }
        // Only now may the written documents leave the cache.
        self.docs.borrow_mut().release();
        first_error.map_or(Ok(()), Err)
    }

    /// Writes `listing` into its space's warm document as one change signed by this node (`None` when
    /// the document already says exactly this). The change is not stored yet: the caller ingests it.
    pub(crate) fn edit_doc(
        &self,
        listing: &deskmesh_crdt_model::listing::Listing,
        roster_heads: Vec<Hash>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<SignedChange>> {
        self.warm(&listing.id)?;
        let authority = RosterAuthority(self.roster());
        let mut docs = self.docs.borrow_mut();
        let w = docs
            .get_mut(&listing.id)
            .ok_or_else(|| anyhow!("the document of {} could not be loaded", listing.id))?;
        Ok(w.doc.edit(
            listing,
            &self.key,
            &authority,
            roster_heads,
            now.timestamp_millis(),
        )?)
    }

    /// Merges a checked checkpoint's document into `space`'s warm document and pins it; a space with no
    /// document yet takes the checkpoint's loaded document itself.
    pub(crate) fn merge_into_doc(
        &self,
        space: &SpaceId,
        id: Hash,
        loaded: deskmesh_crdt_model::checkpoint::Loaded,
        auth_op: Hash,
    ) -> anyhow::Result<usize> {
        let authority = RosterAuthority(self.roster());
        let mut docs = self.docs.borrow_mut();
        let w = docs
            .get_mut(space)
            .ok_or_else(|| anyhow!("the document of {space} could not be loaded"))?;
        let (doc, changes, listing) = loaded.into_parts();
        let n = w
            .doc
            .adopt_checkpoint(id, doc, &changes, listing, auth_op, &authority)?;
        docs.pin(space);
        Ok(n)
    }

    /// How many of `space`'s accepted changes this node holds only inside checkpoints (after a
    /// [`Node::reindex`], which leaves the document warm).
    pub fn vouched(&self, space: &SpaceId) -> usize {
        self.docs.borrow().get(space).map_or(0, |w| {
            w.doc
                .accepted()
                .iter()
                .filter(|(id, a)| {
                    a.vouched_by.is_some() && !self.store.has_change(space, id).unwrap_or(false)
                })
                .count()
        })
    }

    /// Forgets a warm document (after a failed write, its memory may be ahead of the store).
    pub(crate) fn forget_doc(&self, space: &SpaceId) {
        self.docs.borrow_mut().remove(space);
    }

    /// What a warm document's index holds: its listing entry (JSON) and why each change that does not
    /// count does not; `None` when the document is not warm.
    pub(crate) fn index_rows(&self, space: &SpaceId) -> anyhow::Result<Option<IndexRows>> {
        let docs = self.docs.borrow();
        let Some(Warm { doc, undecodable }) = docs.get(space) else {
            return Ok(None);
        };
        let entry = IndexEntry::from_doc(doc, self.roster());
        let listing = match &entry {
            Some(e) => Some(serde_json::to_vec(e)?),
            None => None,
        };
        let search_row = entry.as_ref().map(|e| StoredRow::of(e).to_bytes());
        let mut rejected: Vec<([u8; 32], RejectionRecord)> = Vec::new();
        for r in doc.rejected() {
            rejected.push((
                r.hash,
                RejectionRecord {
                    author: r.author,
                    reason: r.reason.clone(),
                    waiting: false,
                },
            ));
        }
        for p in doc.pending() {
            rejected.push((
                p.hash,
                RejectionRecord {
                    author: p.change.envelope().ok().map(|e| e.author),
                    reason: format!("{PENDING_PREFIX}{}", p.reason),
                    waiting: true,
                },
            ));
        }
        for (hash, why) in undecodable {
            rejected.push((
                *hash,
                RejectionRecord {
                    author: None,
                    reason: why.clone(),
                    waiting: false,
                },
            ));
        }
        Ok(Some(IndexRows {
            accepted: doc.accepted().len(),
            listing,
            search_row,
            rejected,
        }))
    }

    /// Writes a warm document's index entry, rejections and saved state in one atomic store write.
    fn write_index(&self, space: &SpaceId) -> anyhow::Result<()> {
        let Some(state) = self.index_state(space)? else {
            return Ok(());
        };
        self.store_index(std::slice::from_ref(&state))?;
        Ok(())
    }

    /// What [`Node::write_index`] writes for a warm space: its index rows and its saved document;
    /// `None` when the space is not warm.
    fn index_state(&self, space: &SpaceId) -> anyhow::Result<Option<IndexState>> {
        let Some(rows) = self.index_rows(space)? else {
            return Ok(None);
        };
        let saved = {
            let docs = self.docs.borrow();
            let Some(Warm { doc, undecodable }) = docs.get(space) else {
                return Ok(None);
            };
            SavedDoc {
                changes: self.store.change_count(space)? as u64,
                state: doc.save_state(),
                undecodable: undecodable.clone(),
                format: SAVED_DOC_FORMAT,
            }
        };
        let saved = postcard::to_stdvec(&saved)?;
        let mut rejected: Vec<([u8; 32], Vec<u8>)> = Vec::new();
        for (hash, record) in &rows.rejected {
            rejected.push((*hash, serde_json::to_vec(record)?));
        }
        Ok(Some(IndexState {
            space: space.clone(),
            listing: rows.listing,
            search_row: rows.search_row,
            rejected,
            saved,
        }))
    }

    /// Writes the index of `states` in one atomic store write, then puts their entries into the
    /// directory in memory. When the write fails the directory in memory is dropped (the store's
    /// outcome is unknown) and the spaces stay dirty.
    fn store_index(&self, states: &[IndexState]) -> Result<(), StoreError> {
        let rejected: Vec<Vec<([u8; 32], &[u8])>> = states
            .iter()
            .map(|s| s.rejected.iter().map(|(h, b)| (*h, b.as_slice())).collect())
            .collect();
        let writes: Vec<SpaceState<'_>> = states
            .iter()
            .zip(&rejected)
            .map(|(s, rejected)| SpaceState {
                space: &s.space,
                listing: s.listing.as_deref(),
                rejected,
                doc_state: Some(&s.saved),
                search_row: s.search_row.as_deref(),
            })
            .collect();
        if let Err(e) = self.store.replace_space_states(&writes) {
            self.drop_catalog();
            return Err(e);
        }
        self.discard_prefetch();
        let mut slot = self.catalog.borrow_mut();
        for s in states {
            if slot.is_none() {
                break;
            }
            match s
                .listing
                .as_deref()
                .map(serde_json::from_slice::<IndexEntry>)
                .transpose()
            {
                Ok(entry) => {
                    if let Some(catalog) = slot.as_mut() {
                        catalog.put(&s.space, entry);
                    }
                }
                Err(_) => *slot = None,
            }
        }
        Ok(())
    }

    /// Writes a space's index when the store takes it; the audit reads the rows it computed either way,
    /// so it works on a full disk.
    pub(crate) fn try_write_index(&self, space: &SpaceId) {
        if !self.writes_index {
            return;
        }
        if let Err(e) = self.write_index(space) {
            tracing::debug!(space = %space, error = %format!("{e:#}"), "index not rewritten");
        }
    }

    /// The space's document rebuilt from the store, and the stored changes that do not even decode.
    pub fn space_doc(&self, space: &SpaceId) -> anyhow::Result<(SpaceDoc, Undecodable)> {
        rebuild_from_store(&*self.store, self.roster(), space)
    }

    /// A checkpoint of this node's space's document as it is now, signed by this node, when at least
    /// [`CHECKPOINT_EVERY`] changes were accepted since the newest checkpoint kept here.
    pub(crate) fn checkpoint_due(
        &self,
        space: &SpaceId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<deskmesh_crdt_model::checkpoint::SignedCheckpoint>> {
        use deskmesh_crdt_model::checkpoint::SignedCheckpoint;
        // The changes the largest kept checkpoint holds (its header says; its document is not loaded).
        let covered = self
            .store
            .space_checkpoints(space)?
            .iter()
            .filter_map(|(_, bytes)| SignedCheckpoint::from_bytes(bytes).ok()?.decode().ok())
            .map(|h| h.changes as usize)
            .max()
            .unwrap_or(0);
        let docs = self.docs.borrow();
        let Some(w) = docs.get(space) else {
            return Ok(None);
        };
        let accepted = w.doc.accepted().len();
        if accepted < covered + CHECKPOINT_EVERY {
            return Ok(None);
        }
        let roster = self.require_roster()?;
        Ok(Some(SignedCheckpoint::sign(
            space.clone(),
            w.doc.doc(),
            &self.key,
            roster.heads(),
            now.timestamp_millis(),
        )?))
    }

    // ---- the refusal sink ----------------------------------------------------------------------

    /// Records a refused item in the store's bounded log (the audit lists it) and returns the reason.
    /// Every source's refusals end here; the record names the item, its author and space, and where it
    /// came from (the source and peer of the batch being judged). A store that cannot record it is
    /// logged, not fatal: the item is refused either way.
    pub fn refuse(
        &self,
        kind: ItemKind,
        item: Option<Hash>,
        author: Option<PublicKey>,
        space: Option<SpaceId>,
        reason: String,
    ) -> String {
        let (source, peer) = match &self.ingest.from {
            Some((source, peer)) => (Some(source.label().to_string()), peer.clone()),
            None => (None, None),
        };
        self.record(RefusalRecord {
            kind: kind.label().to_string(),
            item,
            author,
            space,
            reason,
            at_ms: chrono::Utc::now().timestamp_millis(),
            peer,
            source,
            stored: false,
        })
    }

    /// Records something a peer sent that is refused before it is even an item (unreadable gossip), or
    /// a limit it ran into, naming the peer.
    pub fn refuse_from_peer(
        &self,
        what: &str,
        peer: &str,
        space: Option<SpaceId>,
        reason: String,
    ) -> String {
        self.record(RefusalRecord {
            kind: what.to_string(),
            item: None,
            author: None,
            space,
            reason,
            at_ms: chrono::Utc::now().timestamp_millis(),
            peer: Some(peer.to_string()),
            source: Some("gossip".to_string()),
            stored: false,
        })
    }

    fn record(&self, record: RefusalRecord) -> String {
        let logged = serde_json::to_vec(&record)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(self.store.log_refused(&b)?));
        let (kind, reason) = (record.kind.as_str(), record.reason.as_str());
        match logged {
            Ok(()) => {
                tracing::info!(kind, author = ?record.author, peer = ?record.peer, reason, "refused a signed item")
            }
            Err(e) => {
                tracing::error!(kind, reason, error = %e, "refused a signed item but cannot log it for the audit")
            }
        }
        record.reason
    }

    /// Strong removal at the door: why a change by a removed key that its removal does not keep is
    /// refused, judged over the space's stored changes; `None` when nothing constrains it or it is
    /// (or may turn out to be) kept.
    pub(crate) fn unkept(&self, env: &Envelope) -> Option<String> {
        if self.keep_evidence {
            return None;
        }
        let roster = self.roster()?;
        let removals = roster
            .removals(&env.roster_heads, &env.author, &env.space)
            .ok()?;
        if removals.is_empty() {
            return None;
        }
        let mut graph = ChangeGraph::default();
        for bytes in self.store.changes(&env.space).ok()? {
            // Stored changes were verified when they arrived, so their envelopes' dependencies are the
            // ones their hashes commit to.
            if let Ok(e) = SignedChange::from_bytes(&bytes).and_then(|c| c.envelope()) {
                graph.add(e.change_hash, e.deps);
            }
        }
        graph.add(env.change_hash, env.deps.clone());
        match graph.kept(&env.change_hash, &removals) {
            Kept::No { by, revocation } => {
                Some(ChangeGraph::unkept_reason(&env.author, &by, revocation))
            }
            Kept::Yes | Kept::Unknown { .. } => None,
        }
    }

    /// Why a checkpoint must be refused under strong removal, if it must: its author is a key a removal
    /// (or its space's revocation) constrains at the checkpoint's roster heads, and the document holds a
    /// change the removal does not keep, so it could carry what the key signed after its removal.
    pub(crate) fn unkept_checkpoint(
        &self,
        c: &deskmesh_crdt_model::checkpoint::Checkpoint,
        changes: &[automerge::Change],
    ) -> Option<String> {
        // Unlike changes, even an audit file's checkpoints are judged here: the exporting node never
        // stores one this refuses, so one in its file is refused by the offline check too.
        let roster = self.roster()?;
        let removals = roster.removals(&c.roster_heads, &c.author, &c.space).ok()?;
        if removals.is_empty() {
            return None;
        }
        let mut graph = ChangeGraph::default();
        for bytes in self.store.changes(&c.space).ok()? {
            if let Ok(e) = SignedChange::from_bytes(&bytes).and_then(|c| c.envelope()) {
                graph.add(e.change_hash, e.deps);
            }
        }
        for ch in changes {
            graph.add(ch.hash().0, ch.deps().iter().map(|d| d.0).collect());
        }
        // The header's heads are the document's (checked when it was loaded).
        for head in &c.heads {
            if let Kept::No { by, revocation } = graph.kept(head, &removals) {
                return Some(format!(
                    "a checkpoint {}",
                    ChangeGraph::unkept_reason(&c.author, &by, revocation)
                ));
            }
        }
        None
    }

    /// Notes, for the audit, where a change came from that was stored but is excluded from its listing
    /// (`outcome` is what its space's document made of it).
    pub(crate) fn note_if_rejected(&self, env: &Envelope, outcome: Option<&ApplyOutcome>) {
        // Waiting for its dependencies is not a verdict yet.
        let Some(ApplyOutcome::Rejected(reason)) = outcome else {
            return;
        };
        let (source, peer) = match &self.ingest.from {
            Some((source, peer)) => (Some(source.label().to_string()), peer.clone()),
            None => (None, None),
        };
        self.record(RefusalRecord {
            kind: ItemKind::ListingChange.label().to_string(),
            item: Some(Hash(env.change_hash)),
            author: Some(env.author),
            space: Some(env.space.clone()),
            reason: reason.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            peer,
            source,
            stored: true,
        });
    }

    /// What a roster operation just applied ends in the store: the beacons of a space it revoked or of
    /// a key it removed (strong removal: they are no longer shown, stored or served), and the proposal
    /// it settles. Returns the items removed.
    pub(crate) fn after_roster_op(
        &self,
        hash: &Hash,
        signed: &SignedOp,
    ) -> anyhow::Result<Vec<(ItemKind, Hash)>> {
        let op = signed.op()?;
        let mut removed = Vec::new();
        let (space, device) = match &op.body {
            OpBody::RevokeSpace { space, .. } | OpBody::RevokeSpaceV1 { space, .. } => {
                (Some(space), None)
            }
            OpBody::RemoveDevice { space, device, .. }
            | OpBody::RemoveDeviceV1 { space, device } => (Some(space), Some(device)),
            _ => (None, None),
        };
        if let Some(space) = space {
            for (pool, bytes) in self.store.space_beacons(space)? {
                let author = SignedBeacon::from_bytes(&bytes)
                    .and_then(|b| b.decode())
                    .map(|b| b.author)
                    .ok();
                if device.is_none() || author.as_ref() == device {
                    self.store.remove_beacon(space, &pool)?;
                    self.discard_prefetch();
                    if let Some(catalog) = self.catalog.borrow_mut().as_mut() {
                        catalog.remove_beacon(space, &pool);
                    }
                    removed.push((ItemKind::SeatBeacon, Hash::of(BEACON_ITEM, &bytes)));
                }
            }
        }
        if op.body.needs_quorum() {
            if let Some(bytes) = self.store.proposal(hash)? {
                self.store.remove_proposal(hash)?;
                removed.push((ItemKind::Proposal, Hash::of(PROPOSAL_ITEM, &bytes)));
            }
        }
        Ok(removed)
    }

    /// Every refusal the log keeps, oldest first.
    pub fn refusals(&self) -> anyhow::Result<Vec<RefusalRecord>> {
        let mut out = Vec::new();
        for bytes in self.store.refused()? {
            out.push(serde_json::from_slice(&bytes)?);
        }
        Ok(out)
    }

    // ---- reading the index ---------------------------------------------------------------------

    /// The directory in memory ([`Catalog`]): built from the store at the first call, then kept current
    /// by this node's writes.
    pub fn catalog(&self) -> anyhow::Result<std::cell::Ref<'_, Catalog>> {
        if self.catalog.borrow().is_none() {
            let loading = self.catalog_loading.borrow_mut().take();
            let built = match loading.map(std::thread::JoinHandle::join) {
                Some(Ok(read)) => read?,
                // Its thread panicked: read it here, where an error is reported.
                Some(Err(_)) | None => Catalog::load(self.store.as_ref())?,
            };
            self.keep_search_rows(&built);
            *self.catalog.borrow_mut() = Some(built);
        }
        let held = self.catalog.borrow();
        std::cell::Ref::filter_map(held, Option::as_ref)
            .map_err(|_| anyhow!("the directory in memory was dropped while it was read"))
    }

    /// Ends a node whose process ends next: the store is closed (flushed) as on drop, but the directory
    /// and the roster in memory are left to the process's exit instead of being freed row by row (tens
    /// of milliseconds at 10,000 spaces, which a one-shot command would spend after its answer).
    pub fn close(mut self) {
        std::mem::forget(self.catalog.take());
        std::mem::forget(self.roster.take());
    }

    /// Writes the search rows of every listed space when the store's are not complete in the current
    /// format (a store written before they were kept, or by an older format): a command without a daemon
    /// then queries them instead of reading every listing ([`Node::directory`]). Once written, every
    /// index write keeps them. A store that refuses the write (a full disk) is only slower.
    fn keep_search_rows(&self, catalog: &Catalog) {
        match self.store.search_rows_format() {
            Ok(Some(f)) if f == StoredRow::FORMAT => {}
            Ok(_) => {
                if let Err(e) = self
                    .store
                    .put_search_rows(StoredRow::FORMAT, &catalog.stored_rows())
                {
                    tracing::warn!(error = %e, "cannot keep the directory's search rows; queries read every listing");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the search rows' format"),
        }
    }

    /// Whether the directory is in memory (or being read into it).
    pub(crate) fn catalog_in_memory(&self) -> bool {
        self.catalog.borrow().is_some() || self.catalog_loading.borrow().is_some()
    }

    /// A write reached the directory before its prefetch was read: the prefetch may have missed it, so it
    /// is waited for (its thread holds the store) and thrown away; the next read builds the catalog.
    fn discard_prefetch(&self) {
        let loading = self.catalog_loading.borrow_mut().take();
        if let Some(thread) = loading {
            let _ = thread.join();
        }
    }

    /// Forgets the directory in memory, so the next read builds it from the store again (after a write
    /// whose outcome it cannot know).
    pub(crate) fn drop_catalog(&self) {
        self.discard_prefetch();
        *self.catalog.borrow_mut() = None;
    }

    /// Whether the directory in memory is built (tests check it is kept, not dropped).
    #[cfg(test)]
    pub(crate) fn catalog_built(&self) -> bool {
        self.catalog.borrow().is_some()
    }

    /// A beacon just stored replaces its pool's in the directory in memory.
    pub(crate) fn catalog_put_beacon(&self, beacon: &SeatBeacon) {
        self.discard_prefetch();
        if let Some(catalog) = self.catalog.borrow_mut().as_mut() {
            catalog.put_beacon(beacon.clone());
        }
    }

    /// How many spaces the index lists (from the directory in memory when it is built).
    pub(crate) fn listed_count(&self) -> anyhow::Result<usize> {
        if let Some(catalog) = self.catalog.borrow().as_ref() {
            return Ok(catalog.len());
        }
        Ok(self.store.entry_count()?)
    }

    /// Every listing in the index with its metadata, in space id order.
    pub fn entries(&self) -> anyhow::Result<Vec<IndexEntry>> {
        Ok(self
            .catalog()?
            .entries()
            .iter()
            .map(|e| (**e).clone())
            .collect())
    }

    /// One space's index entry, if it has a valid listing.
    pub fn entry(&self, space: &SpaceId) -> anyhow::Result<Option<IndexEntry>> {
        Ok(self.catalog()?.entry(space).map(|(e, _)| e.clone()))
    }

    /// The listing of `space` as the index holds it.
    pub fn current_listing(&self, space: &SpaceId) -> anyhow::Result<Option<Listing>> {
        Ok(self.catalog()?.entry(space).map(|(_, l)| l.clone()))
    }

    /// The newest verified beacon of every (space, pool), by space and pool.
    pub fn beacons(&self) -> anyhow::Result<Vec<SeatBeacon>> {
        let catalog = self.catalog()?;
        let mut spaces: Vec<&SpaceId> = catalog.all_beacons().keys().collect();
        spaces.sort();
        Ok(spaces
            .into_iter()
            .flat_map(|s| catalog.beacons(s).iter().cloned())
            .collect())
    }

    /// The newest verified beacon of each pool of one space.
    pub fn space_beacons(&self, space: &SpaceId) -> anyhow::Result<Vec<SeatBeacon>> {
        Ok(self.catalog()?.beacons(space).to_vec())
    }
}

fn busy(home: &Home, path: &std::path::Path) -> Busy {
    let holder = home::holder(home);
    let message = match &holder {
        Some(h) => format!(
            "another deskmesh process (pid {}, `{}`) is using the store at {}; stop it (`kill {}`), or if it is `deskmesh run`, wait until its control socket answers and try again",
            h.pid,
            h.command,
            path.display(),
            h.pid
        ),
        None => format!(
            "another deskmesh process is using the store at {}; stop it, or if it is `deskmesh run`, wait until its control socket answers and try again",
            path.display()
        ),
    };
    Busy { message, holder }
}

/// Stored changes that do not even decode, with why: (change hash as stored, reason).
pub type Undecodable = Vec<([u8; 32], String)>;

/// How many spaces [`Node::each_rebuilt`] rebuilds at once, spread over the cores, before handing them
/// on: it bounds how many rebuilt documents wait in memory.
const REBUILD_GROUP: usize = 64;

/// A space's document rebuilt from every signed change and checkpoint `store` holds of it, judged under
/// `roster`, and the stored changes that do not even decode. Reads the store and nothing of a node, so
/// an audit rebuilds many spaces at once on every core.
pub(crate) fn rebuild_from_store(
    store: &dyn Store,
    roster: Option<&Roster>,
    space: &SpaceId,
) -> anyhow::Result<(SpaceDoc, Undecodable)> {
    let mut changes = Vec::new();
    let mut undecodable = Vec::new();
    for hash in store.change_hashes(space)? {
        let Some(bytes) = store.change(space, &hash)? else {
            continue;
        };
        match SignedChange::from_bytes(&bytes) {
            Ok(c) => changes.push(c),
            Err(e) => undecodable.push((hash, e.to_string())),
        }
    }
    let authority = RosterAuthority(roster);
    let mut doc = SpaceDoc::rebuild(space.clone(), changes, &authority);
    // The changes the node holds only inside checkpoints come from them (verified again here).
    for (id, bytes) in store.space_checkpoints(space)? {
        if let Err(why) = merge_stored_checkpoint(roster, &mut doc, space, id, &bytes) {
            tracing::warn!(space = %space, checkpoint = %id.short(), reason = %why, "a stored checkpoint no longer applies");
        }
    }
    Ok((doc, undecodable))
}

/// Verifies a stored checkpoint again (its signature, its signer's authority under `roster`, its
/// document) and merges it into `doc`.
fn merge_stored_checkpoint(
    roster: Option<&Roster>,
    doc: &mut SpaceDoc,
    space: &SpaceId,
    id: Hash,
    bytes: &[u8],
) -> Result<usize, String> {
    use deskmesh_crdt_model::checkpoint::SignedCheckpoint;
    let signed = SignedCheckpoint::from_bytes(bytes).map_err(|e| e.to_string())?;
    let header = signed.verify().map_err(|e| e.to_string())?;
    let authority = RosterAuthority(roster);
    let auth_op = authority
        .authorise(&header.roster_heads, &header.author, space)
        .map_err(|d| d.reason)?;
    let loaded = signed.load(&header).map_err(|e| e.to_string())?;
    loaded
        .authorise(|k| roster.is_some_and(|r| r.ever_granted(k, space)))
        .map_err(|e| e.to_string())?;
    doc.merge_checkpoint(id, loaded.changes(), auth_op, &authority)
        .map_err(|e| e.to_string())
}

/// The roster as saved beside the store's operations ([`Roster::snapshot`]): used only while the store
/// holds `ops` operations (storing one drops it anyway).
#[derive(Serialize)]
struct SavedRoster {
    ops: u64,
    snapshot: Vec<u8>,
}

/// [`SavedRoster`] read back without copying the snapshot.
#[derive(Deserialize)]
struct SavedRosterRef<'a> {
    ops: u64,
    snapshot: &'a [u8],
}

/// A space's document as saved beside its index: valid only while the space holds `changes` changes, and
/// only when written by a node of the current [`SAVED_DOC_FORMAT`].
#[derive(Serialize, Deserialize)]
struct SavedDoc {
    changes: u64,
    /// [`SpaceDoc::save_state`] bytes.
    state: Vec<u8>,
    undecodable: Undecodable,
    /// Last, so a state saved before the field existed fails to decode and is rebuilt.
    format: u32,
}

/// The format of [`SavedDoc`]; a saved document of another format is rebuilt from the store. 2: documents
/// saved by a rebuild that could drop stored changes past `MAX_PENDING` waiting for a checkpoint (fixed
/// at 2) are not trusted.
const SAVED_DOC_FORMAT: u32 = 2;

/// One refused item, as the log keeps it (JSON). Fields added since the first version are optional, so
/// older records still read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefusalRecord {
    pub kind: String,
    /// The item's id (a change hash, a roster operation hash, a beacon's or verification's item id).
    #[serde(default)]
    pub item: Option<Hash>,
    pub author: Option<PublicKey>,
    pub space: Option<SpaceId>,
    pub reason: String,
    pub at_ms: i64,
    /// The libp2p peer id it came from, when it came from the mesh.
    #[serde(default)]
    pub peer: Option<String>,
    /// "mesh", "gossip", "bundle" or "this node".
    #[serde(default)]
    pub source: Option<String>,
    /// The item was stored all the same (a listing change kept as evidence, excluded from its listing);
    /// the record only says where it came from.
    #[serde(default)]
    pub stored: bool,
}

/// This node's key lost its place in the alliance: what `status` and the TUI say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub space: SpaceId,
    pub space_name: String,
    /// The whole space was revoked (otherwise only this key was removed from it).
    pub revoked: bool,
    /// The revocation's reason.
    pub reason: Option<String>,
    /// The roster operation that did it.
    pub by: Hash,
    /// When that operation was signed (its author's clock).
    pub at_ms: Option<i64>,
}

/// How a rejection reason starts when the change only waits (for its dependencies or roster heads).
pub const PENDING_PREFIX: &str = "not applied yet: ";

/// The materialised view of one space kept in the index (rebuildable from the signed changes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    pub space: SpaceId,
    /// Read straight from the row's JSON (no `serde_json::Value` in between): the listing was validated
    /// when the entry was built from the signed changes, so reading it back only deserialises.
    pub listing: Listing,
    /// Automerge heads of the document, hex.
    pub heads: Vec<String>,
    pub signers: Vec<SignerInfo>,
    /// Set for a revoked space whose revocation asked to keep it listed, marked revoked. A revoked space
    /// that did not ask has no index entry at all: it has left the directory.
    #[serde(default)]
    pub revoked: Option<RevokedNote>,
}

/// A revocation as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedNote {
    pub reason: String,
    /// The revoking roster operation.
    pub by: Hash,
}

/// Who signed a listing, how often, and under which roster operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignerInfo {
    pub key: PublicKey,
    pub changes: usize,
    /// The roster op that authorised the key (admission or device addition).
    pub authorised_by: Hash,
    /// Set when the key has since been removed or its space revoked: its past changes stay but are flagged.
    pub removed_by: Option<Hash>,
}

/// Why a stored change was not used, as kept in the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectionRecord {
    pub author: Option<PublicKey>,
    pub reason: String,
    /// Not refused: it waits for roster operations or earlier changes this node does not hold yet.
    /// (Absent in index rows written before this field; their reason then starts "not applied yet".)
    #[serde(default)]
    pub waiting: bool,
}

impl RejectionRecord {
    /// Whether the change only waits for something (see [`RejectionRecord::waiting`]).
    pub fn is_waiting(&self) -> bool {
        self.waiting || self.reason.starts_with("not applied yet")
    }
}

/// One space's index as [`Node::write_touched`] writes it: its rows, encoded, and its saved document.
struct IndexState {
    space: SpaceId,
    listing: Option<Vec<u8>>,
    search_row: Option<Vec<u8>>,
    rejected: Vec<([u8; 32], Vec<u8>)>,
    saved: Vec<u8>,
}

/// The most spaces whose index [`Node::write_touched`] writes in one atomic store write (about 1 MB).
const INDEX_WRITE: usize = 256;

/// A space's index as rebuilt from its warm document: how many changes count, the listing entry (JSON)
/// and why each change that does not count does not.
#[derive(Debug)]
pub struct IndexRows {
    pub accepted: usize,
    pub listing: Option<Vec<u8>>,
    /// The listing's [`StoredRow`], encoded, kept beside it for queries without a daemon.
    pub search_row: Option<Vec<u8>>,
    pub rejected: Vec<([u8; 32], RejectionRecord)>,
}

impl IndexEntry {
    fn from_doc(doc: &SpaceDoc, roster: Option<&Roster>) -> Option<Self> {
        // A revocation takes the space out of the directory, unless it asked to keep it listed.
        let revoked = match roster.and_then(|r| r.state().spaces.get(doc.space())) {
            Some(entry) => match &entry.revoked {
                Some((by, reason)) if entry.revoked_listed => Some(RevokedNote {
                    reason: reason.clone(),
                    by: *by,
                }),
                Some(_) => return None,
                None => None,
            },
            None => None,
        };
        let listing = doc.listing()?;
        let mut by_key: BTreeMap<PublicKey, SignerInfo> = BTreeMap::new();
        for c in doc.accepted().values() {
            let e = by_key.entry(c.author).or_insert_with(|| SignerInfo {
                key: c.author,
                changes: 0,
                authorised_by: c.auth_op,
                removed_by: roster.and_then(|r| r.is_revoked_now(&c.author, doc.space())),
            });
            e.changes += 1;
        }
        Some(Self {
            space: doc.space().clone(),
            listing,
            heads: doc.heads().iter().map(hex).collect(),
            signers: by_key.into_values().collect(),
            revoked,
        })
    }
}

/// Lower-case hex of a 32-byte hash.
pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod saved_roster {
    //! The roster state saved beside the store: a node opened from it answers as one that replayed the
    //! operations, and a saved state that is stale or unreadable is replayed instead and saved again.

    use deskmesh_crdt_model::query::Query;
    use deskmesh_keys::roster::RosterState;
    use deskmesh_keys::DeviceKey;

    use super::*;
    use crate::home::NodeConfig;
    use crate::testkit::{self, now};

    /// A node opened afresh over `store`.
    fn reopen(store: &Arc<dyn Store>) -> Node {
        Node::with_store(
            DeviceKey::generate(),
            NodeConfig {
                name: "reopened".into(),
                listen_port: 0,
                location: None,
            },
            store.clone(),
        )
        .unwrap()
    }

    fn alliance_id(node: &Node) -> AllianceId {
        node.alliance_id().unwrap()
    }

    /// The roster's state, heads and operation count, for comparing two rosters.
    fn shape(roster: &Roster) -> (RosterState, Vec<Hash>, usize, Vec<u8>) {
        (
            roster.state().clone(),
            roster.heads(),
            roster.len(),
            roster.snapshot(),
        )
    }

    /// A coordinator that admitted two spaces, one of which published its listing to it.
    fn coordinator() -> Node {
        let mut c = testkit::coordinator();
        let (mut s, _) = testkit::listed_space(&mut c, "Riverside");
        testkit::space(&mut c, "Harbour");
        let made = s.take_made().into_iter().map(|m| m.item).collect();
        c.ingest(made, crate::ingest::Source::Mesh, crate::ingest::At::now());
        c
    }

    #[test]
    fn a_node_opened_from_the_saved_state_answers_as_a_replayed_one() {
        let c = coordinator();
        let store = c.store.clone();
        // The first open replays and saves.
        let first = reopen(&store);
        assert!(store.roster_state().unwrap().is_some(), "nothing was saved");
        let id = alliance_id(&first);
        let saved = first
            .saved_roster(id)
            .unwrap()
            .expect("a current saved state");
        let replayed = first.replay_roster(id).unwrap();
        assert_eq!(shape(&saved), shape(&replayed));
        assert_eq!(shape(&saved), shape(c.roster().unwrap()));
        // A node opened from it answers the same.
        let second = reopen(&store);
        assert_eq!(shape(second.roster().unwrap()), shape(&replayed));
        assert_eq!(
            second.directory(&Query::default(), now()).unwrap(),
            c.directory(&Query::default(), now()).unwrap()
        );
        let (a, b) = (second.status().unwrap(), c.status().unwrap());
        assert_eq!(
            (a.alliance, a.alliance_name, a.listings),
            (b.alliance, b.alliance_name, b.listings)
        );
    }

    /// A document saved in an older format (before `format`, by a rebuild that could drop stored changes
    /// waiting for a checkpoint) is not trusted: the space is rebuilt from its changes.
    #[test]
    fn a_document_saved_in_an_older_format_is_rebuilt() {
        #[derive(Serialize)]
        struct Before<'a> {
            changes: u64,
            state: &'a [u8],
            undecodable: &'a Undecodable,
        }
        let mut c = testkit::coordinator();
        let (s, space) = testkit::listed_space(&mut c, "Riverside");
        let store = s.store.clone();
        let current = reopen(&store);
        let saved = current
            .saved_doc(&space)
            .unwrap()
            .expect("a saved document");
        let bytes = store.doc_state(&space).unwrap().unwrap();
        let now_saved: SavedDoc = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(now_saved.format, SAVED_DOC_FORMAT);
        let listing = store.entry(&space).unwrap();
        let write = |doc: Vec<u8>| {
            store
                .replace_space_state(&space, listing.as_deref(), &[], Some(&doc), None)
                .unwrap();
        };
        // The same state without the field, and with another format.
        write(
            postcard::to_stdvec(&Before {
                changes: now_saved.changes,
                state: &now_saved.state,
                undecodable: &now_saved.undecodable,
            })
            .unwrap(),
        );
        let reopened = reopen(&store);
        assert!(reopened.saved_doc(&space).unwrap().is_none());
        write(
            postcard::to_stdvec(&SavedDoc {
                format: 1,
                ..now_saved
            })
            .unwrap(),
        );
        assert!(reopened.saved_doc(&space).unwrap().is_none());
        // Warming rebuilds it to the same document.
        reopened.warm(&space).unwrap();
        let docs = reopened.docs.borrow();
        let warm = docs.get(&space).expect("warm");
        assert_eq!(warm.doc.heads(), saved.doc.heads());
        assert_eq!(warm.doc.listing().unwrap(), saved.doc.listing().unwrap());
    }

    #[test]
    fn a_stale_saved_state_is_replayed_and_saved_again() {
        let mut c = coordinator();
        let store = c.store.clone();
        reopen(&store);
        let old = store.roster_state().unwrap().expect("saved at the open");
        // A roster operation stored drops the saved state in the same write.
        testkit::space(&mut c, "Quayside");
        assert!(
            store.roster_state().unwrap().is_none(),
            "put_op kept a stale state"
        );
        // Were it kept anyway (a deskmesh that did not know of it stored the operation), the count
        // gives it away: the reopened node replays.
        store.put_roster_state(&old).unwrap();
        let reopened = reopen(&store);
        assert_eq!(
            shape(reopened.roster().unwrap()),
            shape(c.roster().unwrap())
        );
        assert!(reopened
            .roster()
            .unwrap()
            .state()
            .spaces
            .values()
            .any(|s| s.name == "Quayside"));
        // And saved again, current this time.
        let again = store.roster_state().unwrap().unwrap();
        assert_ne!(again, old);
        let id = alliance_id(&reopened);
        assert!(reopened.saved_roster(id).unwrap().is_some());
    }

    #[test]
    fn an_unreadable_saved_state_is_replayed_and_saved_again() {
        let c = coordinator();
        let store = c.store.clone();
        let id = alliance_id(&c);
        for bad in [b"not a roster".to_vec(), Vec::new()] {
            store.put_roster_state(&bad).unwrap();
            assert!(c.saved_roster(id).is_err());
            let reopened = reopen(&store);
            assert_eq!(
                shape(reopened.roster().unwrap()),
                shape(c.roster().unwrap())
            );
            assert!(
                reopened.saved_roster(id).unwrap().is_some(),
                "not saved again"
            );
        }
        // A readable state of a roster whose head the store does not hold.
        let mut other = testkit::coordinator();
        testkit::space(&mut other, "Elsewhere");
        let foreign = SavedRoster {
            ops: store.op_count().unwrap(),
            snapshot: other.roster().unwrap().snapshot(),
        };
        store
            .put_roster_state(&postcard::to_stdvec(&foreign).unwrap())
            .unwrap();
        assert!(
            c.saved_roster(id).is_err(),
            "another alliance's state was used"
        );
        let reopened = reopen(&store);
        assert_eq!(
            shape(reopened.roster().unwrap()),
            shape(c.roster().unwrap())
        );
    }
}
