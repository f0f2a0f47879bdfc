//! Listings in the formats other tools read and write: OpenStreetMap ([`osm`]: OSM JSON, OSM XML and
//! Overpass JSON in, OSM XML out), GeoJSON ([`geo`]) and CSV ([`table`]) both ways, and schema.org
//! JSON-LD ([`jsonld`]) out.
//!
//! Reading any of them gives [`Entry`]s: one partial listing per space, as JSON, with what could not be
//! used listed beside it. `import` turns entries into signed listings, `space edit --from` merges one into
//! this space's listing, and `space draft` hands them back as draft files. Nothing here signs or stores;
//! nothing here touches a file: the bytes come in a [`FileBytes`] the client read.

pub mod geo;
pub mod jsonld;
pub mod osm;
pub mod table;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ops::listing::{FileBytes, FileFormat};

/// A file that is not what its format says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("{0}")]
    Shape(String),
}

/// Values for what a region's OSM data usually leaves out: the city, the country and the time zone. Tags
/// win where they have them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

/// One space read from a file: a partial listing as JSON (it may lack the `id`, or fields a listing
/// needs), with what the reader could not use and the guesses it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What names the entry in messages and `--pick`: an OSM id (`node/123`), a listing id, or `#N`
    /// (its position, from 1).
    pub key: String,
    pub value: Value,
    /// `key=value` (tags, columns or properties) that map to no listing field: reported, never dropped
    /// in silence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Entry {
    /// The entry's name, for messages.
    pub fn name(&self) -> Option<&str> {
        self.value.get("name").and_then(Value::as_str)
    }

    /// Whether `pick` (an OSM id, a listing id, `#N`, or the exact name) names this entry.
    pub fn matches(&self, pick: &str) -> bool {
        let pick = pick.trim();
        self.key == pick
            || self.value.get("id").and_then(Value::as_str) == Some(pick)
            || self
                .value
                .pointer("/external_ids/osm")
                .and_then(Value::as_str)
                == Some(pick)
            || self.name().is_some_and(|n| n.eq_ignore_ascii_case(pick))
    }
}

/// The format of `bytes` when the client did not say: `<` is OSM XML; JSON with `elements` is OSM or
/// Overpass JSON, with a `FeatureCollection` or `Feature` type GeoJSON, any other JSON listings; a bundle
/// is caught before this; anything else is read as CSV.
pub fn detect(bytes: &[u8]) -> FileFormat {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') {
        return FileFormat::Osm;
    }
    if t.starts_with('{') || t.starts_with('[') {
        // Only the start was looked at; find the telling keys near the top.
        let head: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        if head.contains("\"elements\":") && !head.contains("\"features\":") {
            return FileFormat::Osm;
        }
        if head.contains("\"type\":\"FeatureCollection\"")
            || head.contains("\"type\":\"Feature\"")
            || head.contains("\"features\":")
        {
            return FileFormat::Geojson;
        }
        return FileFormat::Json;
    }
    FileFormat::Csv
}

/// Reads every space in `file`. `defaults` fill what OSM-tagged data lacks.
pub fn entries(file: &FileBytes, defaults: &Defaults) -> anyhow::Result<Vec<Entry>> {
    let text = std::str::from_utf8(&file.bytes.0)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text: {e}", file.name))?;
    let format = match file.format {
        FileFormat::Auto => detect(&file.bytes.0),
        f => f,
    };
    let named = |e: FormatError| anyhow::anyhow!("{}: {e}", file.name);
    Ok(match format {
        FileFormat::Json | FileFormat::Auto => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", file.name))?;
            let items = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, mut value)| {
                    // What an export says of a listing (verified facts, a revocation) is not part of it.
                    if let Some(m) = value.as_object_mut() {
                        m.remove(crate::export::NOTES_KEY);
                    }
                    (i, value)
                })
                .map(|(i, value)| Entry {
                    key: value
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("#{}", i + 1), str::to_string),
                    value,
                    unmapped: Vec::new(),
                    notes: Vec::new(),
                })
                .collect()
        }
        FileFormat::Toml => {
            anyhow::bail!(
                "{}: a TOML file holds one listing; give it to `space edit --file`",
                file.name
            )
        }
        FileFormat::Geojson => geo::read(text, defaults).map_err(named)?,
        FileFormat::Csv => table::read(text).map_err(named)?,
        FileFormat::Osm => {
            let elements = osm::read(text).map_err(named)?;
            let spaces: Vec<_> = elements
                .iter()
                .filter(|e| osm::is_workspace(&e.tags))
                .collect();
            if spaces.is_empty() {
                let tagged = elements.iter().filter(|e| !e.tags.is_empty()).count();
                anyhow::bail!(
                    "{}: none of its {} element(s) ({tagged} with tags) is a workspace (amenity=coworking_space, office=coworking, ...)",
                    file.name,
                    elements.len()
                );
            }
            spaces
                .into_iter()
                .map(|e| {
                    let m = osm::map_element(e, defaults);
                    Entry {
                        key: e.osm_id(),
                        value: m.value,
                        unmapped: m.unmapped,
                        notes: m.notes,
                    }
                })
                .collect()
        }
    })
}

/// Sets `value` at a dotted `path` ("location.address.city"), creating objects on the way.
pub fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Overlays `top` on `base`: objects merge key by key, anything else in `top` replaces what `base` had.
pub fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
