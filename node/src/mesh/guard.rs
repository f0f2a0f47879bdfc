//! [`Guard`]: what strangers may hold of this node's connections, and slots kept for known peers.
//!
//! A connection's peer is unknown until its handshake completes, so pending connections can only be
//! bounded by address: at most [`MAX_PENDING_PER_IP`] handshakes per remote IP at once (on top of the
//! global bound and the short handshake deadline the swarm is built with), which stops one host from
//! filling the node's pending slots with idle TCP connections. Once the handshake completes, a peer is
//! *known* when the roster names its key as a device or it proved it holds a member token
//! ([`super::trust`]); known peers bypass every limit here and in libp2p's connection limits, so they
//! always find a slot. Everyone else is a *stranger*: at most [`MAX_STRANGERS_PER_IP`] established
//! connections per IP and [`MAX_STRANGERS`] in all; when that is full the oldest stranger connection is
//! closed for the new one, so a member's laptop (a stranger for the moment between its handshake and its
//! proof) gets in however many idle strangers hold connections.
//!
//! Relayed connections carry no remote IP and are bounded by the relay server's own limits.
//!
//! A peer the service found sending items no honest node relays (bad signatures, undecodable bytes) is
//! *barred* ([`Guard::bar`]): its connections are refused, known or not, until the bar ends. Bars are by
//! peer id, not by IP: a coworking space's members share one address.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm,
    ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;

/// Handshakes in progress from one remote IP.
pub const MAX_PENDING_PER_IP: usize = 8;
/// Established connections of strangers from one remote IP.
pub const MAX_STRANGERS_PER_IP: usize = 8;
/// Established connections of strangers in all; the oldest makes way for a new one.
pub const MAX_STRANGERS: usize = 128;

/// Why the guard turned a connection away.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(String);

/// The connection guard (see the module doc).
#[derive(Debug, Default)]
pub struct Guard {
    trusted: HashSet<PeerId>,
    /// Handshakes in progress, with their remote IP.
    pending: HashMap<ConnectionId, IpAddr>,
    pending_per_ip: HashMap<IpAddr, usize>,
    /// Established connections of strangers, oldest first (connection ids only grow).
    strangers: BTreeMap<ConnectionId, (PeerId, Option<IpAddr>)>,
    strangers_per_ip: HashMap<IpAddr, usize>,
    /// Stranger connections to close, for `poll`.
    evict: Vec<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
    /// Connections turned away so far (for the log and `status`).
    pub denied: u64,
    /// Stranger connections closed to make room.
    pub evicted: u64,
    /// Peers refused until the given instant ([`Guard::bar`]).
    barred: HashMap<PeerId, Instant>,
}

/// The IP a multiaddr starts with, if any (`None` for relayed addresses).
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn dec(map: &mut HashMap<IpAddr, usize>, ip: &IpAddr) {
    if let Some(n) = map.get_mut(ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(ip);
        }
    }
}

impl Guard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `peer` is known (a roster device or a proven member).
    pub fn is_trusted(&self, peer: &PeerId) -> bool {
        self.trusted.contains(peer)
    }

    /// Marks `peer` as known; its stranger connections stop counting as such.
    pub fn trust(&mut self, peer: PeerId) {
        if !self.trusted.insert(peer) {
            return;
        }
        let promoted: Vec<ConnectionId> = self
            .strangers
            .iter()
            .filter(|(_, (p, _))| *p == peer)
            .map(|(c, _)| *c)
            .collect();
        for c in promoted {
            self.forget_stranger(c);
        }
    }

    /// Stranger connections established now.
    pub fn strangers(&self) -> usize {
        self.strangers.len()
    }

    fn forget_stranger(&mut self, connection: ConnectionId) {
        if let Some((_, Some(ip))) = self.strangers.remove(&connection) {
            dec(&mut self.strangers_per_ip, &ip);
        }
    }

    fn forget_pending(&mut self, connection: ConnectionId) {
        if let Some(ip) = self.pending.remove(&connection) {
            dec(&mut self.pending_per_ip, &ip);
        }
    }

    fn deny(&mut self, why: String) -> ConnectionDenied {
        self.denied += 1;
        ConnectionDenied::new(Denied(why))
    }

    /// Refuses every connection of `peer` until `until` (the service closes the ones it has).
    pub fn bar(&mut self, peer: PeerId, until: Instant) {
        let now = Instant::now();
        self.barred.retain(|_, end| *end > now);
        self.barred.insert(peer, until);
    }

    /// Whether `peer` is barred now.
    pub fn is_barred(&self, peer: &PeerId) -> bool {
        self.barred
            .get(peer)
            .is_some_and(|end| *end > Instant::now())
    }

    /// Refuses a barred peer's connection.
    fn check_bar(&mut self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.is_barred(peer) {
            return Err(self.deny(format!(
                "peer {peer} is barred for a while: it sent items no honest node relays"
            )));
        }
        Ok(())
    }

    /// Admits an established connection of `peer` from `ip`, or says why not.
    fn admit(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        ip: Option<IpAddr>,
    ) -> Result<(), ConnectionDenied> {
        self.check_bar(&peer)?;
        if self.trusted.contains(&peer) {
            return Ok(());
        }
        if let Some(ip) = ip {
            if self.strangers_per_ip.get(&ip).copied().unwrap_or(0) >= MAX_STRANGERS_PER_IP {
                return Err(self.deny(format!(
                    "{ip} already holds {MAX_STRANGERS_PER_IP} connections of unknown peers"
                )));
            }
        }
        if self.strangers.len() >= MAX_STRANGERS {
            if let Some((&oldest, &(old_peer, _))) = self.strangers.iter().next() {
                self.forget_stranger(oldest);
                self.evict.push((old_peer, oldest));
                self.evicted += 1;
                if let Some(w) = self.waker.take() {
                    w.wake();
                }
            }
        }
        self.strangers.insert(connection, (peer, ip));
        if let Some(ip) = ip {
            *self.strangers_per_ip.entry(ip).or_default() += 1;
        }
        Ok(())
    }
}

impl NetworkBehaviour for Guard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        if self.pending_per_ip.get(&ip).copied().unwrap_or(0) >= MAX_PENDING_PER_IP {
            return Err(self.deny(format!(
                "{ip} already has {MAX_PENDING_PER_IP} handshakes in progress"
            )));
        }
        self.pending.insert(connection_id, ip);
        *self.pending_per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.forget_pending(connection_id);
        self.admit(connection_id, peer, ip_of(remote))?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // This node chose to dial; it counts as a stranger only until the peer proves itself, but is never
        // refused for its IP.
        let _ = addr;
        self.check_bar(&peer)?;
        if !self.trusted.contains(&peer) {
            self.strangers.insert(connection_id, (peer, None));
        }
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.forget_pending(connection_id);
                self.forget_stranger(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.forget_pending(connection_id);
                self.forget_stranger(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        if let Some((peer_id, connection)) = self.evict.pop() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fresh connection id (the swarm hands them out in increasing order).
    fn cid() -> ConnectionId {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        ConnectionId::new_unchecked(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_ip_gets_a_few_handshakes_at_once_and_others_are_unaffected() {
        let local = addr("/ip4/10.0.0.1/tcp/4717");
        let flood = addr("/ip4/192.0.2.66/tcp/5555");
        let mut ids = Vec::new();
        let mut g = Guard::new();
        for _ in 0..MAX_PENDING_PER_IP {
            let id = cid();
            g.handle_pending_inbound_connection(id, &local, &flood)
                .unwrap();
            ids.push(id);
        }
        assert!(g
            .handle_pending_inbound_connection(cid(), &local, &flood)
            .is_err());
        let other = addr("/ip4/198.51.100.7/tcp/4717");
        g.handle_pending_inbound_connection(cid(), &local, &other)
            .unwrap();
        // A relayed connection has no IP to count.
        let relayed = addr("/ip4/192.0.2.66/tcp/4717/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        g.handle_pending_inbound_connection(cid(), &local, &relayed)
            .unwrap();
        // A handshake that ends frees its slot.
        g.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: ids[0],
            endpoint: &libp2p::core::ConnectedPoint::Listener {
                local_addr: local.clone(),
                send_back_addr: flood.clone(),
            },
            cause: None,
            remaining_established: 0,
        }));
        g.handle_pending_inbound_connection(cid(), &local, &flood)
            .unwrap();
        assert_eq!(g.denied, 1);
    }

    #[test]
    fn a_barred_peer_is_refused_known_or_not_until_its_bar_ends() {
        let mut g = Guard::new();
        let ip: IpAddr = "192.0.2.66".parse().unwrap();
        let (stranger, known, other) = (PeerId::random(), PeerId::random(), PeerId::random());
        g.trust(known);
        let later = Instant::now() + std::time::Duration::from_secs(3600);
        g.bar(stranger, later);
        g.bar(known, later);
        assert!(g.admit(cid(), stranger, Some(ip)).is_err());
        assert!(g.admit(cid(), known, Some(ip)).is_err());
        let dialled = g.handle_established_outbound_connection(
            cid(),
            known,
            &addr("/ip4/192.0.2.66/tcp/4717"),
            Endpoint::Dialer,
            PortUse::Reuse,
        );
        assert!(dialled.is_err(), "a barred peer is not dialled either");
        // Another peer on the same address is not affected: bars are by peer, not by IP.
        g.admit(cid(), other, Some(ip)).unwrap();
        assert_eq!(g.denied, 3);
        // A bar that has ended lets the peer in again.
        g.bar(stranger, Instant::now());
        assert!(!g.is_barred(&stranger));
        g.admit(cid(), stranger, Some(ip)).unwrap();
    }

    #[test]
    fn strangers_are_bounded_per_ip_and_in_all_and_known_peers_always_get_in() {
        let mut g = Guard::new();
        let ip: IpAddr = "192.0.2.66".parse().unwrap();
        for _ in 0..MAX_STRANGERS_PER_IP {
            g.admit(cid(), PeerId::random(), Some(ip)).unwrap();
        }
        assert!(g.admit(cid(), PeerId::random(), Some(ip)).is_err());
        let known = PeerId::random();
        g.trust(known);
        for _ in 0..3 {
            g.admit(cid(), known, Some(ip)).unwrap();
        }
        assert_eq!(g.strangers(), MAX_STRANGERS_PER_IP);

        // From many IPs: full at MAX_STRANGERS, then each newcomer evicts the oldest.
        let mut g = Guard::new();
        let first = cid();
        g.admit(first, PeerId::random(), None).unwrap();
        for i in 1..MAX_STRANGERS {
            let ip: IpAddr = format!("10.0.{}.{}", i / 200, i % 200 + 1).parse().unwrap();
            g.admit(cid(), PeerId::random(), Some(ip)).unwrap();
        }
        assert_eq!(g.strangers(), MAX_STRANGERS);
        let newcomer = PeerId::random();
        g.admit(cid(), newcomer, None).unwrap();
        assert_eq!(g.strangers(), MAX_STRANGERS);
        assert_eq!(g.evicted, 1);
        assert_eq!(g.evict.last().map(|e| e.1), Some(first));
        // Proving itself takes the newcomer out of the strangers.
        g.trust(newcomer);
        assert_eq!(g.strangers(), MAX_STRANGERS - 1);
    }
}
