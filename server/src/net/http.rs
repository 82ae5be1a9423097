//! HTTP endpoints and the WebSocket upgrade.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /healthz` | liveness and a one-line status |
//! | `GET /metrics` | Prometheus text |
//! | `GET /matches` · `POST /matches` | list matches · create one (`{"game", "config", "seed"}`) |
//! | `GET /replays` · `GET /replays/{id}` | list replay files · download one |
//! | `GET /replays/{id}/seek?tick=T` | the world at the end of tick T, as JSON |
//! | `POST /auth/guest` | a guest token (development mode only) |
//! | `GET /play` (WebSocket) | a player connection |
//! | `GET /spectate/{id}?from=SEQ\|live&delay=TICKS&format=json\|msgpack` (WebSocket) | a spectator |
//!
//! WebSocket requests carry a token (`Authorization: Bearer …` or `?token=…`), checked before
//! the upgrade completes: a bad one gets `401` and no WebSocket at all.

#![expect(
    clippy::disallowed_methods,
    reason = "token expiry is wall-clock time; this is I/O, not the simulation"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tickforge_protocol::{GameConfig, MatchId, Tick};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

use super::spectate::{self, Source, SpectateParams};
use super::{AppState, ConnPermit, session};
use crate::auth::{AuthError, Claims, Role};
use crate::log::ReplayReader;
use crate::matches::{self, CreateError};

type Body = Full<Bytes>;

// The web viewer, embedded so that running the server needs no build step of its own.
const WEB_INDEX: &str = include_str!("../../web/index.html");
const WEB_APP: &str = include_str!("../../web/app.js");
const WEB_STYLE: &str = include_str!("../../web/style.css");

/// Serve one TCP connection: HTTP/1.1 with keep-alive, upgradable to WebSocket.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) {
    let io = TokioIo::new(stream);
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |req| {
            let (state, permit) = (state.clone(), permit.clone());
            async move { Ok::<_, Infallible>(route(req, peer, permit, state).await) }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.handshake_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = state.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn error(status: StatusCode, code: &str, detail: impl std::fmt::Display) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": code, "detail": detail.to_string() }),
    )
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn query_param<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// The token of a request, checked.
fn claims(req: &Request<Incoming>, state: &AppState) -> Result<Claims, AuthError> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = from_header
        .or_else(|| query_param(req, "token"))
        .ok_or(AuthError::Missing)?;
    state.auth.verify(token, now_unix_s())
}

fn unauthorized(e: AuthError) -> Response<Body> {
    let status = if matches!(e, AuthError::WrongRole { .. }) {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    error(status, "unauthorized", e)
}

async fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, []) => respond(StatusCode::OK, "text/html; charset=utf-8", WEB_INDEX),
        (&Method::GET, ["app.js"]) => {
            respond(StatusCode::OK, "text/javascript; charset=utf-8", WEB_APP)
        }
        (&Method::GET, ["style.css"]) => {
            respond(StatusCode::OK, "text/css; charset=utf-8", WEB_STYLE)
        }
        (&Method::GET, ["api"]) => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            index_text(&state),
        ),
        (&Method::GET, ["matches", id, "snapshot"]) => match_snapshot(id, &state).await,
        (&Method::GET, ["replays", id, "events"]) => replay_events(id, &req, &state).await,
        (&Method::GET, ["replays", id, "rejections"]) => replay_rejections(id, &state).await,
        (&Method::GET, ["healthz"]) => health(&state),
        (&Method::GET, ["metrics"]) => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.render(),
        ),
        (&Method::GET, ["matches"]) => json_response(StatusCode::OK, &state.registry.list()),
        (&Method::POST, ["matches"]) => create_match(req, &state).await,
        (&Method::GET, ["replays"]) => list_replays(&state).await,
        (&Method::GET, ["replays", id]) => download_replay(id, &state).await,
        (&Method::GET, ["replays", id, "seek"]) => {
            seek_replay(id, query_param(&req, "tick"), &state).await
        }
        (&Method::POST, ["auth", "guest"]) => guest_token(req, &state).await,
        (&Method::GET, ["play"]) => upgrade_player(req, peer, permit, state),
        (&Method::GET, ["echo"]) if state.config.conformance_echo => {
            upgrade_echo(req, permit, state)
        }
        (&Method::GET, ["spectate", id]) => {
            let id = id.to_string();
            upgrade_spectator(req, &id, permit, state)
        }
        (
            _,
            [
                "healthz" | "metrics" | "matches" | "replays" | "play" | "spectate",
                ..,
            ]
            | ["auth", "guest"],
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no endpoint at {path}; see GET / for the list"),
        ),
    }
}

fn index_text(state: &AppState) -> String {
    format!(
        "tickforge {}\n\nGET  / (the web viewer)\nGET  /healthz\nGET  /metrics\nGET  /matches\nPOST /matches\nGET  /matches/ID/snapshot\nGET  /replays\nGET  /replays/ID\nGET  /replays/ID/seek?tick=T\nGET  /replays/ID/events?from_tick=A&to_tick=B\nGET  /replays/ID/rejections\n{}GET  /play (WebSocket)\nGET  /spectate/ID?from=SEQ|live&delay=TICKS&format=json|msgpack (WebSocket)\n",
        env!("CARGO_PKG_VERSION"),
        if state.auth.development() {
            "POST /auth/guest\n"
        } else {
            ""
        }
    )
}

fn health(state: &AppState) -> Response<Body> {
    let matches = state.registry.list();
    let running = matches
        .iter()
        .filter(|m| m.state == matches::MatchState::Running)
        .count();
    json_response(
        StatusCode::OK,
        &json!({
            "status": if state.shutdown.is_cancelled() { "shutting_down" } else { "ok" },
            "matches_running": running,
            "matches_total": matches.len(),
            "players": state.metrics.players.get(),
            "spectators": state.metrics.spectators.get(),
            "connections": state.metrics.connections.get(),
        }),
    )
}

async fn read_json<T: for<'de> Deserialize<'de> + Default>(
    req: Request<Incoming>,
) -> Result<T, Box<Response<Body>>> {
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| {
            Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_body",
                format!("could not read the body (64 KiB at most): {e}"),
            ))
        })?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "bad_json", e)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMatch {
    game: Option<String>,
    /// Overrides of the game's default settings.
    config: Option<serde_json::Value>,
    seed: Option<u64>,
}

async fn create_match(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    match claims(&req, state) {
        Ok(c) if c.role == Role::Player => {}
        Ok(c) => {
            return unauthorized(AuthError::WrongRole {
                have: c.role,
                action: "create matches",
            });
        }
        Err(e) => return unauthorized(e),
    }
    let body: CreateMatch = match read_json(req).await {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let name = body
        .game
        .unwrap_or_else(|| state.config.default_game.game_name().to_string());
    let game = match (GameConfig::default_for(&name), body.config) {
        (None, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_game",
                format!("unknown game {name:?}: use arena or drift"),
            );
        }
        (Some(default), None) => default,
        (Some(_), Some(overrides)) => {
            match serde_json::from_value::<GameConfig>(json!({ name.clone(): overrides })) {
                Ok(game) => game,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_config",
                        format!("config is not valid {name} settings: {e}"),
                    );
                }
            }
        }
    };
    if let Err(e) = game.validate() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_config",
            format!("{name} settings: {e}"),
        );
    }
    match state.registry.create(game, body.seed) {
        Ok(handle) => json_response(StatusCode::CREATED, &*handle.shared.info.read()),
        Err(e @ (CreateError::TooMany(_) | CreateError::ShuttingDown)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "create_failed", e),
    }
}

#[derive(Debug, Serialize)]
struct ReplayEntry {
    id: MatchId,
    file: String,
    bytes: u64,
    game: String,
    ticks: u64,
    events: u64,
    running: bool,
    clean_close: bool,
    created_at_unix_ms: u64,
    config: GameConfig,
}

async fn list_replays(state: &AppState) -> Response<Body> {
    let dir = state.config.replay_dir();
    let running: Vec<MatchId> = state
        .registry
        .list()
        .into_iter()
        .filter(|m| m.state == matches::MatchState::Running)
        .map(|m| m.id)
        .collect();
    let entries = tokio::task::spawn_blocking(move || {
        matches::replay_files(&dir)
            .into_iter()
            .filter_map(|(id, path)| {
                let reader = ReplayReader::open(&path).ok()?;
                Some(ReplayEntry {
                    id,
                    file: path.file_name()?.to_string_lossy().into_owned(),
                    bytes: reader.health().file_len,
                    game: reader.header().game.clone(),
                    ticks: reader.index().last_tick.0,
                    events: reader.index().events,
                    running: running.contains(&id),
                    clean_close: reader.health().clean_close,
                    created_at_unix_ms: reader.header().created_at_unix_ms,
                    config: reader.header().config.clone(),
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    json_response(StatusCode::OK, &entries)
}

/// A replay named in a URL: its match id and file path, or a 400 response.
fn replay_target(
    id: &str,
    state: &AppState,
) -> Result<(MatchId, std::path::PathBuf), Box<Response<Body>>> {
    let id = parse_id(id).ok_or_else(|| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{id:?} is not a match id"),
        ))
    })?;
    Ok((
        id,
        state
            .config
            .replay_dir()
            .join(matches::replay_file_name(id)),
    ))
}

fn parse_id(id: &str) -> Option<MatchId> {
    id.trim_start_matches('m').parse().ok().map(MatchId)
}

async fn download_replay(id: &str, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut response = respond(StatusCode::OK, "application/octet-stream", bytes);
            let disposition = format!("attachment; filename=\"{}\"", matches::replay_file_name(id));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no replay of match {id}"),
        ),
    }
}

async fn seek_replay(id: &str, tick: Option<&str>, state: &AppState) -> Response<Body> {
    let Some(id) = parse_id(id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{id:?} is not a match id"),
        );
    };
    let Some(tick) = tick.and_then(|t| t.parse().ok()).map(Tick) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_tick",
            "give the tick as ?tick=N",
        );
    };
    let path = state
        .config
        .replay_dir()
        .join(matches::replay_file_name(id));
    if !path.exists() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no replay of match {id}"),
        );
    }
    match tokio::task::spawn_blocking(move || crate::log::replay::seek(&path, tick)).await {
        Ok(Ok(world)) => json_response(StatusCode::OK, &world),
        Ok(Err(crate::log::replay::SeekError::PastTheEnd { last, wanted, .. })) => error(
            StatusCode::NOT_FOUND,
            "past_the_end",
            format!("match {id} ends at tick {last}; tick {wanted} is not in it"),
        ),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, "seek_failed", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "seek_failed", e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestRequest {
    name: Option<String>,
    role: Option<Role>,
}

async fn guest_token(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    if !state.auth.development() {
        return error(
            StatusCode::NOT_FOUND,
            "not_in_development_mode",
            "guest tokens are issued only in development mode (no --auth-secret); issue tokens with `tickforge-server token`",
        );
    }
    let body: GuestRequest = match read_json(req).await {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let name = body
        .name
        .unwrap_or_else(|| format!("guest-{}", state.next_conn_id()));
    let role = body.role.unwrap_or(Role::Player);
    let (token, claims) = state.auth.issue(role, &name, now_unix_s());
    json_response(
        StatusCode::OK,
        &json!({ "token": token, "role": claims.role, "name": claims.sub, "expires_at": claims.exp }),
    )
}

/// Check the WebSocket handshake headers; the `Sec-WebSocket-Accept` value if they are right.
fn websocket_accept(req: &Request<Incoming>) -> Result<String, Box<Response<Body>>> {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err(Box::new(error(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "this endpoint speaks WebSocket only",
        )));
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "websocket_version",
            "Sec-WebSocket-Version must be 13",
        )));
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "websocket_key",
                "Sec-WebSocket-Key is missing",
            ))
        })?;
    Ok(derive_accept_key(key.as_bytes()))
}

fn switching(accept: &str) -> Response<Body> {
    let mut response = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", Bytes::new());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

fn upgrade_player(
    req: Request<Incoming>,
    peer: SocketAddr,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) -> Response<Body> {
    let accept = match websocket_accept(&req) {
        Ok(a) => a,
        Err(response) => return *response,
    };
    let claims = match claims(&req, &state) {
        Ok(c) if c.role == Role::Player => c,
        Ok(c) => {
            return unauthorized(AuthError::WrongRole {
                have: c.role,
                action: "play: spectators use /spectate",
            });
        }
        Err(e) => return unauthorized(e),
    };
    let config = state.ws_config(state.config.max_frame_bytes);
    let handshake = state.config.handshake_timeout;
    state.tasks.clone().spawn(async move {
        let upgraded = match tokio::time::timeout(handshake, hyper::upgrade::on(req)).await {
            Ok(Ok(u)) => u,
            _ => return,
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        tracing::debug!(%peer, player = %claims.sub, "player connected");
        session::run_player(ws, claims, state).await;
        drop(permit);
    });
    switching(&accept)
}

fn upgrade_spectator(
    req: Request<Incoming>,
    id: &str,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) -> Response<Body> {
    let accept = match websocket_accept(&req) {
        Ok(a) => a,
        Err(response) => return *response,
    };
    if let Err(e) = claims(&req, &state) {
        return unauthorized(e);
    }
    let params = match SpectateParams::parse(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_query", e),
    };
    let (id, path) = match replay_target(id, &state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let source = match state.registry.shared(id) {
        Some(shared) => Source {
            path: shared.replay_path.clone(),
            shared: Some(shared),
        },
        None if path.exists() => Source { shared: None, path },
        None => {
            return error(
                StatusCode::NOT_FOUND,
                "match_not_found",
                format!("match {id} does not exist"),
            );
        }
    };
    let config = state.ws_config(1024);
    let handshake = state.config.handshake_timeout;
    state.tasks.clone().spawn(async move {
        let upgraded = match tokio::time::timeout(handshake, hyper::upgrade::on(req)).await {
            Ok(Ok(u)) => u,
            _ => return,
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        spectate::run_spectator(ws, params, source, state).await;
        drop(permit);
    });
    switching(&accept)
}

async fn match_snapshot(id: &str, state: &AppState) -> Response<Body> {
    let Some(id) = parse_id(id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{id:?} is not a match id"),
        );
    };
    let Some(handle) = state.registry.running(id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_running",
            format!("match {id} is not running; use /replays/{}/seek", id.0),
        );
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if handle
        .control
        .send(crate::matches::Control::Snapshot { reply })
        .await
        .is_err()
    {
        return error(
            StatusCode::NOT_FOUND,
            "not_running",
            format!("match {id} has ended"),
        );
    }
    match answer.await {
        Ok(snapshot) => json_response(StatusCode::OK, &snapshot),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "not_running",
            format!("match {id} has ended"),
        ),
    }
}

fn query_u64(req: &Request<Incoming>, key: &str) -> Option<u64> {
    query_param(req, key).and_then(|v| v.parse().ok())
}

/// At most this many events or rejections per request.
const EVENTS_PER_PAGE: usize = 5_000;

async fn replay_events(id: &str, req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let Some(id) = parse_id(id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{id:?} is not a match id"),
        );
    };
    let from = Tick(query_u64(req, "from_tick").unwrap_or(1));
    let to = Tick(query_u64(req, "to_tick").unwrap_or(u64::MAX));
    let path = state
        .config
        .replay_dir()
        .join(matches::replay_file_name(id));
    let events =
        tokio::task::spawn_blocking(move || -> Result<Vec<tickforge_protocol::Event>, String> {
            let mut reader = ReplayReader::open(&path).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for t in reader.ticks_near(from).map_err(|e| e.to_string())? {
                let t = t.map_err(|e| e.to_string())?;
                if t.tick > to || out.len() >= EVENTS_PER_PAGE {
                    break;
                }
                if t.tick >= from {
                    out.extend(t.events);
                }
            }
            Ok(out)
        })
        .await;
    match events {
        Ok(Ok(events)) => json_response(StatusCode::OK, &events),
        Ok(Err(e)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("match {id}: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", e),
    }
}

async fn replay_rejections(id: &str, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let rejections = tokio::task::spawn_blocking(
        move || -> Result<Vec<tickforge_protocol::RejectedCommand>, String> {
            let mut reader = ReplayReader::open(&path).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for t in reader.ticks().map_err(|e| e.to_string())? {
                out.extend(t.map_err(|e| e.to_string())?.rejections);
                if out.len() >= EVENTS_PER_PAGE {
                    break;
                }
            }
            Ok(out)
        },
    )
    .await;
    match rejections {
        Ok(Ok(r)) => json_response(StatusCode::OK, &r),
        Ok(Err(e)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("match {id}: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", e),
    }
}

/// A WebSocket echo on the same upgrade path and tungstenite stack as players (16 MiB
/// messages), for conformance suites. Served only with `--conformance-echo`.
fn upgrade_echo(
    req: Request<Incoming>,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    let accept = match websocket_accept(&req) {
        Ok(a) => a,
        Err(response) => return *response,
    };
    // Echoing a 16 MiB message needs a write buffer that holds it.
    let config = state
        .ws_config(16 * 1024 * 1024)
        .max_write_buffer_size(64 * 1024 * 1024);
    let handshake = state.config.handshake_timeout;
    state.tasks.clone().spawn(async move {
        let Ok(Ok(upgraded)) = tokio::time::timeout(handshake, hyper::upgrade::on(req)).await
        else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        // Read until the stream ends: tungstenite answers pings and the peer's close itself,
        // and flushes that answer while we keep polling.
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
        drop(permit);
    });
    switching(&accept)
}
