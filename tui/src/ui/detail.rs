//! The detail view: every field of the selected listing, its hours with today marked, its seat pools
//! with live status and age, accessibility in full (unknown shown as unknown) and who signed it.
//!
//! Lines are built (and wrapped) here rather than by the paragraph widget so the view knows its own
//! height and scrolling stops at the end. On wide terminals the facts and the live part sit side by side.

use deskmesh_crdt_model::listing::{for_display, Wheelchair};
use deskmesh_crdt_model::{Listing, OpenState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::max_scroll as lines_scroll;
use super::text::{count, field, known, mbps, price, words, wrap, yes_no};
use crate::app::App;
use crate::model::SpaceView;
use crate::seats::{label, pool_line, style};

/// Width from which the view uses two columns.
const TWO_COLUMNS: u16 = 110;
const PAD: usize = 18;

fn columns(body: Rect) -> Vec<Rect> {
    if body.width >= TWO_COLUMNS {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .spacing(2)
            .split(body)
            .to_vec()
    } else {
        vec![body]
    }
}

/// The columns with their lines. One column reads heading, hours and seats, facts, accessibility and
/// signers; two columns put the heading and facts on the left and the live part on the right.
fn content(app: &App, body: Rect) -> Vec<(Rect, Vec<Line<'static>>)> {
    let Some(slot) = app.selected_slot() else {
        return vec![(
            body,
            vec![Line::styled("no space selected", app.theme.dim())],
        )];
    };
    let space = &app.spaces[slot];
    let cols = columns(body);
    match cols.as_slice() {
        [left, right] => {
            let lw = usize::from(left.width);
            let rw = usize::from(right.width);
            let mut l = heading(app, space, lw);
            l.extend(facts(app, space, lw));
            let mut r = hours_and_seats(app, slot, space);
            r.extend(accessibility(app, space, rw));
            r.extend(signers(app, space));
            vec![(*left, l), (*right, r)]
        }
        _ => {
            let w = usize::from(body.width);
            let mut all = heading(app, space, w);
            all.push(Line::default());
            all.extend(hours_and_seats(app, slot, space));
            all.extend(facts(app, space, w));
            all.extend(accessibility(app, space, w));
            all.extend(signers(app, space));
            vec![(body, all)]
        }
    }
}

pub(super) fn max_scroll(app: &App, body: Rect) -> u16 {
    content(app, body)
        .iter()
        .map(|(r, lines)| lines_scroll(lines.len(), r.height))
        .max()
        .unwrap_or(0)
}

pub(super) fn draw(app: &App, frame: &mut Frame, body: Rect) {
    let max = max_scroll(app, body);
    let scroll = app.detail_scroll.min(max);
    for (area, lines) in content(app, body) {
        frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), area);
    }
}

fn section(title: &str, app: &App) -> Line<'static> {
    Line::styled(title.to_string(), app.theme.header())
}

/// The name, kind, place, id and description.
fn heading(app: &App, s: &SpaceView, width: usize) -> Vec<Line<'static>> {
    let t = app.theme;
    let l = &s.listing;
    let f = |label: &str, v: Vec<Span<'static>>| field(label, PAD, v, t);
    let mut out = vec![
        Line::styled(for_display(&l.name).into_owned(), t.title()),
        Line::styled(
            format!(
                "{} · {}, {} · {}",
                words(l.category.as_str()),
                l.location.address.city,
                l.location.address.country,
                l.id
            ),
            t.dim(),
        ),
    ];
    if let Some(why) = &s.revoked {
        out.push(Line::styled(
            format!("REVOKED by the alliance: {why}"),
            t.error(),
        ));
    }
    if !l.description.is_empty() {
        out.push(Line::default());
        out.extend(wrap(&l.description, width).into_iter().map(Line::from));
    }
    for (lang, tr) in &l.translations {
        if let Some(n) = &tr.name {
            out.push(f(&format!("name ({lang})"), vec![Span::raw(n.clone())]));
        }
    }
    out
}

/// The listing's slow-changing facts.
fn facts(app: &App, s: &SpaceView, width: usize) -> Vec<Line<'static>> {
    let t = app.theme;
    let l = &s.listing;
    let f = |label: &str, v: Vec<Span<'static>>| field(label, PAD, v, t);
    let mut out = vec![Line::default(), section("Location", app)];
    let a = &l.location.address;
    out.push(f("street", vec![known(a.street.clone(), t)]));
    out.push(f(
        "city",
        vec![Span::raw(format!(
            "{}{}, {}",
            a.postcode
                .as_deref()
                .map(|p| format!("{p} "))
                .unwrap_or_default(),
            a.city,
            a.country
        ))],
    ));
    out.push(f("floor", vec![known(l.location.level.clone(), t)]));
    out.push(f(
        "point",
        vec![Span::raw(format!(
            "{:.6}, {:.6}",
            l.location.lat, l.location.lon
        ))],
    ));
    out.push(f("time zone", vec![Span::raw(l.location.timezone.clone())]));

    out.push(Line::default());
    out.push(section("Contact", app));
    out.push(f("website", vec![known(l.contact.website.clone(), t)]));
    out.push(f("email", vec![known(l.contact.email.clone(), t)]));
    out.push(f("phone", vec![known(l.contact.phone.clone(), t)]));

    out.push(Line::default());
    out.push(section("Offers", app));
    if l.offers.is_empty() {
        out.push(Line::styled("  none listed", t.dim()));
    }
    for o in &l.offers {
        out.push(f(
            &words(o.product.as_str()),
            vec![Span::raw(format!(
                "{:<12} {}",
                price(o),
                words(o.booking.as_str())
            ))],
        ));
    }
    out.push(f(
        "coworking visa",
        vec![Span::raw(if l.reciprocity.coworking_visa {
            "accepted"
        } else {
            "not listed"
        })],
    ));
    if let Some(d) = l.reciprocity.free_days_per_visit {
        out.push(f("free days/visit", vec![Span::raw(d.to_string())]));
    }

    out.push(Line::default());
    out.push(section("Work", app));
    let net = &l.internet;
    out.push(f("wifi", vec![yes_no(net.wifi, t)]));
    out.push(f("wired", vec![yes_no(net.wired, t)]));
    let speed = match (net.down_mbps, net.up_mbps) {
        (None, None) => known(None::<String>, t),
        (d, u) => Span::raw(format!(
            "{} down / {} up Mbit/s{}",
            d.map_or("?".into(), mbps),
            u.map_or("?".into(), mbps),
            net.measured_on
                .map(|m| format!(", measured {m}"))
                .unwrap_or_default()
        )),
    };
    out.push(f("speed", vec![speed]));
    out.push(f("guest access", vec![yes_no(net.guest_access, t)]));
    out.push(f(
        "power outlets",
        vec![known(l.power.map(|p| p.as_str()), t)],
    ));
    out.push(f("noise", vec![known(l.noise.map(|n| n.as_str()), t)]));
    let amenities: Vec<String> = l
        .amenities
        .iter()
        .map(|(a, d)| match d.fee {
            Some(fee) => format!("{} ({})", words(a.as_str()), fee.as_str()),
            None => words(a.as_str()),
        })
        .collect();
    if amenities.is_empty() {
        out.push(f("amenities", vec![known(None::<String>, t)]));
    } else {
        let text = amenities.join(", ");
        let lines = wrap(&text, width.saturating_sub(PAD + 3));
        for (i, line) in lines.into_iter().enumerate() {
            let label = if i == 0 { "amenities" } else { "" };
            out.push(f(label, vec![Span::raw(line)]));
        }
    }

    out.push(Line::default());
    out.push(section("House rules", app));
    let p = &l.policies;
    out.push(f("dogs", vec![known(p.dogs.map(|d| d.as_str()), t)]));
    out.push(f("children", vec![yes_no(p.children_welcome, t)]));
    out.push(f("smoking", vec![known(p.smoking.map(|s| s.as_str()), t)]));

    out.push(Line::default());
    out.push(section("Records", app));
    out.push(f(
        "OpenStreetMap",
        vec![known(l.external_ids.osm.clone(), t)],
    ));
    out.push(f(
        "Wikidata",
        vec![known(l.external_ids.wikidata.clone(), t)],
    ));
    out.push(f("last checked", vec![known(l.provenance.check_date, t)]));
    out
}

/// Opening hours (the week, today marked) and the seat pools with their live status.
fn hours_and_seats(app: &App, slot: usize, s: &SpaceView) -> Vec<Line<'static>> {
    let t = app.theme;
    let l = &s.listing;
    let f = |label: &str, v: Vec<Span<'static>>| field(label, PAD, v, t);
    let mut out = Vec::new();

    out.push(section("Opening hours", app));
    let open = app.dir.open_state(slot, app.now);
    let state = match open {
        OpenState::Open => Span::styled("open now", t.good()),
        OpenState::Closed => Span::styled("closed now", t.bad()),
        OpenState::Unknown => Span::styled("unknown now", t.dim()),
    };
    out.push(f(
        "public",
        vec![known(l.opening_hours.clone(), t), Span::raw("  "), state],
    ));
    out.extend(week(app, l));
    out.push(f("members", vec![known(l.member_access_hours.clone(), t)]));

    out.push(Line::default());
    out.push(section("Seats", app));
    let summary = app.dir.summary(&app.spaces, slot, app.now);
    out.push(f(
        "desks now",
        vec![Span::styled(label(&summary), style(&summary, t))],
    ));
    if l.seat_pools.is_empty() {
        out.push(Line::styled("  no seat pools listed", t.dim()));
    }
    for p in &l.seat_pools {
        let now = pool_line(s.pool(&p.id), app.now);
        let accessible = p
            .accessible_capacity
            .map_or(", accessible unknown".to_string(), |a| {
                format!(", {a} accessible")
            });
        out.push(f(
            &p.id,
            vec![Span::raw(format!(
                "{}, {}{accessible}, {}",
                words(p.kind.as_str()),
                count(p.capacity, "seat", "seats"),
                words(p.access.as_str())
            ))],
        ));
        out.push(f("", vec![Span::styled(label(&now), style(&now, t))]));
    }
    out
}

/// Every accessibility fact; unknown reads "unknown", never "no".
fn accessibility(app: &App, s: &SpaceView, width: usize) -> Vec<Line<'static>> {
    let t = app.theme;
    let l = &s.listing;
    let f = |label: &str, v: Vec<Span<'static>>| field(label, PAD, v, t);
    let mut out = vec![Line::default(), section("Accessibility", app)];
    let a = &l.accessibility;
    let wheel = match a.wheelchair {
        Some(Wheelchair::Yes) => Span::styled("yes", t.good()),
        Some(Wheelchair::Limited) => Span::raw("limited (one small step at most)"),
        Some(Wheelchair::No) => Span::raw("no"),
        None => known(None::<String>, t),
    };
    out.push(f("wheelchair", vec![wheel]));
    let e = a.entrance.clone().unwrap_or_default();
    out.push(f("step-free entry", vec![yes_no(e.step_free, t)]));
    out.push(f(
        "step height",
        vec![known(e.step_height_cm.map(|c| format!("{c} cm")), t)],
    ));
    out.push(f("ramp", vec![known(e.ramp.map(|r| r.as_str()), t)]));
    out.push(f(
        "door width",
        vec![known(e.door_width_cm.map(|c| format!("{c} cm")), t)],
    ));
    out.push(f("automatic door", vec![yes_no(e.automatic_door, t)]));
    let lift = a.elevator.clone().unwrap_or_default();
    out.push(f("lift", vec![yes_no(lift.present, t)]));
    if lift.present == Some(true) {
        let cabin = match (lift.cabin_width_cm, lift.cabin_depth_cm) {
            (Some(w), Some(d)) => Some(format!("{w} x {d} cm")),
            _ => None,
        };
        out.push(f("lift cabin", vec![known(cabin, t)]));
        out.push(f("lift working", vec![yes_no(lift.working, t)]));
    }
    out.push(f(
        "accessible toilet",
        vec![yes_no(a.toilets_wheelchair, t)],
    ));
    let r = a.restroom.clone().unwrap_or_default();
    out.push(f("grab rails", vec![yes_no(r.grab_rails, t)]));
    out.push(f("all-gender", vec![yes_no(r.all_gender, t)]));
    out.push(f("changing table", vec![yes_no(r.changing_table, t)]));
    out.push(f("hearing loop", vec![yes_no(a.hearing_loop, t)]));
    out.push(f("quiet room", vec![yes_no(a.quiet_room, t)]));
    out.push(f("well lit", vec![yes_no(a.well_lit, t)]));
    out.push(f("service animals", vec![yes_no(a.service_animals, t)]));
    let desks = a.accessible_desks.clone().unwrap_or_default();
    out.push(f("accessible desks", vec![known(desks.count, t)]));
    out.push(f(
        "height-adjustable",
        vec![yes_no(desks.height_adjustable, t)],
    ));
    out.push(f(
        "accessible parking",
        vec![yes_no(a.accessible_parking, t)],
    ));
    out.push(f("tactile signage", vec![yes_no(a.tactile_signage, t)]));
    if let Some(n) = &a.notes {
        for (i, line) in wrap(n, width.saturating_sub(PAD + 3))
            .into_iter()
            .enumerate()
        {
            out.push(f(if i == 0 { "notes" } else { "" }, vec![Span::raw(line)]));
        }
    }
    out
}

/// The keys that signed the listing, and how many changes were refused.
fn signers(app: &App, s: &SpaceView) -> Vec<Line<'static>> {
    let t = app.theme;
    let f = |label: &str, v: Vec<Span<'static>>| field(label, PAD, v, t);
    let mut out = vec![Line::default(), section("Claimed or verified", app)];
    if s.facts.is_empty() {
        out.push(Line::styled(
            "  every fact is claimed by the space; no coordinator has verified any",
            t.dim(),
        ));
    }
    for fact in &s.facts {
        let v = if fact.verified {
            vec![
                Span::styled("✓ verified ", t.good()),
                Span::raw(format!("{} by {}", fact.checked_on, fact.by)),
            ]
        } else {
            vec![
                Span::styled("~ claimed: changed since verified ", t.warn()),
                Span::raw(format!("{} by {}", fact.checked_on, fact.by)),
            ]
        };
        out.push(f(&fact.fact, v));
        if !fact.note.is_empty() {
            out.push(f(
                "",
                vec![Span::styled(format!("\"{}\"", fact.note), t.dim())],
            ));
        }
    }
    out.push(Line::default());
    out.push(section("Signed by", app));
    if s.signers.is_empty() {
        out.push(Line::styled("  no signers known", t.dim()));
    }
    for sg in &s.signers {
        let mut v = vec![Span::raw(format!(
            "{}, authorised by {}",
            count(sg.changes as u64, "change", "changes"),
            sg.authorised_by.short()
        ))];
        if let Some(r) = sg.removed_by {
            v.push(Span::styled(format!(", revoked by {}", r.short()), t.bad()));
        }
        out.push(f(&sg.key.short(), v));
    }
    if !s.rejected.is_empty() {
        out.push(Line::styled(
            format!(
                "  {} (a: audit)",
                count(
                    s.rejected.len() as u64,
                    "rejected change",
                    "rejected changes"
                )
            ),
            t.warn(),
        ));
    }
    out
}

/// The week of public opening hours, today marked with `>` and highlighted.
fn week(app: &App, l: &Listing) -> Vec<Line<'static>> {
    let t = app.theme;
    match l.hours() {
        None => Vec::new(),
        Some(Err(e)) => vec![Line::styled(format!("  {e}"), t.error())],
        Some(Ok(h)) => h
            .week(app.now)
            .days
            .iter()
            .map(|d| {
                let text = format!(
                    "  {} {} {}  {}",
                    if d.today { ">" } else { " " },
                    d.day_name(),
                    d.date.format("%m-%d"),
                    d.text()
                );
                if d.today {
                    Line::styled(format!("{text}  today"), t.today())
                } else {
                    Line::from(text)
                }
            })
            .collect(),
    }
}
