//! One port for HTTP and WebSocket.
//!
//! - [`http`]: the HTTP endpoints (health, metrics, matches, replays, guest tokens) and the
//!   WebSocket upgrade, with the token checked before the upgrade completes.
//! - [`session`]: a player's connection; [`spectate`]: a spectator's.
//!
//! Limits enforced here: a global and a per-address connection cap (checked at accept, before
//! any byte is read), the handshake deadline, frame sizes (in tungstenite's config and again in
//! the decoder), and bounded buffers per connection.

mod http;
pub(crate) mod session;
pub mod spectate;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authority;
use crate::config::ServerConfig;
use crate::matches::Registry;
use crate::metrics::Metrics;

/// Everything a connection handler needs.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub registry: Arc<Registry>,
    pub auth: Authority,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    limits: ConnLimits,
    next_conn: AtomicU64,
}

impl AppState {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// tungstenite's settings for one connection: small read and write buffers (so thousands
    /// of idle sockets stay cheap), a bounded write backlog, and the frame size limit.
    pub(crate) fn ws_config(&self, max_message: usize) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(16 * 1024)
            .max_write_buffer_size(512 * 1024)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
    }
}

/// Open connections, globally and per address.
#[derive(Debug)]
struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, BTreeMap<IpAddr, usize>)>,
}

/// Holds one connection's place under the caps until dropped.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    state: Arc<AppState>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.state.limits.open.lock();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
        self.state.metrics.connections.dec();
    }
}

impl ConnLimits {
    fn admit(state: &Arc<AppState>, ip: IpAddr) -> Result<ConnPermit, &'static str> {
        let limits = &state.limits;
        let mut open = limits.open.lock();
        if open.0 >= limits.max_total {
            return Err("the server is at its connection limit");
        }
        let per_ip = open.1.get(&ip).copied().unwrap_or(0);
        if per_ip >= limits.max_per_ip {
            return Err("this address is at its connection limit");
        }
        open.0 += 1;
        open.1.insert(ip, per_ip + 1);
        state.metrics.connections.inc();
        Ok(ConnPermit {
            state: state.clone(),
            ip,
        })
    }
}

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Server {
    /// Bind the listener and set up the registry. Replay files of earlier runs that were not
    /// closed cleanly are recovered first.
    pub async fn bind(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<Server> {
        use anyhow::Context;
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
        let registry = Arc::new(Registry::new(
            config.clone(),
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        let state = Arc::new(AppState {
            auth: Authority::new(config.auth_secret.as_deref(), config.token_ttl),
            limits: ConnLimits {
                max_total: config.max_connections,
                max_per_ip: config.max_connections_per_ip,
                open: Mutex::new((0, BTreeMap::new())),
            },
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
        loop {
            let accepted = tokio::select! {
                () = state.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(found) => found,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
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
    }
}

/// Make every replay file in `dir` whole (a crash leaves the last one without a footer).
fn recover_replays(dir: &std::path::Path, repair: bool) {
    use crate::log::recover::{RecoverMode, recover};
    let mode = if repair {
        RecoverMode::Repair
    } else {
        RecoverMode::Normal
    };
    for (id, path) in crate::matches::replay_files(dir) {
        match recover(&path, mode, crate::log::format::DEFAULT_MAX_RECORD_BYTES) {
            Ok(r) if r.cut_at.is_some() => tracing::warn!(
                match_id = id.0,
                last_tick = r.scan.last_tick.0,
                kept_copy = ?r.kept_copy,
                "replay file of an interrupted match recovered to its last whole tick"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(match_id = id.0, error = %e, "replay file left as found"),
        }
    }
}
