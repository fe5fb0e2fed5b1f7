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

/// The `--columns` name of the paper's ResNet-50-D column: the rows above, with detection and
/// segmentation.
pub const RESNET_COLUMN: &str = "resnet50d";

/// One of the two other networks of the paper's Table 6, which it trains with the same
/// refinements and does not transfer (classification only): its `--columns` name (the folder
/// its rows go in, `OUT/ID/ROW`), its label and the paper's top-1 / top-5 per row id.
pub struct PaperColumn {
    pub id: &'static str,
    pub label: &'static str,
    /// (row id, top-1, top-5), in the paper's order. Table 6 starts at the efficient row; a
    /// column's B-standard is the baseline setting of Table 3 (batch 256, fp32, step decay).
    pub rows: [(&'static str, f64, f64); 7],
}

impl PaperColumn {
    /// The paper's (top-1, top-5) of a row of this column.
    pub fn paper(&self, row: &str) -> Option<(f64, f64)> {
        self.rows
            .iter()
            .find(|(id, _, _)| *id == row)
            .map(|&(_, top1, top5)| (top1, top5))
    }
}

/// Inception-V3 and MobileNet (v1, width 1.0): Table 6's columns beside ResNet-50-D (the
/// efficient row's top-5 as Table 6 prints it; Table 3 has 90.47 for MobileNet's) and Table
/// 3's baselines.
pub const PAPER_COLUMNS: [PaperColumn; 2] = [
    PaperColumn {
        id: "inception_v3",
        label: "Inception-V3",
        rows: [
            ("b-standard", 77.32, 93.43),
            ("d-efficient", 77.50, 93.60),
            ("cosine", 78.19, 94.06),
            ("smooth", 78.40, 94.13),
            ("distill", 78.26, 94.01),
            ("mixup", 78.77, 94.39),
            ("distill-mixup", 78.34, 94.16),
        ],
    },
    PaperColumn {
        id: "mobilenet_v1",
        label: "MobileNet",
        rows: [
            ("b-standard", 69.03, 88.71),
            ("d-efficient", 71.90, 90.53),
            ("cosine", 72.83, 91.00),
            ("smooth", 72.93, 91.14),
            ("distill", 71.97, 90.89),
            ("mixup", 73.28, 91.30),
            ("distill-mixup", 72.51, 91.02),
        ],
    },
];

pub fn paper_column(id: &str) -> Option<&'static PaperColumn> {
    PAPER_COLUMNS.iter().find(|c| c.id == id)
}
