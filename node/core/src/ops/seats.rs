//! Open seats: this space signs a seat beacon for one of its pools and takes it through the ingest path.

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon, SignedBeacon};
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};

use crate::ingest::SignedItem;
use crate::node::Node;

/// Seconds a seat figure stays fresh unless the caller says otherwise (`seats set --ttl`).
pub const DEFAULT_TTL_S: u32 = 900;

/// What `seats set` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatsReport {
    pub space: SpaceId,
    pub pool: String,
    pub availability: Availability,
    pub ttl_s: u32,
    pub seq: u64,
}

impl Node {
    /// Signs and stores a seat beacon for one of this space's pools (the default: its first pool).
    pub fn seats_set(
        &mut self,
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
        let signed = self.sign_beacon(&space, &pool, availability, ttl_s, now)?;
        let seq = signed.decode()?.seq;
        self.ingest_local(SignedItem::beacon(&signed))?;
        Ok(SeatsReport {
            space,
            pool,
            availability,
            ttl_s,
            seq,
        })
    }

    /// A beacon for `pool`, numbered after the one this node holds.
    fn sign_beacon(
        &self,
        space: &SpaceId,
        pool: &str,
        availability: Availability,
        ttl_s: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SignedBeacon> {
        let roster = self.require_roster()?;
        let seq = self
            .store
            .beacon(space, pool)?
            .and_then(|b| SignedBeacon::from_bytes(&b).ok())
            .and_then(|b| b.decode().ok())
            .map_or(0, |b| b.seq + 1);
        let b = SeatBeacon {
            space: space.clone(),
            pool: pool.to_string(),
            availability,
            is_open: !matches!(availability, Availability::Closed),
            published_at_ms: now.timestamp_millis(),
            ttl_s,
            seq,
            author: self.public_key(),
            roster_heads: roster.heads(),
        };
        Ok(b.sign(self.signer())?)
    }
}
