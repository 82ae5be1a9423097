//! Tag, a small game written only against tickforge's public API, as a game developer would:
//! its own settings, commands, events and components, registered with the engine, served by
//! the stock server and replayed by the stock replay tools. docs/GAMES.md walks through it.
//!
//! Rules: players run around a rectangle (`run` moves one's own runner by at most
//! `max_step_mm` on each axis). One runner is *it*: the first to join, or whoever it tags. When
//! *it* comes within `tag_radius_mm` of another runner, that runner is tagged and becomes *it*;
//! the tagger scores a tag and cannot be tagged back for `tag_back_ticks`. When *it* leaves, the
//! runner with the lowest id becomes *it*. The match ends after `round_ticks`; the most tags
//! wins (ties: fewer ticks spent as *it*, then the lower player id).
//!
//! What tickforge gives the game, and what it must not do, is in [`tickforge_server::sim`]:
//! the engine decides joins and leaves, sequences and applies events, hashes and snapshots the
//! registered components, and sends deltas; the game decides its commands, applies its events,
//! and derives events in its fixed-step systems, deterministically.

use std::sync::Arc;

// bevy's derives name `bevy_ecs`: the engine's own, re-exported, so that the game and the
// engine share one version of it.
use tickforge_server::bevy_ecs;

use serde::{Deserialize, Serialize};
use tickforge_protocol::{
    Command, CommandId, ComponentValue, EndReason, EntityId, EventKind, GameValue, PlayerId,
    Rejection, Rule, Tick,
};
use tickforge_server::bevy_ecs::prelude::*;
use tickforge_server::sim::world::{self, Clock, PendingEvents, PlayerInfo, StableId};
use tickforge_server::sim::{
    Game, GameDef, GameSettings, GameSetup, SimComponent, apply_pending_events,
};

/// The game's name: its settings, commands and events travel under it.
pub const NAME: &str = "tag";

/// Tag's settings, `POST /matches` `{"game": "tag", "config": {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagSettings {
    pub max_players: u32,
    pub width_mm: i32,
    pub height_mm: i32,
    /// The largest |dx| or |dy| of one `run`.
    pub max_step_mm: i32,
    pub tag_radius_mm: i32,
    /// Ticks a tagger is safe from being tagged back.
    pub tag_back_ticks: u64,
    /// The match's length.
    pub round_ticks: u64,
}

impl Default for TagSettings {
    fn default() -> Self {
        TagSettings {
            max_players: 8,
            width_mm: 20_000,
            height_mm: 20_000,
            max_step_mm: 300,
            tag_radius_mm: 800,
            tag_back_ticks: 60,
            round_ticks: 60 * 60 * 3,
        }
    }
}

impl GameSettings for TagSettings {
    fn validate(&self) -> Result<(), String> {
        fn within(name: &str, v: i64, lo: i64, hi: i64) -> Result<(), String> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v} is outside {lo}..={hi}"))
            }
        }
        within("max_players", i64::from(self.max_players), 1, 256)?;
        within("width_mm", i64::from(self.width_mm), 1, 1_000_000)?;
        within("height_mm", i64::from(self.height_mm), 1, 1_000_000)?;
        within("max_step_mm", i64::from(self.max_step_mm), 1, 100_000)?;
        within("tag_radius_mm", i64::from(self.tag_radius_mm), 1, 100_000)?;
        within("tag_back_ticks", self.tag_back_ticks as i64, 0, 1_000_000)?;
        within("round_ticks", self.round_ticks as i64, 1, 5_184_000)
    }
}

/// The one command: move one's own runner by (dx, dy). On the wire,
/// `{"run": {"entity": 3, "dx": 120, "dy": -40}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub entity: EntityId,
    pub dx: i32,
    pub dy: i32,
}

impl Run {
    /// The command as the engine carries it.
    pub fn command(self) -> Command {
        Command::Game(game_value("run", &self))
    }
}

/// A runner moved to (x, y): decided from a `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerMoved {
    pub entity: EntityId,
    pub x: i32,
    pub y: i32,
}

/// *It* touched `target`, who is now *it*: derived by the tagging system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerTagged {
    pub tagger: EntityId,
    pub target: EntityId,
}

fn game_value(kind: &str, value: &impl Serialize) -> Box<GameValue> {
    // Plain structs of integers always serialize.
    Box::new(GameValue::new(kind, value).unwrap_or_else(|_| GameValue {
        kind: kind.to_string(),
        value: serde_json::Value::Null,
    }))
}

/// Where a runner is, in mm.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spot {
    pub x: i32,
    pub y: i32,
}

/// A runner's standing: whether they are *it*, since when, and their tags.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub it: bool,
    /// Ticks spent as *it* before the current stint.
    pub it_ticks: u64,
    /// When the current stint as *it* began.
    pub it_since: Tick,
    pub tags: u32,
    /// Safe from being tagged until this tick.
    pub safe_until: Tick,
}

/// On the match entity: when the round ends, and who won once it has.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub ends_at: Tick,
    pub over: bool,
    pub winner: Option<PlayerId>,
}

/// A component carried as a [`GameValue`] under its name; hashed by the engine's default
/// (its name and its encoding), which is canonical for plain structs.
macro_rules! game_component {
    ($ty:ident, $name:literal, $public:literal) => {
        impl SimComponent for $ty {
            const NAME: &'static str = $name;
            const PUBLIC: bool = $public;
            fn to_value(&self) -> ComponentValue {
                ComponentValue::Game(game_value($name, self))
            }
            fn from_value(value: &ComponentValue) -> Option<Self> {
                match value {
                    ComponentValue::Game(g) if g.kind == $name => g.decode().ok(),
                    _ => None,
                }
            }
        }
    };
}

game_component!(Spot, "spot", true);
game_component!(Runner, "runner", true);
game_component!(Round, "round", true);

/// Tag, with its settings, for the catalogue: `Games::new().with("tag", Tag)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tag;

impl GameDef for Tag {
    type Settings = TagSettings;

    fn rules(&self, settings: TagSettings) -> Arc<dyn Game> {
        Arc::new(TagRules { settings })
    }
}

/// The rules of one match of tag.
#[derive(Debug)]
pub struct TagRules {
    settings: TagSettings,
}

/// The settings as a resource, for the systems.
#[derive(Resource, Clone, Debug)]
struct Settings(TagSettings);

fn match_entity(world: &World) -> Option<Entity> {
    world::lookup(world, EntityId::MATCH)
}

fn round(world: &World) -> Option<Round> {
    world.get::<Round>(match_entity(world)?).copied()
}

impl TagRules {
    /// Where a joining runner starts: spread over the field by entity id (no RNG needed).
    fn start(&self, entity: EntityId) -> Spot {
        let n = i64::from(entity.0);
        Spot {
            x: ((n * 7_919) % i64::from(self.settings.width_mm)) as i32,
            y: ((n * 104_729) % i64::from(self.settings.height_mm)) as i32,
        }
    }

    fn decide_run(
        &self,
        world: &World,
        player: PlayerId,
        run: Run,
    ) -> Result<Vec<EventKind>, Rejection> {
        let Some(own) = world::player_entity(world, player) else {
            return Err(Rejection::new(
                Rule::UnknownPlayer,
                format!("player {player} has not joined this match"),
            ));
        };
        if round(world).is_some_and(|r| r.over) {
            return Err(Rejection::new(Rule::MatchEnded, "the round is over"));
        }
        if own != run.entity {
            return Err(Rejection::new(
                Rule::NotYourEntity,
                format!("entity {} is not yours; yours is {own}", run.entity),
            ));
        }
        let max = self.settings.max_step_mm;
        if run.dx.unsigned_abs() > max as u32 || run.dy.unsigned_abs() > max as u32 {
            return Err(Rejection::new(
                Rule::SpeedLimit,
                format!("({}, {}) is more than {max} mm on an axis", run.dx, run.dy),
            ));
        }
        let at = world::lookup(world, own)
            .and_then(|e| world.get::<Spot>(e))
            .copied()
            .unwrap_or_default();
        let moved = RunnerMoved {
            entity: own,
            x: at.x.saturating_add(run.dx).clamp(0, self.settings.width_mm),
            y: at
                .y
                .saturating_add(run.dy)
                .clamp(0, self.settings.height_mm),
        };
        Ok(vec![EventKind::Game(game_value("runner_moved", &moved))])
    }
}

impl Game for TagRules {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules_version(&self) -> u32 {
        1
    }

    fn max_players(&self) -> u32 {
        self.settings.max_players
    }

    fn setup(&self, setup: &mut GameSetup<'_>) {
        setup
            .component::<Spot>()
            .component::<Runner>()
            .component::<Round>();
        setup
            .world()
            .insert_resource(Settings(self.settings.clone()));
        setup.systems((tag_touches, apply_pending_events, end_round).chain());
    }

    fn init_match(&self, world: &mut World) {
        world::spawn_with_id(world, EntityId::MATCH).insert(Round {
            ends_at: Tick(self.settings.round_ticks),
            over: false,
            winner: None,
        });
    }

    fn joined(&self, world: &mut World, _player: PlayerId, entity: EntityId) {
        let now = world::now(world);
        // The first runner in is it.
        let someone_is_it = world.query::<&Runner>().iter(world).any(|r| r.it);
        let start = self.start(entity);
        if let Some(e) = world::lookup(world, entity) {
            world.entity_mut(e).insert((
                start,
                Runner {
                    it: !someone_is_it,
                    it_since: now,
                    ..Runner::default()
                },
            ));
        }
    }

    fn left(&self, world: &mut World, _player: PlayerId, _entity: EntityId) {
        // If it left, the runner with the lowest id is it now.
        let now = world::now(world);
        let mut runners: Vec<(EntityId, Entity, bool)> = world
            .query::<(&StableId, Entity, &Runner)>()
            .iter(world)
            .map(|(id, e, r)| (id.0, e, r.it))
            .collect();
        runners.sort_unstable_by_key(|(id, _, _)| *id);
        if runners.iter().any(|(_, _, it)| *it) {
            return;
        }
        if let Some((_, e, _)) = runners.first()
            && let Some(mut runner) = world.get_mut::<Runner>(*e)
        {
            runner.it = true;
            runner.it_since = now;
        }
    }

    fn decide(
        &self,
        world: &World,
        player: PlayerId,
        _id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::Game(g) if g.kind == "run" => {
                let run: Run = g
                    .decode()
                    .map_err(|e| Rejection::new(Rule::InvalidInput, e.to_string()))?;
                self.decide_run(world, player, run)
            }
            other => Err(Rejection::new(
                Rule::WrongGame,
                format!("{} commands are not part of tag", other.name()),
            )),
        }
    }

    fn apply(&self, world: &mut World, event: &EventKind) {
        let now = world::now(world);
        match event {
            EventKind::Game(g) if g.kind == "runner_moved" => {
                let Ok(moved) = g.decode::<RunnerMoved>() else {
                    return;
                };
                if let Some(e) = world::lookup(world, moved.entity) {
                    world.entity_mut(e).insert(Spot {
                        x: moved.x,
                        y: moved.y,
                    });
                }
            }
            EventKind::Game(g) if g.kind == "runner_tagged" => {
                let Ok(tag) = g.decode::<RunnerTagged>() else {
                    return;
                };
                let back = self.settings.tag_back_ticks;
                if let Some(mut tagger) =
                    world::lookup(world, tag.tagger).and_then(|e| world.get_mut::<Runner>(e))
                {
                    let stint = now.0.saturating_sub(tagger.it_since.0);
                    tagger.it = false;
                    tagger.it_ticks = tagger.it_ticks.saturating_add(stint);
                    tagger.tags = tagger.tags.saturating_add(1);
                    tagger.safe_until = now.after(back);
                }
                if let Some(mut target) =
                    world::lookup(world, tag.target).and_then(|e| world.get_mut::<Runner>(e))
                {
                    target.it = true;
                    target.it_since = now;
                }
            }
            EventKind::MatchEnded { winner, .. } => {
                if let Some(e) = match_entity(world)
                    && let Some(mut round) = world.get_mut::<Round>(e)
                {
                    round.over = true;
                    round.winner = *winner;
                }
            }
            _ => {}
        }
    }

    fn is_over(&self, world: &World) -> bool {
        round(world).is_some_and(|r| r.over)
    }
}

/// *It* tags the nearest runner within reach who is not safe (ties: the lower id).
fn tag_touches(
    clock: Res<Clock>,
    settings: Res<Settings>,
    mut out: ResMut<PendingEvents>,
    runners: Query<(&StableId, &Spot, &Runner)>,
    rounds: Query<&Round>,
) {
    if rounds.iter().any(|r| r.over) {
        return;
    }
    let mut all: Vec<(EntityId, Spot, Runner)> =
        runners.iter().map(|(id, s, r)| (id.0, *s, *r)).collect();
    all.sort_unstable_by_key(|(id, _, _)| *id);
    let Some(&(it, at, _)) = all.iter().find(|(_, _, r)| r.it) else {
        return;
    };
    let reach = i64::from(settings.0.tag_radius_mm).pow(2);
    let nearest = all
        .iter()
        .filter(|(id, _, r)| *id != it && clock.now >= r.safe_until)
        .map(|(id, s, _)| {
            let d = (i64::from(s.x) - i64::from(at.x)).pow(2)
                + (i64::from(s.y) - i64::from(at.y)).pow(2);
            (d, *id)
        })
        .filter(|(d, _)| *d <= reach)
        .min();
    if let Some((_, target)) = nearest {
        out.emit(EventKind::Game(game_value(
            "runner_tagged",
            &RunnerTagged { tagger: it, target },
        )));
    }
}

/// At the end of the round, the most tags wins.
fn end_round(
    clock: Res<Clock>,
    mut out: ResMut<PendingEvents>,
    runners: Query<(&PlayerInfo, &Runner)>,
    rounds: Query<&Round>,
) {
    let Some(round) = rounds.iter().next() else {
        return;
    };
    if round.over || clock.now < round.ends_at {
        return;
    }
    let winner = runners
        .iter()
        .map(|(info, r)| {
            let it_ticks = if r.it {
                r.it_ticks + clock.now.0.saturating_sub(r.it_since.0)
            } else {
                r.it_ticks
            };
            (
                r.tags,
                std::cmp::Reverse(it_ticks),
                std::cmp::Reverse(info.player),
            )
        })
        .max()
        .map(|(_, _, std::cmp::Reverse(player))| player);
    out.emit(EventKind::MatchEnded {
        reason: EndReason::TimeLimit,
        winner,
    });
}

/// The reference games and tag: what this crate's server and replay tool know.
pub fn games() -> tickforge_server::sim::Games {
    tickforge_server::game::builtin().with(NAME, Tag)
}
