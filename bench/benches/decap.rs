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
    // The same inner frame as AWS Traffic Mirroring through a Gateway Load Balancer endpoint
    // sends it: GENEVE with the AWS options around the mirror's VXLAN.
    let nested = vxdecap_bench::geneve_vxlan_frame(
        64,
        [0xff; 6],
        std::net::Ipv4Addr::new(10, 0, 2, 4),
        std::net::Ipv4Addr::new(10, 1, 1, 4),
    );
    group.bench_function("geneve_vxlan_174B", |b| {
        b.iter(|| decapsulate(black_box(&nested), black_box(&ports)).map(|d| d.vni))
    });
    group.finish();
}

/// The inner filter's per-frame cost: libpcap's program for each expression,
/// run by vxdecap's interpreter on the inner frame of the same sample (a
/// UDP frame: `tcp port 80` rejects it early, `udp` accepts it).
fn bench_filter(c: &mut Criterion) {
    let frame = vxdecap_bench::sample_frame(14);
    let inner = decapsulate(&frame, &PortSet::default())
        .map(|d| d.inner.to_vec())
        .expect("sample decapsulates");
    let mut group = c.benchmark_group("inner_filter");
    group.throughput(Throughput::Elements(1));
    for expression in [
        "tcp port 80",
        "udp",
        "host 10.9.9.9 or (udp and portrange 1000-2000)",
    ] {
        let filter = vxdecap::filter::InnerFilter::compile(expression).expect("compiles");
        group.bench_function(
            format!("{expression} ({} insns)", filter.program().len()),
            |b| b.iter(|| filter.matches(black_box(&inner), black_box(inner.len() as u32))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_decap, bench_filter);
criterion_main!(benches);
