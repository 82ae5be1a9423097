//! The headless driver: plays a whole match in-process, with scripted bots, and returns what
//! a server would have logged. Tests, benchmarks, `tickforge-replay record` and the server's
//! `--headless` mode all use it, so they all exercise the same tick code the server runs.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tickforge_protocol::{
    Command, CommandId, EntityId, Event, GameConfig, PlayerId, RejectedCommand, StateHash, Tick,
};

use crate::log::{LogConfig, LogError, LogWriter, TickBatch};
use crate::sim::{CommandInput, MatchSetup, Sim, SimError, TickReport};
use std::path::Path;
use tickforge_protocol::{PROTOCOL_VERSION, REPLAY_FORMAT_VERSION, ReplayHeader, ReplayIndex};

/// A match to play: the setup, how many scripted players, for how many ticks.
#[derive(Clone, Debug)]
pub struct HeadlessMatch {
    pub setup: MatchSetup,
    pub players: u32,
    pub ticks: u64,
    /// Seeds the bots' own RNG (never the match's).
    pub bot_seed: u64,
}

/// What a headless match produced, in order.
#[derive(Debug)]
pub struct HeadlessRun {
    pub events: Vec<Event>,
    pub rejections: Vec<RejectedCommand>,
    /// One hash per tick, ticks 1..=n.
    pub hashes: Vec<(Tick, StateHash)>,
    /// The simulation as it stands after the last tick.
    pub sim: Sim,
}

/// Play `spec` and keep every event, rejection and hash.
pub fn play(spec: &HeadlessMatch) -> Result<HeadlessRun, SimError> {
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    let mut hashes = Vec::new();
    let sim = play_with(spec, |_, report| {
        events.extend(report.events.iter().cloned());
        rejections.extend(report.rejections.iter().cloned());
        hashes.push((report.tick, report.hash));
    })?;
    Ok(HeadlessRun {
        events,
        rejections,
        hashes,
        sim,
    })
}

/// Play `spec`, handing each tick's report to `on_tick` (which may also look at the sim, to
/// take snapshots or deltas). Stops early if the match ends. Returns the final simulation.
pub fn play_with(
    spec: &HeadlessMatch,
    mut on_tick: impl FnMut(&mut Sim, &TickReport),
) -> Result<Sim, SimError> {
    let mut sim = crate::game::builtin().sim(&spec.setup)?;
    let mut bots = ScriptedBots::new(&spec.setup.game, spec.players, spec.bot_seed);
    for _ in 0..spec.ticks {
        let commands = bots.commands(&sim);
        let report = sim.run_tick(commands);
        on_tick(&mut sim, &report);
        if sim.is_over() {
            break;
        }
    }
    Ok(sim)
}

/// The replay header of a match with this setup.
pub fn header_for(sim: &Sim, created_at_unix_ms: u64, snapshot_every_ticks: u64) -> ReplayHeader {
    let setup = sim.setup();
    ReplayHeader {
        format_version: REPLAY_FORMAT_VERSION,
        protocol_version: PROTOCOL_VERSION,
        game: sim.game().name().to_string(),
        rules_version: sim.game().rules_version(),
        match_id: setup.match_id,
        seed: setup.seed,
        tick_rate_hz: setup.tick_rate_hz,
        config: setup.game.clone(),
        created_at_unix_ms,
        snapshot_every_ticks,
        hash_parts: sim
            .hash_part_names()
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

/// Why a headless match could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Play `spec` and record it as a replay file at `path` (which must not exist yet), with a
/// snapshot every `config.snapshot_every_ticks`. Calls `on_tick` after each tick (for progress).
pub fn record(
    spec: &HeadlessMatch,
    path: &Path,
    config: LogConfig,
    created_at_unix_ms: u64,
    mut on_tick: impl FnMut(&TickReport),
) -> Result<ReplayIndex, RecordError> {
    let sim = crate::game::builtin().sim(&spec.setup)?;
    let writer = LogWriter::create(
        path,
        &header_for(&sim, created_at_unix_ms, config.snapshot_every_ticks),
        config,
    )?;
    let mut failed = None;
    play_with(spec, |sim, report| {
        if failed.is_some() {
            return;
        }
        on_tick(report);
        let snapshot = writer.snapshot_due(report.tick).then(|| sim.snapshot());
        if let Err(e) = writer.append_blocking(TickBatch::from_report(report.clone(), snapshot)) {
            failed = Some(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(writer.close()?)
}

/// Scripted players: they join on the first tick, then act from their own seeded RNG. Arena
/// bots steer now and then (sometimes too fast, to exercise the speed rule) and fire often
/// (so cooldown rejections happen too); drift bots send one input every tick.
#[derive(Debug)]
pub struct ScriptedBots {
    game: GameConfig,
    players: u32,
    rng: ChaCha8Rng,
    next_id: Vec<u32>,
}

impl ScriptedBots {
    pub fn new(game: &GameConfig, players: u32, seed: u64) -> ScriptedBots {
        ScriptedBots {
            game: game.clone(),
            players,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_id: vec![1; players as usize],
        }
    }

    /// The player ids the bots play as (1..=players).
    pub fn player_ids(&self) -> impl Iterator<Item = PlayerId> + use<> {
        (1..=self.players).map(PlayerId)
    }

    fn below(&mut self, n: u32) -> i32 {
        ((u64::from(self.rng.next_u32()) * u64::from(n)) >> 32) as i32
    }

    fn span(&mut self, max: i32) -> i32 {
        self.below((2 * max + 1) as u32) - max
    }

    /// One bot's command for this tick, if it acts.
    pub fn command_for(&mut self, player: PlayerId, entity: Option<EntityId>) -> Option<Command> {
        let Some(entity) = entity else {
            return Some(Command::Join {
                name: format!("bot-{}", player.0),
            });
        };
        match self.game.clone() {
            GameConfig::Arena(rules) => {
                let roll = self.below(100);
                if roll < 6 {
                    // One steer in eight asks for twice the allowed speed.
                    let max = if self.below(8) == 0 {
                        rules.max_speed_mm_per_tick * 2
                    } else {
                        rules.max_speed_mm_per_tick
                    };
                    let limit = max * 7 / 10;
                    Some(Command::Move {
                        entity,
                        vx: self.span(limit),
                        vy: self.span(limit),
                    })
                } else if roll < 11 {
                    Some(Command::Fire {
                        entity,
                        dx: self.span(1000),
                        dy: self.span(1000),
                    })
                } else {
                    None
                }
            }
            GameConfig::Drift(rules) => {
                let step = rules.max_step_mm / 10;
                Some(Command::Drift {
                    entity,
                    dx: self.span(step),
                    dy: self.span(step),
                })
            }
            // Scripted bots know only the reference games: in another they join and idle.
            GameConfig::Game(_) => None,
        }
    }

    /// Every bot's command for the sim's next tick, in player order.
    pub fn commands(&mut self, sim: &Sim) -> Vec<CommandInput> {
        let mut out = Vec::new();
        for player in self.player_ids() {
            if let Some(command) = self.command_for(player, sim.player_entity(player)) {
                let slot = &mut self.next_id[(player.0 - 1) as usize];
                out.push(CommandInput {
                    player,
                    id: CommandId(*slot),
                    command,
                });
                *slot += 1;
            }
        }
        out
    }
}
