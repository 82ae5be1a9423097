//! The Rust client of tickforge (not written yet: it needs the network server).
//!
//! What this crate will own: connecting with a token, joining or quick-joining a match,
//! sending commands, a typed stream of server messages, a local mirror of the world kept from
//! snapshots and deltas (with gap detection and resync), resuming after a drop; and the
//! `tickforge-bots` binary, the bot swarm with its latency and throughput report.
//!
//! What it must not depend on: the engine (`tickforge-server`). A client speaks only the
//! protocol, so it links `tickforge-protocol` and nothing of the server.
