//! The `deskmesh` command line: argument definitions (clap) and how each command's result is printed.
//!
//! Every command takes `--home DIR` (or `DESKMESH_HOME`) and, where it prints data, `--json`. The work itself
//! lives in [`crate::ops`]; this module only parses, dispatches and formats, so the daemon and the terminal
//! UI can reuse the same operations.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use deskmesh_crdt_model::listing::Amenity;
use deskmesh_crdt_model::query::{AccessNeed, Query, Sort};

use crate::home::Home;
use crate::ops::{self, Node};
use crate::{control, mesh, output};

/// deskmesh: a shared, signed, offline-first directory of coworking spaces.
#[derive(Debug, Parser)]
#[command(name = "deskmesh", version, about, long_about = None)]
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
        #[arg(long)]
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
    /// Import listings (the JSON form of `space show --json`, one object or an array), signed by this node,
    /// or a bundle of signed items from another node (`export --format bundle`).
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Export the directory.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify every stored change and roster operation; list signers and rejections.
    Audit {
        #[arg(long)]
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
    },
    /// Show the node: alliance, peer id, listen addresses, peers, listings, last sync.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List the peers the running node is connected to.
    Peers {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllianceCommand {
    /// Found an alliance: this node becomes its first coordinator.
    Create {
        name: String,
        /// How many coordinators must co-sign coordinator changes.
        #[arg(long, default_value_t = 1)]
        threshold: u8,
        #[arg(long)]
        json: bool,
    },
    /// Admit a space's device key and print a one-line invite token for it.
    Invite {
        /// The space's device public key (`deskmesh init` printed it on the space's machine).
        pubkey: String,
        /// The space's display name.
        #[arg(long)]
        space: String,
        /// Peer addresses to put in the token (multiaddrs), repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a token with which a member's laptop joins the alliance read-only (it signs for no space).
    InviteMember {
        /// Peer addresses to put in the token (multiaddrs), repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add another device key to this node's space and print an invite token for that device.
    AddDevice {
        pubkey: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a device key from a space (a coordinator, or a device of that space).
    RemoveDevice {
        pubkey: String,
        /// The space (default: this node's space).
        #[arg(long)]
        space: Option<String>,
    },
    /// Revoke a space's membership (coordinators only).
    Revoke {
        space: String,
        #[arg(long, default_value = "revoked by a coordinator")]
        reason: String,
    },
    /// Join an alliance with an invite token (`dmi1...` for a space or device, `dmm1...` for a member).
    Join {
        token: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the alliance roster.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Change this space's listing from a file (JSON or TOML) and/or flags; validated, then signed.
    Edit(EditArgs),
    /// Print this space's listing (or another's with --space) in the form `edit --file` accepts.
    Show {
        #[arg(long)]
        space: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct EditArgs {
    /// A listing file, `.json` or `.toml`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub opening_hours: Option<String>,
    #[arg(long)]
    pub website: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    /// Add an amenity (repeatable).
    #[arg(long = "add-amenity")]
    pub add_amenities: Vec<String>,
    /// Remove an amenity (repeatable).
    #[arg(long = "remove-amenity")]
    pub remove_amenities: Vec<String>,
    #[arg(long)]
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
        #[arg(long, default_value_t = 900)]
        ttl: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpacesCommand {
    /// List the directory with each space's seat freshness.
    List(ListArgs),
}

#[derive(Debug, Clone, Args, Default, serde::Serialize, serde::Deserialize)]
pub struct ListArgs {
    /// Text to find in name, description, city or address.
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    /// Required amenity (repeatable), e.g. coffee, meeting_room.
    #[arg(long = "amenity")]
    pub amenities: Vec<String>,
    /// Required accessibility (repeatable): wheelchair, accessible_toilet, hearing_loop, quiet_room,
    /// step_free_entrance.
    #[arg(long = "access")]
    pub access: Vec<String>,
    /// Only spaces open now (in their own time zone).
    #[arg(long)]
    pub open_now: bool,
    /// Only spaces with seats free now.
    #[arg(long)]
    pub seats_free: bool,
    /// Highest day-pass price.
    #[arg(long)]
    pub max_price: Option<f64>,
    /// Lowest wifi download speed in Mbit/s.
    #[arg(long)]
    pub min_wifi: Option<f64>,
    /// Sort by distance from LAT,LON instead of by name.
    #[arg(long, value_name = "LAT,LON")]
    pub near: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Geojson,
    Csv,
    Jsonld,
    /// Every signed item (roster, listing changes, seat beacons) for offline exchange; `import` takes it.
    Bundle,
}

/// Parses the arguments, runs the command, and reports the exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0 and usage errors to stderr with exit 2.
            let _ = e.print();
            return Ok(ExitCode::from(e.exit_code().clamp(0, 255) as u8));
        }
    };
    if let Command::Demo {
        setup_only,
        no_tui,
        seat_changes,
        json,
    } = cli.command
    {
        // The demo lives in a fresh temporary home unless one is given.
        let home = match cli.home {
            Some(h) => Home::at(h),
            None => Home::at(std::env::temp_dir().join(format!(
                "deskmesh-demo-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp()
            ))),
        };
        if setup_only {
            output::print(json, &crate::demo::run(&home, chrono::Utc::now())?)?;
        } else {
            let opts = crate::demo_live::DemoOptions {
                tui: !no_tui,
                churn: (seat_changes > 0).then(|| std::time::Duration::from_secs(seat_changes)),
            };
            crate::demo_live::run(&home, &opts)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let home = Home::resolve(cli.home.clone())?;
    execute(&home, cli.command)?;
    Ok(ExitCode::SUCCESS)
}

/// Sends a command to the running daemon, if there is one, and prints its answer. `Ok(false)` means no
/// daemon answered and the caller should work on the store itself.
fn via_daemon(home: &Home, req: &control::Request, json: bool) -> anyhow::Result<bool> {
    let Some(resp) = control::call(&home.socket_path(), req)? else {
        return Ok(false);
    };
    if let Some(e) = resp.error {
        anyhow::bail!("{e}");
    }
    if json {
        output::print_json(&resp.json)?;
    } else {
        let mut text = resp.text;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        output::write_stdout(&text);
    }
    Ok(true)
}

fn execute(home: &Home, command: Command) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match command {
        Command::Run {
            listen,
            bootstrap,
            no_mdns,
        } => {
            init_tracing();
            mesh::run(
                home,
                mesh::RunOptions {
                    listen,
                    bootstrap,
                    mdns: !no_mdns,
                    shutdown: None,
                },
            )
        }
        Command::Status { json } => {
            if via_daemon(home, &control::Request::Status, json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            output::print(json, &mesh::Status::offline(&node)?)
        }
        Command::Peers { json } => {
            if via_daemon(home, &control::Request::Peers, json)? {
                return Ok(());
            }
            home.require_initialised()?;
            output::print(json, &mesh::Peers { peers: Vec::new() })
        }
        Command::Init { name, json } => {
            let out = ops::init(home, name)?;
            output::print(json, &out)
        }
        Command::Demo { .. } => Ok(()),
        Command::Tui { offline, no_mdns } => tui(home, offline, !no_mdns),
        Command::Alliance(AllianceCommand::InviteMember { peers, json }) => {
            let req = control::Request::InviteMember {
                peers: peers.clone(),
            };
            if via_daemon(home, &req, json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            output::print(json, &node.member_invite(peers)?)
        }
        Command::Alliance(cmd) => {
            let mut node = Node::open(home)?;
            match cmd {
                AllianceCommand::Create {
                    name,
                    threshold,
                    json,
                } => output::print(json, &node.alliance_create(&name, threshold, now)?),
                AllianceCommand::Invite {
                    pubkey,
                    space,
                    peers,
                    json,
                } => output::print(json, &node.alliance_invite(&pubkey, &space, peers, now)?),
                AllianceCommand::InviteMember { peers, json } => {
                    output::print(json, &node.member_invite(peers)?)
                }
                AllianceCommand::AddDevice { pubkey, json } => {
                    output::print(json, &node.add_device(&pubkey, now)?)
                }
                AllianceCommand::RemoveDevice { pubkey, space } => {
                    output::print(false, &node.remove_device(&pubkey, space.as_deref(), now)?)
                }
                AllianceCommand::Revoke { space, reason } => {
                    output::print(false, &node.revoke(&space, &reason, now)?)
                }
                AllianceCommand::Join { token, json } => {
                    output::print(json, &node.alliance_join(&token)?)
                }
                AllianceCommand::Show { json } => output::print(json, &node.alliance_show()?),
            }
        }
        Command::Space(SpaceCommand::Edit(mut args)) => {
            if let Some(file) = &args.file {
                // The daemon may run in another directory: send it an absolute path.
                args.file = Some(std::path::absolute(file).unwrap_or_else(|_| file.clone()));
            }
            if via_daemon(home, &control::Request::SpaceEdit(args.clone()), args.json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            let json = args.json;
            output::print(json, &node.space_edit(&args, now)?)
        }
        Command::Space(SpaceCommand::Show { space, json }) => {
            let node = Node::open(home)?;
            let listing = node.space_show(space.as_deref())?;
            if json {
                output::print_json(&listing.to_value())
            } else {
                output::write_stdout(&format!("{}\n", output::ListingText(&listing)));
                Ok(())
            }
        }
        Command::Seats(SeatsCommand::Set {
            pool,
            value,
            ttl,
            json,
        }) => {
            let req = control::Request::SeatsSet {
                pool: pool.clone(),
                value: value.clone(),
                ttl,
            };
            if via_daemon(home, &req, json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            output::print(json, &node.seats_set(pool.as_deref(), &value, ttl, now)?)
        }
        Command::Spaces(SpacesCommand::List(args)) => {
            if via_daemon(home, &control::Request::SpacesList(args.clone()), args.json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            let query = query_from(&args)?;
            output::print(args.json, &node.directory(&query, now)?)
        }
        Command::Import { file, json } => {
            let mut node = Node::open(home)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            if crate::bundle::Bundle::is_bundle(&bytes) {
                let bundle = crate::bundle::Bundle::decode(&bytes)
                    .with_context(|| format!("{}", file.display()))?;
                output::print(json, &node.import_bundle(&bundle, now)?)
            } else {
                output::print(json, &node.import(&file, now)?)
            }
        }
        Command::Export {
            format,
            output: out,
        } => {
            let node = Node::open(home)?;
            let bytes = node.export(format)?;
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display())),
                None => {
                    output::write_stdout_bytes(&bytes);
                    Ok(())
                }
            }
        }
        Command::Audit { json } => {
            if via_daemon(home, &control::Request::Audit, json)? {
                return Ok(());
            }
            let node = Node::open(home)?;
            output::print(json, &node.audit(now)?)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info` for deskmesh, `warn` for libraries).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,deskmesh_node=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `deskmesh tui`: attach to the running node, or run one inside the TUI, or (offline, or before the
/// node is in an alliance) show the local store.
fn tui(home: &Home, offline: bool, mdns: bool) -> anyhow::Result<()> {
    let theme = deskmesh_tui::Theme::from_env();
    // A running daemon holds the store: attach to it, so the mesh's changes show live.
    if let Some(mut api) = crate::tui_remote::RemoteTui::attach(&home.socket_path())? {
        deskmesh_tui::run_in_terminal(&mut api, theme)?;
        return Ok(());
    }
    let node = Node::open(home)?;
    if offline || node.roster().is_none() {
        let mut api = crate::tui_local::LocalTui::new(node);
        deskmesh_tui::run_in_terminal(&mut api, theme)?;
        return Ok(());
    }
    drop(node);
    crate::mesh::embedded::log_to_file(&home.root().join("tui.log"))?;
    let mut mesh = crate::mesh::embedded::Embedded::new()?;
    let name = home.read_config()?.name;
    if let Err(e) = mesh.start(&name, home, Vec::new(), Vec::new(), mdns) {
        mesh.stop();
        return Err(
            e.context("use `deskmesh tui --offline` to browse the local store without the mesh")
        );
    }
    let result = match crate::tui_remote::RemoteTui::attach(&home.socket_path()) {
        Ok(Some(mut api)) => deskmesh_tui::run_in_terminal(&mut api, theme).map_err(Into::into),
        Ok(None) => Err(anyhow::anyhow!(
            "the node stopped before the TUI could attach"
        )),
        Err(e) => Err(e),
    };
    mesh.stop();
    result
}

/// Turns the list flags into a directory query, with one clear sentence per bad value.
pub fn query_from(args: &ListArgs) -> anyhow::Result<Query> {
    let mut q = Query {
        text: args.search.clone(),
        city: args.city.clone(),
        open_now: args.open_now,
        seats_free_now: args.seats_free,
        max_day_pass_price: args.max_price,
        min_wifi_down_mbps: args.min_wifi,
        limit: args.limit,
        ..Query::default()
    };
    for a in &args.amenities {
        q.amenities
            .push(a.parse::<Amenity>().map_err(anyhow::Error::msg)?);
    }
    for a in &args.access {
        q.access
            .push(a.parse::<AccessNeed>().map_err(anyhow::Error::msg)?);
    }
    if let Some(near) = &args.near {
        let (lat, lon) = near
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .with_context(|| format!("--near expects LAT,LON such as 38.72,-9.14, got {near:?}"))?;
        q.sort = Sort::Distance { lat, lon };
    }
    Ok(q)
}
