//! The games that ship with the server, built on the engine's game seam ([`crate::sim::Game`]),
//! exactly as a game in another crate is (`examples/tag` is one). The engine never names them;
//! [`builtin`] is the one place that does, to put them in a catalogue.
//!
//! - [`arena`]: the reference game: movement, projectiles, hits, deaths, respawns, pickups,
//!   score and time limits. Exercises every part of the engine.
//! - [`drift`]: the benchmark game: a position and the id of the last input per player, the
//!   state other frameworks' load tests use, so figures compare like with like.
//! - [`common`]: the pieces both use (positions, the match state, ownership checks).
//!
//! Their settings, commands, events and components have variants of their own in the
//! protocol's enums (which is what keeps their replay files of format 1 readable); any other
//! game's travel as `GameValue`s.

pub mod arena;
pub mod common;
pub mod drift;

use std::sync::Arc;

use tickforge_protocol::{ArenaConfig, DriftConfig, GameConfig};

use crate::sim::{Game, GameFactory, Games};

/// A reference game's factory: its settings are a variant of [`GameConfig`].
struct Reference {
    name: &'static str,
    default: fn() -> GameConfig,
    /// Settings from a JSON object, fields left out taking their defaults.
    parse: fn(serde_json::Value) -> serde_json::Result<GameConfig>,
    build: fn(&GameConfig) -> Option<Arc<dyn Game>>,
}

impl GameFactory for Reference {
    fn default_config(&self) -> GameConfig {
        (self.default)()
    }

    fn config_from_json(&self, overrides: serde_json::Value) -> Result<GameConfig, String> {
        let config = match overrides {
            serde_json::Value::Null => (self.default)(),
            overrides => (self.parse)(overrides)
                .map_err(|e| format!("config is not valid {} settings: {e}", self.name))?,
        };
        config
            .validate()
            .map_err(|e| format!("{} settings: {e}", self.name))?;
        Ok(config)
    }

    fn build(&self, config: &GameConfig) -> Result<Arc<dyn Game>, String> {
        config.validate()?;
        (self.build)(config).ok_or_else(|| format!("these are not {} settings", self.name))
    }
}

/// The games that ship with the server: `arena` and `drift`.
pub fn builtin() -> Games {
    Games::new()
        .with_factory(
            "arena",
            Reference {
                name: "arena",
                default: || GameConfig::Arena(ArenaConfig::default()),
                parse: |v| serde_json::from_value(v).map(GameConfig::Arena),
                build: |config| match config {
                    GameConfig::Arena(c) => {
                        Some(Arc::new(arena::Arena::new(c.clone())) as Arc<dyn Game>)
                    }
                    _ => None,
                },
            },
        )
        .with_factory(
            "drift",
            Reference {
                name: "drift",
                default: || GameConfig::Drift(DriftConfig::default()),
                parse: |v| serde_json::from_value(v).map(GameConfig::Drift),
                build: |config| match config {
                    GameConfig::Drift(c) => {
                        Some(Arc::new(drift::Drift::new(c.clone())) as Arc<dyn Game>)
                    }
                    _ => None,
                },
            },
        )
}
