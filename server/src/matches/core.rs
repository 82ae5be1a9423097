//! The match core: everything a match decides, with no I/O. It owns the [`Sim`], the seats,
//! command-id de-duplication, resume bookkeeping and the slow-client state. No tokio, no
//! sockets, no clock: time enters as tick numbers, inputs as values, and each tick returns one
//! [`TickOutput`] saying what must happen, for the match task's sinks to carry out (the
//! raft-rs `tick` / `ready` shape).
//!
//! Connections are [`ConnId`]s here. What the fan-out saw when it delivered the last tick
//! (a client's queue full, room again, or gone) comes back as [`Delivered`] with the next
//! tick; the core decides from it whether a client is behind, owed a snapshot, or too slow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use tickforge_protocol::compact::{self, ComponentTable, Duplicate, PlayerPart, Rejected, World};
use tickforge_protocol::{
    Cause, CloseCode, Command, CommandId, EndReason, EntityId, EventKind, MatchId, PlayerId, Rule,
    Seq, ServerMessage, Snapshot, Tick, encode,
};

use super::{ConnId, Inbound, JoinRefused, Seat};
use crate::log::replay::apply_recorded;
use crate::log::{Divergence, TickBatch, TickRecords};
use crate::sim::{CommandInput, Sim};

/// Commands the core issues itself (joins, leaves) carry this id; they skip de-duplication.
const INTERNAL: CommandId = CommandId(0);

/// Recent accepted command ids kept per player, to answer duplicates with their tick.
const RECENT_ACKS: usize = 64;

/// The limits a core keeps, in ticks.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Ticks of deltas kept for resuming clients; a longer gap gets a snapshot.
    pub resume_window_ticks: usize,
    /// Ticks a dropped player keeps their seat.
    pub grace_ticks: u64,
    /// Ticks a client may stay behind before it is disconnected.
    pub slow_ticks: u64,
    /// Ticks a match may be empty before it ends.
    pub idle_ticks: u64,
    /// A full snapshot goes into the log after every tick that is a multiple of this (0: none).
    pub snapshot_every_ticks: u64,
    /// The key resume tokens are signed with: random per server process, or derived from the
    /// cluster's secret so that any node can take a match over with its players' tokens.
    pub token_key: [u8; 32],
}

/// How a connection fared when the fan-out last delivered to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Its queue was full: the tick's delta did not go out.
    Full,
    /// Its queue has room for a snapshot again (at least half free).
    Roomy,
    /// Its queue has some messages waiting, and room for more.
    Busy,
    /// The connection is gone.
    Closed,
}

/// What one tick takes.
#[derive(Debug, Default)]
pub struct TickInput {
    /// The inbox, in arrival order.
    pub commands: Vec<Inbound>,
    /// How each connection fared with the last tick's deliveries.
    pub delivered: Vec<(ConnId, Delivered)>,
    /// Player slots promised to joins that have not reached the core yet (quick-join's).
    pub reserved: u32,
}

/// Why a match stops of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The game's rules ended it.
    Over {
        reason: EndReason,
        winner: Option<PlayerId>,
    },
    /// Nobody was in it for the idle time.
    Idle,
}

/// The outcome of a join, for its connection.
#[derive(Debug)]
pub struct JoinOutcome {
    pub conn: ConnId,
    /// The seat and the `Joined` frame (with the snapshot), or why not.
    pub result: Result<(Seat, Bytes), JoinRefused>,
}

/// What a client is sent this tick, in order.
#[derive(Debug)]
pub struct Outgoing {
    pub conn: ConnId,
    /// The tick frame (the delta with this player's acks, rejections and duplicate notices),
    /// after a snapshot for a client that has caught up; then `MatchEnded` if the match ended.
    pub frames: Vec<Bytes>,
    /// Whether the first frame is the tick's state (a delta or a snapshot) rather than a
    /// message a full queue may drop.
    pub state_first: bool,
}

/// Counts of one tick, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickStats {
    pub commands: u64,
    pub duplicates: u64,
    pub events: u64,
    pub rejections: u64,
    /// Clients whose delta did not fit their queue last tick.
    pub delta_drops: u64,
    pub players: u32,
}

/// Everything one tick produced, for the sinks.
#[derive(Debug)]
pub struct TickOutput {
    pub tick: Tick,
    /// The last seq before this tick.
    pub seq_before: Seq,
    /// The tick's records for the log (events, rejections, hash, snapshot), shared by every
    /// sink that needs them.
    pub records: Arc<TickBatch>,
    /// The tick frame of a player with no acks, rejections or duplicates this tick (the delta,
    /// encoded once); a player with some gets a frame of their own.
    pub delta: Bytes,
    /// What each connected player is sent.
    pub sends: Vec<Outgoing>,
    /// Joins completed (or refused) this tick.
    pub joins: Vec<JoinOutcome>,
    /// Connections to close, with their reasons.
    pub closes: Vec<(ConnId, CloseCode, String)>,
    /// Set when the match ends with this tick.
    pub ended: Option<Ending>,
    pub stats: TickStats,
}

/// What a resume gives its new connection.
#[derive(Debug)]
pub struct Resumption {
    pub seat: Seat,
    /// `Resumed`, then the deltas missed (or a snapshot), in order.
    pub frames: Vec<Bytes>,
    /// The connection the player had, now replaced: close it.
    pub replaced: Option<ConnId>,
}

struct Slot {
    token: String,
    entity: EntityId,
    /// The highest command id processed; ids at or below it are duplicates.
    last_command: Option<CommandId>,
    /// The ticks recent commands were accepted in, for duplicate acks.
    recent: VecDeque<(CommandId, Tick)>,
    conn: Option<ConnId>,
    /// Set when a delta did not reach the client: it gets a snapshot once it has room.
    behind_since: Option<Tick>,
    detached_at: Option<Tick>,
    leaving: bool,
}

struct PendingJoin {
    player: PlayerId,
    name: String,
    conn: ConnId,
}

/// One match's decisions.
pub struct MatchCore {
    id: MatchId,
    sim: Sim,
    config: CoreConfig,
    players: BTreeMap<PlayerId, Slot>,
    next_player: u32,
    joins: Vec<PendingJoin>,
    leaves: Vec<PlayerId>,
    /// Tick frames of recent ticks (with no player's part), for resuming clients:
    /// (tick, seq, frame).
    recent: VecDeque<(Tick, Seq, Bytes)>,
    /// The public world as the tick frames describe it, as of the last tick: what the next
    /// delta is encoded against.
    wire: World,
    /// The tick since which the match has had no players, joins or reservations.
    idle_since: Option<Tick>,
    ended: bool,
    /// The last tick recorded by the node this match was taken over from: ticks after it may
    /// differ from what that node's clients saw, so a resume naming one gets a snapshot.
    moved_at: Option<Tick>,
}

impl std::fmt::Debug for MatchCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchCore")
            .field("id", &self.id)
            .field("tick", &self.sim.last_tick())
            .field("players", &self.players.len())
            .finish_non_exhaustive()
    }
}

/// `m<match>.p<player>.<mac>`: the MAC (HMAC-SHA256 under `key`, 16 bytes in hex) binds the
/// token to its match and player, so a node that takes the match over knows it too.
pub fn resume_token(key: &[u8; 32], id: MatchId, player: PlayerId) -> String {
    let name = format!("m{}.p{}", id.0, player.0);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(name.as_bytes());
    let tag = mac.finalize().into_bytes();
    let hex: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}.{hex}")
}

fn frame(message: &ServerMessage) -> Bytes {
    // Server messages are plain data and always encode.
    Bytes::from(encode(message).unwrap_or_default())
}

impl MatchCore {
    /// A core for `sim`. Fails if the game has more public components than a tick frame's
    /// table holds ([`compact::MAX_COMPONENTS`]).
    pub fn new(id: MatchId, mut sim: Sim, config: CoreConfig) -> Result<MatchCore, String> {
        let table = ComponentTable::new(sim.public_components()).map_err(|e| e.to_string())?;
        let mut wire = World::new(table);
        wire.apply_snapshot(&sim.client_snapshot())
            .map_err(|e| e.to_string())?;
        Ok(MatchCore {
            wire,
            id,
            sim,
            config,
            players: BTreeMap::new(),
            next_player: 1,
            joins: Vec::new(),
            leaves: Vec::new(),
            recent: VecDeque::new(),
            idle_since: None,
            ended: false,
            moved_at: None,
        })
    }

    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// The last tick completed.
    pub fn last_tick(&self) -> Tick {
        self.sim.last_tick()
    }

    /// Players holding a seat (connected, or dropped within their grace).
    pub fn players(&self) -> u32 {
        self.players.len() as u32
    }

    /// Whether the match's rules have ended it.
    pub fn is_over(&self) -> bool {
        self.ended || self.sim.is_over()
    }

    /// The public world as of the last tick.
    pub fn snapshot(&mut self) -> Snapshot {
        self.sim.client_snapshot()
    }

    /// Ask for a seat: the join is decided at the next tick, and its outcome is in that tick's
    /// [`TickOutput::joins`]. Returns the player id it will have.
    pub fn join(&mut self, conn: ConnId, name: String) -> PlayerId {
        let player = PlayerId(self.next_player);
        self.next_player += 1;
        self.joins.push(PendingJoin { player, name, conn });
        player
    }

    /// Give a dropped (or reconnecting) player their seat back on `conn`: the deltas after
    /// `last_tick` if the window still holds them all and the client's seq agrees with the
    /// tick it names, else a snapshot.
    pub fn resume(
        &mut self,
        conn: ConnId,
        token: &str,
        last_tick: Tick,
        last_seq: Seq,
    ) -> Result<Resumption, JoinRefused> {
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
        // Past the tick the match moved at, the client saw the old node's version of ticks
        // the stream never took: only a snapshot is sure to be right.
        let unrecorded = self.moved_at.is_some_and(|at| last_tick > at);
        if last_tick > now && !unrecorded {
            return Err(JoinRefused::ResumeFailed(format!(
                "tick {} is in the future (the match is at {})",
                last_tick.0, now.0
            )));
        }
        let first = self.recent.front().map(|(t, _, _)| *t);
        let at_client = self
            .recent
            .iter()
            .find(|(t, _, _)| *t == last_tick)
            .map(|(_, s, _)| *s);
        let window_ok = first.is_some_and(|f| f.0 <= last_tick.0 + 1) || last_tick == now;
        let seq_ok = at_client.is_none_or(|s| s == last_seq);
        let missed: Option<Vec<Bytes>> = (window_ok && seq_ok && !unrecorded).then(|| {
            self.recent
                .iter()
                .filter(|(t, _, _)| *t > last_tick)
                .map(|(_, _, f)| f.clone())
                .collect()
        });
        let snapshot = missed
            .is_none()
            .then(|| frame(&ServerMessage::Snapshot(self.sim.client_snapshot())));
        let slot = self
            .players
            .get_mut(&player)
            .ok_or_else(|| JoinRefused::ResumeFailed("no such player".into()))?;
        let replaced = slot.conn.replace(conn);
        slot.detached_at = None;
        slot.behind_since = None;
        let seat = Seat {
            match_id: self.id,
            player,
            entity: slot.entity,
        };
        let mut frames = vec![frame(&ServerMessage::Resumed {
            match_id: self.id,
            player,
            entity: slot.entity,
            from_seq: last_seq,
        })];
        frames.extend(missed.unwrap_or_default());
        frames.extend(snapshot);
        Ok(Resumption {
            seat,
            frames,
            replaced,
        })
    }

    /// Connection `conn` of `player` is gone; the seat waits for a resume.
    pub fn detach(&mut self, player: PlayerId, conn: ConnId) {
        let now = self.sim.last_tick();
        if let Some(slot) = self.players.get_mut(&player)
            && slot.conn == Some(conn)
        {
            slot.conn = None;
            slot.detached_at = Some(now);
        }
    }

    /// The player on `conn` leaves for good (at the next tick, through the rules).
    pub fn leave(&mut self, player: PlayerId, conn: ConnId) {
        if let Some(slot) = self.players.get_mut(&player)
            && slot.conn == Some(conn)
            && !slot.leaving
        {
            slot.leaving = true;
            self.leaves.push(player);
        }
    }

    /// Every connection with a seat, and every join waiting: what a match that stops must close
    /// and refuse.
    pub fn wind_up(&mut self) -> (Vec<ConnId>, Vec<ConnId>) {
        let connected = self.players.values().filter_map(|s| s.conn).collect();
        let joining = self.joins.drain(..).map(|j| j.conn).collect();
        (connected, joining)
    }

    /// One tick.
    ///
    /// Phases, in order:
    /// 1. take the fan-out's report on the last tick's deliveries (who is behind, who has room,
    ///    who is gone);
    /// 2. gather the inputs: the joins and leaves the core issues itself first, then the inbox
    ///    in arrival order, duplicate command ids dropped (acknowledged, not applied);
    /// 3. `Sim::run_tick`: decide, sequence, apply, fixed-step schedule, state hash;
    /// 4. the records for the log, with a snapshot when one is due;
    /// 5. the delta, encoded once, kept for resumes;
    /// 6. what each player is owed: the delta (or a snapshot once a client that fell behind
    ///    has room), acks, rejections, duplicate notices, `MatchEnded`;
    /// 7. joins completed, leavers and slow clients closed, dropped players whose grace ran
    ///    out sent to leave;
    /// 8. whether the match ends: by its rules, or empty for the idle time.
    pub fn tick(&mut self, input: TickInput) -> TickOutput {
        let tick = self.sim.now();
        let mut closes = Vec::new();
        let mut stats = TickStats::default();

        // 1. The last tick's deliveries (a report per connection: look each up by index, not by
        // a search through every seat).
        let by_conn: BTreeMap<ConnId, PlayerId> = self
            .players
            .iter()
            .filter_map(|(player, slot)| Some((slot.conn?, *player)))
            .collect();
        let mut roomy = BTreeSet::new();
        for (conn, delivered) in input.delivered {
            let Some(player) = by_conn.get(&conn).copied() else {
                continue;
            };
            let Some(slot) = self.players.get_mut(&player) else {
                continue;
            };
            match delivered {
                Delivered::Full => {
                    stats.delta_drops += 1;
                    slot.behind_since.get_or_insert(self.sim.last_tick());
                }
                Delivered::Roomy => {
                    roomy.insert(player);
                }
                Delivered::Busy => {}
                Delivered::Closed => {
                    slot.conn = None;
                    slot.detached_at = Some(self.sim.last_tick());
                }
            }
        }

        // 2. The inputs.
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
        for cmd in input.commands {
            stats.commands += 1;
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
        stats.duplicates = duplicates.len() as u64;

        // 3. The deterministic core.
        let seq_before = self.sim.last_seq();
        let mut report = self.sim.run_tick(inputs);
        stats.events = report.events.len() as u64;
        stats.rejections = report.rejections.len() as u64;
        let ended = report.events.iter().find_map(|e| match &e.kind {
            EventKind::MatchEnded { reason, winner } => Some(Ending::Over {
                reason: *reason,
                winner: *winner,
            }),
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
        let outcomes = std::mem::take(&mut report.outcomes);

        // 4. The records for the log.
        let snapshot = (self.config.snapshot_every_ticks > 0
            && tick.0.is_multiple_of(self.config.snapshot_every_ticks))
        .then(|| self.sim.snapshot());
        let records = Arc::new(TickBatch::from_report(report, snapshot));

        // 5. The delta, encoded once.
        let events = self.sim.last_seq().0.saturating_sub(seq_before.0);
        let (body, delta, resync) = self.encode_delta(tick, events);

        // 6. What each player is owed.
        let mut owed: BTreeMap<PlayerId, PlayerPart> = BTreeMap::new();
        for outcome in &outcomes {
            if outcome.id == INTERNAL {
                continue;
            }
            let part = owed.entry(outcome.player).or_default();
            match &outcome.result {
                Ok(()) => {
                    if let Some(slot) = self.players.get_mut(&outcome.player) {
                        slot.recent.push_back((outcome.id, tick));
                        if slot.recent.len() > RECENT_ACKS {
                            slot.recent.pop_front();
                        }
                    }
                    part.acks.push(outcome.id);
                }
                Err(r) => part.rejections.push(Rejected {
                    id: outcome.id,
                    rule: r.rule,
                    detail: r.detail.clone(),
                }),
            }
        }
        for (player, id, at) in duplicates {
            owed.entry(player)
                .or_default()
                .duplicates
                .push(Duplicate { id, tick: at });
        }
        let ended_frame = match ended {
            Some(Ending::Over { reason, winner }) => {
                Some(frame(&ServerMessage::MatchEnded { reason, winner }))
            }
            _ => None,
        };
        let mut catch_up: Option<Bytes> = None;
        let mut sends = Vec::new();
        if resync {
            for slot in self.players.values_mut() {
                slot.behind_since.get_or_insert(tick);
            }
        }
        for (player, slot) in &mut self.players {
            let Some(conn) = slot.conn else { continue };
            let mut frames = Vec::new();
            let mut state_first = false;
            // The player's tick frame: the shared one, or one with their part.
            let own = |part: Option<PlayerPart>| match part {
                Some(part) if !part.is_empty() => {
                    let mut out = Vec::with_capacity(body.len() + 16);
                    compact::write_tick_frame(&mut out, &part, tick, events, &body);
                    Some(Bytes::from(out))
                }
                _ => None,
            };
            match slot.behind_since {
                None => {
                    frames.push(own(owed.remove(player)).unwrap_or_else(|| delta.clone()));
                    state_first = true;
                }
                Some(_) if roomy.contains(player) || resync => {
                    let snapshot = catch_up.get_or_insert_with(|| {
                        frame(&ServerMessage::Snapshot(self.sim.client_snapshot()))
                    });
                    frames.push(snapshot.clone());
                    state_first = true;
                    slot.behind_since = None;
                    // The tick frame of the snapshot's own tick carries the player's part; its
                    // delta is already in the snapshot, and the client skips it.
                    frames.extend(own(owed.remove(player)));
                }
                Some(since) if tick.0.saturating_sub(since.0) > self.config.slow_ticks => {
                    closes.push((
                        conn,
                        CloseCode::TooSlow,
                        format!(
                            "not reading: {} ticks of deltas not delivered",
                            tick.0 - since.0
                        ),
                    ));
                    slot.conn = None;
                    slot.detached_at = Some(tick);
                    continue;
                }
                // Behind, with no room: nothing until the snapshot (the acks of these ticks are
                // not sent; a command sent again is answered as a duplicate, with its tick).
                Some(_) => {}
            }
            frames.extend(ended_frame.clone());
            if !frames.is_empty() {
                sends.push(Outgoing {
                    conn,
                    frames,
                    state_first,
                });
            }
        }

        // 7. Joins, leavers, expired graces.
        let mut joins = Vec::new();
        for join in std::mem::take(&mut self.joins) {
            let result = outcomes
                .iter()
                .find(|o| o.player == join.player && o.id == INTERNAL)
                .map(|o| o.result.clone());
            let result = match (result, self.sim.player_entity(join.player)) {
                (Some(Ok(())), Some(entity)) => Ok(self.seat(&join, entity)),
                (Some(Err(r)), _) => Err(match r.rule {
                    Rule::MatchFull => JoinRefused::Full(self.id),
                    Rule::MatchEnded => JoinRefused::Ended(self.id),
                    _ => JoinRefused::Rejected(r.to_string()),
                }),
                _ => Err(JoinRefused::Rejected("the join was not processed".into())),
            };
            joins.push(JoinOutcome {
                conn: join.conn,
                result,
            });
        }
        for player in left {
            if let Some(slot) = self.players.remove(&player)
                && let Some(conn) = slot.conn
            {
                closes.push((conn, CloseCode::Normal, "left the match".into()));
            }
        }
        for (player, slot) in &mut self.players {
            if !slot.leaving
                && slot
                    .detached_at
                    .is_some_and(|at| tick.0.saturating_sub(at.0) > self.config.grace_ticks)
            {
                slot.leaving = true;
                self.leaves.push(*player);
            }
        }
        stats.players = self.players.len() as u32;

        // 8. The end.
        let ended = match ended {
            Some(e) => {
                self.ended = true;
                Some(e)
            }
            None => self.idle(tick, input.reserved).then_some(Ending::Idle),
        };
        TickOutput {
            tick,
            seq_before,
            records,
            delta,
            sends,
            joins,
            closes,
            ended,
            stats,
        }
    }

    /// The tick's delta against the wire world: its body, the tick frame with no player's part
    /// (kept for resumes), and whether it failed to encode (every client then gets a snapshot).
    fn encode_delta(&mut self, tick: Tick, events: u64) -> (Vec<u8>, Bytes, bool) {
        let mut body = Vec::with_capacity(64);
        let resync = match self.wire.encode_delta(&self.sim.take_delta(), &mut body) {
            Ok(()) => false,
            Err(e) => {
                // A game's component that the table does not describe: a bug, never input.
                // Every client gets a snapshot instead, and the encoder starts again from it.
                tracing::error!(match_id = self.id.0, error = %e, "a delta could not be encoded");
                body.clear();
                let _ = self.wire.apply_snapshot(&self.sim.client_snapshot());
                true
            }
        };
        let mut plain = Vec::with_capacity(body.len() + 12);
        compact::write_tick_frame(&mut plain, &PlayerPart::default(), tick, events, &body);
        let delta = Bytes::from(plain);
        if resync {
            self.recent.clear();
        }
        self.recent
            .push_back((tick, self.sim.last_seq(), delta.clone()));
        while self.recent.len() > self.config.resume_window_ticks {
            self.recent.pop_front();
        }
        (body, delta, resync)
    }

    /// Re-apply a tick this match recorded on another node (a takeover), checking its hash as
    /// a replay does. The tick's frame is kept for resumes, and the seats follow its events:
    /// each player's entity and the last command id decided for them, so that a command sent
    /// again after the move is answered as a duplicate. Call [`MatchCore::moved`] after the
    /// last one.
    pub fn replay(&mut self, t: &TickRecords, part_names: &[String]) -> Result<(), Divergence> {
        let seq_before = self.sim.last_seq();
        apply_recorded(&mut self.sim, part_names, t)?;
        let events = self.sim.last_seq().0.saturating_sub(seq_before.0);
        self.encode_delta(t.tick, events);
        let decided = t
            .events
            .iter()
            .filter_map(|e| match e.cause {
                Cause::Command { player, id } => Some((player, id)),
                Cause::Rules => None,
            })
            .chain(t.rejections.iter().map(|r| (r.player, r.id)));
        let mut seen: Vec<(PlayerId, CommandId)> = Vec::new();
        for (player, id) in decided {
            if id == INTERNAL || seen.contains(&(player, id)) {
                continue;
            }
            seen.push((player, id));
            if let Some(slot) = self.players.get_mut(&player) {
                slot.last_command = slot.last_command.max(Some(id));
                slot.recent.push_back((id, t.tick));
                if slot.recent.len() > RECENT_ACKS {
                    slot.recent.pop_front();
                }
            }
        }
        for event in &t.events {
            match event.kind {
                EventKind::PlayerJoined { player, entity, .. } => {
                    self.next_player = self.next_player.max(player.0 + 1);
                    self.players.insert(
                        player,
                        Slot {
                            token: resume_token(&self.config.token_key, self.id, player),
                            entity,
                            last_command: None,
                            recent: VecDeque::new(),
                            conn: None,
                            behind_since: None,
                            detached_at: Some(t.tick),
                            leaving: false,
                        },
                    );
                }
                EventKind::PlayerLeft { player, .. } => {
                    self.players.remove(&player);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The recorded ticks are all re-applied: the match continues here. Every seat waits for
    /// its player's resume for the grace period, counted from now.
    pub fn moved(&mut self) {
        let now = self.sim.last_tick();
        self.moved_at = Some(now);
        for slot in self.players.values_mut() {
            slot.detached_at = Some(now);
        }
    }

    /// Seat a joined player: their slot and resume token, and the `Joined` frame.
    fn seat(&mut self, join: &PendingJoin, entity: EntityId) -> (Seat, Bytes) {
        let token = resume_token(&self.config.token_key, self.id, join.player);
        let joined = frame(&ServerMessage::Joined {
            match_id: self.id,
            player: join.player,
            entity,
            tick_rate_hz: self.sim.setup().tick_rate_hz,
            resume_token: token.clone(),
            game: self.sim.game().name().to_string(),
            rules: self.sim.setup().game.clone(),
            components: self.wire.table().names().to_vec(),
            snapshot: self.sim.client_snapshot(),
        });
        self.players.insert(
            join.player,
            Slot {
                token,
                entity,
                last_command: None,
                recent: VecDeque::new(),
                conn: Some(join.conn),
                behind_since: None,
                detached_at: None,
                leaving: false,
            },
        );
        let seat = Seat {
            match_id: self.id,
            player: join.player,
            entity,
        };
        (seat, joined)
    }

    /// A seat whose connection went away before it was taken: the player keeps it for the
    /// grace period, as a dropped one does.
    pub fn unclaimed(&mut self, player: PlayerId) {
        let now = self.sim.last_tick();
        if let Some(slot) = self.players.get_mut(&player) {
            slot.conn = None;
            slot.detached_at = Some(now);
        }
    }

    /// Whether the match has been empty (no players, none joining) for the idle time.
    fn idle(&mut self, tick: Tick, reserved: u32) -> bool {
        let empty = self.players.is_empty() && self.joins.is_empty() && reserved == 0;
        if !empty {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert(tick);
        tick.0.saturating_sub(since.0) >= self.config.idle_ticks
    }
}
