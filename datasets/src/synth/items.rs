//! The things placed in scenes: Fashion-MNIST images, or drawn geometric shapes when the
//! scenes must not depend on the data package (tests).

use crate::error::Result;
use crate::input::idx::{read_idx, IdxArray};
use crate::resize::resize_bilinear;
use crate::rng::SampleRng;
use crate::DataError;
use rand::RngExt;
use std::path::Path;

/// Item class names written into the synthetic datasets. VOC-style single words: they end
/// up in file names (`comp4_det_test_<class>.txt`), so no `/` as in "T-shirt/top".
pub const FASHION_CLASSES: [&str; 10] = [
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

pub const SHAPE_CLASSES: [&str; 10] = [
    "circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon", "bar",
    "crescent",
];

/// A grey sprite: its intensity is both the item's shading and its coverage (Fashion-MNIST
/// items are bright on black).
pub struct Sprite {
    pub class: usize,
    pub side: usize,
    pub intensity: Vec<u8>,
}

/// Which split of Fashion-MNIST a scene draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceSplit {
    Train,
    Test,
}

pub enum ItemSource {
    FashionMnist {
        train: (IdxArray, IdxArray),
        test: (IdxArray, IdxArray),
    },
    Shapes,
}

impl ItemSource {
    /// Loads the four Fashion-MNIST IDX files from `dir`.
    pub fn fashion_mnist(dir: &Path) -> Result<Self> {
        let pair = |prefix: &str| -> Result<(IdxArray, IdxArray)> {
            let images_path = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
            let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
            let images = read_idx(&images_path)?;
            let labels = read_idx(&labels_path)?;
            if images.dims.len() != 3 || images.dims[1] != 28 || images.dims[2] != 28 {
                return Err(DataError::invalid(
                    &images_path,
                    format!(
                        "expected 28x28 images, the dimensions are {:?}",
                        images.dims
                    ),
                ));
            }
            if images.is_empty() {
                return Err(DataError::invalid(&images_path, "holds no images"));
            }
            if labels.dims.len() != 1 {
                return Err(DataError::invalid(
                    &labels_path,
                    format!("expected 1 dimension (count), found {:?}", labels.dims),
                ));
            }
            if labels.len() != images.len() {
                return Err(DataError::invalid(
                    &labels_path,
                    format!("{} labels for {} images", labels.len(), images.len()),
                ));
            }
            if let Some(bad) = labels.data.iter().find(|&&l| l > 9) {
                return Err(DataError::invalid(
                    &labels_path,
                    format!("label {bad} is not 0..=9"),
                ));
            }
            Ok((images, labels))
        };
        Ok(ItemSource::FashionMnist {
            train: pair("train")?,
            test: pair("t10k")?,
        })
    }

    pub fn class_names(&self) -> &'static [&'static str; 10] {
        match self {
            ItemSource::FashionMnist { .. } => &FASHION_CLASSES,
            ItemSource::Shapes => &SHAPE_CLASSES,
        }
    }

    /// A random item at `side` pixels square.
    pub fn draw(&self, split: SourceSplit, side: usize, rng: &mut SampleRng) -> Sprite {
        match self {
            ItemSource::FashionMnist { train, test } => {
                let (images, labels) = match split {
                    SourceSplit::Train => train,
                    SourceSplit::Test => test,
                };
                let i = rng.random_range(0..images.len());
                Sprite {
                    class: labels.data[i] as usize,
                    side,
                    intensity: resize_bilinear(images.item(i), 28, 28, 1, side, side),
                }
            }
            ItemSource::Shapes => {
                let class = rng.random_range(0..SHAPE_CLASSES.len());
                Sprite {
                    class,
                    side,
                    intensity: draw_shape(class, side),
                }
            }
        }
    }
}

/// Rasterises shape `class` into a `side x side` sprite, 2x2 supersampled for soft edges,
/// shaded by a diagonal gradient so the item has some texture.
fn draw_shape(class: usize, side: usize) -> Vec<u8> {
    let mut out = vec![0u8; side * side];
    for y in 0..side {
        for x in 0..side {
            let mut covered = 0;
            for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let u = 2.0 * (x as f32 + dx) / side as f32 - 1.0;
                let v = 2.0 * (y as f32 + dy) / side as f32 - 1.0;
                covered += u32::from(inside_shape(class, u, v));
            }
            let shade = 150.0 + 105.0 * (1.0 - (x + y) as f32 / (2 * side) as f32);
            out[y * side + x] = (shade * covered as f32 / 4.0) as u8;
        }
    }
    out
}

/// Whether `(u, v)` in [-1, 1]^2 lies inside shape `class`.
fn inside_shape(class: usize, u: f32, v: f32) -> bool {
    let r = (u * u + v * v).sqrt();
    match class {
        0 => r < 0.9,
        1 => u.abs().max(v.abs()) < 0.75,
        2 => v > -0.8 && v < 0.8 && u.abs() < (v + 0.8) / 1.6 * 0.9,
        3 => u.abs() + v.abs() < 0.9,
        4 => (u.abs() < 0.28 && v.abs() < 0.9) || (v.abs() < 0.28 && u.abs() < 0.9),
        5 => r > 0.5 && r < 0.9,
        6 => r < 0.4 + 0.5 * (((5.0 * v.atan2(u)).cos() + 1.0) / 2.0),
        7 => v.abs() < 0.78 && u.abs() * 0.866 + v.abs() * 0.5 < 0.78,
        8 => u.abs() < 0.9 && v.abs() < 0.3,
        _ => r < 0.9 && ((u - 0.4) * (u - 0.4) + v * v).sqrt() > 0.65,
    }
}
