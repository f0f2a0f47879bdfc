//! The spaces table and the filter panel. Only the rows on screen are built: with 10,000 spaces a frame
//! costs the same as with 20.

use deskmesh_crdt_model::listing::{for_display, Wheelchair};
use deskmesh_crdt_model::query::distance_km;
use deskmesh_crdt_model::{Listing, OpenState};
use ratatui::layout::{Alignment, Constraint, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::text::{mbps, price, words};
use super::{panel_area, panel_beside, table_area};
use crate::app::{filter_items, App, FilterItem, Focus};
use crate::seats;

pub(super) fn draw(app: &App, frame: &mut Frame, _body: Rect) {
    if let Some(panel) = panel_area(app) {
        draw_panel(app, frame, panel);
    }
    draw_table(app, frame, table_area(app));
}

/// A table column. Columns are dropped from the end of [`Col::PRIORITY`] until the name has room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Name,
    City,
    Kind,
    Open,
    Seats,
    DayPass,
    Wifi,
    Noise,
    Access,
    Distance,
}

impl Col {
    /// Most important first; the name is always kept.
    const PRIORITY: [Col; 10] = [
        Col::Name,
        Col::Seats,
        Col::Open,
        Col::City,
        Col::Distance,
        Col::DayPass,
        Col::Wifi,
        Col::Access,
        Col::Kind,
        Col::Noise,
    ];
    /// Display order, left to right.
    const ORDER: [Col; 10] = [
        Col::Name,
        Col::City,
        Col::Kind,
        Col::Open,
        Col::Seats,
        Col::DayPass,
        Col::Wifi,
        Col::Noise,
        Col::Access,
        Col::Distance,
    ];

    fn title(self) -> &'static str {
        match self {
            Col::Name => "Name",
            Col::City => "City",
            Col::Kind => "Kind",
            Col::Open => "Open",
            Col::Seats => "Seats",
            Col::DayPass => "Day pass",
            Col::Wifi => "Mbit/s",
            Col::Noise => "Noise",
            Col::Access => "Acc.",
            Col::Distance => "Distance",
        }
    }

    fn width(self, wide: bool) -> u16 {
        match self {
            Col::Name => 0,
            Col::City => {
                if wide {
                    16
                } else {
                    10
                }
            }
            Col::Kind => 15,
            Col::Open => 7,
            Col::Seats => 21,
            Col::DayPass => 9,
            Col::Wifi => 6,
            Col::Noise => 8,
            Col::Access => 5,
            Col::Distance => 8,
        }
    }
}

/// The name needs at least this many columns before any other column is shown.
const MIN_NAME: u16 = 14;
/// From this table width on, the city is wider and kind and noise are shown too.
const WIDE_TABLE: u16 = 120;

/// The columns that fit in `width`, in display order.
fn columns(width: u16, distance: bool) -> Vec<Col> {
    let wide = width >= WIDE_TABLE;
    let mut keep: Vec<Col> = Col::PRIORITY
        .into_iter()
        .filter(|c| match c {
            Col::Distance => distance,
            Col::Kind | Col::Noise => wide,
            _ => true,
        })
        .collect();
    // Two columns for the highlight symbol, one space between columns.
    let room = |cols: &[Col]| {
        let fixed: u16 = cols.iter().map(|c| c.width(wide)).sum();
        let spacing = u16::try_from(cols.len())
            .unwrap_or(u16::MAX)
            .saturating_sub(1);
        width.saturating_sub(2 + fixed + spacing)
    };
    while keep.len() > 1 && room(&keep) < MIN_NAME {
        keep.pop();
    }
    Col::ORDER
        .into_iter()
        .filter(|c| keep.contains(c))
        .collect()
}

fn draw_table(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let distance = app.point.is_some();
    let cols = columns(area.width, distance);
    let wide = area.width >= WIDE_TABLE;
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| match c {
            Col::Name => Constraint::Fill(1),
            c => Constraint::Length(c.width(wide)),
        })
        .collect();
    let header = Row::new(cols.iter().map(|c| Cell::from(c.title()).style(t.header())));

    let rows_on_screen = usize::from(area.height.saturating_sub(1));
    let end = (app.offset + rows_on_screen).min(app.dir.shown.len());
    let rows: Vec<Row> = app.dir.shown[app.offset.min(end)..end]
        .iter()
        .map(|&slot| row(app, slot, &cols))
        .collect();

    if rows.is_empty() {
        let msg = if app.spaces.is_empty() {
            "no spaces yet: the directory fills as the node syncs with its alliance"
        } else {
            "no spaces match; x clears the search and the filters"
        };
        frame.render_widget(
            Paragraph::new(vec![Line::default(), Line::styled(msg, t.dim())])
                .alignment(Alignment::Center),
            area,
        );
        return;
    }
    let selected = app
        .cursor
        .checked_sub(app.offset)
        .filter(|i| *i < rows.len());
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(if app.focus == Focus::Filters {
            t.normal()
        } else {
            t.selected()
        })
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).alignment(Alignment::Right))
}

fn row(app: &App, slot: usize, cols: &[Col]) -> Row<'static> {
    let t = app.theme;
    let space = &app.spaces[slot];
    let l = &space.listing;
    let open = app.dir.open_state(slot, app.now);
    let cell = |c: &Col| match c {
        Col::Name => Cell::from(for_display(&l.name).into_owned()),
        Col::City => Cell::from(for_display(&l.location.address.city).into_owned()),
        Col::Kind => Cell::from(words(l.category.as_str())),
        Col::Open => match open {
            OpenState::Open => Cell::from("open").style(t.good()),
            OpenState::Closed => Cell::from("closed").style(t.dim()),
            OpenState::Unknown => Cell::from("unknown").style(t.dim()),
        },
        Col::Seats if space.revoked.is_some() => Cell::from("✗ revoked").style(t.error()),
        Col::Seats => {
            let summary = app.dir.summary(&app.spaces, slot, app.now);
            Cell::from(seats::label(&summary)).style(seats::style(&summary, t))
        }
        Col::DayPass => l
            .day_pass()
            .map_or_else(|| Cell::from("-").style(t.dim()), |o| Cell::from(price(o))),
        Col::Wifi => l
            .internet
            .down_mbps
            .map_or_else(|| right("?".into()).style(t.dim()), |v| right(mbps(v))),
        Col::Noise => l.noise.map_or_else(
            || Cell::from("?").style(t.dim()),
            |n| Cell::from(n.as_str()),
        ),
        Col::Access => Cell::from(badges(l)),
        Col::Distance => match app.point {
            Some((lat, lon)) => {
                let km = distance_km(lat, lon, l.location.lat, l.location.lon);
                right(if km < 1.0 {
                    format!("{:.0} m", km * 1000.0)
                } else if km < 10.0 {
                    format!("{km:.1} km")
                } else {
                    format!("{km:.0} km")
                })
            }
            None => Cell::from(""),
        },
    };
    Row::new(cols.iter().map(cell).collect::<Vec<_>>())
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
    let beside = panel_beside(app);
    let block = if beside {
        Block::new().borders(Borders::RIGHT)
    } else {
        Block::new()
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let title_style = if focused { t.title() } else { t.header() };
    let mut lines = if beside {
        vec![Line::styled(" Filters", title_style)]
    } else {
        let title = " Filters · Space toggles · Tab back ";
        let rule = "─".repeat(usize::from(area.width).saturating_sub(title.chars().count()));
        vec![Line::from(vec![
            Span::styled(title, title_style),
            Span::styled(rule, t.dim()),
        ])]
    };
    let items = filter_items();
    let (_, fit) = panel_list(area);
    let first = panel_offset(app.panel_cursor, fit);
    for (i, item) in items.iter().enumerate().skip(first).take(fit) {
        let on = app.filters.is_on(*item);
        let mark = if on { "[x] " } else { "[ ] " };
        let value_item = matches!(
            item,
            FilterItem::MaxPrice | FilterItem::MinWifi | FilterItem::Currency
        );
        let mark = if *item == FilterItem::Currency {
            "    "
        } else {
            mark
        };
        let text = format!(
            " {mark}{}{}",
            app.filters.item_text(*item, &app.prices),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_drop_by_priority_so_the_name_stays_readable() {
        let all = columns(80, false);
        assert_eq!(all.len(), 7, "{all:?}");
        let with_distance = columns(80, true);
        assert!(with_distance.contains(&Col::Distance));
        assert!(!with_distance.contains(&Col::Access), "{with_distance:?}");
        let narrow = columns(50, false);
        assert_eq!(narrow, vec![Col::Name, Col::Open, Col::Seats]);
        assert!(columns(130, false).contains(&Col::Kind));
        assert_eq!(columns(5, true), vec![Col::Name]);
    }
}
