//! What the query API answers, as data (serialized to JSON as documented in docs/QUERIES.md),
//! and its parameters, each checked with a message that names it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::PlayerLine;

/// The largest page any list query returns.
pub const MAX_LIMIT: u32 = 1000;
/// A page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Timeline frames per page when `frames` is not given.
pub const DEFAULT_FRAMES: u32 = 100;

const DAY_MS: u64 = 86_400_000;

/// A bad query parameter: the message names it and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

/// Read a page size.
pub fn limit(raw: Option<&str>) -> Result<u32, BadQuery> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(BadQuery(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}, not {raw:?}"
        ))),
    }
}

/// Read an unsigned number parameter called `name`.
pub fn number(name: &str, raw: Option<&str>) -> Result<Option<u64>, BadQuery> {
    raw.map(|raw| {
        raw.parse::<u64>()
            .map_err(|_| BadQuery(format!("{name} must be a whole number, not {raw:?}")))
    })
    .transpose()
}

/// A leaderboard's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    All,
    /// The UTC day.
    Day,
    /// The ISO week (from Monday 00:00 UTC).
    Week,
}

impl Period {
    pub fn parse(raw: Option<&str>) -> Result<Period, BadQuery> {
        match raw.unwrap_or("all") {
            "all" => Ok(Period::All),
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            other => Err(BadQuery(format!(
                "period must be all, day or week, not {other:?}"
            ))),
        }
    }

    /// Every period, as kept in the standings.
    pub const ALL: [Period; 3] = [Period::All, Period::Day, Period::Week];

    /// Its name in the standings table and in queries.
    pub fn name(self) -> &'static str {
        match self {
            Period::All => "all",
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// The span `[from, to)` in Unix milliseconds of the period holding `at`.
    pub fn span(self, at_unix_ms: u64) -> (u64, u64) {
        let day = at_unix_ms / DAY_MS;
        match self {
            Period::All => (0, i64::MAX as u64),
            Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
            Period::Week => {
                // 1970-01-01 was a Thursday: three days after a Monday.
                let monday = day - (day + 3) % 7;
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
        }
    }
}

/// Totals of a player's lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub matches: u64,
    pub wins: u64,
    pub kills: u64,
    pub deaths: u64,
    pub damage_dealt: u64,
    pub damage_taken: u64,
    pub shots: u64,
    pub hits: u64,
    /// hits / shots; `null` before the first shot.
    pub accuracy: Option<f64>,
    /// Milliseconds in matches, on the matches' clocks.
    pub time_played_ms: u64,
}

impl Totals {
    pub fn finish(mut self) -> Totals {
        self.accuracy = (self.shots > 0).then(|| self.hits as f64 / self.shots as f64);
        self
    }
}

/// `GET /players/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Career {
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// The same totals per game, by name.
    pub games: BTreeMap<String, Totals>,
    /// The latest matches, newest first.
    pub recent: Vec<RecentMatch>,
}

/// A player's line in one of their recent matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentMatch {
    pub match_id: u64,
    pub game: String,
    pub ended: bool,
    pub won: bool,
    pub kills: u64,
    pub deaths: u64,
    pub damage_dealt: u64,
    pub created_at_unix_ms: u64,
}

/// `GET /leaderboard`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub game: String,
    pub period: Period,
    pub from_unix_ms: u64,
    pub to_unix_ms: u64,
    pub entries: Vec<Standing>,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<u64>,
}

/// One place on a leaderboard. Ordered by wins, then kills, then fewest deaths, then fewest
/// matches, then name (byte order): every place is distinct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub rank: u64,
    pub name: String,
    pub wins: u64,
    pub kills: u64,
    pub deaths: u64,
    pub matches: u64,
}

/// `GET /matches/{id}/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub match_id: u64,
    pub game: String,
    pub tick_rate_hz: u32,
    pub created_at_unix_ms: u64,
    pub state: &'static str,
    pub duration_ticks: u64,
    pub duration_ms: u64,
    /// `null` while the match runs.
    pub result: Option<MatchResult>,
    pub players: Vec<SummaryPlayer>,
    pub events: u64,
    pub rejections: u64,
    pub event_counts: BTreeMap<String, u64>,
    /// How far the projection has got: the last tick and seq applied.
    pub projected_tick: u64,
    pub projected_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchResult {
    pub reason: String,
    pub winner: Option<String>,
    pub ended_at_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryPlayer {
    pub player: u32,
    pub name: String,
    pub joined_tick: u64,
    pub left_tick: Option<u64>,
    pub kills: u64,
    pub deaths: u64,
    pub damage_dealt: u64,
    pub damage_taken: u64,
    pub shots: u64,
    pub hits: u64,
    pub accuracy: Option<f64>,
    pub time_played_ms: u64,
    pub won: bool,
}

impl SummaryPlayer {
    pub fn new(id: u32, p: &PlayerLine, played_ms: u64) -> SummaryPlayer {
        SummaryPlayer {
            player: id,
            name: p.name.clone(),
            joined_tick: p.joined_tick,
            left_tick: p.left_tick,
            kills: p.kills,
            deaths: p.deaths,
            damage_dealt: p.damage_dealt,
            damage_taken: p.damage_taken,
            shots: p.shots,
            hits: p.hits,
            accuracy: (p.shots > 0).then(|| p.hits as f64 / p.shots as f64),
            time_played_ms: played_ms,
            won: p.won,
        }
    }
}

/// `GET /matches/{id}/timeline`: frames every `interval_ticks`, each with every player's
/// state at the end of its tick and the events since the frame before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub match_id: u64,
    pub interval_ticks: u64,
    pub tick_rate_hz: u32,
    pub frames: Vec<Frame>,
    /// `from_tick` of the next page, if there is one.
    pub next_from_tick: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    pub tick: u64,
    /// Since the match began.
    pub timestamp_ms: u64,
    /// By player id.
    pub players: BTreeMap<u32, FramePlayer>,
    /// The events of the ticks after the previous frame, up to and including this one.
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FramePlayer {
    pub name: String,
    pub kills: u64,
    pub deaths: u64,
    pub damage_dealt: u64,
    pub damage_taken: u64,
    pub shots: u64,
    pub hits: u64,
    pub alive: bool,
}

impl From<&PlayerLine> for FramePlayer {
    fn from(p: &PlayerLine) -> FramePlayer {
        FramePlayer {
            name: p.name.clone(),
            kills: p.kills,
            deaths: p.deaths,
            damage_dealt: p.damage_dealt,
            damage_taken: p.damage_taken,
            shots: p.shots,
            hits: p.hits,
            alive: p.alive,
        }
    }
}

/// `GET /rejections` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectionFilter {
    pub player: Option<String>,
    pub rule: Option<String>,
    pub match_id: Option<u64>,
    pub from_unix_ms: Option<u64>,
    pub to_unix_ms: Option<u64>,
    pub limit: u32,
    pub offset: u64,
}

/// One refused command of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub match_id: u64,
    pub tick: u64,
    pub player: u32,
    pub name: Option<String>,
    pub command_id: u32,
    pub rule: String,
    pub detail: String,
    pub command: serde_json::Value,
    pub at_unix_ms: u64,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_offset: Option<u64>,
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dead {
    pub match_id: u64,
    pub seq: u64,
    pub tick: u64,
    pub kind: String,
    pub reason: String,
    pub event: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_midnight_and_on_monday() {
        // 2026-12-02 (a Wednesday) 11:00 UTC.
        let at = 1_796_209_200_000;
        let (from, to) = Period::Day.span(at);
        assert_eq!((from, to - from), (1_796_169_600_000, DAY_MS));
        // Monday 2026-11-30.
        let (from, to) = Period::Week.span(at);
        assert_eq!(
            (from, to - from),
            (1_796_169_600_000 - 2 * DAY_MS, 7 * DAY_MS)
        );
        assert!(limit(Some("0")).is_err() && limit(Some("1001")).is_err());
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert!(
            Period::parse(Some("month"))
                .unwrap_err()
                .0
                .contains("all, day or week")
        );
    }
}
