//! World state as it crosses the wire and the log: component values, per-tick deltas, the
//! snapshot a client gets on join, and the full snapshot the log keeps for seeking.

use crate::event::EndReason;
use crate::game_value::GameValue;
use crate::ids::{CommandId, EntityId, MatchId, PlayerId, Seq, Tick};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The value of one component of one entity. Names on the wire are short (`"pos"`, `"hp"`)
/// because deltas are the bulk of the traffic.
///
/// A component, once on an entity, stays there until the entity is despawned; on/off state is
/// a value (`Health::respawn_at`), so a delta never needs to say "component removed".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Serialize and Deserialize are written by `named_or_game!`, with these derived ones.
#[serde(remote = "Self")]
pub enum ComponentValue {
    /// The player who owns this entity, and their display name.
    #[serde(rename = "player")]
    Player { player: PlayerId, name: String },
    /// Position in millimetres.
    #[serde(rename = "pos")]
    Position { x: i32, y: i32 },
    /// Velocity in mm per tick.
    #[serde(rename = "vel")]
    Velocity { vx: i32, vy: i32 },
    /// Arena health; `respawn_at` is set while the player is dead.
    #[serde(rename = "hp")]
    Health { hp: i32, respawn_at: Option<Tick> },
    /// Arena score.
    #[serde(rename = "score")]
    Score { kills: u32, deaths: u32 },
    /// Arena: the first tick at which the player may fire again.
    #[serde(rename = "cooldown")]
    Cooldown { ready_at: Tick },
    /// Arena: a projectile, who fired it, and when. A projectile's `pos` and `vel` are where
    /// and how fast it was fired at `fired_at` and never change afterwards (so projectiles cost
    /// nothing in deltas): at tick `t` it is at `pos + vel × (t − fired_at)`.
    #[serde(rename = "projectile")]
    Projectile {
        shooter: EntityId,
        fired_at: Tick,
        expires_at: Tick,
    },
    /// Arena: a health pickup.
    #[serde(rename = "pickup")]
    Pickup { heal: i32 },
    /// Drift: the id of the last input applied to this player (clients measure latency by it).
    #[serde(rename = "input")]
    LastInput { input: CommandId },
    /// On the match entity: when the match ends, and whether/how it has ended.
    #[serde(rename = "match")]
    MatchState {
        ends_at: Tick,
        ended: Option<EndReason>,
        winner: Option<PlayerId>,
    },
    /// On the match entity (arena): when the next pickup may spawn.
    #[serde(rename = "pickup_timer")]
    PickupTimer { next_at: Tick },
    /// A component of a game this crate does not name, `{name: value}` on the wire.
    #[serde(skip)]
    Game(Box<GameValue>),
}

crate::game_value::named_or_game!(
    ComponentValue,
    &[
        "player",
        "pos",
        "vel",
        "hp",
        "score",
        "cooldown",
        "projectile",
        "pickup",
        "input",
        "match",
        "pickup_timer",
    ]
);

impl ComponentValue {
    /// The component's wire name (`"pos"`, `"hp"`, …).
    pub fn name(&self) -> &str {
        match self {
            ComponentValue::Game(g) => &g.kind,
            ComponentValue::Player { .. } => "player",
            ComponentValue::Position { .. } => "pos",
            ComponentValue::Velocity { .. } => "vel",
            ComponentValue::Health { .. } => "hp",
            ComponentValue::Score { .. } => "score",
            ComponentValue::Cooldown { .. } => "cooldown",
            ComponentValue::Projectile { .. } => "projectile",
            ComponentValue::Pickup { .. } => "pickup",
            ComponentValue::LastInput { .. } => "input",
            ComponentValue::MatchState { .. } => "match",
            ComponentValue::PickupTimer { .. } => "pickup_timer",
        }
    }
}

/// One entity and some (delta) or all (snapshot) of its component values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityState {
    pub id: EntityId,
    pub components: Vec<ComponentValue>,
}

impl EntityState {
    /// The value of the component called `name`, if the entity has it here.
    pub fn get(&self, name: &str) -> Option<&ComponentValue> {
        self.components.iter().find(|c| c.name() == name)
    }
}

/// What changed in one tick, from the server's change detection: entities whose public
/// components changed (with the changed values only) and entities that were removed.
/// A client applies deltas in tick order on top of a [`Snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The tick this delta ends.
    pub tick: Tick,
    /// The last event seq applied in or before this tick.
    pub seq: Seq,
    pub changed: Vec<EntityState>,
    pub removed: Vec<EntityId>,
}

impl Delta {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Every public component of every entity, as of the end of `tick`: what a client gets on
/// join, and again when it has fallen too far behind to be sent the deltas it missed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub tick: Tick,
    pub seq: Seq,
    /// Sorted by id.
    pub entities: Vec<EntityState>,
}

/// The complete state of a simulation at the end of `tick`, private components and the RNG
/// position included: restoring it into a fresh simulation and continuing gives the same
/// hashes as never having stopped. Written into the log every N ticks for seeking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSnapshot {
    pub match_id: MatchId,
    pub tick: Tick,
    /// The last seq used; the next event gets `seq + 1`.
    pub seq: Seq,
    /// The next entity id to allocate.
    pub next_entity: EntityId,
    /// How many 32-bit words the match RNG has produced (its position in its stream).
    pub rng_words: u64,
    /// Sorted by id.
    pub entities: Vec<EntityState>,
}

/// A stable, platform-independent hash of a world's state (xxh3-64 over a canonical byte
/// encoding). Printed as 16 hex digits. An integer in MessagePack; in JSON a string of its
/// decimal digits, because JavaScript's numbers hold integers only up to 2^53 (a JSON reader
/// takes either).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateHash(pub u64);

impl Serialize for StateHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&self.0)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for StateHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashVisitor;
        impl serde::de::Visitor<'_> for HashVisitor {
            type Value = StateHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit unsigned integer, or a string of its decimal digits")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StateHash, E> {
                Ok(StateHash(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StateHash, E> {
                u64::try_from(v)
                    .map(StateHash)
                    .map_err(|_| E::custom(format!("a negative state hash {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StateHash, E> {
                v.parse()
                    .map(StateHash)
                    .map_err(|_| E::custom(format!("{v:?} is not a decimal state hash")))
            }
        }
        deserializer.deserialize_any(HashVisitor)
    }
}

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
