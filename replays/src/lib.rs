//! Replay tooling of tickforge (not written yet: it needs the event log format).
//!
//! What this crate will own: the `tickforge-replay` binary (inspect, verify, seek, diff,
//! export, record) and the fixtures under `replays/fixtures/`, one per released file-format
//! version, which every later version must still load and verify.
