//! Attacks on an alliance, with real nodes and processes: a coordinator and a member's laptop run
//! `deskmesh run` on 127.0.0.1; spaces and a stolen laptop are homes on disk; `dm-adversary` (a test-only
//! tool, `src/bin/dm-adversary.rs`) signs what a dishonest party would, with the real keys of those homes,
//! or speaks libp2p to a running node. Every attack must leave every honest node's directory exactly as it
//! was (compared as `export --format json`, which carries listings and verified facts) and appear in the
//! audit with its reason (and, where it came over the mesh, the peer it came from).
//!
//! - `signed_attacks_are_refused_everywhere_and_audited`: a replayed old change; a change signed by a
//!   removed device after its removal, naming old roster heads; a listing for space A signed by space B's
//!   key; a roster operation signed by a non-coordinator; a coordinator change with too few co-signatures;
//!   a verification signed by a non-coordinator; a change whose dependencies never arrive.
//! - `mesh_attacks_are_dropped_and_audited_with_the_peer`: a flood of valid-looking beacons from one space
//!   beyond the rate limit (after a flood of beacons too old to say anything, which spends nothing); a
//!   malformed gossip message.

use std::process::Command;

use deskmesh_integration::daemon::{self, logs, wait_until, Daemon};
use deskmesh_integration::TestNode;
use serde_json::Value;

/// The adversary tool cargo built beside this test.
fn adversary(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dm-adversary"))
        .args(args)
        .output()
        .expect("run dm-adversary");
    assert!(
        out.status.success(),
        "dm-adversary {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn home(node: &TestNode) -> String {
    node.home().to_str().expect("utf-8 path").to_string()
}

fn path(node: &TestNode, name: &str) -> String {
    node.dir
        .path()
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// Everything `from` holds, imported into `to` (neither running, or `to` through its daemon).
fn carry(from: &TestNode, to: &TestNode, name: &str) {
    let file = path(from, name);
    from.ok(&["export", "--format", "bundle", "-o", &file]);
    to.ok(&["import", &file]);
}

/// The directory as the node exports it: listings with their verified facts and revocations.
fn directory(node: &TestNode) -> Value {
    serde_json::from_str(&node.ok(&["export", "--format", "json"])).expect("export JSON")
}

/// The audit's findings whose kind is `kind` and whose reason contains `why`.
fn findings(node: &TestNode, kind: &str, why: &str) -> Vec<Value> {
    node.audit()["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["kind"] == kind && f["reason"].as_str().is_some_and(|r| r.contains(why)))
        .collect()
}

fn start(node: &TestNode, bootstrap: Option<&str>) -> Daemon {
    let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    daemon::start(node, &args)
}

fn space_id(node: &TestNode) -> String {
    node.json(&["alliance", "show"])["this_space"]
        .as_str()
        .expect("this_space")
        .to_string()
}

/// Imports `bundle` at `node` and checks it was refused with `why`, nothing new taken.
fn refused_import(node: &TestNode, bundle: &str, why: &str) -> Value {
    let report = node.json(&["import", bundle]);
    let refused = report["refused"].as_array().cloned().unwrap_or_default();
    assert!(
        refused
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains(why))),
        "expected a refusal with {why:?}: {report}"
    );
    for count in [
        "roster_ops_new",
        "changes_new",
        "beacons_taken",
        "verifications_new",
    ] {
        assert_eq!(report[count], 0, "{report}");
    }
    report
}

#[test]
fn signed_attacks_are_refused_everywhere_and_audited() {
    // The alliance: two coordinators (threshold 2), spaces A (with a laptop) and B, a member's laptop.
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Trust Alliance"]);
    let second = TestNode::new();
    let second_key = second.init("second coordinator");
    coord.ok(&["alliance", "propose", "add-coordinator", &second_key]);
    coord.ok(&["alliance", "propose", "threshold", "2"]);
    let (a, a_id) = daemon::space(&coord, "Space A");
    let (b, b_id) = daemon::space(&coord, "Space B");
    second.ok(&[
        "alliance",
        "join",
        coord
            .ok(&["alliance", "invite-member"])
            .lines()
            .next()
            .expect("token"),
    ]);
    carry(&coord, &second, "coord-to-second.bundle");
    let laptop = TestNode::new();
    let laptop_key = laptop.init("space A laptop");
    let token = a.ok(&["alliance", "add-device", &laptop_key]);
    laptop.ok(&["alliance", "join", token.lines().next().expect("token")]);
    carry(&a, &laptop, "a-to-laptop.bundle");
    carry(&a, &coord, "a.bundle");
    carry(&b, &coord, "b.bundle");
    carry(&coord, &b, "coord-to-b.bundle");
    // A coordinator verified A's accessibility, so verified facts are part of what must not change.
    coord.ok(&["alliance", "verify", &a_id, "--fact", "accessibility"]);

    // The laptop is stolen: the space replaces it in one command (before anyone's daemon runs).
    let new_laptop = TestNode::new();
    let new_key = new_laptop.init("space A new laptop");
    let token = a.ok(&["alliance", "replace-device", &laptop_key, &new_key]);
    new_laptop.ok(&["alliance", "join", token.lines().next().expect("token")]);
    assert_eq!(space_id(&new_laptop), a_id);
    carry(&a, &coord, "a-replaced.bundle");

    let hub = start(&coord, None);
    let member = TestNode::new();
    member.init("member");
    let token = coord.ok(&["alliance", "invite-member"]);
    member.ok(&["alliance", "join", token.lines().next().expect("token")]);
    let _member_daemon = start(&member, Some(&hub.addr));
    let honest = [&coord, &member];
    wait_until(
        "the member holds the coordinator's directory",
        &honest,
        || directory(&member) == directory(&coord),
    );
    let before = directory(&coord);
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");
    let unchanged = |what: &str| {
        for (i, node) in honest.iter().enumerate() {
            assert_eq!(
                directory(node),
                before,
                "{what}: node {i}'s directory changed{}",
                logs(&honest)
            );
        }
    };

    // 1. A change signed by the removed laptop after its removal, naming the roster heads it still knows.
    let stolen = path(&laptop, "stolen.bundle");
    adversary(&[
        "sign-change",
        "--home",
        &home(&laptop),
        "--rename",
        "Space A (call 555 for free desks)",
        "--out",
        &stolen,
    ]);
    refused_import(&coord, &stolen, "removed that key");
    let f = findings(&coord, "listing change", "removed that key");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["space"], a_id.as_str());
    assert_eq!(f[0]["space_name"], "Space A");
    assert_eq!(f[0]["author"]["key"], laptop_key.as_str());
    assert_eq!(f[0]["author"]["name"], "removed device of Space A");
    assert!(
        f[0]["item"].as_str().is_some_and(|i| i.len() == 64),
        "{f:?}"
    );
    unchanged("a removed device's change");

    // 2. A listing for space A signed by space B's key.
    let forged = path(&b, "forged.bundle");
    adversary(&[
        "sign-change",
        "--home",
        &home(&b),
        "--space",
        &a_id,
        "--rename",
        "Space A is closed",
        "--out",
        &forged,
    ]);
    refused_import(&coord, &forged, "not one of the space's devices");
    let f = findings(&coord, "listing change", "not one of the space's devices");
    assert_eq!(f[0]["space_name"], "Space A");
    assert_eq!(f[0]["author"]["name"], "device of Space B");
    unchanged("space B signing for space A");

    // 3. A roster operation signed by a non-coordinator: space B revokes space A.
    let coup = path(&b, "coup.bundle");
    adversary(&[
        "sign-op",
        "--home",
        &home(&b),
        "--revoke",
        &a_id,
        "--out",
        &coup,
    ]);
    refused_import(&coord, &coup, "only a coordinator may revoke");
    let f = findings(&coord, "roster operation", "only a coordinator may revoke");
    assert_eq!(f[0]["author"]["name"], "device of Space B");
    unchanged("a non-coordinator's roster operation");

    // 4. A coordinator change with too few co-signatures: threshold 2, signed by the second coordinator
    //    alone (its home is not running; it learnt the roster from a bundle).
    let thin = path(&second, "thin.bundle");
    let stranger = TestNode::new().init("stranger");
    adversary(&[
        "sign-op",
        "--home",
        &home(&second),
        "--add-coordinator",
        &stranger,
        "--out",
        &thin,
    ]);
    refused_import(
        &coord,
        &thin,
        "needs the signatures of 2 coordinators and carries 1",
    );
    let f = findings(&coord, "roster operation", "carries 1");
    assert_eq!(f[0]["author"]["name"], "coordinator");
    assert_eq!(f[0]["author"]["key"], second_key.as_str());
    unchanged("a coordinator change with one signature of two");

    // 5. A verification signed by a non-coordinator: space B vouches for its own accessibility.
    let vouch = path(&b, "vouch.bundle");
    adversary(&[
        "sign-verification",
        "--home",
        &home(&b),
        "--space",
        &b_id,
        "--fact",
        "accessibility",
        "--out",
        &vouch,
    ]);
    refused_import(&coord, &vouch, "only a coordinator may verify");
    let f = findings(&coord, "verification", "only a coordinator may verify");
    assert_eq!(f[0]["space_name"], "Space B");
    unchanged("a non-coordinator's verification");

    // 6. A change whose dependency never arrives: stored, waiting, never applied, on every node.
    let orphan = path(&a, "orphan.bundle");
    adversary(&[
        "sign-change",
        "--home",
        &home(&a),
        "--rename",
        "Space A (orphan edit)",
        "--orphan",
        "--out",
        &orphan,
    ]);
    let report = coord.json(&["import", &orphan]);
    assert_eq!(report["changes_new"], 1, "{report}");
    for node in honest {
        wait_until("the orphan change is audited as pending", &honest, || {
            node.audit()["findings"].as_array().is_some_and(|f| {
                f.iter().any(|f| {
                    f["status"] == "pending"
                        && f["space"] == a_id.as_str()
                        && f["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("waiting for change"))
                })
            })
        });
    }
    unchanged("a change whose dependency never arrives");

    // 7a. A replayed old change (the first listing of A, from the bundle carried at the start): already
    //     held, it changes nothing; a CRDT change cannot be replayed into a newer state.
    let replay = coord.json(&["import", &path(&a, "a.bundle")]);
    assert_eq!(replay["changes_new"], 0, "{replay}");
    assert!(replay["known"].as_u64().unwrap_or(0) >= 1, "{replay}");
    unchanged("a replayed change already held");

    // 7b. A replayed old change the space withheld, sent after its revocation: B signs an edit offline,
    //     the coordinators revoke B keeping it listed at what they hold, then B replays its edit.
    b.ok(&["space", "edit", "--name", "Space B (under new management)"]);
    let revoked = coord.json(&[
        "alliance",
        "revoke",
        &b_id,
        "--reason",
        "unpaid dues",
        "--keep-listed",
    ]);
    assert!(
        revoked["summary"]
            .as_str()
            .is_some_and(|s| s.contains("stays in the directory")),
        "{revoked}"
    );
    let after_revocation = directory(&coord);
    wait_until("the member sees B marked revoked", &honest, || {
        directory(&member) == after_revocation
    });
    let marked = after_revocation
        .as_array()
        .and_then(|all| all.iter().find(|l| l["id"] == b_id.as_str()).cloned())
        .expect("B stays listed");
    assert_eq!(marked["deskmesh"]["revoked"], "unpaid dues", "{marked}");
    assert_eq!(marked["name"], "Space B");
    let withheld = path(&b, "withheld.bundle");
    b.ok(&["export", "--format", "bundle", "-o", &withheld]);
    refused_import(&coord, &withheld, "revoked");
    let f = findings(&coord, "listing change", "revocation keeps");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["space_name"], "Space B");
    assert_eq!(f[0]["source"], "bundle");
    for (i, node) in honest.iter().enumerate() {
        assert_eq!(
            directory(node),
            after_revocation,
            "node {i} changed after the replay"
        );
    }

    // The audit fails, as a coordinator's monitoring should notice, and lists every attack.
    let audit = coord.json_exit(&["audit"], 3);
    assert_eq!(audit["ok"], false);
    let text = coord.run(&["audit"]);
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "REFUSED listing change",
        "removed device of Space A",
        "REFUSED roster operation",
        "REFUSED verification",
        "PENDING listing change",
        "why:",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    drop(hub);
}

#[test]
fn mesh_attacks_are_dropped_and_audited_with_the_peer() {
    let coord = TestNode::new();
    coord.init("coordinator");
    let alliance = coord.ok(&["alliance", "create", "Mesh Trust"]);
    let alliance = alliance.trim().to_string();
    let (a, a_id) = daemon::space(&coord, "Space A");
    carry(&a, &coord, "a.bundle");
    let hub = start(&coord, None);
    let member = TestNode::new();
    member.init("member");
    let token = coord.ok(&["alliance", "invite-member"]);
    member.ok(&["alliance", "join", token.lines().next().expect("token")]);
    let _member_daemon = start(&member, Some(&hub.addr));
    let honest = [&coord, &member];
    wait_until("the member holds the directory", &honest, || {
        directory(&member) == directory(&coord)
    });
    let before = directory(&coord);

    // Beacons of space A under forged signatures, from a stranger: each costs the node a check and proves
    // nothing, so past a few the node cuts the peer off, refuses it when it comes back, and audits it
    // once. One batch holds more than the space's beacon burst: those past it wait unchecked while the
    // rest hold the budget, and since that budget comes back when they fail, they are not a flood of
    // space A's beacons: the one finding an hour for that stays for the real flood below.
    let forged = (deskmesh_node::mesh::limits::BEACON_BURST + 80).to_string();
    let out = adversary(&[
        "flood-forged",
        "--home",
        &home(&a),
        "--count",
        &forged,
        "--batch",
        &forged,
        "--to",
        &hub.addr,
    ]);
    let mut lines = out.lines().map(str::trim);
    let forger = lines.next().expect("the forger's peer id").to_string();
    assert_eq!(lines.next(), Some("redial: refused"), "{out}");
    let barred = |node: &TestNode| findings(node, "sync batch", "no honest node relays");
    wait_until("the forger is audited with its peer", &honest, || {
        barred(&coord)
            .iter()
            .any(|f| f["peer"] == forger.as_str() && f["status"] == "refused")
    });
    assert_eq!(barred(&coord).len(), 1, "{:?}", barred(&coord));
    assert!(
        findings(&coord, "seat beacon", "seat beacons of this space an hour").is_empty(),
        "forged beacons counted as the space's flood"
    );
    assert!(
        daemon::log(&coord).contains("disconnected and barred"),
        "{}",
        logs(&[&coord])
    );

    // 400 valid beacons of space A that are an hour old (15-minute ttl): they say nothing any more, so
    // they are dropped unchecked and spend none of A's budget. Had they spent it, the hourly finding would
    // name this peer, and the real flood below would get none of its own.
    adversary(&[
        "flood-beacons",
        "--home",
        &home(&a),
        "--count",
        "400",
        "--age-min",
        "60",
        "--to",
        &hub.addr,
    ]);

    // A flood of valid beacons of space A (signed by A's own key), relayed by a stranger.
    let peer = adversary(&[
        "flood-beacons",
        "--home",
        &home(&a),
        "--count",
        "400",
        "--to",
        &hub.addr,
    ]);
    let peer = peer.trim().to_string();
    wait_until(
        "the flood is audited with the relaying peer",
        &honest,
        || {
            findings(&coord, "seat beacon", "seat beacons of this space an hour")
                .iter()
                .any(|f| f["peer"] == peer.as_str() && f["space"] == a_id.as_str())
        },
    );
    assert!(
        daemon::log(&coord).contains("seat beacons over the space's hourly limit"),
        "{}",
        logs(&[&coord])
    );
    // Only one finding for the whole flood, not one per beacon.
    assert_eq!(
        findings(&coord, "seat beacon", "seat beacons of this space an hour").len(),
        1
    );

    // A gossip message that is not a signed item.
    let peer = adversary(&["gossip", "--alliance", &alliance, "--to", &hub.addr]);
    let peer = peer.trim().to_string();
    wait_until(
        "the unreadable gossip is audited with its peer",
        &honest,
        || {
            findings(&coord, "gossip message", "not a signed item")
                .iter()
                .any(|f| f["peer"] == peer.as_str() && f["source"] == "gossip")
        },
    );

    for (i, node) in honest.iter().enumerate() {
        assert_eq!(directory(node), before, "node {i}'s directory changed");
    }
    // The member, an honest peer of the same host, is still served.
    member.ok(&["status"]);
    let text = String::from_utf8_lossy(&coord.run(&["audit"]).stdout).to_string();
    assert!(text.contains(&format!("peer {peer}")), "{text}");
    assert!(text.contains(&format!("peer {forger}")), "{text}");
    drop(hub);
}
