//! Micro-benchmark of the decapsulation hot path on a 106-byte VXLAN frame.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vxdecap_wire::{decapsulate, PortSet};

fn bench_decap(c: &mut Criterion) {
    let frame = vxdecap_bench::sample_frame(14);
    let ports = PortSet::default();
    let mut group = c.benchmark_group("decapsulate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ipv4_106B", |b| {
        b.iter(|| decapsulate(black_box(&frame), black_box(&ports)).map(|d| d.vni))
    });
    group.finish();
}

criterion_group!(benches, bench_decap);
criterion_main!(benches);
