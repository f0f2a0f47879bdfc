//! The terminal UI attached to a running daemon: `deskmesh tui` while `deskmesh run` holds the store.
//!
//! [`RemoteTui`] implements the UI's `NodeApi` over the control socket. A background thread keeps one
//! subscribed connection open and turns the daemon's pushed lines into [`Update`]s for `poll`, so seats
//! and listings the mesh delivers appear on screen at once. Commands (seats, listing edits) are single
//! requests; the daemon signs, stores and publishes them, and the resulting change comes back as a push
//! like any other. When the daemon stops, the status bar says so and the thread reconnects when a daemon
//! answers again, then sends a fresh snapshot.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_tui::{NodeApi, Snapshot, Status, Update};

use crate::control::{self, Push, Request, Response};

/// How long the reader waits before trying a stopped daemon's socket again.
const RECONNECT: Duration = Duration::from_secs(1);

/// `NodeApi` through the control socket of a running daemon.
#[derive(Debug)]
pub struct RemoteTui {
    socket: PathBuf,
    updates: mpsc::Receiver<Update>,
    /// The status bar as last loaded, so "daemon stopped" keeps the alliance and node names.
    status: Arc<Mutex<Status>>,
}

impl RemoteTui {
    /// Subscribes to the daemon answering on `socket`; `Ok(None)` when no daemon answers.
    pub fn attach(socket: &Path) -> anyhow::Result<Option<Self>> {
        let Some(stream) = subscribe(socket)? else {
            return Ok(None);
        };
        let (tx, updates) = mpsc::channel();
        let path = socket.to_path_buf();
        let status = Arc::new(Mutex::new(Status::default()));
        let shared = Arc::clone(&status);
        std::thread::Builder::new()
            .name("deskmesh-tui-feed".into())
            .spawn(move || feed(path, stream, tx, shared))?;
        Ok(Some(Self {
            socket: socket.to_path_buf(),
            updates,
            status,
        }))
    }

    fn call(&self, req: &Request) -> Result<Response, String> {
        let resp = control::call(&self.socket, req)
            .map_err(|e| format!("{e:#}"))?
            .ok_or_else(|| "the deskmesh daemon is not running any more".to_string())?;
        match resp.error {
            Some(e) => Err(e),
            None => Ok(resp),
        }
    }
}

impl NodeApi for RemoteTui {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        let snapshot = fetch_snapshot(&self.socket)?;
        remember(&self.status, &snapshot.status);
        Ok(snapshot)
    }

    fn poll(&mut self) -> Option<Update> {
        self.updates.try_recv().ok()
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        self.call(&Request::TuiSetSeats {
            pool: pool.to_string(),
            availability,
        })
        .map(drop)
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        // Checked here too, so the form gets the `path: message` form it places beside the field.
        listing.validate().map_err(|e| e.to_string())?;
        self.call(&Request::TuiEditListing(Box::new(listing)))
            .map(drop)
    }
}

fn remember(shared: &Mutex<Status>, status: &Status) {
    // A poisoned lock only means another thread panicked mid-copy; the value is still a Status.
    let mut held = shared.lock().unwrap_or_else(|p| p.into_inner());
    *held = status.clone();
}

fn fetch_snapshot(socket: &Path) -> Result<Snapshot, String> {
    let resp = control::call(socket, &Request::TuiSnapshot)
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| "the deskmesh daemon is not running".to_string())?;
    if let Some(e) = resp.error {
        return Err(e);
    }
    serde_json::from_value(resp.json)
        .map_err(|e| format!("the daemon sent a view this deskmesh cannot read: {e}"))
}

/// Opens a connection and subscribes; the reader is positioned after the daemon's answer.
fn subscribe(socket: &Path) -> anyhow::Result<Option<BufReader<UnixStream>>> {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return Ok(None);
    };
    let mut line = serde_json::to_vec(&Request::TuiSubscribe)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    if reader.read_line(&mut answer)? == 0 {
        anyhow::bail!("the deskmesh daemon closed the control socket without answering");
    }
    let resp: Response = serde_json::from_str(&answer)?;
    if let Some(e) = resp.error {
        anyhow::bail!("the deskmesh daemon refused the subscription: {e}");
    }
    Ok(Some(reader))
}

/// Reads pushed lines until the UI goes away; reconnects while the daemon is down.
fn feed(
    socket: PathBuf,
    mut reader: BufReader<UnixStream>,
    tx: mpsc::Sender<Update>,
    status: Arc<Mutex<Status>>,
) {
    loop {
        let mut line = String::new();
        let update = match reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => match serde_json::from_str::<Push>(&line) {
                Ok(Push::Update(u)) => Some(u),
                Ok(Push::Resync) => fetch_snapshot(&socket)
                    .ok()
                    .map(|s| Update::Snapshot(Box::new(s))),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable line from the daemon");
                    continue;
                }
            },
        };
        if let Some(update) = update {
            match &update {
                Update::Status(s) => remember(&status, s),
                Update::Snapshot(s) => remember(&status, &s.status),
                _ => {}
            }
            if tx.send(update).is_err() {
                return;
            }
            continue;
        }
        // The daemon stopped: say so, then wait for one to answer again.
        let gone = {
            let held = status.lock().unwrap_or_else(|p| p.into_inner());
            Status {
                online: false,
                peers: 0,
                daemon_stopped: true,
                ..held.clone()
            }
        };
        if tx.send(Update::Status(gone)).is_err() {
            return;
        }
        reader = loop {
            std::thread::sleep(RECONNECT);
            if let Ok(Some(r)) = subscribe(&socket) {
                break r;
            }
        };
        match fetch_snapshot(&socket) {
            Ok(s) => {
                if tx.send(Update::Snapshot(Box::new(s))).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload the view after reconnecting"),
        }
    }
}
