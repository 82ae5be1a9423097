//! The `tickforge-server` binary, run as a child process: it plays a headless match, prints a
//! summary, and refuses bad arguments with a message that says what to do.

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickforge-server"))
}

#[test]
fn plays_a_headless_match_and_prints_a_summary() {
    let out = server()
        .args([
            "headless",
            "--headless-game",
            "arena",
            "--players",
            "4",
            "--ticks",
            "300",
            "--seed",
            "5",
        ])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the headless match should exit 0: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("300 ticks"),
        "the summary should count ticks: {stdout}"
    );
    assert!(
        stdout.contains("player_joined        4"),
        "four bots should join: {stdout}"
    );
    assert!(
        stdout.contains("final state hash at tick 300: "),
        "the summary should end with the hash: {stdout}"
    );
    // Same seed, same match: the printed hash is reproducible across processes.
    let again = server()
        .args([
            "headless",
            "--headless-game",
            "arena",
            "--players",
            "4",
            "--ticks",
            "300",
            "--seed",
            "5",
        ])
        .output()
        .expect("runs");
    let hash = |s: &str| {
        s.lines()
            .find(|l| l.contains("final state hash"))
            .map(str::to_owned)
    };
    assert_eq!(
        hash(&stdout),
        hash(&String::from_utf8_lossy(&again.stdout)),
        "the same seed should give the same hash"
    );
}

#[test]
fn an_unknown_game_is_refused_with_advice() {
    let out = server()
        .args(["headless", "--headless-game", "chess"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "an unknown game should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--headless-game arena or --headless-game drift"),
        "the error should say what to use: {stderr}"
    );
}
