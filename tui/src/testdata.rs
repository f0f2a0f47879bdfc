//! Fixed test data: the sample alliance's twelve spaces with beacons, signers and a roster, seen at a
//! fixed instant, and helpers to press keys.

use chrono::{DateTime, Utc};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use deskmesh_crdt_model::Listing;
use deskmesh_keys::SpaceId;
use ratatui::layout::Rect;

use crate::app::App;
use crate::fake;
use crate::model::{NodeApi, Snapshot};
use crate::theme::Theme;

const SAMPLE: &str = include_str!("../../node/sample/alliance.json");

/// Wednesday 2025-05-14 12:00 UTC: 13:00 in Lisbon, 08:00 in Montréal, 22:00 in Melbourne.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-05-14T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) fn listings() -> Vec<Listing> {
    let all: Vec<serde_json::Value> = serde_json::from_str(SAMPLE).unwrap();
    all.into_iter()
        .map(|v| Listing::from_value(v).unwrap())
        .collect()
}

/// The operator's own space in the sample: Azulejo Works, Lisbon.
pub(crate) fn my_space() -> SpaceId {
    "sp-samplelisbonaaaa".parse().unwrap()
}

pub(crate) fn snapshot() -> Snapshot {
    let spaces: Vec<_> = listings()
        .into_iter()
        .enumerate()
        .map(|(i, l)| fake::space_view(l, i as u64, now()))
        .collect();
    let roster = fake::roster(&spaces, 12, now());
    Snapshot {
        status: fake::status(Some(my_space()), now()),
        findings: fake::findings(&spaces),
        following: 0,
        spaces,
        roster,
    }
}

pub(crate) fn app(width: u16, height: u16) -> App {
    App::new(
        snapshot(),
        Theme::colored(),
        now(),
        Rect::new(0, 0, width, height),
    )
}

pub(crate) fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub(crate) fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Press each character of `keys` as a key, running any command on `node` as the loop does.
pub(crate) fn typ(app: &mut App, node: &mut dyn NodeApi, keys: &str) {
    for c in keys.chars() {
        press(app, node, key(KeyCode::Char(c)));
    }
}

pub(crate) fn press(app: &mut App, node: &mut dyn NodeApi, event: Event) {
    crate::term::handle(app, node, &event);
}
