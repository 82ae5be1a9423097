//! Simulation costs. `cargo bench -p tickforge-benches --bench sim`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickforge_benches::{arena_inputs, arena_with, drift_inputs, drift_with};
use tickforge_protocol::{
    Cause, CommandId, EntityId, EventKind, GameConfig, MatchId, PlayerId, compact::World,
};
use tickforge_server::headless::{self, HeadlessMatch};
use tickforge_server::sim::MatchSetup;

/// The world a match's tick frames are encoded against, as of now.
fn wire_of(sim: &mut tickforge_server::sim::Sim) -> World {
    let table = tickforge_protocol::ComponentTable::new(sim.public_components()).expect("a table");
    let mut wire = World::new(table);
    wire.apply_snapshot(&sim.client_snapshot())
        .expect("a snapshot");
    wire
}

/// `apply` of one decided event (a steer) to a 64-player arena.
fn apply(c: &mut Criterion) {
    let mut sim = arena_with(64);
    let entity = sim.player_entity(PlayerId(1)).expect("joined");
    let mut flip = 1;
    c.bench_function("apply/player_steered", |b| {
        b.iter(|| {
            flip = -flip;
            let kind = EventKind::PlayerSteered {
                entity,
                vx: 50 * flip,
                vy: 0,
            };
            let event = sim.sequence(
                Cause::Command {
                    player: PlayerId(1),
                    id: CommandId(1),
                },
                kind,
            );
            sim.apply(black_box(&event));
        })
    });
    let _ = EntityId(0);
}

/// A whole arena tick in the server's order: run_tick (decide, apply, step, hash), then the
/// delta taken and encoded once.
fn arena_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("arena_tick");
    for players in [8u32, 64, 512] {
        let mut sim = arena_with(players);
        let mut wire = wire_of(&mut sim);
        let mut tick = 0u32;
        let mut buf = Vec::with_capacity(64 * 1024);
        group.throughput(Throughput::Elements(u64::from(players)));
        group.bench_function(BenchmarkId::from_parameter(players), |b| {
            b.iter(|| {
                tick += 1;
                let inputs = arena_inputs(&sim, players, tick);
                let report = sim.run_tick(inputs);
                let delta = sim.take_delta();
                buf.clear();
                wire.encode_delta(&delta, &mut buf).expect("encodes");
                black_box((report.hash, buf.len()))
            })
        });
    }
    group.finish();
}

/// Only the fixed-step schedule of a 64-player arena (no commands, no hash, no delta).
fn arena_step(c: &mut Criterion) {
    let mut sim = arena_with(64);
    c.bench_function("arena_step_only/64", |b| {
        b.iter(|| black_box(sim.step().len()))
    });
}

/// A whole drift tick with 1,000 players, each sending one input.
fn drift_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("drift_tick");
    for players in [8u32, 1000] {
        let mut sim = drift_with(players);
        let mut wire = wire_of(&mut sim);
        let mut tick = 0u32;
        let mut buf = Vec::with_capacity(64 * 1024);
        group.throughput(Throughput::Elements(u64::from(players)));
        group.bench_function(BenchmarkId::from_parameter(players), |b| {
            b.iter(|| {
                tick += 1;
                let inputs = drift_inputs(&sim, players, tick);
                let report = sim.run_tick(inputs);
                let delta = sim.take_delta();
                buf.clear();
                wire.encode_delta(&delta, &mut buf).expect("encodes");
                black_box((report.hash, buf.len()))
            })
        });
    }
    group.finish();
}

/// A headless 16-player arena match of 3,600 ticks (one minute at 60 Hz), scripted bots
/// included. Throughput is in ticks; × real time = ticks per second / 60.
fn headless_match(c: &mut Criterion) {
    let spec = HeadlessMatch {
        setup: MatchSetup {
            match_id: MatchId(1),
            seed: 1,
            tick_rate_hz: 60,
            game: GameConfig::default_for("arena").expect("arena"),
        },
        players: 16,
        ticks: 3_600,
        bot_seed: 1,
    };
    let mut group = c.benchmark_group("headless_match");
    group.sample_size(10);
    group.throughput(Throughput::Elements(spec.ticks));
    group.bench_function("arena_16p_3600_ticks", |b| {
        b.iter(|| {
            headless::play_with(&spec, |_, report| {
                black_box(report.hash);
            })
            .expect("plays")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    apply,
    arena_tick,
    arena_step,
    drift_tick,
    headless_match
);
criterion_main!(benches);
