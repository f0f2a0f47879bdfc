//! Data in and out through the real binary (#12), with the node stopped and with it running: a space
//! starts its listing from its OpenStreetMap entry, a coordinator turns an Overpass extract into drafts,
//! CSV and GeoJSON exports import back unchanged, the OSM export reads with an XML parser, and the
//! Automerge document a space writes loads in Automerge.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use automerge::ReadDoc;
use deskmesh_integration::alliance_with_space;
use deskmesh_integration::daemon::{self, Daemon};
use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../node/core/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn scenario(running: bool) {
    let (coord, space, space_id) = alliance_with_space();
    let mut daemons: Vec<Daemon> = Vec::new();
    if running {
        for n in [&coord, &space] {
            daemons.push(daemon::start(n, &["--listen", "/ip4/127.0.0.1/tcp/0"]));
        }
    }

    // The space starts from its OSM entry; the tags it cannot use are named on stderr.
    let overpass = fixture("osm/overpass-lisbon.json");
    let out = space.run(&[
        "space",
        "edit",
        "--from",
        &overpass,
        "--pick",
        "node/4815162342",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("operator=Azulejo Works Lda"), "{stderr}");
    let listing = space.json(&["space", "show"]);
    assert_eq!(listing["id"], space_id.as_str());
    assert_eq!(listing["name"], "Azulejo Works");
    assert_eq!(listing["external_ids"]["osm"], "node/4815162342");
    // Without --pick a file of several spaces is refused with one sentence naming them.
    let err = space.fails(&["space", "edit", "--from", &overpass]);
    assert!(err.contains("choose one with --pick"), "{err}");

    // Every export imports back with nothing changed.
    for format in ["csv", "geojson", "json"] {
        let path = space.dir.path().join(format!("spaces.{format}"));
        let path = path.to_str().unwrap();
        space.ok(&["export", "--format", format, "--output", path]);
        let report = space.json(&["import", path]);
        let listings = report["listings"].as_array().unwrap();
        assert_eq!(listings.len(), 1, "{format}");
        assert_eq!(
            listings[0]["change"],
            Value::Null,
            "{format}: the listing came back unchanged"
        );
    }
    let err = space.fails(&["import", &overpass]);
    assert!(err.contains("space draft --from"), "{err}");

    // OSM XML out, read with an XML parser.
    let osm = space.ok(&["export", "--format", "osm"]);
    let doc = roxmltree::Document::parse(&osm).unwrap();
    let node = doc.descendants().find(|n| n.has_tag_name("node")).unwrap();
    assert_eq!(node.attribute("id"), Some("4815162342"));
    let tag = |k: &str| {
        node.children()
            .find(|t| t.attribute("k") == Some(k))
            .and_then(|t| t.attribute("v"))
    };
    assert_eq!(tag("name"), Some("Azulejo Works"));
    assert_eq!(tag("addr:housenumber"), Some("12"));

    // The Automerge document, loaded by Automerge itself.
    let doc_path = space.dir.path().join("space.automerge");
    space.ok(&[
        "space",
        "show",
        "--automerge",
        "--output",
        doc_path.to_str().unwrap(),
    ]);
    let doc = automerge::Automerge::load(&std::fs::read(&doc_path).unwrap()).unwrap();
    let (name, _) = doc.get(automerge::ROOT, "name").unwrap().unwrap();
    assert_eq!(name.as_str(), Some("Azulejo Works"));
    // The coordinator has no space of its own, so no document.
    let err = coord.fails(&["space", "show", "--automerge", "--output", "x.automerge"]);
    assert!(
        err.contains("not a space") || err.contains("signs for no space") || err.contains("space"),
        "{err}"
    );

    // The coordinator turns the extract into drafts; a space signs its draft (no id) as its own.
    let out_dir = coord.dir.path().join("drafts");
    let out = coord.run(&[
        "space",
        "draft",
        "--from",
        &overpass,
        "--out",
        out_dir.to_str().unwrap(),
        "--country",
        "PT",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "avenida-hub.json",
            "azulejo-works.json",
            "miradouro-cafe-desks.json",
            "node-5550001.json"
        ]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 draft(s)"), "{stdout}");
    assert!(stdout.contains("3 ready to sign"), "{stdout}");
    assert!(
        stdout.contains("name: is required (the entry has no name tag)"),
        "the nameless one says what it lacks: {stdout}"
    );
    let again = coord.fails(&[
        "space",
        "draft",
        "--from",
        &overpass,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(again.contains("never overwritten"), "{again}");
    let draft = out_dir.join("miradouro-cafe-desks.json");
    space.ok(&["space", "edit", "--file", draft.to_str().unwrap()]);
    assert_eq!(
        space.json(&["space", "show"])["name"],
        "Miradouro Café Desks"
    );
    drop(daemons);
}

#[test]
fn data_travels_with_the_node_stopped() {
    scenario(false);
}

#[test]
fn data_travels_through_a_running_node() {
    scenario(true);
}
