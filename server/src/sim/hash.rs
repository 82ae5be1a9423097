//! A platform-independent state hasher: every value is written as little-endian bytes and
//! hashed with xxh3-64, so the same world hashes the same on any machine and any Rust version
//! (`std::hash::Hash` promises neither).
//!
//! A component's part of the state hash is the wrapping sum of `xxh3(id, value)` over the
//! entities that have it: a multiset hash, which needs no visiting order and so no sort. Each
//! component writes its own canonical bytes ([`crate::sim::SimComponent::hash`]); the hasher
//! names none.

use tickforge_protocol::{EntityId, StateHash};
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

    /// Raw bytes, length first.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }

    /// The hash of one entity's value of one component, `xxh3(id, value)`, where `value`
    /// writes the component's canonical bytes ([`crate::sim::SimComponent::hash`]); the buffer
    /// is cleared first.
    pub fn element(&mut self, id: EntityId, value: impl FnOnce(&mut StateHasher)) -> u64 {
        self.buf.clear();
        self.u32(id.0);
        value(self);
        xxh3_64(&self.buf)
    }
}
