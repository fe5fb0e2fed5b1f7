//! ADE20K as the scene-parsing benchmark ships it (ADEChallengeData2016):
//! `images/{training,validation}/*.jpg` and `annotations/{training,validation}/*.png`, the
//! mask of `X.jpg` being `X.png`, 8-bit grayscale, values 0..=150 with 0 = unlabelled.
//!
//! In memory (a [`LabelMap`]) value `v` becomes train id `v - 1` and 0 becomes
//! [`IGNORE_LABEL`], as GluonCV's and the benchmark's own code do.

use crate::error::{DataError, Result};
use crate::formats::class_list;
use crate::formats::records::{LabelMap, IGNORE_LABEL};
use crate::input::label_png::{read_mask, RawMask};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The 150 benchmark classes, mask value `i + 1` for entry `i` (objectInfo150's names, first
/// synonym only).
pub const ADE20K_CLASSES: [&str; 150] = [
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
];

/// The benchmark's folder names for the splits; `train`/`val` are accepted for them.
pub fn split_folder(split: &str) -> &str {
    match split {
        "train" => "training",
        "val" => "validation",
        other => other,
    }
}

/// One image of a split. Either file may be missing: reading the entry says so.
#[derive(Clone, Debug, PartialEq)]
pub struct Ade20kEntry {
    pub stem: String,
    pub image_path: PathBuf,
    pub annotation_path: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Ade20kDataset {
    classes: Vec<String>,
    entries: Vec<Ade20kEntry>,
}

impl Ade20kDataset {
    /// Opens `root/images/<split>` and `root/annotations/<split>`; every stem found in either
    /// folder is an entry.
    pub fn open(root: &Path, split: &str) -> Result<Self> {
        let folder = split_folder(split);
        let images_dir = root.join("images").join(folder);
        let annotations_dir = root.join("annotations").join(folder);
        if !images_dir.is_dir() {
            return Err(DataError::invalid(
                &images_dir,
                format!("no \"{folder}\" split: this folder does not exist (expected the ADEChallengeData2016 layout)"),
            ));
        }
        let mut stems = stems_with_extension(&images_dir, "jpg")?;
        if annotations_dir.is_dir() {
            stems.extend(stems_with_extension(&annotations_dir, "png")?);
        }
        let classes = class_list::read_optional(root)?
            .unwrap_or_else(|| ADE20K_CLASSES.iter().map(|s| s.to_string()).collect());
        if classes.len() > 254 {
            return Err(DataError::invalid(
                root.join(class_list::CLASS_LIST_FILE),
                "more than 254 classes do not fit 8-bit masks",
            ));
        }
        let entries = stems
            .into_iter()
            .map(|stem| Ade20kEntry {
                image_path: images_dir.join(format!("{stem}.jpg")),
                annotation_path: annotations_dir.join(format!("{stem}.png")),
                stem,
            })
            .collect();
        Ok(Ade20kDataset { classes, entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Class `i` is mask value `i + 1` (train id `i`).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn entries(&self) -> &[Ade20kEntry] {
        &self.entries
    }

    /// Keeps the first `n` entries, in stem order (quick runs: `data.max_*_samples`, `--max-samples`).
    pub fn truncate(&mut self, n: usize) {
        self.entries.truncate(n);
    }

    /// The raw mask of entry `index`, checked: values `0..=K` only.
    pub fn read_raw_mask(&self, index: usize) -> Result<RawMask> {
        let path = &self.entries[index].annotation_path;
        let mask = read_mask(path)?;
        let last = self.classes.len();
        if let Some(at) = mask.values.iter().position(|&v| v as usize > last) {
            return Err(DataError::invalid(
                path,
                format!(
                    "value {} at pixel ({}, {}) is not a class (0 = unlabelled, 1..={last})",
                    mask.values[at],
                    at % mask.width,
                    at / mask.width
                ),
            ));
        }
        Ok(mask)
    }

    /// Entry `index`'s mask as train ids (value - 1, unlabelled -> ignored).
    pub fn read_label_map(&self, index: usize) -> Result<LabelMap> {
        let RawMask {
            width,
            height,
            mut values,
        } = self.read_raw_mask(index)?;
        for v in &mut values {
            *v = if *v == 0 { IGNORE_LABEL } else { *v - 1 };
        }
        Ok(LabelMap {
            width,
            height,
            labels: values,
        })
    }
}

/// File stems in `dir` with extension `ext`; other files are not the dataset's.
fn stems_with_extension(dir: &Path, ext: &str) -> Result<BTreeSet<String>> {
    let listing = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut stems = BTreeSet::new();
    for entry in listing {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                stems.insert(stem.to_string());
            }
        }
    }
    Ok(stems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_150_distinct_classes() {
        let distinct: BTreeSet<_> = ADE20K_CLASSES.iter().collect();
        assert_eq!(distinct.len(), 150);
        assert_eq!(ADE20K_CLASSES[12], "person");
        assert_eq!(ADE20K_CLASSES[149], "flag");
    }
}
