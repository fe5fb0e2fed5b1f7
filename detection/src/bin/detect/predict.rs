//! `detect predict`: the detections of one image, printed (or as JSON) and optionally drawn.

use anyhow::Context;
use clap::Args;
use detection::draw::draw_detections;
use detection::model::load::Detector;
use detection::predict::predict;
use engine::outputs;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    mut_arg("ckpt", |a| a.help("A detection checkpoint (`detect finetune` or `detect import`)")),
    mut_arg("json", |a| a.help("Print one JSON object: {\"image\", \"detections\": [{\"class\", \"label\", \"score\", \"box\"}]}, `class` the index in the checkpoint's class list, `label` its name, `box` [x1, y1, x2, y2] in 0-based float pixels of the original image")),
)]
pub struct PredictArgs {
    #[command(flatten)]
    predict: engine::command::PredictArgs,
    /// Write the image with its labelled boxes to this PNG.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep only detections scoring at least this (printed, JSON and drawn); 0 keeps all the
    /// model returns (scores above its own threshold: 0.05 for torchvision's, 0.01 for C4).
    #[arg(long, default_value_t = 0.0, value_parser = parse_score)]
    min_score: f64,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let input = &args.predict;
    let device = input.device()?;
    let drawing = args
        .out
        .iter()
        .map(|out| outputs::named(out, "the drawing"));
    input.check_outputs(&drawing.collect::<Vec<_>>())?;
    let detector = Detector::from_checkpoint(&input.ckpt, device)?;
    let image = datasets::image_io::load_rgb(&input.image)?;
    let mut detections = predict(&detector, &image);
    detections.retain(|d| d.score >= args.min_score);
    if let Some(out) = &args.out {
        let drawn = draw_detections(&image, &detections)
            .map_err(|e| anyhow::anyhow!("{}: cannot draw the detections ({e})", out.display()))?;
        let mut png = Vec::new();
        drawn
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .with_context(|| format!("{}: cannot encode the PNG", out.display()))?;
        engine::atomic_write::write(out, &png)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if input.json {
        let json = serde_json::json!({
            "image": input.image.display().to_string(),
            "detections": detections,
        });
        println!("{json}");
    } else {
        println!("{}: {} detections", input.image.display(), detections.len());
        for d in &detections {
            println!(
                "  {:.3}  {:<16} [{:.1}, {:.1}, {:.1}, {:.1}]",
                d.score, d.label, d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]
            );
        }
    }
    Ok(())
}

fn parse_score(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("\"{text}\" is not a score between 0 and 1")),
    }
}
