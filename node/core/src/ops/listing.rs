//! This space's listing: showing it, editing it from a file's bytes, a whole listing or single fields,
//! and importing listings this node may sign for. Every edit is validated before anything is signed.

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::{Amenity, AmenityDetail, Listing};
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};

use crate::api::Bytes;
use crate::export::NOTES_KEY;
use crate::formats::{self, Defaults};
use crate::ingest::SignedItem;
use crate::node::{hex, Node};

/// The most bytes a listing file may have; the listing itself is limited to far less by validation.
pub const MAX_LISTING_FILE: u64 = 1024 * 1024;
/// The most bytes a file of listings to import may have.
pub const MAX_IMPORT_FILE: u64 = 64 * 1024 * 1024;

/// How a file of listings is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// One listing or an array of them, the form `space show --json` and `export --format json` print.
    Json,
    /// One listing of the same shape as the JSON.
    Toml,
    /// RFC 7946 GeoJSON: what `export --format geojson` writes, or OSM-tagged features.
    Geojson,
    /// One row per space, as `export --format csv` writes it.
    Csv,
    /// OSM XML, OSM API JSON or Overpass JSON.
    Osm,
    /// Told apart by the content ([`crate::formats::detect`]).
    Auto,
}

/// Bytes of a file a client read, with the name its messages should use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBytes {
    /// The path as the user gave it, or `standard input`.
    pub name: String,
    pub format: FileFormat,
    pub bytes: Bytes,
}

/// Where an edit starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListingBase {
    /// A listing file, parsed and validated by the node.
    File(FileBytes),
    /// A whole listing, such as the TUI's form.
    Listing(Box<Listing>),
    /// One space of a file in another format (OSM, GeoJSON, CSV, JSON), merged into the current listing.
    Import(ImportSource),
}

/// One entry of a file to start or update this space's listing from (`space edit --from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSource {
    pub file: FileBytes,
    /// Which entry, when the file holds several: an OSM id (`node/123`), a listing id, `#N` or the name.
    pub pick: Option<String>,
    /// City, country and time zone for data that lacks them.
    pub defaults: Defaults,
}

/// Single fields to set on top of the base.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldEdits {
    pub name: Option<String>,
    pub description: Option<String>,
    pub opening_hours: Option<String>,
    pub website: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub add_amenities: Vec<Amenity>,
    pub remove_amenities: Vec<Amenity>,
}

impl FieldEdits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply(&self, listing: &mut Listing) {
        if let Some(v) = &self.name {
            listing.name = v.clone();
        }
        if let Some(v) = &self.description {
            listing.description = v.clone();
        }
        if let Some(v) = &self.opening_hours {
            listing.opening_hours = Some(v.clone());
        }
        if let Some(v) = &self.website {
            listing.contact.website = Some(v.clone());
        }
        if let Some(v) = &self.email {
            listing.contact.email = Some(v.clone());
        }
        if let Some(v) = &self.phone {
            listing.contact.phone = Some(v.clone());
        }
        for a in &self.add_amenities {
            listing.amenities.insert(*a, AmenityDetail::default());
        }
        for a in &self.remove_amenities {
            listing.amenities.0.remove(a);
        }
    }
}

/// A change to this space's listing: a base (default: the current listing) and fields on top.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListingEdit {
    pub base: Option<ListingBase>,
    pub fields: FieldEdits,
}

/// What `space edit` and `import` report for one listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditReport {
    pub space: SpaceId,
    pub name: String,
    /// The signed change, or none when the listing already said exactly this.
    pub change: Option<String>,
    /// What the source file held that the listing has no field for (`key=value`), when it came from
    /// another format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped: Vec<String>,
    /// Guesses made while reading the source (`time zone taken from the country`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What importing listings reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub listings: Vec<EditReport>,
}

impl FileBytes {
    /// Parses the file as one listing, with the file's name in any error.
    pub fn listing(&self) -> anyhow::Result<Listing> {
        let text = self.text()?;
        let parsed = match self.format {
            FileFormat::Toml => Listing::from_toml(text),
            FileFormat::Json => match without_notes(text) {
                Some(stripped) => Listing::from_json(&stripped),
                None => Listing::from_json(text),
            },
            other => bail!(
                "{} is {other:?}, not a listing file; start from it with `space edit --from`",
                self.name
            ),
        };
        parsed.map_err(|e| anyhow!("{}: {e}", self.name))
    }

    /// Parses the file as this space's listing: a JSON listing without an `id` (a draft) is `space`'s.
    pub fn listing_for(&self, space: &SpaceId) -> anyhow::Result<Listing> {
        if self.format == FileFormat::Json {
            if let Ok(serde_json::Value::Object(mut m)) =
                serde_json::from_str::<serde_json::Value>(self.text()?)
            {
                if !m.contains_key("id") {
                    m.insert("id".into(), serde_json::json!(space.to_string()));
                    return Listing::from_value(serde_json::Value::Object(m))
                        .map_err(|e| anyhow!("{}: {e}", self.name));
                }
            }
        }
        self.listing()
    }

    pub(crate) fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.bytes.0)
            .map_err(|e| anyhow!("{} is not UTF-8 text: {e}", self.name))
    }
}

/// The JSON text without an export's `"deskmesh"` notes, when it is an object that has them.
fn without_notes(text: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.as_object_mut()?.remove(NOTES_KEY)?;
    Some(v.to_string())
}

impl Node {
    /// Signs `listing` into its space's document and stores the change through the ingest path.
    pub fn publish_listing(
        &mut self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> anyhow::Result<EditReport> {
        let roster = self.require_roster()?;
        let heads = roster.heads();
        let change = self.edit_doc(listing, heads, now)?;
        let id = match change {
            Some(change) => {
                let id = change.id()?;
                if let Err(e) = self.ingest_local(SignedItem::change(&change)) {
                    // The warm document holds the edit the store refused: drop it.
                    self.forget_doc(&listing.id);
                    return Err(e);
                }
                // Now and then the whole document, signed, so joiners need not replay the history.
                match self.checkpoint_due(&listing.id, now) {
                    Ok(Some(cp)) => {
                        if let Err(e) = self.ingest_local(SignedItem::checkpoint(&cp)) {
                            tracing::warn!(error = %e, "could not store a checkpoint of this space");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "could not checkpoint this space"),
                }
                Some(hex(&id))
            }
            None => None,
        };
        Ok(EditReport {
            space: listing.id.clone(),
            name: listing.name.clone(),
            change: id,
            unmapped: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// `space edit`: a base (a file, a whole listing, or the current listing) and fields on top,
    /// validated, then signed.
    pub fn space_edit(
        &mut self,
        edit: &ListingEdit,
        now: DateTime<Utc>,
    ) -> anyhow::Result<EditReport> {
        let space = self.require_space()?;
        let (mut unmapped, mut notes) = (Vec::new(), Vec::new());
        let mut listing = match &edit.base {
            Some(ListingBase::File(file)) => {
                let l = file.listing_for(&space)?;
                if l.id != space {
                    bail!(
                        "{} is the listing of {}, but this node signs for {}; change its \"id\"",
                        file.name,
                        l.id,
                        space
                    );
                }
                l
            }
            Some(ListingBase::Listing(l)) => {
                if l.id != space {
                    bail!("this node signs for {space}, not for {}", l.id);
                }
                (**l).clone()
            }
            Some(ListingBase::Import(source)) => {
                let (l, entry) = self.listing_from(&space, source)?;
                unmapped = entry.unmapped;
                notes = entry.notes;
                l
            }
            None => self.current_listing(&space)?.ok_or_else(|| {
                anyhow!("this space has no listing yet; start with `deskmesh space edit --file listing.json`")
            })?,
        };
        edit.fields.apply(&mut listing);
        listing
            .validate()
            .map_err(|e| anyhow!("the listing is not valid: {e}"))?;
        let mut report = self.publish_listing(&listing, now)?;
        report.unmapped = unmapped;
        report.notes = notes;
        Ok(report)
    }

    /// The listing of `space` (default: this node's) as the index holds it.
    pub fn space_show(&self, space: Option<&SpaceId>) -> anyhow::Result<Listing> {
        let space = match space {
            Some(s) => s.clone(),
            None => self.require_space()?,
        };
        self.current_listing(&space)?
            .ok_or_else(|| anyhow!("no listing for {space} yet"))
    }

    /// Imports the listings of a file (JSON, GeoJSON or CSV as `export` writes them), each for a space
    /// this node may sign for. Everything is validated before anything is written, so a bad file changes
    /// nothing. OSM data names no space: it is refused with a pointer to `space draft` and `space edit
    /// --from`.
    pub fn import_listings(
        &mut self,
        file: &FileBytes,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ImportReport> {
        let format = match file.format {
            FileFormat::Auto => formats::detect(&file.bytes.0),
            f => f,
        };
        if format == FileFormat::Osm {
            bail!(
                "{} is OpenStreetMap data, which names no deskmesh space; turn it into drafts with `deskmesh space draft --from {}` or start this space's listing with `deskmesh space edit --from {}`",
                file.name, file.name, file.name
            );
        }
        let file = FileBytes {
            format,
            ..file.clone()
        };
        let entries = formats::entries(&file, &Defaults::default())?;
        let roster = self.require_roster()?;
        let mut listings = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            if entry.value.get("id").is_none() {
                bail!(
                    "{}: listing #{} ({}) has no id; sign a draft with `deskmesh space edit --file` on the space's own node",
                    file.name,
                    i + 1,
                    entry.name().unwrap_or("no name")
                );
            }
            let l = Listing::from_value(entry.value)
                .map_err(|e| anyhow!("{}: listing #{}: {e}", file.name, i + 1))?;
            if let Err(d) = roster.state().may_sign(&self.public_key(), &l.id) {
                bail!(
                    "{}: listing #{} ({:?}) is for {}, which this node may not sign for: {d}",
                    file.name,
                    i + 1,
                    l.name,
                    l.id
                );
            }
            listings.push((l, entry.unmapped));
        }
        let mut report = ImportReport::default();
        for (l, unmapped) in &listings {
            let mut r = self.publish_listing(l, now)?;
            r.unmapped.clone_from(unmapped);
            report.listings.push(r);
        }
        Ok(report)
    }
}
