//! Who a peer is to this node: a device the roster names, a member that proved it holds a member token,
//! or a stranger.
//!
//! A `PeerId` *is* a device key, so roster devices (and coordinators) are recognised by their id alone. A
//! member's laptop has a key of its own that no roster names; what it holds is a member token, which
//! carries the alliance's signed create operation, bytes that only the alliance's nodes and token holders
//! have (they are never gossiped: a daemon only runs once its roster exists, and strangers are not served
//! items). Every node announces in its identify agent version a *member proof*: the hash of the create
//! operation's bytes and its own peer id. A node that holds the same bytes checks it in a hash; it proves
//! nothing about anyone else's id (noise authenticates the id), so it cannot be replayed by the peers that
//! see it.

use deskmesh_keys::{Hash, PublicKey};
use libp2p::PeerId;

/// Hash label of member proofs.
const PROOF_LABEL: &str = "member-proof";
/// Marks the proof in the agent version: `deskmesh/<version> member/<hex>`.
const PROOF_TAG: &str = " member/";

/// What a peer is to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The roster names its key (a space's device or a coordinator).
    Device,
    /// It proved it holds the alliance's member token.
    Member,
    /// Neither (yet).
    Stranger,
}

impl Trust {
    pub fn is_known(self) -> bool {
        self != Trust::Stranger
    }
}

/// The member proof `peer` gives for the alliance whose create operation is `create` (its exact bytes).
pub fn member_proof(create: &[u8], peer: &PeerId) -> String {
    let mut bytes = create.to_vec();
    bytes.extend_from_slice(&peer.to_bytes());
    Hash::of(PROOF_LABEL, &bytes).to_string()
}

/// The identify agent version carrying this node's proof.
pub fn agent_version(proof: &str) -> String {
    format!("deskmesh/{}{PROOF_TAG}{proof}", env!("CARGO_PKG_VERSION"))
}

/// Whether the agent version a peer announced carries a valid proof for `peer`.
pub fn proves_membership(agent_version: &str, create: &[u8], peer: &PeerId) -> bool {
    agent_version
        .split_once(PROOF_TAG)
        .is_some_and(|(_, proof)| proof.trim() == member_proof(create, peer))
}

/// The device key a peer id stands for (every deskmesh peer id is an ed25519 key).
pub fn device_key(peer: &PeerId) -> Option<PublicKey> {
    let bytes = peer.to_bytes();
    // Identity multihash (0x00, length 36) of the protobuf key: type Ed25519 (08 01), 32 bytes (12 20).
    let key = bytes.strip_prefix(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20][..])?;
    PublicKey::from_bytes(key).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use deskmesh_keys::{DeviceKey, Signer};

    fn peer_of(seed: u8) -> (PublicKey, PeerId) {
        let key = DeviceKey::from_seed(&[seed; 32]);
        let mut bytes = *key.seed();
        let kp = libp2p::identity::Keypair::ed25519_from_bytes(&mut bytes).unwrap();
        (key.public_key(), kp.public().to_peer_id())
    }

    #[test]
    fn a_peer_id_gives_back_its_device_key() {
        let (key, peer) = peer_of(3);
        assert_eq!(device_key(&peer), Some(key));
        assert_eq!(
            device_key(&PeerId::random()),
            None,
            "random ids are not ed25519 keys"
        );
    }

    #[test]
    fn a_proof_holds_for_its_own_peer_and_create_operation_only() {
        let create = b"signed create operation".to_vec();
        let (_, me) = peer_of(1);
        let (_, other) = peer_of(2);
        let agent = agent_version(&member_proof(&create, &me));
        assert!(proves_membership(&agent, &create, &me));
        assert!(
            !proves_membership(&agent, &create, &other),
            "replayed by another peer"
        );
        assert!(!proves_membership(&agent, b"another alliance", &me));
        assert!(!proves_membership("rust-libp2p/0.56", &create, &me));
    }
}
