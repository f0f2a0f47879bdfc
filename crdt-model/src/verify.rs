//! Verified claims: a coordinator countersigns chosen facts of a listing as checked on a date.
//!
//! Everything in a listing is *claimed* by the space that signs it. A coordinator who checked some of
//! it (visited, tested the wifi, looked at the entrance) signs a [`Verification`]: the space, the facts
//! by name (`accessibility`, `internet.down_mbps`, `opening_hours`, …) each with its value as checked,
//! and the day. A fact is *verified* while the listing still says exactly what was checked; a later
//! change to it drops it back to *claimed* ("changed since it was verified"), without anyone having to
//! withdraw anything. Values are compared as JSON values (numbers by value), so a verifier in another
//! language needs no canonical serialisation.
//!
//! Whether the author is a coordinator is decided by the roster, not here ([`Verification::author`] and
//! [`Verification::roster_heads`] are what it needs). Like every signed item, a verification is signed as
//! its exact postcard bytes under the `verification` domain.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use deskmesh_keys::{Domain, Hash, PublicKey, Signature, Signer, SpaceId};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::listing::Listing;

/// The largest signed verification accepted (the accessibility block in full fits many times over).
pub const MAX_VERIFICATION_BYTES: usize = 16 * 1024;
/// Most facts one verification may cover.
pub const MAX_FACTS: usize = 16;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 200;
/// Roster heads a verification may name.
const MAX_ROSTER_HEADS: usize = 8;
/// Hash label of a verification's item id.
pub const ITEM_LABEL: &str = "verification-item";

/// The listing fields a coordinator may verify. A fact is one of these, or one of them and a key inside
/// it (`accessibility.entrance`, `internet.down_mbps`, `location.address`).
pub const FACTS: &[&str] = &[
    "location",
    "contact",
    "opening_hours",
    "member_access_hours",
    "offers",
    "reciprocity",
    "internet",
    "power",
    "noise",
    "amenities",
    "accessibility",
    "policies",
    "seat_pools",
];

/// One fact and its value as the coordinator checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedFact {
    /// `field` or `field.key`, see [`FACTS`].
    pub fact: String,
    /// The fact's value in the listing's JSON form, as JSON text.
    pub value: String,
}

/// What a coordinator signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub space: SpaceId,
    pub facts: Vec<VerifiedFact>,
    /// The day the facts were checked, `YYYY-MM-DD`.
    pub checked_on: String,
    /// Optional words for members ("visited", "measured at a desk by the window").
    pub note: String,
    pub author: PublicKey,
    /// The roster heads the coordinator acted under.
    pub roster_heads: Vec<Hash>,
    pub created_at_ms: i64,
}

/// A verification as it travels and is stored: its exact bytes and the author's signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVerification {
    pub bytes: Vec<u8>,
    pub signature: Signature,
}

/// Why a verification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationError {
    #[error("the verification is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the verification is not readable: {0}")]
    Malformed(String),
    #[error("the verification's signature does not verify for its author {author}")]
    BadSignature { author: PublicKey },
    #[error("a verification must name at least one fact")]
    NoFacts,
    #[error("a verification may name at most {MAX_FACTS} facts, not {0}")]
    TooManyFacts(usize),
    #[error("{0:?} is not a fact that can be verified; facts are {list} or one key inside them (such as accessibility.entrance)", list = FACTS.join(", "))]
    UnknownFact(String),
    #[error("the fact {0} is named twice")]
    DuplicateFact(String),
    #[error("the listing has no {0} to verify")]
    FactMissing(String),
    #[error("the value of {fact} is not JSON: {why}")]
    BadValue { fact: String, why: String },
    #[error("{0:?} is not a date; use YYYY-MM-DD")]
    BadDate(String),
    #[error("the note is {0} characters, more than the limit of {MAX_NOTE_CHARS}")]
    NoteTooLong(usize),
    #[error("the verification names {0} roster heads, over the limit of {MAX_ROSTER_HEADS}")]
    RosterHeads(usize),
    #[error("signer key {signer} is not the verification's author {author}")]
    SignerMismatch {
        signer: PublicKey,
        author: PublicKey,
    },
}

/// Checks a fact name against [`FACTS`].
pub fn check_fact(fact: &str) -> Result<(), VerificationError> {
    let unknown = || VerificationError::UnknownFact(fact.to_string());
    let (field, key) = match fact.split_once('.') {
        Some((f, k)) => (f, Some(k)),
        None => (fact, None),
    };
    if !FACTS.contains(&field) {
        return Err(unknown());
    }
    if let Some(k) = key {
        let ok =
            (1..=40).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ok {
            return Err(unknown());
        }
    }
    Ok(())
}

/// The value of `fact` in a listing's JSON form, if the listing states it.
pub fn fact_value(listing: &Json, fact: &str) -> Option<Json> {
    let mut v = listing;
    for part in fact.split('.') {
        v = v.get(part)?;
    }
    (!v.is_null()).then(|| v.clone())
}

impl Verification {
    /// A verification of `facts` of `listing` as it stands, checked on `checked_on`.
    pub fn of(
        listing: &Listing,
        facts: &[String],
        checked_on: NaiveDate,
        note: &str,
        author: PublicKey,
        roster_heads: Vec<Hash>,
        created_at_ms: i64,
    ) -> Result<Verification, VerificationError> {
        let value = listing.to_value();
        let mut out = Vec::with_capacity(facts.len());
        for fact in facts {
            check_fact(fact)?;
            let v = fact_value(&value, fact)
                .ok_or_else(|| VerificationError::FactMissing(fact.clone()))?;
            out.push(VerifiedFact {
                fact: fact.clone(),
                value: v.to_string(),
            });
        }
        let v = Verification {
            space: listing.id.clone(),
            facts: out,
            checked_on: checked_on.format("%Y-%m-%d").to_string(),
            note: note.to_string(),
            author,
            roster_heads,
            created_at_ms,
        };
        v.check()?;
        Ok(v)
    }

    /// The rules that need nothing but the verification itself.
    pub fn check(&self) -> Result<(), VerificationError> {
        if self.facts.is_empty() {
            return Err(VerificationError::NoFacts);
        }
        if self.facts.len() > MAX_FACTS {
            return Err(VerificationError::TooManyFacts(self.facts.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.facts {
            check_fact(&f.fact)?;
            if !seen.insert(f.fact.as_str()) {
                return Err(VerificationError::DuplicateFact(f.fact.clone()));
            }
            serde_json::from_str::<Json>(&f.value).map_err(|e| VerificationError::BadValue {
                fact: f.fact.clone(),
                why: e.to_string(),
            })?;
        }
        self.checked_date()?;
        let note = self.note.chars().count();
        if note > MAX_NOTE_CHARS {
            return Err(VerificationError::NoteTooLong(note));
        }
        if self.roster_heads.len() > MAX_ROSTER_HEADS {
            return Err(VerificationError::RosterHeads(self.roster_heads.len()));
        }
        Ok(())
    }

    /// The day the facts were checked.
    pub fn checked_date(&self) -> Result<NaiveDate, VerificationError> {
        NaiveDate::parse_from_str(&self.checked_on, "%Y-%m-%d")
            .ok()
            .filter(|_| self.checked_on.len() == 10)
            .ok_or_else(|| VerificationError::BadDate(self.checked_on.clone()))
    }

    /// Signs this verification; `signer` must be its author.
    pub fn sign(&self, signer: &impl Signer) -> Result<SignedVerification, VerificationError> {
        let key = signer.public_key();
        if key != self.author {
            return Err(VerificationError::SignerMismatch {
                signer: key,
                author: self.author,
            });
        }
        self.check()?;
        let bytes =
            postcard::to_stdvec(self).map_err(|e| VerificationError::Malformed(e.to_string()))?;
        check_size(bytes.len())?;
        let signature = signer.sign(Domain::Verification, &bytes);
        Ok(SignedVerification { bytes, signature })
    }
}

fn check_size(size: usize) -> Result<(), VerificationError> {
    if size > MAX_VERIFICATION_BYTES {
        return Err(VerificationError::TooLarge {
            size,
            limit: MAX_VERIFICATION_BYTES,
        });
    }
    Ok(())
}

impl SignedVerification {
    /// The wire and store form (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A byte vector and a fixed-size signature always serialise into a growable buffer.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Reads the wire form; garbage gives an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerificationError> {
        check_size(bytes.len())?;
        let (v, rest) = postcard::take_from_bytes::<SignedVerification>(bytes)
            .map_err(|e| VerificationError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(VerificationError::Malformed(format!(
                "{} trailing bytes after the verification",
                rest.len()
            )));
        }
        Ok(v)
    }

    /// The item id the store and the mesh name it by.
    pub fn id(&self) -> Hash {
        Hash::of(ITEM_LABEL, &self.to_bytes())
    }

    /// The verification as claimed, not verified.
    pub fn decode(&self) -> Result<Verification, VerificationError> {
        check_size(self.bytes.len())?;
        let (v, rest) = postcard::take_from_bytes::<Verification>(&self.bytes)
            .map_err(|e| VerificationError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(VerificationError::Malformed(format!(
                "{} trailing bytes after the verification's fields",
                rest.len()
            )));
        }
        Ok(v)
    }

    /// Checks the signature and the rules; whether the author is a coordinator is the roster's business.
    pub fn verify(&self) -> Result<Verification, VerificationError> {
        let v = self.decode()?;
        v.author
            .verify(Domain::Verification, &self.bytes, &self.signature)
            .map_err(|_| VerificationError::BadSignature { author: v.author })?;
        v.check()?;
        Ok(v)
    }
}

/// Who verified a fact and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub by: PublicKey,
    /// `YYYY-MM-DD`.
    pub checked_on: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The verification's item id.
    pub verification: Hash,
}

/// The state of one fact that some verification covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactState {
    pub fact: String,
    /// Set while the listing says what was checked: the newest such verification.
    pub verified: Option<Attestation>,
    /// Set when the fact was verified once but has changed since: the newest verification of it.
    pub changed_since: Option<Attestation>,
}

impl FactState {
    pub fn is_verified(&self) -> bool {
        self.verified.is_some()
    }
}

/// The state of every fact that one of `verifications` (valid, already authorised) covers, by fact.
/// Facts no verification covers are claimed and not listed.
pub fn fact_states(listing: &Listing, verifications: &[(Hash, Verification)]) -> Vec<FactState> {
    let value = listing.to_value();
    let mut by_fact: BTreeMap<&str, Vec<(&Hash, &Verification, &VerifiedFact)>> = BTreeMap::new();
    for (id, v) in verifications.iter().filter(|(_, v)| v.space == listing.id) {
        for f in &v.facts {
            by_fact.entry(f.fact.as_str()).or_default().push((id, v, f));
        }
    }
    let mut out = Vec::with_capacity(by_fact.len());
    for (fact, mut all) in by_fact {
        // Newest first: by the day checked, then when signed, then by id for a total order.
        all.sort_by(|a, b| {
            (&b.1.checked_on, b.1.created_at_ms, b.0).cmp(&(
                &a.1.checked_on,
                a.1.created_at_ms,
                a.0,
            ))
        });
        let current = fact_value(&value, fact);
        let attest = |(id, v, _): &(&Hash, &Verification, &VerifiedFact)| Attestation {
            by: v.author,
            checked_on: v.checked_on.clone(),
            note: v.note.clone(),
            verification: **id,
        };
        let matching = all.iter().find(|(_, _, f)| {
            let checked: Option<Json> = serde_json::from_str(&f.value).ok();
            matches!((&current, &checked), (Some(c), Some(k)) if json_eq(c, k))
        });
        out.push(FactState {
            fact: fact.to_string(),
            verified: matching.map(attest),
            changed_since: match matching {
                Some(_) => None,
                None => all.first().map(attest),
            },
        });
    }
    out
}

/// JSON equality with numbers compared by value (`100` equals `100.0`).
pub fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The listing as a member asking for verified facts only sees it: every field a directory filter reads
/// (accessibility, internet, opening hours, amenities, offers, reciprocity, power, noise, policies) is
/// kept only as far as it is verified, and unknown otherwise; identity and location stay.
pub fn verified_only(listing: &Listing, verified: &[&str]) -> Listing {
    const MASKED: &[&str] = &[
        "opening_hours",
        "member_access_hours",
        "offers",
        "reciprocity",
        "internet",
        "power",
        "noise",
        "amenities",
        "accessibility",
        "policies",
    ];
    let Json::Object(mut map) = listing.to_value() else {
        return listing.clone();
    };
    for field in MASKED {
        if verified.contains(field) {
            continue;
        }
        let prefix = format!("{field}.");
        let keys: Vec<&str> = verified
            .iter()
            .filter_map(|f| f.strip_prefix(prefix.as_str()))
            .collect();
        match map.get_mut(*field) {
            Some(Json::Object(inner)) if !keys.is_empty() => {
                inner.retain(|k, _| keys.contains(&k.as_str()));
            }
            _ => {
                map.remove(*field);
            }
        }
    }
    // Removing optional fields (or keys of them) always leaves a readable listing; should it not, the
    // member sees nothing verified rather than the claims.
    Listing::deserialize(Json::Object(map)).unwrap_or_else(|_| {
        let mut bare = listing.clone();
        bare.accessibility = Default::default();
        bare.internet = Default::default();
        bare.opening_hours = None;
        bare.member_access_hours = None;
        bare.offers = Vec::new();
        bare.amenities = Default::default();
        bare.reciprocity = Default::default();
        bare
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::query::{AccessNeed, Query};
    use deskmesh_keys::DeviceKey;

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn listing() -> Listing {
        let space = SpaceId::derive(&key(1).public_key());
        Listing::from_value(serde_json::json!({
            "id": space.to_string(),
            "name": "Desk Co",
            "location": {"lon": -9.14, "lat": 38.72, "timezone": "Europe/Lisbon",
                         "address": {"city": "Lisbon", "country": "PT"}},
            "opening_hours": "Mo-Su 00:00-24:00",
            "internet": {"wifi": true, "down_mbps": 200.0},
            "accessibility": {"wheelchair": "yes", "entrance": {"step_free": true}}
        }))
        .unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
    }

    fn verified(l: &Listing, facts: &[&str]) -> SignedVerification {
        let facts: Vec<String> = facts.iter().map(|f| f.to_string()).collect();
        Verification::of(l, &facts, day(), "visited", key(9).public_key(), vec![], 5)
            .unwrap()
            .sign(&key(9))
            .unwrap()
    }

    #[test]
    fn a_verification_round_trips_and_refuses_forgeries_and_bad_facts() {
        let l = listing();
        let s = verified(&l, &["accessibility.entrance", "internet"]);
        let back = SignedVerification::from_bytes(&s.to_bytes()).unwrap();
        let v = back.verify().unwrap();
        assert_eq!(v.facts[0].value, r#"{"step_free":true}"#);
        assert_eq!(v.checked_on, "2026-05-01");
        let mut forged = s.clone();
        forged.bytes[3] ^= 1;
        assert!(forged.verify().is_err());
        for (fact, expect) in [
            ("name", "not a fact"),
            ("accessibility.Entrance", "not a fact"),
            ("contact", "has no contact"),
        ] {
            let err = Verification::of(
                &l,
                &[fact.into()],
                day(),
                "",
                key(9).public_key(),
                vec![],
                0,
            )
            .unwrap_err();
            assert!(err.to_string().contains(expect), "{fact}: {err}");
        }
        let mut bad_date = v.clone();
        bad_date.checked_on = "2026-5-1".into();
        assert!(matches!(
            bad_date.sign(&key(9)),
            Err(VerificationError::BadDate(_))
        ));
        assert!(matches!(
            v.sign(&key(8)),
            Err(VerificationError::SignerMismatch { .. })
        ));
    }

    #[test]
    fn a_changed_fact_drops_back_to_claimed() {
        let mut l = listing();
        let s = verified(&l, &["accessibility", "internet.down_mbps"]);
        let all = vec![(s.id(), s.verify().unwrap())];
        let states = fact_states(&l, &all);
        assert_eq!(states.len(), 2);
        assert!(states.iter().all(FactState::is_verified));
        l.internet.down_mbps = Some(50.0);
        let states = fact_states(&l, &all);
        let wifi = states
            .iter()
            .find(|s| s.fact == "internet.down_mbps")
            .unwrap();
        assert!(!wifi.is_verified());
        assert_eq!(
            wifi.changed_since.as_ref().unwrap().checked_on,
            "2026-05-01"
        );
        assert!(states
            .iter()
            .find(|s| s.fact == "accessibility")
            .unwrap()
            .is_verified());
        // Numbers compare by value.
        assert!(json_eq(&serde_json::json!(100), &serde_json::json!(100.0)));
    }

    #[test]
    fn verified_only_keeps_what_is_verified_and_filters_see_nothing_else() {
        let l = listing();
        let need = Query {
            access: vec![AccessNeed::StepFreeEntrance],
            ..Query::default()
        };
        let now = chrono::Utc::now();
        let hits = |l: &Listing| {
            need.run(
                &[crate::query::Entry {
                    listing: l,
                    free_now: false,
                }],
                now,
            )
            .len()
        };
        assert_eq!(hits(&l), 1, "claimed");
        assert_eq!(hits(&verified_only(&l, &[])), 0, "nothing verified");
        assert_eq!(hits(&verified_only(&l, &["internet"])), 0);
        let masked = verified_only(&l, &["accessibility.entrance"]);
        assert_eq!(hits(&masked), 1);
        assert_eq!(
            masked.accessibility.wheelchair, None,
            "only the entrance was checked"
        );
        assert_eq!(masked.internet.down_mbps, None);
        assert_eq!(masked.name, l.name);
    }
}
