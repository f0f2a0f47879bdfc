//! The libp2p peer id of a device key, in its text form (`12D3KooW…`), computed without libp2p so a
//! stopped node can show the id its peers will see. The mesh derives its identity from the same key, and a
//! test in the node crate checks the two agree.
//!
//! A libp2p ed25519 peer id is the identity multihash (code 0x00, length 36) of the protobuf-encoded public
//! key (`08 01` = key type Ed25519, `12 20` = 32 bytes of key data), written in base58btc.

use deskmesh_keys::PublicKey;

/// The peer id of `key` as libp2p prints it.
pub fn peer_id(key: &PublicKey) -> String {
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    bytes.extend_from_slice(key.as_bytes());
    deskmesh_keys::b58::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use deskmesh_keys::{DeviceKey, Signer};

    #[test]
    fn ed25519_peer_ids_have_the_libp2p_prefix() {
        let key = DeviceKey::from_seed(&[7; 32]).public_key();
        let id = super::peer_id(&key);
        assert!(id.starts_with("12D3KooW"), "{id}");
        assert_eq!(id.len(), 52);
    }
}
