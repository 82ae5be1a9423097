//! Matches: the registry of all matches, and one task per match that owns its simulation.
//!
//! Lifecycle: created → running → ended (by its rules, by being empty for the idle time, or by
//! shutdown) or stopped (its log failed). A running match takes joins, resumes and commands.
//! When its task finishes, the match releases its simulation, its spectator ring and its metric
//! series; a small summary stays listed (the most recent `--finished-matches-kept`), and its
//! replay file stays watchable and listed under replays.
//! Each match has exactly one writer of its state and its log: its task ([`task`]).

pub mod core;
pub mod sinks;
mod task;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::VecDeque;
use tickforge_protocol::{
    CloseCode, CommandId, EntityId, GameConfig, MatchId, PlayerId, ReplayHeader, Seq, Tick,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::log::{LogConfig, LogError, LogService, SyncObserver};
use crate::metrics::Metrics;
use crate::sim::Games;

pub use sinks::{SinkFactory, SpectatorTick, TickSink};
pub use task::unix_ms;

/// Where a match is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchState {
    Running,
    Ended,
    /// The match's log failed: it takes no more commands. The reason is in `stopped_reason`.
    Stopped,
    /// Cluster mode: this node lost the match (its lease, or its place in the event stream);
    /// it continues on another node.
    Moved,
}

impl MatchState {
    /// The state's name, as `/matches` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            MatchState::Running => "running",
            MatchState::Ended => "ended",
            MatchState::Stopped => "stopped",
            MatchState::Moved => "moved",
        }
    }
}

/// What `/matches` says about a match.
#[derive(Clone, Debug, Serialize)]
pub struct MatchInfo {
    pub id: MatchId,
    pub game: String,
    pub state: MatchState,
    pub players: u32,
    pub max_players: u32,
    pub spectators: u32,
    pub tick: Tick,
    pub last_seq: Seq,
    pub durable_tick: Tick,
    /// How long the last tick took to run, in microseconds (all its phases).
    pub tick_us: u64,
    /// The bytes of the last tick's frame for a player with nothing answered in it: the
    /// delta's share of every player's traffic.
    pub frame_bytes: u64,
    pub tick_rate_hz: u32,
    pub created_at_unix_ms: u64,
    pub replay: String,
    pub stopped_reason: Option<String>,
    /// Why the match ended, once it has: `over` (its rules ended it), `idle` (nobody played
    /// in it for the idle time), `server_shutting_down`, or `stopped` (see `stopped_reason`).
    pub end_reason: Option<&'static str>,
    /// The game's settings (sizes, limits), for viewers.
    pub config: GameConfig,
    /// Cluster mode: the node that runs (or ran) the match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Cluster mode: the last tick the event stream has acknowledged (stored on a majority of
    /// its replicas): what survives the loss of this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_tick: Option<Tick>,
}

/// How far a match has got: what spectators follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveMark {
    /// The last tick completed.
    pub tick: Tick,
    /// The last seq of that tick.
    pub seq: Seq,
    /// True once the match will produce no more ticks (ended, stopped or server shutdown).
    pub finished: bool,
}

/// State a match task shares with the rest of the server. Only its task writes to it.
#[derive(Debug)]
pub struct MatchShared {
    pub id: MatchId,
    pub game: GameConfig,
    pub tick_rate_hz: u32,
    pub replay_path: PathBuf,
    pub created_at_unix_ms: u64,
    pub info: RwLock<MatchInfo>,
    /// The last completed tick, watched by spectators.
    pub live: watch::Sender<LiveMark>,
    /// Recent ticks for spectators, oldest first, bounded.
    pub ring: RwLock<VecDeque<Arc<SpectatorTick>>>,
    pub spectators: AtomicU64,
    /// Player slots promised to joins not yet processed (so quick-join spreads players out).
    pub reserved: std::sync::atomic::AtomicU32,
    /// Set by whatever must stop the match from outside its task (a sink fenced out of the
    /// event stream, a lost lease): the task stops before its next tick.
    pub halt: Mutex<Option<Halt>>,
    /// For a match taken over from another node: the stream sequence of the last message it
    /// had recorded there, which its records continue after.
    pub continues_after: Option<u64>,
    /// The replay header: the setup a reader of the match's records needs.
    pub header: ReplayHeader,
}

/// Why a match is stopped from outside its task, and how its players are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub code: CloseCode,
    pub reason: String,
}

/// Where a match's shared state starts: what [`MatchShared::starting`] takes beyond the header.
#[derive(Debug)]
pub struct Start {
    pub replay_path: PathBuf,
    pub max_players: u32,
    /// The last tick and seq already run (0 for a new match).
    pub tick: Tick,
    pub last_seq: Seq,
    /// Cluster mode: the node running it.
    pub node: Option<String>,
    /// Cluster mode: the last tick the stream has.
    pub stream_tick: Option<Tick>,
    pub continues_after: Option<u64>,
}

impl MatchShared {
    /// The shared state of a match that starts running (or, on a relay, being mirrored) from
    /// its replay `header`.
    pub fn starting(header: &ReplayHeader, start: Start) -> MatchShared {
        let Start {
            replay_path,
            max_players,
            tick,
            last_seq,
            node,
            stream_tick,
            continues_after,
        } = start;
        MatchShared {
            id: header.match_id,
            tick_rate_hz: header.tick_rate_hz,
            created_at_unix_ms: header.created_at_unix_ms,
            info: RwLock::new(MatchInfo {
                id: header.match_id,
                game: header.game.clone(),
                state: MatchState::Running,
                players: 0,
                max_players,
                spectators: 0,
                tick,
                last_seq,
                durable_tick: Tick(0),
                tick_us: 0,
                frame_bytes: 0,
                tick_rate_hz: header.tick_rate_hz,
                created_at_unix_ms: header.created_at_unix_ms,
                replay: replay_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                stopped_reason: None,
                end_reason: None,
                config: header.config.clone(),
                node,
                stream_tick,
            }),
            live: watch::channel(LiveMark {
                tick,
                seq: last_seq,
                finished: false,
            })
            .0,
            ring: RwLock::new(VecDeque::new()),
            spectators: Default::default(),
            reserved: Default::default(),
            halt: Default::default(),
            continues_after,
            header: header.clone(),
            replay_path,
            game: header.config.clone(),
        }
    }

    /// Stop the match before its next tick (the first request wins).
    pub fn halt(&self, code: CloseCode, reason: impl Into<String>) {
        let mut slot = self.halt.lock();
        if slot.is_none() {
            *slot = Some(Halt {
                code,
                reason: reason.into(),
            });
        }
    }

    /// The ring's tick, if still in memory.
    pub fn ring_tick(&self, tick: Tick) -> Option<Arc<SpectatorTick>> {
        let ring = self.ring.read();
        let first = ring.front()?.tick;
        let at = tick.0.checked_sub(first.0)? as usize;
        ring.get(at).cloned()
    }

    /// Where the first event after `seq` is, as far as the ring knows.
    pub fn ring_find_seq(&self, seq: Seq) -> RingSearch {
        let ring = self.ring.read();
        let Some(front) = ring.front() else {
            return RingSearch::Empty;
        };
        if seq < front.seq_before {
            return RingSearch::TooOld;
        }
        match ring.iter().find(|t| t.last_seq > seq) {
            Some(t) => RingSearch::Found(t.tick),
            None => RingSearch::NotYet,
        }
    }
}

/// Where a seq is relative to the spectator ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingSearch {
    Empty,
    /// Older than the ring: read the file.
    TooOld,
    /// In the ring: this tick holds the first event after the seq.
    Found(Tick),
    /// Every event in the ring is at or before the seq: wait for the next ones.
    NotYet,
}

/// Why a join or resume was refused; each maps to a close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    #[error("match {0} does not exist")]
    NotFound(MatchId),
    #[error("match {0} has ended")]
    Ended(MatchId),
    #[error("match {0} is full")]
    Full(MatchId),
    #[error("the server has reached its limit of {0} matches")]
    TooManyMatches(usize),
    #[error("{0}")]
    Rejected(String),
    #[error("resume failed: {0}")]
    ResumeFailed(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Cluster mode: the match runs on another node; `url` is its players' WebSocket URL.
    #[error("match {} is on {url}", id.0)]
    Elsewhere { id: MatchId, url: String },
    /// Cluster mode: the match is moving to another node (its owner was lost).
    #[error("match {} is moving to another node; reconnect in a moment and resume", .0.0)]
    Moving(MatchId),
}

impl JoinRefused {
    pub fn close_code(&self) -> CloseCode {
        match self {
            JoinRefused::NotFound(_) | JoinRefused::Ended(_) => CloseCode::MatchNotFound,
            JoinRefused::Full(_) | JoinRefused::TooManyMatches(_) => CloseCode::MatchFull,
            JoinRefused::Rejected(_) => CloseCode::PolicyViolation,
            JoinRefused::ResumeFailed(_) => CloseCode::ResumeFailed,
            JoinRefused::ShuttingDown => CloseCode::GoingAway,
            JoinRefused::Elsewhere { .. } | JoinRefused::Moving(_) => CloseCode::MatchMoved,
        }
    }
}

/// A connection's control block: the match task uses it to close a client it has to drop
/// (too slow, match stopped, replaced by a resume).
#[derive(Debug, Default)]
pub struct SessionControl {
    pub cancel: Cancel,
    close: Mutex<Option<(CloseCode, String)>>,
}

/// Who waits on a connection's [`Cancel`]: each has a slot of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiter {
    /// The task that reads the client's frames.
    Reader = 0,
    /// The task that writes to the client.
    Writer = 1,
    /// A spectator's main loop (its cursor and its reader).
    Main = 2,
}

/// A connection's "stop now" flag. Its tasks wait on it every time they wake, so polling it
/// costs an atomic load and a waker registration (a `CancellationToken` takes a mutex on every
/// poll, twice).
#[derive(Debug, Default)]
pub struct Cancel {
    done: std::sync::atomic::AtomicBool,
    wakers: [futures_util::task::AtomicWaker; 3],
}

impl Cancel {
    /// Stop: every waiter wakes.
    pub fn cancel(&self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        for waker in &self.wakers {
            waker.wake();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once [`Cancel::cancel`] has been called; `who` picks the slot its waker takes.
    pub fn cancelled(&self, who: Waiter) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.is_cancelled() {
                return std::task::Poll::Ready(());
            }
            self.wakers[who as usize].register(cx.waker());
            // A cancel between the check and the registration has woken nobody: look again.
            if self.is_cancelled() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

impl SessionControl {
    /// Ask the session to close with `code` (the first request wins).
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        let mut slot = self.close.lock();
        if slot.is_none() {
            *slot = Some((code, reason.into()));
        }
        self.cancel.cancel();
    }

    /// The close requested, if any.
    pub fn requested(&self) -> Option<(CloseCode, String)> {
        self.close.lock().clone()
    }
}

/// A unique number per connection.
pub type ConnId = u64;

/// How a match task reaches one connected player: a bounded queue of encoded frames.
#[derive(Debug, Clone)]
pub struct ClientOut {
    pub conn: ConnId,
    pub frames: mpsc::Sender<Bytes>,
    pub control: Arc<SessionControl>,
}

/// What a successful join or resume gives the session.
#[derive(Debug, Clone)]
pub struct Seat {
    pub match_id: MatchId,
    pub player: PlayerId,
    pub entity: EntityId,
}

/// A command from a session, for the match inbox.
#[derive(Debug)]
pub struct Inbound {
    pub player: PlayerId,
    pub conn: ConnId,
    pub id: CommandId,
    pub command: tickforge_protocol::Command,
}

/// Requests to a match task other than commands.
#[derive(Debug)]
pub enum Control {
    Join {
        name: String,
        out: ClientOut,
        reply: oneshot::Sender<Result<Seat, JoinRefused>>,
    },
    Resume {
        token: String,
        last_tick: Tick,
        last_seq: Seq,
        out: ClientOut,
        reply: oneshot::Sender<Result<Seat, JoinRefused>>,
    },
    /// The connection `conn` of `player` is gone.
    Detach { player: PlayerId, conn: ConnId },
    /// The player leaves for good.
    Leave { player: PlayerId, conn: ConnId },
    /// The public world as of the last tick (for the web viewer).
    Snapshot {
        reply: oneshot::Sender<tickforge_protocol::Snapshot>,
    },
}

/// A live match: how sessions reach its task.
#[derive(Debug, Clone)]
pub struct MatchHandle {
    pub shared: Arc<MatchShared>,
    pub inbox: mpsc::Sender<Inbound>,
    pub control: mpsc::Sender<Control>,
}

/// Who asked for a match with `POST /matches`, for the per-creator limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creator {
    /// The token's subject.
    pub subject: String,
    pub address: IpAddr,
}

/// Which matches [`Registry::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    Running,
    Finished,
    All,
}

/// A match whose task has not finished yet.
#[derive(Debug)]
struct Live {
    handle: MatchHandle,
    creator: Option<Creator>,
}

/// The registry's records, shared with the match tasks so that each can retire itself.
#[derive(Debug, Default)]
struct Book {
    live: RwLock<BTreeMap<MatchId, Live>>,
    /// Summaries of finished matches, oldest first, at most `--finished-matches-kept`.
    finished: Mutex<VecDeque<MatchInfo>>,
    /// Live matches per creator subject and per creator address.
    by_subject: Mutex<BTreeMap<String, usize>>,
    by_address: Mutex<BTreeMap<IpAddr, usize>>,
}

impl Book {
    /// A match's task has finished: it leaves the live set (releasing its simulation, ring and
    /// metric series) and is remembered by a small summary; its replay file stays.
    fn retire(&self, id: MatchId, summary: MatchInfo, kept: usize) {
        let live = self.live.write().remove(&id);
        if let Some(Creator { subject, address }) = live.and_then(|l| l.creator) {
            release(&mut self.by_subject.lock(), &subject);
            release(&mut self.by_address.lock(), &address);
        }
        let mut finished = self.finished.lock();
        finished.push_back(summary);
        while finished.len() > kept {
            finished.pop_front();
        }
    }
}

fn release<K: Ord>(counts: &mut BTreeMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// The highest match id: JSON readers that hold numbers as doubles (JavaScript) read ids up to
/// here exactly. Replay files named with a higher id are ignored.
pub const MAX_MATCH_ID: u64 = (1 << 53) - 1;

/// Every match of this server: the live ones, and a bounded list of recently finished ones.
pub struct Registry {
    config: Arc<ServerConfig>,
    games: Arc<Games>,
    metrics: Arc<Metrics>,
    log: LogService,
    sinks: Vec<SinkFactory>,
    book: Arc<Book>,
    next_id: AtomicU64,
    /// Held while quick-join picks or creates a match, so that joiners spread out.
    create_lock: tokio::sync::Mutex<()>,
    /// Set once in cluster mode: match ids, resume-token keys and placement come from it.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// A relay's mirrors of matches running elsewhere, for its spectators.
    mirrors: RwLock<BTreeMap<MatchId, Arc<MatchShared>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("games", &self.games)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over `config.replay_dir()`; match ids continue after the highest replay
    /// file already there.
    pub fn new(
        config: Arc<ServerConfig>,
        games: Arc<Games>,
        log: LogService,
        sinks: Vec<SinkFactory>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Registry {
        let highest = replay_files(&config.replay_dir())
            .into_iter()
            .map(|(id, _)| id.0)
            .max()
            .unwrap_or(0);
        Registry {
            config,
            games,
            metrics,
            log,
            sinks,
            book: Arc::default(),
            next_id: AtomicU64::new(highest + 1),
            create_lock: tokio::sync::Mutex::new(()),
            cluster: std::sync::OnceLock::new(),
            mirrors: RwLock::new(BTreeMap::new()),
            shutdown,
            tasks,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Take part in a cluster: from now on match ids come from its directory, resume tokens
    /// are signed with its key, and matches are published to its stream.
    pub fn join_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this node is part of, if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// The key this match's resume tokens are signed with: the cluster's, or a fresh one.
    fn token_key(&self) -> [u8; 32] {
        self.cluster
            .get()
            .map_or_else(rand::random, |c| c.token_key())
    }

    /// A new match id: the cluster's next, or this node's, and never one whose replay file
    /// is already in the data directory.
    async fn next_id(&self) -> Result<MatchId, CreateError> {
        for _ in 0..64 {
            let id = match self.cluster.get() {
                Some(cluster) => cluster
                    .next_match_id()
                    .await
                    .map_err(|e| CreateError::Cluster(e.to_string()))?,
                None => MatchId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            };
            if id.0 > MAX_MATCH_ID {
                return Err(CreateError::IdsExhausted);
            }
            if !self.config.replay_dir().join(replay_file_name(id)).exists() {
                return Ok(id);
            }
        }
        Err(CreateError::Cluster(
            "64 match ids in a row already have replay files in the data directory".into(),
        ))
    }

    /// Take over a match recorded on another node: re-apply its recorded ticks (checking
    /// every hash), then run it here from the next tick. `stream_seq` is the stream sequence of
    /// its last recorded message.
    pub async fn adopt(
        &self,
        header: ReplayHeader,
        ticks: Vec<crate::log::TickRecords>,
        stream_seq: u64,
    ) -> Result<MatchHandle, CreateError> {
        if self.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        let id = header.match_id;
        let rules = self.games.build(&header.config)?;
        let setup = crate::log::replay::setup_of(&header);
        let sim = crate::sim::Sim::new(&setup, rules.clone())?;
        let mut core =
            core::MatchCore::new(id, sim, task::core_config(&self.config, self.token_key()))
                .map_err(CreateError::Components)?;
        for t in &ticks {
            core.replay(t, &header.hash_parts)
                .map_err(|d| CreateError::Adopt(format!("tick {}: {}", d.tick.0, d.detail)))?;
        }
        core.moved();
        let history = ticks
            .into_iter()
            .map(crate::cluster::records::batch_of)
            .collect();
        let game = header.config.clone();
        let origin = task::Origin::Adopted(Box::new(task::Adopted {
            header,
            core,
            history,
            stream_seq,
        }));
        self.start(id, game, rules, origin, None).await
    }

    /// The games this server runs.
    pub fn games(&self) -> &Games {
        &self.games
    }

    /// Create and start a match. `creator` (a `POST /matches`) is held to the per-subject and
    /// per-address limits; quick-join's matches have none.
    pub async fn create(
        &self,
        game: GameConfig,
        seed: Option<u64>,
        creator: Option<Creator>,
    ) -> Result<MatchHandle, CreateError> {
        if self.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        if self.cluster.get().is_some_and(|c| c.config().relay) {
            return Err(CreateError::Relay);
        }
        let running = self
            .book
            .live
            .read()
            .values()
            .filter(|l| l.handle.shared.info.read().state == MatchState::Running)
            .count();
        if running >= self.config.max_matches {
            return Err(CreateError::TooMany(self.config.max_matches));
        }
        if let Some(c) = &creator {
            self.reserve_for(c)?;
        }
        let created = match self.next_id().await {
            Ok(id) => match self.games.build(&game) {
                Ok(rules) => {
                    let seed = seed.unwrap_or_else(rand::random);
                    let origin = task::Origin::New { seed };
                    self.start(id, game, rules, origin, creator.clone()).await
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if created.is_err()
            && let Some(Creator { subject, address }) = &creator
        {
            release(&mut self.book.by_subject.lock(), subject);
            release(&mut self.book.by_address.lock(), address);
        }
        created
    }

    /// Count a new match against its creator, or refuse it.
    fn reserve_for(&self, creator: &Creator) -> Result<(), CreateError> {
        let mut subjects = self.book.by_subject.lock();
        let mut addresses = self.book.by_address.lock();
        let by_subject = subjects.get(&creator.subject).copied().unwrap_or(0);
        if by_subject >= self.config.max_matches_per_player {
            return Err(CreateError::CreatorLimit {
                who: format!("player {:?}", creator.subject),
                limit: self.config.max_matches_per_player,
            });
        }
        let by_address = addresses.get(&creator.address).copied().unwrap_or(0);
        if by_address >= self.config.max_matches_per_address {
            return Err(CreateError::CreatorLimit {
                who: format!("address {}", creator.address),
                limit: self.config.max_matches_per_address,
            });
        }
        subjects.insert(creator.subject.clone(), by_subject + 1);
        addresses.insert(creator.address, by_address + 1);
        Ok(())
    }

    async fn start(
        &self,
        id: MatchId,
        game: GameConfig,
        rules: Arc<dyn crate::sim::Game>,
        origin: task::Origin,
        creator: Option<Creator>,
    ) -> Result<MatchHandle, CreateError> {
        let path = self.config.replay_dir().join(replay_file_name(id));
        let metrics = self.metrics.clone();
        let log = LogConfig {
            fsync: self.config.fsync,
            snapshot_every_ticks: self.config.snapshot_every_ticks,
            on_sync: Some(SyncObserver(Arc::new(move |d| {
                metrics.fsync_seconds.observe(d.as_secs_f64())
            }))),
            ..LogConfig::default()
        };
        let seed = match &origin {
            task::Origin::New { seed } => *seed,
            task::Origin::Adopted(adopted) => adopted.header.seed,
        };
        let adopted = matches!(origin, task::Origin::Adopted(_));
        let plan = task::Plan {
            id,
            game,
            rules,
            path,
            log,
            log_service: self.log.clone(),
            sinks: self.sinks.clone(),
            token_key: self.token_key(),
            origin,
        };
        let (handle, run) = task::prepare(
            plan,
            self.config.clone(),
            self.metrics.clone(),
            self.shutdown.child_token(),
        )
        .await?;
        if let Some(cluster) = self.cluster.get()
            && !adopted
        {
            let info = handle.shared.info.read().clone();
            cluster.register(&info).await;
        }
        // Listed before its task runs, so that even a match that ends at once retires cleanly.
        self.book.live.write().insert(
            id,
            Live {
                handle: handle.clone(),
                creator,
            },
        );
        let book = self.book.clone();
        let kept = self.config.finished_matches_kept;
        self.tasks.spawn(async move {
            let summary = run.await;
            book.retire(id, summary, kept);
        });
        tracing::info!(
            match_id = id.0,
            game = handle.shared.game.game_name(),
            seed,
            "match created"
        );
        Ok(handle)
    }

    /// The live handle of a running match.
    pub fn running(&self, id: MatchId) -> Option<MatchHandle> {
        let live = self.book.live.read();
        live.get(&id)
            .map(|l| l.handle.clone())
            .filter(|h| h.shared.info.read().state == MatchState::Running)
    }

    /// Whether match `id` is running now.
    pub fn is_running(&self, id: MatchId) -> bool {
        self.running(id).is_some()
    }

    /// The shared state of a match whose task has not finished (or, on a relay, of a match
    /// it mirrors); `None` once it has (its replay file holds everything).
    pub fn shared(&self, id: MatchId) -> Option<Arc<MatchShared>> {
        self.book
            .live
            .read()
            .get(&id)
            .map(|l| l.handle.shared.clone())
            .or_else(|| self.mirrors.read().get(&id).cloned())
    }

    /// The log writer service every match's file (and a relay's mirror) is written by.
    pub fn log_service(&self) -> &LogService {
        &self.log
    }

    /// A relay's mirror of a match, for its spectators.
    pub fn add_mirror(&self, shared: Arc<MatchShared>) {
        self.mirrors.write().insert(shared.id, shared);
    }

    /// The mirror has finished: its spectators go on from its file.
    pub fn remove_mirror(&self, id: MatchId) {
        self.mirrors.write().remove(&id);
    }

    /// Whether match `id` existed and has finished (it is listed, or its replay file is there).
    pub fn has_finished(&self, id: MatchId) -> bool {
        self.book.finished.lock().iter().any(|m| m.id == id)
            || self.config.replay_dir().join(replay_file_name(id)).exists()
    }

    /// A running match with a free player slot, or a new one of the default game. The slot is
    /// reserved until the match processes the join.
    pub async fn quick_join_target(&self) -> Result<MatchHandle, CreateError> {
        let _guard = self.create_lock.lock().await;
        let open = self
            .book
            .live
            .read()
            .values()
            .map(|l| l.handle.clone())
            .find(|h| {
                let info = h.shared.info.read();
                let reserved = h.shared.reserved.load(Ordering::Relaxed);
                info.state == MatchState::Running && info.players + reserved < info.max_players
            });
        let handle = match open {
            Some(h) => h,
            None => {
                let game = self
                    .games
                    .get(&self.config.default_game)
                    .map(|f| f.default_config())
                    .ok_or_else(|| CreateError::UnknownGame(self.config.default_game.clone()))?;
                self.create(game, None, None).await?
            }
        };
        handle.shared.reserved.fetch_add(1, Ordering::Relaxed);
        Ok(handle)
    }

    /// Seat a player: in match `id`, or (quick-join) in the first running match with room,
    /// creating one when all are full. The match sends `Joined` with its snapshot to `out`.
    pub async fn join(
        &self,
        id: Option<MatchId>,
        name: String,
        out: ClientOut,
    ) -> Result<Seat, JoinRefused> {
        if let Some(refused) = self.elsewhere(id).await {
            return Err(refused);
        }
        // Quick-join retries when the match filled up between choosing it and joining it.
        for _ in 0..8 {
            let handle = match id {
                Some(id) => {
                    let handle = self.running(id).ok_or_else(|| {
                        if self.shared(id).is_some() || self.has_finished(id) {
                            JoinRefused::Ended(id)
                        } else {
                            JoinRefused::NotFound(id)
                        }
                    })?;
                    handle.shared.reserved.fetch_add(1, Ordering::Relaxed);
                    handle
                }
                None => self.quick_join_target().await.map_err(|e| match e {
                    CreateError::TooMany(n) => JoinRefused::TooManyMatches(n),
                    CreateError::ShuttingDown => JoinRefused::ShuttingDown,
                    other => JoinRefused::Rejected(self.config.redact(&other.to_string())),
                })?,
            };
            let (reply, answer) = oneshot::channel();
            let request = Control::Join {
                name: name.clone(),
                out: out.clone(),
                reply,
            };
            if handle.control.send(request).await.is_err() {
                handle.shared.reserved.fetch_sub(1, Ordering::Relaxed);
                return Err(JoinRefused::Ended(handle.shared.id));
            }
            match answer.await {
                Ok(Ok(seat)) => return Ok(seat),
                Ok(Err(JoinRefused::Full(_))) if id.is_none() => continue,
                Ok(Err(refused)) => return Err(refused),
                Err(_) => return Err(JoinRefused::Ended(handle.shared.id)),
            }
        }
        Err(JoinRefused::Rejected(
            "no match with a free slot could be found; try again".into(),
        ))
    }

    /// Cluster mode: where a player asking for match `id` (or, with `None`, for any match)
    /// should go instead of this node, if anywhere. Quick-join takes a local match with room
    /// first, then one with room on another node, then creates one on the node with the most
    /// room.
    async fn elsewhere(&self, id: Option<MatchId>) -> Option<JoinRefused> {
        let cluster = self.cluster.get()?;
        match id {
            Some(id) => {
                if self.running(id).is_some() {
                    return None;
                }
                let (entry, fresh) = cluster.lookup(id).await?;
                match entry.state.as_str() {
                    "running" if fresh && entry.node != cluster.node() => {
                        Some(JoinRefused::Elsewhere {
                            id,
                            url: crate::cluster::play_url(&entry.url),
                        })
                    }
                    "running" | "moving" => Some(JoinRefused::Moving(id)),
                    _ => None,
                }
            }
            None => {
                let open_here = self.book.live.read().values().any(|l| {
                    let info = l.handle.shared.info.read();
                    info.state == MatchState::Running
                        && info.players + l.handle.shared.reserved.load(Ordering::Relaxed)
                            < info.max_players
                });
                if open_here {
                    return None;
                }
                if let Some(m) = cluster.open_elsewhere() {
                    return Some(JoinRefused::Elsewhere {
                        id: m.id,
                        url: crate::cluster::play_url(&m.url),
                    });
                }
                let (running, _) = self.counts();
                let best = cluster.place(running, self.config.max_matches);
                if best.node == cluster.node() {
                    return None;
                }
                let game = self.games.get(&self.config.default_game)?.default_config();
                let request = crate::cluster::directory::CreateRequest { game, seed: None };
                match cluster.create_on(&best.node, &request).await {
                    Ok(info) => {
                        let id = MatchId(info.get("id")?.as_u64()?);
                        Some(JoinRefused::Elsewhere {
                            id,
                            url: crate::cluster::play_url(&best.url),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(node = %best.node, error = %e, "placing a match on another node failed; creating it here");
                        None
                    }
                }
            }
        }
    }

    /// Give a dropped player their seat back. The token names its match (`m<id>.…`).
    pub async fn resume(
        &self,
        token: &str,
        last_tick: Tick,
        last_seq: Seq,
        out: ClientOut,
    ) -> Result<Seat, JoinRefused> {
        let id = token
            .strip_prefix('m')
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse().ok())
            .map(MatchId)
            .ok_or_else(|| JoinRefused::ResumeFailed("malformed resume token".into()))?;
        if let Some(refused) = self.elsewhere(Some(id)).await {
            return Err(refused);
        }
        let handle = self
            .running(id)
            .ok_or_else(|| JoinRefused::ResumeFailed(format!("match {id} is no longer running")))?;
        let (reply, answer) = oneshot::channel();
        let request = Control::Resume {
            token: token.to_string(),
            last_tick,
            last_seq,
            out,
            reply,
        };
        handle
            .control
            .send(request)
            .await
            .map_err(|_| JoinRefused::ResumeFailed(format!("match {id} has ended")))?;
        answer
            .await
            .map_err(|_| JoinRefused::ResumeFailed(format!("match {id} has ended")))?
    }

    /// Matches newest first: the live ones and the most recently finished, with ids below
    /// `before`, at most `limit`; and whether more follow.
    pub fn list(
        &self,
        which: ListState,
        before: Option<MatchId>,
        limit: usize,
    ) -> (Vec<MatchInfo>, bool) {
        let below = |id: MatchId| before.is_none_or(|b| id < b);
        let mut out: Vec<MatchInfo> = Vec::new();
        if which != ListState::Finished {
            let live = self.book.live.read();
            out.extend(
                live.values()
                    .rev()
                    .filter(|l| below(l.handle.shared.id))
                    .map(|l| {
                        let shared = &l.handle.shared;
                        let mut info = shared.info.read().clone();
                        info.spectators = shared.spectators.load(Ordering::Relaxed) as u32;
                        info
                    }),
            );
        }
        if which != ListState::Running {
            let finished = self.book.finished.lock();
            out.extend(finished.iter().rev().filter(|m| below(m.id)).cloned());
        }
        if which == ListState::Running {
            out.retain(|m| m.state == MatchState::Running);
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.id));
        let more = out.len() > limit;
        out.truncate(limit);
        (out, more)
    }

    /// (live matches, finished matches listed).
    pub fn counts(&self) -> (usize, usize) {
        (self.book.live.read().len(), self.book.finished.lock().len())
    }
}

/// Why a match could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the server has reached its limit of {0} running matches")]
    TooMany(usize),
    #[error(
        "{who} already has {limit} running matches, the most one creator may have; wait for one to end"
    )]
    CreatorLimit { who: String, limit: usize },
    #[error("match ids are used up")]
    IdsExhausted,
    #[error("this server has no game called {0:?}")]
    UnknownGame(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the match could not be set up: {0}")]
    Sim(#[from] crate::sim::SimError),
    #[error("the game's public components do not fit protocol 2's tick frames: {0}")]
    Components(String),
    #[error("the replay file could not be created: {0}")]
    Log(#[from] LogError),
    #[error("the match could not be taken over: {0}")]
    Adopt(String),
    #[error("the cluster could not be reached: {0}")]
    Cluster(String),
    #[error("this node is a spectator relay: matches are created and played on game nodes")]
    Relay,
}

/// `match-000042.tfr`
pub fn replay_file_name(id: MatchId) -> String {
    format!("match-{:06}.tfr", id.0)
}

/// The replay files in `dir`, by match id, in id order.
pub fn replay_files(dir: &Path) -> Vec<(MatchId, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(MatchId, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id: u64 = name
                .strip_prefix("match-")?
                .strip_suffix(".tfr")?
                .parse()
                .ok()?;
            if id > MAX_MATCH_ID {
                tracing::warn!(file = %name, "ignoring a replay file whose id is out of range");
                return None;
            }
            Some((MatchId(id), e.path()))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::MatchState;

    #[test]
    fn a_state_s_name_is_how_it_serializes() {
        for state in [
            MatchState::Running,
            MatchState::Ended,
            MatchState::Stopped,
            MatchState::Moved,
        ] {
            assert_eq!(
                serde_json::to_value(&state).expect("serializes"),
                state.name()
            );
        }
    }
}
