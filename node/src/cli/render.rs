//! How each result reads for people. A result has *data* (stdout: what a script captures with
//! `x=$(deskmesh …)`) and may have a *hint* (stderr: what to do next, never captured with the data).
//! `--json` prints the serde form instead and no hint. The node renders nothing: these are the only text
//! forms of its results.

use std::fmt::Write as _;

use deskmesh_core::audit::{AuditReport, AuditSource, Finding};
use deskmesh_core::bundle::BundleReport;
use deskmesh_core::home::SavedPlace;
use deskmesh_core::node::InitReport;
use deskmesh_core::ops::alliance::{
    AllianceCreated, AllianceView, InviteReport, Joined, MemberInviteReport, Replaced,
    RosterChanged,
};
use deskmesh_core::ops::directory::Directory;
use deskmesh_core::ops::drafts::DraftReport;
use deskmesh_core::ops::listing::{EditReport, ImportReport};
use deskmesh_core::ops::seats::SeatsReport;
use deskmesh_core::ops::trust::{ProposalReport, VerifyReport};
use deskmesh_core::view::{NatStatus, NodeStatus, PeerInfo};
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::{for_display, Listing};
use deskmesh_crdt_model::SeatState;

use crate::demo::DemoReport;

/// A result as people read it.
pub trait Human {
    /// The data, printed on stdout.
    fn data(&self) -> String;
    /// What to do next, printed on stderr.
    fn hint(&self) -> Option<String> {
        None
    }
}

impl Human for InitReport {
    fn data(&self) -> String {
        self.public_key.to_string()
    }
    fn hint(&self) -> Option<String> {
        Some(format!(
            "node {:?} initialised in {}; give the key above to your alliance coordinator",
            self.name, self.home
        ))
    }
}

impl Human for AllianceCreated {
    fn data(&self) -> String {
        self.alliance.to_string()
    }
    fn hint(&self) -> Option<String> {
        Some(format!(
            "alliance {:?} created; this node ({}) is its founding coordinator; admit spaces with `deskmesh alliance invite KEY --space NAME`",
            self.name, self.coordinator
        ))
    }
}

impl Human for InviteReport {
    fn data(&self) -> String {
        self.token.clone()
    }
    fn hint(&self) -> Option<String> {
        Some(format!(
            "invite for {} as space {}; on that machine run `deskmesh alliance join TOKEN`",
            self.invitee, self.space
        ))
    }
}

impl Human for MemberInviteReport {
    fn data(&self) -> String {
        self.token.clone()
    }
    fn hint(&self) -> Option<String> {
        Some(format!(
            "member invite for alliance {}; on the member's machine run `deskmesh init` then `deskmesh alliance join TOKEN`",
            self.alliance
        ))
    }
}

impl Human for Joined {
    fn data(&self) -> String {
        match &self.space {
            Some(space) => format!(
                "joined alliance {:?} ({}) as space {:?} ({space})",
                self.alliance_name, self.alliance, self.space_name
            ),
            None => format!(
                "joined alliance {:?} ({}) as a member",
                self.alliance_name, self.alliance
            ),
        }
    }
    fn hint(&self) -> Option<String> {
        Some(match &self.space {
            Some(_) => "next: `deskmesh space init` writes listing.toml, a commented template of your first listing; fill in the REQUIRED lines, run `deskmesh space edit --file listing.toml`, then `deskmesh run` to join the mesh".into(),
            None => "`deskmesh run` replicates the directory, `deskmesh tui` browses it".into(),
        })
    }
}

impl Human for RosterChanged {
    fn data(&self) -> String {
        format!("{} (roster op {})", self.summary, self.op.short())
    }
}

impl Human for AllianceView {
    fn data(&self) -> String {
        let mut f = String::new();
        let _ = writeln!(f, "alliance  {} ({})", self.name, self.alliance);
        let _ = writeln!(
            f,
            "roster    {} operations; coordinator changes need {} signature(s)",
            self.operations, self.threshold
        );
        let _ = writeln!(f, "coordinators");
        for c in &self.coordinators {
            let me = if *c == self.this_node {
                "  (this node)"
            } else {
                ""
            };
            let _ = writeln!(f, "  {c}{me}");
        }
        let _ = write!(f, "spaces ({})", self.spaces.len());
        for s in &self.spaces {
            let state = match &s.revoked {
                Some(r) if s.revoked_listed => format!("  REVOKED (still listed): {r}"),
                Some(r) => format!("  REVOKED: {r}"),
                None => String::new(),
            };
            let _ = write!(f, "\n  {}  {}{}", s.id, for_display(&s.name), state);
            for d in &s.devices {
                let me = if *d == self.this_node {
                    "  (this node)"
                } else {
                    ""
                };
                let _ = write!(f, "\n      device {d}{me}");
            }
        }
        f
    }
}

impl Human for EditReport {
    fn data(&self) -> String {
        match &self.change {
            Some(c) => format!(
                "listing of {:?} ({}) signed and stored as change {c}",
                self.name, self.space
            ),
            None => format!("listing of {:?} ({}) unchanged", self.name, self.space),
        }
    }
}

impl Human for ImportReport {
    fn data(&self) -> String {
        let changed = self.listings.iter().filter(|l| l.change.is_some()).count();
        let mut f = format!(
            "imported {} listing(s), {} changed",
            self.listings.len(),
            changed
        );
        for l in &self.listings {
            let _ = write!(f, "\n  {}", l.data());
        }
        f
    }
}

/// What `space draft` wrote.
#[derive(Debug, serde::Serialize)]
pub struct DraftsWritten {
    #[serde(flatten)]
    pub report: DraftReport,
    /// The file written for each draft, in order.
    pub files: Vec<String>,
}

impl Human for DraftsWritten {
    fn data(&self) -> String {
        let mut f = String::new();
        for (d, file) in self.report.drafts.iter().zip(&self.files) {
            let state = if d.problems.is_empty() {
                "ready".to_string()
            } else {
                format!("needs: {}", d.problems.join("; "))
            };
            let _ = writeln!(
                f,
                "{file}  {}  {}  {state}",
                d.key,
                d.name.as_deref().unwrap_or("(no name)")
            );
        }
        let _ = write!(
            f,
            "{} draft(s) from {}, {} ready to sign",
            self.report.drafts.len(),
            self.report.source,
            self.report.ready()
        );
        f
    }
    fn hint(&self) -> Option<String> {
        Some("hand each space its draft with its invite; on its own node it runs `deskmesh space edit --file DRAFT.json` (a draft has no id: the signing node gives it its own)".into())
    }
}

impl Human for BundleReport {
    fn data(&self) -> String {
        let mut f = format!(
            "bundle imported: {} new roster operation(s), {} new checkpoint(s), {} new listing change(s), {} seat beacon(s), {} already held; {} refused",
            self.roster_ops_new,
            self.checkpoints_new,
            self.changes_new,
            self.beacons_taken,
            self.known,
            self.refused.len()
        );
        for r in &self.refused {
            let _ = write!(f, "\n  refused: {r}");
        }
        f
    }
}

impl Human for SeatsReport {
    fn data(&self) -> String {
        let what = match self.availability {
            Availability::Count(n) => format!("{n} seats free"),
            Availability::Many => "many seats free".into(),
            Availability::Few => "few seats free".into(),
            Availability::Full => "full".into(),
            Availability::Closed => "closed".into(),
        };
        format!(
            "{} pool {}: {what}, fresh for {} s (beacon #{})",
            self.space, self.pool, self.ttl_s, self.seq
        )
    }
}

impl Human for Directory {
    fn data(&self) -> String {
        let mut f = String::new();
        let dist = self.origin.is_some();
        let _ = write!(
            f,
            "{:<28} {:<14} {:<6} {:<24} {:>11} {:>6}",
            "NAME", "CITY", "OPEN", "SEATS", "DAY PASS", "WIFI"
        );
        if dist {
            let _ = write!(f, " {:>9}", "DISTANCE");
        }
        let _ = writeln!(f, "  ACCESS");
        for r in &self.spaces {
            let open = match r.open_now {
                Some(true) => "open",
                Some(false) => "closed",
                None => "?",
            };
            let seats = match &r.revoked {
                Some(why) => format!("REVOKED: {why}"),
                None => r.seats_text.clone(),
            };
            let wifi = r
                .wifi_down_mbps
                .map(|w| format!("{w:.0}M"))
                .unwrap_or_else(|| "?".into());
            let verified: Vec<&str> = r
                .facts
                .iter()
                .filter(|v| v.is_verified())
                .map(|v| v.fact.as_str())
                .collect();
            let verified = if verified.is_empty() {
                String::new()
            } else {
                format!("  verified: {}", verified.join(","))
            };
            let _ = write!(
                f,
                "{:<28} {:<14} {:<6} {:<24} {:>11} {:>6}",
                truncate(&for_display(&r.name), 28),
                truncate(&for_display(&r.city), 14),
                open,
                truncate(&seats, 24),
                r.day_pass.as_deref().unwrap_or("-"),
                wifi,
            );
            if dist {
                let _ = write!(f, " {:>9}", r.distance_km.map(km).unwrap_or_default());
            }
            let _ = writeln!(f, "  {}{verified}", r.access.join(","));
        }
        let _ = write!(f, "{} of {} spaces", self.matched, self.total);
        if let Some(o) = &self.origin {
            let _ = match &o.city {
                Some(c) => write!(
                    f,
                    "; distances from the middle of {c} ({:.4}, {:.4})",
                    o.lat, o.lon
                ),
                None => write!(f, "; distances from {:.4}, {:.4}", o.lat, o.lon),
            };
        }
        f
    }
    fn hint(&self) -> Option<String> {
        let stale = self
            .spaces
            .iter()
            .any(|r| r.seats_now.state == SeatState::Stale);
        stale.then(|| {
            "~ marks a stale seat figure: past its ttl, shown with its age, never counted as free"
                .to_string()
        })
    }
}

/// "850 m", "2.3 km", "2310 km".
fn km(d: f64) -> String {
    if d < 1.0 {
        format!("{:.0} m", d * 1000.0)
    } else if d < 10.0 {
        format!("{d:.1} km")
    } else {
        format!("{d:.0} km")
    }
}

/// `deskmesh location`.
pub struct Location(pub Option<SavedPlace>);

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            location: Option<&'a SavedPlace>,
        }
        Out {
            location: self.0.as_ref(),
        }
        .serialize(s)
    }
}

impl Human for Location {
    fn data(&self) -> String {
        match &self.0 {
            Some(p) => match &p.label {
                Some(l) => format!("{:.6},{:.6} ({l})", p.lat, p.lon),
                None => format!("{:.6},{:.6}", p.lat, p.lon),
            },
            None => String::new(),
        }
    }
    fn hint(&self) -> Option<String> {
        Some(match self.0 {
            Some(_) => "`deskmesh spaces list --near` sorts by distance from here".into(),
            None => {
                "no location saved; `deskmesh location set LAT,LON` (or a city) saves one".into()
            }
        })
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

impl Human for NodeStatus {
    fn data(&self) -> String {
        let alliance = match (&self.alliance_name, &self.alliance) {
            (Some(n), Some(a)) => format!("{n} ({a})"),
            _ => "none".to_string(),
        };
        let mut f = String::new();
        let _ = writeln!(
            f,
            "daemon:    {}",
            if self.running {
                "running"
            } else {
                "not running (start it with `deskmesh run`)"
            }
        );
        let _ = writeln!(f, "node:      {}", self.node_name);
        let _ = writeln!(f, "alliance:  {alliance}");
        if let Some(space) = &self.my_space {
            let _ = writeln!(f, "space:     {space}");
        }
        if let Some(s) = &self.standing {
            let _ = match (s.revoked, &s.reason) {
                (true, Some(reason)) => writeln!(
                    f,
                    "standing:  REVOKED: space {:?} ({}) was revoked by a coordinator: {reason} (roster op {})",
                    s.space_name,
                    s.space,
                    s.by.short()
                ),
                (true, None) => writeln!(
                    f,
                    "standing:  REVOKED: space {:?} ({}) was revoked by a coordinator (roster op {})",
                    s.space_name,
                    s.space,
                    s.by.short()
                ),
                (false, _) => writeln!(
                    f,
                    "standing:  REMOVED: this device was removed from space {:?} ({}) by roster op {}; what it signs is refused",
                    s.space_name,
                    s.space,
                    s.by.short()
                ),
            };
        }
        let _ = writeln!(f, "key:       {}", self.public_key);
        let _ = writeln!(f, "peer id:   {}", self.peer_id);
        for a in &self.listen {
            let _ = writeln!(f, "listening: {a}");
        }
        if self.running {
            let r = &self.reachability;
            let nat = match r.nat {
                NatStatus::Unknown => "unknown yet (AutoNAT has no verdict)",
                NatStatus::Public => "public (peers dial this node directly)",
                NatStatus::Private => "private (behind a NAT or firewall; reached through a relay)",
            };
            let _ = writeln!(f, "reachable: {nat}");
            for a in &r.external {
                let _ = writeln!(f, "external:  {a}");
            }
            for a in &r.relayed {
                let _ = writeln!(f, "relayed:   {a}");
            }
        }
        let relayed = self.peers.iter().filter(|p| p.relayed).count();
        if relayed > 0 {
            let _ = writeln!(
                f,
                "peers:     {} ({relayed} through a relay)",
                self.peers.len()
            );
        } else {
            let _ = writeln!(f, "peers:     {}", self.peers.len());
        }
        let _ = writeln!(f, "listings:  {}", self.listings);
        if let Some(c) = self.catching_up {
            let _ = match c.expected {
                Some(expected) => writeln!(
                    f,
                    "syncing:   {} of {expected} items from peers",
                    c.received
                ),
                None => writeln!(f, "syncing:   {} items from peers so far", c.received),
            };
        }
        let _ = write!(
            f,
            "last sync: {}",
            self.last_sync
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into())
        );
        f
    }
}

/// `deskmesh peers`.
pub struct Peers(pub Vec<PeerInfo>);

impl serde::Serialize for Peers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            peers: &'a [PeerInfo],
        }
        Out { peers: &self.0 }.serialize(s)
    }
}

impl Human for Peers {
    fn data(&self) -> String {
        self.0
            .iter()
            .map(|p| {
                format!(
                    "{} {} {}",
                    p.peer_id,
                    if p.relayed { "relayed" } else { "direct" },
                    p.addresses.join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn hint(&self) -> Option<String> {
        self.0.is_empty().then(|| "no peers connected".to_string())
    }
}

impl Human for Listing {
    fn data(&self) -> String {
        // The JSON form is exactly what `space edit --file` takes; the human view is the same data, so
        // nothing a user sees is missing from it.
        serde_json::to_string_pretty(&self.to_value())
            .unwrap_or_else(|_| "(listing cannot be shown)".into())
    }
}

impl Human for AuditReport {
    fn data(&self) -> String {
        let mut f = String::new();
        match (&self.alliance_name, &self.alliance) {
            (Some(n), Some(a)) => {
                let _ = writeln!(f, "alliance {n} ({a})");
            }
            (_, Some(a)) => {
                let _ = writeln!(f, "alliance {a}");
            }
            _ => {
                let _ = writeln!(f, "this node is not in an alliance");
            }
        }
        let _ = match &self.source {
            AuditSource::Node { name, .. } => writeln!(f, "checked: the store of node {name:?}"),
            AuditSource::File {
                node_name,
                exported_by,
                exported_at_ms,
                signature_ok,
            } => writeln!(
                f,
                "checked: an audit file exported by node {node_name:?} ({exported_by}) on {}; its signature {}",
                when(*exported_at_ms),
                if *signature_ok {
                    "verifies"
                } else {
                    "does NOT verify"
                }
            ),
        };
        let _ = writeln!(
            f,
            "\nroster ({} operations, every signature verified)",
            self.roster.len()
        );
        for op in &self.roster {
            let _ = writeln!(
                f,
                "  {}  {}  signed by {} {}{}",
                op.op.short(),
                op.summary,
                op.author_name,
                op.author.short(),
                if op.signed_by.len() > 1 {
                    format!(" and {} more", op.signed_by.len() - 1)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(f, "\nlistings ({})", self.listings.len());
        for l in &self.listings {
            let revoked = match &l.revoked {
                Some(r) => format!("  REVOKED: {r}"),
                None => String::new(),
            };
            let _ = writeln!(
                f,
                "  {}  {}  {} changes accepted ({} stored here, each signature checked){revoked}",
                l.space,
                for_display(l.name.as_deref().unwrap_or("(no valid listing)")),
                l.changes_accepted,
                l.changes_stored
            );
            if l.changes_vouched > 0 {
                let _ = writeln!(
                    f,
                    "      {} change(s) came inside checkpoints and are vouched for by their signers; a node that received them one by one can show each",
                    l.changes_vouched
                );
            }
            for c in &l.checkpoints {
                let _ = writeln!(
                    f,
                    "      checkpoint {} of {} change(s) signed by {}",
                    c.id.short(),
                    c.changes,
                    c.author.label()
                );
            }
            for s in &l.signers {
                let removed = match &s.removed_by {
                    Some(h) => format!("; key since removed by {}", h.short()),
                    None => String::new(),
                };
                let _ = writeln!(
                    f,
                    "      signed by {} ({} change(s)) under roster op {}{removed}",
                    s.key.label(),
                    s.changes,
                    s.authorised_by.short()
                );
            }
            for fact in &l.facts {
                let _ = match (&fact.verified, &fact.changed_since) {
                    (Some(a), _) => writeln!(
                        f,
                        "      verified: {} (checked {} by {})",
                        fact.fact,
                        a.checked_on,
                        a.by.short()
                    ),
                    (None, Some(a)) => writeln!(
                        f,
                        "      claimed again: {} changed since it was verified on {} by {}",
                        fact.fact,
                        a.checked_on,
                        a.by.short()
                    ),
                    (None, None) => Ok(()),
                };
            }
        }
        let _ = writeln!(f, "\nseat beacons: {} verified", self.beacons_verified);
        let lapsed = self.verifications.iter().filter(|v| !v.counts).count();
        let _ = writeln!(
            f,
            "verifications: {}{}",
            self.verifications.len(),
            if lapsed > 0 {
                format!(" ({lapsed} by coordinators since removed, which no longer count)")
            } else {
                String::new()
            }
        );
        if !self.proposals.is_empty() {
            let _ = writeln!(
                f,
                "coordinator changes waiting for approval: {}",
                self.proposals.len()
            );
            for p in &self.proposals {
                let _ = writeln!(
                    f,
                    "  {}  {}  {} of {} signatures",
                    p.id.short(),
                    p.summary,
                    p.approved_by.len(),
                    p.threshold
                );
            }
        }
        let _ = writeln!(f, "\nfindings ({})", self.findings.len());
        if self.findings.is_empty() {
            let _ = writeln!(f, "  none");
        }
        for item in &self.findings {
            f.push_str(&finding(item));
        }
        let _ = write!(
            f,
            "\n{}",
            match (self.ok, self.waiting) {
                (true, 0) => {
                    "audit passed: every stored signature verifies and nothing was refused or rejected".to_string()
                }
                (true, n) => format!(
                    "audit passed: every stored signature verifies and nothing was refused or rejected; {n} change(s) wait for roster operations or earlier changes a sync will bring (pending, listed above)"
                ),
                (false, _) => format!(
                    "audit found {} item(s) that did not count (listed above)",
                    self.findings.len() - self.waiting
                ),
            }
        );
        f
    }
}

/// One finding for people: what, where, who, from where, why.
pub fn finding(item: &Finding) -> String {
    let mut f = String::new();
    let id = item
        .item
        .as_deref()
        .map(|i| format!(" {}", &i[..12.min(i.len())]))
        .unwrap_or_default();
    let _ = writeln!(
        f,
        "  {} {}{id}",
        item.status.label().to_ascii_uppercase(),
        item.kind
    );
    if let Some(space) = &item.space {
        let _ = match &item.space_name {
            Some(n) => writeln!(f, "      space:  {n:?} ({space})"),
            None => writeln!(f, "      space:  {space}"),
        };
    }
    if let Some(a) = &item.author {
        let _ = writeln!(f, "      signed: {} ({})", a.name, a.key);
    }
    if let Some(from) = item.origin() {
        let at = item
            .at_ms
            .map(|t| format!(", {}", when(t)))
            .unwrap_or_default();
        let _ = writeln!(f, "      from:   {from}{at}");
    }
    let _ = writeln!(f, "      why:    {}", item.reason);
    f
}

/// A time in milliseconds as RFC 3339 (UTC, seconds).
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "an unknown time".into())
}

impl Human for Replaced {
    fn data(&self) -> String {
        self.invite.token.clone()
    }
    fn hint(&self) -> Option<String> {
        Some(format!(
            "{}; new device {} added to {}; on that machine run `deskmesh alliance join TOKEN`",
            self.removed.summary, self.invite.invitee, self.invite.space
        ))
    }
}

impl Human for ProposalReport {
    fn data(&self) -> String {
        self.token.clone()
    }
    fn hint(&self) -> Option<String> {
        Some(if self.applied {
            format!(
                "in effect: {} (proposal {}, approved by {})",
                self.summary,
                self.id.short(),
                names(&self.approved_by)
            )
        } else {
            format!(
                "proposal {}: {}; {} of {} signatures, waiting for {} more from: {}. Carry the token above to them (a running node also sends it); each runs `deskmesh alliance approve TOKEN` or `deskmesh alliance approve {}`",
                self.id.short(),
                self.summary,
                self.approved_by.len(),
                self.threshold,
                self.missing,
                names(&self.waiting_for),
                self.id.short()
            )
        })
    }
}

fn names(keys: &[deskmesh_core::names::KeyName]) -> String {
    if keys.is_empty() {
        return "nobody".into();
    }
    keys.iter()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `alliance proposals`.
pub struct Proposals(pub Vec<ProposalReport>);

impl serde::Serialize for Proposals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            proposals: &'a [ProposalReport],
        }
        Out { proposals: &self.0 }.serialize(s)
    }
}

impl Human for Proposals {
    fn data(&self) -> String {
        self.0
            .iter()
            .map(|p| {
                format!(
                    "{}  {}  {} of {} signatures (proposed by {}; waiting for {})",
                    p.id.short(),
                    p.summary,
                    p.approved_by.len(),
                    p.threshold,
                    p.proposed_by.label(),
                    names(&p.waiting_for)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn hint(&self) -> Option<String> {
        Some(if self.0.is_empty() {
            "no coordinator change is waiting for approval".into()
        } else {
            "approve one with `deskmesh alliance approve ID`".into()
        })
    }
}

impl Human for VerifyReport {
    fn data(&self) -> String {
        format!(
            "verified {} of {:?} ({}) as checked on {} (verification {})",
            self.facts.join(", "),
            self.name,
            self.space,
            self.checked_on,
            self.id.short()
        )
    }
    fn hint(&self) -> Option<String> {
        Some("members see these facts as verified until the space changes them".into())
    }
}

impl Human for DemoReport {
    fn data(&self) -> String {
        self.directory.data()
    }
    fn hint(&self) -> Option<String> {
        let mut f = String::new();
        if self.created {
            let _ = writeln!(f, "A sample alliance was created in {}.", self.home);
        } else {
            let _ = writeln!(f, "Showing the sample alliance already in {}.", self.home);
        }
        let _ = writeln!(
            f,
            "Explore it (from a checkout, `deskmesh` is target/release/deskmesh; `cargo install --path node` puts it on PATH):"
        );
        let _ = writeln!(
            f,
            "  deskmesh --home {} spaces list --open-now --amenity coffee",
            self.home
        );
        let _ = writeln!(f, "  deskmesh --home {} alliance show", self.home);
        let _ = write!(f, "  deskmesh --home {} audit", self.home);
        Some(f)
    }
}
