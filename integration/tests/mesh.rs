//! The mesh end to end: real `deskmesh run` processes on 127.0.0.1 (mDNS off), driven through the control
//! socket, with every wait a poll of `spaces list --json` (or `status`, `audit`) against a deadline.
//!
//! - `five_nodes_replicate_listings_seats_and_catch_up`: a coordinator with no space and four spaces, then
//!   a member's laptop joined with a member token (`dmm1`, the alliance's create operation only); every
//!   listing reaches every node, a seat update travels at once, and a node stopped while others edit
//!   catches up after it restarts, keeping what it had, and the edit it made while stopped reaches every
//!   node.
//! - `two_devices_of_one_space_edit_apart_and_merge`: two device keys of one space edit its listing while
//!   neither daemon runs; once they meet, they and the coordinator show the same merged listing.
//! - `a_joiner_is_not_sent_seat_figures_too_old_to_say_anything`: a space holds an hour-old beacon (15-minute
//!   ttl, imported from a bundle); a new member gets both listings and the live seats of the other space,
//!   and neither it nor the hub is sent the dead beacon, which the space itself keeps.
//! - `a_node_still_showing_an_older_figure_is_sent_the_newer_one`: the space itself holds a figure of its
//!   pool with a 24-hour ttl, the hub a later one that has since said nothing; the hub sends it the later
//!   one, which it takes though it says nothing, and the pool shows unknown.
//! - `a_stranger_is_not_synced_with_served_or_shown`: a node of another alliance connects to the hub; it is
//!   a stranger to it (its key is in no roster and it cannot prove a member token), so neither side syncs
//!   with the other, nothing is served or refused, and nobody shows its listing.

use deskmesh_core::bundle::Bundle;
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_integration::daemon::{
    self, hot_seats, log, log_path, logs, row_of, rows, space, wait_until, Daemon,
};
use deskmesh_integration::{listing_json, TestNode};
use serde_json::Value;

/// Starts `deskmesh run` on a loopback TCP port, dialing `bootstrap` first if given.
fn start(node: &TestNode, bootstrap: Option<&str>) -> Daemon {
    let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    daemon::start(node, &args)
}

/// A member's laptop (no space) joined with a member token from `coord`, and what `alliance join` said.
fn member_laptop(coord: &TestNode) -> (TestNode, String) {
    let laptop = TestNode::new();
    laptop.init("member laptop");
    let token = coord.ok(&["alliance", "invite-member"]);
    let joined = laptop.ok(&[
        "alliance",
        "join",
        token.lines().next().expect("token line"),
    ]);
    (laptop, joined)
}

#[test]
fn five_nodes_replicate_listings_seats_and_catch_up() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Mesh Alliance"]);
    let spaces: Vec<(TestNode, String)> = (1..=4)
        .map(|i| space(&coord, &format!("Space {i}")))
        .collect();
    let mut all: Vec<&TestNode> = vec![&coord];
    all.extend(spaces.iter().map(|(n, _)| n));

    let hub = start(&coord, None);
    let mut daemons: Vec<Option<Daemon>> = spaces
        .iter()
        .map(|(n, _)| Some(start(n, Some(&hub.addr))))
        .collect();

    // (a) Every listing reaches every node, the laptop without a space included.
    for (i, node) in all.iter().enumerate() {
        wait_until(&format!("node {i} shows all four listings"), &all, || {
            let rows = rows(node);
            spaces.iter().all(|(_, id)| row_of(&rows, id).is_some())
        });
    }
    let peers = coord.json(&["peers"]);
    assert!(
        peers["peers"].as_array().map_or(0, Vec::len) >= 4,
        "the coordinator should see the four spaces as peers: {peers}"
    );
    let status = coord.json(&["status"]);
    assert_eq!(status["listings"], 4, "{status}");
    assert!(status["last_sync"].is_string(), "{status}");

    // A member's laptop follows with a member token: it gets the rest of the roster and every listing
    // from the mesh, and verifies them itself.
    let (laptop, joined) = member_laptop(&coord);
    assert!(joined.contains("as a member"), "{joined}");
    assert!(
        rows(&laptop).is_empty(),
        "a new member starts with no listings"
    );
    let _laptop_daemon = start(&laptop, Some(&hub.addr));
    wait_until("the member laptop shows all four listings", &all, || {
        let rows = rows(&laptop);
        spaces.iter().all(|(_, id)| row_of(&rows, id).is_some())
    });
    all.push(&laptop);

    // (b) A seat update through the control socket shows on every other node.
    let (s1, id1) = &spaces[0];
    s1.ok(&["seats", "set", "--pool", "hot", "7"]);
    for (i, node) in all.iter().enumerate() {
        wait_until(&format!("node {i} shows 7 seats at space 1"), &all, || {
            hot_seats(node, id1) == Some(7)
        });
    }

    // (c) A node stopped while others edit catches up after it restarts and keeps what it had.
    let (s4, _) = &spaces[3];
    drop(daemons[3].take());
    s1.ok(&["space", "edit", "--name", "Space 1 renamed"]);
    let (s2, id2) = &spaces[1];
    s2.ok(&["seats", "set", "--pool", "hot", "3"]);
    wait_until("the coordinator shows the edits", &all, || {
        let rows = rows(&coord);
        row_of(&rows, id1).is_some_and(|r| r["name"] == "Space 1 renamed")
            && hot_seats(&coord, id2) == Some(3)
    });
    // Stopped, the node still answers from its own store, with everything it had.
    let offline = rows(s4);
    assert_eq!(offline.len(), 4, "the stopped node keeps all listings");
    assert!(row_of(&offline, id1).is_some_and(|r| r["name"] == "Space 1"));
    // It edited its own listing while stopped: that edit travels by sync, not by gossip, to every node
    // (here each meets it directly; where only the hub reaches it, the NAT lab test shows the hub passing
    // it on).
    let id4 = spaces[3].1.clone();
    s4.ok(&["space", "edit", "--name", "Space 4 edited offline"]);
    daemons[3] = Some(start(s4, Some(&hub.addr)));
    wait_until("the restarted node catches up", &all, || {
        let rows = rows(s4);
        rows.len() == 4
            && row_of(&rows, id1).is_some_and(|r| r["name"] == "Space 1 renamed")
            && hot_seats(s4, id2) == Some(3)
    });
    for (i, node) in all.iter().enumerate() {
        wait_until(&format!("node {i} shows the offline edit"), &all, || {
            row_of(&rows(node), &id4).is_some_and(|r| r["name"] == "Space 4 edited offline")
        });
    }
    drop(daemons);
    drop(hub);
}

/// How many seat beacons of `space` `node` keeps (through its daemon when one runs).
fn beacons_of(node: &TestNode, space: &str) -> usize {
    kept_beacons(node, space).len()
}

/// A seat beacon past its ttl and the stale quarter of an hour says nothing any more: the node that
/// holds it keeps it (an older beacon of its pool stays older) but does not offer it to sync, so a new
/// member is sent live seat figures only.
#[test]
fn a_joiner_is_not_sent_seat_figures_too_old_to_say_anything() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Beacon Alliance"]);
    let (quiet, quiet_id) = space(&coord, "Quiet Space");
    let (busy, busy_id) = space(&coord, "Busy Space");
    // An hour-old figure with a 15-minute ttl, signed by the space's own key, as an old bundle brings it.
    let (file, _) = old_beacon(&quiet, "old-beacon.bundle", 60, 900);
    quiet.ok(&["import", &file]);
    assert_eq!(beacons_of(&quiet, &quiet_id), 1, "the space keeps it");
    busy.ok(&["seats", "set", "--pool", "hot", "4"]);

    let hub = start(&coord, None);
    let _quiet = start(&quiet, Some(&hub.addr));
    let _busy = start(&busy, Some(&hub.addr));
    let (member, _) = member_laptop(&coord);
    let _member = start(&member, Some(&hub.addr));
    let all = [&coord, &quiet, &busy, &member];
    // Each space's items are served together (listing, then beacons), so once the member shows both
    // listings and the live seats, a dead beacon offered alongside would be there too.
    wait_until(
        "the member shows both spaces and the live seats",
        &all,
        || {
            let rows = rows(&member);
            row_of(&rows, &quiet_id).is_some() && hot_seats(&member, &busy_id) == Some(4)
        },
    );
    assert_eq!(beacons_of(&member, &busy_id), 1);
    assert_eq!(
        beacons_of(&member, &quiet_id),
        0,
        "the member was sent a beacon that says nothing{}",
        logs(&all)
    );
    assert_eq!(beacons_of(&coord, &quiet_id), 0, "the hub was sent it");
    assert_eq!(beacons_of(&quiet, &quiet_id), 1, "the space dropped it");
    let member_rows = rows(&member);
    let pool = &row_of(&member_rows, &quiet_id).expect("the quiet space")["seats"][0];
    assert_eq!(pool["freshness"], "unknown", "{pool}");
}

/// Signs, with `node`'s key, one beacon of its space dated `age_min` minutes ago, fresh for `ttl_s`, into
/// a bundle, and returns the bundle's path and the beacon's bytes.
fn old_beacon(node: &TestNode, name: &str, age_min: u32, ttl_s: u32) -> (String, Vec<u8>) {
    let file = node.dir.path().join(name);
    let file = file.to_str().expect("utf-8 path").to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dm-adversary"))
        .args(["sign-beacon", "--home"])
        .arg(node.home())
        .args(["--age-min", &age_min.to_string()])
        .args(["--ttl-s", &ttl_s.to_string(), "--out", &file])
        .output()
        .expect("run dm-adversary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = Bundle::decode(&std::fs::read(&file).expect("read")).expect("a bundle");
    let bytes = bundle.beacons.first().expect("one beacon").clone();
    (file, bytes)
}

/// The beacons of `space` that `node` keeps, as their exact bytes.
fn kept_beacons(node: &TestNode, space: &str) -> Vec<Vec<u8>> {
    let file = node.dir.path().join("kept.bundle");
    node.ok(&[
        "export",
        "--format",
        "bundle",
        "-o",
        file.to_str().expect("utf-8 path"),
    ]);
    let bundle = Bundle::decode(&std::fs::read(&file).expect("read the bundle")).expect("a bundle");
    bundle
        .beacons
        .into_iter()
        .filter(|b| {
            SignedBeacon::from_bytes(b)
                .and_then(|b| b.decode())
                .is_ok_and(|b| b.space.to_string() == space)
        })
        .collect()
}

/// A node that missed a figure while it was fresh still holds the one before it, and that one may still
/// run (a longer ttl). The later figure, too old to say anything, is offered by nobody, so reconciling
/// never brings it: a node that holds it sends it when the older one is offered to it, and the node
/// that showed the older figure takes the later one, which says nothing, so its pool shows unknown like
/// everywhere else.
#[test]
fn a_node_still_showing_an_older_figure_is_sent_the_newer_one() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Beacon Alliance"]);
    let (space_node, space_id) = space(&coord, "Quiet Space");
    // Two hours ago, for 24 hours; then an hour ago, for 15 minutes (said nothing since 30 minutes ago).
    let (older_file, older) = old_beacon(&space_node, "older.bundle", 120, 86_400);
    let (newer_file, newer) = old_beacon(&space_node, "newer.bundle", 60, 900);
    space_node.ok(&["import", &older_file]);
    coord.ok(&["import", &newer_file]);
    assert_eq!(kept_beacons(&space_node, &space_id), vec![older.clone()]);
    assert_eq!(kept_beacons(&coord, &space_id), vec![newer.clone()]);
    let shown = |node: &TestNode| {
        row_of(&rows(node), &space_id).expect("the space")["seats"][0]["freshness"].clone()
    };
    assert_eq!(shown(&space_node), "fresh", "the older figure still runs");

    let hub = start(&coord, None);
    let _space = start(&space_node, Some(&hub.addr));
    let all = [&coord, &space_node];
    wait_until("the space is sent the later figure", &all, || {
        kept_beacons(&space_node, &space_id) == vec![newer.clone()]
    });
    assert_eq!(shown(&space_node), "unknown");
    assert_eq!(kept_beacons(&coord, &space_id), vec![newer.clone()]);
    for (i, node) in all.iter().enumerate() {
        let refused: Vec<Value> = node.audit()["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["status"] == "refused")
            .cloned()
            .collect();
        assert!(refused.is_empty(), "node {i} refused: {refused:?}");
    }
}

/// A node of another alliance that connects is a stranger: nothing is synced with it on either side, it is
/// served nothing, and its listing is never shown. (Items a stranger pushes anyway are verified and refused
/// like any other: see the core's ingest tests.)
#[test]
fn a_stranger_is_not_synced_with_served_or_shown() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Mesh Alliance"]);
    let (member, member_id) = space(&coord, "Member");

    // The rogue founds an alliance of its own and signs a listing and a beacon in it.
    let rogue = TestNode::new();
    let rogue_key = rogue.init("rogue");
    rogue.ok(&["alliance", "create", "Rogue Alliance"]);
    let token = rogue.ok(&["alliance", "invite", &rogue_key, "--space", "Rogue"]);
    rogue.ok(&[
        "alliance",
        "join",
        token.lines().next().expect("token line"),
    ]);
    let rogue_id = rogue.json(&["alliance", "show"])["this_space"]
        .as_str()
        .expect("this_space")
        .to_string();
    let file = rogue.dir.path().join("listing.json");
    std::fs::write(&file, listing_json(&rogue_id, "Rogue").to_string()).expect("write");
    rogue.ok(&[
        "space",
        "edit",
        "--file",
        file.to_str().expect("utf-8 path"),
    ]);
    rogue.ok(&["seats", "set", "--pool", "hot", "5"]);
    let all = [&coord, &member, &rogue];

    let hub = start(&coord, None);
    let _member = start(&member, Some(&hub.addr));
    let _rogue = start(&rogue, Some(&hub.addr));

    wait_until("the rogue is connected to the hub", &all, || {
        rogue.json(&["peers"])["peers"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    });
    wait_until("the member's listing reaches the coordinator", &all, || {
        row_of(&rows(&coord), &member_id).is_some()
    });
    // A seat update travels to the hub while the rogue stays connected.
    member.ok(&["seats", "set", "--pool", "hot", "4"]);
    wait_until("the member's seats reach the coordinator", &all, || {
        hot_seats(&coord, &member_id) == Some(4)
    });
    for (i, node) in [&coord, &member].iter().enumerate() {
        let rows = rows(node);
        assert!(
            row_of(&rows, &rogue_id).is_none(),
            "node {i} shows the non-member's listing: {rows:?}"
        );
        assert_eq!(rows.len(), 1, "node {i}: {rows:?}");
    }
    // Neither side offered the other anything: nothing was refused, and the rogue holds only its own.
    for (i, node) in all.iter().enumerate() {
        let audit = node.audit();
        let refused: Vec<_> = audit["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["status"] == "refused")
            .collect();
        assert!(
            refused.is_empty(),
            "node {i} refused items: {refused:?}{}",
            logs(&all)
        );
    }
    assert_eq!(rows(&rogue).len(), 1);
    assert!(
        log(&coord).contains("trust=Stranger"),
        "the hub saw the rogue as a stranger{}",
        logs(&all)
    );
}

#[test]
fn two_devices_of_one_space_edit_apart_and_merge() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Mesh Alliance"]);
    let (a, id) = space(&coord, "Shared");
    let b = TestNode::new();
    let b_key = b.init("second device");
    let token = a.ok(&["alliance", "add-device", &b_key]);
    b.ok(&[
        "alliance",
        "join",
        token.lines().next().expect("token line"),
    ]);
    let all = [&coord, &a, &b];

    let hub = start(&coord, None);
    let da = start(&a, Some(&hub.addr));
    let db = start(&b, Some(&hub.addr));
    wait_until("the second device has the listing", &all, || {
        row_of(&rows(&b), &id).is_some()
    });
    drop(da);
    drop(db);

    // Apart: each device changes a different field of the same listing.
    a.ok(&["space", "edit", "--add-amenity", "meeting_room"]);
    b.ok(&["space", "edit", "--name", "Shared and merged"]);

    let _da = start(&a, Some(&hub.addr));
    let _db = start(&b, Some(&hub.addr));
    let merged = |node: &TestNode| {
        let rows = rows(node);
        row_of(&rows, &id).is_some_and(|r| {
            r["name"] == "Shared and merged"
                && r["amenities"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x == "meeting_room"))
        })
    };
    for (i, node) in all.iter().enumerate() {
        wait_until(&format!("node {i} shows the merged listing"), &all, || {
            merged(node)
        });
    }
    let signers = row_of(&rows(&coord), &id).expect("row")["signers"].clone();
    assert!(
        signers
            .as_array()
            .is_some_and(|s| s.iter().any(|k| k == b_key.as_str())),
        "the second device is among the signers: {signers}"
    );
}

#[test]
fn a_new_member_gets_a_large_directory_in_order_with_nothing_refused() {
    // A coordinator holding 204 spaces (the sample alliance admitted 17 times, each space with its own
    // key, signed listing and beacons), built through the library to keep the test short.
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Big Alliance"]);
    {
        let home = deskmesh_core::home::Home::at(coord.home());
        let mut node = deskmesh_core::Node::open(&home).expect("open coordinator");
        for _ in 0..17 {
            deskmesh_node::demo::populate(&home, &mut node, chrono::Utc::now()).expect("populate");
        }
    }
    let total = coord.json(&["status"])["listings"]
        .as_u64()
        .expect("listings");
    assert_eq!(total, 204);
    let hub = start(&coord, None);

    // The member starts from the alliance's create operation alone: 204 admissions, 204 listings and
    // their beacons must arrive with every admission before the listings it authorises.
    let (laptop, _) = member_laptop(&coord);
    let _member = start(&laptop, Some(&hub.addr));
    wait_until("the member holds every listing", &[&coord, &laptop], || {
        laptop.json(&["status"])["listings"].as_u64() == Some(total)
    });
    let audit = laptop.audit();
    assert_eq!(
        audit["findings"].as_array().map_or(0, Vec::len),
        0,
        "items were refused on the way: {}",
        audit["findings"]
    );
    // A first sync this large is reported as it goes, and its end too.
    wait_until("the member reports it caught up", &[&laptop], || {
        std::fs::read_to_string(log_path(&laptop)).is_ok_and(|l| l.contains("caught up with peers"))
    });
    let log = std::fs::read_to_string(log_path(&laptop)).unwrap_or_default();
    assert!(log.contains("catching up with peers"), "{log}");
    assert!(
        !log.contains("at capacity"),
        "the member dropped requests:{}",
        logs(&[&laptop])
    );
    drop(hub);
}
