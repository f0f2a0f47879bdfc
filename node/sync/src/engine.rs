//! [`SyncEngine`], one node's sync state machine: reconciliation sessions per peer, the items to push
//! when a session ends, fetch requests with their window, timeouts and retries, and the limits a
//! misbehaving peer cannot get past. It is driven by events carrying the caller's monotonic `now` and
//! answers with [`Intent`]s; it reads no clock and touches no socket or store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use super::reconcile::{self, Params};
use super::set::MemorySet;
use super::wire::{Msg, Range, MAX_MESSAGE_BYTES, MAX_WANT_IDS};
use super::{Item, ItemId, ItemKind, SyncError};

/// Tuning and limits of one engine. The protocol limits every node enforces on what it receives are the
/// constants [`MAX_MESSAGE_BYTES`] and [`MAX_WANT_IDS`]; these fields shape what this node sends and how
/// much it accepts per peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Ranges a mismatched range is split into (2..=64).
    pub buckets: usize,
    /// A range holding at most this many of our items is sent as a key list (buckets..=256).
    pub id_list_threshold: usize,
    /// Largest message this node sends (4 KiB..=`MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// Most ids this node puts in one fetch (1..=`MAX_WANT_IDS`).
    pub max_want_ids: usize,
    /// Sessions a peer may have open with us at once.
    pub max_sessions_per_peer: usize,
    /// Messages (both directions) after which a session is cut off as misbehaviour.
    pub max_rounds: u32,
    /// Items requested from one peer and not yet arrived.
    pub max_pending_fetches_per_peer: usize,
    /// Items waiting for room in a peer's fetch window; more are forgotten until the next session.
    pub max_queued_fetches_per_peer: usize,
    /// How often a connected peer is reconciled again (jittered by up to 10% either way).
    pub resync_interval: Duration,
    /// How soon the other connected peers are reconciled again after items were learned from one by
    /// sync ([`SyncEngine::relay_soon`]); at most `resync_interval`.
    pub relay_delay: Duration,
    /// How soon a session of ours that timed out is tried again.
    pub retry_delay: Duration,
    /// Silence after which a session is given up.
    pub session_timeout: Duration,
    /// How long a fetched item may take to arrive before it is asked for again.
    pub fetch_timeout: Duration,
    /// How many times one item is asked for before giving up until the next session.
    pub fetch_attempts: u32,
    /// How long an item the I/O layer refused is not asked for again.
    pub refused_ttl: Duration,
    /// Most refused ids remembered.
    pub max_refused: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            buckets: 16,
            id_list_threshold: 32,
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_want_ids: MAX_WANT_IDS,
            max_sessions_per_peer: 2,
            max_rounds: 512,
            max_pending_fetches_per_peer: 4096,
            max_queued_fetches_per_peer: 100_000,
            resync_interval: Duration::from_secs(60),
            relay_delay: Duration::from_secs(2),
            retry_delay: Duration::from_secs(5),
            session_timeout: Duration::from_secs(20),
            fetch_timeout: Duration::from_secs(15),
            fetch_attempts: 3,
            refused_ttl: Duration::from_secs(600),
            max_refused: 10_000,
        }
    }
}

/// A [`Config`] field outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync config field {field} is out of range: {why}")]
pub struct ConfigError {
    pub field: &'static str,
    pub why: &'static str,
}

/// Room for a message's own fields (tag, session, flags, list lengths) beside its ranges and ids.
const HEADER_BYTES: usize = 32;

impl Config {
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field, why| Err(ConfigError { field, why });
        if !(2..=64).contains(&self.buckets) {
            return bad("buckets", "must be 2 to 64");
        }
        if !(self.buckets..=256).contains(&self.id_list_threshold) {
            return bad(
                "id_list_threshold",
                "must be at least buckets and at most 256",
            );
        }
        if !(4096..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return bad("max_message_bytes", "must be 4 KiB to 64 KiB");
        }
        // The largest answer to one range (a key list, or one split) must fit beside a full `lacking`
        // list, or folding could not make progress.
        let piece = (self.id_list_threshold * 35).max(self.buckets * 56) + 128;
        if piece > self.lacking_budget() - HEADER_BYTES {
            return bad(
                "id_list_threshold",
                "a key list or split of that size does not fit in half a message",
            );
        }
        if !(1..=MAX_WANT_IDS).contains(&self.max_want_ids) {
            return bad("max_want_ids", "must be 1 to 1024");
        }
        if self.max_sessions_per_peer == 0 || self.max_pending_fetches_per_peer == 0 {
            return bad("max_sessions_per_peer", "limits must allow at least one");
        }
        if self.max_rounds < 4 || self.fetch_attempts == 0 {
            return bad(
                "max_rounds",
                "must be at least 4, with at least one fetch attempt",
            );
        }
        if self.session_timeout.is_zero() || self.resync_interval.is_zero() {
            return bad("session_timeout", "timeouts and intervals must be positive");
        }
        if self.relay_delay > self.resync_interval {
            return bad("relay_delay", "must be at most resync_interval");
        }
        Ok(())
    }

    fn params(&self) -> Params {
        Params {
            buckets: self.buckets,
            id_list_threshold: self.id_list_threshold,
        }
    }

    /// Bytes of a round reserved for its `lacking` list; the ranges get the rest.
    fn lacking_budget(&self) -> usize {
        self.max_message_bytes / 2
    }
}

/// What the I/O layer must do for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent<P> {
    /// Encode this message ([`Msg::encode`]) and send it to the peer.
    Send(P, Msg),
    /// Ask the peer for these items: send `Msg::Want(ids)` (or the same ids over a request-response
    /// protocol), store what arrives and report each through [`SyncEngine::item_added`] or
    /// [`SyncEngine::item_refused`]. Items that do not arrive are asked for again by `tick`.
    Fetch { peer: P, ids: Vec<ItemId> },
    /// Load these items from the store and send them to the peer, in this order (roster ops first). Ids
    /// no longer stored are skipped.
    Serve { peer: P, ids: Vec<ItemId> },
    /// A session with the peer ended (completed or timed out); for logs and benchmarks.
    Synced { peer: P, stats: SessionStats },
}

/// What one session cost, as seen from this side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Whether this side opened the session.
    pub initiated: bool,
    /// Whether it ended normally (false: timed out).
    pub completed: bool,
    pub messages_sent: u32,
    pub messages_received: u32,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Items this side serves the peer at the end.
    pub pushed: usize,
    /// Items this side found it lacks (named in `lacking` or fetched).
    pub lacking: usize,
    pub started: Duration,
    pub finished: Duration,
}

/// A tiny xorshift64* generator: deterministic from a seed, enough for nonces and jitter.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point; any other constant works.
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0; 0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Ours,
    Theirs,
}

type SessionKey = (Side, u32);

/// The parts of an incoming `Open` or `Round` that a session step needs.
struct Incoming {
    ranges: Vec<Range>,
    lacking: Vec<ItemId>,
    /// Encoded size, for the session's byte count.
    len: usize,
}

#[derive(Debug)]
struct Session {
    /// Our nonce while our opening round is unanswered (for the simultaneous-open tie-break).
    opening: Option<u64>,
    last_active: Duration,
    /// Items the peer provably lacks, sent when the session ends.
    push: BTreeSet<Item>,
    /// Items we already named as lacking in this session, which the peer will push.
    named: BTreeSet<ItemId>,
    stats: SessionStats,
}

impl Session {
    fn new(side: Side, now: Duration) -> Self {
        Self {
            opening: None,
            last_active: now,
            push: BTreeSet::new(),
            named: BTreeSet::new(),
            stats: SessionStats {
                initiated: side == Side::Ours,
                started: now,
                ..SessionStats::default()
            },
        }
    }
}

#[derive(Debug)]
struct Pending {
    kind: ItemKind,
    deadline: Duration,
    attempts: u32,
}

#[derive(Debug)]
struct Peer {
    next_sync: Duration,
    /// When a relay asked for ([`SyncEngine::relay_soon`]) is due: `relay_delay` after the latest ask,
    /// until a session of ours opens (a session that ends meanwhile may have begun before the items
    /// came, so it does not count).
    relay_by: Option<Duration>,
    /// When our last session with it ended (completed or given up).
    last_end: Option<Duration>,
    sessions: BTreeMap<SessionKey, Session>,
    pending: BTreeMap<ItemId, Pending>,
    /// Items to fetch once the window has room, in transfer order.
    queue: BTreeSet<Item>,
}

impl Peer {
    fn new(next_sync: Duration) -> Self {
        Self {
            next_sync,
            relay_by: None,
            last_end: None,
            sessions: BTreeMap::new(),
            pending: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }

    fn has_own_session(&self) -> bool {
        self.sessions.keys().any(|(side, _)| *side == Side::Ours)
    }
}

/// One node's sync state machine, generic over the I/O layer's peer id.
///
/// Every `now` is a monotonic time since an origin the caller picks (e.g. `start.elapsed()` of an
/// `Instant` taken at start-up); the engine only compares and adds them.
///
/// The engine keeps the set of item keys the node stores: seed it with [`SyncEngine::with_items`] from
/// the store at start-up, then report every change (`item_added`, `item_removed`). A message from a peer
/// not announced by `connected` counts as its connection.
pub struct SyncEngine<P> {
    config: Config,
    set: MemorySet,
    peers: BTreeMap<P, Peer>,
    next_session: u32,
    rng: XorShift,
    /// Ids the I/O layer refused, with when they may be asked for again.
    refused: BTreeMap<ItemId, Duration>,
}

impl<P: fmt::Debug> fmt::Debug for SyncEngine<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncEngine")
            .field("items", &self.set.len())
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Ord + fmt::Debug> SyncEngine<P> {
    /// An engine with an empty set; `seed` drives session nonces and resync jitter.
    pub fn new(config: Config, seed: u64) -> Result<Self, ConfigError> {
        Self::with_items(config, seed, [])
    }

    /// An engine that starts with `items` (the keys already in the store).
    pub fn with_items(
        config: Config,
        seed: u64,
        items: impl IntoIterator<Item = Item>,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        Ok(Self {
            config,
            set: items.into_iter().collect(),
            peers: BTreeMap::new(),
            next_session: 0,
            rng: XorShift::new(seed),
            refused: BTreeMap::new(),
        })
    }

    /// The keys this node stores, as the engine knows them.
    pub fn items(&self) -> &MemorySet {
        &self.set
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a session with `peer` (opened by either side) is in progress.
    pub fn is_syncing(&self, peer: &P) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.sessions.is_empty())
    }

    /// A connection to `peer` is up: reconcile with it now.
    pub fn connected(&mut self, peer: P, now: Duration) -> Vec<Intent<P>> {
        let mut out = Vec::new();
        if self.peers.contains_key(&peer) {
            return out;
        }
        let mut st = Peer::new(now);
        self.open(&peer, &mut st, now, &mut out);
        self.peers.insert(peer, st);
        out
    }

    /// The connection is gone: its sessions and fetches are dropped (the next connection reconciles
    /// again, so nothing learned is lost for good).
    pub fn disconnected(&mut self, peer: &P) {
        self.peers.remove(peer);
    }

    /// Decodes and handles a message; see [`SyncEngine::received`].
    pub fn received_bytes(
        &mut self,
        peer: &P,
        bytes: &[u8],
        now: Duration,
    ) -> Result<Vec<Intent<P>>, SyncError> {
        let msg = Msg::decode(bytes)?;
        self.received(peer, msg, now)
    }

    /// Handles a message from `peer`. An error means the peer broke the protocol or a limit; the message
    /// was ignored and the I/O layer may penalise the peer.
    pub fn received(
        &mut self,
        peer: &P,
        msg: Msg,
        now: Duration,
    ) -> Result<Vec<Intent<P>>, SyncError> {
        let len = msg.encoded_len();
        if len > MAX_MESSAGE_BYTES {
            return Err(SyncError::TooLarge {
                len,
                max: MAX_MESSAGE_BYTES,
            });
        }
        msg.validate()?;
        let mut out = Vec::new();
        let mut st = match self.peers.remove(peer) {
            Some(st) => st,
            None => {
                let next = now + self.jittered(self.config.resync_interval);
                Peer::new(next)
            }
        };
        let result = self.handle(peer, &mut st, msg, len, now, &mut out);
        self.peers.insert(peer.clone(), st);
        result.map(|()| out)
    }

    /// Periodic work: session timeouts, fetch retries, and re-reconciliation of peers that are due.
    /// Call it about once a second.
    pub fn tick(&mut self, now: Duration) -> Vec<Intent<P>> {
        let mut out = Vec::new();
        self.refused.retain(|_, until| *until > now);
        let keys: Vec<P> = self.peers.keys().cloned().collect();
        for key in keys {
            let Some(mut st) = self.peers.remove(&key) else {
                continue;
            };
            let timeout = self.config.session_timeout;
            let stale: Vec<SessionKey> = st
                .sessions
                .iter()
                .filter(|(_, s)| s.last_active + timeout <= now)
                .map(|(k, _)| *k)
                .collect();
            for sk in stale {
                self.finish(&key, &mut st, sk, now, false, &mut out);
            }
            self.retry_fetches(&key, &mut st, now, &mut out);
            self.pump(&key, &mut st, now, &mut out);
            let due = match st.relay_by {
                Some(relay) => st.next_sync.min(self.relay_time(&st, relay)),
                None => st.next_sync,
            };
            if !st.has_own_session() && now >= due {
                st.relay_by = None;
                self.open(&key, &mut st, now, &mut out);
            }
            self.peers.insert(key, st);
        }
        out
    }

    /// Items were just learned from `source` by sync (not by gossip, which reaches every connected peer
    /// by itself): every other connected peer is reconciled again [`Config::relay_delay`] after the last
    /// such call, instead of at its next resync, so an edit made offline, or missed during a partition,
    /// crosses a mesh of connected nodes hop by hop in seconds. The delay restarts at each call, so the
    /// batches of a first sync bring one session per peer, after the last of them (or at the peer's
    /// regular resync, whichever comes first); and it never opens sooner than `session_timeout` after
    /// our last session with that peer ended (`relay_time`).
    pub fn relay_soon(&mut self, source: &P, now: Duration) {
        let due = now + self.config.relay_delay;
        for (peer, st) in &mut self.peers {
            if peer != source {
                st.relay_by = Some(due);
            }
        }
    }

    /// When a relay due at `due` may open a session with a peer: not before the peer has surely closed
    /// our last session with it too (it times it out after `session_timeout` at the latest), so that
    /// relays never stack sessions beyond its limit, whatever was lost on the way.
    fn relay_time(&self, st: &Peer, due: Duration) -> Duration {
        match st.last_end {
            Some(end) => due.max(end + self.config.session_timeout + self.config.relay_delay),
            None => due,
        }
    }

    /// The store now holds `item` (received from any peer, or created here).
    pub fn item_added(&mut self, item: Item) {
        self.set.insert(item);
        self.refused.remove(&item.id);
        for st in self.peers.values_mut() {
            st.pending.remove(&item.id);
            st.queue.remove(&item);
        }
    }

    /// The store dropped `item` (a seat beacon replaced by a newer one, an expired beacon).
    pub fn item_removed(&mut self, item: &Item) {
        self.set.remove(item);
    }

    /// An item arrived but was not stored (invalid, or older than what the store holds): stop waiting
    /// for it, and do not ask for it again for `refused_ttl`.
    pub fn item_refused(&mut self, id: ItemId, now: Duration) {
        self.item_deferred(id, now, self.config.refused_ttl);
    }

    /// An item arrived but could not be stored for now (a rate limit that refills): stop waiting for it,
    /// and do not ask for it again for `wait`.
    pub fn item_deferred(&mut self, id: ItemId, now: Duration, wait: Duration) {
        for st in self.peers.values_mut() {
            st.pending.remove(&id);
            st.queue.retain(|it| it.id != id);
        }
        if self.refused.len() >= self.config.max_refused {
            self.refused.pop_first();
        }
        self.refused.insert(id, now + wait);
    }

    /// Asks `peer` for these items (e.g. a dependency the I/O layer found missing). Items already stored,
    /// refused, or already asked for are skipped; the rest wait for room in the peer's window.
    pub fn fetch(&mut self, peer: &P, items: &[Item], now: Duration) -> Vec<Intent<P>> {
        let mut out = Vec::new();
        let Some(mut st) = self.peers.remove(peer) else {
            return out;
        };
        self.enqueue(&mut st, items.iter().copied());
        self.pump(peer, &mut st, now, &mut out);
        self.peers.insert(peer.clone(), st);
        out
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let pct = 90 + self.rng.below(21) as u32;
        d * pct / 100
    }

    fn open(&mut self, key: &P, st: &mut Peer, now: Duration, out: &mut Vec<Intent<P>>) {
        let session = self.next_session;
        self.next_session = self.next_session.wrapping_add(1);
        let nonce = self.rng.next_u64();
        let msg = Msg::Open {
            session,
            nonce,
            ranges: reconcile::open(&self.set, &self.config.params()),
        };
        let mut s = Session::new(Side::Ours, now);
        s.opening = Some(nonce);
        s.stats.messages_sent = 1;
        s.stats.bytes_sent = msg.encoded_len();
        st.sessions.insert((Side::Ours, session), s);
        out.push(Intent::Send(key.clone(), msg));
    }

    fn handle(
        &mut self,
        key: &P,
        st: &mut Peer,
        msg: Msg,
        len: usize,
        now: Duration,
        out: &mut Vec<Intent<P>>,
    ) -> Result<(), SyncError> {
        match msg {
            Msg::Open {
                session,
                nonce,
                ranges,
            } => {
                let sk = (Side::Theirs, session);
                if st.sessions.contains_key(&sk) {
                    // A repeated opening: the session is already running.
                    return Ok(());
                }
                let open = st
                    .sessions
                    .keys()
                    .filter(|(s, _)| *s == Side::Theirs)
                    .count();
                if open >= self.config.max_sessions_per_peer {
                    return Err(SyncError::TooManySessions {
                        max: self.config.max_sessions_per_peer,
                    });
                }
                // Both sides opened at once: the larger nonce goes on, the other side drops its own.
                let ours = st
                    .sessions
                    .iter()
                    .find_map(|(k, s)| s.opening.map(|n| (*k, n)));
                if let Some((ours_key, our_nonce)) = ours {
                    if nonce < our_nonce {
                        return Ok(());
                    }
                    if nonce > our_nonce {
                        st.sessions.remove(&ours_key);
                        // Theirs reconciles both ways: ours is not opened again at the next tick (it
                        // would run beside theirs) but at the next resync (theirs completing moves that
                        // a resync later again; theirs failing leaves the peer to retry).
                        st.next_sync = now + self.jittered(self.config.resync_interval);
                    }
                }
                st.sessions.insert(sk, Session::new(Side::Theirs, now));
                let round = Incoming {
                    ranges,
                    lacking: Vec::new(),
                    len,
                };
                self.step(key, st, sk, round, now, out)
            }
            Msg::Round {
                session,
                initiator,
                ranges,
                lacking,
            } => {
                let side = if initiator { Side::Theirs } else { Side::Ours };
                let sk = (side, session);
                if !st.sessions.contains_key(&sk) {
                    // A late round of a session that timed out or was dropped: harmless.
                    return Ok(());
                }
                let round = Incoming {
                    ranges,
                    lacking,
                    len,
                };
                self.step(key, st, sk, round, now, out)
            }
            Msg::Want(ids) => {
                if ids.len() > MAX_WANT_IDS {
                    return Err(SyncError::WantTooLarge {
                        count: ids.len(),
                        max: MAX_WANT_IDS,
                    });
                }
                let mut items: Vec<Item> = ids.iter().filter_map(|id| self.set.get(id)).collect();
                items.sort_unstable();
                items.dedup();
                if !items.is_empty() {
                    out.push(Intent::Serve {
                        peer: key.clone(),
                        ids: items.iter().map(|it| it.id).collect(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Handles one round of session `sk` and sends our answer.
    fn step(
        &mut self,
        key: &P,
        st: &mut Peer,
        sk: SessionKey,
        Incoming {
            ranges,
            lacking,
            len,
        }: Incoming,
        now: Duration,
        out: &mut Vec<Intent<P>>,
    ) -> Result<(), SyncError> {
        let max_rounds = self.config.max_rounds;
        let Some(s) = st.sessions.get_mut(&sk) else {
            return Ok(());
        };
        s.opening = None;
        s.last_active = now;
        s.stats.messages_received += 1;
        s.stats.bytes_received += len;
        if s.stats.messages_received + s.stats.messages_sent > max_rounds {
            st.sessions.remove(&sk);
            if sk.0 == Side::Ours {
                // Not again at the next tick, into the same wall: at the next resync. The peer may
                // still hold the session, so a relay waits as after any other session of ours.
                st.next_sync = now + self.jittered(self.config.resync_interval);
                st.last_end = Some(now);
            }
            return Err(SyncError::TooManyRounds { max: max_rounds });
        }
        // The peer lacks these among what we listed; ids we do not hold (any more) are ignored.
        s.push
            .extend(lacking.iter().filter_map(|id| self.set.get(id)));
        if !ranges.iter().any(|r| r.mode.needs_answer()) {
            self.finish(key, st, sk, now, true, out);
            return Ok(());
        }

        let mut ans = reconcile::answer(&self.set, &ranges, &self.config.params());
        s.push.extend(ans.push.iter().copied());
        // What we lack goes in this round's `lacking` while it fits; the rest is fetched. Items already
        // on their way (a fold can show a range twice) are not asked for again.
        let mut want: Vec<Item> = ans
            .lacking
            .iter()
            .filter(|it| {
                !self.set.contains(it)
                    && !self.refused.contains_key(&it.id)
                    && !s.named.contains(&it.id)
                    && !st.pending.contains_key(&it.id)
                    && !st.queue.contains(it)
            })
            .copied()
            .collect();
        want.sort_unstable();
        want.dedup();
        s.stats.lacking += want.len();
        let room = self.config.lacking_budget() / 32;
        let overflow = want.split_off(want.len().min(room));
        s.named.extend(want.iter().map(|it| it.id));
        let budget = self.config.max_message_bytes - HEADER_BYTES - 32 * want.len();
        let reply = Msg::Round {
            session: sk.1,
            initiator: sk.0 == Side::Ours,
            ranges: ans.ranges(&self.set, budget),
            lacking: want.iter().map(|it| it.id).collect(),
        };
        let ends = match &reply {
            Msg::Round { ranges, .. } => !ranges.iter().any(|r| r.mode.needs_answer()),
            _ => true,
        };
        s.stats.messages_sent += 1;
        s.stats.bytes_sent += reply.encoded_len();
        debug_assert!(reply.encoded_len() <= self.config.max_message_bytes);
        out.push(Intent::Send(key.clone(), reply));
        if ends {
            self.finish(key, st, sk, now, true, out);
        }
        if !overflow.is_empty() {
            self.enqueue(st, overflow);
            self.pump(key, st, now, out);
        }
        Ok(())
    }

    /// Ends session `sk`: serves what the peer lacks, schedules the next session, reports the cost.
    fn finish(
        &mut self,
        key: &P,
        st: &mut Peer,
        sk: SessionKey,
        now: Duration,
        completed: bool,
        out: &mut Vec<Intent<P>>,
    ) {
        let Some(mut s) = st.sessions.remove(&sk) else {
            return;
        };
        // BTreeSet order is key order: roster ops, then listing changes, then beacons.
        let ids: Vec<ItemId> = s
            .push
            .iter()
            .filter(|it| self.set.contains(it))
            .map(|it| it.id)
            .collect();
        s.stats.pushed = ids.len();
        s.stats.completed = completed;
        s.stats.finished = now;
        if !ids.is_empty() {
            out.push(Intent::Serve {
                peer: key.clone(),
                ids,
            });
        }
        if sk.0 == Side::Ours {
            st.last_end = Some(now);
        }
        if completed {
            st.next_sync = now + self.jittered(self.config.resync_interval);
        } else if sk.0 == Side::Ours {
            st.next_sync = now + self.config.retry_delay;
        }
        out.push(Intent::Synced {
            peer: key.clone(),
            stats: s.stats,
        });
    }

    /// Queues items to fetch from a peer, skipping what is stored, refused or already on its way.
    fn enqueue(&self, st: &mut Peer, items: impl IntoIterator<Item = Item>) {
        for item in items {
            if st.queue.len() >= self.config.max_queued_fetches_per_peer {
                break;
            }
            let known = self.set.contains(&item)
                || self.refused.contains_key(&item.id)
                || st.pending.contains_key(&item.id)
                || self
                    .peers
                    .values()
                    .any(|p| p.pending.contains_key(&item.id) || p.queue.contains(&item));
            if !known {
                st.queue.insert(item);
            }
        }
    }

    /// Moves queued items into the fetch window. A kind is only started once no earlier kind is
    /// outstanding, so roster ops arrive before the listing changes that need them.
    fn pump(&self, key: &P, st: &mut Peer, now: Duration, out: &mut Vec<Intent<P>>) {
        loop {
            let room = self
                .config
                .max_pending_fetches_per_peer
                .saturating_sub(st.pending.len())
                .min(self.config.max_want_ids);
            let Some(kind) = st.queue.first().map(|it| it.kind) else {
                break;
            };
            let earlier_pending = st.pending.values().any(|p| p.kind < kind);
            if room == 0 || earlier_pending {
                break;
            }
            let mut ids = Vec::new();
            while ids.len() < room {
                match st.queue.first() {
                    Some(it) if it.kind == kind => {
                        let it = *it;
                        st.queue.remove(&it);
                        if self.set.contains(&it) {
                            continue;
                        }
                        st.pending.insert(
                            it.id,
                            Pending {
                                kind,
                                deadline: now + self.config.fetch_timeout,
                                attempts: 1,
                            },
                        );
                        ids.push(it.id);
                    }
                    _ => break,
                }
            }
            if !ids.is_empty() {
                out.push(Intent::Fetch {
                    peer: key.clone(),
                    ids,
                });
            }
        }
    }

    /// Asks again for items overdue from this peer, or gives up on them after `fetch_attempts`.
    fn retry_fetches(&self, key: &P, st: &mut Peer, now: Duration, out: &mut Vec<Intent<P>>) {
        let mut again: Vec<Item> = Vec::new();
        st.pending.retain(|id, p| {
            if p.deadline > now {
                return true;
            }
            if p.attempts >= self.config.fetch_attempts {
                return false;
            }
            p.attempts += 1;
            p.deadline = now + self.config.fetch_timeout;
            again.push(Item::new(p.kind, *id));
            true
        });
        again.sort_unstable();
        for chunk in again.chunks(self.config.max_want_ids) {
            out.push(Intent::Fetch {
                peer: key.clone(),
                ids: chunk.iter().map(|it| it.id).collect(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{Mode, VERSION};
    use crate::{Bound, Fingerprint, KeyRange};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn item(kind: ItemKind, n: u32) -> Item {
        let mut id = [0u8; 32];
        // Spread ids over key space the way content hashes are, deterministically.
        let mut rng = XorShift::new(u64::from(n) + 1);
        for chunk in id.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Item::new(kind, ItemId(id))
    }

    fn engine(items: impl IntoIterator<Item = Item>) -> SyncEngine<&'static str> {
        SyncEngine::with_items(Config::default(), 7, items).expect("default config is valid")
    }

    fn sends(out: &[Intent<&'static str>]) -> Vec<Msg> {
        out.iter()
            .filter_map(|i| match i {
                Intent::Send(_, m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn pool_item(n: u32) -> Item {
        item(ItemKind::ALL[n as usize % ItemKind::ALL.len()], n)
    }

    /// Messages that pass validation but say anything: random bounds, modes, key lists and lacking ids,
    /// drawn from a pool that overlaps the engine's own items.
    fn arb_msg() -> impl Strategy<Value = Msg> {
        let bound = proptest::collection::vec(any::<u8>(), 1..4).prop_map(|mut v| {
            v[0] %= 3;
            v
        });
        let ranges = (
            proptest::collection::vec(bound, 0..20),
            proptest::collection::vec(0u8..3, 21),
            proptest::collection::vec(0u32..400, 0..60),
            any::<[u8; 16]>(),
        )
            .prop_map(|(bounds, modes, picks, fp)| {
                let mut bounds: Vec<Bound> = bounds.into_iter().map(Bound::Prefix).collect();
                bounds.sort_by(|a, b| a.cmp_point(b));
                bounds.dedup_by(|a, b| a.cmp_point(b).is_eq());
                bounds.retain(|b| b.cmp_point(&Bound::MIN).is_gt());
                bounds.push(Bound::End);
                let mut pool: Vec<Item> = picks.into_iter().map(pool_item).collect();
                pool.sort();
                pool.dedup();
                let mut lower = Bound::MIN;
                let mut ranges = Vec::new();
                for (upper, mode) in bounds.into_iter().zip(modes) {
                    let span = KeyRange::new(lower, upper.clone());
                    let mode = match mode {
                        0 => Mode::Skip,
                        1 => Mode::Fingerprint(Fingerprint(fp)),
                        _ => Mode::IdList(
                            pool.iter()
                                .filter(|it| span.contains(it))
                                .copied()
                                .collect(),
                        ),
                    };
                    ranges.push(Range { upper, mode });
                    lower = span.upper;
                }
                ranges
            });
        let ids = proptest::collection::vec(0u32..400, 0..40).prop_map(|picks| {
            picks
                .into_iter()
                .map(|n| pool_item(n).id)
                .collect::<Vec<_>>()
        });
        prop_oneof![
            (0u32..3, any::<u64>(), ranges.clone()).prop_map(|(session, nonce, ranges)| {
                Msg::Open {
                    session,
                    nonce,
                    ranges,
                }
            }),
            (0u32..3, any::<bool>(), ranges, ids.clone()).prop_map(
                |(session, initiator, ranges, lacking)| Msg::Round {
                    session,
                    initiator,
                    ranges,
                    lacking
                }
            ),
            ids.prop_map(Msg::Want),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any sequence of well-formed but arbitrary messages is handled without a panic, and whatever the
        /// engine sends in reply is itself valid and within the size limit.
        #[test]
        fn arbitrary_valid_messages_never_break_the_engine(msgs in proptest::collection::vec(arb_msg(), 1..12)) {
            let mut e = engine((0..300).map(pool_item));
            e.connected("p", secs(0));
            for (i, m) in msgs.into_iter().enumerate() {
                let now = secs(i as u64);
                let mut out = e.received(&"p", m, now).unwrap_or_default();
                out.extend(e.tick(now));
                for intent in out {
                    if let Intent::Send(_, msg) = intent {
                        prop_assert!(msg.encoded_len() <= MAX_MESSAGE_BYTES);
                        prop_assert_eq!(msg.validate(), Ok(()));
                    }
                }
            }
        }
    }

    #[test]
    fn config_limits_are_checked() {
        let bad = Config {
            buckets: 1,
            ..Config::default()
        };
        let err = SyncEngine::<u8>::new(bad, 1).expect_err("one bucket cannot split");
        assert_eq!(err.field, "buckets");
        let bad = Config {
            max_want_ids: MAX_WANT_IDS + 1,
            ..Config::default()
        };
        assert!(SyncEngine::<u8>::new(bad, 1).is_err());
    }

    #[test]
    fn want_is_served_in_kind_order_and_capped() {
        let roster = item(ItemKind::RosterOp, 1);
        let listing = item(ItemKind::ListingChange, 2);
        let mut e = engine([roster, listing]);
        let out = e
            .received(
                &"p",
                Msg::Want(vec![listing.id, ItemId([9; 32]), roster.id]),
                secs(0),
            )
            .expect("a small want is fine");
        assert_eq!(
            out,
            vec![Intent::Serve {
                peer: "p",
                ids: vec![roster.id, listing.id]
            }]
        );
        let err = e
            .received(
                &"p",
                Msg::Want(vec![ItemId([1; 32]); MAX_WANT_IDS + 1]),
                secs(0),
            )
            .expect_err("too many ids");
        assert_eq!(
            err.to_string(),
            "peer asked for 1025 items in one request but the limit is 1024"
        );
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        let mut e = engine([]);
        assert!(matches!(
            e.received_bytes(&"p", &[VERSION, 0xff, 0xff, 0xff], secs(0)),
            Err(SyncError::Malformed(_))
        ));
        assert!(matches!(
            e.received_bytes(&"p", &[VERSION + 1], secs(0)),
            Err(SyncError::Version(_))
        ));
    }

    #[test]
    fn a_peer_cannot_open_unbounded_sessions() {
        let mut e = engine((0..100).map(|n| item(ItemKind::ListingChange, n)));
        // Fingerprints that never match keep each session open.
        let open = |session| Msg::Open {
            session,
            nonce: 1,
            ranges: vec![Range {
                upper: crate::Bound::End,
                mode: Mode::Fingerprint(crate::Fingerprint([0; 16])),
            }],
        };
        assert!(e.received(&"p", open(1), secs(0)).is_ok());
        assert!(e.received(&"p", open(2), secs(0)).is_ok());
        assert_eq!(
            e.received(&"p", open(3), secs(0)),
            Err(SyncError::TooManySessions { max: 2 })
        );
        // Another peer is not affected, and timeouts free the slots.
        assert!(e.received(&"q", open(1), secs(0)).is_ok());
        e.tick(secs(60));
        assert!(e.received(&"p", open(3), secs(61)).is_ok());
    }

    #[test]
    fn a_session_cannot_run_forever() {
        let cfg = Config {
            max_rounds: 6,
            ..Config::default()
        };
        let mut e: SyncEngine<&str> =
            SyncEngine::with_items(cfg, 1, (0..1000).map(|n| item(ItemKind::SeatBeacon, n)))
                .expect("valid");
        let bogus = |session, initiator| Msg::Round {
            session,
            initiator,
            ranges: vec![Range {
                upper: crate::Bound::End,
                mode: Mode::Fingerprint(crate::Fingerprint([0; 16])),
            }],
            lacking: vec![],
        };
        let first = e.connected("p", secs(0));
        let Some(Msg::Open { session, .. }) = sends(&first).first().cloned() else {
            panic!("connecting opens a session");
        };
        let mut result = Ok(Vec::new());
        for _ in 0..4 {
            result = e.received(&"p", bogus(session, false), secs(1));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SyncError::TooManyRounds { max: 6 }));
        assert!(!e.is_syncing(&"p"));
        // Nor is one opened again at once, to run into the same wall every second.
        let reopened = sends(&e.tick(secs(2)))
            .iter()
            .any(|m| matches!(m, Msg::Open { .. }));
        assert!(
            !reopened,
            "a session cut off was opened again at the next tick"
        );
    }

    /// A relay never opens a session sooner than `session_timeout` (and the relay delay) after our last
    /// session with that peer ended, so the peer, which may still hold that one, never holds more than
    /// its limit; then it opens one, once, and the source of the items gets none.
    #[test]
    fn a_relay_waits_for_the_last_session_to_be_surely_closed() {
        let items: Vec<Item> = (0..40).map(|n| item(ItemKind::ListingChange, n)).collect();
        let mut a = engine(items.iter().copied());
        let mut b = engine(items.iter().copied());
        // A session of ours with "b" runs to completion at t = 0 (equal sets: one round each way).
        let mut to_b = sends(&a.connected("b", secs(0)));
        while !to_b.is_empty() {
            let mut to_a = Vec::new();
            for m in to_b {
                to_a.extend(sends(&b.received(&"a", m, secs(0)).expect("valid")));
            }
            to_b = Vec::new();
            for m in to_a {
                to_b.extend(sends(&a.received(&"b", m, secs(0)).expect("valid")));
            }
        }
        assert!(!a.is_syncing(&"b"), "the session with b completed");
        a.connected("c", secs(0));
        // Items came from "c" by sync at t = 1 s.
        a.relay_soon(&"c", secs(1));
        let opens_to = |out: &[Intent<&'static str>], peer: &str| {
            out.iter()
                .filter(|i| matches!(i, Intent::Send(p, Msg::Open { .. }) if *p == peer))
                .count()
        };
        let timeout = Config::default().session_timeout.as_secs();
        let relay = Config::default().relay_delay.as_secs();
        for t in 1..timeout + relay {
            let out = a.tick(secs(t));
            assert_eq!(opens_to(&out, "b"), 0, "a relay opened at {t} s");
        }
        let out = a.tick(secs(timeout + relay));
        assert_eq!(opens_to(&out, "b"), 1, "the relay never opened");
        assert_eq!(opens_to(&out, "c"), 0, "the source got a relay");
        let out = a.tick(secs(timeout + relay + 1));
        assert_eq!(opens_to(&out, "b"), 0, "the relay opened twice");
    }

    #[test]
    fn simultaneous_opens_leave_one_session() {
        let mut a = engine((0..50).map(|n| item(ItemKind::RosterOp, n)));
        let mut b: SyncEngine<&str> = SyncEngine::with_items(
            Config::default(),
            8,
            (25..75).map(|n| item(ItemKind::RosterOp, n)),
        )
        .expect("valid");
        let to_b = sends(&a.connected("b", secs(0)));
        let to_a = sends(&b.connected("a", secs(0)));
        let (Some(Msg::Open { nonce: na, .. }), Some(Msg::Open { nonce: nb, .. })) =
            (to_b.first(), to_a.first())
        else {
            panic!("both sides open");
        };
        assert_ne!(na, nb);
        let at_b = b.received(&"a", to_b[0].clone(), secs(0)).expect("valid");
        let at_a = a.received(&"b", to_a[0].clone(), secs(0)).expect("valid");
        // Exactly one side answers; the other ignored the smaller nonce.
        assert_eq!(sends(&at_b).len() + sends(&at_a).len(), 1);
        // The side whose session was dropped does not open another beside the one running.
        let opens = |out: Vec<Intent<&'static str>>| {
            sends(&out)
                .iter()
                .filter(|m| matches!(m, Msg::Open { .. }))
                .count()
        };
        assert_eq!(opens(a.tick(secs(1))) + opens(b.tick(secs(1))), 0);
    }

    #[test]
    fn fetches_respect_the_window_kind_order_and_retry_then_give_up() {
        let cfg = Config {
            max_pending_fetches_per_peer: 3,
            max_want_ids: 2,
            fetch_attempts: 2,
            ..Config::default()
        };
        let mut e: SyncEngine<&str> = SyncEngine::new(cfg, 3).expect("valid");
        e.connected("p", secs(0));
        let roster: Vec<Item> = (0..2).map(|n| item(ItemKind::RosterOp, n)).collect();
        let listing: Vec<Item> = (10..14).map(|n| item(ItemKind::ListingChange, n)).collect();
        let all: Vec<Item> = listing.iter().chain(&roster).copied().collect();
        let fetched = |out: &[Intent<&str>]| -> Vec<ItemId> {
            out.iter()
                .flat_map(|i| match i {
                    Intent::Fetch { ids, .. } => ids.clone(),
                    _ => vec![],
                })
                .collect()
        };
        let out = e.fetch(&"p", &all, secs(1));
        // Roster ops first, and no listing change while a roster op is outstanding.
        let mut roster_ids: Vec<ItemId> = roster.iter().map(|it| it.id).collect();
        roster_ids.sort();
        let mut got = fetched(&out);
        got.sort();
        assert_eq!(got, roster_ids);
        e.item_added(roster[0]);
        e.item_added(roster[1]);
        let out = e.tick(secs(2));
        let got = fetched(&out);
        assert_eq!(got.len(), 3, "the window holds three: {got:?}");
        assert!(got.iter().all(|id| listing.iter().any(|it| it.id == *id)));
        // Nothing arrives: asked again once, then given up; the fourth listing change fills the window.
        let retry = fetched(&e.tick(secs(2) + e.config().fetch_timeout));
        assert_eq!(retry.len(), 3);
        let after = fetched(&e.tick(secs(3) + e.config().fetch_timeout * 2));
        assert_eq!(after.len(), 1);
        // A refused item is not asked for again.
        e.item_refused(after[0], secs(40));
        assert!(fetched(&e.fetch(&"p", &listing, secs(41)))
            .iter()
            .all(|id| *id != after[0]));
        // One held back for a while (a rate limit) is asked for again once the wait is over, and not
        // before; the refused one still is not.
        let later = listing
            .iter()
            .map(|it| it.id)
            .find(|id| *id != after[0])
            .unwrap();
        e.item_deferred(later, secs(50), secs(30));
        e.tick(secs(79));
        let asked = fetched(&e.fetch(&"p", &listing, secs(79)));
        assert!(!asked.contains(&later), "{asked:?}");
        e.tick(secs(81));
        let asked = fetched(&e.fetch(&"p", &listing, secs(81)));
        assert!(asked.contains(&later), "{asked:?}");
        assert!(!asked.contains(&after[0]), "{asked:?}");
    }
}
