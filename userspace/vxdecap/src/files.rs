//! Reading the small text files a user names (`--config`, `--allow-file`):
//! only regular files, and never more than a bound.
//!
//! `std::fs::read_to_string` reads whatever it is given for as long as it
//! gives: `/dev/zero` grows memory without end, a FIFO blocks until a
//! writer comes. Here the path is checked first (a FIFO is refused before
//! it is opened, since opening one blocks), opened non-blocking (in case it
//! was swapped for a FIFO in between) and checked again on the open file,
//! and at most `limit` bytes are read.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("vxdecap-doc-files-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let err = vxdecap::files::read_text(&dir, vxdecap::files::CONFIG_LIMIT).unwrap_err();
//! assert_eq!(err.to_string(), "it is a directory, not a regular file");
//! # std::fs::remove_dir(&dir).unwrap();
//! ```

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Largest configuration or allow file read (1 MiB).
pub const CONFIG_LIMIT: u64 = 1 << 20;

/// Why a file was not read. The caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A FIFO, device, directory or socket.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// More than the limit.
    #[error("it is larger than {} (the limit for this kind of file)", describe_size(*.0))]
    TooLarge(u64),
    /// Not UTF-8 text.
    #[error("it is not UTF-8 text (line {line})")]
    NotText {
        /// The first line with a byte sequence that is not UTF-8.
        line: usize,
    },
    /// Missing, not permitted, or a read error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the regular file `path` as text, refusing anything else and
/// anything longer than `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    // Following symlinks, as open() will.
    check_regular(std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    check_regular(meta.file_type())?;
    if meta.len() > limit {
        return Err(FileError::TooLarge(limit));
    }
    read_bounded(file, limit)
}

fn read_bounded(file: File, limit: u64) -> Result<String, FileError> {
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file at the limit from a longer one
    // (a file may grow after the size check, and /proc files say 0).
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge(limit));
    }
    #[allow(
        clippy::naive_bytecount,
        reason = "one count, on an error path: not worth the bytecount crate"
    )]
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        FileError::NotText {
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}

#[allow(
    clippy::filetype_is_file,
    reason = "a regular file is what is asked for: not a FIFO, a device or a symlink"
)]
fn check_regular(kind: FileType) -> Result<(), FileError> {
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(FileError::NotRegular(what))
}

fn describe_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("vxdecap-files-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = Dir::new("ok");
        let path = dir.0.join("a.txt");
        std::fs::write(&path, "source 10.0.0.1\n").unwrap();
        assert_eq!(read_text(&path, 16).unwrap(), "source 10.0.0.1\n");
        let link = dir.0.join("link.txt");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_text(&link, 16).unwrap(), "source 10.0.0.1\n");
    }

    #[test]
    fn longer_files_are_refused_at_the_limit() {
        let dir = Dir::new("big");
        let path = dir.0.join("a.txt");
        std::fs::write(&path, "x".repeat(17)).unwrap();
        let err = read_text(&path, 16).unwrap_err();
        assert!(matches!(err, FileError::TooLarge(16)), "{err}");
        assert_eq!(
            err.to_string(),
            "it is larger than 16 bytes (the limit for this kind of file)"
        );
        // A file that reports no size (as /proc files do) is bounded by the read.
        let text = read_text(Path::new("/proc/self/status"), 64).unwrap_err();
        assert!(matches!(text, FileError::TooLarge(64)), "{text}");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let started = std::time::Instant::now();
        let err = read_text(Path::new("/dev/zero"), CONFIG_LIMIT).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is a character device, not a regular file"
        );
        let dir = Dir::new("kinds");
        let fifo = dir.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO for reading blocks until a writer comes: it must
        // be refused before it is opened.
        let err = read_text(&fifo, CONFIG_LIMIT).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is a FIFO (named pipe), not a regular file"
        );
        let err = read_text(&dir.0, CONFIG_LIMIT).unwrap_err();
        assert_eq!(err.to_string(), "it is a directory, not a regular file");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn binary_content_names_the_line() {
        let dir = Dir::new("bin");
        let path = dir.0.join("a.txt");
        std::fs::write(&path, b"vni 27\nvni \xff\n").unwrap();
        let err = read_text(&path, CONFIG_LIMIT).unwrap_err();
        assert_eq!(err.to_string(), "it is not UTF-8 text (line 2)");
        let err = read_text(&dir.0.join("missing"), CONFIG_LIMIT).unwrap_err();
        assert!(matches!(err, FileError::Io(_)), "{err}");
    }
}
