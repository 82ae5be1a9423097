//! Event log costs. `cargo bench -p tickforge-benches --bench log`
//!
//! - append: events framed (MessagePack + CRC32C) and written through the writer thread to a
//!   real file, buffered (fsync policy `never`), measured end to end until `close` returns;
//! - verify: re-simulating a recorded 10-minute 16-player arena match (36,000 ticks at 60 Hz);
//! - seek: the world at the middle tick of that match, through the nearest snapshot.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use tickforge_protocol::{
    ArenaConfig, Cause, CommandId, EVENT_SCHEMA_VERSION, EntityId, Event, EventKind, GameConfig,
    MatchId, PlayerId, Record, Seq, StateHash, Tick,
};
use tickforge_server::headless::{self, HeadlessMatch};
use tickforge_server::log::format::encode_record;
use tickforge_server::log::{FsyncPolicy, LogConfig, LogWriter, TickBatch};
use tickforge_server::sim::MatchSetup;

const EVENTS_PER_TICK: u64 = 100;
const TICKS: u64 = 1_000;

fn batch(tick: u64) -> TickBatch {
    let events = (0..EVENTS_PER_TICK)
        .map(|i| Event {
            match_id: MatchId(1),
            seq: Seq((tick - 1) * EVENTS_PER_TICK + i + 1),
            tick: Tick(tick),
            v: EVENT_SCHEMA_VERSION,
            cause: Cause::Command {
                player: PlayerId(i as u32 % 64 + 1),
                id: CommandId(tick as u32),
            },
            kind: EventKind::PlayerSteered {
                entity: EntityId(i as u32 % 64 + 1),
                vx: 70,
                vy: -70,
            },
        })
        .collect();
    TickBatch {
        tick: Tick(tick),
        events,
        rejections: vec![],
        hash: StateHash(tick),
        parts: vec![1; 11],
        snapshot: None,
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append");
    let one = batch(1);
    let mut buf = Vec::with_capacity(1 << 20);
    group.throughput(Throughput::Elements(EVENTS_PER_TICK));
    group.bench_function("frame_100_events", |b| {
        b.iter(|| {
            buf.clear();
            for e in &one.events {
                encode_record(&Record::Event(e.clone()), &mut buf);
            }
            black_box(buf.len())
        })
    });
    let batches: Vec<TickBatch> = (1..=TICKS).map(batch).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = tickforge_server::game::builtin()
        .sim(&MatchSetup {
            match_id: MatchId(1),
            seed: 1,
            tick_rate_hz: 60,
            game: GameConfig::default_for("arena").expect("arena"),
        })
        .expect("sim");
    let header = headless::header_for(&sim, 0, 0);
    let mut n = 0;
    group.throughput(Throughput::Elements(EVENTS_PER_TICK * TICKS));
    group.sample_size(20);
    group.bench_function("writer_thread_100k_events_to_file", |b| {
        b.iter_batched(
            || {
                n += 1;
                (dir.path().join(format!("append-{n}.tfr")), batches.clone())
            },
            |(path, batches)| {
                let config = LogConfig {
                    fsync: FsyncPolicy::Never,
                    queue_ticks: 2048,
                    snapshot_every_ticks: 0,
                    ..LogConfig::default()
                };
                let writer = LogWriter::create(&path, &header, config).expect("creates");
                for batch in batches {
                    writer.append(batch).expect("queue has room");
                }
                writer.close().expect("closes")
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn recorded_match(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ten-minutes.tfr");
    // Default rules, but no kill limit: the match runs its full 10 minutes (the time limit).
    let game = GameConfig::Arena(ArenaConfig {
        score_limit: u32::MAX,
        ..ArenaConfig::default()
    });
    let spec = HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(9),
            seed: 9,
            tick_rate_hz: 60,
            game,
        },
        players: 16,
        ticks: 36_000,
        bot_seed: 9,
    };
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let index = headless::record(&spec, &path, config, 0, |_| {}).expect("records");
    assert_eq!(
        index.last_tick,
        Tick(36_000),
        "the benchmark match should run its full 10 minutes"
    );
    path
}

fn verify_and_seek(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = recorded_match(dir.path());
    println!(
        "10-minute 16-player arena replay: {} bytes",
        std::fs::metadata(&path).expect("exists").len()
    );
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(36_000));
    group.bench_function("verify_10min_16p_arena", |b| {
        b.iter(|| {
            tickforge_replay::verify(&path, |_, _| {})
                .expect("reads")
                .expect("verifies")
                .ticks
        })
    });
    group.finish();
    let mut group = c.benchmark_group("replay");
    group.sample_size(30);
    group.bench_function("seek_middle_of_10min_16p_arena", |b| {
        b.iter(|| {
            tickforge_replay::seek(&path, Tick(18_000))
                .expect("seeks")
                .entities
                .len()
        })
    });
    // The worst case: the tick just before a snapshot (599 ticks replayed after the restore).
    group.bench_function("seek_worst_case_of_10min_16p_arena", |b| {
        b.iter(|| {
            tickforge_replay::seek(&path, Tick(17_999))
                .expect("seeks")
                .entities
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, append, verify_and_seek);
criterion_main!(benches);
