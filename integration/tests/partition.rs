//! Five nodes in network namespaces (the vendored `tools/netlab`, with a bridge and subnet of this test's
//! own), partitioned with 5 % packet loss, then healed. Needs root, iproute2 and nftables: skipped with a
//! note elsewhere, required under `CI`.
//!
//! - `partitioned_nodes_notice_dead_peers_find_each_other_again_and_converge`: a coordinator and four
//!   spaces converge; the network splits into {1, 2} and {3, 4, 5} with 5 % loss everywhere; each side
//!   notices within tens of seconds that the other stopped answering (pings), the three nodes on the far
//!   side are restarted inside the partition and reach each other through the peers they saved, not the
//!   unreachable bootstrap; both sides edit; after the partition heals (the loss stays), every node shows
//!   every edit. The times are printed for docs/BENCHMARKS.md.

use std::time::Instant;

use deskmesh_integration::daemon::{self, logs, row_of, rows, space, wait_until, Daemon};
use deskmesh_integration::lab::Lab;
use deskmesh_integration::TestNode;

fn peer_count(node: &TestNode) -> usize {
    node.json(&["peers"])["peers"]
        .as_array()
        .map_or(0, Vec::len)
}

fn peer_ids(node: &TestNode) -> Vec<String> {
    node.json(&["peers"])["peers"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| p["peer_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn peer_id(node: &TestNode) -> String {
    node.json(&["status"])["peer_id"]
        .as_str()
        .expect("peer_id")
        .to_string()
}

#[test]
fn partitioned_nodes_notice_dead_peers_find_each_other_again_and_converge() {
    let Some(lab) = Lab::up(5, 0) else {
        return;
    };
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Lab Alliance"]);
    let mut spaces = Vec::new();
    for i in 2..=5 {
        spaces.push(space(&coord, &format!("Space {i}")));
    }
    let nodes: Vec<&TestNode> = std::iter::once(&coord)
        .chain(spaces.iter().map(|(n, _)| n))
        .collect();
    let ids: Vec<&str> = spaces.iter().map(|(_, id)| id.as_str()).collect();

    let listen = |i: usize| format!("/ip4/{}/tcp/4717", lab.ip(i));
    let start = |i: usize, bootstrap: Option<&str>| -> Daemon {
        let l = listen(i);
        let mut args = vec!["--listen", l.as_str()];
        if let Some(b) = bootstrap {
            args.extend(["--bootstrap", b]);
        }
        daemon::start_in(nodes[i - 1], Some(&lab.host(i)), &args)
    };
    let hub = start(1, None);
    let hub_addr = hub.addr.clone();
    let mut daemons: Vec<Option<Daemon>> = vec![Some(hub)];
    for i in 2..=5 {
        daemons.push(Some(start(i, Some(&hub_addr))));
    }
    for (n, node) in nodes.iter().enumerate() {
        wait_until(
            &format!("node {} holds every listing", n + 1),
            &nodes,
            || rows(node).len() == 4,
        );
    }
    // The far side meets itself too (through the hub's DHT), and saves those peers.
    let far: Vec<String> = (3..=5).map(|i| peer_id(nodes[i - 1])).collect();
    for i in 3..=5 {
        wait_until(
            &format!("node {i} knows the other far nodes"),
            &nodes,
            || {
                let p = peer_ids(nodes[i - 1]);
                far.iter().filter(|f| p.contains(f)).count() >= 2
            },
        );
        wait_until(&format!("node {i} saved its peers"), &nodes, || {
            std::fs::read_to_string(nodes[i - 1].home().join("peers.json"))
                .is_ok_and(|t| far.iter().filter(|f| t.contains(f.as_str())).count() >= 2)
        });
    }

    lab.partition(&[1, 2], &[3, 4, 5]);
    for i in 1..=5 {
        lab.loss(i, 5);
    }
    let split = Instant::now();
    wait_until(
        "the hub notices the far side stopped answering",
        &nodes,
        || {
            let p = peer_ids(&coord);
            !far.iter().any(|f| p.contains(f))
        },
    );
    let noticed = split.elapsed();

    // Restarted inside the partition: the bootstrap (the hub) is out of reach; the saved peers are not.
    for i in 3..=5 {
        drop(daemons[i - 1].take());
    }
    let restart = Instant::now();
    for i in 3..=5 {
        daemons[i - 1] = Some(start(i, Some(&hub_addr)));
    }
    for i in 3..=5 {
        wait_until(
            &format!("restarted node {i} reaches the other far nodes"),
            &nodes,
            || peer_count(nodes[i - 1]) >= 2,
        );
    }
    let refound = restart.elapsed();

    // Both sides edit while apart.
    spaces[0]
        .0
        .ok(&["space", "edit", "--name", "Space 2 near side"]);
    spaces[2]
        .0
        .ok(&["space", "edit", "--name", "Space 4 far side"]);
    wait_until("the far side has its own edit", &nodes, || {
        row_of(&rows(nodes[4]), ids[2]).is_some_and(|r| r["name"] == "Space 4 far side")
    });

    lab.heal();
    for i in 1..=5 {
        lab.loss(i, 5);
    }
    let healed = Instant::now();
    for (n, node) in nodes.iter().enumerate() {
        wait_until(
            &format!("node {} shows both sides' edits", n + 1),
            &nodes,
            || {
                let rows = rows(node);
                row_of(&rows, ids[0]).is_some_and(|r| r["name"] == "Space 2 near side")
                    && row_of(&rows, ids[2]).is_some_and(|r| r["name"] == "Space 4 far side")
            },
        );
    }
    let converged = healed.elapsed();
    for (n, node) in nodes.iter().enumerate() {
        let audit = node.audit();
        assert_eq!(audit["ok"], true, "node {}: {audit}{}", n + 1, logs(&nodes));
    }
    eprintln!(
        "partition: dead peers noticed after {:.1} s; restarted far nodes reconnected after {:.1} s; \
         converged {:.1} s after the heal (5 % loss throughout)",
        noticed.as_secs_f64(),
        refound.as_secs_f64(),
        converged.as_secs_f64()
    );
}
