//! The tickforge engine, and the server built on it.
//!
//! What this crate owns:
//! - [`sim`]: the deterministic core: one match's bevy_ecs world, its fixed-step schedule, the
//!   event sequencer, state hashes, snapshots and deltas; and the game seam it owns
//!   ([`sim::Game`], [`sim::Games`]): joining and leaving are the engine's, everything else a
//!   game's. No I/O; names no game.
//! - [`game`]: the games that ship with the server, `arena` (reference) and `drift`
//!   (benchmark), written against the seam like any other game, and [`game::builtin`], the
//!   catalogue of the two.
//! - [`log`]: the event log, which is the replay file: format, scan and recovery, reader,
//!   the one writer thread every match shares (group commit, one sync per round), and
//!   re-simulation of a file.
//! - [`matches`]: the registry of a server's matches; the match core ([`matches::core`]), a
//!   match's decisions with no I/O, one `TickOutput` per tick; the sinks that own a tick's I/O
//!   ([`matches::sinks`]: log, player fan-out, spectators, metrics, and any [`matches::TickSink`]
//!   a server is built with); and one task per match, a thin loop from timer to sinks.
//! - [`net`]: HTTP and WebSocket on one port: endpoints, player sessions, spectators, limits.
//! - [`auth`]: HMAC-signed tokens. [`config`]: settings, each with its range. [`metrics`]: the
//!   Prometheus page.
//! - [`cluster`]: cluster mode on NATS JetStream: the event-stream sink, the match directory
//!   and its leases, takeovers.
//! - [`headless`]: plays a whole match of a reference game in-process with scripted bots; used
//!   by tests, benches and tools.
//! - [`cli`]: the `tickforge-server` command line, for the games it is given.
//!
//! A game in its own crate is served with `Server::builder().game("tag", Tag).serve(config)`
//! ([`net::Server::builder`]) or a whole command line, `cli::main(game::builtin().with(…))`.
//!
//! It depends on `tickforge-protocol` for every type that crosses a wire or a file.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod devbots;
pub mod game;
pub mod headless;
pub mod log;
pub mod matches;
pub mod metrics;
pub mod net;
pub mod projection;
pub mod sim;

pub use sim::{CommandInput, MatchSetup, Sim, TickReport};

/// The ECS the engine and every game build on, re-exported so that a game's crate uses the very
/// version the engine does.
pub use bevy_ecs;
