use clap::Args;
use detection::train::finetune::{check, finetune, FinetuneOptions};
use engine::data_parallel;
use engine::device::parse_device;
use engine::limits;
use std::path::PathBuf;

#[derive(Args)]
pub struct FinetuneArgs {
    /// A classification checkpoint whose weights start the detector's body (ours, or one
    /// imported with `backbone import`); its fc layer is left out.
    #[arg(long)]
    backbone: PathBuf,
    /// A TOML recipe, e.g. configs/detection/voc-c4.toml (GluonCV's, the paper's) or
    /// configs/detection/voc-fpn.toml (torchvision's).
    #[arg(long)]
    config: PathBuf,
    /// Override a recipe value: --set optim.lr=0.002 --set data.batch_size=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The dataset: voc:ROOT (a VOCdevkit folder: every VOC20xx in it with the split, so VOC07+12 trainval) or coco:ANNOTATIONS.json[:IMAGES];
    /// overrides data.spec.
    #[arg(long)]
    data: Option<String>,
    /// The run folder (config.toml, metrics.jsonl with each loss by name, last/best/state
    /// checkpoints, curves.png).
    #[arg(long, default_value = "runs/detection")]
    out: PathBuf,
    /// Continue the run in --out from its state.safetensors (same recipe required).
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
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Train data-parallel on N local processes (ranks) without torchrun: Gloo on CPU, one
    /// GPU per rank (cuda:RANK) with --device cuda. data.batch_size is per rank.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    nproc: Option<u16>,
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(crate::cli_error::BadInput)?;
    let options = FinetuneOptions {
        backbone: args.backbone,
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
        check(&options, nproc as usize)?;
        return data_parallel::launch_local_ranks(nproc as usize);
    }
    let summary = finetune(options)?;
    if !data_parallel::is_main_rank() {
        // Rank 0 reports for the run.
        return Ok(());
    }
    let report = serde_json::json!({
        "out": args.out.display().to_string(),
        "epochs": summary.epochs_done,
        "iters": summary.iters,
        "stopped_early": summary.stopped_early,
        "best_map": summary.best,
        "last": summary.last_metrics,
        "skipped_images": summary.skipped_images,
    });
    if args.json {
        println!("{report}");
    } else if let Some(map) = summary.last_metrics.as_ref().and_then(|m| m.get("map")) {
        eprintln!(
            "done: {} epochs, {} iterations; last mAP {:.4}, best {:.4}; checkpoints in {}",
            summary.epochs_done,
            summary.iters,
            map,
            summary.best.unwrap_or(*map),
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
