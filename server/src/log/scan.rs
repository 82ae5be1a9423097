//! Scanning a replay file's bytes: which records are whole and valid, where the last whole
//! tick ends, and what (if anything) is damaged. Pure code over a byte slice; recovery and the
//! reader act on its findings.

use tickforge_protocol::{Record, ReplayHeader, ReplayIndex, Seq, SimSnapshot, Tick};

use super::format::{self, FormatError, TRAILER_BYTES};

/// The first thing wrong in a file after its valid prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the first bad record starts.
    pub offset: u64,
    pub detail: String,
    /// The offset of a valid record found after the damage, if any: then the damage is not a
    /// torn tail but corruption in the middle of the file, and recovery needs the operator's
    /// consent (`repair`), since cutting there would drop records that look good.
    pub resumes_at: Option<u64>,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: ReplayHeader,
    pub header_end: u64,
    /// The end of the last whole tick (its `TickEnd`, and the snapshot after it if that is
    /// whole): the point a damaged or torn file is cut back to.
    pub whole_end: u64,
    pub last_tick: Tick,
    /// The last seq within the whole ticks.
    pub last_seq: Seq,
    pub events: u64,
    pub rejections: u64,
    /// (tick, offset) of each whole snapshot record.
    pub snapshots: Vec<(Tick, u64)>,
    /// The footer, if the file was closed cleanly.
    pub footer: Option<ReplayIndex>,
    /// Where the footer record starts, if there is one.
    pub footer_offset: Option<u64>,
    pub damage: Option<Damage>,
    /// Bytes after `whole_end` that are not part of a clean footer (a partial tick, damage).
    pub tail_bytes: u64,
    pub file_len: u64,
}

impl Scan {
    /// The file needs nothing: every byte is a whole tick or the footer.
    pub fn is_clean(&self) -> bool {
        self.damage.is_none() && self.tail_bytes == 0
    }

    /// The index of the whole ticks, as the footer would state it.
    pub fn index(&self) -> ReplayIndex {
        ReplayIndex {
            last_tick: self.last_tick,
            last_seq: self.last_seq,
            events: self.events,
            rejections: self.rejections,
            snapshots: self.snapshots.clone(),
        }
    }
}

/// Scan `bytes`, the whole file. Fails only if the header itself is unusable; damage after
/// the header is reported in [`Scan::damage`].
pub fn scan(bytes: &[u8], max_record_bytes: u32) -> Result<Scan, FormatError> {
    let (header, header_end) = format::decode_header(bytes)?;
    let file_len = bytes.len() as u64;
    let mut s = Scan {
        header_end: header_end as u64,
        whole_end: header_end as u64,
        last_tick: Tick(0),
        last_seq: Seq(0),
        events: 0,
        rejections: 0,
        snapshots: Vec::new(),
        footer: None,
        footer_offset: None,
        damage: None,
        tail_bytes: 0,
        file_len,
        header,
    };
    // Counts within the tick being read; they become whole at its TickEnd.
    let (mut seq, mut events, mut rejections) = (Seq(0), 0u64, 0u64);
    let mut at = header_end;
    let format_version = s.header.format_version;
    while at < bytes.len() {
        let offset = at as u64;
        let damaged = |detail: String| Damage {
            offset,
            detail,
            resumes_at: None,
        };
        let frame = match format::check_frame(&bytes[at..], offset, max_record_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                s.damage = Some(damaged(e.to_string()));
                break;
            }
        };
        let record = match format::decode_frame(frame, offset, format_version) {
            Ok(record) => record,
            // Written by a newer build: not damage, and never to be cut away.
            Err(e) if e.is_newer_version() => return Err(e),
            Err(e) => {
                s.damage = Some(damaged(e.to_string()));
                break;
            }
        };
        let tick = s.last_tick.next();
        let problem = match &record {
            Record::Event(e) if e.seq != seq.next() => Some(format!(
                "seq gap at offset={offset}: expected seq {}, found {}",
                seq.next().0,
                e.seq.0
            )),
            Record::Event(e) if e.tick != tick => Some(format!(
                "event seq {} at offset={offset} is stamped tick {}, but tick {} is being read",
                e.seq.0, e.tick.0, tick.0
            )),
            Record::Rejected(r) if r.tick != tick => Some(format!(
                "rejection at offset={offset} is stamped tick {}, but tick {} is being read",
                r.tick.0, tick.0
            )),
            Record::TickEnd(t) if t.tick != tick => Some(format!(
                "tick end at offset={offset} is for tick {}, expected tick {}",
                t.tick.0, tick.0
            )),
            Record::Snapshot(snap) if at as u64 != s.whole_end || snap.tick != s.last_tick => {
                Some(format!(
                    "snapshot of tick {} at offset={offset} does not directly follow that tick's end",
                    snap.tick.0
                ))
            }
            _ => None,
        };
        if let Some(detail) = problem {
            s.damage = Some(damaged(detail));
            break;
        }
        at += frame.size;
        match record {
            Record::Event(e) => {
                seq = e.seq;
                events += 1;
            }
            Record::Rejected(_) => rejections += 1,
            Record::TickEnd(t) => {
                s.last_tick = t.tick;
                s.last_seq = seq;
                s.events += events;
                s.rejections += rejections;
                (events, rejections) = (0, 0);
                s.whole_end = at as u64;
            }
            Record::Snapshot(SimSnapshot { tick, .. }) => {
                s.snapshots.push((tick, offset));
                s.whole_end = at as u64;
            }
            Record::Index(index) => {
                // A footer is valid only as the last record, followed by its trailer.
                let trailer_ok = at + TRAILER_BYTES == bytes.len()
                    && format::decode_trailer(bytes) == Some(offset)
                    && offset == s.whole_end;
                if trailer_ok {
                    s.footer = Some(index);
                    s.footer_offset = Some(offset);
                } else {
                    s.damage = Some(damaged(format!(
                        "index record at offset={offset} is not a clean footer (not at the end, or no trailer)"
                    )));
                }
                break;
            }
        }
    }
    if let Some(damage) = &mut s.damage {
        damage.resumes_at = find_valid_record(
            bytes,
            damage.offset as usize + 1,
            max_record_bytes,
            format_version,
        );
    }
    s.tail_bytes = if s.footer.is_some() {
        0
    } else {
        file_len - s.whole_end
    };
    Ok(s)
}

/// The first offset at or after `from` where a whole record starts: a valid checksum and a
/// payload that decodes.
fn find_valid_record(
    bytes: &[u8],
    from: usize,
    max_record_bytes: u32,
    format_version: u16,
) -> Option<u64> {
    (from..bytes.len().saturating_sub(format::FRAME_PREFIX_BYTES))
        .find(|&at| {
            format::check_frame(&bytes[at..], at as u64, max_record_bytes)
                .and_then(|frame| format::decode_frame(frame, at as u64, format_version))
                .is_ok()
        })
        .map(|at| at as u64)
}
