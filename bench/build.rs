//! Compiles the benchmark XDP programs (bench/xdp/) with clang into OUT_DIR.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("xdp");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang-19".to_owned());
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=CLANG");
    for name in ["trafficgen", "drop"] {
        let source = dir.join(format!("{name}.bpf.c"));
        println!("cargo:rerun-if-changed={}", source.display());
        let status = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-Wall",
                "-Werror",
                &arch_include,
                "-c",
            ])
            .arg(&source)
            .arg("-o")
            .arg(out.join(format!("{name}.bpf.o")))
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run {clang} ({e}): run scripts/setup.sh or set CLANG")
            });
        assert!(status.success(), "{clang} failed on {}", source.display());
    }
}
