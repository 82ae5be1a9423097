//! The embedded store: one SQLite file (in the data directory by default), in WAL mode, so
//! queries read while the projector writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::model::MatchModel;
use crate::query::{
    Career, Dead, Leaderboard, MatchResult, Page, Period, RecentMatch, Rejected, RejectionFilter,
    Standing, Summary, SummaryPlayer, Timeline, Totals,
};
use crate::store::{MatchCommit, Queries, SCHEMA_VERSION, Store, StoreError};
use crate::timeline::{self, StoredEvent};

/// The tables, the same SQL as on PostgreSQL (integers are BIGINT, flags 0 or 1).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tf_schema (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS matches (
    match_id BIGINT PRIMARY KEY,
    game TEXT NOT NULL,
    tick_rate_hz BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_tick BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    duration_ticks BIGINT NOT NULL,
    ended BIGINT NOT NULL,
    ended_at_ms BIGINT,
    end_reason TEXT,
    winner TEXT,
    events BIGINT NOT NULL,
    rejections BIGINT NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS match_players (
    match_id BIGINT NOT NULL,
    player BIGINT NOT NULL,
    name TEXT NOT NULL,
    game TEXT NOT NULL,
    ended BIGINT NOT NULL,
    ended_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    joined_tick BIGINT NOT NULL,
    left_tick BIGINT,
    played_ms BIGINT NOT NULL,
    kills BIGINT NOT NULL,
    deaths BIGINT NOT NULL,
    damage_dealt BIGINT NOT NULL,
    damage_taken BIGINT NOT NULL,
    shots BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    won BIGINT NOT NULL,
    PRIMARY KEY (match_id, player)
);
CREATE INDEX IF NOT EXISTS match_players_by_name ON match_players (name, created_at_ms);
CREATE INDEX IF NOT EXISTS match_players_standing ON match_players (name, game, ended, ended_at_ms);
CREATE TABLE IF NOT EXISTS standings (
    game TEXT NOT NULL,
    period TEXT NOT NULL,
    starts_ms BIGINT NOT NULL,
    name TEXT NOT NULL,
    wins BIGINT NOT NULL,
    kills BIGINT NOT NULL,
    deaths BIGINT NOT NULL,
    matches BIGINT NOT NULL,
    PRIMARY KEY (game, period, starts_ms, name)
);
CREATE INDEX IF NOT EXISTS standings_in_order ON standings
    (game, period, starts_ms, wins DESC, kills DESC, deaths, matches, name);
CREATE TABLE IF NOT EXISTS event_counts (
    match_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (match_id, kind)
);
CREATE TABLE IF NOT EXISTS events (
    match_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    tick BIGINT NOT NULL,
    kind TEXT NOT NULL,
    player BIGINT,
    body TEXT NOT NULL,
    PRIMARY KEY (match_id, seq)
);
CREATE TABLE IF NOT EXISTS rejections (
    match_id BIGINT NOT NULL,
    tick BIGINT NOT NULL,
    ord BIGINT NOT NULL,
    player BIGINT NOT NULL,
    name TEXT,
    command_id BIGINT NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    command TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (match_id, tick, ord)
);
CREATE INDEX IF NOT EXISTS rejections_by_time ON rejections (at_ms);
CREATE INDEX IF NOT EXISTS rejections_by_name ON rejections (name, at_ms);
CREATE INDEX IF NOT EXISTS rejections_by_rule ON rejections (rule, at_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    match_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    tick BIGINT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (match_id, seq, kind)
);
";

/// The tables a reset drops, in order.
pub const TABLES: &[&str] = &[
    "standings",
    "dead_letters",
    "rejections",
    "events",
    "event_counts",
    "match_players",
    "matches",
    "tf_schema",
];

/// A read model database in one SQLite file.
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    conn: Connection,
}

fn err(doing: &str, path: &Path) -> impl Fn(rusqlite::Error) -> StoreError {
    let doing = format!("{doing} {}", path.display());
    move |e| {
        // Busy, locked, a full disk or a failing device may pass: tried again later.
        let transient = matches!(
            e.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
            )
        );
        StoreError::new(doing.clone(), e, transient)
    }
}

/// SQLite integers are signed: read models' counters stay far below 2^63.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Sqlite {
    /// Open (creating if need be) the database at `path` for the projector. A database of
    /// another schema version is refused with what to do.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path).map_err(err("opening", path))?;
        let store = Sqlite::configure(path, conn)?;
        store.create()?;
        Ok(store)
    }

    /// Open the database at `path` for queries only (it must exist).
    pub fn open_read_only(path: &Path) -> Result<Sqlite, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err("opening", path))?;
        Sqlite::configure(path, conn)
    }

    fn configure(path: &Path, conn: Connection) -> Result<Sqlite, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err("configuring", path))?;
        // WAL: readers never wait for the writer. NORMAL: a commit survives the process's
        // death (kill -9); after a power loss the last commits may be gone, and are
        // projected again from the log, checkpoint and rows together.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(err("configuring", path))?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn create(&self) -> Result<(), StoreError> {
        let path = &self.path;
        self.conn
            .execute_batch(SCHEMA)
            .map_err(err("creating the tables of", path))?;
        let version: Option<i64> = self
            .conn
            .query_row(
                "SELECT version FROM tf_schema WHERE name = 'read_models'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the schema version of", path))?;
        match version {
            None => {
                self.conn
                    .execute(
                        "INSERT INTO tf_schema (name, version) VALUES ('read_models', ?1)",
                        [i64::from(SCHEMA_VERSION)],
                    )
                    .map_err(err("writing the schema version of", path))?;
                Ok(())
            }
            Some(v) if v == i64::from(SCHEMA_VERSION) => Ok(()),
            Some(v) => Err(StoreError::new(
                format!("opening {}", path.display()),
                format!(
                    "its read models are schema version {v}, this build's are {SCHEMA_VERSION}: \
                     rebuild them with `tickforge-replay project DATA_DIR --db {} --rebuild`",
                    path.display()
                ),
                false,
            )),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_match(tx: &Transaction<'_>, c: &MatchCommit<'_>) -> rusqlite::Result<()> {
        let m = c.model;
        let id = i(m.match_id);
        let model = serde_json::to_string(m).unwrap_or_default();
        let ended_at = m.ended_at_unix_ms().map(i);
        tx.prepare_cached(
            "INSERT INTO matches (match_id, game, tick_rate_hz, created_at_ms, last_tick, last_seq,
                duration_ticks, ended, ended_at_ms, end_reason, winner, events, rejections, model)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (match_id) DO UPDATE SET last_tick = excluded.last_tick,
                last_seq = excluded.last_seq, duration_ticks = excluded.duration_ticks,
                ended = excluded.ended, ended_at_ms = excluded.ended_at_ms,
                end_reason = excluded.end_reason, winner = excluded.winner,
                events = excluded.events, rejections = excluded.rejections,
                model = excluded.model",
        )?
        .execute(params![
            id,
            m.game,
            i64::from(m.tick_rate_hz),
            i(m.created_at_unix_ms),
            i(m.last_tick),
            i(m.last_seq),
            i(m.duration_ticks()),
            i64::from(m.ended.is_some()),
            ended_at,
            m.ended.as_ref().map(|e| reason_name(e.reason)),
            m.winner_name(),
            i(m.events),
            i(m.rejections),
            model,
        ])?;
        let mut player = tx.prepare_cached(
            "INSERT INTO match_players (match_id, player, name, game, ended, ended_at_ms,
                created_at_ms, joined_tick, left_tick, played_ms, kills, deaths, damage_dealt,
                damage_taken, shots, hits, won)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT (match_id, player) DO UPDATE SET ended = excluded.ended,
                ended_at_ms = excluded.ended_at_ms, left_tick = excluded.left_tick,
                played_ms = excluded.played_ms, kills = excluded.kills,
                deaths = excluded.deaths, damage_dealt = excluded.damage_dealt,
                damage_taken = excluded.damage_taken, shots = excluded.shots,
                hits = excluded.hits, won = excluded.won",
        )?;
        let last = m.duration_ticks();
        for (&pid, p) in &m.players {
            let played = p.ticks_played(last).saturating_mul(1000) / u64::from(m.tick_rate_hz);
            player.execute(params![
                id,
                i64::from(pid),
                p.name,
                m.game,
                i64::from(m.ended.is_some()),
                ended_at,
                i(m.created_at_unix_ms),
                i(p.joined_tick),
                p.left_tick.map(i),
                i(played),
                i(p.kills),
                i(p.deaths),
                i(p.damage_dealt),
                i(p.damage_taken),
                i(p.shots),
                i(p.hits),
                i64::from(p.won),
            ])?;
        }
        if let Some(ended_at) = m.ended_at_unix_ms() {
            Sqlite::write_standings(tx, m, ended_at)?;
        }
        let mut kind = tx.prepare_cached(
            "INSERT INTO event_counts (match_id, kind, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (match_id, kind) DO UPDATE SET count = excluded.count",
        )?;
        for (k, n) in &m.kinds {
            kind.execute(params![id, k, i(*n)])?;
        }
        let mut event = tx.prepare_cached(
            "INSERT INTO events (match_id, seq, tick, kind, player, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?;
        for e in &c.rows.events {
            event.execute(params![
                id,
                i(e.seq),
                i(e.tick),
                e.kind,
                e.player.map(i64::from),
                e.body
            ])?;
        }
        let mut rejection = tx.prepare_cached(
            "INSERT INTO rejections (match_id, tick, ord, player, name, command_id, rule, detail,
                command, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        )?;
        for r in &c.rows.rejections {
            rejection.execute(params![
                id,
                i(r.tick),
                i64::from(r.ord),
                i64::from(r.player),
                r.name,
                i64::from(r.command_id),
                r.rule,
                r.detail,
                r.command,
                i(r.at_unix_ms),
            ])?;
        }
        let mut dead = tx.prepare_cached(
            "INSERT INTO dead_letters (match_id, seq, kind, tick, reason, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?;
        for d in &c.rows.dead_letters {
            dead.execute(params![id, i(d.seq), d.kind, i(d.tick), d.reason, d.body])?;
        }
        Ok(())
    }

    /// The standings of an ended match's players, in each period holding its end: each
    /// recomputed from their lines (an absolute value, so writing it twice changes nothing).
    fn write_standings(
        tx: &Transaction<'_>,
        m: &MatchModel,
        ended_at: u64,
    ) -> rusqlite::Result<()> {
        let mut standing = tx.prepare_cached(
            "INSERT INTO standings (game, period, starts_ms, name, wins, kills, deaths, matches)
             SELECT ?1, ?2, ?3, ?4, COALESCE(SUM(won), 0), COALESCE(SUM(kills), 0),
                COALESCE(SUM(deaths), 0), COUNT(DISTINCT match_id)
             FROM match_players INDEXED BY match_players_standing
             WHERE game = ?1 AND name = ?4 AND ended = 1 AND ended_at_ms >= ?3 AND ended_at_ms < ?5
             ON CONFLICT (game, period, starts_ms, name) DO UPDATE SET wins = excluded.wins,
                kills = excluded.kills, deaths = excluded.deaths, matches = excluded.matches",
        )?;
        let names: std::collections::BTreeSet<&str> =
            m.players.values().map(|p| p.name.as_str()).collect();
        for period in Period::ALL {
            let (from, to) = period.span(ended_at);
            for name in &names {
                standing.execute(params![m.game, period.name(), i(from), name, i(to)])?;
            }
        }
        Ok(())
    }

    fn load_model(&self, match_id: u64) -> Result<Option<MatchModel>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT model FROM matches WHERE match_id = ?1",
                [i(match_id)],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading a match from", &self.path))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                StoreError::new(
                    format!("reading match {match_id} from {}", self.path.display()),
                    format!("its model does not parse ({e}): rebuild the read models"),
                    false,
                )
            })
        })
        .transpose()
    }
}

fn reason_name(reason: tickforge_protocol::EndReason) -> &'static str {
    match reason {
        tickforge_protocol::EndReason::ScoreLimit => "score_limit",
        tickforge_protocol::EndReason::TimeLimit => "time_limit",
    }
}

impl Store for Sqlite {
    fn load(&mut self, match_id: u64) -> Result<Option<MatchModel>, StoreError> {
        self.load_model(match_id)
    }

    fn commit(&mut self, commits: &[MatchCommit<'_>]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(err("starting a transaction on", &path))?;
        for c in commits {
            Sqlite::write_match(&tx, c).map_err(err("writing read models to", &path))?;
        }
        tx.commit().map_err(err("committing to", &path))
    }

    fn reset(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let drops: String = TABLES
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {t};"))
            .collect();
        self.conn
            .execute_batch(&drops)
            .map_err(err("dropping the read models of", &path))?;
        self.create()
    }

    fn checkpoints(&mut self) -> Result<Vec<(u64, u64, u64)>, StoreError> {
        let path = self.path.clone();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT match_id, last_tick, last_seq FROM matches ORDER BY match_id")
            .map_err(err("reading checkpoints of", &path))?;
        let rows = stmt
            .query_map([], |r| Ok((u(r.get(0)?), u(r.get(1)?), u(r.get(2)?))))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err("reading checkpoints of", &path))?;
        Ok(rows)
    }
}

/// Sums of a player's lines, in the column order `totals` reads.
const TOTALS: &str = "COUNT(DISTINCT match_id), SUM(won), SUM(kills), SUM(deaths),
    SUM(damage_dealt), SUM(damage_taken), SUM(shots), SUM(hits), SUM(played_ms)";

fn totals(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<Totals> {
    let n = |k: usize| -> rusqlite::Result<u64> {
        Ok(u(r.get::<_, Option<i64>>(from + k)?.unwrap_or(0)))
    };
    Ok(Totals {
        matches: n(0)?,
        wins: n(1)?,
        kills: n(2)?,
        deaths: n(3)?,
        damage_dealt: n(4)?,
        damage_taken: n(5)?,
        shots: n(6)?,
        hits: n(7)?,
        accuracy: None,
        time_played_ms: n(8)?,
    }
    .finish())
}

fn next_offset(offset: u64, limit: u32, fetched: usize) -> Option<u64> {
    (fetched > limit as usize).then(|| offset + u64::from(limit))
}

impl Queries for Sqlite {
    fn career(&mut self, name: &str, recent: u32) -> Result<Option<Career>, StoreError> {
        let e = err("reading a player from", &self.path);
        let mut by_game = self
            .conn
            .prepare_cached(&format!(
                "SELECT game, {TOTALS} FROM match_players WHERE name = ?1 GROUP BY game ORDER BY game"
            ))
            .map_err(&e)?;
        let games: BTreeMap<String, Totals> = by_game
            .query_map([name], |r| Ok((r.get::<_, String>(0)?, totals(r, 1)?)))
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        if games.is_empty() {
            return Ok(None);
        }
        let all = self
            .conn
            .query_row(
                &format!("SELECT {TOTALS} FROM match_players WHERE name = ?1"),
                [name],
                |r| totals(r, 0),
            )
            .map_err(&e)?;
        let mut latest = self
            .conn
            .prepare_cached(
                "SELECT match_id, game, ended, MAX(won), SUM(kills), SUM(deaths),
                    SUM(damage_dealt), created_at_ms
                 FROM match_players WHERE name = ?1 GROUP BY match_id, game, ended, created_at_ms
                 ORDER BY created_at_ms DESC, match_id DESC LIMIT ?2",
            )
            .map_err(&e)?;
        let recent = latest
            .query_map(params![name, i64::from(recent)], |r| {
                Ok(RecentMatch {
                    match_id: u(r.get(0)?),
                    game: r.get(1)?,
                    ended: r.get::<_, i64>(2)? != 0,
                    won: r.get::<_, i64>(3)? != 0,
                    kills: u(r.get(4)?),
                    deaths: u(r.get(5)?),
                    damage_dealt: u(r.get(6)?),
                    created_at_unix_ms: u(r.get(7)?),
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        Ok(Some(Career {
            name: name.to_string(),
            totals: all,
            games,
            recent,
        }))
    }

    fn leaderboard(
        &mut self,
        game: &str,
        period: Period,
        at_unix_ms: u64,
        limit: u32,
        offset: u64,
    ) -> Result<Leaderboard, StoreError> {
        let e = err("reading a leaderboard from", &self.path);
        let (from, to) = period.span(at_unix_ms);
        // Kept at each match's end, in order: a page is read off the index.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, wins, kills, deaths, matches FROM standings
                 WHERE game = ?1 AND period = ?2 AND starts_ms = ?3
                 ORDER BY wins DESC, kills DESC, deaths ASC, matches ASC, name ASC
                 LIMIT ?4 OFFSET ?5",
            )
            .map_err(&e)?;
        let mut entries: Vec<Standing> = stmt
            .query_map(
                params![
                    game,
                    period.name(),
                    i(from),
                    i64::from(limit) + 1,
                    i(offset)
                ],
                |r| {
                    Ok(Standing {
                        rank: 0,
                        name: r.get(0)?,
                        wins: u(r.get(1)?),
                        kills: u(r.get(2)?),
                        deaths: u(r.get(3)?),
                        matches: u(r.get(4)?),
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        let next = next_offset(offset, limit, entries.len());
        entries.truncate(limit as usize);
        for (n, s) in entries.iter_mut().enumerate() {
            s.rank = offset + n as u64 + 1;
        }
        Ok(Leaderboard {
            game: game.to_string(),
            period,
            from_unix_ms: from,
            to_unix_ms: to,
            entries,
            next_offset: next,
        })
    }

    fn summary(&mut self, match_id: u64) -> Result<Option<Summary>, StoreError> {
        let Some(m) = self.load_model(match_id)? else {
            return Ok(None);
        };
        let rate = u64::from(m.tick_rate_hz);
        let duration = m.duration_ticks();
        let players = m
            .players
            .iter()
            .map(|(&id, p)| {
                SummaryPlayer::new(id, p, p.ticks_played(duration).saturating_mul(1000) / rate)
            })
            .collect();
        Ok(Some(Summary {
            match_id: m.match_id,
            game: m.game.clone(),
            tick_rate_hz: m.tick_rate_hz,
            created_at_unix_ms: m.created_at_unix_ms,
            state: if m.ended.is_some() {
                "ended"
            } else {
                "running"
            },
            duration_ticks: duration,
            duration_ms: duration.saturating_mul(1000) / rate,
            result: m.ended.as_ref().map(|e| MatchResult {
                reason: reason_name(e.reason).to_string(),
                winner: m.winner_name().map(str::to_string),
                ended_at_unix_ms: m.time_of(e.tick),
            }),
            players,
            events: m.events,
            rejections: m.rejections,
            event_counts: m.kinds.clone(),
            projected_tick: m.last_tick,
            projected_seq: m.last_seq,
        }))
    }

    fn timeline(
        &mut self,
        match_id: u64,
        interval_ticks: u64,
        from_tick: u64,
        frames: u32,
    ) -> Result<Option<Timeline>, StoreError> {
        let Some(m) = self.load_model(match_id)? else {
            return Ok(None);
        };
        let interval = interval_ticks.max(1);
        let end = timeline::page_end(&m, interval, from_tick, frames);
        let e = err("reading a timeline from", &self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, tick, kind, player, body FROM events
                 WHERE match_id = ?1 AND tick <= ?2 ORDER BY seq",
            )
            .map_err(&e)?;
        let events: Vec<StoredEvent> = stmt
            .query_map(params![i(match_id), i(end)], |r| {
                Ok(StoredEvent {
                    seq: u(r.get(0)?),
                    tick: u(r.get(1)?),
                    kind: r.get(2)?,
                    player: r.get::<_, Option<i64>>(3)?.map(|p| p as u32),
                    body: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        Ok(Some(timeline::build(
            &m, interval, from_tick, frames, events,
        )))
    }

    fn rejections(&mut self, f: &RejectionFilter) -> Result<Page<Rejected>, StoreError> {
        let e = err("reading rejections from", &self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT match_id, tick, player, name, command_id, rule, detail, command, at_ms
                 FROM rejections
                 WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR rule = ?2)
                   AND (?3 IS NULL OR match_id = ?3) AND at_ms >= ?4 AND at_ms < ?5
                 ORDER BY at_ms, match_id, tick, ord LIMIT ?6 OFFSET ?7",
            )
            .map_err(&e)?;
        let mut items: Vec<Rejected> = stmt
            .query_map(
                params![
                    f.player,
                    f.rule,
                    f.match_id.map(i),
                    i(f.from_unix_ms.unwrap_or(0)),
                    i(f.to_unix_ms.unwrap_or(i64::MAX as u64)),
                    i64::from(f.limit) + 1,
                    i(f.offset),
                ],
                |r| {
                    Ok(Rejected {
                        match_id: u(r.get(0)?),
                        tick: u(r.get(1)?),
                        player: r.get::<_, i64>(2)? as u32,
                        name: r.get(3)?,
                        command_id: r.get::<_, i64>(4)? as u32,
                        rule: r.get(5)?,
                        detail: r.get(6)?,
                        command: serde_json::from_str(&r.get::<_, String>(7)?)
                            .unwrap_or(serde_json::Value::Null),
                        at_unix_ms: u(r.get(8)?),
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        let next = next_offset(f.offset, f.limit, items.len());
        items.truncate(f.limit as usize);
        Ok(Page {
            items,
            next_offset: next,
        })
    }

    fn dead_letters(
        &mut self,
        match_id: Option<u64>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<Dead>, StoreError> {
        let e = err("reading dead letters from", &self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT match_id, seq, tick, kind, reason, body FROM dead_letters
                 WHERE (?1 IS NULL OR match_id = ?1)
                 ORDER BY match_id, seq, kind LIMIT ?2 OFFSET ?3",
            )
            .map_err(&e)?;
        let mut items: Vec<Dead> = stmt
            .query_map(
                params![match_id.map(i), i64::from(limit) + 1, i(offset)],
                |r| {
                    Ok(Dead {
                        match_id: u(r.get(0)?),
                        seq: u(r.get(1)?),
                        tick: u(r.get(2)?),
                        kind: r.get(3)?,
                        reason: r.get(4)?,
                        event: serde_json::from_str(&r.get::<_, String>(5)?)
                            .unwrap_or(serde_json::Value::Null),
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&e)?;
        let next = next_offset(offset, limit, items.len());
        items.truncate(limit as usize);
        Ok(Page {
            items,
            next_offset: next,
        })
    }
}
