//! Pieces both games use: the position component, the match-state component, and the checks
//! that a command's sender owns the entity it names.

use bevy_ecs::prelude::*;
use tickforge_protocol::{ComponentValue, EndReason, EntityId, PlayerId, Rejection, Rule, Tick};

use crate::sim::SimComponent;
use crate::sim::world::{self, IdIndex};

/// Position in millimetres.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub x: i32,
    pub y: i32,
}

impl SimComponent for Position {
    const NAME: &'static str = "pos";
    const PUBLIC: bool = true;
    fn to_value(&self) -> ComponentValue {
        ComponentValue::Position {
            x: self.x,
            y: self.y,
        }
    }
    fn from_value(value: &ComponentValue) -> Option<Self> {
        match *value {
            ComponentValue::Position { x, y } => Some(Position { x, y }),
            _ => None,
        }
    }
}

/// On the match entity: when the match ends and whether it has.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchState {
    pub ends_at: Tick,
    pub ended: Option<EndReason>,
    pub winner: Option<PlayerId>,
}

impl SimComponent for MatchState {
    const NAME: &'static str = "match";
    const PUBLIC: bool = true;
    fn to_value(&self) -> ComponentValue {
        ComponentValue::MatchState {
            ends_at: self.ends_at,
            ended: self.ended,
            winner: self.winner,
        }
    }
    fn from_value(value: &ComponentValue) -> Option<Self> {
        match *value {
            ComponentValue::MatchState {
                ends_at,
                ended,
                winner,
            } => Some(MatchState {
                ends_at,
                ended,
                winner,
            }),
            _ => None,
        }
    }
}

/// The match entity's state, if the game keeps one.
pub fn match_state(world: &World) -> Option<MatchState> {
    let entity = world::lookup(world, EntityId::MATCH)?;
    world.get::<MatchState>(entity).copied()
}

/// Whether the match has ended.
pub fn is_over(world: &World) -> bool {
    match_state(world).is_some_and(|m| m.ended.is_some())
}

/// Check that `player` is in the match, that the match is still on, and that `entity` is the
/// player's own; return the bevy entity. The order of the checks decides which rule a command
/// breaking several is rejected for, and is part of the rules.
pub fn own_entity(world: &World, player: PlayerId, entity: EntityId) -> Result<Entity, Rejection> {
    let Some(own) = world::player_entity(world, player) else {
        return Err(Rejection::new(
            Rule::UnknownPlayer,
            format!("player {player} has not joined this match"),
        ));
    };
    if is_over(world) {
        return Err(Rejection::new(Rule::MatchEnded, "the match has ended"));
    }
    let Some(target) = world.resource::<IdIndex>().0.get(&entity).copied() else {
        return Err(Rejection::new(
            Rule::UnknownEntity,
            format!("entity {entity} does not exist"),
        ));
    };
    if own != entity {
        return Err(Rejection::new(
            Rule::NotYourEntity,
            format!("entity {entity} belongs to someone else; player {player} controls {own}"),
        ));
    }
    Ok(target)
}

/// Check a join: not in yet, a free slot, a sensible name.
pub fn check_join(
    world: &World,
    player: PlayerId,
    name: &str,
    max_players: u32,
) -> Result<(), Rejection> {
    if world::player_entity(world, player).is_some() {
        return Err(Rejection::new(
            Rule::AlreadyJoined,
            format!("player {player} is already in this match"),
        ));
    }
    if is_over(world) {
        return Err(Rejection::new(Rule::MatchEnded, "the match has ended"));
    }
    let players = world.resource::<world::PlayerIndex>().0.len();
    if players >= max_players as usize {
        return Err(Rejection::new(
            Rule::MatchFull,
            format!("all {max_players} player slots are taken"),
        ));
    }
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(|c| c.is_control() || is_format_char(c))
    {
        return Err(Rejection::new(
            Rule::InvalidInput,
            format!(
                "a name must be 1 to {MAX_NAME_CHARS} printable characters, with no control or \
                 format characters (such as bidirectional overrides or zero-width joiners)"
            ),
        ));
    }
    Ok(())
}

/// Unicode's format characters (general category Cf, as of Unicode 15.1): invisible marks
/// that change how text around them is shown, such as U+202E RIGHT-TO-LEFT OVERRIDE. A fixed
/// table rather than a library's, so that which names are accepted never changes under a
/// match with a dependency update.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The id the next spawned entity gets (decide reads it; apply moves the allocator on).
pub fn next_entity_id(world: &World) -> EntityId {
    world.resource::<world::NextEntityId>().0
}
