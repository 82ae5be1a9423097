//! The component registry: how the engine hashes, snapshots, restores and diffs components it
//! does not know. A game registers each of its state components once; everything the engine
//! does with state goes through the registered conversions, so a component that is in the
//! snapshot is always in the hash too.

use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemState;
use tickforge_protocol::{ComponentValue, EntityId};

use super::hash::StateHasher;
use super::world::StableId;

/// A component that is part of a match's state.
pub trait SimComponent: Component + Clone + Send + Sync + 'static {
    /// Name used in hash reports and divergence messages; the same as the wire name.
    const NAME: &'static str;
    /// Sent to players and spectators in snapshots and deltas. Private components
    /// (cooldowns, timers) are still hashed and kept in full snapshots.
    const PUBLIC: bool;
    fn to_value(&self) -> ComponentValue;
    fn from_value(value: &ComponentValue) -> Option<Self>;

    /// Write the value's canonical bytes for the state hash. They are part of the replay
    /// format: the same value must always write the same bytes, on any machine. By default:
    /// the name, then the MessagePack encoding of [`SimComponent::to_value`] (a game's own
    /// components are `GameValue`s, whose maps encode in key order).
    fn hash(&self, hasher: &mut StateHasher) {
        hasher.str(Self::NAME);
        hasher.bytes(&tickforge_protocol::encode(&self.to_value()).unwrap_or_default());
    }
}

/// The type-erased operations the engine needs on one registered component type.
pub(crate) trait Registered: Send + Sync {
    fn name(&self) -> &'static str;
    fn public(&self) -> bool;
    /// This component's part of the state hash: the wrapping sum of `xxh3(id, value)`.
    fn hash_part(&mut self, world: &World, hasher: &mut StateHasher) -> u64;
    /// Every entity's value, in no particular order.
    fn collect_all(&mut self, world: &World, out: &mut Vec<(EntityId, ComponentValue)>);
    /// Values changed (or added) since the previous call.
    fn collect_changed(&mut self, world: &World, out: &mut Vec<(EntityId, ComponentValue)>);
    /// Insert `value` on `entity` if it is this component's; true if it was.
    fn insert(&self, entity: &mut EntityWorldMut<'_>, value: &ComponentValue) -> bool;
}

pub(crate) struct Entry<C: SimComponent> {
    all: QueryState<(&'static StableId, &'static C)>,
    changed: SystemState<Query<'static, 'static, (&'static StableId, Ref<'static, C>)>>,
}

impl<C: SimComponent> Entry<C> {
    pub(crate) fn new(world: &mut World) -> Entry<C> {
        Entry {
            all: world.query(),
            changed: SystemState::new(world),
        }
    }
}

impl<C: SimComponent> Registered for Entry<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn public(&self) -> bool {
        C::PUBLIC
    }

    fn hash_part(&mut self, world: &World, hasher: &mut StateHasher) -> u64 {
        self.all.iter(world).fold(0u64, |sum, (id, c)| {
            sum.wrapping_add(hasher.element(id.0, |h| c.hash(h)))
        })
    }

    fn collect_all(&mut self, world: &World, out: &mut Vec<(EntityId, ComponentValue)>) {
        out.extend(self.all.iter(world).map(|(id, c)| (id.0, c.to_value())));
    }

    fn collect_changed(&mut self, world: &World, out: &mut Vec<(EntityId, ComponentValue)>) {
        // A read-only query's parameters always validate.
        if let Ok(query) = self.changed.get(world) {
            out.extend(
                query
                    .iter()
                    .filter(|(_, c)| c.is_changed())
                    .map(|(id, c)| (id.0, c.to_value())),
            );
        }
    }

    fn insert(&self, entity: &mut EntityWorldMut<'_>, value: &ComponentValue) -> bool {
        match C::from_value(value) {
            Some(c) => {
                entity.insert(c);
                true
            }
            None => false,
        }
    }
}
