//! Server configuration: command-line flags, `TICKFORGE_*` environment variables and an
//! optional TOML file, in that order of precedence, over embedded defaults. Every value is
//! validated once, here, with an error that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tickforge_protocol::GameConfig;

use crate::log::FsyncPolicy;

/// Flags (and environment variables) of `tickforge-server`. Each is optional here so that a
/// TOML file can supply it; the defaults are in [`ServerConfig::default`].
#[derive(Args, Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigArgs {
    /// Address to listen on for HTTP and WebSocket [default: 127.0.0.1:7878]
    #[arg(long, env = "TICKFORGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for replay files and server state [default: ./data]
    #[arg(long, env = "TICKFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Simulation ticks per second [default: 60]
    #[arg(long, env = "TICKFORGE_TICK_RATE")]
    pub tick_rate: Option<u32>,
    /// Game of matches created by quick-join: arena or drift [default: arena]
    #[arg(long, env = "TICKFORGE_GAME")]
    pub game: Option<String>,
    /// Secret for signing tokens (HMAC-SHA256). Without it the server runs in development
    /// mode: POST /auth/guest hands out guest tokens, signed with a random per-process key.
    #[arg(long, env = "TICKFORGE_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds [default: 86400]
    #[arg(long, env = "TICKFORGE_TOKEN_TTL_SECS")]
    pub token_ttl_secs: Option<u64>,
    /// fsync policy of replay files: per-tick, interval, interval:MS or never [default: per-tick]
    #[arg(long, env = "TICKFORGE_FSYNC")]
    pub fsync: Option<String>,
    /// Full snapshot in the replay every this many ticks [default: 600]
    #[arg(long, env = "TICKFORGE_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Largest client frame, in bytes [default: 4096]
    #[arg(long, env = "TICKFORGE_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Seconds a connection has to complete the WebSocket handshake and say Hello [default: 10]
    #[arg(long, env = "TICKFORGE_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds between server pings [default: 15]
    #[arg(long, env = "TICKFORGE_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Seconds without a pong before the connection is closed [default: 25]
    #[arg(long, env = "TICKFORGE_PONG_TIMEOUT_SECS")]
    pub pong_timeout_secs: Option<u64>,
    /// Seconds a write to a client may take before it is closed [default: 5]
    #[arg(long, env = "TICKFORGE_WRITE_TIMEOUT_SECS")]
    pub write_timeout_secs: Option<u64>,
    /// Messages queued per client before it counts as behind [default: 64]
    #[arg(long, env = "TICKFORGE_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<usize>,
    /// Seconds a client may stay behind (deltas dropped) before it is disconnected [default: 5]
    #[arg(long, env = "TICKFORGE_SLOW_CLIENT_GRACE_SECS")]
    pub slow_client_grace_secs: Option<u64>,
    /// Sustained commands per second per client [default: twice the tick rate]
    #[arg(long, env = "TICKFORGE_COMMANDS_PER_SEC")]
    pub commands_per_sec: Option<u32>,
    /// Burst of commands a client may send at once [default: the tick rate]
    #[arg(long, env = "TICKFORGE_COMMAND_BURST")]
    pub command_burst: Option<u32>,
    /// Commands over the limit within 5 s that get a client disconnected [default: 5 × tick rate]
    #[arg(long, env = "TICKFORGE_ABUSE_LIMIT")]
    pub abuse_limit: Option<u32>,
    /// Commands queued per match between ticks [default: 128]
    #[arg(long, env = "TICKFORGE_MATCH_INBOX")]
    pub match_inbox: Option<usize>,
    /// Kernel send buffer per connection, in bytes: bounds what a client that stops reading
    /// can hold up before it is noticed [default: 65536]
    #[arg(long, env = "TICKFORGE_SOCKET_SEND_BUFFER")]
    pub socket_send_buffer: Option<usize>,
    /// Connections the server accepts at once [default: 20000]
    #[arg(long, env = "TICKFORGE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections one IP address may hold at once [default: 8192]
    #[arg(long, env = "TICKFORGE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a dropped player keeps their entity, waiting to resume [default: 30]
    #[arg(long, env = "TICKFORGE_RESUME_GRACE_SECS")]
    pub resume_grace_secs: Option<u64>,
    /// Ticks of deltas kept for resuming clients; a longer gap gets a snapshot [default: 600]
    #[arg(long, env = "TICKFORGE_RESUME_WINDOW_TICKS")]
    pub resume_window_ticks: Option<usize>,
    /// Ticks of events kept in memory for spectators; older ones are read from the file [default: 1200]
    #[arg(long, env = "TICKFORGE_SPECTATOR_WINDOW_TICKS")]
    pub spectator_window_ticks: Option<usize>,
    /// Matches that may exist at once (running or waiting for players) [default: 1000]
    #[arg(long, env = "TICKFORGE_MAX_MATCHES")]
    pub max_matches: Option<usize>,
    /// Cut a corrupt replay file back at startup even when valid records follow the damage
    #[arg(long, env = "TICKFORGE_REPAIR")]
    #[serde(default)]
    pub repair: bool,
    /// Serve `GET /echo`, a WebSocket echo on the same stack as players, for protocol
    /// conformance suites (Autobahn). Off by default.
    #[arg(long, env = "TICKFORGE_CONFORMANCE_ECHO")]
    #[serde(default)]
    pub conformance_echo: bool,
    /// Log format on stderr: text or json [default: text]
    #[arg(long, env = "TICKFORGE_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tick_rate_hz: u32,
    pub default_game: GameConfig,
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
    pub max_matches: usize,
    pub repair: bool,
    pub conformance_echo: bool,
    pub log_json: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("data"),
            tick_rate_hz: 60,
            default_game: GameConfig::default_for("arena")
                .unwrap_or(GameConfig::Arena(Default::default())),
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
            max_matches: 1000,
            repair: false,
            conformance_echo: false,
            log_json: false,
        }
    }
}

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
            max_matches,
            log_format
        )
    }

    /// Validate and fill in defaults.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let positive = |setting: &'static str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(invalid(setting, "must be at least 1")),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let tick_rate_hz = positive(
            "--tick-rate",
            self.tick_rate.map(u64::from),
            u64::from(d.tick_rate_hz),
        )?;
        if tick_rate_hz > 1000 {
            return Err(invalid(
                "--tick-rate",
                format!("{tick_rate_hz} Hz is more than the supported 1000 Hz"),
            ));
        }
        let tick_rate_hz = tick_rate_hz as u32;
        let default_game = match &self.game {
            None => d.default_game,
            Some(name) => GameConfig::default_for(name).ok_or_else(|| {
                invalid(
                    "--game",
                    format!("unknown game {name:?}: use arena or drift"),
                )
            })?,
        };
        let fsync = match &self.fsync {
            None => d.fsync,
            Some(s) => s.parse().map_err(|e: String| invalid("--fsync", e))?,
        };
        let secs = |setting, v: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(positive(
                setting,
                v,
                default.as_secs(),
            )?))
        };
        let max_frame_bytes = self.max_frame_bytes.unwrap_or(d.max_frame_bytes);
        if !(64..=1024 * 1024).contains(&max_frame_bytes) {
            return Err(invalid(
                "--max-frame-bytes",
                "must be between 64 and 1048576",
            ));
        }
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
        let commands_per_sec = positive(
            "--commands-per-sec",
            self.commands_per_sec.map(u64::from),
            u64::from(2 * tick_rate_hz),
        )? as u32;
        Ok(ServerConfig {
            listen: self.listen.unwrap_or(d.listen),
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            tick_rate_hz,
            default_game,
            auth_secret: self.auth_secret,
            token_ttl: secs("--token-ttl-secs", self.token_ttl_secs, d.token_ttl)?,
            fsync,
            snapshot_every_ticks: self.snapshot_every.unwrap_or(d.snapshot_every_ticks),
            max_frame_bytes,
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
            outbound_queue: positive(
                "--outbound-queue",
                self.outbound_queue.map(|v| v as u64),
                d.outbound_queue as u64,
            )? as usize,
            slow_client_grace: secs(
                "--slow-client-grace-secs",
                self.slow_client_grace_secs,
                d.slow_client_grace,
            )?,
            commands_per_sec,
            command_burst: positive(
                "--command-burst",
                self.command_burst.map(u64::from),
                u64::from(tick_rate_hz),
            )? as u32,
            abuse_limit: positive(
                "--abuse-limit",
                self.abuse_limit.map(u64::from),
                u64::from(5 * tick_rate_hz),
            )? as u32,
            match_inbox: positive(
                "--match-inbox",
                self.match_inbox.map(|v| v as u64),
                d.match_inbox as u64,
            )? as usize,
            socket_send_buffer: positive(
                "--socket-send-buffer",
                self.socket_send_buffer.map(|v| v as u64),
                d.socket_send_buffer as u64,
            )? as usize,
            max_connections: positive(
                "--max-connections",
                self.max_connections.map(|v| v as u64),
                d.max_connections as u64,
            )? as usize,
            max_connections_per_ip: positive(
                "--max-connections-per-ip",
                self.max_connections_per_ip.map(|v| v as u64),
                d.max_connections_per_ip as u64,
            )? as usize,
            resume_grace: secs(
                "--resume-grace-secs",
                self.resume_grace_secs,
                d.resume_grace,
            )?,
            resume_window_ticks: positive(
                "--resume-window-ticks",
                self.resume_window_ticks.map(|v| v as u64),
                d.resume_window_ticks as u64,
            )? as usize,
            spectator_window_ticks: positive(
                "--spectator-window-ticks",
                self.spectator_window_ticks.map(|v| v as u64),
                d.spectator_window_ticks as u64,
            )? as usize,
            max_matches: positive(
                "--max-matches",
                self.max_matches.map(|v| v as u64),
                d.max_matches as u64,
            )? as usize,
            repair: self.repair,
            conformance_echo: self.conformance_echo,
            log_json,
        })
    }
}

impl ServerConfig {
    /// Where replay files live.
    pub fn replay_dir(&self) -> PathBuf {
        self.data_dir.join("replays")
    }

    /// The tick period.
    pub fn tick_period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.tick_rate_hz))
    }

    /// Ticks in `d`, at least 1.
    pub fn ticks_in(&self, d: Duration) -> u64 {
        (d.as_millis() as u64 * u64::from(self.tick_rate_hz) / 1000).max(1)
    }
}
