//! Message envelopes: what clients send, what the server sends to players, and what it sends to
//! spectators. Each is a MessagePack value in one binary WebSocket frame (spectators may ask
//! for JSON text frames instead).

use crate::codec::{DecodeError, DecodeLimits, decode_with};
use crate::command::{Command, Rule};
use crate::compact::{TickFrame, is_tick_frame, read_tick_frame};
use crate::config::GameConfig;
use crate::event::{EndReason, Event};
use crate::ids::{CommandId, EntityId, MatchId, PlayerId, Seq, Tick};
use crate::state::{Snapshot, StateHash};
use serde::{Deserialize, Serialize};

/// The protocol version spoken by this build. A client whose `Hello` carries another version
/// is closed with [`CloseCode::VersionMismatch`] and a reason naming both versions.
pub const PROTOCOL_VERSION: u32 = 2;

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on every connection.
    Hello { protocol: u32, client: String },
    /// Join a match by id, or quick-join (`match_id: None`) the first open match.
    Join {
        match_id: Option<MatchId>,
        name: String,
    },
    /// A command with a per-session id; answered with `Ack` or `Rejected`.
    Command { id: CommandId, command: Command },
    /// Take back a dropped session: the token from `Joined`, and the tick and seq of the last
    /// delta the client applied. The server re-sends exactly the deltas after it, or a snapshot.
    Resume {
        token: String,
        last_tick: Tick,
        last_seq: Seq,
    },
    /// Round-trip probe; answered with `Pong`.
    Ping { nonce: u64 },
    /// Leave the match and close.
    Leave,
}

/// What the server sends a player.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol: u32,
        server: String,
    },
    /// The player is in: their ids, the token to resume with, the game and its rules, the
    /// component table of the tick frames (tag = index), and the world as of now.
    Joined {
        match_id: MatchId,
        player: PlayerId,
        entity: EntityId,
        tick_rate_hz: u32,
        resume_token: String,
        /// The game's name (`"arena"`, `"drift"`, …).
        game: String,
        /// The match's rule settings, public to its players.
        rules: GameConfig,
        /// The public components, in tag order.
        components: Vec<String>,
        snapshot: Snapshot,
    },
    /// A resumed session: the deltas the client missed follow, or a snapshot if too many.
    Resumed {
        match_id: MatchId,
        player: PlayerId,
        entity: EntityId,
        from_seq: Seq,
    },
    /// A command refused before it reached the match (over the rate limit, or the match's
    /// inbox full): `rule` says which. Rules broken in the match come in the tick frame.
    Rejected {
        id: CommandId,
        rule: Rule,
        detail: String,
    },
    /// One tick: this player's acks, duplicate notices and rejections, and the delta. Sent
    /// as a tick frame (see [`crate::compact`]), not as MessagePack: decode frames with
    /// [`decode_server`].
    #[serde(skip)]
    Tick(TickFrame),
    /// The whole public world (after a join, or when the client fell too far behind).
    Snapshot(Snapshot),
    MatchEnded {
        reason: EndReason,
        winner: Option<PlayerId>,
    },
    Pong {
        nonce: u64,
    },
    /// Sent just before the server closes the connection with the same code.
    Error {
        code: u16,
        reason: String,
    },
}

/// Decode one frame from the server: a tick frame or a MessagePack message.
pub fn decode_server(bytes: &[u8]) -> Result<ServerMessage, DecodeError> {
    if is_tick_frame(bytes) {
        return read_tick_frame(bytes).map(ServerMessage::Tick);
    }
    decode_with(bytes, DecodeLimits::TRUSTED)
}

/// What the server sends a spectator: the match's event stream, one frame per tick, in seq
/// order with no gap and no duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpectatorMessage {
    /// One tick: its events (those after the spectator's starting seq, in the first tick) and
    /// the state hash at its end.
    Tick {
        tick: Tick,
        hash: StateHash,
        events: Vec<Event>,
    },
    /// The spectator has caught up with the live match at `seq`; what follows is live.
    Live { seq: Seq },
    /// The match is over and every event has been sent.
    Ended { last_seq: Seq },
}

/// WebSocket close codes used by the server, each with a fixed meaning. 1000–1011 are the
/// standard codes; 4000–4099 are tickforge's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    Normal = 1000,
    /// The server is shutting down.
    GoingAway = 1001,
    /// A frame was not a valid message (garbage bytes, wrong shape, text where binary belongs).
    InvalidMessage = 1007,
    /// A spectator sent a command, or a player acted outside their role.
    PolicyViolation = 1008,
    /// A frame exceeded the size limit.
    MessageTooBig = 1009,
    /// The server failed; the match may have stopped.
    InternalError = 1011,
    /// The client's protocol version is not this server's.
    VersionMismatch = 4000,
    /// The token is missing, malformed, forged or expired.
    Unauthorized = 4001,
    /// The first message was not `Hello`, or a message came out of order.
    UnexpectedMessage = 4002,
    /// Too many commands for too long (the rate limit's budget was used up).
    RateLimited = 4003,
    /// The client stopped reading and fell past its outbound budget.
    TooSlow = 4004,
    /// No pong within the deadline.
    PingTimeout = 4005,
    /// The match does not exist or has ended.
    MatchNotFound = 4006,
    /// The match is full.
    MatchFull = 4007,
    /// The resume token is unknown, expired, or the gap can no longer be bridged.
    ResumeFailed = 4008,
    /// The server or this address has too many connections.
    TooManyConnections = 4009,
    /// The match's log failed; it takes no more commands.
    MatchStopped = 4010,
    /// Cluster mode: the match is on another node (the reason is `match ID is on URL`), or it
    /// is moving to one (reconnect to any node and resume).
    MatchMoved = 4011,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Short machine-readable reason sent with the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "server_shutting_down",
            CloseCode::InvalidMessage => "invalid_message",
            CloseCode::PolicyViolation => "policy_violation",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::InternalError => "internal_error",
            CloseCode::VersionMismatch => "protocol_version_mismatch",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::UnexpectedMessage => "unexpected_message",
            CloseCode::RateLimited => "rate_limited",
            CloseCode::TooSlow => "too_slow",
            CloseCode::PingTimeout => "ping_timeout",
            CloseCode::MatchNotFound => "match_not_found",
            CloseCode::MatchFull => "match_full",
            CloseCode::ResumeFailed => "resume_failed",
            CloseCode::TooManyConnections => "too_many_connections",
            CloseCode::MatchStopped => "match_stopped",
            CloseCode::MatchMoved => "match_moved",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: &'static [CloseCode] = &[
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::InvalidMessage,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::VersionMismatch,
        CloseCode::Unauthorized,
        CloseCode::UnexpectedMessage,
        CloseCode::RateLimited,
        CloseCode::TooSlow,
        CloseCode::PingTimeout,
        CloseCode::MatchNotFound,
        CloseCode::MatchFull,
        CloseCode::ResumeFailed,
        CloseCode::TooManyConnections,
        CloseCode::MatchStopped,
        CloseCode::MatchMoved,
    ];

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}
