use anyhow::Context;
use clap::Args;
use engine::outputs;
use segmentation::predict::Prediction;
use segmentation::Segmenter;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    mut_arg("ckpt", |a| a.help("A segmentation checkpoint (`segment finetune`, `segment import`)")),
    mut_arg("json", |a| a.help("Print one JSON object: {\"image\", \"mask\", \"overlay\", \"width\", \"height\", \"classes\": [{\"class\", \"label\", \"pixels\", \"fraction\"}]}")),
)]
pub struct PredictArgs {
    #[command(flatten)]
    predict: engine::command::PredictArgs,
    /// The mask to write: 8-bit grayscale PNG of the image's size, 1 + class index per pixel
    /// (ADE20K's submission format; 0 is never written).
    #[arg(long)]
    out: PathBuf,
    /// Also write the image with the classes' colours blended in.
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// Run the model on the image at its own size instead of the checkpoint's preprocessing
    /// (an imported torchvision model resizes the shorter side to 520).
    #[arg(long)]
    native_size: bool,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let input = &args.predict;
    let device = input.device()?;
    let mut written = vec![outputs::named(&args.out, "the mask")];
    if let Some(overlay) = &args.overlay {
        written.push(outputs::named(overlay, "the overlay"));
    }
    input.check_outputs(&written)?;
    let mut model = Segmenter::from_checkpoint(&input.ckpt, device)?;
    if args.native_size {
        model.preprocess.resize_shorter = None;
    }
    let image = datasets::image_io::load_rgb(&input.image)?;
    model.check_input(
        &input.image,
        image.width() as usize,
        image.height() as usize,
    )?;
    let prediction = Prediction::of(&model, &input.image.display().to_string(), &image)?;
    let png = prediction.png().context("encoding the mask")?;
    // Both files are encoded before either is written, and each is written atomically.
    let overlay = match &args.overlay {
        Some(path) => {
            let format = image::ImageFormat::from_path(path).unwrap_or(image::ImageFormat::Png);
            let mut bytes = Vec::new();
            prediction
                .overlay(&image)
                .write_to(&mut std::io::Cursor::new(&mut bytes), format)
                .with_context(|| format!("{}: cannot encode the overlay", path.display()))?;
            Some((path, bytes))
        }
        None => None,
    };
    engine::atomic_write::write(&args.out, &png)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    if let Some((path, bytes)) = overlay {
        engine::atomic_write::write(path, &bytes)
            .with_context(|| format!("{}: cannot write the overlay", path.display()))?;
    }
    let areas = prediction.areas(&model.classes);
    if input.json {
        println!(
            "{}",
            serde_json::json!({
                "image": input.image.display().to_string(),
                "mask": args.out.display().to_string(),
                "overlay": args.overlay.as_ref().map(|p| p.display().to_string()),
                "width": prediction.width,
                "height": prediction.height,
                "classes": areas,
            })
        );
    } else {
        for a in areas.iter().take(10) {
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
