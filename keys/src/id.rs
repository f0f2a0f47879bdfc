//! Content hashes and the ids derived from them: [`Hash`], [`SpaceId`] and [`AllianceId`].
//!
//! Text forms are lowercase base32 without padding (RFC 4648), which survives copy-paste, URLs, file names
//! and case-insensitive systems. A [`SpaceId`] is derived from the space's founding device key, so it is
//! stable for the life of the space and unique without any registry (GBFS id rules); an [`AllianceId`] is
//! the hash of the roster operation that created the alliance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::key::{ParseError, PublicKey};

fn b32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

fn unb32(what: &'static str, s: &str) -> Result<Vec<u8>, ParseError> {
    data_encoding::BASE32_NOPAD
        .decode(s.trim().to_ascii_uppercase().as_bytes())
        .map_err(|e| ParseError::Invalid {
            what,
            why: e.to_string(),
        })
}

/// A SHA-256 digest of exact bytes (a roster operation, an encoded envelope).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Digest of `bytes`, prefixed with a purpose label so hashes of different kinds never collide.
    pub fn of(label: &str, bytes: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"deskmesh/v1/");
        h.update(label.as_bytes());
        h.update([0]);
        h.update(bytes);
        Self(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// First 10 characters of the text form, for tables and logs.
    pub fn short(&self) -> String {
        self.to_string()[..10].to_string()
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b32(&self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl FromStr for Hash {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = unb32("hash", s)?;
        let arr: [u8; 32] = v.as_slice().try_into().map_err(|_| ParseError::Length {
            expected: 32,
            got: v.len(),
        })?;
        Ok(Self(arr))
    }
}

macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// A space's stable id: `sp-` and 16 base32 characters derived from its founding device key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceId(String);

impl SpaceId {
    /// The id of a space founded by `key` (its first device key).
    pub fn derive(key: &PublicKey) -> Self {
        let h = Hash::of("space-id", key.as_bytes());
        Self(format!("sp-{}", b32(&h.0[..10])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpaceId({})", self.0)
    }
}

impl FromStr for SpaceId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let body = s.strip_prefix("sp-").ok_or_else(|| ParseError::Invalid {
            what: "space id",
            why: format!("{s:?} does not start with 'sp-'"),
        })?;
        let bytes = unb32("space id", body)?;
        if bytes.len() != 10 {
            return Err(ParseError::Invalid {
                what: "space id",
                why: "expected 16 base32 characters after 'sp-'".into(),
            });
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}
text_serde!(SpaceId);

/// An alliance's id: the hash of its create operation, written `al-<base32>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllianceId(pub Hash);

impl fmt::Display for AllianceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "al-{}", self.0)
    }
}

impl fmt::Debug for AllianceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllianceId({})", self.0.short())
    }
}

impl FromStr for AllianceId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let body = s.strip_prefix("al-").ok_or_else(|| ParseError::Invalid {
            what: "alliance id",
            why: format!("{s:?} does not start with 'al-'"),
        })?;
        Ok(Self(body.parse()?))
    }
}
impl Serialize for AllianceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for AllianceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Self(Hash::deserialize(d)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{DeviceKey, Signer};

    #[test]
    fn ids_round_trip_through_text() {
        let k = DeviceKey::from_seed(&[3; 32]).public_key();
        let id = SpaceId::derive(&k);
        assert_eq!(id.as_str().len(), 19);
        assert_eq!(id.to_string().parse::<SpaceId>(), Ok(id.clone()));
        assert_eq!(SpaceId::derive(&k), id, "derivation is stable");
        let h = Hash::of("test", b"x");
        let a = AllianceId(h);
        assert_eq!(a.to_string().parse::<AllianceId>(), Ok(a));
        assert!("sp-zz".parse::<SpaceId>().is_err());
        assert!("al-".parse::<AllianceId>().is_err());
    }
}
