//! [`PeerBook`]: the peers this node knows how to reach, kept across restarts in `<home>/peers.json`, and
//! when to dial each of them again.
//!
//! Peers come from the command line and the invite (bootstrap addresses), the roster (`SetPeerAddrs`) and,
//! at run time, from every known peer (a roster device or a proven member) that connects: the addresses it
//! listens on, as identify reports them. Only those learned at run time are saved (the others come back
//! from where they came from), at most [`MAX_SAVED`], least recently seen dropped first; strangers are
//! never saved. A node that has fewer than [`TARGET_PEERS`] connections dials the peers that are due,
//! a few at a time; a failed dial waits twice as long as the one before (1 s up to
//! [`MAX_BACKOFF`], with jitter) and a peer seen connected starts again from 1 s. The policy is pure: the
//! service tells it what happened and asks it whom to dial.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Connections a node keeps trying to have.
pub const TARGET_PEERS: usize = 8;
/// Dials started per tick at most.
pub const DIALS_PER_TICK: usize = 4;
/// Peers saved in the home.
pub const MAX_SAVED: usize = 256;
/// Addresses kept per peer.
pub const MAX_ADDRS: usize = 8;
/// Longest wait between two dials of one peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the book is written when it changed (the first change is written at once, so a node killed
/// soon after it met its peers still finds them).
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// A dial that never reports back counts as failed after this long.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The file's form.
#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    peers: Vec<Saved>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    peer: String,
    addrs: Vec<String>,
    last_seen_ms: i64,
}

/// When to dial one peer (or bare address) again.
#[derive(Debug, Clone, Default)]
struct Backoff {
    failures: u32,
    next: Duration,
    /// A dial was started at this time and has not reported back.
    dialing: Option<Duration>,
}

impl Backoff {
    fn due(&self, now: Duration) -> bool {
        match self.dialing {
            Some(since) => now >= since + DIAL_TIMEOUT,
            None => now >= self.next,
        }
    }

    fn failed(&mut self, now: Duration, jitter: f64) {
        self.failures = self.failures.saturating_add(1);
        // 1 s, 2 s, 4 s ... 256 s, then MAX_BACKOFF at most.
        let base = Duration::from_secs(1u64 << self.failures.min(9).saturating_sub(1));
        self.next = now + base.min(MAX_BACKOFF).mul_f64(jitter);
        self.dialing = None;
    }
}

#[derive(Debug, Clone)]
struct Entry {
    addrs: Vec<Multiaddr>,
    last_seen_ms: i64,
    /// Learned at run time from a known peer: saved.
    learned: bool,
    backoff: Backoff,
}

/// Someone to dial now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Peer(PeerId, Vec<Multiaddr>),
    /// An address whose peer id is not known (a bootstrap address without `/p2p/`).
    Addr(Multiaddr),
}

/// The peer book (see the module doc).
#[derive(Debug)]
pub struct PeerBook {
    path: Option<PathBuf>,
    peers: HashMap<PeerId, Entry>,
    bare: Vec<(Multiaddr, Backoff)>,
    dirty: bool,
    last_save: Option<Duration>,
    rng: u64,
}

/// The peer id an address ends with.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

impl PeerBook {
    /// A book saved at `path` (none: kept in memory only), with what that file holds. A damaged file is
    /// reported in the returned warning and the book starts empty.
    pub fn load(path: Option<PathBuf>) -> (Self, Option<String>) {
        let mut book = Self {
            path: path.clone(),
            peers: HashMap::new(),
            bare: Vec::new(),
            dirty: false,
            last_save: None,
            rng: seed(),
        };
        let Some(path) = path else {
            return (book, None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (book, None),
            Err(e) => return (book, Some(format!("cannot read {}: {e}", path.display()))),
        };
        let file: File = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                return (
                    book,
                    Some(format!(
                        "{} is not a peer list ({e}); starting without it",
                        path.display()
                    )),
                )
            }
        };
        for saved in file.peers.into_iter().take(MAX_SAVED) {
            let Ok(peer) = saved.peer.parse::<PeerId>() else {
                continue;
            };
            let addrs: Vec<Multiaddr> = saved
                .addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .take(MAX_ADDRS)
                .collect();
            if addrs.is_empty() {
                continue;
            }
            book.peers.insert(
                peer,
                Entry {
                    addrs,
                    last_seen_ms: saved.last_seen_ms,
                    learned: true,
                    backoff: Backoff::default(),
                },
            );
        }
        (book, None)
    }

    /// Peers in the book (saved or not).
    pub fn len(&self) -> usize {
        self.peers.len() + self.bare.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn jitter(&mut self) -> f64 {
        // xorshift64*: spreads retries so peers that failed together do not retry together.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        0.8 + (r >> 11) as f64 / (1u64 << 53) as f64 * 0.4
    }

    /// An address to dial from the start (command line, invite, roster); not saved.
    pub fn add_bootstrap(&mut self, addr: Multiaddr) {
        match peer_of(&addr) {
            Some(peer) => {
                let e = self.peers.entry(peer).or_insert_with(|| Entry {
                    addrs: Vec::new(),
                    last_seen_ms: 0,
                    learned: false,
                    backoff: Backoff::default(),
                });
                if !e.addrs.contains(&addr) && e.addrs.len() < MAX_ADDRS {
                    e.addrs.push(addr);
                }
            }
            None => {
                if !self.bare.iter().any(|(a, _)| *a == addr) {
                    self.bare.push((addr, Backoff::default()));
                }
            }
        }
    }

    /// A known peer is connected and listens on `addrs`: remembered (and saved) with them.
    pub fn learned(&mut self, peer: PeerId, addrs: &[Multiaddr], now_ms: i64) {
        let addrs: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| !is_unroutable(a))
            .take(MAX_ADDRS)
            .map(|a| with_peer(a, peer))
            .collect();
        if addrs.is_empty() {
            return;
        }
        let e = self.peers.entry(peer).or_insert_with(|| Entry {
            addrs: Vec::new(),
            last_seen_ms: 0,
            learned: true,
            backoff: Backoff::default(),
        });
        e.learned = true;
        e.last_seen_ms = now_ms;
        e.backoff = Backoff::default();
        if e.addrs != addrs {
            e.addrs = addrs;
        }
        self.dirty = true;
        self.trim();
    }

    /// Drops the least recently seen learned peers beyond [`MAX_SAVED`].
    fn trim(&mut self) {
        let learned = self.peers.values().filter(|e| e.learned).count();
        if learned <= MAX_SAVED {
            return;
        }
        let mut by_age: Vec<(i64, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, e)| e.learned)
            .map(|(p, e)| (e.last_seen_ms, *p))
            .collect();
        by_age.sort();
        for (_, p) in by_age.into_iter().take(learned - MAX_SAVED) {
            self.peers.remove(&p);
        }
    }

    /// A connection to `peer` is up: its next dial, if it drops, starts from scratch.
    pub fn connected(&mut self, peer: &PeerId, now_ms: i64) {
        if let Some(e) = self.peers.get_mut(peer) {
            e.backoff = Backoff::default();
            if e.learned {
                e.last_seen_ms = now_ms;
                self.dirty = true;
            }
        }
    }

    /// A bare address dialled with this result answered as `peer`: it is that peer's from now on.
    pub fn bare_connected(&mut self, addr: &Multiaddr) {
        if let Some((_, b)) = self.bare.iter_mut().find(|(a, _)| a == addr) {
            *b = Backoff::default();
            // Not due again until it fails or a tick finds too few peers.
            b.next = Duration::MAX;
        }
    }

    /// A dial of `peer` failed.
    pub fn dial_failed(&mut self, peer: &PeerId, now: Duration) {
        let jitter = self.jitter();
        if let Some(e) = self.peers.get_mut(peer) {
            e.backoff.failed(now, jitter);
        }
    }

    /// A dial of a bare address failed.
    pub fn bare_failed(&mut self, addr: &Multiaddr, now: Duration) {
        let jitter = self.jitter();
        if let Some((_, b)) = self.bare.iter_mut().find(|(a, _)| a == addr) {
            b.failed(now, jitter);
        }
    }

    /// Whom to dial now: nothing while `connected` peers are at least [`TARGET_PEERS`]; else up to
    /// [`DIALS_PER_TICK`] peers that are due and not connected (`is_connected`), most recently seen
    /// first, then bare addresses. Each is marked as being dialled.
    pub fn due(
        &mut self,
        now: Duration,
        connected: usize,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Target> {
        if connected >= TARGET_PEERS {
            return Vec::new();
        }
        let room = (TARGET_PEERS - connected).min(DIALS_PER_TICK);
        let mut candidates: Vec<(i64, PeerId)> = self
            .peers
            .iter()
            .filter(|(p, e)| !e.addrs.is_empty() && e.backoff.due(now) && !is_connected(p))
            .map(|(p, e)| (e.last_seen_ms, *p))
            .collect();
        candidates.sort_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for (_, peer) in candidates.into_iter().take(room) {
            if let Some(e) = self.peers.get_mut(&peer) {
                e.backoff.dialing = Some(now);
                out.push(Target::Peer(peer, e.addrs.clone()));
            }
        }
        for (addr, b) in &mut self.bare {
            if out.len() >= room {
                break;
            }
            if b.next != Duration::MAX && b.due(now) {
                b.dialing = Some(now);
                out.push(Target::Addr(addr.clone()));
            }
        }
        out
    }

    /// Bare addresses become due again (the node has too few peers and wants every way in).
    pub fn retry_bare(&mut self) {
        for (_, b) in &mut self.bare {
            if b.next == Duration::MAX {
                b.next = Duration::ZERO;
            }
        }
    }

    /// Writes the learned peers when they changed and [`SAVE_EVERY`] passed since the last write (or at
    /// once the first time, or when `force`). The write is
    /// atomic (a temporary file renamed over); an error is returned for the log, and retried after
    /// [`SAVE_EVERY`].
    pub fn save(&mut self, now: Duration, force: bool) -> Result<bool, String> {
        let Some(path) = self.path.clone() else {
            return Ok(false);
        };
        let recent = self.last_save.is_some_and(|at| now < at + SAVE_EVERY);
        if !self.dirty || (!force && recent) {
            return Ok(false);
        }
        let mut peers: Vec<Saved> = self
            .peers
            .iter()
            .filter(|(_, e)| e.learned)
            .map(|(p, e)| Saved {
                peer: p.to_string(),
                addrs: e.addrs.iter().map(|a| a.to_string()).collect(),
                last_seen_ms: e.last_seen_ms,
            })
            .collect();
        peers.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then(a.peer.cmp(&b.peer))
        });
        let text =
            serde_json::to_string_pretty(&File { version: 1, peers }).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        // A failed write (a full disk) is tried again after SAVE_EVERY, not at every tick.
        self.last_save = Some(now);
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot save the peer list to {}: {e}", path.display())
            })?;
        self.dirty = false;
        Ok(true)
    }
}

/// Loopback and link-local addresses of a peer on another machine reach nothing; keep them only when
/// everything is on one machine (tests, the demo), which is when they are all a peer announces.
fn is_unroutable(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())
            || matches!(p, Protocol::Ip6(ip) if ip.is_unspecified())
    })
}

fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    if peer_of(addr).is_some() {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer))
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(port: u16, peer: PeerId) -> Multiaddr {
        format!("/ip4/192.0.2.1/tcp/{port}/p2p/{peer}")
            .parse()
            .unwrap()
    }

    #[test]
    fn learned_peers_survive_a_restart_and_strangers_and_bootstrap_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        let (mut book, warn) = PeerBook::load(Some(path.clone()));
        assert!(warn.is_none());
        let (a, b) = (PeerId::random(), PeerId::random());
        book.add_bootstrap(addr(1, b));
        book.learned(
            a,
            &[addr(2, a), "/ip4/0.0.0.0/tcp/9".parse().unwrap()],
            1000,
        );
        assert_eq!(book.save(Duration::ZERO, true), Ok(true));
        assert_eq!(
            book.save(Duration::from_secs(1), false),
            Ok(false),
            "nothing new"
        );

        let (mut again, warn) = PeerBook::load(Some(path.clone()));
        assert!(warn.is_none());
        assert_eq!(again.len(), 1);
        let due = again.due(Duration::ZERO, 0, |_| false);
        assert_eq!(due, vec![Target::Peer(a, vec![addr(2, a)])]);

        std::fs::write(&path, "{ not json").unwrap();
        let (empty, warn) = PeerBook::load(Some(path));
        assert!(empty.is_empty());
        assert!(warn.unwrap().contains("not a peer list"));
    }

    #[test]
    fn failed_dials_back_off_and_a_connection_resets_it() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..12)
            .map(|_| {
                b.failed(Duration::ZERO, 1.0);
                b.next.as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256, 256]);
        let mut b = Backoff::default();
        for _ in 0..20 {
            b.failed(Duration::ZERO, 1.2);
        }
        assert!(b.next <= MAX_BACKOFF.mul_f64(1.2));

        let (mut book, _) = PeerBook::load(None);
        let p = PeerId::random();
        book.add_bootstrap(addr(1, p));
        assert_eq!(book.due(Duration::ZERO, 0, |_| false).len(), 1);
        assert!(
            book.due(Duration::ZERO, 0, |_| false).is_empty(),
            "being dialled"
        );
        book.dial_failed(&p, Duration::ZERO);
        assert!(book
            .due(Duration::from_millis(500), 0, |_| false)
            .is_empty());
        assert_eq!(book.due(Duration::from_secs(2), 0, |_| false).len(), 1);
        // A dial that never reports back is due again after its timeout.
        assert_eq!(book.due(Duration::from_secs(40), 0, |_| false).len(), 1);
        book.connected(&p, 5);
        assert_eq!(book.due(Duration::from_secs(40), 0, |_| false).len(), 1);
    }

    #[test]
    fn a_node_dials_until_it_has_enough_peers_not_only_when_it_has_none() {
        let (mut book, _) = PeerBook::load(None);
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            book.learned(*p, &[addr(i as u16 + 1, *p)], i as i64);
        }
        let now = Duration::from_secs(1);
        assert_eq!(book.due(now, 3, |_| false).len(), DIALS_PER_TICK);
        assert_eq!(book.due(now, TARGET_PEERS - 1, |_| false).len(), 1);
        assert!(book.due(now, TARGET_PEERS, |_| false).is_empty());
        // Connected peers are not dialled; the most recently seen come first.
        let (mut book, _) = PeerBook::load(None);
        for (i, p) in peers.iter().enumerate() {
            book.learned(*p, &[addr(i as u16 + 1, *p)], i as i64);
        }
        let newest = peers[19];
        let due = book.due(now, 0, |p| *p == newest);
        assert_eq!(due.len(), DIALS_PER_TICK);
        assert_eq!(due[0], Target::Peer(peers[18], vec![addr(19, peers[18])]));
    }

    #[test]
    fn the_book_keeps_the_most_recently_seen_peers() {
        let (mut book, _) = PeerBook::load(None);
        for i in 0..(MAX_SAVED + 10) {
            let p = PeerId::random();
            book.learned(p, &[addr(1, p)], i as i64);
        }
        assert_eq!(book.len(), MAX_SAVED);
        assert!(book.peers.values().all(|e| e.last_seen_ms >= 10));
    }
}
