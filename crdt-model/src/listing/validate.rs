//! The rules a listing must follow beyond its shape: ranges, sizes, syntaxes and consistency.
//!
//! Rules are checked in field order and every broken one is reported as a [`FieldError`] whose path names
//! the field. Limits live in [`limits`] so the CLI and the TUI can quote them.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::{human_size, FieldError, Listing};
use crate::hours;

/// The size and count limits a listing must respect.
pub mod limits {
    /// The whole listing as compact JSON, and any input text it is read from.
    pub const MAX_LISTING_BYTES: usize = 64 * 1024;
    /// Characters in a name.
    pub const MAX_NAME_CHARS: usize = 200;
    /// Bytes in a description (UTF-8).
    pub const MAX_DESCRIPTION_BYTES: usize = 8 * 1024;
    /// Bytes in free-text notes and in an opening hours expression.
    pub const MAX_NOTES_BYTES: usize = 2 * 1024;
    /// Characters in short text fields: city, street, postcode, level, phone, ids.
    pub const MAX_SHORT_CHARS: usize = 200;
    /// Characters in a website address or an e-mail address.
    pub const MAX_CONTACT_CHARS: usize = 254;
    pub const MAX_TRANSLATIONS: usize = 32;
    pub const MAX_OFFERS: usize = 32;
    pub const MAX_SEAT_POOLS: usize = 64;
    /// Seats in one pool, and accessible desks in a space.
    pub const MAX_POOL_CAPACITY: u32 = 10_000;
    /// A price, in major units of any currency.
    pub const MAX_PRICE: f64 = 1e9;
    /// A measured internet speed in Mbit/s.
    pub const MAX_MBPS: f64 = 100_000.0;
    /// Free days per visit under a reciprocity scheme.
    pub const MAX_FREE_DAYS: u16 = 366;
    /// A size in centimetres (steps, doors, lift cabins).
    pub const MAX_CM: u16 = 1_000;
}

use limits::*;

/// The top-level field names, for `provenance.by_field` keys.
const TOP_LEVEL_FIELDS: &[&str] = &[
    "name",
    "description",
    "translations",
    "category",
    "location",
    "contact",
    "opening_hours",
    "member_access_hours",
    "offers",
    "reciprocity",
    "internet",
    "power",
    "noise",
    "amenities",
    "accessibility",
    "policies",
    "seat_pools",
    "external_ids",
];

/// Officially assigned ISO 3166-1 alpha-2 codes, plus `XK` (Kosovo), which is user-assigned but used by
/// the EU, OSM and most address data.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
    HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
    KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
    NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
    RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
    VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// Whether `code` is an ISO 3166-1 alpha-2 country code (upper case).
pub(crate) fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split_ascii_whitespace().any(|c| c == code)
}

struct Checker {
    out: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A name: a short text without bidirectional controls or invisible characters, which could make it
    /// display as something else (an override can reverse "Kanalwerk" on screen).
    fn name(&mut self, path: &str, s: &str) {
        let before = self.out.len();
        self.short_text(path, s, MAX_NAME_CHARS);
        if self.out.len() == before {
            if let Some(c) = s.chars().find(|c| is_hidden(*c)) {
                self.fail(
                    path,
                    format!(
                        "must not contain U+{:04X} ({}): names must display as they are stored",
                        u32::from(c),
                        hidden_kind(c)
                    ),
                );
            }
        }
    }

    /// A text field that must not be empty and must fit in `max` characters, without control characters.
    fn short_text(&mut self, path: &str, s: &str, max: usize) {
        if s.trim().is_empty() {
            self.fail(path, "must not be empty");
        } else if s.chars().count() > max {
            self.fail(
                path,
                format!(
                    "is {} characters, over the {max}-character limit",
                    s.chars().count()
                ),
            );
        } else if s.chars().any(char::is_control) {
            self.fail(path, "must not contain control characters or line breaks");
        }
    }

    /// A long text field: limited in bytes; line breaks and tabs allowed, other control characters not.
    fn long_text(&mut self, path: &str, s: &str, max_bytes: usize) {
        if s.len() > max_bytes {
            self.fail(
                path,
                format!(
                    "is {} ({} bytes), over the {} limit",
                    human_size(s.len()),
                    s.len(),
                    human_size(max_bytes)
                ),
            );
        } else if s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            self.fail(
                path,
                "must not contain control characters other than line breaks and tabs",
            );
        }
    }

    fn range(&mut self, path: &str, v: f64, lo: f64, hi: f64) {
        if !v.is_finite() {
            self.fail(path, "must be a finite number");
        } else if v < lo || v > hi {
            self.fail(path, format!("{v} is out of range {lo}..{hi}"));
        }
    }

    fn cm(&mut self, path: &str, v: Option<u16>) {
        if let Some(v) = v {
            if v > MAX_CM {
                self.fail(path, format!("{v} cm is more than the {MAX_CM} cm limit"));
            }
        }
    }

    fn hours(&mut self, path: &str, text: Option<&str>) {
        let Some(text) = text else { return };
        if text.len() > MAX_NOTES_BYTES {
            self.fail(
                path,
                format!(
                    "is {} bytes, over the {MAX_NOTES_BYTES}-byte limit",
                    text.len()
                ),
            );
        } else if text.trim().is_empty() {
            self.fail(
                path,
                "must not be empty; leave it out when the hours are unknown",
            );
        } else if let Err(why) = hours::check_syntax(text) {
            self.fail(
                path,
                format!("{text:?} is not valid OSM opening_hours syntax ({why})"),
            );
        }
    }
}

pub(super) fn problems(l: &Listing) -> Vec<FieldError> {
    let mut c = Checker { out: Vec::new() };

    c.name("name", &l.name);
    c.long_text("description", &l.description, MAX_DESCRIPTION_BYTES);

    if l.translations.len() > MAX_TRANSLATIONS {
        c.fail(
            "translations",
            format!(
                "has {} languages, over the limit of {MAX_TRANSLATIONS}",
                l.translations.len()
            ),
        );
    }
    for (lang, t) in &l.translations {
        let path = format!("translations.{lang}");
        if !is_language_tag(lang) {
            c.fail(
                &path,
                format!("{lang:?} is not a BCP 47 language tag such as \"pt\" or \"fr-CA\""),
            );
        }
        if t.name.is_none() && t.description.is_none() {
            c.fail(&path, "has neither a name nor a description");
        }
        if let Some(n) = &t.name {
            c.name(&format!("{path}.name"), n);
        }
        if let Some(d) = &t.description {
            c.long_text(&format!("{path}.description"), d, MAX_DESCRIPTION_BYTES);
        }
    }

    let loc = &l.location;
    c.range("location.lat", loc.lat, -90.0, 90.0);
    c.range("location.lon", loc.lon, -180.0, 180.0);
    if loc.lat == 0.0 && loc.lon == 0.0 {
        c.fail(
            "location",
            "0, 0 is in the sea off West Africa; give the space's own lat and lon (a map's \"what's here\" shows them)",
        );
    }
    if let Some(s) = &loc.address.street {
        c.short_text("location.address.street", s, MAX_SHORT_CHARS);
    }
    c.short_text("location.address.city", &loc.address.city, MAX_SHORT_CHARS);
    if let Some(p) = &loc.address.postcode {
        c.short_text("location.address.postcode", p, 32);
    }
    let country = &loc.address.country;
    if !is_country(country) {
        let hint = match country.as_str() {
            "UK" => " (the United Kingdom is \"GB\")",
            _ if is_country(&country.to_ascii_uppercase()) => " (codes are upper case)",
            _ => "",
        };
        c.fail(
            "location.address.country",
            format!("{country:?} is not an ISO 3166-1 alpha-2 country code{hint}"),
        );
    }
    if let Some(level) = &loc.level {
        c.short_text("location.level", level, 32);
    }
    if chrono_tz::Tz::from_str(&loc.timezone).is_err() {
        c.fail(
            "location.timezone",
            format!(
                "{:?} is not a known IANA time zone such as \"Europe/Lisbon\"",
                loc.timezone
            ),
        );
    }

    if let Some(w) = &l.contact.website {
        if let Err(why) = check_website(w) {
            c.fail("contact.website", format!("{w:?} {why}"));
        }
    }
    if let Some(e) = &l.contact.email {
        if let Err(why) = check_email(e) {
            c.fail("contact.email", format!("{e:?} {why}"));
        }
    }
    if let Some(p) = &l.contact.phone {
        if let Err(why) = check_phone(p) {
            c.fail("contact.phone", format!("{p:?} {why}"));
        }
    }

    c.hours("opening_hours", l.opening_hours.as_deref());
    c.hours("member_access_hours", l.member_access_hours.as_deref());

    if l.offers.len() > MAX_OFFERS {
        c.fail(
            "offers",
            format!(
                "has {} offers, over the limit of {MAX_OFFERS}",
                l.offers.len()
            ),
        );
    }
    for (i, o) in l.offers.iter().enumerate() {
        let path = format!("offers[{i}]");
        if !o.price.is_finite() {
            c.fail(format!("{path}.price"), "must be a finite number");
        } else if o.price < 0.0 {
            c.fail(format!("{path}.price"), format!("{} is negative", o.price));
        } else if o.price > MAX_PRICE {
            c.fail(
                format!("{path}.price"),
                format!("{} is over the limit of {MAX_PRICE}", o.price),
            );
        }
        if !(o.currency.len() == 3 && o.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            c.fail(
                format!("{path}.currency"),
                format!(
                    "{:?} is not an ISO 4217 code of three upper-case letters such as \"EUR\"",
                    o.currency
                ),
            );
        }
    }

    if let Some(d) = l.reciprocity.free_days_per_visit {
        if d > MAX_FREE_DAYS {
            c.fail(
                "reciprocity.free_days_per_visit",
                format!("{d} is over the limit of {MAX_FREE_DAYS}"),
            );
        }
    }

    if let Some(v) = l.internet.down_mbps {
        c.range("internet.down_mbps", v, 0.0, MAX_MBPS);
    }
    if let Some(v) = l.internet.up_mbps {
        c.range("internet.up_mbps", v, 0.0, MAX_MBPS);
    }

    check_accessibility(&mut c, l);

    if l.seat_pools.len() > MAX_SEAT_POOLS {
        c.fail(
            "seat_pools",
            format!(
                "has {} pools, over the limit of {MAX_SEAT_POOLS}",
                l.seat_pools.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, p) in l.seat_pools.iter().enumerate() {
        let path = format!("seat_pools[{i}]");
        if !is_pool_id(&p.id) {
            c.fail(
                format!("{path}.id"),
                format!(
                    "{:?} must be 1 to 32 characters of a-z, 0-9, '_' and '-'",
                    p.id
                ),
            );
        } else if !seen.insert(p.id.as_str()) {
            c.fail(
                format!("{path}.id"),
                format!(
                    "{:?} is used by an earlier pool; pool ids must be unique",
                    p.id
                ),
            );
        }
        if p.capacity == 0 {
            c.fail(
                format!("{path}.capacity"),
                "must be at least 1; a pool with no seats says nothing, so leave it out",
            );
        } else if p.capacity > MAX_POOL_CAPACITY {
            c.fail(
                format!("{path}.capacity"),
                format!("{} is over the limit of {MAX_POOL_CAPACITY}", p.capacity),
            );
        }
        if let Some(a) = p.accessible_capacity {
            if a > p.capacity {
                c.fail(
                    format!("{path}.accessible_capacity"),
                    format!("{a} is more than the pool's capacity of {}", p.capacity),
                );
            }
        }
    }

    if let Some(osm) = &l.external_ids.osm {
        if !is_osm_id(osm) {
            c.fail(
                "external_ids.osm",
                format!("{osm:?} is not an OSM element such as \"node/123\", \"way/123\" or \"relation/123\""),
            );
        }
    }
    if let Some(q) = &l.external_ids.wikidata {
        let ok = q.len() <= 16
            && q.strip_prefix('Q').is_some_and(|n| {
                !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
            });
        if !ok {
            c.fail(
                "external_ids.wikidata",
                format!("{q:?} is not a Wikidata item id such as \"Q42\""),
            );
        }
    }

    for field in l.provenance.by_field.keys() {
        if !TOP_LEVEL_FIELDS.contains(&field.as_str()) {
            c.fail(
                format!("provenance.by_field.{field}"),
                format!(
                    "{field:?} is not a listing field; expected one of: {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            );
        }
    }

    // The whole-listing limit last, so that an oversized field is named by its own rule first.
    if c.out.is_empty() {
        let size = serde_json::to_vec(l).map_or(0, |v| v.len());
        if size > MAX_LISTING_BYTES {
            c.fail(
                "listing",
                format!(
                    "is {} ({size} bytes) as JSON, over the {} limit",
                    human_size(size),
                    human_size(MAX_LISTING_BYTES)
                ),
            );
        }
    }
    c.out
}

fn check_accessibility(c: &mut Checker, l: &Listing) {
    let a = &l.accessibility;
    if let Some(e) = &a.entrance {
        c.cm("accessibility.entrance.step_height_cm", e.step_height_cm);
        c.cm("accessibility.entrance.door_width_cm", e.door_width_cm);
        if let (Some(true), Some(h)) = (e.step_free, e.step_height_cm) {
            if h > 0 {
                c.fail(
                    "accessibility.entrance",
                    format!("step_free is true but step_height_cm is {h}"),
                );
            }
        }
    }
    if let Some(e) = &a.elevator {
        c.cm("accessibility.elevator.cabin_width_cm", e.cabin_width_cm);
        c.cm("accessibility.elevator.cabin_depth_cm", e.cabin_depth_cm);
        if e.present == Some(false) && e.working.is_some() {
            c.fail(
                "accessibility.elevator",
                "present is false, so working must be left out",
            );
        }
    }
    if let Some(d) = &a.accessible_desks {
        if let Some(n) = d.count {
            if n > MAX_POOL_CAPACITY {
                c.fail(
                    "accessibility.accessible_desks.count",
                    format!("{n} is over the limit of {MAX_POOL_CAPACITY}"),
                );
            }
        }
    }
    if let Some(n) = &a.notes {
        c.long_text("accessibility.notes", n, MAX_NOTES_BYTES);
    }
}

/// Characters that change how text around them displays, or do not display at all: bidirectional
/// controls (embeddings, overrides, isolates, marks) and invisible characters (zero-width space, word
/// joiner, invisible operators, byte order mark, soft hyphen, fillers, tags). The zero-width joiner and
/// non-joiner are not among them: some scripts and emoji need them.
pub fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

fn hidden_kind(c: char) -> &'static str {
    match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => "a bidirectional control",
        _ => "an invisible character",
    }
}

/// Text as it is safe to show: bidirectional controls, invisible characters and control characters are
/// written as `<U+202E>`, so a name displays as what it is, whatever an older node accepted.
pub fn for_display(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| is_hidden(c) || c.is_control()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden(c) || c.is_control() {
            out.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `id` is a valid seat pool id: `a-z 0-9 _ -`, 1 to 32 characters (safe in file names, URLs and
/// store keys).
pub fn is_pool_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A BCP 47 tag in the simple form people write: a 2-3 letter language, then subtags of 2-8 letters or
/// digits ("pt", "pt-BR", "zh-Hant-TW").
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()));
    lang_ok
        && tag.len() <= 35
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn is_osm_id(s: &str) -> bool {
    let Some((kind, num)) = s.split_once('/') else {
        return false;
    };
    matches!(kind, "node" | "way" | "relation")
        && (1..=20).contains(&num.len())
        && !num.starts_with('0')
        && num.bytes().all(|b| b.is_ascii_digit())
}

fn check_website(w: &str) -> Result<(), &'static str> {
    if w.chars().count() > MAX_CONTACT_CHARS * 8 {
        return Err("is too long for a web address");
    }
    let rest = w
        .strip_prefix("https://")
        .or_else(|| w.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if w.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    if !is_domain(host) {
        return Err("does not have a plausible host name such as example.org");
    }
    Ok(())
}

fn check_email(e: &str) -> Result<(), &'static str> {
    if e.chars().count() > MAX_CONTACT_CHARS {
        return Err("is too long for an e-mail address");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let (local, domain) = e
        .rsplit_once('@')
        .ok_or("is not an e-mail address: it has no '@'")?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err("does not have a plausible part before the '@'");
    }
    if !is_domain(domain) {
        return Err("does not have a plausible domain such as example.org after the '@'");
    }
    Ok(())
}

/// Labels of letters, digits and '-' (or any non-ASCII, for internationalised names) joined by dots, with
/// at least two labels and a top-level label of at least two characters.
fn is_domain(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|t| t.chars().count() >= 2)
}

fn check_phone(p: &str) -> Result<(), &'static str> {
    if p.chars().count() > 32 {
        return Err("is too long for a phone number");
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.' | '/'))
    {
        return Err("may only contain digits, spaces and + - ( ) . /");
    }
    if p.rfind('+').is_some_and(|i| i > 0) {
        return Err("may only have '+' at the start");
    }
    let digits = p.chars().filter(char::is_ascii_digit).count();
    if !(4..=17).contains(&digits) {
        return Err("does not have between 4 and 17 digits");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;

    #[test]
    fn country_list_is_the_iso_list_plus_kosovo() {
        let codes: Vec<&str> = COUNTRIES.split_ascii_whitespace().collect();
        assert_eq!(codes.len(), 250, "249 assigned codes plus XK");
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, codes, "sorted and without duplicates");
        for c in ["PT", "DE", "CA", "KE", "AU", "AR", "EE", "JP", "GB", "XK"] {
            assert!(is_country(c), "{c}");
        }
        for c in ["UK", "EU", "pt", "POR", ""] {
            assert!(!is_country(c), "{c}");
        }
    }

    #[test]
    fn contact_plausibility() {
        assert!(check_website("https://example.org").is_ok());
        assert!(check_website("http://cowork.example.pt/pt/?a=1#x").is_ok());
        assert!(check_website("https://user@host.example:8080/x").is_ok());
        assert!(check_website("example.org").is_err());
        assert!(check_website("https://localhost").is_err());
        assert!(check_website("https://exa mple.org").is_err());
        assert!(check_website("ftp://example.org").is_err());
        assert!(check_email("hello@cowork.example").is_ok());
        assert!(check_email("olá@café.example").is_ok());
        assert!(check_email("hello.example.org").is_err());
        assert!(check_email("@example.org").is_err());
        assert!(check_email("a@b@example.org").is_err());
        assert!(check_email("a@example").is_err());
        assert!(check_phone("+351 21 123 4567").is_ok());
        assert!(check_phone("(03) 9123-4567").is_ok());
        assert!(check_phone("12").is_err());
        assert!(check_phone("351+21").is_err());
        assert!(check_phone("call us").is_err());
    }

    #[test]
    fn hidden_characters_are_refused_in_names_and_escaped_for_display() {
        let mut c = Checker { out: Vec::new() };
        c.name("name", "Kanal\u{202E}krewlanaK");
        c.name("name", "Desk\u{200B}s");
        c.name("name", "می\u{200C}خواهم");
        c.name("name", "Café Ünïcode 町家");
        assert_eq!(c.out.len(), 2, "{:?}", c.out);
        assert!(c.out[0]
            .message
            .contains("U+202E (a bidirectional control)"));
        assert!(c.out[1].message.contains("U+200B (an invisible character)"));
        assert_eq!(for_display("A\u{202E}B\u{7}"), "A<U+202E>B<U+0007>");
        assert!(matches!(
            for_display("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn small_syntaxes() {
        assert!(is_pool_id("main-floor_2"));
        assert!(!is_pool_id(""));
        assert!(!is_pool_id("Main"));
        assert!(!is_pool_id(&"a".repeat(33)));
        assert!(is_language_tag("pt"));
        assert!(is_language_tag("fr-CA"));
        assert!(is_language_tag("zh-Hant-TW"));
        assert!(!is_language_tag("PT"));
        assert!(!is_language_tag("portuguese"));
        assert!(!is_language_tag("pt_BR"));
        assert!(is_osm_id("node/123"));
        assert!(!is_osm_id("node/0123"));
        assert!(!is_osm_id("n123"));
        assert!(!is_osm_id("area/1"));
    }
}
