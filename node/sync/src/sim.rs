//! A deterministic network simulator for [`SyncEngine`]s, and the session meter behind the benchmark
//! figures. Everything here is seeded ([`XorShift`]) and runs on simulated time, so a failing seed
//! replays exactly. [`measure_session`] runs one lossless session between two sets and reports its bytes
//! and round trips; [`run`] drives many engines over a random topology with message loss, reordering
//! (random latency), partitions and heals while nodes keep adding items, then checks that every node ends
//! with the union of all items.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

pub use super::engine::XorShift;
use super::{Config, Intent, Item, ItemId, ItemKind, Msg, SyncEngine};

/// A random item key, as a content hash would give.
pub fn random_item(rng: &mut XorShift) -> Item {
    let mut id = [0u8; 32];
    for chunk in id.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let kind = ItemKind::ALL[rng.below(ItemKind::ALL.len() as u64) as usize];
    Item::new(kind, ItemId(id))
}

/// What one reconciliation session between two nodes cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Sync protocol bytes (rounds and wants, not item payloads) from the initiator `a` to `b`.
    pub bytes_a_to_b: usize,
    pub bytes_b_to_a: usize,
    /// Reconciliation rounds sent, both directions.
    pub rounds: usize,
    /// Longest causal chain of messages, items included, in round trips (half-trips rounded up).
    pub round_trips: usize,
    pub items_to_a: usize,
    pub items_to_b: usize,
    /// Ids asked for with `Want` (a `lacking` list too long for its round spills into fetches).
    pub wanted: usize,
    /// Whether both sides ended with the union.
    pub converged: bool,
}

impl SessionReport {
    pub fn bytes(&self) -> usize {
        self.bytes_a_to_b + self.bytes_b_to_a
    }
}

enum Payload {
    Msg(Vec<u8>),
    Item(Item),
}

/// Runs one session that `a` opens with `b`, over a lossless in-order link, until nothing is in flight.
pub fn measure_session(a: &[Item], b: &[Item], config: &Config) -> SessionReport {
    let engines = (
        SyncEngine::with_items(config.clone(), 1, a.iter().copied()),
        SyncEngine::with_items(config.clone(), 2, b.iter().copied()),
    );
    let (Ok(na), Ok(nb)) = engines else {
        return SessionReport::default();
    };
    let mut nodes = [na, nb];
    let mut report = session(&mut nodes, |_, item, node| node.item_added(item));
    let union: BTreeSet<Item> = a.iter().chain(b).copied().collect();
    report.converged = nodes
        .iter()
        .all(|n| n.items().len() == union.len() && n.items().iter().eq(union.iter()));
    report
}

/// Runs one session that node 0 opens with node 1. `store(to, item, engine)` plays the receiving I/O
/// layer: it decides whether to keep an item and reports that to the engine.
pub fn session(
    nodes: &mut [SyncEngine<usize>; 2],
    mut store: impl FnMut(usize, Item, &mut SyncEngine<usize>),
) -> SessionReport {
    let mut report = SessionReport::default();
    let now = Duration::ZERO;
    // (from, to, depth, payload), in send order.
    let mut wire: VecDeque<(usize, usize, usize, Payload)> = VecDeque::new();
    // A fresh connection, so a second call runs a second session.
    nodes[0].disconnected(&1);
    nodes[1].disconnected(&0);
    let first = nodes[0].connected(1, now);
    let mut max_depth = 0;
    let mut intents = vec![(0usize, 1usize, first)];
    loop {
        for (from, depth, out) in intents.drain(..) {
            let to = 1 - from;
            for intent in out {
                match intent {
                    Intent::Send(_, msg) => {
                        if let Ok(bytes) = msg.encode() {
                            wire.push_back((from, to, depth, Payload::Msg(bytes)));
                        }
                    }
                    Intent::Fetch { ids, .. } => {
                        report.wanted += ids.len();
                        if let Ok(bytes) = Msg::Want(ids).encode() {
                            wire.push_back((from, to, depth, Payload::Msg(bytes)));
                        }
                    }
                    Intent::Serve { ids, .. } => {
                        for id in ids {
                            if let Some(item) = nodes[from].items().get(&id) {
                                wire.push_back((from, to, depth, Payload::Item(item)));
                            }
                        }
                    }
                    Intent::Synced { .. } => {}
                }
            }
        }
        let Some((from, to, depth, payload)) = wire.pop_front() else {
            break;
        };
        max_depth = max_depth.max(depth);
        match payload {
            Payload::Msg(bytes) => {
                if from == 0 {
                    report.bytes_a_to_b += bytes.len();
                } else {
                    report.bytes_b_to_a += bytes.len();
                }
                if matches!(
                    Msg::decode(&bytes),
                    Ok(Msg::Open { .. } | Msg::Round { .. })
                ) {
                    report.rounds += 1;
                }
                if let Ok(out) = nodes[to].received_bytes(&from, &bytes, now) {
                    intents.push((to, depth + 1, out));
                }
            }
            Payload::Item(item) => {
                if to == 0 {
                    report.items_to_a += 1;
                } else {
                    report.items_to_b += 1;
                }
                store(to, item, &mut nodes[to]);
            }
        }
    }
    report.round_trips = max_depth.div_ceil(2);
    report
}

/// The shape of a simulated network run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Links added at random beyond a random spanning tree.
    pub extra_links: usize,
    /// Items every node starts with.
    pub shared_items: usize,
    /// Items each node starts with that no other node has.
    pub own_items: usize,
    /// Length of the chaotic phase: items added, partitions made and healed.
    pub chaos: Duration,
    /// Mean time between two new items anywhere during the chaotic phase.
    pub add_every: Duration,
    /// Percent of messages and items lost in transit, in every phase.
    pub loss_percent: u64,
    /// Latency of each delivery is drawn from `1..=max_latency` milliseconds, which reorders them.
    pub max_latency_ms: u64,
    /// How often the partition changes (made or healed) during the chaotic phase.
    pub partition_every: Duration,
    /// How long after the final heal every node must hold the union.
    pub settle: Duration,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 14,
            extra_links: 10,
            shared_items: 200,
            own_items: 20,
            chaos: Duration::from_secs(60),
            add_every: Duration::from_millis(150),
            loss_percent: 5,
            max_latency_ms: 80,
            partition_every: Duration::from_secs(7),
            settle: Duration::from_secs(120),
        }
    }

    /// Sync timings scaled to simulated minutes rather than real hours.
    pub fn engine_config() -> Config {
        Config {
            resync_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(2),
            retry_delay: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(1),
            relay_delay: Duration::from_millis(200),
            ..Config::default()
        }
    }
}

/// What happened in a simulated run.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Time from the final heal until every node held the union, if it happened within `settle`.
    pub converged_after: Option<Duration>,
    /// Items created in the run (the union).
    pub items: usize,
    /// Nodes that did not end with the union, with how many items each lacked.
    pub behind: Vec<(usize, usize)>,
    /// Sync protocol bytes sent by all nodes.
    pub sync_bytes: usize,
    pub sync_messages: usize,
    pub items_sent: usize,
    /// Deliveries lost to loss or to a link that went down.
    pub dropped: usize,
    /// Sessions that completed and that timed out.
    pub sessions_completed: usize,
    pub sessions_timed_out: usize,
    /// Errors honest engines raised against each other (must stay empty).
    pub errors: Vec<String>,
}

struct Packet {
    from: usize,
    to: usize,
    epoch: u64,
    payload: Payload,
}

struct Net {
    now: Duration,
    rng: XorShift,
    cfg: SimConfig,
    nodes: Vec<SyncEngine<usize>>,
    links: Vec<(usize, usize)>,
    /// Links that are up, with the epoch of their current connection.
    up: BTreeMap<(usize, usize), u64>,
    next_epoch: u64,
    /// Which side of the partition each node is on; `None` when there is no partition.
    sides: Option<Vec<bool>>,
    inflight: BinaryHeap<Reverse<(Duration, u64)>>,
    packets: BTreeMap<u64, Packet>,
    seq: u64,
    created: BTreeSet<Item>,
    report: SimReport,
    /// Whether a node that gets a new item by sync calls [`SyncEngine::relay_soon`], as the node's I/O
    /// layer does.
    relay: bool,
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Net {
    /// A network of `nodes` joined by `links` (none up yet: see [`Net::sync_links`]), holding `created`.
    fn new(
        cfg: &SimConfig,
        rng: XorShift,
        nodes: Vec<SyncEngine<usize>>,
        links: Vec<(usize, usize)>,
        created: BTreeSet<Item>,
    ) -> Self {
        Self {
            now: Duration::ZERO,
            rng,
            cfg: cfg.clone(),
            nodes,
            links,
            up: BTreeMap::new(),
            next_epoch: 0,
            sides: None,
            inflight: BinaryHeap::new(),
            packets: BTreeMap::new(),
            seq: 0,
            created,
            report: SimReport::default(),
            relay: true,
        }
    }

    fn apply(&mut self, from: usize, out: Vec<Intent<usize>>) {
        for intent in out {
            match intent {
                Intent::Send(to, msg) => self.send_msg(from, to, &msg),
                Intent::Fetch { peer, ids } => self.send_msg(from, peer, &Msg::Want(ids)),
                Intent::Serve { peer, ids } => {
                    for id in ids {
                        if let Some(item) = self.nodes[from].items().get(&id) {
                            self.report.items_sent += 1;
                            self.send(from, peer, Payload::Item(item));
                        }
                    }
                }
                Intent::Synced { stats, .. } => {
                    if stats.completed {
                        self.report.sessions_completed += 1;
                    } else {
                        self.report.sessions_timed_out += 1;
                    }
                }
            }
        }
    }

    fn send_msg(&mut self, from: usize, to: usize, msg: &Msg) {
        match msg.encode() {
            Ok(bytes) => {
                self.report.sync_bytes += bytes.len();
                self.report.sync_messages += 1;
                self.send(from, to, Payload::Msg(bytes));
            }
            Err(e) => self
                .report
                .errors
                .push(format!("{from} cannot encode: {e}")),
        }
    }

    fn send(&mut self, from: usize, to: usize, payload: Payload) {
        let Some(&epoch) = self.up.get(&link(from, to)) else {
            self.report.dropped += 1;
            return;
        };
        if self.rng.below(100) < self.cfg.loss_percent {
            self.report.dropped += 1;
            return;
        }
        let at = self.now + Duration::from_millis(1 + self.rng.below(self.cfg.max_latency_ms));
        self.seq += 1;
        self.inflight.push(Reverse((at, self.seq)));
        self.packets.insert(
            self.seq,
            Packet {
                from,
                to,
                epoch,
                payload,
            },
        );
    }

    fn deliver_due(&mut self) {
        while let Some(Reverse((at, seq))) = self.inflight.peek().copied() {
            if at > self.now {
                break;
            }
            self.inflight.pop();
            let Some(p) = self.packets.remove(&seq) else {
                continue;
            };
            // A connection that closed takes its in-flight data with it.
            if self.up.get(&link(p.from, p.to)) != Some(&p.epoch) {
                self.report.dropped += 1;
                continue;
            }
            match p.payload {
                Payload::Msg(bytes) => {
                    match self.nodes[p.to].received_bytes(&p.from, &bytes, self.now) {
                        Ok(out) => self.apply(p.to, out),
                        Err(e) => self
                            .report
                            .errors
                            .push(format!("node {} refused node {}: {e}", p.to, p.from)),
                    }
                }
                Payload::Item(item) => {
                    // The I/O layer stores the item (verification is out of scope here) and reports it;
                    // one it did not have brings its other peers' next sessions forward.
                    let new = !self.nodes[p.to].items().contains(&item);
                    self.nodes[p.to].item_added(item);
                    if new && self.relay {
                        self.nodes[p.to].relay_soon(&p.from, self.now);
                    }
                }
            }
        }
    }

    fn link_wanted(&self, (a, b): (usize, usize)) -> bool {
        self.sides.as_ref().is_none_or(|s| s[a] == s[b])
    }

    /// Brings every link to the state the partition wants, telling both ends.
    fn sync_links(&mut self) {
        for l in self.links.clone() {
            let want = self.link_wanted(l);
            let is_up = self.up.contains_key(&l);
            if want && !is_up {
                self.next_epoch += 1;
                self.up.insert(l, self.next_epoch);
                let out = self.nodes[l.0].connected(l.1, self.now);
                self.apply(l.0, out);
                let out = self.nodes[l.1].connected(l.0, self.now);
                self.apply(l.1, out);
            } else if !want && is_up {
                self.up.remove(&l);
                self.nodes[l.0].disconnected(&l.1);
                self.nodes[l.1].disconnected(&l.0);
            }
        }
    }

    fn add_item(&mut self, node: usize) {
        let item = random_item(&mut self.rng);
        self.created.insert(item);
        self.nodes[node].item_added(item);
    }

    fn converged(&self) -> bool {
        // Sets only ever hold created items, so equal sizes mean equal sets.
        self.nodes
            .iter()
            .all(|n| n.items().len() == self.created.len())
    }

    /// Advances one step: deliveries, then each node's tick on its own phase of the tick period.
    fn step(&mut self, step: Duration, tick_every: Duration) {
        self.deliver_due();
        let tick_ms = tick_every.as_millis().max(1);
        for i in 0..self.nodes.len() {
            let phase = (i as u128 * 37) % tick_ms;
            if self.now.as_millis() % tick_ms == phase - phase % step.as_millis().max(1) {
                let out = self.nodes[i].tick(self.now);
                self.apply(i, out);
            }
        }
        self.now += step;
    }
}

/// Runs a simulated network and reports whether it converged.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut rng = XorShift::new(cfg.seed);
    let engine_cfg = SimConfig::engine_config();
    let shared: Vec<Item> = (0..cfg.shared_items)
        .map(|_| random_item(&mut rng))
        .collect();
    let mut created: BTreeSet<Item> = shared.iter().copied().collect();
    let mut nodes = Vec::new();
    for i in 0..cfg.nodes {
        let own: Vec<Item> = (0..cfg.own_items).map(|_| random_item(&mut rng)).collect();
        created.extend(own.iter().copied());
        match SyncEngine::with_items(
            engine_cfg.clone(),
            cfg.seed ^ (i as u64 + 1) << 17,
            shared.iter().chain(&own).copied(),
        ) {
            Ok(e) => nodes.push(e),
            Err(e) => {
                return SimReport {
                    errors: vec![e.to_string()],
                    ..SimReport::default()
                }
            }
        }
    }
    // A random spanning tree keeps the healed network connected; extra links add cycles.
    let mut links = BTreeSet::new();
    for i in 1..cfg.nodes {
        links.insert(link(i, rng.below(i as u64) as usize));
    }
    for _ in 0..cfg.extra_links {
        let a = rng.below(cfg.nodes as u64) as usize;
        let b = rng.below(cfg.nodes as u64) as usize;
        if a != b {
            links.insert(link(a, b));
        }
    }
    let mut net = Net::new(cfg, rng, nodes, links.into_iter().collect(), created);
    net.sync_links();

    let step = Duration::from_millis(5);
    let tick_every = Duration::from_millis(500);
    let add_chance = cfg.add_every.as_millis().max(1) as u64 / step.as_millis().max(1) as u64;
    let mut next_partition = cfg.partition_every;
    while net.now < cfg.chaos {
        if net.rng.below(add_chance.max(1)) == 0 {
            let node = net.rng.below(cfg.nodes as u64) as usize;
            net.add_item(node);
        }
        if net.now >= next_partition {
            next_partition += cfg.partition_every;
            net.sides = match net.sides {
                Some(_) => None,
                None => Some((0..cfg.nodes).map(|_| net.rng.below(2) == 0).collect()),
            };
            net.sync_links();
        }
        net.step(step, tick_every);
    }
    net.sides = None;
    net.sync_links();
    let healed = net.now;
    while net.now < healed + cfg.settle {
        if net.converged() {
            net.report.converged_after = Some(net.now - healed);
            break;
        }
        net.step(step, tick_every);
    }
    net.report.items = net.created.len();
    net.report.behind = net
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.items().len() != net.created.len())
        .map(|(i, n)| (i, net.created.len() - n.items().len()))
        .collect();
    net.report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(rng: &mut XorShift, n: usize) -> Vec<Item> {
        (0..n).map(|_| random_item(rng)).collect()
    }

    /// A set of `shared` items plus `diff` items only `a` has and `diff` only `b` has.
    fn pair(shared: usize, diff: usize, seed: u64) -> (Vec<Item>, Vec<Item>) {
        let mut rng = XorShift::new(seed);
        let base = items(&mut rng, shared);
        let mut a = base.clone();
        let mut b = base;
        a.extend(items(&mut rng, diff));
        b.extend(items(&mut rng, diff));
        (a, b)
    }

    /// Reconciliation on 0, 1, 1000 and 30,000 items with 0, 1, 10 and 1000 differences each way: both
    /// sides end with the union, exactly the missing items move, and the costs stay small. Prints the
    /// figures for docs/BENCHMARKS.md (`cargo test -p deskmesh-node figures -- --nocapture`).
    #[test]
    fn figures() {
        let cfg = Config::default();
        println!(
            "shared  diff/way  bytes a>b  bytes b>a  rounds  round trips  items a>b  items b>a"
        );
        for shared in [0, 1, 1000, 30_000] {
            for diff in [0, 1, 10, 1000] {
                let (a, b) = pair(shared, diff, (shared * 10_007 + diff + 1) as u64);
                let r = measure_session(&a, &b, &cfg);
                println!(
                    "{shared:>6}  {diff:>8}  {:>9}  {:>9}  {:>6}  {:>11}  {:>9}  {:>9}",
                    r.bytes_a_to_b,
                    r.bytes_b_to_a,
                    r.rounds,
                    r.round_trips,
                    r.items_to_b,
                    r.items_to_a
                );
                assert!(r.converged, "{shared} shared, {diff} each way: {r:?}");
                assert_eq!(
                    (r.items_to_a, r.items_to_b),
                    (diff, diff),
                    "only missing items move"
                );
                if diff <= 10 {
                    assert!(r.round_trips <= 4, "{shared}/{diff}: {r:?}");
                }
                if diff == 0 {
                    assert!(r.bytes() < 1_000, "equal sets cost one exchange: {r:?}");
                }
            }
        }
        // The target: 10 changes among 30,000 items cost well under 50 KB in a handful of round trips.
        let (a, b) = pair(30_000, 10, 99);
        let r = measure_session(&a, &b, &cfg);
        assert!(r.converged);
        assert!(
            r.bytes() < 25_000,
            "10 differences each way among 30,000: {r:?}"
        );
        assert!(r.round_trips <= 4, "{r:?}");
        let one_sided = measure_session(&a, &a[..30_000], &cfg);
        println!(
            "10 new items on one side of 30,000: {} bytes, {} rounds, {} round trips",
            one_sided.bytes(),
            one_sided.rounds,
            one_sided.round_trips
        );
        assert!(one_sided.converged && one_sided.bytes() < 15_000);

        // Cold joins: one side empty. No id crosses the wire; the full side pushes everything.
        let mut rng = XorShift::new(5);
        let full = items(&mut rng, 30_000);
        for (label, a, b) in [
            ("empty opens", &[][..], &full[..]),
            ("full opens", &full[..], &[][..]),
        ] {
            let r = measure_session(a, b, &cfg);
            println!(
                "cold join, {label}: {} bytes, {} rounds, {} round trips, {} items moved",
                r.bytes(),
                r.rounds,
                r.round_trips,
                r.items_to_a + r.items_to_b
            );
            assert!(r.converged);
            assert_eq!(r.items_to_a + r.items_to_b, 30_000);
            assert!(r.bytes() < 2_000, "a cold join sends no ids: {r:?}");
        }
    }

    #[test]
    fn a_small_message_limit_costs_rounds_not_correctness() {
        let cfg = Config {
            max_message_bytes: 4096,
            ..Config::default()
        };
        // Disjoint sets: every key list names items the receiver lacks, more than one round can name.
        let (a, b) = pair(0, 3000, 11);
        let r = measure_session(&a, &b, &cfg);
        assert!(r.converged, "{r:?}");
        assert_eq!((r.items_to_a, r.items_to_b), (3000, 3000));
        assert!(r.wanted > 0, "long lacking lists spill into fetches: {r:?}");
    }

    /// Seat beacons are newest-wins: a node keeps one beacon per pool and replaces an older one. The I/O
    /// layer (played by `store`) refuses older beacons and reports replaced ones; one session leaves both
    /// nodes with only the newest.
    #[test]
    fn replaced_beacons_leave_the_set() {
        // Ids are hashes, as in the real store: structured ids such as `[pool, version, 0, ..]` would
        // make (7,1)+(8,2) and (7,2)+(8,1) sum to the same fingerprint, a collision hashes never give.
        let mut meta: BTreeMap<ItemId, (u8, u8)> = BTreeMap::new();
        let mut beacon = |pool: u8, version: u8| {
            let id = ItemId::from(deskmesh_keys::Hash::of("test-beacon", &[pool, version]));
            meta.insert(id, (pool, version));
            Item::new(ItemKind::SeatBeacon, id)
        };
        let (a7, a8, b7, b8) = (beacon(7, 1), beacon(8, 2), beacon(7, 2), beacon(8, 1));
        let mut rng = XorShift::new(3);
        let common = items(&mut rng, 500);
        let a_items: Vec<Item> = common.iter().copied().chain([a7, a8]).collect();
        let b_items: Vec<Item> = common.iter().copied().chain([b7, b8]).collect();
        let cfg = Config::default();
        let mut nodes = [
            SyncEngine::with_items(cfg.clone(), 1, a_items).expect("valid"),
            SyncEngine::with_items(cfg, 2, b_items).expect("valid"),
        ];
        let mut refused = 0;
        let store = |_: usize, item: Item, node: &mut SyncEngine<usize>| {
            let Some(&(pool, version)) = meta.get(&item.id) else {
                node.item_added(item);
                return;
            };
            let held = node
                .items()
                .iter()
                .find(|it| meta.get(&it.id).is_some_and(|(p, _)| *p == pool))
                .copied();
            match held {
                Some(old) if meta[&old.id].1 >= version => {
                    refused += 1;
                    node.item_refused(item.id, Duration::ZERO);
                }
                Some(old) => {
                    node.item_removed(&old);
                    node.item_added(item);
                }
                None => node.item_added(item),
            }
        };
        let r = session(&mut nodes, store);
        assert_eq!(refused, 2, "each side offered its older beacon once: {r:?}");
        for node in &nodes {
            assert_eq!(node.items().len(), 502);
            assert!(node.items().contains(&b7) && node.items().contains(&a8));
        }
        // Now the sets agree, so the next session moves nothing.
        let again = session(&mut nodes, |_, it, n| n.item_added(it));
        assert_eq!((again.items_to_a, again.items_to_b), (0, 0));
    }

    fn check(cfg: &SimConfig) -> SimReport {
        let r = run(cfg);
        assert!(
            r.errors.is_empty(),
            "seed {}: honest nodes refused each other: {:?}",
            cfg.seed,
            r.errors
        );
        assert!(
            r.converged_after.is_some(),
            "seed {}: not converged {:?} after healing; behind: {:?}",
            cfg.seed,
            cfg.settle,
            r.behind
        );
        assert!(r.behind.is_empty());
        r
    }

    /// Twelve seeds: seed 12 is the one where a looser relay rule (counting only the sessions a peer may
    /// still hold) made an honest node refuse another's session.
    #[test]
    fn lossy_partitioned_networks_converge_to_the_union() {
        for seed in 1..=12 {
            let r = check(&SimConfig::new(seed));
            assert!(
                r.dropped > 0 && r.sessions_timed_out > 0,
                "the run had no faults: {r:?}"
            );
            println!(
                "seed {seed}: {} items, converged {:?} after heal, {} sync bytes in {} messages, {} items sent, {} dropped, sessions {} done / {} timed out",
                r.items,
                r.converged_after.unwrap_or_default(),
                r.sync_bytes,
                r.sync_messages,
                r.items_sent,
                r.dropped,
                r.sessions_completed,
                r.sessions_timed_out
            );
        }
    }

    #[test]
    fn a_larger_sparser_network_converges() {
        let cfg = SimConfig {
            nodes: 20,
            extra_links: 4,
            loss_percent: 10,
            shared_items: 1000,
            own_items: 50,
            ..SimConfig::new(42)
        };
        check(&cfg);
    }

    /// An item one node learns by sync reaches its other connected peers within the relay delay, not at
    /// their next resync: three nodes in a line (0 - 1 - 2), resync a minute, relay a second, session
    /// timeout 2 s, and node 0 made an item while its link to node 1 was down. Driven as before relaying
    /// (the I/O layer never calls `relay_soon`), node 2 still lacks it 40 s later. No node refuses
    /// another's session, also when nodes 1 and 2 had only just met (the engine test
    /// `a_relay_waits_for_the_last_session_to_be_surely_closed` checks the wait itself).
    #[test]
    fn items_learned_by_sync_are_relayed_to_the_other_peers_at_once() {
        let reached = |relay: bool, made_at: Duration| -> Option<Duration> {
            let config = Config {
                resync_interval: Duration::from_secs(60),
                relay_delay: Duration::from_secs(1),
                ..SimConfig::engine_config()
            };
            let mut rng = XorShift::new(7);
            let shared = items(&mut rng, 100);
            let nodes = (0..3u64)
                .map(|i| SyncEngine::with_items(config.clone(), i + 1, shared.iter().copied()))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let sim = SimConfig {
                loss_percent: 0,
                ..SimConfig::new(7)
            };
            let mut net = Net::new(
                &sim,
                rng,
                nodes,
                vec![(0, 1), (1, 2)],
                shared.into_iter().collect(),
            );
            net.relay = relay;
            let (step, tick) = (Duration::from_millis(5), Duration::from_millis(500));
            // Node 0 is cut off; the others meet and agree.
            net.sides = Some(vec![false, true, true]);
            net.sync_links();
            while net.now < made_at {
                net.step(step, tick);
            }
            net.add_item(0);
            let made = net.now;
            net.sides = None;
            net.sync_links();
            let mut got = None;
            while net.now < made + Duration::from_secs(40) {
                if net.nodes[2].items().len() == net.created.len() {
                    got = Some(net.now - made);
                    break;
                }
                net.step(step, tick);
            }
            assert_eq!(net.report.errors, Vec::<String>::new());
            got
        };
        let relayed = reached(true, Duration::from_secs(5)).expect("node 2 never got the item");
        println!("relayed to the third node {relayed:?} after the item was made");
        assert!(
            relayed < Duration::from_secs(3),
            "relayed after {relayed:?}"
        );
        // Made right after nodes 1 and 2 met: relayed all the same, with no session refused.
        reached(true, Duration::from_millis(300)).expect("node 2 never got the item");
        assert_eq!(
            reached(false, Duration::from_secs(5)),
            None,
            "without relaying, node 2 got it before its resync"
        );
    }

    #[test]
    fn runs_are_deterministic() {
        let cfg = SimConfig {
            chaos: Duration::from_secs(20),
            ..SimConfig::new(7)
        };
        let (a, b) = (run(&cfg), run(&cfg));
        assert_eq!(
            (a.sync_bytes, a.items_sent, a.dropped, a.converged_after),
            (b.sync_bytes, b.items_sent, b.dropped, b.converged_after)
        );
    }
}
