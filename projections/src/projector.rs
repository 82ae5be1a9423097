//! The projector: applies ticks to the matches' models, and commits them in batches, each
//! match's checkpoint in the same transaction as its rows.
//!
//! It is fed, not feeding itself: the server hands it each durable tick, a rebuild each tick
//! of the replay files, the cluster's follower each message of the stream. A tick at or
//! before its match's checkpoint is a redelivery and changes nothing, so a feeder may always
//! start again from the checkpoint (or before it) after a crash.

use std::collections::{BTreeMap, HashMap};

use tickforge_protocol::{Event, RejectedCommand, ReplayHeader};

use crate::model::{Applied, MatchModel, MatchRows};
use crate::store::{MatchCommit, Store, StoreError};

/// How far a match is projected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub tick: u64,
    pub seq: u64,
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub matches: usize,
    pub events: usize,
    pub rejections: usize,
    pub dead_letters: usize,
}

/// A tick for a match the projector was not told the header of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tick of match {0} before its header: open the match first")]
pub struct NotOpen(pub u64);

/// Projects ticks into a [`Store`].
#[derive(Debug)]
pub struct Projector<S> {
    store: S,
    models: HashMap<u64, MatchModel>,
    /// Rows of the matches changed since the last commit.
    pending: BTreeMap<u64, MatchRows>,
    pending_rows: usize,
}

impl<S: Store> Projector<S> {
    pub fn new(store: S) -> Projector<S> {
        Projector {
            store,
            models: HashMap::new(),
            pending: BTreeMap::new(),
            pending_rows: 0,
        }
    }

    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Start or continue the match of `header`: its model as last committed, or a new one
    /// (written with the next commit, so that the match is known before its first tick).
    pub fn open(&mut self, header: &ReplayHeader) -> Result<Checkpoint, StoreError> {
        let id = header.match_id.0;
        if !self.models.contains_key(&id) {
            let model = match self.store.load(id)? {
                Some(model) => model,
                None => {
                    self.pending.entry(id).or_default();
                    self.pending_rows += 1;
                    MatchModel::new(header)
                }
            };
            self.models.insert(id, model);
        }
        Ok(self.checkpoint(id).unwrap_or_default())
    }

    /// Continue a match that was opened before (by an earlier run), without its header: its
    /// model as last committed, or `None` if it was never committed.
    pub fn resume(&mut self, match_id: u64) -> Result<Option<Checkpoint>, StoreError> {
        if !self.models.contains_key(&match_id) {
            match self.store.load(match_id)? {
                Some(model) => {
                    self.models.insert(match_id, model);
                }
                None => return Ok(None),
            }
        }
        Ok(self.checkpoint(match_id))
    }

    /// The checkpoint of an open match, including what is not yet committed.
    pub fn checkpoint(&self, match_id: u64) -> Option<Checkpoint> {
        self.models.get(&match_id).map(|m| Checkpoint {
            tick: m.last_tick,
            seq: m.last_seq,
        })
    }

    /// Apply one tick of an open match.
    pub fn tick(
        &mut self,
        match_id: u64,
        tick: u64,
        events: &[Event],
        rejections: &[RejectedCommand],
    ) -> Result<Applied, NotOpen> {
        let model = self.models.get_mut(&match_id).ok_or(NotOpen(match_id))?;
        let rows = self.pending.entry(match_id).or_default();
        let before = rows.events.len() + rows.rejections.len() + rows.dead_letters.len();
        let applied = model.apply_tick(tick, events, rejections, rows);
        let after = rows.events.len() + rows.rejections.len() + rows.dead_letters.len();
        // A tick with no rows still moves the checkpoint (a match's duration): it counts one.
        self.pending_rows += (after - before).max(usize::from(applied == Applied::Applied));
        Ok(applied)
    }

    /// The match's log is closed (its replay file has its footer): mark it so, to be
    /// committed with the next batch.
    pub fn finish(&mut self, match_id: u64) -> Result<(), NotOpen> {
        let model = self.models.get_mut(&match_id).ok_or(NotOpen(match_id))?;
        if !model.closed {
            model.closed = true;
            self.pending.entry(match_id).or_default();
            self.pending_rows += 1;
        }
        Ok(())
    }

    /// Rows (and empty ticks) applied since the last commit.
    pub fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    /// Commit everything applied since the last commit, in one transaction. On an error
    /// nothing is lost: the same commit is tried again by the next call. (After an error that
    /// is not transient, drop the projector: a new one starts from the committed
    /// checkpoints.)
    pub fn commit(&mut self) -> Result<Committed, StoreError> {
        if self.pending.is_empty() {
            return Ok(Committed::default());
        }
        let mut done = Committed::default();
        let commits: Vec<MatchCommit<'_>> = self
            .pending
            .iter()
            .filter_map(|(id, rows)| {
                let model = self.models.get(id)?;
                done.matches += 1;
                done.events += rows.events.len();
                done.rejections += rows.rejections.len();
                done.dead_letters += rows.dead_letters.len();
                Some(MatchCommit { model, rows })
            })
            .collect();
        self.store.commit(&commits)?;
        self.pending.clear();
        self.pending_rows = 0;
        Ok(done)
    }

    /// Forget an ended match's model once it is committed (it is loaded again if its ticks
    /// come back).
    pub fn close(&mut self, match_id: u64) {
        if !self.pending.contains_key(&match_id) {
            self.models.remove(&match_id);
        }
    }

    /// Matches with a model in memory.
    pub fn open_matches(&self) -> usize {
        self.models.len()
    }
}
