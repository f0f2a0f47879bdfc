//! `deskmesh export`: the directory as JSON (the form `space edit --file` and `import` accept), GeoJSON
//! (RFC 7946), CSV (one flat row per space), schema.org JSON-LD (`LocalBusiness`) and OSM XML (the
//! writers live in [`crate::formats`]), or every signed item as a bundle; and one space's Automerge
//! document as `save()` bytes. GeoJSON and CSV also carry each space's seats now, by the one rule and in
//! its one wording (`deskmesh_crdt_model::seats`), which their readers skip: the JSON stays exactly the
//! listings, so it can be imported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::seats::SeatsNow;
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::formats::{geo, jsonld, osm, table};
use crate::node::Node;

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
        let mut listings = Vec::new();
        for e in self.entries()? {
            listings.push(e.listing()?);
        }
        listings.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let seats = self.seats_now(now)?;
        Ok(render(&listings, &seats, format, now)?.into_bytes())
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
    let mut text = match format {
        ExportFormat::Json => {
            let all: Vec<Value> = listings.iter().map(Listing::to_value).collect();
            serde_json::to_string_pretty(&all)?
        }
        ExportFormat::Geojson => serde_json::to_string_pretty(&geo::write(listings, seats))?,
        ExportFormat::Jsonld => serde_json::to_string_pretty(&jsonld::write(listings, now))?,
        ExportFormat::Csv => return table::write(listings, seats),
        ExportFormat::Osm => return Ok(osm::xml(listings)),
        ExportFormat::Bundle => {
            anyhow::bail!("a bundle holds signed bytes, not listings; use Node::bundle")
        }
    };
    text.push('\n');
    Ok(text)
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
