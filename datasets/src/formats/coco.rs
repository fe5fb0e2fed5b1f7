//! COCO instance annotations (`instances_*.json`), read through `hotcoco`, which reads them
//! as pycocotools does.
//!
//! Images are taken in increasing id order (torchvision's `CocoDetection`). Category ids,
//! which need not be contiguous (COCO's run 1..=90 for 80 classes), map to class indices
//! 0..K in increasing id order. Boxes `[x, y, w, h]` become `[x, y, x + w, y + h]`.

use crate::error::{DataError, Result};
use crate::formats::records::{DetectionRecord, GroundTruthBox};
use crate::input::dataset_id::check_relative_file_name;
use crate::input::file::open_regular;
use crate::input::limits::{max_image_pixels, MAX_IMAGE_PIXELS_VAR, MAX_JSON_FILE_BYTES};
use hotcoco::COCO;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Boxes may overhang the image by this much (float rounding in exported files) and are
/// then clipped; more than this is an error.
const BOX_TOLERANCE: f64 = 1.0;

pub struct CocoDataset {
    annotations_path: PathBuf,
    images_dir: PathBuf,
    coco: COCO,
    image_ids: Vec<u64>,
    category_ids: Vec<u64>,
    class_of_category: HashMap<u64, usize>,
    classes: Vec<String>,
}

/// One object's mask, row-major, 1 inside.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceMask {
    pub class: usize,
    pub crowd: bool,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Where the images of `annotations` are when the spec does not say: COCO's own layout
/// `annotations/instances_<split>.json` next to `<split>/`, or this project's synthetic
/// layout with `images/<split>/`; otherwise the annotation file's folder.
pub fn default_images_dir(annotations: &Path) -> PathBuf {
    let parent = annotations.parent().unwrap_or(Path::new("."));
    let split = annotations
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("instances_"));
    if let (Some(split), Some(top)) = (split, parent.parent()) {
        for candidate in [top.join("images").join(split), top.join(split)] {
            if candidate.is_dir() {
                return candidate;
            }
        }
    }
    parent.to_path_buf()
}

impl CocoDataset {
    /// Opens an annotation file. An image or annotation id defined twice is an error: which
    /// of the two records is meant cannot be known (pycocotools keeps the last image and
    /// counts a duplicated annotation twice).
    pub fn open(annotations: &Path, images_dir: Option<&Path>) -> Result<Self> {
        let (dataset, mut duplicates) = Self::open_reporting_duplicates(annotations, images_dir)?;
        match duplicates.is_empty() {
            true => Ok(dataset),
            false => Err(duplicates.swap_remove(0)),
        }
    }

    /// As [`Self::open`], but ids defined twice are reported rather than refused (each image
    /// id is then one entry), so that `check` can go on and list every problem.
    pub fn open_reporting_duplicates(
        annotations: &Path,
        images_dir: Option<&Path>,
    ) -> Result<(Self, Vec<DataError>)> {
        // hotcoco opens the file itself: check first that it is a regular file of a sane
        // length (a FIFO would block it, a device would never end).
        drop(open_regular(
            annotations,
            MAX_JSON_FILE_BYTES,
            "a COCO JSON annotation file",
        )?);
        let coco = COCO::new(annotations)
            .map_err(|e| DataError::invalid(annotations, format!("malformed COCO JSON ({e})")))?;
        let mut categories: Vec<(u64, String)> = coco
            .dataset
            .categories
            .iter()
            .map(|c| (c.id, c.name.clone()))
            .collect();
        categories.sort_by_key(|(id, _)| *id);
        if let Some(w) = categories.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DataError::invalid(
                annotations,
                format!("category id {} is defined twice", w[0].0),
            ));
        }
        let mut image_ids: Vec<u64> = coco.dataset.images.iter().map(|i| i.id).collect();
        let mut duplicates = defined_more_than_once("image", &mut image_ids, annotations);
        let mut annotation_ids: Vec<u64> = coco.dataset.annotations.iter().map(|a| a.id).collect();
        duplicates.extend(defined_more_than_once(
            "annotation",
            &mut annotation_ids,
            annotations,
        ));
        let dataset = CocoDataset {
            annotations_path: annotations.to_path_buf(),
            images_dir: images_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default_images_dir(annotations)),
            image_ids,
            class_of_category: categories
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, i))
                .collect(),
            category_ids: categories.iter().map(|(id, _)| *id).collect(),
            classes: categories.into_iter().map(|(_, name)| name).collect(),
            coco,
        };
        Ok((dataset, duplicates))
    }

    pub fn len(&self) -> usize {
        self.image_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_ids.is_empty()
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The COCO category id of each class index.
    pub fn category_ids(&self) -> &[u64] {
        &self.category_ids
    }

    pub fn annotations_path(&self) -> &Path {
        &self.annotations_path
    }

    pub fn images_dir(&self) -> &Path {
        &self.images_dir
    }

    pub fn image_id(&self, index: usize) -> u64 {
        self.image_ids[index]
    }

    /// Every image's id and `file_name`, in id order.
    pub fn image_ids_and_file_names(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        (0..self.len()).map(|i| (self.image_ids[i], self.image(i).file_name.as_str()))
    }

    /// Keeps the first `n` images (quick training runs: `data.max_*_samples`).
    pub fn truncate(&mut self, n: usize) {
        self.image_ids.truncate(n);
    }

    fn image(&self, index: usize) -> &hotcoco::Image {
        // Ids come from the dataset's own image list, so the lookup cannot fail.
        self.coco
            .get_img(self.image_ids[index])
            .expect("image ids are taken from the index")
    }

    /// The image file of entry `index`, refusing names that leave the image folder.
    pub fn image_path(&self, index: usize) -> Result<PathBuf> {
        let image = self.image(index);
        if let Some(why) = check_relative_file_name(&image.file_name) {
            return Err(DataError::invalid(
                &self.annotations_path,
                format!("image {}: {why}", image.id),
            ));
        }
        Ok(self.images_dir.join(&image.file_name))
    }

    /// Entry `index` with every annotation checked (known category, box inside the image);
    /// the first bad annotation is the error.
    pub fn detection_record(&self, index: usize) -> Result<DetectionRecord> {
        let (record, mut problems) = self.detection_record_with_problems(index)?;
        match problems.is_empty() {
            true => Ok(record),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// Entry `index` with its good annotations, and a problem for each bad one. The error is
    /// for an image record that is unusable as a whole.
    pub fn detection_record_with_problems(
        &self,
        index: usize,
    ) -> Result<(DetectionRecord, Vec<DataError>)> {
        let image = self.image(index);
        let invalid = |message: String| DataError::invalid(&self.annotations_path, message);
        self.check_annotated_size(image)?;
        let image_path = self.image_path(index)?;
        let mut objects = Vec::new();
        let mut problems = Vec::new();
        for ann_id in self.coco.get_ann_ids_for_img(image.id) {
            if let Some(ann) = self.coco.get_ann(*ann_id) {
                match self.ground_truth(ann, image) {
                    Ok(gt) => objects.push(gt),
                    Err(message) => problems.push(invalid(message)),
                }
            }
        }
        let record = DetectionRecord {
            id: image.file_name.clone(),
            image_path,
            width: image.width,
            height: image.height,
            objects,
        };
        Ok((record, problems))
    }

    fn ground_truth(
        &self,
        ann: &hotcoco::Annotation,
        image: &hotcoco::Image,
    ) -> std::result::Result<GroundTruthBox, String> {
        let (w, h) = (image.width as f64, image.height as f64);
        let context = format!("annotation {} (image {})", ann.id, image.id);
        let class = *self
            .class_of_category
            .get(&ann.category_id)
            .ok_or_else(|| format!("{context}: unknown category id {}", ann.category_id))?;
        let [x, y, bw, bh] = ann.bbox.ok_or_else(|| format!("{context}: no bbox"))?;
        if !(bw > 0.0 && bh > 0.0) {
            return Err(format!(
                "{context}: empty box [{x}, {y}, {bw}, {bh}] (width and height must be positive)"
            ));
        }
        if x < -BOX_TOLERANCE
            || y < -BOX_TOLERANCE
            || x + bw > w + BOX_TOLERANCE
            || y + bh > h + BOX_TOLERANCE
        {
            return Err(format!(
                "{context}: box [{x}, {y}, {bw}, {bh}] lies outside the {}x{} image",
                image.width, image.height
            ));
        }
        Ok(GroundTruthBox {
            bbox: [
                x.max(0.0) as f32,
                y.max(0.0) as f32,
                (x + bw).min(w) as f32,
                (y + bh).min(h) as f32,
            ],
            class,
            difficult: false,
            truncated: false,
            crowd: ann.iscrowd,
        })
    }

    /// The image's width and height must be given, and within the pixel limit: masks are
    /// allocated at this size.
    fn check_annotated_size(&self, image: &hotcoco::Image) -> Result<()> {
        let invalid = |message: String| DataError::invalid(&self.annotations_path, message);
        if image.width == 0 || image.height == 0 {
            return Err(invalid(format!(
                "image {}: missing width or height",
                image.id
            )));
        }
        let limit = max_image_pixels()?;
        let pixels = image.width as u64 * image.height as u64;
        if pixels > limit {
            return Err(invalid(format!(
                "image {}: its size {}x{} = {pixels} pixels is more than the limit of {limit} (set {MAX_IMAGE_PIXELS_VAR} to change it)",
                image.id, image.width, image.height
            )));
        }
        Ok(())
    }

    /// The whole file's ground truth checked as training and `--ckpt` evaluation read it:
    /// every image's annotations (known category, a box of positive size on the image) and
    /// no annotation of an image the file does not define. The first problem is the error.
    /// Scoring a results file needs this up front: hotcoco would score a box of negative
    /// width, or drop an annotation of an unknown category or image, without a word.
    pub fn check_ground_truth(&self) -> Result<()> {
        use rayon::prelude::*;
        if let Some(orphan) = self.orphan_annotation_problems().into_iter().next() {
            return Err(orphan);
        }
        match (0..self.len())
            .into_par_iter()
            .find_map_first(|i| self.detection_record(i).err())
        {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// The number of annotations that are not crowd regions: what COCO's AP measures
    /// against (pycocotools ignores crowd regions).
    pub fn non_crowd_annotations(&self) -> usize {
        self.coco
            .dataset
            .annotations
            .iter()
            .filter(|a| !a.iscrowd)
            .count()
    }

    /// The annotation file as hotcoco read it (for its evaluator).
    pub fn into_coco(self) -> COCO {
        self.coco
    }

    /// Annotations whose image id is not in the file (nothing reads them otherwise).
    pub fn orphan_annotation_problems(&self) -> Vec<DataError> {
        self.coco
            .dataset
            .annotations
            .iter()
            .filter(|a| self.coco.get_img(a.image_id).is_none())
            .map(|a| {
                DataError::invalid(
                    &self.annotations_path,
                    format!(
                        "annotation {} refers to image id {}, which the file does not define",
                        a.id, a.image_id
                    ),
                )
            })
            .collect()
    }

    /// The masks of entry `index`'s annotations (polygons or RLE), row-major.
    pub fn instance_masks(&self, index: usize) -> Result<Vec<InstanceMask>> {
        let mut masks = Vec::new();
        self.for_each_instance_mask(index, |mask| masks.push(mask))?;
        Ok(masks)
    }

    /// Decodes every mask of entry `index` and keeps none (`check`: an image may have
    /// thousands of annotations, and all their masks at once could be gigabytes).
    pub fn check_instance_masks(&self, index: usize) -> Result<()> {
        self.for_each_instance_mask(index, drop)
    }

    fn for_each_instance_mask(
        &self,
        index: usize,
        mut each: impl FnMut(InstanceMask),
    ) -> Result<()> {
        let image = self.image(index);
        self.check_annotated_size(image)?;
        let (w, h) = (image.width as usize, image.height as usize);
        for ann_id in self.coco.get_ann_ids_for_img(image.id) {
            let Some(ann) = self.coco.get_ann(*ann_id) else {
                continue;
            };
            let invalid = |message: String| {
                DataError::invalid(
                    &self.annotations_path,
                    format!("annotation {} (image {}): {message}", ann.id, image.id),
                )
            };
            let class = *self
                .class_of_category
                .get(&ann.category_id)
                .ok_or_else(|| invalid(format!("unknown category id {}", ann.category_id)))?;
            if let Some(problem) = ann
                .segmentation
                .as_ref()
                .and_then(|seg| segmentation_problem(seg, image.height, image.width))
            {
                return Err(invalid(problem));
            }
            let column_major = self.coco.ann_to_mask(ann).ok_or_else(|| {
                invalid("its segmentation does not decode at the image's size".into())
            })?;
            if column_major.len() != w * h {
                return Err(invalid("its mask size differs from the image's".into()));
            }
            // COCO masks are column-major (Fortran order); ours are row-major.
            let mut pixels = vec![0u8; w * h];
            for x in 0..w {
                for y in 0..h {
                    pixels[y * w + x] = column_major[x * h + y];
                }
            }
            each(InstanceMask {
                class,
                crowd: ann.iscrowd,
                width: w,
                height: h,
                pixels,
            });
        }
        Ok(())
    }
}

/// Sorts and de-duplicates `ids`, returning a problem for each id that was there more than
/// once.
fn defined_more_than_once(what: &str, ids: &mut Vec<u64>, path: &Path) -> Vec<DataError> {
    ids.sort_unstable();
    let mut problems = Vec::new();
    for run in ids.chunk_by(|a, b| a == b).filter(|run| run.len() > 1) {
        let times = match run.len() {
            2 => "twice".to_string(),
            n => format!("{n} times"),
        };
        problems.push(DataError::invalid(
            path,
            format!("{what} id {} is defined {times}", run[0]),
        ));
    }
    ids.dedup();
    problems
}

/// What is wrong with a segmentation on an `h x w` image, if anything. pycocotools decodes
/// an RLE whose runs fall short of the image without complaint (the rest stays empty), so
/// the sum is checked here.
fn segmentation_problem(seg: &hotcoco::Segmentation, h: u32, w: u32) -> Option<String> {
    let size_problem = |size: [u32; 2]| {
        (size != [h, w]).then(|| {
            format!(
                "its RLE size {:?} is not the image's [{h}, {w}] (height, width)",
                size
            )
        })
    };
    let check_runs = |size: [u32; 2], total: u64| {
        let pixels = h as u64 * w as u64;
        size_problem(size).or_else(|| {
            (total != pixels)
                .then(|| format!("its RLE runs cover {total} pixels, the image has {pixels}"))
        })
    };
    match seg {
        hotcoco::Segmentation::UncompressedRle { size, counts } => {
            check_runs(*size, counts.iter().map(|&c| c as u64).sum())
        }
        hotcoco::Segmentation::CompressedRle { size, counts } => {
            // The size first: nothing is decoded at a size the image does not have.
            size_problem(*size).or_else(|| {
                match hotcoco::mask::rle_from_string(counts, size[0], size[1]) {
                    Ok(rle) => check_runs(*size, rle.counts.iter().map(|&c| c as u64).sum()),
                    Err(e) => Some(format!("its compressed RLE does not decode ({e})")),
                }
            })
        }
        hotcoco::Segmentation::Polygon(polygons) => polygons_problem(polygons, h, w),
        _ => None,
    }
}

/// Polygons need three points each, and every point must lie on the image (give or take
/// [`BOX_TOLERANCE`], as boxes): rasterising walks every edge, so a point a billion pixels
/// away would cost a billion steps.
fn polygons_problem(polygons: &[Vec<f64>], h: u32, w: u32) -> Option<String> {
    if polygons.iter().any(|p| p.len() < 6 || p.len() % 2 != 0) {
        return Some("a polygon has fewer than 3 points or an odd number of coordinates".into());
    }
    let on_image = |v: f64, side: u32| (-BOX_TOLERANCE..=side as f64 + BOX_TOLERANCE).contains(&v);
    polygons
        .iter()
        .flat_map(|p| p.chunks_exact(2))
        .find(|xy| !(on_image(xy[0], w) && on_image(xy[1], h)))
        .map(|xy| {
            format!(
                "polygon point ({}, {}) lies outside the {w}x{h} image",
                xy[0], xy[1]
            )
        })
}
