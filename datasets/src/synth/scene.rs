//! One synthetic scene: a textured background with clutter, 1-6 tinted items placed with
//! limited overlap, and the exact labels: per-pixel classes and instances, boxes tight
//! around what stays visible.

use super::items::{ItemSource, SourceSplit, Sprite};
use crate::rng::SampleRng;
use rand::RngExt;

/// Scene label values (also the ADE20K-format mask values).
pub const SCENE_IGNORE: u8 = 0;
pub const SCENE_BACKGROUND: u8 = 1;
/// Item class `c` is label `FIRST_ITEM_LABEL + c`.
pub const FIRST_ITEM_LABEL: u8 = 2;

/// A sprite pixel belongs to the item from this intensity on (softer pixels only tint).
const ITEM_THRESHOLD: u8 = 16;
/// Items with fewer visible pixels are dropped (their pixels become ignored).
const MIN_VISIBLE_PIXELS: usize = 12;
/// Two items' boxes may share at most this fraction of the smaller box.
const MAX_OVERLAP: f32 = 0.6;

/// A labelled item as it ends up in the scene.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneObject {
    pub class: usize,
    /// 0-based inclusive pixel bounds of the visible pixels: `[x0, y0, x1, y1]`.
    pub bounds: [u32; 4],
    /// More than half of the item is hidden by later items.
    pub difficult: bool,
    /// Value of this item in [`Scene::instances`].
    pub instance: u8,
    pub visible_pixels: usize,
}

pub struct Scene {
    pub size: usize,
    /// RGB, row-major, interleaved.
    pub rgb: Vec<u8>,
    /// [`SCENE_IGNORE`], [`SCENE_BACKGROUND`] or an item label, per pixel.
    pub labels: Vec<u8>,
    /// 0 or the instance number of the visible item, per pixel (before the ignore band).
    pub instances: Vec<u8>,
    pub objects: Vec<SceneObject>,
}

pub fn render_scene(
    source: &ItemSource,
    split: SourceSplit,
    size: usize,
    rng: &mut SampleRng,
) -> Scene {
    let mut rgb = vec![0u8; size * size * 3];
    paint_background(&mut rgb, size, rng);
    paint_clutter(&mut rgb, size, rng);

    let mut instances = vec![0u8; size * size];
    let mut placed: Vec<([usize; 4], Sprite)> = Vec::new();
    let wanted = rng.random_range(1..=6usize);
    let max_side = (size * 6 / 10).max(4);
    for _ in 0..wanted {
        // Log-uniform scale in [0.75, 4] of the 28-pixel original.
        let scale = (0.75f64.ln() + rng.random::<f64>() * (4.0f64 / 0.75).ln()).exp();
        let side = ((28.0 * scale).round() as usize).clamp(4, max_side);
        let sprite = source.draw(split, side, rng);
        let tint = random_tint(rng);
        let Some((x, y)) = find_place(&placed, side, size, rng) else {
            continue;
        };
        paint_sprite(
            &mut rgb,
            &mut instances,
            size,
            &sprite,
            x,
            y,
            tint,
            placed.len() as u8 + 1,
        );
        placed.push(([x, y, x + side, y + side], sprite));
    }

    let objects = measure_objects(&mut instances, size, &placed);
    let labels = label_map(&instances, size, &objects);
    Scene {
        size,
        rgb,
        labels,
        instances,
        objects,
    }
}

/// Two colours blended by smooth value noise, optionally striped, with fine grain.
fn paint_background(rgb: &mut [u8], size: usize, rng: &mut SampleRng) {
    let a = random_colour(rng);
    let b = random_colour(rng);
    const GRID: usize = 6;
    let noise: Vec<f32> = (0..GRID * GRID).map(|_| rng.random::<f32>()).collect();
    let stripes = rng.random_bool(0.4);
    let angle = rng.random::<f32>() * std::f32::consts::PI;
    let period = rng.random_range(6.0..30.0f32);
    let (ca, sa) = (angle.cos(), angle.sin());
    let mut grain_state: u32 = rng.random();
    let cell = (size as f32 / (GRID - 1) as f32).max(1.0);
    // Bilinear value noise, separably: the column weights once, then per row the grid
    // values already blended vertically, leaving one blend per pixel.
    let columns: Vec<(usize, f32)> = (0..size)
        .map(|x| {
            let gx = x as f32 / cell;
            ((gx as usize).min(GRID - 2), gx.fract())
        })
        .collect();
    let mut row_noise = [0f32; GRID];
    for y in 0..size {
        let gy = y as f32 / cell;
        let (y0, fy) = ((gy as usize).min(GRID - 2), gy.fract());
        for (i, v) in row_noise.iter_mut().enumerate() {
            *v = noise[y0 * GRID + i] * (1.0 - fy) + noise[(y0 + 1) * GRID + i] * fy;
        }
        let row = &mut rgb[y * size * 3..][..size * 3];
        for (x, (&(x0, fx), p)) in columns.iter().zip(row.chunks_exact_mut(3)).enumerate() {
            let mut t = row_noise[x0] * (1.0 - fx) + row_noise[x0 + 1] * fx;
            if stripes {
                let phase = (x as f32 * ca + y as f32 * sa) / period;
                // A triangle wave: stripes without a sine per pixel.
                t = 0.5 * t + 0.5 * (2.0 * (phase - phase.floor()) - 1.0).abs();
            }
            // xorshift grain: cheap, and deterministic through the scene's seed.
            grain_state ^= grain_state << 13;
            grain_state ^= grain_state >> 17;
            grain_state ^= grain_state << 5;
            let grain = (grain_state % 17) as f32 - 8.0;
            for c in 0..3 {
                p[c] =
                    (a[c] as f32 + (b[c] as f32 - a[c] as f32) * t + grain).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Unlabelled distractors: rectangles, discs and lines in random colours.
fn paint_clutter(rgb: &mut [u8], size: usize, rng: &mut SampleRng) {
    let count = rng.random_range(2..=8);
    for _ in 0..count {
        let colour = random_colour(rng);
        let extent = rng.random_range(3..=(size / 6).max(4));
        let cx = rng.random_range(0..size) as isize;
        let cy = rng.random_range(0..size) as isize;
        let kind = rng.random_range(0..3);
        let thickness = rng.random_range(1..=3) as f32;
        let angle = rng.random::<f32>() * std::f32::consts::PI;
        let (ca, sa) = (angle.cos(), angle.sin());
        let e = extent as isize;
        for y in (cy - e).max(0)..(cy + e + 1).min(size as isize) {
            for x in (cx - e).max(0)..(cx + e + 1).min(size as isize) {
                let (dx, dy) = ((x - cx) as f32, (y - cy) as f32);
                let inside = match kind {
                    0 => dx.abs() <= extent as f32 * 0.8 && dy.abs() <= extent as f32 * 0.5,
                    1 => dx * dx + dy * dy <= (extent * extent) as f32 * 0.6,
                    _ => {
                        (dx * sa - dy * ca).abs() <= thickness
                            && (dx * ca + dy * sa).abs() <= extent as f32
                    }
                };
                if inside {
                    rgb[(y as usize * size + x as usize) * 3..][..3].copy_from_slice(&colour);
                }
            }
        }
    }
}

fn random_colour(rng: &mut SampleRng) -> [u8; 3] {
    [rng.random(), rng.random(), rng.random()]
}

/// A saturated, fairly bright colour, so items stand out from most backgrounds.
fn random_tint(rng: &mut SampleRng) -> [f32; 3] {
    let hue = rng.random::<f32>() * 6.0;
    let saturation = rng.random_range(0.35..1.0f32);
    let value = rng.random_range(0.65..1.0f32);
    let f = hue.fract();
    let (p, q, t) = (
        value * (1.0 - saturation),
        value * (1.0 - saturation * f),
        value * (1.0 - saturation * (1.0 - f)),
    );
    let (r, g, b) = match hue as u32 {
        0 => (value, t, p),
        1 => (q, value, p),
        2 => (p, value, t),
        3 => (p, q, value),
        4 => (t, p, value),
        _ => (value, p, q),
    };
    [r * 255.0, g * 255.0, b * 255.0]
}

/// A top-left corner where a `side` square overlaps each placed box by at most
/// [`MAX_OVERLAP`] of the smaller one; `None` after 30 tries.
fn find_place(
    placed: &[([usize; 4], Sprite)],
    side: usize,
    size: usize,
    rng: &mut SampleRng,
) -> Option<(usize, usize)> {
    if side > size {
        return None;
    }
    (0..30).find_map(|_| {
        let x = rng.random_range(0..=size - side);
        let y = rng.random_range(0..=size - side);
        let fits = placed.iter().all(|([x0, y0, x1, y1], _)| {
            let iw = (x + side).min(*x1).saturating_sub(x.max(*x0));
            let ih = (y + side).min(*y1).saturating_sub(y.max(*y0));
            let smaller = (side * side).min((x1 - x0) * (y1 - y0));
            (iw * ih) as f32 <= MAX_OVERLAP * smaller as f32
        });
        fits.then_some((x, y))
    })
}

/// Blends the sprite over the scene: its intensity shades the tint and, near the edge,
/// fades into what is below.
#[allow(clippy::too_many_arguments)]
fn paint_sprite(
    rgb: &mut [u8],
    instances: &mut [u8],
    size: usize,
    sprite: &Sprite,
    x0: usize,
    y0: usize,
    tint: [f32; 3],
    instance: u8,
) {
    for sy in 0..sprite.side {
        for sx in 0..sprite.side {
            let g = sprite.intensity[sy * sprite.side + sx];
            if g == 0 {
                continue;
            }
            let alpha = (g as f32 / (2 * ITEM_THRESHOLD) as f32).min(1.0);
            let shade = 0.35 + 0.65 * g as f32 / 255.0;
            let at = (y0 + sy) * size + x0 + sx;
            let p = &mut rgb[at * 3..][..3];
            for c in 0..3 {
                p[c] = (p[c] as f32 * (1.0 - alpha) + tint[c] * shade * alpha) as u8;
            }
            if g >= ITEM_THRESHOLD {
                instances[at] = instance;
            }
        }
    }
}

/// Boxes from the visible pixels; items hidden more than half are difficult, items almost
/// entirely hidden are dropped and their few pixels marked 255 in `instances` (ignored).
fn measure_objects(
    instances: &mut [u8],
    size: usize,
    placed: &[([usize; 4], Sprite)],
) -> Vec<SceneObject> {
    let n = placed.len();
    let mut bounds = vec![[u32::MAX, u32::MAX, 0u32, 0u32]; n];
    let mut visible = vec![0usize; n];
    for (i, &v) in instances.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let k = v as usize - 1;
        let (x, y) = ((i % size) as u32, (i / size) as u32);
        let b = &mut bounds[k];
        b[0] = b[0].min(x);
        b[1] = b[1].min(y);
        b[2] = b[2].max(x);
        b[3] = b[3].max(y);
        visible[k] += 1;
    }
    let mut objects = Vec::with_capacity(n);
    let mut dropped = vec![false; n];
    for (k, (_, sprite)) in placed.iter().enumerate() {
        let full = sprite
            .intensity
            .iter()
            .filter(|&&g| g >= ITEM_THRESHOLD)
            .count();
        if visible[k] < MIN_VISIBLE_PIXELS {
            dropped[k] = true;
            continue;
        }
        objects.push(SceneObject {
            class: sprite.class,
            bounds: bounds[k],
            difficult: 2 * visible[k] < full,
            instance: k as u8 + 1,
            visible_pixels: visible[k],
        });
    }
    if dropped.iter().any(|&d| d) {
        for v in instances.iter_mut() {
            if *v != 0 && *v != u8::MAX && dropped[*v as usize - 1] {
                *v = u8::MAX;
            }
        }
    }
    objects
}

/// Class labels per pixel with a thin ignored band where an item meets anything else:
/// a pixel is ignored when a 4-neighbour has another label and one of the two is an item.
fn label_map(instances: &[u8], size: usize, objects: &[SceneObject]) -> Vec<u8> {
    let mut class_of_instance = [SCENE_BACKGROUND; 256];
    class_of_instance[u8::MAX as usize] = SCENE_IGNORE;
    for o in objects {
        class_of_instance[o.instance as usize] = FIRST_ITEM_LABEL + o.class as u8;
    }
    let raw: Vec<u8> = instances
        .iter()
        .map(|&v| class_of_instance[v as usize])
        .collect();
    let mut labels = raw.clone();
    for y in 0..size {
        for x in 0..size {
            let here = raw[y * size + x];
            let differs = |nx: usize, ny: usize| {
                let there = raw[ny * size + nx];
                there != here && (here >= FIRST_ITEM_LABEL || there >= FIRST_ITEM_LABEL)
            };
            let on_border = (x > 0 && differs(x - 1, y))
                || (x + 1 < size && differs(x + 1, y))
                || (y > 0 && differs(x, y - 1))
                || (y + 1 < size && differs(x, y + 1));
            if on_border {
                labels[y * size + x] = SCENE_IGNORE;
            }
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    #[test]
    fn boxes_are_tight_and_labels_agree_with_instances() {
        for seed in 0..10 {
            let scene = render_scene(
                &ItemSource::Shapes,
                SourceSplit::Train,
                96,
                &mut stream_rng(seed, 0),
            );
            for o in &scene.objects {
                let [x0, y0, x1, y1] = o.bounds;
                let mut seen = [u32::MAX, u32::MAX, 0, 0];
                let mut count = 0;
                for (i, &v) in scene.instances.iter().enumerate() {
                    if v == o.instance {
                        let (x, y) = ((i % 96) as u32, (i / 96) as u32);
                        seen = [
                            seen[0].min(x),
                            seen[1].min(y),
                            seen[2].max(x),
                            seen[3].max(y),
                        ];
                        count += 1;
                        let label = scene.labels[i];
                        assert!(label == SCENE_IGNORE || label == FIRST_ITEM_LABEL + o.class as u8);
                    }
                }
                assert_eq!(seen, [x0, y0, x1, y1]);
                assert_eq!(count, o.visible_pixels);
            }
            assert!(scene.labels.iter().all(|&l| l <= FIRST_ITEM_LABEL + 9));
        }
    }
}
