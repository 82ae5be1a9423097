//! The event log, which is also the replay file.
//!
//! - [`format`]: the byte layout, pure code over slices (frames with CRC32C, header, footer).
//! - [`scan`]: finds the whole ticks of a file and any damage, pure.
//! - [`recover`]: acts on a scan: cuts a torn tail back to the last whole tick (keeping a copy
//!   of the damaged file), refuses corruption followed by valid records unless asked to repair.
//! - [`reader`]: opens a file for reading: ticks in order, the index, snapshots.
//! - [`writer`]: one thread for every file of a server, fed by one bounded channel; rounds of
//!   group commit with one sync per round; fsync policy; each file's durable tick on a `watch`.
//! - [`replay`]: re-applies a file's ticks to a [`crate::sim::Sim`] and checks every hash.

pub mod format;
pub mod reader;
pub mod recover;
pub mod replay;
pub mod scan;
pub mod writer;

use std::path::{Path, PathBuf};

pub use format::FormatError;
pub use reader::{ReplayReader, ScanCache, TickRecords};
pub use recover::{RecoverMode, Recovery};
pub use replay::{Divergence, Replayer};
pub use scan::{Damage, Scan};
pub use writer::{
    Durability, FsyncPolicy, LogConfig, LogFile, LogService, LogWriter, ServiceConfig,
    SyncObserver, TickBatch,
};

/// Why a log could not be read, recovered or written. Messages name the file and the offset.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error(
        "{path}: corruption at offset={offset} ({detail}) is followed by valid records (from offset={resumes_at}); \
         the last whole tick before it is {last_tick} (seq {last_seq}). Refusing to open: rerun with --repair to cut \
         the file back to tick {last_tick} (a copy of the damaged file is kept)"
    )]
    CorruptMidFile {
        path: PathBuf,
        offset: u64,
        resumes_at: u64,
        detail: String,
        last_tick: u64,
        last_seq: u64,
    },
    #[error("{path} is {kind}, not a regular file: only regular files are read as replays")]
    NotARegularFile { path: PathBuf, kind: &'static str },
    #[error(
        "{path} is {len} bytes, more than the {max} bytes a file without a footer may have to be scanned"
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{path} already exists; refusing to overwrite a replay file")]
    Exists { path: PathBuf },
    #[error(
        "the log writer for tick {tick} is {capacity} ticks behind; the disk is not keeping up"
    )]
    Backlogged { tick: u64, capacity: usize },
    #[error("the log writer has stopped: {detail}")]
    WriterStopped { detail: String },
    #[error("record for tick {tick} is {len} bytes, over the limit of {max}")]
    RecordTooLarge { tick: u64, len: usize, max: u32 },
}

/// Wrap an I/O error with what was being done and to which file.
fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError + use<> {
    let path = path.to_path_buf();
    move |source| LogError::Io { op, path, source }
}
