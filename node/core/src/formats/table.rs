//! CSV both ways: one row per space, flat columns.
//!
//! The first 21 columns are the ones the coworking community's metadata sheets use (`id`, `name`, ...,
//! `seat_capacity`); the rest carry every other fact of the listing, so `import` reads back exactly what
//! `export --format csv` wrote. Lists are written in one cell each, items separated by `;`:
//! `offers` as `day_pass 18 EUR walk_in; hot_desk_month 190 EUR request`, `seat_pools` as
//! `hot-desks hot_desk 40 walk_in accessible=4; booths phone_booth 4 walk_in`, `amenities` as
//! `coffee;printer:extra`, `checked_by_field` as `internet=2025-02-11`. Translations get a column per
//! language, `name:pt` and `description:pt`, as OSM names them. An empty cell is unknown.
//!
//! `day_pass_price`, `day_pass_currency` and `seat_capacity` are summaries for spreadsheets: when a sheet
//! made by hand has them but no `offers` or `seat_pools`, they become one walk-in day pass and one
//! hot-desk pool; otherwise they are ignored. A column deskmesh does not know is reported, never dropped
//! in silence.

use std::collections::BTreeSet;

use deskmesh_crdt_model::listing::Listing;
use serde_json::{json, Map, Value};

use super::{set_path, Entry, FormatError};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Whole,
    Bool,
}

/// Columns that hold one field each: the column, the field's JSON pointer in the listing, its kind.
const SIMPLE: &[(&str, &str, Kind)] = &[
    ("id", "/id", Kind::Text),
    ("name", "/name", Kind::Text),
    ("category", "/category", Kind::Text),
    ("lat", "/location/lat", Kind::Number),
    ("lon", "/location/lon", Kind::Number),
    ("street", "/location/address/street", Kind::Text),
    ("city", "/location/address/city", Kind::Text),
    ("postcode", "/location/address/postcode", Kind::Text),
    ("country", "/location/address/country", Kind::Text),
    ("timezone", "/location/timezone", Kind::Text),
    ("website", "/contact/website", Kind::Text),
    ("email", "/contact/email", Kind::Text),
    ("phone", "/contact/phone", Kind::Text),
    ("opening_hours", "/opening_hours", Kind::Text),
    ("member_access_hours", "/member_access_hours", Kind::Text),
    ("wifi_down_mbps", "/internet/down_mbps", Kind::Number),
    ("description", "/description", Kind::Text),
    ("level", "/location/level", Kind::Text),
    ("coworking_visa", "/reciprocity/coworking_visa", Kind::Bool),
    (
        "free_days_per_visit",
        "/reciprocity/free_days_per_visit",
        Kind::Whole,
    ),
    ("wifi", "/internet/wifi", Kind::Bool),
    ("wired", "/internet/wired", Kind::Bool),
    ("wifi_up_mbps", "/internet/up_mbps", Kind::Number),
    ("internet_measured_on", "/internet/measured_on", Kind::Text),
    ("guest_access", "/internet/guest_access", Kind::Bool),
    ("power", "/power", Kind::Text),
    ("noise", "/noise", Kind::Text),
    (
        "accessibility.entrance.step_free",
        "/accessibility/entrance/step_free",
        Kind::Bool,
    ),
    (
        "accessibility.entrance.step_height_cm",
        "/accessibility/entrance/step_height_cm",
        Kind::Whole,
    ),
    (
        "accessibility.entrance.ramp",
        "/accessibility/entrance/ramp",
        Kind::Text,
    ),
    (
        "accessibility.entrance.door_width_cm",
        "/accessibility/entrance/door_width_cm",
        Kind::Whole,
    ),
    (
        "accessibility.entrance.automatic_door",
        "/accessibility/entrance/automatic_door",
        Kind::Bool,
    ),
    (
        "accessibility.elevator.present",
        "/accessibility/elevator/present",
        Kind::Bool,
    ),
    (
        "accessibility.elevator.cabin_width_cm",
        "/accessibility/elevator/cabin_width_cm",
        Kind::Whole,
    ),
    (
        "accessibility.elevator.cabin_depth_cm",
        "/accessibility/elevator/cabin_depth_cm",
        Kind::Whole,
    ),
    (
        "accessibility.elevator.working",
        "/accessibility/elevator/working",
        Kind::Bool,
    ),
    (
        "accessibility.toilets_wheelchair",
        "/accessibility/toilets_wheelchair",
        Kind::Bool,
    ),
    (
        "accessibility.restroom.grab_rails",
        "/accessibility/restroom/grab_rails",
        Kind::Bool,
    ),
    (
        "accessibility.restroom.all_gender",
        "/accessibility/restroom/all_gender",
        Kind::Bool,
    ),
    (
        "accessibility.restroom.changing_table",
        "/accessibility/restroom/changing_table",
        Kind::Bool,
    ),
    (
        "accessibility.hearing_loop",
        "/accessibility/hearing_loop",
        Kind::Bool,
    ),
    (
        "accessibility.quiet_room",
        "/accessibility/quiet_room",
        Kind::Bool,
    ),
    (
        "accessibility.well_lit",
        "/accessibility/well_lit",
        Kind::Bool,
    ),
    (
        "accessibility.service_animals",
        "/accessibility/service_animals",
        Kind::Bool,
    ),
    (
        "accessibility.accessible_desks.count",
        "/accessibility/accessible_desks/count",
        Kind::Whole,
    ),
    (
        "accessibility.accessible_desks.height_adjustable",
        "/accessibility/accessible_desks/height_adjustable",
        Kind::Bool,
    ),
    (
        "accessibility.accessible_parking",
        "/accessibility/accessible_parking",
        Kind::Bool,
    ),
    (
        "accessibility.tactile_signage",
        "/accessibility/tactile_signage",
        Kind::Bool,
    ),
    ("accessibility.notes", "/accessibility/notes", Kind::Text),
    ("dogs", "/policies/dogs", Kind::Text),
    ("children_welcome", "/policies/children_welcome", Kind::Bool),
    ("smoking", "/policies/smoking", Kind::Text),
    ("osm_id", "/external_ids/osm", Kind::Text),
    ("wikidata", "/external_ids/wikidata", Kind::Text),
    ("check_date", "/provenance/check_date", Kind::Text),
];

/// The community-sheet columns, in their order; the rest follow.
const FIRST: &[&str] = &[
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
];

/// What the alliance says of a listing, which `export` adds last (see [`write_with_notes`]) and reading
/// skips: a kept-listed revocation's reason, the verified facts and the facts changed since verified.
pub const NOTE_COLUMNS: [&str; 3] = ["revoked", "verified", "changed_since_verified"];

/// Columns with their own encoding (`seats_state` and `seats_now` are live state `export` adds, which
/// reading skips; so are the [`NOTE_COLUMNS`]).
const SPECIAL: &[&str] = &[
    "revoked",
    "verified",
    "changed_since_verified",
    "offers",
    "seat_pools",
    "checked_by_field",
    "amenities",
    "wheelchair",
    "day_pass_price",
    "day_pass_currency",
    "seat_capacity",
    "seats_state",
    "seats_now",
];

/// Every fixed column, in the order they are written.
fn columns() -> Vec<&'static str> {
    let mut cols: Vec<&str> = FIRST.to_vec();
    for (c, _, _) in SIMPLE {
        if !cols.contains(c) {
            cols.push(c);
        }
    }
    cols.extend(["offers", "seat_pools", "checked_by_field"]);
    cols
}

/// The directory as CSV.
pub fn write(listings: &[Listing], seats: &crate::export::SeatMap) -> anyhow::Result<String> {
    write_with_notes(listings, seats, &[])
}

/// The directory as CSV, with the [`NOTE_COLUMNS`] last when `notes` (one per listing, in order) is not
/// empty.
pub fn write_with_notes(
    listings: &[Listing],
    seats: &crate::export::SeatMap,
    notes: &[[String; 3]],
) -> anyhow::Result<String> {
    let langs: BTreeSet<&str> = listings
        .iter()
        .flat_map(|l| l.translations.keys().map(String::as_str))
        .collect();
    let mut header: Vec<String> = columns().into_iter().map(String::from).collect();
    for lang in &langs {
        header.push(format!("name:{lang}"));
        header.push(format!("description:{lang}"));
    }
    if !notes.is_empty() {
        header.extend(NOTE_COLUMNS.iter().map(|c| c.to_string()));
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for (i, l) in listings.iter().enumerate() {
        let v = l.to_value();
        let note = |k: usize| notes.get(i).map(|n| n[k].clone()).unwrap_or_default();
        let row: Vec<String> = header
            .iter()
            .map(|c| match c.as_str() {
                "revoked" if !notes.is_empty() => note(0),
                "verified" if !notes.is_empty() => note(1),
                "changed_since_verified" if !notes.is_empty() => note(2),
                "seats_state" => seats
                    .get(&l.id)
                    .map(|n| n.state.to_string())
                    .unwrap_or_default(),
                "seats_now" => seats.get(&l.id).map(|n| n.text()).unwrap_or_default(),
                _ => cell(l, &v, c),
            })
            .collect();
        w.write_record(&row)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write CSV: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

fn cell(l: &Listing, v: &Value, column: &str) -> String {
    if let Some((_, pointer, kind)) = SIMPLE.iter().find(|(c, _, _)| *c == column) {
        return match (v.pointer(pointer), kind) {
            (None | Some(Value::Null), _) => String::new(),
            (Some(Value::String(s)), _) => s.clone(),
            (Some(Value::Number(n)), Kind::Number) => n.as_f64().map_or_else(String::new, |f| {
                if *pointer == "/location/lat" || *pointer == "/location/lon" {
                    format!("{f:.6}")
                } else {
                    f.to_string()
                }
            }),
            (Some(other), _) => other.to_string(),
        };
    }
    match column {
        "day_pass_price" => l
            .day_pass()
            .map(|o| o.price.to_string())
            .unwrap_or_default(),
        "day_pass_currency" => l.day_pass().map(|o| o.currency.clone()).unwrap_or_default(),
        "seat_capacity" => l
            .seat_pools
            .iter()
            .map(|p| u64::from(p.capacity))
            .sum::<u64>()
            .to_string(),
        "amenities" => l
            .amenities
            .iter()
            .map(|(a, d)| match d.fee {
                Some(fee) => format!("{a}:{fee}"),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";"),
        "wheelchair" => l
            .accessibility
            .wheelchair
            .map_or_else(|| "unknown".into(), |w| w.to_string()),
        "offers" => l
            .offers
            .iter()
            .map(|o| format!("{} {} {} {}", o.product, o.price, o.currency, o.booking))
            .collect::<Vec<_>>()
            .join("; "),
        "seat_pools" => l
            .seat_pools
            .iter()
            .map(|p| {
                let mut s = format!("{} {} {} {}", p.id, p.kind, p.capacity, p.access);
                if let Some(a) = p.accessible_capacity {
                    s.push_str(&format!(" accessible={a}"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; "),
        "checked_by_field" => l
            .provenance
            .by_field
            .iter()
            .map(|(f, d)| format!("{f}={d}"))
            .collect::<Vec<_>>()
            .join(";"),
        other => {
            let tr = |lang: &str| l.translations.get(lang);
            if let Some(lang) = other.strip_prefix("name:") {
                return tr(lang).and_then(|t| t.name.clone()).unwrap_or_default();
            }
            if let Some(lang) = other.strip_prefix("description:") {
                return tr(lang)
                    .and_then(|t| t.description.clone())
                    .unwrap_or_default();
            }
            String::new()
        }
    }
}

/// Reads rows back into partial listings (validated by the caller).
pub fn read(text: &str) -> Result<Vec<Entry>, FormatError> {
    let syntax = |e: ::csv::Error| FormatError::Syntax {
        format: "CSV",
        message: e.to_string(),
    };
    let mut r = ::csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(syntax)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if !header.iter().any(|h| h == "name") {
        return Err(FormatError::Shape(format!(
            "the first line ({}) has no `name` column; is this a CSV of listings?",
            header.join(",")
        )));
    }
    let has = |c: &str| header.iter().any(|h| h == c);
    let (has_offers, has_pools) = (has("offers"), has("seat_pools"));
    let mut out = Vec::new();
    for (i, record) in r.records().enumerate() {
        let record = record.map_err(syntax)?;
        let row = i + 2; // the header is line 1
        let mut v = Value::Object(Map::new());
        let mut unmapped = Vec::new();
        let get = |c: &str| {
            header
                .iter()
                .position(|h| h == c)
                .and_then(|p| record.get(p))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let bad = |c: &str, val: &str, why: &str| {
            FormatError::Shape(format!("line {row}, column {c}: {val:?} {why}"))
        };
        for (c, cell) in header.iter().zip(record.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            if let Some((_, pointer, kind)) = SIMPLE.iter().find(|(col, _, _)| col == c) {
                let value = match kind {
                    Kind::Text => json!(cell),
                    Kind::Number => {
                        json!(cell
                            .parse::<f64>()
                            .map_err(|_| bad(c, cell, "is not a number"))?)
                    }
                    Kind::Whole => json!(cell.parse::<u64>().map_err(|_| bad(
                        c,
                        cell,
                        "is not a whole number"
                    ))?),
                    Kind::Bool => match cell.to_ascii_lowercase().as_str() {
                        "true" | "yes" => json!(true),
                        "false" | "no" => json!(false),
                        _ => return Err(bad(c, cell, "is not true or false")),
                    },
                };
                set_path(&mut v, &pointer[1..].replace('/', "."), value);
                continue;
            }
            if let Some(lang) = c.strip_prefix("name:") {
                set_path(&mut v, &format!("translations.{lang}.name"), json!(cell));
                continue;
            }
            if let Some(lang) = c.strip_prefix("description:") {
                set_path(
                    &mut v,
                    &format!("translations.{lang}.description"),
                    json!(cell),
                );
                continue;
            }
            if !SPECIAL.contains(&c.as_str()) {
                unmapped.push(format!("{c}={cell}"));
            }
        }
        if let Some(a) = get("amenities") {
            let items: Vec<Value> = a
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| match item.split_once(':') {
                    Some((name, fee)) => json!({ name: {"fee": fee} }),
                    None => json!(item),
                })
                .collect();
            set_path(&mut v, "amenities", Value::Array(items));
        }
        match get("wheelchair") {
            None | Some("unknown") => {}
            Some(w) => set_path(&mut v, "accessibility.wheelchair", json!(w)),
        }
        if let Some(o) = get("offers") {
            let mut offers = Vec::new();
            for item in o.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let t: Vec<&str> = item.split_whitespace().collect();
                let [product, price, currency, booking] = t[..] else {
                    return Err(bad(
                        "offers",
                        item,
                        "is not `product price currency booking`",
                    ));
                };
                let price: f64 = price
                    .parse()
                    .map_err(|_| bad("offers", item, "has a price that is not a number"))?;
                offers.push(json!({"product": product, "price": price, "currency": currency, "booking": booking}));
            }
            set_path(&mut v, "offers", Value::Array(offers));
        } else if !has_offers {
            if let (Some(price), Some(currency)) = (get("day_pass_price"), get("day_pass_currency"))
            {
                let price: f64 = price
                    .parse()
                    .map_err(|_| bad("day_pass_price", price, "is not a number"))?;
                set_path(
                    &mut v,
                    "offers",
                    json!([{"product": "day_pass", "price": price, "currency": currency, "booking": "walk_in"}]),
                );
            }
        }
        if let Some(p) = get("seat_pools") {
            let mut pools = Vec::new();
            for item in p.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let t: Vec<&str> = item.split_whitespace().collect();
                let (id, kind, capacity, access, extra) = match t[..] {
                    [id, kind, capacity, access] => (id, kind, capacity, access, None),
                    [id, kind, capacity, access, extra] => {
                        (id, kind, capacity, access, Some(extra))
                    }
                    _ => {
                        return Err(bad(
                            "seat_pools",
                            item,
                            "is not `id kind capacity access [accessible=N]`",
                        ))
                    }
                };
                let capacity: u32 = capacity.parse().map_err(|_| {
                    bad(
                        "seat_pools",
                        item,
                        "has a capacity that is not a whole number",
                    )
                })?;
                let mut pool =
                    json!({"id": id, "kind": kind, "capacity": capacity, "access": access});
                if let Some(extra) = extra {
                    let n: u32 = extra
                        .strip_prefix("accessible=")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| {
                            bad(
                                "seat_pools",
                                item,
                                "ends in something other than accessible=N",
                            )
                        })?;
                    set_path(&mut pool, "accessible_capacity", json!(n));
                }
                pools.push(pool);
            }
            set_path(&mut v, "seat_pools", Value::Array(pools));
        } else if !has_pools {
            if let Some(c) = get("seat_capacity") {
                let n: u32 = c
                    .parse()
                    .map_err(|_| bad("seat_capacity", c, "is not a whole number"))?;
                if n > 0 {
                    set_path(
                        &mut v,
                        "seat_pools",
                        json!([{"id": "desks", "kind": "hot_desk", "capacity": n, "access": "walk_in"}]),
                    );
                }
            }
        }
        if let Some(b) = get("checked_by_field") {
            for item in b.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((field, date)) = item.split_once('=') else {
                    return Err(bad("checked_by_field", item, "is not `field=YYYY-MM-DD`"));
                };
                set_path(
                    &mut v,
                    &format!("provenance.by_field.{}", field.trim()),
                    json!(date.trim()),
                );
            }
        }
        let key = v
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", i + 1), str::to_string);
        out.push(Entry {
            key,
            value: v,
            unmapped,
            notes: Vec::new(),
        });
    }
    Ok(out)
}
