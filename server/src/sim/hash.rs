//! A platform-independent state hasher: every value is written as little-endian bytes and
//! hashed with xxh3-64, so the same world hashes the same on any machine and any Rust version
//! (`std::hash::Hash` promises neither).
//!
//! A component's part of the state hash is the wrapping sum of `xxh3(id, value)` over the
//! entities that have it: a multiset hash, which needs no visiting order and so no sort.

use tickforge_protocol::{ComponentValue, EndReason, EntityId, StateHash};
use xxhash_rust::xxh3::xxh3_64;

/// Accumulates canonical bytes of world state, then hashes them in one go (xxh3 is fastest
/// on small whole inputs). The buffer is reused across calls.
#[derive(Clone, Debug, Default)]
pub struct StateHasher {
    buf: Vec<u8>,
}

impl StateHasher {
    pub fn new() -> StateHasher {
        StateHasher::default()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn str(&mut self, v: &str) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v.as_bytes());
    }

    /// `None` and `Some` are told apart by a leading tag byte.
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }

    /// The hash of everything written so far.
    pub fn finish(&self) -> StateHash {
        StateHash(xxh3_64(&self.buf))
    }

    /// The hash of one entity's value of one component, `xxh3(id, value)`; the buffer is
    /// cleared first.
    pub fn element(&mut self, id: EntityId, value: &ComponentValue) -> u64 {
        self.buf.clear();
        self.u32(id.0);
        self.value(value);
        xxh3_64(&self.buf)
    }

    /// Write one component value: a tag byte per variant, then its fields in order.
    /// Tags are part of the replay format: never renumber them, only add new ones.
    pub fn value(&mut self, value: &ComponentValue) {
        match value {
            ComponentValue::Player { player, name } => {
                self.u8(1);
                self.u32(player.0);
                self.str(name);
            }
            ComponentValue::Position { x, y } => {
                self.u8(2);
                self.i32(*x);
                self.i32(*y);
            }
            ComponentValue::Velocity { vx, vy } => {
                self.u8(3);
                self.i32(*vx);
                self.i32(*vy);
            }
            ComponentValue::Health { hp, respawn_at } => {
                self.u8(4);
                self.i32(*hp);
                self.opt_u64(respawn_at.map(|t| t.0));
            }
            ComponentValue::Score { kills, deaths } => {
                self.u8(5);
                self.u32(*kills);
                self.u32(*deaths);
            }
            ComponentValue::Cooldown { ready_at } => {
                self.u8(6);
                self.u64(ready_at.0);
            }
            ComponentValue::Projectile {
                shooter,
                fired_at,
                expires_at,
            } => {
                self.u8(7);
                self.u32(shooter.0);
                self.u64(fired_at.0);
                self.u64(expires_at.0);
            }
            ComponentValue::Pickup { heal } => {
                self.u8(8);
                self.i32(*heal);
            }
            ComponentValue::LastInput { input } => {
                self.u8(9);
                self.u32(input.0);
            }
            ComponentValue::MatchState {
                ends_at,
                ended,
                winner,
            } => {
                self.u8(10);
                self.u64(ends_at.0);
                self.u8(match ended {
                    None => 0,
                    Some(EndReason::ScoreLimit) => 1,
                    Some(EndReason::TimeLimit) => 2,
                });
                self.opt_u64(winner.map(|p| u64::from(p.0)));
            }
            ComponentValue::PickupTimer { next_at } => {
                self.u8(11);
                self.u64(next_at.0);
            }
        }
    }
}
