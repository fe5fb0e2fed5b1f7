//! Image classification: the recipe, the task the engine trains, evaluation and the step
//! benchmark.

pub mod config;
pub mod evaluate;
pub mod step_bench;
pub mod subset;
pub mod task;
pub mod train;

pub use config::TrainConfig;
pub use engine::fit::{Summary, TrainInputError};
pub use evaluate::{evaluate, EvalMetrics};
pub use task::Classification;
pub use train::{check, train};
