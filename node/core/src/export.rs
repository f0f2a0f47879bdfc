//! `deskmesh export`: the directory as JSON (the form `space edit --file` and `import` accept), GeoJSON
//! (RFC 7946), CSV (one flat row per space), schema.org JSON-LD (`LocalBusiness`) and OSM XML (the
//! writers live in [`crate::formats`]), or every signed item as a bundle; and one space's Automerge
//! document as `save()` bytes. GeoJSON and CSV also carry each space's seats now, by the one rule and in
//! its one wording (`deskmesh_crdt_model::seats`), which their readers skip: the JSON stays exactly the
//! listings, so it can be imported.
//!
//! A revoked space leaves every export, unless its revocation asked to keep it listed; then it is marked
//! revoked with the reason. Facts a coordinator verified are marked verified, with who and when, and
//! facts that changed since as such (everything else is claimed by the space). In JSON and GeoJSON these
//! notes sit under a `"deskmesh"` key of each listing, present only when there is something to say;
//! `import` and `space edit --file` ignore that key, so the JSON export stays the form they take. JSON-LD
//! carries them as schema.org `additionalProperty` values (`propertyID` `deskmesh:revoked`,
//! `deskmesh:verified`, `deskmesh:changed-since-verified`); CSV has `revoked`, `verified` and
//! `changed_since_verified` columns, which reading skips. OSM XML carries listings only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::seats::SeatsNow;
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::formats::{geo, jsonld, osm, table};
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
    /// A listing with nothing said of it.
    pub fn plain(listing: Listing) -> Self {
        Self {
            listing,
            revoked: None,
            facts: Vec::new(),
        }
    }

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

    /// Verified facts (`true`) or facts changed since verified (`false`), as one CSV cell.
    fn facts_cell(&self, verified: bool) -> String {
        self.facts
            .iter()
            .filter(|f| f.is_verified() == verified)
            .map(|f| format!("{} ({} by {})", f.fact, f.checked_on, f.by.label()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The notes as schema.org `PropertyValue`s, for JSON-LD's `additionalProperty`.
    fn property_values(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(r) = &self.revoked {
            out.push(json!({
                "@type": "PropertyValue",
                "propertyID": "deskmesh:revoked",
                "name": "revoked",
                "value": r,
            }));
        }
        for f in &self.facts {
            let id = if f.is_verified() {
                "deskmesh:verified"
            } else {
                "deskmesh:changed-since-verified"
            };
            out.push(json!({
                "@type": "PropertyValue",
                "propertyID": id,
                "name": f.fact,
                "value": format!("checked on {} by {}", f.checked_on, f.by.label()),
            }));
        }
        out
    }
}

/// The forms `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportFormat {
    Json,
    Geojson,
    Csv,
    Jsonld,
    /// OSM XML: one node per space with its OpenStreetMap tags (`formats::osm::xml`).
    Osm,
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
    /// `now` also picks the seats shown and the week whose hours JSON-LD describes.
    pub fn export(&self, format: ExportFormat, now: DateTime<Utc>) -> anyhow::Result<Vec<u8>> {
        if format == ExportFormat::Bundle {
            return self.bundle()?.encode();
        }
        let verifications = self.verifications()?;
        let mut rows = Vec::new();
        let names = crate::names::KeyNames::new(self.roster_state());
        for e in self.entries()? {
            let listing = e.listing;
            let facts = verifications
                .get(&e.space)
                .map(|v| deskmesh_crdt_model::verify::fact_states(&listing, v))
                .unwrap_or_default();
            rows.push(ExportRow {
                facts: FactView::all_named(&facts, |k| names.of(k)),
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
        Ok(render_rows(&rows, &seats, format, now)?.into_bytes())
    }

    /// The space's Automerge document (default: this node's space), rebuilt from the signed changes this
    /// node accepted, as `save()` bytes any Automerge implementation loads.
    pub fn space_document(&self, space: Option<&SpaceId>) -> anyhow::Result<Vec<u8>> {
        let space = match space {
            Some(s) => s.clone(),
            None => self.require_space()?,
        };
        let (doc, _) = self.space_doc(&space)?;
        if doc.accepted().is_empty() {
            anyhow::bail!("no accepted listing changes for {space}, so it has no document yet");
        }
        Ok(doc.doc().save())
    }
}

/// Each space's seats now, by the one rule.
pub type SeatMap = BTreeMap<SpaceId, SeatsNow>;

/// Renders listings in one of the export formats.
pub fn render(
    listings: &[Listing],
    seats: &SeatMap,
    format: ExportFormat,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let rows: Vec<ExportRow> = listings.iter().cloned().map(ExportRow::plain).collect();
    render_rows(&rows, seats, format, now)
}

/// Renders listings with what the alliance says of them (see the module's notes).
pub fn render_rows(
    rows: &[ExportRow],
    seats: &SeatMap,
    format: ExportFormat,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let listings: Vec<Listing> = rows.iter().map(|r| r.listing.clone()).collect();
    let listings = &listings[..];
    let mut text = match format {
        ExportFormat::Json => {
            let all: Vec<Value> = rows.iter().map(ExportRow::value).collect();
            serde_json::to_string_pretty(&all)?
        }
        ExportFormat::Geojson => {
            let mut fc = geo::write(listings, seats);
            annotate(&mut fc, "features", "properties", rows, |row, m| {
                if let Some(notes) = row.notes() {
                    m.insert(NOTES_KEY.into(), notes);
                }
            });
            serde_json::to_string_pretty(&fc)?
        }
        ExportFormat::Jsonld => {
            let mut doc = jsonld::write(listings, now);
            annotate(&mut doc, "itemListElement", "item", rows, |row, m| {
                let values = row.property_values();
                if !values.is_empty() {
                    m.insert("additionalProperty".into(), Value::Array(values));
                }
            });
            serde_json::to_string_pretty(&doc)?
        }
        ExportFormat::Csv => {
            let notes: Vec<[String; 3]> = rows
                .iter()
                .map(|r| {
                    [
                        r.revoked.clone().unwrap_or_default(),
                        r.facts_cell(true),
                        r.facts_cell(false),
                    ]
                })
                .collect();
            return table::write_with_notes(listings, seats, &notes);
        }
        ExportFormat::Osm => return Ok(osm::xml(listings)),
        ExportFormat::Bundle => {
            anyhow::bail!("a bundle holds signed bytes, not listings; use Node::bundle")
        }
    };
    text.push('\n');
    Ok(text)
}

/// Adds each row's notes to the object at `list[i][field]` of a writer's output (the writers keep the
/// listings' order, one element each).
fn annotate(
    doc: &mut Value,
    list: &str,
    field: &str,
    rows: &[ExportRow],
    mut add: impl FnMut(&ExportRow, &mut Map<String, Value>),
) {
    let Some(items) = doc.get_mut(list).and_then(Value::as_array_mut) else {
        return;
    };
    for (item, row) in items.iter_mut().zip(rows) {
        if let Some(Value::Object(m)) = item.get_mut(field) {
            add(row, m);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{self, now};

    #[test]
    fn every_format_parses_with_a_real_reader() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let listing = testkit::listing(&id, "Riverside");
        space.publish_listing(&listing, now()).unwrap();

        let json = space.export(ExportFormat::Json, now()).unwrap();
        let values: Vec<Value> = serde_json::from_slice(&json).unwrap();
        let back = Listing::from_value(values[0].clone()).unwrap();
        assert_eq!(back, listing);

        let geo = String::from_utf8(space.export(ExportFormat::Geojson, now()).unwrap()).unwrap();
        let parsed: geojson::GeoJson = geo.parse().unwrap();
        let geojson::GeoJson::FeatureCollection(fc) = parsed else {
            panic!("not a feature collection");
        };
        assert_eq!(fc.features.len(), 1);

        let csv = space.export(ExportFormat::Csv, now()).unwrap();
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
            serde_json::from_slice(&space.export(ExportFormat::Jsonld, now()).unwrap()).unwrap();
        assert_eq!(ld["itemListElement"][0]["item"]["@type"], "LocalBusiness");

        let bundle = space.export(ExportFormat::Bundle, now()).unwrap();
        assert!(crate::bundle::Bundle::is_bundle(&bundle));
    }
}
