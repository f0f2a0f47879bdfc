//! Drawing: a pure function of the [`App`] state onto a ratatui [`Frame`]. Nothing here mutates the app
//! or reads the clock; `now` comes from the state.
//!
//! Every screen has the same frame: a header line (views, "N of M spaces", sort), the search and
//! active-filters line, the body, a message or key-hint line and the status bar. The layout helpers
//! are shared with event handling, so mouse hit-tests and scrolling agree with what is drawn.

mod audit;
mod detail;
mod map;
mod operator;
mod spaces;
mod text;

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use crate::app::{App, AuditPane, Focus, View};
use deskmesh_crdt_model::seats::legend;

use crate::seats::ago;

pub(crate) use spaces::panel_item_at;

/// The fixed parts of every screen.
pub(crate) struct Areas {
    pub(crate) header: Rect,
    pub(crate) filters: Rect,
    pub(crate) body: Rect,
    pub(crate) hint: Rect,
    pub(crate) status: Rect,
}

pub(crate) fn areas(size: Rect) -> Areas {
    let [header, filters, body, hint, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(size);
    Areas {
        header,
        filters,
        body,
        hint,
        status,
    }
}

/// Width at which the filter panel stays open beside the table.
const WIDE_PANEL: u16 = 120;
const PANEL_WIDTH: u16 = 30;
/// Rows the filter panel takes below the table on a narrow screen, at most.
const PANEL_BAND: u16 = 9;

fn panel_shown(app: &App) -> bool {
    app.view == View::Spaces && (app.focus == Focus::Filters || app.size.width >= WIDE_PANEL)
}

/// Whether the panel sits beside the table (wide screens) rather than below it.
pub(crate) fn panel_beside(app: &App) -> bool {
    app.size.width >= WIDE_PANEL
}

/// The filter panel's area, when it is on screen: beside the table on a wide screen; on a narrower one
/// it collapses to the filter line and opens (with Tab) as a band below the table, so the table keeps
/// its width and the name, city, open and seats columns stay on screen.
pub(crate) fn panel_area(app: &App) -> Option<Rect> {
    let body = areas(app.size).body;
    if !panel_shown(app) {
        return None;
    }
    Some(if panel_beside(app) {
        Rect {
            width: PANEL_WIDTH.min(body.width),
            ..body
        }
    } else {
        let h = PANEL_BAND.min(body.height / 2);
        Rect {
            y: body.y + body.height - h,
            height: h,
            ..body
        }
    })
}

/// The spaces table's area, header row included.
pub(crate) fn table_area(app: &App) -> Rect {
    let body = areas(app.size).body;
    match panel_area(app) {
        Some(p) if panel_beside(app) => Rect {
            x: body.x + p.width,
            width: body.width - p.width,
            ..body
        },
        Some(p) => Rect {
            height: body.height - p.height,
            ..body
        },
        None => body,
    }
}

pub(crate) fn help_max_scroll(app: &App) -> u16 {
    let (area, lines) = help_area(app);
    max_scroll(lines.len(), area.height.saturating_sub(2))
}

pub(crate) fn detail_max_scroll(app: &App) -> u16 {
    detail::max_scroll(app, areas(app.size).body)
}

pub(crate) fn audit_max_scroll(app: &App, pane: AuditPane) -> u16 {
    audit::max_scroll(app, areas(app.size).body, pane)
}

/// How far `len` lines can scroll in `height` rows.
pub(crate) fn max_scroll(len: usize, height: u16) -> u16 {
    u16::try_from(len.saturating_sub(usize::from(height))).unwrap_or(u16::MAX)
}

/// Draw the whole screen.
pub fn draw(app: &App, frame: &mut Frame) {
    let a = areas(frame.area());
    header(app, frame, a.header);
    filter_line(app, frame, a.filters);
    match app.view {
        View::Spaces => spaces::draw(app, frame, a.body),
        View::Detail => detail::draw(app, frame, a.body),
        View::Map => map::draw(app, frame, a.body),
        View::Audit => audit::draw(app, frame, a.body),
        View::Operator => operator::draw(app, frame, a.body),
    }
    hint(app, frame, a.hint);
    status_bar(app, frame, a.status);
    if let Some(scroll) = app.help {
        help(app, frame, scroll);
    }
}

fn header(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let mut spans = vec![Span::styled(" deskmesh ", t.title()), Span::raw(" ")];
    let mut tabs = vec![
        (View::Spaces, "spaces"),
        (View::Detail, "detail"),
        (View::Map, "map"),
        (View::Audit, "audit"),
    ];
    if app.is_space() {
        tabs.push((View::Operator, "operator"));
    }
    for (v, name) in tabs {
        let style = if v == app.view { t.selected() } else { t.dim() };
        spans.push(Span::styled(format!(" {name} "), style));
    }
    let (shown, total) = app.counts();
    let right = match app.loading() {
        0 => format!("{shown} of {total} spaces · by {} ", app.sort.label()),
        left => format!(
            "{shown} of {total} spaces · {left} loading · by {} ",
            app.sort.label()
        ),
    };
    let left = Line::from(spans);
    let pad = usize::from(area.width).saturating_sub(left.width() + right.chars().count());
    let mut line = left;
    line.push_span(Span::raw(" ".repeat(pad)));
    line.push_span(Span::styled(right, t.header()));
    frame.render_widget(Paragraph::new(line), area);
}

fn filter_line(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let searching = app.view == View::Spaces && app.focus == Focus::Search;
    let mut spans = vec![Span::styled(" / ", t.label())];
    if app.search.is_empty() && !searching {
        spans.push(Span::styled("search", t.dim()));
    } else {
        spans.push(Span::styled(app.search.clone(), t.active()));
    }
    if searching {
        let x = area.x + 3 + u16::try_from(Line::from(app.search.as_str()).width()).unwrap_or(0);
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
        spans.push(Span::styled("▏", t.active()));
    }
    spans.push(Span::raw("  "));
    let active = app.filters.active(&app.prices);
    if active.is_empty() {
        spans.push(Span::styled("no filters (Tab)", t.dim()));
    } else {
        spans.push(Span::styled("filters: ", t.label()));
        for (i, f) in active.into_iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" · ", t.dim()));
            }
            spans.push(Span::styled(f, t.active()));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let line = match &app.message {
        Some(m) if m.error => Line::styled(format!(" ✗ {}", m.text), t.error()),
        Some(m) => Line::styled(format!(" {}", m.text), t.good()),
        None => Line::styled(format!(" {}", hint_text(app)), t.dim()),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hint_text(app: &App) -> &'static str {
    if app.form.is_some() {
        return "↑↓ Tab field · type to edit · Ctrl-U clear · Ctrl-S save · Esc cancel";
    }
    match (app.view, app.focus) {
        (View::Spaces, Focus::Search) => "type to search · ↑↓ move · Enter keep · Esc clear",
        (View::Spaces, Focus::Filters) => {
            "↑↓ move · Space toggle · ←→ value · x clear all · Tab back"
        }
        (View::Spaces, Focus::Table) => {
            "Enter details · / search · Tab filters · s sort · m map · a audit · ? help"
        }
        (View::Detail, _) => {
            "↑↓ scroll · [ ] prev/next space · m map · a audit · Esc back · ? help"
        }
        (View::Map, _) => {
            "+ - zoom · ←↑↓→ hjkl pan · c centre · [ ] prev/next · 0 world · Esc back"
        }
        (View::Audit, _) => "Tab pane · ↑↓ scroll · [ ] prev/next space · Esc back · ? help",
        (View::Operator, _) if app.my_slot().is_none() => {
            "e write the first listing · Esc back · ? help"
        }
        (View::Operator, _) => {
            "↑↓ pool · + - seats · 0-9 Enter set · f full · x closed · e edit · Esc back"
        }
    }
}

fn status_bar(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let s = &app.status;
    let sep = || Span::styled(" │ ", t.bar());
    let mut spans = Vec::new();
    if let Some(standing) = &s.standing {
        spans.push(Span::styled(format!(" {standing} "), t.offline()));
        spans.push(sep());
    }
    // A node starting has no peers yet: that is not being offline.
    if !s.online && !s.starting {
        spans.push(Span::styled(" OFFLINE ", t.offline()));
    }
    spans.push(Span::styled(
        format!(" {}", s.alliance.as_deref().unwrap_or("no alliance")),
        t.bar(),
    ));
    spans.push(sep());
    spans.push(Span::styled(format!("node {}", s.node_name), t.bar()));
    spans.push(sep());
    if s.starting {
        // Peers and the last sync are the node's to say once it answers.
        spans.push(Span::styled("starting the node", t.bar()));
        spans.push(Span::styled(" ".repeat(usize::from(area.width)), t.bar()));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    }
    let mut peers = match s.peers {
        1 => "1 peer".to_string(),
        n => format!("{n} peers"),
    };
    if s.relayed_peers > 0 {
        peers.push_str(&format!(" ({} relayed)", s.relayed_peers));
    }
    spans.push(Span::styled(peers, t.bar()));
    spans.push(sep());
    let synced = s.last_sync.map_or("never synced".to_string(), |at| {
        format!("synced {}", ago(at, app.now))
    });
    spans.push(Span::styled(synced, t.bar()));
    spans.push(sep());
    let source = if s.daemon_stopped {
        "daemon stopped, reconnecting"
    } else if s.attached_to_daemon {
        "attached to daemon"
    } else {
        "local store"
    };
    spans.push(Span::styled(source, t.bar()));
    if let Some((done, spaces)) = app.auditing {
        spans.push(sep());
        spans.push(Span::styled(
            format!("auditing {done}/{spaces} spaces"),
            t.bar(),
        ));
    }
    spans.push(Span::styled(" ".repeat(usize::from(area.width)), t.bar()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Every key, grouped by where it works.
fn help_lines(app: &App) -> Vec<Line<'static>> {
    let t = app.theme;
    let section = |s: &'static str| Line::styled(s, t.header());
    let key = |k: &'static str, what: &'static str| {
        Line::from(vec![
            Span::styled(format!("  {k:<18}"), t.label()),
            Span::raw(what),
        ])
    };
    let mut lines = vec![
        section("Everywhere"),
        key("?", "this help (Esc closes, ↑↓ scroll)"),
        key("q  Ctrl-C", "quit"),
        key("Esc", "back, close, clear the search"),
        key("m  a  o", "map, audit, operator (own space)"),
        key("Enter", "details of the selected space"),
        section("Spaces table"),
        key("↑↓  j k", "move the selection"),
        key("PgUp PgDn  g G", "page up and down, first, last"),
        key("/", "search as you type (Enter keeps it)"),
        key("Tab", "filter panel"),
        key(
            "s",
            "sort: name, city, seats, price (by currency), distance",
        ),
        key(
            "n  N",
            "measure distances from the selected space; from home",
        ),
        key("x", "clear the search and every filter"),
        key("mouse", "click selects a row; the wheel scrolls"),
        section("Filter panel"),
        key("↑↓  j k", "move"),
        key("Space Enter →", "toggle, or next value (currency, price)"),
        key("←", "previous value"),
        key("Tab  Esc", "back to the table"),
        section("Details"),
        key("↑↓ PgUp PgDn", "scroll"),
        key("[  ]", "previous, next space"),
        section("Map"),
        key("+  -", "zoom in, out (also the wheel)"),
        key("←↑↓→  h k j l", "pan"),
        key(
            "c",
            "zoom to the selected space's city (the map opens on it)",
        ),
        key("[  ]", "previous, next space"),
        key("0", "the whole world"),
        section("Audit"),
        key("Tab", "switch between roster and findings"),
        key("↑↓  [  ]", "scroll; previous, next space"),
        section("Operator (your own space)"),
        key("↑↓  j k", "choose a seat pool"),
        key("+  -", "one seat more, one less"),
        key(
            "0-9  Enter",
            "type a number: published on Enter, or after a pause",
        ),
        key("f  x", "full, closed"),
        key("e", "edit the listing (or write the first one)"),
        section("Listing form"),
        key("↑↓  Tab  Enter", "next, previous field"),
        key("type  Backspace", "edit; Ctrl-U clears the field"),
        key("Ctrl-S", "validate and save (or Enter on Save)"),
        key("Esc", "cancel; asks first when something changed"),
    ];
    lines.push(section(
        "Seats (desk pools, in opening hours, fresh figures)",
    ));
    for (symbol, _, meaning) in legend() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {symbol:<18}"), t.label()),
            Span::raw(meaning),
        ]));
    }
    lines.push(key(
        "~  dimmed",
        "stale: \"~4 free, 12 min ago\" is not free now",
    ));
    lines.push(section("Accessibility badges (Acc. column)"));
    lines.extend([
        key("W  w", "wheelchair: yes, limited (one small step)"),
        key("T", "accessible toilet"),
        key("L", "hearing loop"),
        key("Q", "quiet room"),
        key("S", "step-free entrance"),
        key("-  ?", "known to be absent, unknown"),
    ]);
    lines.push(section("Prices"));
    lines.push(key(
        "day pass ≤ 20 EUR",
        "only day passes in that currency; never converted",
    ));
    lines
}

fn help_area(app: &App) -> (Rect, Vec<Line<'static>>) {
    let lines = help_lines(app);
    let size = app.size;
    let w = 72.min(size.width.saturating_sub(2));
    let h = (u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2).min(size.height.saturating_sub(2));
    let area = Rect::new(
        size.x + (size.width - w) / 2,
        size.y + (size.height - h) / 2,
        w,
        h,
    );
    (area, lines)
}

fn help(app: &App, frame: &mut Frame, scroll: u16) {
    let (area, lines) = help_area(app);
    let block = Block::bordered()
        .title(Span::styled(" Keys ", app.theme.title()))
        .title_bottom(Span::styled(" ↑↓ scroll · Esc close ", app.theme.dim()));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(Style::new())
            .scroll((scroll, 0)),
        area,
    );
}
