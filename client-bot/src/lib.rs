//! The Rust client of tickforge.
//!
//! ```no_run
//! use tickforge_client::{Session, guest_token};
//! use tickforge_protocol::Command;
//!
//! # async fn demo() -> Result<(), tickforge_client::ClientError> {
//! let url = "ws://127.0.0.1:7878";
//! let token = guest_token(url, "ana", false).await?;
//! let mut session = Session::join(url, &token, None, "ana").await?; // quick-join
//! let me = session.entity();
//! session.send(Command::Move { entity: me, vx: 50, vy: 0 }).await?;
//! while session.mirror().tick().0 < 120 {
//!     match session.recv().await {
//!         Ok(_message) => {}                              // the mirror is already updated
//!         Err(e) if e.needs_resume() => session.reconnect().await?, // dropped or gap: resume
//!         Err(e) => return Err(e),
//!     }
//! }
//! println!("my position: {:?}", session.mirror().get(me, "pos"));
//! # Ok(()) }
//! ```
//!
//! What it owns: connecting with a token ([`Connection`]), joining or quick-joining,
//! commands with per-session ids, a typed stream of [`ServerMessage`]s, a [`Mirror`] of the
//! public world kept from snapshots and deltas with gap detection, and resuming after a drop
//! ([`Session::reconnect`]). Also the `tickforge-bots` swarm binary.
//!
//! What it must not depend on: the engine (`tickforge-server`). A client speaks only the
//! protocol, so it links `tickforge-protocol` and nothing of the server.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod http;
mod mirror;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tickforge_protocol::compact::ComponentTable;
use tickforge_protocol::{
    ClientMessage, Command, CommandId, DecodeLimits, Delta, EntityId, GameConfig, MatchId,
    PROTOCOL_VERSION, PlayerId, ServerMessage, decode_server, decode_with, encode,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use http::{create_match, get_json, guest_token};
pub use mirror::{Gap, Mirror, MirrorError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What went wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad url: {0}")]
    Url(String),
    #[error("{0}")]
    Io(String),
    #[error("http: {0}")]
    Http(String),
    #[error("the server refused the connection: {status} {body}")]
    Refused { status: u16, body: String },
    #[error("the server closed the connection: {code:?} {reason}")]
    Closed { code: Option<u16>, reason: String },
    #[error("unexpected message from the server: {0}")]
    Protocol(String),
    #[error(transparent)]
    Gap(#[from] Gap),
    #[error("{0}")]
    Mirror(MirrorError),
}

impl From<MirrorError> for ClientError {
    fn from(e: MirrorError) -> Self {
        match e {
            MirrorError::Gap(gap) => ClientError::Gap(gap),
            other => ClientError::Mirror(other),
        }
    }
}

impl ClientError {
    /// The session can go on after [`Session::reconnect`]: the connection dropped (not closed
    /// by the server with a final code), a delta was lost, or (in a cluster, 4011) the match
    /// moved to another node.
    pub fn needs_resume(&self) -> bool {
        match self {
            ClientError::Gap(_) | ClientError::Io(_) => true,
            ClientError::Closed { code, .. } => {
                code.is_none() || *code == Some(1006) || *code == Some(4011)
            }
            _ => false,
        }
    }

    /// The close code, if the server closed the connection with one.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed { code, .. } => *code,
            _ => None,
        }
    }
}

fn not_connected() -> ClientError {
    ClientError::Closed {
        code: None,
        reason: "not connected (reconnect to resume)".into(),
    }
}

/// `ws://host:port/play` from `ws://host:port` or `http://host:port`.
pub fn play_url(url: &str) -> Result<String, ClientError> {
    let (_, authority) = http::base_url(url)?;
    Ok(format!("ws://{authority}/play"))
}

/// Messages and bytes on one connection, counted as on the wire: payload plus WebSocket frame
/// header (2, 4 or 10 bytes; client frames add a 4-byte mask), without TCP/IP headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
}

fn frame_header(len: usize) -> u64 {
    match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

impl Traffic {
    fn sent(&mut self, len: usize) {
        self.frames_out += 1;
        self.bytes_out += len as u64 + frame_header(len) + 4;
    }

    fn received(&mut self, len: usize) {
        self.frames_in += 1;
        self.bytes_in += len as u64 + frame_header(len);
    }
}

/// A WebSocket to a server with Hello/Welcome done.
#[derive(Debug)]
pub struct Connection {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    traffic: Traffic,
    /// The server's name and version, from `Welcome`.
    pub server: String,
}

impl Connection {
    /// Open a player connection to `url` (`ws://host:port`) with `token`, and say Hello.
    pub async fn connect(url: &str, token: &str) -> Result<Connection, ClientError> {
        let mut connection = Connection::open(&play_url(url)?, token).await?;
        let hello = ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("tickforge-client/{}", env!("CARGO_PKG_VERSION")),
        };
        connection.send(&hello).await?;
        match connection.recv().await? {
            ServerMessage::Welcome { server, .. } => {
                connection.server = server;
                Ok(connection)
            }
            other => Err(ClientError::Protocol(format!(
                "expected Welcome, got {other:?}"
            ))),
        }
    }

    /// Open a WebSocket to exactly `ws_url` with `token`, without saying anything.
    pub async fn open(ws_url: &str, token: &str) -> Result<Connection, ClientError> {
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| ClientError::Url(e.to_string()))?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Url("the token is not a valid header".into()))?;
        request.headers_mut().insert("authorization", bearer);
        // tungstenite zeroes its read buffer's free part before every read: a small buffer
        // keeps the per-frame cost small (a tick frame is tens of bytes; a larger frame, a
        // snapshot, is read in several reads).
        let config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(4 * 1024);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => {
                    let status = response.status().as_u16();
                    let body = response
                        .body()
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    ClientError::Refused { status, body }
                }
                other => ClientError::Io(format!("connecting to {ws_url}: {other}")),
            })?;
        let (sink, stream) = ws.split();
        Ok(Connection {
            sink,
            stream,
            server: String::new(),
            traffic: Traffic::default(),
        })
    }

    /// Send one message (flushed).
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let bytes = encode(message).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send_bytes(bytes).await
    }

    /// What this connection has sent and received so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Send raw bytes as one binary frame (for tools that test servers with odd input).
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.traffic.sent(bytes.len());
        self.sink
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Send any WebSocket message (text frames, oversized frames …).
    pub async fn send_frame(&mut self, message: Message) -> Result<(), ClientError> {
        self.sink
            .send(message)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Queue one message without flushing; [`Connection::flush`] sends everything queued.
    pub async fn feed(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let bytes = encode(message).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.traffic.sent(bytes.len());
        self.sink
            .feed(Message::Binary(bytes.into()))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.sink
            .flush()
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// The next message from the server. A close frame becomes [`ClientError::Closed`] with its
    /// code and reason; an `Error` message is returned like any other (a close follows it).
    pub async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        self.recv_as(decode_server).await
    }

    /// The next message of a spectator connection (`/spectate/…`), MessagePack or JSON.
    pub async fn recv_spectator(
        &mut self,
    ) -> Result<tickforge_protocol::SpectatorMessage, ClientError> {
        self.recv_as(|bytes| decode_with(bytes, DecodeLimits::TRUSTED))
            .await
    }

    async fn recv_as<T: serde::de::DeserializeOwned>(
        &mut self,
        binary: impl Fn(&[u8]) -> Result<T, tickforge_protocol::DecodeError>,
    ) -> Result<T, ClientError> {
        loop {
            let Some(frame) = self.stream.next().await else {
                return Err(ClientError::Closed {
                    code: None,
                    reason: "the connection ended".into(),
                });
            };
            match frame {
                Ok(Message::Binary(bytes)) => {
                    self.traffic.received(bytes.len());
                    return binary(&bytes).map_err(|e| ClientError::Protocol(e.to_string()));
                }
                Ok(Message::Text(text)) => {
                    self.traffic.received(text.len());
                    return serde_json::from_str(&text)
                        .map_err(|e| ClientError::Protocol(e.to_string()));
                }
                Ok(Message::Close(frame)) => {
                    return Err(ClientError::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(ClientError::Closed {
                        code: None,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// Close politely.
    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while self.stream.next().await.is_some() {}
        })
        .await;
    }
}

/// Redirects a join or resume follows before giving up.
pub const MAX_REDIRECTS: usize = 3;

/// A cluster node's answer that the match is on another node: its id and that node's URL.
pub fn redirect(message: &ServerMessage) -> Option<(MatchId, String)> {
    let ServerMessage::Error { code: 4011, reason } = message else {
        return None;
    };
    let rest = reason.strip_prefix("match ")?;
    let (id, url) = rest.split_once(" is on ")?;
    let url = url.trim();
    (url.starts_with("ws://") || url.starts_with("wss://")).then(|| {
        Some((
            MatchId(id.trim_start_matches('m').parse().ok()?),
            url.to_string(),
        ))
    })?
}

/// A player in a match: a connection, the ids the server gave, and the mirrored world.
#[derive(Debug)]
pub struct Session {
    /// `None` after [`Session::drop_connection`], until [`Session::reconnect`].
    conn: Option<Connection>,
    url: String,
    token: String,
    match_id: MatchId,
    player: PlayerId,
    entity: EntityId,
    resume_token: String,
    tick_rate_hz: u32,
    game: String,
    rules: GameConfig,
    mirror: Mirror,
    /// The delta of the last tick frame applied.
    last_delta: Option<Delta>,
    /// Whether [`Session::recv`] keeps each tick's delta (a bot needs only the mirror).
    keep_deltas: bool,
    next_id: u32,
}

impl Session {
    /// Connect and join match `match_id`, or quick-join with `None`.
    ///
    /// In a cluster, a node that does not run the match answers with `Error{4011, "match ID is
    /// on URL"}`: the session follows it (at most [`MAX_REDIRECTS`] times) and joins there.
    pub async fn join(
        url: &str,
        token: &str,
        match_id: Option<MatchId>,
        name: &str,
    ) -> Result<Session, ClientError> {
        let (mut url, mut match_id) = (url.to_string(), match_id);
        let mut hops = 0;
        let (conn, answer) = loop {
            let mut conn = Connection::connect(&url, token).await?;
            conn.send(&ClientMessage::Join {
                match_id,
                name: name.to_string(),
            })
            .await?;
            let answer = conn.recv().await?;
            match redirect(&answer) {
                Some((id, there)) if hops < MAX_REDIRECTS => {
                    hops += 1;
                    url = there;
                    match_id = Some(id);
                }
                _ => break (conn, answer),
            }
        };
        let url = url.as_str();
        match answer {
            ServerMessage::Joined {
                match_id,
                player,
                entity,
                tick_rate_hz,
                resume_token,
                game,
                rules,
                components,
                snapshot,
            } => {
                let table = ComponentTable::new(components)
                    .map_err(|e| ClientError::Protocol(format!("Joined: {e}")))?;
                let mut mirror = Mirror::new(table);
                mirror.apply_snapshot(&snapshot)?;
                Ok(Session {
                    game,
                    rules,
                    last_delta: None,
                    keep_deltas: true,
                    conn: Some(conn),
                    url: url.to_string(),
                    token: token.to_string(),
                    match_id,
                    player,
                    entity,
                    resume_token,
                    tick_rate_hz,
                    mirror,
                    next_id: 1,
                })
            }
            ServerMessage::Error { code, reason } => Err(ClientError::Closed {
                code: Some(code),
                reason,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected Joined, got {other:?}"
            ))),
        }
    }

    pub fn match_id(&self) -> MatchId {
        self.match_id
    }

    pub fn player(&self) -> PlayerId {
        self.player
    }

    /// The entity this player commands.
    pub fn entity(&self) -> EntityId {
        self.entity
    }

    pub fn tick_rate_hz(&self) -> u32 {
        self.tick_rate_hz
    }

    /// The game's name, from `Joined`.
    pub fn game(&self) -> &str {
        &self.game
    }

    /// The match's rules, from `Joined`.
    pub fn rules(&self) -> &GameConfig {
        &self.rules
    }

    /// The delta of the last tick frame [`Session::recv`] applied (none after a snapshot, or
    /// when [`Session::keep_deltas`] is off).
    pub fn last_delta(&self) -> Option<&Delta> {
        self.last_delta.as_ref()
    }

    /// Keep each tick's delta for [`Session::last_delta`] (the default), or only update the
    /// mirror, which is cheaper.
    pub fn keep_deltas(&mut self, keep: bool) {
        self.keep_deltas = keep;
        if !keep {
            self.last_delta = None;
        }
    }

    pub fn resume_token(&self) -> &str {
        &self.resume_token
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// What the current connection has sent and received.
    pub fn traffic(&self) -> Traffic {
        self.conn
            .as_ref()
            .map(Connection::traffic)
            .unwrap_or_default()
    }

    /// The connection, for sending or receiving outside the session's bookkeeping.
    pub fn connection(&mut self) -> Result<&mut Connection, ClientError> {
        self.conn.as_mut().ok_or_else(not_connected)
    }

    /// The id the next [`Session::send`] will use.
    pub fn next_command_id(&self) -> CommandId {
        CommandId(self.next_id)
    }

    /// Send a command with the next id; returns the id (answered in a tick frame, or at once with
    /// `Rejected` when it does not reach the match).
    pub async fn send(&mut self, command: Command) -> Result<CommandId, ClientError> {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        self.connection()?
            .send(&ClientMessage::Command { id, command })
            .await?;
        Ok(id)
    }

    /// Queue a command with the next id without flushing; [`Session::flush`] sends the queue.
    pub async fn feed(&mut self, command: Command) -> Result<CommandId, ClientError> {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        self.connection()?
            .feed(&ClientMessage::Command { id, command })
            .await?;
        Ok(id)
    }

    /// Send everything queued with [`Session::feed`].
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.connection()?.flush().await
    }

    /// Send a command with a chosen id (to resend one after a resume: the server acknowledges a
    /// duplicate without applying it again).
    pub async fn send_with_id(
        &mut self,
        id: CommandId,
        command: Command,
    ) -> Result<(), ClientError> {
        self.next_id = self.next_id.max(id.0 + 1);
        self.connection()?
            .send(&ClientMessage::Command { id, command })
            .await
    }

    /// The next message, after applying it to the mirror (snapshots and tick frames; the
    /// delta of a tick frame is then [`Session::last_delta`]). A tick frame that skips ticks is
    /// a [`ClientError::Gap`]: call [`Session::reconnect`] to resync.
    pub async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        let message = self.connection()?.recv().await?;
        match &message {
            ServerMessage::Tick(frame) if self.keep_deltas => {
                if let Some(delta) = self.mirror.apply_tick(frame)? {
                    self.last_delta = Some(delta);
                }
            }
            ServerMessage::Tick(frame) => {
                self.mirror.apply_tick_quietly(frame)?;
            }
            ServerMessage::Snapshot(snapshot) => {
                self.mirror.apply_snapshot(snapshot)?;
                self.last_delta = None;
            }
            _ => {}
        }
        Ok(message)
    }

    /// The next message, not applied to the mirror.
    pub async fn recv_unapplied(&mut self) -> Result<ServerMessage, ClientError> {
        self.connection()?.recv().await
    }

    /// Open a new connection and resume this session: the server re-sends exactly the deltas
    /// after the mirror's tick (or a snapshot when the gap is too large), which [`Session::recv`]
    /// then applies as usual.
    ///
    /// In a cluster the session follows a node's `Error{4011, "match ID is on URL"}` to the
    /// match's node (at most [`MAX_REDIRECTS`] times). A 4011 without a URL (the match is
    /// moving) and a node that cannot be reached are returned to the caller, who tries again
    /// in a moment, at this node or at another with [`Session::set_url`].
    pub async fn reconnect(&mut self) -> Result<(), ClientError> {
        let mut hops = 0;
        let (conn, answer) = loop {
            let mut conn = Connection::connect(&self.url, &self.token).await?;
            let resume = ClientMessage::Resume {
                token: self.resume_token.clone(),
                last_tick: self.mirror.tick(),
                last_seq: self.mirror.seq(),
            };
            conn.send(&resume).await?;
            let answer = conn.recv().await?;
            match redirect(&answer) {
                Some((_, there)) if hops < MAX_REDIRECTS => {
                    hops += 1;
                    self.url = there;
                }
                _ => break (conn, answer),
            }
        };
        match answer {
            ServerMessage::Resumed { .. } => {
                self.conn = Some(conn);
                Ok(())
            }
            ServerMessage::Error { code, reason } => Err(ClientError::Closed {
                code: Some(code),
                reason,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected Resumed, got {other:?}"
            ))),
        }
    }

    /// The node the session connects to next (a cluster's other node, when this one is gone).
    pub fn set_url(&mut self, url: &str) {
        self.url = url.to_string();
    }

    /// The node the session is connected (or connects next) to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drop the connection without a word (as a network failure would). The session can
    /// [`reconnect`](Session::reconnect) afterwards.
    pub fn drop_connection(&mut self) {
        // Dropping both halves closes the TCP socket with no close frame.
        self.conn = None;
    }

    /// Close the connection politely without leaving the match (the seat stays for the grace
    /// period), not waiting for anything.
    pub async fn leave_quietly(mut self) -> Result<(), ClientError> {
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        Ok(())
    }

    /// Leave the match and close.
    pub async fn leave(mut self) -> Result<(), ClientError> {
        let conn = self.connection()?;
        conn.send(&ClientMessage::Leave).await?;
        loop {
            match conn.recv().await {
                Ok(_) => {}
                Err(ClientError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
