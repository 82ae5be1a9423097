//! The log writer: a dedicated thread that owns the file, fed by a bounded channel.
//!
//! The caller (a match's tick) hands over one [`TickBatch`] per tick with `try_send` and never
//! waits: not for the disk, not for fsync. The thread encodes whatever batches are queued into
//! one buffer, writes it with one call, and syncs according to the [`FsyncPolicy`] (group
//! commit: a slow fsync lets batches pile up, and the next write takes them all). After each
//! sync it publishes the last durable tick on a `watch`. A full channel is reported to the
//! caller as [`LogError::Backlogged`]; nothing is ever buffered without bound.

#![expect(
    clippy::disallowed_methods,
    reason = "the writer thread times its fsync interval; it is I/O, not the simulation"
)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tickforge_protocol::{
    Event, Record, RejectedCommand, ReplayHeader, ReplayIndex, Seq, SimSnapshot, StateHash, Tick,
    TickEnd,
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
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
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
    pub snapshot: Option<SimSnapshot>,
}

impl TickBatch {
    /// The batch of a simulated tick (the events are moved out of the report).
    pub fn from_report(report: crate::sim::TickReport, snapshot: Option<SimSnapshot>) -> TickBatch {
        TickBatch {
            tick: report.tick,
            events: report.events,
            rejections: report.rejections,
            hash: report.hash,
            parts: report.parts,
            snapshot,
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

enum Msg {
    Tick(TickBatch),
    Close,
}

/// The handle of a log writer thread.
#[derive(Debug)]
pub struct LogWriter {
    tx: Option<SyncSender<Msg>>,
    durability: watch::Receiver<Durability>,
    thread: Option<JoinHandle<Result<ReplayIndex, LogError>>>,
    config: LogConfig,
}

impl LogWriter {
    /// Create a new replay file at `path` (never overwriting one) and start its writer.
    pub fn create(
        path: &Path,
        header: &ReplayHeader,
        config: LogConfig,
    ) -> Result<LogWriter, LogError> {
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
        Ok(LogWriter::start(
            Box::new(file),
            path.to_path_buf(),
            bytes.len() as u64,
            ReplayIndex::default(),
            config,
        ))
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

    /// Start a writer on `file`, whose first `offset` bytes (header and earlier ticks,
    /// described by `index`) are already written.
    pub fn start(
        file: Box<dyn LogFile>,
        name: PathBuf,
        offset: u64,
        index: ReplayIndex,
        config: LogConfig,
    ) -> LogWriter {
        let mut config = config;
        config.max_record_bytes = config.max_record_bytes.min(DEFAULT_MAX_RECORD_BYTES);
        let (tx, rx) = mpsc::sync_channel(config.queue_ticks.max(1));
        let initial = Durability {
            written_tick: index.last_tick,
            durable_tick: index.last_tick,
            durable_seq: index.last_seq,
            failed: None,
        };
        let (watch_tx, watch_rx) = watch::channel(initial);
        let thread_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("tickforge-log".into())
            .spawn(move || {
                Thread {
                    file,
                    name,
                    offset,
                    index,
                    config: thread_config,
                    watch: watch_tx,
                }
                .run(rx)
            });
        match thread {
            Ok(handle) => LogWriter {
                tx: Some(tx),
                durability: watch_rx,
                thread: Some(handle),
                config,
            },
            Err(e) => {
                // Without a thread nothing can be written; every append will say so.
                let (_, dead) = watch::channel(Durability {
                    failed: Some(format!("could not start: {e}")),
                    ..Default::default()
                });
                LogWriter {
                    tx: None,
                    durability: dead,
                    thread: None,
                    config,
                }
            }
        }
    }

    /// Hand one tick to the writer without waiting. Fails if the writer has stopped or is
    /// `queue_ticks` behind; the batch is then not logged and the caller must act (stop taking
    /// commands for the match, tell its clients).
    pub fn append(&self, batch: TickBatch) -> Result<(), LogError> {
        let Some(tx) = &self.tx else {
            return Err(self.stopped());
        };
        let tick = batch.tick.0;
        match tx.try_send(Msg::Tick(batch)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                tracing::error!(
                    tick,
                    capacity = self.config.queue_ticks,
                    "log writer backlogged: the disk is not keeping up"
                );
                Err(LogError::Backlogged {
                    tick,
                    capacity: self.config.queue_ticks,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    /// Hand one tick to the writer, waiting for room: for offline tools (recording a headless
    /// match) that run faster than any disk and have no tick to protect.
    pub fn append_blocking(&self, batch: TickBatch) -> Result<(), LogError> {
        let Some(tx) = &self.tx else {
            return Err(self.stopped());
        };
        tx.send(Msg::Tick(batch)).map_err(|_| self.stopped())
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

    /// Write everything queued, then the index footer, sync, and stop. Returns the index.
    pub fn close(mut self) -> Result<ReplayIndex, LogError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ReplayIndex, LogError> {
        if let Some(tx) = self.tx.take() {
            // A blocking send: closing may wait for the disk, appending never does.
            let _ = tx.send(Msg::Close);
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(LogError::WriterStopped {
                detail: "the writer thread panicked".into(),
            }),
            None => Err(self.stopped()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.thread.is_some()
            && let Err(e) = self.finish()
        {
            tracing::error!(error = %e, "closing the log on drop failed");
        }
    }
}

struct Thread {
    file: Box<dyn LogFile>,
    name: PathBuf,
    offset: u64,
    index: ReplayIndex,
    config: LogConfig,
    watch: watch::Sender<Durability>,
}

/// Batches are gathered into one write until the buffer holds this much.
const GROUP_BYTES: usize = 4 * 1024 * 1024;

impl Thread {
    fn run(mut self, rx: Receiver<Msg>) -> Result<ReplayIndex, LogError> {
        let result = self.serve(&rx);
        if let Err(e) = &result {
            let detail = e.to_string();
            tracing::error!(file = %self.name.display(), error = %detail, "log writer stopped");
            self.watch.send_modify(|d| d.failed = Some(detail));
        }
        result
    }

    fn serve(&mut self, rx: &Receiver<Msg>) -> Result<ReplayIndex, LogError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        loop {
            let first = match (self.config.fsync, unsynced) {
                (FsyncPolicy::Interval(every), true) => {
                    match rx.recv_timeout(every.saturating_sub(last_sync.elapsed())) {
                        Ok(msg) => Some(msg),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => Some(Msg::Close),
                    }
                }
                _ => Some(rx.recv().unwrap_or(Msg::Close)),
            };
            buf.clear();
            let mut closing = false;
            let mut next = first;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Tick(batch) => {
                        let start = buf.len();
                        if let Err(e) = self.encode_batch(batch, &mut buf) {
                            // Keep the ticks gathered before the bad one: write them, then stop.
                            buf.truncate(start);
                            self.file.append(&buf).map_err(io("writing", &self.name))?;
                            self.file.sync().map_err(io("syncing", &self.name))?;
                            return Err(e);
                        }
                    }
                    Msg::Close => {
                        closing = true;
                        break;
                    }
                }
                if buf.len() < GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if closing {
                let at = self.offset + buf.len() as u64;
                format::encode_footer(&self.index, at, &mut buf);
            }
            if !buf.is_empty() {
                self.file.append(&buf).map_err(io("writing", &self.name))?;
                self.offset += buf.len() as u64;
                unsynced = true;
                self.watch
                    .send_modify(|d| d.written_tick = self.index.last_tick);
            }
            let sync_now = closing
                || match self.config.fsync {
                    FsyncPolicy::PerTick => true,
                    FsyncPolicy::Interval(every) => last_sync.elapsed() >= every,
                    FsyncPolicy::Never => false,
                };
            if sync_now && unsynced {
                let started = Instant::now();
                self.file.sync().map_err(io("syncing", &self.name))?;
                last_sync = Instant::now();
                if let Some(observer) = &self.config.on_sync {
                    (observer.0)(last_sync - started);
                }
                unsynced = false;
                let (tick, seq) = (self.index.last_tick, self.index.last_seq);
                self.watch.send_modify(|d| {
                    d.durable_tick = tick;
                    d.durable_seq = seq;
                });
            }
            if closing {
                return Ok(self.index.clone());
            }
        }
    }

    fn encode_batch(&mut self, batch: TickBatch, buf: &mut Vec<u8>) -> Result<(), LogError> {
        let max = self.config.max_record_bytes as usize;
        let too_large = |len| LogError::RecordTooLarge {
            tick: batch.tick.0,
            len,
            max: max as u32,
        };
        for event in batch.events {
            self.index.last_seq = event.seq;
            self.index.events += 1;
            let size = format::encode_record(&Record::Event(event), buf);
            if size > max + format::FRAME_PREFIX_BYTES {
                return Err(too_large(size - format::FRAME_PREFIX_BYTES));
            }
        }
        for rejection in batch.rejections {
            self.index.rejections += 1;
            let size = format::encode_record(&Record::Rejected(rejection), buf);
            if size > max + format::FRAME_PREFIX_BYTES {
                return Err(too_large(size - format::FRAME_PREFIX_BYTES));
            }
        }
        let end = TickEnd {
            tick: batch.tick,
            hash: batch.hash,
            parts: batch.parts,
        };
        format::encode_record(&Record::TickEnd(end), buf);
        self.index.last_tick = batch.tick;
        if let Some(snapshot) = batch.snapshot {
            let start = buf.len();
            let size = format::encode_record(&Record::Snapshot(snapshot), buf);
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
