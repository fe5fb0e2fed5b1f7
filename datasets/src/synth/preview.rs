//! A picture of what the models learn from: scenes with their boxes, next to their masks.

use super::scene::{render_scene, Scene, SCENE_IGNORE};
use super::{scene_rng, ItemSource, SynthConfig, SynthSplit};
use crate::error::{DataError, Result};
use crate::input::label_png::voc_palette;
use std::path::Path;

/// Box colours per class: bright and distinct, unlike VOC's dark palette entries.
const BOX_COLOURS: [[u8; 3]; 10] = [
    [255, 64, 64],
    [64, 255, 64],
    [64, 128, 255],
    [255, 255, 0],
    [255, 0, 255],
    [0, 255, 255],
    [255, 160, 0],
    [160, 64, 255],
    [255, 255, 255],
    [128, 255, 160],
];

const GAP: usize = 6;

/// Writes a grid of the first `count` scenes of the training split (the validation split if
/// there are no training scenes) to `path`: each scene with its boxes (dashed when
/// difficult), beside its mask in VOC colours (the ignored band in VOC's cream).
pub fn write_preview(
    config: &SynthConfig,
    source: &ItemSource,
    count: usize,
    path: &Path,
) -> Result<()> {
    let split = if config.train > 0 {
        SynthSplit::Train
    } else {
        SynthSplit::Val
    };
    let count = count.min(config.count(split)).max(1);
    let size = config.size;
    let columns = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(columns);
    let cell_w = 2 * size + GAP;
    let (width, height) = (columns * (cell_w + GAP) + GAP, rows * (size + GAP) + GAP);
    let mut canvas =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([40, 40, 40]));
    let palette = voc_palette();
    for index in 0..count {
        let mut rng = scene_rng(config.seed, split, index);
        let scene = render_scene(source, split.source_split(), size, &mut rng);
        let (ox, oy) = (
            GAP + (index % columns) * (cell_w + GAP),
            GAP + (index / columns) * (size + GAP),
        );
        draw_scene(&mut canvas, &scene, ox, oy);
        for y in 0..size {
            for x in 0..size {
                let label = scene.labels[y * size + x];
                let voc_value = if label == SCENE_IGNORE {
                    255
                } else {
                    label as usize - 1
                };
                let c = &palette[voc_value * 3..voc_value * 3 + 3];
                canvas.put_pixel(
                    (ox + size + GAP + x) as u32,
                    (oy + y) as u32,
                    image::Rgb([c[0], c[1], c[2]]),
                );
            }
        }
    }
    canvas
        .save(path)
        .map_err(|e| DataError::invalid(path, format!("cannot write the preview ({e})")))
}

fn draw_scene(canvas: &mut image::RgbImage, scene: &Scene, ox: usize, oy: usize) {
    let size = scene.size;
    for y in 0..size {
        for x in 0..size {
            let p = &scene.rgb[(y * size + x) * 3..][..3];
            canvas.put_pixel(
                (ox + x) as u32,
                (oy + y) as u32,
                image::Rgb([p[0], p[1], p[2]]),
            );
        }
    }
    for o in &scene.objects {
        let colour = image::Rgb(BOX_COLOURS[o.class % BOX_COLOURS.len()]);
        let [x0, y0, x1, y1] = o.bounds.map(|v| v as usize);
        // The outline is drawn on the box's outermost pixels, so it covers the item's edge.
        let mut plot = |x: usize, y: usize, along: usize| {
            if !o.difficult || (along / 3).is_multiple_of(2) {
                canvas.put_pixel((ox + x) as u32, (oy + y) as u32, colour);
            }
        };
        for x in x0..=x1 {
            plot(x, y0, x);
            plot(x, y1, x);
        }
        for y in y0..=y1 {
            plot(x0, y, y);
            plot(x1, y, y);
        }
    }
}
