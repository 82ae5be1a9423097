//! End-to-end tests of tickforge, one behaviour per file under `tests/tests/`, and the helpers
//! they share: a real server on 127.0.0.1 port 0 with its data in a temporary directory, and the
//! paths of the workspace's binaries for tests that run them as child processes.
//!
//! Behaviours of a single crate are tested in that crate (`protocol/tests`, `server/tests`,
//! `replays/tests`); this crate holds those that need a server, clients and files together.

pub mod blackhole;
pub mod fuzz;
pub mod nats;
pub mod postgres;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tickforge_protocol::{EntityState, MatchId, SimSnapshot, Tick};
use tickforge_server::config::{ConfigArgs, ServerConfig};
use tickforge_server::net::{AppState, Server};
use tokio_util::sync::CancellationToken;

/// A server running in this process.
#[derive(Debug)]
pub struct TestServer {
    /// `ws://127.0.0.1:PORT`
    pub url: String,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Start a server with the defaults, changed by `adjust`, on a free port.
    pub async fn start(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::start_with(Server::builder(), adjust).await
    }

    /// [`TestServer::start`] from a builder (with games or sinks of a test's own).
    pub async fn start_with(
        builder: tickforge_server::net::ServerBuilder,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ConfigArgs::default().resolve().expect("defaults are valid");
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.data_dir = dir.path().to_path_buf();
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let server = builder
            .bind(config, shutdown.clone())
            .await
            .expect("the server binds");
        let url = format!("ws://{}", server.local_addr().expect("bound"));
        let state = server.state();
        let task = tokio::spawn(server.run());
        TestServer {
            url,
            state,
            dir,
            shutdown,
            task,
        }
    }

    /// Shut down gracefully (matches close their logs) and wait for it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("stops within 20 s")
            .expect("no panic");
        self.dir
    }

    /// The replay file of match `id`.
    pub fn replay_path(&self, id: MatchId) -> PathBuf {
        self.state
            .config
            .replay_dir()
            .join(tickforge_server::matches::replay_file_name(id))
    }

    /// A guest token.
    pub async fn token(&self, name: &str) -> String {
        tickforge_client::guest_token(&self.url, name, false)
            .await
            .expect("a guest token")
    }

    /// A new arena match of `bots` dev bots in a small (8 m) arena, ending on its time limit
    /// after `ticks` ticks, with room for one more player; its id.
    pub async fn bot_arena(&self, bots: u32, ticks: u64) -> u64 {
        let token = self.token("host").await;
        let body = serde_json::json!({ "game": "arena", "bots": bots, "config": {
            "max_players": bots + 1, "width_mm": 8000, "height_mm": 8000, "time_limit_ticks": ticks
        }});
        let (status, reply) = tickforge_client::http::request(
            &self.url,
            "POST",
            "/matches",
            Some(&token),
            Some(body.to_string()),
        )
        .await
        .expect("creates");
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
        serde_json::from_slice::<serde_json::Value>(&reply).expect("JSON")["id"]
            .as_u64()
            .expect("an id")
    }

    /// A player `name` joined to match `id` (with a guest token of that name).
    pub async fn join(&self, id: MatchId, name: &str) -> tickforge_client::Session {
        let token = self.token(name).await;
        tickforge_client::Session::join(&self.url, &token, Some(id), name)
            .await
            .expect("joins")
    }

    /// A guest spectator token.
    pub async fn spectator_token(&self, name: &str) -> String {
        tickforge_client::guest_token(&self.url, name, true)
            .await
            .expect("a guest token")
    }

    /// Create a match of `game` with these settings over the defaults; returns its id.
    pub async fn create_match(&self, game: &str, config: serde_json::Value, seed: u64) -> MatchId {
        let token = self.token("admin").await;
        let info =
            tickforge_client::create_match(&self.url, &token, game, Some(config), Some(seed))
                .await
                .expect("created");
        MatchId(info["id"].as_u64().expect("an id"))
    }

    /// Wait until match `id`'s replay file holds tick `tick` durably.
    pub async fn wait_durable(&self, id: MatchId, tick: Tick) {
        let shared = self.state.registry.shared(id).expect("the match exists");
        for _ in 0..1000 {
            if shared.info.read().durable_tick >= tick {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "match {id} did not make tick {} durable within 10 s",
            tick.0
        );
    }
}

/// Read (and apply) until `session`'s mirror reaches `tick`, answering nothing; returns the
/// messages seen.
pub async fn read_until(
    session: &mut tickforge_client::Session,
    tick: Tick,
) -> Vec<tickforge_protocol::ServerMessage> {
    let mut seen = Vec::new();
    while session.mirror().tick() < tick {
        let message = tokio::time::timeout(Duration::from_secs(10), session.recv())
            .await
            .expect("messages keep coming")
            .expect("the session holds");
        seen.push(message);
    }
    seen
}

/// The public part of a full snapshot, shaped like a client mirror (components in the order of
/// the component table, which is the order they were registered in).
pub fn public_view(snapshot: &SimSnapshot) -> Vec<EntityState> {
    const PRIVATE: &[&str] = &["cooldown", "pickup_timer"];
    snapshot
        .entities
        .iter()
        .map(|e| {
            let components: Vec<_> = e
                .components
                .iter()
                .filter(|c| !PRIVATE.contains(&c.name()))
                .cloned()
                .collect();
            EntityState {
                id: e.id,
                components,
            }
        })
        .collect()
}

/// Start the `tickforge-server` binary on a free loopback port with its data in `dir` (plus
/// `args`); returns the child and its `ws://` address, read from the line it prints.
pub async fn start_binary(dir: &Path, args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(binary("tickforge-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        // TICKFORGE_TEST_LOGS=1 shows the servers' logs in the test's output.
        .stderr(if std::env::var_os("TICKFORGE_TEST_LOGS").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("it prints its address")
        .expect("reads")
        .expect("a line");
    let addr = first
        .rsplit("http://")
        .next()
        .expect("an address")
        .trim()
        .to_string();
    // Keep reading what else it prints, as an operator's terminal would.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("ws://{addr}"))
}

/// Run `command` (a browser script, the TypeScript client's tests) to its end within `limit`;
/// returns whether it succeeded and everything it printed, which is also echoed for the
/// test's log. `what` names it in the failures.
pub async fn run_tool(
    command: &mut tokio::process::Command,
    limit: Duration,
    what: &str,
) -> (bool, String) {
    let out = tokio::time::timeout(limit, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within {limit:?}"))
        .unwrap_or_else(|e| {
            panic!("{what} runs (scripts/install-test-tools installs what it needs): {e}")
        });
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    (out.status.success(), report)
}

/// The path of a workspace binary, built if it is not there yet.
pub fn binary(name: &str) -> PathBuf {
    let target = target_dir();
    let path = target.join("debug").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--bin", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    path
}

fn target_dir() -> PathBuf {
    // This test executable lives in <target>/debug/deps/.
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("inside a target dir")
}

/// `HOST:PORT` of a `ws://HOST:PORT` address.
pub fn authority(url: &str) -> &str {
    url.trim_start_matches("ws://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
}

/// Send raw bytes to the server at `url` and read what comes back until it closes the
/// connection or `wait` passes; returns the text read and whether the server closed. A
/// server that is not listening (yet) answers nothing and counts as closed.
pub async fn raw_exchange(url: &str, request: &[u8], wait: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(authority(url)).await else {
        return (String::new(), true);
    };
    if stream.write_all(request).await.is_err() {
        return (String::new(), true);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// The resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Record a headless drift match of `players` players and `ticks` ticks into `path`: every
/// player moves every tick, so the file grows by about 2 KiB per tick with 64 players.
pub fn record_drift(path: &Path, match_id: u64, players: u32, ticks: u64) {
    use tickforge_server::headless::{self, HeadlessMatch};
    use tickforge_server::log::{FsyncPolicy, LogConfig};
    let spec = HeadlessMatch {
        setup: tickforge_server::MatchSetup {
            match_id: MatchId(match_id),
            seed: match_id,
            tick_rate_hz: 60,
            game: tickforge_protocol::GameConfig::Drift(tickforge_protocol::DriftConfig {
                max_players: players,
                ..Default::default()
            }),
        },
        players,
        ticks,
        bot_seed: match_id,
    };
    let log = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    headless::record(&spec, path, log, 0, |_| {}).expect("records the match");
}

/// Every row of every read model table, sorted, as text: two databases (of either kind) with
/// the same dump hold the same read models.
pub fn dump_read_models(target: &tickforge_projections::Target) -> BTreeMap<String, Vec<String>> {
    let mut store = tickforge_projections::SqlStore::open_for_queries(target)
        .unwrap_or_else(|e| panic!("opens {target}: {e}"));
    let mut out = BTreeMap::new();
    for table in tickforge_projections::sql::TABLES {
        let rows = store
            .database()
            .query(&format!("SELECT * FROM {table}"), &[])
            .unwrap_or_else(|e| panic!("reads {table}: {}", e.message));
        let mut lines: Vec<String> = rows
            .iter()
            .map(|r| {
                r.0.iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        lines.sort();
        out.insert(table.to_string(), lines);
    }
    out
}
