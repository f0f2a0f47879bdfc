//! Seat beacons: signed, expiring statements of how many seats a pool has free right now.
//!
//! Open seats change every few minutes, so they stay out of the Automerge history (lesson 10): a device of
//! the space signs a small [`SeatBeacon`] under the `seat-beacon` domain, and every node keeps only the
//! newest one per (space, pool) on its [`BeaconBoard`]. "Newest" is ordered by (published_at, seq) with ties
//! broken by the signature bytes, so all nodes keep the same beacon whatever order they heard them in.
//! Freshness is shown, never hidden (GBFS): a beacon is fresh for its ttl, then stale ("~4 free, 12 min
//! ago") for up to [`STALE_FOR_S`] more, then unknown. Nothing here reads a clock; callers pass `now`.

use std::collections::BTreeMap;

use deskmesh_keys::{Domain, Hash, PublicKey, Signature, Signer, SpaceId};
use serde::{Deserialize, Serialize};

use crate::change::Authority;
use crate::listing::limits::MAX_POOL_CAPACITY;
use crate::seats::Reading;

/// The shortest time a beacon may claim to stay fresh.
pub const MIN_TTL_S: u32 = 30;
/// The longest time a beacon may claim to stay fresh.
pub const MAX_TTL_S: u32 = 24 * 60 * 60;
/// How long after its ttl a beacon is still shown, as stale.
pub const STALE_FOR_S: u64 = 15 * 60;
/// How far ahead of the receiver's clock a beacon may be dated (clock skew between nodes).
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// The largest signed beacon accepted; a real one is about 150 bytes.
pub const MAX_BEACON_BYTES: usize = 1024;
/// Roster heads a beacon may name; more would only pad it.
const MAX_ROSTER_HEADS: usize = 8;

/// How many seats a pool has free: an exact count or a GBFS-style bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    Count(u32),
    Many,
    Few,
    Full,
    Closed,
}

impl Availability {
    /// Whether someone walking in now would find a seat.
    pub fn has_seats(self) -> bool {
        match self {
            Availability::Count(n) => n > 0,
            Availability::Many | Availability::Few => true,
            Availability::Full | Availability::Closed => false,
        }
    }
}

/// The live status of one seat pool, as signed by a device of the space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatBeacon {
    pub space: SpaceId,
    /// The pool's id in the listing's `seat_pools`.
    pub pool: String,
    pub availability: Availability,
    pub is_open: bool,
    pub published_at_ms: i64,
    /// Seconds the status stays fresh.
    pub ttl_s: u32,
    /// Orders beacons published in the same millisecond.
    pub seq: u64,
    pub author: PublicKey,
    /// The roster heads the author acted under.
    pub roster_heads: Vec<Hash>,
}

/// Why a beacon was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("seat beacon is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("seat beacon is not readable: {0}")]
    Malformed(String),
    #[error("seat beacon signature does not verify for author {author}")]
    BadSignature { author: PublicKey },
    #[error("seat beacon ttl of {ttl_s} s is outside {MIN_TTL_S}..={MAX_TTL_S} s")]
    Ttl { ttl_s: u32 },
    #[error("seat pool id {pool:?} must be 1 to 32 characters of a-z, 0-9, '_' and '-'")]
    PoolId { pool: String },
    #[error("seat count {count} is over the limit of {MAX_POOL_CAPACITY}")]
    Count { count: u32 },
    #[error("seat beacon names {count} roster heads, over the limit of {MAX_ROSTER_HEADS}")]
    RosterHeads { count: usize },
    #[error("seat beacon is dated {ahead_s} s in the future, more than the 300 s allowed")]
    FromTheFuture { ahead_s: i64 },
    #[error("signer key {signer} is not the beacon author {author}")]
    SignerMismatch {
        signer: PublicKey,
        author: PublicKey,
    },
}

/// A beacon as it travels: its postcard bytes and the author's signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBeacon {
    pub bytes: Vec<u8>,
    pub signature: Signature,
}

impl SeatBeacon {
    /// The rules that hold whatever the time: ttl range, pool id, count and roster heads.
    fn check(&self) -> Result<(), BeaconError> {
        if !(MIN_TTL_S..=MAX_TTL_S).contains(&self.ttl_s) {
            return Err(BeaconError::Ttl { ttl_s: self.ttl_s });
        }
        if !is_pool_id(&self.pool) {
            return Err(BeaconError::PoolId {
                pool: self.pool.clone(),
            });
        }
        if let Availability::Count(count) = self.availability {
            if count > MAX_POOL_CAPACITY {
                return Err(BeaconError::Count { count });
            }
        }
        if self.roster_heads.len() > MAX_ROSTER_HEADS {
            return Err(BeaconError::RosterHeads {
                count: self.roster_heads.len(),
            });
        }
        Ok(())
    }

    /// Signs this beacon; `signer` must be its author.
    pub fn sign(&self, signer: &impl Signer) -> Result<SignedBeacon, BeaconError> {
        let signer_key = signer.public_key();
        if signer_key != self.author {
            return Err(BeaconError::SignerMismatch {
                signer: signer_key,
                author: self.author,
            });
        }
        self.check()?;
        let bytes = postcard::to_stdvec(self).map_err(|e| BeaconError::Malformed(e.to_string()))?;
        check_size(bytes.len())?;
        let signature = signer.sign(Domain::SeatBeacon, &bytes);
        Ok(SignedBeacon { bytes, signature })
    }
}

impl SignedBeacon {
    /// The wire and store form (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a byte vector and a fixed-size signature into a growable buffer cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Reads the wire form; garbage gives an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BeaconError> {
        check_size(bytes.len())?;
        let (b, rest) = postcard::take_from_bytes::<SignedBeacon>(bytes)
            .map_err(|e| BeaconError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(BeaconError::Malformed(format!(
                "{} trailing bytes after the beacon",
                rest.len()
            )));
        }
        Ok(b)
    }

    /// The beacon as claimed, not verified.
    pub fn decode(&self) -> Result<SeatBeacon, BeaconError> {
        check_size(self.bytes.len())?;
        let (b, rest) = postcard::take_from_bytes::<SeatBeacon>(&self.bytes)
            .map_err(|e| BeaconError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(BeaconError::Malformed(format!(
                "{} trailing bytes after the beacon fields",
                rest.len()
            )));
        }
        Ok(b)
    }

    /// Checks the size, signature and limits, and that the beacon is not dated more than five minutes after
    /// `now_ms`. Whether the author may speak for the space is the board's business.
    pub fn verify(&self, now_ms: i64) -> Result<SeatBeacon, BeaconError> {
        let b = self.decode()?;
        b.author
            .verify(Domain::SeatBeacon, &self.bytes, &self.signature)
            .map_err(|_| BeaconError::BadSignature { author: b.author })?;
        b.check()?;
        let ahead = b.published_at_ms.saturating_sub(now_ms);
        if ahead > MAX_FUTURE_MS {
            return Err(BeaconError::FromTheFuture {
                ahead_s: ahead / 1000,
            });
        }
        Ok(b)
    }
}

/// Strong removal for beacons: a beacon by a key that a removal took from the space (or of a space a
/// revocation ended) is refused whatever roster heads it names, since no removal keeps beacons. `None`
/// when nothing constrains it.
pub fn removed(authority: &impl Authority, beacon: &SeatBeacon) -> Option<String> {
    let removal = authority
        .removals(&beacon.roster_heads, &beacon.author, &beacon.space)
        .into_iter()
        .next()?;
    Some(if removal.revocation {
        format!(
            "space {} was revoked by roster operation {}; its seat beacons are no longer taken",
            beacon.space,
            removal.by.short()
        )
    } else {
        format!(
            "key {} was removed from space {} by roster operation {}; seats it signs are no longer taken",
            beacon.author,
            beacon.space,
            removal.by.short()
        )
    })
}

fn check_size(size: usize) -> Result<(), BeaconError> {
    if size > MAX_BEACON_BYTES {
        return Err(BeaconError::TooLarge {
            size,
            limit: MAX_BEACON_BYTES,
        });
    }
    Ok(())
}

/// The listing's pool id rule: `a-z 0-9 _ -`, 1 to 32 characters (kept in step with `listing::validate`).
fn is_pool_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn order_key<'a>(b: &SeatBeacon, sig: &'a Signature) -> (i64, u64, &'a [u8; 64]) {
    (b.published_at_ms, b.seq, sig.as_bytes())
}

/// Whether `a` supersedes `b` for their (space, pool): later (published_at, seq) wins, and a tie goes to the
/// greater signature bytes so every node picks the same one. A beacon that cannot be read is never newer
/// than one that can.
pub fn newer(a: &SignedBeacon, b: &SignedBeacon) -> bool {
    match (a.decode(), b.decode()) {
        (Ok(x), Ok(y)) => order_key(&x, &a.signature) > order_key(&y, &b.signature),
        (Ok(_), Err(_)) => true,
        (Err(_), _) => false,
    }
}

/// What [`BeaconBoard::offer`] did with a beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// It is now the pool's newest beacon (forward it).
    Stored,
    /// The board already holds this one or a newer one, or it is too old to say anything (do not forward).
    Older,
    /// Refused, with one sentence for the log (and a peer score).
    Rejected(String),
}

#[derive(Debug, Clone)]
struct Held {
    beacon: SeatBeacon,
    signed: SignedBeacon,
}

/// The newest verified beacon per (space, pool).
#[derive(Debug, Clone, Default)]
pub struct BeaconBoard {
    held: BTreeMap<(SpaceId, String), Held>,
}

impl BeaconBoard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies `signed` (at `now_ms`), asks `authority` whether its author may speak for the space, and
    /// keeps it if it is newer than what the board holds for its pool.
    pub fn offer(
        &mut self,
        signed: SignedBeacon,
        authority: &impl Authority,
        now_ms: i64,
    ) -> Offered {
        let beacon = match signed.verify(now_ms) {
            Ok(b) => b,
            Err(e) => return Offered::Rejected(e.to_string()),
        };
        if let Err(d) = authority.authorise(&beacon.roster_heads, &beacon.author, &beacon.space) {
            let why = if d.pending {
                format!("authorisation pending: {}", d.reason)
            } else {
                d.reason
            };
            return Offered::Rejected(format!(
                "author {} may not publish seats for {}: {why}",
                beacon.author, beacon.space
            ));
        }
        if let Some(why) = removed(authority, &beacon) {
            return Offered::Rejected(why);
        }
        // Too old to say anything: nothing to show and nothing worth forwarding.
        if freshness(&beacon, now_ms) == Freshness::Unknown {
            return Offered::Older;
        }
        let slot = (beacon.space.clone(), beacon.pool.clone());
        if let Some(held) = self.held.get(&slot) {
            if order_key(&beacon, &signed.signature)
                <= order_key(&held.beacon, &held.signed.signature)
            {
                return Offered::Older;
            }
        }
        self.held.insert(slot, Held { beacon, signed });
        Offered::Stored
    }

    /// The signed beacon held for a pool (to forward or store).
    pub fn get(&self, space: &SpaceId, pool: &str) -> Option<&SignedBeacon> {
        self.held
            .get(&(space.clone(), pool.to_string()))
            .map(|h| &h.signed)
    }

    /// The verified content of the beacon held for a pool.
    pub fn beacon(&self, space: &SpaceId, pool: &str) -> Option<&SeatBeacon> {
        self.held
            .get(&(space.clone(), pool.to_string()))
            .map(|h| &h.beacon)
    }

    /// Every beacon held for a space, by pool id.
    pub fn pools<'a>(&'a self, space: &'a SpaceId) -> impl Iterator<Item = &'a SeatBeacon> + 'a {
        self.held
            .range((space.clone(), String::new())..)
            .take_while(move |((s, _), _)| s == space)
            .map(|(_, h)| &h.beacon)
    }

    /// Drops beacons too old to say anything (unknown). Dropping them cannot let an older replay win later:
    /// anything older is past its freshness too.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let before = self.held.len();
        self.held
            .retain(|_, h| freshness(&h.beacon, now_ms) != Freshness::Unknown);
        before - self.held.len()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Every signed beacon held, in (space, pool) order (for sync).
    pub fn iter(&self) -> impl Iterator<Item = &SignedBeacon> {
        self.held.values().map(|h| &h.signed)
    }
}

/// How much a beacon can be trusted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its ttl.
    Fresh { age_s: u64 },
    /// Past its ttl by at most [`STALE_FOR_S`]: shown with "~".
    Stale { age_s: u64 },
    /// Too old to say anything.
    Unknown,
    /// The pool says it is closed.
    Closed,
}

/// Fresh while `now <= published + ttl`, stale for [`STALE_FOR_S`] after that, then unknown; closed when the
/// beacon says so.
pub fn freshness(beacon: &SeatBeacon, now_ms: i64) -> Freshness {
    Reading::from(beacon).freshness(now_ms)
}

/// The last moment `beacon` says anything: its ttl and [`STALE_FOR_S`] after it was published. From the
/// next millisecond on its [`freshness`] is [`Freshness::Unknown`], and a node stops offering it to sync.
pub fn says_nothing_after_ms(beacon: &SeatBeacon) -> i64 {
    Reading::from(beacon).says_nothing_after_ms()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::change::Denial;
    use deskmesh_keys::DeviceKey;
    use proptest::prelude::*;

    struct Only(PublicKey);
    impl Authority for Only {
        fn authorise(&self, _: &[Hash], key: &PublicKey, _: &SpaceId) -> Result<Hash, Denial> {
            if *key == self.0 {
                Ok(Hash::of("fake-auth", key.as_bytes()))
            } else {
                Err(Denial::denied("key is not a device of this space"))
            }
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn beacon(
        k: &DeviceKey,
        published_at_ms: i64,
        seq: u64,
        availability: Availability,
    ) -> SeatBeacon {
        SeatBeacon {
            space: SpaceId::derive(&key(1).public_key()),
            pool: "hot-desks".into(),
            availability,
            is_open: true,
            published_at_ms,
            ttl_s: 300,
            seq,
            author: k.public_key(),
            roster_heads: vec![Hash::of("roster-op", b"head")],
        }
    }

    #[test]
    fn a_removed_device_cannot_publish_seats_by_naming_old_roster_heads() {
        use deskmesh_keys::roster::{OpBody, Roster};
        let coordinator = key(7);
        let (a, b) = (key(1), key(2));
        let space = SpaceId::derive(&a.public_key());
        let (mut roster, _) = Roster::create(&coordinator, "North", vec![], 1, NOW).unwrap();
        let admit = roster.propose(
            &coordinator,
            OpBody::AdmitSpace {
                space: space.clone(),
                name: "Desk Co".into(),
                devices: vec![a.public_key(), b.public_key()],
            },
            NOW,
        );
        roster.insert(admit).unwrap();
        let before = roster.heads();
        let remove = roster.propose(
            &coordinator,
            OpBody::RemoveDevice {
                space: space.clone(),
                device: b.public_key(),
                keep: vec![],
            },
            NOW,
        );
        roster.insert(remove).unwrap();
        let mut board = BeaconBoard::new();
        let mut stolen = beacon(&b, NOW, 1, Availability::Count(9));
        stolen.roster_heads = before.clone();
        match board.offer(stolen.sign(&b).unwrap(), &roster, NOW) {
            Offered::Rejected(why) => assert!(why.contains("was removed"), "{why}"),
            other => panic!("a removed key's beacon was taken: {other:?}"),
        }
        let mut honest = beacon(&a, NOW, 1, Availability::Count(2));
        honest.roster_heads = before;
        assert_eq!(
            board.offer(honest.sign(&a).unwrap(), &roster, NOW),
            Offered::Stored
        );
    }

    #[test]
    fn a_beacon_round_trips_and_verifies() {
        let k = key(1);
        let b = beacon(&k, NOW, 1, Availability::Count(4));
        let s = b.sign(&k).unwrap();
        assert!(s.bytes.len() <= MAX_BEACON_BYTES);
        let back = SignedBeacon::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.verify(NOW).unwrap(), b);
    }

    #[test]
    fn limits_are_enforced() {
        let k = key(1);
        let mut b = beacon(&k, NOW, 1, Availability::Few);
        b.ttl_s = 29;
        assert!(matches!(b.sign(&k), Err(BeaconError::Ttl { ttl_s: 29 })));
        b.ttl_s = MAX_TTL_S + 1;
        assert!(matches!(b.sign(&k), Err(BeaconError::Ttl { .. })));
        b.ttl_s = MAX_TTL_S;
        assert!(b.sign(&k).is_ok());
        b.pool = "Hot Desks".into();
        assert!(matches!(b.sign(&k), Err(BeaconError::PoolId { .. })));
        b.pool = "a".repeat(33);
        assert!(matches!(b.sign(&k), Err(BeaconError::PoolId { .. })));
        b.pool = "main-floor_2".into();
        b.availability = Availability::Count(MAX_POOL_CAPACITY + 1);
        assert!(matches!(b.sign(&k), Err(BeaconError::Count { .. })));
        assert!(matches!(
            beacon(&k, NOW, 1, Availability::Few).sign(&key(2)),
            Err(BeaconError::SignerMismatch { .. })
        ));
        assert!(matches!(
            SignedBeacon::from_bytes(&vec![0; MAX_BEACON_BYTES + 1]),
            Err(BeaconError::TooLarge { .. })
        ));
    }

    #[test]
    fn beacons_from_the_future_are_refused_beyond_five_minutes() {
        let k = key(1);
        let ok = beacon(&k, NOW + MAX_FUTURE_MS, 1, Availability::Few)
            .sign(&k)
            .unwrap();
        assert!(ok.verify(NOW).is_ok());
        let ahead = beacon(&k, NOW + MAX_FUTURE_MS + 1000, 1, Availability::Few)
            .sign(&k)
            .unwrap();
        assert!(matches!(
            ahead.verify(NOW),
            Err(BeaconError::FromTheFuture { ahead_s: 301 })
        ));
    }

    #[test]
    fn a_forged_beacon_is_rejected() {
        let k = key(1);
        let mut board = BeaconBoard::new();
        let mut s = beacon(&k, NOW, 1, Availability::Count(4)).sign(&k).unwrap();
        // Claim more seats than the author signed for.
        let mut b = s.decode().unwrap();
        b.availability = Availability::Count(40);
        s.bytes = postcard::to_stdvec(&b).unwrap();
        let out = board.offer(s, &Only(k.public_key()), NOW);
        assert!(
            matches!(&out, Offered::Rejected(r) if r.contains("signature")),
            "{out:?}"
        );
        assert!(board.is_empty());
    }

    #[test]
    fn an_unauthorised_author_is_rejected() {
        let k = key(1);
        let intruder = key(7);
        let mut board = BeaconBoard::new();
        let s = beacon(&intruder, NOW, 1, Availability::Many)
            .sign(&intruder)
            .unwrap();
        let out = board.offer(s, &Only(k.public_key()), NOW);
        assert!(
            matches!(&out, Offered::Rejected(r) if r.contains("not a device")),
            "{out:?}"
        );
        assert!(board.is_empty());
    }

    #[test]
    fn freshness_boundaries() {
        let k = key(1);
        let b = beacon(&k, NOW, 1, Availability::Count(4));
        let ttl_ms = 300_000;
        assert_eq!(freshness(&b, NOW - 1000), Freshness::Fresh { age_s: 0 });
        assert_eq!(freshness(&b, NOW + ttl_ms), Freshness::Fresh { age_s: 300 });
        assert_eq!(
            freshness(&b, NOW + ttl_ms + 1),
            Freshness::Stale { age_s: 300 }
        );
        let last_stale = NOW + ttl_ms + 15 * 60_000;
        assert_eq!(freshness(&b, last_stale), Freshness::Stale { age_s: 1200 });
        assert_eq!(freshness(&b, last_stale + 1), Freshness::Unknown);
        let mut closed = b.clone();
        closed.is_open = false;
        assert_eq!(freshness(&closed, NOW), Freshness::Closed);
        closed.is_open = true;
        closed.availability = Availability::Closed;
        assert_eq!(freshness(&closed, NOW), Freshness::Closed);
        assert_eq!(freshness(&closed, last_stale + 1), Freshness::Unknown);
        assert_eq!(says_nothing_after_ms(&b), last_stale);
        assert_eq!(says_nothing_after_ms(&closed), last_stale);
    }

    #[test]
    fn the_board_keeps_one_per_pool_and_prunes_the_expired() {
        let k = key(1);
        let auth = Only(k.public_key());
        let mut board = BeaconBoard::new();
        let b = beacon(&k, NOW, 1, Availability::Count(3));
        let space = b.space.clone();
        assert_eq!(
            board.offer(b.sign(&k).unwrap(), &auth, NOW),
            Offered::Stored
        );
        let mut room = beacon(&k, NOW, 1, Availability::Full);
        room.pool = "room".into();
        assert_eq!(
            board.offer(room.sign(&k).unwrap(), &auth, NOW),
            Offered::Stored
        );
        assert_eq!(board.pools(&space).count(), 2);
        assert_eq!(board.prune(NOW + 3_600_000), 2);
        assert!(board.is_empty());
        let expired = beacon(&k, NOW, 2, Availability::Many).sign(&k).unwrap();
        assert_eq!(board.offer(expired, &auth, NOW + 3_600_000), Offered::Older);
        assert!(board.is_empty());
    }

    proptest! {
        #[test]
        fn says_nothing_after_is_where_freshness_turns_unknown(
            ttl_s in MIN_TTL_S..=MAX_TTL_S,
            published in -10_000_000_000i64..10_000_000_000,
            offset in -100_000_000i64..100_000_000,
            open in any::<bool>(),
        ) {
            let mut b = beacon(&key(1), published, 0, Availability::Many);
            b.ttl_s = ttl_s;
            b.is_open = open;
            let now = published + offset;
            prop_assert_eq!(
                freshness(&b, now) == Freshness::Unknown,
                now > says_nothing_after_ms(&b)
            );
        }

        #[test]
        fn newest_wins_whatever_the_arrival_order(
            items in proptest::collection::vec((0i64..5, 0u64..3, 0u32..20), 1..8),
            seed in any::<u64>(),
        ) {
            let k = key(1);
            let auth = Only(k.public_key());
            let signed: Vec<SignedBeacon> = items
                .iter()
                .map(|(t, seq, n)| beacon(&k, NOW + t * 1000, *seq, Availability::Count(*n)).sign(&k).unwrap())
                .collect();
            let best = signed
                .iter()
                .find(|a| signed.iter().all(|b| a == &b || newer(a, b)))
                .cloned();
            let best = best.expect("one beacon is newer than all others");
            let mut order = signed.clone();
            order.extend(signed.iter().cloned());
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut board = BeaconBoard::new();
            for b in order {
                let out = board.offer(b, &auth, NOW);
                prop_assert!(matches!(out, Offered::Stored | Offered::Older), "{:?}", out);
            }
            let space = SpaceId::derive(&k.public_key());
            prop_assert_eq!(board.get(&space, "hot-desks"), Some(&best));
            prop_assert_eq!(board.len(), 1);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(s) = SignedBeacon::from_bytes(&bytes) {
                let _ = s.verify(NOW);
            }
        }
    }
}
