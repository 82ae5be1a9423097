//! The soak: bots, spectators and abusive clients together for `--minutes` (10 by default),
//! then kill -9 and verify. Its own command, not part of CI:
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-client -p tickforge-replay -p tickforge-benches
//! taskset -c 1 target/release/soak --minutes 10
//! ```
//!
//! A release server runs pinned to core 0; `tickforge-bots` (128 drift and 32 arena bots) and
//! this process (8 spectators following matches from seq 0, and every 30 s a wave of abusers:
//! oversize frames, garbage, a flood, idle sockets) run on core 1. Every 10 s it samples the
//! server's RSS, open file descriptors, tick p99 and fsync p99. At the end it reports the RSS
//! slope, kills the server with SIGKILL, restarts it on the same data (recovery), and verifies
//! every replay file. Loopback only; every loop is bounded by the run's length.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tickforge_protocol::{ClientMessage, PROTOCOL_VERSION, encode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 7891)]
    port: u16,
    /// Leave out the spectators (to see what they cost).
    #[arg(long)]
    no_spectators: bool,
    /// Leave out the abuse waves.
    #[arg(long)]
    no_abuse: bool,
}

fn server(args: &Args, data: &std::path::Path) -> anyhow::Result<Child> {
    tickforge_benches::start_pinned_server(
        &args.bin_dir,
        args.port,
        data,
        tickforge_benches::LOAD_TEST_LIMITS,
    )
}

fn bots(args: &Args, game: &str, n: usize, secs: u64) -> anyhow::Result<Child> {
    let line = format!(
        "exec taskset -c 1 {} --url ws://127.0.0.1:{} --bots {n} --game {game} --room-size 8 --ramp-up 5 --duration {secs} --json",
        args.bin_dir.join("tickforge-bots").display(),
        args.port
    );
    Ok(Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?)
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A quantile from a Prometheus histogram's cumulative buckets.
fn bucket_quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, c)| *c >= total * q)
        .map_or(f64::NAN, |(le, _)| *le)
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn spectator(url: String, id: u64, until: tokio::time::Instant) -> u64 {
    let Ok(token) = tickforge_client::guest_token(&url, "watcher", true).await else {
        return 0;
    };
    let Ok(request) = format!("{url}/spectate/{id}?from=0&token={token}").into_client_request()
    else {
        return 0;
    };
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
        return 0;
    };
    let mut frames = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
        if m.is_close() {
            break;
        }
        frames += 1;
    }
    frames
}

/// One wave of abusers: each misbehaves once and is (or should be) cut.
async fn abuse_wave(url: &str) {
    let Ok(token) = tickforge_client::guest_token(url, "abuser", false).await else {
        return;
    };
    let mut request = match format!("{url}/play").into_client_request() {
        Ok(r) => r,
        Err(_) => return,
    };
    if let Ok(v) = format!("Bearer {token}").parse() {
        request.headers_mut().insert("authorization", v);
    }
    for payload in [vec![0x90; 5000], vec![0xc1, 0xff, 0x00], vec![0x91; 3000]] {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request.clone()).await {
            let hello = encode(&ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                client: "abuser".into(),
            })
            .unwrap_or_default();
            let _ = ws.send(Message::Binary(hello.into())).await;
            let _ = ws.send(Message::Binary(payload.into())).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
    }
    // Idle sockets that never send a request (cut at the handshake deadline).
    let addr = url.trim_start_matches("ws://").to_string();
    let idle: Vec<_> = (0..20)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(idle);
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secs = (args.minutes * 60.0) as u64;
    let data = std::env::temp_dir().join("tickforge-soak");
    let _ = std::fs::remove_dir_all(&data);
    let mut srv = server(&args, &data)?;
    let pid = srv.id();
    let url = format!("ws://127.0.0.1:{}", args.port);
    let drift = bots(&args, "drift", 128, secs)?;
    let arena = bots(&args, "arena", 32, secs)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = tokio::time::Instant::now() + Duration::from_secs(secs + 5);
    let (no_spectators, no_abuse) = (args.no_spectators, args.no_abuse);
    let spectated = runtime.spawn({
        let url = url.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            let watchers: Vec<_> = (1..=if no_spectators { 0 } else { 8 })
                .map(|id| tokio::spawn(spectator(url.clone(), id, until)))
                .collect();
            let mut frames = 0;
            for w in watchers {
                frames += w.await.unwrap_or(0);
            }
            frames
        }
    });
    let abuse = runtime.spawn({
        let url = url.clone();
        async move {
            let mut waves = 0;
            while !no_abuse && tokio::time::Instant::now() + Duration::from_secs(30) < until {
                tokio::time::sleep(Duration::from_secs(18)).await;
                abuse_wave(&url).await;
                waves += 1;
            }
            waves
        }
    });
    let mut samples = Vec::new();
    println!("| minute | RSS MiB | open fds | tick p99 ms | fsync p99 ms |\n|---|---|---|---|---|");
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(10));
        let metrics = runtime
            .block_on(tickforge_client::http::request(
                &url, "GET", "/metrics", None, None,
            ))
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let minute = started.elapsed().as_secs_f64() / 60.0;
        let (rss, open) = (rss_kib(pid) / 1024.0, fds(pid));
        let tick = metric(&metrics, "tickforge_tick_duration_p99_seconds") * 1e3;
        let fsync = bucket_quantile(&metrics, "tickforge_fsync_duration_seconds", 0.99) * 1e3;
        println!("| {minute:.2} | {rss:.1} | {open} | {tick:.3} | ≤ {fsync:.2} |");
        samples.push((minute, rss, open));
    }
    // RSS slope after the ramp-up (first minute excluded), by least squares, MiB per minute.
    let steady: Vec<_> = samples.iter().filter(|s| s.0 >= 1.0).collect();
    let n = steady.len() as f64;
    let (mx, my) = (
        steady.iter().map(|s| s.0).sum::<f64>() / n,
        steady.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let slope = steady.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum::<f64>()
        / steady
            .iter()
            .map(|s| (s.0 - mx).powi(2))
            .sum::<f64>()
            .max(1e-9);
    let reports: Vec<serde_json::Value> = [drift, arena]
        .into_iter()
        .filter_map(|c| c.wait_with_output().ok())
        .filter_map(|o| serde_json::from_slice(&o.stdout).ok())
        .collect();
    let frames = runtime.block_on(spectated).unwrap_or(0);
    let waves = runtime.block_on(abuse).unwrap_or(0);
    // kill -9, restart (recovery), verify every replay.
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let _ = srv.wait();
    let mut again = server(&args, &data)?;
    let _ = Command::new("kill")
        .args(["-INT", &again.id().to_string()])
        .status();
    let _ = again.wait();
    let (mut verified, mut failed) = (0, 0);
    for entry in std::fs::read_dir(data.join("replays")).context("the replay directory")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tfr") {
            match tickforge_replay::verify(&path, |_, _| {}) {
                Ok(Ok(_)) => verified += 1,
                other => {
                    failed += 1;
                    eprintln!("{}: {other:?}", path.display());
                }
            }
        }
    }
    println!();
    println!(
        "minutes {:.1}; RSS slope after the first minute {slope:+.3} MiB/min; fds first {} last {}",
        args.minutes,
        samples.first().map_or(0, |s| s.2),
        samples.last().map_or(0, |s| s.2)
    );
    for r in &reports {
        println!(
            "swarm {} ({} bots): connected {}, failed {}, dropped {}, latency p99 {:.2} ms",
            r["game"],
            r["bots"],
            r["connected"],
            r["failed"],
            r["dropped"],
            r["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("spectators received {frames} frames; {waves} abuse waves");
    println!("after kill -9 and restart: {verified} replays verified, {failed} failed");
    let _ = std::fs::remove_dir_all(&data);
    if failed > 0 {
        bail!("{failed} replays did not verify after the kill");
    }
    Ok(())
}
