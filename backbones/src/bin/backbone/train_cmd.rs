use crate::cli_error::BadInput;
use backbones::classification::{self, TrainOptions};
use clap::Args;
use engine::data_parallel;
use engine::device::parse_device;
use engine::limits;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML recipe, e.g. configs/backbone/fashion-quick.toml.
    #[arg(long)]
    config: PathBuf,
    /// Override a config value: --set optim.lr=0.2 --set loss.label_smoothing=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The dataset, KIND:PATH (imagenet:ROOT, fashion-mnist:DIR); overrides data.spec.
    #[arg(long)]
    data: Option<String>,
    /// The run folder (config.toml, metrics.jsonl, last/best/state.safetensors, curves.png).
    #[arg(long, default_value = "runs/backbone")]
    out: PathBuf,
    /// Continue the run in --out from its state.safetensors (same config required).
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(
        long,
        value_parser = limits::flag_range_u64(limits::ITERS),
        help = limits::help(
            "Stop after this many optimiser steps in all, saving the state (continue with --resume)",
            &limits::ITERS
        )
    )]
    max_iters: Option<u64>,
    /// Print the final evaluation as one JSON object.
    #[arg(long)]
    json: bool,
    /// Train data-parallel on N local processes (ranks) without torchrun: Gloo on CPU, one
    /// GPU per rank (cuda:RANK) with --device cuda. data.batch_size is per rank.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    nproc: Option<u16>,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(BadInput)?;
    let options = TrainOptions {
        config: args.config,
        sets: args.sets,
        data: args.data,
        out: args.out.clone(),
        resume: args.resume,
        device,
        max_iters: args.max_iters,
    };
    if let Some(nproc) = args.nproc {
        data_parallel::check_nproc(nproc as usize, device)?;
        classification::check(&options, nproc as usize)?;
        return data_parallel::launch_local_ranks(nproc as usize);
    }
    let summary = classification::train(options)?;
    if !data_parallel::is_main_rank() {
        // Rank 0 reports for the run.
        return Ok(());
    }
    let report = serde_json::json!({
        "out": args.out.display().to_string(),
        "epochs": summary.epochs_done,
        "iters": summary.iters,
        "stopped_early": summary.stopped_early,
        "best_top1": summary.best,
        "last": summary.last_metrics,
        "skipped_images": summary.skipped_images,
    });
    if args.json {
        println!("{report}");
    } else if let Some(top1) = summary.last_metrics.as_ref().and_then(|m| m.get("top1")) {
        eprintln!(
            "done: {} epochs, {} iterations; last val top-1 {:.4}, best {:.4}; checkpoints in {}",
            summary.epochs_done,
            summary.iters,
            top1,
            summary.best.unwrap_or(*top1),
            args.out.display()
        );
    } else {
        eprintln!(
            "stopped after {} iterations; continue with --resume",
            summary.iters
        );
    }
    Ok(())
}
