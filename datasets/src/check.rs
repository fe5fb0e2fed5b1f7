//! `datasets check SPEC`: reads every entry of a dataset the way the loaders do and lists
//! every problem found, with counts per class.
//!
//! Problems are the loaders' own error messages, so what `check` prints is what a training
//! run would stop on (or skip with `--skip-bad`). Splits are opened with the stages' own
//! code (`VocDataset::open_roots`, `Ade20kDataset::open`, `ImageFolder`, `FashionMnist`),
//! so a layout a stage would refuse is refused here first.

mod classification;

use crate::error::{DataError, Result};
use crate::formats::ade20k::Ade20kDataset;
use crate::formats::coco::CocoDataset;
use crate::formats::spec::DatasetSpec;
use crate::formats::voc::{self, VocDataset, VocTask};
use crate::input::image_io::EncodedImage;
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What to check beyond the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The splits, named as the stages name them (VOC `trainval`, `test`...; ADE20K
    /// `training`, `validation`; ImageNet and Fashion-MNIST `train`, `val`). Empty: every
    /// split found (VOC: every list of every VOC20xx folder, each folder on its own).
    pub splits: Vec<String>,
    /// Read at most this many entries of each split, evenly spread over it. The split is
    /// still opened (listed) in full, so layout problems are all found; only the reading of
    /// images and annotations is sampled.
    pub sample: Option<usize>,
    /// VOC only: check this task's lists alone (default: detection and segmentation).
    pub voc_task: Option<VocTask>,
}

impl CheckOptions {
    fn voc_tasks(&self) -> Vec<VocTask> {
        match self.voc_task {
            Some(task) => vec![task],
            None => vec![VocTask::Detection, VocTask::Segmentation],
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckReport {
    pub spec: String,
    /// The splits checked (empty for COCO, whose spec names its split's file).
    pub splits: Vec<String>,
    /// The `--sample` limit in force, if any.
    pub sample: Option<usize>,
    /// VOC: the VOC20xx folders read, in order (so a caller can see 07+12 is both years).
    pub folders: Vec<PathBuf>,
    /// Images examined (a VOC image in both a detection and a segmentation list counts once).
    pub entries: usize,
    /// One sentence per problem, each starting with the file it is about.
    pub problems: Vec<String>,
    /// What `class_counts` counts: "objects" (detection) or "images" (segmentation: images
    /// in which the class appears; classification: images of the class).
    pub counted: &'static str,
    pub class_counts: Vec<(String, usize)>,
}

impl CheckReport {
    fn new(spec: &DatasetSpec, counted: &'static str, classes: &[String]) -> Self {
        CheckReport {
            spec: spec.to_string(),
            splits: Vec::new(),
            sample: None,
            folders: Vec::new(),
            entries: 0,
            problems: Vec::new(),
            counted,
            class_counts: classes.iter().map(|c| (c.clone(), 0)).collect(),
        }
    }

    /// Counts these classes, unless classes are counted already.
    fn count_classes(&mut self, classes: &[String]) {
        if self.class_counts.is_empty() {
            self.class_counts = classes.iter().map(|c| (c.clone(), 0)).collect();
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

/// Checks every split of the dataset the spec names, every entry. Never fails: a dataset
/// that cannot even be opened is one problem.
pub fn check(spec: &DatasetSpec) -> CheckReport {
    check_with(spec, &CheckOptions::default())
}

/// Checks the splits `options` names (all when it names none). Never fails: a split that
/// cannot be opened is one problem, and the other splits are still checked.
pub fn check_with(spec: &DatasetSpec, options: &CheckOptions) -> CheckReport {
    let splits = &options.splits;
    let sample = options.sample;
    let mut report = match spec {
        DatasetSpec::Voc { roots } if splits.is_empty() => {
            check_voc(spec, roots, &options.voc_tasks(), sample)
        }
        DatasetSpec::Voc { roots } => {
            check_voc_splits(spec, roots, splits, &options.voc_tasks(), sample)
        }
        DatasetSpec::Ade20k { root } => check_ade20k(spec, root, splits, sample),
        DatasetSpec::Coco {
            annotations,
            images,
        } => {
            let mut report = check_coco(spec, annotations, images.as_deref(), sample);
            if !splits.is_empty() {
                report.problems.insert(
                    0,
                    DataError::invalid(
                        annotations,
                        "--split does not apply to coco: (the spec names its split's annotation file)",
                    )
                    .to_string(),
                );
            }
            report
        }
        DatasetSpec::ImageNet { root } => {
            classification::check_imagenet(spec, root, splits, sample)
        }
        DatasetSpec::FashionMnist { .. } => classification::check_fashion_mnist(spec, splits),
    };
    report.sample = sample;
    report
}

/// At most `limit` of `0..len`, evenly spread and always including the first (all of them
/// without a limit).
fn sampled(len: usize, limit: Option<usize>) -> Vec<usize> {
    match limit {
        Some(limit) if limit < len => (0..limit).map(|i| i * len / limit).collect(),
        _ => (0..len).collect(),
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
fn split_names(year_dir: &Path, task: VocTask) -> Vec<String> {
    let list_dir = match task {
        VocTask::Detection => "Main",
        VocTask::Segmentation => "Segmentation",
    };
    let dir = year_dir.join("ImageSets").join(list_dir);
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

/// Every split list of every VOC20xx folder, each folder on its own (so a folder whose
/// list has no annotations, such as VOC2012 after the test tar, is named).
fn check_voc(
    spec: &DatasetSpec,
    roots: &[PathBuf],
    tasks: &[VocTask],
    sample: Option<usize>,
) -> CheckReport {
    let mut year_dirs = Vec::new();
    for root in roots {
        match voc::year_dirs(root) {
            Ok(dirs) => year_dirs.extend(dirs),
            Err(e) => return failed_to_open(spec, e),
        }
    }
    let mut report = CheckReport::new(spec, "objects", &[]);
    let mut splits = BTreeSet::new();
    let mut seen = VocSeen::default();
    for dir in &year_dirs {
        let mut datasets = Vec::new();
        for &task in tasks {
            for split in split_names(dir, task) {
                let opened = VocDataset::open_years_reporting_problems(
                    std::slice::from_ref(dir),
                    &split,
                    task,
                );
                splits.insert(split);
                match opened {
                    Ok((dataset, problems)) => {
                        datasets.push(dataset);
                        report
                            .problems
                            .extend(problems.iter().map(ToString::to_string));
                    }
                    Err(e) => report.problems.push(e.to_string()),
                }
            }
        }
        if datasets.is_empty() {
            let expected = dir.join("ImageSets").join("Main").join("<split>.txt");
            report
                .problems
                .push(DataError::invalid(&expected, "no split lists found").to_string());
            continue;
        }
        for dataset in &datasets {
            check_voc_dataset(&mut report, dataset, &mut seen, sample);
        }
    }
    report.splits = splits.into_iter().collect();
    report
}

/// The named splits, each opened as the stages open it (`VocDataset::open_roots`: under a
/// VOCdevkit, `test` is VOC2007's alone), with each task's lists where they exist.
fn check_voc_splits(
    spec: &DatasetSpec,
    roots: &[PathBuf],
    splits: &[String],
    tasks: &[VocTask],
    sample: Option<usize>,
) -> CheckReport {
    let mut report = CheckReport::new(spec, "objects", &[]);
    report.splits = splits.to_vec();
    let mut seen = VocSeen::default();
    for split in splits {
        let mut datasets = Vec::new();
        let mut not_found = None;
        for &task in tasks {
            let dirs = match voc::split_year_dirs_of_roots(roots, split, task) {
                Ok(dirs) => dirs,
                Err(e) => {
                    not_found.get_or_insert(e);
                    continue;
                }
            };
            // A split with no list for this task is another task's split (VOC2007's
            // segmentation lists are not the detection lists): it is not checked here.
            if !dirs.iter().any(|d| voc::has_split_list(d, split, task)) {
                not_found.get_or_insert_with(|| voc::missing_split_error(&dirs[0], split, task));
                continue;
            }
            match VocDataset::open_years_reporting_problems(&dirs, split, task) {
                Ok((dataset, problems)) => {
                    report
                        .problems
                        .extend(problems.iter().map(ToString::to_string));
                    datasets.push(dataset);
                }
                Err(e) => report.problems.push(e.to_string()),
            }
        }
        if datasets.is_empty() {
            report.problems.extend(not_found.map(|e| e.to_string()));
        }
        for dataset in &datasets {
            check_voc_dataset(&mut report, dataset, &mut seen, sample);
        }
    }
    report
}

/// What was examined already: (segmentation?, year folder, id) per task, and each image.
#[derive(Default)]
struct VocSeen {
    entries: BTreeSet<(bool, PathBuf, String)>,
    images: BTreeSet<(PathBuf, String)>,
}

/// Checks the entries of `dataset` not examined before (for the same task), at most
/// `sample` of them.
fn check_voc_dataset(
    report: &mut CheckReport,
    dataset: &VocDataset,
    seen: &mut VocSeen,
    sample: Option<usize>,
) {
    report.count_classes(dataset.classes());
    for entry in dataset.entries() {
        if !report.folders.contains(&entry.year_dir) {
            report.folders.push(entry.year_dir.clone());
        }
    }
    let segmentation = dataset.task() == VocTask::Segmentation;
    let fresh: Vec<usize> = (0..dataset.len())
        .filter(|&i| {
            let entry = &dataset.entries()[i];
            seen.entries
                .insert((segmentation, entry.year_dir.clone(), entry.id.clone()))
        })
        .collect();
    let picked: Vec<usize> = sampled(fresh.len(), sample)
        .into_iter()
        .map(|i| fresh[i])
        .collect();
    let outcomes: Vec<EntryOutcome> = picked
        .par_iter()
        .map(|&i| check_voc_entry(dataset, i))
        .collect();
    for (outcome, &i) in outcomes.into_iter().zip(&picked) {
        let entry = &dataset.entries()[i];
        let first_time = seen
            .images
            .insert((entry.year_dir.clone(), entry.id.clone()));
        report.add(EntryOutcome {
            image_seen_before: !first_time,
            ..outcome
        });
    }
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

/// The named splits (default: those present of training and validation).
fn check_ade20k(
    spec: &DatasetSpec,
    root: &Path,
    splits: &[String],
    sample: Option<usize>,
) -> CheckReport {
    let splits: Vec<String> = match splits {
        [] => ["training", "validation"]
            .into_iter()
            .filter(|s| root.join("images").join(s).is_dir())
            .map(str::to_string)
            .collect(),
        named => named.to_vec(),
    };
    if splits.is_empty() {
        return failed_to_open(
            spec,
            DataError::invalid(root.join("images"), "has neither a training nor a validation folder (expected the ADEChallengeData2016 layout)"),
        );
    }
    let mut report = CheckReport::new(spec, "images", &[]);
    report.splits = splits.clone();
    for split in &splits {
        let dataset = match Ade20kDataset::open(root, split) {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        report.count_classes(dataset.classes());
        let outcomes: Vec<EntryOutcome> = sampled(dataset.len(), sample)
            .into_par_iter()
            .map(|i| check_ade20k_entry(&dataset, i))
            .collect();
        outcomes.into_iter().for_each(|o| report.add(o));
    }
    report
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

fn check_coco(
    spec: &DatasetSpec,
    annotations: &Path,
    images: Option<&Path>,
    sample: Option<usize>,
) -> CheckReport {
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
    let outcomes: Vec<EntryOutcome> = sampled(dataset.len(), sample)
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

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn a_sample_is_spread_over_the_split_and_starts_at_its_first_entry() {
        assert_eq!(sampled(10, Some(3)), [0, 3, 6]);
        assert_eq!(sampled(2, Some(5)), [0, 1]);
        assert_eq!(sampled(4, None), [0, 1, 2, 3]);
    }
}
