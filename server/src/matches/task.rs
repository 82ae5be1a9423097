//! One match's task: the sole owner of its [`Sim`] and its [`LogWriter`]. It runs the tick on a
//! timer and handles joins, resumes and detaches between ticks. It never awaits I/O inside a
//! tick: clients and the log get bounded, non-blocking hand-offs.

#![expect(
    clippy::disallowed_methods,
    reason = "the match task times its ticks and stamps files; the sim never sees a clock"
)]

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::RwLock;
use tickforge_protocol::{
    CloseCode, Command, CommandId, EventKind, GameConfig, MatchId, PlayerId, Rule, Seq,
    ServerMessage, Tick, encode,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    ClientOut, Control, CreateError, Inbound, JoinRefused, LiveMark, MatchHandle, MatchInfo,
    MatchShared, MatchState, Seat, SpectatorTick,
};
use crate::config::ServerConfig;
use crate::headless;
use crate::log::{Durability, LogConfig, LogError, LogWriter, TickBatch};
use crate::metrics::{MatchLabel, Metrics};
use crate::sim::{CommandInput, Game, MatchSetup, Sim};

/// Milliseconds since the Unix epoch (for file headers and listings only).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Commands the match issues itself (joins, leaves) carry this id; they skip de-duplication.
const INTERNAL: CommandId = CommandId(0);

struct Conn {
    out: ClientOut,
    /// Set when a delta could not be queued: the client gets a snapshot once it drains.
    behind_since: Option<Tick>,
    /// Frames owed to a resumed client beyond what its queue holds, sent in order as it drains
    /// (bounded by the resume window; past it the client gets a snapshot instead).
    backlog: VecDeque<Bytes>,
}

impl Conn {
    fn new(out: ClientOut) -> Conn {
        Conn {
            out,
            behind_since: None,
            backlog: VecDeque::new(),
        }
    }

    /// Queue `frame` after anything owed; false if the client's queue is full.
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

struct Slot {
    token: String,
    entity: tickforge_protocol::EntityId,
    /// The highest command id processed; ids at or below it are duplicates.
    last_command: Option<CommandId>,
    /// The ticks recent commands were accepted in, for duplicate acks.
    recent: VecDeque<(CommandId, Tick)>,
    conn: Option<Conn>,
    detached_at: Option<Tick>,
    leaving: bool,
}

struct PendingJoin {
    player: PlayerId,
    name: String,
    out: ClientOut,
    reply: tokio::sync::oneshot::Sender<Result<Seat, JoinRefused>>,
}

struct MatchTask {
    sim: Sim,
    writer: Option<LogWriter>,
    durability: watch::Receiver<Durability>,
    shared: Arc<MatchShared>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    players: BTreeMap<PlayerId, Slot>,
    next_player: u32,
    joins: Vec<PendingJoin>,
    leaves: Vec<PlayerId>,
    /// Encoded delta frames of recent ticks, for resuming clients: (tick, seq, frame).
    recent: VecDeque<(Tick, Seq, Bytes)>,
    cancel: CancellationToken,
    grace_ticks: u64,
    slow_ticks: u64,
    /// Ticks a match may stay empty before it ends.
    idle_ticks: u64,
    /// The tick since which the match has had no players, joins or reservations.
    idle_since: Option<Tick>,
    label: MatchLabel,
}

/// Why a match's tick loop stops of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The game's rules ended it (a score or time limit).
    Over,
    /// Nobody was in it for the idle time.
    Idle,
}

/// Set up match `id` (its simulation and replay file) and return its handle and its task,
/// which the caller spawns; the task resolves to the match's final summary.
#[expect(clippy::too_many_arguments, reason = "one call site, in the registry")]
pub(super) fn spawn(
    id: MatchId,
    game: GameConfig,
    rules: Arc<dyn Game>,
    seed: u64,
    path: PathBuf,
    log: LogConfig,
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
    let setup = MatchSetup {
        match_id: id,
        seed,
        tick_rate_hz: config.tick_rate_hz,
        game: game.clone(),
    };
    let max_players = rules.max_players();
    let sim = Sim::new(&setup, rules)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let created = unix_ms();
    let header = headless::header_for(&sim, created, log.snapshot_every_ticks);
    let writer = LogWriter::create(&path, &header, log)?;
    let (inbox_tx, inbox_rx) = mpsc::channel(config.match_inbox);
    let (control_tx, control_rx) = mpsc::channel(256);
    let shared = Arc::new(MatchShared {
        id,
        tick_rate_hz: config.tick_rate_hz,
        created_at_unix_ms: created,
        info: RwLock::new(MatchInfo {
            id,
            game: game.game_name().to_string(),
            state: MatchState::Running,
            players: 0,
            max_players,
            spectators: 0,
            tick: Tick(0),
            last_seq: Seq(0),
            durable_tick: Tick(0),
            tick_rate_hz: config.tick_rate_hz,
            created_at_unix_ms: created,
            replay: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            stopped_reason: None,
            end_reason: None,
            config: game.clone(),
        }),
        live: watch::channel(LiveMark::default()).0,
        ring: RwLock::new(VecDeque::new()),
        spectators: Default::default(),
        reserved: Default::default(),
        replay_path: path,
        game,
    });
    let task = MatchTask {
        durability: writer.durability(),
        writer: Some(writer),
        sim,
        shared: shared.clone(),
        grace_ticks: config.ticks_in(config.resume_grace),
        slow_ticks: config.ticks_in(config.slow_client_grace),
        idle_ticks: config.ticks_in(config.idle_match),
        idle_since: None,
        label: MatchLabel { match_id: id.0 },
        config,
        metrics,
        players: BTreeMap::new(),
        next_player: 1,
        joins: Vec::new(),
        leaves: Vec::new(),
        recent: VecDeque::new(),
        cancel,
    };
    let handle = MatchHandle {
        shared,
        inbox: inbox_tx,
        control: control_tx,
    };
    Ok((handle, task.run(inbox_rx, control_rx)))
}

fn frame(message: &ServerMessage) -> Bytes {
    // Server messages are plain data and always encode.
    Bytes::from(encode(message).unwrap_or_default())
}

impl MatchTask {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut control: mpsc::Receiver<Control>,
    ) -> MatchInfo {
        self.metrics.matches_running.inc();
        let period = self.config.tick_period();
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome: Result<Option<Ending>, String> = loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break Ok(None),
                _ = timer.tick() => {
                    match self.tick(&mut inbox) {
                        Ok(Some(ending)) => break Ok(Some(ending)),
                        Ok(None) => {}
                        Err(reason) => break Err(reason),
                    }
                }
                Some(request) = control.recv() => self.control(request),
            }
        };
        let metrics = self.metrics.clone();
        let summary = self.finish(outcome, &mut control).await;
        metrics.matches_running.dec();
        summary
    }

    /// One tick. Returns why the match ends, if it does.
    ///
    /// Phases, in order:
    /// 1. drain the inbox in arrival order (joins and leaves the match issues itself first);
    ///    drop duplicate command ids (acknowledged, not applied);
    /// 2. (to 6.) `Sim::run_tick`: decide, sequence, apply, fixed-step schedule, state hash;
    /// 7. hand the tick's records to the log writer thread (never waits);
    /// 8. encode the delta once and queue it for every connected player (never waits);
    ///    then: acks and rejections to senders, the tick to spectators, joins completed,
    ///    slow clients and expired resume grace periods handled.
    fn tick(&mut self, inbox: &mut mpsc::Receiver<Inbound>) -> Result<Option<Ending>, String> {
        let started = Instant::now();
        let tick = self.sim.now();

        // 1. The inbox, in arrival order.
        let mut inputs: Vec<CommandInput> = Vec::new();
        for join in &self.joins {
            inputs.push(CommandInput {
                player: join.player,
                id: INTERNAL,
                command: Command::Join {
                    name: join.name.clone(),
                },
            });
        }
        for player in self.leaves.drain(..) {
            inputs.push(CommandInput {
                player,
                id: INTERNAL,
                command: Command::Leave,
            });
        }
        let mut duplicates: Vec<(PlayerId, CommandId, Tick)> = Vec::new();
        for _ in 0..self.config.match_inbox {
            let Ok(cmd) = inbox.try_recv() else { break };
            self.metrics.commands.inc();
            let Some(slot) = self.players.get_mut(&cmd.player) else {
                continue;
            };
            if cmd.id == INTERNAL || slot.last_command.is_some_and(|last| cmd.id <= last) {
                let at = slot
                    .recent
                    .iter()
                    .find(|(id, _)| *id == cmd.id)
                    .map_or(tick, |(_, t)| *t);
                duplicates.push((cmd.player, cmd.id, at));
                continue;
            }
            slot.last_command = Some(cmd.id);
            inputs.push(CommandInput {
                player: cmd.player,
                id: cmd.id,
                command: cmd.command,
            });
        }

        // 2–6. The deterministic core.
        let report = self.sim.run_tick(inputs);
        self.metrics.events.inc_by(report.events.len() as u64);
        self.metrics
            .rejections
            .inc_by(report.rejections.len() as u64);
        let ended = report.events.iter().find_map(|e| match &e.kind {
            EventKind::MatchEnded { reason, winner } => Some((*reason, *winner)),
            _ => None,
        });
        let left: Vec<PlayerId> = report
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::PlayerLeft { player, .. } => Some(player),
                _ => None,
            })
            .collect();
        let seq_before = Seq(self.sim.last_seq().0 - report.events.len() as u64);
        let spectator_tick = Arc::new(SpectatorTick {
            tick,
            seq_before,
            last_seq: self.sim.last_seq(),
            events: report.events.clone(),
            hash: report.hash,
        });
        let outcomes = report.outcomes.clone();

        // 7. The log, without waiting.
        let snapshot = self
            .writer
            .as_ref()
            .is_some_and(|w| w.snapshot_due(tick))
            .then(|| self.sim.snapshot());
        if let Some(writer) = &self.writer
            && let Err(e) = writer.append(TickBatch::from_report(report, snapshot))
        {
            return Err(format!(
                "the replay log failed at tick {}: {}",
                tick.0,
                self.config.redact(&e.to_string())
            ));
        }

        // 8. The delta, encoded once, to every connected player.
        let delta = self.sim.take_delta();
        let delta_frame = frame(&ServerMessage::Delta(delta));
        self.recent
            .push_back((tick, self.sim.last_seq(), delta_frame.clone()));
        while self.recent.len() > self.config.resume_window_ticks {
            self.recent.pop_front();
        }
        let mut catch_up: Option<Bytes> = None;
        let mut gone: Vec<PlayerId> = Vec::new();
        for (player, slot) in &mut self.players {
            let Some(conn) = &mut slot.conn else { continue };
            if conn.behind_since.is_some() {
                continue;
            }
            match conn.offer(&delta_frame, self.config.resume_window_ticks) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.metrics.delta_drops.inc();
                    conn.behind_since = Some(tick);
                }
                Err(TrySendError::Closed(_)) => gone.push(*player),
            }
        }

        // Acks and rejections, to their senders.
        for outcome in &outcomes {
            if outcome.id == INTERNAL {
                continue;
            }
            let message = match &outcome.result {
                Ok(()) => {
                    if let Some(slot) = self.players.get_mut(&outcome.player) {
                        slot.recent.push_back((outcome.id, tick));
                        if slot.recent.len() > 64 {
                            slot.recent.pop_front();
                        }
                    }
                    ServerMessage::Ack {
                        id: outcome.id,
                        tick,
                        duplicate: false,
                    }
                }
                Err(r) => ServerMessage::Rejected {
                    id: outcome.id,
                    rule: r.rule,
                    detail: r.detail.clone(),
                },
            };
            self.send_to(outcome.player, &message);
        }
        for (player, id, at) in duplicates {
            self.send_to(
                player,
                &ServerMessage::Ack {
                    id,
                    tick: at,
                    duplicate: true,
                },
            );
        }

        // Spectators.
        {
            let mut ring = self.shared.ring.write();
            ring.push_back(spectator_tick);
            while ring.len() > self.config.spectator_window_ticks {
                ring.pop_front();
            }
        }

        // Joins complete after the delta: a joiner's snapshot already includes this tick.
        let joins = std::mem::take(&mut self.joins);
        for join in joins {
            self.shared.reserved.fetch_sub(1, Ordering::Relaxed);
            let result = outcomes
                .iter()
                .find(|o| o.player == join.player && o.id == INTERNAL)
                .map(|o| o.result.clone());
            match (result, self.sim.player_entity(join.player)) {
                (Some(Ok(())), Some(entity)) => self.seat(join, entity),
                (Some(Err(r)), _) => {
                    let refused = match r.rule {
                        Rule::MatchFull => JoinRefused::Full(self.shared.id),
                        Rule::MatchEnded => JoinRefused::Ended(self.shared.id),
                        _ => JoinRefused::Rejected(r.to_string()),
                    };
                    let _ = join.reply.send(Err(refused));
                }
                _ => {
                    let _ = join.reply.send(Err(JoinRefused::Rejected(
                        "the join was not processed".into(),
                    )));
                }
            }
        }

        // Players who left are gone for good.
        for player in left {
            if let Some(slot) = self.players.remove(&player)
                && let Some(conn) = slot.conn
            {
                conn.out.control.close(CloseCode::Normal, "left the match");
            }
        }

        // Slow clients: a snapshot once they drain, or out after the grace budget.
        for (player, slot) in &mut self.players {
            let Some(conn) = &mut slot.conn else { continue };
            let Some(since) = conn.behind_since else {
                continue;
            };
            if conn.out.frames.capacity() >= conn.out.frames.max_capacity() / 2 {
                let snapshot = catch_up.get_or_insert_with(|| {
                    frame(&ServerMessage::Snapshot(self.sim.client_snapshot()))
                });
                if conn.out.frames.try_send(snapshot.clone()).is_ok() {
                    conn.behind_since = None;
                }
            } else if tick.0.saturating_sub(since.0) > self.slow_ticks {
                conn.out.control.close(
                    CloseCode::TooSlow,
                    format!(
                        "not reading: {} ticks of deltas not delivered",
                        tick.0 - since.0
                    ),
                );
                gone.push(*player);
            }
        }
        for player in gone {
            if let Some(slot) = self.players.get_mut(&player) {
                slot.conn = None;
                slot.detached_at = Some(tick);
            }
        }
        // Dropped players whose resume grace ran out leave (next tick, through the rules).
        for (player, slot) in &mut self.players {
            if !slot.leaving
                && slot
                    .detached_at
                    .is_some_and(|at| tick.0.saturating_sub(at.0) > self.grace_ticks)
            {
                slot.leaving = true;
                self.leaves.push(*player);
            }
        }

        // Match over: tell the players.
        if let Some((reason, winner)) = ended {
            let message = frame(&ServerMessage::MatchEnded { reason, winner });
            for slot in self.players.values() {
                if let Some(conn) = &slot.conn {
                    let _ = conn.out.frames.try_send(message.clone());
                }
            }
        }

        // Status and metrics.
        let durable = self.durability.borrow().clone();
        {
            let mut info = self.shared.info.write();
            info.players = self.players.len() as u32;
            info.tick = tick;
            info.last_seq = self.sim.last_seq();
            info.durable_tick = durable.durable_tick;
        }
        self.shared.live.send_replace(LiveMark {
            tick,
            seq: self.sim.last_seq(),
            finished: false,
        });
        self.metrics
            .durable_lag_ticks
            .get_or_create(&self.label)
            .set(tick.0.saturating_sub(durable.durable_tick.0) as i64);
        self.metrics
            .log_backlog_ticks
            .get_or_create(&self.label)
            .set(tick.0.saturating_sub(durable.written_tick.0) as i64);
        self.metrics
            .observe_tick(started.elapsed(), self.config.tick_period());
        if ended.is_some() {
            return Ok(Some(Ending::Over));
        }
        Ok(self.idle(tick).then_some(Ending::Idle))
    }

    /// Whether the match has been empty (no players, none joining) for the idle time.
    fn idle(&mut self, tick: Tick) -> bool {
        let empty = self.players.is_empty()
            && self.joins.is_empty()
            && self.shared.reserved.load(Ordering::Relaxed) == 0;
        if !empty {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert(tick);
        tick.0.saturating_sub(since.0) >= self.idle_ticks
    }

    fn send_to(&mut self, player: PlayerId, message: &ServerMessage) {
        if let Some(conn) = self.players.get(&player).and_then(|s| s.conn.as_ref()) {
            let _ = conn.out.frames.try_send(frame(message));
        }
    }

    fn seat(&mut self, join: PendingJoin, entity: tickforge_protocol::EntityId) {
        let secret: [u8; 16] = rand::random();
        let token = format!(
            "m{}.p{}.{}",
            self.shared.id.0,
            join.player.0,
            hex16(&secret)
        );
        let joined = ServerMessage::Joined {
            match_id: self.shared.id,
            player: join.player,
            entity,
            tick_rate_hz: self.config.tick_rate_hz,
            resume_token: token.clone(),
            snapshot: self.sim.client_snapshot(),
        };
        let seat = Seat {
            match_id: self.shared.id,
            player: join.player,
            entity,
        };
        if join.out.frames.try_send(frame(&joined)).is_err() || join.reply.send(Ok(seat)).is_err() {
            // The session went away while joining: the player stays until the grace runs out.
            self.players.insert(
                join.player,
                Slot::new(token, entity, None, Some(self.sim.last_tick())),
            );
            return;
        }
        self.players.insert(
            join.player,
            Slot::new(token, entity, Some(Conn::new(join.out)), None),
        );
    }

    fn control(&mut self, request: Control) {
        match request {
            Control::Join { name, out, reply } => {
                if self.shared.info.read().state != MatchState::Running {
                    self.shared.reserved.fetch_sub(1, Ordering::Relaxed);
                    let _ = reply.send(Err(JoinRefused::Ended(self.shared.id)));
                    return;
                }
                let player = PlayerId(self.next_player);
                self.next_player += 1;
                self.joins.push(PendingJoin {
                    player,
                    name,
                    out,
                    reply,
                });
            }
            Control::Snapshot { reply } => {
                let _ = reply.send(self.sim.client_snapshot());
            }
            Control::Resume {
                token,
                last_tick,
                last_seq,
                out,
                reply,
            } => {
                let _ = reply.send(self.resume(&token, last_tick, last_seq, out));
            }
            Control::Detach { player, conn } => {
                let now = self.sim.last_tick();
                if let Some(slot) = self.players.get_mut(&player)
                    && slot.conn.as_ref().is_some_and(|c| c.out.conn == conn)
                {
                    slot.conn = None;
                    slot.detached_at = Some(now);
                }
            }
            Control::Leave { player, conn } => {
                if let Some(slot) = self.players.get_mut(&player)
                    && slot.conn.as_ref().is_some_and(|c| c.out.conn == conn)
                    && !slot.leaving
                {
                    slot.leaving = true;
                    self.leaves.push(player);
                }
            }
        }
    }

    /// Take a dropped player's seat back: re-send the deltas after `last_tick`, or a snapshot.
    fn resume(
        &mut self,
        token: &str,
        last_tick: Tick,
        last_seq: Seq,
        out: ClientOut,
    ) -> Result<Seat, JoinRefused> {
        let Some((&player, _)) = self
            .players
            .iter()
            .find(|(_, s)| s.token == token && !s.leaving)
        else {
            return Err(JoinRefused::ResumeFailed(
                "the token is unknown, or its grace period has passed".into(),
            ));
        };
        let now = self.sim.last_tick();
        if last_tick > now {
            return Err(JoinRefused::ResumeFailed(format!(
                "tick {} is in the future (the match is at {})",
                last_tick.0, now.0
            )));
        }
        // The deltas after last_tick, if the window still holds them all and the client's seq
        // agrees with the tick it names; otherwise a snapshot.
        let missed: Option<Vec<Bytes>> = {
            let first = self.recent.front().map(|(t, _, _)| *t);
            let at_client = self
                .recent
                .iter()
                .find(|(t, _, _)| *t == last_tick)
                .map(|(_, s, _)| *s);
            let window_ok = first.is_some_and(|f| f.0 <= last_tick.0 + 1) || last_tick == now;
            let seq_ok = at_client.is_none_or(|s| s == last_seq);
            let frames: Vec<Bytes> = self
                .recent
                .iter()
                .filter(|(t, _, _)| *t > last_tick)
                .map(|(_, _, f)| f.clone())
                .collect();
            (window_ok && seq_ok).then_some(frames)
        };
        let slot = self
            .players
            .get_mut(&player)
            .ok_or_else(|| JoinRefused::ResumeFailed("no such player".into()))?;
        if let Some(old) = slot.conn.take() {
            old.out
                .control
                .close(CloseCode::Normal, "resumed on another connection");
        }
        let seat = Seat {
            match_id: self.shared.id,
            player,
            entity: slot.entity,
        };
        let resumed = ServerMessage::Resumed {
            match_id: self.shared.id,
            player,
            entity: slot.entity,
            from_seq: last_seq,
        };
        let mut frames = vec![frame(&resumed)];
        match missed {
            Some(deltas) => frames.extend(deltas),
            None => frames.push(frame(&ServerMessage::Snapshot(self.sim.client_snapshot()))),
        }
        // What the queue holds now; the rest is owed and follows as the client drains it.
        let mut conn = Conn::new(out);
        for f in frames {
            if conn.backlog.is_empty() {
                match conn.out.frames.try_send(f) {
                    Ok(()) => continue,
                    Err(TrySendError::Full(f)) => conn.backlog.push_back(f),
                    Err(TrySendError::Closed(_)) => {
                        return Err(JoinRefused::ResumeFailed(
                            "the connection closed while resuming".into(),
                        ));
                    }
                }
            } else {
                conn.backlog.push_back(f);
            }
        }
        let slot = self
            .players
            .get_mut(&player)
            .ok_or_else(|| JoinRefused::ResumeFailed("no such player".into()))?;
        slot.conn = Some(conn);
        slot.detached_at = None;
        Ok(seat)
    }

    /// The match is over (ended, stopped, or the server is shutting down): close the log
    /// (footer, fsync), then the connections; release what only a running match needs. Returns
    /// the match's final summary.
    async fn finish(
        mut self,
        outcome: Result<Option<Ending>, String>,
        control: &mut mpsc::Receiver<Control>,
    ) -> MatchInfo {
        let shutting_down = self.cancel.is_cancelled();
        let (state, code, reason, end_reason) = match &outcome {
            Ok(Some(Ending::Over)) => (
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
            Ok(None) => (
                MatchState::Ended,
                CloseCode::GoingAway,
                "server_shutting_down".to_string(),
                "server_shutting_down",
            ),
            Err(reason) => (
                MatchState::Stopped,
                CloseCode::MatchStopped,
                reason.clone(),
                "stopped",
            ),
        };
        if let Err(reason) = &outcome {
            tracing::error!(match_id = self.shared.id.0, %reason, "match stopped");
        }
        let writer = self.writer.take();
        let closed = tokio::task::spawn_blocking(move || writer.map(LogWriter::close)).await;
        match closed {
            Ok(Some(Err(e))) => {
                tracing::error!(match_id = self.shared.id.0, error = %e, "closing the replay log failed")
            }
            Err(e) => {
                tracing::error!(match_id = self.shared.id.0, error = %e, "closing the replay log panicked")
            }
            _ => {}
        }
        {
            let durable = self.durability.borrow().clone();
            let mut info = self.shared.info.write();
            info.state = state.clone();
            info.durable_tick = durable.durable_tick;
            info.end_reason = Some(end_reason);
            if let Err(reason) = &outcome {
                info.stopped_reason = Some(reason.clone());
            }
        }
        // The log is closed: spectators still following read the rest from the file.
        self.shared.ring.write().clear();
        self.metrics.durable_lag_ticks.remove(&self.label);
        self.metrics.log_backlog_ticks.remove(&self.label);
        let last = *self.shared.live.borrow();
        self.shared.live.send_replace(LiveMark {
            finished: true,
            ..last
        });
        control.close();
        while let Ok(request) = control.try_recv() {
            if let Control::Join { reply, .. } | Control::Resume { reply, .. } = request {
                let _ = reply.send(Err(if shutting_down {
                    JoinRefused::ShuttingDown
                } else {
                    JoinRefused::Ended(self.shared.id)
                }));
            }
        }
        for join in self.joins.drain(..) {
            let _ = join.reply.send(Err(JoinRefused::Ended(self.shared.id)));
        }
        for slot in self.players.values() {
            if let Some(conn) = &slot.conn {
                conn.out.control.close(code, reason.clone());
            }
        }
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
        summary
    }
}

impl Slot {
    fn new(
        token: String,
        entity: tickforge_protocol::EntityId,
        conn: Option<Conn>,
        detached_at: Option<Tick>,
    ) -> Slot {
        Slot {
            token,
            entity,
            last_command: None,
            recent: VecDeque::new(),
            conn,
            detached_at,
            leaving: false,
        }
    }
}

fn hex16(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
