//! Every type of tickforge that crosses a wire or a file, and the one codec that encodes them.
//!
//! What this crate owns:
//! - [`ids`]: the id newtypes (`MatchId`, `PlayerId`, `EntityId`, `Seq`, `Tick`, `CommandId`).
//!   A bevy `Entity` never leaves the server; the wire and the log speak [`EntityId`].
//! - [`command`]: commands, the intents a player sends (`Move`, `Fire`, `Drift`, …), and
//!   [`Rejection`]s, which name the rule a refused command broke.
//! - [`event`]: events, the facts the server decided (`PlayerJoined`, `ProjectileFired`, …), in
//!   an [`Event`] envelope that carries `match_id`, `seq`, `tick` and a schema version.
//! - [`state`]: component values, [`Delta`]s, client [`Snapshot`]s and full [`SimSnapshot`]s.
//! - [`config`]: per-game rule settings, which are part of a match's identity.
//! - [`game_value`]: the value of a game's own command, event, component or settings, for games
//!   this crate does not name (each of the enums above has a `Game` variant holding one).
//! - [`message`]: the client, server and spectator message envelopes and [`PROTOCOL_VERSION`].
//! - [`compact`]: protocol 2's tick frame (one per player per tick) and its compact delta,
//!   encoded against a [`World`] the server and every client keep alike.
//! - [`schema`]: every wire type's shape as data, and the TypeScript client's generated types.
//! - [`replay`]: the header and records of the replay file (the match's event log).
//! - [`codec`]: MessagePack encoding and the only MessagePack decoder, with its size and nesting
//!   limits ([`decode_server`] reads a server frame of either kind).
//!
//! What it must not depend on: tokio, bevy, any I/O. It is plain data plus a codec, so a
//! client, a tool or a test can use it without pulling in the engine.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod codec;
pub mod command;
pub mod compact;
pub mod config;
pub mod event;
pub mod game_value;
pub mod ids;
pub mod message;
pub mod replay;
pub mod schema;
pub mod state;

pub use codec::{DecodeError, DecodeLimits, EncodeError, decode, decode_with, encode, encode_into};
pub use command::{Command, Rejection, Rule};
pub use compact::{ComponentTable, Duplicate, PlayerPart, Rejected, TickFrame, World};
pub use config::{ArenaConfig, DriftConfig, GameConfig};
pub use event::{Cause, EVENT_SCHEMA_VERSION, EndReason, Event, EventKind, RejectedCommand};
pub use game_value::{GameValue, GameValueError};
pub use ids::{CommandId, EntityId, MatchId, PlayerId, Seq, Tick};
pub use message::{
    ClientMessage, CloseCode, PROTOCOL_VERSION, ServerMessage, SpectatorMessage, decode_server,
};
pub use replay::{REPLAY_FORMAT_VERSION, Record, ReplayHeader, ReplayIndex, TickEnd};
pub use state::{ComponentValue, Delta, EntityState, SimSnapshot, Snapshot, StateHash};
