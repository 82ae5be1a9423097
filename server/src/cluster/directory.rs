//! The match directory: the key-value bucket `tickforge-directory`, watched by every node.
//!
//! - `node.<name>`: a node's address, room and process instance ([`NodeEntry`]), written
//!   five times a lease: the node's lease over all of its matches. A node that cannot write it
//!   for four fifths of a lease is cut off: it stops its matches itself and tells their players
//!   to reconnect.
//! - `match.<id>`: a match's node (and its instance), state and players ([`MatchEntry`]),
//!   written by its owner when they change and every two seconds, each time a
//!   compare-and-set on the revision it last wrote. A write that finds another revision, or an
//!   entry that the watch shows naming another node, means another node has taken the match
//!   over: it stops here at once.
//! - A node that has not seen the owner's node entry change for a whole lease (on its own
//!   clock: no clocks are compared across nodes), or sees it renewed by another instance (the
//!   node restarted), claims the owner's running matches with a compare-and-set each and takes
//!   them over ([`super::takeover`]). The stream fences whatever else: only one node can append
//!   after the last tick it holds.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tickforge_protocol::{CloseCode, GameConfig, MatchId};
use tokio_util::sync::CancellationToken;

use super::{Cluster, Lease};

/// How often a match's entry is rewritten when nothing in it changed (its tick, for listings).
const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);
use crate::matches::{ListState, MatchInfo, MatchState, Registry};

/// A node, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node: String,
    /// The base URL of its HTTP and WebSocket port.
    pub url: String,
    pub running: u32,
    pub max_matches: u32,
    /// The process: a new one each time the node starts.
    pub instance: u64,
}

/// A match, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchEntry {
    pub id: MatchId,
    /// The node that owns it.
    pub node: String,
    /// The owner's process ([`NodeEntry::instance`]).
    pub instance: u64,
    /// That node's base URL.
    pub url: String,
    /// `running`, `moving` (a node is taking it over), `ended`, `stopped`.
    pub state: String,
    pub game: String,
    pub players: u32,
    pub max_players: u32,
    /// What the owner's `GET /matches` says of it.
    pub info: serde_json::Value,
}

/// A directory entry as this node last saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub revision: u64,
    /// When this node saw it change (its own monotonic clock).
    pub at: Instant,
    pub entry: Entry,
}

#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Node(NodeEntry),
    Match(MatchEntry),
}

pub(crate) fn match_key(id: MatchId) -> String {
    format!("match.{}", id.0)
}

/// What `POST /matches` on one node asks of another.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    pub game: GameConfig,
    pub seed: Option<u64>,
}

impl Cluster {
    /// Run the node's part of the cluster until `shutdown`: watch the directory, answer
    /// other nodes' requests to create matches, renew leases, take over lapsed ones.
    ///
    /// A relay only watches the directory: it owns no match, takes none over, and is not a
    /// place for new ones.
    pub async fn run(self: Arc<Self>, registry: Arc<Registry>, shutdown: CancellationToken) {
        if self.config.relay {
            self.watch(registry, shutdown).await;
            return;
        }
        tokio::spawn(self.clone().watch(registry.clone(), shutdown.clone()));
        tokio::spawn(
            self.clone()
                .serve_creates(registry.clone(), shutdown.clone()),
        );
        let mut timer = tokio::time::interval(self.config.renew_every());
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = timer.tick() => self.round(&registry).await,
            }
        }
    }

    /// Keep the directory's view current; a match of this node that the directory shows on
    /// another node has been taken over, and stops here.
    async fn watch(self: Arc<Self>, registry: Arc<Registry>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let mut watch = match self.directory.watch_all().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "watching the match directory failed; trying again");
                    tokio::time::sleep(self.config.renew_every()).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = watch.next() => next,
                };
                let Some(Ok(entry)) = next else { break };
                let mut view = self.view.write();
                if entry.operation != async_nats::jetstream::kv::Operation::Put {
                    view.remove(&entry.key);
                    continue;
                }
                let parsed = if entry.key.starts_with("node.") {
                    serde_json::from_slice(&entry.value).ok().map(Entry::Node)
                } else {
                    serde_json::from_slice(&entry.value).ok().map(Entry::Match)
                };
                if let Some(Entry::Match(m)) = &parsed
                    && m.node != self.config.node
                    && self.leases.lock().contains_key(&m.id)
                {
                    let (id, node) = (m.id, m.node.clone());
                    drop(view);
                    self.lose(
                        &registry,
                        id,
                        format!(
                            "match {} moved: node {node} has taken it over; reconnect and resume",
                            id.0
                        ),
                    );
                    view = self.view.write();
                }
                match parsed {
                    Some(parsed) => {
                        view.insert(
                            entry.key,
                            Seen {
                                revision: entry.revision,
                                at: Instant::now(),
                                entry: parsed,
                            },
                        );
                    }
                    None => {
                        tracing::warn!(key = %entry.key, "a directory entry that does not parse")
                    }
                }
            }
        }
    }

    /// One round: this node's entry (its lease), its matches' entries that are due, and the
    /// lapsed leases of others.
    async fn round(self: &Arc<Self>, registry: &Arc<Registry>) {
        let (running, _) = registry.counts();
        let node = NodeEntry {
            node: self.config.node.clone(),
            url: self.config.advertise.clone(),
            running: running as u32,
            max_matches: registry.config().max_matches as u32,
            instance: self.instance,
        };
        if let Ok(json) = serde_json::to_vec(&node) {
            let put = self
                .directory
                .put(format!("node.{}", self.config.node), json.into());
            match tokio::time::timeout(self.config.renew_every(), put).await {
                Ok(Ok(_)) => *self.node_renewed.lock() = Instant::now(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing this node's lease failed")
                }
                Err(_) => tracing::warn!("renewing this node's lease got no answer"),
            }
        }
        let unrenewed = self.node_renewed.lock().elapsed();
        let cut_off = unrenewed >= self.config.lease * 4 / 5;
        let (infos, _) = registry.list(ListState::All, None, usize::MAX);
        let mut due = Vec::new();
        for info in infos {
            let held = self.leases.lock().get(&info.id).cloned();
            // Cut off: neither the node's lease nor this match's entry (a takeover's claim,
            // say) could be written for four fifths of a lease.
            let quiet = held
                .as_ref()
                .is_none_or(|l| l.written.elapsed() >= self.config.lease * 4 / 5);
            match info.state {
                MatchState::Running if cut_off && quiet => {
                    self.lose(
                        registry,
                        info.id,
                        format!(
                            "match {} stopped here: this node is cut off from the cluster (no lease renewal for {} ms); reconnect and resume",
                            info.id.0,
                            unrenewed.as_millis()
                        ),
                    );
                    continue;
                }
                MatchState::Running => {}
                MatchState::Moved => {
                    self.leases.lock().remove(&info.id);
                    continue;
                }
                // Finished here: one last write says so, if the lease is still ours.
                _ if held.is_none() => continue,
                _ => {}
            }
            let changed = held
                .as_ref()
                .is_none_or(|l| l.wrote.0 != info.state.name() || l.wrote.1 != info.players);
            if changed
                || held
                    .as_ref()
                    .is_some_and(|l| l.written.elapsed() >= REFRESH)
            {
                due.push((info, held));
            }
        }
        // The due entries at once, each bounded by a round.
        let limit = self.config.renew_every();
        let writes = due.into_iter().map(|(info, held)| async move {
            let written = tokio::time::timeout(limit, self.write_entry(&info, held.as_ref()))
                .await
                .unwrap_or_else(|_| Err((false, "no answer within a renewal round".into())));
            (info, written)
        });
        for (info, written) in futures_util::future::join_all(writes).await {
            let finished = info.state != MatchState::Running;
            match written {
                Ok(_) if finished => {
                    self.leases.lock().remove(&info.id);
                }
                Ok(_) => {}
                Err((true, _)) => {
                    self.lose(
                        registry,
                        info.id,
                        format!(
                            "match {} moved: another node has taken it over; reconnect and resume",
                            info.id.0
                        ),
                    );
                }
                // Tried again next round; being cut off is the node lease's business.
                Err((false, e)) => {
                    tracing::debug!(match_id = info.id.0, error = %e, "a directory write failed")
                }
            }
        }
        self.metrics
            .leases_held
            .set(self.leases.lock().len() as i64);
        self.look_for_lapsed(registry);
    }

    /// What the directory says of a match of this node.
    fn entry_of(&self, info: &MatchInfo) -> MatchEntry {
        MatchEntry {
            id: info.id,
            node: self.config.node.clone(),
            instance: self.instance,
            url: self.config.advertise.clone(),
            state: info.state.name().to_string(),
            game: info.game.clone(),
            players: info.players,
            max_players: info.max_players,
            info: serde_json::to_value(info).unwrap_or_default(),
        }
    }

    /// Write a match's entry: created if this node holds no lease on it, else a
    /// compare-and-set on the lease's revision, which then moves on. `Err((true, _))` means
    /// another node has it.
    async fn write_entry(
        &self,
        info: &MatchInfo,
        held: Option<&Lease>,
    ) -> Result<u64, (bool, String)> {
        let entry = self.entry_of(info);
        let json = serde_json::to_vec(&entry).map_err(|e| (false, e.to_string()))?;
        let key = match_key(info.id);
        let written = match held {
            Some(lease) => self
                .directory
                .update(&key, json.into(), lease.revision)
                .await
                .map_err(|e| {
                    let lost =
                        e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision;
                    (lost, e.to_string())
                }),
            None => self.directory.create(&key, json.into()).await.map_err(|e| {
                let lost = e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists;
                (lost, e.to_string())
            }),
        }?;
        self.leases.lock().insert(
            info.id,
            Lease {
                revision: written,
                written: Instant::now(),
                wrote: (entry.state, entry.players),
            },
        );
        Ok(written)
    }

    /// List a new match of this node in the directory (and so take its lease) before anyone
    /// is told of it. On failure the next renewal round tries again.
    pub async fn register(&self, info: &MatchInfo) {
        match self.write_entry(info, None).await {
            Ok(_) => {}
            Err((_, e)) => {
                tracing::warn!(match_id = info.id.0, error = %e, "listing the match in the directory failed; trying again")
            }
        }
    }

    /// Match `id` as the directory has it, read from the bucket itself when this node's view
    /// has not heard of it yet; and whether its owner renewed it within a lease.
    pub async fn lookup(&self, id: MatchId) -> Option<(MatchEntry, bool)> {
        if let Some(found) = self.locate_fresh(id) {
            return Some(found);
        }
        let value = self.directory.get(match_key(id)).await.ok()??;
        let entry: MatchEntry = serde_json::from_slice(&value).ok()?;
        Some((entry, true))
    }

    /// The lease of match `id` is gone: stop it here, its players told why.
    fn lose(&self, registry: &Registry, id: MatchId, reason: String) {
        self.leases.lock().remove(&id);
        self.metrics.leases_lost.inc();
        if let Some(shared) = registry.shared(id) {
            tracing::warn!(match_id = id.0, %reason, "lease lost");
            shared.halt(CloseCode::MatchMoved, reason);
        }
    }

    /// Take over the running matches whose owners' leases have lapsed: their node entry has
    /// not changed for a whole lease, or names another instance (the node restarted).
    fn look_for_lapsed(self: &Arc<Self>, registry: &Arc<Registry>) {
        let view = self.view.read();
        let lapsed: Vec<(MatchId, u64)> = view
            .values()
            .filter_map(|seen| match &seen.entry {
                Entry::Match(m)
                    if (m.state == "running" || m.state == "moving")
                        && !self.owner_alive(&view, m, seen.at) =>
                {
                    Some((m.id, seen.revision))
                }
                _ => None,
            })
            .collect();
        drop(view);
        for (id, revision) in lapsed {
            if registry.shared(id).is_some() || self.leases.lock().contains_key(&id) {
                continue;
            }
            let (running, _) = registry.counts();
            if running >= registry.config().max_matches {
                return;
            }
            if !self.taking.lock().insert(id) {
                continue;
            }
            let cluster = self.clone();
            let registry = registry.clone();
            tokio::spawn(async move {
                if let Err(e) = cluster.take_over(&registry, id, revision).await {
                    tracing::warn!(match_id = id.0, error = %e, "taking the match over failed");
                }
                cluster.taking.lock().remove(&id);
            });
        }
    }

    /// Whether match `m`'s owner holds its lease: its node entry changed within a lease, by
    /// the instance the match names. With no node entry to go by, the match entry's own age
    /// (`seen`) counts.
    fn owner_alive(
        &self,
        view: &std::collections::BTreeMap<String, Seen>,
        m: &MatchEntry,
        seen: Instant,
    ) -> bool {
        match view.get(&format!("node.{}", m.node)) {
            Some(Seen {
                at,
                entry: Entry::Node(n),
                ..
            }) => at.elapsed() < self.config.lease && n.instance == m.instance,
            _ => seen.elapsed() < self.config.lease,
        }
    }

    /// Claim match `id` in the directory (a compare-and-set on the revision seen): `Ok(false)`
    /// if another node got there first.
    pub(crate) async fn claim(
        &self,
        id: MatchId,
        revision: u64,
    ) -> Result<bool, super::ClusterError> {
        let Some(mut entry) = self.locate(id) else {
            return Ok(false);
        };
        entry.node = self.config.node.clone();
        entry.instance = self.instance;
        entry.url = self.config.advertise.clone();
        entry.state = "moving".into();
        let json = serde_json::to_vec(&entry).map_err(super::nats)?;
        match self
            .directory
            .update(match_key(id), json.into(), revision)
            .await
        {
            Ok(revision) => {
                self.leases.lock().insert(
                    id,
                    Lease {
                        revision,
                        written: Instant::now(),
                        wrote: (entry.state, entry.players),
                    },
                );
                Ok(true)
            }
            Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                Ok(false)
            }
            Err(e) => Err(super::nats(e)),
        }
    }

    /// Mark match `id`'s entry ended (its records say so, but its owner is gone).
    pub(crate) async fn mark_ended(&self, id: MatchId) {
        let Some(mut entry) = self.locate(id) else {
            return;
        };
        let Some(revision) = self.leases.lock().get(&id).map(|l| l.revision) else {
            return;
        };
        entry.state = "ended".into();
        if let Some(info) = entry.info.as_object_mut() {
            info.insert("state".into(), "ended".into());
        }
        if let Ok(json) = serde_json::to_vec(&entry) {
            let _ = self
                .directory
                .update(match_key(id), json.into(), revision)
                .await;
        }
    }

    /// Give up a claim whose takeover failed.
    pub(crate) fn release(&self, id: MatchId) {
        self.leases.lock().remove(&id);
    }

    /// Match `id` as the directory lists it.
    pub fn locate(&self, id: MatchId) -> Option<MatchEntry> {
        match self.view.read().get(&match_key(id)).map(|s| &s.entry) {
            Some(Entry::Match(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// Match `id` as the directory lists it, and whether its owner renewed it within a lease.
    pub fn locate_fresh(&self, id: MatchId) -> Option<(MatchEntry, bool)> {
        let view = self.view.read();
        match view.get(&match_key(id)) {
            Some(Seen {
                at,
                entry: Entry::Match(m),
                ..
            }) => Some((m.clone(), self.owner_alive(&view, m, *at))),
            _ => None,
        }
    }

    /// Every match the directory lists on other nodes.
    pub fn elsewhere(&self) -> Vec<MatchEntry> {
        self.view
            .read()
            .values()
            .filter_map(|s| match &s.entry {
                Entry::Match(m) if m.node != self.config.node => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// A running match on another node with a free player slot, for quick-join.
    pub fn open_elsewhere(&self) -> Option<MatchEntry> {
        let view = self.view.read();
        view.values()
            .filter_map(|s| match &s.entry {
                Entry::Match(m)
                    if m.node != self.config.node
                        && m.state == "running"
                        && m.players < m.max_players
                        && self.owner_alive(&view, m, s.at) =>
                {
                    Some(m.clone())
                }
                _ => None,
            })
            .min_by_key(|m| m.id)
    }

    /// The node with the most room for a new match (this one when it ties), among those seen
    /// within a lease. `here_running` is this node's count now.
    pub fn place(&self, here_running: usize, here_max: usize) -> NodeEntry {
        let here = NodeEntry {
            node: self.config.node.clone(),
            url: self.config.advertise.clone(),
            running: here_running as u32,
            max_matches: here_max as u32,
            instance: self.instance,
        };
        let here = NodeEntry {
            max_matches: if self.config.relay {
                0
            } else {
                here.max_matches
            },
            ..here
        };
        let room = |n: &NodeEntry| i64::from(n.max_matches) - i64::from(n.running);
        let view = self.view.read();
        let mut best = here;
        for seen in view.values() {
            if seen.at.elapsed() >= self.config.lease {
                continue;
            }
            if let Entry::Node(n) = &seen.entry
                && n.node != best.node
                && n.node != self.config.node
                && room(n) > room(&best)
            {
                best = n.clone();
            }
        }
        best
    }

    /// Ask node `node` to create a match; returns what its `GET /matches` says of it.
    pub async fn create_on(
        &self,
        node: &str,
        request: &CreateRequest,
    ) -> Result<serde_json::Value, String> {
        let payload = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let reply = self
            .client
            .request(format!("tickforge.node.{node}.create"), payload.into())
            .await
            .map_err(|e| format!("node {node} did not answer: {e}"))?;
        let answer: Result<serde_json::Value, String> =
            serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
        answer
    }

    /// Answer other nodes' requests to create a match here.
    async fn serve_creates(self: Arc<Self>, registry: Arc<Registry>, shutdown: CancellationToken) {
        let subject = format!("tickforge.node.{}.create", self.config.node);
        let mut requests = match self.client.subscribe(subject).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot take other nodes' create requests");
                return;
            }
        };
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => return,
                r = requests.next() => r,
            };
            let Some(request) = request else { return };
            let Some(reply) = request.reply.clone() else {
                continue;
            };
            let answer: Result<serde_json::Value, String> =
                match serde_json::from_slice::<CreateRequest>(&request.payload) {
                    Err(e) => Err(format!("a create request that does not parse: {e}")),
                    Ok(req) => match registry.create(req.game, req.seed, None).await {
                        Ok(handle) => {
                            let info = handle.shared.info.read().clone();
                            Ok(serde_json::to_value(&info).unwrap_or_default())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                };
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            let _ = self.client.publish(reply, bytes.into()).await;
        }
    }
}
