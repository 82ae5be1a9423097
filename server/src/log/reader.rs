//! Reading a replay file: its header, its index (from the footer of a cleanly closed file, or
//! by scanning one that was not), and its ticks in order from any offset. Only whole ticks are
//! read; a damaged tail is reported in [`Health`], not returned.
//!
//! A replay file is input like any other: it may have been crafted. So only regular files are
//! opened (never a FIFO, a device or a symbolic link), ticks are read a record at a time (memory
//! is bounded by the largest record, not the file), a footer that does not add up is ignored in
//! favour of a scan (REPLAY_FORMAT.md §9.3), and every offset is checked before it is used.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tickforge_protocol::{
    Event, Record, RejectedCommand, ReplayHeader, ReplayIndex, SimSnapshot, Tick, TickEnd,
};

use super::format::{
    self, DEFAULT_MAX_RECORD_BYTES, FRAME_PREFIX_BYTES, HEADER_PREFIX_BYTES, MAX_HEADER_BYTES,
    TRAILER_BYTES,
};
use super::scan::{self, Damage, Scan};
use super::{LogError, io};

/// The largest file that is scanned whole (one without a footer: a running match, or a file
/// that recovery refused to cut). Longer than the longest match the settings allow.
pub const MAX_SCANNED_FILE_BYTES: u64 = 4 << 30;

/// The records of one whole tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecords {
    pub tick: Tick,
    /// The offset of the tick's first record.
    pub offset: u64,
    /// Where the next tick starts (after this tick's end, and its snapshot if it has one).
    pub next_offset: u64,
    pub events: Vec<Event>,
    pub rejections: Vec<RejectedCommand>,
    pub end: TickEnd,
    /// The snapshot taken at the end of this tick, if one was.
    pub snapshot: Option<SimSnapshot>,
}

/// The state of a file as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub file_len: u64,
    /// The file ends with a valid footer.
    pub clean_close: bool,
    pub damage: Option<Damage>,
    /// Bytes after the last whole tick that are not a clean footer.
    pub tail_bytes: u64,
}

/// Open `path` for reading if it is a regular file: a FIFO would block the opener for ever, a
/// device (or a link to one, such as `/dev/zero`) could be read for ever. Returns the file and
/// its length.
pub fn open_regular(path: &Path) -> Result<(File, u64), LogError> {
    let not_regular = |kind: &'static str| LogError::NotARegularFile {
        path: path.to_path_buf(),
        kind,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a
        // writer; it changes nothing for a regular file. O_NOFOLLOW: a link is refused.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular("a symbolic link"));
        }
        Err(e) => return Err(io("opening", path)(e)),
    };
    let meta = file.metadata().map_err(io("reading metadata of", path))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        };
        return Err(not_regular(kind));
    }
    Ok((file, meta.len()))
}

/// Read all of a regular file of at most [`MAX_SCANNED_FILE_BYTES`].
pub fn read_all(path: &Path) -> Result<Vec<u8>, LogError> {
    let (file, len) = open_regular(path)?;
    read_span(&file, path, 0, len)
}

fn read_span(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, LogError> {
    if len > MAX_SCANNED_FILE_BYTES {
        return Err(LogError::TooLarge {
            path: path.to_path_buf(),
            len,
            max: MAX_SCANNED_FILE_BYTES,
        });
    }
    let mut bytes = vec![0u8; len as usize];
    read_at(file, path, offset, &mut bytes)?;
    Ok(bytes)
}

/// An open replay file.
#[derive(Debug)]
pub struct ReplayReader {
    path: PathBuf,
    file: File,
    header: ReplayHeader,
    header_end: u64,
    /// Where the whole ticks end (the footer's offset on a clean file).
    data_end: u64,
    index: ReplayIndex,
    health: Health,
}

impl ReplayReader {
    /// Open `path` for reading. A cleanly closed file is opened from its header and footer
    /// alone; any other is scanned whole.
    pub fn open(path: &Path) -> Result<ReplayReader, LogError> {
        Self::open_with(path, None)
    }

    /// Like [`ReplayReader::open`], but a file without a footer is scanned only once, and a
    /// growing one (a running match) only from where its last scan ended.
    pub fn open_cached(path: &Path, cache: &ScanCache) -> Result<ReplayReader, LogError> {
        Self::open_with(path, Some(cache))
    }

    fn open_with(path: &Path, cache: Option<&ScanCache>) -> Result<ReplayReader, LogError> {
        let (file, file_len) = open_regular(path)?;
        if let Some(reader) = Self::open_by_footer(path, &file, file_len)? {
            return Ok(reader);
        }
        let scan = match cache {
            Some(cache) => cache.scan(path, &file, file_len)?,
            None => {
                let bytes = read_span(&file, path, 0, file_len)?;
                scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).map_err(|source| LogError::Format {
                    path: path.to_path_buf(),
                    source,
                })?
            }
        };
        Ok(ReplayReader {
            path: path.to_path_buf(),
            file,
            header_end: scan.header_end,
            data_end: scan.whole_end,
            index: scan.footer.clone().unwrap_or_else(|| scan.index()),
            health: Health {
                file_len,
                clean_close: scan.footer.is_some(),
                damage: scan.damage.clone(),
                tail_bytes: scan.tail_bytes,
            },
            header: scan.header,
        })
    }

    /// The reader of a file from its header and footer, or `None` if it has no footer that
    /// adds up (then the file is scanned instead, as REPLAY_FORMAT.md §9.3 says).
    fn open_by_footer(
        path: &Path,
        file: &File,
        file_len: u64,
    ) -> Result<Option<ReplayReader>, LogError> {
        let Some(before_trailer) = file_len.checked_sub(TRAILER_BYTES as u64) else {
            return Ok(None);
        };
        let mut trailer = [0u8; TRAILER_BYTES];
        read_at(file, path, before_trailer, &mut trailer)?;
        let Some(index_offset) = format::decode_trailer(&trailer) else {
            return Ok(None);
        };
        // The index record sits between the header and the trailer, and is not oversized.
        let Some(index_len) = before_trailer.checked_sub(index_offset) else {
            return Ok(None);
        };
        if index_offset < HEADER_PREFIX_BYTES as u64
            || index_len < FRAME_PREFIX_BYTES as u64 + 1
            || index_len > u64::from(DEFAULT_MAX_RECORD_BYTES) + FRAME_PREFIX_BYTES as u64
        {
            return Ok(None);
        }
        // The header: its prefix says how long it is; it must end at or before the index.
        let mut prefix = [0u8; HEADER_PREFIX_BYTES];
        read_at(file, path, 0, &mut prefix)?;
        let header_len = u32::from_le_bytes([prefix[10], prefix[11], prefix[12], prefix[13]]);
        let header_end = HEADER_PREFIX_BYTES as u64 + u64::from(header_len);
        if header_len > MAX_HEADER_BYTES || header_end > index_offset {
            return Ok(None);
        }
        let mut head = vec![0u8; header_end as usize];
        read_at(file, path, 0, &mut head)?;
        let (header, header_end) = match format::decode_header(&head) {
            Ok(found) => found,
            // A newer format is refused with its own advice, never read as damage.
            Err(source) if source.is_newer_version() => {
                return Err(LogError::Format {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Err(_) => return Ok(None),
        };
        let mut frame = vec![0u8; index_len as usize];
        read_at(file, path, index_offset, &mut frame)?;
        let index = match format::check_frame(&frame, index_offset, DEFAULT_MAX_RECORD_BYTES) {
            Ok(f) if f.size == frame.len() => {
                match format::decode_frame(f, index_offset, header.format_version) {
                    Ok(Record::Index(index)) => index,
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        // Snapshots the index names lie among the ticks, in order.
        let header_end = header_end as u64;
        let mut previous = None;
        for &(tick, offset) in &index.snapshots {
            if offset < header_end
                || offset >= index_offset
                || tick > index.last_tick
                || previous.is_some_and(|(t, o)| tick <= t || offset <= o)
            {
                return Ok(None);
            }
            previous = Some((tick, offset));
        }
        Ok(Some(ReplayReader {
            path: path.to_path_buf(),
            file: file.try_clone().map_err(io("opening", path))?,
            header,
            header_end,
            data_end: index_offset,
            index,
            health: Health {
                file_len,
                clean_close: true,
                damage: None,
                tail_bytes: 0,
            },
        }))
    }

    pub fn header(&self) -> &ReplayHeader {
        &self.header
    }

    pub fn index(&self) -> &ReplayIndex {
        &self.index
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the first tick starts.
    pub fn first_tick_offset(&self) -> u64 {
        self.header_end
    }

    /// Where the whole ticks end.
    pub fn data_end(&self) -> u64 {
        self.data_end
    }

    /// The latest snapshot taken at or before `tick`: (its tick, its offset).
    pub fn snapshot_before(&self, tick: Tick) -> Option<(Tick, u64)> {
        self.index
            .snapshots
            .iter()
            .rev()
            .find(|(t, _)| *t <= tick)
            .copied()
    }

    /// Read the snapshot record at `offset`.
    pub fn read_snapshot(&mut self, offset: u64) -> Result<SimSnapshot, LogError> {
        let fmt = |source| LogError::Format {
            path: self.path.clone(),
            source,
        };
        match self.records_from(offset)?.next() {
            Some(Ok((_, Record::Snapshot(s)))) => Ok(s),
            Some(Ok((_, other))) => Err(fmt(format::FormatError::UnexpectedRecord {
                offset,
                expected: "snapshot",
                found: Record::kind_name(other.kind()),
            })),
            Some(Err(e)) => Err(e),
            None => Err(fmt(format::FormatError::Truncated {
                offset,
                need: FRAME_PREFIX_BYTES as u64,
                available: 0,
            })),
        }
    }

    fn records_from(&self, offset: u64) -> Result<RecordReader, LogError> {
        Ok(RecordReader {
            file: self.file.try_clone().map_err(io("opening", &self.path))?,
            path: self.path.clone(),
            at: offset.max(self.header_end).min(self.data_end),
            end: self.data_end,
            format_version: self.header.format_version,
            buf: Vec::new(),
            buf_start: 0,
            failed: false,
        })
    }

    /// The whole ticks from `offset` (a tick's first record, or just after a snapshot) on,
    /// read a record at a time.
    pub fn ticks_from(&mut self, offset: u64) -> Result<TickIter, LogError> {
        Ok(TickIter {
            records: self.records_from(offset)?,
            pending: None,
        })
    }

    /// Whole ticks from the latest snapshot before `tick` on (or from the first): the cheap
    /// way to start reading at a given tick; the caller skips the few ticks before it.
    pub fn ticks_near(&mut self, tick: Tick) -> Result<TickIter, LogError> {
        let start = match self.snapshot_before(Tick(tick.0.saturating_sub(1))) {
            Some((_, offset)) => offset,
            None => self.header_end,
        };
        self.ticks_from(start)
    }

    /// Every whole tick, from the first.
    pub fn ticks(&mut self) -> Result<TickIter, LogError> {
        self.ticks_from(self.header_end)
    }
}

fn read_at(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset).map_err(io("reading", path))
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))
            .map_err(io("seeking in", path))?;
        file.read_exact(buf).map_err(io("reading", path))
    }
}

/// Records in file order between two offsets, read through a small buffer with positional
/// reads. Memory is bounded by the buffer and the largest record that fits before `end`.
#[derive(Debug)]
struct RecordReader {
    file: File,
    path: PathBuf,
    at: u64,
    end: u64,
    format_version: u16,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_start: u64,
    failed: bool,
}

/// How much is read from the file at a time.
const READ_CHUNK_BYTES: u64 = 64 * 1024;

impl RecordReader {
    /// The bytes `[offset, offset + len)`, which lie before `end`.
    fn bytes(&mut self, offset: u64, len: u64) -> Result<&[u8], LogError> {
        let have =
            offset >= self.buf_start && offset + len <= self.buf_start + self.buf.len() as u64;
        if !have {
            let want = len.max(READ_CHUNK_BYTES).min(self.end - offset);
            self.buf.resize(want as usize, 0);
            read_at(&self.file, &self.path, offset, &mut self.buf)?;
            self.buf_start = offset;
        }
        let from = (offset - self.buf_start) as usize;
        Ok(&self.buf[from..from + len as usize])
    }

    fn read(&mut self) -> Result<(u64, Record), LogError> {
        let offset = self.at;
        let path = self.path.clone();
        let fmt = |source| LogError::Format {
            path: path.clone(),
            source,
        };
        let available = self.end - offset;
        if available < FRAME_PREFIX_BYTES as u64 {
            return Err(fmt(format::FormatError::Truncated {
                offset,
                need: FRAME_PREFIX_BYTES as u64,
                available,
            }));
        }
        let prefix = self.bytes(offset, FRAME_PREFIX_BYTES as u64)?;
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len == 0 || len > DEFAULT_MAX_RECORD_BYTES {
            return Err(fmt(format::FormatError::BadLength {
                offset,
                len,
                max: DEFAULT_MAX_RECORD_BYTES,
            }));
        }
        let size = FRAME_PREFIX_BYTES as u64 + u64::from(len);
        if size > available {
            return Err(fmt(format::FormatError::Truncated {
                offset,
                need: size,
                available,
            }));
        }
        let format_version = self.format_version;
        let bytes = self.bytes(offset, size)?;
        let frame = format::check_frame(bytes, offset, DEFAULT_MAX_RECORD_BYTES).map_err(fmt)?;
        let record = format::decode_frame(frame, offset, format_version).map_err(fmt)?;
        self.at += size;
        Ok((offset, record))
    }
}

impl Iterator for RecordReader {
    type Item = Result<(u64, Record), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.end {
            return None;
        }
        let result = self.read();
        self.failed = result.is_err();
        Some(result)
    }
}

/// Whole ticks in file order, read a record at a time. The bytes were checked when the file
/// was scanned, or are covered by the footer of a clean close; checksums are verified again.
#[derive(Debug)]
pub struct TickIter {
    records: RecordReader,
    /// A record (or error) read ahead, to see whether a snapshot follows a tick's end.
    pending: Option<Result<(u64, Record), LogError>>,
}

impl TickIter {
    fn next_record(&mut self) -> Option<Result<(u64, Record), LogError>> {
        self.pending.take().or_else(|| self.records.next())
    }

    /// Where the next record not yet returned starts.
    pub fn offset(&self) -> u64 {
        match &self.pending {
            Some(Ok((offset, _))) => *offset,
            _ => self.records.at,
        }
    }
}

impl Iterator for TickIter {
    type Item = Result<TickRecords, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut events = Vec::new();
        let mut rejections = Vec::new();
        let mut first = None;
        loop {
            let (offset, record) = match self.next_record()? {
                Ok(found) => found,
                Err(e) => return Some(Err(e)),
            };
            first.get_or_insert(offset);
            match record {
                Record::Event(e) => events.push(e),
                Record::Rejected(r) => rejections.push(r),
                // A snapshot at the start means the caller began just after a tick's end.
                Record::Snapshot(_) | Record::Index(_)
                    if events.is_empty() && rejections.is_empty() =>
                {
                    first = None;
                }
                Record::Snapshot(_) | Record::Index(_) => {}
                Record::TickEnd(end) => {
                    let snapshot = match self.records.next() {
                        Some(Ok((_, Record::Snapshot(s)))) => Some(s),
                        // Anything else (an error too) is the next call's.
                        other => {
                            self.pending = other;
                            None
                        }
                    };
                    return Some(Ok(TickRecords {
                        tick: end.tick,
                        offset: first.unwrap_or(offset),
                        next_offset: self.offset(),
                        events,
                        rejections,
                        end,
                        snapshot,
                    }));
                }
            }
        }
    }
}

/// Scans of files without a footer, so that each is read once, and a growing one (a running
/// match's) only from where its last scan ended. One scan runs at a time, so memory is bounded
/// by one file's unscanned bytes. Keeps at most [`ScanCache::ENTRIES`] files.
#[derive(Debug, Default)]
pub struct ScanCache {
    entries: Mutex<BTreeMap<PathBuf, Cached>>,
    scanning: Mutex<u64>,
}

#[derive(Debug, Clone)]
struct Cached {
    identity: FileIdentity,
    scan: Scan,
    last_used: u64,
}

/// What tells two versions of a file apart: the same inode may only have grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(file: &File, path: &Path) -> Result<FileIdentity, LogError> {
        let meta = file.metadata().map_err(io("reading metadata of", path))?;
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Ok(FileIdentity {
            device,
            inode,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

impl ScanCache {
    /// Files remembered at most; the least recently used is forgotten first.
    pub const ENTRIES: usize = 4096;

    /// The scan of `file` (at `path`, `len` bytes long).
    fn scan(&self, path: &Path, file: &File, len: u64) -> Result<Scan, LogError> {
        let mut clock = self.scanning.lock();
        *clock += 1;
        let now = *clock;
        let identity = FileIdentity::of(file, path)?;
        let known = self.entries.lock().get(path).cloned();
        let fmt = |source| LogError::Format {
            path: path.to_path_buf(),
            source,
        };
        let scan = match known {
            Some(c) if c.identity == identity => c.scan,
            // The same file, grown since: scan only what was added after its last whole tick.
            Some(c)
                if c.identity.device == identity.device
                    && c.identity.inode == identity.inode
                    && c.scan.footer.is_none()
                    && len >= c.identity.len =>
            {
                let tail = read_span(file, path, c.scan.whole_end, len - c.scan.whole_end)?;
                scan::scan_more(&c.scan, &tail, DEFAULT_MAX_RECORD_BYTES).map_err(fmt)?
            }
            _ => {
                let bytes = read_span(file, path, 0, len)?;
                scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).map_err(fmt)?
            }
        };
        let mut entries = self.entries.lock();
        if entries.len() >= Self::ENTRIES
            && !entries.contains_key(path)
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(p, _)| p.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(
            path.to_path_buf(),
            Cached {
                identity,
                scan: scan.clone(),
                last_used: now,
            },
        );
        drop(clock);
        Ok(scan)
    }

    /// Forget `path` (it was removed or rewritten).
    pub fn forget(&self, path: &Path) {
        self.entries.lock().remove(path);
    }
}
