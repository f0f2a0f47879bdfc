//! One step of range-based set reconciliation as pure functions over an [`ItemSet`]: the opening round,
//! and the answer to a peer's round (which ranges to split further, which items each side lacks). The
//! engine owns sessions, limits and time; this module owns only the arithmetic of ranges.

use super::set::{Bound, ItemSet, KeyRange};
use super::wire::{encoded_size, Mode, Range};
use super::Item;

/// The shape of the ranges a node sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// How many ranges a mismatched range is split into.
    pub buckets: usize,
    /// A range with at most this many of our items is sent as a key list instead of being split.
    pub id_list_threshold: usize,
}

/// Appends our answer for `range`: its key list when short, otherwise `buckets` fingerprinted
/// sub-ranges of equal item count.
fn split(set: &impl ItemSet, range: KeyRange, p: &Params, out: &mut Vec<Range>) {
    let n = set.count(&range);
    // The threshold is at least `buckets` (the engine checks), so every sub-range below gets an item.
    if n <= p.id_list_threshold.max(p.buckets) {
        let items = set.items(&range);
        out.push(Range {
            upper: range.upper,
            mode: Mode::IdList(items),
        });
        return;
    }
    let mut lower = range.lower.clone();
    for i in 1..p.buckets {
        let rank = n * i / p.buckets;
        let (Some(prev), Some(next)) = (set.nth(&range, rank - 1), set.nth(&range, rank)) else {
            // Only an `ItemSet` whose `nth` disagrees with its `count` gets here; the last sub-range
            // below then covers the rest, which is still a valid answer.
            break;
        };
        let upper = Bound::between(&prev, &next);
        let sub = KeyRange::new(lower, upper.clone());
        out.push(Range {
            upper,
            mode: Mode::Fingerprint(set.fingerprint(&sub)),
        });
        lower = sub.upper;
    }
    let last = KeyRange::new(lower, range.upper);
    out.push(Range {
        mode: Mode::Fingerprint(set.fingerprint(&last)),
        upper: last.upper,
    });
}

/// The opening round: the whole key space, split (or listed, for a small set).
pub fn open(set: &impl ItemSet, p: &Params) -> Vec<Range> {
    let mut out = Vec::new();
    split(set, KeyRange::all(), p, &mut out);
    out
}

/// Our answer to a peer's round, before it is sized into a message.
#[derive(Debug, Default)]
pub struct Answer {
    /// Our split or listed version of each mismatched range: (index of the incoming range, its lower
    /// bound, our ranges covering it).
    pieces: Vec<(usize, Bound, Vec<Range>)>,
    /// Items the peer listed that we lack.
    pub lacking: Vec<Item>,
    /// Our items in ranges the peer listed that the peer lacks.
    pub push: Vec<Item>,
}

/// Answers `incoming` (already validated to cover key space in order).
pub fn answer(set: &impl ItemSet, incoming: &[Range], p: &Params) -> Answer {
    let mut ans = Answer::default();
    let mut lower = Bound::MIN;
    for (i, r) in incoming.iter().enumerate() {
        let range = KeyRange::new(lower, r.upper.clone());
        match &r.mode {
            Mode::Skip => {}
            Mode::Fingerprint(theirs) => {
                if set.fingerprint(&range) != *theirs {
                    let mut piece = Vec::new();
                    split(set, range.clone(), p, &mut piece);
                    ans.pieces.push((i, range.lower.clone(), piece));
                }
            }
            Mode::IdList(theirs) => diff(&set.items(&range), theirs, &mut ans),
        }
        lower = range.upper;
    }
    ans
}

impl Answer {
    /// The ranges to send back, encoded in at most `budget` bytes; empty when no range needs the peer's
    /// attention. Ranges that do not fit are folded into one fingerprint over the rest of key space, which
    /// the peer splits in the next round, so a big difference takes more rounds, never a bigger message.
    /// `budget` must hold the largest single piece (the engine's config checks guarantee it).
    pub fn ranges(&mut self, set: &impl ItemSet, budget: usize) -> Vec<Range> {
        let mut out = Vec::new();
        let skip_size = encoded_size(&Range {
            upper: Bound::Prefix(vec![0; 33]),
            mode: Mode::Skip,
        });
        // Room kept for the fold itself: a skip and a fingerprint range ending at `End`.
        let fold_size = skip_size + 2 + 17;
        let mut size = 0;
        let mut next_index = 0;
        for (i, lower, piece) in std::mem::take(&mut self.pieces) {
            let gap = if i > next_index { skip_size } else { 0 };
            let piece_size: usize = piece.iter().map(encoded_size).sum();
            if size + gap + piece_size + fold_size > budget {
                if gap > 0 {
                    out.push(Range {
                        upper: lower.clone(),
                        mode: Mode::Skip,
                    });
                }
                let rest = KeyRange::new(lower, Bound::End);
                out.push(Range {
                    mode: Mode::Fingerprint(set.fingerprint(&rest)),
                    upper: rest.upper,
                });
                return out;
            }
            if gap > 0 {
                out.push(Range {
                    upper: lower,
                    mode: Mode::Skip,
                });
            }
            size += gap + piece_size;
            out.extend(piece);
            next_index = i + 1;
        }
        if out.last().is_some_and(|r| r.upper != Bound::End) {
            out.push(Range {
                upper: Bound::End,
                mode: Mode::Skip,
            });
        }
        out
    }
}

/// Merges two sorted key lists of one range into what each side lacks.
fn diff(ours: &[Item], theirs: &[Item], ans: &mut Answer) {
    let (mut i, mut j) = (0, 0);
    while i < ours.len() || j < theirs.len() {
        match (ours.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                ans.push.push(*a);
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                ans.lacking.push(*b);
                j += 1;
            }
            (Some(a), None) => {
                ans.push.push(*a);
                i += 1;
            }
            (None, None) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::set::MemorySet;
    use crate::{ItemId, ItemKind};

    const P: Params = Params {
        buckets: 16,
        id_list_threshold: 32,
    };

    /// Runs a whole exchange between two sets with these pure functions only, returning what each side
    /// must send the other and how many rounds it took.
    fn exchange(
        a: &MemorySet,
        b: &MemorySet,
        budget: usize,
    ) -> (BTreeSet<Item>, BTreeSet<Item>, usize) {
        let (mut to_b, mut to_a) = (BTreeSet::new(), BTreeSet::new());
        let mut ranges = open(a, &P);
        let mut rounds = 1;
        let mut a_turn = false;
        while ranges.iter().any(|r| r.mode.needs_answer()) {
            let (set, push, lack) = if a_turn {
                (a, &mut to_b, &mut to_a)
            } else {
                (b, &mut to_a, &mut to_b)
            };
            let mut ans = answer(set, &ranges, &P);
            ranges = ans.ranges(set, budget);
            push.extend(ans.push);
            lack.extend(ans.lacking);
            rounds += 1;
            a_turn = !a_turn;
            assert!(rounds < 100, "reconciliation does not terminate");
        }
        (to_b, to_a, rounds)
    }

    fn arb_items(max: usize) -> impl Strategy<Value = BTreeSet<Item>> {
        proptest::collection::btree_set(
            (0usize..3, any::<[u8; 32]>())
                .prop_map(|(k, id)| Item::new(ItemKind::ALL[k], ItemId(id))),
            0..max,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the two sets, the exchange finds exactly each side's missing items, also when a tiny
        /// message budget forces folding.
        #[test]
        fn finds_exactly_the_differences(
            shared in arb_items(400),
            only_a in arb_items(120),
            only_b in arb_items(120),
            tight in any::<bool>(),
        ) {
            let a: MemorySet = shared.iter().chain(&only_a).copied().collect();
            let b: MemorySet = shared.iter().chain(&only_b).copied().collect();
            let budget = if tight { 2_000 } else { 60_000 };
            let (to_b, to_a, _) = exchange(&a, &b, budget);
            let a_all: BTreeSet<Item> = a.iter().copied().collect();
            let b_all: BTreeSet<Item> = b.iter().copied().collect();
            let want_b: BTreeSet<Item> = a_all.difference(&b_all).copied().collect();
            let want_a: BTreeSet<Item> = b_all.difference(&a_all).copied().collect();
            prop_assert_eq!(to_b, want_b);
            prop_assert_eq!(to_a, want_a);
        }
    }

    #[test]
    fn an_empty_side_lists_nothing_and_gets_everything() {
        let a: MemorySet = MemorySet::new();
        let b: MemorySet = (0..500u16)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..2].copy_from_slice(&i.to_be_bytes());
                Item::new(ItemKind::RosterOp, ItemId(id))
            })
            .collect();
        let first = open(&a, &P);
        assert_eq!(
            first,
            vec![Range {
                upper: Bound::End,
                mode: Mode::IdList(vec![])
            }]
        );
        let mut ans = answer(&b, &first, &P);
        assert!(ans.ranges(&b, 60_000).is_empty());
        assert_eq!(ans.push.len(), 500);
        assert!(ans.lacking.is_empty());
    }
}
