//! What a match's stream messages hold, as pure code over bytes: its first message is the
//! replay file's header; every other one holds one or more whole ticks, their records framed
//! exactly as in the replay file (events, rejections, the tick end, the snapshot if one was
//! taken). A reader of the stream therefore needs nothing but the replay format.

use tickforge_protocol::{REPLAY_FORMAT_VERSION, Record, ReplayHeader, TickEnd};

use crate::log::format::{self, FormatError};
use crate::log::{TickBatch, TickRecords};

/// The message header that says what a stream message holds: [`KIND_HEADER`] or
/// [`KIND_TICKS`].
pub const KIND: &str = "Tickforge-Kind";
/// The kind of the stream message that opens a match.
pub const KIND_HEADER: &str = "header";
/// The kind of a stream message that holds ticks.
pub const KIND_TICKS: &str = "ticks";

/// The largest payload one message is given (ticks are gathered until the next would pass
/// it); a single tick larger than this still goes alone, up to the server's `max_payload`.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Append one tick's records, framed as the replay file frames them.
pub fn encode_tick(batch: &TickBatch, out: &mut Vec<u8>) {
    for event in &batch.events {
        format::encode_record_of(Record::EVENT, event, out);
    }
    for rejection in &batch.rejections {
        format::encode_record_of(Record::REJECTED, rejection, out);
    }
    let end = TickEnd {
        tick: batch.tick,
        hash: batch.hash,
        parts: batch.parts.clone(),
    };
    format::encode_record_of(Record::TICK_END, &end, out);
    if let Some(snapshot) = &batch.snapshot {
        format::encode_record_of(Record::SNAPSHOT, snapshot.as_ref(), out);
    }
}

/// The header message's payload: the replay header, framed as the file's.
pub fn encode_header(header: &ReplayHeader) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_header(header, &mut out);
    out
}

pub fn decode_header(bytes: &[u8]) -> Result<ReplayHeader, FormatError> {
    format::decode_header(bytes).map(|(header, _)| header)
}

/// The whole ticks of one message's payload. Offsets in errors (and in the ticks) count from
/// the payload's start; a payload that ends inside a tick is refused.
pub fn decode_ticks(bytes: &[u8], max_record_bytes: u32) -> Result<Vec<TickRecords>, FormatError> {
    let mut ticks: Vec<TickRecords> = Vec::new();
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    let mut first: Option<u64> = None;
    let mut at = 0usize;
    while at < bytes.len() {
        let offset = at as u64;
        let frame = format::check_frame(&bytes[at..], offset, max_record_bytes)?;
        let size = frame.size;
        let record = format::decode_frame(frame, offset, REPLAY_FORMAT_VERSION)?;
        at += size;
        match record {
            Record::Event(e) => {
                first.get_or_insert(offset);
                events.push(e);
            }
            Record::Rejected(r) => {
                first.get_or_insert(offset);
                rejections.push(r);
            }
            Record::TickEnd(end) => {
                ticks.push(TickRecords {
                    tick: end.tick,
                    offset: first.take().unwrap_or(offset),
                    next_offset: at as u64,
                    events: std::mem::take(&mut events),
                    rejections: std::mem::take(&mut rejections),
                    end,
                    snapshot: None,
                });
            }
            Record::Snapshot(s) => match ticks.last_mut() {
                Some(last)
                    if events.is_empty() && rejections.is_empty() && last.snapshot.is_none() =>
                {
                    last.snapshot = Some(s);
                    last.next_offset = at as u64;
                }
                _ => {
                    return Err(FormatError::Decode {
                        offset,
                        kind: "snapshot",
                        source: tickforge_protocol::DecodeError::Invalid {
                            offset: 0,
                            detail: "a snapshot that does not follow a tick's end".into(),
                        },
                    });
                }
            },
            Record::Index(_) => {
                return Err(FormatError::UnknownKind {
                    offset,
                    kind: Record::INDEX,
                });
            }
        }
    }
    if first.is_some() || ticks.is_empty() {
        return Err(FormatError::Truncated {
            offset: bytes.len() as u64,
            need: 1,
            available: 0,
        });
    }
    Ok(ticks)
}

/// A tick read back from the stream, as the log writer takes it.
pub fn batch_of(t: TickRecords) -> TickBatch {
    TickBatch {
        tick: t.tick,
        events: t.events,
        rejections: t.rejections,
        hash: t.end.hash,
        parts: t.end.parts,
        snapshot: t.snapshot.map(Box::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headless::{self, HeadlessMatch};
    use crate::sim::MatchSetup;
    use tickforge_protocol::MatchId;

    #[test]
    fn ticks_round_trip_and_every_cut_is_refused() {
        let spec = HeadlessMatch {
            setup: MatchSetup {
                match_id: MatchId(3),
                seed: 7,
                tick_rate_hz: 60,
                game: crate::game::builtin()
                    .get("arena")
                    .expect("arena ships")
                    .default_config(),
            },
            players: 4,
            ticks: 30,
            bot_seed: 1,
        };
        let mut batches = Vec::new();
        headless::play_with(&spec, |sim, report| {
            let snapshot = report.tick.0.is_multiple_of(10).then(|| sim.snapshot());
            batches.push(TickBatch::from_report(report.clone(), snapshot));
        })
        .expect("plays");
        assert!(batches.iter().any(|b| !b.events.is_empty()));
        let mut bytes = Vec::new();
        for b in &batches {
            encode_tick(b, &mut bytes);
        }
        let back: Vec<TickBatch> = decode_ticks(&bytes, 1 << 20)
            .expect("decodes")
            .into_iter()
            .map(batch_of)
            .collect();
        assert_eq!(back, batches);
        for cut in (1..bytes.len()).step_by(7) {
            let whole = decode_ticks(&bytes[..cut], 1 << 20);
            if let Ok(ticks) = whole {
                // A cut that falls between two ticks leaves whole ticks only.
                let ends = ticks.last().map(|t| t.next_offset as usize);
                assert_eq!(ends, Some(cut));
            }
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 0x40;
        assert!(decode_ticks(&flipped, 1 << 20).is_err());
        assert!(decode_ticks(&[], 1 << 20).is_err());
    }
}
