//! The types of the replay file, which is the match's event log (see `docs/REPLAY_FORMAT.md`).
//! The framing (lengths, checksums, the footer trailer) lives with the log writer and reader in
//! the server's `log` module; these are the values inside the frames.

use crate::config::GameConfig;
use crate::event::{Event, RejectedCommand};
use crate::ids::{MatchId, Seq, Tick};
use crate::state::{SimSnapshot, StateHash};
use serde::{Deserialize, Serialize};

/// The replay file format written by this build. Readers accept this and every older
/// version (upcasting on read), and refuse newer ones with a clear error.
pub const REPLAY_FORMAT_VERSION: u16 = 1;

/// Everything needed to re-simulate a match from its events: the same header and the same
/// events give the same world, tick by tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayHeader {
    pub format_version: u16,
    pub protocol_version: u32,
    /// The game's name (`"arena"`), also the variant of `config`.
    pub game: String,
    /// The game's rules version; a build with other rules cannot verify the file.
    pub rules_version: u32,
    pub match_id: MatchId,
    pub seed: u64,
    pub tick_rate_hz: u32,
    pub config: GameConfig,
    /// Wall-clock creation time, milliseconds since the Unix epoch (informational only: the
    /// simulation never reads it).
    pub created_at_unix_ms: u64,
    /// A full snapshot follows every tick that is a multiple of this (0 = none).
    pub snapshot_every_ticks: u64,
    /// The names of the state hash's parts, in the order `TickEnd::parts` lists them.
    pub hash_parts: Vec<String>,
}

/// The last record of every tick: the state hash the server computed at the end of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickEnd {
    pub tick: Tick,
    pub hash: StateHash,
    /// One hash per part named in the header, so a divergence can name what differs.
    pub parts: Vec<u64>,
}

/// Where the snapshots are, written once as the footer of a cleanly closed file. A file
/// without one (a crash) is indexed by scanning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayIndex {
    pub last_tick: Tick,
    pub last_seq: Seq,
    pub events: u64,
    pub rejections: u64,
    /// (tick, byte offset of the snapshot record taken at the end of that tick), ascending.
    pub snapshots: Vec<(Tick, u64)>,
}

/// One record of the log. On disk each is framed as `len | crc32c | kind | payload`, where
/// `kind` is [`Record::kind`] and the payload is the MessagePack of the inner value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Event(Event),
    Rejected(RejectedCommand),
    TickEnd(TickEnd),
    Snapshot(SimSnapshot),
    Index(ReplayIndex),
}

impl Record {
    pub const EVENT: u8 = 1;
    pub const REJECTED: u8 = 2;
    pub const TICK_END: u8 = 3;
    pub const SNAPSHOT: u8 = 4;
    pub const INDEX: u8 = 5;

    /// The kind byte written in the record's frame.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Event(_) => Record::EVENT,
            Record::Rejected(_) => Record::REJECTED,
            Record::TickEnd(_) => Record::TICK_END,
            Record::Snapshot(_) => Record::SNAPSHOT,
            Record::Index(_) => Record::INDEX,
        }
    }

    /// A name for messages ("event", "tick_end", …).
    pub fn kind_name(kind: u8) -> &'static str {
        match kind {
            Record::EVENT => "event",
            Record::REJECTED => "rejected",
            Record::TICK_END => "tick_end",
            Record::SNAPSHOT => "snapshot",
            Record::INDEX => "index",
            _ => "unknown",
        }
    }
}
