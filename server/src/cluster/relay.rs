//! Spectator relays (`tickforge-server --relay --nats URL`): a node with no matches of its own
//! that serves `/spectate/{id}`, `/matches` and the web viewer from the stream, so that game
//! nodes do not pay for spectators.
//!
//! The first spectator of a match starts a mirror of it: one ordered consumer of the match's
//! subject, from its first message. The mirror is what a game node's match task is to its
//! spectators, without the simulation: each tick read from the stream goes into a spectator
//! ring of its own and into a replay file in the relay's data directory, and moves the live
//! mark. The spectator code is the game node's own, unchanged: recent ticks from the ring,
//! older ones from the file, with the same promise (any seq, live or delayed, no gap, no
//! duplicate). A match that moves to another node goes on in the same subject, so its
//! spectators never notice. The mirror ends when the match's records end it (`MatchEnded`),
//! or when the directory says it ended and nothing more comes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use futures_util::StreamExt;
use tickforge_protocol::{EventKind, MatchId, ReplayHeader, Seq, Tick};

use super::{Cluster, ClusterError, records, subject};
use crate::log::format::DEFAULT_MAX_RECORD_BYTES;
use crate::log::{LogConfig, LogWriter, TickBatch};
use crate::matches::sinks::SpectatorTick;
use crate::matches::{LiveMark, MatchShared, MatchState, Registry, Start, replay_file_name};

/// How long a mirror waits for the first message (the header) of a match.
const FIRST_MESSAGE: Duration = Duration::from_secs(5);

/// How long a mirror of a match the directory says has ended waits for more ticks.
const AFTER_END: Duration = Duration::from_secs(2);

impl Cluster {
    /// The mirror of match `id` on this relay, started if it is not running yet. `Ok(None)`
    /// if the stream has no such match.
    pub async fn mirror(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        id: MatchId,
    ) -> Result<Option<Arc<MatchShared>>, ClusterError> {
        if let Some(shared) = registry.shared(id) {
            return Ok(Some(shared));
        }
        let _starting = self.mirror_lock.lock().await;
        if let Some(shared) = registry.shared(id) {
            return Ok(Some(shared));
        }
        let subject = subject(id);
        if self
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .is_err()
        {
            return Ok(None);
        }
        let fail = |detail: String| ClusterError::Records { id, detail };
        let mut messages = super::takeover::follow(&self.stream, id).await?;
        let first = tokio::time::timeout(FIRST_MESSAGE, messages.next())
            .await
            .map_err(|_| fail("no header within 5 s".into()))?
            .ok_or_else(|| fail("the stream ended".into()))?
            .map_err(|e| fail(format!("following: {e}")))?;
        let header = records::decode_header(&first.payload)
            .map_err(|e| fail(format!("the first message is not a header: {e}")))?;
        if header.match_id != id {
            return Err(fail(format!("the header is match {}'s", header.match_id.0)));
        }
        let path = registry.config().replay_dir().join(replay_file_name(id));
        let log = LogConfig {
            fsync: crate::log::FsyncPolicy::Never,
            snapshot_every_ticks: header.snapshot_every_ticks,
            ..LogConfig::default()
        };
        // A file from an earlier mirror of the same match is replaced: the stream has it all.
        let _ = std::fs::remove_file(&path);
        let writer = registry
            .log_service()
            .create(&path, &header, log)
            .await
            .map_err(|e| fail(format!("the relay's copy: {e}")))?;
        let shared = Arc::new(mirrored(&header, path, registry));
        registry.add_mirror(shared.clone());
        let mirror = Mirror {
            cluster: self.clone(),
            registry: registry.clone(),
            shared: shared.clone(),
            writer: Some(writer),
            window: registry.config().spectator_window_ticks,
        };
        tokio::spawn(mirror.run(messages));
        Ok(Some(shared))
    }
}

/// The shared state of a mirrored match, as a match task would make it.
fn mirrored(header: &ReplayHeader, path: std::path::PathBuf, registry: &Registry) -> MatchShared {
    let max_players = registry
        .games()
        .build(&header.config)
        .map_or(0, |g| g.max_players());
    MatchShared::starting(
        header,
        Start {
            replay_path: path,
            max_players,
            tick: Tick(0),
            last_seq: Seq(0),
            node: None,
            stream_tick: Some(Tick(0)),
            continues_after: None,
        },
    )
}

struct Mirror {
    cluster: Arc<Cluster>,
    registry: Arc<Registry>,
    shared: Arc<MatchShared>,
    writer: Option<LogWriter>,
    window: usize,
}

impl Mirror {
    async fn run(mut self, mut messages: pull::Ordered) {
        let id = self.shared.id;
        let mut last_message = Instant::now();
        let mut over = false;
        let mut ended_by_rules = false;
        let mut seq = Seq(0);
        while !over {
            let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
            match next {
                Ok(Some(Ok(message))) => {
                    last_message = Instant::now();
                    let ticks = match records::decode_ticks(
                        &message.payload,
                        DEFAULT_MAX_RECORD_BYTES,
                    ) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(match_id = id.0, error = %e, "a message the relay cannot read");
                            break;
                        }
                    };
                    for t in ticks {
                        ended_by_rules |= t
                            .events
                            .iter()
                            .any(|e| matches!(e.kind, EventKind::MatchEnded { .. }));
                        let batch = Arc::new(records::batch_of(t));
                        seq = self.tick(batch, seq).await;
                    }
                    over |= ended_by_rules;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(match_id = id.0, error = %e, "following the stream failed");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    // Nothing for a while: has the match ended without a MatchEnded (idle, a
                    // shutdown, a failure)?
                    let ended = self
                        .cluster
                        .lookup(id)
                        .await
                        .is_some_and(|(e, _)| e.state == "ended" || e.state == "stopped");
                    if ended && last_message.elapsed() >= AFTER_END {
                        over = true;
                    }
                }
            }
            self.lag();
        }
        self.finish(ended_by_rules).await;
    }

    /// One tick read from the stream: to the file, the ring and the live mark.
    async fn tick(&mut self, batch: Arc<TickBatch>, seq_before: Seq) -> Seq {
        if let Some(writer) = &self.writer
            && writer.append(batch.clone()).is_err()
        {
            // The relay's disk is behind: this is no tick loop, so it may wait.
            let writer = self.writer.take();
            let b = batch.clone();
            self.writer = tokio::task::spawn_blocking(move || {
                let w = writer?;
                w.append_blocking(b).ok().map(|()| w)
            })
            .await
            .ok()
            .flatten();
        }
        let tick = Arc::new(SpectatorTick::from_batch(batch, seq_before));
        let (t, last_seq) = (tick.tick, tick.last_seq);
        {
            let mut ring = self.shared.ring.write();
            ring.push_back(tick);
            while ring.len() > self.window {
                ring.pop_front();
            }
        }
        {
            let mut info = self.shared.info.write();
            info.tick = t;
            info.last_seq = last_seq;
            info.stream_tick = Some(t);
        }
        self.shared.live.send_replace(LiveMark {
            tick: t,
            seq: last_seq,
            finished: false,
        });
        last_seq
    }

    /// How far behind its match's owner this mirror is, as the directory tells it.
    fn lag(&self) {
        let id = self.shared.id;
        let Some((entry, _)) = self.cluster.locate_fresh(id) else {
            return;
        };
        let owner = entry.info.get("tick").and_then(|t| t.as_u64()).unwrap_or(0);
        let here = self.shared.info.read().tick.0;
        self.cluster
            .metrics
            .relay_lag_ticks
            .get_or_create(&crate::metrics::MatchLabel { match_id: id.0 })
            .set(owner.saturating_sub(here) as i64);
    }

    /// The match is over: the file closed, spectators told, the mirror forgotten (later
    /// spectators read the file).
    async fn finish(mut self, by_rules: bool) {
        let id = self.shared.id;
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        }
        {
            let mut info = self.shared.info.write();
            info.state = MatchState::Ended;
            info.end_reason = by_rules.then_some("over");
        }
        self.shared.ring.write().clear();
        let last = *self.shared.live.borrow();
        self.shared.live.send_replace(LiveMark {
            finished: true,
            ..last
        });
        self.registry.remove_mirror(id);
        self.cluster
            .metrics
            .relay_lag_ticks
            .remove(&crate::metrics::MatchLabel { match_id: id.0 });
        tracing::info!(match_id = id.0, tick = last.tick.0, "mirror finished");
    }
}
