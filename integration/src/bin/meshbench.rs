//! `meshbench`: measures the mesh with real `deskmesh run` processes on 127.0.0.1 and prints small tables.
//!
//! It owns the multi-process benchmark protocols of docs/BENCHMARKS.md: seat propagation across N daemons
//! (publish to "verified and stored" on every node, read from the timestamps of each daemon's debug log),
//! cold join of a directory through an in-process byte-counting TCP proxy (time, bytes both ways, peak RSS,
//! bytes / gzip of the JSON export), catch-up after a partition (bytes and proxy direction turns), the
//! serving daemon's idle memory, and where a join's bytes go (`wire-parts`: the served items packed as the
//! wire packs them, with each part taken out; no daemon). Directories are built through the node library's real accept paths (a
//! real device key, roster admission, signed listing change and signed seat beacons per space, as
//! `deskmesh-bench` does), cached under `target/meshbench/fixture-N/` and copied before every run, so each
//! run starts from the same store; space keys derive from a salt kept there so listings can be re-signed
//! later. Catch-up and idle memory start from a joiner synced through the library (the server's signed
//! items taken through the joiner's own `accept_*` paths, which is what a completed sync stores), so they
//! do not depend on a cold join finishing. It drives `target/release/deskmesh`, building it first when it
//! is missing or older than itself.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};
use deskmesh_core::home::Home;
use deskmesh_core::ingest::{At, SignedItem, Source, Verdict};
use deskmesh_core::node::{self as ops, RosterAuthority};
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_keys::roster::SignedOp;
use deskmesh_keys::{DeviceKey, Domain, Hash, Signer, SpaceId};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every daemon listens on loopback TCP only: no QUIC, so a joiner cannot go around the proxy.
const TCP_LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
/// What the daemons log: the service's debug lines carry the events timed here.
const RUST_LOG: &str = "warn,deskmesh_node=debug";
/// Silence on the proxy after which a sync is taken to have settled.
const SETTLE: Duration = Duration::from_millis(1500);
/// Rust-libp2p TCP+noise+yamux bulk throughput on loopback (shared/reference/performance.md).
const LIBP2P_BYTES_PER_S: f64 = 0.7e9 / 8.0;

#[derive(Debug, Parser)]
#[command(
    name = "meshbench",
    about = "Measure the deskmesh mesh with real `deskmesh run` processes on 127.0.0.1"
)]
struct Args {
    /// Where directories are cached and runs happen (default: target/meshbench).
    #[arg(long, global = true)]
    work: Option<PathBuf>,
    /// Keep each run's homes and logs instead of deleting them.
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Seat beacons from publish to "verified and stored" on every other node of a loopback mesh.
    Propagation(PropArgs),
    /// A fresh node joins a directory of N spaces through a byte-counting proxy.
    ColdJoin(DirArgs),
    /// A synced joiner comes back after K listings changed: bytes and turns on the wire.
    CatchUp {
        #[command(flatten)]
        dir: DirArgs,
        /// Listings changed while the joiner is away.
        #[arg(long, default_value_t = 10)]
        changed: usize,
    },
    /// Where a cold join's bytes go: the served items packed as the wire packs them, whole and with each
    /// part (signatures, computable hashes, one kind of item) taken out. No network; reads the fixture.
    WireParts(DirArgs),
    /// The serving daemon's memory after it started and idled with one peer connected.
    IdleMemory {
        #[command(flatten)]
        dir: DirArgs,
        /// Seconds to idle with the peer connected before reading the memory.
        #[arg(long, default_value_t = 10)]
        idle_s: u64,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct DirArgs {
    /// Spaces in the directory.
    #[arg(long, default_value_t = 1000)]
    spaces: usize,
    /// Listing changes each space has signed (its history; weekly edits from the listing generator). Each
    /// space's device checkpointed its document every 32 changes, as a node does.
    #[arg(long, default_value_t = 1)]
    history: usize,
    /// Longest wait for any one step (daemon start, sync), in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Cold join and wire parts: keep the fixture's seat beacons as dated when it was built (they say nothing half an
    /// hour later, so a node no longer serves them: a join at night) instead of signing them again, dated
    /// now, so every pool is live (the most a join carries; the default).
    #[arg(long)]
    old_beacons: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct PropArgs {
    /// Daemons, each a space admitted by one coordinator.
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// Seat updates published.
    #[arg(long, default_value_t = 50)]
    updates: usize,
    /// Whom each node dials at start (besides what Kademlia finds later).
    #[arg(long, value_enum, default_value_t = Topology::Random)]
    topology: Topology,
    /// With `random`: earlier nodes each node dials.
    #[arg(long, default_value_t = 2)]
    links: usize,
    /// Time between updates, in milliseconds (the protocol's "one update per second").
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Seconds the mesh runs before the first update, so gossipsub meshes form.
    #[arg(long, default_value_t = 10)]
    warmup_s: u64,
    /// Seconds of idle mesh measured after the warm-up, to subtract its traffic from the updates'.
    #[arg(long, default_value_t = 20)]
    idle_s: u64,
    /// Publish from every node in turn instead of from the last one only.
    #[arg(long)]
    rotate: bool,
    /// Longest wait for one update to reach every node, in seconds (a miss counts against coverage).
    #[arg(long, default_value_t = 10)]
    update_timeout_s: u64,
    /// Seed of the random topology.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// Everyone dials node 0.
    Hub,
    /// Node i dials node i-1.
    Chain,
    /// Node i dials `--links` random earlier nodes.
    Random,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = deskmesh_bin()?;
    let work = match args.work {
        Some(w) => w,
        None => target_dir()?.join("meshbench"),
    };
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the proxy's async runtime")?;
    let ctx = Ctx {
        bin,
        work,
        keep: args.keep,
        rt,
    };
    let command: Vec<String> = std::env::args().skip(1).collect();
    println!("# meshbench {}", command.join(" "));
    println!("{}", machine());
    let built = fs::metadata(&ctx.bin)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<Utc>::from(t)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| "unknown".into());
    println!("binary: {} (built {built})", ctx.bin.display());
    match args.cmd {
        Cmd::Propagation(a) => propagation(&ctx, &a),
        Cmd::ColdJoin(d) => {
            let fx = fixture(&ctx.work, d.spaces, d.history)?;
            cold_join(&ctx, &fx, timeout(&d), d.old_beacons).map(|_| ())
        }
        Cmd::CatchUp { dir, changed } => catch_up(&ctx, &dir, changed),
        Cmd::IdleMemory { dir, idle_s } => idle_memory(&ctx, &dir, idle_s),
        Cmd::WireParts(d) => wire_parts(&ctx, &d),
    }?;
    println!("{} (at the end)", machine());
    Ok(())
}

fn timeout(d: &DirArgs) -> Duration {
    Duration::from_secs(d.timeout_s.max(1))
}

/// What every subcommand needs: the binary, the work directory and the proxy's runtime.
struct Ctx {
    bin: PathBuf,
    work: PathBuf,
    keep: bool,
    rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// A fresh directory for one run; a failed run leaves it behind with its logs.
    fn run_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join("runs").join(format!("{name}-{}", wall_us()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!("run directory: {}", dir.display());
        Ok(dir)
    }

    /// Deletes a successful run's directory unless `--keep`.
    fn finish(&self, dir: &Path) {
        if self.keep {
            eprintln!("kept {}", dir.display());
        } else if let Err(e) = fs::remove_dir_all(dir) {
            eprintln!("could not remove {}: {e}", dir.display());
        }
    }
}

// ---- the binary, the machine, /proc ------------------------------------------------------------

/// `target/`, from this executable's place in `target/<profile>/`.
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("meshbench should run from target/<profile>/")
}

/// `target/release/deskmesh` (or `$DESKMESH_BIN`), built first when missing or older than this program,
/// which cargo relinks whenever the node changes.
fn deskmesh_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DESKMESH_BIN") {
        return Ok(PathBuf::from(p));
    }
    let bin = target_dir()?
        .join("release")
        .join(format!("deskmesh{}", std::env::consts::EXE_SUFFIX));
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&exe)) {
        (Some(b), Some(e)) => b < e,
        _ => true,
    };
    if stale {
        eprintln!(
            "building {} (missing or older than meshbench)",
            bin.display()
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "deskmesh-node",
                "--bin",
                "deskmesh",
            ])
            .status()
            .context("cannot run cargo build")?;
        if !status.success() {
            if bin.exists() {
                eprintln!(
                    "cargo build failed; measuring the existing {}",
                    bin.display()
                );
            } else {
                bail!("cargo build of deskmesh failed and there is no binary to measure");
            }
        }
    }
    Ok(bin)
}

/// One line saying what the figures ran on.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_mib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let load = fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("machine: {cpu}, {cores} cores, {mem_mib} MiB RAM, load average {load} (1/5/15 min)")
}

/// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM).
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used so far, from fields 14 and 15 of `/proc/<pid>/stat`,
/// which count in USER_HZ ticks: 100 per second on every Linux architecture's user ABI.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its closing ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// TCP payload bytes received so far on each established socket, by (pid, local address, peer address),
/// from the kernel's `tcp_info` as `ss -tinp` prints it (`/proc/<pid>/io` misses them: socket `recv()`
/// is not counted there).
type SocketBytes = HashMap<(u32, String, String), u64>;

fn tcp_received() -> anyhow::Result<SocketBytes> {
    let out = Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()
        .context("cannot run ss")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sockets = HashMap::new();
    let mut current: Vec<(u32, String, String)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // Recv-Q Send-Q local peer users:(("deskmesh",pid=123,fd=9)), possibly several users.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, peer) = match (fields.get(2), fields.get(3)) {
                (Some(l), Some(p)) => (l.to_string(), p.to_string()),
                _ => continue,
            };
            current = line
                .split("pid=")
                .skip(1)
                .filter_map(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .map(|pid| (pid, local.clone(), peer.clone()))
                .collect();
        } else if let Some(rest) = line.split("bytes_received:").nth(1) {
            let n: u64 = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            for key in current.drain(..) {
                sockets.insert(key, n);
            }
        }
    }
    Ok(sockets)
}

/// Bytes `pid` received between two snapshots: growth of the sockets seen in both, all of a socket opened
/// in between (a socket closed in between is lost, so this can only undercount).
fn received_between(pid: u32, before: &SocketBytes, after: &SocketBytes) -> u64 {
    after
        .iter()
        .filter(|(k, _)| k.0 == pid)
        .map(|(k, v)| v.saturating_sub(before.get(k).copied().unwrap_or(0)))
        .sum()
}

/// Microseconds since the epoch: the clock the daemons' log timestamps use.
fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Copies a home (a closed sled store included); sockets left by a killed daemon are skipped.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else if kind.is_file() {
            // fs::copy keeps the mode, so device.key stays owner-only.
            fs::copy(entry.path(), &dest)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

// ---- printing ----------------------------------------------------------------------------------

fn header(title: &str) {
    println!();
    println!("## {title}");
}

fn kv(what: &str, v: impl Display) {
    println!("{what:<52} {v}");
}

fn secs(us: i64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

fn ms(us: f64) -> String {
    format!("{:.1} ms", us / 1e3)
}

fn bytes(b: u64) -> String {
    if b < 10 * 1024 {
        format!("{b} B")
    } else {
        format!("{:.1} KiB ({b} B)", b as f64 / 1024.0)
    }
}

fn mib_kb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], p: usize) -> f64 {
    let n = sorted.len();
    sorted
        .get((n * p).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

fn dist(what: &str, samples_us: &[f64]) {
    let mut s = samples_us.to_vec();
    s.sort_by(f64::total_cmp);
    kv(
        what,
        format!(
            "n {:>5}  p50 {:>9}  p99 {:>9}  max {:>9}",
            s.len(),
            ms(pct(&s, 50)),
            ms(pct(&s, 99)),
            ms(s.last().copied().unwrap_or(f64::NAN))
        ),
    );
}

// ---- daemon logs -------------------------------------------------------------------------------

/// One line of a daemon's log: its timestamp and the rest (level, target, message, fields).
#[derive(Debug)]
struct LogLine {
    at_us: i64,
    text: String,
}

impl LogLine {
    fn parse(raw: &str) -> Option<LogLine> {
        let clean = strip_ansi(raw);
        let (ts, rest) = clean.trim().split_once(' ')?;
        let at = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
        Some(LogLine {
            at_us: at.timestamp_micros(),
            text: rest.trim_start().to_string(),
        })
    }

    fn has(&self, message: &str) -> bool {
        self.text.contains(message)
    }

    /// The value of `name=...` among the fields.
    fn field(&self, name: &str) -> Option<&str> {
        let pat = format!(" {name}=");
        let start = self.text.find(&pat)? + pat.len();
        self.text[start..].split_whitespace().next()
    }

    fn num(&self, name: &str) -> u64 {
        self.field(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// tracing colours its output unless NO_COLOR is set; drop any escape sequence anyway.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Follows a log file as the daemon appends to it.
struct LogTail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl LogTail {
    /// Follows `path` from its current end, so only lines written from now on are seen.
    fn from_end(path: &Path) -> anyhow::Result<LogTail> {
        let mut tail = LogTail {
            path: path.to_path_buf(),
            file: None,
            partial: Vec::new(),
        };
        tail.poll()?;
        Ok(tail)
    }

    /// The complete lines written since the last call.
    fn poll(&mut self) -> anyhow::Result<Vec<LogLine>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e).context(format!("cannot read {}", self.path.display())),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let before = self.partial.len();
        file.read_to_end(&mut self.partial)?;
        if self.partial.len() == before {
            return Ok(Vec::new());
        }
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .filter_map(LogLine::parse)
            .collect())
    }
}

// ---- daemons -----------------------------------------------------------------------------------

/// A running `deskmesh run`, killed when dropped.
struct Daemon {
    child: Child,
    home: PathBuf,
    log: PathBuf,
    peer_id: String,
    /// Full listen multiaddrs, ending in `/p2p/<peer id>`.
    listen: Vec<String>,
    /// From spawn until the control socket answered `status` with a listen address.
    ready_after: Duration,
}

impl Daemon {
    /// Starts `deskmesh run` and waits until its control socket answers with a listen address.
    fn start(
        bin: &Path,
        home: &Path,
        log: &Path,
        bootstrap: &[String],
        deadline: Duration,
    ) -> anyhow::Result<Daemon> {
        let socket = home.join("control.sock");
        // A daemon killed earlier leaves its socket behind; the wait below must only see the new one.
        let _ = fs::remove_file(&socket);
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--home")
            .arg(home)
            .args(["run", "--no-mdns", "--listen", TCP_LOOPBACK]);
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        cmd.env("RUST_LOG", RUST_LOG)
            .env("NO_COLOR", "1")
            .env_remove("DESKMESH_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        let started = Instant::now();
        let child = cmd.spawn().context("cannot spawn deskmesh run")?;
        let mut d = Daemon {
            child,
            home: home.to_path_buf(),
            log: log.to_path_buf(),
            peer_id: String::new(),
            listen: Vec::new(),
            ready_after: Duration::ZERO,
        };
        loop {
            if let Some(status) = d.child.try_wait()? {
                bail!(
                    "deskmesh run in {} exited with {status}; see {}",
                    home.display(),
                    log.display()
                );
            }
            // Without a daemon `status` opens the store itself and would hold the lock the daemon needs, so
            // ask only once the daemon has created its socket (after it opened the store).
            if socket.exists() {
                if let Ok(v) = cli_json(bin, home, &["status"]) {
                    let listen: Vec<String> = v["listen"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if v["running"] == true && !listen.is_empty() {
                        d.peer_id = v["peer_id"].as_str().unwrap_or_default().to_string();
                        d.listen = listen;
                        d.ready_after = started.elapsed();
                        return Ok(d);
                    }
                }
            }
            if started.elapsed() > deadline {
                bail!(
                    "deskmesh run in {} did not answer within {deadline:?}; see {}",
                    home.display(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first listen address (with its peer id), for others to dial.
    fn addr(&self) -> anyhow::Result<&str> {
        self.listen
            .first()
            .map(String::as_str)
            .context("the daemon reported no listen address")
    }

    /// The TCP socket address it listens on.
    fn tcp_socket(&self) -> anyhow::Result<SocketAddr> {
        for a in &self.listen {
            let parts: Vec<&str> = a.split('/').collect();
            if let (Some(&"ip4"), Some(ip), Some(&"tcp"), Some(port)) =
                (parts.get(1), parts.get(2), parts.get(3), parts.get(4))
            {
                return format!("{ip}:{port}")
                    .parse()
                    .with_context(|| format!("cannot read the TCP address in {a}"));
            }
        }
        bail!("the daemon listens on no TCP address: {:?}", self.listen)
    }

    /// SIGTERM, so the daemon flushes its store and removes its socket, then waits for it to exit.
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                bail!(
                    "deskmesh run in {} did not stop on SIGTERM; see {}",
                    self.home.display(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `deskmesh --home HOME ARGS` and returns its standard output.
fn cli(bin: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DESKMESH_HOME")
        .stdin(Stdio::null())
        .output()
        .context("cannot run deskmesh")?;
    if !out.status.success() {
        bail!(
            "deskmesh {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn cli_json(bin: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(bin, home, &all)?;
    serde_json::from_slice(&out)
        .with_context(|| format!("deskmesh {} printed no JSON", args.join(" ")))
}

// ---- the byte-counting proxy -------------------------------------------------------------------

/// Bytes that crossed the proxy in one read, and when (wall clock, as the logs).
#[derive(Clone, Copy, Debug)]
struct Chunk {
    at_us: i64,
    /// Client (joiner) to server.
    up: bool,
    len: u64,
}

#[derive(Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
    chunks: Mutex<Vec<Chunk>>,
}

/// A TCP proxy on 127.0.0.1 in front of one daemon, counting every byte each way.
struct Proxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    fn start(rt: &tokio::runtime::Runtime, target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("cannot bind the proxy")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    c.connections.fetch_add(1, Ordering::Relaxed);
                    // The daemons set TCP_NODELAY; so does the proxy, or it would add Nagle delays.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let a = tokio::spawn(pump(ri, wo, c.clone(), true));
                    let b = tokio::spawn(pump(ro, wi, c, false));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        Ok(Proxy {
            addr,
            counters,
            task,
        })
    }

    /// The multiaddr a joiner dials to reach `server` through this proxy.
    fn multiaddr(&self, server: &Daemon) -> String {
        format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            self.addr.port(),
            server.peer_id
        )
    }

    /// Bytes up (joiner to server) and down so far.
    fn totals(&self) -> (u64, u64) {
        (
            self.counters.up.load(Ordering::Relaxed),
            self.counters.down.load(Ordering::Relaxed),
        )
    }

    fn chunks(&self) -> Vec<Chunk> {
        self.counters
            .chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How long since the last byte crossed.
    fn idle(&self) -> Duration {
        let last = self.chunks().last().map(|c| c.at_us);
        match last {
            Some(t) => Duration::from_micros((wall_us() - t).max(0) as u64),
            None => Duration::ZERO,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Counters>,
    up: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let counter = if up { &c.up } else { &c.down };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        c.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Chunk {
                at_us: wall_us(),
                up,
                len: n as u64,
            });
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Bytes (up, down) that had crossed by `at_us`.
fn bytes_until(chunks: &[Chunk], at_us: i64) -> (u64, u64) {
    chunks
        .iter()
        .filter(|c| c.at_us <= at_us)
        .fold(
            (0, 0),
            |(u, d), c| {
                if c.up {
                    (u + c.len, d)
                } else {
                    (u, d + c.len)
                }
            },
        )
}

/// Changes of direction in the byte stream: each round trip turns it twice, but so do pings, identify,
/// gossip heartbeats and yamux window updates, so half of it is an upper bound on round trips.
fn turns(chunks: &[Chunk], until_us: i64) -> usize {
    let mut last = None;
    let mut n = 0;
    for c in chunks.iter().filter(|c| c.at_us <= until_us) {
        if last.is_some_and(|l| l != c.up) {
            n += 1;
        }
        last = Some(c.up);
    }
    n
}

// ---- the directory -----------------------------------------------------------------------------

/// xorshift64*: deterministic variety for listings and topologies; no cryptographic use.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Space `i`'s device key, derived from the fixture's salt so the key can be had again to re-sign.
fn space_key(salt: &[u8; 32], i: usize) -> DeviceKey {
    let mut material = salt.to_vec();
    material.extend_from_slice(&(i as u64).to_be_bytes());
    DeviceKey::from_seed(&Hash::of("meshbench-space-key", &material).0)
}

/// A cached directory: the serving home with N spaces, the joiner's home (admitted, empty) and, once a
/// cold join has run, the joiner's home after it synced.
struct Fixture {
    dir: PathBuf,
    n: usize,
    salt: [u8; 32],
    meta: Value,
}

impl Fixture {
    fn server(&self) -> PathBuf {
        self.dir.join("server")
    }

    fn joiner(&self) -> PathBuf {
        self.dir.join("joiner")
    }

    fn synced(&self) -> PathBuf {
        // "2": with the server's checkpoints. The first synced joiners lacked them, so with a long history
        // each one offered every change a checkpoint covers and its first session pushed them all back.
        self.dir.join("joiner-synced2")
    }

    fn num(&self, key: &str) -> u64 {
        self.meta[key].as_u64().unwrap_or(0)
    }
}

fn unhex32(s: &str) -> anyhow::Result<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        bail!("the fixture's salt is not 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

/// The directory of `n` spaces under `work`, built (minutes at 10k) unless already cached.
fn fixture(work: &Path, n: usize, history: usize) -> anyhow::Result<Fixture> {
    if n == 0 || history == 0 {
        bail!("--spaces and --history must be at least 1");
    }
    // Realistic listings from the seeded generator (format 2 of the fixture; format 1 cycled templates).
    let dir = work.join(format!("fixture2-{n}-h{history}"));
    let meta_path = dir.join("fixture.json");
    if let Ok(text) = fs::read_to_string(&meta_path) {
        let meta: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", meta_path.display()))?;
        let salt = unhex32(meta["salt"].as_str().unwrap_or_default())?;
        eprintln!("reusing the {n}-space directory in {}", dir.display());
        return Ok(Fixture { dir, n, salt, meta });
    }
    if dir.exists() {
        // A build that did not finish (fixture.json is written last).
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    eprintln!(
        "building a directory of {n} spaces in {} (cached for later runs)",
        dir.display()
    );
    let salt = *DeviceKey::generate().seed();
    let meta = build_fixture(&dir, n, history, &salt)?;
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta)?)?;
    Ok(Fixture { dir, n, salt, meta })
}

fn build_fixture(dir: &Path, n: usize, history: usize, salt: &[u8; 32]) -> anyhow::Result<Value> {
    let started = Instant::now();
    let now = Utc::now();
    let server = Home::at(dir.join("server"));
    ops::init(&server, Some("meshbench server".into()))?;
    let mut node = Node::open(&server)?;
    node.alliance_create("Meshbench Alliance", 1, now)?;
    // The joiner is admitted first, so its invite carries only the alliance's first two roster operations
    // and everything else has to cross the wire.
    let joiner = Home::at(dir.join("joiner"));
    ops::init(&joiner, Some("meshbench joiner".into()))?;
    {
        let mut j = Node::open(&joiner)?;
        let invite = node.alliance_invite(j.public_key(), "Meshbench joiner", Vec::new(), now)?;
        j.alliance_join(&invite.token)?;
        j.store.flush()?;
    }

    let seed = u64::from_be_bytes([
        salt[0], salt[1], salt[2], salt[3], salt[4], salt[5], salt[6], salt[7],
    ]);
    let mut generator = deskmesh_node::demo::fixture::Generator::new(seed);
    let mut save_bytes = 0u64;
    let progress = (n / 10).max(1);
    for i in 0..n {
        let key = space_key(salt, i);
        let space = SpaceId::derive(&key.public_key());
        let mut listing = generator.listing(&space, i);
        let mut doc =
            deskmesh_node::demo::admit_space(&mut node, &key, &listing, now, |j, capacity| {
                deskmesh_node::demo::sample_seats(i + j, capacity)
            })?;
        // The rest of its history: weekly edits, signed by the space's key, a checkpoint every 32.
        let mut items = Vec::new();
        let roster = node.require_roster()?;
        let heads = roster.heads();
        let authority = RosterAuthority(Some(roster));
        let start_ms = now.timestamp_millis() - history as i64 * 7 * 86_400_000;
        for k in 1..history {
            listing = generator.edit(&listing);
            let at = start_ms + k as i64 * 7 * 86_400_000;
            if let Some(c) = doc.edit(&listing, &key, &authority, heads.clone(), at)? {
                items.push(SignedItem::change(&c));
            }
            if doc.accepted().len() % deskmesh_core::node::CHECKPOINT_EVERY == 0 {
                let cp = deskmesh_crdt_model::checkpoint::SignedCheckpoint::sign(
                    space.clone(),
                    doc.doc(),
                    &key,
                    heads.clone(),
                    at,
                )?;
                items.push(SignedItem::checkpoint(&cp));
            }
        }
        if !items.is_empty() {
            let report = node.ingest(items, Source::Bundle, At::now());
            node.take_made();
            for o in report.outcomes {
                if let Verdict::Refused(why) | Verdict::Failed(why) = o.verdict {
                    bail!("space {i}: its own history was refused: {why}");
                }
            }
        }
        save_bytes += doc.doc().save().len() as u64;
        if (i + 1) % progress == 0 {
            eprintln!(
                "  built {}/{n} spaces in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    node.store.flush()?;

    // What the joiner lacks, in the exact signed bytes the wire carries.
    let store = &node.store;
    let ops = store.ops()?;
    let mut changes = 0u64;
    let mut change_bytes = 0u64;
    for space in store.spaces()? {
        for bytes in store.changes(&space)? {
            changes += 1;
            change_bytes += bytes.len() as u64;
        }
    }
    let beacons = store.beacons()?;
    let checkpoints = store.checkpoints()?;
    let covered = store.covered()?.len();
    Ok(json!({
        "spaces": n,
        "history": history,
        "checkpoints": checkpoints.len(),
        "checkpoint_bytes": checkpoints.iter().map(|(_, _, b)| b.len() as u64).sum::<u64>(),
        "covered_changes": covered,
        "salt": ops::hex(salt),
        "built": now.to_rfc3339(),
        "build_s": started.elapsed().as_secs_f64(),
        "ops": ops.len(),
        "op_bytes": ops.iter().map(|(_, b)| b.len() as u64).sum::<u64>(),
        "changes": changes,
        "change_bytes": change_bytes,
        "beacons": beacons.len(),
        "beacon_bytes": beacons.iter().map(|(_, _, b)| b.len() as u64).sum::<u64>(),
        "save_bytes": save_bytes,
    }))
}

/// What checking every signature of a directory costs in one thread, after opening it.
struct VerifyCost {
    open: Duration,
    ops: (usize, Duration),
    changes: (usize, Duration),
    beacons: (usize, Duration),
}

impl VerifyCost {
    fn total(&self) -> Duration {
        self.ops.1 + self.changes.1 + self.beacons.1
    }
}

fn verify_cost(home: &Path) -> anyhow::Result<VerifyCost> {
    let t = Instant::now();
    let node = Node::open(&Home::at(home))?;
    let open = t.elapsed();
    let store = &node.store;
    let now_ms = Utc::now().timestamp_millis();
    let mut cost = VerifyCost {
        open,
        ops: (0, Duration::ZERO),
        changes: (0, Duration::ZERO),
        beacons: (0, Duration::ZERO),
    };
    for (_, bytes) in store.ops()? {
        let t = Instant::now();
        let op = SignedOp::from_bytes(&bytes)?;
        for (key, sig) in op.signatures() {
            key.verify(Domain::RosterOp, op.bytes(), sig)?;
        }
        cost.ops.1 += t.elapsed();
        cost.ops.0 += 1;
    }
    for space in store.spaces()? {
        for bytes in store.changes(&space)? {
            let t = Instant::now();
            SignedChange::from_bytes(&bytes)?.verify()?;
            cost.changes.1 += t.elapsed();
            cost.changes.0 += 1;
        }
    }
    for (_, _, bytes) in store.beacons()? {
        let t = Instant::now();
        SignedBeacon::from_bytes(&bytes)?.verify(now_ms)?;
        cost.beacons.1 += t.elapsed();
        cost.beacons.0 += 1;
    }
    Ok(cost)
}

// ---- following a sync in the joiner's log ------------------------------------------------------

/// One "sync session ended" line.
#[derive(Debug, Clone)]
struct Session {
    completed: bool,
    bytes_sent: u64,
    bytes_received: u64,
    pushed: u64,
    lacking: u64,
}

/// What a node's log says it has received so far.
#[derive(Default)]
struct Progress {
    /// Listings to wait for: only these spaces, or (when empty) any `want_count` distinct ones.
    want: HashSet<String>,
    want_count: usize,
    want_beacons: usize,
    spaces: HashSet<String>,
    /// Seat beacons stored, summed over the "synced new items from peer" lines.
    beacons: usize,
    connected_at: Option<i64>,
    listings_at: Option<i64>,
    beacons_at: Option<i64>,
    sessions: Vec<Session>,
    /// "synced new items from peer" lines: when, and roster ops / changes / beacons in the batch.
    batches: Vec<(i64, u64, u64, u64)>,
    /// Items the node refused (it logs a count per batch).
    refused: u64,
}

impl Progress {
    fn feed(&mut self, l: &LogLine) {
        // The daemon logs one "synced listing changes" line per space of each batch (debug level during a
        // bulk transfer), for changes and checkpoints alike.
        if l.has("synced listing changes") {
            if let Some(space) = l.field("space") {
                if self.want.is_empty() || self.want.contains(space) {
                    self.spaces.insert(space.to_string());
                }
            }
            if self.listings_at.is_none() && self.spaces.len() >= self.want_count {
                self.listings_at = Some(l.at_us);
            }
        } else if l.has("peer connected") {
            self.connected_at.get_or_insert(l.at_us);
        } else if l.has("synced new items from peer") {
            self.beacons += l.num("beacons") as usize;
            if self.beacons_at.is_none()
                && self.want_beacons > 0
                && self.beacons >= self.want_beacons
            {
                self.beacons_at = Some(l.at_us);
            }
            self.batches.push((
                l.at_us,
                l.num("roster_ops"),
                l.num("changes"),
                l.num("beacons"),
            ));
        } else if l.has("peer sent items that were refused") {
            self.refused += l.num("refused");
        } else if l.has("sync session ended") {
            self.sessions.push(Session {
                completed: l.field("completed") == Some("true"),
                bytes_sent: l.num("bytes_sent"),
                bytes_received: l.num("bytes_received"),
                pushed: l.num("pushed"),
                lacking: l.num("lacking"),
            });
        }
    }
}

fn sessions_summary(sessions: &[Session]) -> String {
    if sessions.is_empty() {
        return "none logged".into();
    }
    let done = sessions.iter().filter(|s| s.completed).count();
    let sent: u64 = sessions.iter().map(|s| s.bytes_sent).sum();
    let received: u64 = sessions.iter().map(|s| s.bytes_received).sum();
    let lacking: u64 = sessions.iter().map(|s| s.lacking).sum();
    let pushed: u64 = sessions.iter().map(|s| s.pushed).sum();
    format!(
        "{} ({done} completed): sent {sent} B, received {received} B, lacking {lacking}, pushed {pushed}",
        sessions.len()
    )
}

/// "N batches: at 1.2 s 1002/135/0, ..." (roster ops / changes / beacons), the first six and the last two.
fn batch_timeline(batches: &[(i64, u64, u64, u64)], t0: i64) -> String {
    let show = |b: &(i64, u64, u64, u64)| {
        format!("{:.1} s {}/{}/{}", (b.0 - t0) as f64 / 1e6, b.1, b.2, b.3)
    };
    let mut parts: Vec<String> = batches.iter().take(6).map(show).collect();
    if batches.len() > 8 {
        parts.push("...".into());
    }
    let tail_from = batches.len().saturating_sub(2).max(6);
    parts.extend(batches.iter().skip(tail_from).map(show));
    format!(
        "{} (s after spawn, roster ops/changes/beacons): {}",
        batches.len(),
        parts.join(", ")
    )
}

// ---- where the join's bytes go ----------------------------------------------------------------

#[path = "meshbench_parts/wire.rs"]
mod wire;

/// Prints what each part of the served stream costs once packed, against gzip(JSON export).
fn wire_parts(ctx: &Ctx, d: &DirArgs) -> anyhow::Result<()> {
    let fx = fixture(&ctx.work, d.spaces, d.history)?;
    let run = ctx.run_dir(&format!("wire-parts-{}", fx.n))?;
    let home = run.join("server");
    copy_dir(&fx.server(), &home)?;
    if !d.old_beacons {
        refresh_beacons(&fx, &home)?;
    }
    let json = cli(&ctx.bin, &home, &["export", "--format", "json"])?;
    let gz = gzip(&json)?.len();
    let bundle = cli(&ctx.bin, &home, &["export", "--format", "bundle"])?;
    let bundle = deskmesh_core::bundle::Bundle::decode(&bundle)?;
    let t = Instant::now();
    let listings: Vec<Value> =
        serde_json::from_slice(&json).context("the JSON export is not a list")?;
    let listings = listings
        .iter()
        .map(|l| {
            let id = l["id"].as_str().unwrap_or_default().to_string();
            Ok((id, serde_json::to_vec(l)?))
        })
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let figures = wire::measure(bundle, &listings)?;
    eprintln!("packed every variant in {:.1} s", t.elapsed().as_secs_f64());
    if !ctx.keep {
        fs::remove_dir_all(&run).ok();
    }
    let mut kinds: Vec<_> = figures.items.iter().collect();
    kinds.sort();
    println!(
        "\n{} spaces x {} changes: JSON export {} B, gzip {} B; items: {}; signatures: {} ({} B)",
        fx.n,
        d.history,
        json.len(),
        gz,
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        figures.signatures,
        figures.signatures * 64
    );
    if figures.checkpoint_bytes.0 > 0 {
        println!(
            "checkpoints: {} B as stored, {} B with their documents saved without DEFLATE",
            figures.checkpoint_bytes.0, figures.checkpoint_bytes.1
        );
    }
    let whole = figures.rows[0].1;
    println!("\n| stream | packed bytes | / gzip(JSON) | part's cost (whole - this) |");
    println!("|---|---|---|---|");
    for (name, bytes) in &figures.rows {
        println!(
            "| {name} | {bytes} | {:.2}x | {} |",
            *bytes as f64 / gz as f64,
            whole as i64 - *bytes as i64
        );
    }
    Ok(())
}

// ---- 2. cold join ------------------------------------------------------------------------------

/// Runs one cold join of `fx` and prints its table; leaves the joiner's synced home in the fixture.
fn cold_join(ctx: &Ctx, fx: &Fixture, deadline: Duration, old_beacons: bool) -> anyhow::Result<()> {
    let n = fx.n;
    let run = ctx.run_dir(&format!("cold-join-{n}"))?;
    let server_home = run.join("server");
    let joiner_home = run.join("joiner");
    copy_dir(&fx.server(), &server_home)?;
    copy_dir(&fx.joiner(), &joiner_home)?;
    let live_beacons = if old_beacons {
        live_beacons(&server_home)?
    } else {
        refresh_beacons(fx, &server_home)?
    };

    // The JSON export, by the binary, on the serving store before its daemon holds it.
    eprintln!("exporting the directory as JSON and verifying it in-process");
    let t = Instant::now();
    let export = cli(&ctx.bin, &server_home, &["export", "--format", "json"])?;
    let export_time = t.elapsed();
    let gz = gzip(&export)?;
    let verify = verify_cost(&server_home)?;

    let mut server = Daemon::start(
        &ctx.bin,
        &server_home,
        &run.join("server.log"),
        &[],
        deadline,
    )?;
    if server.listen.iter().any(|a| !a.contains("/tcp/")) {
        bail!(
            "the server listens beyond TCP, so the joiner could bypass the proxy: {:?}",
            server.listen
        );
    }
    let proxy = Proxy::start(&ctx.rt, server.tcp_socket()?)?;
    let joiner_log = run.join("joiner.log");
    let mut tail = LogTail::from_end(&joiner_log)?;
    let mut p = Progress {
        want_count: n,
        want_beacons: live_beacons,
        ..Progress::default()
    };
    eprintln!("joining {n} spaces through the proxy");
    let t0 = wall_us();
    let started = Instant::now();
    let mut joiner = Daemon::start(
        &ctx.bin,
        &joiner_home,
        &joiner_log,
        &[proxy.multiaddr(&server)],
        deadline,
    )?;
    let mut last_report = Instant::now();
    // Beacons may be refused (the joiner's own rules); after the listings they get this long to arrive.
    let beacon_grace = Duration::from_secs(60);
    let mut listings_seen: Option<Instant> = None;
    // The log says when the last listing's change was stored; `status` (the index) must confirm that all
    // N show. If the first check does not, the join ends when a later check does.
    let mut confirmed_at: Option<i64> = None;
    let mut status_checks = 0;
    let mut last_status = Instant::now();
    let mut finished = true;
    loop {
        for line in tail.poll()? {
            p.feed(&line);
        }
        if let Some(logged) = p.listings_at {
            if confirmed_at.is_none() && last_status.elapsed() >= Duration::from_secs(1) {
                last_status = Instant::now();
                let checked = wall_us();
                let shown = cli_json(&ctx.bin, &joiner_home, &["status"])
                    .map(|v| v["listings"].as_u64().unwrap_or(0))
                    .unwrap_or(0);
                if shown >= n as u64 {
                    confirmed_at = Some(if status_checks == 0 { logged } else { checked });
                    listings_seen = Some(Instant::now());
                }
                status_checks += 1;
            }
        }
        let beacons_done = p.beacons_at.is_some()
            || p.want_beacons == 0
            || listings_seen.is_some_and(|t| t.elapsed() > beacon_grace);
        if confirmed_at.is_some() && beacons_done && proxy.idle() >= SETTLE {
            break;
        }
        if let Some(status) = joiner.child.try_wait()? {
            bail!(
                "the joiner exited with {status}; see {}",
                joiner_log.display()
            );
        }
        if started.elapsed() > deadline {
            finished = false;
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let (up, down) = proxy.totals();
            eprintln!(
                "  {:.0} s: {} item batches, {}/{n} listings, {}/{} beacons, {} refused, {} B up, {} B down",
                started.elapsed().as_secs_f64(),
                p.batches.len(),
                p.spaces.len(),
                p.beacons,
                p.want_beacons,
                p.refused,
                up,
                down
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let joiner_hwm = proc_kb(joiner.pid(), "VmHWM");
    let joiner_rss = proc_kb(joiner.pid(), "VmRSS");
    let joiner_cpu = proc_cpu_s(joiner.pid());
    let server_hwm = proc_kb(server.pid(), "VmHWM");
    let server_rss = proc_kb(server.pid(), "VmRSS");
    let status = cli_json(&ctx.bin, &joiner_home, &["status"])?;
    let listings = status["listings"].as_u64().unwrap_or(0);
    let via = format!("/tcp/{}/", proxy.addr.port());
    let addrs: Vec<String> = status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|peer| peer["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let through_proxy = !addrs.is_empty() && addrs.iter().all(|a| a.contains(&via));
    let chunks = proxy.chunks();
    let (up, down) = proxy.totals();
    let end_at = if finished {
        confirmed_at.unwrap_or(t0)
    } else {
        wall_us()
    };
    let (up_l, down_l) = bytes_until(&chunks, end_at);
    let connections = proxy.counters.connections.load(Ordering::Relaxed);

    joiner.stop()?;
    server.stop()?;
    // How much of the roster the joiner holds (the log names only the operations applied on arrival).
    let ops_held = cli_json(&ctx.bin, &joiner_home, &["alliance", "show"])
        .ok()
        .and_then(|v| v["operations"].as_u64());

    let wire = up + down;
    let payload = fx.num("op_bytes") + fx.num("change_bytes") + fx.num("beacon_bytes");
    let items = fx.num("ops") + fx.num("changes") + fx.num("beacons");
    let time_us = end_at - t0;
    let connect_us = p.connected_at.map(|c| c - t0);
    let floor_s = connect_us.unwrap_or(0) as f64 / 1e6
        + wire as f64 / LIBP2P_BYTES_PER_S
        + verify.total().as_secs_f64();

    header(&format!(
        "cold join: {n} spaces, one joiner through a counting TCP proxy"
    ));
    kv(
        "directory (items / signed bytes)",
        format!(
            "{} roster ops, {} listing changes, {} seat beacons / {}",
            fx.num("ops"),
            fx.num("changes"),
            fx.num("beacons"),
            bytes(payload)
        ),
    );
    kv(
        "server daemon ready after (open + scan + listen)",
        format!("{:.2} s", server.ready_after.as_secs_f64()),
    );
    kv(
        "joiner: spawn to peer connected",
        connect_us.map(secs).unwrap_or_else(|| "not logged".into()),
    );
    if finished {
        kv(
            "joiner: spawn to all N listings stored and shown",
            format!(
                "{}{}",
                secs(time_us),
                if status_checks > 1 {
                    " (when `status` first showed all)"
                } else {
                    ""
                }
            ),
        );
    } else {
        kv(
            "joiner: DID NOT FINISH; listings shown when stopped",
            format!("{listings} of {n} after {}", secs(time_us)),
        );
    }
    kv(
        "joiner: spawn to all seat beacons stored",
        match p.beacons_at {
            Some(t) => secs(t - t0),
            None => format!("{} of {} arrived", p.beacons, p.want_beacons),
        },
    );
    kv(
        "joiner: listings in `status` / roster ops held at the end",
        format!(
            "{listings} of {n} / {} of {}",
            ops_held.map_or("unknown".into(), |o| o.to_string()),
            fx.num("ops")
        ),
    );
    kv("items the joiner refused (its log)", p.refused);
    kv(
        "item batches processed (joiner log)",
        batch_timeline(&p.batches, t0),
    );
    kv(
        "bytes on the wire, joiner to server / back",
        format!("{} / {}", bytes(up), bytes(down)),
    );
    kv(
        if finished {
            "  of which by the time all listings were shown"
        } else {
            "  of which by the deadline"
        },
        format!("{} / {}", bytes(up_l), bytes(down_l)),
    );
    kv(
        "  per item (signed payload per item)",
        format!(
            "{:.0} B ({:.0} B)",
            wire as f64 / items.max(1) as f64,
            payload as f64 / items.max(1) as f64
        ),
    );
    kv(
        "direction turns on the wire (upper bound of 2x RTTs)",
        turns(&chunks, i64::MAX),
    );
    kv(
        "TCP connections through the proxy",
        format!(
            "{connections}; joiner reaches the server only through it: {}",
            if through_proxy { "yes" } else { "NO" }
        ),
    );
    kv(
        "JSON export (binary, store closed) / its gzip",
        format!(
            "{} / {} (export took {:.2} s)",
            bytes(export.len() as u64),
            bytes(gz.len() as u64),
            export_time.as_secs_f64()
        ),
    );
    kv(
        "wire bytes / gzip(JSON)",
        format!("{:.2}x", wire as f64 / gz.len().max(1) as f64),
    );
    kv(
        "wire bytes / Automerge save() of all listings",
        format!(
            "{:.2}x (save() {})",
            wire as f64 / fx.num("save_bytes").max(1) as f64,
            bytes(fx.num("save_bytes"))
        ),
    );
    kv(
        "wire bytes / signed payload",
        format!("{:.2}x", wire as f64 / payload.max(1) as f64),
    );
    kv(
        "joiner peak RSS (VmHWM) / RSS at the end",
        format!("{} / {}", mib_kb(joiner_hwm), mib_kb(joiner_rss)),
    );
    kv(
        "joiner CPU time (user + system) at the end",
        joiner_cpu
            .map(|s| format!("{s:.2} s"))
            .unwrap_or_else(|| "unknown".into()),
    );
    kv(
        "server peak RSS (VmHWM) / RSS at the end",
        format!("{} / {}", mib_kb(server_hwm), mib_kb(server_rss)),
    );
    kv(
        "verify every signature, one thread (ops/changes/beacons)",
        format!(
            "{:.2} s ({} in {:.2} s / {} in {:.2} s / {} in {:.2} s)",
            verify.total().as_secs_f64(),
            verify.ops.0,
            verify.ops.1.as_secs_f64(),
            verify.changes.0,
            verify.changes.1.as_secs_f64(),
            verify.beacons.0,
            verify.beacons.1.as_secs_f64()
        ),
    );
    if finished {
        kv(
            "verification's share of the join time",
            format!(
                "{:.0}%",
                100.0 * verify.total().as_secs_f64() / (time_us as f64 / 1e6).max(1e-9)
            ),
        );
        kv(
            "join time / (connect + bytes at 0.7 Gbit/s + verify)",
            format!(
                "{:.1}x (floor {floor_s:.2} s)",
                time_us as f64 / 1e6 / floor_s.max(1e-9)
            ),
        );
    } else {
        kv(
            "verification's share / floor ratio",
            "n/a: the join did not finish",
        );
    }
    kv(
        "Node::open of the served store (library, for reference)",
        format!("{:.2} s", verify.open.as_secs_f64()),
    );
    kv("joiner's sync sessions", sessions_summary(&p.sessions));
    ctx.finish(&run);
    Ok(())
}

/// Makes sure the fixture holds the joiner's home as it is once synced: every signed item of the server,
/// taken through the joiner's own `accept_*` paths in causal order (the same store a completed sync
/// leaves, built without the mesh so catch-up and idle runs do not depend on a cold join finishing).
fn ensure_synced(fx: &Fixture) -> anyhow::Result<()> {
    if fx.synced().exists() {
        return Ok(());
    }
    eprintln!("building the synced joiner for {} spaces (cached)", fx.n);
    let started = Instant::now();
    let tmp = fx.dir.join("joiner-synced2.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    copy_dir(&fx.joiner(), &tmp)?;
    {
        let server = Node::open(&Home::at(fx.server()))?;
        let mut joiner = Node::open(&Home::at(&tmp))?;
        let roster = server.require_roster()?;
        for hash in roster.causal_closure(&roster.heads())? {
            if let Some(op) = roster.get(&hash) {
                take(&mut joiner, SignedItem::op(op))?;
            }
        }
        for space in server.store.spaces()? {
            for bytes in server.store.changes(&space)? {
                take(
                    &mut joiner,
                    SignedItem::new(deskmesh_core::ingest::ItemKind::ListingChange, bytes),
                )?;
            }
        }
        // The checkpoints after the changes they cover, which they mark covered, as a node that was
        // online through the edits holds them.
        for (_, _, bytes) in server.store.checkpoints()? {
            take(
                &mut joiner,
                SignedItem::new(deskmesh_core::ingest::ItemKind::Checkpoint, bytes),
            )?;
        }
        for (_, _, bytes) in server.store.beacons()? {
            take(
                &mut joiner,
                SignedItem::new(deskmesh_core::ingest::ItemKind::SeatBeacon, bytes),
            )?;
        }
        joiner.store.flush()?;
    }
    fs::rename(&tmp, fx.synced())?;
    eprintln!("  built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

// ---- 3. catch-up -------------------------------------------------------------------------------

/// What one reconnection of the synced joiner cost.
struct Reconnect {
    up: u64,
    down: u64,
    /// Bytes by the time the last wanted change was stored.
    at_changes: Option<(u64, u64)>,
    changes_after_us: Option<i64>,
    settled_after_us: i64,
    turns: usize,
    joiner_sessions: Vec<Session>,
    server_sessions: Vec<Session>,
}

/// Starts the server and the synced joiner (through a fresh proxy), waits until the joiner has the
/// `want` changes, a completed sync session and a quiet wire, then stops both.
fn reconnect(
    ctx: &Ctx,
    run: &Path,
    phase: &str,
    want: &HashSet<String>,
    deadline: Duration,
) -> anyhow::Result<Reconnect> {
    let server_log = run.join(format!("server-{phase}.log"));
    let joiner_log = run.join(format!("joiner-{phase}.log"));
    let mut server = Daemon::start(&ctx.bin, &run.join("server"), &server_log, &[], deadline)?;
    let mut server_tail = LogTail::from_end(&server_log)?;
    let proxy = Proxy::start(&ctx.rt, server.tcp_socket()?)?;
    let mut tail = LogTail::from_end(&joiner_log)?;
    let mut p = Progress {
        want: want.clone(),
        want_count: want.len(),
        ..Progress::default()
    };
    let mut sp = Progress::default();
    let t0 = wall_us();
    let started = Instant::now();
    let mut joiner = Daemon::start(
        &ctx.bin,
        &run.join("joiner"),
        &joiner_log,
        &[proxy.multiaddr(&server)],
        deadline,
    )?;
    loop {
        for line in tail.poll()? {
            p.feed(&line);
        }
        for line in server_tail.poll()? {
            sp.feed(&line);
        }
        let synced = p.sessions.iter().any(|s| s.completed);
        if (want.is_empty() || p.listings_at.is_some()) && synced && proxy.idle() >= SETTLE {
            break;
        }
        if let Some(status) = joiner.child.try_wait()? {
            bail!(
                "the joiner exited with {status}; see {}",
                joiner_log.display()
            );
        }
        if started.elapsed() > deadline {
            bail!(
                "the joiner had {}/{} changed listings after {deadline:?}; see {}",
                p.spaces.len(),
                want.len(),
                joiner_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let chunks = proxy.chunks();
    let (up, down) = proxy.totals();
    let settled_after_us = chunks.last().map(|c| c.at_us - t0).unwrap_or(0);
    joiner.stop()?;
    server.stop()?;
    for line in server_tail.poll()? {
        sp.feed(&line);
    }
    let at_changes = if want.is_empty() {
        None
    } else {
        p.listings_at.map(|t| bytes_until(&chunks, t))
    };
    Ok(Reconnect {
        up,
        down,
        at_changes,
        changes_after_us: if want.is_empty() {
            None
        } else {
            p.listings_at.map(|t| t - t0)
        },
        settled_after_us,
        turns: turns(&chunks, i64::MAX),
        joiner_sessions: p.sessions,
        server_sessions: sp.sessions,
    })
}

/// Re-signs `k` listings spread over the directory, each with its own space key, on the closed server store.
fn change_listings(fx: &Fixture, server: &Path, k: usize) -> anyhow::Result<HashSet<String>> {
    let mut node = Node::open(&Home::at(server))?;
    let now = Utc::now();
    let mut changed = HashSet::new();
    for j in 0..k {
        let i = j * fx.n / k.max(1);
        let key = space_key(&fx.salt, i);
        let space = SpaceId::derive(&key.public_key());
        let mut listing = node.space_show(Some(&space))?;
        listing.name = format!("{} (changed)", listing.name);
        listing.description = format!("{} Renovated.", listing.description);
        let (mut doc, _) = node.space_doc(&space)?;
        let roster = node.require_roster()?;
        let change = doc
            .edit(
                &listing,
                &key,
                &RosterAuthority(Some(roster)),
                roster.heads(),
                now.timestamp_millis(),
            )?
            .context("the edited listing made no change")?;
        take(&mut node, SignedItem::change(&change))?;
        changed.insert(space.to_string());
    }
    node.store.flush()?;
    Ok(changed)
}

fn catch_up(ctx: &Ctx, d: &DirArgs, k: usize) -> anyhow::Result<()> {
    let fx = fixture(&ctx.work, d.spaces, d.history)?;
    let deadline = timeout(d);
    ensure_synced(&fx)?;
    let run = ctx.run_dir(&format!("catch-up-{}-{k}", fx.n))?;
    copy_dir(&fx.server(), &run.join("server"))?;
    copy_dir(&fx.synced(), &run.join("joiner"))?;

    eprintln!("reconnecting with nothing changed (the baseline)");
    let base = reconnect(ctx, &run, "baseline", &HashSet::new(), deadline)?;
    eprintln!("changing {k} listings on the stopped server");
    let changed = change_listings(&fx, &run.join("server"), k)?;
    eprintln!("reconnecting after {k} changes");
    let after = reconnect(ctx, &run, "changed", &changed, deadline)?;

    header(&format!(
        "catch-up: {k} of {} listings changed while the joiner was away",
        fx.n
    ));
    println!(
        "{:<52} {:>22} {:>22}",
        "",
        "nothing changed",
        &format!("{k} changed")
    );
    let row = |what: &str, a: String, b: String| println!("{what:<52} {a:>22} {b:>22}");
    row(
        "bytes on the wire, joiner to server",
        bytes(base.up),
        bytes(after.up),
    );
    row(
        "bytes on the wire, server to joiner",
        bytes(base.down),
        bytes(after.down),
    );
    row(
        "bytes in all",
        bytes(base.up + base.down),
        bytes(after.up + after.down),
    );
    let at = |r: &Reconnect| match r.at_changes {
        Some((u, d)) => bytes(u + d),
        None => "-".into(),
    };
    row(
        "  by the time the changes were stored",
        at(&base),
        at(&after),
    );
    row(
        "spawn to changes stored",
        base.changes_after_us
            .map(secs)
            .unwrap_or_else(|| "-".into()),
        after
            .changes_after_us
            .map(secs)
            .unwrap_or_else(|| "-".into()),
    );
    row(
        "spawn to the last byte",
        secs(base.settled_after_us),
        secs(after.settled_after_us),
    );
    row(
        "direction turns (upper bound of 2x RTTs)",
        base.turns.to_string(),
        after.turns.to_string(),
    );
    let extra = (after.up + after.down).saturating_sub(base.up + base.down);
    kv(
        "difference over the baseline (the changes' cost)",
        format!(
            "{} ({:.0} B per changed listing)",
            bytes(extra),
            extra as f64 / k.max(1) as f64
        ),
    );
    kv(
        "joiner's sync sessions, baseline",
        sessions_summary(&base.joiner_sessions),
    );
    kv(
        "joiner's sync sessions, after changes",
        sessions_summary(&after.joiner_sessions),
    );
    kv(
        "server's sync sessions, after changes",
        sessions_summary(&after.server_sessions),
    );
    ctx.finish(&run);
    Ok(())
}

// ---- 4. idle memory ----------------------------------------------------------------------------

fn idle_memory(ctx: &Ctx, d: &DirArgs, idle_s: u64) -> anyhow::Result<()> {
    let fx = fixture(&ctx.work, d.spaces, d.history)?;
    let deadline = timeout(d);
    ensure_synced(&fx)?;
    let run = ctx.run_dir(&format!("idle-memory-{}", fx.n))?;
    copy_dir(&fx.server(), &run.join("server"))?;
    copy_dir(&fx.synced(), &run.join("joiner"))?;

    let mut server = Daemon::start(
        &ctx.bin,
        &run.join("server"),
        &run.join("server.log"),
        &[],
        deadline,
    )?;
    let ready = (
        proc_kb(server.pid(), "VmRSS"),
        proc_kb(server.pid(), "VmHWM"),
    );
    let joiner_log = run.join("joiner.log");
    let mut tail = LogTail::from_end(&joiner_log)?;
    let mut joiner = Daemon::start(
        &ctx.bin,
        &run.join("joiner"),
        &joiner_log,
        &[server.addr()?.to_string()],
        deadline,
    )?;
    let mut p = Progress::default();
    let started = Instant::now();
    while !p.sessions.iter().any(|s| s.completed) {
        for line in tail.poll()? {
            p.feed(&line);
        }
        if started.elapsed() > deadline {
            bail!(
                "the joiner never completed a sync session; see {}",
                joiner_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("synced; idling {idle_s} s with the peer connected");
    std::thread::sleep(Duration::from_secs(idle_s));
    let rss = proc_kb(server.pid(), "VmRSS");
    let hwm = proc_kb(server.pid(), "VmHWM");
    let joiner_mem = (
        proc_kb(joiner.pid(), "VmRSS"),
        proc_kb(joiner.pid(), "VmHWM"),
    );
    let peers = cli_json(&ctx.bin, &run.join("server"), &["peers"])?["peers"]
        .as_array()
        .map_or(0, Vec::len);
    joiner.stop()?;
    server.stop()?;

    header(&format!("idle memory: serving daemon with {} spaces", fx.n));
    kv(
        "daemon ready after (open + scan + listen)",
        format!("{:.2} s", server.ready_after.as_secs_f64()),
    );
    kv(
        "server RSS / peak (VmHWM) when ready, no peer",
        format!("{} / {}", mib_kb(ready.0), mib_kb(ready.1)),
    );
    kv(
        &format!("server RSS / peak after a sync and {idle_s} s idle"),
        format!("{} / {}", mib_kb(rss), mib_kb(hwm)),
    );
    kv("server's peers at that moment", peers);
    kv(
        "joiner (synced, same directory) RSS / peak",
        format!("{} / {}", mib_kb(joiner_mem.0), mib_kb(joiner_mem.1)),
    );
    ctx.finish(&run);
    Ok(())
}

// ---- 1. seat propagation -----------------------------------------------------------------------

/// One daemon of the propagation mesh.
struct MeshNode {
    home: PathBuf,
    log: PathBuf,
    space: String,
    pool: String,
    capacity: u32,
}

/// A coordinator (never started) admits `n` spaces; each signs its own listing.
fn mesh_homes(run: &Path, n: usize) -> anyhow::Result<Vec<MeshNode>> {
    let now = Utc::now();
    let templates = deskmesh_node::demo::sample_listings()?;
    if templates.is_empty() {
        bail!("the bundled sample directory is empty");
    }
    let coord = Home::at(run.join("coordinator"));
    ops::init(&coord, Some("coordinator".into()))?;
    let mut c = Node::open(&coord)?;
    c.alliance_create("Propagation Alliance", 1, now)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let home = Home::at(run.join(format!("node-{i:02}")));
        ops::init(&home, Some(format!("node {i}")))?;
        let mut node = Node::open(&home)?;
        let t = &templates[i % templates.len()];
        let name = format!("{} {i}", t.name);
        let invite = c.alliance_invite(node.public_key(), &name, Vec::new(), now)?;
        node.alliance_join(&invite.token)?;
        let mut listing = t.clone();
        listing.id = invite.space.clone();
        listing.name = name;
        node.publish_listing(&listing, now)?;
        let pool = listing
            .seat_pools
            .first()
            .context("a sample listing has no seat pool")?;
        node.store.flush()?;
        out.push(MeshNode {
            home: home.root().to_path_buf(),
            log: run.join(format!("node-{i:02}.log")),
            space: invite.space.to_string(),
            pool: pool.id.clone(),
            capacity: pool.capacity,
        });
    }
    Ok(out)
}

fn dials(i: usize, a: &PropArgs, rng: &mut Rng) -> Vec<usize> {
    if i == 0 {
        return Vec::new();
    }
    match a.topology {
        Topology::Hub => vec![0],
        Topology::Chain => vec![i - 1],
        Topology::Random => {
            let mut v = Vec::new();
            while v.len() < a.links.max(1).min(i) {
                let j = rng.below(i);
                if !v.contains(&j) {
                    v.push(j);
                }
            }
            v
        }
    }
}

/// Where one update stands at one node.
#[derive(Default, Clone)]
struct Arrival {
    /// A "seat beacon stored" line for the publisher's pool, not yet tied to how it came.
    pending: Option<i64>,
    at_us: Option<i64>,
    gossip: bool,
    source: Option<String>,
}

fn propagation(ctx: &Ctx, a: &PropArgs) -> anyhow::Result<()> {
    if a.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let n = a.nodes;
    let run = ctx.run_dir(&format!("propagation-{n}"))?;
    eprintln!("creating {n} homes");
    let nodes = mesh_homes(&run, n)?;
    let mut rng = Rng::new(a.seed);
    let mut daemons: Vec<Daemon> = Vec::with_capacity(n);
    let deadline = Duration::from_secs(120);
    for (i, node) in nodes.iter().enumerate() {
        let mut boot = Vec::new();
        for j in dials(i, a, &mut rng) {
            boot.push(daemons[j].addr()?.to_string());
        }
        daemons.push(Daemon::start(
            &ctx.bin, &node.home, &node.log, &boot, deadline,
        )?);
    }
    eprintln!("{n} daemons up; waiting until every node has all {n} listings");
    let started = Instant::now();
    loop {
        let mut behind = 0;
        for node in &nodes {
            let v = cli_json(&ctx.bin, &node.home, &["status"])?;
            if v["listings"].as_u64().unwrap_or(0) < n as u64 {
                behind += 1;
            }
        }
        if behind == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "{behind} nodes still lack listings after 300 s; see {}",
                run.display()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let converged = started.elapsed();

    // Warm-up: gossipsub grafts its mesh on heartbeats, and the first sync sessions with the peers found
    // through Kademlia end.
    std::thread::sleep(Duration::from_secs(a.warmup_s));
    let mut degrees = Vec::with_capacity(n);
    for node in &nodes {
        let v = cli_json(&ctx.bin, &node.home, &["peers"])?;
        degrees.push(v["peers"].as_array().map_or(0, Vec::len));
    }
    // Idle traffic, in one-interval slots: pings and periodic syncs, and bursts (a Kademlia bootstrap every
    // 30 s moves ~200 KB per node at 20 nodes) that a mean would smear over everything; per-slot medians
    // of idle and update slots keep bursts out of both.
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let idle_slots = (a.idle_s * 1000 / a.interval_ms.max(1)).max(1);
    let mut idle_snaps = vec![tcp_received()?];
    for _ in 0..idle_slots {
        std::thread::sleep(interval);
        idle_snaps.push(tcp_received()?);
    }
    let index: HashMap<String, usize> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| (d.peer_id.clone(), i))
        .collect();
    let mut tails: Vec<LogTail> = nodes
        .iter()
        .map(|node| LogTail::from_end(&node.log))
        .collect::<anyhow::Result<_>>()?;

    let mut latencies: Vec<f64> = Vec::new();
    let mut by_hop: HashMap<usize, Vec<f64>> = HashMap::new();
    let mut publish_us: Vec<f64> = Vec::new();
    let mut pairs = 0usize;
    let mut arrived = 0usize;
    let mut gossiped = 0usize;
    let mut fallback_t0 = 0usize;
    eprintln!("publishing {} seat updates", a.updates);
    let mut update_snaps = Vec::with_capacity(a.updates + 1);
    for u in 0..a.updates {
        update_snaps.push(tcp_received()?);
        let from = if a.rotate { u % n } else { n - 1 };
        let publisher = &nodes[from];
        let value = (u as u32 % (publisher.capacity + 1)).to_string();
        let began = Instant::now();
        let t_cmd = wall_us();
        cli(
            &ctx.bin,
            &publisher.home,
            &["seats", "set", "--pool", &publisher.pool, &value],
        )?;
        let mut published: Option<(i64, String)> = None;
        let mut arrivals = vec![Arrival::default(); n];
        let limit = Duration::from_secs(a.update_timeout_s.max(1));
        loop {
            // The publisher first: its "published" line is written before any peer can receive the item.
            for (i, tail) in tails.iter_mut().enumerate() {
                for l in tail.poll()? {
                    if l.at_us < t_cmd {
                        continue;
                    }
                    if i == from {
                        if l.has("published a local edit") && l.field("kind") == Some("SeatBeacon")
                        {
                            published =
                                Some((l.at_us, l.field("id").unwrap_or_default().to_string()));
                        }
                        continue;
                    }
                    let ar = &mut arrivals[i];
                    if ar.at_us.is_some() {
                        continue;
                    }
                    if l.has("seat beacon stored")
                        && l.field("space") == Some(publisher.space.as_str())
                        && l.field("pool") == Some(publisher.pool.as_str())
                    {
                        ar.pending = Some(l.at_us);
                    } else if l.has("new item by gossip") && l.field("kind") == Some("SeatBeacon") {
                        if let Some(at) = ar.pending.take() {
                            let id = l.field("id").unwrap_or_default();
                            if published.as_ref().is_none_or(|(_, p)| p == id) {
                                ar.at_us = Some(at);
                                ar.gossip = true;
                                ar.source = l.field("peer").map(String::from);
                            }
                        }
                    } else if l.has("synced new items from peer") && l.num("beacons") > 0 {
                        if let Some(at) = ar.pending.take() {
                            ar.at_us = Some(at);
                            ar.source = l.field("peer").map(String::from);
                        }
                    }
                }
            }
            let done = (0..n)
                .filter(|&i| i != from)
                .all(|i| arrivals[i].at_us.is_some());
            if (done && published.is_some()) || began.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t_pub = match &published {
            Some((t, _)) => *t,
            None => {
                fallback_t0 += 1;
                t_cmd
            }
        };
        publish_us.push((t_pub - t_cmd) as f64);
        // Hops: the publisher is 0; a node that heard it by gossip from X is X's hops + 1.
        let mut hops: Vec<Option<usize>> = vec![None; n];
        hops[from] = Some(0);
        let mut order: Vec<usize> = (0..n).filter(|&i| arrivals[i].at_us.is_some()).collect();
        order.sort_by_key(|&i| arrivals[i].at_us);
        for &i in &order {
            let src = arrivals[i]
                .source
                .as_ref()
                .and_then(|s| index.get(s))
                .copied();
            hops[i] = src.and_then(|s| hops[s]).map(|h| h + 1);
        }
        for i in (0..n).filter(|&i| i != from) {
            pairs += 1;
            if let Some(at) = arrivals[i].at_us {
                arrived += 1;
                let lat = (at - t_pub) as f64;
                latencies.push(lat);
                if arrivals[i].gossip {
                    gossiped += 1;
                    if let Some(h) = hops[i] {
                        by_hop.entry(h).or_default().push(lat);
                    }
                }
            }
        }
        if let Some(rest) = interval.checked_sub(began.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    update_snaps.push(tcp_received()?);
    // Per node: the median bytes received in a slot holding one update, less the median idle slot.
    let median_slot = |pid: u32, snaps: &[SocketBytes]| {
        let mut v: Vec<f64> = snaps
            .windows(2)
            .map(|w| received_between(pid, &w[0], &w[1]) as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        pct(&v, 50)
    };
    let mut per_update = Vec::new();
    let mut idle_slot = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        if !a.rotate && i == n - 1 {
            // The publisher only sends; what it receives is control traffic.
            continue;
        }
        let idle = median_slot(d.pid(), &idle_snaps);
        per_update.push(median_slot(d.pid(), &update_snaps) - idle);
        idle_slot.push(idle);
    }
    per_update.sort_by(f64::total_cmp);
    idle_slot.sort_by(f64::total_cmp);
    for d in &mut daemons {
        d.stop()?;
    }
    // The size of one signed beacon, read from the publisher's store now that its daemon is gone.
    let last = &nodes[if a.rotate {
        (a.updates.max(1) - 1) % n
    } else {
        n - 1
    }];
    let beacon_size = Node::open(&Home::at(&last.home))?
        .store
        .beacons()?
        .first()
        .map(|(_, _, b)| b.len())
        .unwrap_or(0);

    header(&format!(
        "seat propagation: {n} daemons on 127.0.0.1, {} updates from {}",
        a.updates,
        if a.rotate {
            "every node in turn"
        } else {
            "one node"
        }
    ));
    let mut deg = degrees.clone();
    deg.sort_unstable();
    kv(
        "topology at start / connected peers per node",
        format!(
            "{:?}{} / min {} median {} max {}",
            a.topology,
            if a.topology == Topology::Random {
                format!(" ({} links)", a.links)
            } else {
                String::new()
            },
            deg.first().copied().unwrap_or(0),
            deg.get(deg.len() / 2).copied().unwrap_or(0),
            deg.last().copied().unwrap_or(0)
        ),
    );
    kv(
        "every node had every listing after",
        format!("{:.1} s", converged.as_secs_f64()),
    );
    kv(
        "coverage ((update, node) pairs stored / all)",
        format!(
            "{arrived} / {pairs} ({:.1}%)",
            100.0 * arrived as f64 / pairs.max(1) as f64
        ),
    );
    kv(
        "arrived by gossip (rest by sync)",
        format!("{gossiped} of {arrived}"),
    );
    dist("publish -> verified and stored, all pairs", &latencies);
    let mut hop_keys: Vec<usize> = by_hop.keys().copied().collect();
    hop_keys.sort_unstable();
    for h in hop_keys {
        dist(&format!("  at {h} gossip hop(s)"), &by_hop[&h]);
    }
    dist(
        "`seats set` spawned -> published (publisher log)",
        &publish_us,
    );
    if fallback_t0 > 0 {
        kv(
            "updates without a publish line (timed from spawn)",
            fallback_t0,
        );
    }
    kv(
        "TCP bytes received per node per update (median slot)",
        format!(
            "min {:.0} B, p50 {:.0} B, max {:.0} B (p50 = {:.1}x one signed beacon of {beacon_size} B)",
            per_update.first().copied().unwrap_or(f64::NAN),
            pct(&per_update, 50),
            per_update.last().copied().unwrap_or(f64::NAN),
            pct(&per_update, 50) / beacon_size.max(1) as f64,
        ),
    );
    kv(
        "  whole mesh per update (sum over receivers)",
        bytes(per_update.iter().sum::<f64>().max(0.0) as u64),
    );
    kv(
        "  idle slot subtracted (median per node)",
        format!(
            "p50 {:.0} B per {} ms, {idle_slots} slots",
            pct(&idle_slot, 50),
            a.interval_ms
        ),
    );
    ctx.finish(&run);
    Ok(())
}

/// Takes one signed item through a node's ingest path, as a bundle or a completed sync would.
/// Signs every seat beacon of the copied server home at `home` again, dated now (same pools, figures and
/// ttl, the next `seq`), with the spaces' keys from the fixture's salt. The fixture's beacons were dated
/// when it was built; a node does not offer one once it says nothing (15 minutes of ttl and 15 stale),
/// so without this a join of a fixture older than half an hour would move no seat figures. Joins are
/// measured with every pool live: the most a join can carry. Returns how many were signed.
fn refresh_beacons(fx: &Fixture, home: &Path) -> anyhow::Result<usize> {
    let t = Instant::now();
    let mut node = Node::open(&Home::at(home.to_path_buf()))?;
    let keys: HashMap<SpaceId, DeviceKey> = (0..fx.n)
        .map(|i| {
            let key = space_key(&fx.salt, i);
            (SpaceId::derive(&key.public_key()), key)
        })
        .collect();
    let now = Utc::now().timestamp_millis();
    let mut items = Vec::new();
    for (space, _, bytes) in node.store.beacons()? {
        let key = keys
            .get(&space)
            .with_context(|| format!("no fixture key for space {space}"))?;
        let mut beacon = SignedBeacon::from_bytes(&bytes)?.decode()?;
        beacon.published_at_ms = now;
        beacon.seq += 1;
        items.push(SignedItem::beacon(&beacon.sign(key)?));
    }
    let count = items.len();
    for chunk in items.chunks(4096) {
        let report = node.ingest(chunk.to_vec(), Source::Bundle, At::now());
        for o in report.outcomes {
            if !matches!(o.verdict, Verdict::Added(_)) {
                bail!("a re-signed beacon was not stored: {:?}", o.verdict);
            }
        }
    }
    node.take_made();
    node.store.flush()?;
    eprintln!(
        "signed the fixture's {count} seat beacons again, dated now, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(count)
}

/// How many seat beacons of the home at `home` still say something now (a node offers only those).
fn live_beacons(home: &Path) -> anyhow::Result<usize> {
    let node = Node::open(&Home::at(home.to_path_buf()))?;
    let now = Utc::now().timestamp_millis();
    let mut live = 0;
    for (_, _, bytes) in node.store.beacons()? {
        let beacon = SignedBeacon::from_bytes(&bytes)?.decode()?;
        if deskmesh_crdt_model::beacon::says_nothing_after_ms(&beacon) >= now {
            live += 1;
        }
    }
    eprintln!("{live} of the fixture's seat beacons still say something");
    Ok(live)
}

fn take(node: &mut Node, item: SignedItem) -> anyhow::Result<()> {
    let report = node.ingest(vec![item], Source::Bundle, At::now());
    node.take_made();
    match report.outcomes.into_iter().next().map(|o| o.verdict) {
        Some(Verdict::Refused(why)) | Some(Verdict::Failed(why)) => bail!("{why}"),
        _ => Ok(()),
    }
}
