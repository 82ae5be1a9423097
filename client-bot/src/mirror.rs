//! A client's copy of the public world, kept from the server's snapshots and deltas.

use std::collections::BTreeMap;
use tickforge_protocol::{ComponentValue, Delta, EntityId, EntityState, Seq, Snapshot, Tick};

/// A delta that does not follow the last applied tick: something was lost, and the mirror
/// must be rebuilt from a snapshot (the client resumes to get one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gap in the delta stream: expected tick {expected}, got tick {got}")]
pub struct Gap {
    pub expected: Tick,
    pub got: Tick,
}

/// Entities and their public components, as of `tick`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    tick: Tick,
    seq: Seq,
    synced: bool,
    entities: BTreeMap<EntityId, BTreeMap<String, ComponentValue>>,
}

impl Mirror {
    /// The tick the mirror reflects (the end of it).
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// The last seq applied by the server at `tick`.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Whether a snapshot has been applied (a mirror is meaningless before).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Replace everything with a snapshot.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        self.entities = snapshot
            .entities
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.components
                        .iter()
                        .map(|c| (c.name().to_string(), c.clone()))
                        .collect(),
                )
            })
            .collect();
        self.tick = snapshot.tick;
        self.seq = snapshot.seq;
        self.synced = true;
    }

    /// Apply the delta of the tick after the mirror's. A delta for a tick already applied is
    /// ignored (`Ok(false)`); one that skips ticks is a [`Gap`] and leaves the mirror as it was.
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<bool, Gap> {
        if !self.synced || delta.tick > self.tick.next() {
            return Err(Gap {
                expected: self.tick.next(),
                got: delta.tick,
            });
        }
        if delta.tick <= self.tick {
            return Ok(false);
        }
        for entity in &delta.changed {
            let slot = self.entities.entry(entity.id).or_default();
            for value in &entity.components {
                match slot.get_mut(value.name()) {
                    Some(old) => *old = value.clone(),
                    None => {
                        slot.insert(value.name().to_string(), value.clone());
                    }
                }
            }
        }
        for id in &delta.removed {
            self.entities.remove(id);
        }
        self.tick = delta.tick;
        self.seq = delta.seq;
        Ok(true)
    }

    /// One entity's component value by wire name (`"pos"`, `"hp"`, …).
    pub fn get(&self, entity: EntityId, component: &str) -> Option<&ComponentValue> {
        self.entities.get(&entity)?.get(component)
    }

    /// The number of entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Every entity, in id order, with its components in wire-name order.
    pub fn entities(&self) -> impl Iterator<Item = (EntityId, &BTreeMap<String, ComponentValue>)> {
        self.entities.iter().map(|(id, c)| (*id, c))
    }

    /// The mirror as entity states (components sorted by name), for comparing with a
    /// server-side view.
    pub fn to_states(&self) -> Vec<EntityState> {
        self.entities
            .iter()
            .map(|(id, c)| EntityState {
                id: *id,
                components: c.values().cloned().collect(),
            })
            .collect()
    }
}
