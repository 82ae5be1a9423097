//! The TypeScript client (clients/ts) against the real server binary: its `npm test` type-checks
//! the package (strict), then runs its `node --test` suites, which start this workspace's
//! `tickforge-server` themselves. scripts/install-test-tools installs its packages from the
//! lockfile.

use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_passes_its_tests_against_the_server() {
    let server = tickforge_tests::binary("tickforge-server");
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(&package)
            .env("TICKFORGE_SERVER", &server)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client's tests finish within 5 minutes")
    .expect("npm runs (scripts/install-test-tools installs the client's packages)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the TypeScript client's tests should pass:\n{report}"
    );
    assert!(
        report.contains("# fail 0"),
        "node --test reports no failure:\n{report}"
    );
}
