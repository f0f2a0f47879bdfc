//! Public keys, signatures and device secrets, with one text form each.
//!
//! A [`PublicKey`] is written everywhere (CLI, JSON, audit, invite tokens) in the `did:key` multibase form:
//! `z` followed by base58btc of the multicodec prefix `0xed 0x01` and the 32 key bytes, so it always starts
//! with `z6Mk`. A [`DeviceKey`] holds an ed25519 secret: it zeroizes on drop, its `Debug` prints only the
//! public half, and nothing in this crate ever formats the secret bytes.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Domain;

/// Multicodec prefix of an ed25519 public key (varint 0xed).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// Why a key, signature or id could not be read from text or bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("a public key starts with 'z6Mk' (multibase base58btc), got {0:?}")]
    NotMultibase(String),
    #[error("the public key is not valid base58: {0}")]
    Base58(String),
    #[error("the public key is not an ed25519 key (wrong multicodec prefix or length)")]
    WrongCodec,
    #[error("the bytes are not a valid ed25519 point")]
    InvalidPoint,
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("{what} is not valid: {why}")]
    Invalid { what: &'static str, why: String },
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("signature does not verify for key {key} under domain {domain}")]
pub struct BadSignature {
    pub key: PublicKey,
    pub domain: &'static str,
}

/// An ed25519 public key: a device of a space, a coordinator, or a member laptop.
///
/// A key parsed from text ([`FromStr`], what people type) or built with [`PublicKey::from_bytes`] is
/// checked to be a curve point. A key read back with serde (stored items, the wire, JSON answers) is
/// checked for its length and text form only: decompressing the point costs as much as a third of a
/// signature check, and a node reads tens of thousands of keys to open a large directory. Nothing is
/// lost by it: a key that is not a curve point verifies no signature ([`PublicKey::verify`] fails), so
/// everything it claims to have signed is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Reads a key from its 32 raw bytes, refusing bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ParseError::Length {
            expected: 32,
            got: bytes.len(),
        })?;
        VerifyingKey::from_bytes(&arr).map_err(|_| ParseError::InvalidPoint)?;
        Ok(Self(arr))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks `signature` over `message` made for `domain`, by the rule of [`crate::batch`] (ZIP-215,
    /// and no key of small order).
    ///
    /// Inside [`crate::batch::check_together`] on this thread, the check joins its batch and answers
    /// `Ok` for now; the verdict comes when the batch is checked, and an item with a bad signature is run
    /// again. So code that may run there must not act on an `Ok` beyond its own return value (store,
    /// send, count): whatever it did for a forged item before the re-run would stay done.
    pub fn verify(
        &self,
        domain: Domain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        let bad = || BadSignature {
            key: *self,
            domain: domain.tag(),
        };
        if crate::batch::verify(&self.0, &domain.framed(message), &signature.0) {
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// A short form for tables: the last 8 characters of the text form.
    pub fn short(&self) -> String {
        let s = self.to_string();
        s[s.len().saturating_sub(8)..].to_string()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(34);
        buf.extend_from_slice(&ED25519_MULTICODEC);
        buf.extend_from_slice(&self.0);
        write!(f, "z{}", crate::b58::encode(&buf))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl PublicKey {
    /// The 32 bytes of a key's text form, not checked to be a curve point.
    fn text_bytes(s: &str) -> Result<[u8; 32], ParseError> {
        let s = s.trim();
        let body = s
            .strip_prefix("did:key:")
            .unwrap_or(s)
            .strip_prefix('z')
            .ok_or_else(|| ParseError::NotMultibase(s.chars().take(12).collect()))?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|e| ParseError::Base58(e.to_string()))?;
        if bytes.len() != 34 || bytes[..2] != ED25519_MULTICODEC {
            return Err(ParseError::WrongCodec);
        }
        bytes[2..].try_into().map_err(|_| ParseError::WrongCodec)
    }
}

impl FromStr for PublicKey {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(&Self::text_bytes(s)?)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    /// Length and text form only; see [`PublicKey`] for why the curve point is not checked here.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Self::text_bytes(&s)
                .map(Self)
                .map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// An ed25519 signature (64 bytes). Text form: base58btc.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let arr: [u8; 64] = bytes.try_into().map_err(|_| ParseError::Length {
            expected: 64,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::b58::encode(&self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "Signature({}..)", &s[..s.len().min(12)])
    }
}

impl FromStr for Signature {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = bs58::decode(s.trim())
            .into_vec()
            .map_err(|e| ParseError::Base58(e.to_string()))?;
        Self::from_bytes(&bytes)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&self.0[..], s)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = <Vec<u8>>::deserialize(d)?;
            Self::from_bytes(&b).map_err(serde::de::Error::custom)
        }
    }
}

/// Anything that can sign for one public key. Tests use [`DeviceKey::from_seed`] for determinism.
pub trait Signer {
    /// The key that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;
    /// Signs `message` for `domain`; the domain tag is framed into the signed bytes.
    fn sign(&self, domain: Domain, message: &[u8]) -> Signature;
}

/// A device's ed25519 secret. Zeroized on drop (ed25519-dalek's `zeroize` feature); never printed.
pub struct DeviceKey {
    inner: SigningKey,
}

impl DeviceKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        Self {
            inner: SigningKey::generate(&mut rng),
        }
    }

    /// A key from a 32-byte seed: deterministic, for tests and for loading a key file.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            inner: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for writing the key file and deriving the transport identity.
    /// Callers must not log or print it; the returned buffer zeroizes on drop.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.inner.to_bytes())
    }
}

impl Signer for DeviceKey {
    fn public_key(&self) -> PublicKey {
        PublicKey(self.inner.verifying_key().to_bytes())
    }

    fn sign(&self, domain: Domain, message: &[u8]) -> Signature {
        Signature(self.inner.sign(&domain.framed(message)).to_bytes())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceKey(public: {}, secret: <redacted>)",
            self.public_key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_starts_with_z6mk() {
        let k = DeviceKey::from_seed(&[7; 32]).public_key();
        let s = k.to_string();
        assert!(s.starts_with("z6Mk"), "{s}");
        assert_eq!(s.parse::<PublicKey>(), Ok(k));
        assert_eq!(format!("did:key:{s}").parse::<PublicKey>(), Ok(k));
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        assert!(matches!(
            "abc".parse::<PublicKey>(),
            Err(ParseError::NotMultibase(_))
        ));
        assert!(matches!(
            "z0OIl".parse::<PublicKey>(),
            Err(ParseError::Base58(_))
        ));
        let k = DeviceKey::from_seed(&[7; 32]).public_key().to_string();
        assert!(k[..k.len() - 3].parse::<PublicKey>().is_err());
    }

    #[test]
    fn a_key_read_back_is_not_decompressed_but_verifies_nothing_unless_it_is_a_point() {
        // Some 32-byte strings are not curve points; find one deterministically.
        let bad = (0u8..=255)
            .map(|b| [b; 32])
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .unwrap();
        assert_eq!(PublicKey::from_bytes(&bad), Err(ParseError::InvalidPoint));
        let mut text = ED25519_MULTICODEC.to_vec();
        text.extend_from_slice(&bad);
        let text = format!("z{}", bs58::encode(text).into_string());
        assert_eq!(text.parse::<PublicKey>(), Err(ParseError::InvalidPoint));
        // Read back from bytes or JSON, it is kept as it is, and then verifies no signature.
        let from_json: PublicKey = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        let from_postcard: PublicKey = postcard::from_bytes(&bad).unwrap();
        assert_eq!(from_json, from_postcard);
        let sig = DeviceKey::from_seed(&[1; 32]).sign(Domain::ListingChange, b"hello");
        assert!(from_json
            .verify(Domain::ListingChange, b"hello", &sig)
            .is_err());
        // A real key survives both round trips.
        let k = DeviceKey::from_seed(&[7; 32]).public_key();
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), k);
        let raw = postcard::to_allocvec(&k).unwrap();
        assert_eq!(postcard::from_bytes::<PublicKey>(&raw).unwrap(), k);
        assert!(serde_json::from_str::<PublicKey>("\"z6Mkshort\"").is_err());
    }

    #[test]
    fn signature_is_bound_to_its_domain() {
        let key = DeviceKey::from_seed(&[1; 32]);
        let sig = key.sign(Domain::ListingChange, b"hello");
        let pk = key.public_key();
        assert!(pk.verify(Domain::ListingChange, b"hello", &sig).is_ok());
        assert!(pk.verify(Domain::SeatBeacon, b"hello", &sig).is_err());
        assert!(pk.verify(Domain::ListingChange, b"hellO", &sig).is_err());
        let other = DeviceKey::from_seed(&[2; 32]).public_key();
        assert!(other.verify(Domain::ListingChange, b"hello", &sig).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = DeviceKey::from_seed(&[9; 32]);
        let dbg = format!("{key:?}");
        assert!(dbg.contains("redacted"));
        let seed_b58 = bs58::encode([9u8; 32]).into_string();
        assert!(!dbg.contains(&seed_b58));
    }
}
