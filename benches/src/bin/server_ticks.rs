//! Tick times of an arena match running in a real server, with real WebSocket players.
//!
//! Start a release server pinned to one core, then this pinned to the other:
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-benches
//! taskset -c 0 target/release/tickforge-server --listen 127.0.0.1:7878 --data-dir /tmp/tf-bench &
//! taskset -c 1 target/release/server-ticks --url ws://127.0.0.1:7878 --players 64 --secs 20
//! ```
//!
//! Every player steers every tick and fires every 15 ticks (its cooldown); after `--secs` the
//! tool reads the server's tick-time percentiles from `/metrics` (HDR histogram, all ticks of
//! all matches since the server started, so use a fresh server per run).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tickforge_client::{Session, create_match, get_json, guest_token};
use tickforge_protocol::{Command, MatchId, ServerMessage};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "ws://127.0.0.1:7878")]
    url: String,
    #[arg(long, default_value_t = 64)]
    players: u32,
    #[arg(long, default_value_t = 20)]
    secs: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let admin = guest_token(&args.url, "bench", false)
        .await
        .context("is the server running in development mode?")?;
    let side = 8_000 * (f64::from(args.players).sqrt().ceil() as i64);
    let config = serde_json::json!({ "max_players": args.players, "width_mm": side, "height_mm": side, "score_limit": 1_000_000 });
    let info = create_match(&args.url, &admin, "arena", Some(config), Some(7)).await?;
    let id = MatchId(info["id"].as_u64().context("match id")?);
    let mut players = Vec::new();
    for i in 0..args.players {
        let url = args.url.clone();
        let secs = args.secs;
        players.push(tokio::spawn(async move {
            let token = guest_token(&url, "bot", false).await?;
            let mut s = Session::join(&url, &token, Some(id), &format!("bot{i}")).await?;
            let me = s.entity();
            let until = tokio::time::Instant::now() + Duration::from_secs(secs);
            let mut n = 0i32;
            while tokio::time::Instant::now() < until {
                if let ServerMessage::Tick(d) = s.recv().await? {
                    n += 1;
                    let phase = ((d.tick.0 as i32 + i as i32 * 7) / 30) % 4;
                    let (vx, vy) = [(70, 70), (-70, 70), (-70, -70), (70, -70)][phase as usize];
                    s.send(Command::Move { entity: me, vx, vy }).await?;
                    if n % 15 == (i % 15) as i32 {
                        s.send(Command::Fire {
                            entity: me,
                            dx: vy,
                            dy: -vx,
                        })
                        .await?;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for p in players {
        p.await??;
    }
    let (_, metrics) =
        tickforge_client::http::request(&args.url, "GET", "/metrics", None, None).await?;
    let text = String::from_utf8_lossy(&metrics);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let matches = get_json(&args.url, "/matches").await?;
    let ticks = matches
        .as_array()
        .and_then(|m| m.iter().find(|x| x["id"] == id.0))
        .map(|m| m["tick"].clone());
    println!(
        "arena, {} players, {} s: tick p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; overruns {}; ticks {}",
        args.players,
        args.secs,
        value("tickforge_tick_duration_p50_seconds").unwrap_or(f64::NAN) * 1e3,
        value("tickforge_tick_duration_p99_seconds").unwrap_or(f64::NAN) * 1e3,
        value("tickforge_tick_duration_max_seconds").unwrap_or(f64::NAN) * 1e3,
        value("tickforge_tick_overruns_total").unwrap_or(f64::NAN),
        ticks.unwrap_or_default()
    );
    Ok(())
}
