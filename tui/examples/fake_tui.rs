//! The TUI on the real terminal with an in-memory node: synthetic spaces (the first is "yours", so
//! operator mode works) and a seat update every few seconds. For trying keys by hand and for checking
//! that the terminal is restored on quit, Ctrl-C and panic.
//!
//! `cargo run -p deskmesh-tui --example fake_tui [SPACES] [--panic-after N]`; `--panic-after` panics
//! inside the loop after N node polls, to see the panic hook restore the terminal first.

use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use deskmesh_crdt_model::Listing;
use deskmesh_tui::fake::{self, FakeNode};
use deskmesh_tui::{run_in_terminal, Availability, NodeApi, PoolStatus, Snapshot, Theme, Update};

/// A fake node whose seats change every three seconds, and which can be told to panic.
struct Lively {
    inner: FakeNode,
    started: Instant,
    published: u64,
    polls: u64,
    panic_after: Option<u64>,
}

impl NodeApi for Lively {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        self.inner.snapshot()
    }

    fn poll(&mut self) -> Option<Update> {
        self.polls += 1;
        if self.panic_after.is_some_and(|n| self.polls > n) {
            panic!(
                "deliberate panic after {} polls, to test terminal restore",
                self.polls - 1
            );
        }
        let due = self.started.elapsed().as_secs() / 3;
        if due <= self.published {
            return self.inner.poll();
        }
        self.published = due;
        let spaces = &self.inner.snapshot.spaces;
        let space = &spaces[(due as usize * 7) % spaces.len()];
        Some(Update::Seats {
            space: space.listing.id.clone(),
            pools: vec![PoolStatus {
                pool: "hot-desks".into(),
                availability: Availability::Count((due % 9) as u32),
                is_open: true,
                published_at: Utc::now(),
                ttl_s: 300,
            }],
        })
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        self.inner.set_seats(pool, availability)
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        self.inner.edit_listing(listing)
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut spaces = 200;
    let mut panic_after = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--panic-after" => panic_after = args.next().and_then(|n| n.parse().ok()),
            n => spaces = n.parse().unwrap_or(spaces),
        }
    }
    let mut snapshot = fake::synthetic(spaces, Utc::now());
    snapshot.status = fake::status(
        snapshot.spaces.first().map(|s| s.listing.id.clone()),
        Utc::now(),
    );
    let mut node = Lively {
        inner: FakeNode::new(snapshot),
        started: Instant::now(),
        published: 0,
        polls: 0,
        panic_after,
    };
    match run_in_terminal(&mut node, Theme::from_env(), &mut chrono::Utc::now) {
        Ok(()) => {
            println!("bye: {} seat updates published", node.inner.seats_set.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deskmesh-tui: {e}");
            ExitCode::FAILURE
        }
    }
}
