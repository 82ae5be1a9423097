//! Pieces both games use: the position component, the match-state component, and the checks
//! that a command's sender owns the entity it names.

use bevy_ecs::prelude::*;
use tickforge_protocol::{ComponentValue, EndReason, EntityId, PlayerId, Rejection, Rule, Tick};

use crate::sim::world::{self, IdIndex};
use crate::sim::{SimComponent, StateHasher};

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
    fn hash(&self, h: &mut StateHasher) {
        h.u8(2);
        h.i32(self.x);
        h.i32(self.y);
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
    fn hash(&self, h: &mut StateHasher) {
        h.u8(10);
        h.u64(self.ends_at.0);
        h.u8(match self.ended {
            None => 0,
            Some(EndReason::ScoreLimit) => 1,
            Some(EndReason::TimeLimit) => 2,
        });
        h.opt_u64(self.winner.map(|p| u64::from(p.0)));
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

/// The id the next spawned entity gets (decide reads it; apply moves the allocator on).
pub fn next_entity_id(world: &World) -> EntityId {
    world.resource::<world::NextEntityId>().0
}
