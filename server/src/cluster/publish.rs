//! The event-stream sink: each match's ticks to JetStream, in order, by one publisher task
//! per match. The tick hands its records over a bounded queue and never waits; the publisher
//! gathers what is queued into one message (up to [`records::MAX_MESSAGE_BYTES`]; at most one
//! message per `--stream-batch-ms`), publishes
//! it with its message id and the subject's last sequence as the expectation, and waits for
//! the stream's acknowledgement before the next. A tick is *accepted* in cluster mode once
//! that acknowledgement (from a majority of the stream's replicas) has come.
//!
//! The match is stopped, and its players told, when the stream says another node has appended
//! (fenced out), when it cannot be reached for four fifths of a lease, or when the queue of
//! unacknowledged ticks is full.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use tickforge_protocol::{CloseCode, MatchId};
use tokio::sync::mpsc;

use super::{Cluster, records, subject};
use crate::log::TickBatch;
use crate::matches::core::TickOutput;
use crate::matches::{MatchInfo, MatchShared, SinkFactory, TickSink};

/// Ticks that may wait for the stream's acknowledgement (10 s at 60 Hz).
pub const QUEUE_TICKS: usize = 600;

enum Item {
    Tick(Arc<TickBatch>),
    Finished,
}

/// One match's end of the publisher.
struct StreamSink {
    tx: mpsc::Sender<Item>,
    shared: Arc<MatchShared>,
}

impl TickSink for StreamSink {
    fn tick(&mut self, output: &TickOutput) {
        if self
            .tx
            .try_send(Item::Tick(output.records.clone()))
            .is_err()
        {
            self.shared.halt(
                CloseCode::MatchStopped,
                format!(
                    "the event stream has not acknowledged the last {QUEUE_TICKS} ticks: the match stops rather than accept what may not be kept"
                ),
            );
        }
    }

    fn finished(&mut self, _summary: &MatchInfo) {
        let _ = self.tx.try_send(Item::Finished);
    }
}

impl Cluster {
    /// The sink factory that publishes every match of this node.
    pub fn sink_factory(self: &Arc<Self>) -> SinkFactory {
        let cluster = self.clone();
        Arc::new(move |shared: &Arc<MatchShared>| -> Box<dyn TickSink> {
            let (tx, rx) = mpsc::channel(QUEUE_TICKS);
            let shared = shared.clone();
            let task = Publisher {
                cluster: cluster.clone(),
                shared: shared.clone(),
                subject: subject(shared.id),
                last: shared.continues_after.unwrap_or(0),
            };
            tokio::spawn(task.run(rx));
            Box::new(StreamSink { tx, shared })
        })
    }
}

struct Publisher {
    cluster: Arc<Cluster>,
    shared: Arc<MatchShared>,
    subject: String,
    /// The subject's last stream sequence, as far as this owner knows.
    last: u64,
}

impl Publisher {
    fn id(&self) -> MatchId {
        self.shared.id
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let id = self.id();
        if self.last == 0 {
            let header = records::encode_header(&self.shared.header);
            let msg = PublishMessage::build()
                .payload(header.into())
                .message_id(format!("{}:header", id.0))
                .header(records::KIND, records::KIND_HEADER);
            if self.send(msg, 0).await.is_err() {
                return;
            }
        }
        let mut pending: Option<Item> = None;
        let mut last_publish: Option<tokio::time::Instant> = None;
        loop {
            let first = match pending.take() {
                Some(item) => item,
                None => match rx.recv().await {
                    Some(item) => item,
                    None => break,
                },
            };
            let Item::Tick(first) = first else { break };
            // At most one publish per batch span: what comes meanwhile joins this message.
            if let Some(at) = last_publish {
                tokio::time::sleep_until(at + self.cluster.config.batch).await;
            }
            last_publish = Some(tokio::time::Instant::now());
            let mut body: Vec<u8> = Vec::new();
            records::encode_tick(&first, &mut body);
            let (from, mut to) = (first.tick.0, first.tick.0);
            while body.len() < records::MAX_MESSAGE_BYTES {
                match rx.try_recv() {
                    Ok(Item::Tick(b)) => {
                        records::encode_tick(&b, &mut body);
                        to = b.tick.0;
                    }
                    Ok(Item::Finished) => {
                        pending = Some(Item::Finished);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let msg = PublishMessage::build()
                .payload(body.into())
                .message_id(format!("{}:{}:{}", id.0, from, to - from + 1))
                .header(records::KIND, records::KIND_TICKS)
                .header("Tickforge-Ticks", format!("{from}-{to}"));
            if self.send(msg, to).await.is_err() {
                return;
            }
        }
    }

    /// Publish one message, trying again (with the same message id, so the stream keeps one
    /// copy) until it is acknowledged, fenced, or the stream has been out of reach for four
    /// fifths of a lease. `tick` is the last tick it holds.
    async fn send(&mut self, msg: PublishMessage, tick: u64) -> Result<(), ()> {
        let started = Instant::now();
        let patience = self.cluster.config.lease * 4 / 5;
        let mut backoff = Duration::from_millis(20);
        let msg = msg.expected_last_subject_sequence(self.last);
        loop {
            let attempt = async {
                self.cluster
                    .js
                    .send_publish(self.subject.clone(), msg.clone())
                    .await?
                    .await
            };
            // An attempt is bounded by a renewal round, so that a node cut off from the stream
            // knows it within a lease; a resend of a message that did land is stored once.
            let attempt = tokio::time::timeout(self.cluster.config.renew_every(), attempt);
            let answer = attempt.await.unwrap_or_else(|_| {
                Err(async_nats::jetstream::context::PublishError::new(
                    PublishErrorKind::TimedOut,
                ))
            });
            match answer {
                Ok(ack) => {
                    self.last = ack.sequence;
                    let took = started.elapsed();
                    self.cluster
                        .metrics
                        .stream_publish_seconds
                        .observe(took.as_secs_f64());
                    if tick > 0 {
                        self.shared.info.write().stream_tick = Some(tickforge_protocol::Tick(tick));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    tracing::warn!(match_id = self.id().0, "fenced out of the event stream");
                    self.shared.halt(
                        CloseCode::MatchMoved,
                        format!(
                            "match {} moved: another node has taken it over; reconnect and resume",
                            self.id().0
                        ),
                    );
                    return Err(());
                }
                Err(e) => {
                    if started.elapsed() >= patience {
                        self.shared.halt(
                            CloseCode::MatchMoved,
                            format!(
                                "match {} lost the event stream ({e}); reconnect and resume",
                                self.id().0
                            ),
                        );
                        return Err(());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
            }
        }
    }
}
