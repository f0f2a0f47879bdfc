//! The operations every front end uses: the command line today, the daemon and the terminal UI later.
//!
//! A [`Node`] is one home directory opened: its device key, its settings, its store and the alliance roster
//! loaded from the store. Every method validates its input before it writes anything, signs with the device
//! key through `deskmesh-keys`, writes signed bytes to the store (flushed before returning), and then brings
//! the rebuildable directory index up to date. Results are plain serde structs with a human `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::change::{Authority, Denial, SignedChange};
use deskmesh_crdt_model::doc::SpaceDoc;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::roster::{Roster, SignedOp};
use deskmesh_keys::{keyfile, AllianceId, DeviceKey, Hash, PublicKey, Signer, SpaceId};
use serde::{Deserialize, Serialize};

use crate::home::{Home, NodeConfig};
use crate::store::{SledStore, Store};

/// Meta key holding the alliance id this node belongs to.
const META_ALLIANCE: &str = "alliance";
/// The default mesh port; `init` stores it in node.toml so peers can save the address.
pub const DEFAULT_PORT: u16 = 4717;

/// One node's home, opened.
pub struct Node {
    pub home: Home,
    key: DeviceKey,
    pub config: NodeConfig,
    pub store: Arc<dyn Store>,
    roster: Option<Roster>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("home", &self.home.root())
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
}

/// What `init` reports.
#[derive(Debug, Serialize)]
pub struct InitReport {
    pub public_key: PublicKey,
    pub name: String,
    pub home: String,
    pub listen_port: u16,
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.public_key)?;
        write!(
            f,
            "node {:?} initialised in {}; give the key above to your alliance coordinator",
            self.name, self.home
        )
    }
}

/// Creates the node's identity in `home`. Refuses to replace an existing key.
pub fn init(home: &Home, name: Option<String>) -> anyhow::Result<InitReport> {
    if home.is_initialised() {
        bail!(
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

impl Node {
    /// Opens an initialised home: key, settings, store, roster.
    pub fn open(home: &Home) -> anyhow::Result<Self> {
        home.require_initialised()?;
        let key = keyfile::read(&home.key_path())?;
        let config = home.read_config()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&home.store_path())?);
        let mut node = Self {
            home: home.clone(),
            key,
            config,
            store,
            roster: None,
        };
        node.roster = node.load_roster()?;
        node.reindex_dirty()?;
        Ok(node)
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn signer(&self) -> &DeviceKey {
        &self.key
    }

    pub fn roster(&self) -> Option<&Roster> {
        self.roster.as_ref()
    }

    pub fn alliance_id(&self) -> Option<AllianceId> {
        self.roster.as_ref().map(|r| r.alliance_id())
    }

    pub fn require_roster(&self) -> anyhow::Result<&Roster> {
        self.roster.as_ref().ok_or_else(|| {
            anyhow!("this node is not in an alliance yet; run `deskmesh alliance create NAME` or `deskmesh alliance join TOKEN`")
        })
    }

    /// Rebuilds the roster from the signed ops in the store.
    fn load_roster(&self) -> anyhow::Result<Option<Roster>> {
        let Some(id) = self.store.get_meta(META_ALLIANCE)? else {
            return Ok(None);
        };
        let id: AllianceId = String::from_utf8_lossy(&id)
            .parse()
            .context("the store's alliance id is corrupt")?;
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
        let mut roster = Roster::new(create)?;
        let report = roster.insert_all(pending);
        if !report.pending.is_empty() || !report.rejected.is_empty() {
            tracing::warn!(
                pending = report.pending.len(),
                rejected = report.rejected.len(),
                "some stored roster operations could not be applied"
            );
        }
        Ok(Some(roster))
    }

    /// Verifies `op` against the roster, then stores it (flushed).
    pub fn accept_op(&mut self, op: SignedOp) -> anyhow::Result<bool> {
        let roster = self
            .roster
            .as_mut()
            .ok_or_else(|| anyhow!("this node is not in an alliance yet"))?;
        let hash = op.hash();
        roster.insert(op.clone())?;
        let new = self.store.put_op(&hash, &op.to_bytes())?;
        if new {
            self.reindex_for(&op)?;
        }
        Ok(new)
    }

    /// Brings the index up to date after a roster operation: an op about one space (admission, device
    /// change, revocation) can only change which of that space's stored changes count; an op about the
    /// coordinators can change which grants take effect, so every space is rebuilt (rare).
    fn reindex_for(&self, op: &SignedOp) -> anyhow::Result<()> {
        match op.op()?.body.space() {
            Some(space) => {
                if !self.store.change_hashes(space)?.is_empty() {
                    self.reindex(space)?;
                }
                Ok(())
            }
            None => self.reindex_all(),
        }
    }

    /// This node's space: the one whose current devices include this node's key.
    pub fn my_space(&self) -> Option<SpaceId> {
        let roster = self.roster.as_ref()?;
        let me = self.public_key();
        roster
            .state()
            .spaces
            .iter()
            .find(|(_, s)| s.revoked.is_none() && s.devices.contains_key(&me))
            .map(|(id, _)| id.clone())
    }

    pub fn require_space(&self) -> anyhow::Result<SpaceId> {
        self.require_roster()?;
        self.my_space().ok_or_else(|| {
            anyhow!("this node's key is not a device of any space in the roster; ask a coordinator for an invite and run `deskmesh alliance join TOKEN`")
        })
    }

    // ---- the directory index -------------------------------------------------------------------

    /// Replaces the roster (after creating or joining an alliance).
    pub fn set_roster(&mut self, roster: Roster) {
        self.roster = Some(roster);
    }

    /// Rebuilds every space's index, e.g. after a roster change that may authorise or exclude changes.
    pub fn reindex_all(&self) -> anyhow::Result<()> {
        for space in self.store.spaces()? {
            self.reindex(&space)?;
        }
        Ok(())
    }

    /// The space's document rebuilt from the store.
    pub fn space_doc(&self, space: &SpaceId) -> anyhow::Result<(SpaceDoc, Undecodable)> {
        self.load_doc(space)
    }

    /// Rebuilds the index of every space the store marks dirty (after a crash, or after new changes).
    pub fn reindex_dirty(&self) -> anyhow::Result<()> {
        for space in self.store.dirty_spaces()? {
            self.reindex(&space)?;
        }
        Ok(())
    }

    /// Rebuilds one space's document from its stored signed changes and writes its index entry.
    pub fn reindex(&self, space: &SpaceId) -> anyhow::Result<SpaceDoc> {
        let (doc, undecodable) = self.load_doc(space)?;
        let entry = IndexEntry::from_doc(&doc, self.roster.as_ref());
        let listing = match &entry {
            Some(e) => Some(serde_json::to_vec(e)?),
            None => None,
        };
        let mut rejected: Vec<([u8; 32], Vec<u8>)> = Vec::new();
        for r in doc.rejected() {
            let reason = RejectionRecord {
                author: r.author,
                reason: r.reason.clone(),
            };
            rejected.push((r.hash, serde_json::to_vec(&reason)?));
        }
        for p in doc.pending() {
            let reason = RejectionRecord {
                author: p.change.envelope().ok().map(|e| e.author),
                reason: format!("not applied yet: {}", p.reason),
            };
            rejected.push((p.hash, serde_json::to_vec(&reason)?));
        }
        for (hash, why) in undecodable {
            let reason = RejectionRecord {
                author: None,
                reason: why,
            };
            rejected.push((hash, serde_json::to_vec(&reason)?));
        }
        let rejected_refs: Vec<([u8; 32], &[u8])> =
            rejected.iter().map(|(h, b)| (*h, b.as_slice())).collect();
        self.store
            .replace_space_index(space, listing.as_deref(), &rejected_refs)?;
        Ok(doc)
    }

    /// The space's document rebuilt from the store, and the stored changes that do not even decode.
    fn load_doc(&self, space: &SpaceId) -> anyhow::Result<(SpaceDoc, Undecodable)> {
        let mut changes = Vec::new();
        let mut undecodable = Vec::new();
        for hash in self.store.change_hashes(space)? {
            let Some(bytes) = self.store.change(space, &hash)? else {
                continue;
            };
            match SignedChange::from_bytes(&bytes) {
                Ok(c) => changes.push(c),
                Err(e) => undecodable.push((hash, e.to_string())),
            }
        }
        let doc = SpaceDoc::rebuild(
            space.clone(),
            changes,
            &RosterAuthority(self.roster.as_ref()),
        );
        Ok((doc, undecodable))
    }

    /// Takes a signed change received from a peer, a bundle or made here: a bad signature or an author the
    /// roster refuses for good is logged for the audit and never stored; anything else is stored (flushed)
    /// and its space reindexed. Returns whether the change was new.
    pub fn accept_change(&self, change: &SignedChange) -> Result<bool, Refused> {
        let env = match change.verify() {
            Ok(env) => env,
            Err(e) => {
                let author = change.envelope().ok().map(|e| e.author);
                return Err(self.refuse("listing change", author, None, e.to_string()));
            }
        };
        if let Err(d) = RosterAuthority(self.roster.as_ref()).authorise(
            &env.roster_heads,
            &env.author,
            &env.space,
        ) {
            // Unknown roster heads may be an admission still on its way, so such a change waits; but only
            // when its author is a device this node already knows, or anyone could fill the store.
            let known_author = self
                .roster
                .as_ref()
                .is_some_and(|r| !r.state().spaces_of(&env.author).is_empty());
            if !d.pending {
                return Err(self.refuse(
                    "listing change",
                    Some(env.author),
                    Some(env.space.clone()),
                    d.reason,
                ));
            }
            if !known_author {
                // Not stored and not logged: the caller may hold it until the roster catches up.
                return Err(Refused::Waiting(d.reason));
            }
        }
        let new = self
            .store
            .put_change(&env.space, &env.change_hash, &change.to_bytes())
            .map_err(|e| Refused::Store(e.into()))?;
        if new {
            self.reindex(&env.space).map_err(Refused::Store)?;
        }
        Ok(new)
    }

    /// Records a refusal in the store's bounded log and returns it as an error.
    pub fn refuse(
        &self,
        kind: &str,
        author: Option<PublicKey>,
        space: Option<SpaceId>,
        reason: String,
    ) -> Refused {
        let record = RefusalRecord {
            kind: kind.to_string(),
            author,
            space,
            reason: reason.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
        };
        match serde_json::to_vec(&record)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(self.store.log_refused(&b)?))
        {
            Ok(()) => {
                tracing::info!(kind, ?author, reason = %reason, "refused a signed item");
                Refused::Invalid(reason)
            }
            Err(e) => Refused::Store(e),
        }
    }

    /// Every refusal the log keeps, oldest first.
    pub fn refusals(&self) -> anyhow::Result<Vec<RefusalRecord>> {
        let mut out = Vec::new();
        for bytes in self.store.refused()? {
            out.push(serde_json::from_slice(&bytes)?);
        }
        Ok(out)
    }

    /// Every listing in the index with its metadata.
    pub fn entries(&self) -> anyhow::Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        for (space, bytes) in self.store.entries()? {
            let entry: IndexEntry = serde_json::from_slice(&bytes).with_context(|| {
                format!("the index entry of {space} is corrupt; it will be rebuilt")
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// The newest verified beacon of every (space, pool).
    pub fn beacons(&self) -> anyhow::Result<Vec<SeatBeacon>> {
        let mut out = Vec::new();
        for (_, _, bytes) in self.store.beacons()? {
            if let Ok(b) = SignedBeacon::from_bytes(&bytes).and_then(|b| b.decode()) {
                out.push(b);
            }
        }
        Ok(out)
    }
}

/// Stored changes that do not even decode, with why: (change hash as stored, reason).
pub type Undecodable = Vec<([u8; 32], String)>;

/// Why a signed item was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The item is invalid (signature, authorisation, limits); it was logged for the audit.
    #[error("{0}")]
    Invalid(String),
    /// The store failed; nothing was lost but the item was not kept.
    #[error(transparent)]
    Store(anyhow::Error),
    /// The item names roster operations this node does not know yet (an admission still on its way) and
    /// an author it does not know: neither stored nor logged. The mesh keeps it in memory and tries again
    /// when roster operations arrive; a one-shot caller records it as refused with [`Node::refuse`].
    #[error("{0}")]
    Waiting(String),
}

/// One refused item, as the audit shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusalRecord {
    pub kind: String,
    pub author: Option<PublicKey>,
    pub space: Option<SpaceId>,
    pub reason: String,
    pub at_ms: i64,
}

/// The materialised view of one space kept in the index (rebuildable from the signed changes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    pub space: SpaceId,
    pub listing: serde_json::Value,
    /// Automerge heads of the document, hex.
    pub heads: Vec<String>,
    pub signers: Vec<SignerInfo>,
}

/// Who signed a listing, how often, and under which roster operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

impl IndexEntry {
    fn from_doc(doc: &SpaceDoc, roster: Option<&Roster>) -> Option<Self> {
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
            listing: listing.to_value(),
            heads: doc.heads().iter().map(hex).collect(),
            signers: by_key.into_values().collect(),
        })
    }

    /// The listing as the index holds it. It was validated when the entry was built from the signed
    /// changes, so reading it back only deserialises (validating 10,000 listings, opening hours included,
    /// cost ~1.8 s per directory query).
    pub fn listing(&self) -> anyhow::Result<Listing> {
        Listing::deserialize(&self.listing).map_err(|e| {
            anyhow!(
                "the index entry of {} is unreadable: {e}; it will be rebuilt",
                self.space
            )
        })
    }
}

pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a listing file, JSON or TOML by extension (JSON when unsure).
pub fn read_listing_file(path: &Path) -> anyhow::Result<Listing> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Refuse absurd files before reading them into memory; the listing's own limit is far smaller.
    if meta.len() > 16 * 1024 * 1024 {
        bail!(
            "{} is {} bytes; a listing file may be at most 16 MiB (and the listing itself 64 KiB)",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let parsed = if is_toml {
        Listing::from_toml(&text)
    } else {
        Listing::from_json(&text)
    };
    parsed.map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses `seats set` values: a count, or many|few|full|closed.
pub fn parse_availability(value: &str) -> anyhow::Result<Availability> {
    match value.trim().to_ascii_lowercase().as_str() {
        "many" => Ok(Availability::Many),
        "few" => Ok(Availability::Few),
        "full" => Ok(Availability::Full),
        "closed" => Ok(Availability::Closed),
        other => match other.parse::<i64>() {
            Ok(n) if n < 0 => bail!("open seats cannot be negative (got {n}); use 0 or `full`"),
            Ok(n) if n > 100_000 => {
                bail!("{n} open seats is more than any space has (limit 100000)")
            }
            Ok(n) => Ok(Availability::Count(n as u32)),
            Err(_) => {
                bail!("{value:?} is not a seat count; use a number or many, few, full, closed")
            }
        },
    }
}

pub(crate) fn beacon_now(
    node: &Node,
    space: &SpaceId,
    pool: &str,
    availability: Availability,
    ttl_s: u32,
    published_at_ms: i64,
) -> anyhow::Result<SignedBeacon> {
    let roster = node.require_roster()?;
    let seq = node
        .store
        .beacon(space, pool)?
        .and_then(|b| SignedBeacon::from_bytes(&b).ok())
        .and_then(|b| b.decode().ok())
        .map_or(0, |b| b.seq + 1);
    let is_open = !matches!(availability, Availability::Closed);
    let b = SeatBeacon {
        space: space.clone(),
        pool: pool.to_string(),
        availability,
        is_open,
        published_at_ms,
        ttl_s,
        seq,
        author: node.public_key(),
        roster_heads: roster.heads(),
    };
    Ok(b.sign(node.signer())?)
}
