//! The pretty JSON of a whole directory, its rows serialised on every core.
//!
//! `spaces list --json` over 10,000 spaces is 15 MB of pretty JSON, and serde_json writes it on one
//! thread. Here the rows are cut into chunks that worker threads serialise, each chunk straight at the
//! depth it has in the whole document ([`Indented`]: the same bytes serde_json's pretty printer gives, so
//! nothing is re-indented), while the calling thread writes the finished chunks in order. A few buffers go
//! round between the two, so memory stays at a few chunks whatever the directory's size. The output is
//! byte for byte that of `serde_json::to_writer_pretty` followed by a newline (a test compares them).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use deskmesh_core::ops::directory::Directory;
use serde::Serialize;

/// Rows per chunk: about 100 KB of JSON, enough that handing chunks over costs nothing beside them.
const CHUNK: usize = 64;
/// Below this many rows the calling thread serialises them alone.
const MIN_PARALLEL: usize = 4 * CHUNK;

/// serde_json's pretty formatter (two-space indent), started `depth` levels deep, for a value that sits
/// inside a larger document.
struct Indented {
    depth: usize,
    has_value: bool,
}

impl Indented {
    fn newline<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        indent(w, self.depth)
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            indent(w, self.depth)?;
        }
        w.write_all(bracket)
    }
}

fn indent<W: ?Sized + Write>(w: &mut W, depth: usize) -> io::Result<()> {
    const SPACES: &[u8] = &[b' '; 64];
    let mut n = 2 * depth;
    while n > 0 {
        let k = n.min(SPACES.len());
        w.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.newline(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.newline(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `directory` as pretty JSON and a newline, its rows serialised on up to `threads` threads. The
/// rows are taken out while it writes and put back after.
pub fn write_directory<W: Write>(
    out: &mut W,
    directory: &mut Directory,
    threads: usize,
) -> io::Result<()> {
    let rows = std::mem::take(&mut directory.spaces);
    let written = write_with_rows(out, directory, &rows, threads);
    directory.spaces = rows;
    written
}

fn write_with_rows<W: Write>(
    out: &mut W,
    head: &Directory,
    rows: &[impl Serialize + Sync],
    threads: usize,
) -> io::Result<()> {
    // The rows are the document's last field: its pretty form ends with them as an empty array.
    let head = serde_json::to_vec_pretty(head)?;
    let head = head
        .strip_suffix(b"[]\n}")
        .ok_or_else(|| io::Error::other("the directory's rows are not its last field"))?;
    out.write_all(head)?;
    if rows.is_empty() {
        return out.write_all(b"[]\n}\n");
    }
    out.write_all(b"[")?;
    let chunks: Vec<&[_]> = rows.chunks(CHUNK).collect();
    let threads = threads.clamp(1, 16);
    if threads < 2 || rows.len() < MIN_PARALLEL {
        let mut buf = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            buf.clear();
            chunk_into(&mut buf, chunk, i == 0)?;
            out.write_all(&buf)?;
        }
    } else {
        write_chunks_in_parallel(out, &chunks, threads)?;
    }
    out.write_all(b"\n  ]\n}\n")
}

/// One chunk of the rows array, each row on a new line at depth 2 (the array's items in the document),
/// separated by commas; `first` when it holds the array's first row.
fn chunk_into<T: Serialize>(buf: &mut Vec<u8>, rows: &[T], first: bool) -> io::Result<()> {
    for (j, row) in rows.iter().enumerate() {
        buf.extend_from_slice(if first && j == 0 { b"\n" } else { b",\n" });
        indent(buf, 2)?;
        let mut ser = serde_json::Serializer::with_formatter(
            &mut *buf,
            Indented {
                depth: 2,
                has_value: false,
            },
        );
        row.serialize(&mut ser)?;
    }
    Ok(())
}

/// Workers take a free buffer, then the next chunk, and send the filled buffer back; the calling thread
/// writes them in chunk order and returns each buffer to the pool. A worker holds its buffer before it
/// claims a chunk, so the lowest chunk not yet written is always being serialised and nothing waits on a
/// full pool. An error (a closed pipe, say) empties the pool, which stops the workers.
fn write_chunks_in_parallel<W: Write, T: Serialize + Sync>(
    out: &mut W,
    chunks: &[&[T]],
    threads: usize,
) -> io::Result<()> {
    let next = AtomicUsize::new(0);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let free_rx = Mutex::new(free_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, io::Result<Vec<u8>>)>();
    for _ in 0..2 * threads {
        let _ = free_tx.send(Vec::with_capacity(CHUNK * 2048));
    }
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (next, free_rx, done_tx) = (&next, &free_rx, done_tx.clone());
            scope.spawn(move || loop {
                let taken = free_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(mut buf)) = taken else { return };
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { return };
                buf.clear();
                // A row whose serialisation panics must not leave the writer waiting for its chunk.
                let filled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    chunk_into(&mut buf, chunk, i == 0)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("writing a row of JSON panicked")))
                .map(|()| buf);
                if done_tx.send((i, filled)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut write_in_order = || {
            let mut pending = BTreeMap::new();
            let mut want = 0;
            while want < chunks.len() {
                let Ok((i, filled)) = done_rx.recv() else {
                    return Err(io::Error::other("a thread writing the JSON stopped"));
                };
                pending.insert(i, filled?);
                while let Some(buf) = pending.remove(&want) {
                    out.write_all(&buf)?;
                    let _ = free_tx.send(buf);
                    want += 1;
                }
            }
            Ok(())
        };
        let written = write_in_order();
        // No chunk is claimed any more, and a worker waiting for a buffer gets none: they all end.
        next.store(chunks.len(), Ordering::Relaxed);
        drop(free_tx);
        written
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskmesh_core::ops::directory::Directory;

    /// A directory with `n` rows that differ in every kind of field: nested arrays and objects, empty
    /// ones, absent and null fields, numbers, escapes.
    fn directory(n: usize) -> Directory {
        let key = "z6Mks1bbxoYmPRX67tnmLhmW3YS1YfewVRSKAXcMw7NwxbD8";
        let mut rows = Vec::new();
        for i in 0..n {
            let pool = |name: String, kind: &str, state: &str, availability| {
                serde_json::json!({
                    "pool": name, "kind": kind, "desk": i % 2 == 0, "state": state,
                    "status": "unknown", "freshness": "unknown", "availability": availability,
                    "age_s": (i % 3 == 0).then_some(i * 7)
                })
            };
            let seats = match i % 3 {
                0 => serde_json::json!([]),
                1 => serde_json::json!([pool(
                    format!("room-{i}"),
                    "meeting_room",
                    "unknown",
                    None::<()>
                )]),
                _ => serde_json::json!([
                    pool("hot".into(), "hot_desk", "unknown", None::<()>),
                    pool("fixed".into(), "dedicated_desk", "unknown", None::<()>),
                ]),
            };
            let facts = if i % 7 == 0 {
                serde_json::json!([{
                    "fact": "accessibility", "status": "verified",
                    "by": {"key": key, "name": "coordinator"}, "checked_on": "2026-11-30",
                    "note": if i % 14 == 0 { "" } else { "ramp at the back\nand a lift" }
                }])
            } else {
                serde_json::json!([])
            };
            let mut row = serde_json::json!({
                "id": format!("sp-{}", (0..16).map(|d| char::from(b"abcdefghijklmnopqrstuvwxyz234567"[((i as u128 >> (5 * (15 - d))) & 31) as usize])).collect::<String>()),
                "name": format!("Space \"{i}\"\twith\\escapes é"),
                "city": "Milan", "country": "IT",
                "open_now": if i % 5 == 0 { serde_json::Value::Null } else { (i % 2 == 1).into() },
                "seats_free": false, "seats_now": {"state": "unknown"}, "seats_text": "unknown",
                "seats": seats,
                "day_pass": if i % 4 == 0 { serde_json::Value::Null } else { "22.00 EUR".into() },
                "wifi_down_mbps": 314.6 + i as f64,
                "access": if i % 5 == 0 { serde_json::json!([]) } else { serde_json::json!(["quiet_room"]) },
                "amenities": ["phone_booth", "kitchen"], "lat": 45.491527, "lon": -9.229113,
                "signers": if i % 6 == 0 { serde_json::json!([key, key]) } else { serde_json::json!([key]) },
                "facts": facts
            });
            if i % 4 == 1 {
                row["distance_km"] = (i as f64 / 3.0).into();
                row["revoked"] = "left the alliance".into();
            }
            rows.push(row);
        }
        serde_json::from_value(serde_json::json!({
            "total": n + 1, "matched": n, "at": "2026-12-02T10:00:00Z", "spaces": rows
        }))
        .expect("a directory")
    }

    fn expected(d: &Directory) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(d).expect("json");
        v.push(b'\n');
        v
    }

    #[test]
    fn the_rows_written_on_several_threads_are_serde_jsons_pretty_bytes() {
        for n in [0, 1, 2, CHUNK - 1, CHUNK, CHUNK + 1, MIN_PARALLEL - 1, 1000] {
            let mut d = directory(n);
            let want = expected(&d);
            for threads in [1, 2, 3, 8] {
                let mut got = Vec::new();
                write_directory(&mut got, &mut d, threads).expect("written");
                assert!(
                    got == want,
                    "{n} rows on {threads} threads differ:\n{}",
                    String::from_utf8_lossy(&got[..got.len().min(2000)])
                );
                assert_eq!(d.spaces.len(), n, "the rows are put back");
            }
        }
    }

    /// Rows whose serialisation panics at one index.
    struct Bomb {
        at: usize,
        i: usize,
    }

    impl serde::Serialize for Bomb {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            assert!(self.i != self.at, "a row that panics");
            s.serialize_u64(self.i as u64)
        }
    }

    #[test]
    fn a_row_that_panics_ends_the_output_with_an_error_not_a_hang() {
        let rows: Vec<Bomb> = (0..3000).map(|i| Bomb { at: 1500, i }).collect();
        let head = directory(0);
        let mut out = Vec::new();
        let err = write_with_rows(&mut out, &head, &rows, 4).expect_err("a panicked row");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    /// A writer that fails after `room` bytes, as a closed pipe does.
    struct Closed {
        room: usize,
    }

    impl Write for Closed {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_stops_every_thread_with_its_error() {
        let mut d = directory(2000);
        for room in [0, 10, 300_000] {
            let err = write_directory(&mut Closed { room }, &mut d, 4).expect_err("closed");
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(d.spaces.len(), 2000);
        }
    }
}
