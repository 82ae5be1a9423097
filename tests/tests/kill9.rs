//! The kill -9 loop: the server binary with a bot workload is killed with SIGKILL at a random
//! moment (50–2000 ms), restarted on the same data directory, M times. After every restart the
//! recovered replay reaches at least the last tick the server reported durable before the kill
//! (`durable_tick` in GET /matches), and it verifies. Seeded, so a failure can be replayed:
//! `TICKFORGE_KILL_SEED=N TICKFORGE_KILLS=M cargo test -p tickforge-tests --test kill9`.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::path::Path;
use std::time::Duration;
use tickforge_client::Session;
use tickforge_protocol::{Command, ServerMessage, Tick};

async fn start(dir: &Path) -> (tokio::process::Child, String) {
    tickforge_tests::start_binary(dir, &["--game", "arena"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_a_durable_tick() {
    let kills: usize = std::env::var("TICKFORGE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("TICKFORGE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut recovered, mut mismatches) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    let mut lost_beyond_durable = Vec::new();
    for round in 0..kills {
        let (mut child, url) = start(dir.path()).await;
        let mut bots = Vec::new();
        for i in 0..4 {
            let url = url.clone();
            bots.push(tokio::spawn(async move {
                let Ok(token) = tickforge_client::guest_token(&url, "b", false).await else {
                    return;
                };
                let Ok(mut s) = Session::join(&url, &token, None, &format!("b{i}")).await else {
                    return;
                };
                let me = s.entity();
                while let Ok(m) = s.recv().await {
                    if let ServerMessage::Tick(d) = m {
                        let v = ((d.tick.0 * 11 + i) % 140) as i32 - 70;
                        let command = if d.tick.0 % 9 == i {
                            Command::Fire {
                                entity: me,
                                dx: v,
                                dy: 3,
                            }
                        } else {
                            Command::Move {
                                entity: me,
                                vx: v,
                                vy: -v / 2,
                            }
                        };
                        if s.send(command).await.is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        // Watch what the server says is durable until the kill.
        let kill_after = Duration::from_millis(50 + rng.next_u64() % 1951);
        let deadline = tokio::time::Instant::now() + kill_after;
        let mut durable: Option<(u64, Tick)> = None;
        while tokio::time::Instant::now() < deadline {
            if let Ok(matches) = tickforge_client::get_json(&url, "/matches").await
                && let Some(m) = matches
                    .as_array()
                    .and_then(|a| a.iter().find(|m| m["state"] == "running"))
            {
                durable = Some((
                    m["id"].as_u64().unwrap_or(0),
                    Tick(m["durable_tick"].as_u64().unwrap_or(0)),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
        for b in bots {
            let _ = b.await;
        }
        // Restart: the server recovers every replay file at startup.
        let (mut again, _) = start(dir.path()).await;
        again.start_kill().expect("stop");
        let _ = again.wait().await;
        // The newest replay is this round's match (a kill before the bots got going leaves none).
        let newest = std::fs::read_dir(dir.path().join("replays"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).max())
            .unwrap_or(None);
        let Some(path) = newest else { continue };
        if seen.contains(&path) {
            continue;
        }
        seen.insert(path.clone());
        let durable_tick = durable.map_or(Tick(0), |(_, t)| t);
        match tickforge_replay::verify(&path, |_, _| {}) {
            Ok(Ok(v)) => {
                recovered += 1;
                if v.ticks < durable_tick.0 {
                    lost_beyond_durable.push((
                        round,
                        path.display().to_string(),
                        durable_tick.0,
                        v.ticks,
                    ));
                }
            }
            Ok(Err(d)) => {
                mismatches += 1;
                eprintln!(
                    "round {round}: {} diverges after recovery: {d}",
                    path.display()
                );
            }
            Err(e) => {
                mismatches += 1;
                eprintln!(
                    "round {round}: {} cannot be read after recovery: {e}",
                    path.display()
                );
            }
        }
    }
    println!(
        "{kills} kills, {recovered} recovered, {mismatches} mismatches, {} durable ticks lost",
        lost_beyond_durable.len()
    );
    assert_eq!(mismatches, 0, "every recovered replay should verify");
    assert!(
        lost_beyond_durable.is_empty(),
        "no tick reported durable may be lost: {lost_beyond_durable:?}"
    );
    // Kills before about 300 ms come before the bots have made a match: nothing to recover.
    assert!(
        recovered >= kills * 7 / 10,
        "most rounds should get a match going before the kill ({recovered} of {kills})"
    );
}
