//! The TypeScript client (clients/ts) against the real server binary: its `npm test` type-checks
//! the package and the web pages (strict), then runs its `node --test` suites, which start this
//! workspace's `tickforge-server` themselves. Then the scripts the server embeds (server/web/js)
//! must be what a fresh compile of clients/ts gives. scripts/install-test-tools installs the
//! packages from the lockfile.

use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_passes_its_tests_against_the_server() {
    let server = tickforge_tests::binary("tickforge-server");
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts");
    let (ok, report) = tickforge_tests::run_tool(
        tokio::process::Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(&package)
            .env("TICKFORGE_SERVER", &server),
        Duration::from_secs(300),
        "the TypeScript client's tests",
    )
    .await;
    assert!(ok, "the TypeScript client's tests should pass:\n{report}");
    assert!(
        report.contains("# fail 0"),
        "node --test reports no failure:\n{report}"
    );

    // The embedded scripts are the compiled TypeScript, byte for byte.
    let fresh = tempfile::tempdir().expect("a temp dir");
    let out = tokio::process::Command::new("npx")
        .args(["tsc", "-p", "tsconfig.web.json", "--outDir"])
        .arg(fresh.path())
        .current_dir(&package)
        .output()
        .await
        .expect("tsc runs");
    assert!(
        out.status.success(),
        "the web pages compile: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let embedded = package.join("../../server/web/js");
    let (mut compiled, mut checked_in) = (Vec::new(), Vec::new());
    list(fresh.path(), fresh.path(), &mut compiled);
    list(&embedded, &embedded, &mut checked_in);
    assert_eq!(
        compiled, checked_in,
        "server/web/js differs from a fresh compile of clients/ts: run `npm run web` in clients/ts"
    );
}

/// Every file under `dir`, as (path relative to `root`, contents), sorted.
fn list(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("an entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            list(root, &path, out);
        } else {
            let name = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            out.push((name, std::fs::read_to_string(&path).expect("text")));
        }
    }
}
