//! The seam between the engine and the games. The engine (sim, log, net, matches, spectate,
//! replay) knows only the [`Game`] trait; [`instantiate`] is the one place that names the
//! games, to build one from its config.
//!
//! - [`arena`]: the reference game: movement, projectiles, hits, deaths, respawns, pickups,
//!   score and time limits. Exercises every part of the engine.
//! - [`drift`]: the benchmark game: a position and the id of the last input per player, the
//!   state other frameworks' load tests use, so figures compare like with like.

pub mod arena;
pub mod common;
pub mod drift;

use bevy_ecs::world::World;
use std::sync::Arc;
use tickforge_protocol::{Command, CommandId, EventKind, GameConfig, PlayerId, Rejection};

use crate::sim::GameSetup;

/// A game's rules. Implementations must be deterministic: `decide` reads only the world,
/// `apply` and the registered systems change it only from the event and the world's own
/// resources (the match RNG included). No clocks, no I/O, no hash-order iteration.
pub trait Game: Send + Sync + 'static {
    /// The game's name (`"arena"`).
    fn name(&self) -> &'static str;

    /// Bumped whenever a rule change would make old replays re-simulate differently.
    fn rules_version(&self) -> u32;

    /// Register components and fixed-step systems, insert the game's resources.
    fn setup(&self, setup: &mut GameSetup<'_>);

    /// Put the match entity's components in place at tick 0.
    fn init_match(&self, world: &mut World);

    /// Decide whether `player`'s command becomes events. Must not change anything: the
    /// engine sequences and applies what it returns. A refusal names the rule it broke.
    fn decide(
        &self,
        world: &World,
        player: PlayerId,
        id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection>;

    /// Apply one event to the world. The engine has already done its part (spawning a joined
    /// player's entity, despawning a leaver's). Must not panic on events that name missing
    /// entities: a damaged replay file may contain them.
    fn apply(&self, world: &mut World, event: &EventKind);

    /// Whether the match has ended.
    fn is_over(&self, world: &World) -> bool;
}

/// Build the game that `config` describes.
pub fn instantiate(config: &GameConfig) -> Arc<dyn Game> {
    match config {
        GameConfig::Arena(c) => Arc::new(arena::Arena::new(c.clone())),
        GameConfig::Drift(c) => Arc::new(drift::Drift::new(c.clone())),
    }
}
