//! Compiles the benchmark XDP programs (bench/xdp/) with clang into OUT_DIR
//! (clang found by `vxdecap-bpf-build`, as for the XDP program itself).

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("xdp");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let clang = vxdecap_bpf_build::clang();
    for name in ["trafficgen", "drop"] {
        let source = dir.join(format!("{name}.bpf.c"));
        vxdecap_bpf_build::compile(&clang, &source, &[], &out.join(format!("{name}.bpf.o")));
    }
}
