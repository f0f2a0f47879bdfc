//! The user-facing operations of a [`Node`]: alliance administration, editing this space's listing,
//! publishing seats, browsing, importing and auditing. Each returns a serde report with a human `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{self, Availability, Freshness, SignedBeacon};
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_crdt_model::listing::{Amenity, AmenityDetail, Listing};
use deskmesh_crdt_model::query::{distance_km, Query, SearchIndex, SeatsFree, Sort};
use deskmesh_crdt_model::OpenState;
use deskmesh_keys::invite::{Invite, MemberInvite};
use deskmesh_keys::roster::{OpBody, Roster, SignedOp};
use deskmesh_keys::{AllianceId, Hash, PublicKey, SpaceId};
use serde::Serialize;

use crate::cli::EditArgs;
use crate::ops::{
    beacon_now, parse_availability, read_listing_file, IndexEntry, Node, RosterAuthority,
};

const META_ALLIANCE: &str = "alliance";

fn ms(now: DateTime<Utc>) -> i64 {
    now.timestamp_millis()
}

// ---- alliance --------------------------------------------------------------------------------------

/// What `alliance create` reports.
#[derive(Debug, Serialize)]
pub struct AllianceCreated {
    pub alliance: AllianceId,
    pub name: String,
    pub coordinator: PublicKey,
}

impl fmt::Display for AllianceCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.alliance)?;
        write!(
            f,
            "alliance {:?} created; this node ({}) is its founding coordinator",
            self.name, self.coordinator
        )
    }
}

/// What `alliance invite` and `alliance add-device` report.
#[derive(Debug, Serialize)]
pub struct InviteReport {
    pub token: String,
    pub space: SpaceId,
    pub invitee: PublicKey,
    pub grant: Hash,
}

impl fmt::Display for InviteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token alone on the first line, so `deskmesh alliance invite ... | head -1` is the token.
        writeln!(f, "{}", self.token)?;
        write!(
            f,
            "invite for {} as space {}; on that machine run `deskmesh alliance join TOKEN`",
            self.invitee, self.space
        )
    }
}

/// What `alliance join` reports.
#[derive(Debug, Serialize)]
pub struct Joined {
    pub alliance: AllianceId,
    pub alliance_name: String,
    /// The space this node signs for; `None` for a member's node, which signs nothing.
    pub space: Option<SpaceId>,
    pub space_name: String,
    pub peers: Vec<String>,
}

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.space {
            Some(space) => write!(
                f,
                "joined alliance {:?} ({}) as space {:?} ({space}); edit your listing with `deskmesh space edit --file listing.json`",
                self.alliance_name, self.alliance, self.space_name
            ),
            None => write!(
                f,
                "joined alliance {:?} ({}) as a member; `deskmesh run` replicates the directory, `deskmesh tui` browses it",
                self.alliance_name, self.alliance
            ),
        }
    }
}

/// What `alliance invite-member` reports.
#[derive(Debug, Serialize)]
pub struct MemberInviteReport {
    pub token: String,
    pub alliance: AllianceId,
    pub peers: Vec<String>,
}

impl fmt::Display for MemberInviteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.token)?;
        write!(
            f,
            "member invite for alliance {}; on the member's machine run `deskmesh init` then `deskmesh alliance join TOKEN`",
            self.alliance
        )
    }
}

/// A roster change made from the command line.
#[derive(Debug, Serialize)]
pub struct RosterChanged {
    pub op: Hash,
    pub kind: String,
    pub summary: String,
}

impl fmt::Display for RosterChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (roster op {})", self.summary, self.op.short())
    }
}

/// The roster as `alliance show` prints it.
#[derive(Debug, Serialize)]
pub struct AllianceView {
    pub alliance: AllianceId,
    pub name: String,
    pub threshold: u8,
    pub coordinators: Vec<PublicKey>,
    pub spaces: Vec<SpaceView>,
    pub heads: Vec<Hash>,
    pub operations: usize,
    pub this_node: PublicKey,
    pub this_space: Option<SpaceId>,
}

/// One space in the roster.
#[derive(Debug, Serialize)]
pub struct SpaceView {
    pub id: SpaceId,
    pub name: String,
    pub devices: Vec<PublicKey>,
    pub admitted_by: Hash,
    pub revoked: Option<String>,
    pub peer_addrs: Vec<String>,
}

impl fmt::Display for AllianceView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "alliance  {} ({})", self.name, self.alliance)?;
        writeln!(
            f,
            "roster    {} operations; coordinator changes need {} signature(s)",
            self.operations, self.threshold
        )?;
        writeln!(f, "coordinators")?;
        for c in &self.coordinators {
            let me = if *c == self.this_node {
                "  (this node)"
            } else {
                ""
            };
            writeln!(f, "  {c}{me}")?;
        }
        writeln!(f, "spaces ({})", self.spaces.len())?;
        for s in &self.spaces {
            let state = match &s.revoked {
                Some(r) => format!("  REVOKED: {r}"),
                None => String::new(),
            };
            writeln!(f, "  {}  {}{}", s.id, s.name, state)?;
            for d in &s.devices {
                let me = if *d == self.this_node {
                    "  (this node)"
                } else {
                    ""
                };
                writeln!(f, "      device {d}{me}")?;
            }
        }
        Ok(())
    }
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

    /// Admits a space whose device key is `pubkey` and returns an invite token for it.
    pub fn alliance_invite(
        &mut self,
        pubkey: &str,
        space_name: &str,
        peers: Vec<String>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InviteReport> {
        let invitee: PublicKey = pubkey
            .parse()
            .with_context(|| format!("{pubkey:?} is not a deskmesh public key"))?;
        let space = SpaceId::derive(&invitee);
        let roster = self.require_roster()?;
        let existing = roster.state().spaces.get(&space);
        // Re-issuing an invite for a space already admitted gives the same grant again.
        let grant = match existing {
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
                self.accept_op(op)?;
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

    /// Gives `pubkey` to this node's space as another device and returns its invite token.
    pub fn add_device(&mut self, pubkey: &str, now: DateTime<Utc>) -> anyhow::Result<InviteReport> {
        let device: PublicKey = pubkey
            .parse()
            .with_context(|| format!("{pubkey:?} is not a deskmesh public key"))?;
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
        self.accept_op(op)?;
        self.invite_for(grant, device, space, Vec::new())
    }

    /// Removes a device key from a space.
    pub fn remove_device(
        &mut self,
        pubkey: &str,
        space: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RosterChanged> {
        let device: PublicKey = pubkey
            .parse()
            .with_context(|| format!("{pubkey:?} is not a deskmesh public key"))?;
        let space = match space {
            Some(s) => s.parse::<SpaceId>()?,
            None => self.require_space()?,
        };
        let body = OpBody::RemoveDevice {
            space: space.clone(),
            device,
        };
        self.roster_change(body, format!("device {device} removed from {space}"), now)
    }

    /// Revokes a space's membership.
    pub fn revoke(
        &mut self,
        space: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RosterChanged> {
        let space: SpaceId = space.parse()?;
        let body = OpBody::RevokeSpace {
            space: space.clone(),
            reason: reason.to_string(),
        };
        self.roster_change(body, format!("space {space} revoked"), now)
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
        // `accept_op` rebuilds the index of what the op can affect.
        self.accept_op(op)?;
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

    /// Joins the alliance an invite token names.
    pub fn alliance_join(&mut self, token: &str) -> anyhow::Result<Joined> {
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

    /// Takes an alliance's roster operations (the create operation first, parents before children) and
    /// the peers to dial first. Each operation is verified as it is applied; a node already in another
    /// alliance refuses them.
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
        for op in ops {
            self.accept_op(op.clone())?;
        }
        if !peers.is_empty() {
            self.store
                .put_meta("bootstrap_peers", &serde_json::to_vec(peers)?)?;
        }
        Ok(())
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
                .map(|(id, s)| SpaceView {
                    id: id.clone(),
                    name: s.name.clone(),
                    devices: s.devices.keys().copied().collect(),
                    admitted_by: s.admitted_by,
                    revoked: s.revoked.as_ref().map(|(_, r)| r.clone()),
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

// ---- this space's listing ----------------------------------------------------------------------------

/// What `space edit` and `import` report for one listing.
#[derive(Debug, Serialize)]
pub struct EditReport {
    pub space: SpaceId,
    pub name: String,
    /// The signed change, or none when the listing already said exactly this.
    pub change: Option<String>,
}

impl fmt::Display for EditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Some(c) => write!(
                f,
                "listing of {:?} ({}) signed and stored as change {c}",
                self.name, self.space
            ),
            None => write!(f, "listing of {:?} ({}) unchanged", self.name, self.space),
        }
    }
}

impl Node {
    /// Signs `listing` into its space's document and stores the change.
    pub fn publish_listing(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> anyhow::Result<EditReport> {
        let roster = self.require_roster()?;
        let (mut doc, _) = self.space_doc(&listing.id)?;
        let change = doc.edit(
            listing,
            self.signer(),
            &RosterAuthority(Some(roster)),
            roster.heads(),
            ms(now),
        )?;
        let id = match change {
            Some(change) => {
                let id = change.id()?;
                self.store_change(&change)?;
                Some(crate::ops::hex(&id))
            }
            None => None,
        };
        Ok(EditReport {
            space: listing.id.clone(),
            name: listing.name.clone(),
            change: id,
        })
    }

    fn store_change(&self, change: &SignedChange) -> anyhow::Result<()> {
        self.accept_change(change)?;
        Ok(())
    }

    /// `space edit`: a file and/or flags, validated, then signed.
    pub fn space_edit(&self, args: &EditArgs, now: DateTime<Utc>) -> anyhow::Result<EditReport> {
        let space = self.require_space()?;
        let mut listing = match &args.file {
            Some(path) => {
                let mut l = read_listing_file(path)?;
                if l.id != space {
                    bail!(
                        "{} is the listing of {}, but this node signs for {}; change its \"id\"",
                        path.display(),
                        l.id,
                        space
                    );
                }
                l.id = space.clone();
                l
            }
            None => self.current_listing(&space)?.ok_or_else(|| {
                anyhow!("this space has no listing yet; start with `deskmesh space edit --file listing.json`")
            })?,
        };
        apply_flags(&mut listing, args)?;
        listing
            .validate()
            .map_err(|e| anyhow!("the listing is not valid: {e}"))?;
        self.publish_listing(&listing, now)
    }

    /// The listing of `space` (default: this node's) as the index holds it.
    pub fn space_show(&self, space: Option<&str>) -> anyhow::Result<Listing> {
        let space = match space {
            Some(s) => s.parse::<SpaceId>()?,
            None => self.require_space()?,
        };
        self.current_listing(&space)?
            .ok_or_else(|| anyhow!("no listing for {space} yet"))
    }

    fn current_listing(&self, space: &SpaceId) -> anyhow::Result<Option<Listing>> {
        match self.store.entry(space)? {
            Some(bytes) => {
                let e: IndexEntry = serde_json::from_slice(&bytes)?;
                Ok(Some(e.listing()?))
            }
            None => Ok(None),
        }
    }

    /// `import FILE`: one listing or an array, each for a space this node may sign for.
    pub fn import(&self, path: &Path, now: DateTime<Utc>) -> anyhow::Result<ImportReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        // Validate everything before writing anything, so a bad file changes nothing.
        let mut listings = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let l = Listing::from_value(item)
                .map_err(|e| anyhow!("{}: listing #{}: {e}", path.display(), i + 1))?;
            let roster = self.require_roster()?;
            if let Err(d) = roster.state().may_sign(&self.public_key(), &l.id) {
                bail!(
                    "{}: listing #{} ({:?}) is for {}, which this node may not sign for: {d}",
                    path.display(),
                    i + 1,
                    l.name,
                    l.id
                );
            }
            listings.push(l);
        }
        let mut report = ImportReport::default();
        for l in &listings {
            report.listings.push(self.publish_listing(l, now)?);
        }
        Ok(report)
    }
}

fn apply_flags(listing: &mut Listing, args: &EditArgs) -> anyhow::Result<()> {
    if let Some(v) = &args.name {
        listing.name = v.clone();
    }
    if let Some(v) = &args.description {
        listing.description = v.clone();
    }
    if let Some(v) = &args.opening_hours {
        listing.opening_hours = Some(v.clone());
    }
    if let Some(v) = &args.website {
        listing.contact.website = Some(v.clone());
    }
    if let Some(v) = &args.email {
        listing.contact.email = Some(v.clone());
    }
    if let Some(v) = &args.phone {
        listing.contact.phone = Some(v.clone());
    }
    for a in &args.add_amenities {
        let a: Amenity = a.parse().map_err(anyhow::Error::msg)?;
        listing.amenities.insert(a, AmenityDetail::default());
    }
    for a in &args.remove_amenities {
        let a: Amenity = a.parse().map_err(anyhow::Error::msg)?;
        listing.amenities.0.remove(&a);
    }
    Ok(())
}

/// What `import` reports.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub listings: Vec<EditReport>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let changed = self.listings.iter().filter(|l| l.change.is_some()).count();
        writeln!(
            f,
            "imported {} listing(s), {} changed",
            self.listings.len(),
            changed
        )?;
        for l in &self.listings {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

// ---- seats ---------------------------------------------------------------------------------------------

/// What `seats set` reports.
#[derive(Debug, Serialize)]
pub struct SeatsReport {
    pub space: SpaceId,
    pub pool: String,
    pub availability: Availability,
    pub ttl_s: u32,
    pub seq: u64,
}

impl fmt::Display for SeatsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.availability {
            Availability::Count(n) => format!("{n} seats free"),
            Availability::Many => "many seats free".into(),
            Availability::Few => "few seats free".into(),
            Availability::Full => "full".into(),
            Availability::Closed => "closed".into(),
        };
        write!(
            f,
            "{} pool {}: {what}, fresh for {} s (beacon #{})",
            self.space, self.pool, self.ttl_s, self.seq
        )
    }
}

impl Node {
    /// Signs and stores a seat beacon for one of this space's pools.
    pub fn seats_set(
        &self,
        pool: Option<&str>,
        value: &str,
        ttl_s: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SeatsReport> {
        let availability = parse_availability(value)?;
        self.set_seats(pool, availability, ttl_s, now)
    }

    /// Signs and stores a seat beacon for one of this space's pools (the default: its first pool).
    pub fn set_seats(
        &self,
        pool: Option<&str>,
        availability: Availability,
        ttl_s: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SeatsReport> {
        let space = self.require_space()?;
        let listing = self.current_listing(&space)?.ok_or_else(|| {
            anyhow!("publish a listing with seat pools first (`deskmesh space edit --file listing.json`)")
        })?;
        let pool = match pool {
            Some(p) => {
                if !listing.seat_pools.iter().any(|sp| sp.id == p) {
                    let known: Vec<&str> =
                        listing.seat_pools.iter().map(|sp| sp.id.as_str()).collect();
                    bail!(
                        "this listing has no seat pool {p:?}; its pools are: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    );
                }
                p.to_string()
            }
            None => listing
                .seat_pools
                .first()
                .map(|p| p.id.clone())
                .ok_or_else(|| {
                    anyhow!("this listing has no seat pools; add one to `seat_pools` first")
                })?,
        };
        if let Availability::Count(n) = availability {
            if let Some(sp) = listing.seat_pools.iter().find(|sp| sp.id == pool) {
                if n > sp.capacity {
                    bail!("pool {pool} has {} seats; {n} cannot be free", sp.capacity);
                }
            }
        }
        let signed = beacon_now(self, &space, &pool, availability, ttl_s, ms(now))?;
        let b = self.accept_beacon(&signed, now)?;
        Ok(SeatsReport {
            space,
            pool,
            availability,
            ttl_s,
            seq: b.seq,
        })
    }

    /// Verifies a beacon and keeps it if it is the newest for its pool. A beacon with a bad signature or
    /// an unauthorised author is logged for the audit and never stored.
    pub fn accept_beacon(
        &self,
        signed: &SignedBeacon,
        now: DateTime<Utc>,
    ) -> Result<deskmesh_crdt_model::beacon::SeatBeacon, crate::ops::Refused> {
        use crate::ops::Refused;
        let b = match signed.verify(ms(now)) {
            Ok(b) => b,
            Err(e) => {
                let author = signed.decode().ok().map(|b| b.author);
                return Err(self.refuse("seat beacon", author, None, e.to_string()));
            }
        };
        if let Err(d) = deskmesh_crdt_model::change::Authority::authorise(
            &RosterAuthority(self.roster()),
            &b.roster_heads,
            &b.author,
            &b.space,
        ) {
            if d.pending {
                return Err(Refused::Waiting(format!("pool {}: {}", b.pool, d.reason)));
            }
            return Err(self.refuse(
                "seat beacon",
                Some(b.author),
                Some(b.space.clone()),
                format!("pool {}: {}", b.pool, d.reason),
            ));
        }
        let held = self
            .store
            .beacon(&b.space, &b.pool)
            .map_err(|e| Refused::Store(e.into()))?;
        let keep = match held {
            Some(held) => match SignedBeacon::from_bytes(&held) {
                Ok(held) => beacon::newer(signed, &held),
                Err(_) => true,
            },
            None => true,
        };
        if keep {
            self.store
                .put_beacon(&b.space, &b.pool, &signed.to_bytes())
                .map_err(|e| Refused::Store(e.into()))?;
        }
        Ok(b)
    }
}

// ---- the directory ---------------------------------------------------------------------------------

/// One row of `spaces list`.
#[derive(Debug, Serialize)]
pub struct DirectoryRow {
    pub id: SpaceId,
    pub name: String,
    pub city: String,
    pub country: String,
    pub open_now: Option<bool>,
    /// "yes", "no" or "unknown".
    pub seats_free: &'static str,
    pub seats: Vec<PoolSeats>,
    pub day_pass: Option<String>,
    pub wifi_down_mbps: Option<f64>,
    pub access: Vec<&'static str>,
    pub amenities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    pub signers: Vec<PublicKey>,
}

/// The live status of one seat pool, as shown in the directory.
#[derive(Debug, Serialize)]
pub struct PoolSeats {
    pub pool: String,
    pub status: String,
    pub freshness: &'static str,
    pub availability: Option<Availability>,
    pub age_s: Option<u64>,
}

/// What `spaces list` reports.
#[derive(Debug, Serialize)]
pub struct Directory {
    pub total: usize,
    pub matched: usize,
    pub spaces: Vec<DirectoryRow>,
}

impl fmt::Display for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:<14} {:<6} {:<24} {:>11} {:>6}  access",
            "NAME", "CITY", "OPEN", "SEATS", "DAY PASS", "WIFI"
        )?;
        for r in &self.spaces {
            let open = match r.open_now {
                Some(true) => "open",
                Some(false) => "closed",
                None => "?",
            };
            let seats = r
                .seats
                .first()
                .map(|p| p.status.clone())
                .unwrap_or_else(|| "no pools".into());
            let wifi = r
                .wifi_down_mbps
                .map(|w| format!("{w:.0}M"))
                .unwrap_or_else(|| "?".into());
            writeln!(
                f,
                "{:<28} {:<14} {:<6} {:<24} {:>11} {:>6}  {}",
                truncate(&r.name, 28),
                truncate(&r.city, 14),
                open,
                truncate(&seats, 24),
                r.day_pass.as_deref().unwrap_or("-"),
                wifi,
                r.access.join(",")
            )?;
        }
        write!(f, "{} of {} spaces", self.matched, self.total)
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

impl Node {
    /// The directory, filtered and sorted by `query`, with each space's seat freshness.
    pub fn directory(&self, query: &Query, now: DateTime<Utc>) -> anyhow::Result<Directory> {
        let entries = self.entries()?;
        let mut listings = Vec::with_capacity(entries.len());
        for e in &entries {
            match e.listing() {
                Ok(l) => listings.push((e, l)),
                Err(err) => tracing::warn!("skipping {}: {err}", e.space),
            }
        }
        let mut pools: BTreeMap<SpaceId, Vec<deskmesh_crdt_model::beacon::SeatBeacon>> =
            BTreeMap::new();
        for b in self.beacons()? {
            pools.entry(b.space.clone()).or_default().push(b);
        }
        let now_ms = ms(now);
        let seats: Vec<(SeatsFree, Vec<PoolSeats>)> = listings
            .iter()
            .map(|(_, l)| {
                pool_seats(
                    l,
                    pools.get(&l.id).map(Vec::as_slice).unwrap_or(&[]),
                    now_ms,
                )
            })
            .collect();
        let index = SearchIndex::build(listings.iter().map(|(_, l)| l));
        let hits = query.run_on(&index, |i| seats[i].0, now);
        let matched = hits.len();
        let mut rows = Vec::with_capacity(hits.len());
        let mut seats = seats;
        for i in hits {
            let (entry, l) = &listings[i];
            let (free, pool_rows) = std::mem::take(&mut seats[i]);
            rows.push(row(
                entry,
                l,
                free,
                pool_rows,
                index.open_state(i, now),
                query,
            ));
        }
        Ok(Directory {
            total: listings.len(),
            matched,
            spaces: rows,
        })
    }
}

/// Each pool's status line and the space's seats-free summary.
pub fn pool_seats(
    listing: &Listing,
    beacons: &[deskmesh_crdt_model::beacon::SeatBeacon],
    now_ms: i64,
) -> (SeatsFree, Vec<PoolSeats>) {
    let mut summary = Vec::new();
    let mut out = Vec::new();
    for p in &listing.seat_pools {
        match beacons.iter().find(|b| b.pool == p.id) {
            Some(b) => {
                let fr = beacon::freshness(b, now_ms);
                summary.push((fr, b.availability));
                let (label, age) = match fr {
                    Freshness::Fresh { age_s } => ("fresh", Some(age_s)),
                    Freshness::Stale { age_s } => ("stale", Some(age_s)),
                    Freshness::Unknown => ("unknown", None),
                    Freshness::Closed => ("closed", None),
                };
                out.push(PoolSeats {
                    pool: p.id.clone(),
                    status: beacon::describe(&fr, &b.availability),
                    freshness: label,
                    availability: Some(b.availability),
                    age_s: age,
                });
            }
            None => {
                summary.push((Freshness::Unknown, Availability::Full));
                out.push(PoolSeats {
                    pool: p.id.clone(),
                    status: "unknown".into(),
                    freshness: "unknown",
                    availability: None,
                    age_s: None,
                });
            }
        }
    }
    (beacon::summarise(summary), out)
}

fn row(
    entry: &IndexEntry,
    l: &Listing,
    seats_free: SeatsFree,
    seats: Vec<PoolSeats>,
    open: OpenState,
    query: &Query,
) -> DirectoryRow {
    let a = &l.accessibility;
    let mut access = Vec::new();
    if matches!(a.wheelchair, Some(w) if w.to_string() == "yes") {
        access.push("wheelchair");
    }
    if a.toilets_wheelchair == Some(true) {
        access.push("accessible_toilet");
    }
    if a.hearing_loop == Some(true) {
        access.push("hearing_loop");
    }
    if a.quiet_room == Some(true) {
        access.push("quiet_room");
    }
    if a.entrance.as_ref().and_then(|e| e.step_free) == Some(true) {
        access.push("step_free_entrance");
    }
    let distance_km = match query.sort {
        Sort::Distance { lat, lon } => Some(distance_km(lat, lon, l.location.lat, l.location.lon)),
        Sort::Name => None,
    };
    DirectoryRow {
        id: l.id.clone(),
        name: l.name.clone(),
        city: l.location.address.city.clone(),
        country: l.location.address.country.clone(),
        open_now: match open {
            OpenState::Open => Some(true),
            OpenState::Closed => Some(false),
            OpenState::Unknown => None,
        },
        seats_free: match seats_free {
            SeatsFree::Yes => "yes",
            SeatsFree::No => "no",
            SeatsFree::Unknown => "unknown",
        },
        seats,
        day_pass: l
            .day_pass()
            .map(|o| format!("{:.2} {}", o.price, o.currency)),
        wifi_down_mbps: l.internet.down_mbps,
        access,
        amenities: l.amenities.iter().map(|(a, _)| a.to_string()).collect(),
        distance_km,
        signers: entry.signers.iter().map(|s| s.key).collect(),
    }
}
