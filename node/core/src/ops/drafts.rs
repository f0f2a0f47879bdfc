//! Listings started from data that already exists: one entry of an OSM, GeoJSON, CSV or JSON file merged
//! into this space's listing (`space edit --from`), and a regional extract turned into one draft listing
//! per space (`space draft`), which a coordinator hands over with the invites and each space signs on its
//! own node with `space edit --file` (a draft has no `id`; the signing node gives it its own).

use anyhow::{anyhow, bail};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::SpaceId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::formats::{self, merge, Defaults, Entry};
use crate::node::Node;
use crate::ops::listing::{FileBytes, ImportSource};

/// What `space draft` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftRequest {
    pub file: FileBytes,
    pub defaults: Defaults,
}

/// One draft listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// The entry in the source (`node/123`, `#3`).
    pub key: String,
    pub name: Option<String>,
    /// The listing without an `id`: canonical when it is valid, as read when it is not.
    pub listing: Value,
    /// What must be fixed before the draft can be signed; empty when it is ready.
    pub problems: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What `space draft` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DraftReport {
    pub source: String,
    pub drafts: Vec<Draft>,
}

impl DraftReport {
    /// How many drafts can be signed as they are.
    pub fn ready(&self) -> usize {
        self.drafts.iter().filter(|d| d.problems.is_empty()).count()
    }
}

impl Node {
    /// One draft per space in the file. Writes nothing: drafts are files for people to hand over.
    pub fn drafts(&self, request: &DraftRequest) -> anyhow::Result<DraftReport> {
        let entries = formats::entries(&request.file, &request.defaults)?;
        // A stand-in id so a draft is checked like a listing; it is taken out again.
        let stand_in = SpaceId::derive(&self.public_key());
        let drafts = entries.into_iter().map(|e| draft(e, &stand_in)).collect();
        Ok(DraftReport {
            source: request.file.name.clone(),
            drafts,
        })
    }

    /// This space's listing with one entry of `source` merged over the current listing (or starting it),
    /// and the entry it used.
    pub fn listing_from(
        &self,
        space: &SpaceId,
        source: &ImportSource,
    ) -> anyhow::Result<(Listing, Entry)> {
        let name = &source.file.name;
        let entries = formats::entries(&source.file, &source.defaults)?;
        let entry = pick(entries, source.pick.as_deref(), name)?;
        let mut value = match self.current_listing(space)? {
            Some(l) => l.to_value(),
            None => json!({}),
        };
        let mut top = entry.value.clone();
        if let Value::Object(m) = &mut top {
            m.remove("id");
        }
        merge(&mut value, top);
        formats::set_path(&mut value, "id", json!(space.to_string()));
        let listing = Listing::from_value(value).map_err(|e| {
            anyhow!(
                "{name}: {} does not make a valid listing: {e}{}",
                entry.key,
                hint_for(&e.to_string())
            )
        })?;
        Ok((listing, entry))
    }
}

fn draft(e: Entry, stand_in: &SpaceId) -> Draft {
    let mut value = e.value.clone();
    formats::set_path(&mut value, "id", json!(stand_in.to_string()));
    let (listing, problems) = match Listing::from_value(value) {
        Ok(l) => {
            let mut v = l.to_value();
            if let Value::Object(m) = &mut v {
                m.remove("id");
            }
            (v, Vec::new())
        }
        Err(err) => {
            let mut v = e.value.clone();
            if let Value::Object(m) = &mut v {
                m.remove("id");
            }
            let fields = err.field_errors();
            let problems = if fields.is_empty() {
                let msg = err.to_string();
                vec![format!("{msg}{}", hint_for(&msg))]
            } else {
                fields
                    .iter()
                    .map(|f| format!("{f}{}", hint_for(&f.path)))
                    .collect()
            };
            (v, problems)
        }
    };
    Draft {
        key: e.key.clone(),
        name: e.name().map(str::to_string),
        listing,
        problems,
        unmapped: e.unmapped,
        notes: e.notes,
    }
}

/// What to do about the fields OSM data most often lacks (`what`: a field path or an error sentence).
fn hint_for(what: &str) -> &'static str {
    if what.contains("timezone") {
        " (give the time zone with --timezone, such as Europe/Lisbon)"
    } else if what.contains("country") {
        " (give the country with --country, such as PT)"
    } else if what.contains("city") {
        " (give the city with --city)"
    } else if what == "name" || what.contains("`name`") {
        " (the entry has no name tag)"
    } else {
        ""
    }
}

/// The entry `pick` names, or the only one.
fn pick(entries: Vec<Entry>, pick: Option<&str>, file: &str) -> anyhow::Result<Entry> {
    let listed = |es: &[&Entry]| {
        let mut names: Vec<String> = es
            .iter()
            .take(5)
            .map(|e| format!("{} ({})", e.key, e.name().unwrap_or("no name")))
            .collect();
        if es.len() > 5 {
            names.push(format!("and {} more", es.len() - 5));
        }
        names.join(", ")
    };
    match pick {
        None if entries.len() == 1 => Ok(entries
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{file} is empty"))?),
        None => {
            let all: Vec<&Entry> = entries.iter().collect();
            bail!(
                "{file} holds {} spaces; choose one with --pick: {}",
                entries.len(),
                listed(&all)
            )
        }
        Some(p) => {
            let found: Vec<&Entry> = entries.iter().filter(|e| e.matches(p)).collect();
            match found.len() {
                0 => bail!(
                    "{file} has no space {p:?}; it holds {}",
                    listed(&entries.iter().collect::<Vec<_>>())
                ),
                1 => {
                    let key = found[0].key.clone();
                    entries
                        .into_iter()
                        .find(|e| e.key == key)
                        .ok_or_else(|| anyhow!("{file} has no space {p:?}"))
                }
                _ => bail!(
                    "{p:?} matches {} spaces in {file}: {}; pick by OSM id or #N",
                    found.len(),
                    listed(&found)
                ),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::Bytes;
    use crate::export::ExportFormat;
    use crate::ops::listing::{FieldEdits, FileFormat, ListingBase, ListingEdit};
    use crate::testkit::{self, now};

    fn fixture(path: &str, format: FileFormat) -> FileBytes {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path);
        FileBytes {
            name: path.into(),
            format,
            bytes: Bytes(std::fs::read(full).unwrap()),
        }
    }

    fn from(file: FileBytes, pick: Option<&str>) -> ListingEdit {
        ListingEdit {
            base: Some(ListingBase::Import(ImportSource {
                file,
                pick: pick.map(str::to_string),
                defaults: Defaults::default(),
            })),
            fields: FieldEdits::default(),
        }
    }

    #[test]
    fn a_space_starts_its_listing_from_its_osm_entry_and_signs_a_draft_without_an_id() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Ribeira");
        let id = space.my_space().unwrap();
        let report = space
            .space_edit(
                &from(fixture("osm/api-node.json", FileFormat::Auto), None),
                now(),
            )
            .unwrap();
        assert!(report.change.is_some());
        let l = space.space_show(None).unwrap();
        assert_eq!(l.id, id);
        assert_eq!(l.name, "Ribeira Desks");
        assert_eq!(l.external_ids.osm.as_deref(), Some("node/7000001"));
        assert_eq!(l.seat_pools[0].capacity, 18);
        assert!(report.notes.iter().any(|n| n.contains("Europe/Lisbon")));

        // Several spaces in a file: one must be picked, and a wrong pick names what there is.
        let overpass = fixture("osm/overpass-lisbon.json", FileFormat::Osm);
        let err = space
            .space_edit(&from(overpass.clone(), None), now())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("holds 4 spaces; choose one with --pick"),
            "{err}"
        );
        let err = space
            .space_edit(&from(overpass.clone(), Some("node/1")), now())
            .unwrap_err();
        assert!(err.to_string().contains("has no space \"node/1\""), "{err}");
        // An update from OSM keeps what OSM does not say (the seat pools here).
        let r = space
            .space_edit(&from(overpass, Some("Miradouro Café Desks")), now())
            .unwrap();
        let l = space.space_show(None).unwrap();
        assert_eq!(l.name, "Miradouro Café Desks");
        assert_eq!(
            l.seat_pools[0].capacity, 18,
            "kept from the earlier listing"
        );
        assert!(
            r.unmapped.iter().any(|u| u.starts_with("cuisine=")),
            "{:?}",
            r.unmapped
        );

        // A draft (no id) is this space's listing when it signs it.
        let drafts = space
            .drafts(&DraftRequest {
                file: fixture("osm/api-berlin.osm", FileFormat::Osm),
                defaults: Defaults::default(),
            })
            .unwrap();
        let kanal = drafts.drafts.iter().find(|d| d.key == "node/3001").unwrap();
        assert!(kanal.problems.is_empty(), "{:?}", kanal.problems);
        assert!(kanal.listing.get("id").is_none());
        let edit = ListingEdit {
            base: Some(ListingBase::File(FileBytes {
                name: "kanal-desk.json".into(),
                format: FileFormat::Json,
                bytes: Bytes(kanal.listing.to_string().into_bytes()),
            })),
            fields: FieldEdits::default(),
        };
        space.space_edit(&edit, now()).unwrap();
        assert_eq!(space.space_show(None).unwrap().name, "Kanal Desk");
    }

    #[test]
    fn drafts_name_what_is_missing_and_defaults_fill_it() {
        let coordinator = testkit::coordinator();
        let file = fixture("osm/api-berlin.osm", FileFormat::Osm);
        let report = coordinator
            .drafts(&DraftRequest {
                file: file.clone(),
                defaults: Defaults::default(),
            })
            .unwrap();
        assert_eq!(report.drafts.len(), 2);
        assert_eq!(report.ready(), 1);
        let loft = report.drafts.iter().find(|d| d.key == "way/4001").unwrap();
        // Every missing field is named at once, each with the flag that supplies it.
        for flag in ["--city", "--country", "--timezone"] {
            assert!(
                loft.problems.iter().any(|p| p.contains(flag)),
                "{flag}: {:?}",
                loft.problems
            );
        }
        let report = coordinator
            .drafts(&DraftRequest {
                file,
                defaults: Defaults {
                    city: Some("Berlin".into()),
                    country: Some("DE".into()),
                    timezone: None,
                },
            })
            .unwrap();
        assert_eq!(report.ready(), 2, "{report:?}");
    }

    #[test]
    fn import_takes_what_export_writes_and_refuses_osm_with_a_pointer() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let mut listing = testkit::listing(&id, "Riverside");
        listing.description = "Line one,\n\"quoted\"; line two".into();
        space.publish_listing(&listing, now()).unwrap();
        for format in [ExportFormat::Csv, ExportFormat::Geojson, ExportFormat::Json] {
            let bytes = space.export(format, now()).unwrap();
            let report = space
                .import_listings(
                    &FileBytes {
                        name: format!("{format:?}"),
                        format: FileFormat::Auto,
                        bytes: Bytes(bytes),
                    },
                    now(),
                )
                .unwrap();
            assert_eq!(
                report.listings[0].change, None,
                "{format:?}: nothing lost, nothing changed"
            );
        }
        let err = space
            .import_listings(&fixture("osm/api-node.json", FileFormat::Auto), now())
            .unwrap_err();
        assert!(
            err.to_string().contains("deskmesh space draft --from"),
            "{err}"
        );
    }

    #[test]
    fn the_automerge_document_loads_in_automerge() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let err = space.space_document(None).unwrap_err();
        assert!(err.to_string().contains("no document yet"), "{err}");
        let listing = testkit::listing(&id, "Riverside");
        space.publish_listing(&listing, now()).unwrap();
        let mut renamed = listing.clone();
        renamed.name = "Riverside Two".into();
        space.publish_listing(&renamed, now()).unwrap();
        let bytes = space.space_document(None).unwrap();
        let doc = automerge::Automerge::load(&bytes).unwrap();
        use automerge::ReadDoc;
        let (name, _) = doc.get(automerge::ROOT, "name").unwrap().unwrap();
        assert_eq!(name.as_str(), Some("Riverside Two"));
        assert_eq!(
            doc.get_changes(&[]).len(),
            2,
            "both signed changes are in the history"
        );
        let whole = deskmesh_crdt_model::doc::hydrate(&doc, None);
        assert_eq!(Listing::from_value(whole).unwrap(), renamed);
    }
}
