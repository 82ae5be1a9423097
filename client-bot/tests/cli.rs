//! `tickforge-bots` refuses bad arguments with messages that say what to do.

use std::process::Command;

fn bots(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tickforge-bots"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn help_shows_examples_and_every_option() {
    let (ok, text) = bots(&["--help"]);
    assert!(ok);
    for option in [
        "--url",
        "--bots",
        "--rate",
        "--duration",
        "--ramp-up",
        "--game",
        "--room-size",
        "--behavior",
        "--seed",
        "--json",
        "Examples:",
    ] {
        assert!(
            text.contains(option),
            "--help should mention {option}: {text}"
        );
    }
}

#[test]
fn bad_arguments_say_what_to_use() {
    let (ok, text) = bots(&["--behavior", "dance", "--url", "ws://127.0.0.1:9"]);
    assert!(!ok);
    assert!(
        text.contains("guest token") || text.contains("unknown behavior"),
        "{text}"
    );
    let (ok, text) = bots(&["--game", "chess", "--token", "t"]);
    assert!(!ok && text.contains("use arena or drift"), "{text}");
    let (ok, text) = bots(&[
        "spectate",
        "--match",
        "1",
        "--kind",
        "teleported",
        "--token",
        "t",
    ]);
    assert!(!ok && text.contains("kinds are: player_joined"), "{text}");
    let (ok, text) = bots(&["--url", "ftp://nowhere", "--token", "t"]);
    assert!(!ok && text.contains("ws://HOST:PORT"), "{text}");
}
