//! Data-parallel runs: this process as one rank of several (torchrun, or `--nproc`). The
//! process group is process-wide, joined once by the command before the model is built, so
//! the loop, the loaders, the run folder and SyncBatchNorm all see the same ranks.
//!
//! Each rank holds a full replica: parameters and buffers are broadcast from rank 0 when the
//! loop starts (after a resume is loaded), gradients are averaged by DDP's reducer, each rank
//! reads its shard of the data, and only rank 0 writes the run folder.

use datasets::loader::{Collate, Dataset, Loader};
use distributed::{DistError, GroupOptions, ProcessGroup, RankEnv, ReduceOp};
use std::sync::OnceLock;
use tch::{Device, Tensor};

static GROUP: OnceLock<ProcessGroup> = OnceLock::new();

/// The process group, when this process is one rank of several.
pub fn group() -> Option<&'static ProcessGroup> {
    GROUP.get()
}

pub fn rank() -> usize {
    group().map_or(0, |g| g.rank())
}

pub fn world_size() -> usize {
    group().map_or(1, |g| g.world_size())
}

/// Whether this process writes the run folder, logs and prints (rank 0, or a lone process).
/// Decided from the environment so it holds before the group is joined.
pub fn is_main_rank() -> bool {
    match RankEnv::from_env() {
        Ok(Some(env)) => env.rank == 0,
        _ => true,
    }
}

/// libtorch's CPU threads for one process of a run whose recipe asks for `recipe`
/// (`train.threads`; 0 is libtorch's choice), with the sentence to print when the recipe
/// gives way. Alone, the recipe decides. As one of `local_ranks` ranks on one machine, each
/// rank takes its share of the cores: `omp` (OMP_NUM_THREADS, which `--nproc` sets to cores /
/// ranks and torchrun to 1, or the user to what they choose), else cores / ranks. Every rank
/// taking the recipe's threads would crowd the cores: fashion-quick with `--nproc 2` on 2
/// cores took 17 min where one process takes 3.5.
pub fn rank_threads(
    recipe: usize,
    local_ranks: usize,
    omp: Option<usize>,
    cores: usize,
) -> (usize, Option<String>) {
    if local_ranks <= 1 {
        return (recipe, None);
    }
    let share = omp.unwrap_or(cores / local_ranks).max(1);
    let note = (recipe != 0 && recipe != share).then(|| {
        format!(
            "train.threads = {recipe} gives way to each rank's share of the cores: {share} \
             thread(s) for each of {local_ranks} ranks on {cores} cores (OMP_NUM_THREADS; set it \
             to choose)"
        )
    });
    (share, note)
}

/// [`rank_threads`] for this process, from the environment the launcher set
/// (LOCAL_WORLD_SIZE, OMP_NUM_THREADS).
pub fn rank_threads_from_env(recipe: usize) -> (usize, Option<String>) {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rank_threads(
        recipe,
        var("LOCAL_WORLD_SIZE").unwrap_or(1),
        var("OMP_NUM_THREADS"),
        cores,
    )
}

/// A bad variable or an unusable device: the user's to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

/// Joins the process group when torchrun's variables (or `--nproc`'s) are set, and returns
/// the device this rank trains on: `cuda:LOCAL_RANK` when `device` is CUDA. A lone process
/// gets `device` back unchanged.
pub fn join_from_env(device: Device) -> anyhow::Result<Device> {
    let Some(env) = RankEnv::from_env().map_err(LaunchError)? else {
        return Ok(device);
    };
    let device = match device {
        Device::Cuda(_) => {
            let count = tch::Cuda::device_count() as usize;
            if env.local_rank >= count {
                return Err(LaunchError(format!(
                    "LOCAL_RANK={} needs cuda:{}, but this machine has {count} CUDA device(s)",
                    env.local_rank, env.local_rank
                ))
                .into());
            }
            Device::Cuda(env.local_rank)
        }
        d => d,
    };
    if group().is_some() {
        return Ok(device);
    }
    let options = GroupOptions {
        timeout: distributed::env::timeout_from_env().map_err(LaunchError)?,
        nccl: device.is_cuda(),
    };
    let group = ProcessGroup::from_env(&env, &options)?;
    let _ = GROUP.set(group);
    Ok(device)
}

/// Copies rank 0's `tensors` into every rank's (no-op for a lone process).
pub fn broadcast_from_main(tensors: &[Tensor], what: &str) -> Result<(), DistError> {
    match group() {
        Some(g) => g.broadcast(tensors, 0, what),
        None => Ok(()),
    }
}

/// Sums `values` over ranks (no-op for a lone process).
pub fn sum_f64(values: &mut [f64], what: &str) -> Result<(), DistError> {
    match group() {
        Some(g) => g.sum_f64(values, what),
        None => Ok(()),
    }
}

/// Reduces device tensors in place over ranks (no-op for a lone process).
pub fn all_reduce(tensors: &[Tensor], op: ReduceOp, what: &str) -> Result<(), DistError> {
    match group() {
        Some(g) => g.all_reduce(tensors, op, what),
        None => Ok(()),
    }
}

/// `--nproc N`, checked before anything else is read: not under torchrun (which starts its
/// own ranks), and no more ranks than this machine runs side by side: one per CUDA device
/// with CUDA, one per core on a CPU (each rank holds a whole replica and its own threads, so
/// more would only crowd the cores and the memory).
pub fn check_nproc(nproc: usize, device: Device) -> Result<(), LaunchError> {
    if std::env::var_os("WORLD_SIZE").is_some() {
        return Err(LaunchError(
            "--nproc starts its own ranks and cannot be used under torchrun (WORLD_SIZE is set)"
                .into(),
        ));
    }
    let (available, unit) = match device {
        Device::Cuda(_) => (tch::Cuda::device_count().max(0) as usize, "CUDA device"),
        _ => (
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            "CPU core",
        ),
    };
    if nproc > available {
        return Err(LaunchError(format!(
            "--nproc {nproc} needs a {unit} per rank, but this machine has {available}"
        )));
    }
    Ok(())
}

/// `--nproc N` after the command's checks ran as one process: each rank must still get a
/// full batch from its share of `train` (opened as one process's, so holding every sample).
pub fn check_rank_share<D, C>(train: &Loader<D, C>, nproc: usize) -> Result<(), LaunchError>
where
    D: Dataset,
    C: Collate<D::Sample>,
{
    let samples = train.samples_per_epoch();
    let batch_size = train.config().batch_size;
    let share = samples.div_ceil(nproc);
    if share < batch_size {
        return Err(LaunchError(format!(
            "{samples} training images make no full batch of {batch_size} on each of {nproc} \
             ranks ({share} each); lower data.batch_size or --nproc"
        )));
    }
    Ok(())
}

/// `--nproc N`: runs this command as N local ranks (this process only launches and waits),
/// after [`check_nproc`] and the command's own checks. A rank's bad-input failure (exit 2)
/// stays one; any other failure is a run-time one.
pub fn launch_local_ranks(nproc: usize) -> anyhow::Result<()> {
    let args = distributed::launch::args_without_nproc(std::env::args_os().skip(1));
    match distributed::launch::run_local_ranks(nproc, &args, &[]).map_err(LaunchError)? {
        distributed::launch::Outcome::Success => Ok(()),
        distributed::launch::Outcome::Failed {
            code: 2, message, ..
        } => Err(LaunchError(message).into()),
        distributed::launch::Outcome::Failed { message, .. } => Err(anyhow::anyhow!(message)),
    }
}

/// This process's rank as the environment says (0 when alone), before the group is joined.
pub fn rank_from_env() -> usize {
    match RankEnv::from_env() {
        Ok(Some(env)) => env.rank,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::rank_threads;

    #[test]
    fn a_lone_process_takes_the_recipes_threads() {
        assert_eq!(rank_threads(2, 1, None, 2), (2, None));
        assert_eq!(rank_threads(0, 1, Some(1), 16), (0, None));
    }

    #[test]
    fn each_local_rank_takes_its_share_of_the_cores_and_says_so() {
        // `--nproc 2` on 2 cores sets OMP_NUM_THREADS=1: the recipe's 2 give way, once said.
        let (threads, note) = rank_threads(2, 2, Some(1), 2);
        assert_eq!(threads, 1);
        let note = note.expect("the recipe's value is overridden aloud");
        assert!(note.contains("train.threads = 2") && note.contains("OMP_NUM_THREADS"));
        // Without the variable, cores / ranks; never less than one.
        assert_eq!(rank_threads(0, 4, None, 16), (4, None));
        assert_eq!(rank_threads(0, 4, None, 2).0, 1);
        // The user's own OMP_NUM_THREADS wins, and a recipe that agrees is not remarked on.
        assert_eq!(rank_threads(3, 2, Some(3), 8), (3, None));
    }
}
