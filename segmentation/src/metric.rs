//! Pixel accuracy and mean IoU as the ADE20K benchmark and GluonCV's `SegmentationMetric`
//! compute them: only pixels with a ground-truth label count; per class, intersection and
//! union are summed over the whole split before dividing.
//!
//! The counts live in a K x K confusion matrix on the device (`truth * K + prediction` of each
//! labelled pixel added into its cell with `index_add`; unlabelled pixels go to one extra
//! cell that is never read). Neither `masked_select` nor `bincount` is used: both need the
//! host to learn a size, a sync per batch on CUDA. The host reads the matrix once, at the
//! end of the split.
//!
//! Classes absent from both the ground truth and the predictions of the whole split have no
//! union. `mIoU` leaves them out of the mean (the benchmark's and most tools' choice);
//! `mIoU_all` counts them as 0 over all K classes, as GluonCV's `SegmentationMetric` does.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// Train ids at or above this (255) are unlabelled.
pub const IGNORE: i64 = datasets::records::IGNORE_LABEL as i64;

/// A K x K confusion matrix on the device: row = ground truth, column = prediction.
pub struct ConfusionMatrix {
    num_classes: i64,
    counts: Tensor,
}

impl ConfusionMatrix {
    pub fn new(num_classes: i64, device: Device) -> Self {
        ConfusionMatrix {
            num_classes,
            // K x K cells plus the unlabelled pixels' cell.
            counts: Tensor::zeros([num_classes * num_classes + 1], (Kind::Int64, device)),
        }
    }

    /// Adds a batch: `prediction` and `truth` are integer tensors of one shape on the matrix's
    /// device; truth values outside 0..K (the ignore label) are left out.
    pub fn add(&mut self, prediction: &Tensor, truth: &Tensor) {
        let k = self.num_classes;
        let truth = truth.to_kind(Kind::Int64).flatten(0, -1);
        let prediction = prediction.to_kind(Kind::Int64).flatten(0, -1);
        let labelled = truth.ge(0).logical_and(&truth.lt(k));
        let cell = (truth * k + prediction).where_scalarother(&labelled, k * k);
        let ones = Tensor::ones_like(&cell);
        let _ = self.counts.index_add_(0, &cell, &ones);
    }

    /// Copies the matrix to the host (the one sync of an evaluation).
    pub fn counts(&self) -> Vec<i64> {
        let k = self.num_classes;
        Vec::<i64>::try_from(&self.counts.narrow(0, 0, k * k).to_device(Device::Cpu))
            .expect("int64 counts")
    }

    pub fn scores(&self) -> Scores {
        Scores::from_confusion(&self.counts(), self.num_classes as usize)
    }
}

/// An evaluation whose ground truth has no labelled pixel: its pixAcc and mIoU would be 0
/// for any model, so it is refused (the user's data to fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoLabelledPixels(pub String);

/// The numbers an evaluation reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Correct labelled pixels / labelled pixels.
    #[serde(rename = "pixAcc")]
    pub pix_acc: f64,
    /// Mean IoU over the classes present in the ground truth or the predictions.
    #[serde(rename = "mIoU")]
    pub miou: f64,
    /// GluonCV's: mean over all K classes, absent ones counting 0.
    #[serde(rename = "mIoU_all")]
    pub miou_all: f64,
    /// Per class; `None` for a class absent from both.
    pub iou: Vec<Option<f64>>,
    pub labelled_pixels: i64,
}

impl Scores {
    /// `counts` is the row-major K x K confusion matrix (row = truth).
    pub fn from_confusion(counts: &[i64], k: usize) -> Self {
        assert_eq!(counts.len(), k * k, "a K x K matrix");
        let labelled: i64 = counts.iter().sum();
        let correct: i64 = (0..k).map(|c| counts[c * k + c]).sum();
        let iou: Vec<Option<f64>> = (0..k)
            .map(|c| {
                let truth: i64 = counts[c * k..(c + 1) * k].iter().sum();
                let predicted: i64 = (0..k).map(|r| counts[r * k + c]).sum();
                let intersection = counts[c * k + c];
                let union = truth + predicted - intersection;
                (union > 0).then(|| intersection as f64 / union as f64)
            })
            .collect();
        let present: Vec<f64> = iou.iter().flatten().copied().collect();
        // Folded from +0.0: Rust's float `sum` of nothing is -0.0, printed "-0.0".
        let mean = |v: &[f64], n: usize| {
            if n == 0 {
                0.0
            } else {
                v.iter().fold(0.0, |a, b| a + b) / n as f64
            }
        };
        Scores {
            pix_acc: if labelled == 0 {
                0.0
            } else {
                correct as f64 / labelled as f64
            },
            miou: mean(&present, present.len()),
            miou_all: mean(&present, k),
            iou,
            labelled_pixels: labelled,
        }
    }

    /// These scores, or an error naming `what` was evaluated (the data and split) when its
    /// ground truth has no labelled pixel.
    pub fn require_labelled(self, what: &str) -> Result<Self, NoLabelledPixels> {
        if self.labelled_pixels > 0 {
            return Ok(self);
        }
        Err(NoLabelledPixels(format!(
            "{what}: no labelled pixel in the ground truth (every mask is unlabelled, or there \
             is no image), so pixAcc and mIoU mean nothing"
        )))
    }

    /// `{"pixAcc", "mIoU", "mIoU_all", "iou": {"<class>": iou or null}}`.
    pub fn to_json(&self, classes: &[String]) -> serde_json::Value {
        let iou: serde_json::Map<String, serde_json::Value> = classes
            .iter()
            .zip(&self.iou)
            .map(|(name, v)| (name.clone(), serde_json::json!(v)))
            .collect();
        serde_json::json!({
            "pixAcc": self.pix_acc,
            "mIoU": self.miou,
            "mIoU_all": self.miou_all,
            "iou": iou,
            "labelled_pixels": self.labelled_pixels,
        })
    }

    /// A table for the terminal: one class per line, then the summary.
    pub fn table(&self, classes: &[String]) -> String {
        let width = classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<width$}  IoU\n", "class");
        for (name, v) in classes.iter().zip(&self.iou) {
            match v {
                Some(v) => out.push_str(&format!("{name:<width$}  {:.4}\n", v)),
                None => out.push_str(&format!(
                    "{name:<width$}  -  (absent from truth and prediction)\n"
                )),
            }
        }
        out.push_str(&format!(
            "pixAcc {:.4}  mIoU {:.4} (over {} present classes)  mIoU_all {:.4} (absent = 0, GluonCV)\n",
            self.pix_acc,
            self.miou,
            self.iou.iter().flatten().count(),
            self.miou_all
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[i64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn hand_worked_scores_with_ignored_pixels_and_an_absent_class() {
        // Four classes; class 3 appears in neither truth nor prediction.
        // truth:      0 0 1 1 | 2 255 255 0
        // prediction: 0 1 1 1 | 2 0   3?  2   (the 255 pixels are ignored whatever is predicted)
        let truth = t(&[0, 0, 1, 1, 2, 255, 255, 0], &[2, 4]);
        let prediction = t(&[0, 1, 1, 1, 2, 0, 3, 2], &[2, 4]);
        let mut m = ConfusionMatrix::new(4, Device::Cpu);
        m.add(&prediction, &truth);
        let s = m.scores();
        // 6 labelled pixels, 4 correct (0, 1, 1, 2).
        assert_eq!(s.labelled_pixels, 6);
        assert!((s.pix_acc - 4.0 / 6.0).abs() < 1e-12);
        // class 0: truth {0,1,7}, predicted {0} -> I 1, U 3.
        // class 1: truth {2,3}, predicted {1,2,3} -> I 2, U 3.
        // class 2: truth {4}, predicted {4,7} -> I 1, U 2.
        // class 3: predicted only at an ignored pixel -> absent.
        assert_eq!(
            s.iou,
            vec![Some(1.0 / 3.0), Some(2.0 / 3.0), Some(0.5), None]
        );
        assert!((s.miou - (1.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((s.miou_all - (1.0 / 3.0 + 2.0 / 3.0 + 0.5) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn counts_add_up_over_batches_like_one_pass() {
        let truth = t(&[0, 1, 2, 1, 0, 2], &[6]);
        let prediction = t(&[0, 2, 2, 1, 1, 2], &[6]);
        let mut whole = ConfusionMatrix::new(3, Device::Cpu);
        whole.add(&prediction, &truth);
        let mut split = ConfusionMatrix::new(3, Device::Cpu);
        split.add(&prediction.narrow(0, 0, 2), &truth.narrow(0, 0, 2));
        split.add(&prediction.narrow(0, 2, 4), &truth.narrow(0, 2, 4));
        assert_eq!(whole.counts(), split.counts());
        // Intersection and union are summed over the split before dividing: class 1 has
        // I = 1 (pixel 3) and U = 3 (truth 1, 3; predicted 3, 4).
        assert_eq!(whole.scores().iou[1], Some(1.0 / 3.0));
    }

    #[test]
    fn a_split_without_labels_scores_zero_not_nan() {
        let mut m = ConfusionMatrix::new(2, Device::Cpu);
        m.add(&t(&[0, 1], &[2]), &t(&[255, 255], &[2]));
        let s = m.scores();
        assert_eq!((s.pix_acc, s.miou, s.labelled_pixels), (0.0, 0.0, 0));
        assert_eq!(s.iou, vec![None, None]);
        // Never "-0.0" in a table or JSON.
        assert!(s.miou_all.is_sign_positive() && s.miou.is_sign_positive());
        assert_eq!(
            s.to_json(&["a".into(), "b".into()])["mIoU_all"].to_string(),
            "0.0"
        );
        // Such a split is refused, naming it.
        let err = s
            .require_labelled("ade20k:/data, split \"validation\"")
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("ade20k:/data, split \"validation\": no labelled pixel"));
    }

    #[test]
    fn json_names_classes_and_marks_absent_ones_null() {
        // Three sky pixels, one of them predicted as grass; no tree anywhere.
        let s = Scores::from_confusion(&[2, 0, 1, 0, 0, 0, 0, 0, 0], 3);
        let classes = ["sky".to_string(), "tree".into(), "grass".into()];
        let j = s.to_json(&classes);
        assert_eq!(j["iou"]["sky"], serde_json::json!(2.0 / 3.0));
        assert_eq!(j["iou"]["tree"], serde_json::Value::Null);
        assert_eq!(j["iou"]["grass"], serde_json::json!(0.0));
        assert_eq!(j["mIoU"], serde_json::json!(1.0 / 3.0));
        assert!(s.table(&classes).contains("absent"));
    }
}
