//! The classification data path end to end on tiny files written here: Fashion-MNIST IDX
//! files (good and malformed), an ImageNet-layout folder (with a corrupt image, an empty
//! class, an unknown validation class), and the loader over them.

use datasets::classify::{
    classification_loader, open_images, ClassificationBatch, ClassificationDataset,
    ClassificationLoader, ClassificationSplit, ClassificationTransform, EvalTransform, ImageSource,
    Normalization, TrainTransform,
};
use datasets::fashion_mnist::{FashionMnist, FashionMnistSplit, CLASS_NAMES};
use datasets::image_folder::ImageFolder;
use datasets::loader::LoaderConfig;
use datasets::spec::DatasetSpec;
use flate2::write::GzEncoder;
use image::RgbImage;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "datasets-classification-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

/// `n` 4x3 grey images whose pixels are all `i`, labels `i % 10`.
fn write_fashion(dir: &Path, prefix: &str, n: u32) {
    let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8; 12]).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    write_gz(
        &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        &idx_bytes(&[n, 3, 4], &pixels),
    );
    write_gz(
        &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        &idx_bytes(&[n], &labels),
    );
}

#[test]
fn fashion_mnist_reads_images_and_labels() {
    let tmp = TempDir::new("fashion-good");
    write_fashion(&tmp.0, "train", 12);
    let data = FashionMnist::load(&tmp.0, FashionMnistSplit::Train).unwrap();
    assert_eq!(data.len(), 12);
    assert_eq!(data.image_size(), (3, 4));
    assert_eq!(data.label(11), 1);
    let rgb = data.rgb(7);
    assert_eq!((rgb.width(), rgb.height()), (4, 3));
    assert_eq!(rgb.get_pixel(3, 2).0, [7, 7, 7]);
    assert_eq!(CLASS_NAMES[9], "Ankle boot");
}

#[test]
fn fashion_mnist_bad_magic_names_the_file() {
    let tmp = TempDir::new("fashion-magic");
    write_fashion(&tmp.0, "t10k", 3);
    let images = tmp.0.join("t10k-images-idx3-ubyte.gz");
    write_gz(&images, b"\x89PNG not an idx file");
    let err = FashionMnist::load(&tmp.0, FashionMnistSplit::Test).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not an IDX file (bad magic number)", images.display())
    );
}

#[test]
fn fashion_mnist_truncated_files_name_the_file() {
    let tmp = TempDir::new("fashion-truncated");
    write_fashion(&tmp.0, "train", 3);
    let images = tmp.0.join("train-images-idx3-ubyte.gz");
    // Truncated IDX payload inside a good gzip stream.
    write_gz(&images, &idx_bytes(&[3, 3, 4], &[0; 20]));
    let err = FashionMnist::load(&tmp.0, FashionMnistSplit::Train).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: IDX data has 20 bytes", images.display())),
        "{err}"
    );
    // A gzip stream cut short.
    let whole = std::fs::read(&images).unwrap();
    std::fs::write(&images, &whole[..whole.len() / 2]).unwrap();
    let err = FashionMnist::load(&tmp.0, FashionMnistSplit::Train).unwrap_err();
    assert!(
        err.to_string().starts_with(&images.display().to_string()),
        "{err}"
    );
}

#[test]
fn fashion_mnist_label_count_mismatch_is_an_error() {
    let tmp = TempDir::new("fashion-count");
    write_fashion(&tmp.0, "train", 3);
    let labels = tmp.0.join("train-labels-idx1-ubyte.gz");
    write_gz(&labels, &idx_bytes(&[2], &[0, 1]));
    let err = FashionMnist::load(&tmp.0, FashionMnistSplit::Train).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: has 2 labels but", labels.display())),
        "{err}"
    );
}

fn write_image(path: &Path, w: u32, h: u32, seed: u32) {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 9 + seed * 31) as u8,
            (y * 7 + seed * 17) as u8,
            (x + y + seed) as u8,
        ])
    });
    img.save(path).unwrap();
}

/// ROOT/{train,val}/{cat,dog,emu}: 4 train images per class (PNG and JPEG), 1 val each.
fn write_folder(root: &Path) {
    for (c, class) in ["cat", "dog", "emu"].iter().enumerate() {
        let train = root.join("train").join(class);
        let val = root.join("val").join(class);
        std::fs::create_dir_all(&train).unwrap();
        std::fs::create_dir_all(&val).unwrap();
        for i in 0..4 {
            let ext = if i % 2 == 0 { "png" } else { "JPG" };
            write_image(
                &train.join(format!("{i}.{ext}")),
                40 + i * 3,
                30,
                (c * 4) as u32 + i,
            );
        }
        std::fs::write(train.join("notes.txt"), "not an image").unwrap();
        write_image(&val.join("0.png"), 36, 36, c as u32);
    }
}

fn train_loader(root: &Path, config: LoaderConfig) -> ClassificationLoader {
    let source = open_images(
        &DatasetSpec::ImageNet {
            root: root.to_path_buf(),
        },
        ClassificationSplit::Train,
    )
    .unwrap();
    let dataset = ClassificationDataset::new(
        source,
        ClassificationTransform::Train(TrainTransform::paper(16)),
    );
    classification_loader(dataset, config).unwrap()
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 5,
        workers,
        prefetch: 2,
        shuffle: true,
        seed: 42,
        ..LoaderConfig::default()
    }
}

fn epoch(loader: &ClassificationLoader, epoch: u64, start: usize) -> Vec<ClassificationBatch> {
    loader
        .epoch(epoch, start)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn image_folder_classes_labels_and_val_split() {
    let tmp = TempDir::new("folder-layout");
    write_folder(&tmp.0);
    let train = ImageFolder::imagenet(&tmp.0, "train").unwrap();
    assert_eq!(train.classes(), ["cat", "dog", "emu"]);
    assert_eq!(train.len(), 12, "notes.txt is ignored");
    assert_eq!(train.label(4), 1);
    assert!(train.path(5).ends_with("dog/1.JPG"));
    let spec: DatasetSpec = format!("imagenet:{}", tmp.0.display()).parse().unwrap();
    let val = open_images(&spec, ClassificationSplit::Val).unwrap();
    assert_eq!(val.len(), 3);
    assert_eq!(val.label(2), 2);
    assert_eq!(val.class_names(), ["cat", "dog", "emu"]);
}

#[test]
fn unknown_val_class_and_empty_class_are_errors() {
    let tmp = TempDir::new("folder-errors");
    write_folder(&tmp.0);
    let stray = tmp.0.join("val").join("yak");
    std::fs::create_dir_all(&stray).unwrap();
    let err = ImageFolder::imagenet(&tmp.0, "val").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is not one of the training classes (no folder of that name in train)",
            stray.display()
        )
    );
    let empty = tmp.0.join("train").join("zebra");
    std::fs::create_dir_all(&empty).unwrap();
    let err = ImageFolder::imagenet(&tmp.0, "train").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: class folder has no images (.jpg, .jpeg or .png)",
            empty.display()
        )
    );
}

#[test]
fn corrupt_image_is_named_or_skipped_and_counted() {
    let tmp = TempDir::new("folder-corrupt");
    write_folder(&tmp.0);
    let corrupt = tmp.0.join("train/dog/2.png");
    let bytes = std::fs::read(&corrupt).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();

    let results: Vec<_> = train_loader(&tmp.0, config(2)).epoch(0, 0).collect();
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: corrupt or truncated PNG image",
            corrupt.display()
        )),
        "{err}"
    );

    let loader = train_loader(
        &tmp.0,
        LoaderConfig {
            skip_bad: true,
            ..config(2)
        },
    );
    let mut batches = loader.epoch(0, 0);
    let total: usize = (&mut batches).map(|b| b.unwrap().len()).sum();
    assert_eq!(total, 11);
    assert_eq!(batches.skipped_count(), 1);
    drop(batches);
    let skipped = loader.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, corrupt);
    assert_eq!(skipped[0].index, 6);
}

#[test]
fn batches_are_deterministic_and_independent_of_workers() {
    let tmp = TempDir::new("folder-determinism");
    write_folder(&tmp.0);
    let reference = epoch(&train_loader(&tmp.0, config(0)), 1, 0);
    assert_eq!(reference.len(), 3);
    assert_eq!(reference[0].images.len(), 5 * 16 * 16 * 3);
    assert_eq!(reference[0].size, (16, 16));
    assert_eq!(reference[2].len(), 2);
    for workers in [1, 3] {
        assert_eq!(
            epoch(&train_loader(&tmp.0, config(workers)), 1, 0),
            reference
        );
    }
    // Another epoch: another order and other augmentations of the same images.
    let next = epoch(&train_loader(&tmp.0, config(2)), 2, 0);
    assert_ne!(next[0].indices, reference[0].indices);
    let image_of = |batches: &[ClassificationBatch], index: usize| {
        batches.iter().find_map(|b| {
            let k = b.indices.iter().position(|&i| i == index)?;
            Some((b.images[k * 768..(k + 1) * 768].to_vec(), b.lighting[k]))
        })
    };
    assert_ne!(image_of(&next, 3), image_of(&reference, 3));
    // Labels travel with their images.
    for b in &reference {
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(b.labels[k], (i / 4) as i64);
        }
    }
}

#[test]
fn resume_and_sharding_on_real_images() {
    let tmp = TempDir::new("folder-resume");
    write_folder(&tmp.0);
    let loader = train_loader(&tmp.0, config(2));
    let full = epoch(&loader, 0, 0);
    assert_eq!(epoch(&loader, 0, 1), full[1..]);
    let mut seen: Vec<usize> = Vec::new();
    for rank in 0..2 {
        let shard = train_loader(
            &tmp.0,
            LoaderConfig {
                rank,
                world_size: 2,
                ..config(1)
            },
        );
        seen.extend(epoch(&shard, 0, 0).iter().flat_map(|b| b.indices.clone()));
    }
    seen.sort();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
}

#[test]
fn eval_transform_over_fashion_mnist() {
    let tmp = TempDir::new("fashion-eval");
    write_fashion(&tmp.0, "t10k", 7);
    let source = ImageSource::FashionMnist(Arc::new(
        FashionMnist::load(&tmp.0, FashionMnistSplit::Test).unwrap(),
    ));
    let eval = EvalTransform::for_input_size(8, Normalization::PAPER);
    let dataset = ClassificationDataset::new(source, ClassificationTransform::Eval(eval));
    let loader = classification_loader(dataset, config(2)).unwrap();
    let batches = epoch(&loader, 0, 0);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].images.len(), 2 * 8 * 8 * 3);
    // Constant grey images stay constant through resize and crop; no lighting in eval.
    let b = &batches[0];
    for (k, &i) in b.indices.iter().enumerate() {
        assert!(b.images[k * 192..(k + 1) * 192]
            .iter()
            .all(|&v| v == i as u8));
        assert_eq!(b.lighting[k], [0.0; 3]);
        assert_eq!(b.labels[k], (i % 10) as i64);
    }
}

#[test]
fn dropping_the_epoch_early_does_not_hang() {
    let tmp = TempDir::new("folder-drop");
    write_folder(&tmp.0);
    let loader = train_loader(
        &tmp.0,
        LoaderConfig {
            batch_size: 1,
            workers: 4,
            prefetch: 8,
            ..config(4)
        },
    );
    for _ in 0..3 {
        let mut batches = loader.epoch(0, 0);
        assert!(batches.next().unwrap().is_ok());
    }
}

#[test]
fn wrong_spec_kind_is_a_clear_error() {
    let spec: DatasetSpec = "voc:/data/VOCdevkit".parse().unwrap();
    let err = open_images(&spec, ClassificationSplit::Train).unwrap_err();
    assert_eq!(
        err.to_string(),
        "voc:/data/VOCdevkit: is not a classification dataset (expected fashion-mnist:DIR or imagenet:ROOT)"
    );
}

#[test]
fn real_fashion_mnist_test_split_when_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("t10k-images-idx3-ubyte.gz").exists() {
        eprintln!("Fashion-MNIST is not installed; skipped");
        return;
    }
    let spec: DatasetSpec = format!("fashion-mnist:{}", dir.display()).parse().unwrap();
    let source = open_images(&spec, ClassificationSplit::Val).unwrap();
    assert_eq!(source.len(), 10_000);
    assert_eq!(source.class_names()[0], "T-shirt/top");
    let mut per_class = [0; 10];
    for i in 0..source.len() {
        per_class[source.label(i)] += 1;
    }
    assert_eq!(per_class, [1000; 10]);
    let img = source.load(0).unwrap();
    assert_eq!((img.width(), img.height()), (28, 28));
}

#[cfg(unix)]
#[test]
fn linked_class_folders_count() {
    let tmp = TempDir::new("folder-links");
    write_folder(&tmp.0);
    std::os::unix::fs::symlink(tmp.0.join("train/emu"), tmp.0.join("train/gnu")).unwrap();
    let train = ImageFolder::imagenet(&tmp.0, "train").unwrap();
    assert_eq!(train.classes(), ["cat", "dog", "emu", "gnu"]);
    assert_eq!(train.len(), 16);
}
