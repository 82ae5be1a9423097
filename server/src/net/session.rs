//! A player's connection: `Hello`, then `Join` or `Resume`, then commands.
//!
//! The reader (this task) decodes frames within the size and depth limits, applies the rate
//! limit, and hands commands to the match inbox with `try_send`. The writer (its own task)
//! drains the connection's bounded outbound queue into one flush, pings, and enforces the write
//! deadline. Every way a connection ends is a close code with a reason.

#![expect(
    clippy::disallowed_methods,
    reason = "sessions time rate limits and deadlines; this is I/O, not the simulation"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tickforge_protocol::{
    ClientMessage, CloseCode, DecodeError, DecodeLimits, PROTOCOL_VERSION, Rule, ServerMessage,
    decode_with, encode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes, protocol::CloseFrame};

use super::AppState;
use crate::auth::Claims;
use crate::matches::{ClientOut, Control, Inbound, JoinRefused, Seat, SessionControl, Waiter};

/// What the writer needs to know about liveness.
#[derive(Debug)]
pub(crate) struct Liveness {
    started: Instant,
    last_pong_ms: AtomicU64,
}

impl Liveness {
    pub(crate) fn new() -> Arc<Liveness> {
        Arc::new(Liveness {
            started: Instant::now(),
            last_pong_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn pong(&self) {
        self.last_pong_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_pong_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// A token bucket: `rate` commands per second sustained, `burst` at once; plus a count of
/// refusals in the current 5-second window, for telling bursts from abuse.
#[derive(Debug)]
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    refused_window_start: Instant,
    refused_in_window: u32,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> RateLimit {
        let now = Instant::now();
        RateLimit {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
            refused_window_start: now,
            refused_in_window: 0,
        }
    }

    /// Take a token; `Err(refused so far in this window)` if there is none.
    fn take(&mut self) -> Result<(), u32> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if now.duration_since(self.refused_window_start) > Duration::from_secs(5) {
            self.refused_window_start = now;
            self.refused_in_window = 0;
        }
        self.refused_in_window += 1;
        Err(self.refused_in_window)
    }
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// The writer half of a connection: drains `frames`, pings, and closes with the requested code.
pub(crate) async fn write_loop<S>(
    mut sink: Sink<S>,
    mut frames: mpsc::Receiver<Bytes>,
    control: Arc<SessionControl>,
    liveness: Arc<Liveness>,
    state: Arc<AppState>,
    text: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &state.config;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + config.ping_interval,
        config.ping_interval,
    );
    // A text frame shares the frame's bytes (encoded once for every spectator), not a copy.
    let to_message = |f: Bytes| {
        if text {
            Utf8Bytes::try_from(f.clone()).map_or(Message::Binary(f), Message::Text)
        } else {
            Message::Binary(f)
        }
    };
    // One cancellation future for the whole loop: making one per turn registers (and locks)
    // anew every tick.
    let cancelled = control.cancel.cancelled(Waiter::Writer);
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break,
            frame = frames.recv() => {
                let Some(first) = frame else { break };
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match frames.try_recv() {
                        Ok(f) => batch.push(f),
                        Err(_) => break,
                    }
                }
                let bytes: usize = batch.iter().map(Bytes::len).sum();
                let count = batch.len() as u64;
                let write = async {
                    for f in batch.drain(..) {
                        sink.feed(to_message(f)).await?;
                    }
                    sink.flush().await
                };
                // Most writes complete at once (the socket has room): only a write that has to
                // wait gets a deadline, so the common case arms no timer.
                let mut write = std::pin::pin!(write);
                let done = match futures_util::poll!(write.as_mut()) {
                    std::task::Poll::Ready(result) => Ok(result),
                    std::task::Poll::Pending => {
                        tokio::time::timeout(config.write_timeout, write).await
                    }
                };
                match done {
                    Ok(Ok(())) => {
                        state.metrics.frames_out.inc_by(count);
                        state.metrics.bytes_out.inc_by(bytes as u64);
                    }
                    Ok(Err(_)) => break,
                    Err(_) => {
                        control.close(CloseCode::TooSlow, format!("a write took longer than {} s", config.write_timeout.as_secs()));
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if liveness.silent_for() > config.pong_timeout {
                    control.close(CloseCode::PingTimeout, format!("no pong for {} s", config.pong_timeout.as_secs()));
                    break;
                }
                let sent = tokio::time::timeout(config.write_timeout, sink.send(Message::Ping(Bytes::from_static(b"tf")))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
        }
    }
    // Closing: what is already queued first (within the deadline), then the reason.
    let (code, reason) = control
        .requested()
        .unwrap_or((CloseCode::Normal, "closing".into()));
    state.metrics.closed(code.reason());
    let goodbye = async {
        if code != CloseCode::TooSlow {
            while let Ok(f) = frames.try_recv() {
                sink.feed(to_message(f)).await?;
            }
        }
        // Before a close other than 1000 and 4004, players and spectators alike get an Error
        // message (binary MessagePack, also on a JSON spectator feed).
        if code != CloseCode::Normal && code != CloseCode::TooSlow {
            let error = ServerMessage::Error {
                code: code.code(),
                reason: reason.clone(),
            };
            let bytes = Bytes::from(encode(&error).unwrap_or_default());
            sink.feed(Message::Binary(bytes)).await?;
        }
        let frame = CloseFrame {
            code: code.code().into(),
            reason: truncate_reason(&reason).into(),
        };
        sink.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(config.write_timeout.min(Duration::from_secs(2)), goodbye).await;
    control.cancel.cancel();
}

/// Close reasons must fit a control frame (123 bytes).
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// What the reader got from the socket.
pub(crate) enum Incoming {
    Data(Bytes),
    Closed,
}

/// Read the next data frame, answering control frames; `Err` is a close to request.
pub(crate) async fn next_frame<S>(
    stream: &mut Stream<S>,
    liveness: &Liveness,
    state: &AppState,
    max_frame: usize,
) -> Result<Incoming, (CloseCode, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let Some(message) = stream.next().await else {
            return Ok(Incoming::Closed);
        };
        match message {
            Ok(Message::Binary(bytes)) => {
                state.metrics.frames_in.inc();
                state.metrics.bytes_in.inc_by(bytes.len() as u64);
                return Ok(Incoming::Data(bytes));
            }
            Ok(Message::Text(_)) => {
                return Err((
                    CloseCode::InvalidMessage,
                    "text frames are not accepted: send MessagePack in binary frames".into(),
                ));
            }
            Ok(Message::Pong(_)) => liveness.pong(),
            Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => {}
            Ok(Message::Close(_)) => return Ok(Incoming::Closed),
            Err(tungstenite::Error::Capacity(e)) => {
                return Err((
                    CloseCode::MessageTooBig,
                    format!("frame over the limit of {max_frame} bytes: {e}"),
                ));
            }
            Err(tungstenite::Error::Utf8(_)) => {
                return Err((
                    CloseCode::InvalidMessage,
                    "invalid UTF-8 in a text frame or a close reason".into(),
                ));
            }
            Err(tungstenite::Error::Protocol(e)) => {
                return Err((
                    CloseCode::InvalidMessage,
                    format!("WebSocket protocol error: {e}"),
                ));
            }
            Err(_) => return Ok(Incoming::Closed),
        }
    }
}

fn decode_error(e: &DecodeError) -> (CloseCode, String) {
    match e {
        DecodeError::TooLarge { .. } => (CloseCode::MessageTooBig, e.to_string()),
        _ => (
            CloseCode::InvalidMessage,
            format!("not a client message: {e}"),
        ),
    }
}

/// Run one player connection to its end.
pub(crate) async fn run_player<S>(ws: WebSocketStream<S>, claims: Claims, state: Arc<AppState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let (frames_tx, frames_rx) = mpsc::channel(state.config.outbound_queue);
    let control = Arc::new(SessionControl::default());
    let liveness = Liveness::new();
    liveness.pong();
    let writer = tokio::spawn(write_loop(
        sink,
        frames_rx,
        control.clone(),
        liveness.clone(),
        state.clone(),
        false,
    ));
    let conn = state.next_conn_id();
    let out = ClientOut {
        conn,
        frames: frames_tx.clone(),
        control: control.clone(),
    };
    state.metrics.players.inc();

    let seat = tokio::select! {
        () = control.cancel.cancelled(Waiter::Reader) => None,
        seat = handshake(&mut stream, &liveness, &state, &claims, &out) => match seat {
            Ok(seat) => Some(seat),
            Err((code, reason)) => {
                control.close(code, reason);
                None
            }
        },
    };
    if let Some(seat) = &seat {
        let limits = DecodeLimits {
            max_bytes: state.config.max_frame_bytes,
            max_depth: state.config.max_depth,
        };
        let mut rate = RateLimit::new(state.config.commands_per_sec, state.config.command_burst);
        let handle = state.registry.running(seat.match_id);
        let cancelled = control.cancel.cancelled(Waiter::Reader);
        tokio::pin!(cancelled);
        loop {
            let incoming = tokio::select! {
                () = &mut cancelled => break,
                incoming = next_frame(&mut stream, &liveness, &state, state.config.max_frame_bytes) => incoming,
            };
            let bytes = match incoming {
                Ok(Incoming::Data(bytes)) => bytes,
                Ok(Incoming::Closed) => break,
                Err((code, reason)) => {
                    control.close(code, reason);
                    break;
                }
            };
            let message = match decode_with::<ClientMessage>(&bytes, limits) {
                Ok(m) => m,
                Err(e) => {
                    let (code, reason) = decode_error(&e);
                    control.close(code, reason);
                    break;
                }
            };
            match message {
                ClientMessage::Command { id, command } => {
                    if let Err(refused) = rate.take() {
                        state.metrics.rate_limited.inc();
                        if refused > state.config.abuse_limit {
                            control.close(
                                CloseCode::RateLimited,
                                format!("{refused} commands over the rate limit within 5 s"),
                            );
                            break;
                        }
                        let detail =
                            format!("over {} commands per second", state.config.commands_per_sec);
                        let _ = frames_tx.try_send(reply(&ServerMessage::Rejected {
                            id,
                            rule: Rule::RateLimited,
                            detail,
                        }));
                        continue;
                    }
                    let Some(handle) = &handle else { break };
                    let inbound = Inbound {
                        player: seat.player,
                        conn,
                        id,
                        command,
                    };
                    match handle.inbox.try_send(inbound) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            state.metrics.inbox_full.inc();
                            let detail =
                                "the match's inbox is full this tick; send again".to_string();
                            let _ = frames_tx.try_send(reply(&ServerMessage::Rejected {
                                id,
                                rule: Rule::MatchBusy,
                                detail,
                            }));
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                ClientMessage::Ping { nonce } => {
                    let _ = frames_tx.try_send(reply(&ServerMessage::Pong { nonce }));
                }
                ClientMessage::Leave => {
                    if let Some(handle) = &handle {
                        let _ = handle
                            .control
                            .send(Control::Leave {
                                player: seat.player,
                                conn,
                            })
                            .await;
                    }
                    // The match closes the connection once the player has left.
                }
                ClientMessage::Hello { .. }
                | ClientMessage::Join { .. }
                | ClientMessage::Resume { .. } => {
                    control.close(
                        CloseCode::UnexpectedMessage,
                        "already in a match: Hello, Join and Resume come once, first",
                    );
                    break;
                }
            }
        }
        if let Some(handle) = &handle {
            let _ = handle
                .control
                .send(Control::Detach {
                    player: seat.player,
                    conn,
                })
                .await;
        }
    }
    control.cancel.cancel();
    drop(frames_tx);
    drop(out);
    let _ = writer.await;
    // Give the peer a moment to answer our close frame, then drop the connection.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while stream.next().await.is_some() {}
    })
    .await;
    state.metrics.players.dec();
}

fn reply(message: &ServerMessage) -> Bytes {
    Bytes::from(encode(message).unwrap_or_default())
}

/// `Hello` ⇒ `Welcome`, then `Join` or `Resume` ⇒ a seat in a match.
async fn handshake<S>(
    stream: &mut Stream<S>,
    liveness: &Liveness,
    state: &Arc<AppState>,
    claims: &Claims,
    out: &ClientOut,
) -> Result<Seat, (CloseCode, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = DecodeLimits {
        max_bytes: state.config.max_frame_bytes,
        max_depth: state.config.max_depth,
    };
    let deadline = state.config.handshake_timeout;
    let mut next = async |what: &str| -> Result<ClientMessage, (CloseCode, String)> {
        let frame = tokio::time::timeout(
            deadline,
            next_frame(stream, liveness, state, state.config.max_frame_bytes),
        )
        .await
        .map_err(|_| {
            (
                CloseCode::UnexpectedMessage,
                format!("no {what} within {} s", deadline.as_secs()),
            )
        })??;
        match frame {
            Incoming::Data(bytes) => {
                decode_with::<ClientMessage>(&bytes, limits).map_err(|e| decode_error(&e))
            }
            Incoming::Closed => Err((CloseCode::Normal, "the client closed".into())),
        }
    };
    match next("Hello").await? {
        ClientMessage::Hello { protocol, .. } if protocol == PROTOCOL_VERSION => {}
        ClientMessage::Hello { protocol, .. } => {
            return Err((
                CloseCode::VersionMismatch,
                format!(
                    "client speaks protocol {protocol}; this server speaks protocol {PROTOCOL_VERSION} only"
                ),
            ));
        }
        other => {
            return Err((
                CloseCode::UnexpectedMessage,
                format!("the first message must be Hello, not {}", kind(&other)),
            ));
        }
    }
    let welcome = ServerMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        server: format!("tickforge {}", env!("CARGO_PKG_VERSION")),
    };
    out.frames.try_send(reply(&welcome)).map_err(|_| {
        (
            CloseCode::InternalError,
            "could not queue Welcome".to_string(),
        )
    })?;
    // After Welcome a client may wait (in a lobby, say) before joining: there is no deadline,
    // but it must answer pings, and its own pings are answered.
    let seat = loop {
        let frame = next_frame(stream, liveness, state, state.config.max_frame_bytes).await?;
        let bytes = match frame {
            Incoming::Data(bytes) => bytes,
            Incoming::Closed => return Err((CloseCode::Normal, "the client closed".into())),
        };
        match decode_with::<ClientMessage>(&bytes, limits).map_err(|e| decode_error(&e))? {
            ClientMessage::Ping { nonce } => {
                let _ = out.frames.try_send(reply(&ServerMessage::Pong { nonce }));
            }
            ClientMessage::Join { match_id, name } => {
                let name = if name.is_empty() {
                    claims.sub.clone()
                } else {
                    name
                };
                break state.registry.join(match_id, name, out.clone()).await;
            }
            ClientMessage::Resume {
                token,
                last_tick,
                last_seq,
            } => {
                break state
                    .registry
                    .resume(&token, last_tick, last_seq, out.clone())
                    .await;
            }
            other => {
                return Err((
                    CloseCode::UnexpectedMessage,
                    format!("after Hello comes Join or Resume, not {}", kind(&other)),
                ));
            }
        }
    };
    seat.map_err(|refused: JoinRefused| (refused.close_code(), refused.to_string()))
}

fn kind(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Hello { .. } => "Hello",
        ClientMessage::Join { .. } => "Join",
        ClientMessage::Command { .. } => "Command",
        ClientMessage::Resume { .. } => "Resume",
        ClientMessage::Ping { .. } => "Ping",
        ClientMessage::Leave => "Leave",
    }
}
