//! The engine's own components and resources, present in every match's world whatever the
//! game, and the helpers that keep the stable-id index true. Games spawn and despawn entities
//! only through [`spawn_with_id`] and [`despawn_by_id`].

use bevy_ecs::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use tickforge_protocol::{EntityId, EventKind, MatchId, PlayerId, Tick};

use super::Game;

/// The stable id of an entity: what the wire and the log call it.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StableId(pub EntityId);

/// Marks the entity of a player, and says who they are.
#[derive(Component, Clone, Debug, PartialEq, Eq)]
pub struct PlayerInfo {
    pub player: PlayerId,
    pub name: String,
}

/// Stable id → bevy entity, ordered: iterating it visits entities in stable-id order, which is
/// how every order-sensitive pass (hashing, snapshots) walks the world.
#[derive(Resource, Debug, Default)]
pub struct IdIndex(pub BTreeMap<EntityId, Entity>);

/// Player → their entity's stable id.
#[derive(Resource, Debug, Default)]
pub struct PlayerIndex(pub BTreeMap<PlayerId, EntityId>);

/// The next stable id to hand out. Ids are never reused within a match.
#[derive(Resource, Debug)]
pub struct NextEntityId(pub EntityId);

impl NextEntityId {
    /// Take the next id (for systems that spawn).
    pub fn allocate(&mut self) -> EntityId {
        let id = self.0;
        self.0 = EntityId(id.0.saturating_add(1));
        id
    }
}

/// The tick being simulated now. Events are stamped with it.
#[derive(Resource, Debug, Clone, Copy)]
pub struct Clock {
    pub now: Tick,
}

/// Which match this world is, for event envelopes.
#[derive(Resource, Debug, Clone, Copy)]
pub struct MatchInfo {
    pub match_id: MatchId,
}

/// The match's only source of randomness: ChaCha8, seeded from the match seed, its position
/// saved in snapshots. ChaCha's output is specified, so it is the same on every platform.
#[derive(Resource, Debug, Clone)]
pub struct MatchRng(pub ChaCha8Rng);

impl MatchRng {
    pub fn from_seed(seed: u64) -> MatchRng {
        MatchRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// How many 32-bit words have been drawn (saved in snapshots).
    pub fn words(&self) -> u64 {
        self.0.get_word_pos() as u64
    }

    pub fn set_words(&mut self, words: u64) {
        self.0.set_word_pos(u128::from(words));
    }

    /// A number in `0..n` (multiply-shift; our own mapping, so a `rand` upgrade can never
    /// change which number a replay draws). `n == 0` gives 0.
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.0.next_u32()) * u64::from(n)) >> 32) as u32
    }

    /// A number in `lo..=hi` (`hi < lo` gives `lo`).
    pub fn between(&mut self, lo: i32, hi: i32) -> i32 {
        if hi <= lo {
            return lo;
        }
        let span = (i64::from(hi) - i64::from(lo) + 1).min(i64::from(u32::MAX)) as u32;
        (i64::from(lo) + i64::from(self.below(span))) as i32
    }
}

/// Events derived by systems during `step`, waiting to be applied, and those applied so far.
#[derive(Resource, Debug, Default)]
pub struct PendingEvents {
    pub queue: Vec<EventKind>,
    pub applied: Vec<EventKind>,
}

impl PendingEvents {
    /// Called by systems: this fact should happen now.
    pub fn emit(&mut self, kind: EventKind) {
        self.queue.push(kind);
    }
}

/// Stable ids despawned since the last delta.
#[derive(Resource, Debug, Default)]
pub struct Despawned(pub Vec<EntityId>);

/// The game running in this world, reachable from the `apply_pending_events` system.
#[derive(Resource, Clone)]
pub struct GameHandle(pub Arc<dyn Game>);

impl std::fmt::Debug for GameHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GameHandle({})", self.0.name())
    }
}

/// Spawn an entity under a stable id (from an event) and index it. The id allocator moves past
/// it, so replayed and live worlds allocate the same ids afterwards.
pub fn spawn_with_id(world: &mut World, id: EntityId) -> EntityWorldMut<'_> {
    if let Some(old) = world.resource_mut::<IdIndex>().0.remove(&id) {
        // An id is never reused by the engine; a file that does so gets the newer entity.
        world.despawn(old);
    }
    {
        let mut next = world.resource_mut::<NextEntityId>();
        if next.0 <= id {
            next.0 = EntityId(id.0.saturating_add(1));
        }
    }
    let entity = world.spawn(StableId(id)).id();
    world.resource_mut::<IdIndex>().0.insert(id, entity);
    world.entity_mut(entity)
}

/// Despawn the entity with this stable id, if it exists; returns whether it did.
pub fn despawn_by_id(world: &mut World, id: EntityId) -> bool {
    let Some(entity) = world.resource_mut::<IdIndex>().0.remove(&id) else {
        return false;
    };
    world.despawn(entity);
    world.resource_mut::<Despawned>().0.push(id);
    true
}

/// The bevy entity behind a stable id.
pub fn lookup(world: &World, id: EntityId) -> Option<Entity> {
    world.resource::<IdIndex>().0.get(&id).copied()
}

/// The current tick.
pub fn now(world: &World) -> Tick {
    world.resource::<Clock>().now
}

/// The stable id of a player's entity.
pub fn player_entity(world: &World, player: PlayerId) -> Option<EntityId> {
    world.resource::<PlayerIndex>().0.get(&player).copied()
}

/// Sort `(id, item)` pairs by stable id: query order follows bevy's storage layout, which a
/// restored world lays out differently, so every order-sensitive system sorts first.
pub fn by_id<T>(mut items: Vec<(EntityId, T)>) -> Vec<(EntityId, T)> {
    items.sort_unstable_by_key(|(id, _)| *id);
    items
}
