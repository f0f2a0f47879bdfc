//! The map view: shown spaces on a ratatui canvas world map, each drawn with its seat symbol (which
//! reads without colour) in its seat colour, the selected one marked `◉` with its name.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Map, MapResolution};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::App;
use std::borrow::Cow;

use deskmesh_crdt_model::listing::for_display;
use deskmesh_crdt_model::seats::legend;
use deskmesh_crdt_model::SeatsNow;

use crate::seats::{label, style};

/// At most this many spaces are labelled with their names.
const MAX_NAMED: usize = 12;

/// A distance rounded to two significant figures, for the map title.
fn round_km(km: f64) -> String {
    if km >= 100.0 {
        let magnitude = 10f64.powi(km.log10().floor() as i32 - 1);
        format!("{:.0}", (km / magnitude).round() * magnitude)
    } else if km >= 10.0 {
        format!("{km:.0}")
    } else {
        format!("{km:.1}")
    }
}

pub(super) fn draw(app: &App, frame: &mut Frame, body: Rect) {
    let t = app.theme;
    let [map_area, info] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(body);
    let (xb, yb) = app.map.bounds();

    // Precompute what to print so the paint closure only places labels.
    let in_view = |lon: f64, lat: f64| lon >= xb[0] && lon <= xb[1] && lat >= yb[0] && lat <= yb[1];
    let selected = app.selected_slot();
    let mut marks: Vec<(f64, f64, SeatsNow, Cow<str>)> = Vec::new();
    for &slot in &app.dir.shown {
        if Some(slot) == selected {
            continue;
        }
        let space = &app.spaces[slot];
        let loc = &space.listing.location;
        if in_view(loc.lon, loc.lat) {
            let class = app.dir.summary(&app.spaces, slot, app.now);
            marks.push((loc.lon, loc.lat, class, for_display(&space.listing.name)));
        }
    }
    let chosen = selected.map(|slot| {
        (
            &app.spaces[slot],
            app.dir.summary(&app.spaces, slot, app.now),
        )
    });

    // Name every space when few are in view, so a zoomed-in city reads as a street map of spaces.
    let named = app.map.zoom >= 16.0 && marks.len() <= MAX_NAMED;
    let ns = if app.map.lat < 0.0 { 'S' } else { 'N' };
    let ew = if app.map.lon < 0.0 { 'W' } else { 'E' };
    let across_km = 40_075.0 * (xb[1] - xb[0]) / 360.0 * app.map.lat.to_radians().cos();
    let title = format!(
        " Map · zoom {}x · {:.2}°{ns} {:.2}°{ew} · about {} km across ",
        app.map.zoom,
        app.map.lat.abs(),
        app.map.lon.abs(),
        round_km(across_km)
    );
    // Every symbol on the map, explained at its foot.
    let legend = Line::from(
        legend()
            .into_iter()
            .flat_map(|(symbol, word, _)| {
                [
                    Span::raw(format!(" {symbol}")),
                    Span::raw(format!(" {word} ")),
                ]
            })
            .collect::<Vec<_>>(),
    );
    // Lay labels out in cells, as the canvas will, so none is drawn over another: the selected space's
    // label first, then each other space with its name when it fits, else its symbol alone, else nothing
    // (it is under a label). With many spaces only the selected label is protected; symbols may overlap.
    let inner = Block::bordered().inner(map_area);
    let cell = |lon: f64, lat: f64| {
        let x = ((lon - xb[0]) * f64::from(inner.width.saturating_sub(1)) / (xb[1] - xb[0])) as u16;
        let y =
            ((yb[1] - lat) * f64::from(inner.height.saturating_sub(1)) / (yb[1] - yb[0])) as u16;
        (x, y)
    };
    let mut placed: Vec<(u16, u16, u16)> = Vec::new();
    let free = |placed: &[(u16, u16, u16)], y: u16, x0: u16, x1: u16| {
        placed
            .iter()
            .all(|&(py, a, b)| py != y || x1 <= a || x0 >= b)
    };
    let mut chosen_label = None;
    if let Some((space, summary)) = &chosen {
        let loc = &space.listing.location;
        if in_view(loc.lon, loc.lat) {
            let line = Line::from(vec![
                Span::styled("◉", t.selected()),
                Span::styled(
                    format!(" {} ", for_display(&space.listing.name)),
                    t.selected(),
                ),
                Span::styled(summary.symbol(), style(summary, t)),
            ]);
            let (x, y) = cell(loc.lon, loc.lat);
            placed.push((
                y,
                x,
                x.saturating_add(u16::try_from(line.width()).unwrap_or(u16::MAX)),
            ));
            chosen_label = Some((loc.lon, loc.lat, line));
        }
    }
    let mut labels: Vec<(f64, f64, Line)> = Vec::new();
    if named {
        for (lon, lat, class, name) in &marks {
            let (x, y) = cell(*lon, *lat);
            if !free(&placed, y, x, x + 1) {
                continue;
            }
            let symbol = Span::styled(class.symbol(), style(class, t));
            let text = format!(" {name}");
            let end = x.saturating_add(
                1 + u16::try_from(Span::raw(text.as_str()).width()).unwrap_or(u16::MAX),
            );
            if free(&placed, y, x, end) {
                placed.push((y, x, end));
                labels.push((*lon, *lat, Line::from(vec![symbol, Span::raw(text)])));
            } else {
                placed.push((y, x, x + 1));
                labels.push((*lon, *lat, Line::from(symbol)));
            }
        }
    } else {
        // One symbol per cell, the best news in it (a cell with any free seat shows free), so 10,000
        // spaces cost at most one label per cell.
        let (w, h) = (usize::from(inner.width), usize::from(inner.height));
        let mut grid: Vec<Option<(SeatsNow, f64, f64)>> = vec![None; w * h];
        for (lon, lat, class, _) in &marks {
            let (x, y) = cell(*lon, *lat);
            if !free(&placed, y, x, x + 1) {
                continue;
            }
            if let Some(slot) = grid.get_mut(usize::from(y) * w + usize::from(x)) {
                if slot.is_none_or(|(c, _, _)| class.rank() > c.rank()) {
                    *slot = Some((*class, *lon, *lat));
                }
            }
        }
        labels.extend(grid.into_iter().flatten().map(|(class, lon, lat)| {
            (
                lon,
                lat,
                Line::from(Span::styled(class.symbol(), style(&class, t))),
            )
        }));
    }
    if let Some(l) = chosen_label {
        labels.push(l);
    }

    let canvas = Canvas::default()
        .block(
            Block::bordered()
                .title(Span::styled(title, t.title()))
                .title_bottom(legend),
        )
        .marker(Marker::Braille)
        .x_bounds(xb)
        .y_bounds(yb)
        .paint(|ctx| {
            ctx.draw(&Map {
                color: t.map_land(),
                resolution: MapResolution::High,
            });
            ctx.layer();
            for (lon, lat, line) in &labels {
                ctx.print(*lon, *lat, line.clone());
            }
        });
    frame.render_widget(canvas, map_area);

    let line = match &chosen {
        Some((space, summary)) => {
            let l = &space.listing;
            Line::from(vec![
                Span::styled(" ◉ ", t.selected()),
                Span::styled(for_display(&l.name).into_owned(), t.title()),
                Span::raw(format!(
                    ", {}, {}  ",
                    l.location.address.city, l.location.address.country
                )),
                Span::styled(label(summary), style(summary, t)),
            ])
        }
        None => Line::styled(" no space selected", t.dim()),
    };
    frame.render_widget(Paragraph::new(line), info);
}
