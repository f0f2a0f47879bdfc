//! The closed vocabularies of a listing: amenities, categories, products, pool kinds and every other enum.
//!
//! Each vocabulary is a `snake_case` string on the wire, has an `ALL` slice in declaration order, and gives
//! an error naming the bad value and the allowed ones (`unknown amenity "jacuzzi"; expected one of: ...`).
//! Serde parsing is exact (the canonical form); `FromStr`, meant for command-line flags, also accepts
//! upper case and `-` for `_`. Vocabularies grow by adding values, never by removing them (as GBFS does),
//! so a value once valid stays valid.

/// A string that is not in a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {}", .allowed.join(", "))]
pub struct UnknownValue {
    /// What kind of value was expected ("amenity", "product", ...).
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// Every accepted value.
    pub allowed: Vec<&'static str>,
}

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in vocabulary order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Every value's canonical text, in vocabulary order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// What a value of this vocabulary is called in messages ("amenity").
            pub const WHAT: &'static str = $what;

            /// The canonical `snake_case` text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Exact (canonical) parse, used by serde.
            fn parse_exact(s: &str) -> Result<Self, $crate::listing::UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::listing::UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        allowed: Self::ALL.iter().map(|v| v.as_str()).collect(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::listing::UnknownValue;

            /// Lenient parse for command-line flags: trims, lowercases and reads `-` as `_`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let folded = s.trim().to_ascii_lowercase().replace('-', "_");
                Self::parse_exact(&folded).map_err(|mut e| {
                    e.value = s.to_string();
                    e
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        write!(f, "a {} name", $what)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::parse_exact(s).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// A shared amenity (schema.org `amenityFeature`); the reference vocabulary, in its order.
    Amenity, "amenity" {
        MeetingRoom => "meeting_room",
        PhoneBooth => "phone_booth",
        QuietZone => "quiet_zone",
        EventSpace => "event_space",
        Kitchen => "kitchen",
        Coffee => "coffee",
        Food => "food",
        Printer => "printer",
        Lockers => "lockers",
        StandingDesks => "standing_desks",
        Monitors => "monitors",
        AirConditioning => "air_conditioning",
        OutdoorSpace => "outdoor_space",
        Showers => "showers",
        BikeParking => "bike_parking",
        CarParking => "car_parking",
        EvCharging => "ev_charging",
        Childcare => "childcare",
        MailHandling => "mail_handling",
    }
}

impl Amenity {
    /// This amenity's bit in a [`u32`] set; the vocabulary must stay under 32 values for it.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

vocabulary! {
    /// What kind of place it is (OSM `office=coworking` / `amenity=coworking_space` and neighbours).
    #[derive(Default)]
    Category, "category" {
        #[default]
        CoworkingSpace => "coworking_space",
        CafeWorkspace => "cafe_workspace",
        Library => "library",
        HotelWorkspace => "hotel_workspace",
        CommunitySpace => "community_space",
        Makerspace => "makerspace",
        UniversitySpace => "university_space",
    }
}

vocabulary! {
    /// What an offer sells (LiquidSpace, Deskpass and Cobot products).
    Product, "product" {
        DayPass => "day_pass",
        HalfDay => "half_day",
        Hourly => "hourly",
        HotDeskMonth => "hot_desk_month",
        DedicatedDeskMonth => "dedicated_desk_month",
        PrivateOffice => "private_office",
        MeetingRoomHour => "meeting_room_hour",
    }
}

vocabulary! {
    /// How an offer is booked.
    Booking, "booking" {
        /// Turn up and pay at the desk.
        WalkIn => "walk_in",
        /// Ask, and the space confirms.
        Request => "request",
        /// Book online with immediate confirmation.
        Instant => "instant",
    }
}

vocabulary! {
    /// How many power outlets there are for members (Workfrom).
    Power, "power level" {
        None => "none",
        Few => "few",
        Some => "some",
        Many => "many",
    }
}

vocabulary! {
    /// The usual noise level (Workfrom, A11yJSON `isQuiet`).
    Noise, "noise level" {
        Quiet => "quiet",
        Moderate => "moderate",
        Lively => "lively",
    }
}

vocabulary! {
    /// Whether an amenity is in the price.
    Fee, "fee" {
        Included => "included",
        Extra => "extra",
    }
}

vocabulary! {
    /// OSM `wheelchair`: `limited` means at most one step of 7 cm, or a similar partial access.
    Wheelchair, "wheelchair value" {
        Yes => "yes",
        Limited => "limited",
        No => "no",
    }
}

vocabulary! {
    /// The ramp at the entrance.
    Ramp, "ramp" {
        None => "none",
        Fixed => "fixed",
        Removable => "removable",
    }
}

vocabulary! {
    /// OSM `dog`.
    Dogs, "dog policy" {
        No => "no",
        Leashed => "leashed",
        Yes => "yes",
    }
}

vocabulary! {
    /// OSM `smoking`.
    Smoking, "smoking policy" {
        No => "no",
        Outside => "outside",
        Separated => "separated",
        Isolated => "isolated",
        Yes => "yes",
    }
}

vocabulary! {
    /// The kind of seat a pool holds (GBFS vehicle types, for desks).
    PoolKind, "seat pool kind" {
        HotDesk => "hot_desk",
        DedicatedDesk => "dedicated_desk",
        PhoneBooth => "phone_booth",
        MeetingRoom => "meeting_room",
        PrivateOffice => "private_office",
    }
}

vocabulary! {
    /// How a member gets a seat from a pool.
    PoolAccess, "seat pool access" {
        /// First come, first served.
        WalkIn => "walk_in",
        /// The space holds a seat on request for a short while.
        Hold => "hold",
        /// Booked ahead.
        Book => "book",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;

    #[test]
    fn amenity_vocabulary_is_exactly_the_reference_list() {
        let reference = "meeting_room, phone_booth, quiet_zone, event_space, kitchen, coffee, food, \
                         printer, lockers, standing_desks, monitors, air_conditioning, outdoor_space, \
                         showers, bike_parking, car_parking, ev_charging, childcare, mail_handling";
        let ours: Vec<_> = Amenity::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(ours.join(", "), reference);
        assert!(Amenity::ALL.len() < 32, "amenity sets are u32 bit masks");
    }

    #[test]
    fn unknown_value_names_the_value_and_the_allowed_ones() {
        let err = "jacuzzi".parse::<Amenity>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "unknown amenity \"jacuzzi\"; expected one of: meeting_room, phone_booth, "
            ),
            "{msg}"
        );
        assert!(msg.ends_with("mail_handling"), "{msg}");
        let err = serde_json::from_str::<Product>("\"week_pass\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown product \"week_pass\"; expected one of: day_pass, half_day"),
            "{err}"
        );
    }

    #[test]
    fn from_str_is_lenient_but_serde_is_exact() {
        assert_eq!("Phone-Booth".parse::<Amenity>(), Ok(Amenity::PhoneBooth));
        assert_eq!(" ev_charging ".parse::<Amenity>(), Ok(Amenity::EvCharging));
        assert!(serde_json::from_str::<Amenity>("\"Phone-Booth\"").is_err());
        for a in Amenity::ALL {
            let json = serde_json::to_string(a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            assert_eq!(serde_json::from_str::<Amenity>(&json).unwrap(), *a);
        }
    }

    #[test]
    fn amenity_bits_are_distinct() {
        let all = Amenity::ALL.iter().fold(0u32, |acc, a| {
            assert_eq!(acc & a.bit(), 0);
            acc | a.bit()
        });
        assert_eq!(all.count_ones() as usize, Amenity::ALL.len());
    }
}
