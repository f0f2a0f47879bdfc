//! `natbench`: NAT traversal figures from the NAT lab ([`deskmesh_integration::natlab`]: a relay on the
//! public side, spaces behind two endpoint-independent NATs and one symmetric NAT), with real `deskmesh run`
//! processes. Needs root, iproute2 and nftables. Prints, for docs/BENCHMARKS.md:
//!
//! 1. time from starting the private nodes to the first connection between cone spaces 1 and 2 (through
//!    the relay) and to their direct connection (DCUtR), and to the first (relayed) connection between
//!    cone space 1 and the symmetric space;
//! 2. hole-punch success over `--attempts` attempts per pair (cone-cone, cone-symmetric): each attempt
//!    restarts the second node of the pair on a new port, and the two meet again through the relay;
//!    an attempt counts as a success when a hole punch between the two succeeds within `--deadline`
//!    seconds, and is reported as failed (DCUtR gave up) or as not tried (no relayed connection in time);
//! 3. seat propagation p50 / p99 from cone space 1 to cone space 2 (direct) and to the symmetric space
//!    (relayed), over `--updates` updates, publish to "new item by gossip", read from the daemons' logs.
//!
//! Times come from the daemons' log timestamps (one clock: every namespace shares the host's). It drives
//! the `deskmesh` binary beside itself (`target/<profile>/deskmesh`) unless `DESKMESH_BIN` is set.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Parser;
use deskmesh_integration::daemon::{hot_seats, log};
use deskmesh_integration::natlab::{self, link, peer_id, private_and_reserved, Link, NatLab};
use deskmesh_integration::TestNode;

#[derive(Parser, Debug)]
#[command(about = "NAT traversal figures from the network-namespace NAT lab")]
struct Args {
    /// Hole-punch attempts per pair.
    #[arg(long, default_value_t = 20)]
    attempts: usize,
    /// Seat updates for the propagation figures.
    #[arg(long, default_value_t = 50)]
    updates: usize,
    /// Seconds one wait may take.
    #[arg(long, default_value_t = 60)]
    deadline: u64,
}

/// One line of a daemon log: its timestamp and the rest.
struct Line<'a> {
    at: DateTime<Utc>,
    text: &'a str,
}

impl<'a> Line<'a> {
    fn parse(raw: &'a str) -> Option<Line<'a>> {
        let (ts, rest) = raw.trim().split_once(' ')?;
        let at = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
        Some(Line { at, text: rest })
    }

    /// The value of `name=...` among the fields.
    fn field(&self, name: &str) -> Option<&'a str> {
        let pat = format!(" {name}=");
        let start = self.text.find(&pat)? + pat.len();
        self.text[start..].split_whitespace().next()
    }
}

/// The lines of `node`'s log after byte `from`.
fn lines_after(node: &TestNode, from: usize) -> Vec<(DateTime<Utc>, String)> {
    let text = log(node);
    text.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Line::parse(l).map(|p| (p.at, p.text.to_string())))
        .collect()
}

fn field(text: &str, name: &str) -> Option<String> {
    Line::parse(&format!("2000-01-01T00:00:00Z {text}"))
        .and_then(|l| l.field(name).map(String::from))
}

fn wait(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > deadline {
            bail!("timed out waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn ms(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The first time `node`'s log (after `from`) says `peer` connected, and through which address.
fn first_connection(node: &TestNode, from: usize, peer: &str) -> Option<(DateTime<Utc>, String)> {
    lines_after(node, from).into_iter().find_map(|(at, t)| {
        (t.contains("peer connected") && field(&t, "peer").as_deref() == Some(peer))
            .then(|| (at, field(&t, "address").unwrap_or_default()))
    })
}

/// The outcome of the first hole punch between the two nodes logged after the offsets: `Some(true)` for a
/// success, with its time.
fn punch(
    a: (&TestNode, usize, &str),
    b: (&TestNode, usize, &str),
) -> Option<(bool, DateTime<Utc>)> {
    let mut out: Option<(bool, DateTime<Utc>)> = None;
    for (node, from, other) in [a, b] {
        for (at, t) in lines_after(node, from) {
            let ok = t.contains("hole punch succeeded");
            if (ok || t.contains("hole punch failed"))
                && field(&t, "peer").as_deref() == Some(other)
            {
                // A success on either end wins; otherwise the earliest failure.
                out = match out {
                    Some((true, _)) => out,
                    _ if ok => Some((true, at)),
                    Some((false, prev)) if prev <= at => out,
                    _ => Some((false, at)),
                };
                break;
            }
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("DESKMESH_BIN").is_none() {
        let exe = std::env::current_exe()?;
        let bin = exe.with_file_name("deskmesh");
        if !bin.exists() {
            bail!(
                "no deskmesh binary at {}: build it (cargo build -p deskmesh-node --bin deskmesh) or set DESKMESH_BIN",
                bin.display()
            );
        }
        std::env::set_var("DESKMESH_BIN", bin);
    }
    let deadline = Duration::from_secs(args.deadline);
    let Some(lab) = NatLab::new(0) else {
        bail!("network namespaces are not available here (run as root with iproute2 and nftables)");
    };
    let ids: Vec<String> = (0..=3).map(|i| peer_id(lab.node(i))).collect();

    // 1. Start to first connection.
    lab.start_relay();
    let t0 = Utc::now();
    for k in 1..=3 {
        lab.start_private(k);
    }
    wait("the cone spaces connect directly", deadline, || {
        link(lab.node(1), &ids[2]) == Link::Direct
    })
    .context("cone spaces")?;
    wait(
        "cone space 1 and the symmetric space connect",
        deadline,
        || link(lab.node(1), &ids[3]) != Link::None,
    )?;
    let reserved = |k: usize| {
        lines_after(lab.node(k), 0)
            .into_iter()
            .find(|(_, t)| t.contains("relay reservation accepted"))
            .map(|(at, _)| ms(at - t0))
    };
    println!("## start to first connection (private nodes started at t = 0)");
    for k in 1..=3 {
        let verdict = lines_after(lab.node(k), 0)
            .into_iter()
            .find(|(_, t)| t.contains("reachability changed") && t.contains("Private"))
            .map(|(at, _)| ms(at - t0));
        println!(
            "node {k} ({:?}): AutoNAT private after {:.0} ms, reservation accepted after {:.0} ms",
            NatLab::KINDS[k - 1],
            verdict.unwrap_or(f64::NAN),
            reserved(k).unwrap_or(f64::NAN)
        );
    }
    let first = first_connection(lab.node(1), 0, &ids[2]);
    let direct = punch((lab.node(1), 0, &ids[2]), (lab.node(2), 0, &ids[1]));
    let sym = first_connection(lab.node(1), 0, &ids[3]);
    if let Some((at, addr)) = &first {
        println!(
            "cone 1 <-> cone 2: first connection after {:.0} ms via {addr}",
            ms(*at - t0)
        );
    }
    if let Some((ok, at)) = direct {
        println!(
            "cone 1 <-> cone 2: hole punch {} after {:.0} ms",
            if ok { "succeeded" } else { "failed" },
            ms(at - t0)
        );
    }
    if let Some((at, addr)) = &sym {
        println!(
            "cone 1 <-> symmetric 3: first connection after {:.0} ms via {addr}",
            ms(*at - t0)
        );
    }

    // 3 first (the mesh is up): seat propagation, direct (to 2) and relayed (to 3).
    wait("the symmetric space stays relayed", deadline, || {
        link(lab.node(3), &ids[1]) == Link::Relayed
    })?;
    let from = [0, 1, 2, 3].map(|i| log(lab.node(i)).len());
    let space1 = lab.space_id(1).to_string();
    for n in 0..args.updates {
        // 1..=9, never the value before (0 is shown as full, not as a count).
        let seats = 1 + (n % 9) as u64;
        let seats_arg = seats.to_string();
        lab.node(1)
            .ok(&["seats", "set", "--pool", "hot", &seats_arg]);
        wait("both spaces show the update", deadline, || {
            hot_seats(lab.node(2), &space1) == Some(seats)
                && hot_seats(lab.node(3), &space1) == Some(seats)
        })?;
    }
    let published: Vec<(DateTime<Utc>, String)> = lines_after(lab.node(1), from[1])
        .into_iter()
        .filter(|(_, t)| t.contains("published a local edit") && t.contains("SeatBeacon"))
        .filter_map(|(at, t)| field(&t, "id").map(|id| (at, id)))
        .collect();
    println!();
    println!(
        "## seat propagation from cone space 1, {} updates (publish to \"new item by gossip\")",
        published.len()
    );
    for (k, how) in [(2, "direct (hole punched)"), (3, "relayed (symmetric NAT)")] {
        let got = lines_after(lab.node(k), from[k]);
        let mut lat: Vec<f64> = published
            .iter()
            .filter_map(|(at, id)| {
                got.iter()
                    .find(|(_, t)| {
                        t.contains("new item by gossip") && field(t, "id").as_deref() == Some(id)
                    })
                    .map(|(arr, _)| ms(*arr - *at))
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        println!(
            "to node {k}, {how}: {} by gossip, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
    }

    // 2. Hole punching per pair: restart the second node, which dials the first through its circuit.
    println!();
    println!("## hole punching, {} attempts per pair", args.attempts);
    for (k, pair) in [(2, "cone-cone"), (3, "cone-symmetric")] {
        let (mut ok, mut failed) = (0, 0);
        let mut times = Vec::new();
        for attempt in 0..args.attempts {
            lab.stop_private(k);
            wait("node 1 notices the restart", deadline, || {
                link(lab.node(1), &ids[k]) == Link::None
            })?;
            let offsets = (log(lab.node(1)).len(), log(lab.node(k)).len());
            let start = Utc::now();
            // A new port each time: the routers still hold the conntrack entries (and port
            // mappings) of the previous run for a while, which a real restart would not meet.
            lab.start_private_on(k, natlab::PORT + 1 + attempt as u16);
            let mut outcome = None;
            let _ = wait("a hole punch ends", deadline, || {
                outcome = punch(
                    (lab.node(1), offsets.0, &ids[k]),
                    (lab.node(k), offsets.1, &ids[1]),
                );
                outcome.is_some()
            });
            match outcome {
                Some((true, at)) => {
                    ok += 1;
                    times.push(ms(at - start));
                    eprintln!(
                        "{pair}: succeeded {:.0} ms after the restart",
                        ms(at - start)
                    );
                }
                Some((false, _)) => {
                    failed += 1;
                    eprintln!("{pair}: failed");
                }
                None => eprintln!("{pair}: no hole punch within the deadline"),
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{pair}: {ok} of {} succeeded, {failed} failed, {} without a hole punch in time; \
             restart to direct p50 {:.0} ms",
            args.attempts,
            args.attempts - ok - failed,
            percentile(&times, 0.5)
        );
    }
    // After all the restarts, every private node still holds its reservation.
    for k in 1..=3 {
        println!(
            "node {k} still reserved on the relay: {}",
            private_and_reserved(lab.node(k))
        );
    }
    Ok(())
}
