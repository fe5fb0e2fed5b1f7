//! What a detection or segmentation reader hands on, whatever the format on disk.
//!
//! Boxes are 0-based continuous pixel coordinates `[x1, y1, x2, y2]`: a box covering pixel
//! columns 0..=9 is `[0, 10]`. That is torchvision's and detectron2's convention, and COCO's
//! `[x, y, w, h]` with `x2 = x + w`. VOC's 1-based inclusive `xmin..=xmax` becomes
//! `[xmin - 1, xmax]` (detectron2 subtracts 1 from xmin and ymin only; GluonCV subtracts 1 from
//! all four, i.e. 0-based inclusive, one pixel narrower in this convention).

use std::path::PathBuf;

/// One annotated object.
#[derive(Clone, Debug, PartialEq)]
pub struct GroundTruthBox {
    /// `[x1, y1, x2, y2]`, 0-based continuous pixel coordinates in the original image.
    pub bbox: [f32; 4],
    /// Index into the dataset's class list (0-based; no background entry).
    pub class: usize,
    /// VOC's "difficult": left out of the positives when evaluating.
    pub difficult: bool,
    /// VOC's "truncated" (the object continues outside the image).
    pub truncated: bool,
    /// COCO's `iscrowd`: a region of many objects, to be ignored rather than matched.
    pub crowd: bool,
}

/// An image and its objects, as annotated (before any augmentation).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionRecord {
    /// The dataset's own name for the image (VOC id, COCO file name, ADE20K stem).
    pub id: String,
    pub image_path: PathBuf,
    /// The size the annotation gives (checked against the decoded image when loading).
    pub width: u32,
    pub height: u32,
    pub objects: Vec<GroundTruthBox>,
}

/// The label value for pixels that take no part in the loss or the metrics.
pub const IGNORE_LABEL: u8 = 255;

/// A segmentation target: one train id per pixel, row-major; `0..K` are classes (K at most
/// 255), [`IGNORE_LABEL`] is ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u8>,
}
