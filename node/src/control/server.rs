//! The daemon's side of the control socket: binds it owner-only, checks each client's handshake, reads
//! bounded request lines and hands each typed request to the daemon's event loop, and streams events to
//! subscribers. It knows nothing of the mesh: requests go out on a channel and answers come back on one.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use deskmesh_core::api::{self, ApiError, Hello, Request, Response, Welcome, PROTOCOL};
use deskmesh_core::view::Event;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};

use super::{MAX_CONNECTIONS, MAX_HELLO, MAX_REQUEST};

/// How long a client may take to say hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// A request waiting for the event loop, with where to send its answer.
pub type Call = (Request, oneshot::Sender<Result<Response, ApiError>>);

/// Binds the socket (removing a stale one) and serves it until the returned task is aborted. Requests go
/// to `calls`; subscribers get the lines sent on `events` (JSON [`Event`]s, serialised once).
pub fn serve(
    path: &Path,
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<Arc<str>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
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
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let calls = calls.clone();
            let events = events.clone();
            let slot = Arc::clone(&slots).try_acquire_owned();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let Ok(_slot) = slot else {
                    let busy = ApiError::unavailable(format!(
                        "the daemon already serves {MAX_CONNECTIONS} control connections; try again in a moment"
                    ));
                    let _ = send(&mut write, &Err::<Response, _>(busy)).await;
                    return;
                };
                let reader = tokio::io::BufReader::new(read);
                if let Err(e) = client(reader, write, calls, events).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
            });
        }
    }))
}

/// Serves one connection: handshake, then requests until the client hangs up or subscribes.
async fn client<R: AsyncBufRead + Unpin>(
    mut reader: R,
    mut write: OwnedWriteHalf,
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<Arc<str>>,
) -> anyhow::Result<()> {
    let hello = match tokio::time::timeout(HELLO_DEADLINE, read_line(&mut reader, MAX_HELLO)).await
    {
        Ok(line) => line?,
        Err(_) => return Ok(()),
    };
    let hello = match hello {
        Line::Eof => return Ok(()),
        Line::TooLong => {
            let e =
                ApiError::protocol("the control handshake is too long; is this a deskmesh client?");
            return send(&mut write, &Err::<Welcome, _>(e)).await;
        }
        Line::Full(bytes) => bytes,
    };
    let binary = match welcome(&hello) {
        Ok(welcome) => {
            let binary = welcome.binary_answers;
            send(&mut write, &Ok::<_, ApiError>(welcome)).await?;
            binary
        }
        Err(e) => return send(&mut write, &Err::<Welcome, _>(e)).await,
    };
    loop {
        let line = match read_line(&mut reader, MAX_REQUEST).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                let e = ApiError::protocol(format!(
                    "the request is longer than {} MiB, the most the control socket reads in one line; send large imports in parts",
                    MAX_REQUEST / (1024 * 1024)
                ));
                // The rest of the line is never read: the connection ends here.
                return send(&mut write, &Err::<Response, _>(e)).await;
            }
            Line::Full(bytes) => bytes,
        };
        let request = match parse_request(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&mut write, &Err::<Response, _>(e)).await?;
                continue;
            }
        };
        if request == Request::Subscribe {
            // Subscribe before answering, so nothing published after the answer is missed.
            let rx = events.subscribe();
            send(&mut write, &Ok::<_, ApiError>(Response::Subscribed)).await?;
            return stream_events(rx, write, None).await;
        }
        if let Request::Attach { first, page } = request {
            // Subscribed before the first screenful is read, like `Subscribe`.
            let rx = events.subscribe();
            let head = match call(&calls, Request::SnapshotHead { first }).await {
                Ok(Response::SnapshotHead(head)) => *head,
                Ok(other) => {
                    return send(
                        &mut write,
                        &Err::<Response, _>(ApiError::unexpected(&other)),
                    )
                    .await
                }
                Err(e) => return send(&mut write, &Err::<Response, _>(e)).await,
            };
            let answer = Response::Snapshot(Box::new(head.snapshot));
            send(&mut write, &Ok::<_, ApiError>(answer)).await?;
            let pages = Pager {
                calls,
                next: match head.next {
                    Some(cursor) => Next::Page(cursor),
                    None => Next::Roster,
                },
                page: page.clamp(1, MAX_PAGE),
            };
            return stream_events(rx, write, Some(pages)).await;
        }
        let answer = call(&calls, request).await;
        let framed = binary && matches!(answer, Ok(Response::Directory(_)));
        write.write_all(&encode_answer(&answer, framed)?).await?;
    }
}

/// An answer's bytes: a binary frame when `framed`, else a JSON line. An answer that does not encode (no
/// such answer is known) becomes an error line that says so, instead of a connection closed without a
/// cause; the connection goes on.
fn encode_answer<T: serde::Serialize>(answer: &T, framed: bool) -> anyhow::Result<Vec<u8>> {
    let encoded = if framed {
        frame(answer)
    } else {
        json_line(answer)
    };
    encoded.or_else(|e| {
        tracing::warn!("cannot encode an answer on the control socket: {e}");
        json_line(&Err::<Response, _>(ApiError::protocol(format!(
            "the node could not encode its answer ({e}); its log has the request"
        ))))
    })
}

/// The most spaces one attach page carries (a page is one event line, read whole by the client).
const MAX_PAGE: usize = 2_000;

/// Hands one request to the event loop; `None` when the loop is gone.
async fn ask(
    calls: &mpsc::Sender<Call>,
    request: Request,
) -> Option<oneshot::Receiver<Result<Response, ApiError>>> {
    let (tx, rx) = oneshot::channel();
    calls.send((request, tx)).await.ok().map(|()| rx)
}

/// Sends one request to the event loop and waits for its answer.
async fn call(calls: &mpsc::Sender<Call>, request: Request) -> Result<Response, ApiError> {
    let gone = || ApiError::unavailable("the daemon is shutting down");
    match ask(calls, request).await {
        Some(rx) => rx.await.unwrap_or_else(|_| Err(gone())),
        None => Err(gone()),
    }
}

/// The rest of an attach, still to be sent.
struct Pager {
    calls: mpsc::Sender<Call>,
    next: Next,
    page: usize,
}

/// What an attach sends next: the page after a cursor, then the roster log.
enum Next {
    Page(deskmesh_core::view::PageCursor),
    Roster,
}

impl Pager {
    fn request(&self) -> Request {
        match &self.next {
            Next::Page(after) => Request::SpacesPage {
                after: Some(after.clone()),
                take: self.page,
            },
            Next::Roster => Request::RosterLog,
        }
    }
}

/// Answers a client's handshake line: a [`Welcome`] when it speaks this [`PROTOCOL`], else one sentence
/// saying which side to upgrade or that the line is not a handshake.
pub fn welcome(line: &[u8]) -> Result<Welcome, ApiError> {
    match serde_json::from_slice::<Hello>(line) {
        Ok(h) if h.protocol == PROTOCOL => Ok(Welcome {
            protocol: PROTOCOL,
            server: api::software(),
            pid: std::process::id(),
            binary_answers: h.binary_answers,
        }),
        Ok(h) => {
            let upgrade = if h.protocol > PROTOCOL {
                "the daemon"
            } else {
                "the client"
            };
            Err(ApiError::protocol(format!(
                "{} speaks control protocol {} and this daemon ({}) speaks {PROTOCOL}; upgrade {upgrade} so both are the same deskmesh version",
                h.client,
                h.protocol,
                api::software()
            )))
        }
        Err(e) => Err(ApiError::protocol(format!(
            "the control handshake is not readable ({e}); is this a deskmesh client?"
        ))),
    }
}

/// Reads one request line, or says in one sentence why it cannot be read.
pub fn parse_request(line: &[u8]) -> Result<Request, ApiError> {
    serde_json::from_slice::<Request>(line).map_err(|e| {
        ApiError::protocol(format!(
            "this daemon ({}) cannot read the request: {e}",
            api::software()
        ))
    })
}

/// Forwards event lines to one subscriber until it hangs up; one that fell behind is told to reload
/// rather than being sent a partial history. With `pages` (an attach), the rest of the directory goes out
/// as [`Event::Spaces`] pages in the same stream, then the roster log as [`Event::Roster`]: each page is
/// read from the node when the one before it is written, and live events written meanwhile keep their
/// order. A page answers from the node's state when the event loop reads it, so an event written after a
/// page is never older than the page, and one written before it is repeated by the page or by a later
/// event.
async fn stream_events(
    mut rx: broadcast::Receiver<Arc<str>>,
    mut write: OwnedWriteHalf,
    mut pages: Option<Pager>,
) -> anyhow::Result<()> {
    let mut asked: Option<oneshot::Receiver<Result<Response, ApiError>>> = None;
    loop {
        if asked.is_none() {
            if let Some(p) = &pages {
                let Some(answer) = ask(&p.calls, p.request()).await else {
                    return Ok(());
                };
                asked = Some(answer);
            }
        }
        let line: Arc<str> = tokio::select! {
            received = rx.recv() => match received {
                Ok(line) => line,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // A reload fetches everything again: the pages would only repeat it.
                    pages = None;
                    asked = None;
                    event_line(&Event::Reload)?
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            answer = page_answer(&mut asked) => {
                asked = None;
                match answer {
                    Ok(Ok(Response::SpacesPage(page))) => {
                        if let Some(p) = pages.as_mut() {
                            p.next = page.next.map_or(Next::Roster, Next::Page);
                        }
                        event_line(&Event::Spaces { spaces: page.spaces, left: page.left })?
                    }
                    Ok(Ok(Response::RosterLog(roster))) => {
                        pages = None;
                        event_line(&Event::Roster(roster))?
                    }
                    Err(_) => {
                        // The event loop dropped the question unanswered: the node is stopping, and the
                        // front end hears of it when the connection closes.
                        tracing::debug!("the node stopped while an attached front end was paging");
                        return Ok(());
                    }
                    other => {
                        // The node could not read a page: the client fetches a whole snapshot instead.
                        tracing::warn!(answer = ?other.map(|r| r.map(|_| ())), "cannot read the next page of the directory for an attached front end");
                        pages = None;
                        event_line(&Event::Reload)?
                    }
                }
            }
        };
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
}

/// The answer to the page asked for; never ready when none is.
async fn page_answer(
    asked: &mut Option<oneshot::Receiver<Result<Response, ApiError>>>,
) -> Result<Result<Response, ApiError>, oneshot::error::RecvError> {
    match asked {
        Some(answer) => answer.await,
        None => std::future::pending().await,
    }
}

/// Serialises an event once for every subscriber.
pub fn event_line(event: &Event) -> anyhow::Result<Arc<str>> {
    Ok(Arc::from(serde_json::to_string(event)?.as_str()))
}

/// `value` as a binary frame ([`super::FRAME`]): the byte, the body's length (u64, little-endian), CBOR.
fn frame<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    let mut out = cbor4ii::serde::to_vec(vec![super::FRAME; 9], value)
        .map_err(|e| anyhow::anyhow!("CBOR: {e}"))?;
    let body = (out.len() - 9) as u64;
    out[1..9].copy_from_slice(&body.to_le_bytes());
    Ok(out)
}

/// `value` as one JSON line.
fn json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(value)?;
    out.push(b'\n');
    Ok(out)
}

async fn send<T: serde::Serialize>(write: &mut OwnedWriteHalf, value: &T) -> anyhow::Result<()> {
    write.write_all(&json_line(value)?).await?;
    Ok(())
}

/// One line read with a bound.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Eof,
    Full(Vec<u8>),
    /// Longer than the bound; what was read so far is dropped.
    TooLong,
}

/// Reads up to the next newline, but never more than `max` bytes: a longer line is reported as such and
/// the rest of it is left unread.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut out = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() {
                Line::Eof
            } else {
                Line::Full(out)
            });
        }
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            if out.len() + pos > max {
                return Ok(Line::TooLong);
            }
            out.extend_from_slice(&buf[..pos]);
            reader.consume(pos + 1);
            return Ok(Line::Full(out));
        }
        let n = buf.len();
        if out.len() + n > max {
            return Ok(Line::TooLong);
        }
        out.extend_from_slice(buf);
        reader.consume(n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};

    /// An answer whose serialisation fails, as no real one is known to.
    struct Unencodable;

    impl serde::Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("a test value that never encodes"))
        }
    }

    #[test]
    fn an_answer_that_does_not_encode_reaches_the_client_as_an_error() {
        for framed in [false, true] {
            let out = encode_answer(&Unencodable, framed).expect("an error line");
            assert_eq!(out.last(), Some(&b'\n'), "one JSON line, framed = {framed}");
            let back: Result<Response, ApiError> = serde_json::from_slice(&out).expect("JSON");
            let e = back.expect_err("an error");
            assert_eq!(e.kind, ErrorKind::Protocol);
            assert!(
                e.message.contains("could not encode its answer")
                    && e.message.contains("never encodes"),
                "{}",
                e.message
            );
        }
        let ok = encode_answer(&Ok::<_, ApiError>(Response::Subscribed), true).expect("frame");
        assert_eq!(ok[0], crate::control::FRAME);
    }

    use deskmesh_core::api::{ErrorKind, Handle};
    use deskmesh_crdt_model::query::Query;

    use super::*;
    use crate::control::Remote;

    /// A control socket whose "daemon" answers `Status` with an error naming it and everything else with
    /// `Subscribed`, and sends one event to subscribers when asked.
    fn serve_fake(
        dir: &Path,
    ) -> (
        tokio::runtime::Runtime,
        std::path::PathBuf,
        broadcast::Sender<Arc<str>>,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let path = dir.join("control.sock");
        let (tx, mut rx) = mpsc::channel::<Call>(4);
        let (events, _) = broadcast::channel(16);
        let p = path.clone();
        let ev = events.clone();
        rt.block_on(async move {
            serve(&p, tx, ev).unwrap();
        });
        rt.spawn(async move {
            while let Some((req, reply)) = rx.recv().await {
                let answer = match req {
                    Request::Status => Err(ApiError::new(ErrorKind::Refused, "fake status")),
                    Request::SpacesList(_) => Ok(Response::Directory(fake_directory())),
                    _ => Ok(Response::Subscribed),
                };
                let _ = reply.send(answer);
            }
        });
        (rt, path, events)
    }

    /// A directory with no rows (the rows' own encoding is checked against the node's real answers in
    /// the core's tests), a point and an instant.
    fn fake_directory() -> deskmesh_core::ops::directory::Directory {
        serde_json::from_value(serde_json::json!({
            "total": 3, "matched": 0, "at": "2026-12-02T10:00:00Z",
            "origin": {"lat": 52.5, "lon": 13.4, "city": "Berlin"}, "spaces": []
        }))
        .unwrap()
    }

    /// A directory answer is a binary frame for a client that asks for one in its hello, and a JSON line
    /// for one that does not (a client from before frames); every other answer stays a line.
    #[test]
    fn directory_answers_are_frames_only_for_clients_that_ask() {
        let dir = tempfile::tempdir().unwrap();
        let (_rt, path, _events) = serve_fake(dir.path());
        let mut remote = Remote::connect(&path).unwrap().expect("a daemon answers");
        assert!(remote.welcome().binary_answers);
        assert_eq!(
            remote.spaces_list(Query::default()).unwrap(),
            fake_directory()
        );
        // The same connection goes on with lines.
        assert_eq!(remote.call(Request::Peers).unwrap(), Response::Subscribed);
        assert_eq!(
            remote.spaces_list(Query::default()).unwrap(),
            fake_directory()
        );

        let list = format!(
            "{}\n",
            serde_json::to_string(&Request::SpacesList(Query::default())).unwrap()
        );
        for asks in [false, true] {
            let (mut s, mut r) = raw(&path);
            let hello = serde_json::to_string(&Hello {
                protocol: PROTOCOL,
                client: "test".into(),
                binary_answers: asks,
            })
            .unwrap();
            s.write_all(format!("{hello}\n").as_bytes()).unwrap();
            assert_eq!(
                answer(&mut r)["Ok"]["binary_answers"].as_bool(),
                asks.then_some(true)
            );
            s.write_all(list.as_bytes()).unwrap();
            if asks {
                let mut head = [0u8; 9];
                r.read_exact(&mut head).unwrap();
                assert_eq!(head[0], crate::control::FRAME);
                let mut body =
                    vec![0u8; u64::from_le_bytes(head[1..].try_into().unwrap()) as usize];
                r.read_exact(&mut body).unwrap();
                let back: Result<Response, ApiError> = cbor4ii::serde::from_slice(&body).unwrap();
                assert_eq!(back, Ok(Response::Directory(fake_directory())));
            } else {
                let back = answer(&mut r);
                assert_eq!(back["Ok"]["Directory"]["total"], 3, "{back}");
            }
        }
    }

    /// A raw connection: the stream to write and a reader of answer lines.
    fn raw(path: &Path) -> (StdUnixStream, BufReader<StdUnixStream>) {
        let s = StdUnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(s.try_clone().unwrap());
        (s, reader)
    }

    fn answer(reader: &mut BufReader<StdUnixStream>) -> serde_json::Value {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn a_client_of_this_version_is_welcomed_and_requests_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (_rt, path, _events) = serve_fake(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut remote = Remote::connect(&path).unwrap().expect("a daemon answers");
        assert_eq!(remote.welcome().protocol, PROTOCOL);
        let err = remote.status().unwrap_err();
        assert_eq!(err.message, "fake status");
        assert_eq!(remote.call(Request::Peers).unwrap(), Response::Subscribed);
        // A second daemon on the same socket is refused while the first answers.
        let (tx, _rx) = mpsc::channel::<Call>(1);
        let (ev, _) = broadcast::channel(1);
        let err = serve(&path, tx, ev).unwrap_err();
        assert!(err.to_string().contains("another deskmesh daemon"), "{err}");
    }

    #[test]
    fn a_newer_client_an_unknown_request_and_a_huge_line_each_get_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let (_rt, path, _events) = serve_fake(dir.path());

        let (mut s, mut r) = raw(&path);
        s.write_all(b"{\"protocol\":99,\"client\":\"deskmesh 9.0\"}\n")
            .unwrap();
        let a = answer(&mut r);
        let msg = a["Err"]["message"].as_str().unwrap();
        assert!(
            msg.contains("protocol 99") && msg.contains("upgrade the daemon"),
            "{msg}"
        );

        let (mut s, mut r) = raw(&path);
        let hello = serde_json::to_string(&Hello {
            protocol: PROTOCOL,
            client: "test".into(),
            binary_answers: false,
        })
        .unwrap();
        s.write_all(format!("{hello}\n").as_bytes()).unwrap();
        assert!(answer(&mut r)["Ok"]["pid"].is_number());
        s.write_all(b"\"Teleport\"\n").unwrap();
        let a = answer(&mut r);
        assert_eq!(a["Err"]["kind"], "Protocol");
        assert!(
            a["Err"]["message"].as_str().unwrap().contains("Teleport"),
            "{a}"
        );
        // The connection still serves the next request.
        s.write_all(b"\"Peers\"\n").unwrap();
        assert_eq!(answer(&mut r)["Ok"], "Subscribed");

        // 100 MB on one line: refused after the bound, without reading the rest.
        let chunk = vec![b'x'; 1024 * 1024];
        let mut sent = 0usize;
        while sent < 100 * 1024 * 1024 {
            if s.write_all(&chunk).is_err() {
                break; // the daemon hung up after answering
            }
            sent += chunk.len();
        }
        let a = answer(&mut r);
        assert!(
            a["Err"]["message"]
                .as_str()
                .unwrap()
                .contains("longer than 16 MiB"),
            "{a}"
        );
        assert!(sent < 100 * 1024 * 1024, "the daemon read the whole line");
        // The daemon still serves others.
        assert!(Remote::connect(&path).unwrap().is_some());
    }

    #[test]
    fn subscribers_get_the_events_published_after_they_subscribed() {
        let dir = tempfile::tempdir().unwrap();
        let (_rt, path, events) = serve_fake(dir.path());
        let mut remote = Remote::connect(&path).unwrap().unwrap();
        let sub = remote.subscribe().unwrap();
        // The subscription is registered before its answer, so this is not lost.
        events.send(event_line(&Event::Reload).unwrap()).unwrap();
        assert_eq!(
            sub.next_timeout(Duration::from_secs(20)),
            Some(Event::Reload)
        );
    }
}
