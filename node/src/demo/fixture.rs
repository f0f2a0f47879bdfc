//! A seeded generator of realistic, non-repeating listings and of the edits a space makes to its listing
//! week after week, for benchmarks and large tests.
//!
//! Cycled templates flatter compression and hide every cost that grows with history, so each listing here
//! is composed from many independent choices (a city among forty on five continents, names, streets,
//! several sentences of description with numbers in them, amenities, accessibility facts, opening hours,
//! prices in the local currency, seat pools, wifi speeds), and [`Generator::edit`] makes one plausible
//! change at a time (new hours, a new price, a rewritten sentence, an amenity, a pool's capacity, a new
//! wifi measurement). The same seed gives the same listings and edits on every run.

use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::SpaceId;
use serde_json::{json, Value};

/// A small xorshift generator: deterministic from its seed, enough for varied test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point; mix the seed so nearby seeds diverge at once.
        Self((seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1)
    }

    /// Seeded from the clock and the process id, for data that only needs to look varied.
    pub fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::new(nanos ^ u64::from(std::process::id()))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A city: name, country code, latitude, longitude, time zone, currency, day-pass price range, phone
/// prefix, and street words.
struct City {
    name: &'static str,
    country: &'static str,
    lat: f64,
    lon: f64,
    tz: &'static str,
    currency: &'static str,
    day_pass: (f64, f64),
    phone: &'static str,
    streets: &'static [&'static str],
}

// One row of the city table; a constructor keeps the table one line per city.
#[allow(clippy::too_many_arguments)]
const fn city(
    name: &'static str,
    country: &'static str,
    lat: f64,
    lon: f64,
    tz: &'static str,
    currency: &'static str,
    day_pass: (f64, f64),
    phone: &'static str,
    streets: &'static [&'static str],
) -> City {
    City {
        name,
        country,
        lat,
        lon,
        tz,
        currency,
        day_pass,
        phone,
        streets,
    }
}

const PT: &[&str] = &[
    "Rua da Prata",
    "Rua Augusta",
    "Avenida da Liberdade",
    "Rua do Carmo",
    "Travessa do Fala-Só",
];
const ES: &[&str] = &[
    "Calle Mayor",
    "Carrer de Verdi",
    "Calle de Alcalá",
    "Gran Via",
    "Calle del Pez",
];
const FR: &[&str] = &[
    "Rue Oberkampf",
    "Rue de la Roquette",
    "Quai de Valmy",
    "Rue des Martyrs",
    "Boulevard Voltaire",
];
const DE: &[&str] = &[
    "Oranienstraße",
    "Schönhauser Allee",
    "Sonnenallee",
    "Torstraße",
    "Kastanienallee",
];
const NL: &[&str] = &[
    "Prinsengracht",
    "Haarlemmerdijk",
    "Ferdinand Bolstraat",
    "Witte de Withstraat",
    "Oudegracht",
];
const IT: &[&str] = &[
    "Via Tortona",
    "Via Nazionale",
    "Corso Buenos Aires",
    "Via dei Serpenti",
    "Via Po",
];
const EN: &[&str] = &[
    "High Street",
    "Mill Lane",
    "Church Road",
    "Market Street",
    "Canal Walk",
    "Station Road",
];
const US: &[&str] = &[
    "Main Street",
    "Broadway",
    "Mission Street",
    "Congress Avenue",
    "Pearl Street",
    "Elm Street",
];
const LATAM: &[&str] = &[
    "Avenida Paulista",
    "Calle Defensa",
    "Avenida Reforma",
    "Carrera 7",
    "Rua Augusta",
];
const AS: &[&str] = &[
    "Orchard Road",
    "Jalan Sultan",
    "Sukhumvit Soi 11",
    "MG Road",
    "Nathan Road",
];
const JP: &[&str] = &[
    "Omotesando",
    "Shibuya Dogenzaka",
    "Kiyamachi-dori",
    "Tenjin Nishi-dori",
];
const AF: &[&str] = &[
    "Bree Street",
    "Long Street",
    "Kenyatta Avenue",
    "Rue Mohammed V",
    "Jan Smuts Avenue",
];

const CITIES: &[City] = &[
    city(
        "Lisbon",
        "PT",
        38.7223,
        -9.1393,
        "Europe/Lisbon",
        "EUR",
        (12.0, 25.0),
        "+351 21",
        PT,
    ),
    city(
        "Porto",
        "PT",
        41.1579,
        -8.6291,
        "Europe/Lisbon",
        "EUR",
        (10.0, 20.0),
        "+351 22",
        PT,
    ),
    city(
        "Madrid",
        "ES",
        40.4168,
        -3.7038,
        "Europe/Madrid",
        "EUR",
        (12.0, 28.0),
        "+34 91",
        ES,
    ),
    city(
        "Barcelona",
        "ES",
        41.3874,
        2.1686,
        "Europe/Madrid",
        "EUR",
        (14.0, 30.0),
        "+34 93",
        ES,
    ),
    city(
        "Valencia",
        "ES",
        39.4699,
        -0.3763,
        "Europe/Madrid",
        "EUR",
        (10.0, 20.0),
        "+34 96",
        ES,
    ),
    city(
        "Paris",
        "FR",
        48.8566,
        2.3522,
        "Europe/Paris",
        "EUR",
        (20.0, 40.0),
        "+33 1",
        FR,
    ),
    city(
        "Lyon",
        "FR",
        45.764,
        4.8357,
        "Europe/Paris",
        "EUR",
        (15.0, 28.0),
        "+33 4",
        FR,
    ),
    city(
        "Berlin",
        "DE",
        52.52,
        13.405,
        "Europe/Berlin",
        "EUR",
        (15.0, 30.0),
        "+49 30",
        DE,
    ),
    city(
        "Leipzig",
        "DE",
        51.3397,
        12.3731,
        "Europe/Berlin",
        "EUR",
        (10.0, 22.0),
        "+49 341",
        DE,
    ),
    city(
        "Hamburg",
        "DE",
        53.5511,
        9.9937,
        "Europe/Berlin",
        "EUR",
        (15.0, 30.0),
        "+49 40",
        DE,
    ),
    city(
        "Amsterdam",
        "NL",
        52.3676,
        4.9041,
        "Europe/Amsterdam",
        "EUR",
        (20.0, 38.0),
        "+31 20",
        NL,
    ),
    city(
        "Utrecht",
        "NL",
        52.0907,
        5.1214,
        "Europe/Amsterdam",
        "EUR",
        (15.0, 30.0),
        "+31 30",
        NL,
    ),
    city(
        "Milan",
        "IT",
        45.4642,
        9.19,
        "Europe/Rome",
        "EUR",
        (15.0, 32.0),
        "+39 02",
        IT,
    ),
    city(
        "Rome",
        "IT",
        41.9028,
        12.4964,
        "Europe/Rome",
        "EUR",
        (12.0, 28.0),
        "+39 06",
        IT,
    ),
    city(
        "London",
        "GB",
        51.5072,
        -0.1276,
        "Europe/London",
        "GBP",
        (20.0, 45.0),
        "+44 20",
        EN,
    ),
    city(
        "Manchester",
        "GB",
        53.4808,
        -2.2426,
        "Europe/London",
        "GBP",
        (12.0, 28.0),
        "+44 161",
        EN,
    ),
    city(
        "Dublin",
        "IE",
        53.3498,
        -6.2603,
        "Europe/Dublin",
        "EUR",
        (20.0, 35.0),
        "+353 1",
        EN,
    ),
    city(
        "Copenhagen",
        "DK",
        55.6761,
        12.5683,
        "Europe/Copenhagen",
        "DKK",
        (150.0, 300.0),
        "+45 3",
        EN,
    ),
    city(
        "Stockholm",
        "SE",
        59.3293,
        18.0686,
        "Europe/Stockholm",
        "SEK",
        (200.0, 400.0),
        "+46 8",
        EN,
    ),
    city(
        "Warsaw",
        "PL",
        52.2297,
        21.0122,
        "Europe/Warsaw",
        "PLN",
        (40.0, 90.0),
        "+48 22",
        EN,
    ),
    city(
        "Prague",
        "CZ",
        50.0755,
        14.4378,
        "Europe/Prague",
        "CZK",
        (250.0, 500.0),
        "+420 2",
        EN,
    ),
    city(
        "Athens",
        "GR",
        37.9838,
        23.7275,
        "Europe/Athens",
        "EUR",
        (10.0, 20.0),
        "+30 21",
        EN,
    ),
    city(
        "New York",
        "US",
        40.7128,
        -74.006,
        "America/New_York",
        "USD",
        (35.0, 75.0),
        "+1 212",
        US,
    ),
    city(
        "Austin",
        "US",
        30.2672,
        -97.7431,
        "America/Chicago",
        "USD",
        (25.0, 45.0),
        "+1 512",
        US,
    ),
    city(
        "San Francisco",
        "US",
        37.7749,
        -122.4194,
        "America/Los_Angeles",
        "USD",
        (35.0, 70.0),
        "+1 415",
        US,
    ),
    city(
        "Toronto",
        "CA",
        43.6532,
        -79.3832,
        "America/Toronto",
        "CAD",
        (30.0, 55.0),
        "+1 416",
        US,
    ),
    city(
        "Mexico City",
        "MX",
        19.4326,
        -99.1332,
        "America/Mexico_City",
        "MXN",
        (250.0, 500.0),
        "+52 55",
        LATAM,
    ),
    city(
        "Bogotá",
        "CO",
        4.711,
        -74.0721,
        "America/Bogota",
        "COP",
        (30000.0, 60000.0),
        "+57 1",
        LATAM,
    ),
    city(
        "São Paulo",
        "BR",
        -23.5505,
        -46.6333,
        "America/Sao_Paulo",
        "BRL",
        (50.0, 120.0),
        "+55 11",
        LATAM,
    ),
    city(
        "Buenos Aires",
        "AR",
        -34.6037,
        -58.3816,
        "America/Argentina/Buenos_Aires",
        "ARS",
        (8000.0, 20000.0),
        "+54 11",
        LATAM,
    ),
    city(
        "Santiago",
        "CL",
        -33.4489,
        -70.6693,
        "America/Santiago",
        "CLP",
        (8000.0, 15000.0),
        "+56 2",
        LATAM,
    ),
    city(
        "Cape Town",
        "ZA",
        -33.9249,
        18.4241,
        "Africa/Johannesburg",
        "ZAR",
        (150.0, 350.0),
        "+27 21",
        AF,
    ),
    city(
        "Nairobi",
        "KE",
        -1.2921,
        36.8219,
        "Africa/Nairobi",
        "KES",
        (800.0, 2000.0),
        "+254 20",
        AF,
    ),
    city(
        "Lagos",
        "NG",
        6.5244,
        3.3792,
        "Africa/Lagos",
        "NGN",
        (5000.0, 15000.0),
        "+234 1",
        AF,
    ),
    city(
        "Marrakesh",
        "MA",
        31.6295,
        -7.9811,
        "Africa/Casablanca",
        "MAD",
        (100.0, 250.0),
        "+212 524",
        AF,
    ),
    city(
        "Bangalore",
        "IN",
        12.9716,
        77.5946,
        "Asia/Kolkata",
        "INR",
        (300.0, 900.0),
        "+91 80",
        AS,
    ),
    city(
        "Singapore",
        "SG",
        1.3521,
        103.8198,
        "Asia/Singapore",
        "SGD",
        (25.0, 60.0),
        "+65 6",
        AS,
    ),
    city(
        "Bangkok",
        "TH",
        13.7563,
        100.5018,
        "Asia/Bangkok",
        "THB",
        (250.0, 600.0),
        "+66 2",
        AS,
    ),
    city(
        "Tokyo",
        "JP",
        35.6762,
        139.6503,
        "Asia/Tokyo",
        "JPY",
        (1500.0, 4000.0),
        "+81 3",
        JP,
    ),
    city(
        "Melbourne",
        "AU",
        -37.8136,
        144.9631,
        "Australia/Melbourne",
        "AUD",
        (30.0, 60.0),
        "+61 3",
        EN,
    ),
];

const NAME_FIRST: &[&str] = &[
    "Harbour",
    "Foundry",
    "Canal",
    "Orchard",
    "Lantern",
    "Atlas",
    "Juniper",
    "Cobalt",
    "Meridian",
    "Granary",
    "Signal",
    "Kiln",
    "Loom",
    "Beacon",
    "Quarry",
    "Ferry",
    "Copper",
    "Linden",
    "Saffron",
    "Tidewater",
    "Riverside",
    "Hillside",
    "Northlight",
    "Ember",
    "Willow",
    "Tannery",
    "Printworks",
    "Bakehouse",
    "Depot",
    "Arcade",
    "Cedar",
    "Marble",
    "Ironworks",
    "Boathouse",
    "Lighthouse",
    "Mosaic",
    "Paper Mill",
    "Station",
];
const NAME_SECOND: &[&str] = &[
    "Works",
    "Studio",
    "Hub",
    "Collective",
    "House",
    "Commons",
    "Lab",
    "Yard",
    "Exchange",
    "Rooms",
    "Hall",
    "Loft",
    "Desk Club",
    "Workshop",
    "Quarter",
    "Factory",
    "Garden",
    "Post",
];
const BUILDINGS: &[&str] = &[
    "a restored textile mill",
    "a former post office",
    "an old printing house",
    "a converted warehouse",
    "a 1920s bank building",
    "a glass-fronted new build",
    "a renovated school",
    "a former tram depot",
    "the upper floors of a bookshop",
    "a courtyard house",
    "a converted brewery",
    "a former fire station",
];
const PLACES: &[&str] = &[
    "near the river",
    "two streets from the central station",
    "on a quiet side street",
    "above the covered market",
    "next to the university",
    "facing the park",
    "in the old town",
    "by the tram terminus",
    "behind the cathedral",
    "at the edge of the harbour",
    "in the arts district",
    "a short walk from the metro",
];
const EXTRAS: &[&str] = &[
    "Coffee is roasted by a neighbour and refilled all day.",
    "A rooftop terrace opens from April to October.",
    "Members run a monthly breakfast and a skill-share on Thursdays.",
    "Quiet floors are phone-free; calls go to the booths.",
    "Bike parking is in the courtyard, with a small repair stand.",
    "The kitchen has a fridge, two ovens and a shelf of shared spices.",
    "Visitors on a day pass get a locker for the day.",
    "Dogs are welcome on the ground floor.",
    "Event space seats sixty and can be booked in the evenings.",
    "A children's corner is staffed on Wednesday mornings.",
    "Printing is charged per page at the front desk.",
    "Showers are on the lower floor for cyclists and runners.",
    "Monitors can be borrowed at reception.",
    "Standing desks line the windows on the second floor.",
    "Meeting rooms have screens and whiteboards and can be booked by the hour.",
    "The building is heated by its own heat pump.",
];
const AMENITIES: &[&str] = &[
    "meeting_room",
    "phone_booth",
    "quiet_zone",
    "event_space",
    "kitchen",
    "coffee",
    "food",
    "printer",
    "lockers",
    "standing_desks",
    "monitors",
    "air_conditioning",
    "outdoor_space",
    "showers",
    "bike_parking",
    "car_parking",
    "ev_charging",
    "childcare",
    "mail_handling",
];

/// Listings and their edits, deterministic from a seed.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// The `i`-th listing, for space `id`.
    pub fn listing(&mut self, id: &SpaceId, i: usize) -> Listing {
        let r = &mut self.rng;
        let c = &CITIES[(i + r.below(CITIES.len())) % CITIES.len()];
        let name = format!("{} {}", r.pick(NAME_FIRST), r.pick(NAME_SECOND));
        let slug: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .collect::<String>()
            .to_lowercase()
            .replace(' ', "-");
        let host = format!("{slug}-{}.example", i % 997);
        let lat = c.lat + (r.unit() - 0.5) * 0.08;
        let lon = c.lon + (r.unit() - 0.5) * 0.08;
        let street = format!("{} {}", r.pick(c.streets), 1 + r.below(240));
        let mut amenities: Vec<&str> = AMENITIES
            .iter()
            .copied()
            .filter(|_| r.chance(0.45))
            .collect();
        if amenities.is_empty() {
            amenities.push("coffee");
        }
        let wheel = *r.pick(&["yes", "limited", "no"]);
        let mut v = json!({
            "id": id.to_string(),
            "name": name,
            "description": description(r),
            "category": *r.pick(&["coworking_space", "coworking_space", "coworking_space", "cafe_workspace", "community_space", "library", "makerspace"]),
            "location": {
                "lon": round6(lon),
                "lat": round6(lat),
                "address": {"street": street, "city": c.name, "postcode": format!("{}", 1000 + r.below(8999)), "country": c.country},
                "timezone": c.tz
            },
            "contact": {
                "website": format!("https://{host}"),
                "email": format!("hello@{host}"),
                "phone": format!("{} {:03} {:04}", c.phone, r.below(1000), r.below(10000))
            },
            "opening_hours": hours(r),
            "offers": offers(r, c),
            "reciprocity": {"coworking_visa": r.chance(0.3)},
            "internet": {
                "wifi": true,
                "down_mbps": (20.0 + r.below(9800) as f64 / 10.0),
                "up_mbps": (5.0 + r.below(4000) as f64 / 10.0),
                "guest_access": r.chance(0.7)
            },
            "power": *r.pick(&["few", "some", "many"]),
            "noise": *r.pick(&["quiet", "moderate", "lively"]),
            "amenities": amenities,
            "accessibility": {
                "wheelchair": wheel,
                "toilets_wheelchair": wheel == "yes" && r.chance(0.8),
                "entrance": {"step_free": wheel != "no", "door_width_cm": 80 + r.below(50)},
                "hearing_loop": r.chance(0.2),
                "quiet_room": r.chance(0.5)
            },
            "seat_pools": pools(r)
        });
        if r.chance(0.4) {
            v["member_access_hours"] = json!("24/7");
        }
        if r.chance(0.2) {
            v["external_ids"] =
                json!({"osm": format!("node/{}", 100_000_000 + r.below(900_000_000))});
        }
        Listing::from_value(v).unwrap_or_else(|e| {
            // The tables above only hold valid values; a failure here is a bug in them.
            panic!("the fixture generator made an invalid listing: {e}")
        })
    }

    /// One plausible edit of `l`: what a space changes from one week to the next.
    pub fn edit(&mut self, l: &Listing) -> Listing {
        let r = &mut self.rng;
        let mut v = l.to_value();
        match r.below(8) {
            0 => v["opening_hours"] = json!(hours(r)),
            1 => {
                if let Some(offers) = v["offers"].as_array_mut() {
                    for o in offers {
                        if let Some(p) = o["price"].as_f64() {
                            let factor = 0.9 + r.below(25) as f64 / 100.0;
                            o["price"] = json!((p * factor * 2.0).round() / 2.0);
                        }
                    }
                }
            }
            2 | 3 => v["description"] = json!(description(r)),
            4 => {
                let a = *r.pick(AMENITIES);
                if let Some(list) = v["amenities"].as_array_mut() {
                    let pos = list.iter().position(|x| x == a || x.get(a).is_some());
                    match pos {
                        Some(p) if list.len() > 1 => {
                            list.remove(p);
                        }
                        Some(_) => {}
                        None => list.push(json!(a)),
                    }
                }
            }
            5 => {
                if let Some(pools) = v["seat_pools"].as_array_mut() {
                    let n = pools.len();
                    if let Some(p) = pools.get_mut(r.below(n)) {
                        let cap = p["capacity"].as_u64().unwrap_or(4);
                        let next = (cap as i64 + r.below(9) as i64 - 4).clamp(1, 400);
                        p["capacity"] = json!(next);
                    }
                }
            }
            6 => {
                v["internet"]["down_mbps"] = json!(20.0 + r.below(9800) as f64 / 10.0);
                v["internet"]["up_mbps"] = json!(5.0 + r.below(4000) as f64 / 10.0);
                v["internet"]["measured_on"] = json!(format!(
                    "2026-{:02}-{:02}",
                    1 + r.below(12),
                    1 + r.below(28)
                ));
            }
            _ => v["noise"] = json!(*r.pick(&["quiet", "moderate", "lively"])),
        }
        Listing::from_value(v).unwrap_or_else(|_| l.clone())
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn description(r: &mut Rng) -> String {
    let desks = 8 + r.below(180);
    let floors = 1 + r.below(5);
    let mut text = format!(
        "{desks} desks across {floors} floor{} in {} {}.",
        if floors == 1 { "" } else { "s" },
        r.pick(BUILDINGS),
        r.pick(PLACES)
    );
    for _ in 0..1 + r.below(3) {
        let extra: &&str = r.pick(EXTRAS);
        text.push(' ');
        text.push_str(extra);
    }
    if r.chance(0.5) {
        text.push_str(&format!(
            " Founded in {} by {} freelancers who wanted a place to work near home.",
            1998 + r.below(28),
            2 + r.below(9)
        ));
    }
    text
}

fn hours(r: &mut Rng) -> String {
    let open = [7, 8, 8, 9, 9, 10][r.below(6)];
    let open_min = *r.pick(&["00", "30"]);
    let close = 17 + r.below(6);
    let mut h = format!("Mo-Fr {open:02}:{open_min}-{close:02}:00");
    if r.chance(0.6) {
        h.push_str(&format!(
            "; Sa {:02}:00-{:02}:00",
            9 + r.below(2),
            13 + r.below(5)
        ));
    }
    if r.chance(0.2) {
        h.push_str(&format!(
            "; Su {:02}:00-{:02}:00",
            10 + r.below(2),
            14 + r.below(3)
        ));
    }
    if r.chance(0.5) {
        h.push_str("; PH off");
    }
    h
}

fn offers(r: &mut Rng, c: &City) -> Value {
    let (lo, hi) = c.day_pass;
    let round = if hi > 1000.0 { 100.0 } else { 0.5 };
    let day = ((lo + r.unit() * (hi - lo)) / round).round() * round;
    let mut out = vec![
        json!({"product": "day_pass", "price": day, "currency": c.currency, "booking": "walk_in"}),
    ];
    if r.chance(0.7) {
        let month = (day * (9.0 + r.unit() * 6.0) / round).round() * round;
        out.push(json!({"product": "hot_desk_month", "price": month, "currency": c.currency, "booking": "request"}));
    }
    if r.chance(0.5) {
        let hour = (day * (0.5 + r.unit()) / round).round() * round;
        out.push(json!({"product": "meeting_room_hour", "price": hour.max(round), "currency": c.currency, "booking": "instant"}));
    }
    Value::Array(out)
}

fn pools(r: &mut Rng) -> Value {
    let mut out = vec![
        json!({"id": "hot", "kind": "hot_desk", "capacity": 6 + r.below(80), "access": "walk_in"}),
    ];
    if r.chance(0.5) {
        out.push(json!({"id": "fixed", "kind": "dedicated_desk", "capacity": 4 + r.below(40), "access": "book"}));
    }
    for n in 0..r.below(3) {
        out.push(json!({"id": format!("room-{}", n + 1), "kind": "meeting_room", "capacity": 4 + r.below(12), "access": "book"}));
    }
    if r.chance(0.4) {
        out.push(json!({"id": "booths", "kind": "phone_booth", "capacity": 1 + r.below(6), "access": "walk_in"}));
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use deskmesh_keys::{DeviceKey, Signer};

    use super::*;

    #[test]
    fn listings_and_edits_are_valid_varied_and_repeatable() {
        let ids: Vec<SpaceId> = (0..200)
            .map(|n| SpaceId::derive(&DeviceKey::from_seed(&[n as u8; 32]).public_key()))
            .collect();
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        let mut descriptions = std::collections::BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            let l = a.listing(id, i);
            l.validate().expect("a generated listing is valid");
            assert_eq!(l, b.listing(id, i), "the same seed gives the same listing");
            descriptions.insert(l.description.clone());
            let mut cur = l;
            for _ in 0..20 {
                let next = a.edit(&cur);
                next.validate().expect("an edited listing is valid");
                assert_eq!(next, b.edit(&cur));
                cur = next;
            }
        }
        assert!(
            descriptions.len() > 190,
            "descriptions repeat: {}",
            descriptions.len()
        );
    }
}
