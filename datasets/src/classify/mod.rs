//! Classification data: the transforms of the paper and torchvision's evaluation transform.

mod eval;

pub use eval::{EvalTransform, Normalization};
