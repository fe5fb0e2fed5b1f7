//! Image classification: the training recipe, the loop, evaluation and the step benchmark.

pub mod config;
pub mod evaluate;
pub mod step_bench;
pub mod subset;
pub mod trainer;

pub use config::TrainConfig;
pub use evaluate::{evaluate, EvalMetrics};
pub use trainer::{train, TrainInputError, TrainOptions, TrainSummary};
