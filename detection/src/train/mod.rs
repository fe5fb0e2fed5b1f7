//! Fine-tuning Faster R-CNN on the engine: the recipe, the two stages' training targets and
//! losses, and the task the engine's loop runs.

pub mod config;
pub mod finetune;
pub mod step;
pub mod targets;
pub mod task;
