//! The web viewer in a real browser: a server with bots playing one match and another match
//! finished, then Debian's Chromium (driven by playwright-core, installed by scripts/test)
//! opens the page and checks what it shows against the server. Screenshots are kept under
//! `target/web-e2e/`.

use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tickforge_client::Session;
use tickforge_protocol::{Command, MatchId, ServerMessage};
use tickforge_tests::{TestServer, run_tool};

/// Bots that steer and fire in match `id` until `stop` is cancelled or the match ends.
fn play(
    server: &TestServer,
    id: MatchId,
    bots: u32,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..bots)
        .map(|i| {
            let (url, stop) = (server.url.clone(), stop.clone());
            tokio::spawn(async move {
                let token = tickforge_client::guest_token(&url, "b", false)
                    .await
                    .expect("token");
                let mut s = Session::join(&url, &token, Some(id), &format!("bot{i}"))
                    .await
                    .expect("joins");
                let me = s.entity();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        m = s.recv() => m,
                    };
                    match message {
                        Ok(ServerMessage::Tick(d)) if d.tick.0 % 4 == u64::from(i % 4) => {
                            let v = ((d.tick.0 * 7 + u64::from(i) * 13) % 140) as i32 - 70;
                            let _ = s
                                .send(Command::Move {
                                    entity: me,
                                    vx: v,
                                    vy: 70 - v.abs(),
                                })
                                .await;
                            // Firing every 4 ticks trips the 15-tick cooldown: rejections for the timeline.
                            let _ = s
                                .send(Command::Fire {
                                    entity: me,
                                    dx: v,
                                    dy: 1,
                                })
                                .await;
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_shows_live_and_finished_matches() {
    let server = TestServer::start(|_| {}).await;
    let arena =
        json!({ "width_mm": 12000, "height_mm": 12000, "max_players": 6, "score_limit": 100000 });
    // A match that finishes: a 4-second time limit.
    let mut short = arena.clone();
    short["time_limit_ticks"] = json!(240);
    let done = server.create_match("arena", short, 11).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let finished = play(&server, done, 4, stop.clone());
    let live = server.create_match("arena", arena, 12).await;
    let playing = play(&server, live, 6, stop.clone());
    for f in finished {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("the short match ends")
            .expect("ran");
    }

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-e2e");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/e2e.mjs");
    let http = server.url.replace("ws://", "http://");
    let (ok, report) = run_tool(
        tokio::process::Command::new("node")
            .arg(&script)
            .args([&http, &live.0.to_string(), &done.0.to_string()])
            .arg(&artifacts),
        Duration::from_secs(120),
        "the viewer's browser test",
    )
    .await;
    assert!(ok, "the browser checks should all pass:\n{report}");
    assert!(
        artifacts.join("replay.jpg").exists(),
        "a screenshot is kept"
    );
    stop.cancel();
    for p in playing {
        let _ = p.await;
    }
    server.stop().await;
}

/// The play page: a scripted player in Chromium joins a match with one idle bot, moves, aims
/// and fires until it scores (the score limit is 1, so the match ends), and a deep link opens
/// the replay at a tick. Then the match's replay file verifies with `tickforge-replay verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_in_the_browser_scores_against_a_bot_and_the_replay_verifies() {
    let server = TestServer::start(|_| {}).await;
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-e2e");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/play.mjs");
    let http = server.url.replace("ws://", "http://");
    let (ok, report) = run_tool(
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&http)
            .arg(&artifacts),
        Duration::from_secs(150),
        "the play page's browser test",
    )
    .await;
    assert!(ok, "the play checks should all pass:\n{report}");
    assert!(artifacts.join("play.png").exists(), "a screenshot is kept");
    let id: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("MATCH "))
        .and_then(|id| id.trim().parse().ok())
        .expect("the script names its match");
    let info: serde_json::Value =
        tickforge_client::http::get_json(&server.url, &format!("/matches/{id}"))
            .await
            .expect("the match is listed");
    let file = server
        .dir
        .path()
        .join("replays")
        .join(info["replay"].as_str().expect("a file name"));
    let verify = std::process::Command::new(tickforge_tests::binary("tickforge-replay"))
        .arg("verify")
        .arg(&file)
        .output()
        .expect("tickforge-replay runs");
    assert!(
        verify.status.success(),
        "the played match's replay verifies:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    server.stop().await;
}

/// The stats page: after an arena match of three dev bots has ended and been projected,
/// Chromium opens /stats and checks the leaderboard, a player's page and the match's timeline
/// chart against the query API (tests/web/stats.mjs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_shows_the_read_models() {
    let server = TestServer::start(|c| {
        c.projection_batch = Duration::from_millis(50);
    })
    .await;
    let id = server.bot_arena(3, 300).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let summary =
            tickforge_client::http::get_json(&server.url, &format!("/matches/{id}/summary")).await;
        if summary.as_ref().is_ok_and(|s| s["state"] == "ended") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "match {id} ends and is projected: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-e2e");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/stats.mjs");
    let http = server.url.replace("ws://", "http://");
    let (ok, report) = run_tool(
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&http)
            .arg(&artifacts)
            .arg(id.to_string()),
        Duration::from_secs(120),
        "the stats page's browser test",
    )
    .await;
    assert!(ok, "the stats checks should all pass:\n{report}");
    assert!(artifacts.join("stats.png").exists(), "a screenshot is kept");
    server.stop().await;
}
