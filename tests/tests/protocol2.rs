//! Where the server and docs/PROTOCOL.md disagreed, one test each, through real sockets: a
//! resume re-sends every missed tick frame within the window (not at most 59); a client may
//! wait after Welcome (there is no Join deadline), while Hello still has one; a spectator that
//! sends anything gets the documented Error, then 1008 (binary), 1007 (text) or 1009 naming
//! its own 1024-byte limit; `Joined` names the game and the same rules `GET /matches` shows.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tickforge_client::Connection;
use tickforge_protocol::{ClientMessage, Command, MatchId, ServerMessage, Tick, decode_server};
use tickforge_tests::{TestServer, read_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_resends_every_missed_tick_frame_within_the_window() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3 }), 5)
        .await;
    let mut a = server.join(id, "steady").await;
    let mut b = server.join(id, "away").await;
    let ea = a.entity();
    let start = Tick(a.mirror().tick().0.max(b.mirror().tick().0) + 3);
    read_until(&mut a, start).await;
    read_until(&mut b, start).await;

    // B drops; A keeps drifting for 150 ticks (far more than the 59 the old text promised).
    b.drop_connection();
    let away_from = b.mirror().tick();
    for n in 0..150 {
        let ServerMessage::Tick(_) = a.recv().await.expect("a holds") else {
            continue;
        };
        a.send(Command::Drift {
            entity: ea,
            dx: 40,
            dy: (n % 9) - 4,
        })
        .await
        .expect("sends");
    }
    b.reconnect().await.expect("resumes");
    let first = tokio::time::timeout(Duration::from_secs(5), b.recv())
        .await
        .expect("a message")
        .expect("holds");
    let ServerMessage::Tick(frame) = first else {
        panic!("a resume within the 600-tick window re-sends tick frames, got {first:?}");
    };
    assert_eq!(
        frame.tick,
        away_from.next(),
        "the first re-sent frame is the tick after the client's last"
    );
    let missed = a.mirror().tick().0 - away_from.0;
    assert!(missed > 100, "B was away for {missed} ticks");
    // Every frame after it follows on (a gap would be an error), and B ends level with A.
    let target = Tick(a.mirror().tick().0 + 5);
    read_until(&mut a, target).await;
    read_until(&mut b, target).await;
    assert_eq!(a.mirror(), b.mirror(), "B caught up by deltas alone");
    drop((a, b));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_wait_after_welcome_but_not_before_hello() {
    let server = TestServer::start(|c| c.handshake_timeout = Duration::from_secs(1)).await;
    let id = server
        .create_match("drift", json!({ "max_players": 2 }), 6)
        .await;
    let token = server.token("lobby").await;

    // After Welcome: more than twice the handshake timeout in a lobby, then a Join that works.
    let mut conn = Connection::connect(&server.url, &token)
        .await
        .expect("Hello, Welcome");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    conn.send(&ClientMessage::Join {
        match_id: Some(id),
        name: "lobby".into(),
    })
    .await
    .expect("the connection is still open");
    let joined = tokio::time::timeout(Duration::from_secs(5), conn.recv())
        .await
        .expect("an answer")
        .expect("the connection holds");
    assert!(
        matches!(joined, ServerMessage::Joined { .. }),
        "a Join after a long wait is served, got {joined:?}"
    );

    // Before Hello: the deadline holds, with the documented 4002.
    let mut silent = Connection::open(&format!("{}/play", server.url), &token)
        .await
        .expect("upgrades");
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.recv())
            .await
            .expect("closed within 5 s")
        {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(closed.close_code(), Some(4002), "{closed}");
    server.stop().await;
}

/// Open a JSON spectator feed, send `frame`, and return the Error message and the close code.
async fn spectator_sending(server: &TestServer, id: MatchId, frame: Message) -> (u16, String, u16) {
    let token = server.spectator_token("watcher").await;
    let url = format!("{}/spectate/{}?format=json&token={token}", server.url, id.0);
    let request = url.into_client_request().expect("a request");
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the spectator connects");
    ws.send(frame).await.expect("sends");
    let mut error = None;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed within 5 s");
        match message {
            // The feed is JSON: a binary frame is the Error before the close.
            Some(Ok(Message::Binary(b))) => match decode_server(&b) {
                Ok(ServerMessage::Error { code, reason }) => error = Some((code, reason)),
                other => panic!("an unexpected binary frame: {other:?}"),
            },
            Some(Ok(Message::Close(Some(close)))) => {
                let (code, reason) = error.expect("an Error message precedes the close");
                return (code, reason, u16::from(close.code));
            }
            Some(Ok(_)) => {}
            other => panic!("the feed ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_that_sends_gets_the_error_and_the_documented_code() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 2 }), 7)
        .await;
    let (code, reason, close) =
        spectator_sending(&server, id, Message::Binary(vec![0x90].into())).await;
    assert_eq!((code, close), (1008, 1008), "binary: {reason}");

    let (code, reason, close) = spectator_sending(&server, id, Message::Text("hi".into())).await;
    assert_eq!((code, close), (1007, 1007), "text: {reason}");

    let (code, reason, close) =
        spectator_sending(&server, id, Message::Binary(vec![0u8; 2000].into())).await;
    assert_eq!((code, close), (1009, 1009), "too big: {reason}");
    assert!(
        reason.contains("1024") && !reason.contains("4096"),
        "the reason names the spectator's own limit: {reason}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_names_the_game_and_the_rules_get_matches_shows() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3, "max_step_mm": 250 }), 8)
        .await;
    let s = server.join(id, "curious").await;
    assert_eq!(s.game(), "drift");
    let (_, body) = tickforge_client::http::request(&server.url, "GET", "/matches", None, None)
        .await
        .expect("lists");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let listed = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["id"] == json!(id.0)))
        .expect("the match is listed");
    assert_eq!(
        serde_json::to_value(s.rules()).expect("JSON"),
        listed["config"],
        "Joined.rules is the config GET /matches shows"
    );
    assert_eq!(listed["config"]["drift"]["max_step_mm"], json!(250));
    assert_eq!(
        s.mirror().world().table().names(),
        ["player", "pos", "input"],
        "drift's component table"
    );
    drop(s);
    server.stop().await;
}
