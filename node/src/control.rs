//! The control socket `<home>/control.sock`: while `deskmesh run` holds the store, the other commands
//! (`seats set`, `space edit`, `spaces list`, `audit`, `status`, `peers`) are served by the daemon through it, so an
//! edit is published at once. The protocol is one JSON [`Request`] per line, answered by one JSON
//! [`Response`] line. The socket is owner-only (mode 0600); a client that cannot connect falls back to
//! opening the store itself.
//!
//! `deskmesh tui` attached to a daemon uses the `Tui*` requests: a snapshot of the view model, its two
//! commands, and [`Request::TuiSubscribe`], after whose answer the connection stays open and carries one
//! [`Push`] line per live change (a listing, seats, the roster, the status bar) until the client hangs up.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cli::{EditArgs, ListArgs};

/// Most bytes the daemon reads from one control connection; requests are small.
const MAX_LINE: usize = 1024 * 1024;

/// A command sent to the daemon.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    SeatsSet {
        pool: Option<String>,
        value: String,
        ttl: u32,
    },
    SpaceEdit(EditArgs),
    SpacesList(ListArgs),
    Audit,
    Status,
    Peers,
    /// A member token; the daemon adds its own listen addresses as peers to dial.
    InviteMember {
        peers: Vec<String>,
    },
    /// The TUI's whole view model.
    TuiSnapshot,
    /// Stream live changes on this connection after the answer.
    TuiSubscribe,
    TuiSetSeats {
        pool: String,
        availability: deskmesh_crdt_model::beacon::Availability,
    },
    TuiEditListing(Box<deskmesh_crdt_model::listing::Listing>),
}

/// One line pushed to a subscribed TUI.
#[derive(Debug, Serialize, Deserialize)]
pub enum Push {
    Update(deskmesh_tui::Update),
    /// The client fell behind and changes were dropped: it should fetch a fresh snapshot.
    Resync,
}

/// Changes waiting per subscriber before it is told to resync instead.
pub const PUSH_BACKLOG: usize = 1024;

/// The daemon's answer: the command's result both as JSON and as its human text, or an error sentence.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub error: Option<String>,
    pub json: serde_json::Value,
    pub text: String,
}

impl Response {
    pub fn from_result<T: Serialize + std::fmt::Display>(r: anyhow::Result<T>) -> Self {
        let r = r.and_then(|v| Ok((serde_json::to_value(&v)?, v.to_string())));
        match r {
            Ok((json, text)) => Self {
                error: None,
                json,
                text,
            },
            Err(e) => Self {
                error: Some(format!("{e:#}")),
                json: serde_json::Value::Null,
                text: String::new(),
            },
        }
    }
}

/// A request waiting for the event loop, with where to send its answer.
pub type Call = (Request, oneshot::Sender<Response>);

/// Sends `req` to the daemon of the home whose socket is `path`. `Ok(None)` means no daemon is running.
pub fn call(path: &Path, req: &Request) -> anyhow::Result<Option<Response>> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("cannot send the command to the running daemon")?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .context("the running daemon did not answer")?;
    if answer.is_empty() {
        bail!("the running daemon closed the control socket without answering");
    }
    Ok(Some(serde_json::from_str(&answer).context(
        "the running daemon sent an answer this deskmesh cannot read",
    )?))
}

/// Binds the socket (removing a stale one) and forwards each request to `calls`; subscribers get the
/// lines sent on `pushes` (JSON [`Push`] lines, serialised once by the daemon).
pub fn serve(
    path: &Path,
    calls: mpsc::Sender<Call>,
    pushes: broadcast::Sender<std::sync::Arc<str>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "another deskmesh daemon answers on {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let calls = calls.clone();
            let pushes = pushes.clone();
            tokio::spawn(async move {
                if let Err(e) = client(stream, calls, pushes).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
            });
        }
    }))
}

async fn client(
    stream: tokio::net::UnixStream,
    calls: mpsc::Sender<Call>,
    pushes: broadcast::Sender<std::sync::Arc<str>>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read)
        .take(MAX_LINE as u64)
        .lines();
    while let Some(line) = lines.next_line().await? {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::TuiSubscribe) => {
                // Subscribe before answering, so nothing published after the answer is missed.
                let rx = pushes.subscribe();
                let mut out = serde_json::to_vec(&Response::from_result(Ok("subscribed")))?;
                out.push(b'\n');
                write.write_all(&out).await?;
                return stream_pushes(rx, write).await;
            }
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                calls
                    .send((req, tx))
                    .await
                    .context("the daemon is shutting down")?;
                rx.await.context("the daemon is shutting down")?
            }
            Err(e) => Response::from_result::<String>(Err(anyhow::anyhow!(
                "the control request is not readable: {e}"
            ))),
        };
        let mut out = serde_json::to_vec(&response)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

/// Forwards pushed lines to one subscriber until it hangs up; a subscriber that fell behind is told to
/// resync rather than being sent a partial history.
async fn stream_pushes(
    mut rx: broadcast::Receiver<std::sync::Arc<str>>,
    mut write: tokio::net::unix::OwnedWriteHalf,
) -> anyhow::Result<()> {
    loop {
        let line: std::sync::Arc<str> = match rx.recv().await {
            Ok(line) => line,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                std::sync::Arc::from(serde_json::to_string(&Push::Resync)?.as_str())
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
}

/// Serialises a push once for every subscriber.
pub fn push_line(push: &Push) -> anyhow::Result<std::sync::Arc<str>> {
    Ok(std::sync::Arc::from(serde_json::to_string(push)?.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_requests_round_trip_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("control.sock");
        // A socket file nobody listens on, as a killed daemon leaves it.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind stale"));
        assert!(call(&path, &Request::Status).expect("call").is_none());

        let (tx, mut rx) = mpsc::channel::<Call>(4);
        let (push_tx, _) = broadcast::channel(4);
        let server = serve(&path, tx, push_tx.clone()).expect("serve");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        tokio::spawn(async move {
            while let Some((req, reply)) = rx.recv().await {
                let answer = match req {
                    Request::Status => Response::from_result(Ok("up".to_string())),
                    _ => Response::from_result::<String>(Err(anyhow::anyhow!("not here"))),
                };
                let _ = reply.send(answer);
            }
        });
        let p = path.clone();
        let (ok, err) = tokio::task::spawn_blocking(move || {
            (
                call(&p, &Request::Status).expect("status"),
                call(&p, &Request::Peers).expect("peers"),
            )
        })
        .await
        .expect("join");
        let ok = ok.expect("daemon answered");
        assert_eq!(ok.text, "up");
        assert_eq!(ok.json, serde_json::json!("up"));
        assert_eq!(
            err.expect("daemon answered").error.as_deref(),
            Some("not here")
        );
        // A second daemon on the same socket is refused while the first answers.
        let (tx2, _rx2) = mpsc::channel::<Call>(1);
        assert!(serve(&path, tx2, push_tx).is_err());
        server.abort();
    }
}
