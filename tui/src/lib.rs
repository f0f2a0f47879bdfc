//! deskmesh-tui: the terminal UI. Browse, filter and map the alliance's spaces and their open seats,
//! audit who signed what, and operate your own space.
//!
//! The crate follows an Elm-like split. [`App`] holds the state; [`draw`] paints it and never mutates
//! it; [`App::handle`] turns a terminal event into a state change and maybe a [`Command`];
//! [`App::update`] applies a live [`Update`] from the mesh; [`App::tick`] moves the clock (drawing
//! never reads one). [`run`] is the loop that selects over terminal events, node updates and a tick.
//!
//! The node side implements [`NodeApi`] (the data the TUI shows and the two commands it sends), in
//! process or over the daemon's control socket; the TUI never opens the store or a socket itself.
//! [`run_in_terminal`] is the one call a front end needs: it takes over the terminal, runs the loop
//! and always gives the terminal back, on return, on error, on Ctrl-C and on panic.

mod app;
pub mod fake;
mod model;
mod seats;
mod term;
mod theme;
mod ui;

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod testdata;

pub use app::{App, Command, Focus, SortKey, View};
pub use model::{
    Availability, FactView, FindingView, NodeApi, PoolStatus, RejectedView, RosterEntryView,
    SignerView, Snapshot, SpaceView, Status, Update,
};
pub use term::{
    install_panic_hook, restore_terminal, run, run_in_terminal, CrosstermEvents, EventSource,
    TerminalGuard, TuiError,
};
pub use theme::Theme;
pub use ui::draw;
