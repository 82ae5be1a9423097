//! Delta encodings compared on real ticks: `cargo bench -p tickforge-benches --bench codec`.
//!
//! Each series is 300 consecutive ticks of a real match of 8 players (drift with the swarm's
//! wander steps of up to ±120 mm an axis, and arena with steering and firing), encoded by:
//! - `msgpack_v1`: protocol 1's delta, MessagePack with string component tags;
//! - `varint`: the changed fields as zig-zag differences from the previous tick, byte-aligned
//!   LEB128 varints, entity ids as differences, one mask byte per entity;
//! - `bitcode`: the same differences in a struct packed by the `bitcode` crate;
//! - `compact`: protocol 2's tick-frame delta (the same differences, bit-packed in columns
//!   of one width each; `tickforge_protocol::compact`).
//!
//! The bytes per tick are printed; criterion times encoding the whole series.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickforge_benches::{arena_inputs, arena_with, drift_with};
use tickforge_protocol::compact::{ComponentTable, World, int_fields, put_uvarint, zigzag};
use tickforge_protocol::{
    Command, CommandId, ComponentValue, Delta, EntityId, PlayerId, Snapshot, encode_into,
};
use tickforge_server::sim::{CommandInput, Sim};

struct Series {
    name: &'static str,
    table: ComponentTable,
    start: Snapshot,
    deltas: Vec<Delta>,
}

fn series(
    name: &'static str,
    mut sim: Sim,
    mut inputs: impl FnMut(&Sim, u32) -> Vec<CommandInput>,
) -> Series {
    let table = ComponentTable::new(sim.public_components()).expect("a table");
    let start = sim.client_snapshot();
    let deltas = (1..=300)
        .map(|t| {
            let i = inputs(&sim, t);
            sim.run_tick(i);
            sim.take_delta()
        })
        .collect();
    Series {
        name,
        table,
        start,
        deltas,
    }
}

fn drift_series() -> Series {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut span = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 241) as i32 - 120
    };
    series("drift", drift_with(8), move |sim, t| {
        (1..=8)
            .filter_map(|p| {
                let entity = sim.player_entity(PlayerId(p))?;
                Some(CommandInput {
                    player: PlayerId(p),
                    id: CommandId(t),
                    command: Command::Drift {
                        entity,
                        dx: span(),
                        dy: span(),
                    },
                })
            })
            .collect()
    })
}

fn arena_series() -> Series {
    series("arena", arena_with(8), |sim, t| arena_inputs(sim, 8, t))
}

/// The previous tick's values, for the candidates that encode differences.
type Previous = BTreeMap<(EntityId, String), ComponentValue>;

/// The differences every candidate but `msgpack_v1` encodes.
#[derive(serde::Serialize, Default)]
struct Diff {
    ids: Vec<u32>,
    masks: Vec<u64>,
    ints: Vec<u64>,
    wholes: Vec<Vec<u8>>,
    removed: Vec<u32>,
}

fn diff(table: &ComponentTable, prev: &mut Previous, delta: &Delta) -> Diff {
    let mut d = Diff::default();
    let mut last = 0u32;
    for e in &delta.changed {
        d.ids.push(e.id.0 - last);
        last = e.id.0;
        let mut mask = 0u64;
        for c in &e.components {
            mask |= 1 << table.tag(c.name()).unwrap_or(0);
            let old = prev
                .get(&(e.id, c.name().to_string()))
                .and_then(int_fields)
                .unwrap_or_default();
            match int_fields(c) {
                Some(new) => d
                    .ints
                    .extend((0..3).map(|f| zigzag(new[f].wrapping_sub(old[f])))),
                None => {
                    let mut b = Vec::new();
                    encode_into(c, &mut b).expect("encodes");
                    d.wholes.push(b);
                }
            }
            prev.insert((e.id, c.name().to_string()), c.clone());
        }
        d.masks.push(mask);
    }
    let mut last = 0u32;
    for id in &delta.removed {
        d.removed.push(id.0 - last);
        last = id.0;
        prev.retain(|(e, _), _| e != id);
    }
    d
}

fn previous_of(s: &Series) -> Previous {
    s.start
        .entities
        .iter()
        .flat_map(|e| {
            e.components
                .iter()
                .map(move |c| ((e.id, c.name().to_string()), c.clone()))
        })
        .collect()
}

fn varint(d: &Diff, out: &mut Vec<u8>) {
    put_uvarint(out, d.ids.len() as u64);
    put_uvarint(out, d.removed.len() as u64);
    for (id, mask) in d.ids.iter().zip(&d.masks) {
        put_uvarint(out, u64::from(*id));
        put_uvarint(out, *mask);
    }
    for v in &d.ints {
        put_uvarint(out, *v);
    }
    for w in &d.wholes {
        put_uvarint(out, w.len() as u64);
        out.extend_from_slice(w);
    }
    for id in &d.removed {
        put_uvarint(out, u64::from(*id));
    }
}

/// One candidate over a whole series: the total bytes.
fn run(s: &Series, candidate: &str) -> usize {
    let mut total = 0;
    let mut out = Vec::with_capacity(4096);
    match candidate {
        "msgpack_v1" => {
            for d in &s.deltas {
                out.clear();
                encode_into(d, &mut out).expect("encodes");
                total += out.len();
            }
        }
        "compact" => {
            let mut world = World::new(s.table.clone());
            world.apply_snapshot(&s.start).expect("a snapshot");
            for d in &s.deltas {
                out.clear();
                world.encode_delta(d, &mut out).expect("encodes");
                total += out.len();
            }
        }
        "varint" | "bitcode" => {
            let mut prev = previous_of(s);
            for d in &s.deltas {
                let diff = diff(&s.table, &mut prev, d);
                if candidate == "varint" {
                    out.clear();
                    varint(&diff, &mut out);
                    total += out.len();
                } else {
                    total += bitcode::serialize(&diff).expect("encodes").len();
                }
            }
        }
        _ => unreachable!(),
    }
    total
}

const CANDIDATES: [&str; 4] = ["msgpack_v1", "varint", "bitcode", "compact"];

fn deltas(c: &mut Criterion) {
    for s in [drift_series(), arena_series()] {
        let mut group = c.benchmark_group(format!("delta_{}", s.name));
        group.throughput(Throughput::Elements(s.deltas.len() as u64));
        for candidate in CANDIDATES {
            let bytes = run(&s, candidate);
            println!(
                "{} {candidate}: {:.1} bytes per tick",
                s.name,
                bytes as f64 / s.deltas.len() as f64
            );
            group.bench_with_input(BenchmarkId::new("encode", candidate), &s, |b, s| {
                b.iter(|| black_box(run(s, candidate)))
            });
        }
        group.finish();
    }
}

/// Decoding protocol 2's deltas, as a client does.
fn decode(c: &mut Criterion) {
    for s in [drift_series(), arena_series()] {
        let mut world = World::new(s.table.clone());
        world.apply_snapshot(&s.start).expect("a snapshot");
        let frames: Vec<Vec<u8>> = s
            .deltas
            .iter()
            .map(|d| {
                let mut out = Vec::new();
                world.encode_delta(d, &mut out).expect("encodes");
                out
            })
            .collect();
        let mut group = c.benchmark_group(format!("delta_{}", s.name));
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function("decode/compact", |b| {
            b.iter(|| {
                let mut w = World::new(s.table.clone());
                w.apply_snapshot(&s.start).expect("a snapshot");
                for (f, d) in frames.iter().zip(&s.deltas) {
                    black_box(w.decode_delta(f, d.tick, d.seq).expect("decodes"));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, deltas, decode);
criterion_main!(benches);
