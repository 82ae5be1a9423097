//! `cluster-bench`: what cluster mode costs a game node, and what a relay saves it.
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-client -p tickforge-benches
//! target/release/cluster-bench publish --matches 100,250,500 --fsync never   # publish cost
//! nice -n 19 taskset -c 1 target/release/cluster-bench relay --spectators 5000   # a relay
//! ```
//!
//! Both start three `nats-server`s with JetStream (R3) pinned to core 1, and the release game
//! node pinned to core 0 (`taskset`), everything on loopback, and stop it all at the end.
//!
//! - `publish`: for each count, a fresh node runs that many 60 Hz drift matches with no
//!   players, once with files only and once with `--nats` (every tick of every match published
//!   and acknowledged by R3). Over one window: the node's CPU, its tick p99 and the stream's
//!   publish latency (from `/metrics`, the quantile of the window's histogram buckets).
//! - `relay`: one drift match of 8 bots (`tickforge-bots`, core 1) on the game node; a relay
//!   (core 1) serves `--spectators` MessagePack spectators following it live. The game node's
//!   CPU and tick p99 with none and with all of them, and the frames each spectator received.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tickforge_benches::{cpu_seconds, histogram, quantile_between, start_pinned_server};
use tickforge_server::auth::{Authority, Role};
use tickforge_tests::nats::NatsCluster;

const SECRET: &str = "the-secret-of-the-cluster-bench";

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    what: What,
    /// Seconds per measuring window.
    #[arg(long, default_value_t = 15, global = true)]
    duration: u64,
    #[arg(long, default_value = "target/release", global = true)]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 7950, global = true)]
    port: u16,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Publish cost per match-tick, and matches per node with tick p99 unchanged.
    Publish {
        /// Match counts to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,250,500")]
        matches: Vec<usize>,
        /// The nodes' `--fsync` policy for their own replay files (in a cluster the stream is
        /// the durable record; `per-tick` costs one fsync per match per tick).
        #[arg(long, default_value = "per-tick")]
        fsync: String,
    },
    /// Spectators on a relay, and what the game node pays for them.
    Relay {
        #[arg(long, default_value_t = 5000)]
        spectators: usize,
    },
}

fn token(role: Role, name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Authority::new(Some(SECRET), Duration::from_secs(86_400))
        .issue(role, name, now)
        .0
}

/// What one window measured on the game node.
struct Window {
    cpu: f64,
    tick_p99_ms: f64,
    publish_p50_ms: f64,
    publish_p99_ms: f64,
    publishes_per_s: f64,
    ticks_per_s: f64,
}

async fn window(url: &str, pid: u32, seconds: u64) -> anyhow::Result<Window> {
    let ticks0 = histogram(url, "tickforge_tick_duration_seconds").await?;
    let pub0 = histogram(url, "tickforge_stream_publish_seconds").await?;
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let ticks1 = histogram(url, "tickforge_tick_duration_seconds").await?;
    let pub1 = histogram(url, "tickforge_stream_publish_seconds").await?;
    let secs = started.elapsed().as_secs_f64();
    let count = |h: &[(f64, f64)]| h.last().map_or(0.0, |(_, n)| *n);
    Ok(Window {
        cpu: (cpu_seconds(pid) - cpu0) / secs,
        tick_p99_ms: quantile_between(&ticks0, &ticks1, 0.99) * 1000.0,
        publish_p50_ms: quantile_between(&pub0, &pub1, 0.50) * 1000.0,
        publish_p99_ms: quantile_between(&pub0, &pub1, 0.99) * 1000.0,
        publishes_per_s: (count(&pub1) - count(&pub0)) / secs,
        ticks_per_s: (count(&ticks1) - count(&ticks0)) / secs,
    })
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

async fn publish(args: &Args, counts: &[usize], fsync: &str) -> anyhow::Result<()> {
    let nats = NatsCluster::start_with(3, &["taskset", "-c", "1"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let urls = nats.urls();
    println!(
        "| matches | mode | node CPU | tick p99 | publishes/s | publish p50 | publish p99 | CPU per match-tick |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for &n in counts {
        let mut files_cpu = None;
        for cluster in [false, true] {
            let data = tempfile::tempdir()?;
            let max = (n + 10).to_string();
            let mut extra = vec![
                "--fsync",
                fsync,
                "--auth-secret",
                SECRET,
                "--game",
                "drift",
                "--idle-match-secs",
                "86400",
                "--max-matches",
                &max,
                "--max-matches-per-player",
                &max,
                "--max-matches-per-address",
                &max,
            ];
            if cluster {
                extra.extend(["--nats", &urls, "--nats-replicas", "3", "--node", "bench"]);
            }
            let node = start_pinned_server(&args.bin_dir, args.port, data.path(), &extra)?;
            let pid = node.id();
            let url = format!("http://127.0.0.1:{}", args.port);
            let maker = token(Role::Player, "maker");
            for i in 0..n {
                tickforge_client::create_match(&url, &maker, "drift", None, Some(i as u64))
                    .await
                    .with_context(|| format!("creating match {i}"))?;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let w = window(&url, pid, args.duration).await?;
            let per_match_tick_us = w.cpu / (n as f64 * 60.0) * 1e6;
            let extra_us = files_cpu.map_or(String::new(), |f: f64| {
                format!(" (+{:.2} µs)", (w.cpu - f) / (n as f64 * 60.0) * 1e6)
            });
            println!(
                "| {n} | {} | {:.1} % | {:.2} ms | {:.0} | {} | {} | {per_match_tick_us:.2} µs{extra_us} |",
                if cluster {
                    "cluster (R3)"
                } else {
                    "files only"
                },
                w.cpu * 100.0,
                w.tick_p99_ms,
                w.publishes_per_s,
                if cluster {
                    format!("{:.2} ms", w.publish_p50_ms)
                } else {
                    "–".into()
                },
                if cluster {
                    format!("{:.2} ms", w.publish_p99_ms)
                } else {
                    "–".into()
                },
            );
            if !cluster {
                files_cpu = Some(w.cpu);
            }
            eprintln!(
                "({n} matches, cluster={cluster}: {:.0} ticks/s)",
                w.ticks_per_s
            );
            stop(node);
        }
    }
    Ok(())
}

async fn relay(args: &Args, spectators: usize) -> anyhow::Result<()> {
    // NATS first on core 1: run this command at a low priority (nice 19), and NATS comes
    // back to the normal one; the relay stays at the lowest.
    let nats = NatsCluster::start_with(3, &["nice", "-n", "-19", "taskset", "-c", "1"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let urls = nats.urls();
    let (dn, dr) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let common = ["--auth-secret", SECRET, "--game", "drift", "--nats", &urls];
    let mut node_args = common.to_vec();
    // Core 1 carries NATS, the relay, the bots and every spectator: a longer lease keeps a
    // busy moment there from reading as a dead node.
    node_args.extend([
        "--nats-replicas",
        "3",
        "--node",
        "game",
        "--lease-ms",
        "5000",
    ]);
    let node = start_pinned_server(&args.bin_dir, args.port, dn.path(), &node_args)?;
    let pid = node.id();
    let node_url = format!("http://127.0.0.1:{}", args.port);
    let relay_port = args.port + 1;
    let line = format!(
        "ulimit -n 65536 2>/dev/null; exec nice -n 19 taskset -c 1 {} --listen 127.0.0.1:{relay_port} --data-dir {} --relay --node relay {}",
        args.bin_dir.join("tickforge-server").display(),
        dr.path().display(),
        common.join(" ")
    );
    let relay = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let relay_pid = relay.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Long enough for any connect phase: the bots are stopped at the end.
    let total = 2 * args.duration + 600;
    let bots = Command::new("taskset")
        .args(["-c", "1"])
        .arg(args.bin_dir.join("tickforge-bots"))
        .args([
            "--url",
            &node_url,
            "--bots",
            "8",
            "--game",
            "drift",
            "--room-size",
            "8",
        ])
        .args(["--ramp-up", "1", "--duration", &total.to_string()])
        .args(["--token", &token(Role::Player, "bots")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tickforge-bots (cargo build --release -p tickforge-client)")?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let id = tickforge_benches::first_running_match(&node_url).await?;
    let alone = window(&node_url, pid, args.duration).await?;

    let watcher = token(Role::Spectator, "watcher");
    let (frames, watchers) = tickforge_benches::counting_spectators(
        &format!(
            "ws://127.0.0.1:{relay_port}/spectate/{id}?from=live&format=msgpack&token={watcher}"
        ),
        spectators,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (frames0, relay0) = (frames.load(Ordering::Relaxed), cpu_seconds(relay_pid));
    let watched = window(&node_url, pid, args.duration).await?;
    let per_spectator = (frames.load(Ordering::Relaxed) - frames0) as f64
        / spectators as f64
        / args.duration as f64;
    let relay_cpu = (cpu_seconds(relay_pid) - relay0) / args.duration as f64;
    if let Ok(info) = tickforge_client::get_json(&node_url, &format!("/matches/{id}")).await {
        eprintln!(
            "(match {id} after the window: {} {} at tick {})",
            info["state"], info["stopped_reason"], info["tick"]
        );
    }
    println!(
        "| relay spectators | game node CPU | game node tick p99 | game node ticks/s | relay CPU | frames per spectator per s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 0 | {:.1} % | {:.2} ms | {:.0} | – | – |",
        alone.cpu * 100.0,
        alone.tick_p99_ms,
        alone.ticks_per_s
    );
    println!(
        "| {spectators} | {:.1} % | {:.2} ms | {:.0} | {:.1} % | {per_spectator:.1} |",
        watched.cpu * 100.0,
        watched.tick_p99_ms,
        watched.ticks_per_s,
        relay_cpu * 100.0
    );
    for w in watchers {
        w.abort();
    }
    stop(bots);
    stop(relay);
    stop(node);
    drop(nats);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.what {
        What::Publish { matches, fsync } => publish(&args, matches, fsync).await,
        What::Relay { spectators } => relay(&args, *spectators).await,
    }
}
