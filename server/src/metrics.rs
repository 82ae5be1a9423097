//! Server metrics, exported as Prometheus text at `GET /metrics`.
//!
//! Counters and gauges are prometheus-client metrics. Tick durations are also kept in an HDR
//! histogram, so that `/metrics` can state exact p50 / p99 / max tick times (the bucketed
//! histogram is for Prometheus' own quantile estimates). Every bounded queue's depth or
//! overflow is here: match inboxes, client outbound queues, the log writer's backlog.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label naming a match.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MatchLabel {
    pub match_id: u64,
}

/// A label naming a close reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// All of the server's metrics.
pub struct Metrics {
    registry: Registry,
    pub tick_seconds: Histogram,
    pub tick_overruns: Counter,
    pub ticks: Counter,
    pub connections: Gauge,
    pub players: Gauge,
    pub spectators: Gauge,
    pub matches_running: Gauge,
    pub events: Counter,
    pub commands: Counter,
    pub rejections: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub delta_drops: Counter,
    pub inbox_full: Counter,
    pub rate_limited: Counter,
    pub accept_errors: Counter,
    pub spectator_encodes: Counter,
    pub closes: Family<ReasonLabel, Counter>,
    pub fsync_seconds: Histogram,
    pub durable_lag_ticks: Family<MatchLabel, Gauge>,
    pub log_backlog_ticks: Family<MatchLabel, Gauge>,
    pub tick_p50_seconds: Gauge<f64, AtomicU64>,
    pub tick_p99_seconds: Gauge<f64, AtomicU64>,
    pub tick_max_seconds: Gauge<f64, AtomicU64>,
    /// Cluster mode: time from handing a message to JetStream to its acknowledgement.
    pub stream_publish_seconds: Histogram,
    /// Cluster mode: match leases this node holds.
    pub leases_held: Gauge,
    /// Cluster mode: leases this node lost (another node took the match, or it was cut off).
    pub leases_lost: Counter,
    /// Cluster mode: matches this node took over from another.
    pub takeovers: Counter,
    /// Relays: ticks a mirrored match is behind its owner, as the directory says.
    pub relay_lag_ticks: Family<MatchLabel, Gauge>,
    /// Read side: ticks a running match's read models are behind its last tick.
    pub projection_lag_ticks: Family<MatchLabel, Gauge>,
    /// Read side: the most any match's read models are behind.
    pub projection_lag_max_ticks: Gauge,
    /// Read side: one commit of the projector (its rows and checkpoints).
    pub projection_commit_seconds: Histogram,
    /// Read side: commits that failed (the database down, busy or full), each retried.
    pub projection_errors: Counter,
    /// Read side: events that could not be projected (see /projections/dead-letters).
    pub projection_dead_letters: Counter,
    /// Read side, cluster mode: stream messages the cluster's projector has not committed.
    pub projection_stream_pending: Gauge,
    tick_hdr: Mutex<hdrhistogram::Histogram<u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn exponential(start: f64, factor: f64, n: u16) -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(start, factor, n)
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tickforge");
        let m = Metrics {
            tick_seconds: Histogram::new(exponential(0.000_025, 2.0, 14)),
            tick_overruns: Counter::default(),
            ticks: Counter::default(),
            connections: Gauge::default(),
            players: Gauge::default(),
            spectators: Gauge::default(),
            matches_running: Gauge::default(),
            events: Counter::default(),
            commands: Counter::default(),
            rejections: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            delta_drops: Counter::default(),
            inbox_full: Counter::default(),
            rate_limited: Counter::default(),
            accept_errors: Counter::default(),
            spectator_encodes: Counter::default(),
            closes: Family::default(),
            fsync_seconds: Histogram::new(exponential(0.000_05, 2.0, 16)),
            durable_lag_ticks: Family::default(),
            log_backlog_ticks: Family::default(),
            tick_p50_seconds: Gauge::default(),
            tick_p99_seconds: Gauge::default(),
            tick_max_seconds: Gauge::default(),
            stream_publish_seconds: Histogram::new(exponential(0.000_05, 2.0, 16)),
            leases_held: Gauge::default(),
            leases_lost: Counter::default(),
            takeovers: Counter::default(),
            relay_lag_ticks: Family::default(),
            projection_lag_ticks: Family::default(),
            projection_lag_max_ticks: Gauge::default(),
            projection_commit_seconds: Histogram::new(exponential(0.000_05, 2.0, 18)),
            projection_errors: Counter::default(),
            projection_dead_letters: Counter::default(),
            projection_stream_pending: Gauge::default(),
            tick_hdr: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                    .unwrap_or_else(|_| unreachable!("the bounds are valid")),
            ),
            registry: Registry::default(),
        };
        registry.register(
            "tick_duration_seconds",
            "Time to run one tick (all phases)",
            m.tick_seconds.clone(),
        );
        registry.register(
            "tick_duration_p50_seconds",
            "Median tick time since start (HDR histogram)",
            m.tick_p50_seconds.clone(),
        );
        registry.register(
            "tick_duration_p99_seconds",
            "99th percentile tick time since start",
            m.tick_p99_seconds.clone(),
        );
        registry.register(
            "tick_duration_max_seconds",
            "Longest tick since start",
            m.tick_max_seconds.clone(),
        );
        registry.register(
            "tick_overruns",
            "Ticks that took longer than the tick period",
            m.tick_overruns.clone(),
        );
        registry.register("ticks", "Ticks run, over all matches", m.ticks.clone());
        registry.register(
            "stream_publish_seconds",
            "Cluster mode: from publishing a match's ticks to JetStream's acknowledgement",
            m.stream_publish_seconds.clone(),
        );
        registry.register(
            "leases_held",
            "Cluster mode: match leases this node holds",
            m.leases_held.clone(),
        );
        registry.register(
            "leases_lost",
            "Cluster mode: leases lost (taken by another node, or cut off from NATS)",
            m.leases_lost.clone(),
        );
        registry.register(
            "relay_lag_ticks",
            "Relays: ticks a mirrored match is behind its owner",
            m.relay_lag_ticks.clone(),
        );
        registry.register(
            "projection_lag_ticks",
            "Read side: ticks a running match's read models are behind its last tick",
            m.projection_lag_ticks.clone(),
        );
        registry.register(
            "projection_lag_max_ticks",
            "Read side: the most ticks any running match's read models are behind",
            m.projection_lag_max_ticks.clone(),
        );
        registry.register(
            "projection_commit_seconds",
            "Read side: one projector commit (rows and checkpoints, one transaction)",
            m.projection_commit_seconds.clone(),
        );
        registry.register(
            "projection_errors",
            "Read side: projector commits that failed and were retried",
            m.projection_errors.clone(),
        );
        registry.register(
            "projection_dead_letters",
            "Read side: events that could not be projected",
            m.projection_dead_letters.clone(),
        );
        registry.register(
            "projection_stream_pending",
            "Read side, cluster mode: stream messages the cluster's projector has yet to commit",
            m.projection_stream_pending.clone(),
        );
        registry.register(
            "takeovers",
            "Cluster mode: matches taken over from another node",
            m.takeovers.clone(),
        );
        registry.register(
            "connections",
            "Open connections (players, spectators, handshakes)",
            m.connections.clone(),
        );
        registry.register(
            "players_connected",
            "Connected player sessions",
            m.players.clone(),
        );
        registry.register(
            "spectators_connected",
            "Connected spectators",
            m.spectators.clone(),
        );
        registry.register(
            "matches_running",
            "Matches whose tick loop is running",
            m.matches_running.clone(),
        );
        registry.register("events", "Events sequenced", m.events.clone());
        registry.register(
            "commands",
            "Commands received from players",
            m.commands.clone(),
        );
        registry.register(
            "rejections",
            "Commands rejected by the rules",
            m.rejections.clone(),
        );
        registry.register(
            "bytes_in",
            "WebSocket payload bytes received",
            m.bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "WebSocket payload bytes sent",
            m.bytes_out.clone(),
        );
        registry.register(
            "frames_in",
            "WebSocket messages received",
            m.frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "WebSocket messages sent",
            m.frames_out.clone(),
        );
        registry.register(
            "delta_drops",
            "Deltas not queued because a client's outbound queue was full",
            m.delta_drops.clone(),
        );
        registry.register(
            "inbox_full",
            "Commands refused because a match inbox was full",
            m.inbox_full.clone(),
        );
        registry.register(
            "rate_limited",
            "Commands dropped by a client's rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "accept_errors",
            "Connections the listener failed to accept (out of file descriptors, say)",
            m.accept_errors.clone(),
        );
        registry.register(
            "spectator_encodes",
            "Spectator messages encoded (each encoding of a message counts, whoever it is for)",
            m.spectator_encodes.clone(),
        );
        registry.register(
            "closes",
            "Connections closed by the server, by reason",
            m.closes.clone(),
        );
        registry.register(
            "fsync_duration_seconds",
            "Time of each replay-file fsync",
            m.fsync_seconds.clone(),
        );
        registry.register(
            "durable_lag_ticks",
            "Ticks run but not yet durable in the replay file",
            m.durable_lag_ticks.clone(),
        );
        registry.register(
            "log_backlog_ticks",
            "Ticks handed to the log writer but not yet written",
            m.log_backlog_ticks.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Record one tick's duration.
    pub fn observe_tick(&self, took: Duration, period: Duration) {
        self.tick_seconds.observe(took.as_secs_f64());
        self.ticks.inc();
        if took > period {
            self.tick_overruns.inc();
        }
        let _ = self
            .tick_hdr
            .lock()
            .record((took.as_micros() as u64).max(1));
    }

    /// Count a close by its reason.
    pub fn closed(&self, reason: &str) {
        self.closes
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        {
            let hdr = self.tick_hdr.lock();
            if !hdr.is_empty() {
                self.tick_p50_seconds
                    .set(hdr.value_at_quantile(0.5) as f64 / 1e6);
                self.tick_p99_seconds
                    .set(hdr.value_at_quantile(0.99) as f64 / 1e6);
                self.tick_max_seconds.set(hdr.max() as f64 / 1e6);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}
