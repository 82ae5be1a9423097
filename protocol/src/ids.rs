//! Id newtypes. Each is a plain integer on the wire (serde `transparent`), so other languages
//! see numbers, while Rust code cannot mix a `Seq` up with a `Tick`.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

id_newtype!(
    /// One match, unique within a server's data directory.
    MatchId(u64), "m"
);
id_newtype!(
    /// One player within a match; assigned by the server when the player joins.
    PlayerId(u32), "p"
);
id_newtype!(
    /// A stable entity id of our own. Allocated by the simulation in a deterministic order,
    /// so the same events give the same ids on every machine. `EntityId(0)` is the match itself.
    EntityId(u32), "e"
);
id_newtype!(
    /// Position of an event in its match's stream: 1, 2, 3 … with no gaps. 0 means "before
    /// the first event", which is what a spectator asks for to start at the beginning.
    Seq(u64), "#"
);
id_newtype!(
    /// One fixed simulation step. Tick 0 is the state before anything happened; the first
    /// tick that runs is tick 1.
    Tick(u64), "t"
);
id_newtype!(
    /// Chosen by the client, per session, to make a command idempotent: a command sent again
    /// with the same id is acknowledged but not applied twice.
    CommandId(u32), "c"
);

impl EntityId {
    /// The entity that holds match-wide state (clock, result).
    pub const MATCH: EntityId = EntityId(0);
}

impl Seq {
    /// The seq that follows this one.
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl Tick {
    /// The tick that follows this one.
    pub fn next(self) -> Tick {
        Tick(self.0.saturating_add(1))
    }

    /// This tick plus `n` ticks (saturating; a match never gets near `u64::MAX`).
    pub fn after(self, n: u64) -> Tick {
        Tick(self.0.saturating_add(n))
    }
}
