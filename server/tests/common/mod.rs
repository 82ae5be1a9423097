//! Helpers shared by the log tests: record real replay files into temporary directories.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};
use tickforge_protocol::{GameConfig, MatchId, ReplayIndex};
use tickforge_server::headless::{self, HeadlessMatch};
use tickforge_server::log::{FsyncPolicy, LogConfig, ReplayReader, TickRecords};
use tickforge_server::sim::MatchSetup;

pub fn spec(game: &str, players: u32, ticks: u64, seed: u64) -> HeadlessMatch {
    let mut game = GameConfig::default_for(game).expect("known game");
    if let GameConfig::Arena(rules) = &mut game {
        rules.width_mm = 8_000;
        rules.height_mm = 8_000;
        rules.pickup_interval_ticks = 30;
    }
    HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(seed),
            seed,
            tick_rate_hz: 60,
            game,
        },
        players,
        ticks,
        bot_seed: seed,
    }
}

pub fn config(snapshot_every_ticks: u64) -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Never,
        snapshot_every_ticks,
        ..LogConfig::default()
    }
}

/// Record `spec` into `dir/name`, returning the path and the footer's index.
pub fn record(
    dir: &Path,
    name: &str,
    spec: &HeadlessMatch,
    snapshot_every_ticks: u64,
) -> (PathBuf, ReplayIndex) {
    let path = dir.join(name);
    let index = headless::record(
        spec,
        &path,
        config(snapshot_every_ticks),
        1_700_000_000_000,
        |_| {},
    )
    .expect("the match records");
    (path, index)
}

/// Every whole tick of the file at `path`.
pub fn ticks(path: &Path) -> Vec<TickRecords> {
    let mut reader = ReplayReader::open(path).expect("the file opens");
    reader
        .ticks()
        .expect("ticks read")
        .collect::<Result<Vec<_>, _>>()
        .expect("every tick reads")
}
