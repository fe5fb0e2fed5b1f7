//! The units the training loop calls: parameter groups, the optimiser, learning-rate
//! schedules, losses, batch mixing, loss scaling, weight averaging and the curves plot.
//! Each is small and tested on its own against hand-computed values.

pub mod amp;
pub mod chart;
pub mod config_file;
pub mod curves;
pub mod ema;
pub mod loss;
pub mod mix;
pub mod optim;
pub mod param_groups;
pub mod run_dir;
pub mod schedule;
