//! [`SledStore`]: the store on disk, one sled 0.34 database with one tree per concern.
//!
//! It owns the key layout (documented tree by tree in `docs/STORAGE.md`), the format-version check at open,
//! and the mapping of every sled and I/O failure to a one-sentence [`StoreError`]. Per-space data is keyed
//! `space id || 0x00 || rest`, so a space's rows are one prefix scan; a space id is ASCII without NUL, so the
//! first 0x00 always ends it. Every write method flushes before it returns, and a write that touches several
//! keys runs as one sled transaction, which sled recovers all-or-nothing after a crash.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use deskmesh_keys::{Hash, SpaceId};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};

use super::{
    check_meta_key, BeaconStore, ChangeStore, IndexStore, MetaStore, ProposalStore, RefusedLog,
    RejectedChange, RosterStore, SpaceRejection, Store, StoreError, VerificationStore,
    FORMAT_VERSION, FORMAT_VERSION_KEY,
};

/// sled keeps up to this many bytes of pages in memory. Its default is 1 GiB, far more than a directory
/// of a few thousand spaces needs, and the node shares the machine with other programs.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Tree names, as documented in `docs/STORAGE.md`. Changing one is a format change.
mod tree {
    pub const META: &str = "meta";
    pub const ROSTER_OPS: &str = "roster_ops";
    pub const ROSTER_REJECTED: &str = "roster_rejected";
    pub const CHANGES: &str = "changes";
    pub const BEACONS: &str = "beacons";
    pub const LISTINGS: &str = "listings";
    pub const REJECTED_CHANGES: &str = "rejected_changes";
    pub const INDEX_DIRTY: &str = "index_dirty";
    pub const REFUSED: &str = "refused";
    pub const DOC_STATES: &str = "doc_states";
    /// Format 2.
    pub const VERIFICATIONS: &str = "verifications";
    /// Format 2.
    pub const PROPOSALS: &str = "proposals";
}

/// A row of a `space || 0x00 || rest` tree: `rest` and the value.
type Row = (Vec<u8>, Vec<u8>);

/// A row of a `space || 0x00 || rest` tree with its space: space, `rest` and the value.
type SpaceRow = (SpaceId, Vec<u8>, Vec<u8>);

/// The error type our transaction closures return; they never abort on their own.
type TxError = ConflictableTransactionError<()>;

/// A [`Store`] in a sled database directory.
pub struct SledStore {
    path: PathBuf,
    db: Db,
    meta: Tree,
    roster_ops: Tree,
    roster_rejected: Tree,
    changes: Tree,
    beacons: Tree,
    listings: Tree,
    rejected_changes: Tree,
    index_dirty: Tree,
    refused: Tree,
    doc_states: Tree,
    verifications: Tree,
    proposals: Tree,
    /// Set while a caller applies a batch: writes then skip their flush (see `Store::defer_flush`).
    deferred: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        closed::record(&self.path);
    }
}

/// Stores this process closed lately. sled gives up its file lock only when its background flusher thread
/// has stopped, a moment *after* the last handle is dropped, so reopening a store this process just closed
/// can find it locked by ourselves. Such a lock is waited out; a lock held by another process is not.
mod closed {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// How long after a close its lock may still be held by our own flusher thread.
    pub const GRACE: Duration = Duration::from_secs(5);

    static CLOSED: Mutex<Vec<(PathBuf, Instant)>> = Mutex::new(Vec::new());

    pub fn record(path: &Path) {
        let mut list = CLOSED.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(_, at)| at.elapsed() < GRACE);
        list.push((path.to_path_buf(), Instant::now()));
    }

    /// Whether this process closed the store at `path` within [`GRACE`].
    pub fn lately(path: &Path) -> bool {
        let list = CLOSED.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().any(|(p, at)| p == path && at.elapsed() < GRACE)
    }
}

/// Opens sled in `dir`, waiting out a lock this process's own just-closed store still holds.
fn open_db(dir: &Path) -> Result<Db, StoreError> {
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .at(dir)
        {
            Err(StoreError::Locked { .. }) if closed::lately(dir) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. Refuses a directory that is not writable, that
    /// another process holds, or whose store was written by a newer deskmesh; stamps an unversioned store
    /// with [`FORMAT_VERSION`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        // sled only creates files when it needs them, so a read-only directory holding an existing store
        // would open fine and fail at some later write. Find out now, while the error can say why.
        probe_writable(dir)?;

        // The sidecar is read before sled opens anything: a newer deskmesh may use a sled whose files this
        // sled cannot read, and this sled would take them for torn writes and start an empty database.
        let sidecar = read_sidecar(dir)?;
        if let Some(found) = sidecar {
            check_version(dir, found)?;
        }

        let db = open_db(dir)?;

        // Check the version before creating any other tree, so a newer store is left exactly as it was.
        let meta = db.open_tree(tree::META).at(dir)?;
        match meta.get(FORMAT_VERSION_KEY).at(dir)? {
            None if sidecar.is_some() => {
                // sled 0.34 recovers a damaged data file by dropping everything after the damage, which
                // can leave a store that was stamped with no rows at all. Refuse it rather than start over.
                return Err(corrupt(dir, "its data file has lost the rows it held"));
            }
            None => {
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION.to_string().as_bytes())
                    .at(dir)?;
                db.flush().at(dir)?;
            }
            Some(raw) => {
                let found = std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| corrupt(dir, "its format version is not a number"))?;
                check_version(dir, found)?;
                if found < u64::from(FORMAT_VERSION) {
                    // Format 1 -> 2 only adds the `verifications` and `proposals` trees, which sled
                    // creates empty below: the upgrade is the new stamp, then the sidecar.
                    meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION.to_string().as_bytes())
                        .at(dir)?;
                    db.flush().at(dir)?;
                }
            }
        }
        // Written only once the stamp is durable: a crash in between leaves a stamped store with no (or an
        // older) sidecar, which the next open completes, never a sidecar over an unstamped (and so
        // "damaged") store.
        if sidecar != Some(u64::from(FORMAT_VERSION)) {
            write_sidecar(dir)?;
        }

        let open = |name: &str| db.open_tree(name).at(dir);
        let store = Self {
            roster_ops: open(tree::ROSTER_OPS)?,
            roster_rejected: open(tree::ROSTER_REJECTED)?,
            changes: open(tree::CHANGES)?,
            beacons: open(tree::BEACONS)?,
            listings: open(tree::LISTINGS)?,
            rejected_changes: open(tree::REJECTED_CHANGES)?,
            index_dirty: open(tree::INDEX_DIRTY)?,
            refused: open(tree::REFUSED)?,
            doc_states: open(tree::DOC_STATES)?,
            verifications: open(tree::VERIFICATIONS)?,
            proposals: open(tree::PROPOSALS)?,
            meta,
            path: dir.to_path_buf(),
            db,
            deferred: std::sync::atomic::AtomicBool::new(false),
        };
        store.sync()?;
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every write so far durable, unless a batch is being applied (then its end does).
    fn sync(&self) -> Result<(), StoreError> {
        if self.deferred.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        self.db.flush().at(&self.path)?;
        Ok(())
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        corrupt(&self.path, detail)
    }

    fn hash32(&self, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
        bytes
            .try_into()
            .map_err(|_| self.corrupt("a key is not a 32-byte hash"))
    }

    fn space(&self, bytes: &[u8]) -> Result<SpaceId, StoreError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.corrupt("a key does not start with a space id"))
    }

    /// Splits a `space || 0x00 || rest` key.
    fn split<'k>(&self, key: &'k [u8]) -> Result<(SpaceId, &'k [u8]), StoreError> {
        let nul = key
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.corrupt("a per-space key has no separator"))?;
        Ok((self.space(&key[..nul])?, &key[nul + 1..]))
    }

    /// Every `(rest, value)` of one space in a `space || 0x00 || rest` tree, ordered by `rest`.
    fn scan_space(&self, tree: &Tree, space: &SpaceId) -> Result<Vec<Row>, StoreError> {
        let prefix = space_prefix(space);
        tree.scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((k[prefix.len()..].to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// The distinct spaces of a `space || 0x00 || rest` tree. It jumps from one space to the next instead
    /// of reading every row, so it costs one seek per space however many changes each has.
    fn distinct_spaces(&self, tree: &Tree) -> Result<Vec<SpaceId>, StoreError> {
        let mut spaces = Vec::new();
        let mut from = Vec::new();
        while let Some(kv) = tree.range(from.as_slice()..).next() {
            let (key, _) = kv.at(&self.path)?;
            let (space, _) = self.split(&key)?;
            // Every key of this space is `space || 0x00 || ...`, so all of them sort before `space || 0x01`.
            from = space.as_str().as_bytes().to_vec();
            from.push(0x01);
            spaces.push(space);
        }
        Ok(spaces)
    }

    /// Every `(space, rest, value)` of a `space || 0x00 || rest` tree.
    fn scan_all(&self, tree: &Tree) -> Result<Vec<SpaceRow>, StoreError> {
        tree.iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                let (space, rest) = self.split(&k)?;
                Ok((space, rest.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn keys(&self, tree: &Tree) -> Result<Vec<sled::IVec>, StoreError> {
        tree.iter().keys().map(|k| k.at(&self.path)).collect()
    }

    fn utf8(&self, bytes: &[u8], what: &str) -> Result<String, StoreError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.corrupt(&format!("a stored {what} is not UTF-8")))
    }
}

/// `space || 0x00`: the prefix of every row of one space.
fn space_prefix(space: &SpaceId) -> Vec<u8> {
    let mut key = Vec::with_capacity(space.as_str().len() + 1 + 32);
    key.extend_from_slice(space.as_str().as_bytes());
    key.push(0);
    key
}

/// `space || 0x00 || rest`.
fn space_key(space: &SpaceId, rest: &[u8]) -> Vec<u8> {
    let mut key = space_prefix(space);
    key.extend_from_slice(rest);
    key
}

/// A rejected roster operation's value: `u32 BE reason length || reason (UTF-8) || operation bytes`.
fn encode_rejected_op(bytes: &[u8], reason: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + reason.len() + bytes.len());
    // A reason longer than 4 GiB cannot come from this program; saturating keeps the encoding total.
    let len = u32::try_from(reason.len()).unwrap_or(u32::MAX);
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(&reason.as_bytes()[..len as usize]);
    value.extend_from_slice(bytes);
    value
}

/// The sidecar file beside sled's files that repeats the format version in plain text.
const SIDECAR: &str = "FORMAT";

/// The version in the sidecar, if the file exists.
fn read_sidecar(dir: &Path) -> Result<Option<u64>, StoreError> {
    match fs::read_to_string(dir.join(SIDECAR)) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| corrupt(dir, "its FORMAT file does not hold a version number")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Writes the sidecar whole or not at all: a temporary file, synced, renamed over, then the directory synced.
fn write_sidecar(dir: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{SIDECAR}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(format!("{FORMAT_VERSION}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(SIDECAR))?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| io_error(dir, e))
}

fn check_version(dir: &Path, found: u64) -> Result<(), StoreError> {
    if found > u64::from(FORMAT_VERSION) {
        return Err(StoreError::NewerFormat {
            path: dir.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    if found < 1 {
        return Err(corrupt(dir, "its format version is 0"));
    }
    Ok(())
}

fn probe_writable(dir: &Path) -> Result<(), StoreError> {
    // The process id keeps two nodes probing the same directory from removing each other's probe.
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"deskmesh"));
    // Removing may fail if the probe was never created; either way there is nothing left to clean.
    let _ = fs::remove_file(&probe);
    written.map_err(|e| io_error(dir, e))
}

fn corrupt(path: &Path, detail: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn io_error(path: &Path, source: io::Error) -> StoreError {
    let path = path.to_path_buf();
    // sled reports a lock held elsewhere only as an `Other` error with this text (sled 0.34.7,
    // `Config::try_lock`), so the text is all there is to recognise it by.
    if source.kind() == io::ErrorKind::Other
        && source.to_string().contains("could not acquire lock")
    {
        return StoreError::Locked { path };
    }
    match source.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::NotWritable { path, source }
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            StoreError::DiskFull { path, source }
        }
        _ => StoreError::Io { path, source },
    }
}

fn sled_error(path: &Path, err: sled::Error) -> StoreError {
    match err {
        sled::Error::Io(source) => io_error(path, source),
        sled::Error::Corruption { .. } => corrupt(path, "sled found damaged data"),
        // sled says "unsupported" when its own files do not match what it expects (a garbled `conf`, a
        // store from another sled version): for the user that is a store this build cannot use.
        sled::Error::Unsupported(detail) => corrupt(path, &format!("sled: {detail}")),
        sled::Error::ReportableBug(detail) => StoreError::Backend {
            path: path.to_path_buf(),
            detail: format!("sled bug: {detail}"),
        },
        sled::Error::CollectionNotFound(name) => StoreError::Backend {
            path: path.to_path_buf(),
            detail: format!("tree {:?} is missing", String::from_utf8_lossy(&name)),
        },
    }
}

/// Attaches the store's path to sled results.
trait At<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> At<T> for sled::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| sled_error(path, e))
    }
}

impl<T> At<T> for Result<T, TransactionError<()>> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| match e {
            TransactionError::Storage(e) => sled_error(path, e),
            // Our closures never call `abort`, so this arm is unreachable in practice; map it anyway
            // rather than panic.
            TransactionError::Abort(()) => StoreError::Backend {
                path: path.to_path_buf(),
                detail: "a transaction aborted".to_string(),
            },
        })
    }
}

impl RosterStore for SledStore {
    fn put_op(&self, hash: &Hash, bytes: &[u8]) -> Result<bool, StoreError> {
        let key = hash.as_bytes();
        let new = (&self.roster_ops, &self.roster_rejected)
            .transaction(|(ops, rejected)| -> Result<bool, TxError> {
                if ops.get(key)?.is_some() {
                    return Ok(false);
                }
                ops.insert(&key[..], bytes)?;
                rejected.remove(&key[..])?;
                Ok(true)
            })
            .at(&self.path)?;
        if new {
            self.sync()?;
        }
        Ok(new)
    }

    fn op(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .roster_ops
            .get(hash.as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn has_op(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.roster_ops.contains_key(hash.as_bytes()).at(&self.path)
    }

    fn ops(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.roster_ops
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((Hash(self.hash32(&k)?), v.to_vec()))
            })
            .collect()
    }

    fn put_rejected_op(&self, hash: &Hash, bytes: &[u8], reason: &str) -> Result<(), StoreError> {
        self.roster_rejected
            .insert(hash.as_bytes(), encode_rejected_op(bytes, reason))
            .at(&self.path)?;
        self.sync()
    }

    fn rejected_ops(&self) -> Result<Vec<(Hash, Vec<u8>, String)>, StoreError> {
        self.roster_rejected
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                let bad = || self.corrupt("a rejected roster operation is truncated");
                let len: [u8; 4] = v.get(..4).and_then(|l| l.try_into().ok()).ok_or_else(bad)?;
                let end = 4usize.saturating_add(u32::from_be_bytes(len) as usize);
                let reason = v.get(4..end).ok_or_else(bad)?;
                Ok((
                    Hash(self.hash32(&k)?),
                    v[end..].to_vec(),
                    self.utf8(reason, "rejection reason")?,
                ))
            })
            .collect()
    }
}

impl ChangeStore for SledStore {
    fn put_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let new = self.put_many_changes(space, &[(*change_hash, bytes)])?;
        Ok(new.contains(&true))
    }

    fn put_many_changes(
        &self,
        space: &SpaceId,
        changes: &[([u8; 32], &[u8])],
    ) -> Result<Vec<bool>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = changes.iter().map(|(h, _)| space_key(space, h)).collect();
        let space_id = space.as_str().as_bytes();
        let fresh = (&self.changes, &self.index_dirty)
            .transaction(|(tx_changes, dirty)| -> Result<Vec<bool>, TxError> {
                // Built inside the closure: sled may run it more than once on a conflict.
                let mut fresh = Vec::with_capacity(changes.len());
                for (key, (_, bytes)) in keys.iter().zip(changes) {
                    // Reads see this transaction's own earlier writes, so a repeated hash is not new.
                    let new = tx_changes.get(key)?.is_none();
                    if new {
                        tx_changes.insert(key.as_slice(), *bytes)?;
                    }
                    fresh.push(new);
                }
                if fresh.contains(&true) {
                    dirty.insert(space_id, &[][..])?;
                }
                Ok(fresh)
            })
            .at(&self.path)?;
        if fresh.contains(&true) {
            self.sync()?;
        }
        Ok(fresh)
    }

    fn change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .changes
            .get(space_key(space, change_hash))
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn changes(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .scan_space(&self.changes, space)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    fn has_change(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.changes
            .contains_key(space_key(space, change_hash))
            .at(&self.path)
    }

    fn change_hashes(&self, space: &SpaceId) -> Result<Vec<[u8; 32]>, StoreError> {
        let prefix = space_prefix(space);
        self.changes
            .scan_prefix(&prefix)
            .keys()
            .map(|k| self.hash32(&k.at(&self.path)?[prefix.len()..]))
            .collect()
    }

    fn change_count(&self, space: &SpaceId) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.changes.scan_prefix(space_prefix(space)).keys() {
            k.at(&self.path)?;
            n += 1;
        }
        Ok(n)
    }

    fn spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        self.distinct_spaces(&self.changes)
    }
}

impl BeaconStore for SledStore {
    fn put_beacon(&self, space: &SpaceId, pool: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.beacons
            .insert(space_key(space, pool.as_bytes()), bytes)
            .at(&self.path)?;
        self.sync()
    }

    fn remove_beacon(&self, space: &SpaceId, pool: &str) -> Result<bool, StoreError> {
        let removed = self
            .beacons
            .remove(space_key(space, pool.as_bytes()))
            .at(&self.path)?
            .is_some();
        if removed {
            self.sync()?;
        }
        Ok(removed)
    }

    fn beacon(&self, space: &SpaceId, pool: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .beacons
            .get(space_key(space, pool.as_bytes()))
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn space_beacons(&self, space: &SpaceId) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_space(&self.beacons, space)?
            .into_iter()
            .map(|(pool, v)| Ok((self.utf8(&pool, "pool name")?, v)))
            .collect()
    }

    fn beacons(&self) -> Result<Vec<(SpaceId, String, Vec<u8>)>, StoreError> {
        self.scan_all(&self.beacons)?
            .into_iter()
            .map(|(space, pool, v)| Ok((space, self.utf8(&pool, "pool name")?, v)))
            .collect()
    }
}

impl VerificationStore for SledStore {
    fn put_verification(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let new = self
            .verifications
            .compare_and_swap(space_key(space, id.as_bytes()), None::<&[u8]>, Some(bytes))
            .at(&self.path)?
            .is_ok();
        if new {
            self.sync()?;
        }
        Ok(new)
    }

    fn space_verifications(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.scan_space(&self.verifications, space)?
            .into_iter()
            .map(|(id, v)| Ok((Hash(self.hash32(&id)?), v)))
            .collect()
    }

    fn verifications(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError> {
        self.scan_all(&self.verifications)?
            .into_iter()
            .map(|(space, id, v)| Ok((space, Hash(self.hash32(&id)?), v)))
            .collect()
    }

    fn remove_verification(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError> {
        let removed = self
            .verifications
            .remove(space_key(space, id.as_bytes()))
            .at(&self.path)?
            .is_some();
        if removed {
            self.sync()?;
        }
        Ok(removed)
    }
}

impl ProposalStore for SledStore {
    fn put_proposal(&self, op: &Hash, bytes: &[u8]) -> Result<(), StoreError> {
        self.proposals.insert(op.as_bytes(), bytes).at(&self.path)?;
        self.sync()
    }

    fn proposal(&self, op: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .proposals
            .get(op.as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn proposals(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.proposals
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((Hash(self.hash32(&k)?), v.to_vec()))
            })
            .collect()
    }

    fn remove_proposal(&self, op: &Hash) -> Result<bool, StoreError> {
        let removed = self
            .proposals
            .remove(op.as_bytes())
            .at(&self.path)?
            .is_some();
        if removed {
            self.sync()?;
        }
        Ok(removed)
    }
}

impl IndexStore for SledStore {
    fn put_entry(&self, space: &SpaceId, json: &[u8]) -> Result<(), StoreError> {
        let key = space.as_str().as_bytes();
        (&self.listings, &self.index_dirty)
            .transaction(|(listings, dirty)| -> Result<(), TxError> {
                listings.insert(key, json)?;
                dirty.remove(key)?;
                Ok(())
            })
            .at(&self.path)?;
        self.sync()
    }

    fn entry(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .listings
            .get(space.as_str().as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn entries(&self) -> Result<Vec<(SpaceId, Vec<u8>)>, StoreError> {
        self.listings
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((self.space(&k)?, v.to_vec()))
            })
            .collect()
    }

    fn put_rejected_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        reason_json: &[u8],
    ) -> Result<(), StoreError> {
        self.rejected_changes
            .insert(space_key(space, change_hash), reason_json)
            .at(&self.path)?;
        self.sync()
    }

    fn space_rejections(&self, space: &SpaceId) -> Result<Vec<SpaceRejection>, StoreError> {
        self.scan_space(&self.rejected_changes, space)?
            .into_iter()
            .map(|(h, v)| Ok((self.hash32(&h)?, v)))
            .collect()
    }

    fn rejected_changes(&self) -> Result<Vec<RejectedChange>, StoreError> {
        self.scan_all(&self.rejected_changes)?
            .into_iter()
            .map(|(space, h, v)| Ok((space, self.hash32(&h)?, v)))
            .collect()
    }

    fn replace_space_state(
        &self,
        space: &SpaceId,
        listing: Option<&[u8]>,
        rejected: &[([u8; 32], &[u8])],
        doc_state: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        // sled transactions cannot scan, so the old rejections are listed first; the node has one indexer
        // per space, so nothing adds a rejection for this space in between.
        let prefix = space_prefix(space);
        let old: Vec<sled::IVec> = self
            .rejected_changes
            .scan_prefix(&prefix)
            .keys()
            .map(|k| k.at(&self.path))
            .collect::<Result<_, _>>()?;
        let new: Vec<(Vec<u8>, &[u8])> = rejected
            .iter()
            .map(|(h, r)| (space_key(space, h), *r))
            .collect();
        let key = space.as_str().as_bytes();
        (
            &self.listings,
            &self.rejected_changes,
            &self.index_dirty,
            &self.doc_states,
        )
            .transaction(
                |(listings, rejections, dirty, docs)| -> Result<(), TxError> {
                    match listing {
                        Some(json) => listings.insert(key, json)?,
                        None => listings.remove(key)?,
                    };
                    match doc_state {
                        Some(bytes) => docs.insert(key, bytes)?,
                        None => docs.remove(key)?,
                    };
                    for k in &old {
                        rejections.remove(k)?;
                    }
                    for (k, reason) in &new {
                        rejections.insert(k.as_slice(), *reason)?;
                    }
                    dirty.remove(key)?;
                    Ok(())
                },
            )
            .at(&self.path)?;
        self.sync()
    }

    fn dirty_spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        self.keys(&self.index_dirty)?
            .iter()
            .map(|k| self.space(k))
            .collect()
    }

    fn doc_state(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .doc_states
            .get(space.as_str().as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn is_dirty(&self, space: &SpaceId) -> Result<bool, StoreError> {
        self.index_dirty
            .contains_key(space.as_str().as_bytes())
            .at(&self.path)
    }

    fn clear_index(&self) -> Result<(), StoreError> {
        // Everything the transaction removes or marks is listed first (sled transactions cannot scan).
        // A space that has changes, a listing or a rejection is marked, so a crash right after the clear
        // still leaves the node knowing what to rebuild.
        let mut marks = self.distinct_spaces(&self.changes)?;
        marks.extend(self.distinct_spaces(&self.rejected_changes)?);
        let listing_keys = self.keys(&self.listings)?;
        let rejection_keys = self.keys(&self.rejected_changes)?;
        let doc_keys = self.keys(&self.doc_states)?;
        (
            &self.listings,
            &self.rejected_changes,
            &self.index_dirty,
            &self.doc_states,
        )
            .transaction(
                |(listings, rejections, dirty, docs)| -> Result<(), TxError> {
                    for k in &listing_keys {
                        listings.remove(k)?;
                        dirty.insert(k, &[][..])?;
                    }
                    for k in &doc_keys {
                        docs.remove(k)?;
                    }
                    for k in &rejection_keys {
                        rejections.remove(k)?;
                    }
                    for space in &marks {
                        dirty.insert(space.as_str().as_bytes(), &[][..])?;
                    }
                    Ok(())
                },
            )
            .at(&self.path)?;
        self.sync()
    }
}

impl MetaStore for SledStore {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).at(&self.path)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_meta_key(key)?;
        self.meta.insert(key, value).at(&self.path)?;
        self.sync()
    }
}

impl RefusedLog for SledStore {
    fn log_refused(&self, record_json: &[u8]) -> Result<(), StoreError> {
        // Keys are big-endian sequence numbers, so iteration order is arrival order.
        let next = match self.refused.last().at(&self.path)? {
            Some((k, _)) => k
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0)
                .wrapping_add(1),
            None => 0,
        };
        self.refused
            .insert(next.to_be_bytes(), record_json)
            .at(&self.path)?;
        while self.refused.len() > super::REFUSED_LOG_LIMIT {
            if self.refused.pop_min().at(&self.path)?.is_none() {
                break;
            }
        }
        self.sync()
    }

    fn refused(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for row in self.refused.iter() {
            let (_, v) = row.at(&self.path)?;
            out.push(v.to_vec());
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().at(&self.path)?;
        Ok(())
    }

    fn defer_flush(&self, deferred: bool) -> Result<(), StoreError> {
        self.deferred
            .store(deferred, std::sync::atomic::Ordering::Relaxed);
        if deferred {
            Ok(())
        } else {
            self.flush()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;

    /// A raw sled database in `dir`, for writing stores by hand; when dropped it counts as this process
    /// closing the store, so reopening it waits for sled's flusher to let go of the lock.
    struct Raw(Option<sled::Db>, std::path::PathBuf);

    impl std::ops::Deref for Raw {
        type Target = sled::Db;
        fn deref(&self) -> &sled::Db {
            self.0.as_ref().unwrap()
        }
    }

    impl Drop for Raw {
        fn drop(&mut self) {
            drop(self.0.take());
            closed::record(&self.1);
        }
    }

    fn raw(dir: &Path) -> Raw {
        Raw(Some(open_db(dir).unwrap()), dir.to_path_buf())
    }

    fn space(c: char) -> SpaceId {
        format!("sp-{}", c.to_string().repeat(16)).parse().unwrap()
    }

    #[test]
    fn store_reopened_after_drop_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (space('a'), space('b'));
        let snapshot = |s: &SledStore| {
            (
                s.ops().unwrap(),
                s.rejected_ops().unwrap(),
                s.spaces().unwrap(),
                s.changes(&a).unwrap(),
                s.changes(&b).unwrap(),
                s.beacons().unwrap(),
                s.entries().unwrap(),
                s.rejected_changes().unwrap(),
                s.dirty_spaces().unwrap(),
                s.get_meta("name").unwrap(),
                s.get_meta(FORMAT_VERSION_KEY).unwrap(),
            )
        };
        let before = {
            let s = SledStore::open(dir.path()).unwrap();
            s.put_op(&Hash([1; 32]), b"op").unwrap();
            s.put_rejected_op(&Hash([2; 32]), b"bad", "no signature")
                .unwrap();
            s.put_change(&a, &[3; 32], b"a3").unwrap();
            s.put_many_changes(&b, &[([4; 32], b"b4"), ([5; 32], b"b5")])
                .unwrap();
            s.put_beacon(&a, "desks", b"beacon").unwrap();
            s.put_entry(&a, b"{}").unwrap();
            s.put_rejected_change(&b, &[5; 32], b"{\"why\":1}").unwrap();
            s.put_meta("name", b"n1").unwrap();
            snapshot(&s)
        };
        assert_eq!(before.2, vec![a.clone(), b.clone()]);
        assert_eq!(
            before.8,
            vec![b.clone()],
            "b has changes but no listing yet"
        );
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(snapshot(&s), before);
    }

    #[test]
    fn store_opened_twice_reports_the_other_process() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "another deskmesh process is using the store at {}; stop it or use its control socket",
                dir.path().display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn store_in_read_only_directory_is_not_writable() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing");
        drop(SledStore::open(&existing).unwrap());
        let set_mode = |path: &Path, mode| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap()
        };
        set_mode(dir.path(), 0o555);
        set_mode(&existing, 0o555);

        // Root ignores permission bits; then there is nothing to assert.
        let root = fs::write(dir.path().join("probe"), b"x").is_ok();
        let fresh_dir = dir.path().join("fresh");
        let fresh = SledStore::open(&fresh_dir);
        let reopened = SledStore::open(&existing);
        set_mode(dir.path(), 0o755);
        set_mode(&existing, 0o755);
        if root {
            eprintln!("running as root: permission bits are ignored, skipping the assertions");
            return;
        }

        for (err, path) in [
            (fresh.unwrap_err(), fresh_dir),
            (reopened.unwrap_err(), existing),
        ] {
            assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
            let msg = err.to_string();
            let expected = format!("the store at {} is not writable: ", path.display());
            assert!(msg.starts_with(&expected), "{msg}");
            assert!(
                msg.ends_with("; fix the directory's permissions or use another --home"),
                "{msg}"
            );
        }
    }

    #[test]
    fn store_written_by_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.open_tree("meta")
                .unwrap()
                .insert("format_version", "3")
                .unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NewerFormat {
                    found: 3,
                    supported: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the store at {} was written by a newer deskmesh (store format 3, this build reads up to 2); upgrade deskmesh",
                dir.path().display()
            )
        );
        let db = raw(dir.path());
        let mut trees: Vec<String> = db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        trees.sort();
        assert_eq!(
            trees,
            ["__sled__default", "meta"],
            "no tree was created in the newer store"
        );
        let version = db.open_tree("meta").unwrap().get("format_version").unwrap();
        assert_eq!(version.as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn store_with_a_garbled_version_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.open_tree("meta")
                .unwrap()
                .insert("format_version", "one")
                .unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err
            .to_string()
            .ends_with("; move it aside and let the node resync from its peers"));
    }

    #[test]
    fn store_without_a_version_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.open_tree("changes")
                .unwrap()
                .insert(b"sp-aaaaaaaaaaaaaaaa\0x", b"kept")
                .unwrap();
            db.flush().unwrap();
        }
        drop(SledStore::open(dir.path()).unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join("FORMAT")).unwrap(),
            "2\n"
        );
        let db = raw(dir.path());
        let version = db.open_tree("meta").unwrap().get("format_version").unwrap();
        assert_eq!(version.as_deref(), Some(&b"2"[..]));
        let kept = db
            .open_tree("changes")
            .unwrap()
            .get(b"sp-aaaaaaaaaaaaaaaa\0x")
            .unwrap();
        assert_eq!(kept.as_deref(), Some(&b"kept"[..]));
    }

    /// Pins the format-1 layout of docs/STORAGE.md: rows written with plain sled, as an older build would
    /// have written them, must read back through the store.
    #[test]
    fn store_reads_the_documented_format_1_layout() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (space('a'), space('b'));
        {
            let db = raw(dir.path());
            let t = |name: &str| db.open_tree(name).unwrap();
            t("meta").insert("format_version", "1").unwrap();
            t("meta").insert("name", "old node").unwrap();
            t("roster_ops").insert([7u8; 32], "op").unwrap();
            let mut rejected = 6u32.to_be_bytes().to_vec();
            rejected.extend_from_slice(b"reasonbytes");
            t("roster_rejected").insert([8u8; 32], rejected).unwrap();
            let key = |s: &SpaceId, rest: &[u8]| [s.as_str().as_bytes(), &[0], rest].concat();
            t("changes").insert(key(&a, &[1; 32]), "a1").unwrap();
            t("changes").insert(key(&b, &[2; 32]), "b2").unwrap();
            t("beacons").insert(key(&a, b"desks"), "beacon").unwrap();
            t("listings").insert(a.as_str(), "{\"a\":1}").unwrap();
            t("rejected_changes")
                .insert(key(&b, &[2; 32]), "{\"why\":2}")
                .unwrap();
            t("index_dirty").insert(b.as_str(), "").unwrap();
            db.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            s.get_meta("name").unwrap().as_deref(),
            Some(&b"old node"[..])
        );
        assert_eq!(s.ops().unwrap(), vec![(Hash([7; 32]), b"op".to_vec())]);
        assert_eq!(
            s.rejected_ops().unwrap(),
            vec![(Hash([8; 32]), b"bytes".to_vec(), "reason".to_string())]
        );
        assert_eq!(s.spaces().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(s.changes(&a).unwrap(), vec![b"a1".to_vec()]);
        assert_eq!(s.change_hashes(&b).unwrap(), vec![[2; 32]]);
        assert_eq!(
            s.beacon(&a, "desks").unwrap().as_deref(),
            Some(&b"beacon"[..])
        );
        assert_eq!(s.entries().unwrap(), vec![(a, b"{\"a\":1}".to_vec())]);
        assert_eq!(
            s.rejected_changes().unwrap(),
            vec![(b.clone(), [2; 32], b"{\"why\":2}".to_vec())]
        );
        assert_eq!(s.dirty_spaces().unwrap(), vec![b]);
        // Opening it upgraded it to format 2: new stamp, new sidecar, the new trees empty.
        assert_eq!(
            s.get_meta(FORMAT_VERSION_KEY).unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("FORMAT")).unwrap(),
            "2\n"
        );
        assert!(s.verifications().unwrap().is_empty());
        assert!(s.proposals().unwrap().is_empty());
    }

    /// A crash between the upgrade's new stamp and its new `FORMAT` is completed at the next open.
    #[test]
    fn an_upgrade_interrupted_before_its_sidecar_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.open_tree("meta")
                .unwrap()
                .insert("format_version", "2")
                .unwrap();
            db.flush().unwrap();
        }
        fs::write(dir.path().join("FORMAT"), "1\n").unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join("FORMAT")).unwrap(),
            "2\n"
        );
    }

    /// Pins the rows format 2 adds (docs/STORAGE.md), written with plain sled.
    #[test]
    fn store_reads_the_documented_format_2_trees() {
        let dir = tempfile::tempdir().unwrap();
        let a = space('a');
        {
            let db = raw(dir.path());
            let t = |name: &str| db.open_tree(name).unwrap();
            t("meta").insert("format_version", "2").unwrap();
            let key = [a.as_str().as_bytes(), &[0], &[5u8; 32][..]].concat();
            t("verifications").insert(key, "verification").unwrap();
            t("proposals").insert([6u8; 32], "proposal").unwrap();
            db.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            s.verifications().unwrap(),
            vec![(a, Hash([5; 32]), b"verification".to_vec())]
        );
        assert_eq!(
            s.proposals().unwrap(),
            vec![(Hash([6; 32]), b"proposal".to_vec())]
        );
    }

    #[test]
    fn store_with_a_damaged_row_reports_corruption_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.open_tree("roster_ops")
                .unwrap()
                .insert(b"short", "op")
                .unwrap();
            db.open_tree("roster_rejected")
                .unwrap()
                .insert([1u8; 32], &[0, 0, 0, 9, b'x'][..])
                .unwrap();
            db.open_tree("changes")
                .unwrap()
                .insert(b"no separator", "c")
                .unwrap();
            db.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        for err in [
            s.ops().unwrap_err(),
            s.rejected_ops().unwrap_err(),
            s.spaces().unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        }
    }

    #[test]
    fn store_whose_data_file_was_garbled_is_corrupt_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.put_change(&space('a'), &[1; 32], &[0xAB; 4096]).unwrap();
        }
        // sled 0.34 itself opens this file as an empty database; the store must not.
        let garbage: Vec<u8> = (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(dir.path().join("db"), &garbage).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "the store at {} is corrupt (its data file has lost the rows it held); move it aside and let the node resync from its peers",
                dir.path().display()
            )
        );

        fs::write(dir.path().join("conf"), &garbage[..100]).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn store_errors_are_mapped_by_io_kind() {
        let path = Path::new("/srv/store");
        let err = |kind| io_error(path, io::Error::from(kind));
        assert!(matches!(
            err(io::ErrorKind::StorageFull),
            StoreError::DiskFull { .. }
        ));
        assert!(matches!(
            err(io::ErrorKind::QuotaExceeded),
            StoreError::DiskFull { .. }
        ));
        assert!(matches!(
            err(io::ErrorKind::ReadOnlyFilesystem),
            StoreError::NotWritable { .. }
        ));
        assert!(matches!(
            err(io::ErrorKind::PermissionDenied),
            StoreError::NotWritable { .. }
        ));
        assert!(matches!(
            err(io::ErrorKind::UnexpectedEof),
            StoreError::Io { .. }
        ));
        assert_eq!(
            err(io::ErrorKind::StorageFull).to_string(),
            "the disk holding the store at /srv/store is full; free some space and try again"
        );
        // The text sled 0.34.7 gives when another process holds the lock.
        let locked =
            io::Error::other("could not acquire lock on \"/srv/store/db\": Os { code: 11 }");
        assert!(matches!(io_error(path, locked), StoreError::Locked { .. }));
    }

    #[test]
    fn store_whose_sidecar_is_newer_is_refused_before_sled_opens() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("FORMAT"), "3\n").unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerFormat { found: 3, .. }),
            "{err:?}"
        );
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["FORMAT"], "sled created nothing");

        fs::write(dir.path().join("FORMAT"), "two").unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}
