//! The readers on the committed fixtures (tests/fixtures, made by make_fixtures.py): good
//! trees read as the standard tools read them, planted defects named exactly.

use datasets::ade20k::Ade20kDataset;
use datasets::check::check;
use datasets::coco::CocoDataset;
use datasets::detection_data::{detection_loader, DetectionDataset, DetectionSource};
use datasets::detection_transforms::{DetectionTransform, ShorterSideResize};
use datasets::loader::LoaderConfig;
use datasets::records::IGNORE_LABEL;
use datasets::segmentation_data::{
    segmentation_loader, SegmentationAugment, SegmentationDataset, SegmentationSource,
};
use datasets::segmentation_transforms::SegmentationEvalTransform;
use datasets::spec::DatasetSpec;
use datasets::voc::{VocDataset, VocTask};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A spec with `F` standing for the fixtures folder.
fn spec(s: &str) -> DatasetSpec {
    DatasetSpec::parse(&s.replace('F', &fixtures().display().to_string())).unwrap()
}

#[test]
fn voc_years_combine_and_boxes_become_zero_based() {
    let devkit = fixtures().join("voc_good/VOCdevkit");
    let trainval = VocDataset::open(&devkit, "trainval", VocTask::Detection).unwrap();
    let ids: Vec<&str> = trainval.entries().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["000001", "000002", "2012_000001"],
        "VOC2007 then VOC2012"
    );
    assert_eq!(trainval.classes().len(), 20);
    let record = trainval.detection_record(0).unwrap();
    assert_eq!((record.width, record.height), (32, 24));
    // <xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax>: 1-based inclusive.
    assert_eq!(record.objects[0].bbox, [0.0, 1.0, 10.0, 12.0]);
    assert_eq!(record.objects[0].class, 11); // dog
    assert!(!record.objects[0].difficult);
    assert!(record.objects[1].difficult);
    assert_eq!(record.objects[1].bbox, [4.0, 4.0, 32.0, 24.0]);

    // Only VOC2007 has a test list: the test split comes from it alone.
    let test = VocDataset::open(&devkit, "test", VocTask::Detection).unwrap();
    assert_eq!(test.len(), 1);
    // One VOC20xx folder works as a root too.
    let only_2012 =
        VocDataset::open(&devkit.join("VOC2012"), "trainval", VocTask::Detection).unwrap();
    assert_eq!(only_2012.len(), 1);
    // An explicit combination: voc:A+B.
    let DatasetSpec::Voc { roots } =
        spec("voc:F/voc_good/VOCdevkit/VOC2012+F/voc_good/VOCdevkit/VOC2007")
    else {
        panic!()
    };
    let combined =
        datasets::detection_data::open_voc(&roots, "trainval", VocTask::Detection).unwrap();
    assert_eq!(combined.entries()[0].id, "2012_000001");
}

#[test]
fn voc_masks_are_raw_palette_indices() {
    let devkit = fixtures().join("voc_good/VOCdevkit");
    let seg = VocDataset::open(&devkit, "trainval", VocTask::Segmentation).unwrap();
    assert_eq!(seg.len(), 2);
    assert_eq!(seg.segmentation_classes().len(), 21);
    let mask = seg.read_label_map(0).unwrap();
    assert_eq!((mask.width, mask.height), (32, 24));
    let at = |x: usize, y: usize| mask.labels[y * 32 + x];
    assert_eq!(at(0, 0), 0);
    assert_eq!(at(0, 5), 12);
    assert_eq!(at(20, 20), 15);
    assert_eq!(at(3, 20), IGNORE_LABEL);
}

#[test]
fn missing_split_names_the_list_file() {
    let devkit = fixtures().join("voc_good/VOCdevkit");
    let err = VocDataset::open(&devkit, "val", VocTask::Detection).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}/VOC2007/ImageSets/Main/val.txt: no \"val\" split: this list file does not exist",
            devkit.display()
        )
    );
}

fn voc_bad_problems() -> Vec<String> {
    let root = fixtures().join("voc_bad/VOCdevkit/VOC2007");
    let r = root.display();
    vec![
        format!("{r}/JPEGImages/000003.jpg: No such file or directory (os error 2)"),
        format!("{r}/Annotations/000004.xml: malformed XML (unknown token at 2:18)"),
        format!("{r}/Annotations/000005.xml: object 1: unknown class \"dgo\" (not one of the 20 classes)"),
        format!("{r}/Annotations/000005.xml: object 2 (cat): box (20, 10, 40, 20) lies outside the 32x24 image (VOC boxes are 1-based: 1..=32 x 1..=24)"),
        format!("{r}/Annotations/000005.xml: object 3 (cow): box (9, 9, 3, 12) is empty (max below min)"),
        format!("{r}/ImageSets/Main/train.txt: line 6: id \"../../../../etc/passwd\" would escape the dataset folder (ids may not contain path separators or \"..\")"),
        format!("{r}/SegmentationClass/000005.png: value 37 at pixel (0, 0) is neither a class (0..=20) nor 255 (boundary)"),
    ]
}

#[test]
fn check_names_every_planted_voc_defect() {
    let report = check(&spec("voc:F/voc_bad/VOCdevkit"));
    let corrupt = format!(
        "{}/voc_bad/VOCdevkit/VOC2007/JPEGImages/000002.jpg: corrupt or truncated JPEG image (",
        fixtures().display()
    );
    assert!(
        report.problems.iter().any(|p| p.starts_with(&corrupt)),
        "{:#?}",
        report.problems
    );
    for expected in voc_bad_problems() {
        assert!(
            report.problems.contains(&expected),
            "missing {expected}\nin {:#?}",
            report.problems
        );
    }
    assert_eq!(report.problems.len(), 8, "{:#?}", report.problems);
    assert!(report.problems.iter().all(|p| !p.contains('\n')));
    // The good objects are still counted: a dog in 000001, a cat in 000002 and 000003.
    let count = |name: &str| {
        report
            .class_counts
            .iter()
            .find(|(c, _)| c == name)
            .unwrap()
            .1
    };
    assert_eq!((count("dog"), count("cat")), (1, 2));
}

#[test]
fn the_detection_loader_stops_on_the_same_message_or_skips_and_counts() {
    let source = DetectionSource::open(&spec("voc:F/voc_bad/VOCdevkit"), "train").unwrap();
    let dataset = DetectionDataset {
        source,
        transform: DetectionTransform::eval(ShorterSideResize::GLUONCV_VOC),
    };
    let config = LoaderConfig {
        batch_size: 1,
        workers: 2,
        prefetch: 2,
        ..LoaderConfig::default()
    };
    let loader = detection_loader(dataset, config.clone()).unwrap();
    let results: Vec<_> = loader.epoch(0, 0).collect();
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("000002.jpg: corrupt or truncated JPEG image"),
        "{err}"
    );

    let source = DetectionSource::open(&spec("voc:F/voc_bad/VOCdevkit"), "train").unwrap();
    let dataset = DetectionDataset {
        source,
        transform: DetectionTransform::eval(ShorterSideResize::GLUONCV_VOC),
    };
    let loader = detection_loader(
        dataset,
        LoaderConfig {
            skip_bad: true,
            ..config
        },
    )
    .unwrap();
    let mut epoch = loader.epoch(0, 0);
    let batches: Vec<_> = (&mut epoch).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 1, "only 000001 is good");
    assert_eq!(epoch.skipped_count(), 5);
    let batch = &batches[0];
    // 32x24 -> shorter side 600: 800x600, padded to 800x608.
    assert_eq!(batch.image_sizes, vec![(600, 800)]);
    assert_eq!((batch.height, batch.width), (608, 800));
    assert_eq!(batch.boxes[0], vec![[0.0, 0.0, 250.0, 250.0]]);
    assert_eq!(batch.labels[0], vec![12]);
    let skipped: Vec<String> = loader.skipped().into_iter().map(|s| s.error).collect();
    for expected in &voc_bad_problems()[..3] {
        assert!(skipped.contains(expected), "{expected} not in {skipped:#?}");
    }
}

#[test]
fn ade20k_values_shift_to_train_ids_and_zero_is_ignored() {
    let root = fixtures().join("ade20k_good/ADEChallengeData2016");
    let train = Ade20kDataset::open(&root, "train").unwrap();
    assert_eq!(train.classes().len(), 150);
    assert_eq!(train.len(), 1);
    let mask = train.read_label_map(0).unwrap();
    assert_eq!(mask.labels[0], 0, "value 1 (wall) is train id 0");
    assert_eq!(mask.labels[20], 149, "value 150 (flag) is train id 149");
    assert_eq!(
        mask.labels[23 * 32 + 31],
        IGNORE_LABEL,
        "value 0 is ignored"
    );
    assert_eq!(Ade20kDataset::open(&root, "validation").unwrap().len(), 1);
}

#[test]
fn check_names_every_planted_ade20k_defect() {
    let report = check(&spec("ade20k:F/ade20k_bad/ADEChallengeData2016"));
    let r = fixtures().join("ade20k_bad/ADEChallengeData2016");
    let r = r.display();
    assert_eq!(
        report.problems,
        vec![
            format!("{r}/annotations/training/ADE_train_00000001.png: value 200 at pixel (0, 0) is not a class (0 = unlabelled, 1..=150)"),
            format!("{r}/images/training/ADE_train_00000002.jpg: No such file or directory (os error 2)"),
            format!("{r}/annotations/training/ADE_train_00000003.png: the mask is 10x10 but its image is 32x24"),
        ]
    );
    // The segmentation loader stops on the first of them.
    let source =
        SegmentationSource::open(&spec("ade20k:F/ade20k_bad/ADEChallengeData2016"), "train")
            .unwrap();
    let dataset = SegmentationDataset {
        source,
        augment: SegmentationAugment::Eval(SegmentationEvalTransform::Full),
    };
    let loader = segmentation_loader(
        dataset,
        LoaderConfig {
            batch_size: 1,
            workers: 1,
            prefetch: 1,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let err = loader.epoch(0, 0).next().unwrap().unwrap_err();
    assert_eq!(err.to_string(), report.problems[0]);
}

#[test]
fn coco_reads_boxes_masks_and_crowds_with_contiguous_classes() {
    let coco = CocoDataset::open(
        &fixtures().join("coco/annotations/instances_val.json"),
        None,
    )
    .unwrap();
    // Category ids 1 and 5 become classes 0 and 1, in id order.
    assert_eq!(coco.classes(), ["person", "zebra"]);
    assert_eq!(coco.category_ids(), [1, 5]);
    assert!(coco.images_dir().ends_with("coco/images/val"));
    // Images in id order: 3 (b.jpg), then 7 (a.jpg).
    assert_eq!(coco.image_id(0), 3);
    let b = coco.detection_record(0).unwrap();
    assert_eq!(b.objects[0].bbox, [2.0, 0.0, 6.0, 3.0]);
    let masks = coco.instance_masks(0).unwrap();
    // The RLE runs are column-major: columns 2..=5, rows 0..=2.
    let on: Vec<(usize, usize)> = (0..30 * 20)
        .filter(|&i| masks[0].pixels[i] == 1)
        .map(|i| (i % 20, i / 20))
        .collect();
    assert_eq!(on.len(), 12);
    assert!(
        on.iter().all(|&(x, y)| (2..=5).contains(&x) && y <= 2),
        "{on:?}"
    );

    let a = coco.detection_record(1).unwrap();
    assert_eq!(a.objects[0].bbox, [2.0, 3.0, 12.0, 8.0]);
    assert_eq!(a.objects[0].class, 1);
    assert!(a.objects[1].crowd);
    let masks = coco.instance_masks(1).unwrap();
    // The polygon (2,3)-(12,8) rasterised as pycocotools does.
    let area: usize = masks[0].pixels.iter().map(|&p| p as usize).sum();
    assert!((45..=66).contains(&area), "{area}");
    assert!(masks[1].crowd);
}

#[test]
fn check_names_every_planted_coco_defect() {
    let report = check(&spec(
        "coco:F/coco/annotations/instances_bad.json:F/coco/images/val",
    ));
    let json = fixtures().join("coco/annotations/instances_bad.json");
    let j = json.display();
    let images = fixtures().join("coco/images/val");
    let expected = [
        format!("{j}: annotation 4 refers to image id 99, which the file does not define"),
        format!("{j}: annotation 3 (image 3): empty box [2, 3, 0, 5] (width and height must be positive)"),
        format!("{j}: annotation 1 (image 7): box [20, 3, 30, 5] lies outside the 32x24 image"),
        format!("{j}: annotation 2 (image 7): unknown category id 4"),
        format!("{j}: image 9: file name \"../../escape.jpg\" would escape the image folder (it must be a relative path without \"..\")"),
        format!("{}/missing.jpg: No such file or directory (os error 2)", images.display()),
        format!("{j}: annotation 5 (image 12): its RLE runs cover 10 pixels, the image has 600"),
    ];
    assert_eq!(report.problems, expected);

    let cut = check(&spec("coco:F/coco/annotations/instances_cut.json"));
    assert_eq!(cut.problems.len(), 1);
    assert!(
        cut.problems[0].starts_with(&format!(
            "{}: malformed COCO JSON (",
            fixtures()
                .join("coco/annotations/instances_cut.json")
                .display()
        )),
        "{}",
        cut.problems[0]
    );
}
