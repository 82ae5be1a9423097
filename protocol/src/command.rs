//! Commands are intents: what a player asks for. The server decides whether each becomes
//! events (facts) or a [`Rejection`] that names the rule it broke.

use crate::game_value::GameValue;
use crate::ids::EntityId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a player asks the match to do. `Join` and `Leave` are the engine's; the reference
/// games' commands have variants of their own, and any other game's travel as
/// [`Command::Game`]. The engine, the log and the wire carry them all without knowing which
/// game runs; a game rejects another game's commands with [`Rule::WrongGame`].
///
/// Units: positions are millimetres, velocities millimetres per tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Serialize and Deserialize are written by `named_or_game!`, with these derived ones.
#[serde(rename_all = "snake_case", remote = "Self")]
pub enum Command {
    /// Enter the match under a display name.
    Join { name: String },
    /// Leave the match; the player's entity is removed.
    Leave,
    /// Arena: set the velocity of one's own player, in mm per tick.
    Move { entity: EntityId, vx: i32, vy: i32 },
    /// Arena: fire a projectile from one's own player in the direction (dx, dy).
    Fire { entity: EntityId, dx: i32, dy: i32 },
    /// Drift: move one's own player by (dx, dy) mm.
    Drift { entity: EntityId, dx: i32, dy: i32 },
    /// A command of a game this crate does not name, `{kind: value}` on the wire.
    #[serde(skip)]
    Game(Box<GameValue>),
}

crate::game_value::named_or_game!(Command, &["join", "leave", "move", "fire", "drift"]);

impl Command {
    /// A short name for logs, metrics and filters (`"move"`, `"fire"`, …).
    pub fn name(&self) -> &str {
        match self {
            Command::Join { .. } => "join",
            Command::Leave => "leave",
            Command::Move { .. } => "move",
            Command::Fire { .. } => "fire",
            Command::Drift { .. } => "drift",
            Command::Game(g) => &g.kind,
        }
    }
}

/// The rule a rejected command broke. Serialized as its snake_case name so that clients in any
/// language can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The sender has not joined this match.
    UnknownPlayer,
    /// The command names an entity that does not exist.
    UnknownEntity,
    /// The command names an entity the sender does not own.
    NotYourEntity,
    /// The requested speed exceeds the game's limit.
    SpeedLimit,
    /// The action is still cooling down.
    Cooldown,
    /// Dead players cannot act until they respawn.
    PlayerDead,
    /// The command belongs to another game.
    WrongGame,
    /// The match has ended; no more commands are taken.
    MatchEnded,
    /// The sender already has a player in this match.
    AlreadyJoined,
    /// The match has no free player slot.
    MatchFull,
    /// The command's values are malformed (a zero direction, a too-long name, …).
    InvalidInput,
    /// The match's inbox is full this tick; send the command again.
    MatchBusy,
    /// The sender is over its command rate; slow down (sustained abuse is disconnected).
    RateLimited,
}

impl Rule {
    /// The rule's wire name, e.g. `"speed_limit"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnknownPlayer => "unknown_player",
            Rule::UnknownEntity => "unknown_entity",
            Rule::NotYourEntity => "not_your_entity",
            Rule::SpeedLimit => "speed_limit",
            Rule::Cooldown => "cooldown",
            Rule::PlayerDead => "player_dead",
            Rule::WrongGame => "wrong_game",
            Rule::MatchEnded => "match_ended",
            Rule::AlreadyJoined => "already_joined",
            Rule::MatchFull => "match_full",
            Rule::InvalidInput => "invalid_input",
            Rule::MatchBusy => "match_busy",
            Rule::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a command was refused: the rule, and a human-readable detail with the values involved.
/// A rejection is an outcome sent to its client and recorded in the log's audit trail, not an
/// error of the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub rule: Rule,
    pub detail: String,
}

impl Rejection {
    pub fn new(rule: Rule, detail: impl Into<String>) -> Rejection {
        Rejection {
            rule,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Rejection {}
