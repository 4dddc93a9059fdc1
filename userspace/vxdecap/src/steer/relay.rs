//! Loads the relay's XDP program (xdp-prog/relay.bpf.c) for `vxdecap
//! relay`: its collectors, its consistent table, its allowlists and its
//! counters. The program is attached through a BPF link, as the capture's
//! is, so it goes when the [`RelayProgram`] is dropped or the process dies.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use vxdecap_wire::{PortSet, MAX_PORTS};

use super::allow::Allowlist;
use super::{
    attach_program, take_map, xdp_program, AllowMaps, AttachMode, AttachRequest, SteerError,
};
use crate::error::error_chain;

/// The object compiled from xdp-prog/relay.bpf.c by build.rs.
static RELAY_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay.bpf.o"));

/// Constants generated from xdp-prog/relay_shared.h by build.rs.
#[allow(dead_code, reason = "not every constant has a Rust-side use")]
mod shared {
    include!(concat!(env!("OUT_DIR"), "/relay_constants.rs"));
}

/// Slots in a consistent-hash table: `VXR_TABLE_SIZE` (a prime, as Maglev wants).
pub const TABLE_SIZE: usize = 4093;
/// Most collectors (`--to`): `VXR_MAX_DESTS`.
pub const MAX_DESTS: usize = 64;
/// Slots between the two tables in `vxr_table`.
const TABLE_STRIDE: u32 = 4096;

const _: () = assert!(MAX_DESTS as u64 == shared::VXR_MAX_DESTS);
const _: () = assert!(TABLE_SIZE as u64 == shared::VXR_TABLE_SIZE);
const _: () = assert!(TABLE_STRIDE as u64 == shared::VXR_TABLE_STRIDE);
const _: () = assert!(MAX_PORTS as u64 == shared::VXR_MAX_PORTS);
const _: () = assert!(RelayCounter::ALL.len() == shared::VXR_COUNTER_NAMES.len());
const _: () = assert!(shared::VXR_FIB_COUNTER_NAMES.len() == 2);

const PROGRAM: &str = "vxdecap_relay";

/// Mirrors `enum vxr_counter` in xdp-prog/relay_shared.h, in order: the
/// one decision the program took for each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RelayCounter {
    /// Relayed out of the interface it came in on.
    Tx = 0,
    /// Relayed out of another interface.
    Redirect,
    /// A later outer fragment, relayed where its first fragment went.
    Fragment,
    /// Not IPv4/IPv6.
    PassNotIp,
    /// Outer VLAN tag.
    PassVlan,
    /// IP but not UDP.
    PassNotUdp,
    /// UDP to a port not relayed.
    PassPort,
    /// Outer IP version other than the collectors'.
    PassFamily,
    /// Headers cut short or invalid.
    PassMalformed,
    /// A later outer fragment whose first fragment was not relayed.
    PassFragment,
    /// TTL would reach 0.
    PassTtl,
    /// The next hop's MAC is not resolved yet.
    PassNoNeighbour,
    /// No usable route to the collector.
    PassNoRoute,
    /// Forwarding is off on the ingress interface.
    PassForwardingOff,
    /// Bigger than the egress MTU.
    PassMtu,
    /// No collector in the table.
    PassNoCollector,
    /// Outer source outside the allowlist: dropped.
    DropSource,
    /// VNI outside the allowlist: dropped.
    DropVni,
    /// GENEVE cut short, not version 0, or carrying a protocol not relayed.
    PassGeneveMalformed,
    /// A tunnel inside GENEVE past the depth limit.
    PassTunnelDepth,
}

impl RelayCounter {
    /// Every counter, in map order.
    pub const ALL: [Self; 20] = [
        Self::Tx,
        Self::Redirect,
        Self::Fragment,
        Self::PassNotIp,
        Self::PassVlan,
        Self::PassNotUdp,
        Self::PassPort,
        Self::PassFamily,
        Self::PassMalformed,
        Self::PassFragment,
        Self::PassTtl,
        Self::PassNoNeighbour,
        Self::PassNoRoute,
        Self::PassForwardingOff,
        Self::PassMtu,
        Self::PassNoCollector,
        Self::DropSource,
        Self::DropVni,
        Self::PassGeneveMalformed,
        Self::PassTunnelDepth,
    ];

    /// True for the frames sent on to a collector.
    pub fn is_relayed(self) -> bool {
        matches!(self, Self::Tx | Self::Redirect | Self::Fragment)
    }

    /// Stable name for the summary and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tx => "relayed_tx",
            Self::Redirect => "relayed_redirect",
            Self::Fragment => "relayed_fragment",
            Self::PassNotIp => "pass_not_ip",
            Self::PassVlan => "pass_outer_vlan",
            Self::PassNotUdp => "pass_not_udp",
            Self::PassPort => "pass_other_port",
            Self::PassFamily => "pass_other_family",
            Self::PassMalformed => "pass_malformed",
            Self::PassFragment => "pass_outer_fragment",
            Self::PassTtl => "pass_ttl_exceeded",
            Self::PassNoNeighbour => "pass_no_neighbour",
            Self::PassNoRoute => "pass_no_route",
            Self::PassForwardingOff => "pass_forwarding_off",
            Self::PassMtu => "pass_mtu",
            Self::PassNoCollector => "pass_no_collector",
            Self::DropSource => "drop_source_not_allowed",
            Self::DropVni => "drop_vni_not_allowed",
            Self::PassGeneveMalformed => "pass_malformed_geneve",
            Self::PassTunnelDepth => "pass_tunnel_too_deep",
        }
    }

    /// The name of the C enumerator it mirrors.
    #[cfg(test)]
    fn c_name(self) -> &'static str {
        match self {
            Self::Tx => "VXR_CTR_TX",
            Self::Redirect => "VXR_CTR_REDIRECT",
            Self::Fragment => "VXR_CTR_FRAGMENT",
            Self::PassNotIp => "VXR_CTR_PASS_NOT_IP",
            Self::PassVlan => "VXR_CTR_PASS_VLAN",
            Self::PassNotUdp => "VXR_CTR_PASS_NOT_UDP",
            Self::PassPort => "VXR_CTR_PASS_PORT",
            Self::PassFamily => "VXR_CTR_PASS_FAMILY",
            Self::PassMalformed => "VXR_CTR_PASS_MALFORMED",
            Self::PassFragment => "VXR_CTR_PASS_FRAGMENT",
            Self::PassTtl => "VXR_CTR_PASS_TTL",
            Self::PassNoNeighbour => "VXR_CTR_PASS_NO_NEIGH",
            Self::PassNoRoute => "VXR_CTR_PASS_NO_ROUTE",
            Self::PassForwardingOff => "VXR_CTR_PASS_FORWARDING_OFF",
            Self::PassMtu => "VXR_CTR_PASS_MTU",
            Self::PassNoCollector => "VXR_CTR_PASS_NO_COLLECTOR",
            Self::DropSource => "VXR_CTR_DROP_SOURCE",
            Self::DropVni => "VXR_CTR_DROP_VNI",
            Self::PassGeneveMalformed => "VXR_CTR_PASS_GENEVE_MALFORMED",
            Self::PassTunnelDepth => "VXR_CTR_PASS_TUNNEL_DEPTH",
        }
    }
}

/// Totals of the relay's decision counters over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters(pub [u64; RelayCounter::ALL.len()]);

impl RelayCounters {
    /// One counter's total.
    pub fn get(&self, counter: RelayCounter) -> u64 {
        self.0[counter as usize]
    }

    /// Frames relayed to a collector.
    pub fn relayed(&self) -> u64 {
        RelayCounter::ALL
            .into_iter()
            .filter(|c| c.is_relayed())
            .map(|c| self.get(c))
            .sum()
    }
}

/// What the program's FIB cache did (`enum vxr_fib_counter`), over all CPUs:
/// every frame that reached the FIB was either answered from the cache or
/// looked up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibCacheCounters {
    /// Answered from the CPU's cache (`VXR_FIB_CTR_HIT`).
    pub hits: u64,
    /// Looked up with `bpf_fib_lookup` (`VXR_FIB_CTR_LOOKUP`): no entry, a
    /// stale one, or one for another ingress, TOS or a smaller size.
    pub lookups: u64,
}

/// Makes every answer in the program's FIB cache stale: moves the
/// generation in `vxr_fib_generation`, under which the program stores
/// what it looks up. Cheap to clone and usable from any thread (the
/// rtnetlink watcher, the main loop); never on the data path.
#[derive(Clone)]
pub struct FibInvalidator {
    inner: Arc<Mutex<FibGeneration>>,
}

impl std::fmt::Debug for FibInvalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibInvalidator").finish_non_exhaustive()
    }
}

struct FibGeneration {
    map: Array<MapData, u64>,
    /// The generation in force; only ever grows, so an entry's generation is never seen again
    /// once moved past (0 means the cache is off, and is never written).
    value: u64,
    /// Times moved (after the first).
    moves: u64,
    /// Off: the map holds 0 (the program looks every frame up), and moves are not written.
    off: bool,
}

impl FibInvalidator {
    /// Makes the cached answers stale: the next frame to each collector is
    /// looked up again.
    pub fn invalidate(&self) -> Result<(), SteerError> {
        let mut generation = self.inner.lock().map_err(|_| SteerError::Map {
            map: "vxr_fib_generation",
            detail: "lock poisoned".into(),
        })?;
        let next = generation.value + 1;
        let written = if generation.off { 0 } else { next };
        generation
            .map
            .set(0, written, 0)
            .map_err(|e| map_error("vxr_fib_generation", &e))?;
        generation.value = next;
        generation.moves += 1;
        Ok(())
    }

    /// Turns the cache off (every frame is looked up, as without it) or
    /// on again (with a new generation: nothing stored before answers).
    pub fn set_enabled(&self, on: bool) -> Result<(), SteerError> {
        self.lock()?.off = !on;
        self.invalidate()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, FibGeneration>, SteerError> {
        self.inner.lock().map_err(|_| SteerError::Map {
            map: "vxr_fib_generation",
            detail: "lock poisoned".into(),
        })
    }

    /// Times the cache was made stale.
    pub fn invalidations(&self) -> u64 {
        self.inner.lock().map(|g| g.moves).unwrap_or_default()
    }
}

/// A collector as the program sees it: where to, and from which address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayDest {
    /// The collector's address (the new outer destination).
    pub addr: IpAddr,
    /// This host's address towards it (the new outer source), of the same family.
    pub source: IpAddr,
}

impl RelayDest {
    /// `struct vxr_dest` as twelve u32 words (addresses as stored: network order).
    fn words(&self) -> Result<[u32; 12], SteerError> {
        let mut w = [0u32; 12];
        match (self.addr, self.source) {
            (IpAddr::V4(d), IpAddr::V4(s)) => {
                w[0] = u32::from_ne_bytes(d.octets());
                w[1] = u32::from_ne_bytes(s.octets());
                w[10] = 4;
            }
            (IpAddr::V6(d), IpAddr::V6(s)) => {
                for (i, (dc, sc)) in d
                    .octets()
                    .chunks_exact(4)
                    .zip(s.octets().chunks_exact(4))
                    .enumerate()
                {
                    w[2 + i] = u32::from_ne_bytes([dc[0], dc[1], dc[2], dc[3]]);
                    w[6 + i] = u32::from_ne_bytes([sc[0], sc[1], sc[2], sc[3]]);
                }
                w[10] = 6;
            }
            _ => {
                return Err(SteerError::Map {
                    map: "vxr_dests",
                    detail: format!(
                        "collector {} and source {} differ in family",
                        self.addr, self.source
                    ),
                })
            }
        }
        Ok(w)
    }
}

/// The loaded relay program with its maps.
pub struct RelayProgram {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
    dest_packets: PerCpuArray<MapData, u64>,
    dest_bytes: PerCpuArray<MapData, u64>,
    dests: Array<MapData, [u32; 12]>,
    table: Array<MapData, u32>,
    config: Array<MapData, [u32; 2]>,
    allow: AllowMaps,
    fib_counters: PerCpuArray<MapData, u64>,
    fib_generation: FibInvalidator,
    /// Which of the two tables the program reads.
    table_in_use: u32,
    interface: String,
}

impl std::fmt::Debug for RelayProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayProgram")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl RelayProgram {
    /// Loads the program relaying `ports` (VXLAN and GENEVE, with their depth limit); nothing
    /// is attached, and no collector is set (everything passes) until [`Self::set_dests`] and
    /// [`Self::set_table`]. Its FIB cache is on: whoever runs it must call
    /// [`FibInvalidator::invalidate`] on every change that can move a FIB answer
    /// ([`crate::relay::fib_watch`] does).
    pub fn load(interface: &str, ports: &PortSet) -> Result<Self, SteerError> {
        let (port_array, port_count) = super::port_globals(ports.as_slice());
        let (geneve_array, geneve_count) = super::port_globals(ports.geneve());
        let max_depth = u32::from(ports.max_depth());
        let mut ebpf = EbpfLoader::new()
            .override_global("vxr_ports", &port_array, true)
            .override_global("vxr_port_count", &port_count, true)
            .override_global("vxr_geneve_ports", &geneve_array, true)
            .override_global("vxr_geneve_port_count", &geneve_count, true)
            .override_global("vxr_max_depth", &max_depth, true)
            .load(RELAY_OBJECT)
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        xdp_program(&mut ebpf, PROGRAM)?
            .load()
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        let mut generation: Array<MapData, u64> = take_map(&mut ebpf, "vxr_fib_generation")?;
        // Generation 1: the empty entries (generation 0) never answer.
        generation
            .set(0, 1, 0)
            .map_err(|e| map_error("vxr_fib_generation", &e))?;
        Ok(Self {
            fib_counters: take_map(&mut ebpf, "vxr_fib_counters")?,
            fib_generation: FibInvalidator {
                inner: Arc::new(Mutex::new(FibGeneration {
                    map: generation,
                    value: 1,
                    moves: 0,
                    off: false,
                })),
            },
            counters: take_map(&mut ebpf, "vxr_counters")?,
            dest_packets: take_map(&mut ebpf, "vxr_dest_packets")?,
            dest_bytes: take_map(&mut ebpf, "vxr_dest_bytes")?,
            dests: take_map(&mut ebpf, "vxr_dests")?,
            table: take_map(&mut ebpf, "vxr_table")?,
            config: take_map(&mut ebpf, "vxr_config")?,
            allow: AllowMaps::take(&mut ebpf)?,
            ebpf,
            table_in_use: 0,
            interface: interface.to_owned(),
        })
    }

    /// Attaches the program to the interface through a BPF link.
    pub fn attach(&mut self, request: AttachRequest) -> Result<AttachMode, SteerError> {
        attach_program(
            xdp_program(&mut self.ebpf, PROGRAM)?,
            &self.interface,
            request,
        )
        .map(|(mode, _)| mode)
    }

    /// Sets the collectors, by index (at most [`MAX_DESTS`]), and makes
    /// the FIB cache's answers for the old ones stale.
    pub fn set_dests(&mut self, dests: &[RelayDest]) -> Result<(), SteerError> {
        if dests.len() > MAX_DESTS {
            return Err(SteerError::Map {
                map: "vxr_dests",
                detail: format!("{} collectors, at most {MAX_DESTS}", dests.len()),
            });
        }
        for (i, d) in dests.iter().enumerate() {
            let value = d.words()?;
            self.dests
                .set(i as u32, value, 0)
                .map_err(|e| map_error("vxr_dests", &e))?;
        }
        self.fib_generation.invalidate()
    }

    /// A handle that makes the FIB cache's answers stale, for the thread
    /// that follows the kernel's routing changes.
    pub fn fib_invalidator(&self) -> FibInvalidator {
        self.fib_generation.clone()
    }

    /// What the FIB cache did, summed over CPUs.
    pub fn fib_counters(&self) -> Result<FibCacheCounters, SteerError> {
        let total = |i: u32| -> Result<u64, SteerError> {
            Ok(self
                .fib_counters
                .get(&i, 0)
                .map_err(|e| map_error("vxr_fib_counters", &e))?
                .iter()
                .sum())
        };
        Ok(FibCacheCounters {
            hits: total(0)?,
            lookups: total(1)?,
        })
    }

    /// Makes `table` (slot → collector index, [`TABLE_SIZE`] slots, or
    /// empty for none) the one in use: it is written into the table the
    /// program does not read, which is then switched in with one update,
    /// so no frame sees half of each.
    pub fn set_table(&mut self, table: &[u32]) -> Result<(), SteerError> {
        let next = self.table_in_use ^ 1;
        if !table.is_empty() {
            if table.len() != TABLE_SIZE {
                return Err(SteerError::Map {
                    map: "vxr_table",
                    detail: format!("{} slots, not {TABLE_SIZE}", table.len()),
                });
            }
            for (slot, &dest) in table.iter().enumerate() {
                self.table
                    .set(next * TABLE_STRIDE + slot as u32, dest, 0)
                    .map_err(|e| map_error("vxr_table", &e))?;
            }
        }
        let dests = u32::from(!table.is_empty());
        self.config
            .set(0, [next, dests], 0)
            .map_err(|e| map_error("vxr_config", &e))?;
        self.table_in_use = next;
        Ok(())
    }

    /// Makes `allow` the allowlist the program enforces (as the capture's).
    pub fn set_allowlist(&mut self, allow: &Allowlist) -> Result<(), SteerError> {
        self.allow.write(allow)
    }

    /// The decision counters, summed over CPUs.
    pub fn counters(&self) -> Result<RelayCounters, SteerError> {
        let mut totals = RelayCounters::default();
        for counter in RelayCounter::ALL {
            totals.0[counter as usize] = self
                .counters
                .get(&(counter as u32), 0)
                .map_err(|e| map_error("vxr_counters", &e))?
                .iter()
                .sum();
        }
        Ok(totals)
    }

    /// Frames and bytes relayed to each of the first `n` collectors.
    pub fn dest_counters(&self, n: usize) -> Result<Vec<(u64, u64)>, SteerError> {
        (0..n.min(MAX_DESTS) as u32)
            .map(|i| {
                let packets = self
                    .dest_packets
                    .get(&i, 0)
                    .map_err(|e| map_error("vxr_dest_packets", &e))?;
                let bytes = self
                    .dest_bytes
                    .get(&i, 0)
                    .map_err(|e| map_error("vxr_dest_bytes", &e))?;
                Ok((packets.iter().sum(), bytes.iter().sum()))
            })
            .collect()
    }

    /// Runs the loaded program once on `frame` (BPF_PROG_TEST_RUN, in the
    /// calling thread's network namespace, received on its loopback):
    /// returns the XDP action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), SteerError> {
        let mut out = vec![0u8; frame.len() + 256];
        let result = self.run_repeated(frame, Some(&mut out), 1)?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
    }

    /// Runs the loaded program `repeat` times on `frame` in one
    /// BPF_PROG_TEST_RUN (as [`Self::test_run`]) and returns the kernel's
    /// average time per run. The kernel does not restore the frame between
    /// runs: each sees the previous one's rewrite (its TTL one lower).
    pub fn time_run(&self, frame: &[u8], repeat: u32) -> Result<std::time::Duration, SteerError> {
        self.run_repeated(frame, None, repeat)
            .map(|result| result.duration)
    }

    fn run_repeated(
        &self,
        frame: &[u8],
        out: Option<&mut [u8]>,
        repeat: u32,
    ) -> Result<aya::programs::TestRunResult, SteerError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| SteerError::Load(format!("program {PROGRAM} missing")))?
            .try_into()
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: out,
                repeat,
                ..Default::default()
            })
            .map_err(|e| SteerError::Load(error_chain(&e)))
    }
}

fn map_error(map: &'static str, e: &aya::maps::MapError) -> SteerError {
    SteerError::Map {
        map,
        detail: error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_mirror_the_shared_header_in_order() {
        for (counter, c_name) in RelayCounter::ALL.iter().zip(shared::VXR_COUNTER_NAMES) {
            assert_eq!(c_name, counter.c_name(), "{}", counter.name());
        }
    }

    #[test]
    fn fib_counters_are_read_in_the_shared_headers_order() {
        assert_eq!(
            shared::VXR_FIB_COUNTER_NAMES,
            ["VXR_FIB_CTR_HIT", "VXR_FIB_CTR_LOOKUP"]
        );
    }
}
