//! Unit tests of [`App::handle`], [`App::update`] and [`App::tick`] against a fake node: keys, mouse,
//! live updates that must not move the selection, operator commands and the run loop itself.

use std::collections::VecDeque;
use std::time::Duration as StdDuration;

use chrono::Duration;
use crossterm::event::{Event, KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use deskmesh_crdt_model::{AccessNeed, Amenity};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

use super::*;
use crate::fake::{self, FakeNode};
use crate::model::{NodeApi, Update};
use crate::term::{run, EventSource};
use crate::testdata::{self, app, ctrl, key, my_space, now, press, typ};
use crate::theme::Theme;

fn node() -> FakeNode {
    FakeNode::new(testdata::snapshot())
}

fn selected_name(a: &App) -> String {
    a.space(a.selected().unwrap()).unwrap().listing.name.clone()
}

fn wheel(kind: MouseEventKind, row: u16) -> Event {
    Event::Mouse(MouseEvent {
        kind,
        column: 40,
        row,
        modifiers: KeyModifiers::NONE,
    })
}

#[test]
fn starts_on_the_first_space_by_name() {
    let a = app(80, 24);
    assert_eq!(a.view(), View::Spaces);
    assert_eq!(a.counts(), (12, 12));
    assert_eq!(selected_name(&a), "Atelier Mile-End");
    let names = a.shown_names();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| deskmesh_crdt_model::query::fold(n));
    assert_eq!(names, sorted);
}

#[test]
fn arrows_and_vim_keys_move_within_bounds() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "jj");
    press(&mut a, &mut n, key(KeyCode::Down));
    assert_eq!(a.cursor, 3);
    typ(&mut a, &mut n, "k");
    press(&mut a, &mut n, key(KeyCode::Up));
    assert_eq!(a.cursor, 1);
    typ(&mut a, &mut n, "G");
    assert_eq!(a.cursor, 11);
    typ(&mut a, &mut n, "j");
    assert_eq!(a.cursor, 11, "no wrap past the end");
    typ(&mut a, &mut n, "g");
    press(&mut a, &mut n, key(KeyCode::Up));
    assert_eq!(a.cursor, 0);
    assert_eq!(selected_name(&a), a.shown_names()[0]);
}

#[test]
fn search_is_incremental_and_esc_clears_it() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "/berl");
    assert_eq!(a.focus(), Focus::Search);
    assert_eq!(
        a.shown_names(),
        vec!["Bibliothek am Ufer", "Kanalwerk Coworking"]
    );
    typ(&mut a, &mut n, "q");
    assert!(!a.should_quit(), "q is text while searching");
    assert_eq!(a.counts().0, 0);
    press(&mut a, &mut n, key(KeyCode::Backspace));
    assert_eq!(a.counts().0, 2);
    press(&mut a, &mut n, key(KeyCode::Enter));
    assert_eq!(a.focus(), Focus::Table);
    assert_eq!(a.counts().0, 2, "Enter keeps the search");
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert_eq!(a.counts(), (12, 12));
    // Accents and case do not matter.
    typ(&mut a, &mut n, "/MONTREAL");
    assert_eq!(a.shown_names(), vec!["Atelier Mile-End"]);
}

#[test]
fn filter_panel_toggles_filters_and_the_count_follows() {
    let (mut a, mut n) = (app(80, 24), node());
    press(&mut a, &mut n, key(KeyCode::Tab));
    assert_eq!(a.focus(), Focus::Filters);
    typ(&mut a, &mut n, " ");
    let open_now = a.counts().0;
    assert!(open_now > 0 && open_now < 12);
    assert_eq!(a.filters.active(&a.prices), vec!["open now"]);
    for name in a.shown_names() {
        let id = a
            .dir
            .shown
            .iter()
            .find(|&&s| a.spaces[s].listing.name == name)
            .copied()
            .unwrap();
        assert_eq!(
            a.dir.open_state(id, a.now),
            deskmesh_crdt_model::OpenState::Open,
            "{name}"
        );
    }
    // Down to the wheelchair item, toggle it: only spaces known to be wheelchair accessible remain.
    typ(&mut a, &mut n, "jjjjj ");
    assert!(a.filters.access.contains(&AccessNeed::Wheelchair));
    assert!(a.counts().0 <= open_now);
    // Wifi steps up with → and back down with ←.
    a.panel_cursor = 4;
    press(&mut a, &mut n, key(KeyCode::Right));
    press(&mut a, &mut n, key(KeyCode::Right));
    assert_eq!(a.filters.min_wifi, Some(1));
    press(&mut a, &mut n, key(KeyCode::Left));
    assert_eq!(a.filters.min_wifi, Some(0));
    typ(&mut a, &mut n, "x");
    assert_eq!(a.counts(), (12, 12));
    press(&mut a, &mut n, key(KeyCode::Tab));
    assert_eq!(a.focus(), Focus::Table);
}

#[test]
fn verified_only_filters_read_only_what_a_coordinator_verified() {
    let (mut a, mut n) = (app(80, 24), node());
    // The sample's Azulejo Works (and every fifth space) has its accessibility verified; several other
    // spaces only claim wheelchair access.
    a.filters.access = vec![AccessNeed::Wheelchair];
    press(&mut a, &mut n, key(KeyCode::Tab));
    typ(&mut a, &mut n, " "); // open now on
    typ(&mut a, &mut n, " "); // and off again: a refilter with the access need
    let claimed = a.counts().0;
    assert!(claimed > 1, "{:?}", a.shown_names());
    let prices = a.prices.clone();
    a.filters.toggle(filters::Item::VerifiedOnly, &prices);
    typ(&mut a, &mut n, "  ");
    let verified = a.shown_names();
    assert!(verified.contains(&"Azulejo Works"), "{verified:?}");
    assert!(verified.len() < claimed, "{verified:?}");
    assert!(a
        .filters
        .active(&a.prices)
        .contains(&"verified facts only".to_string()));
}

#[test]
fn findings_follow_the_node() {
    let (mut a, _) = (app(80, 24), node());
    let before = a.findings.len();
    assert!(before > 0);
    a.update(Update::Findings(Vec::new()));
    assert!(a.findings.is_empty());
}

#[test]
fn amenity_filter_needs_every_chosen_amenity() {
    let (mut a, mut n) = (app(80, 24), node());
    a.filters.amenities = vec![Amenity::PhoneBooth, Amenity::Showers];
    press(&mut a, &mut n, key(KeyCode::Tab));
    typ(&mut a, &mut n, "j");
    typ(&mut a, &mut n, "k "); // toggle "open now" to trigger a refilter
    for name in a.shown_names() {
        let l = &a
            .spaces
            .iter()
            .find(|s| s.listing.name == name)
            .unwrap()
            .listing;
        assert!(
            l.amenities.contains(Amenity::PhoneBooth) && l.amenities.contains(Amenity::Showers)
        );
    }
}

#[test]
fn sort_cycles_and_keeps_the_selected_space() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "jjj");
    let chosen = a.selected().cloned();
    typ(&mut a, &mut n, "s");
    assert_eq!(a.sort(), SortKey::City);
    assert_eq!(a.selected().cloned(), chosen);
    let cities: Vec<String> = a
        .dir
        .shown
        .iter()
        .map(|&s| deskmesh_crdt_model::query::fold(&a.spaces[s].listing.location.address.city))
        .collect();
    let mut sorted = cities.clone();
    sorted.sort();
    assert_eq!(cities, sorted);
    typ(&mut a, &mut n, "s");
    assert_eq!(a.sort(), SortKey::Seats);
    typ(&mut a, &mut n, "s");
    assert_eq!(a.sort(), SortKey::Price);
    // Grouped by currency (this space's own, EUR, first), cheapest first within each: amounts in
    // different currencies are never compared.
    let prices: Vec<(String, f64)> = a
        .dir
        .shown
        .iter()
        .filter_map(|&s| {
            a.spaces[s]
                .listing
                .day_pass()
                .map(|o| (o.currency.clone(), o.price))
        })
        .collect();
    assert_eq!(prices[0].0, "EUR");
    let mut groups: Vec<&str> = prices.iter().map(|(c, _)| c.as_str()).collect();
    groups.dedup();
    let mut distinct = groups.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        groups.len(),
        distinct.len(),
        "each currency is one group: {prices:?}"
    );
    assert!(
        prices
            .windows(2)
            .all(|w| w[0].0 != w[1].0 || w[0].1 <= w[1].1),
        "{prices:?}"
    );
    // The operator's own space sets a point, so distance is in the cycle.
    typ(&mut a, &mut n, "s");
    assert_eq!(a.sort(), SortKey::Distance);
    assert_eq!(
        a.shown_names()[0],
        "Azulejo Works",
        "nearest to my own space first"
    );
    typ(&mut a, &mut n, "s");
    assert_eq!(a.sort(), SortKey::Name);
    assert_eq!(a.selected().cloned(), chosen);
}

#[test]
fn n_sorts_by_distance_from_the_selected_space() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "/kanal");
    press(&mut a, &mut n, key(KeyCode::Enter));
    press(&mut a, &mut n, key(KeyCode::Esc));
    typ(&mut a, &mut n, "n");
    assert_eq!(a.sort(), SortKey::Distance);
    assert_eq!(
        &a.shown_names()[..2],
        &["Kanalwerk Coworking", "Bibliothek am Ufer"]
    );
    typ(&mut a, &mut n, "N");
    assert_eq!(a.sort(), SortKey::Name);
}

#[test]
fn live_updates_do_not_move_the_selection() {
    // A short terminal, so the list scrolls and the row's place on screen can be checked.
    let (mut a, mut n) = (app(80, 10), node());
    typ(&mut a, &mut n, "jjjjjjjj");
    assert!(a.offset > 0);
    let chosen = a.selected().cloned().unwrap();
    let row_on_screen = a.cursor - a.offset;

    // A new space that sorts first shifts every row down by one; the selection follows its space.
    let mut l = a.space(&chosen).unwrap().listing.clone();
    l.id = fake::space_id(999);
    l.name = "AAA First Space".into();
    a.update(Update::Space(Box::new(SpaceView::new(l))));
    assert_eq!(a.selected(), Some(&chosen));
    assert_eq!(a.counts(), (13, 13));
    assert_eq!(a.shown_names()[0], "AAA First Space");
    assert_eq!(
        a.cursor - a.offset,
        row_on_screen,
        "the row keeps its place on screen"
    );

    // The selected space itself is renamed: it moves in the order, the selection goes with it.
    let mut l = a.space(&chosen).unwrap().listing.clone();
    l.name = "Zzz Renamed".into();
    let view = SpaceView {
        listing: l,
        ..a.space(&chosen).unwrap().clone()
    };
    a.update(Update::Space(Box::new(view)));
    assert_eq!(a.selected(), Some(&chosen));
    assert_eq!(a.shown_names().last(), Some(&"Zzz Renamed"));

    // Seats change under a seats sort.
    typ(&mut a, &mut n, "ss");
    assert_eq!(a.sort(), SortKey::Seats);
    let other = a.spaces[a.dir.shown[0]].listing.id.clone();
    a.update(Update::Seats {
        space: other,
        pools: vec![PoolStatus {
            pool: "hot-desks".into(),
            availability: Availability::Full,
            is_open: true,
            published_at: now(),
            ttl_s: 600,
        }],
    });
    assert_eq!(a.selected(), Some(&chosen));
}

#[test]
fn a_seat_update_shows_on_the_next_frame() {
    let mut a = app(80, 24);
    let id = my_space();
    let before = crate::seats::summary(
        a.space(&id).unwrap(),
        deskmesh_crdt_model::OpenState::Open,
        now(),
    )
    .text();
    a.update(Update::Seats {
        space: id.clone(),
        pools: vec![PoolStatus {
            pool: "hot-desks".into(),
            availability: Availability::Count(7),
            is_open: true,
            published_at: now(),
            ttl_s: 600,
        }],
    });
    let after = crate::seats::summary(
        a.space(&id).unwrap(),
        deskmesh_crdt_model::OpenState::Open,
        now(),
    )
    .text();
    assert_ne!(before, after);
    assert_eq!(after, "7 free, just now");
    // An older beacon never replaces a newer one.
    a.update(Update::Seats {
        space: id.clone(),
        pools: vec![PoolStatus {
            pool: "hot-desks".into(),
            availability: Availability::Count(1),
            is_open: true,
            published_at: now() - Duration::minutes(5),
            ttl_s: 600,
        }],
    });
    assert_eq!(
        a.space(&id)
            .unwrap()
            .pool("hot-desks")
            .unwrap()
            .availability,
        Availability::Count(7)
    );
}

#[test]
fn seats_free_filter_follows_the_clock() {
    let (mut a, mut n) = (app(80, 24), node());
    press(&mut a, &mut n, key(KeyCode::Tab));
    typ(&mut a, &mut n, "j ");
    let fresh = a.counts().0;
    assert!(fresh > 0, "some sample spaces have seats now");
    // An hour later every beacon is too old to say anything: nothing is known to have seats.
    a.tick(now() + Duration::hours(1));
    assert_eq!(a.counts().0, 0);
}

#[test]
fn views_open_and_close() {
    let (mut a, mut n) = (app(80, 24), node());
    press(&mut a, &mut n, key(KeyCode::Enter));
    assert_eq!(a.view(), View::Detail);
    typ(&mut a, &mut n, "m");
    assert_eq!(a.view(), View::Map);
    press(&mut a, &mut n, key(KeyCode::Enter));
    assert_eq!(a.view(), View::Detail);
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert_eq!(
        a.view(),
        View::Map,
        "Esc returns to where details were opened"
    );
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert_eq!(a.view(), View::Spaces);
    typ(&mut a, &mut n, "a");
    assert_eq!(a.view(), View::Audit);
    press(&mut a, &mut n, key(KeyCode::Tab));
    assert_eq!(a.audit_pane, AuditPane::Listing);
    press(&mut a, &mut n, key(KeyCode::Esc));
    typ(&mut a, &mut n, "?");
    assert!(a.help.is_some());
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert!(a.help.is_none());
    assert_eq!(a.view(), View::Spaces);
}

#[test]
fn detail_scroll_stops_at_the_end_and_brackets_change_space() {
    let (mut a, mut n) = (app(80, 24), node());
    press(&mut a, &mut n, key(KeyCode::Enter));
    for _ in 0..500 {
        typ(&mut a, &mut n, "j");
    }
    let max = crate::ui::detail_max_scroll(&a);
    assert!(max > 20, "a full listing is longer than a screen");
    assert_eq!(a.detail_scroll, max);
    typ(&mut a, &mut n, "k");
    assert_eq!(a.detail_scroll, max - 1);
    let first = selected_name(&a);
    typ(&mut a, &mut n, "]");
    assert_ne!(selected_name(&a), first);
    assert_eq!(a.detail_scroll, 0);
    typ(&mut a, &mut n, "[");
    assert_eq!(selected_name(&a), first);
}

#[test]
fn map_zooms_pans_and_centres_on_the_city() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "m");
    // The map opens on the selected space, not on the ocean at 0° 0°.
    let loc = a
        .space(a.selected().unwrap())
        .unwrap()
        .listing
        .location
        .clone();
    assert_eq!((a.map.lon, a.map.lat), (loc.lon, loc.lat));
    assert_eq!(a.map.zoom, MapState::REGION_ZOOM);
    typ(&mut a, &mut n, "0-");
    assert_eq!(a.map.zoom, 1.0, "cannot zoom out past the world");
    typ(&mut a, &mut n, "++");
    assert_eq!(a.map.zoom, 4.0);
    typ(&mut a, &mut n, "l");
    assert!(a.map.lon > 0.0);
    press(&mut a, &mut n, key(KeyCode::Up));
    assert!(a.map.lat > 0.0);
    typ(&mut a, &mut n, "c");
    let loc = a
        .space(a.selected().unwrap())
        .unwrap()
        .listing
        .location
        .clone();
    assert_eq!((a.map.lon, a.map.lat), (loc.lon, loc.lat));
    assert_eq!(a.map.zoom, MapState::CITY_ZOOM);
    let (xb, yb) = a.map.bounds();
    assert!(xb[0] < loc.lon && loc.lon < xb[1] && yb[0] < loc.lat && loc.lat < yb[1]);
    typ(&mut a, &mut n, "0");
    assert_eq!(a.map, MapState::default());
    press(&mut a, &mut n, wheel(MouseEventKind::ScrollUp, 10));
    assert_eq!(a.map.zoom, 2.0, "the wheel zooms the map");
}

#[test]
fn operator_keys_publish_seats_through_the_node() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "o");
    assert_eq!(a.view(), View::Operator);
    let current = match a
        .space(&my_space())
        .unwrap()
        .pool("hot-desks")
        .unwrap()
        .availability
    {
        Availability::Count(c) => c,
        other => panic!("sample beacon is {other:?}"),
    };
    typ(&mut a, &mut n, "+");
    typ(&mut a, &mut n, "-");
    typ(&mut a, &mut n, "-");
    typ(&mut a, &mut n, "7");
    press(&mut a, &mut n, key(KeyCode::Enter));
    typ(&mut a, &mut n, "f");
    typ(&mut a, &mut n, "jx");
    assert_eq!(
        n.seats_set,
        vec![
            ("hot-desks".into(), Availability::Count(current + 1)),
            ("hot-desks".into(), Availability::Count(current)),
            ("hot-desks".into(), Availability::Count(current - 1)),
            ("hot-desks".into(), Availability::Count(7)),
            ("hot-desks".into(), Availability::Full),
            ("booths".into(), Availability::Closed),
        ]
    );
    // The app shows what it published at once.
    let hot = a.space(&my_space()).unwrap().pool("hot-desks").unwrap();
    assert_eq!(
        (hot.availability, hot.published_at),
        (Availability::Full, now())
    );
    assert!(a
        .message
        .as_ref()
        .is_some_and(|m| !m.error && m.text.contains("booths")));
}

#[test]
fn a_digit_above_capacity_is_refused_and_node_errors_are_shown() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "ojj"); // tejo-room: one seat
    typ(&mut a, &mut n, "5");
    assert!(n.seats_set.is_empty());
    press(&mut a, &mut n, key(KeyCode::Enter));
    assert!(n.seats_set.is_empty());
    assert!(a
        .message
        .as_ref()
        .is_some_and(|m| m.error && m.text.contains("1 seats")));
    n.fail_with = Some("the daemon is not reachable".into());
    typ(&mut a, &mut n, "1");
    press(&mut a, &mut n, key(KeyCode::Enter));
    let m = a.message.clone().unwrap();
    assert!(
        m.error && m.text == "tejo-room: the daemon is not reachable",
        "{m:?}"
    );
}

#[test]
fn a_typed_number_is_published_once_after_a_pause_or_on_enter() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "o12");
    assert!(
        n.seats_set.is_empty(),
        "nothing is published digit by digit"
    );
    assert_eq!(
        a.tick(now() + Duration::milliseconds(500)),
        None,
        "still typing"
    );
    let command = a.tick(now() + Duration::milliseconds(TYPING_PAUSE_MS));
    assert_eq!(
        command,
        Some(Command::SetSeats {
            pool: "hot-desks".into(),
            availability: Availability::Count(12)
        })
    );
    assert_eq!(
        a.tick(now() + Duration::seconds(10)),
        None,
        "published once"
    );
    // Enter publishes at once; Backspace corrects; Esc drops the number.
    typ(&mut a, &mut n, "34");
    press(&mut a, &mut n, key(KeyCode::Backspace));
    press(&mut a, &mut n, key(KeyCode::Enter));
    assert_eq!(
        n.seats_set,
        vec![("hot-desks".into(), Availability::Count(3))]
    );
    typ(&mut a, &mut n, "9");
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert_eq!(a.tick(now() + Duration::seconds(60)), None);
    assert_eq!(
        a.view(),
        View::Operator,
        "Esc dropped the number, not the view"
    );
}

#[test]
fn esc_on_a_changed_form_asks_before_discarding() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "oe");
    typ(&mut a, &mut n, " II");
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert!(a.form.as_ref().is_some_and(|f| f.confirming), "asks first");
    typ(&mut a, &mut n, "n");
    assert!(
        a.form.as_ref().is_some_and(|f| !f.confirming),
        "kept editing"
    );
    press(&mut a, &mut n, key(KeyCode::Esc));
    typ(&mut a, &mut n, "y");
    assert!(a.form.is_none());
    assert!(n.edits.is_empty());
    // An unchanged form closes at once.
    typ(&mut a, &mut n, "e");
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert!(a.form.is_none());
}

#[test]
fn a_space_without_a_listing_writes_its_first_one_in_the_form() {
    let mut snap = testdata::snapshot();
    let me = fake::space_id(999);
    snap.status.my_space = Some(me.clone());
    snap.status.my_space_name = Some("Casa Nova".into());
    let mut n = FakeNode::new(snap.clone());
    let mut a = App::new(snap, Theme::plain(), now(), Rect::new(0, 0, 80, 24));
    typ(&mut a, &mut n, "o");
    assert_eq!(
        a.view(),
        View::Operator,
        "a freshly joined space is a space"
    );
    typ(&mut a, &mut n, "e");
    let f = a.form.as_ref().unwrap();
    assert!(f.first);
    let set = |a: &mut App, n: &mut FakeNode, field: FieldId, v: &str| {
        let form = a.form.as_mut().unwrap();
        form.cursor = FieldId::ALL.iter().position(|f| *f == field).unwrap();
        press(a, n, ctrl('u'));
        typ(a, n, v);
    };
    press(&mut a, &mut n, ctrl('s'));
    assert!(n.edits.is_empty(), "the place is missing");
    set(&mut a, &mut n, FieldId::City, "Porto");
    set(&mut a, &mut n, FieldId::Country, "PT");
    set(&mut a, &mut n, FieldId::Lat, "41.1496");
    set(&mut a, &mut n, FieldId::Lon, "-8.6110");
    set(&mut a, &mut n, FieldId::Timezone, "Europe/Lisbon");
    set(&mut a, &mut n, FieldId::Amenities, "coffee, printer");
    set(&mut a, &mut n, FieldId::Wheelchair, "yes");
    press(&mut a, &mut n, ctrl('s'));
    assert_eq!(n.edits.len(), 1, "{:?}", a.form.as_ref().map(|f| &f.errors));
    let l = &n.edits[0];
    assert_eq!((l.id.clone(), l.name.as_str()), (me.clone(), "Casa Nova"));
    assert!(l.amenities.contains(Amenity::Printer));
    assert_eq!(l.seat_pools[0].id, "hot-desks");
    // Now the space is listed and its pools can be set.
    assert!(a.space(&me).is_some());
    typ(&mut a, &mut n, "f");
    assert_eq!(n.seats_set, vec![("hot-desks".into(), Availability::Full)]);
}

#[test]
fn operator_mode_needs_a_space() {
    let (mut a, mut n) = (app(80, 24), node());
    let mut s = a.status().clone();
    s.my_space = None;
    a.update(Update::Status(s.clone()));
    typ(&mut a, &mut n, "o");
    assert_eq!(a.view(), View::Spaces);
    assert!(a.message.as_ref().is_some_and(|m| m.error));
    // Losing the space while in operator mode leaves it.
    s.my_space = Some(my_space());
    a.update(Update::Status(s.clone()));
    typ(&mut a, &mut n, "o");
    assert_eq!(a.view(), View::Operator);
    s.my_space = None;
    a.update(Update::Status(s));
    assert_eq!(a.view(), View::Spaces);
}

#[test]
fn form_shows_errors_in_place_then_saves_through_the_node() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "oe");
    assert!(a.form.is_some());
    press(&mut a, &mut n, ctrl('u'));
    typ(&mut a, &mut n, "q"); // typed into the name, not quit
    assert!(!a.should_quit());
    press(&mut a, &mut n, key(KeyCode::Backspace));
    press(&mut a, &mut n, ctrl('s'));
    assert!(n.edits.is_empty());
    let f = a.form.as_ref().unwrap();
    assert_eq!(f.errors[0].as_deref(), Some("must not be empty"));

    typ(&mut a, &mut n, "Azulejo Works II");
    press(&mut a, &mut n, ctrl('s'));
    assert!(a.form.is_none(), "{:?}", a.form.as_ref().map(|f| &f.errors));
    assert_eq!(n.edits.len(), 1);
    assert_eq!(n.edits[0].name, "Azulejo Works II");
    assert_eq!(
        a.space(&my_space()).unwrap().listing.name,
        "Azulejo Works II"
    );
    assert!(a.shown_names().contains(&"Azulejo Works II"));
}

#[test]
fn node_validation_errors_land_on_the_field() {
    let (mut a, mut n) = (app(80, 24), node());
    n.fail_with = Some("contact.website: \"https://x\" is refused by policy".into());
    typ(&mut a, &mut n, "oe");
    press(&mut a, &mut n, key(KeyCode::Enter));
    // Move to Save (the last item) and press Enter there.
    press(&mut a, &mut n, key(KeyCode::BackTab));
    press(&mut a, &mut n, key(KeyCode::BackTab));
    assert!(a.form.as_ref().unwrap().on_save());
    press(&mut a, &mut n, key(KeyCode::Enter));
    let f = a.form.as_ref().unwrap();
    let website = FieldId::ALL
        .iter()
        .position(|f| *f == FieldId::Website)
        .unwrap();
    assert_eq!(
        f.errors[website].as_deref(),
        Some("\"https://x\" is refused by policy")
    );
    press(&mut a, &mut n, key(KeyCode::Esc));
    assert!(a.form.is_none());
    assert_eq!(a.view(), View::Operator);
}

#[test]
fn mouse_selects_and_scrolls() {
    let (mut a, mut n) = (app(80, 24), node());
    // Body starts at row 2 with the table header; row 5 is the fourth space.
    press(
        &mut a,
        &mut n,
        Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 5,
            row: 5,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(a.cursor, 2);
    press(&mut a, &mut n, wheel(MouseEventKind::ScrollDown, 5));
    assert_eq!(a.cursor, 5);
    press(&mut a, &mut n, wheel(MouseEventKind::ScrollUp, 5));
    press(&mut a, &mut n, wheel(MouseEventKind::ScrollUp, 5));
    assert_eq!(a.cursor, 0);
}

#[test]
fn quit_keys() {
    for ev in [key(KeyCode::Char('q')), ctrl('c')] {
        let (mut a, mut n) = (app(80, 24), node());
        press(&mut a, &mut n, ev);
        assert!(a.should_quit());
    }
    // Ctrl-C quits even from a text field.
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "/abc");
    press(&mut a, &mut n, ctrl('c'));
    assert!(a.should_quit());
}

#[test]
fn resizing_keeps_the_selection_on_screen() {
    let (mut a, mut n) = (app(80, 24), node());
    typ(&mut a, &mut n, "G");
    press(&mut a, &mut n, Event::Resize(80, 8));
    let rows = a.table_rows();
    assert!(
        a.cursor >= a.offset && a.cursor < a.offset + rows,
        "{} {} {rows}",
        a.cursor,
        a.offset
    );
}

#[test]
fn ten_thousand_spaces_page_and_search() {
    let snap = fake::synthetic(10_000, now());
    let mut a = App::new(snap, crate::Theme::plain(), now(), Rect::new(0, 0, 200, 50));
    let mut n = FakeNode::default();
    assert_eq!(a.counts(), (10_000, 10_000));
    press(&mut a, &mut n, key(KeyCode::PageDown));
    press(&mut a, &mut n, key(KeyCode::PageDown));
    let rows = a.table_rows();
    assert_eq!(a.cursor, 2 * rows);
    assert!(a.cursor < a.offset + rows);
    typ(&mut a, &mut n, "/harbour 12");
    assert!(a.counts().0 > 0 && a.counts().0 < 10_000);
    for name in a.shown_names() {
        let folded = deskmesh_crdt_model::query::fold(name);
        assert!(
            folded.contains("harbour") && folded.contains("12"),
            "{name}"
        );
    }
    // A live update to one listing in a big directory adds one index row, not a rebuild.
    let id = a.selected().cloned().unwrap();
    let mut v = a.space(&id).unwrap().clone();
    v.listing.description = "renovated".into();
    a.update(Update::Space(Box::new(v)));
    assert_eq!(a.selected(), Some(&id));
}

/// Scripted terminal events for the loop: `None` ends a turn; when the script runs out it presses
/// Ctrl-C, so a test can never hang.
struct Script(VecDeque<Option<Event>>);

impl EventSource for Script {
    fn next(&mut self, _timeout: StdDuration) -> std::io::Result<Option<Event>> {
        Ok(self.0.pop_front().unwrap_or_else(|| Some(ctrl('c'))))
    }
}

#[test]
fn the_loop_applies_node_updates_runs_commands_and_quits() {
    let mut n = node();
    n.updates.push_back(Update::Seats {
        space: my_space(),
        pools: vec![PoolStatus {
            pool: "booths".into(),
            availability: Availability::Count(3),
            is_open: true,
            published_at: now(),
            ttl_s: 600,
        }],
    });
    let mut a = App::new(
        n.snapshot().unwrap(),
        crate::Theme::plain(),
        now(),
        Rect::new(0, 0, 1, 1),
    );
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut events = Script(
        [
            Some(key(KeyCode::Char('o'))),
            Some(key(KeyCode::Char('j'))),
            None,
            Some(key(KeyCode::Char('j'))),
            Some(key(KeyCode::Char('1'))),
            Some(key(KeyCode::Enter)),
            None,
            Some(key(KeyCode::Char('q'))),
        ]
        .into(),
    );
    run(&mut term, &mut a, &mut n, &mut events, &mut now).unwrap();
    assert!(a.should_quit());
    assert!(
        events.0.is_empty(),
        "q ended the loop, not the Ctrl-C fallback"
    );
    assert_eq!(
        a.size,
        Rect::new(0, 0, 80, 24),
        "the loop takes the terminal's size"
    );
    assert_eq!(
        a.space(&my_space())
            .unwrap()
            .pool("booths")
            .unwrap()
            .availability,
        Availability::Count(3)
    );
    assert_eq!(
        n.seats_set,
        vec![("tejo-room".to_string(), Availability::Count(1))]
    );
    let screen = term.backend().to_string();
    assert!(screen.contains("3 free, just now"), "{screen}");
}

/// An attach opens on the first screenful and says the rest is loading; pages fill the table in without
/// moving the selection, and the header count ends on the whole directory.
#[test]
fn pages_fill_the_directory_in_without_moving_the_selection() {
    let mut whole = testdata::snapshot();
    whole
        .spaces
        .sort_by_key(|s| deskmesh_crdt_model::query::fold(&s.listing.name));
    let rest = whole.spaces.split_off(4);
    whole.following = rest.len();
    let mut a = App::new(whole, Theme::plain(), now(), Rect::new(0, 0, 120, 32));
    assert_eq!(a.counts(), (4, 4));
    assert_eq!(a.loading(), 8);
    let mut n = node();
    typ(&mut a, &mut n, "j");
    let selected = selected_name(&a);
    let header = |a: &App| {
        let mut t = Terminal::new(TestBackend::new(120, 32)).unwrap();
        t.draw(|f| crate::draw(a, f)).unwrap();
        let b = t.backend().buffer();
        (0..b.area.width)
            .map(|x| b[(x, 0)].symbol().to_string())
            .collect::<String>()
    };
    assert!(
        header(&a).contains("4 of 4 spaces · 8 loading · by name"),
        "{}",
        header(&a)
    );

    let mut pages = rest.chunks(5);
    let first = pages.next().unwrap().to_vec();
    a.update(Update::Spaces {
        spaces: first,
        left: 3,
    });
    assert_eq!(a.counts(), (9, 9));
    assert_eq!(a.loading(), 3);
    assert_eq!(selected_name(&a), selected);
    a.update(Update::Spaces {
        spaces: pages.next().unwrap().to_vec(),
        left: 0,
    });
    assert_eq!(a.counts(), (12, 12));
    assert_eq!(a.loading(), 0);
    assert_eq!(selected_name(&a), selected);
    assert!(
        header(&a).contains("12 of 12 spaces · by name"),
        "{}",
        header(&a)
    );
    // The same order as a whole snapshot gives.
    let b = app(120, 32);
    assert_eq!(a.shown_names(), b.shown_names());
}
