//! Signatures checked together, with the same verdict as one at a time.
//!
//! deskmesh's rule for an ed25519 signature (`docs/PROTOCOL.md`, "Signatures") is ZIP-215's, the
//! consensus rule Zcash wrote so that every node and every way of checking agrees: `s` is canonical
//! (below the group order), the key `A` and the commitment `R` are any 32 bytes that decode to curve
//! points, and the *cofactored* equation `[8][s]B = [8]R + [8][k]A` holds, with `k = SHA-512(R || A ||
//! message)`. One more rule of ours: a key of small order (one of the 14 encodings of the eight torsion
//! points) signs nothing, because anyone can make its signatures.
//!
//! Because the equation is cofactored, checking many signatures as one random linear combination (one
//! multiscalar multiplication, about half the cost per signature in batches of 32 to 64: `deskmesh-bench
//! crypto`) accepts a batch exactly when each of its signatures would be accepted alone, whatever batch
//! an item lands in. The cofactorless check of ed25519-dalek's `verify_strict` and `verify_batch` does
//! not have that property (a signature with a small-order residue passes some batches and not others),
//! which is why the checks here are `ed25519-zebra`'s, built on the same curve25519-dalek arithmetic.
//!
//! [`check_together`] runs a pure function over many items with their signature checks gathered: every
//! [`PublicKey::verify`](crate::PublicKey::verify) the function makes on this thread is queued and
//! answered "valid" for now, the queue is checked as one batch at the end, and only when the batch fails
//! are the items checked one signature at a time; an item with a signature that does not verify is then
//! run again with nothing gathered, so its result is exactly what it would have been alone.

use std::cell::RefCell;
use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::batch;
use ed25519_zebra::ed25519::Signature as ZSignature;
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};

thread_local! {
    /// The signatures queued on this thread while [`check_together`] runs an item; `None` otherwise.
    static GATHERED: RefCell<Option<Vec<batch::Item>>> = const { RefCell::new(None) };
}

/// Every 32-byte string that decodes to a point of small order: the eight torsion points in their
/// canonical encodings, with the sign bit flipped where `x = 0`, and with `y + p` where `y < 19` (decoding
/// reduces `y` modulo `p`, as ZIP-215 asks). Worked out once from the points themselves.
fn small_order_encodings() -> &'static [[u8; 32]] {
    static SET: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut out: Vec<[u8; 32]> = Vec::new();
        for point in EIGHT_TORSION {
            let canonical = point.compress().to_bytes();
            let mut candidates = vec![canonical];
            let small_y = canonical[0] < 19
                && canonical[1..31].iter().all(|b| *b == 0)
                && canonical[31] & 0x7f == 0;
            if small_y {
                // y + p, where p = 2^255 - 19 = 0x7fff..ffed (little-endian), keeping the sign bit.
                let mut plus_p = [0xffu8; 32];
                plus_p[0] = 0xed + canonical[0];
                plus_p[31] = 0x7f | (canonical[31] & 0x80);
                candidates.push(plus_p);
            }
            for c in candidates.clone() {
                let mut flipped = c;
                flipped[31] ^= 0x80;
                candidates.push(flipped);
            }
            for c in candidates {
                let small = CompressedEdwardsY(c)
                    .decompress()
                    .is_some_and(|p| p.is_small_order());
                if small && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    })
}

/// Is `key` one of the encodings of a point of small order (a key that cannot sign anything)?
pub fn is_small_order_key(key: &[u8; 32]) -> bool {
    small_order_encodings().contains(key)
}

/// Checks one signature over `framed` (the domain-framed message) by the rule above: queued instead
/// while [`check_together`] gathers on this thread. A key of small order is refused either way.
pub(crate) fn verify(key: &[u8; 32], framed: &[u8], signature: &[u8; 64]) -> bool {
    if is_small_order_key(key) {
        return false;
    }
    let sig = ZSignature::from_bytes(signature);
    let vk = VerificationKeyBytes::from(*key);
    let queued = GATHERED.with(|g| match g.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push(batch::Item::from((vk, sig, framed)));
            true
        }
        None => false,
    });
    queued
        || VerificationKey::try_from(vk)
            .and_then(|vk| vk.verify(&sig, framed))
            .is_ok()
}

/// Puts this thread's queue back as it was when dropped, even if the item's function panicked.
struct Gathering {
    outer: Option<Vec<batch::Item>>,
}

impl Gathering {
    fn start() -> Self {
        let outer = GATHERED.with(|g| g.borrow_mut().replace(Vec::new()));
        Self { outer }
    }

    fn finish(self) -> Vec<batch::Item> {
        GATHERED.with(|g| g.borrow_mut().take()).unwrap_or_default()
        // `self` drops here and restores the outer queue.
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        let outer = self.outer.take();
        GATHERED.with(|g| *g.borrow_mut() = outer);
    }
}

/// Is this thread gathering already (inside an item of an outer [`check_together`])?
fn gathering() -> bool {
    GATHERED.with(|g| g.borrow().is_some())
}

/// `f` of every item, in input order, with the signature checks of all of them made as one batch.
///
/// `f` must be pure: its result may depend on whether a signature verified, and on nothing this thread
/// keeps. The result of an item is kept only when all its signatures are found valid, in the batch or
/// one by one; an item with a signature that is not valid is run again with every check made at once,
/// so each result equals `f(item)` run alone. A forged item costs its batch one check per signature on
/// top of the batch, and its own second run.
///
/// Inside an outer `check_together` (an item whose check checks more items), the signatures join the
/// outer batch. A single item is checked as it comes.
pub fn check_together<T, R>(items: &[T], f: impl Fn(&T) -> R) -> Vec<R> {
    if items.len() < 2 || gathering() {
        return items.iter().map(f).collect();
    }
    let mut done: Vec<(R, Vec<batch::Item>)> = Vec::with_capacity(items.len());
    for item in items {
        let gathering = Gathering::start();
        let result = f(item);
        done.push((result, gathering.finish()));
    }
    let mut verifier = batch::Verifier::new();
    let mut any = false;
    for (_, queued) in &done {
        for q in queued {
            verifier.queue(q.clone());
            any = true;
        }
    }
    if !any || verifier.verify(rand::thread_rng()).is_ok() {
        return done.into_iter().map(|(r, _)| r).collect();
    }
    done.into_iter()
        .zip(items)
        .map(|((result, queued), item)| {
            if queued.into_iter().all(|q| q.verify_single().is_ok()) {
                result
            } else {
                f(item)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceKey, Domain, PublicKey, Signature, Signer};
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    /// A key read as stored bytes (serde checks only the length), the way a forged item carries one.
    fn stored_key(bytes: [u8; 32]) -> PublicKey {
        postcard::from_bytes(&postcard::to_allocvec(&bytes).unwrap()).unwrap()
    }

    fn sig(bytes: [u8; 64]) -> Signature {
        Signature::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn the_small_order_encodings_are_the_fourteen_and_agree_with_dalek() {
        let set = small_order_encodings();
        // identity: y = 1 and y = 1 + p, each with either sign bit (4); order 2: y = -1, either sign (2);
        // order 4: y = 0 and y = p, x = +-i, either sign (4); order 8: four points (4).
        assert_eq!(set.len(), 14, "{set:02x?}");
        for enc in set {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(enc).expect("decodes");
            assert!(
                vk.is_weak(),
                "ed25519-dalek agrees {enc:02x?} is of small order"
            );
        }
        for _ in 0..200 {
            let key = DeviceKey::generate().public_key();
            assert!(!is_small_order_key(key.as_bytes()));
        }
    }

    #[test]
    fn a_key_of_small_order_signs_nothing() {
        // With A of order dividing 8, [8][k]A = 0, so (R, s) = ([s]B, s) satisfies the cofactored
        // equation for every message: anyone could sign for such a key. It is refused alone and in a batch.
        let s = Scalar::from(12345u64);
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&(B * s).compress().to_bytes());
        bytes[32..].copy_from_slice(s.as_bytes());
        let framed = Domain::ListingChange.framed(b"anything at all");
        for weak in small_order_encodings() {
            let equation_alone = VerificationKey::try_from(*weak)
                .and_then(|vk| vk.verify(&ZSignature::from_bytes(&bytes), &framed));
            assert!(equation_alone.is_ok(), "the equation alone would accept it");
            assert!(!verify(weak, &framed, &bytes));
            let key = stored_key(*weak);
            let got = check_together(&[0, 1], |_| {
                key.verify(Domain::ListingChange, b"anything at all", &sig(bytes))
                    .is_ok()
            });
            assert_eq!(got, vec![false, false]);
        }
    }

    /// A key from a known secret scalar, and a signature by it over `framed` whose residue
    /// `[s]B - R - [k]A` is the torsion point `t` (a point of small order): valid under the cofactored
    /// rule, refused by the cofactorless one.
    fn with_residue(secret: Scalar, framed: &[u8], t: usize) -> (PublicKey, [u8; 64]) {
        let a = (B * secret).compress().to_bytes();
        let nonce = Scalar::from(987_654_321u64 + t as u64);
        let r = (B * nonce - EIGHT_TORSION[t]).compress().to_bytes();
        let mut h = Sha512::new();
        h.update(r);
        h.update(a);
        h.update(framed);
        let k = Scalar::from_hash(h);
        let s = nonce + k * secret;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(s.as_bytes());
        (stored_key(a), bytes)
    }

    #[test]
    fn a_signature_with_a_small_order_residue_gets_one_verdict_in_every_batch() {
        let framed = Domain::SeatBeacon.framed(b"seats: 3");
        for t in 1..8 {
            let (key, bytes) = with_residue(Scalar::from(424_242u64 + t as u64), &framed, t);
            let dalek = ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).unwrap();
            assert!(
                dalek
                    .verify_strict(&framed, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_err(),
                "the cofactorless rule refuses it (t = {t})"
            );
            assert!(verify(key.as_bytes(), &framed, &bytes), "ours accepts it");
            // In batches of every size beside honest signatures: always accepted, never by chance.
            for size in [2usize, 3, 17, 64] {
                let items: Vec<usize> = (0..size).collect();
                let honest: Vec<(PublicKey, Signature)> = (0..size)
                    .map(|_| {
                        let k = DeviceKey::generate();
                        (k.public_key(), k.sign(Domain::SeatBeacon, b"seats: 3"))
                    })
                    .collect();
                let got = check_together(&items, |i| {
                    if *i == size / 2 {
                        key.verify(Domain::SeatBeacon, b"seats: 3", &sig(bytes))
                            .is_ok()
                    } else {
                        let (k, s) = &honest[*i];
                        k.verify(Domain::SeatBeacon, b"seats: 3", s).is_ok()
                    }
                });
                assert!(got.iter().all(|ok| *ok), "t {t} size {size}: {got:?}");
            }
        }
    }

    #[test]
    fn a_forged_item_in_a_batch_is_told_alone_and_the_others_stay_valid() {
        let keys: Vec<DeviceKey> = (0..40).map(|_| DeviceKey::generate()).collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .map(|k| k.sign(Domain::ListingChange, b"listing"))
            .collect();
        let forged = [3usize, 21, 39];
        for i in forged {
            let mut b = *sigs[i].as_bytes();
            b[40] ^= 1;
            sigs[i] = sig(b);
        }
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let items: Vec<usize> = (0..keys.len()).collect();
        let got = check_together(&items, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            keys[*i]
                .public_key()
                .verify(Domain::ListingChange, b"listing", &sigs[*i])
                .map_err(|e| e.to_string())
        });
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.is_err(), forged.contains(&i), "item {i}: {r:?}");
        }
        assert!(got[3].as_ref().unwrap_err().contains("does not verify"));
        // Every item once, and the forged ones once more.
        assert_eq!(calls.into_inner(), keys.len() + forged.len());
        // Nothing is left gathering on this thread: a lone check is made at once.
        assert!(!gathering());
        assert!(keys[3]
            .public_key()
            .verify(Domain::ListingChange, b"listing", &sigs[3])
            .is_err());
    }

    #[test]
    fn malformed_signatures_are_refused_in_and_out_of_batches() {
        let key = DeviceKey::generate();
        let good = *key.sign(Domain::RosterOp, b"op").as_bytes();
        // s + l, where l is the group order (little-endian): the same residue modulo l, but not
        // canonical, so refused.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut high_s = good;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(good[32 + i]) + u16::from(L[i]) + carry;
            high_s[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        // An R that is not a curve point.
        let mut bad_r = good;
        let not_a_point = (0u8..=255)
            .map(|b| {
                let mut c = [0u8; 32];
                c[0] = b;
                c[1] = 7;
                c
            })
            .find(|c| CompressedEdwardsY(*c).decompress().is_none())
            .unwrap();
        bad_r[..32].copy_from_slice(&not_a_point);
        let cases = [good, high_s, bad_r, good];
        let alone: Vec<bool> = cases
            .iter()
            .map(|s| {
                key.public_key()
                    .verify(Domain::RosterOp, b"op", &sig(*s))
                    .is_ok()
            })
            .collect();
        assert_eq!(alone, vec![true, false, false, true]);
        let together = check_together(&[0usize, 1, 2, 3], |i| {
            key.public_key()
                .verify(Domain::RosterOp, b"op", &sig(cases[*i]))
                .is_ok()
        });
        assert_eq!(together, alone);
    }

    #[test]
    fn a_panicking_item_leaves_the_thread_not_gathering() {
        let outcome = std::panic::catch_unwind(|| {
            check_together(&[1, 2, 3], |i| {
                if *i == 2 {
                    panic!("boom");
                }
                *i
            })
        });
        assert!(outcome.is_err());
        assert!(!gathering());
    }

    #[test]
    fn nested_checks_join_the_outer_batch() {
        let keys: Vec<DeviceKey> = (0..6).map(|_| DeviceKey::generate()).collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .map(|k| k.sign(Domain::RosterOp, b"x"))
            .collect();
        let mut b = *sigs[4].as_bytes();
        b[1] ^= 1;
        sigs[4] = sig(b);
        let check = |i: &usize| {
            keys[*i]
                .public_key()
                .verify(Domain::RosterOp, b"x", &sigs[*i])
                .is_ok()
        };
        let outer = check_together(&[0usize, 1], |half| {
            let part: Vec<usize> = (half * 3..half * 3 + 3).collect();
            check_together(&part, check)
        });
        assert_eq!(outer, vec![vec![true, true, true], vec![true, false, true]]);
    }
}
