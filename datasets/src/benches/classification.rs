//! Loader throughput: how many training images per second the classification loader decodes
//! and augments, and a generator of JPEG folders to measure it on when ImageNet is not at hand.
//! `bench/loader_torchvision.py` measures torchvision's PIL pipeline the same way.

use crate::classify::{
    classification_loader, open_images, ClassificationDataset, ClassificationSplit,
    ClassificationTransform, TrainTransform,
};
use crate::error::{DataError, Result};
use crate::formats::spec::DatasetSpec;
use crate::loader::LoaderConfig;
use crate::rng::stream_rng;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use rand::RngExt;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What to measure: the paper's train transform at `input_size`, shuffled.
#[derive(Clone, Debug)]
pub struct LoaderBenchSettings {
    pub input_size: usize,
    pub batch_size: usize,
    pub workers: usize,
    /// Batches timed.
    pub batches: usize,
    /// Batches taken before the clock starts (threads starting, caches filling).
    pub warmup_batches: usize,
    pub seed: u64,
}

impl Default for LoaderBenchSettings {
    fn default() -> Self {
        LoaderBenchSettings {
            input_size: 224,
            batch_size: 64,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batches: 20,
            warmup_batches: 2,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LoaderThroughput {
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    /// `images_per_s / workers` (workers counted as at least one).
    pub images_per_s_per_worker: f64,
    pub workers: usize,
    pub batch_size: usize,
    pub input_size: usize,
}

/// Times the training loader on the train split of `spec`, going round epochs as needed.
pub fn loader_throughput(
    spec: &DatasetSpec,
    settings: &LoaderBenchSettings,
) -> Result<LoaderThroughput> {
    let source = open_images(spec, ClassificationSplit::Train)?;
    let transform = TrainTransform::paper(settings.input_size);
    let bad_settings = |message: String| DataError::invalid(spec.to_string(), message);
    transform
        .validate()
        .map_err(|e| bad_settings(e.to_string()))?;
    let dataset = ClassificationDataset::new(source, ClassificationTransform::Train(transform));
    let config = LoaderConfig {
        batch_size: settings.batch_size,
        workers: settings.workers,
        prefetch: 2 * settings.workers.max(1),
        shuffle: true,
        seed: settings.seed,
        ..LoaderConfig::default()
    };
    let loader = classification_loader(dataset, config).map_err(|e| bad_settings(e.to_string()))?;
    if loader.batches_per_epoch() == 0 {
        return Err(bad_settings("has no training images".into()));
    }

    if settings.warmup_batches == 0 || settings.batches == 0 {
        // The clock starts when the last warm-up batch arrives, so there must be one.
        return Err(bad_settings(
            "the benchmark needs at least one warm-up batch and one timed batch".into(),
        ));
    }
    let wanted = settings.warmup_batches + settings.batches;
    let mut taken = 0;
    let mut images = 0;
    let mut started = None;
    let mut seconds = 0.0;
    let mut epoch = 0;
    while taken < wanted {
        for batch in loader.epoch(epoch, 0) {
            let batch = batch?;
            taken += 1;
            if taken == settings.warmup_batches {
                started = Some(Instant::now());
            } else if taken > settings.warmup_batches {
                images += batch.len();
            }
            if taken == wanted {
                // Before the iterator is dropped: stopping the workers is not loading.
                seconds = started.map_or(0.0, |t: Instant| t.elapsed().as_secs_f64());
                break;
            }
        }
        epoch += 1;
    }
    let images_per_s = images as f64 / seconds.max(f64::MIN_POSITIVE);
    Ok(LoaderThroughput {
        images,
        seconds,
        images_per_s,
        images_per_s_per_worker: images_per_s / settings.workers.max(1) as f64,
        workers: settings.workers,
        batch_size: settings.batch_size,
        input_size: settings.input_size,
    })
}

/// Writes `ROOT/{train,val}/class_XX/img_YYYY.jpg`: smooth colour fields with grain,
/// `width` x `height`, JPEG quality 90, about ImageNet's bytes per pixel (so decoding costs
/// about what it does on ImageNet). Deterministic for a seed.
pub fn write_jpeg_folder(
    root: &Path,
    classes: usize,
    train_per_class: usize,
    val_per_class: usize,
    (width, height): (u32, u32),
    seed: u64,
) -> Result<()> {
    let mut rng = stream_rng(seed, 0x6a70_6567);
    for (split, per_class) in [("train", train_per_class), ("val", val_per_class)] {
        for class in 0..classes {
            let dir = root.join(split).join(format!("class_{class:02}"));
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            for i in 0..per_class {
                let img = synthetic_photo(width, height, &mut rng);
                let path = dir.join(format!("img_{i:04}.jpg"));
                let file = std::fs::File::create(&path).map_err(|e| DataError::io(&path, e))?;
                let mut writer = std::io::BufWriter::new(file);
                JpegEncoder::new_with_quality(&mut writer, 90)
                    .encode_image(&img)
                    .map_err(|e| DataError::invalid(&path, format!("cannot encode JPEG: {e}")))?;
            }
        }
    }
    Ok(())
}

/// Low-frequency colour waves (large shapes, like a photo's content) plus pixel noise
/// (texture, which is what makes real JPEGs as large as they are).
fn synthetic_photo(width: u32, height: u32, rng: &mut crate::rng::SampleRng) -> RgbImage {
    let waves: Vec<[f32; 5]> = (0..9)
        .map(|_| {
            [
                rng.random_range(0.002..0.03f32),
                rng.random_range(0.002..0.03f32),
                rng.random_range(0.0..6.3f32),
                rng.random_range(20.0..60.0f32),
                rng.random_range(0.0..3.0f32).floor(),
            ]
        })
        .collect();
    let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(60.0..190.0f32));
    let mut img = RgbImage::new(width, height);
    for (x, y, pixel) in img.enumerate_pixels_mut() {
        let mut value = base;
        for &[fx, fy, phase, amplitude, channel] in &waves {
            value[channel as usize] +=
                amplitude * (fx * x as f32 * 6.3 + fy * y as f32 * 6.3 + phase).sin();
        }
        for v in &mut value {
            *v += rng.random_range(-14.0..14.0f32);
        }
        pixel.0 = value.map(|v| v.clamp(0.0, 255.0) as u8);
    }
    img
}
