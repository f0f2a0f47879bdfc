//! Snapshot tests of every view at 80x24 and 160x48, drawn on ratatui's `TestBackend` from fixed data at
//! a fixed instant with fixed keys, so the snapshots (in `src/snapshots/`) only change when the screen
//! does. Review a changed snapshot by eye before accepting it.

use crossterm::event::{Event, KeyModifiers};
use crossterm::event::{KeyCode, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use crate::app::App;
use crate::fake::FakeNode;
use crate::model::{Snapshot, Update};
use crate::testdata::{app, ctrl, key, press, typ};
use crate::theme::Theme;
use crate::ui::draw;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn render(app: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(app.size.width, app.size.height)).unwrap();
    t.draw(|f| draw(app, f)).unwrap();
    t
}

/// Snapshot the screen after `setup` at both sizes, as `{name}_{w}x{h}`.
fn check(name: &str, setup: impl Fn(&mut App, &mut FakeNode)) {
    for (w, h) in SIZES {
        let mut a = app(w, h);
        let mut node = FakeNode::new(Snapshot::default());
        setup(&mut a, &mut node);
        let t = render(&a);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

#[test]
fn spaces_table() {
    check("spaces", |_, _| {});
}

#[test]
fn spaces_search_as_you_type() {
    check("search", |a, n| {
        typ(a, n, "/lis");
    });
}

#[test]
fn spaces_filter_panel() {
    check("filters", |a, n| {
        press(a, n, key(KeyCode::Tab));
        typ(a, n, " jj  ");
        assert!(a.counts().0 < a.counts().1, "filters must narrow the list");
    });
}

#[test]
fn spaces_sorted_by_distance() {
    check("distance", |a, n| {
        typ(a, n, "n");
    });
}

#[test]
fn spaces_nothing_matches_offline() {
    check("empty_offline", |a, n| {
        let mut s = a.status().clone();
        s.online = false;
        s.attached_to_daemon = false;
        s.peers = 0;
        s.last_sync = None;
        a.update(Update::Status(s));
        typ(a, n, "/zzzz");
        press(a, n, key(KeyCode::Enter));
    });
}

#[test]
fn detail_view() {
    check("detail", |a, n| {
        press(a, n, key(KeyCode::Enter));
    });
}

#[test]
fn detail_view_scrolled() {
    check("detail_scrolled", |a, n| {
        press(a, n, key(KeyCode::Enter));
        for _ in 0..30 {
            press(a, n, key(KeyCode::Char('j')));
        }
    });
}

/// The sample's first space, revoked but kept listed, with one verified fact and one that changed since
/// it was verified, opened in the detail view; this node's own space revoked in the status bar.
fn trust_setup(a: &mut App, n: &mut FakeNode) {
    let mut s = a.status().clone();
    s.standing = Some("Azulejo Works REVOKED: unpaid dues".into());
    a.update(Update::Status(s));
    let listing = crate::testdata::listings().remove(0);
    let mut view = crate::fake::space_view(listing, 0, crate::testdata::now());
    view.revoked = Some("closed for renovation until June".into());
    a.update(Update::Space(Box::new(view)));
    typ(a, n, "/azulejo");
    press(a, n, key(KeyCode::Enter));
    press(a, n, key(KeyCode::Enter));
}

#[test]
fn detail_marks_a_revocation_and_the_status_bar_this_nodes_standing() {
    check("trust_top", trust_setup);
}

#[test]
fn detail_shows_claimed_versus_verified() {
    check("trust_facts", |a, n| {
        trust_setup(a, n);
        for _ in 0..200 {
            press(a, n, key(KeyCode::Char('j')));
        }
    });
}

#[test]
fn map_world() {
    check("map", |a, n| {
        typ(a, n, "m");
    });
}

#[test]
fn map_centred_on_city() {
    check("map_city", |a, n| {
        typ(a, n, "jjm");
        typ(a, n, "c");
    });
}

#[test]
fn audit_view() {
    check("audit", |a, n| {
        typ(a, n, "a");
    });
}

#[test]
fn operator_view() {
    check("operator", |a, n| {
        typ(a, n, "o");
    });
}

#[test]
fn operator_form_with_errors() {
    check("form", |a, n| {
        typ(a, n, "oe");
        press(a, n, ctrl('u'));
        // Down to the opening hours.
        for _ in 0..10 {
            press(a, n, key(KeyCode::Down));
        }
        press(a, n, ctrl('u'));
        typ(a, n, "Mo-Fr 8 to 6");
        press(a, n, ctrl('s'));
    });
}

#[test]
fn help_overlay() {
    check("help", |a, n| {
        typ(a, n, "?");
    });
}

#[test]
fn help_legend_explains_every_symbol() {
    check("help_legend", |a, n| {
        typ(a, n, "?");
        for _ in 0..10 {
            press(a, n, key(KeyCode::PageDown));
        }
    });
    // Every seat symbol the table or map can draw is explained in the help.
    let mut a = app(160, 48);
    let mut n = FakeNode::default();
    typ(&mut a, &mut n, "?");
    press(&mut a, &mut n, key(KeyCode::PageDown));
    press(&mut a, &mut n, key(KeyCode::PageDown));
    press(&mut a, &mut n, key(KeyCode::PageDown));
    let screen = render(&a).backend().to_string();
    for (symbol, _, meaning) in deskmesh_crdt_model::seats::legend() {
        assert!(
            screen.contains(symbol) && screen.contains(&meaning[..12]),
            "{symbol} {meaning}\n{screen}"
        );
    }
}

#[test]
fn at_80x24_name_city_open_and_seats_stay_with_the_panel_open() {
    for keys in ["", "\t", "\tjj ", "n"] {
        let mut a = app(80, 24);
        let mut n = FakeNode::default();
        for c in keys.chars() {
            let ev = if c == '\t' {
                key(KeyCode::Tab)
            } else {
                key(KeyCode::Char(c))
            };
            press(&mut a, &mut n, ev);
        }
        let screen = render(&a).backend().to_string();
        let header = screen.lines().nth(2).unwrap_or_default().to_string();
        for col in ["Name", "City", "Open", "Seats"] {
            assert!(header.contains(col), "{keys:?}: {header}");
        }
    }
}

#[test]
fn operator_view_of_a_space_without_a_listing() {
    check("operator_first", |a, n| {
        let mut s = a.status().clone();
        s.my_space = Some(crate::fake::space_id(999));
        s.my_space_name = Some("Casa Nova".into());
        a.update(Update::Status(s));
        typ(a, n, "o");
    });
}

#[test]
fn operator_first_listing_form() {
    check("form_first", |a, n| {
        let mut s = a.status().clone();
        s.my_space = Some(crate::fake::space_id(999));
        s.my_space_name = Some("Casa Nova".into());
        a.update(Update::Status(s));
        typ(a, n, "oe");
        press(a, n, ctrl('s'));
    });
}

#[test]
fn no_color_theme_paints_no_colour() {
    let mut a = App::new(
        crate::testdata::snapshot(),
        Theme::plain(),
        crate::testdata::now(),
        ratatui::layout::Rect::new(0, 0, 160, 48),
    );
    let mut n = FakeNode::default();
    for keys in ["", "m", "\r", "a", "o"] {
        for c in keys.chars() {
            let ev = if c == '\r' {
                key(KeyCode::Enter)
            } else {
                key(KeyCode::Char(c))
            };
            press(&mut a, &mut n, ev);
        }
        let t = render(&a);
        for cell in t.backend().buffer().content() {
            assert!(
                matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
                "a coloured cell {cell:?} in view {:?}",
                a.view()
            );
        }
        press(&mut a, &mut n, key(KeyCode::Esc));
    }
}

#[test]
fn coloured_theme_uses_only_the_16_named_colours() {
    let a = app(160, 48);
    let t = render(&a);
    for cell in t.backend().buffer().content() {
        for c in [cell.fg, cell.bg] {
            assert!(
                !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                "{c:?} is not one of the 16 colours"
            );
        }
    }
}

#[test]
fn mouse_click_selects_the_row_under_it() {
    let mut a = app(80, 24);
    let mut n = FakeNode::default();
    // Row 2 is the table header; rows 3.. are spaces.
    let click = |row| {
        Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    press(&mut a, &mut n, click(6));
    let expected = a.shown_names()[3].to_string();
    let t = render(&a);
    let line: String = (0..80)
        .map(|x| t.backend().buffer()[(x, 6)].symbol().to_string())
        .collect();
    assert!(line.starts_with("> "), "{line}");
    assert!(line.contains(&expected[..8]), "{line} / {expected}");
}

#[test]
fn every_view_draws_at_tiny_and_odd_sizes() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (39, 11), (81, 25), (300, 90)] {
        for keys in ["", "\t", "/x", "\r", "m", "mc+++", "a", "o", "oe", "?"] {
            let mut a = app(w, h);
            let mut n = FakeNode::default();
            for c in keys.chars() {
                let ev = match c {
                    '\r' => key(KeyCode::Enter),
                    '\t' => key(KeyCode::Tab),
                    c => key(KeyCode::Char(c)),
                };
                press(&mut a, &mut n, ev);
            }
            // Must not panic, and must leave the status bar on the last line.
            let t = render(&a);
            if h >= 5 && w >= 20 {
                let last: String = (0..w)
                    .map(|x| t.backend().buffer()[(x, h - 1)].symbol().to_string())
                    .collect();
                assert!(last.contains("Sample"), "{w}x{h} {keys:?}: {last}");
            }
        }
    }
}

/// The screen's last line (the status bar) as text.
fn last_line(a: &App) -> String {
    let t = render(a);
    let (w, h) = (a.size.width, a.size.height);
    (0..w)
        .map(|x| t.backend().buffer()[(x, h - 1)].symbol().to_string())
        .collect()
}

#[test]
fn the_status_bar_says_where_the_data_comes_from() {
    let mut a = app(160, 48);
    let mut s = a.status().clone();
    s.online = true;
    s.attached_to_daemon = true;
    a.update(crate::Update::Status(s.clone()));
    assert!(last_line(&a).contains("attached to daemon"));
    assert!(!last_line(&a).contains("OFFLINE"));
    s.online = false;
    s.daemon_stopped = true;
    a.update(crate::Update::Status(s.clone()));
    let line = last_line(&a);
    assert!(
        line.contains("OFFLINE") && line.contains("daemon stopped"),
        "{line}"
    );
    s.attached_to_daemon = false;
    s.daemon_stopped = false;
    a.update(crate::Update::Status(s));
    let line = last_line(&a);
    assert!(
        line.contains("OFFLINE") && line.contains("local store"),
        "{line}"
    );
}

/// An audit running on the node (a coordinator's `deskmesh audit`) shows in the status bar until it is done.
#[test]
fn status_bar_shows_an_audit_running() {
    let mut a = app(160, 48);
    assert!(!last_line(&a).contains("auditing"));
    a.update(crate::Update::AuditProgress {
        done: 340,
        spaces: 1000,
    });
    let line = last_line(&a);
    assert!(line.contains("auditing 340/1000 spaces"), "{line}");
    a.update(crate::Update::AuditProgress {
        done: 1000,
        spaces: 1000,
    });
    assert!(!last_line(&a).contains("auditing"));
}

#[test]
fn status_bar_counts_relayed_peers() {
    let mut a = app(160, 48);
    let mut s = a.status().clone();
    s.relayed_peers = 1;
    a.update(Update::Status(s));
    let screen = render(&a).backend().to_string();
    assert!(screen.contains("3 peers (1 relayed)"), "{screen}");
    s = a.status().clone();
    s.relayed_peers = 0;
    a.update(Update::Status(s));
    let screen = render(&a).backend().to_string();
    assert!(
        screen.contains("3 peers") && !screen.contains("relayed"),
        "{screen}"
    );
}

/// A TUI whose own node is still starting: the status bar says so (not OFFLINE, no peer count), and the
/// audit view says its findings come once the node has started instead of "none".
#[test]
fn starting_the_node() {
    let starting = |a: &mut App| {
        let status = crate::model::Status {
            starting: true,
            online: false,
            peers: 0,
            attached_to_daemon: false,
            last_sync: None,
            ..a.status().clone()
        };
        a.update(Update::Status(status));
    };
    check("starting", |a, _| starting(a));
    check("starting_audit", |a, n| {
        starting(a);
        press(a, n, key(KeyCode::Char('a')));
    });
}
