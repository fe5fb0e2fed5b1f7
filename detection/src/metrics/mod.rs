//! Detection evaluation: VOC AP by the devkit's rules (`voc`, `ap`), official comp4 result
//! files (`comp4`), COCO mAP through hotcoco and COCO results JSON (`coco`), and the report
//! a command prints (`report`).

pub mod ap;
pub mod coco;
pub mod comp4;
pub mod ground_truth;
pub mod report;
pub mod voc;

/// One image's detections as a model gives them: 0-based continuous `[x1, y1, x2, y2]`
/// boxes in original-image pixels, scores, and class indices (0-based, no background).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageDetections {
    pub boxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub classes: Vec<usize>,
}

impl ImageDetections {
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Whether the three lists agree in length, every class is below `num_classes`, and
    /// every box and score is finite.
    pub fn check(&self, num_classes: usize) -> Result<(), String> {
        if self.scores.len() != self.boxes.len() || self.classes.len() != self.boxes.len() {
            return Err(format!(
                "{} boxes, {} scores and {} classes: one of each per detection was expected",
                self.boxes.len(),
                self.scores.len(),
                self.classes.len()
            ));
        }
        if let Some(c) = self.classes.iter().find(|&&c| c >= num_classes) {
            return Err(format!(
                "class index {c} is out of range ({num_classes} classes)"
            ));
        }
        let finite = |b: &[f32; 4]| b.iter().all(|v| v.is_finite());
        match self.boxes.iter().all(finite) && self.scores.iter().all(|s| s.is_finite()) {
            true => Ok(()),
            false => Err("a box or score is not finite".into()),
        }
    }
}
