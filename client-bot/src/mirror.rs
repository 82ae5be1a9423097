//! A client's copy of the public world, kept from the server's snapshots and tick frames.

use std::collections::BTreeMap;
use tickforge_protocol::compact::{CompactError, ComponentTable, World};
use tickforge_protocol::{
    ComponentValue, DecodeError, Delta, EntityId, EntityState, Seq, Snapshot, Tick, TickFrame,
};

/// A tick frame that does not follow the last applied tick: something was lost, and the mirror
/// must be rebuilt from a snapshot (the client resumes to get one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gap in the delta stream: expected tick {expected}, got tick {got}")]
pub struct Gap {
    pub expected: Tick,
    pub got: Tick,
}

/// Why a tick frame or a snapshot could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Gap(#[from] Gap),
    #[error("a tick frame's delta does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("a snapshot does not fit the component table: {0}")]
    Table(#[from] CompactError),
}

/// Entities and their public components, as of `tick`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    tick: Tick,
    seq: Seq,
    synced: bool,
    world: World,
}

impl Mirror {
    /// An empty mirror for a match whose component table is `table` (from `Joined`).
    pub fn new(table: ComponentTable) -> Mirror {
        Mirror {
            world: World::new(table),
            ..Mirror::default()
        }
    }

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

    /// The world as the tick frames describe it.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Replace everything with a snapshot.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), MirrorError> {
        self.world.apply_snapshot(snapshot)?;
        self.tick = snapshot.tick;
        self.seq = snapshot.seq;
        self.synced = true;
        Ok(())
    }

    /// Apply the tick frame of the tick after the mirror's, returning its delta. A frame of a
    /// tick already applied (one that follows a snapshot of its own tick) is skipped
    /// (`Ok(None)`); one that skips ticks is a [`Gap`] and leaves the mirror as it was, as does
    /// a delta that does not decode.
    pub fn apply_tick(&mut self, frame: &TickFrame) -> Result<Option<Delta>, MirrorError> {
        let Some(seq) = self.next(frame)? else {
            return Ok(None);
        };
        let delta = self.world.decode_delta(&frame.delta, frame.tick, seq)?;
        (self.tick, self.seq) = (frame.tick, seq);
        Ok(Some(delta))
    }

    /// [`Mirror::apply_tick`] without building the delta: true if the frame was applied.
    pub fn apply_tick_quietly(&mut self, frame: &TickFrame) -> Result<bool, MirrorError> {
        let Some(seq) = self.next(frame)? else {
            return Ok(false);
        };
        self.world.apply_delta(&frame.delta)?;
        (self.tick, self.seq) = (frame.tick, seq);
        Ok(true)
    }

    /// The seq after `frame` if it is the tick after the mirror's, `None` if the mirror has it
    /// already, a [`Gap`] if it skips ticks.
    fn next(&self, frame: &TickFrame) -> Result<Option<Seq>, Gap> {
        if !self.synced || frame.tick > self.tick.next() {
            return Err(Gap {
                expected: self.tick.next(),
                got: frame.tick,
            });
        }
        Ok((frame.tick > self.tick).then(|| Seq(self.seq.0.saturating_add(frame.events))))
    }

    /// One entity's component value by wire name (`"pos"`, `"hp"`, …).
    pub fn get(&self, entity: EntityId, component: &str) -> Option<&ComponentValue> {
        self.world.get_named(entity, component)
    }

    /// The number of entities.
    pub fn len(&self) -> usize {
        self.world.len()
    }

    pub fn is_empty(&self) -> bool {
        self.world.is_empty()
    }

    /// Every entity, in id order, with its components by wire name.
    pub fn entities(&self) -> impl Iterator<Item = (EntityId, BTreeMap<&str, &ComponentValue>)> {
        self.world
            .entities()
            .map(|(id, values)| (id, values.map(|v| (v.name(), v)).collect()))
    }

    /// The mirror as entity states (components in the table's order, which is the order of the
    /// server's snapshots), for comparing with a server-side view.
    pub fn to_states(&self) -> Vec<EntityState> {
        self.world.states()
    }
}
