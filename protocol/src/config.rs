//! Rule settings of each game. They are part of a match's identity: written into the replay
//! header, so a replay re-simulates with exactly the rules it was played with.

use serde::{Deserialize, Serialize};

use crate::game_value::GameValue;

/// The settings of one match's game. The variant names the game: the reference games have
/// variants of their own, any other game's settings travel as [`GameConfig::Game`], whose kind
/// is the game's name (`{"tag": {…}}`, like the others).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Serialize and Deserialize are written by `named_or_game!`, with these derived ones.
#[serde(rename_all = "snake_case", remote = "Self")]
pub enum GameConfig {
    Arena(ArenaConfig),
    Drift(DriftConfig),
    /// The settings of a game this crate does not name; the game checks them.
    #[serde(skip)]
    Game(Box<GameValue>),
}

crate::game_value::named_or_game!(GameConfig, &["arena", "drift"]);

impl GameConfig {
    /// The game's name as used on the command line and in `POST /matches`.
    pub fn game_name(&self) -> &str {
        match self {
            GameConfig::Arena(_) => "arena",
            GameConfig::Drift(_) => "drift",
            GameConfig::Game(g) => &g.kind,
        }
    }

    /// The default settings of the reference game called `name`, or `None` for another.
    pub fn default_for(name: &str) -> Option<GameConfig> {
        match name {
            "arena" => Some(GameConfig::Arena(ArenaConfig::default())),
            "drift" => Some(GameConfig::Drift(DriftConfig::default())),
            _ => None,
        }
    }

    /// The longest match, in ticks: 24 hours at 60 Hz. Every match ends by then at the latest,
    /// so that no setting makes a match that runs (and grows its replay file) for ever.
    pub const MAX_TIME_LIMIT_TICKS: u64 = 24 * 60 * 60 * 60;

    /// Check that every setting of a reference game is in a range the game can run with; the
    /// error names the setting. Servers check this before creating a match, and readers before
    /// re-simulating a replay file's header, so a crafted value never reaches the rules.
    /// Another game's settings are checked by that game when a match of it is built.
    pub fn validate(&self) -> Result<(), String> {
        fn within<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), String> {
            if v < lo || v > hi {
                Err(format!("{name} = {v} is outside {lo}..={hi}"))
            } else {
                Ok(())
            }
        }
        const TICKS: u64 = 1_000_000;
        match self {
            GameConfig::Arena(c) => {
                within("max_players", c.max_players, 1, 4096)?;
                within("player_radius_mm", c.player_radius_mm, 1, 100_000)?;
                // The radius is at most 100 000 here, so this cannot overflow.
                let smallest = 2 * c.player_radius_mm + 1;
                within("width_mm", c.width_mm, smallest, 10_000_000)?;
                within("height_mm", c.height_mm, smallest, 10_000_000)?;
                within("max_speed_mm_per_tick", c.max_speed_mm_per_tick, 0, 100_000)?;
                within(
                    "projectile_speed_mm_per_tick",
                    c.projectile_speed_mm_per_tick,
                    1,
                    100_000,
                )?;
                within("projectile_radius_mm", c.projectile_radius_mm, 0, 100_000)?;
                within("projectile_ttl_ticks", c.projectile_ttl_ticks, 1, TICKS)?;
                within("fire_cooldown_ticks", c.fire_cooldown_ticks, 0, TICKS)?;
                within("projectile_damage", c.projectile_damage, 0, 1_000_000)?;
                within("max_health", c.max_health, 1, 1_000_000)?;
                within("respawn_delay_ticks", c.respawn_delay_ticks, 0, TICKS)?;
                within("pickup_interval_ticks", c.pickup_interval_ticks, 0, TICKS)?;
                within("max_pickups", c.max_pickups, 0, 10_000)?;
                within("pickup_heal", c.pickup_heal, 0, 1_000_000)?;
                within("pickup_radius_mm", c.pickup_radius_mm, 0, 100_000)?;
                within("score_limit", c.score_limit, 1, 1_000_000)?;
                within(
                    "time_limit_ticks",
                    c.time_limit_ticks,
                    1,
                    Self::MAX_TIME_LIMIT_TICKS,
                )?;
                Ok(())
            }
            GameConfig::Drift(c) => {
                within("max_players", c.max_players, 1, 4096)?;
                within("width_mm", c.width_mm, 1, 10_000_000)?;
                within("height_mm", c.height_mm, 1, 10_000_000)?;
                within("max_step_mm", c.max_step_mm, 0, 1_000_000)?;
                Ok(())
            }
            GameConfig::Game(_) => Ok(()),
        }
    }
}

/// Arena rules. Lengths in millimetres, speeds in mm per tick, durations in ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArenaConfig {
    pub max_players: u32,
    pub width_mm: i32,
    pub height_mm: i32,
    pub player_radius_mm: i32,
    pub max_speed_mm_per_tick: i32,
    pub projectile_speed_mm_per_tick: i32,
    pub projectile_radius_mm: i32,
    pub projectile_ttl_ticks: u64,
    pub fire_cooldown_ticks: u64,
    pub projectile_damage: i32,
    pub max_health: i32,
    pub respawn_delay_ticks: u64,
    pub pickup_interval_ticks: u64,
    pub max_pickups: u32,
    pub pickup_heal: i32,
    pub pickup_radius_mm: i32,
    pub score_limit: u32,
    pub time_limit_ticks: u64,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        ArenaConfig {
            max_players: 16,
            width_mm: 40_000,
            height_mm: 40_000,
            player_radius_mm: 500,
            max_speed_mm_per_tick: 100,
            projectile_speed_mm_per_tick: 400,
            projectile_radius_mm: 100,
            projectile_ttl_ticks: 90,
            fire_cooldown_ticks: 15,
            projectile_damage: 25,
            max_health: 100,
            respawn_delay_ticks: 120,
            pickup_interval_ticks: 300,
            max_pickups: 4,
            pickup_heal: 25,
            pickup_radius_mm: 600,
            score_limit: 25,
            time_limit_ticks: 60 * 60 * 10,
        }
    }
}

/// Drift rules: players nudge themselves around a bounded plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    pub max_players: u32,
    pub width_mm: i32,
    pub height_mm: i32,
    /// The largest |dx| or |dy| one input may ask for.
    pub max_step_mm: i32,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            max_players: 8,
            width_mm: 100_000,
            height_mm: 100_000,
            max_step_mm: 1_000,
        }
    }
}
