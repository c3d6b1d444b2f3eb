//! Running the external programs the harness drives, and deciding when a missing one may be
//! skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Reports that a test cannot run here. Outside CI the test is skipped with the reason printed;
/// under `CI=true` (where `make setup` has installed everything) it fails instead, so that a
/// broken machine never passes as green.
///
/// Returns `None` for the caller to return early with.
pub fn unavailable<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("required test component unavailable under CI: {reason}");
    }
    println!("SKIPPED: {reason}");
    None
}

/// The workspace's root directory (where `Cargo.toml` with `[workspace]` lives).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// Runs a command to completion and panics with its output if it fails: in a harness, a
/// failed setup step is a failed test, with everything needed to see why.
pub(crate) fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start {shown}: {e}"));
    if !out.status.success() {
        panic!(
            "{shown} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn have_program(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
}
