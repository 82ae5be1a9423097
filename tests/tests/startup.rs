//! The real binary at startup, given hostile surroundings: settings out of range, things that
//! are not replay files where replay files belong, a small open-file limit, an output nobody
//! reads, and a crashed match's file (which recovery cuts and closes with a footer).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tickforge_tests::{authority, binary, raw_exchange, start_binary};

/// Run the server binary with `args` and expect it to refuse to start; returns its stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(binary("tickforge-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{args:?} should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn settings_out_of_range_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let max = u64::MAX.to_string();
    for (flag, value) in [
        ("--handshake-timeout-secs", max.as_str()),
        ("--ping-interval-secs", max.as_str()),
        ("--pong-timeout-secs", max.as_str()),
        ("--write-timeout-secs", "0"),
        ("--outbound-queue", "4611686018427387904"),
        ("--token-ttl-secs", max.as_str()),
        ("--tick-rate", "0"),
        ("--match-inbox", "0"),
        ("--socket-send-buffer", "1"),
        ("--resume-window-ticks", max.as_str()),
        ("--idle-match-secs", "0"),
        ("--max-matches", "0"),
        ("--snapshot-every", max.as_str()),
    ] {
        let stderr = refused(dir.path(), &[flag, value]);
        assert!(
            stderr.contains(flag) && stderr.contains("outside the accepted range"),
            "{flag} {value}: the error names the setting and its range: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag} {value}: {stderr}");
    }
    let stderr = refused(dir.path(), &["--allowed-origins", "game.example"]);
    assert!(stderr.contains("--allowed-origins"), "{stderr}");
}

/// GET `path` from the server at `url`; (status, body).
async fn get(url: &str, path: &str) -> (u16, String) {
    let host = authority(url);
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    let (response, _) = raw_exchange(url, request.as_bytes(), Duration::from_secs(5)).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_links_and_directories_where_replays_belong_are_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let replays = dir.path().join("replays");
    std::fs::create_dir_all(&replays).expect("creates");
    let made = std::process::Command::new("mkfifo")
        .arg(replays.join("match-000001.tfr"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    std::os::unix::fs::symlink("/dev/zero", replays.join("match-000002.tfr")).expect("links");
    std::fs::create_dir(replays.join("match-000003.tfr")).expect("creates");
    tickforge_tests::record_drift(&replays.join("match-000004.tfr"), 4, 4, 60);
    std::fs::write(
        replays.join(format!("match-{}.tfr", u64::MAX)),
        b"an id past every limit",
    )
    .expect("writes");
    // Before the fix, the FIFO kept the server from ever listening, and the link read /dev/zero
    // until memory ran out.
    let (mut child, url) =
        tokio::time::timeout(Duration::from_secs(30), start_binary(dir.path(), &[]))
            .await
            .expect("the server listens despite what sits in its replay directory");
    let (status, body) = get(&url, "/replays").await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let ids: Vec<u64> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![4], "only the real replay is listed");
    for id in 1..=3 {
        let (status, body) = tokio::time::timeout(
            Duration::from_secs(10),
            get(&url, &format!("/replays/{id}")),
        )
        .await
        .expect("answered at once");
        assert_eq!(status, 404, "replay {id}: {body}");
    }
    // New matches take ids after the highest real one, not past u64::MAX.
    let token = tickforge_client::guest_token(&url, "t", false)
        .await
        .expect("token");
    let info = tickforge_client::create_match(&url, &token, "drift", None, None)
        .await
        .expect("created");
    assert_eq!(info["id"], 5, "{info}");
    child.start_kill().expect("stops");
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_does_not_take_the_server_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = tokio::process::Command::new(binary("tickforge-server"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    // Nobody will read what it prints.
    drop(child.stdout.take());
    let url = format!("ws://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if get(&url, "/healthz").await.0 == 200 {
            up = true;
            break;
        }
    }
    assert!(up, "the server serves although its output is closed");
    assert!(
        child.try_wait().expect("polls").is_none(),
        "and it is still running"
    );
    child.start_kill().expect("stops");
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_fits_a_small_open_file_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // Soft limit 128, hard 256: the server raises the soft limit to 256 and fits its caps.
    let server = binary("tickforge-server");
    let script = format!(
        "ulimit -Sn 128 && ulimit -Hn 256 && exec {} --listen 127.0.0.1:{port} --data-dir {}",
        server.display(),
        dir.path().display()
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let banner = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut limits = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("limits:") {
                limits = line;
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        limits
    });
    let warnings = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut text = String::new();
        let mut err = stderr;
        let _ = err.read_to_string(&mut text).await;
        text
    });
    let url = format!("ws://127.0.0.1:{port}");
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = get(&url, "/healthz").await;
        if status == 200 {
            health = serde_json::from_str(&body).expect("JSON");
            break;
        }
    }
    let limits = &health["limits"];
    assert_eq!(
        limits["open_files"]["soft"], 256,
        "raised to the hard limit: {health}"
    );
    assert_eq!(limits["open_files"]["started_with"], 128, "{health}");
    // (256 − 64) / 4 = 48 matches; (192 − 48) / 2 = 72 connections.
    assert_eq!(limits["max_matches"], 48, "{health}");
    assert_eq!(limits["max_connections"], 72, "{health}");
    let banner = tokio::time::timeout(Duration::from_secs(5), banner)
        .await
        .expect("the banner is printed")
        .expect("read");
    assert!(
        banner.contains("72 connections") && banner.contains("open files 256"),
        "the banner states the effective cap: {banner}"
    );

    // 100 idle connections against a cap of 72: the extra ones get 503 at once, nobody hangs.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
                .await
                .expect("connects"),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (response, closed) = raw_exchange(
        &url,
        format!("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 503") && closed,
        "over the cap: 503 and closed, not a hang: {response:?}"
    );
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if get(&url, "/healthz").await.0 == 200 {
            served = true;
            break;
        }
    }
    assert!(served, "served again once the connections close");
    child.start_kill().expect("stops");
    let _ = child.wait().await;
    let warnings = warnings.await.expect("read");
    let accept_failures = warnings.matches("accept failed").count();
    assert!(
        accept_failures <= 2,
        "no accept loop spinning on errors ({accept_failures} warnings)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_at_startup_closes_a_crashed_file_with_its_footer() {
    use tickforge_server::log::format::DEFAULT_MAX_RECORD_BYTES;
    use tickforge_server::log::scan;
    let dir = tempfile::tempdir().expect("temp dir");
    let replays = dir.path().join("replays");
    std::fs::create_dir_all(&replays).expect("creates");
    let path = replays.join("match-000001.tfr");
    tickforge_tests::record_drift(&path, 1, 4, 120);
    // A crash: the footer never written, half a tick at the end.
    let bytes = std::fs::read(&path).expect("reads");
    let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    let cut = s.footer_offset.expect("a footer") as usize - 5;
    std::fs::write(&path, &bytes[..cut]).expect("writes");
    let (mut child, url) = start_binary(dir.path(), &[]).await;
    let bytes = std::fs::read(&path).expect("reads");
    let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    assert!(s.footer.is_some(), "recovery wrote the footer");
    assert_eq!(s.last_tick.0, 119, "cut back to the last whole tick");
    let (status, body) = get(&url, "/replays").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"ticks\":119"), "{body}");
    child.start_kill().expect("stops");
    let _ = child.wait().await;
}
