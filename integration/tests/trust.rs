//! Trust that reaches what people see, end to end with real `deskmesh run` processes on 127.0.0.1:
//!
//! - `a_revocation_reaches_members_and_the_revoked_node`: a coordinator revokes a space; it leaves a
//!   member's directory and exports, its seat beacons stop, and the revoked node's own `status` says so
//!   with the reason (and refuses to sign for it).
//! - `coordinator_changes_collect_approvals_over_the_mesh_and_by_token`: with a threshold of two, a
//!   proposal travels to the other coordinator, waits in `alliance proposals`, and takes effect on both
//!   once approved; a token carried in a file does the same offline.
//! - `verified_facts_reach_members_and_drop_back_when_changed`: a coordinator verifies a space's
//!   accessibility; members see who verified it and when, filter on verified facts only, and see it fall
//!   back to claimed when the space changes it.
//! - `an_audit_file_is_checked_offline_with_the_same_report`: `audit export` on a coordinator, `audit
//!   verify` on a machine that never joined: the same roster, listings and findings; a tampered file is
//!   caught.

use deskmesh_integration::daemon::{self, row_of, rows, wait_until, Daemon};
use deskmesh_integration::{listing_json, TestNode};
use serde_json::Value;

fn start(node: &TestNode, bootstrap: Option<&str>) -> Daemon {
    let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    daemon::start(node, &args)
}

fn member_of(coord: &TestNode) -> TestNode {
    let member = TestNode::new();
    member.init("member");
    let token = coord.ok(&["alliance", "invite-member"]);
    member.ok(&["alliance", "join", token.lines().next().expect("token")]);
    member
}

fn file(node: &TestNode, name: &str) -> String {
    node.dir
        .path()
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

#[test]
fn a_revocation_reaches_members_and_the_revoked_node() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Trust Alliance"]);
    let (space, id) = daemon::space(&coord, "Unpaid Desks");
    let (other, other_id) = daemon::space(&coord, "Paid Desks");
    let member = member_of(&coord);
    let all = [&coord, &space, &other, &member];
    let hub = start(&coord, None);
    let _space = start(&space, Some(&hub.addr));
    let _other = start(&other, Some(&hub.addr));
    let _member = start(&member, Some(&hub.addr));
    space.ok(&["seats", "set", "--pool", "hot", "4"]);
    wait_until("the member shows both spaces and the seats", &all, || {
        daemon::hot_seats(&member, &id) == Some(4) && row_of(&rows(&member), &other_id).is_some()
    });

    coord.ok(&["alliance", "revoke", &id, "--reason", "unpaid dues"]);
    wait_until(
        "the revoked space leaves the member's directory",
        &all,
        || {
            let rows = rows(&member);
            row_of(&rows, &id).is_none() && row_of(&rows, &other_id).is_some()
        },
    );
    for format in ["json", "geojson", "csv", "jsonld"] {
        let export = member.ok(&["export", "--format", format]);
        assert!(
            !export.contains(&id) && export.contains(&other_id),
            "{format} export still carries the revoked space: {export}"
        );
    }
    // Its node hears it, with the reason, and no longer signs for the space.
    wait_until("the revoked node's status says so", &all, || {
        space.json(&["status"])["standing"]["reason"] == "unpaid dues"
    });
    let status = space.ok(&["status"]);
    assert!(
        status.contains("REVOKED") && status.contains("unpaid dues"),
        "{status}"
    );
    let err = space.fails(&["seats", "set", "--pool", "hot", "9"]);
    assert!(
        err.contains("was revoked by the alliance: unpaid dues"),
        "{err}"
    );
    // The member's audit has nothing to report, and remembers why the space is gone.
    let audit = member.audit();
    assert_eq!(audit["ok"], true, "{audit}");
    assert!(
        audit["listings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["space"] == id.as_str() && l["revoked"] == "unpaid dues"),
        "{audit}"
    );
    drop(hub);
}

#[test]
fn coordinator_changes_collect_approvals_over_the_mesh_and_by_token() {
    let first = TestNode::new();
    first.init("first coordinator");
    first.ok(&["alliance", "create", "Quorum Alliance"]);
    let second = member_of(&first);
    let second_key = second.json(&["status"])["public_key"]
        .as_str()
        .expect("key")
        .to_string();
    // With the founding threshold of one, these take effect at once.
    let added = first.json(&["alliance", "propose", "add-coordinator", &second_key]);
    assert_eq!(added["applied"], true, "{added}");
    let raised = first.json(&["alliance", "propose", "threshold", "2"]);
    assert_eq!(raised["applied"], true, "{raised}");
    let all = [&first, &second];
    let hub = start(&first, None);
    let _second = start(&second, Some(&hub.addr));
    wait_until("the second coordinator knows it is one", &all, || {
        second.json(&["alliance", "show"])["threshold"] == 2
    });

    // Over the mesh: proposed on the first, listed and approved on the second, in effect on both.
    let third = TestNode::new().init("third");
    let proposal = first.json(&["alliance", "propose", "add-coordinator", &third]);
    assert_eq!(proposal["applied"], false, "{proposal}");
    assert_eq!(proposal["missing"], 1, "{proposal}");
    let id = proposal["id"].as_str().expect("id").to_string();
    let pending = first.ok(&["alliance", "proposals"]);
    assert!(pending.contains("1 of 2 signatures"), "{pending}");
    wait_until("the proposal reaches the second coordinator", &all, || {
        second.json(&["alliance", "proposals"])["proposals"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["id"] == id.as_str()))
    });
    let approved = second.json(&["alliance", "approve", &id[..8]]);
    assert_eq!(approved["applied"], true, "{approved}");
    let is_coordinator = |node: &TestNode, key: &str| {
        node.json(&["alliance", "show"])["coordinators"]
            .as_array()
            .is_some_and(|c| c.iter().any(|k| k == key))
    };
    wait_until("the new coordinator counts on both nodes", &all, || {
        is_coordinator(&first, &third) && is_coordinator(&second, &third)
    });
    wait_until("no proposal is left waiting", &all, || {
        first.json(&["alliance", "proposals"])["proposals"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });

    // Offline: the token, carried in a file, approved on the other side.
    let fourth = TestNode::new().init("fourth");
    let token = first.ok(&["alliance", "propose", "add-coordinator", &fourth]);
    let token_file = file(&second, "proposal.txt");
    std::fs::write(&token_file, token.trim()).expect("write token");
    let approved = second.json(&["alliance", "approve", &token_file]);
    assert_eq!(approved["applied"], true, "{approved}");
    wait_until("the offline approval reaches the proposer", &all, || {
        is_coordinator(&first, &fourth)
    });
    // A member of the alliance that is no coordinator cannot approve.
    let member = member_of(&first);
    let err = member.fails(&["alliance", "approve", token.trim()]);
    assert!(err.contains("only a coordinator"), "{err}");
    drop(hub);
}

#[test]
fn verified_facts_reach_members_and_drop_back_when_changed() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Verified Alliance"]);
    let (space, id) = daemon::space(&coord, "Step Free Desks");
    let (other, other_id) = daemon::space(&coord, "Claims Only");
    let member = member_of(&coord);
    let all = [&coord, &space, &other, &member];
    let hub = start(&coord, None);
    let _space = start(&space, Some(&hub.addr));
    let _other = start(&other, Some(&hub.addr));
    let _member = start(&member, Some(&hub.addr));
    wait_until("the coordinator holds both listings", &all, || {
        rows(&coord).len() == 2 && rows(&member).len() == 2
    });

    let verified = coord.json(&[
        "alliance",
        "verify",
        &id,
        "--fact",
        "accessibility",
        "--fact",
        "internet.down_mbps",
        "--checked-on",
        "2026-05-01",
        "--note",
        "visited",
    ]);
    assert_eq!(verified["checked_on"], "2026-05-01");
    let facts = |node: &TestNode, space: &str| -> Vec<Value> {
        row_of(&rows(node), space)
            .and_then(|r| r["facts"].as_array().cloned())
            .unwrap_or_default()
    };
    wait_until("the member sees the verified facts", &all, || {
        facts(&member, &id).len() == 2
    });
    let seen = facts(&member, &id);
    let access = seen
        .iter()
        .find(|f| f["fact"] == "accessibility")
        .expect("accessibility");
    assert_eq!(access["status"], "verified");
    assert_eq!(access["checked_on"], "2026-05-01");
    assert_eq!(access["by"]["name"], "coordinator");
    assert!(
        facts(&member, &other_id).is_empty(),
        "the other space only claims"
    );
    let text = member.ok(&["spaces", "list"]);
    assert!(text.contains("verified: accessibility"), "{text}");
    // Both listings claim wheelchair access; only one is verified.
    let filtered = |node: &TestNode, verified_only: bool| -> Vec<String> {
        let mut args = vec!["spaces", "list", "--access", "wheelchair"];
        if verified_only {
            args.push("--verified-only");
        }
        node.json(&args)["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(filtered(&member, false).len(), 2);
    assert_eq!(filtered(&member, true), vec![id.clone()]);
    let geo = member.ok(&["export", "--format", "geojson"]);
    assert!(
        geo.contains("\"verified\"") && geo.contains("2026-05-01"),
        "{geo}"
    );

    // The space changes its accessibility: the fact drops back to claimed everywhere.
    let mut changed = listing_json(&id, "Step Free Desks");
    changed["accessibility"] =
        serde_json::json!({"wheelchair": "yes", "toilets_wheelchair": false});
    let path = file(&space, "changed.json");
    std::fs::write(&path, changed.to_string()).expect("write");
    space.ok(&["space", "edit", "--file", &path]);
    wait_until(
        "the member sees the fact changed since verified",
        &all,
        || {
            facts(&member, &id)
                .iter()
                .any(|f| f["fact"] == "accessibility" && f["status"] == "changed since verified")
        },
    );
    assert!(filtered(&member, true).is_empty());
    drop(hub);
}

#[test]
fn an_audit_file_is_checked_offline_with_the_same_report() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Audited Alliance"]);
    let (space, id) = daemon::space(&coord, "Audited Desks");
    space.ok(&["seats", "set", "--pool", "hot", "3"]);
    let bundle = file(&space, "space.bundle");
    space.ok(&["export", "--format", "bundle", "-o", &bundle]);
    coord.ok(&["import", &bundle]);
    coord.ok(&["alliance", "verify", &id, "--fact", "opening_hours"]);
    // Something refused, for the report to carry: a listing for the space signed by a stranger.
    let rogue = TestNode::new();
    rogue.init("rogue");
    rogue.ok(&["alliance", "create", "Rogue"]);
    let rogue_key = rogue.json(&["status"])["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let token = rogue.ok(&["alliance", "invite", &rogue_key, "--space", "Rogue"]);
    rogue.ok(&["alliance", "join", token.lines().next().unwrap()]);
    let rogue_bundle = file(&rogue, "rogue.bundle");
    rogue.ok(&["export", "--format", "bundle", "-o", &rogue_bundle]);
    coord.run(&["import", &rogue_bundle]);

    let here = coord.json_exit(&["audit"], 3);
    let audit_file = file(&coord, "alliance.audit");
    coord.ok(&["audit", "export", &audit_file]);
    // A machine that never joined anything.
    let stranger = TestNode::new();
    let offline = stranger.json_exit(&["audit", "verify", &audit_file], 3);
    assert_eq!(offline["source"]["File"]["signature_ok"], true, "{offline}");
    for field in ["roster", "listings", "verifications", "findings", "ok"] {
        assert_eq!(offline[field], here[field], "{field} differs");
    }
    assert!(!here["findings"].as_array().unwrap().is_empty());
    let text = String::from_utf8_lossy(&stranger.run(&["audit", "verify", &audit_file]).stdout)
        .to_string();
    assert!(
        text.contains("checked: an audit file exported by node \"coordinator\""),
        "{text}"
    );
    assert!(text.contains("its signature verifies"), "{text}");

    // Flip a byte near the end (the refusal log): the file's signature no longer verifies.
    let mut bytes = std::fs::read(&audit_file).unwrap();
    let n = bytes.len() - 90;
    bytes[n] ^= 0x20;
    let tampered = file(&coord, "tampered.audit");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = stranger.run(&["audit", "verify", &tampered, "--json"]);
    assert_ne!(out.status.code(), Some(0), "a tampered file must not pass");
    let err = stranger.fails(&["audit", "verify", &file(&coord, "missing.audit")]);
    assert!(err.contains("missing.audit"), "{err}");
}
