//! Re-simulating a replay: the header rebuilds the match, the recorded decided events are
//! applied through the same code the server ran, the schedule re-derives its events, and every
//! tick's hash (and every snapshot) is compared with what the server recorded.

use std::path::Path;

use tickforge_protocol::{Cause, ReplayHeader, SimSnapshot, Tick};

use std::sync::Arc;

use super::LogError;
use super::reader::{ReplayReader, ScanCache, TickRecords};
use crate::sim::{Game, Games, HashReport, MatchSetup, Sim, SimError};

/// The first point where a re-simulation disagrees with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tick {tick} diverges: {detail}")]
pub struct Divergence {
    pub tick: Tick,
    pub detail: String,
    /// The state hash parts (components) that differ, when the hash is what differs.
    pub parts: Vec<String>,
}

/// Why a replay cannot be re-simulated at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "the file was recorded with {game} rules version {recorded}; this build has version {current}"
    )]
    RulesVersion {
        game: String,
        recorded: u32,
        current: u32,
    },
    #[error("the header names game {game:?} but its config is for {config}")]
    GameMismatch { game: String, config: String },
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// The setup a header describes.
pub fn setup_of(header: &ReplayHeader) -> MatchSetup {
    MatchSetup {
        match_id: header.match_id,
        seed: header.seed,
        tick_rate_hz: header.tick_rate_hz,
        game: header.config.clone(),
    }
}

/// The rules a header describes, from `games`: its settings checked as a new match's are,
/// before any rule sees them, and its rules version the one this build has.
fn check_header(header: &ReplayHeader, games: &Games) -> Result<Arc<dyn Game>, ReplayError> {
    setup_of(header).validate()?;
    if header.game != header.config.game_name() {
        return Err(ReplayError::GameMismatch {
            game: header.game.clone(),
            config: header.config.game_name().to_string(),
        });
    }
    let game = games.build(&header.config)?;
    let current = game.rules_version();
    if current != header.rules_version {
        return Err(ReplayError::RulesVersion {
            game: header.game.clone(),
            recorded: header.rules_version,
            current,
        });
    }
    Ok(game)
}

/// A simulation driven by a file's ticks.
#[derive(Debug)]
pub struct Replayer {
    sim: Sim,
    part_names: Vec<String>,
}

impl Replayer {
    /// Start at tick 0 of the match the header describes, with its game from `games`.
    pub fn new(header: &ReplayHeader, games: &Games) -> Result<Replayer, ReplayError> {
        let game = check_header(header, games)?;
        Ok(Replayer {
            sim: Sim::new(&setup_of(header), game)?,
            part_names: header.hash_parts.clone(),
        })
    }

    /// Start from a snapshot recorded in the file.
    pub fn from_snapshot(
        header: &ReplayHeader,
        snapshot: &SimSnapshot,
        games: &Games,
    ) -> Result<Replayer, ReplayError> {
        let game = check_header(header, games)?;
        Ok(Replayer {
            sim: Sim::restore(&setup_of(header), snapshot, game)?,
            part_names: header.hash_parts.clone(),
        })
    }

    pub fn sim(&mut self) -> &mut Sim {
        &mut self.sim
    }

    /// Apply one recorded tick and check it: decided events are re-applied; derived events are
    /// re-computed and must match the recorded ones; the state hash must match the tick end;
    /// a recorded snapshot must match the re-simulated state.
    pub fn apply_tick(&mut self, t: &TickRecords) -> Result<HashReport, Divergence> {
        apply_recorded(&mut self.sim, &self.part_names, t)
    }
}

/// [`Replayer::apply_tick`] on any simulation: `part_names` are the header's `hash_parts`.
/// The match core uses it to take over a match from its recorded ticks.
pub fn apply_recorded(
    sim: &mut Sim,
    part_names: &[String],
    t: &TickRecords,
) -> Result<HashReport, Divergence> {
    let tick = sim.now();
    let diverge = |detail: String| Divergence {
        tick,
        detail,
        parts: vec![],
    };
    if t.tick != tick {
        return Err(diverge(format!(
            "the file has tick {} where tick {} was expected",
            t.tick.0, tick.0
        )));
    }
    let mut recorded_derived = Vec::new();
    for event in &t.events {
        if event.cause.is_derived() {
            recorded_derived.push(event);
        } else if !recorded_derived.is_empty() {
            return Err(diverge(format!(
                "decided event seq {} follows derived events",
                event.seq.0
            )));
        } else {
            sim.apply(event);
        }
    }
    let derived = sim.step();
    for (i, kind) in derived.into_iter().enumerate() {
        let event = sim.sequence(Cause::Rules, kind);
        match recorded_derived.get(i) {
            Some(recorded) if **recorded == event => {}
            Some(recorded) => {
                return Err(diverge(format!(
                    "derived event seq {}: recorded {:?}, re-simulated {:?}",
                    recorded.seq.0, recorded.kind, event.kind
                )));
            }
            None => {
                return Err(diverge(format!(
                    "re-simulation derives an extra event seq {}: {:?}",
                    event.seq.0, event.kind
                )));
            }
        }
    }
    let made = sim.last_seq();
    if let Some(missing) = recorded_derived.iter().find(|e| e.seq > made) {
        return Err(diverge(format!(
            "the file has derived event seq {} ({:?}) that re-simulation does not produce",
            missing.seq.0, missing.kind
        )));
    }
    let report = sim.end_tick_report();
    if report.total != t.end.hash {
        let parts = report
            .parts
            .iter()
            .zip(&t.end.parts)
            .enumerate()
            .filter(|(_, (now, recorded))| now.1.0 != **recorded)
            .map(|(i, (now, _))| {
                part_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| now.0.to_string())
            })
            .collect::<Vec<_>>();
        return Err(Divergence {
            tick,
            detail: format!(
                "state hash recorded {}, re-simulated {}; differing parts: {}",
                t.end.hash,
                report.total,
                if parts.is_empty() {
                    "(none named)".to_string()
                } else {
                    parts.join(", ")
                }
            ),
            parts,
        });
    }
    if let Some(recorded) = &t.snapshot {
        let now = sim.snapshot();
        if &now != recorded {
            return Err(diverge(snapshot_difference(recorded, &now)));
        }
    }
    Ok(report)
}

/// Say where two snapshots of the same tick differ.
pub fn snapshot_difference(recorded: &SimSnapshot, now: &SimSnapshot) -> String {
    if recorded.seq != now.seq
        || recorded.next_entity != now.next_entity
        || recorded.rng_words != now.rng_words
    {
        return format!(
            "snapshot engine state differs: recorded seq {} next entity {} rng {}, re-simulated seq {} next entity {} rng {}",
            recorded.seq.0,
            recorded.next_entity.0,
            recorded.rng_words,
            now.seq.0,
            now.next_entity.0,
            now.rng_words
        );
    }
    for (a, b) in recorded.entities.iter().zip(&now.entities) {
        if a != b {
            return format!(
                "snapshot entity {} differs: recorded {:?}, re-simulated {:?}",
                a.id, a.components, b.components
            );
        }
    }
    format!(
        "snapshot entity count differs: recorded {}, re-simulated {}",
        recorded.entities.len(),
        now.entities.len()
    )
}

/// Why the world at a tick could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum SeekError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("{path} ends at tick {last}; tick {wanted} is not in it")]
    PastTheEnd {
        path: String,
        last: u64,
        wanted: u64,
    },
    #[error("the world at tick {tick} cannot be rebuilt: {divergence}")]
    Diverged { tick: u64, divergence: Divergence },
    #[error(
        "{path}: the index names a snapshot of tick {indexed} at offset={offset}, but the snapshot there is of tick {found}"
    )]
    SnapshotMismatch {
        path: String,
        indexed: u64,
        offset: u64,
        found: u64,
    },
    #[error(
        "{path}: tick {wanted} could not be reached: the index says the file ends at tick {last}, but its records stop at tick {reached}"
    )]
    Unreachable {
        path: String,
        wanted: u64,
        reached: u64,
        last: u64,
    },
}

/// The complete world at the end of `tick` of the replay at `path`: restored from the latest
/// snapshot at or before it, then re-simulated forward (each tick checked as by verify).
pub fn seek(path: &Path, tick: Tick, games: &Games) -> Result<SimSnapshot, SeekError> {
    seek_in(ReplayReader::open(path)?, path, tick, games)
}

/// [`seek`], opening the file through `cache` (a running match's file is not scanned whole
/// again on every call).
pub fn seek_cached(
    path: &Path,
    tick: Tick,
    cache: &ScanCache,
    games: &Games,
) -> Result<SimSnapshot, SeekError> {
    seek_in(ReplayReader::open_cached(path, cache)?, path, tick, games)
}

fn seek_in(
    mut reader: ReplayReader,
    path: &Path,
    tick: Tick,
    games: &Games,
) -> Result<SimSnapshot, SeekError> {
    let last = reader.index().last_tick;
    if tick > last {
        return Err(SeekError::PastTheEnd {
            path: path.display().to_string(),
            last: last.0,
            wanted: tick.0,
        });
    }
    let (mut replayer, from) = match reader.snapshot_before(tick) {
        Some((indexed, offset)) => {
            let snapshot = reader.read_snapshot(offset)?;
            if snapshot.tick != indexed {
                return Err(SeekError::SnapshotMismatch {
                    path: path.display().to_string(),
                    indexed: indexed.0,
                    offset,
                    found: snapshot.tick.0,
                });
            }
            (
                Replayer::from_snapshot(reader.header(), &snapshot, games)?,
                offset,
            )
        }
        None => (
            Replayer::new(reader.header(), games)?,
            reader.first_tick_offset(),
        ),
    };
    if replayer.sim().last_tick() < tick {
        for records in reader.ticks_from(from)? {
            let records = records?;
            replayer
                .apply_tick(&records)
                .map_err(|divergence| SeekError::Diverged {
                    tick: tick.0,
                    divergence,
                })?;
            if records.tick >= tick {
                break;
            }
        }
    }
    // Whatever the index claimed, the answer is the world at the tick asked for, or an error.
    let reached = replayer.sim().last_tick();
    if reached != tick {
        return Err(SeekError::Unreachable {
            path: path.display().to_string(),
            wanted: tick.0,
            reached: reached.0,
            last: last.0,
        });
    }
    Ok(replayer.sim().snapshot())
}
