//! torchvision's `MultiScaleRoIAlign`: each RoI pooled from one pyramid level chosen by its
//! size (FPN paper eq. 1), `level = floor(4 + log2(sqrt(area) / 224) + 1e-6)` clamped to the
//! levels present; a level's scale is inferred from its size as `2^round(log2(feature /
//! image))`.

use tch::{Device, Kind, Tensor};

use super::boxes::box_area;
use super::roi_align::roi_align;

#[derive(Debug, Clone, PartialEq)]
pub struct MultiScaleRoIAlign {
    pub output_size: (i64, i64),
    pub sampling_ratio: i64,
    pub canonical_scale: f64,
    pub canonical_level: f64,
}

impl MultiScaleRoIAlign {
    /// torchvision's defaults (224, level 4) for an output size and sampling ratio.
    pub fn new(output_size: (i64, i64), sampling_ratio: i64) -> Self {
        Self {
            output_size,
            sampling_ratio,
            canonical_scale: 224.0,
            canonical_level: 4.0,
        }
    }

    /// Pooled features `[R, C, ph, pw]` of the boxes of each image (`boxes[i]` `[Ri, 4]`, RoIs
    /// in image order) over the levels `features` (finest first, e.g. P2..P5), for a batch
    /// whose largest image, before padding, is `image_size` `(h, w)` (torchvision's
    /// `image_shapes`). aligned = false, as torchvision. One host copy of the levels.
    pub fn forward(&self, features: &[Tensor], boxes: &[Tensor], image_size: (i64, i64)) -> Tensor {
        let scales: Vec<f64> = features
            .iter()
            .map(|f| infer_scale(f, image_size))
            .collect();
        let all_boxes = Tensor::cat(boxes, 0);
        let image_of_roi: Vec<i64> = boxes
            .iter()
            .enumerate()
            .flat_map(|(i, b)| std::iter::repeat_n(i as i64, b.size()[0] as usize))
            .collect();
        let device = all_boxes.device();
        let ids = Tensor::from_slice(&image_of_roi)
            .to_device(device)
            .to_kind(all_boxes.kind());
        let rois = Tensor::cat(&[ids.unsqueeze(1), all_boxes.shallow_clone()], 1);
        if features.len() == 1 {
            return roi_align(
                &features[0],
                &rois,
                self.output_size,
                scales[0],
                self.sampling_ratio,
                false,
            );
        }
        let k_min = -scales[0].log2() as f32;
        let k_max = -scales[scales.len() - 1].log2() as f32;
        let levels = self.levels(&all_boxes, k_min as i64, k_max as i64);
        let levels = Vec::<i64>::try_from(&levels.to_device(Device::Cpu)).expect("levels are i64");

        let mut pieces = Vec::new();
        let mut order = Vec::new();
        for (level, (feature, &scale)) in features.iter().zip(&scales).enumerate() {
            let members: Vec<i64> = (0..levels.len() as i64)
                .filter(|&i| levels[i as usize] == level as i64)
                .collect();
            if members.is_empty() {
                continue;
            }
            let level_rois = rois.index_select(0, &Tensor::from_slice(&members).to_device(device));
            pieces.push(roi_align(
                feature,
                &level_rois,
                self.output_size,
                scale,
                self.sampling_ratio,
                false,
            ));
            order.extend(members);
        }
        if pieces.is_empty() {
            let c = features[0].size()[1];
            return Tensor::zeros(
                [0, c, self.output_size.0, self.output_size.1],
                (features[0].kind(), device),
            );
        }
        // Back from level order to RoI order.
        let mut inverse = vec![0i64; order.len()];
        for (position, &roi) in order.iter().enumerate() {
            inverse[roi as usize] = position as i64;
        }
        Tensor::cat(&pieces, 0).index_select(0, &Tensor::from_slice(&inverse).to_device(device))
    }

    /// Pyramid level index (0 = finest given) of each box `[N, 4]`, as torchvision's
    /// `LevelMapper` with levels `k_min..=k_max`.
    pub fn levels(&self, boxes: &Tensor, k_min: i64, k_max: i64) -> Tensor {
        let s = box_area(boxes).sqrt();
        let target = ((s / self.canonical_scale).log2() + self.canonical_level + 1e-6).floor();
        (target
            .clamp(k_min as f64, k_max as f64)
            .to_kind(Kind::Int64))
            - k_min
    }
}

/// torchvision's `_infer_scale`: `2^round(log2(feature height / image height))`.
fn infer_scale(feature: &Tensor, (image_h, _): (i64, i64)) -> f64 {
    let approx = feature.size()[2] as f64 / image_h as f64;
    // torchvision rounds log2 in single precision (torch.tensor of a Python float).
    2f64.powf((approx as f32).log2().round_ties_even() as f64)
}
