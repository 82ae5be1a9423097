//! Reading a long match on unauthenticated paths costs the server a bounded amount of memory,
//! whatever the readers do: downloads that are never read, spectators replaying from the first
//! event who never read, and concurrent listings of replay files that have no footer. Measured
//! on the real binary by its peak resident set (VmHWM).

use std::time::Duration;

use tickforge_tests::{authority, record_drift, start_binary};
use tokio::io::AsyncWriteExt;

/// The peak resident set of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Reset the peak to the current resident set (`clear_refs` 5), so that a phase's peak is
/// its own and not, say, startup's.
fn reset_peak(pid: u32) -> u64 {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    peak_rss(pid)
}

const MB: u64 = 1024 * 1024;

/// A connection that sends `request` and then reads nothing, with a small receive window.
async fn never_reading(host: &str, request: String) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small window");
    let mut stream = socket
        .connect(host.parse().expect("an address"))
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_readers_of_a_long_match_add_little_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let replays = dir.path().join("replays");
    std::fs::create_dir_all(&replays).expect("creates");
    // About 48 MB: 13,000 ticks of 64 drifting players.
    let file = replays.join("match-000001.tfr");
    record_drift(&file, 1, 64, 13_000);
    let bytes = std::fs::metadata(&file).expect("recorded").len();
    assert!(bytes > 40 * MB, "the file is long: {bytes} bytes");

    let (child, url) = start_binary(dir.path(), &["--write-timeout-secs", "30"]).await;
    let pid = child.id().expect("a pid");
    let host = authority(&url).to_string();
    let token = tickforge_client::guest_token(&url, "eye", true)
        .await
        .expect("token");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Ten downloads, never read. Reading the whole file into memory for each took 10 × 50 MB.
    let before = reset_peak(pid);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(
            never_reading(
                &host,
                format!("GET /replays/1 HTTP/1.1\r\nhost: {host}\r\n\r\n"),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let downloads = peak_rss(pid).saturating_sub(before);
    drop(held);

    // Ten spectators from the first event, never read. Decoding the whole file before sending
    // anything took 615 MB for ten.
    let before = reset_peak(pid);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(
            never_reading(
                &host,
                format!(
                    "GET /spectate/1?from=0&format=json HTTP/1.1\r\nhost: {host}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {token}\r\n\r\n"
                ),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spectators = peak_rss(pid).saturating_sub(before);
    drop(held);

    // A replay file without a footer appears (a running match's, or one copied in), and
    // sixteen listings run at once. Each read and scanned the whole file: 911 MB for sixteen.
    let unsealed = std::fs::read(&file).expect("reads");
    let s = tickforge_server::log::scan::scan(
        &unsealed,
        tickforge_server::log::format::DEFAULT_MAX_RECORD_BYTES,
    )
    .expect("scans");
    let cut = s.footer_offset.expect("a footer") as usize;
    std::fs::write(replays.join("match-000002.tfr"), &unsealed[..cut]).expect("writes");
    drop(unsealed);
    let before = reset_peak(pid);
    let listings: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { tickforge_client::get_json(&url, "/replays").await })
        })
        .collect();
    for l in listings {
        let listed = l.await.expect("ran").expect("lists");
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    }
    let listing = peak_rss(pid).saturating_sub(before);

    println!(
        "peak RSS added: 10 downloads {} MB, 10 spectators {} MB, 16 listings {} MB (file {} MB)",
        downloads / MB,
        spectators / MB,
        listing / MB,
        bytes / MB
    );
    assert!(
        downloads <= 50 * MB,
        "10 unread downloads add {} MB",
        downloads / MB
    );
    assert!(
        spectators <= 50 * MB,
        "10 unread spectators add {} MB",
        spectators / MB
    );
    assert!(
        listing <= bytes + 50 * MB,
        "16 listings scan the file once, not 16 times: {} MB",
        listing / MB
    );
    let mut child = child;
    child.start_kill().expect("stops");
    let _ = child.wait().await;
}
