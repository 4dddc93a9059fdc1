//! Thin AF_XDP receive interface: one socket and one UMEM per rx queue.
//!
//! This crate is the only place in vxdecap that touches ring memory, so
//! every `unsafe` block of the data path lives here. The AF_XDP library
//! underneath (xsk-rs, which wraps libxdp) is hidden behind [`RxSocket`]
//! and [`RxBatch`]; swapping it for another library means rewriting this
//! file only.
//!
//! # Frame ownership
//! All UMEM frames start on the fill ring. Two ways to take them off the
//! RX ring:
//! - [`RxSocket::rx_batch`] returns an [`RxBatch`] guard that lends the
//!   bytes of up to `n` frames out. Dropping the guard puts every frame of
//!   the batch back on the fill ring (and wakes the kernel when it asked
//!   for it through `need_wakeup`); the borrow checker ties each `&[u8]`
//!   to the guard.
//! - [`RxSocket::receive`] hands each frame out as an [`RxFrame`], an owned
//!   token that can travel to other threads. A [`UmemView`] (a cloneable,
//!   `Send + Sync` handle on the UMEM) reads a frame's bytes for as long as
//!   its token is borrowed, and [`RxSocket::recycle`] consumes tokens to put
//!   their frames back on the fill ring. The kernel writes a frame only
//!   after it was put on the fill ring, tokens cannot be cloned or forged,
//!   and recycling takes them by value, so no bytes can be read while the
//!   kernel may write them. A token that is dropped instead of recycled
//!   loses its frame for the life of the socket (a leak, never a data race).
//!
//! # Memory ordering
//! The ring producer and consumer indices are read with acquire and
//! written with release ordering by libxdp's `xsk_ring_*` inline
//! functions, which pair with the kernel's `smp_load_acquire` /
//! `smp_store_release` on the same indices: descriptor contents (and the
//! frame bytes they describe) are visible before the index that
//! publishes them.

use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig as XskSocketConfig,
    UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Default number of descriptors on the RX ring: at 400 kpps it absorbs a
/// worker being descheduled for 10 ms (seen on a 2-core VM with 2048).
pub const DEFAULT_RX_RING: u32 = 4096;
/// Default number of UMEM frames (16 MiB at 2 KiB each); all of them fit on the fill ring.
pub const DEFAULT_FRAME_COUNT: u32 = 8192;
/// Default UMEM frame size: fits a 1500-byte MTU frame plus headroom.
pub const DEFAULT_FRAME_SIZE: u32 = 2048;

/// The bind mode asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindRequest {
    /// Zero-copy when the driver supports it, copy mode otherwise.
    #[default]
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode even when the driver could do zero-copy.
    Copy,
}

/// The bind mode the kernel granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Frames are DMA'd straight into the UMEM.
    ZeroCopy,
    /// The kernel copies each frame into the UMEM.
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroCopy => "zero-copy",
            Self::Copy => "copy",
        })
    }
}

/// Preferred busy polling for one socket (`SO_PREFER_BUSY_POLL`,
/// `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`): the application's own
/// [`RxSocket::kick`] runs the queue's NAPI poll — the driver's receive
/// work and the XDP program — in the calling thread, instead of a softirq
/// or a NAPI thread that would compete with it for the CPU. The device
/// keeps its interrupts (or, on veth, its NAPI scheduling) off between
/// kicks only when its `napi_defer_hard_irqs` and `gro_flush_timeout` are
/// set; without them busy polling still works, with less effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: µs a blocking call may busy-poll (must be > 0 for
    /// any busy polling).
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: frames one NAPI poll may process.
    pub budget: u16,
}

impl Default for BusyPoll {
    fn default() -> Self {
        Self {
            usecs: 20,
            budget: 64,
        }
    }
}

/// Sizes and mode of one socket + UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// UMEM frame size in bytes: a power of two from 2048 to the page size.
    pub frame_size: u32,
    /// Number of UMEM frames; a power of two. It is also the fill ring size.
    pub frame_count: u32,
    /// RX ring size in descriptors; a power of two.
    pub rx_ring: u32,
    /// Bind mode to ask for.
    pub bind: BindRequest,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            frame_size: DEFAULT_FRAME_SIZE,
            frame_count: DEFAULT_FRAME_COUNT,
            rx_ring: DEFAULT_RX_RING,
            bind: BindRequest::Auto,
        }
    }
}

impl SocketConfig {
    /// Checks the sizes; the message names the fix.
    pub fn validate(&self) -> Result<(), XskError> {
        let page = page_size();
        if !self.frame_size.is_power_of_two() || self.frame_size < 2048 || self.frame_size > page {
            return Err(XskError::Config(format!(
                "frame size {} is invalid: use a power of two from 2048 to {page}",
                self.frame_size
            )));
        }
        for (what, value) in [
            ("frame count", self.frame_count),
            ("rx ring size", self.rx_ring),
        ] {
            if !value.is_power_of_two() || value < 64 {
                return Err(XskError::Config(format!(
                    "{what} {value} is invalid: use a power of two of at least 64"
                )));
            }
        }
        Ok(())
    }
}

/// Counters the kernel keeps for one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    /// Frames dropped for reasons other than invalid descriptors.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid descriptors on the RX side.
    pub rx_invalid_descs: u64,
}

impl XskStatistics {
    /// Adds another socket's counters to these.
    pub fn merge(&mut self, other: &Self) {
        self.rx_dropped += other.rx_dropped;
        self.rx_ring_full += other.rx_ring_full;
        self.rx_fill_ring_empty += other.rx_fill_ring_empty;
        self.rx_invalid_descs += other.rx_invalid_descs;
    }
}

/// The library's own error, kept as the source of an [`XskError`].
pub type LibraryError = Box<dyn std::error::Error + Send + Sync>;

/// Failures to set up a socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// Bad sizes or mode.
    #[error("{0}")]
    Config(String),
    /// The UMEM could not be created.
    #[error("cannot create the UMEM")]
    Umem(#[source] LibraryError),
    /// The socket could not be created or bound.
    #[error(
        "cannot bind an AF_XDP socket to {interface} queue {queue}{}",
        bind_hint(*.errno)
    )]
    Socket {
        /// Interface name.
        interface: String,
        /// Rx queue index.
        queue: u32,
        /// OS error number, when there is one.
        errno: Option<i32>,
        /// What the library reported.
        #[source]
        source: LibraryError,
    },
}

/// What to try for a bind that failed with `errno`.
fn bind_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) => {
            " (the driver has no zero-copy support: use --mode copy or --mode auto)"
        }
        Some(libc::EBUSY) => {
            " (another AF_XDP socket is bound to that queue: stop the other capture)"
        }
        Some(libc::EINVAL) => {
            " (the queue may not exist on this interface: check --queues against `ethtool -l`)"
        }
        Some(libc::EPERM) => " (run as root or with CAP_NET_RAW and CAP_BPF)",
        _ => "",
    }
}

/// Distinguishes UMEMs, so a token is never read through another UMEM's view.
static NEXT_UMEM_ID: AtomicU32 = AtomicU32::new(1);

/// A received frame owned by user space: read it through a [`UmemView`] of
/// the socket it came from, give it back with [`RxSocket::recycle`].
#[derive(Debug)]
pub struct RxFrame {
    desc: FrameDesc,
    umem: u32,
}

impl RxFrame {
    /// Bytes of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
    }

    /// True for an empty frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Read access to the frames of one UMEM from any thread. Cloning is cheap
/// (reference counts); the UMEM stays mapped while a view exists, even
/// after its socket is closed.
#[derive(Clone)]
pub struct UmemView {
    umem: Umem,
    id: u32,
}

impl fmt::Debug for UmemView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UmemView")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl UmemView {
    /// True when both views map the same UMEM.
    #[inline]
    pub fn same_umem(&self, other: &Self) -> bool {
        self.id == other.id
    }

    /// The bytes of `frame`, as the NIC delivered them; empty when the
    /// frame belongs to another UMEM.
    #[inline]
    pub fn bytes<'a>(&'a self, frame: &'a RxFrame) -> &'a [u8] {
        if frame.umem != self.id {
            return &[];
        }
        // SAFETY: the token came off the RX ring of this UMEM's socket (the
        // ids match and tokens cannot be forged), so its descriptor lies in
        // this UMEM. While the token exists its frame is not on the fill
        // ring, so the kernel does not write it, and the returned slice
        // borrows the token, which therefore cannot be recycled meanwhile.
        unsafe { self.umem.data(&frame.desc) }.contents()
    }

    /// Writes `bytes` over `frame`'s bytes from `at` (a synthetic header over headers
    /// already read); false, writing nothing, when they do not fit or the frame belongs to
    /// another UMEM.
    #[inline]
    pub fn write_at(&self, frame: &mut RxFrame, at: usize, bytes: &[u8]) -> bool {
        if frame.umem != self.id {
            return false;
        }
        // SAFETY: as in `bytes`, the token came off this UMEM's RX ring, so its descriptor
        // lies in this UMEM and the kernel does not write the frame while the token exists.
        // The token is borrowed mutably for the write, and tokens are neither Clone nor
        // Copy, so no other slice of this frame (shared or mutable) exists meanwhile: leased
        // frames are read only through tokens a batch owns.
        let mut data = unsafe { self.umem.data_mut(&mut frame.desc) };
        match data
            .contents_mut()
            .get_mut(at..at.saturating_add(bytes.len()))
        {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

/// One AF_XDP socket bound to one rx queue, with its own UMEM.
pub struct RxSocket {
    umem: Umem,
    umem_id: u32,
    fill: FillQueue,
    rx: RxQueue,
    // Kept so the socket and its rings stay alive; we never transmit.
    _tx: TxQueue,
    _comp: CompQueue,
    /// Descriptors of the batch in flight (len = batch capacity).
    descs: Vec<FrameDesc>,
    mode: BindMode,
    fill_failures: u64,
    wakeups: u64,
    kicks: u64,
}

impl fmt::Debug for RxSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxSocket")
            .field("fd", &self.as_raw_fd())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl RxSocket {
    /// Creates the UMEM, binds a socket to `interface` queue `queue`, and
    /// puts every frame on the fill ring. `batch` is the most descriptors
    /// one [`RxBatch`] holds. No XDP program is loaded: the caller steers
    /// traffic here by putting [`AsRawFd::as_raw_fd`] in its XSKMAP.
    pub fn open(
        interface: &str,
        queue: u32,
        config: &SocketConfig,
        batch: usize,
    ) -> Result<Self, XskError> {
        config.validate()?;
        let sock_err = |source: LibraryError, errno: Option<i32>| XskError::Socket {
            interface: interface.to_owned(),
            queue,
            errno,
            source,
        };
        let umem_config = UmemConfig::builder()
            .frame_size(
                FrameSize::new(config.frame_size).map_err(|e| XskError::Config(e.to_string()))?,
            )
            .fill_queue_size(
                QueueSize::new(config.frame_count).map_err(|e| XskError::Config(e.to_string()))?,
            )
            .comp_queue_size(QueueSize::new(64).map_err(|e| XskError::Config(e.to_string()))?)
            .build()
            .map_err(|e| XskError::Config(e.to_string()))?;
        let frame_count = NonZeroU32::new(config.frame_count)
            .ok_or_else(|| XskError::Config("frame count must not be zero".into()))?;
        let (umem, frames) =
            Umem::new(umem_config, frame_count, false).map_err(|e| XskError::Umem(Box::new(e)))?;

        let mut bind_flags = BindFlags::XDP_USE_NEED_WAKEUP;
        match config.bind {
            BindRequest::Auto => {}
            BindRequest::ZeroCopy => bind_flags |= BindFlags::XDP_ZEROCOPY,
            BindRequest::Copy => bind_flags |= BindFlags::XDP_COPY,
        }
        let socket_config = XskSocketConfig::builder()
            .rx_queue_size(
                QueueSize::new(config.rx_ring).map_err(|e| XskError::Config(e.to_string()))?,
            )
            .tx_queue_size(QueueSize::new(64).map_err(|e| XskError::Config(e.to_string()))?)
            // We load and own the XDP program; libxdp must not attach its own.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind_flags)
            .build();
        let name: Interface = interface
            .parse()
            .map_err(|_| sock_err("interface name contains a NUL byte".into(), None))?;
        // SAFETY: the UMEM is fresh and not shared with any other socket,
        // so the shared-UMEM double-free hazard of `Socket::new` cannot occur.
        let (tx, rx, fill_comp) =
            unsafe { xsk_rs::Socket::new(socket_config, &umem, &name, queue) }.map_err(|e| {
                let errno = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<io::Error>())
                    .and_then(io::Error::raw_os_error);
                sock_err(Box::new(e), errno)
            })?;
        let (mut fill, comp) = fill_comp.ok_or_else(|| {
            sock_err("the library returned no fill/completion rings".into(), None)
        })?;
        // SAFETY: the descriptors come from `Umem::new` on this UMEM and
        // none of them has been handed to the kernel yet.
        let filled = unsafe { fill.produce(&frames) };
        if filled != frames.len() {
            return Err(sock_err(
                format!("fill ring took {filled} of {} frames", frames.len()).into(),
                None,
            ));
        }
        let mode = query_bind_mode(rx.fd().as_raw_fd()).map_err(|e| {
            let errno = e.raw_os_error();
            sock_err(format!("cannot read socket options: {e}").into(), errno)
        })?;

        Ok(Self {
            umem,
            umem_id: NEXT_UMEM_ID.fetch_add(1, Ordering::Relaxed),
            fill,
            rx,
            _tx: tx,
            _comp: comp,
            descs: vec![FrameDesc::default(); batch.max(1)],
            mode,
            fill_failures: 0,
            wakeups: 0,
            kicks: 0,
        })
    }

    /// The bind mode the kernel granted.
    pub fn bind_mode(&self) -> BindMode {
        self.mode
    }

    /// Takes up to the batch capacity of received frames off the RX ring
    /// without blocking. Drop the batch to recycle its frames.
    #[inline]
    pub fn rx_batch(&mut self) -> RxBatch<'_> {
        // SAFETY: `descs` is ours; descriptors written by `consume` refer
        // to frames of this socket's UMEM, which the kernel no longer owns.
        let len = unsafe { self.rx.consume(&mut self.descs) };
        RxBatch { socket: self, len }
    }

    /// Moves up to `max` (and at most the batch capacity) received frames
    /// off the RX ring into `out` as tokens, without blocking and without
    /// growing `out` beyond its capacity; returns how many were added.
    #[inline]
    pub fn receive(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize {
        let room = (out.capacity() - out.len()).min(self.descs.len()).min(max);
        // SAFETY: `descs` is ours; the descriptors `consume` writes refer to
        // frames of this socket's UMEM that the kernel no longer owns, and
        // each becomes exactly one token.
        let n = unsafe { self.rx.consume(&mut self.descs[..room]) };
        let umem = self.umem_id;
        out.extend(self.descs[..n].iter().map(|&desc| RxFrame { desc, umem }));
        n
    }

    /// A view for reading the frames of tokens from [`RxSocket::receive`].
    pub fn view(&self) -> UmemView {
        UmemView {
            umem: self.umem.clone(),
            id: self.umem_id,
        }
    }

    /// Puts the frames of `frames` back on the fill ring (tokens of another
    /// UMEM are dropped: their frames stay with their own socket's caller).
    pub fn recycle<I: IntoIterator<Item = RxFrame>>(&mut self, frames: I) {
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            let mut n = 0;
            for frame in frames.by_ref() {
                if frame.umem == self.umem_id {
                    self.descs[n] = frame.desc;
                    n += 1;
                    if n == self.descs.len() {
                        break;
                    }
                }
            }
            self.refill(n);
        }
    }

    /// Turns on preferred busy polling for this socket (see [`BusyPoll`]).
    /// On Linux 6.18 only zero-copy sockets learn their queue's NAPI id (at
    /// bind); a copy-mode socket's stays 0 and busy polling does nothing.
    pub fn enable_busy_poll(&mut self, busy: &BusyPoll) -> io::Result<()> {
        set_busy_poll(self.rx.fd().as_raw_fd(), busy)
    }

    /// Drives the kernel's receive processing once without blocking: with
    /// busy polling on, runs the queue's NAPI poll in this thread (up to the
    /// budget); otherwise wakes the driver when it asked (`need_wakeup`).
    #[inline]
    pub fn kick(&mut self) {
        self.kicks += 1;
        // SAFETY: a zero-length, non-blocking recvfrom on our own open
        // socket; no buffer is passed, so the kernel writes no memory.
        unsafe {
            libc::recvfrom(
                self.rx.fd().as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// The NAPI instance the kernel last saw deliver to this socket
    /// (`SO_INCOMING_NAPI_ID`): 0 until the first frame, and 0 for drivers
    /// whose receive queues carry no NAPI id, where busy polling cannot work.
    pub fn napi_id(&self) -> u32 {
        let mut id: libc::c_uint = 0;
        let mut len = size_of::<libc::c_uint>() as libc::socklen_t;
        // SAFETY: `id` and `len` are valid for writes of the sizes given,
        // and the fd is our own open socket.
        let rc = unsafe {
            libc::getsockopt(
                self.rx.fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_INCOMING_NAPI_ID,
                (&raw mut id).cast(),
                &raw mut len,
            )
        };
        if rc == 0 {
            id
        } else {
            0
        }
    }

    /// Kicks made ([`RxSocket::kick`]).
    pub fn kicks(&self) -> u64 {
        self.kicks
    }

    /// Sleeps until frames arrive or `timeout_ms` passes; also wakes the
    /// kernel's receive processing when it asked for it.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<bool> {
        self.rx.poll(timeout_ms)
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> io::Result<XskStatistics> {
        let stats = self.rx.fd().xdp_statistics()?;
        Ok(XskStatistics {
            rx_dropped: stats.rx_dropped(),
            rx_ring_full: stats.rx_ring_full(),
            rx_fill_ring_empty: stats.rx_fill_ring_empty_descs(),
            rx_invalid_descs: stats.rx_invalid_descs(),
        })
    }

    /// Times frames could not be put back on the fill ring at once.
    pub fn fill_failures(&self) -> u64 {
        self.fill_failures
    }

    /// Wake-up syscalls made because the kernel asked (`need_wakeup`).
    pub fn wakeups(&self) -> u64 {
        self.wakeups
    }

    /// Puts `descs[..len]` on the fill ring.
    fn refill(&mut self, len: usize) {
        let mut done = 0;
        while done < len {
            // SAFETY: `descs[..len]` were taken off the RX ring, either by
            // `rx_batch` (whose batch, which borrowed their bytes, is being
            // dropped) or as tokens of this UMEM that `recycle` consumed, so
            // no reference to these frames remains.
            let n = unsafe { self.fill.produce(&self.descs[done..len]) };
            if n == 0 {
                // Cannot happen while frame_count <= fill ring size, but
                // count it instead of losing frames, and let the kernel run.
                self.fill_failures += 1;
                std::thread::yield_now();
                continue;
            }
            done += n;
        }
        if self.fill.needs_wakeup() {
            self.wakeups += 1;
            // A failed wake-up poll only delays the kernel; the next batch retries.
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }
}

impl AsRawFd for RxSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }
}

/// Received frames lent out by [`RxSocket::rx_batch`]; dropping the batch
/// returns them to the fill ring.
pub struct RxBatch<'a> {
    socket: &'a mut RxSocket,
    len: usize,
}

impl fmt::Debug for RxBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxBatch").field("len", &self.len).finish()
    }
}

impl RxBatch<'_> {
    /// Number of frames in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was received.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of frame `index` (< `len()`), as the NIC delivered them.
    #[inline]
    pub fn frame(&self, index: usize) -> &[u8] {
        let desc = &self.socket.descs[..self.len][index];
        // SAFETY: the descriptor came off this socket's RX ring, so it lies
        // in this UMEM, and the kernel does not write the frame until the
        // batch is dropped and the frame goes back on the fill ring; the
        // returned slice borrows the batch, so it cannot outlive that.
        unsafe { self.socket.umem.data(desc) }.contents()
    }

    /// Iterates over the frames of the batch.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len).map(move |i| self.frame(i))
    }
}

impl Drop for RxBatch<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.socket.refill(self.len);
        }
    }
}

fn query_bind_mode(fd: RawFd) -> io::Result<BindMode> {
    let mut options = libc::xdp_options { flags: 0 };
    let mut len = size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `options` and `len` are valid for writes of the sizes given,
    // and `fd` is an open AF_XDP socket owned by the caller.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&raw mut options).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if options.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
        BindMode::ZeroCopy
    } else {
        BindMode::Copy
    })
}

// The socket options of preferred busy polling (Linux 5.11), as in
// include/uapi/asm-generic/socket.h (the values of every architecture but
// alpha, mips, parisc and sparc, which vxdecap does not build for).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

fn set_busy_poll(fd: RawFd, busy: &BusyPoll) -> io::Result<()> {
    for (option, value) in [
        (SO_PREFER_BUSY_POLL, 1),
        (SO_BUSY_POLL, busy.usecs as libc::c_int),
        (SO_BUSY_POLL_BUDGET, libc::c_int::from(busy.budget)),
    ] {
        // SAFETY: `value` is a valid c_int for reads of its size, and `fd`
        // is an open socket owned by the caller.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The system's page size: the largest UMEM frame without multi-buffer.
pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}
