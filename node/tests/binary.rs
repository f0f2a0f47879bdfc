//! The `deskmesh` binary starts and answers `--version` and `--help`. Having an integration test here also
//! makes `cargo test --workspace` build `target/<profile>/deskmesh`, which the end-to-end tests in
//! `integration/` run.

use std::process::Command;

#[test]
fn version_and_help_exit_zero() {
    let bin = env!("CARGO_BIN_EXE_deskmesh");
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("run deskmesh");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deskmesh "));
    let out = Command::new(bin)
        .arg("--help")
        .output()
        .expect("run deskmesh");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("alliance"));
}

#[test]
fn a_usage_error_exits_non_zero_without_a_panic() {
    let bin = env!("CARGO_BIN_EXE_deskmesh");
    let out = Command::new(bin)
        .arg("no-such-command")
        .output()
        .expect("run deskmesh");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
