//! The formats against real readers: OSM fixtures written from OSM's tagging conventions, round trips of
//! the sample alliance through CSV and GeoJSON, OSM XML read back with an XML parser, and JSON-LD
//! expanded by a JSON-LD processor against a schema.org context shipped in the fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use deskmesh_crdt_model::listing::Listing;
use serde_json::{json, Value};

use super::*;
use crate::api::Bytes;

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn file(path: &str, format: FileFormat) -> FileBytes {
    FileBytes {
        name: path.into(),
        format,
        bytes: Bytes(std::fs::read(fixture(path)).unwrap()),
    }
}

/// The twelve sample listings shipped with deskmesh.
fn sample() -> Vec<Listing> {
    let values: Vec<Value> =
        serde_json::from_str(include_str!("../../../sample/alliance.json")).unwrap();
    values
        .into_iter()
        .map(|v| Listing::from_value(v).unwrap())
        .collect()
}

fn by_key<'a>(entries: &'a [Entry], key: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no entry {key}"))
}

#[test]
fn formats_are_told_apart_by_their_content() {
    for (path, format) in [
        ("osm/overpass-lisbon.json", FileFormat::Osm),
        ("osm/api-berlin.osm", FileFormat::Osm),
        ("osm/api-node.json", FileFormat::Osm),
    ] {
        assert_eq!(
            detect(&std::fs::read(fixture(path)).unwrap()),
            format,
            "{path}"
        );
    }
    let l = sample();
    let t = Utc::now();
    let geo = crate::export::render(
        &l,
        &Default::default(),
        crate::export::ExportFormat::Geojson,
        t,
    )
    .unwrap();
    assert_eq!(detect(geo.as_bytes()), FileFormat::Geojson);
    let csv = crate::export::render(&l, &Default::default(), crate::export::ExportFormat::Csv, t)
        .unwrap();
    assert_eq!(detect(csv.as_bytes()), FileFormat::Csv);
    let json = crate::export::render(
        &l,
        &Default::default(),
        crate::export::ExportFormat::Json,
        t,
    )
    .unwrap();
    assert_eq!(detect(json.as_bytes()), FileFormat::Json);
}

#[test]
fn an_overpass_answer_maps_tags_and_reports_what_it_cannot_use() {
    let defaults = Defaults {
        country: Some("PT".into()),
        ..Defaults::default()
    };
    let entries = entries(
        &file("osm/overpass-lisbon.json", FileFormat::Auto),
        &defaults,
    )
    .unwrap();
    // The bench is not a workspace; the four others are, the way included.
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "node/4815162342",
            "node/9876543210",
            "way/123456789",
            "node/5550001"
        ]
    );

    let azulejo = by_key(&entries, "node/4815162342");
    let l = &azulejo.value;
    assert_eq!(l["name"], "Azulejo Works");
    assert_eq!(l["category"], "coworking_space");
    assert_eq!(l["location"]["address"]["street"], "Rua da Fábrica 12");
    assert_eq!(l["location"]["address"]["city"], "Lisboa");
    assert_eq!(l["location"]["address"]["country"], "PT");
    assert_eq!(l["location"]["timezone"], "Europe/Lisbon");
    assert_eq!(l["location"]["level"], "1");
    assert_eq!(l["location"]["lat"], json!(38.706414));
    assert_eq!(
        l["opening_hours"],
        "Mo-Fr 08:00-20:00; Sa 10:00-16:00; PH off"
    );
    assert_eq!(l["accessibility"]["wheelchair"], "yes");
    assert_eq!(l["accessibility"]["toilets_wheelchair"], true);
    assert_eq!(l["internet"]["wifi"], true);
    assert_eq!(l["seat_pools"][0]["capacity"], 40);
    assert_eq!(l["external_ids"]["osm"], "node/4815162342");
    assert_eq!(l["provenance"]["check_date"], "2025-03-01");
    assert_eq!(l["provenance"]["by_field"]["opening_hours"], "2025-02-20");
    assert_eq!(l["translations"]["pt"]["name"], "Azulejo Works");
    // Tags with no listing field are reported, each with its value.
    let unmapped: BTreeSet<&str> = azulejo.unmapped.iter().map(String::as_str).collect();
    assert_eq!(
        unmapped,
        BTreeSet::from([
            "internet_access:fee=customers",
            "operator=Azulejo Works Lda",
            "start_date=2019-05"
        ])
    );
    // The timezone was a guess from the country, and says so.
    assert!(
        azulejo.notes.iter().any(|n| n.contains("Europe/Lisbon")),
        "{:?}",
        azulejo.notes
    );
    Listing::from_value({
        let mut v = l.clone();
        set_path(&mut v, "id", json!("sp-samplelisbonaaaa"));
        v
    })
    .unwrap();

    // Odd values: a website without a scheme, two phone numbers, a café that is a workspace.
    let cafe = by_key(&entries, "node/9876543210");
    assert_eq!(cafe.value["category"], "cafe_workspace");
    assert_eq!(
        cafe.value["contact"]["website"],
        "https://miradouro-desks.example"
    );
    assert_eq!(cafe.value["contact"]["phone"], "+351 21 000 0202");
    assert_eq!(cafe.value["policies"]["dogs"], "yes");
    assert_eq!(cafe.value["amenities"], json!(["outdoor_space"]));
    assert!(cafe
        .unmapped
        .iter()
        .any(|u| u.starts_with("phone=+351 21 000 0202;+351 91 000 0202")));
    assert!(cafe.unmapped.contains(&"cuisine=coffee_shop".to_string()));

    // The way: its centre, and every value the listing cannot hold reported rather than guessed.
    let way = by_key(&entries, "way/123456789");
    assert_eq!(way.value["location"]["lat"], json!(38.722345));
    assert!(way.value.get("opening_hours").is_none());
    assert!(way.value["accessibility"].get("wheelchair").is_none());
    for prefix in [
        "opening_hours=Mo-Fr 9h-18h",
        "wheelchair=maybe",
        "internet_access=terminal",
        "capacity=about 60",
        "building=office",
        "building:levels=6",
    ] {
        assert!(
            way.unmapped.iter().any(|u| u.starts_with(prefix)),
            "{prefix} not reported in {:?}",
            way.unmapped
        );
    }
    assert_eq!(way.value["external_ids"]["wikidata"], "Q4115189");
    assert_eq!(way.value["amenities"], json!(["air_conditioning"]));

    // No name: the entry is kept (a draft names the problem), the fixme is bookkeeping.
    let nameless = by_key(&entries, "node/5550001");
    assert!(nameless.value.get("name").is_none());
    assert!(nameless.unmapped.is_empty(), "{:?}", nameless.unmapped);
}

#[test]
fn osm_xml_gives_ways_the_centre_of_their_nodes() {
    let entries = entries(
        &file("osm/api-berlin.osm", FileFormat::Osm),
        &Defaults {
            city: Some("Berlin".into()),
            ..Defaults::default()
        },
    )
    .unwrap();
    assert_eq!(entries.len(), 2, "the bakery is not a workspace");
    let kanal = by_key(&entries, "node/3001");
    assert_eq!(
        kanal.value["description"],
        "Desks by the Landwehr canal & a quiet room."
    );
    assert_eq!(
        kanal.value["location"]["address"]["street"],
        "Paul-Lincke-Ufer 8b"
    );
    assert_eq!(kanal.value["location"]["timezone"], "Europe/Berlin");
    assert_eq!(kanal.value["accessibility"]["wheelchair"], "no");
    assert_eq!(kanal.value["accessibility"]["hearing_loop"], false);
    assert_eq!(
        kanal.value["accessibility"]["notes"],
        "Three steps at the door, no ramp."
    );
    assert_eq!(kanal.value["internet"]["wired"], true);
    assert_eq!(kanal.value["amenities"], json!(["bike_parking"]));
    assert_eq!(kanal.unmapped, vec!["payment:cash=no".to_string()]);

    let loft = by_key(&entries, "way/4001");
    // The closed ring's mean, counting the repeated first node twice as OSM lists it.
    let lat = loft.value["location"]["lat"].as_f64().unwrap();
    let lon = loft.value["location"]["lon"].as_f64().unwrap();
    assert!(
        (lat - 52.5038).abs() < 1e-3 && (lon - 13.4188).abs() < 1e-3,
        "{lat},{lon}"
    );
    // No addr:city or addr:country on the way: the defaults fill the city; the country is missing.
    assert_eq!(loft.value["location"]["address"]["city"], "Berlin");
    assert!(loft.value["location"]["address"].get("country").is_none());
    assert_eq!(loft.unmapped, vec!["building=yes".to_string()]);

    let err = entries_of_text("<osm version=\"0.6\"><node id=\"x\"/></osm>").unwrap_err();
    assert!(err.to_string().contains("no numeric id"), "{err}");
    let err = entries_of_text("<osm><node id=\"1\" lat=\"1\" lon=\"2\">").unwrap_err();
    assert!(err.to_string().contains("not valid OSM XML"), "{err}");
}

fn entries_of_text(text: &str) -> anyhow::Result<Vec<Entry>> {
    entries(
        &FileBytes {
            name: "t.osm".into(),
            format: FileFormat::Osm,
            bytes: Bytes(text.as_bytes().to_vec()),
        },
        &Defaults::default(),
    )
}

#[test]
fn a_listing_goes_to_osm_tags_and_back() {
    for l in sample() {
        let tags = osm::tags_of(&l);
        let back = osm::map_tags(&tags, &Defaults::default());
        assert!(back.unmapped.is_empty(), "{}: {:?}", l.name, back.unmapped);
        let v = &back.value;
        assert_eq!(v["name"], json!(l.name));
        assert_eq!(v["category"], json!(l.category.as_str()));
        assert_eq!(
            v["location"]["address"]["street"],
            json!(l.location.address.street)
        );
        assert_eq!(
            v["location"]["address"]["city"],
            json!(l.location.address.city)
        );
        assert_eq!(
            v.get("opening_hours"),
            l.opening_hours.as_ref().map(|h| json!(h)).as_ref()
        );
        assert_eq!(
            v["accessibility"].get("wheelchair"),
            l.accessibility
                .wheelchair
                .map(|w| json!(w.as_str()))
                .as_ref()
        );
        assert_eq!(
            v["contact"].get("website"),
            l.contact.website.as_ref().map(|w| json!(w)).as_ref()
        );
        assert_eq!(
            v["location"].get("timezone"),
            osm::timezone_of(&l.location.address.country)
                .map(|t| json!(t))
                .as_ref(),
            "the time zone comes back where the country has one"
        );
    }
}

#[test]
fn osm_xml_export_reads_back_with_an_xml_parser() {
    let mut listings = sample();
    listings[0].external_ids.osm = Some("node/4815162342".into());
    listings[1].external_ids.osm = Some("way/77".into());
    listings[2].description = "Line one & \"two\"\n\n<three>".into();
    let text = osm::xml(&listings);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "osm");
    assert_eq!(root.attribute("version"), Some("0.6"));
    let nodes: Vec<_> = root.children().filter(|n| n.has_tag_name("node")).collect();
    assert_eq!(nodes.len(), listings.len());
    let mut negative = BTreeSet::new();
    for (node, l) in nodes.iter().zip(&listings) {
        let id: i64 = node.attribute("id").unwrap().parse().unwrap();
        if l.external_ids.osm.as_deref() == Some("node/4815162342") {
            assert_eq!(id, 4815162342);
        } else {
            assert!(id < 0, "a new object gets a negative id");
            assert!(negative.insert(id), "ids are distinct");
        }
        let lat: f64 = node.attribute("lat").unwrap().parse().unwrap();
        assert!((lat - l.location.lat).abs() < 1e-7);
        let tags: BTreeMap<String, String> = node
            .children()
            .filter(|c| c.has_tag_name("tag"))
            .map(|t| {
                (
                    t.attribute("k").unwrap().into(),
                    t.attribute("v").unwrap().into(),
                )
            })
            .collect();
        assert_eq!(tags, osm::tags_of(l), "{}", l.name);
    }
    // The export reads back through the OSM reader too, escapes and all.
    let back = osm::read(&text).unwrap();
    assert_eq!(back[2].tags["description"], "Line one & \"two\"\n\n<three>");
}

#[test]
fn csv_export_imports_back_with_nothing_lost() {
    let listings = sample();
    let text = table::write(&listings, &Default::default()).unwrap();
    // A real CSV reader sees one row per space and the community columns first.
    let mut reader = ::csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "id");
    assert_eq!(&header[20], "seat_capacity");
    assert_eq!(reader.records().count(), listings.len());

    let entries = table::read(&text).unwrap();
    assert_eq!(entries.len(), listings.len());
    for (e, l) in entries.iter().zip(&listings) {
        assert!(e.unmapped.is_empty(), "{:?}", e.unmapped);
        let back = Listing::from_value(e.value.clone()).unwrap();
        assert_eq!(&back, l, "{}", l.name);
    }
}

#[test]
fn csv_made_by_hand_reads_with_summaries_and_reports_unknown_columns() {
    let text = "name,lat,lon,city,country,timezone,day_pass_price,day_pass_currency,seat_capacity,wheelchair,parking_spaces,id\n\
                Corner Desk,40.4,-3.7,Madrid,ES,Europe/Madrid,15,EUR,12,unknown,3,sp-samplemadridaaaa\n";
    let entries = table::read(text).unwrap();
    let e = &entries[0];
    assert_eq!(e.unmapped, vec!["parking_spaces=3".to_string()]);
    let l = Listing::from_value(e.value.clone()).unwrap();
    assert_eq!(l.day_pass().unwrap().price, 15.0);
    assert_eq!(l.seat_pools[0].capacity, 12);
    assert_eq!(l.accessibility.wheelchair, None, "unknown stays unknown");

    let err = table::read("name,lat\nX,north\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, column lat: \"north\" is not a number"
    );
    let err = table::read("a,b\n1,2\n").unwrap_err();
    assert!(err.to_string().contains("no `name` column"), "{err}");
}

#[test]
fn geojson_export_imports_back_with_nothing_lost() {
    let listings = sample();
    let text = serde_json::to_string(&geo::write(&listings, &Default::default())).unwrap();
    let parsed: geojson::GeoJson = text.parse().unwrap();
    let geojson::GeoJson::FeatureCollection(fc) = parsed else {
        panic!("not a feature collection")
    };
    assert_eq!(fc.features.len(), listings.len());
    let entries = geo::read(&text, &Defaults::default()).unwrap();
    for (e, l) in entries.iter().zip(&listings) {
        let back = Listing::from_value(e.value.clone()).unwrap();
        assert_eq!(&back, l, "{}", l.name);
    }
}

#[test]
fn geojson_of_osm_data_is_read_as_tags() {
    let text = json!({
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "id": "node/4815162342",
            "geometry": {"type": "Point", "coordinates": [-9.146532, 38.706414]},
            "properties": {
                "@id": "node/4815162342",
                "amenity": "coworking_space",
                "name": "Azulejo Works",
                "addr:city": "Lisboa",
                "addr:country": "PT",
                "capacity": 40,
                "@relations": []
            }
        }]
    })
    .to_string();
    let entries = geo::read(&text, &Defaults::default()).unwrap();
    let e = &entries[0];
    assert_eq!(e.key, "node/4815162342");
    assert_eq!(e.value["location"]["lon"], json!(-9.146532));
    assert_eq!(e.value["seat_pools"][0]["capacity"], 40);
    assert_eq!(e.unmapped, vec!["@relations=[]".to_string()]);
}

/// Expands `doc` with a JSON-LD processor that may load only the schema.org context in the fixtures, and
/// returns the expanded objects as JSON.
fn expand(doc: &Value) -> Vec<Value> {
    use json_ld::syntax::{IntoJsonWithContext, Parse};
    use json_ld::{IriBuf, JsonLdProcessor, RemoteDocument};
    let context = std::fs::read_to_string(fixture("schemaorg/context.jsonld")).unwrap();
    let context = json_ld::syntax::Value::parse_str(&context).unwrap().0;
    let mut loader: BTreeMap<IriBuf, RemoteDocument> = BTreeMap::new();
    for iri in ["https://schema.org", "https://schema.org/"] {
        let iri = IriBuf::new(iri.to_string()).unwrap();
        loader.insert(
            iri.clone(),
            RemoteDocument::new(Some(iri), None, context.clone()),
        );
    }
    let input = RemoteDocument::new(
        Some(IriBuf::new("https://deskmesh.example/export.jsonld".to_string()).unwrap()),
        None,
        json_ld::syntax::Value::parse_str(&doc.to_string())
            .unwrap()
            .0,
    );
    let expanded = futures::executor::block_on(input.expand(&loader)).unwrap();
    expanded
        .into_iter()
        .map(|o| serde_json::from_str(&o.into_json_with(&()).to_string()).unwrap())
        .collect()
}

/// The schema.org vocabulary fixture: classes with their ancestors, properties with domain and range.
struct Vocab {
    ancestors: BTreeMap<String, BTreeSet<String>>,
    properties: BTreeMap<String, (Vec<String>, Vec<String>)>,
    days: BTreeSet<String>,
}

fn vocab() -> Vocab {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("schemaorg/vocabulary.json")).unwrap(),
    )
    .unwrap();
    let parents: BTreeMap<String, Vec<String>> =
        serde_json::from_value(v["classes"].clone()).unwrap();
    fn up(c: &str, parents: &BTreeMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
        out.insert(c.to_string());
        for p in &parents[c] {
            up(p, parents, out);
        }
    }
    let ancestors = parents
        .keys()
        .map(|c| {
            let mut all = BTreeSet::new();
            up(c, &parents, &mut all);
            (c.clone(), all)
        })
        .collect();
    let properties = v["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, p)| {
            (
                k.clone(),
                (
                    serde_json::from_value(p["domain"].clone()).unwrap(),
                    serde_json::from_value(p["range"].clone()).unwrap(),
                ),
            )
        })
        .collect();
    let days = serde_json::from_value(v["enumerations"]["DayOfWeek"].clone()).unwrap();
    Vocab {
        ancestors,
        properties,
        days,
    }
}

const SCHEMA: &str = "https://schema.org/";

/// Checks one expanded node and everything under it against the vocabulary; returns the properties seen.
fn check_node(node: &Value, vocab: &Vocab, seen: &mut BTreeSet<String>, path: &str) {
    let types: Vec<String> = node["@type"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: a node without @type: {node}"))
        .iter()
        .map(|t| {
            let t = t.as_str().unwrap();
            let name = t
                .strip_prefix(SCHEMA)
                .unwrap_or_else(|| panic!("{path}: type {t} is not schema.org"));
            assert!(
                vocab.ancestors.contains_key(name),
                "{path}: unknown class {name}"
            );
            name.to_string()
        })
        .collect();
    let classes: BTreeSet<&String> = types.iter().flat_map(|t| &vocab.ancestors[t]).collect();
    for (key, values) in node.as_object().unwrap() {
        if key.starts_with('@') {
            continue;
        }
        let prop = key
            .strip_prefix(SCHEMA)
            .unwrap_or_else(|| panic!("{path}: property {key} is not schema.org"));
        let (domain, range) = vocab.properties.get(prop).unwrap_or_else(|| {
            panic!("{path}: {prop} is not a schema.org property in the fixture")
        });
        assert!(
            domain.iter().any(|d| classes.contains(d)),
            "{path}: {prop} does not apply to {types:?}"
        );
        seen.insert(prop.to_string());
        for (i, v) in values.as_array().unwrap().iter().enumerate() {
            let here = format!("{path}.{prop}[{i}]");
            if v.get("@type").is_some_and(|t| t.is_array()) {
                let t = v["@type"][0].as_str().unwrap().trim_start_matches(SCHEMA);
                assert!(
                    range.iter().any(|r| vocab.ancestors[t].contains(r)),
                    "{here}: a {t} is not in the range {range:?}"
                );
                check_node(v, vocab, seen, &here);
            } else if let Some(id) = v.get("@id").and_then(Value::as_str) {
                if range.contains(&"DayOfWeek".to_string()) {
                    let day = id.strip_prefix(SCHEMA).unwrap();
                    assert!(vocab.days.contains(day), "{here}: {day} is not a DayOfWeek");
                } else {
                    assert!(
                        range.contains(&"URL".to_string()),
                        "{here}: an IRI where {range:?}"
                    );
                    assert!(id.starts_with("https://"), "{here}: {id}");
                }
            } else {
                let value = &v["@value"];
                let typed = v.get("@type").and_then(Value::as_str);
                match typed {
                    Some(t) if t == format!("{SCHEMA}Time") => {
                        let s = value.as_str().unwrap();
                        assert!(
                            chrono::NaiveTime::parse_from_str(s, "%H:%M").is_ok(),
                            "{here}: {s}"
                        );
                    }
                    Some(t) if t == format!("{SCHEMA}Date") => {
                        let s = value.as_str().unwrap();
                        assert!(
                            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                            "{here}: {s}"
                        );
                    }
                    Some(t) => panic!("{here}: unexpected datatype {t}"),
                    None => {
                        let kind = match value {
                            Value::Bool(_) => "Boolean",
                            Value::Number(n) if n.is_u64() || n.is_i64() => "Integer",
                            Value::Number(_) => "Number",
                            Value::String(_) => "Text",
                            other => panic!("{here}: {other}"),
                        };
                        let ok = range.iter().any(|r| {
                            r == kind
                                || (r == "Number" && kind == "Integer")
                                || (r == "Text" && kind == "Text")
                        });
                        assert!(ok, "{here}: a {kind} where {range:?}");
                        if prop == "priceCurrency" {
                            let c = value.as_str().unwrap();
                            assert!(
                                c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()),
                                "{here}: {c}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn json_ld_expands_against_schema_org_and_uses_only_its_vocabulary() {
    let mut listings = sample();
    listings[0].external_ids.osm = Some("node/4815162342".into());
    listings[0].external_ids.wikidata = Some("Q4115189".into());
    // A Tuesday in March 2025; Portugal's Good Friday (18 April) falls in the coming year.
    let now = Utc.with_ymd_and_hms(2025, 3, 4, 12, 0, 0).unwrap();
    let doc = jsonld::write(&listings, now);
    let expanded = expand(&doc);
    assert_eq!(expanded.len(), 1, "one ItemList");
    let vocab = vocab();
    let mut seen = BTreeSet::new();
    check_node(&expanded[0], &vocab, &mut seen, "list");
    for p in [
        "openingHoursSpecification",
        "specialOpeningHoursSpecification",
        "amenityFeature",
        "makesOffer",
        "priceCurrency",
        "sameAs",
        "dayOfWeek",
        "opens",
        "closes",
        "geo",
        "address",
    ] {
        assert!(seen.contains(p), "{p} never appears in the expanded export");
    }

    // The first space: Mo-Fr 08:00-20:00; Sa 10:00-16:00; PH off.
    let items = expanded[0][format!("{SCHEMA}itemListElement")]
        .as_array()
        .unwrap();
    let first = &items[0][format!("{SCHEMA}item")][0];
    assert_eq!(
        first[format!("{SCHEMA}name")][0]["@value"],
        json!(listings[0].name)
    );
    let specs = first[format!("{SCHEMA}openingHoursSpecification")]
        .as_array()
        .unwrap();
    let mut week: BTreeMap<String, (String, String)> = BTreeMap::new();
    for s in specs {
        let opens = s[format!("{SCHEMA}opens")][0]["@value"]
            .as_str()
            .unwrap()
            .to_string();
        let closes = s[format!("{SCHEMA}closes")][0]["@value"]
            .as_str()
            .unwrap()
            .to_string();
        for d in s[format!("{SCHEMA}dayOfWeek")].as_array().unwrap() {
            let day = d["@id"]
                .as_str()
                .unwrap()
                .trim_start_matches(SCHEMA)
                .to_string();
            week.insert(day, (opens.clone(), closes.clone()));
        }
    }
    assert_eq!(week.len(), 6, "{week:?}");
    assert_eq!(week["Monday"], ("08:00".into(), "20:00".into()));
    assert_eq!(week["Saturday"], ("10:00".into(), "16:00".into()));
    assert!(!week.contains_key("Sunday"));
    let special = first[format!("{SCHEMA}specialOpeningHoursSpecification")]
        .as_array()
        .unwrap();
    let good_friday = special
        .iter()
        .find(|s| s[format!("{SCHEMA}validFrom")][0]["@value"] == "2025-04-18");
    let good_friday = good_friday.unwrap_or_else(|| panic!("no Good Friday in {special:?}"));
    assert_eq!(good_friday[format!("{SCHEMA}opens")][0]["@value"], "00:00");
    assert_eq!(good_friday[format!("{SCHEMA}closes")][0]["@value"], "00:00");
    let same_as: Vec<&str> = first[format!("{SCHEMA}sameAs")]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["@id"].as_str().unwrap())
        .collect();
    assert_eq!(
        same_as,
        [
            "https://www.openstreetmap.org/node/4815162342",
            "https://www.wikidata.org/wiki/Q4115189"
        ]
    );
    // OSM syntax never reaches schema.org's text property.
    assert!(first.get(format!("{SCHEMA}openingHours")).is_none());
}

/// What the alliance says of a listing (a kept-listed revocation, verified facts) stays valid schema.org
/// in JSON-LD, and never comes back as listing data from JSON, GeoJSON or CSV.
#[test]
fn export_notes_are_schema_org_and_skipped_when_read_back() {
    use crate::export::{render_rows, ExportFormat, ExportRow, NOTES_KEY};
    use crate::names::KeyName;
    use crate::ops::trust::FactView;
    use deskmesh_keys::{DeviceKey, Signer};

    let listings = sample();
    let fact = |status: &str| FactView {
        fact: "accessibility".into(),
        status: status.into(),
        by: KeyName::of(None, &DeviceKey::generate().public_key()),
        checked_on: "2025-03-01".into(),
        note: String::new(),
    };
    let rows: Vec<ExportRow> = listings
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, listing)| ExportRow {
            listing,
            revoked: (i == 0).then(|| "unpaid dues".to_string()),
            facts: vec![fact(if i == 0 {
                "verified"
            } else {
                "changed since verified"
            })],
        })
        .collect();
    let now = Utc.with_ymd_and_hms(2025, 3, 4, 12, 0, 0).unwrap();
    let seats = Default::default();

    let doc: Value =
        serde_json::from_str(&render_rows(&rows, &seats, ExportFormat::Jsonld, now).unwrap())
            .unwrap();
    let expanded = expand(&doc);
    let mut seen = BTreeSet::new();
    check_node(&expanded[0], &vocab(), &mut seen, "list");
    assert!(seen.contains("additionalProperty") && seen.contains("propertyID"));
    let props = &doc["itemListElement"][0]["item"]["additionalProperty"];
    assert_eq!(props[0]["propertyID"], "deskmesh:revoked");
    assert_eq!(props[0]["value"], "unpaid dues");
    assert_eq!(props[1]["propertyID"], "deskmesh:verified");

    for format in [ExportFormat::Json, ExportFormat::Geojson, ExportFormat::Csv] {
        let text = render_rows(&rows, &seats, format, now).unwrap();
        assert!(
            text.contains("unpaid dues") && text.contains("2025-03-01"),
            "{format:?}: {text}"
        );
        let file = FileBytes {
            name: "export".into(),
            format: FileFormat::Auto,
            bytes: Bytes(text.into_bytes()),
        };
        let read = entries(&file, &Defaults::default()).unwrap();
        assert_eq!(read.len(), listings.len(), "{format:?}");
        for (e, l) in read.iter().zip(&listings) {
            assert!(e.value.get(NOTES_KEY).is_none(), "{format:?}: {}", e.value);
            assert!(e.unmapped.is_empty(), "{format:?}: {:?}", e.unmapped);
            assert_eq!(
                Listing::from_value(e.value.clone()).unwrap(),
                *l,
                "{format:?}"
            );
        }
    }
}
