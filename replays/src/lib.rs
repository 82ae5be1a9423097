//! Replay tooling: what the `tickforge-replay` binary does, as functions that tests and other
//! tools call directly.
//!
//! - [`inspect`]: header, counts, players, rejections, file health.
//! - [`verify`]: re-simulate the whole file and compare every tick's hash.
//! - [`seek`]: the world at any tick, through the nearest snapshot.
//! - [`diff`]: the first tick where two replays diverge, and how.
//! - [`export`]: events (and rejections) as JSON lines, filtered.
//! - [`cli`]: the whole `tickforge-replay` command line, for the games it is given.
//!
//! Recording and recovery come from the engine (`tickforge_server::headless::record`,
//! `tickforge_server::log::recover`). Fixtures of every released file-format version live in
//! `replays/fixtures/v<N>/`; the test suite verifies them forever.
//!
//! Depends on the engine for the simulation and the log format; never on the network.

pub mod cli;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use tickforge_protocol::{
    Event, EventKind, PlayerId, RejectedCommand, ReplayHeader, ReplayIndex, SimSnapshot, Tick,
};
use tickforge_server::log::reader::Health;
use tickforge_server::log::replay::ReplayError;
use tickforge_server::log::{Divergence, LogError, ReplayReader, Replayer, TickRecords};
use tickforge_server::sim::Games;

/// Why a replay tool failed (as opposed to finding a divergence, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Seek(#[from] tickforge_server::log::replay::SeekError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// The file contradicts itself (its index against its records): corrupt, or crafted.
    #[error("{0}")]
    Corrupt(String),
}

/// A summary of one replay file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file_bytes: u64,
    pub header: ReplayHeader,
    pub ticks: u64,
    pub duration_s: f64,
    pub events: u64,
    pub rejections: u64,
    pub snapshots: usize,
    pub last_seq: u64,
    /// player id → name, from `player_joined` events.
    pub players: BTreeMap<u32, String>,
    pub events_by_kind: BTreeMap<String, u64>,
    pub rejections_by_rule: BTreeMap<String, u64>,
    pub health: String,
    pub clean_close: bool,
    pub damaged: bool,
}

/// Describe a file's health in one line.
pub fn describe_health(health: &Health) -> String {
    match (&health.damage, health.clean_close, health.tail_bytes) {
        (None, true, _) => "clean: closed with its index footer".into(),
        (None, false, 0) => {
            "no footer (the writer did not close it): indexed by scanning; every tick is whole"
                .into()
        }
        (None, false, tail) => format!(
            "no footer; {tail} bytes of an unfinished tick at the end (a crash): they are ignored"
        ),
        (Some(d), _, _) => match d.resumes_at {
            None => format!(
                "damaged tail at offset={}: {}; {} bytes after the last whole tick are ignored (`tickforge-replay recover` cuts them)",
                d.offset, d.detail, health.tail_bytes
            ),
            Some(at) => format!(
                "CORRUPT at offset={}: {}; valid records resume at offset={at}; only the ticks before the damage are read (`tickforge-replay recover --repair` cuts the file there)",
                d.offset, d.detail
            ),
        },
    }
}

/// Read a whole file and summarise it.
pub fn inspect(path: &Path) -> Result<Inspection, ToolError> {
    let mut reader = ReplayReader::open(path)?;
    let header = reader.header().clone();
    let index = reader.index().clone();
    let mut players = BTreeMap::new();
    let mut events_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejections_by_rule: BTreeMap<String, u64> = BTreeMap::new();
    for tick in reader.ticks()? {
        let tick = tick?;
        for event in &tick.events {
            *events_by_kind.entry(event.kind.name().into()).or_default() += 1;
            if let EventKind::PlayerJoined { player, name, .. } = &event.kind {
                players.insert(player.0, name.clone());
            }
        }
        for r in &tick.rejections {
            *rejections_by_rule
                .entry(r.rule.as_str().into())
                .or_default() += 1;
        }
    }
    let health = reader.health().clone();
    Ok(Inspection {
        file_bytes: health.file_len,
        ticks: index.last_tick.0,
        duration_s: index.last_tick.0 as f64 / f64::from(header.tick_rate_hz.max(1)),
        events: index.events,
        rejections: index.rejections,
        snapshots: index.snapshots.len(),
        last_seq: index.last_seq.0,
        players,
        events_by_kind,
        rejections_by_rule,
        clean_close: health.clean_close,
        damaged: health.damage.is_some(),
        health: describe_health(&health),
        header,
    })
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Verified {
    pub ticks: u64,
    pub events: u64,
    pub snapshots_checked: u64,
    pub health: Health,
}

/// Re-simulate every whole tick of `path` (a match of one of the reference games) and compare
/// it with what was recorded. `Ok(Err(d))` is a divergence; `Err` is a file that cannot be read
/// or re-simulated at all.
pub fn verify(
    path: &Path,
    progress: impl FnMut(Tick, Tick),
) -> Result<Result<Verified, Divergence>, ToolError> {
    verify_with(path, &tickforge_server::game::builtin(), progress)
}

/// [`verify`] a match of any of `games`.
pub fn verify_with(
    path: &Path,
    games: &Games,
    mut progress: impl FnMut(Tick, Tick),
) -> Result<Result<Verified, Divergence>, ToolError> {
    let mut reader = ReplayReader::open(path)?;
    let last = reader.index().last_tick;
    let mut replayer = Replayer::new(reader.header(), games)?;
    let mut verified = Verified {
        ticks: 0,
        events: 0,
        snapshots_checked: 0,
        health: reader.health().clone(),
    };
    for tick in reader.ticks()? {
        // A record that does not read in a file that was whole when opened is corruption.
        let tick = tick.map_err(|e| ToolError::Corrupt(e.to_string()))?;
        if let Err(d) = replayer.apply_tick(&tick) {
            return Ok(Err(d));
        }
        verified.ticks += 1;
        verified.events += tick.events.len() as u64;
        verified.snapshots_checked += u64::from(tick.snapshot.is_some());
        progress(tick.tick, last);
    }
    // Every tick the index promises must have been there to verify.
    let index = reader.index();
    if verified.ticks != index.last_tick.0 || verified.events != index.events {
        return Err(ToolError::Corrupt(format!(
            "{}: the index says the file holds {} ticks and {} events, but {} ticks and {} events could be read and verified",
            path.display(),
            index.last_tick.0,
            index.events,
            verified.ticks,
            verified.events
        )));
    }
    Ok(Ok(verified))
}

/// The complete world at the end of `tick`: restored from the latest snapshot at or before
/// it, then re-simulated forward (each tick checked as in [`verify`]).
pub fn seek(path: &Path, tick: Tick) -> Result<SimSnapshot, ToolError> {
    seek_with(path, tick, &tickforge_server::game::builtin())
}

/// [`seek`] in a match of any of `games`.
pub fn seek_with(path: &Path, tick: Tick, games: &Games) -> Result<SimSnapshot, ToolError> {
    Ok(tickforge_server::log::replay::seek(path, tick, games)?)
}

/// Where two replays first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Every tick both have is the same; `a_ticks` and `b_ticks` say how far each goes.
    Same {
        a_ticks: u64,
        b_ticks: u64,
    },
    Diverged {
        tick: Tick,
        how: Vec<String>,
    },
}

/// Compare two replays tick by tick.
pub fn diff(a: &Path, b: &Path) -> Result<(Vec<String>, DiffOutcome), ToolError> {
    let mut ra = ReplayReader::open(a)?;
    let mut rb = ReplayReader::open(b)?;
    let notes = header_differences(ra.header(), rb.header());
    let names = ra.header().hash_parts.clone();
    let (mut ta, mut tb) = (ra.ticks()?, rb.ticks()?);
    let (mut na, mut nb) = (0, 0);
    loop {
        match (ta.next().transpose()?, tb.next().transpose()?) {
            (Some(x), Some(y)) => {
                na += 1;
                nb += 1;
                let how = tick_differences(&x, &y, &names);
                if !how.is_empty() {
                    return Ok((notes, DiffOutcome::Diverged { tick: x.tick, how }));
                }
            }
            (Some(_), None) => na += 1 + ta.by_ref().count() as u64,
            (None, Some(_)) => nb += 1 + tb.by_ref().count() as u64,
            (None, None) => {
                return Ok((
                    notes,
                    DiffOutcome::Same {
                        a_ticks: na,
                        b_ticks: nb,
                    },
                ));
            }
        }
    }
}

fn header_differences(a: &ReplayHeader, b: &ReplayHeader) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what}: {x} vs {y}"));
        }
    };
    note("game", a.game.clone(), b.game.clone());
    note(
        "rules version",
        a.rules_version.to_string(),
        b.rules_version.to_string(),
    );
    note("match id", a.match_id.to_string(), b.match_id.to_string());
    note("seed", a.seed.to_string(), b.seed.to_string());
    note(
        "tick rate",
        a.tick_rate_hz.to_string(),
        b.tick_rate_hz.to_string(),
    );
    note(
        "config",
        format!("{:?}", a.config),
        format!("{:?}", b.config),
    );
    out
}

fn tick_differences(a: &TickRecords, b: &TickRecords, names: &[String]) -> Vec<String> {
    let mut how = Vec::new();
    if a.events != b.events {
        let at = a.events.iter().zip(&b.events).position(|(x, y)| x != y);
        match at {
            Some(i) => how.push(format!(
                "event seq {}: A has {}, B has {}",
                a.events[i].seq.0,
                event_text(&a.events[i]),
                event_text(&b.events[i])
            )),
            None => how.push(format!(
                "A has {} events in this tick, B has {}",
                a.events.len(),
                b.events.len()
            )),
        }
    }
    if a.rejections != b.rejections {
        how.push(format!(
            "rejections differ: A has {}, B has {}",
            a.rejections.len(),
            b.rejections.len()
        ));
    }
    if a.end.hash != b.end.hash {
        let parts: Vec<_> = a
            .end
            .parts
            .iter()
            .zip(&b.end.parts)
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(i, _)| names.get(i).cloned().unwrap_or_else(|| format!("part {i}")))
            .collect();
        how.push(format!(
            "state hash A {} vs B {}; parts that differ: {}",
            a.end.hash,
            b.end.hash,
            parts.join(", ")
        ));
    }
    how
}

fn event_text(e: &Event) -> String {
    serde_json::to_string(&e.kind).unwrap_or_else(|_| format!("{:?}", e.kind))
}

/// Which records to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub from_tick: Option<Tick>,
    pub to_tick: Option<Tick>,
    /// Event kind names (`player_hit`, …); empty = all.
    pub kinds: Vec<String>,
    /// Also export rejected commands, as `{"rejected": …}` lines.
    pub rejections: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    Rejected(&'a RejectedCommand),
}

/// Write events (and, if asked, rejections) as JSON lines; returns how many lines.
pub fn export(path: &Path, filter: &ExportFilter, out: &mut impl Write) -> Result<u64, ToolError> {
    let mut reader = ReplayReader::open(path)?;
    let from = filter.from_tick.unwrap_or(Tick(1));
    let mut lines = 0;
    for tick in reader.ticks_near(from)? {
        let tick = tick?;
        if tick.tick < from {
            continue;
        }
        if filter.to_tick.is_some_and(|to| tick.tick > to) {
            break;
        }
        for event in &tick.events {
            if filter.kinds.is_empty() || filter.kinds.iter().any(|k| k == event.kind.name()) {
                serde_json::to_writer(&mut *out, event).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                lines += 1;
            }
        }
        if filter.rejections {
            for r in &tick.rejections {
                serde_json::to_writer(&mut *out, &Line::Rejected(r))
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                lines += 1;
            }
        }
    }
    Ok(lines)
}

/// The header and index of a file, without reading its ticks.
pub fn summary(path: &Path) -> Result<(ReplayHeader, ReplayIndex, Health), ToolError> {
    let reader = ReplayReader::open(path)?;
    Ok((
        reader.header().clone(),
        reader.index().clone(),
        reader.health().clone(),
    ))
}

/// The ids of players who joined, for messages.
pub fn player_label(id: u32, players: &BTreeMap<u32, String>) -> String {
    match players.get(&id) {
        Some(name) => format!("{} ({name})", PlayerId(id)),
        None => PlayerId(id).to_string(),
    }
}
