//! Checks of outputs that create nothing: rotation and file name patterns,
//! whether a file can be written where it is named, tap names; and the
//! one-line description `check-config` prints for a file output.

use crate::analyzer::{FileNamer, OutputFormat, OutputOptions};
use crate::error::ParseError;

/// Rotation settings, and with `-G` the strftime pattern, of a file output.
pub(super) fn check_file(path: &str, options: &OutputOptions) -> Result<(), ParseError> {
    options
        .rotation
        .check()
        .map_err(|e| ParseError::new(e.to_string()))?;
    if path == "-" && options.rotation.is_rotating() {
        return Err("stdout (-w -) cannot be rotated".into());
    }
    if options.rotation.interval.is_some() {
        FileNamer::new(path, true, options.rotation.files)
            .map_err(|e| ParseError::new(e.to_string()))?;
    }
    Ok(())
}

/// Whether a file can be created or written at `path` (a strftime pattern
/// for -G: a directory part with `%` is only known per file, and is left
/// to the writer).
pub(super) fn check_writable(path: &str) -> Result<(), ParseError> {
    use nix::unistd::{access, AccessFlags};
    if path == "-" {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => std::path::Path::new("."),
        Some(d) => d,
        None => return Ok(()),
    };
    if dir.to_string_lossy().contains('%') {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Err(e) => return Err(format!("directory {}: {e}", dir.display()).into()),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display()).into()),
        Ok(_) => {}
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("it is a directory".into()),
        Ok(_) => access(path, AccessFlags::W_OK)
            .map_err(|e| ParseError::new(std::io::Error::from(e).to_string())),
        Err(_) => access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
            ParseError::new(format!(
                "directory {}: {}: check that it is writable",
                dir.display(),
                std::io::Error::from(e)
            ))
        }),
    }
}

/// The same check the tap makes before it is created.
pub(super) fn check_tap_name(name: &str) -> Result<(), ParseError> {
    crate::sys::tap::check_name(name).map_err(|e| ParseError::new(e.to_string()))
}

/// `pcapng, new file every 3600 s, keep 24 files`.
pub(super) fn describe_file(path: &str, options: &OutputOptions) -> String {
    let format = match options
        .format
        .unwrap_or_else(|| OutputFormat::for_path(path))
    {
        OutputFormat::Pcap => "pcap",
        OutputFormat::Pcapng => "pcapng",
    };
    let r = &options.rotation;
    let mut parts = vec![format.to_owned()];
    if let Some(size) = r.file_size {
        parts.push(format!("new file every {size} bytes"));
    }
    if let Some(every) = r.interval {
        parts.push(format!("new file every {} s", every.as_secs()));
    }
    if let Some(n) = r.files {
        parts.push(format!("keep {n} files"));
    }
    parts.join(", ")
}
