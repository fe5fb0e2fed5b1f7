//! `datasets standins`: tiny stand-ins for the paper's three datasets in their official
//! layouts, at their usual image sizes and with their class counts, so that the paper's
//! recipes (1000 ImageNet classes, 20 VOC classes, 150 ADE20K classes, all taken from the
//! data) run end to end where the real datasets are not at hand: `scripts/transfer_tables.sh
//! --profile paper --dry-run` on them checks the whole protocol in minutes.
//!
//! - `OUT/imagenet/{train,val}/<wnid>/*.JPEG`: 1000 class folders, 500x375 images.
//! - `OUT/VOCdevkit/VOC2007` (trainval and test lists) and `OUT/VOCdevkit/VOC2012` (trainval):
//!   500x375 JPEGs and their XML annotations, boxes of the 20 VOC classes.
//! - `OUT/ADEChallengeData2016/{images,annotations}/{training,validation}`: 683x512 JPEGs
//!   and grayscale masks with values 0..=150 (0 unlabelled).
//!
//! Every image is a flat background with a few filled rectangles, the boxes and masks
//! matching the rectangles exactly; the pictures carry no information worth learning.

use crate::error::{DataError, Result};
use crate::formats::ade20k::ADE20K_CLASSES;
use crate::formats::voc::VOC_CLASSES;
use crate::input::label_png::{encode_mask, MaskEncoding};
use crate::rng::stream_rng;
use rand::RngExt;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// ImageNet-1k's class count (the folder names are made up: `n00000000`...).
pub const IMAGENET_CLASSES: usize = 1000;
const VOC_SIZE: (usize, usize) = (500, 375);
const IMAGENET_SIZE: (usize, usize) = (500, 375);
const ADE_SIZE: (usize, usize) = (683, 512);

#[derive(Clone, Debug, PartialEq)]
pub struct StandinConfig {
    pub out: PathBuf,
    /// ImageNet images per class, in train and in val.
    pub per_class: usize,
    /// Images per VOC list (VOC2007 trainval, VOC2007 test, VOC2012 trainval) and per ADE20K
    /// split.
    pub images: usize,
    pub seed: u64,
}

/// A filled rectangle: inclusive 0-based pixel corners and its class index.
struct Rect {
    x1: usize,
    y1: usize,
    x2: usize,
    y2: usize,
    class: usize,
}

/// One picture: a background colour and up to three rectangles of the given classes.
fn draw(
    (width, height): (usize, usize),
    classes: &[usize],
    stream: u64,
    seed: u64,
) -> (Vec<u8>, Vec<Rect>) {
    let mut rng = stream_rng(seed, stream);
    let background: [u8; 3] = rng.random();
    // Whole rows at a time (std's repeat and copies), not pixel by pixel: the test suite's
    // unoptimised build writes 2,000 of these pictures.
    let mut rgb: Vec<u8> = background.repeat(width * height);
    let mut rects = Vec::new();
    for &class in classes {
        let w = rng.random_range(width / 6..width / 2);
        let h = rng.random_range(height / 6..height / 2);
        let x1 = rng.random_range(0..width - w);
        let y1 = rng.random_range(0..height - h);
        let colour: [u8; 3] = rng.random();
        let row = colour.repeat(w);
        for y in y1..y1 + h {
            rgb[(y * width + x1) * 3..(y * width + x1 + w) * 3].copy_from_slice(&row);
        }
        rects.push(Rect {
            x1,
            y1,
            x2: x1 + w - 1,
            y2: y1 + h - 1,
            class,
        });
    }
    (rgb, rects)
}

fn jpeg(rgb: &[u8], (width, height): (usize, usize), path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(
            rgb,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| DataError::invalid(path, format!("cannot encode JPEG ({e})")))?;
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Writes the three layouts under `config.out`; returns the number of images written.
pub fn write_standins(config: &StandinConfig) -> Result<usize> {
    if config.per_class == 0 || config.images == 0 {
        return Err(DataError::invalid(
            &config.out,
            "stand-ins need at least one image per class and per split",
        ));
    }
    Ok(imagenet(config)? + voc(config)? + ade20k(config)?)
}

fn imagenet(config: &StandinConfig) -> Result<usize> {
    let root = config.out.join("imagenet");
    let jobs: Vec<(&str, usize, usize)> = ["train", "val"]
        .iter()
        .enumerate()
        .flat_map(|(s, split)| {
            (0..IMAGENET_CLASSES).flat_map(move |c| {
                (0..config.per_class).map(move |i| (*split, c, (s << 32) | (c << 12) | i))
            })
        })
        .collect();
    jobs.par_iter().try_for_each(|&(split, class, stream)| {
        let (rgb, _) = draw(IMAGENET_SIZE, &[class], stream as u64, config.seed);
        let wnid = format!("n{class:08}");
        let path = root
            .join(split)
            .join(&wnid)
            .join(format!("{wnid}_{}.JPEG", stream & 0xfff));
        write(&path, &jpeg(&rgb, IMAGENET_SIZE, &path)?)
    })?;
    Ok(jobs.len())
}

fn voc_xml(rects: &[Rect], file: &str) -> String {
    let mut xml = format!(
        "<annotation>\n  <folder>VOC</folder>\n  <filename>{file}</filename>\n  <size>\n    \
         <width>{}</width>\n    <height>{}</height>\n    <depth>3</depth>\n  </size>\n  \
         <segmented>0</segmented>\n",
        VOC_SIZE.0, VOC_SIZE.1
    );
    for r in rects {
        // VOC's boxes are 1-based and inclusive.
        xml.push_str(&format!(
            "  <object>\n    <name>{}</name>\n    <pose>Unspecified</pose>\n    \
             <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n      \
             <xmin>{}</xmin>\n      <ymin>{}</ymin>\n      <xmax>{}</xmax>\n      \
             <ymax>{}</ymax>\n    </bndbox>\n  </object>\n",
            VOC_CLASSES[r.class],
            r.x1 + 1,
            r.y1 + 1,
            r.x2 + 1,
            r.y2 + 1
        ));
    }
    xml.push_str("</annotation>\n");
    xml
}

fn voc(config: &StandinConfig) -> Result<usize> {
    let devkit = config.out.join("VOCdevkit");
    // (year, list, first number): VOC2007 trainval and test, VOC2012 trainval.
    let lists = [
        ("VOC2007", "trainval", 0),
        ("VOC2007", "test", 1),
        ("VOC2012", "trainval", 2),
    ];
    let mut written = 0;
    for (year, list, part) in lists {
        let dir = devkit.join(year);
        let ids: Vec<String> = (0..config.images)
            .map(|i| match year {
                "VOC2007" => format!("{:06}", part * 100_000 + i + 1),
                _ => format!("2012_{:06}", i + 1),
            })
            .collect();
        ids.par_iter().enumerate().try_for_each(|(i, id)| {
            let n = 1 + (i % 3);
            let classes: Vec<usize> = (0..n).map(|k| (i * 3 + k) % VOC_CLASSES.len()).collect();
            let stream = (1 << 40) | ((part as u64) << 32) | i as u64;
            let (rgb, rects) = draw(VOC_SIZE, &classes, stream, config.seed);
            let image = dir.join("JPEGImages").join(format!("{id}.jpg"));
            write(&image, &jpeg(&rgb, VOC_SIZE, &image)?)?;
            write(
                &dir.join("Annotations").join(format!("{id}.xml")),
                voc_xml(&rects, &format!("{id}.jpg")).as_bytes(),
            )
        })?;
        let list_path = dir.join("ImageSets/Main").join(format!("{list}.txt"));
        write(&list_path, format!("{}\n", ids.join("\n")).as_bytes())?;
        written += ids.len();
    }
    Ok(written)
}

fn ade20k(config: &StandinConfig) -> Result<usize> {
    let root = config.out.join("ADEChallengeData2016");
    let (width, height) = ADE_SIZE;
    let mut written = 0;
    for (s, (folder, prefix)) in [("training", "train"), ("validation", "val")]
        .into_iter()
        .enumerate()
    {
        (0..config.images).into_par_iter().try_for_each(|i| {
            let classes: Vec<usize> = (0..3)
                .map(|k| (i * 7 + k * 50 + s) % ADE20K_CLASSES.len())
                .collect();
            let stream = (2 << 40) | ((s as u64) << 32) | i as u64;
            let (rgb, rects) = draw(ADE_SIZE, &classes, stream, config.seed);
            // A quarter of the image stays unlabelled (0); the rest is the first class, the
            // rectangles theirs (mask value = class index + 1).
            let mut mask = vec![1 + classes[0] as u8; width * height];
            for y in 0..height / 4 {
                mask[y * width..(y + 1) * width].fill(0);
            }
            for r in &rects {
                for y in r.y1..=r.y2 {
                    mask[y * width + r.x1..=y * width + r.x2].fill(1 + r.class as u8);
                }
            }
            let stem = format!("ADE_{prefix}_{:08}", i + 1);
            let image = root.join("images").join(folder).join(format!("{stem}.jpg"));
            write(&image, &jpeg(&rgb, ADE_SIZE, &image)?)?;
            let png = root
                .join("annotations")
                .join(folder)
                .join(format!("{stem}.png"));
            let bytes = encode_mask(&mask, width, height, MaskEncoding::Grayscale)
                .map_err(|e| DataError::invalid(&png, format!("cannot encode PNG ({e})")))?;
            write(&png, &bytes)
        })?;
        written += config.images;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ade20k::Ade20kDataset;
    use crate::formats::image_folder::ImageFolder;
    use crate::formats::voc::{VocDataset, VocTask};

    /// The readers the stages use open every split with the paper's class counts.
    #[test]
    fn the_official_readers_open_every_split_with_the_papers_class_counts() {
        let dir = tempfile::tempdir().unwrap();
        let config = StandinConfig {
            out: dir.path().to_path_buf(),
            per_class: 1,
            images: 3,
            seed: 0,
        };
        assert_eq!(write_standins(&config).unwrap(), 2000 + 9 + 6);
        let train = ImageFolder::open(&dir.path().join("imagenet/train")).unwrap();
        assert_eq!(train.classes().len(), 1000);
        let devkit = dir.path().join("VOCdevkit");
        let trainval = VocDataset::open(&devkit, "trainval", VocTask::Detection).unwrap();
        assert_eq!((trainval.len(), trainval.classes().len()), (6, 20));
        let test = VocDataset::open(&devkit, "test", VocTask::Detection).unwrap();
        let record = test.detection_record(2).unwrap();
        assert_eq!((record.width, record.height), (500, 375));
        assert_eq!(record.objects.len(), 3);
        let ade =
            Ade20kDataset::open(&dir.path().join("ADEChallengeData2016"), "validation").unwrap();
        assert_eq!((ade.len(), ade.classes().len()), (3, 150));
        ade.read_label_map(0).unwrap();
    }
}
