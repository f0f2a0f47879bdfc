//! The event loop of `deskmesh run`: one task owns the libp2p swarm, the opened node and the sync engine.
//! It turns swarm events into engine events, hands every received item to the node's one ingest path
//! ([`Node::ingest`]) before gossip is forwarded, executes the engine's intents (sync messages, item
//! pushes, fetches), and answers control-socket requests through the core's dispatcher
//! ([`deskmesh_core::api::serve`]), announcing at once whatever a request signed or imported.
//!
//! It also carries out the NAT policy of [`super::nat`] (listening through relays, logging reservations,
//! circuits and hole punches) and the per-space change budget of [`super::limits`]: a listing change over
//! it is not stored and its gossip message is ignored, not rejected, since an honest peer may relay a burst.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deskmesh_core::api::{self, ApiError, Request as ApiRequest, Response};
use deskmesh_core::ingest::{
    self, Accepted, At, Checked, Made, Outcome, SignedItem, Source, Verdict,
};
use deskmesh_core::view::{CatchingUp, Event, NodeStatus, PeerInfo};
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_keys::{Hash, SpaceId};
use deskmesh_sync::{Config, Intent, Item, ItemId, ItemKind, SyncEngine};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, gossipsub, identify, kad, mdns, relay, Multiaddr, PeerId, Swarm};
use tokio::sync::{broadcast, mpsc};

use super::behaviour::{self, Behaviour, BehaviourEvent, Reply, Request, WireItem};
use super::{limits, nat, RunOptions};
use crate::control::server::{self as control, Call};

/// Item batches in flight to one peer at once; the rest wait in its outbox, so a large transfer neither
/// exceeds the peer's stream limit (which drops requests) nor overtakes the roster operations it needs.
const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Bytes of items queued for one peer; a fetch beyond that is dropped and asked for again next session.
const MAX_OUTBOX_BYTES: usize = 64 * 1024 * 1024;
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
    Change(SpaceId),
    Beacon(SpaceId, String),
    Verification(SpaceId),
    /// A proposal: found among the few the store holds by its item id.
    Proposal,
}

/// The sync engine's kind of a core item kind, and back (the two enums list the same kinds in the same
/// transfer order).
fn engine_kind(kind: ingest::ItemKind) -> ItemKind {
    match kind {
        ingest::ItemKind::RosterOp => ItemKind::RosterOp,
        ingest::ItemKind::ListingChange => ItemKind::ListingChange,
        ingest::ItemKind::SeatBeacon => ItemKind::SeatBeacon,
        ingest::ItemKind::Verification => ItemKind::Verification,
        ingest::ItemKind::Proposal => ItemKind::Proposal,
    }
}

fn core_kind(kind: ItemKind) -> ingest::ItemKind {
    match kind {
        ItemKind::RosterOp => ingest::ItemKind::RosterOp,
        ItemKind::ListingChange => ingest::ItemKind::ListingChange,
        ItemKind::SeatBeacon => ingest::ItemKind::SeatBeacon,
        ItemKind::Verification => ingest::ItemKind::Verification,
        ItemKind::Proposal => ingest::ItemKind::Proposal,
    }
}

fn signed_item(wire: &WireItem) -> SignedItem {
    SignedItem::new(core_kind(wire.kind), wire.bytes.clone())
}

/// Starts listening and dialing, then runs the event loop until Ctrl-C, SIGTERM or `opts.shutdown`.
/// `socket` is where the control socket is served.
pub async fn run(node: Node, socket: PathBuf, opts: RunOptions) -> anyhow::Result<()> {
    let mut seed = *node.signer().seed();
    let mut swarm = behaviour::build_swarm(&mut seed, opts.mdns)?;
    let alliance = node
        .alliance_id()
        .context("this node is not in an alliance yet")?;
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
    for addr in listen.into_iter().filter(|a| !nat::is_relayed(a)) {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("cannot listen on {addr}"))?;
    }

    let (tx, mut calls) = mpsc::channel::<Call>(64);
    let (events, _) = broadcast::channel(crate::control::PUSH_BACKLOG);
    let server = control::serve(&socket, tx, events.clone())?;

    let mut svc = Service::new(node, swarm, topic)?;
    svc.events = events;
    let mut shutdown = opts.shutdown.clone();
    let mut bootstrap = opts.bootstrap.clone();
    bootstrap.extend(svc.known_peer_addrs());
    svc.bootstrap = bootstrap;
    svc.dial_bootstrap();
    svc.nat = nat_state;
    svc.listen_on_relays();
    tracing::info!(peer = %svc.me, items = svc.engine.items().len(), "node started");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let result = loop {
        tokio::select! {
            event = svc.swarm.select_next_some() => svc.on_swarm(event),
            Some((req, reply)) = calls.recv() => {
                let answer = svc.on_call(req);
                let _ = reply.send(answer);
            }
            Some(done) = svc.checking.next(), if !svc.checking.is_empty() => svc.on_checked(done),
            _ = tick.tick() => svc.on_tick(),
            _ = stopped(&mut shutdown) => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
        }
    };
    server.abort();
    let _ = std::fs::remove_file(&socket);
    svc.node.store.flush()?;
    tracing::info!("node stopped");
    result
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
    connected: BTreeMap<PeerId, Vec<Multiaddr>>,
    bootstrap: Vec<Multiaddr>,
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
}

/// A checked batch: its peer, the outcomes set aside before checking (by input position), the rest.
type Checked3 = (
    PeerId,
    Vec<(usize, Outcome)>,
    Vec<Checked>,
    Vec<(ingest::ItemKind, SpaceId)>,
);

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
            connected: BTreeMap::new(),
            bootstrap: Vec::new(),
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
        };
        let items = svc.scan()?;
        svc.engine = SyncEngine::with_items(Config::default(), seed(), items)?;
        Ok(svc)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Indexes every item in the store (once, at start) and returns them.
    fn scan(&mut self) -> anyhow::Result<Vec<Item>> {
        let store = self.node.store.clone();
        let mut new = Vec::new();
        for (hash, _) in store.ops()? {
            let id = ItemId(hash.0);
            if self.index.insert(id, Location::Roster).is_none() {
                new.push(Item::new(ItemKind::RosterOp, id));
            }
        }
        for space in store.spaces()? {
            for hash in store.change_hashes(&space)? {
                let id = ItemId(hash);
                if self
                    .index
                    .insert(id, Location::Change(space.clone()))
                    .is_none()
                {
                    new.push(Item::new(ItemKind::ListingChange, id));
                }
            }
        }
        for (space, pool, bytes) in store.beacons()? {
            let id = ItemId(Hash::of(ingest::BEACON_ITEM, &bytes).0);
            if self
                .index
                .insert(id, Location::Beacon(space.clone(), pool.clone()))
                .is_none()
            {
                new.push(Item::new(ItemKind::SeatBeacon, id));
            }
            if let Some(old) = self.beacon_ids.insert((space, pool), id) {
                if old != id && self.index.remove(&old).is_some() {
                    self.engine
                        .item_removed(&Item::new(ItemKind::SeatBeacon, old));
                }
            }
        }
        for (space, hash, _) in store.verifications()? {
            let id = ItemId(hash.0);
            if self
                .index
                .insert(id, Location::Verification(space))
                .is_none()
            {
                new.push(Item::new(ItemKind::Verification, id));
            }
        }
        for (_, bytes) in store.proposals()? {
            let id = ItemId(Hash::of(ingest::PROPOSAL_ITEM, &bytes).0);
            if self.index.insert(id, Location::Proposal).is_none() {
                new.push(Item::new(ItemKind::Proposal, id));
            }
        }
        Ok(new)
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

    fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                if peer == self.me || self.connected.contains_key(&peer) {
                    continue;
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(address = %addr, error = %e, "cannot dial bootstrap peer");
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
                endpoint,
                num_established,
                ..
            } => {
                let addr = nat::remote_addr(&endpoint, peer_id);
                self.connected
                    .entry(peer_id)
                    .or_default()
                    .push(addr.clone());
                if num_established.get() == 1 {
                    self.status_dirty = true;
                    tracing::info!(peer = %peer_id, address = %addr, "peer connected");
                    let now = self.now();
                    let intents = self.engine.connected(peer_id, now);
                    self.execute(intents);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let addr = nat::remote_addr(&endpoint, peer_id);
                if let Some(list) = self.connected.get_mut(&peer_id) {
                    list.retain(|a| *a != addr);
                }
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    self.engine.disconnected(&peer_id);
                    self.outboxes.remove(&peer_id);
                    self.status_dirty = true;
                    tracing::info!(peer = %peer_id, "peer disconnected");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
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
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    let connected = self.connected.get(&peer_id).cloned().unwrap_or_default();
                    if let Some(addr) = nat::pick_relay_addr(&info.listen_addrs, &connected) {
                        self.nat.relay_found(peer_id, addr);
                        self.listen_on_relays();
                    }
                }
                for addr in info.listen_addrs {
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
            BehaviourEvent::RelayClient(ev) => self.on_relay_client(ev),
            BehaviourEvent::Relay(ev) => on_relay_server(ev),
            BehaviourEvent::Autonat(ev) => self.on_autonat(ev),
            BehaviourEvent::Dcutr(ev) => on_dcutr(ev),
            _ => {}
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == self.me
            || self.connected.contains_key(&peer)
            || self.connected.len() >= MAX_AUTO_DIAL
        {
            return;
        }
        if let Err(e) = self.swarm.dial(peer) {
            tracing::debug!(peer = %peer, error = %e, "cannot dial discovered peer");
        }
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
                let now = self.now();
                match self.engine.received_bytes(&peer, &bytes, now) {
                    Ok(intents) => self.execute(intents),
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "rejected sync message")
                    }
                }
            }
            Request::Items(packed) => match behaviour::unpack(&packed) {
                Ok(items) => self.check_later(peer, items),
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "dropped an item batch that does not unpack")
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
                    if a.kind == ingest::ItemKind::ListingChange {
                        if let Some(space) = &a.space {
                            *by_space.entry(space.clone()).or_default() += 1;
                        }
                    }
                }
                Verdict::Refused(_) => refused += 1,
                _ => {}
            }
        }
        // One line per space while few changed; a bulk transfer (a cold join) logs them at debug.
        for (space, n) in &by_space {
            if by_space.len() <= PER_SPACE_LOG_LINES {
                tracing::info!(peer = %peer, space = %space, changes = n, "synced listing changes");
            } else {
                tracing::debug!(peer = %peer, space = %space, changes = n, "synced listing changes");
            }
        }
        if !added.is_empty() {
            self.last_sync = Some(chrono::Utc::now());
            tracing::info!(
                peer = %peer,
                roster_ops = added.get(&ingest::ItemKind::RosterOp).copied().unwrap_or(0),
                changes = added.get(&ingest::ItemKind::ListingChange).copied().unwrap_or(0),
                beacons = added.get(&ingest::ItemKind::SeatBeacon).copied().unwrap_or(0),
                "synced new items from peer"
            );
        }
        if refused > 0 {
            tracing::warn!(peer = %peer, refused, "peer sent items that were refused");
        }
    }

    fn on_tick(&mut self) {
        if std::mem::take(&mut self.status_dirty) || self.pushed_sync != self.last_sync {
            self.pushed_sync = self.last_sync;
            self.push_status();
        }
        if std::mem::take(&mut self.reload_due) {
            self.push(&Event::Reload);
        }
        if std::mem::take(&mut self.findings_due) && self.events.receiver_count() > 0 {
            match self.node.findings() {
                Ok(findings) => self.push(&Event::Findings(findings)),
                Err(e) => tracing::warn!(error = %e, "cannot read the findings for subscribers"),
            }
        }
        self.catch_up.tick(Instant::now());
        let expired = self.node.expire_waiting(At::now());
        for o in &expired {
            self.record(o);
        }
        let now = self.now();
        let intents = self.engine.tick(now);
        self.execute(intents);
        self.listen_on_relays();
        if now >= self.last_maintenance + Duration::from_secs(30) {
            self.last_maintenance = now;
            if self.connected.is_empty() {
                self.dial_bootstrap();
            } else {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
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

    /// Loads the items into batches of about [`behaviour::ITEM_BATCH_BYTES`] (roster operations in
    /// batches of their own) and queues them for the peer.
    fn serve(&mut self, peer: PeerId, ids: &[ItemId]) {
        let mut items = Vec::new();
        for id in ids {
            match self.load(id) {
                Ok(Some(item)) => items.push((*id, item)),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot read an item to serve"),
            }
        }
        // Roster operations first, parents before children (the peer applies an operation only once
        // its parents are there); then everything they authorise.
        let causal: HashMap<ItemId, usize> = match self.node.roster() {
            Some(roster) if items.iter().any(|(_, i)| i.kind == ItemKind::RosterOp) => roster
                .ops_in_order()
                .iter()
                .enumerate()
                .map(|(n, (hash, _, _))| (ItemId(hash.0), n))
                .collect(),
            _ => HashMap::new(),
        };
        // Listing changes go space by space, each space's in the order they were made, so the peer
        // applies them in turn instead of holding many that wait for their dependencies.
        let made_at = |item: &WireItem| {
            SignedChange::from_bytes(&item.bytes)
                .and_then(|c| c.envelope())
                .map_or((None, i64::MAX), |e| (Some(e.space), e.created_at_ms))
        };
        items.sort_by_cached_key(|(id, item)| {
            let (space, at) = if item.kind == ItemKind::ListingChange {
                made_at(item)
            } else {
                (None, 0)
            };
            (
                item.kind,
                causal.get(id).copied().unwrap_or(usize::MAX),
                space,
                at,
            )
        });
        let items: Vec<WireItem> = items.into_iter().map(|(_, item)| item).collect();
        let sent = items.len();
        let outbox = self.outboxes.entry(peer).or_default();
        let mut batch: Vec<WireItem> = Vec::new();
        let mut size = 0usize;
        let mut dropped = 0usize;
        for item in items {
            let roster = item.kind == ItemKind::RosterOp;
            let kind_changes = batch
                .first()
                .is_some_and(|first| (first.kind == ItemKind::RosterOp) != roster);
            if kind_changes || size >= behaviour::ITEM_BATCH_BYTES {
                dropped += outbox.push(std::mem::take(&mut batch), size);
                size = 0;
            }
            size += item.bytes.len();
            batch.push(item);
        }
        if !batch.is_empty() {
            dropped += outbox.push(batch, size);
        }
        if dropped > 0 {
            tracing::warn!(peer = %peer, items = dropped, "the peer's outbox is full; it will ask again");
        }
        if sent > dropped {
            tracing::info!(peer = %peer, items = sent - dropped, "sending items the peer lacks");
        }
        self.pump(peer);
    }

    /// Sends queued batches while fewer than [`MAX_BATCHES_IN_FLIGHT`] are unanswered. Roster batches go
    /// one at a time and nothing follows one until it is answered (the peer handles requests in order of
    /// arrival, but several streams may arrive in any order).
    fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(outbox) = self.outboxes.get_mut(&peer) else {
                return;
            };
            if outbox.in_flight.len() >= MAX_BATCHES_IN_FLIGHT {
                return;
            }
            let Some((batch, size)) = outbox.queue.front() else {
                return;
            };
            let roster = batch.first().is_some_and(|i| i.kind == ItemKind::RosterOp);
            // Roster batches go one at a time (streams may arrive in any order, and an operation whose
            // parents are in a later batch would wait); nothing else goes while one is unanswered.
            if outbox.in_flight.values().any(|r| *r) {
                return;
            }
            let size = *size;
            let Some((batch, _)) = outbox.queue.pop_front() else {
                return;
            };
            outbox.queued_bytes = outbox.queued_bytes.saturating_sub(size);
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

    /// Sets aside what needs no checking (items already held, changes and beacons over their space's
    /// hourly budget, each overrun noted once for the audit with the `peer` it came from) and returns the
    /// rest to check.
    fn prepare(&mut self, wire: Vec<WireItem>, peer: Option<PeerId>) -> Prepared {
        let now = self.now();
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
                        // Not the sender's fault (it may only relay a burst): the engine asks again later.
                        let id = Hash(env.change_hash);
                        self.engine.item_refused(ItemId(id.0), now);
                        held.push((n, outcome(item.kind, Some(id), Verdict::Waiting)));
                        continue;
                    }
                    self.change_limit.spend(env.space.clone(), now);
                    reserved.push((item.kind, env.space));
                }
            }
            if item.kind == ingest::ItemKind::SeatBeacon {
                if let Ok(b) = SignedBeacon::from_bytes(&item.bytes.0).and_then(|b| b.decode()) {
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
                    self.beacon_limit.spend(b.space.clone(), now);
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

    /// Checks a batch's signatures on blocking threads, on every core, while the event loop goes on;
    /// batches are judged in the order they arrived ([`Service::on_checked`]).
    fn check_later(&mut self, peer: PeerId, wire: Vec<WireItem>) {
        let prepared = self.prepare(wire, Some(peer));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Prepared {
            items,
            held,
            reserved,
        } = prepared;
        let task = tokio::task::spawn_blocking(move || {
            let checked = ingest::check_all(items, At::now().wall, threads);
            (peer, held, checked, reserved)
        });
        self.checking.push_back(task);
    }

    /// A batch whose signatures were checked: judge it against the roster and the store.
    fn on_checked(&mut self, done: Result<Checked3, tokio::task::JoinError>) {
        let (peer, held, checked, reserved) = match done {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "checking a batch of items failed");
                return;
            }
        };
        let outcomes = self.finish(held, checked, reserved, Some(peer));
        self.log_batch(peer, &outcomes);
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
        for (kind, space) in &reserved {
            match kind {
                ingest::ItemKind::ListingChange => self.change_limit.refund(space),
                ingest::ItemKind::SeatBeacon => self.beacon_limit.refund(space),
                _ => {}
            }
        }
        let report = self.node.ingest_checked_from(
            checked,
            Source::Mesh,
            At::now(),
            peer.map(|p| p.to_string()),
        );
        if let Some(e) = &report.flush_error {
            tracing::error!(peer = ?peer, error = %e, "cannot flush the items just received");
        }
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
            Verdict::Refused(_) => {
                self.findings_due = true;
                if let Some(id) = o.id {
                    self.engine.item_refused(ItemId(id.0), now);
                }
            }
            Verdict::Failed(e) => {
                tracing::error!(kind = ?o.kind, error = %e, "cannot store an item")
            }
            _ => {}
        }
    }

    fn added(&mut self, a: &Accepted) {
        self.catch_up.received(Instant::now());
        // What the store dropped because of this item leaves the set peers reconcile against.
        for (kind, gone) in &a.removed {
            let gone = ItemId(gone.0);
            if self.index.remove(&gone).is_some() {
                self.engine
                    .item_removed(&Item::new(engine_kind(*kind), gone));
            }
            if *kind == ingest::ItemKind::SeatBeacon {
                self.beacon_ids.retain(|_, id| *id != gone);
            }
        }
        let id = ItemId(a.id.0);
        let location = match (a.kind, &a.space, &a.pool) {
            (ingest::ItemKind::RosterOp, ..) => Location::Roster,
            (ingest::ItemKind::ListingChange, Some(space), _) => Location::Change(space.clone()),
            (ingest::ItemKind::SeatBeacon, Some(space), Some(pool)) => {
                if let Some(old) = self.beacon_ids.insert((space.clone(), pool.clone()), id) {
                    if old != id && self.index.remove(&old).is_some() {
                        self.engine
                            .item_removed(&Item::new(ItemKind::SeatBeacon, old));
                    }
                }
                Location::Beacon(space.clone(), pool.clone())
            }
            (ingest::ItemKind::Verification, Some(space), _) => {
                Location::Verification(space.clone())
            }
            (ingest::ItemKind::Proposal, ..) => Location::Proposal,
            _ => return,
        };
        self.index.insert(id, location);
        self.engine.item_added(Item::new(engine_kind(a.kind), id));
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
        Ok(status)
    }
}

fn outcome(kind: ingest::ItemKind, id: Option<Hash>, verdict: Verdict) -> Outcome {
    Outcome { kind, id, verdict }
}

/// Item batches waiting to go to one peer.
#[derive(Default)]
struct Outbox {
    /// Batches with their size in bytes, in sending order.
    queue: std::collections::VecDeque<(Vec<WireItem>, usize)>,
    queued_bytes: usize,
    /// Requests sent and not answered yet, and whether each carries roster operations.
    in_flight: HashMap<OutboundRequestId, bool>,
}

impl Outbox {
    /// Queues a batch; returns how many items were dropped because the outbox is full.
    fn push(&mut self, batch: Vec<WireItem>, size: usize) -> usize {
        if batch.is_empty() {
            return 0;
        }
        if self.queued_bytes + size > MAX_OUTBOX_BYTES {
            return batch.len();
        }
        self.queued_bytes += size;
        self.queue.push_back((batch, size));
        0
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
