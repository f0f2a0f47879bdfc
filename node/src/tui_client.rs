//! The terminal UI's [`NodeApi`] over any [`Handle`]: the node in this process (offline) or a running
//! daemon (live). It maps the core's views and events into the UI's view model, so the UI needs nothing of
//! the node, and the daemon nothing of the UI.
//!
//! It attaches with [`Handle::attach`]: to a daemon, the first snapshot holds only the first screenful of
//! spaces ([`FIRST_SCREEN`]) and the rest arrive as pages among the events, so the first screen does not
//! wait for a directory of 10,000. Events arrive on the handle's subscription. A reload (after a roster
//! change, or when the subscriber fell behind) fetches a whole snapshot, which takes a while for a large
//! directory, so when the caller gives a way to fetch one elsewhere ([`Reloader`]) it runs on a thread of
//! its own and `poll` never blocks.

use std::collections::VecDeque;
use std::sync::mpsc;

use chrono::{DateTime, TimeZone, Utc};
use deskmesh_core::api::{ApiError, Handle, Subscription};
use deskmesh_core::audit::Finding;
use deskmesh_core::ops::listing::{ListingBase, ListingEdit};
use deskmesh_core::ops::seats::DEFAULT_TTL_S;
use deskmesh_core::ops::trust::FactView;
use deskmesh_core::view::{self, Event, NodeStatus};
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_tui::{
    FindingView, NodeApi, PoolStatus, RejectedView, RosterEntryView, SignerView, Snapshot,
    SpaceView, Status, Update,
};

/// How many spaces (in name order) the first snapshot of an attach carries: more than any terminal shows
/// rows, so the first screen is whole; the rest follow in pages of [`PAGE`].
pub const FIRST_SCREEN: usize = 200;
/// Spaces per page while the directory loads after the first screen.
pub const PAGE: usize = 500;

/// Fetches a fresh snapshot away from the UI thread (over its own connection to the daemon).
pub type Reloader = Box<dyn FnMut() -> Result<view::Snapshot, ApiError> + Send>;

/// [`NodeApi`] over a [`Handle`].
pub struct TuiClient<H: Handle> {
    handle: H,
    /// The attach's first snapshot, until the UI asks for it.
    first: Option<view::Snapshot>,
    events: Subscription,
    /// Updates made here, waiting for `poll`.
    pending: VecDeque<Update>,
    /// The status bar as last known, so "daemon stopped" keeps the alliance and node names.
    status: Status,
    reloads: Option<Reloads>,
}

impl<H: Handle> std::fmt::Debug for TuiClient<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TuiClient")
            .field("running", &self.handle.is_running())
            .finish_non_exhaustive()
    }
}

/// A thread that fetches snapshots on request.
struct Reloads {
    ask: mpsc::Sender<()>,
    done: mpsc::Receiver<Result<view::Snapshot, ApiError>>,
}

impl<H: Handle> TuiClient<H> {
    /// Attaches to the handle (the first screenful of the directory, then its events and the rest in
    /// pages); `reloader`, when given, fetches reloads on a thread.
    pub fn new(mut handle: H, reloader: Option<Reloader>) -> Result<Self, ApiError> {
        let (first, events) = handle.attach(FIRST_SCREEN, PAGE)?;
        let reloads = reloader.map(|mut fetch| {
            let (ask, asked) = mpsc::channel::<()>();
            let (tell, done) = mpsc::channel();
            std::thread::Builder::new()
                .name("deskmesh-tui-reload".into())
                .spawn(move || {
                    while asked.recv().is_ok() {
                        // Requests that piled up while fetching are answered by one snapshot.
                        while asked.try_recv().is_ok() {}
                        if tell.send(fetch()).is_err() {
                            return;
                        }
                    }
                })
                .map(|_| Reloads { ask, done })
        });
        let reloads = match reloads {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot start the reload thread; reloads will block the UI");
                None
            }
            None => None,
        };
        Ok(Self {
            handle,
            first: Some(first),
            events,
            pending: VecDeque::new(),
            status: Status::default(),
            reloads,
        })
    }

    fn reload(&mut self) -> Option<Update> {
        match &self.reloads {
            Some(r) => {
                let _ = r.ask.send(());
                None
            }
            None => match self.handle.snapshot() {
                Ok(s) => Some(self.snapshot_update(*s)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the view");
                    None
                }
            },
        }
    }

    fn snapshot_update(&mut self, s: view::Snapshot) -> Update {
        let s = snapshot_of(s);
        self.status = s.status.clone();
        Update::Snapshot(Box::new(s))
    }
}

impl<H: Handle> NodeApi for TuiClient<H> {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        let s = match self.first.take() {
            Some(first) => first,
            None => *self.handle.snapshot().map_err(|e| e.message)?,
        };
        let s = snapshot_of(s);
        self.status = s.status.clone();
        Ok(s)
    }

    fn poll(&mut self) -> Option<Update> {
        if let Some(u) = self.pending.pop_front() {
            return Some(u);
        }
        if let Some(done) = self.reloads.as_ref().and_then(|r| r.done.try_recv().ok()) {
            match done {
                Ok(s) => return Some(self.snapshot_update(s)),
                Err(e) => tracing::warn!(error = %e, "cannot reload the view"),
            }
        }
        loop {
            let update = match self.events.try_next()? {
                Event::Space(s) => Some(Update::Space(Box::new(space_view(*s)))),
                Event::Roster(roster) => Some(Update::Roster(roster_entries(roster))),
                Event::Spaces { spaces, left } => Some(Update::Spaces {
                    spaces: spaces.into_iter().map(space_view).collect(),
                    left,
                }),
                Event::Seats { space, pools } => Some(Update::Seats {
                    space,
                    pools: pools.iter().map(pool_status).collect(),
                }),
                Event::Status(s) => {
                    self.status = status_of(&s, false);
                    Some(Update::Status(self.status.clone()))
                }
                Event::Reload => self.reload(),
                Event::Findings(f) => Some(Update::Findings(f.iter().map(finding_view).collect())),
                Event::AuditProgress(p) => Some(Update::AuditProgress {
                    done: p.spaces_done,
                    spaces: p.spaces,
                }),
                Event::Disconnected => {
                    self.status = Status {
                        online: false,
                        peers: 0,
                        relayed_peers: 0,
                        daemon_stopped: true,
                        ..self.status.clone()
                    };
                    Some(Update::Status(self.status.clone()))
                }
            };
            if update.is_some() {
                return update;
            }
        }
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        self.handle
            .seats_set(Some(pool.to_string()), availability, DEFAULT_TTL_S)
            .map(drop)
            .map_err(|e| e.message)
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        // Checked here first, so the form gets the `path: message` form it places beside the field.
        listing.validate().map_err(|e| e.to_string())?;
        self.handle
            .space_edit(ListingEdit {
                base: Some(ListingBase::Listing(Box::new(listing))),
                fields: Default::default(),
            })
            .map(drop)
            .map_err(|e| e.message)
    }
}

/// The status bar of a node status; `stopped` when its daemon stopped answering.
pub fn status_of(s: &NodeStatus, stopped: bool) -> Status {
    Status {
        alliance: s.alliance_name.clone(),
        node_name: s.node_name.clone(),
        my_space: s.my_space.clone(),
        my_space_name: s.my_space_name.clone(),
        home: s.location.as_ref().map(|p| (p.lat, p.lon)),
        peers: s.peers.len(),
        relayed_peers: s.peers.iter().filter(|p| p.relayed).count(),
        last_sync: s.last_sync,
        online: !s.peers.is_empty(),
        attached_to_daemon: s.running,
        daemon_stopped: stopped,
        starting: false,
        standing: s
            .standing
            .as_ref()
            .map(|st| match (&st.reason, st.revoked) {
                (Some(reason), true) => format!("{} REVOKED: {reason}", st.space_name),
                (None, true) => format!("{} REVOKED by the alliance", st.space_name),
                (_, false) => format!("this device was REMOVED from {}", st.space_name),
            }),
    }
}

/// One finding as the audit view lists it: the same item the CLI prints.
pub fn finding_view(f: &Finding) -> FindingView {
    FindingView {
        status: f.status.label().to_string(),
        kind: f.kind.clone(),
        space: f.space.as_ref().map(|id| match &f.space_name {
            Some(n) => format!("{n:?} ({id})"),
            None => id.to_string(),
        }),
        item: f.item.clone(),
        author: f.author.as_ref().map(|a| a.label()),
        from: f.origin(),
        reason: f.reason.clone(),
    }
}

fn fact_view(f: FactView) -> deskmesh_tui::FactView {
    deskmesh_tui::FactView {
        verified: f.is_verified(),
        by: f.by.label(),
        fact: f.fact,
        checked_on: f.checked_on,
        note: f.note,
    }
}

fn pool_status(p: &view::PoolState) -> PoolStatus {
    PoolStatus {
        pool: p.pool.clone(),
        availability: p.availability,
        is_open: p.is_open,
        // Out-of-range times (far beyond any real clock) read as the epoch: shown as unknown.
        published_at: DateTime::from_timestamp_millis(p.published_at_ms).unwrap_or_default(),
        ttl_s: p.ttl_s,
    }
}

/// One space as the UI shows it.
pub fn space_view(s: view::SpaceState) -> SpaceView {
    let mut v = SpaceView::new(s.listing);
    v.pools = s.pools.iter().map(pool_status).collect();
    v.signers = s
        .signers
        .into_iter()
        .map(|s| SignerView {
            key: s.key,
            changes: s.changes,
            authorised_by: s.authorised_by,
            removed_by: s.removed_by,
        })
        .collect();
    v.rejected = s
        .rejected
        .into_iter()
        .map(|r| RejectedView {
            change: r.item.unwrap_or_default(),
            author: r.author.map(|a| a.key),
            reason: match r.status {
                deskmesh_core::audit::FindingStatus::Pending => format!("waiting: {}", r.reason),
                _ => r.reason,
            },
        })
        .collect();
    v.revoked = s.revoked.map(|r| r.reason);
    v.facts = s.facts.into_iter().map(fact_view).collect();
    v
}

/// The UI's whole view model.
pub fn snapshot_of(s: view::Snapshot) -> Snapshot {
    Snapshot {
        status: status_of(&s.status, false),
        findings: s.findings.iter().map(finding_view).collect(),
        following: s.following,
        spaces: s.spaces.into_iter().map(space_view).collect(),
        roster: roster_entries(s.roster),
    }
}

fn roster_entries(roster: Vec<deskmesh_core::audit::RosterOpAudit>) -> Vec<RosterEntryView> {
    roster
        .into_iter()
        .map(|op| RosterEntryView {
            op: op.op,
            kind: op.kind,
            summary: op.summary,
            signed_by: op.signed_by,
            at: Utc.timestamp_millis_opt(op.created_at_ms).single(),
        })
        .collect()
}

/// The UI on a node it starts itself: the store's first screen ([`deskmesh_core::Node::first_screen`])
/// from the launch on, then, once the node answers, its attach ([`TuiClient`]), whose snapshot replaces
/// the preview. Starting the node (libp2p, the sync engine's item set, the directory in memory) takes
/// longer than drawing, so the member reads the directory meanwhile; edits are refused until it answers.
pub struct Starting<H: Handle> {
    /// The preview, until the UI asks for it.
    first: Option<Snapshot>,
    state: Start<H>,
    /// Where the started node logs, for a start that ends without a word.
    log: std::path::PathBuf,
}

enum Start<H: Handle> {
    /// The node is starting; its attach (or why it failed, in one sentence) arrives here.
    Waiting(mpsc::Receiver<Result<TuiClient<H>, String>>),
    Live(Box<TuiClient<H>>),
    /// The node could not start: why, until the UI asks ([`NodeApi::failed`]).
    Failed(Option<String>),
}

impl<H: Handle> std::fmt::Debug for Starting<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            Start::Waiting(_) => "waiting",
            Start::Live(_) => "live",
            Start::Failed(_) => "failed",
        };
        f.debug_struct("Starting")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// What an edit gets while the node starts.
const STILL_STARTING: &str = "the node is still starting; try again in a moment";

impl<H: Handle> Starting<H> {
    /// `preview` (a node's status and first screen read from the store) until `started` brings the
    /// attached node, or why it could not start.
    /// `log` is where the node logs.
    pub fn new(
        preview: view::Snapshot,
        started: mpsc::Receiver<Result<TuiClient<H>, String>>,
        log: &std::path::Path,
    ) -> Self {
        let mut first = snapshot_of(preview);
        first.status.starting = true;
        Self {
            first: Some(first),
            state: Start::Waiting(started),
            log: log.to_path_buf(),
        }
    }

    /// Whether the started node is attached.
    pub fn is_live(&self) -> bool {
        matches!(self.state, Start::Live(_))
    }

    fn live(&mut self) -> Result<&mut TuiClient<H>, String> {
        match &mut self.state {
            Start::Live(client) => Ok(client),
            Start::Waiting(_) => Err(STILL_STARTING.into()),
            Start::Failed(_) => Err("the node could not start".into()),
        }
    }
}

impl<H: Handle> NodeApi for Starting<H> {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        self.live()?.snapshot()
    }

    fn poll(&mut self) -> Option<Update> {
        let started = match &mut self.state {
            Start::Live(client) => return client.poll(),
            Start::Failed(_) => return None,
            Start::Waiting(started) => match started.try_recv() {
                Ok(started) => started,
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => Err(format!(
                    "the node stopped while starting; see {}",
                    self.log.display()
                )),
            },
        };
        let attached = started.and_then(|mut client| {
            let first = client.snapshot()?;
            Ok((client, first))
        });
        match attached {
            Ok((client, first)) => {
                self.state = Start::Live(Box::new(client));
                Some(Update::Snapshot(Box::new(first)))
            }
            Err(why) => {
                self.state = Start::Failed(Some(why));
                None
            }
        }
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        self.live()?.set_seats(pool, availability)
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        self.live()?.edit_listing(listing)
    }

    fn failed(&mut self) -> Option<String> {
        match &mut self.state {
            Start::Live(client) => client.failed(),
            Start::Failed(why) => why.take(),
            Start::Waiting(_) => None,
        }
    }
}

/// The UI attached to the daemon answering on `socket`, with reloads fetched over a connection of their
/// own; `Ok(None)` when no daemon answers.
pub fn attach(
    socket: &std::path::Path,
) -> Result<Option<TuiClient<crate::control::Remote>>, ApiError> {
    let Some(remote) = crate::control::Remote::connect(socket)? else {
        return Ok(None);
    };
    let path = socket.to_path_buf();
    let reloader: Reloader = Box::new(move || {
        let mut fresh = crate::control::Remote::connect(&path)?
            .ok_or_else(|| ApiError::unavailable("the deskmesh daemon is not running"))?;
        fresh.snapshot().map(|s| *s)
    });
    TuiClient::new(remote, Some(reloader)).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use deskmesh_core::api::{Handle, Local};
    use deskmesh_core::home::NodeConfig;
    use deskmesh_core::ingest::{ItemKind, SignedItem};
    use deskmesh_core::Node;
    use deskmesh_keys::DeviceKey;
    use deskmesh_store::MemoryStore;

    use super::*;

    /// The TUI's audit view and `deskmesh audit` list the same findings, in the same number and order
    /// (the TUI once showed "Rejected changes (0)" where the audit listed a refused change).
    #[test]
    fn the_tui_shows_the_audits_findings_item_for_item() {
        let mut handle = coordinator("Audit Alliance");
        let report = handle
            .import_items(vec![
                SignedItem::new(ItemKind::ListingChange, vec![1; 40]),
                SignedItem::new(ItemKind::Verification, vec![2; 40]),
            ])
            .unwrap();
        assert_eq!(report.refused.len(), 2);
        let audit = handle.audit().unwrap();
        let mut client = TuiClient::new(handle, None).unwrap();
        let snapshot = client.snapshot().unwrap();
        assert_eq!(snapshot.findings.len(), audit.findings.len());
        for (shown, found) in snapshot.findings.iter().zip(&audit.findings) {
            assert_eq!(*shown, finding_view(found));
            assert_eq!(shown.status, "refused");
            assert!(shown.from.as_deref() == Some("bundle"), "{shown:?}");
        }
    }

    /// An in-process coordinator of a new alliance named `alliance`.
    fn coordinator(alliance: &str) -> Local {
        let config = NodeConfig {
            name: "coordinator".into(),
            listen_port: 0,
            location: None,
        };
        let node =
            Node::with_store(DeviceKey::generate(), config, Arc::new(MemoryStore::new())).unwrap();
        let mut handle = Local::new(node);
        handle.alliance_create(alliance.into(), 1).unwrap();
        handle
    }

    /// A preview of no spaces with `following` still to come.
    fn preview(status: NodeStatus, following: usize) -> view::Snapshot {
        view::Snapshot {
            status,
            spaces: Vec::new(),
            roster: Vec::new(),
            findings: Vec::new(),
            following,
        }
    }

    /// A TUI that starts its node shows the preview at once, says it is starting, refuses edits until the
    /// node answers, then takes the attach's snapshot in place of the preview and goes on live.
    #[test]
    fn a_starting_node_shows_the_preview_then_the_attach() {
        let mut handle = coordinator("Start Alliance");
        let mut shown = preview(*handle.status().unwrap(), 7);
        shown.status.node_name = "preview".into();
        let (tell, started) = mpsc::channel();
        let mut ui = Starting::new(shown, started, std::path::Path::new("tui.log"));
        let first = ui.snapshot().unwrap();
        assert!(first.status.starting && !first.status.attached_to_daemon);
        assert_eq!(
            (first.status.node_name.as_str(), first.following),
            ("preview", 7)
        );
        assert!(ui.poll().is_none());
        assert_eq!(ui.failed(), None);
        assert_eq!(
            ui.set_seats("desks", Availability::Few),
            Err(STILL_STARTING.to_string())
        );
        assert!(!ui.is_live());

        tell.send(Ok(TuiClient::new(handle, None).unwrap()))
            .unwrap();
        let Some(Update::Snapshot(live)) = ui.poll() else {
            panic!("the attach did not replace the preview");
        };
        assert!(ui.is_live());
        assert!(!live.status.starting);
        assert_eq!(live.status.node_name, "coordinator");
        assert_eq!(live.following, 0);
        assert_eq!(ui.failed(), None);
        // Live, edits reach the node: this one has no space of its own, and says so.
        let refused = ui.set_seats("desks", Availability::Few).unwrap_err();
        assert_ne!(refused, STILL_STARTING);
    }

    /// A node that fails to start closes the TUI with its sentence, once; a start that ends without an
    /// answer says so too.
    #[test]
    fn a_node_that_cannot_start_ends_the_tui_with_why() {
        let mut handle = coordinator("Start Alliance");
        let status = *handle.status().unwrap();
        let (tell, started) = mpsc::channel::<Result<TuiClient<Local>, String>>();
        let mut ui = Starting::new(
            preview(status.clone(), 0),
            started,
            std::path::Path::new("tui.log"),
        );
        ui.snapshot().unwrap();
        tell.send(Err("the store is locked by another program".into()))
            .unwrap();
        assert!(ui.poll().is_none());
        assert_eq!(
            ui.failed().as_deref(),
            Some("the store is locked by another program")
        );
        assert_eq!(ui.failed(), None);
        assert!(ui.set_seats("desks", Availability::Few).is_err());

        let (tell, started) = mpsc::channel::<Result<TuiClient<Local>, String>>();
        let mut ui = Starting::new(preview(status, 0), started, std::path::Path::new("tui.log"));
        drop(tell);
        assert!(ui.poll().is_none());
        assert!(ui.failed().unwrap().contains("stopped while starting"));
    }
}
