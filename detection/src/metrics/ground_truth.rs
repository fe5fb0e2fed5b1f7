//! A VOC evaluator filled with a dataset split's ground truth: every annotation read (in
//! parallel) and checked by `datasets`, images added in the split's order.

use super::voc::{GroundTruth, VocEvaluator};
use datasets::detection_data::DetectionSource;
use datasets::DataError;

/// Reads every record of `source`; the first bad annotation in split order is the error.
pub fn voc_evaluator(source: &DetectionSource) -> Result<VocEvaluator, DataError> {
    use rayon::prelude::*;
    let records: Vec<_> = (0..source.len())
        .into_par_iter()
        .map(|i| source.record(i))
        .collect();
    let mut evaluator = VocEvaluator::new(source.classes().to_vec());
    for record in records {
        let record = record?;
        let ground_truth: Vec<GroundTruth> = record
            .objects
            .iter()
            .map(GroundTruth::from_record)
            .collect();
        evaluator
            .add_image(&record.id, &ground_truth)
            .map_err(|e| DataError::invalid(&record.image_path, e.to_string()))?;
    }
    Ok(evaluator)
}

/// Whether the ground truth of `evaluator` gives anything to measure: some class with a
/// positive (non-difficult) box. Without one no AP exists, and a "map" of 0 would be
/// reported and compared as if the model had found nothing.
pub fn has_positives(evaluator: &VocEvaluator) -> bool {
    // Without detections, evaluating only counts each class's boxes.
    evaluator
        .evaluate(super::voc::VocMetric::Voc12, 0.5)
        .map
        .is_some()
}
