//! Opening the files a dataset names. A path may lead to a FIFO, a device or a folder, and a
//! file may be far larger than its kind ever is: both are refused before anything is read.

use crate::error::{DataError, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading, refusing anything but a regular file (links are followed) and a
/// file longer than `max_bytes`. Returns the file and its length.
///
/// The file is opened non-blocking, so opening a FIFO returns at once instead of waiting for
/// a writer, and its type is then read from the open handle (no window in which the path
/// could be swapped for something else).
pub fn open_regular(path: &Path, max_bytes: u64, what: &str) -> Result<(File, u64)> {
    let file = open_non_blocking(path).map_err(|e| DataError::io(path, e))?;
    let metadata = file.metadata().map_err(|e| DataError::io(path, e))?;
    if !metadata.is_file() {
        return Err(DataError::invalid(
            path,
            format!(
                "is {}, not a regular file (expected {what})",
                describe_file_type(&metadata.file_type())
            ),
        ));
    }
    if metadata.len() > max_bytes {
        return Err(DataError::invalid(
            path,
            format!(
                "is {}; {what} is at most {}",
                human_size(metadata.len()),
                human_size(max_bytes)
            ),
        ));
    }
    Ok((file, metadata.len()))
}

/// The whole of a regular file of at most `max_bytes` (see [`open_regular`]).
pub fn read_bounded(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, max_bytes, what)?;
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow after its length was read: never take more than the limit.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(DataError::invalid(
            path,
            format!(
                "grew past {} while it was read ({what} is at most that)",
                human_size(max_bytes)
            ),
        ));
    }
    Ok(bytes)
}

/// A text file of at most `max_bytes`, which must be UTF-8.
pub fn read_text_bounded(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let bytes = read_bounded(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::invalid(
            path,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A size as a person reads it: "100 bytes", "1 MiB", "1.0 GiB" (whole units exactly, else
/// one decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    let mut scale = 1024u64;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        unit += 1;
        scale *= 1024;
    }
    match bytes % scale {
        0 => format!("{} {}", bytes / scale, UNITS[unit]),
        _ => format!("{:.1} {}", bytes as f64 / scale as f64, UNITS[unit]),
    }
}

#[cfg(unix)]
fn open_non_blocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK changes nothing for regular files; it only keeps open() on a FIFO from
    // waiting for a writer.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_non_blocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

fn describe_file_type(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_and_long_files_too() {
        let err = read_bounded(Path::new("/dev/zero"), 100, "an image").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero: is a character device, not a regular file (expected an image)"
        );
        let err = read_bounded(Path::new("/"), 100, "an image").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/: is a folder, not a regular file (expected an image)"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        std::fs::write(&path, [b'a'; 101]).unwrap();
        let err = read_bounded(&path, 100, "a list").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("big.txt: is 101 bytes; a list is at most 100 bytes"),
            "{err}"
        );
        assert_eq!(read_bounded(&path, 101, "a list").unwrap().len(), 101);
    }

    #[test]
    fn sizes_read_as_a_person_says_them() {
        assert_eq!(human_size(100), "100 bytes");
        assert_eq!(human_size(1 << 20), "1 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1_000_000_000), "953.7 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
    }
}
