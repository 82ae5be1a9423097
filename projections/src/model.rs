//! One match as the read models see it, folded from its events alone (no re-simulation), and
//! what one tick adds to the database. Pure: no I/O, no clock.
//!
//! The fold is the single definition of every number the queries give: the live projector,
//! a rebuild and the timeline's frames all run it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tickforge_protocol::{
    Cause, EVENT_SCHEMA_VERSION, EndReason, EntityId, Event, EventKind, PlayerId, RejectedCommand,
    ReplayHeader,
};

/// Games whose every event kind the projection knows: an event of another kind in one of
/// their matches (from a newer server, say) cannot be projected and is dead-lettered. Other
/// games' events are counted by kind, and their joins, leaves and end are projected.
const KNOWN_GAMES: &[&str] = &["arena", "drift"];

/// A player's line in one match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerLine {
    /// The name the player joined with (the token's subject unless the client chose one).
    pub name: String,
    pub entity: u32,
    pub joined_tick: u64,
    pub left_tick: Option<u64>,
    pub kills: u64,
    pub deaths: u64,
    pub damage_dealt: u64,
    pub damage_taken: u64,
    /// Projectiles fired.
    pub shots: u64,
    /// Projectiles of theirs that hit another player.
    pub hits: u64,
    /// False from a death to the next spawn.
    pub alive: bool,
    /// The winner of an ended match.
    pub won: bool,
}

impl PlayerLine {
    /// Ticks in the match: from the join to the leave, or to the match's last tick.
    pub fn ticks_played(&self, last_tick: u64) -> u64 {
        self.left_tick
            .unwrap_or(last_tick)
            .saturating_sub(self.joined_tick)
    }
}

/// How a match ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub tick: u64,
    pub reason: EndReason,
    pub winner: Option<u32>,
}

/// A match folded from its events up to its checkpoint (`last_tick`, `last_seq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchModel {
    pub match_id: u64,
    pub game: String,
    pub tick_rate_hz: u32,
    pub created_at_unix_ms: u64,
    /// The last tick applied (0 before the first).
    pub last_tick: u64,
    /// The last event seq applied (0 before the first).
    pub last_seq: u64,
    pub events: u64,
    pub rejections: u64,
    pub ended: Option<Ended>,
    /// The log of the match is closed: no tick will follow (it ended, or was stopped without
    /// a result).
    #[serde(default)]
    pub closed: bool,
    /// By player id.
    pub players: BTreeMap<u32, PlayerLine>,
    /// Events by kind name.
    pub kinds: BTreeMap<String, u64>,
    /// Entity → player, for the players in the match.
    entities: BTreeMap<u32, u32>,
    /// Projectile in flight → its shooter's player id.
    projectiles: BTreeMap<u32, u32>,
}

/// An event as stored for the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: u64,
    pub tick: u64,
    pub kind: String,
    /// The player whose command caused it, for decided events.
    pub player: Option<u32>,
    /// The event's JSON (`{kind: fields}`), as in the spectator feed.
    pub body: String,
}

/// A refused command, as stored for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectionRow {
    pub tick: u64,
    /// Its place among the tick's rejections.
    pub ord: u32,
    pub player: u32,
    /// The player's name, if they had joined.
    pub name: Option<String>,
    pub command_id: u32,
    pub rule: String,
    pub detail: String,
    /// The command's JSON.
    pub command: String,
    /// When, on the match's clock: its creation plus the tick's time.
    pub at_unix_ms: u64,
}

/// An event that could not be projected, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub match_id: u64,
    pub seq: u64,
    pub tick: u64,
    pub kind: String,
    pub reason: String,
    /// The event's JSON, as far as it could be written.
    pub body: String,
}

/// What one batch adds for one match, beyond its model's rows (written whole).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchRows {
    pub events: Vec<EventRow>,
    pub rejections: Vec<RejectionRow>,
    pub dead_letters: Vec<DeadLetter>,
}

impl MatchRows {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.rejections.is_empty() && self.dead_letters.is_empty()
    }
}

/// What applying a tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The tick was new: applied.
    Applied,
    /// At or before the checkpoint: a redelivery, ignored.
    Duplicate,
}

impl MatchModel {
    /// A match with nothing applied yet.
    pub fn new(header: &ReplayHeader) -> MatchModel {
        MatchModel::started(
            header.match_id.0,
            header.game.clone(),
            header.tick_rate_hz.max(1),
            header.created_at_unix_ms,
        )
    }

    fn started(match_id: u64, game: String, tick_rate_hz: u32, created: u64) -> MatchModel {
        MatchModel {
            match_id,
            game,
            tick_rate_hz,
            created_at_unix_ms: created,
            last_tick: 0,
            last_seq: 0,
            events: 0,
            rejections: 0,
            ended: None,
            closed: false,
            players: BTreeMap::new(),
            kinds: BTreeMap::new(),
            entities: BTreeMap::new(),
            projectiles: BTreeMap::new(),
        }
    }

    /// `ended` (with a result), `closed` (stopped without one) or `running`.
    pub fn state(&self) -> &'static str {
        if self.ended.is_some() {
            "ended"
        } else if self.closed {
            "closed"
        } else {
            "running"
        }
    }

    /// When it ended, on its own clock.
    pub fn ended_at_unix_ms(&self) -> Option<u64> {
        self.ended.as_ref().map(|e| self.time_of(e.tick))
    }

    /// The wall-clock time of the end of `tick` on the match's own clock (its creation plus
    /// the ticks' time), so that a rebuild gives the same times as the live projector.
    pub fn time_of(&self, tick: u64) -> u64 {
        let rate = u64::from(self.tick_rate_hz.max(1));
        self.created_at_unix_ms
            .saturating_add(tick.saturating_mul(1000) / rate)
    }

    /// The match's duration so far, in ticks.
    pub fn duration_ticks(&self) -> u64 {
        self.ended.as_ref().map_or(self.last_tick, |e| e.tick)
    }

    /// The name of player `id`, if they joined.
    pub fn name_of(&self, id: u32) -> Option<&str> {
        self.players.get(&id).map(|p| p.name.as_str())
    }

    /// Apply one tick's events and rejections. A tick at or before the checkpoint is a
    /// redelivery and changes nothing. Events that cannot be projected go to `rows`'s dead
    /// letters, and the rest of the tick is applied.
    pub fn apply_tick(
        &mut self,
        tick: u64,
        events: &[Event],
        rejections: &[RejectedCommand],
        rows: &mut MatchRows,
    ) -> Applied {
        // Ticks are numbered from 1.
        if tick <= self.last_tick {
            return Applied::Duplicate;
        }
        for event in events {
            if event.seq.0 <= self.last_seq {
                // Within a new tick, an event already applied can only come from a stream
                // that sent a tick twice, split: skip it like the tick.
                continue;
            }
            if event.seq.0 > self.last_seq + 1 {
                // Lost before they reached the projector: said once, then the event is
                // projected like any other.
                rows.dead_letters.push(DeadLetter {
                    match_id: self.match_id,
                    seq: self.last_seq + 1,
                    tick: event.tick.0,
                    kind: "missing".into(),
                    reason: format!(
                        "seqs {}..={} never arrived (the next was {})",
                        self.last_seq + 1,
                        event.seq.0 - 1,
                        event.seq.0
                    ),
                    body: String::new(),
                });
            }
            let body = serde_json::to_string(&event.kind).unwrap_or_else(|e| format!("{e}"));
            match self.check(event) {
                Err(reason) => rows.dead_letters.push(DeadLetter {
                    match_id: self.match_id,
                    seq: event.seq.0,
                    tick: event.tick.0,
                    kind: event.kind.name().to_string(),
                    reason,
                    body,
                }),
                Ok(()) => {
                    self.fold(event.tick.0, &event.kind);
                    rows.events.push(EventRow {
                        seq: event.seq.0,
                        tick: event.tick.0,
                        kind: event.kind.name().to_string(),
                        player: match event.cause {
                            Cause::Command { player, .. } => Some(player.0),
                            Cause::Rules => None,
                        },
                        body,
                    });
                }
            }
            // A dead letter is passed over for good: the checkpoint moves past it.
            self.last_seq = event.seq.0;
        }
        for (ord, r) in rejections.iter().enumerate() {
            self.rejections += 1;
            rows.rejections.push(RejectionRow {
                tick: r.tick.0,
                ord: ord as u32,
                player: r.player.0,
                name: self.name_of(r.player.0).map(str::to_string),
                command_id: r.id.0,
                rule: r.rule.as_str().to_string(),
                detail: r.detail.clone(),
                command: serde_json::to_string(&r.command).unwrap_or_default(),
                at_unix_ms: self.time_of(r.tick.0),
            });
        }
        self.last_tick = tick;
        Applied::Applied
    }

    /// Why `event` cannot be projected, if it cannot.
    fn check(&self, event: &Event) -> Result<(), String> {
        if event.match_id.0 != self.match_id {
            return Err(format!(
                "event of match {} in the stream of match {}",
                event.match_id.0, self.match_id
            ));
        }
        if event.v > EVENT_SCHEMA_VERSION {
            return Err(format!(
                "event schema version {} is newer than this projector's {}: upgrade it, then rebuild",
                event.v, EVENT_SCHEMA_VERSION
            ));
        }
        let player_entity = |e: EntityId| -> Result<(), String> {
            if self.entities.contains_key(&e.0) {
                Ok(())
            } else {
                Err(format!("entity {} is no player of this match", e.0))
            }
        };
        let projectile = |p: EntityId| -> Result<(), String> {
            if self.projectiles.contains_key(&p.0) {
                Ok(())
            } else {
                Err(format!("projectile {} is not in flight", p.0))
            }
        };
        match &event.kind {
            EventKind::PlayerJoined { player, .. } => {
                if self
                    .players
                    .get(&player.0)
                    .is_some_and(|p| p.left_tick.is_none())
                {
                    return Err(format!("player {} joined twice", player.0));
                }
                Ok(())
            }
            EventKind::PlayerLeft { entity, .. } => player_entity(*entity),
            EventKind::PlayerSpawned { entity, .. } | EventKind::PlayerSteered { entity, .. } => {
                player_entity(*entity)
            }
            EventKind::ProjectileFired { shooter, .. } => player_entity(*shooter),
            EventKind::PlayerHit {
                target,
                projectile: p,
                ..
            } => player_entity(*target).and(projectile(*p)),
            EventKind::PlayerKilled { victim, .. } => player_entity(*victim),
            EventKind::ProjectileExpired { projectile: p } => projectile(*p),
            EventKind::PickupCollected { entity, .. } => player_entity(*entity),
            EventKind::PlayerDrifted { entity, .. } => player_entity(*entity),
            EventKind::PickupSpawned { .. } | EventKind::MatchEnded { .. } => Ok(()),
            EventKind::Game(value) => {
                if KNOWN_GAMES.contains(&self.game.as_str()) {
                    Err(format!(
                        "unknown event kind `{}` in a {} match (from a newer server?)",
                        value.kind, self.game
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The same match with nothing applied: the start of a fold over its stored events.
    pub fn restarted(&self) -> MatchModel {
        MatchModel::started(
            self.match_id,
            self.game.clone(),
            self.tick_rate_hz,
            self.created_at_unix_ms,
        )
    }

    /// Fold an event that was checked (a live one, or one stored after its check) into the
    /// model.
    pub fn fold(&mut self, tick: u64, kind: &EventKind) {
        self.events += 1;
        *self.kinds.entry(kind.name().to_string()).or_insert(0) += 1;
        match kind {
            EventKind::PlayerJoined {
                player,
                entity,
                name,
            } => {
                self.entities.insert(entity.0, player.0);
                self.players.insert(
                    player.0,
                    PlayerLine {
                        name: name.clone(),
                        entity: entity.0,
                        joined_tick: tick,
                        alive: true,
                        ..PlayerLine::default()
                    },
                );
            }
            EventKind::PlayerLeft { player, entity } => {
                self.entities.remove(&entity.0);
                if let Some(p) = self.players.get_mut(&player.0) {
                    p.left_tick = Some(tick);
                    p.alive = false;
                }
            }
            EventKind::PlayerSpawned { entity, .. } => {
                if let Some(p) = self.player_mut(*entity) {
                    p.alive = true;
                }
            }
            EventKind::ProjectileFired {
                projectile,
                shooter,
                ..
            } => {
                if let Some(&player) = self.entities.get(&shooter.0) {
                    self.projectiles.insert(projectile.0, player);
                    if let Some(p) = self.players.get_mut(&player) {
                        p.shots += 1;
                    }
                }
            }
            EventKind::PlayerHit {
                target,
                projectile,
                damage,
                ..
            } => {
                let damage = u64::try_from(*damage).unwrap_or(0);
                let shooter = self.projectiles.remove(&projectile.0);
                if let Some(p) = shooter.and_then(|s| self.players.get_mut(&s)) {
                    p.hits += 1;
                    p.damage_dealt += damage;
                }
                if let Some(p) = self.player_mut(*target) {
                    p.damage_taken += damage;
                }
            }
            EventKind::PlayerKilled { victim, killer, .. } => {
                if let Some(p) = self.player_mut(*victim) {
                    p.deaths += 1;
                    p.alive = false;
                }
                // As the arena scores it: killing yourself is no kill.
                if let Some(killer) = killer.filter(|k| k != victim)
                    && let Some(p) = self.player_mut(killer)
                {
                    p.kills += 1;
                }
            }
            EventKind::ProjectileExpired { projectile } => {
                self.projectiles.remove(&projectile.0);
            }
            EventKind::MatchEnded { reason, winner } => {
                self.ended = Some(Ended {
                    tick,
                    reason: *reason,
                    winner: winner.map(|w| w.0),
                });
                if let Some(p) = winner.and_then(|w| self.players.get_mut(&w.0)) {
                    p.won = true;
                }
            }
            EventKind::PlayerSteered { .. }
            | EventKind::PickupSpawned { .. }
            | EventKind::PickupCollected { .. }
            | EventKind::PlayerDrifted { .. }
            | EventKind::Game(_) => {}
        }
    }

    fn player_mut(&mut self, entity: EntityId) -> Option<&mut PlayerLine> {
        let player = *self.entities.get(&entity.0)?;
        self.players.get_mut(&player)
    }

    /// The winner's name, for an ended match with one.
    pub fn winner_name(&self) -> Option<&str> {
        let winner = self.ended.as_ref()?.winner?;
        self.name_of(winner)
    }

    /// The players' ids in order.
    pub fn player_ids(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.players.keys().map(|&id| PlayerId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickforge_protocol::{CommandId, GameConfig, MatchId, Seq, Tick};

    fn header(game: &str) -> ReplayHeader {
        ReplayHeader {
            format_version: 1,
            protocol_version: 2,
            game: game.into(),
            rules_version: 1,
            match_id: MatchId(7),
            seed: 1,
            tick_rate_hz: 60,
            config: GameConfig::default_for("arena").expect("arena"),
            created_at_unix_ms: 1_000_000,
            snapshot_every_ticks: 0,
            hash_parts: vec![],
        }
    }

    fn event(seq: u64, tick: u64, kind: EventKind) -> Event {
        Event {
            match_id: MatchId(7),
            seq: Seq(seq),
            tick: Tick(tick),
            v: EVENT_SCHEMA_VERSION,
            cause: Cause::Command {
                player: PlayerId(1),
                id: CommandId(1),
            },
            kind,
        }
    }

    fn joined(seq: u64, player: u32, entity: u32, name: &str) -> Event {
        event(
            seq,
            1,
            EventKind::PlayerJoined {
                player: PlayerId(player),
                entity: EntityId(entity),
                name: name.into(),
            },
        )
    }

    #[test]
    fn a_hit_and_a_kill_are_counted_once_for_each_side() {
        let mut m = MatchModel::new(&header("arena"));
        let mut rows = MatchRows::default();
        let tick1 = [joined(1, 1, 10, "ann"), joined(2, 2, 11, "bob")];
        assert_eq!(m.apply_tick(1, &tick1, &[], &mut rows), Applied::Applied);
        let tick2 = [
            event(
                3,
                2,
                EventKind::ProjectileFired {
                    projectile: EntityId(20),
                    shooter: EntityId(10),
                    x: 0,
                    y: 0,
                    vx: 1,
                    vy: 0,
                },
            ),
            event(
                4,
                2,
                EventKind::PlayerHit {
                    target: EntityId(11),
                    projectile: EntityId(20),
                    damage: 25,
                    hp_left: 0,
                },
            ),
            event(
                5,
                2,
                EventKind::PlayerKilled {
                    victim: EntityId(11),
                    killer: Some(EntityId(10)),
                    respawn_at: Tick(100),
                },
            ),
        ];
        m.apply_tick(2, &tick2, &[], &mut rows);
        // Delivered again: nothing changes.
        let before = m.clone();
        assert_eq!(m.apply_tick(2, &tick2, &[], &mut rows), Applied::Duplicate);
        assert_eq!(m, before);
        let ann = &m.players[&1];
        let bob = &m.players[&2];
        assert_eq!(
            (ann.shots, ann.hits, ann.damage_dealt, ann.kills),
            (1, 1, 25, 1)
        );
        assert_eq!((bob.damage_taken, bob.deaths, bob.alive), (25, 1, false));
        assert_eq!(rows.events.len(), 5);
        assert!(rows.dead_letters.is_empty());
        assert_eq!(m.kinds["player_joined"], 2);
    }

    #[test]
    fn an_unknown_kind_and_a_gap_are_dead_letters_and_the_rest_is_applied() {
        let mut m = MatchModel::new(&header("arena"));
        let mut rows = MatchRows::default();
        let newer = EventKind::Game(Box::new(tickforge_protocol::GameValue {
            kind: "teleported".into(),
            value: serde_json::json!({"entity": 10}),
        }));
        let tick1 = [
            joined(1, 1, 10, "ann"),
            event(2, 1, newer),
            joined(5, 2, 11, "bob"),
        ];
        m.apply_tick(1, &tick1, &[], &mut rows);
        assert_eq!(rows.dead_letters.len(), 2);
        assert!(rows.dead_letters[0].reason.contains("teleported"));
        assert!(
            rows.dead_letters[1]
                .reason
                .contains("seqs 3..=4 never arrived")
        );
        assert_eq!(m.players.len(), 2);
        assert_eq!(m.last_seq, 5);
    }
}
