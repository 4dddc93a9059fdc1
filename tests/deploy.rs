//! The deployment kit, without root: the man pages and completions made
//! from the clap definitions (`vxdecap generate`), the packaged
//! configuration, the packaging and deploy scripts (shellcheck, dry runs)
//! and the collector's cloud-init (`cloud-init schema`). What needs root
//! is in `tests/service.rs`; the package itself is built, installed and
//! removed by `scripts/package-check.sh` in CI.

#[path = "common/collector.rs"]
mod collector;
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
            "vxdecap-doctor.1",
            "vxdecap-lab.1",
            "vxdecap-relay.1",
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
    for sub in ["capture", "decap", "check-config", "doctor", "lab", "top"] {
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

/// A PATH whose `az` and `aws` only record that they were called: a dry run
/// must call neither. Returns (the PATH, the record file).
fn path_without_clouds(tmp: &TempDir) -> (String, PathBuf) {
    let bin = tmp.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = tmp.path("cloud-called");
    for cli in ["az", "aws"] {
        let script = format!(
            "#!/bin/sh\necho \"{cli} $*\" >> {}\nexit 99\n",
            record.display()
        );
        let path = bin.join(cli);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        record,
    )
}

/// Runs a deploy script with `--dry-run` and `args`; returns its transcript,
/// checked to be a bash script that shellcheck passes.
fn dry_run(script: &str, args: &[&str], tmp: &TempDir) -> String {
    let (path, record) = path_without_clouds(tmp);
    let o = output(
        Command::new(source(script))
            .args(args)
            .arg("--dry-run")
            .env("PATH", &path)
            .env("TMPDIR", &tmp.0),
    );
    assert!(o.status.success(), "{script} {args:?}: {}", stderr(&o));
    assert!(
        !record.exists(),
        "a dry run called the cloud: {}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
    let transcript = stdout(&o);
    let file = tmp.path("transcript.sh");
    std::fs::write(&file, &transcript).unwrap();
    let syntax = output(Command::new("bash").arg("-n").arg(&file));
    assert!(syntax.status.success(), "{}\n{transcript}", stderr(&syntax));
    let lint = output(
        Command::new("shellcheck")
            .args(["-s", "bash", "--severity=warning"])
            .arg(&file),
    );
    assert!(lint.status.success(), "{}\n{transcript}", stdout(&lint));
    transcript
}

/// The transcript's lines that start with `prefix`, in order.
fn commands<'a>(transcript: &'a str, prefix: &str) -> Vec<&'a str> {
    transcript
        .lines()
        .filter(|l| l.starts_with(prefix) || l.contains(&format!("=$({prefix}")))
        .collect()
}

#[test]
fn the_azure_script_creates_the_vtap_to_the_collector_and_attaches_the_sources() {
    let tmp = TempDir::new("az");
    shellcheck(&[&source("deploy/azure/deploy.sh")]);
    let t = dry_run(
        "deploy/azure/deploy.sh",
        &[
            "--location",
            "westcentralus",
            "--ssh-from",
            "203.0.113.7/32",
        ],
        &tmp,
    );
    let az = commands(&t, "az ");
    let position = |needle: &str| {
        az.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{t}"))
    };
    // The collector and its cloud-init, before the vTAP; without Accelerated Networking
    // until vxdecap binds the VF's queues too.
    let vm = position("az vm create --resource-group rg-vxdecap --name vxdecap-collector");
    assert!(
        az[vm].contains("--accelerated-networking false"),
        "{}",
        az[vm]
    );
    assert!(az[vm].contains("--custom-data"), "{}", az[vm]);
    assert!(
        az[vm].contains("--image Debian:debian-12:12-gen2:latest"),
        "{}",
        az[vm]
    );
    let rule = position("--name allow-vxlan");
    assert!(
        az[rule].contains("--protocol Udp") && az[rule].contains("--destination-port-ranges 4789")
    );
    // The destination is the collector NIC's IP configuration.
    let dest = position("destination=$(az network nic show");
    assert!(
        az[dest].contains("'ipConfigurations[0].id'"),
        "{}",
        az[dest]
    );
    let tap = position("az network vnet tap create");
    assert!(
        az[tap].contains("--destination \"${destination}\" --port 4789"),
        "{}",
        az[tap]
    );
    // The source VM's NIC is attached to the vTAP, after the vTAP exists.
    let attach = position("az network nic vtap-config create");
    assert!(
        az[attach].contains("--nic-name \"${app_nic_name}\" --vnet-tap \"${tap_id}\""),
        "{}",
        az[attach]
    );
    assert!(vm < tap && tap < attach);
    assert!(
        t.contains("sudo vxdecap-collector-setup --deb /tmp/vxdecap.deb"),
        "{t}"
    );
    // The rendered cloud-init: in the transcript, not written by the dry run.
    assert!(t.contains("VXDECAP_MTU=3500"), "{t}");
    assert!(!tmp.path("vxdecap-collector.cloud-init.yaml").exists());
}

#[test]
fn the_azure_script_can_aim_the_vtap_at_an_internal_load_balancer_and_existing_nics() {
    let tmp = TempDir::new("azilb");
    let t = dry_run(
        "deploy/azure/deploy.sh",
        &[
            "--location",
            "westcentralus",
            "--deb-url",
            "https://example.invalid/vxdecap.deb",
            "--ilb",
            "--accelerated-networking",
            "true",
            "--source-nic",
            "web1-nic",
            "--source-nic",
            "/subscriptions/0000/resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/web2-nic",
        ],
        &tmp,
    );
    let az = commands(&t, "az ");
    assert!(
        !t.contains("vxdecap-app"),
        "no source VM with --source-nic:\n{t}"
    );
    assert!(t.contains("--accelerated-networking true"), "{t}");
    let lb_rule = az
        .iter()
        .find(|l| l.starts_with("az network lb rule create"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(lb_rule.contains("--protocol Udp --frontend-port 4789 --backend-port 4789"));
    // The load balancer probes vxdecap's /healthz, which the collector serves to Azure's
    // prober alone; no longer SSH's port.
    assert!(lb_rule.contains("--probe-name healthz"), "{lb_rule}");
    let probe = az
        .iter()
        .find(|l| l.starts_with("az network lb probe create"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        probe.contains("--name healthz --protocol Http --port 9419 --path /healthz"),
        "{probe}"
    );
    assert!(!t.contains("--port 22"), "{t}");
    assert!(t.contains("VXDECAP_HEALTH_FROM=168.63.129.16"), "{t}");
    assert!(az.iter().any(
        |l| l.starts_with("az network nic ip-config address-pool add")
            && l.contains("--address-pool collectors")
    ));
    assert!(az
        .iter()
        .any(|l| l.starts_with("destination=$(az network lb frontend-ip show")));
    let attached: Vec<&&str> = az
        .iter()
        .filter(|l| l.starts_with("az network nic vtap-config create"))
        .collect();
    assert_eq!(attached.len(), 2, "{t}");
    assert!(attached[0].contains("--resource-group rg-vxdecap --nic-name web1-nic"));
    assert!(attached[1].contains("--resource-group rg-web --nic-name web2-nic"));
    // With a package URL nothing is copied: cloud-init fetches it.
    assert!(!t.contains("scp "), "{t}");
    assert!(
        t.contains("VXDECAP_DEB_URL=https://example.invalid/vxdecap.deb"),
        "{t}"
    );

    // Required settings are asked for.
    let (path, _) = path_without_clouds(&tmp);
    let o = output(
        Command::new(source("deploy/azure/deploy.sh"))
            .args(["--dry-run", "--ssh-from", "203.0.113.7/32"])
            .env("PATH", path),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--location is required"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_aws_script_creates_a_target_a_filter_and_a_session_per_source() {
    let tmp = TempDir::new("aws");
    shellcheck(&[&source("deploy/aws/deploy.sh")]);
    let t = dry_run(
        "deploy/aws/deploy.sh",
        &[
            "--subnet",
            "subnet-0abc",
            "--source-eni",
            "eni-0123",
            "--source-eni",
            "eni-0456",
            "--key-name",
            "me",
            "--ssh-from",
            "203.0.113.7/32",
            "--vni",
            "27",
        ],
        &tmp,
    );
    let aws = commands(&t, "aws ");
    let one = |needle: &str| -> &str {
        let found: Vec<&&str> = aws.iter().filter(|l| l.contains(needle)).collect();
        assert_eq!(found.len(), 1, "`{needle}` once in:\n{t}");
        found[0]
    };
    assert!(
        one("authorize-security-group-ingress --group-id \"${group}\" --protocol udp")
            .contains("--port 4789 --cidr \"${vpc_cidr}\"")
    );
    assert!(one("run-instances").contains("--user-data file://"));
    assert!(
        one("create-traffic-mirror-target").contains("--network-interface-id \"${collector_eni}\"")
    );
    one("create-traffic-mirror-filter --description");
    let rules: Vec<&&str> = aws
        .iter()
        .filter(|l| l.contains("create-traffic-mirror-filter-rule"))
        .collect();
    assert_eq!(rules.len(), 2, "{t}");
    assert!(
        rules[0].contains("--traffic-direction ingress")
            && rules[1].contains("--traffic-direction egress")
    );
    let sessions: Vec<&&str> = aws
        .iter()
        .filter(|l| l.contains("create-traffic-mirror-session"))
        .collect();
    assert_eq!(sessions.len(), 2, "{t}");
    for (n, (session, eni)) in sessions.iter().zip(["eni-0123", "eni-0456"]).enumerate() {
        assert!(
            session.contains(&format!("--network-interface-id {eni}")),
            "{session}"
        );
        assert!(
            session.contains(&format!("--session-number {}", n + 1)),
            "{session}"
        );
        assert!(session.contains("--virtual-network-id 27"), "{session}");
        // Cut to fit the collector's MTU (3498) less the 54 bytes AWS adds.
        assert!(session.contains("--packet-length 3444"), "{session}");
    }
    assert!(
        t.contains("sudo vxdecap-collector-setup --deb /tmp/vxdecap.deb"),
        "{t}"
    );
}

/// The setup script the collector's cloud-init writes, extracted from the
/// YAML (python3's yaml module: cloud-init's own dependency).
fn setup_script(tmp: &TempDir) -> PathBuf {
    let path = tmp.path("vxdecap-collector-setup");
    let o = output(Command::new("python3").args([
        "-c",
        "import sys, yaml\n\
         d = yaml.safe_load(open(sys.argv[1]))\n\
         f = [w for w in d['write_files'] if w['path'] == '/usr/local/sbin/vxdecap-collector-setup'][0]\n\
         open(sys.argv[2], 'w').write(f['content'])",
        source("deploy/cloud-init.yaml").to_str().unwrap(),
        path.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

#[test]
fn the_collector_cloud_init_is_valid_and_its_setup_script_passes_shellcheck() {
    let config = source("deploy/cloud-init.yaml");
    let o = output(
        Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&config),
    );
    assert!(
        o.status.success() && stdout(&o).contains("Valid cloud-config"),
        "cloud-init schema: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let tmp = TempDir::new("ci");
    let script = setup_script(&tmp);
    shellcheck(&[&script, &source("packaging/prepare-interface")]);
}

/// A `vxdecap` on PATH for the setup script: `doctor` is missing, passes or
/// fails; every call is recorded.
fn fake_vxdecap(dir: &Path, doctor: Option<i32>, record: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let doctor_arm = match doctor {
        None => {
            "doctor) echo \"error: unrecognized subcommand 'doctor'\" >&2; exit 2 ;;".to_owned()
        }
        Some(code) => {
            format!("doctor) [ \"$2\" = --help ] && exit 0; echo \"verdict: $*\"; exit {code} ;;")
        }
    };
    let script = format!(
        "#!/bin/sh\necho \"vxdecap $*\" >> {}\ncase $1 in\n  {doctor_arm}\n  *) exit 0 ;;\nesac\n",
        record.display()
    );
    let path = dir.join("vxdecap");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_setup_script_picks_the_mirrors_interface_and_defers_to_doctor() {
    if !privileged("the collector setup script in a namespace") {
        return;
    }
    let tmp = TempDir::new("setup");
    let script = setup_script(&tmp);
    let ns = collector::NetNs::create(&collector::unique_name("cs")).expect("netns");
    let peer = collector::NetNs::create(&collector::unique_name("cp")).expect("netns");
    // The netvsc device eth0 holds the address and the default route; an
    // "Accelerated Networking VF" enP2s1 is enslaved to a second device, eth1.
    collector::veth_pair(&peer, "p0", &ns, "eth0").unwrap();
    ns.configure("eth0", "10.80.0.2/24").unwrap();
    ns.ip(&["route", "add", "default", "via", "10.80.0.1"])
        .unwrap();
    collector::veth_pair(&peer, "p1", &ns, "enP2s1").unwrap();
    ns.ip(&["link", "add", "eth1", "type", "bridge"]).unwrap();
    ns.ip(&["link", "set", "enP2s1", "master", "eth1"]).unwrap();

    let setup = |doctor: Option<i32>, extra: &[&str], tag: &str| -> (i32, String, String) {
        let bin = tmp.path(&format!("bin-{tag}"));
        let record = tmp.path(&format!("calls-{tag}"));
        fake_vxdecap(&bin, doctor, &record);
        let mut args = vec![format!(
            "PATH={}:/usr/sbin:/usr/bin:/sbin:/bin",
            bin.display()
        )];
        args.extend(["bash", script.to_str().unwrap(), "--dry-run"].map(String::from));
        args.extend(extra.iter().map(ToString::to_string));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = output(&mut ns.command("env", &refs));
        (
            o.status.code().unwrap_or(-1),
            format!("{}{}", stdout(&o), stderr(&o)),
            std::fs::read_to_string(&record).unwrap_or_default(),
        )
    };

    // No doctor in this vxdecap: the default route's device, as documented.
    let (code, out, calls) = setup(None, &[], "none");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("interface eth0: the default route's device"),
        "{out}"
    );
    assert!(
        out.contains("this vxdecap has no doctor: eth0 kept"),
        "{out}"
    );
    assert!(
        out.contains("+ systemctl enable --now vxdecap@eth0.service"),
        "{out}"
    );
    assert!(out.contains("prepare-interface %i --mtu 3500"), "{out}");
    assert!(!calls.contains("doctor -i"), "{calls}");

    // A doctor that passes is asked about that interface, once the NIC is
    // readied as the unit will find it, and the unit is enabled.
    let (code, out, calls) = setup(Some(0), &["--mtu", "3400"], "pass");
    assert_eq!(code, 0, "{out}");
    assert!(calls.contains("vxdecap doctor -i eth0"), "{calls}");
    let prepared = out
        .find("+ /usr/libexec/vxdecap/prepare-interface eth0 --mtu 3400")
        .unwrap_or_else(|| panic!("the NIC is readied before doctor: {out}"));
    let asked = out
        .find("verdict: doctor -i eth0")
        .expect("doctor's verdict");
    assert!(
        prepared < asked,
        "prepare-interface runs before doctor: {out}"
    );
    assert!(
        out.contains("+ systemctl enable --now vxdecap@eth0.service"),
        "{out}"
    );
    assert!(out.contains("--mtu 3400"), "{out}");

    // A doctor that says traffic would be lost stops the setup: nothing enabled.
    let (code, out, _) = setup(Some(1), &[], "fail");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("doctor says a capture on eth0 would lose traffic"),
        "{out}"
    );
    assert!(!out.contains("systemctl enable"), "{out}");

    // A default route on a VF: its master is the interface the mirror is addressed to.
    ns.ip(&["route", "del", "default"]).unwrap();
    ns.ip(&["link", "set", "enP2s1", "up"]).unwrap();
    ns.ip(&["route", "add", "default", "dev", "enP2s1"])
        .unwrap();
    let (code, out, _) = setup(None, &[], "vf");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("interface eth1: the default route's device"),
        "{out}"
    );
    assert!(
        out.contains("+ systemctl enable --now vxdecap@eth1.service"),
        "{out}"
    );

    // Behind a load balancer: /healthz on every address, to its prober and this host only.
    let (code, out, _) = setup(None, &["--health-from", "168.63.129.16"], "probe");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("+ set metrics = \"0.0.0.0:9419\" in /etc/vxdecap/vxdecap.toml"),
        "{out}"
    );
    assert!(
        out.contains("20-health-probe.conf: IPAddressAllow=168.63.129.16"),
        "{out}"
    );
    let (_, out, _) = setup(None, &[], "noprobe");
    assert!(
        !out.contains("health-probe"),
        "no probe unless asked: {out}"
    );

    // --interface wins, and a missing one is an error.
    let (code, out, _) = setup(None, &["--interface", "nosuch0"], "missing");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("interface nosuch0 does not exist"), "{out}");
}
