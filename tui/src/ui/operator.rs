//! Operator mode, for this node's own space: the seat pools with their live status (set with one key),
//! and the listing form with validation errors shown under the field they concern.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use deskmesh_crdt_model::listing::for_display;

use super::text::{tail, words, wrap};
use crate::app::{App, FieldId, Form};
use crate::seats::{label, pool_line, style};

pub(super) fn draw(app: &App, frame: &mut Frame, body: Rect) {
    let t = app.theme;
    if let Some(form) = &app.form {
        let name = app
            .my_slot()
            .map(|s| app.spaces[s].listing.name.clone())
            .or_else(|| app.status.my_space_name.clone())
            .unwrap_or_default();
        draw_form(app, form, frame, body, &for_display(&name));
        return;
    }
    let Some(slot) = app.my_slot() else {
        let lines = match &app.status.my_space {
            Some(id) => vec![
                Line::styled(
                    format!(
                        " {} ({id}) has no listing yet.",
                        for_display(app.status.my_space_name.as_deref().unwrap_or("This space"))
                    ),
                    t.title(),
                ),
                Line::default(),
                Line::from(vec![
                    Span::raw(" Press "),
                    Span::styled("e", t.label()),
                    Span::raw(" to write its first one: name, address and point, hours, amenities,"),
                ]),
                Line::raw(" accessibility and seat pools; every problem is shown beside its field."),
                Line::styled(
                    " (On the command line, `deskmesh space init` writes a commented listing.toml.)",
                    t.dim(),
                ),
            ],
            None => vec![Line::styled("this node is not a space", t.dim())],
        };
        frame.render_widget(Paragraph::new(lines), body);
        return;
    };
    let space = &app.spaces[slot];
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        format!(
            " Operator · {} · {} ",
            for_display(&space.listing.name),
            space.listing.id
        ),
        t.title(),
    ));
    let inner = block.inner(body);
    frame.render_widget(block, body);
    let [pools_area, keys_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(4)]).areas(inner);

    let rows: Vec<Row> = space
        .listing
        .seat_pools
        .iter()
        .map(|p| {
            let now = pool_line(space.pool(&p.id), app.now);
            let status = match &app.typed {
                Some((pool, digits, _)) if *pool == p.id => Cell::from(format!(
                    "typing {digits}… Enter publishes it now, Esc cancels"
                ))
                .style(t.active()),
                _ => Cell::from(label(&now)).style(style(&now, t)),
            };
            Row::new(vec![
                Cell::from(p.id.clone()),
                Cell::from(words(p.kind.as_str())),
                Cell::from(p.capacity.to_string()),
                Cell::from(words(p.access.as_str())),
                status,
            ])
        })
        .collect();
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "no seat pools in the listing; add them with e",
                t.dim(),
            )),
            pools_area,
        );
    } else {
        let selected = app.pool_cursor.min(rows.len() - 1);
        let table = Table::new(
            rows,
            [
                Constraint::Length(14),
                Constraint::Length(14),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(["Pool", "Kind", "Seats", "Access", "Open now"]).style(t.header()))
        .row_highlight_style(t.selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
        let mut state = TableState::default().with_selected(Some(selected));
        frame.render_stateful_widget(table, pools_area, &mut state);
    }
    let keys = vec![
        Line::styled(
            "Signed beacons: + - f x publish at once, a typed number on Enter or a pause.",
            t.dim(),
        ),
        Line::from(vec![
            Span::styled("+ -", t.label()),
            Span::raw(" one more, one less   "),
            Span::styled("0-9", t.label()),
            Span::raw(" type a number   "),
            Span::styled("f", t.label()),
            Span::raw(" full   "),
            Span::styled("x", t.label()),
            Span::raw(" closed"),
        ]),
        Line::from(vec![
            Span::styled("e", t.label()),
            Span::raw(" edit the listing"),
        ]),
    ];
    frame.render_widget(Paragraph::new(keys), keys_area);
}

const LABEL: usize = 18;

fn draw_form(app: &App, form: &Form, frame: &mut Frame, body: Rect, name: &str) {
    let t = app.theme;
    let what = if form.first {
        "First listing"
    } else {
        "Edit listing"
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(format!(" {what} · {name} "), t.title()));
    let inner = block.inner(body);
    frame.render_widget(block, body);
    let value_width = usize::from(inner.width).saturating_sub(LABEL + 4).max(1);

    let mut lines = Vec::new();
    let mut cursor_line = 0;
    for (i, f) in FieldId::ALL.iter().enumerate() {
        let focused = form.cursor == i;
        if focused {
            cursor_line = lines.len();
        }
        let value = &form.values[i];
        let shown = if focused {
            format!("{}▏", tail(value, value_width.saturating_sub(1)))
        } else {
            value.chars().take(value_width).collect()
        };
        let marker = if focused { "> " } else { "  " };
        let label_style = if focused { t.title() } else { t.label() };
        let value_style = if focused { t.selected() } else { t.normal() };
        let mut spans = vec![
            Span::styled(format!("{marker}{:<LABEL$}", f.label()), label_style),
            Span::styled(shown, value_style),
        ];
        if value.is_empty() && !focused {
            spans.push(Span::styled("(empty)", t.dim()));
        }
        lines.push(Line::from(spans));
        if focused {
            for l in wrap(&f.help(), value_width.saturating_sub(2)) {
                lines.push(Line::styled(
                    format!("{:width$}{l}", "", width = LABEL + 4),
                    t.dim(),
                ));
            }
        }
        if let Some(e) = &form.errors[i] {
            for (j, l) in wrap(e, value_width.saturating_sub(2))
                .into_iter()
                .enumerate()
            {
                let mark = if j == 0 { "✗ " } else { "  " };
                lines.push(Line::styled(
                    format!("{:width$}{mark}{l}", "", width = LABEL + 2),
                    t.error(),
                ));
            }
        }
    }
    lines.push(Line::default());
    if form.on_save() {
        cursor_line = lines.len();
    }
    let save_style = if form.on_save() {
        t.selected()
    } else {
        t.header()
    };
    lines.push(Line::from(vec![
        Span::raw("  "),
        Span::styled("[ Save ]", save_style),
        Span::styled("  Ctrl-S saves from any field · Esc cancels", t.dim()),
    ]));
    if form.confirming {
        lines.push(Line::styled(
            "  Discard your changes? y or Esc discards, any other key keeps editing",
            t.error(),
        ));
        cursor_line = lines.len();
    }
    if let Some(g) = &form.general {
        for l in wrap(g, usize::from(inner.width).saturating_sub(4)) {
            lines.push(Line::styled(format!("  ✗ {l}"), t.error()));
        }
    }
    // Keep the focused field on screen.
    let height = usize::from(inner.height);
    let scroll = (cursor_line + 2).saturating_sub(height);
    frame.render_widget(
        Paragraph::new(lines).scroll((u16::try_from(scroll).unwrap_or(0), 0)),
        inner,
    );
}
