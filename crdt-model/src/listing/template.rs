//! The commented TOML a new space writes its first listing from (`deskmesh space init`, `space template`).
//!
//! Every field of a listing is in it, with what it means and its allowed values, taken from the
//! vocabularies themselves so the template never falls behind them. Required fields are uncommented and
//! marked `REQUIRED`; those without a sensible default (the point, city, country, time zone, the seats of
//! the first pool) are left in a state validation refuses, so an unedited template is never published by
//! mistake and `space edit` names each of them at once. Optional fields are commented out with `#`
//! directly before the key; removing that `#` uses the example value, which is always valid.

use deskmesh_keys::SpaceId;

use super::limits::{MAX_NAME_CHARS, MAX_SEAT_POOLS};
use super::vocab::{
    Amenity, Booking, Category, Dogs, Fee, Noise, PoolAccess, PoolKind, Power, Product, Ramp,
    Smoking, Wheelchair,
};

fn one_of(names: &[&str]) -> String {
    names.join(", ")
}

/// The template for the space `id`, named `name` (the name the alliance admitted it under).
pub fn template(id: &SpaceId, name: &str) -> String {
    let name = toml_string(name);
    let category = one_of(Category::NAMES);
    let product = one_of(Product::NAMES);
    let booking = one_of(Booking::NAMES);
    let power = one_of(Power::NAMES);
    let noise = one_of(Noise::NAMES);
    let fee = one_of(Fee::NAMES);
    let wheelchair = one_of(Wheelchair::NAMES);
    let ramp = one_of(Ramp::NAMES);
    let dogs = one_of(Dogs::NAMES);
    let smoking = one_of(Smoking::NAMES);
    let kind = one_of(PoolKind::NAMES);
    let access = one_of(PoolAccess::NAMES);
    let amenities = Amenity::NAMES
        .chunks(6)
        .map(|c| format!("#   {}", c.join(", ")))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r##"# The listing of {name} for deskmesh.
#
# 1. Fill in every line marked REQUIRED (the point, the address and the time zone at least).
# 2. For any other field you know, remove the "#" at the start of its line and set its value.
#    Lines starting with "# " (hash and space) are explanations. Leave out what you do not know:
#    a field left out reads "unknown", which is not the same as "no".
# 3. Sign and publish it:   deskmesh space edit --file listing.toml
#    Every problem is reported at once, each with the path of its field.
#
# docs/LISTING.md explains every field; `deskmesh space show` prints what is published now.

# This space's id. Do not change it: it is derived from the key that founded the space.
id = "{id}"
# REQUIRED. The name members see, at most {MAX_NAME_CHARS} characters.
name = {name}
# What members read first. Plain text; separate paragraphs with a blank line ("\n\n").
#description = "A bright room by the river with fast wifi and good coffee."
# One of: {category}
category = "coworking_space"
# Public opening hours, OpenStreetMap syntax (https://wiki.openstreetmap.org/wiki/Key:opening_hours),
# read in the time zone below. Outside them the space shows "closed", whatever its seats say.
#opening_hours = "Mo-Fr 08:00-19:00; Sa 10:00-14:00; PH off"
# When members with a key may come in, same syntax (often "24/7").
#member_access_hours = "24/7"
# Power outlets for members; one of: {power}
#power = "many"
# The usual noise level; one of: {noise}
#noise = "moderate"
# Shared amenities, any of:
{amenities}
# An amenity that costs extra can be written {{ printer = {{ fee = "extra" }} }} (fee: {fee}).
#amenities = ["coffee", "kitchen", "phone_booth", {{ printer = {{ fee = "extra" }} }}]

[location]
# REQUIRED. The point of the entrance in decimal degrees, WGS 84 (a map's "what's here?" shows it).
lat = 0.0
lon = 0.0
# REQUIRED. The IANA time zone the opening hours are read in, such as "Europe/Lisbon".
timezone = ""
# The floor, as written on the door ("2", "ground").
#level = "2"

[location.address]
# REQUIRED. The city, as members search for it.
city = ""
# REQUIRED. ISO 3166-1 alpha-2 country code, upper case ("PT", "DE"; the United Kingdom is "GB").
country = ""
#street = "Rua do Exemplo 12"
#postcode = "1100-001"

# How to reach the space.
#[contact]
#website = "https://example.org"
#email = "hello@example.org"
#phone = "+351 21 000 0000"

# What the space sells; repeat the [[offers]] block for each. Prices are in major units of the currency
# (ISO 4217, three upper-case letters) and are never converted: members filter within a currency.
# product, one of: {product}
# booking, one of: {booking}
#[[offers]]
#product = "day_pass"
#price = 15.0
#currency = "EUR"
#booking = "walk_in"

# Reciprocal access for members of other spaces.
#[reciprocity]
#coworking_visa = true
#free_days_per_visit = 3

# Measured internet speeds, Mbit/s, and the day they were measured.
#[internet]
#wifi = true
#wired = false
#down_mbps = 300.0
#up_mbps = 50.0
#measured_on = 2025-05-01
#guest_access = true

# Accessibility. Every fact has three states: true, false, or left out for unknown.
# wheelchair, one of: {wheelchair} (limited: at most one step of 7 cm)
#[accessibility]
#wheelchair = "yes"
#toilets_wheelchair = true
#hearing_loop = false
#quiet_room = true
#well_lit = true
#service_animals = true
#accessible_parking = false
#tactile_signage = false
#notes = "Ring the bell at the side door for the ramp."

# The entrance. ramp, one of: {ramp}
#[accessibility.entrance]
#step_free = true
#step_height_cm = 0
#ramp = "none"
#door_width_cm = 90
#automatic_door = false

#[accessibility.elevator]
#present = true
#cabin_width_cm = 110
#cabin_depth_cm = 140
#working = true

#[accessibility.restroom]
#grab_rails = true
#all_gender = true
#changing_table = false

#[accessibility.accessible_desks]
#count = 2
#height_adjustable = true

# House rules. dogs, one of: {dogs}; smoking, one of: {smoking}
#[policies]
#dogs = "leashed"
#children_welcome = true
#smoking = "outside"

# Seat pools: the seats members can ask for, each published live with `deskmesh seats set --pool ID N`.
# Repeat the [[seat_pools]] block for each pool, at most {MAX_SEAT_POOLS}. Only desk pools (hot_desk,
# dedicated_desk) count as "seats free now"; rooms, booths and offices are shown on their own.
# id: 1 to 32 characters of a-z, 0-9, _ and -, unique in the listing.
# kind, one of: {kind}
# access, one of: {access}
[[seat_pools]]
id = "hot-desks"
kind = "hot_desk"
# REQUIRED. How many seats the pool has (at least 1).
capacity = 0
# How many of them are wheelchair accessible.
#accessible_capacity = 2
access = "walk_in"

# A second pool, for example a meeting room:
#[[seat_pools]]
#id = "meeting-room"
#kind = "meeting_room"
#capacity = 1
#access = "book"

# The same place in other databases.
#[external_ids]
#osm = "node/123456"
#wikidata = "Q42"

# When the facts were last checked, for the whole listing.
#[provenance]
#check_date = 2025-05-01

# The name and description in other languages (a BCP 47 tag per table, such as "pt" or "fr-CA").
#[translations.pt]
#name = "O nome em português"
#description = "Uma sala luminosa junto ao rio."
"##
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::listing::{Listing, ListingError};

    fn id() -> SpaceId {
        "sp-aaaaaaaaaaaaaaaa".parse().unwrap()
    }

    /// The template with the required values a new space fills in.
    fn filled(t: &str) -> String {
        t.replace("lat = 0.0", "lat = 38.7139")
            .replace("lon = 0.0", "lon = -9.1394")
            .replace("timezone = \"\"", "timezone = \"Europe/Lisbon\"")
            .replace("city = \"\"", "city = \"Lisbon\"")
            .replace("country = \"\"", "country = \"PT\"")
            .replace("capacity = 0", "capacity = 12")
    }

    #[test]
    fn an_unedited_template_names_every_required_field_at_once() {
        let t = template(&id(), "Casa do \"Trabalho\"");
        let err = Listing::from_toml(&t).unwrap_err();
        let paths: Vec<String> = err.field_errors().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "location",
                "location.address.city",
                "location.address.country",
                "location.timezone",
                "seat_pools[0].capacity"
            ],
            "{err}"
        );
        assert!(
            err.to_string().starts_with("5 problems:\n  location: "),
            "{err}"
        );
    }

    #[test]
    fn a_filled_template_is_a_valid_listing_with_this_id_and_name() {
        let l = Listing::from_toml(&filled(&template(&id(), "Casa do \"Trabalho\""))).unwrap();
        assert_eq!(l.id, id());
        assert_eq!(l.name, "Casa do \"Trabalho\"");
        assert_eq!(l.seat_pools[0].capacity, 12);
        assert_eq!(l.location.address.city, "Lisbon");
    }

    #[test]
    fn every_commented_example_is_valid_when_uncommented() {
        let t = filled(&template(&id(), "Casa"));
        let all: String = t
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let l = Listing::from_toml(&all).unwrap_or_else(|e| panic!("{e}\n{all}"));
        assert_eq!(l.seat_pools.len(), 2);
        assert_eq!(l.offers.len(), 1);
        assert!(l.accessibility.elevator.is_some());
        assert!(l.translations.contains_key("pt"));
        assert!(l.provenance.check_date.is_some());
        // Every top-level field of a listing is in the template, so none has to be guessed.
        for field in l.to_value().as_object().unwrap().keys() {
            assert!(
                all.contains(&format!("\n{field} = ")) || all.contains(&format!("[{field}")),
                "{field}"
            );
        }
    }

    #[test]
    fn every_vocabulary_is_listed() {
        let t = template(&id(), "Casa");
        for names in [
            Category::NAMES,
            Product::NAMES,
            Booking::NAMES,
            Power::NAMES,
            Noise::NAMES,
            Wheelchair::NAMES,
            Ramp::NAMES,
            Dogs::NAMES,
            Smoking::NAMES,
            PoolKind::NAMES,
            PoolAccess::NAMES,
            Amenity::NAMES,
        ] {
            for n in names {
                assert!(t.contains(n), "{n} is missing");
            }
        }
        assert!(matches!(
            Listing::from_toml(&t),
            Err(ListingError::Problems(_))
        ));
    }
}
