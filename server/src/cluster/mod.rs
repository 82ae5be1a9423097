//! Cluster mode (`--nats URL`): the matches of several nodes on NATS JetStream.
//!
//! What this module owns:
//! - [`records`]: what a match's stream messages hold (the replay format's records), pure.
//! - [`publish`]: the event-stream sink. Every tick's records go to the stream `TICKFORGE`,
//!   subject `tickforge.match.<id>`, each message with a message id (`<id>:<tick>:<ticks>`)
//!   so that a resend is de-duplicated, and with the subject's last sequence as the
//!   expectation, so that only the match's current owner can append.
//! - [`directory`]: the match directory, the JetStream key-value bucket
//!   `tickforge-directory`: one entry per node (its address and room, renewed five times a
//!   lease: the node's lease over all its matches) and one per match (its node, state and
//!   players, written when they change). A node that sees another's lease lapse takes its
//!   matches over.
//! - [`takeover`]: reads a match's records back from the stream, for a takeover or an export.
//! - [`relay`]: spectator relays, which mirror matches from the stream and serve their
//!   spectators with the game nodes' own spectator code.
//! - [`follow`]: the cluster's read models: a relay's projector, one durable consumer of the
//!   whole stream, acknowledging what it has committed.
//!
//! The embedded default has none of this: one process, replay files, no broker.

#![expect(
    clippy::disallowed_methods,
    reason = "leases and publish latency are measured on this node's monotonic clock; no match \
              core or simulation code is here"
)]

pub mod directory;
pub mod follow;
pub mod publish;
pub mod records;
pub mod relay;
pub mod takeover;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream};
use parking_lot::{Mutex, RwLock};
use sha2::Digest;
use tickforge_protocol::MatchId;

pub use directory::{MatchEntry, NodeEntry};

/// The stream every match's records go to.
pub const STREAM: &str = "TICKFORGE";
/// The directory bucket.
pub const DIRECTORY: &str = "tickforge-directory";
/// The bucket of the match-id counter (kept apart: directory entries expire, the counter
/// must not).
pub const IDS: &str = "tickforge-ids";

/// A match's subject in the stream.
pub fn subject(id: MatchId) -> String {
    format!("tickforge.match.{}", id.0)
}

/// The match a stream subject is of.
pub fn match_of(subject: &str) -> Option<MatchId> {
    subject
        .strip_prefix("tickforge.match.")?
        .parse()
        .ok()
        .map(MatchId)
}

/// How a node takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs, comma-separated (any node of the NATS cluster will do).
    pub nats_url: String,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The base URL players and other nodes reach this node at (`http://host:port`).
    pub advertise: String,
    /// Replicas of the stream and the buckets (1, or 3 for a 3-node NATS cluster).
    pub replicas: usize,
    /// How long a match's owner may go without renewing its lease before another node takes
    /// the match over. The owner renews five times per lease, and stops its matches itself
    /// when it could not renew for four fifths of one.
    pub lease: Duration,
    /// A spectator relay: no matches of its own; serves spectators from the stream.
    pub relay: bool,
    /// The least time between two publishes of one match: the ticks of this span go out as
    /// one message (0: every tick as soon as the last one is acknowledged).
    pub batch: Duration,
}

impl ClusterConfig {
    /// How often leases are renewed, node entries refreshed and lapsed leases looked for.
    pub fn renew_every(&self) -> Duration {
        self.lease / 5
    }

    /// The WebSocket URL of this node's players.
    pub fn play_url(&self) -> String {
        play_url(&self.advertise)
    }
}

/// `http://h:p` → `ws://h:p/play`.
pub fn play_url(advertise: &str) -> String {
    let base = advertise.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/play")
}

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("connecting to NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("setting up JetStream {what}: {detail}")]
    Setup { what: String, detail: String },
    #[error("{0}")]
    Nats(String),
    #[error("match {id}'s records in the stream: {detail}")]
    Records { id: MatchId, detail: String },
}

/// `nats://a:4222,nats://b:4222` as the client takes it.
pub fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, ClusterError> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| ClusterError::Connect {
                    url: u.to_string(),
                    detail: format!("not a NATS URL ({e}): give nats://HOST:PORT, comma-separated"),
                })
        })
        .collect()
}

fn nats<E: std::fmt::Display>(e: E) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// What this node holds of each of its matches' leases.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The directory entry's revision after this node's last write.
    pub revision: u64,
    /// When it was last written.
    pub written: Instant,
    /// What was written then, of what changes: (state, players).
    pub wrote: (String, u32),
}

/// A node's connection to the cluster.
pub struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    directory: kv::Store,
    ids: kv::Store,
    token_key: [u8; 32],
    /// The directory as last seen, with when each entry was last seen to change.
    view: RwLock<BTreeMap<String, directory::Seen>>,
    /// The leases of this node's matches.
    leases: Mutex<BTreeMap<MatchId, Lease>>,
    /// Matches this node is taking over now.
    taking: Mutex<std::collections::BTreeSet<MatchId>>,
    /// Held while a relay starts a mirror, so that two spectators start one.
    mirror_lock: tokio::sync::Mutex<()>,
    /// This process, among every run of this node name: a node that restarts is a new
    /// owner, and its earlier run's matches are taken over.
    instance: u64,
    /// When this node's own entry (its lease over all its matches) was last renewed.
    node_renewed: Mutex<Instant>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connect, and create the stream and the buckets if they are not there yet. `secret` is
    /// the cluster's token secret: resume tokens are signed with a key derived from it, so
    /// that any node can resume a match's players.
    pub async fn connect(
        config: ClusterConfig,
        secret: &str,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let servers = server_addrs(&config.nats_url)?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("tickforge {}", config.node))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(5)))
            .connect(servers)
            .await
            .map_err(|e| ClusterError::Connect {
                url: config.nats_url.clone(),
                detail: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        // A cluster that is still electing its leaders answers "no responders" or times out
        // for a few seconds: try again for a bounded while (10 s).
        let mut attempt = 0;
        let (stream, directory, ids) = loop {
            match Self::ensure(&js, config.replicas).await {
                Ok(parts) => break parts,
                Err(detail) if attempt == 39 => {
                    return Err(ClusterError::Setup {
                        what: "stream and buckets".into(),
                        detail,
                    });
                }
                Err(e) => {
                    tracing::info!(error = %e, "JetStream is not ready yet; trying again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"tickforge resume tokens\0");
        hasher.update(secret.as_bytes());
        let token_key: [u8; 32] = hasher.finalize().into();
        Ok(Arc::new(Cluster {
            config,
            client,
            js,
            stream,
            directory,
            ids,
            token_key,
            view: RwLock::new(BTreeMap::new()),
            leases: Mutex::new(BTreeMap::new()),
            taking: Mutex::new(Default::default()),
            mirror_lock: tokio::sync::Mutex::new(()),
            instance: rand::random(),
            node_renewed: Mutex::new(Instant::now()),
            metrics,
        }))
    }

    async fn ensure(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<(stream::Stream, kv::Store, kv::Store), String> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["tickforge.match.*".to_string()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        // A bucket is a stream of its own, made here as the key-value layer would make it
        // (its own helper asks the server for account details in a shape NATS 2.9 does not
        // answer with).
        let bucket = |name: &str, max_age: Duration| stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let mut stores = Vec::new();
        for (name, max_age) in [
            (DIRECTORY, Duration::from_secs(3600)),
            (IDS, Duration::ZERO),
        ] {
            js.get_or_create_stream(bucket(name, max_age))
                .await
                .map_err(|e| format!("bucket {name}: {e}"))?;
            stores.push(
                js.get_key_value(name)
                    .await
                    .map_err(|e| format!("bucket {name}: {e}"))?,
            );
        }
        let ids = stores.pop().ok_or("no bucket")?;
        let directory = stores.pop().ok_or("no bucket")?;
        Ok((stream, directory, ids))
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The key resume tokens are signed with, the same on every node.
    pub fn token_key(&self) -> [u8; 32] {
        self.token_key
    }

    /// The next match id of the whole cluster (a compare-and-set counter in `tickforge-ids`).
    pub async fn next_match_id(&self) -> Result<MatchId, ClusterError> {
        for _ in 0..100 {
            let entry = self.ids.entry("next").await.map_err(nats)?;
            let outcome = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    let current: u64 = std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| {
                            ClusterError::Nats("the match-id counter is not a number".into())
                        })?;
                    self.ids
                        .update("next", (current + 1).to_string().into(), e.revision)
                        .await
                        .map(|_| current)
                        .map_err(|e| e.to_string())
                }
                _ => self
                    .ids
                    .create("next", "2".into())
                    .await
                    .map(|_| 1)
                    .map_err(|e| e.to_string()),
            };
            if let Ok(id) = outcome {
                return Ok(MatchId(id));
            }
        }
        Err(ClusterError::Nats(
            "the match-id counter stayed contended for 100 tries".into(),
        ))
    }
}
