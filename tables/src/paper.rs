//! The paper's numbers for each row of its transfer tables.

/// One row of the paper's transfer tables: its folder name and the paper's label and numbers
/// (ResNet-50-D on ImageNet, Faster R-CNN on VOC07 test, FCN on ADE20K; `None` where the
/// paper gives none).
pub struct PaperRow {
    pub id: &'static str,
    pub label: &'static str,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub map: f64,
    pub pix_acc: f64,
    pub miou: f64,
}

/// The paper's rows, in its order: Table 6 top-1 and top-5 of the ResNet-50-D rows (the
/// efficient row's are Table 5's), B-standard's top-1 as Tables 8 and 9 list it (no top-5 is
/// given); Table 8 mAP; Table 9 pixel accuracy and mIoU.
pub const PAPER_ROWS: [PaperRow; 7] = [
    row(
        "b-standard",
        "B-standard",
        Some(76.14),
        None,
        77.54,
        78.08,
        37.05,
    ),
    row(
        "d-efficient",
        "D-efficient",
        Some(77.16),
        Some(93.52),
        78.30,
        78.88,
        38.88,
    ),
    row(
        "cosine",
        "+ cosine",
        Some(77.91),
        Some(93.81),
        79.23,
        79.25,
        39.33,
    ),
    row(
        "smooth",
        "+ smooth",
        Some(78.31),
        Some(94.09),
        80.71,
        78.64,
        38.75,
    ),
    row(
        "distill",
        "+ distill w/o mixup",
        Some(78.67),
        Some(94.36),
        80.96,
        78.97,
        38.90,
    ),
    row(
        "mixup",
        "+ mixup w/o distill",
        Some(79.15),
        Some(94.58),
        81.10,
        78.47,
        37.99,
    ),
    row(
        "distill-mixup",
        "+ distill w/ mixup",
        Some(79.29),
        Some(94.63),
        81.33,
        78.72,
        38.40,
    ),
];

const fn row(
    id: &'static str,
    label: &'static str,
    top1: Option<f64>,
    top5: Option<f64>,
    map: f64,
    pix_acc: f64,
    miou: f64,
) -> PaperRow {
    PaperRow {
        id,
        label,
        top1,
        top5,
        map,
        pix_acc,
        miou,
    }
}

pub fn paper_row(id: &str) -> Option<&'static PaperRow> {
    PAPER_ROWS.iter().find(|r| r.id == id)
}
