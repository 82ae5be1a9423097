//! The tickforge engine.
//!
//! What this crate owns:
//! - [`sim`]: the deterministic core: one match's bevy_ecs world, its fixed-step schedule, the
//!   event sequencer, state hashes, snapshots and deltas. No I/O.
//! - [`game`]: the [`game::Game`] seam and the two games, `arena` (reference) and `drift`
//!   (benchmark). The rest of the engine never names a game.
//! - [`log`]: the event log, which is the replay file: format, scan and recovery, reader,
//!   the writer thread with group commit, and re-simulation of a file.
//! - [`headless`]: plays a whole match in-process with scripted bots; used by tests, benches
//!   and tools.
//!
//! It depends on `tickforge-protocol` for every type that crosses a wire or a file.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod game;
pub mod headless;
pub mod log;
pub mod matches;
pub mod metrics;
pub mod net;
pub mod sim;

pub use sim::{CommandInput, MatchSetup, Sim, TickReport};
