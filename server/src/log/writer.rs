//! The log writer: one thread that owns every open log file of a server (or the one file of a
//! tool), fed by one bounded channel.
//!
//! A match's tick hands its [`TickBatch`] to its [`LogWriter`] with `try_send` and never waits:
//! not for the disk, not for fsync. The thread works in **rounds**: it gathers whatever batches
//! arrive within [`ServiceConfig::round`] (a server's tick period: every match's tick of that
//! period), encodes each file's into one buffer and writes it with one call, then syncs every
//! file that is due under its [`FsyncPolicy`]: with one `syncfs` for all the files on one
//! filesystem where the platform has it, else one `fdatasync` each. After the sync that covered
//! a tick has returned, it publishes that tick as durable on the file's `watch`: the durability
//! promise is unchanged, only the number of syncs is not one per match per tick.
//!
//! Every queue is bounded: the channel (all files together) and each file's ticks in flight
//! ([`LogConfig::queue_ticks`]); a full one is [`LogError::Backlogged`] for the caller. An I/O
//! failure (or a panic) in one file's write or sync stops that file alone: its writer reports
//! the error, every other file goes on. Creating a file (its header and first sync) happens on
//! the writer thread too, so that an async caller awaits it instead of blocking on the disk.

#![expect(
    clippy::disallowed_methods,
    reason = "the writer thread times its rounds and fsync intervals; it is I/O, not the simulation"
)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tickforge_protocol::{
    Event, Record, RejectedCommand, ReplayHeader, ReplayIndex, Seq, SimSnapshot, StateHash, Tick,
};
use tokio::sync::watch;

use super::format::{self, DEFAULT_MAX_RECORD_BYTES};
use super::recover::{self, RecoverMode, Recovery};
use super::{LogError, io};

/// Where the writer's bytes go. A real file in production; tests put an in-memory storage
/// behind it that forgets unsynced bytes on a simulated crash.
pub trait LogFile: Send + 'static {
    /// Append all of `bytes`.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Make everything appended so far durable.
    fn sync(&mut self) -> std::io::Result<()>;

    /// The filesystem the file lives on, if it is a real file: files on one filesystem are
    /// synced together, with one `syncfs`.
    fn device(&self) -> Option<u64> {
        None
    }

    /// The file, if it is a real one (for `syncfs`).
    fn as_file(&self) -> Option<&File> {
        None
    }
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }

    fn device(&self) -> Option<u64> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.metadata().ok().map(|m| m.dev())
        }
        #[cfg(not(unix))]
        None
    }

    fn as_file(&self) -> Option<&File> {
        Some(self)
    }
}

/// When the writer calls fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write (every tick, or every group of ticks that queued up meanwhile).
    PerTick,
    /// At most once per interval; a crash may lose up to one interval of ticks.
    Interval(Duration),
    /// Never (the OS writes back when it likes); only for benchmarks and throwaway matches.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// `per-tick`, `never`, `interval` (100 ms) or `interval:MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-tick" => Ok(FsyncPolicy::PerTick),
            "never" => Ok(FsyncPolicy::Never),
            "interval" => Ok(FsyncPolicy::Interval(Duration::from_millis(100))),
            other => match other.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(FsyncPolicy::Interval(Duration::from_millis(ms))),
                _ => Err(format!(
                    "unknown fsync policy {other:?}: use per-tick, interval, interval:MS or never"
                )),
            },
        }
    }
}

/// Called with the duration of every fsync (for metrics).
#[derive(Clone)]
pub struct SyncObserver(pub std::sync::Arc<dyn Fn(Duration) + Send + Sync>);

impl std::fmt::Debug for SyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncObserver")
    }
}

/// Log settings.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    /// How many ticks may wait for the writer before `append` reports a backlog.
    pub queue_ticks: usize,
    /// Take a full snapshot after every tick that is a multiple of this (0 = never).
    pub snapshot_every_ticks: u64,
    pub max_record_bytes: u32,
    /// Told how long each fsync took.
    pub on_sync: Option<SyncObserver>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::PerTick,
            queue_ticks: 256,
            snapshot_every_ticks: 600,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            on_sync: None,
        }
    }
}

impl LogConfig {
    /// Whether the caller should attach a snapshot to the batch of `tick`.
    pub fn snapshot_due(&self, tick: Tick) -> bool {
        self.snapshot_every_ticks > 0
            && tick.0 > 0
            && tick.0.is_multiple_of(self.snapshot_every_ticks)
    }
}

/// What one tick appends to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickBatch {
    pub tick: Tick,
    pub events: Vec<Event>,
    pub rejections: Vec<RejectedCommand>,
    pub hash: StateHash,
    pub parts: Vec<u64>,
    /// Boxed: one tick in `snapshot_every_ticks` has one, and batches live on in the
    /// spectator ring.
    pub snapshot: Option<Box<SimSnapshot>>,
}

impl TickBatch {
    /// The batch of a simulated tick (the events are moved out of the report).
    pub fn from_report(report: crate::sim::TickReport, snapshot: Option<SimSnapshot>) -> TickBatch {
        let mut events = report.events;
        // Batches live on in the spectator ring: no spare capacity for 600 ticks.
        events.shrink_to_fit();
        TickBatch {
            tick: report.tick,
            events,
            rejections: report.rejections,
            hash: report.hash,
            parts: report.parts,
            snapshot: snapshot.map(Box::new),
        }
    }
}

/// How far the log has got. `durable_tick` never goes past a tick whose bytes were not synced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// The last tick handed to the OS.
    pub written_tick: Tick,
    /// The last tick known to be on disk.
    pub durable_tick: Tick,
    /// The last seq known to be on disk.
    pub durable_seq: Seq,
    /// Set if the writer stopped on an error; nothing more will be written.
    pub failed: Option<String>,
}

/// How the writer thread works through its rounds.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How long a round gathers batches before writing and syncing them. Zero writes as soon
    /// as anything arrives (a tool writing one file); a server uses its tick period, so that
    /// one round, and one sync, covers the tick of every match.
    pub round: Duration,
    /// Messages the channel holds, for all files together.
    pub capacity: usize,
    /// Sync the files of one filesystem with one `syncfs` (Linux), rather than one
    /// `fdatasync` each.
    pub sync_filesystem: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            round: Duration::ZERO,
            capacity: 16 * 1024,
            sync_filesystem: true,
        }
    }
}

/// How the thread answers a create or an adopt: into a tokio channel (an async caller) or a
/// std one (a blocking caller, which may be inside a runtime).
type Reply = Box<dyn FnOnce(Result<Opened, LogError>) + Send>;

/// What the writer thread is asked. The rare messages are boxed, so that the channel's slots
/// (allocated up front, `capacity` of them) stay the size of a `Tick`.
enum Msg {
    Create(Box<Create>),
    Adopt(Box<Adopt>),
    Tick {
        id: u64,
        batch: Arc<TickBatch>,
    },
    Close {
        id: u64,
        reply: mpsc::SyncSender<Result<ReplayIndex, LogError>>,
    },
}

/// Create a new file and write its header.
struct Create {
    path: PathBuf,
    header: ReplayHeader,
    config: LogConfig,
    reply: Reply,
}

/// Take over a file already open (recovered, or opened to append).
struct Adopt {
    file: Box<dyn LogFile>,
    name: PathBuf,
    offset: u64,
    index: ReplayIndex,
    config: LogConfig,
    reply: Reply,
}

/// What a file's writer needs from the thread.
struct Opened {
    id: u64,
    durability: watch::Receiver<Durability>,
    in_flight: Arc<AtomicUsize>,
}

/// The handle of a writer thread; clones share the thread. The thread ends once every handle
/// and every [`LogWriter`] of it is gone.
#[derive(Clone)]
pub struct LogService {
    tx: SyncSender<Msg>,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogService")
    }
}

impl LogService {
    /// Start a writer thread.
    pub fn start(config: ServiceConfig) -> Result<(LogService, JoinHandle<()>), LogError> {
        let (tx, rx) = mpsc::sync_channel(config.capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("tickforge-log".into())
            .spawn(move || Round::serve(rx, config))
            .map_err(|e| LogError::WriterStopped {
                detail: format!("could not start the writer thread: {e}"),
            })?;
        Ok((LogService { tx }, thread))
    }

    /// Create a new replay file at `path` (never overwriting one) on the writer thread, with
    /// its header synced, and a writer for it. The caller awaits; no worker blocks on the disk.
    pub async fn create(
        &self,
        path: &Path,
        header: &ReplayHeader,
        config: LogConfig,
    ) -> Result<LogWriter, LogError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send_create(path, header, &config, move |opened| {
            let _ = reply.send(opened);
        })?;
        let opened = answer.await.map_err(|_| gone())??;
        Ok(self.writer(opened, config, None))
    }

    /// [`LogService::create`], waiting on this thread (for tools).
    pub fn create_blocking(
        &self,
        path: &Path,
        header: &ReplayHeader,
        config: LogConfig,
    ) -> Result<LogWriter, LogError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send_create(path, header, &config, move |opened| {
            let _ = reply.send(opened);
        })?;
        let opened = answer.recv().map_err(|_| gone())??;
        Ok(self.writer(opened, config, None))
    }

    /// A writer for `file`, whose first `offset` bytes (header and earlier ticks, described
    /// by `index`) are already written.
    pub fn adopt(
        &self,
        file: Box<dyn LogFile>,
        name: PathBuf,
        offset: u64,
        index: ReplayIndex,
        config: LogConfig,
    ) -> Result<LogWriter, LogError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Msg::Adopt(Box::new(Adopt {
            file,
            name,
            offset,
            index,
            config: config.clone(),
            reply: Box::new(move |opened| {
                let _ = reply.send(opened);
            }),
        })))?;
        let opened = answer.recv().map_err(|_| gone())??;
        Ok(self.writer(opened, config, None))
    }

    fn send(&self, msg: Msg) -> Result<(), LogError> {
        self.tx.send(msg).map_err(|_| gone())
    }

    /// Ask the writer thread to create a file; `reply` gets what it opened.
    fn send_create(
        &self,
        path: &Path,
        header: &ReplayHeader,
        config: &LogConfig,
        reply: impl FnOnce(Result<Opened, LogError>) + Send + 'static,
    ) -> Result<(), LogError> {
        self.send(Msg::Create(Box::new(Create {
            path: path.to_path_buf(),
            header: header.clone(),
            config: config.clone(),
            reply: Box::new(reply),
        })))
    }

    fn writer(&self, opened: Opened, config: LogConfig, own: Option<JoinHandle<()>>) -> LogWriter {
        LogWriter {
            id: opened.id,
            tx: Some(self.tx.clone()),
            durability: opened.durability,
            in_flight: opened.in_flight,
            config,
            own,
        }
    }
}

fn gone() -> LogError {
    LogError::WriterStopped {
        detail: "the writer thread is gone".into(),
    }
}

/// One replay file's writer: hands its ticks to the writer thread and watches how far they are
/// durable.
#[derive(Debug)]
pub struct LogWriter {
    id: u64,
    tx: Option<SyncSender<Msg>>,
    durability: watch::Receiver<Durability>,
    /// Ticks handed over and not yet taken by the thread.
    in_flight: Arc<AtomicUsize>,
    config: LogConfig,
    /// The thread of a writer that has one of its own (a tool's), joined on close.
    own: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Create(_) => "Create",
            Msg::Adopt(_) => "Adopt",
            Msg::Tick { .. } => "Tick",
            Msg::Close { .. } => "Close",
        })
    }
}

impl LogWriter {
    /// Create a new replay file at `path` (never overwriting one), with a writer thread of its
    /// own (for tools; a server shares one [`LogService`] between all its matches).
    pub fn create(
        path: &Path,
        header: &ReplayHeader,
        config: LogConfig,
    ) -> Result<LogWriter, LogError> {
        let (service, thread) = LogService::start(ServiceConfig::default())?;
        let mut writer = service.create_blocking(path, header, config)?;
        writer.own = Some(thread);
        Ok(writer)
    }

    /// Open an existing replay file to append to it: recover it first (see
    /// [`recover::recover`]), drop its footer if it has one, and continue after its last tick.
    pub fn open_append(
        path: &Path,
        mode: RecoverMode,
        config: LogConfig,
    ) -> Result<(LogWriter, Recovery), LogError> {
        let recovery = recover::recover(path, mode, DEFAULT_MAX_RECORD_BYTES)?;
        if recovery.scan.header.format_version != tickforge_protocol::REPLAY_FORMAT_VERSION {
            return Err(LogError::Format {
                path: path.to_path_buf(),
                source: format::FormatError::UnknownFormat {
                    found: recovery.scan.header.format_version,
                },
            });
        }
        recover::reopen_for_append(path, &recovery.scan)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("opening for append", path))?;
        let index = recovery.scan.index();
        let writer = LogWriter::start(
            Box::new(file),
            path.to_path_buf(),
            recovery.scan.whole_end,
            index,
            config,
        );
        Ok((writer, recovery))
    }

    /// A writer, with a thread of its own, on `file`, whose first `offset` bytes (header and
    /// earlier ticks, described by `index`) are already written.
    pub fn start(
        file: Box<dyn LogFile>,
        name: PathBuf,
        offset: u64,
        index: ReplayIndex,
        config: LogConfig,
    ) -> LogWriter {
        let started = LogService::start(ServiceConfig::default()).and_then(|(service, thread)| {
            let mut writer = service.adopt(file, name, offset, index, config.clone())?;
            writer.own = Some(thread);
            Ok(writer)
        });
        started.unwrap_or_else(|e| {
            // Without a thread nothing can be written; every append will say so.
            let (_, dead) = watch::channel(Durability {
                failed: Some(e.to_string()),
                ..Default::default()
            });
            LogWriter {
                id: 0,
                tx: None,
                durability: dead,
                in_flight: Arc::default(),
                config,
                own: None,
            }
        })
    }

    /// Hand one tick to the writer without waiting. Fails if the writer has stopped or is
    /// `queue_ticks` behind; the batch is then not logged and the caller must act (stop taking
    /// commands for the match, tell its clients).
    pub fn append(&self, batch: impl Into<Arc<TickBatch>>) -> Result<(), LogError> {
        let batch = batch.into();
        let Some(tx) = &self.tx else {
            return Err(self.stopped());
        };
        if self.durability.borrow().failed.is_some() {
            return Err(self.stopped());
        }
        let tick = batch.tick.0;
        let backlogged = || {
            tracing::error!(
                tick,
                capacity = self.config.queue_ticks,
                "log writer backlogged: the disk is not keeping up"
            );
            LogError::Backlogged {
                tick,
                capacity: self.config.queue_ticks,
            }
        };
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.config.queue_ticks.max(1) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(backlogged());
        }
        match tx.try_send(Msg::Tick { id: self.id, batch }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Err(backlogged())
            }
            Err(TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Err(self.stopped())
            }
        }
    }

    /// Hand one tick to the writer, waiting for room: for offline tools (recording a headless
    /// match) that run faster than any disk and have no tick to protect.
    pub fn append_blocking(&self, batch: impl Into<Arc<TickBatch>>) -> Result<(), LogError> {
        let batch = batch.into();
        let Some(tx) = &self.tx else {
            return Err(self.stopped());
        };
        if self.durability.borrow().failed.is_some() {
            return Err(self.stopped());
        }
        while self.in_flight.load(Ordering::Acquire) >= self.config.queue_ticks.max(1) {
            if self.durability.borrow().failed.is_some() {
                return Err(self.stopped());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        tx.send(Msg::Tick { id: self.id, batch }).map_err(|_| {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.stopped()
        })
    }

    fn stopped(&self) -> LogError {
        let detail = self
            .durability
            .borrow()
            .failed
            .clone()
            .unwrap_or_else(|| "the writer thread is gone".into());
        LogError::WriterStopped { detail }
    }

    /// Watch how far the log is durable.
    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.durability.clone()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Whether the batch of `tick` should carry a snapshot.
    pub fn snapshot_due(&self, tick: Tick) -> bool {
        self.config.snapshot_due(tick)
    }

    /// Write everything handed over, then the index footer, sync, and close the file. Waits
    /// for the disk. Returns the index.
    pub fn close(mut self) -> Result<ReplayIndex, LogError> {
        self.finish(true)
    }

    fn finish(&mut self, wait: bool) -> Result<ReplayIndex, LogError> {
        let Some(tx) = self.tx.take() else {
            return Err(self.stopped());
        };
        let (reply, answer) = mpsc::sync_channel(1);
        if tx.send(Msg::Close { id: self.id, reply }).is_err() {
            return Err(self.stopped());
        }
        drop(tx);
        if !wait && self.own.is_none() {
            return Ok(ReplayIndex::default());
        }
        let result = answer.recv().unwrap_or_else(|_| Err(self.stopped()));
        if let Some(thread) = self.own.take() {
            // The thread's last sender is gone with ours: it ends once the close is done.
            let _ = thread.join();
        }
        match result {
            Err(LogError::WriterStopped { .. }) if self.durability.borrow().failed.is_some() => {
                Err(self.stopped())
            }
            other => other,
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.tx.is_some()
            && let Err(e) = self.finish(false)
        {
            tracing::error!(error = %e, "closing the log on drop failed");
        }
    }
}

/// One open file on the writer thread.
struct Open {
    file: Box<dyn LogFile>,
    name: PathBuf,
    offset: u64,
    index: ReplayIndex,
    config: LogConfig,
    watch: watch::Sender<Durability>,
    in_flight: Arc<AtomicUsize>,
    device: Option<u64>,
    /// This round's bytes, not yet written.
    buf: Vec<u8>,
    unsynced: bool,
    last_sync: Instant,
    /// Its writer asked to close: write the footer, sync, answer.
    closing: Option<mpsc::SyncSender<Result<ReplayIndex, LogError>>>,
    /// A batch could not be encoded: write what came before it, then stop with this.
    stop_after_write: Option<LogError>,
    failed: Option<LogError>,
}

/// Batches are gathered into one round until its buffers hold this much.
const GROUP_BYTES: usize = 4 * 1024 * 1024;

/// The writer thread's state between rounds.
struct Round {
    files: BTreeMap<u64, Open>,
    next_id: u64,
    buffered: usize,
}

/// Run `f`, turning a panic into an I/O error (a fault in one file must not end the thread).
fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(std::io::Error::other(format!(
                "the writer panicked: {message}"
            )))
        }
    }
}

impl Round {
    fn serve(rx: Receiver<Msg>, config: ServiceConfig) {
        let mut state = Round {
            files: BTreeMap::new(),
            next_id: 1,
            buffered: 0,
        };
        let mut connected = true;
        while connected || !state.files.is_empty() {
            // 1. Wait for work: a message, or an interval sync that falls due.
            let first = if connected {
                match state.next_interval_sync() {
                    Some(due) => {
                        match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                            Ok(msg) => Some(msg),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => {
                                connected = false;
                                None
                            }
                        }
                    }
                    None => match rx.recv() {
                        Ok(msg) => Some(msg),
                        Err(_) => {
                            connected = false;
                            None
                        }
                    },
                }
            } else {
                None
            };
            // 2. Gather this message and what arrives within the round.
            let round_ends = Instant::now() + config.round;
            let mut next = first;
            loop {
                if let Some(msg) = next.take() {
                    state.take(msg);
                }
                if state.buffered >= GROUP_BYTES || !connected {
                    break;
                }
                match rx.try_recv() {
                    Ok(msg) => {
                        next = Some(msg);
                        continue;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        connected = false;
                        break;
                    }
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                let now = Instant::now();
                if now >= round_ends {
                    break;
                }
                // Sleep out the round, then take what came. Waiting on the channel instead
                // would make every match's append wake this thread (a futex wake and, on a
                // busy core, a switch away from the match) once per match per tick; asleep,
                // the appends only queue. The channel holds far more than one round. A
                // create or a close that comes mid-round is taken at its end too: at most one
                // round later than before.
                std::thread::sleep(round_ends - now);
            }
            if !connected {
                // Nobody can close the files that are left: close them.
                for open in state.files.values_mut() {
                    if open.closing.is_none() {
                        let (reply, _) = mpsc::sync_channel(1);
                        open.closing = Some(reply);
                    }
                }
            }
            // 3. Write, 4. sync, 5. publish and answer.
            state.write();
            state.sync(&config);
            state.settle();
        }
    }

    /// The earliest moment an unsynced file's interval sync falls due.
    fn next_interval_sync(&self) -> Option<Instant> {
        self.files
            .values()
            .filter(|f| f.unsynced)
            .filter_map(|f| match f.config.fsync {
                FsyncPolicy::Interval(every) => Some(f.last_sync + every),
                _ => None,
            })
            .min()
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Create(create) => {
                let Create {
                    path,
                    header,
                    config,
                    reply,
                } = *create;
                let opened = create_file(&path, &header).map(|(file, offset)| {
                    self.open(Box::new(file), path, offset, ReplayIndex::default(), config)
                });
                reply(opened);
            }
            Msg::Adopt(adopt) => {
                let Adopt {
                    file,
                    name,
                    offset,
                    index,
                    config,
                    reply,
                } = *adopt;
                reply(Ok(self.open(file, name, offset, index, config)));
            }
            Msg::Tick { id, batch } => {
                let Some(open) = self.files.get_mut(&id) else {
                    return;
                };
                open.in_flight.fetch_sub(1, Ordering::AcqRel);
                if open.failed.is_some() || open.stop_after_write.is_some() {
                    return;
                }
                let before = open.buf.len();
                if let Err(e) = open.encode_batch(&batch) {
                    // Keep the ticks gathered before the bad one: write them, then stop.
                    open.buf.truncate(before);
                    open.stop_after_write = Some(e);
                }
                self.buffered += open.buf.len() - before.min(open.buf.len());
            }
            Msg::Close { id, reply } => match self.files.get_mut(&id) {
                Some(open) => open.closing = Some(reply),
                None => {
                    let _ = reply.send(Err(LogError::WriterStopped {
                        detail: "the file was closed or failed earlier".into(),
                    }));
                }
            },
        }
    }

    fn open(
        &mut self,
        file: Box<dyn LogFile>,
        name: PathBuf,
        offset: u64,
        index: ReplayIndex,
        mut config: LogConfig,
    ) -> Opened {
        config.max_record_bytes = config.max_record_bytes.min(DEFAULT_MAX_RECORD_BYTES);
        let (watch, durability) = watch::channel(Durability {
            written_tick: index.last_tick,
            durable_tick: index.last_tick,
            durable_seq: index.last_seq,
            failed: None,
        });
        let id = self.next_id;
        self.next_id += 1;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let device = file.device();
        self.files.insert(
            id,
            Open {
                file,
                name,
                offset,
                index,
                config,
                watch,
                in_flight: in_flight.clone(),
                device,
                buf: Vec::with_capacity(16 * 1024),
                unsynced: false,
                last_sync: Instant::now(),
                closing: None,
                stop_after_write: None,
                failed: None,
            },
        );
        Opened {
            id,
            durability,
            in_flight,
        }
    }

    /// Write each file's bytes of this round with one call (and the footer of a closing one).
    fn write(&mut self) {
        for open in self.files.values_mut() {
            if open.failed.is_some() {
                continue;
            }
            if open.closing.is_some() && open.stop_after_write.is_none() {
                let at = open.offset + open.buf.len() as u64;
                format::encode_footer(&open.index, at, &mut open.buf);
            }
            if open.buf.is_empty() {
                continue;
            }
            let (file, buf) = (&mut open.file, &open.buf);
            match guarded(|| file.append(buf)) {
                Ok(()) => {
                    open.offset += open.buf.len() as u64;
                    open.unsynced = true;
                    let tick = open.index.last_tick;
                    open.watch.send_modify(|d| d.written_tick = tick);
                }
                Err(e) => open.fail(io("writing", &open.name)(e)),
            }
            open.buf.clear();
        }
        self.buffered = 0;
    }

    /// Sync every file that is due: those on one filesystem with one `syncfs`, where it can.
    fn sync(&mut self, config: &ServiceConfig) {
        let due: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| f.failed.is_none() && f.unsynced && f.sync_due())
            .map(|(id, _)| *id)
            .collect();
        let mut synced_together: Vec<u64> = Vec::new();
        if config.sync_filesystem && due.len() >= 2 {
            let mut by_device: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for id in &due {
                if let Some(device) = self.files.get(id).and_then(|f| f.device) {
                    by_device.entry(device).or_default().push(*id);
                }
            }
            for ids in by_device.values().filter(|ids| ids.len() >= 2) {
                let Some(first) = self.files.get(&ids[0]) else {
                    continue;
                };
                let started = Instant::now();
                if sync_filesystem(&*first.file).is_ok() {
                    if let Some(observer) = &first.config.on_sync {
                        (observer.0)(started.elapsed());
                    }
                    synced_together.extend(ids);
                }
                // On an error, each file is synced alone below, and its own error (if it has
                // one) stops that file only.
            }
        }
        let now = Instant::now();
        for id in due {
            let Some(open) = self.files.get_mut(&id) else {
                continue;
            };
            if !synced_together.contains(&id) {
                let started = Instant::now();
                let file = &mut open.file;
                if let Err(e) = guarded(|| file.sync()) {
                    open.fail(io("syncing", &open.name)(e));
                    continue;
                }
                if let Some(observer) = &open.config.on_sync {
                    (observer.0)(started.elapsed());
                }
            }
            open.unsynced = false;
            open.last_sync = now;
            let (tick, seq) = (open.index.last_tick, open.index.last_seq);
            open.watch.send_modify(|d| {
                d.durable_tick = tick;
                d.durable_seq = seq;
            });
        }
    }

    /// Answer closes, report failures, and let go of the files that are done.
    fn settle(&mut self) {
        let done: Vec<u64> = self
            .files
            .iter_mut()
            .filter_map(|(id, open)| {
                if let Some(e) = open.stop_after_write.take() {
                    open.fail(e);
                }
                if let Some(e) = &open.failed {
                    if let Some(reply) = open.closing.take() {
                        let _ = reply.send(Err(LogError::WriterStopped {
                            detail: e.to_string(),
                        }));
                    }
                    return Some(*id);
                }
                if open.closing.is_some() && !open.unsynced {
                    if let Some(reply) = open.closing.take() {
                        let _ = reply.send(Ok(open.index.clone()));
                    }
                    return Some(*id);
                }
                None
            })
            .collect();
        for id in done {
            self.files.remove(&id);
        }
    }
}

impl Open {
    fn sync_due(&self) -> bool {
        self.closing.is_some()
            || self.stop_after_write.is_some()
            || match self.config.fsync {
                FsyncPolicy::PerTick => true,
                FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
                FsyncPolicy::Never => false,
            }
    }

    fn fail(&mut self, error: LogError) {
        let detail = error.to_string();
        tracing::error!(file = %self.name.display(), error = %detail, "log writer stopped");
        self.watch.send_modify(|d| d.failed = Some(detail));
        self.failed = Some(error);
    }

    fn encode_batch(&mut self, batch: &TickBatch) -> Result<(), LogError> {
        let buf = &mut self.buf;
        let max = self.config.max_record_bytes as usize;
        let too_large = |len| LogError::RecordTooLarge {
            tick: batch.tick.0,
            len,
            max: max as u32,
        };
        for event in &batch.events {
            self.index.last_seq = event.seq;
            self.index.events += 1;
            let size = format::encode_record_of(Record::EVENT, event, buf);
            if size > max + format::FRAME_PREFIX_BYTES {
                return Err(too_large(size - format::FRAME_PREFIX_BYTES));
            }
        }
        for rejection in &batch.rejections {
            self.index.rejections += 1;
            let size = format::encode_record_of(Record::REJECTED, rejection, buf);
            if size > max + format::FRAME_PREFIX_BYTES {
                return Err(too_large(size - format::FRAME_PREFIX_BYTES));
            }
        }
        let end = TickEndRef {
            tick: batch.tick,
            hash: batch.hash,
            parts: &batch.parts,
        };
        format::encode_record_of(Record::TICK_END, &end, buf);
        self.index.last_tick = batch.tick;
        if let Some(snapshot) = &batch.snapshot {
            let start = buf.len();
            let size = format::encode_record_of(Record::SNAPSHOT, snapshot, buf);
            if size > max + format::FRAME_PREFIX_BYTES {
                // A snapshot only speeds up seeking; the ticks themselves are all logged.
                buf.truncate(start);
                tracing::warn!(
                    tick = batch.tick.0,
                    size,
                    max,
                    "snapshot over the record limit not written"
                );
            } else {
                self.index
                    .snapshots
                    .push((batch.tick, self.offset + start as u64));
            }
        }
        Ok(())
    }
}

/// A [`tickforge_protocol::TickEnd`] by reference: it encodes exactly as one (the same fields, in order).
#[derive(serde::Serialize)]
struct TickEndRef<'a> {
    tick: Tick,
    hash: StateHash,
    parts: &'a [u64],
}

/// Create `path` (never over an existing file), write `header` and sync it and its directory.
fn create_file(path: &Path, header: &ReplayHeader) -> Result<(File, u64), LogError> {
    let mut file = match OpenOptions::new().append(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LogError::Exists {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io("creating", path)(e)),
    };
    let mut bytes = Vec::new();
    format::encode_header(header, &mut bytes);
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("writing the header of", path))?;
    recover::sync_dir(path)?;
    Ok((file, bytes.len() as u64))
}

/// Sync the whole filesystem `file` is on, with one call.
fn sync_filesystem(file: &dyn LogFile) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(f) = file.as_file() {
        return rustix::fs::syncfs(f).map_err(std::io::Error::from);
    }
    let _ = file;
    Err(std::io::Error::other("no filesystem sync here"))
}

/// Every match's batches live on for the spectator ring's window, and the channel's slots are
/// allocated up front: the sizes are part of the server's memory per match.
#[cfg(all(test, target_pointer_width = "64"))]
mod sizes {
    #[test]
    fn what_the_ring_and_the_channel_hold_stays_small() {
        assert!(
            std::mem::size_of::<super::Msg>() <= 32,
            "box the rare messages"
        );
        assert!(
            std::mem::size_of::<super::TickBatch>() <= 96,
            "box what most ticks lack"
        );
        assert!(
            std::mem::size_of::<crate::matches::SpectatorTick>() <= 64,
            "frames are encoded for few ticks"
        );
    }
}
