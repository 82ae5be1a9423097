//! The seam between the engine and the games, owned by the engine: the [`Game`] trait, what a
//! game registers while a [`Sim`] is built ([`GameSetup`]), and [`Games`], the catalogue of
//! games a server runs or a replay tool re-simulates, by name. The engine never names a game:
//! it is handed one, built from a match's settings by the catalogue.
//!
//! Joining and leaving are the engine's: it decides `Join` and `Leave` commands itself (a free
//! slot, a valid name, a match still on), emits `PlayerJoined` / `PlayerLeft`, spawns and
//! despawns the player's entity, and tells the game through [`Game::joined`] and
//! [`Game::left`]. Everything else a player sends is the game's to decide.

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_ecs::schedule::{IntoScheduleConfigs, Schedule};
use bevy_ecs::system::ScheduleSystem;
use bevy_ecs::world::World;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tickforge_protocol::{
    Command, CommandId, EntityId, EventKind, GameConfig, GameValue, PlayerId, Rejection,
    SimSnapshot,
};

use super::registry::{Entry, Registered, SimComponent};
use super::{MatchSetup, Sim, SimError};

/// A game's rules. Implementations must be deterministic: `decide` reads only the world,
/// `apply`, the hooks and the registered systems change it only from the event and the
/// world's own resources (the match RNG included). No clocks, no I/O, no hash-order
/// iteration, no floats in state.
pub trait Game: Send + Sync + 'static {
    /// The game's name (`"arena"`), as in its settings and in replay headers.
    fn name(&self) -> &'static str;

    /// Bumped whenever a rule change would make old replays re-simulate differently.
    fn rules_version(&self) -> u32;

    /// Player slots of a match.
    fn max_players(&self) -> u32;

    /// Register components and fixed-step systems, insert the game's resources.
    fn setup(&self, setup: &mut GameSetup<'_>);

    /// Put the match entity's components in place at tick 0.
    fn init_match(&self, world: &mut World);

    /// A player joined: the engine has spawned their entity (with its `player` component).
    /// Add the game's components to it here.
    fn joined(&self, world: &mut World, player: PlayerId, entity: EntityId) {
        let _ = (world, player, entity);
    }

    /// A player left: the engine has despawned their entity.
    fn left(&self, world: &mut World, player: PlayerId, entity: EntityId) {
        let _ = (world, player, entity);
    }

    /// Decide whether `player`'s command (never `Join` or `Leave`, which are the engine's)
    /// becomes events. Must not change anything: the engine sequences and applies what it
    /// returns. A refusal names the rule it broke.
    fn decide(
        &self,
        world: &World,
        player: PlayerId,
        id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection>;

    /// Apply one of the game's events to the world (never `PlayerJoined` or `PlayerLeft`,
    /// which reach [`Game::joined`] and [`Game::left`]). Must not panic on events that name
    /// missing entities: a damaged replay file may contain them.
    fn apply(&self, world: &mut World, event: &EventKind);

    /// Whether the match has ended.
    fn is_over(&self, world: &World) -> bool;
}

/// What a game registers while a [`Sim`] is built.
pub struct GameSetup<'a> {
    pub(super) world: &'a mut World,
    pub(super) schedule: &'a mut Schedule,
    pub(super) components: &'a mut Vec<Box<dyn Registered>>,
}

impl std::fmt::Debug for GameSetup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameSetup").finish_non_exhaustive()
    }
}

impl GameSetup<'_> {
    /// Register a state component (hashed, snapshotted, and sent in deltas if public).
    /// Registration order is part of the rules: it orders hash parts and snapshot values.
    pub fn component<C: SimComponent>(&mut self) -> &mut Self {
        let entry = Entry::<C>::new(self.world);
        self.components.push(Box::new(entry));
        self
    }

    /// Add systems to the fixed-step schedule. Systems that emit events must be ordered
    /// (`.chain()`): ambiguity detection is an error.
    pub fn systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M>,
    ) -> &mut Self {
        self.schedule.add_systems(systems);
        self
    }

    /// The world, to insert the game's resources and the match entity's components.
    pub fn world(&mut self) -> &mut World {
        self.world
    }
}

/// How a catalogue makes a game: its default settings, settings from a request, and the
/// rules of a match with given settings.
pub trait GameFactory: Send + Sync + 'static {
    /// The settings of a match created without any.
    fn default_config(&self) -> GameConfig;

    /// Settings from a JSON object of overrides of the defaults (`POST /matches`'s
    /// `config`), checked; the error names the setting.
    fn config_from_json(&self, overrides: serde_json::Value) -> Result<GameConfig, String>;

    /// The rules of a match with `config` (checked: it may come from a crafted file).
    fn build(&self, config: &GameConfig) -> Result<Arc<dyn Game>, String>;
}

/// The settings of a game written outside this crate: any serde type with defaults. The
/// engine keeps them in the replay header as a [`GameValue`] of the game's name.
pub trait GameSettings:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// Check every setting; the error names the one out of range.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A game written outside this crate: its settings type and how to make its rules from them.
/// Register one with [`Games::with`] (or `Server::builder().game(name, game)`).
pub trait GameDef: Send + Sync + 'static {
    type Settings: GameSettings;

    /// The rules of a match with these (checked) settings.
    fn rules(&self, settings: Self::Settings) -> Arc<dyn Game>;
}

/// A [`GameDef`] under its name, as a [`GameFactory`].
struct Defined<D> {
    name: String,
    def: D,
}

impl<D: GameDef> Defined<D> {
    fn config(&self, settings: &D::Settings) -> Result<GameConfig, String> {
        GameValue::new(self.name.clone(), settings)
            .map(|value| GameConfig::Game(Box::new(value)))
            .map_err(|e| e.to_string())
    }
}

impl<D: GameDef> GameFactory for Defined<D> {
    fn default_config(&self) -> GameConfig {
        // The defaults of a serde type always serialize.
        self.config(&D::Settings::default()).unwrap_or_else(|_| {
            GameConfig::Game(Box::new(GameValue {
                kind: self.name.clone(),
                value: serde_json::Value::Null,
            }))
        })
    }

    fn config_from_json(&self, overrides: serde_json::Value) -> Result<GameConfig, String> {
        // Overrides over the defaults, field by field.
        let mut merged = serde_json::to_value(D::Settings::default()).map_err(|e| e.to_string())?;
        match (&mut merged, overrides) {
            (serde_json::Value::Object(base), serde_json::Value::Object(changes)) => {
                base.extend(changes);
            }
            (_, serde_json::Value::Null) => {}
            (_, other) => merged = other,
        }
        let settings: D::Settings =
            serde_json::from_value(merged).map_err(|e| format!("{} settings: {e}", self.name))?;
        settings.validate()?;
        self.config(&settings)
    }

    fn build(&self, config: &GameConfig) -> Result<Arc<dyn Game>, String> {
        let GameConfig::Game(value) = config else {
            return Err(format!("these are not {} settings", self.name));
        };
        let settings: D::Settings = value.decode().map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(self.def.rules(settings))
    }
}

/// The games a server runs, or a replay tool re-simulates, by name.
#[derive(Clone, Default)]
pub struct Games {
    by_name: BTreeMap<String, Arc<dyn GameFactory>>,
}

impl std::fmt::Debug for Games {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Games {
    /// No games at all.
    pub fn new() -> Games {
        Games::default()
    }

    /// These games and the game `def` as `name`.
    pub fn with(self, name: &str, def: impl GameDef) -> Games {
        let factory = Defined {
            name: name.to_string(),
            def,
        };
        self.with_factory(name, factory)
    }

    /// These games and the one `factory` makes, as `name` (for games whose settings have a
    /// variant of their own in [`GameConfig`]).
    pub fn with_factory(mut self, name: &str, factory: impl GameFactory) -> Games {
        self.by_name.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// The factory of the game called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn GameFactory> {
        self.by_name.get(name).map(|f| &**f)
    }

    /// The names of the games, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The rules of a match with `config`.
    pub fn build(&self, config: &GameConfig) -> Result<Arc<dyn Game>, SimError> {
        let name = config.game_name();
        let factory = self.get(name).ok_or_else(|| SimError::UnknownGame {
            game: name.to_string(),
            known: self.names().collect::<Vec<_>>().join(", "),
        })?;
        factory.build(config).map_err(SimError::BadSetup)
    }

    /// A fresh match of `setup`.
    pub fn sim(&self, setup: &MatchSetup) -> Result<Sim, SimError> {
        Sim::new(setup, self.build(&setup.game)?)
    }

    /// The match of `setup` restored from `snapshot`.
    pub fn restore(&self, setup: &MatchSetup, snapshot: &SimSnapshot) -> Result<Sim, SimError> {
        Sim::restore(setup, snapshot, self.build(&setup.game)?)
    }
}
