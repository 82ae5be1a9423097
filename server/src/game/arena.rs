//! Arena, the reference game: a 2D top-down arena in fixed-point millimetres.
//!
//! Players steer (speed clamped), fire projectiles (cooldown in ticks); projectiles that touch
//! another living player hit for damage; a player at zero health is killed, scores a kill for
//! the shooter, and respawns after a delay at an RNG-chosen spot; health pickups spawn from the
//! RNG; the match ends at a kill limit or a time limit.
//!
//! Fixed-step systems, in order (each `apply_pending_events` makes the facts so far true
//! before the next systems look):
//! 1. `respawn_players` ⇒ `PlayerSpawned`            → apply
//! 2. `move_players` (state only; velocities come from events; projectiles are not moved:
//!    their position is computed from where and when they were fired)
//! 3. `projectile_hits` ⇒ `PlayerHit`, `PlayerKilled`, `ProjectileExpired` → apply
//! 4. `collect_pickups` ⇒ `PickupCollected`           → apply
//! 5. `spawn_pickups` ⇒ `PickupSpawned`               → apply
//! 6. `check_match_end` ⇒ `MatchEnded`                → apply

use bevy_ecs::prelude::*;
use tickforge_protocol::{
    ArenaConfig, Command, CommandId, ComponentValue, EndReason, EntityId, EventKind, PlayerId,
    Rejection, Rule, Tick,
};

use super::common::{self, MatchState, Position};
use crate::sim::world::{self, Clock, MatchRng, NextEntityId, PendingEvents, PlayerInfo, StableId};
use crate::sim::{Game, GameSetup, SimComponent, StateHasher, apply_pending_events};

/// The arena's rules, as a resource its systems read.
#[derive(Resource, Clone, Debug)]
pub struct Rules(pub ArenaConfig);

/// Velocity in mm per tick.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Velocity {
    pub vx: i32,
    pub vy: i32,
}

/// Health; `respawn_at` is `Some` while the player is dead.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub hp: i32,
    pub respawn_at: Option<Tick>,
}

impl Health {
    pub fn alive(&self) -> bool {
        self.respawn_at.is_none()
    }
}

#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Score {
    pub kills: u32,
    pub deaths: u32,
}

/// The first tick at which the player may fire again.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cooldown {
    pub ready_at: Tick,
}

#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
/// A projectile's `Position` and `Velocity` are where and how fast it was fired at
/// `fired_at`; they never change, so projectiles cost nothing in deltas. Its position at tick
/// `t` is `pos + vel × (t − fired_at)` ([`Projectile::position_at`]).
pub struct Projectile {
    pub shooter: EntityId,
    pub fired_at: Tick,
    pub expires_at: Tick,
}

impl Projectile {
    /// Where a projectile fired from `origin` at `velocity` is at tick `now`, in i64 so that
    /// a long flight cannot overflow.
    pub fn position_at(&self, origin: Position, velocity: Velocity, now: Tick) -> (i64, i64) {
        // Saturating: a crafted snapshot may hold any tick or velocity.
        let age = i64::try_from(now.0.saturating_sub(self.fired_at.0)).unwrap_or(i64::MAX);
        (
            i64::from(origin.x).saturating_add(i64::from(velocity.vx).saturating_mul(age)),
            i64::from(origin.y).saturating_add(i64::from(velocity.vy).saturating_mul(age)),
        )
    }
}

#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pickup {
    pub heal: i32,
}

/// On the match entity: when the next pickup may spawn.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PickupTimer {
    pub next_at: Tick,
}

/// A component with a variant of its own in `ComponentValue`; its hash bytes are a tag byte
/// (part of the replay format: never renumbered) and its fields.
macro_rules! sim_component {
    ($ty:ident, $name:literal, $public:literal, $variant:ident { $($field:ident),* },
     |$h:ident, $s:ident| $hash:expr) => {
        impl SimComponent for $ty {
            const NAME: &'static str = $name;
            const PUBLIC: bool = $public;
            fn to_value(&self) -> ComponentValue {
                ComponentValue::$variant { $($field: self.$field),* }
            }
            fn from_value(value: &ComponentValue) -> Option<Self> {
                match *value {
                    ComponentValue::$variant { $($field),* } => Some($ty { $($field),* }),
                    _ => None,
                }
            }
            fn hash(&self, $h: &mut StateHasher) {
                let $s = self;
                $hash
            }
        }
    };
}

sim_component!(Velocity, "vel", true, Velocity { vx, vy }, |h, s| {
    h.u8(3);
    h.i32(s.vx);
    h.i32(s.vy);
});
sim_component!(Health, "hp", true, Health { hp, respawn_at }, |h, s| {
    h.u8(4);
    h.i32(s.hp);
    h.opt_u64(s.respawn_at.map(|t| t.0));
});
sim_component!(Score, "score", true, Score { kills, deaths }, |h, s| {
    h.u8(5);
    h.u32(s.kills);
    h.u32(s.deaths);
});
sim_component!(
    Cooldown,
    "cooldown",
    false,
    Cooldown { ready_at },
    |h, s| {
        h.u8(6);
        h.u64(s.ready_at.0);
    }
);
sim_component!(
    Projectile,
    "projectile",
    true,
    Projectile {
        shooter,
        fired_at,
        expires_at
    },
    |h, s| {
        h.u8(7);
        h.u32(s.shooter.0);
        h.u64(s.fired_at.0);
        h.u64(s.expires_at.0);
    }
);
sim_component!(Pickup, "pickup", true, Pickup { heal }, |h, s| {
    h.u8(8);
    h.i32(s.heal);
});
sim_component!(
    PickupTimer,
    "pickup_timer",
    false,
    PickupTimer { next_at },
    |h, s| {
        h.u8(11);
        h.u64(s.next_at.0);
    }
);

/// The arena game with its settings.
#[derive(Debug, Clone)]
pub struct Arena {
    rules: ArenaConfig,
}

impl Arena {
    pub fn new(rules: ArenaConfig) -> Arena {
        Arena { rules }
    }

    fn decide_move(
        &self,
        world: &World,
        player: PlayerId,
        entity: EntityId,
        vx: i32,
        vy: i32,
    ) -> Result<Vec<EventKind>, Rejection> {
        let target = common::own_entity(world, player, entity)?;
        check_alive(world, target, entity)?;
        let max = i64::from(self.rules.max_speed_mm_per_tick);
        let speed_sq = i64::from(vx).pow(2) + i64::from(vy).pow(2);
        if speed_sq > max * max {
            return Err(Rejection::new(
                Rule::SpeedLimit,
                format!(
                    "speed {} mm/tick exceeds the limit of {max} mm/tick",
                    (speed_sq as u64).isqrt()
                ),
            ));
        }
        Ok(vec![EventKind::PlayerSteered { entity, vx, vy }])
    }

    fn decide_fire(
        &self,
        world: &World,
        player: PlayerId,
        entity: EntityId,
        dx: i32,
        dy: i32,
    ) -> Result<Vec<EventKind>, Rejection> {
        let target = common::own_entity(world, player, entity)?;
        check_alive(world, target, entity)?;
        let now = world::now(world);
        let ready_at = world
            .get::<Cooldown>(target)
            .map_or(Tick(0), |c| c.ready_at);
        if now < ready_at {
            return Err(Rejection::new(
                Rule::Cooldown,
                format!(
                    "fire is cooling down for {} more ticks (until tick {})",
                    ready_at.0 - now.0,
                    ready_at.0
                ),
            ));
        }
        let length = (i64::from(dx).pow(2) + i64::from(dy).pow(2)) as u64;
        if length == 0 {
            return Err(Rejection::new(
                Rule::InvalidInput,
                "fire needs a non-zero direction",
            ));
        }
        let length = length.isqrt().max(1) as i64;
        let speed = i64::from(self.rules.projectile_speed_mm_per_tick);
        let vx = (i64::from(dx) * speed / length) as i32;
        let vy = (i64::from(dy) * speed / length) as i32;
        let at = world.get::<Position>(target).copied().unwrap_or_default();
        Ok(vec![EventKind::ProjectileFired {
            projectile: common::next_entity_id(world),
            shooter: entity,
            x: at.x,
            y: at.y,
            vx,
            vy,
        }])
    }
}

fn check_alive(world: &World, target: Entity, entity: EntityId) -> Result<(), Rejection> {
    match world.get::<Health>(target) {
        Some(h) if !h.alive() => Err(Rejection::new(
            Rule::PlayerDead,
            format!(
                "entity {entity} is dead until tick {}",
                h.respawn_at.map_or(0, |t| t.0)
            ),
        )),
        _ => Ok(()),
    }
}

impl Game for Arena {
    fn name(&self) -> &'static str {
        "arena"
    }

    fn rules_version(&self) -> u32 {
        1
    }

    fn max_players(&self) -> u32 {
        self.rules.max_players
    }

    fn setup(&self, setup: &mut GameSetup<'_>) {
        setup.world().insert_resource(Rules(self.rules.clone()));
        setup
            .component::<MatchState>()
            .component::<PickupTimer>()
            .component::<Position>()
            .component::<Velocity>()
            .component::<Health>()
            .component::<Score>()
            .component::<Cooldown>()
            .component::<Projectile>()
            .component::<Pickup>();
        setup.systems(
            (
                respawn_players,
                apply_pending_events,
                move_players,
                projectile_hits,
                apply_pending_events,
                collect_pickups,
                apply_pending_events,
                spawn_pickups,
                apply_pending_events,
                check_match_end,
            )
                .chain(),
        );
    }

    fn init_match(&self, world: &mut World) {
        let ends_at = Tick(self.rules.time_limit_ticks);
        let first_pickup = Tick(self.rules.pickup_interval_ticks);
        world::spawn_with_id(world, EntityId::MATCH).insert((
            MatchState {
                ends_at,
                ended: None,
                winner: None,
            },
            PickupTimer {
                next_at: first_pickup,
            },
        ));
    }

    fn decide(
        &self,
        world: &World,
        player: PlayerId,
        _id: CommandId,
        command: &Command,
    ) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::Move { entity, vx, vy } => self.decide_move(world, player, *entity, *vx, *vy),
            Command::Fire { entity, dx, dy } => self.decide_fire(world, player, *entity, *dx, *dy),
            other => Err(Rejection::new(
                Rule::WrongGame,
                format!("{} commands are not part of arena", other.name()),
            )),
        }
    }

    fn joined(&self, world: &mut World, _player: PlayerId, entity: EntityId) {
        let now = world::now(world);
        if let Some(e) = world::lookup(world, entity) {
            // Dead until the respawn system places them, this very tick.
            world.entity_mut(e).insert((
                Position::default(),
                Velocity::default(),
                Health {
                    hp: 0,
                    respawn_at: Some(now),
                },
                Score::default(),
                Cooldown::default(),
            ));
        }
    }

    fn apply(&self, world: &mut World, event: &EventKind) {
        let now = world::now(world);
        let rules = &self.rules;
        match *event {
            EventKind::PlayerSpawned { entity, x, y } => {
                if let Some(e) = world::lookup(world, entity) {
                    world.entity_mut(e).insert((
                        Position { x, y },
                        Velocity::default(),
                        Health {
                            hp: rules.max_health,
                            respawn_at: None,
                        },
                    ));
                }
            }
            EventKind::PlayerSteered { entity, vx, vy } => {
                if let Some(e) = world::lookup(world, entity) {
                    world.entity_mut(e).insert(Velocity { vx, vy });
                }
            }
            EventKind::ProjectileFired {
                projectile,
                shooter,
                x,
                y,
                vx,
                vy,
            } => {
                world::spawn_with_id(world, projectile).insert((
                    Position { x, y },
                    Velocity { vx, vy },
                    Projectile {
                        shooter,
                        fired_at: now,
                        expires_at: now.after(rules.projectile_ttl_ticks),
                    },
                ));
                if let Some(e) = world::lookup(world, shooter) {
                    world.entity_mut(e).insert(Cooldown {
                        ready_at: now.after(rules.fire_cooldown_ticks),
                    });
                }
            }
            EventKind::PlayerHit {
                target,
                projectile,
                hp_left,
                ..
            } => {
                world::despawn_by_id(world, projectile);
                if let Some(mut health) =
                    world::lookup(world, target).and_then(|e| world.get_mut::<Health>(e))
                {
                    health.hp = hp_left;
                }
            }
            EventKind::PlayerKilled {
                victim,
                killer,
                respawn_at,
            } => {
                if let Some(e) = world::lookup(world, victim) {
                    let mut entity = world.entity_mut(e);
                    entity.insert((
                        Health {
                            hp: 0,
                            respawn_at: Some(respawn_at),
                        },
                        Velocity::default(),
                    ));
                    if let Some(mut score) = entity.get_mut::<Score>() {
                        score.deaths = score.deaths.saturating_add(1);
                    }
                }
                if let Some(killer) = killer.filter(|k| *k != victim)
                    && let Some(mut score) =
                        world::lookup(world, killer).and_then(|e| world.get_mut::<Score>(e))
                {
                    score.kills = score.kills.saturating_add(1);
                }
            }
            EventKind::ProjectileExpired { projectile } => {
                world::despawn_by_id(world, projectile);
            }
            EventKind::PickupSpawned { pickup, x, y, heal } => {
                world::spawn_with_id(world, pickup).insert((Position { x, y }, Pickup { heal }));
                if let Some(mut timer) = world::lookup(world, EntityId::MATCH)
                    .and_then(|e| world.get_mut::<PickupTimer>(e))
                {
                    timer.next_at = now.after(rules.pickup_interval_ticks);
                }
            }
            EventKind::PickupCollected {
                pickup,
                entity,
                hp_after,
            } => {
                world::despawn_by_id(world, pickup);
                if let Some(mut health) =
                    world::lookup(world, entity).and_then(|e| world.get_mut::<Health>(e))
                {
                    health.hp = hp_after;
                }
            }
            EventKind::MatchEnded { reason, winner } => {
                if let Some(mut state) = world::lookup(world, EntityId::MATCH)
                    .and_then(|e| world.get_mut::<MatchState>(e))
                {
                    state.ended = Some(reason);
                    state.winner = winner;
                }
            }
            // The engine's events (it applies them itself) and other games'.
            _ => {}
        }
    }

    fn is_over(&self, world: &World) -> bool {
        common::is_over(world)
    }
}

/// A spot inside the arena, at least one player radius from the walls.
fn random_spot(rng: &mut MatchRng, rules: &ArenaConfig) -> (i32, i32) {
    let r = rules.player_radius_mm;
    (
        rng.between(r, rules.width_mm - r),
        rng.between(r, rules.height_mm - r),
    )
}

fn respawn_players(
    clock: Res<Clock>,
    rules: Res<Rules>,
    mut rng: ResMut<MatchRng>,
    mut out: ResMut<PendingEvents>,
    players: Query<(&StableId, &Health), With<PlayerInfo>>,
) {
    let due: Vec<_> = players
        .iter()
        .filter(|(_, h)| h.respawn_at.is_some_and(|t| t <= clock.now))
        .map(|(id, _)| (id.0, ()))
        .collect();
    for (entity, ()) in world::by_id(due) {
        let (x, y) = random_spot(&mut rng, &rules.0);
        out.emit(EventKind::PlayerSpawned { entity, x, y });
    }
}

fn move_players(rules: Res<Rules>, mut players: Query<(&mut Position, &Velocity, &Health)>) {
    let r = rules.0.player_radius_mm;
    let (max_x, max_y) = (rules.0.width_mm - r, rules.0.height_mm - r);
    for (mut pos, vel, health) in &mut players {
        if !health.alive() || (vel.vx == 0 && vel.vy == 0) {
            continue;
        }
        let next = Position {
            x: pos.x.saturating_add(vel.vx).clamp(r, max_x),
            y: pos.y.saturating_add(vel.vy).clamp(r, max_y),
        };
        pos.set_if_neq(next);
    }
}

fn distance_sq(a: Position, b: Position) -> i64 {
    (i64::from(a.x) - i64::from(b.x)).pow(2) + (i64::from(a.y) - i64::from(b.y)).pow(2)
}

fn projectile_hits(
    clock: Res<Clock>,
    rules: Res<Rules>,
    mut out: ResMut<PendingEvents>,
    projectiles: Query<(&StableId, &Position, &Velocity, &Projectile)>,
    players: Query<(&StableId, &Position, &Health), With<PlayerInfo>>,
) {
    let rules = &rules.0;
    let reach = i64::from(rules.player_radius_mm) + i64::from(rules.projectile_radius_mm);
    // Living players sorted by x (then id), with their hp as it will be after this tick's
    // hits so that two hits in one tick add up. A projectile tests only the players within
    // reach on x: O(projectiles × log players) rather than a full cross product.
    let mut living: Vec<(Position, EntityId, i32)> = players
        .iter()
        .filter(|(_, _, h)| h.alive())
        .map(|(id, pos, h)| (*pos, id.0, h.hp))
        .collect();
    living.sort_unstable_by_key(|(pos, id, _)| (pos.x, *id));
    let shots = world::by_id(
        projectiles
            .iter()
            .map(|(id, pos, vel, p)| (id.0, (*pos, *vel, *p)))
            .collect(),
    );
    for (projectile, (origin, velocity, shot)) in shots {
        let (x, y) = shot.position_at(origin, velocity, clock.now);
        let outside =
            x < 0 || y < 0 || x > i64::from(rules.width_mm) || y > i64::from(rules.height_mm);
        if clock.now >= shot.expires_at || outside {
            out.emit(EventKind::ProjectileExpired { projectile });
            continue;
        }
        // Of the players in reach, the one with the lowest id is hit.
        let first = living.partition_point(|(pos, _, _)| i64::from(pos.x) < x - reach);
        let mut hit: Option<usize> = None;
        for (i, (pos, target, hp)) in living.iter().enumerate().skip(first) {
            if i64::from(pos.x) > x + reach {
                break;
            }
            let d2 = (i64::from(pos.x) - x).pow(2) + (i64::from(pos.y) - y).pow(2);
            if *target != shot.shooter
                && *hp > 0
                && d2 <= reach * reach
                && hit.is_none_or(|h| living[h].1 > *target)
            {
                hit = Some(i);
            }
        }
        let Some(i) = hit else { continue };
        let (_, target, hp) = &mut living[i];
        *hp = hp.saturating_sub(rules.projectile_damage);
        let (target, hp_left) = (*target, (*hp).max(0));
        out.emit(EventKind::PlayerHit {
            target,
            projectile,
            damage: rules.projectile_damage,
            hp_left,
        });
        if hp_left == 0 {
            out.emit(EventKind::PlayerKilled {
                victim: target,
                killer: Some(shot.shooter),
                respawn_at: clock.now.after(rules.respawn_delay_ticks),
            });
        }
    }
}

fn collect_pickups(
    rules: Res<Rules>,
    mut out: ResMut<PendingEvents>,
    pickups: Query<(&StableId, &Position, &Pickup)>,
    players: Query<(&StableId, &Position, &Health), With<PlayerInfo>>,
) {
    let rules = &rules.0;
    let reach = i64::from(rules.player_radius_mm) + i64::from(rules.pickup_radius_mm);
    let mut living = world::by_id(
        players
            .iter()
            .filter(|(_, _, h)| h.alive())
            .map(|(id, pos, h)| (id.0, (*pos, h.hp)))
            .collect(),
    );
    for (pickup, (pos, item)) in world::by_id(
        pickups
            .iter()
            .map(|(id, pos, p)| (id.0, (*pos, *p)))
            .collect(),
    ) {
        let taker = living
            .iter_mut()
            .find(|(_, (at, hp))| *hp < rules.max_health && distance_sq(pos, *at) <= reach * reach);
        if let Some((entity, (_, hp))) = taker {
            *hp = hp.saturating_add(item.heal).min(rules.max_health);
            out.emit(EventKind::PickupCollected {
                pickup,
                entity: *entity,
                hp_after: *hp,
            });
        }
    }
}

fn spawn_pickups(
    clock: Res<Clock>,
    rules: Res<Rules>,
    mut rng: ResMut<MatchRng>,
    mut ids: ResMut<NextEntityId>,
    mut out: ResMut<PendingEvents>,
    timer: Query<&PickupTimer>,
    pickups: Query<(), With<Pickup>>,
) {
    let due = timer.iter().next().is_some_and(|t| clock.now >= t.next_at);
    if !due || pickups.iter().count() >= rules.0.max_pickups as usize {
        return;
    }
    let (x, y) = random_spot(&mut rng, &rules.0);
    out.emit(EventKind::PickupSpawned {
        pickup: ids.allocate(),
        x,
        y,
        heal: rules.0.pickup_heal,
    });
}

fn check_match_end(
    clock: Res<Clock>,
    rules: Res<Rules>,
    mut out: ResMut<PendingEvents>,
    state: Query<&MatchState>,
    players: Query<(&PlayerInfo, &Score)>,
) {
    if state.iter().next().is_none_or(|s| s.ended.is_some()) {
        return;
    }
    // The leader: most kills, then fewest deaths, then lowest player id.
    let leader = players
        .iter()
        .map(|(info, score)| {
            (
                score.kills,
                std::cmp::Reverse(score.deaths),
                std::cmp::Reverse(info.player),
            )
        })
        .max();
    let reason = if leader.is_some_and(|(kills, _, _)| kills >= rules.0.score_limit) {
        EndReason::ScoreLimit
    } else if state.iter().next().is_some_and(|s| clock.now >= s.ends_at) {
        EndReason::TimeLimit
    } else {
        return;
    };
    let winner = leader
        .filter(|(kills, _, _)| *kills > 0)
        .map(|(_, _, p)| p.0);
    out.emit(EventKind::MatchEnded { reason, winner });
}
