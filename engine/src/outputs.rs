//! The files a command is about to write, checked against the files it reads before any work
//! is done: no output may be one of the inputs (compared by device and inode, so another
//! spelling or a link to the same file is caught), no two outputs may be the same file, each
//! output's folder must exist, and an output that exists already is replaced only when the
//! user passed `--force`. Every command that writes files calls [`check`] first and then
//! writes each output atomically (`atomic_write`), so a refused or failed command leaves
//! every file as it was.

use std::path::{Path, PathBuf};

/// A file a command reads or writes, and what it is to the command ("the checkpoint", "the
/// mask"), for the messages.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a> {
    pub path: &'a Path,
    pub what: &'a str,
}

pub fn named<'a>(path: &'a Path, what: &'a str) -> Named<'a> {
    Named { path, what }
}

/// Where a file is on disk: the file itself when it exists, else its (existing) folder and
/// its name, which is where it will be created.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    File { dev: u64, ino: u64 },
    ToCreate { dev: u64, ino: u64, name: PathBuf },
}

/// Refuses, with one sentence naming the files, outputs that are inputs, outputs that are
/// each other, outputs whose folder does not exist or is not a folder, outputs that are not
/// regular files (a folder, a device, a FIFO), and outputs that exist when `force` is false.
pub fn check(inputs: &[Named], outputs: &[Named], force: bool) -> Result<(), String> {
    let mut seen: Vec<(Identity, Named)> = Vec::new();
    for output in outputs {
        let identity = output_identity(output)?;
        for input in inputs {
            if let Ok(Identity::File { dev, ino }) = existing_identity(input.path) {
                if identity == (Identity::File { dev, ino }) {
                    return Err(format!(
                        "{}: {} would be written over {} ({}), which this command reads; choose another path",
                        output.path.display(),
                        output.what,
                        input.what,
                        input.path.display()
                    ));
                }
            }
        }
        if let Some((_, earlier)) = seen.iter().find(|(id, _)| *id == identity) {
            return Err(format!(
                "{}: {} and {} would be the same file ({}); give them different paths",
                output.path.display(),
                earlier.what,
                output.what,
                earlier.path.display()
            ));
        }
        if matches!(identity, Identity::File { .. }) && !force {
            return Err(format!(
                "{}: exists; pass --force to replace it with {}",
                output.path.display(),
                output.what
            ));
        }
        seen.push((identity, *output));
    }
    Ok(())
}

fn existing_identity(path: &Path) -> std::io::Result<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Identity::File {
        dev: m.dev(),
        ino: m.ino(),
    })
}

fn output_identity(output: &Named) -> Result<Identity, String> {
    use std::os::unix::fs::MetadataExt;
    let path = output.path;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            return Ok(Identity::File {
                dev: m.dev(),
                ino: m.ino(),
            })
        }
        Ok(m) if m.is_dir() => {
            return Err(format!(
                "{}: is a folder; {} needs a file path",
                path.display(),
                output.what
            ))
        }
        Ok(_) => {
            return Err(format!(
                "{}: is not a regular file (a device, FIFO or socket); {} needs a file path",
                path.display(),
                output.what
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file path", path.display()))?;
    let folder = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => Ok(Identity::ToCreate {
            dev: m.dev(),
            ino: m.ino(),
            name: PathBuf::from(name),
        }),
        Ok(_) => Err(format!(
            "{}: cannot write {}: {} is not a folder",
            path.display(),
            output.what,
            folder.display()
        )),
        Err(_) => Err(format!(
            "{}: cannot write {}: the folder {} does not exist",
            path.display(),
            output.what,
            folder.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_links_and_twins_are_refused_and_existing_files_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("model.safetensors");
        std::fs::write(&ckpt, b"weights").unwrap();
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&ckpt, &link).unwrap();
        let input = [named(&ckpt, "the checkpoint")];

        let err = check(&input, &[named(&link, "the drawing")], true).unwrap_err();
        assert!(
            err.contains("the drawing would be written over the checkpoint"),
            "{err}"
        );
        // Another spelling of the same path is the same file.
        let spelled = dir.path().join(".").join("model.safetensors");
        assert!(check(&input, &[named(&spelled, "the mask")], true).is_err());

        let new = dir.path().join("new.png");
        let twin = dir.path().join(".").join("new.png");
        let err = check(
            &input,
            &[named(&new, "the mask"), named(&twin, "the overlay")],
            false,
        )
        .unwrap_err();
        assert!(
            err.contains("the mask and the overlay would be the same file"),
            "{err}"
        );

        let old = dir.path().join("old.png");
        std::fs::write(&old, b"png").unwrap();
        let err = check(&input, &[named(&old, "the mask")], false).unwrap_err();
        assert!(err.contains("exists; pass --force"), "{err}");
        check(&input, &[named(&old, "the mask")], true).unwrap();

        let missing = dir.path().join("no/such/folder/x.png");
        let err = check(&input, &[named(&missing, "the overlay")], true).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = check(&input, &[named(dir.path(), "the mask")], true).unwrap_err();
        assert!(err.contains("is a folder"), "{err}");
        check(&input, &[named(&new, "the mask")], false).unwrap();
    }
}
