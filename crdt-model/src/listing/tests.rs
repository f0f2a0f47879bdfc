//! Tests of the listing: the sample directory, round trips, every validation rule, TOML, and a property test
//! that any valid listing survives JSON unchanged.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const SAMPLE: &str = include_str!("../../../node/sample/alliance.json");

fn id(n: u8) -> SpaceId {
    let body: String = std::iter::repeat_n('a', 15)
        .chain([(b'a' + n) as char])
        .collect();
    format!("sp-{body}").parse().unwrap()
}

fn minimal() -> Listing {
    Listing::new_minimal(
        id(0),
        "Test Space",
        38.7,
        -9.14,
        "Lisbon",
        "PT",
        "Europe/Lisbon",
    )
}

/// A small valid listing as JSON, to break one field at a time.
fn base_json() -> serde_json::Value {
    json!({
        "id": id(1).to_string(),
        "name": "Kanal Desk",
        "location": {
            "lon": 13.4, "lat": 52.5,
            "address": {"city": "Berlin", "country": "DE"},
            "timezone": "Europe/Berlin"
        },
        "opening_hours": "Mo-Fr 08:00-18:00",
        "offers": [{"product": "day_pass", "price": 20.0, "currency": "EUR", "booking": "walk_in"}],
        "amenities": ["coffee", {"printer": {"fee": "extra"}}],
        "seat_pools": [{"id": "flex", "kind": "hot_desk", "capacity": 10, "access": "walk_in"}]
    })
}

/// Parse `base_json` changed by `edit` and return the error message.
fn error_after(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = base_json();
    edit(&mut v);
    match Listing::from_value(v) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn base_json_is_valid() {
    let l = Listing::from_value(base_json()).unwrap();
    assert_eq!(
        l.category,
        Category::CoworkingSpace,
        "category defaults to coworking_space"
    );
    assert!(l.amenities.contains(Amenity::Coffee));
    assert_eq!(
        l.amenities.0.get(&Amenity::Printer),
        Some(&AmenityDetail {
            fee: Some(Fee::Extra)
        })
    );
    assert_eq!(l.accessibility, Accessibility::default(), "all unknown");
}

#[test]
fn sample_directory_has_twelve_valid_listings_that_round_trip() {
    let all: Vec<serde_json::Value> = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(all.len(), 12);
    let mut ids = std::collections::BTreeSet::new();
    let mut cities = std::collections::BTreeSet::new();
    for v in all {
        let l = Listing::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(l.to_value(), v, "{} is not in canonical form", l.name);
        assert!(ids.insert(l.id.clone()), "duplicate id {}", l.id);
        cities.insert(l.location.address.city.clone());
        let hours = l.hours().expect("every sample has opening hours");
        assert!(hours.is_ok(), "{}", l.name);
    }
    assert!(cities.len() >= 8, "{cities:?}");
}

#[test]
fn json_round_trip_is_exact() {
    let all: Vec<serde_json::Value> = serde_json::from_str(SAMPLE).unwrap();
    for v in all {
        let l = Listing::from_value(v).unwrap();
        let text = l.to_json();
        let back = Listing::from_json(&text).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.to_json(), text);
        assert_eq!(Listing::from_json(&l.to_json_pretty()).unwrap(), l);
    }
}

#[test]
fn minimal_listing_is_valid_and_short() {
    let l = minimal();
    l.validate().unwrap();
    let v = l.to_value();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for k in ["id", "name", "category", "location"] {
        assert!(keys.contains(&k), "{keys:?}");
    }
}

#[test]
fn three_state_facts_keep_unknown_apart_from_no() {
    let mut v = base_json();
    v["accessibility"] = json!({"hearing_loop": false, "entrance": {"step_free": true}});
    let l = Listing::from_value(v).unwrap();
    assert_eq!(l.accessibility.hearing_loop, Some(false));
    assert_eq!(l.accessibility.quiet_room, None);
    let out = l.to_value();
    assert_eq!(out["accessibility"]["hearing_loop"], json!(false));
    assert!(out["accessibility"].get("quiet_room").is_none());
    assert!(out["accessibility"]["entrance"].get("ramp").is_none());
}

#[test]
fn amenities_read_as_a_map_too_and_write_as_a_list() {
    let mut v = base_json();
    v["amenities"] = json!({"printer": {"fee": "extra"}, "coffee": {}});
    let l = Listing::from_value(v).unwrap();
    assert_eq!(
        l.to_value()["amenities"],
        json!(["coffee", {"printer": {"fee": "extra"}}])
    );
}

#[test]
fn coordinates_and_amounts_are_normalised() {
    let mut v = base_json();
    v["location"]["lat"] = json!(52.51234567);
    v["location"]["lon"] = json!(-0.0000001);
    v["offers"][0]["price"] = json!(19.9999);
    v["internet"] = json!({"down_mbps": 95.55});
    let l = Listing::from_value(v).unwrap();
    assert_eq!(l.location.lat, 52.512346);
    assert_eq!(l.location.lon, 0.0);
    assert_eq!(l.offers[0].price, 20.0);
    assert_eq!(l.internet.down_mbps, Some(95.6));
    assert_eq!(
        l.to_value()["location"]["lon"].to_string(),
        "0.0",
        "no negative zero"
    );
}

#[test]
fn out_of_range_coordinates_name_the_field() {
    assert_eq!(
        error_after(|v| v["location"]["lat"] = json!(123)),
        "location.lat: 123 is out of range -90..90"
    );
    assert_eq!(
        error_after(|v| v["location"]["lon"] = json!(-180.5)),
        "location.lon: -180.5 is out of range -180..180"
    );
    let mut l = minimal();
    l.location.lat = f64::NAN;
    assert_eq!(
        l.validate().unwrap_err().to_string(),
        "location.lat: must be a finite number"
    );
}

#[test]
fn bad_hours_are_refused_with_the_syntax_error() {
    let msg = error_after(|v| v["opening_hours"] = json!("Mo-Fr 8 to 6"));
    assert_eq!(
        msg,
        "opening_hours: \"Mo-Fr 8 to 6\" is not valid OSM opening_hours syntax (unexpected \"8 to 6\" at column 7)"
    );
    let msg = error_after(|v| v["member_access_hours"] = json!("always"));
    assert!(
        msg.starts_with("member_access_hours: \"always\" is not valid"),
        "{msg}"
    );
    let msg = error_after(|v| v["opening_hours"] = json!("  "));
    assert_eq!(
        msg,
        "opening_hours: must not be empty; leave it out when the hours are unknown"
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    assert_eq!(
        error_after(|v| v["location"]["timezone"] = json!("Europe/Lisbo")),
        "location.timezone: \"Europe/Lisbo\" is not a known IANA time zone such as \"Europe/Lisbon\""
    );
}

#[test]
fn country_must_be_iso_3166() {
    assert_eq!(
        error_after(|v| v["location"]["address"]["country"] = json!("UK")),
        "location.address.country: \"UK\" is not an ISO 3166-1 alpha-2 country code (the United Kingdom is \"GB\")"
    );
    assert_eq!(
        error_after(|v| v["location"]["address"]["country"] = json!("de")),
        "location.address.country: \"de\" is not an ISO 3166-1 alpha-2 country code (codes are upper case)"
    );
}

#[test]
fn offers_need_a_currency_code_and_a_non_negative_price() {
    assert_eq!(
        error_after(|v| v["offers"][0]["currency"] = json!("eur")),
        "offers[0].currency: \"eur\" is not an ISO 4217 code of three upper-case letters such as \"EUR\""
    );
    assert_eq!(
        error_after(|v| v["offers"][0]["currency"] = json!("EURO")),
        "offers[0].currency: \"EURO\" is not an ISO 4217 code of three upper-case letters such as \"EUR\""
    );
    assert_eq!(
        error_after(|v| v["offers"][0]["price"] = json!(-5)),
        "offers[0].price: -5 is negative"
    );
    assert_eq!(
        error_after(|v| v["offers"][0]["price"] = json!(2e9)),
        "offers[0].price: 2000000000 is over the limit of 1000000000"
    );
}

#[test]
fn seat_pools_have_unique_valid_ids_and_sane_capacities() {
    let pool = |id: &str, cap: u32| json!({"id": id, "kind": "hot_desk", "capacity": cap, "access": "walk_in"});
    assert_eq!(
        error_after(|v| v["seat_pools"] = json!([pool("flex", 5), pool("flex", 3)])),
        "seat_pools[1].id: \"flex\" is used by an earlier pool; pool ids must be unique"
    );
    assert_eq!(
        error_after(|v| v["seat_pools"][0]["id"] = json!("Main Floor")),
        "seat_pools[0].id: \"Main Floor\" must be 1 to 32 characters of a-z, 0-9, '_' and '-'"
    );
    assert_eq!(
        error_after(|v| v["seat_pools"][0]["id"] = json!("a".repeat(33))),
        format!(
            "seat_pools[0].id: \"{}\" must be 1 to 32 characters of a-z, 0-9, '_' and '-'",
            "a".repeat(33)
        )
    );
    assert_eq!(
        error_after(|v| v["seat_pools"][0]["capacity"] = json!(20_000)),
        "seat_pools[0].capacity: 20000 is over the limit of 10000"
    );
    assert_eq!(
        error_after(|v| v["seat_pools"][0]["accessible_capacity"] = json!(11)),
        "seat_pools[0].accessible_capacity: 11 is more than the pool's capacity of 10"
    );
    let many: Vec<_> = (0..65).map(|i| pool(&format!("p{i}"), 1)).collect();
    assert_eq!(
        error_after(|v| v["seat_pools"] = json!(many)),
        "seat_pools: has 65 pools, over the limit of 64"
    );
}

#[test]
fn text_sizes_are_limited() {
    assert_eq!(
        error_after(|v| v["name"] = json!("  ")),
        "name: must not be empty"
    );
    assert_eq!(
        error_after(|v| v["name"] = json!("é".repeat(201))),
        "name: is 201 characters, over the 200-character limit"
    );
    let mut v = base_json();
    v["name"] = json!("é".repeat(200));
    assert!(Listing::from_value(v).is_ok(), "200 characters are allowed");
    assert_eq!(
        error_after(|v| v["name"] = json!("Two\nlines")),
        "name: must not contain control characters or line breaks"
    );
    assert_eq!(
        error_after(|v| v["description"] = json!("x".repeat(9000))),
        "description: is 8.8 KiB (9000 bytes), over the 8 KiB limit"
    );
}

#[test]
fn a_five_megabyte_description_is_refused_with_its_size() {
    let mut v = base_json();
    v["description"] = json!("x".repeat(5 * 1024 * 1024));
    let text = v.to_string();
    let err = Listing::from_json(&text).unwrap_err();
    assert!(matches!(err, ListingError::TooLarge { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "listing is 5.0 MiB ({} bytes), over the 64 KiB limit",
            text.len()
        )
    );
    // Built in code rather than read, the description's own rule names it.
    let mut l = minimal();
    l.description = "x".repeat(5 * 1024 * 1024);
    assert_eq!(
        l.validate().unwrap_err().to_string(),
        "description: is 5.0 MiB (5242880 bytes), over the 8 KiB limit"
    );
}

#[test]
fn the_whole_listing_is_limited_even_when_each_field_fits() {
    let mut l = minimal();
    for lang in ["de", "es", "fr", "it", "ja", "nl", "pl", "pt"] {
        l.translations.insert(
            lang.to_string(),
            Translation {
                name: None,
                description: Some("y".repeat(8 * 1024)),
            },
        );
    }
    let msg = l.validate().unwrap_err().to_string();
    assert!(msg.starts_with("listing: is 64."), "{msg}");
    assert!(msg.ends_with("as JSON, over the 64 KiB limit"), "{msg}");
}

#[test]
fn contact_details_must_be_plausible() {
    assert_eq!(
        error_after(|v| v["contact"] = json!({"email": "hello.example.org"})),
        "contact.email: \"hello.example.org\" is not an e-mail address: it has no '@'"
    );
    assert_eq!(
        error_after(|v| v["contact"] = json!({"website": "www.example.org"})),
        "contact.website: \"www.example.org\" must start with https:// or http://"
    );
    assert_eq!(
        error_after(|v| v["contact"] = json!({"website": "https://nohost"})),
        "contact.website: \"https://nohost\" does not have a plausible host name such as example.org"
    );
    assert_eq!(
        error_after(|v| v["contact"] = json!({"phone": "ask at the bar"})),
        "contact.phone: \"ask at the bar\" may only contain digits, spaces and + - ( ) . /"
    );
}

#[test]
fn other_rules_name_their_fields() {
    assert_eq!(
        error_after(|v| v["translations"] = json!({"Portuguese": {"name": "Doca"}})),
        "translations.Portuguese: \"Portuguese\" is not a BCP 47 language tag such as \"pt\" or \"fr-CA\""
    );
    assert_eq!(
        error_after(|v| v["translations"] = json!({"pt": {}})),
        "translations.pt: has neither a name nor a description"
    );
    assert_eq!(
        error_after(
            |v| v["accessibility"] = json!({"entrance": {"step_free": true, "step_height_cm": 12}})
        ),
        "accessibility.entrance: step_free is true but step_height_cm is 12"
    );
    assert_eq!(
        error_after(|v| v["external_ids"] = json!({"wikidata": "42"})),
        "external_ids.wikidata: \"42\" is not a Wikidata item id such as \"Q42\""
    );
    let msg = error_after(|v| v["provenance"] = json!({"by_field": {"wifi": "2025-01-01"}}));
    assert!(
        msg.starts_with(
            "provenance.by_field.wifi: \"wifi\" is not a listing field; expected one of: name, "
        ),
        "{msg}"
    );
    assert_eq!(
        error_after(|v| v["internet"] = json!({"down_mbps": -1})),
        "internet.down_mbps: -1 is out of range 0..100000"
    );
}

#[test]
fn problems_lists_every_broken_rule_in_field_order() {
    let mut l = minimal();
    l.name = String::new();
    l.location.lat = 91.0;
    l.offers.push(Offer {
        product: Product::DayPass,
        price: -1.0,
        currency: "eu".into(),
        booking: Booking::WalkIn,
    });
    let paths: Vec<String> = l.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        [
            "name",
            "location.lat",
            "offers[0].price",
            "offers[0].currency"
        ]
    );
    assert_eq!(
        l.validate().unwrap_err().to_string(),
        "name: must not be empty"
    );
}

#[test]
fn unknown_vocabulary_gives_the_path_and_the_allowed_values() {
    let mut v = base_json();
    v["amenities"] = json!(["coffee", "kitchen", "jacuzzi"]);
    let text = serde_json::to_string_pretty(&v).unwrap();
    let msg = Listing::from_json(&text).unwrap_err().to_string();
    assert!(
        msg.starts_with("amenities[2]: unknown amenity \"jacuzzi\"; expected one of: meeting_room, phone_booth, quiet_zone,"),
        "{msg}"
    );
    assert!(msg.ends_with("mail_handling"), "{msg}");

    let msg = error_after(|v| v["offers"][0]["product"] = json!("week_pass"));
    assert!(
        msg.starts_with("offers[0].product: unknown product \"week_pass\"; expected one of: day_pass, half_day,"),
        "{msg}"
    );
    let msg = error_after(|v| v["seat_pools"][0]["kind"] = json!("sofa"));
    assert!(
        msg.starts_with("seat_pools[0].kind: unknown seat pool kind \"sofa\""),
        "{msg}"
    );
    let msg = error_after(|v| v["accessibility"] = json!({"wheelchair": "partly"}));
    assert_eq!(
        msg,
        "accessibility.wheelchair: unknown wheelchair value \"partly\"; expected one of: yes, limited, no"
    );
    let msg = error_after(|v| v["policies"] = json!({"dogs": "small ones"}));
    assert_eq!(
        msg,
        "policies.dogs: unknown dog policy \"small ones\"; expected one of: no, leashed, yes"
    );
    let msg = error_after(|v| v["category"] = json!("bar"));
    assert!(msg.starts_with("category: unknown category \"bar\"; expected one of: coworking_space, cafe_workspace, library"), "{msg}");
}

#[test]
fn shape_errors_name_the_field() {
    let msg = error_after(|v| v["internet"] = json!({"wifii": true}));
    assert!(
        msg.starts_with("internet.wifii: is not a field here; expected one of: wifi, wired,"),
        "{msg}"
    );
    let msg = error_after(|v| {
        v.as_object_mut().unwrap().remove("name");
    });
    assert_eq!(msg, "name: is required");
    let msg = error_after(|v| v["location"]["lat"] = json!("north"));
    assert_eq!(msg, "location.lat: expected a number, found text");
    // Every shape problem at once, in field order.
    let msg = error_after(|v| {
        v.as_object_mut().unwrap().remove("name");
        v["location"].as_object_mut().unwrap().remove("timezone");
        v["seat_pools"][0]["kind"] = json!("sofa");
        v["colour"] = json!("teal");
    });
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines[0], "4 problems:", "{msg}");
    assert_eq!(lines[1], "  name: is required");
    assert_eq!(lines[2], "  location.timezone: is required");
    assert!(lines[3].starts_with("  seat_pools[0].kind: unknown seat pool kind \"sofa\""));
    assert!(lines[4].starts_with("  colour: is not a field here; expected one of: id, name,"));
    let msg = error_after(|v| v["amenities"] = json!(["coffee", "coffee"]));
    assert!(msg.contains("amenity \"coffee\" is listed twice"), "{msg}");
    let msg = error_after(|v| v["internet"] = json!({"measured_on": "last week"}));
    assert_eq!(
        msg,
        "internet.measured_on: \"last week\" is not a date written YYYY-MM-DD"
    );
    let msg = error_after(|v| v["id"] = json!("sp-nope"));
    assert!(msg.starts_with("id: "), "{msg}");
}

#[test]
fn json_syntax_errors_have_a_position() {
    let text = format!("{{\"id\": \"{}\",\n  \"name\": }}", id(1));
    let msg = Listing::from_json(&text).unwrap_err().to_string();
    assert!(msg.contains("(line 2, column"), "{msg}");
    let err = Listing::from_json(&format!("{} trailing", base_json())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("listing: trailing characters (line 1, column"),
        "{err}"
    );
}

#[test]
fn toml_of_the_same_shape_reads_the_same() {
    let toml_text = format!(
        r#"
id = "{}"
name = "Kanal Desk"
opening_hours = "Mo-Fr 08:00-18:00"
amenities = ["coffee", {{ printer = {{ fee = "extra" }} }}]

[location]
lon = 13.4
lat = 52.5
timezone = "Europe/Berlin"
address = {{ city = "Berlin", country = "DE" }}

[[offers]]
product = "day_pass"
price = 20.0
currency = "EUR"
booking = "walk_in"

[[seat_pools]]
id = "flex"
kind = "hot_desk"
capacity = 10
access = "walk_in"

[internet]
measured_on = 2025-02-11
"#,
        id(1)
    );
    let from_toml = Listing::from_toml(&toml_text).unwrap();
    let mut v = base_json();
    v["internet"] = json!({"measured_on": "2025-02-11"});
    assert_eq!(from_toml, Listing::from_value(v).unwrap());

    let bad = toml_text.replace("\"hot_desk\"", "\"sofa\"");
    let msg = Listing::from_toml(&bad).unwrap_err().to_string();
    assert!(
        msg.starts_with("seat_pools[0].kind: unknown seat pool kind \"sofa\""),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let msg = Listing::from_toml("name = ").unwrap_err().to_string();
    assert_eq!(msg, "listing: invalid TOML syntax (line 1, column 8)");
}

#[test]
fn human_sizes() {
    assert_eq!(human_size(812), "812 bytes");
    assert_eq!(human_size(64 * 1024), "64 KiB");
    assert_eq!(human_size(9000), "8.8 KiB");
    assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
}

// --- property test: any valid listing survives JSON unchanged ---

const ZONES: &[&str] = &[
    "Europe/Lisbon",
    "Asia/Tokyo",
    "America/Argentina/Buenos_Aires",
    "Australia/Melbourne",
    "Africa/Nairobi",
    "UTC",
];
const COUNTRY_CODES: &[&str] = &["PT", "JP", "AR", "AU", "KE", "DE", "CA", "EE"];
const HOURS: &[&str] = &[
    "24/7",
    "Mo-Fr 08:00-18:00",
    "Mo-Fr 08:00-20:00; Sa 10:00-16:00; PH off",
    "Mo-Su 06:00-23:00",
    "Mo-Fr 09:00-12:00,13:00-17:30",
];
const LANGS: &[&str] = &["pt", "de", "fr-CA", "ja", "es-419"];

fn short_text() -> impl Strategy<Value = String> {
    "[A-Za-zéñß][A-Za-z0-9 éñß'&-]{0,30}"
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(all)
}

prop_compose! {
    fn arb_location()(
        // (0, 0) is refused as a placeholder; a latitude of 0 alone is fine.
        lat in (-90_000_000i64..=90_000_000).prop_filter("not 0, 0", |l| *l != 0),
        lon in -180_000_000i64..=180_000_000,
        city in short_text(),
        street in opt(short_text()),
        postcode in opt("[0-9]{4,5}"),
        country in pick(COUNTRY_CODES),
        level in opt("-?[0-9]{1,2}"),
        tz in pick(ZONES),
    ) -> Location {
        Location {
            lat: lat as f64 / 1e6,
            lon: lon as f64 / 1e6,
            address: Address { street, city, postcode, country: country.to_string() },
            level,
            timezone: tz.to_string(),
        }
    }
}

prop_compose! {
    fn arb_offer()(
        product in pick(Product::ALL),
        thousandths in 0u64..10_000_000_000,
        currency in "[A-Z]{3}",
        booking in pick(Booking::ALL),
    ) -> Offer {
        Offer { product, price: thousandths as f64 / 1000.0, currency, booking }
    }
}

prop_compose! {
    fn arb_date()(days in 0i64..20_000) -> Date {
        Date(chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(days))
    }
}

prop_compose! {
    fn arb_internet()(
        wifi in opt(any::<bool>()),
        wired in opt(any::<bool>()),
        down in opt(0u32..1_000_000),
        up in opt(0u32..1_000_000),
        measured_on in opt(arb_date()),
        guest_access in opt(any::<bool>()),
    ) -> Internet {
        Internet {
            wifi,
            wired,
            down_mbps: down.map(|t| f64::from(t) / 10.0),
            up_mbps: up.map(|t| f64::from(t) / 10.0),
            measured_on,
            guest_access,
        }
    }
}

prop_compose! {
    fn arb_accessibility()(
        wheelchair in opt(pick(Wheelchair::ALL)).boxed(),
        entrance in opt((opt(0u16..=1000), opt(pick(Ramp::ALL)), opt(50u16..=300), opt(any::<bool>()))).boxed(),
        step_free in any::<bool>().boxed(),
        elevator in opt((opt(any::<bool>()), opt(50u16..300), opt(50u16..300), opt(any::<bool>()))).boxed(),
        flags in prop::collection::vec(opt(any::<bool>()), 8).boxed(),
        restroom in opt((opt(any::<bool>()), opt(any::<bool>()), opt(any::<bool>()))).boxed(),
        desks in opt((opt(0u32..100), opt(any::<bool>()))).boxed(),
        notes in opt("[a-zA-Z .,\n]{0,80}").boxed(),
    ) -> Accessibility {
        Accessibility {
            wheelchair,
            entrance: entrance.map(|(h, ramp, door, auto)| Entrance {
                // Keep the consistency rule: step-free means no step height above zero.
                step_free: if h.is_some_and(|h| h > 0) { Some(false) } else { Some(step_free) },
                step_height_cm: h,
                ramp,
                door_width_cm: door,
                automatic_door: auto,
            }),
            elevator: elevator.map(|(present, w, d, working)| Elevator {
                present,
                cabin_width_cm: w,
                cabin_depth_cm: d,
                working: if present == Some(false) { None } else { working },
            }),
            toilets_wheelchair: flags[0],
            restroom: restroom.map(|(grab_rails, all_gender, changing_table)| Restroom {
                grab_rails,
                all_gender,
                changing_table,
            }),
            hearing_loop: flags[1],
            quiet_room: flags[2],
            well_lit: flags[3],
            service_animals: flags[4],
            accessible_desks: desks.map(|(count, height_adjustable)| AccessibleDesks { count, height_adjustable }),
            accessible_parking: flags[5],
            tactile_signage: flags[6],
            notes,
        }
    }
}

prop_compose! {
    fn arb_pools()(
        pools in prop::collection::vec(
            (pick(PoolKind::ALL), 1u32..=500, opt(0u32..=500), pick(PoolAccess::ALL)),
            0..5,
        ),
    ) -> Vec<SeatPool> {
        pools
            .into_iter()
            .enumerate()
            .map(|(i, (kind, capacity, acc, access))| SeatPool {
                id: format!("pool-{i}"),
                kind,
                capacity,
                accessible_capacity: acc.map(|a| a.min(capacity)),
                access,
            })
            .collect()
    }
}

prop_compose! {
    fn arb_listing()(
        id in "[a-z2-7]{16}".boxed(),
        name in short_text().boxed(),
        description in "[a-zA-Z0-9 .,é\n]{0,200}".boxed(),
        translations in prop::collection::btree_map(
            pick(LANGS),
            (opt(short_text()), opt("[a-z .]{1,60}")),
            0..3,
        ).boxed(),
        category in pick(Category::ALL).boxed(),
        location in arb_location().boxed(),
        contact in (opt("[a-z]{1,10}"), any::<bool>(), opt("\\+[1-9][0-9]{6,12}")).boxed(),
        hours in (opt(pick(HOURS)), opt(pick(HOURS))).boxed(),
        offers in prop::collection::vec(arb_offer(), 0..4).boxed(),
        reciprocity in (any::<bool>(), opt(0u16..=30)).boxed(),
        internet in arb_internet().boxed(),
        power_noise in (opt(pick(Power::ALL)), opt(pick(Noise::ALL))).boxed(),
        amenities in prop::collection::btree_map(pick(Amenity::ALL), opt(pick(Fee::ALL)), 0..8).boxed(),
        accessibility in arb_accessibility().boxed(),
        policies in (opt(pick(Dogs::ALL)), opt(any::<bool>()), opt(pick(Smoking::ALL))).boxed(),
        seat_pools in arb_pools().boxed(),
        external in (opt(1u64..10_000_000_000), opt(1u64..100_000_000)).boxed(),
        provenance in (opt(arb_date()), prop::collection::btree_map(pick(&["internet", "opening_hours", "accessibility"][..]), arb_date(), 0..3)).boxed(),
    ) -> Listing {
        let (site, with_email, phone) = contact;
        Listing {
            id: format!("sp-{id}").parse().unwrap(),
            name,
            description,
            translations: translations
                .into_iter()
                .map(|(lang, (name, description))| {
                    // A translation needs at least one of the two.
                    let name = if description.is_none() && name.is_none() { Some("x".to_string()) } else { name };
                    (lang.to_string(), Translation { name, description })
                })
                .collect(),
            category,
            location,
            contact: Contact {
                website: site.as_ref().map(|s| format!("https://{s}.example/")),
                email: site.filter(|_| with_email).map(|s| format!("hello@{s}.example")),
                phone,
            },
            opening_hours: hours.0.map(str::to_string),
            member_access_hours: hours.1.map(str::to_string),
            offers,
            reciprocity: Reciprocity { coworking_visa: reciprocity.0, free_days_per_visit: reciprocity.1 },
            internet,
            power: power_noise.0,
            noise: power_noise.1,
            amenities: Amenities(amenities.into_iter().map(|(a, fee)| (a, AmenityDetail { fee })).collect()),
            accessibility,
            policies: Policies { dogs: policies.0, children_welcome: policies.1, smoking: policies.2 },
            seat_pools,
            external_ids: ExternalIds {
                osm: external.0.map(|n| format!("way/{n}")),
                wikidata: external.1.map(|n| format!("Q{n}")),
            },
            provenance: Provenance {
                check_date: provenance.0,
                by_field: provenance.1.into_iter().map(|(k, d)| (k.to_string(), d)).collect(),
            },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_valid_listing_round_trips_through_json(l in arb_listing()) {
        let mut l = l;
        l.normalise();
        prop_assert_eq!(l.problems(), Vec::<FieldError>::new());
        let text = l.to_json();
        let back = Listing::from_json(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &l);
        prop_assert_eq!(back.to_json(), text);
        let pretty = Listing::from_json(&l.to_json_pretty()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&pretty, &l);
        prop_assert_eq!(Listing::from_value(l.to_value()).map_err(|e| TestCaseError::fail(e.to_string()))?, l);
    }
}
