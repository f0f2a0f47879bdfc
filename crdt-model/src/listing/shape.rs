//! Every shape problem of a listing file at once: missing required fields, unknown fields, wrong types and
//! values outside a vocabulary, each with the path of the field (`location.timezone: is required`).
//!
//! Serde stops at the first problem, so a person fixing a file by hand would meet them one run at a time.
//! The file is therefore first read as plain JSON values (TOML is turned into the same values), walked
//! against [`LISTING`], a description of the listing's shape, and every problem is collected; only a file
//! with none is handed to serde and then to the rules of `validate`, which report all theirs too. Tests
//! keep this description and the serde types in step: every generated listing is read back through it
//! (`any_valid_listing_round_trips_through_json`), and so is the template with every field filled in.

use std::fmt::Write as _;
use std::str::FromStr;

use deskmesh_keys::SpaceId;
use serde_json::Value;

use super::vocab::{
    Amenity, Booking, Category, Dogs, Fee, Noise, PoolAccess, PoolKind, Power, Product, Ramp,
    Smoking, Wheelchair,
};
use super::FieldError;

/// What a field holds.
pub(crate) enum Kind {
    Text,
    Number,
    /// A whole number from 0 to this.
    Whole(u64),
    Bool,
    Date,
    SpaceId,
    /// One value of a vocabulary: what it is called and its values.
    Vocab(&'static str, &'static [&'static str]),
    Object(&'static [Field]),
    List(&'static Kind),
    /// Any keys, each holding this.
    Map(&'static Kind),
    /// The amenities list: names, or one-key objects `{name: {fee: ...}}`, or a map of them.
    Amenities,
}

/// One field of an object.
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) kind: Kind,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
    }
}

const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

static TRANSLATION: [Field; 2] = [opt("name", Kind::Text), opt("description", Kind::Text)];
static ADDRESS: [Field; 4] = [
    opt("street", Kind::Text),
    req("city", Kind::Text),
    opt("postcode", Kind::Text),
    req("country", Kind::Text),
];
static LOCATION: [Field; 5] = [
    req("lon", Kind::Number),
    req("lat", Kind::Number),
    req("address", Kind::Object(&ADDRESS)),
    opt("level", Kind::Text),
    req("timezone", Kind::Text),
];
static CONTACT: [Field; 3] = [
    opt("website", Kind::Text),
    opt("email", Kind::Text),
    opt("phone", Kind::Text),
];
static OFFER: [Field; 4] = [
    req("product", Kind::Vocab(Product::WHAT, Product::NAMES)),
    req("price", Kind::Number),
    req("currency", Kind::Text),
    req("booking", Kind::Vocab(Booking::WHAT, Booking::NAMES)),
];
static OFFER_KIND: Kind = Kind::Object(&OFFER);
static RECIPROCITY: [Field; 2] = [
    opt("coworking_visa", Kind::Bool),
    opt("free_days_per_visit", Kind::Whole(U16)),
];
static INTERNET: [Field; 6] = [
    opt("wifi", Kind::Bool),
    opt("wired", Kind::Bool),
    opt("down_mbps", Kind::Number),
    opt("up_mbps", Kind::Number),
    opt("measured_on", Kind::Date),
    opt("guest_access", Kind::Bool),
];
static ENTRANCE: [Field; 5] = [
    opt("step_free", Kind::Bool),
    opt("step_height_cm", Kind::Whole(U16)),
    opt("ramp", Kind::Vocab(Ramp::WHAT, Ramp::NAMES)),
    opt("door_width_cm", Kind::Whole(U16)),
    opt("automatic_door", Kind::Bool),
];
static ELEVATOR: [Field; 4] = [
    opt("present", Kind::Bool),
    opt("cabin_width_cm", Kind::Whole(U16)),
    opt("cabin_depth_cm", Kind::Whole(U16)),
    opt("working", Kind::Bool),
];
static RESTROOM: [Field; 3] = [
    opt("grab_rails", Kind::Bool),
    opt("all_gender", Kind::Bool),
    opt("changing_table", Kind::Bool),
];
static DESKS: [Field; 2] = [
    opt("count", Kind::Whole(U32)),
    opt("height_adjustable", Kind::Bool),
];
static ACCESSIBILITY: [Field; 13] = [
    opt(
        "wheelchair",
        Kind::Vocab(Wheelchair::WHAT, Wheelchair::NAMES),
    ),
    opt("entrance", Kind::Object(&ENTRANCE)),
    opt("elevator", Kind::Object(&ELEVATOR)),
    opt("toilets_wheelchair", Kind::Bool),
    opt("restroom", Kind::Object(&RESTROOM)),
    opt("hearing_loop", Kind::Bool),
    opt("quiet_room", Kind::Bool),
    opt("well_lit", Kind::Bool),
    opt("service_animals", Kind::Bool),
    opt("accessible_desks", Kind::Object(&DESKS)),
    opt("accessible_parking", Kind::Bool),
    opt("tactile_signage", Kind::Bool),
    opt("notes", Kind::Text),
];
static POLICIES: [Field; 3] = [
    opt("dogs", Kind::Vocab(Dogs::WHAT, Dogs::NAMES)),
    opt("children_welcome", Kind::Bool),
    opt("smoking", Kind::Vocab(Smoking::WHAT, Smoking::NAMES)),
];
static POOL: [Field; 5] = [
    req("id", Kind::Text),
    req("kind", Kind::Vocab(PoolKind::WHAT, PoolKind::NAMES)),
    req("capacity", Kind::Whole(U32)),
    opt("accessible_capacity", Kind::Whole(U32)),
    req("access", Kind::Vocab(PoolAccess::WHAT, PoolAccess::NAMES)),
];
static POOL_KIND: Kind = Kind::Object(&POOL);
static EXTERNAL: [Field; 2] = [opt("osm", Kind::Text), opt("wikidata", Kind::Text)];
static DATE: Kind = Kind::Date;
static PROVENANCE: [Field; 2] = [
    opt("check_date", Kind::Date),
    opt("by_field", Kind::Map(&DATE)),
];
static TRANSLATION_KIND: Kind = Kind::Object(&TRANSLATION);

/// The whole listing, in the order of its fields.
pub(crate) static LISTING: [Field; 20] = [
    req("id", Kind::SpaceId),
    req("name", Kind::Text),
    opt("description", Kind::Text),
    opt("translations", Kind::Map(&TRANSLATION_KIND)),
    opt("category", Kind::Vocab(Category::WHAT, Category::NAMES)),
    req("location", Kind::Object(&LOCATION)),
    opt("contact", Kind::Object(&CONTACT)),
    opt("opening_hours", Kind::Text),
    opt("member_access_hours", Kind::Text),
    opt("offers", Kind::List(&OFFER_KIND)),
    opt("reciprocity", Kind::Object(&RECIPROCITY)),
    opt("internet", Kind::Object(&INTERNET)),
    opt("power", Kind::Vocab(Power::WHAT, Power::NAMES)),
    opt("noise", Kind::Vocab(Noise::WHAT, Noise::NAMES)),
    opt("amenities", Kind::Amenities),
    opt("accessibility", Kind::Object(&ACCESSIBILITY)),
    opt("policies", Kind::Object(&POLICIES)),
    opt("seat_pools", Kind::List(&POOL_KIND)),
    opt("external_ids", Kind::Object(&EXTERNAL)),
    opt("provenance", Kind::Object(&PROVENANCE)),
];

/// Every shape problem of `value` as a listing, in field order.
pub(crate) fn problems(value: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    object(value, "", &LISTING, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn fail(out: &mut Vec<FieldError>, path: &str, message: impl Into<String>) {
    out.push(FieldError {
        path: if path.is_empty() {
            "listing".into()
        } else {
            path.into()
        },
        message: message.into(),
    });
}

/// What a JSON value is, for "expected a number, found text".
fn found(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table of fields",
    }
}

fn object(v: &Value, path: &str, fields: &[Field], out: &mut Vec<FieldError>) {
    let Value::Object(map) = v else {
        fail(
            out,
            path,
            format!("expected a table of fields, found {}", found(v)),
        );
        return;
    };
    for f in fields {
        let p = join(path, f.name);
        match map.get(f.name) {
            Some(v) => check(v, &p, &f.kind, out),
            None if f.required => fail(out, &p, "is required"),
            None => {}
        }
    }
    for key in map.keys() {
        if !fields.iter().any(|f| f.name == key) {
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            fail(
                out,
                &join(path, key),
                format!("is not a field here; expected one of: {}", names.join(", ")),
            );
        }
    }
}

fn vocab(v: &Value, path: &str, what: &str, names: &[&str], out: &mut Vec<FieldError>) {
    match v {
        Value::String(s) if names.contains(&s.as_str()) => {}
        Value::String(s) => fail(
            out,
            path,
            format!(
                "unknown {what} {s:?}; expected one of: {}",
                names.join(", ")
            ),
        ),
        other => fail(
            out,
            path,
            format!(
                "expected a {what} such as {:?}, found {}",
                names[0],
                found(other)
            ),
        ),
    }
}

fn check(v: &Value, path: &str, kind: &Kind, out: &mut Vec<FieldError>) {
    match kind {
        Kind::Text => {
            if !v.is_string() {
                fail(out, path, format!("expected text, found {}", found(v)));
            }
        }
        Kind::Number => {
            if !v.is_number() {
                fail(out, path, format!("expected a number, found {}", found(v)));
            }
        }
        Kind::Whole(max) => match v.as_u64() {
            Some(n) if n <= *max => {}
            Some(n) => fail(out, path, format!("{n} is over the limit of {max}")),
            None => fail(
                out,
                path,
                format!(
                    "expected a whole number from 0 to {max}, found {}",
                    match v {
                        Value::Number(n) => n.to_string(),
                        other => found(other).to_string(),
                    }
                ),
            ),
        },
        Kind::Bool => {
            if !v.is_boolean() {
                fail(
                    out,
                    path,
                    format!("expected true or false, found {}", found(v)),
                );
            }
        }
        Kind::Date => match v.as_str() {
            Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {}
            Some(s) => fail(out, path, format!("{s:?} is not a date written YYYY-MM-DD")),
            None => fail(
                out,
                path,
                format!("expected a date written YYYY-MM-DD, found {}", found(v)),
            ),
        },
        Kind::SpaceId => {
            match v.as_str() {
                Some(s) => {
                    if let Err(e) = SpaceId::from_str(s) {
                        fail(out, path, format!("{s:?} is not a space id ({e}); `deskmesh space template` writes yours"));
                    }
                }
                None => fail(
                    out,
                    path,
                    format!("expected a space id such as \"sp-...\", found {}", found(v)),
                ),
            }
        }
        Kind::Vocab(what, names) => vocab(v, path, what, names, out),
        Kind::Object(fields) => object(v, path, fields, out),
        Kind::List(item) => match v {
            Value::Array(items) => {
                for (i, it) in items.iter().enumerate() {
                    check(it, &format!("{path}[{i}]"), item, out);
                }
            }
            other => fail(
                out,
                path,
                format!("expected a list, found {}", found(other)),
            ),
        },
        Kind::Map(item) => match v {
            Value::Object(map) => {
                for (k, it) in map {
                    check(it, &join(path, k), item, out);
                }
            }
            other => fail(
                out,
                path,
                format!("expected a table, found {}", found(other)),
            ),
        },
        Kind::Amenities => amenities(v, path, out),
    }
}

static AMENITY_DETAIL: [Field; 1] = [opt("fee", Kind::Vocab(Fee::WHAT, Fee::NAMES))];

fn amenities(v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let mut seen: Vec<String> = Vec::new();
    let mut one = |name: &str, detail: Option<&Value>, p: &str, out: &mut Vec<FieldError>| {
        vocab(
            &Value::String(name.into()),
            p,
            Amenity::WHAT,
            Amenity::NAMES,
            out,
        );
        if seen.iter().any(|s| s == name) {
            fail(out, p, format!("amenity {name:?} is listed twice"));
        }
        seen.push(name.to_string());
        if let Some(d) = detail {
            object(d, &join(p, name), &AMENITY_DETAIL, out);
        }
    };
    match v {
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match it {
                    Value::String(s) => one(s, None, &p, out),
                    Value::Object(m) if m.len() == 1 => {
                        if let Some((k, d)) = m.iter().next() {
                            one(k, Some(d), &p, out);
                        }
                    }
                    other => fail(
                        out,
                        &p,
                        format!("expected an amenity name or a one-key table {{name = {{fee = ...}}}}, found {}", found(other)),
                    ),
                }
            }
        }
        Value::Object(m) => {
            for (k, d) in m {
                one(k, Some(d), path, out);
            }
        }
        other => fail(
            out,
            path,
            format!("expected a list of amenities, found {}", found(other)),
        ),
    }
}

/// TOML values as the JSON values the listing is read from; native dates become `YYYY-MM-DD` text.
pub(crate) fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// "3 problems:" and one indented line per problem; one problem is its own line.
pub(crate) fn list(problems: &[FieldError]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut f = format!("{} problems:", many.len());
            for p in many {
                let _ = write!(f, "\n  {p}");
            }
            f
        }
    }
}
