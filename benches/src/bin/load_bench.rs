//! The load benchmark: one command for every standard scenario.
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-client -p tickforge-benches
//! target/release/load-bench                 # all scenarios, then updates BENCHMARKS.md
//! target/release/load-bench --only drift-256 --duration 30 --no-write
//! ```
//!
//! For each scenario it starts a fresh release server pinned to core 0 and the bot swarm
//! pinned to core 1 (`taskset`), both on loopback, lets the bots ramp up, then measures for
//! `--duration` seconds: the server's CPU (utime + stime from `/proc/PID/stat`) and RSS
//! (`/proc/PID/status`), and the swarm's own report (latency, bytes, its CPU, the server's tick
//! figures). Every scenario stops by itself (at most 60 s). Results go to stdout and, between
//! the load-benchmark markers, into BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds measured per scenario (after the ramp-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Run only the scenarios whose names contain this (e.g. drift-256).
    #[arg(long)]
    only: Option<String>,
    /// Print the results but do not update BENCHMARKS.md.
    #[arg(long)]
    no_write: bool,
    /// Directory holding the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 7878)]
    port: u16,
}

struct Scenario {
    name: String,
    game: &'static str,
    bots: usize,
    behavior: &'static str,
    ramp_up: u64,
}

fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for game in ["drift", "arena"] {
        for bots in [128, 256, 512, 1024] {
            out.push(Scenario {
                name: format!("{game}-{bots}"),
                game,
                bots,
                behavior: "wander",
                ramp_up: 3 + bots as u64 / 256,
            });
        }
    }
    out.push(Scenario {
        name: "idle-5000".into(),
        game: "drift",
        bots: 5000,
        behavior: "idle",
        ramp_up: 15,
    });
    out
}

fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
}

fn proc_rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Start `program` pinned to `core`, with a raised file-descriptor limit.
fn pinned(core: u32, program: &Path, args: &[String], stdout: Stdio) -> anyhow::Result<Child> {
    let mut line = format!(
        "ulimit -n 65536 2>/dev/null || ulimit -n 16384; exec taskset -c {core} {}",
        program.display()
    );
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .context("starting a process")
}

/// The value of metric `name` (unlabelled) on the server's `/metrics` page.
fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_healthy(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the server did not start listening on port {port}")
}

fn run(s: &Scenario, args: &Args) -> anyhow::Result<serde_json::Value> {
    let data = std::env::temp_dir().join(format!("tickforge-load-{}", s.name));
    let _ = std::fs::remove_dir_all(&data);
    let server_args = vec![
        "--listen".into(),
        format!("127.0.0.1:{}", args.port),
        "--data-dir".into(),
        data.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ]
    .into_iter()
    .chain(
        tickforge_benches::LOAD_TEST_LIMITS
            .iter()
            .map(|s| s.to_string()),
    )
    .collect::<Vec<String>>();
    let mut server = pinned(
        0,
        &args.bin_dir.join("tickforge-server"),
        &server_args,
        Stdio::null(),
    )?;
    let result = (|| {
        wait_healthy(args.port)?;
        let pid = server.id();
        let rss_before = proc_rss_kib(pid).unwrap_or(0.0);
        let bot_args = vec![
            "--url".into(),
            format!("ws://127.0.0.1:{}", args.port),
            "--bots".into(),
            s.bots.to_string(),
            "--game".into(),
            s.game.into(),
            "--room-size".into(),
            "8".into(),
            "--behavior".into(),
            s.behavior.into(),
            "--ramp-up".into(),
            s.ramp_up.to_string(),
            "--duration".into(),
            args.duration.to_string(),
            "--json".into(),
        ];
        let bots = pinned(
            1,
            &args.bin_dir.join("tickforge-bots"),
            &bot_args,
            Stdio::piped(),
        )?;
        // The measuring window starts when the bots' does (after their ramp-up).
        std::thread::sleep(Duration::from_millis(s.ramp_up * 1000 + 300));
        let cpu_start = proc_cpu_seconds(pid);
        let fsyncs_start = metric(args.port, "tickforge_fsync_duration_seconds_count");
        let window_started = Instant::now();
        std::thread::sleep(
            Duration::from_secs(args.duration).saturating_sub(Duration::from_millis(600)),
        );
        let cpu_end = proc_cpu_seconds(pid);
        let fsyncs_end = metric(args.port, "tickforge_fsync_duration_seconds_count");
        let window = window_started.elapsed().as_secs_f64();
        let rss_end = proc_rss_kib(pid).unwrap_or(0.0);
        let output = bots.wait_with_output().context("waiting for the bots")?;
        let line = String::from_utf8_lossy(&output.stdout);
        let mut report: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("the bots' report: {line}"))?;
        let connected = report["connected"].as_f64().unwrap_or(0.0).max(1.0);
        let core = match (cpu_start, cpu_end) {
            (Some(a), Some(b)) => (b - a) / window,
            _ => f64::NAN,
        };
        report["scenario"] = serde_json::json!(s.name);
        report["server_cpu_core_fraction"] = serde_json::json!(core);
        report["server_cpu_ms_per_bot_s"] = serde_json::json!(core * 1000.0 / connected);
        report["server_rss_mib"] = serde_json::json!(rss_end / 1024.0);
        report["server_fsyncs_per_s"] = serde_json::json!(match (fsyncs_start, fsyncs_end) {
            (Some(a), Some(b)) => (b - a) / window,
            _ => f64::NAN,
        });
        report["server_rss_kib_per_connection"] =
            serde_json::json!((rss_end - rss_before) / connected);
        anyhow::Ok(report)
    })();
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn row(r: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value, d: usize| v.as_f64().map_or("-".into(), |x| format!("{x:.d$}"));
    format!(
        "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r["scenario"].as_str().unwrap_or("?"),
        r["connected"],
        r["bots"],
        r["failed"],
        f(
            &(r["server_cpu_core_fraction"].as_f64().unwrap_or(f64::NAN) * 100.0).into(),
            1
        ),
        f(&r["server_fsyncs_per_s"], 0),
        f(&r["server_rss_kib_per_connection"], 1),
        f(&r["server"]["tick_p99_ms"], 3),
        f(&r["server"]["tick_overruns"], 0),
        f(&r["latency"]["p50_ms"], 2),
        f(&r["latency"]["p99_ms"], 2),
        f(&r["bytes_in_per_client_per_tick"], 1),
        f(&r["bytes_out_per_client_per_tick"], 1),
        f(&r["swarm_cpu_ms_per_bot_s"], 3),
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for binary in ["tickforge-server", "tickforge-bots"] {
        if !args.bin_dir.join(binary).exists() {
            bail!(
                "{} is missing: run cargo build --release -p tickforge-server -p tickforge-client first",
                args.bin_dir.join(binary).display()
            );
        }
    }
    let header = "| scenario | connected | failed | server CPU % of a core | fsyncs / s | server RSS KiB per connection | tick p99 ms | missed ticks | latency p50 ms | latency p99 ms | bytes in / client / tick | bytes out / client / tick | swarm CPU ms / bot-s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
    println!("{header}");
    let mut rows = Vec::new();
    let mut jsons = Vec::new();
    for s in scenarios().iter().filter(|s| {
        args.only
            .as_ref()
            .is_none_or(|o| s.name.contains(o.as_str()))
    }) {
        let report = run(s, &args).with_context(|| format!("scenario {}", s.name))?;
        let line = row(&report);
        println!("{line}");
        rows.push(line);
        jsons.push(serde_json::to_string(&report)?);
    }
    if !args.no_write {
        let machine = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let block = format!(
            "<!-- load:begin -->\nMachine: {} cores, {machine}. Command: `target/release/load-bench --duration {}`. Server pinned to core 0, bots to core 1, loopback, rooms of 8, 60 Hz, fsync per tick (the default).\n\n{header}\n{}\n\n```jsonl\n{}\n```\n<!-- load:end -->",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.duration,
            rows.join("\n"),
            jsons.join("\n")
        );
        let path = Path::new("BENCHMARKS.md");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let updated = match (
            text.find("<!-- load:begin -->"),
            text.find("<!-- load:end -->"),
        ) {
            (Some(a), Some(b)) => format!(
                "{}{block}{}",
                &text[..a],
                &text[b + "<!-- load:end -->".len()..]
            ),
            _ => format!("{text}\n## Load benchmark (issue 5)\n\n{block}\n"),
        };
        std::fs::write(path, updated)?;
        println!("BENCHMARKS.md updated");
    }
    Ok(())
}
