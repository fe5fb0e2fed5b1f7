//! What every `import` reads off a PyTorch state dict before building the model (how many
//! classes its head has, and the names to give them), and what an import drops and an export
//! puts back: PyTorch's batch-norm counters and the class names in the file's metadata.

use crate::checkpoint::{CheckpointError, NamedTensors};
use crate::limits;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use tch::Tensor;

/// The buffer PyTorch's `BatchNorm2d` counts its training steps in. Our batch norms keep no
/// counter (nothing here reads it), so an import drops it and an export writes a zero, which
/// `load_state_dict(strict=True)` needs and evaluation never reads.
pub const BN_COUNTER: &str = "num_batches_tracked";

/// Removes every batch-norm counter of a PyTorch state dict.
pub fn drop_bn_counters(tensors: &mut NamedTensors) {
    tensors.retain(|name, _| !name.ends_with(BN_COUNTER));
}

/// Adds a zero counter (int64, as PyTorch keeps it) beside every batch norm's `running_var`.
pub fn add_bn_counters(tensors: &mut NamedTensors) {
    let counters: Vec<String> = tensors
        .keys()
        .filter_map(|k| {
            k.strip_suffix("running_var")
                .map(|prefix| format!("{prefix}{BN_COUNTER}"))
        })
        .collect();
    for name in counters {
        tensors.insert(name, Tensor::from(0i64));
    }
}

/// The `__metadata__` key under which an export writes the class names (a JSON list in the
/// order of the model's output rows) and an import reads them back.
pub const CLASSES_KEY: &str = "classes";

/// The class names an export wrote into `header`, less the first `skip` (a background row),
/// `num_classes` of them; `None` when the file has none (a state dict saved by PyTorch).
pub fn header_class_names(
    header: &HashMap<String, String>,
    skip: usize,
    num_classes: i64,
    input: &Path,
) -> Result<Option<Vec<String>>, CheckpointError> {
    let Some(text) = header.get(CLASSES_KEY) else {
        return Ok(None);
    };
    let bad = |why: String| {
        CheckpointError::content(input, format!("its metadata's {CLASSES_KEY} {why}"))
    };
    let names: Vec<String> = serde_json::from_str(text)
        .map_err(|e| bad(format!("is not a JSON list of names ({e})")))?;
    if names.len() != skip + num_classes as usize {
        return Err(bad(format!(
            "lists {} names but the model has {} output rows",
            names.len(),
            skip + num_classes as usize
        )));
    }
    let names = names[skip..].to_vec();
    if let Some(name) = datasets::class_list::first_duplicate(&names) {
        return Err(bad(format!("names \"{name}\" twice")));
    }
    Ok(Some(names))
}

/// A model's class head in a state dict: the tensor, the shape it must have and what the
/// file is not when the tensor is missing.
pub struct Head<'a> {
    /// The head's weight, e.g. `fc.weight`.
    pub tensor: &'a str,
    /// The weight's rows when the shape is a head's, e.g. `[rows, _]` of a linear layer.
    pub rows: fn(&[i64]) -> Option<i64>,
    /// The shape, as a message says it: "a classifier head is [classes, features]".
    pub layout: &'a str,
    /// What the file is not without the tensor: "a ResNet classifier state dict".
    pub model: &'a str,
}

/// A linear layer's rows.
pub fn linear_rows(shape: &[i64]) -> Option<i64> {
    match shape {
        &[rows, _] => Some(rows),
        _ => None,
    }
}

/// A 1x1 convolution's output channels.
pub fn conv1x1_rows(shape: &[i64]) -> Option<i64> {
    match shape {
        &[rows, _, 1, 1] => Some(rows),
        _ => None,
    }
}

impl Head<'_> {
    /// The head's rows in `tensors` (read from `input`, named in errors), within `range`
    /// once `offset` (a background row, say) is taken off; `noun` names what they count
    /// ("classes").
    pub fn classes(
        &self,
        tensors: &NamedTensors,
        input: &Path,
        offset: i64,
        noun: &str,
        range: &RangeInclusive<i64>,
    ) -> Result<i64, CheckpointError> {
        let name = self.tensor;
        let shape = tensors.get(name).map(|t| t.size()).ok_or_else(|| {
            CheckpointError::content(input, format!("has no {name}: not {}", self.model))
        })?;
        let rows = (self.rows)(&shape).ok_or_else(|| {
            CheckpointError::content(
                input,
                format!("{name} has shape {shape:?}; {}", self.layout),
            )
        })?;
        let classes = rows - offset;
        limits::check(&format!("the number of {noun}"), classes, range)
            .map_err(|e| CheckpointError::content(input, format!("{name}: {e}")))?;
        Ok(classes)
    }
}

/// The class names given with `--classes`, which must be as many as the head's
/// `num_classes` (`noun` names them in the error); `None` when none were given.
pub fn given_class_names(
    given: Option<Vec<String>>,
    num_classes: i64,
    noun: &str,
    input: &Path,
) -> Result<Option<Vec<String>>, CheckpointError> {
    match given {
        Some(c) if c.len() as i64 != num_classes => Err(CheckpointError::content(
            input,
            format!(
                "has {num_classes} {noun} but {} class names were given",
                c.len()
            ),
        )),
        given => Ok(given),
    }
}

/// Names for classes that have none: `class_0`, `class_1`, ...
pub fn numbered_classes(num_classes: i64) -> Vec<String> {
    (0..num_classes).map(|i| format!("class_{i}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn counters_go_beside_each_running_var_and_come_off_again() {
        let zeros = || Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let mut tensors = NamedTensors::from([
            ("bn1.running_var".to_string(), zeros()),
            ("bn1.weight".to_string(), zeros()),
            ("fc.bias".to_string(), zeros()),
        ]);
        add_bn_counters(&mut tensors);
        let counter = &tensors["bn1.num_batches_tracked"];
        assert_eq!((counter.kind(), counter.size()), (Kind::Int64, vec![]));
        assert_eq!(tensors.len(), 4);
        drop_bn_counters(&mut tensors);
        assert_eq!(tensors.len(), 3);
    }

    #[test]
    fn class_names_come_back_from_the_metadata_or_are_refused() {
        let input = Path::new("m.safetensors");
        let header = |names: &str| HashMap::from([(CLASSES_KEY.to_string(), names.to_string())]);
        assert_eq!(
            header_class_names(&HashMap::new(), 1, 2, input).unwrap(),
            None
        );
        assert_eq!(
            header_class_names(&header(r#"["__background__","a","b"]"#), 1, 2, input).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        for (names, why) in [
            (
                r#"["a","b"]"#,
                "lists 2 names but the model has 3 output rows",
            ),
            (r#"["x","a","a"]"#, "names \"a\" twice"),
            ("a,b", "is not a JSON list of names"),
        ] {
            let err = header_class_names(&header(names), 1, 2, input)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("m.safetensors: its metadata's classes {why}")),
                "{err}"
            );
        }
    }
}
