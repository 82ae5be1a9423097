//! Spectators: one that joins mid-match from seq 0 receives every event exactly once, in order,
//! then follows live; one with a delay stays that many ticks behind; one from a later seq
//! starts right after it. The in-memory window is kept small here so that catching up reads
//! the replay file, the path a spectator of an old match takes.

use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;
use tickforge_client::Session;
use tickforge_protocol::{Command, DecodeLimits, MatchId, SpectatorMessage, Tick, decode_with};
use tickforge_tests::TestServer;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Spectator =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn spectate(server: &TestServer, id: MatchId, query: &str) -> Spectator {
    let token = server.spectator_token("watcher").await;
    let url = format!("{}/spectate/{}?{query}&token={token}", server.url, id.0);
    let request = url.into_client_request().expect("a request");
    tokio_tungstenite::connect_async(request)
        .await
        .expect("the spectator connects")
        .0
}

async fn next(ws: &mut Spectator) -> Option<SpectatorMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")?
        {
            Ok(Message::Binary(b)) => {
                return Some(decode_with(&b, DecodeLimits::TRUSTED).expect("a spectator message"));
            }
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(&t).expect("a JSON spectator message"));
            }
            Ok(Message::Close(_)) => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Four players steering and firing for `secs` seconds.
fn play(server: &TestServer, id: MatchId, secs: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4u32)
        .map(|i| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let token = tickforge_client::guest_token(&url, "p", false)
                    .await
                    .expect("token");
                let mut s = Session::join(&url, &token, Some(id), &format!("p{i}"))
                    .await
                    .expect("joins");
                let me = s.entity();
                let until = tokio::time::Instant::now() + Duration::from_secs(secs);
                let mut n = 0i32;
                while tokio::time::Instant::now() < until {
                    if let Ok(tickforge_protocol::ServerMessage::Tick(_)) = s.recv().await {
                        n += 1;
                        if n % 4 == i as i32 {
                            let v = (n % 100) - 50;
                            let command = if n % 12 == 0 {
                                Command::Fire {
                                    entity: me,
                                    dx: v,
                                    dy: 7,
                                }
                            } else {
                                Command::Move {
                                    entity: me,
                                    vx: v,
                                    vy: -v / 2,
                                }
                            };
                            let _ = s.send(command).await;
                        }
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_from_seq_0_gets_every_event_once_then_follows_live() {
    // Live ticks one by one (no batching), so that the delay can be measured to the tick.
    let server = TestServer::start(|c| {
        c.spectator_window_ticks = 20;
        c.spectator_batch = Duration::ZERO;
    })
    .await;
    let id = server
        .create_match(
            "arena",
            json!({ "width_mm": 8000, "height_mm": 8000, "score_limit": 10000 }),
            9,
        )
        .await;
    let players = play(&server, id, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut early = spectate(&server, id, "from=0").await;
    let mut delayed = spectate(&server, id, "from=live&delay=30&format=json").await;
    let mut later = spectate(&server, id, "from=40").await;

    // The delayed spectator: after it is live, each tick end it sees is 30 ticks behind.
    let shared = server.state.registry.shared(id).expect("the match");
    let mut lags = Vec::new();
    let mut delayed_live = false;
    while lags.len() < 60 {
        match next(&mut delayed).await.expect("the delayed feed goes on") {
            SpectatorMessage::Live { .. } => delayed_live = true,
            SpectatorMessage::Tick { tick, .. } if delayed_live => {
                let live = shared.live.borrow().tick;
                lags.push(live.0 as i64 - tick.0 as i64);
            }
            _ => {}
        }
    }
    lags.sort();
    assert!(
        lags[0] >= 30,
        "the delayed spectator should never be less than 30 ticks behind: {lags:?}"
    );
    assert!(
        lags[lags.len() / 2] <= 33,
        "the delayed spectator should stay about 30 ticks behind: {lags:?}"
    );

    // The later spectator starts right after seq 40.
    let first = loop {
        if let Some(SpectatorMessage::Tick { events, .. }) = next(&mut later).await
            && let Some(e) = events.first()
        {
            break e.clone();
        }
    };
    assert_eq!(first.seq.0, 41, "from=40 should start at seq 41");

    for p in players {
        p.await.expect("a player ran");
    }
    let server_dir_marker = server.replay_path(id);
    // Stop the server: the match finishes, and spectators get the rest and `Ended`.
    let stop = tokio::spawn(server.stop());
    let mut seqs = Vec::new();
    let mut ticks: Vec<Tick> = Vec::new();
    let mut live_at = None;
    let mut ended = None;
    while let Some(message) = next(&mut early).await {
        match message {
            SpectatorMessage::Tick { tick, events, .. } => {
                for e in events {
                    assert_eq!(e.tick, tick, "events come within their tick's frame");
                    seqs.push(e.seq.0);
                }
                ticks.push(tick);
            }
            SpectatorMessage::Live { seq } => live_at = Some(seq),
            SpectatorMessage::Ended { last_seq } => {
                ended = Some(last_seq);
                break;
            }
        }
    }
    let _dir = stop.await.expect("the server stops");
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "the spectator should see seq 1..=N exactly once, in order"
    );
    assert!(
        seqs.len() > 100,
        "a 4-second match of four players has many events, saw {}",
        seqs.len()
    );
    let expected_ticks: Vec<u64> = (1..=ticks.len() as u64).collect();
    assert_eq!(
        ticks.iter().map(|t| t.0).collect::<Vec<_>>(),
        expected_ticks,
        "one tick end per tick, none missed"
    );
    let live_at = live_at.expect("the spectator should have caught up and gone live");
    assert!(
        live_at.0 > 0 && live_at.0 < seqs.len() as u64,
        "it caught up mid-match, at seq {}",
        live_at.0
    );
    assert_eq!(
        ended.map(|s| s.0),
        seqs.last().copied(),
        "Ended names the last seq sent"
    );
    let index =
        tickforge_server::log::ReplayReader::open(&server_dir_marker).map(|r| r.index().clone());
    let _ = index;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_match_can_be_watched_from_its_file() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 2 }), 3)
        .await;
    let url = server.url.clone();
    let token = server.token("d").await;
    let mut s = Session::join(&url, &token, Some(id), "d")
        .await
        .expect("joins");
    let me = s.entity();
    for _ in 0..30 {
        s.send(Command::Drift {
            entity: me,
            dx: 3,
            dy: -3,
        })
        .await
        .expect("sends");
    }
    let mut acks = 0;
    while acks < 30 {
        if let tickforge_protocol::ServerMessage::Tick(t) =
            s.recv().await.expect("the session holds")
        {
            acks += t.acks.len();
        }
    }
    // Restart the server on the same data directory: the match is now only a file.
    let dir = server.stop().await;
    let server = TestServer::start(|c| c.data_dir = dir.path().to_path_buf()).await;
    let mut ws = spectate(&server, id, "from=0&format=json").await;
    let mut events = 0;
    loop {
        match next(&mut ws)
            .await
            .expect("the file is streamed to the end")
        {
            SpectatorMessage::Tick { events: e, .. } => events += e.len() as u64,
            SpectatorMessage::Ended { last_seq } => {
                assert_eq!(last_seq.0, events, "every event of the file, then Ended");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(events, 31, "the join and the 30 drifts");
    drop(dir);
}
