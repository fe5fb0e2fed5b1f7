//! `datasets check SPEC`: reads every entry of a dataset the way the loaders do and lists
//! every problem found, with counts per class.
//!
//! Problems are the loaders' own error messages, so what `check` prints is what a training
//! run would stop on (or skip with `--skip-bad`).

use crate::ade20k::Ade20kDataset;
use crate::coco::CocoDataset;
use crate::error::{DataError, Result};
use crate::image_io::EncodedImage;
use crate::spec::DatasetSpec;
use crate::voc::{self, VocDataset, VocTask};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckReport {
    pub spec: String,
    /// Images examined (a VOC image in both a detection and a segmentation list counts once).
    pub entries: usize,
    /// One sentence per problem, each starting with the file it is about.
    pub problems: Vec<String>,
    /// What `class_counts` counts: "objects" (detection) or "images" (segmentation: images
    /// in which the class appears).
    pub counted: &'static str,
    pub class_counts: Vec<(String, usize)>,
}

impl CheckReport {
    fn new(spec: &DatasetSpec, counted: &'static str, classes: &[String]) -> Self {
        CheckReport {
            spec: spec.to_string(),
            entries: 0,
            problems: Vec::new(),
            counted,
            class_counts: classes.iter().map(|c| (c.clone(), 0)).collect(),
        }
    }

    fn add(&mut self, outcome: EntryOutcome) {
        self.entries += usize::from(!outcome.image_seen_before);
        self.problems
            .extend(outcome.problems.iter().map(ToString::to_string));
        for class in outcome.classes {
            if let Some(count) = self.class_counts.get_mut(class) {
                count.1 += 1;
            }
        }
    }
}

/// What one entry contributed.
#[derive(Default)]
struct EntryOutcome {
    problems: Vec<DataError>,
    /// A class index per counted object (or per class present, for masks).
    classes: Vec<usize>,
    /// The same image was already examined for another task.
    image_seen_before: bool,
}

/// Checks every split of the dataset the spec names. Never fails: a dataset that cannot
/// even be opened is one problem.
pub fn check(spec: &DatasetSpec) -> CheckReport {
    match spec {
        DatasetSpec::Voc { roots } => check_voc(spec, roots),
        DatasetSpec::Ade20k { root } => check_ade20k(spec, root),
        DatasetSpec::Coco {
            annotations,
            images,
        } => check_coco(spec, annotations, images.as_deref()),
        DatasetSpec::FashionMnist { dir: path } | DatasetSpec::ImageNet { root: path } => failed_to_open(
            spec,
            DataError::invalid(
                path,
                "`datasets check` validates detection and segmentation datasets (voc:, ade20k:, coco:)",
            ),
        ),
    }
}

fn failed_to_open(spec: &DatasetSpec, error: DataError) -> CheckReport {
    let mut report = CheckReport::new(spec, "objects", &[]);
    report.problems.push(error.to_string());
    report
}

/// Compares an image's declared size with what the annotation says, then decodes it (a
/// wrong size is reported without decoding).
fn check_image(path: &Path, expected: Option<(u32, u32)>) -> Result<(u32, u32)> {
    let image = EncodedImage::read(path)?;
    let size = image.dimensions();
    if let Some(expected) = expected {
        image.expect_size(expected)?;
    }
    image.decode_rgb()?;
    Ok(size)
}

fn mask_size_problem(
    mask: &Path,
    mask_size: (usize, usize),
    image_size: (u32, u32),
) -> Option<DataError> {
    (mask_size != (image_size.0 as usize, image_size.1 as usize)).then(|| {
        DataError::invalid(
            mask,
            format!(
                "the mask is {}x{} but its image is {}x{}",
                mask_size.0, mask_size.1, image_size.0, image_size.1
            ),
        )
    })
}

/// The split lists in `ImageSets/<task>`: `train.txt`, `val.txt`... (not VOC's per-class
/// lists such as `dog_train.txt`).
fn split_names(year_dir: &Path, task: &str) -> Vec<String> {
    let dir = year_dir.join("ImageSets").join(task);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|listing| {
            listing
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let split = name.strip_suffix(".txt")?;
                    (!split.contains('_')).then(|| split.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn check_voc(spec: &DatasetSpec, roots: &[PathBuf]) -> CheckReport {
    let mut year_dirs = Vec::new();
    for root in roots {
        match voc::year_dirs(root) {
            Ok(dirs) => year_dirs.extend(dirs),
            Err(e) => return failed_to_open(spec, e),
        }
    }
    let mut report: Option<CheckReport> = None;
    for dir in &year_dirs {
        // Every id of every split list, once: detection lists first, then segmentation.
        let mut seen = BTreeSet::new();
        let mut seen_images = BTreeSet::new();
        let mut datasets = Vec::new();
        for (task, list_dir) in [
            (VocTask::Detection, "Main"),
            (VocTask::Segmentation, "Segmentation"),
        ] {
            for split in split_names(dir, list_dir) {
                match VocDataset::open_years_reporting_duplicates(
                    std::slice::from_ref(dir),
                    &split,
                    task,
                ) {
                    Ok((d, duplicates)) => {
                        datasets.push(d);
                        report
                            .get_or_insert_with(|| CheckReport::new(spec, "objects", &[]))
                            .problems
                            .extend(duplicates.iter().map(ToString::to_string));
                    }
                    Err(e) => {
                        report
                            .get_or_insert_with(|| CheckReport::new(spec, "objects", &[]))
                            .problems
                            .push(e.to_string());
                    }
                }
            }
        }
        if datasets.is_empty() {
            let expected = dir.join("ImageSets").join("Main").join("<split>.txt");
            report
                .get_or_insert_with(|| CheckReport::new(spec, "objects", &[]))
                .problems
                .push(DataError::invalid(&expected, "no split lists found").to_string());
            continue;
        }
        let report =
            report.get_or_insert_with(|| CheckReport::new(spec, "objects", datasets[0].classes()));
        if report.class_counts.is_empty() {
            report.class_counts = datasets[0]
                .classes()
                .iter()
                .map(|c| (c.clone(), 0))
                .collect();
        }
        for dataset in &datasets {
            let fresh: Vec<usize> = (0..dataset.len())
                .filter(|&i| {
                    seen.insert((
                        dataset.task() == VocTask::Segmentation,
                        dataset.entries()[i].id.clone(),
                    ))
                })
                .collect();
            let outcomes: Vec<EntryOutcome> = fresh
                .par_iter()
                .map(|&i| check_voc_entry(dataset, i))
                .collect();
            for (outcome, &i) in outcomes.into_iter().zip(&fresh) {
                let first_time = seen_images.insert(dataset.entries()[i].id.clone());
                report.add(EntryOutcome {
                    image_seen_before: !first_time,
                    ..outcome
                });
            }
        }
    }
    report.unwrap_or_else(|| CheckReport::new(spec, "objects", &[]))
}

fn check_voc_entry(dataset: &VocDataset, index: usize) -> EntryOutcome {
    let mut outcome = EntryOutcome::default();
    let entry = &dataset.entries()[index];
    if let Err(e) = entry.check_id() {
        outcome.problems.push(e);
        return outcome;
    }
    match dataset.task() {
        VocTask::Detection => {
            let expected = match dataset.detection_record_with_problems(index) {
                Ok((record, problems)) => {
                    outcome.classes = record.objects.iter().map(|o| o.class).collect();
                    outcome.problems.extend(problems);
                    Some((record.width, record.height))
                }
                Err(e) => {
                    outcome.problems.push(e);
                    None
                }
            };
            if let Err(e) = check_image(&entry.image_path(), expected) {
                outcome.problems.push(e);
            }
        }
        VocTask::Segmentation => {
            let image_size = check_image(&entry.image_path(), None);
            let mask = dataset.read_label_map(index);
            match (image_size, mask) {
                (Ok(size), Ok(mask)) => {
                    outcome.problems.extend(mask_size_problem(
                        &entry.mask_path(),
                        (mask.width, mask.height),
                        size,
                    ));
                }
                (image, mask) => {
                    outcome.problems.extend(image.err());
                    outcome.problems.extend(mask.err());
                }
            }
        }
    }
    outcome
}

fn check_ade20k(spec: &DatasetSpec, root: &Path) -> CheckReport {
    let splits: Vec<&str> = ["training", "validation"]
        .into_iter()
        .filter(|s| root.join("images").join(s).is_dir())
        .collect();
    if splits.is_empty() {
        return failed_to_open(
            spec,
            DataError::invalid(root.join("images"), "has neither a training nor a validation folder (expected the ADEChallengeData2016 layout)"),
        );
    }
    let mut report: Option<CheckReport> = None;
    for split in splits {
        let dataset = match Ade20kDataset::open(root, split) {
            Ok(d) => d,
            Err(e) => return failed_to_open(spec, e),
        };
        let report =
            report.get_or_insert_with(|| CheckReport::new(spec, "images", dataset.classes()));
        let outcomes: Vec<EntryOutcome> = (0..dataset.len())
            .into_par_iter()
            .map(|i| check_ade20k_entry(&dataset, i))
            .collect();
        outcomes.into_iter().for_each(|o| report.add(o));
    }
    report.unwrap_or_else(|| CheckReport::new(spec, "images", &[]))
}

fn check_ade20k_entry(dataset: &Ade20kDataset, index: usize) -> EntryOutcome {
    let mut outcome = EntryOutcome::default();
    let entry = &dataset.entries()[index];
    let image = check_image(&entry.image_path, None);
    let mask = dataset.read_raw_mask(index);
    if let Ok(mask) = &mask {
        let mut present = [false; 256];
        mask.values.iter().for_each(|&v| present[v as usize] = true);
        outcome.classes = (1..256).filter(|&v| present[v]).map(|v| v - 1).collect();
    }
    match (image, mask) {
        (Ok(size), Ok(mask)) => outcome.problems.extend(mask_size_problem(
            &entry.annotation_path,
            (mask.width, mask.height),
            size,
        )),
        (image, mask) => {
            outcome.problems.extend(image.err());
            outcome.problems.extend(mask.err());
        }
    }
    outcome
}

fn check_coco(spec: &DatasetSpec, annotations: &Path, images: Option<&Path>) -> CheckReport {
    let (dataset, duplicates) = match CocoDataset::open_reporting_duplicates(annotations, images) {
        Ok(opened) => opened,
        Err(e) => return failed_to_open(spec, e),
    };
    let mut report = CheckReport::new(spec, "objects", dataset.classes());
    report
        .problems
        .extend(duplicates.iter().map(ToString::to_string));
    report.problems.extend(
        dataset
            .orphan_annotation_problems()
            .iter()
            .map(ToString::to_string),
    );
    let outcomes: Vec<EntryOutcome> = (0..dataset.len())
        .into_par_iter()
        .map(|i| {
            let mut outcome = EntryOutcome::default();
            match dataset.detection_record_with_problems(i) {
                Ok((record, problems)) => {
                    outcome.classes = record.objects.iter().map(|o| o.class).collect();
                    // Masks (polygons, RLE) are decoded only where the boxes were fine, so
                    // one bad annotation is reported once.
                    if problems.is_empty() {
                        outcome
                            .problems
                            .extend(dataset.check_instance_masks(i).err());
                    }
                    outcome.problems.extend(problems);
                    if let Err(e) =
                        check_image(&record.image_path, Some((record.width, record.height)))
                    {
                        outcome.problems.push(e);
                    }
                }
                Err(e) => outcome.problems.push(e),
            }
            outcome
        })
        .collect();
    outcomes.into_iter().for_each(|o| report.add(o));
    report
}
