//! The training engine: one loop ([`fit`]) that runs every task ([`task::Task`]:
//! classification, detection, segmentation), and the units it calls (parameter groups, the
//! optimiser, learning-rate schedules, losses, batch mixing, loss scaling, weight averaging,
//! the curves plot, config files, run folders). Each unit is small and tested on its own
//! against hand-computed or PyTorch values.

pub mod amp;
pub mod chart;
pub mod config;
pub mod config_file;
pub mod curves;
pub mod data_parallel;
pub mod ema;
pub mod fit;
pub mod fused_sgd;
pub mod loss;
pub mod mix;
pub mod nonfinite;
pub mod optim;
pub mod param_groups;
pub mod progress;
pub mod run_dir;
pub mod schedule;
pub mod task;
pub mod timing;
pub mod transfer;

pub use fit::{fit, RunOptions, Summary, TrainInputError};
pub use task::{Losses, Metrics, Step, Task};
