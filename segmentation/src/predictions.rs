//! `segment eval --predictions DIR`: scores a folder of ADE20K submission PNGs (one per
//! image, same stem, 8-bit, values 1..K) against the ground truth. The PNGs are untrusted:
//! they go through the datasets crate's bounded mask reader (size and pixel limits checked
//! before decoding), and every problem names its file.

use crate::metric::{ConfusionMatrix, Scores};
use datasets::ade20k::Ade20kDataset;
use datasets::label_png::read_mask;
use datasets::DataError;
use std::path::Path;
use tch::{Device, Tensor};

/// A prediction that does not fit its image: the user's input to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadPrediction(pub String);

/// Reads `dir/<stem>.png` for every image of `dataset` and scores them all.
pub fn evaluate_predictions(dataset: &Ade20kDataset, dir: &Path) -> anyhow::Result<Scores> {
    if !dir.is_dir() {
        return Err(BadPrediction(format!(
            "{}: no such folder of prediction PNGs",
            dir.display()
        ))
        .into());
    }
    let k = dataset.classes().len();
    let mut confusion = ConfusionMatrix::new(k as i64, Device::Cpu);
    for (index, entry) in dataset.entries().iter().enumerate() {
        let path = dir.join(format!("{}.png", entry.stem));
        // Only an absent path is "missing": a folder, FIFO or device link where the PNG should
        // be is left to the bounded reader, whose error names what it is instead.
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(BadPrediction(format!(
                "{}: missing: every image of the split needs a prediction PNG ({} has none)",
                path.display(),
                entry.image_path.display()
            ))
            .into());
        }
        let truth = dataset.read_label_map(index)?;
        let predicted = read_mask(&path).map_err(|e: DataError| BadPrediction(e.to_string()))?;
        if (predicted.width, predicted.height) != (truth.width, truth.height) {
            return Err(size_mismatch(&path, &predicted, &truth, entry)?.into());
        }
        if let Some(at) = predicted
            .values
            .iter()
            .position(|&v| v == 0 || v as usize > k)
        {
            return Err(BadPrediction(format!(
                "{}: value {} at pixel ({}, {}) is not a class (predictions hold 1..={k})",
                path.display(),
                predicted.values[at],
                at % predicted.width,
                at / predicted.width
            ))
            .into());
        }
        let prediction = Tensor::from_slice(&predicted.values).to_kind(tch::Kind::Int64) - 1;
        confusion.add(&prediction, &Tensor::from_slice(&truth.labels));
    }
    Ok(confusion.scores())
}

/// Which of the three disagrees when a prediction and its annotation differ in size: the
/// image's header decides, so the sentence names the file that is wrong (a prediction of the
/// image's size beside a smaller annotation is the annotation's fault, not the prediction's).
fn size_mismatch(
    prediction: &Path,
    predicted: &datasets::label_png::RawMask,
    truth: &datasets::records::LabelMap,
    entry: &datasets::ade20k::Ade20kEntry,
) -> Result<BadPrediction, DataError> {
    let image = datasets::image_io::EncodedImage::read(&entry.image_path)?.dimensions();
    let image = (image.0 as usize, image.1 as usize);
    if (truth.width, truth.height) != image {
        return Err(DataError::invalid(
            &entry.annotation_path,
            format!(
                "the annotation is {}x{} but its image {} is {}x{}",
                truth.width,
                truth.height,
                entry.image_path.display(),
                image.0,
                image.1
            ),
        ));
    }
    Ok(BadPrediction(format!(
        "{}: the prediction is {}x{} but the image is {}x{}",
        prediction.display(),
        predicted.width,
        predicted.height,
        image.0,
        image.1
    )))
}
