//! Per-class average precision by the rules of the PASCAL VOC devkit (`VOCevaldet.m`, the
//! `voc07` and `voc12` metrics) and by GluonCV's `VOC07MApMetric` (`voc07-gluoncv`, the
//! evaluator behind the paper's Table 8), which follows the devkit's loop but differs from
//! it in three arithmetic details listed below.
//!
//! The devkit's rules (VOCevaldet.m of the VOC2007 devkit onwards):
//!
//! - Per class, the detections of every image are ranked by score, highest first. Equal
//!   scores keep the order the detections were added in (a stable sort, as MATLAB's `sort`
//!   in the devkit).
//! - Down the ranking, each detection is matched to the ground-truth box of its image and
//!   class with the highest IoU (the first such box on a tie). IoU counts inclusive pixels:
//!   in the devkit's 1-based coordinates a box spans `x2 - x1 + 1` pixels. IoU at or above
//!   the threshold (`ovmax>=VOCopts.minoverlap`, 0.5) with a box not yet taken is a true
//!   positive; a box already taken makes it a false positive (a duplicate), as does IoU
//!   below the threshold; a match with a difficult box is neither.
//! - Difficult boxes are not positives. A class with no positive box has no AP (`None`) and
//!   is left out of the mAP (the devkit scores one class at a time and leaves the mean to
//!   its caller; here it is the plain mean of the classes that have an AP).
//!
//! GluonCV's `VOC07MApMetric` (gluoncv/utils/metrics/voc_detection.py, Oct 2018) matches
//! image by image, each image's detections of a class sorted by score, with the same
//! outcomes (true, duplicate, difficult, miss) as above, then ranks all of a class's
//! detections by score. Where scores are distinct that is the devkit's loop; among equal
//! scores numpy's unstable `argsort` leaves GluonCV's order unspecified, and the devkit's
//! stable order is kept here. What differs:
//!
//! - IoU in float32, on the boxes as GluonCV holds them (`x2 + 1` of its 0-based inclusive
//!   boxes, i.e. this project's continuous boxes): `(min x2 - max x1) * (min y2 - max y1)`
//!   over `area_a + area_b - intersection`, compared with the threshold as float32 (numpy
//!   casts the Python float to the array's type), so an IoU within float32 rounding of the
//!   threshold, or two boxes within rounding of each other, can go the other way.
//! - The 11 recall thresholds of `np.arange(0., 1.1, 0.1)` ([`ap::numpy_recall_thresholds`]):
//!   recall of exactly 0.6 or 0.7 does not reach its point.
//! - The mAP is `np.nanmean` over the classes up to the highest class index that occurs in
//!   the ground truth or the detections: numpy's pairwise sum ([`ap::numpy_sum`]) with the
//!   classes without AP as 0, over the number of classes with an AP.
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

/// Which VOC metric: the 11-point AP of VOC2007 (by the devkit or as GluonCV computes it),
/// or the area AP of VOC2010 onwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocMetric {
    /// VOC2007's 11-point interpolated AP exactly as the devkit's VOCevaldet.m computes it
    /// (recall thresholds of MATLAB's `0:0.1:1`, double-precision inclusive-pixel IoU).
    Voc07,
    /// VOC2007's 11-point AP exactly as GluonCV's `VOC07MApMetric` computes it (numpy's
    /// thresholds, float32 IoU, numpy's `nanmean`): the paper's numbers came from it.
    Voc07Gluoncv,
    /// The area under the precision envelope (VOC2010-2012's devkit, `VOCap.m`).
    Voc12,
}

impl VocMetric {
    /// Every metric, in the order help texts list them.
    pub const ALL: [VocMetric; 3] = [VocMetric::Voc07, VocMetric::Voc07Gluoncv, VocMetric::Voc12];

    /// The name used in JSON, in recipes and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            VocMetric::Voc07 => "voc07",
            VocMetric::Voc07Gluoncv => "voc07-gluoncv",
            VocMetric::Voc12 => "voc12",
        }
    }

    /// The metric called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<VocMetric> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// "voc07, voc07-gluoncv, voc12", for error messages.
    pub fn names() -> String {
        Self::ALL.map(VocMetric::name).join(", ")
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

/// One class's detections in the order they were read (which decides ties), 48 bytes each:
/// what a reader of per-class result files fills and hands over whole
/// ([`VocEvaluator::add_class_detections`]), so they are never held twice.
#[derive(Default)]
pub struct ClassDetections(Vec<Ranked>);

impl ClassDetections {
    /// Appends a detection of image `image` (an index from `add_image`); `score` and `bbox`
    /// must be finite.
    pub fn push(&mut self, image: usize, bbox: DevkitBox, score: f64) {
        debug_assert!(score.is_finite() && bbox.iter().all(|v| v.is_finite()));
        // Grown by a quarter rather than doubled: a list of millions of detections then
        // reserves at most a quarter more than it holds.
        if self.0.len() == self.0.capacity() {
            self.0.reserve_exact(self.0.len() / 4 + 1024);
        }
        self.0.push(Ranked {
            // + 0.0 turns -0.0 into 0.0, so the two tie as they do in numpy.
            score: score + 0.0,
            image: image as u32,
            bbox,
        });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Gives back what growing the list reserved beyond its length.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
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

    /// Adds class `class`'s detections after those it has (moved in whole where it has
    /// none). Every image index must be one `add_image` gave and every value finite.
    pub fn add_class_detections(
        &mut self,
        class: usize,
        detections: ClassDetections,
    ) -> Result<(), VocEvalError> {
        let count = self.classes.len();
        let list = self
            .detections
            .get_mut(class)
            .ok_or_else(|| VocEvalError::ClassOutOfRange {
                image: String::new(),
                class,
                count,
            })?;
        if let Some(d) = detections
            .0
            .iter()
            .find(|d| d.image as usize >= self.image_ids.len())
        {
            return Err(VocEvalError::UnknownImage(d.image as usize));
        }
        match list.is_empty() {
            true => *list = detections.0,
            false => list.extend(detections.0),
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
        let map = match metric {
            VocMetric::Voc07Gluoncv => gluoncv_nanmean(&classes),
            VocMetric::Voc07 | VocMetric::Voc12 => {
                let aps: Vec<f64> = classes.iter().filter_map(|c| c.ap).collect();
                match aps.is_empty() {
                    true => None,
                    false => Some(aps.iter().sum::<f64>() / aps.len() as f64),
                }
            }
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

/// A box as GluonCV's metric holds it after its `+1` on `x2, y2`: the continuous box, in
/// float32.
fn gluoncv_box(devkit: &DevkitBox) -> [f32; 4] {
    continuous_box(*devkit).map(|v| v as f32)
}

/// IoU as GluonCV's `bbox_iou` computes it on those boxes, in float32 and in its order of
/// operations; `None` where the boxes do not overlap (GluonCV's IoU is 0 there, which can
/// never reach a threshold above 0).
fn gluoncv_iou(a: &[f32; 4], b: &[f32; 4]) -> Option<f32> {
    let (left, top) = (a[0].max(b[0]), a[1].max(b[1]));
    let (right, bottom) = (a[2].min(b[2]), a[3].min(b[3]));
    if !(left < right && top < bottom) {
        return None;
    }
    let intersection = (right - left) * (bottom - top);
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    Some(intersection / (area_a + area_b - intersection))
}

/// GluonCV's mAP: `np.nanmean` over the class indices below one past the highest that
/// occurs in the ground truth (difficult boxes included) or the detections.
fn gluoncv_nanmean(classes: &[ClassAp]) -> Option<f64> {
    let seen = classes
        .iter()
        .rposition(|c| c.positives + c.difficult + c.detections > 0)?;
    let aps: Vec<f64> = classes[..=seen]
        .iter()
        .map(|c| c.ap.unwrap_or(0.0))
        .collect();
    let counted = classes[..=seen].iter().filter(|c| c.ap.is_some()).count();
    (counted > 0).then(|| ap::numpy_sum(&aps) / counted as f64)
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
    let gluoncv = metric == VocMetric::Voc07Gluoncv;
    // GluonCV compares its float32 IoU with the threshold cast to float32.
    let threshold = match gluoncv {
        true => f64::from(iou_threshold as f32),
        false => iou_threshold,
    };
    let gluoncv_truth: Vec<[f32; 4]> = match gluoncv {
        true => ground_truth.boxes.iter().map(gluoncv_box).collect(),
        false => Vec::new(),
    };
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
        let detection_box = gluoncv.then(|| gluoncv_box(&detection.bbox));
        for j in range {
            // f32 to f64 is exact, so comparisons of the f64 are those of the f32.
            let iou = match &detection_box {
                Some(d) => gluoncv_iou(d, &gluoncv_truth[j]).map(f64::from),
                None => inclusive_iou(&detection.bbox, &ground_truth.boxes[j]),
            };
            if let Some(iou) = iou {
                if best.is_none_or(|(max, _)| iou > max) {
                    best = Some((iou, j));
                }
            }
        }
        match best {
            Some((iou, j)) if iou >= threshold => {
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
            VocMetric::Voc07 => {
                ap::eleven_point(&ap::voc07_recall_thresholds(), &precision, &recall)
            }
            VocMetric::Voc07Gluoncv => {
                ap::eleven_point(&ap::numpy_recall_thresholds(), &precision, &recall)
            }
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
        let uneven = crate::metrics::ImageDetections {
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
