use clap::Args;
use detection::train::finetune::{check, finetune};
use engine::command::{train_command, OutcomeNames};

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help("A TOML recipe, e.g. configs/detection/voc-c4.toml (GluonCV's, the paper's) or configs/detection/voc-fpn.toml (torchvision's)")),
    mut_arg("data", |a| a.help("The dataset: voc:ROOT (a VOCdevkit folder: every VOC20xx in it with the split, so VOC07+12 trainval) or coco:ANNOTATIONS.json[:IMAGES]; overrides data.spec")),
    mut_arg("out", |a| a.required(false).default_value("runs/detection")),
)]
pub struct FinetuneArgs {
    #[command(flatten)]
    finetune: backbones::pretrained::FinetuneArgs,
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    train_command(
        &args.finetune.run,
        args.finetune.request()?,
        check,
        finetune,
        &OutcomeNames {
            best_key: "best_map",
            shown: &[("map", "mAP")],
        },
    )
}
