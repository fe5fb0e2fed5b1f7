//! Box arithmetic on `[N, 4]` tensors of corners `(x1, y1, x2, y2)`, with torchvision's
//! conventions: widths are `x2 - x1` (no "+1" for inclusive pixels).

use tch::{Kind, Tensor};

/// The four coordinate columns of `[N, 4]` boxes, each `[N]`.
pub(crate) fn columns(boxes: &Tensor) -> [Tensor; 4] {
    [0, 1, 2, 3].map(|i| boxes.select(1, i))
}

/// Areas `[N]` of `[N, 4]` boxes; degenerate boxes (x2 < x1) give negative areas, as in
/// torchvision.
pub fn box_area(boxes: &Tensor) -> Tensor {
    let [x1, y1, x2, y2] = columns(boxes);
    (x2 - x1) * (y2 - y1)
}

/// Intersection over union `[N, M]` of every box of `a` `[N, 4]` with every box of `b`
/// `[M, 4]`. Two empty boxes give NaN (0 / 0), as torchvision's `box_iou` does.
pub fn box_iou(a: &Tensor, b: &Tensor) -> Tensor {
    let area_a = box_area(a);
    let area_b = box_area(b);
    let top_left = a
        .slice(1, 0, 2, 1)
        .unsqueeze(1)
        .maximum(&b.slice(1, 0, 2, 1).unsqueeze(0));
    let bottom_right = a
        .slice(1, 2, 4, 1)
        .unsqueeze(1)
        .minimum(&b.slice(1, 2, 4, 1).unsqueeze(0));
    let wh = (bottom_right - top_left).clamp_min(0.0);
    let inter = wh.select(2, 0) * wh.select(2, 1);
    let union = area_a.unsqueeze(1) + area_b.unsqueeze(0) - &inter;
    inter / union
}

/// Boxes `[N, 4]` clamped to an image of `(height, width)`: x to `[0, width]`, y to
/// `[0, height]` (torchvision's `clip_boxes_to_image`).
pub fn clip_boxes(boxes: &Tensor, (height, width): (i64, i64)) -> Tensor {
    let [x1, y1, x2, y2] = columns(boxes);
    let (w, h) = (width as f64, height as f64);
    Tensor::stack(
        &[
            x1.clamp(0.0, w),
            y1.clamp(0.0, h),
            x2.clamp(0.0, w),
            y2.clamp(0.0, h),
        ],
        1,
    )
}

/// Indices (i64, ascending) of the boxes whose width and height are both at least
/// `min_size`. The result's length depends on the data, so this is one host sync.
pub fn remove_small_boxes(boxes: &Tensor, min_size: f64) -> Tensor {
    let [x1, y1, x2, y2] = columns(boxes);
    let keep = (x2 - x1).ge(min_size).logical_and(&(y2 - y1).ge(min_size));
    keep.nonzero().view([-1]).to_kind(Kind::Int64)
}
