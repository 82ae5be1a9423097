//! HTTP endpoints and the WebSocket upgrade.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /healthz` | liveness, a one-line status and the limits in force |
//! | `GET /metrics` | Prometheus text |
//! | `GET /matches` · `POST /matches` | list matches (newest first, paged) · create one (`{"game", "config", "seed"}`) |
//! | `GET /replays` · `GET /replays/{id}` | list replay files (newest first, paged) · download one (streamed) |
//! | `GET /replays/{id}/seek?tick=T` | the world at the end of tick T, as JSON |
//! | `POST /auth/guest` | a guest token (development mode only) |
//! | `GET /play` (WebSocket) | a player connection |
//! | `GET /spectate/{id}?from=SEQ\|live&delay=TICKS&format=json\|msgpack` (WebSocket) | a spectator |
//!
//! WebSocket requests carry a token (`Authorization: Bearer …` or `?token=…`), checked before
//! the upgrade completes: a bad one gets `401` and no WebSocket at all.
//!
//! Every request is checked before it is routed: its `Host` must be an IP address, `localhost`
//! or a configured name (so a web page cannot reach a server on loopback by DNS rebinding), and
//! a WebSocket upgrade or a POST from a browser must come from an allowed `Origin`. A request
//! body must arrive within the request deadline. A handler that panics answers `500` and logs
//! the panic; no response carries a filesystem path or a panic message.

#![expect(
    clippy::disallowed_methods,
    reason = "token expiry is wall-clock time; this is I/O, not the simulation"
)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{FutureExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tickforge_protocol::{GameConfig, MatchId, Tick};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

use super::deadline::{DeadlineIo, WriteDeadline};
use super::spectate::{self, Source, SpectateParams};
use super::{AppState, ConnPermit, session};
use crate::auth::{AuthError, Claims, Role};
use crate::config::{OriginPolicy, normalize_origin};
use crate::log::ReplayReader;
use crate::matches::{self, CreateError, Creator, ListState};

pub(super) type Body = BoxBody<Bytes, std::io::Error>;

// The web viewer, embedded so that running the server needs no build step of its own.

/// What a request handler knows about its connection.
#[derive(Debug, Clone)]
struct Conn {
    peer: SocketAddr,
    /// The server's own address on this connection (where its bots connect).
    local: SocketAddr,
    permit: Arc<ConnPermit>,
    /// Switched off when the connection becomes a WebSocket (whose writer has its own).
    deadline: WriteDeadline,
}

/// Serve one TCP connection: HTTP/1.1 with keep-alive, upgradable to WebSocket.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Arc<ConnPermit>,
    state: Arc<AppState>,
) {
    let deadline = WriteDeadline::default();
    let local = stream.local_addr().unwrap_or(state.config.listen);
    let io = TokioIo::new(DeadlineIo::new(
        stream,
        state.config.write_timeout,
        deadline.clone(),
    ));
    let conn = Conn {
        peer,
        local,
        permit,
        deadline,
    };
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |req| {
            let (state, conn) = (state.clone(), conn.clone());
            async move { Ok::<_, Infallible>(answer(req, conn, state).await) }
        })
    };
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.handshake_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service)
        .with_upgrades();
    let mut http = std::pin::pin!(http);
    tokio::select! {
        _ = http.as_mut() => {}
        () = state.shutdown.cancelled() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
        }
    }
}

/// Route one request, with its Host checked first (and its Origin, for a POST or an upgrade).
async fn answer(req: Request<Incoming>, conn: Conn, state: Arc<AppState>) -> Response<Body> {
    if let Err(refused) = check_host(&req, &state) {
        return *refused;
    }
    let what = format!("{} {}", req.method(), req.uri().path());
    guarded(&what, route(req, conn, state)).await
}

/// Run a handler; if it panics, log the panic and answer `500` without it: a bug costs one
/// request, never the connection's task, and its message never reaches the client.
async fn guarded(
    what: &str,
    handler: impl std::future::Future<Output = Response<Body>>,
) -> Response<Body> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(request = %what, panic = %message, "a request handler panicked");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed to answer this request; the cause is in its log",
            )
        }
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

pub(super) fn error(
    status: StatusCode,
    code: &str,
    detail: impl std::fmt::Display,
) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": code, "detail": detail.to_string() }),
    )
}

/// An error whose cause may name files: the cause goes to the log, the client gets `detail`
/// with any path of the data directory removed.
fn failure(
    state: &AppState,
    status: StatusCode,
    code: &str,
    what: &str,
    cause: impl std::fmt::Display,
) -> Response<Body> {
    let cause = cause.to_string();
    tracing::warn!(error = %cause, "{what}");
    error(
        status,
        code,
        format!("{what}: {}", state.config.redact(&cause)),
    )
}

/// A failure inside the server (a task that panicked): logged, and answered `500` without its
/// cause.
fn internal(
    _state: &AppState,
    code: &str,
    what: &str,
    cause: impl std::fmt::Display,
) -> Response<Body> {
    tracing::error!(error = %cause, "{what}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        format!("{what}; the cause is in the server's log"),
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

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower-cased.
fn host_name(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match value.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_string(),
        _ => value,
    }
}

/// A `Host` header is accepted if it names an IP address, `localhost`, or a configured name.
/// A web page that makes its own domain resolve to 127.0.0.1 (DNS rebinding) sends its own
/// domain here, and is refused.
fn check_host(req: &Request<Incoming>, state: &AppState) -> Result<(), Box<Response<Body>>> {
    let Some(value) = req.headers().get(header::HOST) else {
        return Ok(()); // HTTP/1.0 clients; browsers always send one.
    };
    let value = value.to_str().unwrap_or("");
    let host = host_name(value);
    let accepted = host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || state.config.allowed_hosts.contains(&host);
    if accepted {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "Host {value:?} is not a name of this server; an operator adds names with --allowed-hosts"
            ),
        )))
    }
}

/// A browser's request (one with an `Origin`) to open a WebSocket or POST is accepted from the
/// server's own origin, and from the origins the policy allows.
fn check_origin(req: &Request<Incoming>, state: &AppState) -> Result<(), Box<Response<Body>>> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let raw = origin.to_str().unwrap_or("");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase());
    let allowed = match normalize_origin(raw) {
        None => matches!(state.config.allowed_origins, OriginPolicy::Any),
        Some(origin) => {
            let authority = origin.split_once("://").map_or("", |(_, a)| a);
            let same_origin = host.as_deref().is_some_and(|h| {
                h == authority
                    || h.strip_suffix(":80").or_else(|| h.strip_suffix(":443")) == Some(authority)
            });
            same_origin
                || match &state.config.allowed_origins {
                    OriginPolicy::Any => true,
                    OriginPolicy::Listed(list) => list.contains(&origin),
                    OriginPolicy::Loopback(list) => {
                        let name = host_name(authority);
                        list.contains(&origin)
                            || name == "localhost"
                            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                    }
                }
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "pages from {raw:?} may not use this server; an operator allows origins with --allowed-origins"
            ),
        )))
    }
}

async fn route(req: Request<Incoming>, conn: Conn, state: Arc<AppState>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();
    let upgrade = req.headers().contains_key(header::UPGRADE);
    if (method == Method::POST || upgrade)
        && let Err(refused) = check_origin(&req, &state)
    {
        return *refused;
    }
    match (&method, segments.as_slice()) {
        (&Method::GET, ["play"]) if !upgrade && accepts_html(&req) => page("play"),
        (&Method::GET, ["stats"]) => page("stats"),
        (&Method::GET, []) => page(""),
        (&Method::GET, ["style.css"]) => page("style.css"),
        (&Method::GET, ["js", ..]) => page(path.trim_start_matches('/')),
        (&Method::GET, ["api"]) => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            index_text(&state),
        ),
        (
            &Method::GET,
            ["players", _]
            | ["leaderboard"]
            | ["rejections"]
            | ["projections", "dead-letters"]
            | ["matches", _, "summary" | "timeline"],
        ) => super::queries::answer(&req, &segments, &state).await,
        (&Method::GET, ["matches", id]) => match_info(id, &state),
        (&Method::GET, ["matches", id, "snapshot"]) => match_snapshot(id, &state).await,
        (&Method::GET, ["replays", id, "events"]) => replay_events(id, &req, &state).await,
        (&Method::GET, ["replays", id, "rejections"]) => replay_rejections(id, &state).await,
        (&Method::GET, ["healthz"]) => health(&state),
        (&Method::GET, ["metrics"]) => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.render(),
        ),
        (&Method::GET, ["matches"]) => list_matches(&req, &state),
        (&Method::POST, ["matches"]) => create_match(req, &conn, &state).await,
        (&Method::GET, ["replays"]) => list_replays(&req, &state).await,
        (&Method::GET, ["replays", id]) => download_replay(id, &state).await,
        (&Method::GET, ["replays", id, "seek"]) => {
            seek_replay(id, query_param(&req, "tick"), &state).await
        }
        (&Method::POST, ["auth", "guest"]) => guest_token(req, &state).await,
        (&Method::GET, ["play"]) => upgrade_player(req, conn, state),
        (&Method::GET, ["echo"]) if state.config.conformance_echo => upgrade_echo(req, conn, state),
        (&Method::GET, ["spectate", id]) => {
            let id = id.to_string();
            upgrade_spectator(req, &id, conn, state).await
        }
        (
            _,
            [
                "healthz" | "metrics" | "matches" | "replays" | "play" | "spectate" | "players"
                | "leaderboard" | "rejections" | "projections" | "stats",
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
        "tickforge {}\n\nGET  / (the web viewer)\nGET  /play (the play page, in a browser)\nGET  /healthz\nGET  /metrics\nGET  /matches?state=running|finished|all&before=ID&limit=N\nPOST /matches\nGET  /matches/ID\nGET  /matches/ID/snapshot\nGET  /replays?before=ID&limit=N\nGET  /replays/ID\nGET  /replays/ID/seek?tick=T\nGET  /replays/ID/events?from_tick=A&to_tick=B\nGET  /replays/ID/rejections\nGET  /players/NAME\nGET  /leaderboard?game=G&period=all|day|week&limit=N&offset=K\nGET  /matches/ID/summary\nGET  /matches/ID/timeline?interval_ticks=N&from_tick=T&frames=F\nGET  /rejections?player=&rule=&match=&from_ms=&to_ms=&limit=&offset=\nGET  /projections/dead-letters?match=&limit=&offset=\n{}GET  /play (WebSocket)\nGET  /spectate/ID?from=SEQ|live&delay=TICKS&format=json|msgpack (WebSocket)\n",
        env!("CARGO_PKG_VERSION"),
        if state.auth.development() {
            "POST /auth/guest\n"
        } else {
            ""
        }
    )
}

fn health(state: &AppState) -> Response<Body> {
    let (running, finished) = state.registry.counts();
    let config = &state.config;
    json_response(
        StatusCode::OK,
        &json!({
            "status": if state.shutdown.is_cancelled() { "shutting_down" } else { "ok" },
            "matches_running": running,
            "matches_finished_listed": finished,
            "players": state.metrics.players.get(),
            "spectators": state.metrics.spectators.get(),
            "connections": state.metrics.connections.get(),
            "limits": {
                "max_connections": config.max_connections,
                "max_connections_per_ip": config.max_connections_per_ip,
                "max_matches": config.max_matches,
                "max_matches_per_player": config.max_matches_per_player,
                "open_files": state.files,
                "lowered_to_fit_open_files": state.lowered,
            },
        }),
    )
}

/// The body as JSON: at most 64 KiB, arriving within the request deadline.
async fn read_json<T: for<'de> Deserialize<'de> + Default>(
    req: Request<Incoming>,
    state: &AppState,
) -> Result<T, Box<Response<Body>>> {
    let deadline = state.config.handshake_timeout;
    let collect = Limited::new(req.into_body(), 64 * 1024).collect();
    let body = match tokio::time::timeout(deadline, collect).await {
        Err(_) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Err(Box::new(response));
        }
        Ok(Err(e)) => {
            return Err(Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_body",
                format!("could not read the body (64 KiB at most): {e}"),
            )));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
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
    /// Development servers only: bots that join the new match at once (see `devbots`).
    #[serde(default)]
    bots: u32,
    bot_behavior: Option<crate::devbots::Behavior>,
}

async fn create_match(
    req: Request<Incoming>,
    conn: &Conn,
    state: &Arc<AppState>,
) -> Response<Body> {
    let subject = match claims(&req, state) {
        Ok(c) if c.role == Role::Player => c.sub,
        Ok(c) => {
            return unauthorized(AuthError::WrongRole {
                have: c.role,
                action: "create matches",
            });
        }
        Err(e) => return unauthorized(e),
    };
    let body: CreateMatch = match read_json(req, state).await {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let name = body
        .game
        .unwrap_or_else(|| state.config.default_game.clone());
    let games = state.registry.games();
    let Some(factory) = games.get(&name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown_game",
            format!(
                "unknown game {name:?}: use {}",
                games.names().collect::<Vec<_>>().join(" or ")
            ),
        );
    };
    let game = match body.config {
        None => factory.default_config(),
        Some(overrides) => match factory.config_from_json(overrides) {
            Ok(game) => game,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_config", e),
        },
    };
    if body.bots > 0 {
        if !state.auth.development() {
            return error(
                StatusCode::BAD_REQUEST,
                "bots_need_development_mode",
                "bots are for development servers (started without --auth-secret)",
            );
        }
        let room = match &game {
            tickforge_protocol::GameConfig::Arena(c) => c.max_players,
            tickforge_protocol::GameConfig::Drift(c) => c.max_players,
            tickforge_protocol::GameConfig::Game(_) => 0,
        };
        if room == 0 {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_bots",
                format!("bots play arena and drift, not {name}"),
            );
        }
        let most = crate::devbots::MAX_BOTS.min(room - 1);
        if body.bots > most {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_bots",
                format!(
                    "bots = {} is outside 0..={most} (at most {}, and one slot is kept for a player)",
                    body.bots,
                    crate::devbots::MAX_BOTS
                ),
            );
        }
    }
    if let Some(cluster) = state.registry.cluster()
        && body.bots == 0
    {
        let (running, _) = state.registry.counts();
        let best = cluster.place(running, state.config.max_matches);
        if best.node != cluster.node() {
            let request = crate::cluster::directory::CreateRequest {
                game: game.clone(),
                seed: body.seed,
            };
            match cluster.create_on(&best.node, &request).await {
                Ok(info) => return json_response(StatusCode::CREATED, &info),
                Err(e) => {
                    tracing::warn!(node = %best.node, error = %e, "placing a match on another node failed; creating it here");
                }
            }
        }
    }
    let creator = Creator {
        subject,
        address: conn.permit.ip(),
    };
    match state.registry.create(game, body.seed, Some(creator)).await {
        Ok(handle) => {
            if body.bots > 0 {
                crate::devbots::spawn(
                    state.clone(),
                    conn.local,
                    handle.shared.id,
                    handle.shared.clone(),
                    body.bots,
                    body.bot_behavior.unwrap_or(crate::devbots::Behavior::Fight),
                );
            }
            json_response(StatusCode::CREATED, &*handle.shared.info.read())
        }
        Err(e @ CreateError::CreatorLimit { .. }) => {
            error(StatusCode::TOO_MANY_REQUESTS, "too_many_matches", e)
        }
        Err(e @ CreateError::Relay) => error(StatusCode::CONFLICT, "relay", e),
        Err(e @ (CreateError::TooMany(_) | CreateError::ShuttingDown)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e)
        }
        Err(e) => failure(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "create_failed",
            "the match could not be created",
            e,
        ),
    }
}

/// `?before=ID&limit=N` of a list: (ids below, page size, the query to keep in `next` links).
struct Page {
    before: Option<u64>,
    limit: usize,
}

impl Page {
    const DEFAULT: usize = 100;
    const MAX: usize = 1000;

    fn of(req: &Request<Incoming>) -> Result<Page, Box<Response<Body>>> {
        let bad = |what: String| Box::new(error(StatusCode::BAD_REQUEST, "bad_query", what));
        let before = match query_param(req, "before") {
            None => None,
            Some(v) => Some(
                v.trim_start_matches('m')
                    .parse::<u64>()
                    .map_err(|_| bad(format!("before={v}: give a match id")))?,
            ),
        };
        let limit = match query_param(req, "limit") {
            None => Self::DEFAULT,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=Self::MAX).contains(&n) => n,
                _ => return Err(bad(format!("limit={v}: give 1 to {}", Self::MAX))),
            },
        };
        Ok(Page { before, limit })
    }

    /// A JSON array of `items`, with a `Link: <…>; rel="next"` header when more follow the
    /// last of them.
    fn respond<T: Serialize>(
        &self,
        path: &str,
        extra: &str,
        items: &[T],
        last_id: Option<u64>,
        more: bool,
    ) -> Response<Body> {
        let mut response = json_response(StatusCode::OK, &items);
        if more && let Some(last) = last_id {
            let link = format!(
                "<{path}?{extra}before={last}&limit={}>; rel=\"next\"",
                self.limit
            );
            if let Ok(v) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(header::LINK, v);
            }
        }
        response
    }
}

/// An embedded page or script, or 404.
fn page(path: &str) -> Response<Body> {
    match super::web::asset_at(path) {
        Some(a) => respond(StatusCode::OK, a.content_type, a.body),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("/{path} is not a page of this server"),
        ),
    }
}

/// A browser asking for a page, not a client asking for a WebSocket.
fn accepts_html(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// One match as `GET /matches` lists it: running, or among the recently finished.
fn match_info(id: &str, state: &AppState) -> Response<Body> {
    let Some(id) = parse_id(id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("{id:?} is not a match id"),
        );
    };
    if let Some(handle) = state.registry.running(id) {
        return json_response(StatusCode::OK, &*handle.shared.info.read());
    }
    if let Some(cluster) = state.registry.cluster()
        && let Some(entry) = cluster.locate(id)
        && entry.node != cluster.node()
    {
        return json_response(StatusCode::OK, &entry.info);
    }
    let (items, _) = state
        .registry
        .list(ListState::All, id.0.checked_add(1).map(MatchId), 1);
    match items.into_iter().find(|m| m.id == id) {
        Some(info) => json_response(StatusCode::OK, &info),
        None => error(
            StatusCode::NOT_FOUND,
            "match_not_found",
            format!(
                "match {id} is neither running nor among the recently finished; try /replays/{}",
                id.0
            ),
        ),
    }
}

fn list_matches(req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let page = match Page::of(req) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let (which, extra) = match query_param(req, "state") {
        None | Some("all") => (ListState::All, ""),
        Some("running") => (ListState::Running, "state=running&"),
        Some("finished") => (ListState::Finished, "state=finished&"),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("state={other}: use running, finished or all"),
            );
        }
    };
    let (items, more) = state
        .registry
        .list(which, page.before.map(MatchId), page.limit);
    let Some(cluster) = state.registry.cluster() else {
        let last = items.last().map(|m| m.id.0);
        return page.respond("/matches", extra, &items, last, more);
    };
    // Cluster mode: this node's matches, and the directory's on the other nodes.
    let mut all: std::collections::BTreeMap<u64, serde_json::Value> = items
        .iter()
        .filter_map(|m| Some((m.id.0, serde_json::to_value(m).ok()?)))
        .collect();
    for entry in cluster.elsewhere() {
        let running = entry.state == "running" || entry.state == "moving";
        let wanted = match which {
            ListState::All => true,
            ListState::Running => running,
            ListState::Finished => !running,
        };
        let here_running = all
            .get(&entry.id.0)
            .is_some_and(|v| v.get("state").and_then(|s| s.as_str()) == Some("running"));
        if wanted && page.before.is_none_or(|b| entry.id.0 < b) && !here_running {
            all.insert(entry.id.0, entry.info);
        }
    }
    let more = more || all.len() > page.limit;
    let listed: Vec<serde_json::Value> = all.into_values().rev().take(page.limit).collect();
    let last = listed
        .last()
        .and_then(|v| v.get("id"))
        .and_then(|v| v.as_u64());
    page.respond("/matches", extra, &listed, last, more)
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

async fn list_replays(req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let page = match Page::of(req) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let dir = state.config.replay_dir();
    let registry = state.registry.clone();
    let scans = state.scans.clone();
    let (before, limit) = (page.before, page.limit);
    let listed = tokio::task::spawn_blocking(move || {
        let mut files = matches::replay_files(&dir);
        files.retain(|(id, _)| before.is_none_or(|b| id.0 < b));
        files.reverse();
        let more = files.len() > limit;
        files.truncate(limit);
        let entries = files
            .into_iter()
            .filter_map(|(id, path)| {
                // Files with a footer open from header and footer alone; the others (running
                // matches) are scanned once and then only as far as they have grown.
                let reader = ReplayReader::open_cached(&path, &scans).ok()?;
                Some(ReplayEntry {
                    id,
                    file: path.file_name()?.to_string_lossy().into_owned(),
                    bytes: reader.health().file_len,
                    game: reader.header().game.clone(),
                    ticks: reader.index().last_tick.0,
                    events: reader.index().events,
                    running: registry.is_running(id),
                    clean_close: reader.health().clean_close,
                    created_at_unix_ms: reader.header().created_at_unix_ms,
                    config: reader.header().config.clone(),
                })
            })
            .collect::<Vec<_>>();
        (entries, more)
    })
    .await;
    match listed {
        Ok((entries, more)) => {
            let last = entries.last().map(|e| e.id.0);
            page.respond("/replays", "", &entries, last, more)
        }
        Err(e) => internal(state, "read_failed", "the replays could not be listed", e),
    }
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

pub(super) fn parse_id(id: &str) -> Option<MatchId> {
    id.trim_start_matches('m')
        .parse()
        .ok()
        .filter(|&n| n <= matches::MAX_MATCH_ID)
        .map(MatchId)
}

fn no_replay(id: MatchId) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no replay of match {id}"),
    )
}

/// The replay file, streamed: a client that reads slowly holds one chunk of it in memory, and
/// one that stops reading is cut after the write deadline.
async fn download_replay(id: &str, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let opened = tokio::task::spawn_blocking(move || crate::log::reader::open_regular(&path)).await;
    let (file, len) = match opened {
        Ok(Ok(found)) => found,
        Ok(Err(crate::log::LogError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return no_replay(id);
        }
        Ok(Err(e)) => {
            return failure(
                state,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("the replay of match {id} cannot be read"),
                e,
            );
        }
        Err(e) => return internal(state, "read_failed", "the replay could not be opened", e),
    };
    // As long as it was when opened: a running match's file grows meanwhile.
    let reader = tokio::fs::File::from_std(file).take(len);
    let chunks = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks.map_ok(Frame::data))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let disposition = format!("attachment; filename=\"{}\"", matches::replay_file_name(id));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn seek_replay(id: &str, tick: Option<&str>, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let Some(tick) = tick.and_then(|t| t.parse().ok()).map(Tick) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_tick",
            "give the tick as ?tick=N",
        );
    };
    if !path.exists() {
        return no_replay(id);
    }
    let scans = state.scans.clone();
    let registry = state.registry.clone();
    match tokio::task::spawn_blocking(move || {
        crate::log::replay::seek_cached(&path, tick, &scans, registry.games())
    })
    .await
    {
        Ok(Ok(world)) => json_response(StatusCode::OK, &world),
        Ok(Err(crate::log::replay::SeekError::PastTheEnd { last, wanted, .. })) => error(
            StatusCode::NOT_FOUND,
            "past_the_end",
            format!("match {id} ends at tick {last}; tick {wanted} is not in it"),
        ),
        Ok(Err(e)) => failure(
            state,
            StatusCode::UNPROCESSABLE_ENTITY,
            "seek_failed",
            &format!("match {id} cannot be rebuilt at tick {}", tick.0),
            e,
        ),
        Err(e) => internal(state, "seek_failed", "the seek failed", e),
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
    let body: GuestRequest = match read_json(req, state).await {
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

/// Finish the upgrade of `req` in a task of its own and run `session` on the WebSocket; the
/// `101` response to send now.
fn upgrade<F, Fut>(
    req: Request<Incoming>,
    accept: &str,
    conn: Conn,
    state: &Arc<AppState>,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
    session: F,
) -> Response<Body>
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // From here on the WebSocket writer keeps its own deadline, with a close code and reason.
    conn.deadline.disarm();
    let handshake = state.config.handshake_timeout;
    state.tasks.clone().spawn(async move {
        let upgraded = match tokio::time::timeout(handshake, hyper::upgrade::on(req)).await {
            Ok(Ok(u)) => u,
            _ => return,
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        session(ws).await;
        drop(conn);
    });
    switching(accept)
}

fn upgrade_player(req: Request<Incoming>, conn: Conn, state: Arc<AppState>) -> Response<Body> {
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
    let peer = conn.peer;
    let session_state = state.clone();
    upgrade(req, &accept, conn, &state, config, move |ws| async move {
        tracing::debug!(%peer, player = %claims.sub, "player connected");
        session::run_player(ws, claims, session_state).await;
    })
}

async fn upgrade_spectator(
    req: Request<Incoming>,
    id: &str,
    conn: Conn,
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
    // A relay follows the match from the stream (its first spectator starts the mirror).
    if let Some(cluster) = state.registry.cluster()
        && cluster.config().relay
        && state.registry.shared(id).is_none()
        && !path.exists()
        && let Err(e) = cluster.mirror(&state.registry, id).await
    {
        return failure(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_unavailable",
            "the match could not be followed from the event stream",
            e,
        );
    }
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
    let config = state.ws_config(super::spectate::SPECTATOR_FRAME_BYTES);
    let session_state = state.clone();
    upgrade(req, &accept, conn, &state, config, move |ws| {
        spectate::run_spectator(ws, params, source, session_state)
    })
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

/// Read a replay in a blocking task: `read` gets the open file. A file that cannot be read is
/// `404` with the cause (paths removed).
async fn read_replay<T: Serialize + Send + 'static>(
    id: MatchId,
    path: std::path::PathBuf,
    state: &AppState,
    read: impl FnOnce(&mut ReplayReader) -> Result<T, crate::log::LogError> + Send + 'static,
) -> Response<Body> {
    let scans = state.scans.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut reader = ReplayReader::open_cached(&path, &scans)?;
        read(&mut reader)
    })
    .await;
    match result {
        Ok(Ok(value)) => json_response(StatusCode::OK, &value),
        Ok(Err(crate::log::LogError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            no_replay(id)
        }
        Ok(Err(e)) => failure(
            state,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("the replay of match {id} cannot be read"),
            e,
        ),
        Err(e) => internal(state, "read_failed", "the replay could not be read", e),
    }
}

async fn replay_events(id: &str, req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let from = Tick(query_u64(req, "from_tick").unwrap_or(1));
    let to = Tick(query_u64(req, "to_tick").unwrap_or(u64::MAX));
    read_replay(id, path, state, move |reader| {
        let mut out = Vec::new();
        for t in reader.ticks_near(from)? {
            let t = t?;
            if t.tick > to || out.len() >= EVENTS_PER_PAGE {
                break;
            }
            if t.tick >= from {
                out.extend(t.events);
            }
        }
        out.truncate(EVENTS_PER_PAGE);
        Ok(out)
    })
    .await
}

async fn replay_rejections(id: &str, state: &AppState) -> Response<Body> {
    let (id, path) = match replay_target(id, state) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    read_replay(id, path, state, |reader| {
        let mut out = Vec::new();
        for t in reader.ticks()? {
            out.extend(t?.rejections);
            if out.len() >= EVENTS_PER_PAGE {
                break;
            }
        }
        out.truncate(EVENTS_PER_PAGE);
        Ok(out)
    })
    .await
}

/// A WebSocket echo on the same upgrade path and tungstenite stack as players (16 MiB
/// messages), for conformance suites. Served only with `--conformance-echo`.
fn upgrade_echo(req: Request<Incoming>, conn: Conn, state: Arc<AppState>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    let accept = match websocket_accept(&req) {
        Ok(a) => a,
        Err(response) => return *response,
    };
    // Echoing a 16 MiB message needs a write buffer that holds it.
    let config = state
        .ws_config(16 * 1024 * 1024)
        .max_write_buffer_size(64 * 1024 * 1024);
    upgrade(req, &accept, conn, &state, config, |mut ws| async move {
        // Read until the stream ends: tungstenite answers pings and the peer's close itself,
        // and flushes that answer while we keep polling.
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_without_its_message() {
        let response = guarded("GET /boom", async {
            let secret = "/srv/data/replays/match-000001.tfr";
            if !secret.is_empty() {
                panic!("index out of bounds in {secret}");
            }
            respond(StatusCode::OK, "text/plain", "unreachable")
        })
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("internal_error"), "{body}");
        assert!(
            !body.contains("/srv") && !body.contains("out of bounds"),
            "the panic stays in the log: {body}"
        );
    }

    #[test]
    fn host_names_are_read_from_host_headers() {
        assert_eq!(host_name("Example.COM:8080"), "example.com");
        assert_eq!(host_name("[::1]:7878"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("localhost:"), "localhost");
    }
}
