//! The training engine, knowing no task: one loop ([`fit`]) that runs every task
//! ([`task::Task`]: classification, detection and segmentation implement it in their own
//! crates), and the units it calls (parameter groups, the optimiser with ATen's fused SGD step,
//! learning-rate schedules, losses, batch mixing, loss scaling, weight averaging, rank
//! sync), with what every command shares: checkpoint files (each task checks its own fields
//! through [`checkpoint::TaskSpec`]), run folders, config files, the curves plot, atomic
//! writes, bounds on user input and the command-line error policy. Each unit is small and
//! tested on its own against hand-computed or PyTorch values.

pub mod amp;
pub mod atomic_write;
mod c_abi;
pub mod channels_last;
pub mod chart;
pub mod checkpoint;
pub mod cli;
pub mod command;
pub mod config;
pub mod config_file;
pub mod curves;
pub mod data_parallel;
pub mod denormals;
pub mod device;
pub mod ema;
pub mod fit;
pub mod fused_sgd;
pub mod limits;
pub mod loss;
pub mod mix;
pub mod nonfinite;
pub mod optim;
pub mod outputs;
pub mod param_groups;
pub mod progress;
pub mod pytorch_export;
pub mod run_dir;
pub mod schedule;
pub mod state_dict;
pub mod task;
pub mod tensorboard;
pub mod timing;
pub mod transfer;

pub use checkpoint::{Checkpoint, CheckpointError, Metadata, TaskKind, TaskSpec};
pub use fit::{fit, RunOptions, Summary, TrainInputError, Trainer};
pub use task::{Learner, Losses, Metrics, Step, Task};
