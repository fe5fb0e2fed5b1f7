//! Fashion-MNIST: 28x28 grey clothing images in ten classes, as the four IDX files (gzip)
//! Zalando publishes (`train-*` 60,000 images, `t10k-*` 10,000).

use crate::error::{DataError, Result};
use crate::input::idx::read_idx;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The class names, in label order (Zalando's README).
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which pair of files to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FashionMnistSplit {
    Train,
    /// The 10,000 test images (`t10k-*`), used as the validation set.
    Test,
}

impl FashionMnistSplit {
    fn file_prefix(self) -> &'static str {
        match self {
            FashionMnistSplit::Train => "train",
            FashionMnistSplit::Test => "t10k",
        }
    }
}

/// One split held in memory (47 MB for the training set): grey pixels and labels.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    /// Image `i` is `pixels[i * h * w..][..h * w]`, row-major.
    pixels: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
    images_path: PathBuf,
}

impl FashionMnist {
    /// Reads `DIR/{train,t10k}-images-idx3-ubyte.gz` and the matching labels file.
    pub fn load(dir: &Path, split: FashionMnistSplit) -> Result<Self> {
        let prefix = split.file_prefix();
        let images_path = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
        let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
        let images = read_idx(&images_path)?;
        let labels = read_idx(&labels_path)?;
        let &[count, height, width] = images.dims.as_slice() else {
            return Err(DataError::invalid(
                &images_path,
                format!(
                    "expected 3 dimensions (count, height, width), found {:?}",
                    images.dims
                ),
            ));
        };
        if labels.dims.len() != 1 {
            return Err(DataError::invalid(
                &labels_path,
                format!("expected 1 dimension (count), found {:?}", labels.dims),
            ));
        }
        if labels.len() != count {
            return Err(DataError::invalid(
                &labels_path,
                format!(
                    "has {} labels but {} has {count} images",
                    labels.len(),
                    images_path.display()
                ),
            ));
        }
        if let Some(position) = labels.data.iter().position(|&l| l as usize >= 10) {
            return Err(DataError::invalid(
                &labels_path,
                format!(
                    "label {} of item {position} is not a class (0-9)",
                    labels.data[position]
                ),
            ));
        }
        if count > 0 && (height == 0 || width == 0) {
            return Err(DataError::invalid(&images_path, "images have no pixels"));
        }
        Ok(FashionMnist {
            pixels: images.data,
            labels: labels.data,
            height,
            width,
            images_path,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    /// (height, width) of every image: 28x28 for the real files.
    pub fn image_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The grey pixels of image `index`, row-major.
    pub fn grey(&self, index: usize) -> &[u8] {
        let size = self.height * self.width;
        &self.pixels[index * size..][..size]
    }

    /// Image `index` with its grey value copied to all three channels (PIL's `convert("RGB")`).
    pub fn rgb(&self, index: usize) -> RgbImage {
        let rgb: Vec<u8> = self.grey(index).iter().flat_map(|&v| [v, v, v]).collect();
        RgbImage::from_raw(self.width as u32, self.height as u32, rgb)
            .expect("buffer size matches the image size")
    }

    /// The images file, for messages.
    pub fn images_path(&self) -> &Path {
        &self.images_path
    }
}
