//! Mesh nodes run inside another program: `deskmesh tui` with no daemon running, and the demo's five nodes.
//!
//! [`Embedded`] owns a small tokio runtime; [`Embedded::start`] runs [`super::service::run`] for one home
//! (the same event loop as `deskmesh run`, with its own control socket) and returns once the node answers
//! on that socket with its listen addresses, or with the node's own error if it could not start (a port
//! in use, a store held by another process). [`Embedded::stop`] asks every node to stop and waits for
//! each to flush its store. Log lines carry the node's name, since several nodes may share one log.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use libp2p::Multiaddr;
use tokio::task::JoinHandle;
use tracing::Instrument;

use deskmesh_core::api::Handle;
use deskmesh_core::home::Home;
use deskmesh_core::Node;

use super::RunOptions;
use crate::control::Remote;

/// How long a node may take to answer on its control socket after it starts.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a node may take to stop and flush.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Nodes running in this process.
#[derive(Debug)]
pub struct Embedded {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    nodes: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
}

impl Embedded {
    pub fn new() -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Self {
            rt,
            stop: tokio::sync::watch::channel(false).0,
            nodes: Vec::new(),
        })
    }

    /// Starts the node of `home` and returns its listen addresses (full multiaddrs with `/p2p/`).
    pub fn start(
        &mut self,
        name: &str,
        home: &Home,
        listen: Vec<Multiaddr>,
        bootstrap: Vec<Multiaddr>,
        mdns: bool,
    ) -> anyhow::Result<Vec<String>> {
        let node = super::open_when_free_by(home, Node::open_to_serve)?;
        node.require_roster()?;
        let opts = RunOptions {
            listen,
            bootstrap,
            mdns,
            nat_private_ips: false,
            shutdown: Some(self.stop.subscribe()),
        };
        let span = tracing::info_span!("node", name = %name);
        let run = super::service::run(node, home.clone(), opts);
        let task = self.rt.spawn(
            async move {
                match run.await? {
                    super::service::Exit::Stopped => Ok(()),
                    // A program running nodes inside itself cannot restart them: stop with the reason.
                    super::service::Exit::Reopen => Err(anyhow::anyhow!(
                        "the store failed a write and must be opened again; start the node again"
                    )),
                }
            }
            .instrument(span),
        );
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if task.is_finished() {
                return match self.rt.block_on(task) {
                    Ok(Ok(())) => bail!("the node {name} stopped as soon as it started"),
                    Ok(Err(e)) => Err(e.context(format!("the node {name} could not start"))),
                    Err(e) => bail!("the node {name} failed while starting: {e}"),
                };
            }
            if let Some(mut remote) = Remote::connect(&home.socket_path())? {
                let listen = remote.status()?.listen;
                if !listen.is_empty() {
                    self.nodes.push((name.to_string(), task));
                    return Ok(listen);
                }
            }
            if Instant::now() >= deadline {
                task.abort();
                bail!(
                    "the node {name} did not start listening within {} s",
                    START_DEADLINE.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A receiver that turns true when [`Embedded::stop`] is called, for helpers that should end then.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Blocks until Ctrl-C or SIGTERM.
    pub fn wait_for_signal(&self) -> anyhow::Result<()> {
        self.rt
            .block_on(async {
                let mut terminate =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r,
                    _ = terminate.recv() => Ok(()),
                }
            })
            .context("cannot wait for Ctrl-C")
    }

    /// Stops every node and waits for each to flush its store; errors are logged, not returned, so one
    /// node's failure does not keep the others from stopping.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let nodes = self.nodes;
        self.rt.block_on(async {
            for (name, task) in nodes {
                match tokio::time::timeout(STOP_DEADLINE, task).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(e))) => {
                        tracing::error!(node = %name, error = %e, "the node stopped with an error")
                    }
                    Ok(Err(e)) => tracing::error!(node = %name, error = %e, "the node failed"),
                    Err(_) => tracing::error!(
                        node = %name,
                        "the node did not stop within {} s",
                        STOP_DEADLINE.as_secs()
                    ),
                }
            }
        });
    }
}

/// Sends log lines to `path` (appending): an embedded node must not write over a TUI.
pub fn log_to_file(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,deskmesh_node=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
