//! OpenStreetMap in and out: elements read from the OSM API's JSON, OSM XML (`.osm`, including JOSM
//! files and the API's `/map` answer) or an Overpass JSON answer, their tags mapped to listing fields, and
//! a listing's facts written back as OSM tags.
//!
//! The mapping both ways is the table in `docs/LISTING.md`. Reading is forgiving: a tag that maps to no
//! field, or whose value the listing cannot hold, is *reported* ([`Mapped::unmapped`]), never dropped in
//! silence; a value that needs a guess (a website without a scheme, a time zone taken from the country)
//! is kept with a note ([`Mapped::notes`]). Writing emits only tags OSM has conventions for.

use std::collections::BTreeMap;

use deskmesh_crdt_model::hours::Hours;
use deskmesh_crdt_model::listing::{Amenity, Listing, PoolKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{set_path, Defaults, FormatError};

/// One OSM element as read: its type and id, a point (a node's position, or a way's or relation's
/// centre), and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// `node`, `way` or `relation`.
    pub kind: String,
    pub id: i64,
    /// `(lat, lon)`, when the element has a position or the file has what it takes to compute one.
    pub point: Option<(f64, f64)>,
    pub tags: BTreeMap<String, String>,
}

impl Element {
    /// `node/123`, the form `external_ids.osm` holds.
    pub fn osm_id(&self) -> String {
        format!("{}/{}", self.kind, self.id)
    }
}

/// Whether the element is a place people work in: the tags deskmesh maps to a listing category.
pub fn is_workspace(tags: &BTreeMap<String, String>) -> bool {
    category_of(tags).is_some()
}

fn category_of(tags: &BTreeMap<String, String>) -> Option<&'static str> {
    let t = |k: &str| tags.get(k).map(String::as_str);
    if t("amenity") == Some("coworking_space") || t("office") == Some("coworking") {
        return Some("coworking_space");
    }
    match (t("amenity"), t("leisure"), t("tourism")) {
        (Some("cafe"), _, _) if tags.contains_key("internet_access") => Some("cafe_workspace"),
        (Some("library"), _, _) => Some("library"),
        (Some("community_centre"), _, _) => Some("community_space"),
        (Some("university" | "college"), _, _) => Some("university_space"),
        (_, Some("hackerspace"), _) => Some("makerspace"),
        (_, _, Some("hotel")) if tags.contains_key("internet_access") => Some("hotel_workspace"),
        _ => None,
    }
}

/// Reads OSM elements from JSON (the OSM API's `.json` answers and Overpass JSON, both `{"elements":
/// [...]}`) or XML (`<osm>`). Ways and relations get the centre Overpass gives with `out center`, or
/// else the mean of their member nodes' positions when the file holds those nodes.
pub fn read(text: &str) -> Result<Vec<Element>, FormatError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let (mut elements, refs) = if trimmed.starts_with('<') {
        read_xml(trimmed)?
    } else {
        read_json(trimmed)?
    };
    place_ways(&mut elements, &refs);
    Ok(elements)
}

/// Each way's and relation's members, `(kind, id)`, kept until positions are computed.
type Refs = BTreeMap<(String, i64), Vec<(String, i64)>>;

#[derive(Deserialize)]
struct JsonFile {
    elements: Vec<JsonElement>,
}

#[derive(Deserialize)]
struct JsonElement {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
    lat: Option<f64>,
    lon: Option<f64>,
    center: Option<JsonPoint>,
    #[serde(default)]
    nodes: Vec<i64>,
    #[serde(default)]
    members: Vec<JsonMember>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct JsonPoint {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct JsonMember {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref")]
    id: i64,
}

fn read_json(text: &str) -> Result<(Vec<Element>, Refs), FormatError> {
    let file: JsonFile = serde_json::from_str(text).map_err(|e| FormatError::Syntax {
        format: "OSM JSON",
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(file.elements.len());
    let mut all_refs = Refs::new();
    for e in file.elements {
        let point = match (e.lat, e.lon, e.center) {
            (Some(lat), Some(lon), _) => Some((lat, lon)),
            (_, _, Some(c)) => Some((c.lat, c.lon)),
            _ => None,
        };
        let mut refs: Vec<(String, i64)> = e.nodes.iter().map(|n| ("node".into(), *n)).collect();
        refs.extend(e.members.into_iter().map(|m| (m.kind, m.id)));
        if !refs.is_empty() {
            all_refs.insert((e.kind.clone(), e.id), refs);
        }
        out.push(Element {
            kind: e.kind,
            id: e.id,
            point,
            tags: e.tags,
        });
    }
    Ok((out, all_refs))
}

fn read_xml(text: &str) -> Result<(Vec<Element>, Refs), FormatError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| FormatError::Syntax {
        format: "OSM XML",
        message: e.to_string(),
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "osm" {
        return Err(FormatError::Syntax {
            format: "OSM XML",
            message: format!(
                "the root element is <{}>, not <osm>",
                root.tag_name().name()
            ),
        });
    }
    let mut all_refs = Refs::new();
    let mut out = Vec::new();
    for n in root.children().filter(|n| n.is_element()) {
        let kind = n.tag_name().name();
        if !matches!(kind, "node" | "way" | "relation") {
            continue;
        }
        let id = n
            .attribute("id")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| FormatError::Syntax {
                format: "OSM XML",
                message: format!("a <{kind}> at byte {} has no numeric id", n.range().start),
            })?;
        let coord = |e: roxmltree::Node| -> Option<(f64, f64)> {
            Some((
                e.attribute("lat")?.parse().ok()?,
                e.attribute("lon")?.parse().ok()?,
            ))
        };
        let mut point = coord(n);
        let mut tags = BTreeMap::new();
        let mut refs = Vec::new();
        for c in n.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "tag" => {
                    if let (Some(k), Some(v)) = (c.attribute("k"), c.attribute("v")) {
                        tags.insert(k.to_string(), v.to_string());
                    }
                }
                "center" => point = point.or_else(|| coord(c)),
                "nd" => {
                    if let Some(r) = c.attribute("ref").and_then(|v| v.parse().ok()) {
                        refs.push(("node".to_string(), r));
                    }
                }
                "member" => {
                    if let (Some(t), Some(r)) = (
                        c.attribute("type"),
                        c.attribute("ref").and_then(|v| v.parse().ok()),
                    ) {
                        refs.push((t.to_string(), r));
                    }
                }
                _ => {}
            }
        }
        if !refs.is_empty() {
            all_refs.insert((kind.to_string(), id), refs);
        }
        out.push(Element {
            kind: kind.to_string(),
            id,
            point,
            tags,
        });
    }
    Ok((out, all_refs))
}

/// Gives ways and relations without a centre the mean position of their member nodes (ways first, so
/// a relation of ways can use them).
fn place_ways(elements: &mut [Element], refs: &Refs) {
    if refs.is_empty() {
        return;
    }
    let mut points: BTreeMap<(String, i64), (f64, f64)> = elements
        .iter()
        .filter_map(|e| Some(((e.kind.clone(), e.id), e.point?)))
        .collect();
    for kind in ["way", "relation"] {
        for e in elements
            .iter_mut()
            .filter(|e| e.kind == kind && e.point.is_none())
        {
            let Some(members) = refs.get(&(e.kind.clone(), e.id)) else {
                continue;
            };
            let known: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|m| points.get(m).copied())
                .collect();
            if known.is_empty() {
                continue;
            }
            let n = known.len() as f64;
            let lat = known.iter().map(|p| p.0).sum::<f64>() / n;
            let lon = known.iter().map(|p| p.1).sum::<f64>() / n;
            e.point = Some((lat, lon));
            points.insert((e.kind.clone(), e.id), (lat, lon));
        }
    }
}

/// What a set of tags says about a listing: a partial listing as JSON (no `id`), the tags it could not
/// use, and notes on the guesses it made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mapped {
    pub value: Value,
    /// `key=value` for every tag that maps to no listing field or whose value the listing cannot hold.
    pub unmapped: Vec<String>,
    pub notes: Vec<String>,
}

/// Tags that describe the OSM object itself rather than the space; read without being reported.
const BOOKKEEPING: &[&str] = &["source", "note", "fixme", "FIXME", "created_by"];

/// Maps an element to a partial listing. `defaults` fill the city, country and time zone where the tags
/// have none.
pub fn map_element(e: &Element, defaults: &Defaults) -> Mapped {
    let mut m = map_tags(&e.tags, defaults);
    set_path(&mut m.value, "external_ids.osm", json!(e.osm_id()));
    match e.point {
        Some((lat, lon)) => {
            set_path(&mut m.value, "location.lat", json!(lat));
            set_path(&mut m.value, "location.lon", json!(lon));
        }
        None => m.notes.push(format!(
            "{} has no position in this file (for ways, ask Overpass for `out center`)",
            e.osm_id()
        )),
    }
    m
}

/// Maps OSM tags to a partial listing (see the table in `docs/LISTING.md`).
pub fn map_tags(tags: &BTreeMap<String, String>, defaults: &Defaults) -> Mapped {
    let mut v = Value::Object(Map::new());
    let mut unmapped = Vec::new();
    let mut notes = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    let get = |k: &str| tags.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let take = |k: &str, used: &mut std::collections::BTreeSet<String>| {
        used.insert(k.to_string());
        get(k)
    };
    let odd = |k: &str, val: &str, why: &str| format!("{k}={val} ({why})");

    // What it is.
    if let Some(c) = category_of(tags) {
        set_path(&mut v, "category", json!(c));
        for k in ["amenity", "office", "leisure", "tourism"] {
            used.insert(k.to_string());
        }
    }
    if let Some(name) = take("name", &mut used) {
        set_path(&mut v, "name", json!(name));
    }
    if let Some(d) = take("description", &mut used) {
        set_path(&mut v, "description", json!(d));
    }
    for (k, val) in tags {
        for (prefix, field) in [("name:", "name"), ("description:", "description")] {
            if let Some(lang) = k.strip_prefix(prefix) {
                if is_lang(lang) {
                    used.insert(k.clone());
                    if let Value::Object(o) = &mut v {
                        let t = o
                            .entry("translations")
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .map(|t| t.entry(lang).or_insert_with(|| json!({})));
                        if let Some(Value::Object(entry)) = t {
                            entry.insert(field.into(), json!(val.trim()));
                        }
                    }
                }
            }
        }
    }

    // Where it is.
    let street = take("addr:street", &mut used);
    let number = take("addr:housenumber", &mut used);
    match (street, number) {
        (Some(s), Some(n)) => {
            set_path(&mut v, "location.address.street", json!(format!("{s} {n}")))
        }
        (Some(s), None) => set_path(&mut v, "location.address.street", json!(s)),
        (None, Some(n)) => {
            unmapped.push(odd("addr:housenumber", n, "no addr:street to go with it"))
        }
        (None, None) => {}
    }
    let city = take("addr:city", &mut used)
        .map(str::to_string)
        .or_else(|| defaults.city.clone());
    if let Some(c) = city {
        set_path(&mut v, "location.address.city", json!(c));
    }
    if let Some(p) = take("addr:postcode", &mut used) {
        set_path(&mut v, "location.address.postcode", json!(p));
    }
    let country = match take("addr:country", &mut used) {
        Some(c) if c.len() == 2 => Some(c.to_ascii_uppercase()),
        Some(c) => {
            unmapped.push(odd("addr:country", c, "not an ISO 3166-1 alpha-2 code"));
            defaults.country.clone()
        }
        None => defaults.country.clone(),
    };
    if let Some(c) = &country {
        set_path(&mut v, "location.address.country", json!(c));
    }
    let timezone = defaults.timezone.clone().or_else(|| {
        let c = country.as_deref()?;
        let tz = timezone_of(c)?;
        notes.push(format!("time zone {tz} taken from the country {c}"));
        Some(tz.to_string())
    });
    if let Some(tz) = &timezone {
        set_path(&mut v, "location.timezone", json!(tz));
    }
    if let Some(l) = take("level", &mut used) {
        set_path(&mut v, "location.level", json!(l));
    }

    // Contact.
    for (field, keys) in [
        ("website", ["website", "contact:website", "url"]),
        ("email", ["email", "contact:email", "email"]),
        ("phone", ["phone", "contact:phone", "phone"]),
    ] {
        let Some((key, raw)) = keys.iter().find_map(|k| get(k).map(|val| (*k, val))) else {
            continue;
        };
        for k in keys {
            used.insert(k.to_string());
        }
        // OSM separates several values with ';'; the listing holds one.
        let mut parts = raw.split(';').map(str::trim).filter(|s| !s.is_empty());
        let Some(first) = parts.next() else { continue };
        let rest: Vec<&str> = parts.collect();
        if !rest.is_empty() {
            unmapped.push(odd(key, raw, "the listing keeps only the first value"));
        }
        let mut value = first.to_string();
        if field == "website" && !value.starts_with("http://") && !value.starts_with("https://") {
            notes.push(format!("{key}={first}: written as https://{first}"));
            value = format!("https://{first}");
        }
        set_path(&mut v, &format!("contact.{field}"), json!(value));
    }

    // Hours: kept only when the listing can evaluate them.
    if let Some(h) = take("opening_hours", &mut used) {
        let tz = timezone.as_deref().unwrap_or("UTC");
        match Hours::parse(h, tz) {
            Ok(_) => set_path(&mut v, "opening_hours", json!(h)),
            Err(e) => unmapped.push(odd("opening_hours", h, &format!("left out: {e}"))),
        }
    }

    // Internet.
    if let Some(ia) = take("internet_access", &mut used) {
        match ia {
            "wlan" | "wifi" | "yes" => set_path(&mut v, "internet.wifi", json!(true)),
            "wired" => set_path(&mut v, "internet.wired", json!(true)),
            "no" => {
                set_path(&mut v, "internet.wifi", json!(false));
                set_path(&mut v, "internet.wired", json!(false));
            }
            other => unmapped.push(odd(
                "internet_access",
                other,
                "expected wlan, wired, yes or no",
            )),
        }
    }

    // Accessibility.
    if let Some(w) = take("wheelchair", &mut used) {
        match w {
            "yes" | "designated" => set_path(&mut v, "accessibility.wheelchair", json!("yes")),
            "limited" => set_path(&mut v, "accessibility.wheelchair", json!("limited")),
            "no" => set_path(&mut v, "accessibility.wheelchair", json!("no")),
            other => unmapped.push(odd(
                "wheelchair",
                other,
                "expected yes, limited or no; left unknown",
            )),
        }
    }
    if let Some(d) = take("wheelchair:description", &mut used) {
        set_path(&mut v, "accessibility.notes", json!(d));
    }
    for (key, path) in [
        ("toilets:wheelchair", "accessibility.toilets_wheelchair"),
        ("hearing_loop", "accessibility.hearing_loop"),
        ("audio_loop", "accessibility.hearing_loop"),
        ("elevator", "accessibility.elevator.present"),
        ("changing_table", "accessibility.restroom.changing_table"),
        ("unisex", "accessibility.restroom.all_gender"),
        ("tactile_paving", "accessibility.tactile_signage"),
    ] {
        if let Some(val) = take(key, &mut used) {
            match yes_no(val) {
                Some(b) => set_path(&mut v, path, json!(b)),
                None => unmapped.push(odd(key, val, "expected yes or no")),
            }
        }
    }

    // House rules.
    if let Some(d) = take("dog", &mut used) {
        match d {
            "yes" | "no" | "leashed" => set_path(&mut v, "policies.dogs", json!(d)),
            other => unmapped.push(odd("dog", other, "expected yes, leashed or no")),
        }
    }
    if let Some(s) = take("smoking", &mut used) {
        match s {
            "no" | "outside" | "separated" | "isolated" | "yes" => {
                set_path(&mut v, "policies.smoking", json!(s))
            }
            other => unmapped.push(odd(
                "smoking",
                other,
                "expected no, outside, separated, isolated or yes",
            )),
        }
    }

    // Amenities OSM has keys for; a "no" states an absence the listing's amenity set cannot hold.
    let mut amenities = Vec::new();
    for (key, amenity) in OSM_AMENITIES {
        if let Some(val) = take(key, &mut used) {
            match yes_no(val) {
                Some(true) => amenities.push(json!(amenity.as_str())),
                Some(false) => {}
                None => unmapped.push(odd(key, val, "expected yes or no")),
            }
        }
    }
    if !amenities.is_empty() {
        // Keep the vocabulary's order, the one the listing writes.
        amenities.sort_by_key(|a| {
            Amenity::ALL
                .iter()
                .position(|x| Some(x.as_str()) == a.as_str())
        });
        set_path(&mut v, "amenities", Value::Array(amenities));
    }

    // Seats.
    if let Some(c) = take("capacity", &mut used) {
        match c.parse::<u32>() {
            Ok(n) if n > 0 => set_path(
                &mut v,
                "seat_pools",
                json!([{"id": "desks", "kind": "hot_desk", "capacity": n, "access": "walk_in"}]),
            ),
            _ => unmapped.push(odd("capacity", c, "not a positive whole number")),
        }
    }

    // Ids and dates.
    if let Some(q) = take("wikidata", &mut used) {
        set_path(&mut v, "external_ids.wikidata", json!(q));
    }
    for (k, val) in tags {
        let field = if k == "check_date" {
            Some(None)
        } else {
            k.strip_prefix("check_date:").map(Some)
        };
        let Some(field) = field else { continue };
        used.insert(k.clone());
        let val = val.trim();
        if chrono::NaiveDate::parse_from_str(val, "%Y-%m-%d").is_err() {
            unmapped.push(odd(k, val, "not a date written YYYY-MM-DD"));
            continue;
        }
        match field.map(osm_field_to_listing) {
            None => set_path(&mut v, "provenance.check_date", json!(val)),
            Some(Some(f)) => set_path(&mut v, &format!("provenance.by_field.{f}"), json!(val)),
            Some(None) => unmapped.push(odd(k, val, "no listing field matches it")),
        }
    }

    for (k, val) in tags {
        if used.contains(k) || BOOKKEEPING.contains(&k.as_str()) {
            continue;
        }
        unmapped.push(format!("{k}={val}"));
    }
    Mapped {
        value: v,
        unmapped,
        notes,
    }
}

/// OSM keys whose `yes` means an amenity of the listing's vocabulary.
const OSM_AMENITIES: &[(&str, Amenity)] = &[
    ("air_conditioning", Amenity::AirConditioning),
    ("outdoor_seating", Amenity::OutdoorSpace),
    ("shower", Amenity::Showers),
    ("bicycle_parking", Amenity::BikeParking),
    ("parking", Amenity::CarParking),
    ("capacity:charging", Amenity::EvCharging),
    ("meeting_room", Amenity::MeetingRoom),
    ("lockers", Amenity::Lockers),
    ("printer", Amenity::Printer),
    ("kitchen", Amenity::Kitchen),
    ("drink:coffee", Amenity::Coffee),
];

/// `check_date:KEY`: the listing field the OSM key maps to.
fn osm_field_to_listing(key: &str) -> Option<&'static str> {
    Some(match key {
        "opening_hours" => "opening_hours",
        "wheelchair" | "toilets:wheelchair" => "accessibility",
        "internet_access" => "internet",
        "website" | "phone" | "email" => "contact",
        "capacity" => "seat_pools",
        "name" => "name",
        _ => return None,
    })
}

fn listing_field_to_osm(field: &str) -> Option<&'static str> {
    Some(match field {
        "opening_hours" => "opening_hours",
        "accessibility" => "wheelchair",
        "internet" => "internet_access",
        "contact" => "website",
        "seat_pools" => "capacity",
        "name" => "name",
        _ => return None,
    })
}

fn yes_no(v: &str) -> Option<bool> {
    match v {
        "yes" | "designated" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn is_lang(tag: &str) -> bool {
    let mut parts = tag.split('-');
    parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The IANA time zone of a country that has one, or whose people nearly all live in one (Portugal's
/// mainland, Spain's peninsula); `None` for countries with several, where the coordinator must say which
/// with `--timezone`. A zone taken from here is always noted, since islands may differ.
pub fn timezone_of(country: &str) -> Option<&'static str> {
    Some(match country {
        "AT" => "Europe/Vienna",
        "BE" => "Europe/Brussels",
        "BG" => "Europe/Sofia",
        "CH" => "Europe/Zurich",
        "CY" => "Europe/Nicosia",
        "CZ" => "Europe/Prague",
        "DE" => "Europe/Berlin",
        "DK" => "Europe/Copenhagen",
        "EE" => "Europe/Tallinn",
        "FI" => "Europe/Helsinki",
        "FR" => "Europe/Paris",
        "GB" => "Europe/London",
        "GR" => "Europe/Athens",
        "HR" => "Europe/Zagreb",
        "HU" => "Europe/Budapest",
        "IE" => "Europe/Dublin",
        "IS" => "Atlantic/Reykjavik",
        "IT" => "Europe/Rome",
        "LT" => "Europe/Vilnius",
        "LU" => "Europe/Luxembourg",
        "LV" => "Europe/Riga",
        "MT" => "Europe/Malta",
        "NL" => "Europe/Amsterdam",
        "NO" => "Europe/Oslo",
        "PL" => "Europe/Warsaw",
        "PT" => "Europe/Lisbon",
        "ES" => "Europe/Madrid",
        "RO" => "Europe/Bucharest",
        "RS" => "Europe/Belgrade",
        "SE" => "Europe/Stockholm",
        "SI" => "Europe/Ljubljana",
        "SK" => "Europe/Bratislava",
        "UA" => "Europe/Kyiv",
        "TR" => "Europe/Istanbul",
        "IL" => "Asia/Jerusalem",
        "IN" => "Asia/Kolkata",
        "JP" => "Asia/Tokyo",
        "KR" => "Asia/Seoul",
        "SG" => "Asia/Singapore",
        "TH" => "Asia/Bangkok",
        "VN" => "Asia/Ho_Chi_Minh",
        "PH" => "Asia/Manila",
        "ZA" => "Africa/Johannesburg",
        "KE" => "Africa/Nairobi",
        "NG" => "Africa/Lagos",
        "GH" => "Africa/Accra",
        "EG" => "Africa/Cairo",
        "MA" => "Africa/Casablanca",
        "NZ" => "Pacific/Auckland",
        "CO" => "America/Bogota",
        "PE" => "America/Lima",
        "AR" => "America/Argentina/Buenos_Aires",
        "UY" => "America/Montevideo",
        "CR" => "America/Costa_Rica",
        _ => return None,
    })
}

/// A listing's facts as OSM tags (see the table in `docs/LISTING.md`): what an alliance can contribute
/// back to OpenStreetMap once its data is verified.
pub fn tags_of(l: &Listing) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_string(), v);
    };
    match l.category.as_str() {
        "coworking_space" => {
            put("amenity", "coworking_space".into());
            put("office", "coworking".into());
        }
        "cafe_workspace" => put("amenity", "cafe".into()),
        "library" => put("amenity", "library".into()),
        "community_space" => put("amenity", "community_centre".into()),
        "university_space" => put("amenity", "university".into()),
        "makerspace" => put("leisure", "hackerspace".into()),
        "hotel_workspace" => put("tourism", "hotel".into()),
        _ => {}
    }
    put("name", l.name.clone());
    if !l.description.is_empty() {
        put("description", l.description.clone());
    }
    for (lang, tr) in &l.translations {
        if let Some(n) = &tr.name {
            put(&format!("name:{lang}"), n.clone());
        }
        if let Some(d) = &tr.description {
            put(&format!("description:{lang}"), d.clone());
        }
    }
    let a = &l.location.address;
    if let Some(s) = &a.street {
        match split_housenumber(s) {
            Some((street, number)) => {
                put("addr:street", street.to_string());
                put("addr:housenumber", number.to_string());
            }
            None => put("addr:street", s.clone()),
        }
    }
    put("addr:city", a.city.clone());
    if let Some(p) = &a.postcode {
        put("addr:postcode", p.clone());
    }
    put("addr:country", a.country.clone());
    if let Some(level) = &l.location.level {
        put("level", level.clone());
    }
    if let Some(w) = &l.contact.website {
        put("website", w.clone());
    }
    if let Some(e) = &l.contact.email {
        put("email", e.clone());
    }
    if let Some(p) = &l.contact.phone {
        put("phone", p.clone());
    }
    if let Some(h) = &l.opening_hours {
        put("opening_hours", h.clone());
    }
    let i = &l.internet;
    match (i.wifi, i.wired) {
        (Some(true), _) => put("internet_access", "wlan".into()),
        (_, Some(true)) => put("internet_access", "wired".into()),
        (Some(false), Some(false)) => put("internet_access", "no".into()),
        _ => {}
    }
    let acc = &l.accessibility;
    if let Some(w) = acc.wheelchair {
        put("wheelchair", w.to_string());
    }
    if let Some(n) = &acc.notes {
        put("wheelchair:description", n.clone());
    }
    let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
    if let Some(b) = acc.toilets_wheelchair {
        put("toilets:wheelchair", yn(b));
    }
    if let Some(b) = acc.hearing_loop {
        put("hearing_loop", yn(b));
    }
    if let Some(b) = acc.elevator.as_ref().and_then(|e| e.present) {
        put("elevator", yn(b));
    }
    if let Some(r) = &acc.restroom {
        if let Some(b) = r.changing_table {
            put("changing_table", yn(b));
        }
        if let Some(b) = r.all_gender {
            put("unisex", yn(b));
        }
    }
    if let Some(b) = acc.tactile_signage {
        put("tactile_paving", yn(b));
    }
    if let Some(d) = l.policies.dogs {
        put("dog", d.to_string());
    }
    if let Some(s) = l.policies.smoking {
        put("smoking", s.to_string());
    }
    for (key, amenity) in OSM_AMENITIES {
        if l.amenities.contains(*amenity) {
            put(key, "yes".into());
        }
    }
    let desks: u64 = l
        .seat_pools
        .iter()
        .filter(|p| matches!(p.kind, PoolKind::HotDesk | PoolKind::DedicatedDesk))
        .map(|p| u64::from(p.capacity))
        .sum();
    if desks > 0 {
        put("capacity", desks.to_string());
    }
    if let Some(q) = &l.external_ids.wikidata {
        put("wikidata", q.clone());
    }
    if let Some(d) = l.provenance.check_date {
        put("check_date", d.to_string());
    }
    for (field, d) in &l.provenance.by_field {
        if let Some(key) = listing_field_to_osm(field) {
            put(&format!("check_date:{key}"), d.to_string());
        }
    }
    t
}

/// `"Rua da Fábrica 12"` → `("Rua da Fábrica", "12")`: a trailing token with a digit is read as the
/// house number, as most of Europe writes addresses. `None` when there is no such token.
fn split_housenumber(street: &str) -> Option<(&str, &str)> {
    let (head, tail) = street.trim().rsplit_once(' ')?;
    let starts_with_digit = tail.chars().next().is_some_and(|c| c.is_ascii_digit());
    (starts_with_digit && !head.trim().is_empty()).then(|| (head.trim(), tail))
}

/// The directory as an OSM XML document (`<osm version="0.6">`): one `<node>` per space at the listing's
/// point, with the tags of [`tags_of`]. A listing that names an OSM node keeps that node's id, so
/// conflation tools see which object it describes; every other space gets a negative id (a new object in
/// JOSM's convention). Nodes carry no `version`: this is a file to review and merge, not an upload.
pub fn xml(listings: &[Listing]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<osm version=\"0.6\" generator=\"deskmesh\" upload=\"never\">\n",
    );
    let mut next_new = -1i64;
    for l in listings {
        let id = l
            .external_ids
            .osm
            .as_deref()
            .and_then(|o| o.strip_prefix("node/"))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| {
                let id = next_new;
                next_new -= 1;
                id
            });
        out.push_str(&format!(
            "  <node id=\"{id}\" lat=\"{:.7}\" lon=\"{:.7}\">\n",
            l.location.lat, l.location.lon
        ));
        for (k, v) in tags_of(l) {
            out.push_str(&format!(
                "    <tag k=\"{}\" v=\"{}\"/>\n",
                escape(&k),
                escape(&v)
            ));
        }
        out.push_str("  </node>\n");
    }
    out.push_str("</osm>\n");
    out
}

/// XML attribute escaping, including line breaks (a description may have paragraphs).
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            '\t' => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    o
}
