//! The `tickforge-server` command line, as a function: with no arguments, serve with the
//! embedded defaults (127.0.0.1:7878, replays under ./data/replays, development auth, arena at
//! 60 Hz); `headless` plays a match in-process and prints a summary; `token` issues a signed
//! token. [`main`] runs it with the games it is given, so a game's own server binary is
//!
//! ```no_run
//! fn main() -> anyhow::Result<()> {
//!     // The reference games, plus your own: `.with("tag", tag::Tag)`.
//!     tickforge_server::cli::main(tickforge_server::game::builtin())
//! }
//! ```

#![expect(
    clippy::disallowed_methods,
    reason = "the binary stamps tokens with the wall clock and times headless runs; the simulation never sees either"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tickforge_protocol::{GameConfig, MatchId};
use tokio_util::sync::CancellationToken;

use crate::MatchSetup;
use crate::auth::{Authority, Role};
use crate::config::{ConfigArgs, ServerConfig};
use crate::headless::{self, HeadlessMatch};
use crate::net::Server;
use crate::sim::Games;

/// The tickforge game server: authoritative, tick-based, event-sourced.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Settings are read from flags, then TICKFORGE_* environment variables, then the --config file, then the defaults.

Examples:
  tickforge-server                                   # development server on 127.0.0.1:7878
  tickforge-server --listen 0.0.0.0:9000 --auth-secret \"$SECRET\" --fsync interval:50
  tickforge-server --config server.toml
  tickforge-server token --role spectator --name ops --auth-secret \"$SECRET\"
  tickforge-server headless --game drift --players 8 --ticks 600

Running a cluster (NATS JetStream; README.md has the whole local example):
  nats-server -p 4220 -n n0 -js -sd /tmp/nats/n0 --cluster_name tf --cluster nats://127.0.0.1:6220 \\
    --routes nats://127.0.0.1:6220,nats://127.0.0.1:6221,nats://127.0.0.1:6222 &   # and n1, n2
  tickforge-server --nats $NATS --nats-replicas 3 --auth-secret \"$SECRET\" --node a --listen 127.0.0.1:7001
  tickforge-server --nats $NATS --nats-replicas 3 --auth-secret \"$SECRET\" --node b --listen 127.0.0.1:7002
  tickforge-server --nats $NATS --auth-secret \"$SECRET\" --relay --listen 127.0.0.1:7000   # spectators
  (NATS=nats://127.0.0.1:4220,nats://127.0.0.1:4221,nats://127.0.0.1:4222)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// A TOML file of settings (keys as the long flags, e.g. tick-rate = 30).
    #[arg(long, global = true, env = "TICKFORGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: ConfigArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve (the default).
    Serve,
    /// Play a headless match with scripted bots and print what happened.
    Headless {
        /// Game to play: arena or drift.
        #[arg(long = "headless-game", default_value = "arena")]
        game: String,
        #[arg(long, default_value_t = 16)]
        players: u32,
        /// Ticks to simulate (the match may end sooner).
        #[arg(long, default_value_t = 3600)]
        ticks: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print a token signed with --auth-secret.
    Token {
        #[arg(long, value_enum, default_value = "player")]
        role: RoleArg,
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RoleArg {
    Player,
    Spectator,
}

/// Parse the command line and run it with `games`.
pub fn main(games: Games) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => ConfigArgs::from_toml_file(path)?,
        None => ConfigArgs::default(),
    };
    let settings = cli.settings.clone().or(file);
    match cli.command {
        None | Some(Cmd::Serve) => {
            let config = settings.resolve().context("invalid settings")?;
            serve(config, games)
        }
        Some(Cmd::Headless {
            game,
            players,
            ticks,
            seed,
        }) => run_headless(
            &game,
            players,
            ticks,
            seed,
            settings.tick_rate.unwrap_or(60),
        ),
        Some(Cmd::Token { role, name }) => {
            let Some(secret) = settings.auth_secret.clone() else {
                bail!("--auth-secret (or TICKFORGE_AUTH_SECRET) is needed to sign a token");
            };
            let config = settings.resolve()?;
            let authority = Authority::new(Some(&secret), config.token_ttl);
            let role = match role {
                RoleArg::Player => Role::Player,
                RoleArg::Spectator => Role::Spectator,
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            println!("{}", authority.issue(role, &name, now).0);
            Ok(())
        }
    }
}

/// Serve `games` with `config` until SIGINT or SIGTERM: log to stderr, print the banner, then
/// shut down gracefully.
pub fn serve(config: ServerConfig, games: Games) -> anyhow::Result<()> {
    serve_with(config, games, Vec::new())
}

/// [`serve`], with these sinks in every match beside the built-in ones.
pub fn serve_with(
    config: ServerConfig,
    games: Games,
    sinks: Vec<crate::matches::SinkFactory>,
) -> anyhow::Result<()> {
    init_tracing(config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tickforge")
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let development = config.auth_secret.is_none();
        let server = Server::bind_with(config, games, sinks, shutdown.clone()).await?;
        let addr = server.local_addr()?;
        let state = server.state();
        // One write, and an error is not fatal: whoever started the server may have stopped
        // reading its output (a closed pipe must never take a running server down).
        let mut banner = format!(
            "tickforge {} listening on http://{addr}\n",
            env!("CARGO_PKG_VERSION")
        );
        banner.push_str(&format!(
            "  players:     ws://{addr}/play          spectators: ws://{addr}/spectate/MATCH_ID\n"
        ));
        banner.push_str(&format!(
            "  matches:     http://{addr}/matches     metrics:    http://{addr}/metrics\n"
        ));
        if development {
            banner.push_str(&format!(
                "  development mode: get a token with  curl -X POST http://{addr}/auth/guest\n"
            ));
        }
        banner.push_str(&format!(
            "  game {} at {} Hz; replays in {}\n",
            state.config.default_game,
            state.config.tick_rate_hz,
            state.config.replay_dir().display()
        ));
        banner.push_str(&format!("  limits: {}\n", limits_line(&state)));
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
        }
        tokio::spawn(wait_for_signal(shutdown.clone()));
        server.run().await;
        tracing::info!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// The caps in force, and the open-file limit they were fitted to.
fn limits_line(state: &crate::net::AppState) -> String {
    let c = &state.config;
    let mut line = format!(
        "{} connections ({} per address), {} matches ({} per player)",
        c.max_connections, c.max_connections_per_ip, c.max_matches, c.max_matches_per_player
    );
    if let Some(files) = state.files {
        line.push_str(&format!(
            "; open files {} (hard limit {}",
            files.soft, files.hard
        ));
        if files.started_with < files.soft {
            line.push_str(&format!(", raised from {}", files.started_with));
        }
        line.push(')');
    }
    let lowered = state.lowered;
    let mut from = Vec::new();
    if let Some(n) = lowered.max_connections_from {
        from.push(format!("{n} connections"));
    }
    if let Some(n) = lowered.max_matches_from {
        from.push(format!("{n} matches"));
    }
    if !from.is_empty() {
        line.push_str(&format!(
            "; lowered from {} to fit the open-file limit",
            from.join(" and ")
        ));
    }
    line
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (a program serving twice) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn run_headless(
    game: &str,
    players: u32,
    ticks: u64,
    seed: u64,
    tick_rate: u32,
) -> anyhow::Result<()> {
    let Some(config) = GameConfig::default_for(game) else {
        bail!("unknown game {game:?}: use --headless-game arena or --headless-game drift");
    };
    let spec = HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(1),
            seed,
            tick_rate_hz: tick_rate,
            game: config,
        },
        players,
        ticks,
        bot_seed: seed,
    };
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
    println!("headless {game} match: {players} players, seed {seed}");
    println!(
        "  {} ticks ({:.1} s of play) in {:.3} s = {:.0}x real time",
        ticks,
        ticks / f64::from(tick_rate),
        elapsed.as_secs_f64(),
        ticks / f64::from(tick_rate) / elapsed.as_secs_f64().max(1e-9)
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
