use backbones::Arch;
use clap::Args;
use detection::bench::{bench, DetectBenchSettings};
use detection::model::config::Design;

#[derive(Args)]
pub struct BenchArgs {
    /// c4 (GluonCV's, the paper's) or fpn (torchvision's fasterrcnn_resnet50_fpn).
    #[arg(long, value_enum, default_value = "fpn")]
    design: Design,
    /// The ResNet body (torchvision's detector is resnet50).
    #[arg(long, default_value = "resnet50")]
    arch: Arch,
    /// Object classes (VOC has 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
    num_classes: i64,
    /// Images per batch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=64))]
    batch: i64,
    /// SHORT/LONG image sides: 600/1000 (GluonCV's VOC), 800/1333 (torchvision's COCO).
    #[arg(long, default_value = "800/1333", value_parser = parse_size)]
    size: (i64, i64),
    #[command(flatten)]
    bench: engine::command::BenchArgs,
}

fn parse_size(text: &str) -> Result<(i64, i64), String> {
    let bad =
        || format!("\"{text}\" is not SHORT/LONG with 32 <= SHORT <= LONG <= 4096, e.g. 800/1333");
    let (a, b) = text.split_once('/').ok_or_else(bad)?;
    let (short, long) = (
        a.parse::<i64>().map_err(|_| bad())?,
        b.parse::<i64>().map_err(|_| bad())?,
    );
    if !(32..=4096).contains(&short) || !(short..=4096).contains(&long) {
        return Err(bad());
    }
    Ok((short, long))
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let run = args.bench.set_up()?;
    let result = bench(&DetectBenchSettings {
        design: args.design,
        arch: args.arch,
        num_classes: args.num_classes,
        batch: args.batch,
        shorter: args.size.0,
        longer: args.size.1,
        run,
    })?;
    args.bench.print(&result, |result| {
        format!(
                "{} {} batch {} at {}{}: training {:.2} images/s ({:.0} ms a step), inference {:.2} images/s",
                result.design,
                result.arch,
                result.batch,
                result.size,
                if result.run.channels_last { ", channels-last" } else { "" },
                result.train_images_per_s,
                result.train_step_ms,
                result.inference_images_per_s
        )
    })
}
