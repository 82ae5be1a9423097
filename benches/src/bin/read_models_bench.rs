//! The read side's query latency with many matches in the database (BENCHMARKS.md, "Read
//! models").
//!
//! `build` plays `--distinct` headless arena matches (16 scripted players, `--ticks` each) and
//! projects `--matches` matches into `--db`: each a copy of one of them under its own id,
//! created `--apart-ms` after the one before, its players named from a pool of `--names`, so
//! that careers and leaderboards aggregate over many matches. `query` times the queries, each
//! `--runs` times, interleaved, on the store itself (no HTTP), and prints p50 / p99 / max.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tickforge_projections::query::Period;
use tickforge_projections::{Projector, Queries, SqlStore, Store, Target};
use tickforge_protocol::{
    ArenaConfig, Event, EventKind, GameConfig, MatchId, PROTOCOL_VERSION, REPLAY_FORMAT_VERSION,
    RejectedCommand, ReplayHeader,
};
use tickforge_server::MatchSetup;
use tickforge_server::headless::{self, HeadlessMatch};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Build {
        /// A SQLite file or a PostgreSQL URL.
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 10_000)]
        matches: u64,
        #[arg(long, default_value_t = 20)]
        distinct: u64,
        #[arg(long, default_value_t = 600)]
        ticks: u64,
        #[arg(long, default_value_t = 2000)]
        names: u64,
        #[arg(long, default_value_t = 60_000)]
        apart_ms: u64,
    },
    Query {
        /// A SQLite file or a PostgreSQL URL.
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
}

type Ticks = Vec<(u64, Vec<Event>, Vec<RejectedCommand>)>;

fn play(seed: u64, ticks: u64) -> anyhow::Result<Ticks> {
    let spec = HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(1),
            seed,
            tick_rate_hz: 60,
            // Ended by its time limit, with a winner: leaderboards count ended matches.
            game: GameConfig::Arena(ArenaConfig {
                score_limit: 1_000_000,
                time_limit_ticks: ticks,
                ..ArenaConfig::default()
            }),
        },
        players: 16,
        ticks: ticks + 1,
        bot_seed: seed,
    };
    let mut out = Vec::new();
    headless::play_with(&spec, |_, report| {
        out.push((
            report.tick.0,
            report.events.clone(),
            report.rejections.clone(),
        ));
    })?;
    Ok(out)
}

fn build(
    db: String,
    matches: u64,
    distinct: u64,
    ticks: u64,
    names: u64,
    apart_ms: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let played: Vec<Ticks> = (1..=distinct.max(1))
        .map(|seed| play(seed, ticks))
        .collect::<Result<_, _>>()?;
    eprintln!("played {} matches in {:?}", played.len(), started.elapsed());
    let db = Target::parse(&db);
    if let Target::Sqlite(path) = &db {
        let _ = std::fs::remove_file(path);
    }
    let store = SqlStore::open_emptied(&db)?;
    let mut projector = Projector::new(store);
    let base = 1_796_000_000_000u64;
    let started = Instant::now();
    let mut events = 0u64;
    for k in 0..matches {
        let id = k + 1;
        let source = &played[(k % played.len() as u64) as usize];
        let header = ReplayHeader {
            format_version: REPLAY_FORMAT_VERSION,
            protocol_version: PROTOCOL_VERSION,
            game: "arena".into(),
            rules_version: 1,
            match_id: MatchId(id),
            seed: k,
            tick_rate_hz: 60,
            config: GameConfig::Arena(ArenaConfig::default()),
            created_at_unix_ms: base + k * apart_ms,
            snapshot_every_ticks: 0,
            hash_parts: vec![],
        };
        projector.open(&header)?;
        for (tick, tick_events, rejections) in source {
            let relabelled: Vec<Event> = tick_events
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.match_id = MatchId(id);
                    if let EventKind::PlayerJoined { player, name, .. } = &mut e.kind {
                        *name = format!("player-{}", (k * 7 + u64::from(player.0)) % names);
                    }
                    e
                })
                .collect();
            events += relabelled.len() as u64;
            projector.tick(id, *tick, &relabelled, rejections)?;
            if projector.pending_rows() >= tickforge_server::projection::MAX_BATCH_ROWS {
                projector.commit()?;
            }
        }
        projector.finish(id)?;
        projector.commit()?;
        projector.close(id);
        if id % 1000 == 0 {
            eprintln!("{id} matches projected ({:?})", started.elapsed());
        }
    }
    let size = match &db {
        Target::Sqlite(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        Target::Postgres(_) => 0,
    };
    println!(
        "built {db}: {matches} matches, {events} events in {:.1} s; {:.0} MB",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    Ok(())
}

fn quantiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

fn query(db: String, runs: usize) -> anyhow::Result<()> {
    let db = Target::parse(&db);
    let mut store = SqlStore::open_for_queries(&db)?;
    let matches = store.checkpoints()?.len() as u64;
    anyhow::ensure!(matches > 0, "{db} holds no matches: run build first");
    // The last match's day and week.
    let last = store.summary(matches)?.map_or(0, |s| s.created_at_unix_ms);
    let names = [
        "leaderboard all",
        "leaderboard week",
        "leaderboard day",
        "timeline",
        "career",
        "summary",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..runs {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = rng % matches + 1;
        let player = format!("player-{}", rng % 2000);
        for (n, t) in times.iter_mut().enumerate() {
            let started = Instant::now();
            match n {
                0 => drop(store.leaderboard("arena", Period::All, last, 10, 0)?),
                1 => drop(store.leaderboard("arena", Period::Week, last, 10, 0)?),
                2 => drop(store.leaderboard("arena", Period::Day, last, 10, 0)?),
                3 => drop(store.timeline(id, 60, 0, 100)?),
                4 => drop(store.career(&player, 10)?),
                _ => drop(store.summary(id)?),
            }
            t.push(started.elapsed());
        }
    }
    println!("{matches} matches in {db}, {runs} runs of each:");
    for (name, t) in names.iter().zip(times) {
        println!("  {name:<18} {}", quantiles(t));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Build {
            db,
            matches,
            distinct,
            ticks,
            names,
            apart_ms,
        } => build(db, matches, distinct, ticks, names, apart_ms),
        Cmd::Query { db, runs } => query(db, runs),
    }
}
