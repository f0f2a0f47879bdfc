//! End-to-end test of `deskmesh tui`: the real binary in a real terminal (tmux), driven with send-keys
//! and read with capture-pane. Waits poll the screen with a deadline; nothing sleeps for a fixed time to
//! synchronise.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use deskmesh_integration::{deskmesh_bin, TestNode};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("run tmux");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Whether tmux runs here. `.ci/run` installs it; a developer machine without it skips the test that
/// asks, loudly.
fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        eprintln!("skipping: tmux is not installed");
    }
    found
}

/// Polls the pane until `pred` holds or the deadline passes; returns the last screen.
fn wait_screen(session: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if pred(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Session(String);

impl Session {
    /// Runs `script` with `sh -c` in a detached 120x32 tmux session of this name.
    fn start(&self, script: &str) {
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &self.0,
            "-x",
            "120",
            "-y",
            "32",
            "sh",
            "-c",
            script,
        ]);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn search_shows_the_right_rows_and_q_restores_the_terminal() {
    if !tmux_available() {
        return;
    }
    let node = TestNode::new();
    node.ok(&["demo", "--setup-only"]);
    let session = Session(format!("dm-tui-{}", std::process::id()));
    let socket_dir = tempfile::tempdir().unwrap();
    let marker = socket_dir.path().join("exited");
    // After the UI exits, the shell prints the terminal mode so the test can check it was restored.
    let script = format!(
        "{} --home {} tui --offline; stty -a | grep -o -- '-\\?icanon' > {}; sleep 30",
        deskmesh_bin().display(),
        node.home().display(),
        marker.display()
    );
    session.start(&script);
    // Offline, from the local store, and the status bar says so.
    wait_screen(&session.0, "the directory", |s| {
        s.contains("12 of 12 spaces") && s.contains("OFFLINE") && s.contains("local store")
    });
    tmux(&["send-keys", "-t", &session.0, "/"]);
    tmux(&["send-keys", "-t", &session.0, "-l", "berlin"]);
    let screen = wait_screen(&session.0, "the search result", |s| {
        s.contains(" 2 of 12 spaces")
    });
    assert!(screen.contains("Kanalwerk Coworking"), "{screen}");
    assert!(!screen.contains("Azulejo Works"), "{screen}");
    tmux(&["send-keys", "-t", &session.0, "Escape"]);
    // Escape and q sent together read as Alt-q: wait until the search box has closed.
    wait_screen(&session.0, "the search box closed", |s| {
        s.contains("/ search")
    });
    tmux(&["send-keys", "-t", &session.0, "q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() || std::fs::read_to_string(&marker).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the UI did not exit on q");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Canonical mode back on means raw mode was left.
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "icanon");
}

/// The sample listing named `name`: (first pool id, its capacity).
fn sample_pool(name: &str) -> (String, u64) {
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../../node/sample/alliance.json")).unwrap();
    let listing = sample
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the sample"));
    let pool = &listing["seat_pools"][0];
    (
        pool["id"].as_str().unwrap().to_string(),
        pool["capacity"].as_u64().unwrap(),
    )
}

#[test]
fn demo_opens_on_a_member_and_a_seat_update_elsewhere_appears_live() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo");
    let session = Session(format!("dm-demo-{}", std::process::id()));
    let script = format!(
        "{} --home {} demo --seat-changes 0; sleep 30",
        deskmesh_bin().display(),
        home.display()
    );
    session.start(&script);
    // The member starts with the roster only: all twelve listings arrive over the mesh.
    wait_screen(&session.0, "the member's directory, replicated", |s| {
        s.contains("12 of 12 spaces")
            && s.contains("attached to daemon")
            && s.contains("Member laptop")
    });

    // One of the space nodes the demo runs, and a seat count its first pool does not show yet.
    let nodes = home.join("demo").join("nodes");
    let space_home = std::fs::read_dir(&nodes)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("member"))
        .min()
        .expect("a space node");
    let config = std::fs::read_to_string(space_home.join("node.toml")).unwrap();
    let name = config
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (pool, capacity) = sample_pool(&name);

    tmux(&["send-keys", "-t", &session.0, "/"]);
    tmux(&["send-keys", "-t", &session.0, "-l", &name]);
    tmux(&["send-keys", "-t", &session.0, "Enter"]);
    tmux(&["send-keys", "-t", &session.0, "Enter"]);
    let before = wait_screen(&session.0, "the space's detail view", |s| {
        s.contains(&pool) && s.contains(&name)
    });
    let count = (1..=capacity)
        .rev()
        .find(|n| !before.contains(&format!(" {n} free")))
        .unwrap();

    // The update goes through the space node's control socket, then over the mesh to the member.
    let out = Command::new(deskmesh_bin())
        .args(["--home", space_home.to_str().unwrap()])
        .args(["seats", "set", "--pool", &pool, &count.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_screen(
        &session.0,
        "the new seat count on the member's screen",
        |s| s.contains(&format!(" {count} free")),
    );

    tmux(&["send-keys", "-t", &session.0, "q"]);
    wait_screen(&session.0, "the demo stopping its nodes", |s| {
        s.contains("The demo's nodes stopped")
    });
}

#[test]
fn tui_attaches_to_a_running_node_notices_it_stop_and_reconnects() {
    if !tmux_available() {
        return;
    }
    let node = TestNode::new();
    node.ok(&["demo", "--setup-only"]);
    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"];
    let daemon = deskmesh_integration::daemon::start(&node, &listen);
    let session = Session(format!("dm-attach-{}", std::process::id()));
    let script = format!(
        "{} --home {} tui; sleep 30",
        deskmesh_bin().display(),
        node.home().display()
    );
    session.start(&script);
    wait_screen(&session.0, "the directory through the daemon", |s| {
        s.contains("12 of 12 spaces") && s.contains("attached to daemon")
    });
    drop(daemon);
    wait_screen(
        &session.0,
        "the status bar saying the daemon stopped",
        |s| s.contains("daemon stopped") && s.contains("12 of 12 spaces"),
    );
    let _again = deskmesh_integration::daemon::start(&node, &listen);
    wait_screen(&session.0, "the TUI attached again", |s| {
        s.contains("attached to daemon") && !s.contains("daemon stopped")
    });
    tmux(&["send-keys", "-t", &session.0, "q"]);
}

/// With no daemon, the TUI draws the store's first screen while it starts a node of its own, then
/// attaches to that node; quitting stops the node and frees the store.
#[test]
fn tui_without_a_daemon_draws_the_store_then_attaches_its_own_node() {
    if !tmux_available() {
        return;
    }
    let node = TestNode::new();
    node.ok(&["demo", "--setup-only"]);
    // A whole list keeps the rows the first screen is read from.
    node.ok(&["spaces", "list"]);
    let session = Session(format!("dm-start-{}", std::process::id()));
    let script = format!(
        "{} --home {} tui; echo TUI-EXIT=$?; sleep 30",
        deskmesh_bin().display(),
        node.home().display()
    );
    session.start(&script);
    wait_screen(&session.0, "the directory from the TUI's own node", |s| {
        s.contains("12 of 12 spaces") && s.contains("attached to daemon")
    });
    let log = std::fs::read_to_string(node.home().join("tui.log")).unwrap();
    assert!(
        log.contains("first screen while the node starts"),
        "the TUI did not draw from the store first:\n{log}"
    );
    tmux(&["send-keys", "-t", &session.0, "q"]);
    wait_screen(&session.0, "the TUI ending cleanly", |s| {
        s.contains("TUI-EXIT=0")
    });
    // The node it started stopped with it: a command opens the store itself.
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["running"], false, "{status}");
}

/// The names of the sample spaces.
fn sample_names() -> Vec<String> {
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../../node/sample/alliance.json")).unwrap();
    sample
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

/// Issue 11: `spaces list --seats-free` and the TUI's "seats free now" filter name the same spaces, read
/// from the same demo directory at several clock times (fixed with the `DESKMESH_TEST_NOW` test clock):
/// fresh, stale and expired figures, and spaces closed by their hours.
#[test]
fn the_command_line_and_the_tui_agree_on_seats_free_now_at_several_times() {
    if !tmux_available() {
        return;
    }
    let node = TestNode::new();
    // Wednesday 2025-05-14 12:00 UTC: the demo's beacons are 0 to 20 minutes old, with a 15-minute ttl.
    let setup = "2025-05-14T12:00:00Z";
    let out = node
        .cmd(&["demo", "--setup-only"])
        .env("DESKMESH_TEST_NOW", setup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = sample_names();
    let mut seen_counts = Vec::new();
    for (i, at) in [
        "2025-05-14T12:00:00Z", // fresh figures; Montréal, Melbourne, Kyoto and Mexico City closed
        "2025-05-14T12:09:00Z", // the older figures turn stale
        "2025-05-14T12:14:30Z", // most figures stale, none yet unknown
        "2025-05-14T12:40:00Z", // every figure too old: nothing is free
    ]
    .into_iter()
    .enumerate()
    {
        let cli = node
            .cmd(&["spaces", "list", "--seats-free", "--json"])
            .env("DESKMESH_TEST_NOW", at)
            .output()
            .unwrap();
        assert!(
            cli.status.success(),
            "{}",
            String::from_utf8_lossy(&cli.stderr)
        );
        let dir: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
        let mut cli_names: Vec<String> = dir["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["seats_free"], true, "{r}");
                assert_eq!(r["seats_now"]["state"], "free", "{r}");
                r["name"].as_str().unwrap().to_string()
            })
            .collect();
        cli_names.sort();

        let session = Session(format!("dm-agree-{}-{i}", std::process::id()));
        let marker_dir = tempfile::tempdir().unwrap();
        let marker = marker_dir.path().join("exited");
        session.start(&format!(
            "DESKMESH_TEST_NOW={at} {} --home {} tui --offline; touch {}; sleep 30",
            deskmesh_bin().display(),
            node.home().display(),
            marker.display()
        ));
        wait_screen(&session.0, "the directory", |s| {
            s.contains("12 of 12 spaces")
        });
        // Tab to the filter panel, down to "seats free now", toggle it, back to the table.
        tmux(&["send-keys", "-t", &session.0, "Tab"]);
        tmux(&["send-keys", "-t", &session.0, "j"]);
        tmux(&["send-keys", "-t", &session.0, "Space"]);
        tmux(&["send-keys", "-t", &session.0, "Tab"]);
        let expected = format!(" {} of 12 spaces", cli_names.len());
        // The header can be captured before the table below it is redrawn, so the wait also asks for
        // as many names on screen as the header counts; a TUI that disagrees still fails, at the wait.
        let screen = wait_screen(&session.0, "the seats-free filter", |s| {
            s.contains("filters: seats free now")
                && s.contains(&expected)
                && names.iter().filter(|n| s.contains(n.as_str())).count() == cli_names.len()
        });
        let mut tui_names: Vec<String> = names
            .iter()
            .filter(|n| screen.contains(n.as_str()))
            .cloned()
            .collect();
        tui_names.sort();
        assert_eq!(tui_names, cli_names, "at {at}; the TUI showed:\n{screen}");
        seen_counts.push(cli_names.len());

        tmux(&["send-keys", "-t", &session.0, "q"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the UI did not exit on q");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("spaces with seats free now at each time: {seen_counts:?}");
    // The times were chosen so the answer changes: some spaces free at first, fewer as figures age,
    // none once every figure is too old.
    assert!(seen_counts[0] > 0 && seen_counts[0] < 12, "{seen_counts:?}");
    assert!(
        seen_counts.windows(2).all(|w| w[0] >= w[1]),
        "{seen_counts:?}"
    );
    assert!(seen_counts[0] > seen_counts[2], "{seen_counts:?}");
    assert_eq!(seen_counts[3], 0, "{seen_counts:?}");
}

/// The demo alliance's coordinator home with its daemon running, and a client of the daemon's socket.
fn demo_daemon() -> (
    TestNode,
    deskmesh_integration::daemon::Daemon,
    deskmesh_node::control::Remote,
) {
    let node = TestNode::new();
    node.ok(&["demo", "--setup-only"]);
    let daemon = deskmesh_integration::daemon::start(&node, &["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let socket = node.home().join("control.sock");
    let remote = deskmesh_node::control::Remote::connect(&socket)
        .unwrap()
        .expect("the daemon answers");
    (node, daemon, remote)
}

/// An audit through a daemon runs beside it and tells subscribers how far it got, ending with every
/// space; `deskmesh audit` draws its progress bar from these.
#[test]
fn a_daemon_audit_tells_subscribers_how_far_it_got() {
    use deskmesh_core::api::Handle;
    use deskmesh_core::view::Event;

    let (_node, _daemon, mut remote) = demo_daemon();
    let events = remote.subscribe().unwrap();
    let mut watched = Vec::new();
    let report = remote
        .audit_watched(&mut |p| watched.push((p.spaces_done, p.spaces)))
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.listings.len(), 12, "the demo directory");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.last() != Some(&(12, 12)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress event for the whole directory: {seen:?}"
        );
        if let Some(Event::AuditProgress(p)) =
            events.next_timeout(std::time::Duration::from_millis(200))
        {
            seen.push((p.spaces_done, p.spaces));
        }
    }
    assert_eq!(seen.first().map(|p| p.1), Some(12));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    // The watching call heard some of the same (the events race the answer on another connection).
    assert!(
        watched.iter().all(|p| p.1 == 12 && seen.contains(p)),
        "{watched:?}"
    );
}

/// Attaching to a running daemon (what `deskmesh tui` does) gives the first spaces in name order at once
/// and the rest as pages in the event stream, with live events in the same stream: applied in order, they
/// end in exactly what a whole snapshot shows.
#[test]
fn attach_pages_the_directory_in_and_live_events_keep_their_order() {
    use std::collections::BTreeMap;

    use deskmesh_core::api::Handle;
    use deskmesh_core::view::{Event, SpaceState};
    use deskmesh_keys::SpaceId;

    let (node, _daemon, mut remote) = demo_daemon();
    let (head, events) = remote.attach(3, 2).unwrap();
    assert_eq!(head.spaces.len(), 3);
    assert_eq!(head.following, 9, "the demo directory holds 12 listings");
    let head_roster_empty = head.roster.is_empty();
    let fold = |s: &SpaceState| s.listing.name.to_lowercase();
    assert!(head.spaces.windows(2).all(|w| fold(&w[0]) <= fold(&w[1])));

    // A write while the pages stream: a coordinator verifies a fact of a space, which changes what
    // members see of it (claimed becomes verified).
    let target = head.spaces[0].listing.id.to_string();
    node.ok(&["alliance", "verify", &target, "--fact", "amenities"]);

    let mut shown: BTreeMap<SpaceId, SpaceState> = head
        .spaces
        .into_iter()
        .map(|s| (s.listing.id.clone(), s))
        .collect();
    let mut order: Vec<String> = Vec::new();
    let mut lefts = Vec::new();
    let mut verified_seen = false;
    let mut roster = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while roster.is_none() || !verified_seen {
        assert!(
            Instant::now() < deadline,
            "the pages, the roster and the verification did not all arrive: pages left {lefts:?}, roster {}, verification seen {verified_seen}",
            roster.is_some()
        );
        match events.next_timeout(Duration::from_millis(200)) {
            Some(Event::Spaces { spaces, left }) => {
                assert!(spaces.len() <= 2);
                order.extend(spaces.iter().map(fold));
                shown.extend(spaces.into_iter().map(|s| (s.listing.id.clone(), s)));
                lefts.push(left);
            }
            Some(Event::Roster(log)) => {
                assert_eq!(lefts.last(), Some(&0), "the roster comes after the pages");
                roster = Some(log);
            }
            Some(Event::Space(s)) => {
                verified_seen |= s.listing.id.to_string() == target && !s.facts.is_empty();
                shown.insert(s.listing.id.clone(), *s);
            }
            Some(_) | None => {}
        }
    }
    assert_eq!(lefts, [7, 5, 3, 1, 0]);
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    let whole = remote.snapshot().unwrap();
    assert_eq!(whole.following, 0);
    let expected: BTreeMap<SpaceId, SpaceState> = whole
        .spaces
        .into_iter()
        .map(|s| (s.listing.id.clone(), s))
        .collect();
    assert_eq!(shown.len(), 12);
    assert_eq!(shown, expected);
    assert!(head_roster_empty);
    assert_eq!(roster, Some(whole.roster));
}
