//! The deterministic core: one match's world and the only code that changes it.
//!
//! Same setup + same events ⇒ same world and same hashes, on any machine.
//! Allowed here: bevy_ecs, tickforge-protocol, the seeded match RNG ([`world::MatchRng`]).
//! Not allowed: tokio, clocks, thread RNGs, `HashMap`/`HashSet` iteration, floats in state,
//! any I/O (`clippy.toml` bans the APIs). Like raft-rs, the core *returns* what happened
//! ([`TickReport`]); the caller logs it, sends it and stores it.
//!
//! A bevy `Entity` never leaves this module's world: everything outside speaks
//! [`EntityId`], a stable id allocated in event order.

pub mod game;
pub mod hash;
pub mod join;
mod registry;
pub mod world;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, ScheduleLabel, SingleThreadedExecutor};
use std::collections::BTreeMap;
use std::sync::Arc;
use tickforge_protocol::{
    Cause, Command, CommandId, ComponentValue, Delta, EVENT_SCHEMA_VERSION, EntityId, EntityState,
    Event, EventKind, GameConfig, MatchId, PlayerId, RejectedCommand, Rejection, Seq, SimSnapshot,
    Snapshot, StateHash, Tick,
};

pub use game::{Game, GameDef, GameFactory, GameSettings, GameSetup, Games};
pub use hash::StateHasher;
pub use registry::SimComponent;
use registry::{Entry, Registered};
use world::{
    Clock, Despawned, GameHandle, IdIndex, MatchInfo, MatchRng, NextEntityId, PendingEvents,
    PlayerIndex, PlayerInfo,
};

/// What a match is made from: the same setup always gives the same match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchSetup {
    pub match_id: MatchId,
    pub seed: u64,
    pub tick_rate_hz: u32,
    pub game: GameConfig,
}

impl MatchSetup {
    /// The highest tick rate a match runs at.
    pub const MAX_TICK_RATE_HZ: u32 = 1000;

    /// Check every setting, as the server does before creating a match and readers do before
    /// re-simulating a file: a crafted value never reaches the rules.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=Self::MAX_TICK_RATE_HZ).contains(&self.tick_rate_hz) {
            return Err(SimError::BadSetup(format!(
                "tick_rate_hz = {} is outside 1..={}",
                self.tick_rate_hz,
                Self::MAX_TICK_RATE_HZ
            )));
        }
        self.game.validate().map_err(SimError::BadSetup)
    }
}

/// One command as it reaches the tick: who sent it, its per-session id, what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandInput {
    pub player: PlayerId,
    pub id: CommandId,
    pub command: Command,
}

/// The outcome of one command, in input order, for its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    pub player: PlayerId,
    pub id: CommandId,
    pub result: Result<(), Rejection>,
}

/// Everything one tick produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickReport {
    pub tick: Tick,
    /// Sequenced and applied, decided events first, then derived ones.
    pub events: Vec<Event>,
    pub outcomes: Vec<CommandOutcome>,
    /// The audit trail: every refused command with its rule.
    pub rejections: Vec<RejectedCommand>,
    pub hash: StateHash,
    /// The hash's parts, in the order of [`Sim::hash_part_names`].
    pub parts: Vec<u64>,
}

/// A state hash with its parts: one per registered component, plus `engine` (tick, id
/// allocator, RNG position, entity ids). When two runs diverge the parts say where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashReport {
    pub total: StateHash,
    pub parts: Vec<(&'static str, StateHash)>,
}

impl HashReport {
    /// Names of the parts that differ between two reports.
    pub fn differing_parts(&self, other: &HashReport) -> Vec<&'static str> {
        self.parts
            .iter()
            .zip(&other.parts)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }
}

/// Why a simulation could not be built or restored.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the {game} schedule is invalid: {detail}")]
    Schedule { game: &'static str, detail: String },
    #[error("the match settings are out of range: {0}")]
    BadSetup(String),
    #[error("snapshot of match {found} cannot be restored into match {expected}")]
    WrongMatch { expected: MatchId, found: MatchId },
    #[error("snapshot entity {entity} has a component no registered type accepts: {component}")]
    UnknownComponent { entity: EntityId, component: String },
    #[error("no game called {game:?} is known here (known: {known})")]
    UnknownGame { game: String, known: String },
}

/// The label of every match's fixed-step schedule.
#[derive(ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FixedStep;

/// One match's world, its fixed-step schedule, and its event sequencer.
pub struct Sim {
    world: World,
    schedule: Schedule,
    game: Arc<dyn Game>,
    setup: MatchSetup,
    components: Vec<Box<dyn Registered>>,
    last_seq: Seq,
    scratch: Vec<(EntityId, ComponentValue)>,
    delta_scratch: Vec<(EntityId, usize, ComponentValue)>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("game", &self.game.name())
            .field("match_id", &self.setup.match_id)
            .field("tick", &self.now())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

/// Apply the events systems have emitted so far. Games put this between systems whose later
/// members must see the earlier ones' facts (a player killed by a projectile cannot then pick
/// up health in the same tick); [`Sim::step`] also runs it last.
pub fn apply_pending_events(world: &mut World) {
    let queue = std::mem::take(&mut world.resource_mut::<PendingEvents>().queue);
    if queue.is_empty() {
        return;
    }
    let game = world.resource::<GameHandle>().0.clone();
    for kind in queue {
        apply_kind(world, &*game, &kind);
        world.resource_mut::<PendingEvents>().applied.push(kind);
    }
}

/// The one place a fact changes the world: joins and leaves are the engine's (with the game's
/// hooks), everything else the game's.
fn apply_kind(world: &mut World, game: &dyn Game, kind: &EventKind) {
    match kind {
        EventKind::PlayerJoined {
            player,
            entity,
            name,
        } => join::joined(world, game, *player, *entity, name),
        EventKind::PlayerLeft { player, entity } => join::left(world, game, *player, *entity),
        _ => game.apply(world, kind),
    }
}

impl SimComponent for PlayerInfo {
    const NAME: &'static str = "player";
    const PUBLIC: bool = true;
    fn to_value(&self) -> ComponentValue {
        ComponentValue::Player {
            player: self.player,
            name: self.name.clone(),
        }
    }
    fn from_value(value: &ComponentValue) -> Option<Self> {
        match value {
            ComponentValue::Player { player, name } => Some(PlayerInfo {
                player: *player,
                name: name.clone(),
            }),
            _ => None,
        }
    }
    fn hash(&self, h: &mut StateHasher) {
        h.u8(1);
        h.u32(self.player.0);
        h.str(&self.name);
    }
}

impl Sim {
    /// A fresh match at tick 0 of `game`'s rules: no players, the game's match entity, the RNG
    /// at its seed. (A catalogue builds the game from the setup: [`Games::sim`].)
    pub fn new(setup: &MatchSetup, game: Arc<dyn Game>) -> Result<Sim, SimError> {
        let mut sim = Sim::empty(setup, game)?;
        let game = sim.game.clone();
        game.init_match(&mut sim.world);
        sim.world.clear_trackers();
        Ok(sim)
    }

    /// Restore a simulation from a full snapshot; continuing it gives the same hashes as the
    /// run it was taken from.
    pub fn restore(
        setup: &MatchSetup,
        snapshot: &SimSnapshot,
        game: Arc<dyn Game>,
    ) -> Result<Sim, SimError> {
        if snapshot.match_id != setup.match_id {
            return Err(SimError::WrongMatch {
                expected: setup.match_id,
                found: snapshot.match_id,
            });
        }
        let mut sim = Sim::empty(setup, game)?;
        sim.world.resource_mut::<Clock>().now = snapshot.tick.next();
        sim.world
            .resource_mut::<MatchRng>()
            .set_words(snapshot.rng_words);
        sim.last_seq = snapshot.seq;
        // Spawned in reverse id order on purpose: bevy's storage order then differs from the
        // original run's, so a system that iterates in storage order instead of stable-id
        // order diverges after a restore, and the restore tests catch it.
        for state in snapshot.entities.iter().rev() {
            let mut entity = world::spawn_with_id(&mut sim.world, state.id);
            for value in &state.components {
                if !sim.components.iter().any(|c| c.insert(&mut entity, value)) {
                    return Err(SimError::UnknownComponent {
                        entity: state.id,
                        component: value.name().to_string(),
                    });
                }
            }
            if let Some(ComponentValue::Player { player, .. }) = state.get("player") {
                sim.world
                    .resource_mut::<PlayerIndex>()
                    .0
                    .insert(*player, state.id);
            }
        }
        sim.world.resource_mut::<NextEntityId>().0 = snapshot.next_entity;
        sim.world.clear_trackers();
        Ok(sim)
    }

    fn empty(setup: &MatchSetup, game: Arc<dyn Game>) -> Result<Sim, SimError> {
        setup.validate()?;
        let mut world = World::new();
        world.insert_resource(Clock { now: Tick(1) });
        world.insert_resource(MatchInfo {
            match_id: setup.match_id,
        });
        world.insert_resource(MatchRng::from_seed(setup.seed));
        world.insert_resource(NextEntityId(EntityId(1)));
        world.init_resource::<IdIndex>();
        world.init_resource::<PlayerIndex>();
        world.init_resource::<PendingEvents>();
        world.init_resource::<Despawned>();
        world.insert_resource(GameHandle(game.clone()));

        let mut schedule = Schedule::new(FixedStep);
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            ..Default::default()
        });

        let mut components: Vec<Box<dyn Registered>> = Vec::new();
        components.push(Box::new(Entry::<PlayerInfo>::new(&mut world)));
        game.setup(&mut GameSetup {
            world: &mut world,
            schedule: &mut schedule,
            components: &mut components,
        });
        if let Err(e) = schedule.initialize(&mut world) {
            let detail = e.to_string(schedule.graph(), &world);
            return Err(SimError::Schedule {
                game: game.name(),
                detail,
            });
        }
        Ok(Sim {
            world,
            schedule,
            game,
            setup: setup.clone(),
            components,
            last_seq: Seq(0),
            delta_scratch: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

impl Sim {
    /// The tick that runs next (events decided now are stamped with it).
    pub fn now(&self) -> Tick {
        world::now(&self.world)
    }

    /// The last tick that completed (0 before the first).
    pub fn last_tick(&self) -> Tick {
        Tick(self.now().0.saturating_sub(1))
    }

    /// The last seq handed out.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    pub fn setup(&self) -> &MatchSetup {
        &self.setup
    }

    pub fn game(&self) -> &dyn Game {
        &*self.game
    }

    /// Read access to the world, for tests, tools and bots that inspect state.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The stable id of a player's entity, if they are in the match.
    pub fn player_entity(&self, player: PlayerId) -> Option<EntityId> {
        world::player_entity(&self.world, player)
    }

    /// Decide whether a command becomes events: `Join` and `Leave` by the engine, everything
    /// else by the game. Pure: the world is not touched.
    pub fn decide(
        &self,
        player: PlayerId,
        id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::Join { name } => join::decide_join(&self.world, &*self.game, player, name),
            Command::Leave => join::decide_leave(&self.world, player),
            other => self.game.decide(&self.world, player, id, other),
        }
    }

    /// Apply one sequenced event: the only way a decided fact changes the world.
    pub fn apply(&mut self, event: &Event) {
        self.last_seq = self.last_seq.max(event.seq);
        apply_kind(&mut self.world, &*self.game, &event.kind);
    }

    /// Run the fixed-step schedule for the current tick. Events the systems derive are applied
    /// as they arise and returned in order, for the caller to sequence.
    pub fn step(&mut self) -> Vec<EventKind> {
        self.schedule.run(&mut self.world);
        apply_pending_events(&mut self.world);
        std::mem::take(&mut self.world.resource_mut::<PendingEvents>().applied)
    }

    /// Finish the current tick: hash the world and move the clock on.
    pub fn end_tick(&mut self) -> StateHash {
        self.end_tick_report().total
    }

    /// Finish the current tick, returning the hash with its parts.
    pub fn end_tick_report(&mut self) -> HashReport {
        let report = self.hash_report();
        self.world.resource_mut::<Clock>().now = self.now().next();
        // bevy records every removed component (each despawn) until trackers are cleared; a
        // game that despawns every tick (arena's projectiles) would otherwise grow the world
        // without bound. Deltas keep their own change ticks, so this does not affect them.
        self.world.clear_trackers();
        report
    }

    /// The names of the state hash's parts, in order (written into replay headers).
    pub fn hash_part_names(&self) -> Vec<&'static str> {
        std::iter::once("engine")
            .chain(self.components.iter().map(|c| c.name()))
            .collect()
    }

    /// The names of the public components, in registration order: the component table of
    /// protocol 2's tick frames (tag = index).
    pub fn public_components(&self) -> Vec<&'static str> {
        self.components
            .iter()
            .filter(|c| c.public())
            .map(|c| c.name())
            .collect()
    }

    /// Wrap an event kind in its envelope with the next seq.
    pub fn sequence(&mut self, cause: Cause, kind: EventKind) -> Event {
        self.last_seq = self.last_seq.next();
        Event {
            match_id: self.setup.match_id,
            seq: self.last_seq,
            tick: self.now(),
            v: EVENT_SCHEMA_VERSION,
            cause,
            kind,
        }
    }

    /// Run one whole tick over the commands that arrived for it.
    ///
    /// Phases, in order:
    /// 1. take the commands in arrival order;
    /// 2. `Game::decide` each one against the world as it stands (earlier commands of this
    ///    tick already applied) ⇒ events, or a rejection for its sender and the audit trail;
    /// 3. sequence each event (seq = last + 1, no gaps);
    /// 4. apply it;
    /// 5. run the fixed-step schedule; its derived events are sequenced and applied too;
    /// 6. hash the world and close the tick.
    ///
    /// Logging the report and broadcasting the delta are the caller's phases 7 and 8.
    pub fn run_tick(&mut self, commands: impl IntoIterator<Item = CommandInput>) -> TickReport {
        let tick = self.now();
        let mut events = Vec::new();
        let mut outcomes = Vec::new();
        let mut rejections = Vec::new();
        for input in commands {
            let result = match self.decide(input.player, input.id, &input.command) {
                Ok(kinds) => {
                    for kind in kinds {
                        let cause = Cause::Command {
                            player: input.player,
                            id: input.id,
                        };
                        let event = self.sequence(cause, kind);
                        self.apply(&event);
                        events.push(event);
                    }
                    Ok(())
                }
                Err(rejection) => {
                    rejections.push(RejectedCommand {
                        tick,
                        player: input.player,
                        id: input.id,
                        command: input.command,
                        rule: rejection.rule,
                        detail: rejection.detail.clone(),
                    });
                    Err(rejection)
                }
            };
            outcomes.push(CommandOutcome {
                player: input.player,
                id: input.id,
                result,
            });
        }
        for kind in self.step() {
            let event = self.sequence(Cause::Rules, kind);
            events.push(event);
        }
        let report = self.end_tick_report();
        let hash = report.total;
        let parts = report.parts.iter().map(|(_, h)| h.0).collect();
        TickReport {
            tick,
            events,
            outcomes,
            rejections,
            hash,
            parts,
        }
    }

    /// True once the match has ended (a `MatchEnded` event was applied).
    pub fn is_over(&self) -> bool {
        self.game.is_over(&self.world)
    }

    /// The state hash of the world as it stands.
    pub fn state_hash(&mut self) -> StateHash {
        self.hash_report().total
    }

    /// The state hash with one part per component and one for the engine.
    pub fn hash_report(&mut self) -> HashReport {
        let mut parts = Vec::with_capacity(self.components.len() + 1);
        let mut engine = StateHasher::new();
        engine.u64(self.now().0);
        engine.u32(self.world.resource::<NextEntityId>().0.0);
        engine.u64(self.world.resource::<MatchRng>().words());
        for id in self.world.resource::<IdIndex>().0.keys() {
            engine.u32(id.0);
        }
        parts.push(("engine", engine.finish()));
        let mut hasher = StateHasher::new();
        for component in &mut self.components {
            let part = component.hash_part(&self.world, &mut hasher);
            parts.push((component.name(), StateHash(part)));
        }
        let mut total = StateHasher::new();
        for (_, part) in &parts {
            total.u64(part.0);
        }
        HashReport {
            total: total.finish(),
            parts,
        }
    }

    /// Every entity with its values, sorted by id; private components only if asked for.
    fn entity_states(&mut self, include_private: bool) -> Vec<EntityState> {
        let mut by_entity: BTreeMap<EntityId, Vec<ComponentValue>> = BTreeMap::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        for component in &mut self.components {
            if !include_private && !component.public() {
                continue;
            }
            scratch.clear();
            component.collect_all(&self.world, &mut scratch);
            scratch.sort_unstable_by_key(|(id, _)| *id);
            for (id, value) in scratch.drain(..) {
                by_entity.entry(id).or_default().push(value);
            }
        }
        self.scratch = scratch;
        // Entities with no registered component still exist and are part of the state.
        for id in self.world.resource::<IdIndex>().0.keys() {
            by_entity.entry(*id).or_default();
        }
        by_entity
            .into_iter()
            .map(|(id, components)| EntityState { id, components })
            .collect()
    }

    /// The complete state as of the last completed tick.
    pub fn snapshot(&mut self) -> SimSnapshot {
        SimSnapshot {
            match_id: self.setup.match_id,
            tick: self.last_tick(),
            seq: self.last_seq,
            next_entity: self.world.resource::<NextEntityId>().0,
            rng_words: self.world.resource::<MatchRng>().words(),
            entities: self.entity_states(true),
        }
    }

    /// The public state as of the last completed tick: what a joining client is sent.
    pub fn client_snapshot(&mut self) -> Snapshot {
        Snapshot {
            tick: self.last_tick(),
            seq: self.last_seq,
            entities: self.entity_states(false),
        }
    }

    /// Public component values changed since the previous call, and entities removed.
    pub fn take_delta(&mut self) -> Delta {
        // (entity, registration index, value), sorted, then grouped per entity: values within
        // an entity keep registration order, as in snapshots.
        let mut changes = std::mem::take(&mut self.delta_scratch);
        let mut scratch = std::mem::take(&mut self.scratch);
        for (index, component) in self.components.iter_mut().enumerate() {
            if !component.public() {
                continue;
            }
            scratch.clear();
            component.collect_changed(&self.world, &mut scratch);
            changes.extend(scratch.drain(..).map(|(id, value)| (id, index, value)));
        }
        self.scratch = scratch;
        changes.sort_by_key(|(id, index, _)| (*id, *index));
        let mut changed: Vec<EntityState> = Vec::new();
        for (id, _, value) in changes.drain(..) {
            match changed.last_mut() {
                Some(last) if last.id == id => last.components.push(value),
                _ => changed.push(EntityState {
                    id,
                    components: vec![value],
                }),
            }
        }
        self.delta_scratch = changes;
        let removed = std::mem::take(&mut self.world.resource_mut::<Despawned>().0);
        Delta {
            tick: self.last_tick(),
            seq: self.last_seq,
            changed,
            removed,
        }
    }
}
