//! Issue 11: a new space writes its first listing from the template with no other help. The template is
//! filled in the way its own comments say (each line marked REQUIRED), every problem of an unfinished file
//! is reported at once with its field path, and the finished one is signed and listed.

#![allow(clippy::unwrap_used)]

use deskmesh_integration::{alliance_with_space, TestNode};

/// The value a new space would give each REQUIRED key.
fn answer(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" => return None, // already the name the alliance admitted it under
        "lat" => "41.1496",
        "lon" => "-8.6110",
        "timezone" => "\"Europe/Lisbon\"",
        "city" => "\"Porto\"",
        "country" => "\"PT\"",
        "capacity" => "12",
        other => panic!("the template marks {other} REQUIRED; this test does not know it"),
    })
}

/// Fills in the line after each "REQUIRED" comment (and the lines of the same group that follow it
/// without a comment of their own, like `lon` after `lat`).
fn fill_in(template: &str) -> String {
    let mut out = Vec::new();
    let mut required = false;
    for line in template.lines() {
        if line.starts_with("# REQUIRED") {
            required = true;
            out.push(line.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() || line.starts_with('[') {
            required = false;
            out.push(line.to_string());
            continue;
        }
        match (required, line.split_once(" = ")) {
            (true, Some((key, _))) => match answer(key.trim()) {
                Some(v) => out.push(format!("{key} = {v}")),
                None => out.push(line.to_string()),
            },
            _ => out.push(line.to_string()),
        }
    }
    out.join("\n")
}

fn stderr(node: &TestNode, args: &[&str], cwd: &std::path::Path) -> (bool, String) {
    let out = node.cmd(args).current_dir(cwd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_new_space_writes_its_first_listing_from_the_template() {
    let (_coord, space, id) = alliance_with_space();
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();

    // Nothing published yet: `space show` says where to start.
    let (ok, err) = stderr(&space, &["space", "show"], cwd);
    assert!(!ok);
    assert!(err.contains("deskmesh space init"), "{err}");

    // `space init` writes listing.toml here, with this space's id and name, and says what to do next.
    let (ok, err) = stderr(&space, &["space", "init"], cwd);
    assert!(ok, "{err}");
    assert!(err.contains("space edit --file listing.toml"), "{err}");
    let path = cwd.join("listing.toml");
    let template = std::fs::read_to_string(&path).unwrap();
    assert!(template.contains(&format!("id = \"{id}\"")), "{template}");
    assert!(template.contains("name = \"Space One\""), "{template}");
    assert!(
        template.contains("hot_desk, dedicated_desk, phone_booth"),
        "pool kinds listed"
    );
    // A second init keeps the file.
    let (ok, err) = stderr(&space, &["space", "init"], cwd);
    assert!(!ok && err.contains("exists already"), "{err}");
    // `space template` prints the same text.
    assert_eq!(space.ok(&["space", "template"]), template);

    // Unedited, it is refused with every problem at once, each with its field path, and nothing is stored.
    let (ok, err) = stderr(&space, &["space", "edit", "--file", "listing.toml"], cwd);
    assert!(!ok);
    for path in [
        "location: ",
        "location.address.city: ",
        "location.address.country: ",
        "location.timezone: ",
        "seat_pools[0].capacity: ",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    assert!(err.contains("5 problems:"), "{err}");

    // Filled in as its comments say, it is valid, signed and listed, and its pool takes seats.
    std::fs::write(&path, fill_in(&template)).unwrap();
    let (ok, err) = stderr(&space, &["space", "edit", "--file", "listing.toml"], cwd);
    assert!(ok, "{err}");
    let shown = space.json(&["space", "show"]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["location"]["address"]["city"], "Porto");
    assert_eq!(shown["seat_pools"][0]["capacity"], 12);
    space.ok(&["seats", "set", "3"]);
    let dir = space.json(&["spaces", "list", "--seats-free"]);
    assert_eq!(dir["matched"], 1, "{dir}");
    assert_eq!(dir["spaces"][0]["seats_text"], "3 free, just now");
}

#[test]
fn joining_as_a_space_points_to_the_template() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Test Alliance"]);
    let space = TestNode::new();
    let key = space.init("space");
    let token = coord.ok(&["alliance", "invite", &key, "--space", "Space One"]);
    let out = space.run(&["alliance", "join", token.trim()]);
    assert!(out.status.success());
    let hint = String::from_utf8_lossy(&out.stderr);
    assert!(hint.contains("deskmesh space init"), "{hint}");
}
