//! End-to-end tests of the `deskmesh` command line: real processes, real homes on disk, real signatures.
//!
//! Each test names the behaviour it pins; the "bad input" tests follow the list in the foundation issue
//! (#2): each must fail with one clear sentence and lose nothing that was stored.

// Test helpers outside #[test] functions may unwrap too: a panic is a test failure with its line.
#![allow(clippy::unwrap_used)]

use std::fs;

use deskmesh_integration::{alliance_with_space, listing_json, TestNode};

fn write_json(node: &TestNode, name: &str, value: &serde_json::Value) -> String {
    let path = node.dir.path().join(name);
    fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn init_prints_a_did_key_and_refuses_to_overwrite() {
    let n = TestNode::new();
    let key = n.init("one");
    assert!(key.starts_with("z6Mk"), "{key}");
    let err = n.fails(&["init"]);
    assert!(err.contains("already exists"), "{err}");
    let json = n.json(&["alliance", "create", "A"]);
    assert!(json["alliance"].as_str().unwrap().starts_with("al-"));
}

#[test]
fn a_space_joins_edits_shows_and_round_trips_its_listing() {
    let (coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Riverside Desks"));
    space.ok(&["space", "edit", "--file", &file]);
    let shown = space.json(&["space", "show"]);
    assert_eq!(shown["name"], "Riverside Desks");
    // The JSON that `space show` prints is accepted by `space edit --file` unchanged.
    let again = write_json(&space, "again.json", &shown);
    let out = space.ok(&["space", "edit", "--file", &again]);
    assert!(out.contains("unchanged"), "{out}");
    // Flags edit common fields.
    space.ok(&[
        "space",
        "edit",
        "--name",
        "Riverside Desks II",
        "--add-amenity",
        "kitchen",
    ]);
    let shown = space.json(&["space", "show"]);
    assert_eq!(shown["name"], "Riverside Desks II");
    assert!(shown["amenities"].to_string().contains("kitchen"));
    // A TOML file of the same shape works too.
    let toml_path = space.dir.path().join("l.toml");
    fs::write(
        &toml_path,
        format!(
            "id = \"{id}\"\nname = \"Toml Desks\"\n[location]\nlon = 2.35\nlat = 48.85\ntimezone = \"Europe/Paris\"\n[location.address]\ncity = \"Paris\"\ncountry = \"FR\"\n"
        ),
    )
    .unwrap();
    space.ok(&["space", "edit", "--file", toml_path.to_str().unwrap()]);
    assert_eq!(space.json(&["space", "show"])["name"], "Toml Desks");
    // The coordinator sees the roster with the space and its device.
    let roster = coord.json(&["alliance", "show"]);
    assert_eq!(roster["spaces"][0]["id"], id.as_str());
}

#[test]
fn seats_set_shows_in_the_directory_with_freshness() {
    let (_coord, space, id) = alliance_with_space();
    let mut listing = listing_json(&id, "Seat Test");
    // Open around the clock, so the seats do not depend on when the test runs.
    listing["opening_hours"] = serde_json::json!("24/7");
    let file = write_json(&space, "l.json", &listing);
    space.ok(&["space", "edit", "--file", &file]);
    space.ok(&["seats", "set", "--pool", "hot", "4", "--ttl", "600"]);
    let dir = space.json(&["spaces", "list"]);
    let row = &dir["spaces"][0];
    assert_eq!(row["seats"][0]["freshness"], "fresh");
    assert!(row["seats"][0]["status"]
        .as_str()
        .unwrap()
        .starts_with("4 free"));
    assert_eq!(row["seats_free"], true);
    assert_eq!(row["seats_text"], "4 free, just now");
    space.ok(&["seats", "set", "full"]);
    let dir = space.json(&["spaces", "list", "--seats-free"]);
    assert_eq!(dir["matched"], 0);
    for bucket in ["many", "few", "closed"] {
        space.ok(&["seats", "set", bucket]);
    }
}

/// Without a daemon, a whole list reads the directory snapshot a previous list kept, while nothing was
/// written since, and never after a write: new seats, an edit, a damaged snapshot each show what the store
/// holds.
#[test]
fn the_directory_snapshot_never_outlives_a_write() {
    let (_coord, space, id) = alliance_with_space();
    let mut listing = listing_json(&id, "Snapshot Test");
    listing["opening_hours"] = serde_json::json!("24/7");
    let file = write_json(&space, "l.json", &listing);
    space.ok(&["space", "edit", "--file", &file]);
    space.ok(&["seats", "set", "--pool", "hot", "4", "--ttl", "600"]);
    let snapshot = space.home().join("store").join("directory.snapshot");
    let seen = |dir: &serde_json::Value| {
        let row = &dir["spaces"][0];
        (
            row["name"].as_str().unwrap().to_string(),
            row["seats_free"].as_bool().unwrap(),
            row["seats_text"]
                .as_str()
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string(),
        )
    };
    // The first list keeps the rows, the next one reads them and keeps the snapshot, the third reads it.
    space.json(&["spaces", "list"]);
    let kept = seen(&space.json(&["spaces", "list"]));
    let bytes = fs::read(&snapshot).expect("a whole list keeps the snapshot");
    // Keeping it renames a new file over it: the same inode means it was only read.
    let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&snapshot).unwrap());
    let first_inode = inode();
    assert_eq!(seen(&space.json(&["spaces", "list"])), kept);
    assert_eq!(inode(), first_inode, "read, not written again");
    assert_eq!(kept, ("Snapshot Test".into(), true, "4 free".into()));

    space.ok(&["seats", "set", "full"]);
    assert_eq!(
        seen(&space.json(&["spaces", "list"])),
        ("Snapshot Test".into(), false, "full".into())
    );
    listing["name"] = serde_json::json!("Snapshot Renamed");
    let file = write_json(&space, "l.json", &listing);
    space.ok(&["space", "edit", "--file", &file]);
    space.json(&["spaces", "list"]);
    let renamed = seen(&space.json(&["spaces", "list"]));
    assert_eq!(renamed.0, "Snapshot Renamed");
    assert_ne!(
        fs::read(&snapshot).unwrap(),
        bytes,
        "kept anew after the writes"
    );

    // A damaged snapshot is read past: same answer, and kept anew.
    let mut damaged = fs::read(&snapshot).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    fs::write(&snapshot, &damaged).unwrap();
    assert_eq!(seen(&space.json(&["spaces", "list"])), renamed);
    assert_ne!(fs::read(&snapshot).unwrap(), damaged);
}

#[test]
fn spaces_list_filters_and_sorts() {
    let demo = TestNode::new();
    demo.ok(&["demo", "--setup-only"]);
    let all = demo.json(&["spaces", "list"]);
    assert_eq!(all["total"], 12);
    let berlin = demo.json(&["spaces", "list", "--city", "berlin"]);
    assert!(berlin["matched"].as_u64().unwrap() >= 1);
    for row in berlin["spaces"].as_array().unwrap() {
        assert_eq!(row["city"], "Berlin");
    }
    let wheel = demo.json(&["spaces", "list", "--access", "wheelchair"]);
    for row in wheel["spaces"].as_array().unwrap() {
        assert!(row["access"].to_string().contains("wheelchair"));
    }
    let near = demo.json(&["spaces", "list", "--near", "38.72,-9.14", "--limit", "1"]);
    assert_eq!(near["spaces"][0]["city"], "Lisbon");
    // Issue 11: near a point sorts by distance and says how far; Berlin is never third from Lisbon.
    let near = demo.json(&["spaces", "list", "--near", "38.72,-9.14"]);
    let cities: Vec<&str> = near["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["city"].as_str().unwrap())
        .collect();
    assert_eq!(&cities[..2], ["Lisbon", "Lisbon"]);
    let km: Vec<f64> = near["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["distance_km"].as_f64().unwrap())
        .collect();
    assert!(km.windows(2).all(|w| w[0] <= w[1]), "{km:?}");
    assert!(km[0] < 5.0 && km[2] > 1000.0, "{km:?}");
    // A city of the directory is a place too, and the table shows the distance.
    let text = demo.ok(&["spaces", "list", "--near", "berlin", "--limit", "3"]);
    assert!(text.lines().next().unwrap().contains("DISTANCE"), "{text}");
    assert!(
        text.contains("distances from the middle of berlin"),
        "{text}"
    );
    let err = demo.fails(&["spaces", "list", "--near", "Atlantis"]);
    assert!(
        err.contains("no space in the directory is in \"Atlantis\""),
        "{err}"
    );
    // Saved once, used by --near alone.
    demo.ok(&["location", "set", "Lisbon"]);
    assert!(demo.ok(&["location", "show"]).contains("(Lisbon)"));
    let home = demo.json(&["spaces", "list", "--near", "--limit", "1"]);
    assert_eq!(home["spaces"][0]["city"], "Lisbon");
    demo.ok(&["location", "clear"]);
    let err = demo.fails(&["spaces", "list", "--near"]);
    assert!(err.contains("location set"), "{err}");

    // Prices are compared within one currency only.
    let err = demo.fails(&["spaces", "list", "--max-price", "15"]);
    assert!(err.contains("needs a currency"), "{err}");
    let ars = demo.json(&["spaces", "list", "--max-price", "15000ARS"]);
    assert_eq!(ars["matched"], 1);
    assert_eq!(ars["spaces"][0]["city"], "Buenos Aires");
    let eur = demo.json(&["spaces", "list", "--max-price", "20", "--currency", "eur"]);
    for row in eur["spaces"].as_array().unwrap() {
        assert!(row["day_pass"].as_str().unwrap().ends_with("EUR"), "{row}");
    }
    let by_price = demo.json(&["spaces", "list", "--sort", "price", "--currency", "ZAR"]);
    let passes: Vec<&str> = by_price["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["day_pass"].as_str())
        .collect();
    assert!(passes[0].ends_with("ZAR"), "{passes:?}");
    let mut currencies: Vec<&str> = passes.iter().map(|p| &p[p.len() - 3..]).collect();
    currencies.dedup();
    let mut distinct = currencies.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        currencies.len(),
        distinct.len(),
        "grouped by currency: {passes:?}"
    );
    let err = demo.fails(&["spaces", "list", "--amenity", "jacuzzi"]);
    assert!(err.contains("jacuzzi"), "{err}");
}

#[test]
fn exports_are_valid_in_every_format_and_json_reimports() {
    let (_coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Export Test"));
    space.ok(&["space", "edit", "--file", &file]);
    let json: serde_json::Value =
        serde_json::from_str(&space.ok(&["export", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "Export Test");
    let geo: serde_json::Value =
        serde_json::from_str(&space.ok(&["export", "--format", "geojson"])).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    assert_eq!(geo["features"][0]["geometry"]["type"], "Point");
    assert_eq!(geo["features"][0]["geometry"]["coordinates"][0], -9.14);
    let ld: serde_json::Value =
        serde_json::from_str(&space.ok(&["export", "--format", "jsonld"])).unwrap();
    assert_eq!(ld["itemListElement"][0]["item"]["@type"], "LocalBusiness");
    let csv = space.ok(&["export", "--format", "csv"]);
    assert!(csv.lines().next().unwrap().starts_with("id,name,"));
    assert!(csv.contains("Export Test"));
    // The JSON export is what `import` takes.
    let path = write_json(&space, "export.json", &json);
    let out = space.ok(&["import", &path]);
    assert!(out.contains("imported 1 listing"), "{out}");
}

#[test]
fn audit_lists_signers_with_the_roster_op_that_authorised_them() {
    let demo = TestNode::new();
    demo.ok(&["demo", "--setup-only"]);
    let audit = demo.audit();
    assert_eq!(audit["ok"], true, "{audit}");
    let listings = audit["listings"].as_array().unwrap();
    assert_eq!(listings.len(), 12);
    let roster_ops: Vec<&str> = audit["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["op"].as_str().unwrap())
        .collect();
    for l in listings {
        let signer = &l["signers"][0];
        assert!(roster_ops.contains(&signer["authorised_by"].as_str().unwrap()));
    }
}

// ---- bad input: one clear sentence, nothing lost -------------------------------------------------------

#[test]
fn bad_listings_are_refused_and_the_stored_listing_survives() {
    let (_coord, space, id) = alliance_with_space();
    let good = listing_json(&id, "Keep Me");
    let file = write_json(&space, "good.json", &good);
    space.ok(&["space", "edit", "--file", &file]);

    let mut lat = good.clone();
    lat["location"]["lat"] = serde_json::json!(123);
    let mut amenity = good.clone();
    amenity["amenities"] = serde_json::json!(["jacuzzi"]);
    let mut hours = good.clone();
    hours["opening_hours"] = serde_json::json!("sometimes");
    let mut big = good.clone();
    big["description"] = serde_json::json!("x".repeat(200_000));
    let mut huge = good.clone();
    huge["description"] = serde_json::json!("x".repeat(5_000_000));
    for (name, bad, expect) in [
        ("lat.json", lat, "lat"),
        ("amenity.json", amenity, "jacuzzi"),
        ("hours.json", hours, "sometimes"),
        ("big.json", big, "limit"),
        ("huge.json", huge, "may be at most 1.0 MiB"),
    ] {
        let path = write_json(&space, name, &bad);
        let err = space.fails(&["space", "edit", "--file", &path]);
        assert!(err.contains(expect), "{name}: {err}");
    }
    let truncated = space.dir.path().join("truncated.json");
    fs::write(&truncated, r#"{"id": "sp-aaaa", "name": "#).unwrap();
    space.fails(&["space", "edit", "--file", truncated.to_str().unwrap()]);
    assert_eq!(space.json(&["space", "show"])["name"], "Keep Me");
}

#[test]
fn bad_seat_values_are_refused() {
    let (_coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Seats"));
    space.ok(&["space", "edit", "--file", &file]);
    let err = space.fails(&["seats", "set", "-3"]);
    assert!(err.contains("negative"), "{err}");
    let err = space.fails(&["seats", "set", "lots"]);
    assert!(err.contains("not a seat count"), "{err}");
    let err = space.fails(&["seats", "set", "--pool", "nope", "2"]);
    assert!(err.contains("no seat pool"), "{err}");
    let err = space.fails(&["seats", "set", "11"]);
    assert!(err.contains("10 seats"), "{err}");
}

#[test]
fn damaged_and_foreign_invite_tokens_are_refused() {
    let coord = TestNode::new();
    coord.init("c");
    coord.ok(&["alliance", "create", "One"]);
    let space = TestNode::new();
    let key = space.init("s");
    let token = coord.ok(&["alliance", "invite", &key, "--space", "S"]);
    let token = token.lines().next().unwrap();

    let err = space.fails(&["alliance", "join", &token[..token.len() / 2]]);
    assert!(err.contains("checksum"), "{err}");
    let mut typo: Vec<char> = token.chars().collect();
    let i = token.len() / 3;
    typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let err = space.fails(&["alliance", "join", &typo]);
    assert!(err.contains("checksum"), "{err}");
    let err = space.fails(&["alliance", "join", "hello"]);
    assert!(err.contains("dmi1"), "{err}");

    space.ok(&["alliance", "join", token]);
    // A token of another alliance, for this same key.
    let other = TestNode::new();
    other.init("o");
    other.ok(&["alliance", "create", "Two"]);
    let foreign = other.ok(&["alliance", "invite", &key, "--space", "S"]);
    let err = space.fails(&["alliance", "join", foreign.lines().next().unwrap()]);
    assert!(err.contains("but this node is in alliance"), "{err}");
    // A token made for somebody else's key.
    let stranger = TestNode::new();
    stranger.init("x");
    let err = stranger.fails(&["alliance", "join", token]);
    assert!(err.contains("was made for key"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_secret_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let n = TestNode::new();
    n.init("k");
    let key = n.home().join("device.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = n.fails(&["alliance", "create", "A"]);
    assert!(err.contains("chmod 600"), "{err}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    n.ok(&["alliance", "create", "A"]);
}

#[cfg(unix)]
#[test]
fn a_read_only_store_gives_a_clear_error_and_keeps_its_data() {
    use std::os::unix::fs::PermissionsExt;
    let (_coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Read Only"));
    space.ok(&["space", "edit", "--file", &file]);
    let store = space.home().join("store");
    // Root ignores permission bits; only check the message where the kernel enforces them.
    let probe = store.join("probe");
    let set_mode = |mode| {
        for entry in fs::read_dir(&store).unwrap() {
            let p = entry.unwrap().path();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::set_permissions(&store, fs::Permissions::from_mode(mode | 0o100)).unwrap();
    };
    set_mode(0o400);
    let enforced = fs::write(&probe, b"x").is_err();
    if enforced {
        let err = space.fails(&["space", "edit", "--name", "Changed"]);
        assert!(
            err.contains("not writable") || err.contains("cannot"),
            "{err}"
        );
    }
    set_mode(0o600);
    let _ = fs::remove_file(&probe);
    assert_eq!(space.json(&["space", "show"])["name"], "Read Only");
}

#[test]
fn a_change_signed_by_a_non_member_is_refused_and_audited() {
    // An outsider founds its own alliance and signs a listing claiming to be a member's space.
    let (_coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Genuine"));
    space.ok(&["space", "edit", "--file", &file]);

    let outsider = TestNode::new();
    let okey = outsider.init("outsider");
    outsider.ok(&["alliance", "create", "Outsiders"]);
    let token = outsider.ok(&["alliance", "invite", &okey, "--space", "Fake"]);
    outsider.ok(&["alliance", "join", token.lines().next().unwrap()]);
    let oid = outsider.json(&["alliance", "show"])["this_space"]
        .as_str()
        .unwrap()
        .to_string();
    let ofile = write_json(
        &outsider,
        "fake.json",
        &listing_json(&oid, "Forged Listing"),
    );
    outsider.ok(&["space", "edit", "--file", &ofile]);
    outsider.ok(&["seats", "set", "5"]);
    let bundle = outsider.dir.path().join("outsider.dmb");
    outsider.ok(&[
        "export",
        "--format",
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
    ]);

    let out = space.ok(&["import", bundle.to_str().unwrap()]);
    assert!(out.contains("refused"), "{out}");
    let dir = space.json(&["spaces", "list"]);
    assert_eq!(dir["total"], 1, "only the genuine listing is shown: {dir}");
    assert_eq!(dir["spaces"][0]["name"], "Genuine");
    // An audit that reports a refusal exits 3, so scripts and monitoring notice.
    let audit = space.json_exit(&["audit"], 3);
    assert_eq!(audit["ok"], false);
    let text = audit.to_string();
    assert!(
        text.contains(&okey),
        "the audit names the outsider's key: {audit}"
    );
}

#[test]
fn bundles_carry_signed_items_between_members_offline() {
    let (coord, space, id) = alliance_with_space();
    let file = write_json(&space, "l.json", &listing_json(&id, "Sneakernet"));
    space.ok(&["space", "edit", "--file", &file]);
    space.ok(&["seats", "set", "3"]);
    let bundle = space.dir.path().join("s.dmb");
    space.ok(&[
        "export",
        "--format",
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
    ]);
    coord.ok(&["import", bundle.to_str().unwrap()]);
    let dir = coord.json(&["spaces", "list"]);
    assert_eq!(dir["spaces"][0]["name"], "Sneakernet");
    assert!(dir["spaces"][0]["seats"][0]["status"]
        .as_str()
        .unwrap()
        .starts_with("3 free"));
    assert_eq!(coord.audit()["ok"], true);
    // A damaged bundle changes nothing.
    let bytes = fs::read(&bundle).unwrap();
    let cut = space.dir.path().join("cut.dmb");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = coord.fails(&["import", cut.to_str().unwrap()]);
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(coord.json(&["spaces", "list"])["total"], 1);
}

#[test]
fn commands_without_a_node_say_to_run_init() {
    let n = TestNode::new();
    let err = n.fails(&["spaces", "list"]);
    assert!(err.contains("deskmesh init"), "{err}");
    n.init("x");
    let err = n.fails(&["space", "show"]);
    assert!(err.contains("alliance"), "{err}");
}
