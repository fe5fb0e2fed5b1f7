use clap::Args;
use engine::command::{train_command, OutcomeNames};
use segmentation::finetune::{check, finetune};

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help("A TOML recipe, e.g. configs/segmentation/ade20k-fcn.toml")),
    mut_arg("data", |a| a.help("The dataset, ade20k:ROOT (or voc:ROOT); overrides data.spec")),
    mut_arg("out", |a| a.required(false).default_value("runs/segment")),
    mut_arg("nproc", |a| a.help("Train data-parallel on N local processes (ranks) without torchrun: Gloo on CPU, one GPU per rank (cuda:RANK) with --device cuda. data.batch_size is per rank; set model.norm = \"sync\" for batch norm over every rank's images")),
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
            best_key: "best_mIoU",
            shown: &[("mIoU", "mIoU"), ("pixAcc", "pixAcc")],
        },
    )
}
