//! `datasets synth`: small datasets in the real VOC, ADE20K and COCO formats, built from
//! Fashion-MNIST items (or drawn shapes) on textured backgrounds, so the detection and
//! segmentation pipelines run end to end where VOC and ADE20K cannot be downloaded.
//!
//! Labels, the same scene in every format:
//!
//! | pixel            | scene / ADE20K mask | VOC mask | train id in memory |
//! |------------------|---------------------|----------|--------------------|
//! | ignored band     | 0                   | 255      | 255                |
//! | background       | 1                   | 0        | 0                  |
//! | item class c     | 2 + c               | 1 + c    | 1 + c              |
//!
//! Detection classes are the ten item classes (`classes.txt`); COCO category id = 1 + c.

mod items;
mod preview;
mod scene;
pub mod standins;
mod writers;

pub use items::{ItemSource, SourceSplit, FASHION_CLASSES, SHAPE_CLASSES};
pub use preview::write_preview;
pub use scene::{
    render_scene, Scene, SceneObject, FIRST_ITEM_LABEL, SCENE_BACKGROUND, SCENE_IGNORE,
};

use crate::error::{DataError, Result};
use crate::rng::{stream_rng, SampleRng};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Scene sides `generate` accepts: items need room, and JPEG sides are 16-bit.
pub const SCENE_SIZES: std::ops::RangeInclusive<usize> = 32..=4096;

/// The three splits of a synthetic dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthSplit {
    Train,
    Val,
    Test,
}

impl SynthSplit {
    pub const ALL: [SynthSplit; 3] = [SynthSplit::Train, SynthSplit::Val, SynthSplit::Test];

    pub fn name(self) -> &'static str {
        match self {
            SynthSplit::Train => "train",
            SynthSplit::Val => "val",
            SynthSplit::Test => "test",
        }
    }

    /// Train scenes use Fashion-MNIST's training images; val and test its test images.
    fn source_split(self) -> SourceSplit {
        match self {
            SynthSplit::Train => SourceSplit::Train,
            SynthSplit::Val | SynthSplit::Test => SourceSplit::Test,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    pub out: PathBuf,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    /// Scenes are `size x size` pixels.
    pub size: usize,
    pub seed: u64,
    /// JPEG quality of the scene images.
    pub jpeg_quality: u8,
}

impl SynthConfig {
    pub fn count(&self, split: SynthSplit) -> usize {
        match split {
            SynthSplit::Train => self.train,
            SynthSplit::Val => self.val,
            SynthSplit::Test => self.test,
        }
    }

    /// The number VOC and COCO give scene `index` of `split`: one sequence over train, val,
    /// test, from 1.
    pub fn scene_number(&self, split: SynthSplit, index: usize) -> usize {
        let before = match split {
            SynthSplit::Train => 0,
            SynthSplit::Val => self.train,
            SynthSplit::Test => self.train + self.val,
        };
        before + index + 1
    }
}

/// The generator of scene `index` of `split`: scenes are independent, so they can be made
/// in any order, in parallel, and one can be remade alone (the preview does).
pub fn scene_rng(seed: u64, split: SynthSplit, index: usize) -> SampleRng {
    stream_rng(seed, ((split as u64 + 1) << 40) | index as u64)
}

/// What was written.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SynthSummary {
    pub scenes: usize,
    pub objects: usize,
    pub difficult: usize,
    /// Objects per class.
    pub per_class: Vec<(String, usize)>,
}

/// Writes every split in all three formats under `config.out`.
pub fn generate(config: &SynthConfig, source: &ItemSource) -> Result<SynthSummary> {
    if !SCENE_SIZES.contains(&config.size) {
        return Err(DataError::invalid(
            &config.out,
            format!(
                "scene size {} is outside {}..={} pixels",
                config.size,
                SCENE_SIZES.start(),
                SCENE_SIZES.end()
            ),
        ));
    }
    let layout = writers::Layout::create(&config.out, source.class_names())?;
    let mut per_class = vec![0usize; 10];
    let (mut scenes, mut objects, mut difficult) = (0, 0, 0);
    for split in SynthSplit::ALL {
        let written: Vec<writers::WrittenScene> = (0..config.count(split))
            .into_par_iter()
            .map(|index| {
                let mut rng = scene_rng(config.seed, split, index);
                let scene = render_scene(source, split.source_split(), config.size, &mut rng);
                layout.write_scene(config, split, index, &scene)
            })
            .collect::<Result<_>>()?;
        for scene in &written {
            scenes += 1;
            for o in &scene.objects {
                objects += 1;
                difficult += usize::from(o.difficult);
                per_class[o.class] += 1;
            }
        }
        layout.write_split_files(split, &written)?;
    }
    layout.finish(config)?;
    Ok(SynthSummary {
        scenes,
        objects,
        difficult,
        per_class: source
            .class_names()
            .iter()
            .map(|s| s.to_string())
            .zip(per_class)
            .collect(),
    })
}

/// The default Fashion-MNIST folder: `$FASHION_MNIST_DIR`, else where Debian's package (and
/// the project's set-up script) puts it.
pub fn default_fashion_mnist_dir() -> PathBuf {
    std::env::var_os("FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("/usr/share/datasets/fashion-mnist").to_path_buf())
}
