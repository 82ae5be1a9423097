//! The read models in SQL: the tables, and the [`SqlStore`] that writes and reads them on any
//! [`Database`] (SQLite or PostgreSQL). The SQL is written once: `?N` parameters (each
//! database's driver gets its own spelling) and only what both databases accept (`CAST`s
//! where PostgreSQL would otherwise guess a parameter's type or sum into `NUMERIC`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::blocks;
use crate::model::MatchModel;
use crate::query::{
    Career, Dead, Leaderboard, MatchResult, Page, Period, RecentMatch, Rejected, RejectionFilter,
    Standing, Summary, SummaryPlayer, Timeline, Totals,
};
use crate::store::{MatchCommit, Queries, SCHEMA_VERSION, Store, StoreError};
use crate::timeline;

/// The tables: integers are BIGINT, flags 0 or 1, JSON is TEXT.
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
CREATE TABLE IF NOT EXISTS event_blocks (
    match_id BIGINT NOT NULL,
    block BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    first_tick BIGINT NOT NULL,
    last_tick BIGINT NOT NULL,
    events BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (match_id, block)
);
CREATE TABLE IF NOT EXISTS rejection_blocks (
    match_id BIGINT NOT NULL,
    window_ms BIGINT NOT NULL,
    player BIGINT NOT NULL,
    name TEXT NOT NULL,
    rule TEXT NOT NULL,
    first_tick BIGINT NOT NULL,
    last_tick BIGINT NOT NULL,
    first_at_ms BIGINT NOT NULL,
    last_at_ms BIGINT NOT NULL,
    rejections BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (match_id, window_ms, player, name, rule)
);
CREATE INDEX IF NOT EXISTS rejection_blocks_by_time ON rejection_blocks (first_at_ms);
CREATE INDEX IF NOT EXISTS rejection_blocks_by_name ON rejection_blocks (name, first_at_ms);
CREATE INDEX IF NOT EXISTS rejection_blocks_by_rule ON rejection_blocks (rule, first_at_ms);
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

/// The tables, in the order a reset drops them.
pub const TABLES: &[&str] = &[
    "standings",
    "dead_letters",
    "rejection_blocks",
    "event_blocks",
    "event_counts",
    "match_players",
    "matches",
    "tf_schema",
];

/// Tables of earlier schema versions, dropped by a rebuild too.
pub const OLD_TABLES: &[&str] = &["rejections", "events"];

/// A parameter of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

/// Counters are unsigned; both databases' integers are signed, and read models' counters
/// stay far below 2^63.
impl From<u64> for Value<'_> {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One column of a row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A row read: its columns in the statement's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, k: usize) -> &Cell {
        self.0.get(k).unwrap_or(&Cell::Null)
    }

    /// An integer column; NULL (an empty sum) is 0.
    pub fn int(&self, k: usize) -> i64 {
        self.opt_int(k).unwrap_or(0)
    }

    pub fn opt_int(&self, k: usize) -> Option<i64> {
        match self.cell(k) {
            Cell::Int(v) => Some(*v),
            Cell::Text(t) => t.parse().ok(),
            Cell::Null => None,
        }
    }

    /// A counter column (negative values, which the store never writes, read as 0).
    pub fn count(&self, k: usize) -> u64 {
        u64::try_from(self.int(k)).unwrap_or(0)
    }

    pub fn flag(&self, k: usize) -> bool {
        self.int(k) != 0
    }

    pub fn text(&self, k: usize) -> String {
        self.opt_text(k).unwrap_or_default()
    }

    pub fn opt_text(&self, k: usize) -> Option<String> {
        match self.cell(k) {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(v) => Some(v.to_string()),
            Cell::Null => None,
        }
    }

    /// A JSON column (a stored event or command).
    pub fn json(&self, k: usize) -> serde_json::Value {
        serde_json::from_str(&self.text(k)).unwrap_or(serde_json::Value::Null)
    }
}

/// A database error: its message, and whether it may pass (the database is down, busy or
/// unreachable, the disk is full) so that the same work is tried again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub message: String,
    pub transient: bool,
}

/// A connection to a database that holds the read models.
pub trait Database: Send {
    /// Which database, for messages ("the SQLite file data/read-models.sqlite").
    fn describe(&self) -> &str;

    /// Run statements without parameters (the schema, a reset, a commit).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// Start a transaction that will write.
    fn begin(&mut self) -> Result<(), DbError>;

    /// Write for a bulk load (a rebuild): faster, at the price of what a power loss may take
    /// (a commit survives the process's death still). The default changes nothing.
    fn bulk(&mut self) -> Result<(), DbError> {
        Ok(())
    }

    /// Run one statement (prepared once per connection); the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, DbError>;

    /// Run one query (prepared once per connection); its rows.
    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, DbError>;
}

/// Where the read models are: a SQLite file, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL (or a `host=… dbname=…` string, with `postgres:`
    /// before it).
    Postgres(String),
}

impl Target {
    /// Read a `--read-db`/`--db` value: a PostgreSQL URL, or a SQLite file path.
    pub fn parse(raw: &str) -> Target {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Target::Postgres(raw.to_string())
        } else if let Some(conninfo) = raw.strip_prefix("postgres:") {
            Target::Postgres(conninfo.trim().to_string())
        } else {
            Target::Sqlite(PathBuf::from(raw))
        }
    }

    /// A relative SQLite path is taken in `dir`.
    pub fn in_dir(self, dir: &Path) -> Target {
        match self {
            Target::Sqlite(path) => Target::Sqlite(dir.join(path)),
            other => other,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }
}

impl fmt::Display for Target {
    /// Never shows a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "{}", path.display()),
            Target::Postgres(url) => f.write_str(&crate::postgres::redacted(url)),
        }
    }
}

/// One player's standing in one period, recomputed from their ended lines (read off
/// `match_players_standing`, by name and game).
pub(crate) const STANDING: &str = "
    INSERT INTO standings (game, period, starts_ms, name, wins, kills, deaths, matches)
    SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS BIGINT), CAST(?4 AS TEXT),
        CAST(COALESCE(SUM(won), 0) AS BIGINT), CAST(COALESCE(SUM(kills), 0) AS BIGINT),
        CAST(COALESCE(SUM(deaths), 0) AS BIGINT), COUNT(DISTINCT match_id)
    FROM match_players
    WHERE name = ?4 AND game = ?1 AND ended = 1 AND ended_at_ms >= ?3 AND ended_at_ms < ?5
    ON CONFLICT (game, period, starts_ms, name) DO UPDATE SET wins = excluded.wins,
        kills = excluded.kills, deaths = excluded.deaths, matches = excluded.matches";

/// The read models in a SQL database: what a projector writes and the queries read.
pub struct SqlStore {
    db: Box<dyn Database>,
    target: Target,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("db", &self.db.describe())
            .finish()
    }
}

/// The error of `doing` on `db`.
fn failed<'a>(doing: &'a str, db: &'a str) -> impl Fn(DbError) -> StoreError + 'a {
    move |e| StoreError::new(format!("{doing} {db}"), e.message, e.transient)
}

impl SqlStore {
    /// Open (creating the tables if need be) the read models at `target` for a projector. A
    /// database of another schema version is refused with what to do.
    pub fn open(target: &Target) -> Result<SqlStore, StoreError> {
        let mut store = SqlStore::connect(target, false)?;
        store.create()?;
        Ok(store)
    }

    /// Open the database at `target` with every read model dropped and the tables made
    /// again, empty, whatever schema version they were: a rebuild.
    pub fn open_emptied(target: &Target) -> Result<SqlStore, StoreError> {
        let mut store = SqlStore::connect(target, false)?;
        store.reset()?;
        Ok(store)
    }

    /// Open the read models at `target` for queries only (a SQLite file must exist).
    pub fn open_for_queries(target: &Target) -> Result<SqlStore, StoreError> {
        SqlStore::connect(target, true)
    }

    /// A connection to `target`, its tables as they are.
    fn connect(target: &Target, read_only: bool) -> Result<SqlStore, StoreError> {
        let db: Box<dyn Database> = match target {
            Target::Sqlite(path) if read_only => {
                Box::new(crate::sqlite::Sqlite::open_read_only(path)?)
            }
            Target::Sqlite(path) => Box::new(crate::sqlite::Sqlite::open(path)?),
            Target::Postgres(url) => Box::new(crate::postgres::Postgres::connect(url)?),
        };
        Ok(SqlStore {
            db,
            target: target.clone(),
        })
    }

    /// Write for a bulk load, such as `tickforge-replay project` (see [`Database::bulk`]).
    pub fn bulk(&mut self) -> Result<(), StoreError> {
        let db = self.db.describe().to_string();
        self.db
            .bulk()
            .map_err(failed("configuring a bulk load of", &db))
    }

    /// Which database, for messages.
    pub fn describe(&self) -> &str {
        self.db.describe()
    }

    /// The connection, for what the store does not say (tests dump tables through it).
    pub fn database(&mut self) -> &mut dyn Database {
        self.db.as_mut()
    }

    fn create(&mut self) -> Result<(), StoreError> {
        let target = &self.target;
        let db = self.db.describe().to_string();
        self.db
            .batch(SCHEMA)
            .map_err(failed("creating the tables of", &db))?;
        let rows = self
            .db
            .query(
                "SELECT version FROM tf_schema WHERE name = 'read_models'",
                &[],
            )
            .map_err(failed("reading the schema version of", &db))?;
        match rows.first().map(|r| r.int(0)) {
            None => {
                self.db
                    .execute(
                        "INSERT INTO tf_schema (name, version) VALUES ('read_models', ?1)",
                        &[SCHEMA_VERSION.into()],
                    )
                    .map_err(failed("writing the schema version of", &db))?;
                Ok(())
            }
            Some(v) if v == i64::from(SCHEMA_VERSION) => Ok(()),
            Some(v) => Err(StoreError::new(
                format!("opening {db}"),
                format!(
                    "its read models are schema version {v}, this build's are {SCHEMA_VERSION}: \
                     rebuild them with `tickforge-replay project DATA_DIR --db {target} --rebuild`"
                ),
                false,
            )),
        }
    }

    fn write_match(&mut self, c: &MatchCommit<'_>) -> Result<(), DbError> {
        let m = c.model;
        let db = &mut self.db;
        let id = Value::from(m.match_id);
        let model = serde_json::to_string(m).unwrap_or_default();
        let ended = Value::from(m.ended.is_some());
        let ended_at = Value::from(m.ended_at_unix_ms());
        db.execute(
            "INSERT INTO matches (match_id, game, tick_rate_hz, created_at_ms, last_tick, last_seq,
                duration_ticks, ended, ended_at_ms, end_reason, winner, events, rejections, model)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (match_id) DO UPDATE SET last_tick = excluded.last_tick,
                last_seq = excluded.last_seq, duration_ticks = excluded.duration_ticks,
                ended = excluded.ended, ended_at_ms = excluded.ended_at_ms,
                end_reason = excluded.end_reason, winner = excluded.winner,
                events = excluded.events, rejections = excluded.rejections,
                model = excluded.model",
            &[
                id,
                m.game.as_str().into(),
                m.tick_rate_hz.into(),
                m.created_at_unix_ms.into(),
                m.last_tick.into(),
                m.last_seq.into(),
                m.duration_ticks().into(),
                ended,
                ended_at,
                m.ended.as_ref().map(|e| reason_name(e.reason)).into(),
                m.winner_name().into(),
                m.events.into(),
                m.rejections.into(),
                model.as_str().into(),
            ],
        )?;
        let last = m.duration_ticks();
        let mut values: Vec<Value<'_>> = Vec::new();
        let played: Vec<u64> = m
            .players
            .values()
            .map(|p| p.ticks_played(last).saturating_mul(1000) / u64::from(m.tick_rate_hz))
            .collect();
        for ((&pid, p), played) in m.players.iter().zip(&played) {
            values.extend([
                id,
                pid.into(),
                p.name.as_str().into(),
                m.game.as_str().into(),
                ended,
                ended_at,
                m.created_at_unix_ms.into(),
                p.joined_tick.into(),
                p.left_tick.into(),
                (*played).into(),
                p.kills.into(),
                p.deaths.into(),
                p.damage_dealt.into(),
                p.damage_taken.into(),
                p.shots.into(),
                p.hits.into(),
                p.won.into(),
            ]);
        }
        insert_rows(
            db.as_mut(),
            "INSERT INTO match_players (match_id, player, name, game, ended, ended_at_ms,
                created_at_ms, joined_tick, left_tick, played_ms, kills, deaths, damage_dealt,
                damage_taken, shots, hits, won)",
            17,
            "ON CONFLICT (match_id, player) DO UPDATE SET ended = excluded.ended,
                ended_at_ms = excluded.ended_at_ms, left_tick = excluded.left_tick,
                played_ms = excluded.played_ms, kills = excluded.kills,
                deaths = excluded.deaths, damage_dealt = excluded.damage_dealt,
                damage_taken = excluded.damage_taken, shots = excluded.shots,
                hits = excluded.hits, won = excluded.won",
            &mut values,
        )?;
        if let Some(ended_at) = m.ended_at_unix_ms() {
            SqlStore::write_standings(db.as_mut(), m, ended_at)?;
        }
        for (kind, n) in &m.kinds {
            values.extend([id, kind.into(), (*n).into()]);
        }
        insert_rows(
            db.as_mut(),
            "INSERT INTO event_counts (match_id, kind, count)",
            3,
            "ON CONFLICT (match_id, kind) DO UPDATE SET count = excluded.count",
            &mut values,
        )?;
        let events = blocks::event_blocks(&c.rows.events);
        for b in &events {
            values.extend([
                id,
                b.block.into(),
                b.first_seq.into(),
                b.last_seq.into(),
                b.first_tick.into(),
                b.last_tick.into(),
                b.events.into(),
                b.body.as_str().into(),
            ]);
        }
        // A block's new lines are appended to it; the guard keeps a part already appended
        // from being appended twice.
        insert_rows(
            db.as_mut(),
            "INSERT INTO event_blocks (match_id, block, first_seq, last_seq, first_tick,
                last_tick, events, body)",
            8,
            "ON CONFLICT (match_id, block) DO UPDATE SET last_seq = excluded.last_seq,
                last_tick = excluded.last_tick, events = event_blocks.events + excluded.events,
                body = event_blocks.body || excluded.body
             WHERE event_blocks.last_seq < excluded.first_seq",
            &mut values,
        )?;
        let rejections = blocks::rejection_blocks(&c.rows.rejections);
        for b in &rejections {
            values.extend([
                id,
                b.key.window_ms.into(),
                b.key.player.into(),
                b.key.name.as_str().into(),
                b.key.rule.as_str().into(),
                b.first_tick.into(),
                b.last_tick.into(),
                b.first_at_ms.into(),
                b.last_at_ms.into(),
                b.rejections.into(),
                b.body.as_str().into(),
            ]);
        }
        // A tick's rejections are committed together: a part of a later tick is new.
        insert_rows(
            db.as_mut(),
            "INSERT INTO rejection_blocks (match_id, window_ms, player, name, rule, first_tick,
                last_tick, first_at_ms, last_at_ms, rejections, body)",
            11,
            "ON CONFLICT (match_id, window_ms, player, name, rule) DO UPDATE SET
                last_tick = excluded.last_tick, last_at_ms = excluded.last_at_ms,
                rejections = rejection_blocks.rejections + excluded.rejections,
                body = rejection_blocks.body || excluded.body
             WHERE rejection_blocks.last_tick < excluded.first_tick",
            &mut values,
        )?;
        for d in &c.rows.dead_letters {
            values.extend([
                id,
                d.seq.into(),
                d.kind.as_str().into(),
                d.tick.into(),
                d.reason.as_str().into(),
                d.body.as_str().into(),
            ]);
        }
        insert_rows(
            db.as_mut(),
            "INSERT INTO dead_letters (match_id, seq, kind, tick, reason, body)",
            6,
            "ON CONFLICT DO NOTHING",
            &mut values,
        )
    }

    /// The standings of an ended match's players, in each period holding its end: each
    /// recomputed from their lines (an absolute value, so writing it twice changes nothing).
    /// The lines are read off `match_players_standing` (by name and game).
    fn write_standings(
        db: &mut dyn Database,
        m: &MatchModel,
        ended_at: u64,
    ) -> Result<(), DbError> {
        let names: BTreeSet<&str> = m.players.values().map(|p| p.name.as_str()).collect();
        for period in Period::ALL {
            let (from, to) = period.span(ended_at);
            for name in &names {
                db.execute(
                    STANDING,
                    &[
                        m.game.as_str().into(),
                        period.name().into(),
                        from.into(),
                        (*name).into(),
                        to.into(),
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn load_model(&mut self, match_id: u64) -> Result<Option<MatchModel>, StoreError> {
        let db = self.db.describe().to_string();
        let rows = self
            .db
            .query(
                "SELECT model FROM matches WHERE match_id = ?1",
                &[match_id.into()],
            )
            .map_err(failed("reading a match from", &db))?;
        rows.first()
            .map(|r| {
                serde_json::from_str(&r.text(0)).map_err(|e| {
                    StoreError::new(
                        format!("reading match {match_id} from {db}"),
                        format!("its model does not parse ({e}): rebuild the read models"),
                        false,
                    )
                })
            })
            .transpose()
    }

    /// Run a query, its error saying what was read.
    fn read(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Value<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        let db = self.db.describe().to_string();
        self.db
            .query(sql, params)
            .map_err(failed(&format!("reading {what} from"), &db))
    }
}

/// Rows one multi-row statement inserts at most: a round trip (PostgreSQL) and a statement
/// (SQLite) per this many rows instead of per row. 200 rows of the widest table are 3,400
/// parameters, far below either database's limit.
const ROWS_PER_INSERT: usize = 200;

/// Rejection blocks one read of the audit trail takes.
const REJECTION_BLOCKS_PER_READ: u64 = 256;

/// Insert the rows of `values` (`columns` values each, in order), `ROWS_PER_INSERT` to a
/// statement: `head VALUES (…), (…) tail`. `values` is left empty.
fn insert_rows<'a>(
    db: &mut dyn Database,
    head: &str,
    columns: usize,
    tail: &str,
    values: &mut Vec<Value<'a>>,
) -> Result<(), DbError> {
    for chunk in values.chunks(columns * ROWS_PER_INSERT) {
        let rows = chunk.len() / columns;
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('?');
                sql.push_str(&(r * columns + c + 1).to_string());
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        db.execute(&sql, chunk)?;
    }
    values.clear();
    Ok(())
}

fn reason_name(reason: tickforge_protocol::EndReason) -> &'static str {
    match reason {
        tickforge_protocol::EndReason::ScoreLimit => "score_limit",
        tickforge_protocol::EndReason::TimeLimit => "time_limit",
    }
}

impl Store for SqlStore {
    fn load(&mut self, match_id: u64) -> Result<Option<MatchModel>, StoreError> {
        self.load_model(match_id)
    }

    fn commit(&mut self, commits: &[MatchCommit<'_>]) -> Result<(), StoreError> {
        let db = self.db.describe().to_string();
        self.db
            .begin()
            .map_err(failed("starting a transaction on", &db))?;
        let written = commits
            .iter()
            .try_for_each(|c| self.write_match(c))
            .map_err(failed("writing read models to", &db))
            .and_then(|()| {
                self.db
                    .batch("COMMIT")
                    .map_err(failed("committing to", &db))
            });
        if written.is_err() {
            // Nothing of the batch stays; the same commit is tried again. (A connection that
            // is gone has rolled back already.)
            let _ = self.db.batch("ROLLBACK");
        }
        written
    }

    fn reset(&mut self) -> Result<(), StoreError> {
        let db = self.db.describe().to_string();
        let drops: String = TABLES
            .iter()
            .chain(OLD_TABLES)
            .map(|t| format!("DROP TABLE IF EXISTS {t};"))
            .collect();
        self.db
            .batch(&drops)
            .map_err(failed("dropping the read models of", &db))?;
        self.create()
    }

    fn checkpoints(&mut self) -> Result<Vec<(u64, u64, u64)>, StoreError> {
        let rows = self.read(
            "checkpoints",
            "SELECT match_id, last_tick, last_seq FROM matches ORDER BY match_id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.count(0), r.count(1), r.count(2)))
            .collect())
    }
}

/// Sums of a player's lines, in the column order `totals` reads.
macro_rules! totals_sql {
    () => {
        "COUNT(DISTINCT match_id), CAST(SUM(won) AS BIGINT), CAST(SUM(kills) AS BIGINT),
         CAST(SUM(deaths) AS BIGINT), CAST(SUM(damage_dealt) AS BIGINT),
         CAST(SUM(damage_taken) AS BIGINT), CAST(SUM(shots) AS BIGINT),
         CAST(SUM(hits) AS BIGINT), CAST(SUM(played_ms) AS BIGINT)"
    };
}

fn totals(r: &Row, from: usize) -> Totals {
    Totals {
        matches: r.count(from),
        wins: r.count(from + 1),
        kills: r.count(from + 2),
        deaths: r.count(from + 3),
        damage_dealt: r.count(from + 4),
        damage_taken: r.count(from + 5),
        shots: r.count(from + 6),
        hits: r.count(from + 7),
        accuracy: None,
        time_played_ms: r.count(from + 8),
    }
    .finish()
}

/// A page of `limit` from `fetched` (one more was asked for, to know whether there is more).
fn page<T>(mut items: Vec<T>, offset: u64, limit: u32) -> Page<T> {
    let next_offset = (items.len() > limit as usize).then(|| offset + u64::from(limit));
    items.truncate(limit as usize);
    Page { items, next_offset }
}

impl Queries for SqlStore {
    fn career(&mut self, name: &str, recent: u32) -> Result<Option<Career>, StoreError> {
        let games: BTreeMap<String, Totals> = self
            .read(
                "a player",
                concat!(
                    "SELECT game, ",
                    totals_sql!(),
                    " FROM match_players WHERE name = ?1 GROUP BY game ORDER BY game"
                ),
                &[name.into()],
            )?
            .iter()
            .map(|r| (r.text(0), totals(r, 1)))
            .collect();
        if games.is_empty() {
            return Ok(None);
        }
        let all = self
            .read(
                "a player",
                concat!(
                    "SELECT ",
                    totals_sql!(),
                    " FROM match_players WHERE name = ?1"
                ),
                &[name.into()],
            )?
            .first()
            .map(|r| totals(r, 0))
            .unwrap_or_default();
        let recent = self
            .read(
                "a player",
                "SELECT match_id, game, ended, MAX(won), CAST(SUM(kills) AS BIGINT),
                    CAST(SUM(deaths) AS BIGINT), CAST(SUM(damage_dealt) AS BIGINT), created_at_ms
                 FROM match_players WHERE name = ?1 GROUP BY match_id, game, ended, created_at_ms
                 ORDER BY created_at_ms DESC, match_id DESC LIMIT ?2",
                &[name.into(), recent.into()],
            )?
            .iter()
            .map(|r| RecentMatch {
                match_id: r.count(0),
                game: r.text(1),
                ended: r.flag(2),
                won: r.flag(3),
                kills: r.count(4),
                deaths: r.count(5),
                damage_dealt: r.count(6),
                created_at_unix_ms: r.count(7),
            })
            .collect();
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
        let (from, to) = period.span(at_unix_ms);
        // Kept at each match's end, in order: a page is read off the index.
        let entries: Vec<Standing> = self
            .read(
                "a leaderboard",
                "SELECT name, wins, kills, deaths, matches FROM standings
                 WHERE game = ?1 AND period = ?2 AND starts_ms = ?3
                 ORDER BY wins DESC, kills DESC, deaths ASC, matches ASC, name ASC
                 LIMIT ?4 OFFSET ?5",
                &[
                    game.into(),
                    period.name().into(),
                    from.into(),
                    (limit + 1).into(),
                    offset.into(),
                ],
            )?
            .iter()
            .map(|r| Standing {
                rank: 0,
                name: r.text(0),
                wins: r.count(1),
                kills: r.count(2),
                deaths: r.count(3),
                matches: r.count(4),
            })
            .collect();
        let Page {
            items: mut entries,
            next_offset,
        } = page(entries, offset, limit);
        for (n, s) in entries.iter_mut().enumerate() {
            s.rank = offset + n as u64 + 1;
        }
        Ok(Leaderboard {
            game: game.to_string(),
            period,
            from_unix_ms: from,
            to_unix_ms: to,
            entries,
            next_offset,
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
            state: m.state(),
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
        let bodies: Vec<String> = self
            .read(
                "a timeline",
                "SELECT body FROM event_blocks WHERE match_id = ?1 AND first_tick <= ?2
                 ORDER BY block",
                &[match_id.into(), end.into()],
            )?
            .into_iter()
            .map(|r| r.text(0))
            .collect();
        let events = blocks::read_events(bodies.iter().map(String::as_str), end);
        Ok(Some(timeline::build(
            &m, interval, from_tick, frames, events,
        )))
    }

    fn rejections(&mut self, f: &RejectionFilter) -> Result<Page<Rejected>, StoreError> {
        let from = f.from_unix_ms.unwrap_or(0);
        let to = f.to_unix_ms.unwrap_or(u64::MAX);
        let need = f.offset.saturating_add(u64::from(f.limit) + 1);
        // Blocks are read in the order of their first rejection's time, a page at a time,
        // until the rejections before the next unread block's first are enough: none after
        // it can come before them. A block spans less than one window, so one holding a
        // rejection at or after `from` starts after `from - window`.
        let lower = from.saturating_sub(blocks::REJECTION_WINDOW_MS - 1);
        let mut found: Vec<blocks::Ordered> = Vec::new();
        let mut read: u64 = 0;
        loop {
            let rows = self.read(
                "rejections",
                "SELECT match_id, player, name, rule, first_at_ms, body FROM rejection_blocks
                 WHERE (CAST(?1 AS TEXT) IS NULL OR name = ?1)
                   AND (CAST(?2 AS TEXT) IS NULL OR rule = ?2)
                   AND (CAST(?3 AS BIGINT) IS NULL OR match_id = ?3)
                   AND first_at_ms >= ?4 AND first_at_ms < ?5 AND last_at_ms >= ?6
                 ORDER BY first_at_ms, match_id, window_ms, player, name, rule
                 LIMIT ?7 OFFSET ?8",
                &[
                    f.player.as_ref().into(),
                    f.rule.as_ref().into(),
                    f.match_id.into(),
                    lower.into(),
                    to.into(),
                    from.into(),
                    REJECTION_BLOCKS_PER_READ.into(),
                    read.into(),
                ],
            )?;
            read += rows.len() as u64;
            let frontier = (rows.len() as u64 == REJECTION_BLOCKS_PER_READ)
                .then(|| rows.last().map_or(0, |r| r.count(4)));
            for r in &rows {
                found.extend(blocks::read_rejections(
                    &blocks::StoredRejections {
                        match_id: r.count(0),
                        player: u32::try_from(r.int(1)).unwrap_or(0),
                        name: r.text(2),
                        rule: r.text(3),
                        body: r.text(5),
                    },
                    from,
                    to,
                ));
            }
            let Some(frontier) = frontier else { break };
            let settled = found.iter().filter(|(k, _)| k.0 < frontier).count() as u64;
            if settled >= need {
                break;
            }
        }
        found.sort_by_key(|(k, _)| *k);
        let items = found
            .into_iter()
            .skip(usize::try_from(f.offset).unwrap_or(usize::MAX))
            .map(|(_, r)| r)
            .collect();
        Ok(page(items, f.offset, f.limit))
    }

    fn dead_letters(
        &mut self,
        match_id: Option<u64>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<Dead>, StoreError> {
        let items: Vec<Dead> = self
            .read(
                "dead letters",
                "SELECT match_id, seq, tick, kind, reason, body FROM dead_letters
                 WHERE (CAST(?1 AS BIGINT) IS NULL OR match_id = ?1)
                 ORDER BY match_id, seq, kind LIMIT ?2 OFFSET ?3",
                &[match_id.into(), (limit + 1).into(), offset.into()],
            )?
            .iter()
            .map(|r| Dead {
                match_id: r.count(0),
                seq: r.count(1),
                tick: r.count(2),
                kind: r.text(3),
                reason: r.text(4),
                event: r.json(5),
            })
            .collect();
        Ok(page(items, offset, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MatchRows, RejectionRow};
    use tickforge_protocol::{GameConfig, MatchId, ReplayHeader};

    fn model(match_id: u64, created: u64) -> MatchModel {
        MatchModel::new(&ReplayHeader {
            format_version: 1,
            protocol_version: 2,
            game: "arena".into(),
            rules_version: 1,
            match_id: MatchId(match_id),
            seed: 1,
            tick_rate_hz: 60,
            config: GameConfig::default_for("arena").expect("arena"),
            created_at_unix_ms: created,
            snapshot_every_ticks: 0,
            hash_parts: vec![],
        })
    }

    /// Rejections of two matches, three players, two rules, spread over several windows and
    /// committed in uneven batches; every filter, read a page at a time, gives exactly the
    /// rejections a sort of them all gives.
    #[test]
    fn the_audit_trail_from_blocks_equals_a_sort_of_every_rejection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store =
            SqlStore::open(&Target::Sqlite(dir.path().join("r.sqlite"))).expect("opens");
        let mut all: Vec<(u64, RejectionRow)> = Vec::new();
        for (match_id, created) in [(7u64, 1_000_000u64), (8, 1_004_321)] {
            let m = model(match_id, created);
            let mut rows: Vec<RejectionRow> = Vec::new();
            for tick in 1..=3_000u64 {
                let players: &[u32] = match tick % 5 {
                    0 => &[1, 2, 3],
                    1 | 3 => &[2],
                    _ => &[],
                };
                for (ord, &player) in players.iter().enumerate() {
                    rows.push(RejectionRow {
                        tick,
                        ord: ord as u32,
                        player,
                        name: (tick > 100).then(|| format!("p{player}")),
                        command_id: tick as u32,
                        rule: if (tick + u64::from(player)) % 3 == 0 {
                            "rate"
                        } else {
                            "cooldown"
                        }
                        .into(),
                        detail: format!("tick {tick}"),
                        command: "{\"fire\":{\"dx\":1,\"dy\":0}}".into(),
                        at_unix_ms: m.time_of(tick),
                    });
                }
            }
            // Batches end on a tick's end, as the projector's do.
            let mut at = 0;
            for size in [1usize, 37, 400, 3, 900].iter().cycle() {
                if at == rows.len() {
                    break;
                }
                let mut end = (at + size).min(rows.len());
                while end < rows.len() && rows[end].tick == rows[end - 1].tick {
                    end += 1;
                }
                let part = MatchRows {
                    rejections: rows[at..end].to_vec(),
                    ..MatchRows::default()
                };
                store
                    .commit(&[MatchCommit {
                        model: &m,
                        rows: &part,
                    }])
                    .expect("commits");
                at = end;
            }
            all.extend(rows.into_iter().map(|r| (match_id, r)));
        }
        all.sort_by_key(|(m, r)| (r.at_unix_ms, *m, r.tick, r.ord));
        let filters = [
            RejectionFilter::default(),
            RejectionFilter {
                player: Some("p2".into()),
                ..Default::default()
            },
            RejectionFilter {
                rule: Some("rate".into()),
                ..Default::default()
            },
            RejectionFilter {
                match_id: Some(8),
                ..Default::default()
            },
            RejectionFilter {
                player: Some("p3".into()),
                rule: Some("cooldown".into()),
                from_unix_ms: Some(1_012_345),
                to_unix_ms: Some(1_031_000),
                ..Default::default()
            },
        ];
        for f in filters {
            let expected: Vec<(u64, u64, u32)> = all
                .iter()
                .filter(|(m, r)| {
                    f.player.as_ref().is_none_or(|p| r.name.as_ref() == Some(p))
                        && f.rule.as_ref().is_none_or(|x| &r.rule == x)
                        && f.match_id.is_none_or(|x| x == *m)
                        && f.from_unix_ms.is_none_or(|t| r.at_unix_ms >= t)
                        && f.to_unix_ms.is_none_or(|t| r.at_unix_ms < t)
                })
                .map(|(m, r)| (*m, r.tick, r.player))
                .collect();
            assert!(expected.len() > 100, "{f:?}");
            for limit in [1_000u32, 97] {
                let mut got = Vec::new();
                let mut offset = 0;
                loop {
                    let page = store
                        .rejections(&RejectionFilter {
                            limit,
                            offset,
                            ..f.clone()
                        })
                        .expect("reads");
                    for r in &page.items {
                        assert_eq!(r.detail, format!("tick {}", r.tick));
                        assert_eq!(r.command["fire"]["dx"], 1);
                        got.push((r.match_id, r.tick, r.player));
                    }
                    match page.next_offset {
                        Some(next) => offset = next,
                        None => break,
                    }
                }
                // A tick's players are in their order within it.
                assert_eq!(got, expected, "{f:?}, pages of {limit}");
            }
        }
    }
}
