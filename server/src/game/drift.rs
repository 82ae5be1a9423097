//! Drift, the benchmark game: each player has a position and the id of the last input applied
//! to it; an input moves the player by (dx, dy). It is the state that other frameworks' rooms
//! hold in their load tests, so our figures compare like with like. It has no systems: all of
//! its cost is the engine's (decide, sequence, apply, hash, delta).

use bevy_ecs::prelude::*;
use tickforge_protocol::{
    Command, CommandId, ComponentValue, DriftConfig, EntityId, EventKind, PlayerId, Rejection, Rule,
};

use super::common::{self, Position};
use crate::sim::world;
use crate::sim::{Game, GameSetup, SimComponent, StateHasher};

/// The id of the last input applied to a player (clients measure latency by it).
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastInput {
    pub input: CommandId,
}

impl SimComponent for LastInput {
    const NAME: &'static str = "input";
    const PUBLIC: bool = true;
    fn to_value(&self) -> ComponentValue {
        ComponentValue::LastInput { input: self.input }
    }
    fn from_value(value: &ComponentValue) -> Option<Self> {
        match *value {
            ComponentValue::LastInput { input } => Some(LastInput { input }),
            _ => None,
        }
    }
    fn hash(&self, h: &mut StateHasher) {
        h.u8(9);
        h.u32(self.input.0);
    }
}

/// The drift game with its settings.
#[derive(Debug, Clone)]
pub struct Drift {
    rules: DriftConfig,
}

impl Drift {
    pub fn new(rules: DriftConfig) -> Drift {
        Drift { rules }
    }

    /// Where a joining player starts: spread over the plane by entity id (no RNG needed).
    fn start(&self, entity: u32) -> Position {
        let w = u64::from(self.rules.width_mm.max(1) as u32);
        let h = u64::from(self.rules.height_mm.max(1) as u32);
        let n = u64::from(entity);
        Position {
            x: ((n * 7_919) % w) as i32,
            y: ((n * 104_729) % h) as i32,
        }
    }
}

impl Game for Drift {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn rules_version(&self) -> u32 {
        1
    }

    fn max_players(&self) -> u32 {
        self.rules.max_players
    }

    fn setup(&self, setup: &mut GameSetup<'_>) {
        setup.component::<Position>().component::<LastInput>();
    }

    fn init_match(&self, world: &mut World) {
        world::spawn_with_id(world, tickforge_protocol::EntityId::MATCH);
    }

    fn decide(
        &self,
        world: &World,
        player: PlayerId,
        id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::Drift { entity, dx, dy } => {
                common::own_entity(world, player, *entity)?;
                let max = self.rules.max_step_mm;
                if dx.unsigned_abs() > max as u32 || dy.unsigned_abs() > max as u32 {
                    return Err(Rejection::new(
                        Rule::SpeedLimit,
                        format!(
                            "step ({dx}, {dy}) exceeds the limit of {max} mm per input on an axis"
                        ),
                    ));
                }
                Ok(vec![EventKind::PlayerDrifted {
                    entity: *entity,
                    dx: *dx,
                    dy: *dy,
                    input: id,
                }])
            }
            other => Err(Rejection::new(
                Rule::WrongGame,
                format!("{} commands are not part of drift", other.name()),
            )),
        }
    }

    fn joined(&self, world: &mut World, _player: PlayerId, entity: EntityId) {
        let start = self.start(entity.0);
        if let Some(e) = world::lookup(world, entity) {
            world.entity_mut(e).insert((start, LastInput::default()));
        }
    }

    fn apply(&self, world: &mut World, event: &EventKind) {
        // Drift's one event; the engine applies its own, and other games' are not drift's.
        let EventKind::PlayerDrifted {
            entity,
            dx,
            dy,
            input,
        } = *event
        else {
            return;
        };
        let (w, h) = (self.rules.width_mm, self.rules.height_mm);
        if let Some(e) = world::lookup(world, entity) {
            let mut entity = world.entity_mut(e);
            if let Some(mut pos) = entity.get_mut::<Position>() {
                pos.x = pos.x.saturating_add(dx).clamp(0, w);
                pos.y = pos.y.saturating_add(dy).clamp(0, h);
            }
            entity.insert(LastInput { input });
        }
    }

    fn is_over(&self, _world: &World) -> bool {
        false
    }
}
