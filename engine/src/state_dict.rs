//! What every `import` reads off a PyTorch state dict before building the model: how many
//! classes its head has, and the names to give them.

use crate::checkpoint::{CheckpointError, NamedTensors};
use crate::limits;
use std::ops::RangeInclusive;
use std::path::Path;

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
