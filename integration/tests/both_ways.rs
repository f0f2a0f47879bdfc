//! Every command with the node stopped and with it running (#8): the same scenario runs twice, once with
//! no daemon and once with each home's `deskmesh run` up (commands then go through its control socket),
//! with the same assertions, and the two transcripts of what the commands printed must match in shape.
//! The daemons here are not connected to each other, so both runs see the same data.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Stdio;

use deskmesh_integration::daemon::{self, Daemon};
use deskmesh_integration::{listing_json, TestNode};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Stopped,
    Running,
}

/// What the commands printed, reduced to what must not depend on the mode.
#[derive(Default)]
struct Transcript(Vec<(String, Value)>);

impl Transcript {
    fn record(&mut self, step: &str, v: &Value) {
        self.0.push((step.to_string(), shape(v)));
    }
}

/// A value's shape: object keys and array lengths, the leaves replaced by their type (booleans kept).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        other => other.clone(),
    }
}

struct World {
    mode: Mode,
    daemons: Vec<Daemon>,
}

impl World {
    /// Starts `node`'s daemon when this run has them.
    fn up(&mut self, node: &TestNode) {
        if self.mode == Mode::Running {
            self.daemons
                .push(daemon::start(node, &["--listen", "/ip4/127.0.0.1/tcp/0"]));
        }
    }
}

/// Runs `deskmesh ARGS` with `input` on stdin; returns (exit code, stdout, stderr).
fn with_stdin(node: &TestNode, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = node
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scenario(mode: Mode) -> Transcript {
    let mut t = Transcript::default();
    let mut w = World {
        mode,
        daemons: Vec::new(),
    };
    let coord = TestNode::new();
    coord.init("Coordinator");
    let created = coord.json(&["alliance", "create", "Both Ways Alliance"]);
    t.record("alliance create", &created);
    w.up(&coord);

    // `tok=$(deskmesh alliance invite …)` holds the token and nothing else.
    let space = TestNode::new();
    let key = space.init("Casa");
    let tok = coord.ok(&["alliance", "invite", &key, "--space", "Casa"]);
    assert_eq!(tok.lines().count(), 1, "{tok}");
    assert!(tok.starts_with("dmi1"), "{tok}");
    let joined = space.json(&["alliance", "join", tok.trim()]);
    t.record("alliance join", &joined);
    let id = joined["space"].as_str().unwrap().to_string();
    w.up(&space);

    // The listing from a file, from standard input, and from flags.
    let file = space.dir.path().join("listing.json");
    std::fs::write(&file, listing_json(&id, "Casa").to_string()).unwrap();
    let edited = space.json(&["space", "edit", "--file", file.to_str().unwrap()]);
    assert!(edited["change"].is_string(), "{edited}");
    t.record("space edit --file", &edited);
    let (code, out, err) = with_stdin(
        &space,
        &["space", "edit", "--file", "-", "--json"],
        listing_json(&id, "Casa from stdin").to_string().as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    t.record("space edit --file -", &serde_json::from_str(&out).unwrap());
    space.ok(&[
        "space",
        "edit",
        "--name",
        "Casa do Trabalho",
        "--add-amenity",
        "kitchen",
    ]);
    let shown = space.json(&["space", "show"]);
    assert_eq!(shown["name"], "Casa do Trabalho");
    t.record("space show", &shown);
    // What `space show --json` prints, `space edit --file` takes unchanged.
    let again = space.dir.path().join("again.json");
    std::fs::write(&again, shown.to_string()).unwrap();
    let same = space.json(&["space", "edit", "--file", again.to_str().unwrap()]);
    assert_eq!(same["change"], Value::Null, "{same}");

    // Bad listing paths: one sentence, a non-zero exit, nothing lost.
    let fifo = space.dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = space.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 20 * 1024 * 1024]).unwrap();
    for (path, expect) in [
        (fifo.to_str().unwrap(), "named pipe"),
        (space.dir.path().to_str().unwrap(), "directory"),
        ("/dev/zero", "device"),
        (big.to_str().unwrap(), "at most 1.0 MiB"),
    ] {
        let err = space.fails(&["space", "edit", "--file", path]);
        assert!(err.contains(expect), "{path}: {err}");
    }
    assert_eq!(space.json(&["space", "show"])["name"], "Casa do Trabalho");

    // Seats and the directory.
    let seats = space.json(&["seats", "set", "--pool", "hot", "4", "--ttl", "600"]);
    assert_eq!(seats["availability"]["Count"], 4);
    t.record("seats set", &seats);
    let dir = space.json(&["spaces", "list", "--city", "lisbon"]);
    assert_eq!(dir["matched"], 1);
    assert_eq!(dir["spaces"][0]["seats"][0]["freshness"], "fresh");
    t.record("spaces list", &dir);
    // A whole list, then narrow ones: without a daemon the narrow ones run on the search rows the store
    // keeps beside the listings (the whole read writes them when missing) and read only their hits;
    // either way they keep what the whole list shows.
    let whole = space.json(&["spaces", "list"]);
    let brief = |d: &Value| -> Vec<(Value, Value, Value, Value)> {
        d["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].clone(),
                    r["name"].clone(),
                    r["amenities"].clone(),
                    r["seats"][0]["freshness"].clone(),
                )
            })
            .collect()
    };
    for narrow in [
        &["--city", "lisbon"][..],
        &["--search", "trabalho"][..],
        &["--limit", "5"][..],
    ] {
        let args: Vec<&str> = ["spaces", "list"].iter().chain(narrow).copied().collect();
        let kept = space.json(&args);
        assert_eq!(brief(&kept), brief(&whole), "{narrow:?}");
        assert_eq!(kept["total"], whole["total"]);
    }
    let none = space.json(&["spaces", "list", "--city", "lisbon", "--search", "nowhere"]);
    assert_eq!(none["matched"], 0);

    // Every alliance subcommand.
    let roster = coord.json(&["alliance", "show"]);
    assert_eq!(roster["spaces"][0]["id"], id.as_str());
    t.record("alliance show", &roster);
    let member_tok = coord.ok(&["alliance", "invite-member"]);
    assert_eq!(member_tok.lines().count(), 1);
    assert!(member_tok.starts_with("dmm1"), "{member_tok}");
    let laptop = TestNode::new();
    let laptop_key = laptop.init("Laptop");
    let dev_tok = space.ok(&["alliance", "add-device", &laptop_key]);
    assert!(
        dev_tok.starts_with("dmi1") && dev_tok.lines().count() == 1,
        "{dev_tok}"
    );
    let removed = space.json(&["alliance", "remove-device", &laptop_key]);
    assert_eq!(removed["kind"], "remove-device");
    t.record("alliance remove-device", &removed);
    let other = TestNode::new();
    let other_key = other.init("Other");
    let other_space = coord.json(&["alliance", "invite", &other_key, "--space", "Other"])["space"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = coord.json(&[
        "alliance",
        "revoke",
        &other_space,
        "--reason",
        "unpaid dues",
    ]);
    assert_eq!(revoked["kind"], "revoke-space");
    t.record("alliance revoke", &revoked);
    let roster = coord.json(&["alliance", "show"]);
    let entry = roster["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == other_space.as_str())
        .unwrap();
    assert_eq!(entry["revoked"], "unpaid dues");

    // Every export format, and imports of what they wrote.
    let exported: Value = serde_json::from_str(&space.ok(&["export", "--format", "json"])).unwrap();
    assert_eq!(exported[0]["name"], "Casa do Trabalho");
    let geo: Value = serde_json::from_str(&space.ok(&["export", "--format", "geojson"])).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    let ld: Value = serde_json::from_str(&space.ok(&["export", "--format", "jsonld"])).unwrap();
    assert_eq!(ld["itemListElement"][0]["item"]["@type"], "LocalBusiness");
    let csv = space.ok(&["export", "--format", "csv"]);
    assert!(csv.starts_with("id,name,"), "{csv}");
    let piped = space
        .cmd(&["export", "--format", "bundle"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(piped.stdout.starts_with(b"DMBUNDLE2\n"));
    let bundle = space.dir.path().join("space.bundle");
    space.ok(&[
        "export",
        "--format",
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let json_file = space.dir.path().join("export.json");
    std::fs::write(&json_file, exported.to_string()).unwrap();
    let reimported = space.json(&["import", json_file.to_str().unwrap()]);
    assert_eq!(reimported["listings"][0]["change"], Value::Null);
    t.record("import listings", &reimported);
    let imported = coord.json(&["import", bundle.to_str().unwrap()]);
    assert_eq!(imported["changes_new"], 3, "{imported}");
    assert!(
        imported["refused"].as_array().unwrap().is_empty(),
        "{imported}"
    );
    t.record("import bundle", &imported);
    let dir = coord.json(&["spaces", "list"]);
    assert_eq!(
        dir["total"], 1,
        "the coordinator shows the imported listing"
    );

    // The audit passes, then fails (exit 3) once a forged item was refused.
    assert_eq!(coord.audit()["ok"], true);
    let forged = coord.dir.path().join("forged.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x5a;
    std::fs::write(&forged, bytes).unwrap();
    let refused = coord.json(&["import", forged.to_str().unwrap()]);
    assert_eq!(refused["refused"].as_array().unwrap().len(), 1, "{refused}");
    let audit = coord.audit();
    assert_eq!(audit["ok"], false);
    t.record("audit", &audit);

    // Status and peers say whether a daemon runs, and nothing else differs.
    let status = space.json(&["status"]);
    assert_eq!(status["running"], mode == Mode::Running);
    assert_eq!(status["my_space"], id.as_str());
    if mode == Mode::Running {
        // A second daemon on the same home is refused with one sentence, and the first keeps running.
        let err = space.fails(&["run", "--listen", "/ip4/127.0.0.1/tcp/0"]);
        assert!(err.contains("already running"), "{err}");
        assert_eq!(space.json(&["status"])["running"], true);
    }
    let peers = space.json(&["peers"]);
    assert_eq!(peers["peers"], json!([]));
    t.record("peers", &peers);
    t
}

#[test]
fn every_command_works_the_same_with_the_node_stopped_and_running() {
    let stopped = scenario(Mode::Stopped);
    let running = scenario(Mode::Running);
    assert_eq!(stopped.0.len(), running.0.len());
    for ((step, a), (_, b)) in stopped.0.iter().zip(&running.0) {
        assert_eq!(
            a, b,
            "`{step}` printed a different shape with the node running"
        );
    }
}
