//! Alliance administration: founding an alliance, admitting spaces and devices, member tokens, removing
//! devices, revoking spaces, joining with a token, and the roster as it stands.

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use deskmesh_keys::invite::{Invite, MemberInvite};
use deskmesh_keys::roster::{OpBody, Roster, SignedOp};
use deskmesh_keys::{AllianceId, Hash, PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use crate::ingest::SignedItem;
use crate::node::{Node, META_ALLIANCE, META_BOOTSTRAP_PEERS};

/// What `alliance create` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllianceCreated {
    pub alliance: AllianceId,
    pub name: String,
    pub coordinator: PublicKey,
}

/// What `alliance invite` and `alliance add-device` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteReport {
    pub token: String,
    pub space: SpaceId,
    pub invitee: PublicKey,
    pub grant: Hash,
}

/// What `alliance join` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    pub alliance: AllianceId,
    pub alliance_name: String,
    /// The space this node signs for; `None` for a member's node, which signs nothing.
    pub space: Option<SpaceId>,
    pub space_name: String,
    pub peers: Vec<String>,
}

/// What `alliance invite-member` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInviteReport {
    pub token: String,
    pub alliance: AllianceId,
    pub peers: Vec<String>,
}

/// What `alliance replace-device` did: the invite for the new key and the removal of the old one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub invite: InviteReport,
    pub removed: RosterChanged,
}

/// A roster change made by this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterChanged {
    pub op: Hash,
    pub kind: String,
    pub summary: String,
}

/// The roster as `alliance show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllianceView {
    pub alliance: AllianceId,
    pub name: String,
    pub threshold: u8,
    pub coordinators: Vec<PublicKey>,
    pub spaces: Vec<RosterSpace>,
    pub heads: Vec<Hash>,
    pub operations: usize,
    pub this_node: PublicKey,
    pub this_space: Option<SpaceId>,
}

/// One space in the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterSpace {
    pub id: SpaceId,
    pub name: String,
    pub devices: Vec<PublicKey>,
    pub admitted_by: Hash,
    pub revoked: Option<String>,
    /// A revoked space that stays listed, marked revoked.
    #[serde(default)]
    pub revoked_listed: bool,
    pub peer_addrs: Vec<String>,
}

fn ms(now: DateTime<Utc>) -> i64 {
    now.timestamp_millis()
}

impl Node {
    /// Founds an alliance with this node as its first coordinator.
    pub fn alliance_create(
        &mut self,
        name: &str,
        threshold: u8,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AllianceCreated> {
        if let Some(r) = self.roster() {
            bail!(
                "this node is already in alliance {:?} ({}); use another --home for a second alliance",
                r.name(),
                r.alliance_id()
            );
        }
        let (roster, op) = Roster::create(self.signer(), name, Vec::new(), threshold, ms(now))?;
        let id = roster.alliance_id();
        self.store.put_op(&op.hash(), &op.to_bytes())?;
        self.store
            .put_meta(META_ALLIANCE, id.to_string().as_bytes())?;
        self.set_roster(roster);
        Ok(AllianceCreated {
            alliance: id,
            name: name.to_string(),
            coordinator: self.public_key(),
        })
    }

    /// Admits a space whose device key is `invitee` and returns an invite token for it. Inviting a space
    /// already admitted gives the same grant again.
    pub fn alliance_invite(
        &mut self,
        invitee: PublicKey,
        space_name: &str,
        peers: Vec<String>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InviteReport> {
        let space = SpaceId::derive(&invitee);
        let roster = self.require_roster()?;
        let grant = match roster.state().spaces.get(&space) {
            Some(entry) => entry.admitted_by,
            None => {
                let op = roster.propose(
                    self.signer(),
                    OpBody::AdmitSpace {
                        space: space.clone(),
                        name: space_name.to_string(),
                        devices: vec![invitee],
                    },
                    ms(now),
                );
                let hash = op.hash();
                self.ingest_local(SignedItem::op(&op))?;
                hash
            }
        };
        self.invite_for(grant, invitee, space, peers)
    }

    fn invite_for(
        &self,
        grant: Hash,
        invitee: PublicKey,
        space: SpaceId,
        mut peers: Vec<String>,
    ) -> anyhow::Result<InviteReport> {
        let roster = self.require_roster()?;
        peers.extend(self.known_peer_addrs());
        peers.dedup();
        let invite = Invite::new(roster, grant, invitee, peers)?;
        Ok(InviteReport {
            token: invite.to_token(),
            space,
            invitee,
            grant,
        })
    }

    /// Peer addresses the roster lists, to seed invite tokens.
    fn known_peer_addrs(&self) -> Vec<String> {
        let Some(roster) = self.roster() else {
            return Vec::new();
        };
        roster
            .state()
            .spaces
            .values()
            .filter(|s| s.revoked.is_none())
            .flat_map(|s| s.peer_addrs.iter().cloned())
            .take(8)
            .collect()
    }

    /// Gives `device` to this node's space as another device and returns its invite token.
    pub fn add_device(
        &mut self,
        device: PublicKey,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InviteReport> {
        let space = self.require_space()?;
        let roster = self.require_roster()?;
        let op = roster.propose(
            self.signer(),
            OpBody::AddDevice {
                space: space.clone(),
                device,
            },
            ms(now),
        );
        let grant = op.hash();
        self.ingest_local(SignedItem::op(&op))?;
        self.invite_for(grant, device, space, Vec::new())
    }

    /// Removes a device key from a space (default: this node's). Strong removal: the operation keeps the
    /// space's listing as this node holds it now, and anything else the key signed is refused everywhere.
    pub fn remove_device(
        &mut self,
        device: PublicKey,
        space: Option<SpaceId>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RosterChanged> {
        let space = match space {
            Some(s) => s,
            None => self.require_space()?,
        };
        let keep = self.listing_heads(&space)?;
        let kept = keep.len();
        let body = OpBody::RemoveDevice {
            space: space.clone(),
            device,
            keep,
        };
        self.roster_change(
            body,
            format!(
                "device {device} removed from {space}; its changes up to the listing's {kept} current head(s) stay, anything else it signs is refused"
            ),
            now,
        )
    }

    /// Revokes a space's membership. Strong removal for every device of the space; with `listed` the space
    /// stays in the directory, marked revoked with the reason, at its listing as this node holds it now.
    pub fn revoke(
        &mut self,
        space: SpaceId,
        reason: &str,
        listed: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RosterChanged> {
        let name = self
            .require_roster()?
            .state()
            .spaces
            .get(&space)
            .map(|s| s.name.clone())
            .ok_or_else(|| anyhow!("space {space} is not in the alliance roster"))?;
        let body = OpBody::RevokeSpace {
            space: space.clone(),
            reason: reason.to_string(),
            keep: self.listing_heads(&space)?,
            listed,
        };
        let what = if listed {
            "it stays in the directory, marked revoked"
        } else {
            "it leaves the directory"
        };
        self.roster_change(
            body,
            format!("space {name:?} ({space}) revoked: {reason}; {what}"),
            now,
        )
    }

    /// Replaces a lost or stolen device of a space with a new key in one step: the new key is added, the
    /// old one removed (strong removal, keeping the listing as this node holds it), and an invite token
    /// for the new key is returned. A coordinator or another device of the space may do it.
    pub fn replace_device(
        &mut self,
        old: PublicKey,
        new: PublicKey,
        space: Option<SpaceId>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Replaced> {
        let roster = self.require_roster()?;
        let state = roster.state();
        let space = match space {
            Some(s) => s,
            None => state
                .spaces
                .iter()
                .find(|(_, s)| s.revoked.is_none() && s.devices.contains_key(&old))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    anyhow!("{old} is not a current device of any space; check the key with `deskmesh alliance show`")
                })?,
        };
        let entry = state
            .spaces
            .get(&space)
            .ok_or_else(|| anyhow!("space {space} is not in the alliance roster"))?;
        if !entry.devices.contains_key(&old) {
            bail!("{old} is not a current device of space {space}");
        }
        if entry.devices.contains_key(&new) {
            bail!("{new} is already a device of space {space}");
        }
        if old == new {
            bail!("the new key is the old one; give the key `deskmesh init` printed on the new device");
        }
        let add = roster.propose(
            self.signer(),
            OpBody::AddDevice {
                space: space.clone(),
                device: new,
            },
            ms(now),
        );
        let grant = add.hash();
        self.ingest_local(SignedItem::op(&add))?;
        let removed = self.remove_device(old, Some(space.clone()), now)?;
        let invite = self.invite_for(grant, new, space, Vec::new())?;
        Ok(Replaced { invite, removed })
    }

    fn roster_change(
        &mut self,
        body: OpBody,
        summary: String,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RosterChanged> {
        let roster = self.require_roster()?;
        let kind = body.kind().to_string();
        let op = roster.propose(self.signer(), body, ms(now));
        let hash = op.hash();
        // The ingest path rebuilds the index of whatever the op can affect.
        self.ingest_local(SignedItem::op(&op))?;
        Ok(RosterChanged {
            op: hash,
            kind,
            summary,
        })
    }

    /// A token with which a member's laptop follows the alliance read-only. Any node in the alliance can
    /// make one: it holds only public roster data and peer addresses.
    pub fn member_invite(&self, mut peers: Vec<String>) -> anyhow::Result<MemberInviteReport> {
        let roster = self.require_roster()?;
        peers.extend(self.known_peer_addrs());
        peers.dedup();
        let invite = MemberInvite::new(roster, peers)?;
        Ok(MemberInviteReport {
            token: invite.to_token(),
            alliance: invite.alliance,
            peers: invite.peers,
        })
    }

    /// Joins the alliance an invite token names (`dmi1…` for a space or device, `dmm1…` for a member).
    pub fn alliance_join(&mut self, token: &str) -> anyhow::Result<Joined> {
        let token = token.trim();
        if deskmesh_keys::invite::is_member_token(token) {
            let invite = MemberInvite::parse(token)?;
            if let Some(ours) = self.alliance_id() {
                if ours != invite.alliance {
                    bail!(
                        "this invite is for alliance {}, but this node is in alliance {ours}",
                        invite.alliance
                    );
                }
            }
            self.adopt_roster(std::slice::from_ref(&invite.create), &invite.peers)?;
            let roster = self.require_roster()?;
            return Ok(Joined {
                alliance: invite.alliance,
                alliance_name: roster.name().to_string(),
                space: None,
                space_name: String::new(),
                peers: invite.peers,
            });
        }
        let invite = Invite::parse(token)?;
        invite.check_invitee(&self.public_key())?;
        if let Some(ours) = self.alliance_id() {
            invite.check_alliance(&ours)?;
        }
        // Verified as a whole before anything is stored.
        invite.roster()?;
        self.adopt_roster(&invite.ops, &invite.peers)?;
        let roster = self.require_roster()?;
        let space_name = roster
            .state()
            .spaces
            .get(&invite.space)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        Ok(Joined {
            alliance: invite.alliance,
            alliance_name: roster.name().to_string(),
            space: Some(invite.space),
            space_name,
            peers: invite.peers,
        })
    }

    /// Takes an alliance's roster operations (the create operation first) and the peers to dial first.
    /// Every operation goes through the ingest path; a node already in another alliance refuses them.
    pub fn adopt_roster(&mut self, ops: &[SignedOp], peers: &[String]) -> anyhow::Result<()> {
        let create = ops
            .first()
            .ok_or_else(|| anyhow!("there is no roster operation to start the alliance from"))?;
        if self.roster().is_none() {
            let roster = Roster::new(create.clone())?;
            self.store
                .put_meta(META_ALLIANCE, roster.alliance_id().to_string().as_bytes())?;
            // Store the create op first so the roster can be rebuilt from the store.
            self.store.put_op(&create.hash(), &create.to_bytes())?;
            self.set_roster(roster);
        }
        let items: Vec<SignedItem> = ops.iter().skip(1).map(SignedItem::op).collect();
        if !items.is_empty() {
            let report = self.ingest(
                items,
                crate::ingest::Source::Bundle,
                crate::ingest::At::now(),
            );
            if let Some(e) = report.flush_error {
                bail!("{e}");
            }
            for o in report.outcomes {
                match o.verdict {
                    crate::ingest::Verdict::Refused(why) | crate::ingest::Verdict::Failed(why) => {
                        bail!("the invite's roster operation cannot be applied: {why}")
                    }
                    _ => {}
                }
            }
        }
        if !peers.is_empty() {
            self.store
                .put_meta(META_BOOTSTRAP_PEERS, &serde_json::to_vec(peers)?)?;
        }
        Ok(())
    }

    /// The peer addresses an invite named, to dial first.
    pub fn bootstrap_peers(&self) -> Vec<String> {
        self.store
            .get_meta(META_BOOTSTRAP_PEERS)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The roster as it stands.
    pub fn alliance_show(&self) -> anyhow::Result<AllianceView> {
        let roster = self.require_roster()?;
        let state = roster.state();
        Ok(AllianceView {
            alliance: roster.alliance_id(),
            name: roster.name().to_string(),
            threshold: state.threshold,
            coordinators: state.coordinators.keys().copied().collect(),
            spaces: state
                .spaces
                .iter()
                .map(|(id, s)| RosterSpace {
                    id: id.clone(),
                    name: s.name.clone(),
                    devices: s.devices.keys().copied().collect(),
                    admitted_by: s.admitted_by,
                    revoked: s.revoked.as_ref().map(|(_, r)| r.clone()),
                    revoked_listed: s.revoked_listed,
                    peer_addrs: s.peer_addrs.clone(),
                })
                .collect(),
            heads: roster.heads(),
            operations: roster.len(),
            this_node: self.public_key(),
            this_space: self.my_space(),
        })
    }
}
