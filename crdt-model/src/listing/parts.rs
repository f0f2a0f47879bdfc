//! The parts of a listing: location, contact, offers, internet, amenities, the accessibility block,
//! policies, seat pools, external ids and provenance.
//!
//! Every optional fact is an `Option` and absent means unknown, which is not the same as no (A11yJSON's
//! rule): `"hearing_loop": false` says there is none, a missing `hearing_loop` says nobody checked. Parts
//! whose every field is unknown are left out of the JSON, so a hand-written listing stays short.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::vocab::{
    Amenity, Booking, Dogs, Fee, PoolAccess, PoolKind, Product, Ramp, Smoking, Wheelchair,
};

/// A calendar day written `YYYY-MM-DD`.
///
/// A newtype rather than a bare [`NaiveDate`] so that TOML's native dates (`measured_on = 2025-03-01`,
/// no quotes) are accepted as well as JSON strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Self {
        Self(d)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date written YYYY-MM-DD")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Date, E> {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(Date)
                    .map_err(|_| E::custom(format!("{s:?} is not a date written YYYY-MM-DD")))
            }
            // toml hands its native dates over as a one-entry map holding the text.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Date, A::Error> {
                let Some((_, text)) = map.next_entry::<String, String>()? else {
                    return Err(de::Error::custom("expected a date written YYYY-MM-DD"));
                };
                self.visit_str(&text)
            }
        }
        d.deserialize_any(V)
    }
}

/// A translation of the name and description into one language.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Translation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where the space is (GeoJSON point, OSM `addr:*`, `level`) and the time zone its hours are in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Longitude in degrees, -180..180, kept to 6 decimals (about 11 cm).
    pub lon: f64,
    /// Latitude in degrees, -90..90, kept to 6 decimals.
    pub lat: f64,
    pub address: Address,
    /// OSM `level`: the floor, as written locally ("0", "2", "-1", "3;4").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// IANA time zone name ("Europe/Lisbon"); opening hours are read in it.
    pub timezone: String,
}

/// A postal address (OSM `addr:*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2, upper case ("PT", "DE").
    pub country: String,
}

/// How to reach the space (OSM `contact:*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Something the space sells.
///
/// `price` is a decimal amount in major units of `currency` (`12.5` EUR, `3000` JPY), kept to 3 decimals,
/// the finest minor unit ISO 4217 uses. Amounts in different currencies are never converted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub product: Product,
    pub price: f64,
    /// ISO 4217 code, three upper-case letters ("EUR").
    pub currency: String,
    pub booking: Booking,
}

/// Reciprocal access for members of other spaces (Coworking Visa, Nexudus Passport).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reciprocity {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coworking_visa: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_days_per_visit: Option<u16>,
}

impl Reciprocity {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Internet access (OSM `internet_access`, Workfrom speed tests).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Internet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wired: Option<bool>,
    /// Measured download speed in Mbit/s, kept to 1 decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_mbps: Option<f64>,
    /// Measured upload speed in Mbit/s, kept to 1 decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_mbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_on: Option<Date>,
    /// Whether day guests get on the network too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_access: Option<bool>,
}

impl Internet {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// What is known about one amenity beyond its presence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmenityDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Fee>,
}

/// The set of amenities a space has, each with optional detail.
///
/// Written as a list whose items are either a name or a one-key object with the detail:
/// `["coffee", {"printer": {"fee": "extra"}}]`. A plain map (`{"coffee": {}, "printer": {"fee":
/// "extra"}}`) is read too. Output is always the list, in vocabulary order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Amenities(pub BTreeMap<Amenity, AmenityDetail>);

impl Amenities {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, a: Amenity) -> bool {
        self.0.contains_key(&a)
    }

    pub fn insert(&mut self, a: Amenity, detail: AmenityDetail) {
        self.0.insert(a, detail);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Amenity, AmenityDetail)> + '_ {
        self.0.iter().map(|(a, d)| (*a, *d))
    }

    /// The set as a bit mask of [`Amenity::bit`], for fast filtering.
    pub fn mask(&self) -> u32 {
        self.0.keys().fold(0, |m, a| m | a.bit())
    }
}

impl FromIterator<Amenity> for Amenities {
    fn from_iter<I: IntoIterator<Item = Amenity>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|a| (a, AmenityDetail::default()))
                .collect(),
        )
    }
}

impl Serialize for Amenities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;

        #[derive(Serialize)]
        #[serde(untagged)]
        enum Item<'a> {
            Plain(Amenity),
            Detailed(BTreeMap<Amenity, &'a AmenityDetail>),
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (a, d) in &self.0 {
            if *d == AmenityDetail::default() {
                seq.serialize_element(&Item::Plain(*a))?;
            } else {
                seq.serialize_element(&Item::Detailed(BTreeMap::from([(*a, d)])))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Amenities {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One list item: a bare name or `{name: detail}`.
        struct Item(Amenity, AmenityDetail);

        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Item;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an amenity name or a one-key object {name: {fee: ...}}")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<Item, E> {
                        let a = Amenity::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                        Ok(Item(a, AmenityDetail::default()))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                        let Some((a, detail)) = map.next_entry::<Amenity, AmenityDetail>()? else {
                            return Err(de::Error::custom("an amenity object must have one key"));
                        };
                        if map.next_key::<de::IgnoredAny>()?.is_some() {
                            return Err(de::Error::custom(
                                "an amenity object must have exactly one key; list each amenity separately",
                            ));
                        }
                        Ok(Item(a, detail))
                    }
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Amenities;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of amenities")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Amenities, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(Item(a, detail)) = seq.next_element()? {
                    if out.insert(a, detail).is_some() {
                        return Err(de::Error::custom(format!(
                            "amenity \"{a}\" is listed twice"
                        )));
                    }
                }
                Ok(Amenities(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Amenities, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((a, detail)) = map.next_entry::<Amenity, AmenityDetail>()? {
                    if out.insert(a, detail).is_some() {
                        return Err(de::Error::custom(format!(
                            "amenity \"{a}\" is listed twice"
                        )));
                    }
                }
                Ok(Amenities(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The entrance (A11yJSON `Entrance`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entrance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_free: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_height_cm: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_width_cm: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_door: Option<bool>,
}

/// The lift to the space's floor, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Elevator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cabin_width_cm: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cabin_depth_cm: Option<u16>,
    /// Whether it works as of the last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working: Option<bool>,
}

/// Restroom details beyond wheelchair access.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restroom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grab_rails: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_gender: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changing_table: Option<bool>,
}

/// Desks usable from a wheelchair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessibleDesks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_adjustable: Option<bool>,
}

/// Accessibility (A11yJSON, OSM). Every field is three-state: absent is unknown, not no.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accessibility {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheelchair: Option<Wheelchair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrance: Option<Entrance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevator: Option<Elevator>,
    /// OSM `toilets:wheelchair`: door at least 90 cm, 150 x 150 cm clear space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toilets_wheelchair: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restroom: Option<Restroom>,
    /// OSM `audio_loop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing_loop: Option<bool>,
    /// A11yJSON `isQuiet`: a room set aside for quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_room: Option<bool>,
    /// A11yJSON `isWellLit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_lit: Option<bool>,
    /// Whether service animals are welcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_animals: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessible_desks: Option<AccessibleDesks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessible_parking: Option<bool>,
    /// Braille or tactile signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactile_signage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Accessibility {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// House rules (OSM `dog`, `smoking`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dogs: Option<Dogs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children_welcome: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoking: Option<Smoking>,
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The static part of open seats (GBFS `station_information`); live availability travels in beacons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatPool {
    /// 1 to 32 characters of `a-z 0-9 _ -`, unique within the listing; beacons name the pool by it.
    pub id: String,
    pub kind: PoolKind,
    pub capacity: u32,
    /// How many of the seats are wheelchair accessible; absent is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessible_capacity: Option<u32>,
    pub access: PoolAccess,
}

/// The same place in other databases (A11yJSON `sameAs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIds {
    /// OSM element, `node/123`, `way/123` or `relation/123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osm: Option<String>,
    /// Wikidata item, `Q123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wikidata: Option<String>,
}

impl ExternalIds {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// When facts were last checked (OSM `check_date`): one date for the whole listing, and optionally a
/// date per top-level field (`{"opening_hours": "2025-04-01"}`) that overrides it for that field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_date: Option<Date>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_field: BTreeMap<String, Date>,
}

impl Provenance {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// When `field` (a top-level field name) was last checked.
    pub fn checked(&self, field: &str) -> Option<Date> {
        self.by_field.get(field).copied().or(self.check_date)
    }
}
