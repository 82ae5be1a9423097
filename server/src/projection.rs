//! The read side in a server: the live projector, and projecting replay files (its catch-up
//! at start, and `tickforge-replay project`'s rebuild).
//!
//! The live projector is one thread. Every match registers with it through a sink
//! ([`Feeds::sink_factory`]); each round (`--projection-batch-ms`) it takes every running
//! match's ticks that the log has made durable, from the match's ring in memory (or from its
//! replay file when the ring has moved on), and commits them in one transaction. It never
//! projects a tick the log could still lose, so the read models never hold what a replay file
//! does not. A database that fails makes it wait and retry with backoff, holding at most one
//! batch; matches never wait for it, and its lag grows (`projection_lag_ticks`).

#![expect(
    clippy::disallowed_methods,
    reason = "the projector's rounds and backoff are wall-clock time; this is I/O, not the simulation"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tickforge_projections::{Committed, Projector, SqlStore, Store, StoreError, Target};
use tickforge_protocol::{MatchId, Tick};
use tokio_util::sync::CancellationToken;

use crate::log::LogError;
use crate::log::reader::ReplayReader;
use crate::matches::core::TickOutput;
use crate::matches::{MatchShared, SinkFactory, TickSink, replay_files};
use crate::metrics::{MatchLabel, Metrics};

/// Rows (events, rejections, empty ticks) the projector gathers before it commits, even
/// within a round: the bound on what it holds while the database is down.
pub const MAX_BATCH_ROWS: usize = 20_000;

/// The longest wait between two tries of a failing database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a file could not be projected.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
}

/// What projecting a file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileProjected {
    pub match_id: u64,
    /// Ticks applied (new to the read models).
    pub ticks: u64,
    pub events: u64,
    /// The file's last whole tick.
    pub last_tick: u64,
    /// The match's tick rate, from its header.
    pub tick_rate_hz: u32,
}

/// Project the ticks of the replay file at `path` that the read models do not have yet (up to
/// `up_to`, if given), committing every [`MAX_BATCH_ROWS`] rows. `progress` is called after
/// each tick with the offset reached in the file. The last batch is left for the caller to
/// commit.
pub fn project_file<S: Store>(
    projector: &mut Projector<S>,
    path: &Path,
    up_to: Option<Tick>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileProjected, ProjectError> {
    let mut reader = ReplayReader::open(path)?;
    let header = reader.header().clone();
    let last_tick = reader.index().last_tick;
    let id = header.match_id.0;
    let from = projector.open(&header)?;
    let mut done = FileProjected {
        match_id: id,
        last_tick: last_tick.0,
        tick_rate_hz: header.tick_rate_hz.max(1),
        ..FileProjected::default()
    };
    let end = up_to.map_or(last_tick, |t| t.min(last_tick));
    if from.tick >= end.0 {
        if reader.health().clean_close && end == last_tick {
            let _ = projector.finish(id);
        }
        return Ok(done);
    }
    let mut ticks = reader.ticks_near(Tick(from.tick + 1))?;
    while let Some(t) = ticks.next() {
        let t = t?;
        if t.tick.0 <= from.tick {
            continue;
        }
        if t.tick > end {
            break;
        }
        let applied = projector
            .tick(id, t.tick.0, &t.events, &t.rejections)
            .map_err(|e| ProjectError::Bad {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if applied == tickforge_projections::Applied::Applied {
            done.ticks += 1;
            done.events += t.events.len() as u64;
        }
        progress(ticks.offset());
        if projector.pending_rows() >= MAX_BATCH_ROWS {
            projector.commit()?;
        }
    }
    drop(ticks);
    if reader.health().clean_close && end == last_tick {
        // Whatever the match's end, its log is closed: no tick follows.
        let _ = projector.finish(id);
    }
    Ok(done)
}

/// What [`apply_ticks`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicksApplied {
    /// Ticks new to the read models.
    pub ticks: u64,
    pub events: u64,
    /// One of the ticks ended the match (`MatchEnded`): no tick follows.
    pub ended: bool,
}

/// Ticks of a match after a gap: the tick the projector expected never came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("match {match_id}: tick {tick} came after tick {at}")]
pub struct Gap {
    pub match_id: u64,
    pub tick: u64,
    pub at: u64,
}

/// Apply `ticks` (in order, whole, as a stream holds them) of open match `match_id`: those at
/// or before its checkpoint change nothing, and whenever [`MAX_BATCH_ROWS`] rows have
/// gathered they are committed. A tick after a gap is refused, and nothing from it on is
/// applied.
pub fn apply_ticks<S: Store>(
    projector: &mut Projector<S>,
    match_id: u64,
    ticks: &[crate::log::TickRecords],
) -> Result<Result<TicksApplied, Gap>, StoreError> {
    let mut done = TicksApplied::default();
    let mut at = projector.checkpoint(match_id).map_or(0, |c| c.tick);
    for t in ticks {
        done.ended |= t
            .events
            .iter()
            .any(|e| matches!(e.kind, tickforge_protocol::EventKind::MatchEnded { .. }));
        if t.tick.0 <= at {
            continue;
        }
        if t.tick.0 > at + 1 {
            return Ok(Err(Gap {
                match_id,
                tick: t.tick.0,
                at,
            }));
        }
        if projector.tick(match_id, t.tick.0, &t.events, &t.rejections)
            == Ok(tickforge_projections::Applied::Applied)
        {
            done.ticks += 1;
            done.events += t.events.len() as u64;
        }
        at = t.tick.0;
        if projector.pending_rows() >= MAX_BATCH_ROWS {
            projector.commit()?;
        }
    }
    Ok(Ok(done))
}

/// Drop `value` on a thread of its own: PostgreSQL's client blocks on a runtime of its own,
/// which cannot run inside an async task, and the last owner of a store may be one.
pub(crate) fn drop_off_runtime<T: Send + 'static>(value: T) {
    let _ = std::thread::spawn(move || drop(value)).join();
}

/// The running matches the live projector follows, registered by their sink.
#[derive(Debug, Default)]
pub struct Feeds {
    matches: Mutex<BTreeMap<MatchId, Arc<MatchShared>>>,
}

/// The sink that registers a match with the projector. The projector reads the match's
/// durable ticks itself, so a tick costs this sink nothing; at the end it takes the match's
/// lag series off `/metrics` at once, as every per-match series goes when its match does.
struct Registered {
    id: MatchId,
    metrics: Arc<Metrics>,
}

impl TickSink for Registered {
    fn tick(&mut self, _output: &TickOutput) {}

    fn finished(&mut self, _summary: &crate::matches::MatchInfo) {
        self.metrics.projection_lag_ticks.remove(&MatchLabel {
            match_id: self.id.0,
        });
    }
}

impl Feeds {
    /// The sink factory that registers every new match.
    pub fn sink_factory(self: &Arc<Feeds>, metrics: Arc<Metrics>) -> SinkFactory {
        let feeds = self.clone();
        Arc::new(move |shared: &Arc<MatchShared>| {
            feeds.matches.lock().insert(shared.id, shared.clone());
            Box::new(Registered {
                id: shared.id,
                metrics: metrics.clone(),
            }) as Box<dyn TickSink>
        })
    }

    fn snapshot(&self) -> Vec<Arc<MatchShared>> {
        self.matches.lock().values().cloned().collect()
    }

    fn forget(&self, id: MatchId) {
        self.matches.lock().remove(&id);
    }
}

/// Connections the query API reads through at once; more queries wait for one.
pub const QUERY_CONNECTIONS: usize = 4;

/// The longest a query waits for a connection before it is answered 503.
const QUERY_WAIT: Duration = Duration::from_secs(10);

/// The queries' connections: opened as queries need them (read-only), up to
/// [`QUERY_CONNECTIONS`].
#[derive(Debug, Default)]
struct Pool {
    idle: Vec<SqlStore>,
    open: usize,
}

/// A server's read models: their database, the queries' connections, the projector.
#[derive(Debug)]
pub struct ReadModels {
    db: Target,
    feeds: Arc<Feeds>,
    queries: Mutex<Pool>,
    /// Signalled when a connection goes back to the pool (or is closed).
    returned: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ReadModels {
    /// Open (creating if need be) the read models at `db`. An error the operator must fix (a
    /// path that cannot be a database, a URL that does not parse, read models of another
    /// schema version) stops the server from starting, with what to do; one that may pass (a
    /// full disk, a database server that is down) does not: the projector tries again, and
    /// matches are played meanwhile.
    pub fn open(db: &Target) -> Result<ReadModels, StoreError> {
        if let Target::Sqlite(path) = db
            && let Some(dir) = path.parent()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::new(format!("creating {}", dir.display()), e, false))?;
        }
        // On a thread of its own, and closed there: PostgreSQL's client blocks on a runtime of
        // its own, which cannot be started inside the server's.
        let opened = std::thread::scope(|s| s.spawn(|| SqlStore::open(db).map(drop)).join())
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    "opening the read models",
                    "panicked",
                    false,
                ))
            });
        match opened {
            Ok(_) => {}
            Err(e) if e.transient => {
                tracing::warn!(error = %e, "the read models cannot be opened yet; the projector will retry");
            }
            Err(e) => return Err(e),
        }
        Ok(ReadModels {
            db: db.clone(),
            feeds: Arc::new(Feeds::default()),
            queries: Mutex::new(Pool::default()),
            returned: Condvar::new(),
            thread: Mutex::new(None),
        })
    }

    pub fn db(&self) -> &Target {
        &self.db
    }

    pub fn feeds(&self) -> &Arc<Feeds> {
        &self.feeds
    }

    /// Start the live projector.
    pub fn start(
        &self,
        config: LiveConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let handle = start(config, self.feeds.clone(), metrics, shutdown)?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Wait for the projector to stop (after shutdown).
    pub fn join(&self) {
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }

    /// Run a query on one of the queries' connections (blocking: call it from a blocking
    /// task). At most [`QUERY_CONNECTIONS`] run at once; one that finds them all busy for
    /// 10 s fails as transient.
    pub fn query<T>(
        &self,
        job: impl FnOnce(&mut SqlStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + QUERY_WAIT;
        let mut store = loop {
            let mut pool = self.queries.lock();
            if let Some(store) = pool.idle.pop() {
                break store;
            }
            if pool.open < QUERY_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                match SqlStore::open_for_queries(&self.db) {
                    Ok(store) => break store,
                    Err(e) => {
                        self.give_back(None);
                        return Err(e);
                    }
                }
            }
            if self.returned.wait_until(&mut pool, deadline).timed_out() {
                return Err(StoreError::new(
                    "reading the read models",
                    format!(
                        "all {QUERY_CONNECTIONS} query connections stayed busy for {} s",
                        QUERY_WAIT.as_secs()
                    ),
                    true,
                ));
            }
        };
        let result = job(&mut store);
        // A connection that failed for good is closed; a new one is opened when needed.
        let healthy = !result.as_ref().is_err_and(|e| !e.transient);
        self.give_back(healthy.then_some(store));
        result
    }

    fn give_back(&self, store: Option<SqlStore>) {
        let mut pool = self.queries.lock();
        match store {
            Some(store) => pool.idle.push(store),
            None => pool.open -= 1,
        }
        drop(pool);
        self.returned.notify_one();
    }
}

impl Drop for ReadModels {
    /// The queries' connections are closed on a thread of their own: PostgreSQL's client
    /// blocks on a runtime of its own, and the last owner may be an async task.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.queries.get_mut().idle);
        if !idle.is_empty() {
            drop_off_runtime(idle);
        }
    }
}

/// The live projector's settings.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub db: Target,
    pub replay_dir: PathBuf,
    pub batch: Duration,
}

/// Start the live projector's thread. It stops once `shutdown` is cancelled and every match
/// it follows has finished and is projected (or after `drain` more).
pub fn start(
    config: LiveConfig,
    feeds: Arc<Feeds>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("projector".into())
        .spawn(move || Live::new(config, feeds, metrics, shutdown).run())
}

struct Live {
    config: LiveConfig,
    feeds: Arc<Feeds>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    projector: Option<Projector<SqlStore>>,
    backoff: Duration,
    /// Replay files of matches not running that are still to be caught up.
    files: Vec<(MatchId, PathBuf)>,
    /// Each running match's last committed tick: its lag is counted from there, so that it
    /// grows while the database is down.
    committed: BTreeMap<MatchId, u64>,
}

impl Live {
    fn new(
        config: LiveConfig,
        feeds: Arc<Feeds>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Live {
        let files = replay_files(&config.replay_dir);
        Live {
            config,
            feeds,
            metrics,
            shutdown,
            projector: None,
            backoff: Duration::ZERO,
            files,
            committed: BTreeMap::new(),
        }
    }

    fn run(mut self) {
        let mut stopping: Option<Instant> = None;
        loop {
            let round = Instant::now();
            match self.round() {
                Ok(()) => self.backoff = Duration::ZERO,
                Err(e) => {
                    self.failed(&e);
                    self.report_lag(&self.feeds.snapshot());
                }
            }
            if self.shutdown.is_cancelled() {
                let since = *stopping.get_or_insert_with(Instant::now);
                let drained = self.feeds.matches.lock().is_empty();
                if (drained && self.files.is_empty()) || since.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
            let wait = self.config.batch.max(self.backoff);
            if let Some(left) = wait.checked_sub(round.elapsed()) {
                std::thread::sleep(left);
            }
        }
        tracing::info!("projector stopped");
    }

    fn failed(&mut self, e: &ProjectError) {
        self.metrics.projection_errors.inc();
        // Finished matches wait as files, not as their shared state: what waits for a
        // database that stays down is a path per match.
        for shared in self.feeds.snapshot() {
            if shared.live.borrow().finished {
                self.feeds.forget(shared.id);
                self.committed.remove(&shared.id);
                self.files.push((shared.id, shared.replay_path.clone()));
            }
        }
        let transient = matches!(e, ProjectError::Store(s) if s.transient);
        if !transient {
            // Start again from what is committed.
            self.projector = None;
        }
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
        tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "projector: will retry");
    }

    fn projector(&mut self) -> Result<&mut Projector<SqlStore>, ProjectError> {
        if self.projector.is_none() {
            self.projector = Some(Projector::new(SqlStore::open(&self.config.db)?));
        }
        Ok(self
            .projector
            .as_mut()
            .unwrap_or_else(|| unreachable!("just set")))
    }

    /// One round: files still to catch up, then every running match's durable ticks; one
    /// commit.
    fn round(&mut self) -> Result<(), ProjectError> {
        let metrics = self.metrics.clone();
        let feeds = self.feeds.snapshot();
        let running: Vec<MatchId> = feeds.iter().map(|s| s.id).collect();
        // Files of matches that are not running (a previous run's), once each, for at most a
        // batch interval per round: the running matches are not held up by thousands of old
        // files after a restart.
        let files_until = Instant::now() + self.config.batch;
        while let Some((id, path)) = self.files.last().cloned() {
            if Instant::now() >= files_until {
                break;
            }
            if running.contains(&id) {
                self.files.pop();
                continue;
            }
            let projector = self.projector()?;
            match project_file(projector, &path, None, &mut |_| {}) {
                Ok(_) => {}
                Err(ProjectError::Store(e)) => return Err(ProjectError::Store(e)),
                // A file that cannot be read is left out (a rebuild says the same), and does
                // not hold up the rest.
                Err(e) => {
                    tracing::error!(match_id = id.0, error = %e, "projector: replay file left out")
                }
            }
            self.commit()?;
            if let Some(p) = self.projector.as_mut() {
                p.close(id.0);
            }
            self.files.pop();
        }
        let mut finished = Vec::new();
        for shared in &feeds {
            // The live mark first: a finished match's durable tick is final before its mark
            // says finished.
            let done = shared.live.borrow().finished;
            let durable = shared.info.read().durable_tick;
            let projector = self.projector()?;
            let from = projector.open(&shared.header)?;
            let mut at = from.tick;
            while at < durable.0 && projector.pending_rows() < MAX_BATCH_ROWS {
                let next = Tick(at + 1);
                match shared.ring_tick(next).filter(|t| t.tick == next) {
                    Some(t) => {
                        let records = &t.records;
                        let _ = projector.tick(
                            shared.id.0,
                            next.0,
                            &records.events,
                            &records.rejections,
                        );
                        at = next.0;
                    }
                    None => {
                        // The ring has moved on (the projector was held up): the file has it.
                        project_file(projector, &shared.replay_path, Some(durable), &mut |_| {})?;
                        at = projector.checkpoint(shared.id.0).map_or(at, |c| c.tick);
                        break;
                    }
                }
            }
            if done && at >= durable.0 {
                // Its log is closed (the mark says finished only after the close).
                let _ = projector.finish(shared.id.0);
                finished.push(shared.id);
            }
            self.committed.entry(shared.id).or_insert(from.tick);
        }
        // Just before the commit: the most the read models are behind in this round.
        self.report_lag(&feeds);
        self.commit()?;
        for shared in &feeds {
            if let Some(c) = self
                .projector
                .as_ref()
                .and_then(|p| p.checkpoint(shared.id.0))
            {
                self.committed.insert(shared.id, c.tick);
            }
        }
        for id in finished {
            self.feeds.forget(id);
            self.committed.remove(&id);
            metrics
                .projection_lag_ticks
                .remove(&MatchLabel { match_id: id.0 });
            if let Some(p) = self.projector.as_mut() {
                p.close(id.0);
            }
        }
        Ok(())
    }

    /// Each running match's lag, in ticks from its live tick back to its last committed one.
    /// Reported before each commit (and after a failed one), it is the peak of the round: the
    /// read models are never further behind than this since the last report.
    fn report_lag(&self, feeds: &[Arc<MatchShared>]) {
        let mut max_lag = 0u64;
        for shared in feeds {
            let live = *shared.live.borrow();
            let lag = live
                .tick
                .0
                .saturating_sub(self.committed.get(&shared.id).copied().unwrap_or(0));
            max_lag = max_lag.max(lag);
            // A finished match's series left with it (its sink's end).
            if !live.finished {
                self.metrics
                    .projection_lag_ticks
                    .get_or_create(&MatchLabel {
                        match_id: shared.id.0,
                    })
                    .set(lag as i64);
            }
        }
        self.metrics.projection_lag_max_ticks.set(max_lag as i64);
    }

    fn commit(&mut self) -> Result<(), ProjectError> {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let projector = self.projector()?;
        let committed = projector.commit()?;
        record_commit(&metrics, started, &committed);
        Ok(())
    }
}

/// A commit's time and dead letters on /metrics (a commit of nothing is not counted).
pub(crate) fn record_commit(metrics: &Metrics, started: Instant, done: &Committed) {
    if done.matches > 0 {
        metrics
            .projection_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics
            .projection_dead_letters
            .inc_by(done.dead_letters as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// As many queries run at once as there are connections, and no more: each of eight
    /// waits inside its query until four are inside together.
    #[test]
    fn queries_share_a_bounded_pool_of_connections() {
        let dir = tempfile::tempdir().expect("dir");
        let models = Arc::new(
            ReadModels::open(&Target::Sqlite(dir.path().join("r.sqlite"))).expect("opens"),
        );
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (models, inside, most) = (models.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    models.query(|store| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let until = Instant::now() + Duration::from_secs(20);
                        while most.load(Ordering::SeqCst) < QUERY_CONNECTIONS
                            && Instant::now() < until
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let read = store.checkpoints();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        read
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("runs").expect("reads"), vec![]);
        }
        assert_eq!(most.load(Ordering::SeqCst), QUERY_CONNECTIONS);
        let pool = models.queries.lock();
        assert_eq!(
            (pool.open, pool.idle.len()),
            (QUERY_CONNECTIONS, QUERY_CONNECTIONS)
        );
    }
}
