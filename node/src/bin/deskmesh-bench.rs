//! `deskmesh-bench`: measures the node's own costs and prints small tables of figures.
//!
//! It owns the benchmark protocols of docs/BENCHMARKS.md that one process can run on its own: the crypto
//! budget (sign and verify on real listing-change envelope bytes), storage (durable write latency, size on
//! disk, reopen time and peak RSS for a directory of N spaces built through the real `Node` paths), directory
//! queries and exports. Every space gets a real device key, a roster admission, a signed listing change and
//! signed seat beacons, exactly as `deskmesh demo` does, so the store holds nothing a real node would not.
//! Mesh propagation, cold join, catch-up and TUI frame time are measured elsewhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, TimeZone, Utc};
use clap::{Parser, Subcommand};
use deskmesh_core::export::ExportFormat;
use deskmesh_core::home::Home;
use deskmesh_core::ingest::{At, SignedItem, Source, Verdict};
use deskmesh_core::node::{self as ops, RosterAuthority};
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon};
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_crdt_model::doc::SpaceDoc;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::query::{Query, SearchIndex};
use deskmesh_keys::roster::OpBody;
use deskmesh_keys::{DeviceKey, Domain, PublicKey, Signer, SpaceId};
use flate2::write::GzEncoder;
use flate2::Compression;

#[derive(Debug, Parser)]
#[command(
    name = "deskmesh-bench",
    about = "Measure deskmesh's crypto, store, query and export costs"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// ed25519 sign and verify on real listing-change envelope and beacon bytes.
    Crypto {
        /// Operations timed per figure.
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
    /// Build a directory of N spaces in a fresh sled store and report write latency, size and reopen time.
    Store(StoreArgs),
    /// Build (or reuse) a directory and time `Node::directory` queries.
    Query(StoreArgs),
    /// Build (or reuse) a directory and time JSON and GeoJSON exports.
    Export(StoreArgs),
    /// crypto, store, query and export in one run on one store.
    All(StoreArgs),
    /// `space edit` latency and a new node's join cost for one space at several history lengths.
    History(HistoryArgs),
    /// `spaces list` as people run it: the real `deskmesh` binary on a built directory (see `store
    /// --keep`), with no daemon and through a running one, filtered and not; and the daemon's memory
    /// over many queries.
    Cli(CliArgs),
    /// Attaching the TUI to a daemon serving a built directory: connect, snapshot, app state and the first
    /// frame, each stage timed (in this process, like `deskmesh tui`), then `deskmesh tui` itself in a
    /// real terminal (tmux) from launch to the first full screen, with and without a daemon.
    Attach(CliArgs),
    /// Generate an Overpass JSON extract of N coworking nodes and time reading it and drafting listings.
    Osm {
        /// Nodes in the extract.
        #[arg(long, default_value_t = 1000)]
        elements: usize,
        /// Runs timed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct HistoryArgs {
    /// History lengths (changes already signed for the space) to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,5000")]
    sizes: Vec<usize>,
    /// Edits timed at each size.
    #[arg(long, default_value_t = 20)]
    edits: usize,
    /// Seed of the listing generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone, clap::Args)]
struct CliArgs {
    /// A home holding a built directory (`deskmesh-bench store --home DIR --keep`).
    #[arg(long)]
    home: PathBuf,
    /// The `deskmesh` binary to run; by default the one beside this program.
    #[arg(long)]
    deskmesh: Option<PathBuf>,
    /// Runs per figure.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Queries sent to the daemon before its memory is read again.
    #[arg(long, default_value_t = 100)]
    queries: usize,
}

#[derive(Debug, Clone, clap::Args)]
struct StoreArgs {
    /// Spaces in the directory.
    #[arg(long, default_value_t = 10_000)]
    spaces: usize,
    /// Home directory to build in (or, with --reuse, to read); a fresh temporary one by default.
    #[arg(long)]
    home: Option<PathBuf>,
    /// Keep the home directory afterwards instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Use the directory already built in --home instead of building one.
    #[arg(long, requires = "home")]
    reuse: bool,
    /// Runs per query.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Operations timed by `all` for the crypto figures.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
}

/// The seed of the directory's listings, so every run builds the same directory.
const FIXTURE_SEED: u64 = 9;

/// A fixed clock (a Wednesday, 11:00 UTC) so open-now results and beacon freshness repeat run to run.
fn bench_now() -> anyhow::Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2025, 3, 12, 11, 0, 0)
        .single()
        .context("the fixed benchmark time is not a valid date")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = bench_now()?;
    match args.cmd {
        Cmd::Crypto { iterations } => crypto(iterations, now),
        Cmd::Osm { elements, runs } => osm(elements, runs),
        Cmd::Store(a) => with_home(&a, now, |_, _| Ok(())),
        Cmd::Query(a) => with_home(&a, now, |node, a| query(node, a.runs, now)),
        Cmd::Export(a) => with_home(&a, now, |node, _| export(node)),
        Cmd::History(a) => history(&a),
        Cmd::Cli(a) => cli(&a, now),
        Cmd::Attach(a) => attach(&a, now),
        Cmd::All(a) => {
            crypto(a.iterations, now)?;
            with_home(&a, now, |node, a| {
                query(node, a.runs, now)?;
                export(node)
            })
        }
    }
}

// ---- figures -----------------------------------------------------------------------------------

/// p50 / p99 / max of a set of samples.
struct Summary {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    total: Duration,
}

fn summarise(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let n = s.len();
    // Nearest-rank percentiles: the smallest sample with at least p% of samples at or below it.
    let rank = |p: usize| s.get((n * p).div_ceil(100).saturating_sub(1)).copied();
    Summary {
        n,
        p50: rank(50).unwrap_or_default(),
        p99: rank(99).unwrap_or_default(),
        max: s.last().copied().unwrap_or_default(),
        total: s.iter().sum(),
    }
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} us")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn header(title: &str) {
    println!();
    println!("## {title}");
    println!(
        "{:<44} {:>7} {:>11} {:>11} {:>11} {:>11}",
        "what", "n", "p50", "p99", "max", "total"
    );
}

fn row(what: &str, samples: &[Duration]) {
    let s = summarise(samples);
    println!(
        "{:<44} {:>7} {:>11} {:>11} {:>11} {:>11}",
        what,
        s.n,
        fmt_d(s.p50),
        fmt_d(s.p99),
        fmt_d(s.max),
        fmt_d(s.total)
    );
}

fn value(what: &str, v: impl std::fmt::Display) {
    println!("{what:<44} {v}");
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB ({bytes} B)", bytes as f64 / (1024.0 * 1024.0))
}

/// Peak resident set size so far, from the kernel's high-water mark.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc/self/status)".into())
}

/// Apparent and allocated bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = disk_usage(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}

// ---- the directory -----------------------------------------------------------------------------

/// What building the directory measured.
struct Built {
    admit: Vec<Duration>,
    change: Vec<Duration>,
    beacon: Vec<Duration>,
    change_bytes: Vec<usize>,
    signed_bytes: Vec<usize>,
    save_bytes: Vec<usize>,
    total: Duration,
}

/// Creates a node in `home`, founds an alliance, and adds `n` spaces through the real accept paths, each
/// with a listing from the seeded generator (`demo::fixture`): realistic and non-repeating.
fn build(home: &Home, n: usize, now: DateTime<Utc>) -> anyhow::Result<Built> {
    let mut gen = deskmesh_node::demo::fixture::Generator::new(FIXTURE_SEED);
    let started = Instant::now();
    ops::init(home, Some("bench coordinator".into()))?;
    let mut node = Node::open(home)?;
    node.alliance_create("Bench Alliance", 1, now)?;
    let now_ms = now.timestamp_millis();
    let mut b = Built {
        admit: Vec::with_capacity(n),
        change: Vec::with_capacity(n),
        beacon: Vec::new(),
        change_bytes: Vec::with_capacity(n),
        signed_bytes: Vec::with_capacity(n),
        save_bytes: Vec::with_capacity(n),
        total: Duration::ZERO,
    };
    let progress = (n / 10).max(1);
    for i in 0..n {
        let key = DeviceKey::generate();
        let space = SpaceId::derive(&key.public_key());
        let listing = gen.listing(&space, i);
        let roster = node.roster().context("the bench node has no alliance")?;
        let admit = roster.propose(
            node.signer(),
            OpBody::AdmitSpace {
                space: space.clone(),
                name: listing.name.clone(),
                devices: vec![key.public_key()],
            },
            now_ms,
        );
        let (r, d) = time(|| take(&mut node, SignedItem::op(&admit)));
        r?;
        b.admit.push(d);

        let roster = node.roster().context("the bench node has no alliance")?;
        let heads = roster.heads();
        let mut doc = SpaceDoc::new(space.clone());
        let change = doc
            .edit(
                &listing,
                &key,
                &RosterAuthority(Some(roster)),
                heads.clone(),
                now_ms,
            )?
            .context("a fresh document took no change")?;
        b.change_bytes.push(change.change.len());
        b.signed_bytes.push(change.to_bytes().len());
        b.save_bytes.push(doc.doc().save().len());
        let (r, d) = time(|| take(&mut node, SignedItem::change(&change)));
        if !r? {
            bail!("space {i}: its first listing change was not new");
        }
        b.change.push(d);

        for (j, pool) in listing.seat_pools.iter().enumerate() {
            let (availability, age_min) = deskmesh_node::demo::sample_seats(i + j, pool.capacity);
            let beacon = SeatBeacon {
                space: space.clone(),
                pool: pool.id.clone(),
                availability,
                is_open: availability != Availability::Closed,
                published_at_ms: now_ms - age_min * 60_000,
                ttl_s: 900,
                seq: 0,
                author: key.public_key(),
                roster_heads: heads.clone(),
            };
            let signed = beacon.sign(&key)?;
            let (r, d) = time(|| take(&mut node, SignedItem::beacon(&signed)));
            r?;
            b.beacon.push(d);
        }
        if (i + 1) % progress == 0 {
            eprintln!(
                "built {}/{n} spaces in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    b.total = started.elapsed();
    Ok(b)
}

fn report_build(b: &Built, n: usize) {
    header(&format!(
        "store: build {n} spaces (sled, every write flushed)"
    ));
    row("accept_op (roster admission)", &b.admit);
    row("accept_change (verify+store+reindex)", &b.change);
    row("accept_beacon (verify+store)", &b.beacon);
    // The cost of a write grows with the directory when it depends on the roster size; show both ends.
    let tenth = (n / 10).max(1);
    if n >= 20 {
        row("accept_change, first 10% of spaces", &b.change[..tenth]);
        row("accept_change, last 10% of spaces", &b.change[n - tenth..]);
        row("accept_op, first 10% of spaces", &b.admit[..tenth]);
        row("accept_op, last 10% of spaces", &b.admit[n - tenth..]);
    }
    let avg = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    value("build wall time", fmt_d(b.total));
    value(
        "automerge change bytes per listing (mean)",
        format!("{:.0} B", avg(&b.change_bytes)),
    );
    value(
        "signed change bytes per listing (mean)",
        format!("{:.0} B", avg(&b.signed_bytes)),
    );
    value(
        "automerge save() bytes per listing (mean)",
        format!("{:.0} B", avg(&b.save_bytes)),
    );
}

/// Builds (or reuses) a directory, reports the store figures, reopens it and hands the node to `then`.
fn with_home(
    a: &StoreArgs,
    now: DateTime<Utc>,
    then: impl FnOnce(&Node, &StoreArgs) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (root, temporary) = match &a.home {
        Some(p) => (p.clone(), false),
        None => {
            let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let p =
                std::env::temp_dir().join(format!("deskmesh-bench-{}-{nanos}", std::process::id()));
            (p, true)
        }
    };
    let home = Home::at(&root);
    let result = run_with_home(&home, a, now, then);
    if temporary && !a.keep {
        if let Err(e) = std::fs::remove_dir_all(&root) {
            eprintln!("could not remove {}: {e}", root.display());
        }
    } else {
        eprintln!("kept the bench home at {}", root.display());
    }
    result
}

fn run_with_home(
    home: &Home,
    a: &StoreArgs,
    now: DateTime<Utc>,
    then: impl FnOnce(&Node, &StoreArgs) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !a.reuse {
        if home.is_initialised() {
            bail!(
                "{} already holds a node; pass --reuse to measure it or choose an empty --home",
                home.root().display()
            );
        }
        if a.spaces == 0 {
            bail!("--spaces must be at least 1");
        }
        let built = build(home, a.spaces, now)?;
        report_build(&built, a.spaces);
        value("peak RSS after build (VmHWM)", peak_rss());
    }
    let (apparent, allocated) = disk_usage(&home.store_path())?;
    value("store size on disk, apparent", mib(apparent));
    value("store size on disk, allocated", mib(allocated));
    // Where opening goes: sled alone, then the whole node (sled, roster, dirty spaces).
    let (store, d) = time(|| deskmesh_store::SledStore::open(&home.store_path()));
    drop(store?);
    value("open the sled store alone", fmt_d(d));
    let (node, d) = time(|| Node::open(home));
    let node = node?;
    value("reopen (Node::open: roster + dirty reindex)", fmt_d(d));
    let spaces = node.entries()?.len();
    value("spaces in the reopened index", spaces);
    if !a.reuse && spaces != a.spaces {
        bail!(
            "the reopened index holds {spaces} spaces, {} were written",
            a.spaces
        );
    }
    // A raw flushed sled write with no verification, as the floor under every accept_* figure.
    let mut raw = Vec::with_capacity(200);
    for i in 0..200u32 {
        let (r, d) = time(|| node.store.put_meta("bench-probe", &i.to_be_bytes()));
        r?;
        raw.push(d);
    }
    header("store: raw durable write");
    row("put_meta + flush (one small key)", &raw);
    then(&node, a)?;
    value("peak RSS at the end (VmHWM)", peak_rss());
    Ok(())
}

// ---- crypto ------------------------------------------------------------------------------------

fn crypto(iterations: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let iterations = iterations.max(1);
    // A real listing change needs a roster that authorises its author: found an in-memory alliance.
    let coordinator = DeviceKey::generate();
    let (mut roster, _) = deskmesh_keys::roster::Roster::create(
        &coordinator,
        "Bench Alliance",
        Vec::new(),
        1,
        now.timestamp_millis(),
    )?;
    let key = DeviceKey::generate();
    let space = SpaceId::derive(&key.public_key());
    let listing = deskmesh_node::demo::fixture::Generator::new(FIXTURE_SEED).listing(&space, 0);
    let admit = roster.propose(
        &coordinator,
        OpBody::AdmitSpace {
            space: space.clone(),
            name: listing.name.clone(),
            devices: vec![key.public_key()],
        },
        now.timestamp_millis(),
    );
    roster.insert(admit)?;
    let mut doc = SpaceDoc::new(space.clone());
    let change: SignedChange = doc
        .edit(
            &listing,
            &key,
            &RosterAuthority(Some(&roster)),
            roster.heads(),
            now.timestamp_millis(),
        )?
        .context("a fresh document took no change")?;
    let env = &change.envelope_bytes;
    let pk = key.public_key();

    let mut sign = Vec::with_capacity(iterations);
    let mut verify = Vec::with_capacity(iterations);
    let mut full = Vec::with_capacity(iterations);
    let mut sig = change.signature;
    for _ in 0..iterations {
        let (s, d) = time(|| key.sign(Domain::ListingChange, env));
        sign.push(d);
        sig = s;
    }
    for _ in 0..iterations {
        let (r, d) = time(|| pk.verify(Domain::ListingChange, env, &sig));
        r?;
        verify.push(d);
    }
    for _ in 0..iterations {
        let (r, d) = time(|| change.verify());
        r?;
        full.push(d);
    }
    let beacon = SeatBeacon {
        space,
        pool: listing
            .seat_pools
            .first()
            .map(|p| p.id.clone())
            .context("the sample listing has no seat pool")?,
        availability: Availability::Count(3),
        is_open: true,
        published_at_ms: now.timestamp_millis(),
        ttl_s: 900,
        seq: 0,
        author: pk,
        roster_heads: roster.heads(),
    };
    let mut bsign = Vec::with_capacity(iterations);
    let mut bverify = Vec::with_capacity(iterations);
    let mut signed = beacon.sign(&key)?;
    for _ in 0..iterations {
        let (s, d) = time(|| beacon.sign(&key));
        signed = s?;
        bsign.push(d);
    }
    for _ in 0..iterations {
        let (r, d) = time(|| signed.verify(now.timestamp_millis()));
        r?;
        bverify.push(d);
    }
    // Many signers, one signature each (a join's items), checked one at a time and in batches of 16, 32
    // and 64 as the check phase makes them (`deskmesh_keys::batch::check_together`): per-signature figures.
    let signers: Vec<(PublicKey, Vec<u8>, deskmesh_keys::Signature)> = (0..iterations)
        .map(|i| {
            let k = DeviceKey::generate();
            let msg = [env.as_slice(), &(i as u64).to_le_bytes()].concat();
            let sig = k.sign(Domain::ListingChange, &msg);
            (k.public_key(), msg, sig)
        })
        .collect();
    let check = |(k, m, s): &(PublicKey, Vec<u8>, deskmesh_keys::Signature)| {
        k.verify(Domain::ListingChange, m, s).is_ok()
    };
    const RUNS: [usize; 3] = [16, 32, 64];
    let mut one_by_one = Vec::new();
    let mut batched: [Vec<Duration>; 3] = Default::default();
    for _ in 0..5 {
        let (ok, d) = time(|| signers.iter().filter(|x| check(x)).count());
        anyhow::ensure!(ok == signers.len(), "a signature did not verify one by one");
        one_by_one.push(d / signers.len() as u32);
        for (size, out) in RUNS.iter().zip(batched.iter_mut()) {
            let (ok, d) = time(|| {
                signers
                    .chunks(*size)
                    .flat_map(|run| deskmesh_keys::batch::check_together(run, check))
                    .filter(|ok| *ok)
                    .count()
            });
            anyhow::ensure!(ok == signers.len(), "a signature did not verify in a batch");
            out.push(d / signers.len() as u32);
        }
    }
    header("crypto: ed25519 (deskmesh-keys: ed25519-dalek signs, ZIP-215 checks by ed25519-zebra)");
    row(
        &format!("sign listing-change envelope ({} B)", env.len()),
        &sign,
    );
    row("verify listing-change envelope", &verify);
    row(
        &format!(
            "SignedChange::verify (+decode {} B change)",
            change.change.len()
        ),
        &full,
    );
    row(
        &format!("sign seat beacon ({} B)", signed.bytes.len()),
        &bsign,
    );
    row("SignedBeacon::verify", &bverify);
    row(
        &format!("verify, {} signers, per signature", signers.len()),
        &one_by_one,
    );
    for (size, figures) in RUNS.iter().zip(&batched) {
        row(
            &format!("  the same in batches of {size}, per signature"),
            figures,
        );
    }
    Ok(())
}

// ---- queries and exports -----------------------------------------------------------------------

fn query(node: &Node, runs: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let runs = runs.max(1);
    // Where a query from scratch goes: the index rows as stored, decoded, the beacons.
    let (raw, d) = time(|| node.store.entries());
    let raw = raw?;
    let bytes: usize = raw.iter().map(|(_, b)| b.len()).sum();
    value(
        &format!(
            "read the index rows ({} rows, {})",
            raw.len(),
            mib(bytes as u64)
        ),
        fmt_d(d),
    );
    drop(raw);
    let (entries, d) = time(|| node.entries());
    let entries = entries?;
    value("read and decode the index entries", fmt_d(d));
    let (listings, d) = time(|| {
        entries
            .iter()
            .map(|e| e.listing.clone())
            .collect::<Vec<Listing>>()
    });
    drop(listings);
    value("  of which the listings", fmt_d(d));
    let (beacons, d) = time(|| node.beacons());
    value(
        &format!("read and decode the beacons ({})", beacons?.len()),
        fmt_d(d),
    );
    let listings: Vec<Listing> = entries.iter().map(|e| e.listing.clone()).collect();
    let mut build = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (index, d) = time(|| SearchIndex::build(listings.iter()));
        if index.len() != listings.len() {
            bail!(
                "the search index holds {} rows for {} listings",
                index.len(),
                listings.len()
            );
        }
        build.push(d);
    }
    let cases: [(&str, Query); 4] = [
        ("directory, no filter", Query::default()),
        (
            "directory --city Berlin",
            Query {
                city: Some("Berlin".into()),
                ..Query::default()
            },
        ),
        (
            "directory --open-now --seats-free",
            Query {
                open_now: true,
                seats_free_now: true,
                ..Query::default()
            },
        ),
        (
            "directory text \"coworking\"",
            Query {
                text: Some("coworking".into()),
                ..Query::default()
            },
        ),
    ];
    header(&format!(
        "query: {} spaces, {runs} runs each",
        listings.len()
    ));
    row("SearchIndex::build (listings in memory)", &build);
    for (name, q) in cases {
        let mut samples = Vec::with_capacity(runs);
        let mut matched = 0;
        for _ in 0..runs {
            let (dir, d) = time(|| node.directory(&q, now));
            matched = dir?.matched;
            samples.push(d);
        }
        row(&format!("{name} ({matched} hits)"), &samples);
    }
    Ok(())
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

fn export(node: &Node) -> anyhow::Result<()> {
    header("export");
    let now = bench_now()?;
    for (name, format) in [
        ("json", ExportFormat::Json),
        ("geojson", ExportFormat::Geojson),
        ("csv", ExportFormat::Csv),
        ("jsonld", ExportFormat::Jsonld),
        ("osm", ExportFormat::Osm),
    ] {
        let mut samples = Vec::with_capacity(5);
        let mut out = Vec::new();
        for _ in 0..5 {
            let (r, d) = time(|| node.export(format, now));
            out = r?;
            samples.push(d);
        }
        row(&format!("export {name}"), &samples);
        let (gz, d) = time(|| gzip(&out));
        let gz = gz?;
        value(
            &format!("  {name} size / gzip size / gzip time"),
            format!(
                "{} / {} / {}",
                mib(out.len() as u64),
                mib(gz.len() as u64),
                fmt_d(d)
            ),
        );
    }
    Ok(())
}

/// Takes one signed item through the node's ingest path, as a bundle would; `Ok(true)` when it was new.
fn take(node: &mut Node, item: SignedItem) -> anyhow::Result<bool> {
    let report = node.ingest(vec![item], Source::Bundle, At::now());
    node.take_made();
    match report.outcomes.into_iter().next().map(|o| o.verdict) {
        Some(Verdict::Added(_)) => Ok(true),
        Some(Verdict::Known) | Some(Verdict::Superseded) => Ok(false),
        Some(Verdict::Refused(why)) | Some(Verdict::Failed(why)) => bail!("{why}"),
        Some(Verdict::Waiting) | None => bail!("the item was not judged"),
    }
}

// ---- history -------------------------------------------------------------------------------------

/// For each history length: a space whose listing already has that many signed changes (written straight
/// to its store, then indexed once by `Node::open`), the latency of further `space edit`s through the
/// node's API, the time to reopen the node, and the time a new node takes to ingest the whole history in
/// mesh-sized batches (what a join of that one space costs).
fn history(a: &HistoryArgs) -> anyhow::Result<()> {
    use deskmesh_core::ops::listing::{ListingBase, ListingEdit};
    use deskmesh_node::demo::fixture::Generator;

    header("history: space edit and join cost by history length");
    for &size in &a.sizes {
        let dir = tempfile_dir("history")?;
        let home = Home::at(dir.join("space"));
        ops::init(&home, Some("history bench".into()))?;
        let mut node = Node::open(&home)?;
        let now = Utc::now();
        node.alliance_create("History Alliance", 1, now)?;
        let me = node.public_key();
        node.alliance_invite(me, "History Space", Vec::new(), now)?;
        let space = node
            .my_space()
            .context("the bench node is not its own space")?;
        let mut gen = Generator::new(a.seed);
        let mut listing = gen.listing(&space, 0);
        // The history, signed through the listing document directly and stored in one batch.
        let (doc, built) = time(|| -> anyhow::Result<SpaceDoc> {
            let roster = node.require_roster()?;
            let mut doc = SpaceDoc::new(space.clone());
            let mut changes = Vec::with_capacity(size);
            for k in 0..size {
                if k > 0 {
                    listing = gen.edit(&listing);
                }
                let ms = now.timestamp_millis() - (size - k) as i64 * 60_000;
                if let Some(c) = doc.edit(
                    &listing,
                    node.signer(),
                    &RosterAuthority(Some(roster)),
                    roster.heads(),
                    ms,
                )? {
                    changes.push(c);
                }
            }
            let rows: Vec<([u8; 32], Vec<u8>)> = changes
                .iter()
                .map(|c| Ok((c.id()?, c.to_bytes())))
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<([u8; 32], &[u8])> =
                rows.iter().map(|(h, b)| (*h, b.as_slice())).collect();
            node.store.put_many_changes(&space, &refs)?;
            Ok(doc)
        });
        let doc = doc?;
        let history_len = doc.accepted().len();
        let save_bytes = doc.doc().save().len();
        drop(node);
        let (reopened, first_open) = time(|| Node::open(&home));
        let mut node = reopened?;
        let mut samples = Vec::with_capacity(a.edits);
        for _ in 0..a.edits {
            listing = gen.edit(&listing);
            let edit = ListingEdit {
                base: Some(ListingBase::Listing(Box::new(listing.clone()))),
                fields: Default::default(),
            };
            let (r, d) = time(|| node.space_edit(&edit, Utc::now()));
            r?;
            samples.push(d);
        }
        node.take_made();
        drop(node);
        let (reopened, reopen) = time(|| Node::open(&home));
        let node = reopened?;
        row(&format!("space edit at history {history_len}"), &samples);
        value(
            &format!("  first open (indexes the history) at {history_len}"),
            fmt_d(first_open),
        );
        value(&format!("  reopen at {history_len}"), fmt_d(reopen));
        value(
            &format!("  automerge save() at {history_len}"),
            mib(save_bytes as u64),
        );

        // A new node joining this one space: the roster first, then every change in ~512 KB batches.
        let bundle = node.bundle()?;
        drop(node);
        let joiner_home = Home::at(dir.join("joiner"));
        ops::init(&joiner_home, Some("joiner".into()))?;
        let mut joiner = Node::open(&joiner_home)?;
        let create = deskmesh_keys::roster::SignedOp::from_bytes(&bundle.roster_ops[0])?;
        joiner.adopt_roster(&[create], &[])?;
        let (r, d) = time(|| -> anyhow::Result<()> {
            for batch in bundle.batches(512 * 1024) {
                let report = joiner.ingest(batch, Source::Mesh, At::now());
                if let Some(e) = report.flush_error {
                    bail!("{e}");
                }
            }
            Ok(())
        });
        r?;
        let joined = joiner
            .current_listing(&space)?
            .context("the joiner has no listing after ingesting the history")?;
        if joined != listing {
            bail!("the joiner's listing differs from the space's");
        }
        value(
            &format!("  join (ingest the whole history) at {history_len}"),
            fmt_d(d),
        );
        value("  history built in", fmt_d(built));
        drop(joiner);
        std::fs::remove_dir_all(&dir)?;
    }
    value("peak RSS (VmHWM)", peak_rss());
    Ok(())
}

/// A fresh directory under the system temp dir.
fn tempfile_dir(what: &str) -> anyhow::Result<PathBuf> {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let p = std::env::temp_dir().join(format!(
        "deskmesh-bench-{what}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
/// An Overpass answer of `n` coworking nodes tagged as mappers tag them (some tags unknown to deskmesh),
/// read into entries and turned into drafts.
fn osm(n: usize, runs: usize) -> anyhow::Result<()> {
    use deskmesh_core::api::Bytes;
    use deskmesh_core::formats::{self, Defaults};
    use deskmesh_core::ops::drafts::DraftRequest;
    use deskmesh_core::ops::listing::{FileBytes, FileFormat};

    header(&format!("osm: an Overpass extract of {n} nodes"));
    let elements: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let wheelchair = ["yes", "limited", "no"][i % 3];
            serde_json::json!({
                "type": "node", "id": 1_000_000 + i, "lat": 38.7 + (i % 100) as f64 * 0.001,
                "lon": -9.1 - (i / 100) as f64 * 0.001,
                "tags": {
                    "amenity": "coworking_space", "name": format!("Space {i}"),
                    "addr:street": "Rua Augusta", "addr:housenumber": (i % 300 + 1).to_string(),
                    "addr:city": "Lisboa", "addr:postcode": "1100-048",
                    "opening_hours": "Mo-Fr 08:00-20:00; Sa 10:00-16:00; PH off",
                    "website": format!("https://space{i}.example"), "phone": "+351 21 000 0000",
                    "wheelchair": wheelchair, "internet_access": "wlan",
                    "capacity": (10 + i % 50).to_string(), "check_date": "2025-03-01",
                    "operator": "Example Lda", "start_date": "2020"
                }
            })
        })
        .collect();
    let text = serde_json::json!({"version": 0.6, "elements": elements}).to_string();
    value("extract size", mib(text.len() as u64));
    let file = FileBytes {
        name: "extract.json".into(),
        format: FileFormat::Auto,
        bytes: Bytes(text.into_bytes()),
    };
    let defaults = Defaults {
        country: Some("PT".into()),
        ..Defaults::default()
    };
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (r, d) = time(|| formats::entries(&file, &defaults));
        anyhow::ensure!(r?.len() == n, "not every node was read");
        samples.push(d);
    }
    row("read and map tags", &samples);
    let dir = std::env::temp_dir().join(format!("deskmesh-bench-osm-{}", std::process::id()));
    let home = Home::at(dir.join("home"));
    deskmesh_core::node::init(&home, Some("bench".into()))?;
    let node = Node::open(&home)?;
    let request = DraftRequest { file, defaults };
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (r, d) = time(|| node.drafts(&request));
        anyhow::ensure!(r?.ready() == n, "every draft should be ready");
        samples.push(d);
    }
    row("drafts (read, map, validate)", &samples);
    drop(node);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

// ---- the command line and the TUI, as people run them -------------------------------------------

/// The `deskmesh` binary: `--deskmesh`, else the one beside this program.
fn deskmesh_bin(a: &CliArgs) -> anyhow::Result<PathBuf> {
    let bin = match &a.deskmesh {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("deskmesh"),
    };
    if !bin.is_file() {
        bail!(
            "{} does not exist; build it (`cargo build --release --bin deskmesh`) or pass --deskmesh",
            bin.display()
        );
    }
    Ok(bin)
}

/// A `deskmesh` command on the bench home, with the bench's fixed clock so seats and hours repeat.
fn deskmesh_cmd(
    bin: &Path,
    home: &Path,
    now: DateTime<Utc>,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("DESKMESH_TEST_NOW", now.to_rfc3339())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs a command to its end with its output discarded; the wall time from spawn to exit.
fn timed_run(mut cmd: std::process::Command) -> anyhow::Result<(Duration, usize)> {
    let t = Instant::now();
    let out = cmd.stderr(std::process::Stdio::piped()).output()?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((d, out.stdout.len()))
}

/// The `spaces list` cases measured.
const LIST_CASES: [(&str, &[&str]); 5] = [
    ("spaces list", &["spaces", "list"]),
    ("spaces list --json", &["spaces", "list", "--json"]),
    (
        "spaces list --city Berlin",
        &["spaces", "list", "--city", "Berlin"],
    ),
    (
        "spaces list --open-now --seats-free",
        &["spaces", "list", "--open-now", "--seats-free"],
    ),
    (
        "spaces list --amenity coffee --access wheelchair",
        &[
            "spaces",
            "list",
            "--amenity",
            "coffee",
            "--access",
            "wheelchair",
        ],
    ),
];

fn list_cases(
    bin: &Path,
    home: &Path,
    now: DateTime<Utc>,
    runs: usize,
    how: &str,
) -> anyhow::Result<()> {
    for (name, args) in LIST_CASES {
        let mut samples = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let (d, n) = timed_run(deskmesh_cmd(bin, home, now, args))?;
            samples.push(d);
            bytes = n;
        }
        row(
            &format!("{name}, {how} ({} KB out)", bytes / 1024),
            &samples,
        );
    }
    Ok(())
}

/// A `deskmesh run` on the bench home, stopped (SIGTERM, then waited for) when dropped.
struct BenchDaemon {
    child: std::process::Child,
}

impl BenchDaemon {
    /// Starts the daemon on a loopback port (no mDNS) and waits until its control socket answers.
    fn start(bin: &Path, home: &Path, now: DateTime<Utc>) -> anyhow::Result<(Self, Duration)> {
        let socket = Home::at(home).socket_path();
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(home.join("bench-run.log"))?;
        let t = Instant::now();
        let child = deskmesh_cmd(
            bin,
            home,
            now,
            &["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
        let daemon = Self { child };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if deskmesh_node::control::Remote::connect(&socket)
                .ok()
                .flatten()
                .is_some()
            {
                return Ok((daemon, t.elapsed()));
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not answer within 120 s; see {}",
                    home.join("bench-run.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident and peak resident memory of the daemon, from the kernel.
    fn memory(&self) -> String {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.trim_start_matches(name).trim().to_string())
                .unwrap_or_else(|| "?".into())
        };
        format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn cli(a: &CliArgs, now: DateTime<Utc>) -> anyhow::Result<()> {
    let bin = deskmesh_bin(a)?;
    let runs = a.runs.max(1);
    let home = a.home.as_path();
    if !Home::at(home).is_initialised() {
        bail!(
            "{} holds no node; build one with `deskmesh-bench store --home DIR --keep`",
            home.display()
        );
    }
    header(&format!(
        "cli: `deskmesh spaces list` on {}, {runs} runs each, wall time from spawn to exit",
        home.display()
    ));
    list_cases(&bin, home, now, runs, "no daemon")?;
    let (daemon, ready) = BenchDaemon::start(&bin, home, now)?;
    value("daemon ready (control socket answers)", fmt_d(ready));
    value("daemon memory, idle", daemon.memory());
    let (first, _) = timed_run(deskmesh_cmd(&bin, home, now, &["spaces", "list"]))?;
    value("first spaces list through the daemon", fmt_d(first));
    value("daemon memory after one query", daemon.memory());
    list_cases(&bin, home, now, runs, "through the daemon")?;
    let mut samples = Vec::with_capacity(a.queries);
    for i in 0..a.queries {
        let args: &[&str] = LIST_CASES[i % LIST_CASES.len()].1;
        let (d, _) = timed_run(deskmesh_cmd(&bin, home, now, args))?;
        samples.push(d);
        if (i + 1) % (a.queries / 4).max(1) == 0 {
            value(
                &format!("daemon memory after {} more queries", i + 1),
                daemon.memory(),
            );
        }
    }
    row(
        &format!("{} mixed queries through the daemon", a.queries),
        &samples,
    );
    drop(daemon);
    Ok(())
}

fn attach(a: &CliArgs, now: DateTime<Utc>) -> anyhow::Result<()> {
    use deskmesh_tui::{draw, App, NodeApi, Theme};
    use ratatui::backend::TestBackend;
    use ratatui::layout::Rect;
    use ratatui::Terminal;

    let bin = deskmesh_bin(a)?;
    let runs = a.runs.max(1);
    let home = a.home.as_path();
    let socket = Home::at(home).socket_path();
    let (width, height) = (120u16, 32u16);
    let (daemon, ready) = BenchDaemon::start(&bin, home, now)?;
    value("daemon ready (control socket answers)", fmt_d(ready));
    value("daemon memory, idle", daemon.memory());
    let (mut connect, mut snapshot, mut app_new, mut first_draw, mut total, mut loaded) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut spaces = 0;
    let mut first = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let mut api =
            deskmesh_node::tui_client::attach(&socket)?.context("the daemon stopped answering")?;
        let c = t.elapsed();
        let s = api.snapshot().map_err(|e| anyhow::anyhow!(e))?;
        let sn = t.elapsed();
        first = s.spaces.len();
        let mut app = App::new(s, Theme::colored(), now, Rect::new(0, 0, width, height));
        let an = t.elapsed();
        let mut term = Terminal::new(TestBackend::new(width, height))?;
        term.draw(|f| draw(&app, f))?;
        let dr = t.elapsed();
        // Then the rest of the directory, page by page, as the TUI's loop applies it.
        let deadline = Instant::now() + Duration::from_secs(120);
        while app.loading() > 0 {
            match api.poll() {
                Some(update) => app.update(update),
                None if Instant::now() > deadline => bail!(
                    "the directory did not finish loading within 120 s ({} still to come)",
                    app.loading()
                ),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        term.draw(|f| draw(&app, f))?;
        loaded.push(t.elapsed());
        spaces = app.counts().1;
        connect.push(c);
        snapshot.push(sn - c);
        app_new.push(an - sn);
        first_draw.push(dr - an);
        total.push(dr);
    }
    header(&format!(
        "attach: the TUI on a daemon serving {spaces} spaces, {width}x{height}, {runs} runs, in process; the first snapshot holds {first}"
    ));
    row(
        "connect, subscribe, first snapshot (tui_client::attach)",
        &connect,
    );
    row("first snapshot mapped (NodeApi::snapshot)", &snapshot);
    row("App::new (index, filter, sort)", &app_new);
    row("first frame (TestBackend)", &first_draw);
    row("attach to first frame", &total);
    row("attach to every space loaded and drawn", &loaded);
    value("daemon memory after the attaches", daemon.memory());

    // The real thing: `deskmesh tui` in tmux, from launch until the table shows every space.
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
        // The header reads "200 of 200 spaces · 9800 loading" on the first screen (the table full),
        // then "10000 of 10000 spaces" once every page arrived.
        let all = format!("{spaces} of {spaces} spaces");
        let samples = tmux_launches(&bin, home, now, runs, &[" loading · ", &all], width, height)?;
        header("attach: `deskmesh tui` in tmux, from launch");
        row("with a daemon running: first full screen", &samples[0]);
        row("with a daemon running: every space loaded", &samples[1]);
        drop(daemon);
        // Without a daemon the first screen comes from the store while the TUI's own node starts; the
        // status bar says "attached to daemon" once that node answers.
        let wants = [" loading · ", "attached to daemon", all.as_str()];
        match tmux_launches(&bin, home, now, runs.min(5), &wants, width, height) {
            Ok(samples) => {
                row(
                    "no daemon (the TUI starts its own node): first full screen",
                    &samples[0],
                );
                row("no daemon: attached to its own node", &samples[1]);
                row("no daemon: every space loaded", &samples[2]);
            }
            Err(e) => value(
                "no daemon (the TUI starts its own node)",
                format!("not measured: {e:#}"),
            ),
        }
    } else {
        drop(daemon);
        value(
            "deskmesh tui in tmux",
            "not measured: tmux is not installed",
        );
    }
    Ok(())
}

/// Launches `deskmesh tui` in a fresh detached tmux session `runs` times and polls the screen until it
/// shows each of `wants` in turn; for each, the times from launch to the first screen showing it (or a
/// later one: a screen showing a later want counts for the earlier ones too), polled every 2 ms, so
/// within ~3 ms.
fn tmux_launches(
    bin: &Path,
    home: &Path,
    now: DateTime<Utc>,
    runs: usize,
    wants: &[&str],
    width: u16,
    height: u16,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let session = format!("dm-bench-{}", std::process::id());
    let tmux = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("tmux").args(args).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let script = format!(
        "DESKMESH_TEST_NOW={} {} --home {} tui --no-mdns; sleep 30",
        now.to_rfc3339(),
        bin.display(),
        home.display()
    );
    let mut samples = vec![Vec::with_capacity(runs); wants.len()];
    let Some(&want) = wants.last() else {
        return Ok(samples);
    };
    for _ in 0..runs {
        let _ = tmux(&["kill-session", "-t", &session]);
        let t = Instant::now();
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
            "-c",
            &script,
        ])?;
        let deadline = t + Duration::from_secs(60);
        let mut seen = 0;
        loop {
            let screen = tmux(&["capture-pane", "-p", "-t", &session])?;
            let at = t.elapsed();
            if let Some(reached) = wants.iter().rposition(|w| screen.contains(w)) {
                while seen <= reached {
                    samples[seen].push(at);
                    seen += 1;
                }
            }
            if seen == wants.len() {
                break;
            }
            if Instant::now() > deadline {
                let _ = tmux(&["kill-session", "-t", &session]);
                bail!("the TUI did not show {want:?} within 60 s; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tmux(&["send-keys", "-t", &session, "q"])?;
        // The TUI stops its own node on q; wait for the store to be free again before the next launch.
        let deadline = Instant::now() + Duration::from_secs(30);
        while tmux(&["capture-pane", "-p", "-t", &session])?.contains(want) {
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = tmux(&["kill-session", "-t", &session]);
    }
    Ok(samples)
}
