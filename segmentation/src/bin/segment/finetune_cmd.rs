use crate::cli_error::BadInput;
use clap::Args;
use engine::data_parallel;
use engine::device::parse_device;
use engine::limits;
use segmentation::finetune::{check, finetune, FinetuneOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct FinetuneArgs {
    /// A classification checkpoint (`backbone train`, `backbone import`): its ResNet becomes
    /// the FCN's backbone, re-strided with dilation; its fc layer is dropped.
    #[arg(long)]
    backbone: PathBuf,
    /// The dataset, ade20k:ROOT (or voc:ROOT); overrides data.spec.
    #[arg(long)]
    data: Option<String>,
    /// A TOML recipe, e.g. configs/segmentation/ade20k-fcn.toml.
    #[arg(long)]
    config: PathBuf,
    /// Override a config value: --set optim.lr=0.08 --set model.aux_weight=0.4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The run folder (config.toml, metrics.jsonl, last/best/state.safetensors, curves.png).
    #[arg(long, default_value = "runs/segment")]
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
    /// Print the outcome as one JSON object.
    #[arg(long)]
    json: bool,
    /// Train data-parallel on N local processes (ranks) without torchrun: Gloo on CPU, one
    /// GPU per rank (cuda:RANK) with --device cuda. data.batch_size is per rank; set
    /// model.norm = "sync" for batch norm over every rank's images.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    nproc: Option<u16>,
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(BadInput)?;
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
        "best_mIoU": summary.best,
        "last": summary.last_metrics,
        "skipped_images": summary.skipped_images,
    });
    if args.json {
        println!("{report}");
    } else if let Some(m) = &summary.last_metrics {
        eprintln!(
            "done: {} epochs, {} iterations; last val pixAcc {:.4} mIoU {:.4}, best mIoU {:.4}; checkpoints in {}",
            summary.epochs_done,
            summary.iters,
            m.get("pixAcc").copied().unwrap_or(f64::NAN),
            m.get("mIoU").copied().unwrap_or(f64::NAN),
            summary.best.unwrap_or(f64::NAN),
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
