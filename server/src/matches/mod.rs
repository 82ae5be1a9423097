//! Matches: the registry of all matches, and one task per match that owns its simulation.
//!
//! Lifecycle: created → running → ended (or stopped, if its log failed). A running match takes
//! joins, resumes and commands; an ended one stays listed, and its replay file stays watchable.
//! Each match has exactly one writer of its state and its log: its task ([`task`]).

mod task;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::VecDeque;
use tickforge_protocol::{
    CloseCode, CommandId, EntityId, Event, GameConfig, MatchId, PlayerId, Seq, StateHash, Tick,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::log::{LogConfig, LogError, SyncObserver};
use crate::metrics::Metrics;

pub use task::unix_ms;

/// Where a match is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchState {
    Running,
    Ended,
    /// The match's log failed: it takes no more commands. The reason is in `stopped_reason`.
    Stopped,
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
    pub tick_rate_hz: u32,
    pub created_at_unix_ms: u64,
    pub replay: String,
    pub stopped_reason: Option<String>,
    /// The game's settings (sizes, limits), for viewers.
    pub config: GameConfig,
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

/// One tick as spectators see it.
#[derive(Debug)]
pub struct SpectatorTick {
    pub tick: Tick,
    /// The last seq before this tick.
    pub seq_before: Seq,
    /// The last seq after this tick.
    pub last_seq: Seq,
    pub events: Vec<Event>,
    pub hash: StateHash,
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
}

impl MatchShared {
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
}

impl JoinRefused {
    pub fn close_code(&self) -> CloseCode {
        match self {
            JoinRefused::NotFound(_) | JoinRefused::Ended(_) => CloseCode::MatchNotFound,
            JoinRefused::Full(_) | JoinRefused::TooManyMatches(_) => CloseCode::MatchFull,
            JoinRefused::Rejected(_) => CloseCode::PolicyViolation,
            JoinRefused::ResumeFailed(_) => CloseCode::ResumeFailed,
            JoinRefused::ShuttingDown => CloseCode::GoingAway,
        }
    }
}

/// A connection's control block: the match task uses it to close a client it has to drop
/// (too slow, match stopped, replaced by a resume).
#[derive(Debug, Default)]
pub struct SessionControl {
    pub cancel: CancellationToken,
    close: Mutex<Option<(CloseCode, String)>>,
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

#[derive(Debug)]
struct Entry {
    shared: Arc<MatchShared>,
    handle: Option<MatchHandle>,
}

/// Every match of this server.
#[derive(Debug)]
pub struct Registry {
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    matches: RwLock<BTreeMap<MatchId, Entry>>,
    next_id: AtomicU64,
    create_lock: Mutex<()>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Registry {
    /// A registry over `config.replay_dir()`; match ids continue after the highest replay
    /// file already there.
    pub fn new(
        config: Arc<ServerConfig>,
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
            metrics,
            matches: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(highest + 1),
            create_lock: Mutex::new(()),
            shutdown,
            tasks,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Create and start a match.
    pub fn create(&self, game: GameConfig, seed: Option<u64>) -> Result<MatchHandle, CreateError> {
        if self.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        let running = self
            .matches
            .read()
            .values()
            .filter(|e| e.shared.info.read().state == MatchState::Running)
            .count();
        if running >= self.config.max_matches {
            return Err(CreateError::TooMany(self.config.max_matches));
        }
        let id = MatchId(self.next_id.fetch_add(1, Ordering::Relaxed));
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
        let seed = seed.unwrap_or_else(rand::random);
        let handle = task::spawn(
            id,
            game,
            seed,
            path,
            log,
            self.config.clone(),
            self.metrics.clone(),
            self.shutdown.child_token(),
            &self.tasks,
        )?;
        self.matches.write().insert(
            id,
            Entry {
                shared: handle.shared.clone(),
                handle: Some(handle.clone()),
            },
        );
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
        let matches = self.matches.read();
        let entry = matches.get(&id)?;
        entry
            .handle
            .clone()
            .filter(|h| h.shared.info.read().state == MatchState::Running)
    }

    /// The shared state of a match this server ran (running or finished).
    pub fn shared(&self, id: MatchId) -> Option<Arc<MatchShared>> {
        self.matches.read().get(&id).map(|e| e.shared.clone())
    }

    /// A running match with a free player slot, or a new one of the default game. The slot is
    /// reserved until the match processes the join.
    pub fn quick_join_target(&self) -> Result<MatchHandle, CreateError> {
        let _guard = self.create_lock.lock();
        let open = self
            .matches
            .read()
            .values()
            .filter_map(|e| e.handle.clone())
            .find(|h| {
                let info = h.shared.info.read();
                let reserved = h.shared.reserved.load(Ordering::Relaxed);
                info.state == MatchState::Running && info.players + reserved < info.max_players
            });
        let handle = match open {
            Some(h) => h,
            None => self.create(self.config.default_game.clone(), None)?,
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
        // Quick-join retries when the match filled up between choosing it and joining it.
        for _ in 0..8 {
            let handle = match id {
                Some(id) => {
                    let handle = self.running(id).ok_or_else(|| match self.shared(id) {
                        Some(_) => JoinRefused::Ended(id),
                        None => JoinRefused::NotFound(id),
                    })?;
                    handle.shared.reserved.fetch_add(1, Ordering::Relaxed);
                    handle
                }
                None => self.quick_join_target().map_err(|e| match e {
                    CreateError::TooMany(n) => JoinRefused::TooManyMatches(n),
                    CreateError::ShuttingDown => JoinRefused::ShuttingDown,
                    other => JoinRefused::Rejected(other.to_string()),
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

    /// Every match this server has run since it started.
    pub fn list(&self) -> Vec<MatchInfo> {
        let matches = self.matches.read();
        matches
            .values()
            .map(|e| {
                let mut info = e.shared.info.read().clone();
                info.spectators = e.shared.spectators.load(Ordering::Relaxed) as u32;
                info
            })
            .collect()
    }
}

/// Why a match could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the server has reached its limit of {0} running matches")]
    TooMany(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the match could not be set up: {0}")]
    Sim(#[from] crate::sim::SimError),
    #[error("the replay file could not be created: {0}")]
    Log(#[from] LogError),
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
            let id = name
                .strip_prefix("match-")?
                .strip_suffix(".tfr")?
                .parse()
                .ok()?;
            Some((MatchId(id), e.path()))
        })
        .collect();
    out.sort();
    out
}
