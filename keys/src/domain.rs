//! Domain separation for everything deskmesh signs.
//!
//! Every signature covers `"deskmesh/v1/" || tag || 0x00 || message`, so a signature made for one purpose
//! (say a seat beacon) can never be replayed as another (say a roster operation), even if the message bytes
//! happened to coincide.

/// What a signature is for. Adding a variant never changes the tag of an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A roster operation (create alliance, admit space, device and coordinator changes, revocation).
    RosterOp,
    /// The envelope around one Automerge change of a space's listing.
    ListingChange,
    /// A live seat beacon.
    SeatBeacon,
    /// A gossip announcement of a space's heads.
    HeadsAnnouncement,
    /// Reserved for node-to-node messages that need their own signature.
    NodeMessage,
    /// A coordinator's countersignature of facts of a listing, as checked on a date.
    Verification,
    /// The exporting node's signature over a self-contained audit file.
    AuditExport,
    /// A space device's signed checkpoint of its listing document (the whole document at some heads).
    Checkpoint,
}

impl Domain {
    /// The stable tag framed into the signed bytes.
    pub fn tag(self) -> &'static str {
        match self {
            Domain::RosterOp => "roster-op",
            Domain::ListingChange => "listing-change",
            Domain::SeatBeacon => "seat-beacon",
            Domain::HeadsAnnouncement => "heads-announcement",
            Domain::NodeMessage => "node-message",
            Domain::Verification => "verification",
            Domain::AuditExport => "audit-export",
            Domain::Checkpoint => "checkpoint",
        }
    }

    /// The exact bytes that are signed for `message` in this domain.
    pub fn framed(self, message: &[u8]) -> Vec<u8> {
        let tag = self.tag().as_bytes();
        let mut out = Vec::with_capacity(12 + tag.len() + 1 + message.len());
        out.extend_from_slice(b"deskmesh/v1/");
        out.extend_from_slice(tag);
        out.push(0);
        out.extend_from_slice(message);
        out
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}
