//! SIGTERM mid-match: the server process finishes its ticks, closes every replay file with its
//! footer, tells players it is going away (1001), and exits 0; the replay verifies to its last
//! tick.

use std::time::Duration;
use tickforge_client::{ClientError, Session};
use tickforge_protocol::{Command, ServerMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_match_exits_cleanly_with_verifiable_replays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, url) = tickforge_tests::start_binary(dir.path(), &[]).await;

    let mut players = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        players.push(tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, "p", false)
                .await
                .expect("token");
            let mut s = Session::join(&url, &token, None, &format!("p{i}"))
                .await
                .expect("quick-joins");
            let me = s.entity();
            loop {
                match s.recv().await {
                    Ok(ServerMessage::Tick(d)) if d.tick.0 % 3 == 0 => {
                        let _ = s
                            .send(Command::Move {
                                entity: me,
                                vx: (d.tick.0 % 80) as i32 - 40,
                                vy: 20,
                            })
                            .await;
                    }
                    Ok(_) => {}
                    Err(ClientError::Closed { code, reason }) => {
                        return (code, reason, s.mirror().tick());
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s")
        .expect("waits");
    assert!(
        status.success(),
        "SIGTERM should end the server cleanly, got {status}"
    );
    let mut last_seen = 0;
    for p in players {
        let (code, reason, tick) = p.await.expect("the player ran");
        assert_eq!(
            code,
            Some(1001),
            "players are told the server is going away: {reason}"
        );
        last_seen = last_seen.max(tick.0);
    }

    let replays: Vec<_> = std::fs::read_dir(dir.path().join("replays"))
        .expect("replays")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(replays.len(), 1, "one quick-joined match: {replays:?}");
    let verified = tickforge_replay::verify(&replays[0], |_, _| {})
        .expect("reads")
        .expect("the replay verifies");
    assert!(
        verified.health.clean_close,
        "the replay was closed with its footer"
    );
    assert!(
        verified.ticks >= last_seen,
        "the replay holds every tick the players saw ({} < {last_seen})",
        verified.ticks
    );
    assert!(verified.ticks > 60, "about 1.5 s of play");
}
