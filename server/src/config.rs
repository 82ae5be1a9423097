//! Server configuration: command-line flags, `TICKFORGE_*` environment variables and an
//! optional TOML file, in that order of precedence, over embedded defaults. Every value is
//! validated once, here: each setting has a documented range (in its `--help` line and in
//! [`ServerConfig::default`]'s neighbour [`RANGES`]), and a value outside it is refused at
//! startup with an error that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::log::FsyncPolicy;

/// Flags (and environment variables) of `tickforge-server`. Each is optional here so that a
/// TOML file can supply it; the defaults are in [`ServerConfig::default`], the ranges in
/// [`RANGES`].
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigArgs {
    /// Address to listen on for HTTP and WebSocket [default: 127.0.0.1:7878]
    #[arg(long, env = "TICKFORGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for replay files and server state [default: ./data]
    #[arg(long, env = "TICKFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Simulation ticks per second [default: 60; 1..=1000]
    #[arg(long, env = "TICKFORGE_TICK_RATE")]
    pub tick_rate: Option<u32>,
    /// Game of matches created by quick-join: arena or drift [default: arena]
    #[arg(long, env = "TICKFORGE_GAME")]
    pub game: Option<String>,
    /// Secret for signing tokens (HMAC-SHA256), at least 16 characters. Without it the server
    /// runs in development mode: POST /auth/guest hands out guest tokens, signed with a random
    /// per-process key.
    #[arg(long, env = "TICKFORGE_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds [default: 86400; 1..=31536000]
    #[arg(long, env = "TICKFORGE_TOKEN_TTL_SECS")]
    pub token_ttl_secs: Option<u64>,
    /// fsync policy of replay files: per-tick, interval, interval:MS or never [default: per-tick]
    #[arg(long, env = "TICKFORGE_FSYNC")]
    pub fsync: Option<String>,
    /// Full snapshot in the replay every this many ticks, 0 = none [default: 600; 0..=1000000]
    #[arg(long, env = "TICKFORGE_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Largest client frame, in bytes [default: 4096; 64..=1048576]
    #[arg(long, env = "TICKFORGE_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Seconds a client has to send a whole HTTP request (headers and body), complete the
    /// WebSocket handshake and say Hello [default: 10; 1..=300]
    #[arg(long, env = "TICKFORGE_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds between server pings [default: 15; 1..=3600]
    #[arg(long, env = "TICKFORGE_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Seconds without a pong before the connection is closed; longer than the ping interval
    /// [default: 25; 2..=7200]
    #[arg(long, env = "TICKFORGE_PONG_TIMEOUT_SECS")]
    pub pong_timeout_secs: Option<u64>,
    /// Seconds a write to a client (a WebSocket frame, or any part of an HTTP response) may
    /// stall before the connection is closed [default: 5; 1..=300]
    #[arg(long, env = "TICKFORGE_WRITE_TIMEOUT_SECS")]
    pub write_timeout_secs: Option<u64>,
    /// Messages queued per client before it counts as behind [default: 64; 1..=65536]
    #[arg(long, env = "TICKFORGE_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<usize>,
    /// Seconds a client may stay behind (deltas dropped) before it is disconnected
    /// [default: 5; 1..=3600]
    #[arg(long, env = "TICKFORGE_SLOW_CLIENT_GRACE_SECS")]
    pub slow_client_grace_secs: Option<u64>,
    /// Sustained commands per second per client [default: twice the tick rate; 1..=100000]
    #[arg(long, env = "TICKFORGE_COMMANDS_PER_SEC")]
    pub commands_per_sec: Option<u32>,
    /// Burst of commands a client may send at once [default: the tick rate; 1..=100000]
    #[arg(long, env = "TICKFORGE_COMMAND_BURST")]
    pub command_burst: Option<u32>,
    /// Commands over the limit within 5 s that get a client disconnected
    /// [default: 5 × tick rate; 1..=1000000]
    #[arg(long, env = "TICKFORGE_ABUSE_LIMIT")]
    pub abuse_limit: Option<u32>,
    /// Commands queued per match between ticks [default: 128; 1..=65536]
    #[arg(long, env = "TICKFORGE_MATCH_INBOX")]
    pub match_inbox: Option<usize>,
    /// Kernel send buffer per connection, in bytes: bounds what a client that stops reading
    /// can hold up before it is noticed [default: 65536; 4096..=16777216]
    #[arg(long, env = "TICKFORGE_SOCKET_SEND_BUFFER")]
    pub socket_send_buffer: Option<usize>,
    /// Connections the server accepts at once; lowered at startup to what the open-file limit
    /// allows [default: 20000; 1..=1000000]
    #[arg(long, env = "TICKFORGE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections one IP address may hold at once [default: 8192; 1..=1000000]
    #[arg(long, env = "TICKFORGE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a dropped player keeps their entity, waiting to resume [default: 30; 1..=3600]
    #[arg(long, env = "TICKFORGE_RESUME_GRACE_SECS")]
    pub resume_grace_secs: Option<u64>,
    /// Ticks of deltas kept for resuming clients; a longer gap gets a snapshot
    /// [default: 600; 1..=100000]
    #[arg(long, env = "TICKFORGE_RESUME_WINDOW_TICKS")]
    pub resume_window_ticks: Option<usize>,
    /// Ticks of events kept in memory for spectators; older ones are read from the file
    /// [default: 1200; 1..=100000]
    #[arg(long, env = "TICKFORGE_SPECTATOR_WINDOW_TICKS")]
    pub spectator_window_ticks: Option<usize>,
    /// Milliseconds a live spectator's ticks are gathered before they are written together
    /// (one write instead of one per tick; 0: every tick as it comes) [default: 100; 0..=1000]
    #[arg(long, env = "TICKFORGE_SPECTATOR_BATCH_MS")]
    pub spectator_batch_ms: Option<u64>,
    /// Matches that may run at once; lowered at startup to what the open-file limit allows
    /// [default: 1000; 1..=100000]
    #[arg(long, env = "TICKFORGE_MAX_MATCHES")]
    pub max_matches: Option<usize>,
    /// Running matches that one token subject may have created with POST /matches at once;
    /// more get 429 [default: 8; 1..=100000]
    #[arg(long, env = "TICKFORGE_MAX_MATCHES_PER_PLAYER")]
    pub max_matches_per_player: Option<usize>,
    /// Running matches that one client address may have created with POST /matches at once;
    /// more get 429 [default: 32; 1..=100000]
    #[arg(long, env = "TICKFORGE_MAX_MATCHES_PER_ADDRESS")]
    pub max_matches_per_address: Option<usize>,
    /// Seconds a match may run with no players in it (none connected, none waiting to resume)
    /// before it ends [default: 60; 1..=86400]
    #[arg(long, env = "TICKFORGE_IDLE_MATCH_SECS")]
    pub idle_match_secs: Option<u64>,
    /// Finished matches that GET /matches keeps listing (newest first); their replay files
    /// stay listed under GET /replays [default: 100; 0..=10000]
    #[arg(long, env = "TICKFORGE_FINISHED_MATCHES_KEPT")]
    pub finished_matches_kept: Option<usize>,
    /// Browser origins (scheme://host[:port], comma-separated, or *) that may open WebSockets
    /// and POST, besides the server's own origin. [default: loopback origins in development
    /// mode, none in production]
    #[arg(long, env = "TICKFORGE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Host names (comma-separated) accepted in the Host header besides IP addresses and
    /// localhost, e.g. the name of a reverse proxy in front of the server [default: none]
    #[arg(long, env = "TICKFORGE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Cut a corrupt replay file back at startup even when valid records follow the damage
    #[arg(long, env = "TICKFORGE_REPAIR")]
    #[serde(default)]
    pub repair: bool,
    /// Serve `GET /echo`, a WebSocket echo on the same stack as players, for protocol
    /// conformance suites (Autobahn). Off by default.
    #[arg(long, env = "TICKFORGE_CONFORMANCE_ECHO")]
    #[serde(default)]
    pub conformance_echo: bool,
    /// Cluster mode: NATS server URLs (comma-separated) of a JetStream cluster. Every match's
    /// records also go to its stream, the match directory is its key-value bucket, and matches
    /// of a node that dies are taken over by another. Needs --auth-secret (the same on every
    /// node) and --advertise. [default: none, one process with files only]
    #[arg(long, env = "TICKFORGE_NATS")]
    pub nats: Option<String>,
    /// Cluster mode: this node's name, unique in the cluster (letters, digits, - and _)
    /// [default: the host name and port]
    #[arg(long, env = "TICKFORGE_NODE")]
    pub node: Option<String>,
    /// Cluster mode: the base URL players and other nodes reach this node at, e.g.
    /// http://10.0.0.5:7878 [default: http:// and the listen address]
    #[arg(long, env = "TICKFORGE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Cluster mode: replicas of the stream and the directory (3 for a 3-node NATS cluster)
    /// [default: 1; 1..=5]
    #[arg(long, env = "TICKFORGE_NATS_REPLICAS")]
    pub nats_replicas: Option<usize>,
    /// Cluster mode: milliseconds a match's owner may go without renewing its lease before
    /// another node takes the match over [default: 1500; 300..=60000]
    #[arg(long, env = "TICKFORGE_LEASE_MS")]
    pub lease_ms: Option<u64>,
    /// Cluster mode: milliseconds a match's ticks are gathered into one stream message (at
    /// most one publish per match per span; 0 = one per tick as soon as the last is
    /// acknowledged). Longer spans cost the stream less and leave more ticks unacknowledged
    /// when a node dies [default: 50; 0..=1000]
    #[arg(long, env = "TICKFORGE_STREAM_BATCH_MS")]
    pub stream_batch_ms: Option<u64>,
    /// Cluster mode: run as a spectator relay: no matches of its own; /spectate/ID, /matches
    /// and the web viewer are served from the stream, so that game nodes do not pay for
    /// spectators. Players who connect are sent to the match's node. With read models (the
    /// default), it projects the whole cluster's stream into them.
    #[arg(long, env = "TICKFORGE_RELAY")]
    #[serde(default)]
    pub relay: bool,
    /// The read models' database (docs/QUERIES.md): a SQLite file path, a PostgreSQL URL
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE), or `off` for none. A relative path
    /// is in the data directory [default: read-models.sqlite]
    #[arg(long, env = "TICKFORGE_READ_DB")]
    pub read_db: Option<String>,
    /// Milliseconds the projector gathers durable ticks into one transaction
    /// [default: 100; 10..=10000]
    #[arg(long, env = "TICKFORGE_PROJECTION_BATCH_MS")]
    pub projection_batch_ms: Option<u64>,
    /// Log format on stderr: text or json [default: text]
    #[arg(long, env = "TICKFORGE_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// Which browser origins may open WebSockets and send POSTs. Requests without an `Origin`
/// header (every non-browser client) and requests from the server's own origin are always
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin (`--allowed-origins '*'`).
    Any,
    /// `http(s)://localhost`, `127.0.0.0/8` and `[::1]` on any port, plus these.
    Loopback(Vec<String>),
    /// Only these (lower-cased `scheme://host[:port]`).
    Listed(Vec<String>),
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tick_rate_hz: u32,
    /// The game of quick-join matches and of `POST /matches` without `game`.
    pub default_game: String,
    /// `None` = development mode (guest tokens, random key).
    pub auth_secret: Option<String>,
    pub token_ttl: Duration,
    pub fsync: FsyncPolicy,
    pub snapshot_every_ticks: u64,
    pub max_frame_bytes: usize,
    pub max_depth: usize,
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub write_timeout: Duration,
    pub outbound_queue: usize,
    pub slow_client_grace: Duration,
    pub commands_per_sec: u32,
    pub command_burst: u32,
    pub abuse_limit: u32,
    pub match_inbox: usize,
    pub socket_send_buffer: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub resume_grace: Duration,
    pub resume_window_ticks: usize,
    pub spectator_window_ticks: usize,
    /// How long a live spectator's ticks are gathered into one write.
    pub spectator_batch: Duration,
    pub max_matches: usize,
    pub max_matches_per_player: usize,
    pub max_matches_per_address: usize,
    pub idle_match: Duration,
    pub finished_matches_kept: usize,
    pub allowed_origins: OriginPolicy,
    /// Lower-cased host names accepted in `Host` besides IP literals and `localhost`.
    pub allowed_hosts: Vec<String>,
    pub repair: bool,
    pub conformance_echo: bool,
    pub log_json: bool,
    /// Cluster mode, if configured.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// The read models' database: a SQLite file, relative to the data directory unless
    /// absolute, or PostgreSQL (`None`: no projector, no query API).
    /// [`ServerConfig::read_db_target`] is where it is.
    pub read_db: Option<tickforge_projections::Target>,
    /// How long the projector gathers ticks into one transaction.
    pub projection_batch: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("data"),
            tick_rate_hz: 60,
            default_game: "arena".to_string(),
            auth_secret: None,
            token_ttl: Duration::from_secs(86_400),
            fsync: FsyncPolicy::PerTick,
            snapshot_every_ticks: 600,
            max_frame_bytes: 4096,
            max_depth: 16,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(25),
            write_timeout: Duration::from_secs(5),
            outbound_queue: 64,
            slow_client_grace: Duration::from_secs(5),
            commands_per_sec: 120,
            command_burst: 60,
            abuse_limit: 300,
            match_inbox: 128,
            socket_send_buffer: 64 * 1024,
            max_connections: 20_000,
            max_connections_per_ip: 8192,
            resume_grace: Duration::from_secs(30),
            resume_window_ticks: 600,
            spectator_window_ticks: 1200,
            spectator_batch: Duration::from_millis(100),
            max_matches: 1000,
            max_matches_per_player: 8,
            max_matches_per_address: 32,
            idle_match: Duration::from_secs(60),
            finished_matches_kept: 100,
            allowed_origins: OriginPolicy::Loopback(Vec::new()),
            allowed_hosts: Vec::new(),
            repair: false,
            conformance_echo: false,
            log_json: false,
            cluster: None,
            read_db: Some(tickforge_projections::Target::Sqlite(PathBuf::from(
                "read-models.sqlite",
            ))),
            projection_batch: Duration::from_millis(100),
        }
    }
}

/// The accepted range of every numeric setting, as (flag, lowest, highest). The `--help` text
/// of each flag states the same range; a test keeps the two in step.
pub const RANGES: &[(&str, u64, u64)] = &[
    ("--tick-rate", 1, 1000),
    ("--token-ttl-secs", 1, 31_536_000),
    ("--snapshot-every", 0, 1_000_000),
    ("--max-frame-bytes", 64, 1024 * 1024),
    ("--handshake-timeout-secs", 1, 300),
    ("--ping-interval-secs", 1, 3600),
    ("--pong-timeout-secs", 2, 7200),
    ("--write-timeout-secs", 1, 300),
    ("--outbound-queue", 1, 65_536),
    ("--slow-client-grace-secs", 1, 3600),
    ("--commands-per-sec", 1, 100_000),
    ("--command-burst", 1, 100_000),
    ("--abuse-limit", 1, 1_000_000),
    ("--match-inbox", 1, 65_536),
    ("--socket-send-buffer", 4096, 16 * 1024 * 1024),
    ("--max-connections", 1, 1_000_000),
    ("--max-connections-per-ip", 1, 1_000_000),
    ("--resume-grace-secs", 1, 3600),
    ("--resume-window-ticks", 1, 100_000),
    ("--spectator-window-ticks", 1, 100_000),
    ("--spectator-batch-ms", 0, 1000),
    ("--max-matches", 1, 100_000),
    ("--max-matches-per-player", 1, 100_000),
    ("--max-matches-per-address", 1, 100_000),
    ("--idle-match-secs", 1, 86_400),
    ("--finished-matches-kept", 0, 10_000),
    ("--nats-replicas", 1, 5),
    ("--lease-ms", 300, 60_000),
    ("--stream-batch-ms", 0, 1000),
    ("--projection-batch-ms", 10, 10_000),
];

/// A setting that is out of range or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// `value` (or `default` when unset), checked against the setting's range in [`RANGES`].
fn ranged<T>(setting: &'static str, value: Option<T>, default: T) -> Result<T, ConfigError>
where
    T: TryInto<u64> + TryFrom<u64> + Copy,
{
    let Some((_, lo, hi)) = RANGES.iter().find(|(name, _, _)| *name == setting) else {
        unreachable!("every ranged setting is listed in RANGES: {setting}")
    };
    let Some(v) = value else {
        return Ok(default);
    };
    let wide: u64 = v.try_into().unwrap_or(u64::MAX);
    if wide < *lo || wide > *hi {
        return Err(invalid(
            setting,
            format!("{wide} is outside the accepted range {lo}..={hi}"),
        ));
    }
    T::try_from(wide).map_err(|_| invalid(setting, format!("{wide} does not fit")))
}

fn secs(
    setting: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    ranged(setting, value, default.as_secs()).map(Duration::from_secs)
}

/// Lower-case `scheme://host[:port]`, with the default port of the scheme dropped.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return None;
    }
    let rest = match (scheme, rest.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) if !host.ends_with('[') => {
            host.to_string()
        }
        _ => rest.to_string(),
    };
    Some(format!("{scheme}://{rest}"))
}

impl ConfigArgs {
    /// Read a TOML file of the same settings (kebab-case keys, e.g. `tick-rate = 30`).
    pub fn from_toml_file(path: &Path) -> Result<ConfigArgs, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// These settings where set, else `other`'s.
    pub fn or(self, other: ConfigArgs) -> ConfigArgs {
        macro_rules! pick {
            ($($f:ident),*) => { ConfigArgs {
                $($f: self.$f.or(other.$f),)*
                repair: self.repair || other.repair,
                conformance_echo: self.conformance_echo || other.conformance_echo,
                relay: self.relay || other.relay,
            } };
        }
        pick!(
            listen,
            data_dir,
            tick_rate,
            game,
            auth_secret,
            token_ttl_secs,
            fsync,
            snapshot_every,
            max_frame_bytes,
            handshake_timeout_secs,
            ping_interval_secs,
            pong_timeout_secs,
            write_timeout_secs,
            outbound_queue,
            slow_client_grace_secs,
            commands_per_sec,
            command_burst,
            abuse_limit,
            match_inbox,
            socket_send_buffer,
            max_connections,
            max_connections_per_ip,
            resume_grace_secs,
            resume_window_ticks,
            spectator_window_ticks,
            spectator_batch_ms,
            max_matches,
            max_matches_per_player,
            max_matches_per_address,
            idle_match_secs,
            finished_matches_kept,
            allowed_origins,
            allowed_hosts,
            nats,
            node,
            advertise,
            nats_replicas,
            lease_ms,
            stream_batch_ms,
            read_db,
            projection_batch_ms,
            log_format
        )
    }

    /// Validate and fill in defaults.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let tick_rate_hz = ranged("--tick-rate", self.tick_rate, d.tick_rate_hz)?;
        // Whether the server has a game of that name is checked when it starts, with the games
        // it was built with.
        let default_game = match self.game {
            None => d.default_game,
            Some(name) if !name.is_empty() && name.len() <= 64 => name,
            Some(name) => {
                return Err(invalid("--game", format!("{name:?} is not a game's name")));
            }
        };
        let fsync = match &self.fsync {
            None => d.fsync,
            Some(s) => s.parse().map_err(|e: String| invalid("--fsync", e))?,
        };
        let ping_interval = secs(
            "--ping-interval-secs",
            self.ping_interval_secs,
            d.ping_interval,
        )?;
        let pong_timeout = secs(
            "--pong-timeout-secs",
            self.pong_timeout_secs,
            d.pong_timeout,
        )?;
        if pong_timeout <= ping_interval {
            return Err(invalid(
                "--pong-timeout-secs",
                "must be longer than --ping-interval-secs",
            ));
        }
        if let Some(secret) = &self.auth_secret
            && secret.len() < 16
        {
            return Err(invalid("--auth-secret", "must be at least 16 characters"));
        }
        let log_json = match self.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(invalid(
                    "--log-format",
                    format!("unknown format {other:?}: use text or json"),
                ));
            }
        };
        let development = self.auth_secret.is_none();
        let allowed_origins = origin_policy(self.allowed_origins, development)?;
        let allowed_hosts = self
            .allowed_hosts
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(['/', ' ', '@']) {
                    Err(invalid(
                        "--allowed-hosts",
                        format!("{h:?} is not a host name (give names like game.example.com)"),
                    ))
                } else {
                    Ok(h)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_matches = ranged("--max-matches", self.max_matches, d.max_matches)?;
        let listen = self.listen.unwrap_or(d.listen);
        let node_given = self.node.is_some();
        if self.relay && self.nats.is_none() {
            return Err(invalid(
                "--relay",
                "a relay follows a cluster's stream: give --nats URL too",
            ));
        }
        let cluster = match self.nats {
            None => None,
            Some(url) => {
                if development {
                    return Err(invalid(
                        "--nats",
                        "cluster mode needs --auth-secret, the same on every node (tokens and resume tokens must hold on any node)",
                    ));
                }
                // Empty: named after the port it listens on, once bound.
                let node = self.node.unwrap_or_default();
                if (node_given && node.is_empty())
                    || node.len() > 64
                    || !node
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(invalid(
                        "--node",
                        format!("{node:?}: use 1 to 64 letters, digits, - and _"),
                    ));
                }
                // Empty: http:// and the address it listens on, once bound.
                let advertise = self
                    .advertise
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                if !(advertise.is_empty()
                    || advertise.starts_with("http://")
                    || advertise.starts_with("https://"))
                {
                    return Err(invalid(
                        "--advertise",
                        format!("{advertise:?}: give a base URL such as http://10.0.0.5:7878"),
                    ));
                }
                Some(crate::cluster::ClusterConfig {
                    nats_url: url,
                    node,
                    advertise,
                    replicas: ranged("--nats-replicas", self.nats_replicas, 1)?,
                    lease: Duration::from_millis(ranged("--lease-ms", self.lease_ms, 1500)?),
                    relay: self.relay,
                    batch: Duration::from_millis(ranged(
                        "--stream-batch-ms",
                        self.stream_batch_ms,
                        50,
                    )?),
                })
            }
        };
        let max_connections = ranged("--max-connections", self.max_connections, d.max_connections)?;
        let read_db = match self.read_db.as_deref().map(str::trim) {
            Some("off") => None,
            Some("") => {
                return Err(invalid(
                    "--read-db",
                    "give a SQLite file path, a postgres:// URL, or off for no read models"
                        .to_string(),
                ));
            }
            Some(db) => Some(tickforge_projections::Target::parse(db)),
            None => d.read_db.clone(),
        };
        Ok(ServerConfig {
            listen,
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            tick_rate_hz,
            default_game,
            auth_secret: self.auth_secret,
            token_ttl: secs("--token-ttl-secs", self.token_ttl_secs, d.token_ttl)?,
            fsync,
            snapshot_every_ticks: ranged(
                "--snapshot-every",
                self.snapshot_every,
                d.snapshot_every_ticks,
            )?,
            max_frame_bytes: ranged("--max-frame-bytes", self.max_frame_bytes, d.max_frame_bytes)?,
            max_depth: d.max_depth,
            handshake_timeout: secs(
                "--handshake-timeout-secs",
                self.handshake_timeout_secs,
                d.handshake_timeout,
            )?,
            ping_interval,
            pong_timeout,
            write_timeout: secs(
                "--write-timeout-secs",
                self.write_timeout_secs,
                d.write_timeout,
            )?,
            outbound_queue: ranged("--outbound-queue", self.outbound_queue, d.outbound_queue)?,
            slow_client_grace: secs(
                "--slow-client-grace-secs",
                self.slow_client_grace_secs,
                d.slow_client_grace,
            )?,
            commands_per_sec: ranged(
                "--commands-per-sec",
                self.commands_per_sec,
                2 * tick_rate_hz,
            )?,
            command_burst: ranged("--command-burst", self.command_burst, tick_rate_hz)?,
            abuse_limit: ranged("--abuse-limit", self.abuse_limit, 5 * tick_rate_hz)?,
            match_inbox: ranged("--match-inbox", self.match_inbox, d.match_inbox)?,
            socket_send_buffer: ranged(
                "--socket-send-buffer",
                self.socket_send_buffer,
                d.socket_send_buffer,
            )?,
            max_connections,
            max_connections_per_ip: ranged(
                "--max-connections-per-ip",
                self.max_connections_per_ip,
                d.max_connections_per_ip,
            )?
            .min(max_connections),
            resume_grace: secs(
                "--resume-grace-secs",
                self.resume_grace_secs,
                d.resume_grace,
            )?,
            resume_window_ticks: ranged(
                "--resume-window-ticks",
                self.resume_window_ticks,
                d.resume_window_ticks,
            )?,
            spectator_window_ticks: ranged(
                "--spectator-window-ticks",
                self.spectator_window_ticks,
                d.spectator_window_ticks,
            )?,
            spectator_batch: ranged(
                "--spectator-batch-ms",
                self.spectator_batch_ms,
                d.spectator_batch.as_millis() as u64,
            )
            .map(Duration::from_millis)?,
            max_matches,
            max_matches_per_player: ranged(
                "--max-matches-per-player",
                self.max_matches_per_player,
                d.max_matches_per_player,
            )?,
            max_matches_per_address: ranged(
                "--max-matches-per-address",
                self.max_matches_per_address,
                d.max_matches_per_address,
            )?,
            idle_match: secs("--idle-match-secs", self.idle_match_secs, d.idle_match)?,
            finished_matches_kept: ranged(
                "--finished-matches-kept",
                self.finished_matches_kept,
                d.finished_matches_kept,
            )?,
            allowed_origins,
            allowed_hosts,
            repair: self.repair,
            conformance_echo: self.conformance_echo,
            log_json,
            cluster,
            read_db,
            projection_batch: Duration::from_millis(ranged(
                "--projection-batch-ms",
                self.projection_batch_ms,
                100,
            )?),
        })
    }
}

fn origin_policy(
    listed: Option<Vec<String>>,
    development: bool,
) -> Result<OriginPolicy, ConfigError> {
    let listed: Vec<String> = listed
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.trim().is_empty())
        .collect();
    if listed.iter().any(|o| o.trim() == "*") {
        return Ok(OriginPolicy::Any);
    }
    let origins = listed
        .iter()
        .map(|o| {
            normalize_origin(o).ok_or_else(|| {
                invalid(
                    "--allowed-origins",
                    format!("{o:?} is not an origin: give scheme://host[:port], e.g. https://game.example.com"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if development {
        OriginPolicy::Loopback(origins)
    } else {
        OriginPolicy::Listed(origins)
    })
}

impl ServerConfig {
    /// Where replay files live.
    pub fn replay_dir(&self) -> PathBuf {
        self.data_dir.join("replays")
    }

    /// The read models' database, if the server keeps them.
    pub fn read_db_target(&self) -> Option<tickforge_projections::Target> {
        self.read_db.clone().map(|t| t.in_dir(&self.data_dir))
    }

    /// `text` with every path of the data directory taken out, for messages that reach
    /// clients: a file in the replay directory keeps its name alone, the directory itself is
    /// "the data directory".
    pub fn redact(&self, text: &str) -> String {
        let mut dirs = vec![self.replay_dir(), self.data_dir.clone()];
        if let Ok(absolute) = std::fs::canonicalize(&self.data_dir) {
            dirs.push(absolute.join("replays"));
            dirs.push(absolute);
        }
        // Longest first: the replay directory before the data directory that holds it.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
        let mut out = text.to_string();
        for dir in dirs {
            let dir = dir.display().to_string();
            if dir.is_empty() || dir == "." {
                continue;
            }
            out = out
                .replace(&format!("{dir}/"), "")
                .replace(&dir, "the data directory");
        }
        out
    }

    /// The tick period.
    pub fn tick_period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.tick_rate_hz.max(1)))
    }

    /// Ticks in `d`, at least 1.
    pub fn ticks_in(&self, d: Duration) -> u64 {
        (d.as_millis() as u64)
            .saturating_mul(u64::from(self.tick_rate_hz))
            .checked_div(1000)
            .unwrap_or(0)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        settings: ConfigArgs,
    }

    #[test]
    fn every_range_is_stated_in_its_help_line() {
        let cmd = Cli::command();
        for (flag, lo, hi) in RANGES {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == flag.strip_prefix("--"))
                .unwrap_or_else(|| panic!("{flag} should be a flag"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                help.contains(&format!("{lo}..={hi}")),
                "the help of {flag} should state its range {lo}..={hi}: {help}"
            );
        }
    }

    #[test]
    fn the_defaults_are_within_their_ranges() {
        ConfigArgs::default()
            .resolve()
            .expect("the defaults should be valid");
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("HTTPS://Game.Example.com:443/").as_deref(),
            Some("https://game.example.com")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:7878").as_deref(),
            Some("http://127.0.0.1:7878")
        );
        assert_eq!(normalize_origin("game.example.com"), None);
        assert_eq!(normalize_origin("ftp://x"), None);
    }
}
