//! The space listing: its fields, vocabularies, accessibility block and seat pools, its canonical JSON form
//! and its validation.
//!
//! JSON is the canonical form: `deskmesh space show --json` prints [`Listing::to_json_pretty`] and
//! `deskmesh space edit --file` reads it back with [`Listing::from_json`] (or the same shape in TOML with
//! [`Listing::from_toml`]), so a listing round-trips unchanged. Every entry point parses, normalises
//! (coordinates to 6 decimals, prices to 3, speeds to 1) and validates, and reports every problem at once,
//! each as one sentence that starts with the field path (`location.lat: 123 is out of range -90..90`).
//! [`template`] writes the commented TOML a new space starts its first listing from.
//!
//! Field names and vocabularies follow the standard that owns each part (OSM tags, A11yJSON, GBFS, schema.org);
//! see `listing-schema.md` in the shared reference notes. `node/sample/alliance.json` holds twelve example
//! listings with placeholder ids (`sp-sample...`), which the node replaces with the ids of keys it generates
//! when it loads the sample.

mod parts;
mod shape;
mod template;
mod validate;
mod vocab;

use std::collections::BTreeMap;
use std::fmt;

use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};

pub use parts::{
    Accessibility, AccessibleDesks, Address, Amenities, AmenityDetail, Contact, Date, Elevator,
    Entrance, ExternalIds, Internet, Location, Offer, Policies, Provenance, Reciprocity, Restroom,
    SeatPool, Translation,
};
pub use template::template;
pub use validate::{for_display, is_hidden, is_pool_id, limits};
pub(crate) use vocab::vocabulary;
pub use vocab::{
    Amenity, Booking, Category, Dogs, Fee, Noise, PoolAccess, PoolKind, Power, Product, Ramp,
    Smoking, UnknownValue, Wheelchair,
};

use crate::hours::{Hours, HoursError};

/// A listing that could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// The input text is over [`limits::MAX_LISTING_BYTES`]; refused before parsing.
    #[error("listing is {} ({size} bytes), over the {} limit", human_size(*size), human_size(*limit))]
    TooLarge { size: usize, limit: usize },
    /// The text is not a listing of the right shape (syntax, types, unknown fields or values).
    #[error("{message}")]
    Parse { message: String },
    /// The listing has the right shape but a field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// More than one problem: every one, in field order ("3 problems:" and a line each).
    #[error("{}", shape::list(.0))]
    Problems(Vec<FieldError>),
}

impl ListingError {
    /// One problem as [`ListingError::Invalid`], several as [`ListingError::Problems`].
    fn problems(mut all: Vec<FieldError>) -> Self {
        if all.len() == 1 {
            Self::Invalid(all.remove(0))
        } else {
            Self::Problems(all)
        }
    }

    /// Every field problem this error holds (none for a size or syntax error).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid(e) => vec![e.clone()],
            Self::Problems(all) => all.clone(),
            Self::TooLarge { .. } | Self::Parse { .. } => Vec::new(),
        }
    }
}

/// One broken rule, with the path of the field it is about (`seat_pools[1].id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// One space's listing. See the module docs for the JSON form and `node/sample/alliance.json` for examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Stable id derived from the space's founding key (GBFS id rules).
    pub id: SpaceId,
    pub name: String,
    /// Plain text; paragraphs separated by blank lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Name and description in other languages, keyed by BCP 47 tag ("pt", "fr-CA").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, Translation>,
    #[serde(default)]
    pub category: Category,
    pub location: Location,
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub contact: Contact,
    /// Public opening hours in OSM `opening_hours` syntax; absent means unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    /// When members may get in (often `24/7`), same syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_access_hours: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<Offer>,
    #[serde(default, skip_serializing_if = "Reciprocity::is_empty")]
    pub reciprocity: Reciprocity,
    #[serde(default, skip_serializing_if = "Internet::is_empty")]
    pub internet: Internet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    #[serde(default, skip_serializing_if = "Amenities::is_empty")]
    pub amenities: Amenities,
    #[serde(default, skip_serializing_if = "Accessibility::is_empty")]
    pub accessibility: Accessibility,
    #[serde(default, skip_serializing_if = "Policies::is_empty")]
    pub policies: Policies,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seat_pools: Vec<SeatPool>,
    #[serde(default, skip_serializing_if = "ExternalIds::is_empty")]
    pub external_ids: ExternalIds,
    #[serde(default, skip_serializing_if = "Provenance::is_empty")]
    pub provenance: Provenance,
}

impl Listing {
    /// The smallest useful listing: everything else unknown or empty. Not validated.
    pub fn new_minimal(
        id: SpaceId,
        name: impl Into<String>,
        lat: f64,
        lon: f64,
        city: impl Into<String>,
        country: impl Into<String>,
        timezone: impl Into<String>,
    ) -> Self {
        let mut l = Self {
            id,
            name: name.into(),
            description: String::new(),
            translations: BTreeMap::new(),
            category: Category::default(),
            location: Location {
                lon,
                lat,
                address: Address {
                    street: None,
                    city: city.into(),
                    postcode: None,
                    country: country.into(),
                },
                level: None,
                timezone: timezone.into(),
            },
            contact: Contact::default(),
            opening_hours: None,
            member_access_hours: None,
            offers: Vec::new(),
            reciprocity: Reciprocity::default(),
            internet: Internet::default(),
            power: None,
            noise: None,
            amenities: Amenities::default(),
            accessibility: Accessibility::default(),
            policies: Policies::default(),
            seat_pools: Vec::new(),
            external_ids: ExternalIds::default(),
            provenance: Provenance::default(),
        };
        l.normalise();
        l
    }

    /// Parse JSON, normalise and validate, reporting every problem at once (see [`ListingError`]).
    pub fn from_json(text: &str) -> Result<Self, ListingError> {
        check_input_size(text.len())?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ListingError::Parse {
                message: format!("listing: {}", json_message(&e)),
            })?;
        Self::from_value(value)
    }

    /// Parse TOML of the same shape as the JSON, normalise and validate, reporting every problem at once.
    /// TOML's native dates are accepted where the JSON has `"YYYY-MM-DD"` strings.
    pub fn from_toml(text: &str) -> Result<Self, ListingError> {
        check_input_size(text.len())?;
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let (line, col) = line_col(text, span.start);
                    format!(" (line {line}, column {col})")
                })
                .unwrap_or_default();
            // toml's messages can span lines, and are empty for some syntax errors.
            let msg = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let msg = if msg.is_empty() {
                "invalid TOML syntax".to_string()
            } else {
                msg
            };
            ListingError::Parse {
                message: format!("listing: {msg}{at}"),
            }
        })?;
        Self::from_value(shape::toml_to_json(value))
    }

    /// Read a JSON value (a file's, or as stored or sent by other parts of deskmesh), normalise and
    /// validate. Every shape problem (missing, unknown or mistyped fields, values outside a vocabulary) is
    /// reported at once; a listing of the right shape then has every broken rule reported at once.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ListingError> {
        let shape = shape::problems(&value);
        if !shape.is_empty() {
            return Err(ListingError::problems(shape));
        }
        let listing: Self =
            serde_path_to_error::deserialize(value).map_err(|e| ListingError::Parse {
                message: format!("{}: {}", path_text(e.path()), e.inner()),
            })?;
        listing.finish()
    }

    /// The canonical JSON value (defaults and unknowns left out).
    pub fn to_value(&self) -> serde_json::Value {
        // Serialising cannot fail: every map in a listing has string keys (serde_json's only failure
        // besides I/O), and non-finite numbers become null rather than an error.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The canonical JSON text, compact.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The canonical JSON text, indented for people (`space show --json`).
    pub fn to_json_pretty(&self) -> String {
        // A Value's Display cannot fail; `{:#}` indents it.
        format!("{:#}", self.to_value())
    }

    /// Bring values to their canonical precision, so that equal facts compare equal after a round trip:
    /// coordinates to 6 decimals, prices to 3, speeds to 1.
    pub fn normalise(&mut self) {
        self.location.lat = round_to(self.location.lat, 6);
        self.location.lon = round_to(self.location.lon, 6);
        for o in &mut self.offers {
            o.price = round_to(o.price, 3);
        }
        self.internet.down_mbps = self.internet.down_mbps.map(|v| round_to(v, 1));
        self.internet.up_mbps = self.internet.up_mbps.map(|v| round_to(v, 1));
    }

    /// The first broken rule, if any. See [`Listing::problems`] for all of them.
    pub fn validate(&self) -> Result<(), ListingError> {
        match self.problems().into_iter().next() {
            Some(p) => Err(ListingError::Invalid(p)),
            None => Ok(()),
        }
    }

    /// Every broken rule, in field order (for editors that show them all at once).
    pub fn problems(&self) -> Vec<FieldError> {
        validate::problems(self)
    }

    /// The public opening hours compiled for evaluation in the space's time zone, with the country's public
    /// holidays for `PH` rules; `None` when the hours are unknown.
    pub fn hours(&self) -> Option<Result<Hours, HoursError>> {
        let text = self.opening_hours.as_deref()?;
        Some(self.compile_hours(text))
    }

    /// The member access hours, compiled like [`Listing::hours`].
    pub fn member_hours(&self) -> Option<Result<Hours, HoursError>> {
        let text = self.member_access_hours.as_deref()?;
        Some(self.compile_hours(text))
    }

    fn compile_hours(&self, text: &str) -> Result<Hours, HoursError> {
        Hours::parse(text, &self.location.timezone)
            .map(|h| h.with_country(&self.location.address.country))
    }

    /// The cheapest day pass, if the space sells one.
    pub fn day_pass(&self) -> Option<&Offer> {
        self.offers
            .iter()
            .filter(|o| o.product == Product::DayPass)
            .min_by(|a, b| a.price.total_cmp(&b.price))
    }

    fn finish(mut self) -> Result<Self, ListingError> {
        self.normalise();
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(ListingError::problems(problems));
        }
        Ok(self)
    }
}

impl fmt::Display for Listing {
    /// The name, city and id, for logs and one-line summaries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}) {}",
            self.name, self.location.address.city, self.location.address.country, self.id
        )
    }
}

fn check_input_size(size: usize) -> Result<(), ListingError> {
    if size > limits::MAX_LISTING_BYTES {
        return Err(ListingError::TooLarge {
            size,
            limit: limits::MAX_LISTING_BYTES,
        });
    }
    Ok(())
}

fn path_text(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        "listing".to_string()
    } else {
        s
    }
}

/// serde_json's message, with its position written the way the rest of our messages put it.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    if e.line() == 0 {
        return full;
    }
    // serde_json appends " at line L column C"; keep the message and re-add the position once.
    let msg = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i]);
    format!("{msg} (line {}, column {})", e.line(), e.column())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn round_to(v: f64, decimals: i32) -> f64 {
    if !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(decimals);
    let r = (v * scale).round() / scale;
    // Avoid "-0" in the JSON for tiny negative values.
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// A byte count for people: "812 bytes", "70.3 KiB", "5.0 MiB".
pub(crate) fn human_size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        let k = b / KIB;
        if k.fract() == 0.0 {
            format!("{k:.0} KiB")
        } else {
            format!("{k:.1} KiB")
        }
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests;
