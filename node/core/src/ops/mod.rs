//! What a node does, typed in and typed out: alliance administration ([`alliance`]), this space's listing
//! and imports of listings ([`listing`]), listings started from OSM, GeoJSON or CSV data and drafts for
//! spaces still to join ([`drafts`]), open seats ([`seats`]), the directory members browse
//! ([`directory`]), the place distances are measured from ([`place`]), and what coordinators sign beside
//! the roster: coordinator changes by quorum and verifications of listing facts ([`trust`]). Each
//! operation validates before it writes, signs with the device key, and takes what it
//! signed through [`crate::ingest`]; each returns a serde report that front ends render as they like.

pub mod alliance;
pub mod directory;
pub mod drafts;
pub mod listing;
pub mod place;
pub mod seats;
pub mod trust;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use deskmesh_crdt_model::beacon::Availability;
    use deskmesh_crdt_model::listing::Amenity;
    use deskmesh_crdt_model::query::Query;
    use deskmesh_keys::{DeviceKey, Signer};

    use super::listing::{FieldEdits, FileBytes, FileFormat, ListingBase, ListingEdit};
    use crate::api::Bytes;
    use crate::testkit::{self, now};

    fn file(name: &str, format: FileFormat, text: &str) -> ListingBase {
        ListingBase::File(FileBytes {
            name: name.into(),
            format,
            bytes: Bytes(text.as_bytes().to_vec()),
        })
    }

    #[test]
    fn a_space_is_invited_joins_edits_its_listing_and_sets_seats() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        assert_eq!(space.alliance_id(), coordinator.alliance_id());

        // Before any listing, seats cannot be set and the edit says where to start.
        let err = space
            .seats_set(None, Availability::Count(2), 900, now())
            .unwrap_err();
        assert!(err.to_string().contains("publish a listing"), "{err}");
        let err = space
            .space_edit(&ListingEdit::default(), now())
            .unwrap_err();
        assert!(err.to_string().contains("--file"), "{err}");

        let json = testkit::listing(&id, "Riverside").to_value().to_string();
        let edit = ListingEdit {
            base: Some(file("l.json", FileFormat::Json, &json)),
            fields: FieldEdits {
                add_amenities: vec![Amenity::Kitchen],
                ..FieldEdits::default()
            },
        };
        let report = space.space_edit(&edit, now()).unwrap();
        assert!(report.change.is_some());
        let shown = space.space_show(None).unwrap();
        assert!(shown.amenities.0.contains_key(&Amenity::Kitchen));
        // The same listing again signs nothing.
        let again = ListingEdit {
            base: Some(ListingBase::Listing(Box::new(shown.clone()))),
            fields: FieldEdits::default(),
        };
        assert_eq!(space.space_edit(&again, now()).unwrap().change, None);
        // Fields alone edit the current listing.
        let renamed = ListingEdit {
            base: None,
            fields: FieldEdits {
                name: Some("Riverside II".into()),
                ..FieldEdits::default()
            },
        };
        space.space_edit(&renamed, now()).unwrap();
        assert_eq!(space.space_show(None).unwrap().name, "Riverside II");

        let seats = space
            .seats_set(Some("hot"), Availability::Count(4), 600, now())
            .unwrap();
        assert_eq!((seats.pool.as_str(), seats.seq), ("hot", 0));
        assert_eq!(
            space
                .seats_set(None, Availability::Few, 600, now())
                .unwrap()
                .seq,
            1
        );
        let err = space
            .seats_set(Some("nope"), Availability::Full, 600, now())
            .unwrap_err();
        assert!(err.to_string().contains("its pools are: hot"), "{err}");
        let err = space
            .seats_set(None, Availability::Count(11), 600, now())
            .unwrap_err();
        assert!(err.to_string().contains("10 seats"), "{err}");

        let dir = space.directory(&Query::default(), now()).unwrap();
        assert_eq!((dir.total, dir.matched), (1, 1));
        assert_eq!(dir.spaces[0].seats[0].availability, Some(Availability::Few));
    }

    #[test]
    fn a_bad_listing_file_changes_nothing_and_says_which_file() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Keep Me"), now())
            .unwrap();
        let other = deskmesh_keys::SpaceId::derive(&DeviceKey::generate().public_key());
        let cases = [
            (
                "broken.json",
                FileFormat::Json,
                "{\"id\": ".to_string(),
                "broken.json",
            ),
            (
                "other.json",
                FileFormat::Json,
                testkit::listing(&other, "Not Mine").to_value().to_string(),
                "this node signs for",
            ),
            (
                "bad.toml",
                FileFormat::Toml,
                "name = [".to_string(),
                "bad.toml",
            ),
        ];
        for (name, format, text, expect) in cases {
            let edit = ListingEdit {
                base: Some(file(name, format, &text)),
                fields: FieldEdits::default(),
            };
            let err = space.space_edit(&edit, now()).unwrap_err();
            assert!(format!("{err:#}").contains(expect), "{name}: {err:#}");
        }
        assert_eq!(space.space_show(None).unwrap().name, "Keep Me");
    }

    #[test]
    fn import_refuses_a_file_with_any_listing_this_node_may_not_sign() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let other = deskmesh_keys::SpaceId::derive(&DeviceKey::generate().public_key());
        let both = serde_json::json!([
            testkit::listing(&id, "Mine").to_value(),
            testkit::listing(&other, "Theirs").to_value()
        ]);
        let file = FileBytes {
            name: "both.json".into(),
            format: FileFormat::Json,
            bytes: Bytes(both.to_string().into_bytes()),
        };
        let err = space.import_listings(&file, now()).unwrap_err();
        assert!(err.to_string().contains("listing #2"), "{err}");
        assert!(space.entries().unwrap().is_empty(), "nothing was written");
        let mine = FileBytes {
            bytes: Bytes(
                testkit::listing(&id, "Mine")
                    .to_value()
                    .to_string()
                    .into_bytes(),
            ),
            ..file
        };
        assert_eq!(
            space.import_listings(&mine, now()).unwrap().listings.len(),
            1
        );
    }

    #[test]
    fn devices_are_added_and_removed_and_spaces_revoked() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let laptop = DeviceKey::generate();
        let laptop_key = laptop.public_key();
        let invite = space.add_device(laptop_key, now()).unwrap();
        assert_eq!(invite.space, id);
        let mut second = testkit::node_with_key("laptop", laptop);
        second.alliance_join(&invite.token).unwrap();
        assert_eq!(second.my_space(), Some(id.clone()));

        let removed = space.remove_device(laptop_key, None, now()).unwrap();
        assert_eq!(removed.kind, "remove-device");
        let view = space.alliance_show().unwrap();
        assert_eq!(view.spaces[0].devices, vec![testkit::key_of(&space)]);

        let revoked = coordinator
            .revoke(id.clone(), "unpaid dues", false, now())
            .unwrap();
        assert!(revoked.summary.contains("revoked"));
        let view = coordinator.alliance_show().unwrap();
        assert_eq!(view.spaces[0].revoked.as_deref(), Some("unpaid dues"));
        // A space may not revoke: only coordinators can.
        let err = space.revoke(id, "nope", false, now()).unwrap_err();
        assert!(err.to_string().contains("not authorised"), "{err}");
    }

    #[test]
    fn a_revoked_space_leaves_what_members_see_and_its_node_hears_why() {
        use crate::export::ExportFormat;
        let mut coordinator = testkit::coordinator();
        let (mut space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        space
            .seats_set(None, Availability::Count(2), 900, chrono::Utc::now())
            .unwrap();
        let mut member = testkit::node("member");
        member
            .alliance_join(&coordinator.member_invite(Vec::new()).unwrap().token)
            .unwrap();
        testkit::carry(&space, &mut member);
        testkit::carry(&space, &mut coordinator);
        assert_eq!(
            member.directory(&Query::default(), now()).unwrap().matched,
            1
        );
        assert_eq!(member.store.beacons().unwrap().len(), 1);

        coordinator
            .revoke(id.clone(), "unpaid dues", false, now())
            .unwrap();
        testkit::carry(&coordinator, &mut member);
        assert_eq!(member.directory(&Query::default(), now()).unwrap().total, 0);
        assert!(
            member.store.beacons().unwrap().is_empty(),
            "its beacons are gone"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&member.export(ExportFormat::Json, now()).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!([]));
        let snapshot = member.snapshot(member.status().unwrap()).unwrap();
        assert!(snapshot.spaces.is_empty());
        // Its beacons are refused from now on, whatever roster heads they name.
        let stale = space.bundle().unwrap();
        let report = member
            .import_items(stale.batches(usize::MAX).remove(0))
            .unwrap();
        assert_eq!(report.beacons_taken, 0);
        assert!(
            report.refused.iter().any(|r| r.contains("revoked")),
            "{report:?}"
        );
        // The revoked node itself says so, with the reason.
        testkit::carry(&coordinator, &mut space);
        let standing = space.status().unwrap().standing.unwrap();
        assert!(standing.revoked);
        assert_eq!(standing.reason.as_deref(), Some("unpaid dues"));
        assert_eq!(standing.space, id);
        assert!(space.status().unwrap().my_space.is_none());
    }

    #[test]
    fn a_revocation_that_asks_keeps_the_space_listed_marked_revoked() {
        let mut coordinator = testkit::coordinator();
        let (mut space, id) = testkit::listed_space(&mut coordinator, "Riverside");
        testkit::carry(&space, &mut coordinator);
        coordinator
            .revoke(id.clone(), "closed for renovation", true, now())
            .unwrap();
        let dir = coordinator.directory(&Query::default(), now()).unwrap();
        assert_eq!(dir.matched, 1);
        assert_eq!(
            dir.spaces[0].revoked.as_deref(),
            Some("closed for renovation")
        );
        let csv = String::from_utf8(
            coordinator
                .export(crate::export::ExportFormat::Csv, now())
                .unwrap(),
        )
        .unwrap();
        assert!(csv.contains("closed for renovation"), "{csv}");
        // The space's own later edits are refused everywhere: the revocation keeps what it had.
        let mut edited = testkit::listing(&id, "Riverside Reopened");
        edited.description = "still here".into();
        let _ = space.publish_listing(&edited, now());
        let report = testkit::carry(&space, &mut coordinator);
        assert_eq!(report.changes_new, 0, "{report:?}");
        let dir = coordinator.directory(&Query::default(), now()).unwrap();
        assert_eq!(dir.spaces[0].name, "Riverside");
    }

    #[test]
    fn a_removed_device_cannot_sign_by_naming_old_roster_heads() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        let laptop = DeviceKey::generate();
        space.add_device(laptop.public_key(), now()).unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), now())
            .unwrap();
        let old_heads = space.roster().unwrap().heads();
        testkit::carry(&space, &mut coordinator);
        // The laptop is stolen: one command replaces it.
        let new_key = DeviceKey::generate();
        let replaced = coordinator
            .replace_device(laptop.public_key(), new_key.public_key(), None, now())
            .unwrap();
        assert!(replaced.invite.token.starts_with("dmi1"));
        assert_eq!(replaced.invite.space, id);
        // The thief signs an edit naming the roster as it was before the removal.
        let (mut doc, _) = coordinator.space_doc(&id).unwrap();
        let mut stolen = testkit::listing(&id, "Riverside (free desks, call 555)");
        stolen.description = "stolen".into();
        let change = doc
            .edit(
                &stolen,
                &laptop,
                &crate::node::RosterAuthority(space.roster()),
                old_heads,
                now().timestamp_millis(),
            )
            .unwrap()
            .unwrap();
        let report = coordinator
            .import_items(vec![crate::ingest::SignedItem::change(&change)])
            .unwrap();
        assert_eq!(report.changes_new, 0);
        assert!(report.refused[0].contains("removed that key"), "{report:?}");
        assert_eq!(
            coordinator
                .directory(&Query::default(), now())
                .unwrap()
                .spaces[0]
                .name,
            "Riverside"
        );
        let audit = coordinator.audit(now()).unwrap();
        let finding = audit
            .findings
            .iter()
            .find(|f| f.kind == "listing change")
            .unwrap();
        assert_eq!(finding.space.as_ref(), Some(&id));
        assert_eq!(finding.space_name.as_deref(), Some("Riverside"));
        assert_eq!(
            finding.author.as_ref().unwrap().name,
            "removed device of Riverside"
        );
        let id_text = crate::node::hex(&change.id().unwrap());
        assert_eq!(finding.item.as_deref(), Some(id_text.as_str()));
    }

    #[test]
    fn a_member_token_joins_read_only_and_a_foreign_token_is_refused() {
        let coordinator = testkit::coordinator();
        let token = coordinator
            .member_invite(vec!["/ip4/127.0.0.1/tcp/4717".into()])
            .unwrap();
        let mut member = testkit::node("member");
        let joined = member.alliance_join(&token.token).unwrap();
        assert_eq!(joined.space, None);
        assert_eq!(
            member.bootstrap_peers(),
            vec!["/ip4/127.0.0.1/tcp/4717".to_string()]
        );
        assert!(member.require_space().is_err());

        let other = testkit::coordinator();
        let foreign = other.member_invite(Vec::new()).unwrap();
        let err = member.alliance_join(&foreign.token).unwrap_err();
        assert!(
            err.to_string().contains("this invite is for alliance"),
            "{err}"
        );
    }
}
