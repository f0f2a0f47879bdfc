//! Network namespaces for tests: [`Lab`] wraps the vendored `tools/netlab` script (a bridge, one namespace
//! per host, nftables partitions and loss) with a bridge, subnet, interface names and host prefix of its
//! own, derived from the test process's id, so several labs (this suite's, another developer's NAT lab)
//! can run on one machine at once. Dropping the lab deletes it, also when the test fails.
//!
//! [`Lab::nat`] adds private networks, each one host behind a router namespace doing nftables source NAT
//! of a [`NatKind`], for the NAT traversal tests (`tests/nat.rs`) and the `natlab` benchmark.
//!
//! Namespaces need root, `ip` and `nft`. Where they are not permitted, [`Lab::up`] says so on stderr and
//! returns `None` (the test then skips), except under `CI`, where they must work and the test fails.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A running lab of `n` hosts.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    env: Vec<(&'static str, String)>,
    /// Addresses are `{net}.{i}` for host `i` (1-based).
    net: String,
    /// Private network `k` is `{nat_net}.{k}.0/24`.
    nat_net: String,
    pub hosts: usize,
}

/// How a NAT router of [`Lab::nat`] maps a private host's outgoing flows (nftables masquerade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Plain masquerade: the source port is kept while it is free, so one private port maps to one public
    /// port whatever the destination (endpoint-independent mapping); inbound packets pass only for flows
    /// the private host opened (address- and port-dependent filtering). Hole punching works.
    Cone,
    /// `masquerade random,fully-random`: every flow gets a random public port, so the port a peer learns
    /// from the relay is not the one the host's next flow to that peer leaves from. Hole punching fails.
    Symmetric,
}

/// The vendored script.
pub fn netlab() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/netlab")
}

/// Letters only: the script reads a host's number from the digits of its name.
fn letters(mut n: u32, len: usize) -> String {
    let mut out = String::new();
    for _ in 0..len {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    out
}

impl Lab {
    /// Creates `hosts` namespaces named `<prefix>1..` on a bridge of their own; `tag` tells apart several
    /// labs of one test process (0, 1, ...).
    pub fn up(hosts: usize, tag: u32) -> Option<Lab> {
        let pid = std::process::id();
        let id = pid.wrapping_mul(31).wrapping_add(tag);
        let prefix = format!("dm{}", letters(id, 5));
        // 10.200.0.0 - 10.249.255.0: away from netlab's defaults (10.77, 10.78).
        let net = format!("10.{}.{}", 200 + id % 50, (id / 50) % 250);
        let short = id % 100_000;
        let env = vec![
            ("NETLAB_BRIDGE", format!("dmb{short}")),
            ("NETLAB_NET", net.clone()),
            ("NETLAB_NAT_NET", format!("10.{}", 150 + id % 50)),
            ("NETLAB_VETH", format!("dv{short}x")),
            (
                "NETLAB_STATE",
                std::env::temp_dir()
                    .join(format!("netlab-{prefix}.prefix"))
                    .display()
                    .to_string(),
            ),
        ];
        let nat_net = format!("10.{}", 150 + id % 50);
        let lab = Lab {
            prefix,
            env,
            net,
            nat_net,
            hosts,
        };
        let out = lab.script(&["up", &hosts.to_string(), &lab.prefix.clone()]);
        if out.as_ref().is_ok_and(|o| o.status.success()) {
            return Some(lab);
        }
        let why = match out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        // Half-made: take down whatever was created.
        drop(lab);
        assert!(
            std::env::var_os("CI").is_none(),
            "network namespaces are required in CI: {why}"
        );
        eprintln!("SKIPPED: network namespaces are not available here ({why}); run as root with iproute2 and nftables");
        None
    }

    fn script(&self, args: &[&str]) -> std::io::Result<Output> {
        let mut c = Command::new(netlab());
        c.args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output()
    }

    fn run(&self, args: &[&str]) {
        let out = self.script(args).expect("run netlab");
        assert!(
            out.status.success(),
            "netlab {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The namespace of host `i` (1-based).
    pub fn host(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{i}", self.net)
    }

    /// Cuts every link between the hosts of `a` and those of `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let names = |l: &[usize]| {
            l.iter()
                .map(|i| self.host(*i))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.run(&["partition", &names(a), &names(b)]);
    }

    /// Drops `percent` of host `i`'s outgoing packets at random.
    pub fn loss(&self, i: usize, percent: u32) {
        self.run(&["loss", &self.host(i), &percent.to_string()]);
    }

    /// Adds private network `k` (1-based): a router namespace [`Lab::router`] on the bridge at
    /// [`Lab::router_ip`], doing source NAT of `kind` for one host [`Lab::private_host`] at
    /// [`Lab::private_ip`] behind it, whose default route goes through the router. Nothing on the bridge
    /// reaches the private host except replies to flows it opened; the router drops unsolicited packets
    /// without answering.
    pub fn nat(&self, k: usize, kind: NatKind) {
        let kind = match kind {
            NatKind::Cone => "cone",
            NatKind::Symmetric => "symmetric",
        };
        self.run(&["nat", &k.to_string(), kind]);
    }

    /// The namespace of the host on private network `k`.
    pub fn private_host(&self, k: usize) -> String {
        format!("{}n{k}", self.prefix)
    }

    /// The namespace of private network `k`'s router.
    pub fn router(&self, k: usize) -> String {
        format!("{}g{k}", self.prefix)
    }

    /// The private host's own address on network `k` (what it binds; nobody outside can reach it).
    pub fn private_ip(&self, k: usize) -> String {
        format!("{}.{k}.2", self.nat_net)
    }

    /// Router `k`'s address on the bridge: the address peers see the private host's flows come from.
    pub fn router_ip(&self, k: usize) -> String {
        format!("{}.{}", self.net, 200 + k)
    }

    /// The environment the vendored script needs to act on this lab (`netlab exec`, `netlab partition`
    /// by hand while a test is paused, say).
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Removes every partition and loss.
    pub fn heal(&self) {
        self.run(&["heal"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let _ = self.script(&["down", &prefix]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_have_no_digits() {
        let p = super::letters(123_456, 5);
        assert_eq!(p.len(), 5);
        assert!(p.chars().all(|c| c.is_ascii_lowercase()));
    }
}
