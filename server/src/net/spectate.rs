//! A spectator: a read-only cursor on one match's event stream.
//!
//! It starts after any seq (0 = the beginning) or at the live end, catches up from the match's
//! in-memory ring of recent ticks or, for older ticks, from the replay file, then follows live
//! (optionally `delay` ticks behind) with no gap and no duplicate: the cursor only ever moves
//! forward one tick at a time. The match never waits for a spectator; a slow one falls behind
//! the ring and reads the file until it catches up. Finished matches are read from the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use tickforge_protocol::{CloseCode, Event, Seq, SpectatorMessage, StateHash, Tick};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use super::AppState;
use super::session::{Incoming, Liveness, next_frame, write_loop};
use crate::log::ReplayReader;
use crate::matches::sinks::{encode_spectator, encode_spectator_tick};
use crate::matches::{LiveMark, MatchShared, RingSearch, SessionControl, Waiter};

/// Where a spectator starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// After this seq: 0 = from the first event.
    Seq(Seq),
    /// From the live end.
    Live,
}

/// A spectator's request, from the URL's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpectateParams {
    pub from: From,
    /// Stay this many ticks behind live.
    pub delay_ticks: u64,
    pub json: bool,
}

impl SpectateParams {
    /// Parse `from=SEQ|live&delay=TICKS&format=json|msgpack` (every part optional).
    pub fn parse(query: Option<&str>) -> Result<SpectateParams, String> {
        let mut params = SpectateParams {
            from: From::Live,
            delay_ticks: 0,
            json: false,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "from" if value == "live" => params.from = From::Live,
                "from" => {
                    params.from = From::Seq(Seq(value
                        .parse()
                        .map_err(|_| format!("from={value}: use a seq number or live"))?))
                }
                "delay" => {
                    params.delay_ticks = value
                        .parse()
                        .map_err(|_| format!("delay={value}: use a number of ticks"))?
                }
                "format" if value == "json" => params.json = true,
                "format" if value == "msgpack" => params.json = false,
                "format" => return Err(format!("format={value}: use json or msgpack")),
                "token" => {}
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: use from, delay and format"
                    ));
                }
            }
        }
        Ok(params)
    }
}

/// What a spectator watches: a running match (shared state) and/or its replay file.
#[derive(Debug, Clone)]
pub struct Source {
    pub shared: Option<Arc<MatchShared>>,
    pub path: PathBuf,
}

/// One tick to send: its frame with every event, and what it takes to encode a frame of the
/// events after a seq instead (for the first tick of a spectator who starts inside it).
struct TickOut {
    tick: Tick,
    hash: StateHash,
    frame: Bytes,
    events: TickEvents,
}

/// A tick's events: the ring's batch, or read from the file.
enum TickEvents {
    Ring(Arc<crate::log::TickBatch>),
    File(Vec<Event>),
}

impl TickOut {
    fn events(&self) -> &[Event] {
        match &self.events {
            TickEvents::Ring(batch) => &batch.events,
            TickEvents::File(events) => events,
        }
    }

    /// The frame for a spectator who has seen every event up to `after`.
    fn frame_after(&self, after: Seq, json: bool, metrics: &crate::metrics::Metrics) -> Bytes {
        let events = self.events();
        if events.first().is_none_or(|e| e.seq > after) {
            return self.frame.clone();
        }
        metrics.spectator_encodes.inc();
        let rest: Vec<Event> = events.iter().filter(|e| e.seq > after).cloned().collect();
        encode_spectator_tick(self.tick, self.hash, &rest, json)
    }
}

/// Run one spectator connection to its end.
pub(crate) async fn run_spectator<S>(
    ws: WebSocketStream<S>,
    params: SpectateParams,
    source: Source,
    state: Arc<AppState>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    // A small queue, but room for a whole tick of frames (so that the writer sends a tick in
    // one write): the cursor waits for room, so a slow spectator only slows itself.
    let (frames_tx, frames_rx) = mpsc::channel::<Bytes>(SPECTATOR_QUEUE_FRAMES);
    let control = Arc::new(SessionControl::default());
    let liveness = Liveness::new();
    liveness.pong();
    let writer = tokio::spawn(write_loop(
        sink,
        frames_rx,
        control.clone(),
        liveness.clone(),
        state.clone(),
        params.json,
    ));
    state.metrics.spectators.inc();
    if let Some(shared) = &source.shared {
        shared.spectators.fetch_add(1, Ordering::Relaxed);
    }
    let reader = {
        let (control, state, liveness) = (control.clone(), state.clone(), liveness.clone());
        async move {
            // Control frames are answered inside next_frame; the first data frame is a
            // violation (a text frame is refused there, with 1007).
            match next_frame(&mut stream, &liveness, &state, SPECTATOR_FRAME_BYTES).await {
                Ok(Incoming::Data(_)) => control.close(
                    CloseCode::PolicyViolation,
                    "spectators are read-only: no messages are accepted",
                ),
                Ok(Incoming::Closed) => control.cancel.cancel(),
                Err((code, reason)) => control.close(code, reason),
            }
        }
    };
    let cursor = follow(params, &source, &frames_tx, &state);
    tokio::select! {
        () = control.cancel.cancelled(Waiter::Main) => {}
        () = reader => {}
        result = cursor => match result {
            Ok(()) => control.close(CloseCode::Normal, "the match is over"),
            Err((code, reason)) => control.close(code, reason),
        },
    }
    control.cancel.cancel();
    drop(frames_tx);
    let _ = writer.await;
    if let Some(shared) = &source.shared {
        shared.spectators.fetch_sub(1, Ordering::Relaxed);
    }
    state.metrics.spectators.dec();
}

/// The largest frame a spectator may send (it sends nothing; this bounds what is read).
pub(crate) const SPECTATOR_FRAME_BYTES: usize = 1024;

/// Frames a spectator's queue holds: every frame of a busy tick, a few ticks of a quiet one.
const SPECTATOR_QUEUE_FRAMES: usize = 64;

/// Ticks read at most per batch: a spectator catching up on a long match holds this many
/// ticks in memory, not the match.
const BATCH_TICKS: usize = 64;

/// Where the cursor is: the next tick to send and, when known, where it starts in the file.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    tick: Tick,
    offset: Option<u64>,
}

/// The cursor: send every tick from the start on, then follow live. Returns when the match is
/// over and everything has been sent.
async fn follow(
    params: SpectateParams,
    source: &Source,
    out: &mpsc::Sender<Bytes>,
    state: &AppState,
) -> Result<(), (CloseCode, String)> {
    let gone = || (CloseCode::Normal, "the spectator went away".to_string());
    let send_frame = async |frame: Bytes| -> Result<(), (CloseCode, String)> {
        out.send(frame).await.map_err(|_| gone())
    };
    let send = async |message: SpectatorMessage| -> Result<(), (CloseCode, String)> {
        state.metrics.spectator_encodes.inc();
        send_frame(encode_spectator(&message, params.json)).await
    };
    let mut live_rx = source.shared.as_ref().map(|s| s.live.subscribe());
    // A finished match's file no longer changes: its end is read once.
    let mut finished_mark: Option<LiveMark> = None;

    // Where "live" is now: the running match's mark, or the end of the file of a finished one.
    let start_mark = live_mark(&live_rx, &mut finished_mark, source, state).await?;
    let mut sent_seq = match params.from {
        From::Seq(seq) => seq,
        From::Live => start_mark.seq,
    };
    let mut cursor: Option<Cursor> = match params.from {
        From::Live => Some(Cursor {
            tick: start_mark.tick.next(),
            offset: None,
        }),
        From::Seq(_) => None,
    };
    let mut announced_live = false;
    let batch = state.config.spectator_batch;
    let mut batch_started = tokio::time::Instant::now();
    loop {
        let live = live_mark(&live_rx, &mut finished_mark, source, state).await?;
        let visible = if live.finished {
            live.tick
        } else {
            Tick(live.tick.0.saturating_sub(params.delay_ticks))
        };
        if cursor.is_none() {
            cursor = find_start(sent_seq, source, live, state).await?;
        }
        if let Some(mut at) = cursor {
            while at.tick <= visible {
                let (batch, next) = ticks_from(at, visible, source, params.json, state).await?;
                if batch.is_empty() {
                    break; // Neither in memory nor in the file yet: wait for the writer.
                }
                for t in batch {
                    let frame = t.frame_after(sent_seq, params.json, &state.metrics);
                    if let Some(last) = t.events().last() {
                        sent_seq = sent_seq.max(last.seq);
                    }
                    send_frame(frame).await?;
                }
                at = next;
                cursor = Some(at);
            }
            if at.tick > visible && !announced_live && !live.finished {
                announced_live = true;
                send(SpectatorMessage::Live { seq: sent_seq }).await?;
            }
            if live.finished && at.tick > live.tick {
                send(SpectatorMessage::Ended { last_seq: sent_seq }).await?;
                return Ok(());
            }
        } else if live.finished {
            send(SpectatorMessage::Ended { last_seq: sent_seq }).await?;
            return Ok(());
        }
        match &mut live_rx {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    live_rx = None;
                } else if announced_live && !batch.is_zero() {
                    // Live: gather the ticks of one batch period, then send them together
                    // (the writer writes what is queued in one go): one write per period
                    // instead of one per tick.
                    tokio::time::sleep_until(batch_started + batch).await;
                }
                batch_started = tokio::time::Instant::now();
            }
            None => {
                return Err((
                    CloseCode::InternalError,
                    "the replay file ends before the match it describes".into(),
                ));
            }
        }
    }
}

/// Where live is: the running match's mark, or the end of a finished match's file.
async fn live_mark(
    live_rx: &Option<tokio::sync::watch::Receiver<LiveMark>>,
    finished: &mut Option<LiveMark>,
    source: &Source,
    state: &AppState,
) -> Result<LiveMark, (CloseCode, String)> {
    if let Some(rx) = live_rx {
        return Ok(*rx.borrow());
    }
    if let Some(mark) = finished {
        return Ok(*mark);
    }
    let mark = file_live_mark(&source.path, state).await?;
    *finished = Some(mark);
    Ok(mark)
}

/// A close for a replay file that could not be read: the cause (which names the file) goes to
/// the log, the spectator gets it with the data directory's path taken out.
fn unreadable(state: &AppState, cause: impl std::fmt::Display) -> (CloseCode, String) {
    let cause = cause.to_string();
    tracing::warn!(error = %cause, "a spectator's replay file could not be read");
    (
        CloseCode::InternalError,
        format!("reading the replay file: {}", state.config.redact(&cause)),
    )
}

/// Run `read` on the open replay file in a blocking task.
async fn with_file<T: Send + 'static>(
    path: &std::path::Path,
    state: &AppState,
    read: impl FnOnce(&mut ReplayReader) -> Result<T, crate::log::LogError> + Send + 'static,
) -> Result<T, (CloseCode, String)> {
    let path = path.to_path_buf();
    let scans = state.scans.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = ReplayReader::open_cached(&path, &scans)?;
        read(&mut reader)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a spectator's file read failed");
        (
            CloseCode::InternalError,
            "the replay file could not be read".to_string(),
        )
    })?
    .map_err(|e| unreadable(state, e))
}

/// The live mark of a finished match, from its file.
async fn file_live_mark(
    path: &std::path::Path,
    state: &AppState,
) -> Result<LiveMark, (CloseCode, String)> {
    let index = with_file(path, state, |reader| Ok(reader.index().clone())).await?;
    Ok(LiveMark {
        tick: index.last_tick,
        seq: index.last_seq,
        finished: true,
    })
}

/// The tick holding the first event after `seq`, or the tick after live if there is none yet.
async fn find_start(
    seq: Seq,
    source: &Source,
    live: LiveMark,
    state: &AppState,
) -> Result<Option<Cursor>, (CloseCode, String)> {
    let at = |tick| Cursor { tick, offset: None };
    if seq >= live.seq {
        return Ok(Some(at(live.tick.next())));
    }
    if seq == Seq(0) {
        return Ok(Some(at(Tick(1))));
    }
    if let Some(shared) = &source.shared {
        match shared.ring_find_seq(seq) {
            RingSearch::Found(tick) => return Ok(Some(at(tick))),
            RingSearch::NotYet => return Ok(None),
            RingSearch::Empty | RingSearch::TooOld => {}
        }
    }
    // Read forward a tick at a time; memory holds one tick.
    with_file(&source.path, state, move |reader| {
        for t in reader.ticks()? {
            let t = t?;
            if t.events.last().is_some_and(|e| e.seq > seq) {
                return Ok(Some(Cursor {
                    tick: t.tick,
                    offset: Some(t.offset),
                }));
            }
        }
        Ok(None)
    })
    .await
}

/// Up to [`BATCH_TICKS`] ticks from `from` to `to`, from the ring if it still holds `from`,
/// else from the file (forward from the cursor's offset when it is known); and the cursor
/// after them. Empty if `from` is in neither yet.
async fn ticks_from(
    from: Cursor,
    to: Tick,
    source: &Source,
    json: bool,
    state: &AppState,
) -> Result<(Vec<TickOut>, Cursor), (CloseCode, String)> {
    let metrics = state.metrics.clone();
    if let Some(shared) = &source.shared
        && shared.ring_tick(from.tick).is_some()
    {
        let mut out = Vec::new();
        let mut tick = from.tick;
        while tick <= to && out.len() < BATCH_TICKS {
            let Some(t) = shared.ring_tick(tick) else {
                break;
            };
            // Encoded once per format, by whichever spectator gets here first.
            let encoded = t.encoded(json, &state.metrics);
            out.push(TickOut {
                tick: t.tick,
                hash: t.records.hash,
                frame: encoded.frame.clone(),
                events: TickEvents::Ring(t.records.clone()),
            });
            tick = tick.next();
        }
        return Ok((out, Cursor { tick, offset: None }));
    }
    with_file(&source.path, state, move |reader| {
        let ticks = match from.offset {
            Some(offset) => reader.ticks_from(offset)?,
            None => reader.ticks_near(from.tick)?,
        };
        let mut out = Vec::new();
        let mut next = from;
        for t in ticks {
            let t = t?;
            if t.tick < from.tick {
                continue;
            }
            if t.tick > to || out.len() >= BATCH_TICKS {
                break;
            }
            next = Cursor {
                tick: t.tick.next(),
                offset: Some(t.next_offset),
            };
            // Read from the file by this spectator alone: encoded here.
            metrics.spectator_encodes.inc();
            let frame = encode_spectator_tick(t.tick, t.end.hash, &t.events, json);
            out.push(TickOut {
                tick: t.tick,
                hash: t.end.hash,
                frame,
                events: TickEvents::File(t.events),
            });
        }
        Ok((out, next))
    })
    .await
}
