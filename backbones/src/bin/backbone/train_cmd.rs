use backbones::classification;
use clap::Args;
use engine::command::{train_command, OutcomeNames, RunArgs};

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help("A TOML recipe, e.g. configs/backbone/fashion-quick.toml")),
    mut_arg("data", |a| a.help("The dataset, KIND:PATH (imagenet:ROOT, fashion-mnist:DIR); overrides data.spec")),
    mut_arg("out", |a| a.required(false).default_value("runs/backbone")),
)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let request = args.run.request()?;
    train_command(
        &args.run,
        request,
        classification::check,
        classification::train,
        &OutcomeNames {
            best_key: "best_top1",
            shown: &[("top1", "top-1")],
        },
    )
}
