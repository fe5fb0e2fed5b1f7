use crate::cli_error::BadInput;
use crate::info::{flag_input_side, NetworkArgs};
use backbones::classification::step_bench::{bench_train_step, StepBenchSettings};
use engine::limits;

use clap::Args;
use datasets::bench::{loader_throughput, LoaderBenchSettings};
use datasets::spec::DatasetSpec;

#[derive(Args)]
#[command(
    mut_arg("arch", |a| a.required(false).default_value("resnet50d")),
    mut_arg("warmup", |a| a.default_value("3")),
    mut_arg("iters", |a| a.default_value("10").help("Timed iterations (batches with --data) [1 to 100000]")),
)]
pub struct BenchArgs {
    #[command(flatten)]
    network: NetworkArgs,
    #[arg(
        long,
        default_value_t = 32,
        value_parser = limits::flag_range_i64(1..=*limits::BATCH.end() as i64),
        help = limits::help("Images per batch", &limits::BATCH)
    )]
    batch: i64,
    #[arg(
        long,
        default_value_t = 224,
        value_parser = flag_input_side(),
        help = limits::help("Square input side", &limits::INPUT_SIDE)
    )]
    input_size: i64,
    /// Time the data loader on this dataset (KIND:PATH) instead of the training step.
    #[arg(long)]
    data: Option<String>,
    #[arg(
        long,
        default_value_t = 1,
        value_parser = limits::flag_range_usize(limits::WORKERS),
        help = limits::help("Loader workers (with --data)", &limits::WORKERS)
    )]
    workers: usize,
    #[command(flatten)]
    bench: engine::command::BenchArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(t) = args.bench.threads {
        tch::set_num_threads(t);
    }
    if let Some(spec) = &args.data {
        return bench_loader(spec, &args);
    }
    args.network
        .arch
        .check_input_size(args.input_size)
        .map_err(BadInput)?;
    let run = args.bench.set_up()?;
    let result = bench_train_step(&StepBenchSettings {
        arch: args.network.arch,
        batch: args.batch,
        input_size: args.input_size,
        num_classes: args.network.num_classes,
        run,
    })?;
    args.bench.print(&result, |result| {
        format!(
            "{} train step, batch {} at {}px on {} ({} threads): {:.1} images/s ({:.1} ms/step)",
            result.arch,
            result.batch,
            result.input_size,
            result.run.device,
            result.run.threads,
            result.images_per_s,
            result.step_ms
        )
    })
}

/// The classification loader's throughput (decode + the paper's augmentation) on `spec`.
fn bench_loader(spec: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let spec = DatasetSpec::parse(spec).map_err(|e| BadInput(e.to_string()))?;
    let settings = LoaderBenchSettings {
        input_size: args.input_size as usize,
        batch_size: args.batch.max(1) as usize,
        workers: args.workers,
        batches: args.bench.iters.max(1),
        warmup_batches: args.bench.warmup.max(1),
        seed: 0,
    };
    let result = loader_throughput(&spec, &settings)?;
    args.bench.print(&result, |result| {
        format!(
            "loader, batch {} at {}px, {} worker(s): {:.1} images/s ({:.1} per worker)",
            result.batch_size,
            result.input_size,
            result.workers,
            result.images_per_s,
            result.images_per_s_per_worker
        )
    })
}
