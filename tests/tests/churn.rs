//! Short matches back to back leave nothing behind but a bounded summary: after the first
//! hundred, `/metrics` and `GET /matches` stay the same size, and the registry holds only the
//! most recent finished matches. (The same with 10,000 matches against the release server is
//! `target/release/churn`, in docs/RELIABILITY.md.)

use std::time::Duration;

use serde_json::json;
use tickforge_tests::TestServer;

/// Create `n` one-tick matches, waiting whenever the per-creator limits say so, then wait for
/// them all to end.
async fn churn(server: &TestServer, token: &str, n: usize) {
    let mut made = 0;
    while made < n {
        match tickforge_client::create_match(
            &server.url,
            token,
            "arena",
            Some(json!({ "time_limit_ticks": 1 })),
            None,
        )
        .await
        {
            Ok(_) => made += 1,
            Err(e) if e.to_string().contains("429") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("creating a match: {e}"),
        }
    }
    for _ in 0..400 {
        if server.state.registry.counts().0 == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("one-tick matches should all end within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_matches_leave_only_a_bounded_summary() {
    let server = TestServer::start(|c| c.finished_matches_kept = 50).await;
    let token = server.token("churn").await;
    let sizes = async || {
        let metrics = server.state.metrics.render().len();
        let (_, matches) =
            tickforge_client::http::request(&server.url, "GET", "/matches", None, None)
                .await
                .expect("lists");
        (metrics, matches.len())
    };
    churn(&server, &token, 100).await;
    let (metrics_100, matches_100) = sizes().await;
    churn(&server, &token, 200).await;
    let (metrics_300, matches_300) = sizes().await;
    println!(
        "after 100 matches: /metrics {metrics_100} B, /matches {matches_100} B; after 300: {metrics_300} B, {matches_300} B"
    );
    assert!(
        metrics_300 <= metrics_100 + metrics_100 / 20,
        "/metrics stays flat: {metrics_100} then {metrics_300} bytes"
    );
    assert!(
        matches_300 <= matches_100 + matches_100 / 20,
        "GET /matches stays bounded: {matches_100} then {matches_300} bytes"
    );
    assert_eq!(
        server.state.registry.counts(),
        (0, 50),
        "no live match is left, and 50 finished ones are listed"
    );
    server.stop().await;
}
