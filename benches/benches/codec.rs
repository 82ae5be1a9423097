//! Codec costs. `cargo bench -p tickforge-benches --bench codec`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickforge_benches::delta_of;
use tickforge_protocol::{DecodeLimits, Delta, ServerMessage, decode_with, encode_into};

fn delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("delta");
    for n in [8u32, 64, 512] {
        let message = ServerMessage::Delta(delta_of(n));
        let mut buf = Vec::with_capacity(64 * 1024);
        encode_into(&message, &mut buf).expect("encodes");
        let bytes = buf.clone();
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_with_input(BenchmarkId::new("encode", n), &message, |b, m| {
            b.iter(|| {
                buf.clear();
                encode_into(black_box(m), &mut buf).expect("encodes");
                buf.len()
            })
        });
        group.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| {
                decode_with::<ServerMessage>(black_box(bytes), DecodeLimits::TRUSTED)
                    .expect("decodes")
            })
        });
        println!("delta of {n} entities: {} bytes", bytes.len());
    }
    group.finish();
    let _: Option<Delta> = None;
}

criterion_group!(benches, delta);
criterion_main!(benches);
