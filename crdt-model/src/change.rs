//! Signed change envelopes: how one Automerge change of a space's listing travels and is checked.
//!
//! A device never signs a gossip message or re-serialised JSON; it signs the postcard bytes of an
//! [`Envelope`] naming the space, the Automerge change hash, its dependencies, the author's key, the roster
//! heads it was issued under and when, under the `listing-change` domain (lessons 2 and 3). The raw change
//! bytes ride alongside, and [`SignedChange::verify`] ties them to the envelope: the change must decode, hash
//! to the signed hash, carry the signed dependencies and have the author's 32 public key bytes as its
//! Automerge actor id, so a relay can never pass off its own edits as someone else's. Whether the author
//! may sign for the space is not decided here but by an [`Authority`] (the roster, or a fake in tests).

use automerge::Change;
use deskmesh_keys::roster::Removal;
use deskmesh_keys::{Domain, Hash, PublicKey, Signature, Signer, SpaceId};
use serde::{Deserialize, Serialize};

/// An Automerge change hash as raw bytes; the id of a change everywhere in deskmesh.
pub type ChangeId = [u8; 32];

/// The largest raw Automerge change accepted (lesson 10: hard limits everywhere).
pub const MAX_CHANGE_BYTES: usize = 64 * 1024;

/// The largest envelope accepted; a real one is a few hundred bytes, this leaves room for roster heads.
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024;

/// The chunk type byte of a compressed Automerge change (after 4 magic and 4 checksum bytes). Compressed
/// chunks are refused because a small one can inflate to many megabytes before any check runs.
const COMPRESSED_CHUNK_TYPE: u8 = 2;
const CHUNK_TYPE_OFFSET: usize = 8;
/// Where an Automerge chunk keeps its checksum, after the 4 magic bytes.
const CHECKSUM: std::ops::Range<usize> = 4..8;

/// Says whether a key may sign for a space at given roster heads. The roster implements it; tests use a fake.
pub trait Authority {
    /// Ok(op hash that authorised `key` for `space` at `heads`), or why not.
    fn authorise(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Result<Hash, Denial>;

    /// The strong removals that constrain what `key` signed for `space` naming `heads` (see
    /// [`deskmesh_keys::Roster::removals`]): a listing change still counts only if it is in the causal
    /// past of the listing heads each of them keeps, and a seat beacon never does. Asked only after
    /// [`Authority::authorise`] said yes; none by default.
    fn removals(&self, _heads: &[Hash], _key: &PublicKey, _space: &SpaceId) -> Vec<Removal> {
        Vec::new()
    }
}

impl<A: Authority + ?Sized> Authority for &A {
    fn authorise(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Result<Hash, Denial> {
        (**self).authorise(heads, key, space)
    }
    fn removals(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Vec<Removal> {
        (**self).removals(heads, key, space)
    }
}

/// The alliance roster decides at the heads the signer named; heads this node lacks mean "pending".
impl Authority for deskmesh_keys::Roster {
    fn authorise(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Result<Hash, Denial> {
        self.may_sign(heads, key, space)
            .map(|a| a.op)
            .map_err(|d| Denial {
                pending: matches!(d, deskmesh_keys::Denied::UnknownHeads(_)),
                reason: d.to_string(),
            })
    }

    fn removals(&self, heads: &[Hash], key: &PublicKey, space: &SpaceId) -> Vec<Removal> {
        // Unknown heads were already answered by `authorise` (pending): nothing to constrain yet.
        deskmesh_keys::Roster::removals(self, heads, key, space).unwrap_or_default()
    }
}

/// Why an [`Authority`] refused a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The roster heads named are not known yet: keep the change and retry when the roster advances.
    pub pending: bool,
    /// One sentence for the audit.
    pub reason: String,
}

impl Denial {
    /// A final refusal.
    pub fn denied(reason: impl Into<String>) -> Self {
        Self {
            pending: false,
            reason: reason.into(),
        }
    }

    /// A refusal that may turn into a yes once more of the roster is known.
    pub fn pending(reason: impl Into<String>) -> Self {
        Self {
            pending: true,
            reason: reason.into(),
        }
    }
}

/// What the author signs: everything needed to place and authorise one Automerge change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub space: SpaceId,
    /// The Automerge change hash.
    pub change_hash: ChangeId,
    /// The change's dependencies, in the order the change lists them.
    pub deps: Vec<ChangeId>,
    pub author: PublicKey,
    /// The roster heads the author acted under; authorisation is decided at these heads.
    pub roster_heads: Vec<Hash>,
    pub created_at_ms: i64,
}

impl Envelope {
    /// The exact bytes that get signed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ChangeError> {
        postcard::to_stdvec(self).map_err(|e| ChangeError::Envelope(e.to_string()))
    }

    /// Reads envelope bytes, refusing trailing garbage.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChangeError> {
        let (env, rest) = postcard::take_from_bytes::<Envelope>(bytes)
            .map_err(|e| ChangeError::Envelope(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ChangeError::Envelope(format!(
                "{} trailing bytes after the envelope",
                rest.len()
            )));
        }
        Ok(env)
    }
}

/// Why a signed change was refused. Each variant is one distinct failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("signed change is not readable: {0}")]
    Malformed(String),
    #[error("change envelope is not readable: {0}")]
    Envelope(String),
    #[error("change envelope is {size} bytes, over the {limit}-byte limit")]
    EnvelopeTooLarge { size: usize, limit: usize },
    #[error("automerge change is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("envelope signature does not verify for author {author}")]
    BadSignature { author: PublicKey },
    #[error("compressed automerge changes are not accepted")]
    Compressed,
    #[error("automerge change does not decode: {0}")]
    Undecodable(String),
    #[error("automerge change checksum does not match its content")]
    Checksum,
    #[error("automerge change hashes to {actual}, but the envelope signs {claimed}")]
    HashMismatch { claimed: String, actual: String },
    #[error("automerge change depends on [{actual}], but the envelope signs [{claimed}]")]
    DepsMismatch { claimed: String, actual: String },
    #[error("automerge change was made by actor {actor}, not by the author's key {author}")]
    ActorMismatch { actor: String, author: PublicKey },
    #[error("signer key {signer} is not the envelope author {author}")]
    SignerMismatch {
        signer: PublicKey,
        author: PublicKey,
    },
}

/// One Automerge change with the envelope that its author signed. This is what the store keeps and the
/// mesh moves; nothing in it is trusted until [`SignedChange::verify`] says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    /// Postcard bytes of an [`Envelope`], exactly as signed.
    pub envelope_bytes: Vec<u8>,
    /// Signature under [`Domain::ListingChange`] over `envelope_bytes`.
    pub signature: Signature,
    /// Raw (uncompressed) Automerge change bytes.
    pub change: Vec<u8>,
}

/// A signed change whose signature, size, hash, dependencies and actor were checked. The only way to get
/// one is [`SignedChange::into_verified`], so holding one is the proof: the ingest path verifies once (off
/// its event loop, on every core) and the document applies without verifying again.
#[derive(Debug, Clone)]
pub struct VerifiedChange {
    signed: SignedChange,
    envelope: Envelope,
    change: Change,
    /// What the check phase worked out ahead of the document ([`VerifiedChange::prepare`],
    /// [`crate::doc::prepare_run`]).
    prepared: crate::doc::Prepared,
}

impl VerifiedChange {
    /// Works out, for a change with no dependencies (a space's first), what it makes of an empty
    /// document: the document holding it and whether the listing as of it is valid. Pure, so the check
    /// phase does it on any thread; applying it to an empty document then takes that result instead of
    /// applying and validating again. Does nothing for a change with dependencies.
    pub fn prepare(&mut self) {
        if self.change.deps().is_empty() && self.prepared.alone.is_none() {
            self.prepared.alone =
                crate::doc::Alone::of(&self.envelope.space, &self.change).map(Box::new);
        }
    }

    /// Takes what the check phase worked out, if anything.
    pub fn take_prepared(&mut self) -> crate::doc::Prepared {
        std::mem::take(&mut self.prepared)
    }

    /// Gives back what [`VerifiedChange::take_prepared`] took (to a copy of the same change).
    pub fn put_prepared(&mut self, prepared: crate::doc::Prepared) {
        let hash = self.change.hash().0;
        self.prepared = prepared.for_change(&hash);
    }

    /// Whether the check phase worked out the listing as of this change ([`crate::doc::prepare_run`]).
    pub fn has_verdict(&self) -> bool {
        self.prepared.as_of.is_some()
    }

    pub(crate) fn prepared_mut(&mut self) -> &mut crate::doc::Prepared {
        &mut self.prepared
    }

    pub(crate) fn change(&self) -> &Change {
        &self.change
    }

    pub fn signed(&self) -> &SignedChange {
        &self.signed
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The signed bytes, the envelope and the decoded Automerge change.
    pub fn into_parts(self) -> (SignedChange, Envelope, Change) {
        (self.signed, self.envelope, self.change)
    }
}

/// The short hex form of a change id for messages and logs (the first 6 bytes).
pub fn short_id(id: &ChangeId) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_list(ids: &[ChangeId]) -> String {
    ids.iter().map(short_id).collect::<Vec<_>>().join(", ")
}

impl SignedChange {
    /// Wraps raw Automerge change bytes in an envelope signed by `signer`. The change must already carry
    /// the signer's key as its actor id; this is checked so a device cannot produce an envelope that every
    /// other node would refuse.
    pub fn sign(
        space: SpaceId,
        change: Vec<u8>,
        signer: &impl Signer,
        roster_heads: Vec<Hash>,
        created_at_ms: i64,
    ) -> Result<Self, ChangeError> {
        let decoded = decode_change(&change)?;
        let author = signer.public_key();
        check_actor(&decoded, &author)?;
        let env = Envelope {
            space,
            change_hash: decoded.hash().0,
            deps: decoded.deps().iter().map(|d| d.0).collect(),
            author,
            roster_heads,
            created_at_ms,
        };
        let envelope_bytes = env.to_bytes()?;
        check_envelope_size(&envelope_bytes)?;
        let signature = signer.sign(Domain::ListingChange, &envelope_bytes);
        Ok(Self {
            envelope_bytes,
            signature,
            change,
        })
    }

    /// The wire and store form (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain byte vectors and a fixed-size signature into a growable buffer cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Reads the wire and store form; garbage gives an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChangeError> {
        let (sc, rest) = postcard::take_from_bytes::<SignedChange>(bytes)
            .map_err(|e| ChangeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ChangeError::Malformed(format!(
                "{} trailing bytes after the signed change",
                rest.len()
            )));
        }
        Ok(sc)
    }

    /// The envelope as claimed, not verified: for store keys and quick duplicate checks.
    pub fn envelope(&self) -> Result<Envelope, ChangeError> {
        check_envelope_size(&self.envelope_bytes)?;
        Envelope::from_bytes(&self.envelope_bytes)
    }

    /// The change hash the envelope claims (not verified).
    pub fn id(&self) -> Result<ChangeId, ChangeError> {
        Ok(self.envelope()?.change_hash)
    }

    /// Checks everything that can be checked without the roster and returns the envelope.
    pub fn verify(&self) -> Result<Envelope, ChangeError> {
        self.verify_decoded().map(|(env, _)| env)
    }

    /// Verifies the change and keeps the result as proof, so whoever applies it need not verify again.
    pub fn into_verified(self) -> Result<VerifiedChange, ChangeError> {
        let (envelope, change) = self.verify_decoded()?;
        Ok(VerifiedChange {
            signed: self,
            envelope,
            change,
            prepared: crate::doc::Prepared::default(),
        })
    }

    /// Like [`SignedChange::verify`], also handing back the decoded Automerge change so callers that apply
    /// it do not decode it twice.
    pub fn verify_decoded(&self) -> Result<(Envelope, Change), ChangeError> {
        self.decode_checked(true)
    }

    /// [`SignedChange::verify_decoded`] without checking the signature again, for a change whose signature
    /// was checked when it came (one a document keeps pending): every other check is made.
    pub fn decode_verified(&self) -> Result<(Envelope, Change), ChangeError> {
        self.decode_checked(false)
    }

    fn decode_checked(&self, signature: bool) -> Result<(Envelope, Change), ChangeError> {
        let env = self.envelope()?;
        if self.change.len() > MAX_CHANGE_BYTES {
            return Err(ChangeError::TooLarge {
                size: self.change.len(),
                limit: MAX_CHANGE_BYTES,
            });
        }
        if signature {
            env.author
                .verify(Domain::ListingChange, &self.envelope_bytes, &self.signature)
                .map_err(|_| ChangeError::BadSignature { author: env.author })?;
        }
        let change = decode_change(&self.change)?;
        let actual = change.hash().0;
        if actual != env.change_hash {
            return Err(ChangeError::HashMismatch {
                claimed: short_id(&env.change_hash),
                actual: short_id(&actual),
            });
        }
        let deps: Vec<ChangeId> = change.deps().iter().map(|d| d.0).collect();
        if deps != env.deps {
            return Err(ChangeError::DepsMismatch {
                claimed: hex_list(&env.deps),
                actual: hex_list(&deps),
            });
        }
        check_actor(&change, &env.author)?;
        Ok((env, change))
    }
}

fn check_envelope_size(bytes: &[u8]) -> Result<(), ChangeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(ChangeError::EnvelopeTooLarge {
            size: bytes.len(),
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    Ok(())
}

fn decode_change(bytes: &[u8]) -> Result<Change, ChangeError> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(ChangeError::TooLarge {
            size: bytes.len(),
            limit: MAX_CHANGE_BYTES,
        });
    }
    if bytes.get(CHUNK_TYPE_OFFSET) == Some(&COMPRESSED_CHUNK_TYPE) {
        return Err(ChangeError::Compressed);
    }
    // Automerge 0.12 panics on some malformed changes instead of returning an error (an op counter over
    // u32::MAX unwraps in `OpId::new`; found by fuzzing). The bytes come from anyone, so a panic is caught
    // and reported like any other unreadable change.
    let decoded = std::panic::catch_unwind(|| Change::try_from(bytes));
    let change = match decoded {
        Ok(result) => result.map_err(|e| ChangeError::Undecodable(e.to_string()))?,
        Err(_) => {
            return Err(ChangeError::Undecodable(
                "automerge failed to read it".into(),
            ))
        }
    };
    // Automerge does not check the chunk checksum (the first 4 bytes of the hash) when it decodes, so
    // without this anyone could flip those bytes and make a second byte string for the same signed change.
    if bytes.get(CHECKSUM) != Some(&change.hash().0[..4]) {
        return Err(ChangeError::Checksum);
    }
    Ok(change)
}

/// Lesson 2: the change's actor id must be the author's key, so a change in a document always names the
/// device that signed it.
fn check_actor(change: &Change, author: &PublicKey) -> Result<(), ChangeError> {
    let actor = change.actor_id();
    if actor.as_ref() != author.as_bytes() {
        return Err(ChangeError::ActorMismatch {
            actor: actor.to_hex_string(),
            author: *author,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};
    use deskmesh_keys::DeviceKey;
    use proptest::prelude::*;

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn raw_change(actor: &PublicKey, name: &str) -> Vec<u8> {
        let mut doc = Automerge::new().with_actor(ActorId::from(actor.as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, "name", name).unwrap();
        tx.commit();
        doc.get_last_local_change().unwrap().raw_bytes().to_vec()
    }

    fn signed(k: &DeviceKey, name: &str) -> SignedChange {
        let space = SpaceId::derive(&k.public_key());
        SignedChange::sign(space, raw_change(&k.public_key(), name), k, vec![], 1_000).unwrap()
    }

    #[test]
    fn a_signed_change_verifies_and_round_trips() {
        let k = key(1);
        let sc = signed(&k, "Lisbon Desk");
        let env = sc.verify().unwrap();
        assert_eq!(env.author, k.public_key());
        assert_eq!(env.created_at_ms, 1_000);
        assert_eq!(sc.id().unwrap(), env.change_hash);
        let back = SignedChange::from_bytes(&sc.to_bytes()).unwrap();
        assert_eq!(back, sc);
        assert_eq!(back.verify().unwrap(), env);
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let mut sc = signed(&key(1), "x");
        let mut sig = *sc.signature.as_bytes();
        sig[5] ^= 1;
        sc.signature = Signature::from_bytes(&sig).unwrap();
        assert!(matches!(sc.verify(), Err(ChangeError::BadSignature { .. })));
    }

    #[test]
    fn an_envelope_signed_by_someone_else_is_refused() {
        let a = key(1);
        let mut sc = signed(&a, "x");
        sc.signature = key(2).sign(Domain::ListingChange, &sc.envelope_bytes);
        assert!(matches!(sc.verify(), Err(ChangeError::BadSignature { .. })));
    }

    #[test]
    fn tampered_change_bytes_are_refused() {
        let k = key(1);
        let mut sc = signed(&k, "Lisbon Desk");
        let last = sc.change.len() - 1;
        sc.change[last] ^= 0x40;
        let err = sc.verify().unwrap_err();
        assert!(
            matches!(
                err,
                ChangeError::Undecodable(_) | ChangeError::HashMismatch { .. }
            ),
            "{err}"
        );
        // Automerge itself ignores its checksum bytes; we do not, so the signed bytes have one form only.
        let mut reflagged = signed(&k, "Lisbon Desk");
        reflagged.change[CHECKSUM.start] ^= 1;
        assert_eq!(reflagged.verify(), Err(ChangeError::Checksum));
        // A different, well-formed change under the same envelope is caught by the hash.
        let mut swapped = signed(&k, "Lisbon Desk");
        swapped.change = raw_change(&k.public_key(), "Porto Desk");
        assert!(matches!(
            swapped.verify(),
            Err(ChangeError::HashMismatch { .. })
        ));
    }

    #[test]
    fn an_actor_other_than_the_author_is_refused() {
        let a = key(1);
        let b = key(2);
        // Signing refuses it outright...
        let foreign = raw_change(&b.public_key(), "x");
        let space = SpaceId::derive(&a.public_key());
        assert!(matches!(
            SignedChange::sign(space.clone(), foreign.clone(), &a, vec![], 0),
            Err(ChangeError::ActorMismatch { .. })
        ));
        // ...and an envelope built by hand around it fails verification.
        let c = Change::try_from(&foreign[..]).unwrap();
        let env = Envelope {
            space,
            change_hash: c.hash().0,
            deps: vec![],
            author: a.public_key(),
            roster_heads: vec![],
            created_at_ms: 0,
        };
        let envelope_bytes = env.to_bytes().unwrap();
        let sc = SignedChange {
            signature: a.sign(Domain::ListingChange, &envelope_bytes),
            envelope_bytes,
            change: foreign,
        };
        let err = sc.verify().unwrap_err();
        assert!(matches!(err, ChangeError::ActorMismatch { .. }), "{err}");
        assert!(err.to_string().contains("not by the author's key"));
    }

    #[test]
    fn signed_deps_must_match_the_change() {
        let a = key(1);
        let mut sc = signed(&a, "x");
        let mut env = sc.envelope().unwrap();
        env.deps.push([7; 32]);
        sc.envelope_bytes = env.to_bytes().unwrap();
        sc.signature = a.sign(Domain::ListingChange, &sc.envelope_bytes);
        assert!(matches!(sc.verify(), Err(ChangeError::DepsMismatch { .. })));
    }

    #[test]
    fn oversized_changes_are_refused_before_decoding() {
        let mut sc = signed(&key(1), "x");
        sc.change = vec![0; MAX_CHANGE_BYTES + 1];
        assert!(matches!(sc.verify(), Err(ChangeError::TooLarge { .. })));
    }

    #[test]
    fn compressed_changes_are_refused() {
        let k = key(1);
        let mut doc = Automerge::new().with_actor(ActorId::from(k.public_key().as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, "description", "a".repeat(4096)).unwrap();
        tx.commit();
        let mut c = doc.get_last_local_change().unwrap();
        let compressed = c.bytes().to_vec();
        assert_eq!(compressed[CHUNK_TYPE_OFFSET], COMPRESSED_CHUNK_TYPE);
        let space = SpaceId::derive(&k.public_key());
        assert_eq!(
            SignedChange::sign(space, compressed, &k, vec![], 0),
            Err(ChangeError::Compressed)
        );
    }

    #[test]
    fn the_roster_is_an_authority() {
        use deskmesh_keys::{OpBody, Roster};
        let coordinator = key(1);
        let device = key(2);
        let space = SpaceId::derive(&device.public_key());
        let (mut roster, _) = Roster::create(&coordinator, "North", vec![], 1, 0).unwrap();
        let before = roster.heads();
        let admit = roster.propose(
            &coordinator,
            OpBody::AdmitSpace {
                space: space.clone(),
                name: "Desk Co".into(),
                devices: vec![device.public_key()],
            },
            1,
        );
        roster.insert(admit.clone()).unwrap();
        let now = roster.heads();
        assert_eq!(
            roster.authorise(&now, &device.public_key(), &space),
            Ok(admit.hash())
        );
        let no = roster
            .authorise(&before, &device.public_key(), &space)
            .unwrap_err();
        assert!(!no.pending, "{no:?}");
        let stranger = roster
            .authorise(&now, &key(3).public_key(), &space)
            .unwrap_err();
        assert!(!stranger.pending && stranger.reason.contains("not one of the space's devices"));
        let unknown = roster
            .authorise(
                &[Hash::of("roster-op", b"later")],
                &device.public_key(),
                &space,
            )
            .unwrap_err();
        assert!(unknown.pending, "{unknown:?}");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(sc) = SignedChange::from_bytes(&bytes) {
                let _ = sc.id();
                let _ = sc.verify();
            }
        }

        #[test]
        fn any_single_bit_flip_in_the_wire_form_is_caught(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let sc = signed(&key(3), "Flip Desk");
            let mut bytes = sc.to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(back) = SignedChange::from_bytes(&bytes) {
                prop_assert!(back == sc || back.verify().is_err());
            }
        }
    }
}
