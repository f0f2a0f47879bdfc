//! The event loop of `deskmesh run`: one task owns the libp2p swarm, the opened node and the sync engine.
//! It turns swarm events into engine events, hands every received item to the node's one ingest path
//! ([`Node::ingest`]) before gossip is forwarded, executes the engine's intents (sync messages, item
//! pushes, fetches), and answers control-socket requests through the core's dispatcher
//! ([`deskmesh_core::api::serve`]), announcing at once whatever a request signed or imported.
//!
//! It also carries out the NAT policy of [`super::nat`] (listening through relays, logging reservations,
//! circuits and hole punches) and the per-space change budget of [`super::limits`]: a listing change over
//! it is not stored and its gossip message is ignored, not rejected, since an honest peer may relay a burst.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deskmesh_core::api::{self, ApiError, Request as ApiRequest, Response};
use deskmesh_core::ingest::{
    self, Accepted, At, Checked, Made, Outcome, SignedItem, Source, Verdict,
};
use deskmesh_core::view::{CatchingUp, Event, NodeStatus, PeerInfo, Reachability};
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::{self, SignedBeacon};
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_keys::{Hash, SpaceId};
use deskmesh_sync::{Config, Intent, Item, ItemId, ItemKind, SyncEngine};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    autonat, dcutr, gossipsub, identify, kad, mdns, ping, relay, Multiaddr, PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc};

use super::behaviour::{self, Behaviour, BehaviourEvent, Reply, Request, WireItem};
use super::peers::{PeerBook, Target};
use super::trust::{self, Trust};
use super::{limits, nat, RunOptions};
use crate::control::server::{self as control, Call};
use deskmesh_core::home::Home;

/// Item batches in flight to one peer at once; the rest wait in its outbox, so a large transfer neither
/// exceeds the peer's stream limit (which drops requests) nor overtakes the roster operations it needs.
const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Item batches checked (or being checked) ahead of the one being judged. A checked batch holds what
/// checking decoded (a checkpoint's loaded document, a first change's document), tens of times its wire
/// size, so batches past these wait as wire items: on a cold join the checks would otherwise run through
/// the whole directory ahead of the event loop and hold it all decoded at once.
const MAX_CHECKED_AHEAD: usize = 2;

/// How often a running audit tells subscribers how far it got ([`Event::AuditProgress`]).
const AUDIT_PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Items queued for one peer (ids only: their bytes are read when their batch is sent); more are dropped
/// and asked for again at the next session. An id already queued is not queued twice.
const MAX_OUTBOX_ITEMS: usize = 200_000;
/// Items a stranger (neither a roster device nor a proven member) may be served at once, and how many
/// more it may have per minute: enough for a member whose proof is a moment late, too few to be worth
/// asking for again and again.
const STRANGER_BURST: f64 = 64.0;
const STRANGER_PER_MINUTE: f64 = 60.0;
/// How long a peer that is not a roster device has to prove itself a member (in identify, which normally
/// comes within a round trip) before its sync messages are handled as a stranger's.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// Pings that fail in a row before a connection is closed as dead (a ping every
/// [`behaviour::PING_INTERVAL`], each allowed [`behaviour::PING_TIMEOUT`]).
const MAX_PING_FAILURES: u32 = 2;
/// Peers the node dials on its own when it learns of them (DHT, mDNS); more only when they dial us.
const MAX_AUTO_DIAL: usize = 32;
/// Spaces named one per log line at info level when a batch of changes arrives; more go to debug.
const PER_SPACE_LOG_LINES: usize = 8;
/// Items a request may make (an import) that are still gossiped one by one; peers get larger imports at
/// the next reconciliation.
const MAX_GOSSIPED_PER_REQUEST: usize = 64;

/// Where the store keeps an item, so it can be served by id.
#[derive(Clone, Debug)]
enum Location {
    Roster,
    Checkpoint(SpaceId),
    Change(SpaceId),
    Beacon(SpaceId, String),
    Verification(SpaceId),
    /// A proposal: found among the few the store holds by its item id.
    Proposal,
}

/// Every item a store holds, as [`scan`] read it: its id, where it is, and whether it is offered to
/// sync.
struct Scanned {
    items: Vec<(ItemId, Location, bool)>,
    /// Each seat beacon's last moment of saying anything ([`beacon::says_nothing_after_ms`]); a beacon
    /// whose bytes do not decode has none and is offered as before.
    beacon_until: HashMap<ItemId, i64>,
}

impl Location {
    /// The kind of item kept there.
    fn kind(&self) -> ItemKind {
        match self {
            Location::Roster => ItemKind::RosterOp,
            Location::Checkpoint(_) => ItemKind::Checkpoint,
            Location::Change(_) => ItemKind::ListingChange,
            Location::Beacon(..) => ItemKind::SeatBeacon,
            Location::Verification(_) => ItemKind::Verification,
            Location::Proposal => ItemKind::Proposal,
        }
    }
}

/// Reads the id and place of every item in the store, for the sync engine's set and the daemon's index.
/// It needs only the store, so the daemon runs it on another thread while it reads the directory into
/// memory (at 10,000 spaces it reads ~49,000 items). Changes a kept checkpoint covers are not offered.
fn scan(store: &dyn deskmesh_store::Store) -> anyhow::Result<Scanned> {
    let mut items = Vec::new();
    for (hash, _) in store.ops()? {
        items.push((ItemId(hash.0), Location::Roster, true));
    }
    for (space, hash, _) in store.checkpoints()? {
        items.push((ItemId(hash.0), Location::Checkpoint(space), true));
    }
    let covered: std::collections::HashSet<(SpaceId, [u8; 32])> =
        store.covered()?.into_iter().collect();
    for space in store.spaces()? {
        for hash in store.change_hashes(&space)? {
            let offered = !covered.contains(&(space.clone(), hash));
            items.push((ItemId(hash), Location::Change(space.clone()), offered));
        }
    }
    let mut beacon_until = HashMap::new();
    for (space, pool, bytes) in store.beacons()? {
        let id = ItemId(Hash::of(ingest::BEACON_ITEM, &bytes).0);
        if let Some(until) = beacon_says_until(&bytes) {
            beacon_until.insert(id, until);
        }
        items.push((id, Location::Beacon(space, pool), true));
    }
    for (space, hash, _) in store.verifications()? {
        items.push((ItemId(hash.0), Location::Verification(space), true));
    }
    for (_, bytes) in store.proposals()? {
        let id = ItemId(Hash::of(ingest::PROPOSAL_ITEM, &bytes).0);
        items.push((id, Location::Proposal, true));
    }
    Ok(Scanned {
        items,
        beacon_until,
    })
}

/// Offered seat beacons by the last moment each says anything, soonest first. A replaced beacon's entry
/// stays until its own time comes (the caller checks, when an entry is due, whether its beacon is still
/// kept), unless replaced ones pile up ([`BeaconExpiry::compact`]).
#[derive(Default)]
struct BeaconExpiry(std::collections::BinaryHeap<std::cmp::Reverse<(i64, ItemId)>>);

impl BeaconExpiry {
    fn push(&mut self, until: i64, id: ItemId) {
        self.0.push(std::cmp::Reverse((until, id)));
    }

    /// Takes out every entry whose time is before `now_ms`, soonest first.
    fn due(&mut self, now_ms: i64) -> Vec<ItemId> {
        let mut out = Vec::new();
        while let Some(std::cmp::Reverse((until, id))) = self.0.peek().copied() {
            if until >= now_ms {
                break;
            }
            self.0.pop();
            out.push(id);
        }
        out
    }

    /// Once entries outnumber twice the `kept` beacons (plus some slack), keeps only those `is_kept`
    /// says are still kept: a space publishing often with long ttls cannot grow the queue without bound.
    fn compact(&mut self, kept: usize, is_kept: impl Fn(&ItemId) -> bool) {
        if self.0.len() > 2 * kept + 1024 {
            self.0.retain(|std::cmp::Reverse((_, id))| is_kept(id));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A stored beacon's last moment of saying anything, from its bytes.
fn beacon_says_until(bytes: &[u8]) -> Option<i64> {
    let beacon = SignedBeacon::from_bytes(bytes)
        .and_then(|b| b.decode())
        .ok()?;
    Some(beacon::says_nothing_after_ms(&beacon))
}

/// The wall clock beacons are judged by, in milliseconds.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The sync engine's kind of a core item kind, and back (the two enums list the same kinds in the same
/// transfer order).
fn engine_kind(kind: ingest::ItemKind) -> ItemKind {
    match kind {
        ingest::ItemKind::RosterOp => ItemKind::RosterOp,
        ingest::ItemKind::Checkpoint => ItemKind::Checkpoint,
        ingest::ItemKind::ListingChange => ItemKind::ListingChange,
        ingest::ItemKind::SeatBeacon => ItemKind::SeatBeacon,
        ingest::ItemKind::Verification => ItemKind::Verification,
        ingest::ItemKind::Proposal => ItemKind::Proposal,
    }
}

fn core_kind(kind: ItemKind) -> ingest::ItemKind {
    match kind {
        ItemKind::RosterOp => ingest::ItemKind::RosterOp,
        ItemKind::Checkpoint => ingest::ItemKind::Checkpoint,
        ItemKind::ListingChange => ingest::ItemKind::ListingChange,
        ItemKind::SeatBeacon => ingest::ItemKind::SeatBeacon,
        ItemKind::Verification => ingest::ItemKind::Verification,
        ItemKind::Proposal => ingest::ItemKind::Proposal,
    }
}

fn signed_item(wire: &WireItem) -> SignedItem {
    SignedItem::new(core_kind(wire.kind), wire.bytes.clone())
}

/// How long the first dials wait for the listeners (see [`Service::await_listeners`]).
const LISTEN_WAIT: Duration = Duration::from_secs(2);

/// Why the event loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to (Ctrl-C, SIGTERM, the embedding program).
    Stopped,
    /// The store failed a write and must be opened again by a new process (see
    /// [`deskmesh_store::Store::needs_reopen`]); what to take back is noted on disk.
    Reopen,
}

/// Starts listening and dialing, then runs the event loop until Ctrl-C, SIGTERM or `opts.shutdown`, or
/// until the store must be reopened. The control socket is served at `home`'s socket path, and peers
/// learned at run time are kept in its peer list.
pub async fn run(node: Node, home: Home, opts: RunOptions) -> anyhow::Result<Exit> {
    let socket = home.socket_path();
    let alliance = node
        .alliance_id()
        .context("this node is not in an alliance yet")?;
    let create_op = node
        .roster()
        .and_then(|r| r.get(&alliance.0))
        .map(|op| op.to_bytes())
        .context("the roster lacks the alliance's create operation")?;
    let me: PeerId = deskmesh_core::peer_id::peer_id(&node.public_key())
        .parse()
        .context("this node's key gives no peer id")?;
    let agent = trust::agent_version(&trust::member_proof(&create_op, &me));
    let mut seed = *node.signer().seed();
    let mut swarm = behaviour::build_swarm(&mut seed, opts.mdns, agent, opts.nat_private_ips)?;
    let topic = gossipsub::IdentTopic::new(format!("deskmesh/v1/{alliance}"));
    swarm
        .behaviour_mut()
        .gossip
        .subscribe(&topic)
        .context("cannot subscribe to the alliance topic")?;
    behaviour::score_topic(&mut swarm.behaviour_mut().gossip, &topic)?;
    let listen = if opts.listen.is_empty() {
        let port = node.config.listen_port;
        vec![
            format!("/ip4/0.0.0.0/tcp/{port}").parse()?,
            format!("/ip4/0.0.0.0/udp/{port}/quic-v1").parse()?,
        ]
    } else {
        opts.listen.clone()
    };
    // Relay circuits are listened on by the NAT policy, which retries them when a relay goes away.
    let nat_state = nat::NatState::new(&listen)?;
    let direct_listeners = listen.iter().filter(|a| !nat::is_relayed(a)).count();
    for addr in listen.into_iter().filter(|a| !nat::is_relayed(a)) {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("cannot listen on {addr}"))?;
    }

    // The directory in memory before the socket answers: the first `spaces list` or TUI attach would
    // otherwise wait for it (~0.3 s at 10,000 spaces), and a daemon runs for weeks. Kept current through
    // a first sync of 10,000 spaces, the directory costs ~1 s of join time and ~40 MiB of peak memory
    // (with jemalloc: glibc's heap kept 300 MiB more; BENCHMARKS, "the session's end state"). The check
    // of the roster's stored signatures (~0.5 s) runs meanwhile on other threads; the findings take it
    // in when it is done, and subscribers get them again then.
    let warm = std::time::Instant::now();
    node.check_roster_signatures_in_background();
    // The sync engine's item set is read from the store meanwhile, on another thread.
    let scanning = {
        let store = node.store.clone();
        std::thread::spawn(move || scan(store.as_ref()))
    };
    if let Err(e) = node.catalog().map(drop) {
        tracing::warn!(error = %e, "cannot read the directory into memory yet; the first query will try again");
    }
    tracing::debug!(
        ms = u64::try_from(warm.elapsed().as_millis()).unwrap_or(u64::MAX),
        "directory read into memory"
    );

    let (tx, mut calls) = mpsc::channel::<Call>(64);
    let (events, _) = broadcast::channel(crate::control::PUSH_BACKLOG);
    let server = control::serve(&socket, tx, events.clone())?;

    let scanned = scanning
        .join()
        .map_err(|_| anyhow::anyhow!("reading the store's items at start failed"))??;
    let mut svc = Service::new(node, swarm, topic, scanned)?;
    svc.events = events;
    svc.create_op = create_op;
    let (book, warning) = PeerBook::load(Some(home.peers_path()));
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    svc.book = book;
    let mut shutdown = opts.shutdown.clone();
    for addr in opts.bootstrap.iter().cloned().chain(svc.known_peer_addrs()) {
        svc.book.add_bootstrap(addr);
    }
    svc.nat = nat_state;
    svc.await_listeners(direct_listeners).await;
    svc.redial();
    svc.listen_on_relays();
    tracing::info!(peer = %svc.me, items = svc.engine.items().len(), "node started");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    // Says in the log when the loop stops turning (a long rebuild, or a hang inside the store).
    let watchdog = super::watchdog::Watchdog::start();
    let exit = loop {
        watchdog.turn();
        tokio::select! {
            event = svc.swarm.select_next_some() => svc.on_swarm(event),
            Some((req, reply)) = calls.recv() => match req {
                ApiRequest::Audit | ApiRequest::AuditExport => svc.audit_aside(req, reply),
                req => {
                    let answer = svc.on_call(req);
                    let _ = reply.send(answer);
                }
            },
            Some(done) = svc.checking.next(), if !svc.checking.is_empty() => svc.on_checked(done),
            _ = tick.tick() => svc.on_tick(),
            _ = stopped(&mut shutdown) => break Exit::Stopped,
            _ = tokio::signal::ctrl_c() => break Exit::Stopped,
            _ = terminate.recv() => break Exit::Stopped,
        }
        if let Some(exit) = svc.exit.take() {
            break exit;
        }
    };
    server.abort();
    let _ = std::fs::remove_file(&socket);
    if let Err(e) = svc.book.save(svc.now(), true) {
        tracing::warn!("{e}");
    }
    if exit == Exit::Stopped {
        svc.node.store.flush()?;
    }
    tracing::info!("node stopped");
    Ok(exit)
}

struct Service {
    node: Node,
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    me: PeerId,
    engine: SyncEngine<PeerId>,
    started: Instant,
    /// Every item the store holds, by id, so the engine's ids can be served.
    index: HashMap<ItemId, Location>,
    /// The id of the beacon kept for each (space, pool), to drop it from the set when it is replaced.
    beacon_ids: BTreeMap<(SpaceId, String), ItemId>,
    /// Offered beacons by the last moment they say anything, soonest first: past it, a beacon is taken out
    /// of the set peers reconcile against ([`Service::expire_beacons`]).
    beacon_expiry: BeaconExpiry,
    connected: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// What each connected peer is to this node; only known peers are synced with on our initiative and
    /// served in full.
    trust: HashMap<PeerId, Trust>,
    /// The alliance's create operation: members prove they hold these bytes.
    create_op: Vec<u8>,
    /// Peers to dial and when; the ones learned at run time are saved in the home.
    book: PeerBook,
    /// Bootstrap addresses without a peer id being dialled, by connection.
    bare_dials: HashMap<ConnectionId, Multiaddr>,
    /// Peers whose last dial failed because its local port was taken: the next dial takes a new port.
    new_port: HashSet<PeerId>,
    /// The same for bootstrap addresses without a peer id.
    new_port_addrs: HashSet<Multiaddr>,
    /// Items strangers may still be served.
    budgets: HashMap<PeerId, Budget>,
    /// Peers whose proof may still come, with the sync messages they sent meanwhile.
    unsettled: HashMap<PeerId, Unsettled>,
    /// Pings failed in a row, per connection.
    ping_failures: HashMap<ConnectionId, u32>,
    /// Connections through a relay, per peer: closed once the peer has a direct one (a hole punch),
    /// so they stop holding one of the relay's few circuit slots.
    relayed: HashMap<PeerId, Vec<ConnectionId>>,
    /// Set when the event loop must end (the store must be reopened).
    exit: Option<Exit>,
    /// The store waits for room to note what it takes back (logged once).
    reopen_waiting: bool,
    /// The last store failure logged, and when.
    last_failure: Option<(String, Instant)>,
    /// Connections turned away when last logged, and when.
    guard_reported: (u64, Duration),
    last_sync: Option<chrono::DateTime<chrono::Utc>>,
    last_maintenance: Duration,
    outbound: HashMap<OutboundRequestId, PeerId>,
    /// Item batches per peer, sent a few at a time, roster operations first.
    outboxes: HashMap<PeerId, Outbox>,
    /// Reachability: relays this node listens through, and whether AutoNAT thinks it is private.
    nat: nat::NatState,
    /// Listing changes stored per space per hour.
    change_limit: limits::RateLimiter<SpaceId>,
    /// Seat beacons stored per space per hour.
    beacon_limit: limits::RateLimiter<SpaceId>,
    /// Live events for front ends subscribed through the control socket.
    events: broadcast::Sender<Arc<str>>,
    /// The status (peers, last sync) changed since it was last sent to subscribers.
    status_dirty: bool,
    /// A roster operation arrived since subscribers were last told to reload (sent once per tick).
    reload_due: bool,
    /// Something was refused since subscribers were last sent the findings (sent once per tick).
    findings_due: bool,
    /// The last sync time subscribers were told of.
    pushed_sync: Option<chrono::DateTime<chrono::Utc>>,
    /// A large transfer from peers (a first sync), reported as it goes.
    catch_up: CatchUp,
    /// Item batches whose signatures are being checked off the event loop, in arrival order.
    checking: futures::stream::FuturesOrdered<tokio::task::JoinHandle<Checked3>>,
    /// Item batches received while [`MAX_CHECKED_AHEAD`] were being checked, in arrival order.
    to_check: std::collections::VecDeque<(PeerId, Vec<WireItem>)>,
    /// Held by the audit running off the event loop; the next one waits for it ([`Service::audit_aside`]).
    auditing: Arc<std::sync::Mutex<()>>,
    /// Items each peer sent lately that no honest node relays, and when its count started
    /// ([`Service::count_bad`]).
    bad_items: HashMap<PeerId, (u32, Instant)>,
    /// The budget reserved by each batch in `checking`, in the same order ([`Prepared::reserved`]).
    checking_reserved: std::collections::VecDeque<Vec<(ingest::ItemKind, SpaceId)>>,
}

/// A checked batch: its peer, the outcomes set aside before checking (by input position), the rest.
type Checked3 = (PeerId, Vec<(usize, Outcome)>, Vec<Checked>);

/// A batch split before checking.
struct Prepared {
    items: Vec<SignedItem>,
    held: Vec<(usize, Outcome)>,
    /// Budget reserved for the changes and beacons among `items` while they are checked, so batches in
    /// flight at once cannot together pass a space's limit; released when they are judged.
    reserved: Vec<(ingest::ItemKind, SpaceId)>,
}

/// Progress of a large transfer from peers, such as a new member's first sync. A transfer starts with the
/// first item after a quiet spell and ends after [`CatchUp::QUIET`] without one; while it runs and has
/// brought at least [`CatchUp::MIN_ITEMS`], it is reported on stderr every few seconds and in `status`.
/// The total is known only when this side's own sync sessions found what it lacks; when a peer found it
/// (the usual cold join), the count alone is reported.
#[derive(Debug, Default)]
struct CatchUp {
    /// Items missing here according to this side's sync sessions, 0 when unknown.
    expected: usize,
    received: usize,
    started: Option<Instant>,
    last_report: Option<Instant>,
    last_item: Option<Instant>,
}

impl CatchUp {
    /// Transfers smaller than this are not worth a progress report.
    const MIN_ITEMS: usize = 500;
    /// How often progress is reported.
    const EVERY: Duration = Duration::from_secs(3);
    /// A transfer with no item for this long is over.
    const QUIET: Duration = Duration::from_secs(3);

    /// A sync session found `lacking` items missing here.
    fn expect(&mut self, lacking: usize, now: Instant) {
        if lacking == 0 {
            return;
        }
        self.begin(now);
        self.expected = self.expected.max(self.received + lacking);
    }

    fn begin(&mut self, now: Instant) {
        if self.started.is_none() {
            *self = Self {
                started: Some(now),
                last_item: Some(now),
                ..Self::default()
            };
        }
    }

    fn received(&mut self, now: Instant) {
        self.begin(now);
        self.received += 1;
        self.last_item = Some(now);
    }

    /// Items received so far and, when known, expected, while a large transfer runs.
    fn progress(&self) -> Option<CatchingUp> {
        (self.started.is_some() && self.received >= Self::MIN_ITEMS).then(|| CatchingUp {
            received: self.received,
            expected: (self.expected > 0).then_some(self.expected.max(self.received)),
        })
    }

    /// Reports progress now and then, and the end.
    fn tick(&mut self, now: Instant) {
        let Some(started) = self.started else {
            return;
        };
        let quiet = self
            .last_item
            .is_none_or(|t| now.duration_since(t) >= Self::QUIET);
        if quiet {
            if self.received >= Self::MIN_ITEMS {
                tracing::info!(
                    items = self.received,
                    seconds = format!("{:.1}", now.duration_since(started).as_secs_f64()),
                    "caught up with peers"
                );
            }
            *self = Self::default();
            return;
        }
        if self.received < Self::MIN_ITEMS
            || self
                .last_report
                .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return;
        }
        self.last_report = Some(now);
        match self.progress().and_then(|p| p.expected) {
            Some(expected) => tracing::info!(
                received = self.received,
                expected,
                "catching up with peers: {} %",
                self.received * 100 / expected.max(1)
            ),
            None => tracing::info!(received = self.received, "catching up with peers"),
        }
    }
}

impl Service {
    fn new(
        node: Node,
        swarm: Swarm<Behaviour>,
        topic: gossipsub::IdentTopic,
        scanned: Scanned,
    ) -> anyhow::Result<Self> {
        let me = *swarm.local_peer_id();
        let mut svc = Self {
            node,
            swarm,
            topic,
            me,
            engine: SyncEngine::new(Config::default(), seed())?,
            started: Instant::now(),
            index: HashMap::new(),
            beacon_ids: BTreeMap::new(),
            beacon_expiry: Default::default(),
            connected: BTreeMap::new(),
            trust: HashMap::new(),
            create_op: Vec::new(),
            book: PeerBook::load(None).0,
            bare_dials: HashMap::new(),
            new_port: HashSet::new(),
            new_port_addrs: HashSet::new(),
            budgets: HashMap::new(),
            unsettled: HashMap::new(),
            ping_failures: HashMap::new(),
            relayed: HashMap::new(),
            exit: None,
            reopen_waiting: false,
            last_failure: None,
            guard_reported: (0, Duration::ZERO),
            last_sync: None,
            last_maintenance: Duration::ZERO,
            outbound: HashMap::new(),
            outboxes: HashMap::new(),
            nat: nat::NatState::default(),
            change_limit: limits::RateLimiter::for_changes(),
            beacon_limit: limits::RateLimiter::for_beacons(),
            events: broadcast::channel(1).0,
            status_dirty: false,
            reload_due: false,
            findings_due: false,
            pushed_sync: None,
            catch_up: CatchUp::default(),
            checking: Default::default(),
            checking_reserved: Default::default(),
            to_check: Default::default(),
            auditing: Default::default(),
            bad_items: HashMap::new(),
        };
        let items = svc.take_scan(scanned);
        svc.engine = SyncEngine::with_items(Config::default(), seed(), items)?;
        Ok(svc)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Indexes every item of a [`scan`] (once, at start) and returns those offered to sync: everything
    /// but the changes a kept checkpoint covers (kept for auditors, servable on request) and the beacons
    /// that say nothing any more.
    fn take_scan(&mut self, scanned: Scanned) -> Vec<Item> {
        let mut new = Vec::new();
        let now_ms = wall_ms();
        for (id, location, offered) in scanned.items {
            let offered = offered && self.offer_beacon(id, scanned.beacon_until.get(&id), now_ms);
            let kind = location.kind();
            let beacon = match &location {
                Location::Beacon(space, pool) => Some((space.clone(), pool.clone())),
                _ => None,
            };
            if self.index.insert(id, location).is_none() && offered {
                new.push(Item::new(kind, id));
            }
            if let Some(key) = beacon {
                if let Some(old) = self.beacon_ids.insert(key, id) {
                    if old != id && self.index.remove(&old).is_some() {
                        self.engine
                            .item_removed(&Item::new(ItemKind::SeatBeacon, old));
                    }
                }
            }
        }
        new
    }

    /// What an arriving beacon `b` meets in the one this node keeps for its pool. Returns whether it is set
    /// aside unchecked: it says nothing any more, and replaces no kept figure that still does (one that
    /// does is replaced, so the pool shows unknown as everywhere else). When the kept one says nothing
    /// and is newer, the `peer` still holds an older figure, and reconciling never brings ours (it is not
    /// offered): it is sent, so the peer stops showing and offering the older one. The kept beacon is
    /// read from the store only in those two cases.
    fn beacon_set_aside(
        &mut self,
        signed: &SignedBeacon,
        b: &deskmesh_crdt_model::beacon::SeatBeacon,
        peer: Option<PeerId>,
        wall_ms: i64,
    ) -> bool {
        let says_nothing = beacon::says_nothing_after_ms(b) < wall_ms;
        let Some(kept_id) = self
            .beacon_ids
            .get(&(b.space.clone(), b.pool.clone()))
            .copied()
        else {
            return says_nothing;
        };
        // A kept beacon leaves the offered set when it stops saying anything (`expire_beacons`).
        let kept_says_nothing = !self
            .engine
            .items()
            .contains(&Item::new(ItemKind::SeatBeacon, kept_id));
        if !says_nothing && !kept_says_nothing {
            return false;
        }
        let Some(kept) = self
            .node
            .store
            .beacon(&b.space, &b.pool)
            .ok()
            .flatten()
            .and_then(|bytes| SignedBeacon::from_bytes(&bytes).ok())
        else {
            return says_nothing;
        };
        if kept_says_nothing {
            if let Some(peer) = peer.filter(|_| beacon::newer(&kept, signed)) {
                self.serve(peer, &[kept_id]);
            }
            return says_nothing;
        }
        !beacon::newer(signed, &kept)
    }

    /// Whether item `id` is offered to sync as far as its beacon's age goes: a beacon that still says
    /// something (`until`, its last moment of doing so, is not past) is, and is put on the expiry queue;
    /// one past it is not. Anything without `until` (not a beacon, or one that does not decode) is.
    fn offer_beacon(&mut self, id: ItemId, until: Option<&i64>, now_ms: i64) -> bool {
        let Some(&until) = until else {
            return true;
        };
        if until < now_ms {
            return false;
        }
        self.beacon_expiry.push(until, id);
        true
    }

    /// Takes out of the set peers reconcile against every beacon that has just stopped saying anything
    /// (past its ttl and the stale quarter of an hour): a joiner is not sent seat figures it would show as
    /// unknown. The store keeps it, so an older beacon of its pool is still recognised as older, and the
    /// index keeps it, so a copy that arrives is known at once.
    fn expire_beacons(&mut self, now_ms: i64) {
        let mut expired = 0usize;
        for id in self.beacon_expiry.due(now_ms) {
            if matches!(self.index.get(&id), Some(Location::Beacon(..))) {
                self.engine
                    .item_removed(&Item::new(ItemKind::SeatBeacon, id));
                expired += 1;
            }
        }
        let index = &self.index;
        self.beacon_expiry.compact(self.beacon_ids.len(), |id| {
            matches!(index.get(id), Some(Location::Beacon(..)))
        });
        if expired > 0 {
            tracing::debug!(
                beacons = expired,
                "seat beacons too old to say anything are no longer offered to sync"
            );
        }
    }

    /// Addresses from the invite (meta `bootstrap_peers`) and the roster's `SetPeerAddrs`.
    fn known_peer_addrs(&self) -> Vec<Multiaddr> {
        let mut texts: Vec<String> = Vec::new();
        texts.extend(self.node.bootstrap_peers());
        if let Some(roster) = self.node.roster() {
            for space in roster.state().spaces.values() {
                texts.extend(space.peer_addrs.iter().cloned());
            }
        }
        texts
            .iter()
            .filter_map(|t| match t.parse::<Multiaddr>() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(address = %t, error = %e, "ignoring a peer address that is not a multiaddr");
                    None
                }
            })
            .collect()
    }

    /// Dials the peers the book says are due while this node has fewer than its target of peers, and
    /// saves the book when it changed.
    fn redial(&mut self) {
        let now = self.now();
        let connected = self.connected.len();
        if connected == 0 {
            self.book.retry_bare();
        }
        let swarm = &self.swarm;
        let targets = self.book.due(now, connected, |p| swarm.is_connected(p));
        for target in targets {
            match target {
                Target::Peer(peer, addrs) => {
                    if peer == self.me {
                        continue;
                    }
                    for addr in &addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                    }
                    if let Err(e) = self.dial_peer(peer, Some(addrs)) {
                        tracing::debug!(peer = %peer, error = %e, "cannot dial a known peer");
                        self.book.dial_failed(&peer, now);
                    }
                }
                Target::Addr(addr) => {
                    let opts = DialOpts::unknown_peer_id().address(addr.clone());
                    let opts = if self.new_port_addrs.remove(&addr) {
                        opts.allocate_new_port().build()
                    } else {
                        opts.build()
                    };
                    let id = opts.connection_id();
                    match self.swarm.dial(opts) {
                        Ok(()) => {
                            self.bare_dials.insert(id, addr);
                        }
                        Err(e) => {
                            tracing::debug!(address = %addr, error = %e, "cannot dial a bootstrap address");
                            self.book.bare_failed(&addr, now);
                        }
                    }
                }
            }
        }
        if let Err(e) = self.book.save(now, false) {
            tracing::warn!("{e}");
        }
    }

    /// What `peer` is to this node from its id alone: a device the roster names, or a stranger until it
    /// proves more.
    fn classify(&self, peer: &PeerId) -> Trust {
        let Some(roster) = self.node.roster() else {
            return Trust::Stranger;
        };
        match trust::device_key(peer) {
            Some(key)
                if roster.state().coordinators.contains_key(&key)
                    || !roster.state().spaces_of(&key).is_empty() =>
            {
                Trust::Device
            }
            _ => Trust::Stranger,
        }
    }

    /// Records what `peer` is; a peer that becomes known gets slots kept for it, is synced with, and is
    /// served in full from now on.
    fn set_trust(&mut self, peer: PeerId, t: Trust) {
        let before = self.trust.insert(peer, t).unwrap_or(Trust::Stranger);
        if !t.is_known() || before.is_known() {
            return;
        }
        let behaviour = self.swarm.behaviour_mut();
        behaviour.guard.trust(peer);
        behaviour.limits.bypass_peer_id(&peer);
        let was_budgeted = self.budgets.remove(&peer).is_some();
        tracing::debug!(peer = %peer, trust = ?t, "peer known");
        let now = self.now();
        if was_budgeted {
            // It was served as a stranger for a while (its proof came late): what was held back is found
            // again by a fresh session now, not at the next resync a minute later.
            self.engine.disconnected(&peer);
        }
        let intents = self.engine.connected(peer, now);
        self.execute(intents);
    }

    /// Checks again, after the roster grew, whether connected strangers are devices now.
    fn reclassify(&mut self) {
        let strangers: Vec<PeerId> = self
            .trust
            .iter()
            .filter(|(_, t)| !t.is_known())
            .map(|(p, _)| *p)
            .collect();
        for peer in strangers {
            let t = self.classify(&peer);
            if t.is_known() {
                self.set_trust(peer, t);
            }
        }
    }

    /// Handles swarm events until `n` listeners reported an address, for at most [`LISTEN_WAIT`]. A
    /// TCP dial leaves from the listening port (port reuse) only once its listener reported addresses,
    /// which a wildcard listener does asynchronously, after reading the interfaces. A dial made before
    /// leaves from an ephemeral port for the life of the connection, and the address the peer observes
    /// for it (what DCUtR hands out for hole punching) is one no NAT mapping keeps open.
    async fn await_listeners(&mut self, n: usize) {
        let mut up = std::collections::HashSet::new();
        let deadline = tokio::time::sleep(LISTEN_WAIT);
        tokio::pin!(deadline);
        while up.len() < n {
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    if let SwarmEvent::NewListenAddr { listener_id, .. } = &event {
                        up.insert(*listener_id);
                    }
                    self.on_swarm(event);
                }
                _ = &mut deadline => break,
            }
        }
    }

    // ---- swarm events ------------------------------------------------------------------------------

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if self.nat.is_declared(&address) {
                    // An address the operator named is announced as is (relay reservations carry it).
                    self.swarm.add_external_address(address.clone());
                }
                tracing::info!(address = %nat::with_peer(address, self.me), "listening");
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.on_listener_closed(listener_id, reason),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let addr = nat::remote_addr(&endpoint, peer_id);
                if nat::is_relayed(&addr) {
                    self.relayed.entry(peer_id).or_default().push(connection_id);
                }
                if let Some(dialled) = self.bare_dials.remove(&connection_id) {
                    self.new_port_addrs.remove(&dialled);
                    self.book.bare_connected(&dialled);
                }
                // Connected by any way: a port the kernel refused earlier no longer matters.
                self.new_port.remove(&peer_id);
                self.book
                    .connected(&peer_id, chrono::Utc::now().timestamp_millis());
                self.connected
                    .entry(peer_id)
                    .or_default()
                    .push(addr.clone());
                if num_established.get() == 1 {
                    self.status_dirty = true;
                    let t = self.classify(&peer_id);
                    tracing::info!(peer = %peer_id, address = %addr, trust = ?t, "peer connected");
                    self.trust.insert(peer_id, Trust::Stranger);
                    // A member proves itself in identify, a moment later; until then its sync waits.
                    if !t.is_known() {
                        self.unsettled.insert(
                            peer_id,
                            Unsettled {
                                since: Instant::now(),
                                held: Vec::new(),
                            },
                        );
                    }
                    self.set_trust(peer_id, t);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.ping_failures.remove(&connection_id);
                if let Some(list) = self.relayed.get_mut(&peer_id) {
                    list.retain(|c| *c != connection_id);
                    if list.is_empty() {
                        self.relayed.remove(&peer_id);
                    }
                }
                let addr = nat::remote_addr(&endpoint, peer_id);
                if let Some(list) = self.connected.get_mut(&peer_id) {
                    list.retain(|a| *a != addr);
                }
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    self.trust.remove(&peer_id);
                    self.unsettled.remove(&peer_id);
                    self.budgets.remove(&peer_id);
                    self.engine.disconnected(&peer_id);
                    self.outboxes.remove(&peer_id);
                    self.status_dirty = true;
                    tracing::info!(peer = %peer_id, "peer disconnected");
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                let now = self.now();
                let taken = port_taken(&error);
                if let Some(addr) = self.bare_dials.remove(&connection_id) {
                    self.book.bare_failed(&addr, now);
                    if taken {
                        self.new_port_addrs.insert(addr);
                    }
                }
                if let Some(peer) = peer_id {
                    self.book.dial_failed(&peer, now);
                    if taken {
                        self.new_port.insert(peer);
                    }
                }
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(address = %address, "external address confirmed");
                self.status_dirty = true;
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(address = %address, "external address expired");
                self.status_dirty = true;
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::trace!(error = %error, "incoming connection refused or failed");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != "/deskmesh/1" {
                    return;
                }
                let known = self.trust.get(&peer_id).copied().unwrap_or(Trust::Stranger);
                if !known.is_known()
                    && trust::proves_membership(&info.agent_version, &self.create_op, &peer_id)
                {
                    self.set_trust(peer_id, Trust::Member);
                }
                self.settle(peer_id);
                if !self.trust.get(&peer_id).is_some_and(|t| t.is_known()) {
                    // Strangers' addresses go nowhere: not into the DHT, not into the saved peer list.
                    return;
                }
                let connected = self.connected.get(&peer_id).cloned().unwrap_or_default();
                let listen_addrs = nat::reachable_listen_addrs(&info.listen_addrs, &connected);
                self.book.learned(
                    peer_id,
                    &listen_addrs,
                    chrono::Utc::now().timestamp_millis(),
                );
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    if let Some(addr) = nat::pick_relay_addr(&listen_addrs, &connected) {
                        self.nat.relay_found(peer_id, addr);
                        self.listen_on_relays();
                    }
                }
                for addr in listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    self.maybe_dial(peer);
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => self.maybe_dial(peer),
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, Reply::Ack);
                        self.on_request(peer, request);
                    }
                    request_response::Message::Response { request_id, .. } => {
                        self.outbound.remove(&request_id);
                        self.batch_done(peer, request_id);
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                self.outbound.remove(&request_id);
                // A lost batch is not resent: the next reconciliation asks for what is still missing.
                self.batch_done(peer, request_id);
                tracing::debug!(peer = %peer, error = %error, "sync request failed");
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(peer = %peer, error = %error, "inbound sync request failed");
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            }) => self.on_ping(peer, connection, result),
            BehaviourEvent::RelayClient(ev) => self.on_relay_client(ev),
            BehaviourEvent::Relay(ev) => on_relay_server(ev),
            BehaviourEvent::Autonat(ev) => self.on_autonat(ev),
            BehaviourEvent::Dcutr(ev) => {
                on_dcutr(ev);
                self.status_dirty = true;
            }
            _ => {}
        }
    }

    /// Closes a connection whose pings failed [`MAX_PING_FAILURES`] times in a row: across a partition a
    /// TCP connection would otherwise stay open for many minutes, and the peer would look connected.
    fn on_ping(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        result: Result<Duration, ping::Failure>,
    ) {
        match result {
            Ok(_) => {
                self.ping_failures.remove(&connection);
            }
            Err(e) => {
                let n = self.ping_failures.entry(connection).or_default();
                *n += 1;
                if *n >= MAX_PING_FAILURES {
                    tracing::info!(peer = %peer, error = %e, "peer stopped answering pings; closing the connection");
                    self.ping_failures.remove(&connection);
                    self.swarm.close_connection(connection);
                }
            }
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == self.me
            || self.connected.contains_key(&peer)
            || self.connected.len() >= MAX_AUTO_DIAL
        {
            return;
        }
        if let Err(e) = self.dial_peer(peer, None) {
            tracing::debug!(peer = %peer, error = %e, "cannot dial discovered peer");
        }
    }

    /// Dials `peer` unless it is connected or being dialled: at `addrs` if given, else at the addresses
    /// the behaviours know. After a dial the kernel refused its local port ([`port_taken`]), the next one
    /// that starts takes a new port.
    fn dial_peer(
        &mut self,
        peer: PeerId,
        addrs: Option<Vec<Multiaddr>>,
    ) -> Result<(), libp2p::swarm::DialError> {
        let new_port = self.new_port.contains(&peer);
        let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing);
        let opts = match (addrs, new_port) {
            (Some(a), true) => opts.addresses(a).allocate_new_port().build(),
            (Some(a), false) => opts.addresses(a).build(),
            (None, true) => opts.allocate_new_port().build(),
            (None, false) => opts.build(),
        };
        self.swarm.dial(opts)?;
        if new_port {
            tracing::debug!(peer = %peer, "dialling from a new port");
            self.new_port.remove(&peer);
        }
        Ok(())
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let acceptance = match postcard::from_bytes::<WireItem>(&message.data) {
            Ok(item) => {
                let outcomes = self.ingest(vec![item], Some(source));
                match outcomes.first().map(|o| &o.verdict) {
                    Some(Verdict::Added(a)) => {
                        tracing::info!(peer = %source, kind = ?a.kind, id = %a.id.short(), "new item by gossip");
                        gossipsub::MessageAcceptance::Accept
                    }
                    Some(Verdict::Known) => gossipsub::MessageAcceptance::Accept,
                    Some(Verdict::Refused(why)) => {
                        tracing::warn!(peer = %source, reason = %why, "rejected gossip message");
                        gossipsub::MessageAcceptance::Reject
                    }
                    // Superseded beacons, items waiting for roster operations, over-limit changes and
                    // store failures are not the sender's fault: neither forwarded nor punished.
                    _ => gossipsub::MessageAcceptance::Ignore,
                }
            }
            Err(e) => {
                tracing::warn!(peer = %source, error = %e, "rejected unreadable gossip message");
                self.findings_due = true;
                self.node.refuse_from_peer(
                    "gossip message",
                    &source.to_string(),
                    None,
                    format!(
                        "the gossip message ({} bytes) is not a signed item: {e}",
                        message.data.len()
                    ),
                );
                gossipsub::MessageAcceptance::Reject
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&id, &source, acceptance);
    }

    fn on_request(&mut self, peer: PeerId, request: Request) {
        match request {
            Request::Sync(bytes) => {
                if let Some(u) = self.unsettled.get_mut(&peer) {
                    // Who the peer is decides what it is served: its sync waits a moment for its proof.
                    if u.held.len() < behaviour::MAX_STREAMS_PER_PEER {
                        u.held.push(bytes);
                    }
                    return;
                }
                self.on_sync(peer, &bytes);
            }
            Request::Items(packed) => match behaviour::unpack(&packed) {
                Ok(_) if self.swarm.behaviour().guard.is_barred(&peer) => {}
                Ok(items) => self.check_later(peer, items),
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "dropped an item batch that does not unpack");
                    // A whole batch no honest node packs counts for a quarter of the allowance.
                    let quarter = limits::BAD_ITEMS_PER_PEER / 4 + 1;
                    self.count_bad(peer, usize::try_from(quarter).unwrap_or(usize::MAX));
                }
            },
        }
    }

    /// Logs what one batch from a peer brought.
    fn log_batch(&mut self, peer: PeerId, outcomes: &[Outcome]) {
        let mut added: BTreeMap<ingest::ItemKind, usize> = BTreeMap::new();
        let mut by_space: BTreeMap<SpaceId, usize> = BTreeMap::new();
        let mut refused = 0usize;
        for o in outcomes {
            match &o.verdict {
                Verdict::Added(a) => {
                    *added.entry(a.kind).or_default() += 1;
                    if matches!(
                        a.kind,
                        ingest::ItemKind::ListingChange | ingest::ItemKind::Checkpoint
                    ) {
                        if let Some(space) = &a.space {
                            *by_space.entry(space.clone()).or_default() += 1;
                        }
                    }
                }
                Verdict::Refused(_) => refused += 1,
                _ => {}
            }
        }
        // One line per space while few changed (changes and checkpoints together); a bulk transfer (a
        // cold join) logs them at debug.
        for (space, n) in &by_space {
            if by_space.len() <= PER_SPACE_LOG_LINES {
                tracing::info!(peer = %peer, space = %space, changes = n, "synced listing changes");
            } else {
                tracing::debug!(peer = %peer, space = %space, changes = n, "synced listing changes");
            }
        }
        // Gossip does not carry what arrives by sync (an edit made offline, or missed in a partition):
        // the other connected peers are reconciled again in seconds, not at their next resync a minute
        // later. Not for seat beacons alone: a resync often finds a few that gossip dropped at a rate
        // limit, they expire within the hour, and newer ones are gossiped anyway.
        if added.keys().any(|k| *k != ingest::ItemKind::SeatBeacon) {
            let now = self.now();
            self.engine.relay_soon(&peer, now);
        }
        if !added.is_empty() {
            self.last_sync = Some(chrono::Utc::now());
            tracing::info!(
                peer = %peer,
                roster_ops = added.get(&ingest::ItemKind::RosterOp).copied().unwrap_or(0),
                changes = added.get(&ingest::ItemKind::ListingChange).copied().unwrap_or(0),
                checkpoints = added.get(&ingest::ItemKind::Checkpoint).copied().unwrap_or(0),
                beacons = added.get(&ingest::ItemKind::SeatBeacon).copied().unwrap_or(0),
                "synced new items from peer"
            );
        }
        if refused > 0 {
            tracing::warn!(peer = %peer, refused, "peer sent items that were refused");
        }
    }

    fn on_sync(&mut self, peer: PeerId, bytes: &[u8]) {
        if !self.connected.contains_key(&peer) {
            // A late message of a connection already closed: handled, it would make the engine take
            // the peer for connected again and open sessions (and dials) to it until it reconnects.
            tracing::debug!(peer = %peer, "ignored a sync message from a peer no longer connected");
            return;
        }
        let now = self.now();
        match self.engine.received_bytes(&peer, bytes, now) {
            Ok(intents) => self.execute(intents),
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "rejected sync message")
            }
        }
    }

    /// The peer's trust is decided (its identify came, or [`SETTLE_WITHIN`] passed): the sync messages it
    /// sent meanwhile are handled now, in order.
    fn settle(&mut self, peer: PeerId) {
        let Some(u) = self.unsettled.remove(&peer) else {
            return;
        };
        for bytes in u.held {
            self.on_sync(peer, &bytes);
        }
    }

    fn on_tick(&mut self) {
        let late: Vec<PeerId> = self
            .unsettled
            .iter()
            .filter(|(_, u)| u.since.elapsed() >= SETTLE_WITHIN)
            .map(|(p, _)| *p)
            .collect();
        for peer in late {
            self.settle(peer);
        }
        if std::mem::take(&mut self.status_dirty) || self.pushed_sync != self.last_sync {
            self.pushed_sync = self.last_sync;
            self.push_status();
        }
        if std::mem::take(&mut self.reload_due) {
            self.push(&Event::Reload);
        }
        if self.node.roster_check_done() {
            self.findings_due = true;
        }
        if std::mem::take(&mut self.findings_due) && self.events.receiver_count() > 0 {
            match self.node.findings() {
                Ok(findings) => self.push(&Event::Findings(findings)),
                Err(e) => tracing::warn!(error = %e, "cannot read the findings for subscribers"),
            }
        }
        self.catch_up.tick(Instant::now());
        self.expire_beacons(wall_ms());
        let expired = self.node.expire_waiting(At::now());
        for o in &expired {
            self.record(o);
        }
        let now = self.now();
        let intents = self.engine.tick(now);
        self.execute(intents);
        self.listen_on_relays();
        self.close_superseded_circuits();
        self.redial();
        if now >= self.last_maintenance + Duration::from_secs(30) {
            self.last_maintenance = now;
            if !self.connected.is_empty() {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
        }
        self.report_guard(now);
        self.check_store();
    }

    /// Logs connections the guard turned away: at the first, then at most every 30 s while it goes on.
    fn report_guard(&mut self, now: Duration) {
        let g = &self.swarm.behaviour().guard;
        let seen = g.denied + g.evicted;
        let (reported, at) = self.guard_reported;
        if seen == reported || (reported > 0 && now < at + Duration::from_secs(30)) {
            return;
        }
        tracing::info!(
            denied = g.denied,
            evicted = g.evicted,
            strangers = g.strangers(),
            "connections turned away so far (per-IP and stranger limits)"
        );
        self.guard_reported = (seen, now);
    }

    /// A store that failed a write takes no more until it is opened again: once the disk has room to
    /// note what to take back, the event loop ends so the node can restart itself.
    fn check_store(&mut self) {
        if !self.node.store.needs_reopen() {
            return;
        }
        match self.node.store.prepare_reopen() {
            Ok(()) => {
                tracing::warn!("the store failed a write; restarting the node to open it again");
                self.exit = Some(Exit::Reopen);
            }
            Err(e) => {
                if !std::mem::replace(&mut self.reopen_waiting, true) {
                    tracing::error!(error = %e, "the store failed a write; the node restarts itself once the disk has room");
                }
            }
        }
    }

    // ---- the engine's intents ----------------------------------------------------------------------

    fn execute(&mut self, intents: Vec<Intent<PeerId>>) {
        for intent in intents {
            match intent {
                Intent::Send(peer, msg) => match msg.encode() {
                    Ok(bytes) => self.send(peer, Request::Sync(bytes)),
                    Err(e) => tracing::error!(error = %e, "cannot encode a sync message"),
                },
                Intent::Fetch { peer, ids } => match deskmesh_sync::Msg::Want(ids).encode() {
                    Ok(bytes) => self.send(peer, Request::Sync(bytes)),
                    Err(e) => tracing::error!(error = %e, "cannot encode a fetch"),
                },
                Intent::Serve { peer, ids } => self.serve(peer, &ids),
                Intent::Synced { peer, stats } => {
                    if stats.completed {
                        self.last_sync = Some(chrono::Utc::now());
                    }
                    self.catch_up.expect(stats.lacking, Instant::now());
                    tracing::debug!(
                        peer = %peer,
                        completed = stats.completed,
                        pushed = stats.pushed,
                        lacking = stats.lacking,
                        messages_sent = stats.messages_sent,
                        messages_received = stats.messages_received,
                        bytes_sent = stats.bytes_sent,
                        bytes_received = stats.bytes_received,
                        "sync session ended"
                    );
                }
            }
        }
    }

    fn send(&mut self, peer: PeerId, request: Request) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outbound.insert(id, peer);
    }

    /// Queues the items for the peer (roster operations first, parents before children; an id already
    /// queued is not queued again) and sends what its window allows. A stranger is served only from its
    /// small budget; the rest is dropped, and a member whose proof came late asks again.
    fn serve(&mut self, peer: PeerId, ids: &[ItemId]) {
        let known = self.trust.get(&peer).is_some_and(|t| t.is_known());
        let mut roster_ids = Vec::new();
        let mut other_ids = Vec::new();
        for id in ids {
            match self.index.get(id) {
                Some(Location::Roster) => roster_ids.push(*id),
                Some(_) => other_ids.push(*id),
                None => {}
            }
        }
        if !roster_ids.is_empty() {
            // Roster operations first, parents before children (the peer applies an operation only once
            // its parents are there); then everything they authorise.
            if let Some(roster) = self.node.roster() {
                let order: HashMap<ItemId, usize> = roster
                    .ops_in_order()
                    .iter()
                    .enumerate()
                    .map(|(n, (hash, _, _))| (ItemId(hash.0), n))
                    .collect();
                roster_ids.sort_by_key(|id| order.get(id).copied().unwrap_or(usize::MAX));
            }
        }
        // Everything else goes space by space: each space's checkpoint first and then its changes in the
        // order they were made, so the peer applies them in turn on the checkpoint's document (in its
        // check phase when they share a batch) instead of holding many that wait for their
        // dependencies; then its beacons and verifications. A space's items share its id, its device's
        // key and its roster heads, which zstd packs once per batch when they are adjacent (a 10,000-space
        // join moves 18 % fewer bytes than with beacons in id order after every listing), and a member
        // sees each space arrive with its seats. (Only the order is kept: the bytes are read again when
        // their batch is sent.)
        let store = self.node.store.clone();
        let made_at = |id: &ItemId, location: Option<&Location>| match location {
            Some(Location::Checkpoint(space)) => (Some(space.clone()), 0u8, i64::MIN),
            Some(Location::Change(space)) => {
                let at = store
                    .change(space, &id.0)
                    .ok()
                    .flatten()
                    .and_then(|b| SignedChange::from_bytes(&b).and_then(|c| c.envelope()).ok())
                    .map_or(i64::MAX, |e| e.created_at_ms);
                (Some(space.clone()), 0u8, at)
            }
            Some(Location::Beacon(space, _)) => (Some(space.clone()), 1, 0),
            Some(Location::Verification(space)) => (Some(space.clone()), 2, 0),
            _ => (None, 3, 0),
        };
        other_ids.sort_by_cached_key(|id| made_at(id, self.index.get(id)));
        let mut allowed = usize::MAX;
        if !known {
            let budget = self.budgets.entry(peer).or_insert_with(Budget::full);
            allowed = budget.take(roster_ids.len() + other_ids.len(), Instant::now());
        }
        let wanted = roster_ids.len() + other_ids.len();
        let outbox = self.outboxes.entry(peer).or_default();
        let (mut queued, mut repeated, mut dropped) = (0usize, 0usize, 0usize);
        for (id, roster) in roster_ids
            .into_iter()
            .map(|id| (id, true))
            .chain(other_ids.into_iter().map(|id| (id, false)))
        {
            if queued >= allowed {
                dropped += 1;
                continue;
            }
            match outbox.push(id, roster) {
                Queued::New => queued += 1,
                Queued::Already => repeated += 1,
                Queued::Full => dropped += 1,
            }
        }
        if dropped > 0 {
            if known {
                tracing::warn!(peer = %peer, items = dropped, "the peer's outbox is full; it will ask again");
            } else {
                tracing::debug!(peer = %peer, items = dropped, wanted, "not serving more to a peer that is not known");
            }
        }
        if repeated > 0 {
            tracing::debug!(peer = %peer, items = repeated, "items asked for again while still queued");
        }
        if queued > 0 {
            tracing::info!(peer = %peer, items = queued, "sending items the peer lacks");
        }
        self.pump(peer);
    }

    /// Sends queued batches while fewer than [`MAX_BATCHES_IN_FLIGHT`] are unanswered. Roster batches go
    /// one at a time and nothing follows one until it is answered (the peer handles requests in order of
    /// arrival, but several streams may arrive in any order). Items are read from the store here, a batch
    /// of about [`behaviour::ITEM_BATCH_BYTES`] at a time.
    fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(outbox) = self.outboxes.get(&peer) else {
                return;
            };
            if outbox.in_flight.len() >= MAX_BATCHES_IN_FLIGHT
                || outbox.in_flight.values().any(|r| *r)
                || outbox.is_empty()
            {
                return;
            }
            let roster = !outbox.roster.is_empty();
            if roster && !outbox.in_flight.is_empty() {
                // Roster operations go only once the batches before them are answered.
                return;
            }
            let mut batch: Vec<WireItem> = Vec::new();
            let mut size = 0usize;
            while size < behaviour::ITEM_BATCH_BYTES {
                let Some(id) = self.outboxes.get_mut(&peer).and_then(|o| o.pop(roster)) else {
                    break;
                };
                match self.load(&id) {
                    Ok(Some(item)) => {
                        size += item.bytes.len();
                        batch.push(item);
                    }
                    // Gone since it was queued (a beacon replaced by a newer one).
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "cannot read an item to serve"),
                }
            }
            if batch.is_empty() {
                continue;
            }
            let packed = match behaviour::pack(&batch) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(peer = %peer, error = %e, "cannot pack an item batch");
                    continue;
                }
            };
            let id = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, Request::Items(packed));
            self.outbound.insert(id, peer);
            if let Some(outbox) = self.outboxes.get_mut(&peer) {
                outbox.in_flight.insert(id, roster);
            }
        }
    }

    /// A batch was answered (or lost): send the next.
    fn batch_done(&mut self, peer: PeerId, request: OutboundRequestId) {
        let was_batch = self
            .outboxes
            .get_mut(&peer)
            .is_some_and(|o| o.in_flight.remove(&request).is_some());
        if was_batch {
            self.pump(peer);
        }
    }

    fn load(&self, id: &ItemId) -> anyhow::Result<Option<WireItem>> {
        let store = &self.node.store;
        Ok(match self.index.get(id) {
            None => None,
            Some(Location::Roster) => store.op(&Hash(id.0))?.map(|bytes| WireItem {
                kind: ItemKind::RosterOp,
                bytes,
            }),
            Some(Location::Checkpoint(space)) => {
                store.checkpoint(space, &Hash(id.0))?.map(|bytes| WireItem {
                    kind: ItemKind::Checkpoint,
                    bytes,
                })
            }
            Some(Location::Change(space)) => store.change(space, &id.0)?.map(|bytes| WireItem {
                kind: ItemKind::ListingChange,
                bytes,
            }),
            Some(Location::Beacon(space, pool)) => store
                .beacon(space, pool)?
                .filter(|bytes| Hash::of(ingest::BEACON_ITEM, bytes).0 == id.0)
                .map(|bytes| WireItem {
                    kind: ItemKind::SeatBeacon,
                    bytes,
                }),
            Some(Location::Verification(space)) => store
                .space_verifications(space)?
                .into_iter()
                .find(|(h, _)| h.0 == id.0)
                .map(|(_, bytes)| WireItem {
                    kind: ItemKind::Verification,
                    bytes,
                }),
            Some(Location::Proposal) => store
                .proposals()?
                .into_iter()
                .find(|(_, bytes)| Hash::of(ingest::PROPOSAL_ITEM, bytes).0 == id.0)
                .map(|(_, bytes)| WireItem {
                    kind: ItemKind::Proposal,
                    bytes,
                }),
        })
    }

    // ---- ingest ------------------------------------------------------------------------------------

    /// Takes items from the mesh through the node's ingest path (after the per-space change budget) and
    /// tells the engine and subscribers what was stored. Returns one outcome per item, in order. The
    /// signatures are checked here, on the event loop: for a single gossip message that is cheap; batches
    /// go through [`Service::check_later`] instead.
    fn ingest(&mut self, wire: Vec<WireItem>, peer: Option<PeerId>) -> Vec<Outcome> {
        let prepared = self.prepare(wire, peer);
        let at = At::now();
        let checked = prepared
            .items
            .into_iter()
            .map(|i| ingest::check(i, at.wall))
            .collect();
        self.finish(prepared.held, checked, prepared.reserved, peer)
    }

    /// Sets aside what needs no checking (items already held, beacons too old to say anything, changes and
    /// beacons over their space's hourly budget, each overrun noted once for the audit with the `peer` it
    /// came from) and returns the rest to check.
    fn prepare(&mut self, wire: Vec<WireItem>, peer: Option<PeerId>) -> Prepared {
        let now = self.now();
        let wall_ms = wall_ms();
        let mut items = Vec::with_capacity(wire.len());
        let mut held: Vec<(usize, Outcome)> = Vec::new();
        let mut reserved = Vec::new();
        for (n, w) in wire.iter().enumerate() {
            let item = signed_item(w);
            if let Some(id) = item.id() {
                if self.index.contains_key(&ItemId(id.0)) {
                    held.push((n, outcome(item.kind, Some(id), Verdict::Known)));
                    continue;
                }
            }
            if item.kind == ingest::ItemKind::ListingChange {
                if let Ok(env) = SignedChange::from_bytes(&item.bytes.0).and_then(|c| c.envelope())
                {
                    if let limits::Verdict::Limited { warn } =
                        self.change_limit.check(&env.space, now)
                    {
                        if warn {
                            tracing::warn!(space = %env.space, per_hour = limits::CHANGES_PER_HOUR, "listing changes over the space's hourly limit are not stored for now");
                            self.findings_due = true;
                            self.node.refuse_from_peer(
                                "listing change",
                                &peer.map(|p| p.to_string()).unwrap_or_default(),
                                Some(env.space.clone()),
                                format!(
                                    "more than {} listing changes of this space an hour (bursts of {}) arrived; the rest are not stored or forwarded for now",
                                    limits::CHANGES_PER_HOUR,
                                    limits::CHANGE_BURST
                                ),
                            );
                        }
                        // Not the sender's fault (it may only relay a burst): the engine asks again once
                        // the budget has refilled a little, not after the ten minutes of a refusal.
                        let id = Hash(env.change_hash);
                        self.engine
                            .item_deferred(ItemId(id.0), now, limits::CHANGE_RETRY);
                        held.push((n, outcome(item.kind, Some(id), Verdict::Waiting)));
                        continue;
                    }
                    self.change_limit.reserve(env.space.clone(), now);
                    reserved.push((item.kind, env.space));
                }
            }
            if item.kind == ingest::ItemKind::SeatBeacon {
                let arriving = SignedBeacon::from_bytes(&item.bytes.0);
                if let Ok((signed, b)) = arriving.and_then(|s| s.decode().map(|b| (s, b))) {
                    if self.beacon_set_aside(&signed, &b, peer, wall_ms) {
                        // Too old to say anything: not stored, forwarded or offered, and not the
                        // sender's fault (a node of an earlier version still offers such beacons). Not
                        // checked either, and it spends no budget.
                        if let Some(id) = item.id() {
                            self.engine.item_refused(ItemId(id.0), now);
                        }
                        held.push((n, outcome(item.kind, item.id(), Verdict::Superseded)));
                        continue;
                    }
                    if let limits::Verdict::Limited { warn } =
                        self.beacon_limit.check(&b.space, now)
                    {
                        if warn {
                            tracing::warn!(space = %b.space, per_hour = limits::BEACONS_PER_HOUR, "seat beacons over the space's hourly limit are not stored for now");
                            self.findings_due = true;
                            self.node.refuse_from_peer(
                                "seat beacon",
                                &peer.map(|p| p.to_string()).unwrap_or_default(),
                                Some(b.space.clone()),
                                format!(
                                    "more than {} seat beacons of this space an hour (bursts of {}) arrived; the rest are not stored or forwarded for now",
                                    limits::BEACONS_PER_HOUR,
                                    limits::BEACON_BURST
                                ),
                            );
                        }
                        // Not punished (a relay may pass on a burst it did not make), not forwarded.
                        held.push((n, outcome(item.kind, item.id(), Verdict::Waiting)));
                        continue;
                    }
                    self.beacon_limit.reserve(b.space.clone(), now);
                    reserved.push((item.kind, b.space));
                }
            }
            items.push(item);
        }
        Prepared {
            items,
            held,
            reserved,
        }
    }

    /// Gives back the budget `reserved` for items that were being checked ([`Service::prepare`]).
    fn release(&mut self, reserved: &[(ingest::ItemKind, SpaceId)]) {
        for (kind, space) in reserved {
            match kind {
                ingest::ItemKind::ListingChange => self.change_limit.refund(space),
                ingest::ItemKind::SeatBeacon => self.beacon_limit.refund(space),
                _ => {}
            }
        }
    }

    /// Checks a batch's signatures on blocking threads, on every core, while the event loop goes on;
    /// batches are judged in the order they arrived ([`Service::on_checked`]).
    fn check_later(&mut self, peer: PeerId, wire: Vec<WireItem>) {
        if self.checking.len() >= MAX_CHECKED_AHEAD || !self.to_check.is_empty() {
            self.to_check.push_back((peer, wire));
            return;
        }
        self.start_check(peer, wire);
    }

    fn start_check(&mut self, peer: PeerId, wire: Vec<WireItem>) {
        let prepared = self.prepare(wire, Some(peer));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Prepared {
            items,
            held,
            reserved,
        } = prepared;
        let task = tokio::task::spawn_blocking(move || {
            let checked = ingest::check_all(items, At::now().wall, threads);
            (peer, held, checked)
        });
        // `checking` yields in this order, so the reservation is found again even if the task fails.
        self.checking.push_back(task);
        self.checking_reserved.push_back(reserved);
    }

    /// A batch whose signatures were checked: judge it against the roster and the store.
    fn on_checked(&mut self, done: Result<Checked3, tokio::task::JoinError>) {
        // The next batch is checked while this one is judged.
        while self.checking.len() < MAX_CHECKED_AHEAD {
            let Some((peer, wire)) = self.to_check.pop_front() else {
                break;
            };
            self.start_check(peer, wire);
        }
        let reserved = self.checking_reserved.pop_front().unwrap_or_default();
        let (peer, held, checked) = match done {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "checking a batch of items failed");
                self.release(&reserved);
                return;
            }
        };
        let bad = checked.iter().filter(|c| c.is_bad()).count();
        let outcomes = self.finish(held, checked, reserved, Some(peer));
        self.log_batch(peer, &outcomes);
        self.count_bad(peer, bad);
    }

    /// Counts items from `peer` that no honest node relays (forged signatures, undecodable bytes: each
    /// costs this node a check and proves nothing). Past [`limits::BAD_ITEMS_PER_PEER`] within
    /// [`limits::BAD_ITEMS_WINDOW`], the peer is disconnected and barred for [`limits::BAR`] (by peer
    /// id), its waiting batches dropped, and the audit records it with the peer.
    fn count_bad(&mut self, peer: PeerId, bad: usize) {
        if bad == 0 || self.swarm.behaviour().guard.is_barred(&peer) {
            // Batches checked before the bar add nothing: it is recorded once.
            return;
        }
        let now = Instant::now();
        self.bad_items
            .retain(|_, (_, since)| now.duration_since(*since) < limits::BAD_ITEMS_WINDOW);
        let (count, _) = self.bad_items.entry(peer).or_insert((0, now));
        *count = count.saturating_add(u32::try_from(bad).unwrap_or(u32::MAX));
        let count = *count;
        if count <= limits::BAD_ITEMS_PER_PEER {
            return;
        }
        self.bad_items.remove(&peer);
        self.swarm
            .behaviour_mut()
            .guard
            .bar(peer, now + limits::BAR);
        self.to_check.retain(|(p, _)| *p != peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        let minutes = limits::BAR.as_secs() / 60;
        tracing::warn!(peer = %peer, bad = count, minutes, "peer sent items no honest node relays (bad signatures or bytes that do not decode); disconnected and barred");
        self.findings_due = true;
        self.node.refuse_from_peer(
            "sync batch",
            &peer.to_string(),
            None,
            format!(
                "{count} items in {} minutes that no honest node relays (signatures that do not verify, bytes that do not decode); the peer was disconnected and is refused for {minutes} minutes",
                limits::BAD_ITEMS_WINDOW.as_secs() / 60
            ),
        );
    }

    /// Judges checked items, tells the engine and subscribers, and puts the set-aside outcomes back in
    /// input order.
    fn finish(
        &mut self,
        held: Vec<(usize, Outcome)>,
        checked: Vec<Checked>,
        reserved: Vec<(ingest::ItemKind, SpaceId)>,
        peer: Option<PeerId>,
    ) -> Vec<Outcome> {
        let now = self.now();
        // The reservations made while checking go back; what was stored spends below.
        self.release(&reserved);
        let report = self.node.ingest_checked_from(
            checked,
            Source::Mesh,
            At::now(),
            peer.map(|p| p.to_string()),
        );
        if let Some(e) = &report.flush_error {
            // Nothing of the batch may be durable: the engine is not told it holds those items, so the
            // next session asks for them again.
            tracing::error!(peer = ?peer, error = %e, "cannot flush the items just received; they will be fetched again");
            let mut out = report.outcomes;
            for o in &mut out {
                if matches!(o.verdict, Verdict::Added(_)) {
                    o.verdict = Verdict::Failed(e.clone());
                }
            }
            for (n, o) in held {
                out.insert(n.min(out.len()), o);
            }
            return out;
        }
        let roster_grew = report.outcomes.iter().chain(&report.woken).any(
            |o| matches!(&o.verdict, Verdict::Added(a) if a.kind == ingest::ItemKind::RosterOp),
        );
        for o in report.outcomes.iter().chain(&report.woken) {
            if let Verdict::Added(a) = &o.verdict {
                if let Some(space) = &a.space {
                    // Only stored items spend the budget, so invalid ones cannot exhaust a space's.
                    match a.kind {
                        ingest::ItemKind::ListingChange => {
                            self.change_limit.spend(space.clone(), now)
                        }
                        ingest::ItemKind::SeatBeacon => self.beacon_limit.spend(space.clone(), now),
                        _ => {}
                    }
                }
            }
            self.record(o);
        }
        if roster_grew {
            self.reclassify();
        }
        // Put the held-back outcomes back in input order.
        let mut out = report.outcomes;
        for (n, o) in held {
            out.insert(n.min(out.len()), o);
        }
        out
    }

    /// Tells the engine, the item index and subscribers what became of one item.
    fn record(&mut self, o: &Outcome) {
        let now = self.now();
        match &o.verdict {
            Verdict::Added(a) => self.added(a),
            // Not stored: the engine stops asking for it (a superseded beacon is simply older than the
            // one kept, and not the sender's fault).
            Verdict::Refused(_) | Verdict::Superseded => {
                if matches!(o.verdict, Verdict::Refused(_)) {
                    self.findings_due = true;
                }
                if let Some(id) = o.id {
                    self.engine.item_refused(ItemId(id.0), now);
                }
            }
            Verdict::Failed(e) => {
                // A full disk fails every item of a transfer alike: one line per distinct sentence a
                // minute, not one per item.
                let fresh = self
                    .last_failure
                    .as_ref()
                    .is_none_or(|(last, at)| last != e || at.elapsed() >= Duration::from_secs(60));
                if fresh {
                    tracing::error!(kind = ?o.kind, error = %e, "cannot store an item");
                    self.last_failure = Some((e.clone(), Instant::now()));
                }
            }
            _ => {}
        }
    }

    fn added(&mut self, a: &Accepted) {
        self.catch_up.received(Instant::now());
        // What this item takes out of the set peers reconcile against: what the store dropped because of
        // it (a replaced beacon, a revoked space's or removed device's beacons, checkpoints it covers, a
        // superseded or settled proposal), and changes a checkpoint covers (kept, and still served when
        // asked for by id).
        for (kind, gone) in &a.leaves {
            let gone = ItemId(gone.0);
            let item = Item::new(engine_kind(*kind), gone);
            if *kind == ingest::ItemKind::ListingChange {
                self.engine.item_removed(&item);
                continue;
            }
            if self.index.remove(&gone).is_some() {
                self.engine.item_removed(&item);
            }
            if *kind == ingest::ItemKind::SeatBeacon {
                self.beacon_ids.retain(|_, id| *id != gone);
            }
        }
        let id = ItemId(a.id.0);
        let mut offered = true;
        let location = match (a.kind, &a.space, &a.pool) {
            (ingest::ItemKind::RosterOp, ..) => Location::Roster,
            (ingest::ItemKind::Checkpoint, Some(space), _) => Location::Checkpoint(space.clone()),
            (ingest::ItemKind::ListingChange, Some(space), _) => Location::Change(space.clone()),
            (ingest::ItemKind::SeatBeacon, Some(space), Some(pool)) => {
                if let Some(old) = self.beacon_ids.insert((space.clone(), pool.clone()), id) {
                    if old != id && self.index.remove(&old).is_some() {
                        self.engine
                            .item_removed(&Item::new(ItemKind::SeatBeacon, old));
                    }
                }
                // A beacon imported from an old bundle may already say nothing.
                offered = self.offer_beacon(id, a.says_until_ms.as_ref(), wall_ms());
                Location::Beacon(space.clone(), pool.clone())
            }
            (ingest::ItemKind::Verification, Some(space), _) => {
                Location::Verification(space.clone())
            }
            (ingest::ItemKind::Proposal, ..) => Location::Proposal,
            _ => return,
        };
        self.index.insert(id, location);
        if !a.hidden && offered {
            self.engine.item_added(Item::new(engine_kind(a.kind), id));
        }
        self.push_accepted(a);
    }

    /// Announces what a control request signed or imported: to the engine, to subscribers, and on
    /// gossip (a large import reaches peers at the next reconciliation instead).
    fn announce(&mut self, made: Vec<Made>) {
        let gossip = made.len() <= MAX_GOSSIPED_PER_REQUEST;
        for m in made {
            self.added(&m.accepted);
            if !gossip {
                continue;
            }
            let wire = WireItem {
                kind: engine_kind(m.item.kind),
                bytes: m.item.bytes.0,
            };
            match postcard::to_stdvec(&wire) {
                Ok(data) => match self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), data)
                {
                    Ok(_) => {
                        tracing::info!(kind = ?m.accepted.kind, id = %m.accepted.id.short(), "published a local edit")
                    }
                    Err(e) => {
                        tracing::info!(kind = ?m.accepted.kind, error = %e, "local edit not gossiped; peers get it at the next sync")
                    }
                },
                Err(e) => tracing::error!(error = %e, "cannot encode a gossip message"),
            }
        }
    }

    // ---- the control socket ------------------------------------------------------------------------

    /// Answers one control request: the mesh's own state for status and peers, the core's dispatcher for
    /// everything else; then announces what the request made.
    /// Answers an audit (or an audit export) on a blocking thread, from a [`Node::reader`] of the
    /// store: rebuilding every listing from its signed changes takes the better part of a minute for an
    /// alliance with a year of history, and the event loop goes on meanwhile (sync, gossip, every other
    /// command). One audit runs at a time; the next waits for it. The answer describes the store as of
    /// the audit's reads, and a running node's audit rewrites no index (the node keeps its own current).
    fn audit_aside(
        &mut self,
        req: ApiRequest,
        reply: tokio::sync::oneshot::Sender<Result<Response, ApiError>>,
    ) {
        let reader = self.node.reader();
        let one_at_a_time = Arc::clone(&self.auditing);
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = one_at_a_time
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = chrono::Utc::now();
            let answer = match req {
                // Subscribers (the `deskmesh audit` that asked, a terminal UI) hear how far it got, a
                // few times a second and at the end.
                ApiRequest::Audit => {
                    let mut told: Option<Instant> = None;
                    let mut tell = |p: deskmesh_core::audit::AuditProgress| {
                        let last = p.spaces_done == p.spaces;
                        if !last && told.is_some_and(|t| t.elapsed() < AUDIT_PROGRESS_EVERY) {
                            return;
                        }
                        told = Some(Instant::now());
                        if events.receiver_count() == 0 {
                            return;
                        }
                        if let Ok(line) = control::event_line(&Event::AuditProgress(p)) {
                            let _ = events.send(line);
                        }
                    };
                    reader
                        .audit_watched(now, &mut tell)
                        .map(|r| Response::Audit(Box::new(r)))
                        .map_err(ApiError::from)
                }
                other => api::serve(&mut { reader }, other, now),
            };
            let _ = reply.send(answer);
        });
    }

    fn on_call(&mut self, req: ApiRequest) -> Result<Response, ApiError> {
        let now = chrono::Utc::now();
        let result = match req {
            ApiRequest::Status => Ok(Response::Status(Box::new(self.status()?))),
            ApiRequest::Peers => Ok(Response::Peers(self.peers())),
            ApiRequest::AllianceInviteMember { mut peers } => {
                // A member's laptop can dial this running node first.
                peers.extend(self.listen_addrs());
                api::serve(
                    &mut self.node,
                    ApiRequest::AllianceInviteMember { peers },
                    now,
                )
            }
            ApiRequest::Snapshot => {
                let status = self.status()?;
                self.node
                    .snapshot(status)
                    .map(|s| Response::Snapshot(Box::new(s)))
                    .map_err(ApiError::from)
            }
            ApiRequest::SnapshotHead { first } => {
                let status = self.status()?;
                self.node
                    .snapshot_head(status, first)
                    .map(|s| Response::SnapshotHead(Box::new(s)))
                    .map_err(ApiError::from)
            }
            other => api::serve(&mut self.node, other, now),
        };
        let made = self.node.take_made();
        if !made.is_empty() {
            self.announce(made);
        }
        result
    }

    // ---- live events for subscribed front ends -----------------------------------------------------

    fn push(&self, event: &Event) {
        if self.events.receiver_count() == 0 {
            return;
        }
        match control::event_line(event) {
            // No subscriber is not an error: the change is in the store either way.
            Ok(line) => {
                let _ = self.events.send(line);
            }
            Err(e) => tracing::error!(error = %e, "cannot encode an event"),
        }
    }

    fn push_status(&self) {
        if self.events.receiver_count() == 0 {
            return;
        }
        match self.status() {
            Ok(s) => self.push(&Event::Status(Box::new(s))),
            Err(e) => tracing::warn!(error = %e, "cannot read the status for subscribers"),
        }
    }

    /// Tells subscribers what a newly stored item changed; roster operations are coalesced into one
    /// reload per tick, since a cold join can bring thousands.
    fn push_accepted(&mut self, a: &Accepted) {
        if self.events.receiver_count() == 0 {
            return;
        }
        if a.kind == ingest::ItemKind::RosterOp {
            self.reload_due = true;
            return;
        }
        match self.node.event_for(a) {
            Ok(Some(Event::Reload)) => self.reload_due = true,
            Ok(Some(event)) => self.push(&event),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read a change back for subscribers"),
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.connected
            .iter()
            .map(|(peer, addrs)| PeerInfo {
                peer_id: peer.to_string(),
                addresses: addrs.iter().map(|a| a.to_string()).collect(),
                relayed: !addrs.is_empty()
                    && addrs
                        .iter()
                        .all(|a| a.iter().any(|p| matches!(p, Protocol::P2pCircuit))),
            })
            .collect()
    }

    fn listen_addrs(&self) -> Vec<String> {
        self.swarm
            .listeners()
            .map(|a| nat::with_peer(a.clone(), self.me).to_string())
            .collect()
    }

    fn status(&self) -> anyhow::Result<NodeStatus> {
        let mut status = self.node.status()?;
        status.running = true;
        status.listen = self.listen_addrs();
        status.peers = self.peers();
        status.last_sync = self.last_sync;
        status.catching_up = self.catch_up.progress();
        status.reachability = Reachability {
            nat: self.nat.verdict(),
            external: self
                .swarm
                .external_addresses()
                .map(|a| nat::with_peer(a.clone(), self.me).to_string())
                .collect(),
            relayed: self
                .nat
                .reserved_addrs()
                .into_iter()
                .map(|a| a.with(Protocol::P2p(self.me)).to_string())
                .collect(),
        };
        Ok(status)
    }
}

fn outcome(kind: ingest::ItemKind, id: Option<Hash>, verdict: Verdict) -> Outcome {
    Outcome { kind, id, verdict }
}

/// Items waiting to go to one peer, by id (their bytes are read when their batch is sent).
#[derive(Default)]
struct Outbox {
    /// Roster operations, in the roster's causal order; they go before anything else.
    roster: std::collections::VecDeque<ItemId>,
    other: std::collections::VecDeque<ItemId>,
    /// Everything in the two queues, so an item asked for twice is queued once.
    queued: std::collections::HashSet<ItemId>,
    /// Requests sent and not answered yet, and whether each carries roster operations.
    in_flight: HashMap<OutboundRequestId, bool>,
}

/// What [`Outbox::push`] did.
#[derive(Debug, PartialEq, Eq)]
enum Queued {
    New,
    Already,
    Full,
}

impl Outbox {
    fn push(&mut self, id: ItemId, roster: bool) -> Queued {
        if self.queued.contains(&id) {
            return Queued::Already;
        }
        if self.queued.len() >= MAX_OUTBOX_ITEMS {
            return Queued::Full;
        }
        self.queued.insert(id);
        if roster {
            self.roster.push_back(id);
        } else {
            self.other.push_back(id);
        }
        Queued::New
    }

    /// The next id of a roster batch (`roster`) or of another batch.
    fn pop(&mut self, roster: bool) -> Option<ItemId> {
        let id = if roster {
            self.roster.pop_front()
        } else {
            self.other.pop_front()
        }?;
        self.queued.remove(&id);
        Some(id)
    }

    fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

/// A connected peer whose proof may still come.
#[derive(Debug)]
struct Unsettled {
    since: Instant,
    /// Sync messages it sent meanwhile, in order (at most one per stream it may have open).
    held: Vec<Vec<u8>>,
}

/// A token bucket of items a stranger may be served.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn full() -> Self {
        Self {
            tokens: STRANGER_BURST,
            at: Instant::now(),
        }
    }

    /// Takes up to `n` items from the budget; returns how many it allows.
    fn take(&mut self, n: usize, now: Instant) -> usize {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() * STRANGER_PER_MINUTE / 60.0;
        self.tokens = (self.tokens + refill).min(STRANGER_BURST);
        self.at = now;
        let allowed = (self.tokens.floor() as usize).min(n);
        self.tokens -= allowed as f64;
        allowed
    }
}

/// Resolves when the embedding program (the demo) asks the node to stop; never without one.
async fn stopped(shutdown: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

// ---- NAT traversal: relays, AutoNAT, hole punching (the policy lives in `nat`) ---------------------

impl Service {
    /// Listens on the relay circuits the NAT policy wants now (pinned ones, or a relay chosen because
    /// AutoNAT says this node is private).
    fn listen_on_relays(&mut self) {
        let now = self.now();
        let swarm = &self.swarm;
        let due = self.nat.due(now, |p| swarm.is_connected(p));
        for addr in due {
            let id = match self.swarm.listen_on(addr.clone()) {
                Ok(id) => {
                    tracing::debug!(address = %addr, "asking a relay for a reservation");
                    Some(id)
                }
                Err(e) => {
                    tracing::warn!(address = %addr, error = %e, "cannot listen through a relay");
                    None
                }
            };
            self.nat.started(&addr, id, now);
        }
    }

    fn on_listener_closed(
        &mut self,
        id: libp2p::core::transport::ListenerId,
        reason: Result<(), std::io::Error>,
    ) {
        let now = self.now();
        if let Some(addr) = self.nat.closed(id, now) {
            match reason {
                Ok(()) => {
                    tracing::info!(address = %addr, "relay reservation ended; listening through a relay again later")
                }
                Err(e) => {
                    tracing::warn!(address = %addr, error = %e, "relay reservation failed; listening through a relay again later")
                }
            }
            self.status_dirty = true;
        }
    }

    /// Closes the relayed connections of peers that also have a direct one (a hole punch succeeded a
    /// tick ago, or one of them dialed the other directly): a relay serves few circuits per peer
    /// (`behaviour::RELAY_MAX_CIRCUITS_PER_PEER`, counting both ends), and an idle relayed connection
    /// kept open by gossip would hold its slot for the circuit's whole life.
    ///
    /// Two relayed connections to one peer (both ends dialed at once, or through both of the relay's
    /// addresses) are one too many: the end with the greater peer id closes all but its oldest, so the
    /// two ends never each close a different one.
    fn close_superseded_circuits(&mut self) {
        let mut superseded = Vec::new();
        for (peer, conns) in &self.relayed {
            let direct = self
                .connected
                .get(peer)
                .is_some_and(|addrs| addrs.iter().any(|a| !nat::is_relayed(a)));
            if direct {
                superseded.extend(conns.iter().copied());
            } else if self.me > *peer {
                superseded.extend(conns.iter().skip(1).copied());
            }
        }
        for id in superseded {
            if self.swarm.close_connection(id) {
                tracing::debug!(connection = ?id, "closing a relayed connection: the peer is connected directly or through another circuit");
            }
        }
    }

    fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                self.nat.accepted(relay_peer_id);
                if renewal {
                    tracing::debug!(relay = %relay_peer_id, "relay reservation renewed");
                } else {
                    tracing::info!(relay = %relay_peer_id, "relay reservation accepted; reachable through the relay");
                    self.status_dirty = true;
                    // Reachable now: look for peers at once rather than at the next maintenance (up
                    // to 30 s): the query dials the peers it finds, through their circuits too.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::info!(relay = %relay_peer_id, "relayed connection opened through a relay");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::info!(peer = %src_peer_id, "relayed connection accepted from a peer");
            }
        }
    }

    fn on_autonat(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { old, new } = event else {
            return;
        };
        tracing::info!(old = ?old, new = ?new, "reachability changed (AutoNAT)");
        let private = match new {
            autonat::NatStatus::Private => true,
            autonat::NatStatus::Public(_) => false,
            // No verdict (no peer to probe with): keep whatever reservation the node holds.
            autonat::NatStatus::Unknown => return,
        };
        self.status_dirty = true;
        if let Some(listener) = self.nat.set_private(private) {
            tracing::info!("publicly reachable: dropping the relay reservation");
            self.swarm.remove_listener(listener);
        }
        self.listen_on_relays();
    }
}

/// Logs what the relay server does for others: reservations and circuits at info, refusals at debug.
fn on_relay_server(event: relay::Event) {
    match event {
        relay::Event::ReservationReqAccepted {
            src_peer_id,
            renewed: false,
        } => tracing::info!(peer = %src_peer_id, "serving a relay reservation"),
        relay::Event::ReservationReqDenied {
            src_peer_id,
            status,
        } => tracing::debug!(peer = %src_peer_id, status = ?status, "relay reservation denied"),
        relay::Event::CircuitReqAccepted {
            src_peer_id,
            dst_peer_id,
        } => tracing::info!(from = %src_peer_id, to = %dst_peer_id, "relaying a circuit"),
        relay::Event::CircuitReqDenied {
            src_peer_id,
            dst_peer_id,
            status,
        } => {
            tracing::debug!(from = %src_peer_id, to = %dst_peer_id, status = ?status, "relay circuit denied")
        }
        _ => {}
    }
}

/// One line per hole-punch attempt that ends.
fn on_dcutr(event: dcutr::Event) {
    match event.result {
        Ok(_) => {
            tracing::info!(peer = %event.remote_peer_id, "hole punch succeeded: direct connection")
        }
        Err(e) => {
            tracing::info!(peer = %event.remote_peer_id, error = %e, "hole punch failed; staying relayed")
        }
    }
}

/// A seed for the engine's nonces and jitter; it only needs to differ between nodes and runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Whether a dial failed because its local port was taken. Dials reuse the listening port (so peers
/// behind a NAT see one address); two dials to the same address at once, or a connection to it still in
/// TIME_WAIT, make the kernel refuse that port with "Address already in use" for up to a minute, and
/// every retry from the same port fails the same way. The next dial then takes a new port.
fn port_taken(error: &libp2p::swarm::DialError) -> bool {
    dial_failed_with(error, std::io::ErrorKind::AddrInUse)
}

/// Whether any address of a failed dial failed with an I/O error of this kind.
///
/// The transport stack wraps the kernel's error in `either::Either` levels (TCP or QUIC, direct or
/// relayed), and `Either::source` skips the level below it, so the `source()` chain never reaches the
/// `io::Error`. The walk below follows `source()` and `io::Error::get_ref`; where the chain breaks, the
/// kind is read from the `Debug` form, which prints every level down to the kernel's
/// `Os { code, kind, message }`. A test dials through the real stack to keep both honest. Only the
/// transport's own failures are read (an unsupported address prints the address, which a peer chose);
/// a remote text that still imitates the kernel's form (a QUIC close reason) can only make the next dial
/// take a fresh port.
fn dial_failed_with(error: &libp2p::swarm::DialError, kind: std::io::ErrorKind) -> bool {
    let libp2p::swarm::DialError::Transport(attempts) = error else {
        return false;
    };
    let needle = format!("kind: {kind:?}, message: ");
    attempts.iter().any(|(_, e)| {
        let libp2p::core::transport::TransportError::Other(e) = e else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = next {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == kind {
                    return true;
                }
                if let Some(inner) = io.get_ref() {
                    next = Some(inner);
                    continue;
                }
            }
            next = err.source();
        }
        format!("{e:?}").contains(&needle)
    })
}

#[cfg(test)]
mod tests {
    use std::io;

    use libp2p::core::transport::TransportError;
    use libp2p::swarm::DialError;

    use deskmesh_sync::ItemId;

    use super::{dial_failed_with, port_taken, BeaconExpiry};

    /// Due entries come out soonest first and only once their time has passed; replaced beacons' entries
    /// are dropped once they outnumber the kept ones.
    #[test]
    fn beacon_expiry_gives_what_is_due_in_order_and_stays_bounded() {
        let id = |n: u8| ItemId([n; 32]);
        let mut q = BeaconExpiry::default();
        q.push(300, id(3));
        q.push(100, id(1));
        q.push(200, id(2));
        assert!(q.due(100).is_empty(), "an entry is due only after its time");
        assert_eq!(q.due(201), vec![id(1), id(2)]);
        assert_eq!(q.due(10_000), vec![id(3)]);
        assert_eq!(q.len(), 0);

        for n in 0..2000u32 {
            q.push(i64::from(n), ItemId([(n % 251) as u8; 32]));
        }
        q.compact(1000, |_| false);
        assert_eq!(
            q.len(),
            2000,
            "within twice the kept beacons and the slack: left alone"
        );
        q.compact(10, |i| *i == id(7));
        assert!(
            q.len() < 20,
            "replaced beacons' entries dropped: {}",
            q.len()
        );
        assert!(q.due(i64::MAX).iter().all(|i| *i == id(7)));
    }

    fn failed(errors: Vec<io::Error>) -> DialError {
        DialError::Transport(
            errors
                .into_iter()
                .map(|e| {
                    let addr: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/4001"
                        .parse()
                        .unwrap_or_else(|_| unreachable!());
                    (addr, TransportError::Other(e))
                })
                .collect(),
        )
    }

    /// A dial refused its local port is told apart from every other failure, however deep the transport
    /// wrapped the kernel's error.
    #[test]
    fn a_taken_port_is_told_from_other_dial_failures() {
        let taken = || io::Error::from(io::ErrorKind::AddrInUse);
        assert!(port_taken(&failed(vec![taken()])));
        assert!(port_taken(&failed(vec![io::Error::other(taken())])));
        assert!(port_taken(&failed(vec![
            io::Error::from(io::ErrorKind::ConnectionRefused),
            io::Error::other(io::Error::other(taken())),
        ])));
        assert!(!port_taken(&failed(vec![io::Error::from(
            io::ErrorKind::ConnectionRefused
        )])));
        assert!(!port_taken(&failed(Vec::new())));
        assert!(!port_taken(&DialError::Aborted));
        // An address a peer chose, printed in the error, is not read as the kernel's answer.
        let spoof: libp2p::Multiaddr = "/dns4/kind: AddrInUse, message: x/tcp/1"
            .parse()
            .expect("address");
        assert!(!port_taken(&DialError::Transport(vec![(
            spoof.clone(),
            TransportError::MultiaddrNotSupported(spoof)
        )])));
    }

    /// The kernel's error is found through the wrapping of the real transport stack (TCP, QUIC and the
    /// relay, each behind an `Either`), where `source()` alone loses it: a dial to a closed port fails
    /// with "connection refused", and the same walk finds "address in use" when the port is taken.
    #[tokio::test]
    async fn the_kernels_error_is_found_through_the_real_transport() {
        use futures::StreamExt;
        use libp2p::swarm::dial_opts::DialOpts;
        use libp2p::swarm::SwarmEvent;

        let mut seed = [7u8; 32];
        let mut swarm = crate::mesh::behaviour::build_swarm(&mut seed, false, "test".into(), true)
            .expect("swarm");
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address"))
            .expect("listen");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let stranger = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut dialled = false;
        let error = loop {
            let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .expect("the dial fails within 30 s");
            match event {
                SwarmEvent::NewListenAddr { .. } if !dialled => {
                    dialled = true;
                    let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}")
                        .parse()
                        .expect("address");
                    swarm
                        .dial(DialOpts::peer_id(stranger).addresses(vec![addr]).build())
                        .expect("dial starts");
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => break error,
                _ => {}
            }
        };
        assert!(
            dial_failed_with(&error, io::ErrorKind::ConnectionRefused),
            "refused: {error:?}"
        );
        assert!(!port_taken(&error), "not a taken port: {error:?}");
    }
}
