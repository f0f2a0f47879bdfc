//! The libp2p side of the mesh: the composed [`Behaviour`] (identify, ping, mDNS, Kademlia, gossipsub,
//! request-response for sync, connection limits), the wire types carried by request-response, and
//! [`build_swarm`], which derives the transport identity from the device key so a node's `PeerId` is its
//! device key.

use std::time::Duration;

use anyhow::Context;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, gossipsub, identify, identity, kad, mdns, noise, ping, tcp, yamux,
    StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};

use crate::sync::ItemKind;

/// Largest gossip message: announcements are single signed items, which are small.
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// Largest request a peer may send us (a batch of items or one sync message).
pub const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;
/// Items are batched into requests of about this many bytes.
pub const ITEM_BATCH_BYTES: usize = 512 * 1024;
/// Requests one peer may have in flight with us at once, each way.
pub const MAX_STREAMS_PER_PEER: usize = 32;
/// Connections in total and per peer.
pub const MAX_CONNECTIONS: u32 = 256;
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;

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
    /// Signed items the receiver lacks or asked for, roster operations first.
    Items(Vec<WireItem>),
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
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossip: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<Request, Reply>,
}

/// Builds the swarm with the device key's seed as the transport identity.
pub fn build_swarm(seed: &mut [u8; 32], mdns_on: bool) -> anyhow::Result<Swarm<Behaviour>> {
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
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
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
                let gossip = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossip_config,
                )?;
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
                    [(
                        StreamProtocol::new("/deskmesh/sync/1"),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(MAX_STREAMS_PER_PEER),
                );
                let limits = connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                        .with_max_pending_incoming(Some(64)),
                );
                Ok(Behaviour {
                    limits,
                    identify: identify::Behaviour::new(identify::Config::new(
                        "/deskmesh/1".into(),
                        key.public(),
                    )),
                    ping: ping::Behaviour::default(),
                    mdns: mdns.into(),
                    kad,
                    gossip,
                    sync,
                })
            },
        )?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    #[tokio::test]
    async fn requests_round_trip_through_the_cbor_codec_as_byte_strings() {
        let item = WireItem {
            kind: ItemKind::ListingChange,
            bytes: vec![200u8; 1000],
        };
        let req = Request::Items(vec![item.clone()]);
        let mut codec = request_response::cbor::codec::Codec::<Request, Reply>::default();
        let protocol = StreamProtocol::new("/deskmesh/sync/1");
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
            Request::Items(items) => assert_eq!(items, vec![item]),
            other => panic!("unexpected request {other:?}"),
        }
    }
}
