//! Abuse figures: how long each kind of misbehaving connection lasts, and whether honest
//! players notice.
//!
//! ```sh
//! cargo build --release -p tickforge-server -p tickforge-client -p tickforge-benches
//! taskset -c 1 target/release/abuse-bench          # prints a table (markdown)
//! ```
//!
//! For each scenario a fresh release server runs pinned to core 0 and an honest swarm
//! (`tickforge-bots`, 64 drift bots in rooms of 8) pinned to core 1, twice: once alone
//! (before) and once with the abusers started at the beginning of the swarm's window (during).
//! The abusers run in this process, on loopback only; every loop is bounded in count and time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tickforge_protocol::{
    ClientMessage, Command as GameCommand, CommandId, MatchId, PROTOCOL_VERSION, encode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 7890)]
    port: u16,
    /// Run only the scenarios whose names contain this.
    #[arg(long)]
    only: Option<String>,
    /// Seconds of the honest swarm's window per run.
    #[arg(long, default_value_t = 15)]
    window: u64,
}

fn start_server(args: &Args, name: &str) -> anyhow::Result<Child> {
    let data = std::env::temp_dir().join(format!("tickforge-abuse-{name}"));
    let _ = std::fs::remove_dir_all(&data);
    tickforge_benches::start_pinned_server(
        &args.bin_dir,
        args.port,
        &data,
        tickforge_benches::LOAD_TEST_LIMITS,
    )
}

fn start_swarm(args: &Args) -> anyhow::Result<Child> {
    let line = format!(
        "exec taskset -c 1 {} --url ws://127.0.0.1:{} --bots 64 --game drift --room-size 8 --ramp-up 2 --duration {} --json",
        args.bin_dir.join("tickforge-bots").display(),
        args.port,
        args.window
    );
    Ok(Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?)
}

fn swarm_report(child: Child) -> anyhow::Result<(f64, f64)> {
    let out = child.wait_with_output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("the swarm's report")?;
    anyhow::ensure!(
        v["failed"] == 0 && v["dropped"] == 0,
        "honest bots failed or were dropped: {v}"
    );
    Ok((
        v["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
        v["server"]["tick_p99_ms"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn stop(mut server: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

/// How long each abusive connection lasted, in seconds.
type Cuts = Vec<f64>;

async fn until_closed(mut stream: TcpStream, started: Instant, limit: Duration) -> f64 {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return started.elapsed().as_secs_f64(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Slowloris: 50 connections that send an HTTP request one byte every 2 s, never finishing.
async fn slowloris(addr: SocketAddr) -> Cuts {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let started = Instant::now();
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return f64::NAN;
                };
                let request = b"GET /play HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                for byte in request.iter().cycle().take(30) {
                    if s.write_all(&[*byte]).await.is_err() {
                        return started.elapsed().as_secs_f64();
                    }
                    let mut buf = [0u8; 256];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
                    {
                        return started.elapsed().as_secs_f64();
                    }
                }
                f64::NAN
            })
        })
        .collect();
    collect(tasks).await
}

/// 200 sockets from 127.0.0.2 to 127.0.0.201 that connect and say nothing.
async fn idle_sockets(addr: SocketAddr) -> Cuts {
    let tasks: Vec<_> = (2..=201u8)
        .map(|last| {
            tokio::spawn(async move {
                let started = Instant::now();
                let socket = TcpSocket::new_v4().ok()?;
                socket
                    .bind(SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                        0,
                    ))
                    .ok()?;
                let stream = socket.connect(addr).await.ok()?;
                Some(until_closed(stream, started, Duration::from_secs(60)).await)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.ok().flatten().unwrap_or(f64::NAN));
    }
    out
}

async fn joined(
    url: &str,
    token: &str,
    room: MatchId,
    socket: Option<TcpSocket>,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let addr: SocketAddr = url.trim_start_matches("ws://").parse()?;
    let stream = match socket {
        Some(s) => s.connect(addr).await?,
        None => TcpStream::connect(addr).await?,
    };
    let mut request = format!("{url}/play").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    for m in [
        ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            client: "abuser".into(),
        },
        ClientMessage::Join {
            match_id: Some(room),
            name: "abuser".into(),
        },
    ] {
        ws.send(Message::Binary(encode(&m)?.into())).await?;
    }
    Ok(ws)
}

/// Read until the close frame (or the end); seconds since `started`.
async fn until_close_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    started: Instant,
) -> f64 {
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    started.elapsed().as_secs_f64()
}

async fn abusers(url: String, token: String, room: MatchId, kind: &'static str) -> Cuts {
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                match kind {
                    "oversize" => {
                        let Ok(mut ws) = joined(&url, &token, room, None).await else {
                            return f64::NAN;
                        };
                        let started = Instant::now();
                        let _ = ws.send(Message::Binary(vec![0x90; 5000].into())).await;
                        until_close_frame(&mut ws, started).await
                    }
                    "flood" => {
                        let Ok(ws) = joined(&url, &token, room, None).await else {
                            return f64::NAN;
                        };
                        let started = Instant::now();
                        let (mut sink, mut stream) = ws.split();
                        let reader = tokio::spawn(async move {
                            while let Some(Ok(m)) = stream.next().await {
                                if m.is_close() {
                                    break;
                                }
                            }
                            started.elapsed().as_secs_f64()
                        });
                        // 10× the sustained rate: 1,200 commands a second, for at most 10 s.
                        for n in 0..12_000u32 {
                            // A forged entity: refused by the rules, but every command spends a rate token.
                            let steer = GameCommand::Drift {
                                entity: tickforge_protocol::EntityId(0),
                                dx: 1,
                                dy: 1,
                            };
                            let m = ClientMessage::Command {
                                id: CommandId(n + 1),
                                command: steer,
                            };
                            let bytes = match encode(&m) {
                                Ok(b) => b,
                                Err(_) => break,
                            };
                            if sink.feed(Message::Binary(bytes.into())).await.is_err() {
                                break;
                            }
                            if n % 12 == 0 {
                                if sink.flush().await.is_err() || reader.is_finished() {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                        reader.await.unwrap_or(f64::NAN)
                    }
                    _ => f64::NAN,
                }
                .min(started.elapsed().as_secs_f64() + 60.0)
            })
        })
        .collect();
    collect(tasks).await
}

/// Clients that join and never read again; their cut is seen in the server's close counter.
async fn sleepers(url: String, token: String, room: MatchId) -> Cuts {
    let mut held = Vec::new();
    let started = Instant::now();
    for _ in 0..10 {
        let socket = TcpSocket::new_v4().and_then(|s| s.set_recv_buffer_size(4096).map(|()| s));
        if let Ok(ws) = joined(&url, &token, room, socket.ok()).await {
            held.push(ws);
        }
    }
    let mut cuts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cuts.len() < held.len() && Instant::now() < deadline {
        let metrics = tickforge_client::http::request(&url, "GET", "/metrics", None, None)
            .await
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
        // A reader that never reads is cut as too_slow once its buffers fill, or as
        // ping_timeout when it fails to answer pings, whichever comes first.
        let count = |m: &str, reason: &str| {
            m.lines()
                .find(|l| l.starts_with(&format!("tickforge_closes_total{{reason=\"{reason}\"}}")))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
                .unwrap_or(0.0)
        };
        let cut = metrics
            .map(|m| count(&m, "too_slow") + count(&m, "ping_timeout"))
            .unwrap_or(0.0) as usize;
        while cuts.len() < cut.min(held.len()) {
            cuts.push(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    cuts
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<f64>>) -> Cuts {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or(f64::NAN));
    }
    out
}

fn summary(cuts: &Cuts) -> String {
    let mut ok: Vec<f64> = cuts.iter().copied().filter(|v| v.is_finite()).collect();
    ok.sort_by(f64::total_cmp);
    if ok.is_empty() {
        return "not cut".into();
    }
    format!(
        "{}/{} cut; median {:.2} s, max {:.2} s",
        ok.len(),
        cuts.len(),
        ok[ok.len() / 2],
        ok[ok.len() - 1]
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let url = format!("ws://127.0.0.1:{}", args.port);
    let addr: SocketAddr = format!("127.0.0.1:{}", args.port).parse()?;
    println!(
        "| abuse | how long the abusers lasted | honest latency p99 before → during | tick p99 before → during |"
    );
    println!("|---|---|---|---|");
    for scenario in [
        "slowloris",
        "idle-200",
        "oversize",
        "flood-10x",
        "never-read",
    ] {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !scenario.contains(o.as_str()))
        {
            continue;
        }
        // Before: the honest swarm alone.
        let server = start_server(&args, scenario)?;
        let (lat_before, tick_before) = swarm_report(start_swarm(&args)?)?;
        stop(server);
        // During: the same, with the abusers.
        let server = start_server(&args, scenario)?;
        let swarm = start_swarm(&args)?;
        std::thread::sleep(Duration::from_secs(2));
        let cuts = runtime.block_on(async {
            let token = tickforge_client::guest_token(&url, "abuser", false).await?;
            let room = MatchId(
                tickforge_client::create_match(
                    &url,
                    &token,
                    "drift",
                    Some(serde_json::json!({ "max_players": 32 })),
                    Some(1),
                )
                .await?["id"]
                    .as_u64()
                    .context("a match id")?,
            );
            anyhow::Ok(match scenario {
                "slowloris" => slowloris(addr).await,
                "idle-200" => idle_sockets(addr).await,
                "oversize" => abusers(url.clone(), token, room, "oversize").await,
                "flood-10x" => abusers(url.clone(), token, room, "flood").await,
                _ => sleepers(url.clone(), token, room).await,
            })
        })?;
        let (lat_during, tick_during) = swarm_report(swarm)?;
        stop(server);
        println!(
            "| {scenario} | {} | {lat_before:.2} → {lat_during:.2} ms | {tick_before:.3} → {tick_during:.3} ms |",
            summary(&cuts)
        );
    }
    Ok(())
}
