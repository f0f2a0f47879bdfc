//! Printing results: data alone on stdout, hints on stderr, `--json` for the serde form.
//!
//! Writing to a closed pipe (`deskmesh spaces list | head`) must not panic, so every write ignores
//! `BrokenPipe` instead of using `println!`.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::render::Human;

/// Prints `value` as pretty JSON, or as its text with its hint on stderr.
pub fn print<T: Serialize + Human + ?Sized>(json: bool, value: &T) -> anyhow::Result<()> {
    if json {
        return print_json(value);
    }
    let mut text = value.data();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    write_stdout(text.as_bytes());
    if let Some(hint) = value.hint() {
        hint_line(&hint);
    }
    Ok(())
}

/// Prints any serialisable value as pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_stdout(text.as_bytes());
    Ok(())
}

/// Writes to standard output, treating a closed pipe as the reader having seen enough.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// A line for people on stderr (hints, progress notes), never mixed with the data.
pub fn hint_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.trim_end());
}

/// Whether standard output is a terminal (binary output is refused there).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
