//! The weights of tests/golden/fasterrcnn_fpn.py, rebuilt from its formula under
//! torchvision's names, for the tests that compare with torchvision's Faster R-CNN.

use engine::checkpoint::NamedTensors;
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// `value(k, name, shape)` of fasterrcnn_fpn.py, in the same double-precision steps.
pub fn value(k: usize, name: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let j = Tensor::arange(n, (Kind::Int64, Device::Cpu));
    let bits = (j * 2_654_435_761i64 + (k as i64) * 40503 + 12345).remainder(1i64 << 32);
    let u = bits.to_kind(Kind::Double) / 4_294_967_296.0;
    let leaf = name.rsplit('.').next().unwrap();
    let mut v = if leaf == "running_var" {
        u + 0.5
    } else if leaf == "running_mean" || leaf == "bias" {
        (u - 0.5) * 0.2
    } else if shape.len() == 1 {
        u * 0.4 + 0.8
    } else {
        let fan_in = (n / shape[0]) as f64;
        (u - 0.5) * 2.0 * 6f64.sqrt() / fan_in.sqrt()
    };
    if name == "roi_heads.box_predictor.cls_score.weight" {
        v *= 30.0;
    }
    if name == "roi_heads.box_predictor.cls_score.bias" {
        let raise = Tensor::from_slice(&[0.0, 11.0, 0.0, 33.0, 0.0]);
        v += raise;
    }
    v.to_kind(Kind::Float).reshape(shape)
}

/// The names and shapes of torchvision's `fasterrcnn_resnet50_fpn(weights=None,
/// weights_backbone=None, num_classes=5).state_dict()`, batch-norm counters included.
pub fn torchvision_keys() -> Vec<(String, Vec<i64>)> {
    let text = std::fs::read_to_string(Path::new(GOLDEN).join("fasterrcnn_fpn_keys.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn torchvision_state_dict() -> NamedTensors {
    torchvision_keys()
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let t = if name.ends_with("num_batches_tracked") {
                Tensor::from(0i64)
            } else {
                value(k, name, shape)
            };
            (name.clone(), t)
        })
        .collect()
}
