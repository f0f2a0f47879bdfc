//! The `deskmesh` binary: a thin `main` that runs the command line and turns any error into one sentence
//! on stderr and a non-zero exit code, never a panic or a backtrace.

use std::process::ExitCode;

/// jemalloc rather than glibc's malloc: a node that holds the directory in memory while it takes in a
/// first sync of 10,000 spaces peaked at 520-620 MiB with glibc (its long-lived rows kept the memory of
/// each batch's freed buffers from being returned) and at ~245 MiB with jemalloc, in the same time
/// (`meshbench cold-join --spaces 10000`; BENCHMARKS, "the session's end state").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // A command exits soon after it closes its store, and starts no process on it.
    deskmesh_store::close_in_background();
    match deskmesh_node::cli::run() {
        Ok(code) => code,
        Err(err) => {
            // One sentence: each context, then the cause, joined by colons (anyhow's alternate form).
            eprintln!("deskmesh: {err:#}");
            ExitCode::from(1)
        }
    }
}
