//! Bots for a development server: `POST /matches` with `"bots": N` fills the new match with N
//! bots, so that a visitor of the play page has someone to play against.
//!
//! A bot is an ordinary client: it connects to this server's own `/play` over loopback with a
//! token the server signs, speaks the same protocol as any player (Hello, Join, commands, tick
//! frames decoded into a [`World`]), and leaves like one. Nothing in the match knows that it
//! is a bot. The bots of a match leave once no other player has been in it for
//! [`ALONE_FOR`] (or none came within [`FIRST_PLAYER_WITHIN`]), so the match then ends as idle.
//! Development mode only: a server with a secret refuses the setting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickforge_protocol::{
    ClientMessage, Command, CommandId, ComponentTable, ComponentValue, EntityId, GameConfig,
    MatchId, PROTOCOL_VERSION, ServerMessage, Tick, World, decode_server, encode,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::auth::Role;
use crate::matches::{MatchShared, MatchState};
use crate::net::AppState;

/// The most bots one match may ask for.
pub const MAX_BOTS: u32 = 15;
/// Bots leave a match in which no other player has been for this long.
pub const ALONE_FOR: Duration = Duration::from_secs(10);
/// Bots leave a match whose first other player has not come within this long.
pub const FIRST_PLAYER_WITHIN: Duration = Duration::from_secs(60);

/// How the bots of a match play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    /// Arena: close in on the nearest living player, circle them and fire when the cooldown
    /// allows. Drift: wander.
    Fight,
    /// Move about at random and never fire.
    Wander,
    /// Join and stand still: a target.
    Idle,
}

/// Start `count` bots in match `id`, which runs in this server at `addr`.
pub fn spawn(
    state: Arc<AppState>,
    addr: SocketAddr,
    id: MatchId,
    shared: Arc<MatchShared>,
    count: u32,
    behavior: Behavior,
) {
    let stop = state.shutdown.child_token();
    // The bots not yet gone, counted from before they join (so the supervisor never takes a
    // joining bot for a player) until their task ends.
    let alive = Arc::new(AtomicU32::new(count));
    for n in 1..=count {
        let (token, _) = state
            .auth
            .issue(Role::Player, &format!("bot-{n}"), unix_now());
        let bot = Bot {
            url: format!("ws://{addr}/play?token={token}"),
            id,
            name: format!("bot-{n}"),
            behavior,
            seed: u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id.0,
            stop: stop.clone(),
            alive: alive.clone(),
        };
        state.tasks.spawn(async move {
            let alive = bot.alive.clone();
            if let Err(e) = bot.run().await {
                tracing::debug!(match_id = id.0, error = %e, "a bot stopped");
            }
            alive.fetch_sub(1, Ordering::Relaxed);
        });
    }
    state.tasks.spawn(supervise(shared, alive, stop));
}

/// Stop the bots when the match is over or no other player is in it.
async fn supervise(shared: Arc<MatchShared>, alive: Arc<AtomicU32>, stop: CancellationToken) {
    let every = Duration::from_millis(500);
    let mut alone = Duration::ZERO;
    let mut seen_player = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let (state, players) = {
            let info = shared.info.read();
            (info.state.clone(), info.players)
        };
        if state != MatchState::Running {
            stop.cancel();
            return;
        }
        let others = players.saturating_sub(alive.load(Ordering::Relaxed));
        if others > 0 {
            seen_player = true;
            alone = Duration::ZERO;
        } else {
            alone += every;
        }
        let limit = if seen_player {
            ALONE_FOR
        } else {
            FIRST_PLAYER_WITHIN
        };
        if alone >= limit {
            stop.cancel();
            return;
        }
    }
}

fn unix_now() -> u64 {
    crate::matches::unix_ms() / 1000
}

struct Bot {
    url: String,
    id: MatchId,
    name: String,
    behavior: Behavior,
    seed: u64,
    stop: CancellationToken,
    alive: Arc<AtomicU32>,
}

/// What a bot knows of its match once joined.
struct Seat {
    entity: EntityId,
    rules: GameConfig,
    world: World,
    tick: Tick,
    next_id: u32,
    /// Arena: the first tick the bot may fire again, from its own accepted shots.
    ready_at: u64,
    /// A shot not yet answered, and the tick it was sent in.
    fired: Option<(CommandId, u64)>,
    rng: u64,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn frame(m: &ClientMessage) -> Result<Message, String> {
    encode(m)
        .map(|b| Message::Binary(b.into()))
        .map_err(|e| e.to_string())
}

async fn send(ws: &mut Socket, m: &ClientMessage) -> Result<(), String> {
    ws.send(frame(m)?).await.map_err(|e| e.to_string())
}

impl Bot {
    /// Connect, play until told to stop (or the match or connection ends), and leave on every
    /// way out, so that a bot never lingers as a dropped player.
    async fn run(self) -> Result<(), String> {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let played = self.play(&mut ws).await;
        let _ = send(&mut ws, &ClientMessage::Leave).await;
        let _ = ws.close(None).await;
        played
    }

    async fn play(&self, ws: &mut Socket) -> Result<(), String> {
        send(
            ws,
            &ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                client: "tickforge dev bot".into(),
            },
        )
        .await?;
        send(
            ws,
            &ClientMessage::Join {
                match_id: Some(self.id),
                name: self.name.clone(),
            },
        )
        .await?;
        let mut seat: Option<Seat> = None;
        loop {
            let incoming = tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                f = ws.next() => f,
            };
            let Some(Ok(incoming)) = incoming else {
                return Ok(());
            };
            let Message::Binary(bytes) = incoming else {
                continue;
            };
            let command = match (
                decode_server(&bytes).map_err(|e| e.to_string())?,
                seat.as_mut(),
            ) {
                (
                    ServerMessage::Joined {
                        entity,
                        rules,
                        components,
                        snapshot,
                        ..
                    },
                    _,
                ) => {
                    let table = ComponentTable::new(components).map_err(|e| e.to_string())?;
                    let mut world = World::new(table);
                    world.apply_snapshot(&snapshot).map_err(|e| e.to_string())?;
                    seat = Some(Seat {
                        entity,
                        rules,
                        world,
                        tick: snapshot.tick,
                        next_id: 0,
                        ready_at: 0,
                        fired: None,
                        rng: self.seed | 1,
                    });
                    None
                }
                (ServerMessage::Snapshot(snapshot), Some(s)) => {
                    s.world
                        .apply_snapshot(&snapshot)
                        .map_err(|e| e.to_string())?;
                    s.tick = snapshot.tick;
                    // The answer to a shot may have been among the frames skipped.
                    s.fired = None;
                    None
                }
                (ServerMessage::Tick(frame), Some(s)) => {
                    if frame.tick.0 == s.tick.0 + 1 {
                        s.world
                            .apply_delta(&frame.delta)
                            .map_err(|e| e.to_string())?;
                        s.tick = frame.tick;
                    }
                    if let Some((shot, at)) = s.fired {
                        if frame.acks.contains(&shot) {
                            s.ready_at = frame.tick.0 + cooldown(&s.rules);
                            s.fired = None;
                        } else if frame.rejections.iter().any(|r| r.id == shot)
                            || frame.tick.0 > at + 60
                        {
                            s.fired = None;
                        }
                    }
                    decide(s, self.behavior)
                }
                (ServerMessage::Rejected { id, .. }, Some(s)) => {
                    if s.fired.is_some_and(|(shot, _)| shot == id) {
                        s.fired = None;
                    }
                    None
                }
                (ServerMessage::MatchEnded { .. } | ServerMessage::Error { .. }, _) => {
                    return Ok(());
                }
                _ => None,
            };
            if let (Some(command), Some(s)) = (command, seat.as_mut()) {
                s.next_id += 1;
                let id = CommandId(s.next_id);
                if matches!(command, Command::Fire { .. }) {
                    s.fired = Some((id, s.tick.0));
                }
                send(ws, &ClientMessage::Command { id, command }).await?;
            }
        }
    }
}

fn cooldown(rules: &GameConfig) -> u64 {
    match rules {
        GameConfig::Arena(a) => a.fire_cooldown_ticks,
        _ => 0,
    }
}

/// xorshift64: the bots' own randomness (they need no more).
fn random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn position(world: &World, entity: EntityId) -> Option<(i64, i64)> {
    match world.get_named(entity, "pos") {
        Some(ComponentValue::Position { x, y }) => Some((i64::from(*x), i64::from(*y))),
        _ => None,
    }
}

fn alive(world: &World, entity: EntityId) -> bool {
    !matches!(
        world.get_named(entity, "hp"),
        Some(ComponentValue::Health {
            respawn_at: Some(_),
            ..
        })
    )
}

/// The bot's command for this tick, if any: one decision every 6 ticks, staggered by entity.
fn decide(s: &mut Seat, behavior: Behavior) -> Option<Command> {
    if behavior == Behavior::Idle || !(s.tick.0 + u64::from(s.entity.0)).is_multiple_of(6) {
        return None;
    }
    let me = s.entity;
    let (x, y) = position(&s.world, me)?;
    let r = random(&mut s.rng);
    let (speed, drift) = match &s.rules {
        GameConfig::Arena(a) => (i64::from(a.max_speed_mm_per_tick) * 7 / 10, false),
        GameConfig::Drift(d) => (i64::from(d.max_step_mm) / 2, true),
        GameConfig::Game(_) => return None,
    };
    let heading = |r: u64| {
        let a = (r % 6283) as f64 / 1000.0;
        (
            (a.cos() * speed as f64) as i32,
            (a.sin() * speed as f64) as i32,
        )
    };
    if drift {
        let (dx, dy) = heading(r);
        return Some(Command::Drift { entity: me, dx, dy });
    }
    if !alive(&s.world, me) {
        return None;
    }
    let target = (behavior == Behavior::Fight)
        .then(|| {
            s.world
                .entities()
                .filter(|(id, _)| *id != me && alive(&s.world, *id))
                .filter(|(id, _)| s.world.get_named(*id, "player").is_some())
                .filter_map(|(id, _)| position(&s.world, id))
                .min_by_key(|(tx, ty)| (tx - x).pow(2) + (ty - y).pow(2))
        })
        .flatten();
    let Some((tx, ty)) = target else {
        let (vx, vy) = heading(r);
        return Some(Command::Move { entity: me, vx, vy });
    };
    let (dx, dy) = (tx - x, ty - y);
    if s.tick.0 >= s.ready_at && s.fired.is_none() && (dx, dy) != (0, 0) && r.is_multiple_of(3) {
        // A little off target, so that a moving player can dodge.
        let jitter = (r >> 8) as i64 % 1200 - 600;
        return Some(Command::Fire {
            entity: me,
            dx: (dx + jitter) as i32,
            dy: (dy - jitter) as i32,
        });
    }
    let distance = ((dx * dx + dy * dy) as f64).sqrt().max(1.0);
    // Close in from afar; circle at fighting distance.
    let (ux, uy) = (dx as f64 / distance, dy as f64 / distance);
    let (mx, my) = if distance > 7000.0 {
        (ux, uy)
    } else {
        let side = if s.entity.0.is_multiple_of(2) {
            1.0
        } else {
            -1.0
        };
        (-uy * side, ux * side)
    };
    Some(Command::Move {
        entity: me,
        vx: (mx * speed as f64) as i32,
        vy: (my * speed as f64) as i32,
    })
}
