//! Per-class average precision by the rules of the PASCAL VOC devkit (`VOCevaldet.m`), which
//! GluonCV's `VOC07MApMetric` / `VOCMApMetric` follow:
//!
//! - Per class, the detections of every image are ranked by score, highest first. Equal
//!   scores keep the order the detections were added in (a stable sort, as MATLAB's `sort`
//!   in the devkit; GluonCV's `argsort` is numpy's unstable quicksort, so its order among
//!   ties is arbitrary).
//! - Down the ranking, each detection is matched to the ground-truth box of its image and
//!   class with the highest IoU (the first such box on a tie). IoU counts inclusive pixels:
//!   in the devkit's 1-based coordinates a box spans `x2 - x1 + 1` pixels. IoU at or above
//!   the threshold (0.5) with a box not yet taken is a true positive; a box already taken
//!   makes it a false positive (a duplicate), as does IoU below the threshold; a match with a
//!   difficult box is neither.
//! - Difficult boxes are not positives. A class with no positive box has no AP (`None`, NaN
//!   in GluonCV) and is left out of the mAP, as GluonCV's `nanmean` leaves it out.
//!
//! Boxes are held in the devkit's coordinates (1-based, inclusive, f64), which is what comp4
//! files hold; this project's 0-based continuous `[x1, y1, x2, y2]` converts with
//! [`devkit_box`]. Both describe the same pixels, and IoU in one equals plain continuous IoU
//! in the other.

use super::ap;
use rayon::prelude::*;
use std::collections::HashMap;

/// A box in the devkit's coordinates: `[xmin, ymin, xmax, ymax]`, 1-based, inclusive.
pub type DevkitBox = [f64; 4];

/// This project's 0-based continuous box (`x2` one past the last pixel column) in the
/// devkit's coordinates: `xmin = x1 + 1`, `xmax = x2` (the inverse of reading VOC XML).
pub fn devkit_box(continuous: [f32; 4]) -> DevkitBox {
    let [x1, y1, x2, y2] = continuous.map(f64::from);
    [x1 + 1.0, y1 + 1.0, x2, y2]
}

/// The inverse of [`devkit_box`].
pub fn continuous_box(devkit: DevkitBox) -> [f64; 4] {
    let [x1, y1, x2, y2] = devkit;
    [x1 - 1.0, y1 - 1.0, x2, y2]
}

/// Which VOC metric: the 11-point AP of VOC2007, or the area AP of VOC2010 onwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocMetric {
    /// VOC2007's 11-point interpolated AP (recall thresholds 0, 0.1, ..., 1).
    Voc07,
    /// The area under the precision envelope (VOC2010-2012's devkit, `VOCap.m`).
    Voc12,
}

impl VocMetric {
    /// The name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            VocMetric::Voc07 => "voc07",
            VocMetric::Voc12 => "voc12",
        }
    }
}

/// One annotated object, in the devkit's coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroundTruth {
    pub bbox: DevkitBox,
    pub class: usize,
    pub difficult: bool,
}

impl GroundTruth {
    /// An object as the dataset readers give it (0-based continuous box). A COCO crowd
    /// region counts as difficult: matching it is neither right nor wrong.
    pub fn from_record(object: &datasets::records::GroundTruthBox) -> Self {
        GroundTruth {
            bbox: devkit_box(object.bbox),
            class: object.class,
            difficult: object.difficult || object.crowd,
        }
    }
}

/// One scored box, in the devkit's coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: DevkitBox,
    pub class: usize,
    pub score: f64,
}

impl Detection {
    /// A model's output (0-based continuous box).
    pub fn from_continuous(bbox: [f32; 4], score: f32, class: usize) -> Self {
        Detection {
            bbox: devkit_box(bbox),
            class,
            score: f64::from(score),
        }
    }
}

/// Misuse of the evaluator (the command checks files before they get here).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VocEvalError {
    #[error("image \"{0}\" was added twice")]
    DuplicateImage(String),
    #[error("class index {class} in image \"{image}\" is out of range ({count} classes)")]
    ClassOutOfRange {
        image: String,
        class: usize,
        count: usize,
    },
    #[error("no image with index {0} was added")]
    UnknownImage(usize),
    #[error("a box or score in image \"{0}\" is not finite")]
    NotFinite(String),
    #[error("the detections of image \"{0}\" have unequal numbers of boxes, scores and classes")]
    LengthMismatch(String),
}

/// What one class scored.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassAp {
    pub name: String,
    /// `None` when the class has no positive (non-difficult) box.
    pub ap: Option<f64>,
    /// Non-difficult ground-truth boxes (the positives).
    pub positives: usize,
    /// Difficult boxes (ignored).
    pub difficult: usize,
    pub detections: usize,
    pub true_positives: usize,
    pub false_positives: usize,
}

/// Per-class APs and their mean over the classes that have positives.
#[derive(Clone, Debug, PartialEq)]
pub struct VocReport {
    pub metric: VocMetric,
    pub iou_threshold: f64,
    pub images: usize,
    pub classes: Vec<ClassAp>,
    /// `None` when no class has a positive box.
    pub map: Option<f64>,
}

/// A detection in the per-class lists: which image, its box and score.
#[derive(Clone, Copy)]
struct Ranked {
    score: f64,
    image: u32,
    bbox: DevkitBox,
}

/// Ground truth and detections of a whole split, added image by image, evaluated at the
/// end. Adding is cheap (appends); `evaluate` sorts each class once and matches.
pub struct VocEvaluator {
    classes: Vec<String>,
    image_ids: Vec<String>,
    index_of: HashMap<String, usize>,
    ground_truth: Vec<Vec<GroundTruth>>,
    detections: Vec<Vec<Ranked>>,
}

impl VocEvaluator {
    pub fn new(classes: Vec<String>) -> Self {
        let detections = vec![Vec::new(); classes.len()];
        VocEvaluator {
            classes,
            image_ids: Vec::new(),
            index_of: HashMap::new(),
            ground_truth: Vec::new(),
            detections,
        }
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn num_images(&self) -> usize {
        self.image_ids.len()
    }

    /// The index `add_image` gave the image `id`.
    pub fn image_index(&self, id: &str) -> Option<usize> {
        self.index_of.get(id).copied()
    }

    /// Adds an image with its ground truth (possibly none) and returns its index.
    pub fn add_image(
        &mut self,
        id: &str,
        ground_truth: &[GroundTruth],
    ) -> Result<usize, VocEvalError> {
        if self.index_of.contains_key(id) {
            return Err(VocEvalError::DuplicateImage(id.to_string()));
        }
        for object in ground_truth {
            self.check_class(id, object.class)?;
            if !object.bbox.iter().all(|v| v.is_finite()) {
                return Err(VocEvalError::NotFinite(id.to_string()));
            }
        }
        let index = self.image_ids.len();
        self.index_of.insert(id.to_string(), index);
        self.image_ids.push(id.to_string());
        self.ground_truth.push(ground_truth.to_vec());
        Ok(index)
    }

    /// Adds detections of image `image` (an index from `add_image`). Their order among equal
    /// scores is kept.
    pub fn add_detections(
        &mut self,
        image: usize,
        detections: &[Detection],
    ) -> Result<(), VocEvalError> {
        let id = self
            .image_ids
            .get(image)
            .ok_or(VocEvalError::UnknownImage(image))?;
        for d in detections {
            self.check_class(id, d.class)?;
            if !(d.score.is_finite() && d.bbox.iter().all(|v| v.is_finite())) {
                return Err(VocEvalError::NotFinite(id.clone()));
            }
        }
        for d in detections {
            self.detections[d.class].push(Ranked {
                // + 0.0 turns -0.0 into 0.0, so the two tie as they do in numpy.
                score: d.score + 0.0,
                image: image as u32,
                bbox: d.bbox,
            });
        }
        Ok(())
    }

    /// Adds a model's detections of image `image` (0-based continuous boxes).
    pub fn add_image_detections(
        &mut self,
        image: usize,
        detections: &super::ImageDetections,
    ) -> Result<(), VocEvalError> {
        let n = detections.boxes.len();
        if detections.scores.len() != n || detections.classes.len() != n {
            let id = self.image_ids.get(image).cloned().unwrap_or_default();
            return Err(VocEvalError::LengthMismatch(id));
        }
        let converted: Vec<Detection> = detections
            .boxes
            .iter()
            .zip(&detections.scores)
            .zip(&detections.classes)
            .map(|((&bbox, &score), &class)| Detection::from_continuous(bbox, score, class))
            .collect();
        self.add_detections(image, &converted)
    }

    fn check_class(&self, image: &str, class: usize) -> Result<(), VocEvalError> {
        match class < self.classes.len() {
            true => Ok(()),
            false => Err(VocEvalError::ClassOutOfRange {
                image: image.to_string(),
                class,
                count: self.classes.len(),
            }),
        }
    }

    /// Every class's AP under `metric`, a detection counting when its IoU is at least
    /// `iou_threshold` (VOC: 0.5). Classes are evaluated in parallel.
    pub fn evaluate(&self, metric: VocMetric, iou_threshold: f64) -> VocReport {
        let ground_truth = self.ground_truth_by_class();
        let classes: Vec<ClassAp> = (0..self.classes.len())
            .into_par_iter()
            .map(|c| {
                evaluate_class(
                    &self.classes[c],
                    &ground_truth[c],
                    &self.detections[c],
                    metric,
                    iou_threshold,
                )
            })
            .collect();
        let aps: Vec<f64> = classes.iter().filter_map(|c| c.ap).collect();
        let map = match aps.is_empty() {
            true => None,
            false => Some(aps.iter().sum::<f64>() / aps.len() as f64),
        };
        VocReport {
            metric,
            iou_threshold,
            images: self.image_ids.len(),
            classes,
            map,
        }
    }

    /// Each class's boxes grouped by image: image `i`'s are `boxes[start[i]..start[i + 1]]`,
    /// in the order the image listed them.
    fn ground_truth_by_class(&self) -> Vec<ClassGroundTruth> {
        let images = self.ground_truth.len();
        let mut by_class: Vec<ClassGroundTruth> = (0..self.classes.len())
            .map(|_| ClassGroundTruth {
                start: Vec::with_capacity(images + 1),
                boxes: Vec::new(),
                difficult: Vec::new(),
            })
            .collect();
        for objects in &self.ground_truth {
            for class in &mut by_class {
                class.start.push(class.boxes.len() as u32);
            }
            for object in objects {
                let class = &mut by_class[object.class];
                class.boxes.push(object.bbox);
                class.difficult.push(object.difficult);
            }
        }
        for class in &mut by_class {
            class.start.push(class.boxes.len() as u32);
        }
        by_class
    }
}

struct ClassGroundTruth {
    start: Vec<u32>,
    boxes: Vec<DevkitBox>,
    difficult: Vec<bool>,
}

/// IoU with inclusive pixel counts, as `VOCevaldet.m` computes it; `None` when the boxes do
/// not overlap by at least one (inclusive) pixel in each direction.
fn inclusive_iou(a: &DevkitBox, b: &DevkitBox) -> Option<f64> {
    let iw = a[2].min(b[2]) - a[0].max(b[0]) + 1.0;
    let ih = a[3].min(b[3]) - a[1].max(b[1]) + 1.0;
    if iw > 0.0 && ih > 0.0 {
        let intersection = iw * ih;
        let union = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0)
            + (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
            - intersection;
        Some(intersection / union)
    } else {
        None
    }
}

fn evaluate_class(
    name: &str,
    ground_truth: &ClassGroundTruth,
    detections: &[Ranked],
    metric: VocMetric,
    iou_threshold: f64,
) -> ClassAp {
    let difficult = ground_truth.difficult.iter().filter(|&&d| d).count();
    let positives = ground_truth.boxes.len() - difficult;
    let mut order: Vec<u32> = (0..detections.len() as u32).collect();
    // Stable: equal scores keep the order they were added in. Scores are finite.
    order.sort_by(|&a, &b| {
        detections[b as usize]
            .score
            .partial_cmp(&detections[a as usize].score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut taken = vec![false; ground_truth.boxes.len()];
    let (mut tp, mut fp) = (
        Vec::with_capacity(order.len()),
        Vec::with_capacity(order.len()),
    );
    let (mut tp_count, mut fp_count) = (0u32, 0u32);
    for &d in &order {
        let detection = &detections[d as usize];
        let image = detection.image as usize;
        let range = ground_truth.start[image] as usize..ground_truth.start[image + 1] as usize;
        let mut best: Option<(f64, usize)> = None;
        for j in range {
            if let Some(iou) = inclusive_iou(&detection.bbox, &ground_truth.boxes[j]) {
                if best.is_none_or(|(max, _)| iou > max) {
                    best = Some((iou, j));
                }
            }
        }
        match best {
            Some((iou, j)) if iou >= iou_threshold => {
                if ground_truth.difficult[j] {
                    // Neither: a difficult object may be found or not.
                } else if !taken[j] {
                    taken[j] = true;
                    tp_count += 1;
                } else {
                    fp_count += 1;
                }
            }
            _ => fp_count += 1,
        }
        tp.push(tp_count);
        fp.push(fp_count);
    }
    let ap = (positives > 0).then(|| {
        let (precision, recall) = ap::precision_recall(&tp, &fp, positives);
        match metric {
            VocMetric::Voc07 => ap::eleven_point(&precision, &recall),
            VocMetric::Voc12 => ap::area(&precision, &recall),
        }
    });
    ClassAp {
        name: name.to_string(),
        ap,
        positives,
        difficult,
        detections: detections.len(),
        true_positives: tp_count as usize,
        false_positives: fp_count as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_cat() -> VocEvaluator {
        let mut ev = VocEvaluator::new(vec!["cat".into()]);
        let gt = GroundTruth {
            bbox: [1.0, 1.0, 10.0, 10.0],
            class: 0,
            difficult: false,
        };
        ev.add_image("a", &[gt]).unwrap();
        ev.add_image("b", &[]).unwrap();
        ev
    }

    fn detection(score: f64) -> Detection {
        Detection {
            bbox: [1.0, 1.0, 10.0, 10.0],
            class: 0,
            score,
        }
    }

    #[test]
    fn equal_scores_keep_the_order_they_were_added_in() {
        // A miss (image b) and a hit (image a) at the same score: whichever came first is
        // ranked first, which decides the precision at the hit.
        let mut miss_first = one_cat();
        miss_first.add_detections(1, &[detection(0.5)]).unwrap();
        miss_first.add_detections(0, &[detection(0.5)]).unwrap();
        let mut hit_first = one_cat();
        hit_first.add_detections(0, &[detection(0.5)]).unwrap();
        hit_first.add_detections(1, &[detection(0.5)]).unwrap();
        assert_eq!(miss_first.evaluate(VocMetric::Voc12, 0.5).map, Some(0.5));
        assert_eq!(hit_first.evaluate(VocMetric::Voc12, 0.5).map, Some(1.0));
    }

    #[test]
    fn boxes_convert_to_devkit_coordinates_and_iou_counts_inclusive_pixels() {
        // Pixels 0..=9 are [0, 10) here and 1..=10 in the devkit.
        assert_eq!(devkit_box([0.0, 0.0, 10.0, 10.0]), [1.0, 1.0, 10.0, 10.0]);
        assert_eq!(
            continuous_box([1.0, 1.0, 10.0, 10.0]),
            [0.0, 0.0, 10.0, 10.0]
        );
        // Two 10x10 boxes sharing a 5-pixel-wide column block: 50 / 150.
        let iou = inclusive_iou(&[1.0, 1.0, 10.0, 10.0], &[6.0, 1.0, 15.0, 10.0]).unwrap();
        assert!((iou - 1.0 / 3.0).abs() < 1e-15);
        // Touching edges share no pixel.
        assert_eq!(
            inclusive_iou(&[1.0, 1.0, 10.0, 10.0], &[11.0, 1.0, 20.0, 10.0]),
            None
        );
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut ev = one_cat();
        assert_eq!(
            ev.add_image("a", &[]),
            Err(VocEvalError::DuplicateImage("a".into()))
        );
        assert_eq!(
            ev.add_detections(7, &[detection(0.5)]),
            Err(VocEvalError::UnknownImage(7))
        );
        let mut dog = detection(0.5);
        dog.class = 1;
        assert!(matches!(
            ev.add_detections(0, &[dog]),
            Err(VocEvalError::ClassOutOfRange { class: 1, .. })
        ));
        assert_eq!(
            ev.add_detections(0, &[detection(f64::NAN)]),
            Err(VocEvalError::NotFinite("a".into()))
        );
        let uneven = crate::eval::ImageDetections {
            boxes: vec![[0.0; 4]],
            scores: vec![],
            classes: vec![0],
        };
        assert_eq!(
            ev.add_image_detections(0, &uneven),
            Err(VocEvalError::LengthMismatch("a".into()))
        );
        // Nothing half-added: the image still has no detections.
        assert_eq!(ev.evaluate(VocMetric::Voc07, 0.5).classes[0].detections, 0);
    }
}
