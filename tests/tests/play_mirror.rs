//! Mirrors kept from protocol 2's compact deltas equal the server's world: eight clients play
//! an arena match for 10 s over real sockets (spawns and despawns of projectiles and pickups),
//! and the match's replay file verifies; four clients drift through resumes and a leave.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};
use tickforge_client::Session;
use tickforge_protocol::{Command, ServerMessage};
use tickforge_tests::{TestServer, public_view};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_mirror_the_server_and_the_replay_verifies() {
    let server = TestServer::start(|_| {}).await;
    let config = json!({ "max_players": 8, "width_mm": 9000, "height_mm": 9000, "pickup_interval_ticks": 60, "score_limit": 10000 });
    let id = server.create_match("arena", config, 5).await;
    let mut clients = Vec::new();
    for i in 0..8u64 {
        let (url, token) = (server.url.clone(), server.token(&format!("p{i}")).await);
        clients.push(tokio::spawn(async move {
            let mut session = Session::join(&url, &token, Some(id), &format!("p{i}"))
                .await
                .expect("joins the match");
            let me = session.entity();
            let mut rng = ChaCha8Rng::seed_from_u64(i);
            let (mut acks, mut rejections) = (0, 0);
            let playing_until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < playing_until {
                match session.recv().await.expect("the connection holds") {
                    ServerMessage::Tick(t) if t.tick.0 % 3 == i % 3 => {
                        acks += t.acks.len();
                        rejections += t.rejections.len();
                        let roll = rng.next_u32() % 10;
                        let (a, b) = (
                            (rng.next_u32() % 121) as i32 - 60,
                            (rng.next_u32() % 121) as i32 - 60,
                        );
                        let command = if roll < 7 {
                            Command::Move {
                                entity: me,
                                vx: a,
                                vy: b,
                            }
                        } else {
                            Command::Fire {
                                entity: me,
                                dx: a,
                                dy: b + 1,
                            }
                        };
                        session.send(command).await.expect("sends");
                    }
                    ServerMessage::Tick(t) => {
                        acks += t.acks.len();
                        rejections += t.rejections.len();
                    }
                    ServerMessage::Rejected { .. } => rejections += 1,
                    _ => {}
                }
            }
            // A little more reading, so the last commands' answers arrive.
            let settle = Instant::now() + Duration::from_millis(300);
            while Instant::now() < settle {
                if let Ok(Ok(ServerMessage::Tick(t))) =
                    tokio::time::timeout(Duration::from_millis(50), session.recv()).await
                {
                    acks += t.acks.len();
                }
            }
            (session.mirror().clone(), acks, rejections)
        }));
    }
    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.expect("the client task runs"));
    }
    let path = server.replay_path(id);
    for (i, (mirror, acks, _rejections)) in results.iter().enumerate() {
        assert!(
            *acks > 50,
            "client {i} should have had its commands acknowledged, got {acks}"
        );
        assert!(
            mirror.tick().0 >= 500,
            "client {i} should have followed about 600 ticks, reached {}",
            mirror.tick().0
        );
        server.wait_durable(id, mirror.tick()).await;
        let world =
            tickforge_replay::seek(&path, mirror.tick()).expect("the server's world at that tick");
        assert_eq!(
            mirror.to_states(),
            public_view(&world),
            "client {i}'s mirror at tick {} should equal the server's world",
            mirror.tick().0
        );
    }
    let players = results[0]
        .0
        .entities()
        .filter(|(_, c)| c.contains_key("player"))
        .count();
    assert_eq!(players, 8, "all eight players should be in the mirror");

    let _dir = server.stop().await;
    let verified = tickforge_replay::verify(&path, |_, _| {})
        .expect("the replay reads")
        .expect("the replay verifies");
    assert!(
        verified.ticks >= 600,
        "the replay should hold the whole match, has {} ticks",
        verified.ticks
    );
    assert!(
        verified.health.clean_close,
        "a graceful stop closes the replay with its footer"
    );
}

/// Drift with compact deltas over a whole match: four clients drift, one drops and resumes
/// (twice), one leaves (its entity despawns in the others' mirrors); at the end every mirror
/// still equals the server's world at its tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_mirrors_survive_resumes_and_leaves() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 4, "max_step_mm": 1000 }), 9)
        .await;
    let mut clients = Vec::new();
    for i in 0..4u64 {
        let (url, token) = (server.url.clone(), server.token(&format!("d{i}")).await);
        clients.push(tokio::spawn(async move {
            let mut s = Session::join(&url, &token, Some(id), &format!("d{i}"))
                .await
                .expect("joins");
            let me = s.entity();
            let mut rng = ChaCha8Rng::seed_from_u64(100 + i);
            let mut frames = 0u32;
            while frames < 360 {
                match s.recv().await {
                    Ok(ServerMessage::Tick(_)) => {
                        frames += 1;
                        let step = |r: u32| (r % 1601) as i32 - 800;
                        let (dx, dy) = (step(rng.next_u32()), step(rng.next_u32()));
                        s.send(Command::Drift { entity: me, dx, dy })
                            .await
                            .expect("sends");
                        // Client 1 drops twice and comes back; client 3 leaves half-way.
                        if i == 1 && (frames == 90 || frames == 200) {
                            s.drop_connection();
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            s.reconnect().await.expect("resumes");
                        }
                        if i == 3 && frames == 180 {
                            s.leave().await.expect("leaves");
                            return None;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => panic!("client {i}: {e}"),
                }
            }
            Some(s)
        }));
    }
    let mut sessions = Vec::new();
    for c in clients {
        sessions.extend(c.await.expect("the client ran"));
    }
    assert_eq!(sessions.len(), 3, "three clients stayed");
    let path = server.replay_path(id);
    for s in &sessions {
        let mirror = s.mirror();
        server.wait_durable(id, mirror.tick()).await;
        let world = tickforge_replay::seek(&path, mirror.tick()).expect("the world at that tick");
        assert_eq!(
            mirror.to_states(),
            public_view(&world),
            "{}'s mirror at tick {} equals the server's world",
            s.player(),
            mirror.tick().0
        );
        let players = mirror
            .entities()
            .filter(|(_, c)| c.contains_key("player"))
            .count();
        assert_eq!(players, 3, "the leaver's entity is gone from every mirror");
    }
    drop(sessions);
    server.stop().await;
}
