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
///
/// The JSON goes straight to standard output through a buffer, never whole into memory: a directory of
/// 10,000 spaces is 15 MB of it, and building that string cost more in fresh pages and copies as it
/// grew than writing it did.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    json_to_stdout(|out| {
        serde_json::to_writer_pretty(&mut *out, value)?;
        out.write_all(b"\n")
    })
}

/// Prints a directory as [`print_json`] would, its rows serialised on every core ([`super::json`]).
pub fn print_directory_json(
    directory: &mut deskmesh_core::ops::directory::Directory,
) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    json_to_stdout(|out| super::json::write_directory(out, directory, threads))
}

/// Runs `write` on buffered standard output and flushes it. A closed pipe ends the output quietly, as
/// in [`write_stdout`]; any other failure is the command's error.
fn json_to_stdout(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write the JSON output"))
        }
        _ => Ok(()),
    }
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
