//! Events are facts, named in the past tense. Only events change a match's world; every event
//! is sequenced (`seq` 1, 2, 3 … per match) and appended to the match's log.

use crate::command::{Command, Rule};
use crate::game_value::GameValue;
use crate::ids::{CommandId, EntityId, MatchId, PlayerId, Seq, Tick};
use serde::{Deserialize, Serialize};

/// The schema version written into every event. Readers upcast older versions on read.
pub const EVENT_SCHEMA_VERSION: u16 = 1;

/// One sequenced fact of one match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub match_id: MatchId,
    pub seq: Seq,
    pub tick: Tick,
    /// Schema version of `kind` (see [`EVENT_SCHEMA_VERSION`]).
    pub v: u16,
    pub cause: Cause,
    pub kind: EventKind,
}

/// Where an event came from. Replay uses it to tell decided events (re-applied from the log)
/// from derived ones (re-computed by the schedule and compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Decided from a player's command.
    Command { player: PlayerId, id: CommandId },
    /// Derived by the game's fixed-step schedule (movement, collisions, spawns …).
    Rules,
}

impl Cause {
    /// True for events the schedule derives; false for events decided from commands.
    pub fn is_derived(self) -> bool {
        matches!(self, Cause::Rules)
    }
}

/// What happened. `PlayerJoined`, `PlayerLeft` and `MatchEnded` are the engine's; the
/// reference games' events have variants of their own, and any other game's travel as
/// [`EventKind::Game`], like [`Command`]s do.
///
/// Units: positions in millimetres, velocities in mm per tick, health in points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Serialize and Deserialize are written by `named_or_game!`, with these derived ones.
#[serde(rename_all = "snake_case", remote = "Self")]
pub enum EventKind {
    /// A player entered the match and got an entity.
    PlayerJoined {
        player: PlayerId,
        entity: EntityId,
        name: String,
    },
    /// A player left; their entity is gone.
    PlayerLeft { player: PlayerId, entity: EntityId },
    /// Arena: a (re)spawning player was placed at an RNG-chosen spot with full health.
    PlayerSpawned { entity: EntityId, x: i32, y: i32 },
    /// Arena: a player's velocity was set.
    PlayerSteered { entity: EntityId, vx: i32, vy: i32 },
    /// Arena: a projectile left a shooter.
    ProjectileFired {
        projectile: EntityId,
        shooter: EntityId,
        x: i32,
        y: i32,
        vx: i32,
        vy: i32,
    },
    /// Arena: a projectile struck a player and was consumed.
    PlayerHit {
        target: EntityId,
        projectile: EntityId,
        damage: i32,
        hp_left: i32,
    },
    /// Arena: a player's health reached zero; they respawn after a delay.
    PlayerKilled {
        victim: EntityId,
        killer: Option<EntityId>,
        respawn_at: Tick,
    },
    /// Arena: a projectile left the arena or ran out of time.
    ProjectileExpired { projectile: EntityId },
    /// Arena: a health pickup appeared at an RNG-chosen spot.
    PickupSpawned {
        pickup: EntityId,
        x: i32,
        y: i32,
        heal: i32,
    },
    /// Arena: a player picked up health.
    PickupCollected {
        pickup: EntityId,
        entity: EntityId,
        hp_after: i32,
    },
    /// Drift: a player moved by (dx, dy); `input` is the id of the command that did it.
    PlayerDrifted {
        entity: EntityId,
        dx: i32,
        dy: i32,
        input: CommandId,
    },
    /// The match reached its score or time limit.
    MatchEnded {
        reason: EndReason,
        winner: Option<PlayerId>,
    },
    /// An event of a game this crate does not name, `{kind: value}` on the wire.
    #[serde(skip)]
    Game(Box<GameValue>),
}

crate::game_value::named_or_game!(EventKind, EventKind::NAMES);

/// Why a match ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    ScoreLimit,
    TimeLimit,
}

impl EventKind {
    /// A short snake_case name, the one used by `--kind` filters and in the JSON feed.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Game(g) => &g.kind,
            EventKind::PlayerJoined { .. } => "player_joined",
            EventKind::PlayerLeft { .. } => "player_left",
            EventKind::PlayerSpawned { .. } => "player_spawned",
            EventKind::PlayerSteered { .. } => "player_steered",
            EventKind::ProjectileFired { .. } => "projectile_fired",
            EventKind::PlayerHit { .. } => "player_hit",
            EventKind::PlayerKilled { .. } => "player_killed",
            EventKind::ProjectileExpired { .. } => "projectile_expired",
            EventKind::PickupSpawned { .. } => "pickup_spawned",
            EventKind::PickupCollected { .. } => "pickup_collected",
            EventKind::PlayerDrifted { .. } => "player_drifted",
            EventKind::MatchEnded { .. } => "match_ended",
        }
    }

    /// Every event kind name of the engine and the reference games, in declaration order (for
    /// CLI help and filters); other games add their own.
    pub const NAMES: &'static [&'static str] = &[
        "player_joined",
        "player_left",
        "player_spawned",
        "player_steered",
        "projectile_fired",
        "player_hit",
        "player_killed",
        "projectile_expired",
        "pickup_spawned",
        "pickup_collected",
        "player_drifted",
        "match_ended",
    ];
}

/// A command the server refused: the audit trail kept in the log next to the events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedCommand {
    pub tick: Tick,
    pub player: PlayerId,
    pub id: CommandId,
    pub command: Command,
    pub rule: Rule,
    pub detail: String,
}
