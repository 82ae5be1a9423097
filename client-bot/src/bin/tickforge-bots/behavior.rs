//! What each bot sends. Every input must show up in a later delta so that its latency can be
//! measured: drift inputs carry their id into the player's `input` component; arena steers
//! always change the velocity, which the delta shows.

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tickforge_client::Mirror;
use tickforge_protocol::{Cause, Command, ComponentValue, EntityId, EventKind, PlayerId, Tick};

/// How bots play.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Random steps (drift) or random steering with occasional shots (arena).
    Wander,
    /// Arena: chase the nearest player and fire at them. Drift: large random steps.
    Aggressive,
    /// Connect, say Hello, join nothing; one Ping a second.
    Idle,
    /// Re-send the command streams recorded in a replay file, with their original timing.
    Replay(Vec<Vec<(Tick, Command)>>),
}

impl Behavior {
    pub fn parse(s: &str) -> anyhow::Result<Behavior> {
        match s {
            "wander" => Ok(Behavior::Wander),
            "aggressive" => Ok(Behavior::Aggressive),
            "idle" => Ok(Behavior::Idle),
            other => match other.strip_prefix("replay=") {
                Some(file) => Ok(Behavior::Replay(recorded_streams(Path::new(file))?)),
                None => anyhow::bail!(
                    "unknown behavior {other:?}: use wander, aggressive, idle or replay=FILE"
                ),
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Behavior::Wander => "wander",
            Behavior::Aggressive => "aggressive",
            Behavior::Idle => "idle",
            Behavior::Replay(_) => "replay",
        }
    }
}

/// Every recorded player's commands (accepted ones from their events, refused ones from the
/// audit trail), in order, with the tick they were sent in, relative to the first.
fn recorded_streams(path: &Path) -> anyhow::Result<Vec<Vec<(Tick, Command)>>> {
    use anyhow::Context;
    let mut reader = tickforge_server::log::ReplayReader::open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut streams: std::collections::BTreeMap<PlayerId, Vec<(Tick, Command)>> =
        Default::default();
    let placeholder = EntityId(0);
    for tick in reader.ticks()? {
        let tick = tick?;
        for e in &tick.events {
            let Cause::Command { player, .. } = e.cause else {
                continue;
            };
            let command = match e.kind {
                EventKind::PlayerSteered { vx, vy, .. } => Command::Move {
                    entity: placeholder,
                    vx,
                    vy,
                },
                EventKind::ProjectileFired { vx, vy, .. } => Command::Fire {
                    entity: placeholder,
                    dx: vx,
                    dy: vy,
                },
                EventKind::PlayerDrifted { dx, dy, .. } => Command::Drift {
                    entity: placeholder,
                    dx,
                    dy,
                },
                _ => continue,
            };
            streams
                .entry(player)
                .or_default()
                .push((tick.tick, command));
        }
        for r in &tick.rejections {
            if !matches!(r.command, Command::Join { .. } | Command::Leave) {
                streams
                    .entry(r.player)
                    .or_default()
                    .push((tick.tick, r.command.clone()));
            }
        }
    }
    let streams: Vec<_> = streams.into_values().filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(
        !streams.is_empty(),
        "{} has no player commands to replay",
        path.display()
    );
    let first = streams
        .iter()
        .filter_map(|s| s.first())
        .map(|(t, _)| t.0)
        .min()
        .unwrap_or(0);
    Ok(streams
        .into_iter()
        .map(|s| s.into_iter().map(|(t, c)| (Tick(t.0 - first), c)).collect())
        .collect())
}

/// One bot's input generator.
pub struct Brain {
    rng: ChaCha8Rng,
    drift: bool,
    behavior: Behavior,
    /// For replay: which recorded stream, and how far into it.
    stream: usize,
    cursor: usize,
    last_velocity: (i32, i32),
    ticks_seen: u64,
}

impl Brain {
    pub fn new(behavior: Behavior, drift: bool, seed: u64, index: usize) -> Brain {
        let streams = match &behavior {
            Behavior::Replay(s) => s.len().max(1),
            _ => 1,
        };
        Brain {
            rng: ChaCha8Rng::seed_from_u64(
                seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            drift,
            behavior,
            stream: index % streams,
            cursor: 0,
            last_velocity: (0, 0),
            ticks_seen: 0,
        }
    }

    fn span(&mut self, max: i32) -> i32 {
        (self.rng.next_u32() % (2 * max as u32 + 1)) as i32 - max
    }

    /// The commands to send now, `elapsed_ticks` after the bot started playing.
    pub fn inputs(&mut self, me: EntityId, mirror: &Mirror, elapsed_ticks: u64) -> Vec<Command> {
        self.ticks_seen += 1;
        match &self.behavior {
            Behavior::Idle => vec![],
            Behavior::Replay(streams) => {
                let stream = &streams[self.stream];
                let mut out = Vec::new();
                // Loop the recording so the bot keeps playing for the whole run.
                let length = stream.last().map_or(1, |(t, _)| t.0 + 1).max(1);
                let at = elapsed_ticks % length;
                if at == 0 && elapsed_ticks > 0 {
                    self.cursor = 0;
                }
                while let Some((t, command)) = stream.get(self.cursor) {
                    if t.0 > at {
                        break;
                    }
                    out.push(with_entity(command, me));
                    self.cursor += 1;
                }
                out
            }
            Behavior::Wander | Behavior::Aggressive if self.drift => {
                let step = if matches!(self.behavior, Behavior::Aggressive) {
                    900
                } else {
                    120
                };
                vec![Command::Drift {
                    entity: me,
                    dx: self.span(step),
                    dy: self.span(step),
                }]
            }
            Behavior::Wander => {
                let velocity = loop {
                    let v = (self.span(70), self.span(70));
                    if v != self.last_velocity {
                        break v;
                    }
                };
                self.last_velocity = velocity;
                let mut out = vec![Command::Move {
                    entity: me,
                    vx: velocity.0,
                    vy: velocity.1,
                }];
                if self.ticks_seen.is_multiple_of(20) {
                    out.push(Command::Fire {
                        entity: me,
                        dx: self.span(100),
                        dy: self.span(100) + 1,
                    });
                }
                out
            }
            Behavior::Aggressive => {
                let here = position(mirror, me);
                let target = mirror
                    .entities()
                    .filter(|(id, c)| *id != me && c.contains_key("player"))
                    .filter_map(|(id, _)| position(mirror, id).map(|p| (id, p)))
                    .min_by_key(|(_, p)| {
                        here.map_or(0, |h| {
                            (i64::from(p.0 - h.0)).pow(2) + (i64::from(p.1 - h.1)).pow(2)
                        })
                    });
                let (dx, dy) = match (here, target) {
                    (Some(h), Some((_, p))) => (p.0 - h.0, p.1 - h.1),
                    _ => (self.span(100), self.span(100)),
                };
                let length = ((i64::from(dx).pow(2) + i64::from(dy).pow(2)) as f64)
                    .sqrt()
                    .max(1.0);
                let mut velocity = (
                    (f64::from(dx) / length * 65.0) as i32,
                    (f64::from(dy) / length * 65.0) as i32,
                );
                if velocity == self.last_velocity {
                    velocity.0 += if velocity.0 > 0 { -1 } else { 1 };
                }
                self.last_velocity = velocity;
                let mut out = vec![Command::Move {
                    entity: me,
                    vx: velocity.0,
                    vy: velocity.1,
                }];
                if self.ticks_seen.is_multiple_of(15) && (dx, dy) != (0, 0) {
                    out.push(Command::Fire { entity: me, dx, dy });
                }
                out
            }
        }
    }
}

fn position(mirror: &Mirror, id: EntityId) -> Option<(i32, i32)> {
    match mirror.get(id, "pos") {
        Some(ComponentValue::Position { x, y }) => Some((*x, *y)),
        _ => None,
    }
}

fn with_entity(command: &Command, me: EntityId) -> Command {
    match command.clone() {
        Command::Move { vx, vy, .. } => Command::Move { entity: me, vx, vy },
        Command::Fire { dx, dy, .. } => Command::Fire { entity: me, dx, dy },
        Command::Drift { dx, dy, .. } => Command::Drift { entity: me, dx, dy },
        other => other,
    }
}
