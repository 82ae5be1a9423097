//! `spectator-bench`: what spectators cost the server. One 8-player drift match (the bots of
//! `tickforge-bots`, one input per bot per tick) is watched by `--spectators` JSON (or
//! MessagePack) spectators following it live; the server's CPU is measured with and without
//! them, and so is how many spectator messages it encodes per tick.
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-client -p tickforge-benches
//! taskset -c 1 target/release/spectator-bench --spectators 1000
//! ```
//!
//! The server runs pinned to core 0; the bots and the spectators share core 1 (run this
//! command pinned there). CPU is the server's utime + stime over each window.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tickforge_benches::{cpu_seconds, metric};

#[derive(Parser, Debug)]
struct Args {
    /// Spectators following the match.
    #[arg(long, default_value_t = 1000)]
    spectators: usize,
    /// MessagePack instead of JSON.
    #[arg(long)]
    msgpack: bool,
    /// Seconds per measuring window.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    #[arg(long, default_value_t = 7912)]
    port: u16,
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
}

/// Server CPU (fraction of a core), spectator encodes and ticks over one window.
async fn window(url: &str, pid: u32, seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let (cpu0, enc0, ticks0) = (
        cpu_seconds(pid),
        metric(url, "tickforge_spectator_encodes_total").await?,
        metric(url, "tickforge_ticks_total").await?,
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, enc1, ticks1) = (
        cpu_seconds(pid),
        metric(url, "tickforge_spectator_encodes_total").await?,
        metric(url, "tickforge_ticks_total").await?,
    );
    let secs = started.elapsed().as_secs_f64();
    Ok(((cpu1 - cpu0) / secs, enc1 - enc0, ticks1 - ticks0))
}

fn start_bots(args: &Args, seconds: u64) -> anyhow::Result<Child> {
    Command::new(args.bin_dir.join("tickforge-bots"))
        .args([
            "--url",
            &format!("ws://127.0.0.1:{}", args.port),
            "--bots",
            "8",
            "--game",
            "drift",
            "--room-size",
            "8",
            "--ramp-up",
            "1",
            "--duration",
            &seconds.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context(
            "starting tickforge-bots (build it with cargo build --release -p tickforge-client)",
        )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let mut server =
        tickforge_benches::start_pinned_server(&args.bin_dir, args.port, data.path(), &[])?;
    let pid = server.id();
    let url = format!("ws://127.0.0.1:{}", args.port);
    let total = 2 * args.duration + 20 + args.spectators as u64 / 200;
    let mut bots = start_bots(&args, total)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let id = tickforge_benches::first_running_match(&url).await?;

    let (alone, alone_encodes, alone_ticks) = window(&url, pid, args.duration).await?;

    let token = tickforge_client::guest_token(&url, "watcher", true).await?;
    let format = if args.msgpack { "msgpack" } else { "json" };
    let (frames, watchers) = tickforge_benches::counting_spectators(
        &format!("{url}/spectate/{id}?from=live&format={format}&token={token}"),
        args.spectators,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames_before = frames.load(Ordering::Relaxed);
    let (watched, encodes, ticks) = window(&url, pid, args.duration).await?;
    let frames_received = frames.load(Ordering::Relaxed) - frames_before;

    let per_spectator_ms = (watched - alone) * 1000.0 / args.spectators as f64;
    println!(
        "| spectators | format | server CPU alone | with spectators | CPU per spectator (ms per s) | spectator encodes per tick | frames received per spectator per s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {format} | {:.1} % | {:.1} % | {:.3} | {:.1} | {:.1} |",
        args.spectators,
        alone * 100.0,
        watched * 100.0,
        per_spectator_ms,
        encodes / ticks.max(1.0),
        frames_received as f64 / args.spectators as f64 / args.duration as f64,
    );
    println!(
        "(alone: {alone_encodes} encodes over {alone_ticks} ticks; match {id}; {} s windows)",
        args.duration
    );
    for w in watchers {
        w.abort();
    }
    let _ = bots.kill();
    let _ = server.kill();
    let _ = bots.wait();
    let _ = server.wait();
    Ok(())
}
