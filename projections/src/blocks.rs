//! A match's events and rejections stored as blocks: a few rows per match instead of one per
//! event, which is what a rebuild's speed and the live projector's commits are made of.
//!
//! - **Events.** Block `b` of a match holds its events of seqs `b·EVENT_BLOCK + 1 ..=
//!   (b+1)·EVENT_BLOCK`, one JSON line each, in seq order.
//! - **Rejections.** A block holds one player's rejections by one rule in one
//!   [`REJECTION_WINDOW_MS`] of the match's clock (under the name the player had then), one
//!   JSON line each, in tick order.
//!
//! A commit appends its lines to their blocks (a new block is inserted). The boundaries depend
//! on the events alone, so a rebuild writes exactly the live projector's rows, whatever either
//! one's batches were. Pure: the rows are built and read here, written by [`crate::sql`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{EventRow, RejectionRow};
use crate::query::Rejected;
use crate::timeline::StoredEvent;

/// Seqs per event block: 64 events of drift (its most frequent kind, a steer, is about 110
/// bytes of JSON) are a 7 KB row.
pub const EVENT_BLOCK: u64 = 64;

/// The span of the match's clock one rejection block covers.
pub const REJECTION_WINDOW_MS: u64 = 10_000;

/// The new part of one event block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBlock {
    pub block: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_tick: u64,
    pub last_tick: u64,
    pub events: u64,
    /// JSON lines, each ending in `\n`.
    pub body: String,
}

/// Group `events` (in seq order) into the parts of their blocks.
pub fn event_blocks(events: &[EventRow]) -> Vec<EventBlock> {
    let mut out: Vec<EventBlock> = Vec::new();
    for e in events {
        let block = e.seq.saturating_sub(1) / EVENT_BLOCK;
        let part = match out.last_mut() {
            Some(part) if part.block == block => part,
            _ => {
                out.push(EventBlock {
                    block,
                    first_seq: e.seq,
                    last_seq: e.seq,
                    first_tick: e.tick,
                    last_tick: e.tick,
                    events: 0,
                    body: String::with_capacity(EVENT_BLOCK as usize * 112),
                });
                out.last_mut().expect("just pushed")
            }
        };
        part.last_seq = e.seq;
        part.last_tick = e.tick;
        part.events += 1;
        event_line(&mut part.body, e);
    }
    out
}

/// `{"seq":…,"tick":…,"kind":…,"player":…,"event":…}\n`: the shape of a timeline's event.
fn event_line(out: &mut String, e: &EventRow) {
    let _ = write!(out, "{{\"seq\":{},\"tick\":{},\"kind\":", e.seq, e.tick);
    json_str(out, &e.kind);
    match e.player {
        Some(p) => {
            let _ = write!(out, ",\"player\":{p}");
        }
        None => out.push_str(",\"player\":null"),
    }
    out.push_str(",\"event\":");
    out.push_str(if e.body.is_empty() { "null" } else { &e.body });
    out.push_str("}\n");
}

/// `s` as a JSON string.
fn json_str(out: &mut String, s: &str) {
    // Names and most details need no escape.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

#[derive(Deserialize)]
struct EventLine<'a> {
    seq: u64,
    tick: u64,
    kind: String,
    player: Option<u32>,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// The events of stored blocks' bodies (in block order) with a tick up to `end`. A line that
/// does not parse (a database edited by hand) is skipped.
pub fn read_events<'a>(
    bodies: impl IntoIterator<Item = &'a str>,
    end: u64,
) -> impl Iterator<Item = StoredEvent> {
    bodies
        .into_iter()
        .flat_map(str::lines)
        .filter_map(|line| serde_json::from_str::<EventLine<'_>>(line).ok())
        .filter(move |e| e.tick <= end)
        .map(|e| StoredEvent {
            seq: e.seq,
            tick: e.tick,
            kind: e.kind,
            player: e.player,
            body: e.event.get().to_string(),
        })
}

/// The key of a rejection block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectionKey {
    pub window_ms: u64,
    pub player: u32,
    /// Empty before the player joined.
    pub name: String,
    pub rule: String,
}

/// The new part of one rejection block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionBlock {
    pub key: RejectionKey,
    pub first_tick: u64,
    pub last_tick: u64,
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    pub rejections: u64,
    /// JSON lines, each ending in `\n`.
    pub body: String,
}

/// Group `rejections` (in tick order) into the parts of their blocks, in key order.
pub fn rejection_blocks(rejections: &[RejectionRow]) -> Vec<RejectionBlock> {
    // By key, borrowed from the rows: a block's key is made once, not once per rejection.
    let mut index: BTreeMap<(u64, u32, &str, &str), usize> = BTreeMap::new();
    let mut out: Vec<RejectionBlock> = Vec::new();
    for r in rejections {
        let window_ms = r.at_unix_ms - r.at_unix_ms % REJECTION_WINDOW_MS;
        let name = r.name.as_deref().unwrap_or("");
        let k = *index
            .entry((window_ms, r.player, name, r.rule.as_str()))
            .or_insert_with(|| {
                out.push(RejectionBlock {
                    key: RejectionKey {
                        window_ms,
                        player: r.player,
                        name: name.to_string(),
                        rule: r.rule.clone(),
                    },
                    first_tick: r.tick,
                    last_tick: r.tick,
                    first_at_ms: r.at_unix_ms,
                    last_at_ms: r.at_unix_ms,
                    rejections: 0,
                    body: String::new(),
                });
                out.len() - 1
            });
        let part = &mut out[k];
        part.last_tick = r.tick;
        part.last_at_ms = r.at_unix_ms;
        part.rejections += 1;
        let _ = write!(
            part.body,
            "{{\"tick\":{},\"ord\":{},\"command_id\":{},\"at_ms\":{},\"detail\":",
            r.tick, r.ord, r.command_id, r.at_unix_ms
        );
        json_str(&mut part.body, &r.detail);
        part.body.push_str(",\"command\":");
        part.body.push_str(if r.command.is_empty() {
            "null"
        } else {
            &r.command
        });
        part.body.push_str("}\n");
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[derive(Deserialize)]
struct RejectionLine {
    tick: u64,
    ord: u32,
    command_id: u32,
    at_ms: u64,
    detail: String,
    command: serde_json::Value,
}

/// One stored rejection block, as read.
#[derive(Debug, Clone)]
pub struct StoredRejections {
    pub match_id: u64,
    pub player: u32,
    pub name: String,
    pub rule: String,
    pub body: String,
}

/// A rejection with the key the audit trail is ordered by: time, match, tick, place in tick.
pub type Ordered = ((u64, u64, u64, u32), Rejected);

/// The rejections of a stored block with a time in `[from, to)`.
pub fn read_rejections(block: &StoredRejections, from: u64, to: u64) -> Vec<Ordered> {
    block
        .body
        .lines()
        .filter_map(|line| serde_json::from_str::<RejectionLine>(line).ok())
        .filter(|r| (from..to).contains(&r.at_ms))
        .map(|r| {
            (
                (r.at_ms, block.match_id, r.tick, r.ord),
                Rejected {
                    match_id: block.match_id,
                    tick: r.tick,
                    player: block.player,
                    name: (!block.name.is_empty()).then(|| block.name.clone()),
                    command_id: r.command_id,
                    rule: block.rule.clone(),
                    detail: r.detail,
                    command: r.command,
                    at_unix_ms: r.at_ms,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, tick: u64) -> EventRow {
        EventRow {
            seq,
            tick,
            kind: "player_steered".into(),
            player: seq.is_multiple_of(2).then_some(3),
            body: format!("{{\"player_steered\":{{\"entity\":{seq}}}}}"),
        }
    }

    #[test]
    fn events_split_at_block_boundaries_and_read_back() {
        let events: Vec<EventRow> = (60..=130).map(|s| event(s, s / 4)).collect();
        let blocks = event_blocks(&events);
        let spans: Vec<_> = blocks
            .iter()
            .map(|b| (b.block, b.first_seq, b.last_seq, b.events))
            .collect();
        assert_eq!(spans, [(0, 60, 64, 5), (1, 65, 128, 64), (2, 129, 130, 2)]);
        // Two commits' parts of a block, appended, are the block of one commit.
        let (a, b) = events.split_at(20);
        let mut appended = event_blocks(a);
        let rest = event_blocks(b);
        assert_eq!(appended[1].block, rest[0].block);
        appended[1].body.push_str(&rest[0].body);
        assert_eq!(appended[1].body, blocks[1].body);
        let read: Vec<StoredEvent> =
            read_events(blocks.iter().map(|b| b.body.as_str()), 31).collect();
        assert_eq!(read.len(), 128 - 60);
        assert_eq!((read[0].seq, read[0].tick), (60, 15));
        assert_eq!(read[0].player, Some(3));
        assert_eq!(read[1].player, None);
        assert_eq!(read[0].body, "{\"player_steered\":{\"entity\":60}}");
    }

    #[test]
    fn rejections_group_by_window_player_name_and_rule() {
        let row = |tick: u64, player: u32, name: Option<&str>, rule: &str| RejectionRow {
            tick,
            ord: 0,
            player,
            name: name.map(str::to_string),
            command_id: tick as u32,
            rule: rule.into(),
            detail: "too \"soon\"".into(),
            command: "{\"fire\":{}}".into(),
            at_unix_ms: 1_000 * tick,
        };
        let rows = [
            row(1, 1, None, "cooldown"),
            row(2, 1, Some("ann"), "cooldown"),
            row(3, 1, Some("ann"), "cooldown"),
            row(4, 1, Some("ann"), "rate"),
            row(12, 1, Some("ann"), "cooldown"),
        ];
        let blocks = rejection_blocks(&rows);
        let keys: Vec<_> = blocks
            .iter()
            .map(|b| {
                (
                    b.key.window_ms,
                    b.key.name.as_str(),
                    b.key.rule.as_str(),
                    b.rejections,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (0, "", "cooldown", 1),
                (0, "ann", "cooldown", 2),
                (0, "ann", "rate", 1),
                (10_000, "ann", "cooldown", 1)
            ]
        );
        let stored = StoredRejections {
            match_id: 9,
            player: 1,
            name: "ann".into(),
            rule: "cooldown".into(),
            body: blocks[1].body.clone(),
        };
        let read = read_rejections(&stored, 0, 3_000);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, (2_000, 9, 2, 0));
        assert_eq!(read[0].1.detail, "too \"soon\"");
        assert_eq!(read[0].1.command, serde_json::json!({"fire": {}}));
    }
}
