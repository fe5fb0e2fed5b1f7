//! `detect predict`: the detections of one image, printed (or as JSON) and optionally drawn;
//! or of many images (`--images`), in batches, drawn into a folder with one COCO results file
//! for them all.

use crate::cli_error::BadInput;
use anyhow::Context;
use clap::Args;
use detection::draw::draw_detections;
use detection::metrics::coco::{write_results, CocoResult};
use detection::model::load::Detector;
use detection::predict::{predict, predict_batch, Detection};
use engine::outputs;
use engine::progress::ItemsProgress;
use image::RgbImage;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    mut_arg("ckpt", |a| a.help("A detection checkpoint (`detect finetune` or `detect import`)")),
    mut_arg("json", |a| a.help("Print one JSON object: {\"image\", \"detections\": [{\"class\", \"label\", \"score\", \"box\"}]}, `class` the index in the checkpoint's class list, `label` its name, `box` [x1, y1, x2, y2] in 0-based float pixels of the original image (with --images, one such line per image)")),
)]
pub struct PredictArgs {
    #[command(flatten)]
    predict: engine::command::ImagesPredictArgs,
    /// With --image: write the image with its labelled boxes to this PNG. With --images (then
    /// required): the folder that receives each image drawn (<name>.png), detections.json
    /// (COCO results of every image, the file `detect eval --detections` reads) and
    /// images.json (the COCO image ids and categories detections.json uses).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep only detections scoring at least this (printed, JSON and drawn); 0 keeps all the
    /// model returns (scores above its own threshold: 0.05 for torchvision's, 0.01 for C4).
    #[arg(long, default_value_t = 0.0, value_parser = parse_score)]
    min_score: f64,
    /// With --images: images per forward pass (decoded in parallel, one batch ahead).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch_size: u16,
    /// With --images: take detections.json's image and category ids from this COCO
    /// annotation file (images matched by file name, categories by name), so that it scores
    /// against that file. Without it, images are numbered 1..N in order and class c is
    /// category c + 1.
    #[arg(long, value_name = "ANNOTATIONS.json")]
    coco: Option<PathBuf>,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    match &args.predict.image {
        Some(image) => predict_one(&args, image),
        None => predict_many(&args),
    }
}

fn predict_one(args: &PredictArgs, path: &Path) -> anyhow::Result<()> {
    let input = &args.predict;
    if args.coco.is_some() {
        return Err(
            BadInput("--coco names ids for --images; with --image there are none".into()).into(),
        );
    }
    let device = input.device()?;
    let drawing = args
        .out
        .iter()
        .map(|out| outputs::named(out, "the drawing"));
    input.check_image_outputs(path, &drawing.collect::<Vec<_>>())?;
    let detector = Detector::from_checkpoint(&input.ckpt, device)?;
    let image = datasets::image_io::load_rgb(path)?;
    let mut detections = predict(&detector, &image);
    detections.retain(|d| d.score >= args.min_score);
    if let Some(out) = &args.out {
        engine::atomic_write::write(out, &drawn_png(&image, &detections, out, input.enlarge)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    match input.json {
        true => println!("{}", image_json(path, &detections)),
        false => {
            println!("{}: {} detections", path.display(), detections.len());
            for d in &detections {
                println!(
                    "  {:.3}  {:<16} [{:.1}, {:.1}, {:.1}, {:.1}]",
                    d.score, d.label, d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]
                );
            }
        }
    }
    Ok(())
}

/// The images, in batches: each drawn into `--out`, all their detections in one COCO
/// results file.
fn predict_many(args: &PredictArgs) -> anyhow::Result<()> {
    let input = &args.predict;
    let out = args.out.as_ref().ok_or_else(|| {
        BadInput("--images needs --out DIR, the folder for the drawings and detections.json".into())
    })?;
    let device = input.device()?;
    let images = input.image_list()?;
    let drawings: Vec<PathBuf> = images.iter().map(|p| drawing_path(out, p)).collect();
    let mut written = drawings.clone();
    written.extend([out.join("detections.json"), out.join("images.json")]);
    input.check_outputs(&images, &written)?;
    let detector = Detector::from_checkpoint(&input.ckpt, device)?;
    let ids = match &args.coco {
        Some(file) => CocoIds::from_file(file, &images, &detector.classes)?,
        None => CocoIds::numbered(&images, &detector.classes),
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let progress = ItemsProgress::new(images.len() as u64, "detecting");
    let mut results: Vec<CocoResult> = Vec::new();
    let mut sizes: Vec<(u32, u32)> = Vec::with_capacity(images.len());
    let mut found = 0;
    let mut done = 0;
    for batch in datasets::image_io::decode_batches(images.clone(), args.batch_size as usize) {
        let batch = batch?;
        let images_of_batch: Vec<&RgbImage> = batch.iter().map(|(_, image)| image).collect();
        let mut detections = predict_batch(&detector, &images_of_batch);
        for d in &mut detections {
            d.retain(|d| d.score >= args.min_score);
        }
        // Drawing and PNG encoding, image by image in parallel, while nothing else runs.
        batch
            .par_iter()
            .zip(&detections)
            .enumerate()
            .try_for_each(|(i, ((_, image), d))| {
                let path = &drawings[done + i];
                engine::atomic_write::write(path, &drawn_png(image, d, path, input.enlarge)?)
                    .with_context(|| format!("writing {}", path.display()))
            })?;
        for ((path, image), d) in batch.iter().zip(&detections) {
            results.extend(ids.results(done, d));
            sizes.push(image.dimensions());
            found += d.len();
            done += 1;
            if input.json {
                progress.println(&image_json(path, d).to_string());
            }
        }
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    write_results(&out.join("detections.json"), &results)
        .with_context(|| format!("writing {}", out.join("detections.json").display()))?;
    let listing = ids.images_json(&images, &sizes);
    engine::atomic_write::write(&out.join("images.json"), listing.to_string().as_bytes())
        .with_context(|| format!("writing {}", out.join("images.json").display()))?;
    eprintln!(
        "{} images, {found} detections: drawings, detections.json and images.json in {}",
        images.len(),
        out.display()
    );
    Ok(())
}

/// `<out>/<image's stem>.png`.
fn drawing_path(out: &Path, image: &Path) -> PathBuf {
    let mut name = image.file_stem().unwrap_or_default().to_os_string();
    name.push(".png");
    out.join(name)
}

/// The PNG of `image` with `detections` drawn, at `enlarge` times the image's size.
fn drawn_png(
    image: &RgbImage,
    detections: &[Detection],
    out: &Path,
    enlarge: u32,
) -> anyhow::Result<Vec<u8>> {
    let k = enlarge as f64;
    let scaled: Vec<Detection> = detections
        .iter()
        .map(|d| Detection {
            bbox: d.bbox.map(|v| v * k),
            ..d.clone()
        })
        .collect();
    let picture = engine::command::enlarged(image, enlarge)
        .map_err(|e| BadInput(format!("{}: {e}", out.display())))?;
    let drawn = draw_detections(&picture, &scaled)
        .map_err(|e| anyhow::anyhow!("{}: cannot draw the detections ({e})", out.display()))?;
    let mut png = Vec::new();
    drawn
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .with_context(|| format!("{}: cannot encode the PNG", out.display()))?;
    Ok(png)
}

fn image_json(path: &Path, detections: &[Detection]) -> serde_json::Value {
    serde_json::json!({
        "image": path.display().to_string(),
        "detections": detections,
    })
}

/// The COCO ids detections.json uses: one per image, one per class.
struct CocoIds {
    images: Vec<u64>,
    categories: Vec<(u64, String)>,
}

impl CocoIds {
    /// Images 1..N in order, class c as category c + 1.
    fn numbered(images: &[PathBuf], classes: &[String]) -> Self {
        CocoIds {
            images: (1..=images.len() as u64).collect(),
            categories: (1..).zip(classes.iter().cloned()).collect(),
        }
    }

    /// The ids of an annotation file: each image by its file name (the last part of the
    /// file's `file_name`), each class by name.
    fn from_file(file: &Path, images: &[PathBuf], classes: &[String]) -> anyhow::Result<Self> {
        let data = datasets::coco::CocoDataset::open(file, None)?;
        if data.classes() != classes {
            return Err(BadInput(format!(
                "{}: its categories ({}) are not the checkpoint's classes ({}) in id order",
                file.display(),
                data.classes().join(", "),
                classes.join(", ")
            ))
            .into());
        }
        let categories = data
            .category_ids()
            .iter()
            .copied()
            .zip(classes.iter().cloned())
            .collect();
        let mut by_name: HashMap<String, Option<u64>> = HashMap::new();
        for (id, name) in data.image_ids_and_file_names() {
            let base = name.rsplit('/').next().unwrap_or(name).to_string();
            by_name
                .entry(base)
                .and_modify(|seen| *seen = None)
                .or_insert(Some(id));
        }
        let images = images
            .iter()
            .map(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                match by_name.get(name.as_ref()) {
                    Some(Some(id)) => Ok(*id),
                    Some(None) => Err(BadInput(format!(
                        "{}: more than one image is named {name}, so {} has no one id",
                        file.display(),
                        path.display()
                    ))),
                    None => Err(BadInput(format!(
                        "{}: no image is named {name} ({})",
                        file.display(),
                        path.display()
                    ))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(CocoIds { images, categories })
    }

    /// Image `index`'s detections as COCO results.
    fn results<'a>(
        &'a self,
        index: usize,
        detections: &'a [Detection],
    ) -> impl Iterator<Item = CocoResult> + 'a {
        detections.iter().map(move |d| {
            let [x1, y1, x2, y2] = d.bbox;
            CocoResult {
                image_id: self.images[index],
                category_id: self.categories[d.class as usize].0,
                bbox: [x1, y1, x2 - x1, y2 - y1],
                score: d.score,
            }
        })
    }

    /// `{"images": [{"id", "file_name", "width", "height"}], "categories": [{"id", "name"}]}`.
    fn images_json(&self, images: &[PathBuf], sizes: &[(u32, u32)]) -> serde_json::Value {
        let images: Vec<serde_json::Value> = images
            .iter()
            .zip(&self.images)
            .zip(sizes)
            .map(|((path, id), (w, h))| {
                serde_json::json!({
                    "id": id,
                    "file_name": path.file_name().unwrap_or_default().to_string_lossy(),
                    "width": w,
                    "height": h,
                })
            })
            .collect();
        let categories: Vec<serde_json::Value> = self
            .categories
            .iter()
            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
            .collect();
        serde_json::json!({"images": images, "categories": categories})
    }
}

fn parse_score(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("\"{text}\" is not a score between 0 and 1")),
    }
}
