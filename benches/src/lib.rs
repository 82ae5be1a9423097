//! Benchmarks of tickforge. Nothing here is a library: the criterion benches live in
//! `benches/`, and each figure in `BENCHMARKS.md` names the command that reproduces it.
//!
//! The helpers below build the worlds the benches measure, so that every bench starts from
//! the same, described state.

use tickforge_protocol::{
    ArenaConfig, Command, CommandId, ComponentValue, Delta, EntityId, EntityState, GameConfig,
    MatchId, PlayerId, Seq, Tick,
};
use tickforge_server::sim::{CommandInput, MatchSetup, Sim};

/// A delta of `n` entities, each with a changed position and velocity: the shape of an arena
/// tick in which everybody moves.
pub fn delta_of(n: u32) -> Delta {
    Delta {
        tick: Tick(12_345),
        seq: Seq(678_901),
        changed: (0..n)
            .map(|i| EntityState {
                id: EntityId(i + 1),
                components: vec![
                    ComponentValue::Position {
                        x: 10_000 + i as i32 * 37,
                        y: 20_000 - i as i32 * 53,
                    },
                    ComponentValue::Velocity { vx: 70, vy: -70 },
                ],
            })
            .collect(),
        removed: vec![],
    }
}

/// An arena match sized for `players`, with everyone joined and spawned.
pub fn arena_with(players: u32) -> Sim {
    let side = 8_000 * (players as f64).sqrt().ceil() as i32;
    let rules = ArenaConfig {
        max_players: players,
        width_mm: side,
        height_mm: side,
        ..ArenaConfig::default()
    };
    let setup = MatchSetup {
        match_id: MatchId(1),
        seed: 1,
        tick_rate_hz: 60,
        game: GameConfig::Arena(rules),
    };
    let mut sim = tickforge_server::game::builtin()
        .sim(&setup)
        .expect("arena builds");
    let joins: Vec<_> = (1..=players)
        .map(|p| CommandInput {
            player: PlayerId(p),
            id: CommandId(0),
            command: Command::Join {
                name: format!("p{p}"),
            },
        })
        .collect();
    sim.run_tick(joins);
    sim.take_delta();
    sim
}

/// A drift match with `players`, everyone joined.
pub fn drift_with(players: u32) -> Sim {
    let game = GameConfig::Drift(tickforge_protocol::DriftConfig {
        max_players: players,
        ..Default::default()
    });
    let setup = MatchSetup {
        match_id: MatchId(2),
        seed: 1,
        tick_rate_hz: 60,
        game,
    };
    let mut sim = tickforge_server::game::builtin()
        .sim(&setup)
        .expect("drift builds");
    let joins: Vec<_> = (1..=players)
        .map(|p| CommandInput {
            player: PlayerId(p),
            id: CommandId(0),
            command: Command::Join {
                name: format!("p{p}"),
            },
        })
        .collect();
    sim.run_tick(joins);
    sim.take_delta();
    sim
}

/// One tick of arena input: every player steers (the direction turning with the tick), and
/// one player in eight fires.
pub fn arena_inputs(sim: &Sim, players: u32, tick: u32) -> Vec<CommandInput> {
    let mut out = Vec::with_capacity(players as usize + players as usize / 8);
    for p in 1..=players {
        let Some(entity) = sim.player_entity(PlayerId(p)) else {
            continue;
        };
        let phase = (tick + p * 7) % 16;
        let (vx, vy) = [(70, 70), (-70, 70), (-70, -70), (70, -70)][(phase / 4) as usize];
        out.push(CommandInput {
            player: PlayerId(p),
            id: CommandId(tick * 2),
            command: Command::Move { entity, vx, vy },
        });
        if (p + tick).is_multiple_of(8) {
            out.push(CommandInput {
                player: PlayerId(p),
                id: CommandId(tick * 2 + 1),
                command: Command::Fire {
                    entity,
                    dx: vy,
                    dy: -vx,
                },
            });
        }
    }
    out
}

/// One tick of drift input: one input from every player.
pub fn drift_inputs(sim: &Sim, players: u32, tick: u32) -> Vec<CommandInput> {
    (1..=players)
        .filter_map(|p| {
            let entity = sim.player_entity(PlayerId(p))?;
            let d = if (tick + p).is_multiple_of(2) { 5 } else { -5 };
            Some(CommandInput {
                player: PlayerId(p),
                id: CommandId(tick),
                command: Command::Drift {
                    entity,
                    dx: d,
                    dy: -d,
                },
            })
        })
        .collect()
}

/// What a load test from one host needs beyond the defaults: the swarm creates every room
/// with one token from one address, far more than a player's allowance.
pub const LOAD_TEST_LIMITS: &[&str] = &[
    "--max-matches-per-player",
    "100000",
    "--max-matches-per-address",
    "100000",
];

/// Start the release server at `bin_dir` pinned to core 0 on `127.0.0.1:port` with its data in
/// `data` (and a raised file-descriptor limit), with `extra` arguments; returns once it accepts
/// connections.
pub fn start_pinned_server(
    bin_dir: &std::path::Path,
    port: u16,
    data: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let line = format!(
        "ulimit -n 65536 2>/dev/null; exec taskset -c 0 {} --listen 127.0.0.1:{port} --data-dir {} --log-format json {}",
        bin_dir.join("tickforge-server").display(),
        data.display(),
        extra.join(" ")
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            anyhow::bail!("the server did not start listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// A process's CPU time so far (utime + stime from `/proc/PID/stat`), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// A metric's value from a server's `/metrics` (the first line that starts with `name `).
pub async fn metric(url: &str, name: &str) -> anyhow::Result<f64> {
    use anyhow::Context;
    let (_, page) = tickforge_client::http::request(url, "GET", "/metrics", None, None).await?;
    let page = String::from_utf8_lossy(&page);
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} on /metrics"))
}

/// The cumulative buckets of histogram `name` on a `/metrics` page: (upper bound, count).
pub async fn histogram(url: &str, name: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let (_, page) = tickforge_client::http::request(url, "GET", "/metrics", None, None).await?;
    let page = String::from_utf8_lossy(&page);
    let prefix = format!("{name}_bucket{{le=\"");
    Ok(page
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect())
}

/// The `q` quantile (0..1) of the observations between two readings of a histogram's buckets,
/// interpolated within its bucket as Prometheus' `histogram_quantile` does.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, n)| *n);
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, n) in counts {
        if n >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let within = (rank - lower.1) / (n - lower.1).max(1e-9);
            return lower.0 + (le - lower.0) * within;
        }
        lower = (le, n);
    }
    lower.0
}

/// Spectators that only count: `n` connections to `url` (a `ws://…/spectate/ID?…` URL with its
/// token), each adding every frame it receives to the returned counter. Abort the tasks to
/// close them.
pub async fn counting_spectators(
    url: &str,
    n: usize,
) -> anyhow::Result<(
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    use anyhow::Context;
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut watchers = Vec::with_capacity(n);
    // 64 handshakes at a time: thousands of spectators connect in seconds, not minutes.
    let connects = futures_util::stream::iter(0..n)
        .map(|_| async {
            let request = url.into_client_request()?;
            let (ws, _) = tokio_tungstenite::connect_async(request)
                .await
                .with_context(|| format!("a spectator connects to {url}"))?;
            anyhow::Ok(ws)
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    for ws in connects {
        let ws = ws?;
        let frames = frames.clone();
        watchers.push(tokio::spawn(async move {
            let (_, mut read) = ws.split();
            while let Some(Ok(_)) = read.next().await {
                frames.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    Ok((frames, watchers))
}

/// The id of the first running match on the server at `url` (the one a bench's bots started).
pub async fn first_running_match(url: &str) -> anyhow::Result<u64> {
    let matches = tickforge_client::get_json(url, "/matches?state=running").await?;
    matches
        .as_array()
        .and_then(|a| a.first())
        .and_then(|m| m["id"].as_u64())
        .ok_or_else(|| anyhow::anyhow!("the bots started no match: {matches}"))
}
