//! Proves the reassembler's promise that `push` and `expire` never allocate: a counting global
//! allocator watches this thread while datagrams are pushed in every order, with duplicates,
//! overlaps, collisions, evictions and timeouts.
//!
//! This is the only unsafe code around the wire crate (which itself forbids it): implementing
//! `GlobalAlloc` needs it. It forwards to `System` and only adds a counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use vxdecap_wire::build::{fragment_ipv4, inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
use vxdecap_wire::reassembly::{Push, Reassembler, ReassemblyConfig, ReassemblyEvent};
use vxdecap_wire::{decapsulate, PortSet};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the thread under test counts (the test harness allocates on its own threads).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches no memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's `layout` obligations are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn push_and_expire_never_allocate() {
    // The counter itself works.
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))),
        1
    );

    // Everything that allocates is made up front: frames, fragments, the reassembler.
    // Half under IP ID 0 (the ambiguous-key policy, inner checksums), half numbered; half
    // with a real inner UDP packet (its checksum is verified), half with filler.
    let frames: Vec<Vec<u8>> = (0..6u8)
        .map(|i| {
            let len = 1000 + 700 * usize::from(i);
            let inner = if i % 2 == 0 {
                inner_ipv4_udp_frame(&InnerIpv4Udp {
                    payload_len: len,
                    payload_seed: i,
                    ..Default::default()
                })
                .expect("inner")
            } else {
                vec![i; len]
            };
            VxlanFrameBuilder::new()
                .outer_src_ip(Ipv4Addr::new(10, 0, 0, if i < 3 { 9 } else { i % 3 }))
                .ipv4_ident(if i < 3 { 0 } else { 100 + u16::from(i) })
                .inner(&inner)
                .build()
                .expect("valid")
        })
        .collect();
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for frame in &frames {
        let fragments = fragment_ipv4(frame, 576).expect("ipv4");
        // In order; reversed, with the middle one duplicated.
        pieces.extend(fragments.iter().cloned());
        pieces.extend(fragments.iter().rev().cloned());
        pieces.push(fragments[1].clone());
    }
    // Overlapping and colliding pieces: the first half of every fragment, then everything
    // again interleaved.
    let halves: Vec<Vec<u8>> = pieces.iter().map(|p| p[..p.len() / 2].to_vec()).collect();
    let mut reassembler = Reassembler::new(ReassemblyConfig {
        max_datagrams: 2,
        memory_budget: 40 * 512,
        timeout_ns: 5_000,
        ..ReassemblyConfig::default()
    })
    .expect("valid config");
    let allocated = reassembler.allocated_bytes();
    let ports = PortSet::default();
    let mut completed = 0;

    let allocations = allocations_in(|| {
        let mut now = 0;
        for round in 0..3 {
            for piece in pieces.iter().chain(&halves) {
                now += 1_000;
                if let Push::Complete(whole) = reassembler.push(piece, now) {
                    if decapsulate(whole, &ports).is_ok() {
                        completed += 1;
                    }
                }
                if round == 2 {
                    reassembler.expire(now);
                }
            }
            for (a, b) in pieces.iter().zip(pieces.iter().rev()) {
                reassembler.push(a, now);
                reassembler.push(b, now);
            }
        }
        reassembler.expire(u64::MAX);
    });

    assert_eq!(allocations, 0, "push/expire allocated");
    assert_eq!(reassembler.allocated_bytes(), allocated);
    assert!(completed > 0);
    let counters = reassembler.counters();
    for event in [
        ReassemblyEvent::Reassembled,
        ReassemblyEvent::Duplicate,
        ReassemblyEvent::Timeout,
        ReassemblyEvent::EvictedNoSlot,
        ReassemblyEvent::AmbiguousTail,
        ReassemblyEvent::AmbiguousHead,
        ReassemblyEvent::Merged,
    ] {
        assert!(counters.get(event) > 0, "{} never happened", event.name());
    }
    assert!(
        counters.get(ReassemblyEvent::Overlap) + counters.get(ReassemblyEvent::Collision) > 0,
        "no overlap or collision"
    );
}
