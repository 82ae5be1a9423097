//! The byte layout of the replay file, as pure code over byte slices: no files, no threads.
//!
//! ```text
//! file    = header record* [index-record trailer]
//! header  = "TFREPLAY" | format_version u16 | len u32 | crc32c u32 | payload[len]
//!           (crc over format_version, len and payload; payload = MessagePack ReplayHeader)
//! record  = len u32 | crc32c u32 | kind u8 | payload[len - 1]
//!           (crc over len, kind and payload; payload = MessagePack of the record's value)
//! trailer = index_offset u64 | "TFINDEX\0"       (only after a clean close)
//! ```
//!
//! All integers are little-endian. See `docs/REPLAY_FORMAT.md`.

use tickforge_protocol::{
    DecodeError, DecodeLimits, EVENT_SCHEMA_VERSION, Event, REPLAY_FORMAT_VERSION, Record,
    RejectedCommand, ReplayHeader, ReplayIndex, SimSnapshot, TickEnd, decode_with, encode_into,
};

/// The first 8 bytes of every replay file.
pub const MAGIC: &[u8; 8] = b"TFREPLAY";
/// The last 8 bytes of a cleanly closed replay file.
pub const TRAILER_MAGIC: &[u8; 8] = b"TFINDEX\0";
/// magic + version + len + crc.
pub const HEADER_PREFIX_BYTES: usize = 8 + 2 + 4 + 4;
/// len + crc, before the kind byte.
pub const FRAME_PREFIX_BYTES: usize = 4 + 4;
pub const TRAILER_BYTES: usize = 8 + 8;
/// The format's largest record. Writers may use a lower limit, never a higher one, so that every
/// reader can read every file.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;
/// The largest header payload a reader accepts (a real one is a few hundred bytes).
pub const MAX_HEADER_BYTES: u32 = 1024 * 1024;

/// What went wrong while reading bytes of a replay file. Every variant names the offset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a tickforge replay file: the first bytes are {found:02x?}, expected \"TFREPLAY\"")]
    BadMagic { found: Vec<u8> },
    #[error(
        "replay format version {found} is newer than this build reads (up to {supported}): use a newer tickforge-replay"
    )]
    NewerFormat { found: u16, supported: u16 },
    #[error("replay format version {found} is not one this build knows")]
    UnknownFormat { found: u16 },
    #[error("the header ends early: the file has {len} bytes, the header needs {need}")]
    HeaderTruncated { len: u64, need: u64 },
    #[error("the header at offset=0 declares {len} bytes, more than the {max} a header may have")]
    HeaderTooLarge { len: u32, max: u32 },
    #[error("header checksum mismatch at offset=0 (stored {stored:08x}, computed {computed:08x})")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("header at offset=0 does not decode: {source}")]
    HeaderDecode { source: DecodeError },
    #[error("record at offset={offset} ends early: it needs {need} bytes, {available} remain")]
    Truncated {
        offset: u64,
        need: u64,
        available: u64,
    },
    #[error("record at offset={offset} declares length {len}, outside 1..={max}")]
    BadLength { offset: u64, len: u32, max: u32 },
    #[error("crc mismatch at offset={offset} (stored {stored:08x}, computed {computed:08x})")]
    Crc {
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("record at offset={offset} has unknown kind {kind}")]
    UnknownKind { offset: u64, kind: u8 },
    #[error("{kind} record at offset={offset} does not decode: {source}")]
    Decode {
        offset: u64,
        kind: &'static str,
        source: DecodeError,
    },
    #[error("record at offset={offset} is a {found} record where a {expected} record belongs")]
    UnexpectedRecord {
        offset: u64,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "event at offset={offset} has schema version {v}, newer than this build reads ({supported}): use a newer tickforge-replay"
    )]
    NewerEvent { offset: u64, v: u16, supported: u16 },
}

impl FormatError {
    /// True for errors that mean "this build is too old for the file", which must never be
    /// mistaken for damage (recovery would otherwise cut good records).
    pub fn is_newer_version(&self) -> bool {
        matches!(
            self,
            FormatError::NewerFormat { .. } | FormatError::NewerEvent { .. }
        )
    }
}

/// Encode the file header.
pub fn encode_header(header: &ReplayHeader, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(256);
    // A header always encodes: it is plain data of known shape.
    let _ = encode_into(header, &mut payload);
    out.extend_from_slice(MAGIC);
    let version = header.format_version.to_le_bytes();
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&version);
    crc = crc32c::crc32c_append(crc, &len);
    crc = crc32c::crc32c_append(crc, &payload);
    out.extend_from_slice(&version);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Decode the file header from the start of `bytes`; returns it and its length in bytes.
pub fn decode_header(bytes: &[u8]) -> Result<(ReplayHeader, usize), FormatError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(FormatError::BadMagic {
            found: bytes[..bytes.len().min(8)].to_vec(),
        });
    }
    if bytes.len() < HEADER_PREFIX_BYTES {
        return Err(FormatError::HeaderTruncated {
            len: bytes.len() as u64,
            need: HEADER_PREFIX_BYTES as u64,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let declared = u32_at(bytes, 10);
    if declared > MAX_HEADER_BYTES {
        return Err(FormatError::HeaderTooLarge {
            len: declared,
            max: MAX_HEADER_BYTES,
        });
    }
    let len = declared as usize;
    let stored = u32_at(bytes, 14);
    let end = HEADER_PREFIX_BYTES + len;
    if bytes.len() < end {
        return Err(FormatError::HeaderTruncated {
            len: bytes.len() as u64,
            need: end as u64,
        });
    }
    let payload = &bytes[HEADER_PREFIX_BYTES..end];
    let mut computed = crc32c::crc32c(&bytes[8..10]);
    computed = crc32c::crc32c_append(computed, &bytes[10..14]);
    computed = crc32c::crc32c_append(computed, payload);
    if computed != stored {
        return Err(FormatError::HeaderCrc { stored, computed });
    }
    // Only a header whose checksum holds is believed about its version.
    if version > REPLAY_FORMAT_VERSION {
        return Err(FormatError::NewerFormat {
            found: version,
            supported: REPLAY_FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(FormatError::UnknownFormat { found: version });
    }
    let header: ReplayHeader = decode_with(payload, DecodeLimits::TRUSTED)
        .map_err(|source| FormatError::HeaderDecode { source })?;
    if header.format_version != version {
        let detail = format!(
            "the header says format {} inside but {} outside",
            header.format_version, version
        );
        return Err(FormatError::HeaderDecode {
            source: DecodeError::Invalid { offset: 0, detail },
        });
    }
    Ok((upcast_header(header, version), end))
}

/// Bring a header of an older format version up to the current one. Version 1 is the first,
/// so there is nothing to convert yet; each future version adds its step here.
fn upcast_header(mut header: ReplayHeader, version: u16) -> ReplayHeader {
    header.format_version = version;
    header
}

/// Append one framed record to `out`. Returns its size in bytes.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) -> usize {
    match record {
        Record::Event(e) => encode_record_of(Record::EVENT, e, out),
        Record::Rejected(r) => encode_record_of(Record::REJECTED, r, out),
        Record::TickEnd(t) => encode_record_of(Record::TICK_END, t, out),
        Record::Snapshot(s) => encode_record_of(Record::SNAPSHOT, s, out),
        Record::Index(i) => encode_record_of(Record::INDEX, i, out),
    }
}

/// Append one framed record of `kind` holding `value` (the record's payload type, by
/// reference: no copy of it is made). Returns its size in bytes.
pub fn encode_record_of(kind: u8, value: &impl serde::Serialize, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    out.push(kind);
    // Records are plain data of known shape and always encode.
    let _ = encode_into(value, out);
    let len = (out.len() - start - FRAME_PREFIX_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&len.to_le_bytes()),
        &out[start + FRAME_PREFIX_BYTES..],
    );
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// One checked frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
    /// Total bytes of the frame, prefix included.
    pub size: usize,
}

/// Check the frame at the start of `bytes` (which sits at `offset` in the file): length,
/// checksum and kind. Does not decode the payload.
pub fn check_frame(
    bytes: &[u8],
    offset: u64,
    max_record_bytes: u32,
) -> Result<Frame<'_>, FormatError> {
    if bytes.len() < FRAME_PREFIX_BYTES {
        return Err(FormatError::Truncated {
            offset,
            need: FRAME_PREFIX_BYTES as u64,
            available: bytes.len() as u64,
        });
    }
    let len = u32_at(bytes, 0);
    if len == 0 || len > max_record_bytes {
        return Err(FormatError::BadLength {
            offset,
            len,
            max: max_record_bytes,
        });
    }
    let size = FRAME_PREFIX_BYTES + len as usize;
    if bytes.len() < size {
        return Err(FormatError::Truncated {
            offset,
            need: size as u64,
            available: bytes.len() as u64,
        });
    }
    let stored = u32_at(bytes, 4);
    let body = &bytes[FRAME_PREFIX_BYTES..size];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), body);
    if stored != computed {
        return Err(FormatError::Crc {
            offset,
            stored,
            computed,
        });
    }
    let kind = body[0];
    if !(Record::EVENT..=Record::INDEX).contains(&kind) {
        return Err(FormatError::UnknownKind { offset, kind });
    }
    Ok(Frame {
        kind,
        payload: &body[1..],
        size,
    })
}

/// Decode a checked frame's payload, upcasting older versions to the current types.
pub fn decode_frame(
    frame: Frame<'_>,
    offset: u64,
    format_version: u16,
) -> Result<Record, FormatError> {
    let kind_name = Record::kind_name(frame.kind);
    let err = |source| FormatError::Decode {
        offset,
        kind: kind_name,
        source,
    };
    // Format version 1 is the first: its payloads are the current types. A later version
    // decodes older payloads into their old shapes here and converts them.
    debug_assert!(format_version <= REPLAY_FORMAT_VERSION);
    let limits = DecodeLimits::TRUSTED;
    Ok(match frame.kind {
        Record::EVENT => {
            let event: Event = decode_with(frame.payload, limits).map_err(err)?;
            if event.v > EVENT_SCHEMA_VERSION {
                return Err(FormatError::NewerEvent {
                    offset,
                    v: event.v,
                    supported: EVENT_SCHEMA_VERSION,
                });
            }
            Record::Event(upcast_event(event))
        }
        Record::REJECTED => {
            Record::Rejected(decode_with::<RejectedCommand>(frame.payload, limits).map_err(err)?)
        }
        Record::TICK_END => {
            Record::TickEnd(decode_with::<TickEnd>(frame.payload, limits).map_err(err)?)
        }
        Record::SNAPSHOT => {
            Record::Snapshot(decode_with::<SimSnapshot>(frame.payload, limits).map_err(err)?)
        }
        Record::INDEX => {
            Record::Index(decode_with::<ReplayIndex>(frame.payload, limits).map_err(err)?)
        }
        kind => return Err(FormatError::UnknownKind { offset, kind }),
    })
}

/// Bring an event of an older schema version up to the current one. Version 1 is the first;
/// each future version adds its step here, so old replay files keep loading.
fn upcast_event(mut event: Event) -> Event {
    event.v = EVENT_SCHEMA_VERSION;
    event
}

/// The footer of a closed file: the index record at `at` (where the whole ticks end), then the
/// trailer that points at it.
pub fn encode_footer(index: &ReplayIndex, at: u64, out: &mut Vec<u8>) {
    encode_record(&Record::Index(index.clone()), out);
    encode_trailer(at, out);
}

/// The trailer that follows the index record of a cleanly closed file.
pub fn encode_trailer(index_offset: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&index_offset.to_le_bytes());
    out.extend_from_slice(TRAILER_MAGIC);
}

/// The index record's offset, if `bytes` ends with a trailer.
pub fn decode_trailer(tail: &[u8]) -> Option<u64> {
    if tail.len() < TRAILER_BYTES {
        return None;
    }
    let t = &tail[tail.len() - TRAILER_BYTES..];
    if &t[8..] != TRAILER_MAGIC {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&t[..8]);
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickforge_protocol::{StateHash, Tick};

    fn header() -> ReplayHeader {
        ReplayHeader {
            format_version: REPLAY_FORMAT_VERSION,
            protocol_version: 1,
            game: "drift".into(),
            rules_version: 1,
            match_id: tickforge_protocol::MatchId(1),
            seed: 1,
            tick_rate_hz: 60,
            config: tickforge_protocol::GameConfig::default_for("drift").expect("drift"),
            created_at_unix_ms: 0,
            snapshot_every_ticks: 0,
            hash_parts: vec!["engine".into()],
        }
    }

    #[test]
    fn a_newer_format_is_refused_with_advice() {
        let mut bytes = Vec::new();
        encode_header(
            &ReplayHeader {
                format_version: REPLAY_FORMAT_VERSION + 1,
                ..header()
            },
            &mut bytes,
        );
        let err = decode_header(&bytes).expect_err("a newer format must be refused");
        assert_eq!(
            err,
            FormatError::NewerFormat {
                found: REPLAY_FORMAT_VERSION + 1,
                supported: REPLAY_FORMAT_VERSION
            }
        );
        assert!(
            err.to_string().contains("use a newer tickforge-replay"),
            "{err}"
        );
        let mut bytes = Vec::new();
        encode_header(&header(), &mut bytes);
        assert_eq!(
            decode_header(&bytes).expect("the current format reads").0,
            header()
        );
    }

    #[test]
    fn a_newer_event_schema_is_refused() {
        let event = Event {
            match_id: tickforge_protocol::MatchId(1),
            seq: tickforge_protocol::Seq(1),
            tick: Tick(1),
            v: EVENT_SCHEMA_VERSION + 1,
            cause: tickforge_protocol::Cause::Rules,
            kind: tickforge_protocol::EventKind::ProjectileExpired {
                projectile: tickforge_protocol::EntityId(3),
            },
        };
        let mut bytes = Vec::new();
        encode_record(&Record::Event(event), &mut bytes);
        let frame = check_frame(&bytes, 40, DEFAULT_MAX_RECORD_BYTES).expect("frame is valid");
        let err = decode_frame(frame, 40, REPLAY_FORMAT_VERSION).expect_err("must refuse");
        assert!(
            matches!(err, FormatError::NewerEvent { offset: 40, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_record_round_trips_and_every_bit_flip_is_caught() {
        let record = Record::TickEnd(TickEnd {
            tick: Tick(7),
            hash: StateHash(99),
            parts: vec![1, 2, 3],
        });
        let mut bytes = Vec::new();
        let size = encode_record(&record, &mut bytes);
        let frame =
            check_frame(&bytes, 0, DEFAULT_MAX_RECORD_BYTES).expect("a fresh record checks");
        assert_eq!(frame.size, size);
        assert_eq!(decode_frame(frame, 0, 1).expect("decodes"), record);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                check_frame(&flipped, 0, DEFAULT_MAX_RECORD_BYTES).is_err(),
                "flipping bit {bit} should be caught"
            );
        }
    }
}
