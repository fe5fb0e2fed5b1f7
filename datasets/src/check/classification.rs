//! `datasets check` for classification data: the ImageNet folder layout and Fashion-MNIST,
//! opened as `backbone train` opens them.

use super::{check_image, sampled, CheckReport, EntryOutcome};
use crate::classify::{open_images, ClassificationSplit};
use crate::formats::image_folder::ImageFolder;
use crate::formats::spec::DatasetSpec;
use rayon::prelude::*;
use std::path::Path;

const SPLITS: [&str; 2] = ["train", "val"];

fn classification_split(name: &str) -> Option<ClassificationSplit> {
    match name {
        "train" => Some(ClassificationSplit::Train),
        "val" => Some(ClassificationSplit::Val),
        _ => None,
    }
}

/// The named splits, or both.
fn split_names(splits: &[String]) -> Vec<String> {
    match splits {
        [] => SPLITS.iter().map(|s| s.to_string()).collect(),
        named => named.to_vec(),
    }
}

fn unknown_split(spec: &DatasetSpec, split: &str) -> String {
    format!("{spec}: no split \"{split}\" (classification data has train and val)")
}

/// `ROOT/train` and `ROOT/val` as the classification loader opens them (classes from
/// `train`; every folder of `val` must be one of them; no class folder may be empty), then
/// every image (or `sample` of each split) read and decoded as the loader does.
pub(super) fn check_imagenet(
    spec: &DatasetSpec,
    root: &Path,
    splits: &[String],
    sample: Option<usize>,
) -> CheckReport {
    let mut report = CheckReport::new(spec, "images", &[]);
    report.splits = split_names(splits);
    let classes = match ImageFolder::imagenet_classes(root) {
        Ok(classes) => classes,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    report.count_classes(&classes);
    for split in report.splits.clone() {
        if classification_split(&split).is_none() {
            report.problems.push(unknown_split(spec, &split));
            continue;
        }
        let opened =
            ImageFolder::with_classes_reporting_problems(&root.join(&split), classes.clone());
        let folder = match opened {
            Ok((folder, problems)) => {
                report
                    .problems
                    .extend(problems.iter().map(ToString::to_string));
                folder
            }
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        let outcomes: Vec<EntryOutcome> = sampled(folder.len(), sample)
            .into_par_iter()
            .map(|i| EntryOutcome {
                problems: check_image(folder.path(i), None)
                    .err()
                    .into_iter()
                    .collect(),
                classes: vec![folder.label(i)],
                image_seen_before: false,
            })
            .collect();
        outcomes.into_iter().for_each(|o| report.add(o));
    }
    report
}

/// The IDX files of each split read and checked as `backbone train` reads them (the images
/// are in memory once read, so there is nothing to sample).
pub(super) fn check_fashion_mnist(spec: &DatasetSpec, splits: &[String]) -> CheckReport {
    let mut report = CheckReport::new(spec, "images", &[]);
    report.splits = split_names(splits);
    for split in report.splits.clone() {
        let Some(which) = classification_split(&split) else {
            report.problems.push(unknown_split(spec, &split));
            continue;
        };
        match open_images(spec, which) {
            Ok(source) => {
                report.count_classes(&source.class_names());
                for i in 0..source.len() {
                    report.add(EntryOutcome {
                        classes: vec![source.label(i)],
                        ..EntryOutcome::default()
                    });
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    report
}
