//! The spaces table and the filter panel. Only the rows on screen are built: with 10,000 spaces a frame
//! costs the same as with 20.

use deskmesh_crdt_model::listing::Wheelchair;
use deskmesh_crdt_model::query::distance_km;
use deskmesh_crdt_model::{Listing, OpenState};
use ratatui::layout::{Alignment, Constraint, Position, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::text::{mbps, price};
use super::{panel_area, table_area};
use crate::app::{filter_items, App, FilterItem, Focus, SortKey};
use crate::seats;

pub(super) fn draw(app: &App, frame: &mut Frame, _body: Rect) {
    if let Some(panel) = panel_area(app) {
        draw_panel(app, frame, panel);
    }
    draw_table(app, frame, table_area(app));
}

fn draw_table(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let wide = area.width >= 120;
    let distance = app.sort == SortKey::Distance && app.point.is_some();
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(if wide { 16 } else { 10 }),
        Constraint::Length(7),
        Constraint::Length(21),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(5),
    ];
    let mut titles = vec!["Name", "City", "Open", "Seats", "Day pass", "Mbit/s", "Acc."];
    if distance {
        widths.push(Constraint::Length(8));
        titles.push("Distance");
    }
    let header = Row::new(titles.into_iter().map(|h| Cell::from(h).style(t.header())));

    let rows_on_screen = usize::from(area.height.saturating_sub(1));
    let end = (app.offset + rows_on_screen).min(app.dir.shown.len());
    let rows: Vec<Row> = app.dir.shown[app.offset.min(end)..end]
        .iter()
        .map(|&slot| row(app, slot, distance))
        .collect();

    if rows.is_empty() {
        let msg = if app.spaces.is_empty() {
            "no spaces yet: the directory fills as the node syncs with its alliance"
        } else {
            "no spaces match; x clears the search and the filters"
        };
        frame.render_widget(
            Paragraph::new(vec![Line::default(), Line::styled(msg, t.dim())]).alignment(Alignment::Center),
            area,
        );
        return;
    }
    let selected = app.cursor.checked_sub(app.offset).filter(|i| *i < rows.len());
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(if app.focus == Focus::Filters { t.normal() } else { t.selected() })
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn row(app: &App, slot: usize, distance: bool) -> Row<'static> {
    let t = app.theme;
    let space = &app.spaces[slot];
    let l = &space.listing;
    let open = app.dir.open_state(slot, app.now);
    let open_cell = match open {
        OpenState::Open => Cell::from("open").style(t.good()),
        OpenState::Closed => Cell::from("closed").style(t.dim()),
        OpenState::Unknown => Cell::from("unknown").style(t.dim()),
    };
    let summary = seats::summary(space, open, app.now);
    let seats_cell = Cell::from(format!("{} {}", summary.class.symbol(), summary.text()))
        .style(summary.class.style(t));
    let day_pass = l.day_pass().map_or_else(|| Cell::from("-").style(t.dim()), |o| Cell::from(price(o)));
    let wifi = l.internet.down_mbps.map_or_else(
        || Cell::from(Line::from("?").alignment(Alignment::Right)).style(t.dim()),
        |v| Cell::from(Line::from(mbps(v)).alignment(Alignment::Right)),
    );
    let mut cells = vec![
        Cell::from(l.name.clone()),
        Cell::from(l.location.address.city.clone()),
        open_cell,
        seats_cell,
        day_pass,
        wifi,
        Cell::from(badges(l)),
    ];
    if distance {
        if let Some((lat, lon)) = app.point {
            let km = distance_km(lat, lon, l.location.lat, l.location.lon);
            let text = if km < 10.0 { format!("{km:.1} km") } else { format!("{km:.0} km") };
            cells.push(Cell::from(Line::from(text).alignment(Alignment::Right)));
        }
    }
    Row::new(cells)
}

/// Five accessibility badges: wheelchair (W yes, w limited), accessible toilet (T), hearing loop (L),
/// quiet room (Q), step-free entrance (S); `-` where known to be absent, `?` where unknown.
pub(crate) fn badges(l: &Listing) -> String {
    let a = &l.accessibility;
    let flag = |v: Option<bool>, c: char| match v {
        Some(true) => c,
        Some(false) => '-',
        None => '?',
    };
    let wheel = match a.wheelchair {
        Some(Wheelchair::Yes) => 'W',
        Some(Wheelchair::Limited) => 'w',
        Some(Wheelchair::No) => '-',
        None => '?',
    };
    [
        wheel,
        flag(a.toilets_wheelchair, 'T'),
        flag(a.hearing_loop, 'L'),
        flag(a.quiet_room, 'Q'),
        flag(a.entrance.as_ref().and_then(|e| e.step_free), 'S'),
    ]
    .iter()
    .collect()
}

/// The first panel row that lists an item, and how many items fit.
fn panel_list(panel: Rect) -> (u16, usize) {
    (panel.y + 1, usize::from(panel.height.saturating_sub(1)))
}

/// The first item shown, so the cursor stays on screen.
fn panel_offset(cursor: usize, fit: usize) -> usize {
    (cursor + 1).saturating_sub(fit.max(1))
}

/// Which filter item is at `at`, for mouse clicks.
pub(crate) fn panel_item_at(app: &App, panel: Rect, at: Position) -> Option<usize> {
    let (top, fit) = panel_list(panel);
    let row = usize::from(at.y.checked_sub(top)?);
    let i = panel_offset(app.panel_cursor, fit) + row;
    (row < fit && i < filter_items().len()).then_some(i)
}

fn draw_panel(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let focused = app.focus == Focus::Filters;
    let block = Block::new().borders(Borders::RIGHT);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let title_style = if focused { t.title() } else { t.header() };
    let mut lines = vec![Line::styled(" Filters", title_style)];
    let items = filter_items();
    let (_, fit) = panel_list(area);
    let first = panel_offset(app.panel_cursor, fit);
    for (i, item) in items.iter().enumerate().skip(first).take(fit) {
        let on = app.filters.is_on(*item);
        let mark = if on { "[x] " } else { "[ ] " };
        let value_item = matches!(item, FilterItem::MaxPrice | FilterItem::MinWifi);
        let text = format!(
            " {mark}{}{}",
            app.filters.item_text(*item),
            if value_item { " ‹›" } else { "" }
        );
        let style = if focused && i == app.panel_cursor {
            t.selected()
        } else if on {
            t.active()
        } else {
            t.normal()
        };
        lines.push(Line::styled(text, style));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
