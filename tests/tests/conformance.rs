//! WebSocket conformance: the Autobahn test cases (kosoku, installed by scripts/test) against
//! the server's `/echo`, which runs on the same upgrade path and tungstenite stack as players.
//! Compression (12.*, 13.*) is not offered and so not tested. The expected result of every case
//! is kept in `tests/conformance/autobahn-expected.json`; any difference fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tickforge_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_cases_behave_as_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let kosoku = root.join("target/test-tools/kosoku/bin/kosoku");
    assert!(
        kosoku.exists(),
        "{} is missing: run scripts/install-test-tools (scripts/test does)",
        kosoku.display()
    );
    let server = TestServer::start(|c| c.conformance_echo = true).await;
    let reports = tempfile::tempdir().expect("temp dir");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(&kosoku)
            .arg(format!("{}/echo", server.url))
            .args(["-x", "12.*", "-x", "13.*", "-p", "2", "-o"])
            .arg(reports.path())
            .output(),
    )
    .await
    .expect("the suite finishes within 5 minutes")
    .expect("kosoku runs");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reports.path().join("index.json")).expect("a report"),
    )
    .expect("JSON");
    let cases = index
        .as_object()
        .and_then(|agents| agents.values().next())
        .and_then(|c| c.as_object())
        .expect("one agent");
    let actual: BTreeMap<String, (String, String)> = cases
        .iter()
        .map(|(id, v)| {
            (
                id.clone(),
                (
                    v["behavior"].as_str().unwrap_or("").into(),
                    v["behaviorClose"].as_str().unwrap_or("").into(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, serde_json::Value> = serde_json::from_slice(
        &std::fs::read(root.join("tests/conformance/autobahn-expected.json"))
            .expect("expected results"),
    )
    .expect("JSON");
    let mut differences = Vec::new();
    for (id, want) in &expected {
        let want = (
            want["behavior"].as_str().unwrap_or("").to_string(),
            want["behaviorClose"].as_str().unwrap_or("").to_string(),
        );
        match actual.get(id) {
            Some(got) if *got == want => {}
            got => differences.push(format!("{id}: expected {want:?}, got {got:?}")),
        }
    }
    for id in actual.keys().filter(|id| !expected.contains_key(*id)) {
        differences.push(format!("{id}: not in the expected results"));
    }
    let failed = actual.values().filter(|(b, _)| b == "FAILED").count();
    println!(
        "{} Autobahn cases, {failed} failed, {} differences from the recorded results",
        actual.len(),
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "the conformance results changed:\n{}\n{}",
        differences.join("\n"),
        String::from_utf8_lossy(&out.stdout)
    );
    server.stop().await;
}
