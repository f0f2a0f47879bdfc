//! The `deskmesh` binary: a thin `main` that runs the command line and turns any error into one sentence
//! on stderr and a non-zero exit code, never a panic or a backtrace.

use std::process::ExitCode;

fn main() -> ExitCode {
    match deskmesh_node::cli::run() {
        Ok(code) => code,
        Err(err) => {
            // One sentence: each context, then the cause, joined by colons (anyhow's alternate form).
            eprintln!("deskmesh: {err:#}");
            ExitCode::from(1)
        }
    }
}
