//! The alliance report (#12) in a real browser: `deskmesh report` on the demo alliance, rendered by
//! headless Chromium at 1280x800 with no console errors, its map and charts present in the DOM the
//! browser built, and a screenshot kept as an artefact under `target/tmp/report/`.
//!
//! `.ci/run` installs Debian's `chromium`; where it is missing this test skips loudly, and fails in CI.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use deskmesh_integration::TestNode;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Runs headless Chromium on `page` with `args`, in a fresh profile, killed after a deadline.
fn headless(browser: &Path, page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Its output is read on a thread (a full pipe would stall it); the test waits with a deadline.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("chromium did not finish within 90 s");
        }
    }
}

/// The page's console messages, as Chromium logs them with `--enable-logging=stderr`
/// (`INFO:CONSOLE(...)`, whatever their level). The report has no script, so any message is a problem:
/// a resource that failed to load, a parse error, an uncaught exception.
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn the_report_renders_in_chromium_with_its_map_and_charts() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI"
        );
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
        return;
    };
    let node = TestNode::new();
    node.ok(&["demo", "--setup-only"]);
    let dir = node.dir.path();
    let page = dir.join("report.html");
    node.ok(&["report", "--output", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
        "the page loads nothing from anywhere"
    );

    // The console check itself is checked: a page that logs an error is caught.
    let control = dir.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><script>console.error('control error')</script></body></html>",
    )
    .unwrap();
    let out = headless(&browser, &control, &["--dump-dom"]);
    let caught = console_errors(&String::from_utf8_lossy(&out.stderr));
    assert!(
        caught.iter().any(|l| l.contains("control error")),
        "the console check misses errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The DOM the browser built from the report.
    let out = headless(&browser, &page, &["--dump-dom"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let errors = console_errors(&String::from_utf8_lossy(&out.stderr));
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(dom.contains("<svg id=\"map\""), "no map in the DOM");
    assert_eq!(
        count(&dom, "<circle class=\"space"),
        12,
        "a dot per demo space"
    );
    assert!(count(&dom, "M") > 1000, "the coastline is drawn");
    for id in [
        "seats-by-city",
        "seats-by-country",
        "seats-now",
        "hours",
        "accessibility",
        "amenities",
        "day-pass",
        "visa",
        "freshness",
    ] {
        let start = dom
            .find(&format!("<section id=\"{id}\""))
            .unwrap_or_else(|| panic!("no section {id}"));
        let section = &dom[start..start + dom[start..].find("</section>").unwrap()];
        assert!(
            section.contains("<svg class=\"chart\"") || section.contains("<table"),
            "{id} has no chart"
        );
    }
    assert!(dom.contains("Berlin, DE"));
    // Unknown is its own segment in the accessibility chart.
    let start = dom.find("<section id=\"accessibility\"").unwrap();
    assert!(dom[start..].contains("class=\"unknown\""));

    // The screenshot, at 1280x800, kept under target/tmp.
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("report-1280x800.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(
        &browser,
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800));
    assert!(png.len() > 20_000, "a blank page compresses to far less");
    eprintln!("screenshot kept at {}", shot.display());

    // A city's report covers that city alone; Markdown carries the same figures.
    let md = node.ok(&["report", "--city", "Lisbon", "--format", "markdown"]);
    assert!(md.contains("2 of 12 spaces: city Lisbon"), "{md}");
    assert!(md.contains("| Lisbon, PT | 2 |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&node.ok(&["report", "--country", "de", "--format", "json"])).unwrap();
    assert_eq!(json["spaces"], 2);
    assert_eq!(json["points"].as_array().unwrap().len(), 2);
}
