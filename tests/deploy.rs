//! The deployment kit, without root: the man pages and completions made
//! from the clap definitions (`vxdecap generate`), the packaged
//! configuration, the packaging and deploy scripts (shellcheck, dry runs)
//! and the collector's cloud-init (`cloud-init schema`). What needs root
//! is in `tests/service.rs`; the package itself is built, installed and
//! removed by `scripts/package-check.sh` in CI.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A path in the source tree.
fn source(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// The long flags `vxdecap SUB --help` lists (`--metrics`, …).
fn long_flags(sub: &str) -> BTreeSet<String> {
    let o = output(vxdecap().args([sub, "--help"]));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

#[test]
fn man_pages_are_made_from_the_flags_and_pass_mandoc_lint() {
    let tmp = TempDir::new("man");
    let dir = tmp.path("man");
    let o = output(vxdecap().args(["generate", "man"]).arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .expect("the man directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    // One page per visible subcommand; the hidden helpers (lab's, generate) have none.
    assert_eq!(
        pages,
        [
            "vxdecap-capture.1",
            "vxdecap-check-config.1",
            "vxdecap-decap.1",
            "vxdecap-lab.1",
            "vxdecap-top.1",
            "vxdecap.1"
        ]
    );
    for page in &pages {
        let path = dir.join(page);
        let lint = output(
            Command::new("mandoc")
                .args(["-T", "lint", "-W", "error"])
                .arg(&path),
        );
        assert!(
            lint.status.success(),
            "mandoc finds errors in {page}: {}{}",
            stdout(&lint),
            stderr(&lint)
        );
    }
    // Every flag of --help is documented: the pages cannot drift from the parser.
    for sub in ["capture", "decap", "top"] {
        let page = std::fs::read_to_string(dir.join(format!("vxdecap-{sub}.1"))).unwrap();
        let flags = long_flags(sub);
        assert!(flags.len() >= 3, "{sub}: {flags:?}");
        for flag in flags {
            let roff = flag.replace('-', "\\-");
            assert!(
                page.contains(&roff),
                "vxdecap-{sub}.1 lacks {flag} ({roff})"
            );
        }
    }
    let main = std::fs::read_to_string(dir.join("vxdecap.1")).unwrap();
    for section in ["EXIT STATUS", "FILES", "SEE ALSO"] {
        assert!(main.contains(section), "vxdecap.1 lacks {section}");
    }
    // The page renders as man shows it (ASCII, overstrike bold taken out).
    let rendered = output(
        Command::new("mandoc")
            .args(["-T", "ascii"])
            .arg(dir.join("vxdecap-capture.1")),
    );
    let mut text = String::new();
    for c in stdout(&rendered).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    assert!(text.contains("--allow-file <FILE>"), "{text}");
}

#[test]
fn bash_completes_subcommands_and_flags_and_hides_the_helpers() {
    let tmp = TempDir::new("comp");
    let dir = tmp.path("completions");
    for shell in ["bash", "zsh", "fish"] {
        let o = output(vxdecap().args(["generate", "completions", shell]).arg(&dir));
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
    }
    for (file, flag) in [
        ("vxdecap.bash", "--metrics"),
        ("_vxdecap", "--metrics"),
        ("vxdecap.fish", "metrics"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains(flag), "{file} lacks {flag}");
    }
    // What bash offers after `vxdecap ` and after `vxdecap capture --met`.
    let complete = |words: &[&str]| -> Vec<String> {
        let script = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
             COMP_POINT=${{#COMP_LINE}}; _vxdecap vxdecap \"${{COMP_WORDS[COMP_CWORD]}}\" \
             \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.join("vxdecap.bash").display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1
        );
        let o = output(Command::new("bash").args(["--norc", "-c", &script]));
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().map(str::to_owned).collect()
    };
    let subcommands = complete(&["vxdecap", ""]);
    for sub in ["capture", "decap", "check-config", "lab", "top"] {
        assert!(
            subcommands.iter().any(|s| s == sub),
            "{sub}: {subcommands:?}"
        );
    }
    for hidden in ["generate", "lab-http-server", "lab-http-get"] {
        assert!(
            !subcommands.iter().any(|s| s == hidden),
            "{hidden} offered: {subcommands:?}"
        );
    }
    assert_eq!(complete(&["vxdecap", "capture", "--met"]), ["--metrics"]);
}

#[test]
fn the_packaged_configuration_passes_check_config() {
    let file = source("packaging/vxdecap.toml");
    let o = output(
        vxdecap()
            .args(["check-config", "--no-host-checks"])
            .arg(&file),
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("warning"), "{err}");
    let setup = stdout(&o);
    assert!(
        setup.contains(
            "output: inner.pcapng (pcapng, new file every 1073741824 bytes, keep 10 files)"
        ),
        "{setup}"
    );
    assert!(setup.contains("metrics: 127.0.0.1:9419"), "{setup}");
}

/// `shellcheck` over `files`, every warning an error.
fn shellcheck(files: &[&Path]) {
    let o = output(
        Command::new("shellcheck")
            .args(["--severity=style", "--external-sources"])
            .args(files),
    );
    assert!(
        o.status.success(),
        "shellcheck:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn packaging_scripts_pass_shellcheck() {
    let files: Vec<PathBuf> = [
        "scripts/package.sh",
        "scripts/package-check.sh",
        "packaging/debian/postinst",
        "packaging/debian/prerm",
        "packaging/debian/postrm",
    ]
    .iter()
    .map(|f| source(f))
    .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    shellcheck(&refs);
}
