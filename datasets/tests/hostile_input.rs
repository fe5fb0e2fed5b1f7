//! Issue 8's classes of hostile input, each against the release-shaped binary: bombs are
//! refused from their headers with bounded memory, truncated images are named, datasets that
//! lie (duplicates, NUL ids, absurd polygons) are reported, FIFOs never block.

mod common;

use common::{datasets_bin, encoded_image, grey_png_bomb, run_measured, Outcome};
use datasets::voc::annotation_xml;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// No bomb may cost more than this (they would cost 400 MB to 2.5 GB decoded).
const MEMORY_BOUND_MIB: f64 = 120.0;
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A VOC2007 folder whose `train` lists `ids` (as given, so duplicates and odd bytes stay);
/// `images` are written as `JPEGImages/<id>.jpg` with a one-object annotation of `size`.
fn write_voc(root: &Path, list: &str, images: &[(&str, &[u8], (u32, u32))]) -> PathBuf {
    let year = root.join("VOCdevkit/VOC2007");
    for dir in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(year.join(dir)).unwrap();
    }
    std::fs::write(year.join("ImageSets/Main/train.txt"), list).unwrap();
    for (id, bytes, (w, h)) in images {
        std::fs::write(year.join(format!("JPEGImages/{id}.jpg")), bytes).unwrap();
        let xml = annotation_xml(
            "VOC2007",
            &format!("{id}.jpg"),
            *w,
            *h,
            &[("dog".into(), [0, 0, 8, 8], false)],
        );
        std::fs::write(year.join(format!("Annotations/{id}.xml")), xml).unwrap();
    }
    root.join("VOCdevkit")
}

fn check(spec: String) -> Outcome {
    run_measured(datasets_bin().args(["check", &spec]), TIME_LIMIT)
}

fn bench(spec: String, skip_bad: bool) -> Outcome {
    let mut command = datasets_bin();
    command.args([
        "bench",
        "--task",
        "detection",
        "--split",
        "train",
        "--workers",
        "1",
        "--batch",
        "1",
        // Enough batches for a whole epoch of every dataset here: a bad entry is always met.
        "--batches",
        "3",
        "--warmup",
        "0",
        "--json",
        "--data",
        &spec,
    ]);
    if skip_bad {
        command.arg("--skip-bad");
    }
    run_measured(&mut command, TIME_LIMIT)
}

fn assert_refused(outcome: &Outcome, expected: &str) {
    assert_eq!(outcome.code, Some(2), "{outcome:#?}");
    assert!(
        outcome.stderr.contains(expected),
        "{expected}\nnot in {outcome:#?}"
    );
    assert!(!outcome.panicked(), "{outcome:#?}");
    assert!(
        outcome.peak_rss_mib < MEMORY_BOUND_MIB,
        "peak memory {:.0} MiB: {outcome:#?}",
        outcome.peak_rss_mib
    );
}

fn skipped(outcome: &Outcome) -> u64 {
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    let report: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    report["skipped"].as_u64().unwrap()
}

fn small_jpeg() -> Vec<u8> {
    encoded_image(32, 24, image::ImageFormat::Jpeg)
}

#[test]
fn a_png_bomb_is_too_large_before_it_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = grey_png_bomb(20_000);
    assert!(bomb.len() < 2 << 20, "{} bytes on disk", bomb.len());
    // The annotation agrees with the header: only the pixel limit stands in the way.
    let good = small_jpeg();
    let voc = write_voc(
        dir.path(),
        "000001\n000002\n",
        &[
            ("000001", &bomb, (20_000, 20_000)),
            ("000002", &good, (32, 24)),
        ],
    );
    let spec = format!("voc:{}", voc.display());
    let too_large = "000001.jpg: the image is too large: 20000x20000 = 400000000 pixels, more than the limit of 67108864 (set TRICKS_MAX_IMAGE_PIXELS to change it)";
    assert_refused(&check(spec.clone()), too_large);
    // The training loader refuses it the same way, and --skip-bad counts it.
    assert_refused(&bench(spec.clone(), false), too_large);
    let skipping = bench(spec, true);
    assert_eq!(skipped(&skipping), 1);
    assert!(skipping.peak_rss_mib < MEMORY_BOUND_MIB, "{skipping:#?}");
}

#[test]
fn an_ade20k_mask_bomb_is_too_large_before_it_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ADEChallengeData2016");
    std::fs::create_dir_all(root.join("images/training")).unwrap();
    std::fs::create_dir_all(root.join("annotations/training")).unwrap();
    std::fs::write(root.join("images/training/a.jpg"), small_jpeg()).unwrap();
    std::fs::write(
        root.join("annotations/training/a.png"),
        grey_png_bomb(20_000),
    )
    .unwrap();
    assert_refused(
        &check(format!("ade20k:{}", root.display())),
        "a.png: the mask is too large: 20000x20000 = 400000000 pixels",
    );
}

/// IDX bytes gzip-compressed, the data being `zeros` zero bytes (streamed, not held).
fn idx_gz_zeros(dims: &[u32], zeros: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 8, dims.len() as u8]).unwrap();
    for d in dims {
        gz.write_all(&d.to_be_bytes()).unwrap();
    }
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        gz.write_all(&block[..n]).unwrap();
        left -= n;
    }
    gz.finish().unwrap()
}

fn synth_from(fashion_mnist: &Path, out: &Path) -> Outcome {
    run_measured(
        datasets_bin().args([
            "synth",
            "--source",
            "fashion-mnist",
            "--fashion-mnist",
            &fashion_mnist.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--train",
            "1",
            "--val",
            "1",
            "--test",
            "0",
            "--size",
            "32",
        ]),
        TIME_LIMIT,
    )
}

#[test]
fn an_idx_gzip_bomb_is_read_no_further_than_its_header_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fashion-mnist");
    common::write_fashion_mnist(&data, 10);
    let images = data.join("train-images-idx3-ubyte.gz");
    // 10 images declared, 400 MB of zeros behind them (a few hundred KB compressed).
    std::fs::write(&images, idx_gz_zeros(&[10, 28, 28], 400 << 20)).unwrap();
    assert!(std::fs::metadata(&images).unwrap().len() < 2 << 20);
    assert_refused(
        &synth_from(&data, &dir.path().join("out")),
        "train-images-idx3-ubyte.gz: IDX data is longer than the 7840 bytes the header's dimensions [10, 28, 28] need",
    );
    // A header declaring an absurd size is refused before anything is read.
    std::fs::write(&images, idx_gz_zeros(&[60_000, 20_000, 20_000], 100)).unwrap();
    assert_refused(
        &synth_from(&data, &dir.path().join("out")),
        "the IDX header's dimensions [60000, 20000, 20000] call for more than 1073741824 bytes of data",
    );
}

#[test]
fn a_65000_pixel_wide_jpeg_is_too_large_not_corrupt() {
    let mut jpeg = small_jpeg();
    // Patch the frame header (SOF0: FF C0, length, precision, height, width).
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(dir.path(), "000001\n", &[("000001", &jpeg, (65000, 65000))]);
    let outcome = check(format!("voc:{}", voc.display()));
    assert_refused(
        &outcome,
        "000001.jpg: the image is too large: 65000x65000 = 4225000000 pixels",
    );
    assert!(!outcome.stderr.contains("corrupt"), "{}", outcome.stderr);
}

#[test]
fn truncated_jpegs_and_pngs_are_named_everywhere() {
    let jpeg = encoded_image(256, 192, image::ImageFormat::Jpeg);
    assert!(jpeg.len() > 4000);
    let png = encoded_image(32, 24, image::ImageFormat::Png);
    let without_iend = &png[..png.len() - 12];
    let good = small_jpeg();
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(
        dir.path(),
        "000001\n000002\n000003\n",
        &[
            ("000001", &jpeg[..2000], (256, 192)),
            ("000002", without_iend, (32, 24)),
            ("000003", &good, (32, 24)),
        ],
    );
    let spec = format!("voc:{}", voc.display());
    let outcome = check(spec.clone());
    let cut_jpeg = "000001.jpg: corrupt or truncated JPEG image (truncated: the data ends inside its compressed data, before the end-of-image marker)";
    let cut_png =
        "000002.jpg: corrupt or truncated PNG image (truncated: the data ends before its IEND chunk)";
    assert_refused(&outcome, cut_jpeg);
    assert!(outcome.stderr.contains(cut_png), "{}", outcome.stderr);
    assert!(outcome.stdout.contains("2 problems"), "{}", outcome.stdout);
    // The loader stops on one of them, or skips and counts both.
    assert_refused(&bench(spec.clone(), false), "truncated: the data ends");
    assert_eq!(skipped(&bench(spec, true)), 2);
}

#[test]
fn duplicate_coco_ids_and_absurd_polygons_are_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), small_jpeg()).unwrap();
    let json = serde_json::json!({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 32, "height": 24},
            {"id": 1, "file_name": "a.jpg", "width": 32, "height": 24},
            {"id": 2, "file_name": "a.jpg", "width": 32, "height": 24},
        ],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 6, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[1, 1, 1e9, 1, 1, -1e9]]},
        ],
        "categories": [{"id": 1, "name": "dog"}],
    });
    let path = dir.path().join("instances_train.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let spec = format!("coco:{}:{}", path.display(), dir.path().display());
    let outcome = check(spec.clone());
    let j = path.display();
    for expected in [
        format!("{j}: image id 1 is defined twice"),
        format!("{j}: annotation id 5 is defined twice"),
        format!("{j}: annotation 6 (image 2): polygon point (1000000000, 1) lies outside the 32x24 image"),
    ] {
        assert_refused(&outcome, &expected);
    }
    // The loader refuses such a file outright: which image is meant cannot be known.
    assert_refused(
        &bench(spec, false),
        &format!("{j}: image id 1 is defined twice"),
    );
}

#[test]
fn a_voc_id_listed_twice_or_holding_a_nul_byte_is_named_with_its_line() {
    let good = small_jpeg();
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(
        dir.path(),
        "000001\n000002\n000001\n000\u{0}3\n",
        &[("000001", &good, (32, 24)), ("000002", &good, (32, 24))],
    );
    let list = voc.join("VOC2007/ImageSets/Main/train.txt");
    let spec = format!("voc:{}", voc.display());
    let outcome = check(spec.clone());
    let twice = format!(
        "{}: line 3: id \"000001\" is listed twice (first on line 1)",
        list.display()
    );
    assert_refused(&outcome, &twice);
    assert_refused(
        &outcome,
        &format!(
            "{}: line 4: id \"000\\03\" contains a NUL byte",
            list.display()
        ),
    );
    assert_refused(&bench(spec, false), &twice);
}

#[test]
fn a_fifo_given_as_an_image_is_refused_without_blocking() {
    let good = small_jpeg();
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(
        dir.path(),
        "000001\n000002\n",
        &[("000002", &good, (32, 24))],
    );
    let fifo = voc.join("VOC2007/JPEGImages/000001.jpg");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    std::fs::write(
        voc.join("VOC2007/Annotations/000001.xml"),
        annotation_xml("VOC2007", "000001.jpg", 32, 24, &[]),
    )
    .unwrap();
    let spec = format!("voc:{}", voc.display());
    let refused = format!(
        "{}: is a FIFO (named pipe), not a regular file (expected a JPEG or PNG image)",
        fifo.display()
    );
    let outcome = check(spec.clone());
    assert!(!outcome.timed_out);
    assert_refused(&outcome, &refused);
    assert_refused(&bench(spec.clone(), false), &refused);
    assert_eq!(skipped(&bench(spec, true)), 1);
}

#[test]
fn the_pixel_limit_is_set_by_an_environment_variable() {
    let good = small_jpeg();
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(dir.path(), "000001\n", &[("000001", &good, (32, 24))]);
    let spec = format!("voc:{}", voc.display());
    assert_eq!(check(spec.clone()).code, Some(0));
    let limited = run_measured(
        datasets_bin()
            .env("TRICKS_MAX_IMAGE_PIXELS", "700")
            .args(["check", &spec]),
        TIME_LIMIT,
    );
    assert_refused(
        &limited,
        "000001.jpg: the image is too large: 32x24 = 768 pixels, more than the limit of 700",
    );
    let nonsense = run_measured(
        datasets_bin()
            .env("TRICKS_MAX_IMAGE_PIXELS", "lots")
            .args(["check", &spec]),
        TIME_LIMIT,
    );
    assert_eq!(nonsense.code, Some(2));
    assert_eq!(
        nonsense.stderr.trim(),
        "error: TRICKS_MAX_IMAGE_PIXELS: \"lots\" is not a positive whole number of pixels"
    );
}
