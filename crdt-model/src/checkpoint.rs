//! Checkpoints: a space device's signed copy of its listing document, so a new node gets a space's
//! current state from one signature instead of verifying and replaying every change it ever had.
//!
//! A [`SignedCheckpoint`] is a [`Checkpoint`] header (the space, the document's Automerge heads and change
//! count, the hash of the document bytes, the author and the roster heads it acted under), the author's
//! signature over the header (domain [`Domain::Checkpoint`]), and the document itself as Automerge
//! `save()` bytes. [`SignedCheckpoint::verify`] checks the signature and the bytes against the header
//! without the roster; [`SignedCheckpoint::open`] then loads the document and checks it says what the
//! header claims (heads, change count, every change made by one of the keys given, a valid listing). `open`
//! is [`SignedCheckpoint::load`] (everything that needs no roster, so a node runs it on any thread) then
//! [`Loaded::authorise`] (the keys).
//!
//! What a checkpoint proves: that a key authorised for the space at the named roster heads asserted that
//! the space's accepted document, at those Automerge heads, is exactly these bytes. What it does not
//! prove: that each change inside was authorised and valid as of itself. Those changes come without their
//! envelopes; the signer vouches for them. Every node that received the changes themselves keeps them,
//! so an auditor can still fetch and check each one.

use automerge::{Automerge, Change};
use deskmesh_keys::{Domain, Hash, PublicKey, Signature, Signer, SpaceId};
use serde::{Deserialize, Serialize};

use crate::change::ChangeId;
use crate::listing::Listing;

/// Largest document a checkpoint may carry (a listing's whole history; 5,000 edits save to ~90 KB).
pub const MAX_CHECKPOINT_DOC_BYTES: usize = 4 * 1024 * 1024;
/// Largest header.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Label of the hash that ties a header to its document bytes.
const DOC_HASH_LABEL: &str = "checkpoint-doc";
/// Label of a checkpoint's own id.
const ID_LABEL: &str = "checkpoint";

/// What the author signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub space: SpaceId,
    /// The document's Automerge heads, sorted.
    pub heads: Vec<ChangeId>,
    /// How many changes the document holds.
    pub changes: u32,
    /// [`Hash::of`] `"checkpoint-doc"` over the document bytes.
    pub doc_hash: Hash,
    pub author: PublicKey,
    /// The roster heads the author acted under; authorisation is decided at these heads.
    pub roster_heads: Vec<Hash>,
    pub created_at_ms: i64,
}

/// A checkpoint as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// Postcard bytes of a [`Checkpoint`], exactly as signed.
    pub header: Vec<u8>,
    pub signature: Signature,
    /// Automerge `save()` bytes.
    pub doc: Vec<u8>,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is not readable: {0}")]
    Malformed(String),
    #[error("the checkpoint's {what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the checkpoint's signature does not verify for its author {0}")]
    BadSignature(PublicKey),
    #[error("the checkpoint's document does not match the hash its header signs")]
    DocMismatch,
    #[error("the checkpoint's document {0}")]
    Content(String),
}

impl SignedCheckpoint {
    /// Checkpoints `doc` (the space's accepted document) as `signer`.
    pub fn sign(
        space: SpaceId,
        doc: &Automerge,
        signer: &impl Signer,
        roster_heads: Vec<Hash>,
        now_ms: i64,
    ) -> Result<Self, CheckpointError> {
        let bytes = doc.save();
        if bytes.len() > MAX_CHECKPOINT_DOC_BYTES {
            return Err(CheckpointError::TooLarge {
                what: "document",
                size: bytes.len(),
                limit: MAX_CHECKPOINT_DOC_BYTES,
            });
        }
        let mut heads: Vec<ChangeId> = doc.get_heads().iter().map(|h| h.0).collect();
        heads.sort();
        let header = Checkpoint {
            space,
            heads,
            changes: doc.get_changes(&[]).len() as u32,
            doc_hash: Hash::of(DOC_HASH_LABEL, &bytes),
            author: signer.public_key(),
            roster_heads,
            created_at_ms: now_ms,
        };
        let header =
            postcard::to_stdvec(&header).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let signature = signer.sign(Domain::Checkpoint, &header);
        Ok(Self {
            header,
            signature,
            doc: bytes,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising three byte vectors cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let limit = MAX_CHECKPOINT_DOC_BYTES + MAX_HEADER_BYTES + 128;
        if bytes.len() > limit {
            return Err(CheckpointError::TooLarge {
                what: "encoding",
                size: bytes.len(),
                limit,
            });
        }
        postcard::from_bytes(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }

    /// The header, not verified.
    pub fn decode(&self) -> Result<Checkpoint, CheckpointError> {
        if self.header.len() > MAX_HEADER_BYTES {
            return Err(CheckpointError::TooLarge {
                what: "header",
                size: self.header.len(),
                limit: MAX_HEADER_BYTES,
            });
        }
        postcard::from_bytes(&self.header).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }

    /// This checkpoint's id: the hash of its signed header.
    pub fn id(&self) -> Hash {
        Hash::of(ID_LABEL, &self.header)
    }

    /// Checks the signature, the sizes and that the document bytes are the ones the header signs.
    pub fn verify(&self) -> Result<Checkpoint, CheckpointError> {
        let c = self.decode()?;
        if self.doc.len() > MAX_CHECKPOINT_DOC_BYTES {
            return Err(CheckpointError::TooLarge {
                what: "document",
                size: self.doc.len(),
                limit: MAX_CHECKPOINT_DOC_BYTES,
            });
        }
        c.author
            .verify(Domain::Checkpoint, &self.header, &self.signature)
            .map_err(|_| CheckpointError::BadSignature(c.author))?;
        if Hash::of(DOC_HASH_LABEL, &self.doc) != c.doc_hash {
            return Err(CheckpointError::DocMismatch);
        }
        Ok(c)
    }

    /// Loads the document and checks it is what `header` claims: its heads and change count, every change
    /// made by a key `may_author` accepts, and a valid listing of the header's space at its heads.
    /// [`SignedCheckpoint::load`] then [`Loaded::authorise`].
    pub fn open(
        &self,
        header: &Checkpoint,
        may_author: impl Fn(&PublicKey) -> bool,
    ) -> Result<(Automerge, Listing), CheckpointError> {
        let loaded = self.load(header)?;
        loaded.authorise(may_author)?;
        let Loaded { doc, listing, .. } = loaded;
        Ok((doc, listing?.0))
    }

    /// The part of [`SignedCheckpoint::open`] that needs no roster, so it can run on any thread: loads the
    /// document, checks its heads and change count against `header`, lists its changes and their authors,
    /// and reads and validates the listing at its heads. Whether each author may write the space is left
    /// to [`Loaded::authorise`], which also reports an invalid listing, in the order `open` does.
    pub fn load(&self, header: &Checkpoint) -> Result<Loaded, CheckpointError> {
        let content = |why: String| CheckpointError::Content(why);
        let doc = Automerge::load(&self.doc).map_err(|e| content(format!("does not load: {e}")))?;
        let mut heads: Vec<ChangeId> = doc.get_heads().iter().map(|h| h.0).collect();
        heads.sort();
        if heads != header.heads {
            return Err(content("has other heads than its header names".into()));
        }
        let changes = doc.get_changes(&[]);
        if changes.len() != header.changes as usize {
            return Err(content(format!(
                "holds {} changes, not the {} its header names",
                changes.len(),
                header.changes
            )));
        }
        // Each author once, in byte order: a key is a curve point to decompress, and a document of 200
        // changes has one or two authors.
        let actors: std::collections::BTreeSet<&[u8]> =
            changes.iter().map(|c| c.actor_id().to_bytes()).collect();
        let authors = actors
            .into_iter()
            .map(|a| PublicKey::from_bytes(a).ok())
            .collect();
        let value = crate::doc::hydrate(&doc, None);
        let size = crate::doc::json_len(&value);
        let listing = match Listing::from_value(value) {
            Err(e) => Err(content(format!("does not hold a valid listing: {e}"))),
            Ok(l) if l.id != header.space => Err(content(format!(
                "holds the listing of {}, not of {}",
                l.id, header.space
            ))),
            Ok(l) => Ok((l, size)),
        };
        Ok(Loaded {
            space: header.space.clone(),
            doc,
            changes,
            authors,
            listing,
        })
    }
}

/// A checkpoint's document loaded and checked against its header by [`SignedCheckpoint::load`]: all a
/// node learns of it without the roster.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The space the header names.
    space: SpaceId,
    doc: Automerge,
    /// Every change of the document, dependencies first.
    changes: Vec<Change>,
    /// The actor of every change once, in byte order; `None` for one that is not a key.
    authors: Vec<Option<PublicKey>>,
    /// The listing at the document's heads with its size as JSON, or why it is not a valid listing of
    /// the header's space.
    listing: Result<(Listing, usize), CheckpointError>,
}

impl Loaded {
    /// The rest of [`SignedCheckpoint::open`]: every change made by a key `may_author` accepts (the
    /// roster: a key ever granted the space), then a valid listing. The first failure, as `open` says it.
    pub fn authorise(
        &self,
        may_author: impl Fn(&PublicKey) -> bool,
    ) -> Result<(), CheckpointError> {
        let content = |why: String| CheckpointError::Content(why);
        for author in &self.authors {
            let key =
                author.ok_or_else(|| content("holds a change whose author is not a key".into()))?;
            if !may_author(&key) {
                return Err(content(format!(
                    "holds a change by {key}, which was never a device of {}",
                    self.space
                )));
            }
        }
        self.listing.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// The authors of the document's changes that are keys, each once.
    pub fn authors(&self) -> impl Iterator<Item = &PublicKey> {
        self.authors.iter().flatten()
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// Every change of the document, dependencies first.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The hashes of every change of the document.
    pub fn change_ids(&self) -> Vec<ChangeId> {
        self.changes.iter().map(|c| c.hash().0).collect()
    }

    /// The document, its changes, and its listing with the listing's size as JSON (`None` when it is not
    /// valid; [`Loaded::authorise`] says why).
    pub fn into_parts(self) -> (Automerge, Vec<Change>, Option<(Listing, usize)>) {
        (self.doc, self.changes, self.listing.ok())
    }
}

/// The hashes of every change in `doc`.
pub fn change_ids(doc: &Automerge) -> Vec<ChangeId> {
    doc.get_changes(&[]).iter().map(|c| c.hash().0).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};
    use deskmesh_keys::DeviceKey;

    use super::*;

    fn doc_by(key: &DeviceKey, space: &SpaceId, names: &[&str]) -> Automerge {
        let mut doc = Automerge::new();
        doc.set_actor(ActorId::from(key.public_key().as_bytes()));
        let base = Listing::new_minimal(
            space.clone(),
            "Desk",
            38.7,
            -9.1,
            "Lisbon",
            "PT",
            "Europe/Lisbon",
        );
        let serde_json::Value::Object(target) = base.to_value() else {
            panic!("a listing is an object");
        };
        let mut tx = doc.transaction();
        crate::doc::reconcile(&mut tx, &target).unwrap();
        tx.commit();
        for n in names {
            let mut tx = doc.transaction();
            tx.put(ROOT, "name", *n).unwrap();
            tx.commit();
        }
        doc
    }

    #[test]
    fn a_checkpoint_verifies_opens_and_refuses_every_kind_of_tampering() {
        let key = DeviceKey::from_seed(&[4; 32]);
        let space = SpaceId::derive(&key.public_key());
        let doc = doc_by(&key, &space, &["One", "Two", "Three"]);
        let signed = SignedCheckpoint::sign(space.clone(), &doc, &key, vec![], 9).unwrap();
        let back = SignedCheckpoint::from_bytes(&signed.to_bytes()).unwrap();
        let header = back.verify().unwrap();
        assert_eq!(header.changes, 4);
        let me = key.public_key();
        let (opened, listing) = back.open(&header, |k| *k == me).unwrap();
        assert_eq!(listing.name, "Three");
        assert_eq!(change_ids(&opened).len(), 4);

        let mut forged = back.clone();
        forged.signature = key.sign(Domain::SeatBeacon, &forged.header);
        assert!(matches!(
            forged.verify(),
            Err(CheckpointError::BadSignature(_))
        ));
        let mut swapped = back.clone();
        swapped.doc = doc_by(&key, &space, &["Other"]).save();
        assert_eq!(swapped.verify(), Err(CheckpointError::DocMismatch));
        // A change by a key the roster never gave the space is refused.
        let err = back.open(&header, |_| false).unwrap_err();
        assert!(err.to_string().contains("never a device"), "{err}");
        // A header lying about the count is caught when the document is opened.
        let mut lying = header.clone();
        lying.changes = 3;
        assert!(back.open(&lying, |_| true).is_err());
        assert!(SignedCheckpoint::from_bytes(b"garbage").is_err());
    }
}
