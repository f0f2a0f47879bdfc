//! The audit view, for coordinators: the roster's operations with who signed each; every item that did not
//! count (the same findings, in the same order and number, as `deskmesh audit` prints: what, which space,
//! who signed it, which peer it came from, why); and for the selected listing the keys that signed it and
//! the facts a coordinator verified.

use deskmesh_crdt_model::listing::for_display;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::max_scroll as lines_scroll;
use super::text::{count, wrap};
use crate::app::{App, AuditPane};
use crate::seats::ago;

const SIDE_BY_SIDE: u16 = 140;

fn panes(body: Rect) -> (Rect, Rect) {
    let [a, b] = if body.width >= SIDE_BY_SIDE {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body)
    } else {
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body)
    };
    (a, b)
}

fn block(app: &App, title: String, pane: AuditPane) -> Block<'static> {
    let t = app.theme;
    let focused = app.audit_pane == pane;
    let (mark, style) = if focused {
        ("▶ ", t.title())
    } else {
        ("  ", t.header())
    };
    Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(format!("{mark}{title} "), style))
}

pub(super) fn max_scroll(app: &App, body: Rect, pane: AuditPane) -> u16 {
    let (roster, listing) = panes(body);
    match pane {
        AuditPane::Roster => lines_scroll(app.roster.len(), roster.height.saturating_sub(2)),
        AuditPane::Listing => {
            let inner = block(app, String::new(), pane).inner(listing);
            lines_scroll(
                listing_lines(app, usize::from(inner.width)).len(),
                inner.height,
            )
        }
    }
}

pub(super) fn draw(app: &App, frame: &mut Frame, body: Rect) {
    let (roster_area, listing_area) = panes(body);
    draw_roster(app, frame, roster_area);

    let name = app
        .selected_slot()
        .map_or("no space selected".to_string(), |s| {
            for_display(&app.spaces[s].listing.name).into_owned()
        });
    let b = block(
        app,
        format!("Findings · signatures of {name} ([ ] other space)"),
        AuditPane::Listing,
    );
    let inner = b.inner(listing_area);
    frame.render_widget(b, listing_area);
    let lines = listing_lines(app, usize::from(inner.width));
    let scroll = app.audit_scroll[1].min(lines_scroll(lines.len(), inner.height));
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

fn draw_roster(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme;
    let b = block(
        app,
        format!("Roster · {} operations", app.roster.len()),
        AuditPane::Roster,
    );
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if app.roster.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("no roster operations known", t.dim())),
            inner,
        );
        return;
    }
    let fit = usize::from(inner.height.saturating_sub(1));
    let scroll = usize::from(app.audit_scroll[0].min(lines_scroll(
        app.roster.len(),
        inner.height.saturating_sub(1),
    )));
    let rows: Vec<Row> = app
        .roster
        .iter()
        .skip(scroll)
        .take(fit)
        .map(|e| {
            let signed = e
                .signed_by
                .iter()
                .map(|k| k.short())
                .collect::<Vec<_>>()
                .join(" ");
            Row::new(vec![
                Cell::from(e.op.short()).style(t.dim()),
                Cell::from(e.kind.clone()).style(t.label()),
                Cell::from(e.summary.clone()),
                Cell::from(signed),
                Cell::from(e.at.map_or("-".to_string(), |at| ago(at, app.now))).style(t.dim()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(13),
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(10),
        ],
    )
    .header(Row::new(["op", "kind", "about", "signed by", "when"]).style(t.header()));
    frame.render_widget(table, inner);
}

fn listing_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let t = app.theme;
    let mut out = vec![Line::styled(
        format!("Findings ({})", app.findings.len()),
        t.header(),
    )];
    if app.status.starting {
        // The preview carries no findings: they need the roster's signatures checked.
        out.push(Line::styled("  checked once the node has started", t.dim()));
    } else if app.findings.is_empty() {
        out.push(Line::styled(
            "  none: every signature verifies and nothing was refused",
            t.good(),
        ));
    }
    let inner = width.saturating_sub(6);
    for f in &app.findings {
        let id = f
            .item
            .as_deref()
            .map(|i| format!(" {}", &i[..12.min(i.len())]))
            .unwrap_or_default();
        out.push(Line::from(vec![
            Span::styled(format!("  ✗ {} ", f.status.to_uppercase()), t.error()),
            Span::styled(format!("{}{id}", f.kind), t.label()),
        ]));
        let mut detail = |label: &str, text: &str| {
            for (i, line) in wrap(text, inner.saturating_sub(8)).into_iter().enumerate() {
                let head = if i == 0 { label } else { "" };
                out.push(Line::from(vec![
                    Span::styled(format!("    {head:<8}"), t.dim()),
                    Span::raw(line),
                ]));
            }
        };
        if let Some(space) = &f.space {
            detail("space", space);
        }
        if let Some(a) = &f.author {
            detail("signed", a);
        }
        if let Some(from) = &f.from {
            detail("from", from);
        }
        detail("why", &f.reason);
    }
    out.push(Line::default());
    let Some(slot) = app.selected_slot() else {
        return out;
    };
    let s = &app.spaces[slot];
    out.push(Line::styled(
        format!("Signers of {} ({})", s.listing.name, s.signers.len()),
        t.header(),
    ));
    if s.signers.is_empty() {
        out.push(Line::styled("  no signed changes known", t.dim()));
    }
    for sg in &s.signers {
        let mut spans = vec![
            Span::styled(format!("  {} ", sg.key.short()), t.label()),
            Span::raw(format!(
                "{} · authorised by {}",
                count(sg.changes as u64, "change", "changes"),
                sg.authorised_by.short()
            )),
        ];
        match sg.removed_by {
            Some(r) => spans.push(Span::styled(
                format!(" · revoked by {}", r.short()),
                t.bad(),
            )),
            None => spans.push(Span::styled(" · active", t.good())),
        }
        out.push(Line::from(spans));
    }
    out.push(Line::default());
    out.push(Line::styled(
        format!("Verified facts of {} ({})", s.listing.name, s.facts.len()),
        t.header(),
    ));
    if s.facts.is_empty() {
        out.push(Line::styled(
            "  none: everything is claimed by the space",
            t.dim(),
        ));
    }
    for f in &s.facts {
        let (mark, style, what) = if f.verified {
            ("✓", t.good(), "verified")
        } else {
            ("~", t.bad(), "changed since verified")
        };
        out.push(Line::from(vec![
            Span::styled(format!("  {mark} {} ", f.fact), style),
            Span::raw(format!("{what} {} by {}", f.checked_on, f.by)),
        ]));
    }
    out
}
