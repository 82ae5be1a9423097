//! What the `tickforge-replay` tests share: the fixtures, and running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `replays/fixtures/`, one folder per released format version.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Run `tickforge-replay` with `args`.
pub fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tickforge-replay"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// What it printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
