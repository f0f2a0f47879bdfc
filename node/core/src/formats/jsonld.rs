//! schema.org JSON-LD: an `ItemList` of `LocalBusiness` items, written the way schema.org consumers
//! (search engines, the schema.org validator, JSON-LD processors) read them.
//!
//! - Opening hours: OSM's syntax (`Mo-Fr 08:00-20:00; PH off`) is not schema.org's, so the hours are
//!   evaluated and written as `openingHoursSpecification`, one per group of days with the same hours,
//!   from the regular week of the export date (rules for other seasons are not carried). Public-holiday
//!   rules (`PH`) become `specialOpeningHoursSpecification` entries, one per holiday of the space's
//!   country in the coming year whose hours differ from the regular ones (closed: `opens` and `closes`
//!   both `00:00`, as schema.org says). Member access hours have no schema.org property and are left out.
//! - Offers: `makesOffer` with `price` and `priceCurrency` (ISO 4217), the product as `itemOffered`.
//! - Amenities and known accessibility facts: `amenityFeature` (`LocationFeatureSpecification`); an
//!   unknown fact is left out, a known "no" is written as `false`.
//! - Ids: `sameAs` the OpenStreetMap element and the Wikidata item when the listing names them.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use deskmesh_crdt_model::hours::{DayRow, Hours};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::OpenState;
use serde_json::{json, Map, Value};

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The directory as one JSON-LD document.
pub fn write(listings: &[Listing], now: DateTime<Utc>) -> Value {
    let items: Vec<Value> = listings
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "@type": "ListItem",
                "position": i + 1,
                "item": business(l, now),
            })
        })
        .collect();
    json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "numberOfItems": items.len(),
        "itemListElement": items,
    })
}

/// One space as a `LocalBusiness`.
pub fn business(l: &Listing, now: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("@type", json!("LocalBusiness"));
    put("@id", json!(format!("urn:deskmesh:{}", l.id)));
    put("identifier", json!(l.id.to_string()));
    put("name", json!(l.name));
    let alternates: Vec<Value> = l
        .translations
        .iter()
        .filter_map(|(lang, t)| {
            let n = t.name.as_ref().filter(|n| **n != l.name)?;
            Some(json!({"@value": n, "@language": lang}))
        })
        .collect();
    if !alternates.is_empty() {
        put("alternateName", Value::Array(alternates));
    }
    if !l.description.is_empty() {
        put("description", json!(l.description));
    }
    let a = &l.location.address;
    let mut address = json!({
        "@type": "PostalAddress",
        "addressLocality": a.city,
        "addressCountry": a.country,
    });
    if let Some(s) = &a.street {
        address["streetAddress"] = json!(s);
    }
    if let Some(p) = &a.postcode {
        address["postalCode"] = json!(p);
    }
    put("address", address);
    put(
        "geo",
        json!({"@type": "GeoCoordinates", "latitude": l.location.lat, "longitude": l.location.lon}),
    );
    if let Some(w) = &l.contact.website {
        put("url", json!(w));
    }
    if let Some(e) = &l.contact.email {
        put("email", json!(e));
    }
    if let Some(p) = &l.contact.phone {
        put("telephone", json!(p));
    }
    if let Some(text) = &l.opening_hours {
        if let Ok(regular) = Hours::parse(text, &l.location.timezone) {
            let week = regular.week(now);
            put(
                "openingHoursSpecification",
                Value::Array(weekly(&week.days)),
            );
            if text.contains("PH") {
                let special = holidays(&regular, l, now);
                if !special.is_empty() {
                    put("specialOpeningHoursSpecification", Value::Array(special));
                }
            }
        }
    }
    let offers: Vec<Value> = l
        .offers
        .iter()
        .map(|o| {
            json!({
                "@type": "Offer",
                "name": product_name(o.product.as_str()),
                "price": o.price,
                "priceCurrency": o.currency,
                "itemOffered": {"@type": "Service", "name": product_name(o.product.as_str())},
            })
        })
        .collect();
    if !offers.is_empty() {
        put("makesOffer", Value::Array(offers));
    }
    let features = features(l);
    if !features.is_empty() {
        put("amenityFeature", Value::Array(features));
    }
    let seats: u64 = l.seat_pools.iter().map(|p| u64::from(p.capacity)).sum();
    if seats > 0 {
        put("maximumAttendeeCapacity", json!(seats));
    }
    let mut same_as = Vec::new();
    if let Some(osm) = &l.external_ids.osm {
        same_as.push(json!(format!("https://www.openstreetmap.org/{osm}")));
    }
    if let Some(q) = &l.external_ids.wikidata {
        same_as.push(json!(format!("https://www.wikidata.org/wiki/{q}")));
    }
    if !same_as.is_empty() {
        put("sameAs", Value::Array(same_as));
    }
    Value::Object(m)
}

/// `day_pass` → `Day pass`.
fn product_name(p: &str) -> String {
    let spaced = p.replace('_', " ");
    let mut c = spaced.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => spaced,
    }
}

fn hhmm(minutes: u16) -> String {
    // schema.org writes "open all day" as 00:00 to 23:59.
    let m = minutes.min(23 * 60 + 59);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The open intervals of each day of a week, grouped: days with the same intervals share a
/// specification.
fn weekly(days: &[DayRow]) -> Vec<Value> {
    // Open intervals (start, end minutes) and the days that have exactly them.
    type Group<'a> = (Vec<(u16, u16)>, Vec<&'a str>);
    let mut groups: Vec<Group> = Vec::new();
    for d in days.iter().take(7) {
        let day = DAYS[d.date.weekday().num_days_from_monday() as usize % 7];
        let open: Vec<(u16, u16)> = d
            .intervals
            .iter()
            .filter(|iv| iv.state == OpenState::Open)
            .map(|iv| (iv.start_min, iv.end_min))
            .collect();
        if open.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(o, _)| *o == open) {
            Some((_, names)) => names.push(day),
            None => groups.push((open, vec![day])),
        }
    }
    let mut out = Vec::new();
    for (open, names) in groups {
        for (start, end) in open {
            out.push(json!({
                "@type": "OpeningHoursSpecification",
                "dayOfWeek": names,
                "opens": hhmm(start),
                "closes": hhmm(end),
            }));
        }
    }
    out
}

/// Days of the coming year on which the country's public holidays change the hours.
fn holidays(regular: &Hours, l: &Listing, now: DateTime<Utc>) -> Vec<Value> {
    let with_ph = regular.clone().with_country(&l.location.address.country);
    let mut out = Vec::new();
    let mut at = now;
    for _ in 0..53 {
        let plain = regular.week(at);
        let ph = with_ph.week(at);
        for (p, h) in plain.days.iter().zip(&ph.days) {
            if p.intervals == h.intervals || !in_year(p.date, now) {
                continue;
            }
            let date = h.date.format("%Y-%m-%d").to_string();
            let open: Vec<_> = h
                .intervals
                .iter()
                .filter(|iv| iv.state == OpenState::Open)
                .collect();
            if open.is_empty() {
                out.push(json!({
                    "@type": "OpeningHoursSpecification",
                    "validFrom": date, "validThrough": date,
                    "opens": "00:00", "closes": "00:00",
                }));
            }
            for iv in open {
                out.push(json!({
                    "@type": "OpeningHoursSpecification",
                    "validFrom": date, "validThrough": date,
                    "opens": hhmm(iv.start_min), "closes": hhmm(iv.end_min),
                }));
            }
        }
        at += Duration::days(7);
    }
    out
}

fn in_year(date: NaiveDate, now: DateTime<Utc>) -> bool {
    let today = now.date_naive();
    date >= today && date < today + Duration::days(366)
}

/// Amenities and the accessibility facts that are known, as `LocationFeatureSpecification`s.
fn features(l: &Listing) -> Vec<Value> {
    let feature = |name: &str, value: Value| json!({"@type": "LocationFeatureSpecification", "name": name, "value": value});
    let mut out: Vec<Value> = l
        .amenities
        .iter()
        .map(|(a, _)| feature(&product_name(a.as_str()), json!(true)))
        .collect();
    let acc = &l.accessibility;
    if let Some(w) = acc.wheelchair {
        out.push(feature("Wheelchair access", json!(w.as_str())));
    }
    let facts = [
        (
            "Step-free entrance",
            acc.entrance.as_ref().and_then(|e| e.step_free),
        ),
        ("Elevator", acc.elevator.as_ref().and_then(|e| e.present)),
        ("Wheelchair-accessible toilet", acc.toilets_wheelchair),
        ("Hearing loop", acc.hearing_loop),
        ("Quiet room", acc.quiet_room),
        ("Service animals welcome", acc.service_animals),
        ("Accessible parking", acc.accessible_parking),
        ("Tactile signage", acc.tactile_signage),
    ];
    for (name, v) in facts {
        if let Some(b) = v {
            out.push(feature(name, json!(b)));
        }
    }
    if let Some(wifi) = l.internet.wifi {
        out.push(feature("Wi-Fi", json!(wifi)));
    }
    out
}
