//! `deskmesh report`: the core's [`AllianceReport`] rendered for people who fund infrastructure — one
//! self-contained HTML page (inline CSS and SVG, no script, nothing fetched from the network) or
//! Markdown.
//!
//! The map is an SVG in an equirectangular projection: the coastline is ratatui's canvas world map
//! (drawn into an off-screen buffer with braille dots and read back, so no map data is copied into
//! deskmesh), zoomed to the region the spaces are in, with a dot per space sized by its seats.

use std::fmt::Write as _;

use deskmesh_core::report::{AllianceReport, Coverage, Tally};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::widgets::canvas::{Canvas, Map, MapResolution};
use ratatui::widgets::Widget;

/// The map's size in SVG units.
const MAP_W: f64 = 960.0;
const MAP_H: f64 = 480.0;

/// The report as one HTML page.
pub fn html(r: &AllianceReport) -> String {
    let title = title(r);
    let mut f = String::new();
    let _ = write!(
        f,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    let _ = writeln!(
        f,
        "<header><h1>{}</h1><p class=\"sub\">{} · generated {} UTC by deskmesh from the alliance's signed directory</p></header>",
        esc(&title),
        esc(&scope_text(r)),
        r.generated_at.format("%Y-%m-%d %H:%M")
    );
    // The headline figures.
    let _ = write!(f, "<section id=\"summary\" class=\"cards\">");
    for (value, label) in [
        (r.spaces.to_string(), "spaces"),
        (r.cities.to_string(), "cities"),
        (r.countries.to_string(), "countries"),
        (r.seats.total.to_string(), "seats"),
        (r.seats.desks.to_string(), "desks"),
        (
            r.seats.accessible.to_string(),
            "wheelchair-accessible seats",
        ),
    ] {
        let _ = write!(
            f,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            esc(&value),
            label
        );
    }
    f.push_str("</section>\n");

    let _ = writeln!(
        f,
        "<section id=\"map-section\"><h2>Where the spaces are</h2>{}<p class=\"note\">Each dot is a space, sized by its seats; green: seats free now, red: full, grey: unknown. Coastline: ratatui's world map.</p></section>",
        map_svg(r)
    );

    section(
        &mut f,
        "seats-by-city",
        "Seats by city",
        &bars(
            &r.seats_by_city
                .iter()
                .map(|t| (t.label.clone(), t.seats as f64, seat_note(t)))
                .collect::<Vec<_>>(),
            "#2b6cb0",
        ),
        "",
    );
    section(
        &mut f,
        "seats-by-country",
        "Seats by country",
        &bars(
            &r.seats_by_country
                .iter()
                .map(|t| (t.label.clone(), t.seats as f64, seat_note(t)))
                .collect::<Vec<_>>(),
            "#2c7a7b",
        ),
        "",
    );
    let n = &r.seats_now;
    section(
        &mut f,
        "seats-now",
        "Seats free now",
        &bars(
            &[
                ("Spaces with seats free".into(), n.spaces_free as f64, String::new()),
                ("Spaces full".into(), n.spaces_full as f64, String::new()),
                ("Spaces unknown".into(), n.spaces_unknown as f64, String::new()),
            ],
            "#38a169",
        ),
        &format!(
            "{} seats counted free in fresh seat beacons; {} pool(s) say only many or few. Pools: {} fresh, {} stale, {} closed, {} with no recent beacon.",
            n.seats_counted, n.pools_without_count, n.pools_fresh, n.pools_stale, n.pools_closed, n.pools_unknown
        ),
    );
    let h = &r.hours;
    section(
        &mut f,
        "hours",
        "Opening hours coverage",
        &bars(
            &[
                ("Open now".into(), h.open_now as f64, String::new()),
                ("Open weekday evenings (after 19:00)".into(), h.evenings as f64, String::new()),
                ("Open at weekends".into(), h.weekends as f64, String::new()),
                ("Member access 24/7".into(), h.members_24_7 as f64, String::new()),
                ("Hours unknown".into(), h.unknown as f64, String::new()),
            ],
            "#805ad5",
        ),
        &format!(
            "Of {} spaces, {} publish opening hours; evenings and weekends are read from this week's hours in each space's own time zone, public holidays applied.",
            r.spaces, h.known
        ),
    );
    section(
        &mut f,
        "accessibility",
        "Accessibility",
        &stacked(&r.accessibility),
        "Unknown means the listing does not say; it is never counted as no.",
    );
    section(
        &mut f,
        "amenities",
        "Amenities",
        &bars(
            &r.amenities
                .iter()
                .map(|t| (t.label.clone(), t.spaces as f64, String::new()))
                .collect::<Vec<_>>(),
            "#dd6b20",
        ),
        "Spaces with each amenity.",
    );
    let mut prices = String::from(
        "<table><thead><tr><th>Currency</th><th>Spaces</th><th>Lowest</th><th>Median</th><th>Highest</th></tr></thead><tbody>",
    );
    for p in &r.day_pass {
        let _ = write!(
            prices,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            esc(&p.currency),
            p.spaces,
            p.min,
            p.median,
            p.max
        );
    }
    prices.push_str("</tbody></table>");
    section(
        &mut f,
        "day-pass",
        "Day-pass prices",
        &prices,
        "Per currency, never converted.",
    );
    let v = &r.coworking_visa;
    section(
        &mut f,
        "visa",
        "Coworking Visa",
        &bars(
            &[
                (
                    "Participating".into(),
                    v.participating as f64,
                    String::new(),
                ),
                ("Not stated".into(), v.not_stated as f64, String::new()),
            ],
            "#d53f8c",
        ),
        "",
    );
    let fr = &r.freshness;
    let verification = match &r.verification {
        Some(v) => format!(
            "{} listings verified by a coordinator, {} not.",
            v.verified, v.unverified
        ),
        None => "Coordinator verification is not recorded by this version of deskmesh; every listing is signed by its own space.".into(),
    };
    section(
        &mut f,
        "freshness",
        "How fresh the data is",
        &bars(
            &[
                (
                    "Checked within 90 days".into(),
                    fr.within_90_days as f64,
                    String::new(),
                ),
                (
                    "Within a year".into(),
                    fr.within_a_year as f64,
                    String::new(),
                ),
                ("Older".into(), fr.older as f64, String::new()),
                ("Never checked".into(), fr.never as f64, String::new()),
            ],
            "#718096",
        ),
        &format!(
            "From each listing's check date (newest {}, oldest {}). {verification}",
            fr.newest.as_deref().unwrap_or("none"),
            fr.oldest.as_deref().unwrap_or("none")
        ),
    );
    f.push_str("</main>\n</body>\n</html>\n");
    f
}

fn title(r: &AllianceReport) -> String {
    match &r.alliance {
        Some(a) => format!("{a}: coworking spaces as local infrastructure"),
        None => "Coworking spaces as local infrastructure".into(),
    }
}

fn scope_text(r: &AllianceReport) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &r.scope.city {
        parts.push(format!("city {c}"));
    }
    if let Some(c) = &r.scope.country {
        parts.push(format!("country {c}"));
    }
    if parts.is_empty() {
        format!("All {} spaces in the directory", r.spaces_in_directory)
    } else {
        format!(
            "{} of {} spaces: {}",
            r.spaces,
            r.spaces_in_directory,
            parts.join(", ")
        )
    }
}

fn seat_note(t: &Tally) -> String {
    format!("{} space{}", t.spaces, if t.spaces == 1 { "" } else { "s" })
}

fn section(f: &mut String, id: &str, title: &str, body: &str, note: &str) {
    let _ = write!(f, "<section id=\"{id}\"><h2>{}</h2>{body}", esc(title));
    if !note.is_empty() {
        let _ = write!(f, "<p class=\"note\">{}</p>", esc(note));
    }
    f.push_str("</section>\n");
}

/// A horizontal bar chart: one row per `(label, value, note)`.
fn bars(rows: &[(String, f64, String)], colour: &str) -> String {
    if rows.is_empty() {
        return "<p class=\"note\">Nothing to show.</p>".into();
    }
    let row_h = 26.0;
    let label_w = 300.0;
    let bar_w = 520.0;
    let height = row_h * rows.len() as f64 + 8.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let mut s = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 960 {height}\" width=\"960\" height=\"{height}\">"
    );
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let w = (value / max * bar_w).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let _ = write!(
            s,
            "<g class=\"bar\"><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{:.0}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{colour}\"><title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{}{}</text></g>",
            label_w - 8.0,
            y + 16.0,
            esc(label),
            label_w,
            y,
            row_h - 6.0,
            esc(label),
            value,
            label_w + w + 6.0,
            y + 16.0,
            value,
            if note.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(note))
            },
        );
    }
    s.push_str("</svg>");
    s
}

/// One stacked bar per accessibility fact: yes, limited, no, unknown.
fn stacked(rows: &[Coverage]) -> String {
    let parts = [
        ("yes", "#38a169"),
        ("limited", "#d69e2e"),
        ("no", "#e53e3e"),
        ("unknown", "#a0aec0"),
    ];
    let row_h = 26.0;
    let label_w = 300.0;
    let bar_w = 520.0;
    let height = row_h * rows.len() as f64 + 34.0;
    let mut s = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 960 {height}\" width=\"960\" height=\"{height}\">"
    );
    for (i, c) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let total = (c.yes + c.limited + c.no + c.unknown).max(1) as f64;
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 16.0,
            esc(&c.label)
        );
        let mut x = label_w;
        for ((name, colour), n) in parts.iter().zip([c.yes, c.limited, c.no, c.unknown]) {
            let w = n as f64 / total * bar_w;
            if n > 0 {
                let _ = write!(
                    s,
                    "<rect class=\"{name}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{colour}\"><title>{}: {n} {name}</title></rect>",
                    row_h - 6.0,
                    esc(&c.label)
                );
                if w > 18.0 {
                    let _ = write!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"inbar\">{n}</text>",
                        x + 4.0,
                        y + 16.0
                    );
                }
            }
            x += w;
        }
    }
    let ly = row_h * rows.len() as f64 + 14.0;
    let mut lx = label_w;
    for (name, colour) in parts {
        let _ = write!(
            s,
            "<rect x=\"{lx:.0}\" y=\"{ly:.0}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"{:.0}\">{name}</text>",
            lx + 16.0,
            ly + 11.0
        );
        lx += 100.0;
    }
    s.push_str("</svg>");
    s
}

/// The region to draw: the spaces' bounding box with a margin, at least 30 by 15 degrees, in the
/// world's bounds.
fn region(r: &AllianceReport) -> (f64, f64, f64, f64) {
    if r.points.is_empty() {
        return (-180.0, 180.0, -90.0, 90.0);
    }
    let (mut w, mut e, mut s, mut n) = (180.0f64, -180.0f64, 90.0f64, -90.0f64);
    for p in &r.points {
        w = w.min(p.lon);
        e = e.max(p.lon);
        s = s.min(p.lat);
        n = n.max(p.lat);
    }
    // Keep the map's 2:1 shape: widen whichever side is short.
    let mut lon_span = ((e - w) * 1.3).max(30.0);
    let mut lat_span = ((n - s) * 1.3).max(15.0);
    if lon_span < lat_span * 2.0 {
        lon_span = lat_span * 2.0;
    } else {
        lat_span = lon_span / 2.0;
    }
    lon_span = lon_span.min(360.0);
    lat_span = lat_span.min(180.0);
    let cx = (w + e) / 2.0;
    let cy = (s + n) / 2.0;
    let west = (cx - lon_span / 2.0).clamp(-180.0, 180.0 - lon_span);
    let south = (cy - lat_span / 2.0).clamp(-90.0, 90.0 - lat_span);
    (west, west + lon_span, south, south + lat_span)
}

/// The coastline dots of ratatui's world map inside the region, as `(lon, lat)`.
fn coastline(west: f64, east: f64, south: f64, north: f64) -> Vec<(f64, f64)> {
    // Braille cells hold 2 x 4 dots: 240 x 60 cells give 480 x 240 dots, one per 2 x 2 SVG units.
    let (cols, rows) = (240u16, 60u16);
    let area = Rect::new(0, 0, cols, rows);
    let mut buf = Buffer::empty(area);
    Canvas::default()
        .marker(Marker::Braille)
        .x_bounds([west, east])
        .y_bounds([south, north])
        .paint(|ctx| {
            ctx.draw(&Map {
                resolution: MapResolution::High,
                color: Color::White,
            })
        })
        .render(area, &mut buf);
    let (dots_x, dots_y) = (f64::from(cols) * 2.0, f64::from(rows) * 4.0);
    // Braille dot bits by (column, row) within a cell.
    const BITS: [[u32; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
    let mut out = Vec::new();
    for y in 0..rows {
        for x in 0..cols {
            let Some(cell) = buf.cell((x, y)) else {
                continue;
            };
            let Some(ch) = cell.symbol().chars().next() else {
                continue;
            };
            let code = ch as u32;
            if !(0x2801..=0x28FF).contains(&code) {
                continue;
            }
            let bits = code - 0x2800;
            for (dx, column) in BITS.iter().enumerate() {
                for (dy, bit) in column.iter().enumerate() {
                    if bits & bit != 0 {
                        let px = f64::from(x) * 2.0 + dx as f64 + 0.5;
                        let py = f64::from(y) * 4.0 + dy as f64 + 0.5;
                        out.push((
                            west + px / dots_x * (east - west),
                            north - py / dots_y * (north - south),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn map_svg(r: &AllianceReport) -> String {
    let (west, east, south, north) = region(r);
    let x = |lon: f64| (lon - west) / (east - west) * MAP_W;
    let y = |lat: f64| (north - lat) / (north - south) * MAP_H;
    let mut s = format!(
        "<svg id=\"map\" role=\"img\" aria-label=\"Map of the spaces\" viewBox=\"0 0 {MAP_W} {MAP_H}\" width=\"{MAP_W}\" height=\"{MAP_H}\">\
         <rect class=\"sea\" width=\"{MAP_W}\" height=\"{MAP_H}\"/>"
    );
    // Graticule every 30 degrees (every 10 when zoomed in).
    let step = if east - west > 90.0 { 30.0 } else { 10.0 };
    let mut g = String::from("<path class=\"graticule\" d=\"");
    let mut lon = (west / step).ceil() * step;
    while lon <= east {
        let _ = write!(g, "M{:.1} 0V{MAP_H}", x(lon));
        lon += step;
    }
    let mut lat = (south / step).ceil() * step;
    while lat <= north {
        let _ = write!(g, "M0 {:.1}H{MAP_W}", y(lat));
        lat += step;
    }
    g.push_str("\"/>");
    s.push_str(&g);
    let mut coast = String::from("<path class=\"coast\" d=\"");
    for (lon, lat) in coastline(west, east, south, north) {
        let _ = write!(
            coast,
            "M{:.1} {:.1}h1.6v1.6h-1.6z",
            x(lon) - 0.8,
            y(lat) - 0.8
        );
    }
    coast.push_str("\"/>");
    s.push_str(&coast);
    let max_seats = r.points.iter().map(|p| p.seats).max().unwrap_or(1).max(1) as f64;
    for p in &r.points {
        let radius = 4.0 + 8.0 * (p.seats as f64 / max_seats).sqrt();
        let class = match p.seats_free.as_str() {
            "free" => "free",
            "full" => "full",
            _ => "unknown",
        };
        let _ = write!(
            s,
            "<circle class=\"space {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius:.1}\"><title>{} ({}, {}): {} seats, seats free now: {}</title></circle>",
            x(p.lon),
            y(p.lat),
            esc(&p.name),
            esc(&p.city),
            esc(&p.country),
            p.seats,
            esc(&p.seats_text)
        );
    }
    s.push_str("</svg>");
    s
}

/// The report as Markdown.
pub fn markdown(r: &AllianceReport) -> String {
    let mut f = String::new();
    let _ = writeln!(f, "# {}\n", title(r));
    let _ = writeln!(
        f,
        "{} · generated {} UTC by deskmesh from the alliance's signed directory\n",
        scope_text(r),
        r.generated_at.format("%Y-%m-%d %H:%M")
    );
    let _ = writeln!(
        f,
        "**{}** spaces in **{}** cities and **{}** countries; **{}** seats ({} desks, {} wheelchair accessible).\n",
        r.spaces, r.cities, r.countries, r.seats.total, r.seats.desks, r.seats.accessible
    );
    let tally = |f: &mut String, title: &str, rows: &[Tally]| {
        let _ = writeln!(f, "## {title}\n\n| | spaces | seats |\n|---|---:|---:|");
        for t in rows {
            let _ = writeln!(f, "| {} | {} | {} |", md(&t.label), t.spaces, t.seats);
        }
        f.push('\n');
    };
    tally(&mut f, "Seats by city", &r.seats_by_city);
    tally(&mut f, "Seats by country", &r.seats_by_country);
    let n = &r.seats_now;
    let _ = writeln!(
        f,
        "## Seats free now\n\n{} spaces with seats free, {} full, {} unknown; {} seats counted free in fresh beacons ({} pools say only many or few).\n",
        n.spaces_free, n.spaces_full, n.spaces_unknown, n.seats_counted, n.pools_without_count
    );
    let h = &r.hours;
    let _ = writeln!(
        f,
        "## Opening hours\n\n| | spaces |\n|---|---:|\n| open now | {} |\n| weekday evenings (after 19:00) | {} |\n| weekends | {} |\n| member access 24/7 | {} |\n| hours unknown | {} |\n",
        h.open_now, h.evenings, h.weekends, h.members_24_7, h.unknown
    );
    let _ = writeln!(
        f,
        "## Accessibility\n\nUnknown means the listing does not say; it is never counted as no.\n\n| | yes | limited | no | unknown |\n|---|---:|---:|---:|---:|"
    );
    for c in &r.accessibility {
        let _ = writeln!(
            f,
            "| {} | {} | {} | {} | {} |",
            md(&c.label),
            c.yes,
            c.limited,
            c.no,
            c.unknown
        );
    }
    let _ = writeln!(f, "\n## Amenities\n\n| | spaces |\n|---|---:|");
    for t in &r.amenities {
        let _ = writeln!(f, "| {} | {} |", md(&t.label), t.spaces);
    }
    let _ = writeln!(
        f,
        "\n## Day-pass prices\n\n| currency | spaces | lowest | median | highest |\n|---|---:|---:|---:|---:|"
    );
    for p in &r.day_pass {
        let _ = writeln!(
            f,
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            p.currency, p.spaces, p.min, p.median, p.max
        );
    }
    let _ = writeln!(
        f,
        "\n## Coworking Visa\n\n{} spaces take part; {} do not say.\n",
        r.coworking_visa.participating, r.coworking_visa.not_stated
    );
    let fr = &r.freshness;
    let _ = writeln!(
        f,
        "## How fresh the data is\n\n| checked | spaces |\n|---|---:|\n| within 90 days | {} |\n| within a year | {} |\n| older | {} |\n| never | {} |\n",
        fr.within_90_days, fr.within_a_year, fr.older, fr.never
    );
    match &r.verification {
        Some(v) => {
            let _ = writeln!(
                f,
                "{} listings verified by a coordinator, {} not.",
                v.verified, v.unverified
            );
        }
        None => {
            let _ = writeln!(f, "Coordinator verification is not recorded by this version of deskmesh; every listing is signed by its own space.");
        }
    }
    f
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn md(s: &str) -> String {
    s.replace('|', "\\|")
}

const CSS: &str = "
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a202c;background:#f7fafc}
main{max-width:1000px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.sub,.note{color:#4a5568;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:24px}.card span{color:#4a5568;font-size:13px}
section svg{max-width:100%;height:auto;background:#fff;border:1px solid #e2e8f0;border-radius:8px}
svg text{font-size:13px;fill:#2d3748}svg text.value{fill:#4a5568}svg text.inbar{fill:#fff;font-weight:600}
#map .sea{fill:#ebf4ff}#map .coast{fill:#4a5568}#map .graticule{stroke:#c3dafe;stroke-width:.6;fill:none}
#map .space{stroke:#fff;stroke-width:1.5;fill-opacity:.85}#map .free{fill:#2f855a}#map .full{fill:#c53030}#map .unknown{fill:#718096}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #e2e8f0;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
";
