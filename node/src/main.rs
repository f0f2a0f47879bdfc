//! The `deskmesh` binary: a thin `main` that runs the command line and turns any error into one sentence
//! on stderr and a non-zero exit code, never a panic or a backtrace.

use std::process::ExitCode;

fn main() -> ExitCode {
    match deskmesh_node::cli::run() {
        Ok(code) => code,
        Err(err) => {
            // One sentence: the outermost context, then the root cause when it adds information.
            let mut msg = err.to_string();
            if let Some(root) = err.chain().last() {
                let root = root.to_string();
                if !msg.contains(&root) {
                    msg = format!("{msg}: {root}");
                }
            }
            eprintln!("deskmesh: {msg}");
            ExitCode::from(1)
        }
    }
}
