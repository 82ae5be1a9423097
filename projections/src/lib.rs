//! The read side of tickforge (CQRS): read models projected from the event log, and the
//! queries the server answers from them (docs/QUERIES.md).
//!
//! What this crate owns:
//! - [`model`]: a match folded from its events alone (no re-simulation): its players' lines,
//!   its result, its event counts; and the rows one tick adds (events, rejections, dead
//!   letters). Pure: the one definition of every number the queries give.
//! - [`blocks`]: a match's events and rejections as a few rows of JSON lines each, split where
//!   the events alone say, so that a rebuild writes the live projector's rows.
//! - [`projector`]: applies ticks to models and commits them in batches, each match's
//!   checkpoint (its last tick and seq) in the same transaction as its rows, so a redelivered
//!   tick is never counted twice.
//! - [`store`]: the [`Store`] a projector writes and the [`Queries`] it answers.
//! - [`sql`]: the tables, and the [`SqlStore`] that writes and reads them on any
//!   [`sql::Database`]: [`sqlite`], the embedded default (one file), or [`postgres`].
//! - [`timeline`]: a match's frames every N ticks, from its stored events.
//! - [`query`]: the answers' shapes and the parameters' checks.
//!
//! It does no I/O beyond its database, and reads no file or stream itself: whoever feeds it
//! (the server's live projector, `tickforge-replay project`, the cluster follower) reads the
//! log. It depends only on `tickforge-protocol` for the events, and on its databases' drivers.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod blocks;
pub mod model;
pub mod postgres;
pub mod projector;
pub mod query;
pub mod sql;
pub mod sqlite;
pub mod store;
pub mod timeline;

pub use model::{Applied, MatchModel};
pub use projector::{Checkpoint, Committed, Projector};
pub use sql::{SqlStore, Target};
pub use store::{Queries, SCHEMA_VERSION, Store, StoreError};
