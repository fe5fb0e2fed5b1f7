//! `segment predict`: the mask of one image (and its overlay), or of many images
//! (`--images`) into a folder, in the ADE20K submission format `segment eval --predictions`
//! reads.

use crate::cli_error::BadInput;
use anyhow::Context;
use clap::Args;
use engine::outputs;
use engine::progress::ItemsProgress;
use segmentation::predict::Prediction;
use segmentation::Segmenter;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    mut_arg("ckpt", |a| a.help("A segmentation checkpoint (`segment finetune`, `segment import`)")),
    mut_arg("json", |a| a.help("Print one JSON object: {\"image\", \"mask\", \"overlay\", \"width\", \"height\", \"classes\": [{\"class\", \"label\", \"pixels\", \"fraction\"}]} (with --images, one such line per image)")),
)]
pub struct PredictArgs {
    #[command(flatten)]
    predict: engine::command::ImagesPredictArgs,
    /// The mask to write: 8-bit grayscale PNG of the image's size, 1 + class index per pixel
    /// (ADE20K's submission format; 0 is never written). With --images, the folder that
    /// receives one mask per image, <name>.png (what `segment eval --predictions` reads).
    /// Images are run one at a time, as they differ in size (padding them into one batch
    /// would change the logits near the padding), decoded in parallel ahead of the model.
    #[arg(long)]
    out: PathBuf,
    /// Also write the image with the classes' colours blended in (with --images, a folder
    /// for one overlay per image).
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// Run the model on the image at its own size instead of the checkpoint's preprocessing
    /// (an imported torchvision model resizes the shorter side to 520).
    #[arg(long)]
    native_size: bool,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    match &args.predict.image {
        Some(image) => predict_one(&args, image),
        None => predict_many(&args),
    }
}

fn open_model(args: &PredictArgs) -> anyhow::Result<Segmenter> {
    let mut model = Segmenter::from_checkpoint(&args.predict.ckpt, args.predict.device()?)?;
    if args.native_size {
        model.preprocess.resize_shorter = None;
    }
    Ok(model)
}

/// Predicts `image` (read from `path`) and writes its mask to `out` and its overlay to
/// `overlay`, each encoded before either is written and each written atomically.
fn predict_and_write(
    model: &Segmenter,
    path: &Path,
    image: &image::RgbImage,
    out: &Path,
    overlay: Option<&Path>,
    enlarge: u32,
) -> anyhow::Result<Prediction> {
    model.check_input(path, image.width() as usize, image.height() as usize)?;
    let prediction = Prediction::of(model, &path.display().to_string(), image)?;
    let png = prediction.png().context("encoding the mask")?;
    let overlay = match overlay {
        Some(overlay_path) => {
            let format =
                image::ImageFormat::from_path(overlay_path).unwrap_or(image::ImageFormat::Png);
            let mut bytes = Vec::new();
            let overlay = prediction.overlay(image);
            engine::command::enlarged(&overlay, enlarge)
                .map_err(|e| BadInput(format!("{}: {e}", overlay_path.display())))?
                .write_to(&mut std::io::Cursor::new(&mut bytes), format)
                .with_context(|| {
                    format!("{}: cannot encode the overlay", overlay_path.display())
                })?;
            Some((overlay_path, bytes))
        }
        None => None,
    };
    engine::atomic_write::write(out, &png)
        .with_context(|| format!("{}: cannot write", out.display()))?;
    if let Some((overlay_path, bytes)) = overlay {
        engine::atomic_write::write(overlay_path, &bytes)
            .with_context(|| format!("{}: cannot write the overlay", overlay_path.display()))?;
    }
    Ok(prediction)
}

fn prediction_json(
    path: &Path,
    mask: &Path,
    overlay: Option<&Path>,
    prediction: &Prediction,
    classes: &[String],
) -> serde_json::Value {
    serde_json::json!({
        "image": path.display().to_string(),
        "mask": mask.display().to_string(),
        "overlay": overlay.map(|p| p.display().to_string()),
        "width": prediction.width,
        "height": prediction.height,
        "classes": prediction.areas(classes),
    })
}

/// Every image of `--images`: a mask (and overlay) each, in the folders --out (and
/// --overlay) name.
fn predict_many(args: &PredictArgs) -> anyhow::Result<()> {
    let input = &args.predict;
    let images = input.image_list()?;
    let in_folder = |dir: &Path, image: &Path| {
        let mut name = image.file_stem().unwrap_or_default().to_os_string();
        name.push(".png");
        dir.join(name)
    };
    let masks: Vec<PathBuf> = images.iter().map(|p| in_folder(&args.out, p)).collect();
    let overlays: Option<Vec<PathBuf>> = args
        .overlay
        .as_ref()
        .map(|dir| images.iter().map(|p| in_folder(dir, p)).collect());
    if overlays.as_ref().is_some_and(|o| o[0] == masks[0]) {
        return Err(BadInput("--overlay must name another folder than --out".into()).into());
    }
    let written: Vec<PathBuf> = masks
        .iter()
        .chain(overlays.iter().flatten())
        .cloned()
        .collect();
    input.check_outputs(&images, &written)?;
    let model = open_model(args)?;
    for dir in std::iter::once(&args.out).chain(&args.overlay) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let progress = ItemsProgress::new(images.len() as u64, "segmenting");
    let mut index = 0;
    // Decoding runs a few images ahead (in parallel) of the model, which takes one at a time.
    for batch in datasets::image_io::decode_batches(images.clone(), 4) {
        for (path, image) in batch? {
            let overlay = overlays.as_ref().map(|o| o[index].as_path());
            let prediction =
                predict_and_write(&model, &path, &image, &masks[index], overlay, input.enlarge)?;
            if input.json {
                let line =
                    prediction_json(&path, &masks[index], overlay, &prediction, &model.classes);
                progress.println(&line.to_string());
            }
            index += 1;
            progress.advance(1);
        }
    }
    progress.finish();
    eprintln!("{} images: masks in {}", images.len(), args.out.display());
    Ok(())
}

fn predict_one(args: &PredictArgs, path: &Path) -> anyhow::Result<()> {
    let input = &args.predict;
    let mut written = vec![outputs::named(&args.out, "the mask")];
    if let Some(overlay) = &args.overlay {
        written.push(outputs::named(overlay, "the overlay"));
    }
    input.check_image_outputs(path, &written)?;
    let model = open_model(args)?;
    let image = datasets::image_io::load_rgb(path)?;
    let prediction = predict_and_write(
        &model,
        path,
        &image,
        &args.out,
        args.overlay.as_deref(),
        args.predict.enlarge,
    )?;
    if input.json {
        let json = prediction_json(
            path,
            &args.out,
            args.overlay.as_deref(),
            &prediction,
            &model.classes,
        );
        println!("{json}");
    } else {
        for a in prediction.areas(&model.classes).iter().take(10) {
            println!(
                "{:>6.2}%  {} ({})",
                100.0 * a.fraction,
                a.label,
                a.class + 1
            );
        }
    }
    Ok(())
}
