//! `deskmesh export`: the directory as JSON (the form `space edit --file` and `import` accept), GeoJSON
//! (RFC 7946), CSV (one flat row per space) and schema.org JSON-LD (`LocalBusiness`), or every signed item
//! as a bundle. GeoJSON and CSV also carry each space's seats now, by the one rule and in its one wording
//! (`deskmesh_crdt_model::seats`); the JSON stays the listings, so it can be imported.
//!
//! A revoked space leaves every export, unless its revocation asked to keep it listed; then it is marked
//! revoked with the reason. Facts a coordinator verified are marked verified, with who and when, and
//! facts that changed since as such (everything else is claimed by the space). In JSON, GeoJSON and
//! JSON-LD these notes sit under a `"deskmesh"` key of each listing, present only when there is
//! something to say; `import` and `space edit --file` ignore that key, so the JSON export stays the form
//! they take. CSV has `revoked`, `verified` and `changed_since_verified` columns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::seats::SeatsNow;
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::node::Node;
use crate::ops::trust::FactView;

/// The key under which exports annotate a listing, and which imports ignore.
pub const NOTES_KEY: &str = "deskmesh";

/// One listing as exported: the listing and what the alliance says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub listing: Listing,
    /// The revocation's reason, for a revoked space kept listed.
    pub revoked: Option<String>,
    pub facts: Vec<FactView>,
}

impl ExportRow {
    /// The `"deskmesh"` notes of this listing, or `None` when there is nothing to say.
    pub fn notes(&self) -> Option<Value> {
        if self.revoked.is_none() && self.facts.is_empty() {
            return None;
        }
        let mut m = Map::new();
        if let Some(r) = &self.revoked {
            m.insert("revoked".into(), json!(r));
        }
        if !self.facts.is_empty() {
            m.insert(
                "facts".into(),
                serde_json::to_value(&self.facts).unwrap_or(Value::Null),
            );
        }
        Some(Value::Object(m))
    }

    /// The listing's JSON with its notes.
    fn value(&self) -> Value {
        let mut v = self.listing.to_value();
        if let (Value::Object(m), Some(notes)) = (&mut v, self.notes()) {
            m.insert(NOTES_KEY.into(), notes);
        }
        v
    }
}

/// The forms `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportFormat {
    Json,
    Geojson,
    Csv,
    Jsonld,
    /// Every signed item (roster, listing changes, seat beacons) for offline exchange; `import` takes it.
    Bundle,
}

impl ExportFormat {
    /// Whether the format is binary (a bundle) rather than text.
    pub fn is_binary(self) -> bool {
        self == Self::Bundle
    }
}

impl Node {
    /// The whole directory in `format` as of `now`: text, or for `bundle` the signed items as bytes.
    pub fn export(&self, format: ExportFormat, now: DateTime<Utc>) -> anyhow::Result<Vec<u8>> {
        if format == ExportFormat::Bundle {
            return self.bundle()?.encode();
        }
        let verifications = self.verifications()?;
        let mut rows = Vec::new();
        for e in self.entries()? {
            let listing = e.listing()?;
            let facts = verifications
                .get(&e.space)
                .map(|v| deskmesh_crdt_model::verify::fact_states(&listing, v))
                .unwrap_or_default();
            rows.push(ExportRow {
                facts: FactView::all(&facts, self.roster()),
                revoked: e.revoked.map(|r| r.reason),
                listing,
            });
        }
        rows.sort_by(|a, b| {
            a.listing
                .name
                .cmp(&b.listing.name)
                .then(a.listing.id.cmp(&b.listing.id))
        });
        let seats = self.seats_now(now)?;
        Ok(render(&rows, &seats, format)?.into_bytes())
    }
}

/// Each space's seats now, for the formats that show them.
pub type SeatMap = BTreeMap<SpaceId, SeatsNow>;

/// Renders listings in one of the export formats.
pub fn render(rows: &[ExportRow], seats: &SeatMap, format: ExportFormat) -> anyhow::Result<String> {
    let mut text = match format {
        ExportFormat::Json => {
            let all: Vec<Value> = rows.iter().map(ExportRow::value).collect();
            serde_json::to_string_pretty(&all)?
        }
        ExportFormat::Geojson => serde_json::to_string_pretty(&geojson(rows, seats))?,
        ExportFormat::Jsonld => serde_json::to_string_pretty(&jsonld(rows))?,
        ExportFormat::Csv => return csv(rows, seats),
        ExportFormat::Bundle => {
            anyhow::bail!("a bundle holds signed bytes, not listings; use Node::bundle")
        }
    };
    text.push('\n');
    Ok(text)
}

/// RFC 7946: a FeatureCollection of Points, coordinates [lon, lat], the listing in `properties` with the
/// seats now beside it (`seats_now`: state, figure, age and `text`).
pub fn geojson(rows: &[ExportRow], seats: &SeatMap) -> Value {
    let features: Vec<geojson::Feature> = rows
        .iter()
        .map(|row| {
            let l = &row.listing;
            let mut props = match row.value() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            // The geometry already carries the point; keep the address and the rest.
            if let Some(Value::Object(loc)) = props.get_mut("location") {
                loc.remove("lon");
                loc.remove("lat");
            }
            if let Some(now) = seats.get(&l.id) {
                let mut v = serde_json::to_value(now).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("text".into(), json!(now.text()));
                }
                props.insert("seats_now".into(), v);
            }
            geojson::Feature {
                bbox: None,
                geometry: Some(geojson::Geometry::new(geojson::Value::Point(vec![
                    l.location.lon,
                    l.location.lat,
                ]))),
                id: Some(geojson::feature::Id::String(l.id.to_string())),
                properties: Some(props),
                foreign_members: None,
            }
        })
        .collect();
    let fc = geojson::FeatureCollection {
        bbox: None,
        features,
        foreign_members: None,
    };
    serde_json::to_value(&fc).unwrap_or(Value::Null)
}

/// schema.org JSON-LD: one `LocalBusiness` per space in an `ItemList`.
pub fn jsonld(rows: &[ExportRow]) -> Value {
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            let l = &row.listing;
            let amenities: Vec<Value> = l
                .amenities
                .iter()
                .map(|(a, _)| json!({"@type": "LocationFeatureSpecification", "name": a.to_string(), "value": true}))
                .collect();
            let offers: Vec<Value> = l
                .offers
                .iter()
                .map(|o| json!({"@type": "Offer", "name": o.product.to_string(), "price": o.price, "priceCurrency": o.currency}))
                .collect();
            let mut v = json!({
                "@type": "LocalBusiness",
                "@id": format!("urn:deskmesh:{}", l.id),
                "identifier": l.id.to_string(),
                "name": l.name,
                "address": {
                    "@type": "PostalAddress",
                    "streetAddress": l.location.address.street,
                    "addressLocality": l.location.address.city,
                    "postalCode": l.location.address.postcode,
                    "addressCountry": l.location.address.country,
                },
                "geo": {"@type": "GeoCoordinates", "latitude": l.location.lat, "longitude": l.location.lon},
                "amenityFeature": amenities,
                "makesOffer": offers,
            });
            if let Value::Object(m) = &mut v {
                if !l.description.is_empty() {
                    m.insert("description".into(), json!(l.description));
                }
                if let Some(h) = &l.opening_hours {
                    // OSM syntax is close to schema.org's openingHours text form; kept verbatim.
                    m.insert("openingHours".into(), json!(h));
                }
                if let Some(w) = &l.contact.website {
                    m.insert("url".into(), json!(w));
                }
                if let Some(e) = &l.contact.email {
                    m.insert("email".into(), json!(e));
                }
                if let Some(p) = &l.contact.phone {
                    m.insert("telephone".into(), json!(p));
                }
                if let Some(notes) = row.notes() {
                    m.insert(NOTES_KEY.into(), notes);
                }
            }
            v
        })
        .collect();
    json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "numberOfItems": items.len(),
        "itemListElement": items,
    })
}

/// One flat row per space, the columns the coworking community's metadata sheets use, the seats now
/// (`seats_state` and its wording `seats_now`), and what the alliance says of it.
pub fn csv(rows: &[ExportRow], seats: &SeatMap) -> anyhow::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "name",
        "category",
        "lat",
        "lon",
        "street",
        "city",
        "postcode",
        "country",
        "timezone",
        "website",
        "email",
        "phone",
        "opening_hours",
        "member_access_hours",
        "day_pass_price",
        "day_pass_currency",
        "wifi_down_mbps",
        "amenities",
        "wheelchair",
        "seat_capacity",
        "seats_state",
        "seats_now",
        "revoked",
        "verified",
        "changed_since_verified",
    ])?;
    for row in rows {
        let l = &row.listing;
        let now = seats.get(&l.id);
        let facts = |verified: bool| {
            row.facts
                .iter()
                .filter(|f| f.is_verified() == verified)
                .map(|f| format!("{} ({} by {})", f.fact, f.checked_on, f.by.label()))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let a = &l.location.address;
        let day = l.day_pass();
        let capacity: u64 = l.seat_pools.iter().map(|p| u64::from(p.capacity)).sum();
        let amenities: Vec<String> = l.amenities.iter().map(|(a, _)| a.to_string()).collect();
        w.write_record([
            l.id.to_string(),
            l.name.clone(),
            l.category.to_string(),
            format!("{:.6}", l.location.lat),
            format!("{:.6}", l.location.lon),
            a.street.clone().unwrap_or_default(),
            a.city.clone(),
            a.postcode.clone().unwrap_or_default(),
            a.country.clone(),
            l.location.timezone.clone(),
            l.contact.website.clone().unwrap_or_default(),
            l.contact.email.clone().unwrap_or_default(),
            l.contact.phone.clone().unwrap_or_default(),
            l.opening_hours.clone().unwrap_or_default(),
            l.member_access_hours.clone().unwrap_or_default(),
            day.map(|o| o.price.to_string()).unwrap_or_default(),
            day.map(|o| o.currency.clone()).unwrap_or_default(),
            l.internet
                .down_mbps
                .map(|d| d.to_string())
                .unwrap_or_default(),
            amenities.join(";"),
            l.accessibility
                .wheelchair
                .map(|w| w.to_string())
                .unwrap_or_else(|| "unknown".into()),
            capacity.to_string(),
            now.map(|n| n.state.to_string()).unwrap_or_default(),
            now.map(SeatsNow::text).unwrap_or_default(),
            row.revoked.clone().unwrap_or_default(),
            facts(true),
            facts(false),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write CSV: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{self, now};

    impl Node {
        fn export_now(&self, format: ExportFormat) -> anyhow::Result<Vec<u8>> {
            self.export(format, now())
        }
    }

    #[test]
    fn every_format_parses_with_a_real_reader() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let listing = testkit::listing(&id, "Riverside");
        space.publish_listing(&listing, now()).unwrap();

        let json = space.export_now(ExportFormat::Json).unwrap();
        let values: Vec<Value> = serde_json::from_slice(&json).unwrap();
        let back = Listing::from_value(values[0].clone()).unwrap();
        assert_eq!(back, listing);

        let geo = String::from_utf8(space.export_now(ExportFormat::Geojson).unwrap()).unwrap();
        let parsed: geojson::GeoJson = geo.parse().unwrap();
        let geojson::GeoJson::FeatureCollection(fc) = parsed else {
            panic!("not a feature collection");
        };
        assert_eq!(fc.features.len(), 1);

        let csv = space.export_now(ExportFormat::Csv).unwrap();
        let mut reader = ::csv::Reader::from_reader(csv.as_slice());
        let headers = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        let name = headers.iter().position(|h| h == "name").unwrap();
        assert_eq!(&row[name], "Riverside");
        let seats = headers.iter().position(|h| h == "seats_now").unwrap();
        assert_eq!(&row[seats], "unknown", "no beacon yet");
        assert_eq!(
            fc.features[0].properties.as_ref().unwrap()["seats_now"]["state"],
            "unknown"
        );

        let ld: Value =
            serde_json::from_slice(&space.export_now(ExportFormat::Jsonld).unwrap()).unwrap();
        assert_eq!(ld["itemListElement"][0]["@type"], "LocalBusiness");

        let bundle = space.export_now(ExportFormat::Bundle).unwrap();
        assert!(crate::bundle::Bundle::is_bundle(&bundle));
    }
}
