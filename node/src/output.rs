//! Printing results: `--json` gives the serde form, otherwise each result's `Display` gives a human view.
//!
//! Writing to a closed pipe (`deskmesh spaces list | head`) must not panic, so every write ignores
//! `BrokenPipe` instead of using `println!`.

use std::fmt;
use std::io::Write;

use deskmesh_crdt_model::listing::Listing;
use serde::Serialize;

/// Prints `value` as pretty JSON or as its human text.
pub fn print<T: Serialize + fmt::Display>(json: bool, value: &T) -> anyhow::Result<()> {
    if json {
        print_json(value)
    } else {
        let mut text = value.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        write_stdout(&text);
        Ok(())
    }
}

/// Prints any serialisable value as pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_stdout(&text);
    Ok(())
}

/// Writes to standard output, treating a closed pipe as the reader having seen enough.
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes raw bytes to standard output (bundles), treating a closed pipe like [`write_stdout`].
pub fn write_stdout_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// Human view of one listing.
#[derive(Debug)]
pub struct ListingText<'a>(pub &'a Listing);

impl fmt::Display for ListingText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The JSON form is exactly what `space edit --file` takes; the human view is the same data,
        // pretty-printed, so nothing a user sees is missing from it.
        match serde_json::to_string_pretty(&self.0.to_value()) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("(listing cannot be shown)"),
        }
    }
}
