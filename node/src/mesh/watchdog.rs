//! A watchdog for the node's event loop: the loop notes each turn, and a thread says in the log when it has
//! not turned for [`STALL_AFTER`] (the loop's own tick turns it every second), then again when it turns.
//! A long rebuild on the loop shows up here, and so does a hang that would otherwise leave no trace: sled
//! 0.34.7 can deadlock under heavy writes (spacejam/sled#1412), freezing the loop inside a store call
//! while the process stays up and silent. The watchdog only reports; it does not restart anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the loop may go without a turn before the watchdog reports it.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// What the watchdog says at one look, given the last turn and whether it reported a stall already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Nothing to say.
    Quiet,
    /// The loop has not turned for this long (said once per stall).
    Stalled(Duration),
    /// The loop turned again after a reported stall of about this long.
    Recovered(Duration),
}

/// The watchdog's decision, kept apart from the clock and the thread so it can be tested.
pub fn look(since_turn: Duration, reported: Option<Duration>) -> Look {
    match reported {
        None if since_turn >= STALL_AFTER => Look::Stalled(since_turn),
        Some(stall) if since_turn < STALL_AFTER => Look::Recovered(stall),
        _ => Look::Quiet,
    }
}

/// The loop's side: [`Watchdog::turn`] at every turn; dropping it stops the watching thread.
#[derive(Debug)]
pub struct Watchdog {
    start: Instant,
    last_turn_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    /// Starts the watching thread (looking once a second).
    pub fn start() -> Watchdog {
        let start = Instant::now();
        let last_turn_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (last, stopped) = (Arc::clone(&last_turn_ms), Arc::clone(&stop));
        let spawned = std::thread::Builder::new()
            .name("loop watchdog".into())
            .spawn(move || {
                let mut reported: Option<Duration> = None;
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    let now = start.elapsed();
                    let turned = Duration::from_millis(last.load(Ordering::Relaxed));
                    match look(now.saturating_sub(turned), reported) {
                        Look::Quiet => {}
                        Look::Stalled(for_) => {
                            tracing::error!(seconds = for_.as_secs(), "the node's event loop has not turned for a while: a long rebuild, or a hang in the store (sled 0.34 can deadlock under heavy writes); restart the node if it does not recover");
                            reported = Some(for_);
                        }
                        Look::Recovered(stall) => {
                            tracing::warn!(after_seconds = stall.as_secs(), "the node's event loop turned again");
                            reported = None;
                        }
                    }
                    if let Some(stall) = reported.as_mut() {
                        *stall = now.saturating_sub(turned).max(*stall);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the event loop's watchdog");
        }
        Watchdog {
            start,
            last_turn_ms,
            stop,
        }
    }

    /// Notes a turn of the loop.
    pub fn turn(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_turn_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_and_its_end_once() {
        let second = Duration::from_secs(1);
        assert_eq!(look(second, None), Look::Quiet);
        assert_eq!(look(STALL_AFTER - second, None), Look::Quiet);
        assert_eq!(look(STALL_AFTER, None), Look::Stalled(STALL_AFTER));
        // Reported: quiet while it lasts, then the end is said once.
        assert_eq!(look(STALL_AFTER * 3, Some(STALL_AFTER)), Look::Quiet);
        assert_eq!(
            look(second, Some(STALL_AFTER * 3)),
            Look::Recovered(STALL_AFTER * 3)
        );
    }
}
