//! `tickforge-server`: until the network server lands, plays a headless match with scripted
//! bots and prints a summary.

use anyhow::{Context, bail};
use clap::Parser;
use std::collections::BTreeMap;
use std::time::Instant;
use tickforge_protocol::{GameConfig, MatchId};
use tickforge_server::MatchSetup;
use tickforge_server::headless::{self, HeadlessMatch};

/// Play a headless match with scripted bots and print what happened.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Game to play: arena or drift.
    #[arg(long, default_value = "arena")]
    game: String,
    /// Number of scripted players.
    #[arg(long, default_value_t = 16)]
    players: u32,
    /// Ticks to simulate (the match may end sooner).
    #[arg(long, default_value_t = 3600)]
    ticks: u64,
    /// Tick rate, in Hz (used to express the match's length in seconds).
    #[arg(long, default_value_t = 60)]
    tick_rate: u32,
    /// Seed of the match RNG.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(game) = GameConfig::default_for(&args.game) else {
        bail!(
            "unknown game {:?}: use --game arena or --game drift",
            args.game
        );
    };
    if args.tick_rate == 0 {
        bail!("--tick-rate must be at least 1");
    }
    let spec = HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(1),
            seed: args.seed,
            tick_rate_hz: args.tick_rate,
            game,
        },
        players: args.players,
        ticks: args.ticks,
        bot_seed: args.seed,
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "timing the whole run for the summary; the simulation never sees it"
    )]
    let started = Instant::now();
    let run = headless::play(&spec).context("could not build the match")?;
    let elapsed = started.elapsed();
    let ticks = run.hashes.len() as f64;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &run.events {
        *kinds.entry(e.kind.name()).or_default() += 1;
    }
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &run.rejections {
        *rules.entry(r.rule.as_str()).or_default() += 1;
    }
    println!(
        "headless {} match: {} players, seed {}",
        args.game, args.players, args.seed
    );
    println!(
        "  {} ticks ({:.1} s of play) in {:.3} s = {:.0}x real time",
        ticks,
        ticks / f64::from(args.tick_rate),
        elapsed.as_secs_f64(),
        ticks / f64::from(args.tick_rate) / elapsed.as_secs_f64().max(1e-9)
    );
    println!("  {} events:", run.events.len());
    for (kind, n) in &kinds {
        println!("    {kind:<20} {n}");
    }
    println!("  {} rejected commands:", run.rejections.len());
    for (rule, n) in &rules {
        println!("    {rule:<20} {n}");
    }
    if let Some((tick, hash)) = run.hashes.last() {
        println!("  final state hash at tick {}: {hash}", tick.0);
    }
    Ok(())
}
