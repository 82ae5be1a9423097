//! Limits and misbehaving clients: each gets its documented outcome (a close code with a
//! reason, or an HTTP status before any WebSocket), and an honest player in the same match keeps
//! playing throughout: every tick's delta, in order, and answers to its commands.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tickforge_client::{ClientError, Connection, Session};
use tickforge_protocol::{ClientMessage, Command, CommandId, MatchId, ServerMessage, Tick, encode};
use tickforge_tests::TestServer;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What an honest player saw while something else misbehaved.
#[derive(Debug)]
struct HonestReport {
    ticks: u64,
    gaps: u64,
    acks: u64,
}

/// An honest player: steers every few ticks and checks that deltas arrive for every tick.
fn honest(
    server: &TestServer,
    id: MatchId,
    until: tokio::time::Instant,
    drift: bool,
) -> tokio::task::JoinHandle<HonestReport> {
    let url = server.url.clone();
    tokio::spawn(async move {
        let token = tickforge_client::guest_token(&url, "honest", false)
            .await
            .expect("token");
        let mut s = Session::join(&url, &token, Some(id), "honest")
            .await
            .expect("joins");
        let me = s.entity();
        let mut report = HonestReport {
            ticks: 0,
            gaps: 0,
            acks: 0,
        };
        let mut last: Option<Tick> = None;
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(2), s.recv()).await {
                Ok(Ok(ServerMessage::Tick(d))) => {
                    report.acks += d.acks.len() as u64;
                    if last.is_some_and(|l| d.tick != l.next()) {
                        report.gaps += 1;
                    }
                    last = Some(d.tick);
                    report.ticks += 1;
                    if d.tick.0 % 5 == 0 {
                        let v = (d.tick.0 % 90) as i32 - 45;
                        let command = if drift {
                            Command::Drift {
                                entity: me,
                                dx: v,
                                dy: 3,
                            }
                        } else {
                            Command::Move {
                                entity: me,
                                vx: v,
                                vy: 30,
                            }
                        };
                        s.send(command).await.expect("sends");
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the honest player lost its connection: {e}"),
                Err(_) => panic!("the honest player got nothing for 2 s"),
            }
        }
        report
    })
}

fn assert_unaffected(report: &HonestReport, secs: f64) {
    assert_eq!(
        report.gaps, 0,
        "the honest player should see every tick: {report:?}"
    );
    assert!(
        report.ticks as f64 >= secs * 60.0 * 0.8,
        "the honest player should keep receiving ~60 deltas a second: {report:?}"
    );
    assert!(
        report.acks as f64 >= secs * 12.0 * 0.8 - 2.0,
        "the honest player's commands should be answered: {report:?}"
    );
}

async fn arena(server: &TestServer) -> MatchId {
    server
        .create_match(
            "arena",
            json!({ "width_mm": 20000, "height_mm": 20000, "score_limit": 10000 }),
            1,
        )
        .await
}

/// Wait for the close frame (data messages before it are skipped); its code and reason.
async fn close_of(conn: &mut Connection) -> (Option<u16>, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.recv())
            .await
            .expect("closed within 10 s")
        {
            Ok(_) => {}
            Err(ClientError::Closed { code, reason }) => return (code, reason),
            Err(e) => panic!("expected a close, got {e}"),
        }
    }
}

async fn joined(server: &TestServer, id: MatchId, name: &str) -> Connection {
    joined_as(server, id, name).await.0
}

async fn joined_as(
    server: &TestServer,
    id: MatchId,
    name: &str,
) -> (Connection, tickforge_protocol::EntityId) {
    let token = server.token(name).await;
    let mut conn = Connection::connect(&server.url, &token)
        .await
        .expect("connects");
    conn.send(&ClientMessage::Join {
        match_id: Some(id),
        name: name.into(),
    })
    .await
    .expect("sends");
    match conn.recv().await.expect("an answer") {
        ServerMessage::Joined { entity, .. } => (conn, entity),
        other => panic!("expected Joined, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_version_mismatch_is_closed_naming_both_versions() {
    let server = TestServer::start(|_| {}).await;
    let token = server.token("old").await;
    let mut conn = Connection::open(&format!("{}/play", server.url), &token)
        .await
        .expect("opens");
    // A client of protocol 1, the version before this one.
    conn.send(&ClientMessage::Hello {
        protocol: 1,
        client: "from the past".into(),
    })
    .await
    .expect("sends");
    match conn.recv().await.expect("an error message first") {
        ServerMessage::Error { code, reason } => {
            assert_eq!(code, 4000);
            assert!(
                reason.contains("protocol 1") && reason.contains("protocol 2"),
                "the reason names both versions: {reason}"
            );
        }
        other => panic!("expected Error, got {other:?}"),
    }
    let (code, _) = close_of(&mut conn).await;
    assert_eq!(code, Some(4000));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_before_any_websocket() {
    let server = TestServer::start(|_| {}).await;
    for token in ["", "v1.garbage.signature", "not-a-token"] {
        let err = Connection::open(&format!("{}/play", server.url), token)
            .await
            .expect_err("refused");
        match err {
            ClientError::Refused { status, body } => {
                assert_eq!(status, 401, "{token:?}");
                assert!(body.contains("unauthorized"), "{body}");
            }
            other => panic!("{token:?}: expected a refusal, got {other}"),
        }
    }
    // A spectator token cannot play.
    let spectator = server.spectator_token("watcher").await;
    let err = Connection::open(&format!("{}/play", server.url), &spectator)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ClientError::Refused { status: 403, .. }),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_sending_a_command_is_closed_read_only() {
    let server = TestServer::start(|_| {}).await;
    let id = arena(&server).await;
    let token = server.spectator_token("watcher").await;
    let url = format!("{}/spectate/{}?from=live&token={token}", server.url, id.0);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.into_client_request().expect("request"))
        .await
        .expect("connects");
    let command = ClientMessage::Command {
        id: CommandId(1),
        command: Command::Leave,
    };
    ws.send(Message::Binary(encode(&command).expect("encodes").into()))
        .await
        .expect("sends");
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 1008, "policy violation");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_garbage_and_text_are_closed_with_their_codes() {
    let server = TestServer::start(|_| {}).await;
    let id = arena(&server).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let honest = honest(&server, id, until, false);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut big = joined(&server, id, "big").await;
    big.send_bytes(vec![0x90; 5000]).await.expect("sends");
    assert_eq!(
        close_of(&mut big).await.0,
        Some(1009),
        "an oversize frame is message_too_big"
    );

    let mut garbage = joined(&server, id, "garbage").await;
    garbage
        .send_bytes(vec![0xc1, 0xff, 0x00, 0x13])
        .await
        .expect("sends");
    let (code, reason) = close_of(&mut garbage).await;
    assert_eq!(code, Some(1007), "garbage is invalid_message: {reason}");

    let mut text = joined(&server, id, "text").await;
    text.send_frame(Message::text("{\"hello\":{}}"))
        .await
        .expect("sends");
    assert_eq!(
        close_of(&mut text).await.0,
        Some(1007),
        "text frames are invalid"
    );

    let mut deep = joined(&server, id, "deep").await;
    let mut nested = vec![0x91; 2000];
    nested.push(0xc0);
    deep.send_bytes(nested).await.expect("sends");
    assert_eq!(
        close_of(&mut deep).await.0,
        Some(1007),
        "2,000 levels of nesting are refused"
    );

    assert_unaffected(&honest.await.expect("honest ran"), 3.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_rate_limit_is_refused_then_disconnected() {
    let server = TestServer::start(|_| {}).await;
    let id = arena(&server).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let honest = honest(&server, id, until, false);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut flood, entity) = joined_as(&server, id, "flood").await;
    // 10× the sustained rate (120/s): 1,200 commands in about a second.
    let sender = tokio::spawn(async move {
        let mut rejected_rate = 0;
        for n in 0..1200u32 {
            let steer = Command::Move {
                entity,
                vx: (n % 50) as i32,
                vy: 0,
            };
            let command = ClientMessage::Command {
                id: CommandId(n + 1),
                command: steer,
            };
            if flood.feed(&command).await.is_err() {
                break;
            }
            if n % 12 == 0 {
                if flood.flush().await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let _ = flood.flush().await;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), flood.recv()).await {
                Ok(Ok(ServerMessage::Rejected { rule, .. })) if rule.as_str() == "rate_limited" => {
                    rejected_rate += 1
                }
                Ok(Ok(_)) => {}
                Ok(Err(ClientError::Closed { code, .. })) => return (rejected_rate, code),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => return (rejected_rate, None),
            }
        }
    });
    let (rejected, code) = sender.await.expect("the flood ran");
    assert!(
        rejected > 0,
        "commands over the rate are answered rate_limited first"
    );
    assert_eq!(
        code,
        Some(4003),
        "sustained abuse is disconnected with rate_limited"
    );
    assert_unaffected(&honest.await.expect("honest ran"), 3.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_without_hurting_the_others() {
    let server = TestServer::start(|c| {
        c.outbound_queue = 16;
        c.slow_client_grace = Duration::from_secs(1);
        c.write_timeout = Duration::from_secs(2);
        // Protocol 2's frames are small: a small kernel buffer fills within a second or two.
        c.socket_send_buffer = 4096;
    })
    .await;
    let id = server
        .create_match(
            "drift",
            json!({ "max_players": 64, "max_step_mm": 1000 }),
            1,
        )
        .await;
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    let honest_report = honest(&server, id, until, true);

    // Busy neighbours: 40 players drifting every other tick make every tick frame about a
    // hundred bytes.
    let mut movers = Vec::new();
    for i in 0..40 {
        let url = server.url.clone();
        movers.push(tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, "m", false)
                .await
                .expect("token");
            let mut s = Session::join(&url, &token, Some(id), &format!("m{i}"))
                .await
                .expect("joins");
            let me = s.entity();
            while tokio::time::Instant::now() < until {
                if let Ok(Ok(ServerMessage::Tick(d))) =
                    tokio::time::timeout(Duration::from_secs(2), s.recv()).await
                    && d.tick.0 % 2 == 0
                {
                    let step = if d.tick.0 % 4 == 0 { 7 } else { -7 };
                    let _ = s
                        .send(Command::Drift {
                            entity: me,
                            dx: step,
                            dy: -step,
                        })
                        .await;
                }
            }
        }));
    }

    // The sleeper: a tiny receive buffer, joins, then never reads again.
    let addr = server
        .url
        .trim_start_matches("ws://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let stream = socket.connect(addr).await.expect("connects");
    let token = server.token("sleeper").await;
    let mut request = format!("{}/play", server.url)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrades");
    for m in [
        ClientMessage::Hello {
            protocol: tickforge_protocol::PROTOCOL_VERSION,
            client: "sleeper".into(),
        },
        ClientMessage::Join {
            match_id: Some(id),
            name: "sleeper".into(),
        },
    ] {
        ws.send(Message::Binary(encode(&m).expect("encodes").into()))
            .await
            .expect("sends");
    }
    let cut = async {
        for _ in 0..200 {
            if server
                .state
                .metrics
                .render()
                .contains("tickforge_closes_total{reason=\"too_slow\"} 1")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(
        cut.await,
        "the sleeper should be closed as too_slow within 10 s"
    );
    assert!(
        server.state.metrics.delta_drops.get() > 0,
        "deltas were dropped for the sleeper only"
    );
    assert_unaffected(&honest_report.await.expect("honest ran"), 8.0);
    for m in movers {
        m.await.expect("a mover ran");
    }
    drop(ws);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_and_connection_caps_get_their_outcomes() {
    let server = TestServer::start(|c| {
        c.handshake_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::from_secs(1);
        c.pong_timeout = Duration::from_secs(2);
        c.max_connections_per_ip = 3;
    })
    .await;
    let token = server.token("quiet").await;

    // Upgraded, then silence: no Hello within the handshake deadline.
    let mut mute = Connection::open(&format!("{}/play", server.url), &token)
        .await
        .expect("opens");
    let started = tokio::time::Instant::now();
    let (code, reason) = close_of(&mut mute).await;
    assert_eq!(code, Some(4002), "no Hello: unexpected_message ({reason})");
    assert!(reason.contains("no Hello within 1 s"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed at the deadline, not later"
    );
    drop(mute);

    // Joined, then never reading: no pongs, so the ping timeout closes it.
    let id = server
        .create_match("drift", json!({ "max_players": 4 }), 1)
        .await;
    let deaf = joined(&server, id, "deaf").await;
    let cut = async {
        for _ in 0..100 {
            if server
                .state
                .metrics
                .render()
                .contains("tickforge_closes_total{reason=\"ping_timeout\"} 1")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        cut.await,
        "a client that answers no pings is closed with ping_timeout within 10 s"
    );
    drop(deaf);

    // The per-address cap: three open connections, and the fourth is refused before a byte.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(server.url.trim_start_matches("ws://"))
                .await
                .expect("connects"),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = Connection::open(&format!("{}/play", server.url), &token)
        .await
        .expect_err("over the cap");
    match err {
        ClientError::Refused { status, body } => {
            assert_eq!(status, 503);
            assert!(body.contains("too_many_connections"), "{body}");
        }
        other => panic!("expected 503, got {other}"),
    }
    drop(held);
    server.stop().await;
}
