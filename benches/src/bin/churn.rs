//! `churn`: thousands of short matches back to back against the release server, to show that
//! finished matches leave nothing behind but a bounded summary: the server's resident memory,
//! its `/metrics` page and its `GET /matches` body stay flat after the first few hundred.
//!
//! ```text
//! cargo build --release -p tickforge-server -p tickforge-benches
//! target/release/churn --matches 10000
//! ```
//!
//! The server runs pinned to core 0 with its defaults; `--workers` clients (each its own
//! guest, so its own per-player allowance) create one-tick arena matches as fast as the
//! per-creator limits let them. A line is printed every `--every` matches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Short matches back to back: memory, /metrics and /matches must stay flat")]
struct Args {
    /// Matches to create in all.
    #[arg(long, default_value_t = 10_000)]
    matches: usize,
    /// Clients creating matches at once.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Print a line every this many matches.
    #[arg(long, default_value_t = 500)]
    every: usize,
    #[arg(long, default_value_t = 7911)]
    port: u16,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn body_len(url: &str, path: &str) -> anyhow::Result<usize> {
    let (_, body) = tickforge_client::http::request(url, "GET", path, None, None).await?;
    Ok(body.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let mut server =
        tickforge_benches::start_pinned_server(&args.bin_dir, args.port, data.path(), &[])
            .context("starting the release server (build it with cargo build --release)")?;
    let pid = server.id();
    let url = format!("ws://127.0.0.1:{}", args.port);
    let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.workers {
        let (url, created, refused) = (url.clone(), created.clone(), refused.clone());
        let total = args.matches;
        workers.push(tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, &format!("churn-{w}"), false).await?;
            let config = serde_json::json!({ "time_limit_ticks": 1 });
            while created.load(std::sync::atomic::Ordering::Relaxed) < total {
                match tickforge_client::create_match(
                    &url,
                    &token,
                    "arena",
                    Some(config.clone()),
                    None,
                )
                .await
                {
                    Ok(_) => {
                        created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // At the per-player or per-address limit: wait for one to end.
                    Err(e) if e.to_string().contains("429") => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    println!(
        "| matches created | s | server RSS (KiB) | /metrics (bytes) | GET /matches (bytes) | open files | 429s so far |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut next = args.every;
    let report = async |n: usize| -> anyhow::Result<()> {
        println!(
            "| {n} | {:.1} | {} | {} | {} | {} | {} |",
            started.elapsed().as_secs_f64(),
            status_kb(pid, "VmRSS:"),
            body_len(&url, "/metrics").await?,
            body_len(&url, "/matches").await?,
            open_files(pid),
            refused.load(std::sync::atomic::Ordering::Relaxed)
        );
        Ok(())
    };
    while next <= args.matches {
        if created.load(std::sync::atomic::Ordering::Relaxed) >= next {
            report(next).await?;
            next += args.every;
        } else if workers.iter().all(|w| w.is_finished()) {
            break;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for w in workers {
        w.await??;
    }
    // Let the last ones end, then the final figures.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = tickforge_client::get_json(&url, "/healthz").await?;
    println!(
        "\nafter {} matches in {:.1} s: {} running, {} finished listed; peak RSS {} KiB",
        created.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        health["matches_running"],
        health["matches_finished_listed"],
        status_kb(pid, "VmHWM:")
    );
    report(created.load(std::sync::atomic::Ordering::Relaxed)).await?;
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}
