//! The `deskmesh` command line: the top floor. It parses arguments (clap) into the core's typed requests,
//! reads the files a command names (bounded; regular files or stdin), sends the request through a
//! [`Handle`] — the running daemon's control socket when one answers, the store opened in this process
//! when none does — and renders the typed answer: data on stdout, hints on stderr, `--json` for the serde
//! form. Nothing below imports this module; no clap type travels past it.

mod files;
mod json;
mod output;
mod render;
mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use deskmesh_core::api::{Handle, Local};
use deskmesh_core::bundle::{Bundle, BundleRef, MAX_BUNDLE_FILE};
use deskmesh_core::export::ExportFormat;
use deskmesh_core::formats::Defaults;
use deskmesh_core::home::Home;
use deskmesh_core::node::{self, Busy};
use deskmesh_core::ops::drafts::DraftRequest;
use deskmesh_core::ops::listing::{
    FieldEdits, FileBytes, FileFormat, ImportSource, ListingBase, ListingEdit, MAX_IMPORT_FILE,
    MAX_LISTING_FILE,
};
use deskmesh_core::ops::place::PlaceSpec;
use deskmesh_core::ops::seats::DEFAULT_TTL_S;
use deskmesh_core::ops::trust::CoordinatorChange;
use deskmesh_core::report::ReportScope;
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Amenity;
use deskmesh_crdt_model::query::{AccessNeed, Query, Sort};
use deskmesh_keys::{PublicKey, SpaceId};

use crate::control::Remote;
use crate::mesh;
use render::{Peers, Proposals};

/// Help for every `--json` flag.
const JSON_HELP: &str =
    "Print the result as JSON (the same fields whether or not a daemon is running)";
/// Exit code of `audit` when it reports a refused, rejected or unverifiable item (not one that only waits).
pub const EXIT_AUDIT_FINDINGS: u8 = 3;
/// Bytes of signed items per request when a bundle is imported through the control socket.
const IMPORT_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The largest file `alliance approve` reads a proposal token from.
const MAX_TOKEN_FILE: u64 = 1024 * 1024;
/// How long a command waits for a store another deskmesh process holds for a moment.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// deskmesh: a shared, signed, offline-first directory of coworking spaces.
///
/// Every command works the same whether or not this home's node is running (`deskmesh run`): with one
/// running it goes through the node's control socket, so edits are published at once.
#[derive(Debug, Parser)]
#[command(name = "deskmesh", version, about, long_about)]
pub struct Cli {
    /// The node's home directory (default: the platform data directory).
    #[arg(long, global = true, env = "DESKMESH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this node's device identity and print its public key.
    Init {
        /// A human name for this node.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Create, join, inspect and administer the alliance roster.
    #[command(subcommand)]
    Alliance(AllianceCommand),
    /// Edit or show this node's own space listing.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// Publish open seats for one of this space's seat pools.
    #[command(subcommand)]
    Seats(SeatsCommand),
    /// Browse the directory.
    #[command(subcommand)]
    Spaces(SpacesCommand),
    /// Save where you usually are: `spaces list --near` (with no value) and the TUI measure from it.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Import listings signed by this node (the JSON, GeoJSON or CSV that `export` writes, or the JSON of
    /// `space show --json`), or a bundle of signed items from another node (`export --format bundle`).
    /// OpenStreetMap data names no space: use `space draft --from` or `space edit --from` for it.
    Import {
        /// The file to import, or - for standard input.
        file: PathBuf,
        /// How the file is written (auto: told apart by its content).
        #[arg(long, value_enum, default_value_t = InputArg::Auto)]
        format: InputArg,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Write the alliance report for a city or a funder: one self-contained HTML page (a map and charts
    /// of spaces, seats, hours, accessibility, amenities, prices and data freshness), or Markdown.
    Report {
        /// Only spaces in this city.
        #[arg(long)]
        city: Option<String>,
        /// Only spaces in this country (ISO 3166-1 alpha-2, such as PT).
        #[arg(long)]
        country: Option<String>,
        /// The form to write.
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Export the directory.
    Export {
        /// The form to write.
        #[arg(long, value_enum, default_value_t = FormatArg::Json)]
        format: FormatArg,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify every stored signature again; list signers, checkpoints, verified facts and every item that
    /// did not count (refused, rejected, pending, unverifiable) with its space, author, peer and reason.
    /// Exits with status 3 when it reports a refused, rejected or unverifiable item, 0 otherwise (changes
    /// that only wait for what a sync brings are listed as pending and do not fail it). `audit export`
    /// writes the same evidence to a file that `audit verify` checks on any machine.
    Audit {
        #[command(subcommand)]
        action: Option<AuditCommand>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Browse the directory in a terminal UI (and operate this space's seats and listing). Attaches to
    /// the running node; with none running, runs the node inside the TUI (logs in <home>/tui.log).
    Tui {
        /// Do not go online: show and edit the local store only.
        #[arg(long)]
        offline: bool,
        /// Without a running node: do not discover peers on the local network.
        #[arg(long)]
        no_mdns: bool,
    },
    /// Start a sample alliance on this machine (a coordinator, three spaces and a member, each a real
    /// node on 127.0.0.1) and open the TUI on the member's node. Data lives in a temporary home unless
    /// --home is given.
    Demo {
        /// Only create the sample alliance in the home, print its directory and exit.
        #[arg(long)]
        setup_only: bool,
        /// Run the nodes without the TUI until Ctrl-C (also what happens without a terminal).
        #[arg(long)]
        no_tui: bool,
        /// Mean seconds between seat changes on the space nodes; 0 leaves seats alone.
        #[arg(long, default_value_t = 8, value_name = "SECONDS")]
        seat_changes: u64,
        /// With --setup-only: print the directory as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node: join the mesh, replicate the directory and serve the control socket.
    Run {
        /// Address to listen on (repeatable; default: all interfaces on node.toml's port, TCP and QUIC).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<libp2p::Multiaddr>,
        /// Peer to dial at start, with or without `/p2p/<peer id>` (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<libp2p::Multiaddr>,
        /// Do not discover peers on the local network with mDNS.
        #[arg(long)]
        no_mdns: bool,
        /// Let AutoNAT count peers at private IP addresses (10/8, 172.16/12, 192.168/16, 100.64/10):
        /// for a network lab, or an alliance whose spaces share one private WAN. Off, a peer on the
        /// same LAN cannot declare a LAN address public.
        #[arg(long)]
        nat_private_ips: bool,
    },
    /// Show the node: alliance, key, peer id, listen addresses, peers, listings, last sync.
    Status {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// List the peers the running node is connected to.
    Peers {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Print a shell completion script (for example `deskmesh completions bash > ~/.local/share/bash-completion/completions/deskmesh`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    Man {
        /// Write `deskmesh.1` and a page per subcommand here instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllianceCommand {
    /// Found an alliance: this node becomes its first coordinator.
    Create {
        /// The alliance's name.
        name: String,
        /// How many coordinators must co-sign coordinator changes.
        #[arg(long, default_value_t = 1)]
        threshold: u8,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Admit a space's device key and print a one-line invite token for it (the token alone on stdout).
    Invite {
        /// The space's device public key (`deskmesh init` printed it on the space's machine).
        pubkey: PublicKey,
        /// The space's display name.
        #[arg(long)]
        space: String,
        /// Peer addresses to put in the token (multiaddrs), repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Print a token with which a member's laptop joins the alliance read-only (it signs for no space).
    InviteMember {
        /// Peer addresses to put in the token (multiaddrs), repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Add another device key to this node's space and print an invite token for that device.
    AddDevice {
        /// The new device's public key (`deskmesh init` printed it on that machine).
        pubkey: PublicKey,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Remove a device key from a space (a coordinator, or a device of that space).
    RemoveDevice {
        /// The device's public key.
        pubkey: PublicKey,
        /// The space (default: this node's space).
        #[arg(long)]
        space: Option<SpaceId>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Revoke a space's membership (coordinators only). It leaves the directory everywhere (or, with
    /// --keep-listed, stays marked revoked with the reason); its seats and any edit signed after this
    /// node's view of its listing are refused.
    Revoke {
        /// The space's id (`sp-…`, as `alliance show` lists it).
        space: SpaceId,
        /// Why, as members and the space will read it.
        #[arg(long, default_value = "revoked by a coordinator")]
        reason: String,
        /// Keep the space in the directory, marked revoked with the reason.
        #[arg(long)]
        keep_listed: bool,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Replace a lost or stolen device of a space with a new key, in one step: the new key is added, the
    /// old one removed (anything it signs from now on is refused everywhere), and an invite token for the
    /// new device is printed. A coordinator or another device of the space.
    ReplaceDevice {
        /// The lost device's public key.
        old: PublicKey,
        /// The new device's public key (`deskmesh init` printed it on that machine).
        new: PublicKey,
        /// The space (default: the one the old key belongs to).
        #[arg(long)]
        space: Option<SpaceId>,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Propose a coordinator change (coordinators only): it takes effect once the threshold of
    /// coordinators approved it. Prints a dmp1 token to carry to them; a running node also sends it.
    #[command(subcommand)]
    Propose(ProposeCommand),
    /// Add this node's signature to a proposed coordinator change: its id (or a prefix), its dmp1 token,
    /// or a file holding the token. Prints the token with every signature gathered so far.
    Approve {
        /// The proposal's id, its dmp1 token, or a file with the token.
        proposal: String,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// List the coordinator changes waiting for approvals.
    Proposals {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Countersign facts of a space's listing as checked on a day (coordinators only). Members then see
    /// them as verified, until the space changes them.
    Verify {
        /// The space's id.
        space: SpaceId,
        /// A fact to verify (repeatable): accessibility, internet, opening_hours, amenities, … or one key
        /// inside one, such as accessibility.entrance or internet.down_mbps.
        #[arg(long = "fact", required = true)]
        facts: Vec<String>,
        /// The day the facts were checked, YYYY-MM-DD (default: today).
        #[arg(long, value_name = "DATE")]
        checked_on: Option<chrono::NaiveDate>,
        /// Words for members ("visited", "measured at a desk").
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Join an alliance with an invite token (`dmi1...` for a space or device, `dmm1...` for a member).
    Join {
        /// The token `alliance invite`, `add-device` or `invite-member` printed.
        token: String,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Show the alliance roster.
    Show {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write a self-contained audit file (every roster operation, signed change, beacon, verification
    /// and proposal, and this node's refusal log), signed by this node.
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// Check an audit file on any machine, even one that never joined the alliance: every signature and
    /// authorisation is checked again and the same report printed. Exits 3 when it finds anything.
    Verify {
        /// The file `audit export` wrote.
        file: PathBuf,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
}

/// A coordinator change to propose.
#[derive(Debug, Subcommand)]
pub enum ProposeCommand {
    /// Make a key a coordinator.
    AddCoordinator {
        /// The key's public key.
        pubkey: PublicKey,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Remove a coordinator.
    RemoveCoordinator {
        /// The coordinator's public key.
        pubkey: PublicKey,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Change how many coordinators must sign coordinator changes.
    Threshold {
        /// How many coordinators must sign from now on.
        threshold: u8,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Save a location: LAT,LON (such as 38.72,-9.14) or a city of the directory (the middle of its
    /// spaces).
    Set {
        /// LAT,LON, or the name of a city the directory has spaces in.
        #[arg(value_name = "LAT,LON|CITY")]
        place: String,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Show the saved location.
    Show {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
    /// Forget the saved location.
    Clear {
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Write listing.toml, a commented template of this space's first listing: its id, every field and
    /// its allowed values, a seat pool. Fill in the REQUIRED lines, then `space edit --file listing.toml`.
    Init {
        /// Where to write it.
        #[arg(default_value = "listing.toml")]
        file: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the commented template of this space's listing (what `space init` writes) on stdout.
    Template,
    /// Change this space's listing from a file (JSON or TOML, or - for stdin) and/or flags; validated,
    /// then signed. Every problem of the file is reported at once, each with its field path.
    Edit(Box<EditArgs>),
    /// Print this space's listing (or another's with --space) in the form `edit --file` accepts, or its
    /// Automerge document.
    Show {
        /// Another space's id (default: this node's space).
        #[arg(long)]
        space: Option<SpaceId>,
        /// Write the space's Automerge document (`save()` bytes, loadable by any Automerge
        /// implementation) instead of the listing; needs --output or a redirected standard output.
        #[arg(long)]
        automerge: bool,
        /// With --automerge: write to this file.
        #[arg(long, short, requires = "automerge")]
        output: Option<PathBuf>,
        #[arg(long, help = JSON_HELP, conflicts_with = "automerge")]
        json: bool,
    },
    /// Turn OpenStreetMap data (an Overpass answer, OSM XML or JSON), GeoJSON or CSV into one draft
    /// listing per space, written as JSON files into a directory, to hand over with the invites; each
    /// space signs its draft with `space edit --file`. Tags with no listing field are reported.
    Draft(DraftArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DraftArgs {
    /// The file to read (at most 64 MiB), or - for standard input.
    #[arg(long)]
    pub from: PathBuf,
    /// The directory to write the drafts into (created if missing); existing drafts are not overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How the file is written (auto: told apart by its content).
    #[arg(long, value_enum, default_value_t = InputArg::Auto)]
    pub format: InputArg,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    #[arg(long, help = JSON_HELP)]
    pub json: bool,
}

/// What OSM data often leaves out, given for a whole file.
#[derive(Debug, Clone, Args, Default)]
pub struct DefaultArgs {
    /// The city for entries without addr:city.
    #[arg(long)]
    pub city: Option<String>,
    /// The country (ISO 3166-1 alpha-2) for entries without addr:country.
    #[arg(long)]
    pub country: Option<String>,
    /// The IANA time zone (such as Europe/Lisbon); default: the country's, where it has one.
    #[arg(long)]
    pub timezone: Option<String>,
}

impl From<DefaultArgs> for Defaults {
    fn from(d: DefaultArgs) -> Self {
        Self {
            city: d.city,
            country: d.country.map(|c| c.trim().to_ascii_uppercase()),
            timezone: d.timezone,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct EditArgs {
    /// A listing file, `.json` or `.toml` (at most 1 MiB), or - to read standard input. A JSON listing
    /// without an `id` (a draft) is this space's.
    #[arg(long, conflicts_with = "from")]
    pub file: Option<PathBuf>,
    /// Start from (or update with) one space of an OpenStreetMap file (Overpass answer, OSM XML or
    /// JSON), a GeoJSON or a CSV: its facts replace the listing's, the rest is kept.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// With --from: how the file is written.
    #[arg(long, value_enum, default_value_t = InputArg::Auto, requires = "from")]
    pub format: InputArg,
    /// With --from, when the file holds several spaces: which one (an OSM id such as node/123, a listing
    /// id, #N for the Nth, or the exact name).
    #[arg(long, requires = "from")]
    pub pick: Option<String>,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    /// The space's display name.
    #[arg(long)]
    pub name: Option<String>,
    /// A description for members.
    #[arg(long)]
    pub description: Option<String>,
    /// Opening hours in OpenStreetMap syntax, such as "Mo-Fr 08:00-19:00".
    #[arg(long)]
    pub opening_hours: Option<String>,
    /// The space's website.
    #[arg(long)]
    pub website: Option<String>,
    /// A contact email address.
    #[arg(long)]
    pub email: Option<String>,
    /// A contact phone number.
    #[arg(long)]
    pub phone: Option<String>,
    /// Add an amenity (repeatable), such as coffee or meeting_room.
    #[arg(long = "add-amenity")]
    pub add_amenities: Vec<Amenity>,
    /// Remove an amenity (repeatable).
    #[arg(long = "remove-amenity")]
    pub remove_amenities: Vec<Amenity>,
    #[arg(long, help = JSON_HELP)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SeatsCommand {
    /// Set open seats: a number, or many|few|full|closed.
    Set {
        /// The seat pool (default: the listing's first pool).
        #[arg(long)]
        pool: Option<String>,
        /// A count, or many|few|full|closed.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// How long the figure stays fresh, in seconds.
        #[arg(long, default_value_t = DEFAULT_TTL_S)]
        ttl: u32,
        #[arg(long, help = JSON_HELP)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpacesCommand {
    /// List the directory with each space's seat freshness.
    List(ListArgs),
}

#[derive(Debug, Clone, Args, Default)]
pub struct ListArgs {
    /// Text to find in name, description, city or address.
    #[arg(long)]
    pub search: Option<String>,
    /// Only spaces in this city.
    #[arg(long)]
    pub city: Option<String>,
    /// Required amenity (repeatable), e.g. coffee, meeting_room.
    #[arg(long = "amenity")]
    pub amenities: Vec<Amenity>,
    /// Required accessibility (repeatable): wheelchair, accessible_toilet, hearing_loop, quiet_room,
    /// step_free_entrance.
    #[arg(long = "access")]
    pub access: Vec<AccessNeed>,
    /// Only spaces open now (in their own time zone).
    #[arg(long)]
    pub open_now: bool,
    /// Only spaces with seats free now: a fresh figure of a desk pool with seats, within opening hours.
    #[arg(long)]
    pub seats_free: bool,
    /// Highest day-pass price with its currency, such as 20EUR (or 20 with --currency EUR). Amounts are
    /// never converted: only day passes in that currency count.
    #[arg(long, value_name = "AMOUNT[CUR]")]
    pub max_price: Option<String>,
    /// The currency of --max-price (ISO 4217, such as EUR); with --sort price, its spaces come first.
    #[arg(long, value_name = "CUR")]
    pub currency: Option<String>,
    /// Order: name, price (cheapest day pass first, grouped by currency) or distance (needs --near).
    #[arg(long, value_enum)]
    pub sort: Option<SortArg>,
    /// Lowest wifi download speed in Mbit/s.
    #[arg(long)]
    pub min_wifi: Option<f64>,
    /// Sort by distance (shown in km) from LAT,LON, from a city of the directory, or with no value from
    /// the location saved with `deskmesh location set`.
    #[arg(long, value_name = "LAT,LON|CITY", num_args = 0..=1, default_missing_value = "")]
    pub near: Option<String>,
    /// Show at most this many spaces.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Filter on facts a coordinator verified only (a space's own claims count as unknown).
    #[arg(long)]
    pub verified_only: bool,
    #[arg(long, help = JSON_HELP)]
    pub json: bool,
}

/// The orders of `spaces list`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SortArg {
    Name,
    /// Cheapest day pass first, grouped by currency; spaces without one last.
    Price,
    /// Nearest first (needs --near).
    Distance,
}

/// The export formats, as the command line names them.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    /// Listings as JSON, the form `import` and `space edit --file` take.
    Json,
    /// RFC 7946 GeoJSON: one Point feature per space.
    Geojson,
    /// One row per space.
    Csv,
    /// schema.org JSON-LD (`LocalBusiness` items with `openingHoursSpecification`).
    Jsonld,
    /// OSM XML: one node per space with its OpenStreetMap tags, to review and contribute back.
    Osm,
    /// Every signed item (roster, listing changes, seat beacons) for offline exchange; `import` takes it.
    Bundle,
}

impl From<FormatArg> for ExportFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Json => Self::Json,
            FormatArg::Geojson => Self::Geojson,
            FormatArg::Csv => Self::Csv,
            FormatArg::Jsonld => Self::Jsonld,
            FormatArg::Osm => Self::Osm,
            FormatArg::Bundle => Self::Bundle,
        }
    }
}

/// The input formats, as the command line names them.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum InputArg {
    /// Told apart by the content.
    Auto,
    /// Listings as JSON (one or an array).
    Json,
    /// GeoJSON: as `export` writes it, or OSM-tagged features.
    Geojson,
    /// One row per space, as `export` writes it.
    Csv,
    /// OpenStreetMap: an Overpass JSON answer, OSM XML or the OSM API's JSON.
    Osm,
}

impl From<InputArg> for FileFormat {
    fn from(f: InputArg) -> Self {
        match f {
            InputArg::Auto => Self::Auto,
            InputArg::Json => Self::Json,
            InputArg::Geojson => Self::Geojson,
            InputArg::Csv => Self::Csv,
            InputArg::Osm => Self::Osm,
        }
    }
}

/// The forms of `report`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// One self-contained HTML page with an SVG map and charts.
    Html,
    /// Markdown tables.
    Markdown,
    /// The figures as JSON.
    Json,
}

/// Parses the arguments, runs the command, and reports the exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as Clap;
            // A value that does not parse gets one sentence, like every other bad input; help and
            // version go to stdout with exit 0 and other usage errors to stderr with clap's usage line.
            if matches!(e.kind(), Clap::InvalidValue | Clap::ValueValidation) {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                output::hint_line(&format!(
                    "deskmesh: {}",
                    first.trim_start_matches("error: ")
                ));
            } else {
                let _ = e.print();
            }
            return Ok(ExitCode::from(e.exit_code().clamp(0, 255) as u8));
        }
    };
    match cli.command {
        Command::Demo {
            setup_only,
            no_tui,
            seat_changes,
            json,
        } => {
            demo(cli.home, setup_only, no_tui, seat_changes, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "deskmesh", &mut out);
            output::write_stdout(&out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            man(dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        // An audit file is checked anywhere: no home, no alliance.
        Command::Audit {
            action: Some(AuditCommand::Verify { file, json }),
            ..
        } => audit_verify(&file, json),
        command => {
            let home = Home::resolve(cli.home)?;
            execute(&home, command)
        }
    }
}

/// The handle for `home`: the daemon's control socket when one answers, else the store opened here.
/// While another process holds the store for a moment (a command, a daemon starting) it waits up to
/// five seconds, then names that process.
pub fn connect(home: &Home) -> anyhow::Result<Box<dyn Handle>> {
    connect_as(home, Reads::Anything)
}

/// What a command reads, which decides how a node opened here (without a daemon) loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Anything it likes: the node opens whole ([`Node::open`]).
    Anything,
    /// The whole directory: it is read on another thread while the roster loads
    /// ([`Node::open_to_query`]).
    Directory,
    /// A few spaces and nothing else: the roster loads only if it is used ([`Node::open_to_read`]).
    Little,
}

/// [`connect`] for a command that reads the directory: without a daemon, the store opened here starts
/// reading the directory while the roster loads ([`Node::open_to_query`]).
fn connect_as(home: &Home, reads: Reads) -> anyhow::Result<Box<dyn Handle>> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        if let Some(remote) = Remote::connect(&home.socket_path())? {
            return Ok(Box::new(remote));
        }
        let opened = match reads {
            Reads::Anything => Node::open(home),
            Reads::Directory => Node::open_to_query(home),
            Reads::Little => Node::open_to_read(home),
        };
        match opened {
            Ok(node) => return Ok(Box::new(Local::new(node))),
            Err(e) => {
                let busy = e.chain().any(|c| c.downcast_ref::<Busy>().is_some());
                if !busy || Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn execute(home: &Home, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { name, json } => output::print(json, &node::init(home, name)?)?,
        Command::Run {
            listen,
            bootstrap,
            no_mdns,
            nat_private_ips,
        } => {
            init_tracing();
            mesh::run(
                home,
                mesh::RunOptions {
                    listen,
                    bootstrap,
                    mdns: !no_mdns,
                    nat_private_ips,
                    shutdown: None,
                },
            )?;
        }
        Command::Tui { offline, no_mdns } => tui(home, offline, !no_mdns)?,
        Command::Audit { action: None, json } => {
            let mut handle = connect(home)?;
            let working = audit_bar(
                "auditing: checking every signature, rebuilding every listing",
                "spaces",
            );
            let report = handle.audit_watched(&mut |p| audit_bar_at(&working, p));
            working.finish_and_clear();
            let report = report?;
            output::print(json, &*report)?;
            if !report.ok {
                return Ok(ExitCode::from(EXIT_AUDIT_FINDINGS));
            }
        }
        Command::Audit {
            action: Some(AuditCommand::Export { file }),
            ..
        } => {
            let bytes = connect(home)?.audit_export()?;
            std::fs::write(&file, &bytes.0)
                .with_context(|| format!("cannot write {}", file.display()))?;
            output::hint_line(&format!(
                "audit file written to {}; check it anywhere with `deskmesh audit verify {}`",
                file.display(),
                file.display()
            ));
        }
        Command::Audit {
            action: Some(AuditCommand::Verify { .. }),
            ..
        } => unreachable!("handled before a home is resolved"),
        Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled before a home is resolved")
        }
        other => {
            // Commands that read the whole directory start reading it while the node opens; `spaces
            // list` reads the rows the store keeps beside the listings instead (all but a list of
            // verified facts only, which masks every listing).
            let reads = match &other {
                Command::Export { .. } | Command::Report { .. } => Reads::Directory,
                Command::Status { .. } => Reads::Little,
                Command::Spaces(SpacesCommand::List(args)) => {
                    match query_from(args, clock_override()) {
                        Ok(q) if q.verified_only => Reads::Directory,
                        Ok(_) => Reads::Little,
                        Err(_) => Reads::Anything,
                    }
                }
                _ => Reads::Anything,
            };
            let mut handle = connect_as(home, reads)?;
            let done = request(&mut *handle, other);
            handle.close();
            done?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one command through `handle` and prints its answer.
fn request(handle: &mut dyn Handle, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Alliance(cmd) => alliance(handle, cmd),
        Command::Space(SpaceCommand::Template) => {
            output::write_stdout(template(handle)?.as_bytes());
            Ok(())
        }
        Command::Space(SpaceCommand::Init { file, force }) => {
            let text = template(handle)?;
            files::write_new(&file, text.as_bytes(), force)?;
            output::hint_line(&format!(
                "wrote {}: fill in the lines marked REQUIRED (and any other field you know), then run `deskmesh space edit --file {}`",
                file.display(),
                file.display()
            ));
            Ok(())
        }
        Command::Space(SpaceCommand::Edit(args)) => {
            let json = args.json;
            let report = handle.space_edit(edit_from(*args)?)?;
            if !json {
                unmapped_hints(&report.name, &report.unmapped, &report.notes);
            }
            output::print(json, &report)
        }
        Command::Space(SpaceCommand::Show {
            space,
            automerge: true,
            output,
            ..
        }) => {
            if output.is_none() && output::stdout_is_terminal() {
                bail!("an Automerge document is binary and would garble this terminal; write it with --output FILE or redirect standard output to a file");
            }
            let bytes = handle.space_document(space)?;
            write_out(output.as_deref(), &bytes.0)
        }
        Command::Space(SpaceCommand::Draft(args)) => draft(handle, args),
        Command::Report {
            city,
            country,
            format,
            output,
        } => {
            let scope = ReportScope {
                city,
                country: country.map(|c| c.trim().to_ascii_uppercase()),
            };
            let r = handle.report(scope)?;
            let text = match format {
                ReportFormat::Html => report::html(&r),
                ReportFormat::Markdown => report::markdown(&r),
                ReportFormat::Json => serde_json::to_string_pretty(&*r)? + "\n",
            };
            if r.spaces == 0 {
                output::hint_line("no spaces match; the report is empty");
            }
            write_out(output.as_deref(), text.as_bytes())?;
            if let Some(path) = output {
                output::hint_line(&format!(
                    "report of {} space(s) written to {}",
                    r.spaces,
                    path.display()
                ));
            }
            Ok(())
        }
        Command::Space(SpaceCommand::Show { space, json, .. }) => {
            let mine = space.is_none();
            let listing = handle.space_show(space).map_err(|e| {
                if mine && e.message.contains("no listing") {
                    anyhow::anyhow!(
                        "{}; write your first one with `deskmesh space init`",
                        e.message
                    )
                } else {
                    e.into()
                }
            })?;
            if json {
                output::print_json(&listing.to_value())
            } else {
                output::print(false, &*listing)
            }
        }
        Command::Seats(SeatsCommand::Set {
            pool,
            value,
            ttl,
            json,
        }) => {
            let report = handle.seats_set(pool, parse_availability(&value)?, ttl)?;
            output::print(json, &report)
        }
        Command::Spaces(SpacesCommand::List(args)) => {
            let mut query = query_from(&args, clock_override())?;
            if args.near.as_deref().is_some_and(|n| n.trim().is_empty()) {
                let saved = handle.status()?.location.ok_or_else(|| {
                    anyhow::anyhow!("--near with no value measures from your saved location, and none is saved; run `deskmesh location set LAT,LON` (or a city), or give --near LAT,LON")
                })?;
                query.sort = Sort::Distance {
                    lat: saved.lat,
                    lon: saved.lon,
                };
            }
            let mut directory = handle.spaces_list(query)?;
            if args.json {
                output::print_directory_json(&mut directory)?;
            } else {
                output::print(false, &directory)?;
            }
            // The process ends next: 10,000 rows are left to its exit instead of freed one by one.
            std::mem::forget(directory);
            Ok(())
        }
        Command::Location(cmd) => {
            let (place, json) = match cmd {
                LocationCommand::Set { place, json } => {
                    (Some(handle.set_location(Some(parse_place(&place)?))?), json)
                }
                LocationCommand::Clear { json } => (Some(handle.set_location(None)?), json),
                LocationCommand::Show { json } => (None, json),
            };
            let saved = match place {
                Some(p) => p,
                None => handle.status()?.location,
            };
            output::print(json, &render::Location(saved))
        }
        Command::Import { file, format, json } => import(handle, &file, format, json),
        Command::Export { format, output } => export(handle, format.into(), output.as_deref()),
        Command::Status { json } => output::print(json, &*handle.status()?),
        Command::Peers { json } => {
            if !handle.is_running() {
                output::hint_line("the node is not running (start it with `deskmesh run`)");
            }
            output::print(json, &Peers(handle.peers()?))
        }
        other => bail!("{other:?} is not a request to a node"),
    }
}

fn alliance(handle: &mut dyn Handle, cmd: AllianceCommand) -> anyhow::Result<()> {
    match cmd {
        AllianceCommand::Create {
            name,
            threshold,
            json,
        } => output::print(json, &handle.alliance_create(name, threshold)?),
        AllianceCommand::Invite {
            pubkey,
            space,
            peers,
            json,
        } => output::print(json, &handle.alliance_invite(pubkey, space, peers)?),
        AllianceCommand::InviteMember { peers, json } => {
            output::print(json, &handle.alliance_invite_member(peers)?)
        }
        AllianceCommand::AddDevice { pubkey, json } => {
            output::print(json, &handle.alliance_add_device(pubkey)?)
        }
        AllianceCommand::RemoveDevice {
            pubkey,
            space,
            json,
        } => output::print(json, &handle.alliance_remove_device(pubkey, space)?),
        AllianceCommand::Revoke {
            space,
            reason,
            keep_listed,
            json,
        } => output::print(json, &handle.alliance_revoke(space, reason, keep_listed)?),
        AllianceCommand::ReplaceDevice {
            old,
            new,
            space,
            json,
        } => output::print(json, &handle.alliance_replace_device(old, new, space)?),
        AllianceCommand::Propose(cmd) => {
            let (change, json) = match cmd {
                ProposeCommand::AddCoordinator { pubkey, json } => {
                    (CoordinatorChange::Add(pubkey), json)
                }
                ProposeCommand::RemoveCoordinator { pubkey, json } => {
                    (CoordinatorChange::Remove(pubkey), json)
                }
                ProposeCommand::Threshold { threshold, json } => {
                    (CoordinatorChange::Threshold(threshold), json)
                }
            };
            output::print(json, &handle.alliance_propose(change)?)
        }
        AllianceCommand::Approve { proposal, json } => {
            let proposal = proposal_arg(&proposal)?;
            output::print(json, &handle.alliance_approve(proposal)?)
        }
        AllianceCommand::Proposals { json } => {
            output::print(json, &Proposals(handle.alliance_proposals()?))
        }
        AllianceCommand::Verify {
            space,
            facts,
            checked_on,
            note,
            json,
        } => output::print(
            json,
            &handle.alliance_verify(space, facts, checked_on, note)?,
        ),
        AllianceCommand::Join { token, json } => output::print(json, &handle.alliance_join(token)?),
        AllianceCommand::Show { json } => output::print(json, &handle.alliance_show()?),
    }
}

/// The edit `space edit` asks for: the file's bytes (read here, bounded) and the flags.
fn edit_from(args: EditArgs) -> anyhow::Result<ListingEdit> {
    let base = match (&args.file, &args.from) {
        (Some(path), _) => Some(ListingBase::File(files::read_listing(
            path,
            MAX_LISTING_FILE,
        )?)),
        (None, Some(path)) => {
            let (name, bytes) = files::read_bounded(path, MAX_IMPORT_FILE, "a file of spaces")?;
            Some(ListingBase::Import(ImportSource {
                file: FileBytes {
                    name,
                    format: args.format.into(),
                    bytes: deskmesh_core::api::Bytes(bytes),
                },
                pick: args.pick.clone(),
                defaults: args.defaults.clone().into(),
            }))
        }
        (None, None) => None,
    };
    Ok(ListingEdit {
        base,
        fields: FieldEdits {
            name: args.name,
            description: args.description,
            opening_hours: args.opening_hours,
            website: args.website,
            email: args.email,
            phone: args.phone,
            add_amenities: args.add_amenities,
            remove_amenities: args.remove_amenities,
        },
    })
}

/// `alliance approve`'s argument: a token or an id as given, or the token a file holds.
fn proposal_arg(arg: &str) -> anyhow::Result<String> {
    let trimmed = arg.trim();
    if trimmed.to_ascii_lowercase().starts_with("dmp1") {
        return Ok(trimmed.to_string());
    }
    let path = Path::new(trimmed);
    if trimmed == "-" || path.is_file() {
        let (name, bytes) = files::read_bounded(path, MAX_TOKEN_FILE, "a proposal token file")?;
        let text = String::from_utf8(bytes).with_context(|| format!("{name} is not text"))?;
        return Ok(text.trim().to_string());
    }
    Ok(trimmed.to_string())
}

/// `audit verify FILE`: the file checked in a throwaway store, on any machine.
fn audit_verify(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (name, bytes) = files::read_bounded(path, MAX_BUNDLE_FILE, "an audit file")?;
    let scratch = tempfile::Builder::new()
        .prefix("deskmesh-audit-")
        .tempdir()
        .context("cannot create a temporary directory for checking the audit file")?;
    let store = deskmesh_store::SledStore::open(scratch.path())?;
    let working = audit_bar(
        "checking the file: every item's signature and authorisation",
        "items",
    );
    let report = deskmesh_core::audit::verify_export_watched(
        &bytes,
        std::sync::Arc::new(store),
        chrono::Utc::now(),
        &mut |p| verify_bar_at(&working, p),
    );
    working.finish_and_clear();
    let report = report.with_context(|| name.clone())?;
    output::print(json, &report)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_AUDIT_FINDINGS)
    })
}

/// `import FILE`: a bundle goes to the node in batches (with progress for a large one); anything else is
/// a JSON file of listings.
fn import(
    handle: &mut dyn Handle,
    path: &Path,
    format: InputArg,
    json: bool,
) -> anyhow::Result<()> {
    // A file that does not start as a bundle is held to the smaller bound of a listings file before it is
    // read (standard input cannot be peeked at, so it gets the larger one and is checked after).
    let limit = if files::starts_with(path, deskmesh_core::bundle::MAGIC) || files::is_stdin(path) {
        MAX_BUNDLE_FILE.max(MAX_IMPORT_FILE)
    } else {
        MAX_IMPORT_FILE
    };
    let (name, bytes) = files::read_bounded(path, limit, "a file to import")?;
    if !Bundle::is_bundle(&bytes) {
        if bytes.len() as u64 > MAX_IMPORT_FILE {
            bail!(
                "{name} is {} bytes; a file of listings may be at most {} MiB",
                bytes.len(),
                MAX_IMPORT_FILE / (1024 * 1024)
            );
        }
        let file = FileBytes {
            name,
            format: format.into(),
            bytes: deskmesh_core::api::Bytes(bytes),
        };
        let report = handle.import_listings(file)?;
        if !json {
            for l in &report.listings {
                unmapped_hints(&l.name, &l.unmapped, &l.notes);
            }
        }
        return output::print(json, &report);
    }
    // Borrowed from the file's bytes and copied out a batch at a time: a large bundle is held in memory
    // once, not twice.
    let bundle = BundleRef::decode(&bytes).with_context(|| name.clone())?;
    let total = bundle.len() as u64;
    let progress = progress_bar(total, "importing signed items");
    let mut report = deskmesh_core::bundle::BundleReport::default();
    for batch in bundle.batches(IMPORT_BATCH_BYTES) {
        let n = batch.len() as u64;
        report.merge(handle.import_items(batch)?);
        progress.inc(n);
    }
    progress.finish_and_clear();
    output::print(json, &report)
}

/// A progress bar on stderr, drawn only on a terminal and only for work that may take a while.
fn progress_bar(total: u64, what: &'static str) -> indicatif::ProgressBar {
    if total < 2_000 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg}: {bar:30} {pos}/{len} ({eta} left)")
    {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

/// A progress bar on stderr, drawn only on a terminal, for one long call that says how far it got in
/// spaces or items (an audit: about 30 s for 1,000 spaces with a year of weekly edits), with the time
/// spent and the time left. It is cleared before the answer is printed.
fn audit_bar(what: &'static str, unit: &'static str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(AUDIT_BAR) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.set_prefix(unit);
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// [`audit_bar`]'s look, first without the time left: the spaces come back 64 at a time, so the first
/// estimates are far off (half an hour for a 30 s audit). The prefix is the unit counted.
const AUDIT_BAR: &str = "{spinner} {msg}\n  {bar:30} {human_pos}/{human_len} {prefix} ({elapsed})";
const AUDIT_BAR_ETA: &str =
    "{spinner} {msg}\n  {bar:30} {human_pos}/{human_len} {prefix} ({elapsed}, about {eta} left)";

/// Moves [`audit_bar`] to `progress`.
fn audit_bar_at(bar: &indicatif::ProgressBar, progress: deskmesh_core::audit::AuditProgress) {
    bar_at(bar, progress.spaces_done, progress.spaces);
}

/// Moves [`audit_bar`] to `done` of `all`, with the time left once a tenth is done.
fn bar_at(bar: &indicatif::ProgressBar, done: usize, all: usize) {
    let tenth = |done: u64, all: u64| all > 0 && done * 10 >= all;
    let before = bar.length().is_some_and(|all| tenth(bar.position(), all));
    if !before && tenth(done as u64, all as u64) {
        if let Ok(style) = indicatif::ProgressStyle::with_template(AUDIT_BAR_ETA) {
            bar.set_style(style);
        }
    }
    bar.set_length(all as u64);
    bar.set_position(done as u64);
}

/// Moves [`audit_bar`] through `audit verify`'s two stages: the file's items taken in, then the spaces
/// rebuilt (the bar starts again, without the time left, when the stage changes).
fn verify_bar_at(bar: &indicatif::ProgressBar, progress: deskmesh_core::audit::VerifyProgress) {
    use deskmesh_core::audit::VerifyProgress;
    let (unit, what, done, all) = match progress {
        VerifyProgress::Items { done, items } => (
            "items",
            "checking the file: every item's signature and authorisation",
            done,
            items,
        ),
        VerifyProgress::Spaces(p) => (
            "spaces",
            "checking the file: rebuilding every listing",
            p.spaces_done,
            p.spaces,
        ),
    };
    if bar.prefix() != unit {
        bar.set_prefix(unit);
        bar.set_message(what);
        bar.set_position(0);
        bar.set_length(all as u64);
        bar.reset_eta();
        if let Ok(style) = indicatif::ProgressStyle::with_template(AUDIT_BAR) {
            bar.set_style(style);
        }
    }
    bar_at(bar, done, all);
}

fn export(handle: &mut dyn Handle, format: ExportFormat, out: Option<&Path>) -> anyhow::Result<()> {
    if format.is_binary() && out.is_none() && output::stdout_is_terminal() {
        bail!("a bundle is binary and would garble this terminal; write it with --output FILE or redirect standard output to a file");
    }
    let bytes = handle.export(format)?;
    write_out(out, &bytes.0)
}

/// Writes `bytes` to `out`, or to standard output.
fn write_out(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            output::write_stdout(bytes);
            Ok(())
        }
    }
}

/// Tags, columns or properties the listing has no field for, and guesses made, as hints on stderr.
fn unmapped_hints(name: &str, unmapped: &[String], notes: &[String]) {
    if !unmapped.is_empty() {
        output::hint_line(&format!(
            "{name}: not in the listing (no field for it): {}",
            unmapped.join("; ")
        ));
    }
    for n in notes {
        output::hint_line(&format!("{name}: {n}"));
    }
}

/// `space draft`: asks the node for the drafts, then writes one JSON file per space into the directory.
fn draft(handle: &mut dyn Handle, args: DraftArgs) -> anyhow::Result<()> {
    let (name, bytes) = files::read_bounded(&args.from, MAX_IMPORT_FILE, "a file of spaces")?;
    let report = handle.drafts(DraftRequest {
        file: FileBytes {
            name,
            format: args.format.into(),
            bytes: deskmesh_core::api::Bytes(bytes),
        },
        defaults: args.defaults.into(),
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut written = render::DraftsWritten {
        report: report.clone(),
        files: Vec::new(),
    };
    let mut used = std::collections::BTreeSet::new();
    for d in &report.drafts {
        let stem = files::slug(d.name.as_deref().unwrap_or(&d.key));
        let mut file = format!("{stem}.json");
        let mut n = 2;
        while !used.insert(file.clone()) {
            file = format!("{stem}-{n}.json");
            n += 1;
        }
        let path = args.out.join(&file);
        let mut text = serde_json::to_string_pretty(&d.listing)?;
        text.push('\n');
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        match created {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} already exists; drafts are never overwritten (choose another --out or move it away)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
        }
        if !args.json {
            unmapped_hints(d.name.as_deref().unwrap_or(&d.key), &d.unmapped, &d.notes);
        }
        written.files.push(path.display().to_string());
    }
    output::print(args.json, &written)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info` for deskmesh, `warn` for libraries), without
/// colour codes unless stderr is a terminal and `NO_COLOR` is unset.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,deskmesh_node=info,deskmesh_core=info")
    });
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `deskmesh tui`: attach to the running node, or run one inside the TUI, or (offline, or before the
/// node is in an alliance) show the local store.
fn tui(home: &Home, offline: bool, mdns: bool) -> anyhow::Result<()> {
    let theme = deskmesh_tui::Theme::from_env();
    // A running daemon holds the store: attach to it, so the mesh's changes show live.
    if let Some(mut api) = crate::tui_client::attach(&home.socket_path())? {
        deskmesh_tui::run_in_terminal(&mut api, theme, &mut clock)?;
        return Ok(());
    }
    // Opened to read: whether it is in an alliance needs only the saved roster state, not the roster.
    let node = mesh::open_when_free_by(home, Node::open_to_read)?;
    if offline || node.alliance_id().is_none() {
        let mut api = crate::tui_client::TuiClient::new(Local::new(node), None)?;
        deskmesh_tui::run_in_terminal(&mut api, theme, &mut clock)?;
        return Ok(());
    }
    mesh::embedded::log_to_file(&home.root().join("tui.log"))?;
    // The first screen from the search rows the store keeps, drawn while the node starts (a whole node
    // takes about half a second at 10,000 spaces); `None` before the rows are kept.
    let preview = node
        .status()
        .and_then(|status| node.first_screen(status, crate::tui_client::FIRST_SCREEN))
        .unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "no first screen from the store; waiting for the node");
            None
        });
    drop(node);
    let name = home.read_config()?.name;
    if let Some(preview) = preview {
        return tui_while_starting(home, name, preview, theme, mdns);
    }
    let mut embedded = mesh::embedded::Embedded::new()?;
    if let Err(e) = embedded.start(&name, home, Vec::new(), Vec::new(), mdns) {
        embedded.stop();
        return Err(could_not_start(e));
    }
    let result = match crate::tui_client::attach(&home.socket_path()) {
        Ok(Some(mut api)) => {
            deskmesh_tui::run_in_terminal(&mut api, theme, &mut clock).map_err(Into::into)
        }
        Ok(None) => Err(anyhow::anyhow!(
            "the node stopped before the TUI could attach"
        )),
        Err(e) => Err(e.into()),
    };
    embedded.stop();
    result
}

/// Why the TUI's own node did not start, then what to do instead, in one line.
fn could_not_start(e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{e:#}; use `deskmesh tui --offline` to browse the local store without the mesh"
    )
}

/// `deskmesh tui` with no daemon: `preview` on screen at once while a thread starts the node in this
/// process and attaches to it; the attach then replaces the preview ([`crate::tui_client::Starting`]).
fn tui_while_starting(
    home: &Home,
    name: String,
    preview: deskmesh_core::view::Snapshot,
    theme: deskmesh_tui::Theme,
    mdns: bool,
) -> anyhow::Result<()> {
    tracing::info!(
        spaces = preview.spaces.len(),
        following = preview.following,
        "the TUI shows the store's first screen while the node starts"
    );
    let (tell, started) = std::sync::mpsc::channel();
    let socket = home.socket_path();
    let node_home = home.clone();
    let log = home.root().join("tui.log");
    // Set when the UI has quit: a node that started after that is not attached to, only stopped.
    let quit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let quit_seen = quit.clone();
    let starter = std::thread::Builder::new()
        .name("deskmesh-tui-start".into())
        .spawn(move || {
            let mut embedded = None;
            let attached = (|| -> anyhow::Result<_> {
                let node = embedded.insert(mesh::embedded::Embedded::new()?);
                node.start(&name, &node_home, Vec::new(), Vec::new(), mdns)
                    .map_err(could_not_start)?;
                if quit_seen.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok(None);
                }
                crate::tui_client::attach(&socket)?
                    .map(Some)
                    .ok_or_else(|| anyhow::anyhow!("the node stopped before the TUI could attach"))
            })();
            // The UI may have quit already: then the attach is dropped here.
            if let Some(attached) = attached.map_err(|e| format!("{e:#}")).transpose() {
                let _ = tell.send(attached);
            }
            embedded
        })
        .context("cannot start a thread to start the node")?;
    let mut api = crate::tui_client::Starting::new(preview, started, &log);
    let result = deskmesh_tui::run_in_terminal(&mut api, theme, &mut clock);
    drop(api);
    quit.store(true, std::sync::atomic::Ordering::SeqCst);
    // A TUI that quit at once waits here for the start to end, then stops the node.
    if !starter.is_finished() {
        output::hint_line("stopping the node this TUI started…");
    }
    match starter.join() {
        Ok(Some(embedded)) => embedded.stop(),
        Ok(None) => {}
        Err(_) => tracing::error!("the thread starting the node panicked"),
    }
    result.map_err(Into::into)
}

fn demo(
    home: Option<PathBuf>,
    setup_only: bool,
    no_tui: bool,
    seat_changes: u64,
    json: bool,
) -> anyhow::Result<()> {
    // The demo lives in a fresh temporary home unless one is given.
    let home = match home {
        Some(h) => Home::at(h),
        None => Home::at(std::env::temp_dir().join(format!(
            "deskmesh-demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp()
        ))),
    };
    if setup_only {
        output::print(json, &crate::demo::run(&home, clock())?)
    } else {
        let opts = crate::demo::live::DemoOptions {
            tui: !no_tui,
            churn: (seat_changes > 0).then(|| Duration::from_secs(seat_changes)),
        };
        crate::demo::live::run(&home, &opts)
    }
}

/// `deskmesh man`: the main page on stdout, or every page into `dir`.
fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        output::write_stdout(&out);
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
    output::hint_line(&format!("manual pages written to {}", dir.display()));
    Ok(())
}

/// Parses `seats set` values: a count, or many|few|full|closed.
pub fn parse_availability(value: &str) -> anyhow::Result<Availability> {
    match value.trim().to_ascii_lowercase().as_str() {
        "many" => Ok(Availability::Many),
        "few" => Ok(Availability::Few),
        "full" => Ok(Availability::Full),
        "closed" => Ok(Availability::Closed),
        other => match other.parse::<i64>() {
            Ok(n) if n < 0 => bail!("open seats cannot be negative (got {n}); use 0 or `full`"),
            Ok(n) if n > 100_000 => {
                bail!("{n} open seats is more than any space has (limit 100000)")
            }
            Ok(n) => Ok(Availability::Count(n as u32)),
            Err(_) => {
                bail!("{value:?} is not a seat count; use a number or many, few, full, closed")
            }
        },
    }
}

/// Turns the list flags into a directory query, with one clear sentence per bad value. `at` is the test
/// clock, when one is set. `--near` with no value is left for the caller, which asks the node for the
/// saved location.
pub fn query_from(args: &ListArgs, at: Option<DateTime<Utc>>) -> anyhow::Result<Query> {
    let (max_price, currency) = price_filter(args.max_price.as_deref(), args.currency.as_deref())?;
    let mut q = Query {
        text: args.search.clone(),
        city: args.city.clone(),
        open_now: args.open_now,
        seats_free_now: args.seats_free,
        max_day_pass_price: max_price,
        currency,
        min_wifi_down_mbps: args.min_wifi,
        limit: args.limit,
        amenities: args.amenities.clone(),
        access: args.access.clone(),
        verified_only: args.verified_only,
        at,
        ..Query::default()
    };
    match args.near.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(near) => match parse_place(near)? {
            PlaceSpec::Point { lat, lon } => q.sort = Sort::Distance { lat, lon },
            PlaceSpec::City(city) => q.near_city = Some(city),
        },
    }
    match args.sort {
        None | Some(SortArg::Distance) => {}
        Some(SortArg::Name) => q.sort = Sort::Name,
        Some(SortArg::Price) => q.sort = Sort::Price,
    }
    if args.sort == Some(SortArg::Distance) && args.near.is_none() {
        bail!("--sort distance needs a point: add --near LAT,LON, --near CITY, or --near alone for your saved location");
    }
    if args.sort.is_some_and(|s| s != SortArg::Distance) && args.near.is_some() {
        bail!("--near sorts by distance; leave out --sort, or leave out --near");
    }
    Ok(q)
}

/// `--max-price 20EUR`, `--max-price "20 EUR"` or `--max-price 20 --currency EUR`: an amount and its
/// ISO 4217 currency. A price without a currency is refused, since amounts are never converted.
fn price_filter(
    max_price: Option<&str>,
    currency: Option<&str>,
) -> anyhow::Result<(Option<f64>, Option<String>)> {
    let flag_currency = currency
        .map(|c| check_currency(c, "--currency"))
        .transpose()?;
    let Some(text) = max_price else {
        return Ok((None, flag_currency));
    };
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (amount, code) = (t[..split].trim(), t[split..].trim());
    let amount: f64 = amount
        .parse()
        .ok()
        .filter(|a: &f64| a.is_finite() && *a >= 0.0)
        .with_context(|| {
            format!("--max-price expects an amount and a currency such as 20EUR, got {text:?}")
        })?;
    let code = if code.is_empty() {
        None
    } else {
        Some(check_currency(code, "--max-price")?)
    };
    let currency = match (code, flag_currency) {
        (Some(a), Some(b)) if a != b => {
            bail!("--max-price says {a} but --currency says {b}; give one currency")
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => bail!(
            "--max-price {t} needs a currency: write {t}EUR (or add --currency EUR); amounts in different currencies are never compared"
        ),
    };
    Ok((Some(amount), Some(currency)))
}

fn check_currency(code: &str, flag: &str) -> anyhow::Result<String> {
    let c = code.trim().to_ascii_uppercase();
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(c)
    } else {
        bail!("{flag}: {code:?} is not an ISO 4217 currency code such as EUR")
    }
}

/// LAT,LON, or else the name of a city.
fn parse_place(text: &str) -> anyhow::Result<PlaceSpec> {
    let t = text.trim();
    if t.is_empty() {
        bail!("give a place: LAT,LON such as 38.72,-9.14, or a city of the directory");
    }
    if let Some((a, b)) = t.split_once(',') {
        if let (Ok(lat), Ok(lon)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                bail!("{t:?} is not a point: latitude must be within -90..90 and longitude within -180..180");
            }
            return Ok(PlaceSpec::Point { lat, lon });
        }
        if a.trim().parse::<f64>().is_ok() || b.trim().parse::<f64>().is_ok() {
            bail!("{t:?} is not a point; write LAT,LON such as 38.72,-9.14");
        }
    }
    Ok(PlaceSpec::City(t.to_string()))
}

/// The environment variable that fixes the clock of the command line and the TUI, for tests only: an
/// RFC 3339 instant such as `2025-05-14T12:00:00Z`. It is read here, at the edge, and travels as
/// [`Query::at`] and as the TUI's and the demo's `now`; the node's own clock is never changed.
pub const TEST_CLOCK: &str = "DESKMESH_TEST_NOW";

/// The test clock, when [`TEST_CLOCK`] is set.
pub fn clock_override() -> Option<DateTime<Utc>> {
    let v = std::env::var(TEST_CLOCK).ok()?;
    match DateTime::parse_from_rfc3339(v.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            output::hint_line(&format!("ignoring {TEST_CLOCK}={v:?}: {e}"));
            None
        }
    }
}

/// Now, or the test clock.
pub fn clock() -> DateTime<Utc> {
    clock_override().unwrap_or_else(Utc::now)
}

/// The commented template of this space's listing, from the roster's id and name.
fn template(handle: &mut dyn Handle) -> anyhow::Result<String> {
    let view = handle.alliance_show()?;
    let Some(id) = view.this_space.clone() else {
        bail!("this node signs for no space: a space's listing is written on a machine that joined with the space's invite (`deskmesh alliance join dmi1...`)");
    };
    let name = view
        .spaces
        .iter()
        .find(|s| s.id == id)
        .map_or_else(|| "Your space".to_string(), |s| s.name.clone());
    Ok(deskmesh_crdt_model::listing::template(&id, &name))
}

#[cfg(test)]
mod tests;
