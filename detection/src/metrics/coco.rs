//! COCO evaluation through `hotcoco` (pycocotools' rules: 101-point interpolated AP over IoU
//! 0.5:0.95, area ranges, at most 100 detections per image), and COCO results JSON
//! (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`).
//!
//! Classes are the annotation file's categories in increasing id order, as
//! `datasets::coco` numbers them, so class `c` of a model trained on that reader is
//! `category_ids()[c]`. Boxes go out as COCO's `[x, y, w, h]` with `x = x1`, `w = x2 - x1`:
//! COCO boxes are continuous like this project's, so nothing is added or removed.

use super::ImageDetections;
use datasets::coco::CocoDataset;
use datasets::input_file::open_regular;
use datasets::limits::MAX_JSON_FILE_BYTES;
use datasets::DataError;
use hotcoco::params::IouType;
use hotcoco::types::Annotation;
use hotcoco::{COCOeval, COCO};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One line of a COCO results file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    pub score: f64,
}

/// An image's detections as COCO results; `category_ids[c]` is class `c`'s category.
pub fn coco_results(
    image_id: u64,
    detections: &ImageDetections,
    category_ids: &[u64],
) -> Result<Vec<CocoResult>, String> {
    detections.check(category_ids.len())?;
    Ok(detections
        .boxes
        .iter()
        .zip(&detections.scores)
        .zip(&detections.classes)
        .map(|((bbox, &score), &class)| {
            let [x1, y1, x2, y2] = bbox.map(f64::from);
            CocoResult {
                image_id,
                category_id: category_ids[class],
                bbox: [x1, y1, x2 - x1, y2 - y1],
                score: f64::from(score),
            }
        })
        .collect())
}

/// The longest results file read (COCO val2017 with 100 detections per image is ~50 MB).
pub const MAX_RESULTS_FILE_BYTES: u64 = MAX_JSON_FILE_BYTES;

/// Writes a COCO results file atomically.
pub fn write_results(path: &Path, results: &[CocoResult]) -> std::io::Result<()> {
    let json = serde_json::to_vec(results).map_err(std::io::Error::other)?;
    engine::atomic_write::write(path, &json)
}

#[derive(Debug, thiserror::Error)]
pub enum CocoEvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{}: {message}", path.display())]
    Annotations { path: PathBuf, message: String },
    #[error("image id {image_id} is not in {}", path.display())]
    UnknownImage { path: PathBuf, image_id: u64 },
    #[error("detections of image {image_id}: {message}")]
    Detections { image_id: u64, message: String },
    #[error("{}: {message}", path.display())]
    Results { path: PathBuf, message: String },
    #[error("hotcoco could not evaluate: {0}")]
    Evaluation(String),
}

impl CocoEvalError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            CocoEvalError::Data(e) => !e.is_bug(),
            CocoEvalError::Annotations { .. }
            | CocoEvalError::UnknownImage { .. }
            | CocoEvalError::Detections { .. }
            | CocoEvalError::Results { .. } => true,
            CocoEvalError::Evaluation(_) => false,
        }
    }
}

/// The twelve summary numbers and each category's AP (0.5:0.95).
#[derive(Clone, Debug, PartialEq)]
pub struct CocoReport {
    /// `AP`, `AP50`, `AP75`, `APs`, `APm`, `APl`, `AR1`, `AR10`, `AR100`, `ARs`, `ARm`, `ARl`
    /// (pycocotools' `stats`, -1 where there is nothing to measure, such as no small objects).
    pub stats: Vec<(String, f64)>,
    /// AP per category name, for categories that have ground truth.
    pub per_class: Vec<(String, f64)>,
}

impl CocoReport {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.stats.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Ground truth from an annotation file, detections added image by image.
pub struct CocoEvaluator {
    path: PathBuf,
    ground_truth: COCO,
    category_ids: Vec<u64>,
    results: Vec<Annotation>,
    /// The images scored, when not every image of the file (pycocotools' `params.imgIds`).
    images: Option<Vec<u64>>,
}

impl CocoEvaluator {
    /// Reads the ground truth with the reader training and `datasets check` use, and
    /// refuses what they refuse (ids defined twice, annotations of unknown categories or
    /// images, boxes of no size or off their image), and a file with no object to measure
    /// (pycocotools would report AP -1).
    pub fn open(annotations: &Path) -> Result<Self, CocoEvalError> {
        let dataset = CocoDataset::open(annotations, None)?;
        dataset.check_ground_truth()?;
        if dataset.non_crowd_annotations() == 0 {
            return Err(CocoEvalError::Annotations {
                path: annotations.to_path_buf(),
                message: "no annotation that is not a crowd region, so there is nothing to measure"
                    .into(),
            });
        }
        let category_ids = dataset.category_ids().to_vec();
        Ok(CocoEvaluator {
            path: annotations.to_path_buf(),
            ground_truth: dataset.into_coco(),
            category_ids,
            results: Vec::new(),
            images: None,
        })
    }

    /// Category ids in class order.
    pub fn category_ids(&self) -> &[u64] {
        &self.category_ids
    }

    /// Adds a model's detections of the image with COCO id `image_id`.
    pub fn add_detections(
        &mut self,
        image_id: u64,
        detections: &ImageDetections,
    ) -> Result<(), CocoEvalError> {
        if self.ground_truth.get_img(image_id).is_none() {
            return Err(CocoEvalError::UnknownImage {
                path: self.path.clone(),
                image_id,
            });
        }
        let results = coco_results(image_id, detections, &self.category_ids)
            .map_err(|message| CocoEvalError::Detections { image_id, message })?;
        self.results.extend(results.into_iter().map(|r| Annotation {
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: Some(r.bbox),
            score: Some(r.score),
            ..Default::default()
        }));
        Ok(())
    }

    /// Adds the entries of a results file (`path` names it in errors): each must name an
    /// image and a category of the annotation file and have a box of finite, non-negative
    /// size and a finite score.
    pub fn add_results(
        &mut self,
        path: &Path,
        results: &[CocoResult],
    ) -> Result<(), CocoEvalError> {
        for (i, r) in results.iter().enumerate() {
            self.add_result(path, i, r)?;
        }
        Ok(())
    }

    /// Reads the COCO results file `path` (untrusted: a regular file of bounded length, a
    /// JSON array of `{"image_id", "category_id", "bbox", "score"}` objects) and adds its
    /// entries as [`Self::add_results`] does. The array is read one entry at a time into
    /// the evaluator's own records, so a file costs little more than hotcoco's copy of it.
    /// Returns the number of entries.
    pub fn read_results(&mut self, path: &Path) -> Result<usize, CocoEvalError> {
        let (file, _) = open_regular(path, MAX_RESULTS_FILE_BYTES, "a COCO results JSON file")?;
        let reader = std::io::BufReader::new(std::io::Read::take(file, MAX_RESULTS_FILE_BYTES));
        let mut deserializer = serde_json::Deserializer::from_reader(reader);
        let before = self.results.len();
        let mut entry_error = None;
        let read = serde::Deserializer::deserialize_seq(
            &mut deserializer,
            ResultsVisitor {
                evaluator: self,
                path,
                error: &mut entry_error,
            },
        )
        .and_then(|()| deserializer.end());
        if let Some(e) = entry_error {
            return Err(e);
        }
        read.map_err(|e| CocoEvalError::Results {
            path: path.to_path_buf(),
            message: format!(
                "not a COCO results array [{{\"image_id\", \"category_id\", \"bbox\": [x, y, w, h], \"score\"}}] ({e})"
            ),
        })?;
        self.results.shrink_to_fit();
        Ok(self.results.len() - before)
    }

    /// Checks entry `index` of the results file `path` and adds it.
    fn add_result(
        &mut self,
        path: &Path,
        index: usize,
        r: &CocoResult,
    ) -> Result<(), CocoEvalError> {
        let bad = |message: String| CocoEvalError::Results {
            path: path.to_path_buf(),
            message: format!("entry {index}: {message}"),
        };
        if self.ground_truth.get_img(r.image_id).is_none() {
            return Err(bad(format!(
                "image_id {} is not in {}",
                r.image_id,
                self.path.display()
            )));
        }
        if self.category_ids.binary_search(&r.category_id).is_err() {
            return Err(bad(format!(
                "category_id {} is not a category of {}",
                r.category_id,
                self.path.display()
            )));
        }
        let [_, _, w, h] = r.bbox;
        if !(r.score.is_finite() && r.bbox.iter().all(|v| v.is_finite()) && w >= 0.0 && h >= 0.0) {
            return Err(bad(format!(
                "bbox {:?} with score {} is not a finite box of non-negative size [x, y, w, h]",
                r.bbox, r.score
            )));
        }
        // Grown by a quarter rather than doubled: hotcoco's records are ~200 bytes, and
        // millions of them would otherwise reserve up to twice what they hold.
        if self.results.len() == self.results.capacity() {
            self.results.reserve_exact(self.results.len() / 4 + 1024);
        }
        self.results.push(Annotation {
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: Some(r.bbox),
            score: Some(r.score),
            ..Default::default()
        });
        Ok(())
    }

    /// Scores these images only, as pycocotools does with `params.imgIds` set: the ground
    /// truth of the file's other images is not counted as missed.
    pub fn only_images(&mut self, image_ids: Vec<u64>) {
        self.images = Some(image_ids);
    }

    /// pycocotools' bbox evaluation of everything added (handed to hotcoco, not copied).
    pub fn evaluate(self) -> Result<CocoReport, CocoEvalError> {
        let evaluation = |e: hotcoco::error::Error| CocoEvalError::Evaluation(e.to_string());
        let detections = self
            .ground_truth
            .load_res_anns(self.results)
            .map_err(evaluation)?;
        let mut eval = COCOeval::new(self.ground_truth.clone(), detections, IouType::Bbox);
        if let Some(images) = self.images {
            eval.params.img_ids = images;
        }
        eval.evaluate().map_err(evaluation)?;
        eval.accumulate();
        // summarize_lines computes the stats without printing (summarize() prints to stdout,
        // where `--json` output goes).
        eval.summarize_lines();
        let keys = eval.metric_keys();
        let results: BTreeMap<String, f64> = eval.get_results(None, true);
        let stats = keys
            .iter()
            .filter_map(|&k| results.get(k).map(|&v| (k.to_string(), v)))
            .collect();
        // In class order; categories without ground truth have no AP and are left out.
        let per_class = self
            .category_ids
            .iter()
            .filter_map(|&id| {
                let name = self.ground_truth.get_cat(id)?.name.clone();
                let ap = *results.get(&format!("AP/{name}"))?;
                Some((name, ap))
            })
            .collect();
        Ok(CocoReport { stats, per_class })
    }
}

/// Reads a results array entry by entry into a [`CocoEvaluator`]; the first bad entry stops
/// the read and is kept in `error` (serde's own error could not carry it).
struct ResultsVisitor<'a> {
    evaluator: &'a mut CocoEvaluator,
    path: &'a Path,
    error: &'a mut Option<CocoEvalError>,
}

impl<'de> serde::de::Visitor<'de> for ResultsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of results")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(result) = seq.next_element::<CocoResult>()? {
            if let Err(e) = self.evaluator.add_result(self.path, index, &result) {
                *self.error = Some(e);
                return Err(serde::de::Error::custom("a bad entry"));
            }
            index += 1;
        }
        Ok(())
    }
}
