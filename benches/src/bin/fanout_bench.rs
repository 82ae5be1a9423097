//! How to write each client's tick frame: the candidates of protocol 2's fan-out, measured
//! alone, without the rest of the server.
//!
//! ```sh
//! cargo build --release -p tickforge-benches --bin fanout-bench
//! taskset -c 0 target/release/fanout-bench --clients 256 --seconds 5 --rounds 3
//! ```
//!
//! The bench runs on one core (pin it there); it starts a reader of its own on the other core
//! (`taskset -c 1`) that accepts connections and discards what comes. Every tick (60 Hz) the
//! bench sends one 37-byte WebSocket binary frame (a 35-byte tick frame) to each of its
//! `--clients` loopback TCP connections, written by one of these candidates:
//! - `task-per-client`: the fan-out hands each client's frame to that client's writer task
//!   through a bounded channel (one wakeup per client per tick, as the server does today);
//! - `tungstenite-task`: the same, with each writer a tokio-tungstenite sink (the server's
//!   framing and flushing);
//! - `direct`: the fan-out writes each frame itself with a non-blocking `try_write`, and only
//!   a frame that does not fit the socket goes to a queue (no wakeup at all);
//! - `writer-per-core`: the fan-out hands the whole tick to one writer task per core (here one
//!   core, so one task), which writes every client's frame with `try_write` (one wakeup per
//!   core per tick, and the tick itself does no syscall).
//!
//! Rounds take turns, so the candidates meet the same machine. Each prints the CPU time of
//! the bench process (user + system, from /proc/self/stat) per client-second and per frame,
//! and the fan-out's own time per tick.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

#[derive(Parser, Debug)]
struct Args {
    /// Connections written to every tick.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Length of each round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds of every candidate.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run as the reader on ADDRESS (internal).
    #[arg(long, hide = true)]
    reader: Option<String>,
}

const CANDIDATES: [&str; 4] = [
    "task-per-client",
    "tungstenite-task",
    "direct",
    "writer-per-core",
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(address) = args.reader {
        return read_everything(&address);
    }
    let reader_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = reader_listener.local_addr()?;
    drop(reader_listener);
    let mut reader = spawn_reader(address)?;
    std::thread::sleep(Duration::from_millis(300));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&args, address));
    let _ = reader.kill();
    let _ = reader.wait();
    result
}

fn spawn_reader(address: SocketAddr) -> anyhow::Result<Child> {
    let me = std::env::current_exe()?;
    Ok(Command::new("taskset")
        .args(["-c", "1"])
        .arg(me)
        .args(["--reader", &address.to_string()])
        .stdout(Stdio::null())
        .spawn()?)
}

/// The reader: accept every connection and discard what arrives, a thread per connection
/// (on its own core, its cost is not the bench's).
fn read_everything(address: &str) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(address)?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    Ok(())
}

/// CPU time of this process so far (user + system).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ") S".
    let hz = 100; // USER_HZ on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

fn frame() -> Bytes {
    let mut f = vec![0x82u8, 35];
    f.extend((0..35u8).map(|i| 0x10 | (i & 7)));
    Bytes::from(f)
}

async fn connect(address: SocketAddr, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(address).await?;
        s.set_nodelay(true)?;
        out.push(s);
    }
    Ok(out)
}

/// Write all of `bytes` to `stream`, waiting for room.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct Figures {
    cpu: Duration,
    fanout: Vec<Duration>,
    fallbacks: u64,
}

async fn round(
    candidate: &str,
    address: SocketAddr,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let streams = connect(address, clients).await?;
    let frame = frame();
    let ticks = seconds * 60;
    let mut fanout = Vec::with_capacity(ticks as usize);
    let mut fallbacks = 0u64;
    let mut interval = tokio::time::interval(Duration::from_micros(16_667));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Let the connections settle before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = cpu();
    match candidate {
        "task-per-client" | "tungstenite-task" => {
            let mut senders = Vec::with_capacity(clients);
            let mut tasks = Vec::with_capacity(clients);
            for s in streams {
                let (tx, mut rx) = mpsc::channel::<Bytes>(64);
                senders.push(tx);
                if candidate == "task-per-client" {
                    tasks.push(tokio::spawn(async move {
                        while let Some(f) = rx.recv().await {
                            if write_all(&s, &f).await.is_err() {
                                return;
                            }
                        }
                    }));
                } else {
                    let mut ws =
                        tokio_tungstenite::WebSocketStream::from_raw_socket(s, Role::Server, None)
                            .await;
                    let payload = frame.slice(2..);
                    tasks.push(tokio::spawn(async move {
                        while rx.recv().await.is_some() {
                            if ws.send(Message::Binary(payload.clone())).await.is_err() {
                                return;
                            }
                        }
                    }));
                }
            }
            for _ in 0..ticks {
                interval.tick().await;
                let t = Instant::now();
                for tx in &senders {
                    if tx.try_send(frame.clone()).is_err() {
                        fallbacks += 1;
                    }
                }
                fanout.push(t.elapsed());
            }
            drop(senders);
            for t in tasks {
                let _ = t.await;
            }
        }
        "writer-per-core" => {
            let streams: Vec<Arc<TcpStream>> = streams.into_iter().map(Arc::new).collect();
            let (tx, mut rx) = mpsc::channel::<Bytes>(64);
            let writer = tokio::spawn(async move {
                let mut fallbacks = 0u64;
                let mut waiting = Vec::new();
                while let Some(f) = rx.recv().await {
                    for s in &streams {
                        if !matches!(s.try_write(&f), Ok(n) if n == f.len()) {
                            // Not measured further: the socket has room at this rate.
                            fallbacks += 1;
                            let (s, f) = (s.clone(), f.clone());
                            waiting.push(tokio::spawn(async move { write_all(&s, &f).await }));
                        }
                    }
                }
                for w in waiting {
                    let _ = w.await;
                }
                fallbacks
            });
            for _ in 0..ticks {
                interval.tick().await;
                let t = Instant::now();
                if tx.try_send(frame.clone()).is_err() {
                    fallbacks += 1;
                }
                fanout.push(t.elapsed());
            }
            drop(tx);
            fallbacks += writer.await.unwrap_or(0);
        }
        _ => {
            let streams: Vec<Arc<TcpStream>> = streams.into_iter().map(Arc::new).collect();
            let mut waiting = Vec::new();
            for _ in 0..ticks {
                interval.tick().await;
                let t = Instant::now();
                for s in &streams {
                    match s.try_write(&frame) {
                        Ok(n) if n == frame.len() => {}
                        Ok(n) => {
                            fallbacks += 1;
                            let (s, rest) = (s.clone(), frame.slice(n..));
                            waiting.push(tokio::spawn(async move { write_all(&s, &rest).await }));
                        }
                        Err(_) => {
                            fallbacks += 1;
                            let (s, f) = (s.clone(), frame.clone());
                            waiting.push(tokio::spawn(async move { write_all(&s, &f).await }));
                        }
                    }
                }
                fanout.push(t.elapsed());
            }
            for w in waiting {
                let _ = w.await;
            }
        }
    }
    Ok(Figures {
        cpu: cpu() - start,
        fanout,
        fallbacks,
    })
}

async fn run(args: &Args, address: SocketAddr) -> anyhow::Result<()> {
    println!(
        "{} clients, 60 Hz, {} s rounds, {} rounds of each, one 37-byte frame per client per tick",
        args.clients, args.seconds, args.rounds
    );
    println!(
        "candidate          round  CPU % of a core  µs per client-second  µs per frame  fan-out p50/p99 µs  fallbacks"
    );
    for r in 1..=args.rounds {
        for candidate in CANDIDATES {
            let f = round(candidate, address, args.clients, args.seconds).await?;
            let client_seconds = (args.clients as u64 * args.seconds) as f64;
            let mut fan = f.fanout.clone();
            fan.sort();
            let pct = |q: f64| fan[((fan.len() - 1) as f64 * q) as usize].as_micros();
            println!(
                "{candidate:<18} {r:>5}  {:>15.1}  {:>20.1}  {:>12.2}  {:>9}/{:<8}  {}",
                f.cpu.as_secs_f64() * 100.0 / args.seconds as f64,
                f.cpu.as_micros() as f64 / client_seconds,
                f.cpu.as_micros() as f64 / (client_seconds * 60.0),
                pct(0.5),
                pct(0.99),
                f.fallbacks
            );
        }
    }
    Ok(())
}
