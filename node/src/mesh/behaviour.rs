//! The libp2p side of the mesh: the composed [`Behaviour`] (connection limits, circuit relay v2 client and
//! server, AutoNAT, DCUtR, identify, ping, mDNS, Kademlia, gossipsub with peer scoring, request-response
//! for sync), the wire types carried by request-response, and [`build_swarm`], which derives the
//! transport identity from the device key so a node's `PeerId` is its device key.
//!
//! Every node is a relay server with conservative limits ([`relay_config`]), so a member space with a
//! public address serves as a relay for the others; every node also has the relay client transport, so
//! it can listen through a relay and dial `/p2p-circuit` addresses, and DCUtR, which tries to upgrade a
//! relayed connection to a direct one. Gossip peers are scored ([`score_params`], [`score_topic`]): a
//! peer whose messages the node rejects quickly falls below the gossip, publish and graylist thresholds.
//! Hard limits a peer cannot get past: [`MAX_CONNECTIONS`] and [`MAX_CONNECTIONS_PER_PEER`] connections
//! (relayed ones included), [`MAX_PENDING_INCOMING`] handshakes at once, each cut off after
//! [`HANDSHAKE_TIMEOUT`], [`MAX_STREAMS_PER_PEER`] sync requests in flight per peer, [`MAX_REQUEST_BYTES`]
//! per request and [`MAX_GOSSIP_BYTES`] per gossip message. Strangers get less than that ([`super::guard`]);
//! known peers bypass the connection limits, so slots are always left for them. Ping runs every
//! [`PING_INTERVAL`] so the service can close connections that stopped answering.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::Context;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify, identity, kad, mdns, noise, ping,
    relay, tcp, yamux, StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};

use deskmesh_sync::ItemKind;

/// The request-response protocol for sync messages and item batches: the number is the sync message
/// version ([`deskmesh_sync::VERSION`], 3: six item kinds), and batches are zstd-packed since 2.
pub const SYNC_PROTOCOL: &str = "/deskmesh/sync/3";

/// Largest gossip message: announcements are single signed items, which are small.
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// Largest request a peer may send us (a batch of items or one sync message).
pub const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;
/// Items are batched into requests of about this many bytes.
pub const ITEM_BATCH_BYTES: usize = 512 * 1024;
/// Requests one peer may have in flight with us at once, each way.
pub const MAX_STREAMS_PER_PEER: usize = 32;
/// Connections in total and per peer (known peers bypass these: see [`super::guard`]).
pub const MAX_CONNECTIONS: u32 = 256;
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Incoming handshakes in progress at once (per IP: [`super::guard::MAX_PENDING_PER_IP`]). The peer of a
/// pending connection is not known yet, so no slot can be kept for members here: the pool is large (an
/// idle socket costs little) so that filling it takes more than 128 addresses, and each slot frees itself
/// after [`HANDSHAKE_TIMEOUT`].
pub const MAX_PENDING_INCOMING: u32 = 1024;
/// Outgoing dials in progress at once.
pub const MAX_PENDING_OUTGOING: u32 = 64;
/// A connection whose handshake (TCP or QUIC, noise, yamux) has not completed by then is dropped: a
/// stranger cannot hold a pending slot with an idle socket for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often each connection is pinged, and how long a ping may take.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Relay server limits. Reservations others hold on this node at once, and per peer.
pub const RELAY_MAX_RESERVATIONS: usize = 64;
pub const RELAY_MAX_RESERVATIONS_PER_PEER: usize = 2;
/// Circuits relayed at once, and per peer.
pub const RELAY_MAX_CIRCUITS: usize = 32;
/// libp2p counts a peer's circuits at both ends (as source and as destination), and a space behind a
/// symmetric NAT reaches every peer through a relay: it keeps up to `peers::TARGET_PEERS` (8)
/// connections, and a restarted node finds its previous run's circuits still counted until the relay
/// notices they are dead. At 4 (before the NAT lab), a restarted private node was refused every new
/// circuit for tens of seconds.
pub const RELAY_MAX_CIRCUITS_PER_PEER: usize = 12;
/// One circuit ends after this long or this many bytes, whichever first: long enough for DCUtR and for a
/// sync batch ([`ITEM_BATCH_BYTES`]), short enough that a relaying space does not carry bulk traffic.
pub const RELAY_MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(10 * 60);
pub const RELAY_MAX_CIRCUIT_BYTES: u64 = 8 * 1024 * 1024;

/// Gossip score thresholds (see [`score_thresholds`]): below the first a peer gets no gossip from us,
/// below the second nothing we publish, below the third everything it sends is ignored (graylisted).
pub const SCORE_GOSSIP_THRESHOLD: f64 = -10.0;
pub const SCORE_PUBLISH_THRESHOLD: f64 = -40.0;
pub const SCORE_GRAYLIST_THRESHOLD: f64 = -80.0;
/// Weight of the squared count of rejected messages a peer sent on the alliance topic: one costs 20
/// points, two 80, three 180, so a peer sending several invalid messages is graylisted at once.
pub const SCORE_INVALID_MESSAGE_WEIGHT: f64 = -20.0;

/// One signed item as it crosses the wire: its kind and its exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireItem {
    pub kind: ItemKind,
    #[serde(with = "serde_bytes_vec")]
    pub bytes: Vec<u8>,
}

/// A request between two nodes. Every request is answered with [`Reply::Ack`]; the interesting data flows
/// as requests both ways, so each side drives its own sync engine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// One encoded sync-engine message (`sync::Msg::encode`).
    Sync(#[serde(with = "serde_bytes_vec")] Vec<u8>),
    /// Signed items the receiver lacks or asked for, roster operations first: [`pack`]ed (postcard, then
    /// zstd), so a batch moves a fraction of its bytes.
    Items(#[serde(with = "serde_bytes_vec")] Vec<u8>),
}

/// Most bytes a batch may unpack to: a batch is about [`ITEM_BATCH_BYTES`]; anything far beyond is a
/// decompression bomb and is refused before it is expanded.
pub const MAX_UNPACKED_BYTES: usize = 16 * 1024 * 1024;
/// zstd's level for item batches. On a 10,000-space directory's items (25 MB) level 3 packs at ~250 MB/s
/// and level 7 at ~100 MB/s (5 ms for a 512 KiB batch, on the event loop) to 5 % fewer bytes on the
/// wire of a cold join (4.59x -> 4.35x gzip of the JSON export, docs/BENCHMARKS.md); levels past 7 gain
/// almost nothing more. Unpacking is as fast at any level.
const ZSTD_LEVEL: i32 = 7;

/// Encodes a batch of items for [`Request::Items`].
pub fn pack(items: &[WireItem]) -> anyhow::Result<Vec<u8>> {
    let raw = postcard::to_stdvec(items).context("cannot encode an item batch")?;
    zstd::bulk::compress(&raw, ZSTD_LEVEL).context("cannot compress an item batch")
}

/// Decodes what [`pack`] made, refusing more than [`MAX_UNPACKED_BYTES`] unpacked.
pub fn unpack(bytes: &[u8]) -> anyhow::Result<Vec<WireItem>> {
    let raw = zstd::bulk::decompress(bytes, MAX_UNPACKED_BYTES)
        .context("the item batch does not decompress (or unpacks to more than 16 MiB)")?;
    postcard::from_bytes(&raw).context("the item batch does not decode")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    Ack,
}

/// CBOR encodes `Vec<u8>` as an array of integers; this keeps it a compact byte string.
mod serde_bytes_vec {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Every protocol the node speaks, composed.
// The libp2p behaviours it holds implement no `Debug`, so neither can this.
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    // First, so a connection over the limits is denied before any other protocol keeps state for it.
    pub guard: super::guard::Guard,
    pub limits: connection_limits::Behaviour,
    pub relay_client: relay::client::Behaviour,
    pub relay: relay::Behaviour,
    pub autonat: autonat::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossip: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<Request, Reply>,
}

/// Builds the swarm with the device key's seed as the transport identity; `agent` is the identify agent
/// version, which carries the node's member proof ([`super::trust::agent_version`]).
/// `private_ips`: see [`autonat_config`].
pub fn build_swarm(
    seed: &mut [u8; 32],
    mdns_on: bool,
    agent: String,
    private_ips: bool,
) -> anyhow::Result<Swarm<Behaviour>> {
    let keypair = identity::Keypair::ed25519_from_bytes(seed)
        .context("the device key cannot be used as a libp2p identity")?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(
            |key, relay_client| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let peer_id = key.public().to_peer_id();
                let gossip_config = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .validate_messages()
                    .max_transmit_size(MAX_GOSSIP_BYTES)
                    .heartbeat_interval(Duration::from_secs(1))
                    // Identical items published by two nodes are one message: the id is the content hash.
                    .message_id_fn(|m| {
                        gossipsub::MessageId::from(
                            deskmesh_keys::Hash::of("gossip-id", &m.data).0.to_vec(),
                        )
                    })
                    .build()?;
                let mut gossip = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossip_config,
                )?;
                // Topic parameters come once the alliance topic is known ([`score_topic`]).
                gossip.with_peer_score(score_params(), score_thresholds())?;
                let mut kad_config = kad::Config::new(StreamProtocol::new("/deskmesh/kad/1.0.0"));
                kad_config.set_query_timeout(Duration::from_secs(30));
                let mut kad = kad::Behaviour::with_config(
                    peer_id,
                    kad::store::MemoryStore::new(peer_id),
                    kad_config,
                );
                // Member spaces answer DHT queries even without a confirmed public address (LAN, loopback).
                kad.set_mode(Some(kad::Mode::Server));
                let mdns = if mdns_on {
                    Some(mdns::tokio::Behaviour::new(
                        mdns::Config::default(),
                        peer_id,
                    )?)
                } else {
                    None
                };
                let codec = request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(MAX_REQUEST_BYTES)
                    .set_response_size_maximum(1024);
                let sync = request_response::Behaviour::with_codec(
                    codec,
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(MAX_STREAMS_PER_PEER),
                );
                let limits = connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                        .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                        .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING)),
                );
                Ok(Behaviour {
                    guard: super::guard::Guard::new(),
                    limits,
                    relay_client,
                    relay: relay::Behaviour::new(peer_id, relay_config()),
                    autonat: autonat::Behaviour::new(peer_id, autonat_config(private_ips)),
                    dcutr: dcutr::Behaviour::new(peer_id),
                    identify: identify::Behaviour::new(
                        identify::Config::new("/deskmesh/1".into(), key.public())
                            .with_agent_version(agent)
                            // A relay circuit is listened on after the first identify exchange: peers
                            // (and through the relay's DHT, everyone) learn it only from a push.
                            .with_push_listen_addr_updates(true)
                            // No address book of identify's own: it would hand every listen address a
                            // peer reports (its 127.0.0.1 too) to every dial of that peer, bypassing the
                            // service's filter (`nat::reachable_listen_addrs`) on what goes into the
                            // DHT and the peer list, which is where dials take addresses from.
                            .with_cache_size(0),
                    ),
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(PING_INTERVAL)
                            .with_timeout(PING_TIMEOUT),
                    ),
                    mdns: mdns.into(),
                    kad,
                    gossip,
                    sync,
                })
            },
        )?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .with_connection_timeout(HANDSHAKE_TIMEOUT)
        .build();
    Ok(swarm)
}

/// AutoNAT (v1): the first probe 5 s after start (the default 15 s kept a node behind a NAT unreachable
/// for longer than it takes to meet its first peers), again every 30 s until a verdict is sure (default
/// 90 s), each peer asked at most every 30 s. By default a probe only counts peers at global IPs, as
/// servers and as clients, so a peer on the same LAN cannot declare a LAN address public; with
/// `private_ips` (`deskmesh run --nat-private-ips`) private ranges count too, for a network lab (whose
/// "public" side is 10.x) or an alliance on one private WAN. A server only ever dials back the IP a
/// client connects from, so this gives strangers no way to aim the node at other hosts.
pub fn autonat_config(private_ips: bool) -> autonat::Config {
    autonat::Config {
        boot_delay: Duration::from_secs(5),
        retry_interval: Duration::from_secs(30),
        throttle_server_period: Duration::from_secs(30),
        only_global_ips: !private_ips,
        ..autonat::Config::default()
    }
}

/// The relay server's limits: few reservations and circuits, each circuit short and small, and per-peer
/// and per-IP rates for new reservations and circuits, so relaying for others stays cheap.
pub fn relay_config() -> relay::Config {
    // Rate limiters take a burst and the time one more takes to come back.
    let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
    relay::Config {
        max_reservations: RELAY_MAX_RESERVATIONS,
        max_reservations_per_peer: RELAY_MAX_RESERVATIONS_PER_PEER,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: RELAY_MAX_CIRCUITS,
        max_circuits_per_peer: RELAY_MAX_CIRCUITS_PER_PEER,
        max_circuit_duration: RELAY_MAX_CIRCUIT_DURATION,
        max_circuit_bytes: RELAY_MAX_CIRCUIT_BYTES,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_peer(n(8), Duration::from_secs(2 * 60))
    .reservation_rate_per_ip(n(32), Duration::from_secs(60))
    // A circuit request takes a token even when it is then refused (the peer it asks for has no
    // reservation yet), and a private node asks for one per relay address (TCP and QUIC) of every peer
    // it dials. 16 with one back a minute (before the NAT lab) left a restarted node without circuits
    // for minutes; 32 with one back every 5 s still stops a peer opening circuits in a loop.
    .circuit_src_per_peer(n(32), Duration::from_secs(5))
    .circuit_src_per_ip(n(64), Duration::from_secs(2))
}

/// Peer-score parameters apart from the topic's. IP colocation is not penalised: relayed peers share
/// their relay's IP, and several spaces behind one NAT are normal.
pub fn score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        // Good behaviour can offset one stray rejected message, not a stream of them.
        topic_score_cap: 20.0,
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    }
}

pub fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: SCORE_GOSSIP_THRESHOLD,
        publish_threshold: SCORE_PUBLISH_THRESHOLD,
        graylist_threshold: SCORE_GRAYLIST_THRESHOLD,
        // Peer exchange is not used; positive scores stay small.
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 3.0,
    }
}

/// Scoring on the alliance topic. Traffic is sparse (a few edits and seat updates an hour), so peers are
/// not penalised for delivering few messages; they earn a little for time in the mesh and first
/// deliveries, and lose much for every message the node rejects (forgiven over a few minutes: the
/// counter decays by 1% a second).
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.99,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: SCORE_INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: 0.99,
        ..Default::default()
    }
}

/// Turns on scoring for the alliance topic (the swarm is built before the topic is known).
pub fn score_topic(
    gossip: &mut gossipsub::Behaviour,
    topic: &gossipsub::IdentTopic,
) -> anyhow::Result<()> {
    gossip
        .set_topic_params(topic.clone(), topic_score_params())
        .map_err(|e| anyhow::anyhow!("cannot score the alliance topic: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use libp2p::request_response::Codec;
    use libp2p::swarm::SwarmEvent;

    /// The protocol name carries the sync message version, so peers of another version never connect.
    #[test]
    fn the_protocol_name_is_the_sync_version() {
        assert_eq!(
            SYNC_PROTOCOL,
            format!("/deskmesh/sync/{}", deskmesh_sync::VERSION)
        );
    }

    #[test]
    fn score_parameters_are_valid() {
        score_params().validate().expect("peer score params");
        score_thresholds().validate().expect("thresholds");
        topic_score_params().validate().expect("topic params");
        // One rejected message costs more than good behaviour can earn; three graylist the peer.
        let cap = score_params().topic_score_cap;
        assert!(SCORE_INVALID_MESSAGE_WEIGHT + cap <= 0.0);
        assert!(SCORE_INVALID_MESSAGE_WEIGHT * 9.0 + cap < SCORE_GRAYLIST_THRESHOLD);
    }

    /// Two real swarms on loopback: a peer whose gossip is rejected falls below the gossip threshold after
    /// one message and below the graylist threshold after three.
    #[tokio::test]
    async fn a_peer_sending_rejected_gossip_is_graylisted() {
        let topic = gossipsub::IdentTopic::new("deskmesh/v1/test");
        let mut a = build_swarm(&mut [1u8; 32], false, "test".into(), false).expect("swarm a");
        let mut b = build_swarm(&mut [2u8; 32], false, "test".into(), false).expect("swarm b");
        for s in [&mut a, &mut b] {
            s.behaviour_mut()
                .gossip
                .subscribe(&topic)
                .expect("subscribe");
            score_topic(&mut s.behaviour_mut().gossip, &topic).expect("score the topic");
        }
        let a_id = *a.local_peer_id();
        b.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"))
            .expect("listen");
        let run = async {
            let mut scores = Vec::new();
            loop {
                tokio::select! {
                    ev = a.select_next_some() => {
                        if let SwarmEvent::Behaviour(BehaviourEvent::Gossip(
                            gossipsub::Event::Subscribed { .. },
                        )) = ev
                        {
                            for i in 0..4u8 {
                                a.behaviour_mut()
                                    .gossip
                                    .publish(topic.clone(), vec![0xff, i])
                                    .expect("publish");
                            }
                        }
                    }
                    ev = b.select_next_some() => match ev {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            a.dial(address).expect("dial");
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                            propagation_source,
                            message_id,
                            ..
                        })) => {
                            b.behaviour_mut().gossip.report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                gossipsub::MessageAcceptance::Reject,
                            );
                            scores.push(b.behaviour().gossip.peer_score(&a_id).expect("scoring on"));
                            if scores.len() == 3 {
                                return scores;
                            }
                        }
                        _ => {}
                    },
                }
            }
        };
        let scores = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("three gossip messages arrive in time");
        assert!(
            scores[0] < SCORE_GOSSIP_THRESHOLD && scores[0] > SCORE_GRAYLIST_THRESHOLD,
            "one rejected message: {scores:?}"
        );
        assert!(
            scores[2] < SCORE_GRAYLIST_THRESHOLD,
            "three rejected messages: {scores:?}"
        );
    }

    #[tokio::test]
    async fn requests_round_trip_through_the_cbor_codec_as_byte_strings() {
        // Incompressible bytes, so the packed batch is about as long as the item.
        let mut x = 0x1234_5678_u32;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let item = WireItem {
            kind: ItemKind::ListingChange,
            bytes: noise,
        };
        let req = Request::Items(pack(std::slice::from_ref(&item)).expect("pack"));
        let mut codec = request_response::cbor::codec::Codec::<Request, Reply>::default();
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let mut buf = futures::io::Cursor::new(Vec::new());
        codec
            .write_request(&protocol, &mut buf, req)
            .await
            .expect("write");
        let bytes = buf.into_inner();
        // A byte string costs one byte per byte; an array of integers would cost two for values over 23.
        assert!(bytes.len() < 1100, "{} bytes on the wire", bytes.len());
        let mut read = futures::io::Cursor::new(bytes);
        match codec
            .read_request(&protocol, &mut read)
            .await
            .expect("read")
        {
            Request::Items(packed) => assert_eq!(unpack(&packed).expect("unpack"), vec![item]),
            other => panic!("unexpected request {other:?}"),
        }
    }

    #[test]
    fn repetitive_batches_shrink_and_bombs_are_refused_before_they_expand() {
        let items: Vec<WireItem> = (0..100u8)
            .map(|n| WireItem {
                kind: ItemKind::ListingChange,
                bytes: format!("{{\"name\": \"Space {n}\", \"city\": \"Lisbon\"}}").into_bytes(),
            })
            .collect();
        let packed = pack(&items).expect("pack");
        let raw = postcard::to_stdvec(&items).expect("encode").len();
        assert!(packed.len() * 3 < raw, "{} packed of {raw}", packed.len());
        assert_eq!(unpack(&packed).expect("unpack"), items);
        // 64 MiB of zeros packs into a few kilobytes; unpacking stops at the bound.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 * 1024 * 1024], 3).expect("compress");
        assert!(bomb.len() < 64 * 1024);
        assert!(unpack(&bomb).is_err());
        assert!(unpack(b"garbage").is_err());
    }
}
