//! The directory snapshot: a copy, in one file beside the store, of what a query of the whole directory
//! reads without a daemon (every kept search row and every seat beacon), stamped with the store's position
//! when it was read. A command reads the one file instead of walking two sled trees item by item (about
//! 40 ms of a 10,000-space list), but only while the store is exactly where the snapshot says: sled's log
//! position moves with every write to any tree and with nothing else, so a snapshot is never used after
//! a change, whatever wrote it. It is a cache: a snapshot that is missing, older, cut short or damaged
//! (a checksum covers it) is ignored, and failing to write one is not an error.
//!
//! Why the position is enough: a snapshot is written only when the position did not move between the
//! start of the read and a flush after it, so what it shows is durable at that position. A crash can then
//! only lose writes made after it, and any write, kept or made anew, moves the position past it.
//!
//! Layout (integers little-endian): the magic line, the position (i64), the CRC-32 of everything after it
//! (u32), then the rows' format, the rows and the beacons, each byte string as a u32 length and its bytes:
//! `format`, `rows: u32 count, (space, row)*`, `beacons: u32 count, (space, pool, beacon)*`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use deskmesh_keys::SpaceId;

use crate::SpaceRows;

/// The snapshot's file name in the store's directory.
pub const FILE: &str = "directory.snapshot";
const MAGIC: &[u8] = b"deskmesh-directory-snapshot-1\n";

/// A snapshot read and checked whole, its two parts decoded on demand (each on a thread of its own, say):
/// the search rows (in the format it names) and every beacon, as the store's `search_rows` and `beacons`
/// return them. The file's bytes are kept as read: each part is a range of them, and
/// [`DirectorySnapshot::row_slices`] lends the rows without copying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySnapshot {
    bytes: Vec<u8>,
    /// Where the rows start in `bytes` (after the format).
    rows_at: usize,
    /// Where the beacons start in `bytes`.
    beacons_at: usize,
}

impl DirectorySnapshot {
    /// Every kept row, as [`crate::IndexStore::search_rows`] returns them (copied, ids parsed); `None` if
    /// a space id does not read back. Tests compare with it; queries use [`DirectorySnapshot::row_slices`].
    #[cfg(test)]
    pub fn rows(&self) -> Option<SpaceRows> {
        self.row_slices()?
            .into_iter()
            .map(|(id, bytes)| Some((SpaceId::from_str(id).ok()?, bytes.to_vec())))
            .collect()
    }

    /// Every kept row, in space id order, lent from the snapshot: each space id's
    /// text (not checked as an id: a caller that needs the [`SpaceId`] parses it) and the row's bytes.
    /// `None` if an id is not UTF-8.
    pub fn row_slices(&self) -> Option<Vec<(&str, &[u8])>> {
        let mut r = Reader(&self.bytes[self.rows_at..self.beacons_at]);
        let n = r.count()?;
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            rows.push((std::str::from_utf8(r.bytes()?).ok()?, r.bytes()?));
        }
        Some(rows)
    }

    /// Every beacon, as [`crate::BeaconStore::beacons`] returns them; `None` if a space id does not read
    /// back.
    pub fn beacons(&self) -> Option<Vec<(SpaceId, String, Vec<u8>)>> {
        let mut r = Reader(&self.bytes[self.beacons_at..]);
        let n = r.count()?;
        let mut beacons = Vec::with_capacity(n);
        for _ in 0..n {
            let space = r.space()?;
            let pool = std::str::from_utf8(r.bytes()?).ok()?.to_string();
            beacons.push((space, pool, r.bytes()?.to_vec()));
        }
        Some(beacons)
    }
}

pub(crate) fn path(store_dir: &Path) -> PathBuf {
    store_dir.join(FILE)
}

/// The file's bytes for `snapshot`, read at `position` in rows' format `format`.
pub(crate) fn encode(
    position: i64,
    format: &[u8],
    rows: &SpaceRows,
    beacons: &[(SpaceId, String, Vec<u8>)],
) -> Vec<u8> {
    let size = rows
        .iter()
        .map(|(s, r)| s.as_str().len() + r.len() + 8)
        .sum::<usize>()
        + beacons
            .iter()
            .map(|(s, p, b)| s.as_str().len() + p.len() + b.len() + 12)
            .sum::<usize>();
    let mut body = Vec::with_capacity(size + format.len() + 16);
    put(&mut body, format);
    body.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for (space, row) in rows {
        put(&mut body, space.as_str().as_bytes());
        put(&mut body, row);
    }
    body.extend_from_slice(&(beacons.len() as u32).to_le_bytes());
    for (space, pool, beacon) in beacons {
        put(&mut body, space.as_str().as_bytes());
        put(&mut body, pool.as_bytes());
        put(&mut body, beacon);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The snapshot in `bytes` if it was read at `position` in `format` and reads back whole (its checksum,
/// and every item's lengths); its parts are decoded later ([`DirectorySnapshot::rows`], `beacons`).
pub(crate) fn decode(bytes: Vec<u8>, position: i64, format: &[u8]) -> Option<DirectorySnapshot> {
    let head = MAGIC.len() + 12;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (at, rest) = rest.split_first_chunk::<8>()?;
    if i64::from_le_bytes(*at) != position {
        return None;
    }
    let (crc, body) = rest.split_first_chunk::<4>()?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    let mut r = Reader(body);
    if r.bytes()? != format {
        return None;
    }
    let rows_at = body.len() - r.0.len();
    for _ in 0..r.count()? {
        r.bytes()?;
        r.bytes()?;
    }
    let beacons_at = body.len() - r.0.len();
    for _ in 0..r.count()? {
        r.bytes()?;
        r.bytes()?;
        r.bytes()?;
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(DirectorySnapshot {
        bytes,
        rows_at: head + rows_at,
        beacons_at: head + beacons_at,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn count(&mut self) -> Option<usize> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*n) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.count()?;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }

    fn space(&mut self) -> Option<SpaceId> {
        SpaceId::from_str(std::str::from_utf8(self.bytes()?).ok()?).ok()
    }
}

/// Reads the snapshot of the store in `store_dir` at `position`; `None` for any reason it cannot be used.
pub(crate) fn read(store_dir: &Path, position: i64, format: &[u8]) -> Option<DirectorySnapshot> {
    let bytes = fs::read(path(store_dir)).ok()?;
    decode(bytes, position, format)
}

/// Writes `bytes` as the snapshot of the store in `store_dir`: to a temporary file renamed over the old
/// one, so a reader never sees half of it. Not synced: a snapshot torn by a power cut fails its checksum.
pub(crate) fn write(store_dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = store_dir.join(format!("{FILE}.tmp"));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, path(store_dir)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use deskmesh_keys::DeviceKey;

    type Parts = (SpaceRows, Vec<(SpaceId, String, Vec<u8>)>);

    fn sample() -> Parts {
        let ids: Vec<SpaceId> = (0..3)
            .map(|_| SpaceId::derive(&deskmesh_keys::Signer::public_key(&DeviceKey::generate())))
            .collect();
        (
            ids.iter().map(|s| (s.clone(), vec![7u8; 40])).collect(),
            vec![
                (ids[0].clone(), "desks".into(), vec![1, 2, 3]),
                (ids[0].clone(), "room-1".into(), vec![]),
                (ids[2].clone(), "desks".into(), vec![9; 200]),
            ],
        )
    }

    #[test]
    fn a_snapshot_reads_back_only_at_its_position_and_format() {
        let s = sample();
        let bytes = encode(42, b"rows-2", &s.0, &s.1);
        let back = decode(bytes.clone(), 42, b"rows-2").unwrap();
        assert_eq!((back.rows().unwrap(), back.beacons().unwrap()), s.clone());
        let lent: Vec<(String, Vec<u8>)> = back
            .row_slices()
            .unwrap()
            .into_iter()
            .map(|(id, bytes)| (id.to_string(), bytes.to_vec()))
            .collect();
        let owned: Vec<(String, Vec<u8>)> =
            s.0.iter()
                .map(|(id, b)| (id.to_string(), b.clone()))
                .collect();
        assert_eq!(lent, owned, "the lent rows are the rows");
        assert_eq!(
            decode(bytes.clone(), 43, b"rows-2"),
            None,
            "another position"
        );
        assert_eq!(decode(bytes, 42, b"rows-1"), None, "another format");
        let empty = decode(encode(1, b"f", &Vec::new(), &[]), 1, b"f").unwrap();
        assert_eq!(
            (empty.rows(), empty.beacons()),
            (Some(vec![]), Some(vec![]))
        );
    }

    #[test]
    fn a_damaged_or_cut_snapshot_is_not_used() {
        let s = sample();
        let bytes = encode(42, b"rows-2", &s.0, &s.1);
        for cut in [0, 10, MAGIC.len() + 5, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(
                decode(bytes[..cut].to_vec(), 42, b"rows-2"),
                None,
                "cut at {cut}"
            );
        }
        for at in [MAGIC.len() + 9, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(decode(flipped, 42, b"rows-2"), None, "byte {at} flipped");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(longer, 42, b"rows-2"), None, "a byte too many");
        // A space id that does not read back (checksum and lengths right): that part is not used.
        let odd = vec![(s.0[0].0.clone(), b"row".to_vec())];
        let mut bytes = encode(42, b"f", &odd, &[]);
        let id = s.0[0].0.as_str().as_bytes().to_vec();
        let at = bytes.windows(id.len()).position(|w| w == id).unwrap();
        bytes[at] = b'!';
        let crc = crc32fast::hash(&bytes[MAGIC.len() + 12..]);
        bytes[MAGIC.len() + 8..MAGIC.len() + 12].copy_from_slice(&crc.to_le_bytes());
        let snap = decode(bytes, 42, b"f").unwrap();
        assert_eq!(snap.rows(), None);
        assert_eq!(snap.beacons(), Some(vec![]));
    }

    #[test]
    fn a_snapshot_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        write(dir.path(), &encode(1, b"f", &s.0, &s.1)).unwrap();
        write(dir.path(), &encode(2, b"f", &s.0, &[])).unwrap();
        assert_eq!(read(dir.path(), 1, b"f"), None);
        let back = read(dir.path(), 2, b"f").unwrap();
        assert_eq!(
            (back.rows().unwrap().len(), back.beacons().unwrap().len()),
            (3, 0)
        );
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
    }
}
