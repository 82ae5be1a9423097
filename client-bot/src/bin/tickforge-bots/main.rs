//! `tickforge-bots`: a swarm of bot players for load-testing a tickforge server, and
//! `tickforge-bots spectate`, which prints a match's event stream as JSON lines.

mod behavior;
mod swarm;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use tickforge_protocol::{EventKind, SpectatorMessage};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use behavior::Behavior;
use swarm::{Live, Plan};

#[derive(Parser, Debug)]
#[command(
    name = "tickforge-bots",
    version,
    about = "Bot swarms for load-testing a tickforge server",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  tickforge-bots --bots 256 --game drift --room-size 8 --duration 30
  tickforge-bots --bots 64 --game arena --behavior aggressive --json > report.json
  tickforge-bots --bots 80 --behavior replay=match.tfr --room-size 8
  tickforge-bots --bots 5000 --behavior idle --ramp-up 20 --duration 30
  tickforge-bots spectate --match 3 --from 0 --kind player_killed"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a match's events as JSON lines, from a seq or live, until the match ends.
    Spectate(SpectateArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Server address.
    #[arg(long, default_value = "ws://127.0.0.1:7878")]
    url: String,
    /// A token to use (default: a guest token from a development-mode server).
    #[arg(long, env = "TICKFORGE_TOKEN")]
    token: Option<String>,
    /// Number of bots.
    #[arg(long, default_value_t = 50)]
    bots: usize,
    /// Inputs per second per bot (at most the tick rate: one per delta).
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Seconds to measure, after the ramp-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds over which the bots connect, evenly spread.
    #[arg(long, default_value_t = 2.0)]
    ramp_up: f64,
    /// Game of the rooms the swarm creates: arena or drift.
    #[arg(long, default_value = "drift")]
    game: String,
    /// Players per room (one match per room).
    #[arg(long, default_value_t = 8)]
    room_size: u32,
    /// wander, aggressive, idle (connect and heartbeat once a second), or replay=FILE (re-send a
    /// replay's recorded commands with their original timing, spread over the rooms).
    #[arg(long, default_value = "wander")]
    behavior: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SpectateArgs {
    #[arg(long, default_value = "ws://127.0.0.1:7878")]
    url: String,
    #[arg(long, env = "TICKFORGE_TOKEN")]
    token: Option<String>,
    /// The match to watch.
    #[arg(long = "match")]
    match_id: u64,
    /// Start after this seq (0 = from the beginning); default: live.
    #[arg(long)]
    from: Option<u64>,
    /// Only events of this kind (repeatable), e.g. player_killed.
    #[arg(long = "kind")]
    kinds: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Cmd::Spectate(args)) => spectate(args).await,
            None => run(cli.run).await,
        }
    });
    // A closed pipe (`| head`) is the reader being done, not an error.
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

async fn token_for(url: &str, given: Option<String>, spectator: bool) -> anyhow::Result<String> {
    match given {
        Some(t) => Ok(t),
        None => tickforge_client::guest_token(url, "bots", spectator)
            .await
            .context(
                "getting a guest token (is the server in development mode? else pass --token)",
            ),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.game == "drift" || args.game == "arena",
        "unknown game {:?}: use arena or drift",
        args.game
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(args.room_size > 0, "--room-size must be at least 1");
    let behavior = Behavior::parse(&args.behavior)?;
    let plan = Plan {
        token: token_for(&args.url, args.token.clone(), false).await?,
        url: args.url.clone(),
        bots: args.bots,
        rate_hz: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        ramp_up: Duration::from_secs_f64(args.ramp_up),
        game: args.game.clone(),
        room_size: args.room_size,
        behavior,
        seed: args.seed,
    };
    let live = Arc::new(Live::default());
    *live.latency.lock() = Some(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)?);
    let progress = std::io::stderr().is_terminal().then(|| {
        let live = live.clone();
        let bar = indicatif::ProgressBar::new_spinner();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let messages = live.messages.load(Ordering::Relaxed);
                let p99 = live
                    .latency
                    .lock()
                    .as_ref()
                    .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
                bar.set_message(format!(
                    "connected {}  failed {}  dropped {}  {} msgs/s  p99 {:.1} ms",
                    live.connected.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                    live.dropped.load(Ordering::Relaxed),
                    messages - last,
                    p99
                ));
                bar.tick();
                last = messages;
            }
        })
    });
    let report = swarm::run(plan, live).await?;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &swarm::Report) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "{} bots ({}, {}, rooms of {}, {} inputs/s), {:.0} s measured",
        r.bots, r.game, r.behavior, r.room_size, r.rate_hz, r.window_s
    );
    println!(
        "  connected {}  failed {}  dropped {}",
        r.connected, r.failed, r.dropped
    );
    if let Some(f) = &r.first_failure {
        println!("  first failure: {f}");
    }
    let l = &r.latency;
    println!(
        "  command→broadcast latency ({} samples): p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        l.samples, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    );
    println!(
        "  per client: in {:.0} B/s ({:.1} B/tick), out {:.0} B/s ({:.1} B/tick); {:.0} messages/s in total",
        r.bytes_in_per_client_per_s,
        r.bytes_in_per_client_per_tick,
        r.bytes_out_per_client_per_s,
        r.bytes_out_per_client_per_tick,
        r.messages_in_per_s
    );
    println!(
        "  swarm CPU: {:.3} ms per bot-second",
        r.swarm_cpu_ms_per_bot_s
    );
    println!(
        "  server ticks: p50 {} ms  p99 {} ms  max {} ms  overruns {}  ticks {}",
        opt(r.server.tick_p50_ms),
        opt(r.server.tick_p99_ms),
        opt(r.server.tick_max_ms),
        opt(r.server.tick_overruns),
        opt(r.server.ticks)
    );
}

async fn spectate(args: SpectateArgs) -> anyhow::Result<()> {
    if let Some(unknown) = args
        .kinds
        .iter()
        .find(|k| !EventKind::NAMES.contains(&k.as_str()))
    {
        anyhow::bail!(
            "unknown event kind {unknown:?}; kinds are: {}",
            EventKind::NAMES.join(", ")
        );
    }
    let token = token_for(&args.url, args.token, true).await?;
    let (_, authority) = tickforge_client::http::base_url(&args.url)?;
    let from = args.from.map_or("live".to_string(), |s| s.to_string());
    let url = format!(
        "ws://{authority}/spectate/{}?from={from}&format=msgpack&token={token}",
        args.match_id
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.into_client_request()?)
        .await
        .with_context(|| format!("connecting to match {} at {authority}", args.match_id))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(frame) = ws.next().await {
        let bytes = match frame? {
            Message::Binary(b) => b,
            Message::Close(frame) => {
                if let Some(f) = frame.filter(|f| u16::from(f.code) != 1000) {
                    anyhow::bail!(
                        "the server closed the feed: {} {}",
                        u16::from(f.code),
                        f.reason
                    );
                }
                break;
            }
            _ => continue,
        };
        match tickforge_protocol::decode_with::<SpectatorMessage>(
            &bytes,
            tickforge_protocol::DecodeLimits::TRUSTED,
        )? {
            SpectatorMessage::Tick { events, .. } => {
                for e in events {
                    if args.kinds.is_empty() || args.kinds.iter().any(|k| k == e.kind.name()) {
                        serde_json::to_writer(&mut out, &e)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
            SpectatorMessage::Live { .. } => out.flush()?,
            SpectatorMessage::Ended { .. } => break,
        }
    }
    out.flush()?;
    Ok(())
}
