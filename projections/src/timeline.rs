//! A match's timeline from its stored events: the same fold as the live projection, sampled
//! every `interval_ticks`.
//!
//! Frames are at ticks 0, N, 2N, … up to the match's last projected tick, and at that tick
//! itself if it is not a multiple of N. A frame holds every player's state after all events
//! up to and including its tick, and the events of the ticks since the frame before.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tickforge_protocol::EventKind;

use crate::model::MatchModel;
use crate::query::{Frame, FramePlayer, Timeline};

/// An event as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub tick: u64,
    pub kind: String,
    pub player: Option<u32>,
    pub body: String,
}

/// The frame ticks of a page: at or after `from_tick`, at most `frames`, and the tick of the
/// frame after them, if there is one.
fn frame_ticks(
    interval: u64,
    last_tick: u64,
    from_tick: u64,
    frames: u32,
) -> (Vec<u64>, Option<u64>) {
    let first = from_tick.div_ceil(interval).saturating_mul(interval);
    let multiples = std::iter::successors(Some(first), |t| t.checked_add(interval))
        .take_while(|&t| t <= last_tick);
    let last = (!last_tick.is_multiple_of(interval) && from_tick <= last_tick).then_some(last_tick);
    let mut all = multiples.chain(last);
    let ticks: Vec<u64> = all.by_ref().take(frames as usize).collect();
    (ticks, all.next())
}

/// The tick of the frame before the one at `tick`.
fn frame_before(interval: u64, tick: u64) -> Option<u64> {
    if tick.is_multiple_of(interval) {
        tick.checked_sub(interval)
    } else {
        Some(tick - tick % interval)
    }
}

/// The last tick whose events a page needs.
pub fn page_end(model: &MatchModel, interval: u64, from_tick: u64, frames: u32) -> u64 {
    let (ticks, _) = frame_ticks(interval, model.last_tick, from_tick, frames);
    ticks.last().copied().unwrap_or(0)
}

/// Build the page from `events` (in seq order, every stored event with a tick up to
/// [`page_end`]).
pub fn build(
    model: &MatchModel,
    interval: u64,
    from_tick: u64,
    frames: u32,
    events: impl IntoIterator<Item = StoredEvent>,
) -> Timeline {
    let (ticks, next_from_tick) = frame_ticks(interval, model.last_tick, from_tick, frames);
    let mut fold = model.restarted();
    let mut events = events.into_iter().peekable();
    let mut out = Vec::with_capacity(ticks.len());
    // Events at or before this tick are folded, not shown: they are the frames' before the page.
    let shown_after = ticks.first().and_then(|&t| frame_before(interval, t));
    for &tick in &ticks {
        let mut shown = Vec::new();
        while let Some(e) = events.next_if(|e| e.tick <= tick) {
            let kind = serde_json::from_str::<EventKind>(&e.body);
            if let Ok(kind) = &kind {
                fold.fold(e.tick, kind);
            }
            if shown_after.is_none_or(|after| e.tick > after) {
                let body: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
                shown.push(json!({
                    "seq": e.seq,
                    "tick": e.tick,
                    "kind": e.kind,
                    "player": e.player,
                    "event": body,
                }));
            }
        }
        let players: BTreeMap<u32, FramePlayer> = fold
            .players
            .iter()
            .map(|(&id, p)| (id, FramePlayer::from(p)))
            .collect();
        out.push(Frame {
            tick,
            timestamp_ms: tick.saturating_mul(1000) / u64::from(model.tick_rate_hz.max(1)),
            players,
            events: shown,
        });
    }
    Timeline {
        match_id: model.match_id,
        interval_ticks: interval,
        tick_rate_hz: model.tick_rate_hz,
        frames: out,
        next_from_tick,
    }
}

#[cfg(test)]
mod tests {
    use super::frame_ticks;

    #[test]
    fn frames_fall_on_multiples_and_on_the_last_tick() {
        assert_eq!(frame_ticks(10, 25, 0, 100), (vec![0, 10, 20, 25], None));
        assert_eq!(frame_ticks(10, 30, 0, 100), (vec![0, 10, 20, 30], None));
        assert_eq!(frame_ticks(10, 25, 0, 2), (vec![0, 10], Some(20)));
        assert_eq!(frame_ticks(10, 25, 20, 1), (vec![20], Some(25)));
        assert_eq!(frame_ticks(10, 25, 21, 5), (vec![25], None));
        assert_eq!(frame_ticks(10, 25, 26, 5), (vec![], None));
        assert_eq!(frame_ticks(1, 3, 0, 10), (vec![0, 1, 2, 3], None));
        assert_eq!(frame_ticks(10, 0, 0, 10), (vec![0], None));
    }
}
