//! Compiling XDP programs from C in a build script: the one place that
//! finds clang (`$CLANG`, else `clang-19`, else `clang`) and knows the
//! flags, for `userspace/vxdecap/build.rs` and `bench/build.rs`.
//!
//! clang-19 is installed by `scripts/setup.sh`; set `CLANG` to use another
//! (14 and newer build these programs).
#![allow(
    clippy::print_stdout,
    reason = "a build script talks to cargo on stdout"
)]

use std::env;
use std::path::Path;
use std::process::Command;

/// The clang to run: `$CLANG` when set, else the first of `clang-19` and
/// `clang` that runs, else `clang-19` (whose absence the error then names).
/// Asks cargo to rebuild when `CLANG` changes.
pub fn clang() -> String {
    println!("cargo:rerun-if-env-changed=CLANG");
    env::var("CLANG").ok().unwrap_or_else(|| {
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
    })
}

/// Compiles the BPF program `source` to the object `out` with `clang`
/// (`-O2 -g -target bpf -Wall -Werror`, the target's multiarch include
/// directory for the asm headers), and asks cargo to rebuild when `source`
/// or any of `headers` changes. Panics with the fix when clang cannot run
/// or the program does not compile: a build script has no other way to
/// fail.
pub fn compile(clang: &str, source: &Path, headers: &[&Path], out: &Path) {
    println!("cargo:rerun-if-changed={}", source.display());
    for header in headers {
        println!("cargo:rerun-if-changed={}", header.display());
    }
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    let status = Command::new(clang)
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
        .arg(source)
        .arg("-o")
        .arg(out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {} ({s})", source.display()),
        Err(e) => panic!(
            "cannot run {clang} ({e}): install it with scripts/setup.sh (apt-get install clang-19 libbpf-dev) or set CLANG"
        ),
    }
}
