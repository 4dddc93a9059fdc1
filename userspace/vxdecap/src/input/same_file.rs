//! `decap -r x.pcap -w x.pcap` must not destroy its input: every output
//! file the run could write (the `-w` file, each of its rotated names, the
//! routes' files, stdout redirected to a file) is compared with the input
//! by device and inode, so another name for the same file (a symlink, a
//! hard link, `./x.pcap`) is caught too. Checked before anything is opened
//! for writing.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt as _;

use crate::analyzer::{FileNamer, OutputOptions};

/// The file being read, by identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }

    /// The file `path` names (symlinks followed), or stdin's for `-`; `None`
    /// when it does not exist (the reader reports that).
    pub fn of_input(path: &str) -> Option<Self> {
        if path == "-" {
            return stdio_metadata(io::stdin()).map(|m| Self::of(&m));
        }
        fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// `fstat` of stdin or stdout.
fn stdio_metadata(stdio: impl std::os::fd::AsFd) -> Option<Metadata> {
    let fd = stdio.as_fd().try_clone_to_owned().ok()?;
    fs::File::from(fd).metadata().ok()
}

/// An output that would overwrite the capture being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverwritesInput {
    /// `-w -` with stdout redirected to the input.
    #[error(
        "-w - writes to stdout, which is the input file {input}: it would be read and written \
         at once; redirect stdout elsewhere"
    )]
    Stdout {
        /// The input's name.
        input: String,
    },
    /// An output file that is the input (the same file by device and inode).
    #[error(
        "{output} is the input file {input}: writing it would destroy it before it is read; \
         write the output somewhere else"
    )]
    File {
        /// The output as named.
        output: String,
        /// The input's name.
        input: String,
    },
    /// One of a rotated output's files is the input.
    #[error(
        "{output} is rotated (-C/-G), and its file {file} is the input file {input}: it would \
         be overwritten while it is read; write the output somewhere else or under another name"
    )]
    Rotated {
        /// The output pattern.
        output: String,
        /// The file of the rotation that is the input.
        file: String,
        /// The input's name.
        input: String,
    },
}

/// Refuses outputs that could overwrite the input `input` (named `input_name`):
/// `outputs` are the file outputs with their format and rotation (`-` is stdout).
pub fn check_outputs_spare_input(
    input: FileId,
    input_name: &str,
    outputs: &[(String, OutputOptions)],
) -> Result<(), OverwritesInput> {
    let input_name = if input_name == "-" {
        "stdin"
    } else {
        input_name
    };
    let same = |path: &str| fs::metadata(path).is_ok_and(|m| FileId::of(&m) == input);
    for (path, options) in outputs {
        if path == "-" {
            let stdout = stdio_metadata(io::stdout());
            if stdout.is_some_and(|m| m.is_file() && FileId::of(&m) == input) {
                return Err(OverwritesInput::Stdout {
                    input: input_name.to_owned(),
                });
            }
            continue;
        }
        let rotation = options.rotation;
        if !rotation.is_rotating() {
            if same(path) {
                return Err(OverwritesInput::File {
                    output: path.clone(),
                    input: input_name.to_owned(),
                });
            }
            continue;
        }
        let ring = rotation.files.filter(|_| rotation.file_size.is_some());
        let timed = rotation.interval.is_some();
        let Ok(namer) = FileNamer::new(path, timed, ring) else {
            continue; // opening the output reports the bad pattern
        };
        let counted = rotation.file_size.is_some();
        let (dir_prefix, _) = path
            .rsplit_once('/')
            .map_or(("", path.as_str()), |(d, f)| (&path[..=d.len()], f));
        let refuse = |candidate: &str| {
            Err(OverwritesInput::Rotated {
                output: path.clone(),
                file: candidate.to_owned(),
                input: input_name.to_owned(),
            })
        };
        if timed && dir_prefix.contains('%') {
            // The directory changes with time: match the input's own names.
            for name in [input_name.to_owned(), canonical(input_name)] {
                if namer.could_name(&name, counted) {
                    return refuse(&name);
                }
            }
            continue;
        }
        let dir = if dir_prefix.is_empty() {
            "."
        } else {
            dir_prefix
        };
        let Ok(entries) = fs::read_dir(dir) else {
            continue; // no directory yet: nothing in it can be the input
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let candidate = format!("{dir_prefix}{name}");
            if namer.could_name(&candidate, counted) && same(&candidate) {
                return refuse(&candidate);
            }
        }
    }
    Ok(())
}

fn canonical(path: &str) -> String {
    fs::canonicalize(path)
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::Rotation;
    use std::time::Duration;

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("vxdecap-same-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }

        fn path(&self, name: &str) -> String {
            self.0.join(name).to_str().expect("utf-8").to_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn rotated(file_size: Option<u64>, secs: Option<u64>, files: Option<u32>) -> OutputOptions {
        OutputOptions {
            rotation: Rotation {
                file_size,
                interval: secs.map(Duration::from_secs),
                files,
            },
            ..OutputOptions::default()
        }
    }

    #[test]
    fn every_name_of_the_input_is_refused_and_other_files_pass() {
        let dir = Dir::new("names");
        let input = dir.path("in.pcap");
        fs::write(&input, b"capture").expect("write");
        std::os::unix::fs::symlink(&input, dir.path("link.pcap")).expect("symlink");
        fs::hard_link(&input, dir.path("cap.pcap3")).expect("hard link");
        fs::hard_link(&input, dir.path("ring.pcap1")).expect("hard link");
        fs::hard_link(&input, dir.path("t-1700000000.pcap")).expect("hard link");
        fs::write(dir.path("other.pcap"), b"other").expect("write");
        let id = FileId::of_input(&input).expect("exists");
        let check = |path: String, options: OutputOptions| {
            check_outputs_spare_input(id, &input, &[(path, options)])
        };
        let plain = OutputOptions::default();
        for same in ["in.pcap", "link.pcap", "cap.pcap3"] {
            let err = check(dir.path(same), plain).expect_err(same).to_string();
            assert!(err.contains("is the input file"), "{err}");
        }
        assert!(check(dir.path("other.pcap"), plain).is_ok());
        assert!(check(dir.path("new.pcap"), plain).is_ok());
        // Rotated names: cap.pcap, cap.pcap1, … reach cap.pcap3.
        let err = check(dir.path("cap.pcap"), rotated(Some(1), None, None))
            .expect_err("-C")
            .to_string();
        assert!(err.contains("cap.pcap3"), "{err}");
        assert!(
            check(dir.path("cap.pcap"), plain).is_ok(),
            "no -C: only cap.pcap"
        );
        // A ring of 3: ring.pcap0 … ring.pcap2.
        assert!(check(dir.path("ring.pcap"), rotated(Some(1), None, Some(3))).is_err());
        // -G: t-%s.pcap could become t-1700000000.pcap.
        assert!(check(dir.path("t-%s.pcap"), rotated(None, Some(60), None)).is_err());
        assert!(check(dir.path("u-%s.pcap"), rotated(None, Some(60), None)).is_ok());
    }
}
