//! Tag through the stock server, over real sockets: players join a tag match, chase each other
//! with `run` commands, and their mirrors (built from the engine's deltas of tag's own
//! components) equal the server's world; a spectator follows tag's own events; the replay file
//! verifies with this crate's `tag-replay` binary.

use std::time::Duration;

use tickforge_client::Session;
use tickforge_example_tag::{NAME, Run, Tag};
use tickforge_protocol::{ComponentValue, MatchId, ServerMessage, SpectatorMessage};
use tickforge_server::config::ConfigArgs;
use tickforge_server::net::Server;
use tokio_util::sync::CancellationToken;

/// A spot from a mirror's `spot` component.
fn spot(value: Option<&ComponentValue>) -> Option<(i32, i32)> {
    let ComponentValue::Game(g) = value? else {
        return None;
    };
    let s: tickforge_example_tag::Spot = g.decode().ok()?;
    Some((s.x, s.y))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_match_is_played_watched_and_replayed_through_the_stock_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ConfigArgs::default().resolve().expect("defaults");
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.data_dir = dir.path().to_path_buf();
    let shutdown = CancellationToken::new();
    let server = Server::builder()
        .game(NAME, Tag)
        .bind(config, shutdown.clone())
        .await
        .expect("binds");
    let url = format!("ws://{}", server.local_addr().expect("bound"));
    let running = tokio::spawn(server.run());

    let token = tickforge_client::guest_token(&url, "host", false)
        .await
        .expect("a token");
    let info = tickforge_client::create_match(
        &url,
        &token,
        NAME,
        Some(serde_json::json!({ "width_mm": 6000, "height_mm": 6000, "round_ticks": 240 })),
        Some(7),
    )
    .await
    .expect("a tag match");
    let id = MatchId(info["id"].as_u64().expect("an id"));
    assert_eq!(info["game"], NAME);

    // A spectator in JSON from the first event.
    let watcher = {
        let url = url.clone();
        tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, "eye", true)
                .await
                .expect("token");
            let mut conn = tickforge_client::Connection::open(
                &format!("{url}/spectate/{}?from=0&format=json", id.0),
                &token,
            )
            .await
            .expect("spectates");
            let mut kinds = Vec::new();
            while let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_secs(10), conn.recv_spectator()).await
            {
                if let SpectatorMessage::Tick { events, .. } = message {
                    kinds.extend(events.iter().map(|e| e.kind.name().to_string()));
                }
            }
            kinds
        })
    };

    let mut players = Vec::new();
    for p in 0..3u32 {
        let url = url.clone();
        players.push(tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, &format!("runner{p}"), false)
                .await
                .expect("token");
            let mut s = Session::join(&url, &token, Some(id), &format!("runner{p}"))
                .await
                .expect("joins");
            let me = s.entity();
            let mut ended = false;
            while let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_secs(10), s.recv()).await
            {
                match message {
                    ServerMessage::Tick(d) => {
                        // Run towards the centre, each from a different side.
                        let at = spot(s.mirror().get(me, "spot")).unwrap_or((3000, 3000));
                        let step = |from: i32| (3000 - from).clamp(-200, 200);
                        if d.tick.0 % 2 == u64::from(p % 2) {
                            let run = Run {
                                entity: me,
                                dx: step(at.0),
                                dy: step(at.1),
                            };
                            s.send(run.command()).await.expect("sends");
                        }
                    }
                    ServerMessage::MatchEnded { .. } => {
                        ended = true;
                        break;
                    }
                    _ => {}
                }
            }
            (ended, s.mirror().clone(), s.mirror().tick())
        }));
    }
    for p in players {
        let (ended, mirror, tick) = p.await.expect("the player ran");
        assert!(
            ended,
            "the round ends after 240 ticks and the players are told"
        );
        assert!(
            tick.0 >= 239,
            "every delta arrived (mirror at tick {})",
            tick.0
        );
        let runners = mirror
            .entities()
            .filter(|(_, c)| c.contains_key("runner"))
            .count();
        assert_eq!(runners, 3, "each mirror holds three runners");
    }
    let kinds = watcher.await.expect("the spectator ran");
    let named = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert!(
        named("runner_moved") > 100,
        "tag's own events reach spectators by name"
    );
    assert!(
        named("runner_tagged") >= 1,
        "the runners meet in the centre and tag"
    );
    assert_eq!(named("player_joined"), 3);
    assert_eq!(named("match_ended"), 1);

    shutdown.cancel();
    running.await.expect("the server stops");
    let file = dir
        .path()
        .join("replays")
        .join(tickforge_server::matches::replay_file_name(id));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tag-replay"))
        .arg("verify")
        .arg(&file)
        .output()
        .expect("tag-replay runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the tag replay verifies: {text}");
    assert!(text.contains("240 ticks"), "{text}");
}
