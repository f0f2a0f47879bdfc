//! GeoJSON (RFC 7946) both ways: a FeatureCollection of Points, coordinates `[lon, lat]`, the listing in
//! `properties` without its coordinates (the geometry holds them).
//!
//! Reading takes what `export --format geojson` writes back unchanged, and also the GeoJSON other tools
//! make of OpenStreetMap data (overpass turbo, osmtogeojson, QGIS): a feature whose properties have no
//! `location` is read as OSM tags, with its OSM id from the feature's `id` or its `@id` property.

use std::collections::BTreeMap;

use deskmesh_crdt_model::listing::Listing;
use serde_json::{json, Map, Value};

use super::{osm, set_path, Defaults, Entry, FormatError};

/// The property `export` adds with each space's seats now; readers skip it.
pub const SEATS_NOW: &str = "seats_now";

/// The directory as a FeatureCollection.
pub fn write(listings: &[Listing], seats: &crate::export::SeatMap) -> Value {
    let features: Vec<geojson::Feature> = listings
        .iter()
        .map(|l| {
            let mut props = match l.to_value() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if let Some(Value::Object(loc)) = props.get_mut("location") {
                loc.remove("lon");
                loc.remove("lat");
            }
            // The seats now (state, figure, age and their wording): live state beside the listing.
            if let Some(now) = seats.get(&l.id) {
                let mut v = serde_json::to_value(now).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("text".into(), json!(now.text()));
                }
                props.insert(SEATS_NOW.into(), v);
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

/// Reads a FeatureCollection or a single Feature.
pub fn read(text: &str, defaults: &Defaults) -> Result<Vec<Entry>, FormatError> {
    let parsed: geojson::GeoJson =
        text.parse()
            .map_err(|e: geojson::Error| FormatError::Syntax {
                format: "GeoJSON",
                message: e.to_string(),
            })?;
    let features = match parsed {
        geojson::GeoJson::FeatureCollection(fc) => fc.features,
        geojson::GeoJson::Feature(f) => vec![f],
        geojson::GeoJson::Geometry(_) => {
            return Err(FormatError::Shape(
                "a bare geometry holds no listing; give a Feature or a FeatureCollection".into(),
            ))
        }
    };
    features
        .into_iter()
        .enumerate()
        .map(|(i, f)| feature(i, f, defaults))
        .collect()
}

fn feature(i: usize, f: geojson::Feature, defaults: &Defaults) -> Result<Entry, FormatError> {
    let position = || format!("feature #{}", i + 1);
    let point = match f.geometry.as_ref().map(|g| &g.value) {
        Some(geojson::Value::Point(c)) if c.len() >= 2 => Some((c[1], c[0])),
        Some(other) => {
            return Err(FormatError::Shape(format!(
                "{}: a {} geometry; each space is a Point",
                position(),
                other.type_name()
            )))
        }
        None => None,
    };
    let feature_id = match &f.id {
        Some(geojson::feature::Id::String(s)) => Some(s.clone()),
        Some(geojson::feature::Id::Number(n)) => Some(n.to_string()),
        None => None,
    };
    let mut props = f.properties.unwrap_or_default();
    if props.contains_key("location") {
        // Live seats `export` wrote beside the listing: not listing data.
        props.remove(SEATS_NOW);
        // What the alliance says of it (verified facts, a revocation): not listing data either.
        props.remove(crate::export::NOTES_KEY);
        // A listing, as `export --format geojson` writes it.
        let mut value = Value::Object(props);
        if let Some((lat, lon)) = point {
            set_path(&mut value, "location.lat", json!(lat));
            set_path(&mut value, "location.lon", json!(lon));
        }
        if value.get("id").is_none() {
            if let Some(id) = &feature_id {
                set_path(&mut value, "id", json!(id));
            }
        }
        let key = value
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(position, str::to_string);
        return Ok(Entry {
            key,
            value,
            unmapped: Vec::new(),
            notes: Vec::new(),
        });
    }
    // OSM tags as properties.
    let mut tags = BTreeMap::new();
    let mut unmapped = Vec::new();
    let mut osm_id = feature_id.filter(|id| is_osm_id(id));
    for (k, v) in props {
        match (k.as_str(), v) {
            ("@id" | "id", Value::String(s)) if is_osm_id(&s) => osm_id = Some(s),
            (_, Value::String(s)) => {
                tags.insert(k, s);
            }
            (_, Value::Number(n)) => {
                tags.insert(k, n.to_string());
            }
            (_, other) => unmapped.push(format!("{k}={other}")),
        }
    }
    let mut m = osm::map_tags(&tags, defaults);
    if let Some(id) = &osm_id {
        set_path(&mut m.value, "external_ids.osm", json!(id));
    }
    if let Some((lat, lon)) = point {
        set_path(&mut m.value, "location.lat", json!(lat));
        set_path(&mut m.value, "location.lon", json!(lon));
    }
    unmapped.extend(m.unmapped);
    Ok(Entry {
        key: osm_id.unwrap_or_else(position),
        value: m.value,
        unmapped,
        notes: m.notes,
    })
}

fn is_osm_id(s: &str) -> bool {
    s.split_once('/').is_some_and(|(kind, n)| {
        matches!(kind, "node" | "way" | "relation") && n.parse::<u64>().is_ok()
    })
}
