//! One-line invite tokens: everything a new space's node needs to join an alliance, verifiable offline.
//!
//! An [`Invite`] carries the roster operations that lead to the grant of the invitee's key (the causal
//! closure of an `AdmitSpace` or `AddDevice` operation, in order, starting with `CreateAlliance`), so the
//! invitee can check every signature and authorisation without trusting whoever passed the token along.
//! The token is `dmi1` followed by lowercase base32 (no padding) of `postcard(Invite)` and a 4-byte
//! checksum, so a typo or a line cut short by a chat client is caught before anything is decoded.
//! A [`MemberInvite`] (`dmm1…`, same encoding) lets a member's laptop follow the alliance read-only: it
//! carries only the alliance's create operation and peers to dial.

use serde::{Deserialize, Serialize};

use crate::id::{AllianceId, Hash, SpaceId};
use crate::key::PublicKey;
use crate::roster::{
    Denied, OpBody, Roster, RosterError, SignedOp, MAX_ADDR_CHARS, MAX_PEER_ADDRS,
};

/// Every space or device token starts with this, so it is recognisable and versioned.
pub const TOKEN_PREFIX: &str = "dmi1";
/// Every member token starts with this.
pub const MEMBER_PREFIX: &str = "dmm1";
/// Longest token accepted, in characters (about 650 KB of roster operations), so a pasted file never
/// makes us decode megabytes.
pub const MAX_TOKEN_CHARS: usize = 1 << 20;
/// Length of the checksum appended to the payload.
const CHECKSUM_BYTES: usize = 4;
/// Hash label of the checksum.
const CHECKSUM_LABEL: &str = "invite-checksum";

/// Why an invite token was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InviteError {
    #[error(
        "this is not a deskmesh invite token (it should start with dmi1, or dmm1 for a member)"
    )]
    NotAnInvite,
    #[error(
        "the invite token is damaged or cut short (checksum mismatch); copy the whole line again"
    )]
    Damaged,
    #[error("the invite token is {len} characters long, more than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("the invite token could not be read (it may come from a newer deskmesh): {0}")]
    Unreadable(String),
    #[error("the invite's roster does not verify: {0}")]
    Roster(#[from] RosterError),
    #[error("the invite carries no roster operations")]
    NoOps,
    #[error("the invite names alliance {named} but its roster belongs to alliance {actual}")]
    AllianceMismatch {
        named: AllianceId,
        actual: AllianceId,
    },
    #[error("the invite's grant {0} is not among its roster operations")]
    GrantMissing(Hash),
    #[error("roster operation {grant} does not itself give key {invitee} to space {space}")]
    GrantMismatch {
        grant: Hash,
        invitee: PublicKey,
        space: SpaceId,
    },
    #[error("the invite's grant does not give key {invitee} to space {space}: {reason}")]
    GrantDenied {
        invitee: PublicKey,
        space: SpaceId,
        reason: Denied,
    },
    #[error("the invite's peer addresses are not acceptable: {0}")]
    BadPeers(String),
    #[error("this invite is for alliance {token}, but this node is in alliance {ours}")]
    WrongAlliance { token: AllianceId, ours: AllianceId },
    #[error("this invite was made for key {invitee}, not this node's key {me}")]
    WrongInvitee { invitee: PublicKey, me: PublicKey },
}

/// An invitation for one device key to sign for one space of an alliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub alliance: AllianceId,
    /// The causal closure of `grant`, parents before children, starting with `CreateAlliance`.
    pub ops: Vec<SignedOp>,
    /// The `AdmitSpace` or `AddDevice` operation that gives `invitee` to `space`.
    pub grant: Hash,
    pub invitee: PublicKey,
    pub space: SpaceId,
    /// Multiaddrs (text) of peers to dial first; may be empty.
    pub peers: Vec<String>,
}

impl Invite {
    /// Builds and checks an invite for the key that `grant` gave to its space.
    pub fn new(
        roster: &Roster,
        grant: Hash,
        invitee: PublicKey,
        peers: Vec<String>,
    ) -> Result<Invite, InviteError> {
        let op = roster
            .get_op(&grant)
            .ok_or(InviteError::GrantMissing(grant))?;
        let space = match &op.body {
            OpBody::AdmitSpace { space, .. } | OpBody::AddDevice { space, .. } => space.clone(),
            other => {
                let space = other
                    .space()
                    .cloned()
                    .unwrap_or_else(|| SpaceId::derive(&invitee));
                return Err(InviteError::GrantMismatch {
                    grant,
                    invitee,
                    space,
                });
            }
        };
        let ops = roster
            .causal_closure(&[grant])?
            .iter()
            .filter_map(|h| roster.get(h).cloned())
            .collect();
        let invite = Invite {
            alliance: roster.alliance_id(),
            ops,
            grant,
            invitee,
            space,
            peers,
        };
        invite.roster()?;
        Ok(invite)
    }

    /// The one-line token: `dmi1` + base32(postcard(invite) || checksum).
    pub fn to_token(&self) -> String {
        encode(TOKEN_PREFIX, self)
    }

    /// Reads a token and verifies it completely: checksum, every signature and authorisation of its
    /// roster operations, and that the grant gives the invitee to the space. Whitespace anywhere (a line
    /// wrapped by a terminal or mail client) is ignored.
    pub fn parse(token: &str) -> Result<Invite, InviteError> {
        let invite: Invite = decode(TOKEN_PREFIX, token)?;
        invite.roster()?;
        Ok(invite)
    }

    /// Rebuilds and verifies the roster the invite carries (as [`Invite::parse`] does).
    pub fn roster(&self) -> Result<Roster, InviteError> {
        check_peers(&self.peers)?;
        let mut ops = self.ops.iter();
        let create = ops.next().ok_or(InviteError::NoOps)?;
        let mut roster = Roster::new(create.clone())?;
        if roster.alliance_id() != self.alliance {
            return Err(InviteError::AllianceMismatch {
                named: self.alliance,
                actual: roster.alliance_id(),
            });
        }
        for op in ops {
            roster.insert(op.clone())?;
        }
        let grant = roster
            .get_op(&self.grant)
            .ok_or(InviteError::GrantMissing(self.grant))?;
        let gives = match &grant.body {
            OpBody::AdmitSpace { space, devices, .. } => {
                *space == self.space && devices.contains(&self.invitee)
            }
            OpBody::AddDevice { space, device } => *space == self.space && *device == self.invitee,
            _ => false,
        };
        let mismatch = || InviteError::GrantMismatch {
            grant: self.grant,
            invitee: self.invitee,
            space: self.space.clone(),
        };
        if !gives {
            return Err(mismatch());
        }
        let auth = roster
            .may_sign(&[self.grant], &self.invitee, &self.space)
            .map_err(|reason| InviteError::GrantDenied {
                invitee: self.invitee,
                space: self.space.clone(),
                reason,
            })?;
        if auth.op != self.grant {
            return Err(mismatch());
        }
        Ok(roster)
    }

    /// Refuses an invite for another alliance than the one this node is in.
    pub fn check_alliance(&self, ours: &AllianceId) -> Result<(), InviteError> {
        if self.alliance == *ours {
            Ok(())
        } else {
            Err(InviteError::WrongAlliance {
                token: self.alliance,
                ours: *ours,
            })
        }
    }

    /// Refuses an invite made for another key than this node's.
    pub fn check_invitee(&self, me: &PublicKey) -> Result<(), InviteError> {
        if self.invitee == *me {
            Ok(())
        } else {
            Err(InviteError::WrongInvitee {
                invitee: self.invitee,
                me: *me,
            })
        }
    }
}

/// An invitation for a member's laptop: it signs for no space, and only needs the alliance to follow (its
/// create operation, which names the coordinators) and peers to dial; the rest of the roster and every
/// listing arrive over the mesh and are verified there like any other item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInvite {
    pub alliance: AllianceId,
    /// The alliance's `CreateAlliance` operation.
    pub create: SignedOp,
    /// Multiaddrs (text) of peers to dial first; may be empty.
    pub peers: Vec<String>,
}

impl MemberInvite {
    /// A member invite for `roster`'s alliance.
    pub fn new(roster: &Roster, peers: Vec<String>) -> Result<MemberInvite, InviteError> {
        let create = roster
            .get(&roster.alliance_id().0)
            .cloned()
            .ok_or(InviteError::NoOps)?;
        let invite = MemberInvite {
            alliance: roster.alliance_id(),
            create,
            peers,
        };
        invite.roster()?;
        Ok(invite)
    }

    /// The one-line token: `dmm1` + base32(postcard(invite) || checksum).
    pub fn to_token(&self) -> String {
        encode(MEMBER_PREFIX, self)
    }

    /// Reads a member token and verifies its create operation and peer list.
    pub fn parse(token: &str) -> Result<MemberInvite, InviteError> {
        let invite: MemberInvite = decode(MEMBER_PREFIX, token)?;
        invite.roster()?;
        Ok(invite)
    }

    /// The roster the invite starts: the alliance with its founding coordinators only.
    pub fn roster(&self) -> Result<Roster, InviteError> {
        check_peers(&self.peers)?;
        let roster = Roster::new(self.create.clone())?;
        if roster.alliance_id() != self.alliance {
            return Err(InviteError::AllianceMismatch {
                named: self.alliance,
                actual: roster.alliance_id(),
            });
        }
        Ok(roster)
    }
}

/// True when `token` looks like a member invite rather than a space's.
pub fn is_member_token(token: &str) -> bool {
    token
        .trim_start()
        .to_ascii_lowercase()
        .starts_with(MEMBER_PREFIX)
}

fn check_peers(peers: &[String]) -> Result<(), InviteError> {
    if peers.len() > MAX_PEER_ADDRS {
        return Err(InviteError::BadPeers(format!(
            "there are {}, more than the limit of {MAX_PEER_ADDRS}",
            peers.len()
        )));
    }
    if let Some(long) = peers.iter().find(|p| p.chars().count() > MAX_ADDR_CHARS) {
        return Err(InviteError::BadPeers(format!(
            "one is {} characters, more than the limit of {MAX_ADDR_CHARS}",
            long.chars().count()
        )));
    }
    Ok(())
}

/// Prefix of a proposal token: a coordinator change with the co-signatures gathered so far.
pub const PROPOSAL_PREFIX: &str = "dmp1";

/// Why a proposal token could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProposalTokenError {
    #[error("this is not a deskmesh proposal token (it should start with dmp1)")]
    NotAProposal,
    #[error(
        "the proposal token is damaged or cut short (checksum mismatch); copy the whole line again"
    )]
    Damaged,
    #[error("the proposal token could not be read: {0}")]
    Unreadable(String),
}

/// The one-line token of a proposal, for carrying it to other coordinators offline: `dmp1` +
/// base32(postcard(signed operation) || checksum), like the invite tokens.
pub fn proposal_token(op: &SignedOp) -> String {
    encode(PROPOSAL_PREFIX, op)
}

/// Reads a proposal token. Only its checksum and limits are checked here; the roster judges the
/// operation and every signature ([`crate::Roster::check_proposal`]).
pub fn parse_proposal_token(token: &str) -> Result<SignedOp, ProposalTokenError> {
    let op: SignedOp = decode(PROPOSAL_PREFIX, token).map_err(|e| match e {
        InviteError::NotAnInvite => ProposalTokenError::NotAProposal,
        InviteError::Damaged => ProposalTokenError::Damaged,
        other => ProposalTokenError::Unreadable(other.to_string()),
    })?;
    SignedOp::from_bytes(&op.to_bytes()).map_err(|e| ProposalTokenError::Unreadable(e.to_string()))
}

fn encode<T: Serialize>(prefix: &str, value: &T) -> String {
    // Serialising our own types cannot fail (no unknown-length sequences, no failing Display); an
    // empty payload would be refused by `decode` rather than panic here.
    token_text(prefix, postcard::to_allocvec(value).unwrap_or_default())
}

/// The token text for raw payload bytes: `prefix` + base32(payload || checksum). Tokens are made with
/// [`Invite::to_token`] and [`MemberInvite::to_token`]; this lets the fuzzer hand any payload to the
/// decoder behind the checksum.
pub fn token_text(prefix: &str, mut payload: Vec<u8>) -> String {
    let sum = checksum(&payload);
    payload.extend_from_slice(&sum);
    let body = data_encoding::BASE32_NOPAD
        .encode(&payload)
        .to_ascii_lowercase();
    format!("{prefix}{body}")
}

fn decode<T: serde::de::DeserializeOwned>(prefix: &str, token: &str) -> Result<T, InviteError> {
    let token: String = token
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if token.len() > MAX_TOKEN_CHARS {
        return Err(InviteError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_CHARS,
        });
    }
    let body = token
        .strip_prefix(&prefix.to_ascii_uppercase())
        .ok_or(InviteError::NotAnInvite)?;
    let bytes = data_encoding::BASE32_NOPAD
        .decode(body.as_bytes())
        .map_err(|_| InviteError::Damaged)?;
    if bytes.len() <= CHECKSUM_BYTES {
        return Err(InviteError::Damaged);
    }
    let (payload, sum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if checksum(payload) != sum {
        return Err(InviteError::Damaged);
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|e| InviteError::Unreadable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(InviteError::Unreadable(format!(
            "{} unexpected trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

fn checksum(payload: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let h = Hash::of(CHECKSUM_LABEL, payload);
    let mut out = [0; CHECKSUM_BYTES];
    out.copy_from_slice(&h.as_bytes()[..CHECKSUM_BYTES]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::key::{DeviceKey, Signer};
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed(&[n; 32])
    }

    fn pk(n: u8) -> PublicKey {
        key(n).public_key()
    }

    #[test]
    fn member_tokens_round_trip_and_are_not_space_tokens() {
        let (roster, _, _) = setup();
        let invite = MemberInvite::new(&roster, vec!["/ip4/127.0.0.1/tcp/4717".into()]).unwrap();
        let token = invite.to_token();
        assert!(is_member_token(&token));
        assert!(token.starts_with(MEMBER_PREFIX));
        let back = MemberInvite::parse(&token).unwrap();
        assert_eq!(back, invite);
        assert_eq!(back.roster().unwrap().alliance_id(), roster.alliance_id());
        // A member token is not a space token, and the other way round.
        assert_eq!(Invite::parse(&token), Err(InviteError::NotAnInvite));
        let mut damaged = token.clone();
        damaged.pop();
        assert!(MemberInvite::parse(&damaged).is_err());
        // A create operation from another alliance under this alliance's name is refused.
        let (other, _) = Roster::create(&key(2), "South", vec![], 1, T0).unwrap();
        let forged = MemberInvite {
            alliance: roster.alliance_id(),
            create: other.get(&other.alliance_id().0).unwrap().clone(),
            peers: vec![],
        };
        assert!(matches!(
            MemberInvite::parse(&forged.to_token()),
            Err(InviteError::AllianceMismatch { .. })
        ));
    }

    /// An alliance with one admitted space (devices 10 and 11) and a device 12 added later.
    fn setup() -> (Roster, Hash, Hash) {
        let (mut roster, _) = Roster::create(&key(1), "North", vec![], 1, T0).unwrap();
        let devices = vec![pk(10), pk(11)];
        let admit = roster.propose(
            &key(1),
            OpBody::AdmitSpace {
                space: SpaceId::derive(&pk(10)),
                name: "Desk Co".into(),
                devices,
            },
            T0 + 1,
        );
        roster.insert(admit.clone()).unwrap();
        let add = roster.propose(
            &key(10),
            OpBody::AddDevice {
                space: SpaceId::derive(&pk(10)),
                device: pk(12),
            },
            T0 + 2,
        );
        roster.insert(add.clone()).unwrap();
        (roster, admit.hash(), add.hash())
    }

    fn token() -> (Invite, String) {
        let (roster, admit, _) = setup();
        let peers = vec!["/ip4/198.51.100.7/udp/4001/quic-v1".to_string()];
        let invite = Invite::new(&roster, admit, pk(10), peers).unwrap();
        let token = invite.to_token();
        (invite, token)
    }

    #[test]
    fn round_trip() {
        let (roster, admit, add) = setup();
        let (invite, token) = token();
        assert!(token.starts_with("dmi1"));
        assert!(!token.chars().any(char::is_whitespace));
        assert_eq!(token, token.to_ascii_lowercase());
        let parsed = Invite::parse(&token).unwrap();
        assert_eq!(parsed, invite);
        assert_eq!(parsed.space, SpaceId::derive(&pk(10)));
        assert_eq!(parsed.alliance, roster.alliance_id());
        // The invite carries the grant's closure only, and its roster verifies.
        assert_eq!(parsed.ops.len(), 2);
        let rebuilt = parsed.roster().unwrap();
        assert_eq!(rebuilt.heads(), vec![admit]);
        assert!(parsed.check_alliance(&roster.alliance_id()).is_ok());
        assert!(parsed.check_invitee(&pk(10)).is_ok());
        // Surrounding whitespace and a line wrapped in two are fine.
        let (a, b) = token.split_at(token.len() / 2);
        assert_eq!(Invite::parse(&format!("  {a}\n{b}\r\n")).unwrap(), invite);

        // A device added later is invited through its AddDevice operation.
        let invite = Invite::new(&roster, add, pk(12), vec![]).unwrap();
        let parsed = Invite::parse(&invite.to_token()).unwrap();
        assert_eq!(parsed.ops.len(), 3);
        assert_eq!(parsed.roster().unwrap().heads(), vec![add]);
    }

    #[test]
    fn a_proposal_token_round_trips_and_catches_typos() {
        let (roster, _) =
            Roster::create(&key(1), "North", vec![key(2).public_key()], 2, T0).unwrap();
        let op = roster.propose(&key(1), OpBody::SetThreshold { threshold: 1 }, T0 + 1);
        let token = proposal_token(&op);
        assert!(token.starts_with("dmp1"));
        assert_eq!(parse_proposal_token(&token).unwrap(), op);
        let mut typo = token.clone();
        let c = if typo.ends_with('a') { "b" } else { "a" };
        typo.replace_range(typo.len() - 1.., c);
        assert_eq!(
            parse_proposal_token(&typo),
            Err(ProposalTokenError::Damaged)
        );
        assert_eq!(
            parse_proposal_token("dmi1abc"),
            Err(ProposalTokenError::NotAProposal)
        );
    }

    #[test]
    fn a_one_character_typo_is_a_checksum_error() {
        let (_, token) = token();
        let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        let body_start = TOKEN_PREFIX.len();
        for i in (body_start..token.len())
            .step_by(13)
            .chain([token.len() - 1])
        {
            let original = token.as_bytes()[i] as char;
            let replacement = alphabet.chars().find(|c| *c != original).unwrap();
            let mut typo = token.clone();
            typo.replace_range(i..=i, &replacement.to_string());
            assert_eq!(
                Invite::parse(&typo),
                Err(InviteError::Damaged),
                "typo at {i}"
            );
        }
        let mut not_base32 = token.clone();
        not_base32.replace_range(10..11, "0");
        assert_eq!(Invite::parse(&not_base32), Err(InviteError::Damaged));
        assert_eq!(
            InviteError::Damaged.to_string(),
            "the invite token is damaged or cut short (checksum mismatch); copy the whole line again"
        );
    }

    #[test]
    fn a_truncated_token_is_a_checksum_error() {
        let (_, token) = token();
        for keep in [token.len() - 1, token.len() - 8, token.len() / 2, 12, 5, 4] {
            assert_eq!(
                Invite::parse(&token[..keep]),
                Err(InviteError::Damaged),
                "kept {keep}"
            );
        }
    }

    #[test]
    fn other_text_is_not_an_invite() {
        let (_, token) = token();
        for text in ["", "hello", "dmi", "https://example.invalid/x", &token[1..]] {
            let err = Invite::parse(text).unwrap_err();
            assert_eq!(err, InviteError::NotAnInvite);
        }
        assert_eq!(
            InviteError::NotAnInvite.to_string(),
            "this is not a deskmesh invite token (it should start with dmi1, or dmm1 for a member)"
        );
    }

    #[test]
    fn wrong_alliance_and_wrong_invitee_are_explained() {
        let (invite, _) = token();
        let (other, _) = Roster::create(&key(1), "South", vec![], 1, T0).unwrap();
        let err = invite.check_alliance(&other.alliance_id()).unwrap_err();
        assert_eq!(
            err,
            InviteError::WrongAlliance {
                token: invite.alliance,
                ours: other.alliance_id()
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "this invite is for alliance {}, but this node is in alliance {}",
                invite.alliance,
                other.alliance_id()
            )
        );
        let err = invite.check_invitee(&pk(11)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "this invite was made for key {}, not this node's key {}",
                pk(10),
                pk(11)
            )
        );
    }

    #[test]
    fn an_invite_must_grant_its_invitee() {
        let (roster, admit, add) = setup();
        assert!(matches!(
            Invite::new(&roster, admit, pk(12), vec![]),
            Err(InviteError::GrantMismatch { .. })
        ));
        assert!(matches!(
            Invite::new(&roster, add, pk(10), vec![]),
            Err(InviteError::GrantMismatch { .. })
        ));
        let create = roster.alliance_id().0;
        assert!(matches!(
            Invite::new(&roster, create, pk(10), vec![]),
            Err(InviteError::GrantMismatch { .. })
        ));
    }

    /// A token re-made with a valid checksum around altered contents still fails verification.
    #[test]
    fn altered_contents_do_not_verify() {
        let (roster, admit, add) = setup();
        let invite = Invite::new(&roster, add, pk(12), vec![]).unwrap();

        let mut other_key = invite.clone();
        other_key.invitee = pk(13);
        assert!(matches!(
            Invite::parse(&other_key.to_token()),
            Err(InviteError::GrantMismatch { .. })
        ));

        let mut gap = invite.clone();
        gap.ops.remove(1);
        assert_eq!(
            Invite::parse(&gap.to_token()),
            Err(InviteError::Roster(RosterError::MissingParents(vec![
                admit
            ])))
        );

        let mut empty = invite.clone();
        empty.ops.clear();
        assert_eq!(Invite::parse(&empty.to_token()), Err(InviteError::NoOps));

        let mut renamed = invite.clone();
        renamed.alliance = AllianceId(Hash::of("test", b"elsewhere"));
        assert!(matches!(
            Invite::parse(&renamed.to_token()),
            Err(InviteError::AllianceMismatch { .. })
        ));

        // A forged grant: a stranger claims to have added its own key.
        let mut forged = invite.clone();
        let fake = roster.propose(
            &key(20),
            OpBody::AddDevice {
                space: SpaceId::derive(&pk(10)),
                device: pk(20),
            },
            T0 + 5,
        );
        forged.grant = fake.hash();
        forged.invitee = pk(20);
        forged.ops.push(fake);
        assert!(matches!(
            Invite::parse(&forged.to_token()),
            Err(InviteError::Roster(RosterError::Unauthorised { .. }))
        ));

        let mut peers = invite;
        peers.peers = vec!["x".repeat(MAX_ADDR_CHARS + 1)];
        assert!(matches!(
            Invite::parse(&peers.to_token()),
            Err(InviteError::BadPeers(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}", body in "[a-z2-7]{0,300}") {
            let _ = Invite::parse(&text);
            let _ = Invite::parse(&format!("dmi1{body}"));
        }
    }
}
