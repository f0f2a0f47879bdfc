//! The typed API of a node: everything a front end (the command line, the terminal UI, the demo) can ask
//! of a node, and the one [`Handle`] trait it asks through.
//!
//! A [`Request`] is answered by a [`Response`] or an [`ApiError`] (one sentence for people and a coarse
//! [`ErrorKind`]). Three implementations of [`Handle`] exist: [`Local`] over a node opened in this process,
//! the control-socket client in the node crate (a running daemon answers), and test fakes. [`serve`] is the
//! one dispatcher: [`Local`] calls it and so does the daemon, which answers only `Status` and `Peers` from
//! its own state (it knows the mesh) and announces what a request made. A front end therefore behaves the
//! same whether or not a daemon runs, and renders text itself: nothing here is formatted for a terminal.
//!
//! Requests and responses are serde types. Over a socket they travel as JSON after a handshake in which
//! both sides name [`PROTOCOL`]; bytes ([`Bytes`]) are base64 in JSON and raw in binary encodings.

use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::query::Query;
use deskmesh_keys::{PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditProgress, AuditReport, RosterOpAudit};
use crate::bundle::BundleReport;
use crate::export::ExportFormat;
use crate::home::SavedPlace;
use crate::ingest::SignedItem;
use crate::node::{Busy, Node};
use crate::ops::alliance::{
    AllianceCreated, AllianceView, InviteReport, Joined, MemberInviteReport, Replaced,
    RosterChanged,
};
use crate::ops::directory::Directory;
use crate::ops::drafts::{DraftReport, DraftRequest};
use crate::ops::listing::{EditReport, FileBytes, ImportReport, ListingEdit};
use crate::ops::place::PlaceSpec;
use crate::ops::seats::SeatsReport;
use crate::ops::trust::{CoordinatorChange, ProposalReport, VerifyReport};
use crate::report::{AllianceReport, ReportScope};
use crate::view::{Event, NodeStatus, PageCursor, PeerInfo, Snapshot, SnapshotHead, SpacesPage};

/// The version of the request/response protocol. A peer naming another version is refused with a
/// sentence that says which side to upgrade. Version 2: coordinator quorum, verifications, device
/// replacement, listed revocations, audit export and the audit's findings. Version 3: paged attach
/// (`Attach`, `SnapshotHead`, `SpacesPage`, `RosterLog`, `Event::Spaces`, `Event::Roster`).
pub const PROTOCOL: u32 = 3;

/// Bytes that cross the API: base64 text in JSON, raw bytes in binary encodings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&data_encoding::BASE64.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("base64 text or bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
                data_encoding::BASE64
                    .decode(v.as_bytes())
                    .map(Bytes)
                    .map_err(|e| E::custom(format!("not base64: {e}")))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_bytes(V)
        }
    }
}

/// Everything a front end can ask of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The node and its place in the mesh.
    Status,
    /// The peers connected now (none without a running mesh node).
    Peers,
    /// Found an alliance with this node as its first coordinator.
    AllianceCreate {
        name: String,
        threshold: u8,
    },
    /// Admit a space's device key; answers with its invite token.
    AllianceInvite {
        invitee: PublicKey,
        space_name: String,
        peers: Vec<String>,
    },
    /// A token for a member's laptop; a running node adds its own listen addresses.
    AllianceInviteMember {
        peers: Vec<String>,
    },
    /// Add another device to this node's space; answers with its invite token.
    AllianceAddDevice {
        device: PublicKey,
    },
    AllianceRemoveDevice {
        device: PublicKey,
        space: Option<SpaceId>,
    },
    AllianceRevoke {
        space: SpaceId,
        reason: String,
        /// Keep the space in the directory, marked revoked with the reason.
        #[serde(default)]
        listed: bool,
    },
    /// Replace a lost or stolen device of a space with a new key; answers with the new key's invite.
    AllianceReplaceDevice {
        old: PublicKey,
        new: PublicKey,
        space: Option<SpaceId>,
    },
    /// Propose a coordinator change (coordinators only).
    AlliancePropose {
        change: CoordinatorChange,
    },
    /// Add this node's signature to a proposal: its `dmp1…` token, or the id of one held here.
    AllianceApprove {
        proposal: String,
    },
    /// The proposals waiting for co-signatures here.
    AllianceProposals,
    /// Countersign facts of a space's listing as checked on a day (coordinators only).
    AllianceVerify {
        space: SpaceId,
        facts: Vec<String>,
        checked_on: Option<NaiveDate>,
        note: String,
    },
    /// Join with a `dmi1…` or `dmm1…` token.
    AllianceJoin {
        token: String,
    },
    AllianceShow,
    /// A listing (default: this node's space).
    SpaceShow {
        space: Option<SpaceId>,
    },
    SpaceEdit(ListingEdit),
    /// A space's Automerge document (default: this node's) as `save()` bytes.
    SpaceDocument {
        space: Option<SpaceId>,
    },
    /// Draft listings, one per space in a file (OSM, GeoJSON, CSV, JSON); nothing is written.
    DraftListings(DraftRequest),
    /// The alliance report's figures.
    Report(ReportScope),
    SeatsSet {
        pool: Option<String>,
        availability: Availability,
        ttl_s: u32,
    },
    SpacesList(Query),
    /// Save (or with `None` forget) the location distances are measured from.
    SetLocation {
        place: Option<PlaceSpec>,
    },
    Export(ExportFormat),
    /// Listings (JSON, one or an array) this node may sign for.
    ImportListings(FileBytes),
    /// Signed items from a bundle; send every roster operation before the items they authorise.
    ImportItems(Vec<SignedItem>),
    Audit,
    /// A self-contained audit file, signed by this node, that `audit verify` checks anywhere.
    AuditExport,
    /// Everything a live front end shows.
    Snapshot,
    /// What a front end shows first: a [`Snapshot`] with only the first `first` spaces in name order,
    /// and where the rest start.
    SnapshotHead {
        first: usize,
    },
    /// Up to `take` spaces in name order after `after` (from the first when `None`).
    SpacesPage {
        after: Option<PageCursor>,
        take: usize,
    },
    /// The roster log, oldest first (what [`Snapshot::roster`] holds).
    RosterLog,
    /// After the answer, the connection carries [`Event`]s until the client hangs up (sockets only).
    Subscribe,
    /// A front end attaching (sockets only): the answer is a [`Snapshot`] holding the first `first`
    /// spaces in name order and no roster; then the connection carries the rest in [`Event::Spaces`]
    /// pages of `page` spaces and then the roster ([`Event::Roster`]), in the one stream with every live
    /// [`Event`], until the client hangs up.
    Attach {
        first: usize,
        page: usize,
    },
}

impl Request {
    /// Whether the request can change what the node stores.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Self::Status
                | Self::Peers
                | Self::AllianceShow
                | Self::AllianceInviteMember { .. }
                | Self::SpaceShow { .. }
                | Self::SpaceDocument { .. }
                | Self::DraftListings(_)
                | Self::Report(_)
                | Self::SpacesList(_)
                | Self::Export(_)
                | Self::Audit
                | Self::AuditExport
                | Self::AllianceProposals
                | Self::Snapshot
                | Self::SnapshotHead { .. }
                | Self::SpacesPage { .. }
                | Self::RosterLog
                | Self::Subscribe
                | Self::Attach { .. }
        )
    }
}

/// A node's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Status(Box<NodeStatus>),
    Peers(Vec<PeerInfo>),
    AllianceCreated(AllianceCreated),
    Invite(InviteReport),
    Replaced(Replaced),
    Proposal(ProposalReport),
    Proposals(Vec<ProposalReport>),
    Verified(VerifyReport),
    MemberInvite(MemberInviteReport),
    RosterChanged(RosterChanged),
    Joined(Joined),
    Alliance(AllianceView),
    Listing(Box<Listing>),
    Edited(EditReport),
    /// Automerge `save()` bytes.
    Document(Bytes),
    Drafts(DraftReport),
    Report(Box<AllianceReport>),
    Seats(SeatsReport),
    Directory(Directory),
    /// The location saved now.
    Location(Option<SavedPlace>),
    /// An export: text for the text formats, the bundle's bytes for a bundle.
    Exported(Bytes),
    Imported(ImportReport),
    ImportedItems(BundleReport),
    Audit(Box<AuditReport>),
    Snapshot(Box<Snapshot>),
    SnapshotHead(Box<SnapshotHead>),
    SpacesPage(SpacesPage),
    RosterLog(Vec<RosterOpAudit>),
    Subscribed,
}

/// What kind of failure an [`ApiError`] is, for callers that react differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was understood and refused: bad input, or the node is not in the state it needs.
    Refused,
    /// The store failed (disk full, not writable, corrupt); nothing stored was lost.
    Store,
    /// Another process holds the store.
    Busy,
    /// The request or answer could not be read: another protocol version, an unknown request, a line
    /// too long.
    Protocol,
    /// No node answers (the daemon stopped).
    Unavailable,
}

/// Why a request failed: one sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A response of the wrong kind: a node and client out of step.
    pub fn unexpected(response: &Response) -> Self {
        let name = format!("{response:?}");
        let name = name
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("?")
            .to_string();
        Self::protocol(format!(
            "the node answered with {name}, which does not fit the request; are the client and the daemon the same deskmesh version?"
        ))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let kind = if e.chain().any(|c| c.downcast_ref::<Busy>().is_some()) {
            ErrorKind::Busy
        } else if e
            .chain()
            .any(|c| c.downcast_ref::<deskmesh_store::StoreError>().is_some())
        {
            ErrorKind::Store
        } else {
            ErrorKind::Refused
        };
        Self::new(kind, format!("{e:#}"))
    }
}

/// The first line a client sends on a control connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The client program and version, for the daemon's logs.
    pub client: String,
    /// The client reads a directory answer sent as a binary frame (CBOR, see the node's `control` module).
    /// Left out by clients that read only JSON lines, which then get JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary_answers: bool,
}

/// The daemon's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    /// The daemon program and version.
    pub server: String,
    pub pid: u32,
    /// The daemon sends directory answers as binary frames (the client asked, and the daemon can).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary_answers: bool,
}

/// This program's name and version, as handshakes carry it.
pub fn software() -> String {
    format!("deskmesh {}", env!("CARGO_PKG_VERSION"))
}

/// Live events from a node, in the order it stored what they describe.
#[derive(Debug)]
pub struct Subscription(mpsc::Receiver<Event>);

impl Subscription {
    /// A subscription and the sender that feeds it.
    pub fn channel() -> (mpsc::Sender<Event>, Self) {
        let (tx, rx) = mpsc::channel();
        (tx, Self(rx))
    }

    /// The next event if one is waiting; never blocks.
    pub fn try_next(&self) -> Option<Event> {
        self.0.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        self.0.recv_timeout(timeout).ok()
    }
}

/// Generates the typed methods of [`Handle`]: each sends one request and takes the response variant
/// that answers it.
macro_rules! typed {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $variant:ident($out:ty) = $req:expr; )*) => {
        $(
            $(#[$doc])*
            fn $name(&mut self, $($arg: $ty),*) -> Result<$out, ApiError> {
                match self.call($req)? {
                    Response::$variant(v) => Ok(v),
                    other => Err(ApiError::unexpected(&other)),
                }
            }
        )*
    };
}

/// A node as a front end sees it: in this process, behind a daemon's control socket, or a test fake.
pub trait Handle {
    /// Sends one request and waits for its answer.
    fn call(&mut self, request: Request) -> Result<Response, ApiError>;

    /// Live events from now on: everything a daemon stores, or what an in-process node writes itself.
    fn subscribe(&mut self) -> Result<Subscription, ApiError>;

    /// Ends the handle when the process ends next (a one-shot command): whatever must be written is, and
    /// memory the exit frees anyway may be left to it. The default is a plain drop.
    fn close(self: Box<Self>) {}

    /// Whether a running mesh node answers (a daemon, or one embedded in this program).
    fn is_running(&self) -> bool;

    /// What a front end needs to start: a [`Snapshot`] and the live events from then on. A handle that
    /// can page (a daemon's socket) puts only the first `first` spaces (name order) in the snapshot and
    /// sends the rest as [`Event::Spaces`] pages of `page` in the event stream, so the first screen does
    /// not wait for the whole directory; this default takes the whole snapshot at once.
    fn attach(&mut self, first: usize, page: usize) -> Result<(Snapshot, Subscription), ApiError> {
        let _ = (first, page);
        let events = self.subscribe()?;
        Ok((*self.snapshot()?, events))
    }

    /// [`Handle::audit`], telling `progress` how far it got as it goes (for a daemon's audit, from the
    /// [`Event::AuditProgress`] events it sends its subscribers). This default tells nothing.
    fn audit_watched(
        &mut self,
        progress: &mut dyn FnMut(AuditProgress),
    ) -> Result<Box<AuditReport>, ApiError> {
        let _ = progress;
        self.audit()
    }

    typed! {
        fn status() -> Status(Box<NodeStatus>) = Request::Status;
        fn peers() -> Peers(Vec<PeerInfo>) = Request::Peers;
        fn alliance_create(name: String, threshold: u8) -> AllianceCreated(AllianceCreated) =
            Request::AllianceCreate { name, threshold };
        fn alliance_invite(invitee: PublicKey, space_name: String, peers: Vec<String>) -> Invite(InviteReport) =
            Request::AllianceInvite { invitee, space_name, peers };
        fn alliance_invite_member(peers: Vec<String>) -> MemberInvite(MemberInviteReport) =
            Request::AllianceInviteMember { peers };
        fn alliance_add_device(device: PublicKey) -> Invite(InviteReport) =
            Request::AllianceAddDevice { device };
        fn alliance_remove_device(device: PublicKey, space: Option<SpaceId>) -> RosterChanged(RosterChanged) =
            Request::AllianceRemoveDevice { device, space };
        fn alliance_revoke(space: SpaceId, reason: String, listed: bool) -> RosterChanged(RosterChanged) =
            Request::AllianceRevoke { space, reason, listed };
        fn alliance_replace_device(old: PublicKey, new: PublicKey, space: Option<SpaceId>) -> Replaced(Replaced) =
            Request::AllianceReplaceDevice { old, new, space };
        fn alliance_propose(change: CoordinatorChange) -> Proposal(ProposalReport) =
            Request::AlliancePropose { change };
        fn alliance_approve(proposal: String) -> Proposal(ProposalReport) =
            Request::AllianceApprove { proposal };
        fn alliance_proposals() -> Proposals(Vec<ProposalReport>) = Request::AllianceProposals;
        fn alliance_verify(space: SpaceId, facts: Vec<String>, checked_on: Option<NaiveDate>, note: String) -> Verified(VerifyReport) =
            Request::AllianceVerify { space, facts, checked_on, note };
        fn alliance_join(token: String) -> Joined(Joined) = Request::AllianceJoin { token };
        fn alliance_show() -> Alliance(AllianceView) = Request::AllianceShow;
        fn space_show(space: Option<SpaceId>) -> Listing(Box<Listing>) = Request::SpaceShow { space };
        fn space_edit(edit: ListingEdit) -> Edited(EditReport) = Request::SpaceEdit(edit);
        fn space_document(space: Option<SpaceId>) -> Document(Bytes) = Request::SpaceDocument { space };
        fn drafts(request: DraftRequest) -> Drafts(DraftReport) = Request::DraftListings(request);
        fn report(scope: ReportScope) -> Report(Box<AllianceReport>) = Request::Report(scope);
        fn seats_set(pool: Option<String>, availability: Availability, ttl_s: u32) -> Seats(SeatsReport) =
            Request::SeatsSet { pool, availability, ttl_s };
        fn spaces_list(query: Query) -> Directory(Directory) = Request::SpacesList(query);
        fn set_location(place: Option<PlaceSpec>) -> Location(Option<SavedPlace>) =
            Request::SetLocation { place };
        fn export(format: ExportFormat) -> Exported(Bytes) = Request::Export(format);
        fn import_listings(file: FileBytes) -> Imported(ImportReport) = Request::ImportListings(file);
        fn import_items(items: Vec<SignedItem>) -> ImportedItems(BundleReport) = Request::ImportItems(items);
        fn audit() -> Audit(Box<AuditReport>) = Request::Audit;
        fn audit_export() -> Exported(Bytes) = Request::AuditExport;
        fn snapshot() -> Snapshot(Box<Snapshot>) = Request::Snapshot;
        fn snapshot_head(first: usize) -> SnapshotHead(Box<SnapshotHead>) = Request::SnapshotHead { first };
        fn spaces_page(after: Option<PageCursor>, take: usize) -> SpacesPage(SpacesPage) =
            Request::SpacesPage { after, take };
        fn roster_log() -> RosterLog(Vec<RosterOpAudit>) = Request::RosterLog;
    }
}

impl<H: Handle + ?Sized> Handle for Box<H> {
    fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        (**self).call(request)
    }
    fn subscribe(&mut self) -> Result<Subscription, ApiError> {
        (**self).subscribe()
    }
    fn is_running(&self) -> bool {
        (**self).is_running()
    }
    fn attach(&mut self, first: usize, page: usize) -> Result<(Snapshot, Subscription), ApiError> {
        (**self).attach(first, page)
    }
    fn audit_watched(
        &mut self,
        progress: &mut dyn FnMut(AuditProgress),
    ) -> Result<Box<AuditReport>, ApiError> {
        (**self).audit_watched(progress)
    }
}

/// Answers one request with an opened node: the dispatcher behind every [`Handle`]. `Status` and `Peers`
/// describe a node with no mesh running (a daemon answers those itself); `Subscribe` belongs to the
/// transport. What the request signed or imported is left in [`Node::take_made`] for the caller.
pub fn serve(node: &mut Node, request: Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    Ok(match request {
        Request::Status => Response::Status(Box::new(node.status()?)),
        Request::Peers => Response::Peers(Vec::new()),
        Request::AllianceCreate { name, threshold } => {
            Response::AllianceCreated(node.alliance_create(&name, threshold, now)?)
        }
        Request::AllianceInvite {
            invitee,
            space_name,
            peers,
        } => Response::Invite(node.alliance_invite(invitee, &space_name, peers, now)?),
        Request::AllianceInviteMember { peers } => {
            Response::MemberInvite(node.member_invite(peers)?)
        }
        Request::AllianceAddDevice { device } => Response::Invite(node.add_device(device, now)?),
        Request::AllianceRemoveDevice { device, space } => {
            Response::RosterChanged(node.remove_device(device, space, now)?)
        }
        Request::AllianceRevoke {
            space,
            reason,
            listed,
        } => Response::RosterChanged(node.revoke(space, &reason, listed, now)?),
        Request::AllianceReplaceDevice { old, new, space } => {
            Response::Replaced(node.replace_device(old, new, space, now)?)
        }
        Request::AlliancePropose { change } => Response::Proposal(node.propose(change, now)?),
        Request::AllianceApprove { proposal } => Response::Proposal(node.approve(&proposal)?),
        Request::AllianceProposals => Response::Proposals(node.proposals()?),
        Request::AllianceVerify {
            space,
            facts,
            checked_on,
            note,
        } => Response::Verified(node.verify_facts(&space, &facts, checked_on, &note, now)?),
        Request::AllianceJoin { token } => Response::Joined(node.alliance_join(&token)?),
        Request::AllianceShow => Response::Alliance(node.alliance_show()?),
        Request::SpaceShow { space } => {
            Response::Listing(Box::new(node.space_show(space.as_ref())?))
        }
        Request::SpaceEdit(edit) => Response::Edited(node.space_edit(&edit, now)?),
        Request::SpaceDocument { space } => {
            Response::Document(Bytes(node.space_document(space.as_ref())?))
        }
        Request::DraftListings(request) => Response::Drafts(node.drafts(&request)?),
        Request::Report(scope) => Response::Report(Box::new(node.report(&scope, now)?)),
        Request::SeatsSet {
            pool,
            availability,
            ttl_s,
        } => Response::Seats(node.seats_set(pool.as_deref(), availability, ttl_s, now)?),
        Request::SpacesList(query) => Response::Directory(node.directory(&query, now)?),
        Request::SetLocation { place } => Response::Location(node.set_location(place.as_ref())?),
        Request::Export(format) => Response::Exported(Bytes(node.export(format, now)?)),
        Request::ImportListings(file) => Response::Imported(node.import_listings(&file, now)?),
        Request::ImportItems(items) => Response::ImportedItems(node.import_items(items)?),
        Request::Audit => Response::Audit(Box::new(node.audit(now)?)),
        Request::AuditExport => Response::Exported(Bytes(node.audit_export(now)?)),
        Request::Snapshot => {
            let status = node.status()?;
            Response::Snapshot(Box::new(node.snapshot(status)?))
        }
        Request::SnapshotHead { first } => {
            let status = node.status()?;
            Response::SnapshotHead(Box::new(node.snapshot_head(status, first)?))
        }
        Request::SpacesPage { after, take } => {
            Response::SpacesPage(node.spaces_page(after.as_ref(), take)?)
        }
        Request::RosterLog => Response::RosterLog(node.roster_log()),
        Request::Subscribe | Request::Attach { .. } => {
            return Err(ApiError::protocol(
                "subscribe and attach are answered by the connection, not by the node",
            ))
        }
    })
}

/// A [`Handle`] over a node opened in this process: every command when no daemon runs, and the offline
/// terminal UI. Its subscribers hear of what it writes itself.
#[derive(Debug)]
pub struct Local {
    node: Node,
    subscribers: Vec<mpsc::Sender<Event>>,
}

impl Local {
    pub fn new(mut node: Node) -> Self {
        // What the node made before it had a handle was never for this handle's subscribers.
        node.take_made();
        Self {
            node,
            subscribers: Vec::new(),
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn into_node(self) -> Node {
        self.node
    }
}

impl Handle for Local {
    fn close(self: Box<Self>) {
        self.node.close();
    }

    fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        let result = serve(&mut self.node, request, Utc::now());
        self.tell_subscribers();
        result
    }

    fn subscribe(&mut self) -> Result<Subscription, ApiError> {
        let (tx, sub) = Subscription::channel();
        self.subscribers.push(tx);
        Ok(sub)
    }

    fn is_running(&self) -> bool {
        false
    }

    fn audit_watched(
        &mut self,
        progress: &mut dyn FnMut(AuditProgress),
    ) -> Result<Box<AuditReport>, ApiError> {
        let report = self.node.audit_watched(Utc::now(), progress);
        self.tell_subscribers();
        Ok(Box::new(report?))
    }
}

impl Local {
    /// Tells subscribers of what the node made in the last call.
    fn tell_subscribers(&mut self) {
        let made = self.node.take_made();
        if !self.subscribers.is_empty() {
            for m in made {
                match self.node.event_for(&m.accepted) {
                    Ok(Some(event)) => self.subscribers.retain(|s| s.send(event.clone()).is_ok()),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read back what was just stored"),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use deskmesh_crdt_model::beacon::Availability;

    use super::*;
    use crate::ops::listing::{FieldEdits, ListingBase, ListingEdit};
    use crate::testkit;

    /// Every method a handle overrides reaches it through a box (the CLI holds a `Box<dyn Handle>`): an
    /// audit's progress is heard through one.
    #[test]
    fn a_boxed_handle_passes_audit_progress_through() {
        let mut coordinator = testkit::coordinator();
        let (mut s, _) = testkit::listed_space(&mut coordinator, "Riverside");
        let made = s.take_made().into_iter().map(|m| m.item).collect();
        coordinator.ingest(made, crate::ingest::Source::Mesh, crate::ingest::At::now());
        let mut handle: Box<dyn Handle> = Box::new(Local::new(coordinator));
        let mut seen = Vec::new();
        let report = handle
            .audit_watched(&mut |p| seen.push((p.spaces_done, p.spaces)))
            .unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(seen, vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn bytes_are_base64_in_json_and_raw_in_binary_encodings() {
        let b = Bytes(vec![0, 1, 2, 250]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AAEC+g==\"");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        let raw = postcard::to_allocvec(&b).unwrap();
        assert_eq!(raw, vec![4, 0, 1, 2, 250]);
        assert_eq!(postcard::from_bytes::<Bytes>(&raw).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"not base64!\"").is_err());
    }

    #[test]
    fn requests_and_answers_round_trip_through_json() {
        let requests = [
            Request::Status,
            Request::SeatsSet {
                pool: Some("hot".into()),
                availability: Availability::Count(3),
                ttl_s: 900,
            },
            Request::SpacesList(Query {
                city: Some("Lisbon".into()),
                open_now: true,
                ..Query::default()
            }),
            Request::SpaceEdit(ListingEdit {
                base: None,
                fields: FieldEdits {
                    name: Some("x".into()),
                    ..FieldEdits::default()
                },
            }),
            Request::Export(ExportFormat::Bundle),
        ];
        for r in requests {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r, "{line}");
        }
        let err = serde_json::from_str::<Request>("\"Teleport\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `Teleport`"),
            "{err}"
        );
        let answer: Result<Response, ApiError> =
            Err(ApiError::new(ErrorKind::Refused, "no listing yet"));
        let line = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            serde_json::from_str::<Result<Response, ApiError>>(&line).unwrap(),
            answer
        );
    }

    #[test]
    fn the_local_handle_serves_requests_and_tells_subscribers_what_it_wrote() {
        let mut coordinator = testkit::coordinator();
        let space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let mut handle = Local::new(space);
        let events = handle.subscribe().unwrap();
        assert!(!handle.is_running());
        let status = handle.status().unwrap();
        assert_eq!(status.my_space.as_ref(), Some(&id));
        assert!(status.peer_id.starts_with("12D3KooW"));

        let err = handle.space_show(None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Refused);
        assert!(err.message.contains("no listing"), "{err}");

        let listing = testkit::listing(&id, "Riverside");
        handle
            .space_edit(ListingEdit {
                base: Some(ListingBase::Listing(Box::new(listing))),
                fields: FieldEdits::default(),
            })
            .unwrap();
        match events.try_next() {
            Some(Event::Space(state)) => assert_eq!(state.listing.name, "Riverside"),
            other => panic!("expected the space's new state, got {other:?}"),
        }
        handle.seats_set(None, Availability::Few, 900).unwrap();
        match events.try_next() {
            Some(Event::Seats { space, pools }) => {
                assert_eq!(space, id);
                assert_eq!(pools[0].availability, Availability::Few);
            }
            other => panic!("expected seats, got {other:?}"),
        }
        let snapshot = handle.snapshot().unwrap();
        assert_eq!(snapshot.spaces.len(), 1);
        assert_eq!(snapshot.roster.len(), 2);
        assert!(matches!(
            handle.call(Request::Subscribe),
            Err(ApiError {
                kind: ErrorKind::Protocol,
                ..
            })
        ));
    }

    /// Pages read the directory in name order (folded: "alder" before "Birch"), every space once, and a
    /// space listed between two pages neither repeats one already sent nor hides one still to come.
    #[test]
    fn pages_cover_the_directory_once_in_name_order_while_it_changes() {
        let mut coordinator = testkit::coordinator();
        let names = ["Oak", "alder", "Birch", "Maple", "Oak", "yew", "Cedar"];
        let mut spaces = Vec::new();
        for name in names {
            let (space, _) = testkit::listed_space(&mut coordinator, name);
            spaces.push(space);
        }
        for space in &spaces[..6] {
            testkit::carry(space, &mut coordinator);
        }
        let mut handle = Local::new(coordinator);

        let head = handle.snapshot_head(2).unwrap();
        let first: Vec<String> = head
            .snapshot
            .spaces
            .iter()
            .map(|s| s.listing.name.clone())
            .collect();
        assert_eq!(first, ["alder", "Birch"]);
        assert_eq!(head.snapshot.following, 4);
        // The roster log comes apart (an attach streams it after the pages).
        assert!(head.snapshot.roster.is_empty());
        assert_eq!(handle.roster_log().unwrap().len(), 1 + names.len());
        let mut seen = first;
        let mut after = head.next;
        // "Cedar" sorts after the cursor ("birch") and arrives between pages: the next page has it.
        for batch in spaces[6].bundle().unwrap().batches(usize::MAX) {
            let report = handle.import_items(batch).unwrap();
            assert_eq!(report.changes_new, 1, "{report:?}");
        }
        let mut lefts = Vec::new();
        while let Some(cursor) = after {
            let page = handle.spaces_page(Some(cursor), 2).unwrap();
            assert!(page.spaces.len() <= 2);
            seen.extend(page.spaces.iter().map(|s| s.listing.name.clone()));
            lefts.push(page.left);
            after = page.next;
        }
        assert_eq!(
            seen,
            ["alder", "Birch", "Cedar", "Maple", "Oak", "Oak", "yew"]
        );
        assert_eq!(lefts, [3, 1, 0]);
        // A whole snapshot is the same spaces in the same order, with nothing following.
        let whole = handle.snapshot().unwrap();
        let names: Vec<&str> = whole
            .spaces
            .iter()
            .map(|s| s.listing.name.as_str())
            .collect();
        assert_eq!(names, seen);
        assert_eq!(whole.following, 0);
        assert_eq!(whole.roster, handle.roster_log().unwrap());
        // A cursor past the end gives an empty last page.
        let last = whole.spaces.last().unwrap();
        let page = handle
            .spaces_page(
                Some(PageCursor {
                    name: "yew".into(),
                    space: last.listing.id.clone(),
                }),
                10,
            )
            .unwrap();
        assert!(page.spaces.is_empty() && page.next.is_none() && page.left == 0);
    }
}
