//! The checks on sysfs/procfs trees built in a temporary directory: an
//! Accelerated Networking stack (netvsc and its mlx5 VF), which this
//! kernel cannot make, and a plain veth.

use std::path::PathBuf;

use super::*;
use crate::runtime::config::CaptureMode;
use crate::sys::ethtool::{Features, HashFields};
use crate::sys::genl::XdpFeatures;
use crate::sys::netlink::Link;

/// A tree of files standing for `/sys` and `/proc`, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("vxdecap-doctor-{tag}-{}x{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let tree = Self(root);
        tree.file("sys/devices/system/cpu/online", "0-1\n");
        tree.file("proc/sys/kernel/osrelease", "6.18.0-test\n");
        tree.file(
            "proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max locked memory         8388608              8388608              bytes\n",
        );
        tree.file(
            "proc/self/status",
            "Name:\tvxdecap\nCapEff:\t0000000000000000\n",
        );
        tree.file(
            "proc/net/udp",
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        );
        tree.file("proc/net/udp6", "  sl  local_address\n");
        tree
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    fn file(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write a tree file");
    }

    fn link(&self, relative: &str, target: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, path).expect("symlink");
    }

    /// `/sys/class/net/NAME` with a bus driver (none: a virtual device).
    fn device(&self, name: &str, driver: Option<&str>, ifindex: u32, queues: u32) {
        let dir = format!("sys/class/net/{name}");
        self.file(&format!("{dir}/mtu"), "1500\n");
        self.file(&format!("{dir}/ifindex"), &format!("{ifindex}\n"));
        self.file(&format!("{dir}/flags"), "0x1003\n");
        for q in 0..queues {
            self.file(&format!("{dir}/queues/rx-{q}/rps_cpus"), "0\n");
        }
        if let Some(driver) = driver {
            self.link(
                &format!("{dir}/device/driver"),
                &format!("../../../../bus/drivers/{driver}"),
            );
        }
    }

    /// netvsc `eth1` (4 channels) with its mlx5 VF `enP1s1` (8 queues,
    /// interrupts on CPUs 1 and 0).
    fn accelerated_networking(&self) {
        self.device("eth1", Some("hv_netvsc"), 3, 4);
        self.device("enP1s1", Some("mlx5_core"), 4, 8);
        self.link("sys/class/net/eth1/lower_enP1s1", "../enP1s1");
        self.link("sys/class/net/enP1s1/upper_eth1", "../eth1");
        self.link("sys/class/net/enP1s1/master", "../eth1");
        self.file("sys/class/net/enP1s1/device/msi_irqs/45", "msix\n");
        self.file("sys/class/net/enP1s1/device/msi_irqs/46", "msix\n");
        self.file("proc/irq/45/effective_affinity_list", "1\n");
        self.file("proc/irq/46/effective_affinity_list", "0\n");
    }

    fn host(&self) -> Host {
        Host::tree(&self.0)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(facts: &Facts, config: &CaptureConfig, kind: CheckKind) -> Check {
    evaluate(facts, config, &[kind]).remove(0)
}

fn gather(tree: &Tree, config: &CaptureConfig) -> Facts {
    Facts::gather(&tree.host(), config, Depth::Full).expect("the interface is in the tree")
}

#[test]
fn an_accelerated_networking_stack_is_read_from_sysfs_and_passes_as_capture_binds_the_vf() {
    let tree = Tree::new("an");
    tree.accelerated_networking();
    let config = CaptureConfig::new("eth1");
    let facts = gather(&tree, &config);
    let roles: Vec<(&str, Option<&str>, &Role, Option<u32>)> = facts
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.driver.as_deref(), &d.role, d.rx_queues))
        .collect();
    assert_eq!(
        roles,
        [
            ("eth1", Some("hv_netvsc"), &Role::Synthetic, Some(4)),
            (
                "enP1s1",
                Some("mlx5_core"),
                &Role::Vf {
                    master: "eth1".into()
                },
                Some(8)
            ),
        ]
    );
    assert!(facts.devices.iter().all(|d| d.physical));
    assert_eq!(facts.receiving()[0].name, "enP1s1", "the VF receives");

    // Capture binds the VF's queues too (issue 13, item 2).
    let stack = check(&facts, &config, CheckKind::DeviceStack);
    assert_eq!(stack.verdict, Verdict::Ok, "{stack}");
    assert!(
        stack.detail.contains("enP1s1: mlx5_core (VF under eth1)")
            && stack.detail.contains("on every queue of enP1s1"),
        "{stack}"
    );
    let report = Report {
        interface: "eth1".into(),
        checks: evaluate(&facts, &config, &CheckKind::ALL),
    };
    assert_eq!(report.checks.len(), CheckKind::ALL.len());

    let queues = check(&facts, &config, CheckKind::RxQueues);
    assert_eq!(queues.verdict, Verdict::Ok, "{queues}");
    assert!(queues.detail.starts_with("eth1: 4, enP1s1: 8"), "{queues}");

    // Generic XDP on netvsc sees the VF's frames: a warning (read from the
    // source, not verified), and the VF's extra queues fold onto queue 0.
    let mut skb = config.clone();
    skb.mode = CaptureMode::Skb;
    assert_eq!(
        check(&facts, &skb, CheckKind::DeviceStack).verdict,
        Verdict::Warn
    );
    let folded = check(&facts, &skb, CheckKind::RxQueues);
    assert_eq!(folded.verdict, Verdict::Warn, "{folded}");
    assert_eq!(folded.hint.as_deref(), Some("ethtool -L enP1s1 combined 4"));

    // The VF's interrupts are on CPUs 0 and 1, where 4 workers on 2 CPUs run.
    let irqs = check(&facts, &config, CheckKind::IrqAffinity);
    assert_eq!(irqs.verdict, Verdict::Warn, "{irqs}");
    assert!(
        irqs.detail.contains("IRQ 45") && irqs.detail.contains("CPU(s) 0,1 take both"),
        "{irqs}"
    );
}

#[test]
fn the_vfs_hashing_offloads_and_xdp_features_are_judged() {
    let tree = Tree::new("vf");
    tree.accelerated_networking();
    let config = CaptureConfig::new("eth1");
    let mut facts = gather(&tree, &config);

    // Not asked in a tree: said, not passed.
    assert_eq!(
        check(&facts, &config, CheckKind::UdpHash).verdict,
        Verdict::Warn
    );
    facts.devices[1].udp4_hash = Ok(HashFields(0xf0));
    let hash = check(&facts, &config, CheckKind::UdpHash);
    assert_eq!(
        (hash.verdict, hash.detail.as_str()),
        (Verdict::Ok, "enP1s1: udp4 hashed on sdfn")
    );
    facts.devices[1].udp4_hash = Ok(HashFields(HashFields::IP_SRC | HashFields::IP_DST));
    let hash = check(&facts, &config, CheckKind::UdpHash);
    assert_eq!(hash.verdict, Verdict::Warn, "{hash}");
    assert_eq!(
        hash.hint.as_deref(),
        Some("ethtool -N enP1s1 rx-flow-hash udp4 sdfn")
    );

    let names = vec![
        "rx-checksum".to_owned(),
        "rx-lro".to_owned(),
        "rx-gro-hw".to_owned(),
    ];
    facts.devices[0].features = Ok(Features::new(names.clone(), vec![0b011]));
    facts.devices[1].features = Ok(Features::new(names.clone(), vec![0b101]));
    let offloads = check(&facts, &config, CheckKind::Offloads);
    assert_eq!(offloads.verdict, Verdict::Fail, "{offloads}");
    assert!(
        offloads
            .detail
            .starts_with("LRO on eth1, hardware GRO on enP1s1"),
        "{offloads}"
    );
    assert!(
        offloads.hint.as_deref().is_some_and(
            |h| h.starts_with("ethtool -K eth1 lro off; ethtool -K enP1s1 rx-gro-hw off")
        ),
        "{offloads}"
    );
    // Hardware GRO on netvsc: not refused there (a warning); LRO is.
    facts.devices[0].features = Ok(Features::new(names.clone(), vec![0b101]));
    facts.devices[1].features = Ok(Features::new(names.clone(), vec![0b001]));
    let offloads = check(&facts, &config, CheckKind::Offloads);
    assert_eq!(offloads.verdict, Verdict::Warn, "{offloads}");
    facts.devices[0].features = Ok(Features::new(names.clone(), vec![0b001]));
    facts.devices[1].features = Ok(Features::new(names, vec![0b001]));
    assert_eq!(
        check(&facts, &config, CheckKind::Offloads).verdict,
        Verdict::Ok
    );

    // netvsc: driver XDP, handed to the VF; copy mode (no zero-copy).
    facts.devices[0].xdp = Ok(XdpFeatures(XdpFeatures::BASIC | XdpFeatures::REDIRECT | 4));
    let mode = check(&facts, &config, CheckKind::XdpMode);
    assert_eq!(mode.verdict, Verdict::Ok, "{mode}");
    assert!(
        mode.detail
            .starts_with("driver (native) XDP on eth1, which netvsc hands to enP1s1")
            && mode.detail.contains("copy-mode sockets (no xsk-zerocopy)"),
        "{mode}"
    );
    let mut zero_copy = config.clone();
    zero_copy.mode = CaptureMode::ZeroCopy;
    assert_eq!(
        check(&facts, &zero_copy, CheckKind::XdpMode).verdict,
        Verdict::Fail
    );

    // MTU: above one page's worth, netvsc takes no XDP program.
    facts.devices[0].mtu = Some(4000);
    let mtu = check(&facts, &config, CheckKind::Mtu);
    assert_eq!(mtu.verdict, Verdict::Fail, "{mtu}");
    assert!(
        mtu.detail
            .contains("hv_netvsc takes no XDP program above MTU 3506"),
        "{mtu}"
    );
    facts.devices[0].mtu = Some(1500);
    let mtu = check(&facts, &config, CheckKind::Mtu);
    assert_eq!(mtu.verdict, Verdict::Ok, "{mtu}");
    assert!(
        mtu.detail
            .contains("the largest frame that fits: 1776 bytes"),
        "{mtu}"
    );
}

#[test]
fn naming_the_vf_warns_that_servicing_removes_it_and_names_its_master() {
    let tree = Tree::new("nv");
    tree.accelerated_networking();
    let facts = gather(&tree, &CaptureConfig::new("enP1s1"));
    let stack = check(
        &facts,
        &CaptureConfig::new("enP1s1"),
        CheckKind::DeviceStack,
    );
    assert_eq!(stack.verdict, Verdict::Warn, "{stack}");
    assert!(stack.detail.contains("servicing removes it"), "{stack}");
    assert!(stack
        .hint
        .as_deref()
        .is_some_and(|h| h.starts_with("capture on eth1")));
}

#[test]
fn a_plain_veth_passes_and_the_memlock_limit_counts_unless_cap_ipc_lock() {
    let tree = Tree::new("veth");
    tree.device("veth0", None, 7, 1);
    let config = CaptureConfig::new("veth0");
    let mut facts = gather(&tree, &config);
    assert_eq!(facts.devices.len(), 1);
    assert_eq!(facts.named().role, Role::Plain);
    assert!(!facts.named().physical);
    let stack = check(&facts, &config, CheckKind::DeviceStack);
    assert_eq!(
        (stack.verdict, stack.detail.as_str()),
        (Verdict::Ok, "veth0: no driver (virtual)")
    );
    assert_eq!(
        check(&facts, &config, CheckKind::UdpHash).verdict,
        Verdict::Ok,
        "one queue"
    );
    assert_eq!(
        check(&facts, &config, CheckKind::Kernel).verdict,
        Verdict::Ok
    );
    assert_eq!(
        check(&facts, &config, CheckKind::PortConsumers).verdict,
        Verdict::Ok
    );
    let irqs = check(&facts, &config, CheckKind::IrqAffinity);
    assert_eq!(irqs.verdict, Verdict::Ok, "{irqs}");

    // 1 queue × 8192 frames × 2048 bytes = 16 MiB against 8 MiB.
    let memlock = check(&facts, &config, CheckKind::Memlock);
    assert_eq!(memlock.verdict, Verdict::Fail, "{memlock}");
    assert!(memlock.detail.contains("8192 KiB"), "{memlock}");
    tree.file("proc/self/status", "CapEff:\t0000000000004000\n");
    facts = gather(&tree, &config);
    assert!(facts.ipc_lock);
    assert_eq!(
        check(&facts, &config, CheckKind::Memlock).verdict,
        Verdict::Ok
    );

    // A jumbo MTU does not fit a page-sized UMEM frame.
    facts.devices[0].mtu = Some(9000);
    let mtu = check(&facts, &config, CheckKind::Mtu);
    assert_eq!(mtu.verdict, Verdict::Fail, "{mtu}");
    assert!(
        mtu.hint.as_deref().is_some_and(|h| h.contains("mtu 3802")),
        "{mtu}"
    );
}

#[test]
fn a_kernel_socket_on_the_geneve_port_fails_too() {
    let tree = Tree::new("geneve-port");
    tree.device("eth0", None, 2, 1);
    // 0x17C1 = 6081 with no process (a kernel GENEVE device's socket).
    tree.file(
        "proc/net/udp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
         \x20  1: 00000000:17C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5151 2 0000000000000000 0\n",
    );
    let config = CaptureConfig::new("eth0");
    let facts = gather(&tree, &config);
    assert_eq!(facts.udp_sockets.len(), 1);
    let users = check(&facts, &config, CheckKind::PortConsumers);
    assert_eq!(users.verdict, Verdict::Fail, "{users}");
    assert!(users.detail.contains("receive UDP 4789, 6081"), "{users}");
    // With GENEVE off, 6081 is not ours.
    let mut off = CaptureConfig::new("eth0");
    off.ports = off.ports.with_geneve(&[]).expect("no GENEVE");
    let facts = gather(&tree, &off);
    assert!(facts.udp_sockets.is_empty());
    assert_eq!(
        check(&facts, &off, CheckKind::PortConsumers).verdict,
        Verdict::Ok
    );
}

#[test]
fn other_receivers_of_the_vxlan_port_fail_and_are_named() {
    let tree = Tree::new("port");
    tree.device("eth0", None, 2, 1);
    // 0x12B5 = 4789, held by pid 77 (socat); 0x1F90 = 8080 is not ours.
    tree.file(
        "proc/net/udp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
         \x20  1: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
         \x20  2: 00000000:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 0\n",
    );
    tree.link("proc/77/fd/3", "socket:[4242]");
    tree.file("proc/77/comm", "socat\n");
    let config = CaptureConfig::new("eth0");
    let mut facts = gather(&tree, &config);
    assert_eq!(
        facts.udp_sockets,
        [UdpSocket {
            port: 4789,
            v6: false,
            inode: 4242,
            owner: Some("socat (pid 77)".into()),
        }]
    );
    let users = check(&facts, &config, CheckKind::PortConsumers);
    assert_eq!(users.verdict, Verdict::Fail, "{users}");
    assert!(
        users
            .detail
            .starts_with("a udp socket on port 4789 of socat (pid 77)"),
        "{users}"
    );

    // A kernel VXLAN device: its own socket (no process) is not named twice.
    facts.udp_sockets[0].owner = None;
    let vxlan = Link {
        index: 9,
        name: "vxlan0".into(),
        up: true,
        kind: Some("vxlan".into()),
        vxlan_port: Some(4789),
        master: None,
    };
    facts.links = Ok(vec![vxlan.clone()]);
    let users = check(&facts, &config, CheckKind::PortConsumers);
    assert_eq!(users.verdict, Verdict::Fail, "{users}");
    assert!(
        users
            .detail
            .starts_with("kernel VXLAN device vxlan0 (dstport 4789) receive UDP 4789, 6081"),
        "{users}"
    );
    facts.udp_sockets.clear();
    facts.links = Ok(vec![Link {
        up: false,
        ..vxlan.clone()
    }]);
    assert_eq!(
        check(&facts, &config, CheckKind::PortConsumers).verdict,
        Verdict::Warn
    );
    facts.links = Ok(vec![Link {
        vxlan_port: Some(4790),
        ..vxlan
    }]);
    assert_eq!(
        check(&facts, &config, CheckKind::PortConsumers).verdict,
        Verdict::Ok
    );
}

#[test]
fn old_kernels_lack_features_by_version() {
    assert_eq!(kernel_version("6.18.0-1-amd64"), Some((6, 18)));
    assert_eq!(kernel_version("5.4"), Some((5, 4)));
    assert_eq!(kernel_version("x"), None);
    let tree = Tree::new("kernel");
    tree.device("eth0", None, 2, 1);
    let config = CaptureConfig::new("eth0");
    let mut facts = gather(&tree, &config);
    for (release, verdict) in [
        ("6.18.0", Verdict::Ok),
        ("6.12.0", Verdict::Warn),
        ("5.10.0", Verdict::Warn),
        ("5.3.0", Verdict::Fail),
    ] {
        facts.kernel_release = Some(release.into());
        let kernel = check(&facts, &config, CheckKind::Kernel);
        assert_eq!(kernel.verdict, verdict, "{kernel}");
    }
}

#[test]
fn without_a_name_every_up_device_but_loopback_and_enslaved_ones_is_checked() {
    let tree = Tree::new("up");
    tree.accelerated_networking();
    tree.device("lo", None, 1, 1);
    tree.file("sys/class/net/lo/flags", "0x9\n");
    tree.device("eth2", None, 5, 1);
    tree.file("sys/class/net/eth2/flags", "0x1002\n");
    assert_eq!(interfaces_up(&tree.host()), ["eth1"]);
    let missing = diagnose(&tree.host(), &CaptureConfig::new("nosuch0"));
    assert!(matches!(&missing, Err(DoctorError::NoInterface(n)) if n == "nosuch0"));
}
