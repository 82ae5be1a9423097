//! One port for HTTP and WebSocket.
//!
//! - [`http`]: the HTTP endpoints (health, metrics, matches, replays, guest tokens) and the
//!   WebSocket upgrade, with the token, the Host and the Origin checked before the upgrade.
//! - [`session`]: a player's connection; [`spectate`]: a spectator's.
//! - [`limits`]: the connection caps, and the open-file budget they are fitted to.
//! - [`deadline`]: a socket whose writes may not stall, so that a client that stops reading
//!   an HTTP response is cut.
//!
//! Limits enforced here: a global and a per-address connection cap (checked at accept, before
//! any byte is read, and lowered at startup to what the open-file limit allows), deadlines for
//! request headers and bodies, for stalled writes and for the handshake, frame sizes (in
//! tungstenite's config and again in the decoder), and bounded buffers per connection.

mod deadline;
mod http;
pub mod limits;
mod queries;
pub(crate) mod session;
pub mod spectate;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authority;
use crate::cluster::Cluster;
use crate::config::ServerConfig;
use crate::log::{LogService, ScanCache, ServiceConfig};
use crate::matches::{Registry, SinkFactory};
use crate::metrics::Metrics;
use crate::sim::Games;
pub(crate) use limits::ConnPermit;
use limits::{AcceptBackoff, ConnLimits, FileLimit, Lowered};

/// Everything a connection handler needs.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub registry: Arc<Registry>,
    pub auth: Authority,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Scans of replay files without a footer, shared by every reader of them.
    pub scans: Arc<ScanCache>,
    /// The open-file limit the caps were fitted to, if the platform has one.
    pub files: Option<FileLimit>,
    /// Which caps the open-file limit lowered, and from what.
    pub lowered: Lowered,
    /// The read models and their projector, unless `--read-db off`.
    pub read_models: Option<Arc<crate::projection::ReadModels>>,
    limits: ConnLimits,
    next_conn: AtomicU64,
}

impl AppState {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// tungstenite's settings for one connection: small read and write buffers (so thousands
    /// of idle sockets stay cheap, and because tungstenite zeroes the read buffer's free part
    /// before every read: a command is tens of bytes), a bounded write backlog, and the frame
    /// size limit.
    pub(crate) fn ws_config(&self, max_message: usize) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(16 * 1024)
            .max_write_buffer_size(512 * 1024)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
    }
}

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
}

/// A server with the games of the caller's choosing:
///
/// ```no_run
/// # use tickforge_server::config::ServerConfig;
/// # use tickforge_server::net::Server;
/// # fn with(tag: impl tickforge_server::sim::GameDef) -> anyhow::Result<()> {
/// Server::builder().game("tag", tag).serve(ServerConfig::default())
/// # }
/// ```
pub struct ServerBuilder {
    games: Games,
    sinks: Vec<SinkFactory>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("games", &self.games)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl ServerBuilder {
    /// Also run `game` as `name` (matches of it are created with `{"game": name}`, and
    /// `--game name` makes it the quick-join game).
    pub fn game(mut self, name: &str, game: impl crate::sim::GameDef) -> ServerBuilder {
        self.games = self.games.with(name, game);
        self
    }

    /// Run exactly these games (instead of the reference games and those added).
    pub fn games(mut self, games: Games) -> ServerBuilder {
        self.games = games;
        self
    }

    /// Also hand every tick of every match to a sink that `make` builds for each match (a
    /// publisher of the event stream, say).
    pub fn sink(mut self, make: SinkFactory) -> ServerBuilder {
        self.sinks.push(make);
        self
    }

    /// Bind the listener (see [`Server::bind`]); serve with [`Server::run`].
    pub async fn bind(
        self,
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Server> {
        Server::bind_with(config, self.games, self.sinks, shutdown).await
    }

    /// Serve until SIGINT or SIGTERM, as `tickforge-server` does: its own runtime, logging to
    /// stderr, the banner on stdout, a graceful shutdown.
    pub fn serve(self, config: ServerConfig) -> anyhow::Result<()> {
        crate::cli::serve_with(config, self.games, self.sinks)
    }
}

impl Server {
    /// A server with the reference games, to which more can be added.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            games: crate::game::builtin(),
            sinks: Vec::new(),
        }
    }

    /// Bind the listener and set up the registry. Replay files of earlier runs that were not
    /// closed cleanly are recovered first.
    pub async fn bind(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<Server> {
        Server::bind_with(config, crate::game::builtin(), Vec::new(), shutdown).await
    }

    /// [`Server::bind`] with these games instead of the reference ones, and these sinks
    /// beside the built-in ones in every match.
    pub async fn bind_with(
        mut config: ServerConfig,
        games: Games,
        sinks: Vec<SinkFactory>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Server> {
        use anyhow::Context;
        if games.get(&config.default_game).is_none() {
            anyhow::bail!(
                "--game: this server has no game called {:?}; it has {}",
                config.default_game,
                games.names().collect::<Vec<_>>().join(", ")
            );
        }
        let files = FileLimit::raise();
        let lowered = match files {
            Some(limit) => limits::fit_to_files(&mut config, limit),
            None => Lowered::default(),
        };
        let config = Arc::new(config);
        std::fs::create_dir_all(config.replay_dir()).with_context(|| {
            format!(
                "creating the replay directory {}",
                config.replay_dir().display()
            )
        })?;
        let dir = config.replay_dir();
        let repair = config.repair;
        tokio::task::spawn_blocking(move || recover_replays(&dir, repair)).await?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "listening on {} (is another server running? use --listen to pick another address)",
                config.listen
            )
        })?;
        let metrics = Metrics::new();
        let tasks = TaskTracker::new();
        // One writer thread for every match's log: a round (one sync) per tick period.
        let (log, _writer_thread) = LogService::start(ServiceConfig {
            round: config.tick_period(),
            ..ServiceConfig::default()
        })?;
        let mut sinks = sinks;
        let mut config = config;
        if let Some(cc) = &config.cluster {
            // Named and advertised after the address bound, unless told otherwise.
            let mut cc = cc.clone();
            let bound = listener.local_addr()?;
            if cc.node.is_empty() {
                cc.node = format!("node-{}", bound.port());
            }
            if cc.advertise.is_empty() {
                cc.advertise = format!("http://{bound}");
            }
            let mut fixed = (*config).clone();
            fixed.cluster = Some(cc);
            config = Arc::new(fixed);
        }
        let cluster = match &config.cluster {
            None => None,
            Some(cc) => {
                let secret = config.auth_secret.as_deref().unwrap_or_default();
                let cluster = Cluster::connect(cc.clone(), secret, metrics.clone()).await?;
                if !cc.relay {
                    sinks.push(cluster.sink_factory());
                }
                tracing::info!(node = %cc.node, nats = %cc.nats_url, "cluster mode");
                Some(cluster)
            }
        };
        // The read models: the projector follows every match this node plays; a relay, which
        // plays none, follows the whole cluster's stream instead.
        let read_models = match config.read_db_target() {
            Some(db) => {
                let models = crate::projection::ReadModels::open(&db).with_context(|| {
                    format!(
                        "--read-db: opening the read models at {db} (use --read-db off to run without them)"
                    )
                })?;
                Some(Arc::new(models))
            }
            None => None,
        };
        match (&read_models, &cluster) {
            (Some(models), Some(cluster)) if cluster.config().relay => {
                tokio::spawn(cluster.clone().follow(
                    models.db().clone(),
                    metrics.clone(),
                    config.projection_batch,
                    shutdown.clone(),
                ));
            }
            (Some(models), _) => {
                sinks.push(models.feeds().sink_factory(metrics.clone()));
                models.start(
                    crate::projection::LiveConfig {
                        db: models.db().clone(),
                        replay_dir: config.replay_dir(),
                        batch: config.projection_batch,
                    },
                    metrics.clone(),
                    shutdown.clone(),
                )?;
            }
            (None, _) => {}
        }
        let registry = Arc::new(Registry::new(
            config.clone(),
            Arc::new(games),
            log,
            sinks,
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        if let Some(cluster) = cluster {
            registry.join_cluster(cluster.clone());
            tokio::spawn(cluster.run(registry.clone(), shutdown.clone()));
        }
        let state = Arc::new(AppState {
            auth: Authority::new(config.auth_secret.as_deref(), config.token_ttl),
            limits: ConnLimits::new(&config),
            scans: Arc::new(ScanCache::default()),
            files,
            lowered,
            read_models,
            config,
            registry,
            metrics,
            shutdown,
            tasks,
            next_conn: AtomicU64::new(1),
        });
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serve until `shutdown` is cancelled; then stop accepting, let every match finish its
    /// tick and close its log, close every connection with a reason, and wait for them all.
    pub async fn run(self) {
        let Server { listener, state } = self;
        let mut backoff = AcceptBackoff::new();
        loop {
            let accepted = tokio::select! {
                () = state.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(found) => {
                    backoff.succeeded();
                    found
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait longer each time, keep serving.
                    state.metrics.accept_errors.inc();
                    let wait = backoff.failed(&e);
                    tokio::select! {
                        () = state.shutdown.cancelled() => break,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            // A fixed send buffer (no autotuning into megabytes): a client that stops reading
            // fills it within seconds and is then noticed.
            let _ = socket2::SockRef::from(&stream)
                .set_send_buffer_size(state.config.socket_send_buffer);
            match ConnLimits::admit(&state, peer.ip()) {
                Ok(permit) => {
                    state.tasks.spawn(http::serve_connection(
                        stream,
                        peer,
                        Arc::new(permit),
                        state.clone(),
                    ));
                }
                Err(why) => {
                    state.metrics.closed("too_many_connections");
                    state.tasks.spawn(async move {
                        let mut stream = stream;
                        let body = format!("{{\"error\":\"too_many_connections\",\"detail\":\"{why}\"}}");
                        let response = format!(
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
                    });
                }
            }
        }
        drop(listener);
        state.tasks.close();
        if tokio::time::timeout(std::time::Duration::from_secs(15), state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 15 s of shutdown");
        }
        // The projector commits the matches' last ticks, then stops.
        if let Some(models) = state.read_models.clone() {
            let _ = tokio::task::spawn_blocking(move || models.join()).await;
        }
    }
}

/// Make every replay file in `dir` whole (a crash leaves the last one without a footer), and
/// give each that lacks one its footer, so that listing and reading it later needs no scan.
/// Anything that is not a regular file is left alone, with an error in the log.
fn recover_replays(dir: &std::path::Path, repair: bool) {
    use crate::log::recover::{RecoverMode, recover, seal};
    let mode = if repair {
        RecoverMode::Repair
    } else {
        RecoverMode::Normal
    };
    for (id, path) in crate::matches::replay_files(dir) {
        match recover(&path, mode, crate::log::format::DEFAULT_MAX_RECORD_BYTES) {
            Ok(r) => {
                if r.cut_at.is_some() {
                    tracing::warn!(
                        match_id = id.0,
                        last_tick = r.scan.last_tick.0,
                        kept_copy = ?r.kept_copy,
                        "replay file of an interrupted match recovered to its last whole tick"
                    );
                }
                let whole = crate::log::Scan {
                    file_len: r.scan.whole_end,
                    tail_bytes: 0,
                    damage: None,
                    ..r.scan
                };
                if let Err(e) = seal(&path, &whole) {
                    tracing::error!(match_id = id.0, error = %e, "could not write the footer of a recovered replay file");
                }
            }
            Err(e) => tracing::error!(match_id = id.0, error = %e, "replay file left as found"),
        }
    }
}
