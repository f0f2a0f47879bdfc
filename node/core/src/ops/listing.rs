//! This space's listing: showing it, editing it from a file's bytes, a whole listing or single fields,
//! and importing listings this node may sign for. Every edit is validated before anything is signed.

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::{Amenity, AmenityDetail, Listing};
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};

use crate::api::Bytes;
use crate::export::NOTES_KEY;
use crate::ingest::SignedItem;
use crate::node::{hex, Node};

/// The most bytes a listing file may have; the listing itself is limited to far less by validation.
pub const MAX_LISTING_FILE: u64 = 1024 * 1024;
/// The most bytes a file of listings to import may have.
pub const MAX_IMPORT_FILE: u64 = 64 * 1024 * 1024;

/// How a listing file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    Json,
    Toml,
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
        };
        parsed.map_err(|e| anyhow!("{}: {e}", self.name))
    }

    fn text(&self) -> anyhow::Result<&str> {
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
                Some(hex(&id))
            }
            None => None,
        };
        Ok(EditReport {
            space: listing.id.clone(),
            name: listing.name.clone(),
            change: id,
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
        let mut listing = match &edit.base {
            Some(ListingBase::File(file)) => {
                let l = file.listing()?;
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
            None => self.current_listing(&space)?.ok_or_else(|| {
                anyhow!("this space has no listing yet; start with `deskmesh space edit --file listing.json`")
            })?,
        };
        edit.fields.apply(&mut listing);
        listing
            .validate()
            .map_err(|e| anyhow!("the listing is not valid: {e}"))?;
        self.publish_listing(&listing, now)
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

    /// Imports one listing or an array of them (the JSON `space show --json` and `export --format json`
    /// print), each for a space this node may sign for. Everything is validated before anything is
    /// written, so a bad file changes nothing.
    pub fn import_listings(
        &mut self,
        file: &FileBytes,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ImportReport> {
        let value: serde_json::Value = serde_json::from_str(file.text()?)
            .map_err(|e| anyhow!("{} is not valid JSON: {e}", file.name))?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let roster = self.require_roster()?;
        let mut listings = Vec::new();
        for (i, mut item) in items.into_iter().enumerate() {
            // What an export says of a listing (verified facts, a revocation) is not part of it.
            if let Some(m) = item.as_object_mut() {
                m.remove(NOTES_KEY);
            }
            let l = Listing::from_value(item)
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
            listings.push(l);
        }
        let mut report = ImportReport::default();
        for l in &listings {
            report.listings.push(self.publish_listing(l, now)?);
        }
        Ok(report)
    }
}
