//! Connection limits and the open-file budget they must fit in.
//!
//! - [`ConnLimits`]: the global and per-address caps, checked at accept before any byte is read.
//! - [`FileLimit`]: at startup the soft limit on open files is raised to the hard limit, and
//!   the connection and match caps are lowered to what it allows ([`fit_to_files`]), so that
//!   the server answers 503 at its cap instead of failing to accept (which leaves the client
//!   hanging).
//! - [`AcceptBackoff`]: when accepting fails anyway (out of descriptors, out of memory), the
//!   listener waits, longer each time, and says so once in a while instead of spinning.

#![expect(
    clippy::disallowed_methods,
    reason = "accept backoff is timed; this is I/O, not the simulation"
)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::AppState;
use crate::config::ServerConfig;

/// Open connections, globally and per address.
#[derive(Debug)]
pub(super) struct ConnLimits {
    pub(super) max_total: usize,
    pub(super) max_per_ip: usize,
    pub(super) open: Mutex<(usize, BTreeMap<IpAddr, usize>)>,
}

/// Holds one connection's place under the caps until dropped.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    state: Arc<AppState>,
    ip: IpAddr,
}

impl ConnPermit {
    /// The client's address.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }
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
    pub(super) fn new(config: &ServerConfig) -> ConnLimits {
        ConnLimits {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            open: Mutex::new((0, BTreeMap::new())),
        }
    }

    pub(super) fn admit(state: &Arc<AppState>, ip: IpAddr) -> Result<ConnPermit, &'static str> {
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

/// The process's limit on open files, after raising it at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileLimit {
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
    /// The soft limit the process started with.
    pub started_with: u64,
}

impl FileLimit {
    /// Raise the soft limit on open files to the hard limit (a common soft limit is 1,024,
    /// far below what a game server needs). `None` where the platform has no such limit.
    pub fn raise() -> Option<FileLimit> {
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
        if soft < hard
            && let Err(e) = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)
        {
            tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
        }
        let (now, hard_now) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
        Some(FileLimit {
            soft: now,
            hard: hard_now,
            started_with: soft,
        })
    }
}

/// Descriptors kept for the process itself: standard streams, the listener, the runtime's
/// own (epoll, wakers), log files.
pub const RESERVED_FILES: u64 = 64;

/// What [`fit_to_files`] did: the caps asked for, where it lowered them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lowered {
    pub max_connections_from: Option<usize>,
    pub max_matches_from: Option<usize>,
}

/// Lower `config`'s caps to what `limit` allows. After [`RESERVED_FILES`], a running match
/// holds one descriptor (its replay file) and may have at most a quarter of the rest; a
/// connection is counted as two (a download or a spectator reading a file holds a second).
pub fn fit_to_files(config: &mut ServerConfig, limit: FileLimit) -> Lowered {
    let usable = limit.soft.saturating_sub(RESERVED_FILES);
    let mut lowered = Lowered::default();
    let matches = (usable / 4).max(1);
    if (config.max_matches as u64) > matches {
        lowered.max_matches_from = Some(config.max_matches);
        config.max_matches = matches as usize;
    }
    let connections = (usable.saturating_sub(config.max_matches as u64) / 2).max(1);
    if (config.max_connections as u64) > connections {
        lowered.max_connections_from = Some(config.max_connections);
        config.max_connections = connections as usize;
    }
    config.max_connections_per_ip = config.max_connections_per_ip.min(config.max_connections);
    config.max_matches_per_player = config.max_matches_per_player.min(config.max_matches);
    config.max_matches_per_address = config.max_matches_per_address.min(config.max_matches);
    lowered
}

/// Waits after a failed accept: 10 ms, doubling to 1 s, reset by a success. Logs the first
/// failure, then at most one summary every 5 s.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    delay: Duration,
    failures_since_report: u64,
    last_report: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const REPORT_EVERY: Duration = Duration::from_secs(5);

    pub(super) fn new() -> AcceptBackoff {
        AcceptBackoff {
            delay: Self::FIRST,
            failures_since_report: 0,
            last_report: None,
        }
    }

    pub(super) fn succeeded(&mut self) {
        self.delay = Self::FIRST;
    }

    /// Count a failure; returns how long to wait before accepting again.
    pub(super) fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures_since_report += 1;
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= Self::REPORT_EVERY);
        if due {
            tracing::warn!(
                error = %error,
                failures = self.failures_since_report,
                backoff_ms = self.delay.as_millis() as u64,
                "accept failed (out of file descriptors? see the open-file limit in /healthz); backing off"
            );
            self.failures_since_report = 0;
            self.last_report = Some(Instant::now());
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_limit_lowers_the_caps() {
        let mut config = ServerConfig::default();
        let lowered = fit_to_files(
            &mut config,
            FileLimit {
                soft: 1024,
                hard: 1024,
                started_with: 1024,
            },
        );
        assert_eq!(config.max_matches, 240, "a quarter of 1024 − 64");
        assert_eq!(config.max_connections, 360, "(960 − 240) / 2");
        assert_eq!(config.max_connections_per_ip, 360);
        assert_eq!(lowered.max_connections_from, Some(20_000));
        assert_eq!(lowered.max_matches_from, Some(1000));
    }

    #[test]
    fn a_large_file_limit_changes_nothing() {
        let mut config = ServerConfig::default();
        let lowered = fit_to_files(
            &mut config,
            FileLimit {
                soft: 1 << 20,
                hard: 1 << 20,
                started_with: 1024,
            },
        );
        assert_eq!(lowered, Lowered::default());
        assert_eq!(config.max_connections, 20_000);
    }
}
