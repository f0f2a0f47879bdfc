//! Frame-time benchmark for the TUI with 10,000 synthetic spaces at 200x50 on ratatui's `TestBackend`:
//! the time to draw a frame in each view, and the time from a key press to the filtered table painted
//! (handle the key, re-filter and re-sort if it asks for it, draw). Prints p50, p99 and max.
//!
//! Run with `cargo run --release -p deskmesh-tui --example frame_bench` (add `-- 50000` for another
//! size). The aim is p99 under 16 ms.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use deskmesh_tui::fake::synthetic;
use deskmesh_tui::{draw, App, Theme};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn chars(s: &str) -> Vec<Event> {
    s.chars().map(|c| key(KeyCode::Char(c))).collect()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<44} n={:<5} p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms",
        samples.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let now: DateTime<Utc> = "2025-05-14T12:00:00Z".parse()?;

    let t0 = Instant::now();
    let snapshot = synthetic(n, now);
    let built = t0.elapsed();
    let t0 = Instant::now();
    let mut app = App::new(
        snapshot,
        Theme::colored(),
        now,
        Rect::new(0, 0, WIDTH, HEIGHT),
    );
    println!(
        "{n} spaces at {WIDTH}x{HEIGHT}: data built in {:.0} ms, app (index, filter, sort) in {:.0} ms",
        built.as_secs_f64() * 1000.0,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let mut term = Terminal::new(TestBackend::new(WIDTH, HEIGHT))?;

    // Warm up caches and allocations.
    for _ in 0..20 {
        term.draw(|f| draw(&app, f))?;
    }

    // Frame draw time, per view, moving the selection so rows change.
    let views: [(&str, Vec<Event>, Vec<Event>); 4] = [
        ("draw: spaces table", vec![], vec![]),
        (
            "draw: detail",
            vec![key(KeyCode::Enter)],
            vec![key(KeyCode::Esc)],
        ),
        (
            "draw: map (all spaces, world)",
            chars("m"),
            vec![key(KeyCode::Esc)],
        ),
        ("draw: audit", chars("a"), vec![key(KeyCode::Esc)]),
    ];
    for (name, enter, leave) in views {
        for e in &enter {
            app.handle(e);
        }
        let mut samples = Vec::new();
        for i in 0..300 {
            let step = if i % 50 < 25 { ']' } else { '[' };
            let e = if name.contains("table") {
                key(if i % 50 < 25 {
                    KeyCode::Down
                } else {
                    KeyCode::Up
                })
            } else {
                key(KeyCode::Char(step))
            };
            app.handle(&e);
            let t = Instant::now();
            term.draw(|f| draw(&app, f))?;
            samples.push(t.elapsed());
        }
        report(name, samples);
        for e in &leave {
            app.handle(e);
        }
    }

    // Key press to painted table: the same key sequences a member would type.
    let mut samples = Vec::new();
    let mut filter_samples = Vec::new();
    let mut search = chars("/");
    search.extend(chars("harbour 12"));
    search.extend((0..10).map(|_| key(KeyCode::Backspace)));
    search.extend(chars("lisbon"));
    search.extend((0..6).map(|_| key(KeyCode::Backspace)));
    search.push(key(KeyCode::Esc));
    let moves: Vec<Event> = (0..100)
        .map(|i| {
            key(if i % 3 == 0 {
                KeyCode::PageDown
            } else {
                KeyCode::Char('j')
            })
        })
        .collect();
    // Filters: Tab to the panel, toggle open now, seats free, price and wifi steps, back.
    let mut filters = vec![key(KeyCode::Tab)];
    for _ in 0..5 {
        filters.extend([key(KeyCode::Char(' ')), key(KeyCode::Char('j'))]);
    }
    filters.extend(chars("kkkkk"));
    for _ in 0..5 {
        filters.extend([key(KeyCode::Char(' ')), key(KeyCode::Char('j'))]);
    }
    filters.extend(chars("x"));
    filters.push(key(KeyCode::Tab));
    let sorts = chars("sssss");
    for round in 0..5 {
        for (set, e) in search
            .iter()
            .map(|e| (0, e))
            .chain(moves.iter().map(|e| (0, e)))
            .chain(filters.iter().map(|e| (1, e)))
            .chain(sorts.iter().map(|e| (1, e)))
        {
            let t = Instant::now();
            // None of these keys asks the node for anything, so there is no command to run.
            app.handle(e);
            term.draw(|f| draw(&app, f))?;
            let d = t.elapsed();
            if round > 0 {
                if set == 0 {
                    samples.push(d);
                } else {
                    filter_samples.push(d);
                }
            }
        }
    }
    report("key to painted table: search and moves", samples);
    report("key to painted table: filters and sorts", filter_samples);
    Ok(())
}
