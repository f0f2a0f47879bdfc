//! Owning the terminal and running the loop: raw mode, the alternate screen and mouse capture on entry;
//! everything restored on the way out, whether the loop returns, fails, is stopped with Ctrl-C (a key in
//! raw mode, which quits cleanly) or panics (a hook restores the terminal before the panic message is
//! printed, so the message is readable and the shell usable).
//!
//! [`run`] is generic over the ratatui backend and the event source, so tests drive the real loop with a
//! `TestBackend` and scripted events.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::Rect;
use ratatui::Terminal;

use crate::app::{App, Command};
use crate::model::NodeApi;
use crate::theme::Theme;
use crate::ui::draw;

/// Why the TUI stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("could not set up the terminal: {0}")]
    Setup(#[source] io::Error),
    #[error("could not restore the terminal: {0}")]
    Restore(#[source] io::Error),
    #[error("could not read terminal events: {0}")]
    Events(#[source] io::Error),
    #[error("could not draw on the terminal: {0}")]
    Draw(String),
    #[error("could not load the directory: {0}")]
    Load(String),
    /// The node behind the TUI cannot go on ([`NodeApi::failed`]).
    #[error("{0}")]
    Node(String),
}

/// Where terminal events come from; crossterm in real use, a script in tests.
pub trait EventSource {
    /// The next event, waiting at most `timeout`; `None` when nothing came.
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>>;
}

/// Terminal events from crossterm.
#[derive(Debug, Default)]
pub struct CrosstermEvents;

impl EventSource for CrosstermEvents {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        if crossterm::event::poll(timeout)? {
            crossterm::event::read().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Whether this process has the terminal in TUI mode, so the panic hook restores only then.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Put the terminal back as the shell expects it: main screen, cursor shown, no mouse capture, cooked
/// mode. Safe to call more than once; every step is tried even when an earlier one fails.
pub fn restore_terminal() -> io::Result<()> {
    ACTIVE.store(false, Ordering::SeqCst);
    let screen = execute!(
        io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let raw = disable_raw_mode();
    screen.and(raw)
}

/// Install (once per process) a panic hook that restores the terminal, then runs the previous hook.
/// Install other panic hooks first, so this one runs before them.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                // Nothing useful can be done if restoring fails while panicking; the message follows.
                let _ = restore_terminal();
            }
            previous(info);
        }));
    });
}

/// The terminal in TUI mode; dropping it restores the terminal.
#[derive(Debug)]
pub struct TerminalGuard {
    restored: bool,
}

impl TerminalGuard {
    /// Enter raw mode, the alternate screen, mouse capture and bracketed paste, and install the panic
    /// hook. On failure whatever was already changed is restored.
    pub fn enter() -> Result<(Self, Terminal<CrosstermBackend<Stdout>>), TuiError> {
        install_panic_hook();
        // The guard exists before the first change, so an early failure still restores on drop.
        let guard = Self { restored: false };
        ACTIVE.store(true, Ordering::SeqCst);
        enable_raw_mode().map_err(TuiError::Setup)?;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )
        .map_err(TuiError::Setup)?;
        let terminal =
            Terminal::new(CrosstermBackend::new(io::stdout())).map_err(TuiError::Setup)?;
        Ok((guard, terminal))
    }

    /// Restore now and report failure (dropping the guard restores too, silently).
    pub fn restore(mut self) -> io::Result<()> {
        self.restored = true;
        restore_terminal()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if !self.restored {
            // Drop cannot report; `restore` is the way to see the error.
            let _ = restore_terminal();
        }
    }
}

/// How long the loop waits for a key before polling the node again: the bound on update latency.
const POLL: Duration = Duration::from_millis(50);
/// How often the clock moves (ages like "40 s ago" change every second).
const TICK: Duration = Duration::from_secs(1);
/// Updates applied per loop turn before the screen is redrawn, so a flood cannot freeze the screen.
const MAX_UPDATES_PER_TURN: usize = 500;

/// Run the TUI on `terminal` until the user quits: draw, then wait for a terminal event (at most
/// [`POLL`]), apply node updates, move the clock every second, and redraw when anything changed.
/// `clock` is read here, never while drawing.
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    node: &mut dyn NodeApi,
    events: &mut dyn EventSource,
    clock: &mut dyn FnMut() -> DateTime<Utc>,
) -> Result<(), TuiError> {
    let draw_error = |e: B::Error| TuiError::Draw(e.to_string());
    let size = terminal.size().map_err(draw_error)?;
    app.resize(size.width, size.height);
    app.tick(clock());
    let mut last_tick = Instant::now();
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| draw(app, f)).map_err(draw_error)?;
            dirty = false;
        }
        if app.should_quit() {
            return Ok(());
        }
        let wait = POLL.min(TICK.saturating_sub(last_tick.elapsed()));
        let mut next = events.next(wait).map_err(TuiError::Events)?;
        // Take every event already waiting, so a burst (fast typing, a paste) costs one frame.
        while let Some(event) = next {
            handle(app, node, &event);
            dirty = true;
            if app.should_quit() {
                break;
            }
            next = events.next(Duration::ZERO).map_err(TuiError::Events)?;
        }
        for _ in 0..MAX_UPDATES_PER_TURN {
            let Some(update) = node.poll() else { break };
            app.update(update);
            dirty = true;
        }
        if let Some(why) = node.failed() {
            return Err(TuiError::Node(why));
        }
        if last_tick.elapsed() >= TICK {
            if let Some(command) = app.tick(clock()) {
                run_command(app, node, command);
            }
            last_tick = Instant::now();
            dirty = true;
        }
    }
}

/// Let the app handle one event and run the command it asks for.
pub(crate) fn handle(app: &mut App, node: &mut dyn NodeApi, event: &Event) {
    if let Some(command) = app.handle(event) {
        run_command(app, node, command);
    }
}

/// Run one command on the node and tell the app how it went.
pub(crate) fn run_command(app: &mut App, node: &mut dyn NodeApi, command: Command) {
    let result = match &command {
        Command::Quit => Ok(()),
        Command::SetSeats { pool, availability } => node.set_seats(pool, *availability),
        Command::SaveListing(l) => node.edit_listing((**l).clone()),
    };
    app.done(&command, result);
}

/// The whole TUI on the real terminal: load the snapshot, take over the terminal, run until the user
/// quits, and give the terminal back (also on error, Ctrl-C and panic). `theme` comes from the caller,
/// usually [`Theme::from_env`], so `NO_COLOR` is honoured; so does `clock` (usually `Utc::now`; a test
/// clock in end-to-end tests).
pub fn run_in_terminal(
    node: &mut dyn NodeApi,
    theme: Theme,
    clock: &mut dyn FnMut() -> DateTime<Utc>,
) -> Result<(), TuiError> {
    let snapshot = node.snapshot().map_err(TuiError::Load)?;
    let (guard, mut terminal) = TerminalGuard::enter()?;
    let size = terminal.size().map_err(TuiError::Setup)?;
    let mut app = App::new(
        snapshot,
        theme,
        clock(),
        Rect::new(0, 0, size.width, size.height),
    );
    let result = run(&mut terminal, &mut app, node, &mut CrosstermEvents, clock);
    let restored = guard.restore().map_err(TuiError::Restore);
    result.and(restored)
}
