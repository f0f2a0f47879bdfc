//! The event loop of `deskmesh run`: one task owns the libp2p swarm, the opened node and the sync engine.
//! It turns swarm events into engine events and store writes, executes the engine's intents (sync
//! messages, item pushes, fetches), validates gossip through the node's `accept_*` paths before it is
//! forwarded, and answers control-socket calls so local edits are published at once.
//!
//! It also carries out the NAT policy of [`super::nat`] (listening through relays, logging reservations,
//! circuits and hole punches) and the per-space change budget of [`super::limits`]: a listing change over
//! it is not stored and its gossip message is ignored, not rejected, since an honest peer may relay a burst.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_keys::roster::{RosterError, SignedOp};
use deskmesh_keys::{Hash, SpaceId};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, gossipsub, identify, kad, mdns, relay, Multiaddr, PeerId, Swarm};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

use super::behaviour::{self, Behaviour, BehaviourEvent, Reply, Request, WireItem};
use super::{limits, nat, PeerInfo, Peers, RunOptions, Status};
use crate::control::{self, Call, Response};
use crate::ops::{Node, Refused};
use crate::sync::{Config, Intent, Item, ItemId, ItemKind, SyncEngine};

/// Item batches in flight to one peer at once; the rest wait in its outbox, so a large transfer neither
/// exceeds the peer's stream limit (which drops requests) nor overtakes the roster operations it needs.
const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Bytes of items queued for one peer; a fetch beyond that is dropped and asked for again next session.
const MAX_OUTBOX_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of items kept in memory while they wait for roster operations this node does not know yet.
const MAX_WAITING_BYTES: usize = 32 * 1024 * 1024;
/// How long an item may wait for the roster operations it names before it is refused (and logged for the
/// audit) as coming from outside the alliance.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Roster operations kept while their parents are missing.
const MAX_PENDING_OPS: usize = 1024;
/// Peers the node dials on its own when it learns of them (DHT, mDNS); more only when they dial us.
const MAX_AUTO_DIAL: usize = 32;
/// Spaces named one per log line at info level when a batch of changes arrives; more go to debug.
const PER_SPACE_LOG_LINES: usize = 8;
/// Label of the content hash that names a seat beacon item.
const BEACON_ITEM: &str = "seat-beacon-item";
/// Why a valid beacon older than the one kept is refused. Two beacons of one pool can cross on the
/// way, so gossip ignores it rather than rejecting it, or honest peers would lose score.
const SUPERSEDED_BEACON: &str = "a newer beacon is kept for its pool";

/// Where the store keeps an item, so it can be served by id.
#[derive(Clone, Debug)]
enum Location {
    Roster,
    Change(SpaceId),
    Beacon(SpaceId, String),
}

/// What became of one received item.
#[derive(Debug)]
enum Outcome {
    /// Stored; `replaced` is a beacon it superseded.
    Added(Item, Option<Item>),
    Known,
    /// Invalid (logged for the audit), or a beacon older than the one kept.
    Refused(Option<ItemId>, String),
    /// A roster operation waiting for its parents, a listing change over its space's hourly limit, or a
    /// store failure: neither accepted nor refused.
    Deferred,
}

/// Starts listening and dialing, then runs the event loop until Ctrl-C or SIGTERM.
pub async fn run(node: Node, opts: RunOptions) -> anyhow::Result<()> {
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
    let (pushes, _) = broadcast::channel(control::PUSH_BACKLOG);
    let socket = node.home.socket_path();
    let server = control::serve(&socket, tx, pushes.clone())?;

    let mut svc = Service::new(node, swarm, topic)?;
    svc.pushes = pushes;
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
    pending_ops: HashMap<Hash, SignedOp>,
    connected: BTreeMap<PeerId, Vec<Multiaddr>>,
    bootstrap: Vec<Multiaddr>,
    last_sync: Option<chrono::DateTime<chrono::Utc>>,
    last_maintenance: Duration,
    outbound: HashMap<OutboundRequestId, PeerId>,
    /// Item batches per peer, sent a few at a time, roster operations first.
    outboxes: HashMap<PeerId, Outbox>,
    /// Items that name roster operations not known here yet, tried again when the roster grows.
    waiting: std::collections::VecDeque<(WireItem, Duration)>,
    waiting_bytes: usize,
    /// A roster operation was applied since the waiting items were last tried.
    roster_grew: bool,
    /// Reachability: relays this node listens through, and whether AutoNAT thinks it is private.
    nat: nat::NatState,
    /// Listing changes stored per space per hour.
    change_limit: limits::RateLimiter<SpaceId>,
    /// Live changes for TUIs attached through the control socket.
    pushes: broadcast::Sender<Arc<str>>,
    /// The status bar changed (peers, last sync) since it was last pushed.
    status_dirty: bool,
    /// The last sync time the attached TUIs were told of.
    pushed_sync: Option<chrono::DateTime<chrono::Utc>>,
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
            pending_ops: HashMap::new(),
            connected: BTreeMap::new(),
            bootstrap: Vec::new(),
            last_sync: None,
            last_maintenance: Duration::ZERO,
            outbound: HashMap::new(),
            outboxes: HashMap::new(),
            waiting: std::collections::VecDeque::new(),
            waiting_bytes: 0,
            roster_grew: false,
            nat: nat::NatState::default(),
            change_limit: limits::RateLimiter::for_changes(),
            pushes: broadcast::channel(1).0,
            status_dirty: false,
            pushed_sync: None,
        };
        let items = svc.scan()?;
        svc.engine = SyncEngine::with_items(Config::default(), seed(), items)?;
        Ok(svc)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Indexes every item in the store and returns the ones not indexed before.
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
            let id = ItemId(Hash::of(BEACON_ITEM, &bytes).0);
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
        Ok(new)
    }

    /// Addresses from the invite (meta `bootstrap_peers`) and the roster's `SetPeerAddrs`.
    fn known_peer_addrs(&self) -> Vec<Multiaddr> {
        let mut texts: Vec<String> = Vec::new();
        if let Ok(Some(bytes)) = self.node.store.get_meta("bootstrap_peers") {
            if let Ok(list) = serde_json::from_slice::<Vec<String>>(&bytes) {
                texts.extend(list);
            }
        }
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
            Ok(item) => match self.ingest(&item) {
                Outcome::Added(it, _) => {
                    tracing::info!(peer = %source, kind = ?it.kind, id = ?it.id, "new item by gossip");
                    gossipsub::MessageAcceptance::Accept
                }
                Outcome::Known => gossipsub::MessageAcceptance::Accept,
                Outcome::Refused(_, why) if why == SUPERSEDED_BEACON => {
                    gossipsub::MessageAcceptance::Ignore
                }
                Outcome::Refused(_, why) => {
                    tracing::warn!(peer = %source, kind = ?item.kind, reason = %why, "rejected gossip message");
                    gossipsub::MessageAcceptance::Reject
                }
                Outcome::Deferred => gossipsub::MessageAcceptance::Ignore,
            },
            Err(e) => {
                tracing::warn!(peer = %source, error = %e, "rejected unreadable gossip message");
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
            Request::Items(items) => {
                let items = causal_order(items);
                // One flush for the batch: nothing in it is reported stored before the end.
                if let Err(e) = self.node.store.defer_flush(true) {
                    tracing::error!(error = %e, "cannot defer store flushes");
                }
                let mut added: BTreeMap<ItemKind, usize> = BTreeMap::new();
                let mut by_space: BTreeMap<SpaceId, usize> = BTreeMap::new();
                let mut refused = 0usize;
                for item in &items {
                    match self.ingest(item) {
                        Outcome::Added(it, _) => {
                            *added.entry(it.kind).or_default() += 1;
                            if let Some(Location::Change(space)) = self.index.get(&it.id) {
                                *by_space.entry(space.clone()).or_default() += 1;
                            }
                        }
                        Outcome::Refused(..) => refused += 1,
                        Outcome::Known | Outcome::Deferred => {}
                    }
                }
                if let Err(e) = self.node.store.defer_flush(false) {
                    tracing::error!(error = %e, "cannot flush the items just received");
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
                        roster_ops = added.get(&ItemKind::RosterOp).copied().unwrap_or(0),
                        changes = added.get(&ItemKind::ListingChange).copied().unwrap_or(0),
                        beacons = added.get(&ItemKind::SeatBeacon).copied().unwrap_or(0),
                        "synced new items from peer"
                    );
                }
                if refused > 0 {
                    tracing::warn!(peer = %peer, refused, "peer sent items that were refused");
                }
                self.retry_waiting();
            }
        }
    }

    fn on_tick(&mut self) {
        if std::mem::take(&mut self.status_dirty) || self.pushed_sync != self.last_sync {
            self.pushed_sync = self.last_sync;
            self.push_status();
        }
        self.retry_waiting();
        self.expire_waiting();
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
                Intent::Fetch { peer, ids } => match crate::sync::Msg::Want(ids).encode() {
                    Ok(bytes) => self.send(peer, Request::Sync(bytes)),
                    Err(e) => tracing::error!(error = %e, "cannot encode a fetch"),
                },
                Intent::Serve { peer, ids } => self.serve(peer, &ids),
                Intent::Synced { peer, stats } => {
                    if stats.completed {
                        self.last_sync = Some(chrono::Utc::now());
                    }
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
        items.sort_by_key(|(id, item)| (item.kind, causal.get(id).copied().unwrap_or(usize::MAX)));
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
            let id = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, Request::Items(batch));
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

    /// Holds an item that names roster operations not known yet (bounded; the oldest go first, and a
    /// later reconciliation fetches them again).
    fn wait_for_roster(&mut self, item: WireItem) {
        self.waiting_bytes += item.bytes.len();
        let now = self.now();
        self.waiting.push_back((item, now));
        while self.waiting_bytes > MAX_WAITING_BYTES {
            let Some((old, _)) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_bytes = self.waiting_bytes.saturating_sub(old.bytes.len());
        }
    }

    /// Refuses, for the audit, items that waited [`MAX_WAIT`] for roster operations that never came:
    /// they name another alliance's roster or a key this alliance never admitted.
    fn expire_waiting(&mut self) {
        let now = self.now();
        while self
            .waiting
            .front()
            .is_some_and(|(_, since)| now.saturating_sub(*since) >= MAX_WAIT)
        {
            let Some((item, _)) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_bytes = self.waiting_bytes.saturating_sub(item.bytes.len());
            let (what, author, space, id, verdict) = match item.kind {
                ItemKind::ListingChange => {
                    let Ok(change) = SignedChange::from_bytes(&item.bytes) else {
                        continue;
                    };
                    let env = change.envelope().ok();
                    (
                        "listing change",
                        env.as_ref().map(|e| e.author),
                        env.as_ref().map(|e| e.space.clone()),
                        env.as_ref().map(|e| ItemId(e.change_hash)),
                        self.node.accept_change(&change).map(drop),
                    )
                }
                ItemKind::SeatBeacon => {
                    let Ok(signed) = SignedBeacon::from_bytes(&item.bytes) else {
                        continue;
                    };
                    let beacon = signed.decode().ok();
                    (
                        "seat beacon",
                        beacon.as_ref().map(|b| b.author),
                        beacon.as_ref().map(|b| b.space.clone()),
                        Some(ItemId(Hash::of(BEACON_ITEM, &item.bytes).0)),
                        self.node
                            .accept_beacon(&signed, chrono::Utc::now())
                            .map(drop),
                    )
                }
                ItemKind::RosterOp => continue,
            };
            match verdict {
                Err(Refused::Waiting(why)) => {
                    self.node.refuse(what, author, space, why);
                    if let Some(id) = id {
                        self.engine.item_refused(id, now);
                    }
                }
                // Its roster operations arrived after all: take it the usual way.
                Ok(()) => {
                    self.ingest(&item);
                }
                Err(_) => {}
            }
        }
    }

    /// Tries the waiting items again once the roster has grown.
    fn retry_waiting(&mut self) {
        if !std::mem::take(&mut self.roster_grew) || self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        self.waiting_bytes = 0;
        let total = waiting.len();
        let mut added = 0usize;
        for (item, since) in waiting {
            let before = self.waiting.len();
            if let Outcome::Added(..) = self.ingest(&item) {
                added += 1;
            }
            // Still waiting: it keeps the time it first arrived, so it does not wait for ever.
            if self.waiting.len() > before {
                if let Some(back) = self.waiting.back_mut() {
                    back.1 = since;
                }
            }
        }
        tracing::debug!(
            tried = total,
            added,
            still_waiting = self.waiting.len(),
            "items waiting for roster operations tried again"
        );
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
                .filter(|bytes| Hash::of(BEACON_ITEM, bytes).0 == id.0)
                .map(|bytes| WireItem {
                    kind: ItemKind::SeatBeacon,
                    bytes,
                }),
        })
    }

    // ---- ingest ------------------------------------------------------------------------------------

    /// Verifies and stores one item through the node's `accept_*` paths and tells the engine.
    fn ingest(&mut self, item: &WireItem) -> Outcome {
        let outcome = match item.kind {
            ItemKind::RosterOp => self.ingest_op(&item.bytes),
            ItemKind::ListingChange => self.ingest_change(&item.bytes),
            ItemKind::SeatBeacon => self.ingest_beacon(&item.bytes),
        };
        let now = self.now();
        match &outcome {
            Outcome::Added(it, replaced) => {
                if let Some(old) = replaced {
                    self.engine.item_removed(old);
                }
                self.engine.item_added(*it);
                self.push_item(it);
            }
            Outcome::Refused(Some(id), _) => self.engine.item_refused(*id, now),
            _ => {}
        }
        outcome
    }

    fn ingest_op(&mut self, bytes: &[u8]) -> Outcome {
        let op = match SignedOp::from_bytes(bytes) {
            Ok(op) => op,
            Err(e) => {
                let r = self
                    .node
                    .refuse("roster operation", None, None, e.to_string());
                return Outcome::Refused(None, r.to_string());
            }
        };
        let id = ItemId(op.hash().0);
        if self.index.contains_key(&id) {
            return Outcome::Known;
        }
        match self.node.accept_op(op.clone()) {
            Ok(_) => {
                self.index.insert(id, Location::Roster);
                self.roster_grew = true;
                tracing::info!(op = %op.hash().short(), "roster operation applied");
                self.after_roster_change();
                Outcome::Added(Item::new(ItemKind::RosterOp, id), None)
            }
            Err(e) => match e.downcast_ref::<RosterError>() {
                Some(RosterError::MissingParents(_)) => {
                    if self.pending_ops.len() < MAX_PENDING_OPS {
                        self.pending_ops.insert(op.hash(), op);
                    }
                    Outcome::Deferred
                }
                _ => {
                    let r = self
                        .node
                        .refuse("roster operation", None, None, e.to_string());
                    Outcome::Refused(Some(id), r.to_string())
                }
            },
        }
    }

    /// Applies waiting roster operations whose parents have arrived, then rebuilds every listing, since
    /// the roster decides which changes count.
    fn after_roster_change(&mut self) {
        while !self.pending_ops.is_empty() {
            let mut progress = false;
            // Only operations whose parents are all known now are tried (a hash lookup each), so a long
            // backlog costs no signature checks until it can apply.
            let ready: Vec<Hash> = match self.node.roster() {
                Some(roster) => self
                    .pending_ops
                    .iter()
                    .filter(|(_, op)| {
                        op.op()
                            .map(|o| o.parents.iter().all(|p| roster.contains(p)))
                            .unwrap_or(true)
                    })
                    .map(|(h, _)| *h)
                    .collect(),
                None => Vec::new(),
            };
            for h in ready {
                let Some(op) = self.pending_ops.remove(&h) else {
                    continue;
                };
                match self.node.accept_op(op.clone()) {
                    Ok(_) => {
                        let id = ItemId(h.0);
                        self.index.insert(id, Location::Roster);
                        self.engine.item_added(Item::new(ItemKind::RosterOp, id));
                        self.roster_grew = true;
                        progress = true;
                    }
                    Err(e) => {
                        if matches!(
                            e.downcast_ref::<RosterError>(),
                            Some(RosterError::MissingParents(_))
                        ) {
                            self.pending_ops.insert(h, op);
                        }
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn ingest_change(&mut self, bytes: &[u8]) -> Outcome {
        let change = match SignedChange::from_bytes(bytes) {
            Ok(c) => c,
            Err(e) => {
                let r = self
                    .node
                    .refuse("listing change", None, None, e.to_string());
                return Outcome::Refused(None, r.to_string());
            }
        };
        let env = match change.envelope() {
            Ok(env) => env,
            Err(e) => {
                let r = self
                    .node
                    .refuse("listing change", None, None, e.to_string());
                return Outcome::Refused(None, r.to_string());
            }
        };
        let id = ItemId(env.change_hash);
        if self.index.contains_key(&id) {
            return Outcome::Known;
        }
        let now = self.now();
        if let limits::Verdict::Limited { warn } = self.change_limit.check(&env.space, now) {
            if warn {
                tracing::warn!(space = %env.space, per_hour = limits::CHANGES_PER_HOUR, "listing changes over the space's hourly limit are not stored for now");
            }
            // Not the sender's fault (it may only relay a burst): the engine asks again after a while.
            self.engine.item_refused(id, now);
            return Outcome::Deferred;
        }
        match self.node.accept_change(&change) {
            Ok(_) => {
                // Only stored changes spend the budget, so invalid ones cannot exhaust a space's.
                self.change_limit.spend(env.space.clone(), now);
                self.index.insert(id, Location::Change(env.space.clone()));
                tracing::debug!(space = %env.space, author = %env.author, "listing change stored");
                Outcome::Added(Item::new(ItemKind::ListingChange, id), None)
            }
            Err(Refused::Invalid(why)) => Outcome::Refused(Some(id), why),
            Err(Refused::Waiting(_)) => {
                self.wait_for_roster(WireItem {
                    kind: ItemKind::ListingChange,
                    bytes: bytes.to_vec(),
                });
                Outcome::Deferred
            }
            Err(Refused::Store(e)) => {
                tracing::error!(error = %e, "cannot store a listing change");
                Outcome::Deferred
            }
        }
    }

    fn ingest_beacon(&mut self, bytes: &[u8]) -> Outcome {
        let id = ItemId(Hash::of(BEACON_ITEM, bytes).0);
        if self.index.contains_key(&id) {
            return Outcome::Known;
        }
        let signed = match SignedBeacon::from_bytes(bytes) {
            Ok(b) => b,
            Err(e) => {
                let r = self.node.refuse("seat beacon", None, None, e.to_string());
                return Outcome::Refused(Some(id), r.to_string());
            }
        };
        match self.node.accept_beacon(&signed, chrono::Utc::now()) {
            Ok(b) => {
                let kept = matches!(self.node.store.beacon(&b.space, &b.pool), Ok(Some(held)) if held == bytes);
                if !kept {
                    return Outcome::Refused(Some(id), SUPERSEDED_BEACON.to_string());
                }
                self.index
                    .insert(id, Location::Beacon(b.space.clone(), b.pool.clone()));
                let replaced = self
                    .beacon_ids
                    .insert((b.space.clone(), b.pool.clone()), id)
                    .filter(|old| *old != id)
                    .map(|old| {
                        self.index.remove(&old);
                        Item::new(ItemKind::SeatBeacon, old)
                    });
                tracing::debug!(space = %b.space, pool = %b.pool, "seat beacon stored");
                Outcome::Added(Item::new(ItemKind::SeatBeacon, id), replaced)
            }
            Err(Refused::Invalid(why)) => Outcome::Refused(Some(id), why),
            Err(Refused::Waiting(_)) => {
                self.wait_for_roster(WireItem {
                    kind: ItemKind::SeatBeacon,
                    bytes: bytes.to_vec(),
                });
                Outcome::Deferred
            }
            Err(Refused::Store(e)) => {
                tracing::error!(error = %e, "cannot store a seat beacon");
                Outcome::Deferred
            }
        }
    }

    // ---- local edits and the control socket --------------------------------------------------------

    /// Finds items made here since the last scan, tells the engine and publishes each on gossip.
    fn announce_local(&mut self) {
        let new = match self.scan() {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(error = %e, "cannot scan the store for local edits");
                return;
            }
        };
        for item in new {
            self.engine.item_added(item);
            self.push_item(&item);
            let Ok(Some(wire)) = self.load(&item.id) else {
                continue;
            };
            match postcard::to_stdvec(&wire) {
                Ok(data) => match self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), data)
                {
                    Ok(_) => {
                        tracing::info!(kind = ?item.kind, id = ?item.id, "published a local edit")
                    }
                    Err(e) => {
                        tracing::info!(kind = ?item.kind, error = %e, "local edit not gossiped; peers get it at the next sync")
                    }
                },
                Err(e) => tracing::error!(error = %e, "cannot encode a gossip message"),
            }
        }
    }

    fn on_call(&mut self, req: control::Request) -> Response {
        let now = chrono::Utc::now();
        match req {
            control::Request::SeatsSet { pool, value, ttl } => {
                let r = self.node.seats_set(pool.as_deref(), &value, ttl, now);
                self.announce_local();
                Response::from_result(r)
            }
            control::Request::SpaceEdit(args) => {
                let r = self.node.space_edit(&args, now);
                self.announce_local();
                Response::from_result(r)
            }
            control::Request::SpacesList(args) => Response::from_result(
                crate::cli::query_from(&args).and_then(|q| self.node.directory(&q, now)),
            ),
            control::Request::Audit => Response::from_result(self.node.audit(now)),
            control::Request::Status => Response::from_result(self.status()),
            control::Request::Peers => Response::from_result(Ok(Peers {
                peers: self.peers(),
            })),
            control::Request::InviteMember { mut peers } => {
                peers.extend(self.status().map(|s| s.listen).unwrap_or_default());
                Response::from_result(self.node.member_invite(peers))
            }
            control::Request::TuiSnapshot => Response::from_result(
                crate::tui_local::snapshot(&self.node, self.tui_status()).map(TuiSnapshot),
            ),
            control::Request::TuiSetSeats { pool, availability } => {
                let r = self
                    .node
                    .set_seats(Some(&pool), availability, TUI_SEATS_TTL_S, now);
                self.announce_local();
                Response::from_result(r)
            }
            control::Request::TuiEditListing(listing) => {
                let r = self.node.publish_listing(&listing, now);
                self.announce_local();
                Response::from_result(r)
            }
            // Answered by the socket task itself, which then streams pushes.
            control::Request::TuiSubscribe => Response::from_result::<String>(Err(
                anyhow::anyhow!("subscribe is handled by the control socket"),
            )),
        }
    }

    // ---- live changes for attached TUIs ------------------------------------------------------------

    /// The status bar as an attached TUI shows it.
    fn tui_status(&self) -> deskmesh_tui::Status {
        let mut status = crate::tui_local::local_status(&self.node);
        status.peers = self.connected.len();
        status.online = !self.connected.is_empty();
        status.last_sync = self.last_sync;
        status.attached_to_daemon = true;
        status
    }

    fn push(&self, update: deskmesh_tui::Update) {
        match control::push_line(&control::Push::Update(update)) {
            // No subscriber is not an error: the change is in the store either way.
            Ok(line) => {
                let _ = self.pushes.send(line);
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a TUI update"),
        }
    }

    fn push_status(&self) {
        if self.pushes.receiver_count() > 0 {
            self.push(deskmesh_tui::Update::Status(self.tui_status()));
        }
    }

    /// Tells attached TUIs what a newly stored item changed, read back from the store.
    fn push_item(&mut self, item: &Item) {
        use deskmesh_tui::Update;
        if self.pushes.receiver_count() == 0 {
            return;
        }
        let result = match self.index.get(&item.id).cloned() {
            // A roster operation can change which listings and signers count: resend everything.
            Some(Location::Roster) => crate::tui_local::snapshot(&self.node, self.tui_status())
                .map(|s| Some(Update::Snapshot(Box::new(s)))),
            Some(Location::Change(space)) => crate::tui_local::space_view(&self.node, &space)
                .map(|v| v.map(|v| Update::Space(Box::new(v)))),
            Some(Location::Beacon(space, _)) => crate::tui_local::space_view(&self.node, &space)
                .map(|v| {
                    v.map(|v| Update::Seats {
                        space,
                        pools: v.pools,
                    })
                }),
            None => Ok(None),
        };
        match result {
            Ok(Some(update)) => self.push(update),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read a change back for the TUI"),
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

    fn status(&self) -> anyhow::Result<Status> {
        let mut status = Status::offline(&self.node)?;
        status.running = true;
        status.listen = self
            .swarm
            .listeners()
            .map(|a| nat::with_peer(a.clone(), self.me).to_string())
            .collect();
        status.peers = self.peers();
        status.last_sync = self.last_sync.map(|t| t.to_rfc3339());
        Ok(status)
    }
}

/// Puts the roster operations of a batch first, each after the parents it has in the batch (Kahn's
/// algorithm over the in-batch edges), so a batch in any order costs no retries; other items keep their
/// order after them. An operation that does not decode goes last, to be refused by the usual path.
fn causal_order(items: Vec<WireItem>) -> Vec<WireItem> {
    let (ops, rest): (Vec<WireItem>, Vec<WireItem>) = items
        .into_iter()
        .partition(|i| i.kind == ItemKind::RosterOp);
    if ops.len() < 2 {
        return ops.into_iter().chain(rest).collect();
    }
    // Each operation with its hash and parents, when it decodes.
    type Parsed = (WireItem, Option<(Hash, Vec<Hash>)>);
    let mut parsed: Vec<Parsed> = ops
        .into_iter()
        .map(|item| {
            let meta = SignedOp::from_bytes(&item.bytes)
                .ok()
                .and_then(|op| op.op().ok().map(|o| (op.hash(), o.parents)));
            (item, meta)
        })
        .collect();
    let index: HashMap<Hash, usize> = parsed
        .iter()
        .enumerate()
        .filter_map(|(n, (_, meta))| meta.as_ref().map(|(h, _)| (*h, n)))
        .collect();
    let mut waiting_on = vec![0usize; parsed.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); parsed.len()];
    for (n, (_, meta)) in parsed.iter().enumerate() {
        if let Some((_, parents)) = meta {
            for p in parents {
                if let Some(&pn) = index.get(p) {
                    waiting_on[n] += 1;
                    children[pn].push(n);
                }
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> = (0..parsed.len())
        .filter(|&n| waiting_on[n] == 0 && parsed[n].1.is_some())
        .collect();
    let mut order = Vec::with_capacity(parsed.len());
    while let Some(n) = ready.pop_front() {
        order.push(n);
        for &c in &children[n] {
            waiting_on[c] -= 1;
            if waiting_on[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    // Undecodable operations (and any cycle, which signatures over hashes make impossible) go last.
    let placed: std::collections::HashSet<usize> = order.iter().copied().collect();
    order.extend((0..parsed.len()).filter(|n| !placed.contains(n)));
    let mut slots: Vec<Option<WireItem>> = parsed.drain(..).map(|(item, _)| Some(item)).collect();
    order
        .into_iter()
        .filter_map(|n| slots[n].take())
        .chain(rest)
        .collect()
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

/// The control-socket answer to `TuiSnapshot`: the view model as JSON.
#[derive(serde::Serialize)]
struct TuiSnapshot(deskmesh_tui::Snapshot);

impl std::fmt::Display for TuiSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} spaces", self.0.spaces.len())
    }
}

/// Seconds a seat count set from the TUI stays fresh, as `seats set` defaults to.
const TUI_SEATS_TTL_S: u32 = 900;

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

#[cfg(test)]
mod tests {
    use super::*;
    use deskmesh_keys::roster::{OpBody, Roster};
    use deskmesh_keys::{DeviceKey, Signer};

    #[test]
    fn a_batch_of_roster_operations_in_any_order_is_applied_parents_first() {
        let coordinator = DeviceKey::from_seed(&[1; 32]);
        let (mut roster, create) =
            Roster::create(&coordinator, "North", vec![], 1, 1_700_000_000_000).expect("create");
        let mut chain = vec![create];
        for n in 0..5u8 {
            let device = DeviceKey::from_seed(&[10 + n; 32]).public_key();
            let op = roster.propose(
                &coordinator,
                OpBody::AdmitSpace {
                    space: SpaceId::derive(&device),
                    name: format!("Space {n}"),
                    devices: vec![device],
                },
                1_700_000_000_000 + i64::from(n),
            );
            roster.insert(op.clone()).expect("insert");
            chain.push(op);
        }
        let wire = |op: &SignedOp| WireItem {
            kind: ItemKind::RosterOp,
            bytes: op.to_bytes(),
        };
        let beacon = WireItem {
            kind: ItemKind::SeatBeacon,
            bytes: vec![1, 2, 3],
        };
        // Children first, a beacon in the middle and a garbage operation.
        let garbage = WireItem {
            kind: ItemKind::RosterOp,
            bytes: vec![0xff; 8],
        };
        let mut batch: Vec<WireItem> = chain.iter().rev().map(wire).collect();
        batch.insert(2, beacon.clone());
        batch.insert(4, garbage.clone());
        let ordered = causal_order(batch);
        let expected: Vec<WireItem> = chain.iter().map(wire).chain([garbage, beacon]).collect();
        assert_eq!(ordered, expected);
    }
}
