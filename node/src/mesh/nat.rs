//! NAT traversal policy for `deskmesh run`, as a pure state machine the service drives (no swarm, no
//! clock: callers pass `now`, the time since the daemon started).
//!
//! Every node runs a circuit-relay v2 server (see [`super::behaviour`]), so a member space with a public
//! address serves as a relay for the others. [`NatState`] decides when this node needs a relay itself:
//!
//! - A `--listen` address ending in `/p2p-circuit` is *pinned*: the node keeps a reservation on that relay
//!   for as long as it runs, listening again with a back-off when the reservation fails or the relay goes.
//! - When AutoNAT says the node is private, it reserves a slot on one connected peer whose identify
//!   protocols include the relay hop protocol, listening on `<relay addr>/p2p/<relay id>/p2p-circuit`. A
//!   relay whose reservation fails is avoided for a while; the reservation is dropped once AutoNAT says
//!   the node is public.
//! - A `--listen` address on a specific IP (not `0.0.0.0` or `::`) is the operator saying "this is my
//!   address": it is announced as an external address at once, which is what a relay server hands out in
//!   its reservations. Wildcard listens wait for AutoNAT to confirm an address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use deskmesh_core::view::NatStatus;
use libp2p::core::transport::ListenerId;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// First wait before listening again on a relay after a failure; doubled per failure up to
/// [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// How long a relay whose reservation failed is not chosen again on AutoNAT's word.
pub const RELAY_COOLDOWN: Duration = Duration::from_secs(600);
/// When every connected relay is cooling down, the one that failed longest ago is asked again this long
/// after its failure.
pub const RELAY_RETRY_ALONE: Duration = Duration::from_secs(30);
/// Relay candidates remembered (peers that speak the hop protocol).
pub const MAX_RELAY_CANDIDATES: usize = 64;

/// A `--listen` address the node cannot use as a relay circuit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatError {
    #[error("the relay address {0} names no relay (put /p2p/<relay peer id> before /p2p-circuit)")]
    NoRelayPeer(Multiaddr),
}

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// `addr` ending in `/p2p/<peer>`, unless it already names a peer at its end (relayed listen addresses
/// already end in this node's id).
pub fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr
    } else {
        addr.with(Protocol::P2p(peer))
    }
}

/// The address a connection is shown with in `peers`: its remote address, except on the listening end
/// of a relayed connection, where that is only `/p2p/<peer>`; there it is the circuit the peer came
/// through, `<relay addr>/p2p/<relay>/p2p-circuit/p2p/<peer>`, so `relayed` can be read off it.
pub fn remote_addr(endpoint: &ConnectedPoint, peer: PeerId) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr) => {
            with_peer(local_addr.clone(), peer)
        }
        _ => endpoint.get_remote_address().clone(),
    }
}

/// The relay a circuit address goes through: the `/p2p/<id>` just before `/p2p-circuit`.
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(id) => last = Some(id),
            Protocol::P2pCircuit => return last,
            _ => last = None,
        }
    }
    None
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The addresses a peer listens on (from identify) that are worth dialing or passing on: all but its
/// loopback addresses, unless the peer is connected to us over loopback (the same machine). A node that
/// listens on all interfaces lists `127.0.0.1` among them; dialed from another machine, that address
/// reaches the dialer itself (every node listens on the same default port), the handshake finds the wrong
/// peer id, and libp2p fails the whole dial, the peer's good addresses with it.
pub fn reachable_listen_addrs(
    listen_addrs: &[Multiaddr],
    connected: &[Multiaddr],
) -> Vec<Multiaddr> {
    let loopback = |a: &Multiaddr| ip_of(a).is_some_and(|ip| ip.is_loopback());
    let local_peer = connected.iter().any(|a| !is_relayed(a) && loopback(a));
    listen_addrs
        .iter()
        .filter(|a| local_peer || !loopback(a))
        .cloned()
        .collect()
}

/// `addr` without a trailing `/p2p/<peer>`.
fn without_peer(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

/// The address to reach a relay candidate by, without its peer id: one of its identify listen addresses
/// we are connected through if any, else one of its listen addresses on the IP we are connected to (an
/// inbound connection shows the relay's ephemeral port, which nobody can dial), else a direct address
/// we are connected through, else its first direct listen address. The relay client reuses the existing
/// connection anyway; the address only matters for the circuit address others learn.
pub fn pick_relay_addr(listen_addrs: &[Multiaddr], connected: &[Multiaddr]) -> Option<Multiaddr> {
    let direct = |a: &Multiaddr| !is_relayed(a);
    let listen: Vec<Multiaddr> = listen_addrs
        .iter()
        .filter(|a| direct(a))
        .cloned()
        .map(without_peer)
        .collect();
    let connected: Vec<Multiaddr> = connected
        .iter()
        .filter(|a| direct(a))
        .cloned()
        .map(without_peer)
        .collect();
    let ips: Vec<IpAddr> = connected.iter().filter_map(ip_of).collect();
    listen
        .iter()
        .find(|a| connected.contains(a))
        .or_else(|| {
            listen
                .iter()
                .find(|a| ip_of(a).is_some_and(|ip| ips.contains(&ip)))
        })
        .or_else(|| connected.first())
        .or_else(|| listen.first())
        .cloned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CircuitState {
    /// Not listening; listen again at `retry_at`.
    Idle { retry_at: Duration },
    /// `listen_on` handed out; waiting for [`NatState::started`].
    Starting,
    /// Listening; the reservation may not be accepted yet.
    Listening(ListenerId),
}

#[derive(Debug, Clone)]
struct Circuit {
    /// `<relay addr>/p2p/<relay>/p2p-circuit`.
    addr: Multiaddr,
    relay: PeerId,
    /// From `--listen`: kept for the life of the daemon.
    pinned: bool,
    state: CircuitState,
    /// Failures since the last accepted reservation, for the back-off.
    failures: u32,
    accepted: bool,
}

/// What the node knows about its reachability and the relays it listens through.
#[derive(Debug, Clone, Default)]
pub struct NatState {
    /// IPs named in `--listen` (not wildcards): their listen addresses are external addresses.
    declared: BTreeSet<IpAddr>,
    circuits: Vec<Circuit>,
    /// Peers that speak the relay hop protocol, with an address to reach them by.
    relays: BTreeMap<PeerId, Multiaddr>,
    /// Relays whose reservation failed, with when they may be chosen again.
    cooldown: BTreeMap<PeerId, Duration>,
    private: bool,
    /// Whether AutoNAT gave a verdict at all.
    known: bool,
}

impl NatState {
    /// The state for these `--listen` addresses (empty: the default wildcard listens).
    pub fn new(listen: &[Multiaddr]) -> Result<Self, NatError> {
        let mut state = Self::default();
        for addr in listen {
            if is_relayed(addr) {
                let relay = relay_of(addr).ok_or_else(|| NatError::NoRelayPeer(addr.clone()))?;
                state.circuits.push(Circuit {
                    addr: addr.clone(),
                    relay,
                    pinned: true,
                    state: CircuitState::Idle {
                        retry_at: Duration::ZERO,
                    },
                    failures: 0,
                    accepted: false,
                });
            } else if let Some(ip) = ip_of(addr).filter(|ip| !ip.is_unspecified()) {
                state.declared.insert(ip);
            }
        }
        Ok(state)
    }

    /// Whether a new listen address is one the operator declared, so it is an external address.
    pub fn is_declared(&self, addr: &Multiaddr) -> bool {
        !is_relayed(addr) && ip_of(addr).is_some_and(|ip| self.declared.contains(&ip))
    }

    /// Whether AutoNAT last said the node is private.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// AutoNAT's verdict. Returns the listener of a reservation to drop when the node turned public.
    pub fn set_private(&mut self, private: bool) -> Option<ListenerId> {
        self.private = private;
        self.known = true;
        if private {
            return None;
        }
        let i = self.circuits.iter().position(|c| !c.pinned)?;
        match self.circuits.remove(i).state {
            CircuitState::Listening(id) => Some(id),
            _ => None,
        }
    }

    /// A directly connected peer that speaks the relay hop protocol.
    pub fn relay_found(&mut self, peer: PeerId, addr: Multiaddr) {
        if self.relays.len() >= MAX_RELAY_CANDIDATES && !self.relays.contains_key(&peer) {
            return;
        }
        self.relays.insert(peer, addr);
    }

    /// Circuit addresses to listen on now; each must be answered with [`NatState::started`]. A private
    /// node without a reservation of its own chooses a connected relay here.
    pub fn due(&mut self, now: Duration, is_connected: impl Fn(&PeerId) -> bool) -> Vec<Multiaddr> {
        self.cooldown.retain(|_, until| *until > now);
        if self.private && !self.circuits.iter().any(|c| !c.pinned) {
            let pinned: BTreeSet<PeerId> = self.circuits.iter().map(|c| c.relay).collect();
            let usable = |peer: &PeerId| is_connected(peer) && !pinned.contains(peer);
            let choice = self
                .relays
                .iter()
                .find(|(peer, _)| usable(peer) && !self.cooldown.contains_key(peer))
                .or_else(|| {
                    // Every connected relay failed lately (often the only one, say after it restarted):
                    // rather than stay unreachable for the whole cool-down, ask again the one that
                    // failed longest ago, [`RELAY_RETRY_ALONE`] after its failure.
                    self.relays
                        .iter()
                        .filter(|(peer, _)| usable(peer))
                        .filter_map(|(peer, a)| self.cooldown.get(peer).map(|u| (*u, peer, a)))
                        .filter(|(until, _, _)| {
                            until.saturating_sub(RELAY_COOLDOWN) + RELAY_RETRY_ALONE <= now
                        })
                        .min_by_key(|(until, _, _)| *until)
                        .map(|(_, peer, a)| (peer, a))
                });
            if let Some((peer, addr)) = choice {
                self.circuits.push(Circuit {
                    addr: with_peer(addr.clone(), *peer).with(Protocol::P2pCircuit),
                    relay: *peer,
                    pinned: false,
                    state: CircuitState::Idle { retry_at: now },
                    failures: 0,
                    accepted: false,
                });
            }
        }
        let mut out = Vec::new();
        for c in &mut self.circuits {
            if matches!(c.state, CircuitState::Idle { retry_at } if retry_at <= now) {
                c.state = CircuitState::Starting;
                out.push(c.addr.clone());
            }
        }
        out
    }

    /// The outcome of `listen_on` for an address from [`NatState::due`]: its listener, or none when the
    /// swarm refused it at once.
    pub fn started(&mut self, addr: &Multiaddr, listener: Option<ListenerId>, now: Duration) {
        let Some(i) = self
            .circuits
            .iter()
            .position(|c| c.addr == *addr && c.state == CircuitState::Starting)
        else {
            return;
        };
        match listener {
            Some(id) => self.circuits[i].state = CircuitState::Listening(id),
            None => self.failed(i, now),
        }
    }

    /// A relay accepted a reservation (not a renewal). Returns whether the node asked that relay.
    pub fn accepted(&mut self, relay: PeerId) -> bool {
        let mut ours = false;
        for c in &mut self.circuits {
            if c.relay == relay && matches!(c.state, CircuitState::Listening(_)) {
                c.accepted = true;
                c.failures = 0;
                ours = true;
            }
        }
        ours
    }

    /// A listener closed. If it was a relay circuit, returns its address: a pinned circuit is listened on
    /// again after a back-off; a chosen one is dropped and its relay avoided for a while if it never
    /// accepted, so the next [`NatState::due`] picks another.
    pub fn closed(&mut self, listener: ListenerId, now: Duration) -> Option<Multiaddr> {
        let i = self
            .circuits
            .iter()
            .position(|c| c.state == CircuitState::Listening(listener))?;
        let addr = self.circuits[i].addr.clone();
        self.failed(i, now);
        Some(addr)
    }

    /// AutoNAT's last verdict, for `status`.
    pub fn verdict(&self) -> NatStatus {
        match (self.known, self.private) {
            (false, _) => NatStatus::Unknown,
            (true, true) => NatStatus::Private,
            (true, false) => NatStatus::Public,
        }
    }

    /// The circuit addresses (`<relay addr>/p2p/<relay>/p2p-circuit`) with an accepted reservation.
    pub fn reserved_addrs(&self) -> Vec<Multiaddr> {
        self.circuits
            .iter()
            .filter(|c| c.accepted && matches!(c.state, CircuitState::Listening(_)))
            .map(|c| c.addr.clone())
            .collect()
    }

    /// Circuits listening with an accepted reservation.
    pub fn reserved(&self) -> usize {
        self.circuits
            .iter()
            .filter(|c| c.accepted && matches!(c.state, CircuitState::Listening(_)))
            .count()
    }

    fn failed(&mut self, i: usize, now: Duration) {
        let c = &mut self.circuits[i];
        if !c.pinned {
            if !c.accepted {
                self.cooldown.insert(c.relay, now + RELAY_COOLDOWN);
            }
            self.circuits.remove(i);
            return;
        }
        let wait = FIRST_RETRY
            .checked_mul(1u32 << c.failures.min(16))
            .map_or(MAX_RETRY, |w| w.min(MAX_RETRY));
        c.failures = c.failures.saturating_add(1);
        c.accepted = false;
        c.state = CircuitState::Idle {
            retry_at: now + wait,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    fn circuit_via(relay: PeerId) -> Multiaddr {
        addr("/ip4/127.0.0.1/tcp/4001")
            .with(Protocol::P2p(relay))
            .with(Protocol::P2pCircuit)
    }

    #[test]
    fn specific_listen_ips_are_declared_and_wildcards_are_not() {
        let relay = PeerId::random();
        let nat = NatState::new(&[
            addr("/ip4/203.0.113.5/tcp/4001"),
            addr("/ip4/0.0.0.0/udp/4001/quic-v1"),
            circuit_via(relay),
        ])
        .expect("valid");
        assert!(nat.is_declared(&addr("/ip4/203.0.113.5/tcp/4001")));
        assert!(nat.is_declared(&addr("/ip4/203.0.113.5/tcp/35000")));
        assert!(!nat.is_declared(&addr("/ip4/192.168.1.4/udp/4001/quic-v1")));
        assert!(
            !nat.is_declared(&circuit_via(relay)),
            "relayed addresses never"
        );
        assert!(!NatState::new(&[])
            .expect("valid")
            .is_declared(&addr("/ip4/127.0.0.1/tcp/1")));
    }

    #[test]
    fn a_circuit_without_a_relay_id_is_refused() {
        let bad = addr("/ip4/127.0.0.1/tcp/4001/p2p-circuit");
        assert_eq!(
            NatState::new(std::slice::from_ref(&bad)).err(),
            Some(NatError::NoRelayPeer(bad))
        );
    }

    #[test]
    fn a_relayed_connection_is_shown_by_its_circuit_on_both_ends() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        let circuit = circuit_via(relay);
        // The dialing end sees the full circuit address it dialed.
        let dialer = ConnectedPoint::Dialer {
            address: circuit.clone().with(Protocol::P2p(peer)),
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::Reuse,
        };
        assert_eq!(
            remote_addr(&dialer, peer),
            circuit.clone().with(Protocol::P2p(peer))
        );
        // The listening end is only told `/p2p/<peer>`; it shows the circuit the peer came through.
        let listener = ConnectedPoint::Listener {
            local_addr: circuit.clone(),
            send_back_addr: Multiaddr::empty().with(Protocol::P2p(peer)),
        };
        assert_eq!(
            remote_addr(&listener, peer),
            circuit.with(Protocol::P2p(peer))
        );
        let direct = ConnectedPoint::Listener {
            local_addr: addr("/ip4/127.0.0.1/tcp/4001"),
            send_back_addr: addr("/ip4/127.0.0.1/tcp/50000"),
        };
        assert_eq!(remote_addr(&direct, peer), addr("/ip4/127.0.0.1/tcp/50000"));
    }

    #[test]
    fn with_peer_appends_only_when_missing() {
        let me = PeerId::random();
        let plain = addr("/ip4/127.0.0.1/tcp/1");
        assert_eq!(
            with_peer(plain.clone(), me),
            plain.clone().with(Protocol::P2p(me))
        );
        let relayed = circuit_via(PeerId::random()).with(Protocol::P2p(me));
        assert_eq!(with_peer(relayed.clone(), me), relayed);
    }

    #[test]
    fn a_pinned_circuit_is_listened_on_at_once_and_again_after_a_growing_back_off() {
        let relay = PeerId::random();
        let circuit = circuit_via(relay);
        let mut nat = NatState::new(std::slice::from_ref(&circuit)).expect("valid");
        let never = |_: &PeerId| false;
        assert_eq!(nat.due(secs(0), never), vec![circuit.clone()]);
        assert!(nat.due(secs(0), never).is_empty(), "handed out once");
        let id = ListenerId::next();
        nat.started(&circuit, Some(id), secs(0));
        assert!(nat.accepted(relay));
        assert_eq!(nat.reserved(), 1);
        // The relay goes away: listen again after 10 s, then 20 s after a second failure.
        assert_eq!(nat.closed(id, secs(100)), Some(circuit.clone()));
        assert_eq!(nat.reserved(), 0);
        assert!(nat.due(secs(109), never).is_empty());
        assert_eq!(nat.due(secs(110), never), vec![circuit.clone()]);
        let id = ListenerId::next();
        nat.started(&circuit, Some(id), secs(110));
        nat.closed(id, secs(111));
        assert!(nat.due(secs(130), never).is_empty());
        assert_eq!(nat.due(secs(131), never), vec![circuit.clone()]);
        // A listen the swarm refuses at once counts as a failure too (now 40 s).
        nat.started(&circuit, None, secs(131));
        assert!(nat.due(secs(170), never).is_empty());
        assert_eq!(nat.due(secs(171), never), vec![circuit.clone()]);
        // An accepted reservation resets the back-off.
        let id = ListenerId::next();
        nat.started(&circuit, Some(id), secs(171));
        nat.accepted(relay);
        nat.closed(id, secs(200));
        assert_eq!(nat.due(secs(210), never), vec![circuit]);
    }

    #[test]
    fn the_back_off_is_capped() {
        let relay = PeerId::random();
        let circuit = circuit_via(relay);
        let mut nat = NatState::new(std::slice::from_ref(&circuit)).expect("valid");
        let mut now = secs(0);
        for _ in 0..40 {
            let due = nat.due(now, |_| false);
            assert_eq!(due, vec![circuit.clone()], "due at {now:?}");
            nat.started(&circuit, None, now);
            now += MAX_RETRY;
        }
    }

    #[test]
    fn a_private_node_reserves_on_a_connected_relay_and_drops_it_when_public() {
        let mut nat = NatState::new(&[]).expect("valid");
        let relay = PeerId::random();
        let relay_addr = addr("/ip4/198.51.100.7/tcp/4001");
        nat.relay_found(relay, relay_addr.clone());
        assert!(
            nat.due(secs(0), |_| true).is_empty(),
            "not private: no relay"
        );
        assert_eq!(nat.verdict(), NatStatus::Unknown);
        assert_eq!(nat.set_private(true), None);
        assert!(nat.is_private());
        assert_eq!(nat.verdict(), NatStatus::Private);
        assert!(
            nat.due(secs(0), |_| false).is_empty(),
            "only a connected relay"
        );
        let expected = relay_addr
            .with(Protocol::P2p(relay))
            .with(Protocol::P2pCircuit);
        assert_eq!(nat.due(secs(1), |_| true), vec![expected.clone()]);
        let id = ListenerId::next();
        nat.started(&expected, Some(id), secs(1));
        assert!(
            nat.due(secs(2), |_| true).is_empty(),
            "one reservation is enough"
        );
        assert!(nat.accepted(relay));
        assert_eq!(nat.reserved_addrs(), vec![expected.clone()]);
        assert_eq!(nat.set_private(false), Some(id), "public: drop it");
        assert_eq!(nat.verdict(), NatStatus::Public);
        assert_eq!(nat.reserved(), 0);
        assert!(nat.reserved_addrs().is_empty());
        assert!(nat.due(secs(3), |_| true).is_empty());
    }

    #[test]
    fn a_relay_that_refuses_is_avoided_for_a_while() {
        let mut nat = NatState::new(&[]).expect("valid");
        let bad = PeerId::random();
        let good = PeerId::random();
        // Peer ids order the candidates; make sure the bad one is tried first.
        let (bad, good) = if bad < good { (bad, good) } else { (good, bad) };
        nat.relay_found(bad, addr("/ip4/198.51.100.1/tcp/1"));
        nat.relay_found(good, addr("/ip4/198.51.100.2/tcp/1"));
        nat.set_private(true);
        let first = nat.due(secs(0), |_| true);
        assert_eq!(relay_of(&first[0]), Some(bad));
        let id = ListenerId::next();
        nat.started(&first[0], Some(id), secs(0));
        assert_eq!(nat.closed(id, secs(1)), Some(first[0].clone()));
        let second = nat.due(secs(1), |_| true);
        assert_eq!(relay_of(&second[0]), Some(good));
        nat.started(&second[0], None, secs(1));
        assert!(
            nat.due(secs(2), |_| true).is_empty(),
            "both relays cool down"
        );
        let again = nat.due(secs(1) + RELAY_COOLDOWN, |_| true);
        assert_eq!(relay_of(&again[0]), Some(bad));
    }

    #[test]
    fn the_only_relay_is_asked_again_after_a_failure() {
        let mut nat = NatState::new(&[]).expect("valid");
        let relay = PeerId::random();
        nat.relay_found(relay, addr("/ip4/198.51.100.1/tcp/1"));
        nat.set_private(true);
        let first = nat.due(secs(0), |_| true);
        let id = ListenerId::next();
        nat.started(&first[0], Some(id), secs(0));
        nat.closed(id, secs(5));
        assert!(nat.due(secs(6), |_| true).is_empty(), "not at once");
        assert!(nat.due(secs(34), |_| true).is_empty());
        assert_eq!(nat.due(secs(35), |_| true), first, "30 s after the failure");
        assert!(nat.due(secs(36), |_| false).is_empty());
    }

    #[test]
    fn unrelated_listeners_are_not_ours() {
        let mut nat = NatState::new(&[]).expect("valid");
        assert_eq!(nat.closed(ListenerId::next(), secs(0)), None);
        assert!(!nat.accepted(PeerId::random()));
    }

    #[test]
    fn loopback_listen_addresses_are_kept_only_for_a_peer_on_this_machine() {
        let listen = vec![
            addr("/ip4/127.0.0.1/tcp/4717"),
            addr("/ip4/10.0.0.2/tcp/4717"),
            addr("/ip6/::1/udp/4717/quic-v1"),
            addr("/ip4/198.51.100.1/tcp/4001")
                .with(Protocol::P2p(PeerId::random()))
                .with(Protocol::P2pCircuit),
        ];
        let remote = vec![addr("/ip4/198.51.100.7/tcp/4717")];
        assert_eq!(
            reachable_listen_addrs(&listen, &remote),
            vec![listen[1].clone(), listen[3].clone()]
        );
        let local = vec![addr("/ip4/127.0.0.1/tcp/50000")];
        assert_eq!(reachable_listen_addrs(&listen, &local), listen);
        // Through a relay on this machine is not on this machine.
        let relayed = vec![circuit_via(PeerId::random())];
        assert_eq!(reachable_listen_addrs(&listen, &relayed).len(), 2);
    }

    #[test]
    fn the_relay_address_prefers_one_we_are_connected_through() {
        let listen = vec![
            addr("/ip4/10.0.0.1/tcp/1"),
            addr("/ip4/198.51.100.7/tcp/4001"),
        ];
        let connected = vec![addr("/ip4/198.51.100.7/tcp/4001")];
        assert_eq!(
            pick_relay_addr(&listen, &connected),
            Some(addr("/ip4/198.51.100.7/tcp/4001"))
        );
        // Dialed with its peer id (a bootstrap address): the id is not repeated in the circuit.
        let relay = PeerId::random();
        let dialed = vec![addr("/ip4/198.51.100.7/tcp/4001").with(Protocol::P2p(relay))];
        assert_eq!(
            pick_relay_addr(&listen, &dialed),
            Some(addr("/ip4/198.51.100.7/tcp/4001"))
        );
        let mut nat = NatState::new(&[]).expect("valid");
        nat.relay_found(relay, dialed[0].clone());
        nat.set_private(true);
        assert_eq!(
            nat.due(secs(0), |_| true),
            vec![dialed[0].clone().with(Protocol::P2pCircuit)],
            "one /p2p/<relay> before /p2p-circuit"
        );
        // The relay dialed us: its listen address on that IP, not the ephemeral port.
        let inbound = vec![addr("/ip4/198.51.100.7/tcp/53211")];
        assert_eq!(
            pick_relay_addr(&listen, &inbound),
            Some(addr("/ip4/198.51.100.7/tcp/4001"))
        );
        assert_eq!(
            pick_relay_addr(&listen[..1], &inbound),
            Some(addr("/ip4/198.51.100.7/tcp/53211"))
        );
        let relayed = vec![circuit_via(PeerId::random())];
        assert_eq!(
            pick_relay_addr(&listen, &relayed),
            Some(addr("/ip4/10.0.0.1/tcp/1"))
        );
        assert_eq!(pick_relay_addr(&[], &relayed), None);
    }
}
