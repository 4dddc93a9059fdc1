//! File output with tcpdump-style rotation (`-C`, `-G`, `-W`).
//!
//! - `-C` size: before a frame would take the file past the limit, the file
//!   is closed and the next opened, so files stay at or under the limit
//!   (tcpdump instead rotates after a file has passed it). A frame larger
//!   than the limit still gets a file of its own.
//! - `-G` seconds of wall time since the file was opened. The clock is read
//!   when the queues run dry (`on_idle`, so rotation happens with no
//!   traffic too, leaving an empty but complete file for a quiet interval)
//!   and every [`CLOCK_EVERY_FRAMES`] frames under load, never per frame.
//! - `-W N`: at most N files of this run exist at any time. With `-C` alone
//!   that is tcpdump's ring of names `name0`…`name{N-1}`. With `-G`,
//!   tcpdump stops capturing after N files; here the oldest file this run
//!   wrote is deleted instead, so `-G 3600 -W 24` keeps the last day of an
//!   always-on mirror collector (to stop after a while, use `--duration`).
//!
//! Every file is complete alone: it starts with its own pcap header or
//! pcapng section header, and pcapng interfaces are declared again in each
//! file as their tunnels appear. A file is flushed when it is closed;
//! writes go through a 1 MiB buffer of whole records, also flushed whenever
//! the queues run dry, so a crash loses at most that buffer.
//!
//! A write error (a full disk) ends the output: the frames the files hold
//! are counted as written, every other frame taken as
//! `output_write_failed`, a partial record is cut off the file, and no
//! further file is started.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::filename::FileNamer;
use super::pcap::{failed_counts, write_all_frames};
use super::pcapng::PcapngOptions;
use super::record_out::cut_file;
use super::writer::{FrameWriter, OutputError, OutputFormat};
use super::{Analyzer, AnalyzerCounts, FileCounts};
use crate::datapath::batch::{FrameMeta, Frames, InnerFrame};

/// Buffer in front of each file.
const FILE_BUFFER: usize = 1 << 20;
/// Under load, frames between two clock reads for `-G`.
pub const CLOCK_EVERY_FRAMES: u32 = 64;

/// When to start a new file (all `None`: never, one file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// `-C`: largest file, in bytes.
    pub file_size: Option<u64>,
    /// `-G`: longest time a file stays open.
    pub interval: Option<Duration>,
    /// `-W`: most files kept.
    pub files: Option<u32>,
}

impl Rotation {
    /// True when more than one file may be written.
    pub fn is_rotating(&self) -> bool {
        self.file_size.is_some() || self.interval.is_some()
    }

    /// Refuses settings that cannot work together.
    pub fn check(&self) -> Result<(), OutputError> {
        if self.files.is_some() && !self.is_rotating() {
            return Err(OutputError::Rotation(
                "-W bounds the files of a rotated output: add -C (size) or -G (time)",
            ));
        }
        if self.files == Some(0) || self.file_size == Some(0) {
            return Err(OutputError::Rotation("-C and -W must be at least 1"));
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err(OutputError::Rotation("-G must be at least 1 second"));
        }
        Ok(())
    }
}

/// Wall-clock time for `-G`.
pub trait Clock: Send {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

/// Writes frames to a file, or to a sequence of files when rotating.
#[derive(Debug)]
pub struct RotatingWriter<C: Clock = SystemClock> {
    /// The `-w` name or pattern (for reports).
    pattern: String,
    namer: FileNamer,
    format: OutputFormat,
    pcapng: PcapngOptions,
    rotation: Rotation,
    clock: C,
    /// The open file (`None` after `finish` or a failed rotation).
    current: Option<FrameWriter<File>>,
    current_path: String,
    /// When the current `-G` interval began.
    opened_ns: u64,
    /// tcpdump's `-C` counter within the interval.
    size_index: u32,
    /// Files of this run, oldest first (tracked only with `-W`).
    kept: VecDeque<String>,
    frames_since_clock: u32,
    files_opened: u64,
    /// Frames in the files closed so far, and frames lost to write errors
    /// in them (the open file counts its own).
    closed_written: u64,
    closed_failed: u64,
    /// Frames taken when no file was open (a failed rotation, or after finish).
    lost: u64,
    /// A write failed: no new file is started, every frame fails.
    failed: bool,
}

impl<C: Clock> RotatingWriter<C> {
    /// Checks the settings and opens the first file.
    pub fn new(
        pattern: &str,
        format: OutputFormat,
        pcapng: PcapngOptions,
        rotation: Rotation,
        clock: C,
    ) -> Result<Self, OutputError> {
        rotation.check()?;
        let ring = rotation.files.filter(|_| rotation.file_size.is_some());
        let namer =
            FileNamer::new(pattern, rotation.interval.is_some(), ring).map_err(|source| {
                OutputError::Pattern {
                    path: pattern.to_owned(),
                    source,
                }
            })?;
        let opened_ns = clock.now_ns();
        let mut writer = Self {
            pattern: pattern.to_owned(),
            namer,
            format,
            pcapng,
            rotation,
            clock,
            current: None,
            current_path: String::new(),
            opened_ns,
            size_index: 0,
            kept: VecDeque::new(),
            frames_since_clock: 0,
            files_opened: 0,
            closed_written: 0,
            closed_failed: 0,
            lost: 0,
            failed: false,
        };
        writer.open_next().map_err(|source| OutputError::Open {
            path: writer.current_path.clone(),
            source,
        })?;
        Ok(writer)
    }

    /// Appends one frame, first starting a new file if one is due.
    #[inline]
    pub fn write_frame(&mut self, bytes: &[u8], meta: &FrameMeta) -> io::Result<()> {
        self.write_inner(&InnerFrame {
            bytes,
            meta,
            geneve: None,
        })
    }

    /// [`write_frame`](Self::write_frame) for a frame as analyzers receive it (with the
    /// GENEVE layer it came through, if any).
    #[inline]
    pub fn write_inner(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        let result = self.try_write_frame(frame);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    #[inline]
    fn try_write_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        if self.rotation.interval.is_some() && !self.failed {
            self.frames_since_clock += 1;
            if self.frames_since_clock >= CLOCK_EVERY_FRAMES {
                if let Err(e) = self.rotate_if_due() {
                    self.lose_frame();
                    return Err(e);
                }
            }
        }
        let limit = self.rotation.file_size.unwrap_or(u64::MAX);
        let Some(current) = self.current.as_mut() else {
            self.lost += 1;
            return Err(closed());
        };
        match current.write_frame_within(frame, limit) {
            Ok(true) => Ok(()),
            Ok(false) if self.failed => {
                // Never a new file after a failure: the frame goes to the
                // failed one, which counts it.
                current
                    .write_inner(frame)
                    .map_err(|e| in_file(e, &self.current_path))
            }
            Ok(false) => {
                self.size_index += 1;
                if let Some(files) = self.rotation.files {
                    self.size_index %= files;
                }
                if let Err(e) = self.rotate() {
                    self.lose_frame();
                    return Err(e);
                }
                let Some(current) = self.current.as_mut() else {
                    self.lost += 1;
                    return Err(closed());
                };
                current
                    .write_inner(frame)
                    .map_err(|e| in_file(e, &self.current_path))
            }
            Err(e) => Err(in_file(e, &self.current_path)),
        }
    }

    /// Counts a frame that never reached a file (its rotation failed).
    fn lose_frame(&mut self) {
        self.lost += 1;
    }

    /// Frames the files hold (closed ones and the open one, written out).
    pub fn frames_written(&self) -> u64 {
        self.closed_written
            + self
                .current
                .as_ref()
                .map_or(0, FrameWriter::<File>::frames_written)
    }

    /// Frames taken but lost to write errors.
    pub fn frames_failed(&self) -> u64 {
        self.closed_failed
            + self.lost
            + self
                .current
                .as_ref()
                .map_or(0, FrameWriter::<File>::frames_failed)
    }

    /// Starts a new file if the `-G` interval has passed (reads the clock).
    pub fn rotate_if_due(&mut self) -> io::Result<()> {
        self.frames_since_clock = 0;
        if self.failed {
            return Ok(()); // no new file after a write error
        }
        let (Some(interval), Some(_)) = (self.rotation.interval, self.current.as_ref()) else {
            return Ok(()); // not rotating by time, or closed
        };
        let now = self.clock.now_ns();
        if now.saturating_sub(self.opened_ns) < interval.as_nanos() as u64 {
            return Ok(());
        }
        self.opened_ns = now;
        self.size_index = 0;
        self.rotate()
    }

    /// Flushes the current file to the system.
    pub fn flush(&mut self) -> io::Result<()> {
        let result = match self.current.as_mut() {
            Some(current) => current.flush().map_err(|e| in_file(e, &self.current_path)),
            None => Ok(()),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Flushes and closes the current file; later frames are refused.
    pub fn close(&mut self) -> io::Result<()> {
        let result = self.flush();
        if let Some(current) = self.current.take() {
            // Flushed (or failed) above: what it holds is final.
            self.closed_written += current.frames_written();
            self.closed_failed += current.frames_failed();
        }
        result
    }

    /// Name of the file being written.
    pub fn current_path(&self) -> &str {
        &self.current_path
    }

    /// Files opened so far.
    pub fn files_opened(&self) -> u64 {
        self.files_opened
    }

    /// Closes the current file and opens the next one.
    fn rotate(&mut self) -> io::Result<()> {
        self.close()?;
        self.open_next().map_err(|e| in_file(e, &self.current_path))
    }

    fn open_next(&mut self) -> io::Result<()> {
        let secs = (self.opened_ns / 1_000_000_000) as i64;
        let path = self.namer.name(secs, self.size_index);
        if self.files_opened > 0 && path == self.current_path {
            tracing::warn!(
                file = %path,
                "the next file has the same name as the last one, which is overwritten: \
                 give -w a pattern whose time fields change every -G interval"
            );
        }
        self.current_path = path;
        let file = File::create(&self.current_path)?;
        self.current = Some(FrameWriter::buffered(
            self.format,
            self.pcapng,
            file,
            FILE_BUFFER,
            Some(cut_file),
        )?);
        self.files_opened += 1;
        tracing::debug!(file = %self.current_path, "output file opened");
        if let Some(max) = self.rotation.files {
            self.keep_at_most(max as usize);
        }
        Ok(())
    }

    /// Records the new file and deletes the oldest ones beyond `max`.
    fn keep_at_most(&mut self, max: usize) {
        // A name written again (ring, or a coarse pattern) counts once.
        self.kept.retain(|p| *p != self.current_path);
        self.kept.push_back(self.current_path.clone());
        while self.kept.len() > max {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            match std::fs::remove_file(&oldest) {
                Ok(()) => tracing::debug!(file = %oldest, "old output file deleted (-W)"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %oldest, error = %e, "cannot delete an old output file (-W)")
                }
            }
        }
    }
}

impl<C: Clock> Analyzer for RotatingWriter<C> {
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| self.write_inner(f))
    }

    fn on_idle(&mut self) -> io::Result<()> {
        if let Err(e) = self.rotate_if_due() {
            self.failed = true;
            return Err(e);
        }
        self.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close()
    }

    /// Writes to a regular file go to the page cache: short, and they do
    /// not wait on a reader (a FIFO named by -w would).
    fn can_run_inline(&self) -> bool {
        std::fs::metadata(&self.current_path).is_ok_and(|m| m.is_file())
    }

    fn counts(&self) -> AnalyzerCounts {
        let mut counts = failed_counts(self.frames_failed());
        counts.files.push(FileCounts {
            name: self.pattern.clone(),
            written: self.frames_written(),
            failed: self.frames_failed(),
        });
        counts
    }
}

fn closed() -> io::Error {
    io::Error::other("the output file is closed")
}

/// Names the file in a write error (the kind is kept: a closed pipe stays one).
#[cold]
fn in_file(e: io::Error, path: &str) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A clock the test moves by hand.
    #[derive(Clone, Debug, Default)]
    struct FakeClock(Arc<AtomicU64>);

    impl FakeClock {
        fn at_secs(secs: u64) -> Self {
            Self(Arc::new(AtomicU64::new(secs * 1_000_000_000)))
        }

        fn advance_secs(&self, secs: u64) {
            self.0.fetch_add(secs * 1_000_000_000, Ordering::Relaxed);
        }
    }

    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("vxdecap-rotate-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }

        fn pattern(&self, name: &str) -> String {
            self.0.join(name).to_str().expect("utf-8 path").to_owned()
        }

        /// File names in the directory, sorted.
        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .expect("read temp dir")
                .map(|e| {
                    e.expect("dir entry")
                        .file_name()
                        .into_string()
                        .expect("utf-8")
                })
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn frame_meta(n: u64, vni: u32) -> FrameMeta {
        FrameMeta {
            timestamp_ns: 1_700_000_000_000_000_000 + n,
            orig_len: 100,
            vni,
            ..FrameMeta::default()
        }
    }

    /// The source-port fields of every frame of a pcap file (our frame numbers).
    fn pcap_frames(path: &Path) -> Vec<u64> {
        let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
        let mut out = Vec::new();
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap_or_else(|e| panic!("{}: bad record: {e}", path.display()));
            out.push(u64::from_le_bytes(p.data[..8].try_into().expect("8 bytes")));
        }
        out
    }

    /// Our frame numbers in a pcapng file, and how many interfaces it declares.
    fn pcapng_frames(path: &Path) -> (Vec<u64>, usize) {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut reader = PcapNgReader::new(file).expect("section header");
        let (mut frames, mut interfaces) = (Vec::new(), 0);
        while let Some(block) = reader.next_block() {
            match block.unwrap_or_else(|e| panic!("{}: bad block: {e}", path.display())) {
                Block::InterfaceDescription(_) => interfaces += 1,
                Block::EnhancedPacket(p) => {
                    assert!((p.interface_id as usize) < interfaces, "declared first");
                    frames.push(u64::from_le_bytes(p.data[..8].try_into().expect("8 bytes")));
                }
                _ => {}
            }
        }
        (frames, interfaces)
    }

    /// A 100-byte frame numbered `n` in its first 8 bytes.
    fn frame(n: u64) -> [u8; 100] {
        let mut f = [0u8; 100];
        f[..8].copy_from_slice(&n.to_le_bytes());
        f
    }

    fn writer(
        dir: &TempDir,
        name: &str,
        format: OutputFormat,
        rotation: Rotation,
        clock: FakeClock,
    ) -> RotatingWriter<FakeClock> {
        RotatingWriter::new(
            &dir.pattern(name),
            format,
            PcapngOptions::default(),
            rotation,
            clock,
        )
        .expect("open the first file")
    }

    #[test]
    fn size_rotation_keeps_files_under_the_limit_and_names_them_like_tcpdump() {
        let dir = TempDir::new("size");
        // 24-byte header + 116-byte records: 8 records fit in 1000 bytes.
        let rotation = Rotation {
            file_size: Some(1000),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "out.pcap",
            OutputFormat::Pcap,
            rotation,
            FakeClock::at_secs(0),
        );
        for n in 0..20 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
        }
        w.finish().expect("close");
        assert_eq!(dir.files(), ["out.pcap", "out.pcap1", "out.pcap2"]);
        let mut all = Vec::new();
        for name in dir.files() {
            let path = dir.0.join(&name);
            assert!(
                std::fs::metadata(&path).expect("stat").len() <= 1000,
                "{name}"
            );
            all.extend(pcap_frames(&path));
        }
        assert_eq!(
            all,
            (0..20).collect::<Vec<_>>(),
            "every frame once, in order"
        );
        assert_eq!(pcap_frames(&dir.0.join("out.pcap")).len(), 8);
    }

    #[test]
    fn size_rotation_redeclares_interfaces_in_each_pcapng_file() {
        let dir = TempDir::new("size-ng");
        let rotation = Rotation {
            file_size: Some(2000),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "out.pcapng",
            OutputFormat::Pcapng,
            rotation,
            FakeClock::at_secs(0),
        );
        for n in 0..40 {
            w.write_frame(&frame(n), &frame_meta(n, (n % 2) as u32))
                .expect("write");
        }
        w.finish().expect("close");
        let files = dir.files();
        assert!(files.len() > 2, "{files:?}");
        let mut all = Vec::new();
        for name in &files {
            let path = dir.0.join(name);
            assert!(
                std::fs::metadata(&path).expect("stat").len() <= 2000,
                "{name}"
            );
            let (frames, interfaces) = pcapng_frames(&path);
            assert_eq!(interfaces, 2, "{name}: both VNIs declared again");
            all.extend(frames);
        }
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_ring_of_w_files_reuses_their_names() {
        let dir = TempDir::new("ring");
        let rotation = Rotation {
            file_size: Some(1000),
            files: Some(3),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "ring.pcap",
            OutputFormat::Pcap,
            rotation,
            FakeClock::at_secs(0),
        );
        for n in 0..50 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
        }
        w.finish().expect("close");
        assert_eq!(w.files_opened(), 7, "50 frames at 8 per file");
        assert_eq!(dir.files(), ["ring.pcap0", "ring.pcap1", "ring.pcap2"]);
        // Files 0..=6 went to names 0,1,2,0,1,2,0: the last, ring.pcap0, has frames 48 and 49.
        assert_eq!(pcap_frames(&dir.0.join("ring.pcap0")), [48, 49]);
        assert_eq!(
            pcap_frames(&dir.0.join("ring.pcap2")),
            (40..48).collect::<Vec<_>>()
        );
    }

    #[test]
    fn time_rotation_happens_when_idle_and_names_files_by_strftime() {
        let dir = TempDir::new("time");
        let clock = FakeClock::at_secs(1_700_000_000); // 2023-11-14 22:13:20 UTC
        let rotation = Rotation {
            interval: Some(Duration::from_secs(60)),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "cap-%H%M%S.pcapng",
            OutputFormat::Pcapng,
            rotation,
            clock.clone(),
        );
        w.write_frame(&frame(0), &frame_meta(0, 1)).expect("write");
        clock.advance_secs(59);
        w.on_idle().expect("idle");
        w.write_frame(&frame(1), &frame_meta(1, 1)).expect("write");
        clock.advance_secs(1); // 60 s since the file opened
        w.on_idle().expect("idle: rotates");
        w.write_frame(&frame(2), &frame_meta(2, 1)).expect("write");
        clock.advance_secs(60);
        w.on_idle().expect("idle: rotates with no frame since");
        clock.advance_secs(61);
        w.on_idle().expect("idle: rotates");
        w.write_frame(&frame(3), &frame_meta(3, 1)).expect("write");
        w.finish().expect("close");
        assert_eq!(
            dir.files(),
            [
                "cap-221320.pcapng",
                "cap-221420.pcapng",
                "cap-221520.pcapng",
                "cap-221621.pcapng"
            ]
        );
        let frames = |name: &str| pcapng_frames(&dir.0.join(name)).0;
        assert_eq!(frames("cap-221320.pcapng"), [0, 1]);
        assert_eq!(frames("cap-221420.pcapng"), [2]);
        assert_eq!(
            frames("cap-221520.pcapng"),
            [0u64; 0],
            "a quiet interval: empty but complete"
        );
        assert_eq!(frames("cap-221621.pcapng"), [3]);
    }

    #[test]
    fn time_rotation_under_load_reads_the_clock_every_few_frames() {
        let dir = TempDir::new("time-load");
        let clock = FakeClock::at_secs(0);
        let rotation = Rotation {
            interval: Some(Duration::from_secs(1)),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "t-%s.pcap",
            OutputFormat::Pcap,
            rotation,
            clock.clone(),
        );
        for n in 0..10 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
        }
        clock.advance_secs(1);
        // No on_idle: the queues never ran dry.
        let mut n = 10;
        while w.files_opened() == 1 {
            assert!(
                n < 10 + u64::from(CLOCK_EVERY_FRAMES),
                "no rotation after {n} frames"
            );
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
            n += 1;
        }
        w.finish().expect("close");
        assert_eq!(dir.files(), ["t-0.pcap", "t-1.pcap"]);
        let first = pcap_frames(&dir.0.join("t-0.pcap"));
        let second = pcap_frames(&dir.0.join("t-1.pcap"));
        assert_eq!(first.len() + second.len(), n as usize);
        assert_eq!(second, [n - 1]);
    }

    #[test]
    fn time_rotation_with_w_keeps_the_newest_files() {
        let dir = TempDir::new("time-ring");
        let clock = FakeClock::at_secs(0);
        let rotation = Rotation {
            interval: Some(Duration::from_secs(10)),
            files: Some(2),
            ..Rotation::default()
        };
        let mut w = writer(
            &dir,
            "t-%s.pcap",
            OutputFormat::Pcap,
            rotation,
            clock.clone(),
        );
        for n in 0..5 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
            clock.advance_secs(10);
            w.on_idle().expect("idle");
        }
        w.finish().expect("close");
        assert_eq!(w.files_opened(), 6);
        assert_eq!(dir.files(), ["t-40.pcap", "t-50.pcap"]);
        assert_eq!(pcap_frames(&dir.0.join("t-40.pcap")), [4]);
    }

    #[test]
    fn size_and_time_together_restart_the_counter_each_interval() {
        let dir = TempDir::new("size-time");
        let clock = FakeClock::at_secs(0);
        let rotation = Rotation {
            file_size: Some(1000),
            interval: Some(Duration::from_secs(60)),
            files: None,
        };
        let mut w = writer(
            &dir,
            "c-%M.pcap",
            OutputFormat::Pcap,
            rotation,
            clock.clone(),
        );
        for n in 0..10 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
        }
        clock.advance_secs(60);
        w.on_idle().expect("idle");
        for n in 10..20 {
            w.write_frame(&frame(n), &frame_meta(n, 1)).expect("write");
        }
        w.finish().expect("close");
        assert_eq!(
            dir.files(),
            ["c-00.pcap", "c-00.pcap1", "c-01.pcap", "c-01.pcap1"]
        );
        assert_eq!(pcap_frames(&dir.0.join("c-01.pcap1")), [18, 19]);
    }

    #[test]
    fn an_unwritable_directory_is_reported_with_the_file_name() {
        let err = RotatingWriter::new(
            "/nonexistent-vxdecap-dir/x.pcap",
            OutputFormat::Pcap,
            PcapngOptions::default(),
            Rotation::default(),
            FakeClock::at_secs(0),
        )
        .expect_err("cannot create the file");
        let text = err.to_string();
        assert!(
            text.contains("cannot write /nonexistent-vxdecap-dir/x.pcap"),
            "{text}"
        );
    }

    #[test]
    #[allow(clippy::print_stderr, reason = "a skipped test says so")]
    fn write_errors_surface_from_the_analyzer() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        if !Path::new("/dev/full").exists() {
            eprintln!("SKIPPED write_errors_surface_from_the_analyzer: no /dev/full");
            return;
        }
        let mut w = RotatingWriter::new(
            "/dev/full",
            OutputFormat::Pcap,
            PcapngOptions::default(),
            Rotation::default(),
            FakeClock::at_secs(0),
        )
        .expect("open /dev/full");
        w.write_frame(&frame(0), &frame_meta(0, 1))
            .expect("buffered");
        let err = w.on_idle().expect_err("the flush hits a full disk");
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert_eq!(err.raw_os_error(), None, "wrapped with the file name");
        assert!(err.to_string().contains("No space left"), "{err}");
    }
}
