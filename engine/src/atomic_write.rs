//! Replacing a file so that a reader sees the old contents or the new, never half of each: the
//! bytes go to a temporary file beside it (`.NAME.tmp-PID`), are synced, and the temporary
//! file is renamed over the old one. A process killed mid-write leaves its temporary file
//! behind; [`remove_stale_temps`] clears those once the folder is known to be unused.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const TEMP_MARK: &str = ".tmp-";

/// The temporary file this process writes `path`'s new contents to.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

/// Whether a file name is one of these temporary files (of any process, with or without the
/// leading dot): `NAME.tmp-DIGITS`.
pub fn is_temp_name(name: &str) -> bool {
    name.rsplit_once(TEMP_MARK).is_some_and(|(stem, pid)| {
        !stem.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Writes `bytes` to `path` atomically. On failure (a full disk) the old file is untouched
/// and the temporary file is removed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.file_name().is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporary files left in `dir` by killed writers; returns what it removed.
/// Call it only while no other process can be writing there (under the folder's lock).
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry.file_name().to_str().is_some_and(is_temp_name);
        if is_temp && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_nothing_else() {
        let tmp = temp_path(Path::new("run/state.safetensors"));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".state.safetensors.tmp-"), "{name}");
        assert!(is_temp_name(name));
        assert!(is_temp_name("state.safetensors.tmp-99999"));
        assert!(is_temp_name("config.tmp-12"));
        for other in [
            "state.safetensors",
            "metrics.jsonl",
            "notes.tmp-",
            ".tmp-123",
            "a.tmp-12x",
            "lock",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
    }

    #[test]
    fn a_write_replaces_the_file_and_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        std::fs::write(dir.path().join("state.safetensors.tmp-99999"), b"x").unwrap();
        std::fs::write(dir.path().join(".last.safetensors.tmp-7"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub.tmp-3")).unwrap();
        let removed = remove_stale_temps(dir.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["state.safetensors", "sub.tmp-3"]);
    }
}
