//! The swarm: rooms, ramp-up, the bots, the measuring window, and the report.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tickforge_client::{Connection, Session, Traffic};
use tickforge_protocol::{
    ClientMessage, Command, CommandId, ComponentValue, MatchId, ServerMessage,
};
use tokio::time::Instant;

use crate::behavior::{Behavior, Brain};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub token: String,
    pub bots: usize,
    pub rate_hz: f64,
    pub duration: Duration,
    pub ramp_up: Duration,
    pub game: String,
    pub room_size: u32,
    pub behavior: Behavior,
    pub seed: u64,
}

/// Counters the progress line reads while the swarm runs.
#[derive(Default)]
pub struct Live {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub messages: AtomicU64,
    pub latency: Mutex<Option<Histogram<u64>>>,
}

struct BotResult {
    connected: bool,
    failed: Option<String>,
    dropped: bool,
    latency: Histogram<u64>,
    traffic: Traffic,
    ticks: u64,
}

/// What a connection did between two readings.
fn since(start: Traffic, end: Traffic) -> Traffic {
    Traffic {
        frames_in: end.frames_in - start.frames_in,
        bytes_in: end.bytes_in - start.bytes_in,
        frames_out: end.frames_out - start.frames_out,
        bytes_out: end.bytes_out - start.bytes_out,
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// The server's own figures, from its /metrics.
#[derive(Debug, Serialize, Default)]
pub struct ServerFigures {
    pub tick_p50_ms: Option<f64>,
    pub tick_p99_ms: Option<f64>,
    pub tick_max_ms: Option<f64>,
    pub tick_overruns: Option<f64>,
    pub ticks: Option<f64>,
}

/// The swarm's report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub game: String,
    pub behavior: String,
    pub bots: usize,
    pub room_size: u32,
    pub rate_hz: f64,
    pub window_s: f64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    pub first_failure: Option<String>,
    pub latency: Latency,
    pub bytes_in_per_client_per_s: f64,
    pub bytes_out_per_client_per_s: f64,
    pub bytes_in_per_client_per_tick: f64,
    pub bytes_out_per_client_per_tick: f64,
    pub messages_in_per_s: f64,
    pub swarm_cpu_ms_per_bot_s: f64,
    pub server: ServerFigures,
}

/// CPU time of this process so far (user + system), from /proc/self/stat. Linux reports it in
/// clock ticks of USER_HZ, which is 100 on every Linux ABI.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Run the swarm to the end of its window and report.
pub async fn run(plan: Plan, live: Arc<Live>) -> anyhow::Result<Report> {
    let drift = plan.game == "drift";
    let idle = matches!(plan.behavior, Behavior::Idle);
    let rooms = if idle {
        Vec::new()
    } else {
        create_rooms(&plan).await?
    };
    let started = Instant::now();
    let window_start = started + plan.ramp_up;
    let window_end = window_start + plan.duration;
    let plan = Arc::new(plan);
    let mut bots = Vec::with_capacity(plan.bots);
    for index in 0..plan.bots {
        let offset = plan.ramp_up.mul_f64(index as f64 / plan.bots.max(1) as f64);
        let room = rooms.get(index / plan.room_size.max(1) as usize).copied();
        let (plan, live) = (plan.clone(), live.clone());
        bots.push(tokio::spawn(async move {
            tokio::time::sleep_until(started + offset).await;
            if idle {
                idle_bot(&plan, &live, window_start, window_end).await
            } else {
                play_bot(index, room, drift, &plan, &live, window_start, window_end).await
            }
        }));
    }
    tokio::time::sleep_until(window_start).await;
    let pid = std::process::id().to_string();
    let cpu_start = cpu_seconds(&pid);
    tokio::time::sleep_until(window_end).await;
    let cpu_end = cpu_seconds(&pid);
    let mut results = Vec::with_capacity(bots.len());
    for b in bots {
        results.push(b.await.context("a bot task failed")?);
    }
    let mut latency = histogram();
    let (mut traffic, mut ticks) = (Traffic::default(), 0u64);
    for r in &results {
        let _ = latency.add(&r.latency);
        traffic.bytes_in += r.traffic.bytes_in;
        traffic.bytes_out += r.traffic.bytes_out;
        traffic.frames_in += r.traffic.frames_in;
        ticks += r.ticks;
    }
    let connected = results.iter().filter(|r| r.connected).count() as u64;
    let window = plan.duration.as_secs_f64();
    let clients = connected.max(1) as f64;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        game: plan.game.clone(),
        behavior: plan.behavior.name().into(),
        bots: plan.bots,
        room_size: plan.room_size,
        rate_hz: plan.rate_hz,
        window_s: window,
        connected,
        failed: results.iter().filter(|r| r.failed.is_some()).count() as u64,
        dropped: results.iter().filter(|r| r.dropped).count() as u64,
        first_failure: results.iter().find_map(|r| r.failed.clone()),
        latency: Latency {
            samples: latency.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: latency.max() as f64 / 1000.0,
        },
        bytes_in_per_client_per_s: traffic.bytes_in as f64 / clients / window,
        bytes_out_per_client_per_s: traffic.bytes_out as f64 / clients / window,
        bytes_in_per_client_per_tick: traffic.bytes_in as f64 / ticks.max(1) as f64,
        bytes_out_per_client_per_tick: traffic.bytes_out as f64 / ticks.max(1) as f64,
        messages_in_per_s: traffic.frames_in as f64 / window,
        swarm_cpu_ms_per_bot_s: match (cpu_start, cpu_end) {
            (Some(a), Some(b)) => (b - a) * 1000.0 / clients / window,
            _ => f64::NAN,
        },
        server: server_figures(&plan.url).await,
    })
}

async fn create_rooms(plan: &Plan) -> anyhow::Result<Vec<MatchId>> {
    let count = plan.bots.div_ceil(plan.room_size.max(1) as usize);
    let mut config = serde_json::json!({ "max_players": plan.room_size });
    if plan.game == "arena" {
        // Load tests run for their whole duration: no kill limit.
        config["score_limit"] = serde_json::json!(1_000_000);
        config["time_limit_ticks"] =
            serde_json::json!(tickforge_protocol::GameConfig::MAX_TIME_LIMIT_TICKS);
    }
    let mut rooms = Vec::with_capacity(count);
    for r in 0..count {
        let info = tickforge_client::create_match(
            &plan.url,
            &plan.token,
            &plan.game,
            Some(config.clone()),
            Some(plan.seed + r as u64),
        )
        .await
        .context(
            "creating a room (POST /matches); a 429 means the server's per-player or per-address \
             match limit: for a load test, start it with higher --max-matches-per-player and \
             --max-matches-per-address",
        )?;
        rooms.push(MatchId(
            info["id"]
                .as_u64()
                .context("the server returned no match id")?,
        ));
    }
    Ok(rooms)
}

/// What a pending input looks like once applied.
enum Expect {
    Input(CommandId),
    Velocity(i32, i32),
}

#[allow(clippy::too_many_arguments)]
async fn play_bot(
    index: usize,
    room: Option<MatchId>,
    drift: bool,
    plan: &Plan,
    live: &Live,
    window_start: Instant,
    window_end: Instant,
) -> BotResult {
    let mut result = BotResult {
        connected: false,
        failed: None,
        dropped: false,
        latency: histogram(),
        traffic: Traffic::default(),
        ticks: 0,
    };
    let mut session =
        match Session::join(&plan.url, &plan.token, room, &format!("bot-{index}")).await {
            Ok(s) => s,
            Err(e) => {
                live.failed.fetch_add(1, Ordering::Relaxed);
                result.failed = Some(e.to_string());
                return result;
            }
        };
    // A bot reads the mirror, never a tick's delta: decoding into the mirror alone is cheaper.
    session.keep_deltas(false);
    result.connected = true;
    live.connected.fetch_add(1, Ordering::Relaxed);
    let me = session.entity();
    let mut brain = Brain::new(plan.behavior.clone(), drift, plan.seed, index);
    let every = ((f64::from(session.tick_rate_hz()) / plan.rate_hz).round() as u64).max(1);
    let mut pending: VecDeque<(CommandId, Expect, Instant)> = VecDeque::new();
    let (mut deltas, mut at_window_start): (u64, Option<Traffic>) = (0, None);
    loop {
        let now = Instant::now();
        if now >= window_end {
            break;
        }
        let in_window = now >= window_start;
        if in_window && at_window_start.is_none() {
            at_window_start = Some(session.traffic());
        }
        let message = match tokio::time::timeout_at(window_end, session.recv()).await {
            Err(_) => break,
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                live.dropped.fetch_add(1, Ordering::Relaxed);
                result.dropped = true;
                result.failed.get_or_insert(e.to_string());
                break;
            }
        };
        live.messages.fetch_add(1, Ordering::Relaxed);
        if let ServerMessage::MatchEnded { .. } = &message {
            // The match is over (a time or score limit): the bot's play ends, not in failure.
            break;
        }
        if let ServerMessage::Rejected { id, .. } = &message {
            // A refused input never shows up in a delta: stop waiting for it.
            pending.retain(|(pending_id, _, _)| pending_id != id);
        }
        let ServerMessage::Tick(frame) = message else {
            continue;
        };
        for r in &frame.rejections {
            pending.retain(|(pending_id, _, _)| *pending_id != r.id);
        }
        deltas += 1;
        if in_window {
            result.ticks += 1;
        }
        // Latency: the first delta that shows an input applied.
        let shown = match (
            drift,
            session.mirror().get(me, "input"),
            session.mirror().get(me, "vel"),
        ) {
            (true, Some(ComponentValue::LastInput { input }), _) => Some(Expect::Input(*input)),
            (false, _, Some(ComponentValue::Velocity { vx, vy })) => {
                Some(Expect::Velocity(*vx, *vy))
            }
            _ => None,
        };
        if let Some(shown) = shown {
            let position = pending.iter().position(|(_, e, _)| match (e, &shown) {
                (Expect::Input(a), Expect::Input(b)) => a <= b,
                (Expect::Velocity(a, b), Expect::Velocity(c, d)) => (a, b) == (c, d),
                _ => false,
            });
            if let Some(last) = position {
                let arrived = Instant::now();
                for (_, _, sent) in pending.drain(..=last) {
                    if in_window && sent >= window_start {
                        let micros = arrived.duration_since(sent).as_micros() as u64;
                        let _ = result.latency.record(micros.max(1));
                        if let Some(h) = live.latency.lock().as_mut() {
                            let _ = h.record(micros.max(1));
                        }
                    }
                }
            }
        }
        if deltas % every != 0 {
            continue;
        }
        let inputs = brain.inputs(me, session.mirror(), deltas);
        if inputs.is_empty() {
            continue;
        }
        let sent_at = Instant::now();
        for command in inputs {
            let expect = match &command {
                Command::Move { vx, vy, .. } => Some(Expect::Velocity(*vx, *vy)),
                Command::Drift { .. } => None,
                _ => None,
            };
            match session.feed(command).await {
                Ok(id) => {
                    if drift {
                        pending.push_back((id, Expect::Input(id), sent_at));
                    } else if let Some(e) = expect {
                        pending.push_back((id, e, sent_at));
                    }
                }
                Err(e) => {
                    result.failed.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        // Inputs the game overrode before they showed (a steer then a death) are not waited for.
        while pending
            .front()
            .is_some_and(|(_, _, sent)| sent.elapsed() > Duration::from_secs(2))
            || pending.len() > 256
        {
            pending.pop_front();
        }
        if let Err(e) = session.flush().await {
            live.dropped.fetch_add(1, Ordering::Relaxed);
            result.dropped = true;
            result.failed.get_or_insert(e.to_string());
            break;
        }
    }
    result.traffic = since(at_window_start.unwrap_or_default(), session.traffic());
    let _ = session.leave_quietly().await;
    result
}

async fn idle_bot(
    plan: &Plan,
    live: &Live,
    window_start: Instant,
    window_end: Instant,
) -> BotResult {
    let mut result = BotResult {
        connected: false,
        failed: None,
        dropped: false,
        latency: histogram(),
        traffic: Traffic::default(),
        ticks: 0,
    };
    let mut conn = match Connection::connect(&plan.url, &plan.token).await {
        Ok(c) => c,
        Err(e) => {
            live.failed.fetch_add(1, Ordering::Relaxed);
            result.failed = Some(e.to_string());
            return result;
        }
    };
    result.connected = true;
    live.connected.fetch_add(1, Ordering::Relaxed);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut at_window_start = None;
    let mut nonce = 0u64;
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(window_end) => break,
            _ = heartbeat.tick() => {
                if Instant::now() >= window_start && at_window_start.is_none() {
                    at_window_start = Some(conn.traffic());
                }
                nonce += 1;
                sent.push_back((nonce, Instant::now()));
                if conn.send(&ClientMessage::Ping { nonce }).await.is_err() {
                    result.dropped = true;
                    live.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            message = conn.recv() => match message {
                Ok(ServerMessage::Pong { nonce }) => {
                    live.messages.fetch_add(1, Ordering::Relaxed);
                    if let Some(pos) = sent.iter().position(|(n, _)| *n == nonce) {
                        let (_, at) = sent.remove(pos).unwrap_or((0, Instant::now()));
                        if at >= window_start {
                            let _ = result.latency.record((at.elapsed().as_micros() as u64).max(1));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    result.dropped = true;
                    result.failed = Some(e.to_string());
                    live.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
        }
    }
    result.traffic = since(at_window_start.unwrap_or_default(), conn.traffic());
    result.ticks = plan.duration.as_secs();
    conn.close().await;
    result
}

async fn server_figures(url: &str) -> ServerFigures {
    let Ok((_, body)) = tickforge_client::http::request(url, "GET", "/metrics", None, None).await
    else {
        return ServerFigures::default();
    };
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    ServerFigures {
        tick_p50_ms: value("tickforge_tick_duration_p50_seconds").map(|v| v * 1e3),
        tick_p99_ms: value("tickforge_tick_duration_p99_seconds").map(|v| v * 1e3),
        tick_max_ms: value("tickforge_tick_duration_max_seconds").map(|v| v * 1e3),
        tick_overruns: value("tickforge_tick_overruns_total"),
        ticks: value("tickforge_ticks_total"),
    }
}
