//! Where the read models live: the [`Store`] a projector writes and the queries read. The
//! tables are the same SQL on every database (docs/QUERIES.md lists them).

use crate::model::{MatchModel, MatchRows};
use crate::query::{
    Career, Dead, Leaderboard, Page, Period, Rejected, RejectionFilter, Summary, Timeline,
};

/// The version of the tables. A database of another version is rebuilt, never migrated:
/// `tickforge-replay project --rebuild` (docs/QUERIES.md, "Changing a read model").
/// Version 2 stores events and rejections in blocks (`event_blocks`, `rejection_blocks`).
pub const SCHEMA_VERSION: u32 = 2;

/// A database error, with what was being done. `transient` errors (the database is down,
/// busy or unreachable) are retried with backoff; the others stop the projector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{doing}: {message}")]
pub struct StoreError {
    pub doing: String,
    pub message: String,
    pub transient: bool,
}

impl StoreError {
    pub fn new(doing: impl Into<String>, message: impl ToString, transient: bool) -> StoreError {
        StoreError {
            doing: doing.into(),
            message: message.to_string(),
            transient,
        }
    }
}

/// One match's part of a commit: its model as it now is (its rows are written whole, with
/// its checkpoint) and the rows its new events added.
#[derive(Debug, Clone, Copy)]
pub struct MatchCommit<'a> {
    pub model: &'a MatchModel,
    pub rows: &'a MatchRows,
}

/// Where a projector writes. Every write of a commit is idempotent (rows keyed by match and
/// seq), and a commit is one transaction: a match's checkpoint never lands without the rows its
/// events produced, nor they without it.
pub trait Store: Send {
    /// The model of match `match_id` as last committed, if it was.
    fn load(&mut self, match_id: u64) -> Result<Option<MatchModel>, StoreError>;

    /// Write `commits` in one transaction.
    fn commit(&mut self, commits: &[MatchCommit<'_>]) -> Result<(), StoreError>;

    /// Drop every read model and start empty.
    fn reset(&mut self) -> Result<(), StoreError>;

    /// Every match's checkpoint: (match, last tick, last seq).
    fn checkpoints(&mut self) -> Result<Vec<(u64, u64, u64)>, StoreError>;
}

/// What the query API reads.
pub trait Queries: Send {
    fn career(&mut self, name: &str, recent: u32) -> Result<Option<Career>, StoreError>;

    fn leaderboard(
        &mut self,
        game: &str,
        period: Period,
        at_unix_ms: u64,
        limit: u32,
        offset: u64,
    ) -> Result<Leaderboard, StoreError>;

    fn summary(&mut self, match_id: u64) -> Result<Option<Summary>, StoreError>;

    /// Frames at `from_tick` (rounded up to a multiple of `interval`) and after, at most
    /// `frames` of them.
    fn timeline(
        &mut self,
        match_id: u64,
        interval_ticks: u64,
        from_tick: u64,
        frames: u32,
    ) -> Result<Option<Timeline>, StoreError>;

    fn rejections(&mut self, filter: &RejectionFilter) -> Result<Page<Rejected>, StoreError>;

    fn dead_letters(
        &mut self,
        match_id: Option<u64>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<Dead>, StoreError>;
}
