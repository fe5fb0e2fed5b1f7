//! The smallest inputs the commands accept: a three-class ImageNet-layout folder of noisy
//! colour images, a training recipe that runs on it in seconds, and a classifier checkpoint
//! made by `backbone init`, plus a way to rewrite a checkpoint's header.

use crate::run_ok;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const COLOURS: [[u8; 3]; 3] = [[200, 40, 40], [40, 200, 40], [40, 40, 200]];

/// ROOT/{train,val}/class_i/*.png: noisy 40x36 images whose colour is their class.
pub fn image_folder(root: &Path, train_per_class: usize, val_per_class: usize) {
    let mut seed = 1u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as i32 - 128
    };
    for (split, n) in [("train", train_per_class), ("val", val_per_class)] {
        for (c, colour) in COLOURS.iter().enumerate() {
            let dir = root.join(split).join(format!("class_{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(40, 36, |_, _| {
                    image::Rgb(colour.map(|v| (v as i32 + noise() / 2).clamp(0, 255) as u8))
                });
                img.save(dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
}

/// A ResNet-18 recipe at 32 px, batches of 8, checkpointing every 2 iterations.
pub const CONFIG: &str = r#"[model]
arch = "resnet18"

[data]
batch_size = 8
workers = 1
prefetch = 2
normalization = "imagenet"

[data.augment]
input_size = 32
scale = [0.5, 1.0]

[optim]
lr = 0.1

[schedule]
epochs = 2
decay = { kind = "cosine" }

[train]
log_every = 1
checkpoint_every_iters = 2
threads = 1
"#;

/// A folder with the image data (8 training and 2 validation images per class) and
/// `tiny.toml`.
pub struct RunInputs {
    pub dir: tempfile::TempDir,
    /// `imagenet:DIR`, for `--data`.
    pub data: String,
    pub config: PathBuf,
}

impl RunInputs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        image_folder(&dir.path().join("imagenet"), 8, 2);
        let config = dir.path().join("tiny.toml");
        std::fs::write(&config, CONFIG).unwrap();
        RunInputs {
            data: format!("imagenet:{}", dir.path().join("imagenet").display()),
            config,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `backbone train` arguments for a run of `config` into `out`, then `more`.
    pub fn train_args(&self, config: &Path, out: &Path, more: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            "--config",
            config.to_str().unwrap(),
            "--data",
            &self.data,
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(more.iter().map(|s| s.to_string()));
        args
    }
}

impl Default for RunInputs {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a fresh ResNet-18 classifier of three classes at 32 px to `path` with `backbone`
/// (the `backbone` binary: `init`).
pub fn checkpoint(backbone: &Path, path: &Path) {
    run_ok(
        backbone,
        &[
            "init",
            "--arch",
            "resnet18",
            "--num-classes",
            "3",
            "--input-size",
            "32",
            path.to_str().unwrap(),
        ],
    );
}

/// A safetensors file split into its header (as JSON) and its tensor bytes.
pub struct SafetensorsFile {
    pub header: serde_json::Map<String, serde_json::Value>,
    pub data: Vec<u8>,
}

impl SafetensorsFile {
    pub fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        SafetensorsFile {
            header,
            data: bytes[8 + n..].to_vec(),
        }
    }

    /// The `__metadata__` strings.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.header["__metadata__"].clone()).unwrap()
    }

    /// Sets one `__metadata__` value (a string, as the format requires).
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        self.header["__metadata__"][key] = serde_json::Value::String(value.to_string());
    }

    /// The header serialised as it would be written.
    pub fn header_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.header).unwrap()
    }

    /// Writes the header and data, with the header length in the first 8 bytes.
    pub fn write(&self, path: &Path) {
        let header = self.header_bytes();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&self.data);
        std::fs::write(path, bytes).unwrap();
    }
}
