//! `deskmesh export`: the directory as JSON (the form `space edit --file` and `import` accept), GeoJSON
//! (RFC 7946), CSV (one flat row per space) and schema.org JSON-LD (`LocalBusiness`), or every signed item
//! as a bundle. GeoJSON and CSV also carry each space's seats now, by the one rule and in its one wording
//! (`deskmesh_crdt_model::seats`); the JSON stays exactly the listings, so it can be imported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::seats::SeatsNow;
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::node::Node;

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
        let mut listings = Vec::new();
        for e in self.entries()? {
            listings.push(e.listing()?);
        }
        listings.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let seats = self.seats_now(now)?;
        Ok(render(&listings, &seats, format)?.into_bytes())
    }
}

/// Each space's seats now, for the formats that show them.
pub type SeatMap = BTreeMap<SpaceId, SeatsNow>;

/// Renders listings in one of the export formats.
pub fn render(
    listings: &[Listing],
    seats: &SeatMap,
    format: ExportFormat,
) -> anyhow::Result<String> {
    let mut text = match format {
        ExportFormat::Json => {
            let all: Vec<Value> = listings.iter().map(Listing::to_value).collect();
            serde_json::to_string_pretty(&all)?
        }
        ExportFormat::Geojson => serde_json::to_string_pretty(&geojson(listings, seats))?,
        ExportFormat::Jsonld => serde_json::to_string_pretty(&jsonld(listings))?,
        ExportFormat::Csv => return csv(listings, seats),
        ExportFormat::Bundle => {
            anyhow::bail!("a bundle holds signed bytes, not listings; use Node::bundle")
        }
    };
    text.push('\n');
    Ok(text)
}

/// RFC 7946: a FeatureCollection of Points, coordinates [lon, lat], the listing in `properties` with the
/// seats now beside it (`seats_now`: state, figure, age and `text`).
pub fn geojson(listings: &[Listing], seats: &SeatMap) -> Value {
    let features: Vec<geojson::Feature> = listings
        .iter()
        .map(|l| {
            let mut props = match l.to_value() {
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
pub fn jsonld(listings: &[Listing]) -> Value {
    let items: Vec<Value> = listings
        .iter()
        .map(|l| {
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

/// One flat row per space, the columns the coworking community's metadata sheets use, and the seats now
/// (`seats_state` and its wording `seats_now`).
pub fn csv(listings: &[Listing], seats: &SeatMap) -> anyhow::Result<String> {
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
    ])?;
    for l in listings {
        let a = &l.location.address;
        let day = l.day_pass();
        let capacity: u64 = l.seat_pools.iter().map(|p| u64::from(p.capacity)).sum();
        let amenities: Vec<String> = l.amenities.iter().map(|(a, _)| a.to_string()).collect();
        let now = seats.get(&l.id);
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
