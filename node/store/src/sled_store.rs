//! [`SledStore`]: the store on disk, one sled 0.34 database with one tree per concern.
//!
//! It owns the key layout (documented tree by tree in `docs/STORAGE.md`), the format-version check at open,
//! and the mapping of every sled and I/O failure to a one-sentence [`StoreError`]. Per-space data is keyed
//! `space id || 0x00 || rest`, so a space's rows are one prefix scan; a space id is ASCII without NUL, so the
//! first 0x00 always ends it. Every write method flushes before it returns, and a write that touches several
//! keys runs as one sled transaction, which sled recovers all-or-nothing after a crash.
//!
//! A full disk is a fault that heals. Every write first checks that the disk keeps [`MIN_FREE_BYTES`] spare
//! beyond it and is refused untouched ([`StoreError::DiskFull`]) when it would not, so sled itself never
//! runs out of room in the usual case, and writes work again as soon as space returns. Opening a store
//! on a full disk works (a `spare` file is given up for sled's own writes at open), so read-only
//! commands do too. When sled fails a write anyway (another program filled the disk between the check
//! and the write), sled 0.34 refuses every later write until the database is opened again, and cannot be
//! closed and reopened within the process (closing waits for ever on the failed write). The store then
//! refuses writes with one sentence, keeps answering reads, and notes in a `takeback` file every write
//! made since the last successful flush (none of them was reported done); the next process to open the
//! store takes them back before anything else, so what was reported failed is absent and what was
//! reported done is present. A running node restarts itself for that once the disk has room
//! ([`Store::prepare_reopen`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use deskmesh_keys::{Hash, SpaceId};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};

use super::{
    check_meta_key, BeaconStore, ChangeStore, CheckpointStore, IndexStore, MetaStore,
    ProposalStore, RefusedLog, RejectedChange, RosterStore, SpaceRejection, SpaceRows, SpaceState,
    Store, StoreError, VerificationStore, FORMAT_VERSION, FORMAT_VERSION_KEY,
};

/// sled keeps up to this many bytes of pages in memory. Its default is 1 GiB, far more than a directory
/// of a few thousand spaces needs, and the node shares the machine with other programs.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Room every write leaves free on the disk (beyond twice its own size): sled appends to 512 KiB log
/// segments and may start a new one for a write of a few bytes, so a write is refused while less than
/// this is free rather than let sled hit "no space left" half way.
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// Size of `spare`, a file of zeros kept in the store directory and given up when the store cannot be
/// opened for lack of room. Opening sled writes: it overwrites the rest of its current 512 KiB log segment
/// and writes a snapshot of its page table (a few hundred KiB for a large directory), so on a full disk it
/// would fail and no command could even read. The file is made again once the disk has room.
pub const SPARE_BYTES: u64 = 8 * 1024 * 1024;

/// The spare file's name in the store directory.
const SPARE: &str = "spare";

/// Opens the trees; when the disk is too full for sled to open, gives up the spare file and tries once
/// more. Returns the trees and whether the spare file is still there.
fn open_with_spare(dir: &Path, sidecar: Option<u64>) -> Result<(Trees, bool), StoreError> {
    match Trees::open(dir, sidecar) {
        Err(StoreError::DiskFull { .. }) if dir.join(SPARE).exists() => {
            fs::remove_file(dir.join(SPARE)).map_err(|e| io_error(dir, e))?;
            Ok((Trees::open(dir, sidecar)?, false))
        }
        Ok(t) => {
            let spare = dir.join(SPARE).exists() || make_spare(dir).is_ok();
            Ok((t, spare))
        }
        Err(e) => Err(e),
    }
}

/// Writes the spare file whole (allocated, not sparse) or not at all.
fn make_spare(dir: &Path) -> io::Result<()> {
    let tmp = dir.join(format!("{SPARE}.tmp"));
    let made = (|| {
        let f = fs::File::create(&tmp)?;
        if rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, SPARE_BYTES).is_err() {
            // A filesystem without fallocate gets zeros written.
            let mut f = f;
            let chunk = vec![0u8; 1024 * 1024];
            for _ in 0..SPARE_BYTES / chunk.len() as u64 {
                f.write_all(&chunk)?;
            }
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(SPARE))
    })();
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made
}

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
    pub const CHECKPOINTS: &str = "checkpoints";
    pub const COVERED: &str = "covered";
    /// Derived: the node's saved roster state, one row.
    pub const ROSTER_STATE: &str = "roster_state";
    /// Derived: each listed space's search row, and the rows' format under [`super::SEARCH_FORMAT_KEY`].
    pub const SEARCH_ROWS: &str = "search_rows";
}

/// The key of the `search_rows` tree that holds the rows' format while they are complete (no space id
/// starts with a zero byte).
const SEARCH_FORMAT_KEY: &[u8] = b"\0format";

/// The one key of the `roster_state` tree.
const ROSTER_STATE_KEY: &[u8] = b"state";

/// A row of a `space || 0x00 || rest` tree: `rest` and the value.
type Row = (Vec<u8>, Vec<u8>);

/// A row of a `space || 0x00 || rest` tree with its space: space, `rest` and the value.
type SpaceRow = (SpaceId, Vec<u8>, Vec<u8>);

/// The error type our transaction closures return; they never abort on their own.
type TxError = ConflictableTransactionError<()>;

/// A [`Store`] in a sled database directory.
pub struct SledStore {
    path: PathBuf,
    /// The open database; `None` only while dropping (a failed sled is leaked, see `Drop`).
    trees: Option<Trees>,
    /// Set while a caller applies a batch: writes then skip their flush (see `Store::defer_flush`).
    deferred: AtomicBool,
    health: Mutex<Health>,
    /// Whether writes check for room first; only tests that make sled itself run out of room turn it off.
    room_check: AtomicBool,
    /// Whether the spare file (see [`SPARE_BYTES`]) is in place.
    spare: AtomicBool,
    /// The disk's free bytes as last read, for [`SledStore::check_room`].
    room: Mutex<Room>,
}

/// A reading of the disk's free bytes and what writes have asked for since. A write trusts it instead of
/// asking the file system again (a `statvfs` per write was 1-2 % of a cold join's CPU) only while it is
/// under [`ROOM_FRESH`] old and leaves more than [`ROOM_MARGIN`] beyond the write's need; near a full
/// disk every write reads afresh.
#[derive(Default)]
struct Room {
    read_at: Option<std::time::Instant>,
    free: u64,
    spent: u64,
}

impl Room {
    /// Whether this reading, at `now`, vouches for a write that needs `need` bytes free and asks for
    /// `asks`; if so the write's bytes are counted as spent.
    fn covers(&mut self, need: u64, asks: u64, now: std::time::Instant) -> bool {
        let fresh = self
            .read_at
            .is_some_and(|at| now.saturating_duration_since(at) < ROOM_FRESH);
        let left = self.free.saturating_sub(self.spent);
        if fresh && left >= need.saturating_add(ROOM_MARGIN) {
            self.spent = self.spent.saturating_add(asks);
            return true;
        }
        false
    }
}

/// How long a reading of the free bytes stands in for a new one.
const ROOM_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// How much more than a write needs a reading must show for the write to trust it: more than a node
/// writes in [`ROOM_FRESH`], so another program would have to fill this much in that time for a
/// write to reach sled on a disk that cannot take it (which sled then reports, as it does now).
const ROOM_MARGIN: u64 = 64 * 1024 * 1024;

/// The database and its trees.
struct Trees {
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
    checkpoints: Tree,
    covered: Tree,
    roster_state: Tree,
    search_rows: Tree,
}

/// What the store must take back should sled fail.
#[derive(Default)]
struct Health {
    /// sled failed a write: it refuses every later one until the store is opened again, and its memory
    /// may hold writes that are not on disk.
    broken: bool,
    /// Writes to the source-of-truth trees since the last successful flush, oldest first.
    unflushed: Vec<Undo>,
    /// The takeback file holds `unflushed`.
    noted: bool,
    /// A takeback file found at open could not be applied yet (no room); writes wait for it.
    takeback_pending: bool,
}

/// How to take back one write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// A key the write added (a roster operation, a change): removed again.
    Added {
        tree: &'static str,
        key: Vec<u8>,
        space: Option<SpaceId>,
    },
    /// A key the write replaced or removed (a beacon, a meta value): its old value put back.
    Replaced {
        tree: &'static str,
        key: Vec<u8>,
        old: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Whether stores close in the background ([`close_in_background`]).
static BACKGROUND_CLOSE: AtomicBool = AtomicBool::new(false);

/// From now on, a store closed in this process becomes durable at once and is torn down on a thread of its
/// own, which the process does not wait for at its exit. For a program that exits soon after its last
/// store closes and does not hand the store to a process it starts (the `deskmesh` command); a library
/// caller that closes a store and then starts a process on it keeps the default, a close that returns
/// once sled has let go of the store.
pub fn close_in_background() {
    BACKGROUND_CLOSE.store(true, Ordering::Relaxed);
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if self.health().broken {
            // Closing a sled that failed a write waits for ever for that write to become durable, and
            // holds a lock every sled database of the process shares: note what to take back and leak it.
            let _ = self.prepare_reopen();
            std::mem::forget(self.trees.take());
        } else if let Some(trees) = self
            .trees
            .take_if(|_| BACKGROUND_CLOSE.load(Ordering::Relaxed))
        {
            // What was written becomes durable here, before the close returns. Tearing sled down then
            // frees every page it read (about 25 ms after a whole read of 10,000 listings), which a command
            // about to exit need not wait for: it happens on a thread of its own, and the process may
            // exit before it ends. The lock it still holds is waited out by a reopen in this process
            // (`closed`), and by another process's `open_when_free`. A flush that fails closes here, as
            // sled's own close retries it and reports it.
            closed::record(&self.path);
            if trees.db.flush().is_ok() {
                // Without a thread (the process is at its limit) `spawn` drops the closure, and so the
                // trees, before it returns.
                let _ = std::thread::Builder::new()
                    .name("store-close".into())
                    .spawn(move || drop(trees));
            }
            return;
        }
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

impl Trees {
    /// Opens sled and its trees, checking (and, for a new store, stamping) the format version. `sidecar`
    /// is the version the `FORMAT` file beside sled's files holds, read before sled opened anything.
    fn open(dir: &Path, sidecar: Option<u64>) -> Result<Self, StoreError> {
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
        let open = |name: &str| db.open_tree(name).at(dir);
        Ok(Self {
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
            checkpoints: open(tree::CHECKPOINTS)?,
            covered: open(tree::COVERED)?,
            roster_state: open(tree::ROSTER_STATE)?,
            search_rows: open(tree::SEARCH_ROWS)?,
            meta,
            db,
        })
    }

    fn by_name(&self, name: &str) -> &Tree {
        match name {
            tree::ROSTER_OPS => &self.roster_ops,
            tree::CHANGES => &self.changes,
            tree::BEACONS => &self.beacons,
            tree::CHECKPOINTS => &self.checkpoints,
            tree::COVERED => &self.covered,
            tree::VERIFICATIONS => &self.verifications,
            tree::PROPOSALS => &self.proposals,
            _ => &self.meta,
        }
    }

    /// Takes back writes that never reached the disk as far as the caller knows (newest first), marking
    /// the spaces whose index may show them.
    fn undo(&self, path: &Path, writes: Vec<Undo>) -> Result<(), StoreError> {
        let mut reindex_all = false;
        for w in writes.into_iter().rev() {
            match w {
                Undo::Added { tree, key, space } => {
                    self.by_name(tree).remove(key).at(path)?;
                    match space {
                        Some(space) => {
                            self.index_dirty
                                .insert(space.as_str().as_bytes(), &[][..])
                                .at(path)?;
                        }
                        // A roster operation may have changed which changes of any space count, and
                        // the saved roster state may hold it.
                        None if tree == tree::ROSTER_OPS => {
                            reindex_all = true;
                            self.roster_state.remove(ROSTER_STATE_KEY).at(path)?;
                        }
                        None => {}
                    }
                }
                Undo::Replaced { tree, key, old } => {
                    match old {
                        Some(v) => self.by_name(tree).insert(key, v).at(path)?,
                        None => self.by_name(tree).remove(key).at(path)?,
                    };
                }
            }
        }
        if reindex_all {
            for kv in self.listings.iter().keys() {
                self.index_dirty.insert(kv.at(path)?, &[][..]).at(path)?;
            }
        }
        self.db.flush().at(path)?;
        Ok(())
    }
}

/// The file in the store directory listing writes to take back at the next open.
const TAKEBACK: &str = "takeback";

/// One write per line: `tree key old space`, each field lowercase hex or `-` when absent. `old` is absent
/// for a key the write added (remove it) and present for a key it replaced (put the old value back); an
/// old value that was absent is written `~`.
fn encode_takeback(writes: &[Undo]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = String::new();
    for w in writes {
        let line = match w {
            Undo::Added { tree, key, space } => format!(
                "{tree} {} - {}\n",
                hex(key),
                space
                    .as_ref()
                    .map_or("-".into(), |s| hex(s.as_str().as_bytes()))
            ),
            Undo::Replaced { tree, key, old } => format!(
                "{tree} {} {} -\n",
                hex(key),
                old.as_ref().map_or("~".into(), |v| hex(v))
            ),
        };
        out.push_str(&line);
    }
    out
}

fn decode_takeback(dir: &Path, text: &str) -> Result<Vec<Undo>, StoreError> {
    let bad = || corrupt(dir, "its takeback file is damaged");
    let unhex = |s: &str| -> Result<Vec<u8>, StoreError> {
        if !s.len().is_multiple_of(2) {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
            .collect()
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        let [tree, key, old, space] = f.as_slice() else {
            return Err(bad());
        };
        let tree = [
            tree::ROSTER_OPS,
            tree::CHANGES,
            tree::BEACONS,
            tree::META,
            tree::CHECKPOINTS,
            tree::COVERED,
            tree::VERIFICATIONS,
            tree::PROPOSALS,
        ]
        .into_iter()
        .find(|t| t == tree)
        .ok_or_else(bad)?;
        let key = unhex(key)?;
        out.push(match *old {
            "-" => Undo::Added {
                tree,
                key,
                space: match *space {
                    "-" => None,
                    s => Some(
                        String::from_utf8(unhex(s)?)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(bad)?,
                    ),
                },
            },
            "~" => Undo::Replaced {
                tree,
                key,
                old: None,
            },
            v => Undo::Replaced {
                tree,
                key,
                old: Some(unhex(v)?),
            },
        });
    }
    Ok(out)
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. Refuses a directory that is not writable, that
    /// another process holds, or whose store was written by a newer deskmesh; stamps an unversioned store
    /// with [`FORMAT_VERSION`]. A full disk does not stop it: reads work, and writes say the disk is full.
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

        let (trees, spare) = open_with_spare(dir, sidecar)?;
        // Written only once the stamp is durable: a crash in between leaves a stamped store with no (or an
        // older) sidecar, which the next open completes, never a sidecar over an unstamped (and so
        // "damaged") store.
        if sidecar != Some(u64::from(FORMAT_VERSION)) {
            write_sidecar(dir)?;
        }
        let store = Self {
            path: dir.to_path_buf(),
            trees: Some(trees),
            deferred: AtomicBool::new(false),
            health: Mutex::new(Health {
                takeback_pending: dir.join(TAKEBACK).exists(),
                ..Health::default()
            }),
            room_check: AtomicBool::new(true),
            room: Mutex::default(),
            spare: AtomicBool::new(spare),
        };
        // Writes a failed process noted are taken back before anything reads them. On a full disk that
        // must wait for room; reads meanwhile may still show them.
        match store.apply_takeback() {
            Ok(()) | Err(StoreError::DiskFull { .. }) => {}
            Err(e) => return Err(e),
        }
        store.sync()?;
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn trees(&self) -> &Trees {
        // Only `Drop` takes the trees out.
        self.trees
            .as_ref()
            .unwrap_or_else(|| unreachable!("the store is being dropped"))
    }

    /// Takes back the writes a takeback file lists, then removes the file.
    fn apply_takeback(&self) -> Result<(), StoreError> {
        if !self.health().takeback_pending {
            return Ok(());
        }
        let file = self.path.join(TAKEBACK);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error(&self.path, e)),
        };
        let writes = decode_takeback(&self.path, &text)?;
        self.check_room(text.len())?;
        self.trees().undo(&self.path, writes)?;
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&self.path, e)),
        }
        self.health().takeback_pending = false;
        Ok(())
    }

    /// The sentence for a write refused because sled failed an earlier one.
    fn broken_error(&self) -> StoreError {
        match self.check_room(0) {
            Err(full) => full,
            Ok(()) => StoreError::NeedsReopen {
                path: self.path.clone(),
            },
        }
    }

    /// Refuses a write of about `bytes` unless the disk keeps [`MIN_FREE_BYTES`] free beyond twice that.
    fn check_room(&self, bytes: usize) -> Result<(), StoreError> {
        if !self.room_check.load(Ordering::Relaxed) {
            return Ok(());
        }
        let asks = 2 * bytes as u64;
        let mut need = MIN_FREE_BYTES.saturating_add(asks);
        // The room the spare file gave up is for opening only: writes wait until it can be made again.
        if !self.spare.load(Ordering::Relaxed) {
            need = need.saturating_add(SPARE_BYTES);
        }
        let mut room = self.room.lock().unwrap_or_else(PoisonError::into_inner);
        if room.covers(need, asks, std::time::Instant::now()) {
            return Ok(());
        }
        // A filesystem that cannot say how much is free is not checked; sled reports what it hits.
        let Ok(vfs) = rustix::fs::statvfs(&self.path) else {
            *room = Room::default();
            return Ok(());
        };
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        *room = Room {
            read_at: Some(std::time::Instant::now()),
            free,
            spent: asks,
        };
        drop(room);
        if free < need {
            return Err(StoreError::DiskFull {
                path: self.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("{} KiB free, {} KiB needed", free / 1024, need / 1024),
                ),
            });
        }
        Ok(())
    }

    /// Runs one write of about `bytes`: refused untouched when the disk lacks room; otherwise what it
    /// changed in the source of truth is noted (to take back should its flush fail) and, unless a batch
    /// defers it, flushed. A failure once sled has the write breaks the store until it is opened again.
    fn write<R>(
        &self,
        bytes: usize,
        f: impl FnOnce(&Trees, &mut Vec<Undo>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if self.health().broken {
            return Err(self.broken_error());
        }
        self.check_room(bytes)?;
        self.apply_takeback()?;
        let t = self.trees();
        let mut undo = Vec::new();
        let result = f(t, &mut undo);
        self.health().unflushed.extend(undo);
        let result = result.and_then(|r| {
            self.sync()?;
            Ok(r)
        });
        if let Err(e) = &result {
            if breaks(e) {
                self.break_down();
            }
        }
        result
    }

    /// Removes one key of a source-of-truth tree as one write, noting its old value to put back should
    /// the flush fail. Says whether the key was there.
    fn remove_undoable(&self, tree: &'static str, key: Vec<u8>) -> Result<bool, StoreError> {
        self.write(0, |t, undo| {
            let Some(old) = t.by_name(tree).remove(&key).at(&self.path)? else {
                return Ok(false);
            };
            undo.push(Undo::Replaced {
                tree,
                key,
                old: Some(old.to_vec()),
            });
            Ok(true)
        })
    }

    /// sled failed: refuse writes from now on and try to note what to take back.
    fn break_down(&self) {
        self.health().broken = true;
        let _ = self.prepare_reopen();
    }

    /// Makes every write so far durable, unless a batch is being applied (then its end does).
    fn sync(&self) -> Result<(), StoreError> {
        if self.deferred.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.flush_now()
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        if self.health().broken {
            return Err(self.broken_error());
        }
        match self.trees().db.flush().at(&self.path) {
            Ok(_) => {
                self.health().unflushed.clear();
                self.restore_spare();
                Ok(())
            }
            Err(e) => {
                if breaks(&e) {
                    self.break_down();
                }
                Err(e)
            }
        }
    }

    /// Puts the spare file back once the disk has room for it and the usual margin again.
    fn restore_spare(&self) {
        if self.spare.load(Ordering::Relaxed) {
            return;
        }
        let room = rustix::fs::statvfs(&self.path)
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
            .unwrap_or(0);
        if room >= SPARE_BYTES + 2 * MIN_FREE_BYTES && make_spare(&self.path).is_ok() {
            self.spare.store(true, Ordering::Relaxed);
        }
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

/// Whether an error from sled, once it has a write, leaves it refusing writes until reopened: an I/O
/// failure (a full disk among them) or sled giving up. Damaged rows read back are not such a failure.
fn breaks(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::DiskFull { .. }
            | StoreError::Io { .. }
            | StoreError::NotWritable { .. }
            | StoreError::Backend { .. }
    )
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
    match written {
        // The directory is writable and the disk is full: reads work, and every write says so.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ) =>
        {
            Ok(())
        }
        other => other.map_err(|e| io_error(dir, e)),
    }
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
        self.write(bytes.len(), |t, undo| {
            if t.roster_ops.contains_key(key).at(&self.path)? {
                return Ok(false);
            }
            undo.push(Undo::Added {
                tree: tree::ROSTER_OPS,
                key: key.to_vec(),
                space: None,
            });
            // Single-key writes, not a transaction: each sled transaction writes its log buffer out and
            // waits for the disk twice (`docs/STORAGE.md`), and a join stores thousands of operations.
            // Nothing here needs the three together. The saved roster state is removed first because it
            // does not hold this operation; one that survives a crash beside it anyway names fewer
            // operations than the store holds, and is not used (`Node::saved_roster` compares the
            // counts). The operation's old rejection is removed first too, and `rejected_ops` leaves
            // out a rejection whose operation is stored.
            if t.roster_state
                .contains_key(ROSTER_STATE_KEY)
                .at(&self.path)?
            {
                t.roster_state.remove(ROSTER_STATE_KEY).at(&self.path)?;
            }
            if t.roster_rejected.contains_key(key).at(&self.path)? {
                t.roster_rejected.remove(key).at(&self.path)?;
            }
            t.roster_ops.insert(&key[..], bytes).at(&self.path)?;
            Ok(true)
        })
    }

    fn op(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .roster_ops
            .get(hash.as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn has_op(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.trees()
            .roster_ops
            .contains_key(hash.as_bytes())
            .at(&self.path)
    }

    fn ops(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.trees()
            .roster_ops
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((Hash(self.hash32(&k)?), v.to_vec()))
            })
            .collect()
    }

    fn op_count(&self) -> Result<u64, StoreError> {
        Ok(self.trees().roster_ops.len() as u64)
    }

    fn roster_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .roster_state
            .get(ROSTER_STATE_KEY)
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn put_roster_state(&self, state: &[u8]) -> Result<(), StoreError> {
        // Derived, like the index: nothing to take back should the flush fail (a takeback of a roster
        // operation drops the saved state anyway).
        self.write(state.len(), |t, _| {
            t.roster_state
                .insert(ROSTER_STATE_KEY, state)
                .at(&self.path)?;
            Ok(())
        })
    }

    fn put_rejected_op(&self, hash: &Hash, bytes: &[u8], reason: &str) -> Result<(), StoreError> {
        self.write(bytes.len() + reason.len(), |t, _| {
            t.roster_rejected
                .insert(hash.as_bytes(), encode_rejected_op(bytes, reason))
                .at(&self.path)?;
            Ok(())
        })
    }

    fn rejected_ops(&self) -> Result<Vec<(Hash, Vec<u8>, String)>, StoreError> {
        let t = self.trees();
        t.roster_rejected
            .iter()
            // A rejection whose operation was stored since (`put_op` removes it, in a write of its own).
            .filter(|kv| match kv {
                Ok((k, _)) => !matches!(t.roster_ops.contains_key(k), Ok(true)),
                Err(_) => true,
            })
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
        let size = changes.iter().map(|(_, b)| b.len()).sum();
        self.write(size, |t, undo| {
            let mut any_new = false;
            for key in &keys {
                if !t.changes.contains_key(key).at(&self.path)? {
                    any_new = true;
                    undo.push(Undo::Added {
                        tree: tree::CHANGES,
                        key: key.clone(),
                        space: Some(space.clone()),
                    });
                }
            }
            // Single-key writes, not a transaction (each sled transaction writes its log buffer out and
            // waits for the disk twice, `docs/STORAGE.md`), in an order that keeps the rule "a kept change
            // has its space marked dirty": the mark is written before any change. sled recovers a prefix
            // of its log (its atomic batches rely on that: recovery stops where the log's contiguous tip
            // ends), so after a crash a change that survived has its earlier mark too; a mark without its
            // change only makes the space rebuild. Each change is kept only if absent, atomically
            // (compare-and-swap), so a repeated hash is reported not new.
            if !any_new {
                return Ok(vec![false; changes.len()]);
            }
            if !t.index_dirty.contains_key(space_id).at(&self.path)? {
                t.index_dirty.insert(space_id, &[][..]).at(&self.path)?;
            }
            let mut fresh = Vec::with_capacity(changes.len());
            for (key, (_, bytes)) in keys.iter().zip(changes) {
                let swapped = t
                    .changes
                    .compare_and_swap(key.as_slice(), None as Option<&[u8]>, Some(*bytes))
                    .at(&self.path)?;
                fresh.push(swapped.is_ok());
            }
            Ok(fresh)
        })
    }

    fn change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .changes
            .get(space_key(space, change_hash))
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn changes(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .scan_space(&self.trees().changes, space)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    fn has_change(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.trees()
            .changes
            .contains_key(space_key(space, change_hash))
            .at(&self.path)
    }

    fn change_hashes(&self, space: &SpaceId) -> Result<Vec<[u8; 32]>, StoreError> {
        let prefix = space_prefix(space);
        self.trees()
            .changes
            .scan_prefix(&prefix)
            .keys()
            .map(|k| self.hash32(&k.at(&self.path)?[prefix.len()..]))
            .collect()
    }

    fn change_count(&self, space: &SpaceId) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.trees().changes.scan_prefix(space_prefix(space)).keys() {
            k.at(&self.path)?;
            n += 1;
        }
        Ok(n)
    }

    fn spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        self.distinct_spaces(&self.trees().changes)
    }
}

impl CheckpointStore for SledStore {
    fn put_checkpoint(
        &self,
        space: &SpaceId,
        id: &Hash,
        bytes: &[u8],
        covered: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let key = space_key(space, &id.0);
        let marks: Vec<Vec<u8>> = covered.iter().map(|c| space_key(space, c)).collect();
        let space_id = space.as_str().as_bytes();
        self.write(bytes.len() + 64 * marks.len(), |t, undo| {
            if t.checkpoints.contains_key(&key).at(&self.path)? {
                return Ok(false);
            }
            undo.push(Undo::Added {
                tree: tree::CHECKPOINTS,
                key: key.clone(),
                space: Some(space.clone()),
            });
            for m in &marks {
                undo.push(Undo::Replaced {
                    tree: tree::COVERED,
                    key: m.clone(),
                    old: t.covered.get(m).at(&self.path)?.map(|v| v.to_vec()),
                });
            }
            (&t.checkpoints, &t.covered, &t.index_dirty)
                .transaction(|(cps, cov, dirty)| -> Result<bool, TxError> {
                    if cps.get(&key)?.is_some() {
                        return Ok(false);
                    }
                    cps.insert(key.as_slice(), bytes)?;
                    for m in &marks {
                        cov.insert(m.as_slice(), &id.0[..])?;
                    }
                    dirty.insert(space_id, &[][..])?;
                    Ok(true)
                })
                .at(&self.path)
        })
    }

    fn remove_checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError> {
        let key = space_key(space, &id.0);
        self.remove_undoable(tree::CHECKPOINTS, key)
    }

    fn checkpoint(&self, space: &SpaceId, id: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .checkpoints
            .get(space_key(space, &id.0))
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn space_checkpoints(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.scan_space(&self.trees().checkpoints, space)?
            .into_iter()
            .map(|(rest, v)| Ok((Hash(self.hash32(&rest)?), v)))
            .collect()
    }

    fn checkpoints(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError> {
        self.scan_all(&self.trees().checkpoints)?
            .into_iter()
            .map(|(space, rest, v)| Ok((space, Hash(self.hash32(&rest)?), v)))
            .collect()
    }

    fn is_covered(&self, space: &SpaceId, change_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.trees()
            .covered
            .contains_key(space_key(space, change_hash))
            .at(&self.path)
    }

    fn space_covered(&self, space: &SpaceId) -> Result<Vec<([u8; 32], Hash)>, StoreError> {
        self.scan_space(&self.trees().covered, space)?
            .into_iter()
            .map(|(rest, by)| Ok((self.hash32(&rest)?, Hash(self.hash32(&by)?))))
            .collect()
    }

    fn covered(&self) -> Result<Vec<(SpaceId, [u8; 32])>, StoreError> {
        self.keys(&self.trees().covered)?
            .iter()
            .map(|k| {
                let (space, rest) = self.split(k)?;
                Ok((space, self.hash32(rest)?))
            })
            .collect()
    }
}

impl BeaconStore for SledStore {
    fn put_beacon(&self, space: &SpaceId, pool: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = space_key(space, pool.as_bytes());
        self.write(bytes.len(), |t, undo| {
            let old = t.beacons.get(&key).at(&self.path)?.map(|v| v.to_vec());
            undo.push(Undo::Replaced {
                tree: tree::BEACONS,
                key: key.clone(),
                old,
            });
            t.beacons.insert(key.as_slice(), bytes).at(&self.path)?;
            Ok(())
        })
    }

    fn remove_beacon(&self, space: &SpaceId, pool: &str) -> Result<bool, StoreError> {
        let key = space_key(space, pool.as_bytes());
        self.remove_undoable(tree::BEACONS, key)
    }

    fn beacon(&self, space: &SpaceId, pool: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .beacons
            .get(space_key(space, pool.as_bytes()))
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn space_beacons(&self, space: &SpaceId) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_space(&self.trees().beacons, space)?
            .into_iter()
            .map(|(pool, v)| Ok((self.utf8(&pool, "pool name")?, v)))
            .collect()
    }

    fn beacons(&self) -> Result<Vec<(SpaceId, String, Vec<u8>)>, StoreError> {
        self.scan_all(&self.trees().beacons)?
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
        let key = space_key(space, id.as_bytes());
        self.write(bytes.len(), |t, undo| {
            let new = t
                .verifications
                .compare_and_swap(&key, None::<&[u8]>, Some(bytes))
                .at(&self.path)?
                .is_ok();
            if new {
                undo.push(Undo::Added {
                    tree: tree::VERIFICATIONS,
                    key: key.clone(),
                    space: Some(space.clone()),
                });
            }
            Ok(new)
        })
    }

    fn space_verifications(&self, space: &SpaceId) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.scan_space(&self.trees().verifications, space)?
            .into_iter()
            .map(|(id, v)| Ok((Hash(self.hash32(&id)?), v)))
            .collect()
    }

    fn verifications(&self) -> Result<Vec<(SpaceId, Hash, Vec<u8>)>, StoreError> {
        self.scan_all(&self.trees().verifications)?
            .into_iter()
            .map(|(space, id, v)| Ok((space, Hash(self.hash32(&id)?), v)))
            .collect()
    }

    fn remove_verification(&self, space: &SpaceId, id: &Hash) -> Result<bool, StoreError> {
        let key = space_key(space, id.as_bytes());
        self.remove_undoable(tree::VERIFICATIONS, key)
    }
}

impl ProposalStore for SledStore {
    fn put_proposal(&self, op: &Hash, bytes: &[u8]) -> Result<(), StoreError> {
        let key = op.as_bytes().to_vec();
        self.write(bytes.len(), |t, undo| {
            let old = t.proposals.insert(&key, bytes).at(&self.path)?;
            undo.push(Undo::Replaced {
                tree: tree::PROPOSALS,
                key: key.clone(),
                old: old.map(|v| v.to_vec()),
            });
            Ok(())
        })
    }

    fn proposal(&self, op: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .proposals
            .get(op.as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn proposals(&self) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        self.trees()
            .proposals
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((Hash(self.hash32(&k)?), v.to_vec()))
            })
            .collect()
    }

    fn remove_proposal(&self, op: &Hash) -> Result<bool, StoreError> {
        let key = op.as_bytes().to_vec();
        self.remove_undoable(tree::PROPOSALS, key)
    }
}

impl IndexStore for SledStore {
    fn put_entry(&self, space: &SpaceId, json: &[u8]) -> Result<(), StoreError> {
        let key = space.as_str().as_bytes();
        self.write(json.len(), |t, _| {
            (&t.listings, &t.index_dirty, &t.search_rows)
                .transaction(|(listings, dirty, rows)| -> Result<(), TxError> {
                    listings.insert(key, json)?;
                    dirty.remove(key)?;
                    // The space's search row is unknown now: the rows are no longer complete.
                    rows.remove(key)?;
                    rows.remove(SEARCH_FORMAT_KEY)?;
                    Ok(())
                })
                .at(&self.path)
        })
    }

    fn entry(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .listings
            .get(space.as_str().as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn entries(&self) -> Result<Vec<(SpaceId, Vec<u8>)>, StoreError> {
        self.trees()
            .listings
            .iter()
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((self.space(&k)?, v.to_vec()))
            })
            .collect()
    }

    fn entry_count(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for key in self.trees().listings.iter().keys() {
            key.at(&self.path)?;
            n += 1;
        }
        Ok(n)
    }

    fn search_rows(&self, format: &[u8]) -> Result<Option<SpaceRows>, StoreError> {
        let rows = &self.trees().search_rows;
        if rows.get(SEARCH_FORMAT_KEY).at(&self.path)?.as_deref() != Some(format) {
            return Ok(None);
        }
        rows.iter()
            .filter(|kv| !matches!(kv, Ok((k, _)) if k.as_ref() == SEARCH_FORMAT_KEY))
            .map(|kv| {
                let (k, v) = kv.at(&self.path)?;
                Ok((self.space(&k)?, v.to_vec()))
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    fn search_rows_format(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .search_rows
            .get(SEARCH_FORMAT_KEY)
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn put_search_rows(
        &self,
        format: &[u8],
        rows: &[(SpaceId, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let size = rows.iter().map(|(_, r)| r.len()).sum::<usize>();
        self.write(size, |t, _| {
            let old = self.keys(&t.search_rows)?;
            t.search_rows
                .transaction(|tree| -> Result<(), TxError> {
                    for k in &old {
                        tree.remove(k)?;
                    }
                    for (space, row) in rows {
                        tree.insert(space.as_str().as_bytes(), row.as_slice())?;
                    }
                    tree.insert(SEARCH_FORMAT_KEY, format)?;
                    Ok(())
                })
                .at(&self.path)
        })
    }

    fn put_rejected_change(
        &self,
        space: &SpaceId,
        change_hash: &[u8; 32],
        reason_json: &[u8],
    ) -> Result<(), StoreError> {
        self.write(reason_json.len(), |t, _| {
            t.rejected_changes
                .insert(space_key(space, change_hash), reason_json)
                .at(&self.path)?;
            Ok(())
        })
    }

    fn space_rejections(&self, space: &SpaceId) -> Result<Vec<SpaceRejection>, StoreError> {
        self.scan_space(&self.trees().rejected_changes, space)?
            .into_iter()
            .map(|(h, v)| Ok((self.hash32(&h)?, v)))
            .collect()
    }

    fn rejected_changes(&self) -> Result<Vec<RejectedChange>, StoreError> {
        self.scan_all(&self.trees().rejected_changes)?
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
        search_row: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.replace_space_states(&[SpaceState {
            space,
            listing,
            rejected,
            doc_state,
            search_row,
        }])
    }

    fn replace_space_states(&self, states: &[SpaceState<'_>]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let size = states
            .iter()
            .map(|s| {
                s.listing.map_or(0, <[u8]>::len)
                    + s.doc_state.map_or(0, <[u8]>::len)
                    + s.search_row.map_or(0, <[u8]>::len)
                    + s.rejected.iter().map(|(_, r)| r.len()).sum::<usize>()
            })
            .sum();
        self.write(size, |t, _| {
            // sled transactions cannot scan, so each space's old rejections are listed first; the node
            // has one indexer per space, so nothing adds a rejection for these spaces in between.
            let mut old: Vec<sled::IVec> = Vec::new();
            for s in states {
                for k in t.rejected_changes.scan_prefix(space_prefix(s.space)).keys() {
                    old.push(k.at(&self.path)?);
                }
            }
            let new: Vec<(Vec<u8>, &[u8])> = states
                .iter()
                .flat_map(|s| s.rejected.iter().map(|(h, r)| (space_key(s.space, h), *r)))
                .collect();
            (
                &t.listings,
                &t.rejected_changes,
                &t.index_dirty,
                &t.doc_states,
                &t.search_rows,
            )
                .transaction(
                    |(listings, rejections, dirty, docs, rows)| -> Result<(), TxError> {
                        for k in &old {
                            rejections.remove(k)?;
                        }
                        for (k, reason) in &new {
                            rejections.insert(k.as_slice(), *reason)?;
                        }
                        for s in states {
                            let key = s.space.as_str().as_bytes();
                            match s.listing {
                                Some(json) => listings.insert(key, json)?,
                                None => listings.remove(key)?,
                            };
                            match (s.listing, s.search_row) {
                                (Some(_), Some(row)) => {
                                    rows.insert(key, row)?;
                                }
                                (None, _) => {
                                    rows.remove(key)?;
                                }
                                // A listing without its row: the rows are no longer complete.
                                (Some(_), None) => {
                                    rows.remove(key)?;
                                    rows.remove(SEARCH_FORMAT_KEY)?;
                                }
                            }
                            match s.doc_state {
                                Some(bytes) => docs.insert(key, bytes)?,
                                None => docs.remove(key)?,
                            };
                            dirty.remove(key)?;
                        }
                        Ok(())
                    },
                )
                .at(&self.path)
        })
    }

    fn doc_state(&self, space: &SpaceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .doc_states
            .get(space.as_str().as_bytes())
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn is_dirty(&self, space: &SpaceId) -> Result<bool, StoreError> {
        self.trees()
            .index_dirty
            .contains_key(space.as_str().as_bytes())
            .at(&self.path)
    }

    fn dirty_spaces(&self) -> Result<Vec<SpaceId>, StoreError> {
        self.keys(&self.trees().index_dirty)?
            .iter()
            .map(|k| self.space(k))
            .collect()
    }

    fn clear_index(&self) -> Result<(), StoreError> {
        self.write(0, |t, _| {
            // Everything the transaction removes or marks is listed first (sled transactions cannot
            // scan). A space that has changes, a listing or a rejection is marked, so a crash right after
            // the clear still leaves the node knowing what to rebuild.
            let mut marks = self.distinct_spaces(&t.changes)?;
            marks.extend(self.distinct_spaces(&t.rejected_changes)?);
            let listing_keys = self.keys(&t.listings)?;
            let rejection_keys = self.keys(&t.rejected_changes)?;
            let doc_keys = self.keys(&t.doc_states)?;
            let row_keys = self.keys(&t.search_rows)?;
            (
                &t.listings,
                &t.rejected_changes,
                &t.index_dirty,
                &t.doc_states,
                &t.search_rows,
            )
                .transaction(
                    |(listings, rejections, dirty, docs, rows)| -> Result<(), TxError> {
                        for k in &row_keys {
                            rows.remove(k)?;
                        }
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
                .at(&self.path)
        })
    }
}

impl MetaStore for SledStore {
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()
            .meta
            .get(key)
            .at(&self.path)?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_meta_key(key)?;
        self.write(value.len(), |t, undo| {
            let old = t.meta.insert(key, value).at(&self.path)?;
            undo.push(Undo::Replaced {
                tree: tree::META,
                key: key.as_bytes().to_vec(),
                old: old.map(|v| v.to_vec()),
            });
            Ok(())
        })
    }
}

impl RefusedLog for SledStore {
    fn log_refused(&self, record_json: &[u8]) -> Result<(), StoreError> {
        self.write(record_json.len(), |t, _| {
            // Keys are big-endian sequence numbers, so iteration order is arrival order.
            let next = match t.refused.last().at(&self.path)? {
                Some((k, _)) => k
                    .as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(0)
                    .wrapping_add(1),
                None => 0,
            };
            t.refused
                .insert(next.to_be_bytes(), record_json)
                .at(&self.path)?;
            while t.refused.len() > super::REFUSED_LOG_LIMIT {
                if t.refused.pop_min().at(&self.path)?.is_none() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn refused(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for row in self.trees().refused.iter() {
            let (_, v) = row.at(&self.path)?;
            out.push(v.to_vec());
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn flush(&self) -> Result<(), StoreError> {
        self.flush_now()
    }

    fn position(&self) -> Option<i64> {
        self.trees.as_ref().map(|t| t.db.log_position())
    }

    fn directory_snapshot(&self, format: &[u8]) -> Option<crate::DirectorySnapshot> {
        crate::snapshot::read(&self.path, self.position()?, format)
    }

    fn keep_directory_snapshot(
        &self,
        read_at: i64,
        format: &[u8],
        rows: &SpaceRows,
        beacons: &[(SpaceId, String, Vec<u8>)],
    ) -> bool {
        // Durable first, so that no crash can take the store back behind what the snapshot shows.
        if self.flush_now().is_err() || self.position() != Some(read_at) {
            return false;
        }
        let bytes = crate::snapshot::encode(read_at, format, rows, beacons);
        // A cache never takes the room the store keeps for its own writes.
        self.check_room(bytes.len()).is_ok() && crate::snapshot::write(&self.path, &bytes).is_ok()
    }

    fn defer_flush(&self, deferred: bool) -> Result<(), StoreError> {
        self.deferred.store(deferred, Ordering::Relaxed);
        if deferred {
            Ok(())
        } else {
            self.flush()
        }
    }

    fn needs_reopen(&self) -> bool {
        self.health().broken
    }

    fn prepare_reopen(&self) -> Result<(), StoreError> {
        let mut health = self.health();
        if !health.broken || health.noted {
            return Ok(());
        }
        let text = encode_takeback(&health.unflushed);
        self.check_room(text.len())?;
        let tmp = self.path.join(format!("{TAKEBACK}.tmp"));
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, self.path.join(TAKEBACK))?;
            fs::File::open(&self.path)?.sync_all()
        };
        write().map_err(|e| io_error(&self.path, e))?;
        health.noted = true;
        Ok(())
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

    /// The directory snapshot is read back while the store stands where it was taken, across a reopen,
    /// and never after any write, of any kind; one whose read a write overtook is not kept.
    #[test]
    fn a_directory_snapshot_serves_only_an_unchanged_store() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (space('a'), space('b'));
        let format = b"rows-1";
        let kept_now = |s: &SledStore| {
            let at = s.position().unwrap();
            let rows = s.search_rows(format).unwrap().unwrap_or_default();
            let beacons = s.beacons().unwrap();
            assert!(s.keep_directory_snapshot(at, format, &rows, &beacons));
            (rows, beacons)
        };
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.put_search_rows(format, &[(a.clone(), b"row a".to_vec())])
                .unwrap();
            s.put_beacon(&a, "desks", b"beacon").unwrap();
            let (rows, beacons) = kept_now(&s);
            let snap = s.directory_snapshot(format).unwrap();
            assert_eq!(
                (snap.rows(), snap.beacons()),
                (Some(rows), Some(beacons.clone()))
            );
            assert_eq!(s.directory_snapshot(b"rows-0"), None, "another format");
            assert_eq!(beacons.len(), 1);
        }
        // Reopened without a write in between: still the store's.
        let s = SledStore::open(dir.path()).unwrap();
        assert!(s.directory_snapshot(format).is_some());
        // Each kind of write makes it stale, the snapshot's own trees or not.
        type Write<'a> = Box<dyn Fn(&SledStore) + 'a>;
        let writes: Vec<Write> = vec![
            Box::new(|s| s.put_beacon(&b, "desks", b"beacon b").unwrap()),
            Box::new(|s| {
                s.remove_beacon(&b, "desks").unwrap();
            }),
            Box::new(|s| s.put_entry(&b, b"{}").unwrap()),
            Box::new(|s| {
                s.put_op(&Hash([9; 32]), b"op").unwrap();
            }),
            Box::new(|s| s.put_meta("name", b"x").unwrap()),
        ];
        for (i, write) in writes.iter().enumerate() {
            kept_now(&s);
            assert!(s.directory_snapshot(format).is_some(), "write {i}: kept");
            write(&s);
            assert_eq!(s.directory_snapshot(format), None, "write {i}: stale");
        }
        // A write between the read and the keeping: not kept.
        let at = s.position().unwrap();
        let rows = s.search_rows(format).unwrap().unwrap_or_default();
        s.put_beacon(&a, "desks", b"newer").unwrap();
        assert!(!s.keep_directory_snapshot(at, format, &rows, &[]));
        assert_eq!(s.directory_snapshot(format), None);
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

    /// A small tmpfs mounted for one test (root only), unmounted when dropped.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        /// `None`, after saying why on stderr, where mounting is not permitted (not root); under `CI` it
        /// must be, so the test fails there instead of skipping.
        fn mount(mib: u32) -> Option<Tmpfs> {
            let dir = tempfile::tempdir().unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mounting a tmpfs is required in CI"
                );
                eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
                return None;
            }
            Some(Tmpfs(dir))
        }

        /// Writes zeros until the disk is full; returns the file, to remove for room again.
        fn fill(&self) -> PathBuf {
            let path = self.0.path().join("filler");
            let mut f = fs::File::create(&path).unwrap();
            let chunk = vec![0u8; 64 * 1024];
            while f.write_all(&chunk).is_ok() {}
            // Whatever is left is smaller than a chunk.
            let _ = f.write_all(&[0u8; 512]);
            path
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn a_full_disk_refuses_writes_keeps_reads_and_heals_when_room_returns() {
        let Some(fs) = Tmpfs::mount(24) else { return };
        let dir = fs.0.path().join("store");
        let store = SledStore::open(&dir).unwrap();
        assert!(dir.join(SPARE).exists(), "the spare file is made at open");
        let a = space('a');
        assert!(store.put_change(&a, &[1; 32], b"before").unwrap());
        let filler = fs.fill();

        let err = store.put_change(&a, &[2; 32], b"refused").unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "the disk holding the store at {} is full; free some space and try again",
                dir.display()
            )
        );
        assert!(store.put_beacon(&a, "hot", b"beacon").is_err());
        assert_eq!(store.changes(&a).unwrap(), vec![b"before".to_vec()]);

        // Opening the store again on the full disk works (read-only commands): it gives up the spare.
        drop(store);
        let store = SledStore::open(&dir).unwrap();
        assert_eq!(store.change_hashes(&a).unwrap(), vec![[1; 32]]);
        assert!(
            store.beacon(&a, "hot").unwrap().is_none(),
            "the refused beacon is absent"
        );
        assert!(!dir.join(SPARE).exists());

        fs::remove_file(filler).unwrap();
        assert!(store.put_change(&a, &[3; 32], b"after").unwrap());
        assert!(
            dir.join(SPARE).exists(),
            "the spare file is back once there is room"
        );
        drop(store);
        let store = SledStore::open(&dir).unwrap();
        assert_eq!(store.change_hashes(&a).unwrap(), vec![[1; 32], [3; 32]]);
        assert!(!store.needs_reopen(), "sled itself never ran out of room");
    }

    #[test]
    fn a_reading_of_the_free_room_vouches_only_while_fresh_and_far_from_full() {
        let start = std::time::Instant::now();
        let mib = 1024 * 1024;
        let mut room = Room {
            read_at: Some(start),
            free: ROOM_MARGIN + 10 * mib,
            spent: 0,
        };
        // Far from full and fresh: vouched for, and what the writes ask is counted.
        assert!(room.covers(4 * mib, 2 * mib, start));
        assert!(room.covers(4 * mib, 2 * mib, start + ROOM_FRESH / 2));
        assert_eq!(room.spent, 4 * mib);
        // The writes so far bring it within the margin of this need: read again.
        assert!(!room.covers(7 * mib, 2 * mib, start));
        assert_eq!(
            room.spent,
            4 * mib,
            "a write not vouched for is not counted"
        );
        // Stale: read again, however much was free.
        let mut plenty = Room {
            read_at: Some(start),
            free: 100 * ROOM_MARGIN,
            spent: 0,
        };
        assert!(!plenty.covers(0, 0, start + ROOM_FRESH));
        // Never read: read.
        assert!(!Room::default().covers(0, 0, start));
    }

    /// With the room check off, sled itself hits "no space left": the store refuses writes with one
    /// sentence and keeps answering reads; once room returns it notes what to take back, and the next
    /// opening removes the writes reported failed and keeps the acknowledged ones.
    #[test]
    fn a_write_sled_failed_is_taken_back_at_the_next_open() {
        let Some(fs) = Tmpfs::mount(48) else { return };
        let dir = fs.0.path().join("store");
        let store = SledStore::open(&dir).unwrap();
        let a = space('a');
        store.put_beacon(&a, "hot", b"old beacon").unwrap();
        assert!(store.put_change(&a, &[1; 32], b"kept").unwrap());
        // Freed with the filler: the failed sled's flusher may go on writing the failed pages (up to the
        // 8 MiB below) into whatever room appears, so "room again" must be more than that.
        let reserve = fs.0.path().join("reserve");
        fs::write(&reserve, vec![0u8; 20 * 1024 * 1024]).unwrap();
        let filler = fs.fill();

        store.room_check.store(false, Ordering::Relaxed);
        // Big enough that sled must write to the disk at once; it fails.
        let big = vec![7u8; 2 * 1024 * 1024];
        let mut failed = Vec::new();
        for n in 2u8..6 {
            if store.put_change(&a, &[n; 32], &big).is_err() {
                failed.push(n);
            }
        }
        assert!(!failed.is_empty(), "sled never ran out of room");
        assert!(store.needs_reopen());
        store.room_check.store(true, Ordering::Relaxed);
        // Still full: reads answer, writes fail with the disk-full sentence.
        assert!(store.beacon(&a, "hot").unwrap().is_some());
        let err = store.put_beacon(&a, "hot", b"new beacon").unwrap_err();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
        assert!(store.prepare_reopen().is_err(), "no room for the note yet");

        fs::remove_file(filler).unwrap();
        fs::remove_file(reserve).unwrap();
        let err = store.put_change(&a, &[9; 32], b"x").unwrap_err();
        assert!(matches!(err, StoreError::NeedsReopen { .. }), "{err:?}");
        store.prepare_reopen().unwrap();
        assert!(dir.join(TAKEBACK).exists());
        // Dropping a failed sled must not hang (it is leaked), and its lock goes with the process; this
        // test stands in for the new process by opening a copy of the files.
        drop(store);
        let copy = fs.0.path().join("copy");
        fs::create_dir(&copy).unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
            }
        }
        let store = SledStore::open(&copy).unwrap();
        assert!(!copy.join(TAKEBACK).exists(), "applied and removed");
        assert!(store.has_change(&a, &[1; 32]).unwrap());
        for n in &failed {
            assert!(
                !store.has_change(&a, &[*n; 32]).unwrap(),
                "failed write {n} is back"
            );
        }
        assert_eq!(
            store.beacon(&a, "hot").unwrap().as_deref(),
            Some(&b"old beacon"[..])
        );
        assert!(store.dirty_spaces().unwrap().contains(&a));
        assert!(store.put_change(&a, &[10; 32], b"after").unwrap());
    }

    #[test]
    fn a_new_roster_operation_or_its_takeback_drops_the_saved_roster() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.roster_state().unwrap(), None);
        store.put_op(&Hash([1; 32]), b"first").unwrap();
        store.put_roster_state(b"saved").unwrap();
        assert_eq!(store.op_count().unwrap(), 1);
        // An operation already kept changes nothing.
        assert!(!store.put_op(&Hash([1; 32]), b"first").unwrap());
        assert_eq!(
            store.roster_state().unwrap().as_deref(),
            Some(&b"saved"[..])
        );
        // A new one drops the saved state in the same write.
        assert!(store.put_op(&Hash([2; 32]), b"second").unwrap());
        assert_eq!(store.roster_state().unwrap(), None);
        assert_eq!(store.op_count().unwrap(), 2);
        // Saved again, then the second operation is taken back at the next open: the state goes too.
        store.put_roster_state(b"saved with two").unwrap();
        drop(store);
        let note = encode_takeback(&[Undo::Added {
            tree: tree::ROSTER_OPS,
            key: vec![2; 32],
            space: None,
        }]);
        fs::write(dir.path().join(TAKEBACK), note).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.op_count().unwrap(), 1);
        assert_eq!(store.roster_state().unwrap(), None);
    }

    #[test]
    fn takeback_notes_round_trip() {
        let writes = vec![
            Undo::Added {
                tree: tree::CHANGES,
                key: vec![0, 1, 255],
                space: Some(space('b')),
            },
            Undo::Added {
                tree: tree::ROSTER_OPS,
                key: vec![9; 32],
                space: None,
            },
            Undo::Replaced {
                tree: tree::BEACONS,
                key: b"k".to_vec(),
                old: None,
            },
            Undo::Replaced {
                tree: tree::META,
                key: b"m".to_vec(),
                old: Some(vec![]),
            },
            Undo::Added {
                tree: tree::VERIFICATIONS,
                key: vec![7; 40],
                space: Some(space('c')),
            },
            Undo::Replaced {
                tree: tree::PROPOSALS,
                key: vec![6; 32],
                old: Some(b"proposal".to_vec()),
            },
        ];
        let text = encode_takeback(&writes);
        assert_eq!(decode_takeback(Path::new("/s"), &text).unwrap(), writes);
        assert!(decode_takeback(Path::new("/s"), "changes zz - -").is_err());
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
