//! The sinks of a match: each carries out one part of what a tick produced ([`TickOutput`]),
//! and owns its own I/O. None can stall the tick.
//!
//! - [`FanOut`]: the players' bounded queues (`try_send` only), resume backlogs, joins'
//!   replies; it reports back how each connection fared ([`Delivered`]) for the core's next
//!   tick.
//! - [`Published`]: what the rest of the server reads of a running match: the spectator ring
//!   (each tick's frames encoded once per format, on first use), the live mark, the status
//!   shown by `GET /matches`.
//! - [`LogSink`]: the tick's records to the shared log writer.
//! - [`MetricsSink`]: counters, per-match gauges and tick times.
//! - [`TickSink`]: any other sink, made per match by a [`SinkFactory`] the server was given
//!   (a publisher of the event stream, say). It sees every tick's output and the match's end,
//!   and needs no change to match code.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tickforge_protocol::{CloseCode, Seq, SpectatorMessage, encode};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{oneshot, watch};

use super::core::{Delivered, TickOutput};
use super::{ClientOut, ConnId, JoinRefused, LiveMark, MatchInfo, MatchShared, Seat};
use crate::log::{Durability, LogError, LogWriter};
use crate::metrics::{MatchLabel, Metrics};

/// A sink of every tick of a match, beyond the built-in ones.
pub trait TickSink: Send + 'static {
    /// One tick's output, after the log, the players and the spectators have had it.
    fn tick(&mut self, output: &TickOutput);

    /// The match is over; `summary` is what `GET /matches` keeps of it.
    fn finished(&mut self, summary: &MatchInfo) {
        let _ = summary;
    }
}

/// Makes a [`TickSink`] for each new match.
pub type SinkFactory = Arc<dyn Fn(&Arc<MatchShared>) -> Box<dyn TickSink> + Send + Sync>;

/// One connected player's queue, and what it is owed beyond it.
struct Client {
    out: ClientOut,
    /// Frames owed beyond what the queue holds (after a resume), sent in order as it drains.
    backlog: VecDeque<Bytes>,
}

impl Client {
    /// Queue `frame` after anything owed. `Full` if it cannot go (the client is behind).
    fn offer(&mut self, frame: &Bytes, max_backlog: usize) -> Result<(), TrySendError<Bytes>> {
        while let Some(owed) = self.backlog.front() {
            match self.out.frames.try_send(owed.clone()) {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(TrySendError::Full(_)) => break,
                Err(e) => return Err(e),
            }
        }
        if self.backlog.is_empty() {
            return self.out.frames.try_send(frame.clone());
        }
        if self.backlog.len() >= max_backlog {
            self.backlog.clear();
            return Err(TrySendError::Full(frame.clone()));
        }
        self.backlog.push_back(frame.clone());
        Ok(())
    }
}

type JoinReply = oneshot::Sender<Result<Seat, JoinRefused>>;

/// The players' side of a match: their queues, and the joins waiting for a tick.
pub(super) struct FanOut {
    clients: BTreeMap<ConnId, Client>,
    joining: BTreeMap<ConnId, (ClientOut, JoinReply)>,
    delivered: Vec<(ConnId, Delivered)>,
    max_backlog: usize,
}

impl FanOut {
    pub(super) fn new(max_backlog: usize) -> FanOut {
        FanOut {
            clients: BTreeMap::new(),
            joining: BTreeMap::new(),
            delivered: Vec::new(),
            max_backlog,
        }
    }

    /// A join the core will decide at its next tick.
    pub(super) fn expect_join(&mut self, out: ClientOut, reply: JoinReply) {
        self.joining.insert(out.conn, (out, reply));
    }

    /// A resumed client: its frames (`Resumed`, then what it missed) go first, the rest of
    /// them into its backlog. `Err` if the connection is already gone.
    pub(super) fn attach(&mut self, out: ClientOut, frames: Vec<Bytes>) -> Result<(), ()> {
        let mut client = Client {
            out,
            backlog: VecDeque::new(),
        };
        for f in frames {
            if !client.backlog.is_empty() {
                client.backlog.push_back(f);
                continue;
            }
            match client.out.frames.try_send(f) {
                Ok(()) => {}
                Err(TrySendError::Full(f)) => client.backlog.push_back(f),
                Err(TrySendError::Closed(_)) => return Err(()),
            }
        }
        self.clients.insert(client.out.conn, client);
        Ok(())
    }

    /// Close connection `conn` with `code` and `reason`, and forget it.
    pub(super) fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if let Some(client) = self.clients.remove(&conn) {
            client.out.control.close(code, reason);
        }
    }

    /// Forget `conn` (its session is gone).
    pub(super) fn forget(&mut self, conn: ConnId) {
        self.clients.remove(&conn);
    }

    /// How each connection fared since the core's last tick.
    pub(super) fn take_delivered(&mut self) -> Vec<(ConnId, Delivered)> {
        std::mem::take(&mut self.delivered)
    }

    /// Carry out a tick's sends, joins and closes; note how each connection fared.
    /// Returns how many joins the tick completed or refused.
    pub(super) fn deliver(&mut self, output: &TickOutput) -> usize {
        let mut full: Vec<ConnId> = Vec::new();
        let mut closed: Vec<ConnId> = Vec::new();
        for send in &output.sends {
            let Some(client) = self.clients.get_mut(&send.conn) else {
                continue;
            };
            let mut frames = send.frames.iter();
            if send.state_first
                && let Some(state) = frames.next()
            {
                match client.offer(state, self.max_backlog) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => full.push(send.conn),
                    Err(TrySendError::Closed(_)) => closed.push(send.conn),
                }
            }
            // Acks and the like: dropped if the queue is full (the client is behind anyway).
            for f in frames {
                if let Err(TrySendError::Closed(_)) = client.out.frames.try_send(f.clone()) {
                    closed.push(send.conn);
                    break;
                }
            }
        }
        for join in &output.joins {
            let Some((out, reply)) = self.joining.remove(&join.conn) else {
                continue;
            };
            match &join.result {
                Ok((seat, joined)) => {
                    // The session went away while joining: the seat waits out its grace.
                    if out.frames.try_send(joined.clone()).is_err()
                        || reply.send(Ok(seat.clone())).is_err()
                    {
                        closed.push(join.conn);
                    } else {
                        self.clients.insert(
                            join.conn,
                            Client {
                                out,
                                backlog: VecDeque::new(),
                            },
                        );
                    }
                }
                Err(refused) => {
                    let _ = reply.send(Err(refused.clone()));
                }
            }
        }
        for (conn, code, reason) in &output.closes {
            self.close(*conn, *code, reason);
        }
        for (&conn, client) in &self.clients {
            let state = if full.contains(&conn) {
                Delivered::Full
            } else if closed.contains(&conn) || client.out.frames.is_closed() {
                Delivered::Closed
            } else if client.out.frames.capacity() >= client.out.frames.max_capacity() / 2 {
                Delivered::Roomy
            } else {
                Delivered::Busy
            };
            self.delivered.push((conn, state));
        }
        // A seat taken by a session that is gone already.
        for conn in closed {
            if !self.clients.contains_key(&conn) {
                self.delivered.push((conn, Delivered::Closed));
            }
        }
        output.joins.len()
    }

    /// The match is over: close every client with `code` and `reason`, refuse every join
    /// still waiting with `refused`.
    pub(super) fn wind_up(&mut self, code: CloseCode, reason: &str, refused: &JoinRefused) {
        for (_, client) in std::mem::take(&mut self.clients) {
            client.out.control.close(code, reason);
        }
        for (_, (_, reply)) in std::mem::take(&mut self.joining) {
            let _ = reply.send(Err(refused.clone()));
        }
    }
}

/// One tick as spectators see it: the tick's records, and their frames encoded once per
/// format, by the first spectator who needs them.
#[derive(Debug)]
pub struct SpectatorTick {
    pub tick: tickforge_protocol::Tick,
    /// The last seq before this tick.
    pub seq_before: Seq,
    /// The last seq after this tick.
    pub last_seq: Seq,
    pub records: Arc<crate::log::TickBatch>,
    // Boxed: most ticks of the ring are never asked for a format, and stay small.
    msgpack: std::sync::OnceLock<Box<EncodedTick>>,
    json: std::sync::OnceLock<Box<EncodedTick>>,
}

/// A tick's spectator frame in one format: every event of the tick and its hash.
#[derive(Debug)]
pub struct EncodedTick {
    pub frame: Bytes,
}

/// The spectator frame of one tick: `events` (all the tick's, or those after a spectator's
/// starting seq) and the hash at its end.
pub fn encode_spectator_tick(
    tick: tickforge_protocol::Tick,
    hash: tickforge_protocol::StateHash,
    events: &[tickforge_protocol::Event],
    json: bool,
) -> Bytes {
    encode_spectator(
        &SpectatorMessage::Tick {
            tick,
            hash,
            events: events.to_vec(),
        },
        json,
    )
}

/// Encode one spectator message in JSON or MessagePack.
pub fn encode_spectator(message: &SpectatorMessage, json: bool) -> Bytes {
    if json {
        Bytes::from(serde_json::to_vec(message).unwrap_or_default())
    } else {
        Bytes::from(encode(message).unwrap_or_default())
    }
}

impl SpectatorTick {
    pub fn new(output: &TickOutput) -> SpectatorTick {
        SpectatorTick {
            tick: output.tick,
            seq_before: output.seq_before,
            last_seq: output
                .records
                .events
                .last()
                .map_or(output.seq_before, |e| e.seq),
            records: output.records.clone(),
            msgpack: std::sync::OnceLock::new(),
            json: std::sync::OnceLock::new(),
        }
    }

    /// A tick read back from a match's records (a relay's mirror): `seq_before` is the last
    /// seq before it.
    pub fn from_batch(records: Arc<crate::log::TickBatch>, seq_before: Seq) -> SpectatorTick {
        SpectatorTick {
            tick: records.tick,
            seq_before,
            last_seq: records.events.last().map_or(seq_before, |e| e.seq),
            records,
            msgpack: std::sync::OnceLock::new(),
            json: std::sync::OnceLock::new(),
        }
    }

    /// The tick's frames in one format: encoded the first time anyone asks, then shared.
    pub fn encoded(&self, json: bool, metrics: &Metrics) -> &EncodedTick {
        let cell = if json { &self.json } else { &self.msgpack };
        cell.get_or_init(|| {
            let frame =
                encode_spectator_tick(self.tick, self.records.hash, &self.records.events, json);
            metrics.spectator_encodes.inc();
            Box::new(EncodedTick { frame })
        })
    }
}

/// What the rest of the server reads of a running match.
pub(super) struct Published {
    shared: Arc<MatchShared>,
    window_ticks: usize,
}

impl Published {
    pub(super) fn new(shared: Arc<MatchShared>, window_ticks: usize) -> Published {
        Published {
            shared,
            window_ticks,
        }
    }

    /// How long the tick took, for the match's status.
    pub(super) fn timed(&mut self, took: std::time::Duration) {
        self.shared.info.write().tick_us = took.as_micros().min(u128::from(u64::MAX)) as u64;
    }

    /// The tick into the spectator ring, the match's status, the live mark.
    pub(super) fn publish(&mut self, output: &TickOutput, durability: &Durability) {
        let tick = Arc::new(SpectatorTick::new(output));
        let last_seq = tick.last_seq;
        {
            let mut ring = self.shared.ring.write();
            ring.push_back(tick);
            while ring.len() > self.window_ticks {
                ring.pop_front();
            }
        }
        {
            let mut info = self.shared.info.write();
            info.players = output.stats.players;
            info.tick = output.tick;
            info.last_seq = last_seq;
            info.durable_tick = durability.durable_tick;
            info.frame_bytes = output.delta.len() as u64;
        }
        self.shared
            .reserved
            .fetch_sub(output.joins.len() as u32, Ordering::Relaxed);
        self.shared.live.send_replace(LiveMark {
            tick: output.tick,
            seq: last_seq,
            finished: false,
        });
    }
}

/// The tick's records, to the shared log writer (never waits).
pub(super) struct LogSink {
    writer: Option<LogWriter>,
    durability: watch::Receiver<Durability>,
}

impl LogSink {
    pub(super) fn new(writer: LogWriter) -> LogSink {
        LogSink {
            durability: writer.durability(),
            writer: Some(writer),
        }
    }

    pub(super) fn write(&mut self, output: &TickOutput) -> Result<(), LogError> {
        match &self.writer {
            Some(writer) => writer.append(output.records.clone()),
            None => Ok(()),
        }
    }

    /// How far the log is written and durable.
    pub(super) fn durability(&self) -> Durability {
        self.durability.borrow().clone()
    }

    /// The writer, to close.
    pub(super) fn take(&mut self) -> Option<LogWriter> {
        self.writer.take()
    }
}

/// Counters, per-match gauges, tick times.
pub(super) struct MetricsSink {
    metrics: Arc<Metrics>,
    label: MatchLabel,
    period: Duration,
}

impl MetricsSink {
    pub(super) fn new(metrics: Arc<Metrics>, label: MatchLabel, period: Duration) -> MetricsSink {
        MetricsSink {
            metrics,
            label,
            period,
        }
    }

    pub(super) fn record(&mut self, output: &TickOutput, durability: &Durability, took: Duration) {
        let m = &self.metrics;
        let stats = output.stats;
        m.commands.inc_by(stats.commands);
        m.events.inc_by(stats.events);
        m.rejections.inc_by(stats.rejections);
        m.delta_drops.inc_by(stats.delta_drops);
        m.durable_lag_ticks
            .get_or_create(&self.label)
            .set(output.tick.0.saturating_sub(durability.durable_tick.0) as i64);
        m.log_backlog_ticks
            .get_or_create(&self.label)
            .set(output.tick.0.saturating_sub(durability.written_tick.0) as i64);
        m.observe_tick(took, self.period);
    }

    /// The match is over: its series leave the page.
    pub(super) fn retire(&mut self) {
        self.metrics.durable_lag_ticks.remove(&self.label);
        self.metrics.log_backlog_ticks.remove(&self.label);
    }
}
