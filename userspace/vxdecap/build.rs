//! Compiles the XDP program (xdp-prog/, C) with clang into OUT_DIR, where
//! `steer.rs` embeds it. clang-19 is installed by scripts/setup.sh; set
//! CLANG to use another clang (14 and newer build this program).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let src_dir = manifest.join("../../xdp-prog");
    let source = src_dir.join("vxdecap.bpf.c");
    let header = src_dir.join("vxdecap_shared.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("vxdecap.bpf.o");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").ok().unwrap_or_else(|| {
        ["clang-19", "clang"]
            .into_iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or("clang-19")
            .to_owned()
    });
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
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
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {} ({s})", source.display()),
        Err(e) => panic!(
            "cannot run {clang} ({e}): install it with scripts/setup.sh (apt-get install clang-19 libbpf-dev) or set CLANG"
        ),
    }
}
