//! Model weights from a formula of each tensor's name and element index, computed exactly as
//! tests/fixtures/pytorch/make_golden.py computes them, so PyTorch's golden outputs can be
//! checked without committing 100 MB of weights.

use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

fn fnv1a32(name: &str) -> u64 {
    let mut h: u32 = 0x811C_9DC5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h as u64
}

/// Element `i` of tensor `name` in [0, 1).
fn unit(name: &str, i: u64) -> f64 {
    let v = (i.wrapping_mul(2_654_435_761).wrapping_add(fnv1a32(name))) & 0xFFFF_FFFF;
    v as f64 / 4_294_967_296.0
}

/// The values of a float tensor (see `fill` in make_golden.py for the roles).
pub fn values(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let scale: Box<dyn Fn(f64) -> f64> = if shape.len() == 4 {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
        // FCN's last convs are spread 8x wider so that the classes differ more.
        let spread = if name.ends_with("classifier.4.weight") {
            8.0
        } else {
            1.0
        };
        Box::new(move |u| (u - 0.5) * 2.0 * (6.0 / fan_in).sqrt() * spread)
    } else if name == "fc.weight" || name == "classifier.weight" || name == "AuxLogits.fc.weight" {
        // A classifier's linear head (MobileNet's is `classifier`; Inception-V3's auxiliary
        // classifier has its own).
        let fan_in = shape[1] as f64;
        Box::new(move |u| (u - 0.5) * 2.0 * (3.0 / fan_in).sqrt() * 4.0)
    } else if name.ends_with("running_var") {
        Box::new(|u| 0.5 + u)
    } else if name.ends_with("running_mean") || name.ends_with("bias") {
        Box::new(|u| (u - 0.5) * 0.2)
    } else if name.ends_with(".bn.weight") {
        // Inception's BasicConv2d BN: a gain that carries the image through ~47 layers without
        // shortcuts (at 0.25-0.75 its logits would not depend on the input).
        Box::new(|u| 1.1 + 0.5 * u)
    } else if name.ends_with("weight") {
        Box::new(|u| 0.25 + 0.5 * u)
    } else {
        panic!("no rule for {name}")
    };
    (0..n as u64).map(|i| scale(unit(name, i)) as f32).collect()
}

/// A state dict as `safetensors.torch.save_file(model.state_dict())` writes it, from a key list
/// `[[name, shape, dtype], ...]` (the `*_keys.json` fixtures).
pub fn write_state_dict(keys: &serde_json::Value, path: &Path) {
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for entry in keys.as_array().expect("a list of keys") {
        let name = entry[0].as_str().unwrap().to_string();
        let shape: Vec<usize> = entry[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        match entry[2].as_str().unwrap() {
            "float32" => {
                let bytes = values(&name, &shape)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                data.push((name, Dtype::F32, shape, bytes));
            }
            "int64" => data.push((name, Dtype::I64, shape, 0i64.to_le_bytes().to_vec())),
            other => panic!("unexpected dtype {other}"),
        }
    }
    let views = data
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize_to_file(views, &None, path).expect("write state dict");
}
