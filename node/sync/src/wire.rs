//! The sync protocol's messages and their encoding: a version byte, then the postcard encoding of a
//! [`Msg`]. Decoding is total (garbage gives a [`SyncError`], never a panic) and checks everything a
//! message claims about itself: size, version, trailing bytes, and that its ranges cover the key space in
//! order with each listed key inside its range.

use serde::{Deserialize, Serialize};

use super::set::{Bound, Fingerprint, KeyRange, KEY_LEN};
use super::{Item, ItemId, SyncError};

/// The protocol version this node speaks; the first byte of every encoded message, and the number in the
/// mesh's `/deskmesh/sync/N` protocol name. Version 3 has six item kinds (roster operation 0, checkpoint 1,
/// listing change 2, seat beacon 3, verification 4, proposal 5); versions 1 and 2 numbered fewer kinds
/// differently, so an older node's message is a clear version error rather than a misread one.
pub const VERSION: u8 = 3;

/// Largest encoded message a node sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Most ids one [`Msg::Want`] may name (32 KiB of ids).
pub const MAX_WANT_IDS: usize = 1024;

/// One message between two sync engines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Opens reconciliation session `session` of the sender; `nonce` breaks the tie when both sides open
    /// a session at the same moment (the larger nonce goes on).
    Open {
        session: u32,
        nonce: u64,
        ranges: Vec<Range>,
    },
    /// A later round of a session; `initiator` says whether the sender opened it. An empty `ranges`, or
    /// one with no `Fingerprint` and no `IdList`, ends the session. `lacking` names items the sender
    /// lacks among those the receiver listed in an `IdList`, so the receiver sends them.
    Round {
        session: u32,
        initiator: bool,
        ranges: Vec<Range>,
        lacking: Vec<ItemId>,
    },
    /// Asks for these items; the receiver's I/O layer sends those it has.
    Want(Vec<ItemId>),
}

/// One range of a round: it runs from the previous range's `upper` (or the bottom of key space) to
/// `upper`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub upper: Bound,
    pub mode: Mode,
}

/// What a round says about one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Nothing to do here (the sides agree or the range is being handled elsewhere).
    Skip,
    /// The sender's fingerprint of its items in the range.
    Fingerprint(Fingerprint),
    /// Every item the sender has in the range, in key order.
    IdList(Vec<Item>),
}

impl Mode {
    /// Whether the receiver must answer this range.
    pub fn needs_answer(&self) -> bool {
        !matches!(self, Mode::Skip)
    }
}

/// Encoded size of a value, as postcard would write it.
pub(crate) fn encoded_size<T: Serialize + ?Sized>(value: &T) -> usize {
    // Counting bytes cannot fail for these plain data types; a failure would only under-count.
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()).unwrap_or(0)
}

impl Msg {
    /// The version byte followed by the postcard encoding.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, vec![VERSION])
    }

    /// Size of [`Msg::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        1 + encoded_size(self)
    }

    /// Decodes and validates one message, refusing anything over `MAX_MESSAGE_BYTES`.
    pub fn decode(bytes: &[u8]) -> Result<Msg, SyncError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(SyncError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let (&version, body) = bytes
            .split_first()
            .ok_or_else(|| SyncError::Malformed("the message is empty".into()))?;
        if version != VERSION {
            return Err(SyncError::Version(version));
        }
        let (msg, rest): (Msg, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| SyncError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(SyncError::Malformed(format!(
                "{} bytes follow the message",
                rest.len()
            )));
        }
        msg.validate()?;
        Ok(msg)
    }

    /// Checks the claims a message makes about itself (the engine adds its own limits).
    pub fn validate(&self) -> Result<(), SyncError> {
        match self {
            Msg::Open { ranges, .. } => {
                if ranges.is_empty() {
                    return Err(SyncError::BadRanges("an opening round has no ranges"));
                }
                validate_ranges(ranges)
            }
            Msg::Round { ranges, .. } => validate_ranges(ranges),
            Msg::Want(_) => Ok(()),
        }
    }
}

/// Ranges must be empty or cover the whole key space: bounds strictly increasing, the last one `End`,
/// every listed key inside its range and in strictly increasing order.
fn validate_ranges(ranges: &[Range]) -> Result<(), SyncError> {
    let Some(last) = ranges.last() else {
        return Ok(());
    };
    if last.upper != Bound::End {
        return Err(SyncError::BadRanges(
            "the last range does not end at the top",
        ));
    }
    let mut lower = Bound::MIN;
    for range in ranges {
        if let Bound::Prefix(p) = &range.upper {
            if p.len() > KEY_LEN {
                return Err(SyncError::BadRanges("a bound is longer than a key"));
            }
        }
        if range.upper.cmp_point(&lower).is_le() {
            return Err(SyncError::BadRanges("range bounds are not increasing"));
        }
        if let Mode::IdList(items) = &range.mode {
            let span = KeyRange::new(lower, range.upper.clone());
            if !items.windows(2).all(|w| w[0] < w[1]) {
                return Err(SyncError::BadRanges("an id list is not sorted"));
            }
            if !items.iter().all(|it| span.contains(it)) {
                return Err(SyncError::BadRanges(
                    "an id list holds a key outside its range",
                ));
            }
            lower = span.upper;
        } else {
            lower = range.upper.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ItemKind;

    /// The key byte of listing changes, which the sample ranges bound.
    const LISTING: u8 = 2;

    fn item(first: u8) -> Item {
        Item::new(ItemKind::ListingChange, ItemId([first; 32]))
    }

    fn sample() -> Msg {
        Msg::Round {
            session: 7,
            initiator: true,
            ranges: vec![
                Range {
                    upper: Bound::Prefix(vec![LISTING, 0x40]),
                    mode: Mode::Skip,
                },
                Range {
                    upper: Bound::Prefix(vec![LISTING, 0x80]),
                    mode: Mode::IdList(vec![item(0x41), item(0x42)]),
                },
                Range {
                    upper: Bound::End,
                    mode: Mode::Fingerprint(Fingerprint([9; 16])),
                },
            ],
            lacking: vec![ItemId([3; 32])],
        }
    }

    #[test]
    fn round_trips_and_reports_its_size() {
        let msg = sample();
        let bytes = msg.encode().expect("encodes");
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes.len(), msg.encoded_len());
        assert_eq!(Msg::decode(&bytes), Ok(msg));
    }

    #[test]
    fn refuses_bad_envelopes_with_a_reason() {
        let bytes = sample().encode().expect("encodes");
        assert!(matches!(Msg::decode(&[]), Err(SyncError::Malformed(_))));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(Msg::decode(&wrong), Err(SyncError::Version(9)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Msg::decode(&trailing),
            Err(SyncError::Malformed(_))
        ));
        let huge = vec![VERSION; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Msg::decode(&huge),
            Err(SyncError::TooLarge { .. })
        ));
        let err = Msg::decode(&bytes[..bytes.len() - 3]).expect_err("truncated");
        assert!(err
            .to_string()
            .starts_with("sync message could not be decoded"));
    }

    #[test]
    fn refuses_ranges_that_do_not_cover_key_space_in_order() {
        let skip = |upper: Bound| Range {
            upper,
            mode: Mode::Skip,
        };
        let round = |ranges| Msg::Round {
            session: 1,
            initiator: false,
            ranges,
            lacking: vec![],
        };
        let open_end = round(vec![skip(Bound::Prefix(vec![1]))]);
        assert!(matches!(open_end.validate(), Err(SyncError::BadRanges(_))));
        let backwards = round(vec![
            skip(Bound::Prefix(vec![2])),
            skip(Bound::Prefix(vec![1, 0, 0])),
            skip(Bound::End),
        ]);
        assert!(backwards.validate().is_err());
        let equal_points = round(vec![
            skip(Bound::Prefix(vec![1])),
            skip(Bound::Prefix(vec![1, 0])),
            skip(Bound::End),
        ]);
        assert!(equal_points.validate().is_err());
        let outside = round(vec![
            Range {
                upper: Bound::Prefix(vec![LISTING, 0x10]),
                mode: Mode::IdList(vec![item(0x20)]),
            },
            skip(Bound::End),
        ]);
        assert!(outside.validate().is_err());
        let unsorted = round(vec![Range {
            upper: Bound::End,
            mode: Mode::IdList(vec![item(2), item(1)]),
        }]);
        assert!(unsorted.validate().is_err());
        let too_long = round(vec![skip(Bound::Prefix(vec![1; 34])), skip(Bound::End)]);
        assert!(too_long.validate().is_err());
        let empty_open = Msg::Open {
            session: 1,
            nonce: 1,
            ranges: vec![],
        };
        assert!(empty_open.validate().is_err());
        assert_eq!(round(vec![]).validate(), Ok(()));
        assert_eq!(sample().validate(), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random bytes never panic the decoder, with or without a valid version byte in front.
        #[test]
        fn decoding_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..600), versioned in any::<bool>()) {
            if versioned {
                bytes.insert(0, VERSION);
            }
            if let Ok(msg) = Msg::decode(&bytes) {
                // Whatever decodes is valid and re-encodes to the same bytes (postcard is canonical).
                prop_assert_eq!(msg.validate(), Ok(()));
                prop_assert_eq!(msg.encode().expect("encodes"), bytes);
            }
        }

        /// Flipping bytes of a real message never panics the decoder either.
        #[test]
        fn corrupting_a_real_message_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = sample().encode().expect("encodes");
            for (at, value) in flips {
                let n = bytes.len();
                bytes[at % n] = value;
            }
            let _ = Msg::decode(&bytes);
        }
    }
}
