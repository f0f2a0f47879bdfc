//! Strangers on the port: an idle-connection flood while a member joins.
//!
//! - `a_member_joins_while_strangers_flood_the_port`: a hub holding a directory is flooded with idle TCP
//!   connections that never start a handshake, opened from several loopback addresses (127.0.0.2 and
//!   up; the member dials from 127.0.0.1) and reopened as soon as the hub drops them. A member's laptop
//!   then joins with a member token; the join must complete (it is timed and the figure printed for
//!   docs/BENCHMARKS.md, not asserted: speed lives in benchmarks), and the hub must have turned
//!   connections away. `DESKMESH_LONG=1` floods from more addresses, with more connections each.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deskmesh_integration::daemon::{self, log, logs, wait_until, Daemon};
use deskmesh_integration::TestNode;

fn start(node: &TestNode, bootstrap: Option<&str>) -> Daemon {
    let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    daemon::start(node, &args)
}

fn long() -> bool {
    std::env::var_os("DESKMESH_LONG").is_some_and(|v| v != "0")
}

/// The TCP port of a daemon's first listen address.
fn port_of(addr: &str) -> u16 {
    let parts: Vec<&str> = addr.split('/').collect();
    let i = parts
        .iter()
        .position(|p| *p == "tcp")
        .expect("a tcp address");
    parts[i + 1].parse().expect("a port")
}

/// Idle connections to `target`, `per_ip` from each of `ips` source addresses, each reopened as soon as
/// the other side closes it (after a 20 ms pause, so the flood measures slots, not a CPU race on a small
/// machine). Runs until `stop`; counts connections opened.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    rt: tokio::runtime::Runtime,
}

impl Flood {
    fn start(target: SocketAddr, ips: u8, per_ip: usize) -> Flood {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        for n in 0..ips {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n));
            for _ in 0..per_ip {
                let stop = Arc::clone(&stop);
                let opened = Arc::clone(&opened);
                rt.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let socket = match tokio::net::TcpSocket::new_v4() {
                            Ok(s) => s,
                            Err(_) => break,
                        };
                        if socket.bind(SocketAddr::new(source, 0)).is_err() {
                            break;
                        }
                        if let Ok(mut conn) = socket.connect(target).await {
                            opened.fetch_add(1, Ordering::Relaxed);
                            // Say nothing; wait until the hub hangs up.
                            loop {
                                match tokio::time::timeout(
                                    Duration::from_millis(500),
                                    conn.read(&mut buf),
                                )
                                .await
                                {
                                    Ok(Ok(0)) | Ok(Err(_)) => break,
                                    Ok(Ok(_)) => {}
                                    Err(_) if stop.load(Ordering::Relaxed) => break,
                                    Err(_) => {}
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            }
        }
        Flood { stop, opened, rt }
    }

    fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        );
        rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Joins a fresh member to the hub and returns how long until it holds `total` listings.
fn join(coord: &TestNode, hub: &Daemon, total: u64) -> (TestNode, Daemon, Duration) {
    let laptop = TestNode::new();
    laptop.init("member laptop");
    let token = coord.ok(&["alliance", "invite-member"]);
    laptop.ok(&["alliance", "join", token.lines().next().expect("token")]);
    let t0 = Instant::now();
    let d = start(&laptop, Some(&hub.addr));
    wait_until("the member holds the directory", &[coord, &laptop], || {
        laptop.json(&["status"])["listings"].as_u64() == Some(total)
    });
    let took = t0.elapsed();
    (laptop, d, took)
}

#[test]
fn a_member_joins_while_strangers_flood_the_port() {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Flood Alliance"]);
    {
        let home = deskmesh_core::home::Home::at(coord.home());
        let mut node = deskmesh_core::Node::open(&home).expect("open the coordinator");
        for _ in 0..4 {
            deskmesh_node::demo::populate(&home, &mut node, chrono::Utc::now()).expect("populate");
        }
    }
    let total = coord.json(&["status"])["listings"]
        .as_u64()
        .expect("listings");
    let hub = start(&coord, None);
    let target = SocketAddr::from(([127, 0, 0, 1], port_of(&hub.addr)));

    // Without a flood, for comparison.
    let (_quiet, quiet_daemon, quiet) = join(&coord, &hub, total);
    drop(quiet_daemon);

    let (ips, per_ip) = if long() { (64, 24) } else { (16, 12) };
    let flood = Flood::start(target, ips, per_ip);
    // Let the flood reach the hub's limits before the member comes.
    let t = Instant::now();
    while flood.opened() < u64::from(ips) * per_ip as u64 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = flood.opened();
    let (laptop, _member, flooded) = join(&coord, &hub, total);
    let after = flood.opened();
    let opened = flood.opened();
    drop(flood);
    eprintln!(
        "flood: {ips} addresses x {per_ip} idle connections ({opened} opened in all, {} while the member joined); \
         member join of {total} listings: {:.2} s flooded, {:.2} s without a flood",
        after - before,
        flooded.as_secs_f64(),
        quiet.as_secs_f64()
    );
    assert!(
        opened > u64::from(ips) * per_ip as u64,
        "the hub never dropped a flood connection: {opened} opened"
    );
    // The hub turned connections away (its log says so at the first and every 30 s after).
    wait_until(
        "the hub reports turning connections away",
        &[&coord],
        || log(&coord).contains("connections turned away so far"),
    );
    assert_eq!(laptop.audit()["ok"], true, "{}", logs(&[&coord, &laptop]));
}
