//! The ImageNet folder layout: `ROOT/train/<class>/<image>` and `ROOT/val/<class>/<image>`,
//! classes being the sorted sub-folder names of `train` (torchvision's `ImageFolder`).
//! Images are JPEG or PNG files (by extension, any case); other files are ignored.

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The labelled image files of one split, sorted by class then file name.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
}

impl ImageFolder {
    /// `ROOT/<split>` with the classes of `ROOT/train`, so that labels agree between splits.
    pub fn imagenet(root: &Path, split: &str) -> Result<Self> {
        Self::with_classes(&root.join(split), Self::imagenet_classes(root)?)
    }

    /// The classes of an ImageNet folder layout: the sub-folders of `ROOT/train`, sorted.
    pub fn imagenet_classes(root: &Path) -> Result<Vec<String>> {
        sub_folders(&root.join("train"))
    }

    /// Every sub-folder of `dir` is a class.
    pub fn open(dir: &Path) -> Result<Self> {
        let classes = sub_folders(dir)?;
        Self::with_classes(dir, classes)
    }

    /// `dir`'s sub-folders must be among `classes` (label = position in it). A class may have
    /// no folder (a validation subset), but a folder may not be empty.
    pub fn with_classes(dir: &Path, classes: Vec<String>) -> Result<Self> {
        let (folder, mut problems) = Self::with_classes_reporting_problems(dir, classes)?;
        match problems.is_empty() {
            true => Ok(folder),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// As [`Self::with_classes`], but a folder that is not a class and a class folder without
    /// images are reported (each one) and left out, so that `check` can list them all. The
    /// error is for a folder that cannot be listed, or no classes at all.
    pub fn with_classes_reporting_problems(
        dir: &Path,
        classes: Vec<String>,
    ) -> Result<(Self, Vec<DataError>)> {
        if classes.is_empty() {
            return Err(DataError::invalid(dir, "no classes (no sub-folders)"));
        }
        let present = sub_folders(dir)?;
        let mut problems: Vec<DataError> = present
            .iter()
            .filter(|name| !classes.contains(name))
            .map(|unknown| {
                DataError::invalid(
                    dir.join(unknown),
                    "is not one of the training classes (no folder of that name in train)",
                )
            })
            .collect();
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            if !present.contains(class) {
                continue;
            }
            let class_dir = dir.join(class);
            let images = image_files(&class_dir)?;
            if images.is_empty() {
                problems.push(DataError::invalid(
                    &class_dir,
                    "class folder has no images (.jpg, .jpeg or .png)",
                ));
                continue;
            }
            labels.extend(std::iter::repeat_n(label, images.len()));
            files.extend(images);
        }
        let folder = ImageFolder {
            classes,
            files,
            labels,
        };
        Ok((folder, problems))
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn path(&self, index: usize) -> &Path {
        &self.files[index]
    }

    pub fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, bool)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DataError::invalid(path, "file name is not valid UTF-8"));
        };
        // The entry's own type needs no extra system call (1.28M files in ImageNet); links
        // are followed, as torchvision does (ImageNet is often linked in).
        let file_type = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        entries.push((name, is_dir));
    }
    entries.sort();
    Ok(entries)
}

/// Sorted names of the sub-folders of `dir` (hidden ones left out).
fn sub_folders(dir: &Path) -> Result<Vec<String>> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|(name, is_dir)| *is_dir && !name.starts_with('.'))
        .map(|(name, _)| name)
        .collect())
}

/// The JPEG and PNG files of `dir` by name, sub-folders left out (what `--images DIR` runs
/// on).
pub fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    image_files(dir)
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|(name, is_dir)| !is_dir && has_image_extension(name))
        .map(|(name, _)| dir.join(name))
        .collect())
}

fn has_image_extension(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_ignore_case() {
        assert!(has_image_extension("a.JPEG"));
        assert!(has_image_extension("b.c.png"));
        assert!(!has_image_extension("notes.txt"));
        assert!(!has_image_extension("jpg"));
    }
}
