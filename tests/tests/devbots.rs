//! The bots of a development server (`POST /matches` with `bots`): they join over the protocol,
//! fight (steer and fire at the player), leave once the player has gone, and the match then
//! ends as idle. The setting is refused where it does not belong. And the pages: `GET /play`
//! from a browser is the play page, from anything else still the WebSocket endpoint.

use serde_json::{Value, json};
use std::time::Duration;
use tickforge_client::http::{get_json, request};
use tickforge_protocol::ServerMessage;
use tickforge_server::auth::Role;
use tickforge_tests::{TestServer, raw_exchange};

async fn create(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    let (status, bytes) = request(
        &server.url,
        "POST",
        "/matches",
        Some(token),
        Some(body.to_string()),
    )
    .await
    .expect("the server answers");
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

async fn info(server: &TestServer, id: u64) -> Value {
    get_json(&server.url, &format!("/matches/{id}"))
        .await
        .expect("the match is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_fill_a_match_fight_the_player_and_leave_after_them() {
    let server = TestServer::start(|c| c.idle_match = Duration::from_secs(2)).await;
    let token = server.token("host").await;
    let (status, created) = create(
        &server,
        &token,
        json!({ "game": "arena", "config": { "max_players": 4, "width_mm": 12000, "height_mm": 12000 }, "bots": 3 }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().expect("an id");
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while info(&server, id).await["players"] != 3 {
        assert!(tokio::time::Instant::now() < until, "the three bots join");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A player stays for 4 s, reading every frame; the bots go after them.
    let mut player = server.join(tickforge_protocol::MatchId(id), "human").await;
    let end = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < end {
        match tokio::time::timeout(Duration::from_secs(1), player.recv()).await {
            Ok(Ok(ServerMessage::MatchEnded { .. })) | Ok(Err(_)) => break,
            _ => {}
        }
    }
    player.leave().await.expect("leaves");

    // With the player gone, the bots leave, and the empty match ends as idle.
    let until = tokio::time::Instant::now() + Duration::from_secs(25);
    loop {
        let i = info(&server, id).await;
        if i["state"] == "ended" {
            assert_eq!(i["end_reason"], "idle", "{i}");
            assert_eq!(i["players"], 0, "{i}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the bots leave and the match ends: {i}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let events = get_json(&server.url, &format!("/replays/{id}/events"))
        .await
        .expect("events");
    let events = events.as_array().expect("an array");
    let joined: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| e["kind"].get("player_joined"))
        .map(|j| {
            (
                j["entity"].as_u64().expect("an entity"),
                j["name"].as_str().expect("a name").to_string(),
            )
        })
        .collect();
    let bots: Vec<u64> = joined
        .iter()
        .filter(|(_, n)| n.starts_with("bot-"))
        .map(|(e, _)| *e)
        .collect();
    assert_eq!(bots.len(), 3, "three bots joined: {joined:?}");
    let by_bots = |kind: &str, field: &str| {
        events
            .iter()
            .filter_map(|e| e["kind"].get(kind))
            .filter(|k| bots.contains(&k[field].as_u64().unwrap_or(0)))
            .count()
    };
    assert!(by_bots("player_steered", "entity") > 10, "the bots move");
    assert!(by_bots("projectile_fired", "shooter") > 3, "the bots fire");
    let left = events
        .iter()
        .filter_map(|e| e["kind"].get("player_left"))
        .count();
    assert_eq!(left, 4, "the player and the three bots left");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_refused_where_they_do_not_belong() {
    let server = TestServer::start(|_| {}).await;
    let token = server.token("host").await;
    for (body, error) in [
        (json!({ "game": "arena", "bots": 16 }), "bad_bots"),
        (
            json!({ "game": "drift", "config": { "max_players": 2 }, "bots": 2 }),
            "bad_bots",
        ),
        (
            json!({ "game": "arena", "bots": 1, "bot_behavior": "sneaky" }),
            "bad_json",
        ),
    ] {
        let (status, answer) = create(&server, &token, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{body}: {answer}"
        );
    }
    server.stop().await;

    let server =
        TestServer::start(|c| c.auth_secret = Some("a-secret-of-sixteen-chars".into())).await;
    let (token, _) = server.state.auth.issue(
        Role::Player,
        "host",
        tickforge_server::matches::unix_ms() / 1000,
    );
    let (status, answer) = create(&server, &token, json!({ "bots": 2 })).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "bots_need_development_mode");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_play_is_the_page_for_a_browser_and_the_socket_for_anything_else() {
    let server = TestServer::start(|_| {}).await;
    let host = tickforge_tests::authority(&server.url).to_string();
    let wait = Duration::from_secs(5);
    let page = format!(
        "GET /play HTTP/1.1\r\nHost: {host}\r\nAccept: text/html,application/xhtml+xml\r\nConnection: close\r\n\r\n"
    );
    let (response, _) = raw_exchange(&server.url, page.as_bytes(), wait).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("/js/web/play.js"), "the play page");
    let plain = format!("GET /play HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (response, _) = raw_exchange(&server.url, plain.as_bytes(), wait).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    let script =
        format!("GET /js/src/index.js HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (response, _) = raw_exchange(&server.url, script.as_bytes(), wait).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("text/javascript"), "{response}");
    let missing = format!("GET /js/nope.js HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (response, _) = raw_exchange(&server.url, missing.as_bytes(), wait).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let (status, _) = request(&server.url, "GET", "/matches/999", None, None)
        .await
        .expect("answers");
    assert_eq!(status, 404);
    server.stop().await;
}
