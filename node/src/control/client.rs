//! [`Remote`]: the [`Handle`] over a running daemon's control socket. Every command of the command line and
//! the terminal UI uses it while a daemon runs; with none, they open the store in process instead
//! ([`deskmesh_core::api::Local`]) and behave the same.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use deskmesh_core::api::{
    self, ApiError, Handle, Hello, Request, Response, Subscription, Welcome, PROTOCOL,
};
use deskmesh_core::audit::{AuditProgress, AuditReport};
use deskmesh_core::view::{Event, Snapshot};

use super::{FRAME, MAX_HELLO, MAX_REQUEST, MAX_RESPONSE};

/// How long a call may wait for its answer (a large import batch or a snapshot of a big directory). An
/// audit waits without a deadline: it rebuilds every space, minutes for a large alliance, and says how
/// far it got as it goes ([`Handle::audit_watched`]).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How often [`Remote::audit_watched`] looks whether the audit answered, between progress events.
const PROGRESS_POLL: Duration = Duration::from_millis(100);
/// How often a subscription whose daemon stopped tries to reach one again.
const RECONNECT: Duration = Duration::from_secs(1);
/// Most bytes of one event line.
const MAX_EVENT: usize = 64 * 1024 * 1024;

/// A connection to a running daemon.
#[derive(Debug)]
pub struct Remote {
    socket: PathBuf,
    conn: Option<Conn>,
    welcome: Welcome,
}

#[derive(Debug)]
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Remote {
    /// Connects to the daemon answering on `socket`; `Ok(None)` when none answers (no socket, or a stale
    /// one a killed daemon left).
    pub fn connect(socket: &Path) -> Result<Option<Self>, ApiError> {
        Ok(open(socket)?.map(|(conn, welcome)| Self {
            socket: socket.to_path_buf(),
            conn: Some(conn),
            welcome,
        }))
    }

    /// What the daemon said about itself in the handshake.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    fn conn(&mut self) -> Result<&mut Conn, ApiError> {
        if self.conn.is_none() {
            let (conn, welcome) = open(&self.socket)?.ok_or_else(|| {
                ApiError::unavailable("the deskmesh daemon is not running any more")
            })?;
            self.welcome = welcome;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ApiError::unavailable("the deskmesh daemon is not running any more"))
    }
}

impl Handle for Remote {
    fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        let mut line = serde_json::to_vec(&request)
            .map_err(|e| ApiError::protocol(format!("cannot encode the request: {e}")))?;
        if line.len() > MAX_REQUEST {
            return Err(ApiError::protocol(format!(
                "the request is {} MiB, more than the {} MiB the control socket takes in one line",
                line.len() / (1024 * 1024),
                MAX_REQUEST / (1024 * 1024)
            )));
        }
        line.push(b'\n');
        // An audit lifts the connection's deadline for its answer and puts it back after; a failed call
        // drops the connection below anyway.
        let unbounded = matches!(request, Request::Audit | Request::AuditExport);
        let conn = self.conn()?;
        let deadline = |conn: &Conn, timeout| {
            if !unbounded {
                return Ok(());
            }
            conn.reader
                .get_ref()
                .set_read_timeout(timeout)
                .map_err(|e| stopped(&e))
        };
        let answer = deadline(conn, None)
            .and_then(|()| conn.writer.write_all(&line).map_err(|e| stopped(&e)))
            .and_then(|()| read_answer(&mut conn.reader, MAX_RESPONSE))
            .and_then(|answer| deadline(conn, Some(CALL_TIMEOUT)).map(|()| answer));
        match answer {
            Ok(answer) => answer,
            Err(mut e) => {
                // The connection is in an unknown state: the next call opens a new one.
                self.conn = None;
                // A daemon that stopped under a write may have stored it before it could answer.
                if e.kind == api::ErrorKind::Unavailable && request.writes() {
                    e.message.push_str(
                        "; the change may have been stored before it stopped: check before trying again",
                    );
                }
                Err(e)
            }
        }
    }

    fn subscribe(&mut self) -> Result<Subscription, ApiError> {
        let (reader, _) = subscribed(&self.socket, &Request::Subscribe)?
            .ok_or_else(|| ApiError::unavailable("the deskmesh daemon is not running any more"))?;
        self.feed(reader)
    }

    fn is_running(&self) -> bool {
        true
    }

    /// The audit runs in the daemon; how far it got arrives as [`Event::AuditProgress`] on a subscription
    /// of its own, read here while the call waits on another thread.
    fn audit_watched(
        &mut self,
        progress: &mut dyn FnMut(AuditProgress),
    ) -> Result<Box<AuditReport>, ApiError> {
        let Ok(events) = self.subscribe() else {
            return self.audit();
        };
        std::thread::scope(|scope| {
            let call = scope.spawn(|| self.audit());
            while !call.is_finished() {
                if let Some(Event::AuditProgress(p)) = events.next_timeout(PROGRESS_POLL) {
                    progress(p);
                }
            }
            call.join().unwrap_or_else(|_| {
                Err(ApiError::unavailable(
                    "the audit call failed inside this program",
                ))
            })
        })
    }

    fn attach(&mut self, first: usize, page: usize) -> Result<(Snapshot, Subscription), ApiError> {
        let (reader, answer) = subscribed(&self.socket, &Request::Attach { first, page })?
            .ok_or_else(|| ApiError::unavailable("the deskmesh daemon is not running any more"))?;
        let Response::Snapshot(snapshot) = answer else {
            return Err(ApiError::unexpected(&answer));
        };
        Ok((*snapshot, self.feed(reader)?))
    }
}

impl Remote {
    /// Reads the events arriving on `reader` on a thread of their own.
    fn feed(&self, reader: BufReader<UnixStream>) -> Result<Subscription, ApiError> {
        let (tx, sub) = Subscription::channel();
        let socket = self.socket.clone();
        std::thread::Builder::new()
            .name("deskmesh-events".into())
            .spawn(move || feed(socket, reader, tx))
            .map_err(|e| ApiError::unavailable(format!("cannot start the event reader: {e}")))?;
        Ok(sub)
    }
}

/// Connects and shakes hands. `Ok(None)` when nothing listens on the socket.
fn open(socket: &Path) -> Result<Option<(Conn, Welcome)>, ApiError> {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(ApiError::unavailable(format!(
                "cannot reach the daemon's control socket {}: {e}",
                socket.display()
            )))
        }
    };
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| stopped(&e))?;
    let mut writer = stream.try_clone().map_err(|e| stopped(&e))?;
    let mut reader = BufReader::new(stream);
    let hello = Hello {
        protocol: PROTOCOL,
        client: api::software(),
        binary_answers: true,
    };
    let mut line = serde_json::to_vec(&hello).map_err(|e| ApiError::protocol(e.to_string()))?;
    line.push(b'\n');
    // A daemon that is stopping still accepts, then closes the socket under the hello: that is no
    // daemon, as a refused connection is, and the caller opens the store once the daemon lets go of it
    // (a TUI started right after another one quit used to fail here with "connection reset by peer").
    let gone = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    };
    match writer.write_all(&line) {
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(stopped(&e)),
        Ok(()) => {}
    }
    match reader.fill_buf() {
        Ok([]) => return Ok(None),
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(stopped(&e)),
        Ok(_) => {}
    }
    let welcome = read_json::<Result<Welcome, ApiError>>(&mut reader, MAX_HELLO)??;
    Ok(Some((Conn { reader, writer }, welcome)))
}

/// Opens a connection that has subscribed (`request` is `Subscribe` or `Attach`), with the daemon's
/// answer; the reader is positioned after it. `Ok(None)` when nothing listens on the socket.
fn subscribed(
    socket: &Path,
    request: &Request,
) -> Result<Option<(BufReader<UnixStream>, Response)>, ApiError> {
    let Some((mut conn, _)) = open(socket)? else {
        return Ok(None);
    };
    let mut line = serde_json::to_vec(request).map_err(|e| ApiError::protocol(e.to_string()))?;
    line.push(b'\n');
    conn.writer.write_all(&line).map_err(|e| stopped(&e))?;
    // `Subscribed` is a word; an attach's answer is the first screenful of the directory.
    let plain = matches!(request, Request::Subscribe);
    let max = if plain { MAX_HELLO } else { MAX_RESPONSE };
    let answer = read_json::<Result<Response, ApiError>>(&mut conn.reader, max)??;
    if plain && answer != Response::Subscribed {
        return Err(ApiError::unexpected(&answer));
    }
    // Events may be far apart: the subscription waits without a deadline.
    conn.reader
        .get_ref()
        .set_read_timeout(None)
        .map_err(|e| stopped(&e))?;
    Ok(Some((conn.reader, answer)))
}

/// Reads events until the subscriber goes away; while the daemon is down it says so once, then tries
/// again every second and asks for a reload when a daemon answers.
fn feed(socket: PathBuf, mut reader: BufReader<UnixStream>, tx: mpsc::Sender<Event>) {
    loop {
        match read_json::<Event>(&mut reader, MAX_EVENT) {
            Ok(event) => {
                if tx.send(event).is_err() {
                    return;
                }
                continue;
            }
            Err(e) if e.kind == api::ErrorKind::Protocol => {
                tracing::warn!(error = %e, "ignoring an unreadable event from the daemon");
                continue;
            }
            Err(_) => {}
        }
        if tx.send(Event::Disconnected).is_err() {
            return;
        }
        reader = loop {
            std::thread::sleep(RECONNECT);
            if let Ok(Some((r, _))) = subscribed(&socket, &Request::Subscribe) {
                break r;
            }
        };
        if tx.send(Event::Reload).is_err() {
            return;
        }
    }
}

/// Reads one answer to a call: a binary frame ([`FRAME`]) or a JSON line, either at most `max` bytes.
fn read_answer(
    reader: &mut BufReader<UnixStream>,
    max: usize,
) -> Result<Result<Response, ApiError>, ApiError> {
    let first = reader.fill_buf().map_err(|e| stopped(&e))?.first().copied();
    if first != Some(FRAME) {
        return read_json(reader, max);
    }
    let mut head = [0u8; 9];
    reader.read_exact(&mut head).map_err(|e| stopped(&e))?;
    let [_, len @ ..] = head;
    let len = u64::from_le_bytes(len);
    if len > max as u64 {
        return Err(ApiError::protocol(format!(
            "the daemon's answer is longer than {} MiB",
            max / (1024 * 1024)
        )));
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).map_err(|e| stopped(&e))?;
    cbor4ii::serde::from_slice(&body).map_err(|e| {
        ApiError::protocol(format!(
            "the daemon sent an answer this deskmesh ({}) cannot read: {e}",
            api::software()
        ))
    })
}

/// Reads one bounded line and decodes it.
fn read_json<T: serde::de::DeserializeOwned>(
    reader: &mut BufReader<UnixStream>,
    max: usize,
) -> Result<T, ApiError> {
    let mut out = Vec::new();
    loop {
        let buf = reader.fill_buf().map_err(|e| stopped(&e))?;
        if buf.is_empty() {
            return Err(ApiError::unavailable(
                "the deskmesh daemon closed the control socket without answering",
            ));
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(pos) => (&buf[..pos], Some(pos + 1)),
            None => (buf, None),
        };
        if out.len() + chunk.len() > max {
            return Err(ApiError::protocol(format!(
                "the daemon's answer is longer than {} MiB",
                max / (1024 * 1024)
            )));
        }
        out.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    serde_json::from_slice(&out).map_err(|e| {
        ApiError::protocol(format!(
            "the daemon sent an answer this deskmesh ({}) cannot read: {e}",
            api::software()
        ))
    })
}

fn stopped(e: &std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut {
        ApiError::unavailable(format!(
            "the deskmesh daemon did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))
    } else {
        ApiError::unavailable(format!("the deskmesh daemon stopped answering: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A daemon that stops after reading a call and before answering it: a write's error says the change
    /// may have been stored (so the user checks before writing it twice), a read's does not.
    #[test]
    fn a_write_that_loses_its_answer_says_it_may_have_been_stored() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let mut calls = Vec::new();
            for _ in 0..2 {
                let (conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(&conn);
                let mut hello = String::new();
                reader.read_line(&mut hello).unwrap();
                let welcome: Result<Welcome, ApiError> = Ok(Welcome {
                    protocol: PROTOCOL,
                    server: api::software(),
                    pid: 1,
                    binary_answers: false,
                });
                let mut line = serde_json::to_vec(&welcome).unwrap();
                line.push(b'\n');
                (&conn).write_all(&line).unwrap();
                let mut call = String::new();
                reader.read_line(&mut call).unwrap();
                calls.push(call);
                // Stops without answering.
            }
            calls
        });
        let mut remote = Remote::connect(&socket).unwrap().unwrap();
        let write = remote
            .call(Request::SetLocation { place: None })
            .unwrap_err();
        assert_eq!(write.kind, api::ErrorKind::Unavailable);
        assert!(
            write.message.contains("may have been stored"),
            "{}",
            write.message
        );
        let read = remote.call(Request::Status).unwrap_err();
        assert_eq!(read.kind, api::ErrorKind::Unavailable);
        assert!(!read.message.contains("stored"), "{}", read.message);
        assert_eq!(server.join().unwrap().len(), 2);
    }

    /// A daemon closing its control socket under a client's hello (it is stopping) counts as no daemon,
    /// not as an error: the client then opens the store itself once it is free.
    #[test]
    fn a_daemon_that_closes_under_the_hello_is_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            // Accepts twice and hangs up at once: once without reading, once after reading the hello.
            let (first, _) = listener.accept().unwrap();
            drop(first);
            let (second, _) = listener.accept().unwrap();
            let mut hello = String::new();
            BufReader::new(&second).read_line(&mut hello).unwrap();
            second.shutdown(std::net::Shutdown::Both).unwrap();
            hello
        });
        assert!(Remote::connect(&socket).unwrap().is_none());
        assert!(Remote::connect(&socket).unwrap().is_none());
        assert!(server.join().unwrap().contains("protocol"));
        // Nothing listening at all is the same answer.
        drop(std::fs::remove_file(&socket));
        assert!(Remote::connect(&socket).unwrap().is_none());
    }
}
