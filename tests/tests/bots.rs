//! `tickforge-bots` as a user runs it: 50 bots against a server for a few seconds report
//! latency samples and no failures; `tickforge-bots spectate` prints the match's events as JSON
//! lines with contiguous seqs; a replay file drives bots with its recorded commands.

use std::time::Duration;
use tickforge_protocol::Event;
use tickforge_tests::TestServer;

async fn bots(args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(tickforge_tests::binary("tickforge-bots"))
        .args(args)
        .output()
        .await
        .expect("the bots run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tickforge-bots should succeed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_bots_report_latency_and_no_failures_and_spectate_prints_the_stream() {
    let server = TestServer::start(|_| {}).await;
    let report = bots(&[
        "--url",
        &server.url,
        "--bots",
        "50",
        "--game",
        "drift",
        "--duration",
        "3",
        "--ramp-up",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(report["connected"], 50, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    let samples = report["latency"]["samples"].as_u64().expect("samples");
    assert!(
        samples > 1000,
        "50 bots × 60 inputs/s × 3 s should give thousands of latency samples, got {samples}"
    );
    let p99 = report["latency"]["p99_ms"].as_f64().expect("p99");
    assert!(p99 > 0.0 && p99 < 1000.0, "a plausible p99: {p99}");
    assert!(
        report["bytes_in_per_client_per_tick"]
            .as_f64()
            .expect("bytes")
            > 10.0,
        "{report}"
    );
    assert!(
        report["server"]["ticks"].as_f64().is_some(),
        "the server's figures are read from /metrics: {report}"
    );

    // The first room (match 1) as JSON lines, from the beginning to its end.
    let spectate = tokio::process::Command::new(tickforge_tests::binary("tickforge-bots"))
        .args([
            "spectate",
            "--url",
            &server.url,
            "--match",
            "1",
            "--from",
            "0",
        ])
        .output();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = server.stop().await;
    let out = tokio::time::timeout(Duration::from_secs(20), spectate)
        .await
        .expect("spectate ends with the match")
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one event"))
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.0).collect();
    assert!(
        seqs.len() > 100,
        "a room of 8 drifting for seconds has many events: {}",
        seqs.len()
    );
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "contiguous seqs from 1"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_file_drives_the_bots() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../replays/fixtures/v1/drift-8p-300t.tfr"
    );
    let server = TestServer::start(|_| {}).await;
    let behavior = format!("replay={fixture}");
    let report = bots(&[
        "--url",
        &server.url,
        "--bots",
        "16",
        "--behavior",
        &behavior,
        "--duration",
        "2",
        "--ramp-up",
        "0.5",
        "--json",
    ])
    .await;
    assert_eq!(report["connected"], 16, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        report["latency"]["samples"].as_u64().expect("samples") > 500,
        "recorded inputs are sent and seen applied: {report}"
    );
    server.stop().await;
}
