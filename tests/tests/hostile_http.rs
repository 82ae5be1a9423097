//! Hostile HTTP clients and what the server does about each (docs/RELIABILITY.md, "hostile
//! input"): bodies that never arrive, responses nobody reads, requests from other sites (DNS
//! rebinding, foreign origins), matches created by the dozen and left empty, lists that would
//! grow for ever, and error messages that would name files.

use std::time::Duration;

use serde_json::json;
use tickforge_protocol::MatchId;
use tickforge_tests::{TestServer, authority, raw_exchange};

fn request(method: &str, path: &str, host: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a raw response.
fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn healthz_ok(server: &TestServer) -> bool {
    let host = authority(&server.url).to_string();
    let (response, _) = raw_exchange(
        &server.url,
        &request("GET", "/healthz", &host, "connection: close\r\n", ""),
        Duration::from_secs(3),
    )
    .await;
    status(&response) == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_that_never_arrive_are_cut_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(|c| {
        c.handshake_timeout = Duration::from_secs(2);
        c.max_connections = 40;
    })
    .await;
    let host = authority(&server.url).to_string();
    let token = server.token("slow").await;
    // 30 POSTs that promise a body and send nothing, a trickle, or one chunk and stop.
    let mut slow = Vec::new();
    for i in 0..30 {
        let mut stream = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connects");
        let head = format!(
            "POST /matches HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\ncontent-length: 1000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("writes");
        if i % 3 == 1 {
            stream.write_all(b"{\"game\"").await.expect("writes");
        }
        slow.push((i, stream));
    }
    let started = tokio::time::Instant::now();
    let trickle = {
        let mut trickler: Vec<_> = slow.iter_mut().filter(|(i, _)| i % 3 == 2).collect();
        async move {
            for _ in 0..20 {
                for (_, s) in trickler.iter_mut() {
                    let _ = s.write_all(b" ").await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Meanwhile everyone else is served.
    let others = async {
        for _ in 0..5 {
            assert!(
                healthz_ok(&server).await,
                "other clients are served while slow bodies are pending"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::join!(trickle, others);
    // Every slow body is answered 408 and closed within the deadline (2 s) plus slack.
    for (i, mut stream) in slow {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            read.is_ok(),
            "slow body {i} should be closed within the deadline"
        );
        assert_eq!(status(&text), 408, "slow body {i} gets 408: {text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut at the deadline, not later"
    );
    assert!(healthz_ok(&server).await, "the server serves after the cut");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_nobody_reads_is_cut_at_the_write_deadline() {
    let server = TestServer::start(|c| {
        c.write_timeout = Duration::from_secs(1);
        c.socket_send_buffer = 4096;
    })
    .await;
    let path = server.state.config.replay_dir().join("match-000001.tfr");
    tickforge_tests::record_drift(&path, 1, 16, 3000);
    let host = authority(&server.url).to_string();
    // Ask for the file, then read nothing at all.
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connects");
    let sock = socket2::SockRef::from(&stream);
    sock.set_recv_buffer_size(4096)
        .expect("small receive buffer");
    use tokio::io::AsyncWriteExt;
    let mut stream = stream;
    stream
        .write_all(&request("GET", "/replays/1", &host, "", ""))
        .await
        .expect("writes");
    let connections = || server.state.metrics.connections.get();
    let mut cut = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if connections() == 0 {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a download nobody reads is closed within a few seconds of the 1 s write deadline"
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_and_origins_of_other_sites_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let host = authority(&server.url).to_string();
    let port = host.rsplit(':').next().expect("a port").to_string();
    let get = |host: String, headers: &'static str| {
        let url = server.url.clone();
        async move {
            let (response, _) = raw_exchange(
                &url,
                &request("GET", "/healthz", &host, headers, ""),
                Duration::from_secs(2),
            )
            .await;
            response
        }
    };
    // DNS rebinding: a page at evil.example resolved to 127.0.0.1 sends its own name.
    let rebound = get(format!("evil.example:{port}"), "").await;
    assert_eq!(status(&rebound), 403, "{rebound}");
    assert!(rebound.contains("host_not_allowed"), "{rebound}");
    for ok in [
        host.clone(),
        format!("localhost:{port}"),
        "[::1]".to_string(),
    ] {
        let response = get(ok.clone(), "").await;
        assert_eq!(status(&response), 200, "Host {ok} is accepted: {response}");
    }

    // A WebSocket from a foreign page is refused before the upgrade; loopback pages and the
    // server's own page (same origin) are not.
    let token = server.token("page").await;
    let upgrade = |origin: String| {
        let (url, host, token) = (server.url.clone(), host.clone(), token.clone());
        async move {
            let headers = format!(
                "origin: {origin}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {token}\r\n"
            );
            let (response, _) = raw_exchange(
                &url,
                &request("GET", "/play", &host, &headers, ""),
                Duration::from_millis(800),
            )
            .await;
            status(&response)
        }
    };
    assert_eq!(upgrade("https://evil.example".into()).await, 403);
    assert_eq!(upgrade("null".into()).await, 403);
    assert_eq!(upgrade(format!("http://{host}")).await, 101, "same origin");
    assert_eq!(
        upgrade("http://localhost:5173".into()).await,
        101,
        "loopback page in development"
    );
    // A POST from a foreign page too.
    let (response, _) = raw_exchange(
        &server.url,
        &request(
            "POST",
            "/auth/guest",
            &host,
            "origin: https://evil.example\r\n",
            "{}",
        ),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status(&response), 403, "{response}");
    assert!(response.contains("origin_not_allowed"), "{response}");
    server.stop().await;

    // Production: only the configured origins (and the server's own).
    let server = TestServer::start(|c| {
        c.auth_secret = Some("a-secret-of-sixteen-chars".into());
        c.allowed_origins =
            tickforge_server::config::OriginPolicy::Listed(vec!["https://game.example".into()]);
        c.allowed_hosts = vec!["game.example".into()];
    })
    .await;
    let host = authority(&server.url).to_string();
    let (response, _) = raw_exchange(
        &server.url,
        &request(
            "POST",
            "/matches",
            &host,
            "origin: http://localhost:5173\r\n",
            "{}",
        ),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        status(&response),
        403,
        "loopback pages are not special in production: {response}"
    );
    let (response, _) = raw_exchange(
        &server.url,
        &request(
            "POST",
            "/matches",
            "game.example",
            "origin: https://game.example\r\n",
            "{}",
        ),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        status(&response),
        401,
        "a listed origin and host get as far as the token check: {response}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_creation_is_limited_per_player_and_address() {
    let server = TestServer::start(|c| {
        c.max_matches_per_player = 3;
        c.max_matches_per_address = 5;
    })
    .await;
    let create = |name: &'static str| {
        let url = server.url.clone();
        async move {
            let token = tickforge_client::guest_token(&url, name, false)
                .await
                .expect("token");
            tickforge_client::create_match(&url, &token, "drift", None, None).await
        }
    };
    for _ in 0..3 {
        create("alice").await.expect("within the limit");
    }
    let refused = create("alice").await.expect_err("a fourth match for alice");
    assert!(
        refused.to_string().contains("429") && refused.to_string().contains("too_many_matches"),
        "{refused}"
    );
    create("bob").await.expect("bob has his own allowance");
    create("carol").await.expect("carol too");
    let refused = create("dave")
        .await
        .expect_err("the address has 5 running matches");
    assert!(refused.to_string().contains("429"), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_matches_end_after_the_idle_time_and_leave_only_a_summary() {
    let server = TestServer::start(|c| {
        c.idle_match = Duration::from_secs(1);
        c.finished_matches_kept = 3;
    })
    .await;
    let token = server.token("idler").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let info = tickforge_client::create_match(&server.url, &token, "drift", None, None)
            .await
            .expect("created");
        ids.push(MatchId(info["id"].as_u64().expect("an id")));
    }
    let metrics_has = |id: MatchId| {
        server
            .state
            .metrics
            .render()
            .contains(&format!("match_id=\"{}\"", id.0))
    };
    // (The first ones may have idled out already on a slow machine: look at the last.)
    let mut seen = false;
    for _ in 0..100 {
        if metrics_has(ids[4]) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "a running match has its series");
    let mut ended = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.state.registry.counts().0 == 0 {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "five empty matches end within a few seconds of 1 s idle"
    );
    let listed = tickforge_client::get_json(&server.url, "/matches")
        .await
        .expect("lists");
    let listed = listed.as_array().expect("an array");
    assert_eq!(
        listed.len(),
        3,
        "only the 3 most recent finished matches are kept"
    );
    for m in listed {
        assert_eq!(m["state"], "ended");
        assert_eq!(m["end_reason"], "idle", "{m}");
    }
    for id in &ids {
        assert!(
            !metrics_has(*id),
            "a finished match has no series in /metrics"
        );
    }
    let replays = tickforge_client::get_json(&server.url, "/replays")
        .await
        .expect("lists");
    assert_eq!(
        replays.as_array().map(Vec::len),
        Some(5),
        "every replay file stays listed: {replays}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged_newest_first() {
    let server = TestServer::start(|c| c.finished_matches_kept = 100).await;
    for _ in 0..7 {
        server
            .create_match("arena", json!({ "time_limit_ticks": 1 }), 1)
            .await;
    }
    for _ in 0..100 {
        if server.state.registry.counts().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let host = authority(&server.url).to_string();
    for list in ["/matches", "/replays"] {
        let mut path = format!("{list}?limit=3");
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (response, _) = raw_exchange(
                &server.url,
                &request("GET", &path, &host, "connection: close\r\n", ""),
                Duration::from_secs(2),
            )
            .await;
            assert_eq!(status(&response), 200, "{response}");
            let body = response.split("\r\n\r\n").nth(1).unwrap_or("[]");
            let page: serde_json::Value = serde_json::from_str(body).expect("JSON");
            seen.extend(
                page.as_array()
                    .expect("array")
                    .iter()
                    .map(|m| m["id"].as_u64()),
            );
            let next = response
                .lines()
                .find_map(|l| l.strip_prefix("link: <"))
                .and_then(|l| l.split('>').next())
                .map(str::to_string);
            match next {
                Some(next) => path = next,
                None => break,
            }
        }
        let ids: Vec<u64> = seen.into_iter().flatten().collect();
        assert_eq!(
            ids,
            vec![7, 6, 5, 4, 3, 2, 1],
            "{list} pages newest first, each once"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_names_a_file_of_the_server() {
    let server = TestServer::start(|_| {}).await;
    let dir = server.state.config.replay_dir();
    let absolute = std::fs::canonicalize(&dir).expect("the replay directory exists");
    // A damaged file where a replay belongs, and a directory where another does.
    std::fs::write(
        dir.join("match-000041.tfr"),
        b"TFREPLAY garbage that is not a header",
    )
    .expect("writes");
    std::fs::create_dir(dir.join("match-000042.tfr")).expect("creates");
    let host = authority(&server.url).to_string();
    let mut answers = Vec::new();
    for path in [
        "/replays/41/seek?tick=1",
        "/replays/41/events",
        "/replays/41/rejections",
        "/replays/42",
        "/replays/42/seek?tick=1",
        "/replays/43/seek?tick=1",
        "/matches/41/snapshot",
    ] {
        let (response, _) = raw_exchange(
            &server.url,
            &request("GET", path, &host, "connection: close\r\n", ""),
            Duration::from_secs(3),
        )
        .await;
        assert!(status(&response) >= 400, "{path}: {response}");
        answers.push((path, response));
    }
    // A spectator of the damaged file gets a close reason.
    let token = server.spectator_token("eye").await;
    let mut conn =
        tickforge_client::Connection::open(&format!("{}/spectate/41?from=0", server.url), &token)
            .await
            .expect("upgrades");
    let reason = loop {
        match conn.recv().await {
            Err(e @ tickforge_client::ClientError::Closed { .. }) => break e.to_string(),
            _ => continue,
        }
    };
    assert!(
        reason.contains("1011"),
        "the spectator is closed with 1011: {reason}"
    );
    answers.push(("spectate", reason));
    for (path, answer) in &answers {
        for dir in [&dir, &absolute] {
            let dir = dir.display().to_string();
            assert!(
                !answer.contains(&dir),
                "{path}: the answer names the data directory {dir}: {answer}"
            );
        }
        assert!(!answer.contains("panicked"), "{path}: {answer}");
    }
    server.stop().await;
}

/// Open a WebSocket to `path` by hand, send `frame` (raw bytes, already masked), and return
/// the close code the server answers with.
async fn close_code_after(
    server: &TestServer,
    path: &str,
    token: &str,
    frame: &[u8],
) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = authority(&server.url).to_string();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connects");
    let upgrade = format!(
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.expect("writes");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("reads");
        assert!(n > 0, "the upgrade is answered");
        got.extend_from_slice(&buf[..n]);
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut frames = got[head_end..].to_vec();
    stream.write_all(frame).await.expect("writes the frame");
    // Server frames are unmasked: opcode, length (< 126 here), payload.
    loop {
        while frames.len() >= 2 && frames.len() >= 2 + usize::from(frames[1] & 0x7f) {
            let len = usize::from(frames[1] & 0x7f);
            if frames[0] & 0x0f == 0x8 {
                return (len >= 2).then(|| u16::from_be_bytes([frames[2], frames[3]]));
            }
            frames.drain(..2 + len);
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => frames.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// A masked client frame.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_protocol_md_promises_is_what_happens() {
    let server = TestServer::start(|_| {}).await;
    let token = server.token("p").await;
    // Invalid UTF-8 in a text frame, and in a close reason: 1007, not 1000.
    let bad_text = masked(0x1, &[0xC3, 0x28]);
    assert_eq!(
        close_code_after(&server, "/play", &token, &bad_text).await,
        Some(1007)
    );
    let bad_reason = masked(0x8, &[0x03, 0xE8, 0xC3, 0x28]);
    assert_eq!(
        close_code_after(&server, "/play", &token, &bad_reason).await,
        Some(1007)
    );

    // Names with format characters (a right-to-left override) are refused.
    let err = tickforge_client::Session::join(&server.url, &token, None, "evil\u{202e}gnp.exe")
        .await
        .expect_err("a name with a bidi override");
    assert!(err.to_string().contains("format characters"), "{err}");
    tickforge_client::Session::join(&server.url, &token, None, "Zoë ☃")
        .await
        .expect("other Unicode is welcome");

    // POST /matches: an unknown setting is refused, naming it; a radius that would overflow
    // the arena's arithmetic is out of range.
    for (config, mentions) in [
        (json!({ "max_playerz": 4 }), "max_playerz"),
        (json!({ "player_radius_mm": i32::MAX }), "player_radius_mm"),
        (json!({ "time_limit_ticks": u64::MAX }), "time_limit_ticks"),
    ] {
        let err = tickforge_client::create_match(&server.url, &token, "arena", Some(config), None)
            .await
            .expect_err("refused");
        let err = err.to_string();
        assert!(err.contains("400") && err.contains(mentions), "{err}");
    }
    server.stop().await;
}
