use std::collections::HashMap;
use std::path::PathBuf;

use tch::{Kind, Tensor};

/// The tensors of `tests/golden/<name>.safetensors`.
pub fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.safetensors"));
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .into_iter()
        .collect()
}

pub trait Get {
    fn t(&self, key: &str) -> &Tensor;
}

impl Get for HashMap<String, Tensor> {
    fn t(&self, key: &str) -> &Tensor {
        self.get(key)
            .unwrap_or_else(|| panic!("fixture has no tensor {key}"))
    }
}

/// Asserts equal shapes and `|a - e| <= atol + rtol * |e|` everywhere (NaN matching NaN).
pub fn assert_close(actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64, what: &str) {
    assert_eq!(actual.size(), expected.size(), "{what}: shape");
    let a = actual.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let e = expected.to_kind(Kind::Double);
    let both_nan = a.isnan().logical_and(&e.isnan());
    let diff = (&a - &e).abs();
    let bound = e.abs() * rtol + atol;
    let bad = diff
        .gt_tensor(&bound)
        .logical_and(&both_nan.logical_not())
        .logical_or(&a.isnan().logical_xor(&e.isnan()));
    let count = bad.sum(Kind::Int64).int64_value(&[]);
    if count > 0 {
        let worst = diff.nan_to_num(0.0, None, None).max().double_value(&[]);
        panic!(
            "{what}: {count} of {} elements differ (worst absolute difference {worst:e})",
            e.numel()
        );
    }
}

/// Asserts equal integer tensors.
pub fn assert_same_ints(actual: &Tensor, expected: &Tensor, what: &str) {
    let a = Vec::<i64>::try_from(
        &actual
            .to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .view([-1]),
    )
    .unwrap();
    let e = Vec::<i64>::try_from(&expected.to_kind(Kind::Int64).view([-1])).unwrap();
    assert_eq!(a, e, "{what}");
}
