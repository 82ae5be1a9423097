//! One match's task: a thin loop around its [`MatchCore`]. On a timer it drains the inbox, lets
//! the core decide the tick, and hands the output to the sinks, each of which owns its I/O;
//! between ticks it passes joins, resumes and detaches to the core. It never awaits I/O inside
//! a tick: clients, spectators and the log get bounded, non-blocking hand-offs.

#![expect(
    clippy::disallowed_methods,
    reason = "the match task times its ticks and stamps files; the core never sees a clock"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tickforge_protocol::{CloseCode, GameConfig, MatchId, ReplayHeader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::{CoreConfig, Ending, MatchCore, TickInput};
use super::sinks::{FanOut, LogSink, MetricsSink, Published, SinkFactory, TickSink};
use super::{
    Control, CreateError, Halt, Inbound, JoinRefused, LiveMark, MatchHandle, MatchInfo,
    MatchShared, MatchState, Start,
};
use crate::config::ServerConfig;
use crate::headless;
use crate::log::{LogConfig, LogError, LogService, LogWriter, TickBatch};
use crate::metrics::{MatchLabel, Metrics};
use crate::sim::{Game, MatchSetup, Sim};

/// Milliseconds since the Unix epoch (for file headers and listings only).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a match task is made of.
pub(super) struct Plan {
    pub id: MatchId,
    pub game: GameConfig,
    pub rules: Arc<dyn Game>,
    pub path: PathBuf,
    pub log: LogConfig,
    pub log_service: LogService,
    pub sinks: Vec<SinkFactory>,
    pub token_key: [u8; 32],
    pub origin: Origin,
}

/// Where a match starts from.
pub(super) enum Origin {
    /// Tick 0 of a new match.
    New { seed: u64 },
    /// A match taken over from another node.
    Adopted(Box<Adopted>),
}

/// A match taken over from another node: its core rebuilt from the recorded ticks, which go
/// into the local replay file first, so that the file holds the whole match.
pub(super) struct Adopted {
    pub header: ReplayHeader,
    pub core: MatchCore,
    pub history: Vec<TickBatch>,
    /// The stream sequence of the last message the match recorded.
    pub stream_seq: u64,
}

/// The core's limits, from the server's settings.
pub(super) fn core_config(config: &ServerConfig, token_key: [u8; 32]) -> CoreConfig {
    CoreConfig {
        resume_window_ticks: config.resume_window_ticks,
        grace_ticks: config.ticks_in(config.resume_grace),
        slow_ticks: config.ticks_in(config.slow_client_grace),
        idle_ticks: config.ticks_in(config.idle_match),
        snapshot_every_ticks: config.snapshot_every_ticks,
        token_key,
    }
}

struct MatchTask {
    core: MatchCore,
    log: LogSink,
    fanout: FanOut,
    published: Published,
    metrics: MetricsSink,
    sinks: Vec<Box<dyn TickSink>>,
    shared: Arc<MatchShared>,
    config: Arc<ServerConfig>,
    cancel: CancellationToken,
}

/// Set up a match (its simulation, and its replay file on the log's writer thread) and return
/// its handle and its task, which the caller spawns; the task resolves to the match's final
/// summary.
pub(super) async fn prepare(
    plan: Plan,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<
    (
        MatchHandle,
        impl Future<Output = MatchInfo> + Send + 'static,
    ),
    CreateError,
> {
    let Plan {
        id,
        game,
        rules,
        path,
        log,
        log_service,
        sinks,
        token_key,
        origin,
    } = plan;
    let max_players = rules.max_players();
    let (core, header, history, continues_after) = match origin {
        Origin::New { seed } => {
            let setup = MatchSetup {
                match_id: id,
                seed,
                tick_rate_hz: config.tick_rate_hz,
                game: game.clone(),
            };
            let sim = Sim::new(&setup, rules)?;
            let header = headless::header_for(&sim, unix_ms(), log.snapshot_every_ticks);
            let core = MatchCore::new(id, sim, core_config(&config, token_key))
                .map_err(CreateError::Components)?;
            (core, header, Vec::new(), None)
        }
        Origin::Adopted(adopted) => {
            let Adopted {
                header,
                core,
                history,
                stream_seq,
            } = *adopted;
            (core, header, history, Some(stream_seq))
        }
    };
    let mut writer: LogWriter = log_service.create(&path, &header, log).await?;
    if !history.is_empty() {
        writer = tokio::task::spawn_blocking(move || {
            for batch in history {
                writer.append_blocking(batch)?;
            }
            Ok::<_, LogError>(writer)
        })
        .await
        .map_err(|e| CreateError::Adopt(format!("writing the recorded ticks: {e}")))??;
    }
    let (tick, last_seq) = (core.last_tick(), core.sim().last_seq());
    let (inbox_tx, inbox_rx) = mpsc::channel(config.match_inbox);
    let (control_tx, control_rx) = mpsc::channel(256);
    let shared = Arc::new(MatchShared::starting(
        &header,
        Start {
            replay_path: path,
            max_players,
            tick,
            last_seq,
            node: config.cluster.as_ref().map(|c| c.node.clone()),
            stream_tick: config.cluster.as_ref().map(|_| tick),
            continues_after,
        },
    ));
    let task = MatchTask {
        core,
        log: LogSink::new(writer),
        fanout: FanOut::new(config.resume_window_ticks),
        published: Published::new(shared.clone(), config.spectator_window_ticks),
        metrics: MetricsSink::new(
            metrics.clone(),
            MatchLabel { match_id: id.0 },
            config.tick_period(),
        ),
        sinks: sinks.iter().map(|make| make(&shared)).collect(),
        shared: shared.clone(),
        config,
        cancel,
    };
    let handle = MatchHandle {
        shared,
        inbox: inbox_tx,
        control: control_tx,
    };
    Ok((handle, task.run(inbox_rx, control_rx, metrics)))
}

impl MatchTask {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut control: mpsc::Receiver<Control>,
        metrics: Arc<Metrics>,
    ) -> MatchInfo {
        metrics.matches_running.inc();
        // The match's own rate (a match taken over keeps the rate it was recorded at).
        let period =
            Duration::from_nanos(1_000_000_000 / u64::from(self.shared.tick_rate_hz.max(1)));
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancel = self.cancel.clone();
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let outcome: Result<Option<Ending>, Halt> = loop {
            tokio::select! {
                biased;
                () = &mut cancelled => break Ok(None),
                _ = timer.tick() => match self.tick(&mut inbox) {
                    Ok(Some(ending)) => break Ok(Some(ending)),
                    Ok(None) => {}
                    Err(reason) => break Err(reason),
                },
                Some(request) = control.recv() => self.control(request),
            }
        };
        let summary = self.finish(outcome, &mut control).await;
        metrics.matches_running.dec();
        summary
    }

    /// One tick. Returns why the match ends, if it does.
    ///
    /// Phases, in order, one call each:
    /// 1. drain the inbox, in arrival order;
    /// 2. the core decides the tick (de-duplication, joins and leaves, the simulation, the
    ///    delta, what each player is owed, slow clients, the end);
    /// 3. the log: the tick's records to the writer thread (never waits);
    /// 4. the players: each one's frames to its bounded queue (never waits);
    /// 5. the spectators and the match's status;
    /// 6. every other sink;
    /// 7. the metrics.
    fn tick(&mut self, inbox: &mut mpsc::Receiver<Inbound>) -> Result<Option<Ending>, Halt> {
        if let Some(halt) = self.shared.halt.lock().clone() {
            return Err(halt);
        }
        let started = Instant::now();
        let commands = drain(inbox, self.config.match_inbox);
        let output = self.core.tick(TickInput {
            commands,
            delivered: self.fanout.take_delivered(),
            reserved: self
                .shared
                .reserved
                .load(std::sync::atomic::Ordering::Relaxed),
        });
        self.log.write(&output).map_err(|e| Halt {
            code: CloseCode::MatchStopped,
            reason: format!(
                "the replay log failed at tick {}: {}",
                output.tick.0,
                self.config.redact(&e.to_string())
            ),
        })?;
        self.fanout.deliver(&output);
        let durability = self.log.durability();
        self.published.publish(&output, &durability);
        for sink in &mut self.sinks {
            sink.tick(&output);
        }
        let took = started.elapsed();
        self.published.timed(took);
        self.metrics.record(&output, &durability, took);
        Ok(output.ended)
    }

    fn control(&mut self, request: Control) {
        match request {
            Control::Join { name, out, reply } => {
                if self.shared.info.read().state != MatchState::Running || self.core.is_over() {
                    self.shared
                        .reserved
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = reply.send(Err(JoinRefused::Ended(self.shared.id)));
                    return;
                }
                self.core.join(out.conn, name);
                self.fanout.expect_join(out, reply);
            }
            Control::Snapshot { reply } => {
                let _ = reply.send(self.core.snapshot());
            }
            Control::Resume {
                token,
                last_tick,
                last_seq,
                out,
                reply,
            } => {
                let conn = out.conn;
                let resumed = self
                    .core
                    .resume(conn, &token, last_tick, last_seq)
                    .and_then(|r| {
                        if let Some(old) = r.replaced {
                            self.fanout.close(
                                old,
                                CloseCode::Normal,
                                "resumed on another connection",
                            );
                        }
                        match self.fanout.attach(out, r.frames) {
                            Ok(()) => Ok(r.seat),
                            Err(()) => {
                                self.core.detach(r.seat.player, conn);
                                Err(JoinRefused::ResumeFailed(
                                    "the connection closed while resuming".into(),
                                ))
                            }
                        }
                    });
                let _ = reply.send(resumed);
            }
            Control::Detach { player, conn } => {
                self.core.detach(player, conn);
                self.fanout.forget(conn);
            }
            Control::Leave { player, conn } => self.core.leave(player, conn),
        }
    }

    /// The match is over (ended, stopped, or the server is shutting down): close the log
    /// (footer, fsync), then the connections; release what only a running match needs. Returns
    /// the match's final summary.
    async fn finish(
        mut self,
        outcome: Result<Option<Ending>, Halt>,
        control: &mut mpsc::Receiver<Control>,
    ) -> MatchInfo {
        let shutting_down = self.cancel.is_cancelled();
        let (state, code, reason, end_reason) = match &outcome {
            Ok(Some(Ending::Over { .. })) => (
                MatchState::Ended,
                CloseCode::Normal,
                "match_ended".to_string(),
                "over",
            ),
            Ok(Some(Ending::Idle)) => (
                MatchState::Ended,
                CloseCode::Normal,
                format!(
                    "the match was empty for {} s",
                    self.config.idle_match.as_secs()
                ),
                "idle",
            ),
            // In a cluster the match is not over: another node takes it over after the lease,
            // and its players resume there.
            Ok(None) if self.config.cluster.is_some() => (
                MatchState::Moved,
                CloseCode::MatchMoved,
                format!(
                    "match {} is moving to another node: this one is shutting down; reconnect and resume",
                    self.shared.id.0
                ),
                "moved",
            ),
            Ok(None) => (
                MatchState::Ended,
                CloseCode::GoingAway,
                "server_shutting_down".to_string(),
                "server_shutting_down",
            ),
            Err(halt) if halt.code == CloseCode::MatchMoved => (
                MatchState::Moved,
                CloseCode::MatchMoved,
                halt.reason.clone(),
                "moved",
            ),
            Err(halt) => (
                MatchState::Stopped,
                halt.code,
                halt.reason.clone(),
                "stopped",
            ),
        };
        if let Err(halt) = &outcome {
            tracing::error!(match_id = self.shared.id.0, reason = %halt.reason, "match stopped");
        }
        let writer = self.log.take();
        let closed = tokio::task::spawn_blocking(move || writer.map(LogWriter::close)).await;
        match closed {
            Ok(Some(Err(LogError::WriterStopped { .. }))) if outcome.is_err() => {}
            Ok(Some(Err(e))) => {
                tracing::error!(match_id = self.shared.id.0, error = %e, "closing the replay log failed")
            }
            Err(e) => {
                tracing::error!(match_id = self.shared.id.0, error = %e, "closing the replay log panicked")
            }
            _ => {}
        }
        {
            let durable = self.log.durability();
            let mut info = self.shared.info.write();
            info.state = state.clone();
            info.durable_tick = durable.durable_tick;
            info.end_reason = Some(end_reason);
            if let Err(halt) = &outcome {
                info.stopped_reason = Some(halt.reason.clone());
            }
        }
        // The log is closed: spectators still following read the rest from the file.
        self.shared.ring.write().clear();
        self.metrics.retire();
        let last = *self.shared.live.borrow();
        self.shared.live.send_replace(LiveMark {
            finished: true,
            ..last
        });
        let refused = if shutting_down {
            JoinRefused::ShuttingDown
        } else {
            JoinRefused::Ended(self.shared.id)
        };
        control.close();
        while let Ok(request) = control.try_recv() {
            if let Control::Join { reply, .. } | Control::Resume { reply, .. } = request {
                let _ = reply.send(Err(refused.clone()));
            }
        }
        let _ = self.core.wind_up();
        self.fanout.wind_up(code, &reason, &refused);
        tracing::info!(
            match_id = self.shared.id.0,
            tick = last.tick.0,
            ?state,
            end_reason,
            "match finished"
        );
        let mut summary = self.shared.info.read().clone();
        summary.players = 0;
        summary.spectators = 0;
        for sink in &mut self.sinks {
            sink.finished(&summary);
        }
        summary
    }
}

/// Up to `limit` commands from the inbox, in arrival order.
fn drain(inbox: &mut mpsc::Receiver<Inbound>, limit: usize) -> Vec<Inbound> {
    let mut out = Vec::with_capacity(inbox.len().min(limit));
    while out.len() < limit {
        match inbox.try_recv() {
            Ok(cmd) => out.push(cmd),
            Err(_) => break,
        }
    }
    out
}
