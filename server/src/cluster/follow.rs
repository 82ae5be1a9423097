//! The cluster's read models: a relay with read models (`--relay --read-db …`) follows the
//! whole stream with one durable JetStream consumer, `tickforge-projector-<node>`, and projects
//! every match of every node, including a match that moved between nodes (its subject goes
//! on), into its database.
//!
//! Exactly once: the consumer acknowledges all up to a message (`AckPolicy::All`) only after
//! the transaction that holds the message's rows and checkpoints has committed. A message
//! delivered again (after a crash, or after its acknowledgement wait) holds ticks at or before
//! their checkpoint, which change nothing. So that delivery is in stream order, each start of
//! the follower makes the consumer again from the message after its acknowledged floor. A
//! failing database is waited out with backoff, fetching nothing meanwhile: the stream keeps
//! the messages, and `projection_stream_pending` shows how many wait. A fetch with more than
//! `MAX_BATCH_ROWS` rows is committed as it goes (what a fetch holds is bounded); a commit
//! that fails midway starts the follower again from its acknowledged floor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use tickforge_projections::{Projector, SqlStore, Store, StoreError, Target};
use tickforge_protocol::ReplayHeader;
use tokio_util::sync::CancellationToken;

use super::{Cluster, records};
use crate::log::TickRecords;
use crate::log::format::DEFAULT_MAX_RECORD_BYTES;
use crate::metrics::Metrics;

/// Messages fetched at most per round (each holds up to 256 KiB of ticks).
const MAX_MESSAGES: usize = 64;

/// How long the consumer waits for an acknowledgement before it delivers a message again.
const ACK_WAIT: Duration = Duration::from_secs(300);

/// The longest wait between two tries of a failing database or stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A match with no new tick for this long is dropped from memory (its model is committed;
/// it is loaded again if more comes).
const IDLE_MODEL: Duration = Duration::from_secs(600);

/// How long after its last message a match the directory says has ended is closed (a match
/// that ends without a result, idle, has no last record that says so).
const AFTER_END: Duration = Duration::from_secs(2);

/// One message, decoded.
enum Work {
    Header(Box<ReplayHeader>),
    Ticks(u64, Vec<TickRecords>),
    /// A message that cannot be read: left out, with why.
    Bad(String),
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stream: {0}")]
    Stream(String),
    /// Ticks of a match after a gap: delivery is not in order; the consumer is made again.
    #[error("{0}; following again from the acknowledged floor")]
    Gap(#[from] crate::projection::Gap),
}

/// The follower, dropped on a thread of its own ([`crate::projection::drop_off_runtime`]).
struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            crate::projection::drop_off_runtime(value);
        }
    }
}

/// The projector and when each of its matches last had a tick.
struct Follower {
    projector: Projector<SqlStore>,
    touched: BTreeMap<u64, Instant>,
}

impl Cluster {
    /// Follow the stream into the read models at `target` until `shutdown`.
    pub async fn follow(
        self: Arc<Self>,
        target: Target,
        metrics: Arc<Metrics>,
        batch: Duration,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::ZERO;
        while !shutdown.is_cancelled() {
            match self.follow_once(&target, &metrics, batch, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    metrics.projection_errors.inc();
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cluster projector: will retry");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        tracing::info!("cluster projector stopped");
    }

    /// The durable consumer, made again from the message after its acknowledged floor (from
    /// the stream's first message the first time, and when the read models are empty: a
    /// database deleted to be rebuilt gets every match again).
    async fn projector_consumer(&self, empty: bool) -> Result<PullConsumer, FollowError> {
        let node: String = self
            .config
            .node
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!("tickforge-projector-{node}");
        let deliver_policy = match self.stream.consumer_info(&name).await {
            Ok(info) => {
                let start_sequence = info.ack_floor.stream_sequence + 1;
                self.stream
                    .delete_consumer(&name)
                    .await
                    .map_err(|e| FollowError::Stream(format!("deleting consumer {name}: {e}")))?;
                if empty {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence { start_sequence }
                }
            }
            Err(_) => DeliverPolicy::All,
        };
        self.stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: "tickforge.match.*".to_string(),
                ack_policy: AckPolicy::All,
                ack_wait: ACK_WAIT,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| FollowError::Stream(format!("creating consumer {name}: {e}")))
    }

    async fn follow_once(
        &self,
        target: &Target,
        metrics: &Arc<Metrics>,
        batch: Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), FollowError> {
        let opening = target.clone();
        let (store, empty) = tokio::task::spawn_blocking(move || {
            let mut store = SqlStore::open(&opening)?;
            let empty = store.checkpoints()?.is_empty();
            Ok::<_, StoreError>((store, empty))
        })
        .await
        .map_err(|e| FollowError::Stream(format!("opening the read models: {e}")))??;
        let mut follower = OffRuntime(Some(Follower {
            projector: Projector::new(store),
            touched: BTreeMap::new(),
        }));
        let consumer = self.projector_consumer(empty).await?;
        tracing::info!(db = %target, "cluster projector following the stream");
        loop {
            let fetched = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                fetched = consumer.fetch().max_messages(MAX_MESSAGES).expires(batch).messages() => fetched,
            };
            let mut messages =
                fetched.map_err(|e| FollowError::Stream(format!("fetching: {e}")))?;
            let mut works = Vec::new();
            let mut last = None;
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| FollowError::Stream(format!("fetching: {e}")))?;
                works.push(decode(&message));
                last = Some(message);
            }
            // Matches gone quiet that the directory says have ended: their logs are closed.
            let closing: Vec<u64> = follower
                .0
                .as_ref()
                .map(|f| {
                    f.touched
                        .iter()
                        .filter(|(id, at)| {
                            at.elapsed() >= AFTER_END
                                && self
                                    .locate_fresh(tickforge_protocol::MatchId(**id))
                                    .is_some_and(|(e, _)| e.state == "ended")
                        })
                        .map(|(id, _)| *id)
                        .collect()
                })
                .unwrap_or_default();
            if last.is_none() && closing.is_empty() {
                continue;
            }
            let mut f = follower
                .0
                .take()
                .unwrap_or_else(|| unreachable!("put back"));
            let m = metrics.clone();
            let stop = shutdown.clone();
            let (f, applied) = tokio::task::spawn_blocking(move || {
                let applied = f.apply(works, &closing, &m, &stop);
                (f, applied)
            })
            .await
            .map_err(|e| FollowError::Stream(format!("projecting: {e}")))?;
            follower.0 = Some(f);
            applied?;
            if let Some(last) = last {
                let pending = last.info().map_or(0, |i| i.pending);
                last.ack()
                    .await
                    .map_err(|e| FollowError::Stream(format!("acknowledging: {e}")))?;
                metrics.projection_stream_pending.set(pending as i64);
            }
        }
    }
}

fn decode(message: &async_nats::jetstream::Message) -> Work {
    let seq = message.info().map_or(0, |i| i.stream_sequence);
    match super::takeover::kind_of(message) {
        records::KIND_HEADER => match records::decode_header(&message.payload) {
            Ok(header) => Work::Header(Box::new(header)),
            Err(e) => Work::Bad(format!("the header at stream seq {seq}: {e}")),
        },
        records::KIND_TICKS => {
            let id = super::match_of(message.subject.as_str()).map(|id| id.0);
            match (
                id,
                records::decode_ticks(&message.payload, DEFAULT_MAX_RECORD_BYTES),
            ) {
                (Some(id), Ok(ticks)) => Work::Ticks(id, ticks),
                (None, _) => Work::Bad(format!(
                    "stream seq {seq}: subject {} names no match",
                    message.subject
                )),
                (_, Err(e)) => Work::Bad(format!("the message at stream seq {seq}: {e}")),
            }
        }
        other => Work::Bad(format!("stream seq {seq}: a message of kind {other:?}")),
    }
}

impl Follower {
    /// Apply one fetch's messages, close the matches of `closing`, and commit, waiting out a
    /// failing database.
    fn apply(
        &mut self,
        works: Vec<Work>,
        closing: &[u64],
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<(), FollowError> {
        let p = &mut self.projector;
        let mut ended = closing.to_vec();
        for work in works {
            match work {
                Work::Header(header) => {
                    p.open(&header)?;
                }
                Work::Bad(why) => {
                    // A message that cannot be read is not retried: the seqs it held show as
                    // a `missing` dead letter when the next one comes.
                    metrics.projection_errors.inc();
                    tracing::error!(error = %why, "cluster projector: a message left out");
                }
                Work::Ticks(id, ticks) => {
                    if p.resume(id)?.is_none() {
                        metrics.projection_errors.inc();
                        tracing::error!(
                            match_id = id,
                            "cluster projector: ticks of a match whose header it never saw; left out"
                        );
                        continue;
                    }
                    let applied = crate::projection::apply_ticks(p, id, &ticks)??;
                    if applied.ended {
                        ended.push(id);
                    }
                    self.touched.insert(id, Instant::now());
                }
            }
        }
        for id in &ended {
            // Its stream ends with its end (or the directory says it has ended): the match is
            // closed.
            let _ = p.finish(*id);
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match p.commit() {
                Ok(done) => {
                    crate::projection::record_commit(metrics, started, &done);
                    break;
                }
                Err(e) if e.transient && !shutdown.is_cancelled() => {
                    metrics.projection_errors.inc();
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cluster projector: will retry the commit");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let now = Instant::now();
        self.touched.retain(|id, at| {
            let keep = !ended.contains(id) && now.duration_since(*at) < IDLE_MODEL;
            if !keep {
                p.close(*id);
            }
            keep
        });
        Ok(())
    }
}
