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
