use crate::cli_error::BadInput;
use backbones::Arch;
use clap::Args;
use engine::config::RunSection;
use engine::device::parse_device;
use engine::fit::set_up;
use engine::limits;
use segmentation::bench::{bench, BenchSettings};
use std::ops::RangeInclusive;

const BENCH_WARMUP: RangeInclusive<usize> = 0..=100_000;
const BENCH_ITERS: RangeInclusive<usize> = 1..=100_000;

#[derive(Args)]
pub struct BenchArgs {
    /// The backbone (torchvision's fcn_resnet50 is resnet50).
    #[arg(long, default_value = "resnet50")]
    arch: Arch,
    #[arg(
        long,
        default_value_t = 2,
        value_parser = limits::flag_range_i64(1..=*limits::BATCH.end() as i64),
        help = limits::help("Images per batch", &limits::BATCH)
    )]
    batch: i64,
    #[arg(
        long,
        default_value_t = 480,
        value_parser = limits::flag_range_i64(*limits::INPUT_SIDE.start() as i64..=*limits::INPUT_SIDE.end() as i64),
        help = limits::help("Square crop side", &limits::INPUT_SIDE)
    )]
    crop: i64,
    #[arg(long, default_value_t = 150, value_parser = limits::flag_range_i64(1..=254), help = "Classes [1 to 254]")]
    num_classes: i64,
    /// 8 or 16.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i64).range(8..=16))]
    output_stride: i64,
    /// fp16 autocast with dynamic loss scaling (CUDA).
    #[arg(long)]
    amp: bool,
    /// Weights and inputs in channels-last (NHWC) memory format, as the recipes'
    /// `train.channels_last` (bench/fcn_torchvision.py takes the same flag).
    #[arg(long)]
    channels_last: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(
        long,
        default_value_t = 2,
        value_parser = limits::flag_range_usize(BENCH_WARMUP),
        help = limits::help("Untimed iterations first", &BENCH_WARMUP)
    )]
    warmup: usize,
    #[arg(
        long,
        default_value_t = 5,
        value_parser = limits::flag_range_usize(BENCH_ITERS),
        help = limits::help("Timed iterations", &BENCH_ITERS)
    )]
    iters: usize,
    #[arg(
        long,
        value_parser = engine::limits::flag_threads(),
        help = "CPU threads for libtorch (default: libtorch's choice) [1 to 1024]"
    )]
    threads: Option<i32>,
    /// Print one JSON object: {"train_images_per_s", "infer_images_per_s", ...}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(BadInput)?;
    // What `segment finetune` sets up before training (threads, cuDNN autotuning, and the
    // malloc thresholds that keep freed activations mapped), so the bench times the same.
    set_up(
        &RunSection {
            threads: args.threads.unwrap_or(0) as usize,
            ..RunSection::default()
        },
        device,
    );
    if ![8, 16].contains(&args.output_stride) {
        return Err(BadInput(format!(
            "--output-stride must be 8 or 16, not {}",
            args.output_stride
        ))
        .into());
    }
    if args.amp && device == tch::Device::Cpu {
        return Err(BadInput(
            "--amp needs a CUDA device (fp16 autocast is CUDA-only in libtorch)".into(),
        )
        .into());
    }
    let r = bench(&BenchSettings {
        arch: args.arch,
        batch: args.batch,
        crop: args.crop,
        num_classes: args.num_classes,
        output_stride: args.output_stride,
        amp: args.amp,
        channels_last: args.channels_last,
        device,
        warmup: args.warmup,
        iters: args.iters,
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "fcn_{} OS{} batch {} crop {} on {} ({} threads): training {:.2} images/s, inference {:.2} images/s",
            r.arch, r.output_stride, r.batch, r.crop, r.device, r.threads, r.train_images_per_s, r.infer_images_per_s
        );
    }
    Ok(())
}
