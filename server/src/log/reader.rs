//! Reading a replay file: its header, its index (from the footer of a cleanly closed file, or
//! by scanning one that was not), and its ticks in order from any offset. Only whole ticks are
//! read; a damaged tail is reported in [`Health`], not returned.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tickforge_protocol::{
    Event, Record, RejectedCommand, ReplayHeader, ReplayIndex, SimSnapshot, Tick, TickEnd,
};

use super::format::{self, DEFAULT_MAX_RECORD_BYTES, FRAME_PREFIX_BYTES, TRAILER_BYTES};
use super::scan::{self, Damage};
use super::{LogError, io};

/// The records of one whole tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecords {
    pub tick: Tick,
    /// The offset of the tick's first record.
    pub offset: u64,
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
        let fmt = |source| LogError::Format {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io("opening", path))?;
        let file_len = file
            .metadata()
            .map_err(io("reading metadata of", path))?
            .len();
        if let Some(reader) = Self::open_by_footer(path, &mut file, file_len)? {
            return Ok(reader);
        }
        let bytes = super::recover::read_all(path)?;
        let scan = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).map_err(fmt)?;
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

    fn open_by_footer(
        path: &Path,
        file: &mut File,
        file_len: u64,
    ) -> Result<Option<ReplayReader>, LogError> {
        if file_len < TRAILER_BYTES as u64 {
            return Ok(None);
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        read_at(file, path, file_len - TRAILER_BYTES as u64, &mut trailer)?;
        let Some(index_offset) = format::decode_trailer(&trailer) else {
            return Ok(None);
        };
        if index_offset >= file_len - TRAILER_BYTES as u64 {
            return Ok(None);
        }
        let mut frame = vec![0u8; (file_len - TRAILER_BYTES as u64 - index_offset) as usize];
        read_at(file, path, index_offset, &mut frame)?;
        let mut head = vec![0u8; (index_offset as usize).min(64 * 1024)];
        read_at(file, path, 0, &mut head)?;
        let (header, header_end) = match format::decode_header(&head) {
            Ok(found) => found,
            Err(format::FormatError::HeaderTruncated { need, .. }) if need <= index_offset => {
                let mut head = vec![0u8; need as usize];
                read_at(file, path, 0, &mut head)?;
                format::decode_header(&head).map_err(|source| LogError::Format {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            Err(source) => {
                return Err(LogError::Format {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let index = match format::check_frame(&frame, index_offset, DEFAULT_MAX_RECORD_BYTES) {
            Ok(f) if f.size == frame.len() => {
                match format::decode_frame(f, index_offset, header.format_version) {
                    Ok(Record::Index(index)) => index,
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(ReplayReader {
            path: path.to_path_buf(),
            file: file.try_clone().map_err(io("opening", path))?,
            header,
            header_end: header_end as u64,
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
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        read_at(&mut self.file, &self.path, offset, &mut prefix)?;
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let mut frame = vec![0u8; FRAME_PREFIX_BYTES + len.min(DEFAULT_MAX_RECORD_BYTES as usize)];
        read_at(&mut self.file, &self.path, offset, &mut frame)?;
        let fmt = |source| LogError::Format {
            path: self.path.clone(),
            source,
        };
        let checked = format::check_frame(&frame, offset, DEFAULT_MAX_RECORD_BYTES).map_err(fmt)?;
        match format::decode_frame(checked, offset, self.header.format_version).map_err(fmt)? {
            Record::Snapshot(s) => Ok(s),
            other => Err(fmt(format::FormatError::UnknownKind {
                offset,
                kind: other.kind(),
            })),
        }
    }

    /// The whole ticks from `offset` (a tick's first record, or just after a snapshot) on.
    pub fn ticks_from(&mut self, offset: u64) -> Result<TickIter, LogError> {
        let start = offset.clamp(self.header_end, self.data_end);
        let mut bytes = vec![0u8; (self.data_end - start) as usize];
        read_at(&mut self.file, &self.path, start, &mut bytes)?;
        Ok(TickIter {
            bytes,
            at: 0,
            base: start,
            format_version: self.header.format_version,
            path: self.path.clone(),
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

fn read_at(file: &mut File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<(), LogError> {
    file.seek(SeekFrom::Start(offset))
        .map_err(io("seeking in", path))?;
    file.read_exact(buf).map_err(io("reading", path))
}

/// Whole ticks in file order. Reads from memory; the bytes were checked when the file was
/// scanned, or are covered by the footer of a clean close (checksums are verified again).
#[derive(Debug)]
pub struct TickIter {
    bytes: Vec<u8>,
    at: usize,
    base: u64,
    format_version: u16,
    path: PathBuf,
}

impl TickIter {
    fn next_record(&mut self) -> Option<Result<(u64, Record), LogError>> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let offset = self.base + self.at as u64;
        let fmt = |source| LogError::Format {
            path: self.path.clone(),
            source,
        };
        let result = format::check_frame(&self.bytes[self.at..], offset, DEFAULT_MAX_RECORD_BYTES)
            .and_then(|frame| {
                self.at += frame.size;
                format::decode_frame(frame, offset, self.format_version)
            })
            .map(|r| (offset, r))
            .map_err(fmt);
        if result.is_err() {
            self.at = self.bytes.len();
        }
        Some(result)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
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
                    let snapshot = self.peek_snapshot();
                    return Some(Ok(TickRecords {
                        tick: end.tick,
                        offset: first.unwrap_or(offset),
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

impl TickIter {
    /// If a snapshot record comes next, read it.
    fn peek_snapshot(&mut self) -> Option<SimSnapshot> {
        let rest = self.bytes.get(self.at..)?;
        let frame = format::check_frame(rest, 0, DEFAULT_MAX_RECORD_BYTES).ok()?;
        if frame.kind != Record::SNAPSHOT {
            return None;
        }
        let offset = self.base + self.at as u64;
        match format::decode_frame(frame, offset, self.format_version) {
            Ok(Record::Snapshot(s)) => {
                self.at += frame.size;
                Some(s)
            }
            _ => None,
        }
    }
}
