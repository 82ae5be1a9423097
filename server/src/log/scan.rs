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
    let start = Scan {
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
        file_len: bytes.len() as u64,
        header,
    };
    scan_tail(start, &bytes[header_end..], max_record_bytes)
}

/// Continue `prior`, the scan of a file that has grown since (a running match's): `tail` is
/// the file's bytes from `prior.whole_end` to its end now. Gives what [`scan`] of the whole
/// file would, reading only what was added after the last whole tick.
pub fn scan_more(prior: &Scan, tail: &[u8], max_record_bytes: u32) -> Result<Scan, FormatError> {
    let start = Scan {
        file_len: prior.whole_end + tail.len() as u64,
        footer: None,
        footer_offset: None,
        damage: None,
        tail_bytes: 0,
        ..prior.clone()
    };
    scan_tail(start, tail, max_record_bytes)
}

/// Read the records in `tail` (the file's bytes from `s.whole_end` to its end) into `s`.
fn scan_tail(mut s: Scan, tail: &[u8], max_record_bytes: u32) -> Result<Scan, FormatError> {
    let base = s.whole_end;
    // Counts within the tick being read; they become whole at its TickEnd.
    let (mut seq, mut events, mut rejections) = (s.last_seq, 0u64, 0u64);
    let mut at = 0usize;
    let format_version = s.header.format_version;
    while at < tail.len() {
        let offset = base + at as u64;
        let damaged = |detail: String| Damage {
            offset,
            detail,
            resumes_at: None,
        };
        let frame = match format::check_frame(&tail[at..], offset, max_record_bytes) {
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
            Record::Snapshot(snap) if offset != s.whole_end || snap.tick != s.last_tick => {
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
                s.whole_end = base + at as u64;
            }
            Record::Snapshot(SimSnapshot { tick, .. }) => {
                s.snapshots.push((tick, offset));
                s.whole_end = base + at as u64;
            }
            Record::Index(index) => {
                // A footer is valid only as the last record, followed by its trailer.
                let trailer_ok = at + TRAILER_BYTES == tail.len()
                    && format::decode_trailer(tail) == Some(offset)
                    && offset == s.whole_end;
                if !trailer_ok {
                    s.damage = Some(damaged(format!(
                        "index record at offset={offset} is not a clean footer (not at the end, or no trailer)"
                    )));
                } else if index != s.index() {
                    s.damage = Some(damaged(format!(
                        "the footer at offset={offset} does not match the records before it: it says tick {} and {} events, the records end at tick {} with {} events",
                        index.last_tick.0, index.events, s.last_tick.0, s.events
                    )));
                } else {
                    s.footer = Some(index);
                    s.footer_offset = Some(offset);
                }
                break;
            }
        }
    }
    if let Some(damage) = &mut s.damage {
        let from = (damage.offset - base) as usize + 1;
        damage.resumes_at = find_valid_record(tail, from, max_record_bytes).map(|at| base + at);
    }
    s.tail_bytes = if s.footer.is_some() {
        0
    } else {
        s.file_len - s.whole_end
    };
    Ok(s)
}

/// The first offset at or after `from` where a whole record starts: a known kind, a length
/// that fits, and a checksum that holds. (Its payload is not decoded: a record whose checksum
/// holds was written by a writer, and a file with one after its damage needs the operator's
/// consent to cut.)
///
/// Linear in the bytes after `from`, whatever they hold. Checking each candidate's checksum
/// over its own bytes would cost its length, and a crafted (or merely random) tail can make
/// every few bytes a candidate of megabytes: quadratic. Instead the checksum of any span comes
/// from running checksums of the region kept every [`CHECKPOINT_BYTES`], by CRC arithmetic
/// ([`crc_shift`]): a constant cost per candidate.
fn find_valid_record(bytes: &[u8], from: usize, max_record_bytes: u32) -> Option<u64> {
    let region = bytes.get(from..)?;
    let prefix = PrefixCrc::new(region);
    let last = region.len().checked_sub(format::FRAME_PREFIX_BYTES + 1)?;
    (0..=last)
        .find(|&at| {
            let head = &region[at..];
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if len == 0 || len > max_record_bytes {
                return false;
            }
            let size = format::FRAME_PREFIX_BYTES + len as usize;
            if size > head.len() {
                return false;
            }
            if !(Record::EVENT..=Record::INDEX).contains(&head[format::FRAME_PREFIX_BYTES]) {
                return false;
            }
            let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            // The frame's checksum covers its length field, then kind and payload.
            let body = prefix.span(at + format::FRAME_PREFIX_BYTES, at + size);
            let computed = crc_shift::shift(crc32c::crc32c(&head[..4]), len as u64) ^ body;
            computed == stored
        })
        .map(|at| (from + at) as u64)
}

/// How far apart [`PrefixCrc`] keeps its running checksums.
const CHECKPOINT_BYTES: usize = 64;

/// The CRC-32C of any span of a byte region in constant time, from the running checksums of
/// the region kept every [`CHECKPOINT_BYTES`] (memory: a sixteenth of the region).
struct PrefixCrc<'a> {
    region: &'a [u8],
    /// `checkpoints[k]` = crc32c(region[..k × CHECKPOINT_BYTES]).
    checkpoints: Vec<u32>,
}

impl<'a> PrefixCrc<'a> {
    fn new(region: &'a [u8]) -> PrefixCrc<'a> {
        let mut checkpoints = Vec::with_capacity(region.len() / CHECKPOINT_BYTES + 1);
        let mut crc = 0;
        checkpoints.push(crc);
        for chunk in region.chunks_exact(CHECKPOINT_BYTES) {
            crc = crc32c::crc32c_append(crc, chunk);
            checkpoints.push(crc);
        }
        PrefixCrc {
            region,
            checkpoints,
        }
    }

    /// crc32c(region[..end]).
    fn prefix(&self, end: usize) -> u32 {
        let k = end / CHECKPOINT_BYTES;
        crc32c::crc32c_append(self.checkpoints[k], &self.region[k * CHECKPOINT_BYTES..end])
    }

    /// crc32c(region[start..end]): crc(A ‖ B) = shift(crc(A), |B|) ⊕ crc(B), solved for crc(B).
    fn span(&self, start: usize, end: usize) -> u32 {
        self.prefix(end) ^ crc_shift::shift(self.prefix(start), (end - start) as u64)
    }
}

/// CRC-32C arithmetic. For the standard CRC-32C (reflected polynomial 0x82F63B78, initial
/// value and final xor all ones), `crc(A ‖ B) = shift(crc(A), |B|) ⊕ crc(B)`, where
/// `shift(v, n)` runs the bare CRC register `v` over `n` zero bytes. `shift` is linear in `v`:
/// a 32×32 bit matrix, the `n`th power of the one-zero-byte matrix. The matrices for 2^k zero
/// bytes are kept as byte-indexed tables, so a shift by any `n` costs four table lookups per
/// set bit of `n`.
pub(crate) mod crc_shift {
    use std::sync::OnceLock;

    const POLY: u32 = 0x82F6_3B78;

    /// `TABLES[k][i][b]` = the matrix of 2^k zero bytes applied to `b << 8i`.
    type Tables = Vec<[[u32; 256]; 4]>;

    fn tables() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            // Columns of the matrix of one zero byte: eight register steps of each unit vector.
            let mut matrix = [0u32; 32];
            for (j, column) in matrix.iter_mut().enumerate() {
                let mut v = 1u32 << j;
                for _ in 0..8 {
                    v = if v & 1 == 1 { (v >> 1) ^ POLY } else { v >> 1 };
                }
                *column = v;
            }
            let apply = |m: &[u32; 32], v: u32| -> u32 {
                (0..32)
                    .filter(|j| v & (1 << j) != 0)
                    .fold(0, |acc, j| acc ^ m[j])
            };
            let mut out = Vec::with_capacity(64);
            for _ in 0..64 {
                let mut table = [[0u32; 256]; 4];
                for (i, row) in table.iter_mut().enumerate() {
                    for (b, cell) in row.iter_mut().enumerate() {
                        *cell = apply(&matrix, (b as u32) << (8 * i));
                    }
                }
                out.push(table);
                let square: Vec<u32> = matrix.iter().map(|&c| apply(&matrix, c)).collect();
                matrix.copy_from_slice(&square);
            }
            out
        })
    }

    /// The bare CRC register `v` after `n` zero bytes.
    pub(crate) fn shift(mut v: u32, n: u64) -> u32 {
        let tables = tables();
        let mut n = n;
        let mut k = 0;
        while n != 0 {
            if n & 1 == 1 {
                let t = &tables[k];
                v = t[0][(v & 0xff) as usize]
                    ^ t[1][((v >> 8) & 0xff) as usize]
                    ^ t[2][((v >> 16) & 0xff) as usize]
                    ^ t[3][(v >> 24) as usize];
            }
            n >>= 1;
            k += 1;
        }
        v
    }

    #[cfg(test)]
    mod tests {
        use super::shift;

        #[test]
        fn shifting_combines_checksums_as_the_crate_does() {
            let data: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
            for split in [0, 1, 7, 64, 1000, 4999, 5000] {
                let (a, b) = data.split_at(split);
                let (ca, cb) = (crc32c::crc32c(a), crc32c::crc32c(b));
                assert_eq!(
                    shift(ca, b.len() as u64) ^ cb,
                    crc32c::crc32c(&data),
                    "crc(A‖B) = shift(crc(A), |B|) ⊕ crc(B) at split {split}"
                );
                assert_eq!(
                    shift(ca, b.len() as u64) ^ cb,
                    crc32c::crc32c_combine(ca, cb, b.len())
                );
            }
        }
    }
}
