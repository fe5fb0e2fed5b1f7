use crate::cli_error::BadInput;
use backbones::Arch;
use clap::Args;
use engine::limits;
use segmentation::bench::{bench, BenchSettings};

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
    #[command(flatten)]
    bench: engine::command::BenchArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let run = args.bench.set_up()?;
    if ![8, 16].contains(&args.output_stride) {
        return Err(BadInput(format!(
            "--output-stride must be 8 or 16, not {}",
            args.output_stride
        ))
        .into());
    }
    let r = bench(&BenchSettings {
        arch: args.arch,
        batch: args.batch,
        crop: args.crop,
        num_classes: args.num_classes,
        output_stride: args.output_stride,
        run,
    })?;
    args.bench.print(&r, |r| {
        format!(
                "fcn_{} OS{} batch {} crop {} on {} ({} threads): training {:.2} images/s, inference {:.2} images/s",
                r.arch, r.output_stride, r.batch, r.crop, r.run.device, r.run.threads, r.train_images_per_s, r.infer_images_per_s
        )
    })
}
