//! The TUI's state and how it changes: [`App`] holds everything on screen, [`App::handle`] turns a
//! terminal event into a state change and maybe a [`Command`] for the node, [`App::update`] applies a
//! live [`Update`] from the mesh, and [`App::tick`] moves the clock. Drawing (in `ui`) only reads.
//!
//! The selection is kept by [`SpaceId`], never by row number, so live updates, re-sorting and filter
//! changes never move it to another space; the selected row also keeps its place on screen when it can.

mod directory;
mod filters;
mod form;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use deskmesh_crdt_model::Listing;
use deskmesh_keys::SpaceId;
use ratatui::layout::{Position, Rect};

pub(crate) use directory::Directory;
pub use directory::SortKey;
pub(crate) use filters::{items as filter_items, Filters, Item as FilterItem};
pub(crate) use form::{FieldId, Form};

use crate::model::{
    Availability, FindingView, PoolStatus, RosterEntryView, Snapshot, SpaceView, Status, Update,
};
use crate::theme::Theme;
use crate::ui;

/// The screens of the TUI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The table of spaces with search and filters.
    Spaces,
    /// Everything about the selected space.
    Detail,
    /// The spaces on a world map.
    Map,
    /// The roster and, per listing, its signers and rejected changes.
    Audit,
    /// This node's own space: seats per pool and the listing form.
    Operator,
}

/// Which part of the spaces view takes keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Table,
    Filters,
    Search,
}

/// Which pane of the audit view scrolls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuditPane {
    Roster,
    Listing,
}

/// Something the node must do; the loop runs it and reports back through [`App::done`].
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Quit,
    SetSeats {
        pool: String,
        availability: Availability,
    },
    SaveListing(Box<Listing>),
}

/// The map's viewport: its centre in degrees and a zoom factor (1 shows the whole world).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MapState {
    pub(crate) lon: f64,
    pub(crate) lat: f64,
    pub(crate) zoom: f64,
}

impl Default for MapState {
    fn default() -> Self {
        Self {
            lon: 0.0,
            lat: 0.0,
            zoom: 1.0,
        }
    }
}

impl MapState {
    /// About 10 km across: enough to tell a city's spaces apart.
    const MAX_ZOOM: f64 = 4096.0;
    /// Zoom when centring on a space: about 1.4 by 0.7 degrees, a city and its surroundings.
    pub(crate) const CITY_ZOOM: f64 = 256.0;
    /// Zoom the map opens at: about 11 by 6 degrees, a region around the selected space.
    pub(crate) const REGION_ZOOM: f64 = 32.0;

    /// `[west, east]` and `[south, north]` in degrees.
    pub(crate) fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        let (w, h) = (180.0 / self.zoom, 90.0 / self.zoom);
        ([self.lon - w, self.lon + w], [self.lat - h, self.lat + h])
    }

    fn pan(&mut self, dx: f64, dy: f64) {
        let (w, h) = (180.0 / self.zoom, 90.0 / self.zoom);
        self.lon = (self.lon + dx * w / 2.0).clamp(-180.0, 180.0);
        self.lat = (self.lat + dy * h / 2.0).clamp(-90.0, 90.0);
    }

    fn zoom_by(&mut self, f: f64) {
        self.zoom = (self.zoom * f).clamp(1.0, Self::MAX_ZOOM);
        if self.zoom == 1.0 {
            self.lon = 0.0;
            self.lat = 0.0;
        }
    }
}

/// A one-line message under the body: the outcome of the last command, or an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) text: String,
    pub(crate) error: bool,
}

/// After an update, where the cursor goes when the selected space is no longer shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The user changed the filters: the best match, at the top.
    Top,
    /// The data changed: the same position.
    Place,
}

/// A number typed for a seat pool is published this long after its last digit (or at once on Enter).
pub const TYPING_PAUSE_MS: i64 = 1500;
/// How often time-dependent filters (open now, seats free) are re-run as the clock moves.
const REFILTER_EVERY_S: i64 = 15;
/// Mouse wheel step in rows.
const WHEEL_ROWS: usize = 3;

/// Everything the TUI shows and remembers.
#[derive(Debug)]
pub struct App {
    pub(crate) theme: Theme,
    pub(crate) now: DateTime<Utc>,
    pub(crate) size: Rect,
    pub(crate) status: Status,
    pub(crate) spaces: Vec<SpaceView>,
    /// Spaces the node has still to send (an attach pages the directory in after the first screen).
    pub(crate) loading: usize,
    slots: HashMap<SpaceId, usize>,
    pub(crate) dir: Directory,
    pub(crate) roster: Vec<RosterEntryView>,
    /// The audit's findings: what did not count, as `deskmesh audit` lists it.
    pub(crate) findings: Vec<FindingView>,
    /// An audit running on the node, as far as it got (done, of spaces); `None` when none runs.
    pub(crate) auditing: Option<(usize, usize)>,
    pub(crate) view: View,
    detail_from: View,
    pub(crate) focus: Focus,
    pub(crate) search: String,
    pub(crate) filters: Filters,
    /// Each currency of the directory's day passes with its price steps, most used first.
    pub(crate) prices: Vec<(String, Vec<f64>)>,
    pub(crate) panel_cursor: usize,
    pub(crate) sort: SortKey,
    /// The point distances are measured from (lat, lon), set with `n`.
    pub(crate) point: Option<(f64, f64)>,
    selected: Option<SpaceId>,
    /// Position of the selection in `dir.shown`.
    pub(crate) cursor: usize,
    /// First table row on screen.
    pub(crate) offset: usize,
    pub(crate) detail_scroll: u16,
    pub(crate) map: MapState,
    pub(crate) audit_pane: AuditPane,
    pub(crate) audit_scroll: [u16; 2],
    pub(crate) pool_cursor: usize,
    pub(crate) form: Option<Form>,
    /// Digits typed for the selected pool, not yet published: (pool, digits, when the last was typed).
    pub(crate) typed: Option<(String, String, DateTime<Utc>)>,
    /// The help overlay, with its scroll position.
    pub(crate) help: Option<u16>,
    pub(crate) message: Option<Message>,
    filtered_at: DateTime<Utc>,
    quit: bool,
}

impl App {
    /// A new app showing `snapshot` at `now` on a terminal of `size`.
    pub fn new(snapshot: Snapshot, theme: Theme, now: DateTime<Utc>, size: Rect) -> Self {
        let mut app = Self {
            theme,
            now,
            size,
            status: Status::default(),
            spaces: Vec::new(),
            loading: 0,
            slots: HashMap::new(),
            dir: Directory::default(),
            roster: Vec::new(),
            findings: Vec::new(),
            auditing: None,
            view: View::Spaces,
            detail_from: View::Spaces,
            focus: Focus::Table,
            search: String::new(),
            filters: Filters::default(),
            prices: Vec::new(),
            panel_cursor: 0,
            sort: SortKey::Name,
            point: None,
            selected: None,
            cursor: 0,
            offset: 0,
            detail_scroll: 0,
            map: MapState::default(),
            audit_pane: AuditPane::Roster,
            audit_scroll: [0, 0],
            pool_cursor: 0,
            form: None,
            typed: None,
            help: None,
            message: None,
            filtered_at: now,
            quit: false,
        };
        app.load(snapshot);
        app
    }

    // ----- read access, for the loop, the node and tests -----

    pub fn view(&self) -> View {
        self.view
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The selected space, if any row is shown.
    pub fn selected(&self) -> Option<&SpaceId> {
        self.selected.as_ref()
    }

    /// How many spaces pass the filters, and how many there are.
    pub fn counts(&self) -> (usize, usize) {
        (self.dir.shown.len(), self.spaces.len())
    }

    /// How many spaces are still on their way from the node (0 once the directory is loaded).
    pub fn loading(&self) -> usize {
        self.loading
    }

    /// The names of the shown spaces, in table order.
    pub fn shown_names(&self) -> Vec<&str> {
        self.dir
            .shown
            .iter()
            .map(|&s| self.spaces[s].listing.name.as_str())
            .collect()
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// A space by id.
    pub fn space(&self, id: &SpaceId) -> Option<&SpaceView> {
        self.slots.get(id).map(|&s| &self.spaces[s])
    }

    /// The selected space's slot.
    pub(crate) fn selected_slot(&self) -> Option<usize> {
        self.selected
            .as_ref()
            .and_then(|id| self.slots.get(id).copied())
    }

    /// Whether this node signs for a space (operator mode), listing or not.
    pub(crate) fn is_space(&self) -> bool {
        self.status.my_space.is_some()
    }

    /// This node's own space's slot, once it has a listing.
    pub(crate) fn my_slot(&self) -> Option<usize> {
        self.status
            .my_space
            .as_ref()
            .and_then(|id| self.slots.get(id).copied())
    }

    /// Rows of the table that fit on screen.
    pub(crate) fn table_rows(&self) -> usize {
        usize::from(ui::table_area(self).height.saturating_sub(1)).max(1)
    }

    // ----- changes from outside: data, clock, size -----

    /// Replace everything with `snapshot`, keeping the selection when the space is still there.
    pub fn load(&mut self, snapshot: Snapshot) {
        self.status = snapshot.status;
        self.roster = snapshot.roster;
        self.findings = snapshot.findings;
        self.loading = snapshot.following;
        self.spaces = snapshot.spaces;
        self.slots = self
            .spaces
            .iter()
            .enumerate()
            .map(|(i, s)| (s.listing.id.clone(), i))
            .collect();
        self.dir = Directory::build(&self.spaces, self.now);
        self.prices = filters::currencies(&self.spaces);
        self.settle_defaults();
        self.refilter(Keep::Place);
        self.leave_operator_if_not_a_space();
    }

    /// The point distances are measured from and the price filter's currency, once the data has them.
    fn settle_defaults(&mut self) {
        if self.point.is_none() {
            // The saved location first, else this node's own space.
            self.point = self.status.home.or_else(|| {
                self.my_slot().map(|s| {
                    (
                        self.spaces[s].listing.location.lat,
                        self.spaces[s].listing.location.lon,
                    )
                })
            });
        }
        if self.filters.currency.is_none() {
            self.filters.currency = self.default_currency();
        }
    }

    /// Apply one live change from the mesh without moving the selection.
    pub fn update(&mut self, update: Update) {
        match update {
            Update::Snapshot(s) => {
                // A fresh snapshot follows a reconnect or a lag: an audit's last progress may be lost.
                self.auditing = None;
                self.load(*s);
            }
            Update::Space(view) => {
                self.upsert(*view);
                self.prices = filters::currencies(&self.spaces);
                self.refilter(Keep::Place);
            }
            Update::Spaces { spaces, left } => {
                for view in spaces {
                    self.upsert(view);
                }
                self.loading = left;
                self.prices = filters::currencies(&self.spaces);
                self.settle_defaults();
                self.refilter(Keep::Place);
            }
            Update::Seats { space, pools } => {
                let Some(&slot) = self.slots.get(&space) else {
                    return;
                };
                for p in pools {
                    merge_pool(&mut self.spaces[slot].pools, p);
                }
                self.dir.touch(slot, &self.spaces[slot]);
                if self.filters.seats_free || self.sort == SortKey::Seats {
                    self.refilter(Keep::Place);
                }
            }
            Update::Status(s) => {
                let home = s.home;
                self.status = s;
                if home.is_some() && self.point != home && self.sort != SortKey::Distance {
                    self.point = home;
                }
                self.leave_operator_if_not_a_space();
            }
            Update::Roster(r) => self.roster = r,
            Update::Findings(f) => self.findings = f,
            Update::AuditProgress { done, spaces } => {
                self.auditing = (done < spaces).then_some((done, spaces));
            }
        }
    }

    /// Move the clock. Time-dependent filters are re-run now and then, not on every tick. A number being
    /// typed for a seat pool is published once typing pauses ([`TYPING_PAUSE_MS`]).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Command> {
        let command = match &self.typed {
            Some((_, _, at)) if now - *at >= Duration::milliseconds(TYPING_PAUSE_MS) => {
                self.commit_typed()
            }
            _ => None,
        };
        self.tick_clock(now);
        command
    }

    fn tick_clock(&mut self, now: DateTime<Utc>) {
        self.now = now;
        self.dir.refresh(&self.spaces, now);
        let time_dependent = self.filters.time_dependent() || self.sort == SortKey::Seats;
        if time_dependent && now - self.filtered_at >= Duration::seconds(REFILTER_EVERY_S) {
            self.refilter(Keep::Place);
        }
    }

    /// The terminal was resized.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = Rect::new(0, 0, width, height);
        self.scroll_into_view();
    }

    /// The outcome of a [`Command`] the loop ran.
    pub fn done(&mut self, command: &Command, result: Result<(), String>) {
        match (command, result) {
            (Command::Quit, _) => {}
            (Command::SetSeats { pool, availability }, Ok(())) => {
                if let Some(slot) = self.my_slot() {
                    let ttl_s = self.spaces[slot]
                        .pool(pool)
                        .map_or(DEFAULT_TTL_S, |p| p.ttl_s);
                    merge_pool(
                        &mut self.spaces[slot].pools,
                        PoolStatus {
                            pool: pool.clone(),
                            availability: *availability,
                            is_open: *availability != Availability::Closed,
                            published_at: self.now,
                            ttl_s,
                        },
                    );
                    self.dir.touch(slot, &self.spaces[slot]);
                }
                self.say(format!(
                    "{pool}: published {}",
                    availability_text(*availability)
                ));
            }
            (Command::SetSeats { pool, .. }, Err(e)) => self.fail(format!("{pool}: {e}")),
            (Command::SaveListing(l), Ok(())) => {
                self.form = None;
                let mut view = self
                    .slots
                    .get(&l.id)
                    .map(|&s| self.spaces[s].clone())
                    .unwrap_or_else(|| SpaceView::new((**l).clone()));
                view.listing = (**l).clone();
                self.upsert(view);
                self.refilter(Keep::Place);
                self.say("listing saved and signed".to_string());
            }
            (Command::SaveListing(_), Err(e)) => match &mut self.form {
                Some(f) => f.show_error(&e),
                None => self.fail(e),
            },
        }
    }

    fn upsert(&mut self, view: SpaceView) {
        let id = view.listing.id.clone();
        match self.slots.get(&id) {
            Some(&slot) => {
                if self.spaces[slot].listing != view.listing {
                    self.dir.set(slot, &view);
                } else {
                    self.dir.touch(slot, &view);
                }
                self.spaces[slot] = view;
                self.dir.compact_if_needed(&self.spaces);
            }
            None => {
                let slot = self.spaces.len();
                self.dir.set(slot, &view);
                self.spaces.push(view);
                self.slots.insert(id, slot);
            }
        }
    }

    fn leave_operator_if_not_a_space(&mut self) {
        if self.view == View::Operator && !self.is_space() {
            self.view = View::Spaces;
            self.form = None;
        }
    }

    /// The currency the price filter starts in: this space's own, else the one most day passes use.
    fn default_currency(&self) -> Option<String> {
        self.my_slot()
            .and_then(|s| {
                self.spaces[s]
                    .listing
                    .day_pass()
                    .map(|o| o.currency.clone())
            })
            .or_else(|| self.prices.first().map(|(c, _)| c.clone()))
    }

    fn refilter(&mut self, keep: Keep) {
        let on_screen = self.cursor.saturating_sub(self.offset);
        let query = self.filters.query(&self.search, &self.prices);
        let sort = if self.point.is_none() && self.sort == SortKey::Distance {
            SortKey::Name
        } else {
            self.sort
        };
        self.dir
            .refilter(&self.spaces, &query, sort, self.point, self.now);
        self.filtered_at = self.now;

        let found = self
            .selected_slot()
            .and_then(|slot| self.dir.shown.iter().position(|&s| s == slot));
        let len = self.dir.shown.len();
        match found {
            Some(i) => {
                self.cursor = i;
                self.offset = i.saturating_sub(on_screen);
            }
            None => {
                self.cursor = match keep {
                    Keep::Top => 0,
                    Keep::Place => self.cursor.min(len.saturating_sub(1)),
                };
                self.sync_selected();
            }
        }
        self.scroll_into_view();
    }

    fn sync_selected(&mut self) {
        self.selected = self
            .dir
            .shown
            .get(self.cursor)
            .map(|&s| self.spaces[s].listing.id.clone());
    }

    fn scroll_into_view(&mut self) {
        let rows = self.table_rows();
        let len = self.dir.shown.len();
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + rows {
            self.offset = self.cursor + 1 - rows;
        }
        self.offset = self.offset.min(len.saturating_sub(rows));
    }

    fn move_cursor(&mut self, delta: isize) {
        let len = self.dir.shown.len();
        if len == 0 {
            return;
        }
        self.cursor = self.cursor.saturating_add_signed(delta).min(len - 1);
        self.sync_selected();
        self.scroll_into_view();
    }

    fn select_row(&mut self, row: usize) {
        if row < self.dir.shown.len() {
            self.cursor = row;
            self.sync_selected();
            self.scroll_into_view();
        }
    }

    fn say(&mut self, text: String) {
        self.message = Some(Message { text, error: false });
    }

    fn fail(&mut self, text: String) {
        self.message = Some(Message { text, error: true });
    }

    // ----- terminal events -----

    /// Handle one terminal event; returns what the node must do, if anything.
    pub fn handle(&mut self, event: &Event) -> Option<Command> {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.key(k),
            Event::Mouse(m) => {
                self.mouse(m);
                None
            }
            Event::Resize(w, h) => {
                self.resize(*w, *h);
                None
            }
            Event::Paste(text) => {
                self.paste(text);
                None
            }
            _ => None,
        }
    }

    fn key(&mut self, k: &KeyEvent) -> Option<Command> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        // Raw mode turns Ctrl-C into a key; it always quits, even while typing.
        if ctrl && k.code == KeyCode::Char('c') {
            self.quit = true;
            return Some(Command::Quit);
        }
        self.message = None;

        if let Some(scroll) = self.help {
            let max = ui::help_max_scroll(self);
            self.help = match k.code {
                KeyCode::Down | KeyCode::Char('j') => Some(scroll.saturating_add(1).min(max)),
                KeyCode::Up | KeyCode::Char('k') => Some(scroll.saturating_sub(1)),
                KeyCode::PageDown | KeyCode::Char(' ') => Some(scroll.saturating_add(10).min(max)),
                KeyCode::PageUp => Some(scroll.saturating_sub(10)),
                KeyCode::Char('q') => {
                    self.quit = true;
                    return Some(Command::Quit);
                }
                _ => None,
            };
            return None;
        }
        if self.form.is_some() {
            return self.form_key(k, ctrl);
        }
        if self.view == View::Spaces && self.focus == Focus::Search {
            self.search_key(k, ctrl);
            return None;
        }
        match k.code {
            KeyCode::Char('q') => {
                self.quit = true;
                return Some(Command::Quit);
            }
            KeyCode::Char('?') => {
                self.help = Some(0);
                return None;
            }
            _ => {}
        }
        match self.view {
            View::Spaces if self.focus == Focus::Filters => self.filters_key(k),
            View::Spaces => self.table_key(k),
            View::Detail => self.detail_key(k),
            View::Map => self.map_key(k),
            View::Audit => self.audit_key(k),
            View::Operator => return self.operator_key(k),
        }
        None
    }

    /// Keys that switch views, shared by every view but the form and the search box.
    fn switch_view(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Char('m') => self.open_map(),
            KeyCode::Char('a') => {
                self.view = View::Audit;
                self.audit_scroll = [0, 0];
            }
            KeyCode::Char('o') => self.open_operator(),
            KeyCode::Enter if self.selected.is_some() && self.view != View::Detail => {
                self.detail_from = self.view;
                self.view = View::Detail;
                self.detail_scroll = 0;
            }
            _ => return false,
        }
        true
    }

    /// The map opens on the selected space (at the zoom of a region, or closer if zoomed in already),
    /// never on an empty ocean.
    fn open_map(&mut self) {
        if self.view != View::Map {
            self.view = View::Map;
            if let Some(slot) = self.selected_slot() {
                let loc = &self.spaces[slot].listing.location;
                self.map.lon = loc.lon;
                self.map.lat = loc.lat;
                self.map.zoom = self.map.zoom.max(MapState::REGION_ZOOM);
            }
        }
    }

    fn open_operator(&mut self) {
        if self.is_space() {
            self.view = View::Operator;
            self.pool_cursor = 0;
        } else {
            self.fail(
                "operator mode is for a space's own node; this node is not a space".to_string(),
            );
        }
    }

    fn back(&mut self) {
        self.view = match self.view {
            View::Detail if self.detail_from != View::Detail => self.detail_from,
            _ => View::Spaces,
        };
        self.focus = Focus::Table;
    }

    fn table_key(&mut self, k: &KeyEvent) {
        let page = self.table_rows() as isize;
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::PageDown => self.move_cursor(page),
            KeyCode::PageUp => self.move_cursor(-page),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Char('/') => self.focus = Focus::Search,
            KeyCode::Tab | KeyCode::BackTab => self.focus = Focus::Filters,
            KeyCode::Char('s') => {
                self.sort = self.sort.next(self.point.is_some());
                self.refilter(Keep::Place);
                self.say(format!("sorted by {}", self.sort.label()));
            }
            KeyCode::Char('n') => {
                if let Some(slot) = self.selected_slot() {
                    let l = &self.spaces[slot].listing;
                    self.point = Some((l.location.lat, l.location.lon));
                    let name = l.name.clone();
                    self.sort = SortKey::Distance;
                    self.refilter(Keep::Place);
                    self.say(format!("sorted by distance from {name}"));
                }
            }
            KeyCode::Char('N') => {
                self.point = None;
                if self.sort == SortKey::Distance {
                    self.sort = SortKey::Name;
                }
                self.refilter(Keep::Place);
            }
            KeyCode::Char('x') => {
                self.filters = Filters::default();
                self.filters.currency = self.default_currency();
                self.search.clear();
                self.refilter(Keep::Place);
            }
            KeyCode::Esc if !self.search.is_empty() => {
                self.search.clear();
                self.refilter(Keep::Place);
            }
            code => {
                self.switch_view(code);
            }
        }
    }

    fn search_key(&mut self, k: &KeyEvent, ctrl: bool) {
        match k.code {
            KeyCode::Enter => self.focus = Focus::Table,
            KeyCode::Esc => {
                self.search.clear();
                self.focus = Focus::Table;
                self.refilter(Keep::Place);
            }
            KeyCode::Down => self.move_cursor(1),
            KeyCode::Up => self.move_cursor(-1),
            KeyCode::Backspace => {
                self.search.pop();
                self.refilter(Keep::Top);
            }
            KeyCode::Char('u') if ctrl => {
                self.search.clear();
                self.refilter(Keep::Top);
            }
            KeyCode::Char(c) if !ctrl => {
                self.search.push(c);
                self.refilter(Keep::Top);
            }
            _ => {}
        }
    }

    fn filters_key(&mut self, k: &KeyEvent) {
        let items = filter_items();
        let item = items[self.panel_cursor.min(items.len() - 1)];
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => {
                self.panel_cursor = (self.panel_cursor + 1).min(items.len() - 1);
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.panel_cursor = self.panel_cursor.saturating_sub(1)
            }
            KeyCode::Home | KeyCode::Char('g') => self.panel_cursor = 0,
            KeyCode::End | KeyCode::Char('G') => self.panel_cursor = items.len() - 1,
            KeyCode::Char(' ') | KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                self.filters.toggle(item, &self.prices);
                self.refilter(Keep::Top);
            }
            KeyCode::Left | KeyCode::Char('h') => {
                self.filters.step_back(item, &self.prices);
                self.refilter(Keep::Top);
            }
            KeyCode::Char('x') => {
                self.filters = Filters::default();
                self.filters.currency = self.default_currency();
                self.refilter(Keep::Place);
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Esc => self.focus = Focus::Table,
            KeyCode::Char('/') => self.focus = Focus::Search,
            _ => {}
        }
    }

    fn detail_key(&mut self, k: &KeyEvent) {
        let max = ui::detail_max_scroll(self);
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => {
                self.detail_scroll = self.detail_scroll.saturating_add(1).min(max)
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.detail_scroll = self.detail_scroll.saturating_sub(1)
            }
            KeyCode::PageDown | KeyCode::Char(' ') => {
                self.detail_scroll = self.detail_scroll.saturating_add(10).min(max);
            }
            KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => self.detail_scroll = 0,
            KeyCode::End | KeyCode::Char('G') => self.detail_scroll = max,
            KeyCode::Char(']') => self.step_space(1),
            KeyCode::Char('[') => self.step_space(-1),
            KeyCode::Esc | KeyCode::Backspace => self.back(),
            code => {
                self.switch_view(code);
            }
        }
    }

    /// Select the next or previous shown space from a view other than the table.
    fn step_space(&mut self, delta: isize) {
        self.move_cursor(delta);
        self.detail_scroll = 0;
        self.audit_scroll[1] = 0;
    }

    fn map_key(&mut self, k: &KeyEvent) {
        match k.code {
            KeyCode::Char('+') | KeyCode::Char('=') => self.map.zoom_by(2.0),
            KeyCode::Char('-') | KeyCode::Char('_') => self.map.zoom_by(0.5),
            KeyCode::Left | KeyCode::Char('h') => self.map.pan(-1.0, 0.0),
            KeyCode::Right | KeyCode::Char('l') => self.map.pan(1.0, 0.0),
            KeyCode::Up | KeyCode::Char('k') => self.map.pan(0.0, 1.0),
            KeyCode::Down | KeyCode::Char('j') => self.map.pan(0.0, -1.0),
            KeyCode::Char('0') => self.map = MapState::default(),
            KeyCode::Char('c') => self.centre_map(),
            KeyCode::Char(']') => self.step_space(1),
            KeyCode::Char('[') => self.step_space(-1),
            KeyCode::Esc | KeyCode::Backspace => self.back(),
            code => {
                self.switch_view(code);
            }
        }
    }

    fn centre_map(&mut self) {
        if let Some(slot) = self.selected_slot() {
            let loc = &self.spaces[slot].listing.location;
            self.map.lon = loc.lon;
            self.map.lat = loc.lat;
            self.map.zoom = self.map.zoom.max(MapState::CITY_ZOOM);
        }
    }

    fn audit_key(&mut self, k: &KeyEvent) {
        let pane = match self.audit_pane {
            AuditPane::Roster => 0,
            AuditPane::Listing => 1,
        };
        let max = ui::audit_max_scroll(self, self.audit_pane);
        let s = &mut self.audit_scroll[pane];
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => *s = s.saturating_add(1).min(max),
            KeyCode::Up | KeyCode::Char('k') => *s = s.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => *s = s.saturating_add(10).min(max),
            KeyCode::PageUp => *s = s.saturating_sub(10),
            KeyCode::Tab | KeyCode::BackTab => {
                self.audit_pane = match self.audit_pane {
                    AuditPane::Roster => AuditPane::Listing,
                    AuditPane::Listing => AuditPane::Roster,
                }
            }
            KeyCode::Char(']') => self.step_space(1),
            KeyCode::Char('[') => self.step_space(-1),
            KeyCode::Esc | KeyCode::Backspace => self.back(),
            code => {
                self.switch_view(code);
            }
        }
    }

    fn operator_key(&mut self, k: &KeyEvent) -> Option<Command> {
        let Some(slot) = self.my_slot() else {
            // A space with no listing yet: the form writes its first one.
            match k.code {
                KeyCode::Char('e') => self.form = self.first_listing_form(),
                KeyCode::Esc | KeyCode::Backspace => self.back(),
                code => {
                    self.switch_view(code);
                }
            }
            return None;
        };
        let pools = &self.spaces[slot].listing.seat_pools;
        let npools = pools.len();
        let pool = pools
            .get(self.pool_cursor.min(npools.saturating_sub(1)))
            .cloned();
        let set = |availability| {
            pool.as_ref().map(|p| Command::SetSeats {
                pool: p.id.clone(),
                availability,
            })
        };
        let current = pool
            .as_ref()
            .and_then(|p| self.spaces[slot].pool(&p.id))
            .map(|s| s.availability);
        let capacity = pool.as_ref().map_or(0, |p| p.capacity);
        let count = match current {
            Some(Availability::Count(n)) => n,
            Some(Availability::Few) => 1,
            Some(Availability::Many) => capacity,
            _ => 0,
        };
        if let KeyCode::Char(d @ '0'..='9') = k.code {
            // Digits build a number, published on Enter or once typing pauses: typing 12 sets 12.
            let Some(p) = &pool else { return None };
            let mut digits = match self.typed.take() {
                Some((typed_pool, digits, _)) if typed_pool == p.id => digits,
                _ => String::new(),
            };
            if digits.len() < 6 {
                digits.push(d);
            }
            self.typed = Some((p.id.clone(), digits, self.now));
            return None;
        }
        let mut typed = None;
        if self.typed.is_some() {
            match k.code {
                KeyCode::Enter => return self.commit_typed(),
                KeyCode::Backspace => {
                    if let Some((_, digits, at)) = &mut self.typed {
                        digits.pop();
                        *at = self.now;
                        if digits.is_empty() {
                            self.typed = None;
                        }
                    }
                    return None;
                }
                KeyCode::Esc => {
                    self.typed = None;
                    self.say("number not published".to_string());
                    return None;
                }
                // A key that sets seats itself wins over the number being typed.
                KeyCode::Char('+' | '=' | '-' | '_' | 'f' | 'x') => self.typed = None,
                // Any other key publishes the number first, then does what it says.
                _ => typed = self.commit_typed(),
            }
        }
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => {
                self.pool_cursor = (self.pool_cursor + 1).min(npools.saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.pool_cursor = self.pool_cursor.saturating_sub(1)
            }
            KeyCode::Char('+') | KeyCode::Char('=') => {
                return set(Availability::Count(count.saturating_add(1).min(capacity)));
            }
            KeyCode::Char('-') | KeyCode::Char('_') => {
                return set(Availability::Count(count.saturating_sub(1)));
            }
            KeyCode::Char('f') => return set(Availability::Full),
            KeyCode::Char('x') => return set(Availability::Closed),
            KeyCode::Char('e') => self.form = Some(Form::new(&self.spaces[slot].listing)),
            KeyCode::Esc | KeyCode::Backspace => self.back(),
            code => {
                self.switch_view(code);
            }
        }
        typed
    }

    /// Publish the number typed for a pool, when it fits the pool.
    fn commit_typed(&mut self) -> Option<Command> {
        let (pool, digits, _) = self.typed.take()?;
        let n: u32 = digits.parse().ok()?;
        let capacity = self
            .my_slot()
            .and_then(|s| {
                self.spaces[s]
                    .listing
                    .seat_pools
                    .iter()
                    .find(|p| p.id == pool)
            })
            .map_or(0, |p| p.capacity);
        if n > capacity {
            self.fail(format!("{pool} has {capacity} seats; {n} cannot be free"));
            return None;
        }
        Some(Command::SetSeats {
            pool,
            availability: Availability::Count(n),
        })
    }

    /// The form for this space's first listing, started from its id and admitted name.
    fn first_listing_form(&self) -> Option<Form> {
        let id = self.status.my_space.clone()?;
        let name = self.status.my_space_name.clone().unwrap_or_default();
        Some(Form::first(id, name))
    }

    fn form_key(&mut self, k: &KeyEvent, ctrl: bool) -> Option<Command> {
        let form = self.form.as_mut()?;
        if form.confirming {
            // "Discard your changes?": y (or Esc again) discards, anything else goes back to the form.
            form.confirming = false;
            if matches!(
                k.code,
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Esc
            ) {
                self.form = None;
                self.say("edit cancelled; nothing was saved".to_string());
            } else {
                self.say("still editing; Ctrl-S saves".to_string());
            }
            return None;
        }
        match k.code {
            KeyCode::Esc if form.changed() => {
                form.confirming = true;
                self.fail(
                    "discard your changes? y or Esc discards, any other key keeps editing"
                        .to_string(),
                );
            }
            KeyCode::Esc => {
                self.form = None;
                self.say("edit cancelled; nothing was saved".to_string());
            }
            KeyCode::Char('s') if ctrl => return self.save_form(),
            KeyCode::Enter if form.on_save() => return self.save_form(),
            KeyCode::Enter | KeyCode::Tab | KeyCode::Down => form.next(),
            KeyCode::BackTab | KeyCode::Up => form.prev(),
            KeyCode::Backspace => form.backspace(),
            KeyCode::Char('u') if ctrl => form.clear(),
            KeyCode::Char(c) if !ctrl => form.push(c),
            _ => {}
        }
        None
    }

    fn save_form(&mut self) -> Option<Command> {
        let form = self.form.as_mut()?;
        match form.build() {
            Some(l) => Some(Command::SaveListing(Box::new(l))),
            None => {
                self.fail("the listing has problems; see the fields marked".to_string());
                None
            }
        }
    }

    fn paste(&mut self, text: &str) {
        if let Some(f) = &mut self.form {
            f.push_str(text);
        } else if self.view == View::Spaces && self.focus == Focus::Search {
            self.search.extend(text.chars().filter(|c| !c.is_control()));
            self.refilter(Keep::Top);
        }
    }

    fn mouse(&mut self, m: &MouseEvent) {
        let at = Position::new(m.column, m.row);
        let wheel: isize = match m.kind {
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::ScrollUp => -1,
            MouseEventKind::Down(MouseButton::Left) => 0,
            _ => return,
        };
        if let Some(scroll) = self.help {
            let max = ui::help_max_scroll(self);
            self.help = Some(scroll.saturating_add_signed(wheel as i16 * 3).min(max));
            return;
        }
        match self.view {
            View::Spaces => {
                let table = ui::table_area(self);
                let panel = ui::panel_area(self);
                if let Some(panel) = panel.filter(|p| p.contains(at)) {
                    if wheel != 0 {
                        let last = filter_items().len() - 1;
                        self.panel_cursor =
                            self.panel_cursor.saturating_add_signed(wheel).min(last);
                    } else if let Some(i) = ui::panel_item_at(self, panel, at) {
                        self.focus = Focus::Filters;
                        self.panel_cursor = i;
                        self.filters.toggle(filter_items()[i], &self.prices);
                        self.refilter(Keep::Top);
                    }
                } else if wheel != 0 {
                    self.move_cursor(wheel * WHEEL_ROWS as isize);
                } else if table.contains(at) && at.y > table.y {
                    self.focus = Focus::Table;
                    self.select_row(self.offset + usize::from(at.y - table.y - 1));
                }
            }
            View::Detail if wheel != 0 => {
                let max = ui::detail_max_scroll(self);
                self.detail_scroll = self
                    .detail_scroll
                    .saturating_add_signed(wheel as i16 * 3)
                    .min(max);
            }
            View::Map if wheel != 0 => self.map.zoom_by(if wheel < 0 { 2.0 } else { 0.5 }),
            View::Audit if wheel != 0 => {
                let pane = usize::from(self.audit_pane == AuditPane::Listing);
                let max = ui::audit_max_scroll(self, self.audit_pane);
                let s = &mut self.audit_scroll[pane];
                *s = s.saturating_add_signed(wheel as i16 * 3).min(max);
            }
            View::Operator if wheel != 0 && self.form.is_none() => {
                let n = self
                    .my_slot()
                    .map_or(0, |s| self.spaces[s].listing.seat_pools.len());
                self.pool_cursor = self
                    .pool_cursor
                    .saturating_add_signed(wheel)
                    .min(n.saturating_sub(1));
            }
            _ => {}
        }
    }
}

/// Time to live assumed for our own beacon until the node reports the real one.
const DEFAULT_TTL_S: u32 = 600;

/// Keep only the newest beacon per pool (by publication time).
fn merge_pool(pools: &mut Vec<PoolStatus>, p: PoolStatus) {
    match pools.iter_mut().find(|q| q.pool == p.pool) {
        Some(q) if q.published_at <= p.published_at => *q = p,
        Some(_) => {}
        None => pools.push(p),
    }
}

/// "5 free", "full", "closed", for messages.
pub(crate) fn availability_text(a: Availability) -> String {
    match a {
        Availability::Count(n) => format!("{n} free"),
        Availability::Many => "many free".into(),
        Availability::Few => "few free".into(),
        Availability::Full => "full".into(),
        Availability::Closed => "closed".into(),
    }
}

#[cfg(test)]
mod tests;
